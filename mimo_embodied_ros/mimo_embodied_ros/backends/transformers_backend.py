"""In-process Qwen2.5-VL / MiMo-Embodied inference with transformers.

Reproduces the official evaluation settings: bfloat16 on GPU, greedy decoding, the system turn
plus one user turn with the images first, and the raw decoded text including <think> ... </think>.
"""

from __future__ import annotations

import gc
import threading
import time
from pathlib import Path
from typing import Any

from mimo_embodied_ros.backends.base import (
    BackendError,
    ModelReply,
    ModelRequest,
    Progress,
    validate_request,
)
from mimo_embodied_ros.core.prompts import build_messages
from mimo_embodied_ros.core.resize import smart_resize
from mimo_embodied_ros.core.types import ImageSize

DTYPE_NAMES = ("auto", "bfloat16", "float32")
VISION_PATCH_SIZE = 14  # model-io.md: resized height = grid_h * 14, width = grid_w * 14
PROGRESS_EVERY_TOKENS = 16  # how often a generation decodes its text so far for feedback


class _CancelAndReport:
    """A generate() stopping criterion: stops when the request's cancel event is set, and reports
    the tokens (and every PROGRESS_EVERY_TOKENS tokens the text) generated so far."""

    def __init__(self, request: ModelRequest, prompt_length: int, decode: Any) -> None:
        self.request = request
        self.prompt_length = prompt_length
        self.decode = decode
        self.cancelled = False
        self.first_token_at: float | None = None  # perf_counter() when the first token was out

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        generated = int(input_ids.shape[1]) - self.prompt_length
        if self.request.on_progress is not None and generated % PROGRESS_EVERY_TOKENS == 1:
            text = self.decode(input_ids[0, self.prompt_length:].tolist())
            self.request.report(Progress("generating", tokens=generated, text=text))
        self.cancelled = self.request.cancel.is_set()
        return torch.full((input_ids.shape[0],), self.cancelled, dtype=torch.bool,
                          device=input_ids.device)


def apply_chat_template(processor: Any, conversation: Any, **processor_kwargs: Any) -> Any:
    """Tokenized model inputs of one conversation (or a batch of them) with the generation prompt.

    Processor options (do_resize, padding) go in transformers 5's ``processor_kwargs``; older
    versions take them as plain keyword arguments."""
    import inspect

    options: dict[str, Any] = dict(add_generation_prompt=True, tokenize=True, return_dict=True,
                                   return_tensors="pt")
    if not processor_kwargs:
        pass
    elif "processor_kwargs" in inspect.signature(processor.apply_chat_template).parameters:
        options["processor_kwargs"] = processor_kwargs
    else:
        options.update(processor_kwargs)
    return processor.apply_chat_template(conversation, **options)


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendError("load", f"device {device!r} was requested but CUDA is not available")
    return device


def _resolve_dtype(dtype: str, device: str) -> Any:
    """bfloat16 on CUDA, float32 on CPU; float16 refused because MiMo then writes only '!'."""
    import torch

    if dtype == "float16":
        raise BackendError(
            "load",
            "dtype float16 is refused: MiMo-Embodied / Qwen2.5-VL in float16 produces output made "
            "only of '!' characters; use bfloat16 (GPU) or float32 (CPU)",
        )
    if dtype not in DTYPE_NAMES:
        raise BackendError("load", f"unknown dtype {dtype!r}; expected one of {DTYPE_NAMES}")
    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)


