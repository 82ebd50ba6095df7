"""Several touching objects and a correction on one of them: the label
image equals the one composed from Meta's SAM2VideoPredictor (sam2 1.1.0)
on every frame, float32 on CPU, same random weights.

Two and three objects are prompted on frame 0 (a click, a box, a click and
a box), propagated forward, then one object gets a negative (or a positive)
click on a tracked frame and everything is propagated again. In our
"downstream" mode that re-runs the corrected object from the corrected
frame on, compared with the reference re-run from there
(``start_frame_idx``); in "all" mode every frame, compared with the
reference's full re-run. The reference runs objects one at a time and gives
one mask per object; its label image is taken on the unambiguous pixels
only, where at most one object's mask is positive (who wins an overlap is
our composition's choice, by score). Frames are JPEG-decoded for both, as in
test_session_equality.py; hole filling is off (the reference skips it on CPU).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from napari_sam2 import SessionOptions, StackSession

from .conftest import build_pair

SIZE = 128  # model input (the reference matches at 128 too)
H, W = 64, 80  # frames
N = 5
K = 3  # the corrected frame (tracked in the first run)
TOL = 1e-4
# three touching blobs (y, x, radius), drifting
BLOBS = ((24, 28, 11), (26, 48, 10), (42, 38, 10))


def _frames(tmp_path):
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:H, 0:W]
    folder = tmp_path / "jpg"
    folder.mkdir()
    frames = []
    for t in range(N):
        img = 40 + 25 * rng.random((H, W))
        for i, (cy, cx, r) in enumerate(BLOBS):
            img += 150 * np.exp(-(((yy - cy - t) ** 2 + (xx - cx - (i - 1) * t) ** 2) / (2 * r**2)))
        rgb = np.repeat(np.clip(img, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
        path = folder / f"{t:05d}.jpg"
        Image.fromarray(rgb).save(path, quality=95)
        frames.append(np.array(Image.open(path).convert("RGB")))
    return str(folder), np.stack(frames)


SEED = 5


@pytest.fixture(scope="module")
def pair():
    # the weights are the initial ones plus seeded noise: fix the initial ones too
    torch.manual_seed(SEED)
    return build_pair("sam2.1_hiera_tiny", SIZE, seed=SEED, fill_hole_area=0)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return _frames(tmp_path_factory.mktemp("many"))


# frame-0 prompts, (y, x) / (y0, x0, y1, x1): a click, a box, a click and a box
PROMPTS = {
    1: {"points": [[24, 28]]},
    2: {"box": (16, 38, 36, 58)},
    3: {"points": [[42, 38]], "box": (32, 28, 52, 48)},
}


def _xy(yx):
    return np.asarray(yx, dtype=np.float32)[:, ::-1].copy()


def _ref_add(ref, st, frame, obj_id, *, points=None, labels=None, box=None, clear=True):
    kw = {}
    if points is not None:
        kw.update(points=_xy(points), labels=np.asarray(labels, np.int32))
    if box is not None:
        y0, x0, y1, x1 = box
        kw.update(box=np.array([x0, y0, x1, y1], np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref.add_new_points_or_box(st, frame_idx=frame, obj_id=obj_id, clear_old_points=clear, **kw)


def _ref_run(ref, st, **kw):
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for frame, obj_ids, masks in ref.propagate_in_video(st, **kw):
            out[frame] = {oid: masks[i, 0].clone() for i, oid in enumerate(obj_ids)}
    return out


def _prompt_ours(session, ids):
    for obj_id in ids:
        p = PROMPTS[obj_id]
        if "box" in p:
            session.add_box(obj_id, 0, p["box"])
        if "points" in p:
            session.add_points(obj_id, 0, p["points"], [1] * len(p["points"]))


def _reference(ref, folder, ids, correction):
    """(first run, re-run from K, full re-run) of the reference, and the
    correction click chosen on its first run."""
    ref.add_all_frames_to_correct_as_cond = True  # else the correction is dropped on re-propagation
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            st = ref.init_state(video_path=folder)
        for obj_id in ids:
            p = PROMPTS[obj_id]
            n = len(p.get("points", []))
            _ref_add(ref, st, 0, obj_id, points=p.get("points"), labels=[1] * n if n else None, box=p.get("box"))
        first = _ref_run(ref, st)
        click = _correction_click(first[K], ids, correction)
        _ref_add(ref, st, K, ids[0], points=[click], labels=[int(correction == "positive")], clear=False)
        downstream = _ref_run(ref, st, start_frame_idx=K)
        full = _ref_run(ref, st)
    finally:
        ref.add_all_frames_to_correct_as_cond = False
    return first, downstream, full, click


def _correction_click(masks, ids, correction):
    """On the corrected object (the first): a negative click where it and a
    neighbour are both positive (it gives pixels up), or a positive one
    where only a neighbour is (it takes pixels); the deepest such pixel."""
    from scipy import ndimage

    mine = (masks[ids[0]] > 0).numpy()
    theirs = np.any([(masks[o] > 0).numpy() for o in ids[1:]], axis=0)
    where = mine & theirs if correction == "negative" else theirs & ~mine
    assert where.any(), "no pixel for the correction: the scene does not make the objects touch"
    depth = ndimage.distance_transform_edt(where)
    y, x = np.unravel_index(int(np.argmax(depth)), where.shape)
    return [float(y), float(x)]


def _ref_labels(masks: dict[int, torch.Tensor]):
    """(labels, unambiguous) of one reference frame."""
    ids = sorted(masks)
    pos = np.stack([(masks[o] > 0).numpy() for o in ids])
    labels = np.zeros((H, W), np.int64)
    for i, o in enumerate(ids):
        labels[pos[i]] = o
    return labels, pos.sum(0) <= 1


def _check_frame(case, f, ours, theirs):
    """Compare one frame; returns how many pixels each label holds alone.
    Where objects overlap, the pixel must go to one of them (no hole)."""
    expected, clear = _ref_labels(theirs)
    bad = int((ours[clear] != expected[clear]).sum())
    assert bad == 0, f"{case}: frame {f}: {bad} unambiguous pixels differ from the reference"
    ids = sorted(theirs)
    pos = np.stack([(theirs[o] > 0).numpy() for o in ids])
    owner_positive = np.zeros((H, W), bool)
    for i, o in enumerate(ids):
        owner_positive |= (ours == o) & pos[i]
    wrong = int((~clear & ~owner_positive).sum())
    assert wrong == 0, f"{case}: frame {f}: {wrong} overlap pixels not given to an object that is positive there"
    return np.bincount(expected[clear].ravel(), minlength=len(theirs) + 1)


@pytest.mark.reference
@pytest.mark.parametrize("correction", ["negative", "positive"])
@pytest.mark.parametrize("num_objects", [2, 3])
def test_a_correction_on_one_of_several_touching_objects(pair, video, num_objects, correction):
    ours, ref = pair
    folder, frames = video
    ids = list(range(1, num_objects + 1))
    first, downstream, full, click = _reference(ref, folder, ids, correction)
    # the test means something: the correction changes the corrected
    # object's mask, and in "all" mode its frames before the correction too
    assert any(not torch.equal(downstream[f][1], first[f][1]) for f in range(K, N))
    assert any(not torch.equal(full[f][1], first[f][1]) for f in range(1, K))

    for mode, expected in (("downstream", {**first, **downstream}), ("all", full)):
        case = f"{num_objects} objects, {correction} click, {mode}"
        s = StackSession(ours, frames, channel_axis=-1, intensity_range=(0, 255),
                         options=SessionOptions(rerun=mode))
        _prompt_ours(s, ids)
        for r in s.propagate_results("forward"):
            _check_frame(case + ", first run", r.frame, r.labels, first[r.frame])
        before = s.labels.copy()
        s.add_points(1, K, [click], [int(correction == "positive")])
        results = {r.frame: r for r in s.propagate_results("forward")}
        rerun = list(range(K, N)) if mode == "downstream" else list(range(N))
        assert sorted(results) == rerun, case
        for f, r in results.items():
            assert r.object_ids == (1,), case  # the other objects are up to date
            gap = (r.logits[0] - expected[f][1]).abs().max().item()
            assert gap <= TOL, f"{case}: frame {f}: corrected object's logits differ by {gap:.2e}"
        alone = sum(_check_frame(case, f, s.labels[f], expected[f]) for f in range(N))
        print(case, "pixels compared per label", alone.tolist())
        assert alone.min() >= 50, f"{case}: too few unambiguous pixels of some label {alone}"
        if correction == "negative":
            # pixels the corrected object gave up where a neighbour is
            # positive in the reference: background in the labels before the fix
            freed = 0
            for f in rerun:
                neighbour = np.any([(expected[f][o] > 0).numpy() for o in ids[1:]], axis=0)
                freed += int(((before[f] == 1) & ~(expected[f][1] > 0).numpy() & neighbour).sum())
            assert freed > 0, f"{case}: the correction freed no pixel for a neighbour"
