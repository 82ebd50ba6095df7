"""Divisions found from SAM's own outputs (the shipped demo model) on a
drawn scene: a round cell that becomes two cells side by side which move
apart, next to a cell that does not divide."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_sam2 import AutomaticOptions, DivisionOptions, StackSession, load_model
from napari_sam2.engine.divisions import DivisionWatcher

SIZE, SPLIT, FRAMES = 160, 4, 8


@pytest.fixture(scope="module")
def demo():
    return load_model("demo", device="cpu")


def _scene(split: int = SPLIT, n: int = FRAMES, seed: int = 0):
    """``n`` frames and their true labels: a disc (label 1) that divides on
    frame ``split`` into two smaller discs (labels 3 and 4) drifting apart,
    and a disc (label 2) that stays."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    image = np.zeros((n, SIZE, SIZE), np.uint16)
    truth = np.zeros((n, SIZE, SIZE), np.int32)
    for t in range(n):
        if t < split:
            discs = [(1, 64, 64, 13), (2, 30, 100, 10)]
        else:
            d = 8.5 + 2.0 * (t - split)
            discs = [(3, 64, 64 - d, 9.5), (4, 64, 64 + d, 9.5), (2, 30, 100, 10)]
        signal = np.zeros((SIZE, SIZE))
        for label, cy, cx, r in discs:
            d2 = (yy - cy) ** 2 + (xx - cx) ** 2
            inside = d2 <= r * r
            signal[inside] = 1000 + 800 * np.exp(-d2[inside] / (2 * (0.5 * r) ** 2))
            truth[t][inside] = label
        image[t] = (200 + ndimage.gaussian_filter(signal, 1.5) + 40 * rng.random((SIZE, SIZE))).astype(np.uint16)
    return image, truth


def _mother_session(demo):
    """A session on a 6-frame scene whose object 1 is the mother, prompted
    with her mask on frame 0; and the scene's true labels."""
    image, truth = _scene(n=6)
    session = StackSession(demo, image)
    session.add_mask(1, 0, truth[0] == 1)
    return session, truth


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def _split_after(session, options, mother, split, halves):
    """What a watcher confirms on frame 3 of object 1 that it saw as
    ``mother`` on frames 0 and 1 and as ``split`` on frames 2 and 3 (each a
    ``(area, kind, elongation)`` per frame; ``halves`` the split's masks)."""
    from napari_sam2.engine.divisions import _Seen

    watcher = DivisionWatcher(session, options)
    watcher._seen[1] = {f: _Seen(a, k, None if k == "one" else halves, e)
                        for f, (a, k, e) in enumerate([*mother, *split])}
    return watcher._confirmed(1, 3)


def _check_division(session, truth, mother):
    daughters = session.lineage.daughters(mother)
    assert len(daughters) == 2 and session.lineage.links() == {d: mother for d in daughters}
    records = {r.id: r for r in session.lineage_records()}
    assert records[mother].last_frame == SPLIT - 1
    assert all(records[d].first_frame == SPLIT for d in daughters)
    assert _iou(session.labels[SPLIT - 1] == mother, truth[SPLIT - 1] == 1) > 0.5
    last = FRAMES - 1
    matched = sorted(max(daughters, key=lambda d: _iou(session.labels[last] == d, truth[last] == k)) for k in (3, 4))
    assert matched == sorted(daughters)  # one daughter per true daughter
    for k in (3, 4):
        assert max(_iou(session.labels[last] == d, truth[last] == k) for d in daughters) > 0.5


def test_a_division_is_found_after_one_click_per_cell(demo):
    image, truth = _scene()
    session = StackSession(demo, image)
    session.add_points(1, 0, [(64, 64)], [1])
    session.add_points(2, 0, [(30, 100)], [1])
    calls = []
    seen = list(session.propagate_divisions(progress=lambda d, t: calls.append((d, t))))
    assert [f for f, _ in seen] == list(range(FRAMES))  # each frame once, in order
    assert calls[-1] == (FRAMES, FRAMES)
    for f, labels in seen:
        assert np.array_equal(labels, session.labels[f])
    _check_division(session, truth, mother=1)
    assert session.lineage.mother(2) == 0 and session.lineage.daughters(2) == []


def test_track_everything_finds_the_division(demo):
    image, truth = _scene()
    session = StackSession(demo, image)
    # one mask per point: with the three multimask outputs segment-everything
    # finds a third object on these drawn discs on frame 0 (ids 1-3 on every
    # frame, no division found); this test is about the division rules
    options = AutomaticOptions(points_per_side=12, multimask_output=False)
    frames = [f for f, _ in session.track_everything(options=options, detect_every=3,
                                                     divisions=DivisionOptions())]
    assert frames == list(range(FRAMES))
    mothers = set(session.lineage.links().values())
    assert len(mothers) == 1
    _check_division(session, truth, mother=mothers.pop())


