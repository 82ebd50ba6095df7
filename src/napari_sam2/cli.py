"""Command line: segment and track headless, list and fetch models, run the demo.

    napari-sam2 demo                        # offline, end to end, with the shipped demo model
    napari-sam2 demo --gui                  # the same sample and model in napari
    napari-sam2 segment stack.tif --model sam2.1_hiera_small --point 0,120,88 --out labels.tif
    napari-sam2 segment stack.tif --model demo --auto --detect-every 5 --out labels.tif --ctc ctc/
    napari-sam2 models                      # known models and whether they are cached
    napari-sam2 download sam2.1_hiera_large # fetch a checkpoint ahead of time
    napari-sam2 batch "plate/*.tif" --prompts prompts.json --out results --workers 2

Points are ``FRAME,Y,X`` (napari order) with an optional ``,ID`` (object id,
default 1); ``--neg`` adds a negative click; ``--box FRAME,Y0,X0,Y1,X1[,ID]``.
Frames and ids are whole numbers (frame >= 0, id >= 1), coordinates finite.
A stack with further axes (T x Z x Y x X) holds them with ``--index AXIS=POS``.
``--out`` is checked before any work (its folder must exist and take files,
it must not be the input) and written atomically: an interrupted run leaves
an older file there untouched. A damaged or truncated input is an error.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np


class _Prompt:
    """``FRAME,coords...[,ID]`` of one ``--point``/``--neg``/``--box`` option."""

    def __init__(self, text: str, n: int, what: str) -> None:
        option = f"--{what}"
        try:
            values = [float(v) for v in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{option} {text!r}: expected comma-separated numbers") from None
        if len(values) not in (n, n + 1):
            raise argparse.ArgumentTypeError(
                f"{option} {text!r}: expected {n} numbers (+ an optional object id), got {len(values)}"
            )
        if not all(math.isfinite(v) for v in values):
            raise argparse.ArgumentTypeError(f"{option} {text!r}: every number must be finite (no inf or nan)")
        self.frame = _whole(values[0], option, text, "frame", minimum=0)
        self.coords = values[1:n]
        self.obj_id = _whole(values[n], option, text, "object id", minimum=1) if len(values) > n else 1


def _whole(value: float, option: str, text: str, what: str, *, minimum: int) -> int:
    if value != int(value):
        raise argparse.ArgumentTypeError(f"{option} {text!r}: the {what} must be a whole number, got {value:g}")
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{option} {text!r}: the {what} must be >= {minimum}, got {value:g}")
    return int(value)


def _point(text: str) -> _Prompt:
    return _Prompt(text, 3, "point")


def _neg(text: str) -> _Prompt:
    return _Prompt(text, 3, "neg")


def _box(text: str) -> _Prompt:
    return _Prompt(text, 5, "box")


def _index(text: str) -> tuple[int, int]:
    try:
        axis, position = (int(v) for v in text.split("="))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--index {text!r}: expected AXIS=POSITION, two whole numbers (e.g. 1=0)"
        ) from None
    return axis, position


_PROMPT_OPTIONS = ("--point", "--neg", "--box", "--index")


def _looks_negative(token: str) -> bool:
    return token.startswith("-") and (token[1:2].isdigit() or token[1:2] == "."
                                      or token[1:4].lower() in ("inf", "nan"))


def _join_negative_values(argv: list[str]) -> list[str]:
    """``--point -1,32,32`` as ``--point=-1,32,32``: argparse would take the
    value for an option and say only "expected one argument"."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in _PROMPT_OPTIONS and i + 1 < len(argv) and _looks_negative(argv[i + 1]):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def _progress_bar(total_hint: str, unit: str = "frame"):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with napari
        return None
    bar = tqdm(desc=total_hint, unit=unit)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()
        if done == total:
            bar.close()

    return update


