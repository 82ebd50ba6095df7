"""What a session file keeps of a session's bookkeeping beyond its labels:
the prompts as given, the tracking arrays, and what each prompted frame
decoded; read out and taken back (see :mod:`.persist`)."""

from __future__ import annotations

import numpy as np

from .decoding import PromptDecoder
from .memory import MemoryBank
from .object_state import Decoded, ObjectState, reached_frames, state_of
from .passes import UNTRACKED
from .prompt_records import FrameRecord, ObjectRecord
from .prompted_state import PromptedState, checked_state

__all__ = ["prompt_records", "prompted_states", "restore_prompted_states", "restore_tracking_state",
           "tracking_state"]


def prompt_records(objects: dict[int, ObjectState]) -> list[ObjectRecord]:
    """Every object's prompts as the caller gave them (original pixels, (y, x))."""
    out = []
    for obj_id, state in objects.items():
        frames = {}
        for frame, p in sorted(state.prompts.items()):
            labels = tuple(int(v) for v in p.labels)
            frames[frame] = FrameRecord(tuple(p.given_points), labels, p.given_box, p.given_mask)
        out.append(ObjectRecord(obj_id, None, frames))
    return out


def tracking_state(objects: dict[int, ObjectState], bank: MemoryBank) -> dict[int, dict[str, np.ndarray]]:
    """Per object, per frame: direction, fresh and reached (:func:`reached_frames`) (copies)."""
    return {obj_id: {"direction": s.direction.copy(), "fresh": s.fresh.copy(),
                     "reached": reached_frames(s, bank, obj_id)}
            for obj_id, s in objects.items()}


def _check_shape(value: np.ndarray, obj_id: int, name: str, num_frames: int) -> None:
    if value.shape != (num_frames,):
        raise ValueError(
            f"tracking state of object {obj_id}: {name} has shape {value.shape}, expected ({num_frames},)"
        )


def restore_tracking_state(objects: dict[int, ObjectState], state: dict[int, dict[str, np.ndarray]],
                           num_frames: int) -> None:
    """Take back what :func:`tracking_state` gave."""
    for obj_id, arrays in state.items():
        s = state_of(objects, obj_id)
        for name in ("direction", "fresh"):
            value = np.asarray(arrays[name]).astype(getattr(s, name).dtype)
            _check_shape(value, obj_id, name, num_frames)
            setattr(s, name, value)
        if "reached" in arrays:  # outputs no pass of this session wrote
            reached = np.asarray(arrays["reached"], dtype=bool)
            _check_shape(reached, obj_id, "reached", num_frames)
            s.reached_before = reached & (s.direction == UNTRACKED)


def prompted_states(objects: dict[int, ObjectState], decoder: PromptDecoder) -> dict[int, dict[int, PromptedState]]:
    """Per object, per prompted frame, what was decoded there (tensors are the session's own)."""
    bank, marks, candidates = decoder.bank, decoder.marks, decoder.candidates
    out: dict[int, dict[int, PromptedState]] = {}
    for obj_id, state in objects.items():
        out[obj_id] = {
            frame: PromptedState(
                decoded=not p.dirty,
                output=state.pending.get(frame),
                memory=bank.cond_entry(obj_id, frame),
                initial=(obj_id, frame) in marks.initial,
                redecode=marks.redecode.get((obj_id, frame)),
                candidates=candidates.snapshot(obj_id, frame, p),
            )
            for frame, p in sorted(state.prompts.items())
        }
    return out


def restore_prompted_states(objects: dict[int, ObjectState], states: dict[int, dict[int, PromptedState]],
                            decoder: PromptDecoder) -> None:
    """Take back what :func:`prompted_states` gave, after the same prompts were given again."""
    bank, marks, candidates = decoder.bank, decoder.marks, decoder.candidates
    checked = {}  # everything first: a state that does not fit changes nothing
    for obj_id, frames in states.items():
        state = state_of(objects, obj_id)
        for frame, saved in frames.items():
            if frame not in state.prompts:
                raise ValueError(f"object {obj_id} has no prompts on frame {frame} to restore a decode of")
            where = f"object {obj_id}, frame {frame}"
            checked[obj_id, frame] = checked_state(saved, decoder.model, decoder.device, where=where)
    for (obj_id, frame), saved in checked.items():
        state = objects[obj_id]
        prompts = state.prompts[frame]
        if saved.output is None:
            state.pending.pop(frame, None)
        else:
            state.pending[frame] = Decoded(*saved.output)
        if saved.memory is not None:
            bank.set_cond(obj_id, frame, saved.memory)
        prompts.dirty = not saved.decoded
        marks.restore(obj_id, frame, initial=saved.initial, redecode=saved.redecode)
        if saved.candidates is not None:
            candidates.restore(obj_id, frame, prompts, saved.candidates)
