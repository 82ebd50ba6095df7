"""The SAM 2 network and its per-frame tracking step.

All coordinates here are model pixels (x, y) in the ``image_size`` square;
the engine converts from napari's (y, x) at its edge.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.init import trunc_normal_

from ..config import ModelConfig
from .common import MLP
from .mask_decoder import MaskDecoder
from .memory_attention import MemoryAttention
from .memory_encoder import MemoryEncoder
from .memory_tokens import MemoryTokens, assemble_memory, memory_length, one_frame, readout_batch
from .neck import ImageEncoder
from .position import sine_1d
from .prompt_encoder import PAD, PointPrompts, PromptEncoder
from .tracking import MemoryReadout

# mask logit given to objects predicted absent
NO_OBJECT_LOGIT = -1024.0
# objects that go through memory attention at once on the CPU: larger
# batches lose to cache misses in the elementwise passes over their
# memories (see benchmarks/README.md, many objects)
CPU_OBJECTS_PER_CHUNK = 2
# objects through the mask decoder and memory encoder at once on the CPU
CPU_OBJECTS_PER_HEAD_CHUNK = 4


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
        # objects per memory-attention chunk; None: by device (see _chunks)
        self.objects_per_chunk: int | None = None

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
    def condition(
        self,
        embedding: torch.Tensor,
        readout: MemoryReadout | Sequence[MemoryReadout] | None,
    ) -> torch.Tensor:
        """Fuse ``B x C x S x S`` features with the memory bank; an initial
        frame (``readout is None``) only gets the learned no-memory embedding.

        ``readout`` is one readout for all ``B`` objects or a sequence of
        readouts (each for some of the objects, in order) that may read
        different memories: they are padded to a common length and masked
        (:func:`assemble_memory`). When ``embedding`` is one frame expanded
        over the objects, what is the same for all of them (the first
        layer's self-attention) runs once.
        """
        b, c, h, w = embedding.shape
        if readout is None:
            x = embedding.flatten(2).transpose(1, 2)  # (B, HW, C)
            x = x + self.no_mem_embed
            return x.transpose(1, 2).reshape(b, c, h, w)
        readouts = [readout] if isinstance(readout, MemoryReadout) else list(readout)
        shared = one_frame(embedding)
        x = (embedding if shared is None else shared).flatten(2).transpose(1, 2)  # (B or 1, HW, C)
        pos = self.image_pos(1).flatten(2).transpose(1, 2)  # (1, HW, C)
        x = self.memory_attention.prepare(x, pos)
        out = x.new_empty(b, h * w, c) if len(readouts) > 1 else None
        for rows, chunk in self._chunks(readouts, b):
            memory = self._memory_tokens(chunk, x.dtype)
            y = self.memory_attention.finish(
                x if shared is not None or out is None else x[rows],
                memory.tokens,
                memory.pos,
                memory.num_ptr_tokens,
                memory_mask=memory.mask,
            )
            if out is None:
                return y.transpose(1, 2).reshape(b, c, h, w)
            out[rows] = y
        return out.transpose(1, 2).reshape(b, c, h, w)

    def _memory_tokens(self, readouts: list[MemoryReadout], dtype: torch.dtype) -> MemoryTokens:
        return assemble_memory(
            readouts,
            grid_pos=self.memory_pos().flatten(2).transpose(1, 2)[0],  # (HW, Cm)
            slot_pos=self.maskmem_tpos_enc.flatten(1),  # (num_maskmem, Cm)
            pointer_pos=self._pointer_pos,
            dtype=dtype,
        )

    def _chunks(self, readouts: list[MemoryReadout], batch: int):
        """``(rows, readouts)`` groups that go through memory attention
        together: all at once off the CPU; on the CPU, a few objects of
        similar memory length at a time (shortest first), which keeps the
        working set in cache and padding short (measured in
        benchmarks/bench_objects.py)."""
        sizes = [readout_batch(r) for r in readouts]
        if sum(sizes) != batch:
            raise ValueError(f"the readouts hold {sum(sizes)} objects, the features {batch}")
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        limit = self.objects_per_chunk
        if limit is None:
            limit = CPU_OBJECTS_PER_CHUNK if self.device.type == "cpu" else batch
        if len(readouts) == 1 or limit >= batch:
            yield slice(None), readouts
            return
        order = sorted(range(len(readouts)), key=lambda i: (memory_length(readouts[i]), i))
        group: list[int] = []
        for i in order + [None]:
            if group and (i is None or sum(sizes[j] for j in group) + sizes[i] > limit):
                rows = torch.cat([torch.arange(starts[j], starts[j] + sizes[j]) for j in group])
                yield rows.to(self.device), [readouts[j] for j in group]
                group = []
            if i is not None:
                group.append(i)

    def _pointer_pos(self, readout: MemoryReadout) -> torch.Tensor:
        """Temporal encodings of a readout's object pointers: ``P x Cm``."""
        t = self.config.tracking
        offsets = [o for o, _ in readout.pointers]
        device = self.device
        if not t.add_tpos_enc_to_obj_ptrs:
            return torch.zeros(len(offsets), self.mem_dim, device=device)
        span = max(readout.max_pointers - 1, 1)
        rel = torch.tensor(offsets, dtype=torch.float32, device=device) / span
        tdim = self.hidden_dim if t.proj_tpos_enc_in_obj_ptrs else self.mem_dim
        return self.obj_ptr_tpos_proj(sine_1d(rel, tdim))  # (P, Cm)

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
        shared = one_frame(embedding)  # one frame for all objects: project it once
        feats = self.memory_encoder(embedding if shared is None else shared, m).features
        if self.no_obj_embed_spatial is not None:
            absent = 1.0 - (object_score_logits > 0).float()  # (B, 1)
            feats = feats + absent[..., None, None] * self.no_obj_embed_spatial[..., None, None]
        return feats

    # ------------------------------------------------------------------- step
    def track_step(
        self,
        features: FrameFeatures,
        *,
        readout: MemoryReadout | Sequence[MemoryReadout] | None,
        points: PointPrompts | None = None,
        mask: torch.Tensor | None = None,
        prev_logits: torch.Tensor | None = None,
        encode_memory: bool = True,
    ) -> StepOutput:
        """Segment one frame for a batch of objects.

        ``readout`` is the memory to read (``None`` marks an initial
        conditioning frame: no memory), one for all objects or a sequence
        of readouts of different memories, batched together (see
        :meth:`condition`). ``points`` and ``mask`` are this
        frame's prompts; ``prev_logits`` (``B x 1 x 4S x 4S``) are earlier
        logits fed back with correction clicks.
        """
        if mask is not None and self.config.tracking.use_mask_input_as_output_without_sam:
            head = self.mask_as_output(features, mask)
            memory = self._step_memory(features, head, points, encode_memory)
            return StepOutput(head, memory)
        pix = self.condition(features.embedding, readout)
        mask_input = prev_logits if mask is None else mask
        multimask = self.use_multimask(readout is None, points)
        b = pix.shape[0]
        step = b if points is not None or mask_input is not None else self._head_chunk(b)
        heads, memories = [], []
        for start in range(0, b, step):
            rows = slice(start, start + step)
            part = features if step == b else _rows(features, rows)
            head = self.run_heads(
                pix[rows], part.high_res, points=points, mask_input=mask_input, multimask=multimask
            )
            heads.append(head)
            memories.append(self._step_memory(part, head, points, encode_memory))
        if len(heads) == 1:
            return StepOutput(heads[0], memories[0])
        head = HeadOutput(*(torch.cat(parts) for parts in zip(*heads)))
        memory = None if memories[0] is None else torch.cat(memories)
        return StepOutput(head, memory)

    def _head_chunk(self, batch: int) -> int:
        """Objects decoded and encoded into memory at once: on the CPU a few
        (a 32-object batch took twice as long as chunks of 4, measured at
        512 px: its 32-128 MB activations fall out of cache), else all."""
        return CPU_OBJECTS_PER_HEAD_CHUNK if self.device.type == "cpu" else batch

    def _step_memory(self, features, head, points, encode_memory) -> torch.Tensor | None:
        if not encode_memory or self.num_maskmem == 0:
            return None
        return self.encode_memory(
            features.embedding, head.high_res, head.object_score_logits, from_points=points is not None
        )


def _rows(features: FrameFeatures, rows: slice) -> FrameFeatures:
    hr = None if features.high_res is None else tuple(x[rows] for x in features.high_res)
    return FrameFeatures(features.embedding[rows], hr)
