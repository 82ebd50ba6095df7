"""Teach the demo model segment-everything: the three multimask outputs and
the predicted-IoU head, on single frames prompted by points anywhere.

Segment-everything prompts a grid of points over the whole image, decodes
three candidate masks per point and ranks them by the predicted IoU (and
stability). The demo model was trained on one mask per click, near the
middle of the object, so its multimask outputs are poor for points near an
edge and its IoU head never learned to rank. This phase trains only

* the hypernetwork MLPs of the three multimask tokens (``mask tokens 1-3``)
  with the SAM loss on the best of the three (focal + dice), and
* the IoU head, on the IoU every candidate of a point inside an object
  actually has (points on the background are taught empty masks, which
  segment-everything drops by area),

with everything else frozen: the single-mask token, the object-score and
pointer tokens, the transformer, the memory and the image encoder keep
their weights, so clicking and tracking give exactly the numbers they gave
before (the single-mask output does not read the trained parts).

With ``train_transformer`` the decoder's two-way transformer and its IoU
and mask tokens train too (the IoU head can then learn from what the
transformer sees, not only from a token fixed for clicks). Clicks and
tracking read the transformer, so they are held by distillation instead of
by freezing: the single-mask logits, the single-mask token (the pointer's
input) and the object score are pulled towards the starting model's, for
clicks inside objects and for decoding without a prompt on features
conditioned on a memory (:func:`distillation_loss`). ``iou_target="best"``
teaches the IoU head every non-empty candidate's best IoU with any object
(what segment-everything ranks), not only the prompted object's.

Points: half drawn uniformly over the image (where the grid puts them),
half uniformly inside objects; each point's target is the object under it
(background: an empty mask). Scenes: the wide training draws, the
sample-like ones and a widened set (:func:`widened_timelapse_params`,
:func:`widened_zstack_params`) with small and dense nuclei, dim beside
bright, and thin z-stacks.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ..engine.frames import FrameSource
from ..model import PointPrompts
from ..synthetic import (
    make_timelapse,
    make_zstack,
    random_timelapse_params,
    random_zstack_params,
    samplelike_timelapse_params,
    samplelike_zstack_params,
)
from .data import HELD_OUT_SEED_BASE
from .loop import _lr_at  # warm-up then cosine, read from the config's lr, warmup and steps
from .losses import FOCAL_WEIGHT, dice_loss, focal_loss, mask_iou

MULTIMASK = range(1, 4)  # the decoder's multimask tokens (0 is the single-mask one)


@dataclass(frozen=True)
class AutoTrainConfig:
    init: str = "demo"  # checkpoint to start from (a name or a path)
    steps: int = 600
    images_per_step: int = 2
    points_per_image: int = 64
    inside_fraction: float = 0.5  # of the points drawn inside objects (the rest anywhere)
    lr: float = 3e-4
    warmup: int = 20
    weight_decay: float = 0.01
    dice_weight: float = 5.0  # as the click training (see losses.py)
    seed: int = 0
    zstack_fraction: float = 0.35
    widened_fraction: float = 0.4
    samplelike_fraction: float = 0.3
    pool_size: int = 24  # frames kept and reused
    refresh_per_step: int = 1  # new frames drawn into the pool each step
    loss_size: int = 128
    eval_every: int = 100
    eval_seeds: tuple[int, ...] = tuple(range(500, 506))  # training-range seeds (< HELD_OUT_SEED_BASE)
    threads: int = 1
    time_limit_min: float = 0.0  # > 0: end (evaluated, saved) after this many minutes
    keep_every_eval: bool = False  # also save ``step{N}.pt`` at every evaluation
    # also train the decoder's transformer and its IoU / mask tokens; the
    # click and tracking outputs are then held by distillation from the
    # starting model (see :func:`distillation_loss`)
    train_transformer: bool = False
    distill_weight: float = 1.0
    distill_objects: int = 8  # objects per frame for the tracking-like distillation
    # the IoU target of a candidate: "prompted" (IoU with the object under
    # its point, inside points only) or "best" (its best IoU with any object,
    # every non-empty candidate: what segment-everything ranks by)
    iou_target: str = "prompted"

    def __post_init__(self) -> None:
        for name in ("steps", "images_per_step", "points_per_image", "pool_size", "loss_size", "eval_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"AutoTrainConfig.{name} must be an integer >= 1, got {v!r}")
        for name in ("inside_fraction", "zstack_fraction", "widened_fraction", "samplelike_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"AutoTrainConfig.{name} must be in [0, 1], got {getattr(self, name)!r}")
        if self.iou_target not in ("prompted", "best"):
            raise ValueError(f"AutoTrainConfig.iou_target must be 'prompted' or 'best', got {self.iou_target!r}")
        if any(s >= HELD_OUT_SEED_BASE for s in self.eval_seeds):
            raise ValueError("AutoTrainConfig.eval_seeds must be training seeds (below HELD_OUT_SEED_BASE)")


class AutoFrame(NamedTuple):
    """``image``: ``1 x 3 x S x S`` model input; ``labels``: ``L x L`` int64
    object ids at the loss size (nearest), 0 background."""

    image: torch.Tensor
    labels: torch.Tensor


def widened_timelapse_params(rng: np.random.Generator):
    """What real fluorescence fields have and the wide draws lack: many
    (40-150) small (radius 3-8 px at 256 px) touching nuclei, and dim cells
    beside bright ones (a wide intensity spread)."""
    base = random_timelapse_params(rng)
    size = int(rng.choice([192, 256, 320]))
    dense = rng.uniform() < 0.6
    return dataclasses.replace(
        base,
        n_frames=1,
        height=size,
        width=size,
        radius=float(rng.uniform(3.0, 8.0) * size / 256) if dense else base.radius,
        n_cells=int(rng.integers(40, 151)) if dense else base.n_cells,
        max_cells=200,
        clustering=float(rng.uniform(0.5, 0.95)) if dense else base.clustering,
        signal_spread=float(rng.uniform(0.6, 1.1)),
    )


def widened_zstack_params(rng: np.random.Generator):
    """Thin z-stacks (a nucleus spans a few slices: large z steps), small
    and dense nuclei, dim beside bright."""
    base = random_zstack_params(rng)
    small = rng.uniform() < 0.5
    return dataclasses.replace(
        base,
        n_slices=int(rng.integers(8, 17)),
        z_step=float(rng.uniform(3.0, 6.0)),
        radius=float(rng.uniform(5.0, 9.0)) if small else base.radius,
        n_nuclei=int(rng.integers(25, 60)) if small else base.n_nuclei,
        signal_spread=float(rng.uniform(0.6, 1.1)),
    )


def draw_frame(rng: np.random.Generator, cfg: AutoTrainConfig, image_size: int) -> AutoFrame | None:
    """One training frame with every object's label, or None (no object)."""
    seed = int(rng.integers(0, HELD_OUT_SEED_BASE))
    zstack = rng.uniform() < cfg.zstack_fraction
    kind = rng.uniform()
    if zstack:
        pick = (widened_zstack_params if kind < cfg.widened_fraction
                else samplelike_zstack_params if kind < cfg.widened_fraction + cfg.samplelike_fraction
                else random_zstack_params)
        stack = make_zstack(pick(rng), seed=seed)
    else:
        if kind < cfg.widened_fraction:
            params = widened_timelapse_params(rng)
        else:
            pick = samplelike_timelapse_params if kind < cfg.widened_fraction + cfg.samplelike_fraction \
                else random_timelapse_params
            params = dataclasses.replace(pick(rng), n_frames=int(rng.integers(1, 8)))
        stack = make_timelapse(params, seed=seed)
    present = [i for i in range(len(stack.labels)) if stack.labels[i].any()]
    if not present:
        return None
    i = int(rng.choice(present))
    source = FrameSource(stack.image[i : i + 1])
    image = source.model_input(0, image_size)
    lab = torch.from_numpy(stack.labels[i].astype(np.int64))[None, None].float()
    labels = F.interpolate(lab, size=(cfg.loss_size, cfg.loss_size), mode="nearest")[0, 0].long()
    return AutoFrame(image, labels)


