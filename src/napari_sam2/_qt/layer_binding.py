"""How the widget binds to napari layers: the image, the Labels layer it
writes into, and the Points/Shapes layers that hold the prompts (their
events, colours, Shift-clicks and the object each prompt belongs to).

A mixin of :class:`napari_sam2._widget.SAM2Widget`, which holds the state.
"""

from __future__ import annotations

import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import QTimer

from ..layers import (
    OBJECT,
    POSITIVE,
    collect_prompts,
    data_position,
    fixed_index,
    infer_axis,
    labels_shape,
    labels_view,
    painted_values,
    points_to_prompts,
    rectangles_to_boxes,
)
from .controls import NEW_LABELS
from .steps import PaintedMask

UNDO_KEY, REDO_KEY = "Control-Z", "Control-Shift-Z"
from .prompt_layers import (
    find_or_add_points,
    find_or_add_shapes,
    labels_name,
    read_points,
    read_rectangles,
    style_points,
    style_shapes,
)


class LayerBinding:
    """Layers, prompts and objects (a mixin of the widget)."""

    # ---------------------------------------------------------------- layers
    def _layer_named(self, name: str):
        if name in self.viewer.layers:
            return self.viewer.layers[name]
        self._error(f"there is no layer named {name!r}")
        return None

    def _image_shape(self) -> tuple[int, ...]:
        data = self._image.data[0] if self._image.multiscale else self._image.data
        return labels_shape(data.shape, self._image.rgb)

    def _default_image(self):
        active = self.viewer.layers.selection.active
        if isinstance(active, Image):
            return active
        return next((layer for layer in self.viewer.layers if isinstance(layer, Image)), None)

    def _labels_problem(self, layer) -> str | None:
        if not isinstance(layer, Labels):
            return f"{layer!r} is not a Labels layer"
        want = self._image_shape()
        if tuple(layer.data.shape) != want:
            return (
                f"the labels layer {layer.name!r} has shape {tuple(layer.data.shape)} but the image "
                f"{self._image.name!r} needs {want}; choose another labels layer or a new one"
            )
        if not isinstance(layer.data, np.ndarray) or layer.multiscale:
            return f"the labels layer {layer.name!r} must hold a numpy array to be written into"
        return None

    def _find_default_labels(self):
        name = labels_name(self._image.name)
        for layer in self.viewer.layers:
            if layer.name == name and isinstance(layer, Labels) and not self._labels_problem(layer):
                return layer
        return self._new_labels_layer()

    def _new_labels_layer(self) -> Labels:
        image = self._image
        name = labels_name(image.name)
        if name in self.viewer.layers:
            name = f"{name} [{sum(layer.name.startswith(name) for layer in self.viewer.layers)}]"
        active = self.viewer.layers.selection.active
        layer = self.viewer.add_labels(
            np.zeros(self._image_shape(), dtype=np.uint16),
            name=name,
            scale=tuple(image.scale),
            translate=tuple(image.translate),
            opacity=0.6,
        )
        # keep the prompt layers on top and the points layer active
        for prompt in (self._shapes, self._points):
            if prompt is not None and prompt in self.viewer.layers:
                self.viewer.layers.move(self.viewer.layers.index(prompt), len(self.viewer.layers))
        if active is not None and active in self.viewer.layers:
            self.viewer.layers.selection.active = active
        return layer

    def _adopt_labels(self, layer: Labels) -> None:
        self._release_labels()
        self._labels = layer
        self._stack = None
        layer.events.colormap.connect(self._on_colours)
        layer.events.paint.connect(self._on_paint)
        self.object_list.set_colour_source(layer.get_color)
        self._on_colours()
        self._steps.reset(self._snapshot())

    def _release_labels(self) -> None:
        if self._labels is not None:
            self._labels.events.colormap.disconnect(self._on_colours)
            self._labels.events.paint.disconnect(self._on_paint)
        self._labels = None

    def _detach_prompt_layers(self) -> None:
        for layer, on_data, on_press in (
            (self._points, self._on_points_data, self._on_points_press),
            (self._shapes, self._on_shapes_data, self._on_shapes_press),
        ):
            if layer is not None:
                layer.events.data.disconnect(on_data)
                if on_press in layer.mouse_drag_callbacks:
                    layer.mouse_drag_callbacks.remove(on_press)
                for key in (UNDO_KEY, REDO_KEY):
                    layer.bind_key(key, None)
        self._points = self._shapes = None

    def _setup_prompt_layers(self) -> None:
        self._detach_prompt_layers()
        shapes = find_or_add_shapes(self.viewer, self._image)
        points = find_or_add_points(self.viewer, self._image)
        self._points, self._shapes = points, shapes
        points.events.data.connect(self._on_points_data)
        shapes.events.data.connect(self._on_shapes_data)
        points.mouse_drag_callbacks.insert(0, self._on_points_press)
        shapes.mouse_drag_callbacks.insert(0, self._on_shapes_press)
        for layer in (points, shapes):  # the prompt layers undo as the labels layer does
            layer.bind_key(UNDO_KEY, lambda _layer: self.undo(), overwrite=True)
            layer.bind_key(REDO_KEY, lambda _layer: self.redo(), overwrite=True)
        style_points(points, self.object_list.colour_of)
        style_shapes(shapes, self.object_list.colour_of)
        shapes.mode = "add_rectangle"
        self.viewer.layers.selection.active = points
        points.mode = "add"

    def _prompted_objects(self) -> list[int]:
        ids = set()
        if self._points is not None and len(self._points.data):
            ids |= set(self._points.features[OBJECT].astype(int).tolist())
        if self._shapes is not None and self._shapes.nshapes:
            ids |= set(self._shapes.features[OBJECT].astype(int).tolist())
        return sorted(i for i in ids if i > 0)

    def _coords(self, frame: int, y: float, x: float) -> list[float]:
        """Data coordinates of ``(y, x)`` on ``frame`` at the viewer's position."""
        shape = self._image_shape()
        pos = list(data_position(self._position(), shape))
        if self._axis is not None:
            pos[self._axis] = int(frame)
        pos[-2:] = [float(y), float(x)]
        return pos

    def _position(self) -> np.ndarray:
        return np.asarray(self._image.world_to_data(self.viewer.dims.point), dtype=float)

    def _current_frame(self) -> int:
        if self._axis is None:
            return 0
        return data_position(self._position(), self._image_shape())[self._axis]

    def _refresh_layer_choices(self) -> None:
        images = [layer for layer in self.viewer.layers if isinstance(layer, Image)]
        labels = [layer for layer in self.viewer.layers if isinstance(layer, Labels)]
        for box, layers, extra in ((self.image_box, images, None), (self.labels_box, labels, NEW_LABELS)):
            box.blockSignals(True)
            box.clear()
            if extra:
                box.addItem(extra, None)
            for layer in layers:
                box.addItem(layer.name, layer)
            box.blockSignals(False)
        for box, current in ((self.image_box, self._image), (self.labels_box, self._labels)):
            for i in range(box.count()):
                if box.itemData(i) is current and current is not None:
                    box.setCurrentIndex(i)

    def _refresh_axis_choices(self) -> None:
        self.axis_box.clear()
        if self._image is None:
            return
        shape = self._image_shape()
        choice = infer_axis(shape, self._image.axis_labels)
        if choice.axis is None:
            self.axis_box.addItem("single image", None)
        for axis, name in zip(choice.choices, choice.names):
            self.axis_box.addItem(f"{name} ({shape[axis]} frames)", axis)
            if axis == self._axis:
                self.axis_box.setCurrentIndex(self.axis_box.count() - 1)
        frames = shape[self._axis] if self._axis is not None else 1
        for box in (self.start_box, self.stop_box):
            box.setRange(0, frames - 1)
        self.stop_box.setValue(frames - 1)
        self._update_buttons()

    def _on_layers_changed(self, event=None) -> None:
        self._refresh_layer_choices()
        if self._image is None:
            image = self._default_image()
            if image is not None:
                self.set_image(image)

    def _on_layers_removed(self, event) -> None:
        layer = event.value
        if layer is self._image:
            self.stop()
            self._forget_session()
            self._detach_prompt_layers()
            self._release_labels()
            self.intensity.watch(None)
            self._image = None
            self._masks = {}
            self._choices = {}
            self.object_list.set_ids([])
            self._refresh_axis_choices()
            self._set_status(self._ready_text())
        elif layer is self._labels:
            self.stop()
            self._forget_session()
            self._release_labels()
            self.object_list.set_colour_source(None)
            self._labels_removed = layer.name
            self._set_status(
                f"The labels layer {layer.name!r} was removed: choose another above, or the next "
                "prompt makes a new one."
            )
        elif layer is self._points or layer is self._shapes:
            self._detach_prompt_layers()
        # layers removed are made again when next needed (not now: the
        # viewer may be closing)
        self._refresh_layer_choices()
        self._update_buttons()

    def _ensure_layers(self) -> bool:
        """Make the labels, points and boxes layers again if they were removed."""
        if self._image is None or self._closed:
            return False
        if self._labels is None:
            self._adopt_labels(self._new_labels_layer())
            self._refresh_layer_choices()
            if self._labels_removed:
                show_info(f"SAM 2: made a new labels layer {self._labels.name!r} "
                          f"({self._labels_removed!r} was removed)")
                self._labels_removed = None
        if self._points is None or self._shapes is None:
            self._setup_prompt_layers()
            self._update_defaults()
        return True

    # ---------------------------------------------------------------- objects and prompts
    def _on_object_selected(self, obj: int) -> None:
        if self._labels is not None:
            self._labels.selected_label = obj
        self._update_defaults()
        self._update_buttons()
        self._refresh_states()

    def _update_defaults(self) -> None:
        obj = self.current_object or 0
        positive = not self.negative_box.isChecked()
        if self._points is not None:
            self._points.feature_defaults = {OBJECT: obj, POSITIVE: positive}
        if self._shapes is not None:
            self._shapes.feature_defaults = {OBJECT: obj}

    def _on_colours(self, event=None) -> None:
        self.object_list.recolour()
        colour_of = self.object_list.colour_of
        if self._points is not None:
            style_points(self._points, colour_of)
        if self._shapes is not None:
            style_shapes(self._shapes, colour_of)

    def _on_points_press(self, layer, event) -> None:
        """Mouse press in the points layer: remember Shift for the point it adds."""
        self._shift_click = "Shift" in event.modifiers

    def _on_shapes_press(self, layer, event):
        """Mouse drag in the boxes layer: once released, the box is final."""
        self._drawing_box = str(layer.mode).startswith("add")
        yield
        while event.type == "mouse_move":
            yield
        QTimer.singleShot(0, self._on_shape_drawn)

    def _on_shape_drawn(self) -> None:
        self._drawing_box = False
        if self._shapes is not None:
            style_shapes(self._shapes, self.object_list.colour_of)
            self._schedule_sync()

    def _target_object(self) -> int:
        obj = self._next_object if self._next_object is not None else self.current_object
        if obj is None:
            obj = self.new_object()
        elif obj not in self.objects:
            self.object_list.add(obj)
        return obj

    def _settled_action(self, event) -> str | None:
        """The data event's action once it is done ("added", ...); None while
        it is in progress or while the binding itself edits the layer."""
        if self._quiet:
            return None
        action = str(getattr(event, "action", ""))
        return None if action.endswith(("adding", "removing", "changing")) else action

    def _on_points_data(self, event) -> None:
        action = self._settled_action(event)
        if action is None:
            return
        layer = self._points
        if action.endswith("added"):
            n = len(layer.data)
            rows = sorted({int(i) % n for i in event.data_indices})
            rows = self._drop_outside(layer, rows)
            if not rows:
                return
            if self._next_sign is not None:
                positive = self._next_sign
            else:
                positive = self.negative_box.isChecked() == self._shift_click
            self._shift_click = False
            obj = self._target_object()
            features = layer.features
            features.loc[rows, OBJECT] = obj
            features.loc[rows, POSITIVE] = positive
            layer.features = features
            self._drop_masks(obj, np.asarray(layer.data)[rows])
            self._note_prompt(obj, np.asarray(layer.data)[rows[-1]])
        style_points(layer, self.object_list.colour_of)
        self._schedule_sync()

    def _drop_outside(self, layer, rows: list[int]) -> list[int]:
        """Remove just-added points that lie outside the image; the rest."""
        shape = self._image_shape()
        yx = np.asarray(layer.data, dtype=float)[rows][:, -2:]
        inside = (yx >= -0.5).all(axis=1) & (yx[:, 0] <= shape[-2] - 0.5) & (yx[:, 1] <= shape[-1] - 0.5)
        if inside.all():
            return rows
        self._quiet += 1
        try:
            layer.selected_data = {r for r, ok in zip(rows, inside) if not ok}
            layer.remove_selected()
        finally:
            self._quiet -= 1
        show_warning("SAM 2: a point outside the image was ignored")
        n = len(layer.data)
        return [n - int(inside.sum()) + i for i in range(int(inside.sum()))]

    def _on_shapes_data(self, event) -> None:
        action = self._settled_action(event)
        if action is None:
            return
        layer = self._shapes
        if action.endswith("added"):
            n = layer.nshapes
            rows = sorted({int(i) % n for i in event.data_indices})
            obj = self._target_object()
            features = layer.features
            features.loc[rows, OBJECT] = obj
            layer.features = features
            self._drop_masks(obj, np.asarray([layer.data[r][0] for r in rows]))
            self._note_prompt(obj, np.asarray(layer.data[rows[-1]][0]))
        style_shapes(layer, self.object_list.colour_of)
        if not self._drawing_box:
            self._schedule_sync()

    # ---------------------------------------------------------------- painted corrections
    def _on_paint(self, event) -> None:
        """The user painted, filled or erased in the Labels layer: each
        tracked object whose pixels changed on a frame gets its mask there
        as its prompt, in the same undo step as the paint."""
        if self._committing or self._closed or self._image is None or self._labels is None:
            return
        index = fixed_index(self._position(), self._image_shape(), self._axis)
        touched = painted_values(list(event.value), axis=self._axis, index=index)
        objects = set(self.objects)
        targets = [(obj, frame) for frame, values in sorted(touched.items()) for obj in sorted(values & objects)]
        if not targets:
            return
        before = self._steps.state
        self._set_mask_prompts(targets, index)
        after = self._snapshot()
        layer = self._labels
        event.value.append(
            self._steps.marker(before if before is not None else after, after, ndim=layer.ndim,
                               dtype=layer.data.dtype)
        )
        self._schedule_sync()

    def use_painted_mask(self, frame: int, obj: int | None = None) -> bool:
        """Make ``obj``'s pixels on ``frame`` in the Labels layer (default:
        the selected object) its mask prompt there (one undo step); the
        next propagation carries it. Returns False if nothing was done."""
        obj = self.current_object if obj is None else int(obj)
        if obj is None or not self._ensure_layers():
            self._error("choose an image and an object first")
            return False
        frames = self._image_shape()[self._axis] if self._axis is not None else 1
        if not 0 <= int(frame) < frames:
            self._error(f"frame {frame} is out of range: 0 to {frames - 1}")
            return False
        if obj not in self.objects:
            self.object_list.add(obj)
        index = fixed_index(self._position(), self._image_shape(), self._axis)
        self._set_mask_prompts([(obj, int(frame))], index)
        self._record_step()
        self._schedule_sync()
        return True

    def _set_mask_prompts(self, targets, index) -> None:
        """Mask prompts from the labels for ``(object, frame)`` targets; their
        clicks and boxes there are removed (a mask replaces them)."""
        view = labels_view(self._labels.data, self._axis, index)
        for obj, frame in targets:
            self._masks[(obj, frame)] = PaintedMask(np.asarray(view[frame]) == obj)
            self._choices.pop((obj, frame), None)
        self._quiet += 1
        try:
            for layer, count in ((self._points, len(self._points.data) if self._points is not None else 0),
                                 (self._shapes, self._shapes.nshapes if self._shapes is not None else 0)):
                if not count:
                    continue
                objects = layer.features[OBJECT].to_numpy(dtype=np.int64)
                if layer is self._points:
                    coords = np.asarray(layer.data, dtype=float)
                else:
                    coords = np.asarray([d[0] for d in layer.data], dtype=float)
                drop = np.zeros(count, dtype=bool)
                for obj, frame in targets:
                    hit = objects == obj
                    if self._axis is not None:
                        hit &= np.round(coords[:, self._axis]) == frame
                    for a, p in index.items():
                        hit &= np.round(coords[:, a]) == p
                    drop |= hit
                if drop.any():
                    layer.selected_data = set(np.flatnonzero(drop).tolist())
                    layer.remove_selected()
        finally:
            self._quiet -= 1

    def _delete_prompts(self, obj: int) -> None:
        self._quiet += 1
        try:
            if self._points is not None and len(self._points.data):
                keep = self._points.features[OBJECT].to_numpy() != obj
                if not keep.all():
                    self._points.selected_data = set(np.flatnonzero(~keep).tolist())
                    self._points.remove_selected()
            if self._shapes is not None and self._shapes.nshapes:
                keep = self._shapes.features[OBJECT].to_numpy() != obj
                if not keep.all():
                    self._shapes.selected_data = set(np.flatnonzero(~keep).tolist())
                    self._shapes.remove_selected()
        finally:
            self._quiet -= 1

    def _wanted_prompts(self, axis, index) -> dict:
        shape = self._image_shape()
        data, objects, positive = read_points(self._points) if self._points is not None else ([], [], [])
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
        points = points_to_prompts(
            data[inside], np.asarray(objects)[inside], np.asarray(positive)[inside], axis=axis, index=index
        )
        boxes = {}
        if self._shapes is not None:
            vertices, types, owners = read_rectangles(self._shapes, drawing=self._drawing_box)
            boxes = rectangles_to_boxes(vertices, types, owners, axis=axis, index=index)
            if axis is not None:
                boxes = {k: v for k, v in boxes.items() if 0 <= k[1] < shape[axis]}
        masks = {k: v for k, v in self._masks.items() if axis is not None or k[1] == 0}
        choices = {k: v for k, v in self._choices.items() if axis is not None or k[1] == 0}
        return collect_prompts(points, boxes, masks, choices)

    def _note_prompt(self, obj: int, coord: np.ndarray) -> None:
        """The latest click or box: its candidates are the ones shown."""
        frame = 0 if self._axis is None else int(round(float(coord[self._axis])))
        self._last_prompt = (obj, frame)

    def _drop_masks(self, obj: int, coords: np.ndarray) -> None:
        """New clicks or boxes of ``obj`` replace its mask prompts on their frames."""
        if not (self._masks or self._choices) or not len(coords):
            return
        frames = {0} if self._axis is None else {int(round(c[self._axis])) for c in coords}
        for frame in frames:
            self._masks.pop((obj, frame), None)
            self._choices.pop((obj, frame), None)
