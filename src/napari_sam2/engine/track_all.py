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

Cells that come in from the edge of the field between detection frames
are picked up on the frame they come in on (``options.watch_edges``): each
frame between detection frames, once tracked, has the grid's points in a
band one grid step wide along its border that no tracked object covers
decoded (``segment_everything(where=...)``, a small share of a full
detection); an automatic object there that touches the border and that no
tracked object covers becomes a new object on that frame, and the pass
tracks that frame again with it.

A tracked mask can spread onto a touching neighbour and then hold two
cells. On each detection frame, a tracked object whose mask holds two or
more automatic objects (each mostly inside it, together most of it) is
prompted there again with the one that continues it (most overlap with its
mask on the frame before) and the others become new objects
(``options.separate_merged``). With divisions on, only a mask that grew by
``MERGE_GROWTH`` over the last few frames is so treated: a dividing cell
keeps its area, and its two daughters are the division watcher's to find.

A track can also hold two objects one after the other: SAM 2 follows a
nucleus to its pole in a z-stack and on into the nucleus stacked below it,
or a cell leaves and another comes in where it was. On each detection
frame, a tracked object whose area fell to a low of at most
``options.valley_cut`` of its peak before and of its peak after is cut
(:func:`area_valley`): it ends before the first frame after the low that
has not been handed out yet (without divisions, whose dating holds frames
back, that is the detection frame itself), what follows becomes a new
object prompted with its mask on that frame, and the pass tracks again from
there. ``options.valley_cut`` None: never.

With ``divisions`` (a :class:`~.division_options.DivisionOptions`), a forward pass
also finds divisions (:class:`~.divisions.DivisionWatcher`): the mother's
track ends, two daughters start, their mother is recorded in
``session.lineage``. :func:`propagate_divisions` does the same after
clicks, without segmenting. A division is dated a few frames back, so those
frames are yielded only once no division can change them any more.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from .automatic_options import AutomaticOptions, checked_options
from .division_edits import mark_division
from .division_options import DivisionOptions
from .divisions import DivisionWatcher
from .session_checks import check_span

if TYPE_CHECKING:  # pragma: no cover
    from .session import StackSession

PASS_DIRECTIONS = ("forward", "backward")
# with divisions on: a tracked mask holding several objects is separated
# only when its area grew by this factor over the last GROWTH_FRAMES frames
MERGE_GROWTH = 1.4
GROWTH_FRAMES = 5


