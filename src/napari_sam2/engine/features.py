"""Image-feature cache: the image encoder runs once per frame, not once per
correction or re-propagation.

Entries live in RAM up to a byte budget, least recently used first out; an
optional folder takes what RAM evicts (also up to a budget) so that long
stacks can be revisited without re-encoding. Each cache spills into a
private subfolder of its own (``disk_dir`` is only the parent), so that two
caches given the same ``disk_dir`` never read each other's files; the
subfolder is removed by :meth:`FeatureCache.close` (or ``clear``), when the
cache is dropped, and at the latest when Python exits.
"""

from __future__ import annotations

import math
import numbers
import os
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .._io import check_folder, private_folder, remove_folder
from ..model import FrameFeatures

MiB = 1 << 20


@dataclass(frozen=True)
class CacheBudget:
    """How much the feature cache may hold.

    ``ram_mb``: features kept in memory (on the compute device);
    ``disk_mb`` and ``disk_dir``: an optional on-disk overflow, in a private
    subfolder of ``disk_dir`` (of the system's temporary folder when
    ``disk_dir`` is None). Budgets are finite numbers of MB >= 0.
    """

    ram_mb: float = 512.0
    disk_mb: float = 0.0
    disk_dir: str | os.PathLike | None = None

    def __post_init__(self) -> None:
        for name in ("ram_mb", "disk_mb"):
            check_megabytes(getattr(self, name), name)
        if self.disk_dir is not None and not isinstance(self.disk_dir, (str, os.PathLike)):
            raise TypeError(f"disk_dir must be a folder path or None, got {self.disk_dir!r}")


