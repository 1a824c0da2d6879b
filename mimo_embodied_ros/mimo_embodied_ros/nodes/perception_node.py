"""Perception node `mimo_embodied`: camera topics + instruction -> keypoints, 3D points, 3D boxes.

A lifecycle node: configuring it loads the model backend and runs a self-check on it, cleaning up
frees it, so an operator can swap checkpoints without restarting the camera pipeline.
Subscription callbacks only store messages; queries run on the latest synchronized frame through
one QueryEngine (one query at a time) shared by the `~/instruct` service, the `~/query` action
(feedback, cancellation that stops the generation) and continuous mode. Whatever the model or its
server returns, a query ends in a result with a message; nothing it returns ends the process.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from mimo_embodied_msgs.msg import Affordances, Objects3D
from mimo_embodied_msgs.srv import Instruct
from mimo_embodied_ros.backends.factory import create_backend
from mimo_embodied_ros.core.prompts import Task
from mimo_embodied_ros.core.resize import MAX_PIXELS_PRESETS, warm_up_resize
from mimo_embodied_ros.core.text import safe_text
from mimo_embodied_ros.perception import (
    Frame,
    QueryResult,
    QuerySettings,
)
from mimo_embodied_ros.perception_parameters import (
    PARAMETERS,
    READ_ONLY,
    SHARED_MODEL_SETTINGS,
    check_change,
    check_value,
)
from mimo_embodied_ros.query_engine import QueryEngine
from mimo_embodied_ros.recording import QueryRecorder, recording_from_result
from mimo_embodied_ros.ros import conversions
from mimo_embodied_ros.ros.diagnostics import diagnostics_msg
from mimo_embodied_ros.ros.frames import camera_frame, request_frame
from mimo_embodied_ros.ros.images import array_to_image
from mimo_embodied_ros.ros.params import config_file, declare_from_config
from mimo_embodied_ros.ros.qos import qos_by_name
from mimo_embodied_ros.ros.query_server import QueryActionServer
from mimo_embodied_ros.ros.spin import spin_node
from mimo_embodied_ros.ros.sync import FrameSynchronizer, SyncedFrame
from mimo_embodied_ros.ros.vision_msgs_adapter import create_vision_publishers
from mimo_embodied_ros.self_check import DEFAULT_SIZE, run_self_check

NODE_NAME = "mimo_embodied"

class PerceptionNode(LifecycleNode):
    """Serves ~/instruct and ~/query and publishes what the model finds on the latest frame."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        declare_from_config(self, PARAMETERS, "perception.yaml", read_only=READ_ONLY)
        for name in PARAMETERS:
            problem = check_value(name, self.param(name))
            if problem is not None:
                raise ValueError(f"invalid parameter: {problem}")
        self._engine = QueryEngine(self.param("queue_policy"),
                                   self.param("max_concurrent_queries"))
        self._active = False
        self._configured = False
        self._recorder: QueryRecorder | None = None
        self._subscriptions: list[Any] = []
        self._last: dict[str, Any] = {"message": "no query yet", "total_ms": float("nan")}
        self._image_check = ""
        self._self_check = "not run"
        self._publish_lock = threading.Lock()
        self._last_debug_image = 0.0
        self._last_continuous_image: Any = None
        self._sync = FrameSynchronizer(slop_s=self.param("sync_slop_s"), use_depth=False)
        self._sensor_group = ReentrantCallbackGroup()
        self._affordances_pub = self.create_lifecycle_publisher(Affordances, "~/affordances", 10)
        self._objects_pub = self.create_lifecycle_publisher(Objects3D, "~/objects", 10)
        self._markers_pub = self.create_lifecycle_publisher(MarkerArray, "~/markers", 10)
        self._debug_pub = self.create_lifecycle_publisher(Image, "~/debug_image", 2)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._vision_pubs = create_vision_publishers(self)
        queries = ReentrantCallbackGroup()  # the engine decides who waits
        self.create_service(Instruct, "~/instruct", self._on_instruct, callback_group=queries)
        self._query_server = QueryActionServer(self, "~/query", self._answer, self._fill, queries)
        self._continuous_group = MutuallyExclusiveCallbackGroup()
        self.create_timer(self.param("diagnostics_period_s"), self._publish_diagnostics)
        self._continuous_timer = None
        self.add_on_set_parameters_callback(self._on_set_parameters)
        if self.param("autostart") and self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    def param(self, name: str) -> Any:
        return self.get_parameter(name).value

    def _on_set_parameters(self, parameters: list[Any]) -> SetParametersResult:
        """Apply a change at once, or refuse it with the reason (never accept and ignore it)."""
        for parameter in parameters:
            if parameter.name not in PARAMETERS:
                continue
            problem = check_change(parameter.name, parameter.value, self._configured,
                                   self._active)
            if problem is not None:
                return SetParametersResult(successful=False, reason=problem)
        for parameter in parameters:
            if parameter.name == "queue_policy":
                self._engine.policy = parameter.value
        return SetParametersResult(successful=True)

    # Lifecycle ---------------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        kind = self.param("backend")
        prefix = f"{kind}."
        settings = {
            name[len(prefix):]: self.param(name) for name in PARAMETERS if name.startswith(prefix)
        }
        if settings.get("answers_file"):  # a bare name is a file of the package's config/
            settings["answers_file"] = str(config_file(settings["answers_file"]))
        model_settings = self._settings()
        for name in SHARED_MODEL_SETTINGS.get(kind, ()):
            settings[name] = getattr(model_settings, name)
        try:
            backend = create_backend(kind, settings)
        except Exception as error:  # a bad checkpoint path must not take the node down
            self.get_logger().error(f"cannot create the '{kind}' backend: {error}")
            self._last["message"] = f"backend '{kind}' failed to load: {error}"
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info(f"backend '{kind}' ready, model '{backend.model_id}'")
        self.get_logger().info(warm_up_resize())
        if not self._passes_self_check(backend, model_settings):
            backend.close()
            return TransitionCallbackReturn.FAILURE
        self._close_backend(self._engine.set_backend(backend))
        self._recorder = self._make_recorder()
        self._configured = True
        return super().on_configure(state)

    def _passes_self_check(self, backend: Any, settings: QuerySettings) -> bool:
        mode = self.param("self_check.mode")
        if mode == "off" or self.param("backend") == "scripted":
            self._self_check = f"skipped ({'off' if mode == 'off' else 'scripted backend'})"
            return True
        latest = self._sync.latest()
        size = DEFAULT_SIZE if latest is None else (latest.image.width, latest.image.height)
        report = run_self_check(backend, settings, self.param("self_check.max_new_tokens"),
                                size if min(size) > 0 else DEFAULT_SIZE)
        self._self_check = safe_text(report.summary())
        if report.ok:
            self.get_logger().info(self._self_check)
            return True
        if mode == "warn":
            self.get_logger().warning(f"{self._self_check} (self_check.mode: warn, going on)")
            return True
        self.get_logger().error(f"{self._self_check}; configure fails (self_check.mode: fail)")
        self._last["message"] = self._self_check
        return False

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._create_subscriptions()
        self._active = True
        instruction = self.param("continuous.instruction")
        if instruction:
            period = 1.0 / max(self.param("continuous.max_rate_hz"), 1e-3)
            self._continuous_timer = self.create_timer(
                period, self._on_continuous, callback_group=self._continuous_group
            )
            self.get_logger().info(f"continuous mode: '{instruction}' at most every {period:g} s")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        for subscription in self._subscriptions:  # an inactive node does no per-frame work
            self.destroy_subscription(subscription)
        self._subscriptions.clear()
        if self._continuous_timer is not None:
            self.destroy_timer(self._continuous_timer)
            self._continuous_timer = None
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unload()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self._unload()
        return super().on_shutdown(state)

    def _unload(self) -> None:
        """Free the model without waiting behind a generation: the one in flight is stopped."""
        self._configured = False
        self._engine.cancel_running()
        self._close_backend(self._engine.set_backend(None))
        recorder, self._recorder = self._recorder, None
        if recorder is not None:
            recorder.close()

    def _make_recorder(self) -> QueryRecorder | None:
        """The query recorder (record.folder set), else None."""
        folder = self.param("record.folder")
        if not folder:
            return None
        self.get_logger().info(f"recording every query to rosbag2 (MCAP) bags in {folder}")
        return QueryRecorder(folder, max_bytes=int(self.param("record.max_megabytes") * 2**20),
                             max_queries=self.param("record.max_queries_per_file"),
                             queue_size=self.param("record.queue_size"),
                             logger=self.get_logger())

    @property
    def recorder(self) -> QueryRecorder | None:
        """The recorder in use (None when recording is off)."""
        return self._recorder

    @staticmethod
    def _close_backend(backend: Any) -> None:
        if backend is not None:
            backend.close()

    # Inputs ------------------------------------------------------------------------------------

    def _create_subscriptions(self) -> None:
        """Camera subscriptions with the current parameters (made on activate)."""
        self._sync = FrameSynchronizer(slop_s=self.param("sync_slop_s"),
                                       use_depth=self.param("use_depth"))
        qos = qos_by_name(self.param("qos"))
        image_topic = self.param("image_topic")
        inputs = [(Image, image_topic, self._sync.add_image)]
        if self.param("image_transport") == "compressed":
            inputs = [(CompressedImage, f"{image_topic}/compressed", self._sync.add_image)]
        if self.param("use_depth"):
            inputs.append((Image, self.param("depth_topic"), self._sync.add_depth))
        inputs.append((CameraInfo, self.param("camera_info_topic"), self._sync.add_camera_info))
        self._subscriptions = [
            self.create_subscription(kind, topic, callback, qos, callback_group=self._sensor_group)
            for kind, topic, callback in inputs
        ]

    def _settings(self, think: bool | None = None) -> QuerySettings:
        """Query settings from the parameters; ``think`` overrides both thinking defaults."""
        preset = self.param("model.image_preset")
        return QuerySettings(
            max_pixels=MAX_PIXELS_PRESETS[preset] if preset else self.param("model.max_pixels"),
            min_pixels=self.param("model.min_pixels"),
            think=self.param("model.think") if think is None else think,
            plan_think=self.param("model.plan_think") if think is None else think,
            on_no_think_end=self.param("model.on_no_think_end"),
            max_new_tokens=self.param("model.max_new_tokens"),
            max_instruction_chars=self.param("max_instruction_chars"),
            depth_window=self.param("depth_window"),
            min_valid_depth_fraction=self.param("min_valid_depth_fraction"),
            require_depth=self.param("use_depth"),
        )

    # Queries -----------------------------------------------------------------------------------

    def _on_instruct(self, request: Instruct.Request, response: Instruct.Response) -> Any:
        result, header = self._answer(request)
        return self._fill(response, result, header)

    def _on_continuous(self) -> None:
        synced = self._sync.latest()
        if synced is None or synced.image is self._last_continuous_image:
            return  # nothing new since the last run: re-running would repeat the same answer
        self._last_continuous_image = synced.image
        result, _ = self._query(
            self.param("continuous.instruction"), self.param("continuous.task"),
            self._settings(), synced=synced, wait=False,
        )
        if not result.success and result.error_kind != "rejected":
            self.get_logger().warning(f"continuous query failed: {result.message}")

    def _answer(self, request: Any, cancel: threading.Event | None = None,
                on_progress: Any = None) -> tuple[QueryResult, Header]:
        """One Instruct / Query request -> result; never raises."""
        thinking = safe_text(request.thinking).strip()
        if thinking not in ("", "think", "no_think"):
            return QueryResult(success=False, instruction=safe_text(request.instruction),
                               message=f"thinking must be '', 'think' or 'no_think', not "
                                       f"'{thinking[:40]}'"), Header()
        settings = self._settings(None if not thinking else thinking == "think")
        image = request.image if request.image.width > 0 else None
        result, header = self._query(request.instruction, request.task.strip(), settings,
                                     image=image, cancel=cancel, on_progress=on_progress,
                                     thinking=thinking)
        self.get_logger().info(
            f"query '{safe_text(request.instruction[:80])}': "
            f"{'ok' if result.success else 'failed'}: {safe_text(result.message)}")
        return result, header

    def _query(
        self, instruction: str, task: str, settings: QuerySettings,
        synced: SyncedFrame | None = None, image: Image | None = None,
        cancel: threading.Event | None = None, on_progress: Any = None, wait: bool = True,
        thinking: str = "",
    ) -> tuple[QueryResult, Header]:
        """Run one query and publish its outputs; never raises.

        The frame is ``image`` when given (e.g. a rendered map: pixels only, nothing published on
        the camera-frame topics), else ``synced`` or the latest synchronized camera frame.
        """
        if not self._active:
            state = "inactive" if self._engine.backend is not None else "unconfigured"
            return QueryResult(
                success=False, instruction=instruction,
                message=f"node is {state}: configure and activate it (lifecycle) first",
            ), Header()
        synced = None if image is not None else (synced or self._sync.latest())
        frame, header, problem = (
            request_frame(image) if image is not None else camera_frame(
                synced, self._sync.missing(),
                self.param("camera_info_topic") if self.param("use_depth") else None,
                self.param("depth.assume_registered"))
        )
        if frame is None:
            return QueryResult(success=False, instruction=instruction, message=problem), header
        if image is not None:
            settings = QuerySettings(**{**settings.__dict__, "require_depth": False})
        result = self._engine.run(frame, instruction, task, settings, cancel, on_progress, wait)
        if result.reply is not None and result.reply.image_check:
            self._note_image_check(result.reply.image_check)
        published: tuple[Any, Any] = (None, None)
        try:
            published = self._publish(result, header, frame, on_camera=image is None)
        except Exception as error:  # noqa: BLE001 - drawing or a message field refused the answer
            result = self._internal_error(result, "publishing the results", error)
        if self._recorder is not None:  # off the query's path: a bounded queue, never blocks
            self._recorder.submit(recording_from_result(
                image if image is not None else synced.image,
                None if synced is None else synced.depth,
                None if synced is None else synced.camera_info, result,
                task=task, thinking=thinking, settings=settings, backend=self.param("backend"),
                model_id=result.reply.model_id if result.reply else "",
                affordances=published[0], objects=published[1]))
        self._last = {"message": result.message, "total_ms": result.timings_ms.get("total_ms")}
        return result, header

    def _internal_error(self, result: QueryResult, what: str, error: Exception) -> QueryResult:
        self._engine.count("internal")
        message = safe_text(f"internal error while {what}: {error!r}")
        self.get_logger().error(f"{message} (query '{safe_text(result.instruction[:60])}')")
        result.success, result.message, result.error_kind = False, message, "internal"
        return result

    def _fill(self, response: Any, result: QueryResult, header: Header) -> Any:
        """Fill an Instruct response / Query result; a field that refuses a value gives a bare
        failed response with the reason instead of an exception."""
        try:
            return conversions.fill_instruct_response(response, result, header,
                                                      self.param("backend"))
        except Exception as error:  # noqa: BLE001
            self._internal_error(result, "filling the response", error)
            bare = type(response)()
            bare.success, bare.message = False, result.message
            bare.task = result.task.value if result.task else ""
            return bare

    def _note_image_check(self, check: str) -> None:
        if check == "unverified" and self._image_check != "unverified":
            self.get_logger().warning(
                "the model server reports no token usage: the node cannot verify that the server "
                "saw the image at the size the node sent (image_check: unverified)")
        self._image_check = check

    def _publish(
        self, result: QueryResult, header: Header, frame: Frame, on_camera: bool = True
    ) -> tuple[Any, Any]:
        """Publish a query's outputs; returns the (Affordances, Objects3D) messages sent."""
        backend = self.param("backend")
        affordances = objects = None
        with self._publish_lock:
            if result.reply is not None and on_camera:
                if result.task is Task.POINT:
                    affordances = conversions.affordances_msg(result, header, backend)
                    self._affordances_pub.publish(affordances)
                elif result.task is Task.DETECT:
                    objects = conversions.objects_msg(result, header, backend)
                    self._objects_pub.publish(objects)
                if self._vision_pubs is not None and result.task in (Task.POINT, Task.DETECT):
                    self._vision_pubs.publish(result, header)
                self._markers_pub.publish(
                    conversions.markers_msg(result, header, self.param("markers.lifetime_s")))
            rate = self.param("debug_image.max_rate_hz")
            now = time.monotonic()
            if rate > 0 and now - self._last_debug_image >= 1.0 / rate:
                self._last_debug_image = now
                image = conversions.annotated_rgb(frame.rgb, result, frame.intrinsics)
                self._debug_pub.publish(array_to_image(image, "rgb8", header))
        return affordances, objects

    def _publish_diagnostics(self) -> None:
        missing = self._sync.missing()
        backend = self._engine.backend
        warn = (backend is None or not self._active or missing is not None
                or self._image_check == "unverified")
        values = {
            "backend": self.param("backend"),
            "model_id": backend.model_id if backend is not None else "",
            "active": str(self._active),
            "inputs": missing or "ok",
            "self_check": self._self_check,
            "image_check": self._image_check or "none yet",
            "last_query": str(self._last["message"]),
            "last_query_ms": f"{self._last['total_ms']}",
            **{f"queries_{k}": str(v) for k, v in sorted(self._engine.counts.items())},
            **{f"received_{k}": str(v) for k, v in self._sync.counts.items()},
            **(self._recorder.status() if self._recorder is not None else {}),
        }
        warn = warn or values.get("record_state") == "error"
        self._diagnostics_pub.publish(diagnostics_msg(
            f"{self.get_name()}: perception", values, warn, missing or values["last_query"],
            self.get_clock().now().to_msg()))

    def destroy_node(self) -> None:
        self._unload()
        self._query_server.destroy()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    spin_node(PerceptionNode, args)


if __name__ == "__main__":
    main()
