"""Inputs are validated where they enter the engine, and nothing is
silently wrong: each bad input is an error naming the argument, each odd
but valid one gives the right result."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import zarr

from napari_sam2.engine import CacheBudget, SessionOptions, StackSession
from napari_sam2.engine.features import FeatureCache
from napari_sam2.engine.frames import FrameSource
from napari_sam2.model import FrameFeatures

from ._helpers import make_read_only, small_model


@pytest.fixture(scope="module")
def model():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield small_model()
    torch.set_num_threads(before)


def stack(n: int = 2, h: int = 64, w: int = 64) -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    blob = 170 * np.exp(-((yy - h / 2) ** 2 + (xx - w / 2) ** 2) / (2 * (h / 6) ** 2))
    return np.stack([np.clip(30 + 20 * rng.random((h, w)) + blob, 0, 255).astype(np.uint8)
                     for _ in range(n)])


# ------------------------------------------------------------ silently wrong


def test_float32_range_near_the_dtype_limit_is_normalised():
    data = np.linspace(-3e38, 3e38, 64 * 64, dtype=np.float32).reshape(1, 64, 64)
    unit = FrameSource(data).normalized(0)
    assert unit.min() == 0.0 and unit.max() == 1.0
    assert 0.4 < float(unit.mean()) < 0.6  # a ramp, not 0 everywhere
    assert np.all(np.diff(unit.reshape(-1)) >= 0)


def test_a_mask_of_negative_values_is_the_object(model):
    session = StackSession(model, stack())
    mask = np.zeros((64, 64), np.int16)
    mask[20:44, 16:48] = -1
    session.add_mask(1, 0, mask)
    labels = session.segment_frame(0)
    inside = labels[24:40, 20:44]
    assert (inside == 1).mean() > 0.9 and (labels[:8, :8] == 0).all()


def test_a_mask_with_nan_is_refused(model):
    session = StackSession(model, stack())
    mask = np.zeros((64, 64))
    mask[0, 0] = np.nan
    with pytest.raises(ValueError, match="mask must hold finite numbers"):
        session.add_mask(1, 0, mask)


def test_clicks_after_a_mask_do_not_depend_on_segment_frame_between(model):
    mask = np.zeros((64, 64), bool)
    mask[20:44, 16:48] = True

    def run(segment_between: bool) -> np.ndarray:
        session = StackSession(model, stack())
        session.add_mask(1, 0, mask)
        if segment_between:
            session.segment_frame(0)
        session.add_points(1, 0, [(30, 30)], [0])
        return session.segment_frame(0)

    np.testing.assert_array_equal(run(False), run(True))


# ------------------------------------------------------------ labels arrays


def test_uint64_labels_refuse_ids_beyond_int64(model):
    labels = np.zeros((2, 64, 64), np.uint64)
    session = StackSession(model, stack(), labels=labels)
    with pytest.raises(ValueError, match=r"object id 9223372036854775808 does not fit.*int64"):
        session.add_points(2**63, 0, [(30, 30)], [1])
    assert session.object_ids == []
    session.add_points(2**63 - 1, 0, [(30, 30)], [1])  # the largest that fits both
    session.segment_frame(0)


def test_read_only_numpy_labels_are_refused_at_the_constructor(model):
    labels = np.zeros((2, 64, 64), np.int32)
    labels.flags.writeable = False
    with pytest.raises(ValueError, match="labels array is read-only"):
        StackSession(model, stack(), labels=labels)


def test_read_only_zarr_labels_are_refused_at_the_constructor(model, tmp_path):
    zarr.create_array(store=str(tmp_path / "l.zarr"), shape=(2, 64, 64), dtype="int32")
    labels = zarr.open_array(str(tmp_path / "l.zarr"), mode="r")
    with pytest.raises(ValueError, match="labels array is read-only"):
        StackSession(model, stack(), labels=labels)


def test_labels_as_a_list_is_a_type_error_naming_labels(model):
    with pytest.raises(TypeError, match="labels must be an array"):
        StackSession(model, stack(), labels=np.zeros((2, 64, 64), np.int32).tolist())


# ------------------------------------------------------------ options


def test_options_as_a_dict_is_a_type_error_naming_options(model):
    with pytest.raises(TypeError, match="options must be a SessionOptions"):
        StackSession(model, stack(), options={"history_mb": 10})


@pytest.mark.parametrize("value", [math.inf, math.nan, "big"])
def test_history_mb_must_be_a_finite_number(value):
    with pytest.raises((TypeError, ValueError), match="history_mb"):
        SessionOptions(history_mb=value)


@pytest.mark.parametrize("value, error", [("big", TypeError), (math.nan, ValueError), (math.inf, ValueError)])
def test_cache_budgets_must_be_finite_numbers(value, error):
    with pytest.raises(error, match="ram_mb"):
        CacheBudget(ram_mb=value)
    with pytest.raises(error, match="disk_mb"):
        CacheBudget(disk_mb=value)


# ------------------------------------------------------------ prompts


def test_huge_coordinates_are_value_errors(model):
    session = StackSession(model, stack())
    with pytest.raises(ValueError, match="points must be finite"):
        session.add_points(1, 0, [(10**400, 5)], [1])
    with pytest.raises(ValueError, match="box must be finite"):
        session.add_box(1, 0, (0, 0, 10**400, 5))


def test_box_on_the_last_row_and_column_is_accepted(model):
    session = StackSession(model, stack())
    session.add_box(1, 0, (63, 0, 64, 64))
    session.add_box(2, 0, (0, 63, 64, 64))
    session.segment_frame(0)
    assert session.object_ids == [1, 2]


def test_box_on_a_one_row_image_is_accepted(model):
    session = StackSession(model, np.tile(np.arange(64, dtype=np.uint8), (2, 1, 1)))
    session.add_box(1, 0, (0, 10, 1, 30))
    session.segment_frame(0)
    assert session.prompted_frames(1) == [0]


def test_colour_stack_is_not_read_as_three_pixel_frames():
    data = np.zeros((5, 64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="channel_axis=-1") as err:
        FrameSource(data)
    assert "index={" not in str(err.value)
    with pytest.raises(ValueError, match="64 x 3 pixels.*channel_axis=-1"):
        FrameSource(data, index={1: 0})
    assert FrameSource(data, channel_axis=-1).frame_shape == (64, 64)


# ------------------------------------------------------------ disk feature cache


def _feats(value: float) -> FrameFeatures:
    return FrameFeatures(torch.full((1, 4, 8, 8), value), None)


def test_two_caches_sharing_a_disk_dir_never_read_each_others_frames(tmp_path):
    budget = CacheBudget(ram_mb=0, disk_mb=1, disk_dir=tmp_path)
    a, b = FeatureCache(budget), FeatureCache(budget)
    a.put(0, _feats(1.0))
    b.put(0, _feats(2.0))
    assert float(a.get(0).embedding[0, 0, 0, 0]) == 1.0
    assert float(b.get(0).embedding[0, 0, 0, 0]) == 2.0
    a.close()
    b.close()
    assert list(tmp_path.iterdir()) == []


def test_session_close_removes_the_spilled_files(model, tmp_path):
    options = SessionOptions(feature_cache=CacheBudget(ram_mb=0, disk_mb=64, disk_dir=tmp_path))
    session = StackSession(model, stack(), options=options)
    session.add_points(1, 0, [(30, 30)], [1])
    session.segment_frame(0)
    assert any(p.is_dir() for p in tmp_path.iterdir())
    session.close()
    assert list(tmp_path.iterdir()) == []


def test_read_only_disk_dir_is_named_at_once(tmp_path, monkeypatch):
    folder = make_read_only(tmp_path / "ro", monkeypatch)
    with pytest.raises(PermissionError, match=str(folder)):
        FeatureCache(CacheBudget(ram_mb=0, disk_mb=1, disk_dir=folder))


def test_a_failing_spill_warns_and_the_cache_recomputes(tmp_path, monkeypatch):
    import napari_sam2.engine.features as features

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(features.torch, "save", disk_full)
    cache = FeatureCache(CacheBudget(ram_mb=0, disk_mb=1, disk_dir=tmp_path))
    with pytest.warns(RuntimeWarning, match="cannot write to"):
        cache.put(0, _feats(1.0))
    assert 0 not in cache
    got = cache.get_or_compute(0, lambda i: _feats(3.0))
    assert float(got.embedding[0, 0, 0, 0]) == 3.0
    cache.close()
    assert list(tmp_path.iterdir()) == []
