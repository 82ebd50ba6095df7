"""FrameSource.model_input equals Meta's frame loader on 8-bit data.

For uint8 data with ``intensity_range=(0, 255)`` our input must be
bit-identical (``torch.equal``) to what ``sam2==1.1.0`` builds from the same
pixels: the frames are written losslessly (PNG bytes) and read back by the
reference's own folder loader, and real JPEGs are decoded once by PIL and fed
to both. Other data takes a float path that must stay close to it.
"""

from __future__ import annotations

import os

import pytest

try:
    import sam2  # noqa: F401
    from sam2.utils.misc import _load_img_as_tensor, load_video_frames_from_jpg_images
except Exception as exc:  # pragma: no cover - depends on the environment
    if os.environ.get("CI", "").lower() == "true":
        raise RuntimeError(
            f"Meta's sam2==1.1.0 is not importable ({exc!r}) and CI=true: "
            "the reference tests must run"
        ) from exc
    pytest.skip(f"Meta's sam2==1.1.0 is not importable ({exc!r})", allow_module_level=True)

import numpy as np
import torch
from PIL import Image

from napari_sam2.engine.frames import IMAGENET_MEAN, IMAGENET_STD, FrameSource

CPU = torch.device("cpu")


def _textured_uint8(shape, seed):
    """Smooth blobs plus noise, clipped to uint8: exercises ringing and clipping."""
    rng = np.random.default_rng(seed)
    h, w = shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros(shape, dtype=np.float64)
    for _ in range(12):
        cy, cx, s = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(2, max(3, h / 4))
        blob = rng.uniform(60, 250) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
        img += blob if img.ndim == 2 else blob[..., None] * rng.uniform(0.3, 1, shape[2])
    img += rng.normal(0, 25, shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _write_frames(folder, frames, fmt):
    """Write frames as ``<n>.jpg`` (the loader's naming) in format ``fmt``."""
    folder.mkdir(exist_ok=True)
    for n, frame in enumerate(frames):
        options = {"quality": 90} if fmt == "JPEG" else {}
        Image.fromarray(frame).save(folder / f"{n}.jpg", format=fmt, **options)
    return folder


def _reference_stack(folder, size):
    images, height, width = load_video_frames_from_jpg_images(
        str(folder), size, offload_video_to_cpu=True, compute_device=CPU
    )
    return images, (height, width)


@pytest.mark.parametrize("size", [1024, 64])
@pytest.mark.parametrize("hw", [(96, 130), (1300, 900), (1100, 1030)])
def test_grey_uint8_stack_is_bit_identical(tmp_path, size, hw):
    stack = np.stack([_textured_uint8(hw, seed) for seed in range(3)])  # (T, H, W)
    ref, ref_hw = _reference_stack(_write_frames(tmp_path / "png", stack, "PNG"), size)
    source = FrameSource(stack, intensity_range=(0, 255))
    assert source.original_size == ref_hw == hw
    for t in range(len(source)):
        ours = source.model_input(t, size)
        assert ours.shape == (1, 3, size, size) and ours.dtype == torch.float32
        assert torch.equal(ours[0], ref[t]), f"frame {t}"


@pytest.mark.parametrize("channel_axis", [-1, 1])
def test_rgb_uint8_stack_is_bit_identical(tmp_path, channel_axis):
    stack = np.stack([_textured_uint8((200, 150, 3), seed) for seed in range(3)])  # (T, H, W, 3)
    ref, _ = _reference_stack(_write_frames(tmp_path / "png", stack, "PNG"), 256)
    data = stack if channel_axis == -1 else np.ascontiguousarray(np.moveaxis(stack, -1, 1))
    source = FrameSource(data, channel_axis=channel_axis, intensity_range=(0, 255))
    for t in range(3):
        assert torch.equal(source.model_input(t, 256)[0], ref[t]), f"frame {t}"


def test_jpeg_decoded_once_by_pil_is_bit_identical(tmp_path):
    frames = [_textured_uint8((333, 517, 3), seed) for seed in range(2)]
    folder = _write_frames(tmp_path / "jpg", frames, "JPEG")
    ref, _ = _reference_stack(folder, 1024)
    decoded = np.stack(
        [np.asarray(Image.open(folder / f"{n}.jpg").convert("RGB")) for n in range(2)]
    )  # (T, H, W, 3)
    assert not np.array_equal(decoded[0], frames[0])  # JPEG is lossy: the decode is what both see
    source = FrameSource(decoded, channel_axis=-1, intensity_range=(0, 255))
    for t in range(2):
        assert torch.equal(source.model_input(t, 1024)[0], ref[t])


def test_single_image_matches_load_img_as_tensor(tmp_path):
    frame = _textured_uint8((77, 91), 5)
    path = tmp_path / "one.png"
    Image.fromarray(frame).save(path)
    img, height, width = _load_img_as_tensor(str(path), 128)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32)[:, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32)[:, None, None]
    expected = (img.to(torch.float32) - mean) / std
    source = FrameSource(frame, intensity_range="dtype")  # (0, 255) for uint8
    assert source.intensity_range == (0.0, 255.0)
    assert source.original_size == (height, width)
    assert torch.equal(source.model_input(0, 128)[0], expected)


@pytest.mark.parametrize("hw", [(96, 130), (1300, 900), (600, 1500)])
def test_float_path_stays_close_to_reference(tmp_path, hw):
    """uint16 data holding 8-bit values, range (0, 255): no 8-bit rounding, yet
    within ~1 grey level of the reference's 8-bit resize."""
    frame = _textured_uint8(hw, 11)
    ref, _ = _reference_stack(_write_frames(tmp_path / "png", [frame], "PNG"), 1024)
    source = FrameSource(frame.astype(np.uint16), intensity_range=(0, 255))
    ours = source.model_input(0, 1024)[0]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    gap_levels = ((ours - ref[0]) * std * 255).abs()  # in grey levels of 255
    assert gap_levels.max() < 1.2
    assert gap_levels.mean() < 0.4
    assert not torch.equal(ours, ref[0])  # it really is the float path
