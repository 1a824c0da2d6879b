"""sensor_msgs Image / CompressedImage / CameraInfo <-> numpy on real messages, no ROS graph."""

from __future__ import annotations

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from mimo_embodied_ros.core.types import CameraIntrinsics
from mimo_embodied_ros.ros.images import (
    ImageConversionError,
    array_to_image,
    camera_info_from_intrinsics,
    colour_to_rgb,
    compressed_to_rgb,
    image_msg_to_rgb,
    image_to_array,
    intrinsics_from_camera_info,
    rgb_to_compressed,
)

HEIGHT, WIDTH = 6, 5
# encoding -> (dtype, channels); written out here so a change in the module is noticed.
ENCODINGS = {
    "rgb8": (np.uint8, 3),
    "bgr8": (np.uint8, 3),
    "rgba8": (np.uint8, 4),
    "bgra8": (np.uint8, 4),
    "mono8": (np.uint8, 1),
    "8UC1": (np.uint8, 1),
    "8UC3": (np.uint8, 3),
    "mono16": (np.uint16, 1),
    "16UC1": (np.uint16, 1),
    "32FC1": (np.float32, 1),
}


def random_array(encoding: str, seed: int = 0, height: int = HEIGHT, width: int = WIDTH):
    dtype, channels = ENCODINGS[encoding]
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels == 1 else (height, width, channels)
    if dtype is np.float32:
        return rng.uniform(0.2, 9.0, shape).astype(np.float32)
    return rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)


def header(sec: int = 7, frame_id: str = "camera_color_optical_frame") -> Header:
    msg = Header(frame_id=frame_id)
    msg.stamp.sec, msg.stamp.nanosec = sec, 123
    return msg


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_round_trip_every_encoding(encoding):
    array = random_array(encoding)
    msg = array_to_image(array, encoding, header())
    assert (msg.width, msg.height, msg.encoding) == (WIDTH, HEIGHT, encoding)
    assert msg.step * msg.height == len(msg.data)
    assert msg.header.frame_id == "camera_color_optical_frame" and msg.header.stamp.sec == 7
    back = image_to_array(msg)
    assert back.dtype == ENCODINGS[encoding][0]
    np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize("encoding", ["rgb8", "mono16", "32FC1", "bgra8"])
def test_step_padding_is_skipped(encoding):
    array = random_array(encoding, seed=1)
    packed = array_to_image(array, encoding)
    padding = 11  # odd, so rows are not even aligned to the element size
    rows = np.frombuffer(bytes(packed.data), np.uint8).reshape(HEIGHT, packed.step)
    junk = np.full((HEIGHT, padding), 0xAB, np.uint8)
    padded = Image(height=HEIGHT, width=WIDTH, encoding=encoding, step=packed.step + padding,
                   data=np.hstack([rows, junk]).tobytes())
    np.testing.assert_array_equal(image_to_array(padded), array)


@pytest.mark.parametrize(("encoding", "big_endian"), [("16UC1", ">u2"), ("32FC1", ">f4")])
def test_big_endian_data(encoding, big_endian):
    array = random_array(encoding, seed=2)
    msg = Image(height=HEIGHT, width=WIDTH, encoding=encoding, is_bigendian=1,
                step=WIDTH * array.itemsize, data=array.astype(big_endian).tobytes())
    converted = image_to_array(msg)
    assert converted.dtype == ENCODINGS[encoding][0] and converted.dtype.isnative
    np.testing.assert_array_equal(converted, array)
    # The same bytes read as little-endian are different numbers: the flag matters.
    msg.is_bigendian = 0
    assert not np.array_equal(image_to_array(msg), array)


def test_big_endian_16uc1_millimetres_known_value():
    msg = Image(height=1, width=2, encoding="16UC1", is_bigendian=1, step=4,
                data=bytes([0x04, 0xB0, 0x00, 0x01]))  # 1200 mm and 1 mm, big-endian
    np.testing.assert_array_equal(image_to_array(msg), np.array([[1200, 1]], np.uint16))


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (Image(height=4, width=4, encoding="rgb8", step=11, data=bytes(48)), "step 11"),
        (Image(height=4, width=4, encoding="16UC1", step=8, data=bytes(31)), "31 bytes"),
        (Image(height=0, width=4, encoding="rgb8", step=12, data=b""), "zero width or height"),
        (Image(height=4, width=0, encoding="mono8", step=0, data=b""), "zero width or height"),
        (Image(height=2, width=2, encoding="yuv422", step=4, data=bytes(8)), "yuv422"),
    ],
    ids=["step_smaller_than_row", "short_data", "zero_height", "zero_width", "unknown_encoding"],
)
def test_malformed_images_are_rejected(msg, reason):
    with pytest.raises(ImageConversionError, match=reason):
        image_to_array(msg)


