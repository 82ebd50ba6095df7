"""The instant preview: what a click costs once a slice's features are ready.

For each model size, one JSON line ("case": "preview_<size>"): after
``session.prepare_frame(f)`` (image encoder; timed once, for information),
the time of ``add_points`` + ``segment_frame(f)`` (prompt encoder and mask
decoder only) for successive clicks on the same frame, so the previous
mask's logits are fed back as they are in use. Median over the clicks.
There is no reference figure for this ("reference": null).

    python benchmarks/bench_preview.py           # tiny at 1024 and at 512, 10 clicks
    python benchmarks/bench_preview.py --quick   # tiny at 128, 3 clicks
"""

from __future__ import annotations

import _common  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads)
import argparse
import time

import numpy as np
import torch

from _common import (
    MODEL,
    add_threads_option,
    apply_threads,
    emit,
    log,
    median,
    our_model,
    r6,
    settings,
    synthetic_frames,
)


def clicks(n: int, height: int, width: int, seed: int = 0):
    """``n`` clicks (y, x), label: a positive first, then mixed corrections."""
    rng = np.random.default_rng(seed)
    out = [([[0.4 * height, 0.4 * width]], [1])]
    for i in range(1, n):
        yx = [[float(rng.uniform(0.2, 0.8) * height), float(rng.uniform(0.2, 0.8) * width)]]
        out.append((yx, [int(i % 3 != 0)]))
    return out


def run_case(size: int, n_clicks: int, frame_px: int) -> None:
    from napari_sam2 import StackSession

    log(f"preview: {MODEL} at {size}, frames {frame_px} x {frame_px}, {n_clicks} clicks")
    model = our_model(MODEL, size)
    stack = np.round(synthetic_frames(3, frame_px, frame_px, seed=1) * 4000 + 500).astype(np.uint16)
    session = StackSession(model, stack)
    with torch.inference_mode():
        # warm-up on another frame: encoder, heads and the labels path
        session.prepare_frame(0)
        for yx, lab in clicks(2, frame_px, frame_px, seed=5):
            session.add_points(2, 0, yx, lab)
            session.segment_frame(0)
        f = 1
        t0 = time.perf_counter()
        session.prepare_frame(f)
        prepare = time.perf_counter() - t0
        times = []
        for yx, lab in clicks(n_clicks, frame_px, frame_px):
            t0 = time.perf_counter()
            session.add_points(1, f, yx, lab)
            session.segment_frame(f)
            times.append(time.perf_counter() - t0)
    log(f"  prepare_frame {prepare:.3f} s; clicks {[round(t, 4) for t in times]}")
    emit(
        {
            "case": f"preview_{size}",
            **settings(size, frame_shape=[frame_px, frame_px], clicks=n_clicks, device="cpu", dtype="float32"),
            "ours": {
                "click_s_median": r6(median(times)),
                "click_s_min": r6(min(times)),
                "click_s_max": r6(max(times)),
                "first_click_s": r6(times[0]),
                "prepare_frame_s": r6(prepare),
            },
            "reference": None,
            "ratio": None,
            "samples": {"click_s": [r6(t) for t in times]},
        }
    )


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny run for the smoke test (128 px, 3 clicks)")
    p.add_argument("--sizes", default=None, help="model sizes, comma-separated (default 1024,512)")
    p.add_argument("--clicks", type=int, default=None, help="clicks per size (default 10)")
    add_threads_option(p)
    args = p.parse_args(argv)
    apply_threads(args.threads)
    torch.set_grad_enabled(False)
    sizes = [int(s) for s in (args.sizes or ("128" if args.quick else "1024,512")).split(",")]
    n = args.clicks or (3 if args.quick else 10)
    for size in sizes:
        # frames a bit larger than the model input, as microscopy usually is
        run_case(size, n, frame_px=size + size // 4)


if __name__ == "__main__":
    main()