def test_no_division_is_invented_when_no_cell_divides(demo):
    image, _ = _scene(split=FRAMES)  # the disc stays one
    session = StackSession(demo, image)
    session.add_points(1, 0, [(64, 64)], [1])
    session.add_points(2, 0, [(30, 100)], [1])
    list(session.propagate_divisions())
    assert session.lineage.links() == {} and session.object_ids == [1, 2]


def test_the_watcher_reads_a_mask_that_splits_into_two_components(demo):
    """Hand-built labels: object 1 is one disc on frames 0-3, then two
    components (the true daughters); the watcher dates the division to the
    first frame of the split once it persisted."""
    image, truth = _scene()
    session = StackSession(demo, image)
    session.add_mask(1, 0, truth[0] == 1)  # makes 1 an object of the session
    hand = np.where(truth > 2, 1, truth).astype(np.int32)  # both daughters still labelled 1
    hand[hand == 2] = 0
    options = DivisionOptions(persist=2, max_delay=2)
    watcher = DivisionWatcher(session, options)
    found = []
    for t in range(FRAMES):
        session.labels[t] = hand[t]
        event = watcher.observe(t, hand[t])
        if event is not None:
            found.append((t, event))
    assert len(found) == 1
    t, event = found[0]
    assert (t, event.mother, event.frame, event.rule) == (SPLIT + 1, 1, SPLIT, "split")
    masks = sorted(event.masks, key=lambda m: np.argwhere(m)[:, 1].mean())
    assert _iou(masks[0], truth[SPLIT] == 3) > 0.8 and _iou(masks[1], truth[SPLIT] == 4) > 0.8
    assert watcher.found == [event]
    watcher.rewind(SPLIT)  # read again from the split: found again
    for t in range(SPLIT, SPLIT + 2):
        event = watcher.observe(t, hand[t])
    assert event is None  # reported once: the same division is not given twice


def test_a_mask_at_a_waist_is_two_cells_when_sams_decodes_do_not_separate():
    """The split rule's fallback: two decodes that both give the whole mask
    (SAM did not separate the cells) still give two cells when the mask
    narrows to a neck; one round cell, or the fallback turned off, do not."""
    from napari_sam2.engine.divisions import _two_cells

    yy, xx = np.mgrid[0:64, 0:96]
    left = (yy - 32) ** 2 + (xx - 38) ** 2 <= 10**2
    right = (yy - 32) ** 2 + (xx - 55) ** 2 <= 10**2
    pair = left | right
    same = np.stack([np.where(pair, 5.0, -5.0)] * 2).astype(np.float32)  # both decodes: the whole mask
    scores = np.array([3.0, 3.0], np.float32)
    two = _two_cells(pair, same, scores, DivisionOptions())
    assert two is not None and not (two[0] & two[1]).any() and np.array_equal(two[0] | two[1], pair)
    assert sorted(max(_iou(m, c) for m in two) for c in (left, right))[0] > 0.85
    assert _two_cells(pair, same, scores, DivisionOptions(split_neck=None)) is None  # SAM's decodes only
    disc = (yy - 32) ** 2 + (xx - 48) ** 2 <= 13**2
    whole = np.stack([np.where(disc, 5.0, -5.0)] * 2).astype(np.float32)
    assert _two_cells(disc, whole, scores, DivisionOptions()) is None
    with pytest.raises(ValueError, match="split_neck must be a number in \\(0, 1\\] or None"):
        DivisionOptions(split_neck=0)


def test_bad_options_are_named(demo):
    with pytest.raises(ValueError, match="persist must be an integer >= 1"):
        DivisionOptions(persist=0)
    with pytest.raises(ValueError, match="max_delay \\(1\\) must be at least persist \\(2\\)"):
        DivisionOptions(max_delay=1)
    with pytest.raises(ValueError, match="daughter_share must be \\(low, high\\)"):
        DivisionOptions(daughter_share=(0.8, 0.2))
    with pytest.raises(ValueError, match="max_overlap must be a fraction"):
        DivisionOptions(max_overlap=1.5)
    image, _ = _scene(n=2)
    session = StackSession(demo, image)
    with pytest.raises(TypeError, match="divisions must be a DivisionOptions"):
        DivisionWatcher(session, {"persist": 2})
    session.add_points(1, 0, [(64, 64)], [1])
    with pytest.raises(ValueError, match="divisions are found going forward"):
        session.track_everything("backward", divisions=DivisionOptions())
    with pytest.raises(ValueError, match="clicks must be one or more"):
        session.decode_clicks(0, [])


