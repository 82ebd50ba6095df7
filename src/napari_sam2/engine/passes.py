"""Which frames a propagation runs, and what a prompt change puts out of
date. Per object the session keeps, for every frame, the direction it was
last tracked in and whether that output still agrees with the prompts
(``fresh``); these functions read and mark those arrays."""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

UNTRACKED, FORWARD, BACKWARD = -1, 0, 1


class Pass(NamedTuple):
    """One pass of a propagation: ``frames`` in order, ``objects`` taking
    part; ``visited``: a frame the pass starts from without computing it
    (every object taking part is prompted there and the forward pass of
    the same run wrote it)."""

    frames: list[int]
    reverse: bool
    objects: list[int]
    visited: int | None = None


def outdated(direction: np.ndarray, k: int, *, rerun: str) -> np.ndarray:
    """The frames of one object (``direction``: per frame UNTRACKED /
    FORWARD / BACKWARD) that a change at frame ``k`` reaches, ``k`` aside.

    Every tracked frame attends to every conditioning frame and to the
    frames before it in its pass, so with ``rerun="downstream"`` that is
    each frame after ``k`` in the direction it was tracked, whichever pass
    (and wherever it began) wrote it; with "all" every tracked frame."""
    if rerun == "all":
        return direction != UNTRACKED
    f = np.arange(len(direction))
    return ((direction == FORWARD) & (f > k)) | ((direction == BACKWARD) & (f < k))


def _first_stale(fresh: dict[int, np.ndarray], frames) -> int | None:
    for f in frames:
        if any(not arr[f] for arr in fresh.values()):
            return f
    return None


def plan(
    direction: str,
    lo: int,
    hi: int,
    *,
    cond: list[int],
    fresh: dict[int, np.ndarray],
    prompted: Callable[[int, int], bool],
) -> list[Pass]:
    """The passes that bring frames ``lo..hi`` up to date, in order.

    ``cond``: every object's conditioning frames, sorted; ``fresh``: per
    object id, per frame, whether its output is up to date;
    ``prompted(obj, frame)``: whether ``obj`` is conditioned on ``frame``.
    "forward" runs from the first out-of-date frame at or after the first
    conditioning frame to ``hi``; "backward" from the last conditioning
    frame down to ``lo``; "both" forward, then backward from the first
    conditioning frame (as two reference calls do), without computing that
    frame again when every object taking part is prompted there."""
    objs = list(fresh)
    passes = []
    if direction in ("forward", "both"):
        begin = _first_stale(fresh, range(max(lo, cond[0]), hi + 1))
        if begin is not None:
            frames = list(range(begin, hi + 1))
            takers = [o for o in objs if not fresh[o][frames].all()]
            passes.append(Pass(frames, False, takers))
    if direction in ("backward", "both"):
        anchor = cond[0] if direction == "both" else cond[-1]
        last = min(hi, anchor)
        if last >= lo:
            begin = _first_stale(fresh, range(last, lo - 1, -1))
            if begin is not None:
                if direction == "both":
                    begin = last  # like the reference, go back from the prompted frame
                frames = list(range(begin, lo - 1, -1))
                takers = [o for o in objs if not fresh[o][frames].all()]
                visited = None
                if direction == "both" and begin == anchor and all(prompted(o, anchor) for o in takers):
                    frames, visited = frames[1:], anchor
                if frames:
                    passes.append(Pass(frames, True, takers, visited))
    return passes
