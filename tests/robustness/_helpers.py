"""Shared bits of the robustness tests: a small random model saved as a
checkpoint file, and a folder that refuses new files."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import torch

from napari_sam2.checkpoints import save_checkpoint
from napari_sam2.config import load_config
from napari_sam2.model import build_model

IMAGE_SIZE = 128


def small_model(seed: int = 0):
    """Random weights in the demo model's (small) architecture at 128 px."""
    torch.manual_seed(seed)
    model = build_model(load_config("demo", image_size=IMAGE_SIZE)).eval()
    with torch.no_grad():  # keep objects "present" with random weights
        model.mask_decoder.pred_obj_score_head.layers[2].bias.add_(1.0)
    return model


def small_model_file(folder: Path, seed: int = 0) -> Path:
    return save_checkpoint(small_model(seed), folder / f"random{seed}.pt")


def make_read_only(folder: Path, monkeypatch) -> Path:
    """``folder`` made read-only. As root, permission bits do not stop
    writes, so the file system's refusal (EACCES) is also simulated there
    for the calls that create files in it."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    if os.geteuid() == 0:
        real_mkstemp, real_mkdtemp = tempfile.mkstemp, tempfile.mkdtemp
        target = os.path.realpath(folder)

        def refuse(where):
            if where is not None and os.path.realpath(where) == target:
                raise PermissionError(13, "Permission denied", str(where))

        def mkstemp(*args, dir=None, **kwargs):
            refuse(dir)
            return real_mkstemp(*args, dir=dir, **kwargs)

        def mkdtemp(*args, dir=None, **kwargs):
            refuse(dir)
            return real_mkdtemp(*args, dir=dir, **kwargs)

        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
        monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
        real_open = os.open

        def os_open(path, flags, *args, **kwargs):
            if flags & os.O_CREAT and os.path.realpath(os.path.dirname(os.path.abspath(path))) == target:
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", os_open)
    return folder
