"""Ground truth of the pick-and-place world (a mixin of PickPlaceWorld): objects, receptacles,
success, the camera model, rendering, segmentation, oracle answers; and a scripted reference
pick-and-place that uses the world's truth directly."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from mimo_embodied_ros.core.types import ImageSize
from mimo_embodied_sim.answers import pointing_answer
from mimo_embodied_sim.pickplace_kinematics import (
    quat_xyzw_to_matrix,
    top_down_quaternion,
)
from mimo_embodied_sim.pickplace_scene import (
    GRASPABLES,
    GRIPPER_MAX_WIDTH_M,
    RECEPTACLES,
    _body_name,
    _Item,
)
from mimo_embodied_sim.sim_common import RenderCache
from mimo_embodied_sim.tabletop import mujoco

if TYPE_CHECKING:
    from mimo_embodied_sim.pickplace import PickPlaceWorld


class GroundTruth(RenderCache):
    """Scene truth, camera and rendering; PickPlaceWorld supplies the model and data."""

    # -- scene truth --------------------------------------------------------------------------

    def object_names(self) -> list[str]:
        return [item.name for item in GRASPABLES]

    def receptacle_names(self) -> list[str]:
        return [item.name for item in RECEPTACLES]

    def task(self) -> tuple[str, str]:
        """(object, receptacle) of this episode: move the object into the receptacle."""
        return self._task

    def task_instruction(self) -> str:
        return f"put the {self._task[0]} in the {self._task[1]}"

    def item_size(self, name: str) -> tuple[float, float]:
        """(footprint radius, height) of an object or receptacle, metres."""
        item = self._item(name)
        return item.footprint_radius, item.height

    def receptacle_floor_height(self, name: str) -> float:
        """Height of a receptacle's inner floor above its origin (the table top), metres."""
        return self._item(name).floor_top

    def _item(self, name: str) -> _Item:
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(f"no object or receptacle '{name}' (known: "
                           f"{', '.join(self._items)})") from None

    def object_pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(position (3,), quaternion_xyzw (4,)) of an item's origin (its bottom centre)."""
        body = self._item_body[self._item(name).name]
        with self._lock:
            quat_wxyz = self.data.xquat[body]
            return self.data.xpos[body].copy(), np.array([*quat_wxyz[1:], quat_wxyz[0]])

    def object_center(self, name: str) -> np.ndarray:
        """Centre of a graspable object's shape (half its height above its origin)."""
        position, quaternion = self.object_pose(name)
        return position + quat_xyzw_to_matrix(quaternion)[:, 2] * self._item(name).height / 2

    def object_speed(self, name: str) -> float:
        body = self._item_body[self._item(name).name]
        with self._lock:
            velocity = np.zeros(6)
            mujoco.mj_objectVelocity(self.model, self.data, mujoco.mjtObj.mjOBJ_BODY, body,
                                     velocity, 0)
            return float(np.linalg.norm(velocity[3:]))

    def in_receptacle(self, object_name: str, receptacle_name: str) -> tuple[bool, str]:
        """Whether the object rests inside the receptacle: its centre over the inner floor, low
        (bottom near the floor) and still."""
        receptacle = self._item(receptacle_name)
        centre = self.object_center(object_name)
        origin, quaternion = self.object_pose(receptacle_name)
        local = quat_xyzw_to_matrix(quaternion).T @ (centre - origin)
        if receptacle.inner_radius > 0:
            inside = math.hypot(local[0], local[1]) <= receptacle.inner_radius
        else:
            inside = abs(local[0]) <= receptacle.inner_half[0] and \
                abs(local[1]) <= receptacle.inner_half[1]
        obj = self._item(object_name)
        height_above_floor = local[2] - receptacle.floor_top
        low = height_above_floor < obj.height / 2 + 0.015
        speed = self.object_speed(object_name)
        still = speed < 0.02
        where = f"({local[0]:+.3f}, {local[1]:+.3f}, {height_above_floor:+.3f}) m from the " \
                f"{receptacle_name}'s floor centre, speed {speed:.3f} m/s"
        if inside and low and still:
            return True, f"the {object_name} rests in the {receptacle_name}: {where}"
        reason = "not over the inner floor" if not inside else "not down on the floor" \
            if not low else "still moving"
        return False, f"the {object_name} is {reason}: {where}"

    def success(self) -> tuple[bool, str]:
        """The episode's success rule: the task's object rests inside the task's receptacle."""
        return self.in_receptacle(*self._task)

    def move_object(self, name: str, position: np.ndarray, yaw_rad: float = 0.0) -> None:
        """Teleport a graspable object (origin = bottom centre) and stop it (tests, scripts)."""
        if not self._item(name).graspable:
            raise ValueError(f"'{name}' is fixed to the table")
        joint = self.model.joint(f"{_body_name(name)}/joint")
        with self._lock:
            adr, dof = joint.qposadr[0], joint.dofadr[0]
            self.data.qpos[adr: adr + 3] = position
            self.data.qpos[adr + 3: adr + 7] = (math.cos(yaw_rad / 2), 0.0, 0.0,
                                                math.sin(yaw_rad / 2))
            self.data.qvel[dof: dof + 6] = 0.0
            mujoco.mj_forward(self.model, self.data)
            self._version += 1

    # -- camera -------------------------------------------------------------------------------

    def camera_rotation_base(self) -> tuple[np.ndarray, np.ndarray]:
        """(position, 3x3 rotation) of the optical frame; columns = optical x, y, z axes."""
        with self._lock:
            position = self.data.cam_xpos[self._camera_id].copy()
            mujoco_axes = self.data.cam_xmat[self._camera_id].reshape(3, 3)
            return position, mujoco_axes @ np.diag([1.0, -1.0, -1.0])

    def camera_pose_base(self) -> tuple[np.ndarray, np.ndarray]:
        """(translation (3,), quaternion_xyzw (4,)) of the optical frame in panda_link0."""
        position, rotation = self.camera_rotation_base()
        return position, Rotation.from_matrix(rotation).as_quat()

    def project(self, points_base: np.ndarray) -> np.ndarray:
        """(N, 2) or (2,) pixels (u, v) of base-frame points."""
        position, rotation = self.camera_rotation_base()
        camera = (np.asarray(points_base, dtype=float) - position) @ rotation
        k = self.intrinsics()
        return np.stack((k.fx * camera[..., 0] / camera[..., 2] + k.cx,
                         k.fy * camera[..., 1] / camera[..., 2] + k.cy), axis=-1)

    def pixels_to_base(self, u: np.ndarray, v: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Back-project pixels with z-depth to base-frame points (..., 3)."""
        k = self.intrinsics()
        camera = np.stack(((u - k.cx) * depth / k.fx, (v - k.cy) * depth / k.fy, depth), axis=-1)
        position, rotation = self.camera_rotation_base()
        return camera @ rotation.T + position

    # -- rendering ----------------------------------------------------------------------------

    def render_rgbd(self) -> tuple[np.ndarray, np.ndarray]:
        """Colour (H, W, 3) uint8 RGB and z-depth (H, W) float32 metres (NaN = no hit)."""
        with self._lock:
            rgb = self._cached("colour", self._renderer.colour)
            depth = self._cached("geometry", self._renderer.geometry)[0]
            return rgb.copy(), depth.copy()

    def render_geom_segmentation(self) -> np.ndarray:
        """(H, W) int32 MuJoCo geom ids, -1 where none."""
        return self._cached("geometry", self._renderer.geometry)[1].copy()

    def render_segmentation(self) -> np.ndarray:
        """(H, W) int32: 0 table/floor/nothing, i + 1 for object_names() + receptacle_names()
        item i, ROBOT_SEGMENT_ID for the arm."""
        geoms = self.render_geom_segmentation()
        return np.where(geoms >= 0, self._segment_of_geom[np.maximum(geoms, 0)], 0).astype(
            np.int32)

    def segment_id(self, name: str) -> int:
        return (self.object_names() + self.receptacle_names()).index(self._item(name).name) + 1

    def mask(self, name: str) -> np.ndarray:
        """(H, W) bool visible pixels of an object or receptacle."""
        return self.render_segmentation() == self.segment_id(name)

    def pick_pixel(self, name: str) -> tuple[float, float]:
        """A visible pixel to point at: an object's top face near its centre, a receptacle's
        inner floor centre. Raises ValueError when nothing suitable is visible."""
        item = self._item(name)
        with self._lock:
            if item.graspable:
                candidates = self.mask(name)
                _, depth = self.render_rgbd()
                rows, cols = np.nonzero(candidates)
                if rows.size:
                    heights = self.pixels_to_base(cols.astype(float), rows.astype(float),
                                                  depth[rows, cols])[:, 2]
                    top = heights > float(np.nanmax(heights)) - 0.006
                    face = np.zeros_like(candidates)
                    face[rows[top], cols[top]] = True
                    candidates = face
                goal = self.project(self.object_center(name) +
                                    np.array([0.0, 0.0, item.height / 2]))
            else:
                candidates = self.render_geom_segmentation() == self._floor_geom[name]
                origin, _ = self.object_pose(name)
                goal = self.project(origin + np.array([0.0, 0.0, item.floor_top]))
        interior = cv2.erode(candidates.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        if interior.sum() >= 4:
            candidates = interior
        rows, cols = np.nonzero(candidates)
        if rows.size == 0:
            raise ValueError(f"'{name}' is not visible from the camera")
        nearest = int(np.argmin((cols - goal[0]) ** 2 + (rows - goal[1]) ** 2))
        return float(cols[nearest]), float(rows[nearest])

    def oracle_answers(self, resized_size: ImageSize | tuple[int, int], noise_px: float = 0.0,
                       seed: int = 0) -> dict[str, str]:
        """Scripted-model answers from ground truth: NAME and 'the NAME' -> pointing answer at
        pick_pixel(NAME) in resized-image pixels ('[]' points when not visible)."""
        source = ImageSize(self.width, self.height)
        answers: dict[str, str] = {}
        for index, name in enumerate(self.object_names() + self.receptacle_names()):
            try:
                points = [self.pick_pixel(name)]
                reasoning = f"I can see the {name}; I point at " + (
                    "the middle of its top face." if self._item(name).graspable
                    else "the middle of its inside, where things can be put.")
            except ValueError:
                points, reasoning = [], f"I cannot see a {name} in the image."
            answer = pointing_answer(points, source, resized_size, name, noise_px=noise_px,
                                     seed=seed * 1000 + index, reasoning=reasoning)
            answers[name] = answer
            answers[f"the {name}"] = answer
        return answers


def scripted_pick_and_place(world: PickPlaceWorld, approach_height_m: float = 0.12,
                            clearance_m: float = 0.02) -> tuple[bool, str]:
    """Do the episode's task from ground truth with top-down grasps (a reference for tests and
    timing; the real stack computes the same stages from the camera). Returns success()."""
    object_name, receptacle_name = world.task()
    centre = world.object_center(object_name)
    _, quaternion = world.object_pose(object_name)
    down = top_down_quaternion(float(Rotation.from_quat(quaternion).as_euler("xyz")[2]))
    receptacle_origin, _ = world.object_pose(receptacle_name)
    _, object_height = world.item_size(object_name)
    floor_top = world.receptacle_floor_height(receptacle_name)
    place = receptacle_origin + np.array([0.0, 0.0, floor_top + object_height / 2 + clearance_m])
    above_place = receptacle_origin + np.array([0.0, 0.0, approach_height_m + 0.03])
    stages = (
        ("open", dict(gripper_width=GRIPPER_MAX_WIDTH_M)),
        ("pre-grasp", dict(position=centre + [0.0, 0.0, approach_height_m],
                           quaternion_xyzw=down)),
        ("grasp", dict(position=centre, quaternion_xyzw=down, cartesian=True)),
        ("close", dict(gripper_width=0.0)),
        ("lift", dict(position=centre + [0.0, 0.0, approach_height_m + 0.03],
                      quaternion_xyzw=down, cartesian=True)),
        ("pre-place", dict(position=above_place, quaternion_xyzw=down)),
        ("place", dict(position=place, quaternion_xyzw=down, cartesian=True)),
        ("release", dict(gripper_width=GRIPPER_MAX_WIDTH_M)),
        ("retreat", dict(position=above_place, quaternion_xyzw=down, cartesian=True)),
    )
    for stage, command in stages:
        status = world.execute(**command)
        if stage == "close" and status.stalled:  # fingers stopped short: on the object?
            pass
        elif not status.success:
            return False, f"{stage} failed: {status.message}"
        if stage == "close" and not world.holding:
            return False, "close: the fingers did not stop on the object"
    world.go_home()
    world.step(int(0.5 / world.timestep))
    return world.success()