def check_megabytes(value, name: str) -> float:
    """``value`` as a float if it is a finite number >= 0 (a budget in MB)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number of MB, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be >= 0 MB and finite, got {value!r}")
    return float(value)


def features_nbytes(features: FrameFeatures) -> int:
    total = features.embedding.numel() * features.embedding.element_size()
    for x in features.high_res or ():
        total += x.numel() * x.element_size()
    return total


class FeatureCache:
    """Frame index -> :class:`FrameFeatures` of one frame (batch 1).

    ``get_or_compute(i, compute)`` returns cached features or calls
    ``compute(i)`` and stores the result. Thread-safe.
    """

    def __init__(self, budget: CacheBudget = CacheBudget()) -> None:
        if not isinstance(budget, CacheBudget):
            raise TypeError(f"budget must be a CacheBudget, got {type(budget).__name__}")
        self.budget = budget
        if budget.disk_mb > 0 and budget.disk_dir is not None:
            _check_parent(Path(os.fspath(budget.disk_dir)).expanduser())
        self._ram: OrderedDict[int, FrameFeatures] = OrderedDict()
        self._ram_bytes = 0
        self._disk: OrderedDict[int, tuple[Path, int]] = OrderedDict()
        self._disk_bytes = 0
        self._dir: Path | None = None  # the private subfolder, made at the first spill
        self._spill_failed = False
        self._lock = threading.RLock()
        self.hits = 0
        self.misses = 0

    # ------------------------------------------------------------- queries
    def __contains__(self, index: int) -> bool:
        with self._lock:
            return index in self._ram or index in self._disk

    def __len__(self) -> int:
        with self._lock:
            return len(self._ram) + len(self._disk)

    @property
    def ram_bytes(self) -> int:
        return self._ram_bytes

    @property
    def disk_bytes(self) -> int:
        return self._disk_bytes

    # ------------------------------------------------------------- access
    def get(self, index: int, device: torch.device | None = None) -> FrameFeatures | None:
        with self._lock:
            feats = self._ram.get(index)
            if feats is not None:
                self._ram.move_to_end(index)
                self.hits += 1
                return feats
            on_disk = self._disk.pop(index, None)
            if on_disk is None:
                return None
            path, nbytes = on_disk
            self._disk_bytes -= nbytes
            emb, high = torch.load(path, map_location=device or "cpu", weights_only=True)
            path.unlink(missing_ok=True)
            feats = FrameFeatures(emb, tuple(high) if high is not None else None)
            self.hits += 1
            self._store_ram(index, feats)
            return feats

    def get_or_compute(
        self, index: int, compute: Callable[[int], FrameFeatures], device: torch.device | None = None
    ) -> FrameFeatures:
        with self._lock:
            feats = self.get(index, device)
            if feats is not None:
                return feats
            self.misses += 1
            feats = compute(index)
            self.put(index, feats)
            return feats

    def put(self, index: int, features: FrameFeatures) -> None:
        with self._lock:
            self.discard(index)
            self._store_ram(index, features)

    def discard(self, index: int) -> None:
        with self._lock:
            old = self._ram.pop(index, None)
            if old is not None:
                self._ram_bytes -= features_nbytes(old)
            on_disk = self._disk.pop(index, None)
            if on_disk is not None:
                on_disk[0].unlink(missing_ok=True)
                self._disk_bytes -= on_disk[1]

    def clear(self) -> None:
        """Drop every entry and remove the private folder (made again when needed)."""
        with self._lock:
            for index in list(self._ram) + list(self._disk):
                self.discard(index)
            if self._dir is not None:
                remove_folder(self._dir)
                self._dir = None

    close = clear

    # ------------------------------------------------------------- internals
    def _store_ram(self, index: int, feats: FrameFeatures) -> None:
        nbytes = features_nbytes(feats)
        limit = self.budget.ram_mb * MiB
        if nbytes > limit:
            self._spill(index, feats, nbytes)
            return
        self._ram[index] = feats
        self._ram_bytes += nbytes
        while self._ram_bytes > limit and self._ram:
            old_index, old = self._ram.popitem(last=False)
            old_bytes = features_nbytes(old)
            self._ram_bytes -= old_bytes
            self._spill(old_index, old, old_bytes)

    def _spill(self, index: int, feats: FrameFeatures, nbytes: int) -> None:
        limit = self.budget.disk_mb * MiB
        if nbytes > limit or self._spill_failed:
            return
        high = [x.detach().cpu() for x in feats.high_res] if feats.high_res is not None else None
        path = None
        try:
            folder = self._folder()
            path = folder / f"frame_{index:07d}.pt"
            torch.save((feats.embedding.detach().cpu(), high), path)
        except (OSError, RuntimeError) as exc:  # disk full, folder removed...
            # the cache is only a shortcut: the frame is encoded again when needed
            if path is not None:
                path.unlink(missing_ok=True)
            folder = self.budget.disk_dir or "the temporary folder"
            self._spill_failed = True
            warnings.warn(
                f"the feature cache cannot write to {folder} ({exc}); frames that do not fit "
                "in RAM will be encoded again when needed", RuntimeWarning, stacklevel=2)
            return
        self._disk[index] = (path, nbytes)
        self._disk_bytes += nbytes
        while self._disk_bytes > limit and self._disk:
            _, (old_path, old_bytes) = self._disk.popitem(last=False)
            old_path.unlink(missing_ok=True)
            self._disk_bytes -= old_bytes

    def _folder(self) -> Path:
        if self._dir is None:
            self._dir = private_folder(self.budget.disk_dir, prefix="napari-sam2-features-",
                                       what="feature cache disk_dir")
        return self._dir

    def __del__(self) -> None:  # best effort: remove our private folder
        try:
            if self._dir is not None:
                remove_folder(self._dir)
        except Exception:
            pass


def _check_parent(folder: Path) -> None:
    """The cache's ``disk_dir`` exists (made if missing) and takes new files."""
    try:
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"feature cache disk_dir {folder} is not a folder")
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PermissionError(
            f"feature cache disk_dir {folder}: cannot create it ({exc.strerror or exc})"
        ) from exc
    check_folder(folder, f"feature cache disk_dir {folder}")
