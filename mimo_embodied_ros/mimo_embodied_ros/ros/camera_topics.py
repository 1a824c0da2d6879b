"""The camera topics of realsense-ros 4.x with `align_depth.enable:=true`: the nodes' defaults
(config/*.yaml) and what the simulated cameras publish, so a simulator stands in for the robot."""

COLOR_TOPIC = "/camera/camera/color/image_raw"
DEPTH_TOPIC = "/camera/camera/aligned_depth_to_color/image_raw"  # registered to colour
CAMERA_INFO_TOPIC = "/camera/camera/color/camera_info"
