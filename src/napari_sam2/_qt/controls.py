"""The widget's controls: a view the widget holds (``widget.controls``).

Layout, what is enabled, the layer and axis choices shown, progress and the
status line; it owns no session state and does nothing on its own: the
widget connects its buttons and tells it what to show.
"""

from __future__ import annotations

from napari.layers import Image, Labels
from napari.utils.notifications import show_error
from qtpy.QtWidgets import (
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

from .candidate_control import CandidateControl
from .frame_strip import FrameStrip
from .intensity import IntensityChoice
from .model_panel import ModelPanel
from .object_list import ObjectList
from .status_area import StatusArea

NEW_LABELS = "New labels layer"
READY = "Ready. Click the image to segment the selected object (Shift-click: negative)."
HELP = (
    "Click: positive point · Shift-click: negative · "
    "drag a rectangle in the boxes layer: box. Prompts go to the selected object."
)


DETECT_EVERY = 5  # Track all: find new objects every this many frames (default)

# the controls a script or test reaches as attributes of the widget
PUBLIC = (
    "image_box", "labels_box", "axis_box", "intensity", "model_panel", "object_list", "new_button",
    "clear_button", "delete_button", "negative_box", "frame_strip", "candidates", "backward_button",
    "both_button", "forward_button", "range_box", "start_box", "stop_box", "follow_box", "stop_button",
    "progress", "segment_all_button", "track_all_button", "detect_every_box", "divisions_box", "split_box",
    "show_tracks_button",
    "undo_button", "redo_button", "reset_button", "help_link", "status_area", "status",
)


class ControlsView(QWidget):
    """Image, labels and axis choices; the model panel; the object list;
    propagation buttons, range, progress and Stop; Segment all, Track all
    and Show tracks; Undo, Redo, Reset; a status line."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._build_ui()

    def _build_ui(self) -> None:
        self.image_box = QComboBox()
        self.labels_box = QComboBox()
        self.axis_box = QComboBox()
        self.image_box.setToolTip("The image or stack to segment")
        self.labels_box.setToolTip("Where masks are written (a new layer, or one of the same shape)")
        self.axis_box.setToolTip(
            "The axis to track along; other axes stay at the viewer's current position"
        )
        self.intensity = IntensityChoice()
        data_form = QFormLayout()
        data_form.addRow("Image", self.image_box)
        data_form.addRow("Labels", self.labels_box)
        data_form.addRow("Track along", self.axis_box)
        data_form.addRow("Intensity", self.intensity)

        self.model_panel = ModelPanel()

        objects = QGroupBox("Objects")
        self.object_list = ObjectList()
        self.new_button = QPushButton("New object")
        self.clear_button = QPushButton("Clear object")
        self.delete_button = QPushButton("Delete object")
        self.clear_button.setToolTip("Remove the selected object's prompts and its masks on every frame")
        self.delete_button.setToolTip("Clear the selected object and remove it from the list")
        self.negative_box = QCheckBox("Negative clicks (or hold Shift)")
        self.new_button.setToolTip("Add an object with the next free label id and select it [N]")
        self.negative_box.setToolTip(
            "Clicks mark background instead of the object; Shift-click does the opposite [Shift-N]"
        )
        self.object_list.setToolTip(
            "Objects (label ids in their colours); prompts go to the selected one [. next, , previous]"
        )
        hint = QLabel(HELP)
        hint.setWordWrap(True)
        hint.setStyleSheet("color: gray;")
        self.frame_strip = FrameStrip()
        self.candidates = CandidateControl()
        rows = QGridLayout(objects)
        rows.addWidget(self.object_list, 0, 0, 1, 3)
        rows.addWidget(self.frame_strip, 1, 0, 1, 3)
        rows.addWidget(self.candidates, 2, 0, 1, 3)
        rows.addWidget(self.new_button, 3, 0)
        rows.addWidget(self.clear_button, 3, 1)
        rows.addWidget(self.delete_button, 3, 2)
        rows.addWidget(self.negative_box, 4, 0, 1, 3)
        rows.addWidget(hint, 5, 0, 1, 3)

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
        self.backward_button.setToolTip("Track every object towards the first frame [Shift-B]")
        self.both_button.setToolTip(
            "Track forward from the first prompted frame, then backward from it [Shift-D]"
        )
        self.forward_button.setToolTip("Track every object towards the last frame [Shift-F]")
        self.range_box.setToolTip("Track only between these two frames (inclusive)")
        self.start_box.setToolTip("First frame of the span")
        self.stop_box.setToolTip("Last frame of the span")
        self.follow_box.setToolTip("Move the viewer to each frame as it is written")
        self.stop_button.setToolTip(
            "Stop after the frame being computed; the frames done stay [Shift-S]"
        )
        self.progress = QProgressBar()
        self.progress.setFormat("%p%")
        self.progress.setValue(0)
        self.progress.setTextVisible(False)  # no count before a propagation ran
        self.progress.setToolTip("Progress of the propagation or of Track all")
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

        automatic = self.automatic_box = self._build_automatic()

        self.undo_button = QPushButton("Undo")
        self.redo_button = QPushButton("Redo")
        self.undo_button.setToolTip(
            "Undo the last step: objects, prompts and labels together (Ctrl-Z in the labels layer)"
        )
        self.redo_button.setToolTip("Redo the last undone step (Ctrl-Shift-Z in the labels layer)")
        self.reset_button = QPushButton("Reset…")
        self.reset_button.setToolTip(
            "Forget all objects and prompts (asks first; the labels stay; Undo brings them back)"
        )
        self.help_link = QLabel('<a href="help">Help</a>')
        self.help_link.setToolTip("How to use the widget, and its keyboard shortcuts")
        history = QHBoxLayout()
        history.addWidget(self.undo_button)
        history.addWidget(self.redo_button)
        history.addWidget(self.reset_button)
        history.addWidget(self.help_link)
        self.status_area = StatusArea()
        self.status = self.status_area.line

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(data_form)
        layout.addWidget(self.model_panel)
        layout.addWidget(objects)
        layout.addWidget(track)
        layout.addWidget(automatic)
        layout.addLayout(history)
        layout.addWidget(self.status_area)
        layout.addStretch(1)

    def _build_automatic(self) -> QGroupBox:
        box = QGroupBox("Automatic")
        self.segment_all_button = QPushButton("Segment all")
        self.track_all_button = QPushButton("Track all")
        self.show_tracks_button = QPushButton("Show tracks")
        self.detect_every_box = QSpinBox()
        self.detect_every_box.setRange(1, 1000)
        self.detect_every_box.setValue(DETECT_EVERY)
        self.segment_all_button.setToolTip(
            "Find every object on the frame on screen and add the new ones to the list (one undo step)"
        )
        self.track_all_button.setToolTip(
            "Find every object on the first frame (or of the 'Only frames' span), track them all forward "
            "and pick up new ones as they appear (one undo step)"
        )
        self.detect_every_box.setToolTip("Track all looks for new objects (entering, dividing) every k frames")
        self.divisions_box = QCheckBox("Find divisions")
        self.divisions_box.setChecked(True)
        self.divisions_box.setToolTip(
            "Track all ends a cell's track where it divides and starts two daughters with her as their mother"
        )
        self.split_box = QCheckBox("Split touching cells")
        self.split_box.setChecked(True)
        self.split_box.setToolTip(
            "Segment all and Track all cut a mask over two touching round cells at its neck, and Track all "
            "separates a tracked mask that spread onto a neighbour; untick for SAM's masks as they are"
        )
        self.show_tracks_button.setToolTip("Add or update a Tracks layer of the objects' centroids over time")
        grid = QGridLayout(box)
        grid.addWidget(self.segment_all_button, 0, 0)
        grid.addWidget(self.track_all_button, 0, 1)
        grid.addWidget(self.show_tracks_button, 0, 2)
        every = QHBoxLayout()
        every.addWidget(QLabel("Find new objects every"))
        every.addWidget(self.detect_every_box)
        every.addWidget(QLabel("frames"))
        every.addStretch(1)
        every.addWidget(self.divisions_box)
        grid.addLayout(every, 1, 0, 1, 3)
        grid.addWidget(self.split_box, 2, 0, 1, 3)
        return box

    def insert_part(self, widget: QWidget, *, after: QWidget | None = None) -> None:
        """Show ``widget`` (e.g. the session files row) above the status line,
        or right below ``after`` (e.g. ``automatic_box``)."""
        layout = self.layout()
        layout.insertWidget(layout.count() - 2 if after is None else layout.indexOf(after) + 1, widget)

    def enable(self, *, have_image: bool, running: bool, stopping: bool, stack: bool = True) -> None:
        """Enable what can be used now (while propagating: only Stop; for a
        single image nothing propagates)."""
        for button in (self.new_button, self.reset_button, self.undo_button, self.redo_button,
                       self.segment_all_button):
            button.setEnabled(have_image and not running)
        for button in (self.forward_button, self.backward_button, self.both_button, self.track_all_button,
                       self.show_tracks_button):
            button.setEnabled(have_image and not running and stack)
        for widget in (self.range_box, self.follow_box, self.detect_every_box, self.divisions_box):
            widget.setEnabled(stack)
        self.stop_button.setEnabled(running and not stopping)
        has_object = self.object_list.current_id is not None
        for button in (self.clear_button, self.delete_button):
            button.setEnabled(have_image and not running and has_object)
        for widget in (self.image_box, self.labels_box, self.model_panel):
            widget.setEnabled(not running)
        self.axis_box.setEnabled(not running and self.axis_box.count() > 1)
        self.intensity.set_running(running)
        self.start_box.setEnabled(self.range_box.isChecked())
        self.stop_box.setEnabled(self.range_box.isChecked())

    def span(self) -> tuple[int | None, int | None]:
        """The "Only frames" span, or ``(None, None)`` when it is off."""
        if self.range_box.isChecked():
            return self.start_box.value(), self.stop_box.value()
        return None, None

    def show_layers(self, layers, image, labels) -> None:
        """Offer the Image and Labels layers among ``layers``; show the ones in use."""
        images = [layer for layer in layers if isinstance(layer, Image)]
        labelled = [layer for layer in layers if isinstance(layer, Labels)]
        for box, choices, extra in ((self.image_box, images, None), (self.labels_box, labelled, NEW_LABELS)):
            box.blockSignals(True)
            box.clear()
            if extra:
                box.addItem(extra, None)
            for layer in choices:
                box.addItem(layer.name, layer)
            box.blockSignals(False)
        for box, current in ((self.image_box, image), (self.labels_box, labels)):
            for i in range(box.count()):
                if box.itemData(i) is current and current is not None:
                    box.setCurrentIndex(i)

    def show_axes(self, shape, choice, axis) -> None:
        """Offer the axes of ``choice`` (``layers.AxisChoice``; None: no
        image) of an image of ``shape``, with ``axis`` chosen."""
        self.axis_box.clear()
        if choice is None:
            return
        if choice.axis is None:
            self.axis_box.addItem("single image", None)
        for a, name in zip(choice.choices, choice.names):
            self.axis_box.addItem(f"{name} ({shape[a]} frames)", a)
            if a == axis:
                self.axis_box.setCurrentIndex(self.axis_box.count() - 1)
        frames = shape[axis] if axis is not None else 1
        for box in (self.start_box, self.stop_box):
            box.setRange(0, frames - 1)
        self.stop_box.setValue(frames - 1)

    def show_progress(self, done: int, total: int) -> None:
        """A run's progress; ``(0, 0)``: started, total not known yet."""
        if done == 0 and total == 0:
            self.progress.setRange(0, 0)
            self.progress.setTextVisible(True)
            return
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def end_progress(self) -> None:
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
            self.progress.setValue(0)

    def confirm_reset(self, n: int) -> bool:
        """Ask before forgetting ``n`` objects (the Reset button)."""
        from qtpy.QtWidgets import QMessageBox

        answer = QMessageBox.question(
            self,
            "Reset SAM 2",
            f"Forget all {n} object(s) and their prompts? The labels stay; Undo brings them back.",
            QMessageBox.Reset | QMessageBox.Cancel,
            QMessageBox.Cancel,
        )
        return answer == QMessageBox.Reset

    def show_help(self, text: str) -> None:
        from qtpy.QtWidgets import QMessageBox

        QMessageBox.information(self, "SAM 2 help", text)

    def show_status(self, text: str) -> None:
        self.status_area.show_text(text)

    def show_error(self, message: str) -> None:
        """A napari error notification (no traceback) and the status line
        (its first sentence; the whole message under Details)."""
        message = self.status_area.show_error(message)
        show_error(f"SAM 2: {message}")
