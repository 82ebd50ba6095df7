"""Lineage: which object is the mother of which, and where each track may
run, kept consistent.

A :class:`Lineage` holds one link per daughter (its mother's id) and, per
object, the frames its track is limited to: a mother's track *ends* on the
frame before her division (``last``), a daughter's *begins* on it
(``first``). It refuses links that would make a cycle or point at an object
that is not known, and when an object is removed its daughters are linked
to its own mother (0 when it had none), so removing one object never
orphans the rest of a tree. It is bookkeeping only: the session enforces
the limits when it tracks (``StackSession.limit_track``) and first and
last frames of the records come from the tracked labels (see
:func:`lineage_records`).

:class:`LineageState` is the whole of it as plain values, for undo steps
and session files (:func:`state_to_json` / :func:`state_from_json`).
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping, NamedTuple

import numpy as np


class LineageRecord(NamedTuple):
    """One object of a lineage: its first and last frame (-1 when it is on
    no frame) and its mother's id (0 when none)."""

    id: int
    first_frame: int
    last_frame: int
    mother: int


class LineageState(NamedTuple):
    """A lineage as values: ``mothers`` ``{daughter: mother}``; ``first`` and
    ``last``: ``{object: frame}``, the limits of tracks that have one."""

    mothers: dict
    first: dict
    last: dict


class Lineage:
    """Mother links between object ids, and the frame limits of tracks."""

    def __init__(self) -> None:
        self._mother: dict[int, int] = {}
        self._first: dict[int, int] = {}
        self._last: dict[int, int] = {}

    # ---------------------------------------------------------------- links
    def mother(self, obj_id: int) -> int:
        return self._mother.get(obj_id, 0)

    def daughters(self, obj_id: int) -> list[int]:
        return sorted(d for d, m in self._mother.items() if m == obj_id)

    def links(self) -> dict[int, int]:
        """``{daughter: mother}`` (a copy)."""
        return dict(self._mother)

    def ids(self) -> set[int]:
        """Every id the lineage mentions (linked or limited)."""
        return set(self._mother) | set(self._mother.values()) | set(self._first) | set(self._last)

    def link(self, daughter: int, mother: int, *, known: Iterable[int]) -> None:
        """Make ``mother`` the mother of ``daughter`` (both in ``known``)."""
        known = set(known)
        for name, value in (("daughter", daughter), ("mother", mother)):
            if value not in known:
                raise KeyError(f"{name} {value} is not an object of the session; known objects: {sorted(known)}")
        if daughter == mother:
            raise ValueError(f"object {daughter} cannot be its own mother")
        m = mother
        while m:
            if m == daughter:
                raise ValueError(f"linking {daughter} to mother {mother} would make a cycle: "
                                 f"{mother} descends from {daughter}")
            m = self._mother.get(m, 0)
        self._mother[daughter] = mother

    def unlink(self, daughter: int) -> None:
        """``daughter`` has no mother any more."""
        self._mother.pop(daughter, None)

    def remove(self, obj_id: int) -> None:
        """Forget ``obj_id`` (its link and limits); its daughters get its
        mother (or none)."""
        grand = self._mother.pop(obj_id, 0)
        self._first.pop(obj_id, None)
        self._last.pop(obj_id, None)
        for d in [d for d, m in self._mother.items() if m == obj_id]:
            if grand:
                self._mother[d] = grand
            else:
                del self._mother[d]

    def clear(self) -> None:
        self._mother.clear()
        self._first.clear()
        self._last.clear()

    def restore(self, links: dict[int, int], *, known: Iterable[int]) -> None:
        """Replace every link by ``links`` (``{daughter: mother}``), checked;
        on an error no link is left."""
        known = set(known)
        self._mother.clear()
        try:
            for daughter, mother in sorted(links.items()):
                if mother:
                    self.link(int(daughter), int(mother), known=known)
        except (KeyError, ValueError):
            self._mother.clear()
            raise

    # ---------------------------------------------------------------- limits
    def limits(self, obj_id: int) -> tuple[int | None, int | None]:
        """``(first, last)`` frames ``obj_id``'s track is limited to (None: no limit)."""
        return self._first.get(obj_id), self._last.get(obj_id)

    def set_limits(self, obj_id: int, first: int | None, last: int | None) -> None:
        """Record the limits; ``StackSession.limit_track`` calls this and
        drops what the object had outside them (call that instead)."""
        if first is not None and last is not None and first > last:
            raise ValueError(f"object {obj_id}: first frame {first} is after last frame {last}")
        for table, value in ((self._first, first), (self._last, last)):
            if value is None:
                table.pop(obj_id, None)
            else:
                table[obj_id] = int(value)

    def tracks(self, obj_id: int, frame: int) -> bool:
        """Whether ``obj_id`` may be tracked on ``frame``."""
        first, last = self._first.get(obj_id), self._last.get(obj_id)
        return (first is None or frame >= first) and (last is None or frame <= last)

    def allowed(self, obj_id: int, num_frames: int) -> np.ndarray:
        """``(num_frames,)`` bool: the frames ``obj_id`` may be tracked on."""
        out = np.ones(num_frames, dtype=bool)
        first, last = self.limits(obj_id)
        if first is not None:
            out[: max(first, 0)] = False
        if last is not None:
            out[max(last + 1, 0):] = False
        return out

    # ---------------------------------------------------------------- state
    def state(self) -> LineageState:
        return LineageState(dict(self._mother), dict(self._first), dict(self._last))

    @classmethod
    def from_state(cls, state: LineageState) -> "Lineage":
        """A lineage holding ``state`` (its links checked for cycles)."""
        lineage = cls()
        for obj in sorted(set(state.first) | set(state.last)):
            lineage.set_limits(obj, state.first.get(obj), state.last.get(obj))
        lineage.restore(state.mothers, known=set(state.mothers) | set(state.mothers.values()))
        return lineage


