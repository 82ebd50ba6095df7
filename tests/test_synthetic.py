"""The synthetic microscopy generator: determinism, layouts, ground truth."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from napari_sam2.sample_data import generate
from napari_sam2.synthetic import (
    ImagingParams,
    Synthetic,
    TimelapseParams,
    ZStackParams,
    make_timelapse,
    make_zstack,
    random_timelapse_params,
    random_zstack_params,
    samplelike_timelapse_params,
    samplelike_zstack_params,
)

SMALL_TIMELAPSE = TimelapseParams(n_frames=6, height=64, width=96, n_cells=4, radius=8.0)
SMALL_ZSTACK = ZStackParams(n_slices=10, height=80, width=64, n_nuclei=4, radius=9.0)


@pytest.fixture(scope="module")
def sample() -> Synthetic:
    """The shipped time-lapse (30 x 256 x 256), regenerated."""
    return generate.cells_timelapse()


@pytest.fixture(scope="module")
def zsample() -> Synthetic:
    """The shipped z-stack (32 x 256 x 256), regenerated."""
    return generate.nuclei_zstack()


def _frames(labels: np.ndarray, cid: int) -> np.ndarray:
    return np.flatnonzero((labels == cid).any(axis=(1, 2)))


def _on_border(mask: np.ndarray) -> bool:
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


# -- layouts and determinism ------------------------------------------------


@pytest.mark.parametrize("make, params", [(make_timelapse, SMALL_TIMELAPSE),
                                           (make_zstack, SMALL_ZSTACK)])
def test_same_seed_same_arrays_other_seed_other_arrays(make, params):
    a, b, c = make(params, 3), make(params, 3), make(params, 4)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.parents == b.parents
    assert not np.array_equal(a.labels, c.labels)
    assert not np.array_equal(a.image, c.image)


def test_timelapse_layout_and_dtypes():
    result = make_timelapse(SMALL_TIMELAPSE, 0)
    assert isinstance(result, Synthetic)
    assert result.image.shape == (6, 64, 96) and result.image.dtype == np.uint16
    assert result.labels.shape == (6, 64, 96) and result.labels.dtype == np.int32


def test_zstack_layout_and_dtypes():
    result = make_zstack(SMALL_ZSTACK, 0)
    assert result.image.shape == (10, 80, 64) and result.image.dtype == np.uint16
    assert result.labels.shape == (10, 80, 64) and result.labels.dtype == np.int32
    assert set(result.parents.values()) == {0}


def test_defaults_are_used_when_params_is_none():
    result = make_timelapse(None, 1)
    default = TimelapseParams()
    assert result.image.shape == (default.n_frames, default.height, default.width)
    np.testing.assert_array_equal(result.labels, make_timelapse(TimelapseParams(), 1).labels)


@pytest.mark.parametrize("make, params", [(make_timelapse, SMALL_TIMELAPSE),
                                           (make_zstack, SMALL_ZSTACK)])
def test_ids_are_contiguous_and_parents_cover_them(make, params):
    result = make(params, 2)
    ids = np.unique(result.labels)
    assert ids[0] == 0
    np.testing.assert_array_equal(ids[1:], np.arange(1, len(ids)))
    assert set(result.parents) == set(ids[1:].tolist())


def test_params_are_frozen_and_keyword_only():
    params = TimelapseParams()
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.n_cells = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        TimelapseParams(20)  # type: ignore[misc]
    with pytest.raises(ValueError, match="radius"):
        ZStackParams(radius=0.0)
    with pytest.raises(ValueError, match="persistence"):
        TimelapseParams(persistence=1.5)


# -- imaging model ----------------------------------------------------------


@pytest.mark.parametrize("name", ["sample", "zsample"])
def test_intensities_are_realistic_16_bit(name, request):
    result = request.getfixturevalue(name)
    background = result.image[result.labels == 0]
    foreground = result.image[result.labels > 0]
    assert 100 <= np.median(background) <= 500
    assert 1000 <= np.percentile(foreground, 99) <= 10000
    assert result.image.max() < 20000  # far from the 65535 ceiling
    assert np.median(foreground) > np.median(background) + 300
    # shot + read noise: flat background is not constant
    assert 5 < background.std()


def test_noise_scales_with_signal_like_shot_noise():
    params = TimelapseParams(n_frames=2, height=64, width=64, n_cells=0, debris=0, enter_rate=0.0,
                             imaging=ImagingParams(background_variation=0.0, vignetting=0.0,
                                                   read_noise=0.0, background=100.0))
    bright = dataclasses.replace(params, imaging=dataclasses.replace(
        params.imaging, background=1600.0))
    dim_std = make_timelapse(params, 0).image.astype(float).std()
    bright_std = make_timelapse(bright, 0).image.astype(float).std()
    # Poisson: 16x the mean gives about 4x the spread
    assert 3.0 < bright_std / dim_std < 5.0


def test_camera_settings_do_not_change_the_scene():
    noisy = dataclasses.replace(SMALL_TIMELAPSE, imaging=ImagingParams(gain=6.0, read_noise=15.0))
    a, b = make_timelapse(SMALL_TIMELAPSE, 5), make_timelapse(noisy, 5)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.image, b.image)


def test_cells_are_brighter_than_their_surroundings(sample):
    image, labels = sample.image.astype(float), sample.labels
    for t in (0, 15, 29):
        inside = labels[t] > 0
        ring = ndimage.binary_dilation(inside, iterations=6) & ~ndimage.binary_dilation(
            inside, iterations=3)
        assert image[t][inside].mean() > image[t][ring].mean() + 400


# -- time-lapse ground truth ------------------------------------------------


def test_sample_has_the_advertised_scene(sample):
    counts = [len(np.unique(frame)) - 1 for frame in sample.labels]
    assert 8 <= counts[0] <= 12
    assert all(5 <= c <= 25 for c in counts)


def test_every_cell_lives_in_one_unbroken_run_of_frames(sample):
    for cid in sample.parents:
        frames = _frames(sample.labels, cid)
        assert len(frames) > 0
        assert frames[-1] - frames[0] + 1 == len(frames), f"cell {cid} vanishes and returns"


def test_cell_area_and_position_change_smoothly(sample):
    labels = sample.labels
    checked = 0
    for cid in sample.parents:
        frames = _frames(labels, cid)
        for t0, t1 in zip(frames[:-1], frames[1:]):
            m0, m1 = labels[t0] == cid, labels[t1] == cid
            if _on_border(m0) or _on_border(m1):
                continue
            a0, a1 = m0.sum(), m1.sum()
            assert abs(a1 - a0) / a0 < 0.25, (cid, t0, a0, a1)
            c0, c1 = np.argwhere(m0).mean(axis=0), np.argwhere(m1).mean(axis=0)
            assert np.hypot(*(c1 - c0)) < 0.5 * np.sqrt(a0 / np.pi), (cid, t0)
            checked += 1
    assert checked > 100


def test_divisions_end_the_mother_and_start_two_new_ids(sample):
    labels = sample.labels
    mothers = {m for m in sample.parents.values() if m}
    complete = 0
    for mother in mothers:
        daughters = [d for d, m in sample.parents.items() if m == mother]
        assert 1 <= len(daughters) <= 2
        last = _frames(labels, mother)[-1]
        for d in daughters:
            assert d > mother
            assert _frames(labels, d)[0] == last + 1  # new ids, right after the mother
        if len(daughters) == 2:
            complete += 1
            mother_area = (labels[last] == mother).sum()
            daughter_area = sum((labels[last + 1] == d).sum() for d in daughters)
            assert 0.6 < daughter_area / mother_area < 1.4
            centre = np.argwhere(labels[last] == mother).mean(axis=0)
            radius = np.sqrt(mother_area / np.pi)
            for d in daughters:
                offset = np.argwhere(labels[last + 1] == d).mean(axis=0) - centre
                assert np.hypot(*offset) < 1.5 * radius
    assert complete >= 1


def test_cells_enter_and_leave_across_the_border(sample):
    labels, n_frames = sample.labels, sample.labels.shape[0]
    mothers = {m for m in sample.parents.values() if m}
    entered = left = 0
    for cid, mother in sample.parents.items():
        frames = _frames(labels, cid)
        if frames[0] > 0 and mother == 0:
            assert _on_border(labels[frames[0]] == cid), f"cell {cid} appears mid-frame"
            entered += 1
        if frames[-1] < n_frames - 1 and cid not in mothers:
            assert _on_border(labels[frames[-1]] == cid), f"cell {cid} vanishes mid-frame"
            left += 1
    assert entered >= 1 and left >= 1


def test_cells_touch(sample):
    labels = sample.labels
    a, b = labels[:, :, :-1], labels[:, :, 1:]
    touching = (a != b) & (a > 0) & (b > 0)
    assert touching.any(axis=(1, 2)).sum() >= 5  # frames with touching cells


def test_without_divisions_or_entries_no_new_ids_appear():
    params = dataclasses.replace(SMALL_TIMELAPSE, n_frames=15, division_rate=0.0,
                                 enter_rate=0.0)
    result = make_timelapse(params, 7)
    assert set(result.parents.values()) == {0}
    first = set(np.unique(result.labels[0])) - {0}
    assert set(np.unique(result.labels)) - {0} == first


def test_frequent_divisions_keep_the_cell_cap():
    params = dataclasses.replace(SMALL_TIMELAPSE, n_frames=30, division_rate=1.0,
                                 min_cycle=2, max_cells=12, enter_rate=0.0, speed=0.3)
    result = make_timelapse(params, 1)
    assert max(len(np.unique(f)) - 1 for f in result.labels) <= 12
    assert any(result.parents.values())


# -- z-stack ground truth ---------------------------------------------------


def test_zstack_labels_are_ellipsoids(zsample):
    """An uncut, untouched nucleus is the ellipsoid of its own second moments."""
    labels, z_step = zsample.labels, generate.zstack_params().z_step
    checked = 0
    for cid in zsample.parents:
        mask = labels == cid
        assert ndimage.label(mask)[1] == 1  # one connected body
        zz, yy, xx = np.nonzero(mask)
        if (zz.min() == 0 or zz.max() == labels.shape[0] - 1 or yy.min() == 0
                or xx.min() == 0 or yy.max() == labels.shape[1] - 1
                or xx.max() == labels.shape[2] - 1):
            continue
        grown = ndimage.binary_dilation(mask)
        if np.any(labels[grown & ~mask] > 0):
            continue
        points = np.stack([zz * z_step, yy, xx], axis=1).astype(float)  # N x 3
        centre = points.mean(axis=0)
        # a solid ellipsoid's covariance is A A^T / 5 for semi-axis matrix A
        shape = np.linalg.inv(5.0 * np.cov(points.T))
        box = tuple(slice(max(v.min() - 3, 0), v.max() + 4) for v in (zz, yy, xx))
        grid = np.stack(np.meshgrid(*(np.arange(s.start, min(s.stop, n))
                                      for s, n in zip(box, labels.shape)),
                                    indexing="ij"), axis=-1).astype(float)
        grid[..., 0] *= z_step
        delta = grid - centre
        inside = np.einsum("...i,ij,...j->...", delta, shape, delta) <= 1.0
        truth = mask[box]
        iou = (inside & truth).sum() / (inside | truth).sum()
        assert iou > 0.9, (cid, iou)
        checked += 1
    assert checked >= 3


def test_zstack_nuclei_span_several_slices(zsample):
    spans = [len(_frames(zsample.labels, cid)) for cid in zsample.parents]
    assert 9 <= len(spans) <= 14
    assert np.median(spans) >= 8


def test_zstack_signal_fades_with_depth():
    base = dataclasses.replace(SMALL_ZSTACK, n_nuclei=8, n_slices=12, height=128,
                               width=128, depth_falloff=0.0, axial_blur=0.5)
    faded = dataclasses.replace(base, depth_falloff=0.6)
    a, b = make_zstack(base, 11), make_zstack(faded, 11)
    np.testing.assert_array_equal(a.labels, b.labels)

    def contrast(result, z):
        inside = result.labels[z] > 0
        image = result.image[z].astype(float)
        return image[inside].mean() - image[~inside].mean()

    first, last = 0, base.n_slices - 1
    assert (a.labels[first] > 0).sum() > 200 and (a.labels[last] > 0).sum() > 200
    assert contrast(b, first) / contrast(a, first) == pytest.approx(1.0, abs=0.1)
    assert contrast(b, last) / contrast(a, last) == pytest.approx(0.4, abs=0.1)


def test_zstack_axial_blur_softens_z_edges_more_than_lateral_edges():
    """Sum of squared steps along each axis: a wider PSF gives softer edges."""
    def edge_energy(axial_blur: float) -> np.ndarray:
        params = ZStackParams(
            n_slices=48, height=64, width=64, n_nuclei=1, radius=12.0,
            elongation=0.0, z_step=1.0, texture=0.0, nucleoli=0.0, rim=0.0,
            axial_blur=axial_blur, depth_falloff=0.0,
            imaging=ImagingParams(gain=0.01, read_noise=0.0, background=0.0,
                                  background_variation=0.0, vignetting=0.0, blur=1.0))
        image = make_zstack(params, 0).image.astype(float)
        return np.array([(np.diff(image, axis=a) ** 2).sum() for a in range(3)])

    ratio = edge_energy(3.0) / edge_energy(1.0)  # (z, y, x)
    assert ratio[0] < 0.5
    assert ratio[1] == pytest.approx(ratio[2], rel=0.1)
    assert ratio[0] < 0.7 * ratio[2]


# -- random parameters ------------------------------------------------------


def test_random_params_are_deterministic_and_wide():
    a = [random_timelapse_params(np.random.default_rng(s)) for s in range(60)]
    b = [random_timelapse_params(np.random.default_rng(s)) for s in range(60)]
    assert a == b
    for p in a:
        assert 128 <= p.height <= 384 and 128 <= p.width <= 384
        assert 1 <= p.n_cells <= 25 and 5.0 <= p.radius <= 30.0
    radii = [p.radius for p in a]
    counts = [p.n_cells for p in a]
    assert min(radii) < 8 and max(radii) > 20
    assert min(counts) <= 3 and max(counts) >= 15
    assert min(p.speed for p in a) < 0.5 and max(p.speed for p in a) > 3
    assert any(p.division_rate == 0 for p in a) and max(p.division_rate for p in a) > 0.05
    assert any(p.enter_rate == 0 for p in a) and any(p.enter_rate > 0.1 for p in a)
    assert len({p.n_frames for p in a}) > 10
    contrast = [p.signal / np.sqrt(p.imaging.gain * p.imaging.background) for p in a]
    assert min(contrast) < 4 and max(contrast) > 20  # dim to bright cells


def test_random_zstack_params_are_wide():
    params = [random_zstack_params(np.random.default_rng(s)) for s in range(60)]
    for p in params:
        assert 128 <= p.height <= 384 and 1 <= p.n_nuclei <= 25
        assert p.axial_blur * p.z_step > p.imaging.blur  # axial wider than lateral
    assert len({p.n_slices for p in params}) > 10
    assert min(p.radius for p in params) < 8 and max(p.radius for p in params) > 20


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_params_generate_valid_stacks(seed):
    rng = np.random.default_rng(100 + seed)
    p = random_timelapse_params(rng)
    result = make_timelapse(p, seed)
    assert result.image.shape == (p.n_frames, p.height, p.width)
    assert result.labels.max() >= 1
    q = random_zstack_params(rng)
    zresult = make_zstack(q, seed)
    assert zresult.image.shape == (q.n_slices, q.height, q.width)
    assert zresult.labels.max() >= 1


def test_samplelike_params_stay_near_the_samples_and_vary():
    from napari_sam2.sample_data.generate import timelapse_params, zstack_params

    a = [samplelike_timelapse_params(np.random.default_rng(s)) for s in range(40)]
    assert a == [samplelike_timelapse_params(np.random.default_rng(s)) for s in range(40)]
    sample = timelapse_params()
    for p in a:
        assert (p.height, p.width) == (sample.height, sample.width)
        assert 6 <= p.n_cells <= 16 and 11.0 <= p.radius <= 19.0
        assert 0.5 * sample.speed <= p.speed <= 2 * sample.speed
        assert 80 <= p.imaging.camera_offset <= 140 and 0.9 <= p.imaging.blur <= 1.6
    # the sample sits inside the ranges drawn, and they are ranges, not one value
    assert min(p.radius for p in a) < sample.radius < max(p.radius for p in a)
    assert min(p.clustering for p in a) < 0.3 and max(p.clustering for p in a) > 0.6
    assert len({p.n_frames for p in a}) > 10
    z = [samplelike_zstack_params(np.random.default_rng(s)) for s in range(40)]
    zs = zstack_params()
    for q in z:
        assert (q.height, q.width) == (zs.height, zs.width) and 24 <= q.n_slices <= 40
        assert 8 <= q.n_nuclei <= 14 and 13.0 <= q.radius <= 19.0
    assert min(q.radius for q in z) < zs.radius < max(q.radius for q in z)


@pytest.mark.parametrize("seed", [0, 1])
def test_samplelike_params_generate_valid_stacks(seed):
    rng = np.random.default_rng(200 + seed)
    p = samplelike_timelapse_params(rng)
    result = make_timelapse(p, seed)
    assert result.image.shape == (p.n_frames, 256, 256) and result.labels[0].max() >= 4
    q = samplelike_zstack_params(rng)
    zresult = make_zstack(q, seed)
    assert zresult.image.shape == (q.n_slices, 256, 256) and zresult.labels.max() >= 4
