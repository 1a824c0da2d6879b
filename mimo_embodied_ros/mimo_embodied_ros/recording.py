"""Record every perception query into rosbag2 (MCAP) files, off the query's path.

A query's recording holds the standard camera messages it ran on (sensor_msgs/Image or
CompressedImage, depth Image, CameraInfo), the request and the outcome as std_msgs/String JSON, and
the published mimo_embodied_msgs Affordances / Objects3D. Messages are serialized with
rclpy.serialization (the CDR bytes ROS itself records) and written with the `rosbags` library,
whose typestore carries the message definitions, so every bag is self-describing: `ros2 bag play`,
Foxglove and `rosbags` read it without this package. All messages of one query share one bag
timestamp (unique and increasing per recorder), which is how replay.py groups them.

`QueryRecorder.submit()` only puts a reference on a bounded queue: a full queue drops the query
from the recording (counted, warned once per `warn_every`), never delays it. One writer thread
serializes and writes; files rotate by size or query count, and an idle bag is closed so a crash
loses little. Disk-full or unwritable folders become `status()["last_error"]`, never an exception
to the caller.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RECORD_NS = "/mimo_embodied/record"
TOPICS = {
    "request": f"{RECORD_NS}/request",  # std_msgs/String, JSON (see describe_request)
    "color": f"{RECORD_NS}/color",  # sensor_msgs/Image
    "color_compressed": f"{RECORD_NS}/color/compressed",  # sensor_msgs/CompressedImage
    "depth": f"{RECORD_NS}/depth",  # sensor_msgs/Image
    "camera_info": f"{RECORD_NS}/camera_info",  # sensor_msgs/CameraInfo
    "result": f"{RECORD_NS}/result",  # std_msgs/String, JSON (see describe_result)
    "affordances": f"{RECORD_NS}/affordances",  # mimo_embodied_msgs/Affordances
    "objects": f"{RECORD_NS}/objects",  # mimo_embodied_msgs/Objects3D
}
FORMAT_VERSION = 1
CUSTOM_TYPES = ("Timings", "AffordancePoint", "Affordances", "Object3D", "Objects3D")
BAG_PREFIX = "mimo_query"


# Message types ---------------------------------------------------------------------------------

def _msg_dir() -> Path:
    """msg/ of mimo_embodied_msgs: installed (what rclpy was generated from), else the sources."""
    try:
        from ament_index_python.packages import get_package_share_directory

        installed = Path(get_package_share_directory("mimo_embodied_msgs")) / "msg"
        if installed.is_dir():
            return installed
    except (ImportError, LookupError, ValueError):
        pass
    return Path(__file__).resolve().parents[2] / "mimo_embodied_msgs" / "msg"


@functools.lru_cache(maxsize=1)
def bag_typestore() -> Any:
    """A rosbags typestore with ROS 2 Jazzy's standard types and this project's messages."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    folder = _msg_dir()
    types: dict[str, Any] = {}
    for name in CUSTOM_TYPES:
        text = (folder / f"{name}.msg").read_text(encoding="utf-8")
        types.update(get_types_from_msg(text, f"mimo_embodied_msgs/msg/{name}"))
    store.register(types)
    return store


def ros_type_name(msg: Any) -> str:
    """'sensor_msgs/msg/Image' for an rclpy message instance."""
    module = type(msg).__module__.split(".")  # e.g. sensor_msgs.msg._image
    return f"{module[0]}/msg/{type(msg).__name__}"


def serialize(msg: Any) -> bytes:
    from rclpy.serialization import serialize_message

    return serialize_message(msg)


def json_string(data: Mapping[str, Any]) -> bytes:
    """A std_msgs/String holding ``data`` as JSON, serialized (non-finite floats become null)."""
    from std_msgs.msg import String

    return serialize(String(data=json.dumps(_finite(data), ensure_ascii=False)))


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


# What is recorded ------------------------------------------------------------------------------

@dataclass
class QueryRecording:
    """One query as the node ran it: raw camera messages, request, model text, published results.

    ``request`` is describe_request(...)'s dict (any JSON-able dict works); ``result`` is
    describe_result(...)'s dict, used by replay to compare (optional: the Affordances / Objects3D
    messages are enough for point and detect queries).
    """

    image: Any  # sensor_msgs/Image or CompressedImage
    depth: Any | None
    camera_info: Any | None
    request: dict[str, Any]
    raw_text: str = ""
    affordances: Any | None = None  # mimo_embodied_msgs/Affordances, as published
    objects: Any | None = None  # mimo_embodied_msgs/Objects3D, as published
    result: dict[str, Any] | None = None


