"""The intensity choice: how image values map to what the model sees.

*Layer contrast* (the default) follows the Image layer's contrast limits,
for the whole stack; *Automatic* is the engine's range (robust to small
saturated spots); *Fixed min-max* two numbers. The part owns its controls,
the layer it watches and a debounce timer; it emits ``changed`` when the
range it gives may have changed (slider drags coalesced).
"""

from __future__ import annotations

from qtpy.QtCore import QTimer, Signal
from qtpy.QtWidgets import QComboBox, QDoubleSpinBox, QHBoxLayout, QWidget

LAYER_CONTRAST, AUTOMATIC, FIXED = "layer", "auto", "fixed"
CHOICES = (("Layer contrast", LAYER_CONTRAST), ("Automatic", AUTOMATIC), ("Fixed min-max", FIXED))
DELAY_MS = 300  # debounce of contrast-limit drags and typing


class IntensityChoice(QWidget):
    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.box = QComboBox()
        for text, mode in CHOICES:
            self.box.addItem(text, mode)
        self.box.setToolTip(
            "How image values map to what the model sees: as the image layer's contrast limits "
            "show them (default), an automatic range robust to small saturated spots, or a fixed "
            "min-max; one range for the whole stack"
        )
        self.min_box, self.max_box = QDoubleSpinBox(), QDoubleSpinBox()
        for spin, what in ((self.min_box, "Lowest"), (self.max_box, "Highest")):
            spin.setRange(-1e12, 1e12)
            spin.setDecimals(2)
            spin.setKeyboardTracking(False)
            spin.setToolTip(f"{what} image value of the fixed range")
            spin.valueChanged.connect(lambda _v: self._edited())
        self.box.activated.connect(lambda _i: self._edited())
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.box, 2)
        row.addWidget(self.min_box, 1)
        row.addWidget(self.max_box, 1)
        self._layer = None
        self._running = False
        self._timer = QTimer(self, singleShot=True, interval=DELAY_MS)
        self._timer.timeout.connect(self.changed.emit)
        self._enable()

    # ------------------------------------------------------------ public
    @property
    def mode(self) -> str:
        return self.box.currentData()

    @property
    def pending(self) -> bool:
        """A change waits out its debounce."""
        return self._timer.isActive()

    def set_mode(self, mode: str, lo: float | None = None, hi: float | None = None) -> str | None:
        """Choose a mode (and a fixed range); the problem as text if refused.
        ``changed`` is emitted at once."""
        modes = [m for _text, m in CHOICES]
        if mode not in modes:
            return f"intensity mode must be one of {', '.join(modes)}, got {mode!r}"
        if mode == FIXED:
            if lo is None or hi is None or not float(lo) < float(hi):
                return f"a fixed intensity range needs lo < hi, got {lo!r} and {hi!r}"
            self._set_spins(float(lo), float(hi))
        self.box.setCurrentIndex(modes.index(mode))
        self._enable()
        self._timer.stop()
        self.changed.emit()
        return None

    def value(self):
        """The range the choice gives now: ``(lo, hi)`` or ``"auto"``."""
        if self.mode == AUTOMATIC or (self.mode == LAYER_CONTRAST and self._layer is None):
            return "auto"
        if self.mode == FIXED:
            return float(self.min_box.value()), float(self.max_box.value())
        lo, hi = (float(c) for c in self._layer.contrast_limits)
        return (lo, hi) if hi > lo else "auto"

    def watch(self, layer) -> None:
        """Follow ``layer``'s contrast limits (None: none); the fixed range
        starts from them."""
        if self._layer is not None:
            self._layer.events.contrast_limits.disconnect(self._on_contrast)
        self._layer = layer
        if layer is not None:
            layer.events.contrast_limits.connect(self._on_contrast)
            self._set_spins(*(float(c) for c in layer.contrast_limits))

    def set_running(self, running: bool) -> None:
        self._running = running
        self._enable()

    def stop(self) -> None:
        self._timer.stop()
        self.watch(None)

    # ------------------------------------------------------------ internals
    def _set_spins(self, lo: float, hi: float) -> None:
        for spin, v in ((self.min_box, lo), (self.max_box, hi)):
            spin.blockSignals(True)
            spin.setValue(v)
            spin.blockSignals(False)

    def _enable(self) -> None:
        fixed = self.mode == FIXED
        self.box.setEnabled(not self._running)
        self.min_box.setEnabled(fixed and not self._running)
        self.max_box.setEnabled(fixed and not self._running)

    def _edited(self) -> None:
        self._enable()
        if self.mode == FIXED and not self.min_box.value() < self.max_box.value():
            return  # wait for a valid pair
        self._timer.start()

    def _on_contrast(self, event=None) -> None:
        if self.mode == LAYER_CONTRAST:
            self._timer.start()
