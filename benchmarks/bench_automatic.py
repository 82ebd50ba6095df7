"""Segment everything against Meta's ``SAM2AutomaticMaskGenerator``.

One JSON line per case: one frame of ``--size`` px (tiny, same random
weights in both, float32 on the CPU), a ``--points`` x ``--points`` prompt
grid, 64 prompts per batch, image features cached on both sides (ours:
``generate_masks(..., full_features=...)`` as ``StackSession`` calls it;
the reference: its image predictor's ``set_image`` answered from a saved
encoding), so that the time is the prompts, the decoder and the mask
post-processing. Cases:

* ``segment_everything_defaults``: Meta's default thresholds (predicted IoU
  0.8, stability 0.95, box NMS 0.7);
* ``segment_everything_keep_all``: no IoU or stability filter, so that every
  mask is upsampled on both sides (our worst case).

``n_masks`` (both sides) shows that they kept the same masks.

* ``track_everything_sample``: ``StackSession.track_everything`` with the
  shipped demo model on the sample time-lapse (256 px; ``--quick``: its
  first 6 frames), new objects every 5 frames, with and without division
  finding: seconds per frame, encoding included. Meta's ``sam2`` has no
  track-everything, so there is no reference side; ``ratio`` is against
  our own ``propagate`` of the frame-0 objects in the same run (what the
  detection frames and the division checks cost on top of tracking).

    python benchmarks/bench_automatic.py            # 1024 px, 32 x 32 points
    python benchmarks/bench_automatic.py --quick    # 256 px, 8 x 8 points
"""

from __future__ import annotations

import _common  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads)
import argparse

import numpy as np
import torch

from _common import (
    MODEL,
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
    require_reference,
    settings,
    synthetic_frames,
)

CASES = {
    "segment_everything_defaults": dict(pred_iou_thresh=0.8, stability_score_thresh=0.95),
    "segment_everything_keep_all": dict(pred_iou_thresh=0.0, stability_score_thresh=0.0),
}


