"""Many objects: our one batched step per frame vs Meta's SAM2VideoPredictor,
which runs the objects one at a time (sam2 1.1.0).

Same random weights, float32 on the CPU, tiny model. One JSON line per case:

objects_K (K = 1, 8, 32 by default)
    K objects, each one positive click on frame 0 (spread over the frame),
    forward through N frames of 512 x 512. Image encoding is included in
    both: ours from a new session (``add_points`` + ``propagate``), the
    reference from ``init_state`` (it loads the JPEGs) through
    ``add_new_points_or_box`` and ``propagate_in_video``. Seconds per frame;
    target with 8 and 32 objects: ratio <= 0.8.
objects_on_different_frames_K (K = 8)
    Ours alone (the reference's CPU path cannot track an object first
    prompted after frame 0): the K objects clicked on frames spread over the
    stack instead of all on frame 0, so that on every frame they read other
    conditioning frames and histories. Image features cached (prepared
    before timing) in both runs; seconds per tracked object-frame, against
    the same objects all clicked on frame 0 in the same process. Target:
    ``ratio_to_same_frame`` <= 1.15.

    python benchmarks/bench_objects.py                       # 512 px, 10 frames
    python benchmarks/bench_objects.py --frames 4 --objects 1,8,32
    python benchmarks/bench_objects.py --quick               # smoke-test size
"""

from __future__ import annotations

import _common  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads)
import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _common import (
    add_threads_option,
    alternate,
    apply_threads,
    build_pair,
    emit,
    log,
    median,
    paired_ratio,
    r6,
    ratio,
    settings,
    synthetic_frames,
)
from bench_stack import _our_propagate, _our_session, _ref_init, _ref_propagate, ref_points, to_u8, write_jpegs

TARGET_VS_REFERENCE = 0.8  # with 8 and with 32 objects
TARGET_DIFFERENT_FRAMES = 1.15
CASES = ("same_frame", "different_frames")


def clicks(k: int, size: int, seed: int = 0) -> list[list[list[float]]]:
    """``k`` single clicks ``(y, x)`` spread over a ``size`` square frame."""
    rng = np.random.default_rng(seed)
    margin = size / 10
    return [[[float(y), float(x)]] for y, x in rng.uniform(margin, size - margin, size=(k, 2))]


def _ref_add(ref, state, frame, obj_id, yx):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref.add_new_points_or_box(state, frame_idx=frame, obj_id=obj_id, points=ref_points(yx), labels=[1])


def case_same_frame(ours, ref, size: int, n: int, k: int, repeats: int, folder: Path, rgb) -> None:
    pts = clicks(k, size)

    def run_ours():
        s = _our_session(ours, rgb)
        for i, yx in enumerate(pts):
            s.add_points(i + 1, 0, yx, [1])
        assert _our_propagate(s) == n

    def run_ref():
        st = _ref_init(ref, folder)
        for i, yx in enumerate(pts):
            _ref_add(ref, st, 0, i + 1, yx)
        assert _ref_propagate(ref, st) == n

    log(f"objects_{k}: {repeats} alternating runs of {n} frames")
    with torch.inference_mode():
        t_ours, t_ref = alternate(run_ours, run_ref, repeats)
    log(f"  ours {t_ours}  reference {t_ref}")
    o, r = median(t_ours) / n, median(t_ref) / n
    rec = {
        "case": f"objects_{k}",
        **settings(size, frames=n, objects=k, device="cpu", dtype="float32", repeats=repeats),
        "ours": {"s_per_frame": r6(o), "total_s": r6(median(t_ours))},
        "reference": {"s_per_frame": r6(r), "total_s": r6(median(t_ref))},
        "ratio": ratio(o, r),
        "ratio_paired_median": paired_ratio(t_ours, t_ref),
        "samples": {"ours_total_s": [r6(x) for x in t_ours], "reference_total_s": [r6(x) for x in t_ref]},
    }
    if k > 1:
        rec["target"] = TARGET_VS_REFERENCE
        rec["meets_target"] = rec["ratio"] <= TARGET_VS_REFERENCE
    emit(rec)


