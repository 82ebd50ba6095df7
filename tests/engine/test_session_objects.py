"""Many objects in one session: every written frame is composed from all
tracked objects' current masks (and what stays when one's memory of a frame
was evicted), the re-run modes, exact out-of-date bookkeeping when a run
stops early, and passes that read only their own direction's memories.
Equality with Meta's predictor for these lives in
tests/reference/test_many_objects.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_sam2.engine import SessionOptions, StackSession
from napari_sam2.engine.labels import compose_frame, upsample_logits

from .conftest import blobs, make_model

N, H, W = 6, 40, 56
A = [[14, 17]]  # (y, x) on the first blob in frame 0
B = [[26, 39]]  # on the second blob


@pytest.fixture
def data():
    return blobs(N, H, W)


def run(session, *args, **kwargs):
    return [f for f, _ in session.propagate(*args, **kwargs)]


def composed(session, frame, ids=None):
    """``frame`` from the objects' latest outputs in the memory bank."""
    ids = np.array(session.object_ids if ids is None else ids)
    lows = torch.cat([session._bank.logits(o, frame) for o in ids])
    logits = upsample_logits(lows, (session.height, session.width)).numpy()
    return np.where(logits.max(0) > 0, ids[logits.argmax(0)], 0)


def two_objects(model, data, **options):
    s = StackSession(model, data, options=SessionOptions(**options))
    s.add_points(1, 0, A, [1])
    s.add_points(2, 0, B, [1])
    return s


# ---------------------------------------------------------------- composition


def test_compose_frame_keeps_the_pixels_of_objects_whose_mask_is_not_known():
    old = np.zeros((4, 6), np.int32)
    old[0, :] = 3  # object 3: no mask known for this frame
    old[1, :] = 1  # object 1: its pixels are recomputed
    old[3, :] = 9  # painted by hand
    logits = torch.full((2, 4, 6), -1.0)
    logits[0, :2, :3] = 2.0  # object 1 (claimant): grows into object 3's row on the left
    logits[1, 0, 3:5] = 1.0  # object 2 (not a claimant): wins there but may not take object 3's pixels
    logits[1, 3, :] = 5.0  # ... nor painted ones
    new = compose_frame(old, [1, 2], logits, kept=[3], claimants=[1])
    expected = np.array(
        [
            [1, 1, 1, 3, 3, 3],
            [1, 1, 1, 0, 0, 0],
            [0, 0, 0, 0, 0, 0],
            [9, 9, 9, 9, 9, 9],
        ]
    )
    assert np.array_equal(new, expected), new
    # by default every written object may take a kept object's pixels
    assert new.dtype == old.dtype
    assert compose_frame(old, [1, 2], logits, kept=[3])[0].tolist() == [1, 1, 1, 2, 2, 3]


def test_segment_frame_composes_every_objects_current_mask(model, data):
    s = two_objects(model, data)
    run(s)
    before2 = s._bank.logits(2, 3).clone()
    s.add_points(1, 3, [[16, 20], [30, 40]], [1, 0])
    out = s.segment_frame(3)
    pending = s._objects[1].pending[3].logits
    lows = torch.cat([pending, before2])
    logits = upsample_logits(lows, (H, W)).numpy()
    expected = np.where(logits.max(0) > 0, np.array([1, 2])[logits.argmax(0)], 0)
    assert np.array_equal(out, expected)


def test_an_evicted_object_keeps_its_pixels_where_the_rerun_object_does_not_win():
    """With no history budget, object 2's memories of the middle frames are
    evicted: a re-run of object 1 there keeps object 2's old pixels except
    where object 1 now wins; elsewhere both masks are known and composed."""
    n = 16
    model = make_model(tracking={"num_maskmem": 3, "max_obj_ptrs_in_encoder": 4})
    labels = np.zeros((n, 24, 32), np.int32)
    labels[:, :2, :] = 9  # painted by hand
    s = StackSession(model, blobs(n, 24, 32), labels=labels, options=SessionOptions(history_mb=0.0))
    s.add_points(1, 0, [[8, 10]], [1])
    s.add_points(2, 0, [[16, 22]], [1])
    run(s)
    before = s.labels.copy()
    k = 6
    s.add_points(1, k, [[9, 11], [16, 22]], [1, 0])
    results = {r.frame: r for r in s.propagate_results()}
    assert sorted(results) == list(range(k, n))
    evicted = [f for f in range(k, n) if s._bank.logits(2, f) is None]
    known = [f for f in range(k, n) if f not in evicted]
    assert evicted and known, (evicted, known)
    grown = 0
    for f in evicted:
        mine = results[f].logits[0].numpy() > 0
        new = s.labels[f]
        painted = before[f] == 9
        assert np.array_equal(new[painted], before[f][painted])
        assert np.array_equal(new == 1, mine & ~painted)
        assert np.array_equal(new == 2, (before[f] == 2) & ~mine)  # kept, minus what object 1 took
        grown += int((mine & (before[f] == 2)).sum())
    for f in known:
        free = before[f] != 9
        assert np.array_equal(s.labels[f][free], composed(s, f)[free])
    assert grown > 0, "object 1 never reached object 2's pixels: the test would prove nothing"


# ---------------------------------------------------------------- re-run modes


