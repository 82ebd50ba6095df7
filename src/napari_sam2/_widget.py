"""The "SAM 2 segment & track" dock widget.

Click points (Shift-click for negative) or draw boxes on any slice, see the
mask at once, and propagate it through the stack into a Labels layer; or
let *Segment all* find every object on a slice and *Track all* follow them
all, picking up new ones as they appear. All model work runs in napari
``thread_worker``s, one task at a time; the viewer stays responsive and
every write is one undo step in the Labels layer.

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

The widget holds its parts and talks to them through methods and signals:
``controls`` (the view), ``binding`` (layers, prompts and the lineage),
``runner`` (the session and the background work), ``recorder`` (undo
steps), ``session_files`` (Save/Open, autosave), ``automatic`` (Segment
all, Track all, Show tracks) and ``lineage`` (Mark division, Link, Unlink,
the area plot).
"""

from __future__ import annotations

import time

import numpy as np
from qtpy.QtWidgets import QApplication, QVBoxLayout, QWidget

from ._qt import shortcuts
from ._qt.automatic import Automatic
from ._qt.background import Runner
from ._qt.close_watch import CloseWatch
from ._qt.controls import PUBLIC, READY, ControlsView
from ._qt.layer_binding import LayerBinding
from ._qt.layer_choice import LayerChoice
from ._qt.lineage_edits import LineageEdits
from ._qt.recorder import Recorder
from ._qt.session_files import SessionFiles
from ._qt.steps import PromptState

__all__ = ["SAM2Widget"]

