"""A pure-torch stand-in for the parts of torchvision that Meta's automatic
mask generator and image predictor import.

PyPI's torchvision wheels do not load next to the CPU torch wheel (its
compiled ``torchvision::nms`` operator is missing), and sam2 only needs a
few functions from it: ``torchvision.ops.boxes.batched_nms`` and
``box_area`` (the generator) and ``torchvision.transforms`` ``ToTensor``,
``Resize`` and ``Normalize`` (the image predictor). These follow
torchvision's documented semantics exactly:

* ``box_area``: ``(x2 - x1) * (y2 - y1)``;
* ``nms``: sort by score (descending), keep a box unless its IoU with an
  already kept box is greater than the threshold; IoU = inter / union in the
  boxes' dtype; ``batched_nms`` runs it per category (here by the
  coordinate-offset trick torchvision uses);
* ``ToTensor``: ``H x W x C`` uint8 -> ``C x H x W`` float32 divided by 255;
* ``Resize((h, w))`` on a float tensor: bilinear, ``align_corners=False``,
  antialiased (torchvision's default since 0.17);
* ``Normalize(mean, std)``: ``(x - mean) / std`` per channel.

:func:`install` puts them into ``sys.modules`` unless a real torchvision
imports.
"""

from __future__ import annotations

import sys
import types
from typing import List

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    area_a, area_b = box_area(a), box_area(b)
    left_top = torch.max(a[:, None, :2], b[None, :, :2])
    right_bottom = torch.min(a[:, None, 2:], b[None, :, 2:])
    wh = (right_bottom - left_top).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    order = scores.argsort(descending=True, stable=True)
    ious = box_iou(boxes[order], boxes[order])
    alive = torch.ones(len(order), dtype=torch.bool)
    kept = []
    for rank in range(len(order)):
        if not alive[rank]:
            continue
        kept.append(int(order[rank]))
        alive[rank + 1 :] &= ~(ious[rank, rank + 1 :] > iou_threshold)
    return torch.tensor(kept, dtype=torch.int64)


def batched_nms(boxes, scores, idxs, iou_threshold: float) -> torch.Tensor:
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    offsets = idxs.to(boxes) * (boxes.max() + 1)
    return nms(boxes + offsets[:, None], scores, iou_threshold)


class ToTensor:
    def __call__(self, pic) -> torch.Tensor:
        array = np.asarray(pic)
        if array.ndim == 2:
            array = array[:, :, None]
        tensor = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).contiguous()
        if tensor.dtype == torch.uint8:
            return tensor.to(torch.float32).div(255)
        return tensor


class Resize(nn.Module):
    def __init__(self, size) -> None:
        super().__init__()
        self.size: List[int] = [int(s) for s in size]

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        batched = img.unsqueeze(0) if img.dim() == 3 else img
        out = F.interpolate(batched, size=self.size, mode="bilinear", align_corners=False, antialias=True)
        return out[0] if img.dim() == 3 else out


class Normalize(nn.Module):
    def __init__(self, mean: List[float], std: List[float]) -> None:
        super().__init__()
        self.mean: List[float] = [float(m) for m in mean]
        self.std: List[float] = [float(s) for s in std]

    def forward(self, tensor: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
        return (tensor - mean) / std


def install() -> bool:
    """Register the stand-in as ``torchvision`` unless a working one
    imports; returns True when the stand-in is in use."""
    try:
        from torchvision.ops.boxes import batched_nms as _  # noqa: F401
        from torchvision.transforms import Resize as _R  # noqa: F401

        return False
    except Exception:
        pass
    root = types.ModuleType("torchvision")
    ops = types.ModuleType("torchvision.ops")
    boxes = types.ModuleType("torchvision.ops.boxes")
    transforms = types.ModuleType("torchvision.transforms")
    boxes.batched_nms, boxes.box_area, boxes.nms, boxes.box_iou = batched_nms, box_area, nms, box_iou
    transforms.ToTensor, transforms.Resize, transforms.Normalize = ToTensor, Resize, Normalize
    root.ops, root.transforms, ops.boxes = ops, transforms, boxes
    root.__version__ = "0.0-standin"
    for name, module in (("torchvision", root), ("torchvision.ops", ops),
                         ("torchvision.ops.boxes", boxes), ("torchvision.transforms", transforms)):
        sys.modules[name] = module
    return True
