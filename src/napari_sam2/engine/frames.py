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
    range, :attr:`FrameSource.intensity_range`. ``"auto"`` (the default)
    takes the 0.5th and 99.8th percentiles of the finite values of up to 5
    evenly spaced frames (first and last included), all selected channels
    pooled together so that colour balance is kept; if those percentiles are
    equal (a mostly empty image) it falls back to the finite minimum and
    maximum, and a constant sample gets ``(c, c + 1)``, which maps the
    constant to 0. A sample with no finite value gets ``(0, 1)``.

    Saturated pixels are left out of these percentiles: in integer data,
    when a sampled frame's maximum is a full-scale value (the dtype's
    maximum, or ``2**k - 1`` for a ``k``-bit sensor, ``8 <= k``: 255, 1023,
    4095, 16383, 65535 ...), the pixels at that value and those within
    ``AUTO_SATURATION_RIM`` pixels of them (the blurred rim of a clipped
    bead) do not enter the sample. A clipped pixel only says "at least this
    bright", so it carries no information about the range of the rest; left
    in, a bright bead or dead cell covering 0.4 % of a 16-bit frame puts the
    99.8th percentile at 65535 and every cell near black. Those pixels still
    map to 1. Without saturation the rule is exactly the percentiles above;
    if the unsaturated rest is empty or constant, the full sample is used.
    A small bright region below full scale is not detected (its histogram
    cannot be told from sparse bright objects of interest): give a fixed
    range for such data.
    ``"dtype"`` takes the full range of an integer dtype (``(0, 255)`` for
    uint8, ``(0, 65535)`` for uint16); a fixed ``(lo, hi)`` is used as given.
    After mapping, NaN becomes 0, +inf 1 and -inf 0, and values are clipped
    to ``[0, 1]``. Boolean data is accepted (False is 0, True is 1).

Model input (``model_input``)
    * uint8 data with the range ``(0, 255)`` follows Meta's reference loader
      exactly: an 8-bit RGB PIL image resized with PIL's default filter
      (bicubic), divided by 255 in float64, cast to float32, then normalised
      with the ImageNet mean and std (PIL on the CPU, then ``device``). The
      result is bit-identical to ``sam2.utils.misc`` reading the same pixels
      from a lossless file with its default loader (its asynchronous loader
      normalises in float64 and differs by one float32 step).
    * All other data is never quantised to 8 bits: the mapped float32 frame
      is resized with torch's antialiased bicubic filter (the same kernel as
      PIL's bicubic), one axis at a time in the order the installed Pillow
      (13) uses for a square output, clamping to ``[0, 1]`` after each pass
      as PIL's 8-bit path clips. Measured on uint8-representable data
      resized to 1024 (smooth and noise images, 256 to 2048 pixels a side):
      within 1.09 grey levels (of 255) of PIL's 8-bit path, mean at most
      0.32, which is the 8-bit path's own rounding. A single 2D resize
      without the intermediate clamp (PIL mode "F" or torch's antialiased
      bicubic, which agree to 1e-7) is off by up to 24 levels next to
      clipped overshoots; torch's bicubic without antialiasing by up to 130
      levels when shrinking. Being torch, the resize runs on ``device``.
