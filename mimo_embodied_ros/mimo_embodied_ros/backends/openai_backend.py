"""MiMo-Embodied behind any OpenAI-compatible server (vLLM, SGLang, `transformers serve`).

The request mirrors the official evaluation: system turn, one user turn with the images first (PNG
data URLs, lossless so the server sees the exact pixels) and the text last, greedy sampling, and
the node's own pixel range passed to the server (`mm_processor_kwargs`) so the server's resize of
the already resized images is a no-op. The reply's prompt token count proves it was (or was not).

`timeout_s` bounds the whole call (retries included), however slowly the answer arrives; the
request's cancel event is seen within about 0.1 s, and closing the connection makes the server
stop generating.
"""

from __future__ import annotations

import base64
import io
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from mimo_embodied_ros.backends.base import (
    BackendError,
    ModelReply,
    ModelRequest,
    Progress,
    validate_request,
)
from mimo_embodied_ros.backends.http_stream import (
    BrokenAnswer,
    HttpExchange,
    StreamCancelled,
    StreamTimeout,
)
from mimo_embodied_ros.backends.token_check import check_image_tokens, image_tokens
from mimo_embodied_ros.core.prompts import SYSTEM_PROMPT, build_messages
from mimo_embodied_ros.core.types import ImageSize

__all__ = ["OpenAIBackend", "check_image_tokens", "image_tokens", "png_data_url"]

RETRY_BACKOFF_S = 0.25  # first pause between retries; doubles each time
MAX_BODY_BYTES = 64 * 1024 * 1024
EXTENSION_FIELDS = ("mm_processor_kwargs", "repetition_penalty")  # vLLM's, not OpenAI's


