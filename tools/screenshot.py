"""Screenshot of napari-sam2 at work, for the README.

Opens the synthetic cells time-lapse in napari, docks the "SAM 2 segment &
track" widget, loads a model, clicks a cell (a positive point at (t, y, x)),
propagates, and saves a PNG of the whole window.

    python tools/screenshot.py sam2.1_hiera_tiny --out docs/screenshot.png
    python tools/screenshot.py path/to/demo.pt --point 0 120 84 --direction both

On a machine without a display run it under ``xvfb-run -a``. The default
point is the centre of the largest cell of the first frame (from the
sample's ground truth).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

WIDGET = ("napari-sam2", "SAM 2 segment & track")
SAMPLE = ("napari-sam2", "cells_timelapse")


def default_point(viewer) -> tuple[int, float, float]:
    """(t, y, x): the centre of the largest ground-truth cell on frame 0."""
    truth = next(layer for layer in viewer.layers if layer.name.endswith("ground truth"))
    frame = np.asarray(truth.data[0])
    ids, counts = np.unique(frame[frame > 0], return_counts=True)
    ys, xs = np.nonzero(frame == ids[np.argmax(counts)])
    return 0, float(ys.mean()), float(xs.mean())


def take(
    viewer,
    model: str,
    out: str | Path,
    *,
    point: tuple[int, float, float] | None = None,
    direction: str = "forward",
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
    t, y, x = point if point is not None else default_point(viewer)
    viewer.dims.set_current_step(0, int(t))
    widget.new_object()
    widget.add_point(int(t), y, x)
    widget.propagate(direction)
    if not widget.wait(timeout):
        raise RuntimeError("propagation did not finish in time")
    viewer.dims.set_current_step(0, int(t))
    truth = next((layer for layer in viewer.layers if layer.name.endswith("ground truth")), None)
    if truth is not None:
        truth.visible = False  # show SAM 2's labels, not the answer
    viewer.layers.selection.active = widget.points_layer
    widget.wait(timeout)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(out), canvas_only=False)
    return out, widget


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a model name (e.g. sam2.1_hiera_tiny) or a checkpoint file")
    parser.add_argument("--out", default="docs/screenshot.png", help="PNG to write")
    parser.add_argument("--point", nargs=3, type=float, metavar=("T", "Y", "X"),
                        help="the click (default: the centre of the largest cell on frame 0)")
    parser.add_argument("--direction", choices=("forward", "backward", "both"), default="forward")
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    parser.add_argument("--image-size", type=int, default=None, help="network input size, e.g. 512")
    parser.add_argument("--size", nargs=2, type=int, default=(1400, 860), metavar=("W", "H"),
                        help="window size in pixels")
    args = parser.parse_args(argv)

    import napari

    viewer = napari.Viewer(title="napari-sam2")
    try:
        point = None if args.point is None else (int(args.point[0]), args.point[1], args.point[2])
        path, _ = take(viewer, args.model, args.out, point=point, direction=args.direction,
                    device=args.device, image_size=args.image_size, size=tuple(args.size))
    finally:
        viewer.close()
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
