"""A lazy frame source over any array-like stack, and its model input.

:class:`FrameSource` wraps a numpy array, ``np.memmap``, dask or zarr array
(anything with ``shape``, ``dtype`` and ``__getitem__`` taking a tuple of
ints and slices) and hands out one frame at a time along the propagation
axis, at the data's own dtype. Nothing reads the whole stack: ``read(i)``
indexes ``data`` with ints for every non-spatial axis and converts only that
block to numpy.

Axes
    The channel axis (if any) is named by ``channel_axis``; of the remaining
    axes the last two are the spatial ``Y, X`` and ``axis`` is the
    propagation axis. Any other axis (Z of a ``T x Z x Y x X`` stack followed
    along T) is held at the position given in ``index``. A plain ``Y x X``
    image, or ``C x Y x X`` / ``Y x X x C`` with ``channel_axis``, is a stack
    of one frame and ``axis`` is not used. A trailing axis of size 3 or 4 is
    never taken for colour on its own: pass ``channel_axis=-1`` (a
    ``UserWarning`` says so when, without a channel axis, the last axis has
    size 3 or 4 and the one before it is more than twice as long).

Channels
    One channel is replicated to the three the model expects; three are used
    as RGB; two become red and green with a zero blue channel; with any
    other count ``channels`` must pick 1 to 3 of them (their order is the
    RGB order).

Intensity
    Every frame of a stack is mapped to ``[0, 1]`` by the same ``(lo, hi)``
    range, :attr:`FrameSource.intensity_range`: ``"auto"`` (the default,
    percentiles of a few sampled frames with saturated pixels left out),
    ``"dtype"`` or a fixed ``(lo, hi)``; the rule is in
    :mod:`napari_sam2.engine.intensity_range`.

Model input (``model_input``)
    uint8 data with the range ``(0, 255)`` follows Meta's reference loader
    exactly; all other data is resized in float, never quantised to 8 bits
    (:mod:`napari_sam2.engine.model_input` says how and how close).
"""

from __future__ import annotations

import operator
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .frame_axes import (
    as_array_like,
    channel_axis_of,
    channels_of,
    checked_dtype,
    checked_shape,
    fixed_positions,
    propagation_axis_of,
)
from .intensity import AUTO_SATURATION_RIM
from .intensity_range import (
    AUTO_MAX_VALUES_PER_FRAME,
    AUTO_PERCENTILES,
    AUTO_SAMPLE_FRAMES,
    fixed_range_of,
    map_to_unit,
    sample_range,
)
from .model_input import IMAGENET_MEAN, IMAGENET_STD, model_input

__all__ = [
    "FrameSource",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "AUTO_PERCENTILES",
    "AUTO_SAMPLE_FRAMES",
    "AUTO_MAX_VALUES_PER_FRAME",
    "AUTO_SATURATION_RIM",
]


