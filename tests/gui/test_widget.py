"""The dock widget in a real napari viewer, with a random-weight model.

A random network segments nothing in particular, so these tests check the
wiring: where prompts land in the engine, which frames get which id, what
stays untouched, undo, stop, and that errors become notifications.
"""

from __future__ import annotations

import numpy as np
import torch

WIDGET = ("napari-sam2", "SAM 2 segment & track")
UNTRACKED = 9  # a hand-painted label that no object owns


def dock(viewer, model=None):
    from napari_sam2._widget import SAM2Widget

    _, widget = viewer.window.add_plugin_dock_widget(*WIDGET)
    assert isinstance(widget, SAM2Widget)
    if model is not None:
        widget.set_model(model)
        assert widget.wait(60)
    return widget


def open_cells(make_viewer, cells, **kwargs):
    image, truth, image_kwargs, truth_kwargs = cells
    viewer = make_viewer(**kwargs)
    viewer.add_image(image, **image_kwargs)
    viewer.add_labels(truth, **truth_kwargs)
    viewer.layers.selection.active = viewer.layers[image_kwargs["name"]]
    return viewer


def stored_points(session, obj, frame):
    """The engine's clicks for ``obj`` on ``frame``, back in (y, x) pixels."""
    prompts = session._objects[obj].prompts[frame]  # engine state, read in tests only
    s = session.model.image_size
    return [(y * session.height / s, x * session.width / s) for x, y in prompts.points], list(prompts.labels)


def paint_untracked(widget):
    """Paint a block of UNTRACKED on every frame of the SAM 2 labels layer."""
    data = widget.labels_layer.data
    data[:, 5:15, 5:20] = UNTRACKED
    widget.labels_layer.refresh()
    return data.copy()


# ----------------------------------------------------------------- set-up
def test_docks_from_manifest_and_sets_up_layers(make_viewer, cells):
    viewer = open_cells(make_viewer, cells)
    widget = dock(viewer)
    image = viewer.layers["cells time-lapse"]
    assert widget.image_layer is image
    assert widget.axis == 0 and widget.axis_box.currentText() == "t (6 frames)"
    labels, points, shapes = widget.labels_layer, widget.points_layer, widget.shapes_layer
    assert labels.name == "cells time-lapse SAM 2 labels"
    assert labels.data.shape == image.data.shape and labels.data.dtype.kind == "u"
    assert not labels.data.any()
    assert points.name == "cells time-lapse SAM 2 points" and points.ndim == 3
    assert shapes.name == "cells time-lapse SAM 2 boxes" and shapes.ndim == 3
    assert viewer.layers.selection.active is points and points.mode == "add"
    assert widget.labels_box.currentText() == labels.name
    # a model is needed for anything to be computed
    assert widget.session is None and widget.model is None


def test_new_object_takes_next_free_id_and_labels_colour(make_viewer, cells):
    viewer = open_cells(make_viewer, cells)
    widget = dock(viewer)
    widget.labels_layer.data[2, 10, 10] = 5
    assert widget.new_object() == 6
    assert widget.new_object() == 7
    assert widget.objects == [6, 7] and widget.current_object == 7
    assert widget.labels_layer.selected_label == 7
    for obj in (6, 7):
        item = widget.object_list.item(widget.objects.index(obj))
        colour = item.icon().pixmap(8, 8).toImage().pixelColor(4, 4)
        expected = np.round(255 * np.asarray(widget.labels_layer.get_color(obj))[:3])
        assert np.abs(np.array([colour.red(), colour.green(), colour.blue()]) - expected).max() <= 1


def test_click_decodes_the_current_frame_only(make_viewer, cells, tiny_model):
    viewer = open_cells(make_viewer, cells)
    widget = dock(viewer, tiny_model)
    before = paint_untracked(widget)
    viewer.dims.set_current_step(0, 2)
    obj = widget.new_object()
    # what napari's add mode does on a click: add a row at (t, y, x)
    widget.points_layer.add(np.array([[2, 40.0, 57.0]]))
    assert widget.wait(60)
    session = widget.session
    assert session.object_ids == [obj] and session.prompted_frames(obj) == [2]
    points, labels = stored_points(session, obj, 2)
    np.testing.assert_allclose(points, [(40.0, 57.0)], atol=1e-3)
    assert labels == [1]
    features = widget.points_layer.features
    assert features["object"].tolist() == [obj] and features["positive"].tolist() == [True]
    data = widget.labels_layer.data
    changed = np.flatnonzero((data != before).reshape(len(data), -1).any(axis=1))
    assert changed.tolist() == [2]
    assert set(np.unique(data[2])) <= {0, obj, UNTRACKED}
    np.testing.assert_array_equal(data == UNTRACKED, before == UNTRACKED)
    # the click is one undo step
    widget.labels_layer.undo()
    np.testing.assert_array_equal(widget.labels_layer.data, before)


