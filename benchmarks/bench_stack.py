"""Stack engine vs Meta's SAM2VideoPredictor (sam2 1.1.0): speed and memory.

Same random weights, float32 on the CPU, tiny model. One JSON line per case:

first_propagation
    One object, one positive click on frame 0, forward through N frames
    (512 x 512 8-bit frames, model at 512). The reference reads a JPEG
    folder; ours gets the same decoded uint8 frames with a (0, 255) range.
    Seconds per frame, the reference's frame loading (``init_state``)
    counted in its time and reported separately.
repropagate_after_correction
    Both propagate forward over 24 frames; then a correction click on frame
    4 and a re-propagation over frames 4..23 (20 frames). Only the
    correction + re-propagation is timed; it is repeated (a new click on
    frame 4 each time) and the median taken. Target: ratio <= 0.59.
peak_rss
    Peak memory of a forward propagation over 20 and over 200 frames, each
    in a fresh subprocess: ``ru_maxrss`` and the peak ``RssAnon`` (sampled
    in a thread; memory-mapped input pages do not count there). Ours reads a
    memory-mapped uint16 TIFF of 640 x 640 frames with explicit cache budgets;
    the reference reads the same frames as 8-bit JPEGs.
    ``peak_rss_ours_defaults``: ours at the default budgets, for information.
cuda_fps_tiny / cuda_fps_large
    Frames per second on CUDA with bfloat16 autocast, next to Meta's
    published figures (A100, full compilation); "skipped" without CUDA.

``ratio`` = ours / reference (for times and memory: < 1 means we are better).

    python benchmarks/bench_stack.py                      # everything
    python benchmarks/bench_stack.py --cases peak_rss --skip-slow-reference
    python benchmarks/bench_stack.py --quick              # smoke test size (model at 128,
                                                          # 2-4 frames, no defaults run)
"""

from __future__ import annotations

import _common  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads)
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _common import (
    add_threads_option,
    apply_threads,
    MODEL,
    AnonPeak,
    alternate,
    build_pair,
    emit,
    log,
    max_rss_mb,
    median,
    our_model,
    r6,
    ratio,
    random_state,
    require_reference,
    paired_ratio,
    settings,
    synthetic_frames,
    first_click,
)

CASES = ("first_propagation", "repropagate_after_correction", "peak_rss", "cuda_fps")
# budgets that bound our memory in the peak_rss case
FEATURE_RAM_MB = 64.0
HISTORY_MB = 16.0
# Meta's published speeds (SAM 2.1 release notes: A100, torch.compile of the
# whole model, bfloat16); the figure our CUDA numbers are set beside
META_A100_FPS = {"sam2.1_hiera_tiny": 91.0, "sam2.1_hiera_large": 40.0}


