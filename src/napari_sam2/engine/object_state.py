"""One tracked object's bookkeeping in a session, frame by frame.

Per object the session keeps its prompts per frame, the decodes not yet
turned into memory, the direction of the pass that last wrote each frame
and whether that output still agrees with the prompts (``fresh``). The
functions here read and mark those records; :mod:`.passes` says which
frames a change reaches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

from .frame_states import combine_states, object_frame_states
from .lineage import Lineage
from .memory import MemoryBank
from .passes import BACKWARD, FORWARD, UNTRACKED, outdated
from .prompts import FramePrompts

__all__ = ["Decoded", "ObjectState", "clear_prompts", "frame_prompts", "frame_states", "mark_outdated", "mark_written",
           "new_object_state", "reached_frames", "set_track_limits", "state_of"]


class Decoded(NamedTuple):
    """A prompted frame's output not yet turned into memory."""

    logits: torch.Tensor  # 1 x 1 x 4S x 4S
    obj_ptr: torch.Tensor  # 1 x C
    object_score: torch.Tensor  # 1 x 1


@dataclass
class ObjectState:
    prompts: dict[int, FramePrompts] = field(default_factory=dict)
    pending: dict[int, Decoded] = field(default_factory=dict)
    direction: np.ndarray | None = None  # per frame: UNTRACKED / FORWARD / BACKWARD
    fresh: np.ndarray | None = None  # per frame: output agrees with the current prompts
    # per frame: an output the saved session had there that no pass of this
    # one wrote (e.g. a frame whose prompts were removed); set on loading
    reached_before: np.ndarray | None = None


def new_object_state(num_frames: int) -> ObjectState:
    """A new object's state: no prompts, untracked and out of date everywhere."""
    return ObjectState(
        direction=np.full(num_frames, UNTRACKED, dtype=np.int8),
        fresh=np.zeros(num_frames, dtype=bool),
    )


def frame_prompts(objects: dict[int, ObjectState], bank: MemoryBank, obj_id: int, frame: int, *,
                  num_frames: int) -> FramePrompts:
    """``obj_id``'s prompts on ``frame``, made (with the object, in
    ``objects`` and ``bank``) when there are none yet."""
    state = objects.get(obj_id)
    if state is None:
        state = new_object_state(num_frames)
        objects[obj_id] = state
        bank.add_object(obj_id)
    return state.prompts.setdefault(frame, FramePrompts())


def state_of(objects: dict[int, ObjectState], obj_id: int) -> ObjectState:
    """``objects[obj_id]``, or a ``KeyError`` that names the known ids."""
    try:
        return objects[obj_id]
    except KeyError:
        raise KeyError(f"no object with id {obj_id}; known objects: {list(objects)}") from None


def mark_outdated(objects: dict[int, ObjectState], obj_id: int, k: int, *, rerun: str, exclusive: bool) -> None:
    """A prompt change of ``obj_id`` at ``k`` outdates ``k`` and the
    frames that read it (:func:`outdated`). With ``exclusive`` memories the
    other objects' memories there change with this object's masks, so
    they are outdated on the same terms."""
    for other, s in objects.items():
        if other != obj_id and not exclusive:
            continue
        s.fresh[outdated(s.direction, k, rerun=rerun)] = False
        if other == obj_id or s.direction[k] != UNTRACKED:
            s.fresh[k] = False


def clear_prompts(state: ObjectState, bank: MemoryBank, obj_id: int, frame: int) -> None:
    """``obj_id``'s prompts on ``frame`` go: a conditioning memory there
    is kept as a tracked frame's, and the frame counts as untracked."""
    state.prompts.pop(frame, None)
    state.pending.pop(frame, None)
    if bank.cond_entry(obj_id, frame) is not None:
        bank.downgrade_cond(obj_id, frame)
        state.direction[frame] = UNTRACKED


def mark_written(objects: dict[int, ObjectState], objs: list[int], frame: int, *, reverse: bool,
                 bank: MemoryBank) -> None:
    """``objs`` were tracked on ``frame`` by a pass in this direction."""
    for obj_id in objs:
        s = objects[obj_id]
        s.direction[frame] = BACKWARD if reverse else FORWARD
        s.fresh[frame] = True
        bank.written_by(obj_id, frame, reverse=reverse)


def set_track_limits(lineage: Lineage, state: ObjectState | None, bank: MemoryBank, obj_id: int,
                     first: int | None, last: int | None, *, num_frames: int) -> np.ndarray:
    """Limit ``obj_id``'s track (``state``: None when it is not tracked) to
    frames ``first..last`` in ``lineage``; its outputs outside go and the
    frames the new limits open up are out of date. Returns, per frame,
    whether the track may be there now. Prompts outside are an error (the
    limits stay as they were)."""
    old, before = lineage.limits(obj_id), lineage.allowed(obj_id, num_frames)
    lineage.set_limits(obj_id, first, last)
    after = lineage.allowed(obj_id, num_frames)
    outside = [] if state is None else sorted(f for f in state.prompts if not after[f])
    if outside:
        lineage.set_limits(obj_id, *old)
        raise ValueError(f"object {obj_id} has prompts on frame(s) {outside}, outside frames "
                         f"{first or 0}..{num_frames - 1 if last is None else last}; clear them first")
    if state is not None:
        bank.forget_frames(obj_id, np.flatnonzero(~after))
        state.direction[~after] = UNTRACKED
        state.fresh[~after | ~before] = False
    return after


def reached_frames(state: ObjectState, bank: MemoryBank, obj_id: int) -> np.ndarray:
    """Per frame: whether ``obj_id`` has an output there (tracked, or kept)."""
    reached = state.direction != UNTRACKED
    if state.reached_before is not None:
        reached |= state.reached_before
    for f in np.flatnonzero(~reached):  # e.g. a frame whose prompts were removed keeps its output
        reached[f] = bank.logits(obj_id, int(f)) is not None
    return reached


def frame_states(objects: dict[int, ObjectState], bank: MemoryBank, ids: list[int], num_frames: int) -> np.ndarray:
    """The frame states (:func:`object_frame_states`) of the objects of
    ``ids`` still in ``objects``, combined (:func:`combine_states`)."""
    per_object = []
    for i in ids:
        state = objects.get(i)
        if state is None:
            continue
        prompted = [(f, not p.dirty) for f, p in list(state.prompts.items())]
        per_object.append(object_frame_states(reached_frames(state, bank, i), state.fresh, prompted))
    return combine_states(per_object, num_frames)
