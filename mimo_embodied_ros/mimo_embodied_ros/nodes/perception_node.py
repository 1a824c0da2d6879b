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
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from mimo_embodied_msgs.msg import Affordances, Objects3D
from mimo_embodied_msgs.srv import Instruct
from mimo_embodied_ros.backends.factory import create_backend
from mimo_embodied_ros.core.prompts import Task
from mimo_embodied_ros.core.resize import MAX_PIXELS_PRESETS
from mimo_embodied_ros.core.text import safe_text
from mimo_embodied_ros.perception import (
    NO_THINK_END_POLICIES,
    Frame,
    QueryResult,
    QuerySettings,
)
from mimo_embodied_ros.query_engine import QUEUE_POLICIES, QueryEngine
from mimo_embodied_ros.ros import conversions
from mimo_embodied_ros.ros.diagnostics import diagnostics_msg
from mimo_embodied_ros.ros.frames import camera_frame, request_frame
from mimo_embodied_ros.ros.images import array_to_image
from mimo_embodied_ros.ros.params import declare_from_config
from mimo_embodied_ros.ros.qos import qos_by_name
from mimo_embodied_ros.ros.query_server import QueryActionServer
from mimo_embodied_ros.ros.spin import spin_node
from mimo_embodied_ros.ros.sync import FrameSynchronizer, SyncedFrame
from mimo_embodied_ros.self_check import DEFAULT_SIZE, run_self_check

NODE_NAME = "mimo_embodied"

# name -> description; defaults are in config/perception.yaml (ros/params.py).
PARAMETERS: dict[str, str] = {
    "autostart": "Configure (load the model) and activate at start-up.",
    "backend": "Model backend: transformers (in-process), openai (server), scripted.",
    "transformers.model_path": "Local checkpoint folder (e.g. MiMo-Embodied-7B), safetensors.",
    "transformers.device": "auto, cpu, cuda or cuda:N.",
    "transformers.dtype": "auto (bfloat16 on GPU, float32 on CPU), bfloat16, float32.",
    "openai.base_url": "OpenAI-compatible server (vLLM, SGLang).",
    "openai.model": "Model name the server serves.",
    "openai.api_key_env": "Environment variable holding the API key, if any.",
    "openai.timeout_s": "Bound on one whole request (connect, generation and body), seconds.",
    "openai.retries": "Retries on connection errors, broken answer bodies and 5xx answers.",
    "scripted.answers_file": "YAML/JSON: instruction (or *) -> answer in the model's format.",
    "scripted.delay_s": "Simulated model latency of the scripted backend, seconds.",
    "model.image_preset": "Image-size cap: '' uses model.max_pixels; robot (1003520), launcher "
                          "(100352, the released evaluation launcher), readme (3211264).",
    "model.max_pixels": "Smart-resize cap of the image the model sees (pixels), preset ''.",
    "model.min_pixels": "Smart-resize floor (pixels).",
    "model.think": "Thinking mode (accurate for pointing); false appends /no_think.",
    "model.plan_think": "Thinking mode for plan queries (RoboVQA was scored without it).",
    "model.max_new_tokens": "Generation budget; the official evaluation let thinking run ~7.9k.",
    "model.on_no_think_end": "Thinking ended without </think>: retry_no_think (once) or fail.",
    "queue_policy": "A query while another runs: queue (waits, depth one) or reject.",
    "self_check.mode": "Self-check at configure: fail (configure fails), warn (log) or off.",
    "self_check.max_new_tokens": "Token budget of the self-check query (no-think mode).",
    "max_instruction_chars": "Longer instructions are refused.",
    "image_topic": "Colour image topic.",
    "depth_topic": "Depth image registered to colour.",
    "camera_info_topic": "CameraInfo of the colour image.",
    "image_transport": "raw (sensor_msgs/Image) or compressed (<image_topic>/compressed).",
    "qos": "QoS of the camera subscriptions: sensor_data or reliable.",
    "use_depth": "Lift points and boxes to 3D; false gives pixels only.",
    "sync_slop_s": "Max stamp difference of a colour/depth pair, seconds.",
    "depth_window": "Side of the pixel window a point's depth is taken from.",
    "min_valid_depth_fraction": "Fraction of valid depth pixels a window needs.",
    "debug_image.max_rate_hz": "Max rate of ~/debug_image; 0 disables it.",
    "markers.lifetime_s": "Lifetime of RViz markers; 0 keeps them until the next query.",
    "continuous.instruction": "Standing instruction re-run on new frames; empty = off.",
    "continuous.task": "Task of the standing instruction.",
    "continuous.max_rate_hz": "Max rate of the standing instruction.",
    "diagnostics_period_s": "Period of /diagnostics status.",
}

# model.* parameters a backend also needs at construction (the processor's resize range).
SHARED_MODEL_SETTINGS = {
    "transformers": ("min_pixels", "max_pixels", "max_new_tokens"),
    "openai": ("min_pixels", "max_pixels", "max_new_tokens"),
}
CHOICES = {
    "model.image_preset": ("", *MAX_PIXELS_PRESETS),
    "model.on_no_think_end": NO_THINK_END_POLICIES,
    "queue_policy": QUEUE_POLICIES,
    "self_check.mode": ("fail", "warn", "off"),
}