def test_two_cells_side_by_side_count_when_the_round_mother_stretched(demo):
    """The split rule's stretch clause: a round mother (elongation 1.0)
    whose mask is two cells side by side (no waist, no growth) on the
    frames after counts as divided when the mask stretched by
    ``elongation_rise``; not when it stayed round-ish, nor with the clause off."""
    session, truth = _mother_session(demo)
    halves = (truth[SPLIT] == 3, truth[SPLIT] == 4)

    def confirmed(options, elongation):
        return _split_after(session, options, [(400, "one", 1.0), (400, "one", 1.02)],
                            [(410, "pair", elongation), (412, "pair", elongation)], halves)

    event = confirmed(DivisionOptions(), 1.9)
    assert event is not None and (event.mother, event.frame, event.rule) == (1, 2, "split")
    assert event.masks is halves
    assert confirmed(DivisionOptions(), 1.4) is None  # 1.4 < 1.4 x 1.02: not stretched enough
    assert confirmed(DivisionOptions(elongation_rise=None), 1.9) is None
    assert confirmed(DivisionOptions(elongation_rise=1.2), 1.4) is not None
    assert confirmed(DivisionOptions(elongation_rise=1.2), 1.3) is None  # as round as a mother: her frames go on
    with pytest.raises(ValueError, match="elongation_rise must be a number >= 0"):
        DivisionOptions(elongation_rise=-1)


def test_a_split_seen_on_the_last_frame_of_a_pass_counts_there(demo):
    """No frame follows the last one of a pass to confirm a split: seen on
    that frame it counts (``final=True``); the same frame read as one that
    others follow waits for them."""
    image, truth = _scene()
    last = FRAMES - 1
    session = StackSession(demo, image)
    session.add_mask(1, 0, truth[0] == 1)
    hand = np.where(truth > 2, 1, truth).astype(np.int32)  # both daughters still labelled 1
    hand[hand == 2] = 0
    hand[:last] = np.where(truth[SPLIT - 1] == 1, 1, 0)  # one cell until the last frame
    for t in range(FRAMES):
        session.labels[t] = hand[t]

    def read(flag_last):
        watcher = DivisionWatcher(session, DivisionOptions())
        return [e for t in range(FRAMES) if (e := watcher.observe(t, hand[t], final=flag_last and t == last))]

    found = read(True)
    assert [(e.mother, e.frame, e.rule) for e in found] == [(1, last, "split")]
    masks = sorted(found[0].masks, key=lambda m: np.argwhere(m)[:, 1].mean())
    assert _iou(masks[0], truth[last] == 3) > 0.8 and _iou(masks[1], truth[last] == 4) > 0.8
    assert read(False) == []


