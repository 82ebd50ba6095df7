"""Segment all, Track all and Show tracks through the widget's buttons, on
the sample time-lapse with the demo model: the objects listed, labels on
every frame that follow the same cells, a Tracks layer at the labels'
centroids, and one undo step for each run."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QPoint, Qt

from .test_widget import dock

FRAMES = 6


def truth_under(truth: np.ndarray, labels: np.ndarray, obj: int) -> int:
    """The ground-truth cell most of ``obj``'s pixels lie on (0: background)."""
    values, counts = np.unique(truth[labels == obj], return_counts=True)
    return int(values[np.argmax(counts)]) if len(values) else -1


def on_one_cell(truth: np.ndarray, labels: np.ndarray, obj: int, share: float = 0.6) -> bool:
    """Whether at least ``share`` of ``obj``'s pixels lie on one cell (not a
    mask spread over two touching cells, whose majority may flip)."""
    _, counts = np.unique(truth[labels == obj], return_counts=True)
    return len(counts) > 0 and counts.max() >= share * counts.sum()


def test_segment_all_track_all_show_tracks_and_undo(make_viewer, demo_model, qtbot):
    from napari_sam2._sample_data import cells_timelapse

    (image, kwargs, _), (truth, _, _) = cells_timelapse()
    image, truth = image[:FRAMES], truth[:FRAMES]
    viewer = make_viewer()
    viewer.add_image(image, **kwargs)
    widget = dock(viewer, demo_model)
    labels = widget.labels_layer
    widget.go_to_frame(0)
    assert widget.wait(60)
    assert widget.segment_all_button.isEnabled() and widget.track_all_button.isEnabled()

    # Segment all on the frame on screen (frame 0): the objects found, on cells
    qtbot.mouseClick(widget.segment_all_button, Qt.LeftButton)
    assert widget.wait(120)
    first = widget.objects
    assert len(first) >= 5 and first == list(range(1, len(first) + 1))
    assert widget.status.text() == f"Segment all: {len(first)} objects on frame 0 (Undo removes them)."
    assert set(np.unique(labels.data[0])) - {0} == set(first)
    assert not labels.data[1:].any()
    on_cells = [obj for obj in first if truth_under(truth[0], labels.data[0], obj) != 0]
    assert len(on_cells) >= len(first) - 1
    # each object's mask is its prompt, in the widget and in the engine
    assert sorted(widget._masks) == [(obj, 0) for obj in first]
    for (obj, _), mask in widget._masks.items():
        np.testing.assert_array_equal(mask.array, labels.data[0] == obj)
    assert sorted(widget.session.object_ids) == first
    assert all(widget.session.prompted_frames(obj) == [0] for obj in first)
    segmented = labels.data.copy()

    # Track all, finding new objects every 3 frames (set in the spin box)
    widget.detect_every_box.setValue(3)
    qtbot.mouseClick(widget.track_all_button, Qt.LeftButton)
    assert widget.busy
    qtbot.waitUntil(lambda: widget.stop_button.isEnabled(), timeout=60000)  # runs with Stop
    assert not widget.track_all_button.isEnabled() and not widget.segment_all_button.isEnabled()
    assert widget.wait(300)
    assert widget.progress.value() == widget.progress.maximum() == FRAMES
    assert widget.status.text().startswith("Track all:") and widget.status.text().endswith("(Undo reverts it)")
    objects = widget.objects
    assert objects[: len(first)] == first and set(np.unique(labels.data)) - {0} <= set(objects)
    assert all(labels.data[f].any() for f in range(FRAMES))
    np.testing.assert_array_equal(labels.data[0], segmented[0])  # nothing new on frame 0
    # the same cells, frame after frame (an object may leave or be lost; the
    # demo model may spread one mask over two touching cells, at most once)
    kept = [obj for obj in first if (labels.data[-1] == obj).any()]
    single = [obj for obj in kept if on_one_cell(truth[0], labels.data[0], obj)]
    followed = [obj for obj in single
                if truth_under(truth[-1], labels.data[-1], obj) == truth_under(truth[0], labels.data[0], obj)]
    assert len(kept) >= len(first) - 2 and len(single) >= len(kept) - 1 and followed == single
    tracked = labels.data.copy()

    # Show tracks: one row per object and frame, at its centroid
    qtbot.mouseClick(widget.show_tracks_button, Qt.LeftButton)
    tracks = viewer.layers[f"{kwargs['name']} SAM 2 tracks"]
    rows = np.asarray(tracks.data)
    pairs = {(obj, t) for t in range(FRAMES) for obj in set(np.unique(tracked[t])) - {0}}
    assert {(int(i), int(t)) for i, t in rows[:, :2]} == pairs and len(rows) == len(pairs)
    for obj, t, y, x in rows:
        ys, xs = np.nonzero(tracked[int(t)] == obj)
        np.testing.assert_allclose([y, x], [ys.mean(), xs.mean()], atol=1e-6)
    np.testing.assert_allclose(tracks.scale, viewer.layers[kwargs["name"]].scale)
    a, b = first[:2]  # a lineage graph given by a script: the same layer, updated
    assert widget.show_tracks(graph={b: [a]}) is tracks and tracks.graph == {b: [a]}

    # one Undo reverts Track all, one more Segment all; the engine follows
    qtbot.mouseClick(widget.undo_button, Qt.LeftButton)
    assert widget.wait(60)
    np.testing.assert_array_equal(labels.data, segmented)
    assert widget.objects == first and sorted(widget.session.object_ids) == first
    qtbot.mouseClick(widget.undo_button, Qt.LeftButton)
    assert widget.wait(60)
    assert not labels.data.any() and widget.objects == []
    assert widget.session.object_ids == []
    # and Redo brings Segment all back
    qtbot.mouseClick(widget.redo_button, Qt.LeftButton)
    assert widget.wait(60)
    np.testing.assert_array_equal(labels.data, segmented)
    assert widget.objects == first and sorted(widget.session.object_ids) == first

    # Track all stopped after its first frame: the frames done stay, Undo reverts them
    qtbot.mouseClick(widget.track_all_button, Qt.LeftButton)
    # (the bar counts frames once the first one is written)
    qtbot.waitUntil(lambda: widget.stop_button.isEnabled() and widget.progress.maximum() > 0, timeout=60000)
    qtbot.mouseClick(widget.stop_button, Qt.LeftButton)
    assert widget.wait(120)
    assert widget.status.text().startswith("Stopped after") and widget.track_all_button.isEnabled()
    written = [f for f in range(FRAMES) if labels.data[f].any()]
    assert written == list(range(len(written))) and len(written) < FRAMES
    qtbot.mouseClick(widget.undo_button, Qt.LeftButton)
    assert widget.wait(60)
    np.testing.assert_array_equal(labels.data, segmented)
    assert widget.objects == first


