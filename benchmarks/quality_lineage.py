"""Divisions found on synthetic time-lapses with the shipped demo model:
the numbers the division detector's thresholds are tuned on.

Each seed draws a 20-frame time-lapse (``TimelapseParams(n_frames=20)``,
as ``tests/test_lineage_quality.py`` does for its held-out set), tracks it
with track everything (16 x 16 points, new objects every 5 frames,
divisions found) or, with ``--clicked``, from one click per cell on frame
0 (``propagate_divisions``), and scores the lineage with py-ctcmetrics
(TRA, BC(0)) from our CTC export against the ground truth of
``Synthetic.labels`` and ``Synthetic.parents``, with the divisions found,
missed and invented (``match_divisions``). Tune on seeds below
``HELD_OUT_SEED_BASE`` (0-23); ``--seeds held`` is the test's held-out set
(four sequences), for reporting only.

One JSON line per seed, then one for the whole set (BC(0) as the mean of
the seeds and pooled over their divisions); progress on stderr. About 25 s
per seed on two cores:

    python benchmarks/quality_lineage.py --seeds 0-11
    python benchmarks/quality_lineage.py --seeds 0-5 --clicked
    python benchmarks/quality_lineage.py --seeds 0-11 --division-options '{"stretch_split": null}'
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time

import numpy as np

from napari_sam2 import AutomaticOptions, DivisionOptions, StackSession, load_model
from napari_sam2.synthetic import TimelapseParams, make_timelapse
from napari_sam2.training.lineage_quality import (HELD_OUT_LINEAGE_SEEDS, click_each_cell, ctc_scores,
                                                  division_events, match_divisions, pooled_branching)


def parse_seeds(text: str) -> list[int]:
    if text == "held":  # the test's held-out set
        return list(HELD_OUT_LINEAGE_SEEDS)
    try:
        lo, _, hi = text.partition("-")
        seeds = list(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds must be 'A-B', 'A' or 'held', got {text!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError(f"--seeds {text!r} holds no seed")
    return seeds


def track(model, truth, clicked: bool, division_options: DivisionOptions) -> StackSession:
    session = StackSession(model, truth.image)
    if clicked:
        click_each_cell(session, truth.labels[0])
        list(session.propagate_divisions(options=division_options))
    else:
        list(session.track_everything(options=AutomaticOptions(points_per_side=16), detect_every=5,
                                      divisions=division_options))
    return session


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=parse_seeds, default=parse_seeds("0-5"), help="A-B, A or held (default 0-5)")
    parser.add_argument("--clicked", action="store_true",
                        help="one click per cell on frame 0 instead of track everything")
    parser.add_argument("--division-options", default="{}",
                        help="DivisionOptions fields as JSON, e.g. '{\"persist\": 3}'")
    args = parser.parse_args(argv)
    try:
        division_options = DivisionOptions(**json.loads(args.division_options))
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        parser.error(f"--division-options: {exc}")
    model = load_model("demo", device="cpu")
    total = {"found": 0, "missed": 0, "invented": 0, "tp": 0, "fp": 0, "fn": 0}
    tra, bc = [], []
    for seed in args.seeds:
        start = time.perf_counter()
        truth = make_timelapse(TimelapseParams(n_frames=20), seed=seed)
        session = track(model, truth, args.clicked, division_options)
        links = session.lineage.links()
        with tempfile.TemporaryDirectory() as folder, contextlib.redirect_stdout(sys.stderr):  # py-ctcmetrics prints
            scores = ctc_scores(session, links, truth.labels, truth.parents, folder, metrics=("TRA", "BC"))
        count = match_divisions(session.labels, links, truth.labels, truth.parents)
        row = {"seed": seed, "mode": "clicked" if args.clicked else "track_everything",
               "TRA": round(scores["TRA"], 4), "BC(0)": round(scores["BC(0)"], 4),
               "found": count.found, "missed": count.missed, "invented": count.invented,
               "tp_div(0)": int(scores["tp_div(0)"]), "fp_div(0)": int(scores["fp_div(0)"]),
               "fn_div(0)": int(scores["fn_div(0)"]),
               "true": [(e.frame, e.mother) for e in division_events(truth.labels, truth.parents)],
               "ours": [(e.frame, e.mother) for e in division_events(session.labels, links)],
               "s": round(time.perf_counter() - start, 1)}
        print(json.dumps(row), flush=True)
        print(f"seed {seed}: TRA {row['TRA']}, BC(0) {row['BC(0)']}", file=sys.stderr)
        tra.append(scores["TRA"])
        bc.append(scores["BC(0)"])
        for key in ("found", "missed", "invented"):
            total[key] += row[key]
        for key in ("tp", "fp", "fn"):
            total[key] += row[f"{key}_div(0)"]
    pooled = pooled_branching(total["tp"], total["fp"], total["fn"])
    print(json.dumps({"seeds": f"{args.seeds[0]}-{args.seeds[-1]}", "mode": "clicked" if args.clicked else
                      "track_everything", "TRA_mean": round(float(np.mean(tra)), 4),
                      "BC(0)_mean": round(float(np.mean(bc)), 4), "BC(0)_pooled": round(pooled, 4), **total}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
