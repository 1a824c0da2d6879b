"""OpenAIBackend against a real `transformers serve` process and small loopback servers."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mimo_embodied_ros.backends.base import BackendError, ModelRequest
from mimo_embodied_ros.backends.openai_backend import OpenAIBackend
from mimo_embodied_ros.backends.transformers_backend import TransformersBackend

LOOPBACK = "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def _request(images: list[np.ndarray], max_new_tokens: int = 6) -> ModelRequest:
    return ModelRequest(
        images=images,
        task_text="Is there a cup? Put your final answer in \\boxed{}. /no_think",
        instruction="is there a cup?",
        max_new_tokens=max_new_tokens,
    )


def _image(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_real_server_consumes_the_image(served_tiny_qwen: str, tiny_qwen_dir: Path) -> None:
    """The server must see the image: its prompt grows by the image's tokens, as in-process."""
    client = OpenAIBackend(served_tiny_qwen, model=str(tiny_qwen_dir), timeout_s=60, retries=0)
    local = TransformersBackend(model_path=tiny_qwen_dir, max_pixels=200704)
    try:
        text_only = client.generate(_request([]))
        small = client.generate(_request([_image(56, 84, seed=1)]))
        large_request = _request([_image(280, 364, seed=2)])
        large = client.generate(large_request)
        local_large = local.generate(large_request)
    finally:
        client.close()
        local.close()
    for reply in (text_only, small, large):
        assert isinstance(reply.text, str)
        assert reply.model_ms > 0
    # 56x84 -> 2x3 merged patches = 6 image tokens, plus <|vision_start|> and <|vision_end|>.
    assert small.prompt_tokens - text_only.prompt_tokens == 6 + 2
    assert large.prompt_tokens - text_only.prompt_tokens == (280 // 28) * (364 // 28) + 2
    # Same prompt as the in-process backend; with greedy decoding the same answer too.
    assert large.prompt_tokens == local_large.prompt_tokens
    special = {
        "<|im_start|>",
        "<|im_end|>",
        "<|endoftext|>",
        "<|vision_start|>",
        "<|vision_end|>",
        "<|image_pad|>",
        "<|video_pad|>",
        "<|vision_pad|>",
    }
    if not any(token in local_large.text for token in special):  # the server skips these
        assert large.text == local_large.text


def test_closed_port_is_unavailable_quickly() -> None:
    port = _free_port()  # nothing listens there once the probe socket is closed
    client = OpenAIBackend(f"http://{LOOPBACK}:{port}/v1", model="m", timeout_s=5, retries=1)
    started = time.monotonic()
    with pytest.raises(BackendError) as caught:
        client.generate(_request([]))
    assert caught.value.kind == "unavailable"
    assert "2 attempt" in str(caught.value)
    assert time.monotonic() - started < 3.0


def test_silent_server_times_out() -> None:
    """A server that accepts the connection and never answers: "timeout" after timeout_s."""
    listener = socket.socket()
    listener.bind((LOOPBACK, 0))
    listener.listen(4)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept_and_hold() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    holder = threading.Thread(target=accept_and_hold, daemon=True)
    holder.start()
    port = listener.getsockname()[1]
    client = OpenAIBackend(f"http://{LOOPBACK}:{port}/v1", model="m", timeout_s=1.0, retries=2)
    started = time.monotonic()
    try:
        with pytest.raises(BackendError) as caught:
            client.generate(_request([_image(56, 56, seed=0)]))
    finally:
        stop.set()
        holder.join(timeout=2)
        for connection in accepted:
            connection.close()
        listener.close()
    elapsed = time.monotonic() - started
    assert caught.value.kind == "timeout"
    assert 0.9 < elapsed < 2.5  # one wait of timeout_s: a slow model is not asked again


class _ScriptedHandler(http.server.BaseHTTPRequestHandler):
    """Answers POSTs with the server's queued (status, body) pairs and records what it got."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length))
        self.server.received.append(
            {"path": self.path, "headers": dict(self.headers), "body": body}
        )
        status, payload = self.server.answers.pop(0)
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def loopback_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.ThreadingHTTPServer((LOOPBACK, 0), _ScriptedHandler)
    server.received = []
    server.answers = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=2)


def _url(server: http.server.HTTPServer) -> str:
    return f"http://{LOOPBACK}:{server.server_address[1]}/v1"


def _completion(content: str, prompt_tokens: int = 17, **message: str) -> dict:
    return {
        "model": "served-name",
        "usage": {"prompt_tokens": prompt_tokens},
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content, **message}}],
    }


def test_request_format_and_bearer_key(
    loopback_server: http.server.HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIMO_TEST_API_KEY", "test-secret-123")
    loopback_server.answers.append((200, _completion("<think>x</think>[[1, 2]]", 321)))
    client = OpenAIBackend(_url(loopback_server), model="mimo", api_key_env="MIMO_TEST_API_KEY")
    images = [_image(56, 84, seed=4), _image(28, 56, seed=5)]
    reply = client.generate(_request(images, max_new_tokens=77))
    assert reply.text == "<think>x</think>[[1, 2]]"
    assert reply.prompt_tokens == 321
    assert reply.model_id == "served-name"
    (received,) = loopback_server.received
    assert received["path"] == "/v1/chat/completions"
    assert received["headers"]["Authorization"] == "Bearer test-secret-123"
    body = received["body"]
    assert body["model"] == "mimo"
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.0, 1.0, 77)
    system, user = body["messages"]
    assert system == {
        "role": "system",
        "content": [{"type": "text", "text": "You are a helpful assistant."}],
    }
    assert [item["type"] for item in user["content"]] == ["image_url", "image_url", "text"]
    assert user["content"][2]["text"] == _request([]).task_text
    # The PNGs decode back to the exact pixels sent, in order.
    import base64
    import io

    from PIL import Image

    for item, image in zip(user["content"][:2], images, strict=True):
        url = item["image_url"]["url"]
        assert url.startswith("data:image/png;base64,")
        decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))
        assert np.array_equal(decoded, image)


def test_no_key_no_authorization_header(
    loopback_server: http.server.HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MIMO_TEST_API_KEY", raising=False)
    loopback_server.answers.append((200, _completion("ok")))
    client = OpenAIBackend(_url(loopback_server), model="mimo", api_key_env="MIMO_TEST_API_KEY")
    assert client.generate(_request([])).text == "ok"
    assert "Authorization" not in loopback_server.received[0]["headers"]


@pytest.mark.parametrize(
    "payload",
    ["{not json", {"no_choices": True}, {"choices": []}, {"choices": [{"message": {}}]}],
    ids=["malformed-json", "no-choices", "empty-choices", "no-content"],
)
def test_bad_answers_are_bad_response(
    loopback_server: http.server.HTTPServer, payload: object
) -> None:
    loopback_server.answers.append((200, payload))
    client = OpenAIBackend(_url(loopback_server), model="mimo", retries=0)
    with pytest.raises(BackendError) as caught:
        client.generate(_request([]))
    assert caught.value.kind == "bad_response"


def test_server_errors_are_retried(loopback_server: http.server.HTTPServer) -> None:
    loopback_server.answers.extend([(503, {"error": "loading"}), (200, _completion("second"))])
    client = OpenAIBackend(_url(loopback_server), model="mimo", retries=1)
    assert client.generate(_request([])).text == "second"
    assert len(loopback_server.received) == 2


def test_persistent_server_errors_are_unavailable(loopback_server: http.server.HTTPServer) -> None:
    loopback_server.answers.extend([(500, {"error": "boom"})] * 2)
    client = OpenAIBackend(_url(loopback_server), model="mimo", retries=1)
    with pytest.raises(BackendError) as caught:
        client.generate(_request([]))
    assert caught.value.kind == "unavailable"
    assert "HTTP 500" in str(caught.value)


def test_client_errors_are_invalid_request(loopback_server: http.server.HTTPServer) -> None:
    loopback_server.answers.append((404, {"error": "model 'mimo' not found"}))
    client = OpenAIBackend(_url(loopback_server), model="mimo", retries=3)
    with pytest.raises(BackendError) as caught:
        client.generate(_request([]))
    assert caught.value.kind == "invalid_request"
    assert "not found" in str(caught.value)
    assert len(loopback_server.received) == 1  # a 4xx is not retried


def test_separated_reasoning_is_put_back(loopback_server: http.server.HTTPServer) -> None:
    """Servers with a reasoning parser return the thinking apart; the reply keeps model format."""
    loopback_server.answers.append(
        (200, _completion("[[3, 4]]", reasoning_content="the cup is left"))
    )
    client = OpenAIBackend(_url(loopback_server), model="mimo")
    assert client.generate(_request([])).text == "<think>the cup is left</think>[[3, 4]]"
