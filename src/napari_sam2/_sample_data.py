"""npe2 sample-data contributions: the shipped synthetic stacks.

Each function returns napari LayerDataTuples ``(data, kwargs, layer_type)``:
the 16-bit image and its ground-truth Labels layer. The TIFFs are read with
``importlib.resources`` so this works from a wheel as well as from an
editable install.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import numpy as np
import tifffile

__all__ = ["cells_timelapse", "nuclei_zstack", "load_sample_array"]

_PACKAGE = "napari_sam2.sample_data"

LayerDataTuple = tuple[np.ndarray, dict[str, Any], str]


def load_sample_array(filename: str) -> np.ndarray:
    """Read one shipped sample TIFF (e.g. ``"cells_timelapse.tif"``)."""
    resource = resources.files(_PACKAGE).joinpath(filename)
    with resource.open("rb") as handle:
        return tifffile.imread(handle)


def _contrast_limits(image: np.ndarray) -> list[float]:
    """Display range from robust percentiles (dark background to bright cells)."""
    low, high = np.percentile(image, (0.5, 99.5))
    if high <= low:
        high = low + 1
    return [float(low), float(high)]


def _sample(image_file: str, labels_file: str, name: str,
            axis_labels: tuple[str, str, str]) -> list[LayerDataTuple]:
    image = load_sample_array(image_file)
    labels = load_sample_array(labels_file)
    image_kwargs = {
        "name": name,
        "colormap": "gray",
        "contrast_limits": _contrast_limits(image),
        "axis_labels": axis_labels,
    }
    labels_kwargs = {
        "name": f"{name} ground truth",
        "axis_labels": axis_labels,
        "opacity": 0.5,
    }
    return [(image, image_kwargs, "image"), (labels, labels_kwargs, "labels")]


def cells_timelapse() -> list[LayerDataTuple]:
    """Synthetic cells time-lapse, ``T x Y x X`` uint16, with ground truth."""
    return _sample("cells_timelapse.tif", "cells_timelapse_labels.tif",
                   "cells time-lapse", ("t", "y", "x"))


def nuclei_zstack() -> list[LayerDataTuple]:
    """Synthetic nuclei z-stack, ``Z x Y x X`` uint16, with ground truth."""
    return _sample("nuclei_zstack.tif", "nuclei_zstack_labels.tif",
                   "nuclei z-stack", ("z", "y", "x"))
