"""Prompts as plain records, read from and written to JSON.

The schema (one object per entry; frames are keys, as strings in JSON;
points ``(y, x)`` and boxes ``(y0, x0, y1, x1)`` in pixels of the original
image, napari order)::

    {"objects": [
        {"id": 1, "name": "cell A",
         "frames": {"0": {"points": [[120, 84], [131, 90]], "labels": [1, 0]},
                    "5": {"box": [100, 60, 150, 110]}}}
    ]}

``name`` is optional; on a frame, ``labels`` (1 positive, 0 negative) may be
left out when every point is positive; a frame with a ``box`` and points
applies the box first and the clicks refine it, as in the widget. The batch
runner's prompts file holds one such document per stack; session files use
the same records.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class FrameRecord:
    """One object's prompts on one frame; ``mask`` (``Y x X`` bool) only in
    session files, where it replaces points and box."""

    points: tuple[tuple[float, float], ...] = ()
    labels: tuple[int, ...] = ()
    box: tuple[float, float, float, float] | None = None
    mask: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ObjectRecord:
    id: int
    name: str | None = None
    frames: dict[int, FrameRecord] = field(default_factory=dict)


def parse_objects(doc: Any, *, where: str, allow_empty_frames: bool = False) -> list[ObjectRecord]:
    """Validate a prompts document (``{"objects": [...]}``) into records.

    ``where`` names the document in errors (a file, a key in it), which say
    which entry is wrong and what is expected. ``allow_empty_frames``: a
    frame may have neither points nor box (session files give it a mask).
    """
    if not isinstance(doc, dict) or "objects" not in doc:
        raise ValueError(f"{where}: expected an object with an 'objects' list")
    items = doc["objects"]
    if not isinstance(items, list) or not items:
        raise ValueError(f"{where}: 'objects' must be a non-empty list")
    records, seen = [], set()
    for i, item in enumerate(items):
        at = f"{where}: objects[{i}]"
        if not isinstance(item, dict):
            raise ValueError(f"{at}: expected an object with 'id' and 'frames'")
        unknown = set(item) - {"id", "name", "frames"}
        if unknown:
            raise ValueError(f"{at}: unknown key(s) {sorted(unknown)}; expected 'id', 'name', 'frames'")
        obj_id = _integer(item.get("id"), f"{at}.id", minimum=1)
        if obj_id in seen:
            raise ValueError(f"{at}.id: object id {obj_id} appears twice")
        seen.add(obj_id)
        name = item.get("name")
        if name is not None and not isinstance(name, str):
            raise ValueError(f"{at}.name: expected a string, got {name!r}")
        frames = item.get("frames")
        if not isinstance(frames, dict) or not frames:
            raise ValueError(f"{at}.frames: expected a non-empty object mapping frame numbers to prompts")
        parsed = {}
        for key, value in frames.items():
            frame = _integer(_frame_key(key, f"{at}.frames"), f"{at}.frames[{key!r}]", minimum=0)
            parsed[frame] = _frame_record(value, f"{at}.frames[{key!r}]", allow_empty_frames)
        records.append(ObjectRecord(obj_id, name, dict(sorted(parsed.items()))))
    return records


def objects_to_json(records: list[ObjectRecord]) -> dict:
    """The JSON document of ``records`` (the inverse of :func:`parse_objects`)."""
    out = []
    for rec in records:
        frames = {}
        for frame, fr in rec.frames.items():
            entry: dict[str, Any] = {}
            if fr.box is not None:
                entry["box"] = list(fr.box)
            if fr.points:
                entry["points"] = [list(p) for p in fr.points]
                entry["labels"] = list(fr.labels)
            frames[str(frame)] = entry
        item: dict[str, Any] = {"id": rec.id}
        if rec.name is not None:
            item["name"] = rec.name
        item["frames"] = frames
        out.append(item)
    return {"objects": out}


def apply_objects(session, records: list[ObjectRecord]) -> None:
    """Give ``session`` the prompts of ``records`` (a mask, or a box first
    and then clicks)."""
    for rec in records:
        for frame, fr in rec.frames.items():
            if fr.mask is not None:
                session.add_mask(rec.id, frame, fr.mask)
            if fr.box is not None:
                session.add_box(rec.id, frame, fr.box)
            if fr.points:
                session.add_points(rec.id, frame, list(fr.points), list(fr.labels))


def _frame_key(key: Any, at: str) -> int:
    if isinstance(key, str) and key.strip().lstrip("-").isdigit():
        return int(key)
    if isinstance(key, int):
        return key
    raise ValueError(f"{at}: frame keys must be whole numbers, got {key!r}")


def _frame_record(value: Any, at: str, allow_empty: bool) -> FrameRecord:
    if not isinstance(value, dict):
        raise ValueError(f"{at}: expected an object with 'points' (+ 'labels') and/or 'box'")
    unknown = set(value) - {"points", "labels", "box"}
    if unknown:
        raise ValueError(f"{at}: unknown key(s) {sorted(unknown)}; expected 'points', 'labels', 'box'")
    points = value.get("points", [])
    if not isinstance(points, list) or not all(isinstance(p, list) and len(p) == 2 for p in points):
        raise ValueError(f"{at}.points: expected a list of [y, x] pairs, got {points!r}")
    pts = tuple((_finite(p[0], f"{at}.points"), _finite(p[1], f"{at}.points")) for p in points)
    if "labels" in value:
        labels = value["labels"]
        if not isinstance(labels, list) or len(labels) != len(pts):
            raise ValueError(f"{at}.labels: expected one label (1 or 0) per point ({len(pts)})")
        labs = tuple(_integer(v, f"{at}.labels", minimum=0) for v in labels)
        if any(v > 1 for v in labs):
            raise ValueError(f"{at}.labels: labels are 1 (positive) or 0 (negative), got {labels}")
    else:
        labs = (1,) * len(pts)
    box = value.get("box")
    if box is not None:
        if not isinstance(box, list) or len(box) != 4:
            raise ValueError(f"{at}.box: expected [y0, x0, y1, x1], got {box!r}")
        box = tuple(_finite(v, f"{at}.box") for v in box)
    if not pts and box is None and not allow_empty:
        raise ValueError(f"{at}: a frame needs points or a box")
    return FrameRecord(pts, labs, box)


def _finite(value: Any, at: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{at}: expected finite pixel coordinates, got {value!r}")
    return float(value)


def _integer(value: Any, at: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ValueError(f"{at}: expected a whole number >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{at}: expected a whole number >= {minimum}, got {value}")
    return int(value)
