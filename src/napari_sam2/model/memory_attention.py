"""Memory attention: the current frame's features attend to themselves and to
the memory bank (spatial memories + object pointer tokens) with RoPE."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import MemoryAttentionConfig
from .position import AxialRope
from .transformer import Attention


class RopeAttention(Attention):
    """Attention with axial RoPE on queries and keys.

    Keys may hold several frames' grids back to back (each rotated like the
    query grid) followed by ``num_k_exclude_rope`` tokens left unrotated
    (object pointers).
    """

    def __init__(
        self, dim: int, num_heads: int, *, side: int, theta: float, kv_dim: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(dim, num_heads, kv_dim=kv_dim, dropout=dropout)
        self.rope = AxialRope(dim // num_heads, side, theta=theta)

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        num_k_exclude_rope: int = 0,
        key_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``q: 1 or B x Nq x C`` (one query set may serve a batch of keys),
        ``k, v: B x Nk x kv_dim``; ``key_mask: B x Nk`` bool, True = attend."""
        q = self.split_heads(self.q_proj(q))  # (B or 1, nh, Nq, hd)
        k = self.split_heads(self.k_proj(k))  # (B, nh, Nk, hd)
        v = self.split_heads(self.v_proj(v))
        n_rope = k.shape[-2] - num_k_exclude_rope
        q = self.rope.rotate(q)
        if n_rope > 0:
            repeats = n_rope // q.shape[-2]
            k[:, :, :n_rope] = self.rope.rotate(k[:, :, :n_rope], repeats=repeats)
        if q.shape[0] != k.shape[0]:
            q = q.expand(k.shape[0], -1, -1, -1)
        mask = None if key_mask is None else key_mask[:, None, None, :]  # (B, 1, 1, Nk)
        return self.attend(q, k, v, mask)


class MemoryAttentionLayer(nn.Module):
    def __init__(self, *, dim: int, mem_dim: int, side: int, config: MemoryAttentionConfig) -> None:
        super().__init__()
        self.self_attn = RopeAttention(
            dim, config.num_heads, side=side, theta=config.rope_theta, dropout=config.dropout
        )
        self.cross_attn_image = RopeAttention(
            dim, config.num_heads, side=side, theta=config.rope_theta, kv_dim=mem_dim,
            dropout=config.dropout,
        )
        self.linear1 = nn.Linear(dim, config.dim_feedforward)
        self.dropout = nn.Dropout(config.dropout)
        self.linear2 = nn.Linear(config.dim_feedforward, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        self.dropout1 = nn.Dropout(config.dropout)
        self.dropout2 = nn.Dropout(config.dropout)
        self.dropout3 = nn.Dropout(config.dropout)

    def attend_self(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        return x + self.dropout1(self.self_attn(y, y, y))

    def attend_memory(
        self,
        x: torch.Tensor,
        keys: torch.Tensor,
        memory: torch.Tensor,
        num_ptr_tokens: int,
        memory_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``x``: ``1 or B x HW x C``; ``keys`` = memory + its position
        encoding, ``memory``: ``B x M x Cm``; returns ``B x HW x C``."""
        y = self.norm2(x)
        y = self.cross_attn_image(y, keys, memory, num_k_exclude_rope=num_ptr_tokens, key_mask=memory_mask)
        return x + self.dropout2(y)

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.linear1(self.norm3(x)), inplace=not torch.is_grad_enabled())
        return x + self.dropout3(self.linear2(self.dropout(y)))

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        memory_pos: torch.Tensor,
        num_ptr_tokens: int,
        memory_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = self.attend_self(x)
        x = self.attend_memory(x, memory + memory_pos, memory, num_ptr_tokens, memory_mask)
        return self.feed_forward(x)


class MemoryAttention(nn.Module):
    """``forward(x B x HW x C, pos B x HW x C, memory B x M x Cm, memory_pos B x M x Cm,
    num_ptr_tokens)`` -> conditioned features ``B x HW x C``. The last
    ``num_ptr_tokens`` memory tokens are object pointers (no RoPE)."""

    def __init__(self, config: MemoryAttentionConfig, *, dim: int, mem_dim: int, side: int) -> None:
        super().__init__()
        self.pos_enc_at_input = config.pos_enc_at_input
        self.layers = nn.ModuleList(
            MemoryAttentionLayer(dim=dim, mem_dim=mem_dim, side=side, config=config)
            for _ in range(config.num_layers)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(
        self,
        x: torch.Tensor,
        pos: torch.Tensor,
        memory: torch.Tensor,
        memory_pos: torch.Tensor,
        num_ptr_tokens: int = 0,
        memory_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``x``, ``pos`` may have batch 1 for ``B`` objects reading ``memory``
        (their image features are the same): the first layer's
        self-attention, which sees the image tokens alone, then runs once.
        ``memory_mask``: ``B x M`` bool, False for padding tokens."""
        return self.finish(self.prepare(x, pos), memory, memory_pos, num_ptr_tokens, memory_mask)

    def prepare(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """The part before any memory is read: input position encoding and
        the first layer's self-attention (``1 or B x HW x C``)."""
        if self.pos_enc_at_input:
            x = x + 0.1 * pos
        return self.layers[0].attend_self(x)

    def finish(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        memory_pos: torch.Tensor,
        num_ptr_tokens: int = 0,
        memory_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The rest, from :meth:`prepare`'s output (batch 1 or ``B``) and
        ``B`` objects' memories: ``B x HW x C``."""
        keys = memory + memory_pos  # the same in every layer
        for i, layer in enumerate(self.layers):
            if i > 0:
                x = layer.attend_self(x)
            x = layer.attend_memory(x, keys, memory, num_ptr_tokens, memory_mask)
            x = layer.feed_forward(x)
        return self.norm(x)
