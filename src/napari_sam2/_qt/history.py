"""Recording engine writes as Labels-layer undo steps.

The engine writes frames straight into the Labels layer's array (a view of
it); each write comes with the frame's previous labels. The changed pixels
of a step (a propagation, a click, a clear) are collected per frame, a frame
written twice keeping its first old and last new values. When the step is
over they are replayed through napari's public ``Labels.block_history`` and
``Labels.data_setitem``: put back to their old values and set again, so the
whole step becomes one entry of the layer's undo history and one Ctrl-Z
(``layer.undo()``) reverts it. Pixels changed since the engine wrote them
(painted while a propagation ran) are left out and never overwritten.

A few pixels of each frame's latest write are remembered, so that frames
whose labels were later undone (or repainted) can be found and computed
again by the next propagation (``StackSession.mark_stale``).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..layers import changed_pixels

PROBE_PIXELS = 64

# (frame, ys, xs) -> fancy indices into the Labels layer's data
ToIndices = Callable[[int, np.ndarray, np.ndarray], tuple]
# pixels changed? -> one more history atom for the step, or None
Marker = Callable[[bool], "tuple | None"]


class _Pixels:
    """Changed pixels of one frame as flat indices ``y * width + x``."""

    __slots__ = ("flat", "old", "new", "width")

    def __init__(self, ys, xs, old, new, width: int) -> None:
        self.flat = ys.astype(np.int64) * width + xs
        self.old, self.new, self.width = old, new, width

    def then(self, later: "_Pixels") -> "_Pixels":
        """These changes followed by ``later`` ones, as one."""
        both = np.concatenate([self.flat, later.flat])
        flat, where = np.unique(both, return_inverse=True)
        first, second = where[: len(self.flat)], where[len(self.flat):]
        old = np.empty(len(flat), dtype=self.old.dtype)
        new = np.empty(len(flat), dtype=self.new.dtype)
        old[second] = later.old
        old[first] = self.old  # the earliest old value wins
        new[first] = self.new
        new[second] = later.new  # the latest new value wins
        keep = old != new
        merged = _Pixels.__new__(_Pixels)
        merged.flat, merged.old, merged.new, merged.width = flat[keep], old[keep], new[keep], self.width
        return merged

    def yx(self):
        return self.flat // self.width, self.flat % self.width


class LabelsHistory:
    """Changes collected for the next undo step, and probes of what was written."""

    def __init__(self) -> None:
        self._frames: dict[int, _Pixels] = {}
        self._probes: dict = {}  # (layer id, key) -> {frame: (indices, values)}

    @property
    def pending(self) -> bool:
        return bool(self._frames)

    def add_frame(self, frame: int, previous: np.ndarray, labels: np.ndarray) -> None:
        """A frame written by the engine (``Y x X`` before and after)."""
        ys, xs, old, new = changed_pixels(previous, labels)
        self.add_pixels(frame, ys, xs, old, new, width=np.shape(previous)[1])

    def add_pixels(self, frame: int, ys, xs, old, new, *, width: int) -> None:
        if len(ys) == 0:
            return
        change = _Pixels(np.asarray(ys), np.asarray(xs), np.asarray(old), np.asarray(new), width)
        earlier = self._frames.get(int(frame))
        self._frames[int(frame)] = change if earlier is None else earlier.then(change)

    def discard(self) -> None:
        self._frames = {}

    def commit(self, layer, to_indices: ToIndices, key=None, marker: Marker | None = None) -> bool:
        """Make the collected changes one undo step of ``layer``; ``key`` names
        how frames are numbered. ``marker(pixels_changed)`` may add one more
        atom to the step (see ``steps.StepHistory``; None: no atom), which
        makes a step even without pixel changes. Returns whether a step was
        recorded."""
        frames, self._frames = self._frames, {}
        if layer is None or (not frames and marker is None):
            return False
        data = layer.data
        steps = []
        for frame, change in sorted(frames.items()):
            ys, xs = change.yx()
            indices = to_indices(frame, ys, xs)
            old, new = change.old, change.new
            unchanged = np.asarray(data[indices]) == new
            if not unchanged.all():  # repainted since the engine wrote it
                indices = tuple(i[unchanged] for i in indices)
                old, new = old[unchanged], new[unchanged]
            if len(new):
                steps.append((frame, indices, old, new))
        atom = marker(bool(steps)) if marker is not None else None
        if not steps and atom is None:
            return False
        for _frame, indices, old, _new in steps:
            data[indices] = old
        with layer.block_history():
            for _frame, indices, _old, new in steps:
                layer.data_setitem(indices, new, refresh=False)
            if atom is not None:
                layer._save_history(atom)  # napari's one way to add an atom to the step
        probes = self._probes.setdefault((id(layer), key), {})
        for frame, indices, _old, new in steps:
            pick = np.linspace(0, len(new) - 1, num=min(PROBE_PIXELS, len(new))).astype(np.intp)
            probes[frame] = (tuple(i[pick] for i in indices), new[pick])
        if steps:
            layer.refresh()
        return True

    def undone_frames(self, layer, key) -> list[int]:
        """Frames (numbered as in ``key``) whose latest recorded write is no
        longer in ``layer`` (undone or repainted); they are forgotten."""
        probes = self._probes.get((id(layer), key), {})
        data = layer.data
        gone = [f for f, (indices, values) in probes.items()
                if not np.array_equal(np.asarray(data[indices]), values)]
        for frame in gone:
            del probes[frame]
        return gone
