"""The camera pose at an image stamp: the TF adapter's logic, the source choice, the math.

tf2_ros cannot be installed here (no wheels), so ``StandInBuffer`` stands in for
``tf2_ros.Buffer``: the same ``lookup_transform(target_frame, source_frame, time, timeout)``
signature, rclpy ``Time`` / ``Duration`` arguments, a ``geometry_msgs/TransformStamped`` result,
and an exception when the stamp is outside what it holds (tf2 raises ExtrapolationException).
"""

from __future__ import annotations

import numpy as np
import pytest
from geometry_msgs.msg import TransformStamped
from rclpy.duration import Duration
from rclpy.time import Time
from scipy.spatial.transform import Rotation

from mimo_embodied_ros.core.pickplace import transform_points
from mimo_embodied_ros.ros.tf_lookup import (
    CameraPose,
    TfLookup,
    TfLookupError,
    resolve_source,
    transform_to_pose,
)


class ExtrapolationException(Exception):
    """As tf2_ros names it."""


class StandInBuffer:
    """A wrist camera on an arm: base <- camera moves along +y at 0.1 m/s from t = 100 s to
    t = 110 s, optical axis straight down. Records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Time, Duration]] = []

    @staticmethod
    def pose(t: float) -> tuple[np.ndarray, np.ndarray]:
        down = Rotation.from_matrix([[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
        return np.array([0.5, 0.1 * (t - 100.0), 0.6]), down.as_quat()

    def lookup_transform(self, target_frame: str, source_frame: str, time: Time,
                         timeout: Duration) -> TransformStamped:
        assert isinstance(time, Time) and isinstance(timeout, Duration)
        self.calls.append((target_frame, source_frame, time, timeout))
        t = time.nanoseconds * 1e-9
        if (target_frame, source_frame) != ("panda_link0", "wrist_camera_optical"):
            raise LookupError(f'"{source_frame}" passed to lookupTransform does not exist')
        if not 100.0 <= t <= 110.0:
            raise ExtrapolationException("Lookup would require extrapolation into the future")
        translation, q = self.pose(t)
        msg = TransformStamped()
        msg.header.frame_id, msg.child_frame_id = target_frame, source_frame
        msg.header.stamp = time.to_msg()
        tr, rot = msg.transform.translation, msg.transform.rotation
        tr.x, tr.y, tr.z = translation.tolist()
        rot.x, rot.y, rot.z, rot.w = q.tolist()
        return msg


def test_source_choice_auto_tf_static() -> None:
    assert resolve_source("auto", tf_available=True) == "tf"
    assert resolve_source("auto", tf_available=False) == "static"
    assert resolve_source("static", tf_available=True) == "static"
    with pytest.raises(ValueError, match="tf2_ros is not installed.*'static'"):
        resolve_source("tf", tf_available=False)
    with pytest.raises(ValueError, match="one of auto, tf, static"):
        resolve_source("tf2", tf_available=True)


def test_wrist_camera_pose_looked_up_at_each_image_stamp() -> None:
    """Two images of one point taken 5 s apart by a moving camera: each camera-frame point,
    composed with the pose of its own stamp, lands on the same base-frame point."""
    buffer = StandInBuffer()
    tf = TfLookup(buffer=buffer)
    point_base = np.array([0.55, 0.3, 0.02])
    for t in (101.0, 106.0):
        translation, q = StandInBuffer.pose(t)
        in_camera = Rotation.from_quat(q).inv().apply(point_base - translation)
        stamp = Time(seconds=int(t), nanoseconds=0).to_msg()  # an Image header stamp
        pose = tf.lookup_transform("panda_link0", "wrist_camera_optical", stamp, 0.2)
        np.testing.assert_allclose(transform_points(in_camera, *pose), point_base, atol=1e-9)
    assert [c[2].nanoseconds for c in buffer.calls] == [101 * 10**9, 106 * 10**9]
    assert buffer.calls[0][3] == Duration(seconds=0.2)


def test_lookup_failure_names_the_frames_and_the_stamp() -> None:
    tf = TfLookup(buffer=StandInBuffer())
    with pytest.raises(TfLookupError) as error:
        tf.lookup_transform("panda_link0", "wrist_camera_optical", 120.5, Duration(seconds=0.1))
    text = str(error.value)
    assert "panda_link0 <- wrist_camera_optical" in text and "120.500" in text
    assert "0.1 s" in text and "ExtrapolationException" in text
    with pytest.raises(TfLookupError, match="<- nowhere at stamp 105.000"):
        tf.lookup_transform("panda_link0", "nowhere", 105.0, 0.1)


def test_camera_pose_uses_the_header_frame_then_the_default_and_static_params() -> None:
    buffer = StandInBuffer()
    static = (np.array([1.0, 0.0, 0.5]), np.array([0.0, 0.0, 0.0, 1.0]))
    pose = CameraPose("tf", lambda: static, lambda: "panda_link0",
                      lambda: "wrist_camera_optical", lambda: 0.3, TfLookup(buffer=buffer))
    pose.at(Time(seconds=102).to_msg(), "")
    assert buffer.calls[-1][:2] == ("panda_link0", "wrist_camera_optical")
    with pytest.raises(TfLookupError, match="<- other_camera"):
        pose.at(Time(seconds=102).to_msg(), "other_camera")
    assert "tf panda_link0 <- wrist_camera_optical" in pose.describe()
    fixed = CameraPose("static", lambda: static, lambda: "b", lambda: "c", lambda: 0.3)
    assert fixed.at(Time(seconds=1).to_msg()) is static and fixed.describe().startswith("static")


def test_transform_message_with_zero_quaternion_is_refused() -> None:
    msg = TransformStamped()
    msg.transform.rotation.w = 0.0  # all zeros: a quaternion nobody set
    with pytest.raises(TfLookupError, match="zero quaternion"):
        transform_to_pose(msg)
