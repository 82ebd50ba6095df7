"""Track everything with the shipped demo model on small drawn scenes:
objects of the first frame are tracked, objects that appear later are
found at the next detection frame, objects that leave stop, and closing the
generator cancels."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage

from napari_sam2 import AutomaticOptions, StackSession, load_model

OPTIONS = AutomaticOptions(points_per_side=12, lost_after=2)


@pytest.fixture(scope="module")
def demo():
    return load_model("demo", device="cpu")


def _discs(n: int, discs, size: int = 160, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` frames of bright discs on a noisy background, and their labels.
    ``discs``: ``(first, last, cy, cx, r, vy, vx)`` each, present on frames
    ``first..last``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    image = np.zeros((n, size, size), np.uint16)
    labels = np.zeros((n, size, size), np.int32)
    for t in range(n):
        signal = np.zeros((size, size))
        for k, (first, last, cy, cx, r, vy, vx) in enumerate(discs, start=1):
            if first <= t <= last:
                d2 = (yy - cy - vy * t) ** 2 + (xx - cx - vx * t) ** 2
                inside = d2 <= r * r
                signal[inside] += 1000 + 800 * np.exp(-d2[inside] / (2 * (0.5 * r) ** 2))
                labels[t][inside] = k
        frame = 200 + ndimage.gaussian_filter(signal, 1.5) + 40 * rng.random((size, size))
        image[t] = frame.astype(np.uint16)
    return image, labels


SCENE = [
    (0, 7, 40, 40, 9, 0.5, 1.0),  # there all along, drifting
    (0, 2, 110, 110, 10, 0, 0),  # leaves after frame 2
    (4, 7, 45, 115, 9, 0, 0),  # appears on frame 4
]


def test_new_objects_found_and_lost_ones_stop(demo):
    image, truth = _discs(8, SCENE)
    session = StackSession(demo, image)
    calls = []
    seen = list(session.track_everything(options=OPTIONS, detect_every=2, progress=lambda d, t: calls.append((d, t))))
    assert [f for f, _ in seen] == list(range(8))  # each frame once, in order
    assert calls[-1] == (8, 8) and len(calls) == 8
    for f, labels in seen:
        assert np.array_equal(labels, session.labels[f])
    ids_by_truth = {}
    for k in (1, 2, 3):
        t = SCENE[k - 1][0]
        values, counts = np.unique(session.labels[t][truth[t] == k], return_counts=True)
        ids_by_truth[k] = int(values[np.argmax(counts)])
    assert all(ids_by_truth.values()), ids_by_truth
    assert len(set(ids_by_truth.values())) == 3
    # the late one was found on the detection frame where it first shows
    late = ids_by_truth[3]
    assert session.object_frames(late)[0] == 4
    assert late > max(ids_by_truth[1], ids_by_truth[2])
    # the one that left is no longer tracked; its frames stay in the labels
    gone = ids_by_truth[2]
    assert gone not in session.object_ids
    assert session.object_frames(gone)[:3] == [0, 1, 2] and max(session.object_frames(gone)) <= 4
    assert ids_by_truth[1] in session.object_ids and session.object_frames(ids_by_truth[1]) == list(range(8))


def test_a_zstack_nucleus_that_begins_deeper_is_found_backward(demo):
    image, truth = _discs(6, [(0, 5, 45, 45, 10, 0, 0), (0, 2, 105, 100, 10, 0, 0)])
    session = StackSession(demo, image)
    seen = [f for f, _ in session.track_everything("backward", options=OPTIONS, detect_every=2)]
    assert seen == [5, 4, 3, 2, 1, 0]
    # the pass starts at the last slice; detection on slices 5, 3, 1 and 0
    # finds the second nucleus on slice 1, the first it reaches it on
    first = int(np.bincount(session.labels[5][truth[5] == 1]).argmax())
    second = int(np.bincount(session.labels[1][truth[1] == 2]).argmax())
    assert first and second and first != second
    assert session.object_frames(first) == list(range(6))
    assert {0, 1} <= set(session.object_frames(second)) <= {0, 1, 2}
    assert second > first


def test_cancel_keeps_unreached_frames(demo):
    image, _ = _discs(6, SCENE[:1])
    session = StackSession(demo, image)
    run = session.track_everything(options=OPTIONS, detect_every=3)
    first = [next(run), next(run)]
    run.close()
    assert [f for f, _ in first] == [0, 1]
    assert session.labels[0].any() and not session.labels[2:].any()
    session.add_points(99, 4, [[40, 40]], [1])  # the session is usable again
    assert 99 in session.object_ids


def test_bad_arguments(demo):
    session = StackSession(demo, _discs(3, SCENE[:1])[0])
    with pytest.raises(ValueError, match="forward"):
        session.track_everything("both")
    with pytest.raises(ValueError, match="detect_every"):
        session.track_everything(detect_every=0)
    with pytest.raises(ValueError, match="start"):
        session.track_everything(start=2, stop=1)
    with pytest.raises(TypeError, match="AutomaticOptions"):
        session.track_everything(options={})


def test_session_stop_ends_track_everything_without_new_detections(demo):
    """``session.stop()`` (a GUI's Stop, from another thread) ends the run
    after the frame being computed: no later frame is segmented or tracked,
    so no object appears on a frame the objects were not tracked to."""
    image, _ = _discs(8, SCENE)
    session = StackSession(demo, image)
    seen = []
    run = session.track_everything(options=OPTIONS, detect_every=2)
    for frame, labels in run:
        seen.append(frame)
        if frame == 1:
            ids_then = set(session.object_ids)
            session.stop()
    assert seen == [0, 1]  # frames 2.. were not yielded: not computed
    assert set(session.object_ids) == ids_then  # no detection after the stop
    assert not session.labels[3:].any()  # nothing written past the stop
    # a new run after the stop carries on as usual
    frames = [f for f, _ in session.track_everything(start=2, options=OPTIONS, detect_every=2)]
    assert frames == list(range(2, 8))
    assert session.labels[7].any()


def test_a_tracked_mask_over_two_cells_is_separated_on_a_detection_frame(demo):
    """Object 1 is one disc on frame 0 and, on frame 1, a mask over it and
    its touching neighbour (as when a track spreads onto a neighbour): the
    detection on frame 1 prompts object 1 with its own disc again and makes
    the neighbour a new object. With divisions on, a mask that kept its
    area is left to the division watcher; one that grew is separated."""
    from napari_sam2.engine.track_all import _Tracker

    image, truth = _discs(2, [(0, 1, 60, 60, 12, 0, 0), (0, 1, 60, 85, 12, 0, 0)])
    own, neighbour = truth[1] == 1, truth[1] == 2

    def spread_session():
        session = StackSession(demo, image)
        session.add_mask(1, 0, truth[0] == 1)
        list(session.propagate(start=0, stop=0))
        session.labels[1] = np.where(own | neighbour, 1, 0).astype(np.int32)  # the spread track
        return session

    session = spread_session()
    tracker = _Tracker(session, OPTIONS)
    assert tracker.detect(1, before=[0])
    assert session.prompted_frames(1) == [0, 1]
    mine = _prompt_mask(session, 1, 1)
    assert _iou(mine, own) > 0.6 and (mine & own).sum() > 4 * (mine & neighbour).sum()  # its own disc
    new = [o for o in session.object_ids if o != 1]
    assert new and all(session.prompted_frames(o) == [1] for o in new)
    masks = {o: _prompt_mask(session, o, 1) for o in new}
    on_neighbour = [o for o, m in masks.items()
                    if (m & neighbour).sum() > 0.8 * m.sum() and (m & own).sum() < 0.1 * m.sum()]
    assert len(on_neighbour) == 1, {o: ((m & own).sum(), (m & neighbour).sum()) for o, m in masks.items()}
    # any other new object is a piece of object 1's own disc that its automatic mask left out
    assert all((m & neighbour).sum() < 0.1 * m.sum() for o, m in masks.items() if o not in on_neighbour)
    theirs = masks[on_neighbour[0]]  # the demo model's mask of it: on it (IoU 0.4-0.85, background at its rim)
    assert (theirs & neighbour).sum() > 0.3 * neighbour.sum()
    list(session.propagate(start=1, stop=1))
    tracked, added = session.labels[1] == 1, session.labels[1] == on_neighbour[0]
    assert _iou(tracked, own) > 0.6 and (tracked & neighbour).sum() < 0.2 * neighbour.sum()
    assert (added & neighbour).sum() > 0.8 * added.sum() and (added & own).sum() < 0.1 * added.sum()

    off = spread_session()  # the option off: the spread mask stays, nothing new
    assert not _Tracker(off, AutomaticOptions(points_per_side=12, separate_merged=False)).detect(1, before=[0])
    assert off.prompted_frames(1) == [0] and off.object_ids == [1]

    # divisions on (segmenting as track_everything then does: DivisionOptions' ranking)
    with_divisions = replace(OPTIONS, area_bonus=0.0, stability_score_thresh=0.85)
    kept = spread_session()  # a mask that did not grow is the watcher's
    kept.labels[0] = np.where(own | neighbour, 1, 0).astype(np.int32)
    assert not _Tracker(kept, with_divisions, divisions=True).detect(1, before=[0])
    assert kept.object_ids == [1]
    grown = spread_session()  # ... one that doubled is separated
    assert _Tracker(grown, with_divisions, divisions=True).detect(1, before=[0]) and len(grown.object_ids) == 2
    with pytest.raises(ValueError, match="separate_merged must be True or False"):
        AutomaticOptions(separate_merged=1)


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def _prompt_mask(session, obj_id, frame):
    record = next(r for r in session.prompt_records() if r.id == obj_id)
    return np.asarray(record.frames[frame].mask, dtype=bool)


def test_area_valley_finds_the_low_between_two_objects_under_one_track():
    from napari_sam2.engine.track_all import area_valley

    # a nucleus to its pole, out-of-focus glow, the nucleus stacked below
    assert area_valley([500, 600, 650, 300, 220, 230, 340, 600, 800], 0.4) == 4
    assert area_valley([0, 0, 500, 100, 0, 300, 600, 700], 0.4) == 4  # absent on the low; leading frames skipped
    assert area_valley([500, 600, 300, 600], 0.4) is None  # the rise needs two frames after the low
    assert area_valley([800, 800, 420, 450, 480, 520], 0.4) is None  # a daughter at half her mother: no cut
    assert area_valley([800, 600, 300, 200, 150, 100], 0.4) is None  # a nucleus ending: no rise
    assert area_valley([800, 300, 800, 100, 90, 700, 750], 0.4) == 4  # of two lows, the deeper
    assert area_valley([], 0.4) is None and area_valley([0, 0, 0, 0], 0.4) is None


def _stacked_session(demo, n=8):
    """Object 1 prompted on frame 0 with disc A; its labels (set by hand, as
    SAM 2 tracks it on through a z-stack) follow A to its pole on frames 0-3,
    a speck on frame 4 and disc B, stacked below A, on frames 5-7."""
    radii = [12, 10, 7, 4, 2, 6, 10, 12]
    yy, xx = np.mgrid[0:120, 0:120]
    image = np.zeros((n, 120, 120), np.uint16)
    masks = [(yy - 60) ** 2 + (xx - 60) ** 2 <= r * r for r in radii[:n]]
    for t, m in enumerate(masks):
        image[t] = 200 + 1500 * ndimage.gaussian_filter(m.astype(float), 1.5)
    session = StackSession(demo, image)
    session.add_mask(1, 0, masks[0])
    for t, m in enumerate(masks):
        session.labels[t] = m.astype(np.int32)
    return session, masks


def test_a_track_over_two_stacked_nuclei_is_cut_at_its_low(demo):
    from napari_sam2.engine.track_all import _Tracker

    session, masks = _stacked_session(demo)
    tracker = _Tracker(session, OPTIONS)
    assert tracker.cut_valleys(list(range(8)), "forward", 0) == 5
    assert session.object_ids == [1, 2] and session.prompted_frames(2) == [5]
    assert np.array_equal(_prompt_mask(session, 2, 5), masks[5])
    assert session.object_frames(1) == [0, 1, 2, 3, 4]  # object 1 ends on the low: its later pixels are gone
    assert session.lineage.limits(1) == (None, 4) and session.lineage.mother(2) == 0
    assert tracker.cut_valleys(list(range(8)), "forward", 0) is None  # nothing left to cut

    late, _ = _stacked_session(demo)  # frames 0-5 handed out already: the cut is made after them
    assert _Tracker(late, OPTIONS).cut_valleys(list(range(8)), "forward", 6) == 6
    assert late.prompted_frames(2) == [6] and late.object_frames(1) == [0, 1, 2, 3, 4, 5]

    back, _ = _stacked_session(demo)  # a backward pass over the same frames, from frame 7
    back.remove_object(1, clear_labels=False)
    back.add_mask(1, 7, masks[7])
    assert _Tracker(back, OPTIONS).cut_valleys(list(range(7, -1, -1)), "backward", 0) == 4  # frame 3
    assert back.prompted_frames(2) == [3] and back.lineage.limits(1) == (4, None)

    corrected, _ = _stacked_session(demo)  # prompted after the low: left alone
    corrected.add_mask(1, 6, masks[6])
    assert _Tracker(corrected, OPTIONS).cut_valleys(list(range(8)), "forward", 0) is None
    assert corrected.object_ids == [1]

    off, _ = _stacked_session(demo)
    assert _Tracker(off, AutomaticOptions(points_per_side=12, valley_cut=None)).cut_valleys(
        list(range(8)), "forward", 0) is None
    assert off.object_ids == [1] and off.object_frames(1) == list(range(8))
    with pytest.raises(ValueError, match="valley_cut must be a number in"):
        AutomaticOptions(valley_cut=1.0)


def test_finding_divisions_segments_with_the_division_options_ranking(demo):
    """Track everything segments with the AutomaticOptions' area bonus and
    stability cut (0.3 and 0.8 by default), but with DivisionOptions' (0 and
    0.85) while it finds divisions, so that one mask over two fresh
    daughters does not outrank each; None keeps the AutomaticOptions' own."""
    from napari_sam2 import DivisionOptions

    image, _ = _discs(3, SCENE[:2])

    def used(**kw):
        session = StackSession(demo, image)
        seen, segment = [], session.segment_everything
        session.segment_everything = lambda frame, options=None, **kw: (
            seen.append((options.area_bonus, options.stability_score_thresh)) or segment(frame, options, **kw))
        list(session.track_everything(options=OPTIONS, detect_every=2, **kw))
        return set(seen)

    assert used() == {(0.3, 0.8)}
    assert used(divisions=DivisionOptions()) == {(0.0, 0.85)}
    assert used(divisions=DivisionOptions(area_bonus=None, stability_score_thresh=None)) == {(0.3, 0.8)}
    assert used(divisions=DivisionOptions(area_bonus=0.1, stability_score_thresh=None)) == {(0.1, 0.8)}
    with pytest.raises(ValueError, match="area_bonus must be a number >= 0"):
        DivisionOptions(area_bonus=-1)
    with pytest.raises(ValueError, match="stability_score_thresh must be a fraction"):
        DivisionOptions(stability_score_thresh=1.5)


