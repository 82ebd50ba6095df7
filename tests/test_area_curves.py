"""The area plot's data (no Qt): an object's relatives and their areas over
time, on a hand-built lineage whose areas are counted by hand."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2._qt.area_curves import area_curves, relatives

# 1 divides on frame 2 into 2 and 3; 3 divides on frame 4 into 4 and 5; 6 has no relatives
MOTHERS = {2: 1, 3: 1, 4: 3, 5: 3, 6: 0}


def stack() -> np.ndarray:
    labels = np.zeros((6, 10, 12), dtype=np.uint16)
    labels[0, 0:3, 0:4] = 1  # 12 px
    labels[1, 0:4, 0:4] = 1  # 16
    labels[2, 0:2, 0:3] = 2  # 6
    labels[2, 5:8, 5:8] = 3  # 9
    labels[3, 5:9, 5:8] = 3  # 12
    labels[3, 0:2, 0:2] = 2  # 4
    labels[4, 5:7, 5:7] = 4  # 4
    labels[4, 8:10, 5:10] = 5  # 10
    labels[5, 8:10, 5:7] = 5  # 4  (2 has left; 4 is gone on frame 5)
    labels[:, 9, 11] = 6  # 1 px on every frame
    return labels


def test_relatives_are_the_object_its_mother_sisters_and_daughters():
    assert relatives(MOTHERS, 3) == [(3, "selected"), (1, "mother"), (2, "sister"), (4, "daughter"),
                                     (5, "daughter")]
    assert relatives(MOTHERS, 1) == [(1, "selected"), (2, "daughter"), (3, "daughter")]
    assert relatives(MOTHERS, 4) == [(4, "selected"), (3, "mother"), (5, "sister")]
    assert relatives(MOTHERS, 6) == [(6, "selected")]
    assert relatives({}, 9) == [(9, "selected")]  # an object the lineage does not know


def test_area_curves_count_each_relatives_pixels_on_its_frames():
    curves = {c.id: c for c in area_curves(stack(), MOTHERS, 3)}
    assert [(c.id, c.relation) for c in area_curves(stack(), MOTHERS, 3)] == relatives(MOTHERS, 3)
    expected = {3: ([2, 3], [9, 12]), 1: ([0, 1], [12, 16]), 2: ([2, 3], [6, 4]), 4: ([4], [4]),
                5: ([4, 5], [10, 4])}
    for obj, (frames, areas) in expected.items():
        assert curves[obj].frames.tolist() == frames and curves[obj].areas.tolist() == areas
    lonely = area_curves(stack(), MOTHERS, 6)
    assert len(lonely) == 1 and lonely[0].frames.tolist() == list(range(6)) and lonely[0].areas.tolist() == [1] * 6


def test_an_object_without_pixels_has_an_empty_curve_and_bad_stacks_are_named():
    (curve,) = area_curves(stack(), {}, 7)
    assert curve.id == 7 and curve.frames.size == 0 and curve.areas.size == 0
    with pytest.raises(ValueError, match="T x Y x X"):
        area_curves(np.zeros((10, 12), dtype=np.uint16), {}, 1)
