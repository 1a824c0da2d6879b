"""ROS 2 node "apartment_sim": the MuJoCo apartment and its robot, a stand-in for Nav2 + a robot.

Publishes (all stamped with sim time):

- /map                            nav_msgs/OccupancyGrid, transient local, once and on reset
- the RealSense topics of ros/camera_topics.py (colour, aligned depth 16UC1 mm, camera_info)
                                  at camera_rate_hz of sim time, sensor-data QoS, frame
                                  camera_color_optical_frame
- /clock, /amcl_pose (PoseWithCovarianceStamped, map, as AMCL publishes it), /odom (Odometry)
                                  every tick (no TF here: tf2_msgs has no wheel)
- ~/plan                          nav_msgs/Path of the current goal

Subscribes /goal_pose (PoseStamped in map: plan and drive there, like Nav2's bt_navigator; the
goal checker needs position and heading within goal_xy_tolerance_m / goal_yaw_tolerance_rad) and
/cmd_vel (Twist: direct velocity; a goal in progress is kept and the two fight, as in Nav2).
Service ~/reset (std_srvs/Trigger): next episode seed.

With a non-empty `answers_file` it writes the oracle answers (apartment.ApartmentWorld.
oracle_answers) atomically at start, on reset and whenever the base has come to rest after moving,
for the scripted perception backend. `node.world` is the ApartmentWorld for in-process tests.
"""

from __future__ import annotations

import math
import threading

from geometry_msgs.msg import Pose, PoseStamped, PoseWithCovarianceStamped, Twist
from nav_msgs.msg import OccupancyGrid, Odometry
from nav_msgs.msg import Path as PathMsg
from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
    qos_profile_system_default,
)
from rclpy.time import Time
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from mimo_embodied_ros.core.resize import smart_resize
from mimo_embodied_ros.ros.camera_topics import CAMERA_INFO_TOPIC, COLOR_TOPIC, DEPTH_TOPIC
from mimo_embodied_ros.ros.images import array_to_image, camera_info_from_intrinsics
from mimo_embodied_ros.ros.params import declare_from_config
from mimo_embodied_ros.ros.spin import spin_node
from mimo_embodied_sim.answers import write_answers_file
from mimo_embodied_sim.apartment import (
    CONFIG_FILE,
    NODE_NAME,
    ApartmentWorld,
    parse_instruction_table,
)
from mimo_embodied_sim.tabletop import noisy_depth
from mimo_embodied_sim.tabletop_camera_node import depth_to_millimetres
from mimo_embodied_sim.tick_loop import TickLoop

# name -> description; defaults are in config/apartment.yaml.
PARAMETERS: dict[str, str] = {
    "seed": "Episode seed (start pose, episode instruction); +1 on every ~/reset.",
    "width": "Camera image width in pixels (320 .. 1280).",
    "height": "Camera image height in pixels (240 .. 960).",
    "fovy_deg": "Vertical field of view of the camera, degrees.",
    "camera_height_m": "Height of the camera above the floor, metres.",
    "camera_pitch_deg": "Downward pitch of the camera, degrees.",
    "camera_rate_hz": "Camera frames per simulated second.",
    "physics_rate_hz": "Simulation ticks per wall-clock second (pose, odom, clock each tick).",
    "real_time_factor": "Simulated seconds per wall-clock second.",
    "depth_noise_std_m": "Standard deviation of Gaussian depth noise, metres.",
    "depth_hole_fraction": "Fraction of depth pixels dropped (no return), 0 to 1.",
    "frame_id": "frame_id of the camera messages.",
    "map_frame": "Frame of /map, /amcl_pose and ~/plan (the sim's world frame).",
    "odom_frame": "Frame of /odom (coincides with map: odometry is perfect).",
    "base_frame": "Robot frame (child frame of /odom).",
    "robot_radius_m": "Radius of the round base, metres.",
    "inflation_margin_m": "Extra clearance the planner keeps beyond the robot radius, metres.",
    "max_linear_speed": "Base speed limit, m/s.",
    "max_angular_speed": "Base yaw-rate limit, rad/s.",
    "max_linear_accel": "Base acceleration limit, m/s^2.",
    "max_angular_accel": "Base yaw acceleration limit, rad/s^2.",
    "cmd_vel_timeout_s": "A /cmd_vel command is held this long (sim time), then the base stops.",
    "goal_xy_tolerance_m": "Goal checker: a goal ends when the base is this close (m) ...",
    "goal_yaw_tolerance_rad": "... and its heading this close (rad), as Nav2's goal checker.",
    "pose_covariance": "Diagonal x, y, yaw variances of /amcl_pose (m^2, m^2, rad^2).",
    "answers_file": "Oracle answers YAML for the scripted backend; empty = do not write.",
    "answer_noise_px": "Gaussian noise of oracle points, source pixels.",
    "answer_seed": "Seed of the oracle noise (plus a counter per write).",
    "model_max_pixels": "Smart-resize cap of the perception node (its model.max_pixels).",
    "model_min_pixels": "Smart-resize floor of the perception node (its model.min_pixels).",
    "map_pixels_per_cell": "Map image scale of the navigator (its map.pixels_per_cell).",
    "settle_s": "The base counts as at rest after this many sim seconds without motion.",
    "min_visible_pixels": "A target is visible with at least this many mask pixels in range.",
    "max_visible_range_m": "Mask pixels farther than this do not count as visible, metres.",
    "instructions": "Instruction table: 'instruction | room | target | reasoning'.",
}

