"""Divisions and lineages in the widget, on frames 20-25 of the sample
time-lapse (ground-truth cell 8 divides into 12 and 13 on frame 23, frame
3 here) with the demo model: Track all finds the division and Show tracks
draws it; a division marked by hand with two clicks on the canvas; Link to
mother and Unlink; each one undo step that reverts objects, prompts,
labels and the lineage, and the engine follows."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import QPoint, Qt

from .test_automatic import truth_under
from .test_widget import dock, open_cells

FIRST, FRAMES = 20, 6  # sample frames 20..25
MOTHER, DAUGHTERS, DIVIDES = 8, (12, 13), 3  # in the ground truth; frame 23 of the sample


@pytest.fixture(scope="module")
def window():
    from napari_sam2._sample_data import cells_timelapse

    (image, kwargs, _), (truth, _, _) = cells_timelapse()
    return image[FIRST:FIRST + FRAMES].copy(), truth[FIRST:FIRST + FRAMES].copy(), kwargs


def open_window(make_viewer, window, model):
    image, _truth, kwargs = window
    viewer = make_viewer()
    viewer.add_image(image, **kwargs)
    return viewer, dock(viewer, model)


def centroid(mask) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    return float(ys.mean()), float(xs.mean())


def click_canvas(viewer, qtbot, y: float, x: float, modifier=Qt.NoModifier) -> None:
    """A real mouse click on the canvas, where data pixel ``(y, x)`` is shown."""
    canvas = viewer.window._qt_viewer.canvas
    view = canvas.view
    cx, cy = (view.transform * view.scene.transform).map([x, y])[:2]
    qtbot.mouseClick(canvas.native, Qt.LeftButton, modifier, QPoint(int(round(cx)), int(round(cy))))


def read_autosaved_lineage(path) -> dict:
    from napari_sam2.engine.persist import read_session

    return {int(k): int(v) for k, v in read_session(path)[0]["lineage"]["mothers"].items()}


def test_track_all_finds_the_division_and_show_tracks_draws_it(make_viewer, window, demo_model, qtbot, tmp_path):
    _image, truth, kwargs = window
    viewer, widget = open_window(make_viewer, window, demo_model)
    widget.set_autosave(tmp_path)
    assert widget.divisions_box.isChecked()  # Track all finds divisions by default
    qtbot.mouseClick(widget.track_all_button, Qt.LeftButton)
    assert widget.wait(300)
    labels = widget.labels_layer.data
    mothers = widget.lineage_state.mothers
    daughters = {}
    for d, m in mothers.items():
        daughters.setdefault(m, []).append(d)
    assert len(daughters) >= 1 and all(len(v) == 2 for v in daughters.values())
    assert widget.session.lineage.links() == mothers  # the engine's lineage is the widget's
    assert read_autosaved_lineage(widget.session_files.last_autosave) == mothers  # autosaved
    # the division found is ground-truth cell 8's, around frame 3, its daughters on 12 and 13
    mother = next(m for m in daughters if truth_under(truth[DIVIDES - 1], labels[DIVIDES - 1], m) == MOTHER)
    kids = sorted(daughters[mother])
    assert sorted(truth_under(truth[-1], labels[-1], d) for d in kids) == list(DAUGHTERS)
    first = min(int(np.flatnonzero((labels == d).any(axis=(1, 2)))[0]) for d in kids)
    last = int(np.flatnonzero((labels == mother).any(axis=(1, 2)))[-1])
    assert abs(first - DIVIDES) <= 1 and last == first - 1  # the mother ends before her daughters begin
    assert widget.lineage_state.last[mother] == first - 1
    assert all(widget.lineage_state.first[d] == first for d in kids)

    # Show tracks draws the branching: the daughters' tracks have the mother's as parent
    qtbot.mouseClick(widget.show_tracks_button, Qt.LeftButton)
    tracks = viewer.layers[f"{kwargs['name']} SAM 2 tracks"]
    assert {int(d): [int(m) for m in ms] for d, ms in tracks.graph.items()} == {d: [m] for d, m in mothers.items()}
    assert set(kids) | {mother} <= {int(i) for i in np.unique(np.asarray(tracks.data)[:, 0])}

    # Undo takes Track all back with its lineage; Redo brings both again
    tracked = labels.copy()
    qtbot.mouseClick(widget.undo_button, Qt.LeftButton)
    assert widget.wait(60)
    assert widget.lineage_state.mothers == {} and widget.session.lineage.links() == {}
    assert not widget.labels_layer.data.any()
    qtbot.mouseClick(widget.redo_button, Qt.LeftButton)
    assert widget.wait(60)
    assert widget.lineage_state.mothers == mothers and widget.session.lineage.links() == mothers
    np.testing.assert_array_equal(widget.labels_layer.data, tracked)


def test_mark_division_with_two_clicks_undo_redo_and_plot(make_viewer, window, demo_model, qtbot):
    _image, truth, _kwargs = window
    viewer, widget = open_window(make_viewer, window, demo_model)
    labels = widget.labels_layer
    # the mother: one real click on frame 0, tracked forward
    qtbot.mouseClick(widget.new_button, Qt.LeftButton)
    mother = widget.current_object
    widget.go_to_frame(0)
    click_canvas(viewer, qtbot, *centroid(truth[0] == MOTHER))
    assert widget.wait(60) and widget.session.prompted_frames(mother) == [0]
    qtbot.mouseClick(widget.forward_button, Qt.LeftButton)
    assert widget.wait(120)
    assert all(truth_under(truth[f], labels.data[f], mother) == MOTHER for f in range(DIVIDES))
    before = labels.data.copy()

    # Mark division on frame 3: the next two clicks on the canvas are the daughters
    widget.go_to_frame(DIVIDES)
    qtbot.mouseClick(widget.lineage.division_button, Qt.LeftButton)
    assert widget.lineage.dividing and widget.points_layer.mode == "pan_zoom"
    assert widget.status.text() == f"Click daughter 1 of object {mother} on frame {DIVIDES} (Esc cancels)."
    qtbot.keyClick(viewer.window._qt_viewer.canvas.native, Qt.Key_Escape)
    assert not widget.lineage.dividing and widget.points_layer.mode == "add"
    assert widget.status.text() == "Mark division cancelled (Esc)."
    qtbot.mouseClick(widget.lineage.division_button, Qt.LeftButton)
    clicks = [centroid(truth[DIVIDES] == d) for d in DAUGHTERS]
    click_canvas(viewer, qtbot, *clicks[0])
    assert widget.status.text() == f"Click daughter 2 of object {mother} on frame {DIVIDES} (Esc cancels)."
    assert len(widget.points_layer.data) == 1  # no prompt added meanwhile
    click_canvas(viewer, qtbot, *clicks[1])
    assert widget.wait(60)
    kids = [mother + 1, mother + 2]
    assert not widget.lineage.dividing and widget.points_layer.mode == "add"
    assert widget.objects == [mother, *kids]
    state = widget.lineage_state
    assert state.mothers == {kids[0]: mother, kids[1]: mother}
    assert state.last == {mother: DIVIDES - 1} and state.first == {k: DIVIDES for k in kids}
    assert widget.session.lineage_state() == state  # the engine follows
    features = widget.points_layer.features
    assert features["object"].tolist()[1:] == kids and features["positive"].tolist()[1:] == [True, True]
    np.testing.assert_allclose(np.asarray(widget.points_layer.data)[1:, 1:], clicks, atol=0.75)
    divided = labels.data.copy()
    assert not (divided[DIVIDES:] == mother).any()  # her track ends on frame 2
    np.testing.assert_array_equal(divided[:DIVIDES], before[:DIVIDES])
    assert [truth_under(truth[DIVIDES], divided[DIVIDES], k) for k in kids] == list(DAUGHTERS)

    # the plot of daughter 1: her area, her mother's and her sister's
    widget.select_object(kids[0])
    qtbot.mouseClick(widget.lineage.plot_button, Qt.LeftButton)
    plot = widget.lineage.plot.plot
    assert viewer.window.dock_widgets["SAM 2 areas"] is plot and widget.lineage.plot.shown
    assert plot.legend() == [f"{kids[0]} (selected)", f"{mother} (mother)", f"{kids[1]} (sister)"]
    assert [c.frames.tolist() for c in plot.curves] == [[DIVIDES], [0, 1, 2], [DIVIDES]]
    assert plot.curves[1].areas.tolist() == [int((divided[f] == mother).sum()) for f in range(DIVIDES)]

    # one undo step: objects, prompts, labels and lineage back; redo again
    qtbot.mouseClick(widget.undo_button, Qt.LeftButton)
    assert widget.wait(60)
    assert widget.objects == [mother] and len(widget.points_layer.data) == 1
    assert widget.lineage_state.mothers == {} and widget.lineage_state.last == {}
    assert widget.session.lineage_state() == widget.lineage_state and widget.session.object_ids == [mother]
    np.testing.assert_array_equal(labels.data, before)
    qtbot.waitUntil(lambda: plot.legend() == [f"{mother} (selected)"], timeout=5000)
    qtbot.mouseClick(widget.redo_button, Qt.LeftButton)
    assert widget.wait(60)
    assert widget.objects == [mother, *kids] and widget.lineage_state == state
    assert widget.session.lineage_state() == state
    np.testing.assert_array_equal(labels.data, divided)

    # the next propagation tracks the daughters, not the mother
    qtbot.mouseClick(widget.forward_button, Qt.LeftButton)
    assert widget.wait(120)
    for f in range(DIVIDES, FRAMES):
        assert not (labels.data[f] == mother).any()
        assert [truth_under(truth[f], labels.data[f], k) for k in kids] == list(DAUGHTERS)


def test_link_and_unlink_are_undo_steps_the_engine_follows(make_viewer, cells, tiny_model, qtbot, tmp_path):
    viewer = open_cells(make_viewer, cells)
    widget = dock(viewer, tiny_model)
    widget.set_autosave(tmp_path)
    a = widget.new_object()
    widget.add_point(1, 30, 30)
    b = widget.new_object()
    widget.add_point(3, 60, 60)
    c = widget.new_object()
    widget.add_point(1, 70, 20)
    assert widget.wait(60)
    labels = widget.labels_layer.data.copy()
    points = np.asarray(widget.points_layer.data).copy()

    # Link to mother: daughter b selected, the mother's id in the box
    widget.select_object(b)
    widget.lineage.mother_box.setValue(a)
    qtbot.mouseClick(widget.lineage.link_button, Qt.LeftButton)
    assert widget.wait(60)
    linked = widget.lineage_state
    assert linked.mothers == {b: a} and linked.first == {b: 3} and linked.last == {a: 2}
    assert widget.session.lineage_state() == linked
    assert read_autosaved_lineage(widget.session_files.last_autosave) == {b: a}
    assert widget.status.text() == f"Object {b} is a daughter of object {a} (Undo reverts it)."
    # refused, with the reason: a cycle, a mother still there when the daughter begins, an unknown id
    for obj, mother, reason in ((a, b, "would make a cycle"), (c, b, "a mother must end before her daughters"),
                                (b, 99, "mother 99 is not an object")):
        assert not widget.link_to_mother(obj, mother)
        assert reason in widget.status_area.details.toPlainText() and widget.lineage_state == linked

    # one undo step takes the link back (and nothing else); redo again
    qtbot.mouseClick(widget.undo_button, Qt.LeftButton)
    assert widget.wait(60)
    assert widget.lineage_state.mothers == {} and widget.lineage_state.first == {}
    assert widget.session.lineage_state() == widget.lineage_state
    assert widget.objects == [a, b, c] and np.array_equal(widget.points_layer.data, points)
    np.testing.assert_array_equal(widget.labels_layer.data, labels)
    assert read_autosaved_lineage(widget.session_files.last_autosave) == {}
    qtbot.mouseClick(widget.redo_button, Qt.LeftButton)
    assert widget.wait(60)
    assert widget.lineage_state == linked and widget.session.lineage_state() == linked

    # Unlink: no mother, the track limits stay; undo brings the mother back
    widget.select_object(b)
    assert widget.lineage.mother_box.value() == a
    qtbot.mouseClick(widget.lineage.unlink_button, Qt.LeftButton)
    assert widget.wait(60)
    assert widget.lineage_state.mothers == {} and widget.lineage_state.first == {b: 3}
    assert widget.session.lineage.links() == {}
    assert not widget.unlink(b) and "has no mother" in widget.status_area.details.toPlainText()
    widget.undo()
    assert widget.wait(60)
    assert widget.lineage_state == linked and widget.session.lineage.links() == {b: a}

    # deleting the mother leaves her daughter without one, as in the engine; undo links them again
    widget.delete_object(a)
    assert widget.wait(60)
    assert widget.lineage_state.mothers == {} and widget.session.lineage.links() == {}
    widget.undo()
    assert widget.wait(60)
    assert widget.lineage_state == linked and widget.session.lineage.links() == {b: a}
