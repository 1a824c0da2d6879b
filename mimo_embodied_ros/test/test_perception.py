"""run_query end to end without ROS: the real ScriptedBackend answering on synthetic RGB-D frames.

The scene is ray-cast here: a camera looking down at a table at 50 degrees with one box on it,
so the expected 3D point and 3D box are known exactly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from mimo_embodied_ros.backends.base import BackendError
from mimo_embodied_ros.backends.openai_backend import OpenAIBackend
from mimo_embodied_ros.backends.scripted import ScriptedBackend
from mimo_embodied_ros.core.boxes3d import METHOD_SUPPORT_PLANE
from mimo_embodied_ros.core.depth import back_project, project
from mimo_embodied_ros.core.prompts import Task
from mimo_embodied_ros.core.resize import smart_resize, source_to_model
from mimo_embodied_ros.core.types import CameraIntrinsics, ImageSize
from mimo_embodied_ros.perception import Frame, QuerySettings, run_query

WIDTH, HEIGHT = 640, 480
SOURCE = ImageSize(WIDTH, HEIGHT)
K = CameraIntrinsics(fx=525.0, fy=525.0, cx=319.5, cy=239.5, width=WIDTH, height=HEIGHT)
SETTINGS = QuerySettings()  # the default max_pixels cap, as on the robot
RESIZED = smart_resize(HEIGHT, WIDTH, max_pixels=SETTINGS.max_pixels)

# World: z up, table top at z = 0; the box stands on it. Camera 0.7 m above, 0.6 m back.
CAMERA_POSITION = np.array([0.0, -0.6, 0.7])
BOX_MIN = np.array([-0.06, -0.04, 0.0])
BOX_MAX = np.array([0.06, 0.04, 0.09])  # 12 x 8 x 9 cm


def camera_rotation() -> np.ndarray:
    """World-from-optical rotation: columns are the camera's x (right), y (down), z (forward)."""
    forward = -CAMERA_POSITION / np.linalg.norm(CAMERA_POSITION)  # looks at the world origin
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return np.column_stack((right, down, forward))


R_WORLD_CAMERA = camera_rotation()


def to_camera(points_world: np.ndarray) -> np.ndarray:
    return (np.asarray(points_world) - CAMERA_POSITION) @ R_WORLD_CAMERA


def render_depth(with_box: bool = True) -> np.ndarray:
    """Optical-frame depth (z, metres) of the table and the box, by ray casting every pixel."""
    cols, rows = np.meshgrid(np.arange(WIDTH), np.arange(HEIGHT))
    rays_camera = np.stack(((cols - K.cx) / K.fx, (rows - K.cy) / K.fy, np.ones_like(cols, float)))
    rays = np.einsum("ij,jhw->hwi", R_WORLD_CAMERA, rays_camera)  # z_camera = 1 per unit ray
    with np.errstate(divide="ignore", invalid="ignore"):
        t_table = np.where(rays[..., 2] < 0, -CAMERA_POSITION[2] / rays[..., 2], np.inf)
        t_low = (BOX_MIN - CAMERA_POSITION) / rays
        t_high = (BOX_MAX - CAMERA_POSITION) / rays
    t_near = np.nanmax(np.minimum(t_low, t_high), axis=-1)
    t_far = np.nanmin(np.maximum(t_low, t_high), axis=-1)
    t_box = np.where((t_far >= t_near) & (t_near > 0), t_near, np.inf)
    depth = np.minimum(t_table, t_box) if with_box else t_table
    return np.where(np.isfinite(depth), depth, np.nan).astype(np.float32)


DEPTH = render_depth()


def frame(depth: np.ndarray | None = DEPTH, intrinsics: CameraIntrinsics | None = K) -> Frame:
    rgb = np.full((HEIGHT, WIDTH, 3), 120, np.uint8)
    rgb[..., 2] = 40
    return Frame(rgb=rgb, depth_m=depth, intrinsics=intrinsics)