def test_shift_click_and_toggle_make_negative_points(make_viewer, cells, tiny_model):
    from napari.utils._test_utils import read_only_mouse_event
    from napari.utils.interactions import mouse_press_callbacks, mouse_release_callbacks

    viewer = open_cells(make_viewer, cells)
    widget = dock(viewer, tiny_model)
    obj = widget.new_object()
    points = widget.points_layer

    def click(y, x, modifiers=()):
        kwargs = dict(position=(1, y, x), pos=np.array([10.0, 10.0]), modifiers=list(modifiers),
                      dims_displayed=[1, 2], view_direction=[1, 0, 0], up_direction=[0, -1, 0])
        mouse_press_callbacks(points, read_only_mouse_event(type="mouse_press", **kwargs))
        mouse_release_callbacks(points, read_only_mouse_event(type="mouse_release", **kwargs))

    viewer.dims.set_current_step(0, 1)
    click(30, 30)
    click(60, 70, modifiers=["Shift"])
    widget.negative_box.setChecked(True)
    click(20, 80)
    click(25, 85, modifiers=["Shift"])  # Shift inverts the toggle
    assert widget.wait(60)
    assert points.features["positive"].tolist() == [True, False, False, True]
    yx, signs = stored_points(widget.session, obj, 1)
    np.testing.assert_allclose(yx, [(30, 30), (60, 70), (20, 80), (25, 85)], atol=1e-3)
    assert signs == [1, 0, 0, 1]
    # drawn in two colours
    face = np.asarray(points.face_color)
    assert np.allclose(face[0], face[3]) and np.allclose(face[1], face[2])
    assert not np.allclose(face[0], face[1])


def test_box_and_scripted_prompts_reach_the_engine(make_viewer, cells, tiny_model):
    viewer = open_cells(make_viewer, cells)
    widget = dock(viewer, tiny_model)
    first = widget.new_object()
    widget.add_box(3, 20, 30, 60, 80)
    second = widget.new_object()
    widget.add_point(4, 50, 50, positive=False)
    widget.add_point(4, 52, 54, obj=first)
    assert widget.wait(60)
    session = widget.session
    assert sorted(session.object_ids) == [first, second]
    assert session.prompted_frames(first) == [3, 4] and session.prompted_frames(second) == [4]
    box = session._objects[first].prompts[3].box  # (x0, y0, x1, y1) in model pixels
    s = tiny_model.image_size
    np.testing.assert_allclose(
        box, [30 / 112 * s, 20 / 96 * s, 80 / 112 * s, 60 / 96 * s], rtol=1e-5
    )
    assert stored_points(session, second, 4)[1] == [0]
    assert widget.shapes_layer.features["object"].tolist() == [first]
    # a box drawn by the user: the shapes layer's own rectangle
    widget.select_object(second)
    widget.shapes_layer.add_rectangles(np.array([[4, 10, 10], [4, 10, 40], [4, 40, 40], [4, 40, 10]]))
    assert widget.wait(60)
    assert session._objects[second].prompts[4].box is not None
    # deleting a click replays the frame's remaining prompts
    widget.points_layer.selected_data = {1}
    widget.points_layer.remove_selected()
    assert widget.wait(60)
    assert session.prompted_frames(first) == [3]
    assert stored_points(session, second, 4)[1] == [0]


def test_slice_change_prepares_features_in_background(make_viewer, cells, tiny_model, qtbot):
    viewer = open_cells(make_viewer, cells)
    widget = dock(viewer, tiny_model)
    viewer.dims.set_current_step(0, 4)
    qtbot.waitUntil(lambda: widget.session is not None and widget.session.is_prepared(4), timeout=30000)
    assert widget.wait(30)