def sample_points(labels: torch.Tensor, n: int, inside_fraction: float, rng: np.random.Generator):
    """``n`` points ``(x, y)`` in loss pixels (float) and the object id under
    each: ``inside_fraction`` of them inside objects, the rest anywhere."""
    size = labels.shape[-1]
    fg = torch.nonzero(labels > 0)  # (K, 2) y, x
    n_in = int(round(n * inside_fraction)) if len(fg) else 0
    picks = fg[torch.from_numpy(rng.integers(0, len(fg), n_in))] if n_in else torch.zeros(0, 2, dtype=torch.long)
    anywhere = torch.from_numpy(rng.integers(0, size, (n - n_in, 2)))
    yx = torch.cat([picks, anywhere]).long()
    xy = yx.flip(-1).float() + torch.from_numpy(rng.uniform(0, 1, (n, 2))).float()  # within the pixel
    ids = labels[yx[:, 0], yx[:, 1]]
    return xy, ids


class AutoLoss(NamedTuple):
    total: torch.Tensor
    mask: float
    iou: float


def automatic_loss(model, frame: AutoFrame, xy: torch.Tensor, ids: torch.Tensor, cfg: AutoTrainConfig,
                   teacher=None, rng: np.random.Generator | None = None) -> AutoLoss:
    """The multimask and IoU losses of ``N`` points on one frame (points in
    loss pixels, ``ids`` the object under each, 0 background); with
    ``cfg.train_transformer``, plus the distillation from ``teacher`` (the
    starting model)."""
    decoder = model.mask_decoder
    s = model.image_size
    with torch.no_grad():
        feats = model.encode_image(frame.image)
        pix = model.condition(feats.embedding, None)
        n = len(xy)
        points = PointPrompts((xy * (s / cfg.loss_size))[:, None, :], torch.ones(n, 1, dtype=torch.int32))
        sparse, dense = model.prompt_encoder(points, None)
        high = None if feats.high_res is None else tuple(h.expand(n, -1, -1, -1) for h in feats.high_res)
    with torch.set_grad_enabled(cfg.train_transformer):
        tokens = decoder.decode_tokens(pix.expand(n, -1, -1, -1), model.prompt_encoder.dense_pe(), sparse, dense, high)
    low = decoder.mask_logits(tokens, MULTIMASK)  # (N, 3, 4S, 4S)
    iou_pred = decoder.iou_prediction_head(tokens.iou_token)[:, 1:]  # (N, 3)
    size = cfg.loss_size
    logits = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    target = (frame.labels[None] == ids[:, None, None]).float()[:, None] * (ids > 0).float()[:, None, None, None]
    focal = focal_loss(logits, target)  # (N, 3)
    dice = dice_loss(logits, target)
    combined = FOCAL_WEIGHT * focal + cfg.dice_weight * dice
    inside = ids > 0
    best = combined.min(dim=1).values
    # background points: every candidate towards empty (focal only)
    mask_l = torch.where(inside, best, FOCAL_WEIGHT * focal.mean(1)).mean()
    if cfg.iou_target == "best":
        actual, w = best_match_iou(logits.detach(), frame.labels)  # (N, 3) each
    else:
        with torch.no_grad():
            actual = mask_iou(logits, target)  # (N, 3); background points get no weight below
        # as SAM: the IoU head learns on points inside objects only (a point on
        # the background is taught an empty mask, which segment-everything drops)
        w = inside.float()[:, None].expand(-1, 3)
    iou_l = (((iou_pred - actual) ** 2) * w).sum() / w.sum().clamp(min=1.0)
    total = mask_l + iou_l
    if cfg.train_transformer and teacher is not None:
        total = total + cfg.distill_weight * distillation_loss(model, teacher, feats, pix, sparse[inside], dense[inside],
                                                               frame, cfg, rng)
    return AutoLoss(total, float(mask_l.detach()), float(iou_l.detach()))


