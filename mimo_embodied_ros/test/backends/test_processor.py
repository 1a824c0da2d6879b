"""The processor loader on the tiny folder and on the real Qwen2.5-VL checkpoint layouts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from transformers import AutoProcessor

from mimo_embodied_ros.backends.processor import (
    QWEN_MIN_PIXELS,
    Qwen2_5_VLImageOnlyProcessor,
    load_processor,
    register_image_only_processor,
    set_pixel_range,
    torchvision_available,
)


def _checkpoint_layout(tiny_qwen_dir: Path, folder: Path, with_preprocessor: bool) -> Path:
    """The tiny model in the file layout of the published Qwen2.5-VL / MiMo checkpoints.

    Those ship preprocessor_config.json naming the stock Qwen2_5_VLProcessor (or, in older MiMo
    snapshots, no preprocessor_config.json at all) and the chat template in chat_template.json.
    """
    folder.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_qwen_dir / name, folder / name)
    saved = json.loads((tiny_qwen_dir / "processor_config.json").read_text())
    if with_preprocessor:
        preprocessor = dict(saved["image_processor"], processor_class="Qwen2_5_VLProcessor")
        (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    template = (tiny_qwen_dir / "chat_template.jinja").read_text()
    (folder / "chat_template.json").write_text(json.dumps({"chat_template": template}))
    return folder


def _grid_of(processor, height: int, width: int) -> list[int]:
    image = Image.fromarray(np.zeros((height, width, 3), dtype=np.uint8))
    messages = [
        {
            "role": "user",
            "content": [{"type": "image", "image": image}, {"type": "text", "text": "hi"}],
        }
    ]
    inputs = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    return inputs["image_grid_thw"][0].tolist()


def test_loads_the_tiny_folder(tiny_qwen_dir: Path) -> None:
    processor = load_processor(tiny_qwen_dir, min_pixels=3136, max_pixels=200704)
    if not torchvision_available():
        assert isinstance(processor, Qwen2_5_VLImageOnlyProcessor)
    assert _grid_of(processor, 56, 84) == [1, 4, 6]


@pytest.mark.parametrize("with_preprocessor", [True, False])
def test_loads_the_published_checkpoint_layouts(
    tiny_qwen_dir: Path, tmp_path: Path, with_preprocessor: bool
) -> None:
    folder = _checkpoint_layout(tiny_qwen_dir, tmp_path / "checkpoint", with_preprocessor)
    processor = load_processor(folder, min_pixels=3136, max_pixels=200704)
    image_processor = processor.image_processor
    assert image_processor.patch_size == 14
    assert image_processor.merge_size == 2
    assert image_processor.temporal_patch_size == 2
    assert list(image_processor.image_mean) == pytest.approx([0.48145466, 0.4578275, 0.40821073])
    assert processor.chat_template is not None
    assert _grid_of(processor, 280, 364) == [1, 20, 26]


def test_pixel_range_is_applied(tiny_qwen_dir: Path) -> None:
    processor = load_processor(tiny_qwen_dir, min_pixels=QWEN_MIN_PIXELS, max_pixels=56 * 56)
    assert _grid_of(processor, 280, 280) == [1, 4, 4]
    with pytest.raises(ValueError, match="larger than max_pixels"):
        set_pixel_range(processor, 10000, 5000)


def test_registration_lets_auto_processor_resolve_the_image_only_processor(
    tiny_qwen_dir: Path,
) -> None:
    """What the serve launcher relies on: AutoProcessor then returns a multimodal processor."""
    register_image_only_processor()
    processor = AutoProcessor.from_pretrained(tiny_qwen_dir)
    assert isinstance(processor, Qwen2_5_VLImageOnlyProcessor)
    assert _grid_of(processor, 56, 56) == [1, 4, 4]
