"""The resize the model saw, and the exact mapping between its pixels and the source image's.

MiMo-Embodied answers in absolute pixels of the image after Qwen2.5-VL's smart-resize
(model-io.md). Every coordinate must be rescaled with the same resize, so the algorithm lives
here once and is checked against transformers' own implementation in the tests.
"""

from __future__ import annotations

import functools
import logging
import math
import time

import numpy as np
from PIL import Image
from PIL import __version__ as PILLOW_VERSION

from mimo_embodied_ros.core import bicubic
from mimo_embodied_ros.core.types import ImageSize, ModelBox

_log = logging.getLogger(__name__)

IMAGE_FACTOR = 28  # patch size 14 x spatial merge 2: both sides are multiples of this
MIN_PIXELS = 3136  # 56 * 56, the stock Qwen2.5-VL preprocessor's lower bound
MAX_RATIO = 200  # the processor refuses longer-than-200:1 images


MAX_PIXELS_PRESETS: dict[str, int] = {
    # 1280x720 -> 1288x728 (1196 visual tokens), as the release's real-robot figures imply.
    "robot": 1003520,
    # The released evaluation launcher: 128 visual tokens (1280x720 -> 420x224); fastest.
    "launcher": 100352,
    # The README's 4096 visual tokens; a 1280x720 frame stays 1288x728 (below the cap).
    "readme": 3211264,
}
"""Named image-size caps (model.image_preset). Each visual token is a 28x28 block of the resized
image, so the cap bounds the prompt length and the time to the first token; which cap points
best on a robot is not known until measured on a GPU."""

def smart_resize(
    height: int,
    width: int,
    *,
    factor: int = IMAGE_FACTOR,
    min_pixels: int = MIN_PIXELS,
    max_pixels: int,
) -> ImageSize:
    """Size the Qwen2.5-VL processor resizes a height x width image to.

    Same arithmetic as transformers' ``smart_resize`` (Python's round-half-to-even included), so
    coordinate rescaling agrees with the image the model really saw.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got height={height}, width={width}")
    if factor <= 0 or min_pixels <= 0 or max_pixels <= 0:
        raise ValueError(
            f"factor, min_pixels and max_pixels must be positive, got {factor}, {min_pixels}, "
            f"{max_pixels}"
        )
    ratio = max(height, width) / min(height, width)
    if ratio > MAX_RATIO:
        raise ValueError(
            f"aspect ratio {ratio:.1f} of a {width}x{height} image exceeds {MAX_RATIO}, "
            "which the Qwen2.5-VL processor refuses"
        )
    resized_height = round(height / factor) * factor
    resized_width = round(width / factor) * factor
    if resized_height * resized_width > max_pixels:
        shrink = math.sqrt(height * width / max_pixels)
        resized_height = max(factor, math.floor(height / shrink / factor) * factor)
        resized_width = max(factor, math.floor(width / shrink / factor) * factor)
    elif resized_height * resized_width < min_pixels:
        grow = math.sqrt(min_pixels / (height * width))
        resized_height = math.ceil(height * grow / factor) * factor
        resized_width = math.ceil(width * grow / factor) * factor
    return ImageSize(width=resized_width, height=resized_height)


def _pillow_resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).resize((width, height), resample=Image.BICUBIC))


@functools.lru_cache(maxsize=64)
def _fast_path_matches_pillow(in_width: int, in_height: int, width: int, height: int) -> bool:
    """Whether core.bicubic gives the installed Pillow's bits for this size pair, checked once
    on seeded noise (every tap and the clipping count there). A mismatch, say from a Pillow
    release that changed its arithmetic, is logged once and the pair stays on Pillow."""
    if not bicubic.available():
        return False
    probe = np.random.default_rng(in_width * 7919 + in_height).integers(
        0, 256, (in_height, in_width, 3), dtype=np.uint8
    )
    try:
        same = np.array_equal(bicubic.resize_rgb(probe, width, height),
                              _pillow_resize(probe, width, height))
    except Exception as error:  # a numba that cannot compile here: Pillow does the work
        _log.warning("fast bicubic resize failed (%s); resizing with Pillow", error)
        return False
    if not same:
        _log.warning(
            "fast bicubic resize %dx%d -> %dx%d differs from Pillow %s; resizing with Pillow",
            in_width, in_height, width, height, PILLOW_VERSION,
        )
    return same


def warm_up_resize() -> str:
    """Compile the fast resize now (about a second, cached on disk after the first run), so no
    query pays for it. Returns which resize the queries use, for the configure log."""
    if not bicubic.available():
        return f"resize: Pillow {PILLOW_VERSION} bicubic (numba not installed)"
    started = time.perf_counter()
    if not _fast_path_matches_pillow(64, 48, 56, 56):
        return f"resize: Pillow {PILLOW_VERSION} bicubic (the fast path did not match it)"
    return (f"resize: numba, bit-equal to Pillow {PILLOW_VERSION} bicubic (ready in "
            f"{time.perf_counter() - started:.1f} s)")


def resize_for_model(rgb: np.ndarray, size: ImageSize) -> np.ndarray:
    """Resize an RGB uint8 image to ``size`` the way the Qwen2.5-VL PIL image processor does.

    transformers 5.x's PIL backend (used where torchvision is absent) resizes with
    ``PIL.Image.resize(..., BICUBIC)`` on the uint8 image, as the official client-side path
    (qwen_vl_utils) does; the torchvision backend uses bicubic with antialiasing and differs by a
    few grey levels. Returns the input itself when the size already matches.

    The pixels are Pillow's, to the bit: core.bicubic computes them about 8x faster (1280x720,
    two cores) where numba is installed and the size pair passed its one-time check against
    Pillow; Pillow otherwise.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {rgb.shape} {rgb.dtype}")
    if size.width <= 0 or size.height <= 0:
        raise ValueError(f"target size must be positive, got {size}")
    in_height, in_width = rgb.shape[:2]
    if (in_height, in_width) == (size.height, size.width):
        return rgb
    if _fast_path_matches_pillow(in_width, in_height, size.width, size.height):
        return bicubic.resize_rgb(rgb, size.width, size.height)
    return _pillow_resize(rgb, size.width, size.height)


