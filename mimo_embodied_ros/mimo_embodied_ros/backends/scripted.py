"""A backend that answers from a file, in the model's exact output format.

Used by tests and the demo: the simulator writes ground-truth answers (e.g. a <think> block and
a points JSON) into the file, and the rest of the stack runs exactly as with the real model.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from mimo_embodied_ros.backends.base import (
    BackendError,
    ModelReply,
    ModelRequest,
    validate_request,
)
from mimo_embodied_ros.core.prompts import NO_THINK_SUFFIX
from mimo_embodied_ros.core.types import ImageSize

DEFAULT_KEY = "*"


def _normalize(instruction: str) -> str:
    return instruction.strip().casefold()


class ScriptedBackend:
    """Answers keyed on the instruction; the file is re-read whenever it changes on disk."""

    name = "scripted"

    def __init__(
        self, answers_file: str | Path, model_id: str = "scripted", delay_s: float = 0.0
    ) -> None:
        self.answers_file = Path(answers_file).expanduser()
        self.model_id = model_id
        self.delay_s = max(0.0, float(delay_s))
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._answers: dict[str, str] = {}
        with self._lock:
            self._reload_if_changed()

    def _reload_if_changed(self) -> None:
        try:
            stat = self.answers_file.stat()
        except OSError as error:
            raise BackendError(
                "load", f"cannot read scripted answers file {str(self.answers_file)!r}: {error}"
            ) from error
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        self._answers = _read_answers(self.answers_file)
        self._stamp = stamp

    def answer_for(self, instruction: str, no_think: bool = False) -> str:
        """The scripted answer for an instruction (exact after strip, case-insensitive).

        In no-think mode a key "<instruction> /no_think" is preferred when the file has one, so
        a file can script how a model answers the no-think retry of an unfinished thought.
        """
        with self._lock:
            self._reload_if_changed()
            answers = self._answers
        key = _normalize(instruction)
        if no_think and key + NO_THINK_SUFFIX in answers:
            return answers[key + NO_THINK_SUFFIX]
        if key in answers:
            return answers[key]
        if DEFAULT_KEY in answers:
            return answers[DEFAULT_KEY]
        raise BackendError(
            "invalid_request",
            f"no scripted answer for {instruction.strip()!r} in {str(self.answers_file)!r} "
            f"and no {DEFAULT_KEY!r} default",
        )

    def generate(self, request: ModelRequest) -> ModelReply:
        validate_request(request)
        started = time.perf_counter()
        text = self.answer_for(request.instruction, request.task_text.endswith(NO_THINK_SUFFIX))
        if self.delay_s and request.cancel.wait(self.delay_s):
            raise BackendError("cancelled", "the query was cancelled while the model was thinking")
        return ModelReply(
            text=text,
            model_id=self.model_id,
            model_ms=(time.perf_counter() - started) * 1000.0,
            prompt_tokens=None,
            # The caller pre-resized the images: that is the size a model would have seen.
            image_sizes=[ImageSize(width=im.shape[1], height=im.shape[0]) for im in request.images],
            image_check="exact" if request.images else "",
        )

    def close(self) -> None:
        """Nothing to free."""


def _read_answers(path: Path) -> dict[str, str]:
    """Read a YAML or JSON mapping instruction -> answer text, keys normalized."""
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as error:
        raise BackendError(
            "load", f"scripted answers file {str(path)!r} is not valid YAML/JSON: {error}"
        ) from error
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BackendError(
            "load",
            f"scripted answers file {str(path)!r} must hold a mapping instruction -> answer, "
            f"not {type(data).__name__}",
        )
    answers: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(value, str):
            raise BackendError(
                "load", f"scripted answer for {key!r} in {str(path)!r} is not text: {value!r}"
            )
        normalized = DEFAULT_KEY if str(key).strip() == DEFAULT_KEY else _normalize(str(key))
        answers[normalized] = value
    return answers
