"""What the model sees: by default the image as the layer shows it (its
contrast limits, for the whole stack); or an automatic range robust to a
small saturated spot; or a fixed min-max."""

from __future__ import annotations

import numpy as np

from .test_widget import dock

CELLS = (1, 6, 10)  # ground-truth ids of three cells in frame 0 of the sample


def iou(a, b):
    return float((a & b).sum() / max((a | b).sum(), 1))


def sample(frames=2):
    from napari_sam2._sample_data import cells_timelapse

    (image, image_kwargs, _), (truth, _, _) = cells_timelapse()
    return np.ascontiguousarray(image[:frames]), truth[:frames], image_kwargs


def clicks(widget, truth):
    """One click per cell (its pixel nearest the centroid); the IoU of each mask."""
    ids = []
    for cell in CELLS:
        yx = np.argwhere(truth[0] == cell)
        y, x = yx[np.argmin(((yx - yx.mean(0)) ** 2).sum(1))]
        ids.append(widget.new_object())
        widget.add_point(0, float(y), float(x))
    assert widget.wait(120)
    labels = widget.labels_layer.data[0]
    return [iou(labels == obj, truth[0] == cell) for obj, cell in zip(ids, CELLS)]


def test_a_saturated_block_does_not_blank_the_masks(make_viewer, demo_model):
    image, truth, image_kwargs = sample()
    clean_viewer = make_viewer()
    clean_viewer.add_image(image, **image_kwargs)
    clean = dock(clean_viewer, demo_model)
    assert clean.intensity_mode == "layer"
    reference = clicks(clean, truth)
    assert min(reference) > 0.5

    bright = image.copy()
    bright[:, 200:216, 20:36] = np.iinfo(image.dtype).max  # 16 x 16 saturated debris, 0.4 %
    viewer = make_viewer()
    layer = viewer.add_image(bright, **image_kwargs)  # the layer's contrast shows the cells
    widget = dock(viewer, demo_model)
    with_layer_contrast = clicks(widget, truth)
    assert widget.session.intensity_range == tuple(float(c) for c in layer.contrast_limits)
    assert all(abs(a - b) <= 0.05 for a, b in zip(with_layer_contrast, reference)), (with_layer_contrast, reference)

    # Automatic: the engine's range ignores the saturated block; the visible
    # frame is decoded again under it (one undo step)
    before = widget.labels_layer.data.copy()
    assert widget.set_intensity("auto")
    assert widget.wait(120)
    lo, hi = widget.session.intensity_range
    assert hi < 20000  # not stretched to the block's 65535
    labels = widget.labels_layer.data[0]
    automatic = [iou(labels == obj, truth[0] == cell) for obj, cell in zip(widget.objects, CELLS)]
    assert all(abs(a - b) <= 0.05 for a, b in zip(automatic, reference)), (automatic, reference)
    if not np.array_equal(widget.labels_layer.data, before):
        widget.undo()
        np.testing.assert_array_equal(widget.labels_layer.data, before)


def test_layer_contrast_changes_follow_and_fixed_range(make_viewer, demo_model):
    image, truth, image_kwargs = sample()
    viewer = make_viewer()
    layer = viewer.add_image(image, **image_kwargs)
    widget = dock(viewer, demo_model)
    widget.new_object()
    widget.add_point(0, 100, 100)
    assert widget.wait(60)
    layer.contrast_limits = (300.0, 3000.0)  # the user drags the contrast slider
    assert widget.wait(60)
    assert widget.session.intensity_range == (300.0, 3000.0)
    assert widget.set_intensity("fixed", 100, 5000)
    assert widget.wait(60)
    assert widget.session.intensity_range == (100.0, 5000.0)
    layer.contrast_limits = (400.0, 2000.0)  # ignored in fixed mode
    assert widget.wait(60)
    assert widget.session.intensity_range == (100.0, 5000.0)
    assert not widget.set_intensity("fixed", 5, 5)
    assert widget.intensity_min.isEnabled()
    widget.set_intensity("layer")
    assert widget.wait(60)
    assert widget.session.intensity_range == (400.0, 2000.0)
    assert not widget.intensity_min.isEnabled()
