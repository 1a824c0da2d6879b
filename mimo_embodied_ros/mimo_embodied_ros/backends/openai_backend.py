"""MiMo-Embodied behind any OpenAI-compatible server (vLLM, SGLang, `transformers serve`).

The request mirrors the official evaluation: system turn, one user turn with the images first (PNG
data URLs, lossless so the server sees the exact pixels) and the text last, greedy sampling.
"""

from __future__ import annotations

import base64
import io
import os
import time
from typing import Any

import numpy as np
import requests

from mimo_embodied_ros.backends.base import (
    BackendError,
    ModelReply,
    ModelRequest,
    validate_request,
)
from mimo_embodied_ros.core.prompts import build_messages

RETRY_BACKOFF_S = 0.25  # first pause between retries; doubles each time


def png_data_url(rgb: np.ndarray) -> str:
    """An RGB uint8 image as a data: URL holding a PNG."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buffer, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class OpenAIBackend:
    """Chat-completions client with bounded retries and operator-readable errors."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        timeout_s: float = 120.0,
        retries: int = 2,
        max_new_tokens: int = 1024,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise BackendError(
                "invalid_request", f"base_url {base_url!r} must start with http:// or https://"
            )
        if not model:
            raise BackendError("invalid_request", "the served model name is empty")
        if timeout_s <= 0:
            raise BackendError("invalid_request", f"timeout_s must be > 0, got {timeout_s}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model_id = model
        self.api_key_env = api_key_env
        self.timeout_s = float(timeout_s)
        self.retries = max(0, int(retries))
        self.max_new_tokens = int(max_new_tokens)
        self._session = requests.Session()

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
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
        return {
            "model": self.model_id,
            "messages": messages,
            "temperature": 0.0,
            "top_p": 1.0,
            "max_tokens": min(request.max_new_tokens, self.max_new_tokens),
            "stream": False,
        }

    def _post(self, body: dict[str, Any]) -> requests.Response:
        """POST with retries on connection errors and 5xx; timeouts are not retried."""
        attempts = self.retries + 1
        last_problem = ""
        for attempt in range(attempts):
            if attempt:
                time.sleep(RETRY_BACKOFF_S * 2 ** (attempt - 1))
            try:
                response = self._session.post(
                    self.url, json=body, headers=self._headers(), timeout=self.timeout_s
                )
            except requests.Timeout as error:
                raise BackendError(
                    "timeout", f"no answer from {self.url} within {self.timeout_s:g} s"
                ) from error
            except requests.ConnectionError as error:
                last_problem = f"cannot connect to {self.url}: {error}"
                continue
            if response.status_code >= 500:
                last_problem = (
                    f"{self.url} answered HTTP {response.status_code}: {response.text[:300]}"
                )
                continue
            return response
        raise BackendError("unavailable", f"{last_problem} (after {attempts} attempt(s))")

    def generate(self, request: ModelRequest) -> ModelReply:
        """Send one request and return the model's raw text."""
        validate_request(request)
        body = self.build_body(request)
        started = time.perf_counter()
        response = self._post(body)
        model_ms = (time.perf_counter() - started) * 1000.0
        if response.status_code in (401, 403):
            raise BackendError(
                "unavailable",
                f"{self.url} refused the request (HTTP {response.status_code}); check the API key "
                f"in the environment variable {self.api_key_env!r}",
            )
        if response.status_code >= 400:
            raise BackendError(
                "invalid_request",
                f"{self.url} rejected the request (HTTP {response.status_code}): "
                f"{response.text[:300]}",
            )
        try:
            payload = response.json()
        except ValueError as error:
            raise BackendError(
                "bad_response", f"{self.url} answered with invalid JSON: {response.text[:200]!r}"
            ) from error
        text = _reply_text(payload)
        if text is None:
            raise BackendError(
                "bad_response",
                f"{self.url} answered without choices[0].message.content: {str(payload)[:200]}",
            )
        usage = payload.get("usage") if isinstance(payload, dict) else None
        prompt_tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        return ModelReply(
            text=text,
            model_id=str(payload.get("model") or self.model_id),
            model_ms=model_ms,
            prompt_tokens=int(prompt_tokens) if isinstance(prompt_tokens, int) else None,
            image_sizes=None,  # the server's resize is not reported back
        )

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._session.close()


def _reply_text(payload: Any) -> str | None:
    """choices[0].message.content of a chat-completions answer, or None if it is not there."""
    if not isinstance(payload, dict):
        return None
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    message = choices[0].get("message")
    if not isinstance(message, dict):
        return None
    content = message.get("content")
    if not isinstance(content, str):
        return None
    # Servers started with a reasoning parser (vLLM, SGLang) move the thinking out of content;
    # put it back in the model's own format so the answer parser sees what the model wrote.
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning and "</think>" not in content:
        return f"<think>{reasoning}</think>{content}"
    return content
