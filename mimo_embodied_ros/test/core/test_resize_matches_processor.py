"""The node's one resize (core.resize) is pixel for pixel the Qwen2.5-VL processor's own.

The query path resizes each image once, on every backend: run_query smart-resizes with
``resize_for_model`` and the transformers backend then tells the processor ``do_resize=False``.
That is only right if the node's resize is exactly the processor's (PIL bicubic on uint8 here,
as in the official client-side path), which these tests check on the tiny model's processor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mimo_embodied_ros.backends.processor import load_processor, torchvision_available
from mimo_embodied_ros.core.resize import resize_for_model, smart_resize

MIN_PIXELS = 3136
MAX_PIXELS = 1003520  # the node's default cap (QuerySettings.max_pixels)


@pytest.fixture(scope="module")
def image_processor(tiny_qwen_dir: Path):
    if torchvision_available():
        pytest.skip("the processor resizes with torchvision here, not with PIL as this checks")
    return load_processor(tiny_qwen_dir, MIN_PIXELS, MAX_PIXELS).image_processor


def _photo_like(height: int, width: int, seed: int) -> np.ndarray:
    """Smooth gradients, sharp edges and noise: every bicubic tap and the uint8 clipping matter."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width]
    image = np.stack([cols * 255 // max(width - 1, 1), rows * 255 // max(height - 1, 1),
                      ((rows // 7 + cols // 5) % 2) * 255], axis=-1).astype(np.int16)
    image += rng.integers(-40, 41, image.shape, dtype=np.int16)
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    ("width", "height"),
    [(1280, 720), (640, 480), (1920, 1080), (333, 111), (50, 40)],
)
def test_node_resize_equals_the_processors_resize(image_processor, width: int, height: int):
    rgb = _photo_like(height, width, seed=width)
    size = smart_resize(height, width, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    resized = resize_for_model(rgb, size)
    assert resized.shape == (size.height, size.width, 3) and resized.dtype == np.uint8

    processors_own = image_processor(images=[Image.fromarray(rgb)], return_tensors="np")
    ours_unresized = image_processor(images=[Image.fromarray(resized)], do_resize=False,
                                     return_tensors="np")
    np.testing.assert_array_equal(ours_unresized["image_grid_thw"],
                                  processors_own["image_grid_thw"])
    assert ours_unresized["image_grid_thw"].tolist() == [[1, size.height // 14, size.width // 14]]
    # Normalized patches are an affine map of the uint8 pixels: equal arrays = equal pixels.
    np.testing.assert_array_equal(ours_unresized["pixel_values"], processors_own["pixel_values"])


def test_a_resize_with_other_resampling_would_be_caught(image_processor):
    """The comparison above is sharp: a bilinear resize of the same size fails it."""
    rgb = _photo_like(720, 1280, seed=1)
    size = smart_resize(720, 1280, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    bilinear = np.asarray(Image.fromarray(rgb).resize((size.width, size.height), Image.BILINEAR))
    processors_own = image_processor(images=[Image.fromarray(rgb)], return_tensors="np")
    other = image_processor(images=[Image.fromarray(bilinear)], do_resize=False,
                            return_tensors="np")
    assert not np.array_equal(other["pixel_values"], processors_own["pixel_values"])


def test_do_resize_false_leaves_an_exact_size_alone(image_processor):
    """With do_resize=False the processor takes the pixels as given (no second resize)."""
    rgb = _photo_like(728, 1288, seed=2)
    with_flag = image_processor(images=[Image.fromarray(rgb)], do_resize=False,
                                return_tensors="np")
    without = image_processor(images=[Image.fromarray(rgb)], return_tensors="np")
    np.testing.assert_array_equal(with_flag["pixel_values"], without["pixel_values"])
