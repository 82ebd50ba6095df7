"""The SAM 2 network and its per-frame tracking step.

All coordinates here are model pixels (x, y) in the ``image_size`` square;
the engine converts from napari's (y, x) at its edge.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.init import trunc_normal_

from ..config import ModelConfig
from .common import MLP
from .mask_decoder import MaskDecoder
from .memory_attention import MemoryAttention
from .memory_encoder import MemoryEncoder
from .neck import ImageEncoder
from .position import sine_1d
from .prompt_encoder import PAD, PointPrompts, PromptEncoder
from .tracking import MemoryReadout

# mask logit given to objects predicted absent
NO_OBJECT_LOGIT = -1024.0


class FrameFeatures(NamedTuple):
    """Image features of a batch of frames (or one frame expanded per object).

    ``embedding``: ``B x C x S x S`` (S = image_size / 16);
    ``high_res``: decoder skip features ``B x C/8 x 4S x 4S`` and ``B x C/4 x 2S x 2S``,
    or ``None`` for models without them.
    """

    embedding: torch.Tensor
    high_res: tuple[torch.Tensor, torch.Tensor] | None

    def expand(self, batch: int) -> "FrameFeatures":
        """Repeat a single frame's features for ``batch`` objects (no copy)."""
        hr = None if self.high_res is None else tuple(x.expand(batch, -1, -1, -1) for x in self.high_res)
        return FrameFeatures(self.embedding.expand(batch, -1, -1, -1), hr)

    def to(self, *args, **kwargs) -> "FrameFeatures":
        hr = None if self.high_res is None else tuple(x.to(*args, **kwargs) for x in self.high_res)
        return FrameFeatures(self.embedding.to(*args, **kwargs), hr)


class HeadOutput(NamedTuple):
    """What the prompt encoder + mask decoder produce for one frame.

    ``multimask_logits``: ``B x M x 4S x 4S`` all candidate masks (absent objects
    already set to a large negative logit); ``ious``: ``B x M``;
    ``low_res``: ``B x 1 x 4S x 4S`` the chosen mask; ``high_res``:
    ``B x 1 x 16S x 16S`` the chosen mask upsampled to the model input size;
    ``obj_ptr``: ``B x C`` object pointer; ``object_score_logits``: ``B x 1``.

    ``candidates`` (``B x K x 4S x 4S``, K = 3), ``candidate_ious`` (``B x K``)
    and ``candidate_ptrs`` (``B x K x C``): the multimask tokens' masks,
    predicted IoUs and the object pointer each would give if chosen, also
    when one mask was decoded; None for a mask prompt taken as the output.
    """

    multimask_logits: torch.Tensor
    ious: torch.Tensor
    low_res: torch.Tensor
    high_res: torch.Tensor
    obj_ptr: torch.Tensor
    object_score_logits: torch.Tensor
    candidates: torch.Tensor | None = None
    candidate_ious: torch.Tensor | None = None
    candidate_ptrs: torch.Tensor | None = None


class StepOutput(NamedTuple):
    """One tracking step: the head output and, if asked for, the new memory
    (``B x Cm x S x S``, before any storage cast)."""

    head: HeadOutput
    memory: torch.Tensor | None


