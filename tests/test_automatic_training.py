"""The segment-everything training phase (training/automatic.py): what it
trains, what it leaves alone, and its point and scene draws."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_sam2 import load_model
from napari_sam2.model import PointPrompts
from napari_sam2.synthetic import make_timelapse, make_zstack
from napari_sam2.training.automatic import (
    AutoTrainConfig,
    automatic_loss,
    best_match_iou,
    distillation_loss,
    draw_frame,
    sample_points,
    trainable_parameters,
    widened_timelapse_params,
    widened_zstack_params,
)


def _click_outputs(model, image):
    """Single-mask logits, multimask logits, IoU, object score and pointer
    of one click, as clicking and tracking use them."""
    with torch.no_grad():
        feats = model.encode_image(image)
        pts = PointPrompts(torch.tensor([[[100.0, 120.0]]]), torch.ones(1, 1, dtype=torch.int32))
        head = model.track_step(feats, readout=None, points=pts, encode_memory=False).head
    return head


def test_phase_trains_only_the_multimask_heads_and_keeps_clicks_exact():
    model = load_model("demo", device="cpu", progress=False)
    model.eval()
    cfg = AutoTrainConfig(points_per_image=16, loss_size=64)
    rng = np.random.default_rng(3)
    frame = None
    while frame is None:
        frame = draw_frame(rng, cfg, model.image_size)
    before = _click_outputs(model, frame.image)
    params = trainable_parameters(model)
    trained = {id(p) for p in params}
    names = [n for n, p in model.named_parameters() if id(p) in trained]
    assert names and all(
        n.startswith("mask_decoder.output_hypernetworks_mlps.") and n.split(".")[2] in "123"
        or n.startswith("mask_decoder.iou_prediction_head.")
        for n in names
    ), names
    assert not any(p.requires_grad for p in model.parameters() if id(p) not in trained)
    old = [p.detach().clone() for p in params]
    opt = torch.optim.SGD(params, lr=1.0)
    for _ in range(2):
        xy, ids = sample_points(frame.labels, cfg.points_per_image, 0.5, rng)
        loss = automatic_loss(model, frame, xy, ids, cfg)
        assert torch.isfinite(loss.total) and loss.mask > 0 and loss.iou >= 0
        opt.zero_grad()
        loss.total.backward()
        opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(old, params))
    after = _click_outputs(model, frame.image)
    # clicking and tracking read the single-mask token, the object score and
    # the pointer: bit-identical
    assert torch.equal(before.low_res, after.low_res)
    assert torch.equal(before.object_score_logits, after.object_score_logits)
    assert torch.equal(before.obj_ptr, after.obj_ptr)
    # the multimask candidates are what changed
    assert not torch.equal(before.candidates, after.candidates)


def test_transformer_variant_trains_the_transformer_and_distils_what_clicks_read():
    import copy

    model = load_model("demo", device="cpu", progress=False).eval()
    teacher = copy.deepcopy(model).eval()
    cfg = AutoTrainConfig(points_per_image=16, loss_size=64, train_transformer=True, iou_target="best",
                          distill_objects=3)
    rng = np.random.default_rng(4)
    frame = None
    while frame is None or int(frame.labels.max()) == 0:
        frame = draw_frame(rng, cfg, model.image_size)
    params = trainable_parameters(model, transformer=True)
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(n.startswith("mask_decoder.transformer.") for n in names)
    assert "mask_decoder.iou_token.weight" in names and "mask_decoder.mask_tokens.weight" in names
    assert not any(n.startswith(("image_encoder.", "memory_attention.", "memory_encoder.", "obj_ptr_proj.",
                                 "mask_decoder.output_hypernetworks_mlps.0.", "mask_decoder.pred_obj_score_head."))
                   for n in names), sorted(names)

    def distill():
        with torch.no_grad():
            feats = model.encode_image(frame.image)
            pix = model.condition(feats.embedding, None)
            xy, _ = sample_points(frame.labels, 4, 1.0, np.random.default_rng(0))
            pts = PointPrompts((xy * (model.image_size / cfg.loss_size))[:, None, :], torch.ones(4, 1, dtype=torch.int32))
            sparse, dense = model.prompt_encoder(pts, None)
            return float(distillation_loss(model, teacher, feats, pix, sparse, dense, frame, cfg,
                                           np.random.default_rng(1)))

    assert distill() == 0.0  # the starting model is its own teacher
    old = [p.detach().clone() for p in params]
    opt = torch.optim.SGD(params, lr=0.05)
    for _ in range(2):
        xy, ids = sample_points(frame.labels, cfg.points_per_image, 0.5, rng)
        loss = automatic_loss(model, frame, xy, ids, cfg, teacher, rng)
        assert torch.isfinite(loss.total) and loss.total > loss.mask + loss.iou - 1e-6
        opt.zero_grad()
        loss.total.backward()
        opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(old, params))
    assert distill() > 0.0  # the transformer moved: what clicks read is now pulled back


def test_best_match_iou_scores_each_candidate_against_its_best_object():
    labels = torch.zeros(16, 16, dtype=torch.long)
    labels[0:4, 0:4] = 1  # 16 px
    labels[8:16, 8:16] = 2  # 64 px
    logits = -torch.ones(1, 3, 16, 16)
    logits[0, 0, 0:4, 0:2] = 1  # half of object 1: IoU 0.5
    logits[0, 1, 8:16, 8:16] = 1  # object 2 exactly
    logits[0, 2, 0, 15] = 1  # one stray pixel: too small to count
    iou, weight = best_match_iou(logits, labels)
    assert torch.allclose(iou, torch.tensor([[0.5, 1.0, 0.0]]))
    assert torch.equal(weight, torch.tensor([[1.0, 1.0, 0.0]]))


def test_sample_points_targets_and_inside_fraction():
    labels = torch.zeros(32, 32, dtype=torch.long)
    labels[4:10, 4:10] = 3
    labels[20:30, 15:25] = 7
    rng = np.random.default_rng(0)
    xy, ids = sample_points(labels, 40, 0.5, rng)
    assert xy.shape == (40, 2) and ids.shape == (40,)
    assert (xy >= 0).all() and (xy < 32).all()
    # the id under each point (x, y order; floor to the pixel)
    yx = xy.flip(-1).long()
    assert torch.equal(labels[yx[:, 0], yx[:, 1]], ids)
    assert (ids[:20] > 0).all()  # the first half is drawn inside objects
    _, ids_bg = sample_points(torch.zeros(8, 8, dtype=torch.long), 10, 0.5, rng)
    assert (ids_bg == 0).all()  # no object: every point anywhere


def test_widened_draws_make_small_dense_and_thin_scenes():
    rng = np.random.default_rng(5)
    dense = [widened_timelapse_params(rng) for _ in range(30)]
    assert all(p.n_frames == 1 for p in dense)
    assert any(p.n_cells >= 40 and p.radius * 256 / p.width <= 8 for p in dense)
    assert max(p.signal_spread for p in dense) > 0.6
    p = next(p for p in dense if p.n_cells >= 40)
    stack = make_timelapse(p, seed=1)
    assert len(np.unique(stack.labels)) - 1 >= 25  # many cells fit
    z = widened_zstack_params(rng)
    assert z.z_step >= 3.0 and z.n_slices <= 16
    assert make_zstack(z, seed=2).labels.any()


def test_config_checks():
    with pytest.raises(ValueError, match="points_per_image"):
        AutoTrainConfig(points_per_image=0)
    with pytest.raises(ValueError, match="iou_target"):
        AutoTrainConfig(iou_target="max")
    with pytest.raises(ValueError, match="eval_seeds"):
        AutoTrainConfig(eval_seeds=(10**12,))
