"""The camera model and the random streams shared by both scene generators."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from .params import ImagingParams

_UINT16_MAX = 65535


class _Streams(NamedTuple):
    """Independent random streams derived from one seed."""

    scene: np.random.Generator
    texture: np.random.Generator
    noise: np.random.Generator


def _streams(seed: int) -> _Streams:
    scene, texture, noise = np.random.SeedSequence(seed).spawn(3)
    return _Streams(np.random.default_rng(scene), np.random.default_rng(texture),
                    np.random.default_rng(noise))


class _Optics(NamedTuple):
    background: np.ndarray  # Y x X, counts above the offset
    illumination: np.ndarray  # Y x X, relative (1 = nominal)


def _optics(height: int, width: int, imaging: ImagingParams,
            rng: np.random.Generator) -> _Optics:
    """Smooth background and illumination fields for one acquisition."""
    yy = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None]  # Y x 1
    xx = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]  # 1 x X
    wave = np.zeros((height, width), np.float32)
    for _ in range(3):
        fy, fx = rng.uniform(-1.2, 1.2, 2)
        phase = rng.uniform(0.0, 2.0 * math.pi)
        wave += np.cos(math.pi * (fy * yy + fx * xx) + phase)
    background = imaging.background * np.maximum(
        1.0 + imaging.background_variation * wave / 3.0, 0.1)
    cy, cx = rng.uniform(-0.3, 0.3, 2)
    r2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / 2.0  # 1 at a centred corner
    illumination = np.maximum(1.0 - imaging.vignetting * r2, 0.1)
    return _Optics(background.astype(np.float32), illumination.astype(np.float32))


_POISSON_EXACT_BELOW = 40.0  # mean photons; above, a Gaussian is as good and faster


def _expose(expected: np.ndarray, imaging: ImagingParams,
            rng: np.random.Generator) -> np.ndarray:
    """Expected counts above offset (any shape) -> noisy uint16 counts.

    Photon counts are Poisson; where the mean exceeds
    ``_POISSON_EXACT_BELOW`` photons they are drawn from the matching
    Gaussian (indistinguishable there, and much faster).
    """
    photons = np.maximum(expected, 0.0).astype(np.float32) / np.float32(imaging.gain)
    normal = rng.standard_normal(photons.shape, dtype=np.float32)
    counted = photons + np.sqrt(photons) * normal
    low = photons < _POISSON_EXACT_BELOW
    counted[low] = rng.poisson(photons[low])
    counts = np.float32(imaging.camera_offset) + np.float32(imaging.gain) * counted
    if imaging.read_noise > 0:
        counts += np.float32(imaging.read_noise) * rng.standard_normal(
            photons.shape, dtype=np.float32)
    return np.clip(np.rint(counts), 0, _UINT16_MAX).astype(np.uint16)


def _smooth_noise(shape: tuple[int, ...], sigma: float | tuple[float, ...],
                  rng: np.random.Generator) -> np.ndarray:
    """Gaussian-filtered white noise with zero mean and unit std (float32)."""
    noise = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    noise -= noise.mean()
    std = float(noise.std())
    return noise / std if std > 0 else noise


def _relabel(labels: np.ndarray, parents: dict[int, int]) -> tuple[np.ndarray, dict[int, int]]:
    """Renumber the ids present in ``labels`` to ``1..N`` in increasing order.

    ``parents`` maps old ids to old mother ids; the result maps new ids to
    new mother ids (0 where the mother never shows in ``labels``).
    """
    present = np.flatnonzero(np.bincount(labels.ravel()))
    present = present[present > 0]
    size = max(int(labels.max()), max(parents, default=0), max(parents.values(), default=0))
    lut = np.zeros(size + 1, np.int32)
    lut[present] = np.arange(1, len(present) + 1, dtype=np.int32)
    new_parents = {int(lut[old]): int(lut[parents.get(int(old), 0)]) for old in present}
    return lut[labels], new_parents


def _lognormal_factor(spread: float, rng: np.random.Generator) -> float:
    """A positive factor with median 1 and log-std ``spread``."""
    return float(math.exp(spread * rng.standard_normal()))
