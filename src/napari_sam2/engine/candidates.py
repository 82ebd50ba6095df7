"""SAM's candidate masks for a frame's clicks, and the user's pick among them.

Every decode of points or a box runs all of the mask decoder's tokens; the
three multimask tokens are SAM's candidates for an ambiguous prompt (whole
cell, nucleus, cluster), ranked by the predicted IoU. :class:`CandidateStore`
keeps, per object and frame, the candidates of the latest decode together
with the prompts they came from, and the candidate the user chose.

A chosen candidate becomes the frame's output as SAM 2 would have produced
it had its IoU head ranked that candidate first: its mask logits and its
own object pointer (the pointer SAM 2 takes from the chosen multimask token)
replace the decoded ones, the clicks stay the frame's prompts, and the
memory is encoded from the chosen mask when the frame is next propagated.
So the next click on the frame refines the chosen mask (it is fed back as
the previous mask, as in SAM's interactive loop) and the user's clicks stay
visible and editable. Turning the choice into a mask prompt instead would
replace the clicks with a mask resampled from the low-resolution logits and
lose the clicks the user sees. The choice holds while the frame's prompts
stay the same (a decode of the same prompts, e.g. after an intensity-range
change, picks the same rank again); any other prompt there drops it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from ..model import HeadOutput
from .holes import fill_small_holes
from .labels import upsample_logits
from .prompts import FramePrompts

__all__ = ["MaskCandidate", "CandidateSnapshot", "CandidateStore", "prompt_key"]


class MaskCandidate(NamedTuple):
    """One of SAM's candidates: ``mask`` ``Y x X`` bool at the frame's size;
    ``predicted_iou`` the model's own estimate of its quality."""

    mask: np.ndarray
    predicted_iou: float


class Output(NamedTuple):
    """A frame's output for one object: ``logits`` ``1 x 1 x 4S x 4S``, ``obj_ptr`` ``1 x C``."""

    logits: torch.Tensor
    obj_ptr: torch.Tensor


class CandidateSnapshot(NamedTuple):
    """What the store holds for one object on one frame, to keep in a
    session file: ``logits`` ``K x 1 x 4S x 4S`` (best predicted IoU first),
    ``ious`` ``K``, ``ptrs`` ``K x C``, ``own`` the model's own pick and
    ``chosen`` the user's (an index, or None)."""

    logits: torch.Tensor
    ious: torch.Tensor
    ptrs: torch.Tensor
    own: Output
    chosen: int | None


def prompt_key(prompts: FramePrompts) -> tuple:
    """What identifies a frame's point and box prompts (model pixels)."""
    box = None if prompts.box is None else tuple(float(v) for v in prompts.box)
    return (box, tuple(prompts.points), tuple(prompts.labels))


@dataclass
class _Entry:
    key: tuple
    logits: torch.Tensor  # K x 1 x 4S x 4S, best predicted IoU first
    ious: torch.Tensor  # K
    ptrs: torch.Tensor  # K x C
    own: Output  # what the model picked by itself
    chosen: int | None = None


