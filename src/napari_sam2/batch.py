"""Many stacks, one task each, on ``dask.distributed``.

    summary = napari_sam2.batch.run(["plate/*.tif"], "results", prompts="prompts.json")
    summary = napari_sam2.batch.run(["plate/*.tif"], "results", auto=True, client=client)

Each stack is one task. By default a ``LocalCluster`` on this machine runs
them (``workers`` processes, ``threads_per_worker`` each); pass a
``dask.distributed.Client`` to use an existing cluster. Each worker process
loads the model once and keeps it for the stacks it runs.

Outputs, per stack, in ``out/<stack name>/``: ``labels.tif`` (or
``labels.zarr`` for stacks whose labels exceed ``zarr_above_mb``, written
frame by frame and never held whole in memory), ``session.sam2`` (the
session file: open it in the widget to correct the result), ``ctc/`` (the
Cell Tracking Challenge result layout), ``objects.csv`` (one row per object
and frame: mother, area, centroid, intensities), ``lineage.csv`` (one row per
object: mother, first and last frame, duration, children) and ``report.json`` (frames,
objects, seconds, model, settings, napari-sam2 version, the input's
fingerprint). A stack's folder is assembled under a temporary name and moved
into place whole, so an interrupted run never leaves half of one. The run
writes ``out/summary.csv`` (one row per stack: done, skipped or failed with
its error).

A rerun skips stacks whose folder is complete and whose input file and
settings (prompts included) did not change; stacks that failed are tried
again. A stack that fails is recorded and the others go on.
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from ._io import replace_folder, write_synced
from .engine.prompt_records import ObjectRecord, apply_objects, objects_to_json, parse_objects
from .engine.stack_files import is_stack_path, open_stack
from .export import write_ctc
from .tables import LINEAGE_COLUMNS, OBJECT_COLUMNS, lineage_summary, object_table, write_csv

__all__ = ["BatchSettings", "StackOutcome", "run", "expand_inputs", "process_stack"]

REPORT = "report.json"
SUMMARY = "summary.csv"
SUMMARY_COLUMNS = ("name", "input", "status", "frames", "objects", "seconds", "output", "error")
DIRECTIONS = ("forward", "backward", "both")


@dataclass(frozen=True, kw_only=True)
class BatchSettings:
    """How every stack of a run is processed.

    ``model``: a model name or checkpoint file; ``device``: cuda, mps, cpu
    or None (best available); ``image_size``: model input size (None: the
    model's own); ``axis``/``channel_axis``: as in :class:`StackSession`;
    ``direction``: forward, backward or both; ``auto``: track everything
    (no prompts) with new objects looked for every ``detect_every`` frames
    by a ``points_per_side`` x ``points_per_side`` grid of prompts
    (``single_mask``: one mask per prompt instead of three), finding cell
    divisions with ``divisions`` (forward only);
    ``zarr_above_mb``: labels larger than this are written frame by frame
    into ``labels.zarr`` instead of ``labels.tif``.
    """

    model: str = "demo"
    device: str | None = None
    image_size: int | None = None
    axis: int = 0
    channel_axis: int | None = None
    direction: str = "forward"
    auto: bool = False
    detect_every: int = 5
    points_per_side: int = 32
    divisions: bool = False
    single_mask: bool = False
    zarr_above_mb: float = 1024.0

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {self.direction!r}")
        if self.auto and self.direction == "both":
            raise ValueError("auto tracks in one pass: direction must be forward or backward")
        if (self.divisions or self.single_mask) and not self.auto:
            raise ValueError("divisions and single_mask go with auto=True (tracking everything)")
        if self.divisions and self.direction != "forward":
            raise ValueError("divisions are found going forward: direction must be forward")
        if not isinstance(self.detect_every, int) or self.detect_every < 1:
            raise ValueError(f"detect_every must be a whole number >= 1, got {self.detect_every!r}")
        if not self.zarr_above_mb >= 0:
            raise ValueError(f"zarr_above_mb must be >= 0, got {self.zarr_above_mb!r}")


@dataclass
class StackOutcome:
    """One stack's row of the summary."""

    name: str
    input: str
    status: str  # "done", "skipped" or "failed"
    frames: int = 0
    objects: int = 0
    seconds: float = 0.0
    output: str = ""
    error: str = ""


@dataclass(frozen=True)
class _Task:
    name: str
    input: str
    fingerprint: str
    objects: list[ObjectRecord] | None = field(default=None, hash=False)


# ------------------------------------------------------------------ inputs
def expand_inputs(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Files, zarr folders or glob patterns -> the stacks, in order, each once."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    found: list[Path] = []
    for item in inputs:
        text = os.fspath(item)
        if glob.has_magic(text):
            matches = [Path(m) for m in sorted(glob.glob(text)) if is_stack_path(m)]
            if not matches:
                raise FileNotFoundError(f"input pattern {text!r} matches no TIFF or zarr stack")
            found += matches
        else:
            found.append(Path(text))  # a missing file is reported as that stack's failure
    unique, seen = [], set()
    for p in found:
        key = os.path.abspath(p)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    if not unique:
        raise ValueError("inputs: give at least one stack file, zarr folder or glob pattern")
    return unique


def _stack_names(paths: list[Path]) -> list[str]:
    """Output folder names: the file name without its suffixes, made unique."""
    names, used = [], set()
    for p in paths:
        base = p.name.rstrip("/")
        for suffix in (".ome.tiff", ".ome.tif", ".tiff", ".tif", ".zarr"):
            if base.lower().endswith(suffix):
                base = base[: -len(suffix)]
                break
        name, k = base or "stack", 2
        while name in used:
            name, k = f"{base}-{k}", k + 1
        used.add(name)
        names.append(name)
    return names


def _load_prompts(prompts, paths: list[Path], names: list[str]) -> list[list[ObjectRecord] | None]:
    """Per stack, its records from the prompts file (keys: file names or stack names)."""
    where = "prompts"
    if isinstance(prompts, (str, os.PathLike)):
        where = os.fspath(prompts)
        try:
            with open(prompts, encoding="utf-8") as fh:
                prompts = json.load(fh)
        except FileNotFoundError:
            raise FileNotFoundError(f"prompts file {where!r} does not exist") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"prompts file {where!r} is not valid JSON: {exc}") from None
    if not isinstance(prompts, dict) or not isinstance(prompts.get("stacks"), dict):
        raise ValueError(f"{where}: expected {{\"stacks\": {{\"<file name>\": {{\"objects\": [...]}}}}}}")
    stacks = prompts["stacks"]
    known = {p.name for p in paths} | set(names)
    if stacks and not set(stacks) & known:
        raise ValueError(f"{where}: none of its stacks {sorted(stacks)} is among the inputs "
                         f"({sorted(p.name for p in paths)}); keys are file names such as 'well1.tif'")
    out = []
    for p, name in zip(paths, names):
        key = p.name if p.name in stacks else name if name in stacks else None
        out.append(None if key is None else parse_objects(stacks[key], where=f"{where}: stacks[{key!r}]"))
    return out


def _fingerprint(path: Path, settings: BatchSettings, objects: list[ObjectRecord] | None) -> str:
    """What a stack's output depends on: the input's size and mtime, the
    settings and the stack's prompts."""
    try:
        if path.is_dir():
            stats = [(str(f.relative_to(path)), f.stat().st_size, f.stat().st_mtime_ns)
                     for f in sorted(path.rglob("*")) if f.is_file()]
        else:
            st = path.stat()
            stats = [(path.name, st.st_size, st.st_mtime_ns)]
    except OSError:
        stats = []
    doc = {"input": stats, "settings": asdict(settings),
           "prompts": None if objects is None else objects_to_json(objects)}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _complete(folder: Path, fingerprint: str) -> dict | None:
    """The report of a finished stack folder with this fingerprint, else None."""
    try:
        report = json.loads((folder / REPORT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if report.get("fingerprint") != fingerprint or report.get("status") != "done":
        return None
    if not all((folder / name).exists() for name in report.get("outputs", [])):
        return None
    return report


# ------------------------------------------------------------------ worker side
@lru_cache(maxsize=2)
def _worker_model(name: str, device: str | None, image_size: int | None):
    """The model, loaded once per worker process (and per setting)."""
    from .checkpoints import load_model

    if device is None or device == "cuda":
        device = _worker_cuda_device(device)
    return load_model(name, device=device, image_size=image_size)


def _worker_cuda_device(device: str | None) -> str | None:
    """One GPU per worker: ``cuda:k`` by the worker's number when there are several."""
    import torch

    if not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        return device
    try:
        from distributed import get_worker

        index = int(str(get_worker().name).rsplit("-", 1)[-1])
    except (ImportError, ValueError, AttributeError):
        return device
    return f"cuda:{index % torch.cuda.device_count()}"


def process_stack(task: _Task, out: str, settings: BatchSettings) -> StackOutcome:
    """Run one stack and move its output folder into place (in a worker).

    Errors in the stack (an unreadable file, prompts that do not fit it)
    come back as a failed outcome; the worker carries on with the next one.
    """
    started = time.perf_counter()
    out_dir = Path(out)
    final = out_dir / task.name
    staging = out_dir / f".partial-{task.name}-{uuid.uuid4().hex[:8]}"
    try:
        staging.mkdir(parents=True)
        frames, objects, outputs = _segment_into(staging, task, settings)
        seconds = time.perf_counter() - started
        report = {
            "status": "done",
            "input": task.input,
            "fingerprint": task.fingerprint,
            "frames": frames,
            "objects": objects,
            "seconds": round(seconds, 3),
            "model": settings.model,
            "settings": asdict(settings),
            "napari_sam2_version": _version(),
            "outputs": outputs,
        }
        write_synced(staging / REPORT, json.dumps(report, indent=2).encode())
        replace_folder(staging, final)
        return StackOutcome(task.name, task.input, "done", frames, objects, seconds, str(final))
    except Exception as exc:  # one bad stack must not end the batch
        shutil.rmtree(staging, ignore_errors=True)
        return StackOutcome(task.name, task.input, "failed", seconds=time.perf_counter() - started,
                            error=f"{task.input}: {type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _segment_into(folder: Path, task: _Task, settings: BatchSettings) -> tuple[int, int, list[str]]:
    from .engine import FrameSource, StackSession

    if task.objects is None and not settings.auto:
        raise ValueError(f"no prompts for stack {task.name!r} in the prompts file (and auto is off)")
    data = open_stack(task.input)
    model = _worker_model(settings.model, settings.device, settings.image_size)
    source = FrameSource(data, axis=settings.axis, channel_axis=settings.channel_axis)
    shape = (len(source), *source.frame_shape)
    big = np.prod(shape) * 4 > settings.zarr_above_mb * 2**20
    if big:
        labels = _zarr_labels(folder / "labels.zarr", shape)
        outputs = ["labels.zarr"]
    else:
        labels = np.zeros(shape, np.int32)
        outputs = ["labels.tif"]
    session = StackSession(model, data, axis=settings.axis, channel_axis=settings.channel_axis, labels=labels)
    if settings.auto:
        from .engine.automatic import AutomaticOptions
        from .engine.division_options import DivisionOptions

        options = AutomaticOptions(points_per_side=settings.points_per_side, multimask_output=not settings.single_mask)
        frames = session.track_everything(settings.direction, detect_every=settings.detect_every, options=options,
                                          divisions=DivisionOptions() if settings.divisions else None)
    else:
        apply_objects(session, task.objects)
        frames = session.propagate(settings.direction)
    for _ in frames:
        pass
    if not big:
        _write_tiff(folder / "labels.tif", labels)
    session.save(folder / "session.sam2", model_source=settings.model)
    write_ctc(session, folder / "ctc")
    mothers = session.lineage.links()
    write_csv(folder / "objects.csv",
              object_table(session.labels, mothers=mothers, image=_Intensities(session.frames)), OBJECT_COLUMNS)
    write_csv(folder / "lineage.csv", lineage_summary(session.labels, mothers=mothers), LINEAGE_COLUMNS)
    outputs += ["session.sam2", "ctc", "objects.csv", "lineage.csv"]
    return session.num_frames, len(session.object_ids), outputs


class _Intensities:
    """The stack's frames as ``object_table`` reads them (one at a time; the
    mean over channels for colour data)."""

    def __init__(self, frames) -> None:
        self._frames = frames
        self.shape = (len(frames), *frames.frame_shape)

    def __getitem__(self, t: int) -> np.ndarray:
        frame = self._frames.read(int(t))
        return frame if frame.ndim == 2 else frame.mean(axis=-1)


def _zarr_labels(path: Path, shape: tuple[int, int, int]):
    import zarr

    return zarr.open(str(path), mode="w", shape=shape, chunks=(1,) + shape[1:], dtype="int32",
                     fill_value=0)


def _write_tiff(path: Path, labels: np.ndarray) -> None:
    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(buf, labels, photometric="minisblack", compression="zlib")
    write_synced(path, buf.getvalue())


def _version() -> str:
    from . import __version__

    return __version__


# ------------------------------------------------------------------ driver
def run(
    inputs,
    out,
    *,
    prompts=None,
    auto: bool = False,
    client=None,
    workers: int | None = None,
    threads_per_worker: int = 1,
    progress: Callable[[int, int], None] | None = None,
    **settings: Any,
) -> list[StackOutcome]:
    """Segment and track every stack of ``inputs`` into ``out``; returns the summary.

    Args:
        inputs: stack files (TIFF, OME-TIFF), zarr folders or glob patterns.
        out: the output folder (created if missing).
        prompts: a prompts file or document, ``{"stacks": {"<file name>":
            {"objects": [...]}}}`` (see :mod:`napari_sam2.engine.prompt_records`).
        auto: track everything instead (no prompts).
        client: a ``dask.distributed.Client``; by default a ``LocalCluster``
            with ``workers`` processes (default 1) is started and closed.
        progress: ``progress(done, total)`` after each stack.
        settings: the fields of :class:`BatchSettings` (model, device,
            image_size, axis, channel_axis, direction, detect_every,
            points_per_side, divisions, single_mask, zarr_above_mb).
    """
    config = replace(BatchSettings(), auto=bool(auto), **settings)
    if (prompts is None) == (not auto):
        raise ValueError("give either prompts (a prompts file) or auto=True, not both and not neither")
    paths = expand_inputs(inputs)
    names = _stack_names(paths)
    per_stack = [None] * len(paths) if prompts is None else _load_prompts(prompts, paths, names)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not os.access(out_dir, os.W_OK):
        raise PermissionError(f"output folder {str(out_dir)!r} is not writable")
    _remove_leftovers(out_dir)

    outcomes: dict[str, StackOutcome] = {}
    pending: list[_Task] = []
    for p, name, objects in zip(paths, names, per_stack):
        task = _Task(name, str(p), _fingerprint(p, config, objects), objects)
        report = _complete(out_dir / name, task.fingerprint)
        if report is not None:
            outcomes[name] = StackOutcome(name, str(p), "skipped", report.get("frames", 0),
                                          report.get("objects", 0), 0.0, str(out_dir / name))
        else:
            pending.append(task)
    done = len(outcomes)
    if progress is not None:
        progress(done, len(paths))
    if pending:
        for outcome in _run_tasks(pending, out_dir, config, client, workers, threads_per_worker):
            outcomes[outcome.name] = outcome
            done += 1
            if progress is not None:
                progress(done, len(paths))
    summary = [outcomes[name] for name in names]
    _write_summary(out_dir / SUMMARY, summary)
    return summary


def _run_tasks(tasks, out_dir, config, client, workers, threads_per_worker):
    from distributed import Client, LocalCluster, as_completed

    own = client is None
    cluster = None
    if own:
        cluster = LocalCluster(n_workers=workers or 1, threads_per_worker=threads_per_worker,
                               processes=True, dashboard_address=":0")
        client = Client(cluster)
    futures = []
    try:
        futures = [client.submit(process_stack, t, str(out_dir), config, pure=False,
                                 key=f"napari-sam2-{t.name}-{uuid.uuid4().hex[:8]}") for t in tasks]
        for future in as_completed(futures):
            yield future.result()
    finally:
        for f in futures:
            f.cancel()
        if own:
            client.close()
            cluster.close()
        _remove_leftovers(out_dir)


def _remove_leftovers(out_dir: Path) -> None:
    """Staging folders of an interrupted run (never a finished stack's)."""
    for p in out_dir.glob(".partial-*"):
        shutil.rmtree(p, ignore_errors=True)
    for p in out_dir.glob(".old-*"):
        shutil.rmtree(p, ignore_errors=True)


def _write_summary(path: Path, rows: list[StackOutcome]) -> None:
    table = [{**asdict(row), "seconds": f"{row.seconds:.2f}"} for row in rows]
    write_csv(path, table, SUMMARY_COLUMNS, what="summary")