# ----------------------------------------------------------------- propagation
def test_propagate_writes_frames_with_the_right_ids_and_undo_reverts_in_one_step(
    make_viewer, cells, tiny_model
):
    viewer = open_cells(make_viewer, cells)
    widget = dock(viewer, tiny_model)
    before = paint_untracked(widget)
    a = widget.new_object()
    widget.add_point(2, 40, 57)
    assert widget.wait(60)
    widget.propagate("forward")
    assert widget.wait(120)
    data = widget.labels_layer.data
    after_a = data.copy()
    # frames 0-1 are before the prompt: untouched; 2-5 hold object a
    np.testing.assert_array_equal(after_a[:2], before[:2])
    assert all((after_a[f] == a).any() for f in range(2, 6))
    assert set(np.unique(after_a)) <= {0, a, UNTRACKED}
    np.testing.assert_array_equal(after_a == UNTRACKED, before == UNTRACKED)
    assert widget.progress.value() == widget.progress.maximum() == 4
    assert widget.forward_button.isEnabled() and not widget.stop_button.isEnabled()

    # a second object: its click re-decodes frame 3 only; tracked over
    # frames 3-4, only b is computed (a is up to date there), and each frame
    # holds both objects' masks, overlaps by score; the painted pixels stay
    b = widget.new_object()
    widget.add_point(3, 70, 90)
    assert widget.wait(60)
    after_click = data.copy()
    np.testing.assert_array_equal(after_click[[0, 1, 2, 4, 5]], after_a[[0, 1, 2, 4, 5]])
    widget.propagate("forward", start=3, stop=4)
    assert widget.wait(120)
    after_b = data.copy()
    session = widget.session
    for f in (3, 4):
        lows = torch.cat([session._bank.logits(o, f) for o in (a, b)])
        logits = torch.nn.functional.interpolate(lows, size=after_b.shape[1:], mode="bilinear", align_corners=False)[:, 0]
        best, win = logits.max(0)
        composed = np.where(best.numpy() > 0, np.array([a, b])[win.numpy()], 0)
        free = before[f] != UNTRACKED
        np.testing.assert_array_equal(after_b[f][free], composed[free])
    np.testing.assert_array_equal(after_b == UNTRACKED, before == UNTRACKED)
    assert set(np.unique(after_b)) <= {0, a, b, UNTRACKED}
    assert (after_b[3] == b).any() and (after_b[4] == b).any()
    np.testing.assert_array_equal(after_b[[0, 1, 2, 5]], after_a[[0, 1, 2, 5]])  # outside the span

    # one undo reverts the whole propagation of b, redo brings it back
    widget.labels_layer.undo()
    np.testing.assert_array_equal(widget.labels_layer.data, after_click)
    widget.labels_layer.redo()
    np.testing.assert_array_equal(widget.labels_layer.data, after_b)
    widget.labels_layer.undo()
    widget.labels_layer.undo()  # and b's click, which goes from the points layer too
    np.testing.assert_array_equal(widget.labels_layer.data, after_a)
    assert widget.points_layer.features["object"].tolist() == [a]
    widget.labels_layer.redo()  # the click is back
    assert widget.points_layer.features["object"].tolist() == [a, b]
    np.testing.assert_array_equal(widget.labels_layer.data, after_click)

    # propagating again after the undo computes the undone frames again
    # (rather than finding them up to date and doing nothing)
    widget.propagate("forward", start=3, stop=4)
    assert widget.wait(120)
    again = widget.labels_layer.data
    assert (again[3] == b).any() and (again[4] == b).any()
    np.testing.assert_array_equal(again[[0, 1, 2, 5]], after_a[[0, 1, 2, 5]])
    np.testing.assert_array_equal(again == UNTRACKED, before == UNTRACKED)


def test_stop_midway_leaves_later_frames_untouched(make_viewer, cells, tiny_model, qtbot):
    from qtpy.QtCore import QTimer

    image, truth, image_kwargs, truth_kwargs = cells
    long = np.concatenate([image, image[::-1], image])  # 18 frames
    viewer = make_viewer()
    viewer.add_image(long, **image_kwargs)
    widget = dock(viewer, tiny_model)
    widget.follow_box.setChecked(False)
    obj = widget.new_object()
    widget.add_point(0, 40, 57)
    assert widget.wait(60)
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(widget.busy))
    timer.start(10)
    widget.propagate("forward")
    # frame 0's features were cached by the click; frame 1 needs real model work
    qtbot.waitUntil(lambda: widget.progress.value() >= 2, timeout=60000)
    # the event loop kept running while the model worked
    assert sum(ticks) >= 5 and widget.stop_button.isEnabled() and not widget.forward_button.isEnabled()
    timer.stop()
    widget.stop()
    assert widget.wait(60)
    written = [f for f in range(18) if (widget.labels_layer.data[f] == obj).any()]
    reached = widget.progress.value()
    assert 1 <= reached < 17 and "Stopped" in widget.status.text()
    assert written == list(range(len(written))) and len(written) <= reached
    assert not widget.labels_layer.data[reached:].any()
    assert widget.forward_button.isEnabled()
    # the session is free again: propagating goes on from where it stopped
    widget.propagate("forward")
    assert widget.wait(120)
    assert all((widget.labels_layer.data[f] == obj).any() for f in range(18))


