"""Our network equals Meta's on the same random weights (float32, CPU).

Covers the image encoder (every level and its position encoding), the heads
for points, boxes, points + box and mask prompts with multimask on and off,
mask-as-output, one memory-encoder and one memory-attention step, for all
eight published configs at a reduced size and tiny also at 1024.
"""

from __future__ import annotations

import pytest
import torch

from napari_sam2.model import PointPrompts, read_memory
from napari_sam2.model.sam2 import FrameFeatures

from .conftest import build_pair

# mask-logit tolerance of the issue; features are compared a bit tighter
MASK_TOL = 1e-4
FEAT_TOL = 1e-4

CASES = [
    ("sam2_hiera_tiny", 256),
    ("sam2_hiera_small", 256),
    ("sam2_hiera_base_plus", 256),
    ("sam2_hiera_large", 256),
    ("sam2.1_hiera_tiny", 256),
    ("sam2.1_hiera_small", 256),
    ("sam2.1_hiera_base_plus", 256),
    ("sam2.1_hiera_large", 256),
    ("sam2.1_hiera_tiny", 1024),
]

GAPS: dict[str, float] = {}


def gap(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a.float() - b.float()).abs().max().item()


def record(name: str, value: float) -> float:
    GAPS[name] = max(GAPS.get(name, 0.0), value)
    return value


def _seq_first(x: torch.Tensor) -> torch.Tensor:
    """B x C x H x W -> HW x B x C, the reference's layout."""
    return x.flatten(2).permute(2, 0, 1)


def _prompt_sets(size: int, gen: torch.Generator):
    def pts(n, labels):
        c = torch.rand(1, n, 2, generator=gen) * (size - 1)
        return c, torch.tensor([labels], dtype=torch.int32)

    one = pts(1, [1])
    several = pts(4, [1, 0, 1, 0])
    box = (torch.tensor([[[0.2 * size, 0.3 * size], [0.7 * size, 0.8 * size]]]),
           torch.tensor([[2, 3]], dtype=torch.int32))
    box_pts = (torch.cat([box[0], several[0][:, :2]], 1), torch.cat([box[1], several[1][:, :2]], 1))
    return {"one point": one, "points": several, "box": box, "box+points": box_pts}


