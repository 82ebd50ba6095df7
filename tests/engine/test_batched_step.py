"""One batched step per frame for every object, whatever memories each reads.

Objects with other conditioning frames, shorter histories or fewer object
pointers are padded to a common memory length and masked in memory
attention; the result equals running each object alone (within 1e-5,
float32 on the CPU): at the model (memory attention, heads, memory encoder)
and through a whole session (logits, object scores, pointers, memories).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from napari_sam2 import StackSession
from napari_sam2.engine.memory import stack_readouts
from napari_sam2.model import FrameFeatures, read_memory
from napari_sam2.model.memory_tokens import assemble_memory, one_frame
from napari_sam2.model.sam2 import HeadOutput, StepOutput

from .conftest import IMAGE_SIZE, blobs, make_model

TOL = 1e-5
S = IMAGE_SIZE // 16


def _entry(gen, mem_dim=64, dim=256):
    return SimpleNamespace(
        features=torch.randn(1, mem_dim, S, S, generator=gen),
        obj_ptr=torch.randn(1, dim, generator=gen),
    )


def _readouts(model, gen):
    """Readouts of four objects on frame 9 of 20 that differ in what they
    read: conditioning frames before and after, 0..6 recent memories, 1..16
    pointers, one object with no pointer at all (its only prompt is ahead)."""
    cfg = model.config.tracking
    layouts = [
        ({0: 1}, range(1, 9)),  # a full history behind frame 9
        ({4: 1, 12: 1}, range(7, 9)),  # two conditioning frames, short history
        ({8: 1}, ()),  # prompted just before, nothing tracked yet
        ({15: 1}, ()),  # prompted after frame 9 only: no past pointer
    ]
    out = []
    for cond_frames, recent_frames in layouts:
        cond = {t: _entry(gen) for t in cond_frames}
        recent = {t: _entry(gen) for t in recent_frames}
        out.append(read_memory(9, cond, recent, config=cfg, num_frames=20, reverse=False))
    spatial = [len(r.spatial) for r in out]
    pointers = [len(r.pointers) for r in out]
    assert len(set(spatial)) > 2 and len(set(pointers)) > 2 and min(pointers) == 0, (spatial, pointers)
    return out


@pytest.fixture(scope="module")
def setup():
    model = make_model(seed=3)
    gen = torch.Generator().manual_seed(0)
    feats = model.encode_image(torch.randn(1, 3, IMAGE_SIZE, IMAGE_SIZE, generator=gen))
    return model, feats, _readouts(model, gen)


def _gap(a, b):
    return (a.float() - b.float()).abs().max().item()


def test_padded_memory_masks_exactly_the_missing_slots(setup):
    model, _, readouts = setup
    mem = assemble_memory(
        readouts,
        grid_pos=model.memory_pos().flatten(2).transpose(1, 2)[0],
        slot_pos=model.maskmem_tpos_enc.flatten(1),
        pointer_pos=model._pointer_pos,
        dtype=torch.float32,
    )
    hw, split = S * S, model.hidden_dim // model.mem_dim
    m_max = max(len(r.spatial) for r in readouts)
    assert mem.num_ptr_tokens == max(len(r.pointers) for r in readouts) * split
    assert mem.tokens.shape == (len(readouts), m_max * hw + mem.num_ptr_tokens, model.mem_dim)
    for i, r in enumerate(readouts):
        valid = mem.mask[i]
        assert valid[: len(r.spatial) * hw].all() and not valid[len(r.spatial) * hw : m_max * hw].any()
        ptr = valid[m_max * hw :]
        assert ptr[: len(r.pointers) * split].all() and not ptr[len(r.pointers) * split :].any()
        # padding holds zeros; the first memory grid is the object's own
        assert not mem.tokens[i][~valid].any()
        first = r.spatial[0][1].flatten(2).transpose(1, 2)[0]
        assert torch.equal(mem.tokens[i, :hw], first)
    # equal readouts need no mask
    same = assemble_memory(
        [readouts[0], readouts[0]],
        grid_pos=model.memory_pos().flatten(2).transpose(1, 2)[0],
        slot_pos=model.maskmem_tpos_enc.flatten(1),
        pointer_pos=model._pointer_pos,
        dtype=torch.float32,
    )
    assert same.mask is None


@pytest.mark.parametrize("per_chunk", [None, 1, 3, 100], ids=["default", "one", "three", "all"])
def test_memory_attention_of_different_memories_batched_equals_one_at_a_time(setup, monkeypatch, per_chunk):
    """Whatever number of objects go through memory attention at once (padded
    groups of similar length), the result is each object's alone."""
    model, feats, readouts = setup
    monkeypatch.setattr(model, "objects_per_chunk", per_chunk)
    with torch.inference_mode():
        expanded = feats.embedding.expand(len(readouts), -1, -1, -1)
        assert one_frame(expanded) is not None and one_frame(feats.embedding) is None
        batched = model.condition(expanded, readouts)
        alone = torch.cat([model.condition(feats.embedding, r) for r in readouts])
        # also without the shared first self-attention (a copied batch)
        copied = model.condition(expanded.contiguous(), readouts)
        # readouts of several objects each (stacked, the same frames)
        pairs = [stack_readouts([r, r]) for r in readouts[:2]]
        doubled = model.condition(feats.embedding.expand(4, -1, -1, -1), pairs)
    assert _gap(batched, alone) <= TOL
    assert _gap(copied, alone) <= TOL
    assert _gap(doubled, alone[[0, 0, 1, 1]]) <= TOL
    # the objects really differ, so the comparison is not trivial
    assert _gap(alone[0], alone[1]) > 1e-2
    with pytest.raises(ValueError, match="readouts hold 4 objects, the features 3"):
        model.condition(feats.embedding.expand(3, -1, -1, -1), readouts)


