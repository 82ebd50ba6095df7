"""One frame of a propagation through the model: the objects taking part
go through one batched tracking step, whatever memories each reads, and
their memories go into the bank (encoded exclusive of the other objects'
masks when the model's config asks for it).
"""

from __future__ import annotations

import torch

from ..model import FrameFeatures, SAM2Model
from ..model.device import autocast_for
from .holes import fill_small_holes
from .labels import exclusive_logits, upsample_logits
from .lineage import Lineage
from .memory import FrameMemory, MemoryBank

__all__ = ["exclusive_memories", "other_logits", "track_objects"]


def track_objects(model: SAM2Model, bank: MemoryBank, feats: FrameFeatures, frame: int, objs: list[int], *,
                  reverse: bool, num_frames: int, others: list[torch.Tensor], device: torch.device,
                  autocast: bool) -> dict[int, torch.Tensor]:
    """Track ``objs`` on ``frame`` and put their memories in ``bank``; an
    object conditioned there keeps its conditioning output. ``others``: the
    kept outputs there of the objects not taking part (for exclusive
    memories). Returns id -> ``1 x 1 x h x w`` logits, in ``objs`` order."""
    lows: dict[int, torch.Tensor] = {}
    ids, readouts = [], []
    for obj_id in objs:
        entry = bank.cond_entry(obj_id, frame)
        if entry is not None:
            lows[obj_id] = entry.logits
            continue
        ids.append(obj_id)
        readouts.append(bank.readout(obj_id, frame, num_frames=num_frames, reverse=reverse))
    tracking = model.config.tracking
    exclusive = tracking.non_overlap_masks_for_mem_enc and bool(ids) and (len(objs) > 1 or bool(others))
    tracked: list[tuple[list[int], object, torch.Tensor | None]] = []
    if ids:
        # one step for every tracked object, whatever memories each reads
        # (padded to a common length and masked in memory attention)
        with autocast_for(device, autocast):
            step = model.track_step(feats.expand(len(ids)), readout=readouts, encode_memory=not exclusive)
        tracked.append((ids, step.head, step.memory))
    if exclusive:
        tracked = exclusive_memories(model, feats, tracked, list(lows.values()) + others,
                                     device=device, autocast=autocast)
    for ids, head, memory in tracked:
        low_all = fill_small_holes(head.low_res.float(), tracking.fill_hole_area)
        for i, obj_id in enumerate(ids):
            entry = FrameMemory(
                memory[i : i + 1].to(torch.bfloat16),
                head.obj_ptr[i : i + 1],
                head.object_score_logits[i : i + 1],
                low_all[i : i + 1],
            )
            bank.put(obj_id, frame, entry)
            lows[obj_id] = entry.logits
    return {o: lows[o] for o in objs if o in lows}


def other_logits(bank: MemoryBank, lineage: Lineage, object_ids, frame: int, objs: list[int]) -> list[torch.Tensor]:
    """The kept outputs on ``frame`` of the objects of ``object_ids`` not in ``objs``."""
    out = []
    for obj_id in object_ids:
        if obj_id not in objs and lineage.tracks(obj_id, frame):
            low = bank.logits(obj_id, frame)
            if low is not None:
                out.append(low)
    return out


def exclusive_memories(model: SAM2Model, feats: FrameFeatures, tracked, prompted_lows, *, device: torch.device,
                       autocast: bool):
    """Memories of one frame for all tracked objects at once, each from
    its mask with the pixels where another object of the frame (tracked
    or prompted) has a higher logit pushed to -10 or below."""
    size = (model.image_size, model.image_size)
    highs = torch.cat([head.high_res.float() for _, head, _ in tracked])
    others = [upsample_logits(low, size)[:, None] for low in prompted_lows]
    exclusive = exclusive_logits(highs, torch.cat(others) if others else None)
    scores = torch.cat([head.object_score_logits for _, head, _ in tracked])
    with autocast_for(device, autocast):
        memory = model.encode_memory(
            feats.embedding.expand(len(highs), -1, -1, -1), exclusive, scores, from_points=False
        )
    out, start = [], 0
    for ids, head, _ in tracked:
        out.append((ids, head, memory[start : start + len(ids)]))
        start += len(ids)
    return out
