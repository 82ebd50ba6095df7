"""The ``(lo, hi)`` intensity range frames are mapped to ``[0, 1]`` with.

Every frame of a stack is mapped to ``[0, 1]`` by the same ``(lo, hi)``
range, :attr:`~napari_sam2.engine.frames.FrameSource.intensity_range`. ``"auto"`` (the default)
takes the 0.5th and 99.8th percentiles of the finite values of up to 5
evenly spaced frames (first and last included), all selected channels
pooled together so that colour balance is kept; if those percentiles are
equal (a mostly empty image) it falls back to the finite minimum and
maximum, and a constant sample gets ``(c, c + 1)``, which maps the
constant to 0. A sample with no finite value gets ``(0, 1)``.

Saturated pixels are left out of these percentiles: in integer data,
when a sampled frame's maximum is a full-scale value (the dtype's
maximum, or ``2**k - 1`` for a ``k``-bit sensor, ``8 <= k``: 255, 1023,
4095, 16383, 65535 ...), the pixels at that value and those within
``AUTO_SATURATION_RIM`` pixels of them (the blurred rim of a clipped
bead) do not enter the sample. A clipped pixel only says "at least this
bright", so it carries no information about the range of the rest; left
in, a bright bead or dead cell covering 0.4 % of a 16-bit frame puts the
99.8th percentile at 65535 and every cell near black. Those pixels still
map to 1. Without saturation the rule is exactly the percentiles above;
if the unsaturated rest is empty or constant, the full sample is used.
A small bright region below full scale is not detected (its histogram
cannot be told from sparse bright objects of interest): give a fixed
range for such data.
``"dtype"`` takes the full range of an integer dtype (``(0, 255)`` for
uint8, ``(0, 65535)`` for uint16); a fixed ``(lo, hi)`` is used as given.
After mapping, NaN becomes 0, +inf 1 and -inf 0, and values are clipped
to ``[0, 1]``. Boolean data is accepted (False is 0, True is 1).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from .intensity import AUTO_SATURATION_RIM, saturated_pixels

__all__ = [
    "AUTO_PERCENTILES",
    "AUTO_SAMPLE_FRAMES",
    "AUTO_MAX_VALUES_PER_FRAME",
    "AUTO_SATURATION_RIM",
    "fixed_range_of",
    "sample_range",
    "map_to_unit",
]

# "auto" intensity range: (low, high) percentiles of the pooled finite values
AUTO_PERCENTILES = (0.5, 99.8)
# at most this many evenly spaced frames are read for the "auto" range
AUTO_SAMPLE_FRAMES = 5
# at most this many values per sampled frame enter the percentiles (a fixed
# seeded subset beyond it, so large frames do not cost a full sort)
AUTO_MAX_VALUES_PER_FRAME = 1 << 20


def sample_range(read: Callable[[int], np.ndarray], num_frames: int) -> tuple[float, float]:
    """The ``"auto"`` range of a stack of ``num_frames`` frames, ``read(i)``
    giving frame ``i`` at its native dtype (see the module docstring)."""
    n = num_frames
    picks = np.unique(np.linspace(0, n - 1, min(n, AUTO_SAMPLE_FRAMES)).round().astype(int))
    rng = np.random.default_rng(0)
    values, unsaturated = [], []
    any_saturated = False
    for i in picks:
        frame = read(int(i))
        saturated = saturated_pixels(frame)
        flat = frame.reshape(-1)  # (H * W * k,)
        keep = None if saturated is None else ~saturated.reshape(-1)
        if flat.size > AUTO_MAX_VALUES_PER_FRAME:
            pick = rng.integers(0, flat.size, AUTO_MAX_VALUES_PER_FRAME)
            flat = flat[pick]
            keep = None if keep is None else keep[pick]
        if np.issubdtype(flat.dtype, np.floating):
            flat = flat.astype(np.float64)
            flat = flat[np.isfinite(flat)]
        elif flat.dtype == np.bool_:
            flat = flat.astype(np.uint8)
        values.append(flat)
        unsaturated.append(flat if keep is None else flat[keep])
        any_saturated |= keep is not None
    if any_saturated:
        rest = spread_range(np.concatenate(unsaturated))
        if rest is not None:
            return rest
    pooled = np.concatenate(values)  # (n,) finite values, native ints or float64
    if pooled.size == 0:
        return (0.0, 1.0)
    spread = spread_range(pooled)
    if spread is not None:
        return spread
    lo = float(pooled.min())
    return (lo, lo + 1.0)


def fixed_range_of(intensity_range: Any, dtype: np.dtype) -> tuple[float, float] | None:
    """A validated ``intensity_range``: ``(lo, hi)`` floats, or None for ``"auto"``."""
    if isinstance(intensity_range, str):
        if intensity_range == "auto":
            return None
        if intensity_range == "dtype":
            if dtype == np.bool_:
                return (0.0, 1.0)
            if np.issubdtype(dtype, np.integer):
                info = np.iinfo(dtype)
                return (float(info.min), float(info.max))
            raise ValueError(
                f'intensity_range="dtype" needs integer or bool data, got {dtype}; '
                'use "auto" or a fixed (lo, hi)'
            )
        raise ValueError(
            f'intensity_range must be "auto", "dtype" or (lo, hi); got {intensity_range!r}'
        )
    try:
        lo, hi = (float(v) for v in intensity_range)
    except (TypeError, ValueError):
        raise ValueError(
            'intensity_range must be "auto", "dtype" or two numbers (lo, hi); '
            f"got {intensity_range!r}"
        ) from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"intensity_range must be finite, got ({lo}, {hi})")
    if not lo < hi:
        raise ValueError(f"intensity_range needs lo < hi, got ({lo}, {hi})")
    return (lo, hi)


def spread_range(values: np.ndarray) -> tuple[float, float] | None:
    """The ``AUTO_PERCENTILES`` of ``values``, or their min and max when the
    percentiles are equal; None when ``values`` is empty or constant."""
    if values.size == 0:
        return None
    lo, hi = np.percentile(values, AUTO_PERCENTILES)
    if not hi > lo:
        lo, hi = values.min(), values.max()
    return (float(lo), float(hi)) if hi > lo else None



def map_to_unit(frame: np.ndarray, lo_hi: tuple[float, float]) -> np.ndarray:
    """``frame`` mapped linearly so that ``lo -> 0`` and ``hi -> 1``, clipped.

    float32, same shape; NaN -> 0, +inf -> 1, -inf -> 0. Works in float64
    for dtypes that float32 cannot hold exactly, and for ranges whose width
    ``hi - lo`` overflows float32.
    """
    lo, hi = lo_hi
    work = np.result_type(frame.dtype, np.float32)
    if work == np.float32 and not abs(hi - lo) < float(np.finfo(np.float32).max):
        work = np.dtype(np.float64)  # hi - lo overflows float32 (values near +/-3.4e38)
    with np.errstate(invalid="ignore", over="ignore"):
        unit = (frame.astype(work) - work.type(lo)) / work.type(hi - lo)
    np.nan_to_num(unit, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
    np.clip(unit, 0.0, 1.0, out=unit)
    return unit.astype(np.float32, copy=False)
