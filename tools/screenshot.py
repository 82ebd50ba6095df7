"""Screenshot of napari-sam2 at work, for the README.

Opens the synthetic cells time-lapse in napari, docks the "SAM 2 segment &
track" widget, loads a model, clicks cells (positive points at (t, y, x), one
object each), propagates, shows the last frame and saves a PNG of the whole
window.

    python tools/screenshot.py sam2.1_hiera_tiny --out docs/screenshot.png
    python tools/screenshot.py path/to/demo.pt --point 0 120 84 --direction both
    python tools/screenshot.py demo --track-all   # the README's picture
    python tools/screenshot.py demo --cells 3     # clicked cells instead

``--track-all`` presses *Segment all* on frame 0, then *Track all* (new
objects every ``--detect-every`` frames, divisions found) and *Show tracks*.

On a machine without a display run it under ``xvfb-run -a``. The default
clicks are the centres of the largest cells of the first frame that stay in
the field (from the sample's ground truth).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

WIDGET = ("napari-sam2", "SAM 2 segment & track")
SAMPLE = ("napari-sam2", "cells_timelapse")


def default_points(viewer, count: int = 1) -> list[tuple[int, float, float]]:
    """(t, y, x) clicks: the centres of the ``count`` largest ground-truth
    cells of frame 0 that stay in the field on every frame."""
    from napari_sam2.training.evaluate import largest_lasting_clicks

    truth = np.asarray(next(layer for layer in viewer.layers if layer.name.endswith("ground truth")).data)
    return [(0, y, x) for _, (y, x) in largest_lasting_clicks(truth, count)]


def take(
    viewer,
    model: str,
    out: str | Path,
    *,
    points: list[tuple[int, float, float]] | None = None,
    cells: int = 1,
    track_all: bool = False,
    detect_every: int = 3,
    show_frame: int | None = None,
    direction: str = "forward",
    correction: tuple[int, float, float] | None = None,
    device: str | None = None,
    image_size: int | None = None,
    size: tuple[int, int] = (1400, 860),
    timeout: float = 1800,
) -> tuple[Path, object]:
    """Do it all in ``viewer`` and save the PNG; returns its path and the widget."""
    viewer.open_sample(*SAMPLE)
    _, widget = viewer.window.add_plugin_dock_widget(*WIDGET)
    viewer.window.resize(*size)
    widget.load_model(model, device=device, image_size=image_size)
    if not widget.wait(timeout) or widget.model is None:
        raise RuntimeError(f"the model {model!r} did not load: {widget.status.text()}")
    if track_all:
        viewer.dims.set_current_step(0, 0)
        widget.detect_every_box.setValue(detect_every)  # as if typed in the spin box
        widget.divisions_box.setChecked(True)
        widget.track_all()
        if not widget.wait(timeout):
            raise RuntimeError("Track all did not finish in time")
        if not widget.status.text().startswith("Track all:"):
            raise RuntimeError(f"Track all failed: {widget.status.text()}")
        widget.show_tracks()
    else:
        points = points if points else default_points(viewer, cells)
        for t, y, x in points:  # one object per click
            viewer.dims.set_current_step(0, int(t))
            widget.new_object()
            widget.add_point(int(t), y, x)
        widget.propagate(direction)
        if not widget.wait(timeout):
            raise RuntimeError("propagation did not finish in time")
    if correction is not None:  # a negative click on the last object: later frames go out of date
        t, y, x = correction
        viewer.dims.set_current_step(0, int(t))
        widget.add_point(int(t), y, x, positive=False)
        widget.wait(timeout)
    last = widget.labels_layer.data.shape[0] - 1 if correction is None else int(correction[0])
    viewer.dims.set_current_step(0, last if show_frame is None else int(show_frame))
    truth = next((layer for layer in viewer.layers if layer.name.endswith("ground truth")), None)
    if truth is not None:
        truth.visible = False  # show SAM 2's labels, not the answer
    viewer.layers.selection.active = widget.points_layer
    widget.wait(timeout)
    viewer.reset_view()  # the whole frame in the canvas the dock left
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(out), canvas_only=False)
    return out, widget


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a model name (e.g. sam2.1_hiera_tiny) or a checkpoint file")
    parser.add_argument("--out", default="docs/screenshot.png", help="PNG to write")
    parser.add_argument("--point", nargs=3, type=float, metavar=("T", "Y", "X"), action="append",
                        help="a click, one object each; repeatable (default: centres of the largest cells)")
    parser.add_argument("--cells", type=int, default=1, help="how many cells to click when no --point is given")
    parser.add_argument("--track-all", action="store_true",
                        help="Segment all on frame 0, Track all and Show tracks instead of clicks")
    parser.add_argument("--detect-every", type=int, default=3, help="with --track-all: new objects every K frames")
    parser.add_argument("--show-frame", type=int, default=None, help="frame on screen (default: the last)")
    parser.add_argument("--direction", choices=("forward", "backward", "both"), default="forward")
    parser.add_argument("--correct", nargs=3, type=float, metavar=("T", "Y", "X"), default=None,
                        help="after the propagation, a negative click on the last object (and stay there)")
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    parser.add_argument("--image-size", type=int, default=None, help="network input size, e.g. 512")
    parser.add_argument("--size", nargs=2, type=int, default=(1400, 860), metavar=("W", "H"),
                        help="window size in pixels")
    args = parser.parse_args(argv)

    import napari
    import napari._qt.qt_main_window as main_window

    # napari's notice that PyQt5 support is deprecated would sit on the canvas
    main_window.SHOW_QT_WARNING = False

    viewer = napari.Viewer(title="napari-sam2")
    try:
        points = [(int(t), y, x) for t, y, x in args.point or []]
        path, _ = take(viewer, args.model, args.out, points=points, cells=args.cells,
                    track_all=args.track_all, detect_every=args.detect_every,
                    show_frame=args.show_frame, direction=args.direction,
                    correction=None if args.correct is None else (int(args.correct[0]), *args.correct[1:]),
                    device=args.device, image_size=args.image_size, size=tuple(args.size))
    finally:
        viewer.close()
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