def track_everything(
    session: "StackSession",
    direction: str = "forward",
    start: int | None = None,
    stop: int | None = None,
    *,
    options: AutomaticOptions | None = None,
    detect_every: int = 5,
    divisions: DivisionOptions | None = None,
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
    ``divisions``: find divisions too (forward passes only; None: don't);
    frames are then segmented with ``divisions.area_bonus`` and
    ``divisions.stability_score_thresh``.
    ``progress(done, total)`` is called after each frame. Closing the
    generator cancels between frames, as for ``propagate``; so does
    ``session.stop()`` (from any thread): the frame being computed is
    finished, no more frames are segmented or tracked, and the frames not
    reached stay as they were.
    """
    options = checked_options(options)
    if direction not in PASS_DIRECTIONS:
        raise ValueError(
            f"direction must be 'forward' or 'backward' for track_everything (one pass that finds "
            f"objects as it goes), got {direction!r}"
        )
    if isinstance(detect_every, bool) or not isinstance(detect_every, (int, np.integer)) or detect_every < 1:
        raise ValueError(f"detect_every must be an integer >= 1 (frames), got {detect_every!r}")
    watcher = _watcher(session, divisions, direction)
    if watcher is not None:
        options = replace(options, **{k: v for k in ("area_bonus", "stability_score_thresh")
                                      if (v := getattr(divisions, k)) is not None})
    lo, hi = check_span(direction, start, stop, session.num_frames)
    frames = list(range(lo, hi + 1)) if direction == "forward" else list(range(hi, lo - 1, -1))
    detect_at = set(range(0, len(frames), int(detect_every))) | {len(frames) - 1}
    return _run(session, direction, frames, _Tracker(session, options, divisions=watcher is not None), detect_at,
                watcher, progress, session.stop_token())


def propagate_divisions(
    session: "StackSession",
    start: int | None = None,
    stop: int | None = None,
    *,
    options: DivisionOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Propagate the session's objects forward through ``start .. stop`` and
    find divisions as it goes (e.g. after one click per cell on the first
    frame); iterate for ``(frame, labels_2d)``, each frame once. Frames
    already current are read for divisions, not computed again."""
    watcher = _watcher(session, DivisionOptions() if options is None else options, "forward")
    lo, hi = check_span("forward", start, stop, session.num_frames)
    return _run(session, "forward", list(range(lo, hi + 1)), None, set(), watcher, progress,
                session.stop_token())


def _watcher(session, divisions, direction) -> DivisionWatcher | None:
    if divisions is None:
        return None
    if direction != "forward":
        raise ValueError("divisions are found going forward in time: use direction='forward' (or divisions=None)")
    return DivisionWatcher(session, divisions)


class _Tracker:
    """Ids handed out and consecutive absent frames per tracked object."""

    def __init__(self, session, options: AutomaticOptions, *, divisions: bool = False) -> None:
        self.session = session
        self.options = options
        self.divisions = divisions
        used = max(session.object_ids, default=0)
        for f in range(session.num_frames):
            used = max(used, int(np.max(session.labels[f])))
        self.next_id = max(used, max(session.lineage.ids(), default=0)) + 1
        self.absent: dict[int, int] = {}

    def take_ids(self, k: int) -> list[int]:
        ids = list(range(self.next_id, self.next_id + k))
        self.next_id += k
        for obj_id in ids:
            self.absent[obj_id] = 0
        return ids

    def detect(self, frame: int, before: list[int] = ()) -> bool:
        """Segment ``frame``: tracked objects that hold several automatic
        objects are prompted again with theirs, every object not covered yet
        is added (new ids). ``before``: the pass's frames before this one,
        nearest first. True when anything was prompted."""
        result = self.session.segment_everything(frame, self.options)
        labels = np.asarray(self.session.labels[frame])
        covered = labels != 0
        separated = self._separate(labels, result, before) if self.options.separate_merged else {}
        for obj_id, auto_id in separated.items():
            self.session.add_mask(obj_id, frame, result.labels == auto_id)
            covered &= labels != obj_id
            covered |= result.labels == auto_id
        found = []
        for obj in result.objects:
            y0, x0, y1, x1 = obj.bbox
            mask = result.labels[y0:y1, x0:x1] == obj.id
            if covered[y0:y1, x0:x1][mask].mean() < self.options.new_object_overlap:
                full = np.zeros(result.labels.shape, dtype=bool)
                full[y0:y1, x0:x1] = mask
                (obj_id,) = self.take_ids(1)
                self.session.add_mask(obj_id, frame, full)
                found.append(obj_id)
        return bool(found or separated)

    def entering(self, frame: int) -> list[np.ndarray]:
        """Objects entering the field on ``frame`` (not a detection frame),
        as ``Y x X`` masks: the grid's points in the band along the frame's
        border (one grid step wide) that no tracked object covers are
        decoded, and each automatic object that touches the border and that
        tracked objects cover on less than ``new_object_overlap`` of its
        pixels is one. Read only (it may run between the frames of a
        propagation); :meth:`add` makes them objects."""
        labels = np.asarray(self.session.labels[frame])
        h, w = labels.shape
        step = int(np.ceil(max(h, w) / self.options.points_per_side))
        band = np.ones((h, w), dtype=bool)
        band[step:h - step, step:w - step] = False
        where = band & (labels == 0)
        if not where.any():
            return []
        result = self.session.segment_everything(frame, self.options, where=where)
        covered = labels != 0
        found = []
        for obj in result.objects:
            y0, x0, y1, x1 = obj.bbox
            if not (y0 == 0 or x0 == 0 or y1 == h or x1 == w):
                continue  # not at the border: not entering
            mask = result.labels[y0:y1, x0:x1] == obj.id
            if covered[y0:y1, x0:x1][mask].mean() < self.options.new_object_overlap:
                full = np.zeros((h, w), dtype=bool)
                full[y0:y1, x0:x1] = mask
                found.append(full)
        return found

    def add(self, frame: int, masks: list[np.ndarray]) -> list[int]:
        """Each of ``masks`` a new object (the next free id) prompted on ``frame``."""
        ids = self.take_ids(len(masks))
        for obj_id, mask in zip(ids, masks):
            self.session.add_mask(obj_id, frame, mask)
        return ids

    def _separate(self, labels: np.ndarray, result, before) -> dict[int, int]:
        """``{tracked object: the automatic object (id in result.labels) that
        continues it}`` for the tracked masks that hold two or more automatic
        objects (each at least half inside, together at least 0.6 of it)."""
        autos = result.labels
        tracked = set(self.session.object_ids)
        both = (labels > 0) & (autos > 0)
        width = int(autos.max()) + 1
        keys, inter = np.unique(labels[both].astype(np.int64) * width + autos[both], return_counts=True)
        ids, areas = np.unique(labels, return_counts=True)
        area_of = dict(zip(ids.tolist(), areas.tolist()))
        auto_area = np.bincount(autos.ravel(), minlength=width)
        inside: dict[int, list[tuple[int, int]]] = {}  # tracked id -> (automatic id, shared pixels)
        for key, count in zip(keys.tolist(), inter.tolist()):
            obj_id, auto_id = divmod(key, width)
            if obj_id in tracked and count >= 0.5 * auto_area[auto_id]:
                inside.setdefault(obj_id, []).append((auto_id, count))
        earlier_frames = None  # read once, only if some mask holds several objects
        out = {}
        for obj_id in self.session.object_ids:
            held = inside.get(obj_id, [])
            if len(held) < 2 or sum(count for _, count in held) < 0.6 * area_of[obj_id]:
                continue
            if earlier_frames is None:
                earlier_frames = [np.asarray(self.session.labels[f]) for f in before]
            earlier = [m for m in (f == obj_id for f in earlier_frames) if m.any()]
            if self.divisions and (not earlier or area_of[obj_id] < MERGE_GROWTH * earlier[-1].sum()):
                continue  # a dividing cell keeps its area: the watcher's to find
            reference = earlier[0] if earlier else labels == obj_id
            out[obj_id] = max((auto_id for auto_id, _ in held),
                              key=lambda auto_id: int((reference & (autos == auto_id)).sum()))
        return out

    def cut_valleys(self, frames: list[int], direction: str, open_from: int) -> int | None:
        """Cut every tracked object whose areas over ``frames`` (the pass so
        far, in pass order) have a valley (:func:`area_valley`): it ends
        before the first frame after the low from pass position
        ``open_from`` on (the frames before were handed out already and stay
        as they are), and its mask on that frame becomes a new object
        tracked from there. Returns the earliest pass position to track
        again (where a new object starts), or None when nothing was cut."""
        ratio = self.options.valley_cut
        if ratio is None or len(frames) < 4:
            return None
        tracked = self.session.object_ids
        if not tracked:
            return None
        top = max(tracked) + 1
        areas = np.zeros((len(frames), top), dtype=np.int64)
        for k, f in enumerate(frames):
            areas[k] = np.bincount(np.asarray(self.session.labels[f]).ravel(), minlength=top)[:top]
        earliest = None
        for obj_id in tracked:
            low = area_valley(areas[:, obj_id], ratio)
            if low is None:
                continue
            start = max(low + 1, open_from)
            if start >= len(frames):
                continue
            mask = np.asarray(self.session.labels[frames[start]]) == obj_id
            positions = [abs(f - frames[0]) for f in self.session.prompted_frames(obj_id)]
            if not mask.any() or any(p >= start for p in positions):
                continue  # absent there, or prompted from there on (a correction, a separation): leave it
            (new_id,) = self.take_ids(1)
            if direction == "forward":
                self.session.limit_track(obj_id, last=frames[start - 1])
            else:
                self.session.limit_track(obj_id, first=frames[start - 1])
            self.session.add_mask(new_id, frames[start], mask)
            earliest = start if earliest is None else min(earliest, start)
        return earliest

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


def area_valley(areas: np.ndarray, ratio: float) -> int | None:
    """The position of a low in a track's areas (one per frame of the pass,
    0 where absent) that is at most ``ratio`` times its highest area before
    and after it, with at least two frames after it and the object present
    before it; of several, the deepest (relative to the lower peak). None
    when there is none."""
    a = np.asarray(areas, dtype=np.float64)
    present = np.flatnonzero(a > 0)
    if len(present) == 0:
        return None
    a = a[present[0]:]
    best, best_depth = None, ratio
    before = np.maximum.accumulate(a)
    after = np.maximum.accumulate(a[::-1])[::-1]
    for v in range(1, len(a) - 2):
        peak = min(before[v - 1], after[v + 1])
        if peak > 0 and a[v] <= best_depth * peak:
            best, best_depth = v, a[v] / peak
    return None if best is None else best + int(present[0])


class _Output:
    """Yields the frames of a pass in order, each once, when they are final."""

    def __init__(self, session, frames: list[int], progress) -> None:
        self.session, self.frames, self.progress = session, frames, progress
        self.done = 0

    def until(self, index: int) -> Iterator[tuple[int, np.ndarray]]:
        """Frames of the pass before position ``index`` not yet yielded."""
        while self.done < min(index, len(self.frames)):
            frame = self.frames[self.done]
            self.done += 1
            if self.progress is not None:
                self.progress(self.done, len(self.frames))
            yield frame, np.array(self.session.labels[frame], copy=True)


def _run(session, direction, frames, tracker, detect_at, watcher, progress, token) -> Iterator[tuple[int, np.ndarray]]:
    """One pass over ``frames``: propagate chunk by chunk up to each detection
    frame (segmented after it is tracked, the first one before); a new
    object found or a division goes back to its frame and tracks again."""
    out = _Output(session, frames, progress)
    lag = 0 if watcher is None else watcher.lag
    pending = sorted(detect_at - {0})
    watch = tracker is not None and tracker.options.watch_edges
    watched = set(detect_at) | {0}  # pass positions whose border was looked at (or that are segmented whole)
    if tracker is not None:
        tracker.detect(frames[0])
    pos = 0  # the next frame of the pass (an index) to track
    while pos < len(frames):
        if session.stopped_since(token):
            return  # session.stop(): the frames not yet final stay as they were
        end = next((k for k in pending if k >= pos), len(frames) - 1)
        event, index, computed, entered = None, pos, pos - 1, []
        for frame, labels in _chunk(session, direction, frames[pos], frames[end], tracker, token):
            index = computed = abs(frame - frames[0])
            if watcher is not None:
                event = watcher.observe(frame, labels, final=index == len(frames) - 1)
            if event is not None:
                break
            if watch and index not in watched and index != end:
                watched.add(index)
                entered = tracker.entering(frame)
                if entered:
                    break  # prompt them and track the frame again, with the objects that came in
            # final once no division can be dated to it; the chunk's last frame waits for its detection
            yield from out.until(min(index - lag + 1, end))
        if session.stopped_since(token):
            yield from out.until(computed + 1)  # what was computed is final now
            return
        if tracker is not None:
            tracker.drop_lost()
        if entered:
            tracker.add(frames[index], entered)
            pos = index
            if watcher is not None:
                watcher.rewind(frames[index])
            continue
        if event is not None:
            if _divide(session, event, tracker):
                pos = abs(event.frame - frames[0])
                watcher.rewind(event.frame)
                continue
            if index < end:
                pos = index + 1  # the division could not be made: carry on after the frame that found it
                continue
        if end in pending:
            cut = tracker.cut_valleys(frames[: end + 1], direction, out.done)
            if cut is not None:
                pos = cut  # track again from the frame after the cut; ``end`` is still to be segmented
                if watcher is not None:
                    watcher.rewind(frames[cut])
                continue
            pending.remove(end)
            if tracker.detect(frames[end], frames[max(0, end - GROWTH_FRAMES):end][::-1]):
                pos = end  # the next chunk tracks the detection frame again, with the new objects
                if watcher is not None:
                    watcher.rewind(frames[end])
                continue
        pos = end + 1
        yield from out.until(pos - lag)
    yield from out.until(len(frames))


def _divide(session, event, tracker) -> bool:
    """Make the division ``event``; False (and nothing changed) when the
    session refuses it (e.g. the mother has prompts after the division)."""
    ids = None if tracker is None else tracker.take_ids(len(event.masks))
    try:
        mark_division(session, event.mother, event.frame, event.masks, ids=ids)
    except (KeyError, ValueError):
        return False
    return True


def _chunk(session, direction, first, last, tracker, token) -> Iterator[tuple[int, np.ndarray]]:
    """Propagate the tracked objects from ``first`` to ``last`` (pass order);
    every frame of the chunk is yielded, those the propagation did not
    compute (already current) with their labels as they are."""
    step = 1 if last >= first else -1
    expected = first
    lo, hi = min(first, last), max(first, last)
    trackable = any(session.prompted_frames(o) for o in session.object_ids)
    if trackable:
        results = session.propagate_results(direction, start=lo, stop=hi)
        try:
            for result in results:
                while (result.frame - expected) * step > 0:
                    yield expected, np.array(session.labels[expected], copy=True)
                    expected += step
                if tracker is not None:
                    tracker.seen(result.object_ids, result.labels)
                yield result.frame, result.labels
                expected = result.frame + step
        finally:
            results.close()
        if session.stopped_since(token):
            return  # the frames after the stop were not computed
    while expected != last + step:
        yield expected, np.array(session.labels[expected], copy=True)
        expected += step
