"""scripts/gpu_bench.py --tiny: the GPU benchmark's own code, run on the CPU so it cannot rot."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_bench.py"
ANSWER_TAGS = ("answer=no_think tokens=25", "answer=think tokens=300", "answer=think tokens=1000")
PER_ANSWER = (
    ("preprocess_ms", "node_resize_ms", "processor_ms"),
    ("prefill_ms", "floor_ms", "ratio"),
    ("decode_ms_per_token", "floor_ms", "ratio"),
    ("end_to_end_ms", "postprocess_ms"),
)
ONCE = (
    ("model", ("params_b", "weight_gb", "decode_read_gb", "vision_gb")),
    ("", ("copy_bandwidth_gbps",)),
    ("", ("matmul_tflops",)),
    ("", ("peak_memory_gb",)),
    ("concurrent n=4 tokens=25", ("sequential_ms", "batched_ms", "speedup")),
    ("", ("total_s",)),
)


def _values(line: str) -> dict[str, float]:
    return {key: float(value) for key, value in re.findall(r"(\w+)=([-+\w.]+)", line)
            if re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+|nan|inf)", value)}


def _line(lines: list[str], prefix: str, keys: tuple[str, ...]) -> dict[str, float]:
    start = f"gpu {prefix} {keys[0]}=" if prefix else f"gpu {keys[0]}="
    found = [line for line in lines if line.startswith(start)]
    assert len(found) == 1, f"expected one line starting {start!r}, got {found}"
    values = _values(found[0])
    for key in keys:
        assert key in values and math.isfinite(values[key]), (key, found[0])
    return values


def test_tiny_run_prints_every_line_with_finite_numbers() -> None:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    done = subprocess.run([sys.executable, str(SCRIPT), "--tiny"], capture_output=True,
                          text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    for tag in ANSWER_TAGS:
        for keys in PER_ANSWER:
            values = _line(lines, tag, keys)
            assert values[keys[0]] > 0, (tag, keys[0])
        for keys in PER_ANSWER[1:3]:  # ratio = figure / floor, as printed
            values = _line(lines, tag, keys)
            expected = values[keys[0]] / values["floor_ms"]
            assert abs(values["ratio"] - expected) <= 0.02 * expected + 0.01, (tag, values)
    for prefix, keys in ONCE:
        assert _line(lines, prefix, keys)[keys[0]] > 0
    # The default cap: a 1280x720 frame is seen as 1288x728, 1196 visual tokens, resized once.
    assert any("1280x720 -> 1288x728 (1196 visual tokens)" in line for line in lines)


def test_the_7b_architecture_file_builds_mimo_embodied_7b_shapes(tmp_path: Path) -> None:
    """The GPU run's config, built on the meta device (no memory): the 7B's parameter counts."""
    import importlib.util

    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    spec = importlib.util.spec_from_file_location("gpu_bench", SCRIPT)
    gpu_bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_bench)
    from mimo_embodied_ros.backends.processor import load_processor

    processor = load_processor(gpu_bench.processor_folder(tmp_path), 3136, 1003520)
    config = gpu_bench.config_7b(processor.tokenizer)
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    language = sum(p.numel() for n, p in model.named_parameters() if "visual" not in n)
    vision = sum(p.numel() for n, p in model.named_parameters() if "visual" in n)
    # MiMo-7B: 36 x (4 attention + 3 MLP matrices) + embedding and lm_head of 151680 x 4096.
    per_layer = 2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 11008
    assert abs(language - (36 * per_layer + 2 * 151680 * 4096)) < 0.01 * language
    assert 0.6e9 < vision < 0.75e9  # Qwen2.5-VL's ViT (1280 wide, 32 blocks) + merger to 4096
    assert config.text_config.num_key_value_heads == 8 and config.vision_config.depth == 32
    assert config.image_token_id == processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