DIRECTIONS = ("forward", "backward", "both")


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
    * ``segment_all(frame=None)``, ``track_all(detect_every=None, start=None,
      stop=None, divisions=None)``, ``show_tracks(graph=None)``, ``automatic_options``
    * ``mark_division(frame=None, obj=None, daughters=None)``,
      ``link_to_mother(obj=None, mother=None)``, ``unlink(obj=None)``,
      ``show_plot()``, ``lineage_state``
    * ``clear_object(obj=None)``, ``delete_object(obj=None)``, ``reset()``
    * ``save_session(path)``, ``open_session(path)``, ``set_autosave(where)``
    * ``wait(timeout=None) -> bool``, ``busy``, ``session``,
      ``image_layer``, ``labels_layer``, ``points_layer``, ``shapes_layer``
    """

    def __init__(self, napari_viewer, *, model=None) -> None:
        super().__init__()
        # napari hands plugins a proxy that wraps every object it returns in a
        # new proxy; the widget compares layers by identity, so it keeps the
        # viewer itself (and uses its public API only).
        self.viewer = getattr(napari_viewer, "__wrapped__", napari_viewer)
        self.controls = ControlsView()
        for name in PUBLIC:  # for scripts and tests: the controls' widgets
            setattr(self, name, getattr(self.controls, name))
        self.candidate_label, self.candidate_button = self.candidates.label, self.candidates.button
        self.intensity_min, self.intensity_max = self.intensity.min_box, self.intensity.max_box
        self.recorder = Recorder(restore=self._restore_state)
        self.binding = LayerBinding(self.viewer, objects=self.object_list, recorder=self.recorder, parent=self)
        self.runner = Runner(binding=self.binding, recorder=self.recorder, intensity=self.intensity,
                             loading=lambda: self.model_panel.busy, parent=self)
        self.session_files = SessionFiles(binding=self.binding, runner=self.runner, recorder=self.recorder,
                                          wait=self.wait)  # Save/Open session and autosave
        self.controls.insert_part(self.session_files)
        self.automatic = Automatic(viewer=self.viewer, binding=self.binding, runner=self.runner,
                                   controls=self.controls, parent=self)  # Segment all, Track all, tracks
        self.choice = LayerChoice(viewer=self.viewer, binding=self.binding, runner=self.runner,
                                  controls=self.controls, parent=self)  # image, labels, axis
        self.lineage = LineageEdits(viewer=self.viewer, binding=self.binding, runner=self.runner,
                                    recorder=self.recorder, objects=self.object_list)  # divisions, plot
        self.controls.insert_part(self.lineage, after=self.controls.automatic_box)
        QVBoxLayout(self).addWidget(self.controls)
        self._closed = False

        self._connect_controls()
        self._connect_parts()
        self._close_watch = CloseWatch(self)
        self._close_watch.closing.connect(self._teardown)
        self.viewer.dims.events.current_step.connect(self._on_dims)
        self.choice.show_layers()
        image = self.binding.default_image()
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
        self.model_panel.finished.connect(self.runner.kick)
        self.image_box.activated.connect(lambda i: self.set_image(self.image_box.itemData(i)))
        self.labels_box.activated.connect(lambda i: self.set_labels(self.labels_box.itemData(i)))
        self.axis_box.activated.connect(lambda i: self.set_axis(self.axis_box.itemData(i)))
        self.object_list.selected.connect(lambda _obj: (self._update_buttons(), self._refresh_states()))
        self.negative_box.toggled.connect(self.binding.set_negative)
        for button, press in (
            (self.new_button, self.new_object), (self.clear_button, self.clear_object),
            (self.delete_button, self.delete_object), (self.forward_button, lambda: self.propagate("forward")),
            (self.backward_button, lambda: self.propagate("backward")),
            (self.both_button, lambda: self.propagate("both")), (self.stop_button, self.stop),
            (self.segment_all_button, self.segment_all), (self.track_all_button, self.track_all),
            (self.show_tracks_button, self.show_tracks), (self.reset_button, lambda: self.reset(confirm=True)),
            (self.undo_button, self.undo), (self.redo_button, self.redo),
        ):
            button.clicked.connect(lambda _checked=False, press=press: press())
        self.help_link.linkActivated.connect(lambda _link: self.show_help())
        self.frame_strip.frame_clicked.connect(self.go_to_frame)
        self.candidates.cycle.connect(lambda: self.cycle_candidate())
        self.intensity.changed.connect(self.runner.request_intensity)
        self.range_box.toggled.connect(lambda _on: self._update_buttons())

    def _connect_parts(self) -> None:
        binding, runner, files = self.binding, self.runner, self.session_files
        binding.prompts_changed.connect(runner.schedule_sync)
        binding.object_made.connect(self._on_object_made)
        binding.undo_requested.connect(self.undo)
        binding.redo_requested.connect(self.redo)
        runner.status.connect(self._set_status)
        runner.error.connect(self._error)
        runner.changed.connect(self._update_buttons)
        runner.states_changed.connect(self._refresh_states)
        runner.candidates.connect(lambda found: self.candidates.show_candidates(found, self.current_object))
        runner.edited.connect(files.changed)  # autosave, if on
        runner.progress.connect(self.controls.show_progress)
        runner.run_ended.connect(self.controls.end_progress)
        runner.frame_written.connect(self._on_frame_written)
        runner.prepared.connect(lambda f, s: self._set_status(f"Frame {f} ready ({s:.1f} s). " + self._ready_text()))
        for part in (self.automatic, self.choice, files, self.lineage):
            part.error.connect(self._error)
            part.status.connect(self._set_status)
        self.choice.changed.connect(self._update_buttons)
        self.choice.ready.connect(lambda: self._set_status(self._ready_text()))
        files.opened.connect(self._on_session_opened)

    def _update_buttons(self) -> None:
        image, running = self.binding.image, self.runner.running is not None
        self.controls.enable(have_image=image is not None, running=running, stopping=self.runner.stopping,
                             stack=image is None or self.binding.axis is not None)
        self.session_files.setEnabled(image is not None and not running)
        self.lineage.set_enabled(stack=image is not None and self.binding.axis is not None, running=running)

    def _ready_text(self) -> str:
        """What to do next, when nothing else is worth saying."""
        image = self.binding.image
        if image is None:
            return "Choose an image layer to segment."
        if self.runner.model is None:
            return f"Load a model (above) to segment {image.name!r}."
        if self.binding.axis is None:
            return "A single image: clicks and boxes segment it (nothing to propagate)."
        return READY

    def _set_status(self, text: str) -> None:
        self.controls.show_status(text)

    def _error(self, message: str) -> None:
        self.controls.show_error(message)

    # ================================================================ public API
    image_layer = property(lambda self: self.binding.image, doc="The Image layer segmented (or None).")
    labels_layer = property(lambda self: self.binding.labels, doc="The Labels layer written into (or None).")
    points_layer = property(lambda self: self.binding.points, doc="The Points layer of the clicks (or None).")
    shapes_layer = property(lambda self: self.binding.shapes, doc="The Shapes layer of the boxes (or None).")
    axis = property(lambda self: self.binding.axis, doc="The propagation axis of the image data (None for 2D).")
    model = property(lambda self: self.runner.model, doc="The SAM 2 network in use (or None).")
    objects = property(lambda self: self.object_list.ids, doc="The object ids (label values) listed.")
    current_object = property(lambda self: self.object_list.current_id, doc="The selected object (or None).")
    _masks = property(lambda self: self.binding.masks, doc="The mask prompts {(object, frame): PaintedMask}.")

    @property
    def session(self):
        """The :class:`~napari_sam2.StackSession` in use (None before the
        first prompt or slice change with a model); use it only while
        :attr:`busy` is False."""
        return self.runner.session

    @property
    def busy(self) -> bool:
        """Whether work is running or waiting to run."""
        return bool(
            self.runner.busy
            or self.binding.drawing_box  # a box being drawn is applied once released
            or self.model_panel.busy
            or self.intensity.pending
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
        self.runner.set_model(model)
        self.model_panel.status.setText(
            f"Model: {model.config.name} at {model.image_size} px on {model.device}"
        )
        self._set_status("Model ready. " + self._ready_text())
        self.runner.prepare_later()
        self.runner.kick()

    def load_model(self, name_or_path, *, device: str | None = None, image_size: int | None = None) -> None:
        """Load (downloading if needed) a model by name or checkpoint path, in a worker."""
        self.model_panel.load(name_or_path, device=device, image_size=image_size)

    def set_image(self, layer) -> bool:
        """Segment this Image layer (a layer or its name). False if refused."""
        return self.choice.set_image(layer)

    def set_labels(self, layer=None) -> bool:
        """Write into this Labels layer (a layer or name), or a new one (None)."""
        return self.choice.set_labels(layer)

    def set_axis(self, axis: int) -> bool:
        """Track along this axis of the image data (4D stacks offer a choice)."""
        return self.choice.set_axis(axis)

    def new_object(self) -> int | None:
        """Add an object with the next free label id and select it."""
        if not self.binding.ensure_layers():
            self._error("choose an image first")
            return None
        obj = self.binding.add_object()
        self._on_object_made(obj)
        return obj

    def select_object(self, obj: int) -> None:
        """Make ``obj`` receive the next prompts (it is added if new)."""
        self.object_list.add(int(obj))

    def add_point(self, frame: int, y: float, x: float, *, positive: bool = True, obj: int | None = None) -> None:
        """Add a click on ``frame`` at ``(y, x)`` data pixels for ``obj``
        (default the selected object; a new one if there is none)."""
        if not self.binding.ensure_layers():
            self._error("choose an image first")
            return
        self.binding.add_point(frame, y, x, positive=positive, obj=obj)

    def add_box(self, frame: int, y0: float, x0: float, y1: float, x1: float, *, obj: int | None = None) -> None:
        """Add a box prompt ``(y0, x0, y1, x1)`` on ``frame`` for ``obj``."""
        if not self.binding.ensure_layers():
            self._error("choose an image first")
            return
        self.binding.add_box(frame, y0, x0, y1, x1, obj=obj)

    def propagate(self, direction: str = "forward", start: int | None = None, stop: int | None = None) -> None:
        """Track all objects ``"forward"``, ``"backward"`` or ``"both"``, over
        frames ``start`` to ``stop`` (inclusive; default the range set in the
        widget, or the whole axis)."""
        if direction not in DIRECTIONS:
            self._error(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
            return
        if not self._can_run(single="a single 2D image has no other frames to propagate to"):
            return
        if start is None and stop is None:
            start, stop = self.controls.span()
        self.runner.request_run("propagate", direction, start, stop)

    # ================================================================ automatic
    @property
    def automatic_options(self):
        """The :class:`~napari_sam2.AutomaticOptions` of Segment all and Track
        all; None (the default): 16 x 16 points up to 256 px frames, 32 x 32 above."""
        return self.automatic.options

    @automatic_options.setter
    def automatic_options(self, options) -> None:
        self.automatic.options = options

    def segment_all(self, frame: int | None = None, *, options=None) -> None:
        """Find every object on ``frame`` (default: the one on screen); the
        ones the labels do not hold yet become objects, with their masks as
        prompts (one undo step). ``options``: an ``AutomaticOptions``
        (default :attr:`automatic_options`)."""
        if self._can_run(single=None):
            self.automatic.segment_all(frame, options)

    def track_all(self, *, detect_every: int | None = None, start: int | None = None, stop: int | None = None,
                  options=None, divisions=None) -> None:
        """Find every object on the first frame (of ``start`` to ``stop``;
        default the "Only frames" span, or the whole axis), track them all
        forward and look for new ones every ``detect_every`` frames (default:
        the spin box); one undo step. ``divisions``: find divisions (True,
        False, or ``DivisionOptions``; None: the "Find divisions" box). See
        :meth:`StackSession.track_everything`."""
        if self._can_run(single="a single 2D image has no other frames to track; use Segment all"):
            self.automatic.track_all(detect_every, start, stop, options, divisions)

    def show_tracks(self, graph: dict | None = None):
        """Add (or update) the Tracks layer "<image> SAM 2 tracks": each
        object's centroid on each frame of the labels. ``graph``:
        ``{daughter: [mother]}`` (napari's lineage graph; default: the
        session's lineage, if it has one). Returns the layer, or None."""
        return self.automatic.show_tracks(graph)

    # ================================================================ lineage
    lineage_state = property(lambda self: self.binding.lineage,
                             doc="The lineage (``LineageState``: mothers, track limits) of the objects.")

    def mark_division(self, frame: int | None = None, obj: int | None = None, daughters=None) -> bool:
        """``obj`` (default: the selected object) divides on ``frame``
        (default: the one on screen): its track ends on the frame before and
        two new objects, its daughters, get one click each there:
        ``daughters`` ``[(y, x), (y, x)]``, or None: the next two clicks on
        the image (Esc cancels). One undo step; False if refused."""
        return self.lineage.mark_division(frame, obj, daughters)

    def link_to_mother(self, obj: int | None = None, mother: int | None = None) -> bool:
        """Make ``mother`` (default: the "mother id" box) the mother of ``obj``
        (default: the selected object); one undo step. False if refused."""
        return self.lineage.link(obj, mother)

    def unlink(self, obj: int | None = None) -> bool:
        """``obj`` (default: the selected object) has no mother any more; one undo step."""
        return self.lineage.unlink(obj)

    def show_plot(self):
        """Dock the plot of the selected object's area over time and its relatives'; returns it."""
        return self.lineage.plot.show()

    def _can_run(self, *, single: str | None) -> bool:
        """Whether a run can be asked for now (else an error says why)."""
        problem = self.runner.refusal(single=single)
        if problem:
            self._error(problem)
        return not problem

    # ================================================================ sessions
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
        """Stop a propagation or Track all after the frame being computed."""
        self.runner.stop()

    def clear_object(self, obj: int | None = None) -> None:
        """Remove an object's prompts and its masks on every frame (one undo step)."""
        self._clear(obj, delete=False)

    def delete_object(self, obj: int | None = None) -> None:
        """Clear an object and remove it from the list (one undo step)."""
        self._clear(obj, delete=True)

    def _clear(self, obj: int | None, *, delete: bool) -> None:
        obj = self.current_object if obj is None else int(obj)
        if obj is None or self.runner.running or not self.binding.ensure_layers():
            return
        self.binding.forget_object(obj)
        self.lineage.forget(obj)
        if delete and obj in self.objects:
            self.object_list.remove(obj)
            self.binding.update_defaults()
            self._update_buttons()
        if not self.runner.request_clear(obj):  # else its pixels go in the same step
            self.recorder.record(self.binding.labels, self.binding.snapshot())
        self.runner.schedule_sync()
        self.runner.kick()

    def reset(self, *, confirm: bool = False) -> bool:
        """Forget all objects and prompts (the labels stay as they are); one
        undo step. With ``confirm`` (the Reset button) a dialog asks first.
        Returns whether it was done."""
        if self.runner.running:
            self._error("stop the propagation first")
            return False
        if confirm and not self.controls.confirm_reset(len(self.objects)):
            return False
        self.binding.forget_prompts()
        self.binding.set_lineage(None)
        self.runner.forget_session()
        self.object_list.set_ids([])
        self.binding.update_defaults()
        self._update_buttons()
        self.recorder.record(self.binding.labels, self.binding.snapshot())
        self._set_status("Reset: no objects (Undo brings them back).")
        return True

    def undo(self) -> None:
        """Undo the last step (as Ctrl-Z in the Labels layer does)."""
        if self.binding.labels is not None:
            self.binding.labels.undo()

    def redo(self) -> None:
        """Redo the last undone step (Ctrl-Shift-Z in the Labels layer)."""
        if self.binding.labels is not None:
            self.binding.labels.redo()

    def step_object(self, delta: int) -> int | None:
        """Select the next (``delta=1``) or previous (-1) object in the list."""
        return self.object_list.step(delta)

    def go_to_frame(self, frame: int) -> None:
        """Move the viewer to ``frame`` of the propagation axis."""
        self.binding.show_frame(frame)

    def use_painted_mask(self, frame: int, obj: int | None = None) -> bool:
        """Make ``obj``'s pixels on ``frame`` in the Labels layer (default:
        the selected object) its mask prompt there (one undo step); the
        next propagation carries it. Returns False if nothing was done."""
        obj = self.current_object if obj is None else int(obj)
        if obj is None or not self.binding.ensure_layers():
            self._error("choose an image and an object first")
            return False
        problem = self.binding.mask_from_labels(obj, int(frame))
        if problem:
            self._error(problem)
            return False
        self.recorder.record(self.binding.labels, self.binding.snapshot())
        self.runner.schedule_sync()
        return True

    def frame_states(self, obj: int | None = None) -> np.ndarray | None:
        """Per frame: 0 tracked and current, 1 not reached, 2 out of date
        (``napari_sam2.engine.FRAME_*``), for ``obj`` or all objects (None);
        None without an image."""
        return self.runner.frame_states(obj)

    def _refresh_states(self) -> None:
        if self._closed:
            return
        obj = self.current_object
        self.frame_strip.set_states(self.frame_states(obj) if obj is not None else None, self.frame_states())
        image = self.binding.image
        self.frame_strip.set_current_frame(self.binding.current_frame() if image is not None else None)

    @property
    def closed(self) -> bool:
        return self._closed

    def show_help(self) -> None:
        """A short guide and the keyboard shortcuts (as bound now)."""
        self.controls.show_help(shortcuts.help_text())

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
        self.binding.set_choice(obj, frame, k)
        self.runner.request_sync()
        return k

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

    # ================================================================ what the parts tell
    def _on_model_failed(self, message: str) -> None:
        self._error(message)
        self.runner.cancel_runs()

    def _on_object_made(self, obj: int) -> None:
        self._update_buttons()
        self.recorder.record(self.binding.labels, self.binding.snapshot())

    def _on_dims(self, event=None) -> None:
        if self.binding.image is not None:
            self.frame_strip.set_current_frame(self.binding.current_frame())
        self.runner.on_dims()

    def _on_frame_written(self, stack, frame: int) -> None:
        if self.follow_box.isChecked() and stack.axis is not None and stack.image in self.viewer.layers:
            self.binding.show_frame(frame)
            stack.labels.refresh()
        elif self.binding.image is not None and self.binding.current_frame() == frame:
            stack.labels.refresh()

    def _on_session_opened(self) -> None:
        self.candidates.show_candidates(None, self.current_object)
        self._update_buttons()
        self._refresh_states()

    def _restore_state(self, state: PromptState, undone: bool) -> None:
        """Undo/redo: put the prompt layers and objects back as in ``state``;
        the engine follows with the next sync (the labels are napari's)."""
        if self.runner.running:
            self.stop()
        self.lineage.cancel_division()
        self.binding.restore(state)
        self.lineage.show_selected()
        self.candidates.show_candidates(None, self.current_object)
        self._update_buttons()
        self.runner.note_restored()
        self.runner.schedule_sync()
        what = "Undone" if undone else "Redone"
        self._set_status(f"{what}: objects, prompts, labels and lineage as they were.")

    # ================================================================ teardown
    def _teardown(self) -> None:
        if self._closed:
            return
        self._closed = True
        shortcuts.unregister(self.viewer, self)
        self.runner.close()
        self.viewer.dims.events.current_step.disconnect(self._on_dims)
        self.lineage.close()
        self.binding.close()
        self.intensity.stop()
