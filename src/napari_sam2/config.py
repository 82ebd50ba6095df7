"""Model configuration: frozen dataclasses read from plain YAML values.

A config file holds nested mappings whose keys are the field names below; a
missing key takes the field's default (the defaults are SAM 2.1 tiny's values
where a model family shares them). Nothing here builds modules: the builder
in :mod:`napari_sam2.model.build` reads these values.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, get_type_hints

import yaml

__all__ = [
    "TrunkConfig",
    "NeckConfig",
    "DecoderConfig",
    "MemoryAttentionConfig",
    "MemoryEncoderConfig",
    "TrackingConfig",
    "ModelConfig",
    "config_names",
    "load_config",
    "config_from_dict",
    "resolve_config_name",
    "config_to_dict",
]


@dataclass(frozen=True)
class TrunkConfig:
    """Hiera trunk: a hierarchy of stages, each halving resolution."""

    embed_dim: int = 96
    num_heads: int = 1
    stages: tuple[int, ...] = (1, 2, 7, 2)
    global_att_blocks: tuple[int, ...] = (5, 7, 9)
    window_spec: tuple[int, ...] = (8, 4, 14, 7)
    window_pos_embed_bkg_spatial_size: tuple[int, int] = (7, 7)
    q_pool: int = 3
    q_stride: tuple[int, int] = (2, 2)
    dim_mul: float = 2.0
    head_mul: float = 2.0
    mlp_ratio: float = 4.0


@dataclass(frozen=True)
class NeckConfig:
    """FPN neck mapping trunk stages to ``d_model`` channels."""

    d_model: int = 256
    backbone_channel_list: tuple[int, ...] = (768, 384, 192, 96)
    fpn_top_down_levels: tuple[int, ...] = (2, 3)
    fpn_interp_model: str = "nearest"
    scalp: int = 1


@dataclass(frozen=True)
class DecoderConfig:
    """Prompt encoder + two-way transformer + mask decoder."""

    transformer_depth: int = 2
    transformer_heads: int = 8
    transformer_mlp_dim: int = 2048
    attention_downsample_rate: int = 2
    num_multimask_outputs: int = 3
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256
    mask_in_chans: int = 16
    # When one mask is asked for, fall back to the best of the three
    # multimask outputs if the single-mask output is unstable.
    dynamic_multimask_via_stability: bool = True
    dynamic_multimask_stability_delta: float = 0.05
    dynamic_multimask_stability_thresh: float = 0.98


@dataclass(frozen=True)
class MemoryAttentionConfig:
    """Stack of RoPE self-/cross-attention layers over the memory bank."""

    num_layers: int = 4
    num_heads: int = 1
    dim_feedforward: int = 2048
    dropout: float = 0.1
    rope_theta: float = 10000.0
    pos_enc_at_input: bool = True


@dataclass(frozen=True)
class MemoryEncoderConfig:
    """Mask downsampler + ConvNeXt fuser producing ``out_dim`` memory channels."""

    out_dim: int = 64
    downsampler_kernel_size: int = 3
    downsampler_stride: int = 2
    downsampler_padding: int = 1
    downsampler_total_stride: int = 16
    fuser_layers: int = 2
    fuser_kernel_size: int = 7
    fuser_padding: int = 3
    layer_scale_init_value: float = 1e-6


@dataclass(frozen=True)
class TrackingConfig:
    """How frames are conditioned on memory and how outputs become memory."""

    num_maskmem: int = 7
    max_cond_frames_in_attn: int = -1
    max_obj_ptrs_in_encoder: int = 16
    sigmoid_scale_for_mem_enc: float = 20.0
    sigmoid_bias_for_mem_enc: float = -10.0
    binarize_mask_from_pts_for_mem_enc: bool = True
    use_mask_input_as_output_without_sam: bool = True
    use_high_res_features_in_sam: bool = True
    multimask_output_in_sam: bool = True
    multimask_min_pt_num: int = 0
    multimask_max_pt_num: int = 1
    multimask_output_for_tracking: bool = True
    use_multimask_token_for_obj_ptr: bool = True
    iou_prediction_use_sigmoid: bool = True
    add_tpos_enc_to_obj_ptrs: bool = True
    proj_tpos_enc_in_obj_ptrs: bool = True
    use_signed_tpos_enc_to_obj_ptrs: bool = True
    only_obj_ptrs_in_the_past_for_eval: bool = True
    pred_obj_scores: bool = True
    pred_obj_scores_mlp: bool = True
    fixed_no_obj_ptr: bool = True
    use_mlp_for_obj_ptr_proj: bool = True
    no_obj_embed_spatial: bool = True
    # Small background holes (<= this many low-res pixels) inside a mask are
    # filled before output, as Meta's video predictor does on GPU. 0 = off.
    fill_hole_area: int = 8
    # When several objects are tracked through the same frame, each one's
    # memory of it is encoded with the pixels another object claims more
    # strongly pushed to background (Meta's option of the same name; their
    # configs leave it off, and their video predictor runs objects one at a
    # time, where it has no effect). Output masks are not changed.
    non_overlap_masks_for_mem_enc: bool = False


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build one SAM 2 network."""

    name: str = "sam2.1_hiera_tiny"
    image_size: int = 1024
    backbone_stride: int = 16
    trunk: TrunkConfig = field(default_factory=TrunkConfig)
    neck: NeckConfig = field(default_factory=NeckConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    memory_attention: MemoryAttentionConfig = field(default_factory=MemoryAttentionConfig)
    memory_encoder: MemoryEncoderConfig = field(default_factory=MemoryEncoderConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def __post_init__(self) -> None:
        stride = self.backbone_stride
        if not _is_int(self.image_size) or not _is_int(stride) or stride < 1:
            raise TypeError(
                f"image_size and backbone_stride must be integers, got {self.image_size!r} "
                f"and {stride!r}"
            )
        if self.image_size <= 0 or self.image_size % (stride * 2) != 0:
            raise ValueError(
                f"image_size must be a positive multiple of {stride * 2} "
                f"(the backbone stride times 2), got {self.image_size}"
            )
        if len(self.trunk.stages) != len(self.trunk.window_spec):
            raise ValueError("trunk.stages and trunk.window_spec must have the same length")
        check_bounds(self)

    @property
    def feature_size(self) -> int:
        """Side of the lowest-resolution feature map used by memory attention."""
        return self.image_size // self.backbone_stride


# Meta's short config names and our model names.
_META_ALIASES = {
    "sam2_hiera_t": "sam2_hiera_tiny",
    "sam2_hiera_s": "sam2_hiera_small",
    "sam2_hiera_b+": "sam2_hiera_base_plus",
    "sam2_hiera_l": "sam2_hiera_large",
    "sam2.1_hiera_t": "sam2.1_hiera_tiny",
    "sam2.1_hiera_s": "sam2.1_hiera_small",
    "sam2.1_hiera_b+": "sam2.1_hiera_base_plus",
    "sam2.1_hiera_l": "sam2.1_hiera_large",
}


def _config_dir():
    return resources.files("napari_sam2") / "configs"


def config_names() -> list[str]:
    """Names of the configs shipped with the package."""
    return sorted(
        p.name[: -len(".yaml")] for p in _config_dir().iterdir() if p.name.endswith(".yaml")
    )


def resolve_config_name(name: str) -> str:
    """Map a model name, Meta's config name or a checkpoint file name to a config name.

    ``"sam2.1_hiera_b+"``, ``"sam2.1_hiera_b+.yaml"``, ``"sam2.1_hiera_base_plus"``
    and ``"sam2.1_hiera_base_plus.pt"`` all give ``"sam2.1_hiera_base_plus"``.
    Raises ``ValueError`` naming the known configs when nothing matches.
    """
    stem = Path(str(name)).name
    for suffix in (".yaml", ".yml", ".pt", ".pth"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    stem = _META_ALIASES.get(stem, stem)
    known = config_names()
    if stem in known:
        return stem
    raise ValueError(
        f"unknown model config {name!r}; expected one of {', '.join(known)} "
        f"or Meta's names ({', '.join(sorted(_META_ALIASES))})"
    )


def _type_name(tp: Any) -> str:
    origin = getattr(tp, "__origin__", None)
    if origin is tuple:
        return "a list of integers" if tp.__args__[0] is int else "a list of numbers"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _coerce(tp: Any, value: Any, where: str = "") -> Any:
    """Turn YAML values (lists) into the field's declared type (tuples);
    a value of another type is an error naming the key."""
    origin = getattr(tp, "__origin__", None)
    if origin is tuple:
        args = tp.__args__
        variadic = len(args) == 2 and args[1] is Ellipsis
        good = _is_int if args[0] is int else _is_number
        if isinstance(value, (list, tuple)) and all(good(v) for v in value) and (
            variadic or len(value) == len(args)
        ):
            return tuple(value)
        count = "" if variadic else f" of {len(args)}"
        raise TypeError(f"config key {where} must be {_type_name(tp)}{count}, got {value!r}")
    if tp is float:
        if _is_number(value):
            return float(value)
    elif tp is int:
        if _is_int(value):
            return value
    elif tp is bool or tp is str:
        if isinstance(value, tp):
            return value
    else:  # pragma: no cover - every field has one of the types above
        return value
    raise TypeError(f"config key {where} must be {_type_name(tp)}, got {value!r}")


# Sane bounds of the values that size the network: a config outside them is
# refused before anything is built (Meta's largest model is well inside).
_BOUNDS: dict[str, tuple[float, float]] = {
    "image_size": (32, 8192),
    "backbone_stride": (1, 64),
    "trunk.embed_dim": (1, 2048),
    "trunk.num_heads": (1, 64),
    "trunk.q_pool": (0, 16),
    "trunk.dim_mul": (0.0625, 16),
    "trunk.head_mul": (0.0625, 16),
    "trunk.mlp_ratio": (0.0625, 64),
    "neck.d_model": (1, 4096),
    "neck.scalp": (0, 8),
    "decoder.transformer_depth": (1, 64),
    "decoder.transformer_heads": (1, 128),
    "decoder.transformer_mlp_dim": (1, 65536),
    "decoder.attention_downsample_rate": (1, 64),
    "decoder.num_multimask_outputs": (1, 16),
    "decoder.iou_head_depth": (1, 64),
    "decoder.iou_head_hidden_dim": (1, 65536),
    "decoder.mask_in_chans": (1, 4096),
    "memory_attention.num_layers": (1, 64),
    "memory_attention.num_heads": (1, 128),
    "memory_attention.dim_feedforward": (1, 65536),
    "memory_encoder.out_dim": (1, 4096),
    "memory_encoder.fuser_layers": (0, 64),
    "memory_encoder.downsampler_total_stride": (1, 256),
    "tracking.num_maskmem": (1, 64),
    "tracking.max_obj_ptrs_in_encoder": (0, 4096),
    "tracking.fill_hole_area": (0, 1 << 20),
}
# list-valued keys: (bounds of each entry, most entries)
_LIST_BOUNDS: dict[str, tuple[tuple[int, int], int]] = {
    "trunk.stages": ((1, 128), 8),
    "trunk.window_spec": ((0, 1024), 8),
    "trunk.global_att_blocks": ((0, 1024), 64),
    "trunk.window_pos_embed_bkg_spatial_size": ((1, 1024), 2),
    "neck.backbone_channel_list": ((1, 65536), 8),
    "neck.fpn_top_down_levels": ((0, 8), 8),
}
MAX_TRUNK_BLOCKS = 256


def check_bounds(config: "ModelConfig") -> None:
    """Raise ``ValueError`` naming the first value outside :data:`_BOUNDS`."""
    for key, (lo, hi) in _BOUNDS.items():
        value = _lookup(config, key)
        if not lo <= value <= hi:
            raise ValueError(f"config key {key} = {value!r} is outside the sane range {lo:g} to {hi:g}")
    for key, ((lo, hi), most) in _LIST_BOUNDS.items():
        values = _lookup(config, key)
        if len(values) > most or not all(lo <= v <= hi for v in values):
            raise ValueError(
                f"config key {key} = {list(values)} must hold at most {most} entries "
                f"between {lo} and {hi}"
            )
    if not config.trunk.stages:
        raise ValueError("config key trunk.stages must hold at least one stage")
    if sum(config.trunk.stages) > MAX_TRUNK_BLOCKS:
        raise ValueError(
            f"config key trunk.stages = {list(config.trunk.stages)} has {sum(config.trunk.stages)} "
            f"blocks; at most {MAX_TRUNK_BLOCKS} are sane"
        )


def _lookup(config: Any, key: str) -> Any:
    for part in key.split("."):
        config = getattr(config, part)
    return config


def _build(cls: type, values: Mapping[str, Any], where: str) -> Any:
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(
            f"unknown key(s) {', '.join(unknown)} in config section {where or 'top level'}; "
            f"known keys: {', '.join(sorted(known))}"
        )
    kwargs = {}
    for name, value in values.items():
        tp = hints[name]
        if is_dataclass(tp):
            if not isinstance(value, Mapping):
                raise ValueError(f"config section {where}{name} must be a mapping")
            kwargs[name] = _build(tp, value, f"{where}{name}.")
        else:
            kwargs[name] = _coerce(tp, value, f"{where}{name}")
    return cls(**kwargs)


def config_from_dict(values: Mapping[str, Any]) -> ModelConfig:
    """Build a :class:`ModelConfig` from nested plain values."""
    return _build(ModelConfig, values, "")


def _merge(base: dict, overrides: Mapping[str, Any]) -> dict:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(name_or_path: str | Path, **overrides: Any) -> ModelConfig:
    """Read a shipped config by name (or any YAML file by path) into a ModelConfig.

    Keyword overrides replace values at load time; nested sections take
    mappings, e.g. ``load_config("sam2.1_hiera_tiny", image_size=512,
    tracking={"fill_hole_area": 0})``.
    """
    path = Path(str(name_or_path))
    if path.suffix in (".yaml", ".yml") and path.is_file():
        text = path.read_text()
    else:
        text = (_config_dir() / f"{resolve_config_name(str(name_or_path))}.yaml").read_text()
    values = yaml.safe_load(text) or {}
    if not isinstance(values, Mapping):
        raise ValueError(f"config {name_or_path} must hold a mapping at its top level")
    return config_from_dict(_merge(values, overrides))


def config_to_dict(config: Any) -> dict:
    """Plain nested values of a config (tuples become lists), e.g. to save it."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        return v

    return {k: plain(v) if not is_dataclass(v) else config_to_dict(v)
            for k, v in ((f.name, getattr(config, f.name)) for f in fields(config))}

