"""The candidate-mask control: which of SAM's masks for the latest click
is shown, with its predicted IoU, and a button to show the next."""

from __future__ import annotations

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

NO_CANDIDATES = "Candidates: after a click"


class CandidateControl(QWidget):
    """``show(found, current_object)`` displays a ``jobs.Candidates`` (or
    nothing); ``next_choice(step)`` gives ``(object, frame, k)`` to choose
    next (k None: the model's own pick). ``cycle`` is emitted by the button."""

    cycle = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel(NO_CANDIDATES)
        self.label.setStyleSheet("color: gray;")
        self.label.setToolTip("SAM's candidate masks for the selected object's clicks on a frame, by predicted IoU")
        self.button = QPushButton("Next candidate")
        self.button.setToolTip(
            "Show the next of SAM's candidate masks for these clicks (whole cell, part, cluster...); "
            "after the last, the model's own pick again [Shift-C]"
        )
        self.button.setEnabled(False)
        self.button.clicked.connect(self.cycle.emit)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.label, 1)
        row.addWidget(self.button)
        self._shown = None

    @property
    def shown(self):
        return self._shown

    def show_candidates(self, found, current_object) -> None:
        if found is None or found.obj != current_object:
            self._shown = None
            self.label.setText(NO_CANDIDATES)
            self.button.setEnabled(False)
            return
        self._shown = found
        ious = " / ".join(f"{v:.2f}" for v in found.ious)
        if found.chosen is None:
            text = f"Frame {found.frame}: model's pick (candidates' IoU {ious})"
        else:
            text = (f"Frame {found.frame}: candidate {found.chosen + 1} of {len(found.ious)}, "
                    f"predicted IoU {found.ious[found.chosen]:.2f}")
        self.label.setText(text)
        self.label.setToolTip(f"Predicted IoU of SAM's candidates, best first: {ious}")
        self.button.setEnabled(True)

    def next_choice(self, current_object, step: int = 1):
        """``(object, frame, k)`` after the shown choice, or None."""
        shown = self._shown
        if shown is None or shown.obj != current_object:
            return None
        order = [None, *range(len(shown.ious))]
        return shown.obj, shown.frame, order[(order.index(shown.chosen) + step) % len(order)]