class SAM2Model(nn.Module):
    """SAM 2: image encoder, prompt encoder, mask decoder, memory encoder and
    memory attention, with the learned tokens that tie them together.

    Build with :func:`napari_sam2.model.build_model`.
    """

    def __init__(
        self,
        config: ModelConfig,
        *,
        image_encoder: ImageEncoder,
        prompt_encoder: PromptEncoder,
        mask_decoder: MaskDecoder,
        memory_attention: MemoryAttention,
        memory_encoder: MemoryEncoder,
    ) -> None:
        super().__init__()
        self.config = config
        t = config.tracking
        self.image_size = config.image_size
        self.hidden_dim = dim = config.neck.d_model
        self.mem_dim = mem_dim = config.memory_encoder.out_dim
        self.num_maskmem = t.num_maskmem

        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        self.memory_attention = memory_attention
        self.memory_encoder = memory_encoder

        # turns a 0/1 mask at input resolution into a stride-4 logit-like map
        self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)
        self.maskmem_tpos_enc = nn.Parameter(torch.zeros(t.num_maskmem, 1, 1, mem_dim))
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, dim))
        # part of Meta's checkpoints; only used by models that run memory
        # attention on initial frames, which none of the published ones do
        self.no_mem_pos_enc = nn.Parameter(torch.zeros(1, 1, dim))
        if t.pred_obj_scores:
            self.no_obj_ptr = nn.Parameter(torch.zeros(1, dim))
        self.no_obj_embed_spatial = (
            nn.Parameter(torch.zeros(1, mem_dim)) if t.no_obj_embed_spatial else None
        )
        self.obj_ptr_proj = MLP(dim, dim, dim, 3) if t.use_mlp_for_obj_ptr_proj else nn.Linear(dim, dim)
        self.obj_ptr_tpos_proj = (
            nn.Linear(dim, mem_dim) if t.proj_tpos_enc_in_obj_ptrs else nn.Identity()
        )
        for p in (self.maskmem_tpos_enc, self.no_mem_embed, self.no_mem_pos_enc):
            trunc_normal_(p, std=0.02)
        if t.pred_obj_scores:
            trunc_normal_(self.no_obj_ptr, std=0.02)
        if self.no_obj_embed_spatial is not None:
            trunc_normal_(self.no_obj_embed_spatial, std=0.02)

    @property
    def device(self) -> torch.device:
        return self.no_mem_embed.device

    # ------------------------------------------------------------------ image
    def encode_image(self, images: torch.Tensor) -> FrameFeatures:
        """``B x 3 x S*16 x S*16`` normalised images -> :class:`FrameFeatures`."""
        levels = self.image_encoder(images).levels  # fine -> coarse
        high_res = None
        if self.config.tracking.use_high_res_features_in_sam:
            high_res = (
                self.mask_decoder.conv_s0(levels[0]),
                self.mask_decoder.conv_s1(levels[1]),
            )
        return FrameFeatures(levels[-1], high_res)

    def image_pos(self, batch: int = 1) -> torch.Tensor:
        """Sine position encoding of the embedding grid: ``batch x C x S x S``."""
        s = self.config.feature_size
        probe = self.no_mem_embed.new_empty(batch, 1, s, s)
        return self.image_encoder.neck.position_encoding(probe)

    def memory_pos(self) -> torch.Tensor:
        """Sine position encoding of the memory grid: ``1 x Cm x S x S``."""
        s = self.config.feature_size
        probe = self.no_mem_embed.new_empty(1, 1, s, s)
        return self.memory_encoder.position_encoding(probe)

    # ------------------------------------------------------------------ heads
    def use_multimask(self, is_init_frame: bool, points: PointPrompts | None) -> bool:
        """Three candidate masks for the first click (or a box, or none while
        tracking, as configured); one mask otherwise."""
        t = self.config.tracking
        n = 0 if points is None else points.labels.shape[1]
        return (
            t.multimask_output_in_sam
            and (is_init_frame or t.multimask_output_for_tracking)
            and t.multimask_min_pt_num <= n <= t.multimask_max_pt_num
        )

    def run_heads(
        self,
        embedding: torch.Tensor,
        high_res: tuple[torch.Tensor, torch.Tensor] | None,
        *,
        points: PointPrompts | None = None,
        mask_input: torch.Tensor | None = None,
        multimask: bool = False,
    ) -> HeadOutput:
        """Decode masks from (possibly memory-conditioned) ``B x C x S x S`` features.

        ``mask_input``: ``B x 1 x H x W`` logits or a 0/1 mask, resized to the
        prompt encoder's mask size if needed.
        """
        t = self.config.tracking
        b = embedding.shape[0]
        device = embedding.device
        if points is None:
            points = PointPrompts(
                torch.zeros(b, 1, 2, device=device),
                torch.full((b, 1), PAD, dtype=torch.int32, device=device),
            )
        if mask_input is not None and tuple(mask_input.shape[-2:]) != self.prompt_encoder.mask_input_size:
            mask_input = F.interpolate(
                mask_input.float(),
                size=self.prompt_encoder.mask_input_size,
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
        sparse, dense = self.prompt_encoder(points, mask_input)
        dec = self.mask_decoder(
            embedding,
            self.prompt_encoder.dense_pe(),
            sparse,
            dense,
            multimask=multimask,
            high_res=high_res,
        )
        logits, score = dec.masks, dec.object_score_logits
        present = score > 0  # (B, 1)
        candidates = dec.candidates
        if t.pred_obj_scores:
            logits = torch.where(present[:, None, None], logits, NO_OBJECT_LOGIT)
            candidates = torch.where(present[:, None, None], candidates, NO_OBJECT_LOGIT)
        logits = logits.float()
        token = dec.tokens[:, 0]
        if multimask:
            best = dec.iou.argmax(dim=-1)
            rows = torch.arange(b, device=device)
            low = logits[rows, best].unsqueeze(1)
            if dec.tokens.shape[1] > 1:
                token = dec.tokens[rows, best]
        else:
            low = logits
        high = F.interpolate(
            low, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False
        )
        k = candidates.shape[1]
        if self.mask_decoder.use_multimask_token_for_obj_ptr:
            candidate_tokens = dec.candidate_tokens  # (B, K, C)
        else:  # the single-mask token, whichever mask is chosen
            candidate_tokens = dec.tokens[:, :1].expand(-1, k, -1)
        obj_ptr = self.obj_ptr_proj(token)
        candidate_ptrs = self.obj_ptr_proj(candidate_tokens)  # (B, K, C)
        if t.pred_obj_scores:
            weight = present.float()
            if t.fixed_no_obj_ptr:
                obj_ptr = weight * obj_ptr
                candidate_ptrs = weight[:, None] * candidate_ptrs
            obj_ptr = obj_ptr + (1 - weight) * self.no_obj_ptr
            candidate_ptrs = candidate_ptrs + (1 - weight[:, None]) * self.no_obj_ptr
        return HeadOutput(
            logits, dec.iou, low, high, obj_ptr, score, candidates.float(), dec.candidate_iou, candidate_ptrs
        )

    def mask_as_output(
        self,
        features: FrameFeatures,
        mask: torch.Tensor,
    ) -> HeadOutput:
        """Take a ``B x 1 x S*16 x S*16`` 0/1 mask prompt as the output itself
        (logits -10 / +10) and derive its object pointer with the decoder."""
        t = self.config.tracking
        m = mask.float()
        high = m * 20.0 - 10.0
        low = F.interpolate(
            high,
            size=(high.shape[-2] // 4, high.shape[-1] // 4),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )
        ious = m.new_ones(m.shape[0], 1)
        ptr = self.run_heads(
            features.embedding, features.high_res, mask_input=self.mask_downsample(m)
        ).obj_ptr
        present = torch.any(m.flatten(1) > 0.0, dim=1)[:, None].float()  # (B, 1)
        score = 20.0 * present - 10.0
        if t.pred_obj_scores:
            if t.fixed_no_obj_ptr:
                ptr = present * ptr
            ptr = ptr + (1 - present) * self.no_obj_ptr
        return HeadOutput(low, ious, low, high, ptr, score)

    # ----------------------------------------------------------------- memory
    def condition(self, embedding: torch.Tensor, readout: MemoryReadout | None) -> torch.Tensor:
        """Fuse ``B x C x S x S`` features with the memory bank; an initial
        frame (``readout is None``) only gets the learned no-memory embedding."""
        b, c, h, w = embedding.shape
        x = embedding.flatten(2).transpose(1, 2)  # (B, HW, C)
        if readout is None:
            x = x + self.no_mem_embed
            return x.transpose(1, 2).reshape(b, c, h, w)
        t = self.config.tracking
        tokens, token_pos = [], []
        mem_pos = self.memory_pos().flatten(2).transpose(1, 2)  # (1, HW, Cm)
        for t_pos, feats in readout.spatial:
            tokens.append(feats.flatten(2).transpose(1, 2).to(x.dtype))  # (B, HW, Cm)
            tpos = self.maskmem_tpos_enc[self.num_maskmem - t_pos - 1]  # (1, 1, Cm)
            token_pos.append((mem_pos + tpos).expand(b, -1, -1))
        num_ptr_tokens = 0
        if readout.pointers:
            offsets = [o for o, _ in readout.pointers]
            ptrs = torch.stack([p for _, p in readout.pointers], dim=1)  # (B, P, C)
            if t.add_tpos_enc_to_obj_ptrs:
                span = max(readout.max_pointers - 1, 1)
                rel = torch.tensor(offsets, dtype=torch.float32, device=x.device) / span
                tdim = c if t.proj_tpos_enc_in_obj_ptrs else self.mem_dim
                ppos = self.obj_ptr_tpos_proj(sine_1d(rel, tdim))  # (P, Cm)
            else:
                ppos = ptrs.new_zeros(len(offsets), self.mem_dim)
            ppos = ppos.unsqueeze(0).expand(b, -1, -1)  # (B, P, Cm)
            if self.mem_dim < c:
                split = c // self.mem_dim
                ptrs = ptrs.reshape(b, len(offsets) * split, self.mem_dim)  # (B, P*split, Cm)
                ppos = ppos.repeat_interleave(split, dim=1)
            tokens.append(ptrs.to(x.dtype))
            token_pos.append(ppos)
            num_ptr_tokens = ptrs.shape[1]
        memory = torch.cat(tokens, dim=1)  # (B, M, Cm)
        memory_pos = torch.cat(token_pos, dim=1)
        pos = self.image_pos(b).flatten(2).transpose(1, 2)  # (B, HW, C)
        x = self.memory_attention(x, pos, memory, memory_pos, num_ptr_tokens)
        return x.transpose(1, 2).reshape(b, c, h, w)

    def encode_memory(
        self,
        embedding: torch.Tensor,
        high_res_masks: torch.Tensor,
        object_score_logits: torch.Tensor,
        *,
        from_points: bool,
    ) -> torch.Tensor:
        """Memory of a frame from its raw features and ``B x 1 x 16S x 16S``
        mask logits. Masks that came from clicks are binarised (as the user
        saw them); tracked masks go through a sigmoid."""
        t = self.config.tracking
        if t.binarize_mask_from_pts_for_mem_enc and from_points and not self.training:
            m = (high_res_masks > 0).float()
        else:
            m = torch.sigmoid(high_res_masks)
        m = m * t.sigmoid_scale_for_mem_enc + t.sigmoid_bias_for_mem_enc
        feats = self.memory_encoder(embedding, m).features
        if self.no_obj_embed_spatial is not None:
            absent = 1.0 - (object_score_logits > 0).float()  # (B, 1)
            feats = feats + absent[..., None, None] * self.no_obj_embed_spatial[..., None, None]
        return feats

    # ------------------------------------------------------------------- step
    def track_step(
        self,
        features: FrameFeatures,
        *,
        readout: MemoryReadout | None,
        points: PointPrompts | None = None,
        mask: torch.Tensor | None = None,
        prev_logits: torch.Tensor | None = None,
        encode_memory: bool = True,
    ) -> StepOutput:
        """Segment one frame for a batch of objects.

        ``readout`` is the memory to read (``None`` marks an initial
        conditioning frame: no memory). ``points`` and ``mask`` are this
        frame's prompts; ``prev_logits`` (``B x 1 x 4S x 4S``) are earlier
        logits fed back with correction clicks.
        """
        if mask is not None and self.config.tracking.use_mask_input_as_output_without_sam:
            head = self.mask_as_output(features, mask)
        else:
            pix = self.condition(features.embedding, readout)
            mask_input = prev_logits if mask is None else mask
            head = self.run_heads(
                pix,
                features.high_res,
                points=points,
                mask_input=mask_input,
                multimask=self.use_multimask(readout is None, points),
            )
        memory = None
        if encode_memory and self.num_maskmem > 0:
            memory = self.encode_memory(
                features.embedding,
                head.high_res,
                head.object_score_logits,
                from_points=points is not None,
            )
        return StepOutput(head, memory)
