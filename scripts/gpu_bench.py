"""MiMo-Embodied-7B on one GPU against its physical floor, in one short run (issue 11).

Needs only torch, transformers, numpy and pillow (PyYAML comes with transformers): no ROS, no
network, no checkpoint. It builds a Qwen2.5-VL with MiMo-Embodied-7B's architecture
(mimo_embodied_ros/config/mimo_embodied_7b_architecture.yaml, each number with its source) and
random bfloat16 weights directly on the GPU, and runs the project's own query path on it:
perception.run_query (the node's smart-resize, one PIL bicubic resize) ->
backends.transformers_backend (processor with do_resize=False, greedy generate) -> parse,
rescale, depth lift.

What is random or synthetic: the weights (so the text is meaningless and answer lengths are forced
with min_new_tokens), the tokenizer (the tiny test model's, mimo_embodied_ros/test/tiny_qwen.py,
built at run time: its ~400 tokens give shorter prompts than the real tokenizer by a few dozen
text tokens; the 1196 image tokens of a 1280x720 frame, which dominate the prompt, are exact), and
the frame (a synthetic 1280x720 RGB-D image). The image preprocessing is the stock Qwen2.5-VL one
(the processor a real checkpoint without preprocessor_config.json gets, processor.py).

Prints `gpu ...` lines: per answer length (25 tokens no-think; 300 and 1000 tokens of thinking)
the node's preprocessing, the processor, vision encoder + prefill (to the first token), decode
ms/token, end to end; the peak GPU memory; a copy-bandwidth and a matmul microbenchmark run in the
same process, the floors they imply (weight bytes / bandwidth per decoded token; FLOPs / peak
for the prefill) and each figure's ratio to its floor; and N concurrent queries as one batched
generate against N sequential queries. `--tiny` runs the same code on the CPU with the tiny test
model's architecture (floors measured on the CPU) and prints the same lines; the test suite runs it.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
for folder in (REPO / "mimo_embodied_ros", REPO / "mimo_embodied_ros" / "test"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import numpy as np  # noqa: E402

ARCHITECTURE = REPO / "mimo_embodied_ros" / "config" / "mimo_embodied_7b_architecture.yaml"
FRAME_SIZE = (1280, 720)
ANSWERS = (("no_think", 25), ("think", 300), ("think", 1000))
CONCURRENT = 4
CONCURRENT_TOKENS = 25
INSTRUCTIONS = ("the handle of the mug", "the red apple", "the lid of the pot", "the open drawer")


def say(line: str) -> None:
    print(line, flush=True)


# The model ------------------------------------------------------------------------------------


def processor_folder(directory: Path) -> Path:
    """A folder holding only the tiny test tokenizer and chat template: load_processor then
    builds the stock Qwen2.5-VL image processor around it, as for a real checkpoint without
    preprocessor_config.json (torchvision-backed where torchvision imports, else PIL)."""
    from tiny_qwen import CHAT_TEMPLATE, _build_tokenizer

    folder = directory / "tokenizer"
    folder.mkdir(parents=True)
    _build_tokenizer().save_pretrained(folder)
    (folder / "chat_template.jinja").write_text(CHAT_TEMPLATE, encoding="utf-8")
    return folder


def config_tiny(directory: Path):
    """The tiny test model's architecture (mimo_embodied_ros/test/tiny_qwen.py), for --tiny."""
    from tiny_qwen import build_tiny_qwen
    from transformers import Qwen2_5_VLConfig

    return Qwen2_5_VLConfig.from_pretrained(build_tiny_qwen(directory / "tiny_qwen"))


def config_7b(tokenizer):
    """Qwen2_5_VLConfig of MiMo-Embodied-7B from the architecture file, with the tokenizer's ids."""
    import yaml
    from transformers import Qwen2_5_VLConfig

    spec = yaml.safe_load(ARCHITECTURE.read_text())
    text = dict(spec["text"])
    mrope, theta = text.pop("mrope_section"), text.pop("rope_theta")
    ids = tokenizer.convert_tokens_to_ids
    text.update(
        rope_parameters={"rope_type": "default", "rope_theta": theta, "mrope_section": mrope},
        bos_token_id=ids("<|endoftext|>"), eos_token_id=ids("<|im_end|>"),
        pad_token_id=ids("<|endoftext|>"),
    )
    head_dim = text["hidden_size"] // text["num_attention_heads"]
    assert sum(mrope) == head_dim // 2, (mrope, head_dim)
    config = Qwen2_5_VLConfig(
        text_config=text, vision_config=dict(spec["vision"]),
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=text["tie_word_embeddings"],
    )
    return config