def test_split_touching_cells_box(make_viewer, demo_model, qtbot):
    """"Split touching cells" (on by default): unticked with a real click,
    Segment all keeps SAM's masks as they are, so masks over two touching
    cells of the sample stay one object; ticked again, they are split."""
    from napari_sam2._sample_data import cells_timelapse

    (image, kwargs, _), (truth, _, _) = cells_timelapse()
    viewer = make_viewer()
    viewer.add_image(image[:2], **kwargs)
    widget = dock(viewer, demo_model)
    widget.go_to_frame(0)
    assert widget.wait(60)
    box = widget.split_box
    assert box.isChecked() and box.isEnabled()

    def segment_all() -> int:
        qtbot.mouseClick(widget.segment_all_button, Qt.LeftButton)
        assert widget.wait(120)
        return len(widget.objects)

    tick = QPoint(box.style().pixelMetric(box.style().PM_IndicatorWidth) // 2 + 1, box.height() // 2)  # on the box
    qtbot.mouseClick(box, Qt.LeftButton, pos=tick)
    assert not box.isChecked()
    whole = segment_all()
    over_two = [obj for obj in widget.objects if not on_one_cell(truth[0], widget.labels_layer.data[0], obj)]
    qtbot.mouseClick(widget.undo_button, Qt.LeftButton)
    assert widget.wait(60) and widget.objects == []
    qtbot.mouseClick(box, Qt.LeftButton, pos=tick)
    assert box.isChecked()
    split = segment_all()
    assert split > whole and over_two  # the sample has touching cells SAM answers with one mask
    assert sum(not on_one_cell(truth[0], widget.labels_layer.data[0], obj) for obj in widget.objects) < len(over_two)