"""

from __future__ import annotations

import math
import operator
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .intensity import AUTO_SATURATION_RIM, saturated_pixels

__all__ = [
    "FrameSource",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "AUTO_PERCENTILES",
    "AUTO_SAMPLE_FRAMES",
    "AUTO_SATURATION_RIM",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# "auto" intensity range: (low, high) percentiles of the pooled finite values
AUTO_PERCENTILES = (0.5, 99.8)
# at most this many evenly spaced frames are read for the "auto" range
AUTO_SAMPLE_FRAMES = 5
# at most this many values per sampled frame enter the percentiles (a fixed
# seeded subset beyond it, so large frames do not cost a full sort)
AUTO_MAX_VALUES_PER_FRAME = 1 << 20

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
        data = _as_array_like(data)
        shape = _checked_shape(data)
        ndim = len(shape)
        if ndim < 2:
            raise ValueError(
                f"data must have at least 2 dimensions (Y, X); got shape {shape}"
            )
        self._data = data
        self._dtype = _checked_dtype(data.dtype)
        self._shape = shape

        self._channel_axis = _channel_axis_of(channel_axis, ndim)
        other = [a for a in range(ndim) if a != self._channel_axis]
        if len(other) < 2:
            raise ValueError(
                f"data of shape {shape} with channel_axis={channel_axis} has no room "
                "for the two spatial axes (Y, X)"
            )
        self._y_axis, self._x_axis = other[-2], other[-1]
        stack_axes = other[:-2]
        self._axis = _propagation_axis_of(
            axis, ndim, stack_axes, self._channel_axis, (self._y_axis, self._x_axis)
        )
        self._channels = _channels_of(channels, shape, self._channel_axis)
        self._fixed = _fixed_positions(index, shape, stack_axes, self._axis, self._channel_axis)

        looks_like_colour = shape[-1] in (3, 4) and shape[-2] > 2 * shape[-1]
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

        self._fixed_range = _fixed_range_of(intensity_range, self._dtype)
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
        the module docstring for the ``"auto"`` rule.
        """
        if self._fixed_range is not None:
            return self._fixed_range
        if self._auto_range is None:
            self._auto_range = self._sample_range()
        return self._auto_range

    def set_intensity_range(self, intensity_range: str | tuple[float, float]) -> bool:
        """Use ``"auto"``, ``"dtype"`` or a fixed ``(lo, hi)`` from now on
        (validated as in the constructor; nothing changes on error). The
        ``"auto"`` statistics are computed once and kept across changes.

        Returns whether a frame mapped before maps differently now (False
        when no range was in use yet: an ``"auto"`` range never computed).
        """
        before = self._fixed_range if self._fixed_range is not None else self._auto_range
        self._fixed_range = _fixed_range_of(intensity_range, self._dtype)
        return before is not None and self.intensity_range != before

    def _sample_range(self) -> tuple[float, float]:
        n = self.num_frames
        picks = np.unique(np.linspace(0, n - 1, min(n, AUTO_SAMPLE_FRAMES)).round().astype(int))
        rng = np.random.default_rng(0)
        values, unsaturated = [], []
        any_saturated = False
        for i in picks:
            frame = self.read(int(i))
            saturated = saturated_pixels(frame)
            flat = frame.reshape(-1)  # (H * W * k,)
            keep = None if saturated is None else ~saturated.reshape(-1)
            if flat.size > AUTO_MAX_VALUES_PER_FRAME:
                pick = rng.integers(0, flat.size, AUTO_MAX_VALUES_PER_FRAME)
                flat = flat[pick]
                keep = None if keep is None else keep[pick]
            if np.issubdtype(flat.dtype, np.floating):
                flat = flat.astype(np.float64)
                flat = flat[np.isfinite(flat)]
            elif flat.dtype == np.bool_:
                flat = flat.astype(np.uint8)
            values.append(flat)
            unsaturated.append(flat if keep is None else flat[keep])
            any_saturated |= keep is not None
        if any_saturated:
            rest = _spread_range(np.concatenate(unsaturated))
            if rest is not None:
                return rest
        pooled = np.concatenate(values)  # (n,) finite values, native ints or float64
        if pooled.size == 0:
            return (0.0, 1.0)
        spread = _spread_range(pooled)
        if spread is not None:
            return spread
        lo = float(pooled.min())
        return (lo, lo + 1.0)

    def normalized(self, i: int) -> np.ndarray:
        """Frame ``i`` mapped to float32 ``[0, 1]`` by :attr:`intensity_range`.

        Shape as :meth:`read`. NaN -> 0, +inf -> 1, -inf -> 0.
        """
        return _map_to_unit(self.read(i), self.intensity_range)

    # ------------------------------------------------------------ model input

    def model_input(
        self, i: int, image_size: int, *, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """Frame ``i`` as the image encoder's input.

        Returns a float32 tensor ``1 x 3 x S x S`` (``S = image_size``) on
        ``device`` (CPU when None), resized and normalised with the ImageNet
        mean and std. See the module docstring for the two resize paths.
        """
        if (
            isinstance(image_size, bool)
            or not isinstance(image_size, (int, np.integer))
            or image_size < 1
        ):
            raise ValueError(f"image_size must be a positive integer, got {image_size!r}")
        size = int(image_size)
        device = torch.device("cpu") if device is None else torch.device(device)
        frame = self.read(i)
        if frame.ndim == 2:
            frame = frame[:, :, None]  # (H, W, 1)
        lo_hi = self.intensity_range
        if self._dtype == np.uint8 and lo_hi == (0.0, 255.0):
            image = _resize_uint8_like_reference(frame, size).to(device)  # (k, S, S)
        else:
            unit = torch.from_numpy(_map_to_unit(frame, lo_hi))  # (H, W, k)
            unit = unit.permute(2, 0, 1).unsqueeze(0)  # (1, k, H, W)
            work = device if device.type in ("cpu", "cuda") else torch.device("cpu")
            image = _resize_like_pil(unit.to(work), size)[0].to(device)  # (k, S, S)
        image = _to_three_channels(image)  # (3, S, S)
        mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=device)[:, None, None]
        std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=device)[:, None, None]
        return ((image - mean) / std).unsqueeze(0)  # (1, 3, S, S)


