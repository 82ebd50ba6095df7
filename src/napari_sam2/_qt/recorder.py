"""The widget's undo steps: pixel changes and prompt states, together.

A part the widget holds (``widget.recorder``). It owns the two histories:
:class:`~napari_sam2._qt.history.LabelsHistory` (the pixels the engine
wrote for the step being collected) and
:class:`~napari_sam2._qt.steps.StepHistory` (the prompt state each step
starts from and ends with). Callers hand it frames as they are written and
the prompt state a step ends with; :meth:`commit` makes them one entry of
the Labels layer's undo history. Undo and redo call ``restore(state,
undone)``, given to the constructor.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..layers import layer_indices
from .history import LabelsHistory
from .steps import PromptState, StepHistory


class Recorder:
    """Collects the step being done and records it in the Labels layer."""

    def __init__(self, *, restore: Callable[[PromptState, bool], None]) -> None:
        self._pixels = LabelsHistory()
        self._steps = StepHistory(restore=restore)
        self._committing = False

    @property
    def committing(self) -> bool:
        """True while a step is being written into the Labels layer (its
        paint events are the recorder's own, not the user's)."""
        return self._committing

    @property
    def state(self) -> PromptState | None:
        """The prompt state as of the last step (None before any)."""
        return self._steps.state

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after each new step, whatever action records
        it (not on undo or redo); it runs while the step is being recorded,
        so real work belongs in a deferred call."""
        self._steps.add_listener(callback)

    def reset(self, state: PromptState | None) -> None:
        """Start again from ``state`` (a new image or Labels layer; pixels
        collected for a step still running go to that step's layer)."""
        self._steps.reset(state)

    def add_frame(self, frame: int, previous: np.ndarray, labels: np.ndarray) -> None:
        """A frame written for the step being collected (``Y x X`` before and after)."""
        self._pixels.add_frame(frame, previous, labels)

    def add_pixels(self, frame: int, ys, xs, old, new, *, width: int) -> None:
        self._pixels.add_pixels(frame, ys, xs, old, new, width=width)

    def record(self, layer, after: PromptState) -> None:
        """A step without pixel changes (new object, reset, ...), if the
        prompt state changed since the last step."""
        before = self._steps.state
        if layer is None or after.same(before):
            return
        self._steps.record(layer, before if before is not None else after, after)

    def commit(self, stack, after: PromptState, *, with_state: bool = True) -> bool:
        """Record the collected changes of ``stack.labels`` and the prompt
        state ``after`` they go with as one undo step. ``with_state`` False:
        pixels only (the layer is no longer the widget's). Returns whether a
        step was recorded."""
        axis, index, ndim = stack.axis, dict(stack.index), stack.labels.ndim

        def to_indices(frame, ys, xs):
            return layer_indices(frame, ys, xs, axis=axis, index=index, ndim=ndim)

        marker = self._marker(stack.labels, after) if with_state else None
        self._committing = True
        try:
            return self._pixels.commit(stack.labels, to_indices, key=(stack.axis, stack.index), marker=marker)
        finally:
            self._committing = False

    def paint_atom(self, layer, after: PromptState) -> tuple:
        """The marker atom that makes a user's paint event in ``layer`` the
        step to ``after`` (appended to the event's history atoms)."""
        before = self._steps.state
        return self._steps.marker(before if before is not None else after, after, ndim=layer.ndim,
                                  dtype=layer.data.dtype)

    def undone_frames(self, layer, key) -> list[int]:
        """Frames whose latest recorded write is no longer in ``layer``."""
        return self._pixels.undone_frames(layer, key)

    def _marker(self, layer, after: PromptState):
        """``marker(pixels_changed)`` for ``LabelsHistory.commit``."""
        def make(pixels: bool):
            before = self._steps.state
            if not pixels and after.same(before):
                return None
            return self._steps.marker(
                before if before is not None else after, after, ndim=layer.ndim, dtype=layer.data.dtype
            )

        return make
