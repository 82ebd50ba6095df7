"""What a prompted frame decoded, beyond its prompts, as session files keep it.

A session decodes each object's prompts on a frame once (with the memory of
the propagations before, for a correction) and keeps that output until the
next propagation turns it into a conditioning memory. A session file stores
both, with SAM's candidates and the one chosen, so that a loaded session
shows, reports and propagates what the saved one did without decoding the
prompts again (decoding them again after loading would miss the memories
a correction was decoded with).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .candidates import CandidateSnapshot, Output
from .memory import FrameMemory

__all__ = ["PromptedState", "checked_state"]


class PromptedState(NamedTuple):
    """One object's state on one prompted frame (see
    :meth:`~napari_sam2.engine.StackSession.prompted_states`).

    ``decoded``: the frame's output comes from its current prompts;
    ``output``: its latest decode not yet turned into memory, ``(logits
    1 x 1 x 4S x 4S, obj_ptr 1 x C, object_score 1 x 1)``; ``memory``: its
    conditioning memory from the last propagation; ``initial``: last
    decoded without memory; ``redecode``: None, or how an intensity-range
    change asks for it to be decoded again (True: without memory);
    ``candidates``: SAM's candidates of that decode and the choice among them.
    """

    decoded: bool
    output: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None
    memory: FrameMemory | None
    initial: bool
    redecode: bool | None
    candidates: CandidateSnapshot | None


def checked_state(saved: PromptedState, model, device: torch.device, *, where: str) -> PromptedState:
    """``saved`` moved to ``device``, its shapes checked against ``model``
    (a ``ValueError`` starting with ``where`` says which part does not fit)."""
    if saved.decoded and saved.output is None and saved.memory is None:
        raise ValueError(f"{where}: decoded, but neither its output nor its memory is given")
    low = model.image_size // 4
    logits, ptr, score = (1, 1, low, low), (1, model.hidden_dim), (1, 1)

    def fit(t: torch.Tensor, shape: tuple, what: str) -> torch.Tensor:
        if tuple(t.shape) != shape:
            raise ValueError(f"{where}: {what} has shape {tuple(t.shape)}, the model gives {shape}")
        return t.to(device)

    output = memory = candidates = None
    if saved.output is not None:
        out_logits, out_ptr, out_score = saved.output
        output = (fit(out_logits, logits, "output logits"), fit(out_ptr, ptr, "object pointer"),
                  fit(out_score, score, "object score"))
    if saved.memory is not None:
        m = saved.memory
        if m.features.ndim != 4 or m.features.shape[0] != 1:
            raise ValueError(f"{where}: memory features have shape {tuple(m.features.shape)}, expected 1 x C x h x w")
        memory = FrameMemory(m.features.to(device), fit(m.obj_ptr, ptr, "memory object pointer"),
                             fit(m.object_score, score, "memory object score"), fit(m.logits, logits, "memory logits"))
    if saved.candidates is not None:
        c = saved.candidates
        k = len(c.ious)
        if c.chosen is not None and not 0 <= c.chosen < k:
            raise ValueError(f"{where}: chosen candidate {c.chosen} is not one of the {k} candidates")
        candidates = CandidateSnapshot(
            fit(c.logits, (k, 1, low, low), "candidate logits"),
            c.ious.to(device),
            fit(c.ptrs, (k, model.hidden_dim), "candidate pointers"),
            Output(fit(c.own.logits, logits, "own logits"), fit(c.own.obj_ptr, ptr, "own pointer")),
            c.chosen,
        )
    return saved._replace(output=output, memory=memory, candidates=candidates)
