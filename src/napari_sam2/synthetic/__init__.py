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

The package, one concern a module: ``params`` (scene and camera parameters,
:class:`Synthetic`), ``camera`` (the camera model and random streams),
``timelapse`` and ``zstack`` (the two scene generators) and ``draws``
(random parameters for training data).
"""

from .draws import (
    random_imaging_params,
    random_timelapse_params,
    random_zstack_params,
    samplelike_timelapse_params,
    samplelike_zstack_params,
)
from .params import ImagingParams, Synthetic, TimelapseParams, ZStackParams
from .timelapse import make_timelapse
from .zstack import make_zstack

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
