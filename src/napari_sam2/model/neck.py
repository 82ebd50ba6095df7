"""FPN neck and the image encoder (trunk + neck)."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..config import NeckConfig
from .position import SinePositionEncoding2d


class PyramidFeatures(NamedTuple):
    """Neck output, highest resolution first.

    ``levels[i]``: ``B x d_model x H_i x W_i``; ``pos[i]`` the matching sine
    position encoding (only the last level's is used downstream).
    """

    levels: list[torch.Tensor]
    pos: list[torch.Tensor]


class FpnNeck(nn.Module):
    """Project every trunk stage to ``d_model`` channels with 1x1 convolutions
    and add the upsampled coarser level on ``fpn_top_down_levels``."""

    def __init__(self, config: NeckConfig) -> None:
        super().__init__()
        self.config = config
        # convs[0] serves the coarsest stage (channel list runs coarse -> fine)
        self.convs = nn.ModuleList()
        for channels in config.backbone_channel_list:
            lateral = nn.Sequential()
            lateral.add_module("conv", nn.Conv2d(channels, config.d_model, kernel_size=1))
            self.convs.append(lateral)
        self.position_encoding = SinePositionEncoding2d(config.d_model)

    def forward(self, stages: list[torch.Tensor]) -> PyramidFeatures:
        n = len(stages)
        keep = n - self.config.scalp  # the coarsest `scalp` levels are dropped
        top_down = set(self.config.fpn_top_down_levels)
        out: list[torch.Tensor | None] = [None] * n
        coarser = None
        for i in reversed(range(n)):  # coarse -> fine
            feat = self.convs[n - 1 - i](stages[i])
            if i in top_down and coarser is not None:
                up = F.interpolate(
                    coarser.float(),
                    scale_factor=2.0,
                    mode=self.config.fpn_interp_model,
                    align_corners=None if self.config.fpn_interp_model == "nearest" else False,
                )
                feat = feat + up
            coarser = feat
            out[i] = feat
        levels = out[:keep]
        pos = [self.position_encoding(x).to(x.dtype) for x in levels]
        return PyramidFeatures(levels, pos)


class ImageEncoder(nn.Module):
    """Trunk followed by the FPN neck: ``B x 3 x S x S`` -> :class:`PyramidFeatures`."""

    def __init__(self, trunk: nn.Module, neck: FpnNeck) -> None:
        super().__init__()
        if list(trunk.channel_list) != list(neck.config.backbone_channel_list):
            raise ValueError(
                f"trunk channels {trunk.channel_list} do not match the neck's "
                f"backbone_channel_list {list(neck.config.backbone_channel_list)}"
            )
        self.trunk = trunk
        self.neck = neck

    def forward(self, images: torch.Tensor) -> PyramidFeatures:
        return self.neck(self.trunk(images))
