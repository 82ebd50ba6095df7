"""Divisions: a tracked cell that becomes two.

SAM 2 knows nothing of divisions: after one, the mother's mask covers both
daughters, or follows one of them. Both show in SAM 2's own outputs, and
:class:`DivisionWatcher` reads them frame by frame while a pass runs
forward in time:

* **split**: the object's mask holds two cells. The mask is split into
  two halves (its two largest components, or the halves on either side of
  its long axis) and SAM decodes each half's deepest point as a click with
  the other's as a negative click, without memory. Two cells give two
  masks that overlap little and each cover a good share of the mask; one
  cell gives the same mask twice (the negative click does not cut a cell).
  Where SAM's two decodes do not separate, the mask's own shape may: a
  distance transform that narrows to a neck between two peaks
  (:func:`~napari_sam2.engine.touching.split_mask`, ``split_neck``) gives
  the two cells when both hold a good share of the mask; and where neither
  does, a mask that kept its area but stretched since it was last one cell
  (``stretch_split``) is cut in two across its long axis.
  A division is a mask that was one cell for ``min_mother_frames`` frames
  (a round mask SAM's decodes cut side by side counts as one cell: a large
  round cell may be so cut on every frame before it divides) and then two
  cells for ``persist`` frames in a row (or up to the last frame of the
  pass, which no frame follows to confirm it), stretched on the first of
  those from the rounded mother (``split_rise``): it happened on the first
  of those, or on the frame before when the one-cell mask grew there
  (``back_date_growth``: the daughters were already spreading).
* **halving**: the object's area drops to about half from one frame to
  the next (it follows one daughter) and SAM, clicked in the part it left
  (negative click on the part it kept), finds a cell of similar size
  beside it that no object covers; the area stays halved for ``persist``
  frames.

A division found on frame ``t`` is applied with
:func:`~.division_edits.mark_division`:
the mother's track ends on ``t - 1``, two new objects (the daughters) are
prompted with their masks on ``t``, their mother recorded; the pass then
goes on from ``t``. The thresholds live in
:class:`~.division_options.DivisionOptions`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch
from scipy import ndimage

from ..model import PointPrompts
from .division_options import DivisionOptions
from .labels import upsample_logits
from .touching import split_mask

if TYPE_CHECKING:  # pragma: no cover
    from .session import StackSession

__all__ = ["Division", "DivisionWatcher", "ClickMasks", "decode_click_sets", "neck_ratio"]


class ClickMasks(NamedTuple):
    """SAM's decode of ``B`` click sets: ``logits`` ``B x Y x X`` float32 (mask
    where > 0) and ``object_scores`` ``B`` (the object is there where > 0)."""

    logits: np.ndarray
    object_scores: np.ndarray


def decode_click_sets(model, features, coords: np.ndarray, labels: np.ndarray, size: tuple[int, int]) -> ClickMasks:
    """Decode ``B`` click sets (``coords`` ``B x N x 2`` model ``(x, y)``,
    ``labels`` ``B x N``) on one frame's ``features`` as first clicks (no
    memory), one mask each."""
    b = len(coords)
    device = model.device
    pix = model.condition(features.embedding, None)  # the no-memory embedding, as for a first click
    high = tuple(h.expand(b, -1, -1, -1) for h in features.high_res)
    points = PointPrompts(torch.as_tensor(coords, dtype=torch.float32, device=device),
                          torch.as_tensor(labels, dtype=torch.int32, device=device))
    head = model.run_heads(pix.expand(b, -1, -1, -1), high, points=points, multimask=False)
    logits = upsample_logits(head.low_res.float(), size)  # (B, Y, X)
    return ClickMasks(logits.cpu().numpy(), head.object_score_logits[:, 0].float().cpu().numpy())



class Division(NamedTuple):
    """A division found: ``mother`` divides on ``frame`` into ``masks`` (``Y x X`` bool each)."""

    mother: int
    frame: int
    masks: tuple[np.ndarray, ...]
    rule: str  # "split" or "halving"


class _Seen(NamedTuple):
    area: int
    kind: str  # "one", "two"/"pair"/"cut" (a split: two cells) or "sister" (a cell found beside a halved mask)
    masks: tuple | None = None  # the two cells (kept for the last frames only)
    elongation: float = 1.0  # long over short axis of the mask


class DivisionWatcher:
    """Reads each frame of a forward pass (in order, again from a frame it
    is rewound to) and reports divisions (see the module docstring)."""

    def __init__(self, session: "StackSession", options: DivisionOptions | None = None) -> None:
        options = DivisionOptions() if options is None else options
        if not isinstance(options, DivisionOptions):
            raise TypeError(f"divisions must be a DivisionOptions (or None), got {type(options).__name__}")
        self.session = session
        self.options = options
        self._seen: dict[int, dict[int, _Seen]] = {}  # object -> frame -> what was seen
        self.found: list[Division] = []  # every division reported, in order
        self._reported: set[tuple[int, int]] = set()

    @property
    def lag(self) -> int:
        """Frames back from the latest one read that a division may still be dated to."""
        return self.options.max_delay - 1 + (self.options.back_date_growth is not None)  # a frame more to date back

    def rewind(self, frame: int) -> None:
        """Forget what was read on ``frame`` and after (they are computed again)."""
        for seen in self._seen.values():
            for f in [f for f in seen if f >= frame]:
                del seen[f]

    def observe(self, frame: int, labels: np.ndarray, *, final: bool = False) -> Division | None:
        """Read ``frame``'s labels (``Y x X``); returns a division confirmed by
        this frame (the earliest-dated one when several are), or None.
        ``final``: no frame follows in this pass, so a split seen on fewer than
        ``persist`` frames before it counts (no later frame can confirm it)."""
        session, opt = self.session, self.options
        labels = np.asarray(labels)
        ids = [o for o in session.object_ids if session.lineage.tracks(o, frame)]
        previous = np.asarray(session.labels[frame - 1]) if frame > 0 else None
        tests, probes = [], []
        for obj_id in ids:
            mask = labels == obj_id
            area = int(mask.sum())
            seen = self._seen.setdefault(obj_id, {})
            elongation = _elongation(mask) if area >= 3 else 1.0
            seen[frame] = _Seen(area, "one", None, elongation)
            old = seen.get(frame - opt.max_delay - 1)
            if old is not None and old.masks is not None:
                seen[frame - opt.max_delay - 1] = old._replace(masks=None)
            if area < 2 * opt.min_daughter_area:
                continue
            last = seen.get(frame - 1)
            if last is not None and last.area and opt.area_drop[0] <= area / last.area <= opt.area_drop[1]:
                click = _halving_clicks(mask, previous == obj_id, labels, opt)
                if click is not None:
                    tests.append(("halving", obj_id, mask, None))
                    probes.append(click)
                    continue
            halves = _split_halves(mask, opt, seen[frame].elongation)
            if halves is not None:
                tests.append(("split", obj_id, mask, halves))
                probes += _pair_clicks(halves)
        if probes:
            decoded = session.decode_clicks(frame, probes)
            k = 0
            for rule, obj_id, mask, halves in tests:
                if rule == "halving":
                    sister = _sister(mask, labels, decoded.logits[k], decoded.object_scores[k], opt)
                    if sister is not None:
                        self._seen[obj_id][frame] = self._seen[obj_id][frame]._replace(kind="sister", masks=(mask, sister))
                    k += 1
                else:
                    two = _two_cells(mask, decoded.logits[k : k + 2], decoded.object_scores[k : k + 2], opt)
                    if two is not None:
                        # at a waist: two cells; cut along a long side: two cells or one elongated cell
                        kind = "two" if neck_ratio(*two) <= opt.max_neck else "pair"
                        self._seen[obj_id][frame] = self._seen[obj_id][frame]._replace(kind=kind, masks=two)
                    elif self._stretched(obj_id, frame, halves):
                        self._seen[obj_id][frame] = self._seen[obj_id][frame]._replace(kind="cut", masks=halves)
                    k += 2
        events = [e for e in (self._confirmed(o, frame, final) for o in ids)
                  if e is not None and (e.mother, e.frame) not in self._reported]
        if not events:
            return None
        event = min(events, key=lambda e: (e.frame, e.mother))
        self._reported.add((event.mother, event.frame))
        self.found.append(event)
        return event

    def _stretched(self, obj_id: int, frame: int, halves) -> bool:
        """Whether the object's mask on ``frame`` (split into ``halves``) is
        two cells by ``stretch_split``: it kept its area and stretched since
        the last frame it was one cell, and each half holds a daughter's share."""
        opt = self.options
        if opt.stretch_split is None:
            return False
        seen = self._seen[obj_id]
        ones = _one_cell_frames(seen, frame)
        if not ones:
            return False
        mother, now = seen[max(ones)], seen[frame]
        keeps = opt.area_drop[1] <= now.area / mother.area <= 1 / max(opt.area_drop[1], 1e-9)
        if not keeps or now.elongation < opt.stretch_split * mother.elongation:
            return False
        return _daughter_sized(halves, now.area, opt)

    def _confirmed(self, obj_id: int, frame: int, final: bool = False) -> Division | None:
        """A division of ``obj_id`` dated to the first frame after the last
        one that showed it as the mother (one cell, or a round mask SAM's
        decodes cut side by side), if the frames since confirm it (on the
        ``final`` frame of a pass, fewer than ``persist`` frames do)."""
        opt = self.options
        seen = self._seen[obj_id]
        mothers = _mother_frames(seen, frame, opt)  # all before ``start``: it follows the last
        if seen[frame].kind == "one" or len(mothers) < opt.min_mother_frames:  # (an integer >= 1)
            return None
        start = max(mothers) + 1
        if not (1 if final else opt.persist) <= frame - start + 1 <= opt.max_delay:
            return None
        run = [seen.get(f) for f in range(start, frame + 1)]
        if any(s is None for s in run):
            return None
        mother = seen[start - 1]
        if opt.mother_elongation is not None and mother.elongation > opt.mother_elongation:
            return None  # cells round up to divide
        if all(s.kind in ("two", "pair", "cut") for s in run) and (
                opt.split_rise is None or run[0].elongation >= opt.split_rise * mother.elongation):
            # two cells at a waist on some frame, or the mask grew, or stretched, as it split
            grew = run[0].area >= opt.min_growth * mother.area
            stretched = run[0].kind == "cut" or (opt.elongation_rise is not None
                                                 and run[0].elongation >= opt.elongation_rise * mother.elongation)
            if any(s.kind == "two" for s in run) or grew or stretched:
                earlier = self._back_dated(obj_id, start, run[0].masks)
                return earlier if earlier is not None else Division(obj_id, start, run[0].masks, "split")
        if run[0].kind == "sister" and all(s.area <= opt.area_drop[1] * mother.area for s in run):
            return Division(obj_id, start, run[0].masks, "halving")  # it stays halved
        return None

    def _back_dated(self, obj_id: int, start: int, masks) -> Division | None:
        """The split first seen on ``start`` dated to the frame before, when
        the one-cell mask there grew by ``back_date_growth`` over the frame
        before it (the daughters had begun to spread while SAM still gave one
        mask): its mask shared between the daughters ``masks`` seen on
        ``start``, each pixel to the nearer; None when not."""
        opt = self.options
        if opt.back_date_growth is None:
            return None
        seen = self._seen[obj_id]
        last, before = seen.get(start - 1), seen.get(start - 2)
        if last is None or before is None or before.kind != "one" or not before.area:
            return None
        if last.area < opt.back_date_growth * before.area:
            return None
        if len(_mother_frames(seen, start - 1, opt)) < opt.min_mother_frames:
            return None
        mask = np.asarray(self.session.labels[start - 1]) == obj_id
        nearer_first = ndimage.distance_transform_edt(~masks[0]) <= ndimage.distance_transform_edt(~masks[1])
        halves = (mask & nearer_first, mask & ~nearer_first)
        if not mask.any() or not _daughter_sized(halves, mask.sum(), opt):
            return None
        return Division(obj_id, start - 1, halves, "split")


