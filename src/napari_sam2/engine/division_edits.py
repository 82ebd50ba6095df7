"""Divisions made and taken back by hand or by the division watcher:
:func:`mark_division` ends a mother's track and starts her daughters,
:func:`undo_division` takes that back, :func:`link_objects` makes one
object another's mother and :func:`restore_lineage` puts a saved lineage
back (limits first, then the mothers)."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Sequence

import numpy as np

from .lineage import LineageState, label_presence, linked_state
from .prompts import check_frame, check_object_id

if TYPE_CHECKING:  # pragma: no cover
    from .session import StackSession

__all__ = ["DivisionEdit", "mark_division", "undo_division", "link_objects", "restore_lineage"]


class DivisionEdit(NamedTuple):
    """What :func:`mark_division` did: the mother, the division frame, the
    daughters' ids, and the lineage before (:func:`undo_division` takes it back)."""

    mother: int
    frame: int
    daughters: tuple[int, ...]
    before: LineageState


def mark_division(session: "StackSession", mother: int, frame: int, daughters: Sequence, *,
                  ids: Sequence[int] | None = None) -> DivisionEdit:
    """``mother`` divides on ``frame``: her track ends on ``frame - 1`` (her
    pixels from ``frame`` on are cleared) and each of ``daughters`` (two or
    more; a ``Y x X`` mask, or ``N x 2`` ``(y, x)`` positive clicks) becomes a
    new object prompted on ``frame``, with ``mother`` as its mother, tracked
    from ``frame`` on. ``ids``: the daughters' ids (default: the next free
    ones). The frame's labels are written; later frames are out of date
    until the next propagation. On an error nothing is changed."""
    mother = check_object_id(mother)
    frame = check_frame(frame, session.num_frames)
    if frame == 0:
        raise ValueError("a division needs a frame before it for the mother: frame must be >= 1")
    daughters = list(daughters)
    if len(daughters) < 2:
        raise ValueError(f"a division gives two (or more) daughters, got {len(daughters)}")
    presence = label_presence(session.labels)
    known = set(session.object_ids) | set(presence) | session.lineage.ids()
    if mother not in known:
        raise KeyError(f"mother {mother} is not an object of the session; known objects: {sorted(known)}")
    if ids is None:
        top = max(known, default=0)
        ids = list(range(top + 1, top + 1 + len(daughters)))
    ids = [check_object_id(i) for i in ids]
    if len(ids) != len(daughters) or len(set(ids)) != len(ids) or set(ids) & known:
        raise ValueError(f"ids must be {len(daughters)} new, distinct object ids, got {list(ids)} "
                         f"(known objects: {sorted(known)})")
    prompts = [_daughter_prompt(d, (session.height, session.width), k) for k, d in enumerate(daughters)]
    before = session.lineage_state()
    added: list[int] = []
    try:
        session.limit_track(mother, last=frame - 1)
        for obj_id, (kind, value) in zip(ids, prompts):
            added.append(obj_id)
            if kind == "mask":
                session.add_mask(obj_id, frame, value)
            else:
                session.add_points(obj_id, frame, value, np.ones(len(value), dtype=np.int64))
            session.limit_track(obj_id, first=frame)
            session.lineage.link(obj_id, mother, known=known | set(added))
        session.segment_frame(frame)
    except BaseException:
        for obj_id in added:
            if obj_id in session.object_ids:
                session.remove_object(obj_id, clear_labels=True)
        session.restore_lineage(before)
        raise
    return DivisionEdit(mother, frame, tuple(ids), before)


def undo_division(session: "StackSession", edit: DivisionEdit) -> None:
    """Take back :func:`mark_division`: the daughters go (with their pixels)
    and the mother's track is no longer limited; her frames from the
    division on are out of date until the next propagation."""
    for obj_id in edit.daughters:
        if obj_id in session.object_ids:
            session.remove_object(obj_id, clear_labels=True)
    session.restore_lineage(edit.before)


def restore_lineage(session: "StackSession", state: LineageState) -> None:
    """``StackSession.restore_lineage``: limits first, then the mothers."""
    for obj_id in sorted(session.lineage.ids() | set(state.first) | set(state.last)):
        wanted = (state.first.get(obj_id), state.last.get(obj_id))
        if session.lineage.limits(obj_id) != wanted:
            session.limit_track(obj_id, first=wanted[0], last=wanted[1])
    known = (set(session.object_ids) | set(label_presence(session.labels)) | set(state.mothers)
             | set(state.mothers.values()))
    session.lineage.restore(state.mothers, known=known)


def link_objects(session: "StackSession", daughter: int, mother: int) -> LineageState:
    """Make ``mother`` the mother of ``daughter`` by the rule of
    :func:`~napari_sam2.engine.lineage.linked_state` (the mother ends before
    the daughter begins; their tracks are limited so). Nothing changes when
    it fails. Returns the lineage before."""
    daughter, mother = check_object_id(daughter), check_object_id(mother)
    presence = label_presence(session.labels)
    known = set(session.object_ids) | set(presence) | session.lineage.ids()

    def frames(obj_id: int) -> list[int]:
        prompted = session.prompted_frames(obj_id) if obj_id in session.object_ids else []
        return sorted(set(presence.get(obj_id, [])) | set(prompted))

    before = session.lineage_state()
    wanted = linked_state(before, daughter, mother, known=known, frames_of=frames)
    try:
        session.restore_lineage(wanted)
    except BaseException:
        session.restore_lineage(before)
        raise
    return before


def _daughter_prompt(value, size: tuple[int, int], k: int):
    arr = np.asarray(value)
    if arr.shape == tuple(size) and arr.ndim == 2 and size != (1, 2):
        return "mask", arr
    if arr.ndim == 1 and arr.shape == (2,):
        arr = arr[None]
    if arr.ndim == 2 and arr.shape[1] == 2 and len(arr):
        return "points", arr.astype(np.float64)
    raise ValueError(f"daughter {k}: give a {size[0]} x {size[1]} mask or N x 2 (y, x) clicks, "
                     f"got an array of shape {arr.shape}")

