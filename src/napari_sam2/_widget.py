"""The "SAM 2 segment & track" dock widget.

Click points (Shift-click for negative) or draw boxes on any slice, see the
mask at once, and propagate it through the stack into a Labels layer. All
model work runs in napari ``thread_worker``s, one task at a time; the viewer
stays responsive and every write is one undo step in the Labels layer.

The same operations are methods, for scripts and the napari console::

    widget = viewer.window.add_plugin_dock_widget("napari-sam2")[1]
    widget.load_model("sam2.1_hiera_tiny")   # or widget.set_model(model)
    widget.wait()
    obj = widget.new_object()
    widget.add_point(0, 120, 84)             # frame, y, x (positive)
    widget.add_point(0, 100, 90, positive=False)
    widget.propagate("both")
    widget.wait()
    widget.labels_layer.undo()               # reverts the whole propagation

Methods return at once; the work goes on in the background. ``wait()``
processes events until all is done.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np
from napari.layers import Image, Labels, Points, Shapes
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ._qt.history import LabelsHistory
from ._qt.model_panel import ModelPanel
from ._qt.object_list import ObjectList
from ._qt.prompt_layers import (
    find_or_add_points,
    find_or_add_shapes,
    labels_name,
    read_points,
    read_rectangles,
    style_points,
    style_shapes,
)
from ._qt.tasks import Failure, run_function, run_generator
from .layers import (
    OBJECT,
    POSITIVE,
    FramePrompt,
    collect_prompts,
    data_position,
    fixed_index,
    infer_axis,
    labels_shape,
    layer_indices,
    next_object_id,
    plan_prompt_edits,
    points_to_prompts,
    rectangles_to_boxes,
    session_for_layer,
)

__all__ = ["SAM2Widget"]

NEW_LABELS = "New labels layer"
DIRECTIONS = ("forward", "backward", "both")
PREPARE_DELAY_MS = 250  # debounce of the image encoding after the slice changes
SYNC_DELAY_MS = 20  # coalesces the events of one edit of the prompt layers
HELP = (
    "Click in the points layer: positive point. Shift-click (or tick 'Negative clicks'): "
    "negative point. Draw a rectangle in the boxes layer: box. Prompts go to the selected object."
)


class _Stack(NamedTuple):
    """What a session is built for; a session is rebuilt when it changes."""

    image: object
    labels: object
    model: object
    axis: int | None
    index: tuple

    def same(self, other) -> bool:
        return (
            other is not None
            and self.image is other.image
            and self.labels is other.labels
            and self.model is other.model
            and self.axis == other.axis
            and self.index == other.index
        )


class _SyncJob(NamedTuple):
    stack: _Stack
    session: object  # the current session, or None to build one
    image: object  # a snapshot of what session_for_layer reads
    labels: object  # the Labels layer's array
    position: tuple
    applied: dict
    wanted: dict
    generation: int


class _SyncResult(NamedTuple):
    job: _SyncJob
    session: object
    applied: dict
    changes: list  # (frame, previous, labels)
    errors: list


class _ClearResult(NamedTuple):
    session: object
    pixels: list  # (frame, ys, xs, object id, frame width)


class _Counter:
    """Frames done / total, set by the engine's progress callback."""

    def __init__(self) -> None:
        self.done = 0
        self.total = 0

    def __call__(self, done: int, total: int) -> None:
        self.done, self.total = done, total


def _with_progress(results, counter: _Counter):
    try:
        for result in results:
            yield result, counter.done, counter.total
    finally:
        results.close()


def _image_snapshot(layer):
    class _Snapshot:
        pass

    snap = _Snapshot()
    snap.data = layer.data[0] if layer.multiscale else layer.data
    snap.multiscale = False
    snap.rgb = bool(layer.rgb)
    snap.ndim = layer.ndim
    snap.axis_labels = tuple(layer.axis_labels)
    return snap


