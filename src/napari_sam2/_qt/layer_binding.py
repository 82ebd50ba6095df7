"""How the widget binds to napari layers: the image, the Labels layer it
writes into, and the Points/Shapes layers that hold the prompts (their
events, colours, Shift-clicks and the object each prompt belongs to), with
the mask prompts, candidate choices and lineage that go with them.

A part the widget holds (``widget.binding``); it owns this state and tells
the widget what happened through its signals. It reads the object list it
is given (which objects exist, which is selected) and records painted
corrections through the widget's :class:`~napari_sam2._qt.recorder.Recorder`.
"""

from __future__ import annotations

import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import QObject, QTimer, Signal

from ..layers import (
    OBJECT,
    POSITIVE,
    data_position,
    fixed_index,
    infer_axis,
    labels_shape,
    labels_view,
    next_object_id,
    painted_values,
)
from .prompt_layers import (
    add_labels_layer,
    find_or_add_points,
    find_or_add_shapes,
    labels_name,
    layer_prompts,
    prompt_rows,
    remove_rows,
    style_points,
    style_shapes,
)
from .lineage_plan import EMPTY, as_state
from .steps import PaintedMask, PromptState, snapshot, write_prompt_layers

UNDO_KEY, REDO_KEY = "Control-Z", "Control-Shift-Z"


