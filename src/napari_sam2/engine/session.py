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
from typing import Callable, Iterator

import numpy as np
import torch

from ..model import SAM2Model
from . import session_states
from .automatic_options import checked_options
from .candidates import MaskCandidate
from .decoding import PREV_LOGIT_LIMIT, PromptDecoder, mask_prompt
from .features import FeatureCache, MiB
from .frame_encoder import FrameEncoder
from .frame_labels import clear_pixels, current_masks, write_labels
from .frame_step import other_logits, track_objects
from .frames import FrameSource
from .labels import check_labels_array, compose_frame
from .lineage import Lineage, LineageRecord, LineageState, label_presence, lineage_records
from .memory import MemoryBank
from .object_state import ObjectState, clear_prompts, frame_prompts, frame_states, mark_outdated, mark_written
from .object_state import set_track_limits, state_of
from .prompt_records import ObjectRecord
from .prompted_state import PromptedState
from .prompts import FramePrompts, PromptScaler, check_box, check_frame, check_mask, check_object_id, check_points
from .persist import load_session, save_session
from .propagation import FrameResult, RunControl, frames_and_labels, mark_planned, plan_run, run_passes
from .session_checks import check_click_sets, check_label_frame, check_session_args, check_span, check_target
from .session_checks import check_trackable
from .session_options import DIRECTION_MEMORIES, DIRECTIONS, RERUN_MODES, SessionOptions

