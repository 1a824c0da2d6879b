"""Camera messages -> the ROS-free Frame a query runs on (perception.Frame)."""

from __future__ import annotations

from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from mimo_embodied_ros.core.depth import depth_to_metres
from mimo_embodied_ros.perception import Frame
from mimo_embodied_ros.ros.images import (
    ImageConversionError,
    compressed_to_rgb,
    image_msg_to_rgb,
    image_to_array,
    intrinsics_from_camera_info,
)
from mimo_embodied_ros.ros.sync import SyncedFrame


def frame_from_synced(synced: SyncedFrame) -> Frame:
    """Convert a synchronized colour/depth/camera_info triple; ImageConversionError or
    ValueError name what is wrong (encoding, size, units)."""
    if isinstance(synced.image, CompressedImage):
        rgb = compressed_to_rgb(synced.image)
    else:
        rgb = image_msg_to_rgb(synced.image)
    depth = None
    if synced.depth is not None:
        depth = depth_to_metres(image_to_array(synced.depth), synced.depth.encoding)
    intrinsics = None
    if synced.camera_info is not None:
        intrinsics = intrinsics_from_camera_info(synced.camera_info)
    return Frame(rgb=rgb, depth_m=depth, intrinsics=intrinsics)


def frame_from_image(image: Image) -> Frame:
    """A frame from an image sent with a request (a rendered map): pixels only."""
    return Frame(rgb=image_msg_to_rgb(image), depth_m=None, intrinsics=None)


def camera_frame(synced: SyncedFrame | None, missing: str | None,
                 camera_info_topic: str | None) -> tuple[Frame | None, Header, str]:
    """The frame a camera query runs on, or why there is none (``camera_info_topic`` given when
    camera_info is required: depth is used)."""
    if synced is None:
        return None, Header(), f"no camera frame to answer on: {missing or 'no frame yet'}"
    header = synced.image.header
    if camera_info_topic is not None and synced.camera_info is None:
        return None, header, f"no camera_info received on {camera_info_topic}"
    try:
        return frame_from_synced(synced), header, ""
    except (ImageConversionError, ValueError) as error:
        return None, header, f"camera frame rejected: {error}"


def request_frame(image: Image) -> tuple[Frame | None, Header, str]:
    """The frame of an image sent with a request, or why it cannot be used."""
    try:
        return frame_from_image(image), image.header, ""
    except (ImageConversionError, ValueError) as error:
        return None, image.header, f"request image rejected: {error}"
