"""Pillow's BICUBIC resize of uint8 RGB images, bit for bit, as vectorized integer passes.

The official path resizes with ``PIL.Image.resize(..., BICUBIC)`` (model-io.md), and Pillow
resamples one pixel at a time: about 20 ms for 1280x720 -> 1288x728 on a small CPU. This module
does the same arithmetic as Pillow's ``Resample.c`` in passes that a compiler vectorizes
(numba): the vertical pass runs over whole rows (``_rows_pass``); the horizontal pass, where the
scale is near 1 as a smart-resize's is, runs over shifted contiguous slices of each row
(``_runs_pass``), else it is the row pass between two pixel transposes. Large passes are split
over the cores. Same filter (a = -0.5, support 2, widened by the scale
when shrinking), same window bounds, same 22-bit fixed-point coefficients, same rounding, the
same uint8 clipping after each pass, and Pillow's order of the two passes (``vertical_first``).

numba is optional: ``available()`` says whether it imported. ``core.resize`` uses this path
only for a size pair it has checked against the installed Pillow, and Pillow otherwise.
"""

from __future__ import annotations

import functools
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import __version__ as PILLOW_VERSION

try:
    import numba
except ImportError:  # a host without numba resizes with Pillow itself
    numba = None

PRECISION_BITS = 22  # Pillow: 32 bits - 8 for the pixel - 2 for the filter's overshoot
BICUBIC_SUPPORT = 2.0
BICUBIC_A = -0.5
PILLOW_MAJOR = int(PILLOW_VERSION.split(".")[0])


def available() -> bool:
    """True where numba imported, so ``resize_rgb`` can run."""
    return numba is not None


