"""The time-lapse generator: cells that crawl, deform, touch, divide, leave and enter."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .camera import _expose, _lognormal_factor, _optics, _relabel, _smooth_noise, _streams, _Streams
from .params import Synthetic, TimelapseParams

_N_HARMONICS = 3  # shape harmonics k = 2, 3, 4 of a cell outline
_MITOSIS_FRAMES = 3  # frames of rounding-up before a division
_MIN_VISIBLE = 0.05  # a cell with less of its area in the frame has left


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
