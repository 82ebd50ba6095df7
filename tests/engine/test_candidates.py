"""SAM's candidate masks after a click, and choosing one: the frame shows
it, propagation carries it, the next click refines it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_sam2 import load_model
from napari_sam2._sample_data import load_sample_array
from napari_sam2.engine import StackSession
from napari_sam2.engine.candidates import MaskCandidate
from napari_sam2.engine.labels import upsample_logits
from napari_sam2.training.evaluate import largest_lasting_clicks

from .conftest import blobs


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_candidates_are_ranked_and_the_multimask_pick_is_the_first(model):
    """Random weights, SAM 2.1 config: a first click decodes three masks and
    shows the best-ranked one."""
    session = StackSession(model, blobs(n=2))
    with pytest.raises(KeyError, match="no object with id 1"):
        session.mask_candidates(1, 0)
    session.add_points(1, 0, [(14, 17)], [1])
    candidates = session.mask_candidates(1, 0)  # decodes the click itself
    assert len(candidates) == 3 and all(isinstance(c, MaskCandidate) for c in candidates)
    ious = [c.predicted_iou for c in candidates]
    assert ious == sorted(ious, reverse=True)
    assert all(c.mask.shape == (40, 56) and c.mask.dtype == bool for c in candidates)
    labels = session.segment_frame(0)
    np.testing.assert_array_equal(labels == 1, candidates[0].mask)
    assert session.chosen_candidate(1, 0) is None
    k = int(np.argmax([(c.mask != candidates[0].mask).sum() for c in candidates]))
    assert k > 0
    np.testing.assert_array_equal(session.choose_candidate(1, 0, k) == 1, candidates[k].mask)
    assert session.chosen_candidate(1, 0) == k


def test_heads_give_the_multimask_tokens_as_candidates_in_both_modes(model):
    from napari_sam2.model import PointPrompts

    torch.manual_seed(1)
    s = model.image_size
    with torch.inference_mode():
        feats = model.encode_image(torch.randn(1, 3, s, s))
        emb = model.condition(feats.embedding, None)
        points = PointPrompts(torch.tensor([[[40.0, 50.0]]]), torch.tensor([[1]], dtype=torch.int32))
        multi = model.run_heads(emb, feats.high_res, points=points, multimask=True)
        single = model.run_heads(emb, feats.high_res, points=points, multimask=False)
    assert multi.candidates.shape == (1, 3, s // 4, s // 4) and multi.candidate_ptrs.shape == (1, 3, model.hidden_dim)
    torch.testing.assert_close(single.candidates, multi.candidates)
    torch.testing.assert_close(single.candidate_ious, multi.candidate_ious)
    torch.testing.assert_close(multi.candidates, multi.multimask_logits)
    best = int(multi.ious[0].argmax())
    torch.testing.assert_close(multi.candidate_ptrs[:, best], multi.obj_ptr)  # the pointer SAM 2 takes


@pytest.fixture(scope="module")
def demo():
    return load_model("demo", device="cpu")


@pytest.fixture(scope="module")
def sample():
    image = load_sample_array("cells_timelapse.tif")[:3]
    truth = load_sample_array("cells_timelapse_labels.tif")[:3]
    obj_id, yx = largest_lasting_clicks(truth, 1)[0]
    return image, obj_id, yx


def _clicked(model, sample):
    image, obj_id, yx = sample
    session = StackSession(model, image)
    session.add_points(obj_id, 0, [yx], [1])
    return session, obj_id, session.segment_frame(0) == obj_id


def test_demo_model_candidates_come_from_its_multimask_tokens(demo, sample):
    session, obj_id, own = _clicked(demo, sample)
    candidates = session.mask_candidates(obj_id, 0)
    assert len(candidates) == 3
    sizes = [int(c.mask.sum()) for c in candidates]
    assert len(set(sizes)) == 3 and min(sizes) > 50  # three different masks, none empty
    # the demo decodes its single-mask token: the shown mask is none of them
    assert all(not np.array_equal(c.mask, own) for c in candidates)


def test_chosen_candidate_is_shown_propagated_and_refined(demo, sample, monkeypatch):
    session, obj_id, own = _clicked(demo, sample)
    candidates = session.mask_candidates(obj_id, 0)
    k = int(np.argmin([_iou(c.mask, own) for c in candidates]))  # the most different one
    chosen = candidates[k].mask
    assert _iou(chosen, own) < 0.7
    labels = session.choose_candidate(obj_id, 0, k)
    np.testing.assert_array_equal(labels == obj_id, chosen)
    np.testing.assert_array_equal(session.labels[0] == obj_id, chosen)

    # propagation starts from the chosen mask: its memory, and frame 1 follows it
    for _ in session.propagate("forward"):
        pass
    np.testing.assert_array_equal(session.labels[0] == obj_id, chosen)
    next_frame = session.labels[1] == obj_id
    entry = session._bank.cond_entry(obj_id, 0)  # noqa: SLF001 - the memory frame 1 read
    np.testing.assert_array_equal(upsample_logits(entry.logits, chosen.shape)[0].numpy() > 0, chosen)
    plain, _, _ = _clicked(demo, sample)
    for _ in plain.propagate("forward"):
        pass
    plain_next = plain.labels[1] == obj_id
    print(f"\nframe 1: {next_frame.sum()} px from candidate {k} ({chosen.sum()} px), "
          f"{plain_next.sum()} px from the model's own mask ({own.sum()} px); IoU with the chosen mask "
          f"{_iou(next_frame, chosen):.3f} vs {_iou(plain_next, chosen):.3f}, with each other {_iou(plain_next, next_frame):.3f}")
    # frame 1 read the chosen mask's memory: it is nearer the chosen mask
    # than frame 1 tracked from the model's own mask is, and differs from it
    # (how far it follows a part of a cell, rather than growing back to the
    # whole cell, is the model's business)
    assert _iou(next_frame, chosen) > _iou(plain_next, chosen) + 0.05
    assert abs(int(next_frame.sum()) - int(chosen.sum())) < abs(int(plain_next.sum()) - int(chosen.sum()))
    assert _iou(plain_next, next_frame) < 0.95

    # the next click is decoded with the chosen mask as the previous mask
    seen = []
    track_step = demo.track_step

    def spy(*args, **kwargs):
        seen.append(kwargs.get("prev_logits"))
        return track_step(*args, **kwargs)

    monkeypatch.setattr(demo, "track_step", spy)
    image, _, (y, x) = sample
    session.add_points(obj_id, 0, [(y + 2, x)], [1])
    session.segment_frame(0)
    monkeypatch.undo()
    assert len(seen) == 1 and seen[0] is not None
    shown = torch.nn.functional.interpolate(seen[0].float(), size=chosen.shape, mode="bilinear", align_corners=False)
    np.testing.assert_array_equal(shown[0, 0].numpy() > 0, chosen)
    assert session.chosen_candidate(obj_id, 0) is None  # new prompts: the choice is gone


def test_back_to_the_models_pick_and_the_choice_survives_a_range_change(demo, sample):
    session, obj_id, own = _clicked(demo, sample)
    candidates = session.mask_candidates(obj_id, 0)
    session.choose_candidate(obj_id, 0, 2)
    np.testing.assert_array_equal(session.choose_candidate(obj_id, 0, None) == obj_id, own)
    assert session.chosen_candidate(obj_id, 0) is None
    session.choose_candidate(obj_id, 0, 1)
    lo, hi = session.intensity_range
    session.set_intensity_range((lo, hi * 1.05))
    assert session.chosen_candidate(obj_id, 0) == 1
    again = session.mask_candidates(obj_id, 0)  # decoded again under the new range
    np.testing.assert_array_equal(session.segment_frame(0) == obj_id, again[1].mask)
    assert _iou(again[1].mask, candidates[1].mask) > 0.8


def test_no_candidates_without_clicks_and_bad_choices(demo, sample):
    session, obj_id, own = _clicked(demo, sample)
    assert session.mask_candidates(obj_id, 1) == []  # no prompts on frame 1
    with pytest.raises(ValueError, match="no candidates on frame 1"):
        session.choose_candidate(obj_id, 1, 0)
    with pytest.raises(IndexError, match="candidate 3 is out of range"):
        session.choose_candidate(obj_id, 0, 3)
    with pytest.raises(TypeError, match="integer or None"):
        session.choose_candidate(obj_id, 0, "1")
    with pytest.raises(KeyError, match="no object with id 99"):
        session.mask_candidates(99, 0)
    session.add_mask(obj_id, 0, own)  # a mask prompt has no candidates
    assert session.mask_candidates(obj_id, 0) == []
    assert session.chosen_candidate(obj_id, 0) is None
