"""Replay recorded queries through the same query path, with any backend and settings.

    python -m mimo_embodied_ros.replay BAG [--backend recorded|scripted|transformers|openai]
        [--set model.max_pixels=100352 --set transformers.model_path=/models/MiMo-Embodied-7B]
        [--thinking think|no_think] [--write OUT.mcap] [--answers-out answers.yaml]
        [--instruction TEXT ...] [--task point]

BAG is a recording (recording.py): one bag directory, one .mcap file, or the recorder's folder of
bags. Every query is rebuilt (frame from the recorded Image / CameraInfo messages with the node's
conversions, the recorded request and settings), run with perception.run_query and compared with
what was recorded: one line per query and a summary `replay: N queries, K same within 2 px, ...`.

`--backend recorded` (the default) answers each query with the raw model text it recorded, through
the scripted backend, so a replay reproduces the recorded results exactly (a change in parsing,
rescaling or depth lifting shows up as a difference). Settings are the recorded ones; `--set`
takes the perception node's parameter names and overrides them.

A camera bag from anywhere (`ros2 bag record` of colour, depth and camera_info) replays too: give
`--instruction` (repeatable); topics are found by type (or named with --color-topic etc.).
`--instruction` on a recording replaces the recorded instructions.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import statistics
import sys
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mimo_embodied_ros.perception import QueryResult, QuerySettings, run_query
from mimo_embodied_ros.perception_parameters import SHARED_MODEL_SETTINGS
from mimo_embodied_ros.recording import (
    TOPICS,
    BagWriter,
    describe_result,
    json_string,
    ros_type_name,
    serialize,
)

SAME_PX = 2.0
REPLAY_TOPICS = {
    "result": "/mimo_embodied/replay/result",
    "affordances": "/mimo_embodied/replay/affordances",
    "objects": "/mimo_embodied/replay/objects",
}
RECORD_TOPIC_KEYS = {topic: key for key, topic in TOPICS.items()}
# Node parameter -> QuerySettings field (nodes/perception_node.py: _settings).
SETTING_PARAMETERS = {
    "model.max_pixels": "max_pixels",
    "model.min_pixels": "min_pixels",
    "model.think": "think",
    "model.plan_think": "plan_think",
    "model.on_no_think_end": "on_no_think_end",
    "model.max_new_tokens": "max_new_tokens",
    "max_instruction_chars": "max_instruction_chars",
    "depth_window": "depth_window",
    "min_valid_depth_fraction": "min_valid_depth_fraction",
    "use_depth": "require_depth",
}
BACKENDS = ("recorded", "scripted", "transformers", "openai")


class ReplayError(Exception):
    """A bag or an option replay cannot use; the message says what to do."""


# Reading ---------------------------------------------------------------------------------------

@dataclass
class RecordedQuery:
    """One recorded query, messages deserialized with rclpy."""

    timestamp_ns: int
    request: dict[str, Any]
    image: Any
    depth: Any | None = None
    camera_info: Any | None = None
    result: dict[str, Any] | None = None
    affordances: Any | None = None
    objects: Any | None = None
    raw: list[tuple[str, str, bytes]] = field(default_factory=list)  # as stored, for --write

    @property
    def instruction(self) -> str:
        return str(self.request.get("instruction", ""))


def bag_paths(path: str | Path) -> list[Path]:
    """The bags a path names: a bag directory, a .mcap file, or a folder of them (sorted)."""
    path = Path(path).expanduser()
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ReplayError(f"{path} does not exist")
    if (path / "metadata.yaml").exists():
        return [path]
    found = sorted(p for p in path.iterdir()
                   if (p.is_dir() and (p / "metadata.yaml").exists()) or p.suffix == ".mcap")
    if not found:
        unfinished = sorted(p.name for p in path.iterdir() if p.is_dir())
        hint = (f"; unfinished bags (no metadata.yaml, the recorder was killed): "
                f"{', '.join(unfinished)}" if unfinished else "")
        raise ReplayError(f"no rosbag2 bag (directory with metadata.yaml, or .mcap) in {path}"
                          f"{hint}")
    return found


def _message_class(msgtype: str) -> Any:
    package, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


def _deserialize(msgtype: str, data: bytes) -> Any:
    from rclpy.serialization import deserialize_message

    return deserialize_message(data, _message_class(msgtype))


def iter_messages(paths: Iterable[Path], topics: set[str] | None = None
                  ) -> Iterator[tuple[str, str, int, bytes]]:
    """(topic, type, bag timestamp ns, CDR bytes) of every bag in turn, in time order."""
    from rosbags.rosbag2 import Reader

    for path in paths:
        try:
            reader = Reader(path)
            reader.open()
        except Exception as error:  # noqa: BLE001 - rosbags raises several kinds
            raise ReplayError(f"cannot read {path}: {error}") from error
        try:
            connections = [c for c in reader.connections if topics is None or c.topic in topics]
            for connection, timestamp, data in reader.messages(connections=connections):
                yield connection.topic, connection.msgtype, timestamp, bytes(data)
        finally:
            reader.close()


def read_queries(path: str | Path) -> list[RecordedQuery]:
    """Every query of a recording, in order. Messages of one query share one bag timestamp."""
    groups: dict[int, list[tuple[str, str, bytes]]] = {}
    for topic, msgtype, timestamp, data in iter_messages(bag_paths(path)):
        groups.setdefault(timestamp, []).append((topic, msgtype, data))
    queries = []
    for timestamp in sorted(groups):
        query = _query_from_group(timestamp, groups[timestamp])
        if query is not None:
            queries.append(query)
    return queries


def _query_from_group(timestamp: int, group: list[tuple[str, str, bytes]]) -> RecordedQuery | None:
    parts: dict[str, Any] = {}
    raw = []
    for topic, msgtype, data in group:
        key = RECORD_TOPIC_KEYS.get(topic)
        if key is None:
            continue  # e.g. /mimo_embodied/replay/* of an earlier --write
        raw.append((topic, msgtype, data))
        msg = _deserialize(msgtype, data)
        parts[key] = json.loads(msg.data) if key in ("request", "result") else msg
    image = parts.get("color", parts.get("color_compressed"))
    if "request" not in parts or image is None:
        return None
    return RecordedQuery(
        timestamp_ns=timestamp, request=parts["request"], image=image,
        depth=parts.get("depth"), camera_info=parts.get("camera_info"),
        result=parts.get("result"), affordances=parts.get("affordances"),
        objects=parts.get("objects"), raw=raw,
    )


def _stamp_s(msg: Any) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def _is_depth(topic: str, msg: Any) -> bool:
    return msg.encoding.upper() in ("16UC1", "32FC1", "MONO16") or "depth" in topic.lower()


def camera_queries(
    path: str | Path, instructions: list[str], task: str = "",
    color_topic: str | None = None, depth_topic: str | None = None,
    info_topic: str | None = None, slop_s: float = 0.05, every: int = 1,
    limit: int | None = None,
) -> list[RecordedQuery]:
    """Queries on the colour frames of any camera bag: each frame (every ``every``-th) with the
    depth image nearest in stamp (within ``slop_s``) and the latest camera_info, per instruction.
    Topics not named are found by type (colour: an Image that is not depth, or CompressedImage)."""
    from rosbags.rosbag2 import Reader

    paths = bag_paths(path)
    types: dict[str, str] = {}
    for bag in paths:
        reader = Reader(bag)
        reader.open()
        types.update({c.topic: c.msgtype for c in reader.connections})
        reader.close()
    images = [t for t, m in types.items() if m == "sensor_msgs/msg/Image"]
    if color_topic is None or depth_topic is None:
        first = {}
        for topic, msgtype, _, data in iter_messages(paths, set(images)):
            first.setdefault(topic, _deserialize(msgtype, data))
            if len(first) == len(images):
                break
        depths = [t for t in images if t in first and _is_depth(t, first[t])]
        colours = [t for t in images if t in first and t not in depths] or [
            t for t, m in types.items() if m == "sensor_msgs/msg/CompressedImage"]
        color_topic = color_topic or (colours[0] if colours else None)
        depth_topic = depth_topic or (depths[0] if depths else None)
    if info_topic is None:
        infos = [t for t, m in types.items() if m == "sensor_msgs/msg/CameraInfo"]
        near = [t for t in infos if color_topic and t.rsplit("/", 1)[0] in color_topic]
        info_topic = (near or infos or [None])[0]
    if color_topic is None:
        raise ReplayError(f"no colour image topic in {path}; topics: {sorted(types)}")
    print(f"replay: camera bag: colour {color_topic}, depth {depth_topic or '-'}, "
          f"camera_info {info_topic or '-'}")
    wanted = {t for t in (color_topic, depth_topic, info_topic) if t}
    frames: list[tuple[int, Any, Any, Any]] = []
    pending: list[tuple[int, Any]] = []
    depths_seen: deque[Any] = deque(maxlen=30)
    info = None
    count = 0

    def nearest_depth(image: Any) -> Any:
        t = _stamp_s(image)
        best = min(depths_seen, key=lambda d: abs(_stamp_s(d) - t), default=None)
        return best if best is not None and abs(_stamp_s(best) - t) <= slop_s else None

    def settle(final: bool) -> None:
        newest = _stamp_s(depths_seen[-1]) if depths_seen else -math.inf
        while pending and (final or not depth_topic or newest > _stamp_s(pending[0][1]) + slop_s):
            timestamp, image = pending.pop(0)
            frames.append((timestamp, image, nearest_depth(image) if depth_topic else None, info))

    for topic, msgtype, timestamp, data in iter_messages(paths, wanted):
        if topic == info_topic:
            info = _deserialize(msgtype, data)
        elif topic == depth_topic:
            depths_seen.append(_deserialize(msgtype, data))
        elif topic == color_topic:
            if count % max(1, every) == 0:
                pending.append((timestamp, _deserialize(msgtype, data)))
            count += 1
        settle(final=False)
        if limit is not None and len(frames) >= limit:
            break
    settle(final=True)
    queries = []
    for timestamp, image, depth, camera_info in frames[:limit]:
        for instruction in instructions:
            queries.append(RecordedQuery(
                timestamp_ns=timestamp, image=image, depth=depth, camera_info=camera_info,
                request={"instruction": instruction, "task": task, "settings": {}},
                raw=[(t, ros_type_name(m), serialize(m)) for t, m in (
                    (TOPICS["color"] if ros_type_name(image).endswith("/Image")
                     else TOPICS["color_compressed"], image),
                    (TOPICS["depth"], depth), (TOPICS["camera_info"], camera_info))
                    if m is not None]))
    return queries


# Settings and backends -------------------------------------------------------------------------

def _defaults() -> dict[str, Any]:
    from mimo_embodied_ros.ros.params import config_dir, node_parameters

    return node_parameters(config_dir() / "perception.yaml")


def parse_sets(items: list[str]) -> dict[str, Any]:
    """["model.max_pixels=100352", ...] -> {name: value}, values read as YAML scalars."""
    import yaml

    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ReplayError(f"--set takes NAME=VALUE (a perception node parameter), not {item!r}")
        out[name.strip()] = yaml.safe_load(value) if value.strip() else ""
    return out


def query_settings(recorded: dict[str, Any], overrides: dict[str, Any],
                   thinking: str = "") -> QuerySettings:
    """The recorded settings (node defaults for what is missing), then --set, then --thinking."""
    from mimo_embodied_ros.core.resize import MAX_PIXELS_PRESETS

    defaults = _defaults()
    base = {fld: defaults[name] for name, fld in SETTING_PARAMETERS.items() if name in defaults}
    known = {f.name for f in fields(QuerySettings)}
    base.update({k: v for k, v in recorded.items() if k in known})
    for name, value in overrides.items():
        if name == "model.image_preset":
            if value:
                base["max_pixels"] = MAX_PIXELS_PRESETS[value]
        elif name in SETTING_PARAMETERS:
            base[SETTING_PARAMETERS[name]] = value
    if thinking:
        base["think"] = base["plan_think"] = thinking == "think"
    return QuerySettings(**base)


def backend_settings(kind: str, overrides: dict[str, Any], settings: QuerySettings
                     ) -> dict[str, Any]:
    prefix = f"{kind}."
    values = {k[len(prefix):]: v for k, v in _defaults().items() if k.startswith(prefix)}
    values.update({k[len(prefix):]: v for k, v in overrides.items() if k.startswith(prefix)})
    for name in SHARED_MODEL_SETTINGS.get(kind, ()):
        values[name] = getattr(settings, name)
    return values


def check_overrides(overrides: dict[str, Any], kind: str) -> None:
    from mimo_embodied_ros.core.resize import MAX_PIXELS_PRESETS

    backend_prefixes = tuple(f"{k}." for k in BACKENDS if k != "recorded")
    for name, value in overrides.items():
        if name == "model.image_preset":
            if value and value not in MAX_PIXELS_PRESETS:
                raise ReplayError(f"model.image_preset {value!r}: use one of "
                                  f"{', '.join(MAX_PIXELS_PRESETS)}")
        elif name.startswith(backend_prefixes):
            if not name.startswith(f"{kind}."):
                raise ReplayError(f"--set {name} is for another backend than --backend {kind}")
        elif name not in SETTING_PARAMETERS:
            raise ReplayError(
                f"unknown --set {name}; use one of: model.image_preset, "
                f"{', '.join(SETTING_PARAMETERS)}, or {kind}.<setting>")


def recorded_answers(query: RecordedQuery) -> dict[str, str] | None:
    """A scripted answers mapping that makes the scripted backend answer as the model did."""
    result = query.result
    text = (result or {}).get("raw_text")
    if text is None and query.affordances is not None:
        text = query.affordances.raw_text
    if text is None and query.objects is not None:
        text = query.objects.raw_text
    if text is None:
        return None
    from mimo_embodied_ros.core.prompts import NO_THINK_SUFFIX

    key = query.instruction
    if (result or {}).get("retried_no_think"):
        # The thinking reply ran out without </think>; the no-think retry gave the recorded text.
        return {key: "<think>", key + NO_THINK_SUFFIX: text}
    return {key: text, key + NO_THINK_SUFFIX: text}


class RecordedBackend:
    """The scripted backend, re-pointed before each query at that query's recorded answer."""

    name = "scripted"

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._count = 0
        self._backend: Any = None
        self.model_id = "recorded"

    def use(self, query: RecordedQuery) -> bool:
        from mimo_embodied_ros.backends.factory import create_backend

        answers = recorded_answers(query)
        if answers is None:
            return False
        self._count += 1
        path = self._folder / f"answers_{self._count}.json"
        path.write_text(json.dumps(answers, ensure_ascii=False), encoding="utf-8")
        model_id = str((query.result or {}).get("model_id") or query.request.get("model_id")
                       or "recorded")
        self._backend = create_backend("scripted", {"answers_file": str(path),
                                                    "model_id": model_id})
        self.model_id = model_id
        return True

    def generate(self, request: Any) -> Any:
        return self._backend.generate(request)

    def close(self) -> None:
        """Nothing to free."""


