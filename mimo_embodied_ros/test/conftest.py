"""Shared test fixtures: the tiny random Qwen2.5-VL model folder, built once per session."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

TEST_DIR = Path(__file__).resolve().parent
LOOPBACK = "127.0.0.1"
LAUNCHER = TEST_DIR / "backends" / "serve_launcher.py"
PACKAGE_ROOT = TEST_DIR.parent  # holds the mimo_embodied_ros package
SERVER_START_TIMEOUT_S = 90.0
if str(TEST_DIR) not in sys.path:  # tiny_qwen.py lives beside this file
    sys.path.insert(0, str(TEST_DIR))


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2.5-VL checkpoint folder (same layout and load path as the real model)."""
    from tiny_qwen import build_tiny_qwen

    return build_tiny_qwen(tmp_path_factory.mktemp("tiny_qwen"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def served_tiny_qwen(
    tiny_qwen_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Base URL of a real `transformers serve` process serving the tiny model on loopback."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")]))
    command = [
        sys.executable,
        str(LAUNCHER),
        str(tiny_qwen_dir),
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--device",
        "cpu",
    ]
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    base = f"http://{LOOPBACK}:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"transformers serve exited early:\n{log_path.read_text()[-3000:]}")
            try:
                if requests.get(f"{base}/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"transformers serve did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.25)
        yield f"{base}/v1"
    finally:
        # The server runs in its own session: end that process group (ours alone).
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)


GROUNDING_SERVER = TEST_DIR / "backends" / "grounding_server.py"
CLIENT_MAX_PIXELS = 1003520  # the node's default cap (1280x720 -> 1288x728)


def _start_grounding(model_dir: Path, max_pixels: int, log: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")]))
    command = [
        sys.executable, str(GROUNDING_SERVER), str(model_dir),
        "--host", LOOPBACK, "--port", str(port), "--max-pixels", str(max_pixels),
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    return process, f"http://{LOOPBACK}:{port}"


@pytest.fixture(scope="session")
def grounding_servers(
    tiny_qwen_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[int, str]]:
    """Base URLs of two grounding servers, keyed by their pixel cap (100352 and the client's)."""
    logs = tmp_path_factory.mktemp("grounding")
    started = {
        cap: _start_grounding(tiny_qwen_dir, cap, logs / f"{cap}.log")
        for cap in (100352, CLIENT_MAX_PIXELS)
    }
    try:
        deadline = time.monotonic() + 120
        for cap, (process, base) in started.items():
            while True:
                if process.poll() is not None:
                    pytest.fail(f"grounding server exited:\n{(logs / f'{cap}.log').read_text()}")
                with contextlib.suppress(requests.ConnectionError):
                    if requests.get(f"{base}/health", timeout=1).ok:
                        break
                if time.monotonic() > deadline:
                    log = (logs / f"{cap}.log").read_text()
                    pytest.fail(f"grounding server did not start:\n{log}")
                time.sleep(0.25)
        yield {cap: f"{base}/v1" for cap, (_, base) in started.items()}
    finally:
        for process, _ in started.values():  # each in its own session: our process groups only
            os.killpg(process.pid, signal.SIGTERM)
        for process, _ in started.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