def test_a_cell_entering_the_field_is_found_on_the_frame_it_comes_in(demo):
    """Between detection frames each frame's border is watched
    (``watch_edges``): a cell that comes in from the left edge on frame 2
    becomes an object on its first frames, not only at the next detection
    (the last frame here); a cell already inside gives nothing new."""
    scene = [(0, 7, 60, 80, 9, 0, 0), (0, 7, 110, -16, 10, 0, 5.0)]  # the second: x -16, -11, -6 (in), -1, 4, ...
    image, truth = _discs(8, scene)
    assert not (truth[:2] == 2).any() and (truth[2] == 2).sum() > 20  # it comes in on frame 2

    def run(options):
        session = StackSession(demo, image)
        frames = [f for f, _ in session.track_everything(options=options, detect_every=10)]
        assert frames == list(range(8))  # each frame once, in order, also when a frame is tracked again
        enter = int(np.bincount(session.labels[7][truth[7] == 2]).argmax())
        inside = int(np.bincount(session.labels[7][truth[7] == 1]).argmax())
        assert enter and inside and enter != inside
        return session, enter, inside

    session, enter, inside = run(OPTIONS)
    assert session.object_frames(inside) == list(range(8))
    assert session.object_frames(enter)[0] in (2, 3), session.object_frames(enter)
    assert set(range(4, 8)) <= set(session.object_frames(enter))
    assert len(session.object_ids) == 2  # nothing else was added along the border
    late, enter_late, _ = run(replace(OPTIONS, watch_edges=False))
    assert late.object_frames(enter_late) == [7]  # found only on the last frame's detection
    with pytest.raises(ValueError, match="AutomaticOptions.watch_edges must be True or False"):
        AutomaticOptions(watch_edges=1)
