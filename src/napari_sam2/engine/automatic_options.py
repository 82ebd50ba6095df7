"""The settings of segment-everything and track-everything
(:class:`AutomaticOptions`), checked when made; ``engine/automatic`` uses
them and re-exports the class."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AutomaticOptions:
    """Settings of segment-everything and track-everything.

    Meta's generator parameters (same names without the ``crop_n_`` prefix
    noise; see ``SAM2AutomaticMaskGenerator``):

    ``points_per_side``: the prompt grid is ``points_per_side**2`` points;
    ``points_per_batch``: prompts decoded together (memory vs. speed);
    ``pred_iou_thresh``: keep masks whose predicted IoU is above it;
    ``stability_score_thresh``: keep masks whose stability score (IoU of the
    mask thresholded at ``mask_threshold +- stability_score_offset``) is at
    least it; ``mask_threshold``: logit cut-off of a mask;
    ``box_nms_thresh``: box IoU above which the lower predicted IoU of two
    masks is dropped; ``crop_layers``: extra layers of overlapping crops
    (layer i has ``(2**i)**2`` crops), de-duplicated across crops by
    ``crop_nms_thresh``, overlapping by ``crop_overlap_ratio`` and with
    ``points_per_side / crop_point_downscale**i`` points a side;
    ``min_mask_region_area``: holes and islands smaller than this are
    removed from each mask (then NMS again, preferring unchanged masks);
    ``area_bonus``: candidates are ranked, for the box NMS within a crop
    and for composing the label image, by predicted IoU plus
    ``area_bonus * ln(area in pixels)`` (0: by predicted IoU alone, as
    Meta's generator; see below);
    ``use_m2m``: one more decoder pass per mask with its own low-res logits
    as mask input; ``multimask_output``: three masks per point (the
    default, as Meta's generator), one if False, None as the model's config
    says for clicks (``multimask_output_in_sam``: True for Meta's models,
    False for the demo model, whose clicks decode one mask but whose three
    multimask outputs and IoU head were trained for this mode).

    Composing the label image: ``split_neck``: a mask over touching round
    objects is split where its distance transform's saddle between two
    peaks is at most this fraction of the lower peak (``engine/touching``;
    None: masks as the generator gives them, as Meta's), and its pieces
    under ``split_min_share`` of the largest piece are dropped (a spill onto
    a neighbour); ``duplicate_overlap``: a mask more than this
    fraction of which better masks already claim is a duplicate (a part of
    an object already found) and is dropped.

    For microscopy: ``min_object_area`` and ``max_object_area`` (pixels; None
    = no upper limit) bound the objects kept in the label image;
    track-everything's ``new_object_overlap`` (an automatic object covered
    by tracked objects on less than this fraction of its pixels is new) and
    ``lost_after`` (frames in a row that SAM 2's object score says an object
    is absent before it stops being tracked) and ``separate_merged`` (on each
    detection frame, a tracked mask that holds two or more automatic objects
    is prompted again with the one that continues it, the others become new
    objects; see ``engine/track_all``) and ``valley_cut`` (a tracked
    object whose area falls to at most this fraction of its peak before and
    of its peak after, with at least two frames after the low, holds two
    objects one after the other: two nuclei stacked in z that SAM 2 follows
    as one, or a cell that left and another that came; its track is cut at
    the low and what follows becomes a new object; None: never) and
    ``watch_edges`` (on each frame between detection frames, the grid's
    points along the frame's border that no tracked object covers are
    decoded, and an object there that touches the border and is not
    tracked yet becomes a new object on that frame: a cell entering the
    field is tracked from the frame it comes in on, not from the next
    detection frame; False: only detection frames find new objects).

    The defaults suit cells and nuclei of a few to a few hundred pixels
    across: a 32 x 32 grid, a lenient predicted-IoU cut (the shipped demo
    model's IoU head ranks poorly), a strict box NMS (touching cells have
    touching, not overlapping, boxes) and objects of at least 12 pixels and
    at most a quarter of a 1024 x 1024 frame; masks over two touching cells
    split (``split_neck`` 0.9, ``split_min_share`` 0.4) and ``area_bonus``
    0.3: of nested candidates the larger wins (a part of a cell no longer
    displaces the whole cell), with a stability cut of 0.8. All chosen on
    training seeds of the synthetic data with the demo model and 16 x 16
    points; segment F1 on seeds 7000-7059: no bonus, cut 0.85, neck 0.8:
    0.849; bonus 0.3: 0.894; and cut 0.8: 0.904 (0.75: 0.896); and neck 0.9:
    0.924 (neck 0.7 / 0.85 / 0.95 / 1.0: 0.847 / 0.915 / 0.924 / 0.778).
    Track everything on training time-lapses 0-5, DET / TRA, the same
    steps: 0.846 / 0.830, 0.863 / 0.842, 0.896 / 0.876, 0.901 / 0.884; on
    z-stacks 0-11 nuclei missed 12, 8, 5, 3 of 120 (bonus 0 is Meta's
    ranking, as the equality tests use); watching the edges took DET / TRA
    0.901 / 0.884 -> 0.918 / 0.902 (seeds 6-11: 0.916 / 0.899 -> 0.929 /
    0.912), z-stacks unchanged (3 of 120 missed). Lineages got worse with the bonus
    (a mask over two fresh daughters outranks each; training seeds 0-5:
    BC(0) 0.662 -> 0.617) and with the cut of 0.8 (0.662 -> 0.553), so
    track-everything segments with ``DivisionOptions.area_bonus`` (0) and
    ``DivisionOptions.stability_score_thresh`` (0.85) while it finds divisions.
    """

    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.5
    stability_score_thresh: float = 0.8
    stability_score_offset: float = 1.0
    mask_threshold: float = 0.0
    box_nms_thresh: float = 0.5
    crop_layers: int = 0
    crop_nms_thresh: float = 0.7
    crop_overlap_ratio: float = 512 / 1500
    crop_point_downscale: int = 1
    min_mask_region_area: int = 0
    area_bonus: float = 0.3
    use_m2m: bool = False
    multimask_output: bool | None = True
    split_neck: float | None = 0.9
    split_min_share: float = 0.4
    duplicate_overlap: float = 0.5
    min_object_area: int = 12
    max_object_area: int | None = 262144
    new_object_overlap: float = 0.3
    lost_after: int = 3
    separate_merged: bool = True
    valley_cut: float | None = 0.4
    watch_edges: bool = True

    def __post_init__(self) -> None:
        def positive_int(name: str) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"AutomaticOptions.{name} must be an integer >= 1, got {v!r}")

        def nonnegative_int(name: str) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"AutomaticOptions.{name} must be an integer >= 0, got {v!r}")

        def fraction(name: str) -> None:
            v = getattr(self, name)
            if not isinstance(v, (int, float, np.floating)) or not 0.0 <= v <= 1.0:
                raise ValueError(f"AutomaticOptions.{name} must be a number in [0, 1], got {v!r}")

        for name in ("points_per_side", "points_per_batch", "crop_point_downscale", "lost_after"):
            positive_int(name)
        for name in ("crop_layers", "min_mask_region_area", "min_object_area"):
            nonnegative_int(name)
        for name in ("pred_iou_thresh", "stability_score_thresh", "box_nms_thresh",
                     "crop_nms_thresh", "crop_overlap_ratio", "new_object_overlap", "duplicate_overlap",
                     "split_min_share"):
            fraction(name)
        def optional_share(name: str, *, one: bool) -> None:
            # None, or a number in (0, 1] (``one``) or (0, 1)
            v = getattr(self, name)
            if v is None:
                return
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)) or not (
                    0.0 < v <= 1.0 if one else 0.0 < v < 1.0):
                raise ValueError(f"AutomaticOptions.{name} must be a number in (0, 1{']' if one else ')'} "
                                 f"or None, got {v!r}")

        optional_share("valley_cut", one=False)
        optional_share("split_neck", one=True)
        if not isinstance(self.area_bonus, (int, float, np.floating)) or isinstance(self.area_bonus, bool) \
                or not 0.0 <= self.area_bonus < math.inf:
            raise ValueError(f"AutomaticOptions.area_bonus must be a number >= 0, got {self.area_bonus!r}")
        for name in ("stability_score_offset", "mask_threshold"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"AutomaticOptions.{name} must be a finite number")
        for name in ("separate_merged", "watch_edges"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"AutomaticOptions.{name} must be True or False, got {getattr(self, name)!r}")
        if self.multimask_output not in (None, True, False):
            raise ValueError(f"AutomaticOptions.multimask_output must be True, False or None, got {self.multimask_output!r}")
        if self.max_object_area is not None:
            nonnegative_int("max_object_area")
            if self.max_object_area < self.min_object_area:
                raise ValueError(
                    f"AutomaticOptions.max_object_area ({self.max_object_area}) must be >= "
                    f"min_object_area ({self.min_object_area})"
                )


def checked_options(options) -> AutomaticOptions:
    """``options``, or the defaults for None; anything else is a TypeError."""
    options = AutomaticOptions() if options is None else options
    if not isinstance(options, AutomaticOptions):
        raise TypeError(f"options must be an AutomaticOptions, got {type(options).__name__}")
    return options
