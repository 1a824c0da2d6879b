"""create_backend: kind + node parameters -> a working backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from mimo_embodied_ros.backends.base import BackendError, ModelRequest
from mimo_embodied_ros.backends.factory import BACKEND_KINDS, create_backend
from mimo_embodied_ros.backends.openai_backend import OpenAIBackend
from mimo_embodied_ros.backends.scripted import ScriptedBackend
from mimo_embodied_ros.backends.transformers_backend import TransformersBackend


def test_creates_each_kind(tmp_path: Path, tiny_qwen_dir: Path) -> None:
    answers = tmp_path / "answers.yaml"
    answers.write_text("'*': '[[1, 2]]'\n")
    scripted = create_backend("scripted", {"answers_file": str(answers), "delay_s": 0.0})
    assert isinstance(scripted, ScriptedBackend)
    reply = scripted.generate(ModelRequest(images=[], task_text="t", instruction="i"))
    assert reply.text == "[[1, 2]]"

    client = create_backend(
        "openai", {"base_url": "http://127.0.0.1:9/v1", "model": "mimo", "timeout_s": 3.0}
    )
    assert isinstance(client, OpenAIBackend)
    assert client.url == "http://127.0.0.1:9/v1/chat/completions"

    local = create_backend(
        "transformers", {"model_path": str(tiny_qwen_dir), "max_pixels": 200704, "device": "cpu"}
    )
    assert isinstance(local, TransformersBackend)
    local.close()


def test_unknown_kind_lists_the_kinds() -> None:
    with pytest.raises(ValueError) as caught:
        create_backend("vllm", {})
    for kind in BACKEND_KINDS:
        assert kind in str(caught.value)


def test_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown settings for the scripted backend: answer_file"):
        create_backend("scripted", {"answer_file": "x.yaml"})
    with pytest.raises(ValueError, match="needs the settings: base_url, model"):
        create_backend("openai", {})
    with pytest.raises(BackendError) as caught:
        create_backend("transformers", {"model_path": str(tmp_path / "none")})
    assert caught.value.kind == "load"