def model_xy(u: float, v: float) -> list[int]:
    x, y = source_to_model(u, v, RESIZED, SOURCE)
    return [round(x), round(y)]


def box_pixels() -> tuple[float, float, float, float]:
    corners = np.array([[x, y, z] for x in (BOX_MIN[0], BOX_MAX[0])
                        for y in (BOX_MIN[1], BOX_MAX[1]) for z in (BOX_MIN[2], BOX_MAX[2])])
    pixels = project(to_camera(corners), K)
    (u1, v1), (u2, v2) = pixels.min(axis=0) - 3, pixels.max(axis=0) + 3
    return u1, v1, u2, v2


TABLE_PIXEL = (120.0, 400.0)
BOX_TOP_WORLD = np.array([0.0, 0.0, BOX_MAX[2]])
BOX_TOP_PIXEL = tuple(project(to_camera(BOX_TOP_WORLD[None]), K)[0])


def answers() -> dict[str, str]:
    u1, v1, u2, v2 = box_pixels()
    x1, y1 = model_xy(u1, v1)
    x2, y2 = model_xy(u2, v2)
    points = [model_xy(*BOX_TOP_PIXEL), model_xy(*TABLE_PIXEL)]
    return {
        "point at the box and the table": "<think>The box is in the middle; the table is free "
        f"on the left.</think>{json.dumps([{'points': points, 'label': 'box top'}])}",
        "find the box": f'<think>One box.</think>[{{"bbox_2d": [{x1}, {y1}, {x2}, {y2}], '
        '"label": "box"}]',
        "point off the image": "<think>Far right.</think>"
        f'[{{"points": [[{RESIZED.width + 40}, 10], {model_xy(*TABLE_PIXEL)}], "label": "x"}}]',
        "point only off the image": f"<think>?</think>[[{RESIZED.width}, 3], [-5, 20]]",
        "is there a box? (a) yes (b) no": "<think>I see one.</think>\\boxed{A}",
        "unfinished": "<think>The box is at [300, 200] but",
    }


@pytest.fixture
def backend(tmp_path: Path) -> ScriptedBackend:
    path = tmp_path / "answers.yaml"
    path.write_text(yaml.safe_dump(answers()))
    return ScriptedBackend(path)


def expected_point(u: float, v: float) -> np.ndarray:
    return back_project(u, v, float(DEPTH[int(v), int(u)]), K)


def test_point_task_gives_camera_frame_points(backend):
    result = run_query(backend, frame(), "point at the box and the table", "point", SETTINGS)
    assert result.success, result.message
    assert result.task is Task.POINT and result.resized == RESIZED
    assert result.message == "2 of 2 point(s) located in 3D"
    top, table = result.points
    assert top.model.label == "box top" and top.in_image and top.status == "ok"
    # Model pixels are integers in the resized image: < 1 source pixel of rounding.
    assert abs(top.u - BOX_TOP_PIXEL[0]) < 1.0 and abs(top.v - BOX_TOP_PIXEL[1]) < 1.0
    np.testing.assert_allclose(top.position, to_camera(BOX_TOP_WORLD), atol=0.01)
    np.testing.assert_allclose(table.position, expected_point(table.u, table.v), atol=0.005)
    table_world = table.position @ R_WORLD_CAMERA.T + CAMERA_POSITION
    assert abs(table_world[2]) < 0.005  # on the table top
    assert top.depth.spread < 0.005 and top.depth.num_valid == SETTINGS.depth_window**2
    assert set(result.timings_ms) == {"preprocess_ms", "model_ms", "postprocess_ms", "total_ms"}
    assert result.timings_ms["total_ms"] >= result.timings_ms["model_ms"]


def test_auto_task_is_chosen_from_the_instruction(backend):
    result = run_query(backend, frame(), "point at the box and the table", "auto", SETTINGS)
    assert result.task is Task.POINT and result.success


