"""ROS 2 node "pickplace_sim": the MuJoCo Panda pick-and-place world on sim time.

- the RealSense topics of ros/camera_topics.py (colour, aligned depth, camera_info): the fixed
  RGB-D camera (same topics, encodings and QoS as tabletop_camera), at `camera_rate_hz` of
  simulated time, frame `frame_id`; its pose in the base frame is `node.world.camera_pose_base()`.
- /clock (simulated time, monotonic across resets), /joint_states (panda_joint1..7, fingers).
- Action ~/move_arm (mimo_embodied_msgs/action/MoveArm): the gripper command runs first, then the
  arm motion; executed in slices by the physics loop, with feedback; a cancel stops the arm
  where it is (it holds its joints) and the result reports canceled. One goal at a time. The
  gripper behaves like ros2_control's GripperActionController (allow_stalling false): fingers
  that stop short of the commanded width (on an object, or jammed) end the goal ABORTED with
  stalled=true, position and effort; reaching the width succeeds with reached_goal=true.
- Service ~/reset (std_srvs/Trigger): a new episode with seed `episode_seed` + resets so far;
  the world is rebuilt with the arm at home.
- With a non-empty `answers_file`, the scripted model's answers (pick pixels from ground truth,
  spec "Scripted oracle answers") are rewritten atomically once the scene is settled after a
  reset and after each motion.

Physics runs in a wall-clock loop thread (`physics_rate_hz`, tick_loop.py); each tick advances
`real_time_factor / physics_rate_hz` simulated seconds. Frames of a still scene are re-published
without re-rendering, to keep CPU use low. In-process users read `node.world`.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from geometry_msgs.msg import Pose
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.action.server import ServerGoalHandle
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data, qos_profile_system_default
from rclpy.time import Time
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from mimo_embodied_msgs.action import MoveArm
from mimo_embodied_ros.core.resize import smart_resize
from mimo_embodied_ros.ros.camera_topics import CAMERA_INFO_TOPIC, COLOR_TOPIC, DEPTH_TOPIC
from mimo_embodied_ros.ros.images import array_to_image, camera_info_from_intrinsics
from mimo_embodied_ros.ros.params import declare_from_config
from mimo_embodied_ros.ros.spin import spin_node
from mimo_embodied_sim.answers import write_answers_file
from mimo_embodied_sim.pickplace import MotionStatus, PickPlaceWorld
from mimo_embodied_sim.tabletop import noisy_depth
from mimo_embodied_sim.tabletop_camera_node import DEPTH_ENCODINGS, depth_to_millimetres
from mimo_embodied_sim.tick_loop import TickLoop

# name -> description; defaults are in config/pickplace.yaml.
PARAMETERS: dict[str, str] = {
    "width": "Image width in pixels (colour and depth).",
    "height": "Image height in pixels (colour and depth).",
    "episode_seed": "Seed of the first episode (object poses, task); +1 per ~/reset.",
    "real_time_factor": "Simulated seconds per wall second (> 1 runs faster than real time).",
    "physics_rate_hz": "Wall-clock rate of the physics loop; each tick steps the simulation.",
    "camera_rate_hz": "Camera frames per second of simulated time.",
    "depth_encoding": "32FC1 (metres, NaN = no return) or 16UC1 (mm, 0 = none).",
    "depth_noise_std_m": "Standard deviation of Gaussian depth noise, metres.",
    "depth_hole_fraction": "Fraction of depth pixels dropped (no return), 0 to 1.",
    "frame_id": "frame_id of every published camera message.",
    "base_frame_id": "Arm base frame; MoveArm targets must use it (or leave it empty).",
    "shadows": "Cast shadows; false keeps software rendering fast.",
    "answers_file": "Oracle answers YAML for the scripted backend; empty = do not write.",
    "answer_noise_px": "Gaussian noise of oracle answer points, source pixels.",
    "answer_seed": "Seed of the oracle answer noise (+1 per file written).",
    "model_max_pixels": "Smart-resize cap of the perception node (model.max_pixels).",
    "model_min_pixels": "Smart-resize floor of the perception node (model.min_pixels).",
}

SETTLED_SPEED = 0.01  # max |qvel| of a scene at rest (rad/s, m/s)
SETTLE_TIMEOUT_S = 1.0  # simulated seconds after which answers are written anyway
FEEDBACK_PERIOD_S = 0.1  # simulated seconds between MoveArm feedback messages


@dataclass
class _ActiveGoal:
    handle: ServerGoalHandle
    done: Future
    last_feedback_s: float = -1.0


class PickPlaceSimNode(Node):
    """Steps the pick-and-place world, publishes its sensors and executes MoveArm goals."""

    def __init__(self, **node_kwargs: object) -> None:
        super().__init__("pickplace_sim", **node_kwargs)
        declare_from_config(self, PARAMETERS, "pickplace.yaml", package="mimo_embodied_sim",
                            dynamic_numbers=True)
        value = self._parameter
        self.depth_encoding = str(value("depth_encoding"))
        if self.depth_encoding not in DEPTH_ENCODINGS:
            raise ValueError(
                f"depth_encoding '{self.depth_encoding}' is not one of {', '.join(DEPTH_ENCODINGS)}"
            )
        for name in ("real_time_factor", "physics_rate_hz", "camera_rate_hz"):
            if float(value(name)) <= 0.0:
                raise ValueError(f"{name} must be positive, got {value(name)}")
        self.frame_id = str(value("frame_id"))
        self.base_frame_id = str(value("base_frame_id"))
        self.real_time_factor = float(value("real_time_factor"))
        self.camera_period_s = 1.0 / float(value("camera_rate_hz"))
        self.depth_noise_std_m = float(value("depth_noise_std_m"))
        self.depth_hole_fraction = float(value("depth_hole_fraction"))
        answers_file = str(value("answers_file")).strip()
        self.answers_path = Path(answers_file) if answers_file else None
        self.answer_noise_px = float(value("answer_noise_px"))
        self.answer_seed = int(value("answer_seed"))
        self.model_resized = smart_resize(int(value("height")), int(value("width")),
                                          min_pixels=int(value("model_min_pixels")),
                                          max_pixels=int(value("model_max_pixels")))
        self.episode_seed = int(value("episode_seed"))
        self.episodes_started = 0
        self.answers_written = 0
        self.frames_published = 0

        self._lock = threading.RLock()
        self._time_offset_s = 0.0  # sim time of earlier episodes: /clock never goes back
        self._world_kwargs = dict(width=int(value("width")), height=int(value("height")),
                                  shadows=bool(value("shadows")))
        self.world = PickPlaceWorld(seed=self.episode_seed, **self._world_kwargs)
        self._next_frame_s = 0.0
        self._last_frame: tuple[np.ndarray, np.ndarray] | None = None
        self._active: _ActiveGoal | None = None
        self._answers_pending_since: float | None = 0.0

        sensor, reliable = qos_profile_sensor_data, qos_profile_system_default
        self.color_publisher = self.create_publisher(Image, COLOR_TOPIC, sensor)
        self.depth_publisher = self.create_publisher(Image, DEPTH_TOPIC, sensor)
        self.info_publisher = self.create_publisher(CameraInfo, CAMERA_INFO_TOPIC, sensor)
        self.clock_publisher = self.create_publisher(Clock, "/clock", reliable)
        self.joint_publisher = self.create_publisher(JointState, "/joint_states", reliable)

        self.tick_period_s = 1.0 / float(value("physics_rate_hz"))
        self.reset_service = self.create_service(Trigger, "~/reset", self._handle_reset)
        # The execute callback blocks its executor thread until the physics loop ends the goal.
        # (Not a coroutine awaiting an rclpy Future: rclpy's executors re-run a pending
        # coroutine task on every spin, which spun hot and starved the physics thread.)
        self.move_server = ActionServer(
            self, MoveArm, "~/move_arm", execute_callback=self._execute_move,
            goal_callback=self._accept_goal, cancel_callback=lambda _: CancelResponse.ACCEPT,
            callback_group=ReentrantCallbackGroup())
        k = self.world.intrinsics()
        position, quaternion = self.world.camera_pose_base()
        self.get_logger().info(
            f"pick-and-place sim: episode seed {self.episode_seed}, task {self.world.task()}, "
            f"camera {k.width}x{k.height} fx={k.fx:.1f} at {np.round(position, 3).tolist()} "
            f"xyzw {np.round(quaternion, 4).tolist()}, real-time factor {self.real_time_factor:g}")
        self._loop = TickLoop("pickplace_sim_loop", self.tick_period_s, lambda: self.tick(),
                              self._lock, self.get_logger())
        self._loop.start()

    def _parameter(self, name: str) -> object:
        return self.get_parameter(name).value

    # -- time and publishing ------------------------------------------------------------------

    @property
    def sim_time_s(self) -> float:
        """Simulated time since the node started (continues across resets)."""
        return self._time_offset_s + self.world.time

    def _header(self, sim_time_s: float, frame_id: str) -> Header:
        return Header(frame_id=frame_id, stamp=Time(nanoseconds=int(round(sim_time_s * 1e9)))
                      .to_msg())

    def tick(self) -> None:
        """One physics slice: step, follow the goal, publish clock, joints and due camera frames."""
        with self._lock:
            world = self.world
            world.advance(self.tick_period_s * self.real_time_factor)
            now = self.sim_time_s
            self.clock_publisher.publish(Clock(clock=self._header(now, "").stamp))
            self._publish_joints(now)
            self._follow_goal(now)
            if now + 1e-9 >= self._next_frame_s:
                self.publish_frame(now)
                self._next_frame_s = max(self._next_frame_s + self.camera_period_s, now)
            self._maybe_write_answers(now)

    def _scene_still(self) -> bool:
        return float(np.max(np.abs(self.world.data.qvel))) < SETTLED_SPEED \
            and not self.world.moving

    def publish_frame(self, now: float | None = None) -> Header:
        """Render (or reuse the last render of a still scene) and publish one RGB-D frame."""
        with self._lock:
            now = self.sim_time_s if now is None else now
            header = self._header(now, self.frame_id)
            if self._last_frame is None or not self._scene_still():
                self._last_frame = self.world.render_rgbd()
            rgb, depth = self._last_frame
            if self.depth_noise_std_m > 0.0 or self.depth_hole_fraction > 0.0:
                depth = noisy_depth(depth, self.depth_hole_fraction, self.depth_noise_std_m,
                                    seed=self.episode_seed * 1_000_003 + self.frames_published)
            if self.depth_encoding == "16UC1":
                depth_msg = array_to_image(depth_to_millimetres(depth), "16UC1", header)
            else:
                depth_msg = array_to_image(depth, "32FC1", header)
            self.color_publisher.publish(array_to_image(rgb, "rgb8", header))
            self.depth_publisher.publish(depth_msg)
            self.info_publisher.publish(camera_info_from_intrinsics(self.world.intrinsics(),
                                                                    header))
            self.frames_published += 1
            return header

    def _publish_joints(self, now: float) -> None:
        message = JointState(header=self._header(now, self.base_frame_id))
        message.name = self.world.joint_names()
        message.position = self.world.joint_positions().tolist()
        message.velocity = self.world.joint_velocities().tolist()
        self.joint_publisher.publish(message)

    def _maybe_write_answers(self, now: float) -> None:
        if self.answers_path is None or self._answers_pending_since is None:
            return
        if not self._scene_still() and now - self._answers_pending_since < SETTLE_TIMEOUT_S:
            return
        self.write_answers()

    def answers_settled_at(self, written_before: int) -> float | None:
        """Sim time now if the answers on disk show the current scene (a write after the
        `written_before`-th one and none pending), else None; read under the lock, so a write
        in progress does not count. In-process harnesses use it to know an episode is ready."""
        with self._lock:
            if self._answers_pending_since is not None or self.answers_written <= written_before:
                return None
            return self.sim_time_s

    def write_answers(self) -> Path | None:
        """Rewrite the oracle answers file for the current view now (None without a path)."""
        with self._lock:
            self._answers_pending_since = None
            if self.answers_path is None:
                return None
            answers = self.world.oracle_answers(self.model_resized, self.answer_noise_px,
                                                self.answer_seed + self.answers_written)
            write_answers_file(self.answers_path, answers)
            self.answers_written += 1
            return self.answers_path

    # -- episodes -----------------------------------------------------------------------------

    def _handle_reset(self, _: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        try:
            self.reset()
        except Exception as error:  # noqa: BLE001 - reported to the caller, the node keeps going
            response.success, response.message = False, f"reset failed: {error}"
            return response
        object_name, receptacle_name = self.world.task()
        response.success = True
        response.message = (f"episode seed {self.world.seed}: put the {object_name} in the "
                            f"{receptacle_name}")
        return response

    def reset(self) -> None:
        """Abort any goal and start a new seeded episode (a rebuilt world, arm at home)."""
        with self._lock:
            self._end_goal(MotionStatus(True, False, "aborted: the episode was reset", 0.0))
            self.episodes_started += 1
            old = self.world
            world = PickPlaceWorld(seed=self.episode_seed + self.episodes_started,
                                   **self._world_kwargs)
            self._time_offset_s += old.time + self.tick_period_s * self.real_time_factor
            old.close()
            self.world = world
            self._last_frame = None
            self._next_frame_s = self.sim_time_s
            self._answers_pending_since = self.sim_time_s
            self.get_logger().info(f"episode seed {world.seed}: task {world.task()}")

    # -- MoveArm ------------------------------------------------------------------------------

    def _accept_goal(self, _: MoveArm.Goal) -> GoalResponse:
        with self._lock:
            if self._active is not None:
                self.get_logger().warning("MoveArm goal rejected: another goal is running")
                return GoalResponse.REJECT
            return GoalResponse.ACCEPT

    def _execute_move(self, goal_handle: ServerGoalHandle) -> MoveArm.Result:
        goal: MoveArm.Goal = goal_handle.request
        done = Future()
        with self._lock:
            frame = goal.target.header.frame_id
            if goal.move_pose and frame not in ("", self.base_frame_id):
                status = MotionStatus(True, False, f"target frame '{frame}' is not the base "
                                      f"frame '{self.base_frame_id}'", 0.0)
            elif not goal.move_pose and not goal.move_gripper:
                status = MotionStatus(True, True, "nothing to do", 0.0)
            else:
                pose = goal.target.pose
                status = self.world.start_motion(
                    position=np.array([pose.position.x, pose.position.y, pose.position.z])
                    if goal.move_pose else None,
                    quaternion_xyzw=np.array([pose.orientation.x, pose.orientation.y,
                                              pose.orientation.z, pose.orientation.w])
                    if goal.move_pose else None,
                    cartesian=goal.cartesian,
                    gripper_width=goal.gripper_width if goal.move_gripper else None)
            if status.done:
                done.set_result(status)
            else:
                self._active = _ActiveGoal(goal_handle, done)
        status = done.result()
        with self._lock:
            result = self._result(status)
        if status.message == "canceled":
            goal_handle.canceled()
        elif status.success:
            goal_handle.succeed()
        else:
            goal_handle.abort()
        return result

    def _result(self, status: MotionStatus) -> MoveArm.Result:
        position, quaternion = self.world.tcp_pose()
        width = self.world.gripper_width()
        # The gripper part reads like GripperActionController's result: no ground truth here.
        result = MoveArm.Result(success=status.success, message=status.message,
                                gripper_width=width, position=width,
                                effort=self.world.gripper_effort(), stalled=status.stalled,
                                reached_goal=status.reached_goal)
        result.final_pose = Pose()
        result.final_pose.position.x, result.final_pose.position.y, \
            result.final_pose.position.z = (float(v) for v in position)
        (result.final_pose.orientation.x, result.final_pose.orientation.y,
         result.final_pose.orientation.z, result.final_pose.orientation.w) = (
            float(v) for v in quaternion)
        return result

    def _follow_goal(self, now: float) -> None:
        """Feedback, cancellation and completion of the running goal (physics loop)."""
        active = self._active
        if active is None:
            return
        if active.handle.is_cancel_requested:
            self.world.stop()
            self._end_goal(MotionStatus(True, False, "canceled",
                                        self.world.distance_remaining()))
            return
        if not self.world.moving:
            self._end_goal(self.world.last_status)
            return
        if now - active.last_feedback_s >= FEEDBACK_PERIOD_S:
            active.last_feedback_s = now
            active.handle.publish_feedback(
                MoveArm.Feedback(distance_remaining=self.world.distance_remaining()))

    def _end_goal(self, status: MotionStatus) -> None:
        active, self._active = self._active, None
        if active is None:
            return
        if self.world.moving:
            self.world.stop()
        self._answers_pending_since = self.sim_time_s
        if not active.done.done():
            active.done.set_result(status)

    def destroy_node(self) -> None:
        self._loop.stop()
        with self._lock:
            self._end_goal(MotionStatus(True, False, "aborted: the node is shutting down", 0.0))
            self.move_server.destroy()
            self.world.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    spin_node(PickPlaceSimNode, args, num_threads=3)


if __name__ == "__main__":
    main()
