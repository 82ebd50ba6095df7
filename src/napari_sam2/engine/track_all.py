"""Track everything: segment every object on the first frame of a pass,
track them all with SAM 2's memory, and every few frames segment again to
pick up objects that no tracked object covers (cells entering the field,
daughters of divisions, nuclei that begin deeper in a z-stack).

Built on the session's public API only: ``segment_everything`` finds
objects, ``add_mask`` prompts each new one on the frame it was found, and
``propagate_results`` tracks the objects chunk by chunk between detection
frames. Objects absent (an empty mask: SAM 2's object score said absent, or
nothing of the mask is left) for ``options.lost_after`` frames in a row
stop being tracked; their labels stay, and ``session.object_frames(id)``
lists the frames that hold them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from .automatic import AutomaticOptions
from .prompts import check_frame

if TYPE_CHECKING:  # pragma: no cover
    from .session import StackSession

PASS_DIRECTIONS = ("forward", "backward")


def track_everything(
    session: "StackSession",
    direction: str = "forward",
    start: int | None = None,
    stop: int | None = None,
    *,
    options: AutomaticOptions | None = None,
    detect_every: int = 5,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Track every object through ``start .. stop`` (inclusive, default the
    whole stack); iterate for ``(frame, labels_2d)``, each frame once, in
    pass order.

    ``direction``: "forward" (the pass begins at ``start``) or "backward"
    (it begins at ``stop``). The first frame of the pass, every
    ``detect_every``-th frame after it and its last frame are segmented;
    each automatic object covered by tracked objects (or other labels) on
    less than ``options.new_object_overlap`` of its pixels becomes a new
    object with the next free id, prompted with its mask on that frame.
    ``progress(done, total)`` is called after each frame. Closing the
    generator cancels between frames, as for ``propagate``.
    """
    options = AutomaticOptions() if options is None else options
    if not isinstance(options, AutomaticOptions):
        raise TypeError(f"options must be an AutomaticOptions, got {type(options).__name__}")
    if direction not in PASS_DIRECTIONS:
        raise ValueError(
            f"direction must be 'forward' or 'backward' for track_everything (one pass that finds "
            f"objects as it goes), got {direction!r}"
        )
    if isinstance(detect_every, bool) or not isinstance(detect_every, (int, np.integer)) or detect_every < 1:
        raise ValueError(f"detect_every must be an integer >= 1 (frames), got {detect_every!r}")
    n = session.num_frames
    lo = 0 if start is None else check_frame(start, n)
    hi = n - 1 if stop is None else check_frame(stop, n)
    if lo > hi:
        raise ValueError(f"start ({lo}) must not be after stop ({hi})")
    return _run(session, direction, lo, hi, options, int(detect_every), progress)


class _Tracker:
    """Ids handed out and consecutive absent frames per tracked object."""

    def __init__(self, session, options: AutomaticOptions) -> None:
        self.session = session
        self.options = options
        used = max(session.object_ids, default=0)
        for f in range(session.num_frames):
            used = max(used, int(np.max(session.labels[f])))
        self.next_id = used + 1
        self.absent: dict[int, int] = {}

    def detect(self, frame: int) -> list[int]:
        """Segment ``frame``; add every object not covered yet. New ids."""
        result = self.session.segment_everything(frame, self.options)
        covered = np.asarray(self.session.labels[frame]) != 0
        found = []
        for obj in result.objects:
            y0, x0, y1, x1 = obj.bbox
            mask = result.labels[y0:y1, x0:x1] == obj.id
            overlap = covered[y0:y1, x0:x1][mask].mean()
            if overlap < self.options.new_object_overlap:
                full = np.zeros(result.labels.shape, dtype=bool)
                full[y0:y1, x0:x1] = mask
                obj_id = self.next_id
                self.next_id += 1
                self.session.add_mask(obj_id, frame, full)
                self.absent[obj_id] = 0
                found.append(obj_id)
        return found

    def seen(self, ids, labels: np.ndarray) -> None:
        present = set(np.unique(labels).tolist())
        for obj_id in ids:
            self.absent[obj_id] = 0 if obj_id in present else self.absent.get(obj_id, 0) + 1

    def drop_lost(self) -> list[int]:
        lost = [o for o, k in self.absent.items() if k >= self.options.lost_after and o in self.session.object_ids]
        for obj_id in lost:
            self.session.remove_object(obj_id, clear_labels=False)
            del self.absent[obj_id]
        return lost


def _run(session, direction, lo, hi, options, every, progress) -> Iterator[tuple[int, np.ndarray]]:
    frames = list(range(lo, hi + 1)) if direction == "forward" else list(range(hi, lo - 1, -1))
    detect_at = sorted(set(range(0, len(frames), every)) | {len(frames) - 1})
    tracker = _Tracker(session, options)
    total, done = len(frames), 0

    def emit(frame: int, labels: np.ndarray):
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)
        return frame, labels

    tracker.detect(frames[0])
    begin = 0  # index of the first frame the next chunk writes
    for k in detect_at[1:] + [None]:
        end = len(frames) - 1 if k is None else k  # index of the chunk's last frame
        if begin > end:
            break
        held = None
        for frame, labels in _chunk(session, direction, frames[begin], frames[end], tracker):
            if frame == frames[end] and k is not None:
                held = (frame, labels)  # written again if new objects are found on it
            else:
                yield emit(frame, labels)
        tracker.drop_lost()
        if k is None:
            break
        if tracker.detect(frames[end]):
            begin = end  # the next chunk rewrites the detection frame with the new objects
            if end == len(frames) - 1:
                for frame, labels in _chunk(session, direction, frames[end], frames[end], tracker):
                    yield emit(frame, labels)
                break
        else:
            if held is not None:
                yield emit(*held)
            begin = end + 1
            if end == len(frames) - 1:
                break


def _chunk(session, direction, first, last, tracker) -> Iterator[tuple[int, np.ndarray]]:
    """Propagate the tracked objects from ``first`` to ``last`` (pass order)."""
    lo, hi = min(first, last), max(first, last)
    if not session.object_ids:
        for f in range(first, last + (1 if last >= first else -1), 1 if last >= first else -1):
            yield f, np.array(session.labels[f], copy=True)
        return
    results = session.propagate_results(direction, start=lo, stop=hi)
    try:
        for result in results:
            tracker.seen(result.object_ids, result.labels)
            yield result.frame, result.labels
    finally:
        results.close()