def test_clear_object_and_reset(make_viewer, cells, tiny_model):
    viewer = open_cells(make_viewer, cells)
    widget = dock(viewer, tiny_model)
    before = paint_untracked(widget)
    a = widget.new_object()
    widget.add_point(1, 40, 57)
    b = widget.new_object()
    widget.add_point(1, 80, 20)
    assert widget.wait(60)
    widget.propagate("forward")
    assert widget.wait(120)
    tracked = widget.labels_layer.data.copy()
    widget.clear_object(a)
    assert widget.wait(60)
    data = widget.labels_layer.data
    assert not (data == a).any()
    np.testing.assert_array_equal(data == b, tracked == b)
    np.testing.assert_array_equal(data == UNTRACKED, before == UNTRACKED)
    assert widget.points_layer.features["object"].tolist() == [b]
    assert widget.session.object_ids == [b]
    widget.labels_layer.undo()
    np.testing.assert_array_equal(widget.labels_layer.data, tracked)

    widget.reset()
    assert widget.wait(60)
    assert widget.objects == [] and len(widget.points_layer.data) == 0
    np.testing.assert_array_equal(widget.labels_layer.data, tracked)  # labels stay
    assert widget.new_object() == max(a, b) + 1


def test_4d_tracks_along_t_at_the_viewer_z(make_viewer, tiny_model):
    rng = np.random.default_rng(1)
    stack = rng.integers(0, 3000, size=(4, 3, 48, 56), dtype=np.uint16)
    viewer = make_viewer()
    viewer.add_image(stack, axis_labels=("t", "z", "y", "x"), name="4d")
    widget = dock(viewer, tiny_model)
    assert widget.axis == 0 and widget.axis_box.count() == 2
    viewer.dims.set_current_step(1, 2)  # z = 2
    obj = widget.new_object()
    widget.add_point(1, 20, 30)
    assert widget.wait(60)
    assert widget.session.frames.index == {1: 2} and widget.session.prompted_frames(obj) == [1]
    widget.propagate("forward")
    assert widget.wait(120)
    data = widget.labels_layer.data
    assert data.shape == stack.shape
    assert not data[:, :2].any()  # other z planes untouched
    assert not data[0].any() and all((data[t, 2] == obj).any() for t in (1, 2, 3))
    assert widget.points_layer.data.tolist() == [[1, 2, 20, 30]]

    # following z instead, at the viewer's t
    assert widget.set_axis(1)
    viewer.dims.set_current_step(0, 3)
    widget.add_point(0, 10, 10)
    assert widget.wait(60)
    assert widget.session.frames.axis == 1 and widget.session.frames.index == {0: 3}
    assert widget.session.prompted_frames(obj) == [0]


def test_rgb_time_lapse(make_viewer, tiny_model):
    rgb = np.random.default_rng(2).integers(0, 255, size=(3, 40, 48, 3), dtype=np.uint8)
    viewer = make_viewer()
    viewer.add_image(rgb, rgb=True, name="rgb")
    widget = dock(viewer, tiny_model)
    assert widget.labels_layer.data.shape == (3, 40, 48)
    obj = widget.new_object()
    widget.add_point(0, 20, 20)
    assert widget.wait(60)
    session = widget.session
    assert session.frames.channel_axis == 3 and session.prompted_frames(obj) == [0]
    np.testing.assert_array_equal(session.frames.read(1), rgb[1])
    widget.propagate("forward")
    assert widget.wait(60)
    assert widget.progress.value() == widget.progress.maximum() == 3
    assert set(np.unique(widget.labels_layer.data)) <= {0, obj}


