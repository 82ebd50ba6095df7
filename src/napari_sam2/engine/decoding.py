"""Decoding objects' prompts frame by frame, and turning the outputs into
conditioning memories.

A frame's prompts are decoded with the heads only (no memory encoding):
from the memories of earlier propagations when the frame was tracked (a
correction), or as first clicks. :class:`PromptDecoder` does it and keeps
what the decodes leave besides the output: SAM's candidates
(:class:`CandidateStore`) and how each frame was last decoded
(:class:`DecodeMarks`), so that after an intensity-range change a frame
first decoded without memory (a first click) is decoded so again, giving
what the same clicks give under the new range, while a correction on a
tracked frame reads the memories the last propagation left, its clicks
together without the previous mask (which came from the other range), and
clicks refining a mask given as a prompt refine the frame's last output.
"""

from __future__ import annotations

import numpy as np
import torch

from ..model import FrameFeatures, SAM2Model
from ..model.device import autocast_for
from .candidates import CandidateStore, Output
from .divisions import ClickMasks, decode_click_sets
from .frame_encoder import FrameEncoder
from .holes import fill_small_holes
from .memory import FrameMemory, MemoryBank
from .object_state import Decoded, ObjectState
from .passes import BACKWARD, UNTRACKED
from .prompts import FramePrompts

__all__ = ["PREV_LOGIT_LIMIT", "DecodeMarks", "PromptDecoder", "mask_prompt"]

# prev-logit clamp when correction clicks are decoded with an earlier mask
PREV_LOGIT_LIMIT = 32.0


class DecodeMarks:
    """Per ``(object, frame)``: whether its last decode was an initial one
    (no memory), and what an intensity-range change asks of its next decode
    (True: without memory; False: from memory, without the previous mask)."""

    def __init__(self) -> None:
        self.initial: set[tuple[int, int]] = set()
        self.redecode: dict[tuple[int, int], bool] = {}

    def forget(self, obj_id: int) -> None:
        self.initial = {key for key in self.initial if key[0] != obj_id}
        self.redecode = {key: v for key, v in self.redecode.items() if key[0] != obj_id}

    def range_changed(self, obj_id: int, frame: int) -> None:
        """The intensity range changed: decode the frame again as it was last."""
        self.redecode[obj_id, frame] = (obj_id, frame) in self.initial

    def take_redo(self, obj_id: int, frame: int) -> bool | None:
        return self.redecode.pop((obj_id, frame), None)

    def decoded(self, obj_id: int, frame: int, *, initial: bool) -> None:
        if initial:
            self.initial.add((obj_id, frame))
        else:
            self.initial.discard((obj_id, frame))

    def restore(self, obj_id: int, frame: int, *, initial: bool, redecode: bool | None) -> None:
        self.decoded(obj_id, frame, initial=initial)
        if redecode is None:
            self.redecode.pop((obj_id, frame), None)
        else:
            self.redecode[obj_id, frame] = bool(redecode)


def mask_prompt(mask: np.ndarray, image_size: int) -> np.ndarray:
    """A checked ``Y x X`` mask at the model's ``S x S`` input size (bool)."""
    t = torch.from_numpy(mask).float()[None, None]
    if mask.shape != (image_size, image_size):
        t = torch.nn.functional.interpolate(
            t, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True
        )
        t = t >= 0.5
    return t.bool().numpy()[0, 0]


