"""Loads the Qwen2.5-VL processor, with an image-only variant for machines without torchvision.

The stock Qwen2_5_VLProcessor insists on a video processor, and transformers' video processors
need torchvision (upstream transformers issue 48558). Robots with a GPU have torchvision; CPU-only
development machines may not. The image-only subclass below is the same processor minus video, so
image requests are processed identically on both.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from transformers import AutoProcessor, AutoTokenizer, Qwen2_5_VLConfig, Qwen2_5_VLProcessor
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

# Stock Qwen2.5-VL preprocessing, for checkpoint snapshots that lack preprocessor_config.json.
QWEN_PATCH_SIZE = 14
QWEN_MERGE_SIZE = 2
QWEN_TEMPORAL_PATCH_SIZE = 2
QWEN_MIN_PIXELS = 3136
QWEN_DEFAULT_MAX_PIXELS = 12845056


class Qwen2_5_VLImageOnlyProcessor(Qwen2_5_VLProcessor):
    """Qwen2.5-VL processor without the video processor (images and text only)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(
            image_processor=image_processor,
            tokenizer=tokenizer,
            video_processor=None,
            chat_template=chat_template,
            **kwargs,
        )


def torchvision_available() -> bool:
    """True when torchvision can be imported (then the stock processor works)."""
    if importlib.util.find_spec("torchvision") is None:
        return False
    try:
        import torchvision  # noqa: F401
    except Exception:  # a broken build (e.g. CUDA wheel on CPU) counts as absent
        return False
    return True


def register_image_only_processor() -> None:
    """Let AutoProcessor resolve folders saved with the image-only processor (idempotent)."""
    AutoProcessor.register(Qwen2_5_VLConfig, Qwen2_5_VLImageOnlyProcessor, exist_ok=True)


def _image_processor_class():
    """The Qwen2-VL image processor that works here: torchvision-backed if possible, else PIL."""
    if torchvision_available():
        from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor

        return Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil


def _read_chat_template(folder: Path, tokenizer: Any) -> str | None:
    """The chat template of a checkpoint folder, wherever that version of the layout keeps it."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    as_json = folder / "chat_template.json"
    if as_json.is_file():
        return json.loads(as_json.read_text(encoding="utf-8")).get("chat_template")
    return getattr(tokenizer, "chat_template", None)


def _processor_from_defaults(folder: Path) -> Any:
    """Build the processor from stock Qwen2.5-VL preprocessing and the folder's tokenizer."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    image_processor = _image_processor_class()(
        patch_size=QWEN_PATCH_SIZE,
        merge_size=QWEN_MERGE_SIZE,
        temporal_patch_size=QWEN_TEMPORAL_PATCH_SIZE,
        min_pixels=QWEN_MIN_PIXELS,
        max_pixels=QWEN_DEFAULT_MAX_PIXELS,
        image_mean=list(OPENAI_CLIP_MEAN),
        image_std=list(OPENAI_CLIP_STD),
    )
    chat_template = _read_chat_template(folder, tokenizer)
    if torchvision_available():
        from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

        return Qwen2_5_VLProcessor(
            image_processor=image_processor,
            tokenizer=tokenizer,
            video_processor=Qwen2VLVideoProcessor(),
            chat_template=chat_template,
        )
    return Qwen2_5_VLImageOnlyProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template
    )


def load_processor(model_path: str | Path, min_pixels: int, max_pixels: int) -> Any:
    """The processor of a local Qwen2.5-VL folder, with the image pixel range set.

    Stock AutoProcessor when torchvision imports, else the image-only processor. The pixel range
    must match the caller's smart-resize so the model sees exactly the image it was given.
    """
    folder = Path(model_path)
    register_image_only_processor()
    has_preprocessing = (folder / "preprocessor_config.json").is_file() or (
        folder / "processor_config.json"
    ).is_file()
    if not has_preprocessing:
        processor = _processor_from_defaults(folder)
    elif torchvision_available():
        processor = AutoProcessor.from_pretrained(folder)
    else:
        processor = Qwen2_5_VLImageOnlyProcessor.from_pretrained(folder)
    if processor.chat_template is None:
        processor.chat_template = _read_chat_template(folder, processor.tokenizer)
    set_pixel_range(processor, min_pixels, max_pixels)
    return processor


def set_pixel_range(processor: Any, min_pixels: int, max_pixels: int) -> None:
    """Set the smart-resize pixel range of the processor's image processor."""
    if min_pixels > max_pixels:
        raise ValueError(f"min_pixels {min_pixels} is larger than max_pixels {max_pixels}")
    image_processor = processor.image_processor
    image_processor.size = {"shortest_edge": int(min_pixels), "longest_edge": int(max_pixels)}