# ----------------------------------------------------------------- errors
def test_wrong_layers_give_notifications(make_viewer, cells, tiny_model, notifications):
    viewer = open_cells(make_viewer, cells)
    widget = dock(viewer, tiny_model)
    image = widget.image_layer
    assert not widget.set_image(viewer.layers["cells time-lapse ground truth"])
    assert not widget.set_image(widget.points_layer)
    assert widget.image_layer is image
    errors = notifications.messages("error")
    assert any("Labels layer, not an image" in m for m in errors)
    assert any("Points layer, not an image" in m for m in errors)

    two = viewer.add_image(cells[0][:2], name="two frames")
    other = viewer.add_labels(np.zeros((3, 96, 112), np.uint16), name="other shape")
    assert widget.set_image(two)
    labels = widget.labels_layer
    assert labels.data.shape == (2, 96, 112)
    assert not widget.set_labels(other)
    assert widget.labels_layer is labels
    assert any("has shape (3, 96, 112)" in m and "(2, 96, 112)" in m for m in notifications.messages("error"))
    assert widget.labels_box.currentText() == labels.name
    # still usable
    widget.new_object()
    widget.add_point(1, 30, 30)
    assert widget.wait(60)
    assert widget.session.prompted_frames(widget.current_object) == [1]
    assert notifications.tracebacks() == []


def test_errors_in_workers_become_notifications(make_viewer, cells, tiny_model, notifications, monkeypatch):
    viewer = open_cells(make_viewer, cells)
    widget = dock(viewer, tiny_model)
    widget.new_object()

    def broken(*args, **kwargs):
        raise RuntimeError("the GPU caught fire")

    with monkeypatch.context() as patch:
        patch.setattr(tiny_model.image_encoder, "forward", broken)
        widget.add_point(0, 40, 50)
        assert widget.wait(60)
    assert any("GPU caught fire" in m for m in notifications.messages("error"))
    assert widget.new_button.isEnabled() and widget.forward_button.isEnabled()

    # a propagation failing midway: the frames done stay (undoable), the widget recovers
    calls = {"n": 0}
    step = tiny_model.track_step

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 3:
            raise RuntimeError("out of memory, pretend")
        return step(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(tiny_model, "track_step", flaky)
        widget.propagate("forward")
        assert widget.wait(120)
    assert any("propagation failed: out of memory" in m for m in notifications.messages("error"))
    assert widget.forward_button.isEnabled() and not widget.stop_button.isEnabled()
    assert notifications.tracebacks() == []
    widget.propagate("forward")
    assert widget.wait(120)
    assert all((widget.labels_layer.data[f] == widget.current_object).any() for f in range(6))

    # propagating with nothing to track is an error message, not a crash
    widget.reset()
    widget.propagate("forward")
    assert widget.wait(60)
    assert notifications.messages("error")[-1].startswith("SAM 2:")


def test_model_loading_in_a_worker(make_viewer, cells, tiny_model, tmp_path, notifications):
    from napari_sam2 import save_checkpoint

    path = save_checkpoint(tiny_model, tmp_path / "tiny_random.pt")
    viewer = open_cells(make_viewer, cells)
    widget = dock(viewer)
    widget.load_model(tmp_path / "missing.pt", device="cpu")
    assert widget.wait(60)
    assert widget.model is None and widget.model_panel.load_button.isEnabled()
    assert any("could not load the model" in m and "missing.pt" in m for m in notifications.messages("error"))
    widget.load_model(path, device="cpu", image_size=256)
    assert widget.wait(120)
    assert widget.model is not None and widget.model.image_size == 256
    widget.new_object()
    widget.add_point(0, 40, 50)
    assert widget.wait(60)
    assert widget.session.prompted_frames(widget.current_object) == [0]


def test_removed_layers_are_made_again_when_needed(make_viewer, cells, tiny_model, notifications):
    viewer = open_cells(make_viewer, cells)
    widget = dock(viewer, tiny_model)
    viewer.layers.remove(widget.labels_layer)
    viewer.layers.remove(widget.points_layer)
    assert widget.labels_layer is None and widget.points_layer is None
    obj = widget.new_object()
    widget.add_point(1, 30, 40)
    assert widget.wait(60)
    assert widget.labels_layer in viewer.layers and widget.points_layer in viewer.layers
    assert widget.session.prompted_frames(obj) == [1]
    viewer.layers.remove(viewer.layers["cells time-lapse"])
    assert widget.image_layer is None and not widget.forward_button.isEnabled()
    widget.propagate("forward")
    assert widget.wait(10)
    assert "choose an image first" in notifications.messages("error")[-1]
    assert notifications.tracebacks() == []