def _one_cell_frames(seen: dict, frame: int) -> list[int]:
    """The frames before ``frame`` on which the object was seen as one cell."""
    return [f for f, s in seen.items() if f < frame and s.kind == "one" and s.area]


def _daughter_sized(halves, area: int, opt: DivisionOptions) -> bool:
    """Whether each of ``halves`` holds a daughter: ``min_daughter_area``
    pixels and a ``daughter_share`` of the mother's ``area``."""
    return all(h.sum() >= opt.min_daughter_area and opt.daughter_share[0] <= h.sum() / area
               <= opt.daughter_share[1] for h in halves)


def _mother_frames(seen: dict, frame: int, opt: DivisionOptions) -> list[int]:
    """The frames before ``frame`` that count as the mother's: one cell, or a
    mask as round as a mother (``mother_elongation``) that SAM's decodes cut
    in two side by side (kind "pair": a round cell cut across, not two cells)."""
    return [f for f, s in seen.items() if f < frame and s.area and (s.kind == "one" or (
        s.kind == "pair" and opt.mother_elongation is not None and s.elongation <= opt.mother_elongation))]


def _deepest(mask: np.ndarray) -> tuple[float, float]:
    d = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(d)), mask.shape)
    return float(y), float(x)


def _elongation(mask: np.ndarray) -> float:
    """Long over short axis of a mask (its pixel coordinates' spread)."""
    ys, xs = np.nonzero(mask)
    values = np.linalg.eigvalsh(np.cov(np.stack([ys, xs]).astype(np.float64)))
    return float(np.sqrt(values[-1] / values[0])) if values[0] > 0 else float("inf")