@pytest.mark.reference
@pytest.mark.parametrize("name,size", CASES, ids=[f"{n}@{s}" for n, s in CASES])
def test_network_equals_reference(name, size):
    ours, ref = build_pair(name, size, seed=hash(name) % 1000)
    gen = torch.Generator().manual_seed(1)
    image = torch.randn(2, 3, size, size, generator=gen)

    # image encoder: every level of the neck and its position encoding
    ref_out = ref.image_encoder(image)
    our_out = ours.image_encoder(image)
    assert len(our_out.levels) == len(ref_out["backbone_fpn"]) == 3
    for a, b in zip(our_out.levels, ref_out["backbone_fpn"]):
        assert record("encoder levels", gap(a, b)) <= FEAT_TOL
    for a, b in zip(our_out.pos, ref_out["vision_pos_enc"]):
        assert gap(a, b) <= 1e-6
    ref_bb = ref.forward_image(image)
    feats = ours.encode_image(image)
    assert record("encoder levels", gap(feats.embedding, ref_bb["backbone_fpn"][2])) <= FEAT_TOL
    for a, b in zip(feats.high_res, ref_bb["backbone_fpn"][:2]):
        assert record("encoder levels", gap(a, b)) <= FEAT_TOL
    assert gap(ours.image_pos(2), ref_bb["vision_pos_enc"][2]) <= 1e-6

    # heads on one frame, fed the same features so the heads alone are compared
    f1 = FrameFeatures(ref_bb["backbone_fpn"][2][:1], tuple(x[:1] for x in ref_bb["backbone_fpn"][:2]))
    s4 = size // 4
    mask_logits = torch.randn(1, 1, s4, s4, generator=gen) * 4
    for label, (coords, labels) in _prompt_sets(size, gen).items():
        for multimask in (True, False):
            for with_mask in (False, True):
                mask_in = mask_logits if with_mask else None
                r = ref._forward_sam_heads(
                    backbone_features=f1.embedding,
                    point_inputs={"point_coords": coords, "point_labels": labels},
                    mask_inputs=mask_in,
                    high_res_features=list(f1.high_res),
                    multimask_output=multimask,
                )
                o = ours.run_heads(
                    f1.embedding, f1.high_res, points=PointPrompts(coords, labels),
                    mask_input=mask_in, multimask=multimask,
                )
                ctx = f"{label} multimask={multimask} mask={with_mask}"
                assert record("mask logits", gap(o.multimask_logits, r[0])) <= MASK_TOL, ctx
                assert record("mask logits", gap(o.low_res, r[3])) <= MASK_TOL, ctx
                assert record("mask logits", gap(o.high_res, r[4])) <= MASK_TOL, ctx
                assert record("iou", gap(o.ious, r[2])) <= 1e-5, ctx
                assert record("object score", gap(o.object_score_logits, r[6])) <= 1e-4, ctx
                assert record("object pointer", gap(o.obj_ptr, r[5])) <= 1e-4, ctx
                assert (o.object_score_logits > 0).all(), "random weights must keep objects present"
                fg = (o.low_res > 0).float().mean().item()
                assert 0.01 < fg < 0.99, f"trivial mask ({fg:.3f} foreground) for {ctx}"
    # a mask prompt at the input resolution goes through the antialiased resize
    big_mask = (torch.rand(1, 1, size, size, generator=gen) > 0.5).float()
    r = ref._forward_sam_heads(f1.embedding, mask_inputs=big_mask, high_res_features=list(f1.high_res))
    o = ours.run_heads(f1.embedding, f1.high_res, mask_input=big_mask)
    assert record("mask logits", gap(o.low_res, r[3])) <= MASK_TOL

    # an object scored absent: every mask becomes the no-object logit and the
    # pointer the learned no-object pointer
    for model in (ours, ref):
        head = model.mask_decoder if model is ours else model.sam_mask_decoder
        head.pred_obj_score_head.layers[2].bias.sub_(4.0)
    coords, labels = _prompt_sets(size, gen)["one point"]
    r = ref._forward_sam_heads(f1.embedding, point_inputs={"point_coords": coords, "point_labels": labels},
                               high_res_features=list(f1.high_res), multimask_output=True)
    o = ours.run_heads(f1.embedding, f1.high_res, points=PointPrompts(coords, labels), multimask=True)
    assert (o.object_score_logits < 0).all()
    assert (o.low_res == -1024.0).all()
    assert record("object pointer", gap(o.obj_ptr, r[5])) <= 1e-4
    assert gap(o.low_res, r[3]) == 0.0
    for model in (ours, ref):
        head = model.mask_decoder if model is ours else model.sam_mask_decoder
        head.pred_obj_score_head.layers[2].bias.add_(4.0)

    # mask used as output (mask prompts on a frame)
    r = ref._use_mask_as_output(f1.embedding, list(f1.high_res), big_mask)
    o = ours.mask_as_output(f1, big_mask)
    for a, b in zip((o.low_res, o.high_res, o.obj_ptr, o.object_score_logits), (r[3], r[4], r[5], r[6])):
        assert record("mask logits", gap(a, b)) <= MASK_TOL

    # memory encoder, both for clicked (binarised) and tracked (sigmoid) masks
    high_res_masks = torch.randn(2, 1, size, size, generator=gen) * 8
    scores = torch.tensor([[3.0], [-2.0]])  # one present, one absent object
    for from_points in (True, False):
        r_feats, r_pos = ref._encode_new_memory(
            [_seq_first(ref_bb["backbone_fpn"][2])], [(size // 16, size // 16)],
            high_res_masks, scores, is_mask_from_pts=from_points,
        )
        o_feats = ours.encode_memory(feats.embedding, high_res_masks, scores, from_points=from_points)
        assert record("memory encoder", gap(o_feats, r_feats)) <= FEAT_TOL
        assert gap(ours.memory_pos(), r_pos[0][:1]) <= 1e-6

    # one memory-attention step: 2 conditioning frames, 6 recent frames, 16 pointers
    num_frames, frame = 40, 20
    mem_shape = (2, ours.mem_dim, size // 16, size // 16)
    cond, recent = {}, {}

    class Entry:
        def __init__(self, features, obj_ptr):
            self.features, self.obj_ptr = features, obj_ptr

    def ref_entry(e):
        return {"maskmem_features": e.features, "maskmem_pos_enc": [r_pos[0]], "obj_ptr": e.obj_ptr}

    for t in (3, 30):
        cond[t] = Entry(torch.randn(mem_shape, generator=gen), torch.randn(2, 256, generator=gen))
    for t in range(frame - 16, frame + 17):
        if t not in cond:
            recent[t] = Entry(torch.randn(mem_shape, generator=gen), torch.randn(2, 256, generator=gen))
    ref_pos = [_seq_first(ref_bb["vision_pos_enc"][2])]
    for reverse in (False, True):
        ref_cond = ref._prepare_memory_conditioned_features(
            frame_idx=frame,
            is_init_cond_frame=False,
            current_vision_feats=[_seq_first(ref_bb["backbone_fpn"][2])],
            current_vision_pos_embeds=ref_pos,
            feat_sizes=[(size // 16, size // 16)],
            output_dict={
                "cond_frame_outputs": {t: ref_entry(e) for t, e in cond.items()},
                "non_cond_frame_outputs": {t: ref_entry(e) for t, e in recent.items()},
            },
            num_frames=num_frames,
            track_in_reverse=reverse,
        )
        readout = read_memory(frame, cond, recent, config=ours.config.tracking,
                              num_frames=num_frames, reverse=reverse)
        assert len(readout.spatial) == 2 + 6
        # one past conditioning frame + 15 recent; backwards, frame 30 is a
        # conditioning frame inside the 15-frame window and counts only once
        assert len(readout.pointers) == (15 if reverse else 16)
        our_cond = ours.condition(feats.embedding, readout)
        assert record("memory attention", gap(our_cond, ref_cond)) <= FEAT_TOL
    # the initial frame only adds the no-memory embedding
    ref_init = ref._prepare_memory_conditioned_features(
        frame_idx=0, is_init_cond_frame=True,
        current_vision_feats=[_seq_first(ref_bb["backbone_fpn"][2])],
        current_vision_pos_embeds=ref_pos, feat_sizes=[(size // 16, size // 16)],
        output_dict={"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}, num_frames=num_frames,
    )
    assert gap(ours.condition(feats.embedding, None), ref_init) <= FEAT_TOL


def test_report_gaps(capsys):
    """Print the largest gaps seen (run with -s, after the equality tests)."""
    if GAPS:
        with capsys.disabled():
            print("\nlargest gaps vs reference: " + ", ".join(f"{k}={v:.2e}" for k, v in sorted(GAPS.items())))