def test_detect_task_gives_a_3d_box_on_the_table(backend):
    result = run_query(backend, frame(), "find the box", "detect", SETTINGS)
    assert result.success, result.message
    (found,) = result.objects
    assert found.model.label == "box" and found.in_image and found.status == "ok"
    box = found.box3d
    assert box.method == METHOD_SUPPORT_PLANE
    up_camera = R_WORLD_CAMERA.T @ np.array([0.0, 0.0, 1.0])
    assert float(box.rotation[:, 2] @ up_camera) > 0.999  # up is the table normal
    np.testing.assert_allclose(box.center, to_camera((BOX_MIN + BOX_MAX) / 2), atol=0.015)
    assert abs(box.size[2] - BOX_MAX[2]) < 0.01
    footprint = sorted(box.size[:2])
    extent = sorted((BOX_MAX - BOX_MIN)[:2])
    np.testing.assert_allclose(footprint, extent, atol=0.015)


def test_detect_on_depth_at_half_resolution(backend):
    half = DEPTH[::2, ::2].copy()
    result = run_query(backend, frame(depth=half), "find the box", "detect", SETTINGS)
    assert result.success, result.message
    box = result.objects[0].box3d
    np.testing.assert_allclose(box.center, to_camera((BOX_MIN + BOX_MAX) / 2), atol=0.02)
    assert abs(box.size[2] - BOX_MAX[2]) < 0.015


def test_points_outside_the_image_are_reported_not_clamped(backend):
    result = run_query(backend, frame(), "point off the image", "point", SETTINGS)
    outside, inside = result.points
    assert not outside.in_image and outside.position is None
    assert math.isnan(outside.u) and math.isnan(outside.v)  # not moved to the border
    assert f"outside the {RESIZED.width}x{RESIZED.height} image" in outside.status
    assert inside.in_image and inside.position is not None
    assert result.success  # one good point is an answer, and the bad one is named
    assert result.message.startswith("1 of 2 point(s) located in 3D (the model pointed at")

    result = run_query(backend, frame(), "point only off the image", "point", SETTINGS)
    assert not result.success
    assert result.message.startswith("none of the 2 point(s) the model gave lies inside the image")
    assert all(not p.in_image for p in result.points)


def test_point_without_valid_depth_is_kept_in_2d(backend):
    holes = np.full_like(DEPTH, np.nan)
    result = run_query(backend, frame(depth=holes), "point at the box and the table", "point",
                       SETTINGS)
    assert not result.success
    assert "none has valid depth" in result.message and "no_valid_depth" in result.message
    assert all(p.in_image and p.position is None for p in result.points)


def test_pixels_only_when_depth_is_not_required(backend):
    settings = QuerySettings(require_depth=False)
    result = run_query(backend, frame(depth=None, intrinsics=None),
                       "point at the box and the table", "point", settings)
    assert result.success, result.message
    assert result.message == "2 of 2 point(s) located in the image"
    assert all(p.position is None for p in result.points)


def test_camera_info_size_must_match_the_frame(backend):
    small = K.scaled_to(320, 240)
    result = run_query(backend, frame(intrinsics=small), "find the box", "detect", SETTINGS)
    assert not result.success and result.reply is None  # the model was not asked
    assert result.message == (
        "camera_info is 320x240 but the colour image is 640x480; they must describe the same "
        "camera stream"
    )


def test_depth_with_another_aspect_ratio_is_rejected(backend):
    square = np.ones((480, 480), np.float32)
    result = run_query(backend, frame(depth=square), "find the box", "detect", SETTINGS)
    assert not result.success and result.reply is None
    assert "depth image 480x480 and colour image 640x480 have different aspect ratios" in (
        result.message
    )


