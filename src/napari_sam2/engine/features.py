"""Image-feature cache: the image encoder runs once per frame, not once per
correction or re-propagation.

Entries live in RAM up to a byte budget, least recently used first out; an
optional folder takes what RAM evicts (also up to a budget) so that long
stacks can be revisited without re-encoding.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..model import FrameFeatures

MiB = 1 << 20


@dataclass(frozen=True)
class CacheBudget:
    """How much the feature cache may hold.

    ``ram_mb``: features kept in memory (on the compute device);
    ``disk_mb`` and ``disk_dir``: an optional on-disk overflow (a temporary
    folder is made when ``disk_dir`` is None and ``disk_mb > 0``).
    """

    ram_mb: float = 512.0
    disk_mb: float = 0.0
    disk_dir: str | os.PathLike | None = None


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
        if budget.ram_mb < 0 or budget.disk_mb < 0:
            raise ValueError("cache budgets must be >= 0 MB")
        self.budget = budget
        self._ram: OrderedDict[int, FrameFeatures] = OrderedDict()
        self._ram_bytes = 0
        self._disk: OrderedDict[int, tuple[Path, int]] = OrderedDict()
        self._disk_bytes = 0
        self._own_dir = False
        self._dir: Path | None = None
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
        with self._lock:
            for index in list(self._ram) + list(self._disk):
                self.discard(index)
            if self._own_dir and self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir, self._own_dir = None, False

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
        if nbytes > limit:
            return
        folder = self._folder()
        path = folder / f"frame_{index:07d}.pt"
        high = [x.detach().cpu() for x in feats.high_res] if feats.high_res is not None else None
        torch.save((feats.embedding.detach().cpu(), high), path)
        self._disk[index] = (path, nbytes)
        self._disk_bytes += nbytes
        while self._disk_bytes > limit and self._disk:
            _, (old_path, old_bytes) = self._disk.popitem(last=False)
            old_path.unlink(missing_ok=True)
            self._disk_bytes -= old_bytes

    def _folder(self) -> Path:
        if self._dir is None:
            if self.budget.disk_dir is not None:
                self._dir = Path(self.budget.disk_dir)
                self._dir.mkdir(parents=True, exist_ok=True)
            else:
                self._dir = Path(tempfile.mkdtemp(prefix="napari-sam2-features-"))
                self._own_dir = True
        return self._dir

    def __del__(self) -> None:  # best effort: remove our own temporary folder
        try:
            if self._own_dir and self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
        except Exception:
            pass