def test_rerun_all_recomputes_the_upstream_frames_of_the_corrected_object_only(model, data):
    down, every = two_objects(model, data), two_objects(model, data, rerun="all")
    for s in (down, every):
        run(s)
    first = [every._bank.logits(1, f).clone() for f in range(N)]
    other = [every._bank.logits(2, f).clone() for f in range(N)]
    k = 3
    for s in (down, every):
        s.add_points(1, k, [[16, 20], [30, 40]], [1, 0])
    assert run(down) == list(range(k, N))
    results = list(every.propagate_results())
    assert [r.frame for r in results] == list(range(N))
    assert all(r.object_ids == (1,) for r in results)
    assert torch.equal(every._bank.logits(1, 0), first[0])  # the prompted frame
    assert any(not torch.equal(every._bank.logits(1, f), first[f]) for f in range(1, k))
    assert all(torch.equal(every._bank.logits(2, f), other[f]) for f in range(N))
    assert all(np.array_equal(every.labels[f], composed(every, f)) for f in range(N))
    assert run(every) == [] and run(down) == []


def test_rerun_all_marks_frames_tracked_either_way(model, data):
    s = StackSession(model, data, options=SessionOptions(rerun="all"))
    s.add_points(1, 2, A, [1])
    run(s, "both")
    s.add_points(1, 4, [[16, 20]], [1])
    assert not s._objects[1].fresh.any()
    assert run(s, "backward") == [4, 3, 2, 1, 0]
    assert run(s, "forward") == [5]  # 2 and 4 are prompted, 3 was just tracked backward


def test_options_are_checked():
    with pytest.raises(ValueError, match="rerun"):
        SessionOptions(rerun="upstream")
    with pytest.raises(ValueError, match="direction_memory"):
        SessionOptions(direction_memory="mixed")


# ---------------------------------------------------------------- out-of-date bookkeeping


def test_frames_beyond_stop_that_read_a_corrected_frame_stay_out_of_date(model, data):
    """A pass that began after a later correction read the frames just
    corrected: stopping before it must leave it out of date."""

    def corrected(s):
        s.add_points(1, 0, A, [1])
        run(s)
        s.add_points(1, 3, [[15, 18]], [1])
        assert run(s) == [3, 4, 5]
        s.add_points(1, 1, [[13, 16], [30, 40]], [1, 0])
        return s

    reference = corrected(StackSession(model, data))
    run(reference)
    s = corrected(StackSession(model, data))
    assert run(s, stop=2) == [1, 2]
    assert not s._objects[1].fresh[[4, 5]].any()
    assert run(s) == [3, 4, 5]
    assert np.array_equal(s.labels, reference.labels)
    for f in range(N):
        assert torch.equal(s._bank.logits(1, f), reference._bank.logits(1, f)), f


def test_a_backward_span_leaves_the_frames_below_start_out_of_date(model, data):
    s = StackSession(model, data)
    s.add_points(1, N - 1, A, [1])
    run(s, "backward")
    s.add_points(1, 3, [[15, 18]], [1])
    assert run(s, "backward", start=2) == [3, 2]
    assert s._objects[1].fresh.tolist() == [False, False, True, True, True, True]
    assert run(s, "backward") == [1, 0]


def test_with_exclusive_memories_a_correction_outdates_every_object_downstream(data):
    model = make_model(tracking={"non_overlap_masks_for_mem_enc": True})
    s = two_objects(model, data)
    run(s)
    s.add_points(1, 3, [[16, 20]], [1])
    # object 2's memories from frame 3 on were encoded against object 1's masks
    assert s._objects[2].fresh.tolist() == [True, True, True, False, False, False]
    results = list(s.propagate_results())
    assert [r.frame for r in results] == [3, 4, 5]
    assert all(r.object_ids == (1, 2) for r in results)


# ---------------------------------------------------------------- memories of each direction


@pytest.mark.parametrize("prompt_frame", [2, 3])
def test_separate_direction_memories_make_both_a_forward_and_a_backward_run(model, data, prompt_frame):
    def session(**options):
        s = StackSession(model, data, options=SessionOptions(**options))
        s.add_points(1, prompt_frame, A, [1])
        s.add_points(2, prompt_frame, B, [1])
        return s

    both = {r.frame: r for r in session(direction_memory="separate").propagate_results("both")}
    shared = {r.frame: r for r in session().propagate_results("both")}
    forward = {r.frame: r for r in session().propagate_results("forward")}
    backward = {r.frame: r for r in session().propagate_results("backward")}
    assert sorted(both) == sorted(backward) + sorted(f for f in forward if f != prompt_frame)
    for f in range(N):
        expected = backward[f] if f < prompt_frame else forward[f]
        assert torch.equal(both[f].logits, expected.logits), f
        assert np.array_equal(both[f].labels, expected.labels), f
    # Meta's behaviour: the backward frames next to the prompt read the forward pass's memories
    assert any(not torch.equal(shared[f].logits, backward[f].logits) for f in range(prompt_frame))


def test_separate_memories_keep_apart_passes_of_different_runs(model, data):
    s = StackSession(model, data, options=SessionOptions(direction_memory="separate"))
    s.add_points(1, 2, A, [1])
    run(s, "backward")
    pure = StackSession(model, data)
    pure.add_points(1, 2, A, [1])
    forward = {r.frame: r.logits for r in pure.propagate_results("forward")}
    got = {r.frame: r.logits for r in s.propagate_results("forward")}
    assert sorted(got) == [3, 4, 5]  # frame 2 is up to date from the backward run
    assert all(torch.equal(got[f], forward[f]) for f in got)
