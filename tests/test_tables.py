"""Per-object tables and lineage summaries, checked against values computed
by hand on the sample time-lapse (which has divisions)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from napari_sam2._sample_data import load_sample_array
from napari_sam2.engine.lineage import Lineage, lineage_records
from napari_sam2.sample_data.generate import cells_timelapse
from napari_sam2.tables import (
    LINEAGE_COLUMNS,
    OBJECT_COLUMNS,
    SCALED_COLUMNS,
    lineage_summary,
    object_table,
    tracks_graph,
    write_csv,
)


@pytest.fixture(scope="module")
def sample():
    synth = cells_timelapse()
    image = load_sample_array("cells_timelapse.tif")
    labels = load_sample_array("cells_timelapse_labels.tif")
    np.testing.assert_array_equal(labels, synth.labels)
    return image, labels, synth.parents


def _two_objects(parents):
    """A daughter of a division, and a cell without a mother."""
    daughter = min(d for d, m in parents.items() if m)
    root = min(d for d, m in parents.items() if not m)
    return daughter, root


def test_object_table_matches_hand_computed_values(sample, tmp_path):
    image, labels, parents = sample
    rows = object_table(labels, mothers=parents, image=image, scale=(0.5, 0.25))
    by_key = {(r["frame"], r["id"]): r for r in rows}
    assert len(rows) == sum(len(np.unique(f)) - (0 in f) for f in labels)
    for obj in _two_objects(parents):
        frames = [t for t in range(len(labels)) if (labels[t] == obj).any()]
        assert frames
        for t in (frames[0], frames[len(frames) // 2], frames[-1]):
            mask = labels[t] == obj
            ys, xs = np.nonzero(mask)
            row = by_key[(t, obj)]
            assert row["mother"] == parents[obj]
            assert row["area_px"] == mask.sum()
            assert row["centroid_y"] == pytest.approx(ys.mean())
            assert row["centroid_x"] == pytest.approx(xs.mean())
            assert row["mean_intensity"] == pytest.approx(image[t][mask].astype(float).mean())
            assert row["sum_intensity"] == pytest.approx(image[t][mask].astype(float).sum())
            assert row["area"] == pytest.approx(mask.sum() * 0.125)
            assert row["centroid_y_scaled"] == pytest.approx(ys.mean() * 0.5)
            assert row["centroid_x_scaled"] == pytest.approx(xs.mean() * 0.25)
    path = write_csv(tmp_path / "objects.csv", rows, OBJECT_COLUMNS + SCALED_COLUMNS)
    with open(path, newline="") as fh:
        back = list(csv.DictReader(fh))
    assert len(back) == len(rows) and set(back[0]) == set(OBJECT_COLUMNS + SCALED_COLUMNS)
    assert not list(tmp_path.glob(".*.tmp"))


def test_lineage_summary_matches_hand_computed_values(sample, tmp_path):
    _, labels, parents = sample
    rows = {r["id"]: r for r in lineage_summary(labels, mothers=parents)}
    assert set(rows) == set(np.unique(labels)) - {0}
    daughter, root = _two_objects(parents)
    for obj in (daughter, root):
        frames = [t for t in range(len(labels)) if (labels[t] == obj).any()]
        kids = [d for d, m in parents.items() if m == obj]
        assert rows[obj] == {"id": obj, "mother": parents[obj], "first_frame": frames[0],
                             "last_frame": frames[-1], "duration": frames[-1] - frames[0] + 1,
                             "children": len(kids)}
    mother = parents[daughter]
    assert rows[mother]["children"] == 2  # a division gives two daughters
    assert rows[mother]["last_frame"] < rows[daughter]["first_frame"]
    write_csv(tmp_path / "lineage.csv", list(rows.values()), LINEAGE_COLUMNS)
    graph = tracks_graph(parents)
    assert graph[daughter] == [mother] and root not in graph


def test_lineage_links_stay_consistent():
    lin = Lineage()
    known = [1, 2, 3, 4, 5]
    lin.link(2, 1, known=known)
    lin.link(3, 1, known=known)
    lin.link(4, 2, known=known)
    with pytest.raises(ValueError, match="cycle"):
        lin.link(1, 4, known=known)
    with pytest.raises(ValueError, match="own mother"):
        lin.link(5, 5, known=known)
    with pytest.raises(KeyError, match="mother 9 is not an object"):
        lin.link(5, 9, known=known)
    lin.remove(3)  # removing a daughter leaves her sister's link
    assert lin.links() == {2: 1, 4: 2}
    lin.remove(2)  # removing a mother hands her daughters to her own mother
    assert lin.links() == {4: 1}
    lin.remove(1)
    assert lin.links() == {}
    records = lineage_records([4, 5], {4: [3, 4, 7], 5: []}.__getitem__, lin)
    assert [tuple(r) for r in records] == [(4, 3, 7, 0), (5, -1, -1, 0)]
    with pytest.raises(ValueError, match="cycle"):
        lin.restore({1: 2, 2: 1}, known=known)
    assert lin.links() == {}


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="labels must be a T x Y x X"):
        object_table(np.zeros((4, 4), int))
    with pytest.raises(ValueError, match="image has shape"):
        object_table(np.zeros((2, 4, 4), int), image=np.zeros((2, 4, 5)))
    with pytest.raises(ValueError, match="scale must be"):
        object_table(np.zeros((2, 4, 4), int), scale=(1.0, 0.0))
