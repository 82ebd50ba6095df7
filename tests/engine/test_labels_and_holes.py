"""Label composition (overlaps by score, foreign labels kept, written ids
cleared first, dtype kept), logit upsampling, label-array checks and the
filling of small background holes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_sam2.engine.holes import FILL_LOGIT, fill_small_holes
from napari_sam2.engine.labels import (
    check_id_fits,
    check_labels_array,
    compose_frame,
    exclusive_logits,
    upsample_logits,
)

# ---------------------------------------------------------------- compose_frame


def _scene(dtype):
    old = np.zeros((6, 8), dtype)
    old[0, :] = 1  # object 1's old pixels (top row)
    old[5, :] = 2  # object 2's old pixels (bottom row)
    old[2, 0] = 7  # painted by hand
    old[3, 0] = 3  # an object not being written
    logits = torch.full((2, 6, 8), -5.0)
    logits[0, 1:4, :4] = 2.0  # object 1: rows 1-3, left half
    logits[1, 2:5, 2:] = 1.0  # object 2: rows 2-4, right part, overlaps object 1
    logits[1, 3, 2] = 3.0  # ...and wins this one overlapping pixel
    logits[0, 4, 6] = 0.0  # exactly 0 is not the object
    return old, logits


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64])
def test_compose_frame(dtype):
    old, logits = _scene(dtype)
    keep = old.copy()
    new = compose_frame(old, [1, 2], logits)
    assert new.dtype == dtype and new.shape == old.shape
    assert np.array_equal(old, keep)  # a new frame; the old one is untouched
    expected = np.zeros((6, 8), dtype)
    expected[1:4, :4] = 1
    expected[2:5, 2:] = 2
    expected[2:4, 2:4] = 1  # overlap: object 1 has the higher logit (2 > 1) ...
    expected[3, 2] = 2  # ... except where object 2's is higher
    expected[2, 0] = 7  # foreign values stay, even under an object's mask
    expected[3, 0] = 3
    assert np.array_equal(new, expected), new
    # the old top and bottom rows were the written objects' pixels: cleared
    assert not new[0].any() and not new[5].any()


def test_compose_frame_without_ids_or_positives():
    old, logits = _scene(np.int32)
    same = compose_frame(old, [], logits[:0])
    assert np.array_equal(same, old) and same is not old
    cleared = compose_frame(old, [1, 2], torch.full((2, 6, 8), -1.0))
    expected = old.copy()
    expected[np.isin(old, (1, 2))] = 0
    assert np.array_equal(cleared, expected)
    # writing only object 2 leaves object 1's pixels as they were
    only2 = compose_frame(old, [2], logits[1:])
    assert np.array_equal(only2 == 1, old == 1)
    assert (only2[2:5, 4:] == 2).all() and not (only2[5] == 2).any()


def test_compose_frame_large_ids_keep_their_value():
    old = np.zeros((2, 2), np.uint16)
    new = compose_frame(old, [65535, 300], torch.tensor([[[1.0, -1], [2, -1]], [[0.5, 3], [-1, -1]]]))
    assert new.tolist() == [[65535, 300], [65535, 0]]


# ---------------------------------------------------------------- upsample_logits


def test_upsample_logits_shape_and_orientation():
    low = torch.full((3, 1, 8, 8), -4.0)
    low[1, 0, :, :4] = 4.0  # left half of object 1
    up = upsample_logits(low, (30, 50))
    assert up.shape == (3, 30, 50) and up.dtype == torch.float32
    assert torch.allclose(up[0], torch.full((30, 50), -4.0))
    assert (up[1, :, :20] > 0).all() and (up[1, :, 30:] < 0).all()


def test_upsample_logits_at_the_same_size_is_the_identity():
    low = torch.randn(2, 1, 8, 8, dtype=torch.bfloat16)
    out = upsample_logits(low, (8, 8))
    assert out.shape == (2, 8, 8) and out.dtype == torch.float32
    assert torch.equal(out, low[:, 0].float())


# ---------------------------------------------------------------- label arrays


def test_check_labels_array():
    arr = np.zeros((3, 4, 5), np.uint16)
    assert check_labels_array(arr, (3, 4, 5)) is arr
    with pytest.raises(ValueError, match=r"shape \(3, 4, 5\) but the stack needs \(3, 5, 4\)"):
        check_labels_array(arr, (3, 5, 4))
    with pytest.raises(TypeError, match="integer dtype, got float64"):
        check_labels_array(np.zeros((3, 4, 5)), (3, 4, 5))
    with pytest.raises(TypeError, match="integer dtype, got bool"):
        check_labels_array(np.zeros((3, 4, 5), bool), (3, 4, 5))


@pytest.mark.parametrize("dtype, largest", [(np.uint8, 255), (np.int8, 127), (np.uint16, 65535), (np.int32, 2**31 - 1)])
def test_check_id_fits(dtype, largest):
    check_id_fits(largest, dtype)
    with pytest.raises(ValueError, match=rf"object id {largest + 1} does not fit .*max {largest}"):
        check_id_fits(largest + 1, dtype)


# ---------------------------------------------------------------- fill_small_holes


def _mask(rows: list[str]) -> torch.Tensor:
    """'#' object (logit 5), '.' background (a distinct negative logit per pixel)."""
    h, w = len(rows), len(rows[0])
    t = -(torch.arange(h * w, dtype=torch.float32).reshape(h, w) + 1.0)
    fg = torch.tensor([[c == "#" for c in r] for r in rows])
    return torch.where(fg, torch.full_like(t, 5.0), t)[None, None]


SCENE = [
    "..........",  # the border-connected background: large
    "..........",
    "#########.",
    "#..######.",  # a 2x2 hole (area 4)
    "#..######.",
    "#########.",
    "#...###.##",  # a 3x3 hole (area 9) on the left
    "#...###.##",  # a 3-pixel hole (area 3) on the right
    "#...###.##",
    "##########",
]


def test_small_holes_are_filled_and_larger_ones_stay():
    logits = _mask(SCENE)
    out = fill_small_holes(logits, 8)
    was_bg = logits <= 0
    filled = (out != logits)
    expected = torch.zeros_like(filled)
    expected[0, 0, 3:5, 1:3] = True  # area 4
    expected[0, 0, 6:9, 7] = True  # area 3
    assert torch.equal(filled, expected)
    assert (out[filled] == FILL_LOGIT).all()
    assert torch.equal(out[~filled], logits[~filled])  # everything else untouched
    assert (out[0, 0, 6:9, 1:4] < 0).all()  # area 9 > 8 stays background
    assert (out[0, 0, :2] < 0).all()  # the large border-connected background stays
    assert torch.equal(out > 0, (logits > 0) | expected) and was_bg.sum() > expected.sum()
    # with max_area 9 the 3x3 hole goes too; the border-connected background still stays
    expected[0, 0, 6:9, 1:4] = True
    assert torch.equal(fill_small_holes(logits, 9) != logits, expected)


def test_background_is_eight_connected():
    # two 2-pixel holes touching at a corner make one component of area 4
    rows = [
        "######",
        "#.####",
        "#.####",
        "##..##",
        "######",
    ]
    logits = _mask(rows)
    assert torch.equal(fill_small_holes(logits, 3), logits)
    filled = fill_small_holes(logits, 4)
    assert (filled > 0).all()


def test_a_small_background_piece_at_the_border_is_filled_too():
    # as in Meta's predictor: every small background component, border or not
    rows = [
        ".#####",
        "######",
        "######",
    ]
    out = fill_small_holes(_mask(rows), 8)
    assert out[0, 0, 0, 0] == FILL_LOGIT


def test_zero_logits_count_as_background():
    logits = torch.full((1, 1, 5, 5), 2.0)
    logits[0, 0, 2, 2] = 0.0
    out = fill_small_holes(logits, 1)
    assert out[0, 0, 2, 2] == FILL_LOGIT


def test_max_area_zero_is_a_no_op_and_full_or_empty_masks_are_unchanged():
    logits = _mask(SCENE)
    assert fill_small_holes(logits, 0) is logits
    assert fill_small_holes(logits, -3) is logits
    empty = torch.full((1, 1, 6, 6), -3.0)
    full = torch.full((1, 1, 6, 6), 3.0)
    assert torch.equal(fill_small_holes(empty, 100), empty)
    assert torch.equal(fill_small_holes(full, 100), full)


def test_each_object_of_a_batch_is_filled_on_its_own():
    a = _mask(SCENE)
    b = -_mask(SCENE)  # the complement: its "holes" are other places
    both = fill_small_holes(torch.cat([a, b, torch.full_like(a, -1.0)]), 8)
    assert torch.equal(both[0:1], fill_small_holes(a, 8))
    assert torch.equal(both[1:2], fill_small_holes(b, 8))
    assert torch.equal(both[2:3], torch.full_like(a, -1.0))


# ------------------------------------------------------------- exclusive_logits


def test_exclusive_logits_leave_each_pixel_to_its_strongest_object():
    logits = torch.tensor([[[[3.0, 1.0, -20.0, 4.0]]], [[[2.0, 5.0, -30.0, 4.0]]]])  # (2, 1, 1, 4)
    out = exclusive_logits(logits)
    # pixel 0: object 0 wins; 1: object 1; 2: object 0 (-20 > -30) keeps its
    # value, object 1 was already below -10; 3: a tie goes to the first
    assert out.tolist() == [[[[3.0, -10.0, -20.0, 4.0]]], [[[-10.0, 5.0, -30.0, -10.0]]]]
    # competitors that are not returned push pixels down too
    others = torch.tensor([[[[0.0, 9.0, 0.0, 0.0]]]])
    out = exclusive_logits(logits, others)
    assert out.shape == logits.shape
    assert out[:, 0, 0, 1].tolist() == [-10.0, -10.0]
    assert out[:, 0, 0, 2].tolist() == [-20.0, -30.0]  # pixel 2: the competitor wins
    # alone, an object keeps its logits
    assert torch.equal(exclusive_logits(logits[:1]), logits[:1])
