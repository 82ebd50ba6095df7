"""*Mark division*, *Link to mother*, *Unlink* and *Plot*: a row of the
widget (``widget.lineage``).

The part owns the division mode (the mother, her frame and the daughters'
clicks so far) and the area plot dock; the lineage itself is the binding's
(part of the prompt state, so that Undo brings it back), and the engine
follows it in the next sync (:mod:`~napari_sam2._qt.lineage_plan`).

*Mark division* on the frame on screen: the selected object (the mother)
ends on the frame before; the next two clicks on the image (any layer;
the prompt points layer is selected and leaves its add mode meanwhile)
become two new objects, each with one positive click there, their mother
recorded. The two clicks, the mother's pixels cleared from that frame on
and the daughters' masks there are one undo step (the sync that decodes
them records it). Esc, or the button again, cancels.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from qtpy.QtCore import Signal
from qtpy.QtWidgets import QGridLayout, QGroupBox, QLabel, QPushButton, QSpinBox, QVBoxLayout, QWidget

from ..engine.lineage import label_presence
from ..layers import labels_view, next_object_id
from .area_plot import AreaPlotDock
from .lineage_plan import divided, linked, removed, unlinked

ESCAPE = "Escape"
DRAG_PIXELS = 5  # a press and release further apart than this (canvas pixels) is a pan, not a click
MARK, CANCEL = "Mark division", "Cancel division"


class _Division(NamedTuple):
    mother: int
    frame: int
    clicks: list  # [(y, x)] so far


class LineageEdits(QWidget):
    """The lineage buttons, the division mode and the area plot."""

    error = Signal(str)
    status = Signal(str)

    def __init__(self, *, viewer, binding, runner, recorder, objects, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._viewer, self._binding, self._runner, self._recorder = viewer, binding, runner, recorder
        self._objects = objects  # the ObjectList (its selection)
        self._pending: _Division | None = None
        self._mode_layer = None  # the points layer a division mode took over, and its mode before
        self._mode_before: str | None = None
        self.plot = AreaPlotDock(viewer=viewer, binding=binding, parent=self)
        self._build_ui()
        objects.selected.connect(self.show_selected)
        runner.edited.connect(self.plot.refresh_later)

    def _build_ui(self) -> None:
        box = QGroupBox("Lineage")
        self.division_button = QPushButton(MARK)
        self.link_button = QPushButton("Link to mother")
        self.mother_box = QSpinBox()
        self.mother_box.setRange(0, 2**31 - 1)
        self.mother_box.setSpecialValueText("mother id")
        self.unlink_button = QPushButton("Unlink")
        self.plot_button = QPushButton("Plot")
        self.division_button.setToolTip(
            "The selected object divides on this frame: its track ends before it; click the two daughters "
            "on the image (Esc cancels). One undo step")
        self.link_button.setToolTip("Make the object with this id the selected object's mother (one undo step)")
        self.mother_box.setToolTip("The mother's id (label value)")
        self.unlink_button.setToolTip("The selected object has no mother any more (one undo step)")
        self.plot_button.setToolTip("Plot the selected object's area over time, with its mother, sisters "
                                    "and daughters")
        grid = QGridLayout(box)
        grid.addWidget(self.division_button, 0, 0)
        grid.addWidget(self.unlink_button, 0, 1)
        grid.addWidget(self.plot_button, 0, 2)
        grid.addWidget(self.link_button, 1, 0)
        grid.addWidget(self.mother_box, 1, 1)
        self.mother_label = QLabel("")
        grid.addWidget(self.mother_label, 1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(box)
        self.division_button.clicked.connect(self._on_division_button)
        self.link_button.clicked.connect(lambda _checked=False: self.link(None, None))
        self.unlink_button.clicked.connect(lambda _checked=False: self.unlink(None))
        self.plot_button.clicked.connect(lambda _checked=False: self.plot.show())

    # ------------------------------------------------------------ state
    @property
    def dividing(self) -> bool:
        """Whether the division mode waits for the daughters' clicks."""
        return self._pending is not None

    def set_enabled(self, *, stack: bool, running: bool) -> None:
        """Enable what can be used now (``stack``: an image stack is chosen)."""
        if running:
            self.cancel_division("a run started")
        usable = stack and not running and self._objects.current_id is not None
        for button in (self.division_button, self.link_button, self.unlink_button):
            button.setEnabled(usable)
        self.mother_box.setEnabled(stack and not running)
        self.plot_button.setEnabled(stack)

    def show_selected(self, _obj=None) -> None:
        """Show the selected object's mother and daughters (and plot them)."""
        obj, mothers = self._objects.current_id, self._binding.lineage.mothers
        self.mother_box.setValue(mothers.get(obj, 0) if obj is not None else 0)
        daughters = sorted(d for d, m in mothers.items() if m == obj)
        self.mother_label.setText(f"daughters {', '.join(map(str, daughters))}" if daughters else "")
        self.plot.refresh_later()

    def _refusal(self, obj: int | None, *, model: bool) -> str | None:
        """Why an edit of ``obj`` cannot be done now (``model``: it decodes)."""
        single = "a single 2D image has no lineage: it has one frame"
        if model:
            problem = self._runner.refusal(single=single)
        elif self._binding.image is None:
            problem = "choose an image first"
        else:
            problem = single if self._binding.axis is None else None
            if self._runner.running:
                problem = "a run is going on; stop it first"
        if problem is None and obj is None:
            problem = "select an object first"
        return problem

    def _frames_of(self, view) -> dict[int, list[int]]:
        """``{id: frames with pixels or prompts}`` of the stack on screen."""
        frames = {k: set(v) for k, v in label_presence(view).items()}
        for obj, frame in self._binding.wanted_prompts(self._binding.axis, self._binding.fixed_index()):
            frames.setdefault(obj, set()).add(frame)
        return {k: sorted(v) for k, v in frames.items()}

    def _view(self):
        b = self._binding
        return labels_view(b.labels.data, b.axis, b.fixed_index())

    # ------------------------------------------------------------ Mark division
    def mark_division(self, frame: int | None, obj: int | None, daughters=None) -> bool:
        """``obj`` (default: the selected object) divides on ``frame``
        (default: the one on screen). ``daughters``: ``(y, x)`` clicks, one
        per daughter (two or more); None: the next two clicks on the image
        give them. Returns False if refused."""
        b = self._binding
        obj = self._objects.current_id if obj is None else int(obj)
        problem = self._refusal(obj, model=True)
        if problem is None and not b.ensure_layers():
            problem = "choose an image first"
        if problem is None:
            frame = b.current_frame() if frame is None else int(frame)
            problem = self._division_problem(obj, frame)
        if problem is None and daughters is not None:
            daughters = np.asarray(daughters, dtype=float)
            if daughters.ndim != 2 or daughters.shape[1] != 2 or len(daughters) < 2:
                problem = (f"daughters must be two or more (y, x) clicks, one per daughter, "
                           f"got an array of shape {daughters.shape}")
        if problem is not None:
            self.error.emit(f"Mark division: {problem}")
            return False
        self.cancel_division()
        if daughters is not None:
            return self._divide(obj, frame, [tuple(d) for d in daughters])
        self._start_mode(obj, frame)
        return True

    def _division_problem(self, obj: int, frame: int) -> str | None:
        b = self._binding
        frames = b.num_frames()
        if not 1 <= frame < frames:
            return (f"frame {frame}: a division needs a frame before it for the mother "
                    f"(frames 1 to {frames - 1})")
        later = sorted(f for o, f in b.wanted_prompts(b.axis, b.fixed_index()) if o == obj and f >= frame)
        if later:
            return (f"object {obj} has prompts on frame(s) {', '.join(map(str, later))}: a mother's track ends "
                    f"before her division on frame {frame}; clear them there first")
        try:
            divided(b.lineage, obj, frame, [])
        except ValueError as exc:
            return str(exc)
        return None

    def _start_mode(self, mother: int, frame: int) -> None:
        points = self._binding.points
        self._pending = _Division(mother, frame, [])
        self._mode_layer, self._mode_before = points, str(points.mode)
        self._viewer.layers.selection.active = points
        points.mode = "pan_zoom"  # clicks add no prompt meanwhile
        points.bind_key(ESCAPE, lambda _layer: self.cancel_division("Esc"), overwrite=True)
        self._viewer.mouse_drag_callbacks.append(self._on_mouse)
        self._viewer.dims.events.current_step.connect(self._on_dims)
        self.division_button.setText(CANCEL)
        self._ask()

    def _ask(self) -> None:
        p = self._pending
        self.status.emit(f"Click daughter {len(p.clicks) + 1} of object {p.mother} on frame {p.frame} "
                         "(Esc cancels).")

    def cancel_division(self, why: str = "") -> None:
        """Leave the division mode without dividing."""
        if self._pending is None:
            return
        self._pending = None
        self._end_mode()
        if why:
            self.status.emit(f"Mark division cancelled ({why}).")

    def _end_mode(self) -> None:
        points = self._mode_layer
        points.bind_key(ESCAPE, None)
        if points is self._binding.points:
            points.mode = self._mode_before
        if self._on_mouse in self._viewer.mouse_drag_callbacks:
            self._viewer.mouse_drag_callbacks.remove(self._on_mouse)
        self._viewer.dims.events.current_step.disconnect(self._on_dims)
        self._mode_layer = self._mode_before = None
        self.division_button.setText(MARK)

    def _on_division_button(self, _checked=False) -> None:
        if self.dividing:
            self.cancel_division("cancelled by hand")
        else:
            self.mark_division(None, None)

    def _on_dims(self, event=None) -> None:
        p = self._pending
        if p is not None and self._binding.image is not None and self._binding.current_frame() != p.frame:
            self.cancel_division("the frame changed")

    def _on_mouse(self, viewer, event):
        """A plain left click (not a drag) on the canvas: a daughter's click."""
        if self._pending is None or event.button != 1 or event.modifiers:
            return
        start = np.asarray(event.pos, dtype=float)
        yield
        while event.type == "mouse_move":
            yield
        if np.linalg.norm(np.asarray(event.pos, dtype=float) - start) > DRAG_PIXELS or self._pending is None:
            return
        image = self._binding.image
        data = np.asarray(image.world_to_data(event.position), dtype=float)
        y, x = data[-2:]
        height, width = self._binding.image_shape()[-2:]
        if not (-0.5 <= y <= height - 0.5 and -0.5 <= x <= width - 0.5):
            self.status.emit("That click is outside the image: click inside it (Esc cancels).")
            return
        p = self._pending
        p.clicks.append((float(y), float(x)))
        if len(p.clicks) < 2:
            self._ask()
            return
        self._pending = None
        self._end_mode()
        self._divide(p.mother, p.frame, p.clicks)

    def _divide(self, mother: int, frame: int, clicks: list) -> bool:
        """Two (or more) new objects with a click each on ``frame``, daughters
        of ``mother``; the sync that decodes them makes it one undo step."""
        b = self._binding
        first = next_object_id(b.labels.data, [*b.object_ids, *self._lineage_ids()])
        ids = list(range(first, first + len(clicks)))
        try:
            b.set_lineage(divided(b.lineage, mother, frame, ids))
        except ValueError as exc:
            self.error.emit(f"Mark division: {exc}")
            return False
        for obj, (y, x) in zip(ids, clicks):
            b.add_point(frame, y, x, positive=True, obj=obj)
        self.status.emit(f"Object {mother} divides on frame {frame} into {', '.join(map(str, ids))} "
                         "(Undo reverts it); propagate or Track all to follow the daughters.")
        return True

    def _lineage_ids(self) -> set[int]:
        lineage = self._binding.lineage
        return set(lineage.mothers) | set(lineage.mothers.values()) | set(lineage.first) | set(lineage.last)

    # ------------------------------------------------------------ Link / Unlink
    def link(self, obj: int | None, mother: int | None) -> bool:
        """Make ``mother`` (default: the spin box) the mother of ``obj``
        (default: the selected object); one undo step. False if refused."""
        b = self._binding
        obj = self._objects.current_id if obj is None else int(obj)
        mother = self.mother_box.value() if mother is None else int(mother)
        problem = self._refusal(obj, model=False)
        if problem is None and mother < 1:
            problem = f"the mother must be an object id (1 or more), got {mother}"
        if problem is None and not b.ensure_layers():
            problem = "choose an image first"
        if problem is None:
            frames = self._frames_of(self._view())
            known = set(b.object_ids) | set(frames) | self._lineage_ids()
            try:
                state = linked(b.lineage, obj, mother, known=known, frames_of=lambda o: frames.get(o, []))
            except (KeyError, ValueError) as exc:
                problem = str(exc).strip("'\"")
        if problem is not None:
            self.error.emit(f"Link to mother: {problem}")
            return False
        self._record(state)
        self.status.emit(f"Object {obj} is a daughter of object {mother} (Undo reverts it).")
        return True

    def unlink(self, obj: int | None) -> bool:
        """``obj`` (default: the selected object) has no mother any more; one undo step."""
        b = self._binding
        obj = self._objects.current_id if obj is None else int(obj)
        problem = self._refusal(obj, model=False)
        if problem is None and obj not in b.lineage.mothers:
            problem = f"object {obj} has no mother"
        if problem is not None:
            self.error.emit(f"Unlink: {problem}")
            return False
        mother = b.lineage.mothers[obj]
        self._record(unlinked(b.lineage, obj))
        self.status.emit(f"Object {obj} is no longer a daughter of object {mother} (Undo reverts it).")
        return True

    def _record(self, state) -> None:
        """Want ``state``: one undo step now (no pixels change), the engine follows."""
        b = self._binding
        b.set_lineage(state)
        self._recorder.record(b.labels, b.snapshot())
        self.show_selected()
        self._runner.schedule_sync()

    def forget(self, obj: int) -> None:
        """``obj`` is cleared or deleted: it leaves the lineage (its daughters
        get its mother), as in the engine; part of the caller's step."""
        self.cancel_division()
        self._binding.set_lineage(removed(self._binding.lineage, obj))

    def close(self) -> None:
        self.cancel_division()
        self.plot.close()