def _check_held_axes(shape: tuple[int, ...], args) -> dict[int, int] | None:
    """The ``--index`` positions, once sure every extra axis has one (the
    engine's own message would name its Python argument, ``index=``)."""
    ndim = len(shape)
    index = {}
    for axis, position in args.index:
        if not -ndim <= axis < ndim:
            raise ValueError(f"--index {axis}={position}: the input has {ndim} axes (0 to {ndim - 1})")
        index[axis % ndim] = position
    in_range = [a for a in (args.axis, args.channel_axis) if a is not None and not -ndim <= a < ndim]
    if in_range:
        return index or None  # the engine names the bad --axis / --channel-axis
    channel = None if args.channel_axis is None else args.channel_axis % ndim
    axis = args.axis % ndim
    others = [a for a in range(ndim) if a != channel]
    missing = [a for a in others[:-2] if a != axis and a not in index]
    if missing:
        hint = ""
        if channel is None and shape[-1] in (3, 4) and shape[-2] > 2 * shape[-1]:
            hint = f"; if the last axis (size {shape[-1]}) holds colour channels, pass --channel-axis -1"
        raise ValueError(
            f"input {args.input} has shape {shape}: besides the propagation axis {axis} "
            f"(--axis) and Y, X, axis {missing[0]} must be held at one position, "
            f"e.g. --index {missing[0]}=0{hint}"
        )
    return index or None


def cmd_segment(args) -> int:
    import tifffile

    from ._io import atomic_file, check_destination
    from .checkpoints import load_model
    from .engine import StackSession
    from .engine.stack_files import open_stack

    prompted = bool(args.point or args.neg or args.box)
    if args.auto and prompted:
        raise SystemExit("give either --auto or --point/--neg/--box, not both")
    if not args.auto and not prompted:
        raise SystemExit("give at least one --point, --neg or --box (or --auto to track everything)")
    direction = args.direction or ("forward" if args.auto else "both")
    if args.auto and direction == "both":
        raise SystemExit("--auto tracks in one pass: --direction forward or backward")
    if (args.divisions or args.single_mask) and not args.auto:
        raise SystemExit("--divisions and --single-mask go with --auto")
    if args.divisions and direction != "forward":
        raise SystemExit("--divisions are found going forward: leave out --direction backward")
    out = check_destination(args.out, inputs=[args.input], what="--out")
    if args.ctc is not None:
        _check_ctc_folder(args.ctc)
    data = open_stack(args.input)
    index = _check_held_axes(tuple(data.shape), args)
    model = load_model(args.model, device=args.device, image_size=args.image_size)
    session = StackSession(model, data, axis=args.axis, channel_axis=args.channel_axis, index=index)
    for p in args.box:
        session.add_box(p.obj_id, p.frame, p.coords)
    for p, positive in [(p, 1) for p in args.point] + [(p, 0) for p in args.neg]:
        session.add_points(p.obj_id, p.frame, [p.coords], [positive])
    started = time.perf_counter()
    if args.auto:
        from .engine.automatic import AutomaticOptions
        from .engine.division_options import DivisionOptions

        options = AutomaticOptions(points_per_side=args.points_per_side, multimask_output=not args.single_mask)
        frames = session.track_everything(direction, detect_every=args.detect_every, options=options,
                                          divisions=DivisionOptions() if args.divisions else None,
                                          progress=_progress_bar("track all"))
    else:
        frames = session.propagate(direction, progress=_progress_bar("propagate"))
    for _ in frames:
        pass
    elapsed = time.perf_counter() - started
    with atomic_file(out, inputs=[args.input], what="--out") as fh:
        tifffile.imwrite(fh, session.labels, photometric="minisblack", compression="zlib")
    if args.ctc is not None:
        from .export import write_ctc

        write_ctc(session, args.ctc)
        print(f"wrote the Cell Tracking Challenge layout into {args.ctc}", file=sys.stderr)
    divided = sorted(set(session.lineage.links().values()))
    print(f"wrote {out}: {session.num_frames} frames, objects {session.object_ids}, "
          + (f"divisions of {divided}, " if args.divisions else "") + f"{elapsed:.1f} s", file=sys.stderr)
    return 0



def _check_ctc_folder(folder: str) -> None:
    """Before any work: the --ctc folder exists and takes files, or can be made."""
    from ._io import check_folder

    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--ctc {folder}: a file of that name exists; give a folder")
    parent = path if path.is_dir() else path.parent
    if not parent.is_dir():
        raise FileNotFoundError(f"--ctc {folder}: the folder {parent} does not exist; create it first")
    check_folder(parent, f"--ctc {folder}")


def cmd_models(args) -> int:
    from .checkpoints import available_models, checkpoint_path

    for name in available_models():
        path = checkpoint_path(name)
        print(f"{name:26s} {'ready' if path.is_file() else 'not downloaded'}  {path}")
    return 0


