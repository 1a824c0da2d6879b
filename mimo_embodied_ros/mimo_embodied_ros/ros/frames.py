"""Camera messages -> the ROS-free Frame a query runs on (perception.Frame)."""

from __future__ import annotations

from sensor_msgs.msg import CompressedImage, Image

from mimo_embodied_ros.core.depth import depth_to_metres
from mimo_embodied_ros.perception import Frame
from mimo_embodied_ros.ros.images import (
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
