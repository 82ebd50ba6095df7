"""The demo model's training code: losses reach the parts they should, the
tracking-phase initialisation does what its docstring says, and a short run
writes its checkpoint and log (with the costly evaluation replaced)."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from napari_sam2.config import load_config
from napari_sam2.model import build_model
from napari_sam2.training import loop
from napari_sam2.training.data import sample_sequence
from napari_sam2.training.evaluate import Quality

SIZE = 128  # the demo config at a smaller input, for speed


def small_model():
    torch.manual_seed(0)
    return build_model(load_config("demo", image_size=SIZE))


def batch(n=2, frames=2, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        seq = sample_sequence(rng, image_size=SIZE, num_frames=frames, max_objects=2, zstack_fraction=0.5)
        if seq is not None:
            out.append(seq)
    return out, rng


# a run small enough for a test: one tiny sequence per step, no pool refresh
TINY_RUN = dict(batch_size=1, num_frames=2, max_objects=2, pool_size=2, refresh_per_step=0, warmup=1, loss_size=64)


def short_run(out, monkeypatch, evaluate=None, zstack_seeds=None, **settings):
    """Train the demo config at ``SIZE`` with ``TINY_RUN`` plus ``settings``
    into ``out``; ``evaluate`` replaces the costly evaluation (default: all
    zero), and each evaluation's z-stack seeds go into the list
    ``zstack_seeds`` if given. Returns the TrainConfig and the path ``train``
    returned."""
    evaluate = evaluate or (lambda model: Quality(0.0, 0.0, 0.0, {}))

    def stand_in(model, zstack_seeds=(), options=None):
        if asked is not None:
            asked.append(list(zstack_seeds))
        return evaluate(model)

    asked = zstack_seeds
    monkeypatch.setattr(loop, "evaluate", stand_in)
    monkeypatch.setattr(loop, "load_config", lambda name, **kw: load_config(name, **{"image_size": SIZE, **kw}))
    cfg = loop.TrainConfig(**{**TINY_RUN, **settings})
    return cfg, loop.train(cfg, out, log=lambda line: None)


def start_checkpoint(tmp_path):
    """``small_model()`` saved as a checkpoint: (the model, its path)."""
    from napari_sam2.checkpoints import save_checkpoint

    start = small_model()
    return start, save_checkpoint(start, tmp_path / "start.pt")


@pytest.mark.parametrize("freeze", [False, True])
def test_sequence_loss_trains_the_parts_it_should(freeze):
    model = small_model().train()
    cfg = loop.TrainConfig(num_frames=2, freeze_image_encoder=freeze, loss_size=64)
    seqs, rng = batch()
    for p in model.image_encoder.parameters():
        p.requires_grad_(not freeze)
    loss, parts = loop.sequence_loss(model, seqs, cfg, rng)
    assert torch.isfinite(loss) and set(parts) >= {"focal", "dice", "iou", "score"}
    loss.backward()
    grads = lambda m: [p.grad for p in m.parameters()]  # noqa: E731
    # tracked frames reach memory attention and the memory encoder
    assert any(g is not None and g.abs().sum() > 0 for g in grads(model.memory_attention))
    assert any(g is not None and g.abs().sum() > 0 for g in grads(model.memory_encoder))
    assert any(g is not None and g.abs().sum() > 0 for g in grads(model.mask_decoder))
    encoder_grads = grads(model.image_encoder)
    if freeze:
        assert all(g is None for g in encoder_grads)
    else:
        assert any(g is not None and g.abs().sum() > 0 for g in encoder_grads)


def test_memory_initialisation_makes_memory_attention_near_identity_and_local():
    model = small_model().eval()
    seqs, _ = batch()
    with torch.no_grad():
        emb = model.encode_image(torch.cat([s.images for s in seqs])).embedding * 30  # large, as after training
    loop.align_memory_attention(model, 6.0, emb)
    enc = model.memory_encoder
    masks = torch.full((len(emb), 1, SIZE, SIZE), -10.0)
    masks[:, :, SIZE // 4: SIZE // 2, SIZE // 4: SIZE // 2] = 10.0
    with torch.no_grad():
        ratio = float(enc.pix_feat_proj(emb).std() / enc.mask_downsampler(masks).std())
    assert ratio == pytest.approx(0.1, rel=1e-3)
    for layer in model.memory_attention.layers:
        att = layer.cross_attn_image
        for proj in (layer.self_attn.out_proj, att.out_proj, layer.linear2):
            assert not proj.weight.any() and not proj.bias.any()
        assert not att.q_proj.weight.any() and torch.equal(att.q_proj.bias, att.k_proj.bias)
        assert torch.all(att.q_proj.bias == 6.0)
    # with the residual branches zero, a tracked frame's features are the
    # layer-normed input mapped back to the features' per-channel statistics
    tokens = emb.flatten(2).transpose(1, 2).reshape(-1, emb.shape[1])
    with torch.no_grad():
        memory = enc(emb, masks).features.flatten(2).transpose(1, 2)
        for layer in model.memory_attention.layers:  # values as large as the features
            assert float(layer.cross_attn_image.v_proj(memory).std()) == pytest.approx(float(tokens.std()), rel=1e-3)
    assert torch.allclose(model.memory_attention.norm.weight, tokens.std(0))
    assert torch.allclose(model.memory_attention.norm.bias, tokens.mean(0))


def test_set_memory_dropout_reaches_every_dropout():
    model = small_model()
    loop.set_memory_dropout(model, 0.0)
    for m in model.memory_attention.modules():
        if isinstance(m, torch.nn.Dropout):
            assert m.p == 0.0
        elif isinstance(getattr(m, "dropout", None), float):
            assert m.dropout == 0.0


def test_a_short_run_writes_checkpoint_and_log(tmp_path, monkeypatch):
    from napari_sam2 import load_model

    calls = []

    def cheap_evaluate(model):
        calls.append(model.training)
        return Quality(0.1 * len(calls), 0.0, 0.0, {})  # better each time: both saved as best

    _, path = short_run(tmp_path, monkeypatch, cheap_evaluate, steps=2, eval_every=1, seed=3)
    assert calls == [True, True]  # evaluated twice, mid-training
    assert path == tmp_path / "demo.pt" and (tmp_path / "last.pt").is_file()
    records = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert records[0]["config"]["steps"] == 2
    assert [r["step"] for r in records if "eval" in r] == [1, 2]
    assert records[-1]["done"] and records[-1]["best"] == pytest.approx(0.2)
    model = load_model(path, device="cpu")
    assert model.config.name == "demo" and model.image_size == SIZE


def test_encoder_learning_rate_scale_applies_to_the_encoder_only(tmp_path, monkeypatch):
    from napari_sam2.checkpoints import load_model

    start, path = start_checkpoint(tmp_path)
    short_run(tmp_path / "run", monkeypatch, steps=2, eval_every=2, init=str(path), encoder_lr_scale=0.0)
    after = load_model(tmp_path / "run" / "last.pt", device="cpu")
    encoder_side = ("image_encoder.", "mask_decoder.conv_s0.", "mask_decoder.conv_s1.")
    before = start.state_dict()
    moved = {k for k, v in after.state_dict().items() if not torch.equal(v, before[k])}
    assert moved, "nothing trained"
    assert not [k for k in moved if k.startswith(encoder_side)]
    assert any(k.startswith("mask_decoder.transformer.") for k in moved)


def test_update_ema_moves_the_average_toward_the_model_by_one_minus_decay():
    a, b = small_model(), small_model()
    with torch.no_grad():
        for p in b.parameters():
            p.add_(1.0)
    before = {k: v.clone() for k, v in a.state_dict().items()}
    loop.update_ema(a, b, 0.75)
    after, target = a.state_dict(), b.state_dict()
    for k, v in after.items():
        if v.is_floating_point():
            torch.testing.assert_close(v, 0.75 * before[k] + 0.25 * target[k])
        else:
            assert torch.equal(v, before[k])


def test_with_ema_the_average_is_what_gets_evaluated_and_saved(tmp_path, monkeypatch):
    """Decay 1: the average never moves, so the saved and evaluated weights
    are the starting ones although the model itself trained."""
    from napari_sam2.checkpoints import load_model
    evaluated = []

    def record(model):
        evaluated.append({k: v.clone() for k, v in model.state_dict().items()})
        return Quality(0.0, 0.0, 0.0, {})

    start, path = start_checkpoint(tmp_path)
    short_run(tmp_path / "run", monkeypatch, record, steps=2, eval_every=2, init=str(path), ema=1.0)
    saved = load_model(tmp_path / "run" / "last.pt", device="cpu").state_dict()
    for k, v in start.state_dict().items():
        assert torch.equal(saved[k], v), k
        assert torch.equal(evaluated[-1][k], v), k


@pytest.mark.parametrize("multimask", [False, True])
def test_the_decoding_trained_is_the_one_saved(tmp_path, monkeypatch, multimask):
    from napari_sam2.checkpoints import load_model
    seen = []
    short_run(tmp_path, monkeypatch, lambda model: seen.append(model.config) or Quality(0.0, 0.0, 0.0, {}),
              steps=1, eval_every=1, multimask_decoding=multimask)
    saved = load_model(tmp_path / "last.pt", device="cpu").config
    for config in (seen[0], saved):
        assert config.tracking.multimask_output_in_sam is multimask
        assert config.decoder.dynamic_multimask_via_stability is multimask


def test_a_run_at_another_input_size_trains_and_saves_that_size(tmp_path, monkeypatch):
    from napari_sam2.checkpoints import load_model
    sizes = []
    real = loop.sequence_loss

    def spy(model, batch, *args, **kwargs):
        sizes.append((model.image_size, batch[0].images.shape[-1]))
        return real(model, batch, *args, **kwargs)

    monkeypatch.setattr(loop, "sequence_loss", spy)
    short_run(tmp_path, monkeypatch, steps=1, eval_every=1, image_size=96)
    assert sizes == [(96, 96)]
    assert load_model(tmp_path / "last.pt", device="cpu").image_size == 96


def test_stop_after_ends_early_on_the_full_schedule(tmp_path, monkeypatch):
    cfg, _ = short_run(tmp_path, monkeypatch, steps=10, stop_after=3, eval_every=100, log_every=1)
    records = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert [r["step"] for r in steps] == [0, 1, 2]
    assert steps[2]["lr"] == pytest.approx(loop._lr_at(2, cfg)) and loop._lr_at(2, cfg) > loop._lr_at(9, cfg)
    assert [r["step"] for r in records if "eval" in r] == [3]
    assert (tmp_path / "last.pt").is_file()


@pytest.mark.parametrize("max_stride", [1, 4])
def test_sequences_take_every_kth_frame_up_to_the_max_stride(monkeypatch, max_stride):
    from napari_sam2.synthetic import TimelapseParams, make_timelapse
    from napari_sam2.training import data

    # one fixed, fast-moving 40-frame film whatever parameters are drawn
    film = make_timelapse(TimelapseParams(n_frames=40, height=64, width=64, n_cells=4, radius=8.0, speed=3.0), seed=5)
    asked = []

    def fixed(params, seed):
        asked.append(params.n_frames)
        return film

    monkeypatch.setattr(data, "make_timelapse", fixed)
    frames = data.resized_masks(torch.from_numpy(film.labels > 0).float()[:, None], SIZE)  # (40, 1, S, S)
    rng = np.random.default_rng(0)
    steps = set()
    for _ in range(20):
        seq = data.sample_sequence(rng, image_size=SIZE, num_frames=5, max_objects=2, zstack_fraction=0.0,
                                   max_stride=max_stride)
        # which film frame each sequence frame is (the cells move: each matches one frame only)
        idx = [[j for j in range(40) if torch.equal(f, frames[j])] for f in seq.foreground]
        assert all(len(i) == 1 for i in idx)
        gaps = np.diff([i[0] for i in idx])
        assert len(set(gaps)) == 1 and 1 <= abs(gaps[0]) <= max_stride
        steps.add(abs(int(gaps[0])))
    assert steps == set(range(1, max_stride + 1))
    # a film long enough for the largest stride is asked for
    assert max(asked) == 4 * max_stride + 1


def test_zstack_sequences_take_consecutive_slices_whatever_the_max_stride(monkeypatch):
    from napari_sam2.synthetic import ZStackParams, make_zstack
    from napari_sam2.training import data

    stack = make_zstack(ZStackParams(n_slices=24, height=64, width=64, n_nuclei=4), seed=3)
    monkeypatch.setattr(data, "make_zstack", lambda params, seed: stack)
    slices = data.resized_masks(torch.from_numpy(stack.labels > 0).float()[:, None], SIZE)
    rng = np.random.default_rng(1)
    for _ in range(10):
        seq = data.sample_sequence(rng, image_size=SIZE, num_frames=4, max_objects=2, zstack_fraction=1.0,
                                   max_stride=4)
        if seq is None:
            continue
        idx = [[j for j in range(24) if torch.equal(f, slices[j])] for f in seq.foreground]
        # slices can repeat near a nucleus' ends, so ask only that consecutive ones fit
        assert any(abs(b - a) == 1 for a in idx[0] for b in idx[1])
        assert all(any(abs(b - a) == 1 for a in i for b in j) for i, j in zip(idx, idx[1:]))


def test_prompted_in_the_middle_the_backward_pass_reads_the_forward_memories(monkeypatch):
    model = small_model()

    def seen_in_the_middle(seed):
        seqs, rng = batch(n=1, frames=5, seed=seed)
        return bool((loop.resized_masks(seqs[0].masks, 64)[2].flatten(1).sum(1) >= 16).any()), seqs, rng

    # the first seed with an object seen on the middle frame (one is needed)
    seqs, rng = next(found[1:] for found in map(seen_in_the_middle, range(20)) if found[0])
    reads = []
    real = loop.read_memory

    def spy(frame, cond, recent, **kwargs):
        reads.append((frame, kwargs["reverse"], sorted(cond), sorted(recent)))
        return real(frame, cond, recent, **kwargs)

    monkeypatch.setattr(loop, "read_memory", spy)
    cfg = loop.TrainConfig(num_frames=5, loss_size=64, p_both=1.0)
    loss, _ = loop.sequence_loss(model, seqs, cfg, rng)
    assert torch.isfinite(loss)
    assert reads == [
        (3, False, [2], []), (4, False, [2], [3]),  # forward from the prompt first
        (1, True, [2], [3, 4]), (0, True, [2], [1, 3, 4]),  # then backward, the forward frames still held
    ]
    reads.clear()
    loop.sequence_loss(model, seqs, loop.TrainConfig(num_frames=5, loss_size=64), rng)
    assert [r[:3] for r in reads] == [(t, False, [0]) for t in range(1, 5)]


def test_a_random_prompt_frame_leaves_the_backward_pass_many_forward_memories(monkeypatch):
    model = small_model()
    prompted = []
    real = loop.read_memory

    def spy(frame, cond, recent, **kwargs):
        if not recent:
            prompted.append(sorted(cond)[0])
        if kwargs["reverse"] and frame + 1 in cond:
            # the first backward frame holds every forward frame's memory
            assert sorted(recent) == list(range(frame + 2, 7))
        return real(frame, cond, recent, **kwargs)

    monkeypatch.setattr(loop, "read_memory", spy)
    cfg = loop.TrainConfig(num_frames=7, loss_size=64, p_both=1.0, both_prompt="random")
    for seed in range(12):
        seqs, rng = batch(n=1, frames=7, seed=seed)
        loop.sequence_loss(model, seqs, cfg, rng)
    # frames 1..5 (every one but the first and last), not only the middle
    assert len(set(prompted) - {0}) >= 3 and set(prompted) <= set(range(6))


def test_a_second_frame_prompt_fills_every_memory_slot_of_the_backward_frame(monkeypatch):
    model = small_model()
    backward = []
    real = loop.read_memory

    def spy(frame, cond, recent, **kwargs):
        readout = real(frame, cond, recent, **kwargs)
        if kwargs["reverse"]:
            backward.append((frame, sorted(cond), sorted(recent), readout.frames))
        return readout

    monkeypatch.setattr(loop, "read_memory", spy)
    cfg = loop.TrainConfig(num_frames=7, loss_size=64, p_both=1.0, both_prompt="second")
    seqs, rng = batch(n=1, frames=7, seed=3)
    loop.sequence_loss(model, seqs, cfg, rng)
    # one backward frame, frame 0, after the forward pass over frames 2..6
    assert [b[:3] for b in backward] == [(0, [1], [2, 3, 4, 5, 6])]
    # the conditioning frame plus all six slots' worth of forward frames:
    # frame 6 in the oldest slot (1), frame 2 in slot 5
    spatial = [(pos, t) for kind, pos, t in backward[0][3] if kind == "mem"]
    assert spatial == [(0, 1), (1, 6), (2, 5), (3, 4), (4, 3), (5, 2)]


@pytest.mark.parametrize("bad", [dict(both_prompt="first"), dict(eval_zstacks=0), dict(eval_zstacks=11)])
def test_bad_both_prompt_or_validation_size_is_refused(tmp_path, monkeypatch, bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        short_run(tmp_path, monkeypatch, steps=1, **bad)


def test_evaluations_measure_as_many_validation_zstacks_as_asked(tmp_path, monkeypatch):
    asked = []
    short_run(tmp_path, monkeypatch, zstack_seeds=asked, steps=1, eval_zstacks=10)
    assert asked == [list(range(100, 110))]


def test_worker_processes_make_the_same_sequences_whatever_their_number():
    kwargs = dict(image_size=64, num_frames=2, max_objects=2, zstack_fraction=0.5)
    made = []
    for workers in (1, 2):
        source = loop._Sequences(np.random.default_rng(9), workers, **kwargs)
        try:
            made.append([source.draw() for _ in range(3)])
        finally:
            source.close()
    for a, b in zip(*made):
        assert a.kind == b.kind and torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
    assert not torch.equal(made[0][0].images, made[0][1].images)


def test_time_limit_ends_the_run_evaluated_and_every_evaluation_kept(tmp_path, monkeypatch):
    short_run(tmp_path, monkeypatch, steps=50, eval_every=100, time_limit_min=1e-9, keep_every_eval=True)
    records = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "eval" in r] == [1]
    assert (tmp_path / "step1.pt").is_file() and (tmp_path / "last.pt").is_file()


def test_a_device_that_is_not_there_is_refused_before_training(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available"):
        short_run(tmp_path, monkeypatch, steps=1, device="cuda")


@pytest.mark.parametrize("fraction", [0.0, 0.5, 1.0])
def test_samplelike_fraction_draws_scenes_near_the_samples_that_often(monkeypatch, fraction):
    from napari_sam2 import synthetic
    from napari_sam2.training import data

    drawn = []

    class _Stop(Exception):
        pass

    def spy(kind, real):
        def draw(rng):
            drawn.append(kind)
            return real(rng)
        return draw

    for name in ("random_timelapse_params", "random_zstack_params"):
        monkeypatch.setattr(data, name, spy("wide", getattr(synthetic, name)))
    for name in ("samplelike_timelapse_params", "samplelike_zstack_params"):
        monkeypatch.setattr(data, name, spy("near", getattr(synthetic, name)))

    def stop(params, seed):
        raise _Stop

    monkeypatch.setattr(data, "make_timelapse", stop)
    monkeypatch.setattr(data, "make_zstack", stop)
    rng = np.random.default_rng(4)
    for _ in range(200):
        with pytest.raises(_Stop):
            data.sample_sequence(rng, image_size=SIZE, num_frames=3, max_objects=1, zstack_fraction=0.5,
                                 samplelike_fraction=fraction)
    share = drawn.count("near") / len(drawn)
    assert len(drawn) == 200 and abs(share - fraction) < 0.1, share


def test_without_samplelike_scenes_the_draws_are_unchanged(monkeypatch):
    # runs made before the option existed draw the same scenes: the seed,
    # the z-stack-or-film choice, then the wide-range parameters, and
    # nothing else from the generator
    from napari_sam2 import synthetic
    from napari_sam2.training import data

    made = []

    class _Stop(Exception):
        pass

    def record(params, seed):
        made.append((params, seed))
        raise _Stop

    monkeypatch.setattr(data, "make_timelapse", record)
    monkeypatch.setattr(data, "make_zstack", record)
    rng, before = np.random.default_rng(7), np.random.default_rng(7)
    for _ in range(20):
        with pytest.raises(_Stop):
            data.sample_sequence(rng, image_size=SIZE, num_frames=3, max_objects=1, zstack_fraction=0.5)
        seed = int(before.integers(0, data.HELD_OUT_SEED_BASE))
        if before.uniform() < 0.5:
            params = synthetic.random_zstack_params(before)
        else:
            params = dataclasses.replace(synthetic.random_timelapse_params(before), n_frames=3)
        assert made[-1] == (params, seed)
    assert rng.integers(2**62) == before.integers(2**62)


def test_exclusive_training_memories_compete_within_a_sequence_only():
    model = small_model().eval()
    s = model.image_size
    embedding = torch.randn(3, model.hidden_dim, s // 16, s // 16)
    high = torch.full((3, 1, s, s), -8.0)
    high[0, :, : s // 2] = 5.0  # objects 0 and 1 (sequence 0) overlap in the top half
    high[1, :, : s // 4] = 9.0
    high[2, :, : s // 2] = 7.0  # object 2 (sequence 1) covers the same pixels, in another film
    head = SimpleNamespace(high_res=high, object_score_logits=torch.ones(3, 1))
    got = loop._exclusive_memories(model, embedding, head, owners=[0, 0, 1])
    want = high.clone()
    want[0, :, : s // 4] = -10.0  # object 1 claims these more strongly
    expected = model.encode_memory(embedding, want, head.object_score_logits, from_points=False)
    torch.testing.assert_close(got, expected)
    # alone in its sequence, an object's memory is the plain one
    plain = model.encode_memory(embedding, high, head.object_score_logits, from_points=False)
    torch.testing.assert_close(got[2], plain[2])
    assert not torch.allclose(got[0], plain[0])


def test_a_short_run_with_exclusive_memories_trains_through_them(tmp_path, monkeypatch):
    calls = []
    real = loop._exclusive_memories

    def spy(model, embedding, head, owners):
        calls.append(list(owners))
        return real(model, embedding, head, owners)

    monkeypatch.setattr(loop, "_exclusive_memories", spy)
    cfg, path = short_run(tmp_path / "run", monkeypatch, steps=2, num_frames=3, exclusive_memories=True,
                          samplelike_fraction=1.0)
    assert path.is_file()
    assert len(calls) == 2 * 2  # two tracked frames in each of two steps
    logged = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert logged[0]["config"]["exclusive_memories"] is True and logged[0]["config"]["samplelike_fraction"] == 1.0
