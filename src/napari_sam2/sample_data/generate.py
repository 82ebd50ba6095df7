"""Regenerate the sample TIFFs shipped with the plugin.

Run ``python -m napari_sam2.sample_data.generate`` (optionally with
``--out FOLDER``; the default is this package folder). The scenes come from
:mod:`napari_sam2.synthetic` with fixed parameters and seeds, so the files
can always be reproduced exactly; ``tests/test_sample_data.py`` checks that.

Files written (16-bit images, labels as uint16, zlib-compressed TIFF with
the axes in the metadata):

* ``cells_timelapse.tif`` / ``cells_timelapse_labels.tif``: ``T x Y x X``
  = 30 x 256 x 256, cells that move, touch, divide, leave and enter.
* ``nuclei_zstack.tif`` / ``nuclei_zstack_labels.tif``: ``Z x Y x X``
  = 32 x 256 x 256, about a dozen nuclei.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import tifffile

from napari_sam2.synthetic import (
    ImagingParams,
    Synthetic,
    TimelapseParams,
    ZStackParams,
    make_timelapse,
    make_zstack,
)

__all__ = [
    "TIMELAPSE_SEED",
    "ZSTACK_SEED",
    "SampleFiles",
    "TIMELAPSE_FILES",
    "ZSTACK_FILES",
    "timelapse_params",
    "zstack_params",
    "cells_timelapse",
    "nuclei_zstack",
    "write_sample",
    "main",
]

TIMELAPSE_SEED = 2
ZSTACK_SEED = 2


class SampleFiles(NamedTuple):
    """File names of one sample and the axes written into them."""

    image: str
    labels: str
    axes: str


TIMELAPSE_FILES = SampleFiles("cells_timelapse.tif", "cells_timelapse_labels.tif", "TYX")
ZSTACK_FILES = SampleFiles("nuclei_zstack.tif", "nuclei_zstack_labels.tif", "ZYX")


def timelapse_params() -> TimelapseParams:
    """The shipped time-lapse's parameters."""
    return TimelapseParams(
        n_frames=30, height=256, width=256, n_cells=10, radius=15.0,
        division_rate=0.012, enter_rate=0.12,
        imaging=ImagingParams(camera_offset=100.0, background=160.0, gain=3.0,
                              read_noise=5.0),
    )


def zstack_params() -> ZStackParams:
    """The shipped z-stack's parameters."""
    return ZStackParams(
        n_slices=32, height=256, width=256, n_nuclei=12, radius=16.0,
        imaging=ImagingParams(camera_offset=100.0, background=160.0, gain=3.0,
                              read_noise=5.0),
    )


def cells_timelapse() -> Synthetic:
    """The shipped time-lapse, ``T x Y x X``, regenerated."""
    return make_timelapse(timelapse_params(), TIMELAPSE_SEED)


def nuclei_zstack() -> Synthetic:
    """The shipped z-stack, ``Z x Y x X``, regenerated."""
    return make_zstack(zstack_params(), ZSTACK_SEED)


def _write_tiff(path: Path, data: np.ndarray, axes: str) -> None:
    tifffile.imwrite(
        path, data, photometric="minisblack", compression="zlib",
        compressionargs={"level": 9}, predictor=True, metadata={"axes": axes},
    )


def write_sample(sample: Synthetic, files: SampleFiles, folder: Path) -> list[Path]:
    """Write an image (uint16) and its labels (as uint16) into ``folder``."""
    if sample.labels.max() > np.iinfo(np.uint16).max:
        raise ValueError("too many objects for uint16 labels")
    image_path, labels_path = folder / files.image, folder / files.labels
    _write_tiff(image_path, sample.image.astype(np.uint16, copy=False), files.axes)
    _write_tiff(labels_path, sample.labels.astype(np.uint16), files.axes)
    return [image_path, labels_path]


def main(argv: Sequence[str] | None = None) -> list[Path]:
    """Write all sample files; returns their paths."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent,
                        help="folder to write into (default: the package folder)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    written = write_sample(cells_timelapse(), TIMELAPSE_FILES, args.out)
    written += write_sample(nuclei_zstack(), ZSTACK_FILES, args.out)
    for path in written:
        print(f"{path}  {path.stat().st_size / 1e6:.2f} MB")
    return written


if __name__ == "__main__":
    main()
