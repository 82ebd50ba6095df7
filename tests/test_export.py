"""CTC export and Tracks layer data: the files py-ctcmetrics reads score a
synthetic sequence's ground truth against itself as perfect, a gap splits a
track, and writes are atomic."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile

from napari_sam2.export import CTCTrack, ctc_tracks, tracks_layer_data, write_ctc
from napari_sam2.synthetic import TimelapseParams, make_timelapse


def _score(res, gt):
    from ctc_metrics import evaluate_sequence

    return evaluate_sequence(str(res), str(gt), metrics=["DET", "TRA"], threads=1)


@pytest.fixture(scope="module")
def sequence():
    params = TimelapseParams(n_frames=12, height=96, width=96, n_cells=6, radius=9.0,
                             division_rate=0.25, min_cycle=2, enter_rate=0.3, debris=0)
    return make_timelapse(params, seed=11)


def test_ground_truth_scored_against_itself_is_perfect(tmp_path, sequence):
    assert any(sequence.parents.values()), "the sequence should hold a division"
    write_ctc(sequence.labels, tmp_path / "gt", parents=sequence.parents, ground_truth=True)
    write_ctc(sequence.labels, tmp_path / "res", parents=sequence.parents)
    files = sorted(os.listdir(tmp_path / "res"))
    assert files[0] == "mask000.tif" and files[-1] == "res_track.txt" and len(files) == 13
    assert "man_track.txt" in os.listdir(tmp_path / "gt" / "TRA")
    mask = tifffile.imread(tmp_path / "res" / "mask005.tif")
    assert mask.dtype == np.uint16 and np.array_equal(mask, sequence.labels[5])
    scores = _score(tmp_path / "res", tmp_path / "gt")
    assert scores["DET"] == pytest.approx(1.0) and scores["TRA"] == pytest.approx(1.0)


def test_a_wrong_result_scores_below_one(tmp_path, sequence):
    write_ctc(sequence.labels, tmp_path / "gt", parents=sequence.parents, ground_truth=True)
    damaged = sequence.labels.copy()
    first = int(np.unique(damaged[3])[1])
    damaged[3:][damaged[3:] == first] = 0  # one cell lost from frame 3 on
    write_ctc(damaged, tmp_path / "res", parents=sequence.parents)
    scores = _score(tmp_path / "res", tmp_path / "gt")
    assert scores["DET"] < 1.0 and scores["TRA"] < 1.0


def test_a_gap_splits_the_track(tmp_path):
    labels = np.zeros((6, 20, 20), dtype=np.int32)
    labels[:, 2:6, 2:6] = 1
    labels[2:4, 2:6, 2:6] = 0  # object 1 missing on frames 2 and 3
    labels[1:5, 10:15, 10:15] = 2
    tracks, relabel = ctc_tracks(labels)
    assert tracks == [CTCTrack(1, 0, 1, 0), CTCTrack(2, 1, 4, 0), CTCTrack(3, 4, 5, 1)]
    assert relabel == {(1, 4): 3, (1, 5): 3}
    write_ctc(labels, tmp_path / "res")
    assert (tmp_path / "res" / "res_track.txt").read_text() == "1 0 1 0\n2 1 4 0\n3 4 5 1\n"
    assert tifffile.imread(tmp_path / "res" / "mask005.tif")[3, 3] == 3
    assert tifffile.imread(tmp_path / "res" / "mask001.tif")[3, 3] == 1
    # the split layout is valid and perfect against the same split ground truth
    write_ctc(labels, tmp_path / "gt", ground_truth=True)
    scores = _score(tmp_path / "res", tmp_path / "gt")
    assert scores["DET"] == pytest.approx(1.0) and scores["TRA"] == pytest.approx(1.0)
    assert not [p for p in os.listdir(tmp_path / "res") if p.endswith(".tmp")]


def test_bad_input_and_parents():
    with pytest.raises(ValueError, match="T x Y x X"):
        write_ctc(np.zeros((4, 4), np.int32), "unused")
    with pytest.raises(TypeError, match="integer dtype"):
        ctc_tracks(np.zeros((2, 4, 4), np.float32))
    labels = np.zeros((3, 8, 8), np.int32)
    labels[:, 0:2, 0:2] = 1
    labels[2, 5:7, 5:7] = 2
    with pytest.raises(ValueError, match="mother must end"):
        ctc_tracks(labels, {2: 1})


def test_failed_write_leaves_old_files(tmp_path, monkeypatch):
    labels = np.ones((2, 8, 8), np.int32)
    write_ctc(labels, tmp_path)
    before = (tmp_path / "res_track.txt").read_text()

    def broken(fh, data, **kwargs):  # the export writes into an open temporary file
        fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(tifffile, "imwrite", broken)
    with pytest.raises(OSError, match="disk full"):
        write_ctc(labels * 2, tmp_path)
    assert (tmp_path / "res_track.txt").read_text() == before
    assert np.array_equal(tifffile.imread(tmp_path / "mask000.tif"), labels[0])
    assert sorted(os.listdir(tmp_path)) == ["mask000.tif", "mask001.tif", "res_track.txt"]


def test_tracks_layer_data_centroids():
    labels = np.zeros((3, 10, 12), dtype=np.int32)
    labels[0, 1:4, 1:4] = 5  # centre (2, 2)
    labels[1, 2:5, 1:4] = 5  # (3, 2)
    labels[0, 6:8, 8:12] = 2  # (6.5, 9.5)
    data = tracks_layer_data(labels)
    assert data.tolist() == [[2, 0, 6.5, 9.5], [5, 0, 2, 2], [5, 1, 3, 2]]
    assert tracks_layer_data(np.zeros((2, 4, 4), np.int32)).shape == (0, 4)
