"""FrameSource: axes, channels, laziness, intensity mapping and model input."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from napari_sam2.engine.frames import (
    AUTO_PERCENTILES,
    AUTO_SAMPLE_FRAMES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    FrameSource,
)
from napari_sam2.engine.model_input import _vertical_pass_first

MEAN = torch.tensor(IMAGENET_MEAN)[:, None, None]
STD = torch.tensor(IMAGENET_STD)[:, None, None]


def unnormalize(x: torch.Tensor) -> torch.Tensor:
    """``1 x 3 x S x S`` model input -> ``3 x S x S`` in [0, 1]."""
    return x[0] * STD + MEAN


class Recording:
    """An array-like that records every key it is indexed with."""

    def __init__(self, array: np.ndarray) -> None:
        self._array = array
        self.shape = array.shape
        self.dtype = array.dtype
        self.keys: list[tuple] = []

    def __getitem__(self, key):
        self.keys.append(key)
        return self._array[key]


def frames_requested(rec: Recording, axis: int) -> list[int]:
    return [key[axis] for key in rec.keys]


def _stack(shape, dtype=np.uint16, seed=0, high=4000):
    return np.random.default_rng(seed).integers(0, high, shape).astype(dtype)


# --------------------------------------------------------------- shapes, axes


def test_time_lapse_shape_len_dtype_and_read():
    data = _stack((7, 20, 30))
    source = FrameSource(data)
    assert len(source) == source.num_frames == 7
    assert source.frame_shape == source.original_size == (20, 30)
    assert source.dtype == np.uint16
    frame = source.read(4)
    assert frame.dtype == np.uint16 and frame.shape == (20, 30)
    np.testing.assert_array_equal(frame, data[4])


def test_single_2d_image_is_one_frame():
    data = _stack((20, 30))
    source = FrameSource(data)
    assert len(source) == 1 and source.axis is None
    np.testing.assert_array_equal(source.read(0), data)
    with pytest.raises(IndexError, match="0 to 0"):
        source.read(1)


@pytest.mark.parametrize("bad", [-1, 7, 100])
def test_frame_out_of_range_is_index_error_with_valid_range(bad):
    source = FrameSource(_stack((7, 4, 5)))
    with pytest.raises(IndexError, match=r"frame -?\d+ is out of range.*0 to 6"):
        source.read(bad)
    with pytest.raises(IndexError, match="0 to 6"):
        source.model_input(bad, 16)


def test_frame_number_must_be_integer():
    source = FrameSource(_stack((3, 4, 5)))
    with pytest.raises(TypeError, match="integer"):
        source.read(1.5)
    assert source.read(np.int64(2)).shape == (4, 5)


def test_4d_tzyx_along_t_with_z_fixed():
    data = _stack((5, 3, 8, 9))  # (T, Z, Y, X)
    source = FrameSource(data, axis=0, index={1: 2})
    assert len(source) == 5 and source.frame_shape == (8, 9)
    np.testing.assert_array_equal(source.read(3), data[3, 2])
    assert source.index == {1: 2}


def test_4d_along_z_with_t_fixed_and_negative_axes():
    data = _stack((5, 3, 8, 9))  # (T, Z, Y, X)
    source = FrameSource(data, axis=-3, index={-4: 4})
    assert source.axis == 1 and len(source) == 3
    np.testing.assert_array_equal(source.read(1), data[4, 1])


def test_negative_axis_picks_the_right_axis():
    data = _stack((2, 6, 8, 9))  # (C?, T, Y, X) read as (Z, T, Y, X)
    source = FrameSource(data, axis=-3, index={0: 1})
    assert len(source) == 6
    np.testing.assert_array_equal(source.read(5), data[1, 5])


def test_missing_index_names_the_axis():
    with pytest.raises(ValueError, match=r"position for axis 1.*missing axes \[1\]"):
        FrameSource(_stack((5, 3, 8, 9)), axis=0)
    with pytest.raises(ValueError, match=r"missing axes \[0, 2\]"):
        FrameSource(_stack((2, 5, 3, 8, 9)), axis=1, index={})


@pytest.mark.parametrize(
    "index, message",
    [
        ({0: 1, 1: 0}, "propagation axis"),
        ({1: 0, 2: 0}, "spatial axis"),
        ({1: 3}, r"position 3 for axis 1 is out of range \(0 to 2\)"),
        ({1: -1}, "out of range"),
        ({1: 1.5}, "must be an integer"),
        ({7: 0}, "out of range for data with 4 dimensions"),
        ([(1, 0)], "mapping"),
    ],
)
def test_bad_index(index, message):
    with pytest.raises(ValueError, match=message):
        FrameSource(_stack((5, 3, 8, 9)), axis=0, index=index)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"axis": 3}, "out of range for data with 3 dimensions"),
        ({"axis": -4}, "out of range"),
        ({"axis": 1}, "spatial axis"),
        ({"axis": -1}, "spatial axis"),
        ({"axis": "0"}, "integer axis"),
        ({"channel_axis": 5}, "channel_axis=5 is out of range"),
    ],
)
def test_bad_axis(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FrameSource(_stack((5, 8, 9)), **kwargs)


def test_axis_cannot_be_the_channel_axis():
    with pytest.raises(ValueError, match="is the channel axis"):
        FrameSource(_stack((3, 5, 8, 9)), axis=0, channel_axis=0)


def test_fewer_than_two_dimensions_is_value_error():
    with pytest.raises(ValueError, match=r"at least 2 dimensions.*\(5,\)"):
        FrameSource(np.zeros(5))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        FrameSource(np.float32(3.0))
    with pytest.raises(ValueError, match="spatial axes"):
        FrameSource(np.zeros((3, 5)), channel_axis=0)


def test_empty_axes_are_rejected():
    with pytest.raises(ValueError, match="no frames"):
        FrameSource(np.zeros((0, 4, 5)))
    with pytest.raises(ValueError, match="empty X axis"):
        FrameSource(np.zeros((2, 4, 0)))


@pytest.mark.parametrize(
    "data",
    [np.array([["a", "b"], ["c", "d"]]), np.empty((2, 2), dtype=object), np.zeros((2, 2), complex)],
)
def test_non_numeric_dtype_is_type_error(data):
    with pytest.raises(TypeError, match=f"real numbers.*dtype {data.dtype}"):
        FrameSource(data)


def test_bool_data_is_accepted_as_zero_one():
    data = np.zeros((2, 6, 6), dtype=bool)
    data[:, 2:4, 2:4] = True
    source = FrameSource(data, intensity_range="dtype")
    assert source.intensity_range == (0.0, 1.0)
    assert FrameSource(data).intensity_range == (0.0, 1.0)  # "auto" falls back to min/max
    assert source.read(1).dtype == np.bool_
    np.testing.assert_array_equal(source.normalized(1), data[1].astype(np.float32))
    assert torch.isfinite(source.model_input(0, 16)).all()


def test_numpy_convertible_input():
    source = FrameSource([[[1, 2], [3, 4]], [[5, 6], [7, 8]]])
    assert len(source) == 2
    np.testing.assert_array_equal(source.read(1), [[5, 6], [7, 8]])


def test_torch_tensor_input():
    data = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    source = FrameSource(data)
    np.testing.assert_array_equal(source.read(1), data[1].numpy())


def test_trailing_colour_axis_is_not_guessed_but_warned():
    data = _stack((10, 12, 3), dtype=np.uint8, high=256)
    with pytest.warns(UserWarning, match="channel_axis=-1"):
        source = FrameSource(data)
    assert len(source) == 10 and source.frame_shape == (12, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explicit = FrameSource(data, channel_axis=-1)
    assert len(explicit) == 1 and explicit.frame_shape == (10, 12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        FrameSource(_stack((2, 4, 4)))  # a stack of 4 x 4 images is no colour image


# ------------------------------------------------------------------ channels


def test_one_channel_is_replicated():
    data = _stack((2, 1, 10, 12))  # (T, C, Y, X)
    source = FrameSource(data, channel_axis=1)
    assert source.read(0).shape == (10, 12, 1)
    x = source.model_input(1, 24)
    grey_levels = unnormalize(x)
    assert torch.allclose(grey_levels[0], grey_levels[1], atol=1e-6)
    assert torch.allclose(grey_levels[0], grey_levels[2], atol=1e-6)
    assert grey_levels.std() > 0.1
    grey = FrameSource(data[:, 0], intensity_range=source.intensity_range)
    assert torch.equal(grey.model_input(1, 24), x)


def test_rgb_channels_kept_in_order_channel_first_and_last():
    rgb = np.zeros((2, 16, 16, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 0
    last = FrameSource(rgb, channel_axis=-1, intensity_range=(0, 255))
    first = FrameSource(np.moveaxis(rgb, -1, 1), channel_axis=1, intensity_range=(0, 255))
    assert last.read(0).shape == first.read(0).shape == (16, 16, 3)
    np.testing.assert_array_equal(first.read(1), rgb[1])
    x = unnormalize(last.model_input(0, 8))
    means = x.mean(dim=(1, 2))
    assert torch.allclose(means, torch.tensor([200 / 255, 100 / 255, 0.0]), atol=1e-6)
    assert torch.equal(last.model_input(0, 8), first.model_input(0, 8))


def test_two_channels_fill_blue_with_zero():
    data = np.stack([np.full((2, 8, 8), 10.0), np.full((2, 8, 8), 30.0)], axis=1)  # (T, 2, Y, X)
    data[0, 1, 0, 0] = 40.0
    source = FrameSource(data, channel_axis=1, intensity_range=(0, 40))
    x = unnormalize(source.model_input(1, 8))
    assert torch.allclose(x[0], torch.full((8, 8), 0.25), atol=1e-6)
    assert torch.allclose(x[1], torch.full((8, 8), 0.75), atol=1e-6)
    assert torch.allclose(x[2], torch.zeros(8, 8), atol=1e-6)


def test_many_channels_need_a_choice():
    data = _stack((3, 10, 12, 5))
    with pytest.raises(ValueError, match=r"5 channels; pass channels="):
        FrameSource(data, channel_axis=-1)


def test_channel_selection_reads_chosen_channels_in_order():
    data = _stack((3, 5, 10, 12))  # (T, C, Y, X)
    rec = Recording(data)
    source = FrameSource(rec, channel_axis=1, channels=(4, 0), intensity_range=(0, 4000))
    frame = source.read(2)
    assert frame.shape == (10, 12, 2)
    np.testing.assert_array_equal(frame[..., 0], data[2, 4])
    np.testing.assert_array_equal(frame[..., 1], data[2, 0])
    # one read per chosen channel, each only that frame and channel
    assert [(k[0], k[1]) for k in rec.keys] == [(2, 4), (2, 0)]
    single = FrameSource(data, channel_axis=1, channels=3)
    assert single.channels == (3,) and single.read(0).shape == (10, 12, 1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"channel_axis": 1, "channels": (0, 1, 2, 3)}, "1 to 3 channels"),
        ({"channel_axis": 1, "channels": ()}, "1 to 3 channels"),
        ({"channel_axis": 1, "channels": (5,)}, "channel 5 is out of range.*0 to 4"),
        ({"channel_axis": 1, "channels": (-1,)}, "out of range"),
        ({"channel_axis": 1, "channels": (1.0,)}, "integers"),
        ({"channels": (0,)}, "channel_axis is None"),
    ],
)
def test_bad_channels(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FrameSource(_stack((3, 5, 10, 12)), **kwargs)


# ------------------------------------------------------------------- laziness


def test_read_requests_only_that_frame():
    data = _stack((50, 3, 16, 16))  # (T, Z, Y, X)
    rec = Recording(data)
    source = FrameSource(rec, axis=0, index={1: 1}, intensity_range=(0, 4000))
    assert rec.keys == []  # construction reads nothing
    source.read(17)
    source.model_input(33, 32)
    assert rec.keys == [(17, 1, slice(None), slice(None)), (33, 1, slice(None), slice(None))]


def test_auto_range_samples_few_frames_once():
    data = _stack((50, 16, 16))
    rec = Recording(data)
    source = FrameSource(rec)
    assert rec.keys == []  # the range is computed on first use
    lo_hi = source.intensity_range
    sampled = frames_requested(rec, 0)
    assert len(sampled) <= AUTO_SAMPLE_FRAMES and sampled[0] == 0 and sampled[-1] == 49
    assert all(isinstance(k, int) for k in sampled)
    rec.keys.clear()
    source.model_input(10, 16)
    source.model_input(20, 16)
    assert frames_requested(rec, 0) == [10, 20]  # no re-sampling
    assert source.intensity_range == lo_hi


def test_read_returns_a_copy_and_never_writes_the_data():
    data = _stack((4, 10, 12))
    data.flags.writeable = False
    keep = data.copy()
    source = FrameSource(data)
    frame = source.read(1)
    frame[:] = 0
    source.model_input(1, 16)
    source.normalized(2)
    np.testing.assert_array_equal(data, keep)


def test_memmap_16bit_reads_one_frame(tmp_path):
    shape = (200, 256, 256)  # 25 MiB of uint16
    path = tmp_path / "stack.raw"
    writer = np.memmap(path, dtype=np.uint16, mode="w+", shape=shape)
    for t in range(shape[0]):
        writer[t] = (np.arange(256 * 256).reshape(256, 256) * (t + 1)) % 60000
    writer.flush()
    del writer
    stack = np.memmap(path, dtype=np.uint16, mode="r", shape=shape)
    source = FrameSource(stack)
    frame_bytes = 256 * 256 * 2
    tracemalloc.start()
    try:
        lo_hi = source.intensity_range
        stats_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        frame = source.read(7)
        source.model_input(7, 64)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert type(frame) is np.ndarray and frame.dtype == np.uint16
    assert frame.flags.owndata and not np.shares_memory(frame, stack)
    np.testing.assert_array_equal(frame, stack[7])
    # reading and preparing one frame costs a few frames' worth, not the stack
    assert peak < 12 * frame_bytes < stack.nbytes
    # the "auto" statistics read a handful of frames, not the stack
    assert stats_peak < stack.nbytes / 4
    assert lo_hi[1] > lo_hi[0]


def test_tifffile_memmap(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    data = _stack((6, 32, 40))
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, data, photometric="minisblack")
    mapped = tifffile.memmap(path, mode="r")
    source = FrameSource(mapped)
    np.testing.assert_array_equal(source.read(5), data[5])
    assert source.model_input(5, 32).shape == (1, 3, 32, 32)


def test_dask_array_reads_lazily():
    da = pytest.importorskip("dask.array")
    data = _stack((20, 2, 24, 24))
    computed = []

    def load(block, block_info=None):
        computed.append(block_info[None]["chunk-location"])
        return block

    lazy = da.from_array(data, chunks=(1, 1, 24, 24)).map_blocks(load, dtype=data.dtype)
    source = FrameSource(lazy, axis=0, index={1: 1}, intensity_range=(0, 4000))
    np.testing.assert_array_equal(source.read(13), data[13, 1])
    assert computed == [(13, 1, 0, 0)]


def test_zarr_array():
    zarr = pytest.importorskip("zarr")
    data = _stack((5, 3, 24, 20))  # (T, Y, X, C) with 3 channels after move
    data = np.ascontiguousarray(np.moveaxis(data, 1, -1))
    z = zarr.create_array(store={}, shape=data.shape, chunks=(1, 24, 20, 3), dtype=data.dtype)
    z[:] = data
    source = FrameSource(z, channel_axis=-1)
    np.testing.assert_array_equal(source.read(4), data[4])
    assert source.model_input(4, 16).shape == (1, 3, 16, 16)


# ------------------------------------------------------------------ intensity


def test_auto_range_is_percentiles_of_sampled_frames():
    data = np.random.default_rng(3).normal(1000, 200, (12, 40, 50)).astype(np.float32)
    rec = Recording(data)
    source = FrameSource(rec)
    lo, hi = source.intensity_range
    sampled = frames_requested(rec, 0)
    expected = np.percentile(data[sampled].astype(np.float64), AUTO_PERCENTILES)
    assert (lo, hi) == pytest.approx(tuple(expected), rel=1e-12)
    assert AUTO_PERCENTILES == (0.5, 99.8)


def test_auto_range_pools_channels_jointly():
    data = np.zeros((2, 10, 10, 2), dtype=np.uint16)
    data[..., 0] = np.arange(100).reshape(10, 10)
    data[..., 1] = 1000 + np.arange(100).reshape(10, 10)
    source = FrameSource(data, channel_axis=-1)
    expected = np.percentile(data.astype(np.float64), AUTO_PERCENTILES)
    assert source.intensity_range == pytest.approx(tuple(expected))


def test_same_mapping_for_every_frame():
    data = np.zeros((2, 10, 10), dtype=np.uint16)
    data[0] = np.arange(100).reshape(10, 10)  # dim frame
    data[1] = 100 + np.arange(100).reshape(10, 10)  # bright frame
    source = FrameSource(data, intensity_range=(0, 199))
    np.testing.assert_allclose(source.normalized(0), data[0] / 199, rtol=1e-6)
    np.testing.assert_allclose(source.normalized(1), data[1] / 199, rtol=1e-6)
    auto = FrameSource(data)
    assert auto.normalized(1).mean() > auto.normalized(0).mean() + 0.4


def test_auto_range_on_uint8_is_not_the_dtype_range():
    data = (np.random.default_rng(1).integers(40, 90, (3, 20, 20))).astype(np.uint8)
    lo, hi = FrameSource(data).intensity_range
    assert 40 <= lo < 45 and 85 < hi <= 89


def test_dtype_range():
    assert FrameSource(_stack((2, 4, 4))).intensity_range != (0.0, 65535.0)
    assert FrameSource(_stack((2, 4, 4)), intensity_range="dtype").intensity_range == (0.0, 65535.0)
    signed = FrameSource(_stack((2, 4, 4), np.int8, high=100), intensity_range="dtype")
    assert signed.intensity_range == (-128.0, 127.0)
    with pytest.raises(ValueError, match='"dtype" needs integer or bool data, got float32'):
        FrameSource(np.zeros((2, 4, 4), np.float32), intensity_range="dtype")


@pytest.mark.parametrize(
    "value, message",
    [
        ((10, 10), "lo < hi"),
        ((10, 5), "lo < hi"),
        ((0, float("nan")), "finite"),
        ((float("-inf"), 1), "finite"),
        ((1, 2, 3), "two numbers"),
        ("percentile", "must be"),
        (None, "two numbers"),
        (("a", "b"), "two numbers"),
    ],
)
def test_bad_intensity_range(value, message):
    with pytest.raises(ValueError, match=message):
        FrameSource(_stack((2, 4, 4)), intensity_range=value)


def test_nan_and_inf_are_ignored_in_statistics_and_mapped_safely():
    rng = np.random.default_rng(5)
    data = rng.uniform(100, 200, (3, 20, 20)).astype(np.float32)
    data[:, 0, 0] = np.nan
    data[:, 0, 1] = np.inf
    data[:, 0, 2] = -np.inf
    source = FrameSource(data)
    lo, hi = source.intensity_range
    finite = data[np.isfinite(data)].astype(np.float64)
    assert (lo, hi) == pytest.approx(tuple(np.percentile(finite, AUTO_PERCENTILES)))
    unit = source.normalized(1)
    assert unit[0, 0] == 0.0 and unit[0, 1] == 1.0 and unit[0, 2] == 0.0
    assert np.isfinite(unit).all() and unit.min() >= 0 and unit.max() <= 1
    x = source.model_input(1, 32)
    assert torch.isfinite(x).all()
    # fixed range: same rules
    fixed = FrameSource(data, intensity_range=(100, 200))
    assert fixed.normalized(0)[0, :3].tolist() == [0.0, 1.0, 0.0]


def test_all_nan_stack_is_safe():
    data = np.full((2, 8, 8), np.nan, dtype=np.float64)
    source = FrameSource(data)
    assert source.intensity_range == (0.0, 1.0)
    assert not source.normalized(0).any()
    assert torch.isfinite(source.model_input(0, 16)).all()


@pytest.mark.parametrize("value", [0, 7, 65535])
def test_constant_stack_does_not_divide_by_zero(value):
    data = np.full((3, 8, 8), value, dtype=np.uint16)
    source = FrameSource(data)
    assert source.intensity_range == (float(value), float(value) + 1.0)
    with np.errstate(all="raise"):
        unit = source.normalized(2)
    assert not unit.any()
    x = source.model_input(2, 16)
    expected = ((torch.zeros(3, 16, 16) - MEAN) / STD)[None]
    assert torch.allclose(x, expected)


def test_mostly_empty_image_falls_back_to_min_max():
    data = np.zeros((2, 50, 50), dtype=np.uint16)
    data[:, 10, 10] = 5000  # 1 bright pixel in 2500: above the 99.8th percentile
    source = FrameSource(data)
    assert source.intensity_range == (0.0, 5000.0)
    assert source.normalized(0)[10, 10] == 1.0


def test_large_frames_are_subsampled_for_statistics():
    data = np.random.default_rng(0).integers(0, 1000, (1, 1100, 1000), dtype=np.uint16)
    lo, hi = FrameSource(data).intensity_range
    exact = np.percentile(data.astype(np.float64), AUTO_PERCENTILES)
    assert abs(lo - exact[0]) < 3 and abs(hi - exact[1]) < 3


# ---------------------------------------------------------------- model input


def test_model_input_layout_dtype_device():
    source = FrameSource(_stack((3, 20, 30)))
    x = source.model_input(1, 64)
    assert x.shape == (1, 3, 64, 64) and x.dtype == torch.float32 and x.device.type == "cpu"
    assert source.model_input(1, 64, device="cpu").device.type == "cpu"
    for bad in (0, -5, 2.5, "64", True):
        with pytest.raises(ValueError, match="image_size must be a positive integer"):
            source.model_input(0, bad)


def test_uint8_full_range_follows_pil_exactly():
    """uint8 with (0, 255): PIL bicubic resize, / 255 in float64, then float32."""
    frame = np.random.default_rng(2).integers(0, 256, (45, 70, 3), dtype=np.uint8)
    source = FrameSource(frame, channel_axis=-1, intensity_range=(0, 255))
    resized = np.asarray(Image.fromarray(frame).resize((64, 64), Image.Resampling.BICUBIC))
    expected = torch.from_numpy(resized / 255.0).permute(2, 0, 1).float()
    expected = (expected - MEAN) / STD
    assert torch.equal(source.model_input(0, 64)[0], expected)


def test_sixteen_bit_keeps_more_than_256_levels():
    ramp = np.linspace(0, 60000, 700)[None, :] + np.linspace(0, 3000, 600)[:, None]
    data = np.stack([ramp, ramp[::-1]]).astype(np.uint16)  # (T, Y, X)
    source = FrameSource(data)
    x = unnormalize(source.model_input(1, 512))[0]
    assert torch.unique(x).numel() > 5000
    # the 8-bit path of the same picture has at most 256 levels
    eight = FrameSource((data // 257).astype(np.uint8), intensity_range=(0, 255))
    assert torch.unique(unnormalize(eight.model_input(1, 512))[0]).numel() <= 256


def test_float_path_is_in_unit_range_and_close_to_8bit_path():
    rng = np.random.default_rng(4)
    for hw in [(90, 120), (700, 500), (300, 1200), (1500, 1100)]:
        u8 = rng.integers(0, 256, hw, dtype=np.uint8)  # noise: worst case for ringing
        eight = unnormalize(FrameSource(u8, intensity_range=(0, 255)).model_input(0, 256))
        as_float = FrameSource(u8.astype(np.float32), intensity_range=(0, 255))
        flt = unnormalize(as_float.model_input(0, 256))
        assert flt.min() >= -1e-6 and flt.max() <= 1 + 1e-6
        gap = (flt - eight).abs() * 255
        assert gap.max() < 1.2, hw
        assert gap.mean() < 0.45, hw


@pytest.mark.parametrize(
    "hw, size",
    [
        ((300, 256), 1024),
        ((1500, 1200), 1024),
        ((1025, 1023), 1024),
        ((1025, 1023), 512),
        ((5000, 20), 64),
        ((66, 65), 64),
        ((65, 66), 64),
        ((100, 82), 64),
        ((100, 81), 64),
    ],
)
def test_pass_order_matches_installed_pillow(hw, size):
    """Our float resize takes the axes in the order Pillow's 8-bit resize does."""
    u8 = np.random.default_rng(0).integers(0, 256, hw, dtype=np.uint8)
    image = Image.fromarray(u8)
    direct = np.asarray(image.resize((size, size)))
    h, w = hw
    rows_first = np.array_equal(direct, np.asarray(image.resize((w, size)).resize((size, size))))
    cols_first = np.array_equal(direct, np.asarray(image.resize((size, h)).resize((size, size))))
    assert rows_first != cols_first  # the case tells the two orders apart
    assert rows_first == _vertical_pass_first(h, w, size)
