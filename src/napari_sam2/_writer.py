"""npe2 writer: a Labels layer to a TIFF file, values and dtype unchanged.

Reading the file back with ``tifffile.imread`` gives an array equal to the
layer's data, with the same shape and integer dtype. The file is written
atomically (:func:`napari_sam2._io.atomic_file`): an interrupted write leaves
an older file at the path untouched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from ._io import atomic_file, check_destination

__all__ = ["write_labels", "TIFF_EXTENSIONS"]

TIFF_EXTENSIONS = (".tif", ".tiff")

_SUPPORTED = tuple(np.dtype(t) for t in (
    np.uint8, np.uint16, np.uint32, np.uint64, np.int8, np.int16, np.int32, np.int64))
_AXIS_LETTERS = set("TZCYXSQIJKLMNOPRUVW")


def _tiff_axes(meta: dict[str, Any] | None, ndim: int) -> str | None:
    """Map napari ``axis_labels`` like ("t", "y", "x") to tifffile axes "TYX".

    None when the labels are missing, not single letters, or repeat.
    """
    labels = (meta or {}).get("axis_labels")
    if labels is None or len(labels) != ndim:
        return None
    axes = "".join(str(label).upper() for label in labels)
    if len(axes) != ndim or len(set(axes)) != ndim or not set(axes) <= _AXIS_LETTERS:
        return None
    return axes


def _target_path(path: str) -> Path:
    target = Path(path)
    if not target.suffix:
        return target.with_suffix(".tif")
    if target.suffix.lower() not in TIFF_EXTENSIONS:
        raise ValueError(f"labels are written as TIFF ({', '.join(TIFF_EXTENSIONS)}), "
                         f"got {target.name!r}")
    return target


def write_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write a Labels layer's ``data`` (``... x Y x X`` integers) to a TIFF.

    Args:
        path: the file to write; ``.tif`` is appended when it has no suffix.
        data: the layer data; any array-like of an integer dtype with at
            least 2 dimensions. Multiscale (a list of levels) is refused.
        meta: the layer's attributes; ``axis_labels`` of single letters are
            written into the TIFF metadata.

    Returns:
        ``[path]`` of the written file.

    Raises:
        TypeError: multiscale data, or a dtype that is not an integer type.
        ValueError: fewer than 2 dimensions, or a suffix other than .tif/.tiff.
        FileNotFoundError, PermissionError: the folder is missing or does not
            take new files.
    """
    if isinstance(data, (list, tuple)):
        raise TypeError("multiscale labels are not supported; write the first "
                        "(full-resolution) level instead")
    target = _target_path(path)
    check_destination(target, what="labels file")  # before reading lazy data
    array = np.asarray(data)
    if array.dtype not in _SUPPORTED:
        raise TypeError(f"labels must have an integer dtype (uint8/16/32/64, "
                        f"int8/16/32/64), got {array.dtype}")
    if array.ndim < 2:
        raise ValueError(f"labels must have at least 2 dimensions (Y, X), got "
                         f"shape {array.shape}")
    metadata: dict[str, Any] = {}
    axes = _tiff_axes(meta, array.ndim)
    if axes is not None:
        metadata["axes"] = axes
    with atomic_file(target, what="labels file") as fh:
        tifffile.imwrite(fh, array, photometric="minisblack", compression="zlib",
                         metadata=metadata)
    return [str(target)]