def describe_request(
    instruction: str, task: str, thinking: str, settings: Any, backend: str, model_id: str
) -> dict[str, Any]:
    """The request part of a recording. ``settings`` is the QuerySettings the query ran with;
    ``task`` and ``thinking`` as asked ("" = auto / the node's default)."""
    fields = dataclasses.asdict(settings) if dataclasses.is_dataclass(settings) else dict(settings)
    return {
        "instruction": instruction,
        "task": task,
        "thinking": thinking,
        "settings": fields,
        "backend": backend,
        "model_id": model_id,
    }


def describe_result(result: Any) -> dict[str, Any]:
    """The outcome part of a recording, from a perception.QueryResult."""
    parsed, reply = result.parsed, result.reply
    return {
        "success": bool(result.success),
        "message": result.message,
        "task": result.task.value if result.task is not None else "",
        "parse_status": parsed.status if parsed is not None else "",
        "raw_text": reply.text if reply is not None else "",
        "model_id": reply.model_id if reply is not None else "",
        "had_reply": reply is not None,
        "retried_no_think": bool(result.retried_no_think),
        "error_kind": result.error_kind,
        "resized": [result.resized.width, result.resized.height] if result.resized else None,
        "timings_ms": dict(result.timings_ms),
        "points": [
            {"u": p.u, "v": p.v, "in_image": bool(p.in_image), "status": p.status,
             "position": None if p.position is None else [float(x) for x in p.position]}
            for p in result.points
        ],
        "objects": [
            {"box_px": [float(x) for x in o.box_px], "in_image": bool(o.in_image),
             "status": o.status,
             "center": None if o.box3d is None else [float(x) for x in o.box3d.center],
             "size": None if o.box3d is None else [float(x) for x in o.box3d.size]}
            for o in result.objects
        ],
    }


def recording_from_result(
    image: Any, depth: Any | None, camera_info: Any | None, result: Any, *, task: str,
    thinking: str, settings: Any, backend: str, model_id: str,
    affordances: Any | None = None, objects: Any | None = None,
) -> QueryRecording:
    """Everything the node has after publishing, as one QueryRecording (cheap: no copies)."""
    return QueryRecording(
        image=image, depth=depth, camera_info=camera_info,
        request=describe_request(result.instruction, task, thinking, settings, backend, model_id),
        raw_text=result.reply.text if result.reply is not None else "",
        affordances=affordances, objects=objects, result=describe_result(result),
    )


# One bag ---------------------------------------------------------------------------------------

def _stamp(msg: Any) -> dict[str, int]:
    stamp = msg.header.stamp
    return {"sec": int(stamp.sec), "nanosec": int(stamp.nanosec)}


def query_messages(
    recording: QueryRecording, seq: int, extra: Mapping[str, Any] | None = None
) -> list[tuple[str, str, bytes]]:
    """(topic, type, CDR bytes) of one query, request first."""
    request = {
        **recording.request, "format": FORMAT_VERSION, "seq": seq,
        "stamp": _stamp(recording.image), "frame_id": recording.image.header.frame_id,
        "has_depth": recording.depth is not None,
        "has_camera_info": recording.camera_info is not None,
        **(extra or {}),
    }
    image_type = ros_type_name(recording.image)
    compressed = image_type.endswith("CompressedImage")
    color = TOPICS["color_compressed"] if compressed else TOPICS["color"]
    out = [(TOPICS["request"], "std_msgs/msg/String", json_string(request)),
           (color, image_type, serialize(recording.image))]
    if recording.depth is not None:
        out.append((TOPICS["depth"], ros_type_name(recording.depth), serialize(recording.depth)))
    if recording.camera_info is not None:
        out.append((TOPICS["camera_info"], ros_type_name(recording.camera_info),
                    serialize(recording.camera_info)))
    result = {**(recording.result or {}), "seq": seq, "raw_text": recording.raw_text}
    out.append((TOPICS["result"], "std_msgs/msg/String", json_string(result)))
    for key, msg in (("affordances", recording.affordances), ("objects", recording.objects)):
        if msg is not None:
            out.append((TOPICS[key], ros_type_name(msg), serialize(msg)))
    return out


