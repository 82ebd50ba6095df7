"""The memory bank SAM 2 reads each step, bounded.

Per object it keeps the conditioning frames (frames the user prompted) and
a history of tracked frames. The history is what tracking reads (the last
``num_maskmem - 1`` memories and ``max_obj_ptrs - 1`` pointers) plus what a
later correction or a pass in the other direction reads; it is held to a
byte budget, oldest entries first out, so memory use does not grow with the
number of frames. Entries that the next step of any pass can read (the
window behind the most recent frame and around each conditioning frame) are
kept even past the budget; there are at most a few dozen of them per object.

With ``separate_directions`` a readout sees only the tracked frames that a
pass in its own direction wrote (conditioning frames are always seen).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from ..config import TrackingConfig
from ..model import MemoryReadout, read_memory


@dataclass
class FrameMemory:
    """What one frame leaves behind for one object.

    ``features``: ``1 x Cm x S x S`` spatial memory, stored as bfloat16 as the
    reference does; ``obj_ptr``: ``1 x C``; ``object_score``: ``1 x 1``;
    ``logits``: ``1 x 1 x 4S x 4S`` low-resolution mask logits (the output).
    """

    features: torch.Tensor
    obj_ptr: torch.Tensor
    object_score: torch.Tensor
    logits: torch.Tensor

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.features, self.obj_ptr, self.object_score, self.logits))


class MemoryBank:
    """Conditioning memories and a bounded history, per object id."""

    def __init__(self, config: TrackingConfig, *, history_bytes: int, separate_directions: bool = False) -> None:
        self.config = config
        self.history_bytes = history_bytes
        self.separate_directions = separate_directions
        self._reverse: dict[int, dict[int, bool]] = {}  # obj -> frame -> written by a backward pass
        self.window = max(config.num_maskmem - 1, config.max_obj_ptrs_in_encoder - 1)
        self._cond: dict[int, dict[int, FrameMemory]] = {}
        self._history: dict[int, dict[int, FrameMemory]] = {}
        self._order: OrderedDict[tuple[int, int], int] = OrderedDict()  # (obj, frame) -> bytes
        self._bytes = 0
        self._latest: dict[int, int] = {}  # obj -> most recently written frame

    # ------------------------------------------------------------ objects
    def add_object(self, obj_id: int) -> None:
        self._cond.setdefault(obj_id, {})
        self._history.setdefault(obj_id, {})

    def remove_object(self, obj_id: int) -> None:
        for frame in list(self._history.get(obj_id, {})):
            self._drop_history(obj_id, frame)
        self._cond.pop(obj_id, None)
        self._history.pop(obj_id, None)
        self._reverse.pop(obj_id, None)
        self._latest.pop(obj_id, None)

    def clear(self) -> None:
        for obj_id in list(self._cond):
            self.remove_object(obj_id)

    # ------------------------------------------------------------ entries
    def cond_frames(self, obj_id: int) -> list[int]:
        return sorted(self._cond.get(obj_id, {}))

    def cond_entry(self, obj_id: int, frame: int) -> FrameMemory | None:
        return self._cond.get(obj_id, {}).get(frame)

    def set_cond(self, obj_id: int, frame: int, entry: FrameMemory) -> None:
        """Make ``frame`` a conditioning frame; a tracked entry there goes."""
        self._drop_history(obj_id, frame)
        self._cond[obj_id][frame] = entry

    def downgrade_cond(self, obj_id: int, frame: int) -> None:
        """A frame that lost its prompts keeps its output as a tracked frame."""
        entry = self._cond.get(obj_id, {}).pop(frame, None)
        if entry is not None:
            self.put(obj_id, frame, entry)

    def put(self, obj_id: int, frame: int, entry: FrameMemory) -> None:
        """Store a tracked (non-conditioning) frame's memory."""
        self._drop_history(obj_id, frame)
        self._history[obj_id][frame] = entry
        self._order[(obj_id, frame)] = entry.nbytes
        self._bytes += entry.nbytes
        self._latest[obj_id] = frame
        self._evict()

    def forget_frames(self, obj_id: int, frames) -> None:
        """Drop ``obj_id``'s tracked entries on ``frames`` (e.g. after its
        track was limited to fewer frames)."""
        for frame in frames:
            self._drop_history(obj_id, int(frame))

    def written_by(self, obj_id: int, frame: int, *, reverse: bool) -> None:
        """Record the direction of the pass that wrote ``frame``'s tracked
        entry (nothing for a conditioning frame); an entry replaced later
        loses it."""
        if frame in self._history.get(obj_id, {}):
            self._reverse.setdefault(obj_id, {})[frame] = reverse

    def logits(self, obj_id: int, frame: int) -> torch.Tensor | None:
        """The latest low-resolution output of ``obj_id`` on ``frame``, if kept."""
        entry = self._cond.get(obj_id, {}).get(frame) or self._history.get(obj_id, {}).get(frame)
        return None if entry is None else entry.logits

    @property
    def history_nbytes(self) -> int:
        return self._bytes

    def readout(self, obj_id: int, frame: int, *, num_frames: int, reverse: bool) -> MemoryReadout:
        recent = self._history[obj_id]
        if self.separate_directions:
            recent = _WrittenBy(recent, self._reverse.get(obj_id, {}), reverse)
        return read_memory(
            frame,
            self._cond[obj_id],
            recent,
            config=self.config,
            num_frames=num_frames,
            reverse=reverse,
        )

    # ------------------------------------------------------------ budget
    def _drop_history(self, obj_id: int, frame: int) -> None:
        entry = self._history.get(obj_id, {}).pop(frame, None)
        if entry is not None:
            self._bytes -= self._order.pop((obj_id, frame))
            self._reverse.get(obj_id, {}).pop(frame, None)

    def _protected(self, obj_id: int, frame: int) -> bool:
        latest = self._latest.get(obj_id)
        if latest is not None and abs(frame - latest) <= self.window:
            return True
        return any(abs(frame - c) <= self.window + 1 for c in self._cond.get(obj_id, ()))

    def _evict(self) -> None:
        if self._bytes <= self.history_bytes:
            return
        for obj_id, frame in list(self._order):
            if self._bytes <= self.history_bytes:
                break
            if not self._protected(obj_id, frame):
                self._drop_history(obj_id, frame)


class _WrittenBy(Mapping):
    """The tracked entries that a pass in one direction wrote (a view)."""

    def __init__(self, history: dict[int, FrameMemory], reverse_of: dict[int, bool], reverse: bool) -> None:
        self._history, self._reverse_of, self._reverse = history, reverse_of, reverse

    def __getitem__(self, frame: int) -> FrameMemory:
        if not self._mine(frame):
            raise KeyError(frame)
        return self._history[frame]

    def _mine(self, frame: int) -> bool:
        tag = self._reverse_of.get(frame)
        return tag is not None and bool(tag) == bool(self._reverse)

    def __iter__(self):
        return (f for f in self._history if self._mine(f))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def stack_readouts(readouts: list[MemoryReadout]) -> MemoryReadout:
    """Batch the readouts of several objects that read the same frames."""
    first = readouts[0]
    if len(readouts) == 1:
        return first
    spatial = [
        (t_pos, torch.cat([r.spatial[i][1] for r in readouts], dim=0))
        for i, (t_pos, _) in enumerate(first.spatial)
    ]
    pointers = [
        (offset, torch.cat([r.pointers[i][1] for r in readouts], dim=0))
        for i, (offset, _) in enumerate(first.pointers)
    ]
    return MemoryReadout(spatial, pointers, first.max_pointers, first.frames)
