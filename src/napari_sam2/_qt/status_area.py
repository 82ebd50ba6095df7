"""The status line: a short first line, and the whole text (errors with
their advice, URLs, paths) behind a *Details* button, selectable.

The line has a fixed height, so a long message never reflows the dock;
only the user's click on *Details* opens the text box below it.
"""

from __future__ import annotations

import re

from qtpy.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

LINES = 3  # the status line's height in text lines
SUMMARY_CHARS = 110
DETAILS_HEIGHT_LINES = 7
# advice to load a file with pickle's code execution is never passed on
_UNSAFE = re.compile(r"[^.\n]*weights_only\s*=\s*False[^.\n]*[.\n]?", re.IGNORECASE)


def safe_text(message: str) -> str:
    """``message`` without any sentence suggesting ``weights_only=False``."""
    return _UNSAFE.sub("", str(message)).strip()


def summary(message: str) -> str:
    """The first sentence or line of ``message``, at most ``SUMMARY_CHARS``."""
    text = str(message).strip()
    first = text.split("\n", 1)[0]
    cut = re.search(r"(?<=[a-z0-9)\]'\"])[.;:] ", first)
    if cut is not None and cut.start() >= 20:
        first = first[: cut.start()]
    if len(first) > SUMMARY_CHARS:
        first = first[: SUMMARY_CHARS - 1].rstrip() + "…"
    return first


class StatusArea(QWidget):
    """``line`` (a QLabel, fixed height) + ``details_button`` + ``details``."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.line = QLabel("")
        self.line.setWordWrap(True)
        metrics = self.line.fontMetrics()
        self.line.setFixedHeight(metrics.lineSpacing() * LINES + 4)
        self.line.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Fixed)
        self.details_button = QToolButton()
        self.details_button.setText("Details")
        self.details_button.setCheckable(True)
        self.details_button.setToolTip("Show the whole message (selectable, to copy)")
        self.details_button.setEnabled(False)
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)  # read-only text stays selectable
        self.details.setFixedHeight(metrics.lineSpacing() * DETAILS_HEIGHT_LINES + 8)
        self.details.setVisible(False)
        self.details_button.toggled.connect(self.details.setVisible)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.line, 1)
        row.addWidget(self.details_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.details)

    def show_text(self, text: str) -> None:
        """A status message; long ones are cut on the line, whole in Details."""
        text = safe_text(text)
        short = text if len(text) <= 3 * SUMMARY_CHARS and "\n" not in text else summary(text)
        self.line.setText(short)
        self.line.setToolTip(text if short != text else "")
        self._set_details(text if short != text else "")

    def show_error(self, message: str) -> str:
        """``Error: <first sentence>`` on the line, the whole message in
        Details; returns the shown (safe) message."""
        message = safe_text(message)
        self.line.setText(f"Error: {summary(message)}")
        self.line.setToolTip(message)
        self._set_details(message)
        return message

    def _set_details(self, text: str) -> None:
        self.details.setPlainText(text)
        self.details_button.setEnabled(bool(text))
        if not text:
            self.details_button.setChecked(False)