def best_match_iou(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """IoU of every thresholded candidate (``N x M x L x L`` logits) with the
    object of ``labels`` it overlaps best, and a weight: 1 for candidates of
    at least 4 pixels (segment-everything drops smaller ones), else 0."""
    pred = (logits > 0).flatten(2).float()  # (N, M, P)
    ids = torch.unique(labels)
    ids = ids[ids > 0]
    area = pred.sum(-1)
    if not len(ids):
        return torch.zeros_like(area), (area >= 4).float()
    objects = (labels.flatten()[None] == ids[:, None]).float()  # (T, P)
    inter = pred @ objects.T  # (N, M, T)
    union = area[..., None] + objects.sum(-1) - inter
    return (inter / union.clamp(min=1.0)).max(-1).values, (area >= 4).float()


def _held_outputs(model, pix, high, sparse, dense) -> list[torch.Tensor]:
    """What clicking and tracking read from the decoder: the single-mask
    logits, the object score and the single-mask token (the pointer's
    input)."""
    decoder = model.mask_decoder
    tokens = decoder.decode_tokens(pix, model.prompt_encoder.dense_pe(), sparse, dense, high)
    out = [decoder.mask_logits(tokens, range(0, 1)), tokens.mask_tokens[:, 0]]
    if tokens.score_token is not None:
        out.append(decoder.pred_obj_score_head(tokens.score_token))
    return out


def distillation_loss(model, teacher, feats, pix, sparse, dense, frame: AutoFrame, cfg: AutoTrainConfig,
                      rng: np.random.Generator) -> torch.Tensor:
    """Mean squared difference between the model's and the starting
    model's held outputs (:func:`_held_outputs`) for (1) the point prompts
    inside objects on the image's own features (clicks) and (2) no prompt on
    features conditioned on a memory of up to ``distill_objects`` objects,
    written by the starting model from a click on each on the same frame
    (tracking: a next frame that looks like this one). The memory
    attention, the encoders and the pointer projection are frozen and shared."""
    from ..model.tracking import read_memory

    terms = []
    n = sparse.shape[0]
    if n:
        high = None if feats.high_res is None else tuple(h.expand(n, -1, -1, -1) for h in feats.high_res)
        args = (pix.expand(n, -1, -1, -1), high, sparse, dense)
        with torch.no_grad():
            want = _held_outputs(teacher, *args)
        terms += [F.mse_loss(a, b) for a, b in zip(_held_outputs(model, *args), want)]
    ids = torch.unique(frame.labels)
    ids = ids[ids > 0]
    if len(ids):
        pick = ids[torch.from_numpy(rng.permutation(len(ids))[: cfg.distill_objects])]
        k = len(pick)
        xy, _ = zip(*(sample_points((frame.labels == i).long(), 1, 1.0, rng) for i in pick))
        xy = torch.cat(xy) * (model.image_size / cfg.loss_size)
        with torch.no_grad():
            rows = type(feats)(feats.embedding.expand(k, -1, -1, -1),
                               None if feats.high_res is None else tuple(h.expand(k, -1, -1, -1) for h in feats.high_res))
            step = teacher.track_step(rows, readout=None, points=PointPrompts(xy[:, None, :], torch.ones(k, 1, dtype=torch.int32)))
            entry = _Memory(step.memory, step.head.obj_ptr)
            readout = read_memory(1, {0: entry}, {}, config=teacher.config.tracking, num_frames=8, reverse=False)
            mem_pix = teacher.condition(rows.embedding, readout)
            blank = PointPrompts(torch.zeros(k, 1, 2), torch.full((k, 1), -1, dtype=torch.int32))
            b_sparse, b_dense = teacher.prompt_encoder(blank, None)
            args = (mem_pix, rows.high_res, b_sparse, b_dense)
            want = _held_outputs(teacher, *args)
        terms += [F.mse_loss(a, b) for a, b in zip(_held_outputs(model, *args), want)]
    return torch.stack(terms).sum() if terms else pix.new_zeros(())


class _Memory(NamedTuple):
    features: torch.Tensor
    obj_ptr: torch.Tensor


def trainable_parameters(model, transformer: bool = False) -> list[torch.nn.Parameter]:
    """The multimask tokens' hypernetworks and the IoU head (and with
    ``transformer`` the decoder's transformer and its IoU and mask tokens);
    all the rest is frozen (``requires_grad`` False)."""
    decoder = model.mask_decoder
    keep = [p for i in MULTIMASK for p in decoder.output_hypernetworks_mlps[i].parameters()]
    keep += list(decoder.iou_prediction_head.parameters())
    if transformer:
        keep += list(decoder.transformer.parameters()) + [decoder.iou_token.weight, decoder.mask_tokens.weight]
    ids = {id(p) for p in keep}
    for p in model.parameters():
        p.requires_grad_(id(p) in ids)
    return keep


def evaluate_automatic(model, seeds, *, options=None) -> dict:
    """F1 at IoU 0.5 and mean matched IoU of segment-everything on one frame
    of the default time-lapses of ``seeds`` (training seeds); ``options``
    default: ``AutomaticOptions(points_per_side=16)``."""
    from ..engine.automatic import AutomaticOptions, segment_everything
    from ..synthetic import TimelapseParams
    from .automatic_quality import match

    options = AutomaticOptions(points_per_side=16) if options is None else options
    f1, iou = [], []
    for seed in seeds:
        stack = make_timelapse(TimelapseParams(n_frames=1), seed=int(seed))
        result = segment_everything(model, stack.image[0], options=options)
        m = match(result.labels, stack.labels[0], 0.5)
        f1.append(m.f1)
        iou.append(m.mean_iou)
    return {"f1": float(np.mean(f1)), "matched_iou": float(np.mean(iou))}


def train_automatic(cfg: AutoTrainConfig, out_dir: str | Path, *, log=print) -> Path:
    """Run the phase; save ``demo.pt`` (the best evaluation by F1 + IoU)
    and ``auto_log.jsonl`` in ``out_dir``; returns the checkpoint path."""
    from ..checkpoints import load_model, save_checkpoint

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = load_model(cfg.init, device="cpu", progress=False)
    model.eval()
    params = trainable_parameters(model, cfg.train_transformer)
    teacher = None
    if cfg.train_transformer:
        import copy

        teacher = copy.deepcopy(model).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    size = model.image_size
    pool: list[AutoFrame] = []
    best_score, best_path = -1.0, out / "demo.pt"
    started = time.monotonic()
    log_path = out / "auto_log.jsonl"

    def evaluate_and_keep(step: int) -> None:
        nonlocal best_score
        q = evaluate_automatic(model, cfg.eval_seeds)
        score = q["f1"] + q["matched_iou"]
        rec = {"step": step, "eval": q, "minutes": round((time.monotonic() - started) / 60, 2)}
        if cfg.keep_every_eval:
            save_checkpoint(model, out / f"step{step}.pt")
        if score > best_score:
            best_score = score
            save_checkpoint(model, best_path)
            rec["saved"] = True
        with open(log_path, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        log(json.dumps(rec))

    evaluate_and_keep(0)
    for step in range(cfg.steps):
        while len(pool) < cfg.pool_size:
            f = draw_frame(rng, cfg, size)
            if f is not None:
                pool.append(f)
        for _ in range(cfg.refresh_per_step):
            f = draw_frame(rng, cfg, size)
            if f is not None:
                pool[int(rng.integers(len(pool)))] = f
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, cfg)
        opt.zero_grad()  # eval mode throughout: only MLP heads train, no dropout anywhere
        parts = []
        for _ in range(cfg.images_per_step):
            frame = pool[int(rng.integers(len(pool)))]
            xy, ids = sample_points(frame.labels, cfg.points_per_image, cfg.inside_fraction, rng)
            lp = automatic_loss(model, frame, xy, ids, cfg, teacher, rng)
            (lp.total / cfg.images_per_step).backward()
            parts.append((lp.mask, lp.iou, float(lp.total.detach())))
        opt.step()
        if step % 10 == 0:
            m, i, t = np.mean(parts, axis=0)
            log(json.dumps({"step": step, "mask": round(float(m), 4), "iou": round(float(i), 4),
                            "total": round(float(t), 4)}))
        over_time = cfg.time_limit_min > 0 and time.monotonic() - started > 60 * cfg.time_limit_min
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps or over_time:
            evaluate_and_keep(step + 1)
        if over_time:
            break
    return best_path