def png_data_url(rgb: np.ndarray) -> str:
    """An RGB uint8 image as a data: URL holding a PNG."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buffer, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class OpenAIBackend:
    """Chat-completions client with a whole-call deadline, cancellation and an image-size check."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        timeout_s: float = 120.0,
        retries: int = 2,
        max_new_tokens: int = 1024,
        min_pixels: int = 3136,
        max_pixels: int = 1003520,
        stream: bool = False,
        server_extensions: bool = True,
    ) -> None:
        """``min_pixels``/``max_pixels``: the node's smart-resize range, sent to the server.

        ``stream``: ask for a server-sent-events answer (progress with the text so far).
        ``server_extensions``: send the non-OpenAI fields ``mm_processor_kwargs`` and
        ``repetition_penalty`` (vLLM takes both); False for servers that refuse unknown fields
        (`transformers serve` answers HTTP 422; a refusal naming them also turns them off, see
        ``extensions_refused``). The prompt token check guards either way.
        """
        if not base_url.startswith(("http://", "https://")):
            raise BackendError(
                "invalid_request", f"base_url {base_url!r} must start with http:// or https://"
            )
        if not model:
            raise BackendError("invalid_request", "the served model name is empty")
        if timeout_s <= 0:
            raise BackendError("invalid_request", f"timeout_s must be > 0, got {timeout_s}")
        if not 0 < min_pixels <= max_pixels:
            raise BackendError(
                "invalid_request",
                f"need 0 < min_pixels <= max_pixels, got {min_pixels}, {max_pixels}",
            )
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model_id = model
        self.api_key_env = api_key_env
        self.timeout_s = float(timeout_s)
        self.retries = max(0, int(retries))
        self.max_new_tokens = int(max_new_tokens)
        self.min_pixels = int(min_pixels)
        self.max_pixels = int(max_pixels)
        self.stream = bool(stream)
        self.server_extensions = bool(server_extensions)
        # The server's refusal when it did not take the extension fields (then left out).
        self.extensions_refused = ""

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.stream:
            headers["Accept"] = "text/event-stream"
        api_key = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        return headers

    def build_body(self, request: ModelRequest) -> dict[str, Any]:
        """The JSON body of a chat-completions call for this request."""
        messages = build_messages(request.task_text, len(request.images))
        images = iter(request.images)
        for turn in messages:
            for item in turn["content"]:
                if item.get("type") == "image":
                    item.clear()
                    item.update(
                        {"type": "image_url", "image_url": {"url": png_data_url(next(images))}}
                    )
        body: dict[str, Any] = {
            "model": self.model_id,
            "messages": messages,
            "temperature": 0.0,
            "top_p": 1.0,
            "max_tokens": min(request.max_new_tokens, self.max_new_tokens),
            "stream": self.stream,
        }
        if self.server_extensions:
            body["repetition_penalty"] = 1.0
            body["mm_processor_kwargs"] = {
                "min_pixels": self.min_pixels,
                "max_pixels": self.max_pixels,
            }
        if self.stream:
            body["stream_options"] = {"include_usage": True}
        return body

    def generate(self, request: ModelRequest) -> ModelReply:
        """Send one request and return the model's raw text (BackendError on any failure)."""
        validate_request(request)
        started = time.perf_counter()
        deadline = time.monotonic() + self.timeout_s
        try:
            try:
                payload = self._call(request, self._encode(request), deadline)
            except BackendError as error:
                if not self._refused_extensions(error):
                    raise
                # A server that refuses the non-OpenAI fields (transformers serve: HTTP 422
                # "Unexpected fields"): ask again without them, now and from now on. The prompt
                # token check still proves the server saw the node's image size.
                self.server_extensions = False
                self.extensions_refused = error.message
                payload = self._call(request, self._encode(request), deadline)
        except StreamTimeout as error:
            raise BackendError(
                "timeout", f"no complete answer from {self.url} within {self.timeout_s:g} s"
            ) from error
        except StreamCancelled as error:
            raise BackendError(
                "cancelled", f"cancelled; the request to {self.url} was closed"
            ) from error
        model_ms = (time.perf_counter() - started) * 1000.0
        return self._reply(request, payload, model_ms)

    def _encode(self, request: ModelRequest) -> bytes:
        return json.dumps(self.build_body(request)).encode("utf-8")

    def _refused_extensions(self, error: BackendError) -> bool:
        """True for a 4xx answer that names the extension fields this backend sent."""
        return (
            self.server_extensions
            and error.kind == "invalid_request"
            and "rejected the request (HTTP 4" in error.message
            and any(name in error.message for name in EXTENSION_FIELDS)
        )

    def _call(self, request: ModelRequest, data: bytes, deadline: float) -> dict[str, Any]:
        """The answer's JSON (or the assembled stream), retrying dropped connections and 5xx."""
        attempts = self.retries + 1
        last_problem = ""
        for attempt in range(attempts):
            if attempt:
                pause = RETRY_BACKOFF_S * 2 ** (attempt - 1)
                if pause >= deadline - time.monotonic():
                    raise StreamTimeout()
                if request.cancel.wait(pause):
                    raise StreamCancelled()
            request.report(Progress("sending"))
            with HttpExchange(self.url, deadline, request.cancel) as exchange:
                try:
                    exchange.send("POST", data, self._headers())
                    request.report(Progress("generating"))
                    head = exchange.read_head()
                    if head.status >= 400:
                        self._refuse(head.status, _read_all(exchange.body(head), request))
                    if "text/event-stream" in head.headers.get("content-type", ""):
                        return _read_events(exchange.body(head), request)
                    text = _read_all(exchange.body(head), request).decode("utf-8", "replace")
                except (OSError, BrokenAnswer) as error:
                    last_problem = f"the connection to {self.url} failed: {error}"
                    continue
                except _ServerError as error:
                    last_problem = str(error)
                    continue
            try:
                payload = json.loads(text)
            except ValueError as error:
                if _looks_truncated(text, error):
                    last_problem = f"{self.url} sent a truncated answer: {text[-100:]!r}"
                    continue
                raise BackendError(
                    "bad_response", f"{self.url} answered with invalid JSON: {text[:200]!r}"
                ) from error
            if not isinstance(payload, dict):
                raise BackendError("bad_response", f"{self.url} answered {text[:200]!r}")
            return payload
        raise BackendError("unavailable", f"{last_problem} (after {attempts} attempt(s))")

    def _refuse(self, status: int, body: bytes) -> None:
        """Raise for an HTTP error status: _ServerError (retried) for 5xx, BackendError for 4xx."""
        text = body.decode("utf-8", "replace")[:300]
        if status >= 500:
            raise _ServerError(f"{self.url} answered HTTP {status}: {text}")
        if status in (401, 403):
            raise BackendError(
                "unavailable",
                f"{self.url} refused the request (HTTP {status}); check the API key in the "
                f"environment variable {self.api_key_env!r}",
            )
        raise BackendError(
            "invalid_request", f"{self.url} rejected the request (HTTP {status}): {text}"
        )

    def _reply(self, request: ModelRequest, payload: dict[str, Any], model_ms: float) -> ModelReply:
        """The ModelReply of a parsed answer, after checking the server saw the node's images."""
        text = _reply_text(payload)
        if text is None:
            raise BackendError(
                "bad_response",
                f"{self.url} answered without choices[0].message.content: {str(payload)[:200]}",
            )
        usage = payload.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        prompt_tokens = usage.get("prompt_tokens")
        prompt_tokens = prompt_tokens if isinstance(prompt_tokens, int) else None
        completion_tokens = usage.get("completion_tokens")
        sizes = [ImageSize(width=image.shape[1], height=image.shape[0]) for image in request.images]
        image_check, image_sizes = "", None
        if sizes and prompt_tokens is None:
            image_check = "unverified"
        elif sizes:
            problem = check_image_tokens(
                prompt_tokens, sizes, SYSTEM_PROMPT + request.task_text, self.max_pixels
            )
            if problem:
                raise BackendError("mismatch", problem)
            image_check, image_sizes = "verified", sizes
        return ModelReply(
            text=text,
            model_id=str(payload.get("model") or self.model_id),
            model_ms=model_ms,
            prompt_tokens=prompt_tokens,
            image_sizes=image_sizes,
            image_check=image_check,
            completion_tokens=completion_tokens if isinstance(completion_tokens, int) else None,
        )

    def close(self) -> None:
        """Nothing to release: every call uses its own connection."""


