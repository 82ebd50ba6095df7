"""Exports that tracking tools read: the Cell Tracking Challenge (CTC)
layout and napari Tracks layer data.

CTC result layout (what ``py-ctcmetrics`` and the CTC's own tools read):
``maskTTT.tif`` per frame (uint16 labels, ``TTT`` the zero-padded frame
number, 3 digits or more for long stacks) and ``res_track.txt`` with one
line ``L B E P`` per track: label, first frame, last frame, parent label (0
for none). A track must be present on every frame from B to E: an object
with a gap becomes two tracks, the part after the gap a new label whose
parent is the part before it, as the format requires. With
``ground_truth=True`` the same is written as the CTC ground-truth tracking
layout: ``TRA/man_trackTTT.tif`` and ``TRA/man_track.txt``. A session's
parents come from its lineage (``session.lineage``).

napari Tracks layer: :func:`tracks_layer_data` (one row per object and
frame) and :func:`tracks_layer_graph` (the lineage as the layer's
``graph``, so napari draws the branching).

Files are written atomically: each one under a temporary name in the target
folder, then renamed over the final name, so that a crash never leaves a
half-written file under a name a tool reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, NamedTuple

import numpy as np
from scipy import ndimage

from ._io import atomic_file
from .engine.lineage import label_presence
from .tables import tracks_graph

__all__ = ["write_ctc", "tracks_layer_data", "tracks_layer_graph", "mothers_of", "ctc_tracks", "CTCTrack"]

_UINT16_MAX = 65535


class CTCTrack(NamedTuple):
    """One line of ``res_track.txt``: ``label begin end parent``."""

    label: int
    begin: int
    end: int
    parent: int


def _stack_of(session_or_labels) -> np.ndarray:
    labels = getattr(session_or_labels, "labels", session_or_labels)
    if not hasattr(labels, "shape") or not hasattr(labels, "dtype"):
        labels = np.asarray(labels)
    if len(labels.shape) != 3:
        raise ValueError(
            f"labels must be a T x Y x X stack (or a StackSession), got shape {tuple(labels.shape)}"
        )
    if np.dtype(labels.dtype).kind not in "iu":
        raise TypeError(f"labels must have an integer dtype, got {np.dtype(labels.dtype)}")
    return labels


def mothers_of(session_or_labels, parents: Mapping[int, int] | None = None) -> dict[int, int]:
    """``parents`` if given, else a session's lineage ``{daughter: mother}``
    (none for a plain label stack)."""
    if parents is not None:
        return dict(parents)
    lineage = getattr(session_or_labels, "lineage", None)
    return lineage.links() if lineage is not None else {}


def ctc_tracks(session_or_labels, parents: Mapping[int, int] | None = None):
    """The CTC tracks of a label stack and, per frame, the relabelling that
    splitting tracks at gaps needs.

    Returns ``(tracks, relabel)``: a list of :class:`CTCTrack` sorted by
    label, and ``{(label, frame): new_label}`` for the frames after a gap.
    ``parents``: ``{label: mother label}`` (e.g. divisions); the mother's
    last part becomes the parent.
    """
    labels = _stack_of(session_or_labels)
    parents = mothers_of(session_or_labels, parents)
    present = label_presence(labels)
    next_label = max(present, default=0) + 1
    tracks, relabel, last_part = [], {}, {}
    for label in sorted(present):
        runs = np.split(np.array(present[label]), np.flatnonzero(np.diff(present[label]) > 1) + 1)
        previous = None
        for k, run in enumerate(runs):
            if k == 0:
                part = label
            else:
                part = next_label
                next_label += 1
                for t in run:
                    relabel[(label, int(t))] = part
            tracks.append(CTCTrack(part, int(run[0]), int(run[-1]), -1 if k == 0 else previous))
            previous = part
        last_part[label] = previous
    if next_label - 1 > _UINT16_MAX:
        raise ValueError(
            f"the CTC layout stores 16-bit labels; this stack needs label {next_label - 1} (> {_UINT16_MAX})"
        )
    out = []
    for track in tracks:
        if track.parent == -1:
            mother = int(parents.get(track.label, 0))
            parent = last_part.get(mother, 0) if mother else 0
            if parent and present[mother][-1] >= track.begin:
                raise ValueError(
                    f"label {track.label} begins on frame {track.begin} but its parent {mother} "
                    f"is still present on frame {present[mother][-1]}; a mother must end before her daughters begin"
                )
            track = track._replace(parent=parent)
        out.append(track)
    return sorted(out), relabel


def write_ctc(session_or_labels, folder, *, parents: Mapping[int, int] | None = None,
              ground_truth: bool = False) -> Path:
    """Write a ``T x Y x X`` label stack (or a session's labels) in the CTC
    layout into ``folder`` (created if needed); returns the folder.

    ``parents``: ``{label: mother label}`` (default: a session's lineage);
    ``ground_truth``: write the ground-truth tracking layout
    (``TRA/man_track*``) instead of a result.
    Existing files of the same names are replaced; nothing else is touched.
    """
    import tifffile

    labels = _stack_of(session_or_labels)
    tracks, relabel = ctc_tracks(labels, mothers_of(session_or_labels, parents))
    root = Path(folder)
    if root.exists() and not root.is_dir():
        raise ValueError(f"folder {str(root)!r} exists and is not a folder")
    target = root / "TRA" if ground_truth else root
    target.mkdir(parents=True, exist_ok=True)
    stem, track_file = ("man_track", "man_track.txt") if ground_truth else ("mask", "res_track.txt")
    digits = max(3, len(str(labels.shape[0] - 1)))
    by_frame: dict[int, list[tuple[int, int]]] = {}
    for (label, t), new in relabel.items():
        by_frame.setdefault(t, []).append((label, new))
    for t in range(labels.shape[0]):
        frame = np.asarray(labels[t]).astype(np.uint16)
        for label, new in by_frame.get(t, ()):
            frame[frame == label] = new
        with atomic_file(target / f"{stem}{t:0{digits}d}.tif", what="CTC mask") as fh:
            tifffile.imwrite(fh, frame, compression=None)
    text = "".join(f"{tr.label} {tr.begin} {tr.end} {tr.parent}\n" for tr in tracks)
    with atomic_file(target / track_file, what="CTC track file") as fh:
        fh.write(text.encode())
    return root


def tracks_layer_data(session_or_labels) -> np.ndarray:
    """napari Tracks layer data of a ``T x Y x X`` label stack: an ``N x 4``
    float array of ``(track id, t, y, x)``, one row per object and frame at
    its centroid, sorted by track id then t (track id = label value)."""
    labels = _stack_of(session_or_labels)
    rows = []
    for t in range(labels.shape[0]):
        frame = np.asarray(labels[t])
        ids = np.unique(frame)
        ids = ids[ids != 0]
        if not len(ids):
            continue
        centres = ndimage.center_of_mass(np.ones(frame.shape), frame, ids)
        rows += [(float(i), float(t), float(cy), float(cx)) for i, (cy, cx) in zip(ids, centres)]
    data = np.array(rows, dtype=float).reshape(-1, 4)
    order = np.lexsort((data[:, 1], data[:, 0]))
    return data[order]


def tracks_layer_graph(session_or_labels, parents: Mapping[int, int] | None = None) -> dict[int, list[int]]:
    """napari Tracks layer ``graph`` of :func:`tracks_layer_data`'s tracks:
    ``{daughter track: [mother track]}`` for the daughters and mothers that
    have pixels; ``parents`` default to a session's lineage."""
    present = label_presence(_stack_of(session_or_labels))
    mothers = mothers_of(session_or_labels, parents)
    return tracks_graph({d: m for d, m in mothers.items() if d in present and m in present})
