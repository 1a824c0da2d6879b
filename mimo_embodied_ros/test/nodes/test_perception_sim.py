"""Closed loop on the simulated tabletop: sim camera -> DDS -> perception node -> DDS -> test.

The scripted backend answers in MiMo-Embodied's exact output format (resized-image pixels) from
the simulator's ground truth, so everything after the model runs for real and is measured against
the truth: rescaling, depth lifting, 3D boxes and headers.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import call_instruct, spin_until
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from visualization_msgs.msg import MarkerArray

from mimo_embodied_msgs.msg import Affordances, Objects3D
from mimo_embodied_ros.core.resize import smart_resize
from mimo_embodied_ros.core.types import ImageSize
from mimo_embodied_ros.ros.camera_topics import COLOR_TOPIC
from mimo_embodied_ros.runner import load_graph, run_graph
from mimo_embodied_sim.answers import box_answer, pointing_answer, write_answers_file
from mimo_embodied_sim.tabletop import TabletopScene

SETTLE_S = 1.5
POINT_TARGETS = {  # instruction -> simulator object or part
    "where is the red cube": "red cube",
    "point at the handle of the mug": "mug/handle",
    "where can I place the cup": "placemat",
    "point at the green cube": "green cube",
    "point at the blue cylinder": "blue cylinder",
}
BOX_TARGETS = ("red cube", "green cube", "blue cylinder", "mug", "tray")


@pytest.fixture(scope="module")
def truth():
    scene = TabletopScene(seed=0)
    scene.step(int(SETTLE_S / scene.timestep))
    yield scene
    scene.close()


def answers_for(scene: TabletopScene, max_pixels: int) -> dict[str, str]:
    source = ImageSize(scene.width, scene.height)
    resized = smart_resize(scene.height, scene.width, max_pixels=max_pixels)
    answers = {
        instruction: pointing_answer([scene.target_pixel(target)], source, resized, target)
        for instruction, target in POINT_TARGETS.items()
    }
    for target in BOX_TARGETS:
        answers[f"detect the {target}"] = box_answer(
            [scene.target_box(target)], source, resized, target
        )
    return answers


class SimSession:
    """The sim_tabletop graph plus a test node that records what the camera and node publish."""

    def __init__(self, runner, context) -> None:
        self.runner = runner
        self.node = Node("sim_test_client", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.camera_headers: list = []
        self.affordances: list[Affordances] = []
        self.objects: list[Objects3D] = []
        self.node.create_subscription(Image, COLOR_TOPIC,
                                      lambda m: self.camera_headers.append(m.header),
                                      qos_profile_sensor_data)
        self.node.create_subscription(Affordances, "/mimo_embodied/affordances",
                                      self.affordances.append, 10)
        self.node.create_subscription(Objects3D, "/mimo_embodied/objects", self.objects.append, 10)
        self.markers: list[MarkerArray] = []
        self.debug_images: list[Image] = []
        self.node.create_subscription(MarkerArray, "/mimo_embodied/markers",
                                      self.markers.append, 10)
        self.node.create_subscription(Image, "/mimo_embodied/debug_image",
                                      self.debug_images.append, 10)
        camera = runner.nodes["tabletop_camera"]
        assert spin_until(self.executor, lambda: camera.scene.time >= SETTLE_S, 60.0)
        assert spin_until(self.executor, lambda: runner.nodes["mimo_embodied"]._sync.latest(), 20.0)

    def ask(self, instruction: str, task: str = ""):
        response = call_instruct(self.node, self.executor, instruction, task=task)
        assert response.success, f"{instruction}: {response.message}"
        return response

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


@pytest.fixture
def sim(ros_context, truth, tmp_path):
    sessions = []

    def start(max_pixels: int, noise: bool = False, depth_encoding: str = "32FC1") -> SimSession:
        answers = write_answers_file(tmp_path / f"answers_{max_pixels}.yaml",
                                     answers_for(truth, max_pixels))
        overrides = {
            "mimo_embodied": {"scripted.answers_file": str(answers),
                              "model.max_pixels": max_pixels},
            "tabletop_camera": {"depth_encoding": depth_encoding, "rate_hz": 10.0,
                                "depth_hole_fraction": 0.1 if noise else 0.0,
                                "depth_noise_std_m": 0.005 if noise else 0.0},
        }
        context_runner = run_graph(load_graph("sim_tabletop.yaml"), overrides, ros_context)
        runner = context_runner.__enter__()
        session = SimSession(runner, ros_context)
        sessions.append((session, context_runner))
        return session

    yield start
    for session, context_runner in sessions:
        session.close()
        context_runner.__exit__(None, None, None)


@pytest.mark.parametrize("max_pixels", [100352, 1003520])
def test_keypoints_pixel_and_3d_error_with_clean_depth(sim, truth, max_pixels):
    session = sim(max_pixels)
    for instruction, target in POINT_TARGETS.items():
        response = session.ask(instruction, task="point")
        point = response.affordances.points[0]
        u, v = truth.target_pixel(target)
        assert np.hypot(point.u - u, point.v - v) <= 2.0, (target, point.u, point.v, u, v)
        assert point.depth_valid
        xyz = np.array([point.position.x, point.position.y, point.position.z])
        assert np.linalg.norm(xyz - truth.target_point_camera(target)) <= 0.01, target


def test_keypoints_3d_error_with_holes_and_noise(sim, truth):
    session = sim(1003520, noise=True)
    for instruction, target in POINT_TARGETS.items():
        point = session.ask(instruction, task="point").affordances.points[0]
        xyz = np.array([point.position.x, point.position.y, point.position.z])
        assert np.linalg.norm(xyz - truth.target_point_camera(target)) <= 0.03, target


@pytest.mark.parametrize("noise", [False, True], ids=["clean", "holes_and_noise"])
def test_3d_boxes_of_the_sim_objects(sim, truth, noise):
    session = sim(1003520, noise=noise, depth_encoding="16UC1")
    for target in BOX_TARGETS:
        response = session.ask(f"detect the {target}", task="detect")
        found = response.objects.objects[0]
        assert found.valid, found.status
        expected = truth.object(target)
        center = np.array([found.center.position.x, found.center.position.y,
                           found.center.position.z])
        assert np.linalg.norm(center - expected.center_camera) <= 0.02, (target, center)
        # Boxes are compared as sorted edge lengths: the axes' order is the fitter's choice.
        size = np.sort([found.size.x, found.size.y, found.size.z])
        assert np.all(np.abs(size - np.sort(expected.size)) <= 0.2 * np.sort(expected.size)), (
            target, size, expected.size)


def test_every_output_carries_the_source_image_header(sim):
    session = sim(100352)
    response = session.ask("point at the handle of the mug", task="point")
    detect = session.ask("detect the red cube", task="detect")
    assert spin_until(session.executor, lambda: session.affordances and session.objects
                      and len(session.markers) >= 2 and session.debug_images, 5.0)
    published = {(h.stamp.sec, h.stamp.nanosec) for h in session.camera_headers}
    marker_headers = [m.header for array in session.markers for m in array.markers]
    for header in (response.affordances.header, detect.objects.header,
                   session.affordances[-1].header, session.objects[-1].header,
                   session.debug_images[0].header, *marker_headers):
        assert header.frame_id == "camera_color_optical_frame"
        assert (header.stamp.sec, header.stamp.nanosec) in published
        assert header.stamp.sec > 0 or header.stamp.nanosec > 0  # sim time, not zero
    assert session.affordances[-1].header == response.affordances.header