class _ServerError(Exception):
    """An HTTP 5xx answer (retried)."""


def _read_all(pieces: Iterator[bytes], request: ModelRequest) -> bytes:
    """Join a body's pieces, reporting "reading" once bytes arrive."""
    body = bytearray()
    for piece in pieces:
        if piece and not body:
            request.report(Progress("reading"))
        body += piece
        if len(body) > MAX_BODY_BYTES:
            raise BrokenAnswer(f"the answer is larger than {MAX_BODY_BYTES} bytes")
    return bytes(body)


def _read_events(pieces: Iterator[bytes], request: ModelRequest) -> dict[str, Any]:
    """Assemble a server-sent-events chat stream into the shape of a non-streaming answer."""
    content: list[str] = []
    reasoning: list[str] = []
    answer: dict[str, Any] = {}
    deltas = 0
    pending = b""
    for piece in pieces:
        pending += piece
        *lines, pending = pending.split(b"\n")
        for raw_line in lines:
            line = raw_line.strip()
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                answer["choices"] = [{"message": {
                    "content": "".join(content), "reasoning_content": "".join(reasoning),
                }}]
                return answer
            try:
                event = json.loads(data)
            except ValueError as error:
                raise BrokenAnswer(f"a stream event is not JSON: {data[:100]!r}") from error
            if not isinstance(event, dict) or "error" in event:
                raise BackendError("bad_response", f"the server's stream said {str(event)[:200]}")
            for key in ("model", "usage"):
                if event.get(key):
                    answer[key] = event[key]
            for choice in event.get("choices") or []:
                delta = choice.get("delta") if isinstance(choice, dict) else None
                if not isinstance(delta, dict):
                    continue
                thought = delta.get("reasoning_content") or delta.get("reasoning")
                said = delta.get("content")
                if isinstance(thought, str) and thought:
                    reasoning.append(thought)
                if isinstance(said, str) and said:
                    content.append(said)
                if (isinstance(thought, str) and thought) or (isinstance(said, str) and said):
                    deltas += 1
                    request.report(Progress("generating", tokens=deltas, text=_joined(
                        "".join(content), "".join(reasoning))))
    raise BrokenAnswer("the event stream ended without [DONE]")


def _looks_truncated(text: str, error: ValueError) -> bool:
    """True when invalid JSON is a document cut short (the body ended early), not garbage."""
    if not text.strip():
        return True
    if isinstance(error, json.JSONDecodeError):
        return error.pos >= len(text.rstrip()) or error.msg.startswith("Unterminated string")
    return False


def _joined(content: str, reasoning: str) -> str:
    """Content and server-separated reasoning in the model's own format.

    Reasoning without content means the thinking never ended: "<think>" + reasoning, no
    "</think>", so the answer parser reports it as such. Both empty: "" (an empty answer).
    """
    if not reasoning:
        return content
    if not content:
        return f"<think>{reasoning}"
    if "</think>" in content:
        return content
    return f"<think>{reasoning}</think>{content}"


def _reply_text(payload: Any) -> str | None:
    """choices[0].message.content (with any separated reasoning put back), None if malformed."""
    if not isinstance(payload, dict):
        return None
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    message = choices[0].get("message")
    if not isinstance(message, dict) or "content" not in message:
        return None
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        return None
    # Servers started with a reasoning parser (vLLM, SGLang) move the thinking out of content;
    # put it back in the model's own format so the answer parser sees what the model wrote.
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    return _joined(content or "", reasoning if isinstance(reasoning, str) else "")
