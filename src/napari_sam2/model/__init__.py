"""The SAM 2 network in plain PyTorch (no napari, no Qt)."""

from .build import (
    CheckpointMismatchError,
    build_model,
    check_weights_fit,
    load_weights_strict,
    remap_meta_keys,
    to_meta_keys,
)
from .prompt_encoder import PointPrompts
from .sam2 import NO_OBJECT_LOGIT, FrameFeatures, HeadOutput, SAM2Model, StepOutput
from .tracking import MemoryReadout, read_memory

__all__ = [
    "CheckpointMismatchError",
    "FrameFeatures",
    "HeadOutput",
    "MemoryReadout",
    "NO_OBJECT_LOGIT",
    "PointPrompts",
    "SAM2Model",
    "StepOutput",
    "build_model",
    "check_weights_fit",
    "load_weights_strict",
    "read_memory",
    "remap_meta_keys",
    "to_meta_keys",
]
