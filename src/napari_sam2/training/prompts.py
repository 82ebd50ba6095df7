"""Simulated user prompts for training: clicks, boxes, masks, corrections."""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from ..model import PointPrompts


def first_click(mask: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """A positive click inside ``mask`` (S x S bool), as ``(x, y)``: half the
    time near the middle of the object (where people click), else anywhere
    inside it."""
    ys, xs = np.nonzero(mask)
    if rng.uniform() < 0.5:
        dist = ndimage.distance_transform_edt(mask)
        inner = dist >= 0.5 * dist.max()
        ys, xs = np.nonzero(inner)
    i = int(rng.integers(len(ys)))
    return float(xs[i]), float(ys[i])


def noisy_box(mask: np.ndarray, rng: np.random.Generator, noise: float = 0.1, bound: float = 5.0):
    """The mask's bounding box ``(x0, y0, x1, y1)`` with each side jittered by
    up to ``noise`` of the box size (at most ``bound`` pixels)."""
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    w, h = x1 - x0 + 1, y1 - y0 + 1
    dx, dy = min(noise * w, bound), min(noise * h, bound)
    jitter = rng.uniform(-1, 1, 4) * np.array([dx, dy, dx, dy])
    s = mask.shape[0] - 1
    box = np.clip(np.array([x0, y0, x1, y1], dtype=float) + jitter, 0, s)
    if box[2] <= box[0]:
        box[2] = min(box[0] + 1, s)
    if box[3] <= box[1]:
        box[3] = min(box[1] + 1, s)
    return box


def correction_click(pred: np.ndarray, mask: np.ndarray, rng: np.random.Generator):
    """A click in the error region: positive in a missed part, negative on a
    false positive, chosen uniformly over all error pixels. None if perfect."""
    fn = mask & ~pred
    fp = pred & ~mask
    ys, xs = np.nonzero(fn | fp)
    if len(ys) == 0:
        return None
    i = int(rng.integers(len(ys)))
    y, x = ys[i], xs[i]
    return (float(x), float(y)), int(fn[y, x])


def to_prompts(coords: list, labels: list, device) -> PointPrompts:
    return PointPrompts(
        torch.tensor([coords], dtype=torch.float32, device=device),
        torch.tensor([labels], dtype=torch.int32, device=device),
    )