class FrameSource:
    """One frame at a time from a stack of any array-like, at native dtype.

    Args:
        data: the stack; numpy, ``np.memmap``, dask, zarr, or anything with
            ``shape``, ``dtype`` and ``__getitem__`` (other objects are
            converted with ``np.asarray``). Never written to.
        axis: the propagation axis of ``data`` (negative counts from the
            end); unused when the data holds a single image.
        channel_axis: the axis holding channels, or None for one channel.
        channels: 1 to 3 channel positions to use (required when the
            channel axis has more than 3 entries).
        index: ``{axis: position}`` for every non-spatial axis other than
            ``axis`` and ``channel_axis``.
        intensity_range: ``"auto"``, ``"dtype"`` or a fixed ``(lo, hi)``.

    Raises:
        ValueError: fewer than 2 dimensions, an empty axis, or a bad
            ``axis``, ``channel_axis``, ``channels``, ``index`` or
            ``intensity_range``.
        TypeError: a non-numeric dtype (strings, objects, complex, dates).
    """

    def __init__(
        self,
        data: Any,
        *,
        axis: int = 0,
        channel_axis: int | None = None,
        channels: int | Sequence[int] | None = None,
        index: Mapping[int, int] | None = None,
        intensity_range: str | tuple[float, float] = "auto",
    ) -> None:
        data = as_array_like(data)
        shape = checked_shape(data)
        ndim = len(shape)
        if ndim < 2:
            raise ValueError(
                f"data must have at least 2 dimensions (Y, X); got shape {shape}"
            )
        self._data = data
        self._dtype = checked_dtype(data.dtype)
        self._shape = shape

        self._channel_axis = channel_axis_of(channel_axis, ndim)
        other = [a for a in range(ndim) if a != self._channel_axis]
        if len(other) < 2:
            raise ValueError(
                f"data of shape {shape} with channel_axis={channel_axis} has no room "
                "for the two spatial axes (Y, X)"
            )
        self._y_axis, self._x_axis = other[-2], other[-1]
        stack_axes = other[:-2]
        self._axis = propagation_axis_of(
            axis, ndim, stack_axes, self._channel_axis, (self._y_axis, self._x_axis)
        )
        self._channels = channels_of(channels, shape, self._channel_axis)
        looks_like_colour = shape[-1] in (3, 4) and shape[-2] > 2 * shape[-1]
        colour_hint = self._channel_axis is None and ndim >= 3 and looks_like_colour
        self._fixed = fixed_positions(
            index, shape, stack_axes, self._axis, self._channel_axis, colour_hint=colour_hint
        )
        if colour_hint and self._fixed:
            raise ValueError(
                f"data of shape {shape} with index={self._fixed} would give frames of "
                f"{shape[-2]} x {shape[-1]} pixels: the last axis (size {shape[-1]}) looks like "
                "colour channels; pass channel_axis=-1 (then no index is needed for it)"
            )

        if self._channel_axis is None and ndim >= 3 and looks_like_colour:
            warnings.warn(
                f"the last axis of data with shape {shape} has size {shape[-1]} and is "
                "read as the X axis; if it holds colour channels pass channel_axis=-1",
                UserWarning,
                stacklevel=2,
            )

        for name, size in (("Y", shape[self._y_axis]), ("X", shape[self._x_axis])):
            if size == 0:
                raise ValueError(f"data of shape {shape} has an empty {name} axis")
        if self._axis is not None and shape[self._axis] == 0:
            raise ValueError(f"data of shape {shape} has no frames along axis {self._axis}")

        self._fixed_range = fixed_range_of(intensity_range, self._dtype)
        self._auto_range: tuple[float, float] | None = None

    # ------------------------------------------------------------------ shape

    def __len__(self) -> int:
        return self.num_frames

    def __repr__(self) -> str:
        return (
            f"FrameSource(shape={self._shape}, dtype={self._dtype}, axis={self._axis}, "
            f"channel_axis={self._channel_axis}, channels={self._channels}, "
            f"num_frames={self.num_frames}, frame_shape={self.frame_shape})"
        )

    @property
    def num_frames(self) -> int:
        """Number of frames along the propagation axis (1 for one image)."""
        return 1 if self._axis is None else self._shape[self._axis]

    @property
    def frame_shape(self) -> tuple[int, int]:
        """``(H, W)``: the spatial size of a frame in the original data."""
        return (self._shape[self._y_axis], self._shape[self._x_axis])

    @property
    def data_shape(self) -> tuple[int, ...]:
        """The shape of the whole data (all axes)."""
        return self._shape

    @property
    def original_size(self) -> tuple[int, int]:
        """``(H, W)`` that masks are resized back to; points are ``(y, x)`` in it."""
        return self.frame_shape

    @property
    def dtype(self) -> np.dtype:
        """The data's own dtype; :meth:`read` returns frames in it."""
        return self._dtype

    @property
    def axis(self) -> int | None:
        """The propagation axis of the data (non-negative), None for one image."""
        return self._axis

    @property
    def channel_axis(self) -> int | None:
        """The channel axis of the data (non-negative), or None."""
        return self._channel_axis

    @property
    def channels(self) -> tuple[int, ...] | None:
        """The channel positions read, in RGB order; None without channel axis."""
        return self._channels

    @property
    def index(self) -> dict[int, int]:
        """``{axis: position}`` for the axes held fixed (non-negative axes)."""
        return dict(self._fixed)

    # ------------------------------------------------------------------- read

    def read(self, i: int) -> np.ndarray:
        """Frame ``i`` at the native dtype, read alone from the data.

        Returns ``H x W`` without a channel axis, else ``H x W x k`` with the
        ``k`` selected channels in :attr:`channels` order. The array is a
        fresh copy: changing it never touches the data.
        """
        i = self._frame_number(i)
        all_channels = self._channel_axis is not None and self._channels == tuple(
            range(self._shape[self._channel_axis])
        )
        if self._channels is None or all_channels:
            frame = self._read_block(i, channel=None)
        else:
            planes = [self._read_block(i, channel=c) for c in self._channels]
            frame = np.stack(planes, axis=-1)  # (H, W, k)
        return np.ascontiguousarray(frame)

    def _frame_number(self, i: int) -> int:
        try:
            i = operator.index(i)
        except TypeError:
            raise TypeError(f"frame number must be an integer, got {type(i).__name__}") from None
        n = self.num_frames
        if not 0 <= i < n:
            raise IndexError(f"frame {i} is out of range: valid frames are 0 to {n - 1}")
        return i

    def _read_block(self, i: int, *, channel: int | None) -> np.ndarray:
        """Index the data for frame ``i`` (one channel, or all channels)."""
        key: list[int | slice] = [slice(None)] * len(self._shape)
        if self._axis is not None:
            key[self._axis] = i
        for ax, pos in self._fixed.items():
            key[ax] = pos
        kept = [self._y_axis, self._x_axis]
        if self._channel_axis is not None:
            if channel is None:
                kept.append(self._channel_axis)
            else:
                key[self._channel_axis] = channel
        block = np.asarray(self._data[tuple(key)])
        if not block.flags.owndata:  # a view into the data (numpy, memmap)
            block = np.array(block, copy=True)
        # remaining axes come in the data's order; put them as (Y, X[, C])
        order = sorted(kept)
        if order == kept:
            return block  # already (H, W[, C])
        return np.transpose(block, [order.index(a) for a in kept])  # (H, W[, C])

    # -------------------------------------------------------------- intensity

    @property
    def intensity_range(self) -> tuple[float, float]:
        """``(lo, hi)`` mapped to ``(0, 1)`` for every frame of the stack.

        Fixed or computed once (on first use) from a sample of frames; see
        :mod:`napari_sam2.engine.intensity_range` for the ``"auto"`` rule.
        """
        if self._fixed_range is not None:
            return self._fixed_range
        if self._auto_range is None:
            self._auto_range = sample_range(self.read, self.num_frames)
        return self._auto_range

    def set_intensity_range(self, intensity_range: str | tuple[float, float]) -> bool:
        """Use ``"auto"``, ``"dtype"`` or a fixed ``(lo, hi)`` from now on
        (validated as in the constructor; nothing changes on error). The
        ``"auto"`` statistics are computed once and kept across changes.

        Returns whether a frame mapped before maps differently now (False
        when no range was in use yet: an ``"auto"`` range never computed).
        """
        before = self._fixed_range if self._fixed_range is not None else self._auto_range
        self._fixed_range = fixed_range_of(intensity_range, self._dtype)
        return before is not None and self.intensity_range != before

    def normalized(self, i: int) -> np.ndarray:
        """Frame ``i`` mapped to float32 ``[0, 1]`` by :attr:`intensity_range`.

        Shape as :meth:`read`. NaN -> 0, +inf -> 1, -inf -> 0.
        """
        return map_to_unit(self.read(i), self.intensity_range)

    # ------------------------------------------------------------ model input

    def model_input(
        self, i: int, image_size: int, *, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """Frame ``i`` as the image encoder's input.

        Returns a float32 tensor ``1 x 3 x S x S`` (``S = image_size``) on
        ``device`` (CPU when None), resized and normalised with the ImageNet
        mean and std. See :mod:`napari_sam2.engine.model_input` for the two
        resize paths.
        """
        if (
            isinstance(image_size, bool)
            or not isinstance(image_size, (int, np.integer))
            or image_size < 1
        ):
            raise ValueError(f"image_size must be a positive integer, got {image_size!r}")
        size = int(image_size)
        device = torch.device("cpu") if device is None else torch.device(device)
        return model_input(self.read(i), self._dtype, self.intensity_range, size, device)  # (1, 3, S, S)
