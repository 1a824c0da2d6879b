"""RViz markers and NavigationGoal messages for the navigator's goals and target points."""

from __future__ import annotations

from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose, PoseStamped, Quaternion, Vector3
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from mimo_embodied_msgs.msg import NavigationGoal
from mimo_embodied_ros.core.navmap import NamedRegion, yaw_to_quaternion
from mimo_embodied_ros.ros.conversions import ros_text

STAGE_REGION = "map_region"
STAGE_TARGET = "egocentric_target"

# Colours per stage: region goals blue, target goals green, model points magenta.
_GOAL_COLOURS = {
    STAGE_REGION: ColorRGBA(r=0.2, g=0.4, b=1.0, a=0.9),
    STAGE_TARGET: ColorRGBA(r=0.1, g=0.9, b=0.2, a=0.9),
}
_POINT_COLOUR = ColorRGBA(r=1.0, g=0.0, b=1.0, a=0.9)
_TEXT_COLOUR = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
_REGION_COLOUR = ColorRGBA(r=0.1, g=0.35, b=0.8, a=0.8)


def planar_pose(x: float, y: float, yaw: float) -> Pose:
    """A geometry_msgs/Pose on the floor (z = 0) with heading ``yaw``."""
    qx, qy, qz, qw = yaw_to_quaternion(yaw)
    return Pose(position=Point(x=float(x), y=float(y), z=0.0),
                orientation=Quaternion(x=qx, y=qy, z=qz, w=qw))


def pose_stamped(frame_id: str, stamp: Time, pose: Pose) -> PoseStamped:
    return PoseStamped(header=Header(frame_id=frame_id, stamp=stamp), pose=pose)


def navigation_goal_msg(
    header: Header,
    stage: str,
    target: str,
    region: str,
    goal: Pose,
    target_point: Point,
    reasoning: str = "",
) -> NavigationGoal:
    """The ~/goals message of one stage (STAGE_REGION or STAGE_TARGET)."""
    return NavigationGoal(
        header=header, stage=stage, target=ros_text(target), region=ros_text(region), goal=goal,
        target_point=target_point, reasoning=ros_text(reasoning),
    )


def goal_markers(goal: NavigationGoal, marker_id: int = 0) -> list[Marker]:
    """An arrow at the goal pose, a sphere at the model's point, a label above it."""
    colour = _GOAL_COLOURS.get(goal.stage, _POINT_COLOUR)
    point_pose = Pose(position=goal.target_point, orientation=Quaternion(w=1.0))
    label_pose = Pose(position=Point(x=goal.target_point.x, y=goal.target_point.y,
                                     z=goal.target_point.z + 0.4), orientation=Quaternion(w=1.0))
    text = goal.target if goal.stage == STAGE_TARGET else f"{goal.region} -> {goal.target}"
    return [
        Marker(header=goal.header, ns=f"{goal.stage}/goal", id=marker_id, type=Marker.ARROW,
               action=Marker.ADD, pose=goal.goal, scale=Vector3(x=0.5, y=0.08, z=0.08),
               color=colour),
        Marker(header=goal.header, ns=f"{goal.stage}/point", id=marker_id, type=Marker.SPHERE,
               action=Marker.ADD, pose=point_pose, scale=Vector3(x=0.15, y=0.15, z=0.15),
               color=_POINT_COLOUR),
        Marker(header=goal.header, ns=f"{goal.stage}/label", id=marker_id,
               type=Marker.TEXT_VIEW_FACING, action=Marker.ADD, pose=label_pose,
               scale=Vector3(z=0.25), color=_TEXT_COLOUR, text=text or goal.stage),
    ]


def region_markers(header: Header, regions: list[NamedRegion]) -> list[Marker]:
    """Outlines (line strips) and names of the configured map regions."""
    markers = []
    for i, region in enumerate(regions):
        corners = [(region.x_min, region.y_min), (region.x_max, region.y_min),
                   (region.x_max, region.y_max), (region.x_min, region.y_max),
                   (region.x_min, region.y_min)]
        markers.append(Marker(
            header=header, ns="regions", id=i, type=Marker.LINE_STRIP, action=Marker.ADD,
            pose=Pose(orientation=Quaternion(w=1.0)), scale=Vector3(x=0.03),
            color=_REGION_COLOUR, points=[Point(x=x, y=y, z=0.01) for x, y in corners],
        ))
        centre = Point(x=(region.x_min + region.x_max) / 2, y=(region.y_min + region.y_max) / 2,
                       z=0.1)
        markers.append(Marker(
            header=header, ns="region_labels", id=i, type=Marker.TEXT_VIEW_FACING,
            action=Marker.ADD, pose=Pose(position=centre, orientation=Quaternion(w=1.0)),
            scale=Vector3(z=0.3), color=_REGION_COLOUR, text=region.name,
        ))
    return markers


def navigation_markers(
    header: Header, goals: list[NavigationGoal], regions: list[NamedRegion]
) -> MarkerArray:
    """Everything of one navigation: a DELETEALL first, then regions and each stage's goal."""
    markers = [Marker(header=header, action=Marker.DELETEALL)]
    markers += region_markers(header, regions)
    for i, goal in enumerate(goals):
        markers += goal_markers(goal, i)
    return MarkerArray(markers=markers)
