"""Session files keep what prompted frames decoded: a loaded session shows
the chosen candidates, reports the same frame states and propagates to the
same labels as the session that was saved, without decoding again."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_sam2.engine import SessionFileError, StackSession
from napari_sam2.engine.frame_states import FRAME_CURRENT, FRAME_NOT_REACHED, FRAME_OUT_OF_DATE

from .conftest import blobs


def _run(session, direction="forward", **span):
    for _ in session.propagate(direction, **span):
        pass


def _document(path):
    folder = path / (path / "CURRENT").read_text()
    return folder, json.loads((folder / "session.json").read_text())


class _Calls:
    """Counts the model's decoder steps (every decode or tracked frame is one)."""

    def __init__(self, model, monkeypatch) -> None:
        self.n = 0
        step = model.track_step

        def counted(*args, **kwargs):
            self.n += 1
            return step(*args, **kwargs)

        monkeypatch.setattr(model, "track_step", counted)


def test_a_chosen_candidate_comes_back_and_decodes_the_same(model, tmp_path, monkeypatch):
    data = blobs(n=4)
    s = StackSession(model, data)
    s.add_points(1, 0, [(14, 17)], [1])
    candidates = s.mask_candidates(1, 0)
    k = int(np.argmax([(c.mask != candidates[0].mask).sum() for c in candidates]))
    assert k > 0
    s.choose_candidate(1, 0, k)
    s.add_points(2, 1, [(27, 40)], [1])  # another object keeps the model's own pick
    s.segment_frame(1)
    path = s.save(tmp_path / "chosen.sam2")

    calls = _Calls(model, monkeypatch)
    loaded = StackSession.load(path, model, data)
    assert loaded.chosen_candidate(1, 0) == k and loaded.chosen_candidate(2, 1) is None
    again = loaded.mask_candidates(1, 0)
    assert calls.n == 0  # nothing was decoded again: the file holds the decode
    assert [c.predicted_iou for c in again] == [c.predicted_iou for c in candidates]
    for a, b in zip(again, candidates):
        np.testing.assert_array_equal(a.mask, b.mask)
    np.testing.assert_array_equal(loaded.labels, s.labels)
    np.testing.assert_array_equal(loaded.labels[0] == 1, candidates[k].mask)  # the chosen one, not the first
    assert (candidates[k].mask != candidates[0].mask).any()
    monkeypatch.undo()

    # the same clicks decoded again (another range and back) keep the choice in both
    lo_hi = s.intensity_range
    for session in (s, loaded):
        session.set_intensity_range((0.0, 100.0))
        session.set_intensity_range(lo_hi)
        session.segment_frame(0)
    assert loaded.chosen_candidate(1, 0) == k
    np.testing.assert_array_equal(loaded.labels[0], s.labels[0])
    # and propagation carries the chosen mask the same way
    _run(s)
    _run(loaded)
    np.testing.assert_array_equal(loaded.labels, s.labels)
    # choosing the model's own pick after loading gives what the original gives
    np.testing.assert_array_equal(loaded.choose_candidate(1, 0, None), s.choose_candidate(1, 0, None))


def _mixed_session(model, data):
    """Frames of all three states: current, out of date (after a removed
    prompt and an undecoded one), and not reached; a correction decoded
    with the memory of a propagation."""
    s = StackSession(model, data)
    s.add_points(1, 0, [(14, 17)], [1])
    s.add_box(2, 0, (20, 30, 34, 50))
    s.add_points(1, 1, [(15, 18)], [1])
    _run(s, stop=4)
    s.clear_frame(1, 1)  # frame 1 keeps its output, now out of date
    s.add_points(1, 3, [(16, 22), (30, 44)], [1, 0])  # a correction on a tracked frame
    s.segment_frame(3)
    s.add_points(2, 6, [(27, 40)], [1])  # not decoded yet
    return s


def test_a_loaded_session_reports_the_same_frame_states_and_propagates_the_same(model, tmp_path, monkeypatch):
    data = blobs(n=7)
    s = _mixed_session(model, data)
    states = s.frame_states()
    assert {FRAME_CURRENT, FRAME_OUT_OF_DATE, FRAME_NOT_REACHED} <= set(states.tolist())
    assert states[0] == FRAME_CURRENT and states[1] == FRAME_OUT_OF_DATE and states[5] == FRAME_NOT_REACHED
    assert s.frame_states(1)[3] == FRAME_CURRENT and s.frame_states(2)[6] == FRAME_OUT_OF_DATE
    path = s.save(tmp_path / "mixed.sam2")

    calls = _Calls(model, monkeypatch)
    loaded = StackSession.load(path, model, data)
    np.testing.assert_array_equal(loaded.frame_states(), states)
    for obj_id in (1, 2):
        np.testing.assert_array_equal(loaded.frame_states(obj_id), s.frame_states(obj_id))
    np.testing.assert_array_equal(loaded.labels, s.labels)
    assert calls.n == 0
    monkeypatch.undo()

    _run(s, "both")
    _run(loaded, "both")
    np.testing.assert_array_equal(loaded.labels, s.labels)
    np.testing.assert_array_equal(loaded.frame_states(), s.frame_states())
    assert (s.labels == 1).any() and (s.labels == 2).any()


def test_a_loaded_session_saved_again_keeps_its_state(model, tmp_path):
    data = blobs(n=7)
    s = _mixed_session(model, data)
    first = StackSession.load(s.save(tmp_path / "a.sam2"), model, data)
    second = StackSession.load(first.save(tmp_path / "b.sam2"), model, data)
    np.testing.assert_array_equal(second.frame_states(), s.frame_states())
    _run(s, "both")
    _run(second, "both")
    np.testing.assert_array_equal(second.labels, s.labels)


def test_a_version_1_file_still_opens_and_its_prompts_are_decoded_again(model, tmp_path):
    data = blobs(n=4)
    s = StackSession(model, data)
    s.add_points(1, 0, [(14, 17), (20, 30)], [1, 0])
    path = s.save(tmp_path / "old.sam2")
    folder, doc = _document(path)
    doc["version"] = 1
    del doc["states"]
    for per_object in doc["tracking"].values():
        del per_object["reached"]
    (folder / "session.json").write_text(json.dumps(doc))
    (folder / "states.npz").unlink()
    loaded = StackSession.load(path, model, data)
    assert loaded.frame_states(1)[0] == FRAME_OUT_OF_DATE  # no decode stored: done again when needed
    _run(s)
    _run(loaded)
    np.testing.assert_array_equal(loaded.labels, s.labels)


def test_damaged_decoded_states_are_an_error_naming_what(model, tmp_path):
    data = blobs(n=3)
    s = StackSession(model, data)
    s.add_points(1, 0, [(14, 17)], [1])
    s.segment_frame(0)
    path = s.save(tmp_path / "d.sam2")
    folder, doc = _document(path)
    with np.load(folder / "states.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    name = "o1_f0_output_logits"
    arrays[name] = arrays[name][..., :-1]  # one column short
    np.savez(folder / "states.npz", **arrays)
    with pytest.raises(SessionFileError, match=r"object 1, frame 0: output logits has shape"):
        StackSession.load(path, model, data)
    (folder / "states.npz").unlink()
    with pytest.raises(SessionFileError, match="states.npz cannot be read"):
        StackSession.load(path, model, data)
