"""The widget's keyboard shortcuts, as napari actions.

Each shortcut is an action of napari's action manager bound on the viewer
(``keymapprovider=ViewerModel``), so it shows in napari's *Preferences >
Shortcuts* under the viewer's key bindings, where users rebind it; a binding
saved there wins over the default below. A layer's own binding of the same
key wins while that layer is selected (napari's rule); the defaults use keys
no napari layer binds.

An action finds the widget of the viewer it was pressed in through
:class:`WidgetsByViewer` (weak references: a closed widget drops out).
"""

from __future__ import annotations

import weakref
from typing import Callable, NamedTuple

PREFIX = "napari-sam2"


class Shortcut(NamedTuple):
    name: str  # action name after the "napari-sam2:" prefix
    key: str  # default key, in napari's notation
    description: str
    call: Callable  # call(widget)


SHORTCUTS = (
    Shortcut("new_object", "N", "SAM 2: new object", lambda w: w.new_object()),
    Shortcut("next_object", ".", "SAM 2: select the next object", lambda w: w.step_object(+1)),
    Shortcut("previous_object", ",", "SAM 2: select the previous object", lambda w: w.step_object(-1)),
    Shortcut("toggle_negative", "Shift-N", "SAM 2: toggle negative clicks",
             lambda w: w.negative_box.toggle()),
    Shortcut("propagate_forward", "Shift-F", "SAM 2: propagate forward", lambda w: w.propagate("forward")),
    Shortcut("propagate_backward", "Shift-B", "SAM 2: propagate backward", lambda w: w.propagate("backward")),
    Shortcut("propagate_both", "Shift-D", "SAM 2: propagate both directions", lambda w: w.propagate("both")),
    Shortcut("stop", "Shift-S", "SAM 2: stop the propagation", lambda w: w.stop()),
    Shortcut("cycle_candidate", "Shift-C", "SAM 2: next candidate mask for the clicks",
             lambda w: w.cycle_candidate()),
)


def action_name(shortcut: Shortcut) -> str:
    return f"{PREFIX}:{shortcut.name}"


class WidgetsByViewer:
    """Which widget serves which viewer (weakly held)."""

    def __init__(self) -> None:
        self._widgets: weakref.WeakValueDictionary = weakref.WeakValueDictionary()

    def add(self, viewer, widget) -> None:
        self._widgets[id(viewer)] = widget

    def remove(self, viewer, widget) -> None:
        if self._widgets.get(id(viewer)) is widget:
            del self._widgets[id(viewer)]

    def get(self, viewer):
        return self._widgets.get(id(getattr(viewer, "__wrapped__", viewer)))


_WIDGETS = WidgetsByViewer()


def _command(shortcut: Shortcut):
    def command(viewer) -> None:
        widget = _WIDGETS.get(viewer)
        if widget is not None and not widget.closed:
            shortcut.call(widget)

    command.__name__ = shortcut.name
    command.__doc__ = shortcut.description
    return command


def register(viewer, widget) -> None:
    """Register the actions (once) and route ``viewer``'s to ``widget``."""
    from napari.components import ViewerModel
    from napari.settings import get_settings
    from napari.utils.action_manager import action_manager

    _WIDGETS.add(viewer, widget)
    saved = get_settings().shortcuts.shortcuts
    for shortcut in SHORTCUTS:
        name = action_name(shortcut)
        if name in action_manager._actions:  # registered by an earlier widget
            continue
        action_manager.register_action(name, _command(shortcut), shortcut.description, ViewerModel)
        if name not in saved:  # the user's own binding, if any, is bound by napari
            action_manager.bind_shortcut(name, shortcut.key)


def unregister(viewer, widget) -> None:
    _WIDGETS.remove(viewer, widget)


def bound_keys() -> dict[str, list[str]]:
    """The keys bound to each action now (after the user's rebinding)."""
    from napari.utils.action_manager import action_manager

    return {
        action_name(s): [str(k) for k in action_manager._shortcuts.get(action_name(s), [])]
        for s in SHORTCUTS
    }


def help_text() -> str:
    """The Help dialog's text: the README section, in short, and the shortcuts."""
    keys = bound_keys()
    lines = [
        "Click on the image: a positive point for the selected object; Shift-click: negative.",
        "Boxes: select the boxes layer and drag a rectangle.",
        "Painting, filling or erasing an object's pixels in the labels layer makes that its mask",
        "there; the next propagation carries the fix.",
        "Propagate forward, backward or both; Stop keeps the frames done.",
        "Segment all: every object on the frame on screen; Track all: every object through the",
        "stack, new ones found every k frames (and divisions); Show tracks: their centroids as a",
        "Tracks layer, with the lineage. Mark division: the selected object ends before this frame;",
        "click its two daughters (Esc cancels). Link to mother / Unlink: the selected object's mother.",
        "Undo / Redo (Ctrl-Z / Ctrl-Shift-Z in the labels or prompt layers) revert objects,",
        "prompts and labels together.",
        "",
        "Keyboard shortcuts (rebind them in napari's Preferences > Shortcuts):",
    ]
    for shortcut in SHORTCUTS:
        bound = ", ".join(keys[action_name(shortcut)]) or "none"
        lines.append(f"  {bound}: {shortcut.description.removeprefix('SAM 2: ')}")
    lines += ["", "More: the section \"Use it in napari\" of the README."]
    return "\n".join(lines)