def case_different_frames(ours, size: int, n: int, k: int, repeats: int, rgb) -> None:
    pts = clicks(k, size)
    spread = [i * n // k for i in range(k)]  # object i's prompted frame

    def session(frames_of):
        s = _our_session(ours, rgb)
        for f in range(n):
            s.prepare_frame(f)
        for i, yx in enumerate(pts):
            s.add_points(i + 1, frames_of[i], yx, [1])
        return s

    def run(frames_of):
        s = session(frames_of)  # features cached: not timed
        start = time.perf_counter()
        assert _our_propagate(s) == n
        return time.perf_counter() - start

    log(f"objects_on_different_frames_{k}: frames {spread}, {repeats} alternating runs of {n} frames")
    with torch.inference_mode():
        run([0] * k)  # warm-up
        same, diff = [], []
        for i in range(repeats):
            order = ((same, [0] * k), (diff, spread)) if i % 2 == 0 else ((diff, spread), (same, [0] * k))
            for out, frames_of in order:
                out.append(run(frames_of))
    log(f"  same frame {same}  different frames {diff}")
    tracked = k * (n - 1)  # object-frames with a tracking step (each object has one prompted frame)
    per_same = median(same) / tracked
    per_diff = median(diff) / tracked
    ratio_frames = round(per_diff / per_same, 4)
    emit(
        {
            "case": f"objects_on_different_frames_{k}",
            **settings(size, frames=n, objects=k, prompted_frames=spread, device="cpu", dtype="float32",
                       repeats=repeats, features_cached=True),
            "ours": {
                "s_per_object_frame": r6(per_diff),
                "same_frame_s_per_object_frame": r6(per_same),
                "total_s": r6(median(diff)),
                "same_frame_total_s": r6(median(same)),
            },
            "reference": None,
            "ratio": None,
            "ratio_to_same_frame": ratio_frames,
            "target": TARGET_DIFFERENT_FRAMES,
            "meets_target": ratio_frames <= TARGET_DIFFERENT_FRAMES,
            "samples": {"same_frame_s": [r6(x) for x in same], "different_frames_s": [r6(x) for x in diff]},
        }
    )


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke-test size (model at 128, 3 frames, 1 and 3 objects)")
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {', '.join(CASES)}")
    p.add_argument("--size", type=int, default=None, help="model input and frame size (default 512)")
    p.add_argument("--frames", type=int, default=None, help="frames per run (default 10)")
    p.add_argument("--objects", default=None, help="object counts of the same-frame cases (default 1,8,32)")
    p.add_argument("--different-objects", type=int, default=None,
                   help="objects of the different-frames case (default 8)")
    p.add_argument("--repeats", type=int, default=1, help="timed runs per implementation (default 1)")
    p.add_argument("--work-dir", default=None, help="where to write frames (default: a temporary folder)")
    add_threads_option(p)
    a = p.parse_args(argv)
    apply_threads(a.threads)
    cases = a.cases.split(",")
    unknown = set(cases) - set(CASES)
    if unknown:
        p.error(f"unknown case(s) {sorted(unknown)}; choose from {', '.join(CASES)}")
    size = a.size or (128 if a.quick else 512)
    n = a.frames or (3 if a.quick else 10)
    counts = [int(x) for x in (a.objects or ("1,3" if a.quick else "1,8,32")).split(",")]
    k_diff = a.different_objects or (3 if a.quick else 8)
    if n < 2 or any(c < 1 for c in counts) or k_diff < 1:
        p.error("--frames must be >= 2 and object counts >= 1")

    ours, ref = build_pair(_common.MODEL, size, seed=0, fill_hole_area=0)
    with tempfile.TemporaryDirectory(dir=a.work_dir) as tmp:
        folder = Path(tmp) / "frames"
        rgb = write_jpegs(folder, to_u8(synthetic_frames(n, size, size, seed=3)))
        warm = Path(tmp) / "warm"
        warm_rgb = write_jpegs(warm, to_u8(synthetic_frames(2, size, size, seed=3)))
        with torch.inference_mode():  # warm-up: one object, two frames, both
            s = _our_session(ours, warm_rgb)
            s.add_points(1, 0, clicks(1, size)[0], [1])
            _our_propagate(s)
            st = _ref_init(ref, warm)
            _ref_add(ref, st, 0, 1, clicks(1, size)[0])
            _ref_propagate(ref, st)
        if "same_frame" in cases:
            for k in counts:
                case_same_frame(ours, ref, size, n, k, a.repeats, folder, rgb)
        if "different_frames" in cases:
            case_different_frames(ours, size, n, k_diff, a.repeats, rgb)


if __name__ == "__main__":
    main()
