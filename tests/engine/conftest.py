"""Shared set-up for the engine's own tests: small random-weight models,
small synthetic stacks and call counters wrapped around the model."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from napari_sam2.config import load_config
from napari_sam2.model import build_model

IMAGE_SIZE = 128  # model input: small keeps the whole folder quick on a CPU


def make_model(seed: int = 0, **overrides):
    """A random-weight tiny SAM 2.1 at ``IMAGE_SIZE`` whose object-score head
    leans to "present", so that masks are not all empty.

    Its ``encode_image`` remembers the images it has encoded (by content),
    so that the many sessions of a test module over the same frames share
    the work; a session still calls it once per frame it needs, which is
    what the tests count."""
    torch.manual_seed(seed)
    model = build_model(load_config("sam2.1_hiera_tiny", image_size=IMAGE_SIZE, **overrides)).eval()
    with torch.no_grad():
        model.mask_decoder.pred_obj_score_head.layers[2].bias += 1.0
    encode, seen = model.encode_image, {}

    def encode_image(images):
        key = hashlib.sha1(images.detach().cpu().numpy().tobytes()).digest()
        if key not in seen:
            seen[key] = encode(images)
        return seen[key]

    model.encode_image = encode_image
    return model


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread():
    """These models are tiny: one thread is faster than several fighting
    over a shared CPU. The previous setting comes back afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model():
    return make_model()


def blobs(n: int = 6, h: int = 40, w: int = 56, seed: int = 0) -> np.ndarray:
    """``n x h x w`` uint8: two bright blobs drifting over a noisy background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    frames = []
    for t in range(n):
        img = 30 + 20 * rng.random((h, w))
        for cy, cx, r in ((h * 0.35 + t, w * 0.3 + t, h * 0.15), (h * 0.65, w * 0.7 - t, h * 0.12)):
            img += 170 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2))
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(frames)


class Calls:
    """Wraps ``model.<name>`` (an instance attribute, undone by monkeypatch)
    and records the batch size of every call."""

    def __init__(self, monkeypatch, model, name: str) -> None:
        self.batches: list[int] = []
        original = getattr(model, name)

        def wrapper(*args, **kwargs):
            first = args[0] if args else next(iter(kwargs.values()))
            batch = first.embedding.shape[0] if hasattr(first, "embedding") else first.shape[0]
            self.batches.append(int(batch))
            return original(*args, **kwargs)

        monkeypatch.setattr(model, name, wrapper)

    @property
    def count(self) -> int:
        return len(self.batches)


@pytest.fixture
def count_calls(monkeypatch):
    """``count_calls(model, "track_step")`` -> a :class:`Calls` recorder.
    Wrap ``encode_image`` before building the session (it keeps a reference)."""

    def make(model, name):
        return Calls(monkeypatch, model, name)

    return make
