"""Keyboard shortcuts through napari's action manager (rebindable in its
preferences), tooltips on every control, and the Help text."""

from __future__ import annotations

from .test_widget import dock


def press(qtbot, viewer, key, modifiers=None):
    from qtpy.QtCore import Qt

    canvas = viewer.window._qt_viewer.canvas.native
    qtbot.keyClick(canvas, key, modifiers if modifiers is not None else Qt.NoModifier)


def test_shortcuts_drive_the_widget_and_can_be_rebound(make_viewer, cells, tiny_model, qtbot):
    from napari.components import ViewerModel
    from napari.utils.action_manager import action_manager
    from qtpy.QtCore import Qt

    from napari_sam2._qt.shortcuts import SHORTCUTS, action_name

    viewer = make_viewer()
    viewer.add_image(cells[0][:3], name="cells")
    widget = dock(viewer, tiny_model)
    widget.follow_box.setChecked(False)
    for shortcut in SHORTCUTS:  # listed in the preferences' viewer key bindings
        action = action_manager._actions[action_name(shortcut)]
        assert action.keymapprovider is ViewerModel
    viewer.layers.selection.active = widget.points_layer

    press(qtbot, viewer, Qt.Key_N)
    press(qtbot, viewer, Qt.Key_N)
    assert widget.objects == [1, 2] and widget.current_object == 2
    press(qtbot, viewer, Qt.Key_Comma)
    assert widget.current_object == 1
    press(qtbot, viewer, Qt.Key_Period)
    assert widget.current_object == 2
    press(qtbot, viewer, Qt.Key_N, Qt.ShiftModifier)
    assert widget.negative_box.isChecked()
    press(qtbot, viewer, Qt.Key_N, Qt.ShiftModifier)
    assert not widget.negative_box.isChecked()

    widget.add_point(0, 40, 57)
    assert widget.wait(60)
    press(qtbot, viewer, Qt.Key_F, Qt.ShiftModifier)
    assert widget.busy
    assert widget.wait(120)
    assert widget.status.text().startswith("Propagated 3 frames")
    # Ctrl-Z in the points layer undoes as in the labels layer
    assert viewer.layers.selection.active is widget.points_layer
    press(qtbot, viewer, Qt.Key_Z, Qt.ControlModifier)
    assert widget.status.text().startswith("Undone")
    press(qtbot, viewer, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)
    assert widget.status.text().startswith("Redone")

    # rebound as napari's preferences do it: the old key is free, the new one works
    name = "napari-sam2:new_object"
    old = action_manager.unbind_shortcut(name)
    try:
        action_manager.bind_shortcut(name, "Shift-K")
        press(qtbot, viewer, Qt.Key_N)
        assert widget.objects == [1, 2]
        press(qtbot, viewer, Qt.Key_K, Qt.ShiftModifier)
        assert widget.objects == [1, 2, 3]
        from napari_sam2._qt.shortcuts import help_text

        assert any(f"{key}: new object" in help_text() for key in ("Shift+K", "Shift-K"))
    finally:
        action_manager.unbind_shortcut(name)
        for key in old or []:
            action_manager.bind_shortcut(name, key)


def test_every_control_has_a_tooltip(make_viewer, cells):
    from qtpy.QtWidgets import QAbstractButton, QAbstractSpinBox, QComboBox, QLineEdit, QListWidget

    viewer = make_viewer()
    viewer.add_image(cells[0][:2], name="cells")
    widget = dock(viewer)
    controls = [
        w for kind in (QAbstractButton, QComboBox, QLineEdit, QAbstractSpinBox, QListWidget)
        for w in widget.findChildren(kind)
        if not isinstance(w.parent(), (QComboBox, QAbstractSpinBox))  # their inner parts
    ]
    assert len(controls) >= 20
    missing = [w.text() if hasattr(w, "text") else type(w).__name__ for w in controls if not w.toolTip()]
    assert missing == []
    from napari_sam2._qt.shortcuts import help_text

    assert widget.help_link.toolTip() and "Preferences > Shortcuts" in help_text()
