"""Hiera: a hierarchical vision transformer with windowed attention.

Tokens live as ``B x H x W x C`` throughout. At the first block of each new
stage the query is max-pooled by ``q_stride``, halving the resolution and
(by ``dim_mul``) growing the channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import TrunkConfig
from .common import MLP, DropPath


def to_windows(x: torch.Tensor, size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Split ``B x H x W x C`` into ``(B * nW) x size x size x C`` windows.

    The map is zero-padded at the bottom/right to a multiple of ``size``;
    the padded ``(Hp, Wp)`` is returned with the windows.
    """
    b, h, w, c = x.shape
    ph, pw = (-h) % size, (-w) % size
    if ph or pw:
        x = F.pad(x, (0, 0, 0, pw, 0, ph))
    hp, wp = h + ph, w + pw
    x = x.view(b, hp // size, size, wp // size, size, c)  # (B, nH, s, nW, s, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, size, size, c), (hp, wp)


def from_windows(
    windows: torch.Tensor, size: int, padded: tuple[int, int], hw: tuple[int, int]
) -> torch.Tensor:
    """Inverse of :func:`to_windows`, cropping the padding: -> ``B x H x W x C``."""
    hp, wp = padded
    h, w = hw
    b = windows.shape[0] // ((hp // size) * (wp // size))
    x = windows.reshape(b, hp // size, wp // size, size, size, -1)  # (B, nH, nW, s, s, C)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, -1)
    if hp > h or wp > w:
        x = x[:, :h, :w, :]
    return x


def _pool_bhwc(x: torch.Tensor, pool: nn.Module) -> torch.Tensor:
    """Apply a 2D pooling to ``B x H x W x C`` and return the same layout."""
    return pool(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class PatchEmbed(nn.Module):
    """7x7 stride-4 convolution: ``B x 3 x H x W`` -> ``B x H/4 x W/4 x C``."""

    def __init__(self, dim: int, in_chans: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=7, stride=4, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


class PooledAttention(nn.Module):
    """Multi-head self-attention over ``B x H x W x C`` with optional query pooling."""

    def __init__(self, dim: int, dim_out: int, num_heads: int, q_pool: nn.Module | None) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q_pool = q_pool
        self.qkv = nn.Linear(dim, dim_out * 3)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1)  # (B, HW, 3, nh, hd)
        q, k, v = qkv.unbind(2)  # each (B, HW, nh, hd)
        if self.q_pool is not None:
            q = _pool_bhwc(q.reshape(b, h, w, -1), self.q_pool)  # (B, H', W', nh*hd)
            h, w = q.shape[1:3]
            q = q.reshape(b, h * w, self.num_heads, -1)  # (B, H'W', nh, hd)
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        )  # (B, nh, H'W', hd)
        out = out.transpose(1, 2).reshape(b, h, w, -1)  # (B, H', W', C_out)
        return self.proj(out)


class HieraBlock(nn.Module):
    """Pre-norm transformer block; windowed unless ``window_size == 0``."""

    def __init__(
        self,
        *,
        dim: int,
        dim_out: int,
        num_heads: int,
        window_size: int,
        q_stride: tuple[int, int] | None,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.dim, self.dim_out = dim, dim_out
        self.window_size = window_size
        self.q_stride = q_stride
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.pool = nn.MaxPool2d(kernel_size=q_stride, stride=q_stride) if q_stride else None
        self.attn = PooledAttention(dim, dim_out, num_heads, self.pool)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim_out, eps=1e-6)
        self.mlp = MLP(dim_out, int(dim_out * mlp_ratio), dim_out, 2, activation=nn.GELU)
        if dim != dim_out:
            self.proj = nn.Linear(dim, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x  # (B, H, W, C)
        x = self.norm1(x)
        if self.dim != self.dim_out:
            shortcut = self.proj(x)
            if self.pool is not None:
                shortcut = _pool_bhwc(shortcut, self.pool)
        size = self.window_size
        hw = x.shape[1:3]
        if size > 0:
            x, padded = to_windows(x, size)
        x = self.attn(x)
        if self.q_stride:
            # the query was pooled: windows and the map shrank by the stride
            size = self.window_size // self.q_stride[0]
            hw = shortcut.shape[1:3]
            padded = (hw[0] + (-hw[0]) % size, hw[1] + (-hw[1]) % size) if size > 0 else hw
        if self.window_size > 0:
            x = from_windows(x, size, padded, hw)
        x = shortcut + self.drop_path(x)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class Hiera(nn.Module):
    """The trunk. ``forward(B x 3 x S x S)`` returns one ``B x C_i x H_i x W_i``
    map per stage, highest resolution first."""

    def __init__(self, config: TrunkConfig, *, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        c = config
        depth = sum(c.stages)
        self.stage_ends = [sum(c.stages[: i + 1]) - 1 for i in range(len(c.stages))]
        pool_blocks = [end + 1 for end in self.stage_ends[:-1]][: c.q_pool]
        self.patch_embed = PatchEmbed(c.embed_dim)
        self.pos_embed = nn.Parameter(
            torch.zeros(1, c.embed_dim, *c.window_pos_embed_bkg_spatial_size)
        )
        self.pos_embed_window = nn.Parameter(
            torch.zeros(1, c.embed_dim, c.window_spec[0], c.window_spec[0])
        )
        rates = torch.linspace(0, drop_path_rate, depth, device="cpu").tolist()
        dim, heads, stage = c.embed_dim, c.num_heads, 0
        blocks = []
        for i in range(depth):
            # the first block of a stage still uses the previous stage's window
            window = 0 if i in c.global_att_blocks else c.window_spec[stage]
            dim_out = dim
            if i - 1 in self.stage_ends:
                dim_out = int(dim * c.dim_mul)
                heads = int(heads * c.head_mul)
                stage += 1
            blocks.append(
                HieraBlock(
                    dim=dim,
                    dim_out=dim_out,
                    num_heads=heads,
                    window_size=window,
                    q_stride=tuple(c.q_stride) if i in pool_blocks else None,
                    mlp_ratio=c.mlp_ratio,
                    drop_path=rates[i],
                )
            )
            dim = dim_out
        self.blocks = nn.ModuleList(blocks)
        self.channel_list = [self.blocks[i].dim_out for i in self.stage_ends[::-1]]

    def _position(self, h: int, w: int) -> torch.Tensor:
        pos = F.interpolate(self.pos_embed, size=(h, w), mode="bicubic")  # (1, C, h, w)
        win = self.pos_embed_window
        reps = [a // b for a, b in zip(pos.shape, win.shape)]
        return (pos + win.tile(reps)).permute(0, 2, 3, 1)  # (1, h, w, C)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.patch_embed(x)  # (B, H/4, W/4, C)
        x = x + self._position(*x.shape[1:3])
        outputs = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.stage_ends:
                outputs.append(x.permute(0, 3, 1, 2))  # (B, C_i, H_i, W_i)
        return outputs
