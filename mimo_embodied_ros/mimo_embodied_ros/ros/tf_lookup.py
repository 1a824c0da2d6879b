"""The camera pose in the base frame at an image's stamp: TF when tf2_ros is there, else static.

A wrist camera moves with the arm, so its pose is looked up per query at the stamp of the image
the model saw (``camera_pose_source``: ``auto`` = TF when ``tf2_ros`` imports, else the static
``camera_to_base`` extrinsic; ``tf``; ``static``). The tf2_ros part is thin and import-guarded
(tf2_ros has no wheels where this project is built): :class:`TfLookup` wraps any object with the
tf2_ros ``Buffer.lookup_transform(target, source, time, timeout)`` signature, so its logic is
tested here with a stand-in buffer. Everything else (source choice, message -> arrays, inverse)
is plain data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from rclpy.duration import Duration
from rclpy.time import Time

SOURCES = ("auto", "tf", "static")
Pose = tuple[np.ndarray, np.ndarray]  # translation (3,), unit quaternion (x, y, z, w)


class TfLookupError(RuntimeError):
    """No transform: tf2_ros missing, frames unknown, or the stamp not covered in time."""


def tf2_available() -> bool:
    try:
        import tf2_ros  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_source(requested: str, tf_available: bool) -> str:
    """``tf`` or ``static`` for a ``camera_pose_source`` value; ValueError with the fix."""
    if requested not in SOURCES:
        raise ValueError(f"camera_pose_source must be one of {', '.join(SOURCES)}, not "
                         f"'{requested}'")
    if requested == "auto":
        return "tf" if tf_available else "static"
    if requested == "tf" and not tf_available:
        raise ValueError("camera_pose_source is 'tf' but tf2_ros is not installed; install "
                         "ros-<distro>-tf2-ros, or set camera_pose_source to 'static' with a "
                         "calibrated camera_to_base")
    return requested


def transform_to_pose(transform: Any) -> Pose:
    """(translation, quaternion xyzw) of a geometry_msgs/TransformStamped (or Transform)."""
    t = getattr(transform, "transform", transform)
    translation = np.array([t.translation.x, t.translation.y, t.translation.z], dtype=float)
    q = np.array([t.rotation.x, t.rotation.y, t.rotation.z, t.rotation.w], dtype=float)
    norm = float(np.linalg.norm(q))
    if not np.all(np.isfinite(translation)) or not np.isfinite(norm) or norm < 1e-9:
        raise TfLookupError(f"transform is not finite or has a zero quaternion: {t}")
    return translation, q / norm


def as_time(stamp: Any) -> Time:
    """An rclpy Time from a builtin_interfaces/Time message, seconds, or a Time."""
    if isinstance(stamp, Time):
        return stamp
    if isinstance(stamp, int | float):
        return Time(nanoseconds=int(round(float(stamp) * 1e9)))
    return Time.from_msg(stamp)


def _stamp_text(stamp: Time) -> str:
    return f"{stamp.nanoseconds * 1e-9:.3f}"


class TfLookup:
    """lookup_transform over a tf2_ros Buffer (created with a listener on ``node`` when
    ``buffer`` is None) with errors that name the frames and the stamp."""

    def __init__(self, node: Any = None, buffer: Any = None) -> None:
        self._listener = None
        if buffer is None:
            try:
                import tf2_ros
            except ImportError as error:
                raise TfLookupError("tf2_ros is not installed: no TF lookup possible") from error
            buffer = tf2_ros.Buffer()
            self._listener = tf2_ros.TransformListener(buffer, node)
        self.buffer = buffer

    def lookup_transform(self, target: str, source: str, stamp: Any,
                         timeout: Duration | float) -> Pose:
        """Pose of ``source`` in ``target`` at ``stamp`` (maps source-frame points to target)."""
        if not isinstance(timeout, Duration):
            timeout = Duration(nanoseconds=int(round(float(timeout) * 1e9)))
        time = as_time(stamp)
        try:
            transform = self.buffer.lookup_transform(target, source, time, timeout)
        except Exception as error:  # tf2 Lookup/Connectivity/Extrapolation/Timeout exceptions
            raise TfLookupError(
                f"no TF {target} <- {source} at stamp {_stamp_text(time)} within "
                f"{timeout.nanoseconds * 1e-9:g} s: {type(error).__name__}: {error}") from None
        return transform_to_pose(transform)


class CameraPose:
    """The camera pose in ``base_frame`` for an image stamp, from TF or the static extrinsic.

    ``static`` is called per lookup, so parameter changes apply at once; ``frame_id`` of a lookup
    (the image header's) wins over ``camera_frame``."""

    def __init__(self, source: str, static: Callable[[], Pose], base_frame: Callable[[], str],
                 camera_frame: Callable[[], str], timeout_s: Callable[[], float],
                 tf: TfLookup | None = None) -> None:
        if source == "tf" and tf is None:
            raise ValueError("camera pose source 'tf' needs a TfLookup")
        self.source, self.tf = source, tf
        self._static, self._base, self._camera, self._timeout = (static, base_frame,
                                                                 camera_frame, timeout_s)

    def at(self, stamp: Any, frame_id: str = "") -> Pose:
        """TfLookupError when TF has no transform at the stamp (names frames and stamp)."""
        if self.source == "static":
            return self._static()
        assert self.tf is not None
        return self.tf.lookup_transform(self._base(), frame_id or self._camera(), stamp,
                                        float(self._timeout()))

    def describe(self) -> str:
        if self.source == "static":
            return "static camera_to_base"
        return f"tf {self._base()} <- {self._camera()} at the image stamp"


def camera_pose_for(node: Any, static: Callable[[], Pose]) -> CameraPose:
    """The CameraPose a node's parameters ask for (camera_pose_source, base_frame,
    camera_frame, tf_timeout_s); ValueError / TfLookupError with the fix when it cannot be."""
    def param(name: str) -> Any:
        return node.get_parameter(name).value

    source = resolve_source(param("camera_pose_source"), tf2_available())
    return CameraPose(source, static, lambda: param("base_frame"),
                      lambda: param("camera_frame"), lambda: float(param("tf_timeout_s")),
                      TfLookup(node) if source == "tf" else None)
