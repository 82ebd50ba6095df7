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

import numpy as np
from napari.layers import Image, Labels, Points, Shapes
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication

from ._qt.background import BackgroundWork
from ._qt.controls import NEW_LABELS, READY, Controls
from ._qt.history import LabelsHistory
from ._qt.jobs import Stack
from ._qt.layer_binding import LayerBinding
from ._qt import shortcuts
from ._qt.close_watch import CloseWatch
from ._qt.session_files import SessionFiles
from ._qt.steps import PromptState, StepHistory, snapshot, write_prompt_layers
from ._qt.frame_strip import NOT_REACHED
from .layers import data_position, infer_axis, next_object_id

__all__ = ["SAM2Widget"]

DIRECTIONS = ("forward", "backward", "both")
PREPARE_DELAY_MS = 250  # debounce of the image encoding after the slice changes
SYNC_DELAY_MS = 20  # coalesces the events of one edit of the prompt layers


class SAM2Widget(LayerBinding, BackgroundWork, Controls):
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
    * ``save_session(path)``, ``open_session(path)``, ``set_autosave(where)``
    * ``wait(timeout=None) -> bool``, ``busy``, ``session``,
      ``image_layer``, ``labels_layer``, ``points_layer``, ``shapes_layer``
    """

    def __init__(self, napari_viewer, *, model=None) -> None:
        super().__init__()
        self.session_files = SessionFiles(self)  # Save/Open session and autosave
        self.layout().insertWidget(self.layout().count() - 2, self.session_files)
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
        self._stack: Stack | None = None
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
        self._steps = StepHistory(restore=self._restore_state)
        self._masks: dict = {}  # (object, frame) -> PaintedMask: mask prompts
        self._choices: dict = {}  # (object, frame) -> index of SAM's candidate chosen for the clicks
        self._last_prompt: tuple[int, int] | None = None  # (object, frame) of the latest click/box
        # prompts an undo/redo put back, for the next sync (see SyncJob.restored)
        self._restored: dict | None = None
        self._restored_stack: Stack | None = None
        self._committing = False  # while the widget adds a step to the labels' history
        self._labels_removed: str | None = None  # name of a labels layer the user removed
        self._frames_seen: set[int] = set()  # frames written by the running propagation
        self._want_intensity = False  # the intensity choice changed since the session took it
        self._range_value = None  # the intensity range the session was given
        self._closed = False

        self._connect_controls()
        self._close_watch = CloseWatch(self)
        self._close_watch.closing.connect(self._teardown)
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
        self._set_status(self._ready_text())
        shortcuts.register(self.viewer, self)

    def _connect_controls(self) -> None:
        self.model_panel.loaded.connect(lambda model, _text: self.set_model(model))
        self.model_panel.failed.connect(self._on_model_failed)
        self.model_panel.finished.connect(self._kick)
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
        self.reset_button.clicked.connect(lambda: self.reset(confirm=True))
        self.undo_button.clicked.connect(lambda: self.undo())
        self.redo_button.clicked.connect(lambda: self.redo())
        self.help_link.linkActivated.connect(lambda _link: self.show_help())
        self.frame_strip.frame_clicked.connect(self.go_to_frame)
        self.candidates.cycle.connect(lambda: self.cycle_candidate())
        self.intensity.changed.connect(self._request_intensity)
        # for scripts and tests: the parts' controls
        self.candidate_label, self.candidate_button = self.candidates.label, self.candidates.button
        self.intensity_min, self.intensity_max = self.intensity.min_box, self.intensity.max_box
        self.range_box.toggled.connect(lambda _on: self._update_buttons())

    def _on_model_failed(self, message: str) -> None:
        self._error(message)
        self._want_propagate = None

    def _update_buttons(self) -> None:
        self.enable(
            have_image=self._image is not None,
            running=self._propagation is not None,
            stopping=self._stopping,
            stack=self._image is None or self._axis is not None,
        )
        self.session_files.setEnabled(self._image is not None and self._propagation is None)

    def _ready_text(self) -> str:
        """What to do next, when nothing else is worth saying."""
        if self._image is None:
            return "Choose an image layer to segment."
        if self._model is None:
            return f"Load a model (above) to segment {self._image.name!r}."
        if self._axis is None:
            return "A single image: clicks and boxes segment it (nothing to propagate)."
        return READY

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
            or self._drawing_box  # a box being drawn is applied once released
            or self.model_panel.busy
            or self._sync_timer.isActive()
            or self._want_sync
            or self._want_clear
            or self._want_propagate is not None
            or self.intensity.pending
            or (self._want_intensity and self._session is not None)
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
        self._set_status("Model ready. " + self._ready_text())
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
        self.intensity.watch(layer)
        self._axis = infer_axis(self._image_shape(), layer.axis_labels).axis
        self._labels = None
        self._setup_prompt_layers()
        self._adopt_labels(self._find_default_labels())
        self._masks = {}
        self._choices = {}
        self.object_list.set_ids(self._prompted_objects())
        self._steps.reset(self._snapshot())
        self._refresh_layer_choices()
        self._refresh_axis_choices()
        self._update_defaults()
        self._want_prepare = True
        self._schedule_sync()
        self._update_buttons()
        self._set_status(self._ready_text())
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
        obj = self._add_object()
        self._record_step()
        return obj

    def _add_object(self) -> int:
        obj = next_object_id(self._labels.data, self.objects)
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
        if self._axis is None:
            self._error("a single 2D image has no other frames to propagate to")
            return
        if self._model is None and not self.model_panel.busy:
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

    def save_session(self, path) -> bool:
        """Save objects, prompts and labels to a folder or ``.zip`` (see README)."""
        return self.session_files.save(path)

    def open_session(self, path) -> bool:
        """Open a saved session over this image with this model (one undo step)."""
        return self.session_files.open(path)

    def set_autosave(self, where) -> None:
        """Autosave after each propagation and correction: False/None off, True
        beside the image file, or a folder."""
        self.session_files.set_autosave(where)

    def stop(self) -> None:
        """Stop a propagation after the frame being computed."""
        if self._propagation is not None and not self._stopping:
            self._stopping = True
            self._propagation[0].quit()
            self._set_status("Stopping…")
            self._update_buttons()

    def clear_object(self, obj: int | None = None) -> None:
        """Remove an object's prompts and its masks on every frame (one undo step)."""
        self._clear(obj, delete=False)

    def delete_object(self, obj: int | None = None) -> None:
        """Clear an object and remove it from the list (one undo step)."""
        self._clear(obj, delete=True)

    def _clear(self, obj: int | None, *, delete: bool) -> None:
        obj = self.current_object if obj is None else int(obj)
        if obj is None or self._propagation is not None or not self._ensure_layers():
            return
        self._delete_prompts(obj)
        self._masks = {k: v for k, v in self._masks.items() if k[0] != obj}
        self._choices = {k: v for k, v in self._choices.items() if k[0] != obj}
        if delete and obj in self.objects:
            self.object_list.remove(obj)
            self._update_defaults()
            self._update_buttons()
        session = self._session
        if session is not None and obj in session.object_ids:
            self._want_clear.append(obj)  # its pixels go in the same step
        else:
            self._record_step()
        self._schedule_sync()
        self._kick()

    def reset(self, *, confirm: bool = False) -> bool:
        """Forget all objects and prompts (the labels stay as they are); one
        undo step. With ``confirm`` (the Reset button) a dialog asks first.
        Returns whether it was done."""
        if self._propagation is not None:
            self._error("stop the propagation first")
            return False
        if confirm and not self._confirm_reset():
            return False
        self._quiet += 1
        try:
            if self._points is not None and len(self._points.data):
                self._points.data = np.zeros((0, self._points.ndim))
            if self._shapes is not None and self._shapes.nshapes:
                self._shapes.selected_data = set(range(self._shapes.nshapes))
                self._shapes.remove_selected()
        finally:
            self._quiet -= 1
        self._masks = {}
        self._choices = {}
        self._forget_session()
        self._want_clear = []
        self.object_list.set_ids([])
        self._update_defaults()
        self._update_buttons()
        self._record_step()
        self._set_status("Reset: no objects (Undo brings them back).")
        return True

    def _confirm_reset(self) -> bool:
        from qtpy.QtWidgets import QMessageBox

        n = len(self.objects)
        answer = QMessageBox.question(
            self,
            "Reset SAM 2",
            f"Forget all {n} object(s) and their prompts? The labels stay; Undo brings them back.",
            QMessageBox.Reset | QMessageBox.Cancel,
            QMessageBox.Cancel,
        )
        return answer == QMessageBox.Reset

    def undo(self) -> None:
        """Undo the last step (as Ctrl-Z in the Labels layer does)."""
        if self._labels is not None:
            self._labels.undo()

    def redo(self) -> None:
        """Redo the last undone step (Ctrl-Shift-Z in the Labels layer)."""
        if self._labels is not None:
            self._labels.redo()

    def step_object(self, delta: int) -> int | None:
        """Select the next (``delta=1``) or previous (-1) object in the list."""
        ids = self.objects
        if not ids:
            return None
        current = self.current_object
        i = ids.index(current) if current in ids else -1
        obj = ids[(i + delta) % len(ids)]
        self.object_list.select(obj)
        return obj

    def go_to_frame(self, frame: int) -> None:
        """Move the viewer to ``frame`` of the propagation axis."""
        if self._image is None or self._axis is None:
            return
        pos = list(data_position(self._position(), self._image_shape()))
        pos[self._axis] = int(frame)
        world = self._image.data_to_world(pos)
        self.viewer.dims.set_point(self.viewer.dims.ndim - self._image.ndim + self._axis, world[self._axis])

    def frame_states(self, obj: int | None = None) -> np.ndarray | None:
        """Per frame: 0 tracked and current, 1 not reached, 2 out of date
        (``napari_sam2.engine.FRAME_*``), for ``obj`` or all objects (None);
        None without an image."""
        if self._image is None:
            return None
        frames = self._image_shape()[self._axis] if self._axis is not None else 1
        session = self._session
        if session is not None and not hasattr(session, "frame_states"):
            return None  # an engine without frame states (before issue 18's engine part)
        if session is None or (obj is not None and obj not in session.object_ids):
            return np.full(frames, NOT_REACHED, dtype=np.int8)
        return np.asarray(session.frame_states(obj), dtype=np.int8)

    def _refresh_states(self) -> None:
        if self._closed:
            return
        obj = self.current_object
        self.frame_strip.set_states(self.frame_states(obj) if obj is not None else None, self.frame_states())
        self.frame_strip.set_current_frame(self._current_frame() if self._image is not None else None)

    @property
    def closed(self) -> bool:
        return self._closed

    def show_help(self) -> None:
        """A short guide and the keyboard shortcuts (as bound now)."""
        from qtpy.QtWidgets import QMessageBox

        QMessageBox.information(self, "SAM 2 help", shortcuts.help_text())

    # ================================================================ candidates
    def cycle_candidate(self, step: int = 1) -> int | None:
        """Show the next (``step=1``) or previous of SAM's candidate masks for
        the selected object's latest clicks, best predicted IoU first, then
        the model's own pick again; one undo step. Returns the index chosen
        (None: the model's pick)."""
        choice = self.candidates.next_choice(self.current_object, step)
        if choice is None or self.busy:
            self._error("click the object first (and wait for its mask)")
            return None
        obj, frame, k = choice
        if k is None:
            self._choices.pop((obj, frame), None)
        else:
            self._choices[(obj, frame)] = k
        self._want_sync = True
        self._kick()
        return k

    def _show_candidates(self, found) -> None:
        self.candidates.show_candidates(found, self.current_object)

    # ================================================================ intensity
    @property
    def intensity_mode(self) -> str:
        """``"layer"`` (the image layer's contrast limits), ``"auto"`` or ``"fixed"``."""
        return self.intensity.mode

    def set_intensity(self, mode: str, lo: float | None = None, hi: float | None = None) -> bool:
        """How image values map to the model's input: ``"layer"`` follows the
        Image layer's contrast limits (the default; for the whole stack),
        ``"auto"`` the engine's automatic range, ``"fixed"`` ``(lo, hi)``.
        Cached image features are kept per range; frames are encoded again
        when next needed. Returns False if refused."""
        problem = self.intensity.set_mode(mode, lo, hi)
        if problem is not None:
            self._error(problem)
            return False
        return True

    def intensity_range(self):
        """The range the chosen mode gives now: ``(lo, hi)`` or ``"auto"``."""
        return self.intensity.value()

    def _request_intensity(self) -> None:
        self._want_intensity = True
        self._kick()

    # ================================================================ steps
    def _snapshot(self) -> PromptState:
        return snapshot(self.objects, self.current_object, self._points, self._shapes, self._masks,
                        self._choices)

    def _record_step(self) -> None:
        """A step without pixel changes (new object, reset, ...), if the
        prompt state changed."""
        after = self._snapshot()
        before = self._steps.state
        if self._labels is None or after.same(before):
            return
        self._steps.record(self._labels, before if before is not None else after, after)

    def _step_marker(self, layer, after: PromptState):
        """``marker(pixels_changed)`` for ``LabelsHistory.commit``."""
        def make(pixels: bool):
            before = self._steps.state
            if not pixels and after.same(before):
                return None
            return self._steps.marker(
                before if before is not None else after, after, ndim=layer.ndim, dtype=layer.data.dtype
            )

        return make

    def _restore_state(self, state: PromptState, undone: bool) -> None:
        """Undo/redo: put the prompt layers and objects back as in ``state``;
        the engine follows with the next sync (the labels are napari's)."""
        if self._propagation is not None:
            self.stop()
        self._quiet += 1
        try:
            write_prompt_layers(state, self._points, self._shapes)
        finally:
            self._quiet -= 1
        self._masks = state.mask_dict()
        self._choices = state.choice_dict()
        self._show_candidates(None)
        self.object_list.set_ids(state.objects, current=state.current)
        self._on_colours()
        self._update_defaults()
        self._update_buttons()
        stack = self._current_stack() if self._model is not None else None
        if stack is not None:
            self._restored, self._restored_stack = self._wanted_prompts(stack.axis, dict(stack.index)), stack
        self._schedule_sync()
        what = "Undone" if undone else "Redone"
        self._set_status(f"{what}: objects, prompts and labels as they were.")

    # ================================================================ teardown
    def _teardown(self) -> None:
        if self._closed:
            return
        self._closed = True
        shortcuts.unregister(self.viewer, self)
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
        self._release_labels()
        self.intensity.stop()

