"""Undo and redo restore everything: objects, prompts, prompt layers and
labels together, one step per widget action, through the Labels layer's
own history (Ctrl-Z / Ctrl-Shift-Z there, or the widget's buttons)."""

from __future__ import annotations

import numpy as np

from .test_widget import dock


class State:
    """What the user sees: objects, prompt layers, labels."""

    def __init__(self, widget) -> None:
        points, shapes = widget.points_layer, widget.shapes_layer
        self.objects = list(widget.objects)
        self.points = np.asarray(points.data).tolist()
        self.point_objects = points.features["object"].tolist()
        self.boxes = [np.asarray(d).tolist() for d in shapes.data]
        self.box_objects = shapes.features["object"].tolist()
        self.labels = widget.labels_layer.data.copy()

    def check(self, widget) -> None:
        now = State(widget)
        assert now.objects == self.objects
        assert now.points == self.points and now.point_objects == self.point_objects
        assert now.boxes == self.boxes and now.box_objects == self.box_objects
        np.testing.assert_array_equal(now.labels, self.labels)


def open_stack(make_viewer, cells, frames=4):
    viewer = make_viewer()
    viewer.add_image(cells[0][:frames], name="cells")
    return viewer


def engine_prompts(widget):
    session = widget.session
    return {obj: session.prompted_frames(obj) for obj in session.object_ids}


def test_undo_and_redo_of_each_action_restore_everything(make_viewer, cells, tiny_model):
    viewer = open_stack(make_viewer, cells)
    widget = dock(viewer, tiny_model)
    widget.follow_box.setChecked(False)
    start = State(widget)

    # new object
    a = widget.new_object()
    with_a = State(widget)
    widget.undo()
    start.check(widget)
    widget.redo()
    with_a.check(widget)

    # a click: the point, the object's prompt in the engine and the labels
    widget.add_point(1, 40, 57)
    assert widget.wait(60)
    clicked = State(widget)
    assert (clicked.labels[1] == a).any() and engine_prompts(widget) == {a: [1]}
    widget.undo()
    with_a.check(widget)
    assert widget.wait(60)
    assert engine_prompts(widget) == {}
    widget.redo()
    clicked.check(widget)
    assert widget.wait(60)
    assert engine_prompts(widget) == {a: [1]}

    # a box
    widget.add_box(2, 20, 30, 60, 80)
    assert widget.wait(60)
    boxed = State(widget)
    widget.undo()
    clicked.check(widget)
    assert widget.wait(60)
    assert engine_prompts(widget) == {a: [1]}
    widget.redo()
    boxed.check(widget)
    assert widget.wait(60)
    assert engine_prompts(widget) == {a: [1, 2]}

    # a propagation, and propagating again after its undo
    widget.propagate("forward")
    assert widget.wait(120)
    tracked = State(widget)
    assert (tracked.labels[3] == a).any() and not (tracked.labels[0] == a).any()
    widget.undo()
    boxed.check(widget)
    widget.redo()
    tracked.check(widget)
    widget.undo()
    assert not (widget.labels_layer.data[3] == a).any()
    widget.propagate("forward")
    assert widget.wait(120)
    tracked.check(widget)

    # clear, delete and reset: undo brings the object back with its prompts
    # and masks, and a propagation after the undo tracks it again
    for action in ("clear", "delete", "reset"):
        if action == "clear":
            widget.clear_object(a)
        elif action == "delete":
            widget.delete_object(a)
        else:
            assert widget.reset()
        assert widget.wait(60)
        done = State(widget)
        assert done.point_objects == [] and done.box_objects == []
        assert done.objects == ([a] if action == "clear" else [])
        if action != "reset":
            assert not (done.labels == a).any()
        widget.undo()
        tracked.check(widget)
        assert widget.wait(60)
        assert engine_prompts(widget) == {a: [1, 2]}
        widget.redo()
        done.check(widget)
        widget.undo()
        assert widget.wait(60)
        widget.propagate("forward")
        assert widget.wait(120)
        assert widget.progress.value() == 3  # frames 1-3 computed again
        tracked.check(widget)


def test_ctrl_z_in_the_labels_layer_and_reset_confirmation(make_viewer, cells, tiny_model, qtbot):
    from qtpy.QtCore import Qt, QTimer
    from qtpy.QtWidgets import QApplication, QMessageBox

    viewer = open_stack(make_viewer, cells, frames=2)
    widget = dock(viewer, tiny_model)
    a = widget.new_object()
    widget.add_point(0, 40, 57)
    assert widget.wait(60)
    clicked = State(widget)
    b = widget.new_object()
    two = State(widget)
    assert two.objects == [a, b]

    canvas = viewer.window._qt_viewer.canvas.native
    viewer.layers.selection.active = widget.labels_layer
    qtbot.keyClick(canvas, Qt.Key_Z, Qt.ControlModifier)
    clicked.check(widget)
    qtbot.keyClick(canvas, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)
    two.check(widget)

    def answer(button):
        box = QApplication.activeModalWidget()
        assert isinstance(box, QMessageBox)
        box.button(button).click()

    QTimer.singleShot(100, lambda: answer(QMessageBox.Cancel))
    widget.reset_button.click()
    two.check(widget)
    QTimer.singleShot(100, lambda: answer(QMessageBox.Reset))
    widget.reset_button.click()
    assert widget.objects == [] and len(widget.points_layer.data) == 0
    widget.undo_button.click()
    two.check(widget)
    assert widget.wait(60)
    assert engine_prompts(widget) == {a: [0]}
