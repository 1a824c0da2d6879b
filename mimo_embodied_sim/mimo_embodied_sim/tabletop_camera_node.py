"""ROS 2 node "tabletop_camera": the MuJoCo tabletop published as an RGB-D camera on sim time.

Topics (what a RealSense driver publishes, so the perception stack cannot tell the difference):

- /camera/camera/color/image_raw         sensor_msgs/Image rgb8
- /camera/camera/aligned_depth_to_color/image_raw
                                  sensor_msgs/Image 32FC1 metres (NaN = no return) or 16UC1
                                  millimetres (0 = no return), registered to the colour image
- /camera/camera/color/camera_info       sensor_msgs/CameraInfo, plumb_bob, D = 0
- /clock                          rosgraph_msgs/Clock, the simulation time

All three camera messages of one frame carry the same header (sim-time stamp, frame_id).
They use sensor-data QoS (best effort, keep last 5), as camera drivers do, so subscribers that use
sensor-data QoS for camera_info too (the stack's default) match; /clock is reliable, which both
reliable and best-effort subscribers accept. The scene is `node.scene`, so an in-process test can
read ground truth for exactly what was published.
"""

from __future__ import annotations

import numpy as np
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data, qos_profile_system_default
from rclpy.time import Time
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from mimo_embodied_ros.ros.camera_topics import CAMERA_INFO_TOPIC, COLOR_TOPIC, DEPTH_TOPIC
from mimo_embodied_ros.ros.images import array_to_image, camera_info_from_intrinsics
from mimo_embodied_ros.ros.params import declare_from_config
from mimo_embodied_ros.ros.spin import spin_node
from mimo_embodied_sim.tabletop import TabletopScene, noisy_depth

DEPTH_ENCODINGS = ("32FC1", "16UC1")

# name -> description; defaults are in config/tabletop.yaml.
PARAMETERS: dict[str, str] = {
    "width": "Image width in pixels (colour and depth).",
    "height": "Image height in pixels (colour and depth).",
    "seed": "Seed of the object pose perturbations and of the depth corruption.",
    "rate_hz": "Frames per second; each frame advances the simulation by 1 / rate_hz s.",
    "depth_encoding": "32FC1 (metres, NaN = no return) or 16UC1 (mm, 0 = none).",
    "depth_noise_std_m": "Standard deviation of Gaussian depth noise, metres.",
    "depth_hole_fraction": "Fraction of depth pixels dropped (no return), 0 to 1.",
    "frame_id": "frame_id of every published camera message.",
    "shadows": "Cast shadows; false about doubles the frame rate of software rendering.",
}


def depth_to_millimetres(depth_m: np.ndarray) -> np.ndarray:
    """32FC1 metres -> 16UC1 millimetres, 0 where depth is missing or out of range."""
    millimetres = np.nan_to_num(np.asarray(depth_m, dtype=np.float64) * 1000.0, nan=0.0,
                                posinf=0.0, neginf=0.0)
    millimetres[(millimetres < 0.0) | (millimetres > np.iinfo(np.uint16).max)] = 0.0
    return np.round(millimetres).astype(np.uint16)


class TabletopCameraNode(Node):
    """Steps the tabletop scene and publishes colour, depth, camera_info and /clock."""

    def __init__(self, **node_kwargs: object) -> None:
        super().__init__("tabletop_camera", **node_kwargs)
        declare_from_config(self, PARAMETERS, "tabletop.yaml", package="mimo_embodied_sim",
                            dynamic_numbers=True)
        value = self._parameter
        self.depth_encoding = str(value("depth_encoding"))
        if self.depth_encoding not in DEPTH_ENCODINGS:
            raise ValueError(
                f"depth_encoding '{self.depth_encoding}' is not one of {', '.join(DEPTH_ENCODINGS)}"
            )
        rate_hz = float(value("rate_hz"))
        if rate_hz <= 0.0:
            raise ValueError(f"rate_hz must be positive, got {rate_hz}")
        self.frame_id = str(value("frame_id"))
        self.seed = int(value("seed"))
        self.depth_noise_std_m = float(value("depth_noise_std_m"))
        self.depth_hole_fraction = float(value("depth_hole_fraction"))
        self.scene = TabletopScene(width=int(value("width")), height=int(value("height")),
                                   seed=self.seed, shadows=bool(value("shadows")))
        self.steps_per_frame = max(1, round(1.0 / (rate_hz * self.scene.timestep)))
        self.frames_published = 0

        self.color_publisher = self.create_publisher(
            Image, COLOR_TOPIC, qos_profile_sensor_data)
        self.depth_publisher = self.create_publisher(
            Image, DEPTH_TOPIC, qos_profile_sensor_data)
        self.info_publisher = self.create_publisher(
            CameraInfo, CAMERA_INFO_TOPIC, qos_profile_sensor_data)
        self.clock_publisher = self.create_publisher(Clock, "/clock", qos_profile_system_default)
        self.timer = self.create_timer(1.0 / rate_hz, self.publish_frame)
        k = self.scene.intrinsics()
        self.get_logger().info(
            f"tabletop camera {k.width}x{k.height} fx={k.fx:.1f} at {rate_hz:g} Hz, depth "
            f"{self.depth_encoding}, frame '{self.frame_id}'")

    def _parameter(self, name: str) -> object:
        return self.get_parameter(name).value

    def publish_frame(self) -> Header:
        """Advance the simulation one frame, render it and publish it; returns the header."""
        sim_time = self.scene.step(self.steps_per_frame)
        header = Header(frame_id=self.frame_id,
                        stamp=Time(nanoseconds=int(round(sim_time * 1e9))).to_msg())
        rgb, depth = self.scene.render_rgbd()
        if self.depth_noise_std_m > 0.0 or self.depth_hole_fraction > 0.0:
            depth = noisy_depth(depth, self.depth_hole_fraction, self.depth_noise_std_m,
                                seed=self.seed * 1_000_003 + self.frames_published)
        if self.depth_encoding == "16UC1":
            depth_msg = array_to_image(depth_to_millimetres(depth), "16UC1", header)
        else:
            depth_msg = array_to_image(depth, "32FC1", header)
        self.clock_publisher.publish(Clock(clock=header.stamp))
        self.color_publisher.publish(array_to_image(rgb, "rgb8", header))
        self.depth_publisher.publish(depth_msg)
        self.info_publisher.publish(camera_info_from_intrinsics(self.scene.intrinsics(), header))
        self.frames_published += 1
        return header

    def destroy_node(self) -> None:
        self.scene.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    spin_node(TabletopCameraNode, args)


if __name__ == "__main__":
    main()
