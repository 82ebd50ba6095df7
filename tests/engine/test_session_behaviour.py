"""StackSession behaviour: coordinates, instant segmentation, label
semantics, propagation order / progress / span, cancellation, incremental
re-runs, objects on different frames, batching, shared encodings and lazy
reading. Equality with Meta's predictor lives in tests/reference/."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_sam2.engine import StackSession

from .conftest import IMAGE_SIZE, blobs

N, H, W = 6, 40, 56
A = [[14, 17]]  # (y, x) on the first blob in frame 0
B = [[26, 39]]  # on the second blob


@pytest.fixture
def data():
    return blobs(N, H, W)


def run(session, *args, **kwargs):
    return [f for f, _ in session.propagate(*args, **kwargs)]


def composed(session, frame):
    """``frame`` composed from every object's latest output in the memory
    bank: each pixel to the object with the highest logit, where it is > 0."""
    from napari_sam2.engine.labels import upsample_logits

    ids = np.array(session.object_ids)
    lows = torch.cat([session._bank.logits(o, frame) for o in ids])
    logits = upsample_logits(lows, (session.height, session.width)).numpy()
    return np.where(logits.max(0) > 0, ids[logits.argmax(0)], 0)


# ---------------------------------------------------------------- 2D images


def test_a_2d_image_is_a_stack_of_one_frame(model, data):
    s = StackSession(model, data[0])
    assert s.num_frames == 1 and s.labels.shape == (1, H, W)
    s.add_points(1, 0, A, [1])
    out = s.segment_frame(0)
    assert out.shape == (H, W) and (out == 1).any() and (out == 0).any()
    results = list(s.propagate_results("forward"))
    assert [r.frame for r in results] == [0]
    assert np.array_equal(results[0].labels, out) and np.array_equal(s.labels[0], out)
    assert run(s, "forward") == []  # nothing changed since
    s.add_points(1, 0, [[30, 45]], [0])
    assert run(s, "backward") == [0]
    s.add_points(1, 0, [[31, 45]], [0])
    assert run(s, "both") == [0]  # prompted there: written once
    assert s.labels[0].any()


# ---------------------------------------------------------------- coordinates


def test_points_are_y_x_pixels_scaled_to_the_model_square(model):
    h, w, s_ = 30, 80, IMAGE_SIZE  # not square
    s = StackSession(model, blobs(3, h, w))
    s.add_points(1, 2, [[12, 60], [29, 0]], [1, 0])
    p = s._objects[1].prompts[2]
    assert p.points == [
        pytest.approx((60 / w * s_, 12 / h * s_), rel=1e-6),
        pytest.approx((0.0, 29 / h * s_), rel=1e-6),
    ]
    assert p.labels == [1, 0]
    s.add_points(1, 2, [5, 7], 1)  # one (y, x) pair and a scalar label
    assert p.points[-1] == pytest.approx((7 / w * s_, 5 / h * s_), rel=1e-6)
    assert p.labels == [1, 0, 1]


@pytest.mark.parametrize(
    "box",
    [(6, 10, 24, 70), (24, 70, 6, 10), (6, 70, 24, 10), (24, 10, 6, 70)],
    ids=["ordered", "reversed", "x reversed", "y reversed"],
)
def test_boxes_are_y0_x0_y1_x1_in_any_corner_order(model, box):
    h, w, s_ = 30, 80, IMAGE_SIZE
    s = StackSession(model, blobs(3, h, w))
    s.add_points(1, 1, [[3, 3]], [1])
    s.add_box(1, 1, box)
    p = s._objects[1].prompts[1]
    assert p.points == [] and p.labels == []  # a box replaces earlier clicks
    expected = [10 / w * s_, 6 / h * s_, 70 / w * s_, 24 / h * s_]  # (x0, y0, x1, y1)
    assert p.box.tolist() == pytest.approx(expected, rel=1e-6)
    # as the decoder sees it: two corner points labelled 2 and 3
    pp = p.point_prompts(torch.device("cpu"))
    assert pp.labels.tolist() == [[2, 3]]
    assert pp.coords.tolist()[0] == [pytest.approx(expected[:2]), pytest.approx(expected[2:])]


def test_a_box_reaching_past_the_image_is_cut_at_its_edge(model):
    h, w, s_ = 30, 80, IMAGE_SIZE
    s = StackSession(model, blobs(3, h, w))
    s.add_box(1, 0, (-5, 10, 50, 200))
    # cut at the image's far edges (x = w, y = h: a box on the last row or
    # column keeps its height and width)
    expected = [10 / w * s_, 0.0, float(s_), float(s_)]
    assert s._objects[1].prompts[0].box.tolist() == pytest.approx(expected, rel=1e-6)


def test_a_mask_prompt_comes_back_where_it_was_drawn(model):
    """Mask prompts are used as the output: on a non-square frame the
    preview must reproduce the drawn rectangle (not its transpose)."""
    h, w = 30, 80
    s = StackSession(model, blobs(3, h, w))
    mask = np.zeros((h, w), bool)
    mask[4:20, 30:72] = True
    s.add_mask(3, 1, mask)
    out = s.segment_frame(1)
    got = out == 3
    iou = (got & mask).sum() / (got | mask).sum()
    assert iou > 0.9, iou
    assert not s.labels[0].any() and not s.labels[2].any()


# ---------------------------------------------------------------- segment_frame


def test_segment_frame_writes_only_its_frame_and_returns_a_copy(model, data, count_calls):
    enc = count_calls(model, "encode_image")
    labels = np.zeros((N, H, W), np.int32)
    labels[:, 30:, :5] = 7  # painted by hand on every frame
    before = labels.copy()
    s = StackSession(model, data, labels=labels)
    step = count_calls(model, "track_step")
    s.add_points(1, 2, A, [1])
    out = s.segment_frame(2)
    assert (out == 1).any()
    others = [f for f in range(N) if f != 2]
    assert np.array_equal(s.labels[others], before[others])
    assert np.array_equal(out, s.labels[2])
    out[:] = 99  # a copy: the session's labels do not change
    assert not (s.labels[2] == 99).any()
    assert (enc.count, step.count) == (1, 1)

    again = s.segment_frame(2)  # nothing changed: neither network part runs
    assert (enc.count, step.count) == (1, 1)
    assert np.array_equal(again, s.labels[2])

    s.add_points(1, 2, [[16, 19]], [1])  # a refining click: decoder only
    s.segment_frame(2)
    assert (enc.count, step.count) == (1, 2)
    s.add_points(2, 2, B, [1])  # another object on the same frame
    s.segment_frame(2)
    assert (enc.count, step.count) == (1, 3)
    s.prepare_frame(4)
    assert s.is_prepared(4) and enc.count == 2
    s.add_points(1, 4, A, [1])
    s.segment_frame(4)
    assert (enc.count, step.count) == (2, 4)


def test_segment_frame_on_a_frame_without_prompts_changes_nothing(model, data):
    labels = np.zeros((N, H, W), np.uint8)
    labels[3, :4, :4] = 5
    s = StackSession(model, data, labels=labels)
    s.add_points(1, 0, A, [1])
    out = s.segment_frame(3)
    assert np.array_equal(out, labels[3]) and out.dtype == np.uint8


# ---------------------------------------------------------------- label semantics


def test_each_pixel_goes_to_the_object_with_the_higher_logit(model, data):
    s = StackSession(model, data)
    s.add_box(1, 0, (4, 4, 30, 40))
    s.add_box(2, 0, (10, 14, 36, 52))  # overlaps object 1's box
    s.add_points(3, 0, A, [1])
    contested = 0
    for r in s.propagate_results():
        logits = r.logits.numpy()  # (K, H, W)
        ids = np.array(r.object_ids)
        winner = np.where(logits.max(0) > 0, ids[logits.argmax(0)], 0)
        assert np.array_equal(r.labels, winner), r.frame
        contested += int(((logits > 0).sum(0) >= 2).sum())
    assert contested > 0, "no pixel claimed by two objects: the test would prove nothing"


def test_foreign_label_values_are_never_changed(model, data):
    labels = np.zeros((N, H, W), np.int32)
    labels[:, 8:20, 10:20] = 7  # hand-painted over the first blob (not on the click)
    labels[:, :3, :] = 9
    painted = labels.copy()
    s = StackSession(model, data, labels=labels)
    s.add_points(1, 0, [[16, 22]], [1])
    s.add_points(2, 0, B, [1])
    s.segment_frame(0)
    covered = 0
    for r in s.propagate_results():
        covered += int(((r.logits > 0).any(0).numpy() & (painted[r.frame] == 7)).sum())
    assert covered > 0, "no object reached the painted pixels: the test would prove nothing"
    for value in (7, 9):
        assert np.array_equal(s.labels == value, painted == value)
    assert (s.labels == 1).any() and (s.labels == 2).any()


def test_a_caller_array_is_written_in_place(model, data):
    arr = np.zeros((N, H, W), np.uint16)
    arr[4] = np.arange(H * W, dtype=np.uint16).reshape(H, W) % 5 + 10
    frame4 = arr[4].copy()
    s = StackSession(model, data, labels=arr)
    assert s.labels is arr
    s.add_points(3, 1, A, [1])
    s.segment_frame(1)
    assert arr.dtype == np.uint16
    assert (arr[1] == 3).any()
    assert not arr[[0, 2, 3, 5]].any() and np.array_equal(arr[4], frame4)
    run(s, "forward", stop=3)
    assert all((arr[f] == 3).any() for f in (1, 2, 3))
    assert not arr[[0, 5]].any() and np.array_equal(arr[4], frame4)


def test_remove_object_clears_its_pixels_everywhere_and_nothing_else(model, data):
    labels = np.zeros((N, H, W), np.int16)
    labels[:, -4:, -4:] = 7
    s = StackSession(model, data, labels=labels)
    s.add_points(1, 0, A, [1])
    s.add_points(2, 0, B, [1])
    run(s)
    before = s.labels.copy()
    assert (before == 1).sum(axis=(1, 2)).min() > 0
    s.remove_object(1)
    assert s.object_ids == [2]
    assert not (s.labels == 1).any()
    assert np.array_equal(s.labels[before == 1], np.zeros((before == 1).sum(), np.int16))
    keep = before != 1
    assert np.array_equal(s.labels[keep], before[keep])
    # without clearing, the pixels stay
    s.remove_object(2, clear_labels=False)
    assert s.object_ids == []
    assert np.array_equal(s.labels, np.where(before == 1, 0, before))
    # a removed object does not come back on the next preview
    s.add_points(3, 0, A, [1])
    assert not np.isin(s.segment_frame(0), (1,)).any()


# ---------------------------------------------------------------- order, progress, span


@pytest.mark.parametrize(
    "direction, prompt_frame, expected",
    [
        ("forward", 0, list(range(N))),
        ("forward", 2, [2, 3, 4, 5]),
        ("backward", N - 1, list(range(N - 1, -1, -1))),
        ("backward", 3, [3, 2, 1, 0]),
        # "both": the prompted frame once (see below for objects tracked there)
        ("both", 2, [2, 3, 4, 5, 1, 0]),
        ("both", 0, list(range(N))),
        ("both", N - 1, list(range(N - 1, -1, -1))),
    ],
)
def test_propagation_order_and_progress(model, data, direction, prompt_frame, expected):
    s = StackSession(model, data)
    s.add_points(1, prompt_frame, A, [1])
    calls = []
    got = run(s, direction, progress=lambda done, total: calls.append((done, total)))
    assert got == expected
    assert calls == [(i + 1, len(expected)) for i in range(len(expected))]
    assert all((s.labels[f] == 1).any() for f in set(got))


def test_both_revisits_the_prompted_frame_for_objects_tracked_there(model, data):
    """"both" is a forward run and a backward run from the first prompted
    frame, as two reference calls are: an object that is tracked (not
    prompted) on that frame is tracked there again in reverse, so the frame
    is yielded once per pass and the second result is the one kept."""
    s = StackSession(model, data)
    s.add_points(1, 2, A, [1])
    s.add_points(2, 4, B, [1])
    results = list(s.propagate_results("both"))
    assert [r.frame for r in results] == [2, 3, 4, 5, 2, 1, 0]
    first, second = results[0], results[4]
    assert first.object_ids == second.object_ids == (1, 2)
    assert torch.equal(first.logits[0], second.logits[0])  # prompted: the same
    assert not torch.equal(first.logits[1], second.logits[1])  # re-tracked backward
    assert np.array_equal(s.labels[2], second.labels)
    assert np.array_equal(second.previous, first.labels)


@pytest.mark.parametrize(
    "direction, prompt_frame, start, stop, expected",
    [
        ("forward", 1, None, 3, [1, 2, 3]),
        ("forward", 0, 2, 4, [2, 3, 4]),
        ("backward", 4, 2, None, [4, 3, 2]),
        ("backward", 5, 1, 3, [3, 2, 1]),
        ("both", 2, 1, 3, [2, 3, 1]),
    ],
)
def test_start_and_stop_limit_the_span(model, data, direction, prompt_frame, start, stop, expected):
    s = StackSession(model, data)
    s.add_points(1, prompt_frame, A, [1])
    calls = []
    got = run(s, direction, start=start, stop=stop, progress=lambda d, t: calls.append((d, t)))
    assert got == expected
    assert calls[-1] == (len(expected), len(expected))
    outside = [f for f in range(N) if f not in expected and f != prompt_frame]
    assert not s.labels[outside].any()
    assert all((s.labels[f] == 1).any() for f in expected)


# ---------------------------------------------------------------- cancellation


def _two_objects_then_a_new_mask(model, data):
    """Both objects tracked everywhere, then object 1 redrawn as a mask on
    frame 0: every frame is out of date."""
    s = StackSession(model, data)
    s.add_points(1, 0, A, [1])
    s.add_points(2, 0, B, [1])
    run(s)
    mask = np.zeros((H, W), bool)
    mask[2:12, 30:54] = True
    s.add_mask(1, 0, mask)
    return s


@pytest.mark.parametrize("k", [1, 3])
def test_closing_the_generator_cancels_between_frames(model, data, k):
    s = _two_objects_then_a_new_mask(model, data)
    old = s.labels.copy()
    reference = _two_objects_then_a_new_mask(model, data)
    run(reference)
    new = reference.labels.copy()
    assert any(not np.array_equal(old[f], new[f]) for f in range(N)), "the redraw changed nothing"

    calls = []
    gen = s.propagate(progress=lambda d, t: calls.append((d, t)))
    seen = [f for _, (f, _) in zip(range(k), gen)]
    gen.close()
    assert seen == list(range(k))
    assert calls == [(i + 1, N) for i in range(k)]
    for f in range(N):
        if f < k:
            assert np.array_equal(s.labels[f], new[f]), f
        else:
            assert np.array_equal(s.labels[f], old[f]), f  # not reached: exactly as before

    # usable again; the next run does only what is out of date
    s.add_points(2, 0, [[27, 40]], [1])  # object 2 now out of date on every frame too
    s.clear_frame(2, 0)
    s.add_points(2, 0, B, [1])
    assert run(s) == list(range(N))


def test_a_later_run_finishes_a_cancelled_one(model, data):
    k = 2
    s = _two_objects_then_a_new_mask(model, data)
    reference = _two_objects_then_a_new_mask(model, data)
    run(reference)
    gen = s.propagate()
    for _ in range(k):
        next(gen)
    gen.close()
    partial = s.labels.copy()
    assert run(s) == list(range(k, N))  # frames 0..k-1 are not run again
    assert np.array_equal(s.labels[:k], partial[:k])
    assert np.array_equal(s.labels, reference.labels)
    assert run(s) == []


def _corrected_twice(model, data):
    """Tracked from frame 0, corrected on frame 3 and re-run (a pass that
    starts at 3), then corrected on frame 1: frames 4 and 5 read memories of
    frames 1 and 2 and are out of date although their pass began after 1."""
    s = StackSession(model, data)
    s.add_points(1, 0, A, [1])
    run(s)
    s.add_points(1, 3, [[15, 18]], [1])
    assert run(s) == [3, 4, 5]
    s.add_points(1, 1, [[13, 16], [30, 40]], [1, 0])
    return s


def test_a_cancelled_run_is_finished_exactly_by_the_next_one(model, data):
    reference = _corrected_twice(model, data)
    assert run(reference) == [1, 2, 3, 4, 5]
    s = _corrected_twice(model, data)
    gen = s.propagate()
    assert [next(gen)[0], next(gen)[0]] == [1, 2]
    gen.close()
    assert run(s) == [3, 4, 5]  # the rest of the cancelled run, nothing more
    assert np.array_equal(s.labels, reference.labels)
    for f in range(N):
        assert torch.equal(s._bank.logits(1, f), reference._bank.logits(1, f)), f


# ---------------------------------------------------------------- incremental re-runs


def test_a_correction_reruns_only_downstream_frames_without_re_encoding(model, data, count_calls):
    enc = count_calls(model, "encode_image")
    s = StackSession(model, data)
    s.add_points(1, 0, A, [1])
    s.add_points(2, 0, B, [1])
    assert run(s) == list(range(N))
    assert enc.count == N
    step = count_calls(model, "track_step")
    assert run(s, "forward") == []  # nothing changed: nothing runs
    assert run(s, "both") == []
    assert step.count == 0
    before = s.labels.copy()
    object2 = [s._bank.logits(2, f).clone() for f in range(N)]

    k = 3
    s.add_points(1, k, [[17, 20], [30, 40]], [1, 0])
    results = list(s.propagate_results("forward"))
    assert [r.frame for r in results] == list(range(k, N))
    assert all(r.object_ids == (1,) for r in results)  # object 2 is still up to date
    assert enc.count == N  # every frame's features came from the cache
    # one decode of the correction, then one step per later frame
    assert step.batches == [1] * (1 + N - 1 - k)
    assert np.array_equal(s.labels[:k], before[:k])
    assert all(torch.equal(s._bank.logits(2, f), object2[f]) for f in range(N))
    # the re-run frames hold both objects' current masks: object 2 takes
    # back what object 1 gave up where it is > 0
    assert all(np.array_equal(s.labels[f], composed(s, f)) for f in range(N))
    assert s.prompted_frames(1) == [0, k]
    assert run(s, "forward") == []


def test_a_correction_after_a_backward_run_reruns_the_frames_below_it(model, data):
    s = StackSession(model, data)
    s.add_points(1, N - 1, A, [1])
    assert run(s, "backward") == list(range(N - 1, -1, -1))
    before = s.labels.copy()
    s.add_points(1, 2, [[15, 18]], [1])
    assert run(s, "backward") == [2, 1, 0]
    assert np.array_equal(s.labels[3:], before[3:])
    assert run(s, "backward") == [] and run(s, "forward") == []
    s.add_points(1, 4, [[15, 18]], [1])  # between two prompted frames
    # frames 1 and 0 read frame 3's memory: the run goes on past prompted frame 2
    assert run(s, "backward") == [4, 3, 2, 1, 0]


def test_a_new_object_is_covered_by_the_next_run(model, data):
    s = StackSession(model, data)
    s.add_points(1, 0, A, [1])
    run(s)
    before = s.labels.copy()
    s.add_points(2, 0, B, [1])
    results = list(s.propagate_results("forward"))
    assert [r.frame for r in results] == list(range(N))
    assert all(r.object_ids == (2,) for r in results)
    contested = 0
    for r in results:  # object 1 was not re-run, and keeps what it wins by score
        assert np.array_equal(r.labels, composed(s, r.frame)), r.frame
        both = (r.logits[0].numpy() > 0) & (before[r.frame] == 1)
        contested += int(both.sum())
    assert contested > 0, "the objects never overlap: the test would prove nothing"
    assert (s.labels == 1).any() and (s.labels == 2).any()


def test_clear_frame_makes_the_frames_it_reached_out_of_date(model, data):
    s = StackSession(model, data)
    s.add_points(1, 0, A, [1])
    s.add_points(1, 3, [[15, 20]], [1])
    run(s)
    s.clear_frame(1, 3)
    assert s.prompted_frames(1) == [0]
    assert s._bank.cond_frames(1) == [0]
    assert run(s) == [3, 4, 5]


# ---------------------------------------------------------------- objects on different frames


def test_an_object_first_prompted_later_is_tracked_from_the_start(model, data):
    s = StackSession(model, data)
    s.add_points(1, 0, A, [1])
    s.add_points(2, 3, B, [1])
    results = list(s.propagate_results("forward"))
    assert [r.frame for r in results] == list(range(N))
    for r in results:
        assert r.object_ids == (1, 2)
        assert torch.isfinite(r.logits).all()
    assert s._objects[2].fresh.all()


def test_backward_from_the_last_prompted_frame_covers_earlier_objects(model, data):
    s = StackSession(model, data)
    s.add_points(1, 1, A, [1])
    s.add_points(2, 4, B, [1])
    results = list(s.propagate_results("backward"))
    assert [r.frame for r in results] == [4, 3, 2, 1, 0]
    assert all(r.object_ids == (1, 2) for r in results)


# ---------------------------------------------------------------- sharing and batching


def test_objects_share_one_encoding_per_frame_and_one_batched_step(model, data, count_calls):
    enc = count_calls(model, "encode_image")
    s = StackSession(model, data)
    step = count_calls(model, "track_step")
    for obj_id, yx in ((1, A), (2, B), (3, [[5, 50]])):
        s.add_points(obj_id, 0, yx, [1])
    s.segment_frame(0)
    assert step.batches == [1, 1, 1]  # prompts decode one object at a time
    steps_per_frame = {}
    for f, _ in s.propagate():
        steps_per_frame[f] = list(step.batches[3:])
        del step.batches[3:]
    assert steps_per_frame == {0: [], **{f: [3] for f in range(1, N)}}
    assert enc.count == N and enc.batches == [1] * N


def test_objects_reading_different_memories_share_one_batched_step(model, data, count_calls):
    s = StackSession(model, data)
    s.add_points(1, 0, A, [1])
    s.add_points(2, 0, B, [1])
    s.add_points(3, 2, [[5, 50]], [1])  # its own conditioning frame: other memories
    s.segment_frame(0)
    s.segment_frame(2)
    step = count_calls(model, "track_step")
    frames = run(s)
    assert frames == list(range(N))
    # padded and masked together (tests/engine/test_batched_step.py): one
    # step per frame; frame 0: object 3 alone; frame 2: objects 1+2
    assert step.batches == [1, 3, 2] + [3] * (N - 3)

# ---------------------------------------------------------------- lazy reading


class Recording:
    """An array-like that records which frames are read."""

    def __init__(self, array):
        self._a = array
        self.shape, self.dtype = array.shape, array.dtype
        self.reads: list[int] = []

    def __getitem__(self, key):
        assert isinstance(key, tuple) and isinstance(key[0], (int, np.integer)), key
        self.reads.append(int(key[0]))
        return self._a[key]


@pytest.mark.parametrize("intensity_range", ["auto", (0, 255)])
def test_propagate_reads_only_the_frames_of_its_span(model, intensity_range):
    n = 12
    rec = Recording(blobs(n, H, W))
    s = StackSession(model, rec, intensity_range=intensity_range)
    assert rec.reads == []  # nothing read yet
    s.add_points(1, 4, A, [1])
    assert rec.reads == []
    assert run(s, "forward", stop=7) == [4, 5, 6, 7]
    sampled = {0, 3, 6, 8, 11} if intensity_range == "auto" else set()
    frames = set(rec.reads)
    assert frames == {4, 5, 6, 7} | sampled
    # each span frame is read once for the encoder (features are cached)
    assert sorted(f for f in rec.reads if f in (5, 7)) == [5, 7]
    rec.reads.clear()
    # frame 4 is up to date from the forward run: backward starts below it
    assert run(s, "backward", start=2) == [3, 2]
    assert sorted(rec.reads) == [2, 3]


@pytest.mark.parametrize("exclusive", [False, True])
def test_exclusive_memories_push_pixels_claimed_by_another_object_to_background(data, exclusive):
    from .conftest import make_model

    model = make_model(tracking={"non_overlap_masks_for_mem_enc": exclusive})
    seen = []
    encode = model.encode_memory

    def record(embedding, masks, scores, *, from_points):
        if not from_points and len(masks) > 1:
            seen.append(masks.detach().clone())
        return encode(embedding, masks, scores, from_points=from_points)

    model.encode_memory = record
    s = StackSession(model, data)
    s.add_points(1, 0, A, [1])
    s.add_points(2, 0, [[A[0][0] + 2, A[0][1] + 2]], [1])  # the same blob: the masks overlap
    s.add_points(3, 0, B, [1])
    run(s)
    overlapping = [int(((m > -10.0).sum(0) > 1).sum()) for m in seen]
    if exclusive:
        assert len(seen) == N - 1  # one batched memory encoding per tracked frame
        assert overlapping == [0] * (N - 1)
        for m in seen:  # only pushed down, and only where another object is higher
            assert torch.all(m <= m.max(0, keepdim=True).values)
    else:  # the same setting without the option: the memories' masks do overlap
        assert len(seen) == N - 1 and all(n > 0 for n in overlapping), overlapping
