"""napari_sam2.layers: pure conversions between layer data and the engine."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from napari_sam2.layers import (
    FramePrompt,
    collect_prompts,
    data_position,
    fixed_index,
    history_atom,
    infer_axis,
    labels_shape,
    labels_view,
    next_object_id,
    plan_prompt_edits,
    points_to_prompts,
    rectangles_to_boxes,
    session_for_layer,
)


# ----------------------------------------------------------------- axes
def test_infer_axis_2d_has_none():
    assert infer_axis((64, 80)) == (None, (), ())


@pytest.mark.parametrize("labels", [("t", "y", "x"), ("z", "y", "x"), None, ("-3", "-2", "-1")])
def test_infer_axis_3d_is_axis_0(labels):
    choice = infer_axis((5, 64, 80), labels)
    assert choice.axis == 0 and choice.choices == (0,)
    assert choice.names == ((labels[0],) if labels and labels[0] != "-3" else ("axis 0",))


def test_infer_axis_4d_prefers_time_label_then_z_then_first():
    assert infer_axis((4, 6, 32, 32), ("z", "t", "y", "x")).axis == 1
    assert infer_axis((4, 6, 32, 32), ("c", "Z", "y", "x")).axis == 1
    assert infer_axis((4, 6, 32, 32), ("Time", "z", "y", "x")).axis == 0
    choice = infer_axis((4, 6, 32, 32))
    assert choice.axis == 0 and choice.choices == (0, 1) and choice.names == ("axis 0", "axis 1")


def test_infer_axis_rejects_1d():
    with pytest.raises(ValueError, match="at least 2"):
        infer_axis((5,))


def test_positions_round_and_clip():
    assert data_position([2.4, -3.0, 70.6], (5, 64, 64)) == (2, 0, 63)
    # a viewer with more dims than the layer: the last ones count
    assert data_position([9.0, 1.6, 3.0, 40.0], (4, 32, 32)) == (2, 3, 31)
    assert fixed_index([1.2, 3.7, 10, 10], (4, 6, 32, 32), axis=0) == {1: 4}
    assert fixed_index([1.2, 3.7, 10, 10], (4, 6, 32, 32), axis=1) == {0: 1}
    assert fixed_index([3, 10, 10], (5, 32, 32), axis=0) == {}


# ----------------------------------------------------------------- labels
def test_labels_shape_drops_colour_axis():
    assert labels_shape((5, 32, 40, 3), rgb=True) == (5, 32, 40)
    assert labels_shape((5, 32, 40)) == (5, 32, 40)


def test_labels_view_writes_through_4d_both_axes():
    labels = np.zeros((4, 6, 8, 9), dtype=np.int32)
    view = labels_view(labels, 0, {1: 2})  # follow T at z = 2
    assert view.shape == (4, 8, 9)
    view[3, 1, 2] = 7
    assert labels[3, 2, 1, 2] == 7 and np.count_nonzero(labels) == 1
    view = labels_view(labels, 1, {0: 1})  # follow Z at t = 1
    assert view.shape == (6, 8, 9)
    view[5, 0, 0] = 9
    assert labels[1, 5, 0, 0] == 9


def test_labels_view_2d_is_one_frame():
    labels = np.zeros((8, 9), dtype=np.uint16)
    view = labels_view(labels, None, {})
    assert view.shape == (1, 8, 9)
    view[0, 4, 4] = 3
    assert labels[4, 4] == 3


def test_labels_view_needs_numpy():
    with pytest.raises(TypeError, match="numpy"):
        labels_view([[0, 1], [2, 3]], None, {})


def test_history_atom_indexes_the_full_layer():
    prev = np.zeros((5, 6), dtype=np.int32)
    new = prev.copy()
    new[1, 2] = 4
    new[3, 5] = 4
    indices, old, values = history_atom(7, prev, new, axis=1, index={0: 2}, ndim=4)
    labels = np.zeros((3, 9, 5, 6), dtype=np.int32)
    labels[indices] = values
    assert labels[2, 7, 1, 2] == 4 and labels[2, 7, 3, 5] == 4 and np.count_nonzero(labels) == 2
    assert old.tolist() == [0, 0]
    assert history_atom(0, prev, prev, axis=0, index={}, ndim=3) is None
    indices, _, _ = history_atom(0, prev, new, axis=None, index={}, ndim=2)
    assert len(indices) == 2


def test_next_object_id():
    labels = np.zeros((2, 4, 4), dtype=np.int32)
    assert next_object_id(labels, []) == 1
    labels[1, 0, 0] = 5
    assert next_object_id(labels, [1, 2]) == 6
    assert next_object_id(labels, [9]) == 10
    assert next_object_id(None, []) == 1


# ----------------------------------------------------------------- prompts
def test_points_to_prompts_groups_by_object_and_frame():
    data = np.array([[0, 10, 20], [2, 5, 6], [0, 11, 21], [2.2, 7, 8]])
    out = points_to_prompts(data, [1, 1, 1, 2], [True, False, False, True], axis=0)
    assert set(out) == {(1, 0), (1, 2), (2, 2)}
    yx, labs = out[(1, 0)]
    np.testing.assert_array_equal(yx, [[10, 20], [11, 21]])
    assert labs.tolist() == [1, 0]
    assert out[(1, 2)][1].tolist() == [0]


def test_points_to_prompts_4d_keeps_the_slice_and_axis():
    # T x Z x Y x X, following Z at t = 1
    data = np.array([[1, 3, 10, 20], [0, 3, 5, 5], [1, 4, 6, 7]])
    out = points_to_prompts(data, [1, 1, 1], [True] * 3, axis=1, index={0: 1})
    assert set(out) == {(1, 3), (1, 4)}
    np.testing.assert_array_equal(out[(1, 3)][0], [[10, 20]])


def test_points_to_prompts_2d_and_empty():
    out = points_to_prompts(np.array([[3.0, 4.0]]), [2], [True], axis=None)
    assert list(out) == [(2, 0)]
    assert points_to_prompts(np.zeros((0, 3)), [], [], axis=0) == {}
    # an object id of 0 (no object) is ignored
    assert points_to_prompts(np.array([[0, 1, 1]]), [0], [True], axis=0) == {}
    with pytest.raises(ValueError, match="object ids"):
        points_to_prompts(np.zeros((2, 3)), [1], [True, True], axis=0)


def test_rectangles_to_boxes():
    rect = np.array([[3, 10, 5], [3, 10, 25], [3, 30, 25], [3, 30, 5]], dtype=float)
    other = np.array([[3, 1, 1], [3, 2, 2]], dtype=float)
    later = rect + [0, 1, 1]
    out = rectangles_to_boxes([rect, other, later], ["rectangle", "line", "rectangle"], [1, 1, 1], axis=0)
    assert out == {(1, 3): (11.0, 6.0, 31.0, 26.0)}  # the last rectangle drawn wins
    out = rectangles_to_boxes([rect], ["rectangle"], [2], axis=0, index={})
    assert out == {(2, 3): (10.0, 5.0, 30.0, 25.0)}


def test_collect_and_plan_edits():
    pts = {(1, 0): (np.array([[1.0, 2.0]]), np.array([1]))}
    boxes = {(2, 4): (0.0, 0.0, 5.0, 5.0)}
    wanted = collect_prompts(pts, boxes)
    assert wanted == {
        (1, 0): FramePrompt(None, ((1.0, 2.0),), (1,)),
        (2, 4): FramePrompt((0.0, 0.0, 5.0, 5.0), (), ()),
    }
    edits = plan_prompt_edits({}, wanted)
    assert [(e.obj, e.frame, e.kind) for e in edits] == [(1, 0, "replace"), (2, 4, "replace")]

    more = dict(wanted)
    more[(1, 0)] = FramePrompt(None, ((1.0, 2.0), (3.0, 4.0)), (1, 0))
    more[(2, 4)] = FramePrompt((0.0, 0.0, 5.0, 5.0), ((2.0, 2.0),), (1,))
    edits = plan_prompt_edits(wanted, more)
    assert [(e.obj, e.frame, e.kind) for e in edits] == [(1, 0, "append"), (2, 4, "append")]
    assert edits[0].prompt.points == ((3.0, 4.0),) and edits[0].prompt.labels == (0,)

    moved = {(1, 0): FramePrompt(None, ((9.0, 9.0), (3.0, 4.0)), (1, 0))}
    edits = plan_prompt_edits(more, moved)
    assert [(e.obj, e.frame, e.kind) for e in edits] == [(1, 0, "replace"), (2, 4, "clear")]
    assert plan_prompt_edits(moved, moved) == []


# ----------------------------------------------------------------- sessions
@pytest.fixture(scope="module")
def tiny_model():
    torch = pytest.importorskip("torch")
    from napari_sam2.config import load_config
    from napari_sam2.model import build_model

    torch.manual_seed(0)
    return build_model(load_config("sam2.1_hiera_tiny", image_size=256)).eval()


def test_session_for_layer_4d_labels_view(tiny_model):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 4000, size=(3, 4, 40, 48), dtype=np.uint16)
    layer = SimpleNamespace(data=data, rgb=False, ndim=4, axis_labels=("t", "z", "y", "x"))
    labels = np.zeros(data.shape, dtype=np.int32)
    session = session_for_layer(tiny_model, layer, position=[0, 2.2, 0, 0], labels=labels)
    assert session.frames.axis == 0 and session.frames.index == {1: 2}
    assert session.labels.shape == (3, 40, 48)
    session.labels[1, 5, 6] = 3
    assert labels[1, 2, 5, 6] == 3
    np.testing.assert_array_equal(session.frames.read(2), data[2, 2])

    zs = session_for_layer(tiny_model, layer, position=[1, 0, 0, 0], axis=1, labels=labels)
    assert zs.num_frames == 4 and zs.frames.index == {0: 1}
    with pytest.raises(ValueError, match="cannot be followed"):
        session_for_layer(tiny_model, layer, axis=2)
    with pytest.raises(ValueError, match="labels have shape"):
        session_for_layer(tiny_model, layer, labels=np.zeros((3, 40, 48), np.int32))


def test_session_for_layer_rgb_and_2d(tiny_model):
    rgb = np.zeros((2, 30, 32, 3), dtype=np.uint8)
    layer = SimpleNamespace(data=rgb, rgb=True, ndim=3, axis_labels=("t", "y", "x"))
    session = session_for_layer(tiny_model, layer)
    assert session.num_frames == 2 and session.frames.channel_axis == 3
    assert session.labels.shape == (2, 30, 32)
    flat = SimpleNamespace(data=np.zeros((30, 32), np.float32), rgb=False, ndim=2, axis_labels=None)
    labels = np.zeros((30, 32), np.uint8)
    session = session_for_layer(tiny_model, flat, labels=labels)
    assert session.num_frames == 1 and session.labels.shape == (1, 30, 32)