def test_track_step_of_different_memories_batched_equals_one_at_a_time(setup):
    model, feats, readouts = setup
    readouts = readouts + readouts[:2]  # 6 objects: on the CPU the heads run 4 + 2
    with torch.inference_mode():
        batched = model.track_step(feats.expand(len(readouts)), readout=readouts)
        alone = [model.track_step(feats, readout=r) for r in readouts]
    for name in HeadOutput._fields:
        ours = getattr(batched.head, name)
        theirs = torch.cat([getattr(a.head, name) for a in alone])
        assert _gap(ours, theirs) <= TOL, name
    assert _gap(batched.memory, torch.cat([a.memory for a in alone])) <= TOL
    scores = batched.head.object_score_logits
    assert (scores > 0).any(), "every object absent: the masks would be trivial"


def _per_object(step, features, readouts, **kw) -> StepOutput:
    """Each readout's object alone through ``step``, the outputs stacked."""
    one = FrameFeatures(
        features.embedding[:1],
        None if features.high_res is None else tuple(x[:1] for x in features.high_res),
    )
    outs = [step(one, readout=r, **kw) for r in readouts]
    head = HeadOutput(*(torch.cat([getattr(o.head, n) for o in outs]) for n in HeadOutput._fields))
    memory = None if outs[0].memory is None else torch.cat([o.memory for o in outs])
    return StepOutput(head, memory)


def _record_steps(model, monkeypatch, *, per_object: bool):
    """Wrap ``model.track_step`` to record the batch of every tracking call,
    its outputs and the largest gap to the per-object path on the same
    inputs; with ``per_object`` the session goes on with the per-object
    outputs instead of the batched ones."""
    step = model.track_step
    record = SimpleNamespace(batches=[], outputs=[], gaps=[])

    def wrapper(features, *, readout, **kw):
        if not isinstance(readout, list):  # decoding a prompt
            return step(features, readout=readout, **kw)
        record.batches.append(features.embedding.shape[0])
        batched = step(features, readout=readout, **kw)
        alone = _per_object(step, features, readout, **kw)
        gaps = {n: _gap(getattr(batched.head, n), getattr(alone.head, n)) for n in HeadOutput._fields}
        assert (batched.memory is None) == (alone.memory is None)
        if batched.memory is not None:
            gaps["memory"] = _gap(batched.memory, alone.memory)
        record.gaps.append(gaps)
        out = alone if per_object else batched
        record.outputs.append(out)
        return out

    monkeypatch.setattr(model, "track_step", wrapper)
    return record


