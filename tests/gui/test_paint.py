"""Painted corrections: paint, fill or erase a tracked object's pixels in
the Labels layer, and its mask there becomes its prompt (one undo step with
the paint); the next propagation carries the fix downstream."""

from __future__ import annotations

import numpy as np

from .test_widget import dock

A_CELL, NEIGHBOUR = 10, 6  # ground-truth ids in the cropped sample (neighbour: above)


def share(labels, truth, obj, cell):
    """Fraction of the ground-truth cell's pixels labelled ``obj``."""
    inside = truth == cell
    return float((labels[inside] == obj).mean())


def stroke(layer, points, *, frame):
    """A brush stroke with the mouse in the Labels layer (press, moves, release)."""
    from napari.utils._test_utils import read_only_mouse_event
    from napari.utils.interactions import (
        mouse_move_callbacks,
        mouse_press_callbacks,
        mouse_release_callbacks,
    )

    def event(kind, y, x):
        return read_only_mouse_event(
            type=kind, position=(frame, y, x), pos=np.array([10.0, 10.0]), modifiers=[],
            dims_displayed=[1, 2], view_direction=[1, 0, 0], up_direction=[0, -1, 0], button=1,
        )

    mouse_press_callbacks(layer, event("mouse_press", *points[0]))
    for y, x in points[1:]:
        mouse_move_callbacks(layer, event("mouse_move", y, x))
    mouse_release_callbacks(layer, event("mouse_release", *points[-1]))


def test_painted_fix_steers_the_propagation_and_undoes_with_its_prompt(make_viewer, cells, demo_model):
    image, truth, image_kwargs, _ = cells
    image, truth = image[:4], truth[:4]
    viewer = make_viewer()
    viewer.add_image(image, **image_kwargs)
    widget = dock(viewer, demo_model)
    widget.follow_box.setChecked(False)
    a = widget.new_object()
    widget.add_point(0, 48, 57)
    assert widget.wait(60)
    widget.propagate("forward")
    assert widget.wait(120)
    labels = widget.labels_layer
    tracked = labels.data.copy()
    assert all(share(tracked[f], truth[f], a, A_CELL) > 0.3 for f in range(4))
    assert all(share(tracked[f], truth[f], a, NEIGHBOUR) < 0.02 for f in range(4))

    # on frame 1 the user adds the neighbour to the object with the brush
    viewer.dims.set_current_step(0, 1)
    viewer.layers.selection.active = labels
    labels.mode = "paint"
    labels.brush_size = 14
    labels.selected_label = a
    stroke(labels, [(12, 50), (14, 54), (16, 58), (18, 62), (16, 64)], frame=1)
    assert widget.wait(60)
    painted = labels.data.copy()
    assert share(painted[1], truth[1], a, NEIGHBOUR) > 0.25
    np.testing.assert_array_equal(painted[[0, 2, 3]], tracked[[0, 2, 3]])
    prompt = widget.session._objects[a].prompts[1]  # engine state, read in tests only
    assert prompt.mask is not None and not prompt.points

    # the next propagation carries the fix; the painted frame stays as painted
    widget.propagate("forward")
    assert widget.wait(120)
    fixed = labels.data.copy()
    np.testing.assert_array_equal(fixed[1], painted[1])
    np.testing.assert_array_equal(fixed[0], tracked[0])
    # (the demo model carries about half of a painted disc; 0.0 without it)
    assert share(fixed[2], truth[2], a, NEIGHBOUR) > 0.08 and share(fixed[3], truth[3], a, NEIGHBOUR) > 0.08
    assert share(fixed[3], truth[3], a, A_CELL) > 0.3

    # one undo reverts the propagation, the next the paint and its prompt
    widget.undo()
    np.testing.assert_array_equal(labels.data, painted)
    widget.undo()
    np.testing.assert_array_equal(labels.data, tracked)
    assert widget.wait(60)
    assert widget.session.prompted_frames(a) == [0]
    widget.propagate("forward")
    assert widget.wait(120)
    assert share(labels.data[3], truth[3], a, NEIGHBOUR) < 0.02
    # redo after the redo stack was cleared does nothing harmful
    widget.redo()
    assert widget.objects == [a]


def test_use_painted_mask_scripted(make_viewer, cells, demo_model):
    image, truth, image_kwargs, _ = cells
    viewer = make_viewer()
    viewer.add_image(image[:3], **image_kwargs)
    widget = dock(viewer, demo_model)
    a = widget.new_object()
    widget.add_point(0, 48, 57)
    assert widget.wait(60)
    data = widget.labels_layer.data
    data[0][truth[0] == NEIGHBOUR] = a  # painted outside napari's tools
    assert widget.use_painted_mask(0)
    assert widget.wait(60)
    prompt = widget.session._objects[a].prompts[0]
    assert prompt.mask is not None and len(widget.points_layer.data) == 0
    widget.undo()
    assert widget.wait(60)
    assert len(widget.points_layer.data) == 1 and widget.session._objects[a].prompts[0].mask is None
