"""The Points and Shapes layers that hold the prompts of one image layer.

Both carry an ``object`` feature (the label id a prompt belongs to); points
also carry ``positive``. Points are filled green (positive, disc) or magenta
(negative, cross) and ringed in their object's colour; box edges take their
object's colour. The layers share the image's scale and translate, so their
data coordinates are the image's data coordinates.
"""

from __future__ import annotations

import numpy as np

from ..layers import OBJECT, POSITIVE, collect_prompts, points_to_prompts, rectangles_to_boxes

POSITIVE_COLOUR = (0.15, 0.95, 0.25, 1.0)
NEGATIVE_COLOUR = (1.0, 0.2, 0.85, 1.0)
NO_OBJECT_COLOUR = (1.0, 1.0, 1.0, 1.0)


def points_name(image_name: str) -> str:
    return f"{image_name} SAM 2 points"


def boxes_name(image_name: str) -> str:
    return f"{image_name} SAM 2 boxes"


def labels_name(image_name: str) -> str:
    return f"{image_name} SAM 2 labels"


def _frame_size(image) -> tuple[int, int]:
    shape = image.data[0].shape if getattr(image, "multiscale", False) else image.data.shape
    if getattr(image, "rgb", False):
        shape = shape[:-1]
    return int(shape[-2]), int(shape[-1])


def _transform_kwargs(image) -> dict:
    return {"scale": tuple(image.scale), "translate": tuple(image.translate)}


def _find(viewer, name: str, kind, ndim: int):
    for layer in viewer.layers:
        if layer.name == name and isinstance(layer, kind) and layer.ndim == ndim:
            return layer
    return None


def _with_columns(layer, defaults: dict) -> None:
    """Give a reused layer the prompt feature columns it lacks."""
    features = layer.features
    missing = [k for k in defaults if k not in features.columns]
    if missing:
        for key in missing:
            features[key] = np.full(len(features), defaults[key])
        layer.features = features
    layer.feature_defaults = defaults


def find_or_add_points(viewer, image):
    """The image's prompt Points layer (reused by name, or added)."""
    from napari.layers import Points

    layer = _find(viewer, points_name(image.name), Points, image.ndim)
    if layer is None:
        h, w = _frame_size(image)
        layer = viewer.add_points(
            np.zeros((0, image.ndim)),
            ndim=image.ndim,
            name=points_name(image.name),
            features={OBJECT: np.zeros(0, dtype=np.int64), POSITIVE: np.zeros(0, dtype=bool)},
            feature_defaults={OBJECT: 0, POSITIVE: True},
            size=max(4.0, round(min(h, w) / 40)),
            border_width=0.2,
            face_color=[POSITIVE_COLOUR],
            **_transform_kwargs(image),
        )
    else:
        _with_columns(layer, {OBJECT: 0, POSITIVE: True})
    return layer


def find_or_add_shapes(viewer, image):
    """The image's box-prompt Shapes layer (reused by name, or added)."""
    from napari.layers import Shapes

    layer = _find(viewer, boxes_name(image.name), Shapes, image.ndim)
    if layer is None:
        h, w = _frame_size(image)
        layer = viewer.add_shapes(
            None,
            ndim=image.ndim,
            name=boxes_name(image.name),
            features={OBJECT: np.zeros(0, dtype=np.int64)},
            feature_defaults={OBJECT: 0},
            edge_width=max(1.0, round(min(h, w) / 200)),
            face_color="transparent",
            **_transform_kwargs(image),
        )
        layer.current_face_color = "transparent"
    else:
        _with_columns(layer, {OBJECT: 0})
    return layer


def style_points(layer, colour_of) -> None:
    """Fill by sign, ring by object colour (``colour_of(id)`` -> RGBA)."""
    n = len(layer.data)
    if n == 0:
        return
    positive = layer.features[POSITIVE].to_numpy(dtype=bool)
    objects = layer.features[OBJECT].to_numpy(dtype=np.int64)
    face = np.where(positive[:, None], POSITIVE_COLOUR, NEGATIVE_COLOUR)
    ring = np.array([_colour(colour_of, o) for o in objects])
    symbols = np.where(positive, "disc", "cross")
    if not (np.array_equal(layer.face_color, face) and np.array_equal(layer.border_color, ring)
            and [str(s) for s in layer.symbol] == symbols.tolist()):
        layer.face_color = face
        layer.border_color = ring
        layer.symbol = symbols.tolist()


def style_shapes(layer, colour_of) -> None:
    if layer.nshapes == 0:
        return
    objects = layer.features[OBJECT].to_numpy(dtype=np.int64)
    edge = np.array([_colour(colour_of, o) for o in objects])
    if not np.array_equal(layer.edge_color, edge):
        layer.edge_color = edge


