"""SAM's candidate masks for an ambiguous click: a key and a button cycle
the object's mask on the frame through them, best predicted IoU first,
then back to the model's own pick; each choice is one undo step."""

from __future__ import annotations

import numpy as np

from .test_widget import dock


def test_cycling_candidates_with_the_key_and_the_button(make_viewer, cells, demo_model, qtbot):
    from qtpy.QtCore import Qt

    image, _, image_kwargs, _ = cells
    viewer = make_viewer()
    viewer.add_image(image[:3], **image_kwargs)
    widget = dock(viewer, demo_model)
    widget.follow_box.setChecked(False)
    a = widget.new_object()
    widget.add_point(0, 48, 57)
    assert widget.wait(60)
    session = widget.session
    found = session.mask_candidates(a, 0)
    ious = [c.predicted_iou for c in found]
    assert len(found) == 3 and ious == sorted(ious, reverse=True)
    own = widget.labels_layer.data[0] == a
    assert widget.candidate_button.isEnabled() and widget.candidate_label.text().startswith("Frame 0: model's pick")
    masks = [c.mask for c in found]
    assert any(not np.array_equal(m, own) for m in masks)  # there is something to choose

    def shown():
        return widget.labels_layer.data[0] == a

    viewer.layers.selection.active = widget.points_layer
    qtbot.keyClick(viewer.window._qt_viewer.canvas.native, Qt.Key_C, Qt.ShiftModifier)
    assert widget.wait(60)
    np.testing.assert_array_equal(shown(), masks[0])
    assert widget.candidate_label.text() == f"Frame 0: candidate 1 of 3, predicted IoU {ious[0]:.2f}"
    assert session.chosen_candidate(a, 0) == 0
    widget.candidate_button.click()
    assert widget.wait(60)
    np.testing.assert_array_equal(shown(), masks[1])
    assert widget.cycle_candidate() == 2
    assert widget.wait(60)
    np.testing.assert_array_equal(shown(), masks[2])
    assert widget.cycle_candidate() is None
    assert widget.wait(60)
    np.testing.assert_array_equal(shown(), own)
    assert session.chosen_candidate(a, 0) is None

    # undo goes back to candidate 3, labels and choice; redo to the model's pick
    widget.undo()
    np.testing.assert_array_equal(shown(), masks[2])
    assert widget.wait(60)
    assert session.chosen_candidate(a, 0) == 2
    widget.redo()
    np.testing.assert_array_equal(shown(), own)
    assert widget.wait(60)
    assert session.chosen_candidate(a, 0) is None

    # the choice is carried by a propagation; a new click there drops it
    widget.undo()
    assert widget.wait(60)
    widget.propagate("forward")
    assert widget.wait(120)
    np.testing.assert_array_equal(shown(), masks[2])
    assert (widget.labels_layer.data[2] == a).any()
    widget.add_point(0, 50, 60)
    assert widget.wait(60)
    assert session.chosen_candidate(a, 0) is None
    assert widget.points_layer.features["object"].tolist() == [a, a]
