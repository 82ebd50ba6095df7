"""Checkpoint files: saves are atomic and never mix, and a file is checked
(its contents, its stored config, its keys and shapes) before a network is
built, with a CheckpointError naming the file."""

from __future__ import annotations

import os
import threading

import pytest
import torch

import napari_sam2.model as model_pkg
from napari_sam2.checkpoints import CheckpointError, load_model, save_checkpoint
from napari_sam2.config import config_to_dict, load_config
from napari_sam2.model import build_model

from ._helpers import make_read_only


def _demo_like(seed: int):
    torch.manual_seed(seed)
    return build_model(load_config("demo")).eval()


@pytest.fixture(scope="module")
def two_models():
    return _demo_like(1), _demo_like(2)


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_two_saves_to_one_path_never_mix(tmp_path, two_models):
    path = tmp_path / "m.pt"
    errors = []

    def save(model):
        try:
            for _ in range(2):
                save_checkpoint(model, path)
        except BaseException as exc:  # noqa: BLE001 - any error fails the test
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(m,)) for m in two_models]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    loaded = load_model(path, device="cpu")
    assert _same_weights(loaded, two_models[0]) or _same_weights(loaded, two_models[1])
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_failed_final_rename_leaves_no_part_file(tmp_path, two_models, monkeypatch):
    def no_space(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(OSError):
        save_checkpoint(two_models[0], tmp_path / "m.pt")
    assert list(tmp_path.iterdir()) == []


def test_read_only_destination_names_the_path(tmp_path, two_models, monkeypatch):
    folder = make_read_only(tmp_path / "ro", monkeypatch)
    with pytest.raises(PermissionError, match=str(folder)):
        save_checkpoint(two_models[0], folder / "m.pt")


def _write(path, payload):
    torch.save(payload, path)
    return path


def _no_real_build(monkeypatch):
    """build_model may run on the meta device only (no storage)."""
    real = model_pkg.build_model

    def build(config):
        assert torch.empty(0).device.type == "meta", "the network was built before the file was checked"
        return real(config)

    monkeypatch.setattr(model_pkg, "build_model", build)


def test_huge_stored_config_with_empty_weights_is_refused_before_building(tmp_path, monkeypatch):
    cfg = config_to_dict(load_config("demo"))
    cfg["trunk"]["embed_dim"] = 4096
    path = _write(tmp_path / "tiny.pt", {"model": {}, "config": cfg})
    _no_real_build(monkeypatch)
    with pytest.raises(CheckpointError, match=str(path)):
        load_model(path, device="cpu")
    path = _write(tmp_path / "tiny2.pt", {"model": {"x": torch.zeros(1)}, "config": cfg})
    with pytest.raises(CheckpointError, match="embed_dim"):
        load_model(path, device="cpu")


def test_weights_that_do_not_fit_are_refused_before_building(tmp_path, monkeypatch):
    cfg = config_to_dict(load_config("sam2.1_hiera_large"))
    path = _write(tmp_path / "few.pt", {"model": {"image_encoder.trunk.pos_embed": torch.zeros(3)},
                                        "config": cfg})
    _no_real_build(monkeypatch)
    with pytest.raises(CheckpointError, match="missing key"):
        load_model(path, device="cpu")


def test_nan_weights_are_refused(tmp_path, two_models):
    state = {k: torch.full_like(v, float("nan")) for k, v in two_models[0].state_dict().items()}
    path = _write(tmp_path / "nan.pt", {"model": model_pkg.to_meta_keys(state),
                                        "config": config_to_dict(two_models[0].config)})
    with pytest.raises(CheckpointError, match="NaN") as err:
        load_model(path, device="cpu")
    assert str(path) in str(err.value)


def test_integer_weights_are_refused(tmp_path, two_models):
    state = {k: v.to(torch.int32) for k, v in two_models[0].state_dict().items()}
    path = _write(tmp_path / "int.pt", {"model": model_pkg.to_meta_keys(state),
                                        "config": config_to_dict(two_models[0].config)})
    with pytest.raises(CheckpointError, match="floating point") as err:
        load_model(path, device="cpu")
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda p: p["model"].__setitem__(next(iter(p["model"])), 1.5), "not a tensor"),
        (lambda p: p["config"].__setitem__("image_size", "256"), "image_size must be an integer"),
        (lambda p: p["config"]["trunk"].__setitem__("stages", None), "trunk.stages must be a list"),
        (lambda p: p.__setitem__("config", [1, 2]), "mapping"),
    ],
    ids=["non-tensor", "image_size-string", "stages-none", "config-list"],
)
def test_malformed_contents_are_checkpoint_errors(tmp_path, two_models, change, expected):
    model = two_models[0]
    payload = {"model": model_pkg.to_meta_keys(dict(model.state_dict())),
               "config": config_to_dict(model.config)}
    change(payload)
    path = _write(tmp_path / "bad.pt", payload)
    with pytest.raises(CheckpointError, match=expected) as err:
        load_model(path, device="cpu")
    assert str(path) in str(err.value)


def test_good_file_still_loads(tmp_path, two_models):
    path = save_checkpoint(two_models[0], tmp_path / "ok.pt")
    assert _same_weights(load_model(path, device="cpu"), two_models[0])