MAP_QOS = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                     reliability=ReliabilityPolicy.RELIABLE)


def _yaw_quaternion(yaw: float) -> tuple[float, float, float, float]:
    return 0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)


def _pose_message(x: float, y: float, yaw: float) -> Pose:
    pose = Pose()
    pose.position.x, pose.position.y = float(x), float(y)
    q = _yaw_quaternion(yaw)
    pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = q
    return pose


def _yaw_of(pose: Pose) -> float:
    q = pose.orientation
    return math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))


class ApartmentSimNode(Node):
    """Advances the apartment on a wall-clock loop thread and bridges it to ROS topics."""

    def __init__(self, **node_kwargs: object) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        declare_from_config(self, PARAMETERS, CONFIG_FILE, package="mimo_embodied_sim",
                            dynamic_numbers=True)
        value = self._parameter
        self.camera_rate_hz = float(value("camera_rate_hz"))
        physics_rate_hz = float(value("physics_rate_hz"))
        self.real_time_factor = float(value("real_time_factor"))
        if min(self.camera_rate_hz, physics_rate_hz, self.real_time_factor) <= 0.0:
            raise ValueError("camera_rate_hz, physics_rate_hz and real_time_factor must be > 0")
        self.frame_id = str(value("frame_id"))
        self.map_frame = str(value("map_frame"))
        self.odom_frame = str(value("odom_frame"))
        self.base_frame = str(value("base_frame"))
        self.seed = int(value("seed"))
        self.depth_noise_std_m = float(value("depth_noise_std_m"))
        self.depth_hole_fraction = float(value("depth_hole_fraction"))
        self.answers_file = str(value("answers_file"))
        self.answer_noise_px = float(value("answer_noise_px"))
        self.answer_seed = int(value("answer_seed"))
        self.map_pixels_per_cell = int(value("map_pixels_per_cell"))
        self.settle_s = float(value("settle_s"))
        self.world = ApartmentWorld(
            seed=self.seed, width=int(value("width")), height=int(value("height")),
            fovy_deg=float(value("fovy_deg")), camera_height_m=float(value("camera_height_m")),
            camera_pitch_deg=float(value("camera_pitch_deg")),
            robot_radius_m=float(value("robot_radius_m")),
            inflation_margin_m=float(value("inflation_margin_m")),
            max_linear_speed=float(value("max_linear_speed")),
            max_angular_speed=float(value("max_angular_speed")),
            max_linear_accel=float(value("max_linear_accel")),
            max_angular_accel=float(value("max_angular_accel")),
            cmd_vel_timeout_s=float(value("cmd_vel_timeout_s")),
            goal_xy_tolerance_m=float(value("goal_xy_tolerance_m")),
            goal_yaw_tolerance_rad=float(value("goal_yaw_tolerance_rad")),
            min_visible_pixels=int(value("min_visible_pixels")),
            max_visible_range_m=float(value("max_visible_range_m")),
            instructions=parse_instruction_table(list(value("instructions"))),
        )
        caps = {"max_pixels": int(value("model_max_pixels")),
                "min_pixels": int(value("model_min_pixels"))}
        self.camera_resized = smart_resize(self.world.height, self.world.width, **caps)
        _, spec = self.world.grid()
        self.map_resized = smart_resize(spec.height * self.map_pixels_per_cell,
                                        spec.width * self.map_pixels_per_cell, **caps)
        self.tick_sim_s = self.real_time_factor / physics_rate_hz
        self.frames_published = 0
        self.answers_written = 0
        self._next_frame_time = 0.0
        self._last_motion_time = 0.0
        self._answers_stale = True
        # The world is stepped by a TickLoop thread (tick_loop.py says why not a timer);
        # callbacks and the loop share this lock.
        self.lock = threading.RLock()

        self.map_publisher = self.create_publisher(OccupancyGrid, "/map", MAP_QOS)
        self.color_publisher = self.create_publisher(
            Image, COLOR_TOPIC, qos_profile_sensor_data)
        self.depth_publisher = self.create_publisher(
            Image, DEPTH_TOPIC, qos_profile_sensor_data)
        self.info_publisher = self.create_publisher(
            CameraInfo, CAMERA_INFO_TOPIC, qos_profile_sensor_data)
        self.clock_publisher = self.create_publisher(Clock, "/clock", qos_profile_system_default)
        self.pose_covariance = [float(v) for v in value("pose_covariance")]
        self.pose_publisher = self.create_publisher(PoseWithCovarianceStamped, "/amcl_pose",
                                                    qos_profile_system_default)
        self.odom_publisher = self.create_publisher(Odometry, "/odom", qos_profile_system_default)
        self.plan_publisher = self.create_publisher(PathMsg, "~/plan", qos_profile_system_default)
        self.create_subscription(PoseStamped, "/goal_pose", self.on_goal,
                                 qos_profile_system_default)
        self.create_subscription(Twist, "/cmd_vel", self.on_cmd_vel, qos_profile_system_default)
        self.create_service(Trigger, "~/reset", self.on_reset)
        self.publish_map()
        self.publish_state()
        self.publish_frame()
        self._next_frame_time = self.world.time + 1.0 / self.camera_rate_hz
        self.write_answers()
        self._loop = TickLoop("apartment_sim_loop", 1.0 / physics_rate_hz, lambda: self.tick(),
                              self.lock, self.get_logger())
        self._loop.start()
        translation, rotation = self.world.camera_to_base()
        self.get_logger().info(
            f"apartment episode seed {self.seed}: '{self.world.episode().instruction}'; camera "
            f"{self.world.width}x{self.world.height} at {self.camera_rate_hz:g} Hz, "
            f"camera_to_base t={translation.round(4).tolist()} q={rotation.round(6).tolist()}; "
            f"real_time_factor {self.real_time_factor:g}")

    def _parameter(self, name: str) -> object:
        return self.get_parameter(name).value

    def _header(self, frame_id: str) -> Header:
        return Header(frame_id=frame_id,
                      stamp=Time(nanoseconds=int(round(self.world.time * 1e9))).to_msg())

    # -- publishing ---------------------------------------------------------------------------

    def publish_map(self) -> None:
        grid, spec = self.world.grid()
        message = OccupancyGrid(header=self._header(self.map_frame))
        message.info.map_load_time = message.header.stamp
        message.info.resolution = float(spec.resolution)
        message.info.width, message.info.height = spec.width, spec.height
        message.info.origin = _pose_message(spec.origin_x, spec.origin_y, spec.origin_yaw)
        message.data = grid.reshape(-1).tolist()
        self.map_publisher.publish(message)

    def publish_state(self) -> None:
        """/clock, /amcl_pose and /odom at the current sim time."""
        x, y, yaw = self.world.pose()
        v, w = self.world.velocity()
        self.clock_publisher.publish(Clock(clock=self._header("").stamp))
        pose = PoseWithCovarianceStamped(header=self._header(self.map_frame))
        pose.pose.pose = _pose_message(x, y, yaw)
        covariance = [0.0] * 36
        covariance[0], covariance[7], covariance[35] = self.pose_covariance
        pose.pose.covariance = covariance
        self.pose_publisher.publish(pose)
        odom = Odometry(header=self._header(self.odom_frame), child_frame_id=self.base_frame)
        odom.pose.pose = pose.pose.pose
        odom.twist.twist.linear.x, odom.twist.twist.angular.z = float(v), float(w)
        self.odom_publisher.publish(odom)

    def publish_frame(self) -> Header:
        header = self._header(self.frame_id)
        rgb, depth = self.world.render_rgbd()
        if self.depth_noise_std_m > 0.0 or self.depth_hole_fraction > 0.0:
            depth = noisy_depth(depth, self.depth_hole_fraction, self.depth_noise_std_m,
                                seed=self.seed * 1_000_003 + self.frames_published)
        self.color_publisher.publish(array_to_image(rgb, "rgb8", header))
        self.depth_publisher.publish(array_to_image(depth_to_millimetres(depth), "16UC1", header))
        self.info_publisher.publish(camera_info_from_intrinsics(self.world.intrinsics(), header))
        self.frames_published += 1
        return header

    def publish_plan(self) -> None:
        message = PathMsg(header=self._header(self.map_frame))
        for x, y in self.world.path():
            message.poses.append(PoseStamped(header=message.header, pose=_pose_message(x, y, 0)))
        self.plan_publisher.publish(message)

    def write_answers(self) -> None:
        """Rewrite the oracle answers file for the current view (no-op without answers_file)."""
        self._answers_stale = False
        if not self.answers_file:
            return
        answers = self.world.oracle_answers(
            self.camera_resized, self.map_resized, self.map_pixels_per_cell,
            noise_px=self.answer_noise_px, seed=self.answer_seed + self.answers_written)
        write_answers_file(self.answers_file, answers)
        self.answers_written += 1

    # -- loop and callbacks -------------------------------------------------------------------

    def tick(self) -> None:
        """Advance one tick of sim time; publish state; a camera frame when one is due; the
        answers once the base has been at rest for settle_s after moving."""
        end = self.world.time + self.tick_sim_s
        while self._next_frame_time <= end + 1e-9:
            # Split the tick at the frame's instant, so frames are exactly 1 / rate apart.
            self.world.advance(max(0.0, self._next_frame_time - self.world.time))
            self.publish_frame()
            self._next_frame_time += 1.0 / self.camera_rate_hz
        self.world.advance(max(0.0, end - self.world.time))
        now = self.world.time
        if self.world.is_moving():
            self._last_motion_time = now
            self._answers_stale = True
        self.publish_state()
        if self._answers_stale and now - self._last_motion_time >= self.settle_s:
            self.write_answers()

    def on_goal(self, message: PoseStamped) -> None:
        if message.header.frame_id and message.header.frame_id != self.map_frame:
            self.get_logger().error(
                f"goal in frame '{message.header.frame_id}' ignored: goals must be in "
                f"'{self.map_frame}' (no TF here)")
            return
        x, y, yaw = message.pose.position.x, message.pose.position.y, _yaw_of(message.pose)
        with self.lock:
            accepted = self.world.set_goal(x, y, yaw)
            self.publish_plan()
        if accepted:
            self.get_logger().info(f"goal ({x:.2f}, {y:.2f}, {math.degrees(yaw):.0f} deg): "
                                   f"path of {len(self.world.path())} points")
        else:
            self.get_logger().warn(f"goal ({x:.2f}, {y:.2f}) is unreachable")

    def on_cmd_vel(self, message: Twist) -> None:
        with self.lock:
            self.world.set_velocity(message.linear.x, message.angular.z)

    def on_reset(self, _request: Trigger.Request, response: Trigger.Response) -> (
            Trigger.Response):
        with self.lock:
            self.seed += 1
            self.world.reset(self.seed)
            self._last_motion_time = self.world.time
            self.publish_map()
            self.publish_state()
            self.publish_frame()
            self._next_frame_time = self.world.time + 1.0 / self.camera_rate_hz
            self.write_answers()
        response.success = True
        response.message = f"episode seed {self.seed}: '{self.world.episode().instruction}'"
        return response

    def destroy_node(self) -> None:
        self._loop.stop()
        self.world.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    spin_node(ApartmentSimNode, args)


if __name__ == "__main__":
    main()