def _split_halves(mask: np.ndarray, opt: DivisionOptions, elongation: float):
    """The mask's two halves to test for a split (its two largest components,
    or the two sides of its short axis), or None for a mask that looks like
    one round cell."""
    comps, n = ndimage.label(mask)
    if n >= 2:
        areas = np.bincount(comps.ravel())[1:]
        order = np.argsort(areas)[::-1]
        if areas[order[1]] >= opt.min_daughter_area:
            return comps == order[0] + 1, comps == order[1] + 1
    if elongation < opt.min_elongation:
        return None
    ys, xs = np.nonzero(mask)
    coords = np.stack([ys, xs], axis=1).astype(np.float64)  # (P, 2)
    centre = coords.mean(axis=0)
    _values, vectors = np.linalg.eigh(np.cov(coords.T))
    side = (coords - centre) @ vectors[:, -1] > 0  # which side of the short axis
    halves = []
    for s in (True, False):
        half = np.zeros_like(mask)
        half[ys[side == s], xs[side == s]] = True
        halves.append(half & mask)
    return halves[0], halves[1]


def _pair_clicks(halves):
    """Two click sets: a deepest point of each half, the other's as a negative click."""
    a, b = _deepest(halves[0]), _deepest(halves[1])
    return [([a, b], [1, 0]), ([b, a], [1, 0])]


