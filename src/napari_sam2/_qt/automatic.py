"""*Segment all*, *Track all* and *Show tracks*: their settings, the checks
before they run, and the Tracks layer.

A part the widget holds (``widget.automatic``). It owns the automatic
settings; the work itself is the runner's (``runner.request_run("segment"
| "track", ...)``), the layers the binding's. It reports through its
``error`` and ``status`` signals.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QObject, Signal

from ..layers import labels_view
from .auto_jobs import automatic_defaults
from .tracks_layer import lineage_graph, show_tracks, tracks_rows


class Automatic(QObject):
    """Segment all / Track all requests and the Tracks layer."""

    error = Signal(str)
    status = Signal(str)

    def __init__(self, *, viewer, binding, runner, controls, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._viewer, self._binding, self._runner, self._controls = viewer, binding, runner, controls
        self._options = None  # None: automatic_defaults for the frame size

    @property
    def options(self):
        """The ``AutomaticOptions`` Segment all and Track all use (None: the
        defaults for the frame size, see ``auto_jobs.automatic_defaults``)."""
        return self._options

    @options.setter
    def options(self, options) -> None:
        from ..engine.automatic import AutomaticOptions

        if options is not None and not isinstance(options, AutomaticOptions):
            raise TypeError(f"automatic_options must be a napari_sam2.AutomaticOptions or None, "
                            f"got {type(options).__name__}")
        self._options = options

    def segment_all(self, frame: int | None, options) -> None:
        frame = self._binding.current_frame() if frame is None else int(frame)
        frames = self._binding.num_frames()
        if not 0 <= frame < frames:
            self.error.emit(f"frame {frame} is out of range: 0 to {frames - 1}")
            return
        options = self._resolve(options)
        if options is not None:
            self._runner.request_run("segment", frame, options)

    def track_all(self, detect_every, start, stop, options, divisions=None) -> None:
        from ..engine.division_options import DivisionOptions

        every = self._controls.detect_every_box.value() if detect_every is None else detect_every
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            self.error.emit(f"detect_every must be a whole number of frames >= 1, got {every!r}")
            return
        if divisions is None:
            divisions = self._controls.divisions_box.isChecked()
        if isinstance(divisions, bool):
            divisions = DivisionOptions() if divisions else None
        if not isinstance(divisions, (DivisionOptions, type(None))):
            self.error.emit(f"divisions must be True, False or a napari_sam2 DivisionOptions, "
                            f"got {type(divisions).__name__}")
            return
        if start is None and stop is None:
            start, stop = self._controls.span()
        options = self._resolve(options)
        if options is not None:
            self._runner.request_run("track", start, stop, options, int(every), divisions)

    def _resolve(self, options):
        """The options to use (None, after an error, if these are not options);
        with "Split touching cells" unticked, without the split and the
        separation of tracked masks."""
        from dataclasses import replace

        from ..engine.automatic import AutomaticOptions

        options = self._options if options is None else options
        if options is None:
            options = automatic_defaults(*self._binding.image_shape()[-2:])
        if not isinstance(options, AutomaticOptions):
            self.error.emit(f"options must be a napari_sam2.AutomaticOptions, got {type(options).__name__}")
            return None
        if not self._controls.split_box.isChecked():
            options = replace(options, split_neck=None, separate_merged=False)
        return options

    def show_tracks(self, graph=None):
        """Add or update the Tracks layer of the labels (see the widget's
        ``show_tracks``); the layer, or None after an error."""
        binding = self._binding
        if binding.image is None or binding.axis is None:
            self.error.emit("choose a stack first: a single image has no tracks")
            return None
        if not binding.ensure_layers():
            return None
        index = binding.fixed_index()
        view = labels_view(binding.labels.data, binding.axis, index)
        rows = tracks_rows(view, axis=binding.axis, index=index, ndim=binding.labels.ndim)
        if not len(rows):
            self.error.emit("the labels hold no objects yet: Track all (or propagate) first")
            return None
        ids = np.unique(rows[:, 0]).astype(int)
        if graph is None:  # the lineage of the objects (track id = label value)
            graph = lineage_graph(binding.lineage.mothers, ids)
        layer = show_tracks(self._viewer, binding.image, rows, graph)
        frames = len(np.unique(rows[:, 1 + binding.axis]))
        self.status.emit(f"Tracks of {len(ids)} objects over {frames} frames in {layer.name!r}.")
        return layer
