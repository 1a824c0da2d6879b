"""One HTTP/1.1 exchange whose every wait is bounded by a deadline and a cancel event.

Why not requests: requests blocks inside `post()` until the response headers arrive, and a
non-streaming vLLM answer sends its headers only when the generation is done, so a cancel could
not be seen for the whole generation. A short socket read timeout used as a poll does not help
either: after one timeout a socket's file object refuses every further read ("cannot read from
timed out object"). Here the socket is non-blocking and every wait is a `select()` of at most
`poll_s`, so the caller's cancel event is seen within `poll_s` whatever the server does, and
closing the connection tells the server to stop generating.

Each exchange uses its own connection (`Connection: close`); proxies are not used.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

POLL_S = 0.1  # longest wait between two looks at the cancel event
MAX_HEAD_BYTES = 65536
RECV_BYTES = 65536


class StreamTimeout(Exception):
    """The deadline passed before the exchange finished."""


class StreamCancelled(Exception):
    """The cancel event was set."""


class BrokenAnswer(Exception):
    """The connection ended or broke before the answer was complete (retry like a dropped one)."""


@dataclass
class Head:
    """Status line and headers of an answer (header names lower-case)."""

    status: int
    reason: str
    headers: dict[str, str]


class HttpExchange:
    """A single request/answer on a fresh connection; use as a context manager to close it."""

    def __init__(
        self, url: str, deadline: float, cancel: threading.Event, poll_s: float = POLL_S
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.tls = parts.scheme == "https"
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.deadline = deadline
        self.cancel = cancel
        self.poll_s = poll_s
        self._sock: socket.socket | None = None
        self._buffer = bytearray()
        self._eof = False

    def __enter__(self) -> HttpExchange:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (the server sees the client go away)."""
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    # -- waiting ---------------------------------------------------------------------------

    def _wait(self, readable: bool) -> None:
        """Block until the socket is ready, checking cancel and deadline every poll_s."""
        assert self._sock is not None
        while True:
            if self.cancel.is_set():
                raise StreamCancelled()
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise StreamTimeout()
            wait = min(self.poll_s, remaining)
            if readable:
                ready = select.select([self._sock], [], [], wait)[0]
            else:
                ready = select.select([], [self._sock], [], wait)[1]
            if ready:
                return

    def _connect(self) -> None:
        if self.cancel.is_set():
            raise StreamCancelled()
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise StreamTimeout()
        problem: OSError | None = None
        for family, kind, proto, _, address in socket.getaddrinfo(
            self.host, self.port, type=socket.SOCK_STREAM
        ):
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            self._sock = sock
            try:
                code = sock.connect_ex(address)
                if code in (errno.EINPROGRESS, errno.EWOULDBLOCK):
                    self._wait(readable=False)
                    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    raise OSError(code, f"connect to {self.host}:{self.port}: {os.strerror(code)}")
            except OSError as failed:
                problem = failed
                self.close()
                continue
            except BaseException:
                self.close()
                raise
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls:
                self._start_tls()
            return
        raise problem or OSError(f"no address for {self.host}:{self.port}")

    def _start_tls(self) -> None:
        assert self._sock is not None
        context = ssl.create_default_context()
        self._sock = context.wrap_socket(
            self._sock, server_hostname=self.host, do_handshake_on_connect=False
        )
        while True:
            try:
                self._sock.do_handshake()
                return
            except ssl.SSLWantReadError:
                self._wait(readable=True)
            except ssl.SSLWantWriteError:
                self._wait(readable=False)

    # -- sending ---------------------------------------------------------------------------

    def send(self, method: str, body: bytes, headers: dict[str, str]) -> None:
        """Connect and send the whole request."""
        self._connect()
        lines = [f"{method} {self.target} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines += [
            f"Content-Length: {len(body)}",
            "Connection: close",
            "Accept-Encoding: identity",
        ]
        data = memoryview(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        offset = 0
        while offset < len(data):
            assert self._sock is not None
            try:
                offset += self._sock.send(data[offset : offset + RECV_BYTES])
            except (BlockingIOError, ssl.SSLWantWriteError):
                self._wait(readable=False)
            except ssl.SSLWantReadError:
                self._wait(readable=True)

    # -- receiving -------------------------------------------------------------------------

    def _fill(self) -> bool:
        """Read what arrives next into the buffer; False at the end of the connection."""
        if self._eof:
            return False
        assert self._sock is not None
        while True:
            if self.cancel.is_set():
                raise StreamCancelled()
            try:
                if isinstance(self._sock, ssl.SSLSocket) and not self._sock.pending():
                    self._wait(readable=True)
                data = self._sock.recv(RECV_BYTES)
            except (BlockingIOError, ssl.SSLWantReadError):
                self._wait(readable=True)
                continue
            except ssl.SSLWantWriteError:
                self._wait(readable=False)
                continue
            except (ConnectionError, ssl.SSLError) as error:
                raise BrokenAnswer(f"the connection broke: {error}") from error
            if not data:
                self._eof = True
                return False
            self._buffer += data
            return True

    def _take(self, count: int) -> bytes:
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    def _line(self, what: str) -> bytes:
        while (end := self._buffer.find(b"\r\n")) < 0:
            if len(self._buffer) > MAX_HEAD_BYTES:
                raise BrokenAnswer(f"{what} is longer than {MAX_HEAD_BYTES} bytes")
            if not self._fill():
                raise BrokenAnswer(f"the connection closed in the middle of {what}")
        line = self._take(end)
        del self._buffer[:2]
        return line

    def read_head(self) -> Head:
        """The answer's status line and headers (1xx interim answers skipped)."""
        while True:
            status_line = self._line("the status line").decode("latin-1")
            parts = status_line.split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
                raise BrokenAnswer(f"not an HTTP status line: {status_line[:100]!r}")
            headers: dict[str, str] = {}
            while line := self._line("the headers").decode("latin-1"):
                name, _, value = line.partition(":")
                key = name.strip().lower()
                value = value.strip()
                headers[key] = f"{headers[key]}, {value}" if key in headers else value
            status = int(parts[1])
            if not 100 <= status < 200:
                return Head(status, parts[2] if len(parts) > 2 else "", headers)

    def body(self, head: Head) -> Iterator[bytes]:
        """The answer body piece by piece as it arrives; BrokenAnswer if it ends early."""
        encoding = head.headers.get("content-encoding", "identity").lower()
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding == "gzip" else None
        raw = self._raw_body(head)
        for piece in raw:
            yield inflate.decompress(piece) if inflate else piece
        if inflate:
            yield inflate.flush()

    def _raw_body(self, head: Head) -> Iterator[bytes]:
        if "chunked" in head.headers.get("transfer-encoding", "").lower():
            yield from self._chunked()
            return
        length = head.headers.get("content-length")
        if length is None:  # delimited by the end of the connection
            while self._buffer or self._fill():
                yield self._take(len(self._buffer))
            return
        left = int(length)
        while left > 0:
            if not self._buffer and not self._fill():
                raise BrokenAnswer(f"the body ended {left} of {length} bytes early")
            piece = self._take(min(left, len(self._buffer)))
            left -= len(piece)
            yield piece

    def _chunked(self) -> Iterator[bytes]:
        while True:
            size_text = self._line("a chunk size").split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError as error:
                raise BrokenAnswer(f"bad chunk size {size_text[:20]!r}") from error
            if size == 0:
                while self._line("the trailer"):
                    pass
                return
            left = size
            while left > 0:
                if not self._buffer and not self._fill():
                    raise BrokenAnswer("the connection closed in the middle of a chunk")
                piece = self._take(min(left, len(self._buffer)))
                left -= len(piece)
                yield piece
            if self._line("a chunk end"):
                raise BrokenAnswer("a chunk did not end with CRLF")