def linked_state(state: LineageState, daughter: int, mother: int, *, known: Iterable[int],
                 frames_of: Callable[[int], list[int]]) -> LineageState:
    """``state`` with ``mother`` as the mother of ``daughter`` (both in
    ``known``; no cycle). ``frames_of(id)``: the frames where an object has
    pixels or prompts. The mother must end before the daughter begins; the
    daughter's track is limited to begin on her first frame (her end limit
    stays) and the mother's to end on the frame before it, so that tracking
    again keeps it so. The rule of ``StackSession.link`` and of the widget's
    *Link to mother*."""
    lineage = Lineage.from_state(state)
    lineage.link(daughter, mother, known=known)  # ids and cycles
    d_frames, m_frames = sorted(frames_of(daughter)), sorted(frames_of(mother))
    if d_frames and m_frames and m_frames[-1] >= d_frames[0]:
        raise ValueError(
            f"mother {mother} is on frames up to {m_frames[-1]} but daughter {daughter} begins on frame "
            f"{d_frames[0]}: a mother must end before her daughters begin (Mark division ends her track)")
    if d_frames:
        lineage.set_limits(daughter, d_frames[0], lineage.limits(daughter)[1])
        lineage.set_limits(mother, lineage.limits(mother)[0], d_frames[0] - 1)
    return lineage.state()


def label_presence(labels) -> dict[int, list[int]]:
    """Label -> sorted frames holding it, reading a ``T x Y x X`` stack one
    frame at a time."""
    frames: dict[int, list[int]] = {}
    for t in range(labels.shape[0]):
        frame = np.asarray(labels[t])
        if frame.size and frame.min() < 0:
            raise ValueError(f"labels must be >= 0; frame {t} holds {int(frame.min())}")
        for value in np.unique(frame):
            if value:
                frames.setdefault(int(value), []).append(t)
    return frames


def lineage_records(ids: Iterable[int], frames_of, lineage: Lineage) -> list[LineageRecord]:
    """Per id (in order): first and last frame from ``frames_of(id)`` (the
    frames where the object has pixels) and its mother."""
    out = []
    for obj_id in ids:
        frames = list(frames_of(obj_id))
        first, last = (min(frames), max(frames)) if frames else (-1, -1)
        out.append(LineageRecord(int(obj_id), int(first), int(last), lineage.mother(obj_id)))
    return out


# ------------------------------------------------------------------ files
def state_to_json(state: LineageState) -> dict:
    """The lineage as a session file holds it: ``{"mothers": {id: mother},
    "first": {id: frame}, "last": {id: frame}}`` (ids as strings)."""
    return {name: {str(k): int(v) for k, v in sorted(getattr(state, name).items())}
            for name in LineageState._fields}


def state_from_json(value, *, where: str) -> LineageState:
    """Read :func:`state_to_json`'s document; a file without lineage (an
    older session: missing, ``None`` or an empty list) has none."""
    if value is None or value == []:
        return LineageState({}, {}, {})
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: lineage must be an object with mothers, first and last, got {type(value).__name__}")
    out = []
    for name in LineageState._fields:
        table = value.get(name, {})
        if not isinstance(table, Mapping):
            raise ValueError(f"{where}: lineage {name} must map object ids to numbers")
        try:
            out.append({int(k): int(v) for k, v in table.items()})
        except (TypeError, ValueError):
            raise ValueError(f"{where}: lineage {name} must map object ids to whole numbers, got {dict(table)!r}") from None
    return LineageState(*out)