class CandidateStore:
    """(object, frame) -> the latest decode's candidates and the user's choice."""

    def __init__(self) -> None:
        self._entries: dict[tuple[int, int], _Entry] = {}

    def record(
        self, obj_id: int, frame: int, prompts: FramePrompts, head: HeadOutput, own: Output, *, fill_hole_area: int
    ) -> Output:
        """Keep the candidates of a batch-1 decode of ``prompts`` (small holes
        filled as in the decoded output); return the frame's output: ``own``
        (the decode's), or the candidate of the same rank the user chose for
        these same prompts before."""
        if head.candidates is None or prompts.mask is not None:
            self._entries.pop((obj_id, frame), None)
            return own
        key = prompt_key(prompts)
        order = torch.argsort(head.candidate_ious[0].float(), descending=True, stable=True)
        before = self._entries.get((obj_id, frame))
        entry = _Entry(
            key=key,
            logits=fill_small_holes(head.candidates[0, order][:, None].float(), fill_hole_area),  # (K, 1, 4S, 4S)
            ious=head.candidate_ious[0, order].float(),
            ptrs=head.candidate_ptrs[0, order],
            own=own,
            chosen=before.chosen if before is not None and before.key == key else None,
        )
        self._entries[obj_id, frame] = entry
        return own if entry.chosen is None else self._output(entry, entry.chosen)

    def candidates(self, obj_id: int, frame: int, prompts: FramePrompts | None, size: tuple[int, int]) -> list[MaskCandidate]:
        entry = self._current(obj_id, frame, prompts)
        if entry is None:
            return []
        masks = (upsample_logits(entry.logits, size) > 0).cpu().numpy()  # (K, H, W)
        return [MaskCandidate(m, float(iou)) for m, iou in zip(masks, entry.ious.tolist())]

    def chosen(self, obj_id: int, frame: int, prompts: FramePrompts | None) -> int | None:
        entry = self._current(obj_id, frame, prompts)
        return None if entry is None else entry.chosen

    def choose(self, obj_id: int, frame: int, prompts: FramePrompts | None, k: int | None) -> Output:
        """Make candidate ``k`` (None: the model's own pick) the frame's output."""
        entry = self._current(obj_id, frame, prompts)
        if entry is None:
            raise ValueError(
                f"object {obj_id} has no candidates on frame {frame}: candidates come from "
                "point or box prompts there"
            )
        if k is not None:
            if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
                raise TypeError(f"candidate index must be an integer or None, got {k!r}")
            if not 0 <= k < len(entry.ious):
                raise IndexError(f"candidate {k} is out of range: there are {len(entry.ious)} (0 to {len(entry.ious) - 1})")
            k = int(k)
        entry.chosen = k
        return entry.own if k is None else self._output(entry, k)

    def snapshot(self, obj_id: int, frame: int, prompts: FramePrompts | None) -> CandidateSnapshot | None:
        """The candidates of ``prompts``' latest decode and the choice among them (None if none)."""
        entry = self._current(obj_id, frame, prompts)
        if entry is None:
            return None
        return CandidateSnapshot(entry.logits, entry.ious, entry.ptrs, entry.own, entry.chosen)

    def restore(self, obj_id: int, frame: int, prompts: FramePrompts, snap: CandidateSnapshot) -> None:
        """Take back a :meth:`snapshot` for the same ``prompts`` (e.g. from a
        session file), as if they had just been decoded."""
        k = len(snap.ious)
        if snap.logits.shape[0] != k or snap.ptrs.shape[0] != k or snap.logits.ndim != 4:
            raise ValueError(
                f"object {obj_id}, frame {frame}: candidates of shapes {tuple(snap.logits.shape)}, "
                f"{tuple(snap.ious.shape)}, {tuple(snap.ptrs.shape)} do not go together"
            )
        if snap.chosen is not None and not 0 <= snap.chosen < k:
            raise ValueError(f"object {obj_id}, frame {frame}: chosen candidate {snap.chosen} of {k}")
        self._entries[obj_id, frame] = _Entry(
            prompt_key(prompts), snap.logits, snap.ious, snap.ptrs, snap.own, snap.chosen
        )

    def forget(self, obj_id: int) -> None:
        for key in [key for key in self._entries if key[0] == obj_id]:
            del self._entries[key]

    def _current(self, obj_id: int, frame: int, prompts: FramePrompts | None) -> _Entry | None:
        entry = self._entries.get((obj_id, frame))
        if entry is None or prompts is None or prompts.mask is not None or entry.key != prompt_key(prompts):
            return None
        return entry

    @staticmethod
    def _output(entry: _Entry, k: int) -> Output:
        return Output(entry.logits[k : k + 1], entry.ptrs[k : k + 1])
