"""User prompts: validation in napari's (y, x) pixels, storage in model pixels.

The public API speaks napari's order: points ``(y, x)`` and boxes
``(y0, x0, y1, x1)`` in pixels of the original image. Here, once, they become
the model's ``(x, y)`` in the ``image_size`` square, scaled as Meta's
predictor does (``coordinate / original size * image_size``).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np
import torch

from ..model import PointPrompts

POSITIVE, NEGATIVE = 1, 0


def check_object_id(obj_id) -> int:
    if isinstance(obj_id, (bool, np.bool_)) or not isinstance(obj_id, (numbers.Integral,)):
        raise TypeError(f"object id must be an integer label value >= 1, got {obj_id!r}")
    obj_id = int(obj_id)
    if obj_id < 1:
        raise ValueError(
            f"object id must be >= 1 (label values; 0 is the background), got {obj_id}"
        )
    return obj_id


def check_frame(frame, num_frames: int) -> int:
    if isinstance(frame, (bool, np.bool_)) or not isinstance(frame, numbers.Integral):
        raise TypeError(f"frame must be an integer index, got {frame!r}")
    frame = int(frame)
    if not 0 <= frame < num_frames:
        raise IndexError(
            f"frame {frame} is out of range: the stack has {num_frames} frame(s), "
            f"valid indices are 0 to {num_frames - 1}"
        )
    return frame


def _as_float_array(values, what: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except OverflowError:  # a Python int beyond float64, e.g. 10**400
        raise ValueError(f"{what} must be finite numbers within the image, got {values!r}") from None
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be numbers, got {values!r}") from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} must be finite numbers (no NaN or inf), got {values!r}")
    return arr


def check_points(points, labels, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``points`` (N x 2, (y, x)) and ``labels`` (N, 1 positive / 0 negative)."""
    pts = _as_float_array(points, "points")
    if pts.ndim == 1 and pts.shape == (2,):
        pts = pts[None]
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) == 0:
        raise ValueError(
            f"points must be an N x 2 array of (y, x) pixel coordinates with N >= 1, "
            f"got shape {pts.shape}"
        )
    labs = np.asarray(labels).reshape(-1) if np.ndim(labels) else np.asarray([labels])
    if len(labs) != len(pts):
        raise ValueError(
            f"points and labels must have the same length: {len(pts)} point(s) but "
            f"{len(labs)} label(s)"
        )
    if labs.dtype.kind not in "biuf" or not np.all(np.isin(labs, (0, 1))):
        raise ValueError(f"labels must be 1 (positive) or 0 (negative), got {labs.tolist()}")
    h, w = size
    outside = (pts[:, 0] < -0.5) | (pts[:, 0] > h - 0.5) | (pts[:, 1] < -0.5) | (pts[:, 1] > w - 0.5)
    if outside.any():
        bad = pts[np.argmax(outside)].tolist()
        raise ValueError(
            f"point (y, x) = {tuple(round(v, 2) for v in bad)} is outside the image of "
            f"{h} x {w} pixels; points are (y, x) with 0 <= y < {h} and 0 <= x < {w}"
        )
    return pts, labs.astype(np.int64)


def check_box(box, size: tuple[int, int]) -> np.ndarray:
    """Validate a ``(y0, x0, y1, x1)`` box; corners may come in any order;
    the part outside the image (``0 <= y <= H``, ``0 <= x <= W``: the
    far edge of the last row and column included) is cut off."""
    arr = _as_float_array(box, "box").reshape(-1)
    if arr.shape != (4,):
        raise ValueError(f"box must be 4 numbers (y0, x0, y1, x1), got {np.shape(box)}")
    y0, y1 = sorted((arr[0], arr[2]))
    x0, x1 = sorted((arr[1], arr[3]))
    h, w = size
    if y1 - y0 <= 0 or x1 - x0 <= 0:
        raise ValueError(
            f"box (y0, x0, y1, x1) = {tuple(arr.tolist())} is empty: it needs a height and a width"
        )
    cy0, cx0 = max(y0, 0.0), max(x0, 0.0)
    cy1, cx1 = min(y1, float(h)), min(x1, float(w))
    if cy1 <= cy0 or cx1 <= cx0:
        raise ValueError(
            f"box (y0, x0, y1, x1) = {tuple(arr.tolist())} lies outside the image of {h} x {w} pixels"
        )
    return np.array([cy0, cx0, cy1, cx1])


