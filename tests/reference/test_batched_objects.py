"""Several objects in one batched step equal Meta's SAM2VideoPredictor,
which runs them one at a time (sam2 1.1.0, same random weights, float32 on
CPU).

All objects are first clicked on frame 0 (Meta's CPU path cannot track an
object first prompted later, see test_session_equality.py). One of them is
also clicked on frame 3 before propagating, so on every frame it reads other
memories than its neighbours (conditioning frames 0 and 3 and a history
without frame 3, more object pointers): our step pads and masks them in one
batch, the reference runs each object alone.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_sam2 import StackSession

from .conftest import build_pair
from .test_session_equality import N, SIZE, _compare, _frames, _ref_points, _ref_run, _ref_state


@pytest.fixture(scope="module")
def pair():
    return build_pair("sam2.1_hiera_tiny", SIZE, seed=11, fill_hole_area=0)


def _track_batches(monkeypatch, model):
    """Batch sizes of the tracking calls (a list of readouts)."""
    batches = []
    step = model.track_step

    def wrapper(features, *, readout, **kw):
        if isinstance(readout, list):
            batches.append(features.embedding.shape[0])
        return step(features, readout=readout, **kw)

    monkeypatch.setattr(model, "track_step", wrapper)
    return batches


@pytest.mark.reference
@pytest.mark.parametrize("second_prompt", [False, True], ids=["same-memories", "different-memories"])
def test_objects_clicked_on_frame_0_equal_the_reference(pair, tmp_path, monkeypatch, second_prompt):
    ours, ref = pair
    folder, frames = _frames(tmp_path, seed=4)
    clicks = {1: [[30, 40]], 2: [[65, 95]], 3: [[20, 100]]}
    box2 = (50, 80, 80, 112)  # (y0, x0, y1, x1) around the second blob
    extra = [[36, 49]]  # object 1 on frame 3, where its blob has moved

    st = _ref_state(ref, folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for oid, yx in clicks.items():
            box = np.array([box2[1], box2[0], box2[3], box2[2]], np.float32) if oid == 2 else None
            ref.add_new_points_or_box(st, frame_idx=0, obj_id=oid, points=_ref_points(yx), labels=[1], box=box)
        if second_prompt:
            ref.add_new_points_or_box(st, frame_idx=3, obj_id=1, points=_ref_points(extra), labels=[1])
    theirs = _ref_run(ref, st)

    s = StackSession(ours, frames, channel_axis=-1, intensity_range=(0, 255))
    for oid, yx in clicks.items():
        if oid == 2:
            s.add_box(oid, 0, box2)
        s.add_points(oid, 0, yx, [1])
    if second_prompt:
        s.add_points(1, 3, extra, [1])
    batches = _track_batches(monkeypatch, ours)
    got = {}
    for r in s.propagate_results("forward"):
        got[r.frame] = {oid: r.logits[i] for i, oid in enumerate(r.object_ids)}
    # one step per tracked frame for all objects tracked there
    expected = [3] * (N - 1) if not second_prompt else [3, 3, 2] + [3] * (N - 4)
    assert batches == expected
    _compare(f"batched objects, {'different' if second_prompt else 'same'} memories", got, theirs, list(range(N)))
