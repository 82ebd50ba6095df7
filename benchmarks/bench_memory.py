"""Peak memory of a long stack read lazily, labels written frame by frame
into an on-disk zarr array: it stays within the session's budgets plus one
frame, however many frames the stack has.

    python benchmarks/bench_memory.py                    # 2,000 frames of 1024 x 1024 (~2 GB input on disk)
    python benchmarks/bench_memory.py --frames 200       # the same, shorter
    python benchmarks/bench_memory.py --quick            # 12 frames of 128 x 128 (smoke test)

The input is generated on disk frame by frame (a zarr array, one chunk per
frame, and a ``.npy`` memory map; uint8, two bright blobs drifting over a
textured background), never whole in memory. Each case runs in a fresh
process: the demo model at its own input size, one torch thread, one
object clicked on frame 0, propagated forward to the last frame, the labels
going into a zarr array on disk (``StackSession(..., labels=zarr array)``).

One JSON line per case, with

* ``baseline_mb``: anonymous resident memory (``RssAnon``) once the model
  is loaded and the click on frame 0 decoded;
* ``first_frames_peak_mb``: the largest ``RssAnon`` sampled (every 10 ms)
  while the propagation writes its first two frames (the prompted one and
  one tracked frame: the model's activations and one frame's working
  buffers at their peak, the budgets nearly empty);
* ``peak_mb``: the largest ``RssAnon`` sampled during the whole
  propagation; ``growth_mb`` = ``peak_mb - first_frames_peak_mb``; ``ru_maxrss_mb`` (and ``ru_maxrss_baseline_mb``, before
  the propagation): the kernel's high-water mark of the whole resident
  set, shared libraries included, which for the memory-mapped input also counts the
  input file's pages that were mapped (clean page cache the kernel drops
  under pressure, not memory the session holds);
* ``rss_at_mb``: ``RssAnon`` after 10 %, 25 %, 50 % and 100 % of the
  frames (flat once the budgets are full);
* the budgets: ``feature_cache_mb`` (``CacheBudget.ram_mb``),
  ``memory_bank_mb`` (``SessionOptions.history_mb``) and what they hold at
  the end (``feature_cache_used_mb``, ``memory_bank_used_mb``);
* ``frame_mb``: one frame of labels (int32) and ``labels_total_mb``, what
  the whole labels would take in memory;
* ``allowance_mb``: the slack stated beforehand (:data:`ALLOWANCE_MB`) for
  the allocator (freed frame-sized buffers are not always given back to
  the system at once) and the interpreter;
* ``within_budget``: ``peak_mb <= first_frames_peak_mb + feature_cache_mb +
  memory_bank_mb + frame_mb + allowance_mb``: what the stack adds beyond
  one frame's work is bounded by the budgets, whatever its length.

With glibc's default allocator, freed frame-sized buffers raise its mmap
threshold, and later allocations of the cached features (about 0.5 MB
each, evicted and allocated again every frame) come from a heap that
fragments; ``--mmap-threshold 131072`` fixes the threshold to show how much
of the resident memory is the allocator's (``malloc_mmap_threshold`` in
each line says which was used).

``ours`` is ``peak_mb``; ``reference`` is that bound and ``ratio`` the one
over the other (< 1: within the bound). There is no reference
implementation of a larger-than-memory session to compare with.
"""

from __future__ import annotations

import _common  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads)
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import AnonPeak, emit, log, max_rss_mb

# slack beyond the budgets and one frame, stated before measuring (see the docstring)
ALLOWANCE_MB = 64.0
# (case, input kind, feature cache MB, memory bank MB)
CASES = {
    "zarr_input_small_budgets": ("zarr", 64.0, 16.0),
    "memmap_input_small_budgets": ("memmap", 64.0, 16.0),
    "zarr_input_default_budgets": ("zarr", None, None),
}
CHECKPOINTS = (0.10, 0.25, 0.50, 1.00)
# frames whose peak is the base of the bound: the prompted one and one tracked
FIRST_FRAMES = 2


