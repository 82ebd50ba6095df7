"""Segment-everything equals Meta's ``SAM2AutomaticMaskGenerator`` (sam2
1.1.0) on the same random weights, float32 on the CPU: the same masks
(pixel-exact), predicted IoUs and stability scores (within 1e-4), boxes and
prompt points, without crops and with one crop layer, plain and with
mask-to-mask refinement.

Meta's generator imports torchvision, which does not load with the CPU torch
wheel; ``torchvision_standin`` provides the few functions it uses (tested
here against a brute-force NMS). Meta's small-region removal needs OpenCV
(and its image predictor's hole filling a CUDA extension), so the
comparison runs with ``min_mask_region_area=0``; ours is tested in
tests/engine/test_automatic.py.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from napari_sam2.engine import FrameSource
from napari_sam2.engine.automatic import (
    AutomaticOptions,
    MaskCandidates,
    compose_candidates,
    generate_masks,
    segment_everything,
)
from napari_sam2.config import load_config
from napari_sam2.model import build_model, load_weights_strict

from . import torchvision_standin
from .conftest import build_reference, random_state_dict, require_reference

SIZE = 256
SCORE_TOL = 1e-4
# random weights give faint masks of stability ~0.3 that all span the whole
# image; scaling the mask hypernetworks' last layer makes the logits large and
# the masks stable, scaling the prompt encoder's random Fourier frequencies
# makes them depend on the point (30-odd distinct boxes), so that every
# filter and the NMS decide something
HYPER_SCALE = 200.0
FOURIER_SCALE = 30.0
THRESHOLDS = dict(pred_iou_thresh=0.5, stability_score_thresh=0.94)


def _image() -> np.ndarray:
    """``SIZE x SIZE x 3`` uint8: bright blobs on noise."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    img = 40 + 20 * rng.random((SIZE, SIZE))
    for cy, cx, r in ((60, 70, 20), (150, 180, 30), (200, 60, 15), (100, 200, 12)):
        img += 150 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    grey = np.clip(img, 0, 255).astype(np.uint8)
    return np.stack([grey, (grey * 0.8).astype(np.uint8), grey[::-1]], axis=-1)


def build_scaled_pair():
    """(ours, Meta's) with the same scaled random weights."""
    torchvision_standin.install()
    torch.manual_seed(0)  # the reference's initial weights, which the noise perturbs
    ref = build_reference("sam2.1_hiera_tiny", SIZE)
    state = random_state_dict(ref, 3)
    for key in state:
        if "output_hypernetworks_mlps" in key and "layers.2" in key:
            state[key] = state[key] * HYPER_SCALE
        if "positional_encoding_gaussian_matrix" in key:
            state[key] = state[key] * FOURIER_SCALE
    ref.load_state_dict(state, strict=True)
    ours = build_model(load_config("sam2.1_hiera_tiny", image_size=SIZE)).eval()
    load_weights_strict(ours, state, source="random weights for sam2.1_hiera_tiny")
    return ours, ref


@pytest.fixture(scope="module")
def pair():
    require_reference()
    return build_scaled_pair()


