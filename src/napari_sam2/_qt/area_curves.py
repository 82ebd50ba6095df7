"""What the area plot shows: an object's area over time and its relatives'.

Nothing here touches Qt or a napari layer: :func:`area_curves` reads a
``T x Y x X`` label stack and the mother links, and the plot dock
(:mod:`napari_sam2._qt.area_plot`) draws what it returns.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple

import numpy as np

SELECTED, MOTHER, SISTER, DAUGHTER = "selected", "mother", "sister", "daughter"


class Curve(NamedTuple):
    """One object's area (pixels) on the frames where it has pixels."""

    id: int
    relation: str  # SELECTED, MOTHER, SISTER or DAUGHTER
    frames: np.ndarray  # (K,) int, increasing
    areas: np.ndarray  # (K,) int


def relatives(mothers: Mapping[int, int], obj: int) -> list[tuple[int, str]]:
    """``obj`` and its relatives as ``(id, relation)``: itself, its mother,
    its sisters (the mother's other daughters), its daughters; ids sorted
    within each relation. ``mothers``: ``{daughter: mother}`` (0: none)."""
    obj = int(obj)
    mother = int(mothers.get(obj, 0))
    sisters = sorted(int(d) for d, m in mothers.items() if mother and int(m) == mother and int(d) != obj)
    daughters = sorted(int(d) for d, m in mothers.items() if int(m) == obj)
    out = [(obj, SELECTED)] + ([(mother, MOTHER)] if mother else [])
    return out + [(s, SISTER) for s in sisters] + [(d, DAUGHTER) for d in daughters]


def area_curves(labels, mothers: Mapping[int, int], obj: int) -> list[Curve]:
    """The area of ``obj`` and of each of its :func:`relatives` on every
    frame of ``labels`` (``T x Y x X``, read one frame at a time) where it
    has pixels; a relative with no pixels anywhere has empty arrays."""
    if len(labels.shape) != 3:
        raise ValueError(f"labels must be a T x Y x X stack, got shape {tuple(labels.shape)}")
    who = relatives(mothers, obj)
    ids = np.array([i for i, _ in who], dtype=np.int64)
    areas = np.zeros((labels.shape[0], len(ids)), dtype=np.int64)
    for t in range(labels.shape[0]):
        frame = np.asarray(labels[t])
        values, counts = np.unique(frame[np.isin(frame, ids)], return_counts=True)
        for value, count in zip(values, counts):
            areas[t, np.flatnonzero(ids == value)] = count
    out = []
    for k, (i, relation) in enumerate(who):
        frames = np.flatnonzero(areas[:, k])
        out.append(Curve(i, relation, frames, areas[frames, k]))
    return out
