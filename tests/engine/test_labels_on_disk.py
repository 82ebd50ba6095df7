"""A long stack's labels go into an on-disk zarr array, frame by frame, and
are never held whole in memory (``benchmarks/bench_memory.py`` measures
the peak of a 2,000-frame 1024 x 1024 stack; this is its small CI twin)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from napari_sam2.engine import CacheBudget, SessionOptions, StackSession

from .conftest import blobs

FRAMES, SIZE = 40, 256
FRAME_BYTES = SIZE * SIZE * np.dtype(np.int32).itemsize
# the test's bound: a third of the whole labels (the per-frame working
# buffers, zarr's chunk encoding included, are about 8 frames' worth)
MAX_FRAMES_HELD = FRAMES // 3


@pytest.fixture(scope="module")
def stack():
    return blobs(n=FRAMES, h=SIZE, w=SIZE)


def _traced_propagation(model, stack, labels, stop=None):
    """Build a session writing into ``labels`` (None: its own array) and
    propagate one object forward (to ``stop``), all under tracemalloc
    (numpy's buffers are traced; torch's tensors, the model and the
    budgeted caches are not). Returns the session, the peak traced bytes
    and each frame's label sum as it was yielded."""
    options = SessionOptions(feature_cache=CacheBudget(ram_mb=8.0), history_mb=4.0)
    tracemalloc.start()
    try:
        session = StackSession(model, stack, labels=labels, options=options)
        session.add_points(1, 0, [(SIZE * 0.35, SIZE * 0.3)], [1])
        sums = {frame: int(np.sum(out == 1)) for frame, out in session.propagate("forward", stop=stop)}
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return session, peak, sums


def test_labels_are_written_into_a_zarr_array_on_disk_and_not_held_in_memory(model, stack, tmp_path):
    zarr = pytest.importorskip("zarr")
    path = tmp_path / "labels.zarr"
    store = zarr.open(str(path), mode="w", shape=(FRAMES, SIZE, SIZE), chunks=(1, SIZE, SIZE),
                      dtype="int32", fill_value=0)
    session, peak, sums = _traced_propagation(model, stack, store)
    assert session.labels is store
    assert sorted(sums) == list(range(FRAMES)) and sum(v > 0 for v in sums.values()) > FRAMES // 2
    assert peak < MAX_FRAMES_HELD * FRAME_BYTES, f"{peak / FRAME_BYTES:.1f} frames' worth traced"
    on_disk = zarr.open(str(path), mode="r")  # every frame was written through to the files
    assert {t: int(np.sum(on_disk[t] == 1)) for t in range(FRAMES)} == sums


def test_the_same_run_with_labels_in_memory_traces_the_whole_stack(model, stack):
    """The check above can fail: labels held in RAM show in the trace (from
    the start: a few frames are enough)."""
    session, peak, _ = _traced_propagation(model, stack, None, stop=2)
    assert isinstance(session.labels, np.ndarray)
    assert peak >= FRAMES * FRAME_BYTES
