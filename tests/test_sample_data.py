"""The shipped sample stacks and their npe2 sample-data contributions."""

from __future__ import annotations

from importlib import import_module, resources

import numpy as np
import pytest
import tifffile

from napari_sam2 import _sample_data
from napari_sam2.sample_data import generate

SAMPLES = [
    (_sample_data.cells_timelapse, "cells time-lapse", ("t", "y", "x"),
     generate.TIMELAPSE_FILES, generate.cells_timelapse),
    (_sample_data.nuclei_zstack, "nuclei z-stack", ("z", "y", "x"),
     generate.ZSTACK_FILES, generate.nuclei_zstack),
]
IDS = ["cells_timelapse", "nuclei_zstack"]


@pytest.mark.parametrize("load, name, axes, files, make", SAMPLES, ids=IDS)
def test_sample_returns_image_and_ground_truth(load, name, axes, files, make):
    layers = load()
    assert [layer_type for _, _, layer_type in layers] == ["image", "labels"]
    (image, image_kw, _), (labels, labels_kw, _) = layers
    assert image_kw["name"] == name
    assert labels_kw["name"] == f"{name} ground truth"
    assert image.dtype == np.uint16 and image.ndim == 3
    assert image.shape == labels.shape
    assert np.issubdtype(labels.dtype, np.integer)
    assert image_kw["axis_labels"] == axes and labels_kw["axis_labels"] == axes
    low, high = image_kw["contrast_limits"]
    assert image.min() <= low < high <= image.max()
    # background below the window's middle, most cell pixels above its bottom
    assert np.median(image[labels == 0]) < (low + high) / 2
    assert np.mean(image[labels > 0] > low + 0.1 * (high - low)) > 0.9
    assert 8 <= len(np.unique(labels)) - 1 <= 25


def assert_same_counts(image: np.ndarray, shipped: np.ndarray) -> None:
    """The generator's image is the shipped one, up to rounding: a value
    within float error of a half count may round either way, because
    numpy/scipy builds differ in the last bits of their filters (seen: one
    voxel of the z-stack's 2 million, one count apart, with scipy 1.17)."""
    assert image.shape == shipped.shape and image.dtype == shipped.dtype
    diff = np.abs(image.astype(np.int64) - shipped.astype(np.int64))
    assert diff.max() <= 1, diff.max()
    assert np.count_nonzero(diff) <= max(1, diff.size // 100_000), np.count_nonzero(diff)


@pytest.mark.parametrize("load, name, axes, files, make", SAMPLES, ids=IDS)
def test_shipped_tiffs_are_reproduced_by_the_generator(load, name, axes, files, make):
    regenerated = make()
    image = _sample_data.load_sample_array(files.image)
    labels = _sample_data.load_sample_array(files.labels)
    assert image.dtype == np.uint16
    assert_same_counts(regenerated.image, image)
    np.testing.assert_array_equal(labels, regenerated.labels)


@pytest.mark.parametrize("files", [generate.TIMELAPSE_FILES, generate.ZSTACK_FILES],
                         ids=IDS)
def test_shipped_tiffs_are_compressed_and_carry_axes(files):
    folder = resources.files("napari_sam2.sample_data")
    total = 0
    for name in (files.image, files.labels):
        with folder.joinpath(name).open("rb") as handle, tifffile.TiffFile(handle) as tif:
            assert tif.series[0].axes == files.axes
            assert tif.pages[0].compression == tifffile.COMPRESSION.ADOBE_DEFLATE
        total += len(folder.joinpath(name).read_bytes())
    assert total < 3_500_000  # a few MB at most


def test_generate_main_writes_the_same_files(tmp_path):
    written = generate.main(["--out", str(tmp_path)])
    names = {p.name for p in written}
    assert names == {*generate.TIMELAPSE_FILES[:2], *generate.ZSTACK_FILES[:2]}
    for path in written:
        shipped = _sample_data.load_sample_array(path.name)
        if "labels" in path.name:
            np.testing.assert_array_equal(tifffile.imread(path), shipped)
        else:
            assert_same_counts(tifffile.imread(path), shipped)


def test_manifest_declares_sample_data_and_writer():
    npe2 = pytest.importorskip("npe2")
    manifest = npe2.PluginManifest.from_distribution("napari-sam2")
    assert manifest.name == "napari-sam2"
    samples = {s.key: s for s in manifest.contributions.sample_data}
    assert samples["cells_timelapse"].display_name == "Cells time-lapse (synthetic, 16-bit)"
    assert samples["nuclei_zstack"].display_name == "Nuclei z-stack (synthetic, 16-bit)"
    writers = [w for w in manifest.contributions.writers if w.layer_types == ["labels"]]
    assert len(writers) == 1
    assert set(writers[0].filename_extensions) == {".tif", ".tiff"}
    commands = {c.id: c.python_name for c in manifest.contributions.commands}
    for contribution in [*samples.values(), writers[0]]:
        module, _, attr = commands[contribution.command].partition(":")
        assert callable(getattr(import_module(module), attr))
