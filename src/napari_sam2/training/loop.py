"""Train a small SAM 2 on synthetic microscopy, following SAM 2's recipe:
a first prompt (click, box or mask) on the first frame with corrective
clicks, then frames tracked through memory; focal + dice on the best of the
candidate masks, IoU and object-score losses; AdamW with warm-up and cosine
decay."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoints import save_checkpoint
from ..config import load_config
from ..model import FrameFeatures, build_model, read_memory
from .data import TrainSequence, sample_sequence
from .evaluate import evaluate
from .losses import sam_losses
from .prompts import correction_click, first_click, noisy_box, to_prompts


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
    eval_every: int = 250
    log_every: int = 10
    threads: int = 1  # one thread: faster than two on a shared 2-core machine
    init: str = ""  # start from this checkpoint (e.g. to continue a run)


class _Entry(NamedTuple):
    features: torch.Tensor
    obj_ptr: torch.Tensor


def _frame(feats: FrameFeatures, rows) -> FrameFeatures:
    hr = None if feats.high_res is None else tuple(h[rows] for h in feats.high_res)
    return FrameFeatures(feats.embedding[rows], hr)


def _lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def _upsampled(low: torch.Tensor, size: int) -> np.ndarray:
    up = F.interpolate(low.detach().float(), size=(size, size), mode="bilinear", align_corners=False)
    return (up[0, 0] > 0).cpu().numpy()


def sequence_loss(model, batch: list[TrainSequence], cfg: TrainConfig, rng: np.random.Generator):
    """Loss of one batch of sequences; returns (total, dict of parts)."""
    t_len = cfg.num_frames
    s = model.image_size
    images = torch.cat([seq.images for seq in batch], dim=0)  # (B*T, 3, S, S)
    feats = model.encode_image(images)
    terms, parts = [], {"focal": 0.0, "dice": 0.0, "iou": 0.0, "score": 0.0}
    n_terms = 0

    def add(head, target):
        nonlocal n_terms
        lp = sam_losses(head.multimask_logits, head.ious, head.object_score_logits, target)
        terms.append(lp.total)
        for key in parts:
            parts[key] += float(getattr(lp, key))
        n_terms += 1

    if cfg.loss_size != s:
        batch = [
            seq._replace(masks=(F.interpolate(seq.masks, size=(cfg.loss_size,) * 2, mode="bilinear",
                                              align_corners=False) >= 0.5).float())
            for seq in batch
        ]
    owners: list[int] = []  # batch row of each object
    cond_feats, cond_ptrs = [], []
    for b, seq in enumerate(batch):
        f0 = _frame(feats, [b * t_len])
        for k in range(seq.masks.shape[1]):
            gt = seq.masks[0, k]
            gt_np = gt.numpy() > 0
            target = gt[None, None]
            scale = s / gt.shape[-1]  # loss-resolution pixels -> model pixels
            kind = rng.uniform()
            if kind < cfg.p_mask:
                full = F.interpolate(target, size=(s, s), mode="nearest")
                step = model.track_step(f0, readout=None, mask=full, encode_memory=False)
                head, from_points = step.head, False
            else:
                if kind < cfg.p_mask + cfg.p_box:
                    box = noisy_box(gt_np, rng) * scale
                    coords, labels = [box[:2].tolist(), box[2:].tolist()], [2, 3]
                else:
                    coords, labels = [[c * scale for c in first_click(gt_np, rng)]], [1]
                points = to_prompts(coords, labels, images.device)
                head = model.track_step(f0, readout=None, points=points, encode_memory=False).head
                add(head, target)
                for _ in range(int(rng.integers(0, cfg.max_corrections + 1))):
                    click = correction_click(_upsampled(head.low_res, gt.shape[-1]), gt_np, rng)
                    if click is None:
                        break
                    coords.append([c * scale for c in click[0]])
                    labels.append(click[1])
                    points = to_prompts(coords, labels, images.device)
                    head = model.track_step(
                        f0, readout=None, points=points, prev_logits=head.low_res.detach(),
                        encode_memory=False,
                    ).head
                    add(head, target)
                from_points = True
            memory = model.encode_memory(
                f0.embedding, head.high_res, head.object_score_logits, from_points=from_points
            )
            owners.append(b)
            cond_feats.append(memory)
            cond_ptrs.append(head.obj_ptr)

    cond = {0: _Entry(torch.cat(cond_feats), torch.cat(cond_ptrs))}
    recent: dict[int, _Entry] = {}
    # a virtual stack length, so pointer offsets are scaled as in real stacks
    virtual_len = int(rng.integers(t_len, 41))
    targets = torch.cat([seq.masks for seq in batch], dim=1)  # (T, N, S, S)
    for t in range(1, t_len):
        ft = _frame(feats, [b * t_len + t for b in owners])
        readout = read_memory(t, cond, recent, config=model.config.tracking, num_frames=virtual_len, reverse=False)
        step = model.track_step(ft, readout=readout)
        add(step.head, targets[t][:, None])
        recent[t] = _Entry(step.memory, step.head.obj_ptr)

    total = torch.stack(terms).mean()
    return total, {k: v / max(n_terms, 1) for k, v in parts.items()}


def train(cfg: TrainConfig, out_dir: str | Path, *, log=print) -> Path:
    """Train and save ``demo.pt`` (the best evaluated checkpoint) and
    ``train_log.jsonl`` in ``out_dir``; returns the checkpoint path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = build_model(load_config(cfg.config))
    if cfg.init:
        from ..checkpoints import load_model

        model.load_state_dict(load_model(cfg.init, device="cpu").state_dict())
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    size = model.image_size
    pool: list[TrainSequence] = []

    def draw() -> TrainSequence:
        while True:
            seq = sample_sequence(
                rng, image_size=size, num_frames=cfg.num_frames,
                max_objects=cfg.max_objects, zstack_fraction=cfg.zstack_fraction,
            )
            if seq is not None:
                return seq

    while len(pool) < cfg.pool_size:
        pool.append(draw())
    log_path = out / "train_log.jsonl"
    best, best_path = -1.0, out / "demo.pt"
    started = time.time()
    with log_path.open("w") as log_file:
        log_file.write(json.dumps({"config": asdict(cfg)}) + "\n")
        for step in range(cfg.steps):
            for _ in range(cfg.refresh_per_step):
                pool[int(rng.integers(len(pool)))] = draw()
            batch = [pool[i] for i in rng.choice(len(pool), size=cfg.batch_size, replace=False)]
            for group in opt.param_groups:
                group["lr"] = _lr_at(step, cfg)
            loss, parts = sequence_loss(model, batch, cfg, rng)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if step % cfg.log_every == 0:
                rec = {"step": step, "loss": float(loss.detach()), **parts, "lr": _lr_at(step, cfg),
                       "elapsed_s": round(time.time() - started, 1)}
                log_file.write(json.dumps(rec) + "\n")
                log_file.flush()
                log(json.dumps(rec))
            if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
                q = evaluate(model)
                score = q.click_iou + q.tracking_iou + q.zstack_dice
                rec = {"step": step + 1, "eval": {"click_iou": q.click_iou, "tracking_iou": q.tracking_iou,
                       "zstack_dice": q.zstack_dice}, "elapsed_s": round(time.time() - started, 1)}
                if score > best:
                    best = score
                    save_checkpoint(model, best_path)
                    rec["saved"] = str(best_path)
                save_checkpoint(model, out / "last.pt")
                log_file.write(json.dumps(rec) + "\n")
                log_file.flush()
                log(json.dumps(rec))
        log_file.write(json.dumps({"done": True, "wall_s": round(time.time() - started, 1), "best": best}) + "\n")
    return best_path
