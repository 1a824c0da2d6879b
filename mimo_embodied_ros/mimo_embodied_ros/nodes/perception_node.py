"""Perception node `mimo_embodied`: camera topics + instruction -> keypoints, 3D points, 3D boxes.

A lifecycle node: configuring it loads the model backend, cleaning up frees it, so an operator can
swap checkpoints without restarting the camera pipeline. Subscription callbacks only store messages;
the model runs in the service (and continuous-mode timer) callback group on the latest synchronized
frame, so a slow model never builds a backlog.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from mimo_embodied_msgs.msg import Affordances, Objects3D
from mimo_embodied_msgs.srv import Instruct
from mimo_embodied_ros.backends.base import VisionLanguageBackend
from mimo_embodied_ros.backends.factory import create_backend
from mimo_embodied_ros.core.depth import depth_to_metres
from mimo_embodied_ros.core.prompts import Task
from mimo_embodied_ros.perception import Frame, QueryResult, QuerySettings, run_query
from mimo_embodied_ros.ros import conversions
from mimo_embodied_ros.ros.images import (
    ImageConversionError,
    array_to_image,
    compressed_to_rgb,
    image_msg_to_rgb,
    image_to_array,
    intrinsics_from_camera_info,
)
from mimo_embodied_ros.ros.params import declare_from_config
from mimo_embodied_ros.ros.qos import qos_by_name
from mimo_embodied_ros.ros.spin import spin_node
from mimo_embodied_ros.ros.sync import FrameSynchronizer, SyncedFrame

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
    "openai.timeout_s": "Timeout of one request, seconds.",
    "openai.retries": "Retries on connection errors and 5xx answers.",
    "scripted.answers_file": "YAML/JSON: instruction (or *) -> answer in the model's format.",
    "scripted.delay_s": "Simulated model latency of the scripted backend, seconds.",
    "model.max_pixels": "Smart-resize cap of the image the model sees (pixels).",
    "model.min_pixels": "Smart-resize floor (pixels).",
    "model.think": "Thinking mode (accurate for pointing); false appends /no_think.",
    "model.max_new_tokens": "Generation budget; thinking needs several hundred tokens.",
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
    "openai": ("max_new_tokens",),
}


class PerceptionNode(LifecycleNode):
    """Serves ~/instruct and publishes what the model finds on the latest RGB-D frame."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        declare_from_config(self, PARAMETERS, "perception.yaml")
        self._backend: VisionLanguageBackend | None = None
        self._backend_lock = threading.Lock()
        self._active = False
        self._last: dict[str, Any] = {"message": "no query yet", "total_ms": float("nan")}
        self._last_debug_image = 0.0
        self._last_continuous_image: Any = None
        self._sync = FrameSynchronizer(
            slop_s=self.param("sync_slop_s"), use_depth=self.param("use_depth")
        )
        self._model_group = MutuallyExclusiveCallbackGroup()
        self._create_subscriptions()
        self._affordances_pub = self.create_lifecycle_publisher(Affordances, "~/affordances", 10)
        self._objects_pub = self.create_lifecycle_publisher(Objects3D, "~/objects", 10)
        self._markers_pub = self.create_lifecycle_publisher(MarkerArray, "~/markers", 10)
        self._debug_pub = self.create_lifecycle_publisher(Image, "~/debug_image", 2)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_service(
            Instruct, "~/instruct", self._on_instruct, callback_group=self._model_group
        )
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
        for name in SHARED_MODEL_SETTINGS.get(kind, ()):
            settings[name] = self.param(f"model.{name}")
        try:
            backend = create_backend(kind, settings)
        except Exception as error:  # a bad checkpoint path must not take the node down
            self.get_logger().error(f"cannot create the '{kind}' backend: {error}")
            self._last["message"] = f"backend '{kind}' failed to load: {error}"
            return TransitionCallbackReturn.FAILURE
        with self._backend_lock:
            self._backend = backend
        self.get_logger().info(f"backend '{kind}' ready, model '{backend.model_id}'")
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = True
        instruction = self.param("continuous.instruction")
        if instruction:
            period = 1.0 / max(self.param("continuous.max_rate_hz"), 1e-3)
            self._continuous_timer = self.create_timer(
                period, self._on_continuous, callback_group=self._model_group
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
        self._close_backend()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self._close_backend()
        return super().on_shutdown(state)

    def _close_backend(self) -> None:
        with self._backend_lock:
            backend, self._backend = self._backend, None
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

    def _frame_from(self, synced: SyncedFrame) -> Frame:
        """Convert raw messages; ImageConversionError / ValueError name what is wrong."""
        if isinstance(synced.image, CompressedImage):
            rgb = compressed_to_rgb(synced.image)
        else:
            rgb = image_msg_to_rgb(synced.image)
        depth = None
        if synced.depth is not None:
            depth = depth_to_metres(image_to_array(synced.depth), synced.depth.encoding)
        intrinsics = None
        if synced.camera_info is not None:
            intrinsics = intrinsics_from_camera_info(synced.camera_info)
        return Frame(rgb=rgb, depth_m=depth, intrinsics=intrinsics)

    def _settings(self) -> QuerySettings:
        return QuerySettings(
            max_pixels=self.param("model.max_pixels"),
            min_pixels=self.param("model.min_pixels"),
            think=self.param("model.think"),
            max_new_tokens=self.param("model.max_new_tokens"),
            max_instruction_chars=self.param("max_instruction_chars"),
            depth_window=self.param("depth_window"),
            min_valid_depth_fraction=self.param("min_valid_depth_fraction"),
            require_depth=self.param("use_depth"),
        )

    # Queries -----------------------------------------------------------------------------------

    def _on_instruct(self, request: Instruct.Request, response: Instruct.Response) -> Any:
        thinking = request.thinking.strip()
        if thinking not in ("", "think", "no_think"):
            response.message = f"thinking must be '', 'think' or 'no_think', not '{thinking}'"
            return response
        think = self.param("model.think") if not thinking else thinking == "think"
        image = request.image if request.image.width > 0 else None
        result, header = self._query(request.instruction, request.task.strip(), think, image=image)
        self.get_logger().info(
            f"instruct '{request.instruction[:80]}': {'ok' if result.success else 'failed'}: "
            f"{result.message}"
        )
        return conversions.fill_instruct_response(response, result, header, self.param("backend"))

    def _on_continuous(self) -> None:
        synced = self._sync.latest()
        if synced is None or synced.image is self._last_continuous_image:
            return  # nothing new since the last run: re-running would repeat the same answer
        self._last_continuous_image = synced.image
        result, _ = self._query(
            self.param("continuous.instruction"), self.param("continuous.task"),
            self.param("model.think"), synced,
        )
        if not result.success:
            self.get_logger().warning(f"continuous query failed: {result.message}")

    def _query(
        self,
        instruction: str,
        task: str,
        think: bool,
        synced: SyncedFrame | None = None,
        image: Image | None = None,
    ) -> tuple[QueryResult, Header]:
        """Run one query and publish its outputs; never raises.

        The frame is ``image`` when given (e.g. a rendered map: pixels only, nothing published on
        the camera-frame topics), else ``synced`` or the latest synchronized camera frame.
        """
        if not self._active:
            state = "inactive" if self._backend is not None else "unconfigured"
            return QueryResult(
                success=False, instruction=instruction,
                message=f"node is {state}: configure and activate it (lifecycle) first",
            ), Header()
        frame, header, problem = (
            self._request_frame(image) if image is not None else self._camera_frame(synced)
        )
        if frame is None:
            return QueryResult(success=False, instruction=instruction, message=problem), header
        settings = QuerySettings(**{
            **self._settings().__dict__,
            "think": think,
            "require_depth": image is None and self.param("use_depth"),
        })
        with self._backend_lock:
            backend = self._backend
            if backend is None:
                return QueryResult(success=False, instruction=instruction,
                                   message="no model backend is loaded"), header
            try:
                result = run_query(backend, frame, instruction, task, settings)
            except Exception as error:  # a backend bug must not kill the node
                self.get_logger().error(f"query failed unexpectedly: {error!r}")
                result = QueryResult(success=False, instruction=instruction,
                                     message=f"internal error: {error!r}")
        self._publish(result, header, frame, camera_frame=image is None)
        self._last = {"message": result.message, "total_ms": result.timings_ms.get("total_ms")}
        return result, header

    def _camera_frame(self, synced: SyncedFrame | None) -> tuple[Frame | None, Header, str]:
        """The latest synchronized camera frame, or why there is none."""
        synced = synced or self._sync.latest()
        if synced is None:
            waiting = self._sync.missing() or "no frame yet"
            return None, Header(), f"no camera frame to answer on: {waiting}"
        header = synced.image.header
        if self.param("use_depth") and synced.camera_info is None:
            return None, header, f"no camera_info received on {self.param('camera_info_topic')}"
        try:
            return self._frame_from(synced), header, ""
        except (ImageConversionError, ValueError) as error:
            return None, header, f"camera frame rejected: {error}"

    def _request_frame(self, image: Image) -> tuple[Frame | None, Header, str]:
        """A frame from an image sent with the request (no depth, no intrinsics)."""
        try:
            rgb = image_msg_to_rgb(image)
        except (ImageConversionError, ValueError) as error:
            return None, image.header, f"request image rejected: {error}"
        return Frame(rgb=rgb, depth_m=None, intrinsics=None), image.header, ""

    def _publish(
        self, result: QueryResult, header: Header, frame: Frame, camera_frame: bool = True
    ) -> None:
        backend = self.param("backend")
        if result.reply is not None and camera_frame:
            if result.task is Task.POINT:
                self._affordances_pub.publish(conversions.affordances_msg(result, header, backend))
            elif result.task is Task.DETECT:
                self._objects_pub.publish(conversions.objects_msg(result, header, backend))
            self._markers_pub.publish(
                conversions.markers_msg(result, header, self.param("markers.lifetime_s"))
            )
        rate = self.param("debug_image.max_rate_hz")
        now = time.monotonic()
        if rate > 0 and now - self._last_debug_image >= 1.0 / rate:
            self._last_debug_image = now
            image = conversions.annotated_rgb(frame.rgb, result, frame.intrinsics)
            self._debug_pub.publish(array_to_image(image, "rgb8", header))

    def _publish_diagnostics(self) -> None:
        missing = self._sync.missing()
        level = DiagnosticStatus.OK
        if self._backend is None or not self._active:
            level = DiagnosticStatus.WARN
        if missing is not None:
            level = DiagnosticStatus.WARN
        values = {
            "backend": self.param("backend"),
            "model_id": self._backend.model_id if self._backend is not None else "",
            "active": str(self._active),
            "inputs": missing or "ok",
            "last_query": str(self._last["message"]),
            "last_query_ms": f"{self._last['total_ms']}",
            **{f"received_{k}": str(v) for k, v in self._sync.counts.items()},
        }
        status = DiagnosticStatus(
            level=level, name=f"{self.get_name()}: perception",
            hardware_id=values["model_id"], message=missing or values["last_query"],
            values=[KeyValue(key=k, value=v) for k, v in values.items()],
        )
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(array)


def main(args: list[str] | None = None) -> None:
    spin_node(PerceptionNode, args)


if __name__ == "__main__":
    main()