# ------------------------------------------------------------------ input
def _frame(t: int, n: int, size: int, texture: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """Frame ``t`` of ``n`` (uint8 ``size x size``) and the first blob's centre ``(y, x)``."""
    phase = t / max(n - 1, 1)
    yy, xx = np.ogrid[0:size, 0:size]
    centres = [(0.35 * size + 0.1 * size * np.sin(6.28 * phase), 0.3 * size + 0.3 * size * phase),
               (0.65 * size, 0.75 * size - 0.25 * size * phase)]
    img = 30.0 + texture
    for (cy, cx), r in zip(centres, (0.09 * size, 0.07 * size)):
        img = img + 170.0 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2))
    return np.clip(img, 0, 255).astype(np.uint8), centres[0]


def write_inputs(folder: Path, n: int, size: int, kinds: set[str]) -> dict:
    """The stack on disk as each of ``kinds`` ("zarr", "memmap"), frame by frame."""
    import zarr

    rng = np.random.default_rng(0)
    texture = rng.integers(0, 20, (size, size)).astype(np.float32)
    paths = {"zarr": folder / "stack.zarr", "memmap": folder / "stack.npy"}
    outs = {}
    if "zarr" in kinds:
        outs["zarr"] = zarr.open(str(paths["zarr"]), mode="w", shape=(n, size, size), chunks=(1, size, size),
                                 dtype="uint8")
    if "memmap" in kinds:
        outs["memmap"] = np.lib.format.open_memmap(paths["memmap"], mode="w+", dtype=np.uint8, shape=(n, size, size))
    started = time.perf_counter()
    click = None
    for t in range(n):
        frame, centre = _frame(t, n, size, texture)
        click = centre if t == 0 else click
        for out in outs.values():
            out[t] = frame
        if (t + 1) % max(n // 10, 1) == 0:
            log(f"input: {t + 1}/{n} frames written ({time.perf_counter() - started:.0f} s)")
    if "memmap" in outs:
        outs["memmap"].flush()
    return {"paths": {k: str(paths[k]) for k in outs}, "click": [float(click[0]), float(click[1])]}


# ------------------------------------------------------------------ one case (child process)
def run_case(args) -> dict:
    import torch
    import zarr

    from napari_sam2 import load_model
    from napari_sam2.engine import CacheBudget, SessionOptions, StackSession

    torch.set_num_threads(args.threads)
    kind, feature_mb, history_mb = CASES[args.child]
    data = zarr.open(args.input, mode="r") if kind == "zarr" else np.load(args.input, mmap_mode="r")
    n, h, w = data.shape
    model = load_model("demo", device="cpu", progress=False)
    defaults = SessionOptions()
    options = SessionOptions(
        feature_cache=CacheBudget(ram_mb=defaults.feature_cache.ram_mb if feature_mb is None else feature_mb),
        history_mb=defaults.history_mb if history_mb is None else history_mb,
    )
    labels = zarr.open(str(Path(args.workdir) / f"labels-{args.child}.zarr"), mode="w", shape=(n, h, w),
                       chunks=(1, h, w), dtype="int32", fill_value=0)
    session = StackSession(model, data, labels=labels, options=options)
    session.add_points(1, 0, [args.click], [1])
    session.segment_frame(0)
    assert session.labels is labels  # written into the zarr array, never a copy in memory
    baseline_mb, baseline_maxrss_mb = AnonPeak.read_kb() / 1024, max_rss_mb()
    marks = {max(1, int(round(p * n))) - 1: p for p in CHECKPOINTS}
    rss_at, done = {}, 0
    started = time.perf_counter()
    frames = session.propagate("forward")

    def mark(frame: int) -> None:
        if frame in marks:
            rss_at[f"{int(marks[frame] * 100)}%"] = round(AnonPeak.read_kb() / 1024, 1)

    with AnonPeak() as first:  # the prompted frame and one tracked frame: one frame's whole work
        for _ in range(min(FIRST_FRAMES, n)):
            mark(next(frames)[0])
            done += 1
    with AnonPeak() as peak:
        for frame, _ in frames:
            done += 1
            mark(frame)
            if done % max(n // 20, 1) == 0:
                log(f"{args.child}: {done}/{n} frames, RssAnon {AnonPeak.read_kb() / 1024:.0f} MB, "
                    f"{time.perf_counter() - started:.0f} s")
    seconds = time.perf_counter() - started
    tracked = int(sum(np.any(np.asarray(labels[t]) == 1) for t in (n // 2, n - 1)))
    frame_mb = h * w * np.dtype(np.int32).itemsize / 2**20
    budgets = options.feature_cache.ram_mb + options.history_mb
    bound = first.peak_mb + budgets + frame_mb + ALLOWANCE_MB
    peak_mb = max(first.peak_mb, peak.peak_mb)
    return {
        "case": args.child,
        "model": "demo",
        "image_size": model.image_size,
        "frames": n,
        "frame_shape": [h, w],
        "input": kind,
        "threads": torch.get_num_threads(),
        "malloc_mmap_threshold": os.environ.get("MALLOC_MMAP_THRESHOLD_"),  # None: glibc's dynamic default
        "seconds": round(seconds, 1),
        "frames_per_second": round(done / seconds, 2),
        "baseline_mb": round(baseline_mb, 1),
        "first_frames_peak_mb": round(first.peak_mb, 1),
        "peak_mb": round(peak_mb, 1),
        "growth_mb": round(peak_mb - first.peak_mb, 1),
        "ru_maxrss_baseline_mb": round(baseline_maxrss_mb, 1),
        "ru_maxrss_mb": round(max_rss_mb(), 1),
        "rss_at_mb": rss_at,
        "feature_cache_mb": options.feature_cache.ram_mb,
        "memory_bank_mb": options.history_mb,
        "feature_cache_used_mb": round(session._features.ram_bytes / 2**20, 1),
        "memory_bank_used_mb": round(session._bank.history_nbytes / 2**20, 1),
        "frame_mb": round(frame_mb, 2),
        "labels_total_mb": round(n * frame_mb, 1),
        "allowance_mb": ALLOWANCE_MB,
        "bound_mb": round(bound, 1),
        "within_budget": bool(peak_mb <= bound),
        "object_tracked_to_the_end": tracked == 2,
        "ours": round(peak_mb, 1),
        "reference": round(bound, 1),
        "ratio": round(peak_mb / bound, 4),
    }


# ------------------------------------------------------------------ driver
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="12 frames of 128 x 128")
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--size", type=int, default=1024, help="frame height and width")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in each case")
    parser.add_argument("--workdir", default=None, help="folder for the input and labels (default: a temporary one)")
    parser.add_argument("--mmap-threshold", type=int, default=None, metavar="BYTES",
                        help="run the cases with glibc's MALLOC_MMAP_THRESHOLD_ fixed at BYTES (e.g. 131072), "
                             "so that freed buffers above it go back to the system: shows the allocator's share")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--input", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--click", type=float, nargs=2, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(run_case(args)), flush=True)
        return
    frames, size = (12, 128) if args.quick else (args.frames, args.size)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; choose from {', '.join(CASES)}")
    if frames < 2 or size < 16:
        parser.error("--frames must be >= 2 and --size >= 16")
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="bench-memory-") as tmp:
        inputs = write_inputs(Path(tmp), frames, size, {CASES[c][0] for c in cases})
        for case in cases:
            log(f"case {case}: {frames} frames of {size} x {size}")
            env = dict(os.environ)
            if args.mmap_threshold is not None:
                env["MALLOC_MMAP_THRESHOLD_"] = str(args.mmap_threshold)
            proc = subprocess.run(
                [sys.executable, __file__, "--child", case, "--input", inputs["paths"][CASES[case][0]],
                 "--click", *map(str, inputs["click"]), "--workdir", tmp, "--threads", str(args.threads)],
                stdout=subprocess.PIPE, text=True, check=True, env=env,
            )
            emit(json.loads(proc.stdout.strip().splitlines()[-1]))


if __name__ == "__main__":
    main()
