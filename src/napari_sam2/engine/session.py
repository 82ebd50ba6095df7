"""StackSession: objects, prompts, instant segmentation and propagation
through a stack, with bounded memory.

A stack is any array-like read one frame at a time along the propagation
axis (see :class:`FrameSource`). Several objects are tracked together: they
share one image encoding per frame and are batched through memory attention
whenever they read the same frames. Results go into an integer label array
(``session.labels``), each frame written whole.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Iterator, NamedTuple

import numpy as np
import torch

from ..model import FrameFeatures, SAM2Model
from ..model.device import autocast_for
from .candidates import CandidateStore, MaskCandidate, Output
from .features import CacheBudget, FeatureCache, MiB
from .frame_states import combine_states, object_frame_states
from .frames import FrameSource
from .holes import fill_small_holes
from .intensity import RangeKeys
from .labels import check_id_fits, check_labels_array, compose_frame, exclusive_logits, upsample_logits
from .memory import FrameMemory, MemoryBank, stack_readouts
from .prompts import (
    FramePrompts,
    PromptScaler,
    check_box,
    check_frame,
    check_mask,
    check_object_id,
    check_points,
)

DIRECTIONS = ("forward", "backward", "both")
UNTRACKED, FORWARD, BACKWARD = -1, 0, 1
# prev-logit clamp when correction clicks are decoded with an earlier mask
PREV_LOGIT_LIMIT = 32.0


@dataclass(frozen=True)
class SessionOptions:
    """``feature_cache``: RAM (and optional disk) budget for image features;
    ``history_mb``: budget for tracked frames' memories kept for corrections;
    ``autocast``: bfloat16 on CUDA; ``compile_image_encoder``: torch.compile
    the image encoder (CUDA; the first frames are slow while it compiles)."""

    feature_cache: CacheBudget = CacheBudget()
    history_mb: float = 256.0
    autocast: bool = True
    compile_image_encoder: bool = False

    def __post_init__(self) -> None:
        if not self.history_mb >= 0:
            raise ValueError(f"history_mb must be >= 0 MB, got {self.history_mb}")


class FrameResult(NamedTuple):
    """One propagated frame: ``logits`` is ``K x H x W`` (float32, original
    resolution), one per id in ``object_ids``; ``labels`` the frame as
    written and ``previous`` as it was before (e.g. to record an undo step)."""

    frame: int
    object_ids: tuple[int, ...]
    logits: torch.Tensor
    labels: np.ndarray
    previous: np.ndarray


class _Decoded(NamedTuple):
    """A prompted frame's output not yet turned into memory."""

    logits: torch.Tensor  # 1 x 1 x 4S x 4S
    obj_ptr: torch.Tensor  # 1 x C
    object_score: torch.Tensor  # 1 x 1


