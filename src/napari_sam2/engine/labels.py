"""Turning per-object mask logits into one label frame, written whole."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


INT64_MAX = int(np.iinfo(np.int64).max)


def check_labels_array(labels, shape: tuple[int, int, int]):
    """A caller's label array to write into: an array (numpy, zarr, dask-like
    with ``shape``, ``dtype`` and item assignment), writable, of the right
    shape and an integer dtype."""
    if not all(hasattr(labels, name) for name in ("shape", "dtype", "__setitem__")):
        raise TypeError(
            f"labels must be an array to write into (numpy, zarr...) with shape {tuple(shape)}, "
            f"got {type(labels).__name__}"
        )
    if tuple(labels.shape) != tuple(shape):
        raise ValueError(
            f"labels array has shape {tuple(labels.shape)} but the stack needs {tuple(shape)} "
            "(frames along the propagation axis x Y x X)"
        )
    try:
        dtype = np.dtype(labels.dtype)
    except TypeError:
        raise TypeError(f"labels array must have an integer dtype, got {labels.dtype}") from None
    if dtype.kind not in "iu":
        raise TypeError(f"labels array must have an integer dtype, got {dtype}")
    flags = getattr(labels, "flags", None)
    if getattr(labels, "read_only", False) or (flags is not None and not getattr(flags, "writeable", True)):
        raise ValueError(
            "labels array is read-only; give a writable array (e.g. numpy.array(labels) or a "
            "zarr array opened with mode='r+')"
        )
    return labels


def check_id_fits(obj_id: int, dtype) -> None:
    """``obj_id`` must fit the labels dtype and torch's int64 (ids are
    handled as int64 tensors when frames are composed)."""
    info = np.iinfo(np.dtype(dtype))
    top = min(int(info.max), INT64_MAX)
    if obj_id > top:
        why = " as ids are computed in int64" if top < int(info.max) else ""
        raise ValueError(
            f"object id {obj_id} does not fit the labels array of dtype {np.dtype(dtype)} "
            f"(max {top}{why}); use a smaller id or a wider labels dtype"
        )


def upsample_logits(low_res: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``K x 1 x h x w`` low-resolution logits -> ``K x H x W`` at the frame's size."""
    if tuple(low_res.shape[-2:]) == tuple(size):
        return low_res[:, 0].float()
    return F.interpolate(low_res.float(), size=size, mode="bilinear", align_corners=False)[:, 0]


def exclusive_logits(logits: torch.Tensor, others: torch.Tensor | None = None) -> torch.Tensor:
    """``N x 1 x H x W`` mask logits of objects sharing a frame, each with
    the pixels where another object (of ``logits`` or of the competitors
    ``others``, ``M x 1 x H x W``, not returned) has a higher logit pushed
    to -10 or below: what each object's memory is encoded from when
    ``non_overlap_masks_for_mem_enc`` is on."""
    everyone = logits if others is None else torch.cat([logits, others])
    winner = everyone.argmax(dim=0, keepdim=True)  # (1, 1, H, W)
    rows = torch.arange(len(logits), device=logits.device)[:, None, None, None]
    return torch.where(winner == rows, logits, logits.clamp(max=-10.0))


def compose_frame(
    old: np.ndarray,
    ids: list[int],
    logits: torch.Tensor,
    *,
    kept=(),
    claimants=None,
) -> np.ndarray:
    """The new label frame.

    ``old``: the frame's current labels (H x W); ``ids``: the objects whose
    masks are known, with ``logits`` (``K x H x W``, one per id). Each pixel
    where some object's logit is > 0 goes to the object with the highest
    logit; these objects' old pixels are cleared first, so the frame holds
    their masks whatever it held before.

    ``kept``: tracked objects whose masks are not known here (e.g. their
    memory of this frame was evicted): their pixels in ``old`` stay, except
    where the winning object is one of ``claimants`` (the objects just
    computed, default all of ``ids``), whose new masks may have grown there.
    Pixels holding any other label value (painted by hand) are kept.
    """
    new = np.array(old, copy=True)
    if not ids:
        return new
    best, winner = logits.max(dim=0)  # (H, W)
    lut = torch.tensor([0] + list(ids), dtype=torch.int64, device=logits.device)
    painted = torch.where(best > 0, lut[winner + 1], lut[0]).cpu().numpy()
    mine = np.isin(new, ids)
    free = mine | (new == 0)
    if len(kept):
        taking = list(ids) if claimants is None else list(claimants)
        free |= np.isin(new, list(kept)) & np.isin(painted, taking) & (painted != 0)
    new[mine] = 0
    new[free] = painted[free].astype(new.dtype, copy=False)
    return new
