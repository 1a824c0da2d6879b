"""OpenAIBackend against a real `transformers serve` process and small loopback servers."""

from __future__ import annotations

import contextlib
import http.server
import json
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from mimo_embodied_ros.backends.base import BackendError, ModelRequest, Progress
from mimo_embodied_ros.backends.openai_backend import (
    OpenAIBackend,
    check_image_tokens,
    image_tokens,
)
from mimo_embodied_ros.backends.transformers_backend import TransformersBackend
from mimo_embodied_ros.core.prompts import SYSTEM_PROMPT, pointing_prompt
from mimo_embodied_ros.core.resize import resize_for_model, smart_resize
from mimo_embodied_ros.core.types import ImageSize

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # holds the mimo_embodied_ros package

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
    # transformers serve refuses fields it does not know (see the test below): no extensions.
    client = OpenAIBackend(
        served_tiny_qwen,
        model=str(tiny_qwen_dir),
        timeout_s=60,
        retries=0,
        server_extensions=False,
    )
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
    assert (text_only.image_check, small.image_check, large.image_check) == (
        "", "verified", "verified"
    )
    assert large.image_sizes == [ImageSize(width=364, height=280)]
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


def test_transformers_serve_refuses_the_vllm_fields(
    served_tiny_qwen: str, tiny_qwen_dir: Path
) -> None:
    """`transformers serve` answers HTTP 422 to mm_processor_kwargs and repetition_penalty.

    The backend then asks again without them (and leaves them out from then on); the prompt
    token check still verifies the image size.
    """
    client = OpenAIBackend(served_tiny_qwen, model=str(tiny_qwen_dir), timeout_s=60, retries=0)
    first = client.generate(_request([_image(56, 84, seed=1)]))
    assert first.image_check == "verified"
    assert client.server_extensions is False
    refusal = client.extensions_refused
    assert "HTTP 422" in refusal and "Unexpected fields in the request" in refusal
    assert "mm_processor_kwargs" in refusal and "repetition_penalty" in refusal
    assert client.generate(_request([_image(56, 84, seed=1)])).image_check == "verified"


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
    # 84x56 and 56x28: 6 + 2 image tokens, each with its two vision markers; 40 text tokens.
    loopback_server.answers.append((200, _completion("<think>x</think>[[1, 2]]", 12 + 40)))
    client = OpenAIBackend(_url(loopback_server), model="mimo", api_key_env="MIMO_TEST_API_KEY")
    images = [_image(56, 84, seed=4), _image(28, 56, seed=5)]
    reply = client.generate(_request(images, max_new_tokens=77))
    assert reply.text == "<think>x</think>[[1, 2]]"
    assert reply.prompt_tokens == 52
    assert reply.image_check == "verified"
    assert reply.image_sizes == [ImageSize(84, 56), ImageSize(56, 28)]
    assert reply.model_id == "served-name"
    (received,) = loopback_server.received
    assert received["path"] == "/v1/chat/completions"
    assert received["headers"]["Authorization"] == "Bearer test-secret-123"
    body = received["body"]
    assert body["model"] == "mimo"
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.0, 1.0, 77)
    assert body["repetition_penalty"] == 1.0
    assert body["mm_processor_kwargs"] == {"min_pixels": 3136, "max_pixels": 1003520}
    assert body["stream"] is False and "stream_options" not in body
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


