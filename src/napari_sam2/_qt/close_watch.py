"""Tells when the dock widget is done: closed, taken out of its dock
(napari's close button, ``remove_dock_widget``) or closing with the
viewer's window (Qt tells no child that its window closes)."""

from __future__ import annotations

from qtpy.QtCore import QEvent, QObject, QTimer, Signal


class CloseWatch(QObject):
    """Emits ``closing`` once, when ``widget`` is done."""

    closing = Signal()

    def __init__(self, widget) -> None:
        super().__init__(widget)
        self._widget = widget
        self._window = None  # the top-level window once docked
        self._docked = False
        self._done = False
        widget.installEventFilter(self)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt name)
        kind = event.type()
        if watched is self._widget:
            if kind == QEvent.ParentChange:
                if self._widget.parent() is not None:
                    self._docked = True
                    QTimer.singleShot(0, self._watch_window)  # once the dock is in the window
                elif self._docked:
                    self._close()
            elif kind == QEvent.Close:
                self._close()
        elif watched is self._window and kind == QEvent.Close:
            self._close()
        return False

    def _watch_window(self) -> None:
        window = self._widget.window()
        if self._done or window is self._widget or window is self._window:
            return
        if self._window is not None:
            self._window.removeEventFilter(self)
        window.installEventFilter(self)
        self._window = window

    def _close(self) -> None:
        if self._done:
            return
        self._done = True
        if self._window is not None:
            self._window.removeEventFilter(self)
            self._window = None
        self.closing.emit()
