"""ScriptedBackend: answers keyed on the instruction, re-read when the file changes."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from mimo_embodied_ros.backends.base import BackendError, ModelRequest, VisionLanguageBackend
from mimo_embodied_ros.backends.scripted import ScriptedBackend
from mimo_embodied_ros.core.types import ImageSize

POINT_ANSWER = '<think>The apple is on the left.</think>[{"points": [[120, 88]], "label": "apple"}]'


def _ask(backend: ScriptedBackend, instruction: str, images=None) -> str:
    request = ModelRequest(
        images=images or [], task_text=f"task: {instruction}", instruction=instruction
    )
    return backend.generate(request).text


def _write(path: Path, text: str) -> None:
    """Rewrite the file and move its mtime forward, as a later edit would."""
    path.write_text(text)
    later = time.time() + 5
    os.utime(path, (later, later))


@pytest.fixture()
def answers_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "answers.yaml"
    path.write_text(
        "Point at the apple: '" + POINT_ANSWER.replace("'", "''") + "'\n"
        "is there a cup?: '\\boxed{yes}'\n"
    )
    return path


def test_exact_match_ignores_case_and_surrounding_space(answers_yaml: Path) -> None:
    backend = ScriptedBackend(answers_yaml)
    assert isinstance(backend, VisionLanguageBackend)
    assert _ask(backend, "Point at the apple") == POINT_ANSWER
    assert _ask(backend, "  POINT AT THE APPLE \n") == POINT_ANSWER
    assert _ask(backend, "Is there a cup?") == "\\boxed{yes}"


def test_partial_match_is_not_a_match(answers_yaml: Path) -> None:
    backend = ScriptedBackend(answers_yaml)
    with pytest.raises(BackendError) as caught:
        _ask(backend, "point at the apple please")
    assert caught.value.kind == "invalid_request"
    assert "no scripted answer for 'point at the apple please'" in str(caught.value)


def test_wildcard_answers_any_other_instruction(tmp_path: Path) -> None:
    path = tmp_path / "answers.json"
    path.write_text(json.dumps({"*": "default answer", "stop": "\\boxed{no}"}))
    backend = ScriptedBackend(path, model_id="sim-truth", delay_s=0.05)
    assert _ask(backend, "stop") == "\\boxed{no}"
    reply = backend.generate(
        ModelRequest(
            images=[np.zeros((56, 84, 3), np.uint8)], task_text="x", instruction="anything at all"
        )
    )
    assert reply.text == "default answer"
    assert reply.model_id == "sim-truth"
    assert reply.model_ms >= 50.0  # the configured delay
    assert reply.image_sizes == [ImageSize(width=84, height=56)]


def test_reloads_when_the_file_changes(answers_yaml: Path) -> None:
    backend = ScriptedBackend(answers_yaml)
    assert _ask(backend, "is there a cup?") == "\\boxed{yes}"
    _write(answers_yaml, "is there a cup?: '\\boxed{no}'\n")
    assert _ask(backend, "is there a cup?") == "\\boxed{no}"
    with pytest.raises(BackendError):
        _ask(backend, "point at the apple")  # gone from the new file


def test_bad_files_are_load_errors(tmp_path: Path) -> None:
    with pytest.raises(BackendError) as caught:
        ScriptedBackend(tmp_path / "missing.yaml")
    assert caught.value.kind == "load"
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(BackendError, match="mapping") as caught:
        ScriptedBackend(listing)
    assert caught.value.kind == "load"
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(BackendError) as caught:
        ScriptedBackend(broken)
    assert caught.value.kind == "load"
