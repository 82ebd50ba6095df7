"""The session's lineage: divisions marked by hand, links, removals,
re-propagation and session files keep it consistent (the shipped demo
model on two small drifting blobs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from napari_sam2 import load_model
from napari_sam2.engine import FRAME_NOT_REACHED, LineageState, SessionFileError, StackSession
from napari_sam2.engine.division_edits import undo_division
from napari_sam2.export import ctc_tracks, tracks_layer_graph, write_ctc

from .conftest import blobs


@pytest.fixture(scope="module")
def model():
    return load_model("demo", device="cpu")


@pytest.fixture(scope="module")
def data():
    return blobs(n=6)


def _halves(shape):
    left = np.zeros(shape, bool)
    left[10:24, 8:20] = True
    right = np.zeros(shape, bool)
    right[10:24, 22:31] = True  # clear of object 2 (from column 31 on frame 3), which would win a shared pixel
    return left, right


def _tracked(model, data):
    s = StackSession(model, data)
    s.add_points(1, 0, [(14, 17)], [1])
    s.add_points(2, 0, [(26, 39)], [1])
    list(s.propagate())
    return s


def _frames_of(session, obj_id):
    return [f for f in range(session.num_frames) if np.any(session.labels[f] == obj_id)]


def test_a_division_ends_the_mother_and_starts_two_daughters(model, data):
    s = _tracked(model, data)
    left, right = _halves(data.shape[1:])
    edit = s.mark_division(1, 3, [left, right])
    assert (edit.mother, edit.frame, edit.daughters) == (1, 3, (3, 4))
    assert s.lineage.links() == {3: 1, 4: 1}
    assert s.lineage.limits(1) == (None, 2) and s.lineage.limits(3) == (3, None)
    assert _frames_of(s, 1) == [0, 1, 2]  # the mother's pixels from the division on are gone
    assert np.array_equal(s.labels[3] == 3, left) and np.array_equal(s.labels[3] == 4, right)
    assert (s.frame_states(1)[3:] == FRAME_NOT_REACHED).all()
    list(s.propagate("both"))  # forward and backward again: nobody crosses the division
    assert _frames_of(s, 1) == [0, 1, 2]
    for daughter in (3, 4):
        assert min(_frames_of(s, daughter)) == 3
    records = {r.id: r for r in s.lineage_records()}
    assert (records[1].last_frame, records[1].mother) == (2, 0)
    assert (records[3].first_frame, records[3].last_frame, records[3].mother) == (3, 5, 1)
    assert records[4].mother == 1 and records[2].mother == 0
    with pytest.raises(ValueError, match="limited to frames 0..2"):
        s.add_points(1, 4, [(14, 17)], [1])  # the mother has ended
    with pytest.raises(ValueError, match="limited to frames 3..5"):
        s.add_points(3, 1, [(14, 17)], [1])  # the daughter has not begun
    # exports: the parent column and the Tracks layer's graph come from the lineage
    tracks, _ = ctc_tracks(s)
    assert {t.label: t.parent for t in tracks} == {1: 0, 2: 0, 3: 1, 4: 1}
    assert tracks_layer_graph(s) == {3: [1], 4: [1]}


def test_undoing_a_division_gives_the_mother_her_frames_back(model, data):
    s = _tracked(model, data)
    before = np.array(s.labels)
    edit = s.mark_division(1, 3, list(_halves(data.shape[1:])))
    undo_division(s, edit)
    assert s.lineage.links() == {} and s.lineage.limits(1) == (None, None)
    assert s.object_ids == [1, 2]
    list(s.propagate())  # the mother's frames after the division are out of date, computed again
    assert np.array_equal(s.labels, before)


def test_daughters_can_be_clicks_and_bad_divisions_change_nothing(model, data):
    s = _tracked(model, data)
    state, labels = s.lineage_state(), np.array(s.labels)
    with pytest.raises(ValueError, match="two \\(or more\\) daughters"):
        s.mark_division(1, 3, [[(14, 17)]])
    with pytest.raises(ValueError, match="frame must be >= 1"):
        s.mark_division(1, 0, [[(14, 17)], [(14, 30)]])
    with pytest.raises(ValueError, match="new, distinct object ids"):
        s.mark_division(1, 3, [[(14, 17)], [(14, 30)]], ids=[2, 5])
    with pytest.raises(ValueError, match="daughter 1: give a 40 x 56 mask"):
        s.mark_division(1, 3, [[(14, 17)], np.zeros((3, 3))])
    s.add_points(1, 4, [(15, 18)], [1])  # a prompt after the division frame: refused, all undone
    with pytest.raises(ValueError, match="has prompts on frame"):
        s.mark_division(1, 3, [[(14, 17)], [(14, 30)]])
    assert s.lineage_state() == state and s.object_ids == [1, 2]
    assert np.array_equal(s.labels[:3], labels[:3])
    s.clear_frame(1, 4)
    edit = s.mark_division(1, 3, [[(14, 17)], [(14, 30)]], ids=[7, 9])
    assert edit.daughters == (7, 9) and s.prompted_frames(7) == [3]


def test_removing_objects_keeps_the_tree_together(model, data):
    s = _tracked(model, data)
    left, right = _halves(data.shape[1:])
    s.mark_division(1, 2, [left, right])  # 1 -> 3, 4
    list(s.propagate())
    s.mark_division(3, 4, [left & (np.arange(56) < 14), left & (np.arange(56) >= 14)])  # 3 -> 5, 6
    assert s.lineage.links() == {3: 1, 4: 1, 5: 3, 6: 3}
    s.remove_object(5)  # a daughter goes: her sister keeps her mother
    assert s.lineage.links() == {3: 1, 4: 1, 6: 3}
    s.remove_object(3)  # a mother goes: her daughter is linked to her own mother
    assert s.lineage.links() == {4: 1, 6: 1}
    s.remove_object(6, clear_labels=False)  # stops being tracked, pixels and place in the tree stay
    assert s.lineage.links() == {4: 1, 6: 1} and 6 in {r.id for r in s.lineage_records()}
    s.reset()
    assert s.lineage.links() == {} and s.lineage_state() == LineageState({}, {}, {})


def test_links_are_checked_and_reversible(model, data):
    s = StackSession(model, data)
    s.add_points(1, 0, [(14, 17)], [1])
    list(s.propagate(stop=2))  # object 1 on frames 0..2
    s.add_points(2, 3, [(14, 17)], [1])  # objects 2 and 3 prompted later, not tracked yet
    s.add_points(3, 4, [(26, 39)], [1])
    with pytest.raises(ValueError, match="own mother"):
        s.link(2, 2)
    with pytest.raises(KeyError, match="mother 9 is not an object"):
        s.link(2, 9)
    before = s.link(2, 1)
    assert before == LineageState({}, {}, {})
    assert s.lineage.links() == {2: 1}
    assert s.lineage.limits(1) == (None, 2) and s.lineage.limits(2) == (3, None)
    with pytest.raises(ValueError, match="cycle"):
        s.link(1, 2)
    with pytest.raises(ValueError, match="must end before her daughters begin"):
        s.link(1, 3)  # 3 is prompted on frame 4, after 1 began
    undo = s.unlink(2)
    assert s.lineage.links() == {} and s.lineage.limits(2) == (3, None)  # limits stay
    s.restore_lineage(undo)
    assert s.lineage.links() == {2: 1}
    s.restore_lineage(before)
    assert s.lineage_state() == before
    with pytest.raises(ValueError, match="has prompts on frame"):
        s.limit_track(2, last=1)
    assert s.lineage.limits(2) == (None, None)


def test_linking_a_daughter_keeps_where_her_own_track_ends(model, data):
    # a daughter that divides later herself (her track ends on frame 3) keeps
    # that end when she is linked to a mother: only her start is limited
    s = StackSession(model, data)
    s.add_points(1, 0, [(14, 17)], [1])
    s.add_points(2, 2, [(14, 17)], [1])
    s.limit_track(1, last=1)
    s.limit_track(2, first=2, last=3)
    list(s.propagate())
    assert _frames_of(s, 1) == [0, 1] and _frames_of(s, 2) == [2, 3]
    before = s.link(2, 1)
    assert s.lineage.limits(2) == (2, 3) and s.lineage.limits(1) == (None, 1)
    assert s.lineage.links() == {2: 1} and _frames_of(s, 2) == [2, 3]
    s.restore_lineage(before)
    assert s.lineage.limits(2) == (2, 3) and s.lineage.limits(1) == (None, 1) and s.lineage.links() == {}


def test_session_files_keep_the_lineage(model, data, tmp_path):
    s = _tracked(model, data)
    s.mark_division(1, 3, list(_halves(data.shape[1:])))
    list(s.propagate())
    s.save(tmp_path / "s.sam2")
    loaded = StackSession.load(tmp_path / "s.sam2", model, data)
    assert loaded.lineage_state() == s.lineage_state()
    assert loaded.lineage_records() == s.lineage_records()
    assert np.array_equal(loaded.labels, s.labels)
    # propagating the loaded session again keeps the division
    loaded.mark_stale()
    list(loaded.propagate())
    assert _frames_of(loaded, 1) == [0, 1, 2] and loaded.lineage.links() == {3: 1, 4: 1}
    write_ctc(loaded, tmp_path / "ctc")
    rows = [tuple(int(v) for v in line.split()) for line in (tmp_path / "ctc" / "res_track.txt").read_text().splitlines()]
    assert {r[0]: (r[1], r[3]) for r in rows} == {1: (0, 0), 2: (0, 0), 3: (3, 1), 4: (3, 1)}


@pytest.mark.parametrize("old", [None, []])
def test_an_older_file_without_lineage_opens(model, data, tmp_path, old):
    s = _tracked(model, data)
    s.save(tmp_path / "s.sam2")
    folder = tmp_path / "s.sam2" / (tmp_path / "s.sam2" / "CURRENT").read_text().strip()
    doc = json.loads((folder / "session.json").read_text())
    if old is None:
        del doc["lineage"]
    else:
        doc["lineage"] = old  # what the first format version wrote
    (folder / "session.json").write_text(json.dumps(doc))
    loaded = StackSession.load(tmp_path / "s.sam2", model, data)
    assert loaded.lineage_state() == LineageState({}, {}, {})
    doc["lineage"] = {"mothers": {"1": 2, "2": 1}}
    (folder / "session.json").write_text(json.dumps(doc))
    with pytest.raises(SessionFileError, match="lineage cannot be restored: .*cycle"):
        StackSession.load(Path(tmp_path / "s.sam2"), model, data)