def cmd_download(args) -> int:
    from .checkpoints import ensure_checkpoint

    print(ensure_checkpoint(args.name))
    return 0


def cmd_batch(args) -> int:
    from . import batch

    settings = {"model": args.model, "device": args.device, "image_size": args.image_size,
                "axis": args.axis, "channel_axis": args.channel_axis, "direction": args.direction,
                "detect_every": args.detect_every, "points_per_side": args.points_per_side,
                "divisions": args.divisions, "single_mask": args.single_mask}
    client = None
    if args.scheduler:
        from distributed import Client

        client = Client(args.scheduler)
    bar = _progress_bar("batch", unit="stack")
    try:
        summary = batch.run(args.inputs, args.out, prompts=args.prompts, auto=args.auto, client=client,
                            workers=args.workers, threads_per_worker=args.threads_per_worker,
                            progress=bar, **settings)
    finally:
        if client is not None:
            client.close()
    counts = {s: sum(r.status == s for r in summary) for s in ("done", "skipped", "failed")}
    for row in summary:
        if row.status == "failed":
            print(f"failed: {row.input}: {row.error}", file=sys.stderr)
    print(f"{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed; "
          f"summary in {Path(args.out) / batch.SUMMARY}", file=sys.stderr)
    return 1 if counts["failed"] else 0


def run_demo(out_dir: str | Path, *, device: str | None = None, log=print) -> dict:
    """Track three cells of the shipped time-lapse with the shipped demo model,
    offline; write the labels and return IoU against the ground truth."""
    import tifffile

    from ._io import atomic_file, check_destination
    from ._sample_data import load_sample_array
    from .checkpoints import load_model
    from .engine import StackSession
    from .training.evaluate import largest_lasting_clicks

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = check_destination(out / "cells_timelapse_demo_labels.tif", what="demo labels file")
    image = load_sample_array("cells_timelapse.tif")
    truth = load_sample_array("cells_timelapse_labels.tif")
    model = load_model("demo", device=device)
    session = StackSession(model, image)
    clicks = largest_lasting_clicks(truth, 3)
    chosen = [obj_id for obj_id, _ in clicks]
    for obj_id, (y, x) in clicks:
        log(f"click: object {obj_id} at frame 0, (y, x) = ({y:.0f}, {x:.0f})")
        session.add_points(obj_id, 0, [(y, x)], [1])
    started = time.perf_counter()
    for _ in session.propagate("forward", progress=_progress_bar("demo")):
        pass
    seconds = time.perf_counter() - started
    ious = {}
    for obj_id in chosen:
        inter = np.logical_and(session.labels == obj_id, truth == obj_id).sum()
        union = np.logical_or(session.labels == obj_id, truth == obj_id).sum()
        ious[int(obj_id)] = float(inter / union)
    with atomic_file(path, what="demo labels file") as fh:
        tifffile.imwrite(fh, session.labels.astype(np.uint16), photometric="minisblack", compression="zlib")
    log(f"tracked {len(chosen)} cells through {session.num_frames} frames in {seconds:.1f} s")
    for obj_id, iou in ious.items():
        log(f"object {obj_id}: IoU with the ground truth over all frames = {iou:.3f}")
    log(f"labels written to {path}")
    return {"labels": str(path), "iou": ious, "seconds": seconds}


def cmd_demo(args) -> int:
    if args.gui:
        return _demo_gui(args.device)
    run_demo(args.out, device=args.device)
    return 0


