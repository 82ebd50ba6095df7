"""The command line never loses or corrupts a file: an interrupted write
keeps the older output, the input is never the output, a bad destination
or a damaged input fails before any work, and bad prompts are named."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_sam2 import checkpoints
from napari_sam2.cli import main

from ._helpers import make_read_only, small_model_file

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return small_model_file(tmp_path_factory.mktemp("model"))


@pytest.fixture
def stack_file(tmp_path):
    stack = (np.random.default_rng(0).random((4, 40, 50)) * 4000).astype(np.uint16)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, stack, photometric="minisblack")
    return path


@pytest.fixture
def no_model(monkeypatch):
    """Fails the test if the command gets as far as loading the model."""

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded: the check came after the work started")

    monkeypatch.setattr(checkpoints, "load_model", refuse)


RUNNER = textwrap.dedent(
    """
    import io, sys, time, pathlib
    import tifffile
    flag = pathlib.Path(sys.argv[1])
    real = tifffile.imwrite

    def slow_imwrite(target, data, **kwargs):
        # write half of the real file, say so, then take a long time
        buffer = io.BytesIO()
        real(buffer, data, **kwargs)
        half = buffer.getvalue()[: len(buffer.getvalue()) // 2]
        if hasattr(target, "write"):
            target.write(half)
            target.flush()
        else:
            with open(target, "wb") as fh:
                fh.write(half)
        flag.write_text("writing")
        time.sleep(120)
        raise SystemExit("not interrupted")

    tifffile.imwrite = slow_imwrite
    from napari_sam2.cli import main
    sys.exit(main(sys.argv[2:]))
    """
)


def test_ctrl_c_while_writing_out_keeps_the_older_output(tmp_path, stack_file, model_file):
    out = tmp_path / "labels.tif"
    good = np.arange(4 * 40 * 50, dtype=np.int32).reshape(4, 40, 50) % 7
    tifffile.imwrite(out, good, photometric="minisblack")
    before = out.read_bytes()
    flag = tmp_path / "writing.flag"
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(flag), "segment", str(stack_file), "--model", str(model_file),
         "--device", "cpu", "--point", "1,20,25", "--direction", "forward", "--out", str(out)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 180
        while not flag.exists():
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "the command never started writing"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0, err.decode()[-2000:]
    assert out.read_bytes() == before, "the older output was changed by the interrupted write"
    np.testing.assert_array_equal(tifffile.imread(out), good)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.tif", "stack.tif", "writing.flag"]


def test_out_equal_to_input_is_refused_before_work(stack_file, no_model, capsys):
    before = stack_file.read_bytes()
    code = main(["segment", str(stack_file), "--point", "1,20,25", "--out", str(stack_file)])
    assert code != 0
    err = capsys.readouterr().err
    assert "--out" in err and str(stack_file) in err and "input" in err
    assert stack_file.read_bytes() == before


def test_out_into_a_missing_folder_fails_before_work(tmp_path, stack_file, no_model, capsys):
    out = tmp_path / "missing" / "labels.tif"
    code = main(["segment", str(stack_file), "--point", "1,20,25", "--out", str(out)])
    assert code != 0
    err = capsys.readouterr().err
    assert str(out.parent) in err and "does not exist" in err


def test_out_into_a_read_only_folder_fails_before_work(tmp_path, stack_file, no_model, capsys, monkeypatch):
    folder = make_read_only(tmp_path / "ro", monkeypatch)
    code = main(["segment", str(stack_file), "--point", "1,20,25", "--out", str(folder / "labels.tif")])
    assert code != 0
    err = capsys.readouterr().err
    assert str(folder) in err and "cannot create files" in err


@pytest.mark.parametrize("kwargs", [{"compression": "zlib"}, {"compression": "zlib", "imagej": True}, {},
                                    {"imagej": True}, {"metadata": None}],
                         ids=["zlib", "zlib-imagej", "raw", "raw-imagej", "raw-no-metadata"])
def test_truncated_tiff_is_an_error_naming_the_file(tmp_path, no_model, capsys, kwargs):
    stack = (np.random.default_rng(0).random((40, 64, 64)) * 4000).astype(np.uint16)
    full = tmp_path / "full.tif"
    tifffile.imwrite(full, stack, photometric="minisblack", **kwargs)
    cuts = [full.stat().st_size // 2] + ([full.stat().st_size - 100] if "compression" in kwargs else [])
    for cut in cuts:
        path = tmp_path / f"cut{cut}.tif"
        path.write_bytes(full.read_bytes()[:cut])
        code = main(["segment", str(path), "--point", "1,20,25", "--out", str(tmp_path / "o.tif")])
        assert code != 0
        err = capsys.readouterr().err
        assert str(path) in err and "truncated" in err
        assert not (tmp_path / "o.tif").exists()


def test_whole_tiff_still_reads(tmp_path):
    from napari_sam2.engine.stack_files import open_stack as _read_stack

    stack = (np.random.default_rng(0).random((5, 16, 16)) * 4000).astype(np.uint16)
    for compression in (None, "zlib"):
        for imagej in (False, True):
            path = tmp_path / f"s{compression}{imagej}.tif"
            tifffile.imwrite(path, stack, photometric="minisblack", compression=compression, imagej=imagej)
            np.testing.assert_array_equal(np.asarray(_read_stack(str(path))), stack)
    # a compressed stack is read frame by frame, not decoded whole
    path = tmp_path / "tzyx.tif"
    tzyx = (np.random.default_rng(1).random((4, 3, 16, 20)) * 4000).astype(np.uint16)
    tifffile.imwrite(path, tzyx, photometric="minisblack", compression="zlib", metadata={"axes": "TZYX"})
    lazy = _read_stack(str(path))
    assert not isinstance(lazy, np.ndarray) and lazy.shape == tzyx.shape
    np.testing.assert_array_equal(np.asarray(lazy[2]), tzyx[2])
    np.testing.assert_array_equal(np.asarray(lazy[:, 1]), tzyx[:, 1])
    rgb = (np.random.default_rng(0).random((4, 16, 16, 3)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb", imagej=True)
    np.testing.assert_array_equal(np.asarray(_read_stack(str(tmp_path / "rgb.tif"))), rgb)


@pytest.mark.parametrize(
    "option, value, expected",
    [
        ("--point", "1.9,32,32", "frame must be a whole number"),
        ("--point", "1,32,32,2.7", "object id must be a whole number"),
        ("--box", "0,1,1,9,9,1.5", "object id must be a whole number"),
        ("--neg", "0.5,3,3", "frame must be a whole number"),
        ("--point", "inf,32,32", "finite"),
        ("--point", "1,nan,32", "finite"),
        ("--point", "1,1e400,32", "finite"),
        ("--point", "-1,32,32", "frame must be >= 0"),
        ("--point", "1,32,32,0", "object id must be >= 1"),
    ],
)
def test_bad_prompt_values_are_named(option, value, expected, stack_file, tmp_path, no_model, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["segment", str(stack_file), option, value, "--out", str(tmp_path / "o.tif")])
    assert exit_.value.code != 0
    err = capsys.readouterr().err
    assert option in err and expected in err, err


def test_a_4d_stack_asks_for_the_command_line_option(tmp_path, no_model, capsys):
    path = tmp_path / "tzyx.tif"
    tifffile.imwrite(path, np.zeros((3, 2, 16, 16), np.uint8), photometric="minisblack")
    code = main(["segment", str(path), "--point", "0,5,5", "--out", str(tmp_path / "o.tif")])
    assert code != 0
    err = capsys.readouterr().err
    assert "--index 1=0" in err and "index={" not in err


def test_demo_into_a_read_only_folder_fails_before_work(tmp_path, no_model, monkeypatch):
    from napari_sam2.cli import run_demo

    folder = make_read_only(tmp_path / "ro", monkeypatch)
    with pytest.raises(PermissionError, match=str(folder)):
        run_demo(folder, device="cpu", log=lambda *a: None)
