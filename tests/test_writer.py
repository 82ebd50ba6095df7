"""The labels TIFF writer: exact round trip, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_sam2._writer import write_labels

INTEGER_DTYPES = [np.uint8, np.uint16, np.uint32, np.uint64,
                  np.int8, np.int16, np.int32, np.int64]


@pytest.mark.parametrize("dtype", INTEGER_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", [(7, 9), (3, 7, 9), (2, 3, 7, 9)], ids=str)
def test_round_trip_is_exact(tmp_path, dtype, shape):
    info = np.iinfo(dtype)
    data = np.random.default_rng(0).integers(info.min, info.max, shape, dtype=dtype,
                                             endpoint=True)
    data.flat[0], data.flat[-1] = info.min, info.max  # the extremes survive
    written = write_labels(str(tmp_path / "labels.tif"), data, {})
    assert written == [str(tmp_path / "labels.tif")]
    back = tifffile.imread(written[0])
    assert back.dtype == np.dtype(dtype)
    assert back.shape == shape
    np.testing.assert_array_equal(back, data)


def test_axis_labels_go_into_the_metadata(tmp_path):
    data = np.zeros((4, 5, 6), np.int32)
    data[1, 2, 3] = 7
    path = write_labels(str(tmp_path / "l.tiff"), data, {"axis_labels": ("t", "y", "x")})[0]
    with tifffile.TiffFile(path) as tif:
        assert tif.series[0].axes == "TYX"
        np.testing.assert_array_equal(tif.asarray(), data)


def test_unusable_axis_labels_are_left_out(tmp_path):
    data = np.ones((2, 5, 6), np.uint16)
    path = write_labels(str(tmp_path / "l.tif"), data, {"axis_labels": ("time", "y", "x")})[0]
    np.testing.assert_array_equal(tifffile.imread(path), data)


def test_missing_suffix_gets_tif_and_uppercase_suffix_is_accepted(tmp_path):
    data = np.arange(12, dtype=np.uint32).reshape(3, 4)
    (plain,) = write_labels(str(tmp_path / "labels"), data, {})
    assert plain.endswith("labels.tif")
    (upper,) = write_labels(str(tmp_path / "LABELS.TIF"), data, {})
    for path in (plain, upper):
        np.testing.assert_array_equal(tifffile.imread(path), data)


def test_array_like_input_is_accepted(tmp_path):
    class Lazy:  # e.g. a dask or zarr array: only __array__
        def __array__(self, dtype=None, copy=None):
            return np.full((3, 3), 5, np.int16)

    (path,) = write_labels(str(tmp_path / "lazy.tif"), Lazy(), {})
    back = tifffile.imread(path)
    assert back.dtype == np.int16 and (back == 5).all()


@pytest.mark.parametrize("data, error, match", [
    (np.zeros((4, 4), np.float32), TypeError, "integer dtype"),
    (np.zeros((4, 4), bool), TypeError, "integer dtype"),
    (np.zeros(5, np.int32), ValueError, "at least 2 dimensions"),
    ([np.zeros((8, 8), np.int32), np.zeros((4, 4), np.int32)], TypeError, "multiscale"),
], ids=["float", "bool", "1d", "multiscale"])
def test_unsupported_input_raises_a_clear_error(tmp_path, data, error, match):
    target = tmp_path / "bad.tif"
    with pytest.raises(error, match=match):
        write_labels(str(target), data, {})
    assert not target.exists()


def test_other_suffix_is_refused(tmp_path):
    with pytest.raises(ValueError, match="TIFF"):
        write_labels(str(tmp_path / "labels.png"), np.zeros((4, 4), np.uint8), {})


def test_npe2_dispatches_labels_tiffs_to_the_writer(tmp_path):
    npe2 = pytest.importorskip("npe2")
    manager = npe2.PluginManager.instance()
    manager.discover()
    data = np.array([[0, 1], [2, 70000]], dtype=np.int32)
    written = npe2.write(str(tmp_path / "out.tif"), [(data, {"name": "seg"}, "labels")],
                         plugin_name="napari-sam2")
    assert written == [str(tmp_path / "out.tif")]
    back = tifffile.imread(written[0])
    assert back.dtype == np.int32
    np.testing.assert_array_equal(back, data)
