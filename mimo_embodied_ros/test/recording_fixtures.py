"""Queries to record, without a node: the real scripted backend on a synthetic RGB-D frame.

Each query runs through perception.run_query and the node's message conversions, exactly what the
perception node hands its recorder after publishing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml
from std_msgs.msg import Header

from mimo_embodied_ros.backends.scripted import ScriptedBackend
from mimo_embodied_ros.core.prompts import Task
from mimo_embodied_ros.core.resize import smart_resize, source_to_model
from mimo_embodied_ros.core.types import CameraIntrinsics, ImageSize
from mimo_embodied_ros.perception import Frame, QuerySettings, run_query
from mimo_embodied_ros.recording import QueryRecording, recording_from_result
from mimo_embodied_ros.ros import conversions
from mimo_embodied_ros.ros.images import array_to_image, camera_info_from_intrinsics

WIDTH, HEIGHT = 320, 240
K = CameraIntrinsics(fx=262.5, fy=262.5, cx=159.5, cy=119.5, width=WIDTH, height=HEIGHT)
MAX_PIXELS = 230400
SETTINGS = QuerySettings(max_pixels=MAX_PIXELS)
PLANE_Z = 0.8
TARGET = (200.0, 150.0)
POINT = "point at the red square"
DETECT = "detect the red square"
CHOICE = "is there a red square?"
UNFINISHED = "point at the long thought"


def scene(shift: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rgb = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
    rgb[140 + shift:160 + shift, 190:210] = (200, 30, 30)
    depth = np.full((HEIGHT, WIDTH), PLANE_Z, np.float32)
    depth[130:170, 180:220] = PLANE_Z - 0.05  # a box standing on the plane
    return rgb, depth


def model_xy(u: float, v: float, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    resized = smart_resize(HEIGHT, WIDTH, max_pixels=max_pixels)
    x, y = source_to_model(u, v, resized, ImageSize(WIDTH, HEIGHT))
    return round(x), round(y)


def answers() -> dict[str, str]:
    x, y = model_xy(*TARGET)
    x1, y1 = model_xy(180, 130)
    x2, y2 = model_xy(220, 170)
    point = json.dumps([{"points": [[x, y]], "label": "red square"}])
    return {
        POINT: f"<think>The red square.</think>{point}",
        DETECT: "<think>One square.</think>"
                + json.dumps([{"bbox_2d": [x1, y1, x2, y2], "label": "red square"}]),
        CHOICE: "<think>I see it.</think>\\boxed{Yes}",
        UNFINISHED: "<think>Let me look at every object in turn, first",
        UNFINISHED + " /no_think": point,
    }


def write_answers(path: Path) -> Path:
    path.write_text(yaml.safe_dump(answers(), allow_unicode=True))
    return path


def camera_messages(stamp_s: int, shift: int = 0) -> tuple:
    rgb, depth = scene(shift)
    header = Header(frame_id="camera_color_optical_frame")
    header.stamp.sec = stamp_s
    return (array_to_image(rgb, "rgb8", header), array_to_image(depth, "32FC1", header),
            camera_info_from_intrinsics(K, header))


def query_recording(backend: ScriptedBackend, instruction: str, stamp_s: int = 1,
                    settings: QuerySettings = SETTINGS, shift: int = 0,
                    ) -> tuple[QueryRecording, object]:
    """Run one query as the node does and build the recording the node would submit."""
    image, depth, info = camera_messages(stamp_s, shift)
    rgb, depth_m = scene(shift)
    result = run_query(backend, Frame(rgb, depth_m, K), instruction, "", settings)
    affordances = objects = None
    if result.reply is not None and result.task is Task.POINT:
        affordances = conversions.affordances_msg(result, image.header, "scripted")
    elif result.reply is not None and result.task is Task.DETECT:
        objects = conversions.objects_msg(result, image.header, "scripted")
    recording = recording_from_result(
        image, depth, info, result, task="", thinking="", settings=settings,
        backend="scripted", model_id=backend.model_id, affordances=affordances, objects=objects)
    return recording, result


def record_queries(recorder, answers_file: Path, count: int = 4) -> list:
    """Submit ``count`` queries (point, detect, choice, unfinished thought, ...) on moving
    frames; returns their QueryResults."""
    backend = ScriptedBackend(answers_file)
    instructions = [POINT, DETECT, CHOICE, UNFINISHED]
    results = []
    for index in range(count):
        recording, result = query_recording(backend, instructions[index % len(instructions)],
                                            stamp_s=index + 1, shift=index % 3)
        assert recorder.submit(recording)
        results.append(result)
    return results
