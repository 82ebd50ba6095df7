"""The automatic intensity range ignores small saturated regions, and a
session's range can be changed (features cached per range)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2 import load_model
from napari_sam2._sample_data import _contrast_limits, load_sample_array
from napari_sam2.engine import FRAME_CURRENT, FRAME_OUT_OF_DATE, StackSession
from napari_sam2.engine.frames import AUTO_PERCENTILES, FrameSource
from napari_sam2.engine.intensity import AUTO_SATURATION_RIM, full_scale_values, saturated_pixels
from napari_sam2.training.evaluate import largest_lasting_clicks

BLOCK = (slice(20, 36), slice(200, 216))  # 16 x 16 pixels of background in the sample


def _cells(num_frames: int = 3) -> np.ndarray:
    return np.random.default_rng(0).normal(1000, 150, (num_frames, 64, 64)).clip(0, 60000).astype(np.uint16)


# ------------------------------------------------------------ saturation rule


def test_full_scale_values_are_sensor_depths_and_the_dtype_max():
    assert full_scale_values(np.dtype(np.uint8)) == {255}
    assert full_scale_values(np.dtype(np.uint16)) == {255, 511, 1023, 2047, 4095, 8191, 16383, 32767, 65535}
    assert full_scale_values(np.dtype(np.int16)) == {255, 511, 1023, 2047, 4095, 8191, 16383, 32767}


def test_saturated_pixels_grow_by_the_rim_and_skip_unsaturated_float_and_bool():
    frame = np.full((20, 20), 100, np.uint16)
    frame[10, 10] = 65535
    mask = saturated_pixels(frame)
    r = AUTO_SATURATION_RIM
    assert mask.sum() == (2 * r + 1) ** 2 and mask[10 - r : 11 + r, 10 - r : 11 + r].all()
    frame[10, 10] = 65534  # the maximum, but not a full-scale value
    assert saturated_pixels(frame) is None
    assert saturated_pixels(np.full((4, 4), 1.0, np.float32)) is None
    assert saturated_pixels(np.ones((4, 4), bool)) is None
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[0, 0, 1] = 255
    assert saturated_pixels(rgb)[..., 1].sum() == (r + 1) ** 2 and not saturated_pixels(rgb)[..., 0].any()


@pytest.mark.parametrize("level", [65535, 4095])
def test_auto_range_ignores_a_small_saturated_block(level):
    clean = _cells()
    sat = clean.copy()
    sat[:, 10:26, 30:46] = level  # 16 x 16 of 64 x 64: 6 % of the pixels
    lo, hi = FrameSource(clean).intensity_range
    lo_s, hi_s = FrameSource(sat).intensity_range
    # without the rule the 99.8th percentile would be the saturation level
    assert np.percentile(sat, AUTO_PERCENTILES[1]) == level
    assert abs(lo_s - lo) < 15 and abs(hi_s - hi) < 15 and hi_s < 2000


def test_single_hot_pixel_and_unsaturated_data_keep_the_plain_percentiles():
    data = _cells()
    expected = np.percentile(data.astype(np.float64), AUTO_PERCENTILES)
    assert FrameSource(data).intensity_range == pytest.approx(tuple(expected))
    data[1, 5, 5] = 65535
    lo, hi = FrameSource(data).intensity_range
    assert abs(lo - expected[0]) < 2 and abs(hi - expected[1]) < 2


def test_mostly_saturated_or_binary_data_fall_back_to_the_full_sample():
    binary = np.zeros((2, 30, 30), np.uint8)
    binary[:, 5:25, 5:25] = 255  # the rest is constant once the rim is left out
    assert FrameSource(binary).intensity_range == (0.0, 255.0)
    sparse = np.zeros((2, 50, 50), np.uint16)
    sparse[:, 40, 40] = 65535
    sparse[:, 10, 10] = 900  # a dim object: min/max of the unsaturated rest
    assert FrameSource(sparse).intensity_range == (0.0, 900.0)
    assert FrameSource(np.full((2, 8, 8), 255, np.uint8)).intensity_range == (255.0, 256.0)


# ------------------------------------------------------- demo model, sample


@pytest.fixture(scope="module")
def demo():
    return load_model("demo", device="cpu")


@pytest.fixture(scope="module")
def sample():
    image = load_sample_array("cells_timelapse.tif")[:3]
    truth = load_sample_array("cells_timelapse_labels.tif")[:3]
    assert not truth[(slice(None),) + BLOCK].any()
    saturated = image.copy()
    saturated[(slice(None),) + BLOCK] = 65535
    return image, saturated, truth, largest_lasting_clicks(truth, 3)


def _clicked_ious(model, image, truth, clicks, intensity_range) -> list[float]:
    """IoU of each clicked cell over the frames, clicked on frame 0 and tracked."""
    session = StackSession(model, image, intensity_range=intensity_range)
    for obj_id, yx in clicks:
        session.add_points(obj_id, 0, [yx], [1])
    for _ in session.propagate("forward"):
        pass
    out = []
    for obj_id, _ in clicks:
        mine, true = session.labels == obj_id, truth == obj_id
        out.append(float((mine & true).sum() / (mine | true).sum()))
    return out


@pytest.mark.parametrize("mode", ["auto", "layer contrast"])
def test_saturated_block_leaves_clicked_cells_as_on_the_clean_image(demo, sample, mode):
    image, saturated, truth, clicks = sample
    value = "auto" if mode == "auto" else tuple(_contrast_limits(image))
    clean = _clicked_ious(demo, image, truth, clicks, value)
    blocked = _clicked_ious(demo, saturated, truth, clicks, value)
    print(f"\n{mode}: clean IoU {np.round(clean, 3).tolist()}, with the block {np.round(blocked, 3).tolist()}")
    assert min(clean) > 0.6, clean  # the cells are found at all
    assert np.abs(np.subtract(blocked, clean)).max() <= 0.05, (clean, blocked)


# ------------------------------------------------------ changing the range

from .conftest import blobs  # noqa: E402


def _tracked(session) -> np.ndarray:
    return np.array([f for f, _ in session.propagate("forward")])


def test_range_change_re_encodes_lazily_and_switching_back_reuses_features(model, count_calls):
    encodes = count_calls(model, "encode_image")
    data = blobs(n=4)
    session = StackSession(model, data)
    auto = session.intensity_range
    assert auto == FrameSource(data).intensity_range
    session.add_points(1, 0, [(14, 17)], [1])
    first = session.segment_frame(0)
    assert encodes.count == 1
    np.testing.assert_array_equal(_tracked(session), [0, 1, 2, 3])
    labels_auto = session.labels.copy()
    assert encodes.count == 4

    session.set_intensity_range((0, 120))  # the blobs' peaks saturate: another image for the model
    assert session.intensity_range == (0.0, 120.0)
    assert encodes.count == 4  # nothing encoded until needed
    assert not session.is_prepared(0) and not session.is_prepared(2)
    assert session.frame_states(1).tolist() == [FRAME_OUT_OF_DATE] * 4
    session.segment_frame(0)
    assert encodes.count == 5 and session.is_prepared(0) and not session.is_prepared(1)
    np.testing.assert_array_equal(_tracked(session), [0, 1, 2, 3])  # every frame again
    assert session.frame_states().tolist() == [FRAME_CURRENT] * 4
    assert encodes.count == 8
    assert not np.array_equal(session.labels, labels_auto)

    session.set_intensity_range("auto")
    assert session.intensity_range == auto and session.is_prepared(3)
    np.testing.assert_array_equal(session.segment_frame(0), first)
    np.testing.assert_array_equal(_tracked(session), [0, 1, 2, 3])
    assert encodes.count == 8  # the first range's features were still cached
    np.testing.assert_array_equal(session.labels, labels_auto)

    session.set_intensity_range(auto)  # the range in use: nothing to redo
    assert _tracked(session).size == 0


def test_bad_range_changes_nothing_and_a_running_propagation_refuses(model):
    session = StackSession(model, blobs(n=3), intensity_range=(10, 200))
    session.add_points(1, 0, [(14, 17)], [1])
    with pytest.raises(ValueError, match="intensity_range needs lo < hi"):
        session.set_intensity_range((5, 5))
    with pytest.raises(ValueError, match="intensity_range must be"):
        session.set_intensity_range("percentile")
    assert session.intensity_range == (10.0, 200.0)
    run = session.propagate("forward")
    next(run)
    with pytest.raises(RuntimeError, match="propagation is running"):
        session.set_intensity_range("auto")
    run.close()
    assert session.intensity_range == (10.0, 200.0)


def test_frame_source_range_change_reports_whether_mapping_changed(monkeypatch):
    data = _cells()
    source = FrameSource(data)
    reads = []
    read = source.read
    monkeypatch.setattr(source, "read", lambda i: reads.append(i) or read(i))
    assert source.set_intensity_range((0, 5000)) is False  # "auto" was never computed: nothing mapped yet
    assert reads == [] and source.intensity_range == (0.0, 5000.0)
    assert source.set_intensity_range((0, 5000)) is False
    assert source.set_intensity_range("auto") is True and len(reads) == 3
    auto = source.intensity_range
    assert source.set_intensity_range("dtype") is True and source.intensity_range == (0.0, 65535.0)
    assert source.set_intensity_range(auto) is True and source.set_intensity_range("auto") is False
    assert len(reads) == 3  # the "auto" statistics are kept
    with pytest.raises(ValueError, match="intensity_range"):
        source.set_intensity_range((1, 0))
    assert source.intensity_range == auto
