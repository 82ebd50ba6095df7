"""Memory tokens of several objects in one batch, padded to a common length.

Objects tracked together on a frame may read different memories (other
conditioning frames, a shorter history, fewer object pointers). Each
object's tokens are laid out as memory attention expects them, spatial
memories first (one ``S x S`` grid per memory frame, rotated by RoPE like the
query grid) and object-pointer tokens last (not rotated):

    [ frame 0 grid | ... | frame M-1 grid | pad grids ][ pointers | pad ]

Every object gets ``M_max`` grid slots and ``P_max`` pointer slots; the
slots an object does not fill are zeros and masked out of attention, so
each object attends to exactly its own memories, as it would alone.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import torch

from .tracking import MemoryReadout


class MemoryTokens(NamedTuple):
    """``tokens``, ``pos``: ``B x (M_max * HW + P_max * split) x Cm``;
    ``num_ptr_tokens``: the trailing ``P_max * split`` pointer tokens;
    ``mask``: ``B x N`` bool (True = attend), ``None`` when nothing is padded."""

    tokens: torch.Tensor
    pos: torch.Tensor
    num_ptr_tokens: int
    mask: torch.Tensor | None


def assemble_memory(
    readouts: Sequence[MemoryReadout],
    *,
    grid_pos: torch.Tensor,
    slot_pos: torch.Tensor,
    pointer_pos: Callable[[MemoryReadout], torch.Tensor],
    dtype: torch.dtype,
) -> MemoryTokens:
    """Stack the readouts (each for ``b_i`` objects) into one padded batch.

    ``grid_pos``: ``HW x Cm`` sine encoding of the memory grid;
    ``slot_pos``: ``num_maskmem x Cm`` temporal encodings, indexed
    ``num_maskmem - t_pos - 1``; ``pointer_pos(readout)``: ``P x Cm``
    encodings of that readout's pointer offsets.
    """
    if not readouts:
        raise ValueError("assemble_memory needs at least one readout")
    hw, cm = grid_pos.shape
    num_slots = slot_pos.shape[0]
    batches = [readout_batch(r) for r in readouts]
    b = sum(batches)
    m_max = max(len(r.spatial) for r in readouts)
    ptr_dim = max((r.pointers[0][1].shape[-1] for r in readouts if r.pointers), default=cm)
    split = max(ptr_dim // cm, 1)
    p_max = max(len(r.pointers) for r in readouts) * split
    n_spatial = m_max * hw
    device = grid_pos.device
    tokens = torch.zeros(b, n_spatial + p_max, cm, dtype=dtype, device=device)
    pos = torch.zeros(b, n_spatial + p_max, cm, dtype=dtype, device=device)
    mask = torch.ones(b, n_spatial + p_max, dtype=torch.bool, device=device)
    grids = tokens[:, :n_spatial].view(b, m_max, hw, cm)  # (B, M_max, HW, Cm)
    grid_pos_slots = pos[:, :n_spatial].view(b, m_max, hw, cm)
    row = 0
    for r, n in zip(readouts, batches):
        rows = slice(row, row + n)
        for i, (t_pos, feats) in enumerate(r.spatial):
            grids[rows, i] = feats.flatten(2).transpose(1, 2)  # (n, HW, Cm)
            grid_pos_slots[rows, i] = grid_pos + slot_pos[num_slots - t_pos - 1]
        mask[rows, len(r.spatial) * hw : n_spatial] = False
        if r.pointers:
            ptrs = torch.stack([p for _, p in r.pointers], dim=1)  # (n, P, C)
            ptrs = ptrs.reshape(n, len(r.pointers) * split, cm)  # (n, P*split, Cm)
            k = ptrs.shape[1]
            tokens[rows, n_spatial : n_spatial + k] = ptrs
            pos[rows, n_spatial : n_spatial + k] = pointer_pos(r).repeat_interleave(split, dim=0)
        else:
            k = 0
        mask[rows, n_spatial + k :] = False
        row += n
    if bool(mask.all()):
        mask = None
    return MemoryTokens(tokens, pos, p_max, mask)


def memory_length(readout: MemoryReadout) -> tuple[int, int]:
    """(spatial memory frames, object pointers) a readout holds."""
    return len(readout.spatial), len(readout.pointers)


def readout_batch(readout: MemoryReadout) -> int:
    """How many objects a readout holds."""
    if readout.spatial:
        return readout.spatial[0][1].shape[0]
    raise ValueError("a memory readout must hold at least one spatial memory")


def one_frame(x: torch.Tensor) -> torch.Tensor | None:
    """``x[:1]`` when ``x`` (``B x ...``) is one frame expanded over the batch
    (a stride-0 batch dimension, as :meth:`FrameFeatures.expand` makes), so
    that work that is the same for every object is done once; else ``None``."""
    if x.shape[0] > 1 and x.stride(0) == 0:
        return x[:1]
    return None
