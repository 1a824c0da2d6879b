"""The backend contract: error kinds and request validation."""

from __future__ import annotations

import numpy as np
import pytest

from mimo_embodied_ros.backends.base import (
    ERROR_KINDS,
    BackendError,
    ModelRequest,
    validate_request,
)


def test_error_kinds_are_fixed() -> None:
    for kind in ERROR_KINDS:
        error = BackendError(kind, "something readable")
        assert error.kind == kind
        assert str(error) == f"{kind}: something readable"
    with pytest.raises(ValueError, match="unknown backend error kind"):
        BackendError("oops", "x")


@pytest.mark.parametrize(
    ("request_fields", "fragment"),
    [
        ({"images": [], "task_text": "  "}, "task text is empty"),
        ({"images": [], "task_text": "x", "max_new_tokens": 0}, "max_new_tokens"),
        ({"images": [np.zeros((4, 4, 4), np.uint8)], "task_text": "x"}, "HxWx3"),
        ({"images": [np.zeros((0, 4, 3), np.uint8)], "task_text": "x"}, "empty"),
        ({"images": [[[0, 0, 0]]], "task_text": "x"}, "uint8 numpy array"),
    ],
)
def test_invalid_requests_are_refused(request_fields: dict, fragment: str) -> None:
    request = ModelRequest(instruction="i", **request_fields)
    with pytest.raises(BackendError, match=fragment) as caught:
        validate_request(request)
    assert caught.value.kind == "invalid_request"


def test_valid_request_passes() -> None:
    validate_request(
        ModelRequest(images=[np.zeros((28, 28, 3), np.uint8)], task_text="x", instruction="x")
    )
