"""Meta-format state dicts of all eight reference models load strictly."""

from __future__ import annotations

import pytest
import torch

from napari_sam2 import load_model

from .conftest import META_CONFIG_FILES, build_reference, random_state_dict


@pytest.mark.reference
@pytest.mark.parametrize("name", sorted(META_CONFIG_FILES))
def test_reference_state_dict_loads_strictly(name, tmp_path):
    ref = build_reference(name, 256)
    state = random_state_dict(ref, seed=3)
    path = tmp_path / "weights.pt"  # a name that says nothing about the model
    torch.save({"model": state}, path)
    model = load_model(path, config=name, device="cpu", image_size=256)
    assert not model.training
    ours = model.state_dict()
    # every reference tensor arrived, unchanged, under its (remapped) name
    assert len(ours) == len(state)
    for key, value in state.items():
        mapped = key.replace("sam_prompt_encoder.", "prompt_encoder.").replace(
            "sam_mask_decoder.", "mask_decoder."
        )
        assert torch.equal(ours[mapped], value), key
