"""The lineage the widget wants, and how the engine is brought to it.

Nothing here touches Qt or a napari layer. The widget keeps the lineage it
wants (an engine :class:`~napari_sam2.engine.lineage.LineageState`: mother
links and track limits) with its prompt state, so that undo and redo bring
it back together with the objects, prompts and labels. Its edits (*Mark
division*, *Link to mother*, *Unlink*, deleting an object) are computed
here with the engine's own :class:`~napari_sam2.engine.lineage.Lineage`
rules, as ``StackSession.mark_division`` / ``link`` / ``unlink`` /
``remove_object`` make them; the next sync brings the engine there
(:func:`loosen_limits` before the prompt edits, :func:`apply_lineage`
after them).
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np

from ..engine.lineage import Lineage, LineageState, linked_state

EMPTY = LineageState({}, {}, {})


def as_state(state) -> LineageState:
    """A fresh copy of ``state`` (any 3-sequence of mappings), with int keys and values."""
    return LineageState(*({int(k): int(v) for k, v in table.items()} for table in state))


def as_lineage(state: LineageState) -> Lineage:
    """An engine :class:`Lineage` holding ``state`` (its links checked for cycles)."""
    return Lineage.from_state(state)


def divided(state: LineageState, mother: int, frame: int, daughters: Sequence[int]) -> LineageState:
    """``state`` after ``mother`` divides on ``frame`` into ``daughters``
    (new ids): her track ends on ``frame - 1``, theirs begin on ``frame``."""
    lineage = as_lineage(state)
    first, _last = lineage.limits(mother)
    if frame < 1:
        raise ValueError("a division needs a frame before it for the mother: go to frame 1 or later")
    if first is not None and first >= frame:
        raise ValueError(f"object {mother} begins on frame {first}: it cannot divide on frame {frame}")
    lineage.set_limits(mother, first, frame - 1)
    known = lineage.ids() | {mother, *daughters}
    for daughter in daughters:
        lineage.set_limits(daughter, frame, None)
        lineage.link(daughter, mother, known=known)
    return lineage.state()


def linked(state: LineageState, daughter: int, mother: int, *, known: Iterable[int],
           frames_of: Callable[[int], list[int]]) -> LineageState:
    """``state`` with ``mother`` as the mother of ``daughter``: the engine's
    rule (:func:`~napari_sam2.engine.lineage.linked_state`, as
    ``StackSession.link`` applies it)."""
    return linked_state(state, daughter, mother, known=known, frames_of=frames_of)


def unlinked(state: LineageState, daughter: int) -> LineageState:
    """``state`` without ``daughter``'s mother link (track limits stay)."""
    mothers = {d: m for d, m in state.mothers.items() if d != daughter}
    return as_state((mothers, state.first, state.last))


def removed(state: LineageState, obj: int) -> LineageState:
    """``state`` without ``obj`` (its daughters get its mother), as
    ``StackSession.remove_object`` leaves the engine's."""
    lineage = as_lineage(state)
    lineage.remove(int(obj))
    return lineage.state()


def _moved(now: LineageState, wanted: LineageState) -> list[int]:
    """Objects whose track limits differ between ``now`` and ``wanted``."""
    ids = set(now.first) | set(now.last) | set(wanted.first) | set(wanted.last)
    return sorted(o for o in ids
                  if (now.first.get(o), now.last.get(o)) != (wanted.first.get(o), wanted.last.get(o)))


def loosen_limits(session, wanted: LineageState) -> None:
    """Lift the session's track limits that differ from ``wanted`` (before
    the prompt edits of a sync, so that prompts the widget wants are never
    outside limits it is leaving). Lifting a limit clears no pixels."""
    for obj in _moved(session.lineage_state(), wanted):
        session.limit_track(obj)


def apply_lineage(session, wanted: LineageState) -> dict[int, np.ndarray]:
    """Make the session's lineage ``wanted`` (``StackSession.restore_lineage``:
    pixels outside the new track limits are cleared). Returns the frames
    whose labels changed, as they were before (``{frame: Y x X}``)."""
    moved = np.array(_moved(session.lineage_state(), wanted), dtype=np.int64)
    copies = {}
    if len(moved):
        for f in range(session.num_frames):
            frame = np.asarray(session.labels[f])
            if np.isin(frame, moved).any():
                copies[f] = np.array(frame, copy=True)
    session.restore_lineage(wanted)
    return {f: old for f, old in copies.items() if not np.array_equal(old, np.asarray(session.labels[f]))}
