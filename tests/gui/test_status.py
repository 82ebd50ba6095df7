"""Status and progress texts say what is true now."""

from __future__ import annotations

import numpy as np

from .test_widget import dock


def drag_box(layer, frame, corners):
    """A rectangle drawn with the mouse in the boxes layer."""
    from napari.utils._test_utils import read_only_mouse_event
    from napari.utils.interactions import (
        mouse_move_callbacks,
        mouse_press_callbacks,
        mouse_release_callbacks,
    )

    (y0, x0), (y1, x1) = corners

    def event(kind, y, x):
        return read_only_mouse_event(
            type=kind, position=(frame, y, x), pos=np.array([10.0, 10.0]), modifiers=[],
            dims_displayed=[1, 2], view_direction=[1, 0, 0], up_direction=[0, -1, 0], button=1,
        )

    mouse_press_callbacks(layer, event("mouse_press", y0, x0))
    for t in (0.3, 0.6, 1.0):
        mouse_move_callbacks(layer, event("mouse_move", y0 + t * (y1 - y0), x0 + t * (x1 - x0)))
    mouse_release_callbacks(layer, event("mouse_release", y1, x1))


def test_status_texts_through_a_session(make_viewer, cells, tiny_model, notifications):
    viewer = make_viewer()
    widget = dock(viewer)
    assert widget.status.text().startswith("Choose an image")
    viewer.add_image(cells[0][:3], name="cells")
    assert widget.image_layer is not None
    assert "Load a model" in widget.status.text() and "Choose an image" not in widget.status.text()
    assert not widget.progress.isTextVisible()  # no "0 / 100 frames" before a run
    widget.set_model(tiny_model)
    assert widget.wait(60)
    assert "Click" in widget.status.text()

    # a mouse-drawn box: wait() returns once it is applied
    obj = widget.new_object()
    viewer.layers.selection.active = widget.shapes_layer
    widget.shapes_layer.mode = "add_rectangle"
    drag_box(widget.shapes_layer, 1, ((20, 30), (60, 80)))
    assert widget.wait(60)
    assert widget.session.prompted_frames(obj) == [1]
    assert widget.session._objects[obj].prompts[1].box is not None  # engine state, tests only

    # "both" from frame 1 of 3 frames: 3 frames, though frame 1 is passed twice
    widget.propagate("both")
    assert widget.wait(120)
    assert widget.status.text().startswith("Propagated 3 frames")
    assert widget.progress.isTextVisible() and widget.progress.value() == widget.progress.maximum()
    widget.undo()
    assert widget.status.text().startswith("Undone")
    widget.redo()
    assert widget.status.text().startswith("Redone")

    # the labels layer removed: said so, and said again when a new one is made
    name = widget.labels_layer.name
    viewer.layers.remove(widget.labels_layer)
    assert "was removed" in widget.status.text() and name in widget.status.text()
    widget.add_point(0, 30, 30)
    assert widget.wait(60)
    assert widget.labels_layer in viewer.layers
    assert any("made a new labels layer" in m for m in notifications.messages())

    viewer.layers.remove(widget.image_layer)
    assert widget.status.text().startswith("Choose an image")


def test_a_single_image_offers_no_propagation(make_viewer, cells, tiny_model, notifications):
    viewer = make_viewer()
    viewer.add_image(cells[0][0], name="one")
    widget = dock(viewer, tiny_model)
    assert widget.axis is None
    for button in (widget.forward_button, widget.backward_button, widget.both_button):
        assert not button.isEnabled()
    assert "single image" in widget.status.text()
    widget.new_object()
    widget.add_point(0, 40, 57)
    assert widget.wait(60)
    assert not widget.forward_button.isEnabled()
    widget.propagate("forward")
    assert widget.wait(10)
    assert "single 2D image" in notifications.messages("error")[-1]
    assert not widget.status.text().startswith("Propagated")
