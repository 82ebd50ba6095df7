"""Per-frame state of tracked objects, for a frame-state strip.

Read from the session's own bookkeeping (which pass last wrote a frame, and
whether that output still agrees with the prompts); nothing is computed.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

__all__ = ["FRAME_CURRENT", "FRAME_NOT_REACHED", "FRAME_OUT_OF_DATE", "object_frame_states", "combine_states"]

# ordered by precedence: combining objects keeps the highest code per frame
FRAME_CURRENT = 0  # tracked or prompted, and up to date with the prompts
FRAME_NOT_REACHED = 1  # never tracked and not prompted (e.g. beyond Stop)
FRAME_OUT_OF_DATE = 2  # an output that later prompts or settings made stale


def object_frame_states(
    tracked: np.ndarray, fresh: np.ndarray, prompted: Iterable[tuple[int, bool]]
) -> np.ndarray:
    """One object's states, ``(num_frames,)`` int8.

    ``tracked``: per frame, whether the object has an output there that a
    propagation wrote; ``fresh``: per
    frame, whether that output agrees with the current prompts;
    ``prompted``: ``(frame, decoded)`` for each frame with prompts, where
    ``decoded`` says the frame's shown mask comes from its current prompts.
    """
    states = np.where(tracked, np.where(fresh, FRAME_CURRENT, FRAME_OUT_OF_DATE), FRAME_NOT_REACHED)
    states = states.astype(np.int8)
    for frame, decoded in prompted:
        states[frame] = FRAME_CURRENT if decoded else FRAME_OUT_OF_DATE
    return states


def combine_states(per_object: list[np.ndarray], num_frames: int) -> np.ndarray:
    """All objects together: per frame the worst state (out of date, then
    not reached, then current); all not reached without objects."""
    if not per_object:
        return np.full(num_frames, FRAME_NOT_REACHED, dtype=np.int8)
    return np.max(np.stack(per_object), axis=0).astype(np.int8)