# ---------------------------------------------------------------- validation


def _as_array_like(data: Any) -> Any:
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


def _checked_shape(data: Any) -> tuple[int, ...]:
    try:
        shape = tuple(operator.index(s) for s in data.shape)
    except TypeError:
        raise ValueError(
            f"data must have a known integer shape; got {tuple(data.shape)!r} "
            "(compute unknown dask chunk sizes first)"
        ) from None
    return shape


def _checked_dtype(dtype: Any) -> np.dtype:
    dtype = np.dtype(dtype)
    real = np.issubdtype(dtype, np.number) and not np.issubdtype(dtype, np.complexfloating)
    if real or dtype == np.bool_:
        return dtype
    raise TypeError(
        f"data must hold real numbers (integer, float or bool); got dtype {dtype}"
    )


def _normalized_axis(value: Any, ndim: int, name: str) -> int:
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


def _channel_axis_of(channel_axis: Any, ndim: int) -> int | None:
    if channel_axis is None:
        return None
    return _normalized_axis(channel_axis, ndim, "channel_axis")


def _propagation_axis_of(
    axis: Any,
    ndim: int,
    stack_axes: list[int],
    channel_axis: int | None,
    spatial: tuple[int, int],
) -> int | None:
    if not stack_axes:
        return None  # a single image: the propagation axis is not used
    ax = _normalized_axis(axis, ndim, "axis")
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


def _fixed_positions(
    index: Mapping[int, int] | None,
    shape: tuple[int, ...],
    stack_axes: list[int],
    axis: int | None,
    channel_axis: int | None,
) -> dict[int, int]:
    ndim = len(shape)
    needed = [a for a in stack_axes if a != axis]
    if index is None:
        index = {}
    if not isinstance(index, Mapping):
        raise ValueError(f"index must be a mapping {{axis: position}}, got {type(index).__name__}")
    fixed: dict[int, int] = {}
    for key, pos in index.items():
        ax = _normalized_axis(key, ndim, "index axis")
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
    if missing:
        raise ValueError(
            f"index must give a position for axis {missing[0]} of data with shape {shape} "
            f"(missing axes {missing}; e.g. index={{{missing[0]}: 0}}); every non-spatial "
            "axis other than the propagation and channel axes is held fixed"
        )
    return fixed


def _channels_of(
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


def _fixed_range_of(intensity_range: Any, dtype: np.dtype) -> tuple[float, float] | None:
    if isinstance(intensity_range, str):
        if intensity_range == "auto":
            return None
        if intensity_range == "dtype":
            if dtype == np.bool_:
                return (0.0, 1.0)
            if np.issubdtype(dtype, np.integer):
                info = np.iinfo(dtype)
                return (float(info.min), float(info.max))
            raise ValueError(
                f'intensity_range="dtype" needs integer or bool data, got {dtype}; '
                'use "auto" or a fixed (lo, hi)'
            )
        raise ValueError(
            f'intensity_range must be "auto", "dtype" or (lo, hi); got {intensity_range!r}'
        )
    try:
        lo, hi = (float(v) for v in intensity_range)
    except (TypeError, ValueError):
        raise ValueError(
            'intensity_range must be "auto", "dtype" or two numbers (lo, hi); '
            f"got {intensity_range!r}"
        ) from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"intensity_range must be finite, got ({lo}, {hi})")
    if not lo < hi:
        raise ValueError(f"intensity_range needs lo < hi, got ({lo}, {hi})")
    return (lo, hi)


