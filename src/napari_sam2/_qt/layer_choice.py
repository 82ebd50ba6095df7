"""Which image, Labels layer and axis the widget works on: the checks
before a choice, what follows it (a new session, the slice encoded, the
choices shown), and what follows when the user removes a layer.

A part the widget holds (``widget.choice``). The layers themselves are the
binding's, the session the runner's; it reports through its signals and
shows the choices in the controls view.
"""

from __future__ import annotations

from napari.layers import Image
from qtpy.QtCore import QObject, Signal

from .controls import NEW_LABELS


class LayerChoice(QObject):
    """The image / labels / axis choice and the reactions to layer removal."""

    error = Signal(str)
    status = Signal(str)
    changed = Signal()  # what can be done changed
    ready = Signal()  # time to say what to do next

    def __init__(self, *, viewer, binding, runner, controls, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._viewer, self._binding, self._runner, self._controls = viewer, binding, runner, controls
        binding.image_removed.connect(self._on_image_removed)
        binding.labels_removed.connect(self._on_labels_removed)
        binding.layers_changed.connect(self._on_layers_changed)

    def set_image(self, layer) -> bool:
        """Segment this Image layer (a layer or its name). False if refused."""
        if isinstance(layer, str):
            layer = self._layer_named(layer)
            if layer is None:
                return False
        if self._runner.running:
            self.error.emit("stop the propagation before choosing another image")
            return False
        if not isinstance(layer, Image):
            kind = type(layer).__name__ if layer is not None else "nothing"
            name = f" {layer.name!r}" if hasattr(layer, "name") else ""
            self.error.emit(f"the layer{name} is a {kind} layer, not an image; choose an Image layer")
            self.show_layers()
            return False
        if layer is self._binding.image:
            return True
        self._runner.forget_session()
        self._binding.use_image(layer)
        self._controls.intensity.watch(layer)
        self.show_layers()
        self.show_axes()
        self._runner.prepare_later()
        self._runner.schedule_sync()
        self.changed.emit()
        self.ready.emit()
        return True

    def set_labels(self, layer=None) -> bool:
        """Write into this Labels layer (a layer or name), or a new one (None)."""
        if isinstance(layer, str):
            if layer == NEW_LABELS:
                layer = None
            else:
                layer = self._layer_named(layer)
                if layer is None:
                    return False
        if self._binding.image is None:
            self.error.emit("choose an image first")
            return False
        if self._runner.running:
            self.error.emit("stop the propagation before choosing another labels layer")
            return False
        problem = self._binding.labels_problem(layer) if layer is not None else None
        if problem:
            self.error.emit(problem)
            self.show_layers()
            return False
        self._binding.use_labels(layer)
        self.show_layers()
        self._runner.schedule_sync()
        return True

    def set_axis(self, axis: int) -> bool:
        """Track along this axis of the image data (4D stacks offer a choice)."""
        binding = self._binding
        if binding.image is None:
            return False
        choices = binding.axis_choice().choices
        if axis not in choices:
            self.error.emit(f"axis {axis} cannot be followed; choose one of {list(choices)}")
            self.show_axes()
            return False
        if axis != binding.axis:
            binding.set_axis(axis)
            self._runner.forget_session()
            self.show_axes()
            self._runner.prepare_later()
            self._runner.schedule_sync()
        return True

    def show_layers(self) -> None:
        """The Image and Labels choices, with the ones in use."""
        self._controls.show_layers(self._viewer.layers, self._binding.image, self._binding.labels)

    def show_axes(self) -> None:
        binding = self._binding
        if binding.image is None:
            self._controls.show_axes(None, None, None)
        else:
            self._controls.show_axes(binding.image_shape(), binding.axis_choice(), binding.axis)
        self.changed.emit()

    def _layer_named(self, name: str):
        layer = self._binding.layer_named(name)
        if layer is None:
            self.error.emit(f"there is no layer named {name!r}")
        return layer

    def _on_layers_changed(self, removed: bool) -> None:
        self.show_layers()
        if removed:
            self.changed.emit()
        elif self._binding.image is None:
            image = self._binding.default_image()
            if image is not None:
                self.set_image(image)

    def _on_image_removed(self) -> None:
        self._runner.stop()
        self._runner.forget_session()
        self._controls.intensity.watch(None)
        self.show_axes()
        self.ready.emit()

    def _on_labels_removed(self, name: str) -> None:
        self._runner.stop()
        self._runner.forget_session()
        self.status.emit(f"The labels layer {name!r} was removed: choose another above, or the next "
                         "prompt makes a new one.")