def _bicubic(x: np.ndarray) -> np.ndarray:
    """Pillow's bicubic_filter, elementwise, with its operations in its order."""
    x = np.abs(x)
    near = ((BICUBIC_A + 2.0) * x - (BICUBIC_A + 3.0)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * BICUBIC_A
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


@functools.lru_cache(maxsize=64)
def filter_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's precompute_coeffs + normalize_coeffs_8bpc for a whole-image resize of one axis.

    Returns ``bounds`` (out_size, 2) int32: the first source pixel of each output pixel's window
    and the window's length; and ``coefficients`` (out_size, ksize) int32: the window's weights
    in fixed point (sum about 2**22), zero past the window's length. Pixel centres are at +0.5.
    """
    scale = float(in_size) / out_size
    filter_scale = max(scale, 1.0)
    support = BICUBIC_SUPPORT * filter_scale
    ksize = int(math.ceil(support)) * 2 + 1
    center = (np.arange(out_size, dtype=np.float64) + 0.5) * scale
    # C's (int) cast truncates toward zero, as astype does; negative starts are clamped to 0.
    start = np.maximum((center - support + 0.5).astype(np.int64), 0)
    length = np.minimum((center + support + 0.5).astype(np.int64), in_size) - start
    taps = np.arange(ksize)
    weights = _bicubic((taps + start[:, None] - center[:, None] + 0.5) * (1.0 / filter_scale))
    weights = np.where(taps < length[:, None], weights, 0.0)
    total = np.zeros(out_size)
    for tap in range(ksize):  # Pillow sums the taps in order
        total = total + weights[:, tap]
    weights = weights / np.where(total == 0.0, 1.0, total)[:, None]
    scaled = weights * (1 << PRECISION_BITS)
    coefficients = np.where(weights < 0, -0.5 + scaled, 0.5 + scaled).astype(np.int32)
    return np.stack([start, length], axis=1).astype(np.int32), coefficients


MIN_MEAN_RUN = 8
"""Mean run length (output pixels) from which the horizontal pass uses runs, not transposes."""


@functools.lru_cache(maxsize=64)
def filter_runs(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The horizontal taps as runs of output pixels that share the window offset d = start - j
    and length: ``runs`` (R, 4) int64 (first pixel, end pixel, d, length) and ``lane_weights``
    (ksize, 3 out_size) int32, each pixel's coefficients repeated for its three channels. None
    where runs would be short (a scale far from 1, e.g. 1920 -> 1316: d changes every pixel)."""
    bounds, coefficients = filter_taps(in_size, out_size)
    offset = bounds[:, 0].astype(np.int64) - np.arange(out_size)
    length = bounds[:, 1].astype(np.int64)
    breaks = np.flatnonzero((np.diff(offset) != 0) | (np.diff(length) != 0)) + 1
    if out_size < MIN_MEAN_RUN * (len(breaks) + 1):
        return None
    first = np.concatenate([[0], breaks])
    end = np.concatenate([breaks, [out_size]])
    runs = np.stack([first, end, offset[first], length[first]], axis=1)
    return runs, np.ascontiguousarray(np.repeat(coefficients.T, 3, axis=1))


def vertical_first(in_width: int, in_height: int, out_width: int, out_height: int) -> bool:
    """Pillow's order of the passes: from 13.0 the vertical pass runs first where the height
    shrinks by more than twice what the width does; before 13.0 always horizontal first."""
    if PILLOW_MAJOR < 13:
        return False
    shrink_y = in_height - out_height
    return shrink_y > 0 and shrink_y > (in_width - out_width) * 2


if numba is not None:

    @numba.njit(nogil=True, cache=True)
    def _rows_pass(src, out, bounds, coefficients, start, stop):  # pragma: no cover - compiled
        """out[j] = clip8(sum_t coefficients[j, t] * src[bounds[j, 0] + t]) for start <= j < stop.
        """
        width = out.shape[1]
        acc = np.empty(width, np.int32)
        for j in range(start, stop):
            first = bounds[j, 0]
            acc[:] = 1 << (PRECISION_BITS - 1)
            for tap in range(bounds[j, 1]):
                weight = coefficients[j, tap]
                row = src[first + tap]
                for i in range(width):
                    acc[i] += np.int32(row[i]) * weight
            row_out = out[j]
            for i in range(width):
                value = acc[i] >> PRECISION_BITS
                row_out[i] = 0 if value < 0 else (255 if value > 255 else value)

    @numba.njit(nogil=True, cache=True)
    def _runs_pass(src, out, runs, lane_weights, start, stop):  # pragma: no cover - compiled
        """Horizontal pass of rows start..stop without a transpose, for scales near 1: within a
        run of output pixels j whose window starts at j + d (one d, one length n per run), tap t
        of every lane reads the source at lane + 3 (d + t), a shifted contiguous slice."""
        acc = np.empty(out.shape[1], np.int32)
        for y in range(start, stop):
            line = src[y]
            acc[:] = 1 << (PRECISION_BITS - 1)
            for r in range(runs.shape[0]):
                first, end = 3 * runs[r, 0], 3 * runs[r, 1]
                acc_run = acc[first:end]
                for tap in range(runs[r, 3]):
                    shift = 3 * (runs[r, 2] + tap)
                    src_run = line[first + shift:end + shift]
                    weights = lane_weights[tap, first:end]
                    for k in range(end - first):
                        acc_run[k] += np.int32(src_run[k]) * weights[k]
            row_out = out[y]
            for i in range(acc.shape[0]):
                value = acc[i] >> PRECISION_BITS
                row_out[i] = 0 if value < 0 else (255 if value > 255 else value)

    @numba.njit(nogil=True, cache=True)
    def _transpose_pixels(src, dst, start, stop):  # pragma: no cover - compiled
        """dst[x, 3y + c] = src[y, 3x + c] for start <= x < stop: RGB rows become columns, in
        64-pixel tiles."""
        height = src.shape[0]
        width = dst.shape[0]
        flat_in = src.ravel()
        flat_out = dst.ravel()
        stride_in = np.uint64(3 * width)
        stride_out = np.uint64(3 * height)
        tile = 64  # reads along source rows, writes down columns: faster than the other way
        for y0 in range(0, height, tile):
            for x0 in range(start, stop, tile):
                for y in range(y0, min(y0 + tile, height)):
                    base_in = np.uint64(y) * stride_in
                    base_out = np.uint64(3 * y)
                    for x in range(x0, min(x0 + tile, stop)):
                        i = base_in + np.uint64(3 * x)
                        o = np.uint64(x) * stride_out + base_out
                        flat_out[o] = flat_in[i]
                        flat_out[o + np.uint64(1)] = flat_in[i + np.uint64(1)]
                        flat_out[o + np.uint64(2)] = flat_in[i + np.uint64(2)]


_scratch = threading.local()


def _buffer(name: str, rows: int, columns: int) -> np.ndarray:
    """A per-thread intermediate array, reused while its shape stays: a fresh 3 MB array costs
    about as much in page faults as a whole pass."""
    buffers = _scratch.__dict__.setdefault("buffers", {})
    buffer = buffers.get(name)
    if buffer is None or buffer.shape != (rows, columns):
        buffer = buffers[name] = np.empty((rows, columns), np.uint8)
    return buffer


PARALLEL_MIN_BYTES = 1 << 19
"""Passes that write at least this much are split over the row-pass threads."""
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _split_rows(kernel, out: np.ndarray, *args) -> None:
    """kernel(*args, start, stop) over bands of ``out``'s rows: one band in this thread and one
    per extra core (up to 4 in all) in a shared pool; the kernels release the GIL."""
    global _pool
    workers = min(os.cpu_count() or 1, 4)
    rows = out.shape[0]
    if workers < 2 or out.nbytes < PARALLEL_MIN_BYTES or rows < 2 * workers:
        kernel(*args, 0, rows)
        return
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=workers - 1, thread_name_prefix="bicubic")
    edges = np.linspace(0, rows, workers + 1).astype(int)
    bands = list(zip(edges[:-1], edges[1:], strict=True))
    others = [_pool.submit(kernel, *args, int(a), int(b)) for a, b in bands[1:]]
    try:
        kernel(*args, int(bands[0][0]), int(bands[0][1]))
    finally:
        for other in others:
            other.result()