def build_model(config, device: str, dtype):
    """Random weights, allocated and initialised directly on the device (nothing is loaded)."""
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=dtype)
    model.eval()
    text = config.text_config
    model.generation_config = GenerationConfig(
        bos_token_id=text.bos_token_id, eos_token_id=[text.eos_token_id, text.pad_token_id],
        pad_token_id=text.pad_token_id, do_sample=False,
    )
    return model


def parameter_bytes(model) -> dict[str, float]:
    """Bytes of the vision tower, of the language model's weights read per decoded token (all
    but the embedding table, of which one row is read; the lm_head included) and in total."""
    vision = decode = total = 0
    for name, p in model.named_parameters():
        size = p.numel() * p.element_size()
        total += size
        if ".visual." in f".{name}" or name.startswith("visual"):
            vision += size
        elif "embed_tokens" not in name:
            decode += size
    return {"vision": vision, "decode": decode, "total": total}


def vision_linear_params(model) -> tuple[int, int]:
    """Parameters of the ViT blocks (+ patch embedding) and of the merger, counted separately
    because the merger runs on a quarter as many tokens."""
    blocks = merger = 0
    for name, p in model.named_parameters():
        if "visual" not in name:
            continue
        if "merger" in name:
            merger += p.numel()
        else:
            blocks += p.numel()
    return blocks, merger


# Microbenchmarks and floors -------------------------------------------------------------------


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(run, device: str, reps: int) -> float:
    """Median seconds of run() over reps (after one warm-up), the device synchronized."""
    run()
    sync(device)
    samples = []
    for _ in range(reps):
        started = time.perf_counter()
        run()
        sync(device)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def copy_bandwidth(device: str, megabytes: int) -> float:
    """Bytes per second of a device-to-device copy (each byte read once and written once)."""
    import torch

    n = megabytes * 2**20
    source = torch.empty(n, dtype=torch.uint8, device=device)
    target = torch.empty_like(source)
    seconds = timed(lambda: target.copy_(source), device, reps=10)
    return 2 * n / seconds


def matmul_flops(device: str, dtype, n: int) -> float:
    """FLOP/s of an n x n x n matmul in the model's dtype."""
    import torch

    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    seconds = timed(lambda: a @ b, device, reps=10)
    return 2 * n**3 / seconds


