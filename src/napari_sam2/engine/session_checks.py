"""Argument checks of :class:`~napari_sam2.engine.StackSession`'s methods.

Each takes the values it checks against (frame count, frame size, the
lineage ...) and returns the checked values, or raises an error that says
what to give instead.
"""

from __future__ import annotations

import numpy as np

from ..model import SAM2Model
from .labels import check_id_fits
from .lineage import Lineage
from .prompts import check_frame, check_object_id, check_points
from .session_options import DIRECTIONS, SessionOptions

__all__ = ["check_click_sets", "check_label_frame", "check_session_args", "check_span", "check_target",
           "check_trackable"]


def check_session_args(model, options) -> None:
    """The constructor's ``model`` and ``options`` are of the right types."""
    if not isinstance(model, SAM2Model):
        raise TypeError(
            f"model must be a SAM 2 network from napari_sam2.load_model, got {type(model).__name__}"
        )
    if not isinstance(options, SessionOptions):
        raise TypeError(
            f"options must be a SessionOptions (e.g. SessionOptions(history_mb=128)), "
            f"got {type(options).__name__}"
        )


def check_target(obj_id, frame, *, num_frames: int, dtype, lineage: Lineage) -> tuple[int, int]:
    """``(obj_id, frame)`` checked for a new prompt: the id fits the labels'
    ``dtype`` and ``frame`` lies inside the object's track limits."""
    obj_id = check_object_id(obj_id)
    frame = check_frame(frame, num_frames)
    check_id_fits(obj_id, dtype)
    if not lineage.tracks(obj_id, frame):
        first, last = lineage.limits(obj_id)
        raise ValueError(
            f"object {obj_id}'s track is limited to frames {first if first is not None else 0}.."
            f"{last if last is not None else num_frames - 1} (a division); frame {frame} is outside: "
            "prompt a daughter there, or lift the limit (limit_track / unlink)"
        )
    return obj_id, frame


def check_span(direction: str, start, stop, num_frames: int) -> tuple[int, int]:
    """A propagation's ``direction`` and its span ``start..stop`` (None: the
    stack's ends) as ``(lo, hi)``."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    lo = 0 if start is None else check_frame(start, num_frames)
    hi = num_frames - 1 if stop is None else check_frame(stop, num_frames)
    if lo > hi:
        raise ValueError(f"start ({lo}) must not be after stop ({hi})")
    return lo, hi


def check_trackable(objects: dict, *, since_call: bool = False) -> None:
    """There are objects (id -> state with ``prompts``) and each has prompts."""
    later = " (the session changed after propagate() was called)" if since_call else ""
    if not objects:
        raise ValueError(f"no objects to track{later}: add points, a box or a mask first")
    empty = [i for i, s in objects.items() if not s.prompts]
    if empty:
        raise ValueError(
            f"object(s) {empty} have no prompts{later}; add a point, box or mask, or remove them"
        )


def check_label_frame(source, size: tuple[int, int]) -> None:
    """``source`` is one label frame of ``size`` ``(Y, X)``."""
    if tuple(source.shape) != size:
        raise ValueError(
            f"labels has shape {tuple(source.shape)} but frames are {size[0]} x {size[1]}; "
            "give one label frame"
        )


def check_click_sets(clicks, size: tuple[int, int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """``clicks``, one or more ``(points, labels)`` sets with the same number
    of points each, checked as :func:`check_points` does."""
    checked = [check_points(p, l, size) for p, l in clicks]
    if not checked or len({len(p) for p, _ in checked}) != 1:
        raise ValueError("clicks must be one or more (points, labels) sets with the same number of points each")
    return checked