@dataclass
class _ObjectState:
    prompts: dict[int, FramePrompts] = field(default_factory=dict)
    pending: dict[int, _Decoded] = field(default_factory=dict)
    direction: np.ndarray | None = None  # per frame: UNTRACKED / FORWARD / BACKWARD
    pass_start: np.ndarray | None = None  # per frame: where the pass that wrote it began
    fresh: np.ndarray | None = None  # per frame: output agrees with the current prompts


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
        if not isinstance(model, SAM2Model):
            raise TypeError(
                f"model must be a SAM 2 network from napari_sam2.load_model, got {type(model).__name__}"
            )
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
        self._bank = MemoryBank(model.config.tracking, history_bytes=int(options.history_mb * MiB))
        self._objects: dict[int, _ObjectState] = {}
        self._scaler = PromptScaler((self.height, self.width), model.image_size)
        self._lock = threading.RLock()
        self._running = False
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
        pixels of the original image, ``labels`` 1 positive / 0 negative."""
        obj_id, frame = self._check_target(obj_id, frame)
        yx, labs = check_points(points, labels, (self.height, self.width))
        with self._lock:
            self._not_running()
            prompts = self._frame_prompts(obj_id, frame)
            if prompts.mask is not None:
                prompts.mask = None
            prompts.points += self._scaler.points(yx)
            prompts.labels += labs.tolist()
            self._prompt_changed(obj_id, frame)

    def add_box(self, obj_id: int, frame: int, box) -> None:
        """Set ``obj_id``'s box ``(y0, x0, y1, x1)`` on ``frame``; it replaces
        earlier points and box there (clicks added afterwards refine it)."""
        obj_id, frame = self._check_target(obj_id, frame)
        yxyx = check_box(box, (self.height, self.width))
        with self._lock:
            self._not_running()
            prompts = self._frame_prompts(obj_id, frame)
            prompts.mask, prompts.points, prompts.labels = None, [], []
            prompts.box = self._scaler.box(yxyx)
            self._prompt_changed(obj_id, frame)

    def add_mask(self, obj_id: int, frame: int, mask) -> None:
        """Give ``obj_id``'s mask on ``frame`` (``Y x X``, nonzero = object);
        it replaces points and box there."""
        obj_id, frame = self._check_target(obj_id, frame)
        m = check_mask(mask, (self.height, self.width))
        s = self.model.image_size
        t = torch.from_numpy(m).float()[None, None]
        if m.shape != (s, s):
            t = torch.nn.functional.interpolate(
                t, size=(s, s), mode="bilinear", align_corners=False, antialias=True
            )
            t = t >= 0.5
        with self._lock:
            self._not_running()
            prompts = self._frame_prompts(obj_id, frame)
            prompts.box, prompts.points, prompts.labels = None, [], []
            prompts.mask = t.bool().numpy()[0, 0]
            self._prompt_changed(obj_id, frame)

    def clear_frame(self, obj_id: int, frame: int) -> None:
        """Remove ``obj_id``'s prompts on ``frame`` (its mask there stays until
        the next propagation)."""
        obj_id, frame = check_object_id(obj_id), check_frame(frame, self.num_frames)
        with self._lock:
            self._not_running()
            state = self._state(obj_id)
            state.prompts.pop(frame, None)
            state.pending.pop(frame, None)
            if self._bank.cond_entry(obj_id, frame) is not None:
                self._bank.downgrade_cond(obj_id, frame)
                state.direction[frame] = UNTRACKED
            self._mark_stale(obj_id, frame)

    def remove_object(self, obj_id: int, *, clear_labels: bool = True) -> None:
        """Forget ``obj_id``; by default its pixels are cleared in every frame."""
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
                for f in range(self.num_frames):
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
            if frames is None:
                picked = slice(None)
            else:
                picked = np.array([check_frame(f, self.num_frames) for f in frames], dtype=np.int64)
            for state in self._objects.values():
                state.fresh[picked] = False

    def reset(self) -> None:
        """Forget all objects, prompts and memories (labels and cached image
        features are kept)."""
        with self._lock:
            self._not_running()
            self._objects.clear()
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

        Returns the frame's label image (a copy). With the frame's image
        features cached, only the prompt encoder and mask decoder run.
        """
        frame = check_frame(frame, self.num_frames)
        with self._lock, torch.inference_mode():
            self._not_running()
            for obj_id, state in self._objects.items():
                prompts = state.prompts.get(frame)
                if prompts is not None and prompts.dirty:
                    self._decode(obj_id, frame)
            ids, lows = [], []
            for obj_id, state in self._objects.items():
                low = state.pending[frame].logits if frame in state.pending else self._bank.logits(obj_id, frame)
                if low is not None:
                    ids.append(obj_id)
                    lows.append(low)
            if ids:
                logits = upsample_logits(torch.cat(lows, dim=0), (self.height, self.width))
                self.labels[frame] = compose_frame(self.labels[frame], ids, logits)
            return np.array(self.labels[frame], copy=True)

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
        prompted frame, then backward from it). ``start``/``stop``: the frame
        span tracking stays in (inclusive; default the whole stack). Only
        frames whose result is out of date with the prompts are run: after a
        correction, the span downstream of it. ``progress(done, total)`` is
        called after each frame. Closing the generator cancels between
        frames: frames not reached keep their old labels.
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
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
        lo = 0 if start is None else check_frame(start, self.num_frames)
        hi = self.num_frames - 1 if stop is None else check_frame(stop, self.num_frames)
        if lo > hi:
            raise ValueError(f"start ({lo}) must not be after stop ({hi})")
        with self._lock:
            self._not_running()
            if not self._objects:
                raise ValueError("no objects to track: add points, a box or a mask first")
            empty = [i for i, s in self._objects.items() if not s.prompts]
            if empty:
                raise ValueError(
                    f"object(s) {empty} have no prompts; add a point, box or mask, or remove them"
                )
        return self._run(direction, lo, hi, progress)

    def _run(self, direction, lo, hi, progress) -> Iterator[FrameResult]:
        with self._lock:
            self._not_running()
            self._running = True
        try:
            with self._lock, torch.inference_mode():
                self._preflight()
                passes = self._plan(direction, lo, hi)
                # every frame a pass will rewrite is out of date until it is
                # rewritten, so that a cancelled run is finished by the next one
                for frames, _, objs in passes:
                    for obj_id in objs:
                        self._objects[obj_id].fresh[frames] = False
            total = sum(len(frames) for frames, _, _ in passes)
            done = 0
            for frames, reverse, objs in passes:
                begin = frames[0]
                for f in frames:
                    with self._lock, torch.inference_mode():
                        result = self._track_frame(f, objs, reverse, begin)
                    done += 1
                    if progress is not None:
                        progress(done, total)
                    yield result
        finally:
            self._running = False

    # ================================================================ internals
    def _check_target(self, obj_id, frame) -> tuple[int, int]:
        obj_id = check_object_id(obj_id)
        frame = check_frame(frame, self.num_frames)
        check_id_fits(obj_id, self.labels.dtype)
        return obj_id, frame

    def _not_running(self) -> None:
        if self._running:
            raise RuntimeError("a propagation is running; stop it (close the generator) first")

    def _state(self, obj_id: int) -> _ObjectState:
        try:
            return self._objects[obj_id]
        except KeyError:
            raise KeyError(f"no object with id {obj_id}; known objects: {self.object_ids}") from None

    def _frame_prompts(self, obj_id: int, frame: int) -> FramePrompts:
        state = self._objects.get(obj_id)
        if state is None:
            n = self.num_frames
            state = _ObjectState(
                direction=np.full(n, UNTRACKED, dtype=np.int8),
                pass_start=np.zeros(n, dtype=np.int64),
                fresh=np.zeros(n, dtype=bool),
            )
            self._objects[obj_id] = state
            self._bank.add_object(obj_id)
        return state.prompts.setdefault(frame, FramePrompts())

    def _prompt_changed(self, obj_id: int, frame: int) -> None:
        self._objects[obj_id].prompts[frame].dirty = True
        self._mark_stale(obj_id, frame)

    def _mark_stale(self, obj_id: int, k: int) -> None:
        """A prompt change at ``k`` outdates ``k`` and the frames a pass
        reached through ``k``."""
        s = self._objects[obj_id]
        f = np.arange(self.num_frames)
        downstream = ((s.direction == FORWARD) & (f > k) & (s.pass_start <= k)) | (
            (s.direction == BACKWARD) & (f < k) & (s.pass_start >= k)
        )
        s.fresh[downstream] = False
        s.fresh[k] = False

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
                if redo is not None:
                    prev = None  # computed under another intensity range
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
        state.pending[frame] = _Decoded(low, ptr, head.object_score_logits)
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

    def _first_stale(self, objs, frames) -> int | None:
        for f in frames:
            if any(not self._objects[o].fresh[f] for o in objs):
                return f
        return None

    def _plan(self, direction: str, lo: int, hi: int) -> list[tuple[list[int], bool, list[int]]]:
        """The passes to run: (frames in order, reverse, objects taking part)."""
        objs = list(self._objects)
        cond = sorted({f for o in objs for f in self._bank.cond_frames(o)})
        passes = []
        if direction in ("forward", "both"):
            first = max(lo, cond[0])
            begin = self._first_stale(objs, range(first, hi + 1))
            if begin is not None:
                frames = list(range(begin, hi + 1))
                takers = [o for o in objs if not self._objects[o].fresh[frames].all()]
                passes.append((frames, False, takers))
        if direction in ("backward", "both"):
            anchor = cond[0] if direction == "both" else cond[-1]
            last = min(hi, anchor)
            if last >= lo:
                begin = self._first_stale(objs, range(last, lo - 1, -1))
                if begin is not None:
                    if direction == "both":
                        begin = last  # like the reference, go back from the prompted frame
                    frames = list(range(begin, lo - 1, -1))
                    takers = [o for o in objs if not self._objects[o].fresh[frames].all()]
                    passes.append((frames, True, takers))
        return passes

    def _track_frame(self, frame: int, objs: list[int], reverse: bool, begin: int) -> FrameResult:
        feats = self._frame_features(frame)
        lows: dict[int, torch.Tensor] = {}
        groups: dict[tuple, list] = {}
        for obj_id in objs:
            entry = self._bank.cond_entry(obj_id, frame)
            if entry is not None:
                lows[obj_id] = entry.logits
                continue
            readout = self._bank.readout(obj_id, frame, num_frames=self.num_frames, reverse=reverse)
            groups.setdefault(readout.frames, []).append((obj_id, readout))
        tracking = self.model.config.tracking
        exclusive = tracking.non_overlap_masks_for_mem_enc and bool(groups) and len(objs) > 1
        tracked: list[tuple[list[int], object, torch.Tensor | None]] = []
        for members in groups.values():
            ids = [m[0] for m in members]
            readout = stack_readouts([m[1] for m in members])
            with autocast_for(self.device, self.options.autocast):
                step = self.model.track_step(feats.expand(len(ids)), readout=readout, encode_memory=not exclusive)
            tracked.append((ids, step.head, step.memory))
        if exclusive:
            tracked = self._exclusive_memories(feats, tracked, list(lows.values()))
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
        for obj_id in objs:
            s = self._objects[obj_id]
            s.direction[frame] = BACKWARD if reverse else FORWARD
            s.pass_start[frame] = begin
            s.fresh[frame] = True
        ids = [o for o in objs if o in lows]
        logits = upsample_logits(torch.cat([lows[o] for o in ids], dim=0), (self.height, self.width))
        previous = np.array(self.labels[frame], copy=True)
        new = compose_frame(previous, ids, logits)
        self.labels[frame] = new
        return FrameResult(frame, tuple(ids), logits, new, previous)

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
        the last propagation left until the next one. The labels are not
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
                    prompts.dirty = True
                    state.pending.pop(frame, None)
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
            state.pending[frame] = _Decoded(low, ptr, score)
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
        if tuple(source.shape) != (self.height, self.width):
            raise ValueError(
                f"labels has shape {tuple(source.shape)} but frames are {self.height} x {self.width}; "
                "give one label frame"
            )
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
        per_object = []
        for i in ids:
            state = self._objects.get(i)
            if state is None:
                continue
            prompted = [(f, not p.dirty) for f, p in list(state.prompts.items())]
            reached = state.direction != UNTRACKED
            for f in np.flatnonzero(~reached):  # e.g. a frame whose prompts were removed keeps its output
                reached[f] = self._bank.logits(i, int(f)) is not None
            per_object.append(object_frame_states(reached, state.fresh, prompted))
        return combine_states(per_object, self.num_frames)

def _frames_and_labels(results: Iterator[FrameResult]) -> Iterator[tuple[int, np.ndarray]]:
    try:
        for result in results:
            yield result.frame, result.labels
    finally:
        results.close()
