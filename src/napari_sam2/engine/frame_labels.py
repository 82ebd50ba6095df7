"""A session's label frames: each composed from every tracked object's
current mask there and written whole; an object's pixels cleared."""

from __future__ import annotations

import numpy as np
import torch

from .labels import upsample_logits
from .lineage import Lineage
from .memory import MemoryBank

__all__ = ["clear_pixels", "current_masks", "write_labels"]


def current_masks(bank: MemoryBank, lineage: Lineage, object_ids, frame: int, known: dict[int, torch.Tensor],
                  size: tuple[int, int]):
    """Every tracked object's current mask on ``frame``, to compose it:
    ``known`` (id -> ``1 x 1 x h x w`` low-resolution logits just
    computed), and for each other object of ``object_ids`` its latest
    output there from the memory bank. Returns ``(ids, K x H x W logits,
    kept)`` (``size``: ``(H, W)``) in ``object_ids`` order (so that ties go
    the same way whichever objects were re-run), ``kept`` the objects with
    no output kept for ``frame`` (evicted from the bounded history, or
    never tracked there): their pixels stay."""
    lows = {}
    kept = []
    for obj_id in object_ids:
        if not lineage.tracks(obj_id, frame):
            continue
        low = known[obj_id] if obj_id in known else bank.logits(obj_id, frame)
        if low is None:
            kept.append(obj_id)
        else:
            lows[obj_id] = low
    ids = list(lows)
    if not ids:
        return ids, None, kept
    logits = upsample_logits(torch.cat([lows[o] for o in ids], dim=0), size)
    return ids, logits, kept


def write_labels(labels, frame: int, new: np.ndarray) -> None:
    """``labels[frame] = new``; a failure raises an error that says the frame stays out of date."""
    try:
        labels[frame] = new
    except Exception as exc:
        kind = OSError if isinstance(exc, OSError) else ValueError if isinstance(exc, ValueError) else RuntimeError
        raise kind(
            f"could not write frame {frame} into the labels array ({type(exc).__name__}: {exc}); "
            "that frame stays out of date and the next propagation computes it again"
        ) from exc


def clear_pixels(labels, obj_id: int, frames) -> None:
    """Set ``obj_id``'s pixels to 0 on ``frames`` (each frame that has some rewritten whole)."""
    for f in frames:
        frame = labels[f]
        if np.any(frame == obj_id):
            new = np.array(frame, copy=True)
            new[new == obj_id] = 0
            labels[f] = new
