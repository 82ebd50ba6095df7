"""A propagation's passes: planned from the objects' bookkeeping, their
frames marked out of date until rewritten, then run frame by frame
(cancelled between frames) through a step the session gives."""

from __future__ import annotations

import threading
from typing import Callable, Iterator, NamedTuple

import numpy as np
import torch

from .lineage import Lineage
from .memory import MemoryBank
from .object_state import ObjectState
from .passes import BACKWARD, FORWARD, Pass, plan

__all__ = ["FrameResult", "RunControl", "frames_and_labels", "mark_planned", "plan_run", "run_passes"]


class FrameResult(NamedTuple):
    """One propagated frame: ``logits`` is ``K x H x W`` (float32, original
    resolution), one per id in ``object_ids``; ``labels`` the frame as
    written and ``previous`` as it was before (e.g. to record an undo step)."""

    frame: int
    object_ids: tuple[int, ...]
    logits: torch.Tensor
    labels: np.ndarray
    previous: np.ndarray


class RunControl:
    """Whether a propagation is running, and how often ``stop()`` was called
    (a run created before the latest call ends); ``stop`` from any thread."""

    def __init__(self) -> None:
        self.running = False
        self.stops = 0
        self._lock = threading.Lock()

    def check_idle(self) -> None:
        if self.running:
            raise RuntimeError("a propagation is running; stop it (close the generator) first")

    def stop(self) -> None:
        with self._lock:
            self.stops += 1


def plan_run(direction: str, lo: int, hi: int, *, objects: dict[int, ObjectState], bank: MemoryBank,
             lineage: Lineage, num_frames: int) -> list[Pass]:
    """The passes (:func:`plan`) that bring frames ``lo..hi`` up to date,
    without the frames outside every taking object's track limits."""
    # frames outside an object's track limits are never out of date for it
    allowed = {o: lineage.allowed(o, num_frames) for o in objects}
    passes = plan(
        direction,
        lo,
        hi,
        cond=sorted({f for o in objects for f in bank.cond_frames(o)}),
        fresh={o: s.fresh | ~allowed[o] for o, s in objects.items()},
        prompted=lambda o, f: bank.cond_entry(o, f) is not None,
    )
    trimmed = [p._replace(frames=[f for f in p.frames if any(allowed[o][f] for o in p.objects)]) for p in passes]
    return [p for p in trimmed if p.frames]


def mark_planned(passes: list[Pass], objects: dict[int, ObjectState]) -> None:
    """Every frame a pass will rewrite is out of date until it is
    rewritten, so that a cancelled run is finished by the next one."""
    for p in passes:
        for obj_id in p.objects:
            objects[obj_id].fresh[p.frames] = False


def run_passes(
    passes: list[Pass],
    *,
    objects: dict[int, ObjectState],
    lineage: Lineage,
    step: Callable[[int, list[int], bool], FrameResult],
    stopped: Callable[[], bool],
    progress: Callable[[int, int], None] | None,
) -> Iterator[FrameResult]:
    """Run ``passes``: ``step(frame, objects, reverse)`` on each frame for
    the objects tracked there; ``stopped()`` ends the run between frames;
    ``progress(done, total)`` after each frame."""
    total = sum(len(p.frames) for p in passes)
    done = 0
    for p in passes:
        if p.visited is not None:
            # reached without computing (prompted there): recorded as visited
            for obj_id in p.objects:
                objects[obj_id].direction[p.visited] = BACKWARD if p.reverse else FORWARD
        for f in p.frames:
            if stopped():
                return
            objs = [o for o in p.objects if lineage.tracks(o, f)]
            result = step(f, objs, p.reverse)
            done += 1
            if progress is not None:
                progress(done, total)
            yield result


def frames_and_labels(results: Iterator[FrameResult]) -> Iterator[tuple[int, np.ndarray]]:
    """``(frame, labels)`` of each result; closing it closes ``results``."""
    try:
        for result in results:
            yield result.frame, result.labels
    finally:
        results.close()
