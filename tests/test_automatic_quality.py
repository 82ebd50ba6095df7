"""Segment everything and track everything with the shipped demo model on
held-out synthetic data (seeds never used in training or elsewhere in the
tests: ``HELD_OUT_SEED_BASE`` + 3000 / 4000 / 5000, + 0..9 frames, + 0..2
time-lapses, + 0..1 z-stacks: about 100 cells, 3 x 20 frames and 20 nuclei,
so that a target like "1 in 20 nuclei missed" can be measured at all),
measured on the CPU.

Each measurement has two tests: a floor a little below what the shipped demo
model measures (a regression guard that always runs), and the issue's
target. The demo model's multimask outputs and IoU head had two short
segment-everything phases (training/automatic.py, 200 steps each on a CPU,
the second with the decoder's transformer), and masks over touching cells
are split at the neck (``AutomaticOptions.split_neck``, on by default), as
are tracked masks that spread over two cells (``separate_merged``);
candidates are ranked with a bonus for larger masks (``area_bonus`` 0.3,
stability cut 0.8, neck 0.9), a track over two nuclei stacked in z is cut at its
area's low (``valley_cut``) and cells entering the field are picked up on the
frame they come in on (``watch_edges``), all chosen on training seeds. Where it misses
a target the test is a strict xfail whose reason gives the measured number
(strict: when a retrained model meets the target, the xfail fails and must
be removed).
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2 import AutomaticOptions, StackSession, load_model, segment_everything
from napari_sam2.export import write_ctc
from napari_sam2.synthetic import TimelapseParams, ZStackParams, make_timelapse, make_zstack
from napari_sam2.training.automatic_quality import (
    SEGMENT_OFFSET,
    TIMELAPSE_OFFSET,
    ZSTACK_OFFSET,
    dice_3d,
    match,
)
from napari_sam2.training.data import HELD_OUT_SEED_BASE

# a 16 x 16 grid: cells of the synthetic data (radius ~14 px at 256 px) get
# a few prompts each; tuned on training-like seeds, as fine as 32 x 32 there
OPTIONS = AutomaticOptions(points_per_side=16)
SEGMENT_FRAMES, TIMELAPSES, ZSTACKS = 10, 3, 2
ZSTACK_FLOOR, ZSTACK_MISSED_CEILING = 0.82, 0.1  # shipped demo model: Dice 0.869, 0 of 20 missed


@pytest.fixture(scope="module")
def demo():
    return load_model("demo", device="cpu")


@pytest.fixture(scope="module")
def segmentation(demo):
    out = []
    for seed in range(SEGMENT_FRAMES):
        stack = make_timelapse(TimelapseParams(n_frames=1), seed=HELD_OUT_SEED_BASE + SEGMENT_OFFSET + seed)
        result = segment_everything(demo, stack.image[0], options=OPTIONS)
        out.append(match(result.labels, stack.labels[0], 0.5))
    return float(np.mean([m.f1 for m in out])), float(np.mean([m.mean_iou for m in out]))


@pytest.fixture(scope="module")
def tracking(demo, tmp_path_factory):
    from ctc_metrics import evaluate_sequence

    out = []
    for seed in range(TIMELAPSES):
        stack = make_timelapse(TimelapseParams(n_frames=20), seed=HELD_OUT_SEED_BASE + TIMELAPSE_OFFSET + seed)
        assert any(stack.parents.values()) or len(np.unique(stack.labels)) > len(np.unique(stack.labels[0]))
        session = StackSession(demo, stack.image)
        frames = [f for f, _ in session.track_everything(options=OPTIONS, detect_every=5)]
        assert frames == list(range(20))
        root = tmp_path_factory.mktemp("ctc")
        write_ctc(stack.labels, root / "gt", parents=stack.parents, ground_truth=True)
        write_ctc(session, root / "res")
        scores = evaluate_sequence(str(root / "res"), str(root / "gt"), metrics=["DET", "TRA"], threads=1)
        out.append((float(scores["DET"]), float(scores["TRA"])))
    det, tra = np.mean(out, axis=0)
    return float(det), float(tra)


@pytest.fixture(scope="module")
def zstack(demo):
    scores, missed = [], 0
    for seed in range(ZSTACKS):
        stack = make_zstack(ZStackParams(n_slices=20), seed=HELD_OUT_SEED_BASE + ZSTACK_OFFSET + seed)
        session = StackSession(demo, stack.image)
        list(session.track_everything(options=OPTIONS, detect_every=5))
        dice, lost = dice_3d(session.labels, stack.labels)
        scores += dice
        missed += lost
    return float(np.mean(scores)), missed / len(scores)


def test_segment_everything_finds_cells(segmentation):
    f1, iou = segmentation
    assert f1 >= 0.88 and iou >= 0.83, segmentation  # shipped demo model: F1 0.930, IoU 0.874


def test_segment_everything_meets_target(segmentation):
    f1, iou = segmentation
    assert f1 >= 0.90 and iou >= 0.80, segmentation


def test_track_everything_tracks_cells(tracking):
    det, tra = tracking
    assert det >= 0.89 and tra >= 0.87, tracking  # shipped demo model: DET 0.913, TRA 0.892 (mean of 3)


def test_track_everything_meets_target(tracking):
    det, tra = tracking
    assert det >= 0.90 and tra >= 0.85, tracking


def test_zstack_nuclei_found(zstack):
    dice, missed = zstack
    assert dice >= ZSTACK_FLOOR and missed <= ZSTACK_MISSED_CEILING, zstack


def test_zstack_meets_target(zstack):
    dice, missed = zstack
    assert dice >= 0.80 and missed <= 1 / 20, zstack
