"""Save session… / Open session… and autosave for the widget.

A part the widget holds (``widget.session_files``) and calls; it reads and
writes the widget's state only through the methods of the parts it is
given (the layer binding, the runner that holds the session, the undo
recorder), in the main thread, and reports through its signals. The file format is the engine's
(:mod:`napari_sam2.engine.persist`): ``session.save`` writes it and
``StackSession.load`` checks it (shape, model, format) before anything in
the widget changes.

Opening rebuilds the widget from the file: the objects, their clicks and
boxes in the prompt layers (mapped into the layers' coordinates with the
stack's axis and fixed indices), mask prompts as painted masks, and the
labels, as one undo step. The loaded session becomes the widget's, so which
frames are current survives (propagating again after opening recomputes
nothing that was current), and so do the candidates chosen for clicks.

Autosave follows the undo recorder: every new step (a click, a correction,
a propagation, a cleared object, an intensity change, a division edit:
whatever action records one) saves the session once the action is over,
so a crash loses at most the last step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from qtpy.QtCore import QTimer, Signal
from qtpy.QtWidgets import QCheckBox, QFileDialog, QHBoxLayout, QPushButton, QWidget

from ..layers import labels_view
from .jobs import image_snapshot
from .steps import PaintedMask, PromptState

SUFFIX = ".sam2"


class SessionFiles(QWidget):
    """The Save/Open buttons and the autosave switch of the widget."""

    error = Signal(str)
    status = Signal(str)
    opened = Signal()  # a session was opened: objects, prompts and labels are the file's

    def __init__(self, *, binding, runner, recorder, wait: Callable[[], bool],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._binding, self._runner, self._recorder = binding, runner, recorder
        self._wait = wait  # applies the pending prompt edits
        self._autosave: bool | Path = False  # False: off; True: beside the image file; a folder
        self.save_button = QPushButton("Save session…")
        self.open_button = QPushButton("Open session…")
        self.autosave_box = QCheckBox("Autosave")
        self.save_button.setToolTip("Save objects, prompts and labels to a session folder (.sam2) or a .zip")
        self.open_button.setToolTip("Open a saved session over this image with this model (one undo step)")
        self.autosave_box.setToolTip(
            "After each step (click, propagation, correction, clear), save the session to "
            "<image name>.sam2 beside the image file"
        )
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.save_button)
        row.addWidget(self.open_button)
        row.addWidget(self.autosave_box)
        self.save_button.clicked.connect(self._ask_save)
        self.open_button.clicked.connect(self._ask_open)
        self.autosave_box.toggled.connect(self._on_autosave_toggled)
        self.last_autosave: Path | None = None  # where the latest autosave went
        self._unsaved = False  # a step was recorded since the last autosave
        self._queued = False  # an autosave waits for the action to end
        recorder.add_listener(self._step_recorded)  # every action's undo step

    # ------------------------------------------------------------ save
    def save(self, path) -> bool:
        """Write the widget's session to ``path`` (a folder or a ``.zip``),
        after the pending prompt edits are applied. False if not saved."""
        if self._runner.running:
            self.error.emit("stop the propagation before saving the session")
            return False
        self._wait()
        try:
            self._write(Path(path))
        except Exception as exc:
            self.error.emit(f"could not save the session to {str(path)!r}: {exc}")
            return False
        self.status.emit(f"Session saved to {str(path)!r}.")
        return True

    def _write(self, path: Path) -> None:
        session = self._runner.session
        if session is None:
            raise ValueError("nothing to save: add a point or a box first")
        meta = {}
        for obj in session.object_ids:
            colour = self._binding.colour_of(obj)
            meta[obj] = {"colour": list(colour)} if colour is not None else {}
        session.save(path, objects_meta=meta, model_source=self._runner.model.config.name)

    def _ask_save(self) -> None:
        default = self.autosave_path() or Path.home() / f"session{SUFFIX}"
        path, _ = QFileDialog.getSaveFileName(
            self, "Save SAM 2 session", str(default), f"Session folder (*{SUFFIX});;Zip file (*.zip)"
        )
        if path:
            self.save(path)

    # ------------------------------------------------------------ open
    def open(self, path) -> bool:
        """Replace the widget's objects, prompts and labels by the session at
        ``path`` (one undo step). A file made on another stack shape or with
        another model is an error and changes nothing. False if not opened."""
        from ..engine import StackSession

        binding, runner = self._binding, self._runner
        if runner.running:
            self.error.emit("stop the propagation before opening a session")
            return False
        if binding.image is None or runner.model is None:
            self.error.emit("choose an image and load the model the session was made with, then open it")
            return False
        self._wait()
        stack = runner.current_stack()
        if stack is None:
            self.error.emit("choose an image first")
            return False
        axis, index = stack.axis, dict(stack.index)
        view = labels_view(binding.labels.data, axis, index)
        previous = np.array(view, copy=True)
        image = image_snapshot(binding.image)
        try:
            session = StackSession.load(
                path, runner.model, image.data, axis=0 if axis is None else axis,
                channel_axis=image.ndim if image.rgb else None, index=index, labels=view,
            )
        except Exception as exc:
            view[...] = previous  # the load may have written some frames
            self.error.emit(f"could not open the session {str(path)!r}: {exc}")
            return False
        self._adopt(session, stack, previous, view)
        self.status.emit(f"Opened the session {str(path)!r}: {len(binding.object_ids)} object(s) "
                         "(Undo reverts it).")
        return True

    def _adopt(self, session, stack, previous: np.ndarray, view: np.ndarray) -> None:
        binding = self._binding
        chosen = {(obj, frame): session.chosen_candidate(obj, frame)
                  for obj in session.object_ids for frame in session.prompted_frames(obj)}
        choices = {key: k for key, k in chosen.items() if k is not None}
        state = self._state_of(session.prompt_records(), choices)
        binding.restore(state._replace(lineage=session.lineage_state()))
        self._runner.adopt(session, stack)  # workers of the old session finish unseen
        for frame in range(len(view)):
            self._recorder.add_frame(frame, previous[frame], np.asarray(view[frame]))
        self._recorder.commit(stack, binding.snapshot())
        binding.labels.refresh()
        self.opened.emit()

    def _state_of(self, records, choices: dict) -> PromptState:
        """The prompt layers' content for the engine's prompt records and
        chosen candidates (``(object, frame) -> index``)."""
        coords = self._binding.coords
        points, point_objects, point_positive = [], [], []
        boxes, box_objects, masks = [], [], []
        for rec in records:
            for frame, fr in sorted(rec.frames.items()):
                if fr.mask is not None:
                    masks.append((int(rec.id), int(frame), PaintedMask(fr.mask)))
                if fr.box is not None:
                    y0, x0, y1, x1 = fr.box
                    corners = [(y0, x0), (y0, x1), (y1, x1), (y1, x0)]
                    boxes.append(np.array([coords(frame, y, x) for y, x in corners], dtype=float))
                    box_objects.append(int(rec.id))
                for (y, x), label in zip(fr.points, fr.labels):
                    points.append(coords(frame, y, x))
                    point_objects.append(int(rec.id))
                    point_positive.append(bool(label))
        objects = tuple(sorted(int(rec.id) for rec in records))
        ndim = self._binding.points.ndim
        return PromptState(
            objects=objects,
            current=objects[0] if objects else None,
            points=np.array(points, dtype=float).reshape(-1, ndim),
            point_objects=np.array(point_objects, dtype=np.int64),
            point_positive=np.array(point_positive, dtype=bool),
            boxes=tuple(boxes),
            box_types=("rectangle",) * len(boxes),
            box_objects=np.array(box_objects, dtype=np.int64),
            masks=tuple(sorted(masks, key=lambda t: t[:2])),
            choices=tuple(sorted((int(o), int(f), int(k)) for (o, f), k in choices.items())),
        )

    def _ask_open(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open SAM 2 session (the CURRENT file of a .sam2 folder, or a .zip)",
            str(self.autosave_path() or Path.home()), "Session (CURRENT *.zip)",
        )
        if path:
            self.open(Path(path).parent if Path(path).name == "CURRENT" else path)

    # ------------------------------------------------------------ autosave
    def set_autosave(self, where) -> None:
        """``False``/``None``: off; ``True``: into ``<image name>.sam2`` beside
        the image file; a folder: into ``<folder>/<image name>.sam2``."""
        if where is None or where is False:
            self._autosave = False
        elif where is True:
            self._autosave = True
        else:
            self._autosave = Path(where)
        self.autosave_box.blockSignals(True)
        self.autosave_box.setChecked(bool(self._autosave))
        self.autosave_box.blockSignals(False)
        if self._autosave and self.autosave_path() is None:
            self.status.emit("Autosave: the image has no file; give a folder (set_autosave(folder)).")

    def _on_autosave_toggled(self, on: bool) -> None:
        if bool(on) != bool(self._autosave):  # checking keeps a folder given before
            self.set_autosave(bool(on))

    @property
    def autosave(self):
        """False (off), True (beside the image file) or the folder given."""
        return self._autosave

    def autosave_path(self) -> Path | None:
        """Where autosave writes for the current image (None: nowhere known)."""
        image = self._binding.image
        if image is None:
            return None
        source = getattr(getattr(image, "source", None), "path", None)
        if isinstance(self._autosave, Path):
            return self._autosave / f"{image.name}{SUFFIX}"
        if source:
            return Path(source).parent / f"{Path(source).stem}{SUFFIX}"
        return None

    def _step_recorded(self) -> None:
        """A new undo step: autosave once the action that records it is over."""
        self._unsaved = True
        if self._autosave and not self._queued:
            self._queued = True
            QTimer.singleShot(0, self._after_step)

    def _after_step(self) -> None:
        self._queued = False
        if self._unsaved:  # not saved by changed() in the meantime
            self.changed()

    def changed(self) -> None:
        """The widget applied a correction or finished a propagation: autosave
        now if on. A failure is a status line, never an exception."""
        if not self._autosave or self._runner.session is None or self._runner.running:
            return
        self._unsaved = False
        path = self.autosave_path()
        if path is None:
            self.status.emit("Autosave skipped: the image has no file; give a folder (set_autosave(folder)).")
            return
        try:
            self._write(path)
        except Exception as exc:
            self.status.emit(f"Autosave to {str(path)!r} failed: {exc}")
            return
        self.last_autosave = path
