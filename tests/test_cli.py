"""The command line: segment a TIFF headless, list and download models."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch

from napari_sam2.checkpoints import save_checkpoint
from napari_sam2.cli import build_parser, main
from napari_sam2.config import load_config
from napari_sam2.model import build_model


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model(load_config("sam2.1_hiera_tiny", image_size=256))
    with torch.no_grad():  # keep objects "present" with random weights
        model.mask_decoder.pred_obj_score_head.layers[2].bias.add_(1.0)
    return save_checkpoint(model, tmp_path_factory.mktemp("m") / "random.pt")


def test_segment_writes_labels_for_each_object(tmp_path, model_file):
    stack = (np.random.default_rng(0).random((4, 40, 50)) * 4000).astype(np.uint16)
    src = tmp_path / "stack.tif"
    tifffile.imwrite(src, stack, photometric="minisblack")
    out = tmp_path / "labels.tif"
    code = main([
        "segment", str(src), "--model", str(model_file), "--device", "cpu",
        "--point", "1,20,25", "--box", "1,5,5,15,20,2", "--neg", "1,30,40",
        "--direction", "both", "--out", str(out),
    ])
    assert code == 0
    labels = tifffile.imread(out)
    assert labels.shape == stack.shape
    assert set(np.unique(labels)) <= {0, 1, 2}
    assert (labels == 1).any(), "object 1 was segmented somewhere"


def test_segment_auto_tracks_every_cell_and_writes_the_ctc_layout(tmp_path, capsys):
    from napari_sam2.synthetic import TimelapseParams, make_timelapse

    synth = make_timelapse(TimelapseParams(n_frames=4, height=96, width=96, n_cells=4), seed=3)
    src = tmp_path / "cells.tif"
    tifffile.imwrite(src, synth.image, photometric="minisblack")
    out, ctc = tmp_path / "labels.tif", tmp_path / "ctc"
    code = main(["segment", str(src), "--model", "demo", "--auto", "--detect-every", "2", "--points-per-side", "8",
                 "--out", str(out), "--ctc", str(ctc)])
    assert code == 0, capsys.readouterr().err
    labels = tifffile.imread(out)
    assert labels.shape == synth.image.shape and len(np.unique(labels[0])) - 1 >= 2
    assert sorted(p.name for p in ctc.iterdir()) == ["mask000.tif", "mask001.tif", "mask002.tif",
                                                     "mask003.tif", "res_track.txt"]
    with pytest.raises(SystemExit, match="--auto or --point"):
        main(["segment", str(src), "--auto", "--point", "0,5,5", "--out", str(out)])
    with pytest.raises(SystemExit, match="one pass"):
        main(["segment", str(src), "--auto", "--direction", "both", "--out", str(out)])
    assert main(["segment", str(src), "--auto", "--out", str(out), "--ctc", str(tmp_path / "no" / "ctc")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_segment_auto_finds_divisions_and_writes_the_mothers(tmp_path, capsys):
    from tests.engine.test_divisions import SPLIT, _scene

    image, _truth = _scene()  # a disc that divides on frame SPLIT, one that stays
    src = tmp_path / "divides.tif"
    tifffile.imwrite(src, image, photometric="minisblack")
    out, ctc = tmp_path / "labels.tif", tmp_path / "ctc"
    code = main(["segment", str(src), "--model", "demo", "--auto", "--divisions", "--single-mask",
                 "--points-per-side", "12", "--detect-every", "3", "--out", str(out), "--ctc", str(ctc)])
    assert code == 0, capsys.readouterr().err
    assert "divisions of [" in capsys.readouterr().err
    rows = {}
    for line in (ctc / "res_track.txt").read_text().splitlines():
        label, begin, end, parent = (int(v) for v in line.split())
        rows[label] = (begin, end, parent)
    daughters = [k for k, (_b, _e, parent) in rows.items() if parent]
    assert len(daughters) == 2 and len({rows[d][2] for d in daughters}) == 1
    mother = rows[daughters[0]][2]
    assert rows[mother][1] == SPLIT - 1 and all(rows[d][0] == SPLIT for d in daughters)
    with pytest.raises(SystemExit, match="go with --auto"):
        main(["segment", str(src), "--divisions", "--point", "0,5,5", "--out", str(out)])
    with pytest.raises(SystemExit, match="found going forward"):
        main(["segment", str(src), "--auto", "--divisions", "--direction", "backward", "--out", str(out)])


def test_segment_reports_bad_prompts_cleanly(tmp_path, model_file, capsys):
    src = tmp_path / "stack.tif"
    tifffile.imwrite(src, np.zeros((2, 20, 20), np.uint16), photometric="minisblack")
    code = main(["segment", str(src), "--model", str(model_file), "--device", "cpu",
                 "--point", "0,500,5", "--out", str(tmp_path / "o.tif")])
    assert code == 2
    assert "outside the image" in capsys.readouterr().err
    assert not (tmp_path / "o.tif").exists()


def test_prompt_syntax_errors_name_the_argument():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["segment", "x.tif", "--point", "0,1", "--out", "o.tif"])


def test_models_lists_cache_state(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NAPARI_SAM2_CHECKPOINT_DIR", str(tmp_path))
    (tmp_path / "sam2.1_hiera_small.pt").write_bytes(b"x")
    assert main(["models"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "ready" in lines["sam2.1_hiera_small"]
    assert "not downloaded" in lines["sam2.1_hiera_large"]


def test_download_from_a_mirror(tmp_path, monkeypatch, capsys):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "sam2_hiera_tiny.pt").write_bytes(b"weights")
    monkeypatch.setenv("NAPARI_SAM2_CHECKPOINT_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NAPARI_SAM2_CHECKPOINT_URL", mirror.as_uri())
    assert main(["download", "sam2_hiera_tiny"]) == 0
    assert (tmp_path / "cache" / "sam2_hiera_tiny.pt").read_bytes() == b"weights"