# Comparing -------------------------------------------------------------------------------------

@dataclass
class Comparison:
    index: int
    instruction: str
    status: str  # "ok" / "failed"
    parse: str
    px: float  # worst pixel distance between recorded and new points (box centres); NaN: n/a
    d3: float  # worst 3D distance (metres); NaN: n/a
    time_ms: float
    recorded_ms: float
    same: bool | None  # None: nothing recorded to compare
    note: str = ""

    def line(self) -> str:
        px = "-" if math.isnan(self.px) else f"{self.px:.2f}"
        d3 = "-" if math.isnan(self.d3) else f"{self.d3:.4f}"
        was = "" if math.isnan(self.recorded_ms) else f" (recorded {self.recorded_ms:.1f} ms)"
        verdict = {True: "same", False: "DIFFERENT", None: "new"}[self.same]
        text = self.instruction if len(self.instruction) <= 60 else self.instruction[:57] + "..."
        note = f"  {self.note}" if self.note else ""
        return (f"[{self.index:3d}] {text!r}: {self.status} parse={self.parse} px={px} "
                f"3d={d3} m time={self.time_ms:.1f} ms{was} {verdict}{note}")


def _recorded_spatial(query: RecordedQuery) -> tuple[list, list] | None:
    """(pixels, 3D positions or None) the recording holds, from its result JSON or messages."""
    result = query.result
    if result and result.get("task") == "detect" or (not result and query.objects is not None):
        if result:
            items = result.get("objects", [])
            return ([((o["box_px"][0] + o["box_px"][2]) / 2, (o["box_px"][1] + o["box_px"][3]) / 2)
                     for o in items], [o.get("center") for o in items])
        items = query.objects.objects
        return ([((o.box_2d[0] + o.box_2d[2]) / 2, (o.box_2d[1] + o.box_2d[3]) / 2)
                 for o in items],
                [[o.center.position.x, o.center.position.y, o.center.position.z] if o.valid
                 else None for o in items])
    if result and result.get("task") in ("point", "region"):
        items = result.get("points", [])
        return [(p["u"], p["v"]) for p in items], [p.get("position") for p in items]
    if not result and query.affordances is not None:
        items = query.affordances.points
        return ([(p.u, p.v) for p in items],
                [[p.position.x, p.position.y, p.position.z] if p.depth_valid else None
                 for p in items])
    return None


