"""One perception query, ROS-free: frame + instruction -> model -> parsed, rescaled, lifted results.

The node, the demo and the benchmarks all run queries through `run_query`, so what is tested here is
what runs on the robot. It never raises: every failure becomes a `QueryResult` with success=False
and a message an operator can act on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from mimo_embodied_ros.backends.base import (
    BackendError,
    ModelReply,
    ModelRequest,
    Progress,
    VisionLanguageBackend,
)
from mimo_embodied_ros.core.boxes3d import Box3D, box_from_depth
from mimo_embodied_ros.core.depth import DepthSample, lift_point
from mimo_embodied_ros.core.parsing import parse_reply
from mimo_embodied_ros.core.prompts import Task, build_task_text, check_instruction, choose_task
from mimo_embodied_ros.core.resize import (
    model_box_to_source,
    model_to_source,
    resize_for_model,
    smart_resize,
)
from mimo_embodied_ros.core.types import (
    CameraIntrinsics,
    ImageSize,
    ModelBox,
    ModelPoint,
    ParsedAnswer,
)

POINT_TASKS = (Task.POINT, Task.REGION)
"""Tasks whose answer is points (a region answer is a point on a map image plus names)."""
NO_THINK_END_POLICIES = ("retry_no_think", "fail")
"""What a query does when thinking ends without </think>: ask again in no-think mode, or fail."""


@dataclass(frozen=True)
class QuerySettings:
    """How a query is run; the node fills it from its parameters."""

    max_pixels: int = 1003520
    min_pixels: int = 3136
    think: bool = True
    plan_think: bool = False  # planning was scored in no-think mode (RoboVQA)
    on_no_think_end: str = "retry_no_think"  # one of NO_THINK_END_POLICIES
    max_new_tokens: int = 4096
    max_instruction_chars: int = 2000
    depth_window: int = 7
    min_valid_depth_fraction: float = 0.25
    require_depth: bool = True


@dataclass
class Frame:
    """A synchronized RGB-D frame, already converted; depth and intrinsics may be absent."""

    rgb: np.ndarray  # (H, W, 3) uint8 RGB
    depth_m: np.ndarray | None = None  # (h, w) float32 metres, NaN where invalid
    intrinsics: CameraIntrinsics | None = None  # of the colour image
    depth_problem: str = ""  # why a received depth image was not used (e.g. not registered)

    @property
    def size(self) -> ImageSize:
        return ImageSize(width=int(self.rgb.shape[1]), height=int(self.rgb.shape[0]))


@dataclass
class PointResult:
    """A model point in source pixels and, when depth allows, in the camera frame."""

    model: ModelPoint
    u: float
    v: float
    in_image: bool
    position: np.ndarray | None = None
    depth: DepthSample | None = None
    status: str = "ok"


@dataclass
class ObjectResult:
    """A model box in source pixels and, when depth allows, as a camera-frame 3D box."""

    model: ModelBox
    box_px: tuple[float, float, float, float]
    in_image: bool
    box3d: Box3D | None = None
    status: str = "ok"


@dataclass
class QueryResult:
    """Everything one query produced, successful or not."""

    success: bool
    message: str
    instruction: str
    task: Task | None = None
    parsed: ParsedAnswer | None = None
    reply: ModelReply | None = None
    resized: ImageSize | None = None
    points: list[PointResult] = field(default_factory=list)
    objects: list[ObjectResult] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    retried_no_think: bool = False  # thinking ran out without </think>; answered in no-think mode
    error_kind: str = ""  # the BackendError kind when the backend failed ("cancelled", ...)


def check_frame(frame: Frame, require_depth: bool) -> str | None:
    """Why a frame cannot be used, or None. Sizes must agree; depth may be a scaled copy."""
    size = frame.size
    k = frame.intrinsics
    if k is not None and (k.width, k.height) != (size.width, size.height):
        return (
            f"camera_info is {k.width}x{k.height} but the colour image is "
            f"{size.width}x{size.height}; they must describe the same camera stream"
        )
    if require_depth:
        if frame.depth_m is None:
            return frame.depth_problem or "no depth image is available for this frame"
        if k is None:
            return "no camera_info is available, so points cannot be lifted to 3D"
        dh, dw = frame.depth_m.shape[:2]
        if abs(dw / dh - size.width / size.height) > 0.01:
            return (
                f"depth image {dw}x{dh} and colour image {size.width}x{size.height} have different "
                "aspect ratios; the depth must be registered to the colour camera"
            )
    return None


def resolve_task(instruction: str, task: str) -> Task:
    """The task to run: given explicitly, or chosen from the instruction for "" / "auto"."""
    if task in ("", "auto"):
        return choose_task(instruction)
    return Task(task)


def run_query(
    backend: VisionLanguageBackend,
    frame: Frame | None,
    instruction: str,
    task: str = "",
    settings: QuerySettings | None = None,
    cancel: threading.Event | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> QueryResult:
    """Ask the model about one frame and turn its answer into pixels, 3D points and 3D boxes.

    ``cancel`` stops the generation in flight (the result's error_kind is then "cancelled");
    ``on_progress`` receives the backend's progress. In thinking mode a reply without
    ``</think>`` is asked again once in no-think mode (``settings.on_no_think_end``).
    """
    settings = settings or QuerySettings()
    started = time.perf_counter()
    result = QueryResult(success=False, message="", instruction=instruction)
    if not isinstance(instruction, str):
        result.message = "instruction must be text"
        return result
    problem = check_instruction(instruction, settings.max_instruction_chars)
    if problem is not None:
        result.message = f"instruction rejected: {problem}"
        return result
    try:
        result.task = resolve_task(instruction, task)
    except ValueError:
        kinds = ", ".join(t.value for t in Task)
        result.message = f"unknown task '{task}' (use one of: auto, {kinds})"
        return result
    if frame is None:
        result.message = "no synchronized camera frame has been received yet"
        return result
    needs_depth = settings.require_depth and result.task in (Task.POINT, Task.DETECT)
    problem = check_frame(frame, needs_depth)
    if problem is not None:
        result.message = problem
        return result

    source = frame.size
    try:
        result.resized = smart_resize(
            source.height,
            source.width,
            min_pixels=settings.min_pixels,
            max_pixels=settings.max_pixels,
        )
    except ValueError as error:
        result.message = f"image cannot be resized for the model: {error}"
        return result
    model_image = resize_for_model(frame.rgb, result.resized)
    think = settings.plan_think if result.task is Task.PLAN else settings.think
    request = ModelRequest(
        images=[model_image],
        task_text=build_task_text(result.task, instruction, think),
        instruction=instruction,
        max_new_tokens=settings.max_new_tokens,
        cancel=cancel or threading.Event(),
        on_progress=on_progress,
    )
    preprocessed = time.perf_counter()
    try:
        result.reply = backend.generate(request)
        result.parsed = parse_reply(result.task, result.reply.text, think)
        if (think and result.parsed.status == "no_think_end"
                and settings.on_no_think_end == "retry_no_think"):
            request.report(Progress("retrying_no_think"))
            request.task_text = build_task_text(result.task, instruction, False)
            result.reply = backend.generate(request)
            result.parsed = parse_reply(result.task, result.reply.text, False)
            result.retried_no_think = True
    except BackendError as error:
        result.error_kind = error.kind
        result.message = f"model backend failed ({error.kind}): {error.message}"
        if result.retried_no_think or result.parsed is not None:
            result.message = "thinking ended without </think>; the no-think retry failed: " + (
                result.message)
        result.timings_ms = _timings(started, preprocessed, time.perf_counter(), None)
        return result
    answered = time.perf_counter()
    try:
        _read_answer(result, frame, settings, needs_depth)
    except Exception as error:  # noqa: BLE001 - untrusted model output must never end a node
        result.success = False
        result.points, result.objects = [], []
        result.message = f"the model's answer could not be turned into results: {error!r}"
        result.error_kind = "internal"
    result.timings_ms = _timings(started, preprocessed, answered, time.perf_counter())
    return result


def _read_answer(
    result: QueryResult, frame: Frame, settings: QuerySettings, needs_depth: bool
) -> None:
    """Rescale, lift and judge a parsed answer (fills points/objects, success and message)."""
    assert result.reply is not None and result.parsed is not None and result.resized is not None
    seen = result.reply.image_sizes[0] if result.reply.image_sizes else result.resized
    result.resized = seen  # rescale with the exact size the model saw
    if result.task in POINT_TASKS:
        result.points = [_lift_point(p, frame, seen, settings) for p in result.parsed.points]
        if result.parsed.status == "normalized_points":
            for point in result.points:  # never lift the image corner a 0-1 answer maps to
                point.position, point.depth = None, None
                point.status = "normalized coordinates (0-1), not pixels: not lifted"
    elif result.task is Task.DETECT:
        boxes = [_pixels_box(b, seen) for b in result.parsed.boxes]
        result.objects = [_lift_box(b, frame, seen, settings) for b in boxes]
    result.success, result.message = _outcome(result, needs_depth)
    if result.parsed.status == "box_centres":
        result.message += " (the model gave boxes; the points are their centres)"
    if result.retried_no_think:
        result.message = (
            "thinking ended without </think> within the token budget; answered in no-think "
            f"mode: {result.message}"
        )


def _pixels_box(box: ModelBox, seen: ImageSize) -> ModelBox:
    """A box in the resized image's pixels; normalized (0-1) boxes are scaled by its size, as
    the official scorer reads them."""
    if not getattr(box, "normalized", False):
        return box
    return replace(box, x1=box.x1 * seen.width, y1=box.y1 * seen.height,
                   x2=box.x2 * seen.width, y2=box.y2 * seen.height, normalized=False)


def _timings(start: float, pre: float, model: float, end: float | None) -> dict[str, float]:
    stop = end if end is not None else model
    return {
        "preprocess_ms": (pre - start) * 1e3,
        "model_ms": (model - pre) * 1e3,
        "postprocess_ms": (stop - model) * 1e3,
        "total_ms": (stop - start) * 1e3,
    }


def _lift_point(
    point: ModelPoint, frame: Frame, resized: ImageSize, settings: QuerySettings
) -> PointResult:
    u, v, in_image = model_to_source(point.x, point.y, resized, frame.size)
    result = PointResult(model=point, u=u, v=v, in_image=in_image)
    if not in_image:
        result.status = (
            f"the model pointed at ({point.x:g}, {point.y:g}), outside the "
            f"{resized.width}x{resized.height} image it saw"
        )
        return result
    if frame.depth_m is None or frame.intrinsics is None:
        result.status = "no depth" if settings.require_depth else "ok"
        return result
    result.position, result.depth = lift_point(
        u,
        v,
        frame.depth_m,
        frame.intrinsics,
        window=settings.depth_window,
        min_valid_fraction=settings.min_valid_depth_fraction,
    )
    result.status = "ok" if result.position is not None else f"depth: {result.depth.status}"
    return result


def _lift_box(
    box: ModelBox, frame: Frame, resized: ImageSize, settings: QuerySettings
) -> ObjectResult:
    x1, y1, x2, y2, in_image = model_box_to_source(box, resized, frame.size)
    result = ObjectResult(model=box, box_px=(x1, y1, x2, y2), in_image=in_image)
    if not in_image:
        result.status = "the box lies outside the image the model saw"
        return result
    if frame.depth_m is None or frame.intrinsics is None:
        result.status = "no depth" if settings.require_depth else "ok"
        return result
    dh, dw = frame.depth_m.shape[:2]
    k_depth = frame.intrinsics.scaled_to(dw, dh)
    sx, sy = dw / frame.size.width, dh / frame.size.height
    fitted = box_from_depth(frame.depth_m, k_depth, (x1 * sx, y1 * sy, x2 * sx, y2 * sy))
    result.box3d = fitted.box
    result.status = fitted.status
    return result


def _outcome(result: QueryResult, needs_depth: bool) -> tuple[bool, str]:
    parsed = result.parsed
    assert parsed is not None and result.task is not None
    if not parsed.ok:
        return False, _parse_failure_message(parsed)
    if result.task in POINT_TASKS:
        return _count_message(
            "point",
            len(result.points),
            sum(p.in_image for p in result.points),
            sum(p.position is not None for p in result.points),
            needs_depth,
            [p.status for p in result.points if p.status != "ok"],
        )
    if result.task is Task.DETECT:
        return _count_message(
            "object",
            len(result.objects),
            sum(o.in_image for o in result.objects),
            sum(o.box3d is not None for o in result.objects),
            needs_depth,
            [o.status for o in result.objects if o.status != "ok"],
        )
    if result.task is Task.CHOICE:
        return True, f"answer: {parsed.choice}"
    return True, "answered"


def _count_message(
    noun: str, total: int, in_image: int, lifted: int, needs_depth: bool, problems: list[str]
) -> tuple[bool, str]:
    detail = f" ({'; '.join(dict.fromkeys(problems))})" if problems else ""
    if in_image == 0:
        return False, f"none of the {total} {noun}(s) the model gave lies inside the image{detail}"
    if needs_depth and lifted == 0:
        return False, f"{in_image} {noun}(s) found but none has valid depth{detail}"
    if needs_depth:
        return True, f"{lifted} of {total} {noun}(s) located in 3D{detail}"
    return True, f"{in_image} of {total} {noun}(s) located in the image{detail}"


def _parse_failure_message(parsed: ParsedAnswer) -> str:
    reasons = {
        "empty": "the model returned an empty answer",
        "normalized_points": "the model answered normalized (0-1) coordinates instead of pixels "
        "of the image it saw; the points are reported but not lifted to 3D",
        "no_think_end": "the model's answer has no </think> (thinking mode), so it has no final "
        "answer; try no_think mode or more max_new_tokens",
        "no_coordinates": "the model's answer contains no coordinates",
        "no_boxed": "the model's answer has no \\boxed{} choice",
    }
    return reasons.get(parsed.status, f"the model's answer could not be read ({parsed.status})")

