"""Stacks from files: TIFF and OME-TIFF (memory-mapped where possible), zarr.

One function, :func:`open_stack`, used by the command line and the batch
runner: it returns an array-like read lazily frame by frame (a numpy memmap,
a zarr array) or, for compressed TIFFs, the decoded array, and refuses files
that are not a whole stack with an error that names the file.
"""

from __future__ import annotations

from pathlib import Path

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
        return _open_tiff(p)
    raise ValueError(f"stack {str(p)!r}: expected a TIFF (.tif, .tiff, .ome.tif) or a zarr array (.zarr)")


def _open_tiff(p: Path):
    import tifffile

    try:
        return tifffile.memmap(p, mode="r")
    except Exception:  # compressed, not memory-mappable, or damaged: decode it
        pass
    try:
        array = tifffile.imread(p)
    except Exception as exc:  # tifffile raises many kinds on a damaged file
        raise ValueError(f"stack {str(p)!r} is not a readable TIFF: {exc}") from None
    if array.size == 0:
        raise ValueError(f"stack {str(p)!r} is not a readable TIFF: it holds no image data")
    return array


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