def model_to_source(
    x: float, y: float, resized: ImageSize, source: ImageSize
) -> tuple[float, float, bool]:
    """Map a model point to source pixels: u = x * W_src / W_resized, v = y * H_src / H_resized.

    A point outside [0, W_resized) x [0, H_resized), or not finite, is invalid: (nan, nan, False).
    Nothing is clamped, so a wrong answer is reported instead of moved to the image border.
    """
    x = float(x)
    y = float(y)
    in_image = (
        math.isfinite(x)
        and math.isfinite(y)
        and 0.0 <= x < resized.width
        and 0.0 <= y < resized.height
    )
    if not in_image:
        return math.nan, math.nan, False
    return x * source.width / resized.width, y * source.height / resized.height, True


def source_to_model(
    u: float, v: float, resized: ImageSize, source: ImageSize
) -> tuple[float, float]:
    """Inverse of ``model_to_source``: source pixels to the resized image's pixels (no checks)."""
    return float(u) * resized.width / source.width, float(v) * resized.height / source.height


def model_box_to_source(
    box: ModelBox, resized: ImageSize, source: ImageSize
) -> tuple[float, float, float, float, bool]:
    """Map a model bbox_2d to source pixels with the same scale factors as points.

    ``valid`` is True when all corners are finite, the box has positive width and height and lies
    within [0, W_resized] x [0, H_resized] (the bottom-right corner may touch the border).
    The corners are returned scaled but never clamped, also when the box is invalid.
    """
    sx = source.width / resized.width
    sy = source.height / resized.height
    x1, y1, x2, y2 = (float(c) for c in (box.x1, box.y1, box.x2, box.y2))
    valid = (
        all(math.isfinite(c) for c in (x1, y1, x2, y2))
        and 0.0 <= x1 < x2 <= resized.width
        and 0.0 <= y1 < y2 <= resized.height
    )
    return x1 * sx, y1 * sy, x2 * sx, y2 * sy, valid
