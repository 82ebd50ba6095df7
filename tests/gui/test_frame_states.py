"""The frame-state strip: per frame, tracked and current / out of date /
not reached, for the selected object and for all, updated as it goes."""

from __future__ import annotations

import numpy as np

from .test_widget import dock

CURRENT, NOT_REACHED, OUT_OF_DATE = 0, 1, 2


def rows(widget):
    strip = widget.frame_strip
    selected, everyone = strip.states("selected"), strip.states("all")
    return (None if selected is None else selected.tolist()), everyone.tolist()


def test_strip_after_prompts_stop_and_a_correction(make_viewer, cells, tiny_model, qtbot):
    from napari_sam2.engine import FRAME_CURRENT, FRAME_NOT_REACHED, FRAME_OUT_OF_DATE
    from qtpy.QtCore import QTimer

    assert (FRAME_CURRENT, FRAME_NOT_REACHED, FRAME_OUT_OF_DATE) == (CURRENT, NOT_REACHED, OUT_OF_DATE)
    image = cells[0]
    viewer = make_viewer()
    viewer.add_image(np.concatenate([image, image[::-1]]), name="cells")  # 12 frames
    widget = dock(viewer, tiny_model)
    widget.follow_box.setChecked(False)
    assert rows(widget) == (None, [NOT_REACHED] * 12)
    a = widget.new_object()
    widget.add_point(1, 40, 57)
    assert widget.wait(60)
    assert rows(widget) == ([NOT_REACHED] + [CURRENT] + [NOT_REACHED] * 10,) * 2

    # it follows the propagation; after Stop the frames beyond are "not reached"
    seen = []
    timer = QTimer()
    timer.timeout.connect(lambda: seen.append(widget.frame_strip.counts()["tracked, current"]))
    timer.start(20)
    widget.propagate("forward")
    qtbot.waitUntil(lambda: widget.progress.value() >= 3, timeout=60000)
    widget.stop()
    assert widget.wait(60)
    timer.stop()
    selected, everyone = rows(widget)
    reached = 1 + widget.progress.value()
    assert selected == everyone
    assert everyone == [NOT_REACHED] + [CURRENT] * (reached - 1) + [NOT_REACHED] * (12 - reached)
    assert len(set(seen)) >= 3  # grew frame by frame while it ran

    widget.propagate("forward")
    assert widget.wait(120)
    assert rows(widget)[1] == [NOT_REACHED] + [CURRENT] * 11

    # a correction on frame 6 outdates the frames tracked through it
    widget.add_point(6, 60, 70, positive=False)
    assert widget.wait(60)
    expected = [NOT_REACHED] + [CURRENT] * 6 + [OUT_OF_DATE] * 5
    assert rows(widget) == (expected, expected)

    # a second object: the selected row is its own, "all" the worst per frame
    widget.new_object()
    assert rows(widget)[0] == [NOT_REACHED] * 12
    widget.add_point(9, 20, 20)
    assert widget.wait(60)
    assert rows(widget)[0] == [NOT_REACHED] * 9 + [CURRENT] + [NOT_REACHED] * 2
    # (worst first: out of date, then not reached: b is not reached on 0-8)
    assert rows(widget)[1] == [NOT_REACHED] * 7 + [OUT_OF_DATE] * 5
    widget.select_object(a)
    assert rows(widget)[0] == expected

    # a click on a cell moves the viewer there
    widget.frame_strip.frame_clicked.emit(4)
    assert viewer.dims.current_step[0] == 4
