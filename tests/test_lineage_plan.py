"""The widget's lineage edits (no Qt) make the lineage the engine's own
methods make, and a sync brings a session there, reporting the frames
whose pixels it cleared (the shipped demo model on a small hand-built
stack: object 1 on frames 0-3, objects 2 and 3 on frames 4-5)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2 import load_model
from napari_sam2._qt.lineage_plan import (
    EMPTY,
    apply_lineage,
    divided,
    linked,
    loosen_limits,
    removed,
    unlinked,
)
from napari_sam2.engine import StackSession
from napari_sam2.engine.lineage import label_presence


@pytest.fixture(scope="module")
def model():
    return load_model("demo", device="cpu")


def scene() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    image = rng.normal(100, 5, (6, 40, 56)).astype(np.float32)
    labels = np.zeros((6, 40, 56), dtype=np.uint16)
    labels[0:4, 10:24, 8:30] = 1
    labels[4:6, 10:24, 8:18] = 2
    labels[4:6, 10:24, 20:30] = 3
    image[labels > 0] += 60
    return image, labels


def session_of(model):
    image, labels = scene()
    return StackSession(model, image, labels=labels)


def frames_of(session):
    presence = label_presence(session.labels)
    return lambda obj: presence.get(obj, [])


def test_link_unlink_and_remove_make_the_engines_lineage(model):
    s = session_of(model)
    s.add_mask(1, 0, s.labels[0] == 1)  # 1 is tracked (2 and 3 are only labels)
    known = {1, 2, 3}
    state = linked(EMPTY, 2, 1, known=known, frames_of=frames_of(s))
    s.link(2, 1)
    assert state == s.lineage_state() == ({2: 1}, {2: 4}, {1: 3})
    state = linked(state, 3, 1, known=known, frames_of=frames_of(s))
    s.link(3, 1)
    assert state == s.lineage_state()
    s.unlink(3)
    assert unlinked(state, 3) == s.lineage_state() == ({2: 1}, {2: 4, 3: 4}, {1: 3})
    s.link(3, 1)
    s.remove_object(1)  # its pixels go, its daughters lose their mother (she had none)
    assert removed(state, 1) == s.lineage_state() == ({}, {2: 4, 3: 4}, {})


def test_a_division_makes_the_engines_lineage(model):
    s = session_of(model)
    frame = s.labels[2]
    left, right = np.zeros(frame.shape, bool), np.zeros(frame.shape, bool)
    left[10:24, 8:18], right[10:24, 20:30] = True, True
    edit = s.mark_division(1, 2, [left, right], ids=[4, 5])
    assert divided(EMPTY, 1, 2, [4, 5]) == s.lineage_state() == ({4: 1, 5: 1}, {4: 2, 5: 2}, {1: 1})
    assert edit.before == EMPTY


def test_bad_edits_are_refused_with_the_reason(model):
    s = session_of(model)
    state = linked(EMPTY, 2, 1, known={1, 2, 3}, frames_of=frames_of(s))
    with pytest.raises(ValueError, match="would make a cycle"):
        linked(state, 1, 2, known={1, 2, 3}, frames_of=frames_of(s))
    with pytest.raises(ValueError, match="mother 2 is on frames up to 5 but daughter 3 begins on frame 4"):
        linked(state, 3, 2, known={1, 2, 3}, frames_of=frames_of(s))
    with pytest.raises(KeyError, match="mother 9 is not an object"):
        linked(state, 3, 9, known={1, 2, 3}, frames_of=frames_of(s))
    with pytest.raises(ValueError, match="frame before it"):
        divided(EMPTY, 1, 0, [4, 5])
    with pytest.raises(ValueError, match="object 2 begins on frame 4: it cannot divide on frame 3"):
        divided(state, 2, 3, [4, 5])


def test_apply_lineage_brings_the_session_there_and_returns_the_frames_it_cleared(model):
    s = session_of(model)
    _image, labels = scene()
    wanted = divided(EMPTY, 1, 2, [2, 3])  # 1 ends on frame 1: her pixels on frames 2 and 3 go
    cleared = apply_lineage(s, wanted)
    assert s.lineage_state() == wanted
    assert sorted(cleared) == [2, 3]
    for f in (2, 3):
        np.testing.assert_array_equal(cleared[f], labels[f])
        assert not (s.labels[f] == 1).any()
    for f in (0, 1, 4, 5):
        np.testing.assert_array_equal(s.labels[f], labels[f])
    # back to no lineage: lifting limits clears nothing
    loosen_limits(s, EMPTY)
    assert apply_lineage(s, EMPTY) == {} and s.lineage_state() == EMPTY
    assert apply_lineage(s, EMPTY) == {}  # already there
