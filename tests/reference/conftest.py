"""Shared set-up for equality tests against Meta's ``sam2==1.1.0``.

Both implementations get the same random weights; everything runs in float32
on the CPU. Without the reference installed the tests skip locally and fail
under ``CI=true`` (a skipped equality test is an unwritten one).
"""

from __future__ import annotations

import os
import warnings

import pytest
import torch

try:
    import sam2  # noqa: F401
    from sam2.build_sam import build_sam2_video_predictor

    HAVE_REFERENCE = True
except Exception as exc:  # pragma: no cover - depends on the environment
    HAVE_REFERENCE = False
    _IMPORT_ERROR = exc

from napari_sam2.config import load_config
from napari_sam2.model import build_model, load_weights_strict

META_CONFIG_FILES = {
    "sam2_hiera_tiny": "configs/sam2/sam2_hiera_t.yaml",
    "sam2_hiera_small": "configs/sam2/sam2_hiera_s.yaml",
    "sam2_hiera_base_plus": "configs/sam2/sam2_hiera_b+.yaml",
    "sam2_hiera_large": "configs/sam2/sam2_hiera_l.yaml",
    "sam2.1_hiera_tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "sam2.1_hiera_small": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "sam2.1_hiera_base_plus": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "sam2.1_hiera_large": "configs/sam2.1/sam2.1_hiera_l.yaml",
}


def require_reference() -> None:
    if HAVE_REFERENCE:
        return
    message = f"Meta's sam2==1.1.0 is not importable ({_IMPORT_ERROR!r})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " and CI=true: the reference tests must run", pytrace=False)
    pytest.skip(message)


def build_reference(name: str, image_size: int):
    """Meta's video predictor for ``name`` at ``image_size``, CPU, eval mode."""
    require_reference()
    overrides = [f"++model.image_size={image_size}"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_sam2_video_predictor(
            META_CONFIG_FILES[name], ckpt_path=None, device="cpu", hydra_overrides_extra=overrides
        )
    return model.eval()


# final layer of the object-score head, under Meta's names
OBJECT_SCORE_BIAS = "sam_mask_decoder.pred_obj_score_head.layers.2.bias"


def random_state_dict(
    model: torch.nn.Module, seed: int, *, object_bias: float = 1.0
) -> dict[str, torch.Tensor]:
    """The model's initial weights, each perturbed by seeded noise so that no
    tensor is zero or one (random frequencies and embeddings included).

    A random network scores every object near 0, so half the time "absent",
    which turns every mask into the constant no-object logit and makes a
    comparison trivial. ``object_bias`` shifts the object-score head so that
    objects are present (positive) or absent (negative) on purpose.
    """
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in model.state_dict().items():
        noise = torch.randn(value.shape, generator=gen, dtype=torch.float32)
        scale = 0.02 if value.ndim > 1 else 0.05
        out[key] = (value.float() + scale * noise).to(value.dtype)
    if OBJECT_SCORE_BIAS in out:
        out[OBJECT_SCORE_BIAS] = out[OBJECT_SCORE_BIAS] + object_bias
    return out


def build_pair(name: str, image_size: int, seed: int = 0, *, object_bias: float = 1.0, **tracking):
    """(ours, reference) loaded with the same random weights, float32, eval."""
    ref = build_reference(name, image_size)
    state = random_state_dict(ref, seed, object_bias=object_bias)
    ref.load_state_dict(state, strict=True)
    cfg = load_config(name, image_size=image_size, tracking=tracking)
    ours = build_model(cfg).eval()
    load_weights_strict(ours, state, source=f"random weights for {name}")
    return ours, ref


@pytest.fixture(autouse=True)
def _float32_cpu():
    torch.set_grad_enabled(False)
    yield
    torch.set_grad_enabled(True)
