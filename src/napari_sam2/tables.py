"""Per-object measurements and lineage summaries of tracked labels, as rows
and CSV files that analysis tools (pandas, R, spreadsheets) read.

* :func:`object_table`: one row per object and frame: frame, id, mother,
  area in pixels, centroid ``(y, x)``, mean and summed intensity, and with a
  ``scale`` (the layer's ``(sy, sx)`` pixel size) area and centroid in its
  units.
* :func:`lineage_summary`: one row per object: mother, first and last
  frame, duration in frames, number of children.
* :func:`tracks_graph`: the lineage as napari's Tracks layer ``graph``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ._io import atomic_file

OBJECT_COLUMNS = ("frame", "id", "mother", "area_px", "centroid_y", "centroid_x",
                  "mean_intensity", "sum_intensity")
SCALED_COLUMNS = ("area", "centroid_y_scaled", "centroid_x_scaled")
LINEAGE_COLUMNS = ("id", "mother", "first_frame", "last_frame", "duration", "children")


def object_table(labels, *, mothers: Mapping[int, int] | None = None, image=None,
                 scale: Sequence[float] | None = None) -> list[dict]:
    """Rows (dicts) for every object on every frame of ``labels`` (``T x Y x X``).

    ``image``: the intensities, same shape (or None: no intensity columns
    are filled); ``scale``: ``(sy, sx)`` size of a pixel in the layer's
    units, adding ``area`` and scaled centroids.
    """
    labels = _frames(labels, "labels")
    if image is not None:
        image = _frames(image, "image")
        if image.shape != labels.shape:
            raise ValueError(f"image has shape {image.shape} but labels have {labels.shape}")
    if scale is not None:
        scale = tuple(float(v) for v in scale)
        if len(scale) != 2 or not all(np.isfinite(scale)) or min(scale) <= 0:
            raise ValueError(f"scale must be (sy, sx), two positive pixel sizes, got {scale}")
    mothers = dict(mothers or {})
    rows = []
    for t in range(labels.shape[0]):
        frame = np.asarray(labels[t])
        ids, inverse = np.unique(frame.reshape(-1), return_inverse=True)
        if not (ids > 0).any():
            continue
        area = np.bincount(inverse, minlength=len(ids))
        yy, xx = np.indices(frame.shape)
        cy = np.bincount(inverse, weights=yy.reshape(-1), minlength=len(ids)) / area
        cx = np.bincount(inverse, weights=xx.reshape(-1), minlength=len(ids)) / area
        total = None
        if image is not None:
            values = np.asarray(image[t], dtype=np.float64).reshape(-1)
            total = np.bincount(inverse, weights=values, minlength=len(ids))
        for k, obj_id in enumerate(ids):
            if obj_id <= 0:
                continue
            row = {"frame": t, "id": int(obj_id), "mother": int(mothers.get(int(obj_id), 0)),
                   "area_px": int(area[k]), "centroid_y": float(cy[k]), "centroid_x": float(cx[k]),
                   "mean_intensity": "" if total is None else float(total[k] / area[k]),
                   "sum_intensity": "" if total is None else float(total[k])}
            if scale is not None:
                row.update(area=float(area[k] * scale[0] * scale[1]),
                           centroid_y_scaled=float(cy[k] * scale[0]), centroid_x_scaled=float(cx[k] * scale[1]))
            rows.append(row)
    return rows


def lineage_summary(labels, *, mothers: Mapping[int, int] | None = None) -> list[dict]:
    """One row per object of ``labels``: mother, first/last frame, duration
    (frames from first to last, both counted) and number of children."""
    labels = _frames(labels, "labels")
    mothers = dict(mothers or {})
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for t in range(labels.shape[0]):
        for obj_id in np.unique(np.asarray(labels[t])):
            if obj_id > 0:
                first.setdefault(int(obj_id), t)
                last[int(obj_id)] = t
    children: dict[int, int] = {}
    for daughter, mother in mothers.items():
        if mother and daughter in first:
            children[mother] = children.get(mother, 0) + 1
    return [{"id": i, "mother": int(mothers.get(i, 0)), "first_frame": first[i], "last_frame": last[i],
             "duration": last[i] - first[i] + 1, "children": children.get(i, 0)} for i in sorted(first)]


def tracks_graph(mothers: Mapping[int, int]) -> dict[int, list[int]]:
    """``{daughter: [mother]}`` for a napari Tracks layer's ``graph``."""
    return {int(d): [int(m)] for d, m in sorted(mothers.items()) if m}


def write_csv(path, rows: list[dict], columns: Sequence[str], *, what: str = "table") -> Path:
    """Write ``rows`` to a CSV file atomically (a temporary name, then moved into place)."""
    path = Path(path)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_file(path, what=what) as fh:
        fh.write(buf.getvalue().encode("utf-8"))
    return path


def _frames(array, name: str):
    if not hasattr(array, "shape") or len(array.shape) != 3:
        raise ValueError(f"{name} must be a T x Y x X array, got shape {getattr(array, 'shape', None)}")
    return array