def _spread_range(values: np.ndarray) -> tuple[float, float] | None:
    """The ``AUTO_PERCENTILES`` of ``values``, or their min and max when the
    percentiles are equal; None when ``values`` is empty or constant."""
    if values.size == 0:
        return None
    lo, hi = np.percentile(values, AUTO_PERCENTILES)
    if not hi > lo:
        lo, hi = values.min(), values.max()
    return (float(lo), float(hi)) if hi > lo else None


# ------------------------------------------------------------- pixel work


def _map_to_unit(frame: np.ndarray, lo_hi: tuple[float, float]) -> np.ndarray:
    """``frame`` mapped linearly so that ``lo -> 0`` and ``hi -> 1``, clipped.

    float32, same shape; NaN -> 0, +inf -> 1, -inf -> 0. Works in float64
    for dtypes that float32 cannot hold exactly.
    """
    lo, hi = lo_hi
    work = np.result_type(frame.dtype, np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        unit = (frame.astype(work) - work.type(lo)) / work.type(hi - lo)
    np.nan_to_num(unit, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
    np.clip(unit, 0.0, 1.0, out=unit)
    return unit.astype(np.float32, copy=False)


def _resize_uint8_like_reference(frame: np.ndarray, size: int) -> torch.Tensor:
    """``H x W x k`` uint8 -> ``k x S x S`` float32 in [0, 1], as Meta's loader.

    PIL resize with its default filter (bicubic for 8-bit images), then
    ``/ 255`` in float64 and a cast to float32. PIL resamples each band on
    its own, so one band per channel equals the reference's RGB resize.
    """
    if frame.shape[2] == 3:
        resized = np.asarray(Image.fromarray(frame).resize((size, size)))  # (S, S, 3)
    else:
        planes = [
            np.asarray(Image.fromarray(frame[:, :, c]).resize((size, size)))
            for c in range(frame.shape[2])
        ]
        resized = np.stack(planes, axis=-1)  # (S, S, k)
    unit64 = resized / 255.0
    return torch.from_numpy(unit64).permute(2, 0, 1).to(torch.float32)  # (k, S, S)


def _vertical_pass_first(height: int, width: int, size: int) -> bool:
    """Whether Pillow resizes rows (vertical pass) before columns.

    Measured on Pillow 13 for a square ``size x size`` output: it shrinks the
    height first when it shrinks the height and ``2 * W < H + S``; otherwise
    it resizes columns first (as every older Pillow does).
    """
    return size < height and 2 * width < height + size


def _resize_like_pil(unit: torch.Tensor, size: int) -> torch.Tensor:
    """``B x C x H x W`` float in [0, 1] -> ``B x C x S x S``, PIL-bicubic-like.

    Antialiased bicubic (a = -0.5, PIL's kernel), one axis per pass in
    Pillow's order, clamped to [0, 1] after each pass as PIL's 8-bit path
    clips; no 8-bit rounding.
    """
    height, width = unit.shape[-2:]
    if _vertical_pass_first(height, width, size):
        steps = [(size, width), (size, size)]
    else:
        steps = [(height, size), (size, size)]
    out = unit
    for step in steps:
        if tuple(out.shape[-2:]) == step:
            continue
        out = F.interpolate(out, size=step, mode="bicubic", align_corners=False, antialias=True)
        out = out.clamp_(0.0, 1.0)
    return out


def _to_three_channels(image: torch.Tensor) -> torch.Tensor:
    """``k x S x S`` (k = 1, 2, 3) -> ``3 x S x S``: grey replicated, 2 -> (c0, c1, 0)."""
    k = image.shape[0]
    if k == 3:
        return image
    if k == 1:
        return image.expand(3, -1, -1)
    return torch.cat([image, torch.zeros_like(image[:1])], dim=0)