@pytest.mark.parametrize(
    ("frame_args", "message"),
    [
        ({"depth": None}, "no depth image is available for this frame"),
        ({"intrinsics": None}, "no camera_info is available, so points cannot be lifted to 3D"),
    ],
)
def test_missing_depth_or_intrinsics(backend, frame_args, message):
    result = run_query(backend, frame(**frame_args), "find the box", "detect", SETTINGS)
    assert not result.success and result.message == message


def test_no_frame_yet(backend):
    result = run_query(backend, None, "find the box", "detect", SETTINGS)
    assert not result.success
    assert result.message == "no synchronized camera frame has been received yet"


def test_unknown_task(backend):
    result = run_query(backend, frame(), "find the box", "segment", SETTINGS)
    assert not result.success and result.task is None
    assert result.message.startswith("unknown task 'segment' (use one of: auto, point, detect")


def test_rejected_instruction_never_reaches_the_model(backend):
    result = run_query(backend, frame(), "   ", "point", SETTINGS)
    assert not result.success and result.reply is None
    assert result.message.startswith("instruction rejected:")


def test_choice_task_needs_no_depth(backend):
    result = run_query(backend, frame(depth=None, intrinsics=None),
                       "is there a box? (a) yes (b) no", "choice", SETTINGS)
    assert result.success and result.message == "answer: A"
    assert result.parsed.reasoning == "I see one."


def test_answer_without_think_end(backend):
    result = run_query(backend, frame(), "unfinished", "point", SETTINGS)
    assert not result.success and result.parsed.status == "no_think_end"
    assert "no </think>" in result.message
    assert result.points == []  # the [300, 200] inside the thought is not an answer


def test_backend_without_an_answer_is_an_invalid_request(backend):
    result = run_query(backend, frame(), "point at the moon", "point", SETTINGS)
    assert not result.success
    assert result.message.startswith("model backend failed (invalid_request): ")
    assert "no scripted answer for 'point at the moon'" in result.message
    assert result.timings_ms["postprocess_ms"] == 0.0 and result.timings_ms["model_ms"] >= 0.0


def test_backend_whose_answers_file_vanished_is_a_load_error(backend):
    backend.answers_file.unlink()
    result = run_query(backend, frame(), "find the box", "detect", SETTINGS)
    assert not result.success
    assert result.message.startswith("model backend failed (load): ")


def test_unreachable_server_is_reported_as_unavailable():
    with socket_closed_port() as port:
        server = OpenAIBackend(f"http://127.0.0.1:{port}/v1", "mimo", timeout_s=2.0, retries=0)
        result = run_query(server, frame(), "find the box", "detect", SETTINGS)
    assert not result.success
    assert result.message.startswith("model backend failed (unavailable): ")


def test_scripted_latency_is_in_the_model_timing(tmp_path):
    path = tmp_path / "answers.yaml"
    path.write_text(yaml.safe_dump(answers()))
    slow = ScriptedBackend(path, delay_s=0.05)
    result = run_query(slow, frame(), "find the box", "detect", SETTINGS)
    assert result.success
    assert result.timings_ms["model_ms"] >= 50.0
    assert result.reply.model_ms >= 50.0


def test_rescale_uses_the_size_the_model_saw(tmp_path):
    """With a smaller cap the same answer lands elsewhere: the rescale follows the cap."""
    cap = 100352
    small = smart_resize(HEIGHT, WIDTH, max_pixels=cap)
    path = tmp_path / "answers.yaml"
    path.write_text(yaml.safe_dump({"*": "<think>.</think>[[100, 100]]"}))
    result = run_query(ScriptedBackend(path), frame(), "point", "point",
                       QuerySettings(max_pixels=cap))
    assert result.resized == small
    (point,) = result.points
    assert point.u == pytest.approx(100 * WIDTH / small.width)
    assert point.v == pytest.approx(100 * HEIGHT / small.height)


def test_backend_errors_name_their_kind():
    error = BackendError("timeout", "no answer in 60 s")
    assert str(error) == "timeout: no answer in 60 s"
    with pytest.raises(ValueError, match="unknown backend error kind"):
        BackendError("oops", "x")