def test_a_mask_that_stretched_in_place_is_cut_in_two(demo):
    """``stretch_split``: where SAM's decodes give one cell and no neck
    shows, a mask that kept its area and stretched since its last round
    frame is cut across its long axis (kind "cut"), and two such frames are
    a division dated to the first; a mask that grew, one that stretched
    less, or the rule off, are not cut."""
    from napari_sam2.engine.divisions import _Seen, _split_halves

    session, truth = _mother_session(demo)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    ellipse = ((yy - 64) / 9.0) ** 2 + ((xx - 64) / 15.0) ** 2 <= 1  # 424 px, elongation 1.67
    area = int(ellipse.sum())
    halves = _split_halves(ellipse, DivisionOptions(), 1.67)
    assert halves is not None and abs(int(halves[0].sum()) - int(halves[1].sum())) <= 0.1 * area
    assert np.array_equal(halves[0] | halves[1], ellipse) and not (halves[0] & halves[1]).any()

    def watcher(options, mother_area=area, mother_elongation=1.05):
        w = DivisionWatcher(session, options)
        w._seen[1] = {0: _Seen(mother_area, "one", None, 1.0), 1: _Seen(mother_area, "one", None, mother_elongation),
                      2: _Seen(area, "one", None, 1.67)}
        return w

    assert watcher(DivisionOptions())._stretched(1, 2, halves)
    assert not watcher(DivisionOptions(), mother_area=area // 2)._stretched(1, 2, halves)  # it grew
    assert not watcher(DivisionOptions(), mother_elongation=1.4)._stretched(1, 2, halves)  # 1.67 < 1.3 x 1.4
    assert not watcher(DivisionOptions(stretch_split=None))._stretched(1, 2, halves)
    w = watcher(DivisionOptions())
    w._seen[1][2] = _Seen(area, "cut", halves, 1.67)
    w._seen[1][3] = _Seen(area, "cut", halves, 1.7)
    event = w._confirmed(1, 3)
    assert event is not None and (event.mother, event.frame, event.rule) == (1, 2, "split")
    assert event.masks is halves
    with pytest.raises(ValueError, match="stretch_split must be a number >= 1 or None"):
        DivisionOptions(stretch_split=0.5)


def test_a_split_is_dated_back_to_the_frame_its_mask_grew(demo):
    """``back_date_growth``: a split first seen on the frame after one where
    the one-cell mask grew (the daughters had begun to spread while SAM still
    gave one mask) is dated to that frame, its mask shared between the
    daughters seen next; without that growth, or with the rule off, the
    split's first frame stays the division's. The pass lags a frame more."""
    from napari_sam2.engine.divisions import _Seen

    session, truth = _mother_session(demo)
    pressed = (truth[SPLIT] == 3) | (truth[SPLIT] == 4)  # frame SPLIT - 1 already holds both, as one mask
    session.labels[SPLIT - 1] = pressed.astype(np.int32)
    later = (truth[SPLIT + 1] == 3, truth[SPLIT + 1] == 4)
    mother = int(pressed.sum() / 1.15)  # the mask grew by 15% on frame SPLIT - 1

    def confirmed(options, area):
        watcher = DivisionWatcher(session, options)
        watcher._seen[1] = {f: _Seen(mother, "one", None, 1.02) for f in range(SPLIT - 1)}
        watcher._seen[1][SPLIT - 1] = _Seen(area, "one", None, 1.2)
        for f in (SPLIT, SPLIT + 1):
            watcher._seen[1][f] = _Seen(int(pressed.sum()), "two", later, 2.0)
        return watcher._confirmed(1, SPLIT + 1)

    event = confirmed(DivisionOptions(), int(pressed.sum()))
    assert event is not None and (event.mother, event.frame, event.rule) == (1, SPLIT - 1, "split")
    first, second = sorted(event.masks, key=lambda m: np.argwhere(m)[:, 1].mean())
    assert not (first & second).any() and np.array_equal(first | second, pressed)
    assert _iou(first, truth[SPLIT] == 3) > 0.8 and _iou(second, truth[SPLIT] == 4) > 0.8
    assert confirmed(DivisionOptions(), mother).frame == SPLIT  # it did not grow: dated where the split shows
    assert confirmed(DivisionOptions(back_date_growth=None), int(pressed.sum())).frame == SPLIT
    assert DivisionWatcher(session, DivisionOptions()).lag == 3
    assert DivisionWatcher(session, DivisionOptions(back_date_growth=None)).lag == 2
    with pytest.raises(ValueError, match="back_date_growth must be a number >= 1 or None"):
        DivisionOptions(back_date_growth=0.9)


def test_a_round_mask_cut_side_by_side_counts_as_a_mothers_frame(demo):
    """A mother's frames (``min_mother_frames``) include one where SAM's
    decodes cut a round mask in two side by side (kind "pair" no more
    elongated than ``mother_elongation``): a round cell cut across; an
    elongated "pair" may be two cells and does not count. A mother seen only
    so cut (no one-cell frame) divides too, after her last such frame."""
    session, truth = _mother_session(demo)
    halves = (truth[SPLIT] == 3, truth[SPLIT] == 4)

    def confirmed(first_elongation):
        return _split_after(session, DivisionOptions(), [(400, "pair", first_elongation), (400, "one", 1.05)],
                            [(400, "two", 1.9), (400, "two", 1.9)], halves)

    event = confirmed(1.2)
    assert event is not None and (event.frame, event.rule) == (2, "split")
    assert confirmed(1.6) is None  # one mother frame only: the mask may have held two cells from the start

    # a large round cell that SAM's decodes cut side by side on every frame before it divides
    event = _split_after(session, DivisionOptions(), [(400, "pair", 1.2), (400, "pair", 1.25)],
                         [(400, "two", 1.9), (400, "two", 1.9)], halves)
    assert event is not None and (event.mother, event.frame, event.rule) == (1, 2, "split")


def test_a_split_counts_only_when_the_mask_stretched_from_its_round_mother(demo):
    """``split_rise``: two daughters side by side are longer than the round
    mother they came from, so a split whose first frame is no more elongated
    than ``split_rise`` times the mother's last frame is two cells that
    touched all along (or a cell cut across), not a division, even at a
    waist; more stretched, or with the rule off, it counts."""
    session, truth = _mother_session(demo)
    halves = (truth[SPLIT] == 3, truth[SPLIT] == 4)

    def confirmed(options, elongation):
        return _split_after(session, options, [(400, "one", 1.3), (400, "one", 1.3)],
                            [(410, "two", elongation), (412, "two", elongation)], halves)

    assert confirmed(DivisionOptions(), 1.4) is None  # 1.4 < 1.2 x 1.3
    assert confirmed(DivisionOptions(split_rise=None), 1.4) is not None
    event = confirmed(DivisionOptions(), 1.7)
    assert event is not None and (event.mother, event.frame, event.rule) == (1, 2, "split")
    with pytest.raises(ValueError, match="split_rise must be a number >= 1 or None"):
        DivisionOptions(split_rise=0.8)