def _colour(colour_of, obj: int):
    if obj <= 0 or colour_of is None:
        return NO_OBJECT_COLOUR
    colour = colour_of(int(obj))
    return NO_OBJECT_COLOUR if colour is None else tuple(float(c) for c in colour)


def read_points(layer):
    """``(data N x ndim, objects N, positive N)`` of a prompt Points layer."""
    n = len(layer.data)
    features = layer.features
    objects = features[OBJECT].to_numpy(dtype=np.int64) if OBJECT in features else np.zeros(n, np.int64)
    positive = features[POSITIVE].to_numpy(dtype=bool) if POSITIVE in features else np.ones(n, bool)
    return np.asarray(layer.data, dtype=float), objects, positive


def read_rectangles(layer, *, drawing: bool = False):
    """``(vertices list, shape types, objects)`` of a prompt Shapes layer;
    with ``drawing`` the last shape (still being drawn) is left out."""
    n = layer.nshapes
    objects = (layer.features[OBJECT].to_numpy(dtype=np.int64) if OBJECT in layer.features
               else np.zeros(n, np.int64))
    data = list(layer.data)
    types = list(layer.shape_type)
    if drawing and n:
        data, types, objects = data[:-1], types[:-1], objects[:-1]
    return data, types, objects


def prompt_rows(layer) -> tuple[np.ndarray, np.ndarray]:
    """``(objects N, coordinates N x ndim)`` of a prompt layer's rows (a
    box by its first vertex)."""
    from napari.layers import Points

    n = len(layer.data)
    if not n:
        return np.zeros(0, np.int64), np.zeros((0, layer.ndim))
    objects = layer.features[OBJECT].to_numpy(dtype=np.int64)
    if isinstance(layer, Points):
        return objects, np.asarray(layer.data, dtype=float)
    return objects, np.asarray([d[0] for d in layer.data], dtype=float)


def remove_rows(layer, drop: np.ndarray) -> None:
    """Remove the rows of a prompt layer where ``drop`` (N bool) is True."""
    if drop.any():
        layer.selected_data = set(np.flatnonzero(drop).tolist())
        layer.remove_selected()


def add_labels_layer(viewer, image, shape, *, keep_on_top=()):
    """A new, empty uint16 Labels layer for ``image`` (named after it),
    ``keep_on_top`` (the prompt layers) moved above it and the active layer
    left active."""
    name = labels_name(image.name)
    if name in viewer.layers:
        name = f"{name} [{sum(layer.name.startswith(name) for layer in viewer.layers)}]"
    active = viewer.layers.selection.active
    layer = viewer.add_labels(np.zeros(shape, dtype=np.uint16), name=name, opacity=0.6,
                              **_transform_kwargs(image))
    for prompt in keep_on_top:
        if prompt is not None and prompt in viewer.layers:
            viewer.layers.move(viewer.layers.index(prompt), len(viewer.layers))
    if active is not None and active in viewer.layers:
        viewer.layers.selection.active = active
    return layer


def layer_prompts(points, shapes, *, shape, axis, index, masks: dict, choices: dict, drawing: bool) -> dict:
    """``{(object, frame): FramePrompt}`` of the prompt layers (either may be
    None) and the mask prompts and candidate choices, for the stack of an
    image of ``shape`` along ``axis`` at ``index``. Points outside the image
    and a box still being drawn (``drawing``) are left out."""
    data, objects, positive = read_points(points) if points is not None else ([], [], [])
    data = np.asarray(data, dtype=float).reshape(-1, len(shape))
    inside = np.ones(len(data), dtype=bool)
    if len(data):
        h, w = shape[-2:]
        inside = (
            (data[:, -2] >= -0.5) & (data[:, -2] <= h - 0.5)
            & (data[:, -1] >= -0.5) & (data[:, -1] <= w - 0.5)
        )
        if axis is not None:
            frames = np.round(data[:, axis])
            inside &= (frames >= 0) & (frames < shape[axis])
    clicks = points_to_prompts(
        data[inside], np.asarray(objects)[inside], np.asarray(positive)[inside], axis=axis, index=index
    )
    boxes = {}
    if shapes is not None:
        vertices, types, owners = read_rectangles(shapes, drawing=drawing)
        boxes = rectangles_to_boxes(vertices, types, owners, axis=axis, index=index)
        if axis is not None:
            boxes = {k: v for k, v in boxes.items() if 0 <= k[1] < shape[axis]}
    masks = {k: v for k, v in masks.items() if axis is not None or k[1] == 0}
    choices = {k: v for k, v in choices.items() if axis is not None or k[1] == 0}
    return collect_prompts(clicks, boxes, masks, choices)
