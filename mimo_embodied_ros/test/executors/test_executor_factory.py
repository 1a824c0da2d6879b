"""create_executor: kinds, settings, and the moveit executor's configure-time error."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator

import pytest
import rclpy
from rclpy.context import Context
from rclpy.node import Node

from mimo_embodied_ros.executors import ExecutorConfigurationError, create_executor
from mimo_embodied_ros.executors.none_executor import NoneExecutor
from mimo_embodied_ros.executors.sim_executor import SimExecutor

HAS_MOVEIT = importlib.util.find_spec("moveit_msgs") is not None


@pytest.fixture
def node() -> Iterator[Node]:
    context = Context()
    rclpy.init(context=context, domain_id=int(os.environ.get("ROS_DOMAIN_ID", "62")))
    node = Node("test_executor_factory", context=context)
    yield node
    node.destroy_node()
    context.try_shutdown()


def test_kinds(node: Node) -> None:
    assert isinstance(create_executor("none", node, {}), NoneExecutor)
    sim = create_executor("sim", node, {"action_name": "/x/move_arm", "stage_timeout_s": 3.0})
    assert isinstance(sim, SimExecutor) and sim._settings.stage_timeout_s == 3.0
    sim.close()


def test_unknown_kind_and_setting(node: Node) -> None:
    with pytest.raises(ExecutorConfigurationError, match="unknown executor 'ros1'"):
        create_executor("ros1", node, {})
    with pytest.raises(ExecutorConfigurationError, match="speed"):
        create_executor("sim", node, {"speed": 1.0})


@pytest.mark.skipif(HAS_MOVEIT, reason="moveit_msgs is installed here")
def test_moveit_without_moveit_msgs_fails_at_configure_time(node: Node) -> None:
    with pytest.raises(ExecutorConfigurationError, match="moveit_msgs") as error:
        create_executor("moveit", node, {"arm_group": "panda_arm",
                                         "finger_joints": ["a", "b"]})
    assert "'sim' or 'none'" in str(error.value)