def _reference_generator(ref, **kwargs):
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    gen = SAM2AutomaticMaskGenerator(ref, **kwargs)
    s = ref.image_size // 4  # the image predictor's feature sizes are written for 1024
    gen.predictor._bb_feat_sizes = [(s, s), (s // 2, s // 2), (s // 4, s // 4)]
    return gen


# Even so most random-weight masks' boxes span nearly the whole image, so a
# box NMS keeps one of them: the no-crop cases compare all 30-70 filtered
# masks without NMS (box_nms_thresh=1), the crop cases with NMS. crop_overlap 0.9 gives 243 px crops 13 px apart, whose
# masks the crop-edge filter keeps (and the crop NMS at 0.97 de-duplicates) (their edges lie near the image's); the
# default overlap cuts most masks of the 4 crops (that filter is the test).
DEFAULT_OVERLAP = 512 / 1500
CROP_NMS = 0.97
CASES = {
    "no crops": dict(points_per_side=8, crop_layers=0, use_m2m=False, overlap=DEFAULT_OVERLAP, nms=1.0, least=20),
    "one crop layer": dict(points_per_side=4, crop_layers=1, use_m2m=False, overlap=0.9, nms=0.95, least=3),
    "one crop layer, edge filter": dict(
        points_per_side=4, crop_layers=1, use_m2m=False, overlap=DEFAULT_OVERLAP, nms=0.9, least=1
    ),
    "no crops, m2m": dict(
        points_per_side=4, crop_layers=0, use_m2m=True, overlap=DEFAULT_OVERLAP, nms=1.0, least=5, stability=0.955
    ),
}


@pytest.mark.reference
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_masks_and_scores_equal_reference(pair, case):
    ours, ref = pair
    c = CASES[case]
    thresholds = dict(THRESHOLDS, box_nms_thresh=c["nms"])
    if "stability" in c:  # refined masks are more stable
        thresholds["stability_score_thresh"] = c["stability"]
    gen = _reference_generator(
        ref,
        points_per_side=c["points_per_side"],
        points_per_batch=16,
        crop_n_layers=c["crop_layers"],
        crop_overlap_ratio=c["overlap"],
        crop_nms_thresh=CROP_NMS,
        min_mask_region_area=0,
        use_m2m=c["use_m2m"],
        **thresholds,
    )
    image = _image()
    anns = gen.generate(image)
    options = AutomaticOptions(
        points_per_side=c["points_per_side"],
        points_per_batch=16,
        crop_layers=c["crop_layers"],
        crop_overlap_ratio=c["overlap"],
        crop_nms_thresh=CROP_NMS,
        use_m2m=c["use_m2m"],
        area_bonus=0.0,  # Meta's ranking: predicted IoU alone
        **thresholds,
    )
    unit = FrameSource(image, channel_axis=-1, intensity_range=(0, 255)).normalized(0)
    calls = []
    got = generate_masks(ours, unit, options=options, progress=lambda d, t: calls.append((d, t)))

    # the filters removed some masks and kept several: the test decides something
    grid = c["points_per_side"] ** 2 * 3
    assert c["least"] <= len(anns) < grid, len(anns)
    assert len(got.boxes) == len(anns)
    if c["crop_layers"] and c["least"] > 1:
        assert len({tuple(a["crop_box"]) for a in anns}) > 1  # masks from crops survived
    assert calls[-1][0] == calls[-1][1] and len(calls) == calls[-1][1]

    # the same masks, in the same order (best predicted IoU first)
    for i, ann in enumerate(anns):
        assert np.array_equal(got.mask(i), ann["segmentation"]), f"mask {i} differs"
        assert abs(got.predicted_iou[i] - ann["predicted_iou"]) <= SCORE_TOL
        assert abs(got.stability[i] - ann["stability_score"]) <= SCORE_TOL
        x0, y0, x1, y1 = got.boxes[i]
        assert [x0, y0, x1 - x0, y1 - y0] == ann["bbox"]
        assert np.allclose(got.points[i], ann["point_coords"][0], atol=1e-4)
        cx0, cy0, cx1, cy1 = got.crop_boxes[i]
        assert [cx0, cy0, cx1 - cx0, cy1 - cy0] == ann["crop_box"]
        assert got.area(i) == ann["area"]


@pytest.mark.reference
def test_segment_everything_composes_the_reference_masks(pair):
    """The public call on uint8 RGB with (0, 255) gives the label image
    composed from exactly Meta's masks."""
    ours, ref = pair
    kw = dict(THRESHOLDS, box_nms_thresh=1.0, area_bonus=0.0)  # Meta's order of the candidates
    gen = _reference_generator(ref, points_per_side=8, points_per_batch=64, **kw)
    image = _image()
    anns = gen.generate(image)
    boxes = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                      for a in anns], dtype=np.int64)
    theirs = MaskCandidates(
        boxes=boxes,
        patches=[a["segmentation"][y0 : y1 + 1, x0 : x1 + 1] for a, (x0, y0, x1, y1) in zip(anns, boxes)],
        predicted_iou=np.array([a["predicted_iou"] for a in anns], dtype=np.float32),
        stability=np.array([a["stability_score"] for a in anns], dtype=np.float32),
        points=np.array([a["point_coords"][0] for a in anns], dtype=np.float32),
        crop_boxes=np.zeros((len(anns), 4), dtype=np.int64),
        size=(SIZE, SIZE),
    )
    # random-weight masks overlap heavily: keep what is left of each (no
    # duplicate removal) so that several objects share the label image
    options = AutomaticOptions(points_per_side=8, min_object_area=1, max_object_area=None,
                               duplicate_overlap=1.0, **kw)
    expected = compose_candidates(theirs, options)
    result = segment_everything(ours, image, options=options, channel_axis=-1, intensity_range=(0, 255))
    assert len(result.objects) >= 2
    assert np.array_equal(result.labels, expected.labels)
    for a, b in zip(result.objects, expected.objects):
        assert a.id == b.id and a.area == b.area and a.bbox == b.bbox and a.point == b.point
        assert abs(a.predicted_iou - b.predicted_iou) <= SCORE_TOL


def _brute_force_nms(boxes: list, scores: list, threshold: float) -> list[int]:
    """Textbook greedy NMS over Python numbers."""

    def iou(a, b):
        iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = iw * ih
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union if union > 0 else float("nan")

    order = sorted(range(len(boxes)), key=lambda i: -scores[i])
    kept: list[int] = []
    for i in order:
        if all(not iou(boxes[i], boxes[k]) > threshold for k in kept):
            kept.append(i)
    return kept


@pytest.mark.parametrize("seed,threshold", list(itertools.product(range(4), (0.3, 0.5, 0.7))))
def test_standin_nms_equals_brute_force(seed, threshold):
    gen = torch.Generator().manual_seed(seed)
    xy = torch.randint(0, 24, (80, 2), generator=gen).float()
    wh = torch.randint(8, 40, (80, 2), generator=gen).float()
    boxes = torch.cat([xy, xy + wh], dim=1)
    scores = torch.rand(80, generator=gen)
    expected = _brute_force_nms(boxes.tolist(), scores.tolist(), threshold)
    assert torchvision_standin.nms(boxes, scores, threshold).tolist() == expected
    same = torch.zeros(80, dtype=torch.int64)
    assert torchvision_standin.batched_nms(boxes, scores, same, threshold).tolist() == expected
    assert 5 < len(expected) < 80  # something was suppressed, something kept
    # two categories never suppress each other
    cats = torch.arange(80) % 2
    split = torchvision_standin.batched_nms(boxes, scores, cats, threshold).tolist()
    for cat in (0, 1):
        idx = [i for i in range(80) if i % 2 == cat]
        sub = _brute_force_nms([boxes[i].tolist() for i in idx], [scores[i].item() for i in idx], threshold)
        assert sorted(i for i in split if i % 2 == cat) == sorted(idx[k] for k in sub)
    assert torch.equal(torchvision_standin.box_area(boxes), wh[:, 0] * wh[:, 1])