class PromptDecoder:
    """Decodes prompts with ``model`` on the features ``encoder`` gives,
    reading memories from ``bank`` (and putting conditioning memories
    there); ``autocast``: bfloat16 on CUDA."""

    def __init__(self, model: SAM2Model, bank: MemoryBank, encoder: FrameEncoder, *, num_frames: int,
                 device: torch.device, autocast: bool) -> None:
        self.model = model
        self.bank = bank
        self.encoder = encoder
        self.num_frames = num_frames
        self.device = device
        self.autocast = autocast
        self.marks = DecodeMarks()
        self.candidates = CandidateStore()

    def reset(self) -> None:
        """Forget every decode's candidates and marks."""
        self.candidates = CandidateStore()
        self.marks = DecodeMarks()

    def forget(self, obj_id: int) -> None:
        self.candidates.forget(obj_id)
        self.marks.forget(obj_id)

    def prepare(self, objects: dict[int, ObjectState]) -> None:
        """Decode changed prompts and turn prompted frames into conditioning
        memories (before a propagation)."""
        for obj_id, state in objects.items():
            for frame, prompts in state.prompts.items():
                if prompts.dirty:
                    self.decode(state, obj_id, frame)
        for obj_id, state in objects.items():
            self.condition(state, obj_id)

    def range_changed(self, objects: dict[int, ObjectState]) -> None:
        """The intensity range changed: every prompted frame is decoded again on next use."""
        for obj_id, state in objects.items():
            for frame, prompts in state.prompts.items():
                prompts.dirty = True  # its pending output stays only as a previous mask
                self.marks.range_changed(obj_id, frame)

    def decode(self, state: ObjectState, obj_id: int, frame: int) -> None:
        """Run the heads on ``obj_id``'s prompts on ``frame`` (no memory
        encoding yet): the output goes to ``state.pending[frame]``."""
        prompts = state.prompts[frame]
        feats = self.encoder.features(frame)
        tracked = state.direction[frame] != UNTRACKED
        reverse = bool(state.direction[frame] == BACKWARD)
        readout = (
            self.bank.readout(obj_id, frame, num_frames=self.num_frames, reverse=reverse)
            if tracked and self.bank.cond_frames(obj_id)
            else None
        )
        redo = self.marks.take_redo(obj_id, frame)
        if redo:  # not from the memory the other range left
            readout = None
        with autocast_for(self.device, self.autocast):
            if prompts.mask is not None:
                mask = torch.from_numpy(prompts.mask).to(self.device)[None, None]
                step = self.model.track_step(feats, readout=readout, mask=mask, encode_memory=False)
            else:
                prev = state.pending[frame].logits if frame in state.pending else self.bank.logits(obj_id, frame)
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
        state.pending[frame] = self._output(obj_id, frame, prompts, step.head)
        prompts.dirty = False
        self.marks.decoded(obj_id, frame, initial=readout is None)

    def _output(self, obj_id: int, frame: int, prompts: FramePrompts, head) -> Decoded:
        """The frame's output from ``head`` (small holes filled): its own, or
        the candidate chosen before for the same prompts; the decode's
        candidates are kept."""
        area = self.model.config.tracking.fill_hole_area
        low = fill_small_holes(head.low_res.float(), area)
        low, ptr = self.candidates.record(obj_id, frame, prompts, head, Output(low, head.obj_ptr),
                                          fill_hole_area=area)
        return Decoded(low, ptr, head.object_score_logits)

    def choose(self, state: ObjectState, obj_id: int, frame: int, prompts: FramePrompts | None, k: int | None) -> None:
        """Make candidate ``k`` (None: the model's own pick) of the decode
        of ``prompts`` the frame's output, with the output's object score."""
        low, ptr = self.candidates.choose(obj_id, frame, prompts, k)
        pending = state.pending.get(frame)
        score = pending.object_score if pending is not None else self.bank.cond_entry(obj_id, frame).object_score
        state.pending[frame] = Decoded(low, ptr, score)

    def click_masks(self, frame: int, coords: np.ndarray, labels: np.ndarray, size: tuple[int, int]) -> ClickMasks:
        """SAM's mask for each click set (``coords`` ``B x N x 2`` model
        ``(x, y)``, ``labels`` ``B x N``) on ``frame``, as first clicks
        (:func:`~napari_sam2.engine.divisions.decode_click_sets`)."""
        feats = self.encoder.features(frame)
        with autocast_for(self.device, self.autocast):
            return decode_click_sets(self.model, feats, coords, labels, size)

    def condition(self, state: ObjectState, obj_id: int) -> None:
        """Turn ``obj_id``'s decoded outputs (``state.pending``) into conditioning memories in the bank."""
        for frame, out in sorted(state.pending.items()):
            entry = conditioning_memory(self.model, self.encoder.features(frame), out, device=self.device,
                                        autocast=self.autocast)
            self.bank.set_cond(obj_id, frame, entry)
        state.pending.clear()


def conditioning_memory(model: SAM2Model, feats: FrameFeatures, out: Decoded, *, device: torch.device,
                        autocast: bool) -> FrameMemory:
    """A prompted frame's decoded output encoded as its conditioning memory."""
    s = model.image_size
    high = torch.nn.functional.interpolate(out.logits, size=(s, s), mode="bilinear", align_corners=False)
    with autocast_for(device, autocast):
        memory = model.encode_memory(feats.embedding, high, out.object_score, from_points=True)
    return FrameMemory(memory.to(torch.bfloat16), out.obj_ptr, out.object_score, out.logits)
