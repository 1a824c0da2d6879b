"""The apartment's ground truth: rooms and objects, the success rule, what the camera sees, and
the oracle answers the scripted model gives (a mixin of ApartmentWorld).
"""

from __future__ import annotations

import json
import math

import cv2
import numpy as np

from mimo_embodied_ros.core.navmap import world_to_map_pixel
from mimo_embodied_ros.core.prompts import visibility_question
from mimo_embodied_ros.core.types import ImageSize
from mimo_embodied_sim.answers import pointing_answer, to_resized_pixel
from mimo_embodied_sim.apartment_scene import ROOMS, InstructionEntry, ObjectTruth, _wrap


class ApartmentTruth:
    """Ground truth and oracle answers of the apartment."""

    SUCCESS_DISTANCE_M = 1.0
    SUCCESS_ANGLE_RAD = math.radians(30.0)

    def room_at(self, x: float, y: float) -> str | None:
        for room in ROOMS:
            if room.contains(x, y):
                return room.name
        return None

    def object_truth(self, name: str) -> ObjectTruth:
        try:
            item = self._furniture[name]
        except KeyError:
            raise KeyError(f"no object '{name}' (targets: {', '.join(self._target_names)})") \
                from None
        lows, highs = zip(*(part.bounds() for part in item.parts), strict=True)
        low, high = np.min(lows, axis=0), np.max(highs, axis=0)
        object_id = self._target_names.index(name) + 1 if item.target else 0
        return ObjectTruth(name, item.room, object_id, (low + high) / 2, low[:2], high[:2],
                           float(high[2]), item.parts)

    def evaluate(self, target_name: str) -> tuple[bool, dict]:
        """The issue's success rule: the base centre within 1.0 m of the object's footprint (its
        nearest surface), facing it within 30 deg (the heading is at most 30 deg from a direction
        that meets the footprint), and no collision in the episode so far."""
        truth = self.object_truth(target_name)
        x, y, yaw = self.pose()
        distance = truth.distance(x, y)
        heading_error = truth.heading_error(x, y, yaw)
        centre = truth.center[:2]
        details = {
            "target": target_name, "distance_m": distance,
            "heading_error_deg": math.degrees(heading_error),
            "center_angle_deg": math.degrees(
                abs(_wrap(math.atan2(centre[1] - y, centre[0] - x) - yaw))),
            "collisions": self.collisions, "pose": (x, y, yaw),
            "room": self.room_at(x, y),
        }
        success = (distance <= self.SUCCESS_DISTANCE_M and heading_error <= self.SUCCESS_ANGLE_RAD
                   and self.collisions == 0)
        return success, details

    def visible_targets(self) -> dict[str, np.ndarray]:
        """name -> (H, W) bool mask of its pixels with depth within range, for every target
        with at least min_visible_pixels such pixels."""
        with self._lock:
            _, depth = self.render_rgbd()
            segmentation = self.render_segmentation()
        in_range = np.isfinite(depth) & (depth <= self.max_visible_range_m)
        visible = {}
        for object_id, name in enumerate(self._target_names, start=1):
            mask = (segmentation == object_id) & in_range
            if int(mask.sum()) >= self.min_visible_pixels:
                visible[name] = mask
        return visible

    @staticmethod
    def interior_pixel(mask: np.ndarray) -> tuple[int, int]:
        """(u, v) of the mask pixel farthest from its border (distance-transform maximum).

        The image edge counts as border: an object cut by the frame is pointed at in the middle
        of its visible part, as a model would, not at the edge pixel nearest its hidden centre."""
        padded = cv2.copyMakeBorder(mask.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, 0)
        distance = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]
        row, col = np.unravel_index(int(np.argmax(distance)), distance.shape)
        return int(col), int(row)

    # -- oracle answers -----------------------------------------------------------------------

    def region_answer(self, entry: InstructionEntry, map_resized: ImageSize,
                      map_pixels_per_cell: int, noise_px: float = 0.0, seed: int = 0) -> str:
        """'<think>reasoning</think>[{"points": [[x, y]], "label": room, "target": object}]' on
        the navigator's map image (render_map_image at map_pixels_per_cell, then smart-resize)."""
        room = self.rooms[entry.room]
        u, v = world_to_map_pixel(self._spec, *room.center, map_pixels_per_cell)
        if noise_px > 0.0:
            u, v = np.array([u, v]) + np.random.default_rng(seed).normal(0.0, noise_px, 2)
        source = ImageSize(self._spec.width * map_pixels_per_cell,
                           self._spec.height * map_pixels_per_cell)
        x, y = to_resized_pixel(u, v, source, map_resized)
        body = json.dumps([{"points": [[x, y]], "label": entry.room, "target": entry.target}],
                          ensure_ascii=False)
        return f"<think>\n{entry.reasoning}\n</think>\n{body}"

    def oracle_answers(self, camera_resized: ImageSize, map_resized: ImageSize,
                       map_pixels_per_cell: int, noise_px: float = 0.0,
                       seed: int = 0) -> dict[str, str]:
        """Every answer the navigation stack may ask about the current state, keyed by the exact
        instruction: region answers for the instruction table; for each target NAME, NAME and
        'the NAME' (pointing at an interior mask pixel with valid depth, or [] when not visible)
        and visibility_question(NAME) (\\boxed{yes} / \\boxed{no})."""
        answers: dict[str, str] = {}
        for index, entry in enumerate(self._instructions):
            answers[entry.instruction] = self.region_answer(
                entry, map_resized, map_pixels_per_cell, noise_px, seed * 1000 + index)
        visible = self.visible_targets()
        camera_source = ImageSize(self.width, self.height)
        for index, name in enumerate(self._target_names):
            if name in visible:
                pixel = self.interior_pixel(visible[name])
                pointing = pointing_answer(
                    [pixel], camera_source, camera_resized, name, noise_px=noise_px,
                    seed=seed * 1000 + 100 + index,
                    reasoning=f"I can see the {name} in the image; I point at its middle.")
                seen = (f"<think>\nI can see a {name} in this view.\n</think>\n"
                        "\\boxed{yes}")
            else:
                pointing = (f"<think>\nI cannot see a {name} in this view.\n</think>\n[]")
                seen = f"<think>\nThere is no {name} in this view.\n</think>\n\\boxed{{no}}"
            answers[name] = pointing
            answers[f"the {name}"] = pointing
            answers[visibility_question(name)] = seen
        return answers
