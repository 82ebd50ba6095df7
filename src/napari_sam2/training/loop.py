"""Train a small SAM 2 on synthetic microscopy, following SAM 2's recipe:
a first prompt (click, box or mask) on the first frame with corrective
clicks, then frames tracked through memory; focal + dice on the best of the
candidate masks, IoU and object-score losses; AdamW with warm-up and cosine
decay."""

from __future__ import annotations

import copy
import json
import math
import multiprocessing
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoints import save_checkpoint
from ..config import load_config
from ..engine import SessionOptions
from ..engine.labels import exclusive_logits
from ..model import FrameFeatures, PointPrompts, build_model, read_memory
from ..model.device import resolve_device
from .data import TrainSequence, resized_masks, sample_sequence
from .evaluate import VALIDATION_SEEDS, evaluate
from .losses import sam_losses
from .prompts import correction_click, first_click, noisy_box


@dataclass(frozen=True)
class TrainConfig:
    config: str = "demo"
    steps: int = 4000
    batch_size: int = 4
    num_frames: int = 4
    max_objects: int = 3
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup: int = 300
    seed: int = 0
    zstack_fraction: float = 0.35
    p_box: float = 0.3
    p_mask: float = 0.15
    max_corrections: int = 2
    pool_size: int = 16  # generated sequences kept and reused
    refresh_per_step: int = 2  # new sequences drawn into the pool each step
    loss_size: int = 128  # masks are compared with the ground truth at this size
    foreground_aux: bool = True  # auxiliary all-objects loss on the stride-4 features
    dice_weight: float = 5.0  # SAM 2 uses 1; see losses.py
    aligned_init_gain: float = 2.0  # see align_prompt_attention (0 = PyTorch's default init)
    eval_every: int = 250
    log_every: int = 10
    threads: int = 1  # one thread: faster than two on a shared 2-core machine
    init: str = ""  # start from this checkpoint (e.g. to continue a run)
    # keep the image encoder (and the decoder's high-resolution convolutions)
    # as they are: a second phase that teaches tracking, several times faster
    freeze_image_encoder: bool = False
    # > 0: align_memory_attention with this gain before training (a tracking phase
    # that starts from a model trained on single frames)
    align_memory_gain: float = 0.0
    # dropout in memory attention while training (SAM 2 trains with 0.1; the
    # demo's tracking phase used 0, so that per-object noise does not drown
    # the memory signal while it is still small; not measured on its own)
    memory_dropout: float = 0.0
    # keep the memory encoder's image branch as it is (implied by
    # align_memory_gain > 0; for continuing a tracking phase)
    freeze_memory_image_branch: bool = False
    # learning rate of the image encoder (and the decoder's high-resolution
    # convolutions) relative to ``lr``: a phase that trains everything at
    # once moves the features the memory and decoder were trained on slowly
    encoder_lr_scale: float = 1.0
    # > 0: evaluate and save an exponential moving average of the weights
    # with this decay per step (the raw weights jump around at these batch
    # sizes: validation tracking IoU moved by 0.05-0.1 between evaluations)
    ema: float = 0.0
    # decode three candidate masks for a single click and pick one by the
    # predicted IoU, as Meta's configs do (the demo's first four phases did);
    # the demo config decodes one mask per prompt
    multimask_decoding: bool = False
    # > 0: stop after this many steps (evaluated and saved there); the
    # learning-rate schedule still runs over ``steps``
    stop_after: int = 0
    # > 1: time-lapse sequences take every k-th frame, k from 1 to this (see
    # sample_sequence): the demo's phases 2-6 trained on 4-6 consecutive
    # frames, and lost cells that moved or changed over 20 (the tracked
    # mask stayed where the prompt had put it)
    max_frame_stride: int = 1
    # > 0: train at this input size instead of the config's (the demo's
    # cells are ~14 px in radius: at 256 px input the decoder's stride-4
    # masks resolve their outlines to ~4 px)
    image_size: int = 0
    # where the model trains ("cpu", "cuda", ...); validation runs there too,
    # in float32 like the CPU tests
    device: str = "cpu"
    # > 0: generate training sequences in this many worker processes (on a
    # GPU one process cannot make them as fast as they are used); each
    # sequence gets its own seed from the run's generator, so a run depends
    # on the seed alone, not on the number of workers (but differs from a
    # run with 0 workers)
    workers: int = 0
    # also keep the checkpoint of every evaluation (``step{N}.pt``)
    keep_every_eval: bool = False
    # > 0: end (evaluated and saved) after the first step past this many
    # minutes of wall time (for a machine lent for a fixed time)
    time_limit_min: float = 0.0
    # the chance that a sequence is prompted on its middle frame and tracked
    # both ways, forward first, as ``propagate("both")`` does: the backward
    # pass then also reads the forward pass's memories (models trained only
    # one way lost whole nuclei there: a z-stack's backward pass read the
    # forward frames where the nucleus had ended, and found nothing)
    p_both: float = 0.0
    # which frame those sequences prompt: "middle", or "random" (any but the
    # first and last), so that the backward pass's first frame may read up
    # to ``num_frames - 2`` forward memories, as a z-stack's does in
    # ``propagate("both")`` when a nucleus ends just after the middle slice;
    # or "second" (frame 1): the one backward frame then reads forward
    # memories in every memory slot, the oldest ones too, as the first
    # backward slice of a long z-stack does (measured: a 512 px model lost a
    # nucleus there only because of the forward slices in its two oldest
    # slots, where the nucleus had ended; dropping those two gave Dice 0.95,
    # and sequences prompted on frames 2-5 leave those slots empty)
    both_prompt: str = "middle"
    # how many validation z-stacks (3 nuclei each) the evaluations measure
    eval_zstacks: int = 4
    # the chance that a sequence's scene is drawn near the shipped samples'
    # parameters (data.sample_sequence) rather than over the wide range
    samplelike_fraction: float = 0.0
    # encode each tracked frame's memories as the engine does with the
    # config's non_overlap_masks_for_mem_enc: every object of a sequence
    # without the pixels another object of it claims more strongly (the
    # demo's phases 1-6 encoded each object's whole mask, while the engine
    # encodes exclusive ones)
    exclusive_memories: bool = False


