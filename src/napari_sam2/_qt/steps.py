"""Widget steps that undo and redo everything, through the Labels layer.

Every widget action (a click, a box, a painted correction, a new, cleared
or deleted object, a propagation, a reset) is one entry of the Labels
layer's own undo history, so Ctrl-Z / Ctrl-Shift-Z there (or the widget's
Undo/Redo buttons, which call ``layer.undo()``/``layer.redo()``) revert the
labels and the widget's prompt state together.

An entry holds the step's pixel changes and one *marker* atom: napari's
plain history atom ``(indices, old values, new values)`` with empty indices,
whose value objects are array-likes. When napari replays the entry it
assigns ``data[indices] = values``; numpy converts the value with
``__array__`` (an empty array: no pixel changes), which tells this history
that the step was undone or redone. The widget then puts back the prompt
state (:class:`PromptState`: objects, points, boxes, painted masks, the
lineage) the step started from or ended with.
"""

from __future__ import annotations

import itertools
from typing import Callable, NamedTuple

import numpy as np

from ..layers import OBJECT, POSITIVE


class PaintedMask:
    """An object's mask prompt on one frame (``Y x X`` bool), immutable;
    equal to another when the pixels are."""

    __slots__ = ("array",)

    def __init__(self, mask) -> None:
        array = np.array(mask, dtype=bool, copy=True)
        array.flags.writeable = False
        self.array = array

    def __eq__(self, other) -> bool:
        return isinstance(other, PaintedMask) and (
            other.array is self.array or np.array_equal(other.array, self.array)
        )

    def __hash__(self) -> int:
        return hash((self.array.shape, int(self.array.sum())))

    def __repr__(self) -> str:
        return f"PaintedMask({self.array.shape}, {int(self.array.sum())} px)"


class PromptState(NamedTuple):
    """What the widget restores on undo/redo (the labels are napari's)."""

    objects: tuple[int, ...]
    current: int | None
    points: np.ndarray  # N x ndim
    point_objects: np.ndarray  # N
    point_positive: np.ndarray  # N
    boxes: tuple  # M arrays of vertices (k x ndim)
    box_types: tuple  # M shape types
    box_objects: np.ndarray  # M
    masks: tuple  # ((obj, frame, PaintedMask), ...) sorted by (obj, frame)
    choices: tuple = ()  # ((obj, frame, candidate index), ...) sorted
    lineage: object = None  # the engine LineageState wanted (mothers, track limits); None: none

    def same(self, other: "PromptState | None") -> bool:
        if other is None:
            return False
        return (  # the selected object alone does not make a step
            self.objects == other.objects
            and _equal(self.points, other.points)
            and _equal(self.point_objects, other.point_objects)
            and _equal(self.point_positive, other.point_positive)
            and len(self.boxes) == len(other.boxes)
            and all(_equal(a, b) for a, b in zip(self.boxes, other.boxes))
            and self.box_types == other.box_types
            and _equal(self.box_objects, other.box_objects)
            and self.masks == other.masks
            and self.choices == other.choices
            and _lineage(self.lineage) == _lineage(other.lineage)
        )

    def mask_dict(self) -> dict:
        return {(obj, frame): mask for obj, frame, mask in self.masks}

    def choice_dict(self) -> dict:
        return {(obj, frame): k for obj, frame, k in self.choices}


def _lineage(value) -> tuple:
    return tuple(value) if value is not None else ({}, {}, {})


def _equal(a, b) -> bool:
    return np.shape(a) == np.shape(b) and np.array_equal(a, b)


def snapshot(objects, current, points, shapes, masks: dict, choices: dict | None = None,
             lineage=None) -> PromptState:
    """The prompt state of the widget's layers (``points``/``shapes`` may be
    None) and the lineage wanted (a ``LineageState``, kept as given)."""
    if points is not None and len(points.data):
        pdata = np.array(points.data, dtype=float, copy=True)
        pobj = points.features[OBJECT].to_numpy(dtype=np.int64).copy()
        ppos = points.features[POSITIVE].to_numpy(dtype=bool).copy()
    else:
        ndim = points.ndim if points is not None else 2
        pdata, pobj, ppos = np.zeros((0, ndim)), np.zeros(0, np.int64), np.zeros(0, bool)
    if shapes is not None and shapes.nshapes:
        boxes = tuple(np.array(d, dtype=float, copy=True) for d in shapes.data)
        types = tuple(str(t) for t in shapes.shape_type)
        bobj = shapes.features[OBJECT].to_numpy(dtype=np.int64).copy()
    else:
        boxes, types, bobj = (), (), np.zeros(0, np.int64)
    return PromptState(
        objects=tuple(int(o) for o in objects),
        current=None if current is None else int(current),
        points=pdata,
        point_objects=pobj,
        point_positive=ppos,
        boxes=boxes,
        box_types=types,
        box_objects=bobj,
        masks=tuple(sorted(((int(o), int(f), m) for (o, f), m in masks.items()), key=lambda t: t[:2])),
        choices=tuple(sorted((int(o), int(f), int(k)) for (o, f), k in (choices or {}).items())),
        lineage=lineage,
    )