def test_pixel_range_is_sent_and_extensions_can_be_left_out(
    loopback_server: http.server.HTTPServer,
) -> None:
    loopback_server.answers.extend([(200, _completion("a")), (200, _completion("b"))])
    OpenAIBackend(_url(loopback_server), "m", min_pixels=6272, max_pixels=100352).generate(
        _request([])
    )
    OpenAIBackend(_url(loopback_server), "m", server_extensions=False).generate(_request([]))
    first, second = (item["body"] for item in loopback_server.received)
    assert first["mm_processor_kwargs"] == {"min_pixels": 6272, "max_pixels": 100352}
    assert first["repetition_penalty"] == 1.0
    assert "mm_processor_kwargs" not in second and "repetition_penalty" not in second
    assert (second["temperature"], second["top_p"]) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"content": None, "reasoning_content": "the cup is on"}, "<think>the cup is on"),
        ({"content": "", "reasoning": "still thinking"}, "<think>still thinking"),
        ({"content": None, "reasoning_content": None}, ""),
        ({"content": "", "reasoning_content": ""}, ""),
        ({"content": None}, ""),
    ],
    ids=["reasoning-only", "reasoning-field", "both-null", "both-empty", "content-null"],
)
def test_unfinished_or_empty_answers_keep_the_model_format(
    loopback_server: http.server.HTTPServer, message: dict, expected: str
) -> None:
    """Reasoning without content: the thinking never ended, so no </think> is made up."""
    payload = _completion("")
    payload["choices"][0]["message"] = {"role": "assistant", **message}
    loopback_server.answers.append((200, payload))
    text = OpenAIBackend(_url(loopback_server), "m").generate(_request([])).text
    assert text == expected
    assert "</think>" not in text


# -- the image-token check --------------------------------------------------------------------

POINT_TEXT = (
    'Based on the description: "the red disk", locate points matching the description. '
    'Output a JSON in the format [{"points": [...], "label": "{the_whole_description}"}, ...].'
)


def test_image_tokens_of_the_issue_example() -> None:
    """1280x720 resized by the node to 1288x728 (1196 tokens), by the server to 420x224 (120)."""
    assert image_tokens(ImageSize(1288, 728)) == 1196 + 2
    assert image_tokens(ImageSize(420, 224)) == 120 + 2
    text = SYSTEM_PROMPT + POINT_TEXT
    text_tokens = 60  # a real Qwen template around this prompt: some 50 to 70 tokens
    served_small = 120 + 2 + text_tokens
    problem = check_image_tokens(served_small, [ImageSize(1288, 728)], text, max_pixels=1003520)
    assert problem is not None
    assert "1288x728" in problem and "1196 image tokens" in problem
    # The text share is estimated (about 4 bytes a token), so the implied size is rough.
    implied = re.search(r"about (\d+) image tokens, i\.e\. roughly (\d+)x(\d+)", problem)
    assert implied, problem
    assert abs(int(implied[1]) - 120) <= 10
    assert abs(int(implied[2]) - 420) <= 28 and abs(int(implied[3]) - 224) <= 28
    assert "--mm-processor-kwargs '{\"max_pixels\": 1003520}'" in problem
    assert "model.max_pixels" in problem
    # The same prompt served at the node's size passes.
    assert check_image_tokens(1196 + 2 + text_tokens, [ImageSize(1288, 728)], text) is None


def test_image_token_check_bounds() -> None:
    text = SYSTEM_PROMPT + POINT_TEXT
    limit = len(text.encode()) + 64
    sizes = [ImageSize(56, 84), ImageSize(28, 56)]  # 6 + 2 and 2 + 2 tokens
    assert check_image_tokens(12 + 1, sizes, text) is None
    assert check_image_tokens(12 + limit, sizes, text) is None
    assert check_image_tokens(12, sizes, text) is not None  # no room left for the text
    assert check_image_tokens(12 + limit + 1, sizes, text) is not None  # images larger than sent
    assert check_image_tokens(5, [], text) is None  # nothing to check without images


def test_usage_decides_the_image_check(loopback_server: http.server.HTTPServer) -> None:
    no_usage = _completion("[[1, 2]]")
    del no_usage["usage"]
    loopback_server.answers.extend(
        [(200, no_usage), (200, _completion("[[1, 2]]", 8 + 30)), (200, _completion("x", 30))]
    )
    client = OpenAIBackend(_url(loopback_server), "m")
    image = [_image(56, 84, seed=1)]
    unverified = client.generate(_request(image))
    verified = client.generate(_request(image))
    text_only = client.generate(_request([]))
    assert (unverified.image_check, unverified.image_sizes, unverified.prompt_tokens) == (
        "unverified", None, None
    )
    assert (verified.image_check, verified.image_sizes) == ("verified", [ImageSize(84, 56)])
    assert (text_only.image_check, text_only.image_sizes) == ("", None)


