"""Errors: a short first line, the whole text selectable under Details, a
dock that keeps its layout, and never advice to load a file unsafely."""

from __future__ import annotations

from .test_widget import dock


def test_long_error_keeps_the_layout_and_details_hold_the_whole_text(make_viewer, cells, qtbot, notifications):
    from qtpy.QtCore import Qt

    viewer = make_viewer()
    viewer.add_image(cells[0][:2], name="cells")
    widget = dock(viewer)
    widget.show()
    qtbot.waitExposed(widget)
    widget.new_object()
    qtbot.wait(50)
    before = (widget.status.height(), widget.object_list.height(), widget.object_list.geometry().top())
    url = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_tiny.pt"
    message = (
        f"could not download {url}: the network is unreachable. To work offline, download the file "
        "on another machine and put it into the folder named by NAPARI_SAM2_CHECKPOINT_DIR, "
        "or choose 'Checkpoint file…' and pick it. " * 4
    )
    widget._error(message)
    qtbot.wait(50)
    assert (widget.status.height(), widget.object_list.height(), widget.object_list.geometry().top()) == before
    line = widget.status.text()
    assert line.startswith("Error: could not download") and len(line) < 130 and "\n" not in line
    area = widget.status_area
    assert area.details_button.isEnabled() and not area.details.isVisibleTo(widget)
    qtbot.mouseClick(area.details_button, Qt.LeftButton)
    assert area.details.isVisibleTo(widget)
    assert area.details.toPlainText() == message.strip() and url in area.details.toPlainText()
    assert area.details.isReadOnly() and area.details.textInteractionFlags() & Qt.TextSelectableByMouse
    assert any(url in m for m in notifications.messages("error"))
    # a later short status closes the details again
    widget._set_status("Ready.")
    assert not area.details_button.isEnabled() and not area.details.isVisibleTo(widget)


def test_no_message_suggests_unsafe_loading(make_viewer, cells, tmp_path, notifications):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint" * 100)
    viewer = make_viewer()
    viewer.add_image(cells[0][:2], name="cells")
    widget = dock(viewer)
    widget.load_model(garbage, device="cpu")
    assert widget.wait(60)
    assert widget.model is None
    errors = notifications.messages("error")
    assert any("garbage.pt" in m for m in errors)
    shown = [*errors, widget.status.text(), widget.status_area.details.toPlainText()]
    assert not any("weights_only" in text for text in shown)
    # a message from elsewhere carrying that advice loses it
    widget._error("Weights only load failed. Re-running `torch.load` with `weights_only=False` will "
                  "likely succeed. Check the file.")
    assert "weights_only" not in widget.status_area.details.toPlainText()
    assert "weights_only" not in notifications.messages("error")[-1]
