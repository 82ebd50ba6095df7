"""Synthetic fluorescence microscopy with exact ground truth.

Two scene generators share one camera model:

* :func:`make_timelapse` - cells in a 2D culture that crawl, deform, touch,
  divide, leave the field of view and enter it. Result layout ``T x Y x X``.
* :func:`make_zstack` - a z-stack through textured, randomly oriented 3D
  ellipsoids (nuclei). Result layout ``Z x Y x X``.

Both return a :class:`Synthetic`: a ``uint16`` image in a realistic camera
range (offset + background of a few hundred counts, cells up to a few
thousand) and ``int32`` labels (0 = background, ids ``1..N`` contiguous).

The camera model, in this order: emission map -> Gaussian PSF blur ->
uneven illumination -> + smooth background -> Poisson shot noise (scaled by
the gain) -> + camera offset + Gaussian read noise -> round and clip to
uint16. Labels are exact: they are the object geometry before blurring.

Everything is drawn from ``numpy.random.default_rng``-style generators built
from the seed, so a given ``(params, seed)`` always yields the same arrays.
Scene geometry, object textures and camera noise use separate streams: the
same seed with a different camera setting gives the same cells.
:func:`random_timelapse_params` / :func:`random_zstack_params` sample the
parameters over a wide range (for training data).

Only numpy and scipy are used; no torch, napari or Qt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from scipy import ndimage

__all__ = [
    "Synthetic",
    "ImagingParams",
    "TimelapseParams",
    "ZStackParams",
    "make_timelapse",
    "make_zstack",
    "random_imaging_params",
    "random_timelapse_params",
    "random_zstack_params",
    "samplelike_timelapse_params",
    "samplelike_zstack_params",
]

_UINT16_MAX = 65535
_N_HARMONICS = 3  # shape harmonics k = 2, 3, 4 of a cell outline
_MITOSIS_FRAMES = 3  # frames of rounding-up before a division
_MIN_VISIBLE = 0.05  # a cell with less of its area in the frame has left


class Synthetic(NamedTuple):
    """A generated stack and its ground truth.

    Attributes:
        image: ``N x Y x X`` uint16 counts (N = frames or slices).
        labels: ``N x Y x X`` int32 object ids, 0 = background. An id names
            one object through the whole stack.
        parents: ``{id: mother id}`` for every id in ``labels``; 0 when the
            object has no mother in the stack (present at the start, or
            entered the field of view). Always 0 for z-stacks.
    """

    image: np.ndarray
    labels: np.ndarray
    parents: dict[int, int]


@dataclass(frozen=True, kw_only=True)
class ImagingParams:
    """Camera and optics. Intensities are in camera counts (ADU).

    Attributes:
        camera_offset: counts added by the camera electronics (bias).
        background: mean background signal above the offset (counts).
        background_variation: relative amplitude of the smooth background.
        vignetting: relative illumination loss at the frame corners.
        gain: counts per detected photon; larger means more shot noise.
        read_noise: standard deviation of the Gaussian read noise (counts).
        blur: lateral PSF standard deviation (pixels).
    """

    camera_offset: float = 100.0
    background: float = 150.0
    background_variation: float = 0.2
    vignetting: float = 0.15
    gain: float = 2.0
    read_noise: float = 4.0
    blur: float = 1.2

    def __post_init__(self) -> None:
        _check_nonnegative(self, "camera_offset", "background",
                           "background_variation", "read_noise", "blur")
        _check_positive(self, "gain")
        if not 0.0 <= self.vignetting < 1.0:
            raise ValueError(f"vignetting must be in [0, 1), got {self.vignetting}")


@dataclass(frozen=True, kw_only=True)
class TimelapseParams:
    """A 2D cell culture filmed over time. Lengths in pixels, times in frames.

    Attributes:
        n_frames, height, width: output shape ``T x Y x X``.
        n_cells: cells in the first frame.
        radius: typical cell radius (area-equivalent).
        radius_spread: relative standard deviation of the radius.
        elongation: largest extra aspect ratio (0 = round cells).
        irregularity: amplitude of the outline's wobble (relative radius).
        shape_drift: per-frame random change of orientation and outline
            phase (radians).
        clustering: probability that a first-frame cell is placed next to
            an earlier one (colonies) rather than anywhere.
        speed: typical displacement per frame.
        persistence: velocity correlation from one frame to the next (0-1).
        drift: common flow ``(dy, dx)`` per frame, e.g. stage drift.
        overlap: how far two cells may overlap before they push each other
            apart, as a fraction of the sum of radii (0 = only touch).
        division_rate: per-frame probability that a grown cell divides.
        min_cycle: frames a cell lives at least before it can divide.
        enter_rate: expected number of cells entering per frame.
        max_cells: no division or entry past this many live cells.
        signal: typical peak cell intensity above background (counts).
        signal_spread: log-normal spread of the per-cell intensity.
        nucleus_contrast: extra brightness of the nucleus-like interior
            relative to the cell body (negative = darker interior).
        nucleus_size: nucleus radius relative to the cell radius.
        texture: relative amplitude of the internal texture.
        texture_scale: texture grain size (pixels).
        bleaching: per-frame exponential loss of cell signal.
        debris: unlabeled bright specks stuck to the coverslip.
        imaging: the camera and optics.
    """

    n_frames: int = 20
    height: int = 256
    width: int = 256
    n_cells: int = 10
    radius: float = 14.0
    radius_spread: float = 0.2
    elongation: float = 0.4
    irregularity: float = 0.08
    shape_drift: float = 0.04
    clustering: float = 0.4
    speed: float = 1.5
    persistence: float = 0.85
    drift: tuple[float, float] = (0.0, 0.0)
    overlap: float = 0.1
    division_rate: float = 0.03
    min_cycle: int = 6
    enter_rate: float = 0.1
    max_cells: int = 40
    signal: float = 1500.0
    signal_spread: float = 0.35
    nucleus_contrast: float = 0.6
    nucleus_size: float = 0.5
    texture: float = 0.15
    texture_scale: float = 1.5
    bleaching: float = 0.005
    debris: int = 3
    imaging: ImagingParams = field(default_factory=ImagingParams)

    def __post_init__(self) -> None:
        _check_positive(self, "n_frames", "height", "width", "radius",
                        "texture_scale", "max_cells")
        _check_nonnegative(self, "n_cells", "radius_spread", "elongation",
                           "irregularity", "shape_drift", "speed", "overlap",
                           "division_rate", "min_cycle", "enter_rate", "signal",
                           "signal_spread", "texture", "bleaching", "debris")
        _check_fraction(self, "clustering", "persistence", "division_rate")
        if self.irregularity >= 0.3:
            raise ValueError(f"irregularity must be < 0.3, got {self.irregularity}")
        if not 0.0 < self.nucleus_size < 1.0:
            raise ValueError(f"nucleus_size must be in (0, 1), got {self.nucleus_size}")


@dataclass(frozen=True, kw_only=True)
class ZStackParams:
    """A z-stack through nuclei. Lengths in lateral pixels unless noted.

    Slice 0 is nearest the objective; the signal fades with depth.

    Attributes:
        n_slices, height, width: output shape ``Z x Y x X``.
        n_nuclei: nuclei to place (fewer when they do not fit).
        radius: typical nucleus radius (geometric mean of the semi-axes).
        radius_spread: relative standard deviation of the radius.
        elongation: spread of the three semi-axes around the radius.
        z_step: slice spacing, in lateral pixels (anisotropic voxels).
        overlap: how far two nuclei may overlap, as a fraction of the sum
            of radii (a shared voxel goes to the nucleus it is more central
            in).
        signal: typical nucleus intensity above background (counts).
        signal_spread: log-normal spread of the per-nucleus intensity.
        texture: relative amplitude of the chromatin texture.
        texture_scale: texture grain size.
        nucleoli: mean number of darker nucleoli per nucleus.
        nucleolus_contrast: how much darker a nucleolus is (0-1).
        rim: extra brightness at the nuclear envelope (relative).
        axial_blur: axial PSF standard deviation, in slices.
        depth_falloff: fraction of the signal lost at the last slice.
        imaging: the camera and optics (``imaging.blur`` is lateral).
    """

    n_slices: int = 32
    height: int = 256
    width: int = 256
    n_nuclei: int = 10
    radius: float = 16.0
    radius_spread: float = 0.2
    elongation: float = 0.4
    z_step: float = 2.0
    overlap: float = 0.05
    signal: float = 1500.0
    signal_spread: float = 0.3
    texture: float = 0.25
    texture_scale: float = 1.5
    nucleoli: float = 1.5
    nucleolus_contrast: float = 0.4
    rim: float = 0.3
    axial_blur: float = 1.5
    depth_falloff: float = 0.4
    imaging: ImagingParams = field(default_factory=ImagingParams)

    def __post_init__(self) -> None:
        _check_positive(self, "n_slices", "height", "width", "radius", "z_step",
                        "texture_scale")
        _check_nonnegative(self, "n_nuclei", "radius_spread", "elongation",
                           "overlap", "signal", "signal_spread", "texture",
                           "nucleoli", "rim", "axial_blur")
        _check_fraction(self, "nucleolus_contrast")
        if not 0.0 <= self.depth_falloff < 1.0:
            raise ValueError(f"depth_falloff must be in [0, 1), got {self.depth_falloff}")
        if self.elongation >= 1.5:
            raise ValueError(f"elongation must be < 1.5, got {self.elongation}")


def _check_positive(obj: object, *names: str) -> None:
    for name in names:
        if not getattr(obj, name) > 0:
            raise ValueError(f"{name} must be > 0, got {getattr(obj, name)}")


def _check_nonnegative(obj: object, *names: str) -> None:
    for name in names:
        if not getattr(obj, name) >= 0:
            raise ValueError(f"{name} must be >= 0, got {getattr(obj, name)}")


def _check_fraction(obj: object, *names: str) -> None:
    for name in names:
        if not 0.0 <= getattr(obj, name) <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {getattr(obj, name)}")


# --------------------------------------------------------------------------
# camera


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


# --------------------------------------------------------------------------
# time-lapse


@dataclass(eq=False)
class _Cell:
    """Mutable state of one simulated cell (internal)."""

    id: int
    parent: int
    pos: np.ndarray  # (y, x)
    vel: np.ndarray  # (vy, vx) per frame
    radius0: float  # radius at frame ``born``
    born: int
    radius_cap: float
    divide_at: float  # frame of the division (inf = never)
    angle: float  # long-axis orientation (radians)
    aspect: float  # long / short axis, >= 1
    harm_amp: np.ndarray  # (_N_HARMONICS,)
    harm_phase: np.ndarray  # (_N_HARMONICS,)
    signal: float
    depth: float  # drawing order: larger is on top
    nucleus: tuple[float, float, float]  # (du, dv, aspect) relative to radius
    texture: np.ndarray  # (2S+1) x (2S+1), in the cell's own frame

    def growth_factor(self, params: TimelapseParams) -> float:
        """Per-frame area growth so that a cell doubles over a mean cycle."""
        if params.division_rate <= 0:
            return 0.0
        cycle = params.min_cycle + 1.0 / params.division_rate
        return math.log(2.0) / cycle

    def radius(self, t: int, params: TimelapseParams) -> float:
        grown = self.radius0 * math.exp(0.5 * self.growth_factor(params) * (t - self.born))
        return min(grown, self.radius_cap)

    def mitosis(self, t: int) -> float:
        """0 far from a division, rising to 1 at the last frame before it."""
        left = self.divide_at - t
        return float(np.clip(1.0 - (left - 1) / _MITOSIS_FRAMES, 0.0, 1.0))


class _CellFactory:
    """Creates cells with fresh ids, shapes and textures."""

    def __init__(self, params: TimelapseParams, streams: _Streams) -> None:
        self.params = params
        self.rng = streams.scene
        self.tex_rng = streams.texture
        self.next_id = 1
        self.parents: dict[int, int] = {}

    def new(self, *, t: int, pos: np.ndarray, vel: np.ndarray, radius: float,
            parent: int = 0, angle: float | None = None,
            signal: float | None = None, depth: float | None = None) -> _Cell:
        p, rng = self.params, self.rng
        cid = self.next_id
        self.next_id += 1
        self.parents[cid] = parent
        aspect = 1.0 + p.elongation * rng.uniform(0.0, 1.0)
        harm_amp = p.irregularity * rng.uniform(0.2, 1.0, _N_HARMONICS) / np.arange(
            1, _N_HARMONICS + 1)
        harm_phase = rng.uniform(0.0, 2.0 * math.pi, _N_HARMONICS)
        if angle is None:
            angle = rng.uniform(0.0, math.pi)
        if signal is None:
            signal = p.signal * _lognormal_factor(p.signal_spread, rng)
        if depth is None:
            depth = rng.uniform(0.0, 1.0)
        nucleus = (rng.uniform(-0.15, 0.15), rng.uniform(-0.15, 0.15),
                   rng.uniform(1.0, 1.3))
        cap = 1.5 * max(radius, p.radius)
        divide_at = math.inf
        if p.division_rate > 0:
            # cells of the first frame are somewhere in their cycle already
            wait = 1 if t == 0 and parent == 0 else p.min_cycle
            divide_at = float(math.ceil(t + wait + rng.exponential(1.0 / p.division_rate)))
        half = int(math.ceil(cap * (1.0 + harm_amp.sum()) * math.sqrt(aspect))) + 3
        texture = _smooth_noise((2 * half + 1, 2 * half + 1), p.texture_scale, self.tex_rng)
        return _Cell(id=cid, parent=parent, pos=np.asarray(pos, float),
                     vel=np.asarray(vel, float), radius0=radius, born=t,
                     radius_cap=cap, divide_at=divide_at, angle=angle, aspect=aspect,
                     harm_amp=harm_amp, harm_phase=harm_phase, signal=signal,
                     depth=depth, nucleus=nucleus, texture=texture)

    def initial_radius(self) -> float:
        p = self.params
        return p.radius * _lognormal_factor(p.radius_spread, self.rng) * \
            self.rng.uniform(0.8, 1.05)


def _initial_cells(factory: _CellFactory) -> list[_Cell]:
    p, rng = factory.params, factory.rng
    cells: list[_Cell] = []
    for _ in range(p.n_cells):
        radius = factory.initial_radius()
        pos = None
        for _attempt in range(30):
            if cells and rng.uniform() < p.clustering:
                other = cells[int(rng.integers(len(cells)))]
                direction = rng.uniform(0.0, 2.0 * math.pi)
                dist = (radius + other.radius0) * rng.uniform(0.95, 1.1)
                cand = other.pos + dist * np.array([math.sin(direction), math.cos(direction)])
            else:
                cand = rng.uniform([0.0, 0.0], [p.height, p.width])
            if all(np.hypot(*(cand - c.pos)) >= (1.0 - p.overlap) * (radius + c.radius0)
                   for c in cells):
                pos = cand
                break
        if pos is None:
            pos = cand
        vel = rng.normal(0.0, p.speed / math.sqrt(2.0), 2)
        cells.append(factory.new(t=0, pos=pos, vel=vel, radius=radius))
    return cells


def _divide(cell: _Cell, t: int, factory: _CellFactory) -> list[_Cell]:
    """Replace a mother by two daughters placed along a random axis."""
    p, rng = factory.params, factory.rng
    axis = rng.uniform(0.0, math.pi)
    unit = np.array([math.sin(axis), math.cos(axis)])
    radius = cell.radius(t, p) / math.sqrt(2.0)
    daughters = []
    for sign in (-1.0, 1.0):
        daughters.append(factory.new(
            t=t, parent=cell.id, pos=cell.pos + sign * 0.85 * radius * unit,
            vel=cell.vel + sign * 0.5 * max(p.speed, 0.5) * unit, radius=radius,
            angle=axis + math.pi / 2, signal=cell.signal * rng.uniform(0.9, 1.1),
            depth=cell.depth + 1e-3 * sign))
    return daughters


def _move(cells: list[_Cell], t: int, params: TimelapseParams,
          rng: np.random.Generator) -> None:
    """Correlated random walk plus drift, then push overlapping cells apart."""
    p = params
    kick = math.sqrt(max(1.0 - p.persistence**2, 0.0)) * p.speed / math.sqrt(2.0)
    drift = np.asarray(p.drift, float)
    for cell in cells:
        cell.vel = p.persistence * cell.vel + kick * rng.standard_normal(2)
        cell.pos = cell.pos + cell.vel + drift
        cell.angle += p.shape_drift * rng.standard_normal()
        cell.harm_phase = cell.harm_phase + p.shape_drift * rng.standard_normal(_N_HARMONICS)
    if len(cells) < 2:
        return
    radii = np.array([c.radius(t, p) for c in cells])
    reach = (1.0 - p.overlap) * (radii[:, None] + radii[None, :])  # N x N
    np.fill_diagonal(reach, 0.0)
    for _ in range(4):
        pos = np.stack([c.pos for c in cells])  # N x 2
        diff = pos[:, None, :] - pos[None, :, :]  # N x N x 2, i minus j
        dist = np.hypot(diff[..., 0], diff[..., 1])  # N x N
        push = np.clip(reach - dist, 0.0, None) * 0.5
        if not push.any():
            break
        unit = diff / np.maximum(dist, 1e-6)[..., None]
        shift = (push[..., None] * unit).sum(axis=1)  # N x 2
        for cell, s in zip(cells, shift):
            cell.pos = cell.pos + s


def _enter(t: int, n_alive: int, factory: _CellFactory) -> list[_Cell]:
    """Cells arriving across the frame border, partly visible, moving inward."""
    p, rng = factory.params, factory.rng
    count = int(rng.poisson(p.enter_rate)) if p.enter_rate > 0 else 0
    cells = []
    for _ in range(min(count, p.max_cells - n_alive)):
        radius = factory.initial_radius()
        s = rng.uniform(0.0, 2.0 * (p.height + p.width))
        out = rng.uniform(0.0, 0.5) * radius
        along = rng.uniform(-0.3, 0.3)
        if s < p.width:  # top edge
            pos, inward = (-out, s), np.array([1.0, along])
        elif s < 2 * p.width:  # bottom edge
            pos, inward = (p.height - 1 + out, s - p.width), np.array([-1.0, along])
        elif s < 2 * p.width + p.height:  # left edge
            pos, inward = (s - 2 * p.width, -out), np.array([along, 1.0])
        else:  # right edge
            pos, inward = (s - 2 * p.width - p.height, p.width - 1 + out), np.array([along, -1.0])
        speed = max(p.speed, 0.5) * rng.uniform(0.8, 1.5)
        vel = speed * inward / np.hypot(*inward)
        cells.append(factory.new(t=t, pos=np.array(pos), vel=vel, radius=radius))
    return cells


def _draw_cell(cell: _Cell, t: int, params: TimelapseParams, labels: np.ndarray,
               emission: np.ndarray) -> bool:
    """Paint one cell over ``labels`` / ``emission`` (both Y x X).

    Returns False (and paints nothing) when less than ``_MIN_VISIBLE`` of
    the cell's area is in the frame: the cell has left.
    """
    p = params
    height, width = labels.shape
    mitosis = cell.mitosis(t)
    roundness = 1.0 - 0.85 * mitosis
    radius = cell.radius(t, p) * (1.0 - 0.08 * mitosis)
    amp = cell.harm_amp * roundness
    aspect = 1.0 + (cell.aspect - 1.0) * roundness
    reach = radius * (1.0 + amp.sum()) * math.sqrt(aspect) + 2.0
    cy, cx = cell.pos
    y0, y1 = max(math.floor(cy - reach), 0), min(math.ceil(cy + reach) + 1, height)
    x0, x1 = max(math.floor(cx - reach), 0), min(math.ceil(cx + reach) + 1, width)
    if y0 >= y1 or x0 >= x1:
        return False
    dy = (np.arange(y0, y1, dtype=np.float32) - cy)[:, None]  # h x 1
    dx = (np.arange(x0, x1, dtype=np.float32) - cx)[None, :]  # 1 x w
    ca, sa = math.cos(cell.angle), math.sin(cell.angle)
    u = dx * ca + dy * sa  # h x w, along the long axis
    v = dy * ca - dx * sa  # h x w, across it
    su, sv = u / math.sqrt(aspect), v * math.sqrt(aspect)  # squashed to a circle
    rho = np.hypot(su, sv)
    theta = np.arctan2(sv, su)
    outline = np.ones_like(rho)
    for k in range(_N_HARMONICS):
        outline += amp[k] * np.cos((k + 2) * theta + cell.harm_phase[k])
    outline *= radius
    inside = rho < outline
    if np.count_nonzero(inside) < _MIN_VISIBLE * math.pi * radius**2:
        return False
    s2 = np.clip((rho / outline) ** 2, 0.0, 1.0)
    body = 0.55 + 0.45 * np.sqrt(1.0 - s2)  # dome: thicker in the middle
    nu, nv, n_aspect = cell.nucleus
    n_radius = p.nucleus_size * radius
    n_dist = np.hypot((su - nu * radius) / n_aspect, sv - nv * radius) / n_radius
    nucleus = 0.5 * (1.0 - np.tanh((n_dist - 1.0) / 0.15))
    half = cell.texture.shape[0] // 2
    iu = np.clip(np.rint(u).astype(np.intp) + half, 0, 2 * half)
    iv = np.clip(np.rint(v).astype(np.intp) + half, 0, 2 * half)
    grain = cell.texture[iv, iu]
    brightness = cell.signal * (1.0 + 0.3 * mitosis)
    value = brightness * np.clip(body + p.nucleus_contrast * nucleus, 0.05, None) * \
        np.clip(1.0 + p.texture * grain, 0.1, None)
    labels[y0:y1, x0:x1][inside] = cell.id
    emission[y0:y1, x0:x1][inside] = value[inside]
    return True


def _debris(params: TimelapseParams, rng: np.random.Generator) -> np.ndarray:
    """Y x X map of small unlabeled specks (counts above background)."""
    spots = np.zeros((params.height, params.width), np.float32)
    for _ in range(params.debris):
        y, x = rng.uniform(0, params.height), rng.uniform(0, params.width)
        r = rng.uniform(0.7, 2.5)
        amp = params.signal * rng.uniform(0.3, 1.5)
        y0, y1 = max(int(y - r) - 1, 0), min(int(y + r) + 2, params.height)
        x0, x1 = max(int(x - r) - 1, 0), min(int(x + r) + 2, params.width)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        spots[y0:y1, x0:x1] += amp * ((yy - y) ** 2 + (xx - x) ** 2 <= r * r)
    return spots


def make_timelapse(params: TimelapseParams | None = None, seed: int = 0) -> Synthetic:
    """Simulate a fluorescence time-lapse of moving, dividing cells.

    Cells keep their id for their whole life. A dividing mother's id ends at
    its last frame; its two daughters take new ids in the next frame (see
    ``parents``). A cell that has (all but) left the frame ends for good;
    entering cells take new ids. Where cells overlap, the one on top owns
    the pixel, in both the image and the labels.

    Args:
        params: scene and camera parameters (defaults if None).
        seed: the random seed; the same seed gives the same arrays.

    Returns:
        ``Synthetic`` with ``image`` ``T x Y x X`` uint16 and ``labels``
        ``T x Y x X`` int32.
    """
    p = params if params is not None else TimelapseParams()
    streams = _streams(seed)
    shape = (p.n_frames, p.height, p.width)
    optics = _optics(p.height, p.width, p.imaging, streams.noise)
    debris = _debris(p, streams.scene)
    factory = _CellFactory(p, streams)
    cells = _initial_cells(factory)
    labels = np.zeros(shape, np.int32)
    image = np.zeros(shape, np.uint16)
    for t in range(p.n_frames):
        if t > 0:
            cells = _advance(cells, t, factory)
        emission = np.zeros((p.height, p.width), np.float32)
        alive = []
        for cell in sorted(cells, key=lambda c: c.depth):
            if _draw_cell(cell, t, p, labels[t], emission):
                alive.append(cell)
        cells = alive
        signal = (emission + debris) * math.exp(-p.bleaching * t)
        if p.imaging.blur > 0:
            signal = ndimage.gaussian_filter(signal, p.imaging.blur)
        expected = optics.background + optics.illumination * signal
        image[t] = _expose(expected, p.imaging, streams.noise)
    labels, parents = _relabel(labels, factory.parents)
    return Synthetic(image=image, labels=labels, parents=parents)


def _advance(cells: list[_Cell], t: int, factory: _CellFactory) -> list[_Cell]:
    """One frame of dynamics: divisions, motion, entries."""
    p = factory.params
    nxt: list[_Cell] = []
    count = len(cells)
    for cell in cells:
        if cell.divide_at <= t:
            if count < p.max_cells:
                nxt.extend(_divide(cell, t, factory))
                count += 1
                continue
            cell.divide_at = t + max(p.min_cycle, _MITOSIS_FRAMES + 1)
        nxt.append(cell)
    nxt += _enter(t, len(nxt), factory)
    _move(nxt, t, p, factory.rng)
    return nxt


# --------------------------------------------------------------------------
# z-stack


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


# --------------------------------------------------------------------------
# random parameters for training


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def random_imaging_params(rng: np.random.Generator) -> ImagingParams:
    """Camera settings over a wide range (dim to bright, clean to noisy)."""
    return ImagingParams(
        camera_offset=float(rng.uniform(50.0, 300.0)),
        background=_log_uniform(rng, 15.0, 400.0),
        background_variation=float(rng.uniform(0.0, 0.5)),
        vignetting=float(rng.uniform(0.0, 0.4)),
        gain=_log_uniform(rng, 0.5, 8.0),
        read_noise=float(rng.uniform(1.0, 20.0)),
        blur=float(rng.uniform(0.5, 2.5)),
    )


def _signal_for_snr(imaging: ImagingParams, rng: np.random.Generator) -> float:
    """A cell signal with a contrast-to-noise ratio of about 1.5 to 60."""
    noise = math.sqrt(imaging.gain * imaging.background + imaging.read_noise**2)
    return min(_log_uniform(rng, 1.5, 60.0) * noise, 6000.0)


def random_timelapse_params(rng: np.random.Generator) -> TimelapseParams:
    """Time-lapse parameters sampled over a wide range, for training.

    Frames 128-384 px, 6-40 frames, radius 5-30 px, 1-25 cells, slow to
    fast motion, none to frequent divisions and entries, dim to bright.
    """
    height, width = (int(v) * 16 for v in rng.integers(8, 25, 2))
    radius = min(_log_uniform(rng, 5.0, 30.0), min(height, width) / 6.0)
    coverage = rng.uniform(0.02, 0.45)
    n_cells = int(np.clip(round(coverage * height * width / (math.pi * radius**2)), 1, 25))
    imaging = random_imaging_params(rng)
    angle = rng.uniform(0.0, 2.0 * math.pi)
    drift = rng.uniform(0.0, 1.5) if rng.uniform() < 0.3 else 0.0
    return TimelapseParams(
        n_frames=int(rng.integers(6, 41)), height=height, width=width,
        n_cells=n_cells, radius=radius,
        radius_spread=float(rng.uniform(0.0, 0.35)),
        elongation=float(rng.uniform(0.0, 0.9)),
        irregularity=float(rng.uniform(0.0, 0.16)),
        shape_drift=float(rng.uniform(0.0, 0.1)),
        clustering=float(rng.uniform(0.0, 0.9)),
        speed=radius * _log_uniform(rng, 0.01, 0.35),
        persistence=float(rng.uniform(0.5, 0.97)),
        drift=(float(drift * math.sin(angle)), float(drift * math.cos(angle))),
        overlap=float(rng.uniform(0.0, 0.25)),
        division_rate=0.0 if rng.uniform() < 0.3 else _log_uniform(rng, 0.005, 0.12),
        min_cycle=int(rng.integers(3, 12)),
        enter_rate=0.0 if rng.uniform() < 0.3 else _log_uniform(rng, 0.01, 0.3),
        max_cells=40,
        signal=_signal_for_snr(imaging, rng),
        signal_spread=float(rng.uniform(0.0, 0.7)),
        nucleus_contrast=float(rng.uniform(-0.4, 1.2)),
        nucleus_size=float(rng.uniform(0.3, 0.7)),
        texture=float(rng.uniform(0.0, 0.4)),
        texture_scale=float(rng.uniform(0.8, 3.0)),
        bleaching=float(rng.uniform(0.0, 0.02)),
        debris=int(rng.integers(0, 10)),
        imaging=imaging,
    )


def random_zstack_params(rng: np.random.Generator) -> ZStackParams:
    """Z-stack parameters sampled over a wide range, for training.

    Frames 128-384 px, 8-48 slices, radius 5-30 px, 1-25 nuclei, z steps of
    1-4 px, axial blur 2-4x the lateral blur, weak to strong depth fading.
    """
    height, width = (int(v) * 16 for v in rng.integers(8, 25, 2))
    n_slices = int(rng.integers(8, 49))
    radius = min(_log_uniform(rng, 5.0, 30.0), min(height, width) / 6.0)
    z_step = float(rng.uniform(1.0, 4.0))
    volume = height * width * (n_slices * z_step + radius)
    fill = rng.uniform(0.01, 0.2)
    n_nuclei = int(np.clip(round(fill * volume / (4.0 / 3.0 * math.pi * radius**3)), 1, 25))
    imaging = random_imaging_params(rng)
    return ZStackParams(
        n_slices=n_slices, height=height, width=width, n_nuclei=n_nuclei,
        radius=radius, radius_spread=float(rng.uniform(0.0, 0.35)),
        elongation=float(rng.uniform(0.0, 1.0)), z_step=z_step,
        overlap=float(rng.uniform(0.0, 0.15)),
        signal=_signal_for_snr(imaging, rng),
        signal_spread=float(rng.uniform(0.0, 0.6)),
        texture=float(rng.uniform(0.0, 0.5)),
        texture_scale=float(rng.uniform(0.8, 3.0)),
        nucleoli=float(rng.uniform(0.0, 3.0)),
        nucleolus_contrast=float(rng.uniform(0.0, 0.7)),
        rim=float(rng.uniform(0.0, 0.6)),
        axial_blur=imaging.blur * float(rng.uniform(2.0, 4.0)) / z_step,
        depth_falloff=float(rng.uniform(0.0, 0.7)),
        imaging=imaging,
    )


# --------------------------------------------------------------------------
# parameters near the shipped samples', for training


def _samplelike_imaging_params(rng: np.random.Generator) -> ImagingParams:
    """Camera settings within about a third of the defaults (which the
    shipped samples use)."""
    return ImagingParams(
        camera_offset=float(rng.uniform(80.0, 140.0)),
        background=float(rng.uniform(110.0, 220.0)),
        background_variation=float(rng.uniform(0.1, 0.3)),
        vignetting=float(rng.uniform(0.05, 0.25)),
        gain=float(rng.uniform(1.5, 4.0)),
        read_noise=float(rng.uniform(3.0, 7.0)),
        blur=float(rng.uniform(0.9, 1.6)),
    )


def samplelike_timelapse_params(rng: np.random.Generator) -> TimelapseParams:
    """Time-lapse parameters near the defaults and the shipped sample's:
    256 px frames, 6-16 cells of radius 11-19 px, in colonies or apart,
    moderate motion, a few divisions and entries. The demo model sees these
    as well as :func:`random_timelapse_params`' wide range, so that it is at
    its best on data like the sample it is shown with."""
    return TimelapseParams(
        n_frames=int(rng.integers(6, 41)), height=256, width=256,
        n_cells=int(rng.integers(6, 17)), radius=float(rng.uniform(11.0, 19.0)),
        radius_spread=float(rng.uniform(0.1, 0.3)),
        elongation=float(rng.uniform(0.2, 0.6)),
        irregularity=float(rng.uniform(0.04, 0.12)),
        shape_drift=float(rng.uniform(0.02, 0.06)),
        clustering=float(rng.uniform(0.2, 0.7)),
        speed=float(rng.uniform(0.8, 2.5)),
        persistence=float(rng.uniform(0.75, 0.95)),
        overlap=float(rng.uniform(0.05, 0.15)),
        division_rate=float(rng.uniform(0.0, 0.04)),
        enter_rate=float(rng.uniform(0.05, 0.2)),
        signal=float(rng.uniform(1000.0, 2200.0)),
        signal_spread=float(rng.uniform(0.2, 0.5)),
        nucleus_contrast=float(rng.uniform(0.3, 0.9)),
        nucleus_size=float(rng.uniform(0.4, 0.6)),
        texture=float(rng.uniform(0.08, 0.22)),
        texture_scale=float(rng.uniform(1.0, 2.0)),
        bleaching=float(rng.uniform(0.0, 0.01)),
        debris=int(rng.integers(0, 7)),
        imaging=_samplelike_imaging_params(rng),
    )


def samplelike_zstack_params(rng: np.random.Generator) -> ZStackParams:
    """Z-stack parameters near the defaults and the shipped sample's:
    256 px slices, 24-40 slices, 8-14 nuclei of radius 13-19 px."""
    imaging = _samplelike_imaging_params(rng)
    z_step = float(rng.uniform(1.6, 2.4))
    return ZStackParams(
        n_slices=int(rng.integers(24, 41)), height=256, width=256,
        n_nuclei=int(rng.integers(8, 15)), radius=float(rng.uniform(13.0, 19.0)),
        radius_spread=float(rng.uniform(0.1, 0.3)),
        elongation=float(rng.uniform(0.2, 0.6)), z_step=z_step,
        overlap=float(rng.uniform(0.02, 0.08)),
        signal=float(rng.uniform(1000.0, 2200.0)),
        signal_spread=float(rng.uniform(0.2, 0.4)),
        texture=float(rng.uniform(0.15, 0.35)),
        texture_scale=float(rng.uniform(1.0, 2.0)),
        nucleoli=float(rng.uniform(0.5, 2.5)),
        nucleolus_contrast=float(rng.uniform(0.25, 0.55)),
        rim=float(rng.uniform(0.15, 0.45)),
        axial_blur=float(rng.uniform(1.1, 1.9)),
        depth_falloff=float(rng.uniform(0.25, 0.55)),
        imaging=imaging,
    )
