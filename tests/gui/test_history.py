"""LabelsHistory: engine writes become one undo step of a napari Labels layer."""

from __future__ import annotations

import numpy as np


def make_layer(shape=(3, 4, 5)):
    from napari.layers import Labels

    return Labels(np.zeros(shape, dtype=np.uint16))


def write(layer, frame, values, history):
    """What the engine does: write a whole frame, hand over before/after."""
    previous = layer.data[frame].copy()
    layer.data[frame] = values
    history.add_frame(frame, previous, layer.data[frame].copy())


def to_indices(frame, ys, xs):
    from napari_sam2.layers import layer_indices

    return layer_indices(frame, ys, xs, axis=0, index={}, ndim=3)


def test_a_frame_written_twice_undoes_to_its_first_state():
    from napari_sam2._qt.history import LabelsHistory

    layer = make_layer()
    layer.data[1, 0, 0] = 7  # painted before
    start = layer.data.copy()
    history = LabelsHistory()
    first = np.zeros((4, 5), np.uint16)
    first[:2] = 1
    second = first.copy()
    second[1:3] = 2
    write(layer, 1, first, history)
    write(layer, 2, first, history)
    write(layer, 1, second, history)  # e.g. "both": the prompt frame again
    end = layer.data.copy()
    assert history.commit(layer, to_indices, key="k")
    np.testing.assert_array_equal(layer.data, end)
    layer.undo()
    np.testing.assert_array_equal(layer.data, start)
    layer.redo()
    np.testing.assert_array_equal(layer.data, end)
    assert history.undone_frames(layer, "k") == []
    layer.undo()
    assert sorted(history.undone_frames(layer, "k")) == [1, 2]
    assert history.undone_frames(layer, "k") == []  # reported once


def test_pixels_repainted_before_the_commit_are_kept():
    from napari_sam2._qt.history import LabelsHistory

    layer = make_layer()
    history = LabelsHistory()
    write(layer, 0, np.full((4, 5), 3, np.uint16), history)
    layer.data[0, 2, 2] = 9  # the user paints while the propagation runs
    assert history.commit(layer, to_indices)
    assert layer.data[0, 2, 2] == 9
    layer.undo()
    assert layer.data[0, 2, 2] == 9 and (layer.data[0] != 9).sum() == 19
    assert not (layer.data[0] == 3).any()
    assert not history.commit(layer, to_indices)  # nothing pending