def _demo_gui(device: str | None = None) -> int:  # pragma: no cover - needs a display
    import napari

    viewer = napari.Viewer()
    viewer.open_sample("napari-sam2", "cells_timelapse")
    _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2 segment & track")
    widget.load_model("demo", device=device)
    napari.run()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-sam2", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    seg = sub.add_parser("segment", help="segment and track objects in a stack (TIFF)")
    seg.add_argument("input", help="a TIFF stack (frames along --axis)")
    seg.add_argument("--model", default="sam2.1_hiera_tiny", help="model name or checkpoint file")
    seg.add_argument("--point", type=_point, action="append", default=[], metavar="F,Y,X[,ID]")
    seg.add_argument("--neg", type=_neg, action="append", default=[], metavar="F,Y,X[,ID]")
    seg.add_argument("--box", type=_box, action="append", default=[], metavar="F,Y0,X0,Y1,X1[,ID]")
    seg.add_argument("--direction", choices=("forward", "backward", "both"), default=None,
                     help="default: both with prompts, forward with --auto")
    seg.add_argument("--auto", action="store_true",
                     help="segment everything on the first frame and track it, finding new objects as they appear")
    seg.add_argument("--detect-every", type=int, default=5, metavar="K",
                     help="with --auto: look for new objects every K frames (default 5)")
    seg.add_argument("--points-per-side", type=int, default=32, metavar="N",
                     help="with --auto: an N x N grid of prompts finds the objects (default 32; 16 is 4x faster)")
    seg.add_argument("--divisions", action="store_true",
                     help="with --auto: find cell divisions (daughters get their mother; written to --ctc)")
    seg.add_argument("--single-mask", action="store_true",
                     help="with --auto: one mask per grid point instead of three (for models whose "
                          "multimask outputs were not trained)")
    seg.add_argument("--ctc", default=None, metavar="FOLDER",
                     help="also write the Cell Tracking Challenge result layout into FOLDER")
    seg.add_argument("--axis", type=int, default=0, help="propagation axis (default 0)")
    seg.add_argument("--channel-axis", type=int, default=None)
    seg.add_argument("--index", type=_index, action="append", default=[], metavar="AXIS=POS",
                     help="hold a further axis (e.g. Z of a T x Z x Y x X stack) at one position")
    seg.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    seg.add_argument("--image-size", type=int, default=None, help="model input size, e.g. 512")
    seg.add_argument("--out", required=True, help="labels TIFF to write")
    seg.set_defaults(func=cmd_segment)

    models = sub.add_parser("models", help="list known models and where their files are")
    models.set_defaults(func=cmd_models)

    dl = sub.add_parser("download", help="download a model's checkpoint into the cache")
    dl.add_argument("name")
    dl.set_defaults(func=cmd_download)

    bat = sub.add_parser("batch", help="segment and track many stacks, one task each, on dask.distributed")
    bat.add_argument("inputs", nargs="+", help="stack files (TIFF, OME-TIFF), zarr folders or glob patterns")
    bat.add_argument("--out", required=True, help="output folder (one subfolder per stack + summary.csv)")
    how = bat.add_mutually_exclusive_group(required=True)
    how.add_argument("--prompts", help="JSON file: per stack file name, the objects' points and boxes")
    how.add_argument("--auto", action="store_true", help="track everything (no prompts)")
    bat.add_argument("--detect-every", type=int, default=5, help="with --auto: look for new objects every K frames")
    bat.add_argument("--points-per-side", type=int, default=32, metavar="N",
                     help="with --auto: an N x N grid of prompts finds the objects (default 32)")
    bat.add_argument("--divisions", action="store_true",
                     help="with --auto: find cell divisions (mothers in ctc/, objects.csv and lineage.csv)")
    bat.add_argument("--single-mask", action="store_true",
                     help="with --auto: one mask per grid point instead of three")
    bat.add_argument("--model", default="demo", help="model name or checkpoint file (default: demo)")
    bat.add_argument("--direction", choices=("forward", "backward", "both"), default="forward")
    bat.add_argument("--axis", type=int, default=0, help="propagation axis (default 0)")
    bat.add_argument("--channel-axis", type=int, default=None)
    bat.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    bat.add_argument("--image-size", type=int, default=None, help="model input size, e.g. 512")
    bat.add_argument("--workers", type=int, default=1, help="worker processes of the local cluster")
    bat.add_argument("--threads-per-worker", type=int, default=1)
    bat.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler (tcp://host:8786)")
    bat.set_defaults(func=cmd_batch)

    demo = sub.add_parser("demo", help="run the shipped demo model on the sample time-lapse (offline)")
    demo.add_argument("--out", default="napari-sam2-demo", help="folder for the labels TIFF")
    demo.add_argument("--device", default=None)
    demo.add_argument("--gui", action="store_true", help="open the sample and the widget in napari")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(_join_negative_values(argv))
    try:
        return args.func(args)
    except (ValueError, TypeError, IndexError, RuntimeError, OSError) as exc:
        print(f"napari-sam2: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
