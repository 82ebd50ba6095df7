"""What two session options change in quality, with the shipped demo model
on held-out synthetic sequences (seeds no test or training run uses).

``rerun``: three cells clicked on frame 0 of a time-lapse and tracked
forward, then the worst-tracked of them corrected with one click on the
middle frame (positive on its largest missed part, or negative on its
largest false part) and propagated again, once with ``rerun="downstream"``
and once with ``rerun="all"``. Reported: how far the two agree on the
frames before the correction (IoU per object and frame, mean and worst)
and each mode's IoU against the truth there.

``direction_memory``: nuclei clicked in the middle slice of a z-stack and
propagated both ways with ``"shared"`` (Meta's) and ``"separate"``
memories. Reported: mean 3D Dice and nuclei lost, i.e. present on one side
of the middle slice and predicted on none of that side's slices.

One JSON line per case on stdout; progress on stderr. About 35 s per seed
and case on one core:

    python benchmarks/quality_options.py --seeds 300-307 --cases rerun
    python benchmarks/quality_options.py --seeds 300-315 --cases zstack
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch
from scipy import ndimage

from napari_sam2 import load_model
from napari_sam2.engine import SessionOptions, StackSession
from napari_sam2.synthetic import TimelapseParams, ZStackParams, make_timelapse, make_zstack
from napari_sam2.training.data import HELD_OUT_SEED_BASE
from napari_sam2.training.evaluate import centre_click, largest_lasting_clicks


def iou(a, b):
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def dice(a, b):
    total = a.sum() + b.sum()
    return float(2 * np.logical_and(a, b).sum() / total) if total else 1.0


def correction(pred, truth):
    """(point, label): a click on the larger of the missed and false parts."""
    missed, false = truth & ~pred, pred & ~truth
    target, label = (missed, 1) if missed.sum() >= false.sum() else (false, 0)
    parts, n = ndimage.label(target)
    if n == 0:
        return None
    biggest = 1 + int(np.argmax(ndimage.sum(target, parts, range(1, n + 1))))
    return centre_click(parts == biggest), label


def rerun_case(model, seeds, frames):
    agree, truth_iou = [], {"downstream": [], "all": []}
    for seed in seeds:
        stack = make_timelapse(TimelapseParams(n_frames=frames, division_rate=0.0), seed=HELD_OUT_SEED_BASE + 1000 + seed)
        clicks = largest_lasting_clicks(stack.labels, 3)
        if not clicks:
            continue
        sessions = {}
        for mode in ("downstream", "all"):
            s = StackSession(model, stack.image, options=SessionOptions(rerun=mode, autocast=False))
            for obj_id, yx in clicks:
                s.add_points(obj_id, 0, [yx], [1])
            for _ in s.propagate():
                pass
            sessions[mode] = s
        k = frames // 2
        ids = [i for i, _ in clicks]
        worst = min(ids, key=lambda i: iou(sessions["all"].labels[k] == i, stack.labels[k] == i))
        fix = correction(sessions["all"].labels[k] == worst, stack.labels[k] == worst)
        if fix is None:
            continue
        for s in sessions.values():
            s.add_points(worst, k, [fix[0]], [fix[1]])
            for _ in s.propagate():
                pass
        down, full = sessions["downstream"].labels, sessions["all"].labels
        for f in range(1, k):
            for i in ids:
                agree.append(iou(down[f] == i, full[f] == i))
                truth_iou["downstream"].append(iou(down[f] == i, stack.labels[f] == i))
                truth_iou["all"].append(iou(full[f] == i, stack.labels[f] == i))
        print(f"rerun seed {seed}: object {worst} corrected at {k} ({'+' if fix[1] else '-'}), "
              f"upstream agreement so far {np.mean(agree):.4f}", file=sys.stderr, flush=True)
    return {
        "case": "rerun_downstream_vs_all_upstream",
        "model": "demo", "frames": frames, "seeds": [seeds[0], seeds[-1]],
        "upstream_iou_mean": float(np.mean(agree)), "upstream_iou_worst": float(np.min(agree)),
        "upstream_pairs": len(agree),
        "truth_iou_downstream": float(np.mean(truth_iou["downstream"])),
        "truth_iou_all": float(np.mean(truth_iou["all"])),
    }


def zstack_case(model, seeds, memories=("shared", "separate"), num_objects=3):
    out = {}
    for memory in memories:
        scores, lost = [], 0
        for seed in seeds:
            stack = make_zstack(ZStackParams(), seed=HELD_OUT_SEED_BASE + 2000 + seed)
            mid = stack.image.shape[0] // 2
            ids, areas = np.unique(stack.labels[mid], return_counts=True)
            chosen = [int(i) for i, a in sorted(zip(ids, areas), key=lambda p: -p[1]) if i != 0][:num_objects]
            s = StackSession(model, stack.image, options=SessionOptions(direction_memory=memory, autocast=False))
            for obj_id in chosen:
                s.add_points(obj_id, mid, [centre_click(stack.labels[mid] == obj_id)], [1])
            for _ in s.propagate("both"):
                pass
            for i in chosen:
                pred, truth = s.labels == i, stack.labels == i
                scores.append(dice(pred, truth))
                for side in (slice(0, mid), slice(mid + 1, None)):
                    if truth[side].any() and not pred[side].any():
                        lost += 1
            print(f"zstack {memory} seed {seed}: mean Dice so far {np.mean(scores):.4f}, lost {lost}",
                  file=sys.stderr, flush=True)
        out[memory] = (float(np.mean(scores)), lost, len(scores))
    line = {"case": "zstack_direction_memory", "model": "demo", "seeds": [seeds[0], seeds[-1]]}
    for memory, (mean, lost, n) in out.items():
        line.update({f"dice_{memory}": mean, f"lost_{memory}": lost, "nuclei": n})
    return line


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="300-311", help="held-out seeds a-b (tests use 0-3, validation 100-109, selection 200-229)")
    parser.add_argument("--cases", default="rerun,zstack")
    parser.add_argument("--frames", type=int, default=12, help="time-lapse length for the rerun case")
    parser.add_argument("--memories", default="shared,separate", help="direction_memory values for the zstack case")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    a, b = (int(v) for v in args.seeds.split("-"))
    seeds = list(range(a, b + 1))
    torch.set_num_threads(args.threads)
    model = load_model("demo", device="cpu").eval()
    with torch.inference_mode():
        cases = args.cases.split(",")
        if "rerun" in cases:
            print(json.dumps(rerun_case(model, seeds, args.frames)), flush=True)
        if "zstack" in cases:
            print(json.dumps(zstack_case(model, seeds, args.memories.split(","))), flush=True)


if __name__ == "__main__":
    main()
