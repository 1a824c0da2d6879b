"""core.bicubic gives Pillow's BICUBIC bits, and core.resize falls back to Pillow where not."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from mimo_embodied_ros.core import bicubic, resize
from mimo_embodied_ros.core.types import ImageSize

pytestmark = pytest.mark.skipif(not bicubic.available(), reason="numba is not installed")


def pillow(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.BICUBIC))


def noise(width: int, height: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("width", "height", "out_width", "out_height"),
    [
        (1280, 720, 1288, 728),  # the default cap: both axes grow a little
        (1280, 720, 420, 224),  # the launcher's cap: both shrink
        (1920, 1080, 1316, 756),
        (640, 480, 644, 476),  # wider, lower: Pillow 13 runs the vertical pass first
        (333, 517, 336, 504),
        (10, 3000, 28, 8400),  # tall strip
        (7, 5, 700, 500),  # large upscale
        (1000, 10, 28, 28),
        (640, 480, 640, 476),  # one axis only
        (640, 480, 644, 480),
    ],
)
def test_equals_pillow_bit_for_bit(width, height, out_width, out_height):
    rgb = noise(width, height, seed=width + height)
    np.testing.assert_array_equal(
        bicubic.resize_rgb(rgb, out_width, out_height), pillow(rgb, out_width, out_height)
    )


@settings(max_examples=150, deadline=None)
@given(
    width=st.integers(1, 300), height=st.integers(1, 300),
    out_width=st.integers(1, 300), out_height=st.integers(1, 300), seed=st.integers(0, 2**16),
)
def test_equals_pillow_on_any_size_pair(width, height, out_width, out_height, seed):
    rgb = noise(width, height, seed)
    np.testing.assert_array_equal(
        bicubic.resize_rgb(rgb, out_width, out_height), pillow(rgb, out_width, out_height)
    )


@settings(max_examples=60, deadline=None)
@given(
    width=st.integers(16, 700), height=st.integers(16, 400),
    grow_x=st.integers(-20, 20), grow_y=st.integers(-20, 20), seed=st.integers(0, 2**16),
)
def test_equals_pillow_near_scale_one(width, height, grow_x, grow_y, seed):
    """Sizes a smart-resize gives (a few pixels either way): the horizontal pass in runs."""
    rgb = noise(width, height, seed)
    out_width, out_height = max(1, width + grow_x), max(1, height + grow_y)
    np.testing.assert_array_equal(
        bicubic.resize_rgb(rgb, out_width, out_height), pillow(rgb, out_width, out_height)
    )


def test_both_horizontal_methods_are_in_the_cases_above():
    assert bicubic.filter_runs(1280, 1288) is not None  # near 1: shifted contiguous runs
    assert bicubic.filter_runs(640, 644) is not None
    assert bicubic.filter_runs(1920, 1316) is None  # a run per pixel or two: transposes
    assert bicubic.filter_runs(1280, 420) is None


def test_saturated_edges_clip_like_pillow():
    """Black/white steps overshoot under bicubic: the uint8 clipping of each pass must agree."""
    rgb = np.zeros((90, 160, 3), np.uint8)
    rgb[:, (np.arange(160) // 8) % 2 == 1] = 255
    rgb[(np.arange(90) // 6) % 2 == 1, :, 1] = 255
    out = bicubic.resize_rgb(rgb, 251, 143)
    np.testing.assert_array_equal(out, pillow(rgb, 251, 143))
    raw = bicubic.filter_taps(160, 251)[1]
    assert (raw < 0).any()  # negative lobes: the sums overshoot and are clipped
    assert out.min() == 0 and out.max() == 255


def test_a_strided_view_and_the_same_size_are_handled():
    rgb = noise(200, 100, seed=3)
    view = rgb[::2, ::2]  # not contiguous
    np.testing.assert_array_equal(bicubic.resize_rgb(view, 77, 33), pillow(view, 77, 33))
    same = bicubic.resize_rgb(rgb, 200, 100)
    np.testing.assert_array_equal(same, rgb)
    assert same is not rgb


def test_resize_for_model_takes_the_fast_path_after_its_check(monkeypatch):
    calls = []
    fast = bicubic.resize_rgb
    monkeypatch.setattr(bicubic, "resize_rgb", lambda *a: calls.append(a[1:]) or fast(*a))
    resize._fast_path_matches_pillow.cache_clear()
    rgb = noise(130, 70, seed=4)
    out = resize.resize_for_model(rgb, ImageSize(width=140, height=84))
    np.testing.assert_array_equal(out, pillow(rgb, 140, 84))
    assert calls == [(140, 84), (140, 84)]  # once on the probe, once on the image


def test_a_size_pair_that_differs_from_pillow_stays_on_pillow(monkeypatch, caplog):
    """A Pillow release with other arithmetic (here: a fast path with the other pass order)
    is caught by the one-time check: logged, and the queries get Pillow's pixels."""
    monkeypatch.setattr(bicubic, "vertical_first", lambda *sizes: True)
    resize._fast_path_matches_pillow.cache_clear()
    rgb = noise(160, 90, seed=5)
    with caplog.at_level(logging.WARNING, logger=resize.__name__):
        out = resize.resize_for_model(rgb, ImageSize(width=196, height=112))
        resize.resize_for_model(rgb, ImageSize(width=196, height=112))
    np.testing.assert_array_equal(out, pillow(rgb, 196, 112))
    warnings = [r for r in caplog.records if "differs from Pillow" in r.getMessage()]
    assert len(warnings) == 1 and "160x90 -> 196x112" in warnings[0].getMessage()
    resize._fast_path_matches_pillow.cache_clear()


def test_warm_up_says_which_resize_the_queries_use():
    resize._fast_path_matches_pillow.cache_clear()
    assert resize.warm_up_resize().startswith("resize: numba, bit-equal to Pillow")