class LayerBinding(QObject):
    """The layers the widget works on and the prompts in them."""

    prompts_changed = Signal()  # the prompts changed: the engine should follow
    object_made = Signal(int)  # a click or box with no object selected made this one
    image_removed = Signal()  # the image layer was removed (the binding let go of it)
    labels_removed = Signal(str)  # the Labels layer of this name was removed
    layers_changed = Signal(bool)  # layers inserted or moved (False) or removed (True)
    undo_requested = Signal()  # Ctrl-Z in a prompt layer
    redo_requested = Signal()

    def __init__(self, viewer, *, objects, recorder, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._viewer = viewer
        self._objects = objects  # the ObjectList: ids, the selected one, colours
        self._recorder = recorder
        self._image: Image | None = None
        self._labels: Labels | None = None
        self._points = None
        self._shapes = None
        self._axis: int | None = None
        self._negative = False  # clicks are negative (Shift-click: positive)
        self._next_sign: bool | None = None  # sign and object of a point added by a script
        self._next_object: int | None = None
        self._shift_click = False
        self._drawing_box = False
        self._quiet = 0  # > 0 while the binding edits the prompt layers itself
        self._masks: dict = {}  # (object, frame) -> PaintedMask: mask prompts
        self._choices: dict = {}  # (object, frame) -> index of SAM's candidate chosen for the clicks
        self._lineage = EMPTY  # the LineageState wanted (lineage_plan); the engine follows in a sync
        self._last_prompt: tuple[int, int] | None = None  # (object, frame) of the latest click/box
        self._labels_removed: str | None = None  # name of a labels layer the user removed
        self._closed = False
        layers = viewer.layers
        layers.events.inserted.connect(self._on_layers_changed)
        layers.events.removed.connect(self._on_layers_removed)
        layers.events.moved.connect(self._on_layers_changed)
        objects.selected.connect(self._on_object_selected)

    # ---------------------------------------------------------------- what is bound
    image = property(lambda self: self._image, doc="The Image layer (or None).")
    labels = property(lambda self: self._labels, doc="The Labels layer written into (or None).")
    points = property(lambda self: self._points, doc="The Points layer of the clicks (or None).")
    shapes = property(lambda self: self._shapes, doc="The Shapes layer of the boxes (or None).")
    axis = property(lambda self: self._axis, doc="The tracked axis of the image data (None for 2D).")
    object_ids = property(lambda self: self._objects.ids, doc="The objects listed.")
    current_object = property(lambda self: self._objects.current_id, doc="The selected object (or None).")
    drawing_box = property(lambda self: self._drawing_box, doc="A box is being drawn (applied once released).")
    last_prompt = property(lambda self: self._last_prompt, doc="(object, frame) of the latest click or box.")
    lineage = property(lambda self: self._lineage, doc="The lineage wanted (a LineageState; do not change it).")

    def set_lineage(self, state) -> None:
        """Want the lineage ``state`` (a ``LineageState``; copied)."""
        self._lineage = as_state(state if state is not None else EMPTY)

    def colour_of(self, obj: int):
        """The colour ``obj`` is shown in (RGBA floats), or None."""
        return self._objects.colour_of(obj)

    @property
    def masks(self) -> dict:
        """``{(object, frame): PaintedMask}``: the mask prompts (a copy)."""
        return dict(self._masks)

    def close(self) -> None:
        """Let go of every layer and event (the widget is closing)."""
        self._closed = True
        layers = self._viewer.layers
        for emitter, slot in ((layers.events.inserted, self._on_layers_changed),
                              (layers.events.removed, self._on_layers_removed),
                              (layers.events.moved, self._on_layers_changed)):
            emitter.disconnect(slot)
        self._detach_prompt_layers()
        self._release_labels()

    # ---------------------------------------------------------------- layers
    def layer_named(self, name: str):
        """The layer called ``name``, or None."""
        return self._viewer.layers[name] if name in self._viewer.layers else None

    def image_shape(self) -> tuple[int, ...]:
        data = self._image.data[0] if self._image.multiscale else self._image.data
        return labels_shape(data.shape, self._image.rgb)

    def num_frames(self) -> int:
        return self.image_shape()[self._axis] if self._axis is not None else 1

    def axis_choice(self):
        """Which axes the image can be tracked along (``layers.AxisChoice``)."""
        return infer_axis(self.image_shape(), self._image.axis_labels)

    def default_image(self):
        active = self._viewer.layers.selection.active
        if isinstance(active, Image):
            return active
        return next((layer for layer in self._viewer.layers if isinstance(layer, Image)), None)

    def labels_problem(self, layer) -> str | None:
        """Why ``layer`` cannot receive the image's labels (None: it can)."""
        if not isinstance(layer, Labels):
            return f"{layer!r} is not a Labels layer"
        want = self.image_shape()
        if tuple(layer.data.shape) != want:
            return (
                f"the labels layer {layer.name!r} has shape {tuple(layer.data.shape)} but the image "
                f"{self._image.name!r} needs {want}; choose another labels layer or a new one"
            )
        if not isinstance(layer.data, np.ndarray) or layer.multiscale:
            return f"the labels layer {layer.name!r} must hold a numpy array to be written into"
        return None

    def use_image(self, layer: Image) -> None:
        """Segment ``layer``: its prompt layers and Labels layer (found or
        made), its prompted objects in the object list."""
        self._release_labels()
        self._image = layer
        self._axis = infer_axis(self.image_shape(), layer.axis_labels).axis
        self._setup_prompt_layers()
        self._adopt_labels(self._find_default_labels())
        self._masks, self._choices, self._lineage = {}, {}, EMPTY
        self._objects.set_ids(self._prompted_objects())
        self._recorder.reset(self.snapshot())
        self.update_defaults()

    def use_labels(self, layer: Labels | None) -> None:
        """Write into ``layer`` (checked by :meth:`labels_problem`), or a new one."""
        self._adopt_labels(layer if layer is not None else self._new_labels_layer())

    def set_axis(self, axis: int) -> None:
        self._axis = axis

    def _find_default_labels(self):
        name = labels_name(self._image.name)
        for layer in self._viewer.layers:
            if layer.name == name and isinstance(layer, Labels) and not self.labels_problem(layer):
                return layer
        return self._new_labels_layer()

    def _new_labels_layer(self) -> Labels:
        return add_labels_layer(self._viewer, self._image, self.image_shape(), keep_on_top=(self._shapes, self._points))

    def _adopt_labels(self, layer: Labels) -> None:
        self._release_labels()
        self._labels = layer
        layer.events.colormap.connect(self.recolour)
        layer.events.paint.connect(self._on_paint)
        self._objects.set_colour_source(layer.get_color)
        self.recolour()
        self._recorder.reset(self.snapshot())

    def _release_labels(self) -> None:
        if self._labels is not None:
            self._labels.events.colormap.disconnect(self.recolour)
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
        shapes = find_or_add_shapes(self._viewer, self._image)
        points = find_or_add_points(self._viewer, self._image)
        self._points, self._shapes = points, shapes
        points.events.data.connect(self._on_points_data)
        shapes.events.data.connect(self._on_shapes_data)
        points.mouse_drag_callbacks.insert(0, self._on_points_press)
        shapes.mouse_drag_callbacks.insert(0, self._on_shapes_press)
        for layer in (points, shapes):  # the prompt layers undo as the labels layer does
            layer.bind_key(UNDO_KEY, lambda _layer: self.undo_requested.emit(), overwrite=True)
            layer.bind_key(REDO_KEY, lambda _layer: self.redo_requested.emit(), overwrite=True)
        style_points(points, self._objects.colour_of)
        style_shapes(shapes, self._objects.colour_of)
        shapes.mode = "add_rectangle"
        self._viewer.layers.selection.active = points
        points.mode = "add"

    def _prompted_objects(self) -> list[int]:
        ids = set()
        if self._points is not None and len(self._points.data):
            ids |= set(self._points.features[OBJECT].astype(int).tolist())
        if self._shapes is not None and self._shapes.nshapes:
            ids |= set(self._shapes.features[OBJECT].astype(int).tolist())
        return sorted(i for i in ids if i > 0)

    def ensure_layers(self) -> bool:
        """Make the labels, points and boxes layers again if they were removed."""
        if self._image is None or self._closed:
            return False
        if self._labels is None:
            self._adopt_labels(self._new_labels_layer())
            self.layers_changed.emit(False)
            if self._labels_removed:
                show_info(f"SAM 2: made a new labels layer {self._labels.name!r} "
                          f"({self._labels_removed!r} was removed)")
                self._labels_removed = None
        if self._points is None or self._shapes is None:
            self._setup_prompt_layers()
            self.update_defaults()
        return True

    def _on_layers_changed(self, event=None) -> None:
        self.layers_changed.emit(False)

    def _on_layers_removed(self, event) -> None:
        layer = event.value
        if layer is self._image:
            self._detach_prompt_layers()
            self._release_labels()
            self._image = None
            self._masks = {}
            self._choices = {}
            self._objects.set_ids([])
            self.image_removed.emit()
        elif layer is self._labels:
            self._release_labels()
            self._objects.set_colour_source(None)
            self._labels_removed = layer.name
            self.labels_removed.emit(layer.name)
        elif layer is self._points or layer is self._shapes:
            self._detach_prompt_layers()
        # layers removed are made again when next needed (not now: the
        # viewer may be closing)
        self.layers_changed.emit(True)

    # ---------------------------------------------------------------- positions
    def position(self) -> np.ndarray:
        """The viewer's position in the image's data coordinates."""
        return np.asarray(self._image.world_to_data(self._viewer.dims.point), dtype=float)

    def fixed_index(self) -> dict[int, int]:
        """Where the axes other than the tracked one and Y, X stand now."""
        return fixed_index(self.position(), self.image_shape(), self._axis)

    def current_frame(self) -> int:
        if self._axis is None:
            return 0
        return data_position(self.position(), self.image_shape())[self._axis]

    def coords(self, frame: int, y: float, x: float) -> list[float]:
        """Data coordinates of ``(y, x)`` on ``frame`` at the viewer's position."""
        pos = list(data_position(self.position(), self.image_shape()))
        if self._axis is not None:
            pos[self._axis] = int(frame)
        pos[-2:] = [float(y), float(x)]
        return pos

    def show_frame(self, frame: int) -> None:
        """Move the viewer to ``frame`` of the tracked axis."""
        if self._image is None or self._axis is None:
            return
        pos = list(data_position(self.position(), self.image_shape()))
        pos[self._axis] = int(frame)
        world = self._image.data_to_world(pos)
        self._viewer.dims.set_point(self._viewer.dims.ndim - self._image.ndim + self._axis, world[self._axis])

    # ---------------------------------------------------------------- objects and prompts
    def snapshot(self) -> PromptState:
        """The prompt state now: objects, clicks, boxes, masks, choices, lineage."""
        return snapshot(self._objects.ids, self._objects.current_id, self._points, self._shapes, self._masks,
                        self._choices, self._lineage)

    def restore(self, state: PromptState) -> None:
        """Put the prompt layers, masks, choices, lineage and objects back as in ``state``."""
        self._quiet += 1
        try:
            write_prompt_layers(state, self._points, self._shapes)
        finally:
            self._quiet -= 1
        self._masks = state.mask_dict()
        self._choices = state.choice_dict()
        self.set_lineage(state.lineage)
        self._objects.set_ids(state.objects, current=state.current)
        self.recolour()
        self.update_defaults()

    def add_object(self) -> int:
        """A new object with the next free label id, selected."""
        obj = next_object_id(self._labels.data, self._objects.ids)
        self._objects.add(obj)
        return obj

    def add_objects(self, ids, masks: dict) -> None:
        """Objects found by the engine, with their mask prompts
        ``{(object, frame): PaintedMask}``; the selection stays (or goes to
        the first new one)."""
        current = self._objects.current_id
        ids = sorted({int(i) for i in ids} - set(self._objects.ids))
        self._masks.update(masks)
        if ids:
            self._objects.set_ids([*self._objects.ids, *ids], current=current if current is not None else ids[0])
        self.recolour()
        self.update_defaults()

    def set_negative(self, on: bool) -> None:
        """Clicks are negative (Shift-click: positive) when ``on``."""
        self._negative = bool(on)
        self.update_defaults()

    def set_choice(self, obj: int, frame: int, k: int | None) -> None:
        """SAM's candidate ``k`` for ``obj``'s clicks on ``frame`` (None: the model's pick)."""
        if k is None:
            self._choices.pop((obj, frame), None)
        else:
            self._choices[(obj, frame)] = k

    def add_point(self, frame: int, y: float, x: float, *, positive: bool, obj: int | None) -> None:
        self._next_sign, self._next_object = bool(positive), obj
        try:
            self._points.add(np.array([self.coords(frame, y, x)]))
        finally:
            self._next_sign = self._next_object = None

    def add_box(self, frame: int, y0: float, x0: float, y1: float, x1: float, *, obj: int | None) -> None:
        corners = [(y0, x0), (y0, x1), (y1, x1), (y1, x0)]
        self._next_object = obj
        try:
            self._shapes.add_rectangles(np.array([self.coords(frame, y, x) for y, x in corners]))
        finally:
            self._next_object = None

    def _on_object_selected(self, obj: int) -> None:
        if self._labels is not None:
            self._labels.selected_label = obj
        self.update_defaults()

    def update_defaults(self) -> None:
        """New points and boxes go to the selected object, with the click sign."""
        obj = self._objects.current_id or 0
        if self._points is not None:
            self._points.feature_defaults = {OBJECT: obj, POSITIVE: not self._negative}
        if self._shapes is not None:
            self._shapes.feature_defaults = {OBJECT: obj}

    def recolour(self, event=None) -> None:
        """Objects, points and boxes in the Labels layer's colours."""
        self._objects.recolour()
        colour_of = self._objects.colour_of
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
            style_shapes(self._shapes, self._objects.colour_of)
            self.prompts_changed.emit()

    def _target_object(self) -> int:
        obj = self._next_object if self._next_object is not None else self._objects.current_id
        if obj is None:
            obj = self.add_object()
            self.object_made.emit(obj)
        elif obj not in self._objects.ids:
            self._objects.add(obj)
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
            positive = self._next_sign if self._next_sign is not None else self._negative == self._shift_click
            self._shift_click = False
            obj = self._target_object()
            features = layer.features
            features.loc[rows, OBJECT] = obj
            features.loc[rows, POSITIVE] = positive
            layer.features = features
            self._drop_masks(obj, np.asarray(layer.data)[rows])
            self._note_prompt(obj, np.asarray(layer.data)[rows[-1]])
        style_points(layer, self._objects.colour_of)
        self.prompts_changed.emit()

    def _drop_outside(self, layer, rows: list[int]) -> list[int]:
        """Remove just-added points that lie outside the image; the rest."""
        shape = self.image_shape()
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
        style_shapes(layer, self._objects.colour_of)
        if not self._drawing_box:
            self.prompts_changed.emit()

    # ---------------------------------------------------------------- painted corrections
    def _on_paint(self, event) -> None:
        """The user painted, filled or erased in the Labels layer: each
        object whose pixels changed on a frame gets its mask there as its
        prompt, in the same undo step as the paint."""
        if self._recorder.committing or self._closed or self._image is None or self._labels is None:
            return
        index = self.fixed_index()
        touched = painted_values(list(event.value), axis=self._axis, index=index)
        objects = set(self._objects.ids)
        targets = [(obj, frame) for frame, values in sorted(touched.items()) for obj in sorted(values & objects)]
        if not targets:
            return
        self._set_mask_prompts(targets, index)
        event.value.append(self._recorder.paint_atom(self._labels, self.snapshot()))
        self.prompts_changed.emit()

    def mask_from_labels(self, obj: int, frame: int) -> str | None:
        """Make ``obj``'s pixels on ``frame`` in the Labels layer its mask
        prompt there. Returns what is wrong, or None when done."""
        frames = self.num_frames()
        if not 0 <= int(frame) < frames:
            return f"frame {frame} is out of range: 0 to {frames - 1}"
        if obj not in self._objects.ids:
            self._objects.add(obj)
        self._set_mask_prompts([(obj, int(frame))], self.fixed_index())
        return None

    def _set_mask_prompts(self, targets, index) -> None:
        """Mask prompts from the labels for ``(object, frame)`` targets; their
        clicks and boxes there are removed (a mask replaces them)."""
        view = labels_view(self._labels.data, self._axis, index)
        for obj, frame in targets:
            self._masks[(obj, frame)] = PaintedMask(np.asarray(view[frame]) == obj)
            self._choices.pop((obj, frame), None)

        def there(objects, coords):
            drop = np.zeros(len(objects), dtype=bool)
            for obj, frame in targets:
                hit = objects == obj
                if self._axis is not None:
                    hit &= np.round(coords[:, self._axis]) == frame
                for a, p in index.items():
                    hit &= np.round(coords[:, a]) == p
                drop |= hit
            return drop

        self._remove_prompts(there)

    def _remove_prompts(self, which) -> None:
        """Remove the clicks and boxes where ``which(objects, coords)`` is True."""
        self._quiet += 1
        try:
            for layer in (self._points, self._shapes):
                if layer is not None and len(layer.data):
                    remove_rows(layer, which(*prompt_rows(layer)))
        finally:
            self._quiet -= 1

    def forget_object(self, obj: int) -> None:
        """Remove ``obj``'s clicks, boxes, masks and choices."""
        self._remove_prompts(lambda objects, _coords: objects == obj)
        self._masks = {k: v for k, v in self._masks.items() if k[0] != obj}
        self._choices = {k: v for k, v in self._choices.items() if k[0] != obj}

    def forget_prompts(self) -> None:
        """Remove every click, box, mask and choice (the objects stay listed)."""
        self._remove_prompts(lambda objects, _coords: np.ones(len(objects), dtype=bool))
        self._masks = {}
        self._choices = {}

    def wanted_prompts(self, axis, index) -> dict:
        """``{(object, frame): FramePrompt}`` the engine should hold for the
        stack at ``axis``/``index``."""
        return layer_prompts(self._points, self._shapes, shape=self.image_shape(), axis=axis, index=index,
                             masks=self._masks, choices=self._choices, drawing=self._drawing_box)

    def keep_paint(self, stack, frame: int, labels: np.ndarray, object_ids) -> np.ndarray:
        """``frame`` as the engine wrote it, with painted mask prompts put
        back exactly (the engine writes a prompted frame from its
        low-resolution mask)."""
        masks = [(obj, m.array) for (obj, f), m in self._masks.items() if f == frame and obj in object_ids]
        if not masks or stack.labels is not self._labels:
            return labels
        view = labels_view(stack.labels.data, stack.axis, dict(stack.index))
        out = np.array(view[frame], copy=True)
        for obj, mask in masks:
            out[(out == obj) & ~mask] = 0
            out[mask] = obj
        view[frame] = out
        return out

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