class _Entry(NamedTuple):
    features: torch.Tensor
    obj_ptr: torch.Tensor


def _frame(feats: FrameFeatures, rows) -> FrameFeatures:
    hr = None if feats.high_res is None else tuple(h[rows] for h in feats.high_res)
    return FrameFeatures(feats.embedding[rows], hr)


def align_prompt_attention(model, gain: float) -> None:
    """Initialise the decoder's token<->image attentions with equal query and
    key projections (orthogonal, scaled by ``gain``).

    Queries and keys then compare the prompts' position encodings with the
    image's directly, so a click attends to the image where it was made from
    the first step. With PyTorch's default init a small model trained from
    scratch first learns prompt-independent masks and stays there for
    hundreds of steps (measured: masks of two different clicks overlapping
    ~100% after 200 steps, vs ~1% with this init).
    """
    tr = model.mask_decoder.transformer
    attentions = [tr.final_attn_token_to_image]
    for layer in tr.layers:
        attentions += [layer.cross_attn_token_to_image, layer.cross_attn_image_to_token]
    with torch.no_grad():
        for att in attentions:
            torch.nn.init.orthogonal_(att.q_proj.weight, gain=gain)
            att.k_proj.weight.copy_(att.q_proj.weight)
            att.q_proj.bias.zero_()
            att.k_proj.bias.zero_()


