"""TransformersBackend on a tiny random Qwen2.5-VL, through the real from_pretrained path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mimo_embodied_ros.backends.base import BackendError, ModelRequest, VisionLanguageBackend
from mimo_embodied_ros.backends.transformers_backend import TransformersBackend
from mimo_embodied_ros.core.resize import smart_resize
from mimo_embodied_ros.core.types import ImageSize

MAX_PIXELS = 200704  # 256 visual tokens


@pytest.fixture(scope="module")
def backend(tiny_qwen_dir: Path) -> TransformersBackend:
    loaded = TransformersBackend(model_path=tiny_qwen_dir, max_pixels=MAX_PIXELS)
    yield loaded
    loaded.close()


def _image(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _request(images: list[np.ndarray], max_new_tokens: int = 6) -> ModelRequest:
    return ModelRequest(
        images=images,
        task_text='Based on the description: "the cup", locate points. /no_think',
        instruction="the cup",
        max_new_tokens=max_new_tokens,
    )


def test_backend_satisfies_the_protocol(backend: TransformersBackend) -> None:
    assert isinstance(backend, VisionLanguageBackend)
    assert backend.name == "transformers"
    assert str(backend.dtype) == "torch.float32"  # CPU default


def test_generate_reports_the_size_the_model_saw_and_token_counts(
    backend: TransformersBackend,
) -> None:
    replies = {}
    for height, width in [(56, 84), (280, 364)]:
        # The caller pre-resizes with core.resize; the processor must then leave the size alone.
        size = smart_resize(height, width, max_pixels=MAX_PIXELS)
        assert (size.height, size.width) == (height, width)
        reply = backend.generate(_request([_image(height, width, seed=height)]))
        assert isinstance(reply.text, str)
        assert reply.image_sizes == [ImageSize(width=width, height=height)]
        assert reply.model_ms > 0
        assert reply.model_id == backend.model_id
        replies[(height, width)] = reply
    small, large = replies[(56, 84)], replies[(280, 364)]
    # One visual token per 28x28 block: the difference is exactly the extra image tokens.
    assert large.prompt_tokens - small.prompt_tokens == (280 * 364 - 56 * 84) // (28 * 28)


def test_text_only_request_has_no_image_sizes(backend: TransformersBackend) -> None:
    with_image = backend.generate(_request([_image(56, 56, seed=1)]))
    text_only = backend.generate(_request([]))
    assert text_only.image_sizes is None
    # 4 visual tokens plus <|vision_start|> and <|vision_end|>.
    assert with_image.prompt_tokens - text_only.prompt_tokens == 4 + 2


def test_generation_is_greedy_whatever_the_checkpoint_defaults(
    backend: TransformersBackend,
) -> None:
    """A checkpoint may ask for sampling in its generation_config; the backend stays greedy."""
    config = backend.model.generation_config
    saved = (config.do_sample, config.temperature)
    config.do_sample, config.temperature = True, 50.0
    try:
        request = _request([_image(56, 84, seed=7)], max_new_tokens=8)
        texts = {backend.generate(request).text for _ in range(3)}
    finally:
        config.do_sample, config.temperature = saved
    assert len(texts) == 1


def test_processor_cap_matches_the_setting(tiny_qwen_dir: Path) -> None:
    """An image over max_pixels is shrunk by the processor exactly as core.resize would."""
    capped = TransformersBackend(model_path=tiny_qwen_dir, max_pixels=56 * 84)
    try:
        reply = capped.generate(_request([_image(280, 364, seed=3)], max_new_tokens=1))
    finally:
        capped.close()
    expected = smart_resize(280, 364, max_pixels=56 * 84)
    assert reply.image_sizes == [ImageSize(width=expected.width, height=expected.height)]


def test_decoding_keeps_think_tags_and_drops_end_of_turn(backend: TransformersBackend) -> None:
    tokenizer = backend.processor.tokenizer
    ids = tokenizer.encode("<think>a cup</think>[[10, 20]]<|im_end|>", add_special_tokens=False)
    assert tokenizer.convert_tokens_to_ids("</think>") in ids
    assert backend.decode_new_tokens(ids) == "<think>a cup</think>[[10, 20]]"


def test_invalid_images_are_refused(backend: TransformersBackend) -> None:
    with pytest.raises(BackendError) as caught:
        backend.generate(_request([np.zeros((56, 56), dtype=np.uint8)]))
    assert caught.value.kind == "invalid_request"
    with pytest.raises(BackendError) as caught:
        backend.generate(_request([np.zeros((56, 56, 3), dtype=np.float32)]))
    assert caught.value.kind == "invalid_request"


def test_float16_is_refused_with_the_reason(tiny_qwen_dir: Path) -> None:
    with pytest.raises(BackendError) as caught:
        TransformersBackend(model_path=tiny_qwen_dir, dtype="float16")
    assert caught.value.kind == "load"
    assert "'!'" in str(caught.value)


def test_missing_folder_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(BackendError) as caught:
        TransformersBackend(model_path=tmp_path / "no_such_checkpoint")
    assert caught.value.kind == "load"
    assert "no_such_checkpoint" in str(caught.value)


def test_unreadable_weights_are_a_load_error(tiny_qwen_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in tiny_qwen_dir.iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(BackendError) as caught:
        TransformersBackend(model_path=broken)
    assert caught.value.kind == "load"


def test_closed_backend_reports_unavailable(tiny_qwen_dir: Path) -> None:
    closing = TransformersBackend(model_path=tiny_qwen_dir)
    closing.close()
    with pytest.raises(BackendError) as caught:
        closing.generate(_request([]))
    assert caught.value.kind == "unavailable"


def test_cancel_mid_generation_stops_within_half_a_second(tiny_qwen_dir: Path) -> None:
    """A forced long generation (the tiny model never writes an end token) stops on cancel."""
    import threading
    import time

    from mimo_embodied_ros.backends.base import Progress

    long_budget = TransformersBackend(model_path=tiny_qwen_dir, max_pixels=MAX_PIXELS,
                                      max_new_tokens=100_000)
    progress: list[Progress] = []
    request = _request([_image(56, 84, seed=3)], max_new_tokens=100_000)
    request.on_progress = progress.append
    outcome: dict[str, object] = {}

    def generate() -> None:
        try:
            outcome["reply"] = long_budget.generate(request)
        except BackendError as error:
            outcome["error"] = error
        outcome["ended"] = time.monotonic()

    worker = threading.Thread(target=generate)
    worker.start()
    deadline = time.monotonic() + 30.0
    while not any(p.tokens >= 64 for p in progress) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert any(p.tokens >= 64 for p in progress), "the generation never got going"
    cancelled_at = time.monotonic()
    request.cancel.set()
    worker.join(timeout=10.0)
    try:
        assert "error" in outcome and outcome["error"].kind == "cancelled"
        assert outcome["ended"] - cancelled_at < 0.5
        assert any(p.phase == "generating" and p.text for p in progress)  # text so far reported
        # The model is free at once: a short query right after runs and answers.
        started = time.monotonic()
        reply = long_budget.generate(_request([_image(56, 84, seed=4)], max_new_tokens=4))
        assert reply.completion_tokens == 4
        assert time.monotonic() - started < 5.0
    finally:
        long_budget.close()


def _count_processor_resizes(backend: TransformersBackend, monkeypatch) -> list[int]:
    calls: list[int] = []
    image_processor = backend.processor.image_processor
    original = image_processor.resize

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(image_processor, "resize", counting)
    return calls


def test_an_image_resized_by_the_node_is_not_resized_again(
    backend: TransformersBackend, monkeypatch
) -> None:
    calls = _count_processor_resizes(backend, monkeypatch)
    exact = smart_resize(300, 400, max_pixels=MAX_PIXELS)
    assert backend.already_resized([_image(exact.height, exact.width, seed=3)])
    reply = backend.generate(_request([_image(exact.height, exact.width, seed=3)]))
    assert calls == [] and reply.image_sizes == [exact]

    # Any other size is resized once, by the processor, to its own smart-resize.
    assert not backend.already_resized([_image(300, 400, seed=3)])
    reply = backend.generate(_request([_image(300, 400, seed=3)]))
    assert calls == [1] and reply.image_sizes == [exact]


def test_a_prebuilt_model_runs_like_the_loaded_one(backend: TransformersBackend) -> None:
    """gpu_bench builds the model in memory and hands it over; same generation path."""
    prebuilt = TransformersBackend("prebuilt-7b", model=backend.model,
                                   processor=backend.processor, max_pixels=MAX_PIXELS)
    request = _request([_image(56, 84, seed=11)], max_new_tokens=5)
    assert prebuilt.model_id == "prebuilt-7b"
    assert prebuilt.generate(request).text == backend.generate(request).text
    with pytest.raises(BackendError):
        TransformersBackend("half", model=backend.model)


def test_forced_answer_length_and_stage_timings(backend: TransformersBackend) -> None:
    backend.forced_min_new_tokens = 12
    try:
        reply = backend.generate(_request([_image(56, 84, seed=5)], max_new_tokens=12))
    finally:
        backend.forced_min_new_tokens = None
    assert reply.completion_tokens == 12
    timings = backend.last_timings
    assert timings["new_tokens"] == 12
    assert all(timings[key] > 0 for key in ("preprocess_ms", "prefill_ms", "decode_ms"))
    assert sum(timings[k] for k in ("preprocess_ms", "prefill_ms", "decode_ms")) <= (
        reply.model_ms + 1e-6)
