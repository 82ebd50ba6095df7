"""Closing the dock or the viewer during background work stops it at once
and prints nothing."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest

from .test_widget import dock


def long_stack(cells):
    image = cells[0]
    return np.concatenate([image, image[::-1], image, image[::-1]])  # 24 frames


def drain(seconds):
    from qtpy.QtWidgets import QApplication

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.01)


@pytest.mark.parametrize("close", ["button", "dock", "viewer"])
def test_closing_during_a_propagation_stops_it_quietly(
    make_viewer, cells, tiny_model, qtbot, capfd, notifications, close
):
    viewer = make_viewer()
    viewer.add_image(long_stack(cells), name="long")
    widget = dock(viewer, tiny_model)
    widget.follow_box.setChecked(False)
    widget.new_object()
    widget.add_point(0, 40, 57)
    assert widget.wait(60)
    calls = []
    step = tiny_model.track_step

    def counted(*args, **kwargs):
        calls.append(time.monotonic())
        return step(*args, **kwargs)

    tiny_model.track_step = counted
    try:
        widget.propagate("forward")
        qtbot.waitUntil(lambda: widget.progress.value() >= 2, timeout=60000)
        capfd.readouterr()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if close == "button":  # the dock's own close button
                dock_widget = widget.parent()
                while dock_widget is not None and not hasattr(dock_widget, "title"):
                    dock_widget = dock_widget.parent()
                dock_widget.title.close_button.click()
            elif close == "dock":
                viewer.window.remove_dock_widget(widget)
                widget.deleteLater()
            else:
                viewer.close()
            closed_at = time.monotonic()
            drain(3.0)
        out, err = capfd.readouterr()
    finally:
        tiny_model.track_step = step
    assert widget.closed
    later = [t for t in calls if t > closed_at]
    assert len(later) <= 1  # at most the frame being computed
    assert [str(w.message) for w in caught] == []
    assert "aborted thread" not in err and "Traceback" not in err and err.strip() == ""
    assert not [n for n in notifications.all if "aborted" in str(n.message)]
