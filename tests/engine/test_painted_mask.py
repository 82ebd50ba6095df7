"""A painted or erased object on a tracked frame becomes its mask prompt:
the right frames go out of date, the next propagation carries the fix
downstream, and removing the prompt again restores the tracking."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2 import load_model
from napari_sam2._sample_data import load_sample_array
from napari_sam2.engine import FRAME_CURRENT, FRAME_NOT_REACHED, FRAME_OUT_OF_DATE, StackSession
from napari_sam2.training.evaluate import largest_lasting_clicks

NUM_FRAMES = 4


@pytest.fixture(scope="module")
def demo():
    return load_model("demo", device="cpu")


@pytest.fixture(scope="module")
def sample():
    image = load_sample_array("cells_timelapse.tif")[:NUM_FRAMES]
    truth = load_sample_array("cells_timelapse_labels.tif")[:NUM_FRAMES]
    return image, largest_lasting_clicks(truth, 2)


def _session(model, sample, count: int) -> StackSession:
    image, clicks = sample
    session = StackSession(model, image)
    for obj_id, yx in clicks[:count]:
        session.add_points(obj_id, 0, [yx], [1])
    return session


def _run(session, **kwargs) -> list[int]:
    return [f for f, _ in session.propagate("forward", **kwargs)]


def _erase_half(session, obj_id: int, frame: int) -> np.ndarray:
    """Erase the left half of ``obj_id`` on ``frame`` in the session's labels,
    as napari's eraser would; returns the erased region (a box)."""
    ys, xs = np.nonzero(session.labels[frame] == obj_id)
    region = np.zeros(session.labels.shape[1:], bool)
    region[ys.min() - 3 : ys.max() + 4, xs.min() - 3 : (xs.min() + xs.max()) // 2] = True
    painted = np.array(session.labels[frame], copy=True)
    painted[region & (painted == obj_id)] = 0
    session.labels[frame] = painted
    return region


def test_painted_fix_is_carried_downstream_and_removing_it_restores_tracking(demo, sample):
    session = _session(demo, sample, 1)
    obj_id = sample[1][0][0]
    assert _run(session) == [0, 1, 2, 3]
    before = session.labels.copy()
    assert session.frame_states(obj_id).tolist() == [FRAME_CURRENT] * NUM_FRAMES

    region = _erase_half(session, obj_id, 1)
    painted = session.labels[1] == obj_id
    session.use_mask_from_labels(obj_id, 1)
    assert session.prompted_frames(obj_id) == [0, 1]
    # frame 0 stays current; the painted frame (not decoded yet) and the ones tracked through it are out of date
    assert session.frame_states(obj_id).tolist() == [FRAME_CURRENT] + [FRAME_OUT_OF_DATE] * 3
    assert _run(session) == [1, 2, 3]
    np.testing.assert_array_equal(session.labels[0], before[0])
    on_painted = session.labels[1] == obj_id
    assert (on_painted & painted).sum() / (on_painted | painted).sum() > 0.9
    for f in (2, 3):  # the erased half stays (mostly) erased downstream
        was = ((before[f] == obj_id) & region).sum()
        now = ((session.labels[f] == obj_id) & region).sum()
        assert was > 100 and now < 0.5 * was, (f, was, now)

    session.clear_frame(obj_id, 1)
    assert session.frame_states(obj_id).tolist() == [FRAME_CURRENT] + [FRAME_OUT_OF_DATE] * 3
    assert _run(session) == [1, 2, 3]
    np.testing.assert_array_equal(session.labels, before)  # the tracking as before the paint


def test_painted_object_with_a_neighbour_and_bad_labels(demo, sample):
    session = _session(demo, sample, 2)
    (a, _), (b, _) = sample[1]
    assert _run(session, stop=2) == [0, 1, 2]
    assert session.frame_states().tolist() == [FRAME_CURRENT] * 3 + [FRAME_NOT_REACHED]
    before = session.labels.copy()
    _erase_half(session, a, 1)
    edited = np.array(session.labels[1], copy=True)
    session.use_mask_from_labels(a, 1, labels=edited)
    assert session.frame_states(b).tolist() == [FRAME_CURRENT] * 3 + [FRAME_NOT_REACHED]
    assert session.frame_states().tolist() == [FRAME_CURRENT] + [FRAME_OUT_OF_DATE] * 2 + [FRAME_NOT_REACHED]
    assert _run(session) == [1, 2, 3]
    assert session.frame_states().tolist() == [FRAME_CURRENT] * NUM_FRAMES
    # the neighbour keeps its pixels where the corrected object does not take them
    for f in (1, 2):
        kept = (before[f] == b) & (session.labels[f] != a)
        assert np.all(session.labels[f][kept] == b)
    with pytest.raises(ValueError, match="labels has shape"):
        session.use_mask_from_labels(a, 1, labels=edited[:10])
    erased = np.array(session.labels[2], copy=True)
    erased[erased == a] = 0  # the whole object erased: an empty mask prompt
    session.use_mask_from_labels(a, 2, labels=erased)
    assert _run(session) == [2, 3]
    assert not np.any(session.labels[2] == a) and np.any(session.labels[2] == b)
