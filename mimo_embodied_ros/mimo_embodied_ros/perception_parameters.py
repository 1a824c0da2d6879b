"""The perception node's parameters, ROS-free: descriptions, allowed values, and when a change
takes effect.

Defaults live in config/perception.yaml (ros/params.py). A change with ``ros2 param set`` is
either applied at once, applied at the next activate (camera inputs) or configure (backend), and
refused while that transition has not happened, or refused as read-only; never accepted and
silently ignored.
"""

from __future__ import annotations

from typing import Any

from mimo_embodied_ros.core.resize import MAX_PIXELS_PRESETS, MIN_PIXELS
from mimo_embodied_ros.perception import NO_THINK_END_POLICIES
from mimo_embodied_ros.query_engine import QUEUE_POLICIES

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
    "max_concurrent_queries": "Queries run at once; >1 only for a server that batches (openai).",
    "self_check.mode": "Self-check at configure: fail (configure fails), warn (log) or off.",
    "self_check.max_new_tokens": "Token budget of the self-check query (no-think mode).",
    "max_instruction_chars": "Longer instructions are refused.",
    "image_topic": "Colour image topic.",
    "depth_topic": "Depth image registered to colour (realsense-ros: aligned_depth_to_color).",
    "depth.assume_registered": "Lift with depth whose frame_id differs from the colour image's "
                               "(only for a depth stream known to be registered to colour).",
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
    "record.folder": "Record every query (images, request, raw answer, results) to rosbag2 MCAP "
                     "bags in this folder; '' = off.",
    "record.max_megabytes": "A new bag is started before one would pass this size.",
    "record.max_queries_per_file": "A new bag is started after this many queries (0: no limit).",
    "record.queue_size": "Queries waiting for the writer; a full queue drops (counted, warned).",
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



CHOICES: dict[str, tuple[Any, ...]] = {
    "backend": ("transformers", "openai", "scripted"),
    "model.image_preset": ("", *MAX_PIXELS_PRESETS),
    "model.on_no_think_end": NO_THINK_END_POLICIES,
    "queue_policy": QUEUE_POLICIES,
    "self_check.mode": ("fail", "warn", "off"),
    "image_transport": ("raw", "compressed"),
    "qos": ("sensor_data", "reliable"),
    "continuous.task": ("auto", "point", "detect", "choice", "plan", "answer"),
}
# name -> (lowest, highest) allowed value, None for no bound.
RANGES: dict[str, tuple[float | None, float | None]] = {
    "openai.timeout_s": (1e-3, None),
    "openai.retries": (0, 10),
    "scripted.delay_s": (0.0, None),
    "model.max_pixels": (MIN_PIXELS, None),
    "model.min_pixels": (MIN_PIXELS, None),
    "model.max_new_tokens": (1, None),
    "self_check.max_new_tokens": (1, None),
    "max_instruction_chars": (1, None),
    "max_concurrent_queries": (1, 64),
    "sync_slop_s": (0.0, 1.0),
    "depth_window": (1, 99),
    "min_valid_depth_fraction": (0.0, 1.0),
    "debug_image.max_rate_hz": (0.0, None),
    "markers.lifetime_s": (0.0, None),
    "continuous.max_rate_hz": (1e-3, None),
    "record.max_megabytes": (1, None),
    "record.max_queries_per_file": (0, None),
    "record.queue_size": (1, 1000),
}
READ_ONLY = ("autostart", "diagnostics_period_s", "max_concurrent_queries")
# Camera inputs: subscriptions are made on activate.
ON_ACTIVATE = ("image_topic", "depth_topic", "camera_info_topic", "image_transport", "qos",
               "use_depth", "sync_slop_s", "continuous.instruction", "continuous.task",
               "continuous.max_rate_hz")
# Backend: made on configure.
ON_CONFIGURE_PREFIXES = ("backend", "transformers.", "openai.", "scripted.", "self_check.",
                         "record.")


def check_value(name: str, value: Any) -> str | None:
    """Why ``value`` is not allowed for ``name``, or None."""
    if name in CHOICES and value not in CHOICES[name]:
        return f"{name} must be one of {CHOICES[name]}, not {value!r}"
    low, high = RANGES.get(name, (None, None))
    if low is not None and value < low:
        return f"{name} must be >= {low}, not {value!r}"
    if high is not None and value > high:
        return f"{name} must be <= {high}, not {value!r}"
    if name == "depth_window" and value % 2 == 0:
        return f"depth_window must be odd (a window centred on the pixel), not {value}"
    return None


def check_change(name: str, value: Any, configured: bool, active: bool) -> str | None:
    """Why a runtime change of ``name`` is refused now, or None when it may be applied."""
    if name in READ_ONLY:
        return f"{name} is read at start-up only; restart the node to change it"
    if name in ON_ACTIVATE and active:
        return f"{name} applies at the next activate; deactivate the node first"
    if name.startswith(ON_CONFIGURE_PREFIXES) and configured:
        return f"{name} applies at the next configure; deactivate and clean up the node first"
    return check_value(name, value)
