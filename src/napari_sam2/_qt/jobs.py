"""Work done in worker threads, and what is handed to and from them.

Nothing here touches Qt or a napari layer: a job carries plain arrays and a
:class:`~napari_sam2.StackSession`; results go back to the main thread,
which updates the layers.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..layers import FramePrompt, plan_prompt_edits, session_for_layer
from .lineage_plan import apply_lineage, loosen_limits


class Stack(NamedTuple):
    """What a session is built for; a session is rebuilt when it changes."""

    image: object
    labels: object
    model: object
    axis: int | None
    index: tuple

    def same(self, other) -> bool:
        return (
            other is not None
            and self.image is other.image
            and self.labels is other.labels
            and self.model is other.model
            and self.axis == other.axis
            and self.index == other.index
        )


class SyncJob(NamedTuple):
    stack: Stack
    session: object  # the current session, or None to build one
    image: object  # a snapshot of what session_for_layer reads
    labels: object  # the Labels layer's array
    position: tuple
    applied: dict
    wanted: dict
    generation: int
    # prompts an undo/redo put back ({(object, frame): FramePrompt}): their
    # frames show the restored labels already and are not decoded again
    restored: dict | None = None
    intensity: object = "auto"  # the intensity range a new session starts with
    focus: tuple | None = None  # (object, frame) whose candidates to read afterwards
    state: object = None  # the widget's prompt state the job brings the engine to


class SyncResult(NamedTuple):
    job: SyncJob
    session: object
    applied: dict
    changes: list  # (frame, previous, labels)
    errors: list
    candidates: object = None  # Candidates of job.focus, read once the prompts are decoded
    lineage_changed: bool = False  # the engine's lineage was brought to the widget's


class ClearResult(NamedTuple):
    session: object
    pixels: list  # (frame, ys, xs, object id, frame width)


class Counter:
    """Frames done / total, set by the engine's progress callback."""

    def __init__(self) -> None:
        self.done = 0
        self.total = 0

    def __call__(self, done: int, total: int) -> None:
        self.done, self.total = done, total


def with_progress(results, counter: Counter):
    try:
        for result in results:
            yield result, counter.done, counter.total
    finally:
        results.close()


def image_snapshot(layer):
    class _Snapshot:
        pass

    snap = _Snapshot()
    snap.data = layer.data[0] if layer.multiscale else layer.data
    snap.multiscale = False
    snap.rgb = bool(layer.rgb)
    snap.ndim = layer.ndim
    snap.axis_labels = tuple(layer.axis_labels)
    return snap


def sync_work(job: SyncJob, model) -> SyncResult:
    """Worker: build the session if needed, apply the prompt edits and the
    lineage wanted (``job.state.lineage``), decode the changed frames
    (instant when their image features are cached)."""
    session = job.session
    if session is None:
        session = session_for_layer(
            model, job.image, job.position, axis=job.stack.axis, labels=job.labels,
            intensity_range=job.intensity,
        )
    applied = dict(job.applied)
    errors, frames = [], set()
    before: dict[int, np.ndarray] = {}  # frames as they were (choosing a candidate writes one)
    known = set(session.object_ids)
    lineage = getattr(job.state, "lineage", None)
    lineage_changed = lineage is not None and session.lineage_state() != lineage
    if lineage_changed:
        _lineage_step(loosen_limits, session, lineage, errors)
    for edit in plan_prompt_edits(applied, job.wanted):
        key = (edit.obj, edit.frame)
        applied[key] = job.wanted.get(key, FramePrompt())
        if edit.frame not in before:
            before[edit.frame] = np.array(session.labels[edit.frame], copy=True)
        restored = job.restored is not None and job.restored.get(key, FramePrompt()) == applied[key]
        if not restored and edit.prompt.mask is None:
            frames.add(edit.frame)  # a mask prompt's frame shows it already
        try:
            if edit.kind in ("replace", "clear") and edit.obj in known:
                session.clear_frame(edit.obj, edit.frame)
            if edit.prompt.mask is not None:
                session.add_mask(edit.obj, edit.frame, edit.prompt.mask.array)
            if edit.kind != "choose" and edit.prompt.box is not None:
                session.add_box(edit.obj, edit.frame, edit.prompt.box)
            if edit.kind != "choose" and edit.prompt.points:
                session.add_points(edit.obj, edit.frame, edit.prompt.points, edit.prompt.labels)
            if edit.kind == "choose" or edit.prompt.candidate is not None:
                session.choose_candidate(edit.obj, edit.frame, edit.prompt.candidate)
            known = set(session.object_ids)
        except Exception as exc:  # one bad prompt must not stop the others
            errors.append(f"object {edit.obj} on frame {edit.frame}: {exc}")
    for obj in session.object_ids:
        if not session.prompted_frames(obj):
            session.remove_object(obj, clear_labels=False)
    cleared = _lineage_step(apply_lineage, session, lineage, errors) if lineage_changed else {}
    for frame, previous in cleared.items():
        before.setdefault(frame, previous)
    changes = []
    for frame in sorted(frames | set(cleared)):
        labels = session.segment_frame(frame) if frame in frames else np.array(session.labels[frame], copy=True)
        changes.append((frame, before[frame], labels))
    candidates = read_candidates(session, job.focus, applied)
    return SyncResult(job, session, applied, changes, errors, candidates, lineage_changed)


def _lineage_step(step, session, lineage, errors: list):
    """``step(session, lineage)``; an error is one of ``errors``."""
    try:
        return step(session, lineage)
    except (KeyError, ValueError) as exc:
        errors.append(f"lineage: {exc}")
        return {}


class Candidates(NamedTuple):
    """SAM's candidate masks for one object's clicks on one frame."""

    obj: int
    frame: int
    ious: tuple[float, ...]  # predicted IoU, best first
    chosen: int | None  # index into ious, or None: the model's own pick


def read_candidates(session, focus, applied: dict | None = None) -> Candidates | None:
    """The candidates of ``focus = (object, frame)``, if it has clicks there
    (``applied``: the prompts given; a mask prompt has no candidates, and
    reading them would decode it over the frame's labels)."""
    if focus is None or not hasattr(session, "mask_candidates"):
        return None
    prompt = (applied or {}).get(focus)
    if prompt is not None and prompt.mask is not None:
        return None
    obj, frame = focus
    if obj not in session.object_ids or frame not in session.prompted_frames(obj):
        return None
    found = session.mask_candidates(obj, frame)
    if not found:
        return None
    return Candidates(obj, frame, tuple(float(c.predicted_iou) for c in found),
                      session.chosen_candidate(obj, frame))


def clear_work(session, objects: list[int]) -> ClearResult:
    """Worker: forget objects and clear their pixels (recorded for undo)."""
    pixels = []
    for obj in objects:
        if obj not in session.object_ids:
            continue
        for frame in range(session.num_frames):
            ys, xs = np.nonzero(np.asarray(session.labels[frame]) == obj)
            if ys.size:
                pixels.append((frame, ys, xs, obj, session.width))
        session.remove_object(obj, clear_labels=True)
    return ClearResult(session, pixels)


def intensity_work(session, value, frame: int) -> list:
    """Worker: map the stack with ``value`` from now on; the frame on screen
    is decoded again if it has prompts. Returns ``[(frame, previous, labels)]``."""
    session.set_intensity_range(value)
    if not any(frame in session.prompted_frames(obj) for obj in session.object_ids):
        return []
    previous = np.array(session.labels[frame], copy=True)
    return [(frame, previous, session.segment_frame(frame))]
