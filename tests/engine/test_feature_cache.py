"""The image-feature cache: least recently used out first, counted in
bytes; computes each frame once; an optional folder takes what RAM evicts
and gives it back bit for bit, within its own budget."""

from __future__ import annotations

import gc
import tempfile
from pathlib import Path

import pytest
import torch

from napari_sam2.engine import CacheBudget, FeatureCache
from napari_sam2.engine.features import MiB, features_nbytes
from napari_sam2.model import FrameFeatures

KB = 4096  # bytes of one test entry


def feats(seed: int, *, high: bool = True, scale: int = 1) -> FrameFeatures:
    """Random features of ``scale * KB`` bytes (float32)."""
    g = torch.Generator().manual_seed(seed)
    if not high:
        return FrameFeatures(torch.randn(1, 16 * scale, 8, 8, generator=g), None)
    emb = torch.randn(1, 8 * scale, 8, 8, generator=g)  # 2048 B per scale
    hr = (torch.randn(1, 2 * scale, 8, 8, generator=g), torch.randn(1, 6 * scale, 8, 8, generator=g))
    return FrameFeatures(emb, hr)


def budget(ram_entries: float, disk_entries: float = 0, disk_dir=None) -> CacheBudget:
    return CacheBudget(ram_mb=ram_entries * KB / MiB, disk_mb=disk_entries * KB / MiB, disk_dir=disk_dir)


def same(a: FrameFeatures, b: FrameFeatures) -> bool:
    if not torch.equal(a.embedding, b.embedding) or (a.high_res is None) != (b.high_res is None):
        return False
    return a.high_res is None or all(torch.equal(x, y) for x, y in zip(a.high_res, b.high_res))


def test_entry_sizes_count_every_tensor():
    assert features_nbytes(feats(0)) == KB
    assert features_nbytes(feats(0, scale=2)) == 2 * KB
    assert features_nbytes(feats(0, high=False)) == KB


def test_get_or_compute_computes_once():
    cache = FeatureCache(budget(4))
    calls = []

    def compute(i):
        calls.append(i)
        return feats(i)

    first = cache.get_or_compute(3, compute)
    again = cache.get_or_compute(3, compute)
    assert calls == [3] and again is first
    assert (cache.misses, cache.hits) == (1, 1)
    assert 3 in cache and 4 not in cache and len(cache) == 1
    assert cache.get(4) is None
    cache.get_or_compute(4, compute)
    assert calls == [3, 4] and cache.ram_bytes == 2 * KB


def test_least_recently_used_goes_first_counted_in_bytes():
    cache = FeatureCache(budget(3))
    for i in range(3):
        cache.put(i, feats(i))
    assert cache.ram_bytes == 3 * KB and len(cache) == 3
    assert same(cache.get(0), feats(0))  # 0 is now the most recently used
    cache.put(3, feats(3))
    assert [i in cache for i in range(4)] == [True, False, True, True]
    cache.put(4, feats(4, scale=2))  # twice the size: two entries go, oldest first
    assert [i in cache for i in range(5)] == [False, False, False, True, True]
    assert cache.ram_bytes == 3 * KB
    cache.put(3, feats(30, scale=2))  # replacing an entry re-counts its bytes
    assert cache.ram_bytes <= 3 * KB and same(cache.get(3), feats(30, scale=2))
    assert 4 not in cache and cache.ram_bytes == 2 * KB


def test_an_entry_larger_than_the_budget_is_not_kept():
    cache = FeatureCache(budget(1.5))
    cache.put(0, feats(0))
    cache.put(1, feats(1, scale=2))
    assert 1 not in cache and 0 in cache and cache.ram_bytes == KB
    zero = FeatureCache(CacheBudget(ram_mb=0))
    calls = []
    zero.get_or_compute(0, lambda i: calls.append(i) or feats(i))
    zero.get_or_compute(0, lambda i: calls.append(i) or feats(i))
    assert calls == [0, 0] and len(zero) == 0  # no cache: computed every time


def test_discard_and_clear_in_ram():
    cache = FeatureCache(budget(4))
    for i in range(3):
        cache.put(i, feats(i))
    cache.discard(1)
    cache.discard(7)  # unknown: nothing happens
    assert 1 not in cache and cache.ram_bytes == 2 * KB
    cache.clear()
    assert len(cache) == 0 and cache.ram_bytes == 0