def write_prompt_layers(state: PromptState, points, shapes) -> None:
    """Put ``state``'s points and boxes into the layers (the caller keeps
    the layers' data events from counting as user edits)."""
    if points is not None:
        points.selected_data = set()
        points.data = state.points.reshape(-1, points.ndim) if len(state.points) else np.zeros((0, points.ndim))
        features = points.features
        features[OBJECT] = state.point_objects
        features[POSITIVE] = state.point_positive
        points.features = features
    if shapes is not None:
        if shapes.nshapes:
            shapes.selected_data = set(range(shapes.nshapes))
            shapes.remove_selected()  # (setting data to [] keeps the feature rows)
        if state.boxes:
            shapes.add(list(state.boxes), shape_type=list(state.box_types))
            features = shapes.features
            features[OBJECT] = state.box_objects
            shapes.features = features


class _Replay:
    """An array-like that reports when napari replays the atom holding it."""

    __slots__ = ("_call", "_dtype")

    def __init__(self, call: Callable[[], None], dtype) -> None:
        self._call, self._dtype = call, dtype

    def __array__(self, dtype=None, copy=None):
        self._call()
        return np.zeros(0, dtype=dtype if dtype is not None else self._dtype)


class _Step(NamedTuple):
    before: PromptState
    after: PromptState


class StepHistory:
    """Steps of the widget recorded in a Labels layer's undo history.

    ``restore(state, undone)`` is called (in the main thread, while napari
    replays the entry) with the state to go back to on undo (``undone``
    True), or forward to on redo.
    ``state`` is the prompt state as of the last step (``None`` before any).
    Listeners (:meth:`add_listener`) hear of every new step, whatever
    action made it.
    """

    def __init__(self, *, restore: Callable[[PromptState, bool], None]) -> None:
        self._restore = restore
        self._steps: dict[int, _Step] = {}
        self._done: set[int] = set()
        self._ids = itertools.count(1)
        self._listeners: list[Callable[[], None]] = []
        self.state: PromptState | None = None

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after each new step (not on undo or redo). It
        runs while the step is being recorded: defer any real work (e.g.
        with ``QTimer.singleShot(0, ...)``). Adding it again changes nothing."""
        if callback not in self._listeners:
            self._listeners.append(callback)

    def _recorded(self) -> None:
        for callback in list(self._listeners):
            callback()

    def marker(self, before: PromptState, after: PromptState, *, ndim: int, dtype) -> tuple:
        """A new step's marker atom (empty indices into ``ndim`` axes)."""
        step = next(self._ids)
        self._steps[step] = _Step(before, after)
        self._done.add(step)
        self.state = after
        self._recorded()
        indices = tuple(np.zeros(0, dtype=np.intp) for _ in range(ndim))
        return (
            indices,
            _Replay(lambda: self._undo(step), dtype),
            _Replay(lambda: self._redo(step), dtype),
        )

    def record(self, layer, before: PromptState, after: PromptState) -> None:
        """A step that changes no pixels, as its own entry of ``layer``'s history."""
        atom = self.marker(before, after, ndim=layer.ndim, dtype=layer.data.dtype)
        with layer.block_history():
            layer._save_history(atom)  # napari's one way to add an atom to the history

    def reset(self, state: PromptState | None) -> None:
        """Start from ``state`` (a new Labels layer or image: old steps stay
        in their layer's history but no longer apply)."""
        self._steps.clear()
        self._done.clear()
        self.state = state

    def _undo(self, step: int) -> None:
        if step in self._done and step in self._steps:
            self._done.discard(step)
            self.state = self._steps[step].before
            self._restore(self.state, True)

    def _redo(self, step: int) -> None:
        if step not in self._done and step in self._steps:
            self._done.add(step)
            self.state = self._steps[step].after
            self._restore(self.state, False)