def _new_spatial(result: QueryResult) -> tuple[list, list]:
    if result.objects:
        return ([((o.box_px[0] + o.box_px[2]) / 2, (o.box_px[1] + o.box_px[3]) / 2)
                 for o in result.objects],
                [None if o.box3d is None else list(o.box3d.center) for o in result.objects])
    return ([(p.u, p.v) for p in result.points],
            [None if p.position is None else list(p.position) for p in result.points])


def _worst(pairs: list[float]) -> float:
    return max(pairs) if pairs else math.nan


def compare(index: int, query: RecordedQuery, result: QueryResult,
            instruction_changed: bool = False) -> Comparison:
    parse = result.parsed.status if result.parsed else (result.error_kind or "-")
    recorded = query.result or {}
    cmp = Comparison(
        index=index, instruction=result.instruction, status="ok" if result.success else "failed",
        parse=parse, px=math.nan, d3=math.nan, time_ms=result.timings_ms.get("total_ms", math.nan),
        recorded_ms=float(recorded.get("timings_ms", {}).get("total_ms") or math.nan),
        same=None,
    )
    if not result.success:
        cmp.note = result.message[:120]
    old = None if instruction_changed else _recorded_spatial(query)
    if old is None:
        if recorded and not instruction_changed:
            cmp.same = (bool(recorded.get("success")) == result.success
                        and recorded.get("message") == result.message)
        return cmp
    new = _new_spatial(result)
    if len(old[0]) != len(new[0]):
        cmp.same = False
        cmp.note = f"{len(old[0])} recorded, {len(new[0])} now; " + cmp.note
        return cmp
    cmp.px = _worst([math.hypot(a[0] - b[0], a[1] - b[1])
                     for a, b in zip(old[0], new[0], strict=True)])
    cmp.d3 = _worst([math.dist(a, b) for a, b in zip(old[1], new[1], strict=True)
                     if a is not None and b is not None])
    lifted_old = [a is not None for a in old[1]]
    lifted_new = [b is not None for b in new[1]]
    recorded_success = recorded.get("success", result.success) if recorded else result.success
    cmp.same = (recorded_success == result.success and lifted_old == lifted_new
                and (math.isnan(cmp.px) or cmp.px <= SAME_PX))
    return cmp