class TransformersBackend:
    """Runs a local Qwen2.5-VL checkpoint folder with transformers (no remote code, no download).

    Images that already have the processor's smart-resized size (the perception query resizes
    once, with the processor's own PIL bicubic, core.resize) go through the processor with
    ``do_resize=False``, so each image is resized exactly once per query. Other sizes are
    resized by the processor itself (still once).
    """

    name = "transformers"

    def __init__(
        self,
        model_path: str | Path,
        device: str = "auto",
        dtype: str = "auto",
        min_pixels: int = 3136,
        max_pixels: int = 1003520,
        max_new_tokens: int = 4096,
        *,
        model: Any = None,
        processor: Any = None,
    ) -> None:
        """Load ``model_path``; or, with ``model`` and ``processor`` given (an already built
        Qwen2_5_VLForConditionalGeneration and its processor, e.g. scripts/gpu_bench.py's
        random-weight 7B), use them as they are and take only the name from ``model_path``."""
        import torch
        from transformers import Qwen2_5_VLForConditionalGeneration

        from mimo_embodied_ros.backends.processor import load_processor, set_pixel_range

        folder = Path(model_path).expanduser()
        prebuilt = model is not None or processor is not None
        if prebuilt and (model is None or processor is None):
            raise BackendError("load", "an already built model needs its processor, and back")
        if not prebuilt and not (folder / "config.json").is_file():
            raise BackendError(
                "load",
                f"model folder {str(folder)!r} does not exist or has no config.json; "
                "give the local path of a downloaded MiMo-Embodied-7B (Qwen2.5-VL) checkpoint",
            )
        self.device = _resolve_device(device)
        self.dtype = _resolve_dtype(dtype, self.device)
        self.model_id = folder.name
        self.model_path = folder
        self.max_new_tokens = int(max_new_tokens)
        self.min_pixels, self.max_pixels = int(min_pixels), int(max_pixels)
        # Benchmarks only (scripts/gpu_bench.py): end tokens are suppressed until this many new
        # tokens, so an answer length can be forced. None in normal use.
        self.forced_min_new_tokens: int | None = None
        # Stage timings of the latest generate() (preprocess_ms, prefill_ms, decode_ms,
        # new_tokens); prefill_ms runs to the first generated token.
        self.last_timings: dict[str, float] = {}
        self._lock = threading.Lock()
        if prebuilt:
            self.processor, self.model = processor, model
            set_pixel_range(self.processor, self.min_pixels, self.max_pixels)
        else:
            try:
                self.processor = load_processor(folder, min_pixels, max_pixels)
                self.model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
                    folder,
                    dtype=self.dtype,
                    use_safetensors=True,
                    trust_remote_code=False,
                    local_files_only=True,
                )
            except BackendError:
                raise
            except Exception as error:  # transformers raises many types; all mean "cannot load"
                raise BackendError(
                    "load", f"could not load the model from {str(folder)!r}: {error}"
                ) from error
            self.model.to(self.device)
        self.model.eval()
        tokenizer = self.processor.tokenizer
        # Tokens that end a reply; they are cut from the text, every other token is kept.
        self._end_token_ids = {
            token_id
            for token_id in (tokenizer.eos_token_id, tokenizer.pad_token_id)
            if token_id is not None
        }
        generation_eos = self.model.generation_config.eos_token_id
        if isinstance(generation_eos, int):
            generation_eos = [generation_eos]
        self._end_token_ids.update(generation_eos or [])
        self._torch = torch

    def decode_new_tokens(self, token_ids: list[int]) -> str:
        """Text of generated tokens, special tokens kept except the end-of-turn/padding ones.

        skip_special_tokens=True would also drop <think> / </think> in tokenizers that mark them
        special, and the answer parser needs </think>; so only end tokens are removed, by id.
        """
        kept = [token_id for token_id in token_ids if token_id not in self._end_token_ids]
        return self.processor.tokenizer.decode(
            kept, skip_special_tokens=False, clean_up_tokenization_spaces=False
        )

    def already_resized(self, images: list[Any]) -> bool:
        """True when every image has exactly the size the processor's smart-resize gives it,
        so the processor's resize would be a no-op and is skipped."""
        for image in images:
            height, width = int(image.shape[0]), int(image.shape[1])
            try:
                size = smart_resize(height, width, min_pixels=self.min_pixels,
                                    max_pixels=self.max_pixels)
            except ValueError:
                return False
            if (size.height, size.width) != (height, width):
                return False
        return True

    def generate(self, request: ModelRequest) -> ModelReply:
        """Greedy generation for one request; thread-safe (one generation at a time)."""
        from PIL import Image

        validate_request(request)
        if self.model is None:
            raise BackendError("unavailable", "the transformers backend was closed")
        messages = build_messages(request.task_text, len(request.images))
        pictures = iter([Image.fromarray(image, mode="RGB") for image in request.images])
        for turn in messages:
            for item in turn["content"]:
                if item.get("type") == "image":
                    item["image"] = next(pictures)
        max_new_tokens = min(request.max_new_tokens, self.max_new_tokens)
        processor_kwargs: dict[str, Any] = {}
        if request.images and self.already_resized(request.images):
            processor_kwargs["do_resize"] = False  # resized once already, by core.resize
        forced: dict[str, Any] = {}
        if self.forced_min_new_tokens:
            forced["min_new_tokens"] = min(int(self.forced_min_new_tokens), max_new_tokens)
        with self._lock:
            if request.cancel.is_set():
                raise BackendError("cancelled", "the query was cancelled before generation")
            started = time.perf_counter()
            try:
                inputs = apply_chat_template(self.processor, messages, **processor_kwargs).to(
                    self.model.device)
                preprocessed = time.perf_counter()
                prompt_length = int(inputs["input_ids"].shape[1])
                stopper = _CancelAndReport(request, prompt_length, self.decode_new_tokens)
                request.report(Progress("generating"))
                with self._torch.inference_mode():
                    output = self.model.generate(
                        **inputs,
                        max_new_tokens=max_new_tokens,
                        do_sample=False,
                        temperature=None,
                        top_p=None,
                        top_k=None,
                        repetition_penalty=1.0,
                        stopping_criteria=[stopper],
                        **forced,
                    )
            except Exception as error:
                raise BackendError("bad_response", f"generation failed: {error}") from error
            finished = time.perf_counter()
            model_ms = (finished - started) * 1000.0
            first = stopper.first_token_at or finished
            generated = int(output.shape[1]) - prompt_length
            self.last_timings = {
                "preprocess_ms": (preprocessed - started) * 1e3,
                "prefill_ms": (first - preprocessed) * 1e3,
                "decode_ms": (finished - first) * 1e3,
                "new_tokens": float(generated),
            }
        if stopper.cancelled:
            raise BackendError(
                "cancelled", f"generation stopped after {model_ms / 1000:.2f} s (cancelled)"
            )
        new_tokens = output[0, prompt_length:].tolist()
        text = self.decode_new_tokens(new_tokens)
        image_sizes = None
        if "image_grid_thw" in inputs:
            image_sizes = [
                ImageSize(width=int(w) * VISION_PATCH_SIZE, height=int(h) * VISION_PATCH_SIZE)
                for _, h, w in inputs["image_grid_thw"].tolist()
            ]
        return ModelReply(
            text=text,
            model_id=self.model_id,
            model_ms=model_ms,
            prompt_tokens=prompt_length,
            image_sizes=image_sizes,
            image_check="exact" if image_sizes else "",
            completion_tokens=len(new_tokens),
        )

    def close(self) -> None:
        """Free the model's memory (and the CUDA cache when there is one)."""
        with self._lock:
            self.model = None
            gc.collect()
            if self._torch.cuda.is_available():
                self._torch.cuda.empty_cache()
