"""Checks of a stack's array, axes, channels and fixed positions, for
:class:`~napari_sam2.engine.frames.FrameSource` (whose docstring says what
the axes mean). Each function validates one argument against the data's
shape and raises an error that names it and says what is expected.
"""

from __future__ import annotations

import operator
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = [
    "as_array_like",
    "checked_shape",
    "checked_dtype",
    "channel_axis_of",
    "propagation_axis_of",
    "fixed_positions",
    "channels_of",
]


def as_array_like(data: Any) -> Any:
    if all(hasattr(data, name) for name in ("shape", "dtype", "__getitem__")):
        try:
            np.dtype(data.dtype)
            return data
        except TypeError:
            pass  # e.g. a torch tensor: its dtype is not a numpy dtype
    try:
        return np.asarray(data)
    except Exception as exc:
        raise TypeError(
            f"data must be an array-like with shape, dtype and __getitem__ or be "
            f"convertible with numpy.asarray; got {type(data).__name__} ({exc})"
        ) from exc


def checked_shape(data: Any) -> tuple[int, ...]:
    try:
        shape = tuple(operator.index(s) for s in data.shape)
    except TypeError:
        raise ValueError(
            f"data must have a known integer shape; got {tuple(data.shape)!r} "
            "(compute unknown dask chunk sizes first)"
        ) from None
    return shape


def checked_dtype(dtype: Any) -> np.dtype:
    dtype = np.dtype(dtype)
    real = np.issubdtype(dtype, np.number) and not np.issubdtype(dtype, np.complexfloating)
    if real or dtype == np.bool_:
        return dtype
    raise TypeError(
        f"data must hold real numbers (integer, float or bool); got dtype {dtype}"
    )


def normalized_axis(value: Any, ndim: int, name: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer axis, got {value!r}")
    try:
        ax = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer axis, got {value!r}") from None
    if not -ndim <= ax < ndim:
        raise ValueError(
            f"{name}={value} is out of range for data with {ndim} dimensions "
            f"(valid: {-ndim} to {ndim - 1})"
        )
    return ax % ndim


def channel_axis_of(channel_axis: Any, ndim: int) -> int | None:
    if channel_axis is None:
        return None
    return normalized_axis(channel_axis, ndim, "channel_axis")


def propagation_axis_of(
    axis: Any,
    ndim: int,
    stack_axes: list[int],
    channel_axis: int | None,
    spatial: tuple[int, int],
) -> int | None:
    if not stack_axes:
        return None  # a single image: the propagation axis is not used
    ax = normalized_axis(axis, ndim, "axis")
    if ax == channel_axis:
        raise ValueError(
            f"axis={axis} is the channel axis; the propagation axis must be one of {stack_axes}"
        )
    if ax in spatial:
        raise ValueError(
            f"axis={axis} is a spatial axis (Y, X are axes {spatial[0]}, {spatial[1]}); "
            f"the propagation axis must be one of {stack_axes}"
        )
    return ax


def fixed_positions(
    index: Mapping[int, int] | None,
    shape: tuple[int, ...],
    stack_axes: list[int],
    axis: int | None,
    channel_axis: int | None,
    *,
    colour_hint: bool = False,
) -> dict[int, int]:
    ndim = len(shape)
    needed = [a for a in stack_axes if a != axis]
    if index is None:
        index = {}
    if not isinstance(index, Mapping):
        raise ValueError(f"index must be a mapping {{axis: position}}, got {type(index).__name__}")
    fixed: dict[int, int] = {}
    for key, pos in index.items():
        ax = normalized_axis(key, ndim, "index axis")
        if ax not in needed:
            role = (
                "the propagation axis" if ax == axis
                else "the channel axis" if ax == channel_axis
                else "a spatial axis"
            )
            raise ValueError(
                f"index names axis {key}, which is {role}; index positions are only "
                f"for the other non-spatial axes {needed}"
            )
        if ax in fixed:
            raise ValueError(f"index names axis {ax} twice")
        if isinstance(pos, bool):
            raise ValueError(f"index position for axis {ax} must be an integer, got {pos!r}")
        try:
            p = operator.index(pos)
        except TypeError:
            raise ValueError(
                f"index position for axis {ax} must be an integer, got {pos!r}"
            ) from None
        if not 0 <= p < shape[ax]:
            raise ValueError(
                f"index position {p} for axis {ax} is out of range (0 to {shape[ax] - 1})"
            )
        fixed[ax] = p
    missing = [a for a in needed if a not in fixed]
    if missing and colour_hint:
        raise ValueError(
            f"data of shape {shape} has one axis more than frames of Y x X along axis {axis}: "
            f"its last axis (size {shape[-1]}) looks like colour channels; pass channel_axis=-1"
        )
    if missing:
        raise ValueError(
            f"index must give a position for axis {missing[0]} of data with shape {shape} "
            f"(missing axes {missing}; e.g. index={{{missing[0]}: 0}}); every non-spatial "
            "axis other than the propagation and channel axes is held fixed"
        )
    return fixed


def channels_of(
    channels: int | Sequence[int] | None, shape: tuple[int, ...], channel_axis: int | None
) -> tuple[int, ...] | None:
    if channel_axis is None:
        if channels is not None:
            raise ValueError("channels were given but channel_axis is None; name the channel axis")
        return None
    count = shape[channel_axis]
    if count == 0:
        raise ValueError(f"the channel axis {channel_axis} of data with shape {shape} is empty")
    if channels is None:
        if count > 3:
            raise ValueError(
                f"the channel axis has {count} channels; pass channels= with 1 to 3 of "
                f"them (positions 0 to {count - 1}), e.g. channels=(0,)"
            )
        return tuple(range(count))
    if isinstance(channels, (int, np.integer)) and not isinstance(channels, bool):
        channels = (channels,)
    try:
        picked = tuple(channels)
    except TypeError:
        raise ValueError(
            f"channels must be an int or a sequence of ints, got {channels!r}"
        ) from None
    if not 1 <= len(picked) <= 3:
        raise ValueError(f"channels must pick 1 to 3 channels, got {len(picked)}: {picked}")
    out = []
    for c in picked:
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)):
            raise ValueError(f"channels must be integers, got {c!r}")
        if not 0 <= c < count:
            raise ValueError(
                f"channel {c} is out of range: the channel axis has channels 0 to {count - 1}"
            )
        out.append(int(c))
    return tuple(out)

