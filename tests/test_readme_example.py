"""The README's "Script it" example runs as written (with a random-weight
checkpoint file in place of the downloaded model, and a small stack)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_block(section: str, language: str = "python") -> str:
    """The first ``language`` code block under the README heading ``section``."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(f"## {section}\n")
    end = text.find("\n## ", start + 1)
    body = text[start: end if end != -1 else len(text)]
    match = re.search(rf"```{language}\n(.*?)```", body, flags=re.S)
    assert match, f"no {language} block under '## {section}' in README.md"
    return match.group(1)


def test_script_example_runs(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    tifffile = pytest.importorskip("tifffile")
    from napari_sam2 import save_checkpoint
    from napari_sam2._sample_data import load_sample_array
    from napari_sam2.config import load_config
    from napari_sam2.model import build_model

    code = readme_block("Script it")
    assert 'load_model("sam2.1_hiera_tiny")' in code
    torch.manual_seed(0)
    model = build_model(load_config("sam2.1_hiera_tiny", image_size=256)).eval()
    checkpoint = save_checkpoint(model, tmp_path / "random_tiny.pt")
    stack = load_sample_array("cells_timelapse.tif")[:4]
    monkeypatch.chdir(tmp_path)
    tifffile.imwrite("cells.tif", stack, photometric="minisblack")

    code = code.replace('"sam2.1_hiera_tiny"', repr(str(checkpoint)))
    exec(compile(code, "README.md (Script it)", "exec"), {"__name__": "readme_example"})

    labels = tifffile.imread(tmp_path / "cells_labels.tif")
    assert labels.shape == stack.shape and labels.dtype.kind in "iu"
    assert set(np.unique(labels)) <= {0, 1}


def test_script_corrections_example_runs(tmp_path, monkeypatch):
    """The second block under "Script it" (candidates, range, painted fix)
    runs after the first one, on the demo model."""
    import tifffile

    from napari_sam2._sample_data import load_sample_array

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## Script it\n")
    body = text[start: text.find("\n## ", start + 1)]
    first, second = re.findall(r"```python\n(.*?)```", body, flags=re.S)[:2]
    assert "mask_candidates" in second and "use_mask_from_labels" in second
    monkeypatch.chdir(tmp_path)
    tifffile.imwrite("cells.tif", load_sample_array("cells_timelapse.tif")[:3], photometric="minisblack")
    namespace = {"__name__": "readme_example"}
    exec(compile(first.replace('load_model("sam2.1_hiera_tiny")', 'load_model("demo", device="cpu")'),
                 "README.md (Script it)", "exec"), namespace)
    exec(compile(second, "README.md (Script it, corrections)", "exec"), namespace)
    session = namespace["session"]
    assert session.intensity_range == (120.0, 4000.0) and len(namespace["candidates"]) == 3
    assert session.chosen_candidate(1, 0) == 1 and session.prompted_frames(1) == [0, 2]
    assert not np.any(session.labels[2] == 1)  # the erased object stays erased on its mask-prompted frame
    assert session.frame_states(1).tolist() == [0, 0, 0]