class PerceptionNode(LifecycleNode):
    """Serves ~/instruct and ~/query and publishes what the model finds on the latest frame."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        declare_from_config(self, PARAMETERS, "perception.yaml")
        for name, allowed in CHOICES.items():
            if self.param(name) not in allowed:
                raise ValueError(f"parameter {name} is {self.param(name)!r}; use one of {allowed}")
        self._engine = QueryEngine(self.param("queue_policy"))
        self._active = False
        self._last: dict[str, Any] = {"message": "no query yet", "total_ms": float("nan")}
        self._image_check = ""
        self._self_check = "not run"
        self._publish_lock = threading.Lock()
        self._last_debug_image = 0.0
        self._last_continuous_image: Any = None
        self._sync = FrameSynchronizer(
            slop_s=self.param("sync_slop_s"), use_depth=self.param("use_depth")
        )
        self._create_subscriptions()
        self._affordances_pub = self.create_lifecycle_publisher(Affordances, "~/affordances", 10)
        self._objects_pub = self.create_lifecycle_publisher(Objects3D, "~/objects", 10)
        self._markers_pub = self.create_lifecycle_publisher(MarkerArray, "~/markers", 10)
        self._debug_pub = self.create_lifecycle_publisher(Image, "~/debug_image", 2)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        queries = ReentrantCallbackGroup()  # the engine decides who waits
        self.create_service(Instruct, "~/instruct", self._on_instruct, callback_group=queries)
        self._query_server = QueryActionServer(self, "~/query", self._answer, self._fill, queries)
        self._continuous_group = MutuallyExclusiveCallbackGroup()
        self.create_timer(self.param("diagnostics_period_s"), self._publish_diagnostics)
        self._continuous_timer = None
        if self.param("autostart") and self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    def param(self, name: str) -> Any:
        return self.get_parameter(name).value

    # Lifecycle ---------------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        kind = self.param("backend")
        prefix = f"{kind}."
        settings = {
            name[len(prefix):]: self.param(name) for name in PARAMETERS if name.startswith(prefix)
        }
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
        if not self._passes_self_check(backend, model_settings):
            backend.close()
            return TransitionCallbackReturn.FAILURE
        self._close_backend(self._engine.set_backend(backend))
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
        if self._continuous_timer is not None:
            self.destroy_timer(self._continuous_timer)
            self._continuous_timer = None
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._close_backend(self._engine.set_backend(None))
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self._close_backend(self._engine.set_backend(None))
        return super().on_shutdown(state)

    @staticmethod
    def _close_backend(backend: Any) -> None:
        if backend is not None:
            backend.close()

    # Inputs ------------------------------------------------------------------------------------

    def _create_subscriptions(self) -> None:
        qos = qos_by_name(self.param("qos"))
        group = ReentrantCallbackGroup()
        image_topic = self.param("image_topic")
        if self.param("image_transport") == "compressed":
            self.create_subscription(
                CompressedImage, f"{image_topic}/compressed", self._sync.add_image, qos,
                callback_group=group,
            )
        else:
            self.create_subscription(
                Image, image_topic, self._sync.add_image, qos, callback_group=group
            )
        if self.param("use_depth"):
            self.create_subscription(
                Image, self.param("depth_topic"), self._sync.add_depth, qos, callback_group=group
            )
        self.create_subscription(
            CameraInfo, self.param("camera_info_topic"), self._sync.add_camera_info, qos,
            callback_group=group,
        )

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
                                     image=image, cancel=cancel, on_progress=on_progress)
        self.get_logger().info(
            f"query '{safe_text(request.instruction[:80])}': "
            f"{'ok' if result.success else 'failed'}: {safe_text(result.message)}")
        return result, header

    def _query(
        self, instruction: str, task: str, settings: QuerySettings,
        synced: SyncedFrame | None = None, image: Image | None = None,
        cancel: threading.Event | None = None, on_progress: Any = None, wait: bool = True,
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
        frame, header, problem = (
            request_frame(image) if image is not None else camera_frame(
                synced or self._sync.latest(), self._sync.missing(),
                self.param("camera_info_topic") if self.param("use_depth") else None)
        )
        if frame is None:
            return QueryResult(success=False, instruction=instruction, message=problem), header
        if image is not None:
            settings = QuerySettings(**{**settings.__dict__, "require_depth": False})
        result = self._engine.run(frame, instruction, task, settings, cancel, on_progress, wait)
        if result.reply is not None and result.reply.image_check:
            self._note_image_check(result.reply.image_check)
        try:
            self._publish(result, header, frame, on_camera=image is None)
        except Exception as error:  # noqa: BLE001 - drawing or a message field refused the answer
            result = self._internal_error(result, "publishing the results", error)
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
    ) -> None:
        backend = self.param("backend")
        with self._publish_lock:
            if result.reply is not None and on_camera:
                if result.task is Task.POINT:
                    self._affordances_pub.publish(
                        conversions.affordances_msg(result, header, backend))
                elif result.task is Task.DETECT:
                    self._objects_pub.publish(conversions.objects_msg(result, header, backend))
                self._markers_pub.publish(
                    conversions.markers_msg(result, header, self.param("markers.lifetime_s")))
            rate = self.param("debug_image.max_rate_hz")
            now = time.monotonic()
            if rate > 0 and now - self._last_debug_image >= 1.0 / rate:
                self._last_debug_image = now
                image = conversions.annotated_rgb(frame.rgb, result, frame.intrinsics)
                self._debug_pub.publish(array_to_image(image, "rgb8", header))

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
        }
        self._diagnostics_pub.publish(diagnostics_msg(
            f"{self.get_name()}: perception", values, warn, missing or values["last_query"],
            self.get_clock().now().to_msg()))

    def destroy_node(self) -> None:
        self._query_server.destroy()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    spin_node(PerceptionNode, args)


if __name__ == "__main__":
    main()
