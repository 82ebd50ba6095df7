"""Lineage: which object is the mother of which, kept consistent.

A :class:`Lineage` holds one link per daughter (its mother's id). It
refuses links that would make a cycle or point at an object that is not
known, and when an object is removed its daughters are linked to its own
mother (0 when it had none), so removing one object never orphans the rest
of a tree. It owns only the links; first and last frames come from the
tracked labels (see :func:`lineage_records`).
"""

from __future__ import annotations

from typing import Iterable, NamedTuple


class LineageRecord(NamedTuple):
    """One object of a lineage: its first and last frame (-1 when it is on
    no frame) and its mother's id (0 when none)."""

    id: int
    first_frame: int
    last_frame: int
    mother: int


class Lineage:
    """Mother links between object ids."""

    def __init__(self) -> None:
        self._mother: dict[int, int] = {}

    def mother(self, obj_id: int) -> int:
        return self._mother.get(obj_id, 0)

    def daughters(self, obj_id: int) -> list[int]:
        return sorted(d for d, m in self._mother.items() if m == obj_id)

    def links(self) -> dict[int, int]:
        """``{daughter: mother}`` (a copy)."""
        return dict(self._mother)

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
        """Forget ``obj_id``; its daughters get its mother (or none)."""
        grand = self._mother.pop(obj_id, 0)
        for d in [d for d, m in self._mother.items() if m == obj_id]:
            if grand:
                self._mother[d] = grand
            else:
                del self._mother[d]

    def clear(self) -> None:
        self._mother.clear()

    def restore(self, links: dict[int, int], *, known: Iterable[int]) -> None:
        """Replace every link by ``links`` (``{daughter: mother}``), checked."""
        known = set(known)
        self._mother.clear()
        try:
            for daughter, mother in sorted(links.items()):
                if mother:
                    self.link(int(daughter), int(mother), known=known)
        except (KeyError, ValueError):
            self._mother.clear()
            raise


def lineage_records(ids: Iterable[int], frames_of, lineage: Lineage) -> list[LineageRecord]:
    """Per id (in order): first and last frame from ``frames_of(id)`` (the
    frames where the object has pixels) and its mother."""
    out = []
    for obj_id in ids:
        frames = list(frames_of(obj_id))
        first, last = (min(frames), max(frames)) if frames else (-1, -1)
        out.append(LineageRecord(int(obj_id), int(first), int(last), lineage.mother(obj_id)))
    return out
