"""Filling tiny background holes in low-resolution mask logits.

Meta's video predictor does this on the GPU with a compiled extension (and
silently skips it when the extension is missing, e.g. on CPU installs). We
do it everywhere, with scipy: background regions (logit <= 0) of at most
``max_area`` low-res pixels, 8-connected, get a small positive logit.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

_EIGHT = np.ones((3, 3), dtype=bool)
FILL_LOGIT = 0.1


def fill_small_holes(logits: torch.Tensor, max_area: int) -> torch.Tensor:
    """``B x 1 x h x w`` logits with small background components filled."""
    if max_area <= 0:
        return logits
    background = (logits <= 0).cpu().numpy()
    fill = np.zeros_like(background)
    for i in range(background.shape[0]):
        bg = background[i, 0]
        if not bg.any() or bg.all():
            continue
        comp, n = ndimage.label(bg, structure=_EIGHT)
        if n == 0:
            continue
        areas = np.bincount(comp.ravel())
        small = areas <= max_area
        small[0] = False
        fill[i, 0] = small[comp]
    if not fill.any():
        return logits
    mask = torch.from_numpy(fill).to(logits.device)
    return torch.where(mask, torch.full_like(logits, FILL_LOGIT), logits)