def _sync_work(job: _SyncJob, model) -> _SyncResult:
    """Worker: build the session if needed, apply the prompt edits, decode the
    changed frames (instant when their image features are cached)."""
    session = job.session
    if session is None:
        session = session_for_layer(
            model, job.image, job.position, axis=job.stack.axis, labels=job.labels
        )
    applied = dict(job.applied)
    errors, frames = [], set()
    known = set(session.object_ids)
    for edit in plan_prompt_edits(applied, job.wanted):
        key = (edit.obj, edit.frame)
        applied[key] = job.wanted.get(key, FramePrompt())
        frames.add(edit.frame)
        try:
            if edit.kind in ("replace", "clear") and edit.obj in known:
                session.clear_frame(edit.obj, edit.frame)
            if edit.prompt.box is not None:
                session.add_box(edit.obj, edit.frame, edit.prompt.box)
            if edit.prompt.points:
                session.add_points(edit.obj, edit.frame, edit.prompt.points, edit.prompt.labels)
            known = set(session.object_ids)
        except Exception as exc:  # one bad prompt must not stop the others
            errors.append(f"object {edit.obj} on frame {edit.frame}: {exc}")
    for obj in session.object_ids:
        if not session.prompted_frames(obj):
            session.remove_object(obj, clear_labels=False)
    changes = []
    for frame in sorted(frames):
        previous = np.array(session.labels[frame], copy=True)
        changes.append((frame, previous, session.segment_frame(frame)))
    return _SyncResult(job, session, applied, changes, errors)


def _clear_work(session, objects: list[int]) -> _ClearResult:
    """Worker: forget objects and clear their pixels (recorded for undo)."""
    pixels = []
    for obj in objects:
        if obj not in session.object_ids:
            continue
        for frame in range(session.num_frames):
            ys, xs = np.nonzero(np.asarray(session.labels[frame]) == obj)
            if ys.size:
                pixels.append((frame, ys, xs, obj, session.width))
        session.remove_object(obj, clear_labels=True)
    return _ClearResult(session, pixels)


