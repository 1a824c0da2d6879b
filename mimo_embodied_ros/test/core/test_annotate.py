"""The debug image drawing: points, 2D boxes, projected 3D boxes, caption."""

from __future__ import annotations

import numpy as np

from mimo_embodied_ros.core.annotate import (
    CUBOID_COLOUR,
    CUBOID_EDGES,
    INVALID_COLOUR,
    POINT_COLOUR,
    annotate,
)
from mimo_embodied_ros.core.boxes3d import Box3D
from mimo_embodied_ros.core.depth import project
from mimo_embodied_ros.core.types import CameraIntrinsics

K = CameraIntrinsics(fx=500.0, fy=500.0, cx=319.5, cy=239.5, width=640, height=480)


def colour_count(image: np.ndarray, colour: tuple[int, int, int]) -> int:
    return int(np.count_nonzero(np.all(image == colour, axis=-1)))


def test_points_are_drawn_in_the_colour_of_their_depth_validity():
    blank = np.zeros((480, 640, 3), np.uint8)
    drawn = annotate(blank, points=[(100.0, 100.0, True, "a"), (300.0, 300.0, False, "b")])
    assert np.any(drawn[95:106, 95:106] == POINT_COLOUR)
    assert colour_count(drawn[290:311, 290:311], INVALID_COLOUR) > 0
    assert not blank.any(), "the source image must not be modified"


def test_non_finite_points_and_boxes_are_skipped():
    blank = np.zeros((48, 64, 3), np.uint8)
    drawn = annotate(blank, points=[(np.nan, 3.0, True, "")], boxes=[((np.nan, 0, 5, 5), True, "")])
    assert not drawn.any()


def test_a_cuboid_has_twelve_edges_drawn_between_its_projected_corners():
    assert len(CUBOID_EDGES) == 12
    box = Box3D(center=np.array([0.0, 0.0, 1.0]), rotation=np.eye(3),
                size=np.array([0.2, 0.1, 0.1]), method="test", num_points=100)
    corners = project(box.corners(), K)
    drawn = annotate(np.zeros((480, 640, 3), np.uint8), cuboids=[corners])
    # Antialiased lines blend into the background: look for the cuboid colour's hue.
    lines = (drawn[..., 2] > 100) & (drawn[..., 0] == 0)
    assert np.count_nonzero(lines) > 200
    assert CUBOID_COLOUR[0] == 0 and CUBOID_COLOUR[2] > 100
    # The projected front face spans 0.2 m * 500 / 0.95 m ~ 105 px wide around the centre.
    columns = np.nonzero(np.any(lines, axis=0))[0]
    assert abs(columns.min() - (319.5 - 0.1 * 500 / 0.95)) <= 2
    assert abs(columns.max() - (319.5 + 0.1 * 500 / 0.95)) <= 2


def test_huge_and_far_coordinates_are_clipped_not_raised():
    """A box corner of 3e10 or 1e30 (hostile model output) must not reach cv2 as an int."""
    blank = np.zeros((120, 160, 3), np.uint8)
    drawn = annotate(
        blank,
        points=[(3e10, 5.0, True, "far"), (-1e30, 1e30, False, "\ud800")],
        boxes=[((10.0, 10.0, 3e10, 40.0), True, "\ud800 huge"), ((-1e30, 5, 1e30, 9), False, "")],
        cuboids=[np.full((8, 2), 1e30)],
        caption="\ud800 caption",
    )
    green = (drawn[..., 1] > 150) & (drawn[..., 0] < 80)
    assert green[10:42, 8:160].sum() > 50  # the box is drawn, clipped to the image
    assert not drawn[60:, :].any()  # nothing drawn where no box or point lies
