"""A stack's image features frame by frame: from the feature cache, keyed by
frame and intensity range, or computed by the model's image encoder (once,
on the device; compiled when asked)."""

from __future__ import annotations

import torch

from ..model import FrameFeatures, SAM2Model
from ..model.device import autocast_for
from .features import FeatureCache
from .frames import FrameSource
from .intensity import RangeKeys

__all__ = ["FrameEncoder"]


class FrameEncoder:
    """Image features of ``frames`` under their current intensity range,
    kept in ``cache``; ``compile_encoder``: torch.compile the image encoder
    (CUDA only)."""

    def __init__(self, model: SAM2Model, frames: FrameSource, cache: FeatureCache, *, device: torch.device,
                 autocast: bool, compile_encoder: bool) -> None:
        self.model = model
        self.frames = frames
        self.cache = cache
        self.device = device
        self.autocast = autocast
        self._range_keys = RangeKeys(len(frames))
        self._encode = model.encode_image
        if compile_encoder and device.type == "cuda":
            self._encode = torch.compile(model.encode_image, dynamic=False)

    def key(self, frame: int) -> int:
        """The cache key of ``frame`` under the current intensity range."""
        return self._range_keys.key(self.frames.intensity_range, frame)

    def cached(self, frame: int) -> bool:
        return self.key(frame) in self.cache

    def features(self, frame: int) -> FrameFeatures:
        def compute(_key: int) -> FrameFeatures:
            image = self.frames.model_input(frame, self.model.image_size, device=self.device)
            with torch.inference_mode(), autocast_for(self.device, self.autocast):
                return self._encode(image)

        return self.cache.get_or_compute(self.key(frame), compute, self.device)
