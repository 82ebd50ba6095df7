"""*Show tracks*: a napari Tracks layer of the objects' centroids.

The rows come from :func:`napari_sam2.export.tracks_layer_data` (track id
= label value, one row per object and frame); here they are placed in the
Labels layer's data coordinates (the tracked axis, the fixed axes at the
slice the stack was taken at, Y and X) and shown with the image's scale
and translation, so the tracks lie over the cells.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from napari.layers import Tracks

from ..export import tracks_layer_data
from ..tables import tracks_graph


def tracks_name(image_name: str) -> str:
    return f"{image_name} SAM 2 tracks"


def tracks_rows(view, *, axis: int, index: Mapping[int, int], ndim: int) -> np.ndarray:
    """``N x (1 + ndim)`` rows ``(track id, coordinates...)`` of the
    ``frames x Y x X`` label ``view`` taken along ``axis`` at ``index`` of
    an ``ndim``-D Labels layer."""
    rows = tracks_layer_data(view)  # (id, t, y, x)
    out = np.zeros((len(rows), 1 + ndim), dtype=float)
    out[:, 0] = rows[:, 0]
    out[:, 1 + axis] = rows[:, 1]
    for a, p in index.items():
        out[:, 1 + a] = p
    out[:, -2:] = rows[:, 2:]
    return out


def lineage_graph(links: Mapping[int, int], tracks: Sequence[int]) -> dict[int, list[int]]:
    """napari's ``graph`` (``{daughter: [mother]}``) from ``{daughter:
    mother}`` links, for the tracks shown (a link to a track not shown is left out)."""
    shown = {int(t) for t in tracks}
    return tracks_graph({d: m for d, m in links.items() if int(d) in shown and int(m) in shown})


def show_tracks(viewer, image, rows: np.ndarray, graph: Mapping[int, list[int]] | None = None) -> Tracks:
    """Add the Tracks layer of ``image`` (or update the one shown) with ``rows``."""
    name = tracks_name(image.name)
    graph = dict(graph or {})
    existing = viewer.layers[name] if name in viewer.layers else None
    if isinstance(existing, Tracks) and existing.ndim == rows.shape[1] - 1:
        existing.graph = {}  # a graph that names tracks the new data lacks is refused
        existing.data = rows
        existing.graph = graph
        return existing
    if existing is not None:
        viewer.layers.remove(existing)
    return viewer.add_tracks(rows, graph=graph, name=name, scale=tuple(image.scale),
                             translate=tuple(image.translate))