def summary(comparisons: list[Comparison]) -> str:
    n = len(comparisons)
    same = sum(c.same is True for c in comparisons)
    differ = sum(c.same is False for c in comparisons)
    failed = sum(c.status == "failed" for c in comparisons)

    def median(values: list[float], fmt: str) -> str:
        values = [v for v in values if not math.isnan(v)]
        return format(statistics.median(values), fmt) if values else "-"

    return (f"replay: {n} queries, {same} same within {SAME_PX:g} px, {differ} different, "
            f"{n - same - differ} not compared, {failed} failed; "
            f"median px={median([c.px for c in comparisons], '.2f')} "
            f"3d={median([c.d3 for c in comparisons], '.4f')} m "
            f"time={median([c.time_ms for c in comparisons], '.1f')} ms "
            f"(recorded {median([c.recorded_ms for c in comparisons], '.1f')} ms)")


# Running ---------------------------------------------------------------------------------------

def replay(
    queries: list[RecordedQuery], backend_kind: str = "recorded",
    overrides: dict[str, Any] | None = None, thinking: str = "",
    write: str | Path | None = None, instructions: list[str] | None = None,
    task: str | None = None, out: Any = None,
) -> list[Comparison]:
    """Run every query again; prints one line per query and the summary to ``out`` (stdout)."""
    out = out if out is not None else sys.stdout
    from mimo_embodied_ros.backends.factory import create_backend
    from mimo_embodied_ros.ros.frames import frame_from_synced
    from mimo_embodied_ros.ros.images import ImageConversionError
    from mimo_embodied_ros.ros.sync import SyncedFrame

    overrides = dict(overrides or {})
    if backend_kind not in BACKENDS:
        raise ReplayError(f"unknown backend {backend_kind!r}; use one of {', '.join(BACKENDS)}")
    check_overrides(overrides, backend_kind)
    runs: list[tuple[RecordedQuery, str, bool]] = []
    for query in queries:
        if instructions:
            runs.extend((query, text, text != query.instruction) for text in instructions)
        else:
            runs.append((query, query.instruction, False))
    comparisons: list[Comparison] = []
    writer = BagWriter(write) if write else None
    scratch = tempfile.TemporaryDirectory(prefix="mimo_replay_")
    backend: Any = None
    last_ns = 0
    try:
        if backend_kind == "recorded":
            backend = RecordedBackend(Path(scratch.name))
        else:
            first = query_settings(queries[0].request.get("settings", {}) if queries else {},
                                   overrides, thinking)
            try:
                backend = create_backend(backend_kind,
                                         backend_settings(backend_kind, overrides, first))
            except Exception as error:  # noqa: BLE001 - a bad path or server: say so and stop
                raise ReplayError(f"cannot create the {backend_kind} backend: {error}") from error
        for index, (query, instruction, changed) in enumerate(runs, 1):
            settings = query_settings(query.request.get("settings", {}), overrides, thinking)
            query_task = task if task is not None else str(query.request.get("task", ""))
            if backend_kind == "recorded" and (changed or not backend.use(query)):
                result = QueryResult(success=False, instruction=instruction, message=(
                    "no recorded answer for this instruction (use another --backend)"))
            else:
                try:
                    frame = frame_from_synced(SyncedFrame(query.image, query.depth,
                                                          query.camera_info))
                except (ImageConversionError, ValueError) as error:
                    result = QueryResult(success=False, instruction=instruction,
                                         message=f"camera frame rejected: {error}")
                else:
                    result = run_query(backend, frame, instruction, query_task, settings)
            comparison = compare(index, query, result, changed)
            comparisons.append(comparison)
            print(comparison.line(), file=out, flush=True)
            if writer is not None:  # one timestamp per query, unique (replay groups by it)
                last_ns = max(query.timestamp_ns, last_ns + 1)
                _write_replayed(writer, query, result, backend_kind, index, last_ns)
        print(summary(comparisons), file=out, flush=True)
    finally:
        if backend is not None:
            backend.close()
        scratch.cleanup()
        if writer is not None:
            done = writer.close()
            print(f"replay: wrote {done}", file=out, flush=True)
    return comparisons