def test_a_server_that_shrank_the_image_is_a_mismatch(
    loopback_server: http.server.HTTPServer,
) -> None:
    loopback_server.answers.append((200, _completion("[[10, 20]]", 120 + 2 + 60)))
    client = OpenAIBackend(_url(loopback_server), "m")
    with pytest.raises(BackendError) as caught:
        client.generate(_request([np.zeros((728, 1288, 3), np.uint8)]))
    assert caught.value.kind == "mismatch"
    assert "1288x728" in caught.value.message and "roughly" in caught.value.message


# -- raw servers: slow, cut and silent answers ---------------------------------------------


class _RawServer:
    """Accepts connections on loopback and runs handle(connection, index) for each in a thread."""

    def __init__(self, handle: Callable[[socket.socket, int], None]) -> None:
        self.listener = socket.socket()
        self.listener.bind((LOOPBACK, 0))
        self.listener.listen(8)
        self.listener.settimeout(0.1)
        self.handle = handle
        self.connections = 0
        self.client_closed = threading.Event()
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.accepter = threading.Thread(target=self._accept, daemon=True)
        self.accepter.start()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.listener.getsockname()[1]}/v1"

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                connection = self.listener.accept()[0]
            except TimeoutError:
                continue
            index = self.connections
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(connection, index), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _serve(self, connection: socket.socket, index: int) -> None:
        try:
            _read_http_request(connection)
            self.handle(connection, index)
        except OSError:
            pass
        finally:
            connection.close()

    def close(self) -> None:
        self.stop.set()
        self.accepter.join(timeout=2)
        for thread in self.threads:
            thread.join(timeout=5)
        self.listener.close()


def _read_http_request(connection: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += connection.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"content-length:\s*(\d+)", head, re.IGNORECASE)[1])
    while len(body) < length:
        body += connection.recv(65536)
    return body


def _head(
    length: int | None = None, chunked: bool = False, kind: str = "application/json"
) -> bytes:
    lines = ["HTTP/1.1 200 OK", f"Content-Type: {kind}"]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    elif length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


GOOD = json.dumps(_completion("<think>t</think>[[5, 6]]", 30)).encode()


@pytest.fixture()
def raw_server() -> Iterator[Callable[[Callable[[socket.socket, int], None]], _RawServer]]:
    servers: list[_RawServer] = []

    def start(handle: Callable[[socket.socket, int], None]) -> _RawServer:
        servers.append(_RawServer(handle))
        return servers[-1]

    yield start
    for server in servers:
        server.stop.set()
        server.close()


def test_trickling_answer_times_out_at_timeout_s(raw_server: Callable) -> None:
    """A body sent a few bytes at a time never idles a socket read, but the call still ends."""

    def trickle(connection: socket.socket, index: int) -> None:
        connection.sendall(_head(length=len(GOOD)))
        for offset in range(0, len(GOOD), 3):
            connection.sendall(GOOD[offset : offset + 3])
            time.sleep(0.2)

    server = raw_server(trickle)
    client = OpenAIBackend(server.url, "m", timeout_s=1.5, retries=2)
    started = time.monotonic()
    with pytest.raises(BackendError) as caught:
        client.generate(_request([]))
    elapsed = time.monotonic() - started
    assert caught.value.kind == "timeout"
    assert 1.4 < elapsed < 2.5  # the whole call, not each read, is bounded
    assert server.connections == 1  # a timeout is not retried


