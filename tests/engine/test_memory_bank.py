"""The bounded memory bank: the history is held to a byte budget plus the
window that tracking and corrections read, what it keeps reads exactly as
an unbounded store would, and a session's memory stays flat as the stack
grows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_sam2.config import TrackingConfig
from napari_sam2.engine import CacheBudget, FrameMemory, MemoryBank, SessionOptions, StackSession
from napari_sam2.engine.features import MiB
from napari_sam2.engine.memory import stack_readouts
from napari_sam2.model import read_memory

from .conftest import blobs, make_model

CONFIG = TrackingConfig()  # num_maskmem 7, max_obj_ptrs_in_encoder 16
WINDOW = max(CONFIG.num_maskmem - 1, CONFIG.max_obj_ptrs_in_encoder - 1)


def entry(frame: int, obj: int = 1) -> FrameMemory:
    """A small entry whose tensors say which frame (and object) they are from."""
    v = float(frame + 1000 * obj)
    return FrameMemory(
        torch.full((1, 2, 2, 2), v, dtype=torch.bfloat16),
        torch.full((1, 4), v),
        torch.full((1, 1), v),
        torch.full((1, 1, 4, 4), v),
    )


E = entry(0).nbytes  # bytes per entry


def same_readout(a, b):
    assert a.frames == b.frames
    assert a.max_pointers == b.max_pointers
    assert [t for t, _ in a.spatial] == [t for t, _ in b.spatial]
    assert [o for o, _ in a.pointers] == [o for o, _ in b.pointers]
    assert all(torch.equal(x, y) for (_, x), (_, y) in zip(a.spatial, b.spatial))
    assert all(torch.equal(x, y) for (_, x), (_, y) in zip(a.pointers, b.pointers))


def test_entry_size():
    assert E == 8 * 2 + 4 * 4 + 1 * 4 + 16 * 4
    assert MemoryBank(CONFIG, history_bytes=0).window == WINDOW


def test_history_stays_under_budget_plus_the_protected_window():
    budget = 10 * E
    bank = MemoryBank(CONFIG, history_bytes=budget)
    bank.add_object(1)
    bank.set_cond(1, 0, entry(0))
    full = {}
    peak = 0
    for f in range(1, 200):
        bank.put(1, f, entry(f))
        full[f] = entry(f)
        peak = max(peak, bank.history_nbytes)
        # what the next forward step reads is exactly what an unbounded store gives
        same_readout(
            bank.readout(1, f + 1, num_frames=200, reverse=False),
            read_memory(f + 1, {0: entry(0)}, full, config=CONFIG, num_frames=200, reverse=False),
        )
    # protected: WINDOW + 1 frames up to the latest, WINDOW + 1 after the conditioning frame
    assert peak <= budget + 2 * (WINDOW + 1) * E
    kept = set(bank._history[1])
    assert bank.history_nbytes == len(kept) * E
    needed_memories = set(range(200 - (CONFIG.num_maskmem - 1), 200))
    needed_pointers = set(range(200 - (CONFIG.max_obj_ptrs_in_encoder - 1), 200))
    near_cond = set(range(1, WINDOW + 2))
    assert needed_memories | needed_pointers | near_cond <= kept
    assert not kept & set(range(WINDOW + 2, 200 - WINDOW - 1))  # the old middle is gone
    assert bank.logits(1, 100) is None
    assert torch.equal(bank.logits(1, 199), entry(199).logits)
    assert torch.equal(bank.logits(1, 0), entry(0).logits)  # conditioning frames stay


def test_within_a_larger_budget_the_newest_entries_stay():
    budget = 50 * E  # more than the protected frames
    bank = MemoryBank(CONFIG, history_bytes=budget)
    bank.add_object(1)
    bank.set_cond(1, 0, entry(0))
    for f in range(1, 200):
        bank.put(1, f, entry(f))
        assert bank.history_nbytes <= budget
    kept = set(bank._history[1])
    assert len(kept) == 50
    protected = set(range(1, WINDOW + 2)) | set(range(199 - WINDOW, 200))
    assert protected <= kept
    newest_others = set(range(199 - WINDOW - (50 - len(protected)), 199 - WINDOW))
    assert kept == protected | newest_others


def test_entries_around_a_conditioning_frame_in_the_middle_are_kept():
    """Prompted on frame 100, tracked forward to 199 then backward to 0: a
    correction on 100, or a re-run on either side of it, reads what an
    unbounded store holds."""
    bank = MemoryBank(CONFIG, history_bytes=5 * E)
    bank.add_object(1)
    bank.set_cond(1, 100, entry(100))
    full = {}
    for f in list(range(101, 200)) + list(range(99, -1, -1)):
        bank.put(1, f, entry(f))
        full[f] = entry(f)
    kept = set(bank._history[1])
    assert set(range(100 - WINDOW - 1, 100)) | set(range(101, 100 + WINDOW + 2)) <= kept
    assert not kept & ({50, 150, 180})
    cond = {100: entry(100)}
    for frame, reverse in ((101, False), (99, True), (100, False), (100, True), (0, True)):
        same_readout(
            bank.readout(1, frame, num_frames=200, reverse=reverse),
            read_memory(frame, cond, full, config=CONFIG, num_frames=200, reverse=reverse),
        )


def test_the_budget_is_shared_by_all_objects():
    budget = 10 * E
    bank = MemoryBank(CONFIG, history_bytes=budget)
    for obj in (1, 2, 3):
        bank.add_object(obj)
        bank.set_cond(obj, 0, entry(0, obj))
    for f in range(1, 120):
        for obj in (1, 2, 3):
            bank.put(obj, f, entry(f, obj))
        assert bank.history_nbytes <= budget + 3 * 2 * (WINDOW + 1) * E
    for obj in (1, 2, 3):
        assert set(range(119 - WINDOW, 120)) <= set(bank._history[obj])
        assert torch.equal(bank.logits(obj, 119), entry(119, obj).logits)
    bank.remove_object(2)
    assert bank.history_nbytes == sum(len(bank._history[o]) for o in (1, 3)) * E
    assert bank.cond_frames(2) == [] and bank.logits(2, 119) is None
    bank.clear()
    assert bank.history_nbytes == 0 and bank._order == {}


def test_conditioning_frames_replace_and_give_back_history_entries():
    bank = MemoryBank(CONFIG, history_bytes=1 << 20)
    bank.add_object(1)
    bank.set_cond(1, 0, entry(0))
    for f in range(1, 6):
        bank.put(1, f, entry(f))
    assert bank.history_nbytes == 5 * E
    bank.set_cond(1, 3, entry(300))  # a correction on a tracked frame
    assert bank.cond_frames(1) == [0, 3]
    assert 3 not in bank._history[1] and bank.history_nbytes == 4 * E
    assert torch.equal(bank.logits(1, 3), entry(300).logits)
    assert bank.cond_entry(1, 3) is not None and bank.cond_entry(1, 4) is None
    bank.downgrade_cond(1, 3)  # prompts cleared: the output stays as a tracked frame
    assert bank.cond_frames(1) == [0]
    assert bank.history_nbytes == 5 * E
    assert torch.equal(bank.logits(1, 3), entry(300).logits)
    bank.put(1, 4, entry(400))  # re-tracking a frame replaces its entry
    assert bank.history_nbytes == 5 * E
    assert torch.equal(bank.logits(1, 4), entry(400).logits)


def test_readout_equals_read_memory_over_the_banks_mappings():
    bank = MemoryBank(CONFIG, history_bytes=1 << 20)
    bank.add_object(1)
    for c in (0, 9):
        bank.set_cond(1, c, entry(c))
    for f in range(1, 9):
        bank.put(1, f, entry(f))
    for frame, reverse in ((5, False), (5, True), (10, False), (0, True)):
        same_readout(
            bank.readout(1, frame, num_frames=12, reverse=reverse),
            read_memory(frame, bank._cond[1], bank._history[1], config=CONFIG, num_frames=12, reverse=reverse),
        )


def test_stack_readouts_batches_objects_reading_the_same_frames():
    bank = MemoryBank(CONFIG, history_bytes=1 << 20)
    for obj in (1, 2):
        bank.add_object(obj)
        bank.set_cond(obj, 0, entry(0, obj))
        for f in (1, 2):
            bank.put(obj, f, entry(f, obj))
    r1, r2 = (bank.readout(o, 3, num_frames=8, reverse=False) for o in (1, 2))
    assert r1.frames == r2.frames
    both = stack_readouts([r1, r2])
    assert both.frames == r1.frames and both.max_pointers == r1.max_pointers
    for (t, x), (_, a), (_, b) in zip(both.spatial, r1.spatial, r2.spatial):
        assert x.shape[0] == 2 and torch.equal(x, torch.cat([a, b]))
    for (o, x), (_, a), (_, b) in zip(both.pointers, r1.pointers, r2.pointers):
        assert torch.equal(x, torch.cat([a, b]))
    assert stack_readouts([r1]) is r1


# ---------------------------------------------------------------- in a session


@pytest.fixture(scope="module")
def short_memory_model():
    """A model that reads 2 past memories and 3 past pointers (window 3), so
    that 40 frames are many windows long."""
    return make_model(tracking={"num_maskmem": 3, "max_obj_ptrs_in_encoder": 4})


def test_a_session_keeps_memory_flat_as_the_stack_grows(short_memory_model):
    n = 24
    model = short_memory_model  # the two sessions below share its image encodings
    data = blobs(n, 24, 32)
    s = StackSession(model, data, options=SessionOptions(history_mb=0.0, feature_cache=CacheBudget(ram_mb=0.6)))
    s.add_points(1, 0, [[8, 10]], [1])
    s.add_points(2, 0, [[16, 22]], [1])
    window = s._bank.window
    assert window == 3
    history, ram, cached = [], [], []
    for f, _ in s.propagate():
        history.append(s._bank.history_nbytes)
        ram.append(s._features.ram_bytes)
        cached.append(len(s._features))
    entry_bytes = next(iter(s._bank._history[1].values())).nbytes
    frame_bytes = 256 * 8 * 8 * 4 + 32 * 32 * 32 * 4 + 64 * 16 * 16 * 4  # features of one frame
    # per object: the window up to the latest frame and the window after the prompted frame
    bound = 2 * (2 * window + 2) * entry_bytes
    assert max(history) <= bound < (n - 1) * entry_bytes
    assert history[-1] == history[n // 2]  # flat: no growth with the frame count
    assert max(ram) <= 0.6 * MiB and max(cached) == 2
    assert s._features.ram_bytes == 2 * frame_bytes

    # the bounded session tracks exactly as an unbounded one
    ref = StackSession(model, data)
    ref.add_points(1, 0, [[8, 10]], [1])
    ref.add_points(2, 0, [[16, 22]], [1])
    for _ in ref.propagate():
        pass
    assert np.array_equal(s.labels, ref.labels)
    assert len(ref._bank._history[1]) == n - 1  # the default budget keeps everything here
    assert ref._bank.history_nbytes == 2 * (n - 1) * entry_bytes > 2 * max(history)


def test_a_correction_after_eviction_still_runs(short_memory_model):
    n = 24  # the frames of the test above: their encodings are shared
    s = StackSession(short_memory_model, blobs(n, 24, 32), options=SessionOptions(history_mb=0.0))
    s.add_points(1, 0, [[8, 10]], [1])
    assert [f for f, _ in s.propagate()] == list(range(n))
    assert s._bank.logits(1, 10) is None  # evicted
    s.add_points(1, 11, [[9, 11]], [1])
    assert [f for f, _ in s.propagate()] == list(range(11, n))
    assert s._bank.cond_frames(1) == [0, 11]
