"""napari layer data <-> engine prompts and labels: pure functions, no Qt.

Everything here works on plain arrays (and duck-typed layers for
:func:`session_for_layer`), so it runs in scripts, in the napari console and
in tests without a viewer.

Conventions
    Coordinates are the image layer's *data* coordinates: a point is a row of
    ``ndim`` numbers (``t, y, x`` or ``t, z, y, x``) as in a Points layer whose
    scale and translate match the image's. ``axis`` is the propagation axis
    (None for a single 2D image); ``index`` maps every other non-spatial axis
    to the position it is held at (``{1: z}`` when tracking along T of a
    ``T x Z x Y x X`` stack). The last two axes are Y and X. An RGB layer's
    colour axis is not counted: napari gives such a layer ``ndim = data.ndim - 1``.

Prompt layers carry two features: ``object`` (the label id the prompt
belongs to) and, for points, ``positive`` (True for a positive click).
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping, NamedTuple, Sequence

import numpy as np

__all__ = [
    "AxisChoice",
    "FramePrompt",
    "PromptEdit",
    "box_from_rectangle",
    "changed_pixels",
    "collect_prompts",
    "data_position",
    "fixed_index",
    "history_atom",
    "infer_axis",
    "labels_shape",
    "labels_view",
    "layer_indices",
    "next_object_id",
    "painted_values",
    "plan_prompt_edits",
    "points_to_prompts",
    "rectangles_to_boxes",
    "session_for_layer",
]

OBJECT, POSITIVE = "object", "positive"

_TIME = re.compile(r"^(t|time|frame|frames)$", re.IGNORECASE)
_DEPTH = re.compile(r"^(z|depth|plane|slice)$", re.IGNORECASE)


# ----------------------------------------------------------------- axes
class AxisChoice(NamedTuple):
    """Which axes a stack can be followed along.

    ``axis``: the default propagation axis (None for a single image);
    ``choices``: every non-spatial axis; ``names``: a display name for each
    choice (the layer's axis label, or ``"axis k"``).
    """

    axis: int | None
    choices: tuple[int, ...]
    names: tuple[str, ...]


def infer_axis(shape: Sequence[int], axis_labels: Sequence[str] | None = None) -> AxisChoice:
    """The propagation axis of a stack of ``shape`` (colour axis excluded).

    A 2D image has none; a 3D stack (TYX or ZYX) has one candidate, axis 0.
    With more axes the first labelled as time (``t``/``time``) is preferred,
    then the first labelled ``z``, then the first axis: the widget offers the
    choice.
    """
    ndim = len(shape)
    if ndim < 2:
        raise ValueError(f"an image needs at least 2 dimensions (Y, X), got shape {tuple(shape)}")
    choices = tuple(range(ndim - 2))
    labels = [str(a) for a in axis_labels] if axis_labels is not None else []
    if len(labels) != ndim:
        labels = [""] * ndim

    def name(a: int) -> str:
        text = labels[a].strip()
        if not text or text.lstrip("-").isdigit():
            return f"axis {a}"
        return text

    names = tuple(name(a) for a in choices)
    if not choices:
        return AxisChoice(None, (), ())
    default = next((a for a in choices if _TIME.match(labels[a].strip())), None)
    if default is None:
        default = next((a for a in choices if _DEPTH.match(labels[a].strip())), choices[0])
    return AxisChoice(default, choices, names)


def data_position(position: Sequence[float], shape: Sequence[int]) -> tuple[int, ...]:
    """A (float) data position rounded to the nearest voxel inside ``shape``."""
    pos = np.asarray(position, dtype=float).reshape(-1)[-len(shape):]
    if len(pos) < len(shape):
        pos = np.concatenate([np.zeros(len(shape) - len(pos)), pos])
    pos = np.nan_to_num(pos)
    return tuple(int(np.clip(np.round(p), 0, n - 1)) for p, n in zip(pos, shape))


def fixed_index(position: Sequence[float], shape: Sequence[int], axis: int | None) -> dict[int, int]:
    """``{axis: position}`` for the non-spatial axes other than ``axis``,
    taken from a data position (e.g. the viewer's current point)."""
    pos = data_position(position, shape)
    return {a: pos[a] for a in range(len(shape) - 2) if a != axis}


# ----------------------------------------------------------------- labels
def labels_shape(image_shape: Sequence[int], rgb: bool = False) -> tuple[int, ...]:
    """Shape of the Labels layer that matches an image (no colour axis)."""
    return tuple(int(n) for n in (image_shape[:-1] if rgb else image_shape))


def labels_view(labels: np.ndarray, axis: int | None, index: Mapping[int, int]) -> np.ndarray:
    """The ``(frames, Y, X)`` view of a Labels array that a session writes
    into: ``axis`` kept, the ``index`` axes held at their positions. It is a
    numpy view, so writing to it writes the layer's data; a 2D array becomes
    ``(1, Y, X)``."""
    if not isinstance(labels, np.ndarray):
        raise TypeError(
            "the Labels layer must hold a numpy array to be written frame by frame, got "
            f"{type(labels).__name__}"
        )
    key: list = [slice(None)] * labels.ndim
    for a, p in index.items():
        key[a] = int(p)
    view = labels[tuple(key)]
    if axis is None:
        view = view[np.newaxis]
    if view.ndim != 3:
        raise ValueError(
            f"labels of shape {labels.shape} with axis={axis} and index={dict(index)} do not "
            "give a (frames, Y, X) stack"
        )
    return view


def changed_pixels(previous: np.ndarray, labels: np.ndarray):
    """``(ys, xs, old values, new values)`` of the pixels that differ between
    two ``Y x X`` label frames."""
    previous, labels = np.asarray(previous), np.asarray(labels)
    ys, xs = np.nonzero(previous != labels)
    return ys, xs, previous[ys, xs], labels[ys, xs]


def _index_array(values, n: int) -> np.ndarray:
    """Indices in the smallest unsigned dtype that holds them (history atoms
    keep one index array per axis for every changed pixel)."""
    top = int(np.max(values)) if np.size(values) else 0
    dtype = np.uint16 if top < 2**16 else np.uint32 if top < 2**32 else np.intp
    return np.broadcast_to(np.asarray(values, dtype=dtype), (n,)).copy()


def layer_indices(frame: int, ys, xs, *, axis: int | None, index: Mapping[int, int], ndim: int) -> tuple:
    """Fancy indices into the Labels layer's ``ndim`` axes of pixels
    ``(ys, xs)`` of a session's ``frame``."""
    n = len(ys)
    out = [_index_array(frame if a == axis else index[a], n) for a in range(ndim - 2)]
    return (*out, _index_array(ys, n), _index_array(xs, n))


def history_atom(
    frame: int,
    previous: np.ndarray,
    labels: np.ndarray,
    *,
    axis: int | None,
    index: Mapping[int, int],
    ndim: int,
):
    """One Labels-layer undo atom ``(indices, old values, new values)`` for
    a frame that changed from ``previous`` to ``labels`` (both ``Y x X``);
    indices are in the layer's ``ndim`` axes. None when nothing changed."""
    ys, xs, old, new = changed_pixels(previous, labels)
    if ys.size == 0:
        return None
    return layer_indices(frame, ys, xs, axis=axis, index=index, ndim=ndim), old, new


def painted_values(atoms, *, axis: int | None, index: Mapping[int, int]) -> dict[int, set[int]]:
    """``{frame: label values}`` that a Labels-layer edit touched (old and
    new values), from the edit's history atoms: napari's ``(indices, old,
    new)`` tuples or its mask-based atoms (``slice_key``, ``old_values``,
    ``new_value``). Only pixels on the slice held by ``index`` count;
    ``axis`` None: a single image (frame 0). Unknown atoms are skipped."""
    out: dict[int, set[int]] = {}

    def note(frames, values) -> None:
        for f in frames:
            out.setdefault(int(f), set()).update(int(v) for v in values)

    for atom in atoms:
        key = getattr(atom, "slice_key", None)
        if key is not None:
            ok = all(
                isinstance(key[a], slice) and (key[a].start or 0) <= p < (key[a].stop if key[a].stop is not None else p + 1)
                or (not isinstance(key[a], slice) and int(key[a]) == p)
                for a, p in index.items()
            )
            if not ok:
                continue
            values = set(np.unique(np.asarray(atom.old_values)).tolist()) | {int(atom.new_value)}
            if axis is None:
                frames = [0]
            else:
                k = key[axis]
                frames = range(k.start or 0, k.stop) if isinstance(k, slice) else [int(k)]
            note(frames, values)
        elif isinstance(atom, tuple) and len(atom) == 3:
            indices, old, new = atom
            if not isinstance(indices, tuple) or not len(indices) or not isinstance(old, np.ndarray):
                continue
            keep = np.ones(len(indices[0]), dtype=bool)
            for a, p in index.items():
                keep &= np.asarray(indices[a]) == p
            if not keep.any():
                continue
            new = np.asarray(new)
            values = set(np.unique(old[keep]).tolist()) | set(
                np.unique(new[keep] if new.ndim else new).tolist()
            )
            frames = [0] if axis is None else np.unique(np.asarray(indices[axis])[keep])
            note(frames, values)
    return out


def next_object_id(labels: np.ndarray | None, objects: Iterable[int] = ()) -> int:
    """The next free label id: one above both the highest value in
    ``labels`` and the highest existing object id."""
    top = max([0, *[int(o) for o in objects]])
    if labels is not None and np.size(labels):
        top = max(top, int(np.max(labels)))
    return top + 1


# ----------------------------------------------------------------- prompts
class FramePrompt(NamedTuple):
    """One object's prompts on one frame: an optional box ``(y0, x0, y1, x1)``
    and clicks ``((y, x), ...)`` with ``labels`` (1 positive, 0 negative),
    or a ``mask`` (an object with a ``Y x X`` bool ``array`` and value
    equality, e.g. a painted correction) instead of both."""

    box: tuple[float, float, float, float] | None = None
    points: tuple[tuple[float, float], ...] = ()
    labels: tuple[int, ...] = ()
    mask: object = None
    candidate: int | None = None  # SAM's candidate mask chosen for the clicks (None: the model's pick)

    @property
    def empty(self) -> bool:
        return self.box is None and not self.points and self.mask is None


def _on_slice(coords: np.ndarray, axis: int | None, index: Mapping[int, int]) -> np.ndarray:
    """Rows of ``coords`` (N x ndim) lying at ``index`` on the fixed axes."""
    keep = np.ones(len(coords), dtype=bool)
    for a, p in index.items():
        keep &= np.round(coords[:, a]) == p
    return keep


def _frames(coords: np.ndarray, axis: int | None) -> np.ndarray:
    if axis is None:
        return np.zeros(len(coords), dtype=int)
    return np.round(coords[:, axis]).astype(int)


def points_to_prompts(
    data: np.ndarray,
    objects: Sequence[int],
    positive: Sequence[bool],
    *,
    axis: int | None,
    index: Mapping[int, int] | None = None,
) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]:
    """Points layer rows -> ``{(object, frame): (yx N x 2, labels N)}``.

    Points off the slice given by ``index`` are left out; the order of the
    clicks is kept.
    """
    data = np.asarray(data, dtype=float).reshape(len(data), -1) if len(data) else np.zeros((0, 2))
    index = dict(index or {})
    objects = np.asarray(objects, dtype=np.int64).reshape(-1)
    positive = np.asarray(positive, dtype=bool).reshape(-1)
    if not (len(data) == len(objects) == len(positive)):
        raise ValueError(
            f"{len(data)} points but {len(objects)} object ids and {len(positive)} signs"
        )
    keep = _on_slice(data, axis, index) & (objects > 0)
    frames = _frames(data, axis)
    out: dict[tuple[int, int], tuple[list, list]] = {}
    for i in np.flatnonzero(keep):
        yx, labs = out.setdefault((int(objects[i]), int(frames[i])), ([], []))
        yx.append(data[i, -2:])
        labs.append(1 if positive[i] else 0)
    return {k: (np.array(v[0], dtype=float), np.array(v[1], dtype=np.int64)) for k, v in out.items()}


def box_from_rectangle(corners: np.ndarray) -> tuple[float, float, float, float]:
    """A rectangle's vertices (4 x ndim) -> ``(y0, x0, y1, x1)``."""
    c = np.asarray(corners, dtype=float)
    y, x = c[:, -2], c[:, -1]
    return float(y.min()), float(x.min()), float(y.max()), float(x.max())


def rectangles_to_boxes(
    data: Sequence[np.ndarray],
    shape_types: Sequence[str],
    objects: Sequence[int],
    *,
    axis: int | None,
    index: Mapping[int, int] | None = None,
) -> dict[tuple[int, int], tuple[float, float, float, float]]:
    """Shapes layer rectangles -> ``{(object, frame): (y0, x0, y1, x1)}``.

    Only rectangles count (other shapes are ignored); an object has one box
    per frame, the last one drawn.
    """
    index = dict(index or {})
    out = {}
    for corners, kind, obj in zip(data, shape_types, objects):
        if kind != "rectangle" or int(obj) <= 0:
            continue
        c = np.asarray(corners, dtype=float)
        if not _on_slice(c[:1], axis, index)[0]:
            continue
        frame = int(_frames(c[:1], axis)[0])
        out[(int(obj), frame)] = box_from_rectangle(c)
    return out


def collect_prompts(
    points: Mapping[tuple[int, int], tuple[np.ndarray, np.ndarray]],
    boxes: Mapping[tuple[int, int], tuple[float, float, float, float]],
    masks: Mapping[tuple[int, int], object] | None = None,
    candidates: Mapping[tuple[int, int], int] | None = None,
) -> dict[tuple[int, int], FramePrompt]:
    """Merge :func:`points_to_prompts`, :func:`rectangles_to_boxes` and mask
    prompts into ``{(object, frame): FramePrompt}``; where an object has a
    mask on a frame, the mask is its prompt there (points and box ignored).
    ``candidates``: the candidate chosen for an object's clicks on a frame."""
    masks = dict(masks or {})
    candidates = dict(candidates or {})
    out = {}
    for key in sorted(set(points) | set(boxes) | set(masks)):
        if key in masks:
            out[key] = FramePrompt(mask=masks[key])
            continue
        yx, labs = points.get(key, (np.zeros((0, 2)), np.zeros(0, dtype=np.int64)))
        out[key] = FramePrompt(
            box=boxes.get(key),
            points=tuple((float(y), float(x)) for y, x in yx),
            labels=tuple(int(v) for v in labs),
            candidate=candidates.get(key),
        )
    return out


class PromptEdit(NamedTuple):
    """What to tell the engine for one ``(object, frame)``.

    ``kind``: ``"append"`` (add ``prompt.points`` to what is there),
    ``"replace"`` (clear the frame, then add ``prompt``'s box and points),
    ``"clear"`` (remove the object's prompts on the frame) or ``"choose"``
    (same prompts, another of SAM's candidates: ``prompt.candidate``). After
    an append or a replace, ``prompt.candidate`` (if set) is chosen too.
    """

    obj: int
    frame: int
    kind: str
    prompt: FramePrompt


def plan_prompt_edits(
    applied: Mapping[tuple[int, int], FramePrompt],
    wanted: Mapping[tuple[int, int], FramePrompt],
) -> list[PromptEdit]:
    """The engine calls that turn the ``applied`` prompts into ``wanted``.

    New clicks after the existing ones (same box) are appended, so the
    engine refines the previous mask as SAM 2 does click by click; any other
    change (a click moved or deleted, a box drawn or moved) replaces the
    frame's prompts.
    """
    edits = []
    for key in sorted(set(applied) | set(wanted)):
        old, new = applied.get(key), wanted.get(key)
        if old == new:
            continue
        obj, frame = key
        if new is None or new.empty:
            if old is not None:
                edits.append(PromptEdit(obj, frame, "clear", FramePrompt()))
            continue
        n = len(old.points) if old is not None else 0
        if old is not None and old._replace(candidate=None) == new._replace(candidate=None):
            edits.append(PromptEdit(obj, frame, "choose", new))
            continue
        if (
            old is not None
            and new.candidate is None  # a new click refines a chosen candidate
            and old.mask is None
            and new.mask is None
            and old.box == new.box
            and new.points[:n] == old.points
            and new.labels[:n] == old.labels
            and (old.box is not None or n > 0)
        ):
            edits.append(
                PromptEdit(obj, frame, "append", FramePrompt(None, new.points[n:], new.labels[n:]))
            )
        else:
            edits.append(PromptEdit(obj, frame, "replace", new))
    return edits


# ----------------------------------------------------------------- sessions
def session_for_layer(
    model,
    layer,
    position: Sequence[float] | None = None,
    *,
    axis: int | None = None,
    labels: np.ndarray | None = None,
    options=None,
    intensity_range="auto",
):
    """A :class:`~napari_sam2.StackSession` over a napari Image layer.

    Args:
        model: a network from :func:`napari_sam2.load_model`.
        layer: the Image layer (anything with ``data``, ``rgb``, ``ndim`` and
            ``axis_labels``; a multiscale layer uses its full resolution).
        position: a data position (e.g. ``layer.world_to_data(viewer.dims.point)``)
            whose coordinates hold the axes other than ``axis`` fixed;
            default 0 on each.
        axis: the propagation axis; inferred by :func:`infer_axis` when None.
        labels: the Labels layer's array (``labels_shape`` of the image); the
            session writes into its view at ``position``. A new array when None.
        options: :class:`~napari_sam2.SessionOptions`.
        intensity_range: ``"auto"``, ``"dtype"`` or ``(lo, hi)`` (e.g. the
            layer's ``contrast_limits``), as :class:`~napari_sam2.engine.FrameSource` takes.
    """
    from .engine import SessionOptions, StackSession

    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    rgb = bool(getattr(layer, "rgb", False))
    shape = labels_shape(data.shape, rgb)
    choice = infer_axis(shape, getattr(layer, "axis_labels", None))
    if axis is None:
        axis = choice.axis
    elif choice.axis is None:
        axis = None
    elif axis not in choice.choices:
        raise ValueError(
            f"axis {axis} cannot be followed in a layer of shape {shape}; choose one of "
            f"{list(choice.choices)}"
        )
    index = fixed_index(position if position is not None else [0] * len(shape), shape, axis)
    if labels is not None:
        if tuple(labels.shape) != shape:
            raise ValueError(
                f"the labels have shape {tuple(labels.shape)} but the image needs {shape}"
            )
        labels = labels_view(labels, axis, index)
    return StackSession(
        model,
        data,
        axis=0 if axis is None else axis,
        channel_axis=len(shape) if rgb else None,
        index=index,
        labels=labels,
        options=options if options is not None else SessionOptions(),
        intensity_range=intensity_range,
    )
