"""The list of tracked objects, each shown in its Labels-layer colour."""

from __future__ import annotations

from typing import Callable, Iterable

from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import QListWidget, QListWidgetItem, QWidget

ColourOf = Callable[[int], tuple[float, float, float, float]]


def _icon(rgba) -> QIcon:
    pixmap = QPixmap(14, 14)
    r, g, b, a = (max(0, min(255, int(round(255 * float(c))))) for c in rgba)
    pixmap.fill(QColor(r, g, b, max(a, 255)))
    return QIcon(pixmap)


class ObjectList(QListWidget):
    """Object ids (label values), one selected at a time.

    ``selected(id)`` is emitted when the user (or :meth:`select`) picks one.
    """

    selected = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSelectionMode(QListWidget.SingleSelection)
        self.setMaximumHeight(120)
        self._colour_of: ColourOf | None = None
        self.currentItemChanged.connect(self._on_current)

    @property
    def ids(self) -> list[int]:
        return [self.item(i).data(Qt.UserRole) for i in range(self.count())]

    @property
    def current_id(self) -> int | None:
        item = self.currentItem()
        return None if item is None else int(item.data(Qt.UserRole))

    def set_colour_source(self, colour_of: ColourOf | None) -> None:
        """Where colours come from (the Labels layer's ``get_color``)."""
        self._colour_of = colour_of
        self.recolour()

    def set_ids(self, ids: Iterable[int], current: int | None = None) -> None:
        self.blockSignals(True)
        try:
            self.clear()
            for obj in ids:
                self._append(int(obj))
        finally:
            self.blockSignals(False)
        if current is not None and current in self.ids:
            self.select(current)
        elif self.count():
            self.select(self.ids[-1])

    def add(self, obj: int) -> None:
        if obj not in self.ids:
            self._append(obj)
        self.select(obj)

    def remove(self, obj: int) -> None:
        for i in range(self.count()):
            if self.item(i).data(Qt.UserRole) == obj:
                self.takeItem(i)
                return

    def select(self, obj: int) -> None:
        for i in range(self.count()):
            if self.item(i).data(Qt.UserRole) == obj:
                self.setCurrentRow(i)
                return
        raise KeyError(f"no object {obj}; objects are {self.ids}")

    def step(self, delta: int) -> int | None:
        """Select the object ``delta`` places after the selected one (cycling)."""
        ids = self.ids
        if not ids:
            return None
        current = self.current_id
        i = ids.index(current) if current in ids else -1
        obj = ids[(i + delta) % len(ids)]
        self.select(obj)
        return obj

    def recolour(self) -> None:
        for i in range(self.count()):
            item = self.item(i)
            self._paint(item, int(item.data(Qt.UserRole)))

    def colour_of(self, obj: int):
        """The colour shown for ``obj`` (RGBA floats), or None without a source."""
        return None if self._colour_of is None else tuple(float(c) for c in self._colour_of(obj))

    # ------------------------------------------------------------ internals
    def _append(self, obj: int) -> None:
        item = QListWidgetItem(f"Object {obj}")
        item.setData(Qt.UserRole, obj)
        self._paint(item, obj)
        self.addItem(item)

    def _paint(self, item: QListWidgetItem, obj: int) -> None:
        colour = self.colour_of(obj)
        item.setIcon(_icon(colour) if colour is not None else QIcon())

    def _on_current(self, item, _previous) -> None:
        if item is not None:
            self.selected.emit(int(item.data(Qt.UserRole)))