def align_memory_attention(model, gain: float, embeddings: torch.Tensor) -> None:
    """Initialise the memory path of a model trained on single frames so
    that tracking can be learned quickly (before a tracking phase).

    ``embeddings``: ``B x C x S x S`` image features of real frames.

    1. Memory attention starts as (nearly) the identity: the residual
       branches (self-attention, cross-attention and feed-forward outputs)
       are zero and the final layer norm is set to the features' per-channel
       mean and spread, so a tracked frame's features look to the decoder
       like the prompted frame's. From PyTorch's default init they are an
       unrelated transform (measured: changed by 99% relative), and the
       decoder unlearns the memory rather than learning to read it.
    2. The memory encoder's image branch (``pix_feat_proj``) is scaled to a
       tenth of the mask branch's output (and ``train`` keeps it frozen):
       after single-frame training the image features are ~20x larger than
       the masks' encoding, and the memories of different objects differed
       by 0.2% (measured). With it, tracking IoU on held-out sequences went
       from 0.06 to 0.41 in the first 50 steps of the tracking phase.
    3. The memory cross-attentions start local: every query and key is the
       same constant vector (bias ``gain``, zero weights), so with the keys'
       rotary encoding a pixel attends to the memories at its own place and
       the (zero-initialised) cross-attention output gets a gradient that
       carries each object's mask there. Its values are scaled to the
       features' spread (~20 per element here): Adam's steps have a fixed
       size, and with small values the memory stayed invisible next to the
       features for hundreds of steps. (Measured with a random output
       projection: features of different objects differ 8x more with gain
       4-8 than with the near-uniform attention of gain 1.)
    """
    enc = model.memory_encoder
    with torch.no_grad():
        s = model.image_size
        masks = torch.full((len(embeddings), 1, s, s), -10.0)
        masks[:, :, s // 4: s // 2, s // 4: s // 2] = 10.0  # any mask: the branch's scale
        factor = 0.1 * float(enc.mask_downsampler(masks).std() / enc.pix_feat_proj(embeddings).std())
        enc.pix_feat_proj.weight.mul_(factor)
        enc.pix_feat_proj.bias.mul_(factor)
        tokens = embeddings.flatten(2).transpose(1, 2).reshape(-1, embeddings.shape[1])  # (B*HW, C)
        model.memory_attention.norm.weight.copy_(tokens.std(0))
        model.memory_attention.norm.bias.copy_(tokens.mean(0))
        memory = enc(embeddings, masks).features.flatten(2).transpose(1, 2)  # (B, HW, Cm)
        for layer in model.memory_attention.layers:
            att = layer.cross_attn_image
            # every query and key the same constant: with the rotary encoding
            # the score then falls with the distance between the two pixels
            same = torch.full_like(att.q_proj.bias, gain)
            for proj in (att.q_proj, att.k_proj):
                proj.weight.zero_()
                proj.bias.copy_(same)
            for out in (layer.self_attn.out_proj, att.out_proj, layer.linear2):
                out.weight.zero_()
                out.bias.zero_()
            # values as large as the features: an optimizer step on the (zero)
            # output projection then moves the features by a visible amount
            factor = float(tokens.std() / att.v_proj(memory).std())
            att.v_proj.weight.mul_(factor)
            att.v_proj.bias.mul_(factor)


def update_ema(average: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """``average <- decay * average + (1 - decay) * model``, for every
    parameter and floating-point buffer."""
    with torch.no_grad():
        for a, p in zip(average.state_dict().values(), model.state_dict().values()):
            if a.is_floating_point():
                a.mul_(decay).add_(p.detach(), alpha=1.0 - decay)


def set_memory_dropout(model, p: float) -> None:
    """Dropout probability ``p`` everywhere in memory attention (training only)."""
    for module in model.memory_attention.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = p
        elif hasattr(module, "dropout") and isinstance(module.dropout, float):
            module.dropout = p


def _lr_at(step: int, cfg) -> float:
    """Learning rate at ``step``: linear warm-up, then cosine down to 5 %
    (``cfg``: a TrainConfig or AutoTrainConfig: its lr, warmup and steps)."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def _upsampled(low: torch.Tensor, size: int) -> np.ndarray:
    up = F.interpolate(low.detach().float(), size=(size, size), mode="bilinear", align_corners=False)
    return (up[0, 0] > 0).cpu().numpy()


def _batched_points(coords: list[list], labels: list[list], device) -> PointPrompts:
    return PointPrompts(
        torch.tensor(coords, dtype=torch.float32, device=device),
        torch.tensor(labels, dtype=torch.int32, device=device),
    )


def sequence_loss(model, batch: list[TrainSequence], cfg: TrainConfig, rng: np.random.Generator,
                  probe: torch.nn.Module | None = None):
    """Loss of one batch of sequences; returns (total, dict of parts).

    ``probe``: an optional 1x1 convolution on the stride-4 decoder features
    that learns every object's pixels (an auxiliary loss that teaches the
    image encoder what a cell is early on; it is not part of the model)."""
    t_len = cfg.num_frames
    s = model.image_size
    device = next(model.parameters()).device
    images = torch.cat([seq.images for seq in batch], dim=0).to(device)  # (B*T, 3, S, S)
    with torch.set_grad_enabled(not cfg.freeze_image_encoder):
        feats = model.encode_image(images)
    terms, parts = [], {"focal": 0.0, "dice": 0.0, "iou": 0.0, "score": 0.0}
    n_terms = 0

    def add(head, target):
        nonlocal n_terms
        lp = sam_losses(head.multimask_logits, head.ious, head.object_score_logits, target,
                        dice_weight=cfg.dice_weight)
        terms.append(lp.total)
        for key in parts:
            parts[key] += float(getattr(lp, key))
        n_terms += 1

    size = cfg.loss_size
    masks = [resized_masks(seq.masks, size) for seq in batch]  # each (T, K, L, L), on the CPU (for the clicks)
    # the prompted frame (see TrainConfig.p_both): the middle one, with the
    # objects seen there (at least 16 loss pixels), if every sequence has
    # one; drawn only when asked for
    p = 0
    if cfg.p_both > 0 and t_len >= 3 and rng.uniform() < cfg.p_both:
        mid = {"middle": t_len // 2, "second": 1}.get(cfg.both_prompt) or int(rng.integers(1, t_len - 1))
        seen = [m[mid].flatten(1).sum(1) >= 16 for m in masks]
        if all(bool(k.any()) for k in seen):
            p = mid
            masks = [m[:, k] for m, k in zip(masks, seen)]
    aux = None
    if probe is not None and feats.high_res is not None:
        fg = torch.cat([resized_masks(seq.foreground, size) for seq in batch], dim=0).to(device)  # (B*T, 1, L, L)
        logit = F.interpolate(probe(feats.high_res[0]), size=(size, size), mode="bilinear", align_corners=False)
        aux = F.binary_cross_entropy_with_logits(logit, fg)
        terms.append(aux)
    scale = s / size  # loss-resolution pixels -> model pixels

    # objects, in batch order; the first frame is prompted per object
    owners = [b for b, m in enumerate(masks) for _ in range(m.shape[1])]
    gts = torch.cat([m[p] for m in masks], dim=0)  # (N, L, L), CPU
    gts_dev = gts.to(device)
    n = len(owners)
    kinds = rng.uniform(size=n)
    heads: list = [None] * n
    mask_objs = [i for i in range(n) if kinds[i] < cfg.p_mask]
    box_objs = [i for i in range(n) if cfg.p_mask <= kinds[i] < cfg.p_mask + cfg.p_box]
    click_objs = [i for i in range(n) if kinds[i] >= cfg.p_mask + cfg.p_box]
    if mask_objs:
        full = F.interpolate(gts_dev[mask_objs][:, None], size=(s, s), mode="nearest")
        f0 = _frame(feats, [owners[i] * t_len + p for i in mask_objs])
        head = model.track_step(f0, readout=None, mask=full, encode_memory=False).head
        for j, i in enumerate(mask_objs):
            heads[i] = _row(head, j)
    for group, first in ((box_objs, "box"), (click_objs, "click")):
        if not group:
            continue
        coords, labels = [], []
        for i in group:
            gt_np = gts[i].numpy() > 0
            if first == "box":
                box = noisy_box(gt_np, rng) * scale
                coords.append([box[:2].tolist(), box[2:].tolist()])
                labels.append([2, 3])
            else:
                coords.append([[c * scale for c in first_click(gt_np, rng)]])
                labels.append([1])
        members = list(range(len(group)))
        prev = None
        for _ in range(1 + int(rng.integers(0, cfg.max_corrections + 1))):
            rows = [group[j] for j in members]
            f0 = _frame(feats, [owners[i] * t_len + p for i in rows])
            points = _batched_points([coords[j] for j in members], [labels[j] for j in members], device)
            head = model.track_step(f0, readout=None, points=points, prev_logits=prev, encode_memory=False).head
            add(head, gts_dev[rows][:, None])
            for k, i in enumerate(rows):
                heads[i] = _row(head, k)
            # corrective clicks where the mask is still wrong
            keep, keep_rows = [], []
            for k, j in enumerate(members):
                i = group[j]
                click = correction_click(_upsampled(heads[i].low_res, size), gts[i].numpy() > 0, rng)
                if click is not None:
                    coords[j].append([c * scale for c in click[0]])
                    labels[j].append(click[1])
                    keep.append(j)
                    keep_rows.append(k)
            if not keep:
                break
            prev = head.low_res.detach()[keep_rows]
            members = keep
    # while training, memories always come from sigmoid masks (no binarising)
    f0 = _frame(feats, [b * t_len + p for b in owners])
    cond_memory = model.encode_memory(
        f0.embedding,
        torch.cat([h.high_res for h in heads]),
        torch.cat([h.object_score_logits for h in heads]),
        from_points=False,
    )
    cond_feats = [cond_memory]
    cond_ptrs = [torch.cat([h.obj_ptr for h in heads])]

    cond = {p: _Entry(torch.cat(cond_feats), torch.cat(cond_ptrs))}
    recent: dict[int, _Entry] = {}
    # a virtual stack length, so pointer offsets are scaled as in real stacks
    virtual_len = int(rng.integers(t_len, 41))
    targets = torch.cat(masks, dim=1).to(device)  # (T, N, L, L)
    order = [(t, False) for t in range(p + 1, t_len)] + [(t, True) for t in range(p - 1, -1, -1)]
    for t, reverse in order:
        ft = _frame(feats, [b * t_len + t for b in owners])
        readout = read_memory(t, cond, recent, config=model.config.tracking, num_frames=virtual_len, reverse=reverse)
        step = model.track_step(ft, readout=readout, encode_memory=not cfg.exclusive_memories)
        add(step.head, targets[t][:, None])
        memory = step.memory
        if cfg.exclusive_memories:
            memory = _exclusive_memories(model, ft.embedding, step.head, owners)
        recent[t] = _Entry(memory, step.head.obj_ptr)

    total = torch.stack(terms).mean()
    out = {k: v / max(n_terms, 1) for k, v in parts.items()}
    if aux is not None:
        out["foreground"] = float(aux.detach())
    return total, out


def _exclusive_memories(model, embedding: torch.Tensor, head, owners: list[int]) -> torch.Tensor:
    """Memories of a tracked frame for objects of several sequences (row
    ``i`` belongs to sequence ``owners[i]``), each encoded from its mask
    with the pixels another object of its own sequence claims more strongly
    pushed to background."""
    highs = head.high_res
    exclusive = torch.empty_like(highs)
    for b in sorted(set(owners)):
        rows = [i for i, o in enumerate(owners) if o == b]
        exclusive[rows] = exclusive_logits(highs[rows])
    return model.encode_memory(embedding, exclusive, head.object_score_logits, from_points=False)


def _row(head, i: int):
    """Object ``i`` of a batched head output, keeping the batch dimension."""
    return type(head)(*(None if t is None else t[i:i + 1] for t in head))  # candidates may be None


def _until_found(rng: np.random.Generator, kwargs: dict) -> TrainSequence:
    while True:
        seq = sample_sequence(rng, **kwargs)
        if seq is not None:
            return seq


def _draw_until_found(seed: int, kwargs: dict) -> tuple:
    """A training sequence from its own seed, as plain arrays (run in a
    worker process; arrays pickle more simply than tensors)."""
    seq = _until_found(np.random.default_rng(seed), kwargs)
    return tuple(x.numpy() if isinstance(x, torch.Tensor) else x for x in seq)


def _worker_init() -> None:
    torch.set_num_threads(1)


class _Sequences:
    """Training sequences drawn with ``rng``: in this process, or ahead of
    use in ``workers`` processes (one seed per sequence, drawn here in
    order, so what a run sees depends on the seed alone)."""

    def __init__(self, rng: np.random.Generator, workers: int, **kwargs) -> None:
        self.rng, self.kwargs = rng, kwargs
        self.executor = None
        if workers > 0:
            self.executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                                initializer=_worker_init)
            self.pending = deque(self._submit() for _ in range(4 * workers))

    def _submit(self):
        return self.executor.submit(_draw_until_found, int(self.rng.integers(2**63)), self.kwargs)

    def draw(self) -> TrainSequence:
        if self.executor is None:
            return _until_found(self.rng, self.kwargs)
        arrays = self.pending.popleft().result()
        self.pending.append(self._submit())
        return TrainSequence(*(torch.from_numpy(x) if isinstance(x, np.ndarray) else x for x in arrays))

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)


def train(cfg: TrainConfig, out_dir: str | Path, *, log=print) -> Path:
    """Train and save ``demo.pt`` (the best evaluated checkpoint) and
    ``train_log.jsonl`` in ``out_dir``; returns the checkpoint path."""
    out = Path(out_dir)
    if cfg.both_prompt not in ("middle", "random", "second"):
        raise ValueError(f"both_prompt must be 'middle', 'random' or 'second', got {cfg.both_prompt!r}")
    if not 1 <= cfg.eval_zstacks <= len(VALIDATION_SEEDS):
        raise ValueError(f"eval_zstacks must be 1 to {len(VALIDATION_SEEDS)} (the validation seeds), "
                         f"got {cfg.eval_zstacks}")
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    overrides = {}
    if cfg.multimask_decoding:
        overrides = {"tracking": {"multimask_output_in_sam": True}, "decoder": {"dynamic_multimask_via_stability": True}}
    if cfg.image_size > 0:
        overrides["image_size"] = cfg.image_size
    model = build_model(load_config(cfg.config, **overrides))
    if cfg.init:
        from ..checkpoints import load_model

        model.load_state_dict(load_model(cfg.init, device="cpu").state_dict())
    elif cfg.aligned_init_gain > 0:
        align_prompt_attention(model, cfg.aligned_init_gain)
    device = resolve_device(cfg.device)
    model.to(device)
    model.train()
    dim = model.config.neck.d_model
    encoder_modules = [model.image_encoder, model.mask_decoder.conv_s0, model.mask_decoder.conv_s1]
    frozen_modules = []
    if cfg.freeze_image_encoder:
        frozen_modules += encoder_modules
    if cfg.align_memory_gain > 0 or cfg.freeze_memory_image_branch:
        # the image features are large (~40 per element after single-frame
        # training): Adam's fixed-size steps on this projection swamped the
        # masks in the memory within 50 steps (measured: image branch 0.04 ->
        # 11.5 std, masks 0.65), so it keeps its scaled-down init
        frozen_modules.append(model.memory_encoder.pix_feat_proj)
    frozen = {id(p) for m in frozen_modules for p in m.parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) not in frozen)
    use_probe = cfg.foreground_aux and not cfg.freeze_image_encoder  # it teaches the encoder only
    probe = torch.nn.Conv2d(dim // 8, 1, kernel_size=1).to(device) if use_probe else None
    encoder_side = {id(p) for m in encoder_modules for p in m.parameters()}
    params = [p for p in model.parameters() if id(p) not in frozen]
    params += list(probe.parameters()) if probe is not None else []
    groups = [
        {"params": [p for p in params if id(p) not in encoder_side], "lr_scale": 1.0},
        {"params": [p for p in params if id(p) in encoder_side], "lr_scale": cfg.encoder_lr_scale},
    ]
    opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.lr, weight_decay=cfg.weight_decay)
    size = model.image_size
    sequences = _Sequences(rng, cfg.workers, image_size=size, num_frames=cfg.num_frames,
                           max_objects=cfg.max_objects, zstack_fraction=cfg.zstack_fraction,
                           max_stride=cfg.max_frame_stride, samplelike_fraction=cfg.samplelike_fraction)
    try:
        return _train_loop(cfg, out, model, probe, params, opt, sequences, rng, log)
    finally:
        sequences.close()


def _train_loop(cfg, out, model, probe, params, opt, sequences, rng, log) -> Path:
    draw = sequences.draw
    device = next(model.parameters()).device
    pool = [draw() for _ in range(cfg.pool_size)]
    set_memory_dropout(model, cfg.memory_dropout)
    if cfg.align_memory_gain > 0:
        with torch.no_grad():
            sample = torch.cat([seq.images for seq in pool[:8]]).to(device)
            align_memory_attention(model, cfg.align_memory_gain, model.encode_image(sample).embedding)
    average = None
    if cfg.ema > 0:
        average = copy.deepcopy(model)
        for p in average.parameters():
            p.requires_grad_(False)
    kept = model if average is None else average  # what is evaluated and saved
    log_path = out / "train_log.jsonl"
    best, best_path = -1.0, out / "demo.pt"
    started = time.time()
    with log_path.open("w") as log_file:
        log_file.write(json.dumps({"config": asdict(cfg)}) + "\n")
        last_step = min(cfg.stop_after, cfg.steps) if cfg.stop_after > 0 else cfg.steps
        for step in range(last_step):
            for _ in range(cfg.refresh_per_step):
                pool[int(rng.integers(len(pool)))] = draw()
            batch = [pool[i] for i in rng.choice(len(pool), size=cfg.batch_size, replace=False)]
            for group in opt.param_groups:
                group["lr"] = _lr_at(step, cfg) * group["lr_scale"]
            loss, parts = sequence_loss(model, batch, cfg, rng, probe)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            if average is not None:
                update_ema(average, model, cfg.ema)
            if step % cfg.log_every == 0:
                rec = {"step": step, "loss": float(loss.detach()), **parts, "lr": _lr_at(step, cfg),
                       "elapsed_s": round(time.time() - started, 1)}
                log_file.write(json.dumps(rec) + "\n")
                log_file.flush()
                log(json.dumps(rec))
            out_of_time = cfg.time_limit_min > 0 and time.time() - started > 60 * cfg.time_limit_min
            if (step + 1) % cfg.eval_every == 0 or step + 1 == last_step or out_of_time:
                q = evaluate(kept, zstack_seeds=VALIDATION_SEEDS[:cfg.eval_zstacks], options=SessionOptions(autocast=False))
                score = q.click_iou + q.tracking_iou + q.zstack_dice
                rec = {"step": step + 1, "eval": {"click_iou": q.click_iou, "tracking_iou": q.tracking_iou,
                       "zstack_dice": q.zstack_dice}, "elapsed_s": round(time.time() - started, 1)}
                if score > best:
                    best = score
                    save_checkpoint(kept, best_path)
                    rec["saved"] = str(best_path)
                save_checkpoint(kept, out / "last.pt")
                if cfg.keep_every_eval:
                    save_checkpoint(kept, out / f"step{step + 1}.pt")
                log_file.write(json.dumps(rec) + "\n")
                log_file.flush()
                log(json.dumps(rec))
                if out_of_time:
                    break
        log_file.write(json.dumps({"done": True, "wall_s": round(time.time() - started, 1), "best": best}) + "\n")
    return best_path