def check_mask(mask, size: tuple[int, int]) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.shape != tuple(size):
        raise ValueError(
            f"mask has shape {arr.shape} but frames are {size[0]} x {size[1]}; "
            "give one 2D mask of the frame's size"
        )
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"mask must be boolean or numeric, got dtype {arr.dtype}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError("mask must hold finite numbers (no NaN or inf); nonzero values are the object")
    return arr != 0


@dataclass
class FramePrompts:
    """One object's prompts on one frame, in model pixels (x, y).

    A box comes first as two corner points (labels 2 and 3), then the
    clicks in the order they were made. A mask replaces everything else.
    """

    box: np.ndarray | None = None  # (x0, y0, x1, y1)
    points: list[tuple[float, float]] = field(default_factory=list)  # (x, y)
    labels: list[int] = field(default_factory=list)
    mask: np.ndarray | None = None  # S x S bool at model resolution
    dirty: bool = True  # changed since it was last decoded
    # the same prompts as the caller gave them (for session files): (y, x)
    # points, the (y0, x0, y1, x1) box as clipped, the Y x X mask
    given_points: list[tuple[float, float]] = field(default_factory=list)
    given_box: tuple[float, float, float, float] | None = None
    given_mask: np.ndarray | None = None

    def add_clicks(self, points: list[tuple[float, float]], labels: np.ndarray, given: np.ndarray) -> None:
        """Clicks after those there: ``points`` ``(x, y)`` in model pixels,
        ``labels`` 1 / 0, ``given`` the same points ``(y, x)`` as the caller gave them."""
        self.points += points
        self.labels += labels.tolist()
        self.given_points += [(float(y), float(x)) for y, x in given]

    def set_box(self, box: np.ndarray, given: np.ndarray) -> None:
        """``box`` ``(x0, y0, x1, y1)`` in model pixels (``given``: as the
        caller gave it, ``(y0, x0, y1, x1)``) replaces everything there."""
        self.mask, self.points, self.labels = None, [], []
        self.box = box
        self.given_mask, self.given_points = None, []
        self.given_box = tuple(float(v) for v in given)

    def set_mask(self, mask: np.ndarray, given: np.ndarray) -> None:
        """``mask`` (``S x S`` bool at model resolution; ``given``: the
        caller's ``Y x X`` mask) replaces everything there."""
        self.box, self.points, self.labels = None, [], []
        self.mask = mask
        self.given_box, self.given_points, self.given_mask = None, [], given

    def point_prompts(self, device: torch.device) -> PointPrompts | None:
        coords: list = []
        labels: list = []
        if self.box is not None:
            coords += [self.box[:2].tolist(), self.box[2:].tolist()]
            labels += [2, 3]
        coords += [list(p) for p in self.points]
        labels += list(self.labels)
        if not coords:
            return None
        return PointPrompts(
            torch.tensor([coords], dtype=torch.float32, device=device),
            torch.tensor([labels], dtype=torch.int32, device=device),
        )


class PromptScaler:
    """(y, x) original pixels -> (x, y) model pixels, in float32 as the
    reference computes them."""

    def __init__(self, size: tuple[int, int], image_size: int) -> None:
        self.h, self.w = size
        self.s = image_size

    def _scale(self, xy: np.ndarray) -> np.ndarray:
        t = torch.as_tensor(np.ascontiguousarray(xy), dtype=torch.float32)  # (N, 2) as (x, y)
        return (t / torch.tensor([self.w, self.h]) * self.s).numpy()

    def points(self, yx: np.ndarray) -> list[tuple[float, float]]:
        xy = self._scale(yx[:, ::-1])
        return [(float(x), float(y)) for x, y in xy]

    def box(self, y0x0y1x1: np.ndarray) -> np.ndarray:
        y0, x0, y1, x1 = y0x0y1x1
        return self._scale(np.array([[x0, y0], [x1, y1]])).reshape(4)
