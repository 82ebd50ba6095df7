"""Save session… / Open session… and autosave in the dock widget (demo
model, the cells sample cropped to 4 frames)."""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import QFileDialog

from .test_undo import State
from .test_widget import dock

FRAMES = 4


def open_stack(make_viewer, cells, frames=FRAMES):
    image, _, image_kwargs, _ = cells
    viewer = make_viewer()
    viewer.add_image(image[:frames], **image_kwargs)
    return viewer


def segmented(make_viewer, cells, demo_model):
    viewer = open_stack(make_viewer, cells)
    widget = dock(viewer, demo_model)
    widget.follow_box.setChecked(False)
    a = widget.new_object()
    widget.add_point(0, 31, 85)
    widget.add_point(0, 20, 60, positive=False)
    widget.new_object()
    widget.add_box(0, 32, 43, 64, 71)
    widget.select_object(a)
    widget.add_point(1, 31, 86)  # a correction on a later frame
    assert widget.wait(120)
    widget.propagate("forward")
    assert widget.wait(300)
    assert len(widget.objects) == 2 and widget.labels_layer.data.any()
    assert widget.use_painted_mask(2, obj=a)  # a mask prompt, carried on to frame 3
    widget.propagate("forward")
    assert widget.wait(300)
    return viewer, widget


def test_save_then_open_in_a_new_viewer_restores_objects_prompts_labels(
        make_viewer, cells, demo_model, tmp_path, monkeypatch, notifications):
    _, first = segmented(make_viewer, cells, demo_model)
    saved = State(first)
    target = tmp_path / "cells.sam2"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    first.session_files.save_button.click()
    assert (target / "CURRENT").is_file()
    assert "saved" in first.status.text()

    viewer = open_stack(make_viewer, cells)
    widget = dock(viewer, demo_model)
    widget.follow_box.setChecked(False)
    empty = State(widget)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(target / "CURRENT"), ""))
    widget.session_files.open_button.click()
    assert widget.wait(60)
    saved.check(widget)  # same objects, points, boxes and labels
    assert list(widget._masks) == list(first._masks) == [(first.objects[0], 2)]  # the mask prompt
    np.testing.assert_array_equal(widget._masks[(1, 2)].array, first._masks[(1, 2)].array)
    assert not notifications.messages("error")
    assert widget.session is not None and sorted(widget.session.object_ids) == saved.objects

    # every frame is current, as it was when saved (the file holds what the
    # prompted frames decoded); propagating again changes nothing
    assert not widget.frame_states().any()
    widget.propagate("forward")
    assert widget.wait(300)
    saved.check(widget)

    # opening is one undo step
    widget.undo()
    assert widget.wait(60)
    empty.check(widget)


def test_autosave_after_propagation_writes_a_loadable_session(
        make_viewer, cells, demo_model, tmp_path, notifications):
    from napari_sam2 import StackSession

    viewer = open_stack(make_viewer, cells)
    widget = dock(viewer, demo_model)
    widget.follow_box.setChecked(False)
    assert not widget.session_files.autosave_box.isChecked()  # off by default
    widget.set_autosave(tmp_path)
    assert widget.session_files.autosave_box.isChecked()
    path = tmp_path / "cells time-lapse.sam2"
    widget.new_object()
    widget.add_point(0, 31, 85)
    assert widget.wait(120)
    assert (path / "CURRENT").is_file()  # after the click (a correction)
    widget.propagate("forward")
    assert widget.wait(300)
    assert widget.session_files.last_autosave == path
    loaded = StackSession.load(path, demo_model, viewer.layers["cells time-lapse"].data)
    np.testing.assert_array_equal(loaded.labels, widget.labels_layer.data)
    assert loaded.labels[FRAMES - 1].any()

    # a failing autosave is a status line, not an error dialog
    widget.set_autosave(tmp_path / "missing" / "folder")
    widget.add_point(2, 48, 57)
    assert widget.wait(120)
    assert "Autosave" in widget.status.text() and "failed" in widget.status.text()
    assert not notifications.tracebacks() and not notifications.messages("error")

    widget.session_files.autosave_box.setChecked(False)
    assert widget.session_files.autosave is False


def test_every_step_autosaves_and_a_chosen_candidate_opens_as_chosen(
        make_viewer, cells, demo_model, tmp_path, qtbot):
    from napari_sam2 import StackSession

    viewer = open_stack(make_viewer, cells, frames=3)
    widget = dock(viewer, demo_model)
    widget.follow_box.setChecked(False)
    widget.set_autosave(tmp_path)
    path = tmp_path / "cells time-lapse.sam2"
    b = widget.new_object()
    widget.add_point(0, 31, 85)
    a = widget.new_object()
    widget.add_point(0, 48, 57)
    assert widget.wait(60)
    assert widget.cycle_candidate() == 0
    assert widget.wait(60)
    assert widget.session.chosen_candidate(a, 0) == 0

    # clearing an object is a step like any other: the autosave follows it
    before = (path / "CURRENT").read_text()
    widget.clear_object(b)
    assert widget.wait(60)
    qtbot.waitUntil(lambda: (path / "CURRENT").read_text() != before, timeout=10000)
    image = viewer.layers["cells time-lapse"].data
    loaded = StackSession.load(path, demo_model, image)
    assert loaded.object_ids == [a] and loaded.chosen_candidate(a, 0) == 0
    np.testing.assert_array_equal(loaded.labels, widget.labels_layer.data)

    # opened in another viewer, the choice is the widget's as well as the session's
    other = dock(open_stack(make_viewer, cells, frames=3), demo_model)
    assert other.open_session(path)
    assert other.wait(60)
    assert other.binding.snapshot().choice_dict() == {(a, 0): 0} and other.session.chosen_candidate(a, 0) == 0
    np.testing.assert_array_equal(other.labels_layer.data, widget.labels_layer.data)
    assert other.frame_states()[0] == 0  # current, as saved
    other.propagate("forward")
    widget.propagate("forward")
    assert other.wait(120) and widget.wait(120)
    np.testing.assert_array_equal(other.labels_layer.data, widget.labels_layer.data)


def test_opening_a_session_of_another_shape_is_an_error_and_changes_nothing(
        make_viewer, cells, demo_model, tmp_path, notifications):
    _, first = segmented(make_viewer, cells, demo_model)
    target = tmp_path / "cells.zip"
    assert first.save_session(target) and target.is_file()

    viewer = open_stack(make_viewer, cells, frames=FRAMES - 1)
    widget = dock(viewer, demo_model)
    widget.new_object()
    widget.add_point(0, 10, 16)
    assert widget.wait(120)
    before = State(widget)
    assert not widget.open_session(target)
    assert widget.wait(60)
    before.check(widget)
    errors = notifications.messages("error")
    assert errors and "shape" in errors[-1]
    assert "Error" in widget.status.text()
