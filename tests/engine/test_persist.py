"""Session files: round trips, checks on loading, and saves that are killed midway."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from napari_sam2.engine import SessionFileError, StackSession

from .conftest import blobs, make_model


def _session(model, data):
    s = StackSession(model, data)
    s.add_points(1, 0, [(14, 17), (20, 30)], [1, 0])
    s.add_box(2, 0, (20, 30, 34, 50))
    s.add_points(2, 0, [(27, 40)], [1])
    mask = np.zeros(data.shape[1:], bool)
    mask[10:20, 12:24] = True
    s.add_mask(1, 3, mask)
    return s


def _run(session, direction="both"):
    for _ in session.propagate(direction):
        pass


@pytest.fixture(scope="module")
def data():
    return blobs(n=5)


def test_round_trip_keeps_prompts_objects_labels_and_state(model, data, tmp_path):
    s = _session(model, data)
    _run(s)
    path = s.save(tmp_path / "cells.sam2", objects_meta={1: {"name": "left", "colour": [1, 0, 0, 1]}},
                  model_source="random tiny")
    loaded = StackSession.load(path, model, data)
    assert loaded.object_ids == s.object_ids
    before, after = s.prompt_records(), loaded.prompt_records()
    assert before == after  # points, labels, boxes in original pixels
    np.testing.assert_array_equal(after[0].frames[3].mask, before[0].frames[3].mask)
    np.testing.assert_array_equal(loaded.labels, s.labels)
    for obj_id, arrays in s.tracking_state().items():
        for name, value in arrays.items():
            np.testing.assert_array_equal(loaded.tracking_state()[obj_id][name], value)
    assert loaded.objects_meta[1] == {"name": "left", "colour": [1.0, 0.0, 0.0, 1.0]}
    assert loaded.frames.intensity_range == s.frames.intensity_range
    # everything was current when saved: propagating changes nothing
    _run(loaded)
    np.testing.assert_array_equal(loaded.labels, s.labels)


def test_loading_then_propagating_gives_the_original_labels(model, data, tmp_path):
    original = _session(model, data)
    original.save(tmp_path / "prompts-only.sam2")
    _run(original)
    loaded = StackSession.load(tmp_path / "prompts-only.sam2", model, data)
    _run(loaded)
    np.testing.assert_array_equal(loaded.labels, original.labels)
    assert (original.labels == 1).any() and (original.labels == 2).any()


def test_a_zip_round_trips_and_saving_again_replaces_the_old_version(model, data, tmp_path):
    s = _session(model, data)
    _run(s, "forward")
    zipped = s.save(tmp_path / "cells.zip")
    np.testing.assert_array_equal(StackSession.load(zipped, model, data).labels, s.labels)
    folder = tmp_path / "cells.sam2"
    s.save(folder)
    first = (folder / "CURRENT").read_text()
    s.add_points(1, 2, [(16, 20)], [1])
    _run(s, "forward")
    s.save(folder)
    second = (folder / "CURRENT").read_text()
    assert first != second
    assert sorted(p.name for p in folder.iterdir()) == sorted(["CURRENT", second])
    loaded = StackSession.load(folder, model, data)
    assert 2 in loaded.prompted_frames(1)
    np.testing.assert_array_equal(loaded.labels, s.labels)


def _chunk_files(folder):
    version = folder / (folder / "CURRENT").read_text()
    return {p.relative_to(version / "labels.zarr").as_posix(): p.stat().st_ino
            for p in (version / "labels.zarr").rglob("*") if p.is_file() and not p.name.startswith("zarr")
            and p.name != ".zarray"}


def test_saving_again_writes_only_the_frames_that_changed(model, data, tmp_path):
    s = StackSession(model, data)
    for f in range(len(data)):
        s.labels[f, 5 + f : 15 + f, 5:15] = 1  # a different frame each time
    folder = tmp_path / "cells.sam2"
    s.save(folder)  # before any object is prompted: labels only
    first = _chunk_files(folder)
    assert len(first) == len(data)
    s.labels[2, 30:34, 30:34] = 2
    s.save(folder)
    second = _chunk_files(folder)
    assert second.keys() == first.keys()
    changed = [k for k in first if first[k] != second[k]]
    assert len(changed) == 1 and "2" in changed[0].split("/")  # frame 2's chunk only: the rest are linked
    loaded = StackSession.load(folder, model, data)
    np.testing.assert_array_equal(loaded.labels, s.labels)
    assert loaded.object_ids == []
    # a version whose digests do not fit (another shape) is not linked from
    doc_path = folder / (folder / "CURRENT").read_text() / "session.json"
    doc = json.loads(doc_path.read_text())
    doc["shape"][1] += 1
    doc_path.write_text(json.dumps(doc))
    s.save(folder)
    third = _chunk_files(folder)
    assert all(third[k] != second[k] for k in second)
    np.testing.assert_array_equal(StackSession.load(folder, model, data).labels, s.labels)


def test_loading_says_what_differs(model, data, tmp_path):
    s = _session(model, data)
    path = s.save(tmp_path / "cells.sam2")
    with pytest.raises(SessionFileError, match=r"shape \(5, 40, 56\).*\(4, 40, 56\)"):
        StackSession.load(path, model, data[:4])
    with pytest.raises(SessionFileError, match="another model"):
        StackSession.load(path, make_model(seed=1), data)
    doc_path = tmp_path / "cells.sam2" / (tmp_path / "cells.sam2" / "CURRENT").read_text() / "session.json"
    doc = json.loads(doc_path.read_text())
    doc["version"] = 99
    doc_path.write_text(json.dumps(doc))
    with pytest.raises(SessionFileError, match="format version 99.*update napari-sam2"):
        StackSession.load(path, model, data)
    (tmp_path / "plain").mkdir()
    with pytest.raises(SessionFileError, match="not a napari-sam2 session"):
        StackSession.load(tmp_path / "plain", model, data)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        StackSession.load(tmp_path / "missing", model, data)


_SAVER = textwrap.dedent(
    """
    import sys, numpy as np
    sys.path.insert(0, {tests!r})
    from engine.conftest import make_model
    from napari_sam2.engine import StackSession
    model = make_model()
    data = np.zeros((40, 64, 64), np.uint8)
    s = StackSession(model, data)
    s.add_points(1, 0, [(10, 10)], [1])
    k = 0
    while True:
        k += 1
        s.labels[:] = k % 100  # every version has one value throughout
        s.save({path!r})
        print(k, flush=True)
    """
)


def test_a_killed_save_leaves_the_previous_session_loadable(model, tmp_path):
    path = tmp_path / "busy.sam2"
    code = _SAVER.format(tests=str(Path(__file__).resolve().parents[1]), path=str(path))
    rng = np.random.default_rng(0)
    data = np.zeros((40, 64, 64), np.uint8)
    kills = 0
    for _ in range(2):
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert proc.stdout.readline().strip() == "1"  # one save done
        time.sleep(float(rng.uniform(0.0, 0.4)))  # somewhere inside a later save
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        loaded = StackSession.load(path, make_model(), data)
        values = np.unique(loaded.labels)
        assert len(values) == 1, values  # one whole version, never a mix
        assert loaded.prompted_frames(1) == [0]
    assert kills == 2
