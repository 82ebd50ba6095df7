"""The area plot: a dock of the selected object's area over time and its
relatives' (mother, sisters, daughters), drawn with ``QPainter``.

:class:`AreaPlot` draws :class:`~napari_sam2._qt.area_curves.Curve`\\ s;
:class:`AreaPlotDock` is the part that owns it (``widget.lineage.plot``):
it reads the labels, lineage and selection through the binding it is given,
docks the plot in the viewer when asked (:meth:`AreaPlotDock.show`) and
draws again, a moment after the selection, the labels or the lineage
change, while it is shown.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QObject, QPointF, QRectF, Qt, QTimer
from qtpy.QtGui import QColor, QPainter, QPainterPath, QPen
from qtpy.QtWidgets import QWidget

from ..layers import labels_view
from .area_curves import SELECTED, area_curves

REFRESH_MS = 150  # debounce of the redraws (a run writes many frames)
DOCK_NAME = "SAM 2 areas"
MARGIN = (56, 14, 30, 34)  # left, top, right, bottom pixels around the axes


class AreaPlot(QWidget):
    """Area (pixels) over frames, one line per curve, in the objects' colours."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(260, 160)
        self.curves: list = []
        self.colours: dict[int, QColor] = {}
        self.frames = 1
        self.current_frame: int | None = None
        self.message = "Select an object to plot its area over time."

    def show_curves(self, curves, *, frames: int, colours: dict, current_frame=None, message="") -> None:
        """Draw ``curves`` over ``frames`` frames (``colours``: ``{id: RGBA floats}``)."""
        self.curves, self.frames, self.current_frame, self.message = list(curves), max(int(frames), 1), \
            current_frame, message
        self.colours = {int(i): QColor.fromRgbF(*[float(c) for c in rgba]) for i, rgba in colours.items()}
        self.update()

    def legend(self) -> list[str]:
        """The legend's lines, as drawn."""
        return [f"{c.id} ({c.relation})" for c in self.curves]

    def _frame_rect(self) -> QRectF:
        left, top, right, bottom = MARGIN
        return QRectF(left, top, max(self.width() - left - right, 1), max(self.height() - top - bottom, 1))

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.Antialiasing)
        palette = self.palette()
        painter.fillRect(self.rect(), palette.window())
        ink = palette.windowText().color()
        box = self._frame_rect()
        painter.setPen(QPen(ink, 1))
        painter.drawRect(box)
        top = max([int(c.areas.max()) for c in self.curves if len(c.areas)], default=0)
        if not top:
            painter.drawText(box, Qt.AlignCenter | Qt.TextWordWrap, self.message or "No pixels to plot.")
            return
        top = _nice(top)
        last = max(self.frames - 1, 1)

        def at(frame, area) -> QPointF:
            return QPointF(box.left() + box.width() * frame / last, box.bottom() - box.height() * area / top)

        for k in range(5):  # area ticks
            y = box.bottom() - box.height() * k / 4
            painter.drawText(QRectF(0, y - 8, MARGIN[0] - 6, 16), Qt.AlignRight | Qt.AlignVCenter, f"{top * k // 4}")
        for frame in sorted({0, last // 2, last}):
            x = at(frame, 0).x()
            painter.drawText(QRectF(x - 20, box.bottom() + 2, 40, 14), Qt.AlignCenter, str(frame))
        painter.drawText(QRectF(box.left(), box.bottom() + 16, box.width(), 16), Qt.AlignCenter,
                         "frame · area in pixels")
        if self.current_frame is not None:
            grey = QColor(ink)
            grey.setAlpha(90)
            painter.setPen(QPen(grey, 1, Qt.DashLine))
            x = at(self.current_frame, 0).x()
            painter.drawLine(QPointF(x, box.top()), QPointF(x, box.bottom()))
        for n, curve in enumerate(self.curves):
            colour = self.colours.get(curve.id, ink)
            pen = QPen(colour, 3 if curve.relation == SELECTED else 1.5)
            painter.setPen(pen)
            path = QPainterPath()
            previous = None
            for frame, area in zip(curve.frames, curve.areas):
                point = at(int(frame), int(area))
                if previous is None or frame != previous + 1:
                    path.moveTo(point)  # a gap is not drawn across
                else:
                    path.lineTo(point)
                painter.drawEllipse(point, 1.5, 1.5)
                previous = frame
            painter.drawPath(path)
            painter.drawText(QPointF(box.left() + 6, box.top() + 14 + 14 * n), self.legend()[n])


def _nice(value: int) -> int:
    """``value`` rounded up to 1, 2 or 5 times a power of ten."""
    scale = 10 ** int(np.floor(np.log10(value)))
    return next(k * scale for k in (1, 2, 5, 10) if k * scale >= value)


class AreaPlotDock(QObject):
    """The plot, docked in the viewer on :meth:`show`, kept up to date while shown."""

    def __init__(self, *, viewer, binding, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._viewer, self._binding = viewer, binding
        self.plot: AreaPlot | None = None
        self._dock = None
        self._watched = None  # the Labels layer whose changes redraw the plot
        self._timer = QTimer(self, singleShot=True, interval=REFRESH_MS)
        self._timer.timeout.connect(self.refresh)

    @property
    def shown(self) -> bool:
        return self.plot is not None and self._dock is not None and _alive(self._dock) and not self._dock.isHidden()

    def show(self) -> AreaPlot:
        """Dock the plot (once; again if it was closed) and draw it now."""
        if self.plot is None or self._dock is None or not _alive(self._dock):
            self.plot = AreaPlot()
            self._dock = self._viewer.window.add_dock_widget(self.plot, name=DOCK_NAME, area="bottom")
        self._dock.show()
        self.refresh()
        return self.plot

    def refresh_later(self, *_args) -> None:
        """Draw again in a moment (if shown)."""
        if self.shown:
            self._timer.start()

    def refresh(self) -> None:
        """Draw the selected object's curves now."""
        self._watch(self._binding.labels)
        if self.plot is None:
            return
        b = self._binding
        obj = b.current_object
        if b.image is None or b.labels is None or b.axis is None or obj is None:
            self.plot.show_curves([], frames=1, colours={},
                                  message="Select an object of a stack to plot its area over time.")
            return
        view = labels_view(b.labels.data, b.axis, b.fixed_index())
        curves = area_curves(view, b.lineage.mothers, obj)
        colours = {c.id: b.colour_of(c.id) for c in curves if b.colour_of(c.id) is not None}
        self.plot.show_curves(curves, frames=len(view), colours=colours, current_frame=b.current_frame(),
                              message=f"Object {obj} has no pixels yet.")

    def _watch(self, layer) -> None:
        if layer is self._watched:
            return
        if self._watched is not None:
            self._watched.events.set_data.disconnect(self.refresh_later)
        self._watched = layer
        if layer is not None:
            layer.events.set_data.connect(self.refresh_later)  # paint, undo, engine writes shown

    def close(self) -> None:
        self._timer.stop()
        self._watch(None)
        if self._dock is not None and _alive(self._dock):
            try:
                self._viewer.window.remove_dock_widget(self._dock)
            except (LookupError, RuntimeError, ValueError):
                pass  # the viewer is closing
        self._dock = self.plot = None


def _alive(widget) -> bool:
    """Whether the Qt object behind ``widget`` still exists."""
    try:
        widget.objectName()
    except RuntimeError:
        return False
    return True