def _cached_reference(ref, image: np.ndarray, points: int, thresholds: dict):
    from tests.reference import torchvision_standin

    torchvision_standin.install()
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    gen = SAM2AutomaticMaskGenerator(ref, points_per_side=points, points_per_batch=64,
                                     box_nms_thresh=0.7, **thresholds)
    s = ref.image_size // 4
    predictor = gen.predictor
    predictor._bb_feat_sizes = [(s, s), (s // 2, s // 2), (s // 4, s // 4)]
    predictor.set_image(image)
    saved = (predictor._features, predictor._orig_hw)

    def set_image_cached(_image):
        predictor._features, predictor._orig_hw = saved
        predictor._is_image_set = True

    predictor.set_image = set_image_cached
    return gen


def run_case(name: str, size: int, points: int, repeats: int) -> None:
    from napari_sam2.engine.automatic import AutomaticOptions, generate_masks
    from napari_sam2.engine import FrameSource

    thresholds = CASES[name]
    log(f"{name}: {MODEL} at {size}, {points} x {points} points")
    ours, ref = build_pair(MODEL, size)
    grey = np.round(synthetic_frames(1, size, size, seed=3)[0] * 255).astype(np.uint8)
    image = np.stack([grey] * 3, axis=-1)  # (H, W, 3) uint8, as the reference takes it
    unit = FrameSource(image, channel_axis=-1, intensity_range=(0, 255)).normalized(0)
    options = AutomaticOptions(points_per_side=points, points_per_batch=64, box_nms_thresh=0.7,
                               multimask_output=True, area_bonus=0.0, **thresholds)
    from napari_sam2.engine.automatic import _encode_crop

    with torch.inference_mode():
        features = _encode_crop(ours, unit, [0, 0, size, size])  # what the session caches
        gen = _cached_reference(ref, image, points, thresholds)
        out = {}

        def run_ours():
            out["ours"] = generate_masks(ours, unit, options=options, full_features=features)

        def run_ref():
            out["ref"] = gen.generate(image)

        run_ours(), run_ref()  # warm-up
        ours_t, ref_t = alternate(run_ours, run_ref, repeats)
    n_ours, n_ref = len(out["ours"].boxes), len(out["ref"])
    log(f"  ours {[round(t, 3) for t in ours_t]} s, reference {[round(t, 3) for t in ref_t]} s; masks {n_ours}/{n_ref}")
    emit(
        {
            "case": name,
            **settings(size, frame_shape=[size, size], points_per_side=points, points_per_batch=64,
                       features_cached=True, device="cpu", dtype="float32", **thresholds),
            "ours": {"s": r6(median(ours_t)), "n_masks": n_ours},
            "reference": {"s": r6(median(ref_t)), "n_masks": n_ref},
            "ratio": r6(ratio(median(ours_t), median(ref_t))),
            "ratio_paired_median": r6(paired_ratio(ours_t, ref_t)),
            "samples": {"ours": [r6(t) for t in ours_t], "reference": [r6(t) for t in ref_t]},
        }
    )


TRACK_CASE = "track_everything_sample"


def run_track_case(frames: int | None, repeats: int) -> None:
    import time

    from napari_sam2 import AutomaticOptions, load_model
    from napari_sam2._sample_data import cells_timelapse
    from napari_sam2.engine import StackSession
    from napari_sam2.engine.divisions import DivisionOptions

    (image, _, _), _ = cells_timelapse()
    image = image[:frames] if frames else image
    n = len(image)
    model = load_model("demo", device="cpu")
    log(f"{TRACK_CASE}: demo model, {n} frames of the sample time-lapse")
    result = {}

    def track(divisions):
        def run():
            session = StackSession(model, image)
            t0 = time.perf_counter()
            written = sum(1 for _ in session.track_everything(detect_every=5, divisions=divisions))
            elapsed = time.perf_counter() - t0
            assert written == n, f"track_everything wrote {written} of {n} frames"
            result[divisions is not None] = (len(session.object_ids), len(session.lineage.links()))
            return elapsed
        return run

    first = StackSession(model, image).segment_everything(0).labels  # the frame-0 objects of Track all

    def propagate_only():
        session = StackSession(model, image)  # a new one: frame 0 is encoded in the time, as above
        t0 = time.perf_counter()
        for obj in np.unique(first[first > 0]):
            session.add_mask(int(obj), 0, first == obj)
        written = sum(1 for _ in session.propagate())
        assert written == n
        return time.perf_counter() - t0

    samples = {"plain": [], "divisions": [], "propagate": []}
    for _ in range(repeats + 1):  # the first round warms up
        for key, run in (("plain", track(None)), ("divisions", track(DivisionOptions())),
                         ("propagate", propagate_only)):
            samples[key].append(run() / n)
    samples = {k: v[1:] for k, v in samples.items()}
    log(f"  s per frame: {({k: [round(t, 3) for t in v] for k, v in samples.items()})}")
    emit(
        {
            "case": TRACK_CASE,
            **settings(model.image_size, model="demo", frames=n, frame_shape=list(image.shape[1:]),
                       detect_every=5, points_per_side=AutomaticOptions().points_per_side,
                       device="cpu", dtype="float32"),
            "ours": {"s_per_frame": r6(median(samples["plain"])),
                     "s_per_frame_divisions": r6(median(samples["divisions"])),
                     "objects": result[False][0], "objects_divisions": result[True][0],
                     "divisions_found": result[True][1]},
            "reference": None,
            "reference_note": "Meta's sam2 has no track-everything; ratio is against our propagate() "
                              "of the frame-0 objects (encoding included on both)",
            "propagate_s_per_frame": r6(median(samples["propagate"])),
            "ratio": r6(ratio(median(samples["plain"]), median(samples["propagate"]))),
            "samples": {k: [r6(t) for t in v] for k, v in samples.items()},
        }
    )


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny run for the smoke test (256 px, 8 x 8 points)")
    p.add_argument("--size", type=int, default=None, help="frame and model size (default 1024)")
    p.add_argument("--points", type=int, default=None, help="points per side (default 32)")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per side (default 2)")
    p.add_argument("--cases", default=",".join([*CASES, TRACK_CASE]),
                   help="comma-separated: " + ", ".join([*CASES, TRACK_CASE]))
    add_threads_option(p)
    args = p.parse_args(argv)
    require_reference()
    apply_threads(args.threads)
    torch.set_grad_enabled(False)
    size = args.size or (256 if args.quick else 1024)
    points = args.points or (8 if args.quick else 32)
    repeats = args.repeats or (1 if args.quick else 2)
    names = args.cases.split(",")
    for name in names:
        if name not in CASES and name != TRACK_CASE:
            raise SystemExit(f"unknown case {name!r}; choose from {', '.join([*CASES, TRACK_CASE])}")
    for name in names:
        if name == TRACK_CASE:
            run_track_case(6 if args.quick else None, repeats)
        else:
            run_case(name, size, points, repeats)


if __name__ == "__main__":
    main()
