"""Untrusted text and numbers made safe for ROS message fields."""

from __future__ import annotations

import math

from mimo_embodied_ros.core.text import FLOAT32_MAX, finite_or_nan, safe_text


def test_lone_surrogates_and_control_characters_are_replaced():
    text = safe_text("cup\ud800 \udfff\x00\x07\x1b[31m\x9b")
    text.encode("utf-8")  # must not raise
    assert text == "cup\ufffd \ufffd\ufffd\ufffd\ufffd[31m\ufffd"


def test_ordinary_text_is_kept():
    text = "mug \u4e2d\u6587 \U0001F600\nline two\tand\r\n"
    assert safe_text(text) == text


def test_non_strings_become_text():
    assert safe_text(None) == "" and safe_text(3) == "3"


def test_numbers_outside_a_field_become_nan():
    assert finite_or_nan(1.5) == 1.5
    assert math.isnan(finite_or_nan(float("inf")))
    assert math.isnan(finite_or_nan(1e39, FLOAT32_MAX))
    assert finite_or_nan(1e39) == 1e39
    assert math.isnan(finite_or_nan("x")) and math.isnan(finite_or_nan(10**400))