class BagWriter:
    """One rosbag2 (MCAP) being written: a directory, or a single .mcap file when the path ends
    in .mcap (written in a directory beside it and moved into place on close)."""

    def __init__(self, path: str | Path) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        self.path = Path(path)
        self._single = self.path.suffix == ".mcap"
        self._dir = self.path.with_name(self.path.stem + ".bagdir") if self._single else self.path
        self._writer = Writer(self._dir, version=Writer.VERSION_LATEST,
                              storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._connections: dict[tuple[str, str], Any] = {}
        self.bytes = 0
        self.queries = 0

    def write(self, topic: str, msgtype: str, timestamp_ns: int, data: bytes) -> None:
        key = (topic, msgtype)
        connection = self._connections.get(key)
        if connection is None:
            connection = self._writer.add_connection(topic, msgtype, typestore=bag_typestore())
            self._connections[key] = connection
        self._writer.write(connection, timestamp_ns, data)
        self.bytes += len(data) + 40  # record + index overhead, roughly

    def write_messages(self, messages: list[tuple[str, str, bytes]], timestamp_ns: int) -> None:
        for topic, msgtype, data in messages:
            self.write(topic, msgtype, timestamp_ns, data)
        self.queries += 1

    def close(self) -> Path:
        """Finish the file (summary, metadata.yaml); returns what a reader opens."""
        self._writer.close()
        if not self._single:
            return self.path
        (self._dir / f"{self._dir.name}.mcap").replace(self.path)
        for leftover in self._dir.iterdir():
            leftover.unlink()
        self._dir.rmdir()
        return self.path

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.abort()


# The recorder ----------------------------------------------------------------------------------

_STOP = object()


class QueryRecorder:
    """Writes submitted QueryRecordings to rotating rosbag2 (MCAP) bags under ``folder``.

    ``max_bytes`` / ``max_queries``: a bag is closed and the next one started before it would
    exceed either (0 = no limit). ``idle_close_s``: a bag nobody wrote to for this long is closed
    (a readable file even if the process is killed later; the next query starts a new bag).
    ``retry_s``: after a write failure (disk full, folder unwritable), queries arriving within
    this time are counted as failed without touching the disk, then writing is tried again.
    """

    def __init__(
        self, folder: str | Path, max_bytes: int = 512 * 2**20, max_queries: int = 500,
        queue_size: int = 8, logger: Any = None, warn_every: int = 20,
        idle_close_s: float = 10.0, retry_s: float = 5.0,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.folder = Path(folder).expanduser()
        self.max_bytes = max(0, int(max_bytes))
        self.max_queries = max(0, int(max_queries))
        self.warn_every = max(1, int(warn_every))
        self.idle_close_s = float(idle_close_s)
        self.retry_s = float(retry_s)
        self._logger = logger
        self._clock_ns = clock_ns
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, int(queue_size)))
        self._lock = threading.Lock()
        self._closed = False
        self._seq = 0
        self._last_stamp_ns = 0
        self._bag: BagWriter | None = None
        self._failed_until = 0.0
        self._counts = {"submitted": 0, "written": 0, "dropped": 0, "failed": 0, "files": 0}
        self._current = ""
        self._last_file = ""
        self._last_error = ""
        self._thread = threading.Thread(target=self._run, name="query-recorder", daemon=True)
        self._thread.start()

    # Caller side (any thread) ---------------------------------------------------------------

    def submit(self, recording: QueryRecording) -> bool:
        """Queue one query for writing; never blocks, never raises. False: not recorded (the
        queue was full or the recorder is closed)."""
        try:
            with self._lock:
                if self._closed:
                    return False
                self._counts["submitted"] += 1
                self._seq += 1
                stamp = max(self._clock_ns(), self._last_stamp_ns + 1)
                self._last_stamp_ns = stamp
                item = (self._seq, stamp, recording)
            try:
                self._queue.put_nowait(item)
                return True
            except queue.Full:
                with self._lock:
                    self._counts["dropped"] += 1
                    dropped = self._counts["dropped"]
                if dropped % self.warn_every == 1 or self.warn_every == 1:
                    self._log("warning", f"recording queue full ({self._queue.maxsize}): query "
                              f"{item[0]} not recorded ({dropped} dropped so far)")
                return False
        except Exception as error:  # noqa: BLE001 - recording must never fail a query
            self._note_error(f"submit failed: {error!r}")
            return False

    def status(self) -> dict[str, str]:
        """For diagnostics: all values are text."""
        with self._lock:
            counts = dict(self._counts)
            state = ("closed" if self._closed else "error" if self._failed_until
                     else "recording" if self._current else "idle")
            return {
                "record_folder": str(self.folder),
                "record_state": state,
                "record_files": str(counts["files"]),
                "record_current_file": self._current,
                "record_last_file": self._last_file,
                "record_queries_written": str(counts["written"]),
                "record_dropped_queue_full": str(counts["dropped"]),
                "record_failed": str(counts["failed"]),
                "record_queued": str(self._queue.qsize()),
                "record_last_error": self._last_error or "none",
            }

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every queued query is written (for tests and shutdown)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.005)
        return False

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued, finish the current bag, stop the thread. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        deadline = time.monotonic() + timeout_s
        while self._thread.is_alive() and time.monotonic() < deadline:
            try:
                self._queue.put(_STOP, timeout=0.1)
                break
            except queue.Full:
                continue
        self._thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> QueryRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Writer thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self.idle_close_s if self._bag else None)
            except queue.Empty:
                self._finish_bag()
                continue
            try:
                if item is _STOP:
                    self._finish_bag()
                    return
                self._write(*item)
            except Exception as error:  # noqa: BLE001 - the thread must survive anything
                self._note_error(f"unexpected recorder error: {error!r}")
            finally:
                self._queue.task_done()

    def _write(self, seq: int, stamp_ns: int, recording: QueryRecording) -> None:
        if time.monotonic() < self._failed_until:
            with self._lock:
                self._counts["failed"] += 1
            return
        try:
            messages = query_messages(recording, seq)
        except Exception as error:  # noqa: BLE001 - a message rclpy cannot serialize
            with self._lock:
                self._counts["failed"] += 1
            self._note_error(f"query {seq} could not be serialized: {error!r}")
            return
        size = sum(len(m[2]) + 40 for m in messages)
        bag = self._bag
        if bag is not None and bag.queries and (
                (self.max_queries and bag.queries >= self.max_queries)
                or (self.max_bytes and bag.bytes + size > self.max_bytes)):
            self._finish_bag()
        try:
            if self._bag is None:
                self._open_bag()
            assert self._bag is not None
            self._bag.write_messages(messages, stamp_ns)
        except Exception as error:  # noqa: BLE001 - OSError (ENOSPC, EACCES), WriterError
            self._fail(f"cannot write query {seq} under {self.folder}: {error}")
            return
        with self._lock:
            self._counts["written"] += 1
            self._failed_until = 0.0

    def _open_bag(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        now = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")  # noqa: UP017 - Python 3.10
        for index in range(self._counts["files"], self._counts["files"] + 1000):
            path = self.folder / f"{BAG_PREFIX}_{now}_{index:04d}"
            if not path.exists():
                break
        bag = BagWriter(path)
        with self._lock:
            self._bag = bag
            self._counts["files"] += 1
            self._current = str(path)

    def _finish_bag(self) -> None:
        bag, self._bag = self._bag, None
        if bag is None:
            return
        try:
            done = bag.close()
            with self._lock:
                self._last_file = str(done)
        except Exception as error:  # noqa: BLE001
            bag.abort()
            self._note_error(f"cannot finish {bag.path}: {error}")
        finally:
            with self._lock:
                self._current = ""

    def _fail(self, message: str) -> None:
        bag, self._bag = self._bag, None
        if bag is not None:
            bag.abort()  # its queries are lost: a half-written file has no index
        with self._lock:
            self._counts["failed"] += 1
            self._current = ""
            self._failed_until = time.monotonic() + self.retry_s
        self._note_error(message)

    def _note_error(self, message: str) -> None:
        with self._lock:
            repeated = message == self._last_error
            self._last_error = message
        if not repeated:
            self._log("error", f"recording: {message}")

    def _log(self, level: str, message: str) -> None:
        if self._logger is None:
            return
        with contextlib.suppress(Exception):
            getattr(self._logger, level)(message)
