"""Training sequences made on the fly from the synthetic microscopy generator.

A sequence is a few consecutive frames of a time-lapse (or slices of a
z-stack, in either direction) turned into model inputs exactly as the engine
does at inference (:class:`FrameSource`: robust percentiles, resize,
ImageNet normalisation), with up to ``max_objects`` objects visible on the
first frame and their ground-truth masks at the model's resolution.

Seeds below :data:`HELD_OUT_SEED_BASE` are for training; the quality tests
use seeds from it upwards, so they never see a training sequence.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ..engine.frames import FrameSource
from ..synthetic import (
    Synthetic,
    make_timelapse,
    make_zstack,
    random_timelapse_params,
    random_zstack_params,
    samplelike_timelapse_params,
    samplelike_zstack_params,
)

HELD_OUT_SEED_BASE = 1_000_000_000
MIN_AREA = 48  # pixels (original resolution) for an object to be chosen


class TrainSequence(NamedTuple):
    """``images``: ``T x 3 x S x S`` normalised model inputs;
    ``masks``: ``T x K x S x S`` float ground truth at model resolution;
    ``foreground``: ``T x 1 x S x S`` every object's pixels (an auxiliary target);
    ``kind``: "timelapse" or "zstack"."""

    images: torch.Tensor
    masks: torch.Tensor
    foreground: torch.Tensor
    kind: str


def _window(stack: Synthetic, start: int, length: int, reverse: bool, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    idx = np.arange(start, start + (length - 1) * stride + 1, stride)
    if reverse:
        idx = idx[::-1]
    return stack.image[idx], stack.labels[idx]


def resized_masks(masks: torch.Tensor, size: int) -> torch.Tensor:
    """Binary masks (``... x H x W``) at ``size x size``, bilinear then >= 0.5."""
    if masks.shape[-2:] == (size, size):
        return masks
    masks = F.interpolate(masks, size=(size, size), mode="bilinear", align_corners=False)
    return (masks >= 0.5).float()


def _to_model(image: np.ndarray, labels: np.ndarray, ids: list[int], size: int):
    source = FrameSource(image)
    images = torch.cat([source.model_input(i, size) for i in range(len(image))], dim=0)
    lab = torch.from_numpy(labels.astype(np.int64))  # (T, H, W)
    masks = torch.stack([(lab == i).float() for i in ids], dim=1)  # (T, K, H, W)
    foreground = (lab > 0).float()[:, None]  # (T, 1, H, W)
    return images, resized_masks(masks, size), resized_masks(foreground, size)


def sample_sequence(
    rng: np.random.Generator,
    *,
    image_size: int,
    num_frames: int,
    max_objects: int,
    zstack_fraction: float,
    max_stride: int = 1,
    samplelike_fraction: float = 0.0,
) -> TrainSequence | None:
    """One random training sequence, or None if nothing suitable was drawn.

    ``max_stride`` > 1: every time-lapse sequence takes every ``k``-th
    frame, ``k`` drawn from 1 to ``max_stride``, so that a few frames show
    the motion and change of many: what a tracked object looks like 15
    frames after its prompt, at the cost of 6 frames. Z-stacks keep
    consecutive slices.

    ``samplelike_fraction``: the chance that the scene's parameters are
    drawn near the shipped samples' (:func:`samplelike_timelapse_params`)
    instead of over the wide range.
    """
    seed = int(rng.integers(0, HELD_OUT_SEED_BASE))
    # drawn only when asked for, so that runs without it are unchanged
    stride = int(rng.integers(1, max_stride + 1)) if max_stride > 1 else 1
    samplelike = samplelike_fraction > 0 and rng.uniform() < samplelike_fraction
    if rng.uniform() < zstack_fraction:
        params = (samplelike_zstack_params if samplelike else random_zstack_params)(rng)
        stack = make_zstack(params, seed=seed)
        kind = "zstack"
    else:
        params = (samplelike_timelapse_params if samplelike else random_timelapse_params)(rng)
        params = dataclasses.replace(params, n_frames=max((num_frames - 1) * stride + 1, 2))
        stack = make_timelapse(params, seed=seed)
        kind = "timelapse"
    n = stack.image.shape[0]
    if n < num_frames:
        return None
    if kind == "zstack":
        # slices are propagated one by one, and strided z-stacks cost z-stack
        # quality (validation Dice 0.85 -> 0.69-0.79 in every strided run)
        stride = 1
    span = (num_frames - 1) * stride + 1
    # start where some objects are visible; z-stacks: anywhere in the stack
    for _ in range(8):
        start = int(rng.integers(0, n - span + 1))
        reverse = bool(rng.uniform() < 0.5)
        image, labels = _window(stack, start, num_frames, reverse, stride)
        ids, areas = np.unique(labels[0], return_counts=True)
        ok = [int(i) for i, a in zip(ids, areas) if i != 0 and a >= MIN_AREA]
        if ok:
            break
    else:
        return None
    chosen = list(rng.choice(ok, size=min(max_objects, len(ok)), replace=False))
    images, masks, foreground = _to_model(image, labels, chosen, image_size)
    return TrainSequence(images, masks, foreground, kind)
