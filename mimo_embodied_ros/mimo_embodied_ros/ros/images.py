"""sensor_msgs Image / CompressedImage / CameraInfo <-> numpy, without cv_bridge.

cv_bridge for ROS 2 is not installable everywhere (and PyPI's `cv-bridge` is the ROS 1 copy that
mis-maps 16UC1), so the few encodings an RGB-D camera uses are converted here.
"""

from __future__ import annotations

import cv2
import numpy as np
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from mimo_embodied_ros.core.types import CameraIntrinsics

# encoding -> (numpy dtype, channels)
_ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4),
    "bgra8": (np.dtype(np.uint8), 4),
    "mono8": (np.dtype(np.uint8), 1),
    "8UC1": (np.dtype(np.uint8), 1),
    "8UC3": (np.dtype(np.uint8), 3),
    "mono16": (np.dtype(np.uint16), 1),
    "16UC1": (np.dtype(np.uint16), 1),
    "32FC1": (np.dtype(np.float32), 1),
}
COLOUR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC1", "8UC3")


class ImageConversionError(ValueError):
    """An image message that cannot be read as the data it claims to be."""


def image_to_array(msg: Image) -> np.ndarray:
    """View a sensor_msgs/Image as an (H, W[, C]) array, honouring step and endianness."""
    if msg.encoding not in _ENCODINGS:
        raise ImageConversionError(
            f"unsupported image encoding '{msg.encoding}' (supported: {', '.join(_ENCODINGS)})"
        )
    dtype, channels = _ENCODINGS[msg.encoding]
    row_bytes = msg.width * channels * dtype.itemsize
    if msg.width == 0 or msg.height == 0:
        raise ImageConversionError("image has zero width or height")
    if msg.step < row_bytes:
        raise ImageConversionError(f"step {msg.step} is smaller than one row ({row_bytes} bytes)")
    if len(msg.data) < msg.step * msg.height:
        raise ImageConversionError(
            f"image data has {len(msg.data)} bytes, expected {msg.step * msg.height}"
        )
    buffer = np.frombuffer(bytes(msg.data), dtype=np.uint8, count=msg.step * msg.height)
    rows = buffer.reshape(msg.height, msg.step)[:, :row_bytes]
    array = np.ascontiguousarray(rows).view(dtype.newbyteorder(">" if msg.is_bigendian else "<"))
    array = array.astype(dtype, copy=False)
    return array.reshape(msg.height, msg.width, channels) if channels > 1 else array.reshape(
        msg.height, msg.width
    )


def array_to_image(array: np.ndarray, encoding: str, header: Header | None = None) -> Image:
    """Build a sensor_msgs/Image from an array whose dtype and channels match `encoding`."""
    if encoding not in _ENCODINGS:
        raise ImageConversionError(f"unsupported image encoding '{encoding}'")
    dtype, channels = _ENCODINGS[encoding]
    array = np.ascontiguousarray(array, dtype=dtype)
    if array.ndim != (2 if channels == 1 else 3) or (channels > 1 and array.shape[2] != channels):
        raise ImageConversionError(f"array of shape {array.shape} does not fit encoding {encoding}")
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(msg.width * channels * dtype.itemsize)
    msg.data = array.tobytes()
    return msg


def colour_to_rgb(array: np.ndarray, encoding: str) -> np.ndarray:
    """Any supported colour encoding as (H, W, 3) uint8 RGB, the order the model expects."""
    if encoding == "rgb8" or encoding == "8UC3":
        return array
    if encoding == "bgr8":
        return cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
    if encoding == "rgba8":
        return cv2.cvtColor(array, cv2.COLOR_RGBA2RGB)
    if encoding == "bgra8":
        return cv2.cvtColor(array, cv2.COLOR_BGRA2RGB)
    if encoding in ("mono8", "8UC1"):
        return cv2.cvtColor(array, cv2.COLOR_GRAY2RGB)
    raise ImageConversionError(
        f"encoding '{encoding}' is not a colour image (supported: {', '.join(COLOUR_ENCODINGS)})"
    )


def image_msg_to_rgb(msg: Image) -> np.ndarray:
    """A colour sensor_msgs/Image as (H, W, 3) uint8 RGB."""
    return colour_to_rgb(image_to_array(msg), msg.encoding)


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    """Decode a JPEG/PNG sensor_msgs/CompressedImage to (H, W, 3) uint8 RGB."""
    data = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise ImageConversionError(f"cannot decode compressed image (format '{msg.format}')")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def rgb_to_compressed(rgb: np.ndarray, header: Header | None = None, fmt: str = "jpeg") -> (
    CompressedImage
):
    """Encode an RGB array as a CompressedImage (used by tests and the simulator)."""
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", bgr)
    if not ok:
        raise ImageConversionError(f"cannot encode image as {fmt}")
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = f"rgb8; {fmt} compressed bgr8"
    msg.data = encoded.tobytes()
    return msg


def intrinsics_from_camera_info(msg: CameraInfo) -> CameraIntrinsics:
    """Pinhole intrinsics from CameraInfo.K; rejects uncalibrated (all-zero) or sizeless infos."""
    fx, fy, cx, cy = float(msg.k[0]), float(msg.k[4]), float(msg.k[2]), float(msg.k[5])
    if not (fx > 0 and fy > 0):
        raise ImageConversionError("camera_info has no calibration (K has a zero focal length)")
    if msg.width == 0 or msg.height == 0:
        raise ImageConversionError("camera_info has zero width or height")
    return CameraIntrinsics(fx=fx, fy=fy, cx=cx, cy=cy, width=msg.width, height=msg.height)


def camera_info_from_intrinsics(k: CameraIntrinsics, header: Header | None = None) -> CameraInfo:
    """A distortion-free CameraInfo (plumb_bob, D = 0) for the given intrinsics."""
    msg = CameraInfo()
    if header is not None:
        msg.header = header
    msg.width, msg.height = k.width, k.height
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = [k.fx, 0.0, k.cx, 0.0, k.fy, k.cy, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [k.fx, 0.0, k.cx, 0.0, 0.0, k.fy, k.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg
