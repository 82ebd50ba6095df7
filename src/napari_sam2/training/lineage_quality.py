"""Quality of lineages on synthetic time-lapses: divisions found, missed
and invented, and the Cell Tracking Challenge's TRA and branching
correctness BC(i) (``py-ctcmetrics``) of a result against the ground truth
of ``Synthetic.labels`` and ``Synthetic.parents``.

Seeds: held-out measurements use ``HELD_OUT_LINEAGE_SEEDS``
(``HELD_OUT_SEED_BASE + LINEAGE_OFFSET`` + 0..3); thresholds are tuned on
seeds below ``HELD_OUT_SEED_BASE``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, NamedTuple

import numpy as np
from scipy import ndimage

from ..engine.lineage import label_presence
from .data import HELD_OUT_SEED_BASE

LINEAGE_OFFSET = 6000
HELD_OUT_LINEAGE_SEEDS = tuple(HELD_OUT_SEED_BASE + LINEAGE_OFFSET + k for k in range(4))


def click_each_cell(session, labels) -> None:
    """One positive click on frame 0 of ``session`` per object of ``labels``
    (``Y x X``, frame 0's true labels), at its deepest point, with its id."""
    labels = np.asarray(labels)
    for obj_id in np.unique(labels)[1:]:
        depth = ndimage.distance_transform_edt(labels == obj_id)
        session.add_points(int(obj_id), 0, [np.unravel_index(np.argmax(depth), depth.shape)], [1])


def pooled_branching(tp: int, fp: int, fn: int) -> float:
    """BC(i) of divisions counted over several sequences as if they were
    one: 2 tp / (2 tp + fp + fn) of py-ctcmetrics' ``tp_div``/``fp_div``/``fn_div``."""
    return 2 * tp / max(1, 2 * tp + fp + fn)


class DivisionEvent(NamedTuple):
    """A mother that ends on ``frame - 1`` and the daughters that begin after her."""

    mother: int
    frame: int  # the first daughter's first frame
    daughters: tuple[int, ...]


class DivisionCount(NamedTuple):
    """True divisions matched by a found one (``found``), not matched
    (``missed``), and found ones matching none (``invented``);
    ``pairs``: (true mother, found mother) of each match."""

    found: int
    missed: int
    invented: int
    pairs: list


def division_events(labels, mothers: Mapping[int, int]) -> list[DivisionEvent]:
    """The divisions of a label stack with mothers ``{daughter: mother}``: a
    mother with two or more daughters that have pixels."""
    presence = label_presence(labels)
    children: dict[int, list[int]] = {}
    for daughter, mother in mothers.items():
        if mother and daughter in presence:
            children.setdefault(int(mother), []).append(int(daughter))
    out = []
    for mother, daughters in sorted(children.items()):
        if len(daughters) >= 2:
            first = min(presence[d][0] for d in daughters)
            out.append(DivisionEvent(mother, first, tuple(sorted(daughters))))
    return out


def match_divisions(result, result_mothers: Mapping[int, int], truth, true_mothers: Mapping[int, int], *,
                    tolerance: int = 2, min_iou: float = 0.3) -> DivisionCount:
    """Match found divisions to true ones, one to one: the division frames
    at most ``tolerance`` frames apart and, on the later of the two, the
    found daughters together overlapping the true daughters together with
    an IoU of at least ``min_iou``; closest in time first."""
    found, true = division_events(result, result_mothers), division_events(truth, true_mothers)
    candidates = []
    for i, t in enumerate(true):
        for j, f in enumerate(found):
            dt = abs(t.frame - f.frame)
            if dt > tolerance:
                continue
            frame = max(t.frame, f.frame)
            a = np.isin(np.asarray(truth[frame]), t.daughters)
            b = np.isin(np.asarray(result[frame]), f.daughters)
            union = (a | b).sum()
            iou = (a & b).sum() / union if union else 0.0
            if iou >= min_iou:
                candidates.append((dt, -iou, i, j))
    used_t, used_f, pairs = set(), set(), []
    for _dt, _iou, i, j in sorted(candidates):
        if i not in used_t and j not in used_f:
            used_t.add(i)
            used_f.add(j)
            pairs.append((true[i].mother, found[j].mother))
    return DivisionCount(len(pairs), len(true) - len(pairs), len(found) - len(pairs), pairs)


def ctc_scores(result, result_mothers: Mapping[int, int], truth, true_mothers: Mapping[int, int], folder,
               *, metrics=("DET", "TRA", "BC")) -> dict:
    """py-ctcmetrics scores of ``result`` (a label stack or a session) with
    its mothers against the ground truth, through our CTC export written
    into ``folder``: a dict with e.g. "DET", "TRA", "BC(0)", "tp_div(0)"."""
    from ctc_metrics import evaluate_sequence

    from ..export import write_ctc

    root = Path(folder)
    write_ctc(truth, root / "gt", parents=dict(true_mothers), ground_truth=True)
    write_ctc(result, root / "res", parents=dict(result_mothers))
    scores = evaluate_sequence(str(root / "res"), str(root / "gt"), metrics=list(metrics), threads=1)
    return {k: float(v) for k, v in scores.items() if isinstance(v, (int, float, np.floating, np.integer))}