class SAM2Widget(QWidget):
    """Segment and track objects through a stack with SAM 2.

    Public API (all calls return at once; call :meth:`wait` to block):

    * ``set_image(layer_or_name)``, ``set_labels(layer_or_name_or_None)``,
      ``set_axis(axis)``
    * ``load_model(name_or_path, device=None, image_size=None)``,
      ``set_model(model)``
    * ``new_object() -> id``, ``select_object(id)``, ``objects``,
      ``current_object``
    * ``add_point(frame, y, x, positive=True, obj=None)``,
      ``add_box(frame, y0, x0, y1, x1, obj=None)``
    * ``propagate(direction="forward", start=None, stop=None)``, ``stop()``
    * ``clear_object(obj=None)``, ``delete_object(obj=None)``, ``reset()``
    * ``wait(timeout=None) -> bool``, ``busy``, ``session``,
      ``image_layer``, ``labels_layer``, ``points_layer``, ``shapes_layer``
    """

    def __init__(self, napari_viewer, *, model=None) -> None:
        super().__init__()
        # napari hands plugins a proxy that wraps every object it returns in a
        # new proxy; the widget compares layers by identity, so it keeps the
        # viewer itself (and uses its public API only).
        self.viewer = getattr(napari_viewer, "__wrapped__", napari_viewer)
        self._image: Image | None = None
        self._labels: Labels | None = None
        self._points: Points | None = None
        self._shapes: Shapes | None = None
        self._axis: int | None = None
        self._model = None
        self._session = None
        self._stack: _Stack | None = None
        self._applied: dict = {}
        self._generation = 0
        self._task = None  # the running one-off worker (sync, prepare, clear)
        self._propagation = None  # (worker, context) while propagating
        self._stopping = False
        self._want_sync = False
        self._want_prepare = False
        self._want_propagate: tuple | None = None
        self._want_clear: list[int] = []
        self._next_sign: bool | None = None
        self._next_object: int | None = None
        self._shift_click = False
        self._drawing_box = False
        self._quiet = 0  # > 0 while the widget edits the prompt layers itself
        self._history = LabelsHistory()
        self._closed = False

        self._build_ui()
        self._sync_timer = QTimer(self, singleShot=True, interval=SYNC_DELAY_MS)
        self._sync_timer.timeout.connect(self._request_sync)
        self._prepare_timer = QTimer(self, singleShot=True, interval=PREPARE_DELAY_MS)
        self._prepare_timer.timeout.connect(self._request_prepare)

        layers = self.viewer.layers
        layers.events.inserted.connect(self._on_layers_changed)
        layers.events.removed.connect(self._on_layers_removed)
        layers.events.moved.connect(self._on_layers_changed)
        self.viewer.dims.events.current_step.connect(self._on_dims)
        self._refresh_layer_choices()
        image = self._default_image()
        if image is not None:
            self.set_image(image)
        if model is not None:
            self.set_model(model)
        self._update_buttons()

    # ================================================================ UI
    def _build_ui(self) -> None:
        self.image_box = QComboBox()
        self.labels_box = QComboBox()
        self.axis_box = QComboBox()
        self.image_box.setToolTip("The image or stack to segment")
        self.labels_box.setToolTip("Where masks are written (a new layer, or one of the same shape)")
        self.axis_box.setToolTip(
            "The axis to track along; other axes stay at the viewer's current position"
        )
        data_form = QFormLayout()
        data_form.addRow("Image", self.image_box)
        data_form.addRow("Labels", self.labels_box)
        data_form.addRow("Track along", self.axis_box)

        self.model_panel = ModelPanel()
        self.model_panel.loaded.connect(lambda model, _text: self.set_model(model))
        self.model_panel.failed.connect(self._error)

        objects = QGroupBox("Objects")
        self.object_list = ObjectList()
        self.new_button = QPushButton("New object")
        self.clear_button = QPushButton("Clear object")
        self.delete_button = QPushButton("Delete object")
        self.clear_button.setToolTip("Remove the selected object's prompts and its masks on every frame")
        self.delete_button.setToolTip("Clear the selected object and remove it from the list")
        self.negative_box = QCheckBox("Negative clicks (or hold Shift)")
        hint = QLabel(HELP)
        hint.setWordWrap(True)
        hint.setStyleSheet("color: gray;")
        rows = QGridLayout(objects)
        rows.addWidget(self.object_list, 0, 0, 1, 3)
        rows.addWidget(self.new_button, 1, 0)
        rows.addWidget(self.clear_button, 1, 1)
        rows.addWidget(self.delete_button, 1, 2)
        rows.addWidget(self.negative_box, 2, 0, 1, 3)
        rows.addWidget(hint, 3, 0, 1, 3)

        track = QGroupBox("Propagate")
        self.backward_button = QPushButton("◀ Backward")
        self.both_button = QPushButton("Both")
        self.forward_button = QPushButton("Forward ▶")
        self.range_box = QCheckBox("Only frames")
        self.start_box = QSpinBox()
        self.stop_box = QSpinBox()
        self.follow_box = QCheckBox("Show each frame as it is tracked")
        self.follow_box.setChecked(True)
        self.stop_button = QPushButton("Stop")
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m frames")
        self.progress.setValue(0)
        grid = QGridLayout(track)
        grid.addWidget(self.backward_button, 0, 0)
        grid.addWidget(self.both_button, 0, 1)
        grid.addWidget(self.forward_button, 0, 2)
        span = QHBoxLayout()
        span.addWidget(self.range_box)
        span.addWidget(self.start_box)
        span.addWidget(QLabel("to"))
        span.addWidget(self.stop_box)
        grid.addLayout(span, 1, 0, 1, 3)
        grid.addWidget(self.follow_box, 2, 0, 1, 3)
        grid.addWidget(self.progress, 3, 0, 1, 2)
        grid.addWidget(self.stop_button, 3, 2)

        self.reset_button = QPushButton("Reset (forget all objects and prompts)")
        self.status = QLabel("Choose an image and load a model")
        self.status.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.addLayout(data_form)
        layout.addWidget(self.model_panel)
        layout.addWidget(objects)
        layout.addWidget(track)
        layout.addWidget(self.reset_button)
        layout.addWidget(self.status)
        layout.addStretch(1)

        self.image_box.activated.connect(lambda i: self.set_image(self.image_box.itemData(i)))
        self.labels_box.activated.connect(lambda i: self.set_labels(self.labels_box.itemData(i)))
        self.axis_box.activated.connect(lambda i: self.set_axis(self.axis_box.itemData(i)))
        self.object_list.selected.connect(self._on_object_selected)
        self.new_button.clicked.connect(lambda: self.new_object())
        self.clear_button.clicked.connect(lambda: self.clear_object())
        self.delete_button.clicked.connect(lambda: self.delete_object())
        self.negative_box.toggled.connect(lambda _on: self._update_defaults())
        self.forward_button.clicked.connect(lambda: self.propagate("forward"))
        self.backward_button.clicked.connect(lambda: self.propagate("backward"))
        self.both_button.clicked.connect(lambda: self.propagate("both"))
        self.stop_button.clicked.connect(lambda: self.stop())
        self.reset_button.clicked.connect(lambda: self.reset())
        self.range_box.toggled.connect(lambda _on: self._update_buttons())

    def _update_buttons(self) -> None:
        running = self._propagation is not None
        have_image = self._image is not None
        for button in (self.forward_button, self.backward_button, self.both_button):
            button.setEnabled(have_image and not running)
        self.stop_button.setEnabled(running and not self._stopping)
        for button in (self.new_button, self.reset_button, self.clear_button, self.delete_button):
            button.setEnabled(have_image and not running)
        has_object = self.object_list.current_id is not None
        self.clear_button.setEnabled(self.clear_button.isEnabled() and has_object)
        self.delete_button.setEnabled(self.delete_button.isEnabled() and has_object)
        for widget in (self.image_box, self.labels_box, self.axis_box, self.model_panel):
            widget.setEnabled(not running)
        self.axis_box.setEnabled(not running and self.axis_box.count() > 1)
        self.start_box.setEnabled(self.range_box.isChecked())
        self.stop_box.setEnabled(self.range_box.isChecked())

    def _set_status(self, text: str) -> None:
        self.status.setText(text)

    def _error(self, message: str) -> None:
        show_error(f"SAM 2: {message}")
        self._set_status(f"Error: {message}")

    # ================================================================ public API
    @property
    def image_layer(self) -> Image | None:
        return self._image

    @property
    def labels_layer(self) -> Labels | None:
        return self._labels

    @property
    def points_layer(self) -> Points | None:
        return self._points

    @property
    def shapes_layer(self) -> Shapes | None:
        return self._shapes

    @property
    def axis(self) -> int | None:
        """The propagation axis of the image layer's data (None for 2D)."""
        return self._axis

    @property
    def model(self):
        return self._model

    @property
    def session(self):
        """The :class:`~napari_sam2.StackSession` in use (None before the
        first prompt or slice change with a model); use it only while
        :attr:`busy` is False."""
        return self._session

    @property
    def objects(self) -> list[int]:
        return self.object_list.ids

    @property
    def current_object(self) -> int | None:
        return self.object_list.current_id

    @property
    def busy(self) -> bool:
        """Whether work is running or waiting to run."""
        return bool(
            self._task is not None
            or self._propagation is not None
            or self.model_panel.busy
            or self._sync_timer.isActive()
            or self._want_sync
            or self._want_clear
            or self._want_propagate is not None
        )

    def wait(self, timeout: float | None = None) -> bool:
        """Process events until no work is running or pending; False on timeout."""
        end = None if timeout is None else time.monotonic() + timeout
        app = QApplication.instance()
        while self.busy:
            if end is not None and time.monotonic() > end:
                return False
            app.processEvents()
            time.sleep(0.005)
        app.processEvents()
        return True

    def set_model(self, model) -> None:
        """Use an already loaded network (e.g. from :func:`napari_sam2.load_model`)."""
        from .model import SAM2Model

        if not isinstance(model, SAM2Model):
            self._error(f"expected a SAM 2 network from napari_sam2.load_model, got {type(model).__name__}")
            return
        self._model = model
        self.model_panel.status.setText(
            f"Model: {model.config.name} at {model.image_size} px on {model.device}"
        )
        self._set_status("Model ready. " + HELP)
        self._want_prepare = True
        self._kick()

    def load_model(self, name_or_path, *, device: str | None = None, image_size: int | None = None) -> None:
        """Load (downloading if needed) a model by name or checkpoint path, in a worker."""
        self.model_panel.load(name_or_path, device=device, image_size=image_size)

    def set_image(self, layer) -> bool:
        """Segment this Image layer (a layer or its name). False if refused."""
        if isinstance(layer, str):
            layer = self._layer_named(layer)
            if layer is None:
                return False
        if self._propagation is not None:
            self._error("stop the propagation before choosing another image")
            return False
        if not isinstance(layer, Image):
            kind = type(layer).__name__ if layer is not None else "nothing"
            name = f" {layer.name!r}" if hasattr(layer, "name") else ""
            self._error(f"the layer{name} is a {kind} layer, not an image; choose an Image layer")
            self._refresh_layer_choices()
            return False
        if layer is self._image:
            return True
        self._forget_session()
        self._image = layer
        self._axis = infer_axis(self._image_shape(), layer.axis_labels).axis
        self._labels = None
        self._setup_prompt_layers()
        self._adopt_labels(self._find_default_labels())
        self.object_list.set_ids(self._prompted_objects())
        self._refresh_layer_choices()
        self._refresh_axis_choices()
        self._update_defaults()
        self._want_prepare = True
        self._schedule_sync()
        self._update_buttons()
        return True

    def set_labels(self, layer=None) -> bool:
        """Write into this Labels layer (a layer or name), or a new one (None)."""
        if isinstance(layer, str):
            if layer == NEW_LABELS:
                layer = None
            else:
                layer = self._layer_named(layer)
                if layer is None:
                    return False
        if self._image is None:
            self._error("choose an image first")
            return False
        if self._propagation is not None:
            self._error("stop the propagation before choosing another labels layer")
            return False
        problem = self._labels_problem(layer) if layer is not None else None
        if problem:
            self._error(problem)
            self._refresh_layer_choices()
            return False
        self._adopt_labels(layer if layer is not None else self._new_labels_layer())
        self._refresh_layer_choices()
        self._schedule_sync()
        return True

    def set_axis(self, axis: int) -> bool:
        """Track along this axis of the image data (4D stacks offer a choice)."""
        if self._image is None:
            return False
        choices = infer_axis(self._image_shape(), self._image.axis_labels).choices
        if axis not in choices:
            self._error(f"axis {axis} cannot be followed; choose one of {list(choices)}")
            self._refresh_axis_choices()
            return False
        if axis != self._axis:
            self._axis = axis
            self._forget_session()
            self._refresh_axis_choices()
            self._want_prepare = True
            self._schedule_sync()
        return True

    def new_object(self) -> int | None:
        """Add an object with the next free label id and select it."""
        if not self._ensure_layers():
            self._error("choose an image first")
            return None
        labels = self._labels.data
        obj = next_object_id(labels, self.objects)
        self.object_list.add(obj)
        self._update_buttons()
        return obj

    def select_object(self, obj: int) -> None:
        """Make ``obj`` receive the next prompts (it is added if new)."""
        self.object_list.add(int(obj))

    def add_point(self, frame: int, y: float, x: float, *, positive: bool = True, obj: int | None = None) -> None:
        """Add a click on ``frame`` at ``(y, x)`` data pixels for ``obj``
        (default the selected object; a new one if there is none)."""
        if not self._ensure_layers():
            self._error("choose an image first")
            return
        self._next_sign, self._next_object = bool(positive), obj
        try:
            self._points.add(np.array([self._coords(frame, y, x)]))
        finally:
            self._next_sign = self._next_object = None

    def add_box(self, frame: int, y0: float, x0: float, y1: float, x1: float, *, obj: int | None = None) -> None:
        """Add a box prompt ``(y0, x0, y1, x1)`` on ``frame`` for ``obj``."""
        if not self._ensure_layers():
            self._error("choose an image first")
            return
        corners = [(y0, x0), (y0, x1), (y1, x1), (y1, x0)]
        self._next_object = obj
        try:
            self._shapes.add_rectangles(np.array([self._coords(frame, y, x) for y, x in corners]))
        finally:
            self._next_object = None

    def propagate(self, direction: str = "forward", start: int | None = None, stop: int | None = None) -> None:
        """Track all objects ``"forward"``, ``"backward"`` or ``"both"``, over
        frames ``start`` to ``stop`` (inclusive; default the range set in the
        widget, or the whole axis)."""
        if direction not in DIRECTIONS:
            self._error(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
            return
        if self._image is None:
            self._error("choose an image first")
            return
        if self._model is None:
            self._error("load a model first")
            return
        if self._propagation is not None:
            self._error("a propagation is already running; stop it first")
            return
        if start is None and stop is None and self.range_box.isChecked():
            start, stop = self.start_box.value(), self.stop_box.value()
        self._want_propagate = (direction, start, stop)
        self._want_sync = True
        self._kick()

    def stop(self) -> None:
        """Stop a propagation after the frame being computed."""
        if self._propagation is not None and not self._stopping:
            self._stopping = True
            self._propagation[0].quit()
            self._set_status("Stopping…")
            self._update_buttons()

    def clear_object(self, obj: int | None = None) -> None:
        """Remove an object's prompts and its masks on every frame (one undo step)."""
        obj = self.current_object if obj is None else int(obj)
        if obj is None or self._propagation is not None:
            return
        self._delete_prompts(obj)
        self._want_clear.append(obj)
        self._schedule_sync()
        self._kick()

    def delete_object(self, obj: int | None = None) -> None:
        """Clear an object and remove it from the list."""
        obj = self.current_object if obj is None else int(obj)
        if obj is None or self._propagation is not None:
            return
        self.clear_object(obj)
        self.object_list.remove(obj)
        self._update_defaults()
        self._update_buttons()

    def reset(self) -> None:
        """Forget all objects and prompts (the labels stay as they are)."""
        if self._propagation is not None:
            self._error("stop the propagation first")
            return
        self._quiet += 1
        try:
            if self._points is not None and len(self._points.data):
                self._points.data = np.zeros((0, self._points.ndim))
            if self._shapes is not None and self._shapes.nshapes:
                self._shapes.data = []
        finally:
            self._quiet -= 1
        self._forget_session()
        self._want_clear = []
        self.object_list.set_ids([])
        self._update_defaults()
        self._update_buttons()
        self._set_status("Reset: no objects. " + HELP)

    # ================================================================ layers
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
        if self._labels is not None:
            self._labels.events.colormap.disconnect(self._on_colours)
        self._labels = layer
        self._stack = None
        layer.events.colormap.connect(self._on_colours)
        self.object_list.set_colour_source(layer.get_color)
        self._on_colours()

    def _detach_prompt_layers(self) -> None:
        for layer, on_data, on_press in (
            (self._points, self._on_points_data, self._on_points_press),
            (self._shapes, self._on_shapes_data, self._on_shapes_press),
        ):
            if layer is not None:
                layer.events.data.disconnect(on_data)
                if on_press in layer.mouse_drag_callbacks:
                    layer.mouse_drag_callbacks.remove(on_press)
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
            if self._labels is not None:
                self._labels.events.colormap.disconnect(self._on_colours)
            self._image = self._labels = None
            self.object_list.set_ids([])
            self._refresh_axis_choices()
        elif layer is self._labels:
            self.stop()
            self._forget_session()
            self._labels.events.colormap.disconnect(self._on_colours)
            self._labels = None
            self.object_list.set_colour_source(None)
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
        if self._points is None or self._shapes is None:
            self._setup_prompt_layers()
            self._update_defaults()
        return True

    # ================================================================ objects and prompts
    def _on_object_selected(self, obj: int) -> None:
        if self._labels is not None:
            self._labels.selected_label = obj
        self._update_defaults()
        self._update_buttons()

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

    def _on_points_data(self, event) -> None:
        if self._quiet:
            return
        action = str(getattr(event, "action", ""))
        if action.endswith(("adding", "removing", "changing")):
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
        if self._quiet:
            return
        action = str(getattr(event, "action", ""))
        if action.endswith(("adding", "removing", "changing")):
            return
        layer = self._shapes
        if action.endswith("added"):
            n = layer.nshapes
            rows = sorted({int(i) % n for i in event.data_indices})
            obj = self._target_object()
            features = layer.features
            features.loc[rows, OBJECT] = obj
            layer.features = features
        style_shapes(layer, self.object_list.colour_of)
        if not self._drawing_box:
            self._schedule_sync()

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
        return collect_prompts(points, boxes)

    # ================================================================ scheduling
    def _schedule_sync(self) -> None:
        self._sync_timer.start()

    def _request_sync(self) -> None:
        self._want_sync = True
        self._kick()

    def _on_dims(self, event=None) -> None:
        if self._image is not None and self._propagation is None:
            self._prepare_timer.start()

    def _request_prepare(self) -> None:
        self._want_prepare = True
        self._kick()

    def _current_stack(self) -> _Stack | None:
        if self._model is None or not self._ensure_layers():
            return None
        index = fixed_index(self._position(), self._image_shape(), self._axis)
        return _Stack(self._image, self._labels, self._model, self._axis, tuple(sorted(index.items())))

    def _forget_session(self) -> None:
        """Drop the session (a new one is built, and the prompts replayed, on
        the next need); a worker still using the old one finishes unseen."""
        self._generation += 1
        self._session = None
        self._stack = None
        self._applied = {}

    def _kick(self) -> None:
        """Start the next piece of background work, if none is running."""
        if self._closed or self._task is not None or self._propagation is not None:
            return
        stack = self._current_stack()
        if stack is None:
            if self._want_propagate is not None and self._model is None:
                self._error("load a model first")
            self._want_propagate = None
            self._want_sync = self._want_prepare = False
            self._want_clear = []
            self._update_buttons()
            return
        if not stack.same(self._stack):
            self._session, self._applied = None, {}
            self._want_sync = self._want_sync or self._want_prepare or self._want_propagate is not None
        if self._want_clear and self._session is not None:
            objects, self._want_clear = self._want_clear, []
            self._start_clear(objects)
        elif self._want_sync or self._sync_timer.isActive():
            self._sync_timer.stop()
            self._want_sync = False
            self._start_sync(stack)
        elif self._want_propagate is not None:
            request, self._want_propagate = self._want_propagate, None
            self._want_clear = []
            self._start_propagation(*request)
        elif self._want_prepare:
            self._want_prepare = False
            self._want_clear = []
            self._start_prepare()
        else:
            self._want_clear = []
        self._update_buttons()

    def _task_finished(self) -> None:
        self._task = None
        self._kick()

    # ---------------------------------------------------------------- sync
    def _start_sync(self, stack: _Stack) -> None:
        axis, index = stack.axis, dict(stack.index)
        try:
            wanted = self._wanted_prompts(axis, index)
        except Exception as exc:
            self._error(f"cannot read the prompts: {exc}")
            return
        session = self._session if stack.same(self._stack) else None
        if session is not None and wanted == self._applied:
            return self._kick_later()
        job = _SyncJob(
            stack=stack,
            session=session,
            image=_image_snapshot(self._image),
            labels=self._labels.data,
            position=tuple(self._position()),
            applied=self._applied if session is not None else {},
            wanted=wanted,
            generation=self._generation,
        )
        if session is None:
            self._set_status("Preparing the stack…")
        self._task = run_function(_sync_work, job, self._model, done=self._on_synced, finished=self._task_finished)

    def _kick_later(self) -> None:
        QTimer.singleShot(0, self._kick)

    def _on_synced(self, result) -> None:
        if isinstance(result, Failure):
            self._want_propagate = None
            self._error(result.message)
            return
        job = result.job
        self._record(result.changes, job.stack)
        if job.generation == self._generation and job.stack.same(self._current_stack()):
            self._session, self._stack, self._applied = result.session, job.stack, result.applied
        for message in result.errors:
            self._error(message)
        if result.changes:
            self._set_status(f"Segmented frame {', '.join(str(c[0]) for c in result.changes)}")

    def _record(self, changes, stack: _Stack) -> None:
        """One undo step for frames written by a click/box/clear."""
        for frame, previous, labels in changes:
            self._history.add_frame(frame, previous, labels)
        self._commit(stack)

    def _commit(self, stack: _Stack) -> bool:
        """Record the collected changes as one undo step of the labels layer."""
        axis, index, ndim = stack.axis, dict(stack.index), stack.labels.ndim

        def to_indices(frame, ys, xs):
            return layer_indices(frame, ys, xs, axis=axis, index=index, ndim=ndim)

        return self._history.commit(stack.labels, to_indices, key=(stack.axis, stack.index))

    # ---------------------------------------------------------------- prepare
    def _start_prepare(self) -> None:
        session = self._session
        if session is None:
            return
        frame = self._current_frame()
        if session.is_prepared(frame):
            return
        self._set_status(f"Computing image features of frame {frame}…")
        started = time.monotonic()

        def done(result):
            if isinstance(result, Failure):
                self._error(f"could not encode frame {frame}: {result.message}")
            else:
                self._set_status(f"Frame {frame} ready ({time.monotonic() - started:.1f} s). " + HELP)

        self._task = run_function(session.prepare_frame, frame, done=done, finished=self._task_finished)

    # ---------------------------------------------------------------- clear
    def _start_clear(self, objects: list[int]) -> None:
        session, stack = self._session, self._stack

        def done(result):
            if isinstance(result, Failure):
                self._error(f"could not clear: {result.message}")
                return
            for frame, ys, xs, obj, width in result.pixels:
                old = np.full(len(ys), obj, dtype=stack.labels.data.dtype)
                self._history.add_pixels(frame, ys, xs, old, np.zeros_like(old), width=width)
            self._commit(stack)
            self._applied = {k: v for k, v in self._applied.items() if k[0] not in objects}

        self._task = run_function(_clear_work, session, objects, done=done, finished=self._task_finished)

    # ---------------------------------------------------------------- propagate
    def _start_propagation(self, direction: str, start, stop) -> None:
        session, stack = self._session, self._stack
        if session is None:
            self._error("nothing to propagate: add a point or a box first")
            return
        counter = _Counter()
        try:
            undone = self._history.undone_frames(stack.labels, (stack.axis, stack.index))
            if undone:
                session.mark_stale(sorted(undone))
            results = session.propagate_results(direction, start, stop, progress=counter)
        except Exception as exc:
            self._error(str(exc))
            return
        self._stopping = False
        self.progress.setRange(0, 0)
        self._set_status(f"Propagating {direction}…")
        worker = run_generator(
            _with_progress, results, counter, yielded=self._on_frame, finished=self._on_propagation_finished
        )
        self._propagation = (worker, stack)
        self._update_buttons()

    def _on_frame(self, item) -> None:
        if self._propagation is None:
            return
        if isinstance(item, Failure):
            self._error(f"propagation failed: {item.message}")
            return
        result, done, total = item
        stack = self._propagation[1]
        layer = stack.labels
        self._history.add_frame(result.frame, result.previous, result.labels)
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        if self._stopping:
            return
        self._set_status(f"Propagating: frame {result.frame} ({done} of {total})")
        if self.follow_box.isChecked() and stack.axis is not None and stack.image in self.viewer.layers:
            self._show_frame(stack, result.frame)
        elif self._current_frame() == result.frame:
            layer.refresh()

    def _show_frame(self, stack: _Stack, frame: int) -> None:
        image = stack.image
        pos = list(data_position(self._position(), self._image_shape()))
        pos[stack.axis] = frame
        world = image.data_to_world(pos)
        axis = self.viewer.dims.ndim - image.ndim + stack.axis
        self.viewer.dims.set_point(axis, world[stack.axis])
        stack.labels.refresh()

    def _on_propagation_finished(self) -> None:
        worker, stack = self._propagation
        self._propagation = None
        stopped = self._stopping
        self._stopping = False
        self._commit(stack)
        done, total = self.progress.value(), self.progress.maximum()
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
        if stopped:
            self._set_status(f"Stopped after {done} of {total} frames (Ctrl-Z in the labels layer undoes it)")
        elif not self.status.text().startswith("Error"):
            self._set_status(f"Propagated {done} frames (Ctrl-Z in the labels layer undoes it)")
        self._update_buttons()
        self._want_prepare = True
        self._kick()

    # ================================================================ teardown
    def closeEvent(self, event) -> None:  # noqa: N802 (Qt name)
        self._teardown()
        super().closeEvent(event)

    def _teardown(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.stop()
        self._sync_timer.stop()
        self._prepare_timer.stop()
        layers = self.viewer.layers
        for emitter, slot in (
            (layers.events.inserted, self._on_layers_changed),
            (layers.events.removed, self._on_layers_removed),
            (layers.events.moved, self._on_layers_changed),
            (self.viewer.dims.events.current_step, self._on_dims),
        ):
            emitter.disconnect(slot)
        self._detach_prompt_layers()
        if self._labels is not None:
            self._labels.events.colormap.disconnect(self._on_colours)
