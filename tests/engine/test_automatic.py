"""Segment-everything's parts on their own (NMS, boxes, stability,
small-region removal, composition, options) and the public calls on a
random-weight model; equality with Meta's generator is in
tests/reference/test_automatic_equality.py."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from napari_sam2 import AutomaticOptions, AutomaticResult, StackSession, segment_everything
from napari_sam2.engine.automatic import (
    MaskCandidates,
    box_nms,
    compose_candidates,
    mask_boxes,
    point_grid,
    remove_small_regions,
    stability_scores,
)

from .conftest import blobs


def _brute_nms(boxes, scores, threshold):
    def iou(a, b):
        iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih
        return iw * ih / union
    kept = []
    for i in sorted(range(len(boxes)), key=lambda i: -scores[i]):
        if all(iou(boxes[i], boxes[k]) <= threshold for k in kept):
            kept.append(i)
    return kept


@pytest.mark.parametrize("seed,threshold", list(itertools.product(range(3), (0.2, 0.4, 0.6))))
def test_box_nms_equals_brute_force(seed, threshold):
    gen = torch.Generator().manual_seed(seed)
    xy = torch.randint(0, 30, (60, 2), generator=gen).float()
    boxes = torch.cat([xy, xy + torch.randint(5, 30, (60, 2), generator=gen).float()], dim=1)
    scores = torch.rand(60, generator=gen)
    kept = box_nms(boxes, scores, threshold).tolist()
    assert kept == _brute_nms(boxes.tolist(), scores.tolist(), threshold)
    assert 1 < len(kept) < 60


def test_boxes_stability_and_grid():
    masks = torch.zeros(3, 6, 8, dtype=torch.bool)
    masks[0, 1:3, 2:5] = True
    masks[1, 5, 7] = True
    assert mask_boxes(masks).tolist() == [[2, 1, 4, 2], [7, 5, 7, 5], [0, 0, 0, 0]]
    logits = torch.tensor([[[3.0, 0.5, -0.5, -3.0]]])  # > 1: 1 pixel, > -1: 3 pixels
    assert stability_scores(logits, 0.0, 1.0).tolist() == pytest.approx([1 / 3])
    grid = point_grid(2)
    assert grid.tolist() == [[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]]


def _candidates(masks, ious, stabilities=None):
    masks = [np.asarray(m, dtype=bool) for m in masks]
    boxes = mask_boxes(torch.from_numpy(np.stack(masks))).numpy()
    return MaskCandidates(
        boxes=boxes,
        patches=[m[y0 : y1 + 1, x0 : x1 + 1] for m, (x0, y0, x1, y1) in zip(masks, boxes)],
        predicted_iou=np.array(ious, np.float32),
        stability=np.array(stabilities or [0.9] * len(masks), np.float32),
        points=np.array([[float(b[0]), float(b[1])] for b in boxes], np.float32),
        crop_boxes=np.zeros((len(masks), 4), np.int64),
        size=masks[0].shape,
    )


def test_small_holes_filled_and_islands_dropped():
    mask = np.zeros((30, 30), bool)
    mask[5:20, 5:20] = True
    mask[10:12, 10:12] = False  # a 4-pixel hole
    mask[25:27, 25:27] = True  # a 4-pixel island
    big = np.zeros((30, 30), bool)
    big[0:12, 18:30] = True
    big[3:9, 21:27] = False  # a 36-pixel hole stays
    out = remove_small_regions(_candidates([mask, big], [0.9, 0.8]), 10, 0.7)
    assert len(out.boxes) == 2
    # NMS again, unchanged masks first (as Meta's postprocessing ranks them)
    assert np.array_equal(out.mask(0), big)
    fixed = out.mask(1)
    assert fixed[10:12, 10:12].all() and not fixed[25:, 25:].any()
    assert out.boxes[1].tolist() == [5, 5, 19, 19]


def test_composition_better_mask_wins_and_duplicates_go():
    def square(y, x, h, w):
        m = np.zeros((30, 30), bool)
        m[y : y + h, x : x + w] = True
        return m

    a = square(2, 2, 8, 8)  # 64 px
    b = square(6, 6, 8, 8)  # 64 px, 16 of them shared with a
    part = square(2, 2, 8, 3)  # inside a
    huge = square(15, 15, 12, 12)  # 144 px
    tiny = square(28, 0, 2, 2)
    options = AutomaticOptions(min_object_area=5, max_object_area=100, duplicate_overlap=0.5)
    # a first, then b on its 48 free pixels; part is a duplicate of a
    result = compose_candidates(_candidates([b, a, part, huge, tiny], [0.8, 0.9, 0.7, 0.99, 0.99]), options)
    assert isinstance(result, AutomaticResult)
    assert [(o.id, o.area, o.bbox) for o in result.objects] == [(1, 64, (2, 2, 10, 10)), (2, 48, (6, 6, 14, 14))]
    assert result.objects[0].predicted_iou == pytest.approx(0.9)
    assert (result.labels[2:10, 2:10] == 1).all() and (result.labels[10:14, 10:14] == 2).all()
    assert set(np.unique(result.labels).tolist()) == {0, 1, 2}  # huge, tiny and part are gone
    # the other ranking: b wins the shared pixels, and a keeps 48
    swapped = compose_candidates(_candidates([b, a], [0.9, 0.8]), options)
    assert (swapped.labels[6:10, 6:10] == 2).all() and [o.area for o in swapped.objects] == [48, 64]
    # part is kept when duplicates may overlap fully (ranked by predicted IoU alone)
    loose = compose_candidates(_candidates([a, part], [0.7, 0.9]),
                               AutomaticOptions(min_object_area=1, duplicate_overlap=1.0, area_bonus=0.0))
    assert [o.area for o in loose.objects] == [24, 40] or [o.area for o in loose.objects] == [40, 24]


def test_area_bonus_prefers_the_whole_of_nested_masks():
    """A part of an object with a slightly higher predicted IoU than the
    whole wins under Meta's ranking (area_bonus 0) and loses to the whole
    with a bonus of 0.3 (the default); ranks are predicted IoU + bonus x ln(area)."""
    from napari_sam2.engine.automatic import rank_scores

    whole = np.zeros((30, 30), bool)
    whole[4:20, 4:20] = True  # 256 px
    half = whole.copy()
    half[12:20] = False  # 128 px, inside it
    cands = _candidates([half, whole], [0.62, 0.58])
    meta = compose_candidates(cands, AutomaticOptions(min_object_area=1, area_bonus=0.0))
    assert [o.area for o in meta.objects] == [128, 128]  # the half first, then what is left of the whole
    ours = compose_candidates(cands, AutomaticOptions(min_object_area=1))
    assert AutomaticOptions().area_bonus == 0.3
    assert [(o.area, o.predicted_iou) for o in ours.objects] == [(256, pytest.approx(0.58))]
    assert np.allclose(rank_scores(cands, 0.3), [0.62 + 0.3 * np.log(128), 0.58 + 0.3 * np.log(256)])
    assert rank_scores(cands, 0.0) is cands.predicted_iou


@pytest.mark.parametrize("bad", [dict(points_per_side=0), dict(pred_iou_thresh=1.5), dict(crop_layers=-1),
                                 dict(min_object_area=10, max_object_area=5), dict(multimask_output="yes"),
                                 dict(lost_after=0), dict(stability_score_offset=float("nan")),
                                 dict(area_bonus=-0.1), dict(area_bonus=True)])
def test_options_are_checked(bad):
    with pytest.raises(ValueError, match="AutomaticOptions"):
        AutomaticOptions(**bad)


FAST = AutomaticOptions(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0,
                        min_object_area=1, max_object_area=None)


def test_segment_everything_on_any_dtype(model):
    frame = blobs(1, 48, 64)[0]
    calls = []
    result = segment_everything(model, frame, options=FAST, progress=lambda d, t: calls.append((d, t)))
    assert result.labels.shape == (48, 64) and result.labels.dtype == np.int32
    assert calls[-1] == (1, 1)
    assert [o.id for o in result.objects] == list(range(1, len(result.objects) + 1))
    assert set(np.unique(result.labels).tolist()) - {0} == {o.id for o in result.objects}
    floats = segment_everything(model, frame.astype(np.float32) * 3.5 + 7, options=FAST)
    assert np.array_equal(floats.labels, result.labels)  # "auto" maps both ranges alike


def test_segment_everything_bad_input(model):
    with pytest.raises(ValueError, match="one 2D image"):
        segment_everything(model, blobs(3))
    with pytest.raises(TypeError, match="model"):
        segment_everything("model", blobs(1)[0])
    with pytest.raises(TypeError, match="AutomaticOptions"):
        segment_everything(model, blobs(1)[0], options={"points_per_side": 4})


def test_session_segment_everything_reuses_cached_features(model, count_calls):
    encodes = count_calls(model, "encode_image")
    session = StackSession(model, blobs(3, 48, 64))
    session.prepare_frame(1)
    assert encodes.count == 1
    result = session.segment_everything(1, FAST)
    assert encodes.count == 1  # no crops: the cached features only
    assert result.labels.shape == (48, 64)
    assert session.object_ids == [] and not session.labels.any()
    crops = session.segment_everything(1, AutomaticOptions(points_per_side=4, crop_layers=1))
    assert encodes.count == 1 + 4 and crops.labels.shape == (48, 64)


def test_segment_everything_where_prompts_only_the_grid_points_on_it(model):
    session = StackSession(model, blobs(2, 48, 64))
    full = session.segment_everything(0, FAST)
    assert full.objects
    everywhere = session.segment_everything(0, FAST, where=np.ones((48, 64), bool))
    assert np.array_equal(everywhere.labels, full.labels)
    left = np.zeros((48, 64), bool)
    left[:, :32] = True  # the 4 x 4 grid's two left columns (x = 8, 24)
    part = session.segment_everything(0, FAST, where=left)
    assert part.objects and all(o.point[1] < 32 for o in part.objects)
    assert not session.segment_everything(0, FAST, where=np.zeros((48, 64), bool)).objects
    with pytest.raises(ValueError, match="where must be a 48 x 64 bool image"):
        session.segment_everything(0, FAST, where=np.ones((48, 63), bool))
    # fewer prompts, fewer batches: 8 of the 16 points, one batch of 8 instead of two
    from napari_sam2.engine.automatic import generate_masks

    unit = session.frames.normalized(0)
    for layers, whole in ((0, 2), (1, 2 + 4 * 2)):  # with a crop layer, each crop prompts its points on ``where``
        options = AutomaticOptions(points_per_side=4, points_per_batch=8, crop_layers=layers)
        calls, some = [], []
        generate_masks(model, unit, options=options, progress=lambda d, t: calls.append((d, t)))
        generate_masks(model, unit, options=options, where=left, progress=lambda d, t: some.append((d, t)))
        assert calls[-1] == (whole, whole)
        assert some[-1][0] == some[-1][1] < whole and (layers or some[-1] == (1, 1))


def test_segment_everything_may_run_between_the_frames_of_a_propagation(model):
    session = StackSession(model, blobs(3, 48, 64))
    session.add_points(1, 0, [[24, 20]], [1])
    before = session.segment_everything(1, FAST)
    run = session.propagate()
    next(run)
    during = session.segment_everything(1, FAST)  # reads only: allowed while frames are being tracked
    rest = [f for f, _ in run]
    assert rest == [1, 2]
    assert np.array_equal(during.labels, before.labels)
    assert session.object_ids == [1]
