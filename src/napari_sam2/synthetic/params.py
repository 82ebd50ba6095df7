"""Scene and camera parameters of the synthetic stacks, and the result type."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np


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
