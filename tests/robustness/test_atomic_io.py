"""napari_sam2._io: every file is written whole or not at all."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile

from napari_sam2 import _io
from napari_sam2._writer import write_labels

from ._helpers import make_read_only


def test_failed_write_keeps_old_content_and_leaves_nothing(tmp_path):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with _io.atomic_file(target) as fh:
            fh.write(b"new, half")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_failed_final_rename_leaves_no_part_file(tmp_path, monkeypatch):
    target = tmp_path / "a.bin"

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        with _io.atomic_file(target) as fh:
            fh.write(b"x" * 1000)
    assert list(tmp_path.iterdir()) == []


def test_written_file_gets_ordinary_permissions(tmp_path):
    target = tmp_path / "a.bin"
    with _io.atomic_file(target) as fh:
        fh.write(b"data")
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_input_is_never_the_output(tmp_path):
    source = tmp_path / "in.tif"
    source.write_bytes(b"image")
    with pytest.raises(ValueError, match="also an input"):
        with _io.atomic_file(tmp_path / "." / "in.tif", inputs=[source]) as fh:
            fh.write(b"labels")
    assert source.read_bytes() == b"image"


def test_destination_checks_name_the_path(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _io.check_destination(tmp_path / "no" / "x.tif")
    with pytest.raises(ValueError, match="is a folder"):
        _io.check_destination(tmp_path)
    folder = make_read_only(tmp_path / "ro", monkeypatch)
    with pytest.raises(PermissionError, match=str(folder)):
        _io.check_destination(folder / "x.tif")


def test_writer_interrupted_keeps_older_file(tmp_path, monkeypatch):
    path = tmp_path / "labels.tif"
    old = np.ones((3, 8, 8), np.uint16)
    write_labels(str(path), old, {})
    real = tifffile.imwrite

    def half_then_fail(target, data, **kwargs):
        real(target, data[:1], **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(tifffile, "imwrite", half_then_fail)
    with pytest.raises(KeyboardInterrupt):
        write_labels(str(path), np.full((3, 8, 8), 2, np.uint16), {})
    monkeypatch.undo()
    np.testing.assert_array_equal(tifffile.imread(path), old)
    assert [p.name for p in tmp_path.iterdir()] == ["labels.tif"]


def test_private_folders_are_unique_and_removed(tmp_path):
    a = _io.private_folder(tmp_path, prefix="cache-")
    b = _io.private_folder(tmp_path, prefix="cache-")
    assert a != b and a.parent == b.parent == tmp_path
    (a / "f").write_bytes(b"1")
    _io.remove_folder(a)
    _io._remove_all()  # what runs at exit
    assert list(tmp_path.iterdir()) == []
