"""SAM's mask decoder: output tokens attend to the image and become masks,
IoU estimates and an object-presence score."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ..config import DecoderConfig
from .common import MLP, LayerNorm2d
from .transformer import TwoWayTransformer


class DecoderOutput(NamedTuple):
    masks: torch.Tensor  # B x M x 4S x 4S mask logits (M = 3 multimask, else 1)
    iou: torch.Tensor  # B x M predicted IoU
    tokens: torch.Tensor  # B x M' x C output tokens for object pointers
    object_score_logits: torch.Tensor  # B x 1
    # the multimask tokens' outputs whatever ``multimask`` chose (K = 3):
    candidates: torch.Tensor | None = None  # B x K x 4S x 4S mask logits
    candidate_iou: torch.Tensor | None = None  # B x K predicted IoU
    candidate_tokens: torch.Tensor | None = None  # B x K x C


class DecoderTokens(NamedTuple):
    """The transformer's outputs before the heads."""

    iou_token: torch.Tensor  # B x C
    mask_tokens: torch.Tensor  # B x 4 x C
    score_token: torch.Tensor | None  # B x C (None without an object-score token)
    upscaled: torch.Tensor  # B x C/8 x 4S x 4S


class MaskDecoder(nn.Module):
    def __init__(
        self,
        config: DecoderConfig,
        *,
        dim: int,
        use_high_res_features: bool,
        iou_prediction_use_sigmoid: bool,
        pred_obj_scores: bool,
        pred_obj_scores_mlp: bool,
        use_multimask_token_for_obj_ptr: bool,
    ) -> None:
        super().__init__()
        self.config = config
        self.transformer = TwoWayTransformer(
            depth=config.transformer_depth,
            dim=dim,
            num_heads=config.transformer_heads,
            mlp_dim=config.transformer_mlp_dim,
            downsample_rate=config.attention_downsample_rate,
        )
        self.num_mask_tokens = config.num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, dim)
        self.pred_obj_scores = pred_obj_scores
        if pred_obj_scores:
            self.obj_score_token = nn.Embedding(1, dim)
        self.use_multimask_token_for_obj_ptr = use_multimask_token_for_obj_ptr
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(dim // 4),
            nn.GELU(),
            nn.ConvTranspose2d(dim // 4, dim // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.use_high_res_features = use_high_res_features
        if use_high_res_features:
            self.conv_s0 = nn.Conv2d(dim, dim // 8, kernel_size=1)
            self.conv_s1 = nn.Conv2d(dim, dim // 4, kernel_size=1)
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(dim, dim, dim // 8, 3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(
            dim,
            config.iou_head_hidden_dim,
            self.num_mask_tokens,
            config.iou_head_depth,
            sigmoid_output=iou_prediction_use_sigmoid,
        )
        if pred_obj_scores:
            self.pred_obj_score_head = (
                MLP(dim, dim, 1, 3) if pred_obj_scores_mlp else nn.Linear(dim, 1)
            )

    def decode_tokens(
        self,
        image: torch.Tensor,
        image_pe: torch.Tensor,
        sparse: torch.Tensor,
        dense: torch.Tensor,
        high_res: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> DecoderTokens:
        """The two-way transformer and the upscaling: everything before the
        heads. ``image``: ``B x C x S x S`` (already batched per prompt),
        ``image_pe`` ``1 x C x S x S``, ``sparse`` ``B x N x C``, ``dense``
        ``B x C x S x S``; ``high_res``: the projected stride-4 and stride-8
        features."""
        heads = [self.iou_token.weight, self.mask_tokens.weight]
        if self.pred_obj_scores:
            heads.insert(0, self.obj_score_token.weight)
        first = 1 if self.pred_obj_scores else 0
        out_tokens = torch.cat(heads, dim=0).unsqueeze(0).expand(sparse.shape[0], -1, -1)
        tokens = torch.cat((out_tokens, sparse), dim=1)  # (B, T, C)
        src = image + dense
        pos = image_pe.expand(tokens.shape[0], -1, -1, -1)
        b, c, h, w = src.shape
        hs, src = self.transformer(src, pos, tokens)
        iou_token = hs[:, first, :]
        mask_tokens = hs[:, first + 1 : first + 1 + self.num_mask_tokens, :]

        src = src.transpose(1, 2).reshape(b, c, h, w)  # (B, C, S, S)
        up1, norm1, act1, up2, act2 = self.output_upscaling
        if self.use_high_res_features:
            feat_s0, feat_s1 = high_res
            up = act1(norm1(up1(src) + feat_s1))
            up = act2(up2(up) + feat_s0)
        else:
            up = act2(up2(act1(norm1(up1(src)))))
        score_token = hs[:, 0, :] if self.pred_obj_scores else None
        return DecoderTokens(iou_token, mask_tokens, score_token, up)

    def mask_logits(self, tokens: DecoderTokens, which: range | None = None) -> torch.Tensor:
        """Masks of the mask tokens ``which`` (default all): ``B x M x 4S x 4S``."""
        which = range(self.num_mask_tokens) if which is None else which
        hyper = torch.stack(
            [self.output_hypernetworks_mlps[i](tokens.mask_tokens[:, i, :]) for i in which], dim=1
        )  # (B, M, C/8)
        b, c, h, w = tokens.upscaled.shape
        return (hyper @ tokens.upscaled.reshape(b, c, h * w)).reshape(b, -1, h, w)  # (B, M, 4S, 4S)

    def predict_all(
        self,
        image: torch.Tensor,
        image_pe: torch.Tensor,
        sparse: torch.Tensor,
        dense: torch.Tensor,
        high_res: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """All mask tokens at once: masks ``B x 4 x 4S x 4S``, iou ``B x 4``,
        mask tokens ``B x 4 x C``, object score logits ``B x 1`` (arguments
        as for :meth:`decode_tokens`)."""
        tokens = self.decode_tokens(image, image_pe, sparse, dense, high_res)
        masks = self.mask_logits(tokens)
        iou = self.iou_prediction_head(tokens.iou_token)
        if self.pred_obj_scores:
            score = self.pred_obj_score_head(tokens.score_token)
        else:
            score = 10.0 * iou.new_ones(iou.shape[0], 1)  # "present"
        return masks, iou, tokens.mask_tokens, score

    def _stability(self, logits: torch.Tensor) -> torch.Tensor:
        delta = self.config.dynamic_multimask_stability_delta
        flat = logits.flatten(-2)
        inner = (flat > delta).sum(-1).float()
        outer = (flat > -delta).sum(-1).float()
        return torch.where(outer > 0, inner / outer, 1.0)

    def _best_if_unstable(self, masks: torch.Tensor, iou: torch.Tensor):
        """Keep the single-mask output where it is stable, else take the
        multimask output with the highest predicted IoU."""
        best = iou[:, 1:].argmax(dim=-1)
        rows = torch.arange(iou.shape[0], device=iou.device)
        best_masks = masks[:, 1:][rows, best].unsqueeze(1)
        best_iou = iou[:, 1:][rows, best].unsqueeze(1)
        single_masks, single_iou = masks[:, :1], iou[:, :1]
        stable = self._stability(single_masks) >= self.config.dynamic_multimask_stability_thresh
        masks = torch.where(stable[..., None, None].expand_as(single_masks), single_masks, best_masks)
        iou = torch.where(stable.expand_as(single_iou), single_iou, best_iou)
        return masks, iou

    def forward(
        self,
        image: torch.Tensor,
        image_pe: torch.Tensor,
        sparse: torch.Tensor,
        dense: torch.Tensor,
        *,
        multimask: bool,
        high_res: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> DecoderOutput:
        masks, iou, mask_tokens, score = self.predict_all(image, image_pe, sparse, dense, high_res)
        candidates = (masks[:, 1:], iou[:, 1:], mask_tokens[:, 1:])
        if multimask:
            masks, iou = masks[:, 1:], iou[:, 1:]
        elif self.config.dynamic_multimask_via_stability and not self.training:
            masks, iou = self._best_if_unstable(masks, iou)
        else:
            masks, iou = masks[:, :1], iou[:, :1]
        # the pointer token: the chosen multimask tokens, else always the
        # single-mask token (tracking was trained on it)
        tokens = mask_tokens[:, 1:] if multimask and self.use_multimask_token_for_obj_ptr else mask_tokens[:, :1]
        return DecoderOutput(masks, iou, tokens, score, *candidates)
