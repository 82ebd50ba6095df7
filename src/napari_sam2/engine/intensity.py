"""Saturation in integer images, for the automatic intensity range.

A sensor clips at its full-scale value; a clipped pixel only says "at
least this bright". :func:`saturated_pixels` finds them (and the blurred
rim around a clipped spot) so that :class:`~napari_sam2.engine.frames.FrameSource`
can leave them out of its ``"auto"`` percentiles.
"""

from __future__ import annotations

import numpy as np

__all__ = ["AUTO_SATURATION_RIM", "full_scale_values", "saturated_pixels"]

# pixels this close (in Y and X) to a saturated pixel are left out of the
# "auto" statistics too: the blurred rim of a clipped bright spot
AUTO_SATURATION_RIM = 2
# smallest k whose full-scale value 2**k - 1 counts as saturation (8-bit)
MIN_SENSOR_BITS = 8


def full_scale_values(dtype: np.dtype) -> set[int]:
    """Values an integer sensor clips at: ``2**k - 1`` that fit ``dtype``
    (``k >= 8``), and the dtype's maximum."""
    info = np.iinfo(dtype)
    levels = {int(info.max)}
    k = MIN_SENSOR_BITS
    while (1 << k) - 1 <= info.max:
        levels.add((1 << k) - 1)
        k += 1
    return levels


def saturated_pixels(frame: np.ndarray) -> np.ndarray | None:
    """Where ``frame`` (``H x W`` or ``H x W x k``, integer) is clipped: the
    pixels at its maximum when that maximum is a full-scale value, grown by
    ``AUTO_SATURATION_RIM`` pixels in Y and X (per channel). None when
    nothing is saturated (and for float and bool data)."""
    if frame.dtype == np.bool_ or not np.issubdtype(frame.dtype, np.integer) or frame.size == 0:
        return None
    top = int(frame.max())
    if top not in full_scale_values(frame.dtype):
        return None
    mask = frame == top  # (H, W[, k])
    for axis in (0, 1):
        mask = _grow_along(mask, axis, AUTO_SATURATION_RIM)
    return mask


def _grow_along(mask: np.ndarray, axis: int, r: int) -> np.ndarray:
    """``mask`` or-ed with itself shifted by up to ``r`` along ``axis``."""
    out = mask.copy()
    n = mask.shape[axis]
    for d in range(1, min(r, n - 1) + 1):
        head = [slice(None)] * mask.ndim
        tail = [slice(None)] * mask.ndim
        head[axis], tail[axis] = slice(d, None), slice(None, n - d)
        out[tuple(head)] |= mask[tuple(tail)]
        out[tuple(tail)] |= mask[tuple(head)]
    return out


class RangeKeys:
    """Feature-cache keys that tell intensity ranges apart.

    The image features of a frame depend on the ``(lo, hi)`` range it was
    mapped with, so the cache is keyed by both: each distinct range gets a
    slot (in the order first seen) and frame ``f`` under slot ``s`` is key
    ``s * num_frames + f``; under the first range the key is the frame
    number itself. Integer keys keep the cache's own bookkeeping (LRU,
    budget, disk file names) unchanged: a switch back to an earlier range
    finds its frames still cached while the budget held them.
    """

    def __init__(self, num_frames: int) -> None:
        self.num_frames = num_frames
        self._slots: dict[tuple[float, float], int] = {}

    def key(self, intensity_range: tuple[float, float], frame: int) -> int:
        lo_hi = (float(intensity_range[0]), float(intensity_range[1]))
        slot = self._slots.setdefault(lo_hi, len(self._slots))
        return slot * self.num_frames + frame
