"""Segment everything: a grid of point prompts over one image, each decoded
into candidate masks, filtered and de-duplicated, composed into one label
image. The math follows Meta's ``SAM2AutomaticMaskGenerator`` (sam2 1.1.0),
to which the masks, predicted IoUs and stability scores are tested equal;
the work is organised for speed:

* the image (each crop) is encoded once; a :class:`StackSession` reuses the
  frame's cached features for the whole-frame crop;
* prompts go through the mask decoder ``points_per_batch`` at a time;
* masks stay at the decoder's low resolution until the predicted-IoU filter
  has run: only the survivors are upsampled (in small chunks) to compute
  their stability score and their binary mask, which is then kept cut to
  its bounding box.

Input images are mapped to ``[0, 1]`` as :class:`FrameSource` does and
resized like Meta's image predictor (bilinear, antialiased, in float32), so
uint8 RGB with ``intensity_range=(0, 255)`` gives the reference's pixels.

Coordinates: public results are napari order, ``(y, x)``; boxes of the
internal candidates are Meta's ``(x0, y0, x1, y1)`` with inclusive ends.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from ..model import FrameFeatures, PointPrompts, SAM2Model
from ..model.device import autocast_for
from .automatic_options import AutomaticOptions
from .frames import IMAGENET_MEAN, IMAGENET_STD, FrameSource
from .touching import split_candidates

# boxes this close (pixels) to a crop's inner edge are cut by it: dropped
CROP_EDGE_TOLERANCE = 20.0
# masks upsampled to full resolution at once (bounds memory on big images)
UPSAMPLE_CHUNK = 32
_EIGHT = np.ones((3, 3), dtype=bool)


class AutomaticObject(NamedTuple):
    """One object of a segment-everything result (napari order).

    ``bbox``: ``(y0, x0, y1, x1)`` of its pixels in the label image, ends
    exclusive (slices); ``point``: the ``(y, x)`` prompt that produced it.
    """

    id: int
    area: int
    bbox: tuple[int, int, int, int]
    predicted_iou: float
    stability_score: float
    point: tuple[float, float]


class AutomaticResult(NamedTuple):
    """``labels``: ``Y x X`` int32, 0 background, objects non-overlapping
    (where candidate masks overlap, the higher predicted IoU wins);
    ``objects``: one :class:`AutomaticObject` per label value, in id order."""

    labels: np.ndarray
    objects: tuple[AutomaticObject, ...]


class MaskCandidates(NamedTuple):
    """The generator's kept masks, before composition (Meta's output).

    ``boxes``: ``N x 4`` int64 ``(x0, y0, x1, y1)`` inclusive, image pixels;
    ``patches``: N bool arrays, each mask cut to its box
    (``y1 - y0 + 1`` x ``x1 - x0 + 1``); ``predicted_iou``, ``stability``:
    ``N`` float32; ``points``: ``N x 2`` float32 ``(x, y)`` prompts;
    ``crop_boxes``: ``N x 4`` ``(x0, y0, x1, y1)`` crops, ends exclusive.
    """

    boxes: np.ndarray
    patches: list
    predicted_iou: np.ndarray
    stability: np.ndarray
    points: np.ndarray
    crop_boxes: np.ndarray
    size: tuple[int, int]

    def mask(self, i: int) -> np.ndarray:
        """Candidate ``i`` as a full ``H x W`` bool image."""
        out = np.zeros(self.size, dtype=bool)
        x0, y0, x1, y1 = (int(v) for v in self.boxes[i])
        out[y0 : y1 + 1, x0 : x1 + 1] = self.patches[i]
        return out

    def area(self, i: int) -> int:
        return int(self.patches[i].sum())

    def areas(self) -> np.ndarray:
        """``N`` int64: the pixels of each candidate."""
        return np.array([p.sum() for p in self.patches], dtype=np.int64)


# ================================================================ public API
def segment_everything(
    model: SAM2Model,
    image,
    *,
    options: AutomaticOptions = AutomaticOptions(),
    channel_axis: int | None = None,
    intensity_range="auto",
    progress: Callable[[int, int], None] | None = None,
) -> AutomaticResult:
    """Every object of one 2D image as a label image.

    ``image``: ``Y x X`` (any numeric dtype) or with a colour axis named by
    ``channel_axis``; ``intensity_range`` as for :class:`FrameSource`.
    ``progress(done, total)`` is called after each batch of prompts.
    """
    if not isinstance(model, SAM2Model):
        raise TypeError(
            f"model must be a SAM 2 network from napari_sam2.load_model, got {type(model).__name__}"
        )
    if not isinstance(options, AutomaticOptions):
        raise TypeError(f"options must be an AutomaticOptions, got {type(options).__name__}")
    source = FrameSource(image, channel_axis=channel_axis, intensity_range=intensity_range)
    if len(source) != 1:
        raise ValueError(
            f"image must be one 2D image (Y x X, or with channel_axis a colour image); got shape "
            f"{tuple(np.shape(image))}, which holds {len(source)} frames: use StackSession for stacks"
        )
    unit = source.normalized(0)
    candidates = generate_masks(model, unit, options=options, progress=progress)
    return compose_candidates(candidates, options)


def generate_masks(
    model: SAM2Model,
    unit: np.ndarray,
    *,
    options: AutomaticOptions = AutomaticOptions(),
    full_features: FrameFeatures | None = None,
    progress: Callable[[int, int], None] | None = None,
    where: np.ndarray | None = None,
) -> MaskCandidates:
    """Meta's generator on an image already mapped to ``[0, 1]``
    (``H x W`` or ``H x W x k``, k = 1..3). ``full_features``: the whole
    image's features if already computed (one frame, batch 1). ``where``:
    an ``H x W`` bool image; only the grid's points that fall on it are
    prompted (in every crop)."""
    if unit.ndim == 2:
        unit = unit[:, :, None]
    height, width = unit.shape[:2]
    crops, layers = crop_boxes((height, width), options.crop_layers, options.crop_overlap_ratio)
    grids = [
        point_grid(int(options.points_per_side / options.crop_point_downscale**i))
        for i in range(options.crop_layers + 1)
    ]
    if where is not None:
        where = np.asarray(where, dtype=bool)
        if where.shape != (height, width):
            raise ValueError(f"where must be a {height} x {width} bool image, got shape {where.shape}")
    if options.multimask_output is None:
        options = replace(options, multimask_output=bool(model.config.tracking.multimask_output_in_sam))
    points = [grids[layer] if where is None else _grid_on(grids[layer], box, where)
              for box, layer in zip(crops, layers)]
    total = sum(math.ceil(len(grid) / options.points_per_batch) for grid in points)
    done = [0, total]
    parts = []
    with torch.inference_mode():
        for box, layer, grid in zip(crops, layers, points):
            if not len(grid):
                continue
            if layer == 0 and full_features is not None:
                feats = full_features
            else:
                feats = _encode_crop(model, unit, box)
            parts.append(_process_crop(model, feats, box, grid, (height, width), options, progress, done))
    merged = _concat(parts, (height, width))
    if len(crops) > 1 and len(merged.boxes):
        crop = merged.crop_boxes.astype(np.int64)
        areas = torch.from_numpy((crop[:, 2] - crop[:, 0]) * (crop[:, 3] - crop[:, 1]))
        keep = box_nms(torch.from_numpy(merged.boxes).float(), 1 / areas, options.crop_nms_thresh)
        merged = _take(merged, keep.numpy())
    if options.min_mask_region_area > 0 and len(merged.boxes):
        merged = remove_small_regions(merged, options.min_mask_region_area, options.box_nms_thresh)
    return merged


def compose_candidates(candidates: MaskCandidates, options: AutomaticOptions) -> AutomaticResult:
    """Non-overlapping labels from candidate masks: within the area bounds,
    higher rank (:func:`rank_scores`, then stability) painted first, later masks only
    on free pixels; a mask more than ``duplicate_overlap`` of which is taken
    already, or left with fewer than ``min_object_area`` free pixels, is
    dropped; ids 1, 2, ... in reading order of their boxes. Masks over
    touching objects are split first (``options.split_neck``)."""
    if options.split_neck is not None and len(candidates.boxes):
        candidates = split_candidates(candidates, options.split_neck, options.split_min_share,
                                      max(options.min_object_area, 1))
    height, width = candidates.size
    n = len(candidates.boxes)
    areas = candidates.areas()
    upper = np.iinfo(np.int64).max if options.max_object_area is None else options.max_object_area
    fits = (areas >= max(options.min_object_area, 1)) & (areas <= upper)
    score = rank_scores(candidates, options.area_bonus, areas)
    order = sorted(np.flatnonzero(fits), key=lambda i: (-score[i], -candidates.stability[i], i))
    owner = np.zeros((height, width), dtype=np.int64)  # candidate index + 1
    least = max(options.min_object_area, 1)
    for i in order:
        x0, y0, x1, y1 = (int(v) for v in candidates.boxes[i])
        window = owner[y0 : y1 + 1, x0 : x1 + 1]
        free = candidates.patches[i] & (window == 0)
        claimed = free.sum()
        if claimed < least or claimed < (1.0 - options.duplicate_overlap) * areas[i]:
            continue
        window[free] = i + 1
    present = np.bincount(owner.ravel(), minlength=n + 1)[1:]
    kept = [i for i in range(n) if present[i] >= least]
    slices = ndimage.find_objects(owner, max_label=n)
    kept.sort(key=lambda i: (slices[i][0].start, slices[i][1].start))
    lut = np.zeros(n + 1, dtype=np.int32)
    objects = []
    for new_id, i in enumerate(kept, start=1):
        lut[i + 1] = new_id
        sy, sx = slices[i]
        px, py = candidates.points[i]
        objects.append(
            AutomaticObject(
                id=new_id,
                area=int(present[i]),
                bbox=(sy.start, sx.start, sy.stop, sx.stop),
                predicted_iou=float(candidates.predicted_iou[i]),
                stability_score=float(candidates.stability[i]),
                point=(float(py), float(px)),
            )
        )
    return AutomaticResult(lut[owner], tuple(objects))


def rank_scores(candidates: MaskCandidates, area_bonus: float, areas: np.ndarray | None = None) -> np.ndarray:
    """What candidates are ranked by: predicted IoU + ``area_bonus`` x
    ln(area) (float32; the predicted IoU itself when ``area_bonus`` is 0).
    ``areas``: :meth:`MaskCandidates.areas` if the caller has it already."""
    if area_bonus == 0 or not len(candidates.patches):
        return candidates.predicted_iou
    if areas is None:
        areas = candidates.areas()
    return (candidates.predicted_iou + area_bonus * np.log(np.maximum(areas, 1))).astype(np.float32)


# ============================================================ geometry helpers
def point_grid(n: int) -> np.ndarray:
    """``n*n x 2`` float64 ``(x, y)`` in ``[0, 1]``: cell centres of an n x n
    grid, x fastest (row by row)."""
    half = 1.0 / (2 * n)
    ticks = np.linspace(half, 1.0 - half, n)
    ys, xs = np.meshgrid(ticks, ticks, indexing="ij")  # (n, n) each
    return np.stack([xs.ravel(), ys.ravel()], axis=-1)  # (n*n, 2)


def _grid_on(grid: np.ndarray, box, where: np.ndarray) -> np.ndarray:
    """The points of ``grid`` (a crop's ``(x, y)`` in ``[0, 1]``) whose pixel
    in the frame is set in ``where``."""
    x0, y0, x1, y1 = box
    xs = np.clip((x0 + grid[:, 0] * (x1 - x0)).astype(np.int64), 0, where.shape[1] - 1)
    ys = np.clip((y0 + grid[:, 1] * (y1 - y0)).astype(np.int64), 0, where.shape[0] - 1)
    return grid[where[ys, xs]]


def crop_boxes(size: tuple[int, int], layers: int, overlap_ratio: float) -> tuple[list, list]:
    """Crops ``(x0, y0, x1, y1)`` (ends exclusive) and their layer: the whole
    image, then for layer i a ``2**i`` x ``2**i`` grid of overlapping crops."""
    height, width = size
    boxes, layer_of = [[0, 0, width, height]], [0]
    for i in range(1, layers + 1):
        per_side = 2**i
        overlap = int(overlap_ratio * min(height, width) * (2 / per_side))
        cw = int(math.ceil((overlap * (per_side - 1) + width) / per_side))
        ch = int(math.ceil((overlap * (per_side - 1) + height) / per_side))
        xs = [int((cw - overlap) * k) for k in range(per_side)]
        ys = [int((ch - overlap) * k) for k in range(per_side)]
        for x0 in xs:
            for y0 in ys:
                boxes.append([x0, y0, min(x0 + cw, width), min(y0 + ch, height)])
                layer_of.append(i)
    return boxes, layer_of


def box_nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression: indices kept, best score first (ties
    in input order). A box is dropped when its IoU with a kept one exceeds
    ``threshold``. ``boxes``: ``N x 4`` float ``(x0, y0, x1, y1)``; IoU in
    float32 with areas ``(x1 - x0) * (y1 - y0)``."""
    if len(boxes) == 0:
        return torch.zeros(0, dtype=torch.int64)
    order = torch.sort(scores, descending=True, stable=True).indices
    b = boxes[order].float()
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lo = torch.maximum(b[:, None, :2], b[None, :, :2])  # (N, N, 2)
    hi = torch.minimum(b[:, None, 2:], b[None, :, 2:])
    wh = (hi - lo).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    iou = inter / (area[:, None] + area[None, :] - inter)
    over = (iou > threshold).numpy()
    removed = np.zeros(len(b), dtype=bool)
    keep = []
    for i in range(len(b)):
        if removed[i]:
            continue
        keep.append(i)
        removed |= over[i]
    return order[torch.tensor(keep, dtype=torch.int64)]


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """``N x H x W`` bool -> ``N x 4`` int64 ``(x0, y0, x1, y1)`` inclusive;
    ``(0, 0, 0, 0)`` for an empty mask."""
    n, h, w = masks.shape
    rows, cols = masks.any(dim=2), masks.any(dim=1)  # (N, H), (N, W)
    ys = torch.arange(h, device=masks.device)
    xs = torch.arange(w, device=masks.device)
    y0 = torch.where(rows, ys, h).amin(dim=1)
    y1 = torch.where(rows, ys, -1).amax(dim=1)
    x0 = torch.where(cols, xs, w).amin(dim=1)
    x1 = torch.where(cols, xs, -1).amax(dim=1)
    box = torch.stack([x0, y0, x1, y1], dim=1)
    empty = ~rows.any(dim=1)
    return torch.where(empty[:, None], torch.zeros_like(box), box)


def stability_scores(logits: torch.Tensor, threshold: float, offset: float) -> torch.Tensor:
    """IoU of each ``N x H x W`` mask cut at ``threshold + offset`` and at
    ``threshold - offset`` (the first lies inside the second)."""
    inner = (logits > threshold + offset).sum(dim=(-2, -1))
    outer = (logits > threshold - offset).sum(dim=(-2, -1))
    return inner / outer


def remove_small_regions(candidates: MaskCandidates, min_area: int, nms_threshold: float) -> MaskCandidates:
    """Fill holes and drop islands smaller than ``min_area`` pixels
    (8-connected; if every island is small the largest stays), then NMS
    again with unchanged masks preferred over changed ones."""
    height, width = candidates.size
    full, unchanged = [], []
    for i in range(len(candidates.boxes)):
        mask = candidates.mask(i)
        mask, holes = _drop_small(mask, min_area, holes=True)
        mask, islands = _drop_small(mask, min_area, holes=False)
        full.append(mask)
        unchanged.append(not (holes or islands))
    masks = torch.from_numpy(np.stack(full))
    boxes = mask_boxes(masks)
    keep = box_nms(boxes.float(), torch.tensor(unchanged, dtype=torch.float32), nms_threshold).numpy()
    boxes_np = boxes.numpy()
    patches = [full[i][y0 : y1 + 1, x0 : x1 + 1] for i, (x0, y0, x1, y1) in enumerate(boxes_np)]
    updated = candidates._replace(boxes=boxes_np, patches=patches)
    return _take(updated, keep)


def _drop_small(mask: np.ndarray, min_area: int, *, holes: bool) -> tuple[np.ndarray, bool]:
    work = ~mask if holes else mask
    comp, n = ndimage.label(work, structure=_EIGHT)
    if n == 0:
        return mask, False
    sizes = np.bincount(comp.ravel(), minlength=n + 1)[1:]
    small = sizes < min_area
    if not small.any():
        return mask, False
    if holes:
        return mask | small[comp - 1] & (comp > 0), True
    keep = ~small
    if not keep.any():
        keep[int(np.argmax(sizes))] = True
    return (comp > 0) & keep[comp - 1], True


# ================================================================ internals
def _encode_crop(model: SAM2Model, unit: np.ndarray, box) -> FrameFeatures:
    """One crop of a ``[0, 1]`` image as the image predictor feeds it:
    bilinear antialiased resize, three channels, ImageNet normalisation."""
    x0, y0, x1, y1 = box
    device = model.device
    if unit.ndim == 2:
        unit = unit[:, :, None]
    crop = torch.from_numpy(np.ascontiguousarray(unit[y0:y1, x0:x1])).to(device)
    crop = crop.permute(2, 0, 1).unsqueeze(0)  # (1, k, h, w)
    s = model.image_size
    crop = F.interpolate(crop, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
    k = crop.shape[1]
    if k == 1:
        crop = crop.expand(-1, 3, -1, -1)
    elif k == 2:
        crop = torch.cat([crop, torch.zeros_like(crop[:, :1])], dim=1)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=device)[None, :, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=device)[None, :, None, None]
    with autocast_for(device):
        return model.encode_image((crop - mean) / std)


def _decode(model: SAM2Model, pix, high_res, coords, mask_input, multimask: bool):
    """Decoder on ``B`` single positive points (model pixels, ``B x 2``)."""
    b = coords.shape[0]
    # one materialised copy of the features per prompt, as the reference
    # repeats them: broadcasting instead changes the float rounding
    pix = pix.expand(b, -1, -1, -1).contiguous()  # (B, C, S, S)
    points = PointPrompts(coords[:, None, :], torch.ones(b, 1, dtype=torch.int32, device=coords.device))
    with autocast_for(model.device):
        sparse, dense = model.prompt_encoder(points, mask_input)
        out = model.mask_decoder(
            pix, model.prompt_encoder.dense_pe(), sparse, dense, multimask=multimask, high_res=high_res
        )
    return out.masks.float(), out.iou.float()  # (B, M, 4S, 4S), (B, M)


def _process_crop(model, feats, box, grid, size, options, progress, done) -> MaskCandidates:
    x0, y0, x1, y1 = box
    cw, ch = x1 - x0, y1 - y0
    height, width = size
    s = model.image_size
    device = model.device
    pix = model.condition(feats.embedding, None)  # + no-memory embedding, as for an image
    points = torch.from_numpy(grid * np.array([cw, ch], dtype=np.float64)).float()  # (P, 2) crop px
    model_xy = points.clone()
    model_xy[:, 0] = model_xy[:, 0] / cw
    model_xy[:, 1] = model_xy[:, 1] / ch
    model_xy = (model_xy * s).to(device)
    crop_t = torch.tensor([x0, y0, x1, y1], dtype=torch.float32)
    image_t = torch.tensor([0, 0, width, height], dtype=torch.float32)
    parts = []
    for start in range(0, len(points), options.points_per_batch):
        sl = slice(start, start + options.points_per_batch)
        low, iou = _decode(model, pix, feats.high_res, model_xy[sl], None, options.multimask_output)
        m = low.shape[1]
        low = low.flatten(0, 1)  # (B*M, 4S, 4S)
        iou = iou.flatten(0, 1)
        pts = points[sl].repeat_interleave(m, dim=0)  # (B*M, 2)
        if options.use_m2m:
            low, iou = _refine(model, pix, feats.high_res, model_xy[sl].repeat_interleave(m, dim=0), low, options)
        if options.pred_iou_thresh > 0:
            keep = iou > options.pred_iou_thresh
            low, iou, pts = low[keep], iou[keep], pts[keep.cpu()]
        for c in range(0, len(low), UPSAMPLE_CHUNK):
            part = _upsampled_part(low[c : c + UPSAMPLE_CHUNK], iou[c : c + UPSAMPLE_CHUNK],
                                   pts[c : c + UPSAMPLE_CHUNK], (ch, cw), options, crop_t, image_t, box, size)
            if part is not None:
                parts.append(part)
        done[0] += 1
        if progress is not None:
            progress(done[0], done[1])
    data = _concat(parts, size)
    if len(data.boxes) == 0:
        return data
    local = torch.from_numpy(data.boxes - np.array([x0, y0, x0, y0]))
    keep = box_nms(local.float(), torch.from_numpy(rank_scores(data, options.area_bonus)), options.box_nms_thresh)
    return _take(data, keep.numpy())


def _refine(model, pix, high_res, coords, low, options):
    """Mask-to-mask refinement: each mask's clamped low-res logits back in
    as the mask prompt with its point, one output mask."""
    outs, ious = [], []
    for start in range(0, len(low), options.points_per_batch):
        sl = slice(start, start + options.points_per_batch)
        prior = low[sl].clamp(-32.0, 32.0)[:, None]  # (b, 1, 4S, 4S)
        m, i = _decode(model, pix, high_res, coords[sl], prior, False)
        outs.append(m[:, 0])
        ious.append(i[:, 0])
    return torch.cat(outs), torch.cat(ious)


def _upsampled_part(low, iou, pts, crop_size, options, crop_t, image_t, box, size):
    """Stability filter, binarisation, boxes and the crop-edge filter of a
    chunk of low-res masks; returns candidates in image coordinates."""
    if len(low) == 0:
        return None
    high = F.interpolate(low[:, None], size=crop_size, mode="bilinear", align_corners=False)[:, 0]
    stab = stability_scores(high, options.mask_threshold, options.stability_score_offset)
    if options.stability_score_thresh > 0:
        keep = stab >= options.stability_score_thresh
        high, iou, pts, stab = high[keep], iou[keep], pts[keep.cpu()], stab[keep]
    if len(high) == 0:
        return None
    binary = high > options.mask_threshold
    boxes = mask_boxes(binary)
    x0, y0 = box[0], box[1]
    shifted = boxes.float().cpu() + torch.tensor([x0, y0, x0, y0], dtype=torch.float32)
    near_crop = (shifted - crop_t).abs() <= CROP_EDGE_TOLERANCE
    near_image = (shifted - image_t).abs() <= CROP_EDGE_TOLERANCE
    cut = (near_crop & ~near_image).any(dim=1)
    if cut.all():
        return None
    inside = (~cut).to(binary.device)
    binary, boxes, iou, stab, pts = binary[inside], boxes[inside], iou[inside], stab[inside], pts[~cut]
    boxes_np = boxes.cpu().numpy()
    binary_np = binary.cpu().numpy()
    patches = [binary_np[k, by0 : by1 + 1, bx0 : bx1 + 1] for k, (bx0, by0, bx1, by1) in enumerate(boxes_np)]
    offset = np.array([x0, y0, x0, y0], dtype=np.int64)
    n = len(boxes_np)
    return MaskCandidates(
        boxes=boxes_np.astype(np.int64) + offset,
        patches=patches,
        predicted_iou=iou.cpu().numpy().astype(np.float32),
        stability=stab.cpu().numpy().astype(np.float32),
        points=(pts + torch.tensor([x0, y0], dtype=torch.float32)).numpy(),
        crop_boxes=np.tile(np.array(box, dtype=np.int64), (n, 1)),
        size=size,
    )


def _concat(parts: list[MaskCandidates], size) -> MaskCandidates:
    if not parts:
        return MaskCandidates(
            np.zeros((0, 4), np.int64), [], np.zeros(0, np.float32), np.zeros(0, np.float32),
            np.zeros((0, 2), np.float32), np.zeros((0, 4), np.int64), size,
        )
    return MaskCandidates(
        boxes=np.concatenate([p.boxes for p in parts]),
        patches=[q for p in parts for q in p.patches],
        predicted_iou=np.concatenate([p.predicted_iou for p in parts]),
        stability=np.concatenate([p.stability for p in parts]),
        points=np.concatenate([p.points for p in parts]),
        crop_boxes=np.concatenate([p.crop_boxes for p in parts]),
        size=size,
    )


def _take(data: MaskCandidates, index: np.ndarray) -> MaskCandidates:
    index = np.asarray(index, dtype=np.int64)
    return MaskCandidates(
        boxes=data.boxes[index],
        patches=[data.patches[i] for i in index],
        predicted_iou=data.predicted_iou[index],
        stability=data.stability[index],
        points=data.points[index],
        crop_boxes=data.crop_boxes[index],
        size=data.size,
    )
