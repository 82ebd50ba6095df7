"""Quality of a model on held-out synthetic sequences, through the same
:class:`StackSession` users drive. Used during training and by the tests.

Seeds start at :data:`HELD_OUT_SEED_BASE`; training never draws them.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage

from ..engine import SessionOptions, StackSession
from ..synthetic import TimelapseParams, ZStackParams, make_timelapse, make_zstack
from .data import HELD_OUT_SEED_BASE


class Quality(NamedTuple):
    click_iou: float  # one positive click inside an isolated cell
    tracking_iou: float  # three objects over 20 frames
    zstack_dice: float  # both ways from the middle slice, 3D Dice
    details: dict


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return float(2 * np.logical_and(a, b).sum() / total) if total else 1.0


def centre_click(mask: np.ndarray) -> tuple[float, float]:
    """The pixel deepest inside ``mask``, as ``(y, x)`` (where a person clicks)."""
    dist = ndimage.distance_transform_edt(mask)
    y, x = np.unravel_index(int(np.argmax(dist)), mask.shape)
    return float(y), float(x)


def largest_lasting_clicks(labels: np.ndarray, count: int) -> list[tuple[int, tuple[float, float]]]:
    """``(id, (y, x))`` clicks on frame 0 of a ``T x Y x X`` label stack: the
    ``count`` largest objects of frame 0 present on every frame, each clicked
    at its deepest pixel (largest first)."""
    ids = [int(i) for i in np.unique(labels[0]) if i != 0]
    lasting = [i for i in ids if all(np.any(frame == i) for frame in labels)]
    chosen = sorted(lasting, key=lambda i: -int((labels[0] == i).sum()))[:count]
    return [(i, centre_click(labels[0] == i)) for i in chosen]


def isolated_ids(labels: np.ndarray, *, margin: int = 6, min_area: int = 80) -> list[int]:
    """Ids of objects with no other object within ``margin`` pixels and
    not touching the image border."""
    out = []
    for obj_id in np.unique(labels):
        if obj_id == 0:
            continue
        m = labels == obj_id
        if m.sum() < min_area or m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any():
            continue
        ring = ndimage.binary_dilation(m, iterations=margin) & ~m
        if np.all(labels[ring] == 0):
            out.append(int(obj_id))
    return out


def click_quality(model, seeds, *, per_image: int = 3, options: SessionOptions = SessionOptions()) -> list[float]:
    ious = []
    for seed in seeds:
        stack = make_timelapse(TimelapseParams(n_frames=1), seed=HELD_OUT_SEED_BASE + seed)
        image, labels = stack.image[0], stack.labels[0]
        session = StackSession(model, image, options=options)
        for obj_id in isolated_ids(labels)[:per_image]:
            gt = labels == obj_id
            session.add_points(obj_id, 0, [centre_click(gt)], [1])
            pred = session.segment_frame(0) == obj_id
            ious.append(_iou(pred, gt))
    return ious


def tracking_quality(model, seeds, *, num_objects: int = 3, num_frames: int = 20,
                     options: SessionOptions = SessionOptions()) -> list[float]:
    """Mean IoU over frames and objects for objects alive through the whole run."""
    scores = []
    for seed in seeds:
        params = TimelapseParams(n_frames=num_frames, division_rate=0.0)
        stack = make_timelapse(params, seed=HELD_OUT_SEED_BASE + 1000 + seed)
        alive = set(np.unique(stack.labels[0])) - {0}
        for t in range(1, num_frames):
            alive &= set(np.unique(stack.labels[t]))
        big = [i for i in sorted(alive) if (stack.labels[0] == i).sum() >= 80]
        chosen = [int(i) for i in big[:num_objects]]
        if not chosen:
            continue
        session = StackSession(model, stack.image, options=options)
        for obj_id in chosen:
            session.add_points(obj_id, 0, [centre_click(stack.labels[0] == obj_id)], [1])
        for _ in session.propagate("forward"):
            pass
        per = [
            _iou(session.labels[t] == i, stack.labels[t] == i)
            for t in range(num_frames)
            for i in chosen
        ]
        scores.append(float(np.mean(per)))
    return scores


def zstack_quality(model, seeds, *, num_objects: int = 3, options: SessionOptions = SessionOptions()) -> list[float]:
    """3D Dice of nuclei clicked once in the middle slice and propagated both ways."""
    scores = []
    for seed in seeds:
        stack = make_zstack(ZStackParams(), seed=HELD_OUT_SEED_BASE + 2000 + seed)
        mid = stack.image.shape[0] // 2
        ids, areas = np.unique(stack.labels[mid], return_counts=True)
        chosen = [int(i) for i, a in sorted(zip(ids, areas), key=lambda p: -p[1]) if i != 0][:num_objects]
        if not chosen:
            continue
        session = StackSession(model, stack.image, options=options)
        for obj_id in chosen:
            session.add_points(obj_id, mid, [centre_click(stack.labels[mid] == obj_id)], [1])
        for _ in session.propagate("both"):
            pass
        scores += [_dice(session.labels == i, stack.labels == i) for i in chosen]
    return scores


# training picks its checkpoint on these (held out from training too), so
# that the quality tests' seeds (from 0) are never used to choose a model
VALIDATION_SEEDS = range(100, 110)


def evaluate(model, *, click_seeds=VALIDATION_SEEDS[:6], track_seeds=VALIDATION_SEEDS,
             zstack_seeds=VALIDATION_SEEDS[:4], options: SessionOptions = SessionOptions()) -> Quality:
    """Quality on the validation seeds; ``options`` e.g. ``autocast=False``
    to measure in float32 on CUDA (as the CPU tests do)."""
    was_training = model.training
    model.eval()
    try:
        c = click_quality(model, click_seeds, options=options)
        t = tracking_quality(model, track_seeds, options=options)
        z = zstack_quality(model, zstack_seeds, options=options)
    finally:
        model.train(was_training)
    mean = lambda v: float(np.mean(v)) if v else 0.0  # noqa: E731
    return Quality(mean(c), mean(t), mean(z), {"click": c, "tracking": t, "zstack": z})


__all__ = ["Quality", "evaluate", "click_quality", "tracking_quality", "zstack_quality",
           "centre_click", "isolated_ids", "largest_lasting_clicks"]
