"""Quality of segment-everything and track-everything on synthetic data:
instance matching (F1 at IoU 0.5, mean matched IoU) and z-stack 3D Dice.

Seeds: callers add their own offsets to ``HELD_OUT_SEED_BASE`` for held-out
measurements (3000 frames, 4000 time-lapses, 5000 z-stacks; the click,
tracking and z-stack tests use 0, 1000 and 2000) and tune on seeds below it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

SEGMENT_OFFSET, TIMELAPSE_OFFSET, ZSTACK_OFFSET = 3000, 4000, 5000


class Matching(NamedTuple):
    true_positives: int
    predicted: int
    actual: int
    matched_ious: list

    @property
    def f1(self) -> float:
        total = self.predicted + self.actual
        return 2 * self.true_positives / total if total else 1.0

    @property
    def mean_iou(self) -> float:
        return float(np.mean(self.matched_ious)) if self.matched_ious else 0.0


def iou_table(pred: np.ndarray, truth: np.ndarray):
    """IoU of every (predicted id, true id) pair that overlaps: a dense
    ``P x T`` matrix with the ids of its rows and columns."""
    p_ids = np.unique(pred[pred > 0])
    t_ids = np.unique(truth[truth > 0])
    if not len(p_ids) or not len(t_ids):
        return np.zeros((len(p_ids), len(t_ids))), p_ids, t_ids
    p_index = np.searchsorted(p_ids, pred)
    t_index = np.searchsorted(t_ids, truth)
    both = (pred > 0) & (truth > 0)
    inter = np.zeros((len(p_ids), len(t_ids)))
    np.add.at(inter, (p_index[both], t_index[both]), 1)
    p_area = np.array([(pred == i).sum() for i in p_ids], dtype=float)
    t_area = np.array([(truth == i).sum() for i in t_ids], dtype=float)
    union = p_area[:, None] + t_area[None, :] - inter
    return inter / union, p_ids, t_ids


def match(pred: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> Matching:
    """Objects matched at IoU > ``threshold`` (one-to-one for thresholds >= 0.5)."""
    iou, p_ids, t_ids = iou_table(pred, truth)
    hits = iou > threshold
    ious = [float(v) for v in iou[hits]]
    return Matching(int(hits.sum()), len(p_ids), len(t_ids), ious)


def dice_3d(pred: np.ndarray, truth: np.ndarray, threshold: float = 0.5):
    """Per true object: the 3D Dice of its best predicted object (by IoU);
    returns (dice per object, missed: no predicted object above ``threshold`` IoU... or below 0.5 Dice)."""
    iou, p_ids, t_ids = iou_table(pred, truth)
    scores, missed = [], 0
    for j, t in enumerate(t_ids):
        if len(p_ids) == 0 or iou[:, j].max() <= 0:
            scores.append(0.0)
            missed += 1
            continue
        i = int(np.argmax(iou[:, j]))
        a, b = pred == p_ids[i], truth == t
        d = 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())
        scores.append(float(d))
        if iou[i, j] <= threshold:
            missed += 1
    return scores, missed
