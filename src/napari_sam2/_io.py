"""The one way files are written: a unique temporary file, fsync, atomic replace.

Every writer of the package (the TIFF writer, the command line, checkpoints,
the disk feature cache, session files) goes through here, so that whatever
goes wrong (Ctrl-C, a full disk, a crash, two writers at once) the
destination holds either its old content or the complete new one, never a
mix or a truncated file, and no temporary file is left behind.

* :func:`check_destination` says, before any long work starts, whether a
  file can be written at a path: its folder exists and takes new files,
  the path is not a folder, and it is not one of the inputs.
* :func:`atomic_file` opens a uniquely named temporary file next to the
  destination; on success it is flushed, fsynced and moved over the
  destination in one step (``os.replace``), on any error removed.
* :func:`private_folder` makes a uniquely named subfolder (e.g. for a
  cache) that is removed again by :func:`remove_folder` or at exit.

Pure Python (no numpy, torch or napari), so that every layer may use it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import IO, Iterable, Iterator, Union

__all__ = [
    "check_destination",
    "check_folder",
    "atomic_file",
    "write_synced",
    "fsync_folder",
    "replace_folder",
    "private_folder",
    "remove_folder",
    "same_file",
]

PathLike = Union[str, "os.PathLike[str]"]


def same_file(a: PathLike, b: PathLike) -> bool:
    """Whether two paths name the same file (links and ``..`` resolved)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(os.path.abspath(a)) == Path(os.path.abspath(b))


def check_folder(folder: Path, what: str) -> None:
    """Raise ``PermissionError`` (starting with ``what``) unless ``folder``
    takes new files. Creates and removes a file in ``folder``: the only test that holds for
    every case (permissions, read-only mounts, root, ACLs)."""
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=".napari-sam2-probe-")
    except OSError as exc:
        raise PermissionError(
            f"{what}: cannot create files in the folder {folder} ({exc.strerror or exc}); "
            "choose a folder you can write to"
        ) from exc
    os.close(fd)
    os.unlink(name)


def check_destination(path: PathLike, *, inputs: Iterable[PathLike] = (), what: str = "output") -> Path:
    """``path`` as a :class:`Path`, once sure that a file can be written there.

    Call it before long work, so that a bad destination fails at once.

    Raises:
        ValueError: ``path`` is one of ``inputs`` (it would be overwritten)
            or is an existing folder.
        FileNotFoundError: the folder ``path`` would go into does not exist.
        PermissionError: that folder does not take new files.
    """
    target = Path(os.fspath(path)).expanduser()
    for source in inputs:
        if source is not None and same_file(target, source):
            raise ValueError(
                f"{what} {target} is also an input; writing it would destroy the input. "
                "Choose another output path"
            )
    if target.is_dir():
        raise ValueError(f"{what} {target} is a folder; give a file path")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{what} {target}: the folder {folder} does not exist; create it first"
        )
    check_folder(folder, f"{what} {target}")
    return target


def _new_file_mode(target: Path) -> int:
    """The permissions a plain ``open(target, "w")`` would give (mkstemp's 0600 is too strict)."""
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def fsync_folder(folder: PathLike) -> None:
    """Make a folder's entries (new names, renames) durable."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows: folders cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path: PathLike, *, inputs: Iterable[PathLike] = (), what: str = "output") -> Iterator[IO[bytes]]:
    """Write ``path`` atomically: ``with atomic_file(p) as fh: fh.write(...)``.

    ``fh`` is a binary file in the destination's folder under a unique
    hidden name. When the block ends normally it is flushed, fsynced and
    moved over ``path`` in one step; when it raises (Ctrl-C included), or the
    final move fails, it is removed and ``path`` keeps its old content.
    ``inputs`` and ``what`` are as for :func:`check_destination`.
    """
    target = check_destination(path, inputs=inputs, what=what)
    folder = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".part")
    except OSError as exc:
        raise PermissionError(f"{what} {target}: cannot create a file in {folder} ({exc})") from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with open(tmp, "w+b") as fh:  # by name: writers such as tifffile read fh.name
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _new_file_mode(target))
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_folder(folder)


def write_synced(path: PathLike, payload: bytes) -> None:
    """Write ``payload`` to ``path`` and fsync it: for files inside a staging
    folder that :func:`replace_folder` (or an atomic pointer) publishes whole."""
    with open(path, "wb") as fh:
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())


def replace_folder(staging: PathLike, final: PathLike) -> None:
    """Put the finished folder ``staging`` in the place of ``final``.

    The old ``final`` is first renamed aside (to a hidden ``.old-`` name
    beside it) and removed only after ``staging`` is in place; a crash in
    between leaves the old version under that name and the new one whole.
    """
    staging, final = Path(staging), Path(final)
    old = final.with_name(f".old-{final.name}-{os.urandom(4).hex()}")
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    fsync_folder(final.parent)
    shutil.rmtree(old, ignore_errors=True)


# ------------------------------------------------------------ private folders

_made: set[str] = set()
_made_lock = threading.Lock()


def private_folder(parent: PathLike | None, *, prefix: str = "napari-sam2-", what: str = "folder") -> Path:
    """A new, uniquely named folder inside ``parent`` (the system's temporary
    folder when None), created only for the caller; removed by
    :func:`remove_folder` or, at the latest, when Python exits.

    ``parent`` is created when missing. Raises ``PermissionError`` naming
    ``parent`` when it cannot hold new files.
    """
    base = None if parent is None else Path(os.fspath(parent)).expanduser()
    try:
        if base is not None:
            if base.exists() and not base.is_dir():
                raise ValueError(f"{what} {base} is not a folder")
            base.mkdir(parents=True, exist_ok=True)
        name = tempfile.mkdtemp(prefix=prefix, dir=base)
    except OSError as exc:
        raise PermissionError(
            f"{what} {base}: cannot create a folder there ({exc.strerror or exc}); "
            "choose a folder you can write to"
        ) from exc
    with _made_lock:
        _made.add(name)
    return Path(name)


def remove_folder(folder: PathLike | None) -> None:
    """Remove a folder made by :func:`private_folder` (missing is fine)."""
    if folder is None:
        return
    name = os.fspath(folder)
    shutil.rmtree(name, ignore_errors=True)
    with _made_lock:
        _made.discard(name)


@atexit.register
def _remove_all() -> None:
    with _made_lock:
        names = list(_made)
        _made.clear()
    for name in names:
        shutil.rmtree(name, ignore_errors=True)
