"""Touching cells in one mask: split a segment-everything candidate where
two round objects meet at a neck.

SAM often answers a point on one of two touching nuclei with a mask over
both. Such a mask has two peaks in its distance transform (the two
centres) joined by a saddle (the neck between them). :func:`split_mask`
cuts the mask by a watershed of the distance transform from its peaks,
then joins again every pair of neighbouring pieces whose saddle is not
clearly lower than the smaller of their two peaks (``saddle > neck *
peak``): an elongated or irregular cell has saddles almost as high as its
peak and stays whole, two discs touching at a waist are split. Pieces
smaller than ``min_area`` pixels are joined to their neighbour.

:func:`split_candidates` does it for every candidate of the generator and
drops the pieces much smaller than the largest of their mask (a spill onto
a neighbour, which that neighbour's own prompts find whole).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

if TYPE_CHECKING:  # pragma: no cover
    from .automatic import MaskCandidates

__all__ = ["split_mask", "split_candidates"]


def split_mask(mask: np.ndarray, neck: float, min_area: int = 12) -> list[np.ndarray]:
    """The pieces of a 2D bool ``mask`` (same shape, disjoint, covering it);
    ``[mask]`` when it is one object. ``neck`` in (0, 1]: two pieces stay
    apart when the distance transform's saddle between them is at most
    ``neck`` times the lower of their peaks."""
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    if mask.ndim != 2:
        raise ValueError(f"mask must be 2D, got shape {mask.shape}")
    if not 0.0 < neck <= 1.0:
        raise ValueError(f"neck must be in (0, 1], got {neck!r}")
    padded = np.pad(np.asarray(mask, dtype=bool), 1)
    if padded.sum() < 2 * max(min_area, 1):
        return [mask]
    distance = ndimage.distance_transform_edt(padded)
    peaks = peak_local_max(distance, min_distance=2, labels=padded.astype(np.int32), exclude_border=False)
    if len(peaks) < 2:
        return [mask]
    n = len(peaks)
    markers = np.zeros(padded.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, n + 1)
    basins = watershed(-distance, markers, mask=padded)
    index = np.arange(1, n + 1)
    top = np.asarray(ndimage.maximum(distance, basins, index=index), dtype=float)
    area = np.asarray(ndimage.sum_labels(padded, basins, index=index), dtype=float)
    saddles = _saddles(basins, distance, n)
    # join from the highest saddle down (union-find over the basins)
    parent = np.arange(n + 1)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    peak = np.concatenate([[0.0], top])
    size = np.concatenate([[0.0], area])
    for (i, j), s in sorted(saddles.items(), key=lambda kv: -kv[1]):
        a, b = root(i), root(j)
        if a == b:
            continue
        if s > neck * min(peak[a], peak[b]) or min(size[a], size[b]) < min_area:
            parent[b] = a
            peak[a] = max(peak[a], peak[b])
            size[a] += size[b]
    roots = np.array([root(i) for i in range(n + 1)])
    kept = np.unique(roots[1:])
    if len(kept) < 2:
        return [mask]
    pieces = roots[basins][1:-1, 1:-1]
    return [pieces == r for r in kept]


def _saddles(basins: np.ndarray, distance: np.ndarray, n: int) -> dict[tuple[int, int], float]:
    """For each pair of 4-neighbouring basins: the highest distance along
    their border (the lower of the two pixels of each touching pair)."""
    best = np.full((n + 1) * (n + 1), -1.0)
    for axis in (0, 1):
        a = np.moveaxis(basins, axis, 0)
        d = np.moveaxis(distance, axis, 0)
        left, right = a[:-1], a[1:]
        touching = (left != right) & (left > 0) & (right > 0)
        lo = np.minimum(left[touching], right[touching])
        hi = np.maximum(left[touching], right[touching])
        value = np.minimum(d[:-1][touching], d[1:][touching])
        np.maximum.at(best, lo * (n + 1) + hi, value)
    pairs = np.flatnonzero(best >= 0)
    return {(int(k // (n + 1)), int(k % (n + 1))): float(best[k]) for k in pairs}


def split_candidates(candidates: MaskCandidates, neck: float, min_share: float, min_area: int) -> MaskCandidates:
    """Every candidate split by :func:`split_mask`; each piece keeps its
    mask's predicted IoU, stability, prompt point and crop. Pieces with
    fewer than ``min_share`` of the largest piece's pixels are dropped."""
    boxes, patches, keep_index = [], [], []
    for k, (patch, box) in enumerate(zip(candidates.patches, candidates.boxes)):
        pieces = split_mask(patch, neck, min_area)
        if len(pieces) == 1:
            boxes.append(np.asarray(box, dtype=np.int64))
            patches.append(patch)
            keep_index.append(k)
            continue
        largest = max(int(p.sum()) for p in pieces)
        x0, y0 = int(box[0]), int(box[1])
        for piece in pieces:
            if piece.sum() < min_share * largest:
                continue
            ys, xs = np.nonzero(piece)
            py0, py1, px0, px1 = ys.min(), ys.max(), xs.min(), xs.max()
            boxes.append(np.array([x0 + px0, y0 + py0, x0 + px1, y0 + py1], dtype=np.int64))
            patches.append(piece[py0 : py1 + 1, px0 : px1 + 1])
            keep_index.append(k)
    index = np.asarray(keep_index, dtype=np.int64)
    return candidates._replace(
        boxes=np.asarray(boxes, dtype=np.int64).reshape(-1, 4),
        patches=patches,
        predicted_iou=candidates.predicted_iou[index],
        stability=candidates.stability[index],
        points=candidates.points[index],
        crop_boxes=candidates.crop_boxes[index],
    )
