"""Memory encoder: fuse a frame's image features with its predicted mask
into a compact memory for later frames."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from ..config import MemoryEncoderConfig
from .common import DropPath, LayerNorm2d
from .position import SinePositionEncoding2d


class MaskDownsampler(nn.Module):
    """Strided conv + LayerNorm + GELU steps, each multiplying the channels
    by ``stride**2``, then a 1x1 conv: ``B x 1 x H x W`` -> ``B x dim x H/t x W/t``."""

    def __init__(self, dim: int, *, kernel_size: int, stride: int, padding: int, total_stride: int):
        super().__init__()
        steps = int(math.log2(total_stride) // math.log2(stride))
        if stride**steps != total_stride:
            raise ValueError("total_stride must be a power of stride")
        layers: list[nn.Module] = []
        chans = 1
        for _ in range(steps):
            out = chans * stride**2
            layers += [
                nn.Conv2d(chans, out, kernel_size=kernel_size, stride=stride, padding=padding),
                LayerNorm2d(out),
                nn.GELU(),
            ]
            chans = out
        layers.append(nn.Conv2d(chans, dim, kernel_size=1))
        self.encoder = nn.Sequential(*layers)

    def forward(self, masks: torch.Tensor) -> torch.Tensor:
        return self.encoder(masks)


class ConvNeXtBlock(nn.Module):
    """Depth-wise conv, channel LayerNorm, pointwise MLP, layer scale, residual."""

    def __init__(self, dim: int, *, kernel_size: int, padding: int, layer_scale: float) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=kernel_size, padding=padding, groups=dim)
        self.norm = LayerNorm2d(dim)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(layer_scale * torch.ones(dim)) if layer_scale > 0 else None
        self.drop_path = DropPath(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.dwconv(x)).permute(0, 2, 3, 1)  # (B, H, W, C)
        y = self.pwconv2(self.act(self.pwconv1(y)))
        if self.gamma is not None:
            y = self.gamma * y
        return x + self.drop_path(y.permute(0, 3, 1, 2))  # (B, C, H, W)


class Fuser(nn.Module):
    def __init__(self, dim: int, config: MemoryEncoderConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            ConvNeXtBlock(
                dim,
                kernel_size=config.fuser_kernel_size,
                padding=config.fuser_padding,
                layer_scale=config.layer_scale_init_value,
            )
            for _ in range(config.fuser_layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class EncodedMemory(NamedTuple):
    features: torch.Tensor  # B x out_dim x S x S
    pos: torch.Tensor  # B x out_dim x S x S


class MemoryEncoder(nn.Module):
    """``forward(pix_feat B x C x S x S, mask B x 1 x 16S x 16S)``; the mask is
    already scaled (the caller applies sigmoid or binarisation and scale/bias)."""

    def __init__(self, config: MemoryEncoderConfig, *, in_dim: int) -> None:
        super().__init__()
        self.mask_downsampler = MaskDownsampler(
            in_dim,
            kernel_size=config.downsampler_kernel_size,
            stride=config.downsampler_stride,
            padding=config.downsampler_padding,
            total_stride=config.downsampler_total_stride,
        )
        self.pix_feat_proj = nn.Conv2d(in_dim, in_dim, kernel_size=1)
        self.fuser = Fuser(in_dim, config)
        self.out_proj = (
            nn.Conv2d(in_dim, config.out_dim, kernel_size=1)
            if config.out_dim != in_dim
            else nn.Identity()
        )
        self.position_encoding = SinePositionEncoding2d(config.out_dim)

    def forward(self, pix_feat: torch.Tensor, mask: torch.Tensor) -> EncodedMemory:
        m = self.mask_downsampler(mask)
        x = self.pix_feat_proj(pix_feat.to(m.device)) + m
        x = self.out_proj(self.fuser(x))
        return EncodedMemory(x, self.position_encoding(x).to(x.dtype))
