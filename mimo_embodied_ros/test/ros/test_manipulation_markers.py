"""Pick-and-place targets as messages: pose round trips, PickPlaceTarget fields, RViz markers."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from mimo_embodied_ros.core.grasp import Grasp, ObjectEstimate
from mimo_embodied_ros.core.pickplace import Pose, plan_pick_place
from mimo_embodied_ros.ros import manipulation_markers as mm


def grasp(with_object: bool = True) -> Grasp:
    obj = ObjectEstimate(center=np.array([0.5, 0.1, 0.02]), size=np.array([0.06, 0.04, 0.04]),
                         yaw=0.3, top_z=0.04, support_z=0.0, num_points=500)
    return Grasp(position=np.array([0.5, 0.1, 0.025]),
                 quaternion_xyzw=Rotation.from_euler("xz", [np.pi, 0.3]).as_quat(),
                 approach="top_down", open_width=0.055, object_width=0.04,
                 object=obj if with_object else None)


def test_pose_round_trip() -> None:
    quaternion = Rotation.from_euler("xyz", [0.1, -0.2, 0.3]).as_quat()
    pose = Pose(np.array([0.1, -0.2, 0.3]), quaternion)
    back = mm.pose_from_msg(mm.pose_to_msg(pose))
    np.testing.assert_allclose(back.position, pose.position)
    np.testing.assert_allclose(back.quaternion_xyzw, quaternion)


def test_target_message_carries_every_stage_and_the_box() -> None:
    g = grasp()
    poses = plan_pick_place(g, np.array([0.4, -0.2, 0.0]))
    header = Header(frame_id="panda_link0")
    header.stamp.sec = 12
    target = mm.target_msg(header, poses, g, g.position, np.array([0.4, -0.2, 0.0]),
                           "the red cube", "the bowl")
    assert target.header.stamp.sec == 12 and target.approach == "top_down"
    for name, pose in poses.named():
        np.testing.assert_allclose(mm.pose_from_msg(getattr(target, name)).position,
                                   pose.position)
    assert target.object_box_valid and abs(target.object_size.x - 0.06) < 1e-12
    o = target.object_center.orientation
    yaw = Rotation.from_quat([o.x, o.y, o.z, o.w]).as_euler("xyz")[2]
    assert abs(yaw - 0.3) < 1e-9
    assert target.gripper_open_width == 0.055 and target.place_description == "the bowl"


def test_markers_axes_points_and_box() -> None:
    g = grasp()
    poses = plan_pick_place(g, np.array([0.4, -0.2, 0.0]))
    target = mm.target_msg(Header(frame_id="panda_link0"), poses, g, g.position,
                           np.array([0.4, -0.2, 0.0]))
    markers = mm.markers_msg(target).markers
    assert markers[0].action == Marker.DELETEALL
    added = markers[1:]
    assert len({m.id for m in added}) == len(added)
    # 6 poses x (3 axes + approach arrow + label) + 2 points + 1 box
    assert len(added) == 6 * 5 + 2 + 1
    grasp_z_axis = next(m for m in added if m.ns == "pick_place/axes/grasp" and m.color.b > 0.9)
    start, end = (np.array([p.x, p.y, p.z]) for p in grasp_z_axis.points)
    assert (end - start)[2] < -0.05  # the approach axis points down for a top-down grasp
    box = next(m for m in added if m.type == Marker.CUBE)
    assert abs(box.scale.z - 0.04) < 1e-12
    no_box = mm.target_msg(Header(), poses, grasp(with_object=False), g.position, g.position)
    assert not any(m.type == Marker.CUBE for m in mm.markers_msg(no_box).markers)
