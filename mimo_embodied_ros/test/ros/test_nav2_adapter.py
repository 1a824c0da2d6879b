"""The Nav2 action adapter keys every callback on the goal it sent: a superseded goal's late
response or result never changes the current goal's state.

nav2_msgs is not installed here, so (1) the keyed bookkeeping (GoalBook) is tested as plain code
with events out of order, and (2) the real Nav2GoalSender runs over DDS against a stand-in action
server of this project's MoveArm action (its goal carries a PoseStamped like NavigateToPose's;
``goal_field="target"``) that answers out of order: the first goal's ABORTED result arrives after
the second goal has succeeded.
"""

from __future__ import annotations

import os
import threading
import time

import rclpy
from geometry_msgs.msg import PoseStamped
from rclpy.action import ActionServer, CancelResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node

from mimo_embodied_msgs.action import MoveArm
from mimo_embodied_ros.ros.nav2_adapter import GoalBook, Nav2GoalSender


def test_goal_book_ignores_events_of_superseded_goals():
    book = GoalBook()
    first, previous = book.new_goal()
    assert previous is None and book.state == "pending"
    assert book.responded(first, True, "handle-1")
    second, previous = book.new_goal()
    assert previous == "handle-1"  # to be cancelled by the sender
    assert book.state == "pending"
    assert book.responded(second, True, "handle-2") and book.state == "active"
    assert not book.finished(first, "aborted")  # the first goal's late result
    assert book.state == "active" and book.take_handle() == "handle-2"
    assert book.finished(second, "succeeded") and book.state == "succeeded"
    assert not book.responded(first, True, "late") and book.state == "succeeded"
    assert book.ignored == 2


def test_a_late_result_of_a_superseded_nav2_goal_is_ignored():
    context = Context()
    rclpy.init(context=context, domain_id=int(os.environ.get("ROS_DOMAIN_ID", "62")))
    second_done = threading.Event()
    finished: list[str] = []

    def execute(handle):
        if handle.request.target.pose.position.x == 1.0:  # the first goal: ignores its cancel
            second_done.wait(10.0)
            time.sleep(0.3)  # its result comes well after the second goal's
            handle.abort()
            finished.append("first aborted")
        else:
            handle.succeed()
            finished.append("second succeeded")
            second_done.set()
        return MoveArm.Result()

    server_node = Node("nav2_stand_in", context=context)
    ActionServer(server_node, MoveArm, "/stand_in_navigate", execute_callback=execute,
                 cancel_callback=lambda _: CancelResponse.REJECT,
                 callback_group=ReentrantCallbackGroup())
    client_node = Node("nav2_adapter_probe", context=context)
    executor = MultiThreadedExecutor(num_threads=4, context=context)
    executor.add_node(server_node)
    executor.add_node(client_node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        sender = Nav2GoalSender(client_node, "/stand_in_navigate", ReentrantCallbackGroup(),
                                action_type=MoveArm, goal_field="target")
        goal = PoseStamped()
        goal.header.frame_id = "map"
        goal.pose.position.x = 1.0
        sender.send(goal)
        deadline = time.monotonic() + 10.0
        while sender.state != "active" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sender.state == "active"
        goal.pose.position.x = 2.0
        sender.send(goal)  # supersedes the first
        deadline = time.monotonic() + 20.0
        while len(finished) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.5)  # let the first goal's late result reach the client
        assert finished == ["second succeeded", "first aborted"]
        assert sender.state == "succeeded"
        assert sender.book.ignored >= 1
    finally:
        executor.shutdown(timeout_sec=2.0)
        server_node.destroy_node()
        client_node.destroy_node()
        context.try_shutdown()
