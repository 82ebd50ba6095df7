"""Random scene and camera parameters for training data: over a wide range, and near the
shipped samples'."""

from __future__ import annotations

import math

import numpy as np

from .params import ImagingParams, TimelapseParams, ZStackParams


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
