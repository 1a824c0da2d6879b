"""smart_resize against transformers' own, the processor's pixels, and the coordinate mapping."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mimo_embodied_ros.core.resize import (
    IMAGE_FACTOR,
    MIN_PIXELS,
    model_box_to_source,
    model_to_source,
    resize_for_model,
    smart_resize,
    source_to_model,
)
from mimo_embodied_ros.core.types import ImageSize, ModelBox

CAPS = (100352, 1003520, 3211264)


def transformers_smart_resize():
    """transformers' smart_resize (its torchvision module fails to import without torchvision)."""
    try:
        from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize as ref
    except ImportError:
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as ref
    return ref


def test_smart_resize_matches_transformers_over_many_sizes_and_caps():
    reference = transformers_smart_resize()
    rng = np.random.default_rng(7)
    sizes = [(480, 640), (720, 1280), (1080, 1920), (360, 640), (1, 1), (28, 28), (14, 42),
             (56, 56), (2000, 11), (11, 2000), (4000, 3000), (7, 1400)]
    sizes += [tuple(int(s) for s in rng.integers(1, 4096, size=2)) for _ in range(400)]
    caps = list(CAPS) + [int(c) for c in rng.integers(MIN_PIXELS, 5_000_000, size=8)]
    compared = 0
    for height, width in sizes:
        if max(height, width) / min(height, width) > 200:
            continue
        for cap in caps:
            expected_h, expected_w = reference(height, width, factor=28, min_pixels=3136,
                                               max_pixels=cap)
            got = smart_resize(height, width, max_pixels=cap)
            assert (got.height, got.width) == (expected_h, expected_w), (height, width, cap)
            compared += 1
    assert compared > 4000


def test_smart_resize_known_sizes_and_multiples():
    assert smart_resize(720, 1280, max_pixels=3211264) == ImageSize(width=1288, height=728)
    size = smart_resize(480, 640, max_pixels=100352)
    assert size.width % IMAGE_FACTOR == 0 and size.height % IMAGE_FACTOR == 0
    assert size.width * size.height <= 100352
    tiny = smart_resize(10, 10, max_pixels=100352)
    assert tiny.width * tiny.height >= MIN_PIXELS


@pytest.mark.parametrize("height,width", [(0, 10), (10, 0), (-5, 10)])
def test_smart_resize_rejects_non_positive_sizes(height, width):
    with pytest.raises(ValueError, match="positive"):
        smart_resize(height, width, max_pixels=100352)


def test_smart_resize_rejects_extreme_aspect_ratio():
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(10, 2010, max_pixels=100352)


def test_resize_for_model_matches_the_qwen_pil_processor():
    from transformers.image_utils import SizeDict
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    processor = Qwen2VLImageProcessorPil(max_pixels=100352)
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    size = smart_resize(480, 640, max_pixels=100352)
    expected = processor.resize(
        rgb.transpose(2, 0, 1),
        size=SizeDict(shortest_edge=MIN_PIXELS, longest_edge=100352),
        resample=processor.resample,
        factor=IMAGE_FACTOR,
    ).transpose(1, 2, 0)
    got = resize_for_model(rgb, size)
    assert got.shape == (size.height, size.width, 3)
    np.testing.assert_array_equal(got, expected)
    # The processor's patch grid gives the same resized size (model-io.md: grid * 14).
    grid = processor(images=rgb, return_tensors="np")["image_grid_thw"][0]
    assert (int(grid[1]) * 14, int(grid[2]) * 14) == (size.height, size.width)


def test_resize_for_model_is_identity_when_size_matches_and_checks_input():
    rgb = np.zeros((56, 84, 3), dtype=np.uint8)
    assert resize_for_model(rgb, ImageSize(width=84, height=56)) is rgb
    with pytest.raises(ValueError):
        resize_for_model(np.zeros((56, 84), dtype=np.uint8), ImageSize(28, 28))
    with pytest.raises(ValueError):
        resize_for_model(np.zeros((56, 84, 3), dtype=np.float32), ImageSize(28, 28))


def test_model_to_source_scales_exactly():
    resized = ImageSize(width=364, height=252)
    source = ImageSize(width=640, height=480)
    u, v, ok = model_to_source(182, 126, resized, source)
    assert ok
    assert u == pytest.approx(182 * 640 / 364) and v == pytest.approx(126 * 480 / 252)
    u, v, ok = model_to_source(0, 0, resized, source)
    assert ok and (u, v) == (0.0, 0.0)


@pytest.mark.parametrize(
    "x,y",
    [(364, 10), (10, 252), (-0.5, 10), (10, -1), (1000, 1000), (math.nan, 3), (3, math.inf)],
)
def test_model_to_source_reports_points_outside_the_image_without_clamping(x, y):
    u, v, ok = model_to_source(x, y, ImageSize(364, 252), ImageSize(640, 480))
    assert not ok
    assert math.isnan(u) and math.isnan(v)


def test_round_trips_between_model_and_source():
    rng = np.random.default_rng(11)
    source = ImageSize(width=1280, height=720)
    resized = smart_resize(720, 1280, max_pixels=100352)
    for _ in range(200):
        u0, v0 = rng.uniform(0, source.width), rng.uniform(0, source.height)
        x, y = source_to_model(u0, v0, resized, source)
        u, v, ok = model_to_source(x, y, resized, source)
        assert ok
        assert u == pytest.approx(u0, abs=1e-9) and v == pytest.approx(v0, abs=1e-9)


def test_model_box_to_source():
    resized = ImageSize(width=364, height=252)
    source = ImageSize(width=640, height=480)
    x1, y1, x2, y2, ok = model_box_to_source(ModelBox(10, 20, 364, 252), resized, source)
    assert ok
    assert (x1, y1, x2, y2) == pytest.approx((10 * 640 / 364, 20 * 480 / 252, 640, 480))
    # Outside or inverted boxes are reported invalid and not clamped.
    x1, _, x2, _, ok = model_box_to_source(ModelBox(-10, 20, 400, 30), resized, source)
    assert not ok and x1 < 0 and x2 > 640
    assert not model_box_to_source(ModelBox(50, 20, 40, 30), resized, source)[4]
    assert not model_box_to_source(ModelBox(math.nan, 20, 40, 30), resized, source)[4]
