"""Per-frame states for the widget's strip: current, out of date, not reached."""

from __future__ import annotations

import pytest

from napari_sam2.engine import FRAME_CURRENT as C
from napari_sam2.engine import FRAME_NOT_REACHED as N
from napari_sam2.engine import FRAME_OUT_OF_DATE as O
from napari_sam2.engine import StackSession

from .conftest import blobs


def test_states_follow_clicks_stops_and_corrections(model):
    session = StackSession(model, blobs(n=5))
    assert session.frame_states().tolist() == [N] * 5 and session.frame_states().dtype.name == "int8"
    session.add_points(1, 2, [(14, 20)], [1])
    assert session.frame_states(1).tolist() == [N, N, O, N, N]  # the click is not decoded yet
    session.segment_frame(2)
    assert session.frame_states(1).tolist() == [N, N, C, N, N]
    run = session.propagate("forward")
    next(run), next(run)  # frames 2 and 3, then Stop
    run.close()
    assert session.frame_states(1).tolist() == [N, N, C, C, N]

    session = StackSession(model, blobs(n=5))
    session.add_points(1, 2, [(14, 20)], [1])
    for _ in session.propagate("forward"):
        pass
    assert session.frame_states(1).tolist() == [N, N, C, C, C]
    session.add_points(1, 3, [(20, 30)], [0])  # a correction: frame 3 and what was tracked through it
    assert session.frame_states(1).tolist() == [N, N, C, O, O]
    session.segment_frame(3)
    assert session.frame_states(1).tolist() == [N, N, C, C, O]
    for _ in session.propagate("both"):
        pass
    assert session.frame_states(1).tolist() == [C] * 5

    session.add_points(2, 0, [(26, 39)], [1])  # a second object, clicked only
    session.segment_frame(0)
    assert session.frame_states(2).tolist() == [C, N, N, N, N]
    session.add_points(1, 1, [(12, 18)], [1])
    assert session.frame_states(1).tolist() == [O, O, C, C, C]  # frame 0 was tracked through frame 1
    assert session.frame_states().tolist() == [O, O, N, N, N]  # the worst of both per frame
    with pytest.raises(KeyError, match="no object with id 7"):
        session.frame_states(7)
    with pytest.raises(ValueError, match="object id must be >= 1"):
        session.frame_states(0)
