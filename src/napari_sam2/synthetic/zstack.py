"""The z-stack generator: a widefield stack through textured, randomly oriented 3D nuclei."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from .camera import _expose, _lognormal_factor, _optics, _relabel, _smooth_noise, _streams
from .params import Synthetic, ZStackParams


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3 x 3 rotation matrix (columns: the body axes)."""
    q = rng.standard_normal(4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


class _Nucleus(NamedTuple):
    center: np.ndarray  # (z, y, x) in lateral pixels
    axes: np.ndarray  # (3,) semi-axes
    rotation: np.ndarray  # 3 x 3, columns = body axes in (z, y, x)
    signal: float
    nucleoli: np.ndarray  # K x 4: body-frame centre (3,) + radius


def _place_nuclei(p: ZStackParams, rng: np.random.Generator) -> list[_Nucleus]:
    z_extent = (p.n_slices - 1) * p.z_step
    nuclei: list[_Nucleus] = []
    for _ in range(p.n_nuclei):
        radius = p.radius * _lognormal_factor(p.radius_spread, rng)
        for _attempt in range(50):
            center = np.array([
                rng.uniform(-0.3 * radius, z_extent + 0.3 * radius),
                rng.uniform(0.0, p.height), rng.uniform(0.0, p.width)])
            if all(np.linalg.norm(center - n.center) >= (1.0 - p.overlap) *
                   (radius + float(np.exp(np.log(n.axes).mean()))) for n in nuclei):
                break
        else:
            continue
        stretch = 1.0 + p.elongation * rng.uniform(-0.5, 0.5, 3)
        axes = radius * stretch / np.exp(np.log(stretch).mean())
        count = int(rng.poisson(p.nucleoli))
        nucleoli = np.zeros((count, 4))
        for k in range(count):
            nucleoli[k, :3] = axes * rng.uniform(-0.45, 0.45, 3)
            nucleoli[k, 3] = radius * rng.uniform(0.12, 0.25)
        nuclei.append(_Nucleus(center=center, axes=axes, rotation=_random_rotation(rng),
                               signal=p.signal * _lognormal_factor(p.signal_spread, rng),
                               nucleoli=nucleoli))
    return nuclei


def _draw_nucleus(nuc: _Nucleus, nid: int, p: ZStackParams, chromatin: np.ndarray,
                  labels: np.ndarray, emission: np.ndarray, best: np.ndarray) -> None:
    """Paint one ellipsoid into ``labels`` / ``emission`` (Z x Y x X).

    ``best`` holds each voxel's normalised radius in its current owner; a
    voxel goes to the nucleus it is most central in.
    """
    n_z, height, width = labels.shape
    reach = float(nuc.axes.max()) + 1.0
    cz, cy, cx = nuc.center
    z0 = max(math.ceil((cz - reach) / p.z_step), 0)
    z1 = min(math.floor((cz + reach) / p.z_step) + 1, n_z)
    y0, y1 = max(math.floor(cy - reach), 0), min(math.ceil(cy + reach) + 1, height)
    x0, x1 = max(math.floor(cx - reach), 0), min(math.ceil(cx + reach) + 1, width)
    if z0 >= z1 or y0 >= y1 or x0 >= x1:
        return
    offsets = (
        (np.arange(z0, z1) * p.z_step - cz)[:, None, None],  # z x 1 x 1
        (np.arange(y0, y1) - cy)[None, :, None],  # 1 x y x 1
        (np.arange(x0, x1) - cx)[None, None, :],  # 1 x 1 x x
    )
    body = [sum(nuc.rotation[j, k] * offsets[j] for j in range(3)) for k in range(3)]
    q = sum((body[k] / nuc.axes[k]) ** 2 for k in range(3))  # z x y x x
    box = (slice(z0, z1), slice(y0, y1), slice(x0, x1))
    win = (q <= 1.0) & (q < best[box])
    if not win.any():
        return
    value = nuc.signal * (1.0 + p.rim * q**2) * np.clip(
        1.0 + p.texture * chromatin[box], 0.1, None)
    for cz_b, cy_b, cx_b, r_n in nuc.nucleoli:
        d2 = ((body[0] - cz_b) ** 2 + (body[1] - cy_b) ** 2 + (body[2] - cx_b) ** 2) / r_n**2
        value = value * (1.0 - p.nucleolus_contrast * np.exp(-d2 * d2))
    labels[box][win] = nid
    best[box][win] = q[win]
    emission[box][win] = value[win]


def make_zstack(params: ZStackParams | None = None, seed: int = 0) -> Synthetic:
    """Simulate a widefield z-stack through textured 3D nuclei.

    Nuclei are randomly placed, sized and oriented ellipsoids (some cut by
    the stack's top, bottom or sides). The label of a voxel is the nucleus
    whose ellipsoid contains the voxel centre. The image is blurred more
    along z than in y/x and fades with depth.

    Args:
        params: scene and camera parameters (defaults if None).
        seed: the random seed; the same seed gives the same arrays.

    Returns:
        ``Synthetic`` with ``image`` ``Z x Y x X`` uint16 and ``labels``
        ``Z x Y x X`` int32; ``parents`` maps every id to 0.
    """
    p = params if params is not None else ZStackParams()
    streams = _streams(seed)
    shape = (p.n_slices, p.height, p.width)
    optics = _optics(p.height, p.width, p.imaging, streams.noise)
    nuclei = _place_nuclei(p, streams.scene)
    tex_sigma = (p.texture_scale / p.z_step, p.texture_scale, p.texture_scale)
    chromatin = _smooth_noise(shape, tex_sigma, streams.texture)
    labels = np.zeros(shape, np.int32)
    emission = np.zeros(shape, np.float32)
    best = np.full(shape, np.inf, np.float32)
    for nid, nuc in enumerate(nuclei, start=1):
        _draw_nucleus(nuc, nid, p, chromatin, labels, emission, best)
    sigma = (p.axial_blur, p.imaging.blur, p.imaging.blur)
    if max(sigma) > 0:
        emission = ndimage.gaussian_filter(emission, sigma)
    depth = np.arange(p.n_slices, dtype=np.float32) / max(p.n_slices - 1, 1)
    fade = (1.0 - p.depth_falloff) ** depth  # (Z,)
    expected = optics.background + optics.illumination * emission * fade[:, None, None]
    image = _expose(expected, p.imaging, streams.noise)
    labels, parents = _relabel(labels, {})
    return Synthetic(image=image, labels=labels, parents=parents)
