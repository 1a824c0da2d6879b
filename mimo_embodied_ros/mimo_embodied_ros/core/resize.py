"""The resize the model saw, and the exact mapping between its pixels and the source image's.

MiMo-Embodied answers in absolute pixels of the image after Qwen2.5-VL's smart-resize
(model-io.md). Every coordinate must be rescaled with the same resize, so the algorithm lives
here once and is checked against transformers' own implementation in the tests.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from mimo_embodied_ros.core.types import ImageSize, ModelBox

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


PARALLEL_RESIZE_PIXELS = 500_000
"""From this many source pixels the three channels are resized in parallel threads."""
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _channel_pool() -> ThreadPoolExecutor | None:
    """Three workers (one per channel) where the machine has more than one core, else None."""
    global _pool
    if (os.cpu_count() or 1) < 2:
        return None
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="resize")
        return _pool


def resize_for_model(rgb: np.ndarray, size: ImageSize) -> np.ndarray:
    """Resize an RGB uint8 image to ``size`` the way the Qwen2.5-VL PIL image processor does.

    transformers 5.x's PIL backend (used where torchvision is absent) resizes with
    ``PIL.Image.resize(..., BICUBIC)`` on the uint8 image, as the official client-side path
    (qwen_vl_utils) does; the torchvision backend uses bicubic with antialiasing and differs by a
    few grey levels. Returns the input itself when the size already matches.

    Large images are resized one channel per thread (PIL releases the GIL while resampling):
    PIL computes every channel of an RGB image with the same fixed-point arithmetic as a
    single-channel image, so the result is the same to the bit (tested against the processor),
    in about two thirds of the time on two cores at 1280x720 (20 -> 13 ms measured).
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {rgb.shape} {rgb.dtype}")
    if size.width <= 0 or size.height <= 0:
        raise ValueError(f"target size must be positive, got {size}")
    if rgb.shape[0] == size.height and rgb.shape[1] == size.width:
        return rgb
    target = (size.width, size.height)
    pool = _channel_pool() if rgb.shape[0] * rgb.shape[1] >= PARALLEL_RESIZE_PIXELS else None
    if pool is None:
        return np.asarray(Image.fromarray(rgb).resize(target, resample=Image.BICUBIC))
    resized = np.empty((size.height, size.width, 3), np.uint8)

    def one_channel(channel: int) -> None:
        plane = Image.fromarray(np.ascontiguousarray(rgb[:, :, channel]))
        resized[:, :, channel] = np.asarray(plane.resize(target, resample=Image.BICUBIC))

    for done in [pool.submit(one_channel, channel) for channel in range(3)]:
        done.result()
    return resized


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
