"""A strip that shows, frame by frame, whether the selected object and all
objects are tracked and current, out of date (after a correction), or not
reached (never tracked, or beyond a Stop)."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QRectF, Qt, Signal
from qtpy.QtGui import QColor, QPainter
from qtpy.QtWidgets import QSizePolicy, QWidget

# the engine's codes (napari_sam2.engine.FRAME_*)
CURRENT, NOT_REACHED, OUT_OF_DATE = 0, 1, 2
NAMES = {CURRENT: "tracked, current", NOT_REACHED: "not reached", OUT_OF_DATE: "out of date"}
COLOURS = {CURRENT: QColor(60, 180, 90), NOT_REACHED: QColor(70, 70, 78), OUT_OF_DATE: QColor(235, 160, 40)}
ROWS = ("selected", "all")
ROW_HEIGHT = 12
LABEL_WIDTH = 52


class FrameStrip(QWidget):
    """Two rows of frame cells: the selected object's states and all objects'.

    ``set_states(selected, everyone)`` takes int arrays of the engine's
    codes (or None: nothing to show). ``frame_clicked(frame)`` is emitted
    when a cell is clicked.
    """

    frame_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._rows: list[np.ndarray | None] = [None, None]
        self._current: int | None = None
        self.setFixedHeight(2 * ROW_HEIGHT + 6)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.setMouseTracking(True)
        self.setToolTip(self._legend())

    # ------------------------------------------------------------ public
    def set_states(self, selected: np.ndarray | None, everyone: np.ndarray | None) -> None:
        rows = [None if r is None else np.asarray(r, dtype=np.int8).copy() for r in (selected, everyone)]
        same = all(
            (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))
            for a, b in zip(rows, self._rows)
        )
        if not same:
            self._rows = rows
            self.update()

    def set_current_frame(self, frame: int | None) -> None:
        if frame != self._current:
            self._current = frame
            self.update()

    def states(self, row: str = "all") -> np.ndarray | None:
        """The shown codes of ``row`` ("selected" or "all")."""
        shown = self._rows[ROWS.index(row)]
        return None if shown is None else shown.copy()

    def counts(self, row: str = "all") -> dict[str, int]:
        """How many frames of ``row`` are in each state, by name."""
        shown = self._rows[ROWS.index(row)]
        if shown is None:
            return {}
        return {NAMES[code]: int((shown == code).sum()) for code in NAMES}

    # ------------------------------------------------------------ internals
    def _frames(self) -> int:
        return max((len(r) for r in self._rows if r is not None), default=0)

    def _cell(self, frame: int, row: int, n: int) -> QRectF:
        width = max(self.width() - LABEL_WIDTH, 1) / n
        return QRectF(LABEL_WIDTH + frame * width, 3 + row * ROW_HEIGHT, max(width - (1 if width > 3 else 0), 1),
                      ROW_HEIGHT - 1)

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt name)
        painter = QPainter(self)
        try:
            painter.setPen(self.palette().text().color())
            font = painter.font()
            font.setPointSizeF(max(font.pointSizeF() * 0.75, 6))
            painter.setFont(font)
            for row, name in enumerate(ROWS):
                painter.drawText(QRectF(0, 3 + row * ROW_HEIGHT - 2, LABEL_WIDTH - 4, ROW_HEIGHT + 4),
                                 int(Qt.AlignRight | Qt.AlignVCenter), name)
            n = self._frames()
            if not n:
                return
            painter.setPen(Qt.NoPen)
            for row, codes in enumerate(self._rows):
                if codes is None:
                    continue
                for frame, code in enumerate(codes.tolist()):
                    painter.fillRect(self._cell(frame, row, n), COLOURS.get(code, COLOURS[NOT_REACHED]))
            if self._current is not None and 0 <= self._current < n:
                painter.setPen(self.palette().highlight().color())
                top, bottom = self._cell(self._current, 0, n), self._cell(self._current, 1, n)
                painter.drawRect(top.united(bottom))
        finally:
            painter.end()

    def _frame_at(self, x: float) -> int | None:
        n = self._frames()
        if not n or x < LABEL_WIDTH:
            return None
        return min(int((x - LABEL_WIDTH) / max(self.width() - LABEL_WIDTH, 1) * n), n - 1)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 (Qt name)
        frame = self._frame_at(event.pos().x())
        if frame is None:
            self.setToolTip(self._legend())
            return
        parts = [f"frame {frame}"]
        for name, codes in zip(ROWS, self._rows):
            if codes is not None and frame < len(codes):
                parts.append(f"{name}: {NAMES.get(int(codes[frame]), '?')}")
        self.setToolTip("; ".join(parts) + " (click: go there)")

    def mousePressEvent(self, event) -> None:  # noqa: N802 (Qt name)
        frame = self._frame_at(event.pos().x())
        if frame is not None:
            self.frame_clicked.emit(frame)

    @staticmethod
    def _legend() -> str:
        return ("Frame states, for the selected object and for all: green tracked and current, "
                "orange out of date (after a correction), grey not reached")