def _write_replayed(writer: BagWriter, query: RecordedQuery, result: QueryResult,
                    backend_kind: str, index: int, timestamp_ns: int) -> None:
    """The original messages of the query and the replayed results, at the query's timestamp."""
    from mimo_embodied_ros.core.prompts import Task
    from mimo_embodied_ros.ros import conversions

    messages = list(query.raw)
    if not any(m[0] == TOPICS["request"] for m in messages):
        messages.insert(0, (TOPICS["request"], "std_msgs/msg/String",
                            json_string({**query.request, "seq": index})))
    header = query.image.header
    replayed = {**describe_result(result), "seq": index, "backend": backend_kind}
    messages.append((REPLAY_TOPICS["result"], "std_msgs/msg/String", json_string(replayed)))
    if result.reply is not None and result.task is Task.POINT:
        msg = conversions.affordances_msg(result, header, backend_kind)
        messages.append((REPLAY_TOPICS["affordances"], ros_type_name(msg), serialize(msg)))
    elif result.reply is not None and result.task is Task.DETECT:
        msg = conversions.objects_msg(result, header, backend_kind)
        messages.append((REPLAY_TOPICS["objects"], ros_type_name(msg), serialize(msg)))
    writer.write_messages(messages, timestamp_ns)


def export_answers(queries: list[RecordedQuery], path: str | Path) -> int:
    """A scripted answers file (YAML) keyed by instruction from the recorded raw texts; a later
    query with the same instruction wins. Returns how many instructions it holds."""
    import yaml

    answers: dict[str, str] = {}
    for query in queries:
        answers.update(recorded_answers(query) or {})
    Path(path).write_text(yaml.safe_dump(answers, allow_unicode=True, sort_keys=False),
                          encoding="utf-8")
    return len({k.removesuffix(" /no_think") for k in answers})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mimo_embodied_ros.replay",
        description="Replay recorded perception queries with any backend and settings.")
    parser.add_argument("bag", help="a bag directory, a .mcap file, or a folder of bags")
    parser.add_argument("--backend", default="recorded", choices=BACKENDS,
                        help="recorded (default): the recorded model text, through the scripted "
                             "backend; or a model backend configured with --set")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME=VALUE",
                        help="perception node parameter, e.g. model.max_pixels=100352, "
                             "model.image_preset=launcher, transformers.model_path=DIR, "
                             "openai.base_url=URL, scripted.answers_file=FILE")
    parser.add_argument("--thinking", choices=("think", "no_think"), default="",
                        help="override the recorded thinking mode")
    parser.add_argument("--write", metavar="OUT", help="a bag (OUT.mcap: one file) with the "
                        "recorded messages and the replayed results (/mimo_embodied/replay/*)")
    parser.add_argument("--answers-out", metavar="FILE",
                        help="also write a scripted answers file from the recorded texts")
    parser.add_argument("--instruction", action="append", default=[],
                        help="run this instruction instead (repeatable); needed for camera bags")
    parser.add_argument("--task", default=None, help="task for --instruction ('' = auto)")
    parser.add_argument("--color-topic")
    parser.add_argument("--depth-topic")
    parser.add_argument("--camera-info-topic")
    parser.add_argument("--every", type=int, default=1, help="camera bags: every N-th frame")
    parser.add_argument("--limit", type=int, default=None, help="at most this many queries")
    args = parser.parse_args(argv)
    try:
        queries = read_queries(args.bag)
        if not queries:
            if not args.instruction:
                raise ReplayError(f"{args.bag} holds no recorded query; for a camera bag give "
                                  "--instruction TEXT")
            queries = camera_queries(
                args.bag, args.instruction, args.task or "", args.color_topic,
                args.depth_topic, args.camera_info_topic, every=args.every, limit=args.limit)
            instructions = None
        else:
            instructions = args.instruction or None
            queries = queries[:args.limit]
        if args.answers_out:
            count = export_answers(queries, args.answers_out)
            print(f"replay: {count} instruction(s) written to {args.answers_out}")
        replay(queries, args.backend, parse_sets(args.sets), args.thinking, args.write,
               instructions, args.task)
    except ReplayError as error:
        print(f"replay: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
