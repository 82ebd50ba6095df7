"""What *Segment all* and *Track all* hand to and from their workers.

Nothing here touches Qt or a napari layer. A propagation and a Track-all
run both yield :class:`Written` frames, so the widget records and shows
them the same way; Track all's frames come with their labels from before
the run (:class:`LabelsBefore`), since the engine writes a detection frame
before it is final.
"""

from __future__ import annotations

from typing import Iterator, NamedTuple

import numpy as np

# a frame kept as indices and values when fewer than this share of its pixels are labelled
SPARSE_SHARE = 0.25


class Written(NamedTuple):
    """A frame a run wrote: ``Y x X`` labels before and after, and the
    objects on it."""

    frame: int
    previous: np.ndarray
    labels: np.ndarray
    object_ids: tuple[int, ...]


class Run:
    """A long run in progress (propagate or Track all): its worker, what it
    started from, and what it wrote and found so far."""

    def __init__(self, kind: str, worker, stack, state, session, before=None) -> None:
        self.kind, self.worker, self.stack, self.state, self.session = kind, worker, stack, state, session
        self.before = before  # LabelsBefore of the frames Track all may write
        self.ids_before = set(session.object_ids)
        self.seen: set[int] = set()  # frames written ("both" passes the prompted frame twice)
        self.found: set[int] = set()  # label values on the frames written
        self.first_new = 0  # Track all: the lowest id of the objects it finds
        self.new_ids: set[int] = set()  # Track all: the objects it found
        self.lost: set[int] = set()  # Track all: objects of before the run it stopped tracking
        self.failed = False


class LabelsBefore:
    """Frames ``lo .. hi`` of a ``frames x Y x X`` label view as they were;
    a frame with few labelled pixels is kept as their indices and values."""

    def __init__(self, view, lo: int, hi: int) -> None:
        self.shape = tuple(view.shape[1:])
        self.dtype = view.dtype
        self._frames: dict[int, tuple] = {}
        for f in range(lo, hi + 1):
            frame = np.asarray(view[f])
            flat = np.flatnonzero(frame)
            if len(flat) < SPARSE_SHARE * frame.size:
                self._frames[f] = (flat, frame.reshape(-1)[flat].copy())
            else:
                self._frames[f] = (None, frame.copy())

    @property
    def frames(self) -> list[int]:
        return sorted(self._frames)

    def frame(self, f: int) -> np.ndarray:
        """Frame ``f`` as it was (a new ``Y x X`` array)."""
        flat, values = self._frames[f]
        if flat is None:
            return values.copy()
        out = np.zeros(self.shape, dtype=self.dtype)
        out.reshape(-1)[flat] = values
        return out


def automatic_defaults(height: int, width: int):
    """Segment all / Track all settings for frames of ``height x width``:
    ``AutomaticOptions`` with a 16 x 16 point grid up to 256 px a side (the
    samples, the demo model's input size; what the quality tests use) and
    the engine's 32 x 32 above; the rest as the engine's defaults."""
    from ..engine.automatic import AutomaticOptions

    return AutomaticOptions(points_per_side=16 if max(height, width) <= 256 else 32)


def propagated(results) -> Iterator[Written]:
    """A propagation's ``FrameResult``s as :class:`Written` frames."""
    try:
        for r in results:
            yield Written(r.frame, r.previous, r.labels, tuple(int(i) for i in r.object_ids))
    finally:
        results.close()


def tracked(results, before: LabelsBefore) -> Iterator[Written]:
    """``track_everything``'s ``(frame, labels)`` as :class:`Written` frames."""
    try:
        for frame, labels in results:
            ids = np.unique(labels)
            yield Written(int(frame), before.frame(frame), labels, tuple(int(i) for i in ids[ids != 0]))
    finally:
        results.close()


def new_objects(result, frame_labels: np.ndarray, *, first_id: int, overlap: float):
    """The objects of a segment-everything ``result`` that ``frame_labels``
    does not hold yet: each one whose pixels existing labels cover on less
    than ``overlap`` of them, cut to the free pixels, with ids from
    ``first_id`` on. Returns ``[(id, bool mask Y x X)]``."""
    taken = np.asarray(frame_labels) != 0
    found = []
    for obj in result.objects:
        y0, x0, y1, x1 = obj.bbox
        patch = result.labels[y0:y1, x0:x1] == obj.id
        if not patch.any() or taken[y0:y1, x0:x1][patch].mean() >= overlap:
            continue
        mask = np.zeros(taken.shape, dtype=bool)
        mask[y0:y1, x0:x1] = patch & ~taken[y0:y1, x0:x1]
        found.append((first_id + len(found), mask))
    return found
