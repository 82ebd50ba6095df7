"""A frame as the image encoder's input: resized, three channels, normalised.

* uint8 data with the range ``(0, 255)`` follows Meta's reference loader
  exactly: an 8-bit RGB PIL image resized with PIL's default filter
  (bicubic), divided by 255 in float64, cast to float32, then normalised
  with the ImageNet mean and std (PIL on the CPU, then ``device``). The
  result is bit-identical to ``sam2.utils.misc`` reading the same pixels
  from a lossless file with its default loader (its asynchronous loader
  normalises in float64 and differs by one float32 step).
* All other data is never quantised to 8 bits: the mapped float32 frame
  is resized with torch's antialiased bicubic filter (the same kernel as
  PIL's bicubic), one axis at a time in the order the installed Pillow
  (13) uses for a square output, clamping to ``[0, 1]`` after each pass
  as PIL's 8-bit path clips. Measured on uint8-representable data
  resized to 1024 (smooth and noise images, 256 to 2048 pixels a side):
  within 1.09 grey levels (of 255) of PIL's 8-bit path, mean at most
  0.32, which is the 8-bit path's own rounding. A single 2D resize
  without the intermediate clamp (PIL mode "F" or torch's antialiased
  bicubic, which agree to 1e-7) is off by up to 24 levels next to
  clipped overshoots; torch's bicubic without antialiasing by up to 130
  levels when shrinking. Being torch, the resize runs on ``device``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .intensity_range import map_to_unit

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "model_input"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def model_input(
    frame: np.ndarray, dtype: np.dtype, lo_hi: tuple[float, float], size: int, device: torch.device
) -> torch.Tensor:
    """``H x W`` or ``H x W x k`` frame of data of ``dtype``, mapped by
    ``lo_hi`` -> float32 ``1 x 3 x S x S`` on ``device`` (see the module
    docstring for the two resize paths)."""
    if frame.ndim == 2:
        frame = frame[:, :, None]  # (H, W, 1)
    if dtype == np.uint8 and lo_hi == (0.0, 255.0):
        image = _resize_uint8_like_reference(frame, size).to(device)  # (k, S, S)
    else:
        unit = torch.from_numpy(map_to_unit(frame, lo_hi))  # (H, W, k)
        unit = unit.permute(2, 0, 1).unsqueeze(0)  # (1, k, H, W)
        work = device if device.type in ("cpu", "cuda") else torch.device("cpu")
        image = _resize_like_pil(unit.to(work), size)[0].to(device)  # (k, S, S)
    image = _to_three_channels(image)  # (3, S, S)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=device)[:, None, None]
    return ((image - mean) / std).unsqueeze(0)  # (1, 3, S, S)


def _resize_uint8_like_reference(frame: np.ndarray, size: int) -> torch.Tensor:
    """``H x W x k`` uint8 -> ``k x S x S`` float32 in [0, 1], as Meta's loader.

    PIL resize with its default filter (bicubic for 8-bit images), then
    ``/ 255`` in float64 and a cast to float32. PIL resamples each band on
    its own, so one band per channel equals the reference's RGB resize.
    """
    if frame.shape[2] == 3:
        resized = np.asarray(Image.fromarray(frame).resize((size, size)))  # (S, S, 3)
    else:
        planes = [
            np.asarray(Image.fromarray(frame[:, :, c]).resize((size, size)))
            for c in range(frame.shape[2])
        ]
        resized = np.stack(planes, axis=-1)  # (S, S, k)
    unit64 = resized / 255.0
    return torch.from_numpy(unit64).permute(2, 0, 1).to(torch.float32)  # (k, S, S)


def _vertical_pass_first(height: int, width: int, size: int) -> bool:
    """Whether Pillow resizes rows (vertical pass) before columns.

    Measured on Pillow 13 for a square ``size x size`` output: it shrinks the
    height first when it shrinks the height and ``2 * W < H + S``; otherwise
    it resizes columns first (as every older Pillow does).
    """
    return size < height and 2 * width < height + size


def _resize_like_pil(unit: torch.Tensor, size: int) -> torch.Tensor:
    """``B x C x H x W`` float in [0, 1] -> ``B x C x S x S``, PIL-bicubic-like.

    Antialiased bicubic (a = -0.5, PIL's kernel), one axis per pass in
    Pillow's order, clamped to [0, 1] after each pass as PIL's 8-bit path
    clips; no 8-bit rounding.
    """
    height, width = unit.shape[-2:]
    if _vertical_pass_first(height, width, size):
        steps = [(size, width), (size, size)]
    else:
        steps = [(height, size), (size, size)]
    out = unit
    for step in steps:
        if tuple(out.shape[-2:]) == step:
            continue
        out = F.interpolate(out, size=step, mode="bicubic", align_corners=False, antialias=True)
        out = out.clamp_(0.0, 1.0)
    return out


def _to_three_channels(image: torch.Tensor) -> torch.Tensor:
    """``k x S x S`` (k = 1, 2, 3) -> ``3 x S x S``: grey replicated, 2 -> (c0, c1, 0)."""
    k = image.shape[0]
    if k == 3:
        return image
    if k == 1:
        return image.expand(3, -1, -1)
    return torch.cat([image, torch.zeros_like(image[:1])], dim=0)