class socket_closed_port:  # noqa: N801 - used as a context manager like a function
    """A loopback port that was bound and released, so nothing listens on it."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return probe.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        return None


def _scripted(tmp_path: Path, answers_by_key: dict[str, str]) -> ScriptedBackend:
    path = tmp_path / "more_answers.yaml"
    path.write_text(yaml.safe_dump(answers_by_key))
    return ScriptedBackend(path)


def test_normalized_box_is_scaled_by_the_resized_image(tmp_path):
    u1, v1, u2, v2 = box_pixels()
    corners = [u1 / WIDTH, v1 / HEIGHT, u2 / WIDTH, v2 / HEIGHT]  # 0-1, as the scorer reads it
    backend = _scripted(tmp_path, {"find the box": json.dumps([{"bbox_2d": corners}])})
    result = run_query(backend, frame(), "find the box", "detect", SETTINGS)
    assert result.success, result.message
    x1, y1, x2, y2 = result.objects[0].box_px
    assert abs(x1 - u1) < 1.5 and abs(y2 - v2) < 1.5
    assert result.objects[0].box3d is not None


def test_normalized_points_are_flagged_and_not_lifted(tmp_path):
    backend = _scripted(tmp_path, {"the box": '<think>.</think>[{"points": [[0.5, 0.4]]}]'})
    result = run_query(backend, frame(), "the box", "point", SETTINGS)
    assert not result.success
    assert result.parsed.status == "normalized_points"
    assert "normalized" in result.message
    assert result.points and all(p.position is None for p in result.points)  # no corner in 3D


def test_boxes_in_a_pointing_reply_give_their_centres(tmp_path):
    u1, v1, u2, v2 = box_pixels()
    (x1, y1), (x2, y2) = model_xy(u1, v1), model_xy(u2, v2)
    backend = _scripted(tmp_path, {"the box": f'<think>.</think>[{{"bbox_2d": [{x1}, {y1}, '
                                              f'{x2}, {y2}]}}]'})
    result = run_query(backend, frame(), "the box", "point", SETTINGS)
    assert result.success, result.message
    assert "centres" in result.message
    assert abs(result.points[0].u - (u1 + u2) / 2) < 1.5


def test_plan_runs_in_no_think_mode_by_default(tmp_path):
    backend = _scripted(tmp_path, {"tidy the table": "<think>Let me think at length",
                                   "tidy the table /no_think": "1. Pick up the cup."})
    result = run_query(backend, frame(), "tidy the table", "plan", SETTINGS)
    assert result.success and not result.retried_no_think
    assert result.parsed.plan_steps == ["Pick up the cup."]


def test_unfinished_thinking_is_retried_once_in_no_think_mode(tmp_path):
    backend = _scripted(tmp_path, {
        "the table": "<think>The table is large and",
        "the table /no_think": json.dumps([{"points": [model_xy(*TABLE_PIXEL)]}]),
    })
    result = run_query(backend, frame(), "the table", "point", SETTINGS)
    assert result.success and result.retried_no_think
    assert "no-think" in result.message
    failing = run_query(backend, frame(), "the table", "point",
                        QuerySettings(on_no_think_end="fail"))
    assert not failing.success and failing.parsed.status == "no_think_end"


class _BrokenSizeBackend(ScriptedBackend):
    """Reports an image size that is not a size: rescaling by it raises."""

    def generate(self, request):
        reply = super().generate(request)
        reply.image_sizes = [None]
        return reply


def test_an_exception_after_the_backend_is_a_failed_result(tmp_path):
    path = tmp_path / "answers.yaml"
    path.write_text(yaml.safe_dump(answers()))
    result = run_query(_BrokenSizeBackend(path), frame(), "point at the box and the table",
                       "point", SETTINGS)
    assert not result.success and result.error_kind == "internal"
    assert "could not be turned into results" in result.message