# moved out, still importable from here
__all__ = ["DIRECTIONS", "DIRECTION_MEMORIES", "FrameResult", "PREV_LOGIT_LIMIT", "RERUN_MODES", "SessionOptions",
           "StackSession"]


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

    def __init__(self, model: SAM2Model, data, *, axis: int = 0, channel_axis: int | None = None, channels=None,
                 index=None, intensity_range="auto", labels=None, options: SessionOptions = SessionOptions()) -> None:
        check_session_args(model, options)
        self.model, self.device, self.options = model, model.device, options
        self.frames = FrameSource(data, axis=axis, channel_axis=channel_axis, channels=channels, index=index,
                                  intensity_range=intensity_range)
        self.num_frames = len(self.frames)
        self.height, self.width = self.frames.frame_shape
        shape = (self.num_frames, self.height, self.width)
        self.labels = np.zeros(shape, dtype=np.int32) if labels is None else check_labels_array(labels, shape)
        self._features = FeatureCache(options.feature_cache)
        self._encoder = FrameEncoder(model, self.frames, self._features, device=self.device,
                                     autocast=options.autocast, compile_encoder=options.compile_image_encoder)
        self._bank = MemoryBank(model.config.tracking, history_bytes=int(options.history_mb * MiB),
                                separate_directions=options.direction_memory == "separate")
        # decodes prompts; keeps SAM's candidates and how each frame was decoded
        self._decoder = PromptDecoder(model, self._bank, self._encoder, num_frames=self.num_frames,
                                      device=self.device, autocast=options.autocast)
        self._objects: dict[int, ObjectState] = {}
        self._scaler = PromptScaler((self.height, self.width), model.image_size)
        self._lock = threading.RLock()
        self._control = RunControl()  # whether a propagation runs; stop() calls
        # per object id, what a session file kept with it (name, colour)
        self.objects_meta: dict[int, dict] = {}
        # mothers of objects and the frame limits of their tracks (lineage.py)
        self.lineage = Lineage()

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
                        self._decoder.decode(self._objects[obj_id], obj_id, frame)  # as segment_frame would
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
        at_model_size = mask_prompt(m, self.model.image_size)
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
            self._decoder.forget(obj_id)
            if clear_labels:
                self.lineage.remove(obj_id)
                clear_pixels(self.labels, obj_id, range(self.num_frames))

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
            self._decoder.reset()

    # ================================================================ frames
    def prepare_frame(self, frame: int) -> None:
        """Compute ``frame``'s image features now (e.g. in a background thread
        when the viewer moves to it) so that prompts there decode instantly."""
        frame = check_frame(frame, self.num_frames)
        with self._lock:
            self._encoder.features(frame)

    def is_prepared(self, frame: int) -> bool:
        """Whether ``frame``'s image features under the current intensity range are cached."""
        return self._encoder.cached(frame)

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
                    self._decoder.decode(state, obj_id, frame)
            decoded = {obj_id: s.pending[frame].logits for obj_id, s in self._objects.items() if frame in s.pending}
            old = np.array(self.labels[frame], copy=True)
            ids, logits, kept = current_masks(self._bank, self.lineage, self._objects, frame, decoded,
                                              (self.height, self.width))
            if ids:
                new = compose_frame(old, ids, logits, kept=kept, claimants=list(decoded))
                write_labels(self.labels, frame, new)
                return np.array(new, copy=True)
            return old

    # ============================================================ propagation
    def propagate(self, direction: str = "forward", start: int | None = None, stop: int | None = None,
                  progress: Callable[[int, int], None] | None = None) -> Iterator[tuple[int, np.ndarray]]:
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
        return frames_and_labels(self.propagate_results(direction, start, stop, progress))

    def propagate_results(self, direction: str = "forward", start: int | None = None, stop: int | None = None,
                          progress: Callable[[int, int], None] | None = None) -> Iterator[FrameResult]:
        """Like :meth:`propagate`, yielding :class:`FrameResult` (per-object logits too)."""
        lo, hi = check_span(direction, start, stop, self.num_frames)
        with self._lock:
            self._not_running()
            check_trackable(self._objects)
        return self._run(direction, lo, hi, progress, self._control.stops)

    def stop(self) -> None:
        """End the propagations running or created before this call, after
        the frame each is computing; callable from any thread (e.g. a GUI's
        while a worker thread iterates). Frames not reached stay out of date,
        so the next propagation finishes them."""
        self._control.stop()

    def stop_token(self) -> int:
        """A mark of now for :meth:`stopped_since`: runs built on the
        session (track everything) take one when they are created."""
        return self._control.stops

    def stopped_since(self, token: int) -> bool:
        """Whether :meth:`stop` was called after ``token`` was taken."""
        return self._control.stops != token

    def _run(self, direction, lo, hi, progress, stops) -> Iterator[FrameResult]:
        # the work starts at the first next(): check the session as it is now
        with self._lock:
            self._not_running()
            check_trackable(self._objects, since_call=True)
            self._control.running = True
        try:
            with self._lock, torch.inference_mode():
                self._decoder.prepare(self._objects)  # decodes changed prompts, makes conditioning memories
                passes = plan_run(direction, lo, hi, objects=self._objects, bank=self._bank,
                                  lineage=self.lineage, num_frames=self.num_frames)
                mark_planned(passes, self._objects)
            yield from run_passes(passes, objects=self._objects, lineage=self.lineage, step=self._locked_step,
                                  stopped=lambda: self._control.stops != stops, progress=progress)
        finally:
            self._control.running = False

    def _locked_step(self, frame: int, objs: list[int], reverse: bool) -> FrameResult:
        with self._lock, torch.inference_mode():
            return self._track_frame(frame, objs, reverse)

    # ================================================================ internals
    def _check_target(self, obj_id, frame) -> tuple[int, int]:
        return check_target(obj_id, frame, num_frames=self.num_frames, dtype=self.labels.dtype, lineage=self.lineage)

    def _not_running(self) -> None:
        self._control.check_idle()

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

    def _track_frame(self, frame: int, objs: list[int], reverse: bool) -> FrameResult:
        feats = self._encoder.features(frame)
        exclusive = self.model.config.tracking.non_overlap_masks_for_mem_enc
        others = other_logits(self._bank, self.lineage, self._objects, frame, objs) if exclusive else []
        run = track_objects(self.model, self._bank, feats, frame, objs, reverse=reverse, num_frames=self.num_frames,
                            others=others, device=self.device, autocast=self.options.autocast)
        previous = np.array(self.labels[frame], copy=True)
        ids, logits, kept = current_masks(self._bank, self.lineage, self._objects, frame, run,
                                          (self.height, self.width))
        new = compose_frame(previous, ids, logits, kept=kept, claimants=list(run))
        write_labels(self.labels, frame, new)  # raises on failure: the frame stays out of date
        mark_written(self._objects, objs, frame, reverse=reverse, bank=self._bank)
        order = [ids.index(o) for o in run]
        return FrameResult(frame, tuple(run), logits[order], new, previous)

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
        mask given with :meth:`add_mask` refine the frame's last output. The
        labels are not rewritten here: :meth:`segment_frame` and
        :meth:`propagate` do that. Setting the range in use changes nothing.
        """
        with self._lock:
            self._not_running()
            if not self.frames.set_intensity_range(intensity_range):  # validates first
                return
            self._decoder.range_changed(self._objects)
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
            return self._decoder.candidates.candidates(obj_id, frame, prompts, (self.height, self.width))

    def chosen_candidate(self, obj_id: int, frame: int) -> int | None:
        """The candidate chosen for ``obj_id`` on ``frame`` (an index into
        :meth:`mask_candidates`), or None for the model's own pick."""
        obj_id, frame = check_object_id(obj_id), check_frame(frame, self.num_frames)
        with self._lock:
            prompts = self._state(obj_id).prompts.get(frame)
            return self._decoder.candidates.chosen(obj_id, frame, prompts)

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
            self._decoder.choose(self._objects[obj_id], obj_id, frame, prompts, k)
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

    # ==================================================== automatic (automatic.py)
    def segment_everything(self, frame: int, options=None, *, where=None):
        """Every object on ``frame`` (:func:`napari_sam2.segment_everything`),
        decoded from the frame's cached image features (crops, if any, are
        encoded on their own). ``where``: a ``Y x X`` bool image; only the
        grid's points on it are prompted (e.g. a region, or the frame's
        border). Returns an ``AutomaticResult``; the session's
        objects and labels are not changed, so it may be called between
        the frames of a running propagation. The cached features come from
        the session's own model input (``FrameSource.model_input``, Meta's
        video loader), the stand-alone call resizes as Meta's image
        predictor does: on images not at the model's size the two can
        differ slightly."""
        from .automatic import compose_candidates, generate_masks

        frame = check_frame(frame, self.num_frames)
        options = checked_options(options)
        with self._lock:
            feats = self._encoder.features(frame)
            unit = self.frames.normalized(frame)
            candidates = generate_masks(self.model, unit, options=options, full_features=feats, where=where)
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
            clear_pixels(self.labels, obj_id, np.flatnonzero(~after))

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
        from .division_edits import restore_lineage

        with self._lock:
            self._not_running()
            restore_lineage(self, LineageState(*state))

    def mark_division(self, obj_id: int, frame: int, daughters, *, ids=None):
        """``obj_id`` divides on ``frame`` into ``daughters`` (masks or clicks):
        see :func:`napari_sam2.engine.division_edits.mark_division`. Returns a
        ``DivisionEdit`` (``undo_division`` takes it back)."""
        from .division_edits import mark_division

        return mark_division(self, obj_id, frame, daughters, ids=ids)

    def link(self, daughter: int, mother: int) -> LineageState:
        """Make ``mother`` the mother of ``daughter`` (she must end before it
        begins; their tracks are limited so); returns the lineage before."""
        from .division_edits import link_objects

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
        frame = check_frame(frame, self.num_frames)
        checked = check_click_sets(clicks, (self.height, self.width))
        coords = np.array([self._scaler.points(p) for p, _ in checked], dtype=np.float32)  # (B, N, 2) as (x, y)
        labels = np.stack([lab for _, lab in checked])
        with self._lock, torch.inference_mode():
            return self._decoder.click_masks(frame, coords, labels, (self.height, self.width))

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
            return session_states.prompt_records(self._objects)

    def tracking_state(self) -> dict[int, dict[str, np.ndarray]]:
        """Per object, per frame: the direction of the pass that wrote it
        (-1 untracked, 0 forward, 1 backward), whether its result is
        current, and whether it has a result there at all ("reached")
        (copies)."""
        with self._lock:
            return session_states.tracking_state(self._objects, self._bank)

    def restore_tracking_state(self, state: dict[int, dict[str, np.ndarray]]) -> None:
        """Take back what :meth:`tracking_state` gave (e.g. from a session file)."""
        with self._lock:
            self._not_running()
            session_states.restore_tracking_state(self._objects, state, self.num_frames)

    def prompted_states(self) -> dict[int, dict[int, PromptedState]]:
        """Per object, per prompted frame, what was decoded there and is not
        in the prompts themselves (:class:`PromptedState`; tensors are the
        session's own, not copies)."""
        with self._lock:
            return session_states.prompted_states(self._objects, self._decoder)

    def restore_prompted_states(self, states: dict[int, dict[int, PromptedState]]) -> None:
        """Take back what :meth:`prompted_states` gave, after the same prompts
        were given again (e.g. from a session file): the frames show, report
        and propagate what they did, without being decoded again."""
        with self._lock:
            self._not_running()
            session_states.restore_prompted_states(self._objects, states, self._decoder)

    def save(self, path, *, objects_meta: dict[int, dict] | None = None, model_source: str | None = None):
        """Write the session to ``path`` (a folder, or a ``.zip``), atomically;
        see :mod:`napari_sam2.engine.persist`."""
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
        session, meta = load_session(cls, path, model, data, **kwargs)
        session.objects_meta = meta
        return session
