"""StackSession: objects, prompts, instant segmentation and propagation
through a stack, with bounded memory.

A stack is any array-like read one frame at a time along the propagation
axis (see :class:`FrameSource`). Several objects are tracked together: they
share one image encoding per frame and go through one batched step per
frame, whatever memory frames each reads. Results go into an integer label array
(``session.labels``), each frame written whole.
"""

from __future__ import annotations

import threading
from typing import Callable, Iterator, NamedTuple

import numpy as np
import torch

from ..model import FrameFeatures, SAM2Model
from ..model.device import autocast_for
from .automatic_options import checked_options
from .candidates import CandidateStore, MaskCandidate, Output
from .features import FeatureCache, MiB
from .frames import FrameSource
from .holes import fill_small_holes
from .intensity import RangeKeys
from .labels import check_labels_array, compose_frame, exclusive_logits, upsample_logits
from .lineage import Lineage, LineageRecord, LineageState, label_presence, lineage_records
from .memory import FrameMemory, MemoryBank
from .object_state import Decoded, ObjectState, clear_prompts, frame_prompts, frame_states, mark_outdated, mark_written
from .object_state import reached_frames, set_track_limits, state_of
from .passes import BACKWARD, FORWARD, UNTRACKED, Pass, plan
from .prompt_records import FrameRecord, ObjectRecord
from .prompted_state import PromptedState, checked_state
from .prompts import FramePrompts, PromptScaler, check_box, check_frame, check_mask, check_object_id, check_points
from .session_checks import check_click_sets, check_label_frame, check_session_args, check_span, check_target
from .session_checks import check_trackable
from .session_options import DIRECTION_MEMORIES, DIRECTIONS, RERUN_MODES, SessionOptions

# moved out, still importable from here
__all__ = ["DIRECTIONS", "DIRECTION_MEMORIES", "FrameResult", "PREV_LOGIT_LIMIT", "RERUN_MODES", "SessionOptions",
           "StackSession"]

# prev-logit clamp when correction clicks are decoded with an earlier mask
PREV_LOGIT_LIMIT = 32.0


class FrameResult(NamedTuple):
    """One propagated frame: ``logits`` is ``K x H x W`` (float32, original
    resolution), one per id in ``object_ids``; ``labels`` the frame as
    written and ``previous`` as it was before (e.g. to record an undo step)."""

    frame: int
    object_ids: tuple[int, ...]
    logits: torch.Tensor
    labels: np.ndarray
    previous: np.ndarray