def _transposed(rows: np.ndarray, out: np.ndarray) -> np.ndarray:
    """(H, 3W) RGB rows -> ``out``, (W, 3H)."""
    _split_rows(_transpose_pixels, out, rows, out)
    return out


def _horizontal(rows: np.ndarray, out_width: int, out: np.ndarray) -> np.ndarray:
    """Resample every (H, 3W) row into ``out`` (H, 3 out_width): in runs where the scale is
    near 1, else a row pass on the transpose."""
    height, width = rows.shape[0], rows.shape[1] // 3
    runs = filter_runs(width, out_width)
    if runs is not None:
        _split_rows(_runs_pass, out, rows, out, *runs)
        return out
    bounds, coefficients = filter_taps(width, out_width)
    columns = _transposed(rows, _buffer("columns", width, 3 * height))
    resampled = _buffer("resampled", out_width, 3 * height)
    _split_rows(_rows_pass, resampled, columns, resampled, bounds, coefficients)
    return _transposed(resampled, out)


def _vertical(
    rows: np.ndarray, in_height: int, first_row: int, out: np.ndarray
) -> np.ndarray:
    """Resample (H, 3W) rows, which start at source row ``first_row``, into ``out`` (H', 3W)."""
    bounds, coefficients = filter_taps(in_height, out.shape[0])
    if first_row:
        bounds = bounds - np.array([first_row, 0], np.int32)
    _split_rows(_rows_pass, out, rows, out, bounds, coefficients)
    return out


def resize_rgb(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """``PIL.Image.fromarray(rgb).resize((width, height), BICUBIC)`` as an (H', W', 3) array.

    ``rgb`` is (H, W, 3) uint8. Requires numba (``available()``). Like Pillow, an axis whose
    size does not change is not resampled, and the horizontal pass reads only the source rows
    the vertical pass will use.
    """
    in_height, in_width = rgb.shape[:2]
    need_x, need_y = width != in_width, height != in_height
    if not need_x and not need_y:
        return rgb.copy()
    rows = np.ascontiguousarray(rgb).reshape(in_height, in_width * 3)
    out = np.empty((height, width * 3), np.uint8)
    if not need_y:
        return _horizontal(rows, width, out).reshape(height, width, 3)
    if not need_x:
        return _vertical(rows, in_height, 0, out).reshape(height, width, 3)
    if vertical_first(in_width, in_height, width, height):
        shrunk = _vertical(rows, in_height, 0, _buffer("between", height, 3 * in_width))
        return _horizontal(shrunk, width, out).reshape(height, width, 3)
    bounds, _ = filter_taps(in_height, height)  # Pillow's ybox_first .. ybox_last
    first_row, last_row = int(bounds[0, 0]), int(bounds[-1, 0] + bounds[-1, 1])
    widened = _horizontal(rows[first_row:last_row], width,
                          _buffer("between", last_row - first_row, 3 * width))
    return _vertical(widened, in_height, first_row, out).reshape(height, width, 3)