def _two_cells(mask, logits, scores, opt: DivisionOptions):
    """The mask's two cells from the two decodes or, where those do not
    separate, from its shape (``opt.split_neck``); None when it is one."""
    two = _decoded_cells(mask, logits, scores, opt)
    if two is None and opt.split_neck is not None:
        two = _shaped_cells(mask, opt)
    return two


def _shaped_cells(mask, opt: DivisionOptions):
    """Two cells at a neck of the mask's distance transform, each holding
    ``opt.daughter_share`` of it, or None."""
    pieces = split_mask(mask, opt.split_neck, opt.min_daughter_area)
    if len(pieces) != 2:
        return None
    area = mask.sum()
    if any(not opt.daughter_share[0] <= p.sum() / area <= opt.daughter_share[1] for p in pieces):
        return None
    return pieces[0], pieces[1]


def _decoded_cells(mask, logits, scores, opt: DivisionOptions):
    """The mask's two cells from SAM's two decodes, or None."""
    if (scores <= 0).any():
        return None
    a, b = logits[0] > 0, logits[1] > 0
    union = (a | b).sum()
    if not union or (a & b).sum() / union > opt.max_overlap:
        return None
    area = mask.sum()
    for m in (a, b):
        inside = (m & mask).sum()
        if not m.any() or inside / m.sum() < opt.min_inside:
            return None
        if not opt.daughter_share[0] <= inside / area <= opt.daughter_share[1]:
            return None
    first = mask & (logits[0] >= logits[1])  # the mother's pixels, to the daughter whose logit is higher
    second = mask & ~first
    small = min(first.sum(), second.sum())
    if small < opt.min_daughter_area:
        return None
    return first, second


def neck_ratio(first: np.ndarray, second: np.ndarray) -> float:
    """Length of the boundary between two touching masks relative to the
    diameter of the smaller one's area-equivalent disc (0 when apart): about
    0.4 at the waist of two overlapping discs, near 1 across an ellipse."""
    grown = ndimage.binary_dilation(second, structure=np.ones((3, 3), dtype=bool))
    contact = (first & grown).sum()
    diameter = 2 * np.sqrt(min(first.sum(), second.sum()) / np.pi)
    return float(contact / diameter) if diameter else 0.0


def _halving_clicks(mask, previous, labels, opt: DivisionOptions):
    """A click where the halved mask was the frame before and is no longer
    (nothing else there now), the kept half as a negative click; None when
    that part is too small to hold a cell."""
    if previous is None:
        return None
    left = previous & ~mask & (labels == 0)
    if left.sum() < opt.min_daughter_area:
        return None
    d = ndimage.distance_transform_edt(np.pad(left, 1))[1:-1, 1:-1]
    if d.max() < 2:
        return None  # a thin rim: the mask moved, it did not halve
    y, x = np.unravel_index(int(np.argmax(d)), left.shape)
    return ([(float(y), float(x)), _deepest(mask)], [1, 0])


def _sister(mask, labels, logits, score, opt: DivisionOptions):
    """The cell SAM finds beside a halved mask, or None."""
    if score <= 0:
        return None
    found = logits > 0
    if not found.any() or (found & mask).sum() / found.sum() > opt.max_overlap:
        return None
    sister = found & (labels == 0)
    if sister.sum() < opt.min_daughter_area or sister.sum() < opt.min_inside * found.sum():
        return None
    if not opt.sister_area[0] <= sister.sum() / mask.sum() <= opt.sister_area[1]:
        return None
    reach = int(np.ceil(opt.max_distance)) + 1
    if not (ndimage.binary_dilation(mask, iterations=reach) & sister).any():
        return None
    comps, n = ndimage.label(sister)
    if n > 1:  # the part that touches the kept half
        near = ndimage.binary_dilation(mask, iterations=reach)
        keep = np.unique(comps[near & sister])
        sister = np.isin(comps, keep[keep > 0])
    return sister