class StackSession:
    """Segment and track objects through a stack with a SAM 2 model.

    Args:
        model: a network from :func:`napari_sam2.load_model`.
        data: the stack (numpy, dask, zarr, memory-mapped TIFF ...); 2D is one frame.
        axis: the propagation axis (time or z).
        channel_axis, channels, index, intensity_range: see :class:`FrameSource`.
        labels: an integer array of shape ``(frames, Y, X)`` to write into
            (e.g. a napari Labels layer's data); a new int32 array by default.
        options: cache budgets and speed settings (:class:`SessionOptions`).
    """

    def __init__(
        self,
        model: SAM2Model,
        data,
        *,
        axis: int = 0,
        channel_axis: int | None = None,
        channels=None,
        index=None,
        intensity_range="auto",
        labels=None,
        options: SessionOptions = SessionOptions(),
    ) -> None:
        check_session_args(model, options)
        self.model = model
        self.device = model.device
        self.options = options
        self.frames = FrameSource(
            data,
            axis=axis,
            channel_axis=channel_axis,
            channels=channels,
            index=index,
            intensity_range=intensity_range,
        )
        self.num_frames = len(self.frames)
        self.height, self.width = self.frames.frame_shape
        shape = (self.num_frames, self.height, self.width)
        self.labels = (
            np.zeros(shape, dtype=np.int32) if labels is None else check_labels_array(labels, shape)
        )
        self._features = FeatureCache(options.feature_cache)
        self._range_keys = RangeKeys(self.num_frames)
        # (obj, frame) to decode again after an intensity-range change -> as an
        # initial frame (no memory); and the (obj, frame) last decoded as one
        self._redecode: dict[tuple[int, int], bool] = {}
        self._decoded_initial: set[tuple[int, int]] = set()
        self._candidates = CandidateStore()
        self._bank = MemoryBank(
            model.config.tracking,
            history_bytes=int(options.history_mb * MiB),
            separate_directions=options.direction_memory == "separate",
        )
        self._objects: dict[int, ObjectState] = {}
        self._scaler = PromptScaler((self.height, self.width), model.image_size)
        self._lock = threading.RLock()
        self._running = False
        # per object id, what a session file kept with it (name, colour)
        self.objects_meta: dict[int, dict] = {}
        # mothers of objects and the frame limits of their tracks (lineage.py)
        self.lineage = Lineage()
        self._stop_lock = threading.Lock()
        self._stops = 0  # calls of stop(): a run created before the latest one ends
        self._encode = model.encode_image
        if options.compile_image_encoder and self.device.type == "cuda":
            self._encode = torch.compile(model.encode_image, dynamic=False)

    # ================================================================ objects
    @property
    def object_ids(self) -> list[int]:
        return list(self._objects)

    def prompted_frames(self, obj_id: int) -> list[int]:
        """Frames where ``obj_id`` has prompts."""
        return sorted(self._state(check_object_id(obj_id)).prompts)

    def add_points(self, obj_id: int, frame: int, points, labels) -> None:
        """Add clicks for ``obj_id`` on ``frame``: ``points`` N x 2 ``(y, x)``
        pixels of the original image, ``labels`` 1 positive / 0 negative.

        Clicks after a mask given with :meth:`add_mask` on the same frame
        refine that mask: it is decoded (if it was not yet) and fed to the
        decoder with the clicks, whether or not :meth:`segment_frame` ran
        in between (this may compute the frame's image features now)."""
        obj_id, frame = self._check_target(obj_id, frame)
        yx, labs = check_points(points, labels, (self.height, self.width))

        def add(prompts: FramePrompts) -> None:
            if prompts.mask is not None:
                if prompts.dirty:
                    with torch.inference_mode():
                        self._decode(obj_id, frame)  # what segment_frame would have done
                # the clicks refine the mask's decode; a session file keeps
                # the mask (given_mask) and the clicks, and replays them so
                prompts.mask = None
            prompts.add_clicks(self._scaler.points(yx), labs, yx)

        self._edit_prompts(obj_id, frame, add)

    def add_box(self, obj_id: int, frame: int, box) -> None:
        """Set ``obj_id``'s box ``(y0, x0, y1, x1)`` on ``frame``; it replaces
        earlier points and box there (clicks added afterwards refine it)."""
        obj_id, frame = self._check_target(obj_id, frame)
        yxyx = check_box(box, (self.height, self.width))
        self._edit_prompts(obj_id, frame, lambda prompts: prompts.set_box(self._scaler.box(yxyx), yxyx))

    def add_mask(self, obj_id: int, frame: int, mask) -> None:
        """Give ``obj_id``'s mask on ``frame`` (``Y x X``, boolean or numbers:
        every nonzero value, negative ones too, is the object); it replaces
        points and box there. Clicks added afterwards refine it."""
        obj_id, frame = self._check_target(obj_id, frame)
        m = check_mask(mask, (self.height, self.width))
        s = self.model.image_size
        t = torch.from_numpy(m).float()[None, None]
        if m.shape != (s, s):
            t = torch.nn.functional.interpolate(
                t, size=(s, s), mode="bilinear", align_corners=False, antialias=True
            )
            t = t >= 0.5
        at_model_size = t.bool().numpy()[0, 0]
        self._edit_prompts(obj_id, frame, lambda prompts: prompts.set_mask(at_model_size, m))

    def clear_frame(self, obj_id: int, frame: int) -> None:
        """Remove ``obj_id``'s prompts on ``frame`` (its mask there stays until
        the next propagation)."""
        obj_id, frame = check_object_id(obj_id), check_frame(frame, self.num_frames)
        with self._lock:
            self._not_running()
            clear_prompts(self._state(obj_id), self._bank, obj_id, frame)
            self._mark_stale(obj_id, frame)

    def remove_object(self, obj_id: int, *, clear_labels: bool = True) -> None:
        """Forget ``obj_id``; by default its pixels are cleared in every frame
        and it leaves the lineage (its daughters get its mother). With
        ``clear_labels=False`` it stops being tracked; its pixels and its
        place in the lineage stay."""
        obj_id = check_object_id(obj_id)
        with self._lock:
            self._not_running()
            self._state(obj_id)
            del self._objects[obj_id]
            self._bank.remove_object(obj_id)
            self._candidates.forget(obj_id)
            self._decoded_initial = {key for key in self._decoded_initial if key[0] != obj_id}
            self._redecode = {key: v for key, v in self._redecode.items() if key[0] != obj_id}
            if clear_labels:
                self.lineage.remove(obj_id)
                self._clear_pixels(obj_id, range(self.num_frames))

    def _clear_pixels(self, obj_id: int, frames) -> None:
        for f in frames:
            frame = self.labels[f]
            if np.any(frame == obj_id):
                new = np.array(frame, copy=True)
                new[new == obj_id] = 0
                self.labels[f] = new

    def mark_stale(self, frames=None) -> None:
        """Mark every object's results on ``frames`` (default: all) out of
        date, so that the next :meth:`propagate` computes them again, e.g.
        after their labels were undone or edited outside the session."""
        with self._lock:
            self._not_running()
            n = self.num_frames
            picked = slice(None) if frames is None else np.array([check_frame(f, n) for f in frames], dtype=np.int64)
            for state in self._objects.values():
                state.fresh[picked] = False

    def close(self) -> None:
        """Free the cached image features and remove their disk folder, if
        any (the session stays usable: features are computed again)."""
        with self._lock:
            self._not_running()
            self._features.close()

    def reset(self) -> None:
        """Forget all objects, prompts, memories and the lineage (labels and
        cached image features are kept)."""
        with self._lock:
            self._not_running()
            self._objects.clear()
            self.lineage.clear()
            self._bank.clear()
            self._candidates = CandidateStore()
            self._decoded_initial, self._redecode = set(), {}

    # ================================================================ frames
    def prepare_frame(self, frame: int) -> None:
        """Compute ``frame``'s image features now (e.g. in a background thread
        when the viewer moves to it) so that prompts there decode instantly."""
        frame = check_frame(frame, self.num_frames)
        with self._lock:
            self._frame_features(frame)

    def is_prepared(self, frame: int) -> bool:
        """Whether ``frame``'s image features under the current intensity range are cached."""
        return self._feature_key(frame) in self._features

    def segment_frame(self, frame: int) -> np.ndarray:
        """Decode the prompts on ``frame`` and write that frame's labels.

        Returns the frame's label image (a copy), composed from every
        object's current mask there. With the frame's image features cached,
        only the prompt encoder and mask decoder run.
        """
        frame = check_frame(frame, self.num_frames)
        with self._lock, torch.inference_mode():
            self._not_running()
            for obj_id, state in self._objects.items():
                prompts = state.prompts.get(frame)
                if prompts is not None and prompts.dirty:
                    self._decode(obj_id, frame)
            decoded = {
                obj_id: state.pending[frame].logits
                for obj_id, state in self._objects.items()
                if frame in state.pending
            }
            old = np.array(self.labels[frame], copy=True)
            ids, logits, kept = self._current_masks(frame, decoded)
            if ids:
                new = compose_frame(old, ids, logits, kept=kept, claimants=list(decoded))
                self._write_labels(frame, new)
                return np.array(new, copy=True)
            return old

    # ============================================================ propagation
    def propagate(
        self,
        direction: str = "forward",
        start: int | None = None,
        stop: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Track every object through the stack; iterate for ``(frame, labels_2d)``.

        ``direction``: "forward", "backward" or "both" (forward from the first
        prompted frame, then backward from it; the prompted frame is written
        once, unless an object tracked but not prompted there is tracked
        there again backward). ``start``/``stop``: the frame span tracking
        stays in (inclusive; default the whole stack). Only frames whose
        result is out of date with the prompts are run: after a correction,
        the frames downstream of it (or, with ``SessionOptions(rerun="all")``,
        every frame of the corrected object); frames outside the span that
        are out of date stay so. Each frame written is composed from every
        tracked object's current mask there. ``progress(done, total)`` is
        called after each frame. The work starts at the first ``next()``,
        on the session as it is then. Closing the generator, or
        :meth:`stop` from any thread, cancels between frames: frames not
        reached keep their old labels and stay out of date. A frame whose
        label write fails raises and stays out of date too.
        """
        return _frames_and_labels(self.propagate_results(direction, start, stop, progress))

    def propagate_results(
        self,
        direction: str = "forward",
        start: int | None = None,
        stop: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Iterator[FrameResult]:
        """Like :meth:`propagate`, yielding :class:`FrameResult` (per-object logits too)."""
        lo, hi = check_span(direction, start, stop, self.num_frames)
        with self._lock:
            self._not_running()
            check_trackable(self._objects)
        return self._run(direction, lo, hi, progress, self._stops)

    def stop(self) -> None:
        """End the propagations running or created before this call, after
        the frame each is computing; callable from any thread (e.g. a GUI's
        while a worker thread iterates). Frames not reached stay out of date,
        so the next propagation finishes them."""
        with self._stop_lock:
            self._stops += 1

    def stop_token(self) -> int:
        """A mark of now for :meth:`stopped_since`: runs built on the
        session (track everything) take one when they are created."""
        return self._stops

    def stopped_since(self, token: int) -> bool:
        """Whether :meth:`stop` was called after ``token`` was taken."""
        return self._stops != token

    def _run(self, direction, lo, hi, progress, stops) -> Iterator[FrameResult]:
        # the work starts at the first next(): check the session as it is now
        with self._lock:
            self._not_running()
            check_trackable(self._objects, since_call=True)
            self._running = True
        try:
            with self._lock, torch.inference_mode():
                self._preflight()
                passes = self._plan(direction, lo, hi)
                # every frame a pass will rewrite is out of date until it is
                # rewritten, so that a cancelled run is finished by the next one
                for p in passes:
                    for obj_id in p.objects:
                        self._objects[obj_id].fresh[p.frames] = False
            total = sum(len(p.frames) for p in passes)
            done = 0
            for p in passes:
                if p.visited is not None:
                    # reached without computing (prompted there): recorded as visited
                    for obj_id in p.objects:
                        self._objects[obj_id].direction[p.visited] = BACKWARD if p.reverse else FORWARD
                for f in p.frames:
                    if self._stops != stops:
                        return
                    objs = [o for o in p.objects if self.lineage.tracks(o, f)]
                    with self._lock, torch.inference_mode():
                        result = self._track_frame(f, objs, p.reverse)
                    done += 1
                    if progress is not None:
                        progress(done, total)
                    yield result
        finally:
            self._running = False

    # ================================================================ internals
    def _check_target(self, obj_id, frame) -> tuple[int, int]:
        return check_target(obj_id, frame, num_frames=self.num_frames, dtype=self.labels.dtype, lineage=self.lineage)

    def _not_running(self) -> None:
        if self._running:
            raise RuntimeError("a propagation is running; stop it (close the generator) first")

    def _state(self, obj_id: int) -> ObjectState:
        return state_of(self._objects, obj_id)

    def _edit_prompts(self, obj_id: int, frame: int, edit: Callable[[FramePrompts], None]) -> None:
        """``edit`` ``obj_id``'s prompts on ``frame`` (made if none), which are then out of date."""
        with self._lock:
            self._not_running()
            edit(frame_prompts(self._objects, self._bank, obj_id, frame, num_frames=self.num_frames))
            self._objects[obj_id].prompts[frame].dirty = True
            self._mark_stale(obj_id, frame)

    def _mark_stale(self, obj_id: int, k: int) -> None:
        """A prompt change of ``obj_id`` at ``k`` (:func:`mark_outdated`)."""
        exclusive = self.model.config.tracking.non_overlap_masks_for_mem_enc
        mark_outdated(self._objects, obj_id, k, rerun=self.options.rerun, exclusive=exclusive)

    def _feature_key(self, frame: int) -> int:
        return self._range_keys.key(self.frames.intensity_range, frame)

    def _frame_features(self, frame: int) -> FrameFeatures:
        def compute(_key: int) -> FrameFeatures:
            image = self.frames.model_input(frame, self.model.image_size, device=self.device)
            with torch.inference_mode(), autocast_for(self.device, self.options.autocast):
                return self._encode(image)

        return self._features.get_or_compute(self._feature_key(frame), compute, self.device)

    def _decode(self, obj_id: int, frame: int) -> None:
        """Run the heads on one object's prompts on one frame (no memory encoding yet)."""
        state = self._objects[obj_id]
        prompts = state.prompts[frame]
        feats = self._frame_features(frame)
        tracked = state.direction[frame] != UNTRACKED
        reverse = bool(state.direction[frame] == BACKWARD)
        readout = (
            self._bank.readout(obj_id, frame, num_frames=self.num_frames, reverse=reverse)
            if tracked and self._bank.cond_frames(obj_id)
            else None
        )
        redo = self._redecode.pop((obj_id, frame), None)
        if redo:  # not from the memory the other range left
            readout = None
        with autocast_for(self.device, self.options.autocast):
            if prompts.mask is not None:
                mask = torch.from_numpy(prompts.mask).to(self.device)[None, None]
                step = self.model.track_step(feats, readout=readout, mask=mask, encode_memory=False)
            else:
                prev = state.pending[frame].logits if frame in state.pending else self._bank.logits(obj_id, frame)
                if redo is not None and prompts.given_mask is None:
                    prev = None  # computed under another range (clicks refining a mask keep it)
                if prev is not None:
                    prev = prev.clamp(-PREV_LOGIT_LIMIT, PREV_LOGIT_LIMIT)
                step = self.model.track_step(
                    feats,
                    readout=readout,
                    points=prompts.point_prompts(self.device),
                    prev_logits=prev,
                    encode_memory=False,
                )
        head = step.head
        area = self.model.config.tracking.fill_hole_area
        low = fill_small_holes(head.low_res.float(), area)
        low, ptr = self._candidates.record(obj_id, frame, prompts, head, Output(low, head.obj_ptr), fill_hole_area=area)
        state.pending[frame] = Decoded(low, ptr, head.object_score_logits)
        prompts.dirty = False
        if readout is None:
            self._decoded_initial.add((obj_id, frame))
        else:
            self._decoded_initial.discard((obj_id, frame))

    def _preflight(self) -> None:
        """Decode changed prompts and turn prompted frames into conditioning memories."""
        for obj_id, state in self._objects.items():
            for frame, prompts in state.prompts.items():
                if prompts.dirty:
                    self._decode(obj_id, frame)
        s = self.model.image_size
        for obj_id, state in self._objects.items():
            for frame, out in sorted(state.pending.items()):
                feats = self._frame_features(frame)
                high = torch.nn.functional.interpolate(
                    out.logits, size=(s, s), mode="bilinear", align_corners=False
                )
                with autocast_for(self.device, self.options.autocast):
                    memory = self.model.encode_memory(
                        feats.embedding, high, out.object_score, from_points=True
                    )
                entry = FrameMemory(memory.to(torch.bfloat16), out.obj_ptr, out.object_score, out.logits)
                self._bank.set_cond(obj_id, frame, entry)
            state.pending.clear()

    def _plan(self, direction: str, lo: int, hi: int) -> list[Pass]:
        # frames outside an object's track limits are never out of date for it
        allowed = {o: self.lineage.allowed(o, self.num_frames) for o in self._objects}
        passes = plan(
            direction,
            lo,
            hi,
            cond=sorted({f for o in self._objects for f in self._bank.cond_frames(o)}),
            fresh={o: s.fresh | ~allowed[o] for o, s in self._objects.items()},
            prompted=lambda o, f: self._bank.cond_entry(o, f) is not None,
        )
        trimmed = [p._replace(frames=[f for f in p.frames if any(allowed[o][f] for o in p.objects)]) for p in passes]
        return [p for p in trimmed if p.frames]

    def _track_frame(self, frame: int, objs: list[int], reverse: bool) -> FrameResult:
        feats = self._frame_features(frame)
        lows: dict[int, torch.Tensor] = {}
        ids, readouts = [], []
        for obj_id in objs:
            entry = self._bank.cond_entry(obj_id, frame)
            if entry is not None:
                lows[obj_id] = entry.logits
                continue
            ids.append(obj_id)
            readouts.append(self._bank.readout(obj_id, frame, num_frames=self.num_frames, reverse=reverse))
        tracking = self.model.config.tracking
        others = self._other_logits(frame, objs) if tracking.non_overlap_masks_for_mem_enc else []
        exclusive = tracking.non_overlap_masks_for_mem_enc and bool(ids) and (len(objs) > 1 or bool(others))
        tracked: list[tuple[list[int], object, torch.Tensor | None]] = []
        if ids:
            # one step for every tracked object, whatever memories each reads
            # (padded to a common length and masked in memory attention)
            with autocast_for(self.device, self.options.autocast):
                step = self.model.track_step(feats.expand(len(ids)), readout=readouts, encode_memory=not exclusive)
            tracked.append((ids, step.head, step.memory))
        if exclusive:
            tracked = self._exclusive_memories(feats, tracked, list(lows.values()) + others)
        for ids, head, memory in tracked:
            low_all = fill_small_holes(head.low_res.float(), tracking.fill_hole_area)
            for i, obj_id in enumerate(ids):
                entry = FrameMemory(
                    memory[i : i + 1].to(torch.bfloat16),
                    head.obj_ptr[i : i + 1],
                    head.object_score_logits[i : i + 1],
                    low_all[i : i + 1],
                )
                self._bank.put(obj_id, frame, entry)
                lows[obj_id] = entry.logits
        run = {o: lows[o] for o in objs if o in lows}
        previous = np.array(self.labels[frame], copy=True)
        ids, logits, kept = self._current_masks(frame, run)
        new = compose_frame(previous, ids, logits, kept=kept, claimants=list(run))
        self._write_labels(frame, new)  # raises on failure: the frame stays out of date
        mark_written(self._objects, objs, frame, reverse=reverse, bank=self._bank)
        order = [ids.index(o) for o in run]
        return FrameResult(frame, tuple(run), logits[order], new, previous)

    def _current_masks(self, frame: int, known: dict[int, torch.Tensor]):
        """Every tracked object's current mask on ``frame``, to compose it:
        ``known`` (id -> ``1 x 1 x h x w`` low-resolution logits just
        computed), and for each other object its latest output there from
        the memory bank. Returns ``(ids, K x H x W logits, kept)`` in the
        session's object order (so that ties go the same way whichever
        objects were re-run), ``kept`` the objects with no output kept for
        ``frame`` (evicted from the bounded history, or never tracked
        there): their pixels stay."""
        lows = {}
        kept = []
        for obj_id in self._objects:
            if not self.lineage.tracks(obj_id, frame):
                continue
            low = known[obj_id] if obj_id in known else self._bank.logits(obj_id, frame)
            if low is None:
                kept.append(obj_id)
            else:
                lows[obj_id] = low
        ids = list(lows)
        if not ids:
            return ids, None, kept
        logits = upsample_logits(torch.cat([lows[o] for o in ids], dim=0), (self.height, self.width))
        return ids, logits, kept

    def _other_logits(self, frame: int, objs: list[int]) -> list[torch.Tensor]:
        """The kept outputs on ``frame`` of the objects not in ``objs``."""
        out = []
        for obj_id in self._objects:
            if obj_id not in objs and self.lineage.tracks(obj_id, frame):
                low = self._bank.logits(obj_id, frame)
                if low is not None:
                    out.append(low)
        return out

    def _write_labels(self, frame: int, new: np.ndarray) -> None:
        try:
            self.labels[frame] = new
        except Exception as exc:
            kind = OSError if isinstance(exc, OSError) else ValueError if isinstance(exc, ValueError) else RuntimeError
            raise kind(
                f"could not write frame {frame} into the labels array ({type(exc).__name__}: {exc}); "
                "that frame stays out of date and the next propagation computes it again"
            ) from exc

    def _exclusive_memories(self, feats, tracked, prompted_lows):
        """Memories of one frame for all tracked objects at once, each from
        its mask with the pixels where another object of the frame (tracked
        or prompted) has a higher logit pushed to -10 or below."""
        size = (self.model.image_size, self.model.image_size)
        highs = torch.cat([head.high_res.float() for _, head, _ in tracked])
        others = [upsample_logits(low, size)[:, None] for low in prompted_lows]
        exclusive = exclusive_logits(highs, torch.cat(others) if others else None)
        scores = torch.cat([head.object_score_logits for _, head, _ in tracked])
        with autocast_for(self.device, self.options.autocast):
            memory = self.model.encode_memory(
                feats.embedding.expand(len(highs), -1, -1, -1), exclusive, scores, from_points=False
            )
        out, start = [], 0
        for ids, head, _ in tracked:
            out.append((ids, head, memory[start : start + len(ids)]))
            start += len(ids)
        return out

    # ============================================================ intensity
    @property
    def intensity_range(self) -> tuple[float, float]:
        """``(lo, hi)`` mapped to ``(0, 1)`` for every frame: the range the
        model sees now ("auto" resolved to its numbers)."""
        return self.frames.intensity_range

    def set_intensity_range(self, intensity_range) -> None:
        """Map the stack with ``"auto"``, ``"dtype"`` or a fixed ``(lo, hi)``
        from now on (one range for every frame of the propagation axis).

        Image features are cached per range, so a frame is encoded again
        only when it is next needed, and a switch back to an earlier range
        reuses what the cache still holds. Every prompted frame is decoded
        again on next use (its clicks together, without the previous mask,
        which came from the other range) and every object's frames are
        marked out of date. A frame first decoded without memory (a first
        click) is decoded so again, giving what the same clicks give under
        the new range; a correction on a tracked frame reads the memories
        the last propagation left until the next one, and clicks refining a
        mask given with :meth:`add_mask` refine the frame's last output. The labels are not
        rewritten here:
        :meth:`segment_frame` and :meth:`propagate` do that. Setting the
        range in use changes nothing.
        """
        with self._lock:
            self._not_running()
            if not self.frames.set_intensity_range(intensity_range):  # validates first
                return
            for obj_id, state in self._objects.items():
                for frame, prompts in state.prompts.items():
                    prompts.dirty = True  # its pending output stays only as a previous mask
                    self._redecode[obj_id, frame] = (obj_id, frame) in self._decoded_initial
            self.mark_stale()

    # ============================================================ candidates
    def mask_candidates(self, obj_id: int, frame: int) -> list[MaskCandidate]:
        """SAM's candidate masks for ``obj_id``'s points or box on ``frame``,
        best predicted IoU first (see :mod:`.candidates`): the multimask
        tokens of the decode that gave the frame's mask. Decodes changed
        prompts first (and writes the frame's labels, as
        :meth:`segment_frame`). Empty when the object has no point or box prompts on
        the frame."""
        obj_id, frame = check_object_id(obj_id), check_frame(frame, self.num_frames)
        with self._lock, torch.inference_mode():
            self._not_running()
            prompts = self._decoded_prompts(obj_id, frame)
            return self._candidates.candidates(obj_id, frame, prompts, (self.height, self.width))

    def chosen_candidate(self, obj_id: int, frame: int) -> int | None:
        """The candidate chosen for ``obj_id`` on ``frame`` (an index into
        :meth:`mask_candidates`), or None for the model's own pick."""
        obj_id, frame = check_object_id(obj_id), check_frame(frame, self.num_frames)
        with self._lock:
            prompts = self._state(obj_id).prompts.get(frame)
            return self._candidates.chosen(obj_id, frame, prompts)

    def choose_candidate(self, obj_id: int, frame: int, k: int | None) -> np.ndarray:
        """Make candidate ``k`` of :meth:`mask_candidates` (None: the model's
        own pick) ``obj_id``'s output on ``frame``, with that candidate's
        object pointer; the clicks stay the prompts, the next click there
        refines the chosen mask, and the frames tracked through this one are
        marked out of date. Returns the frame's labels (a copy), rewritten."""
        obj_id, frame = check_object_id(obj_id), check_frame(frame, self.num_frames)
        with self._lock, torch.inference_mode():
            self._not_running()
            prompts = self._decoded_prompts(obj_id, frame)
            low, ptr = self._candidates.choose(obj_id, frame, prompts, k)
            state = self._objects[obj_id]
            score = state.pending[frame].object_score if frame in state.pending else self._bank.cond_entry(obj_id, frame).object_score
            state.pending[frame] = Decoded(low, ptr, score)
            self._mark_stale(obj_id, frame)
            return self.segment_frame(frame)

    def _decoded_prompts(self, obj_id: int, frame: int) -> FramePrompts | None:
        prompts = self._state(obj_id).prompts.get(frame)
        if prompts is not None and prompts.dirty:
            self.segment_frame(frame)  # decodes and shows the frame's changed prompts
        return prompts

    # ====================================================== painting, states
    def use_mask_from_labels(self, obj_id: int, frame: int, labels=None) -> None:
        """Make ``obj_id``'s pixels in a label frame (``Y x X``; by default
        ``session.labels[frame]``, e.g. after the user painted or erased
        there) its mask prompt on ``frame``: a correction the next
        :meth:`propagate` carries on. :meth:`clear_frame` takes it back."""
        frame = check_frame(frame, self.num_frames)
        source = self.labels[frame] if labels is None else np.asarray(labels)
        check_label_frame(source, (self.height, self.width))
        self.add_mask(obj_id, frame, np.asarray(source) == obj_id)

    def frame_states(self, obj_id: int | None = None) -> np.ndarray:
        """``(num_frames,)`` int8: ``FRAME_CURRENT``, ``FRAME_OUT_OF_DATE``
        or ``FRAME_NOT_REACHED`` per frame (see :mod:`.frame_states`), for
        ``obj_id`` or, with None, the worst over all objects. Reads the
        bookkeeping only, without waiting for a running propagation."""
        if obj_id is not None:
            ids = [check_object_id(obj_id)]
            self._state(ids[0])
        else:
            ids = list(self._objects)
        return frame_states(self._objects, self._bank, ids, self.num_frames)

    def _reached(self, obj_id: int, state: ObjectState) -> np.ndarray:
        """Per frame: whether ``obj_id`` has an output there (tracked, or kept)."""
        return reached_frames(state, self._bank, obj_id)

    # ==================================================== automatic (automatic.py)
    def segment_everything(self, frame: int, options=None):
        """Every object on ``frame`` (:func:`napari_sam2.segment_everything`),
        decoded from the frame's cached image features (crops, if any, are
        encoded on their own). Returns an ``AutomaticResult``; the session's
        objects and labels are not changed. The cached features come from
        the session's own model input (``FrameSource.model_input``, Meta's
        video loader), the stand-alone call resizes as Meta's image
        predictor does: on images not at the model's size the two can
        differ slightly."""
        from .automatic import compose_candidates, generate_masks

        frame = check_frame(frame, self.num_frames)
        options = checked_options(options)
        with self._lock:
            self._not_running()
            feats = self._frame_features(frame)
            unit = self.frames.normalized(frame)
            candidates = generate_masks(self.model, unit, options=options, full_features=feats)
        return compose_candidates(candidates, options)

    def track_everything(self, direction: str = "forward", start=None, stop=None, *, options=None,
                         detect_every: int = 5, divisions=None, progress=None):
        """Segment everything on the first frame of the pass, track it, and
        pick up new objects every ``detect_every`` frames (and, with
        ``divisions``, a ``DivisionOptions``, find divisions); iterate for
        ``(frame, labels_2d)`` (see :func:`napari_sam2.engine.track_all.track_everything`)."""
        from .track_all import track_everything

        return track_everything(self, direction, start, stop, options=options,
                                detect_every=detect_every, divisions=divisions, progress=progress)

    def object_frames(self, obj_id: int) -> list[int]:
        """Frames whose labels hold ``obj_id`` (also for objects no longer tracked)."""
        obj_id = check_object_id(obj_id)
        return [f for f in range(self.num_frames) if np.any(np.asarray(self.labels[f]) == obj_id)]


    # ================================================================ lineage (lineage.py, divisions.py)
    def limit_track(self, obj_id: int, *, first: int | None = None, last: int | None = None) -> None:
        """Track ``obj_id`` only on frames ``first..last`` (None: no limit on
        that side), e.g. a mother up to the frame before her division and a
        daughter from it on. Its outputs and pixels outside go; frames the
        new limits open up are out of date. Its prompts must lie inside."""
        obj_id = check_object_id(obj_id)
        n = self.num_frames
        first, last = (None if v is None else check_frame(v, n) for v in (first, last))
        with self._lock:
            self._not_running()
            after = set_track_limits(self.lineage, self._objects.get(obj_id), self._bank, obj_id, first, last,
                                     num_frames=n)
            self._clear_pixels(obj_id, np.flatnonzero(~after))

    def lineage_records(self) -> list[LineageRecord]:
        """One record per object (tracked, in the labels or in the lineage),
        by id: first and last frame with pixels (-1: none) and mother (0: none)."""
        with self._lock:
            presence = label_presence(self.labels)
            ids = sorted(set(self._objects) | set(presence) | self.lineage.ids())
            return lineage_records(ids, lambda i: presence.get(i, ()), self.lineage)

    def lineage_state(self) -> LineageState:
        """The lineage as values (mothers, track limits), for undo steps and files."""
        return self.lineage.state()

    def restore_lineage(self, state: LineageState) -> None:
        """Make the lineage ``state`` (:meth:`lineage_state`) again: track
        limits through :meth:`limit_track`, then the mothers (checked)."""
        from .divisions import restore_lineage

        with self._lock:
            self._not_running()
            restore_lineage(self, LineageState(*state))

    def mark_division(self, obj_id: int, frame: int, daughters, *, ids=None):
        """``obj_id`` divides on ``frame`` into ``daughters`` (masks or clicks):
        see :func:`napari_sam2.engine.divisions.mark_division`. Returns a
        ``DivisionEdit`` (``undo_division`` takes it back)."""
        from .divisions import mark_division

        return mark_division(self, obj_id, frame, daughters, ids=ids)

    def link(self, daughter: int, mother: int) -> LineageState:
        """Make ``mother`` the mother of ``daughter`` (she must end before it
        begins; their tracks are limited so); returns the lineage before."""
        from .divisions import link_objects

        return link_objects(self, daughter, mother)

    def unlink(self, daughter: int) -> LineageState:
        """``daughter`` has no mother any more (track limits stay); returns the lineage before."""
        before = self.lineage_state()
        self.lineage.unlink(check_object_id(daughter))
        return before

    def decode_clicks(self, frame: int, clicks):
        """SAM's mask for each ``(points, labels)`` click set of ``clicks``
        (``N x 2`` ``(y, x)``, 1 positive / 0 negative; the same N for all) on
        ``frame``, decoded as first clicks (no memory) from the frame's cached
        image features. Nothing of the session changes, so it may be called
        between the frames of a running propagation. Returns ``ClickMasks``."""
        from .divisions import decode_click_sets

        frame = check_frame(frame, self.num_frames)
        checked = check_click_sets(clicks, (self.height, self.width))
        coords = np.array([self._scaler.points(p) for p, _ in checked], dtype=np.float32)  # (B, N, 2) as (x, y)
        labels = np.stack([lab for _, lab in checked])
        with self._lock, torch.inference_mode():
            feats = self._frame_features(frame)
            with autocast_for(self.device, self.options.autocast):
                return decode_click_sets(self.model, feats, coords, labels, (self.height, self.width))

    def propagate_divisions(self, start=None, stop=None, *, options=None, progress=None):
        """Propagate forward and find divisions as it goes (see
        :mod:`napari_sam2.engine.divisions`); iterate for ``(frame, labels_2d)``,
        each frame of ``start..stop`` once, also those already current (they
        are read for divisions)."""
        from .track_all import propagate_divisions

        return propagate_divisions(self, start, stop, options=options, progress=progress)

    # ================================================================ session files
    def prompt_records(self) -> list[ObjectRecord]:
        """Every object's prompts as the caller gave them (original pixels, (y, x))."""
        with self._lock:
            out = []
            for obj_id, state in self._objects.items():
                frames = {}
                for frame, p in sorted(state.prompts.items()):
                    labels = tuple(int(v) for v in p.labels)
                    frames[frame] = FrameRecord(tuple(p.given_points), labels, p.given_box, p.given_mask)
                out.append(ObjectRecord(obj_id, None, frames))
            return out

    def tracking_state(self) -> dict[int, dict[str, np.ndarray]]:
        """Per object, per frame: the direction of the pass that wrote it
        (-1 untracked, 0 forward, 1 backward), whether its result is
        current, and whether it has a result there at all ("reached")
        (copies)."""
        with self._lock:
            return {obj_id: {"direction": s.direction.copy(), "fresh": s.fresh.copy(),
                             "reached": self._reached(obj_id, s)}
                    for obj_id, s in self._objects.items()}

    def restore_tracking_state(self, state: dict[int, dict[str, np.ndarray]]) -> None:
        """Take back what :meth:`tracking_state` gave (e.g. from a session file)."""
        with self._lock:
            self._not_running()
            for obj_id, arrays in state.items():
                s = self._state(obj_id)
                for name in ("direction", "fresh"):
                    value = np.asarray(arrays[name]).astype(getattr(s, name).dtype)
                    if value.shape != (self.num_frames,):
                        raise ValueError(
                            f"tracking state of object {obj_id}: {name} has shape {value.shape}, "
                            f"expected ({self.num_frames},)"
                        )
                    setattr(s, name, value)
                if "reached" in arrays:  # outputs no pass of this session wrote
                    reached = np.asarray(arrays["reached"], dtype=bool)
                    if reached.shape != (self.num_frames,):
                        raise ValueError(
                            f"tracking state of object {obj_id}: reached has shape {reached.shape}, "
                            f"expected ({self.num_frames},)"
                        )
                    s.reached_before = reached & (s.direction == UNTRACKED)

    def prompted_states(self) -> dict[int, dict[int, PromptedState]]:
        """Per object, per prompted frame, what was decoded there and is not
        in the prompts themselves (:class:`PromptedState`; tensors are the
        session's own, not copies)."""
        with self._lock:
            out: dict[int, dict[int, PromptedState]] = {}
            for obj_id, state in self._objects.items():
                out[obj_id] = {
                    frame: PromptedState(
                        decoded=not p.dirty,
                        output=state.pending.get(frame),
                        memory=self._bank.cond_entry(obj_id, frame),
                        initial=(obj_id, frame) in self._decoded_initial,
                        redecode=self._redecode.get((obj_id, frame)),
                        candidates=self._candidates.snapshot(obj_id, frame, p),
                    )
                    for frame, p in sorted(state.prompts.items())
                }
            return out

    def restore_prompted_states(self, states: dict[int, dict[int, PromptedState]]) -> None:
        """Take back what :meth:`prompted_states` gave, after the same prompts
        were given again (e.g. from a session file): the frames show, report
        and propagate what they did, without being decoded again."""
        with self._lock:
            self._not_running()
            checked = {}  # everything first: a state that does not fit changes nothing
            for obj_id, frames in states.items():
                state = self._state(obj_id)
                for frame, saved in frames.items():
                    if frame not in state.prompts:
                        raise ValueError(f"object {obj_id} has no prompts on frame {frame} to restore a decode of")
                    where = f"object {obj_id}, frame {frame}"
                    checked[obj_id, frame] = checked_state(saved, self.model, self.device, where=where)
            for (obj_id, frame), saved in checked.items():
                state = self._objects[obj_id]
                prompts = state.prompts[frame]
                if saved.output is None:
                    state.pending.pop(frame, None)
                else:
                    state.pending[frame] = Decoded(*saved.output)
                if saved.memory is not None:
                    self._bank.set_cond(obj_id, frame, saved.memory)
                prompts.dirty = not saved.decoded
                key = (obj_id, frame)
                if saved.initial:
                    self._decoded_initial.add(key)
                else:
                    self._decoded_initial.discard(key)
                if saved.redecode is None:
                    self._redecode.pop(key, None)
                else:
                    self._redecode[key] = bool(saved.redecode)
                if saved.candidates is not None:
                    self._candidates.restore(obj_id, frame, prompts, saved.candidates)

    def save(self, path, *, objects_meta: dict[int, dict] | None = None, model_source: str | None = None):
        """Write the session to ``path`` (a folder, or a ``.zip``), atomically;
        see :mod:`napari_sam2.engine.persist`."""
        from .persist import save_session

        with self._lock:
            self._not_running()
            return save_session(self, path, objects_meta=objects_meta, model_source=model_source)

    @classmethod
    def load(cls, path, model, data, **kwargs) -> "StackSession":
        """Open the session file at ``path`` over ``data`` with ``model``.

        ``kwargs`` go to the constructor (``labels``, ``options``; frame-source
        settings default to the saved ones). Another stack shape, another
        model or a newer file format is a :class:`SessionFileError` saying
        what differs.
        """
        from .persist import load_session

        session, meta = load_session(cls, path, model, data, **kwargs)
        session.objects_meta = meta
        return session
def _frames_and_labels(results: Iterator[FrameResult]) -> Iterator[tuple[int, np.ndarray]]:
    try:
        for result in results:
            yield result.frame, result.labels
    finally:
        results.close()