# ------------------------------------------------------------------ frames
def write_jpegs(folder: Path, frames_u8: np.ndarray) -> np.ndarray:
    """Save ``N x H x W`` (grey) or ``N x H x W x 3`` uint8 frames as JPEGs
    named the way the reference wants; return them decoded as RGB."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    decoded = []
    for t, frame in enumerate(frames_u8):
        path = folder / f"{t:05d}.jpg"
        Image.fromarray(frame).save(path, quality=95)
        decoded.append(np.array(Image.open(path).convert("RGB")))
    return np.stack(decoded)


def to_u8(frames: np.ndarray) -> np.ndarray:
    return np.round(frames * 255).astype(np.uint8)


def ref_points(yx) -> np.ndarray:
    return np.asarray(yx, dtype=np.float32)[:, ::-1].copy()  # (y, x) -> (x, y)


def _ref_init(ref, folder: Path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ref.init_state(video_path=str(folder))


def _ref_propagate(ref, state, **kw) -> int:
    import warnings

    n = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in ref.propagate_in_video(state, **kw):
            n += 1
    return n


def _ref_click(ref, state, frame, yx, labels, **kw):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ref.add_new_points_or_box(
            state, frame_idx=frame, obj_id=1, points=ref_points(yx), labels=labels, **kw
        )


def _our_session(model, frames_rgb, **kw):
    from napari_sam2 import StackSession

    return StackSession(model, frames_rgb, channel_axis=-1, intensity_range=(0, 255), **kw)


def _our_propagate(session, direction="forward") -> int:
    n = 0
    for _ in session.propagate(direction):
        n += 1
    return n


# ------------------------------------------------------------ a. first run
def case_first_propagation(ours, ref, size: int, n: int, repeats: int, work: Path) -> None:
    frames = to_u8(synthetic_frames(n, size, size, seed=1))
    rgb = write_jpegs(work / "first", frames)
    warm = write_jpegs(work / "first_warm", frames[:2])
    click = first_click(size, size)

    ref_load: list[float] = []

    def run_ours(data=rgb):
        s = _our_session(ours, data)
        s.add_points(1, 0, click, [1])
        assert _our_propagate(s) == len(data)

    def run_ref(folder=work / "first", count=n):
        t0 = time.perf_counter()
        st = _ref_init(ref, folder)
        ref_load.append(time.perf_counter() - t0)
        _ref_click(ref, st, 0, click, [1])
        assert _ref_propagate(ref, st) == count

    log(f"first_propagation: warm-up (2 frames), then {repeats} alternating runs of {n} frames")
    with torch.inference_mode():
        run_ours(rgb[:2])
        run_ref(work / "first_warm", 2)
        ref_load.clear()
        t_ours, t_ref = alternate(run_ours, run_ref, repeats)
    log(f"  ours {t_ours}  reference {t_ref} (loading {ref_load})")
    o, r, load = median(t_ours) / n, median(t_ref) / n, median(ref_load) / n
    emit(
        {
            "case": "first_propagation",
            **settings(size, frames=n, frame_shape=[size, size], device="cpu", dtype="float32", repeats=repeats),
            "ours": {"s_per_frame": r6(o), "total_s": r6(median(t_ours))},
            "reference": {
                "s_per_frame": r6(r),
                "loading_s_per_frame": r6(load),
                "s_per_frame_without_loading": r6(r - load),
                "total_s": r6(median(t_ref)),
                "loading_s": r6(median(ref_load)),
            },
            "ratio": ratio(o, r),
            "ratio_without_reference_loading": ratio(o, r - load),
            "ratio_paired_median": paired_ratio(t_ours, t_ref),
            "samples": {"ours_total_s": [r6(x) for x in t_ours], "reference_total_s": [r6(x) for x in t_ref]},
        }
    )


# --------------------------------------------------- b. correction re-run
def case_repropagate(ours, ref, size: int, n: int, fix_frame: int, repeats: int, work: Path) -> None:
    frames = to_u8(synthetic_frames(n, size, size, seed=2))
    rgb = write_jpegs(work / "repro", frames)
    click = first_click(size, size)
    span = n - fix_frame
    # a different correction click on the fix frame each round: alternately a
    # positive one near the tracked blob and a negative one in the background
    h = w = size
    fixes = [
        ([[0.36 * h + 0.01 * h * i, 0.37 * w]], [1]) if i % 2 == 0 else ([[0.1 * h + 0.01 * h * i, 0.9 * w]], [0])
        for i in range(repeats + 1)
    ]

    log(f"repropagate_after_correction: first propagation over {n} frames (both)")
    ref.add_all_frames_to_correct_as_cond = True
    try:
        with torch.inference_mode():
            session = _our_session(ours, rgb)
            session.add_points(1, 0, click, [1])
            assert _our_propagate(session) == n
            st = _ref_init(ref, work / "repro")
            _ref_click(ref, st, 0, click, [1])
            assert _ref_propagate(ref, st) == n

            counts = {"ours": [], "reference": []}

            def run_ours():
                yx, lab = next(rounds_ours)
                session.add_points(1, fix_frame, yx, lab)
                counts["ours"].append(_our_propagate(session))

            def run_ref():
                yx, lab = next(rounds_ref)
                _ref_click(ref, st, fix_frame, yx, lab, clear_old_points=False)
                counts["reference"].append(
                    _ref_propagate(ref, st, start_frame_idx=fix_frame, max_frame_num_to_track=span - 1)
                )

            rounds_ours, rounds_ref = iter(fixes), iter(fixes)
            log("  warm-up correction (untimed)")
            run_ours()
            run_ref()
            log(f"  {repeats} alternating timed corrections on frame {fix_frame}, re-running {span} frames")
            t_ours, t_ref = alternate(run_ours, run_ref, repeats)
            # do both agree on the last frame?
            last = n - 1
            our_mask = session.labels[last] == 1
            ref_mask = None
            if last in st["output_dict_per_obj"][0]["non_cond_frame_outputs"]:
                ref_low = st["output_dict_per_obj"][0]["non_cond_frame_outputs"][last]["pred_masks"]
                ref_mask = (
                    torch.nn.functional.interpolate(ref_low.float(), size=(size, size), mode="bilinear",
                                                    align_corners=False)[0, 0] > 0
                ).numpy()
    finally:
        ref.add_all_frames_to_correct_as_cond = False
    assert all(c == span for c in counts["ours"]), counts
    assert all(c == span for c in counts["reference"]), counts
    iou = None
    if ref_mask is not None:
        union = np.logical_or(our_mask, ref_mask).sum()
        iou = float(np.logical_and(our_mask, ref_mask).sum() / union) if union else 1.0
    log(f"  ours {t_ours}  reference {t_ref}")
    o, r = median(t_ours), median(t_ref)
    emit(
        {
            "case": "repropagate_after_correction",
            **settings(
                size, frames=n, correction_frame=fix_frame, frames_rerun=span, frame_shape=[size, size],
                device="cpu", dtype="float32", repeats=repeats,
            ),
            "ours": {"s": r6(o), "s_per_frame": r6(o / span)},
            "reference": {"s": r6(r), "s_per_frame": r6(r / span)},
            "ratio": ratio(o, r),
            "ratio_paired_median": paired_ratio(t_ours, t_ref),
            "speedup": round(r / o, 3),
            "target_ratio": 0.59,
            "meets_target": bool(o / r <= 0.59),
            "last_frame_mask_iou": None if iou is None else round(iou, 4),
            "samples": {"ours_s": [r6(x) for x in t_ours], "reference_s": [r6(x) for x in t_ref]},
        }
    )


# ---------------------------------------------------------- c. peak memory
def _write_peak_data(work: Path, counts, size_px: int, model_size: int) -> Path:
    import tifffile

    folder = work / "peak"
    folder.mkdir(parents=True, exist_ok=True)
    n_max = max(counts)
    log(f"peak_rss: writing {n_max} frames of {size_px} x {size_px} (uint16 TIFF and 8-bit JPEGs)")
    frames = synthetic_frames(n_max, size_px, size_px, seed=3)
    u16 = np.round(frames * 65535).astype(np.uint16)
    u8 = to_u8(frames)
    for n in counts:
        tifffile.imwrite(folder / f"stack_{n}.tif", u16[:n], photometric="minisblack")
        write_jpegs(folder / f"jpeg_{n}", u8[:n])
    torch.save(random_state(MODEL, model_size, 0), folder / "weights.pt")
    return folder


def peak_worker(impl: str, n: int, folder: Path, model_size: int, defaults: bool) -> None:
    """Runs in a fresh process: one forward propagation, then one JSON line."""
    torch.set_grad_enabled(False)
    with AnonPeak() as anon:
        state = torch.load(folder / "weights.pt", mmap=True, weights_only=True)
        size_px = None
        if impl == "ours":
            import tifffile

            from napari_sam2 import CacheBudget, SessionOptions, StackSession

            model = our_model(MODEL, model_size, state=state)
            del state
            options = SessionOptions() if defaults else SessionOptions(
                feature_cache=CacheBudget(ram_mb=FEATURE_RAM_MB), history_mb=HISTORY_MB
            )
            stack = tifffile.memmap(folder / f"stack_{n}.tif", mode="r")
            assert isinstance(stack, np.memmap)
            size_px = stack.shape[1]
            base_anon = AnonPeak.read_kb() / 1024
            t0 = time.perf_counter()
            with torch.inference_mode():
                session = StackSession(model, stack, intensity_range="dtype", options=options)
                session.add_points(1, 0, first_click(*stack.shape[1:]), [1])
                done = _our_propagate(session)
            seconds = time.perf_counter() - t0
            extra = {
                "labels_mb": session.labels.nbytes / 2**20,
                "feature_cache_mb": session._features.ram_bytes / 2**20,
                "history_mb": session._bank.history_nbytes / 2**20,
                "budgets": {
                    "feature_cache_ram_mb": options.feature_cache.ram_mb,
                    "feature_cache_disk_mb": options.feature_cache.disk_mb,
                    "history_mb": options.history_mb,
                },
            }
        else:
            from tests.reference.conftest import build_reference

            ref = build_reference(MODEL, model_size)
            ref.load_state_dict(state, strict=True)
            del state
            base_anon = AnonPeak.read_kb() / 1024
            t0 = time.perf_counter()
            with torch.inference_mode():
                st = _ref_init(ref, folder / f"jpeg_{n}")
                size_px = st["video_height"]
                _ref_click(ref, st, 0, first_click(st["video_height"], st["video_width"]), [1])
                done = _ref_propagate(ref, st)
            seconds = time.perf_counter() - t0
            extra = {}
    assert done == n, (done, n)
    print(
        json.dumps(
            {
                "impl": impl,
                "frames": n,
                "frame_px": size_px,
                "max_rss_mb": max_rss_mb(),
                "vm_hwm_mb": AnonPeak.read_kb("VmHWM") / 1024,
                "peak_anon_mb": anon.peak_mb,
                "anon_before_session_mb": base_anon,
                "s_per_frame": seconds / n,
                **extra,
            }
        ),
        flush=True,
    )


# Linux carries a process's peak RSS over fork + exec: a worker started
# straight from this (large) process would report our own peak as its
# ru_maxrss. A small launcher process in between keeps the worker's figure its own.
_LAUNCHER = "import subprocess, sys; sys.exit(subprocess.run(sys.argv[1:]).returncode)"


def _worker_cmd(impl: str, n: int, folder: Path, model_size: int, defaults: bool) -> list[str]:
    cmd = [sys.executable, "-c", _LAUNCHER, sys.executable, __file__, "--worker", impl, "--worker-frames", str(n),
           "--worker-data", str(folder), "--size", str(model_size), "--threads", str(torch.get_num_threads())]
    if defaults:
        cmd.append("--worker-defaults")
    return cmd


def _run_workers(specs: list[tuple[str, int, bool]], folder: Path, model_size: int, parallel: bool) -> list[dict]:
    """Run one fresh process per ``(impl, frames, defaults)``: one after the
    other (for timings), or all at once (``--quick``: only memory matters)."""
    procs, results = [], []
    for impl, n, defaults in specs:
        log(f"  fresh process: {impl} {n} frames{' (default budgets)' if defaults else ''}")
        cmd = _worker_cmd(impl, n, folder, model_size, defaults)
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True))
        if not parallel:
            procs[-1].wait()
    for proc, spec in zip(procs, specs):
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"peak_rss worker {spec} failed with exit status {proc.returncode}")
        result = json.loads(out.strip().splitlines()[-1])
        log(f"    {result}")
        results.append(result)
    return results


def _summary(small: dict | None, big: dict | None, ours: bool) -> dict:
    def mb(x):
        return None if x is None else round(x, 1)

    out: dict = {}
    for key, r in (("at_small", small), ("at_large", big)):
        if r is None:
            out[key] = None
            continue
        d = {"frames": r["frames"], "max_rss_mb": mb(r["max_rss_mb"]), "vm_hwm_mb": mb(r["vm_hwm_mb"]),
             "peak_anon_mb": mb(r["peak_anon_mb"]),
             "anon_before_session_mb": mb(r["anon_before_session_mb"]), "s_per_frame": r6(r["s_per_frame"])}
        if ours:
            d["labels_mb"] = mb(r["labels_mb"])
            d["max_rss_beyond_labels_mb"] = mb(r["max_rss_mb"] - r["labels_mb"])
            d["peak_anon_beyond_labels_mb"] = mb(r["peak_anon_mb"] - r["labels_mb"])
            d["feature_cache_mb_at_end"] = mb(r["feature_cache_mb"])
            d["history_mb_at_end"] = mb(r["history_mb"])
        out[key] = d
    if small is not None and big is not None:
        frames = big["frames"] - small["frames"]
        suffix = "_beyond_labels" if ours else ""
        for what in ("max_rss", "peak_anon"):
            a = out["at_small"][f"{what}{suffix}_mb" if ours else f"{what}_mb"]
            b = out["at_large"][f"{what}{suffix}_mb" if ours else f"{what}_mb"]
            out[f"growth_{what}{suffix}_mb"] = mb(b - a)
            out[f"growth_{what}{suffix}_mb_per_frame"] = round((b - a) / frames, 4)
        if ours:
            a, b = out["at_small"]["peak_anon_mb"], out["at_large"]["peak_anon_mb"]
            out["growth_peak_anon_mb_with_labels"] = mb(b - a)
    return out


def case_peak_rss(
    counts, size_px: int, model_size: int, work: Path, skip_slow_ref: bool, defaults_run: bool, parallel: bool
) -> None:
    small, big = counts
    folder = _write_peak_data(work, counts, size_px, model_size)
    specs = [("ours", small, False), ("ours", big, False), ("reference", small, False)]
    if not skip_slow_ref:
        specs.append(("reference", big, False))
    if defaults_run:
        specs.append(("ours", big, True))
    runs = dict(zip([(impl, n, d) for impl, n, d in specs], _run_workers(specs, folder, model_size, parallel)))
    runs = {**{k[:2]: v for k, v in runs.items() if not k[2]}, "defaults": runs.get(("ours", big, True))}
    runs.setdefault(("reference", big), None)
    ours = _summary(runs[("ours", small)], runs[("ours", big)], ours=True)
    ref = _summary(runs[("reference", small)], runs[("reference", big)], ours=False)
    ours_big, ref_big = ours["at_large"], ref["at_large"]
    emit(
        {
            "case": "peak_rss",
            **settings(model_size, frames=list(counts), frame_shape=[size_px, size_px], device="cpu", dtype="float32"),
            "ours_input": "memory-mapped uint16 TIFF (tifffile.memmap)",
            "reference_input": "8-bit JPEG folder",
            "budgets": {"feature_cache_ram_mb": FEATURE_RAM_MB, "history_mb": HISTORY_MB},
            "ours": ours,
            "reference": ref,
            "ratio": {
                "peak_anon_at_large": None if ref_big is None else ratio(ours_big["peak_anon_mb"], ref_big["peak_anon_mb"]),
                "max_rss_at_large": None if ref_big is None else ratio(ours_big["max_rss_mb"], ref_big["max_rss_mb"]),
                "growth_per_frame_anon": None if ref_big is None else ratio(
                    ours["growth_peak_anon_beyond_labels_mb_per_frame"], ref["growth_peak_anon_mb_per_frame"]
                ),
            },
            "reference_large_skipped": ref_big is None,
        }
    )
    if defaults_run:
        d = runs["defaults"]
        emit(
            {
                "case": "peak_rss_ours_defaults",
                **settings(model_size, frames=big, frame_shape=[size_px, size_px], device="cpu", dtype="float32"),
                "budgets": d["budgets"],
                "ours": _summary(None, d, ours=True)["at_large"],
                "reference": None if ref_big is None else {"peak_anon_mb": ref_big["peak_anon_mb"],
                                                           "max_rss_mb": ref_big["max_rss_mb"]},
                "ratio": None if ref_big is None else ratio(d["peak_anon_mb"], ref_big["peak_anon_mb"]),
                "note": "information only: default budgets (1024 MB feature cache, 256 MB history)",
            }
        )


# ------------------------------------------------------------- d. CUDA FPS
def case_cuda_fps(n: int, compile_encoder: bool, device: str = "cuda", models=tuple(META_A100_FPS)) -> None:
    cuda = device == "cuda"
    if cuda and not torch.cuda.is_available():
        emit({"case": "cuda_fps", **settings(1024, device="cuda"), "skipped": "no CUDA",
              "ours": None, "reference": None, "ratio": None})
        return
    from napari_sam2 import SessionOptions, StackSession

    sync = torch.cuda.synchronize if cuda else (lambda: None)
    for name in models:
        model = our_model(name, 1024, device=device)
        frames = np.round(synthetic_frames(n, 720, 1280, seed=4) * 65535).astype(np.uint16)
        options = SessionOptions(autocast=True, compile_image_encoder=compile_encoder)
        click = first_click(720, 1280)
        with torch.inference_mode():
            warm = StackSession(model, frames[:8], intensity_range="dtype", options=options)
            warm.add_points(1, 0, click, [1])
            _our_propagate(warm)
            session = StackSession(model, frames, intensity_range="dtype", options=options)
            session.add_points(1, 0, click, [1])
            stamps = []
            for _ in session.propagate("forward"):
                sync()
                stamps.append(time.perf_counter())
        # steady state: skip the first frames (prompt decoding, compilation)
        skip = min(8, n // 4)
        done, seconds = len(stamps) - 1 - skip, stamps[-1] - stamps[skip]
        fps = done / seconds
        ref_fps = META_A100_FPS[name]
        emit(
            {
                "case": f"cuda_fps_{name.split('_')[-1]}",
                "model": name, "image_size": 1024, "frames": n, "frames_timed": done, "frame_shape": [720, 1280],
                "threads": torch.get_num_threads(),
                "device": torch.cuda.get_device_name(0) if cuda else device,
                "autocast": "bfloat16" if cuda else None,
                "compile_image_encoder": compile_encoder,
                "ours": {"fps": round(fps, 2), "s_per_frame": r6(1 / fps)},
                "reference": {"fps": ref_fps, "s_per_frame": r6(1 / ref_fps),
                              "source": "Meta's published figure: A100, full torch.compile, bfloat16"},
                "ratio": ratio(1 / fps, 1 / ref_fps),
            }
        )
        del model, session, warm
        if cuda:
            torch.cuda.empty_cache()


# ------------------------------------------------------------------ main
def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes for the smoke test")
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {', '.join(CASES)}")
    p.add_argument("--size", type=int, default=None, help="model image size (default 512; 128 with --quick)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per implementation (default 2 / 3)")
    p.add_argument("--skip-slow-reference", action="store_true", help="skip the reference's 200-frame peak_rss run")
    p.add_argument("--no-defaults-run", action="store_true", help="skip our peak_rss run at the default budgets")
    p.add_argument("--cuda-compile", action="store_true", help="cuda_fps with compile_image_encoder=True")
    p.add_argument("--fps-device", default="cuda", help=argparse.SUPPRESS)  # to try the CUDA case's code on the CPU
    p.add_argument("--fps-models", default=",".join(META_A100_FPS), help=argparse.SUPPRESS)
    p.add_argument("--work-dir", default=None, help="where to write frames (default: a temporary folder)")
    # internal: one peak-memory measurement in a fresh process
    p.add_argument("--worker", choices=("ours", "reference"), help=argparse.SUPPRESS)
    p.add_argument("--worker-frames", type=int, help=argparse.SUPPRESS)
    p.add_argument("--worker-data", help=argparse.SUPPRESS)
    p.add_argument("--worker-defaults", action="store_true", help=argparse.SUPPRESS)
    add_threads_option(p)
    args = p.parse_args(argv)
    apply_threads(args.threads)

    size = args.size or (128 if args.quick else 512)
    if args.worker:
        peak_worker(args.worker, args.worker_frames, Path(args.worker_data), size, args.worker_defaults)
        return
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = set(cases) - set(CASES)
    if unknown:
        p.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    if set(cases) - {"cuda_fps"}:
        require_reference()
    torch.set_grad_enabled(False)

    q = args.quick
    with tempfile.TemporaryDirectory(prefix="napari-sam2-bench-") as tmp:
        work = Path(args.work_dir) if args.work_dir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        pair = None
        if "first_propagation" in cases or "repropagate_after_correction" in cases:
            log(f"building {MODEL} at {size} (ours and reference, same random weights)")
            pair = build_pair(MODEL, size, seed=0)
        if "first_propagation" in cases:
            case_first_propagation(*pair, size, n=2 if q else 16, repeats=args.repeats or (1 if q else 2), work=work)
        if "repropagate_after_correction" in cases:
            case_repropagate(*pair, size, n=4 if q else 24, fix_frame=1 if q else 4,
                             repeats=args.repeats or (1 if q else 3), work=work)
        pair = None
        if "peak_rss" in cases:
            counts = (2, 3) if q else (20, 200)
            px = 160 if q else 640
            defaults_run = not (args.no_defaults_run or q)
            case_peak_rss(counts, px, size, work, args.skip_slow_reference, defaults_run=defaults_run, parallel=q)
        if "cuda_fps" in cases:
            case_cuda_fps(n=16 if q else 200, compile_encoder=args.cuda_compile, device=args.fps_device,
                          models=tuple(args.fps_models.split(",")))


if __name__ == "__main__":
    main()
