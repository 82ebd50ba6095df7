"""Bad input: each mistake gets a ValueError / IndexError / TypeError (or
RuntimeError / KeyError where the session's state is at fault) whose message
names the problem and what is expected, and the session stays usable: the
failed call changed nothing and a valid prompt + segment still works."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2.engine import StackSession

from .conftest import blobs

N, H, W = 4, 40, 56


def snapshot(session: StackSession):
    """Everything a failed call must leave alone."""
    objects = {}
    for obj_id, state in session._objects.items():
        objects[obj_id] = {
            f: (
                list(p.points),
                list(p.labels),
                None if p.box is None else p.box.tolist(),
                None if p.mask is None else p.mask.copy(),
            )
            for f, p in state.prompts.items()
        }
    cond = {o: session._bank.cond_frames(o) for o in session._objects}
    return objects, cond, np.array(session.labels, copy=True)


def assert_same(before, after):
    (obj_a, cond_a, lab_a), (obj_b, cond_b, lab_b) = before, after
    assert list(obj_a) == list(obj_b)
    for o in obj_a:
        assert list(obj_a[o]) == list(obj_b[o])
        for f in obj_a[o]:
            pa, pb = obj_a[o][f], obj_b[o][f]
            assert pa[:3] == pb[:3]
            assert (pa[3] is None) == (pb[3] is None)
            if pa[3] is not None:
                assert np.array_equal(pa[3], pb[3])
    assert cond_a == cond_b
    assert np.array_equal(lab_a, lab_b)


def assert_usable(session: StackSession, obj_id: int = 1, frame: int = 1):
    session.add_points(obj_id, frame, [[H // 2, W // 3]], [1])
    out = session.segment_frame(frame)
    assert out.shape == (H, W)
    assert (out == obj_id).any(), "a valid prompt after the error gave no mask"


@pytest.fixture
def session(model):
    s = StackSession(model, blobs(N, H, W))
    s.add_points(2, 0, [[10, 12]], [1])  # an existing object the errors must not disturb
    s.segment_frame(0)
    return s


def check(session, exc, pattern, call):
    before = snapshot(session)
    with pytest.raises(exc, match=pattern):
        call()
    assert_same(before, snapshot(session))
    assert_usable(session)


# ------------------------------------------------------------------ data


def test_data_with_fewer_than_two_dimensions(model):
    with pytest.raises(ValueError, match=r"at least 2 dimensions.*\(5,\)"):
        StackSession(model, np.zeros(5, dtype=np.uint8))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        StackSession(model, np.float32(3.0))


@pytest.mark.parametrize(
    "data",
    [np.full((2, 8, 8), "a"), np.empty((2, 8, 8), dtype=object), np.zeros((2, 8, 8), dtype=complex)],
    ids=["strings", "objects", "complex"],
)
def test_non_numeric_data(model, data):
    with pytest.raises(TypeError, match=r"real numbers.*dtype"):
        StackSession(model, data)


def test_model_must_be_a_sam2_network():
    with pytest.raises(TypeError, match="SAM 2 network.*got str"):
        StackSession("sam2.1_hiera_tiny", blobs(2, 8, 8))


# ------------------------------------------------------------------ labels array


def test_labels_array_of_the_wrong_shape(model):
    with pytest.raises(ValueError, match=rf"shape \({N}, {H}, {W + 1}\).*needs \({N}, {H}, {W}\)"):
        StackSession(model, blobs(N, H, W), labels=np.zeros((N, H, W + 1), np.int32))
    with pytest.raises(ValueError, match="labels array has shape"):
        StackSession(model, blobs(N, H, W), labels=np.zeros((H, W), np.int32))


def test_labels_array_of_a_float_dtype(model):
    with pytest.raises(TypeError, match="integer dtype, got float32"):
        StackSession(model, blobs(N, H, W), labels=np.zeros((N, H, W), np.float32))


def test_object_id_too_large_for_the_labels_dtype(model):
    s = StackSession(model, blobs(N, H, W), labels=np.zeros((N, H, W), np.uint8))
    s.add_points(255, 0, [[10, 12]], [1])  # the largest that fits is fine
    check(s, ValueError, r"object id 256 does not fit.*uint8.*max 255", lambda: s.add_points(256, 0, [[5, 5]], [1]))
    check(s, ValueError, "does not fit", lambda: s.add_box(300, 0, (2, 2, 9, 9)))
    check(s, ValueError, "does not fit", lambda: s.add_mask(1000, 0, np.ones((H, W), bool)))
    assert 256 not in s.object_ids and 300 not in s.object_ids


# ------------------------------------------------------------------ points


def test_point_outside_the_image(session):
    check(session, ValueError, rf"outside the image of {H} x {W}.*\(y, x\)",
          lambda: session.add_points(1, 0, [[H + 3, 5]], [1]))
    check(session, ValueError, r"point \(y, x\) = \(5.0, -2.0\) is outside",
          lambda: session.add_points(1, 0, [[5, -2]], [1]))
    # x beyond the width, inside the height: the order (y, x) matters
    check(session, ValueError, "outside the image",
          lambda: session.add_points(1, 0, [[W - 1, H - 1]], [1]))


def test_points_and_labels_of_different_lengths(session):
    check(session, ValueError, r"same length: 2 point\(s\) but 1 label\(s\)",
          lambda: session.add_points(1, 0, [[5, 5], [6, 6]], [1]))
    check(session, ValueError, r"same length: 1 point\(s\) but 3 label\(s\)",
          lambda: session.add_points(1, 0, [[5, 5]], [1, 0, 1]))


def test_points_of_the_wrong_shape(session):
    check(session, ValueError, r"N x 2 array of \(y, x\)",
          lambda: session.add_points(1, 0, [[1, 2, 3]], [1]))
    check(session, ValueError, "N >= 1", lambda: session.add_points(1, 0, np.zeros((0, 2)), []))


def test_labels_not_zero_or_one(session):
    check(session, ValueError, r"1 \(positive\) or 0 \(negative\), got \[2\]",
          lambda: session.add_points(1, 0, [[5, 5]], [2]))
    check(session, ValueError, r"1 \(positive\) or 0 \(negative\)",
          lambda: session.add_points(1, 0, [[5, 5]], ["yes"]))
    check(session, ValueError, r"1 \(positive\) or 0 \(negative\)",
          lambda: session.add_points(1, 0, [[5, 5], [6, 6]], [1, 0.5]))


def test_nan_and_non_numeric_coordinates(session):
    check(session, ValueError, r"finite numbers \(no NaN or inf\)",
          lambda: session.add_points(1, 0, [[np.nan, 5]], [1]))
    check(session, ValueError, "finite", lambda: session.add_points(1, 0, [[5, np.inf]], [1]))
    check(session, ValueError, "box must be finite", lambda: session.add_box(1, 0, (1, 2, np.nan, 9)))
    check(session, TypeError, "points must be numbers", lambda: session.add_points(1, 0, [["a", "b"]], [1]))


# ------------------------------------------------------------------ frames


@pytest.mark.parametrize("frame", [N, N + 10, -1, -N])
def test_frame_out_of_range(session, frame):
    pattern = rf"frame {frame} is out of range.*{N} frame\(s\).*0 to {N - 1}"
    check(session, IndexError, pattern, lambda: session.add_points(1, frame, [[5, 5]], [1]))
    check(session, IndexError, pattern, lambda: session.add_box(1, frame, (2, 2, 9, 9)))
    check(session, IndexError, pattern, lambda: session.add_mask(1, frame, np.ones((H, W), bool)))
    check(session, IndexError, pattern, lambda: session.segment_frame(frame))
    check(session, IndexError, pattern, lambda: session.clear_frame(2, frame))
    check(session, IndexError, pattern, lambda: session.prepare_frame(frame))


def test_frame_not_an_integer(session):
    check(session, TypeError, "frame must be an integer index, got 1.0",
          lambda: session.add_points(1, 1.0, [[5, 5]], [1]))
    check(session, TypeError, "frame must be an integer", lambda: session.segment_frame("0"))


# ------------------------------------------------------------------ boxes and masks


@pytest.mark.parametrize("box", [(5, 5, 5, 20), (5, 5, 20, 5), (7, 7, 7, 7)], ids=["no height", "no width", "point"])
def test_empty_box(session, box):
    check(session, ValueError, r"box \(y0, x0, y1, x1\) = .* is empty: it needs a height and a width",
          lambda: session.add_box(1, 0, box))


def test_box_outside_the_image_or_of_the_wrong_length(session):
    check(session, ValueError, rf"lies outside the image of {H} x {W}",
          lambda: session.add_box(1, 0, (H + 5, 2, H + 9, 9)))
    check(session, ValueError, r"box must be 4 numbers \(y0, x0, y1, x1\)",
          lambda: session.add_box(1, 0, (1, 2, 3)))


def test_mask_of_the_wrong_shape(session):
    check(session, ValueError, rf"mask has shape \({W}, {H}\) but frames are {H} x {W}",
          lambda: session.add_mask(1, 0, np.ones((W, H), bool)))
    check(session, ValueError, "mask has shape",
          lambda: session.add_mask(1, 0, np.ones((2, H, W), bool)))
    check(session, TypeError, "boolean or numeric",
          lambda: session.add_mask(1, 0, np.full((H, W), "x")))


# ------------------------------------------------------------------ object ids


@pytest.mark.parametrize("obj_id", [0, -1, -7])
def test_object_id_zero_or_negative(session, obj_id):
    pattern = rf"object id must be >= 1 \(label values; 0 is the background\), got {obj_id}"
    check(session, ValueError, pattern, lambda: session.add_points(obj_id, 0, [[5, 5]], [1]))
    check(session, ValueError, pattern, lambda: session.add_box(obj_id, 0, (2, 2, 9, 9)))
    check(session, ValueError, pattern, lambda: session.add_mask(obj_id, 0, np.ones((H, W), bool)))
    check(session, ValueError, pattern, lambda: session.remove_object(obj_id))


@pytest.mark.parametrize("obj_id", [1.0, 1.5, "1", True, None])
def test_object_id_not_an_integer(session, obj_id):
    check(session, TypeError, r"object id must be an integer label value >= 1, got",
          lambda: session.add_points(obj_id, 0, [[5, 5]], [1]))


def test_unknown_object(session):
    check(session, KeyError, r"no object with id 9; known objects: \[2\]", lambda: session.remove_object(9))
    check(session, KeyError, "no object with id 9", lambda: session.clear_frame(9, 0))
    check(session, KeyError, "no object with id 9", lambda: session.prompted_frames(9))


# ------------------------------------------------------------------ propagate


def test_propagate_unknown_direction(session):
    check(session, ValueError, "direction must be one of forward, backward, both, got 'sideways'",
          lambda: session.propagate("sideways"))
    check(session, ValueError, "direction must be one of", lambda: session.propagate_results("Forward"))


def test_propagate_start_after_stop(session):
    check(session, ValueError, r"start \(3\) must not be after stop \(1\)",
          lambda: session.propagate("forward", start=3, stop=1))
    check(session, IndexError, "frame -1 is out of range", lambda: session.propagate(start=-1))
    check(session, IndexError, f"frame {N} is out of range", lambda: session.propagate(stop=N))


def test_propagate_with_no_objects(model):
    s = StackSession(model, blobs(N, H, W))
    with pytest.raises(ValueError, match="no objects to track: add points, a box or a mask first"):
        s.propagate()
    assert s.object_ids == []
    assert not s.labels.any()
    assert_usable(s)


def test_propagate_with_an_object_whose_only_prompt_was_cleared(session):
    session.add_points(3, 1, [[20, 20]], [1])
    session.clear_frame(3, 1)
    assert session.prompted_frames(3) == []
    check(session, ValueError, r"object\(s\) \[3\] have no prompts; add a point, box or mask, or remove them",
          lambda: session.propagate())
    # removing it (or prompting it again) makes propagation possible
    session.remove_object(3)
    frames = [f for f, _ in session.propagate()]
    assert frames == list(range(N))


def test_prompt_edits_while_a_propagation_runs(session):
    gen = session.propagate()
    frame, _ = next(gen)
    assert frame == 0
    before = snapshot(session)
    busy = "a propagation is running; stop it \\(close the generator\\) first"
    with pytest.raises(RuntimeError, match=busy):
        session.add_points(1, 1, [[5, 5]], [1])
    with pytest.raises(RuntimeError, match=busy):
        session.add_box(2, 1, (2, 2, 9, 9))
    with pytest.raises(RuntimeError, match=busy):
        session.add_mask(2, 1, np.ones((H, W), bool))
    with pytest.raises(RuntimeError, match=busy):
        session.clear_frame(2, 0)
    with pytest.raises(RuntimeError, match=busy):
        session.remove_object(2)
    with pytest.raises(RuntimeError, match=busy):
        session.segment_frame(1)
    with pytest.raises(RuntimeError, match=busy):
        session.propagate()
    with pytest.raises(RuntimeError, match=busy):
        session.reset()
    assert_same(before, snapshot(session))
    gen.close()
    assert_usable(session)
    # and a new propagation runs to the end
    assert [f for f, _ in session.propagate()][-1] == N - 1


def test_generator_not_started_does_not_block(session):
    gen = session.propagate()  # created, never advanced: nothing runs yet
    assert_usable(session)
    gen.close()
    assert_usable(session, obj_id=4, frame=2)


def test_negative_history_budget_is_rejected():
    from napari_sam2.engine import SessionOptions

    with pytest.raises(ValueError, match="history_mb must be >= 0"):
        SessionOptions(history_mb=-1)
