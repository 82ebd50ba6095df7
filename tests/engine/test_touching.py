"""Masks over touching cells are split at the neck (engine/touching.py);
single cells, elongated ones included, stay whole; the composition of
segment-everything applies it unless ``split_neck=None``."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2 import AutomaticOptions
from napari_sam2.engine.automatic import MaskCandidates, compose_candidates
from napari_sam2.engine.touching import split_candidates, split_mask

SHAPE = (64, 96)


def disc(cy, cx, r, shape=SHAPE):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2


def ellipse(cy, cx, ry, rx, shape=SHAPE):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


def as_candidates(masks, scores=None):
    boxes, patches = [], []
    for m in masks:
        ys, xs = np.nonzero(m)
        boxes.append([xs.min(), ys.min(), xs.max(), ys.max()])
        patches.append(m[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])
    n = len(masks)
    scores = np.full(n, 0.9, np.float32) if scores is None else np.asarray(scores, np.float32)
    return MaskCandidates(np.array(boxes, np.int64), patches, scores, np.full(n, 0.95, np.float32),
                          np.zeros((n, 2), np.float32), np.zeros((n, 4), np.int64), SHAPE)


def test_two_touching_discs_are_split_into_the_two_cells():
    a, b = disc(32, 30, 12), disc(32, 50, 12)  # centres 20 apart: a waist 2 x 6.6 px wide
    pieces = split_mask(a | b, neck=0.8)
    assert len(pieces) == 2
    assert not (pieces[0] & pieces[1]).any() and np.array_equal(pieces[0] | pieces[1], a | b)
    best = sorted(max(iou(p, c) for p in pieces) for c in (a, b))
    assert best[0] > 0.9
    # unequal sizes too
    small = disc(32, 46, 7)
    pieces = split_mask(a | small, neck=0.8)
    assert len(pieces) == 2 and max(iou(p, small) for p in pieces) > 0.8


@pytest.mark.parametrize("mask", [
    disc(32, 48, 15),
    ellipse(32, 48, 10, 22),  # elongated: one cell
    ellipse(32, 48, 14, 18) | disc(32, 64, 4),  # a small bump on a cell
], ids=["disc", "ellipse", "bump"])
def test_one_cell_stays_whole(mask):
    pieces = split_mask(mask, neck=0.8)
    assert len(pieces) == 1 and np.array_equal(pieces[0], mask)


def test_a_wide_neck_is_not_cut_and_bad_arguments_are_named():
    a, b = disc(32, 40, 12), disc(32, 52, 12)  # centres 12 apart: hardly a waist
    assert len(split_mask(a | b, neck=0.8)) == 1
    assert len(split_mask(disc(32, 30, 12) | disc(32, 50, 12), neck=0.4)) == 1  # stricter neck: whole
    with pytest.raises(ValueError, match="neck must be in"):
        split_mask(a, neck=0.0)
    with pytest.raises(ValueError, match="mask must be 2D"):
        split_mask(np.zeros((2, 3, 4), bool), neck=0.8)
    with pytest.raises(ValueError, match="split_neck must be a number in \\(0, 1\\] or None"):
        AutomaticOptions(split_neck=1.5)
    with pytest.raises(ValueError, match="split_min_share must be a number in \\[0, 1\\]"):
        AutomaticOptions(split_min_share=-0.1)


def test_split_candidates_keep_scores_and_drop_spills():
    a, b = disc(32, 30, 12), disc(32, 50, 12)
    cell, spill = disc(32, 30, 12), disc(32, 47, 6)  # a mask spilling onto a neighbour
    out = split_candidates(as_candidates([a | b, cell | spill], scores=[0.9, 0.7]), 0.8, 0.4, 12)
    masks = [out.mask(i) for i in range(len(out.boxes))]
    assert len(masks) == 3
    assert np.allclose(out.predicted_iou, [0.9, 0.9, 0.7])
    assert max(iou(m, a) for m in masks[:2]) > 0.9 and max(iou(m, b) for m in masks[:2]) > 0.9
    assert iou(masks[2], cell) > 0.9 and not (masks[2] & disc(32, 49, 3)).any()  # the spill is gone


def test_composition_splits_unless_told_not_to():
    a, b = disc(32, 30, 12), disc(32, 50, 12)
    candidates = as_candidates([a | b])
    whole = compose_candidates(candidates, AutomaticOptions(split_neck=None))
    assert whole.labels.max() == 1 and np.array_equal(whole.labels > 0, a | b)  # Meta's masks as they are
    split = compose_candidates(candidates, AutomaticOptions())
    assert len(split.objects) == 2 and np.array_equal(split.labels > 0, a | b)
    for obj in split.objects:
        part = split.labels == obj.id
        assert max(iou(part, a), iou(part, b)) > 0.9 and obj.area == part.sum()