@pytest.mark.parametrize("ram_mb, disk_mb", [(-1, 0), (1, -0.5), (-1, -1)])
def test_negative_budgets_are_rejected(ram_mb, disk_mb):
    with pytest.raises(ValueError, match=r"(ram|disk)_mb must be >= 0 MB"):
        FeatureCache(CacheBudget(ram_mb=ram_mb, disk_mb=disk_mb))


# ---------------------------------------------------------------- disk overflow


def files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_disk_overflow_round_trips_exactly_within_its_budget(tmp_path):
    folder = tmp_path / "features"
    cache = FeatureCache(budget(2, 4, disk_dir=folder))
    for i in range(6):
        cache.put(i, feats(i))
    # RAM: 4, 5; disk: 0..3
    assert cache.ram_bytes == 2 * KB and cache.disk_bytes == 4 * KB
    own = cache._dir  # the cache's private subfolder of the folder it was given
    assert own.parent == folder and files(folder) == {own.name}
    assert len(files(own)) == 4 and len(cache) == 6
    cache.put(6, feats(6))  # 4 goes to disk, 0 (the oldest there) is dropped
    assert 0 not in cache and all(i in cache for i in range(1, 7))
    assert cache.disk_bytes == 4 * KB and len(files(own)) == 4
    assert sum(p.stat().st_size for p in own.iterdir()) > 4 * KB  # real files, not stubs

    calls = []
    got = cache.get_or_compute(1, lambda i: calls.append(i) or feats(99))
    assert calls == [] and same(got, feats(1))  # read back bit for bit, not recomputed
    assert isinstance(got.high_res, tuple)
    # 1 moved back to RAM; RAM's least recently used (5) went to disk in its place
    assert cache.ram_bytes == 2 * KB and cache.disk_bytes == 4 * KB
    assert len(files(own)) == 4
    for i in range(2, 7):
        assert same(cache.get(i), feats(i)), i
    assert cache.disk_bytes <= 4 * KB and cache.ram_bytes <= 2 * KB


def test_disk_entries_without_high_res_features(tmp_path):
    cache = FeatureCache(budget(1, 2, disk_dir=tmp_path))
    cache.put(0, feats(0, high=False))
    cache.put(1, feats(1, high=False))
    assert cache.disk_bytes == KB
    back = cache.get(0)
    assert back.high_res is None and same(back, feats(0, high=False))


def test_an_entry_larger_than_the_disk_budget_is_dropped(tmp_path):
    cache = FeatureCache(budget(1, 1.5, disk_dir=tmp_path))
    cache.put(0, feats(0, scale=2))
    assert len(cache) == 0 and cache.disk_bytes == 0 and files(tmp_path) == set()


def test_clear_removes_its_own_temporary_folder():
    cache = FeatureCache(budget(1, 4))  # no folder given: a temporary one
    for i in range(3):
        cache.put(i, feats(i))
    folder = cache._dir
    assert folder is not None and folder.is_dir() and len(files(folder)) == 2
    assert Path(tempfile.gettempdir()) in folder.parents
    cache.clear()
    assert not folder.exists()
    assert len(cache) == 0 and cache.ram_bytes == 0 and cache.disk_bytes == 0
    # still usable: a new spill makes a new folder
    for i in range(2):
        cache.put(i, feats(i))
    assert same(cache.get(0), feats(0))
    cache.clear()


def test_clear_keeps_a_folder_the_caller_gave(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    cache = FeatureCache(budget(1, 4, disk_dir=tmp_path))
    for i in range(3):
        cache.put(i, feats(i))
    assert len(files(cache._dir)) == 2 and files(tmp_path) == {"mine.txt", cache._dir.name}
    cache.clear()
    assert files(tmp_path) == {"mine.txt"}


def test_a_dropped_cache_removes_its_temporary_folder():
    cache = FeatureCache(budget(1, 4))
    for i in range(2):
        cache.put(i, feats(i))
    folder = cache._dir
    assert folder.is_dir()
    del cache
    gc.collect()
    assert not folder.exists()
