"""Prompt encoder: points (and box corners) to sparse tokens, masks to a dense map."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .common import LayerNorm2d
from .position import RandomFourierEncoding

# point labels understood by the encoder
PAD, NEGATIVE, POSITIVE, BOX_TOP_LEFT, BOX_BOTTOM_RIGHT = -1, 0, 1, 2, 3


class PointPrompts(NamedTuple):
    """Points in model pixels.

    ``coords``: ``B x N x 2`` float, (x, y) in the model's input frame
    (``0 .. image_size``); ``labels``: ``B x N`` int, 1 positive, 0 negative,
    2/3 box top-left/bottom-right corner, -1 padding.
    """

    coords: torch.Tensor
    labels: torch.Tensor


class PromptEmbeddings(NamedTuple):
    sparse: torch.Tensor  # B x N' x C
    dense: torch.Tensor  # B x C x S x S


class PromptEncoder(nn.Module):
    def __init__(self, *, embed_dim: int, embedding_size: int, image_size: int, mask_in_chans: int):
        super().__init__()
        self.embed_dim = embed_dim
        self.embedding_size = embedding_size
        self.image_size = image_size
        self.pe_layer = RandomFourierEncoding(embed_dim // 2)
        # one learned offset per label 0..3
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_input_size = (4 * embedding_size, 4 * embedding_size)
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans // 4),
            nn.GELU(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            nn.GELU(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def dense_pe(self) -> torch.Tensor:
        """Position encoding of the image embedding grid: ``1 x C x S x S``."""
        return self.pe_layer.grid(self.embedding_size, self.embedding_size).unsqueeze(0)

    def embed_points(self, points: PointPrompts) -> torch.Tensor:
        """``B x N`` points -> ``B x (N + 1) x C`` tokens (a padding point is appended)."""
        coords = points.coords + 0.5  # pixel centres
        b = coords.shape[0]
        coords = torch.cat([coords, coords.new_zeros(b, 1, 2)], dim=1)  # (B, N+1, 2)
        labels = torch.cat(
            [points.labels, points.labels.new_full((b, 1), PAD)], dim=1
        )  # (B, N+1)
        emb = self.pe_layer.encode_pixels(coords, (self.image_size, self.image_size))
        lab = labels.unsqueeze(-1)
        emb = torch.where(lab == PAD, torch.zeros_like(emb) + self.not_a_point_embed.weight, emb)
        for value, table in enumerate(self.point_embeddings):
            emb = torch.where(lab == value, emb + table.weight, emb)
        return emb

    def forward(self, points: PointPrompts, masks: torch.Tensor | None) -> PromptEmbeddings:
        """Encode points (always present; use a padding point for none) and an
        optional ``B x 1 x 4S x 4S`` mask logit map."""
        sparse = self.embed_points(points)
        if masks is not None:
            dense = self.mask_downscaling(masks)
        else:
            b = sparse.shape[0]
            s = self.embedding_size
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(b, -1, s, s)
        return PromptEmbeddings(sparse, dense)