def _cut_content_length(connection: socket.socket) -> None:
    connection.sendall(_head(length=len(GOOD)) + GOOD[: len(GOOD) // 2])


def _cut_chunked(connection: socket.socket) -> None:
    connection.sendall(_head(chunked=True) + _chunk(GOOD[:40]) + b"200\r\n" + GOOD[40:60])


def _cut_json_close_delimited(connection: socket.socket) -> None:
    connection.sendall(_head() + GOOD[: len(GOOD) - 15])


def _reset_mid_body(connection: socket.socket) -> None:
    connection.sendall(_head(length=len(GOOD)) + GOOD[:30])
    time.sleep(0.05)
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


CUTS = [_cut_content_length, _cut_chunked, _cut_json_close_delimited, _reset_mid_body]


@pytest.mark.parametrize("cut", CUTS, ids=["content-length", "chunked", "json", "reset"])
def test_a_body_cut_midway_is_retried(raw_server: Callable, cut: Callable) -> None:
    def first_cut_then_good(connection: socket.socket, index: int) -> None:
        if index == 0:
            cut(connection)
        else:
            connection.sendall(_head(length=len(GOOD)) + GOOD)

    server = raw_server(first_cut_then_good)
    reply = OpenAIBackend(server.url, "m", timeout_s=10, retries=1).generate(_request([]))
    assert reply.text == "<think>t</think>[[5, 6]]"
    assert server.connections == 2


@pytest.mark.parametrize("cut", CUTS, ids=["content-length", "chunked", "json", "reset"])
def test_a_body_always_cut_is_unavailable(raw_server: Callable, cut: Callable) -> None:
    server = raw_server(lambda connection, index: cut(connection))
    started = time.monotonic()
    with pytest.raises(BackendError) as caught:
        OpenAIBackend(server.url, "m", timeout_s=10, retries=2).generate(_request([]))
    assert caught.value.kind == "unavailable"
    assert "3 attempt" in str(caught.value)
    assert server.connections == 3
    assert time.monotonic() - started < 5.0  # the backoff (0.25 s, 0.5 s), not the timeout


def _silent(server_closed: list[float]) -> Callable[[socket.socket, int], None]:
    """A handler that answers nothing and notes when the client closed the connection."""

    def handle(connection: socket.socket, index: int) -> None:
        connection.settimeout(20)
        with contextlib.suppress(OSError):
            while connection.recv(1024):
                pass
        server_closed.append(time.monotonic())

    return handle


def test_cancel_while_the_server_is_silent(raw_server: Callable) -> None:
    """The cancel event ends the call within 0.5 s and closes the connection (vLLM aborts)."""
    closed: list[float] = []
    server = raw_server(_silent(closed))
    request = _request([_image(56, 56, seed=3)])
    phases: list[str] = []
    request.on_progress = lambda progress: phases.append(progress.phase)
    client = OpenAIBackend(server.url, "m", timeout_s=30, retries=2)
    fired = _cancel_after(request, 0.5)
    with pytest.raises(BackendError) as caught:
        client.generate(request)
    cancelled_at = time.monotonic()
    assert caught.value.kind == "cancelled"
    assert cancelled_at - fired[0] < 0.5
    deadline = time.monotonic() + 5
    while not closed and time.monotonic() < deadline:
        time.sleep(0.02)
    assert closed and closed[0] - cancelled_at < 0.5  # the server saw the client go away
    assert server.connections == 1
    assert phases == ["sending", "generating"]


def _cancel_after(request: ModelRequest, delay_s: float) -> list[float]:
    """Set the request's cancel event after delay_s; the list gets the time it was set."""
    fired: list[float] = []

    def fire() -> None:
        fired.append(time.monotonic())
        request.cancel.set()

    timer = threading.Timer(delay_s, fire)
    timer.daemon = True
    timer.start()
    return fired


def test_cancel_while_the_body_trickles_and_before_sending(raw_server: Callable) -> None:
    def trickle(connection: socket.socket, index: int) -> None:
        connection.sendall(_head(length=len(GOOD)) + GOOD[:5])
        for offset in range(5, len(GOOD)):
            connection.sendall(GOOD[offset : offset + 1])
            time.sleep(0.3)

    server = raw_server(trickle)
    client = OpenAIBackend(server.url, "m", timeout_s=30, retries=0)
    request = _request([])
    phases: list[str] = []
    request.on_progress = lambda progress: phases.append(progress.phase)
    fired = _cancel_after(request, 0.6)
    with pytest.raises(BackendError) as caught:
        client.generate(request)
    assert caught.value.kind == "cancelled"
    assert time.monotonic() - fired[0] < 0.5
    assert phases == ["sending", "generating", "reading"]
    # Already cancelled: nothing is sent at all.
    with pytest.raises(BackendError) as again:
        client.generate(request)
    assert again.value.kind == "cancelled"
    assert server.connections == 1


def test_cancel_during_the_retry_pause(raw_server: Callable) -> None:
    server = raw_server(lambda connection, index: _cut_content_length(connection))
    request = _request([])
    _cancel_after(request, 0.1)
    started = time.monotonic()
    with pytest.raises(BackendError) as caught:
        OpenAIBackend(server.url, "m", timeout_s=30, retries=5).generate(request)
    assert caught.value.kind == "cancelled"
    assert time.monotonic() - started < 1.0  # the backoff pause is cut short
    assert server.connections <= 2


# -- the streaming path ------------------------------------------------------------------


def _events(*events: object) -> list[bytes]:
    return [
        _chunk(b"data: " + (e if isinstance(e, bytes) else json.dumps(e).encode()) + b"\n\n")
        for e in events
    ]


def _delta(**delta: str) -> dict:
    return {"model": "served", "choices": [{"index": 0, "delta": delta}]}


STREAM = _events(
    _delta(role="assistant"),
    _delta(reasoning_content="the disk "),
    _delta(reasoning_content="is red"),
    _delta(content='[{"points": '),
    _delta(content="[[5, 6]]}]"),
    {"model": "served", "choices": [], "usage": {"prompt_tokens": 8 + 30, "completion_tokens": 4}},
    b"[DONE]",
)


def test_streaming_answer_reports_tokens_and_text(raw_server: Callable) -> None:
    def stream(connection: socket.socket, index: int) -> None:
        connection.sendall(_head(chunked=True, kind="text/event-stream"))
        for piece in STREAM:
            connection.sendall(piece)
            time.sleep(0.01)
        connection.sendall(b"0\r\n\r\n")

    server = raw_server(stream)
    request = _request([_image(56, 84, seed=1)])
    progress: list[Progress] = []
    request.on_progress = progress.append
    client = OpenAIBackend(server.url, "m", stream=True)
    body = client.build_body(request)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    reply = client.generate(request)
    assert reply.text == '<think>the disk is red</think>[{"points": [[5, 6]]}]'
    assert (reply.prompt_tokens, reply.completion_tokens) == (38, 4)
    assert reply.image_check == "verified" and reply.model_id == "served"
    generating = [p for p in progress if p.tokens]
    assert [p.tokens for p in generating] == [1, 2, 3, 4]
    assert generating[1].text == "<think>the disk is red"
    assert generating[-1].text == reply.text


def test_a_stream_cut_before_done_is_retried(raw_server: Callable) -> None:
    def stream(connection: socket.socket, index: int) -> None:
        connection.sendall(_head(chunked=True, kind="text/event-stream"))
        connection.sendall(b"".join(STREAM if index else STREAM[:3]))
        if index:
            connection.sendall(b"0\r\n\r\n")

    server = raw_server(stream)
    reply = OpenAIBackend(server.url, "m", stream=True, retries=1).generate(_request([]))
    assert reply.text.endswith("[[5, 6]]}]")
    assert server.connections == 2


# -- acceptance: a server that runs the real processor with its own pixel cap ---------------

CLIENT_MAX_PIXELS = 1003520  # as conftest.grounding_servers
DISK_CENTRE = (913.0, 244.0)  # on the original 1280x720 frame
DISK_RADIUS = 30


def _frame_with_red_disk() -> np.ndarray:
    """A 1280x720 frame: smooth blue-green background, a green box and one saturated red disk."""
    rows, cols = np.mgrid[0:720, 0:1280]
    frame = np.stack(
        [np.full_like(rows, 40), 60 + cols * 120 // 1280, 90 + rows * 100 // 720], axis=-1
    ).astype(np.uint8)
    frame[400:600, 100:300] = (30, 200, 40)
    inside = (cols - DISK_CENTRE[0]) ** 2 + (rows - DISK_CENTRE[1]) ** 2 <= DISK_RADIUS**2
    frame[inside] = (255, 0, 0)
    return frame


def _pointing_request() -> tuple[ModelRequest, ImageSize]:
    frame = _frame_with_red_disk()
    size = smart_resize(720, 1280, max_pixels=CLIENT_MAX_PIXELS)
    assert (size.width, size.height) == (1288, 728)
    request = ModelRequest(
        images=[resize_for_model(frame, size)],
        task_text=pointing_prompt("the red disk"),
        instruction="the red disk",
    )
    return request, size


def test_a_server_with_a_smaller_cap_is_refused(grounding_servers: dict[int, str]) -> None:
    """The server shrinks the 1288x728 image to its 100352-pixel cap: "mismatch", both sizes."""
    request, _ = _pointing_request()
    client = OpenAIBackend(
        grounding_servers[100352], "tiny", timeout_s=60, retries=0, max_pixels=CLIENT_MAX_PIXELS
    )
    with pytest.raises(BackendError) as caught:
        client.generate(request)
    assert caught.value.kind == "mismatch"
    message = caught.value.message
    assert "1288x728 (1196 image tokens)" in message
    implied = re.search(r"about (\d+) image tokens, i\.e\. roughly (\d+)x(\d+)", message)
    assert implied, message
    # The server really resized to smart_resize(720, 1280, max_pixels=100352) = 420x224.
    assert smart_resize(720, 1280, max_pixels=100352) == ImageSize(420, 224)
    # The tiny model's 400-token vocabulary spends about 2 bytes a token, not the 4 of a real
    # tokenizer, so the estimate is rougher here; it is still far from the node's 1288x728.
    assert int(implied[1]) < 300
    assert int(implied[2]) < 600 and int(implied[3]) < 340
    assert '"max_pixels": 1003520' in message and "model.max_pixels" in message


def test_a_server_with_the_same_cap_points_at_the_disk(grounding_servers: dict[int, str]) -> None:
    """Same cap: verified, and the point rescaled to the 1280x720 frame lands on the disk."""
    request, size = _pointing_request()
    client = OpenAIBackend(
        grounding_servers[CLIENT_MAX_PIXELS], "tiny", timeout_s=60, retries=0,
        max_pixels=CLIENT_MAX_PIXELS,
    )
    reply = client.generate(request)
    assert reply.image_check == "verified"
    assert reply.image_sizes == [size]
    assert reply.text.startswith("<think>") and "</think>" in reply.text
    x, y = (float(v) for v in re.search(r'"points": \[\[(\d+), (\d+)\]\]', reply.text).groups())
    u, v = x * 1280 / size.width, y * 720 / size.height
    assert abs(u - DISK_CENTRE[0]) <= 1.0 and abs(v - DISK_CENTRE[1]) <= 1.0


class _SlowHandler(http.server.BaseHTTPRequestHandler):
    """Holds every request HOLD_S (a model generating) and counts requests in flight at once."""

    HOLD_S = 0.6

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length))
        with self.server.lock:
            self.server.in_flight += 1
            self.server.most_in_flight = max(self.server.most_in_flight, self.server.in_flight)
        time.sleep(self.HOLD_S)
        with self.server.lock:
            self.server.in_flight -= 1
        text = body["messages"][1]["content"][-1]["text"]
        data = json.dumps(_completion(f"answer to {text}")).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def test_concurrent_queries_do_not_serialize_on_one_backend() -> None:
    """Two cameras' queries sent together through one backend reach the server together (vLLM
    batches them) and each gets its own answer back."""
    server = http.server.ThreadingHTTPServer((LOOPBACK, 0), _SlowHandler)
    server.lock, server.in_flight, server.most_in_flight = threading.Lock(), 0, 0
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    client = OpenAIBackend(_url(server), model="mimo", retries=0, timeout_s=10.0)
    replies: dict[int, str] = {}

    def ask(index: int) -> None:
        request = _request([])
        request.task_text = f"camera {index}"
        replies[index] = client.generate(request).text

    askers = [threading.Thread(target=ask, args=(i,)) for i in range(3)]
    started = time.monotonic()
    try:
        for asker in askers:
            asker.start()
        for asker in askers:
            asker.join(timeout=10)
    finally:
        server.shutdown()
        server.server_close()
        serving.join(timeout=2)
    elapsed = time.monotonic() - started
    assert replies == {i: f"answer to camera {i}" for i in range(3)}
    assert server.most_in_flight == 3
    assert elapsed < 2 * _SlowHandler.HOLD_S  # sequential would take 3 x HOLD_S
