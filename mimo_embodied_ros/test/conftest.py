"""Shared test fixtures: the tiny random Qwen2.5-VL model folder, built once per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TEST_DIR = Path(__file__).resolve().parent
if str(TEST_DIR) not in sys.path:  # tiny_qwen.py lives beside this file
    sys.path.insert(0, str(TEST_DIR))


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2.5-VL checkpoint folder (same layout and load path as the real model)."""
    from tiny_qwen import build_tiny_qwen

    return build_tiny_qwen(tmp_path_factory.mktemp("tiny_qwen"))
