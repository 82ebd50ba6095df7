"""Stacks from files: TIFF and OME-TIFF (memory-mapped where possible), zarr.

One function, :func:`open_stack`, used by the command line and the batch
runner: it returns an array-like read lazily frame by frame (a numpy memmap,
a zarr array; for compressed TIFFs a zarr view that decodes the pages a
frame needs when it is read, after every page was decoded once, one at a
time, to check the file), and refuses files
that are not a whole stack with an error that names the file: fewer pages
than the file declares, a broken page chain, undecodable data (tifffile
itself only logs warnings for these and returns what it could read).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

STACK_SUFFIXES = (".tif", ".tiff", ".zarr")


def is_stack_path(path: str | Path) -> bool:
    """Whether ``path`` names a stack this module reads (by its suffix)."""
    name = str(path).rstrip("/\\").lower()
    return name.endswith(STACK_SUFFIXES) or name.endswith(".ome.tif") or name.endswith(".ome.tiff")


def open_stack(path: str | Path):
    """Open the stack at ``path`` read-only.

    Raises:
        FileNotFoundError: nothing at ``path``.
        ValueError: not a TIFF or zarr stack, or a file that cannot be read
            as one (the message names the file).
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"stack {str(p)!r} does not exist")
    name = p.name.lower()
    if name.endswith(".zarr") or (p.is_dir() and ((p / ".zarray").exists() or (p / "zarr.json").exists())):
        return _open_zarr(p)
    if name.endswith((".tif", ".tiff")):
        return _read_tiff(p)
    raise ValueError(f"stack {str(p)!r}: expected a TIFF (.tif, .tiff, .ome.tif) or a zarr array (.zarr)")


class _LogRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class DamagedStackError(ValueError):
    """A stack file that cannot be read whole."""


def _declared_mismatch(tif, series) -> str | None:
    """What the file's own metadata declares (tifffile's shape or ImageJ's
    number of images) and the series does not hold, or None."""
    for meta in tif.shaped_metadata or ():
        if isinstance(meta, dict) and meta.get("shape"):
            declared = tuple(int(v) for v in meta["shape"])
            if int(np.prod(declared)) != int(np.prod(series.shape)):
                return f"it declares shape {declared} but holds {tuple(series.shape)}"
            return None
    ij = tif.imagej_metadata or {}
    if ij.get("images") and int(ij["images"]) != _planes(series):
        return f"it declares {int(ij['images'])} images but holds {_planes(series)}"
    return None


def _planes(series) -> int:
    """The number of 2D planes a series holds (every axis but Y, X and samples)."""
    return int(np.prod([n for n, a in zip(series.shape, series.axes) if a not in "YXS"] or [1]))


def _read_tiff(path) -> Any:
    """The TIFF at ``path`` as an array (memory-mapped when it can be).

    A damaged or truncated file is an error naming it: fewer pages than the
    file declares, a broken page chain or undecodable data (tifffile only
    logs warnings for these and returns what it could read).
    """
    import tifffile

    def damaged(reason: str) -> ValueError:
        return DamagedStackError(f"stack {path} is damaged or truncated: {reason}; "
                                 "nothing was segmented (write the file again or give another one)")

    handler = _LogRecords()
    logger = logging.getLogger("tifffile")
    logger.addHandler(handler)
    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.series or not tif.pages:
                raise damaged("it holds no image")
            series = tif.series[0]
            mismatch = _declared_mismatch(tif, series)
            if mismatch is not None:
                raise damaged(mismatch)
            compressed = any(page.compression != 1 for page in series.pages if page is not None)
            data = None
            if compressed:
                for page in series.pages:  # every page decodes (one in memory at a time)
                    if page is not None:
                        page.asarray()
            else:
                try:
                    data = tifffile.memmap(path, mode="r")
                except (ValueError, tifffile.TiffFileError, OSError):
                    data = series.asarray()
            if data is None:
                data = _lazy_pages(path, series)
    except DamagedStackError:
        raise
    except FileNotFoundError:
        raise FileNotFoundError(f"stack {path} does not exist") from None
    except Exception as exc:  # zlib.error, struct.error, TiffFileError...
        raise damaged(f"{type(exc).__name__}: {exc}") from exc
    finally:
        logger.removeHandler(handler)
    if handler.messages:
        raise damaged(handler.messages[0])
    return data


def _lazy_pages(path, series):
    """The series as a read-only zarr array over the file (a chunk per
    page, decoded when read); the decoded array where zarr cannot."""
    import tifffile

    try:
        import zarr

        return zarr.open(tifffile.imread(path, aszarr=True), mode="r")
    except Exception:  # an old tifffile/zarr pairing without the store
        return series.asarray()


def _open_zarr(p: Path):
    try:
        import zarr
    except ImportError:  # pragma: no cover - zarr comes with the test extra
        raise ValueError(f"stack {str(p)!r} is a zarr array; install zarr to read it") from None
    try:
        array = zarr.open(str(p), mode="r")
    except Exception as exc:
        raise ValueError(f"stack {str(p)!r} is not a readable zarr array: {exc}") from None
    if not hasattr(array, "shape"):
        raise ValueError(f"stack {str(p)!r} is a zarr group, not an array; give the array's folder")
    return array
