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

ALIGNED_TOPIC_HINT = (
    "subscribe to depth registered to colour (realsense-ros 4.x: "
    "/camera/camera/aligned_depth_to_color/image_raw with align_depth.enable:=true; ZED: "
    "depth/depth_registered), or set depth.assume_registered if this stream is registered")


def registration_problem(synced: SyncedFrame) -> str:
    """Why the depth image is not registered to the colour image ('' when it is).

    The frame ids are the only reliable signal: realsense-ros's plain depth stream is in the
    depth camera's frame and field of view even when the resolutions agree.
    """
    if synced.depth is None:
        return ""
    colour, depth = synced.image.header.frame_id, synced.depth.header.frame_id
    if colour == depth:
        return ""
    return (f"depth is in frame '{depth}' but colour in '{colour}': it is not registered to "
            f"colour, so it is not used; {ALIGNED_TOPIC_HINT}")


def frame_from_synced(synced: SyncedFrame, assume_registered: bool = False) -> Frame:
    """Convert a synchronized colour/depth/camera_info triple; ImageConversionError or
    ValueError name what is wrong (encoding, size, units). Depth in another frame than colour
    is left out (Frame.depth_problem says why) unless ``assume_registered``."""
    if isinstance(synced.image, CompressedImage):
        rgb = compressed_to_rgb(synced.image)
    else:
        rgb = image_msg_to_rgb(synced.image)
    depth = None
    problem = "" if assume_registered else registration_problem(synced)
    if synced.depth is not None and not problem:
        depth = depth_to_metres(image_to_array(synced.depth), synced.depth.encoding)
    intrinsics = None
    if synced.camera_info is not None:
        intrinsics = intrinsics_from_camera_info(synced.camera_info)
    return Frame(rgb=rgb, depth_m=depth, intrinsics=intrinsics, depth_problem=problem)


def frame_from_image(image: Image) -> Frame:
    """A frame from an image sent with a request (a rendered map): pixels only."""
    return Frame(rgb=image_msg_to_rgb(image), depth_m=None, intrinsics=None)


def camera_frame(synced: SyncedFrame | None, missing: str | None,
                 camera_info_topic: str | None,
                 assume_registered: bool = False) -> tuple[Frame | None, Header, str]:
    """The frame a camera query runs on, or why there is none (``camera_info_topic`` given when
    camera_info is required: depth is used)."""
    if synced is None:
        return None, Header(), f"no camera frame to answer on: {missing or 'no frame yet'}"
    header = synced.image.header
    if camera_info_topic is not None and synced.camera_info is None:
        return None, header, f"no camera_info received on {camera_info_topic}"
    try:
        return frame_from_synced(synced, assume_registered), header, ""
    except (ImageConversionError, ValueError) as error:
        return None, header, f"camera frame rejected: {error}"


def request_frame(image: Image) -> tuple[Frame | None, Header, str]:
    """The frame of an image sent with a request, or why it cannot be used."""
    try:
        return frame_from_image(image), image.header, ""
    except (ImageConversionError, ValueError) as error:
        return None, image.header, f"request image rejected: {error}"
