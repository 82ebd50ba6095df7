"""Batch throughput: stacks per minute on a LocalCluster with 1 and with 2
worker processes (the same stacks, prompts and demo model each time).

    python benchmarks/bench_batch.py              # 6 stacks of 12 frames, 256 px
    python benchmarks/bench_batch.py --quick      # 2 stacks of 3 frames, 96 px (smoke test)

One JSON line per case: ``batch_workers_1`` and ``batch_workers_2`` with
``stacks``, ``seconds``, ``stacks_per_minute``; the second also gives its
``speedup`` over one worker and ``ratio`` (its time over one worker's: there
is no reference implementation of a batch runner, so the ratio is between
worker counts, measured in one run). Each worker runs one torch thread.
Cluster start-up is included (it is part of what a user waits for).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _common import emit, log

import numpy as np
import tifffile


def _stacks(folder: Path, count: int, frames: int, size: int) -> dict:
    from napari_sam2.synthetic import TimelapseParams, make_timelapse

    doc = {"stacks": {}}
    for k in range(count):
        synth = make_timelapse(TimelapseParams(n_frames=frames, height=size, width=size, n_cells=6), seed=100 + k)
        tifffile.imwrite(folder / f"stack{k}.tif", synth.image, photometric="minisblack")
        objects = []
        for obj in np.unique(synth.labels[0])[1:4]:
            ys, xs = np.nonzero(synth.labels[0] == obj)
            i = int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))
            objects.append({"id": int(obj), "frames": {"0": {"points": [[float(ys[i]), float(xs[i])]]}}})
        doc["stacks"][f"stack{k}.tif"] = {"objects": objects}
    return doc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 stacks of 3 frames at 96 px")
    parser.add_argument("--stacks", type=int, default=6)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    count, frames, size = (2, 3, 96) if args.quick else (args.stacks, args.frames, args.size)

    from napari_sam2 import batch

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "in").mkdir()
        prompts = root / "prompts.json"
        prompts.write_text(json.dumps(_stacks(root / "in", count, frames, size)))
        per_minute = {}
        for workers in (1, 2):
            out = root / f"out{workers}"
            log(f"{count} stacks of {frames} x {size} x {size}, {workers} worker(s)...")
            start = time.perf_counter()
            summary = batch.run([str(root / "in" / "*.tif")], out, prompts=prompts, workers=workers)
            seconds = time.perf_counter() - start
            done = sum(r.status == "done" for r in summary)
            if done != count:
                raise SystemExit(f"only {done} of {count} stacks done: {[r.error for r in summary]}")
            per_minute[workers] = count / seconds * 60
            record = {"case": f"batch_workers_{workers}", "stacks": count, "frames": frames, "size": size,
                      "image_size": 256, "threads": 1, "workers": workers, "model": "demo",
                      "seconds": round(seconds, 2), "stacks_per_minute": round(per_minute[workers], 2),
                      "ours": {"s": round(seconds, 2), "stacks_per_minute": round(per_minute[workers], 2)},
                      # no reference batch runner exists: 2 workers are compared with 1, in this run
                      "reference": None, "ratio": None}
            if workers == 2:
                record["speedup"] = round(per_minute[2] / per_minute[1], 3)
                record["ratio"] = round(per_minute[1] / per_minute[2], 3)  # time with 2 / time with 1
            emit(record)


if __name__ == "__main__":
    main()
