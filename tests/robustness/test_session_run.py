"""A propagation under bad luck: label writes that fail leave their frame
out of date and the session usable, the generator checks the session when
it starts, stop() from another thread ends a run within a frame, and
propagate("both") writes the prompted frame once."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from napari_sam2.engine import StackSession

from ..engine.conftest import blobs, make_model

N, H, W = 5, 32, 40
A = [[11, 12]]
B = [[21, 28]]


@pytest.fixture(scope="module")
def model():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield make_model()
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    return blobs(N, H, W)


def frames_of(gen):
    return [f for f, _ in gen]


def finished(model, data):
    """The labels of an undisturbed session (what a retry must reach)."""
    s = StackSession(model, data)
    s.add_points(1, 0, A, [1])
    s.add_points(2, 0, B, [1])
    frames_of(s.propagate())
    return s.labels.copy()


class FailingLabels:
    """An integer array-like whose writes of ``fail_on`` raise OSError once armed."""

    def __init__(self, shape):
        self._a = np.zeros(shape, np.int32)
        self.shape, self.dtype = self._a.shape, self._a.dtype
        self.fail_on: set[int] = set()

    def __getitem__(self, key):
        return self._a[key]

    def __setitem__(self, key, value):
        if isinstance(key, (int, np.integer)) and int(key) in self.fail_on:
            self.fail_on.discard(int(key))
            raise OSError(28, "No space left on device")
        self._a[key] = value

    def __array__(self, dtype=None, copy=None):
        return self._a if dtype is None else self._a.astype(dtype)


# ---------------------------------------------------------------- failed label writes


@pytest.mark.parametrize("bad_frame", [0, 2], ids=["prompted frame", "tracked frame"])
def test_a_failed_label_write_leaves_the_frame_out_of_date_and_a_retry_computes_it(model, data, bad_frame):
    labels = FailingLabels((N, H, W))
    s = StackSession(model, data, labels=labels)
    s.add_points(1, 0, A, [1])
    s.add_points(2, 0, B, [1])
    labels.fail_on = {bad_frame}
    done = []
    with pytest.raises(OSError, match=rf"frame {bad_frame} .*labels.*No space left"):
        for f, _ in s.propagate():
            done.append(f)
    assert done == list(range(bad_frame))
    assert not s._objects[1].fresh[bad_frame:].any() and not s._objects[2].fresh[bad_frame:].any()
    assert not labels[bad_frame].any()  # nothing half-written
    # usable again: a retry computes the failed frame and the rest, nothing before it
    assert frames_of(s.propagate()) == list(range(bad_frame, N))
    assert np.array_equal(labels[:], finished(model, data))
    assert frames_of(s.propagate()) == []


def test_a_labels_array_made_read_only_fails_clearly_and_recovers(model, data):
    s = StackSession(model, data)
    s.add_points(1, 0, A, [1])
    s.labels.flags.writeable = False
    with pytest.raises(ValueError, match="frame 0 into the labels array.*read-only"):
        next(iter(s.propagate()))
    with pytest.raises(ValueError, match="frame 0 into the labels array"):
        s.segment_frame(0)
    s.labels.flags.writeable = True
    assert frames_of(s.propagate()) == list(range(N))
    assert all((s.labels[f] == 1).any() for f in range(N))


# ---------------------------------------------------------------- the generator starts late


@pytest.mark.parametrize("change", ["reset", "remove_object", "clear_frame"])
def test_the_generator_checks_the_session_when_it_starts(model, data, change):
    s = StackSession(model, data)
    s.add_points(1, 0, A, [1])
    gen = s.propagate()
    if change == "reset":
        s.reset()
    elif change == "remove_object":
        s.remove_object(1)
    else:
        s.clear_frame(1, 0)
    with pytest.raises(ValueError, match=r"changed after propagate\(\) was called"):
        next(gen)
    s.add_points(1, 0, A, [1])  # still usable
    assert frames_of(s.propagate()) == list(range(N))


def test_a_prompt_added_before_the_first_next_is_used(model, data):
    s = StackSession(model, data)
    s.add_points(1, 0, A, [1])
    gen = s.propagate()
    s.add_points(2, 0, B, [1])
    assert frames_of(gen) == list(range(N))
    assert np.array_equal(s.labels, finished(model, data))


# ---------------------------------------------------------------- stop() from another thread


def test_stop_from_another_thread_ends_the_run_within_a_frame(model, data):
    s = StackSession(model, data)
    s.add_points(1, 0, A, [1])
    before = s.labels.copy()
    reached, resume = threading.Event(), threading.Event()
    seen, errors = [], []

    def progress(done, total):
        if done == 2:
            reached.set()
            resume.wait(10)

    def work():
        try:
            for f, _ in s.propagate(progress=progress):
                seen.append(f)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    assert reached.wait(60)
    s.stop()  # while frame 1 is being finished in the worker
    resume.set()
    worker.join(60)
    assert not worker.is_alive() and not errors
    assert seen == [0, 1]
    assert np.array_equal(s.labels[2:], before[2:])  # frames not reached are untouched ...
    assert frames_of(s.propagate()) == [2, 3, 4]  # ... and out of date: the next run finishes them


def test_stop_ends_a_generator_created_before_it_and_not_later_ones(model, data):
    s = StackSession(model, data)
    s.add_points(1, 0, A, [1])
    gen = s.propagate()
    s.stop()  # nothing running yet: nothing to wait for
    assert frames_of(gen) == []
    assert frames_of(s.propagate()) == list(range(N))


# ---------------------------------------------------------------- "both" writes the prompted frame once


@pytest.mark.parametrize("prompt_frame", [0, 2, N - 1])
def test_both_yields_the_prompted_frame_once_and_counts_right(model, data, prompt_frame):
    s = StackSession(model, data)
    s.add_points(1, prompt_frame, A, [1])
    s.add_points(2, prompt_frame, B, [1])
    calls = []
    got = frames_of(s.propagate("both", progress=lambda d, t: calls.append((d, t))))
    assert sorted(got) == list(range(N))
    assert calls == [(i + 1, N) for i in range(N)]
    assert all((s.labels[f] == 1).any() for f in range(N))
