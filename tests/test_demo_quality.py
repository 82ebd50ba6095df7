"""The shipped demo model really segments and tracks: quality on held-out
synthetic sequences (seeds the training never drew), measured through the
same StackSession users drive, on the CPU."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from napari_sam2 import load_model
from napari_sam2.training.data import HELD_OUT_SEED_BASE
from napari_sam2.training.evaluate import click_quality, tracking_quality, zstack_quality

MEASURED: dict[str, float] = {}


@pytest.fixture(scope="module")
def demo(monkeypatch_module):
    def offline(*args, **kwargs):
        raise AssertionError("the demo model must load without any network access")

    monkeypatch_module.setattr(socket, "getaddrinfo", offline)
    monkeypatch_module.setattr(socket, "create_connection", offline)
    return load_model("demo", device="cpu")


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_demo_loads_offline_from_the_package(demo):
    assert demo.config.name == "demo"
    assert not demo.training
    from napari_sam2.checkpoints import checkpoint_path

    path = checkpoint_path("demo")
    assert path.is_file() and path.stat().st_size <= 20 * 1024 * 1024


def test_one_click_in_an_isolated_cell(demo):
    ious = click_quality(demo, range(10))
    assert len(ious) >= 15
    MEASURED["click IoU (mean)"] = float(np.mean(ious))
    MEASURED["click IoU (min)"] = float(np.min(ious))
    assert np.mean(ious) >= 0.85, ious


def test_three_objects_over_twenty_frames(demo):
    scores = tracking_quality(demo, range(4), num_objects=3, num_frames=20)
    assert len(scores) == 4
    MEASURED["tracking IoU (mean of 4 runs)"] = float(np.mean(scores))
    assert np.mean(scores) >= 0.75, scores


def test_zstack_both_ways_from_the_middle(demo):
    dice = zstack_quality(demo, range(4), num_objects=3)
    assert len(dice) >= 9
    MEASURED["z-stack Dice (mean)"] = float(np.mean(dice))
    assert np.mean(dice) >= 0.8, dice


def test_training_never_draws_a_held_out_seed(monkeypatch):
    from napari_sam2.training import data

    seen = []

    def record(params, seed):
        seen.append(seed)
        raise _Stop

    class _Stop(Exception):
        pass

    monkeypatch.setattr(data, "make_timelapse", record)
    monkeypatch.setattr(data, "make_zstack", record)
    rng = np.random.default_rng(123)
    for _ in range(300):
        with pytest.raises(_Stop):
            data.sample_sequence(rng, image_size=64, num_frames=2, max_objects=1, zstack_fraction=0.5)
    assert len(seen) == 300 and max(seen) < HELD_OUT_SEED_BASE


def test_report(capsys):
    if MEASURED:
        with capsys.disabled():
            print("\ndemo model quality: " + ", ".join(f"{k} = {v:.3f}" for k, v in MEASURED.items()))
