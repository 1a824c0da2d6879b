"""Make untrusted text (model answers, server errors) and numbers safe for fixed ROS fields.

A ROS string is sent as UTF-8 through a C string: a lone surrogate (JSON ``"\\ud800"``) raises
UnicodeEncodeError in publish, and a NUL silently cuts the rest off. Fixed-width float fields
(float32) reject values outside their range on some distributions (Humble).
"""

from __future__ import annotations

import math
import re

REPLACEMENT = "\ufffd"
FLOAT32_MAX = 3.4028234663852886e38
# Lone surrogates, and C0/C1 control characters except tab, newline and carriage return.
_UNSAFE = re.compile("[\ud800-\udfff\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def safe_text(text: object) -> str:
    """``text`` with every character that cannot travel in a ROS string replaced by U+FFFD.

    Non-strings (None, numbers) become their ``str``; the result always encodes as UTF-8.
    """
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    return _UNSAFE.sub(REPLACEMENT, text)


def finite_or_nan(value: object, limit: float = math.inf) -> float:
    """``value`` as a float when it is a finite number within +-limit, else NaN.

    NaN is the stack's "not available" value in float message fields; use
    ``limit=FLOAT32_MAX`` for float32 fields.
    """
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return math.nan
    return number if math.isfinite(number) and abs(number) <= limit else math.nan
