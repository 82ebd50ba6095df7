"""The session's settings (:class:`SessionOptions`) and the modes they
and :meth:`~napari_sam2.engine.StackSession.propagate` take."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .features import CacheBudget, check_megabytes

__all__ = ["DIRECTIONS", "DIRECTION_MEMORIES", "RERUN_MODES", "SessionOptions"]

DIRECTIONS = ("forward", "backward", "both")
RERUN_MODES = ("downstream", "all")
DIRECTION_MEMORIES = ("shared", "separate")


@dataclass(frozen=True)
class SessionOptions:
    """``feature_cache``: RAM (and optional disk) budget for image features;
    ``history_mb``: budget for tracked frames' memories kept for corrections;
    ``autocast``: bfloat16 on CUDA; ``compile_image_encoder``: torch.compile
    the image encoder (CUDA; the first frames are slow while it compiles).

    ``rerun``: what a prompt change (a correction) puts out of date.
    "downstream" (default, interactive): the frames after it in the
    direction each was tracked. "all": every frame the object was tracked
    on, upstream ones too, since every frame attends to every conditioning
    frame; propagating then gives what Meta's predictor gives when it
    propagates over the whole span again.

    ``direction_memory``: "shared" (default, as Meta's predictor): a pass
    reads the tracked memories of earlier frames whichever direction wrote
    them, so the backward pass of ``propagate("both")`` also reads the
    forward pass's. "separate": forward passes read only memories written
    by forward passes and backward passes only those of backward passes
    (plus the conditioning frames, always), so that the backward half of
    "both" equals a pure backward propagation from the same prompts."""

    feature_cache: CacheBudget = CacheBudget()
    history_mb: float = 256.0
    autocast: bool = True
    compile_image_encoder: bool = False
    rerun: str = "downstream"
    direction_memory: str = "shared"

    def __post_init__(self) -> None:
        if not isinstance(self.feature_cache, CacheBudget):
            raise TypeError(
                f"feature_cache must be a CacheBudget, got {type(self.feature_cache).__name__}"
            )
        check_megabytes(self.history_mb, "history_mb")
        for name in ("autocast", "compile_image_encoder"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.rerun not in RERUN_MODES:
            raise ValueError(f"rerun must be one of {', '.join(RERUN_MODES)}, got {self.rerun!r}")
        if self.direction_memory not in DIRECTION_MEMORIES:
            raise ValueError(
                f"direction_memory must be one of {', '.join(DIRECTION_MEMORIES)}, got {self.direction_memory!r}"
            )
