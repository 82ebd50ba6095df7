"""load_model: config inference, devices, strictness, clear errors, offline use."""

from __future__ import annotations

import socket
import pytest
import torch

from napari_sam2 import available_models, load_model
from napari_sam2.checkpoints import CheckpointDownloadError, CheckpointError, save_checkpoint
from napari_sam2.config import load_config
from napari_sam2.model import build_model, to_meta_keys

SMALL = dict(image_size=256)


@pytest.fixture(scope="module")
def tiny_state():
    torch.manual_seed(0)
    model = build_model(load_config("sam2.1_hiera_tiny", **SMALL))
    return to_meta_keys(model.state_dict())


def test_available_models_lists_the_eight():
    names = available_models()
    for fam in ("sam2", "sam2.1"):
        for size in ("tiny", "small", "base_plus", "large"):
            assert f"{fam}_hiera_{size}" in names


def test_config_inferred_from_meta_file_name(tmp_path, tiny_state):
    path = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"model": tiny_state}, path)
    model = load_model(path, device="cpu", image_size=256)
    assert model.config.name == "sam2.1_hiera_tiny"
    assert model.image_size == 256
    assert not model.training
    assert model.device.type == "cpu"


def test_meta_config_name_accepted(tmp_path, tiny_state):
    path = tmp_path / "weights.pt"
    torch.save({"model": tiny_state}, path)
    model = load_model(path, config="sam2.1_hiera_t", device="cpu", image_size=512)
    assert model.config.name == "sam2.1_hiera_tiny" and model.image_size == 512


def test_unknown_file_name_asks_for_config(tmp_path, tiny_state):
    path = tmp_path / "weights.pt"
    torch.save({"model": tiny_state}, path)
    with pytest.raises(ValueError, match="pass config="):
        load_model(path, device="cpu")


def test_saved_checkpoint_round_trips_with_its_config(tmp_path):
    cfg = load_config("sam2.1_hiera_tiny", image_size=256, tracking={"fill_hole_area": 0})
    model = build_model(cfg)
    path = save_checkpoint(model, tmp_path / "mine.pt")
    back = load_model(path, device="cpu")
    assert back.config == cfg
    for (k, a), (_, b) in zip(model.state_dict().items(), back.state_dict().items()):
        assert torch.equal(a, b), k
    assert not list(tmp_path.glob(".*part")), "no temporary file left"


def test_truncated_file_names_file_and_remedy(tmp_path, tiny_state):
    good = tmp_path / "good.pt"
    torch.save({"model": tiny_state}, good)
    bad = tmp_path / "sam2.1_hiera_tiny.pt"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    with pytest.raises(CheckpointError) as err:
        load_model(bad, device="cpu")
    msg = str(err.value)
    assert str(bad) in msg and "download it again" in msg


def test_wrong_model_names_model_and_keys(tmp_path, tiny_state):
    path = tmp_path / "sam2.1_hiera_small.pt"  # tiny weights under small's name
    torch.save({"model": tiny_state}, path)
    with pytest.raises(CheckpointError) as err:
        load_model(path, device="cpu", image_size=256)
    msg = str(err.value)
    assert "sam2.1_hiera_small" in msg and str(path) in msg
    assert "missing key" in msg and "image_encoder.trunk.blocks." in msg


def test_missing_and_unexpected_keys_are_named(tmp_path, tiny_state):
    state = dict(tiny_state)
    state.pop("no_mem_embed")
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointError) as err:
        load_model(path, device="cpu")
    msg = str(err.value)
    assert "no_mem_embed" in msg and "extra.weight" in msg


def test_not_a_checkpoint_dict(tmp_path):
    path = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError, match="no 'model' state dict"):
        load_model(path, device="cpu")


def test_unknown_name_or_missing_file():
    with pytest.raises(ValueError, match="neither a known model"):
        load_model("sam3_hiera_huge", device="cpu")


def test_unavailable_device_is_a_clear_error(tmp_path, tiny_state):
    path = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"model": tiny_state}, path)
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match="CUDA is not available"):
        load_model(path, device="cuda")


def test_no_network_fails_fast_with_url_and_path(tmp_path, monkeypatch):
    """Empty cache + no network: the error gives Meta's URL and the exact
    path for the file, and the cache folder stays empty."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("NAPARI_SAM2_CHECKPOINT_DIR", str(cache))
    monkeypatch.delenv("NAPARI_SAM2_CHECKPOINT_URL", raising=False)

    def offline(*args, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(socket, "getaddrinfo", offline)
    monkeypatch.setattr(socket, "create_connection", offline)
    with pytest.raises(CheckpointDownloadError) as err:
        load_model("sam2.1_hiera_tiny", device="cpu")
    msg = str(err.value)
    assert "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_tiny.pt" in msg
    assert str(cache / "sam2.1_hiera_tiny.pt") in msg
    assert not cache.exists() or list(cache.iterdir()) == []


def test_name_loads_from_cache_without_network(tmp_path, monkeypatch, tiny_state):
    cache = tmp_path / "cache"
    cache.mkdir()
    torch.save({"model": tiny_state}, cache / "sam2.1_hiera_tiny.pt")
    monkeypatch.setenv("NAPARI_SAM2_CHECKPOINT_DIR", str(cache))

    def offline(*args, **kwargs):
        raise AssertionError("no network access expected")

    monkeypatch.setattr(socket, "getaddrinfo", offline)
    monkeypatch.setattr(socket, "create_connection", offline)
    model = load_model("sam2.1_hiera_tiny", device="cpu", image_size=256)
    assert model.config.name == "sam2.1_hiera_tiny"
    assert torch.equal(model.state_dict()["no_mem_embed"], tiny_state["no_mem_embed"])
