"""When a tracked object counts as divided: :class:`DivisionOptions`, the
thresholds of :class:`~.divisions.DivisionWatcher` (pixels and frames)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DivisionOptions"]


@dataclass(frozen=True)
class DivisionOptions:
    """When a tracked object counts as divided (pixels and frames).

    ``persist``: frames in a row (the division frame included) the two
    daughters must be seen before a division counts (2). ``max_delay``: a
    division must be confirmed within this many frames from the one it is
    dated to (3; the frames a pass yields lag that many minus one, plus one
    with ``back_date_growth``, behind the one it tracks). ``min_mother_frames``:
    frames the mother must have been one cell before it (2; a mask that
    holds two cells from its first frame is two touching cells, not a
    division; a mask as round as ``mother_elongation`` allows that SAM's
    decodes cut in two side by side counts as one cell here, and as the
    mother's last frame).
    ``min_daughter_area``: pixels of the smaller daughter (30).
    ``daughter_share``: the share of the mother's mask each daughter covers
    in a split (0.25 to 0.75: roughly halves). ``max_overlap``: IoU of the
    two daughters' masks as SAM decodes them, above which they are one
    cell (0.3). ``min_inside``: share of each daughter's decoded mask that
    lies inside the mother's mask in a split (0.4). ``min_elongation``: a
    one-component mask is tested for a split only when its long axis is
    this many times its short one (1.25; round cells are not tested).
    ``max_neck``: the boundary between the two cells of a split, relative
    to the smaller one's diameter, above which the mask is one elongated
    cell cut across, or two cells side by side, not two cells at a waist
    (1.0). ``min_growth``: a split whose first frame has a longer boundary
    still counts when the mask grew by this factor from the frame before
    (1.08: two daughters spread over more than their rounded mother).
    ``mother_elongation``: the mother's mask on the frame before the
    division is at most this elongated (1.35: cells round up to divide;
    None: any shape). ``elongation_rise``: a split that is two cells side by
    side on every frame (no waist, no growth) still counts when the mask's
    elongation on the division frame is this many times the mother's (1.4:
    a round mother that suddenly became two half-discs; None: never).
    ``split_neck``: when SAM's decodes do not give two cells, the mask is
    two cells if it splits at a neck this narrow relative to the lower of
    its two distance-transform peaks (0.8; None: SAM's decodes only).
    ``stretch_split``: where neither SAM's decodes nor a neck give two
    cells, a mask that keeps its area (within ``area_drop[1]`` and its
    inverse) and became this many times as elongated as it was on the last
    frame it was one cell is cut in two across its long axis (1.3: a cell
    that divides stretches before SAM's decodes separate its daughters;
    None: never).
    ``back_date_growth``: a split first seen on a frame after one where the
    one-cell mask grew by this factor over the frame before it is dated to
    that frame, its mask shared between the daughters seen next, each pixel
    to the nearer (1.08: the daughters had begun to spread while SAM still
    gave one mask; None: never; on, the frames a pass yields lag one more).
    ``split_rise``: a split counts only when the mask on its first frame is
    at least this many times as elongated as on the mother's last frame
    (1.2: two daughters side by side are longer than their rounded mother;
    a split that did not stretch is two cells that touched all along or a
    cell cut across: of the divisions track everything made on training
    seeds 0-23, the correct ones but one rose by 1.25 or more, and 9 of the
    14 wrong ones by 1.18 or less; None: any).
    ``area_drop``: the area ratio to the frame before that counts as
    halving (0.35 to 0.75). ``sister_area``: the sister's area relative to
    the kept half (0.4 to 2.5). ``max_distance``: pixels between the kept
    half and the sister (4). ``area_bonus`` and ``stability_score_thresh``:
    the ``AutomaticOptions`` values track-everything segments with while it
    finds divisions (None: the AutomaticOptions' own). 0 and 0.85, not the
    AutomaticOptions defaults 0.3 and 0.8: a bonus for larger masks lets
    one mask over two fresh daughters outrank each of them, and on training
    seeds 0-5 the bonus took BC(0) 0.662 -> 0.617 and the lower stability
    cut 0.662 -> 0.553 (divisions found 16 -> 14 of 25 either way).
    """

    persist: int = 2
    max_delay: int = 3
    min_mother_frames: int = 2
    min_daughter_area: int = 30
    daughter_share: tuple[float, float] = (0.25, 0.75)
    max_overlap: float = 0.3
    min_inside: float = 0.4
    min_elongation: float = 1.25
    max_neck: float = 1.0
    min_growth: float = 1.08
    mother_elongation: float | None = 1.35
    elongation_rise: float | None = 1.4
    split_neck: float | None = 0.8
    stretch_split: float | None = 1.3
    back_date_growth: float | None = 1.08
    split_rise: float | None = 1.2
    area_drop: tuple[float, float] = (0.35, 0.75)
    sister_area: tuple[float, float] = (0.4, 2.5)
    max_distance: float = 4.0
    area_bonus: float | None = 0.0
    stability_score_thresh: float | None = 0.85

    def __post_init__(self) -> None:
        for name in ("persist", "max_delay", "min_mother_frames", "min_daughter_area"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.max_delay < self.persist:
            raise ValueError(f"max_delay ({self.max_delay}) must be at least persist ({self.persist})")
        for name, top in (("daughter_share", 1.0), ("area_drop", 1.0), ("sister_area", None)):
            lo, hi = _pair(getattr(self, name), name)
            if not 0 <= lo <= hi or (top is not None and hi > top):
                bound = f"0 <= low <= high <= {top}" if top is not None else "0 <= low <= high"
                raise ValueError(f"{name} must be (low, high) with {bound}, got {getattr(self, name)!r}")
        for name in ("max_overlap", "min_inside"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a fraction in [0, 1], got {value!r}")
        _check_optional(self, "split_neck", lambda v: 0 < v <= 1, "a number in (0, 1]")
        _check_optional(self, "stretch_split", lambda v: v >= 1, "a number >= 1")
        _check_optional(self, "back_date_growth", lambda v: v >= 1, "a number >= 1")
        _check_optional(self, "split_rise", lambda v: v >= 1, "a number >= 1")
        if not isinstance(self.min_elongation, (int, float)) or self.min_elongation < 1:
            raise ValueError(f"min_elongation must be a number >= 1, got {self.min_elongation!r}")
        for name in ("max_distance", "max_neck", "min_growth", "mother_elongation", "elongation_rise", "area_bonus"):
            value = getattr(self, name)
            if value is None and name in ("mother_elongation", "elongation_rise", "area_bonus"):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        _check_optional(self, "stability_score_thresh", lambda v: 0 <= v <= 1, "a fraction in [0, 1]")


def _pair(value, name: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high), got {value!r}") from None
    return lo, hi


def _check_optional(options: DivisionOptions, name: str, valid, expected: str) -> None:
    """``options.<name>`` is None or a number (not a bool) for which ``valid`` holds."""
    value = getattr(options, name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not valid(value)):
        raise ValueError(f"{name} must be {expected} or None, got {value!r}")
