"""Position encodings: 2D sine, random Fourier features, axial rotary (RoPE)
and the 1D sine used for temporal offsets of object pointers."""

from __future__ import annotations

import math

import torch
from torch import nn


def sine_1d(positions: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """Sine/cosine embedding of scalar positions: ``N`` -> ``N x dim``.

    The first half of the channels holds sines, the second half cosines.
    """
    half = dim // 2
    idx = torch.arange(half, dtype=torch.float32, device=positions.device)
    freq = temperature ** (2 * (idx // 2) / half)
    angles = positions.unsqueeze(-1) / freq  # (N, half)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class SinePositionEncoding2d(nn.Module):
    """Normalised 2D sine encoding of a feature map's grid.

    ``forward(x)`` with ``x: B x C' x H x W`` returns ``B x num_feats x H x W``;
    the first half of the channels encodes y, the second half x, each as
    interleaved sin/cos pairs. Only the shape, dtype-free, of ``x`` is used.
    """

    def __init__(self, num_feats: int, *, temperature: float = 10000.0) -> None:
        super().__init__()
        if num_feats % 2:
            raise ValueError("num_feats must be even")
        self.half = num_feats // 2
        self.temperature = temperature
        self.scale = 2 * math.pi
        self._cache: dict[tuple, torch.Tensor] = {}

    def _grid(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        key = (h, w, str(device))
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        eps = 1e-6
        ys = torch.arange(1, h + 1, dtype=torch.float32, device=device)
        xs = torch.arange(1, w + 1, dtype=torch.float32, device=device)
        ys = ys / (ys[-1:] + eps) * self.scale
        xs = xs / (xs[-1:] + eps) * self.scale
        idx = torch.arange(self.half, dtype=torch.float32, device=device)
        freq = self.temperature ** (2 * (idx // 2) / self.half)

        def interleave(v: torch.Tensor) -> torch.Tensor:
            a = v[:, None] / freq  # (L, half)
            # sin on even channels, cos on odd channels, kept in place
            return torch.stack((a[:, 0::2].sin(), a[:, 1::2].cos()), dim=2).flatten(1)

        ey, ex = interleave(ys), interleave(xs)  # (H, half), (W, half)
        grid = torch.cat(
            (ey[:, None, :].expand(h, w, self.half), ex[None, :, :].expand(h, w, self.half)),
            dim=2,
        ).permute(2, 0, 1)  # (2*half, H, W)
        grid = grid.contiguous()
        self._cache[key] = grid
        return grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        return self._grid(h, w, x.device).unsqueeze(0).expand(b, -1, -1, -1)


class RandomFourierEncoding(nn.Module):
    """Random spatial frequencies (SAM's prompt position encoding).

    Coordinates normalised to [0, 1] map to ``2 * num_feats`` channels.
    """

    def __init__(self, num_feats: int = 128) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, num_feats))

    def encode(self, coords: torch.Tensor) -> torch.Tensor:
        """``... x 2`` (x, y) in [0, 1] -> ``... x 2F``."""
        c = (2 * coords - 1) @ self.positional_encoding_gaussian_matrix
        c = 2 * math.pi * c
        return torch.cat([c.sin(), c.cos()], dim=-1)

    def grid(self, h: int, w: int) -> torch.Tensor:
        """Encoding of pixel centres of an ``h x w`` grid: ``2F x h x w``."""
        device = self.positional_encoding_gaussian_matrix.device
        ys = (torch.arange(h, dtype=torch.float32, device=device) + 0.5) / h
        xs = (torch.arange(w, dtype=torch.float32, device=device) + 0.5) / w
        coords = torch.stack(
            (xs[None, :].expand(h, w), ys[:, None].expand(h, w)), dim=-1
        )  # (h, w, 2) as (x, y)
        return self.encode(coords).permute(2, 0, 1)

    def encode_pixels(self, coords: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``B x N x 2`` (x, y) in pixels of an image of ``size = (H, W)`` -> ``B x N x 2F``."""
        h, w = size
        norm = torch.stack((coords[..., 0] / w, coords[..., 1] / h), dim=-1)
        return self.encode(norm.float())


class AxialRope(nn.Module):
    """Axial rotary position encoding over a ``side x side`` token grid.

    Of each head's ``dim`` channels, taken as ``dim / 2`` rotation pairs, the
    first half of the pairs rotate with the token's x, the second half with
    its y. Tables are real cos/sin buffers so every device can use them.
    """

    def __init__(self, dim: int, side: int, *, theta: float = 10000.0) -> None:
        super().__init__()
        if dim % 4:
            raise ValueError("RoPE head dim must be a multiple of 4")
        self.dim = dim
        self.theta = theta
        cos, sin = self._tables(side * side, side)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def _tables(self, n: int, side: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        quarter = self.dim // 4
        freq = 1.0 / (
            self.theta ** (torch.arange(0, self.dim, 4, device=device)[:quarter].float() / self.dim)
        )
        t = torch.arange(n, dtype=torch.float32, device=device)
        tx = t % side
        ty = torch.div(t, side, rounding_mode="floor")
        angles = torch.cat([torch.outer(tx, freq), torch.outer(ty, freq)], dim=-1)  # (N, dim/2)
        return angles.cos(), angles.sin()

    def tables_for(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.cos.shape[0] == n:
            return self.cos, self.sin
        side = int(round(math.sqrt(n)))
        if side * side != n:
            raise ValueError(f"RoPE needs a square token grid, got {n} tokens")
        return self._tables(n, side, device=self.cos.device)

    def rotate(self, x: torch.Tensor, repeats: int = 1) -> torch.Tensor:
        """Rotate ``B x heads x (repeats * N) x dim`` by the grid positions.

        With ``repeats > 1`` the same ``N``-token grid is applied to each
        consecutive block of ``N`` tokens (memories of several frames); the
        tables are broadcast over the blocks, not copied.
        """
        n = x.shape[-2] // repeats
        cos, sin = self.tables_for(n)  # (N, dim/2)
        pairs = x.float().reshape(*x.shape[:-2], repeats, n, -1, 2)  # (..., r, N, dim/2, 2)
        if x.device.type == "mps":  # no complex numbers there: rotate with real arithmetic
            a, b = pairs[..., 0], pairs[..., 1]
            out = torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1)
        else:  # one complex multiply per pair
            out = torch.view_as_real(torch.view_as_complex(pairs) * torch.complex(cos, sin))
        return out.reshape(x.shape).to(x.dtype)
