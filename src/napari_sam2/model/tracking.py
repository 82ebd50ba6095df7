"""Which memories SAM 2 reads when it segments a frame.

A pure function over two mappings, frame index -> stored entry: the
conditioning frames (frames the user prompted) and the other tracked frames.
The engine's bounded memory bank supplies them; the model consumes the
resulting :class:`MemoryReadout`.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple, Protocol

import torch

from ..config import TrackingConfig


class MemoryEntry(Protocol):
    features: torch.Tensor  # B x Cm x S x S spatial memory
    obj_ptr: torch.Tensor  # B x C object pointer


class MemoryReadout(NamedTuple):
    """``spatial``: ``(t_pos, B x Cm x S x S)`` pairs, ``t_pos`` 0 for conditioning
    frames and 1..num_maskmem-1 for recent frames (the most recent is highest);
    ``pointers``: ``(temporal offset, B x C)`` pairs; ``max_pointers`` scales the
    offsets; ``frames`` names every frame read, in order (equal readouts of
    different objects can be batched)."""

    spatial: list[tuple[int, torch.Tensor]]
    pointers: list[tuple[int, torch.Tensor]]
    max_pointers: int
    frames: tuple[tuple[str, int, int], ...]


def closest_conditioning(frame: int, cond_frames, limit: int) -> tuple[list[int], list[int]]:
    """Split conditioning frame indices into (selected, unselected): with a
    ``limit`` (-1 = none) keep the nearest one before, the nearest one at or
    after, then the temporally closest others."""
    frames = sorted(cond_frames)
    if limit == -1 or len(frames) <= limit:
        return frames, []
    if limit < 2:
        raise ValueError("max_cond_frames_in_attn must be -1 or at least 2")
    chosen: list[int] = []
    before = [t for t in frames if t < frame]
    after = [t for t in frames if t >= frame]
    if before:
        chosen.append(before[-1])
    if after:
        chosen.append(after[0])
    rest = sorted((t for t in frames if t not in chosen), key=lambda t: abs(t - frame))
    chosen += rest[: limit - len(chosen)]
    return sorted(chosen), [t for t in frames if t not in chosen]


def read_memory(
    frame: int,
    cond: Mapping[int, MemoryEntry],
    recent: Mapping[int, MemoryEntry],
    *,
    config: TrackingConfig,
    num_frames: int,
    reverse: bool,
) -> MemoryReadout:
    """The memory SAM 2 attends to when tracking ``frame`` (forward, or
    backward with ``reverse``): the selected conditioning frames, the
    ``num_maskmem - 1`` frames just before it in tracking order, and object
    pointers from past conditioning frames and up to ``max_obj_ptrs - 1``
    frames before it."""
    if not cond:
        raise ValueError("tracking needs at least one conditioning frame")
    selected, unselected = closest_conditioning(frame, cond, config.max_cond_frames_in_attn)
    unselected_map = {t: cond[t] for t in unselected}
    step = 1 if reverse else -1  # towards already-tracked frames
    spatial: list[tuple[int, torch.Tensor]] = []
    names: list[tuple[str, int, int]] = []
    for t in selected:
        spatial.append((0, cond[t].features))
        names.append(("mem", 0, t))
    for t_pos in range(1, config.num_maskmem):
        t = frame + step * (config.num_maskmem - t_pos)
        entry = recent.get(t, unselected_map.get(t))
        if entry is not None:
            spatial.append((t_pos, entry.features))
            names.append(("mem", t_pos, t))

    max_ptrs = min(num_frames, config.max_obj_ptrs_in_encoder)
    pointers: list[tuple[int, torch.Tensor]] = []
    past = [t for t in selected if (t >= frame if reverse else t <= frame)]
    for t in selected if not config.only_obj_ptrs_in_the_past_for_eval else past:
        if config.use_signed_tpos_enc_to_obj_ptrs:
            offset = (frame - t) * (-1 if reverse else 1)
        else:
            offset = abs(frame - t)
        pointers.append((offset, cond[t].obj_ptr))
        names.append(("ptr", offset, t))
    for dt in range(1, max_ptrs):
        t = frame + step * dt
        if t < 0 or t >= num_frames:
            break
        entry = recent.get(t, unselected_map.get(t))
        if entry is not None:
            pointers.append((dt, entry.obj_ptr))
            names.append(("ptr", dt, t))
    return MemoryReadout(spatial, pointers, max_ptrs, tuple(names))