def test_array_that_does_not_fit_encoding_is_rejected():
    with pytest.raises(ImageConversionError, match="does not fit"):
        array_to_image(np.zeros((4, 4), np.uint8), "rgb8")
    with pytest.raises(ImageConversionError, match="does not fit"):
        array_to_image(np.zeros((4, 4, 3), np.uint8), "rgba8")
    with pytest.raises(ImageConversionError, match="unsupported"):
        array_to_image(np.zeros((4, 4), np.uint8), "yuv422")


def test_colour_encodings_become_rgb():
    rgb = random_array("rgb8", seed=3)
    alpha = np.full((HEIGHT, WIDTH, 1), 77, np.uint8)
    sources = {
        "rgb8": rgb,
        "8UC3": rgb,
        "bgr8": rgb[..., ::-1],
        "rgba8": np.concatenate([rgb, alpha], axis=2),
        "bgra8": np.concatenate([rgb[..., ::-1], alpha], axis=2),
    }
    for encoding, array in sources.items():
        converted = image_msg_to_rgb(array_to_image(array, encoding))
        assert converted.shape == (HEIGHT, WIDTH, 3), encoding
        np.testing.assert_array_equal(converted, rgb, err_msg=encoding)
    grey = random_array("mono8", seed=4)
    for encoding in ("mono8", "8UC1"):
        converted = image_msg_to_rgb(array_to_image(grey, encoding))
        np.testing.assert_array_equal(converted, np.repeat(grey[..., None], 3, axis=2))


@pytest.mark.parametrize("encoding", ["16UC1", "mono16", "32FC1"])
def test_depth_encodings_are_not_colour(encoding):
    with pytest.raises(ImageConversionError, match="not a colour image"):
        colour_to_rgb(random_array(encoding), encoding)


def test_png_compressed_round_trip_is_exact():
    rgb = random_array("rgb8", seed=5, height=32, width=40)
    msg = rgb_to_compressed(rgb, header(9), fmt="png")
    assert isinstance(msg, CompressedImage) and "png" in msg.format
    assert msg.header.stamp.sec == 9
    np.testing.assert_array_equal(compressed_to_rgb(msg), rgb)


def test_jpeg_compressed_keeps_channel_order():
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[:, :32] = (220, 20, 20)  # red left half
    rgb[:, 32:] = (20, 20, 220)  # blue right half
    decoded = compressed_to_rgb(rgb_to_compressed(rgb, fmt="jpeg"))
    assert decoded.shape == rgb.shape
    assert np.abs(decoded.astype(int) - rgb).mean() < 4.0  # lossy, but close
    assert decoded[24, 8, 0] > 180 and decoded[24, 8, 2] < 60  # still red, not swapped to blue
    assert decoded[24, 56, 2] > 180 and decoded[24, 56, 0] < 60


@pytest.mark.parametrize("data", [b"", b"\xff\xd8 not really a jpeg"], ids=["empty", "garbage"])
def test_undecodable_compressed_image(data):
    with pytest.raises(ImageConversionError, match="cannot decode"):
        compressed_to_rgb(CompressedImage(format="jpeg", data=data))


def test_camera_info_round_trip():
    k = CameraIntrinsics(fx=615.2, fy=614.8, cx=321.4, cy=238.9, width=640, height=480)
    msg = camera_info_from_intrinsics(k, header(3))
    assert isinstance(msg, CameraInfo) and msg.header.stamp.sec == 3
    assert list(msg.k) == [615.2, 0.0, 321.4, 0.0, 614.8, 238.9, 0.0, 0.0, 1.0]
    assert msg.p[0] == 615.2 and msg.p[2] == 321.4 and msg.p[5] == 614.8 and msg.p[6] == 238.9
    assert list(msg.d) == [0.0] * 5 and msg.distortion_model == "plumb_bob"
    assert intrinsics_from_camera_info(msg) == k


def test_camera_info_reads_k_not_p():
    msg = camera_info_from_intrinsics(
        CameraIntrinsics(fx=500.0, fy=510.0, cx=300.0, cy=200.0, width=600, height=400)
    )
    msg.p = [1.0] * 12  # a rectified projection that differs from K must not be used
    read = intrinsics_from_camera_info(msg)
    assert (read.fx, read.fy, read.cx, read.cy) == (500.0, 510.0, 300.0, 200.0)


def test_uncalibrated_camera_info_is_rejected():
    uncalibrated = CameraInfo(width=640, height=480)  # K all zeros, as drivers publish it
    with pytest.raises(ImageConversionError, match="no calibration"):
        intrinsics_from_camera_info(uncalibrated)
    sizeless = camera_info_from_intrinsics(
        CameraIntrinsics(fx=500.0, fy=500.0, cx=320.0, cy=240.0, width=640, height=480)
    )
    sizeless.width = 0
    with pytest.raises(ImageConversionError, match="zero width or height"):
        intrinsics_from_camera_info(sizeless)