def prefill_flops(model, config, prompt_tokens: int, patches: int) -> float:
    """FLOPs of the vision encoder and the prefill: every linear layer exactly (2 x parameters
    x tokens), attention as 4 x tokens x attended tokens x width (ViT windows of
    (window_size / patch_size)^2 patches except the full-attention blocks; causal prefill)."""
    text, vision = config.text_config, config.vision_config
    lm_linear = sum(p.numel() for n, p in model.named_parameters()
                    if "visual" not in n and "embed_tokens" not in n and "lm_head" not in n
                    and p.dim() == 2)
    flops = 2 * lm_linear * prompt_tokens + 2 * text.hidden_size * text.vocab_size  # 1 logit row
    flops += 4 * text.num_hidden_layers * text.hidden_size * prompt_tokens**2 / 2  # causal
    blocks, merger = vision_linear_params(model)
    flops += 2 * blocks * patches + 2 * merger * patches / vision.spatial_merge_size**2
    window = min(patches, (vision.window_size // vision.patch_size) ** 2)
    full = len(vision.fullatt_block_indexes)
    flops += 4 * vision.hidden_size * patches * (full * patches + (vision.depth - full) * window)
    return float(flops)


def peak_memory_gb(device: str) -> float:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # Linux: KiB


# The query path -------------------------------------------------------------------------------


def synthetic_frame(width: int, height: int, seed: int = 0):
    """A textured RGB image, a plane 1 m away as depth, pinhole intrinsics."""
    from mimo_embodied_ros.core.types import CameraIntrinsics
    from mimo_embodied_ros.perception import Frame

    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([90 + 60 * cols / width, 110 + 50 * rows / height,
                    70 + 30 * np.sin(cols / 37.0) * np.cos(rows / 23.0)], axis=-1)
    rgb += rng.normal(0.0, 3.0, rgb.shape)
    rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    depth = np.full((height, width), 1.0, np.float32)
    focal = 0.727 * width
    k = CameraIntrinsics(fx=focal, fy=focal, cx=(width - 1) / 2, cy=(height - 1) / 2,
                         width=width, height=height)
    return Frame(rgb=rgb, depth_m=depth, intrinsics=k)


def run_answer(backend, frame, mode: str, tokens: int, instruction: str):
    """One pointing query through perception.run_query with the answer length forced."""
    from mimo_embodied_ros.perception import QuerySettings, run_query

    settings = QuerySettings(think=(mode == "think"), on_no_think_end="fail",
                             max_new_tokens=tokens)
    backend.forced_min_new_tokens = tokens
    try:
        result = run_query(backend, frame, instruction, "point", settings)
    finally:
        backend.forced_min_new_tokens = None
    if result.reply is None:
        raise RuntimeError(f"the query failed before an answer: {result.message}")
    if result.reply.completion_tokens != tokens:
        raise RuntimeError(f"forced {tokens} tokens, got {result.reply.completion_tokens}")
    return result


def batched_generate(backend, frames, tokens: int) -> float:
    """N queries as one batched generate (left padding), through the backend's processor and
    model with the same settings; seconds including the node's resize and the processor."""
    import torch
    from PIL import Image

    from mimo_embodied_ros.backends.transformers_backend import apply_chat_template
    from mimo_embodied_ros.core.prompts import Task, build_messages, build_task_text
    from mimo_embodied_ros.core.resize import resize_for_model, smart_resize

    started = time.perf_counter()
    conversations = []
    for frame, instruction in zip(frames, INSTRUCTIONS, strict=False):
        size = smart_resize(frame.size.height, frame.size.width, min_pixels=backend.min_pixels,
                            max_pixels=backend.max_pixels)
        messages = build_messages(build_task_text(Task.POINT, instruction, False), 1)
        for turn in messages:
            for item in turn["content"]:
                if item.get("type") == "image":
                    item["image"] = Image.fromarray(resize_for_model(frame.rgb, size))
        conversations.append(messages)
    tokenizer = backend.processor.tokenizer
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        inputs = apply_chat_template(backend.processor, conversations, padding=True,
                                     do_resize=False).to(backend.model.device)
    finally:
        tokenizer.padding_side = side
    with torch.inference_mode():
        output = backend.model.generate(
            **inputs, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False,
            temperature=None, top_p=None, top_k=None, repetition_penalty=1.0,
        )
    sync(str(backend.model.device))
    generated = int(output.shape[1]) - int(inputs["input_ids"].shape[1])
    if generated != tokens:
        raise RuntimeError(f"batched generate forced {tokens} tokens, got {generated}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true",
                        help="the same run on the CPU with the tiny test model's architecture")
    parser.add_argument("--device", default="cuda", help="device of the full run (cuda)")
    args = parser.parse_args()
    begun = time.perf_counter()

    import torch
    import transformers

    from mimo_embodied_ros.backends.processor import load_processor
    from mimo_embodied_ros.backends.transformers_backend import TransformersBackend
    from mimo_embodied_ros.perception import QuerySettings

    if args.tiny:
        device, dtype, label = "cpu", torch.float32, "tiny test architecture (CPU)"
        copy_mb, matmul_n = 256, 1024
    else:
        if not torch.cuda.is_available():
            sys.exit("no CUDA device; run with --tiny for the CPU check")
        device, dtype, label = args.device, torch.bfloat16, "MiMo-Embodied-7B architecture"
        copy_mb, matmul_n = 2048, 8192
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu"
    say(f"# gpu_bench: {label}, random weights, torch {torch.__version__}, transformers "
        f"{transformers.__version__}, device {name}")
    settings = QuerySettings()
    with tempfile.TemporaryDirectory(prefix="mimo_gpu_bench_") as tmp:
        folder = processor_folder(Path(tmp))
        processor = load_processor(folder, settings.min_pixels, settings.max_pixels)
        config = config_tiny(Path(tmp)) if args.tiny else config_7b(processor.tokenizer)
    built = time.perf_counter()
    model = build_model(config, device, dtype)
    sync(device)
    sizes = parameter_bytes(model)
    say(f"gpu model params_b={sizes['total'] / model.dtype.itemsize / 1e9:.4g} "
        f"weight_gb={sizes['total'] / 1e9:.4g} decode_read_gb={sizes['decode'] / 1e9:.4g} "
        f"vision_gb={sizes['vision'] / 1e9:.4g} build_s={time.perf_counter() - built:.1f}")

    bandwidth = copy_bandwidth(device, copy_mb)
    peak = matmul_flops(device, dtype, matmul_n)
    say(f"gpu copy_bandwidth_gbps={bandwidth / 1e9:.1f} (device copy of {copy_mb} MiB, read + "
        f"write)")
    say(f"gpu matmul_tflops={peak / 1e12:.4g} ({matmul_n}^3, {str(dtype).replace('torch.', '')})")

    backend = TransformersBackend(
        "MiMo-Embodied-7B-random" if not args.tiny else "tiny-random", device=device,
        min_pixels=settings.min_pixels, max_pixels=settings.max_pixels,
        max_new_tokens=max(t for _, t in ANSWERS), model=model, processor=processor,
    )
    frame = synthetic_frame(*FRAME_SIZE)
    run_answer(backend, frame, "no_think", 5, INSTRUCTIONS[0])  # warm-up: kernels, allocator
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    text = config.text_config
    kv_bytes_per_token = (2 * text.num_hidden_layers * text.num_key_value_heads
                          * (text.hidden_size // text.num_attention_heads) * model.dtype.itemsize)
    for mode, tokens in ANSWERS:
        result = run_answer(backend, frame, mode, tokens, INSTRUCTIONS[0])
        timings, reply = backend.last_timings, result.reply
        prompt = reply.prompt_tokens
        seen = reply.image_sizes[0]
        patches = (seen.width // 14) * (seen.height // 14)
        tag = f"answer={mode} tokens={tokens}"
        say(f"# {tag}: {FRAME_SIZE[0]}x{FRAME_SIZE[1]} -> {seen.width}x{seen.height} "
            f"({patches // 4} visual tokens), prompt {prompt} tokens")
        node_ms = result.timings_ms["preprocess_ms"]
        say(f"gpu {tag} preprocess_ms={node_ms + timings['preprocess_ms']:.1f} "
            f"node_resize_ms={node_ms:.1f} processor_ms={timings['preprocess_ms']:.1f}")
        floor = prefill_flops(model, config, prompt, patches) / peak * 1e3
        say(f"gpu {tag} prefill_ms={timings['prefill_ms']:.1f} floor_ms={floor:.4g} "
            f"ratio={timings['prefill_ms'] / floor:.2f}")
        per_token = timings["decode_ms"] / max(1.0, timings["new_tokens"] - 1)
        context = prompt + tokens / 2
        floor = (sizes["decode"] + kv_bytes_per_token * context) / bandwidth * 1e3
        say(f"gpu {tag} decode_ms_per_token={per_token:.2f} floor_ms={floor:.4g} "
            f"ratio={per_token / floor:.2f}")
        say(f"gpu {tag} end_to_end_ms={result.timings_ms['total_ms']:.1f} "
            f"postprocess_ms={result.timings_ms['postprocess_ms']:.2f}")
    say(f"gpu peak_memory_gb={peak_memory_gb(device):.2f} "
        f"({'torch.cuda.max_memory_allocated' if device.startswith('cuda') else 'process RSS'})")

    frames = [synthetic_frame(*FRAME_SIZE, seed=i) for i in range(CONCURRENT)]
    sequential_started = time.perf_counter()
    for i in range(CONCURRENT):
        run_answer(backend, frames[i], "no_think", CONCURRENT_TOKENS, INSTRUCTIONS[i])
    sequential = time.perf_counter() - sequential_started
    batched = batched_generate(backend, frames, CONCURRENT_TOKENS)
    say(f"gpu concurrent n={CONCURRENT} tokens={CONCURRENT_TOKENS} "
        f"sequential_ms={sequential * 1e3:.0f} batched_ms={batched * 1e3:.0f} "
        f"speedup={sequential / batched:.2f}")
    say(f"gpu total_s={time.perf_counter() - begun:.1f}")
    backend.close()


if __name__ == "__main__":
    main()