# objects first prompted on frames 2, 3 and 5: on every frame they read
# different conditioning frames and histories of different lengths
PROMPTS = [(1, 2, [[17, 19]]), (2, 3, [[31, 45]]), (3, 5, [[10, 50]]), (4, 5, [[40, 12]])]
# "both": forward 2..7, then backward 2..0; objects conditioned on a frame
# are not tracked there
BATCHES = [3, 3, 4, 2, 4, 4] + [3, 4, 4]


def _run(model, data):
    s = StackSession(model, data)
    for obj_id, frame, yx in PROMPTS:
        s.add_points(obj_id, frame, yx, [1])
    results = [(r.frame, r) for r in s.propagate_results("both")]
    return results, s._bank


@pytest.mark.parametrize("exclusive", [False, True], ids=["plain", "exclusive-memories"])
def test_session_steps_of_objects_on_different_frames_equal_per_object(monkeypatch, exclusive):
    """Every step of a session (four objects prompted on three frames, both
    directions): one batched call per frame, equal to the objects one at a
    time on the same inputs (with exclusive memories the memory is encoded
    after the step, from all objects' masks; see the next test)."""
    model = make_model(seed=5, tracking={"non_overlap_masks_for_mem_enc": exclusive})
    data = blobs(n=8, h=48, w=64, seed=2)
    steps = _record_steps(model, monkeypatch, per_object=False)
    results, _ = _run(model, data)
    assert steps.batches == BATCHES
    assert [f for f, _ in results] == [2, 3, 4, 5, 6, 7, 2, 1, 0]
    for i, gaps in enumerate(steps.gaps):
        assert ("memory" in gaps) != exclusive
        assert max(gaps.values()) <= TOL, (i, gaps)
    # several objects own pixels on most frames: the comparison is not trivial
    owners = [len(set(np.unique(r.labels)) - {0}) for _, r in results]
    assert sum(n >= 2 for n in owners) >= len(owners) // 2, owners


def test_session_of_objects_on_different_frames_batched_equals_per_object(monkeypatch):
    """Whole runs, batched against one object at a time: the same results on
    every frame and the same bank (pointers, scores, logits; memories up to
    their bfloat16 rounding)."""
    model = make_model(seed=5)
    data = blobs(n=8, h=48, w=64, seed=2)
    with monkeypatch.context() as patch:
        _record_steps(model, patch, per_object=False)
        batched, bank_b = _run(model, data)
    with monkeypatch.context() as patch:
        _record_steps(model, patch, per_object=True)
        alone, bank_a = _run(model, data)
    for (f, r), (_, a) in zip(batched, alone):
        assert r.object_ids == a.object_ids
        assert _gap(r.logits, a.logits) <= TOL, f
        # labels equal except where two logits (or a logit and 0) tie within the tolerance
        top = torch.topk(torch.cat([r.logits, torch.zeros_like(r.logits[:1])]), 2, dim=0).values
        tie = ((top[0] - top[1]) < 10 * TOL).numpy()
        differ = r.labels != a.labels
        assert not (differ & ~tie).any() and differ.mean() < 0.01, f
    keys = [(o, f) for o in bank_b._history for f in bank_b._history[o]]
    assert len(keys) == sum(BATCHES) - 3  # frame 2 backward overwrote its forward entries
    for o, f in keys:
        e, a = bank_b._history[o][f], bank_a._history[o][f]
        assert _gap(e.obj_ptr, a.obj_ptr) <= TOL and _gap(e.object_score, a.object_score) <= TOL
        assert _gap(e.logits, a.logits) <= TOL
        ulp = 2.0**-7 * a.features.float().abs() + TOL
        assert ((e.features.float() - a.features.float()).abs() <= ulp).all(), (o, f)
