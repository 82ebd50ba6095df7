"""Build the network from a :class:`ModelConfig` and load weights strictly."""

from __future__ import annotations

from typing import Mapping

import torch

from ..config import ModelConfig
from .hiera import Hiera
from .mask_decoder import MaskDecoder
from .memory_attention import MemoryAttention
from .memory_encoder import MemoryEncoder
from .neck import FpnNeck, ImageEncoder
from .prompt_encoder import PromptEncoder
from .sam2 import SAM2Model

# Meta's module prefixes -> ours. Everything else has the same name.
_META_TO_OURS = {
    "sam_prompt_encoder.": "prompt_encoder.",
    "sam_mask_decoder.": "mask_decoder.",
}


def build_model(config: ModelConfig) -> SAM2Model:
    """A SAM 2 network with freshly initialised weights (train mode)."""
    t = config.tracking
    dim = config.neck.d_model
    side = config.feature_size
    image_encoder = ImageEncoder(Hiera(config.trunk), FpnNeck(config.neck))
    prompt_encoder = PromptEncoder(
        embed_dim=dim,
        embedding_size=side,
        image_size=config.image_size,
        mask_in_chans=config.decoder.mask_in_chans,
    )
    mask_decoder = MaskDecoder(
        config.decoder,
        dim=dim,
        use_high_res_features=t.use_high_res_features_in_sam,
        iou_prediction_use_sigmoid=t.iou_prediction_use_sigmoid,
        pred_obj_scores=t.pred_obj_scores,
        pred_obj_scores_mlp=t.pred_obj_scores_mlp,
        use_multimask_token_for_obj_ptr=t.use_multimask_token_for_obj_ptr,
    )
    memory_attention = MemoryAttention(
        config.memory_attention, dim=dim, mem_dim=config.memory_encoder.out_dim, side=side
    )
    memory_encoder = MemoryEncoder(config.memory_encoder, in_dim=dim)
    return SAM2Model(
        config,
        image_encoder=image_encoder,
        prompt_encoder=prompt_encoder,
        mask_decoder=mask_decoder,
        memory_attention=memory_attention,
        memory_encoder=memory_encoder,
    )


def _rename_prefixes(
    state_dict: Mapping[str, torch.Tensor], renames: list[tuple[str, str]]
) -> dict[str, torch.Tensor]:
    """Each key starting with a ``renames`` source prefix gets its target instead (first match)."""
    out = {}
    for key, value in state_dict.items():
        for source, target in renames:
            if key.startswith(source):
                key = target + key[len(source):]
                break
        out[key] = value
    return out


def remap_meta_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the keys of Meta's ``model`` state dict to this package's names."""
    return _rename_prefixes(state_dict, list(_META_TO_OURS.items()))


def to_meta_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`remap_meta_keys`: our state dict under Meta's names."""
    return _rename_prefixes(state_dict, [(ours, theirs) for theirs, ours in _META_TO_OURS.items()])


class CheckpointMismatchError(RuntimeError):
    """A checkpoint's tensors do not fit the network it is loaded into."""


def load_weights_strict(
    model: SAM2Model, state_dict: Mapping[str, torch.Tensor], *, source: str = "checkpoint"
) -> None:
    """Load Meta-named weights; any missing, unexpected or misshapen key is an
    error naming the keys, the source and the model that was expected."""
    check_weights_fit(model, state_dict, source=source)
    model.load_state_dict(remap_meta_keys(state_dict), strict=True)


def check_weights_fit(
    model: SAM2Model, state_dict: Mapping[str, torch.Tensor], *, source: str = "checkpoint"
) -> None:
    """Raise :class:`CheckpointMismatchError` unless Meta-named ``state_dict``
    has exactly ``model``'s keys and shapes. ``model`` may live on the
    ``meta`` device (no storage), to check a file before building for real."""
    ours = remap_meta_keys(state_dict)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(ours))
    unexpected = sorted(set(ours) - set(expected))
    misshapen = sorted(
        k for k in set(expected) & set(ours) if tuple(expected[k].shape) != tuple(ours[k].shape)
    )
    if missing or unexpected or misshapen:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected)):
            if keys:
                parts.append(f"{len(keys)} {label} key(s): {_preview(keys)}")
        if misshapen:
            shown = [f"{k} {tuple(ours[k].shape)} vs {tuple(expected[k].shape)}" for k in misshapen[:3]]
            parts.append(f"{len(misshapen)} key(s) of the wrong shape: {'; '.join(shown)}")
        raise CheckpointMismatchError(
            f"{source} does not match the model {model.config.name!r}: {'. '.join(parts)}. "
            "Check that the file is a complete SAM 2 checkpoint for this model, or pass the "
            "right config (e.g. config='sam2.1_hiera_small'); re-download it if it is truncated."
        )


def _preview(keys: list[str], n: int = 5) -> str:
    shown = ", ".join(keys[:n])
    return shown + (f", ... (+{len(keys) - n} more)" if len(keys) > n else "")
