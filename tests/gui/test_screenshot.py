"""tools/screenshot.py: the viewer with the widget docked, after a click and
a propagation, saved as a PNG that is not blank."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def load_tool():
    spec = importlib.util.spec_from_file_location("screenshot_tool", ROOT / "tools" / "screenshot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_screenshot_of_the_docked_widget(make_viewer, tiny_checkpoint, tmp_path):
    from PIL import Image

    tool = load_tool()
    viewer = make_viewer(show=True)
    out, widget = tool.take(viewer, str(tiny_checkpoint), tmp_path / "shot.png",
                            points=[(3, 120.0, 84.0), (3, 40.0, 60.0)], device="cpu", size=(1200, 800))
    # two objects clicked on frame 3; the propagation wrote frames 3 to 29
    assert widget.objects == [1, 2]
    assert all(widget.session.prompted_frames(obj) == [3] for obj in (1, 2))
    assert widget.progress.value() == 27
    assert not widget.labels_layer.data[:3].any()
    assert viewer.dims.current_step[0] == 29  # the last frame is on screen
    assert len(tool.default_points(viewer, 3)) == 3

    assert out.is_file() and out.suffix == ".png"
    pixels = np.asarray(Image.open(out).convert("RGB"))
    height, width, _ = pixels.shape
    assert width >= 800 and height >= 500  # the window, not just the canvas
    assert pixels.std() > 20
    colours = np.unique(pixels.reshape(-1, 3), axis=0)
    assert len(colours) > 200
    # the dock widget's side (right) and the canvas are both drawn
    assert pixels[:, : width // 2].std() > 10 and pixels[:, width // 2:].std() > 10


def test_screenshot_of_track_all(make_viewer, tmp_path):
    """The README's picture: Segment all and Track all with the demo model
    (new objects every 3 frames, divisions looked for), then Show tracks."""
    from PIL import Image

    tool = load_tool()
    viewer = make_viewer(show=True)
    out, widget = tool.take(viewer, "demo", tmp_path / "track_all.png", track_all=True, detect_every=3,
                            device="cpu", size=(1200, 800))
    assert widget.detect_every_box.value() == 3 and widget.divisions_box.isChecked()
    labels = widget.labels_layer.data
    assert all(labels[t].any() for t in range(labels.shape[0]))  # every frame tracked
    assert len(widget.objects) >= 5 and widget.session.prompted_frames(widget.objects[0]) == [0]
    tracks = viewer.layers[f"{viewer.layers[0].name} SAM 2 tracks"]
    assert {int(i) for i in np.asarray(tracks.data)[:, 0]} == set(np.unique(labels)) - {0}
    assert widget.status.text().startswith("Tracks of ")
    assert viewer.dims.current_step[0] == labels.shape[0] - 1
    pixels = np.asarray(Image.open(out).convert("RGB"))
    assert pixels.shape[1] >= 800 and pixels.std() > 20
