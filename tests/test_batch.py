"""Batch processing on a real dask.distributed LocalCluster (2 worker processes)."""

from __future__ import annotations

import csv
import json
import os
import signal
import threading
import time

import numpy as np
import pytest
import tifffile
import distributed

from napari_sam2 import batch
from napari_sam2.synthetic import TimelapseParams, make_timelapse

SIZE = 96
FRAMES = 4


def _stack(seed: int, frames: int = FRAMES):
    p = TimelapseParams(n_frames=frames, height=SIZE, width=SIZE, n_cells=4, radius=14.0)
    return make_timelapse(p, seed=seed)


def _centre_click(labels: np.ndarray, obj: int) -> list[float]:
    ys, xs = np.nonzero(labels == obj)
    k = int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))
    return [float(ys[k]), float(xs[k])]


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0")
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@pytest.fixture()
def plate(tmp_path):
    """Two good stacks, one broken file, and a prompts file for all three."""
    folder = tmp_path / "plate"
    folder.mkdir()
    doc = {"stacks": {}}
    truth = {}
    for seed in (1, 2):
        synth = _stack(seed)
        tifffile.imwrite(folder / f"well{seed}.tif", synth.image, photometric="minisblack")
        first = int(np.unique(synth.labels[0])[1])
        doc["stacks"][f"well{seed}.tif"] = {"objects": [
            {"id": 1, "frames": {"0": {"points": [_centre_click(synth.labels[0], first)]}}}]}
        truth[f"well{seed}"] = synth
    (folder / "well3.tif").write_bytes(b"II*\x00 this is not a TIFF")
    doc["stacks"]["well3.tif"] = {"objects": [{"id": 1, "frames": {"0": {"points": [[5, 5]]}}}]}
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps(doc))
    return folder, prompts, doc, truth


def _summary(out):
    with open(out / "summary.csv", newline="") as fh:
        return {row["name"]: row for row in csv.DictReader(fh)}


def _direct_labels(path, doc_stack):
    """The labels the same prompts give without the batch runner."""
    from napari_sam2 import StackSession, load_model
    from napari_sam2.engine.prompt_records import apply_objects, parse_objects

    session = StackSession(load_model("demo"), tifffile.imread(path))
    apply_objects(session, parse_objects(doc_stack, where="test"))
    for _ in session.propagate("forward"):
        pass
    return session.labels


def test_batch_runs_every_stack_reports_the_broken_one_and_a_rerun_skips(client, plate, tmp_path):
    folder, prompts, doc, _ = plate
    out = tmp_path / "out"
    seen = []
    summary = batch.run([str(folder / "*.tif")], out, prompts=prompts, client=client,
                        progress=lambda d, t: seen.append((d, t)))
    status = {row.name: row.status for row in summary}
    assert status == {"well1": "done", "well2": "done", "well3": "failed"}
    broken = next(r for r in summary if r.name == "well3")
    assert "well3.tif" in broken.error
    assert seen[-1] == (3, 3)
    for name in ("well1", "well2"):
        labels = tifffile.imread(out / name / "labels.tif")
        expected = _direct_labels(folder / f"{name}.tif", doc["stacks"][f"{name}.tif"])
        np.testing.assert_array_equal(labels, expected)
        assert (labels == 1).sum() > 50
        report = json.loads((out / name / "report.json").read_text())
        assert report["status"] == "done" and report["frames"] == FRAMES and report["objects"] == 1
        assert report["model"] == "demo" and report["settings"]["direction"] == "forward"
        assert report["napari_sam2_version"]
        assert sorted(report["outputs"]) == ["ctc", "labels.tif", "lineage.csv", "objects.csv", "session.sam2"]
        ctc_mask = tifffile.imread(out / name / "ctc" / "mask000.tif")
        np.testing.assert_array_equal(ctc_mask > 0, labels[0] > 0)
        with open(out / name / "objects.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert {int(r["frame"]) for r in rows} == {t for t in range(FRAMES) if (labels[t] == 1).any()}
        assert int(rows[0]["area_px"]) == (labels[int(rows[0]["frame"])] == 1).sum()
        from napari_sam2 import StackSession, load_model

        resumed = StackSession.load(out / name / "session.sam2", load_model("demo"),
                                    tifffile.imread(folder / f"{name}.tif"))
        np.testing.assert_array_equal(resumed.labels, labels)
        assert resumed.object_ids == [1]
    assert not (out / "well3").exists()
    rows = _summary(out)
    assert rows["well3"]["status"] == "failed" and "well3.tif" in rows["well3"]["error"]
    assert not list(out.glob(".partial-*"))

    # a rerun skips the finished stacks, tries the broken one again, and
    # redoes a stack whose input changed
    before = (out / "well1" / "report.json").stat().st_mtime_ns
    tifffile.imwrite(folder / "well2.tif", _stack(7).image, photometric="minisblack")
    again = batch.run([str(folder / "*.tif")], out, prompts=prompts, client=client)
    assert {r.name: r.status for r in again} == {"well1": "skipped", "well2": "done", "well3": "failed"}
    assert (out / "well1" / "report.json").stat().st_mtime_ns == before
    assert _summary(out)["well1"]["status"] == "skipped"


def test_changed_settings_redo_a_stack(client, plate, tmp_path):
    folder, prompts, _, _ = plate
    out = tmp_path / "out"
    batch.run([folder / "well1.tif"], out, prompts=prompts, client=client)
    again = batch.run([folder / "well1.tif"], out, prompts=prompts, client=client, direction="both")
    assert [r.status for r in again] == ["done"]
    assert json.loads((out / "well1" / "report.json").read_text())["settings"]["direction"] == "both"


def test_a_killed_worker_does_not_lose_its_stack(client, tmp_path):
    folder = tmp_path / "plate"
    folder.mkdir()
    stacks = {}
    for seed in range(3):
        synth = _stack(seed + 10, frames=12)
        tifffile.imwrite(folder / f"s{seed}.tif", synth.image, photometric="minisblack")
        first = int(np.unique(synth.labels[0])[1])
        stacks[f"s{seed}.tif"] = {"objects": [
            {"id": 1, "frames": {"0": {"points": [_centre_click(synth.labels[0], first)]}}}]}
    killed = []

    def kill_a_busy_worker():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            busy = [w for w, keys in client.processing().items() if keys]
            if busy:
                pids = client.run(os.getpid, workers=busy[:1])
                for pid in pids.values():
                    time.sleep(0.5)  # let the task get going
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_busy_worker)
    killer.start()
    summary = batch.run([folder / "*.tif"], tmp_path / "out", prompts={"stacks": stacks}, client=client)
    killer.join()
    assert killed, "no worker was killed"
    assert [r.status for r in summary] == ["done", "done", "done"]
    for r in summary:
        assert tifffile.imread(tmp_path / "out" / r.name / "labels.tif").shape == (12, SIZE, SIZE)
    client.wait_for_workers(2, timeout=60)


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="prompts.*auto"):
        batch.run([tmp_path / "a.tif"], tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="matches no TIFF"):
        batch.run([str(tmp_path / "*.tif")], tmp_path / "out", auto=True)
    with pytest.raises(ValueError, match="direction"):
        batch.run([tmp_path / "a.tif"], tmp_path / "out", auto=True, direction="sideways")
    bad = tmp_path / "p.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="p.json.*not valid JSON"):
        batch.run([tmp_path / "a.tif"], tmp_path / "out", prompts=bad)
    with pytest.raises(ValueError, match=r"stacks\['a.tif'\].*objects\[0\].*points"):
        batch.run([tmp_path / "a.tif"], tmp_path / "out",
                  prompts={"stacks": {"a.tif": {"objects": [{"id": 1, "frames": {"0": {"points": [[1]]}}}]}}})
    with pytest.raises(ValueError, match="none of its stacks.*is among the inputs"):
        batch.run([tmp_path / "a.tif"], tmp_path / "out", prompts={"stacks": {"b.tif": {"objects": []}}})


def test_large_labels_go_to_zarr_frame_by_frame(tmp_path):
    import zarr

    synth = _stack(3)
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, synth.image, photometric="minisblack")
    first = int(np.unique(synth.labels[0])[1])
    doc = {"objects": [{"id": 1, "frames": {"0": {"points": [_centre_click(synth.labels[0], first)]}}}]}
    from napari_sam2.engine.prompt_records import parse_objects

    settings = batch.BatchSettings(zarr_above_mb=0.0)
    task = batch._Task("big", str(path), "x", parse_objects(doc, where="test"))
    outcome = batch.process_stack(task, str(tmp_path / "out"), settings)
    assert outcome.status == "done", outcome.error
    stored = zarr.open(str(tmp_path / "out" / "big" / "labels.zarr"), mode="r")
    assert stored.chunks == (1, SIZE, SIZE)
    np.testing.assert_array_equal(stored[:], _direct_labels(path, doc))


def test_divisions_reach_the_tables_and_the_ctc_files(tmp_path):
    from tests.engine.test_divisions import FRAMES, SPLIT, _scene

    image, _truth = _scene()
    path = tmp_path / "divides.tif"
    tifffile.imwrite(path, image, photometric="minisblack")
    settings = batch.BatchSettings(auto=True, divisions=True, single_mask=True, points_per_side=12, detect_every=3)
    outcome = batch.process_stack(batch._Task("divides", str(path), "x", None), str(tmp_path / "out"), settings)
    assert outcome.status == "done", outcome.error
    folder = tmp_path / "out" / "divides"
    with open(folder / "lineage.csv", newline="") as fh:
        lineage = {int(r["id"]): r for r in csv.DictReader(fh)}
    daughters = [i for i, r in lineage.items() if int(r["mother"])]
    assert len(daughters) == 2
    mother = int(lineage[daughters[0]]["mother"])
    assert int(lineage[mother]["children"]) == 2 and int(lineage[mother]["last_frame"]) == SPLIT - 1
    for d in daughters:
        assert (int(lineage[d]["first_frame"]), int(lineage[d]["last_frame"])) == (SPLIT, FRAMES - 1)
    with open(folder / "objects.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {int(r["mother"]) for r in rows if int(r["id"]) in daughters} == {mother}
    parents = {int(v.split()[0]): int(v.split()[3]) for v in (folder / "ctc" / "res_track.txt").read_text().splitlines()}
    assert {d: parents[d] for d in daughters} == {d: mother for d in daughters}
    with pytest.raises(ValueError, match="go with auto"):
        batch.BatchSettings(divisions=True)
    with pytest.raises(ValueError, match="found going forward"):
        batch.BatchSettings(auto=True, divisions=True, direction="backward")


def test_command_line_batch_tracks_everything(tmp_path):
    from napari_sam2 import cli

    folder = tmp_path / "plate"
    folder.mkdir()
    for seed in (4, 5):
        tifffile.imwrite(folder / f"w{seed}.tif", _stack(seed).image, photometric="minisblack")
    out = tmp_path / "results"
    code = cli.main(["batch", str(folder / "*.tif"), "--auto", "--detect-every", "2", "--points-per-side", "8", "--out", str(out),
                     "--workers", "1", "--divisions"])
    assert code == 0
    rows = _summary(out)
    assert [rows[n]["status"] for n in ("w4", "w5")] == ["done", "done"]
    for name in ("w4", "w5"):
        assert int(rows[name]["objects"]) >= 2  # the cells were found without a click
        labels = tifffile.imread(out / name / "labels.tif")
        assert len(np.unique(labels[0])) - 1 >= 2
        track_file = (out / name / "ctc" / "res_track.txt").read_text().split()
        assert len(track_file) >= 8  # at least two tracks of four numbers
        assert (out / name / "lineage.csv").read_text().startswith("id,mother,first_frame")
    assert cli.main(["batch", str(folder / "*.tif"), "--auto", "--direction", "both", "--out", str(out)]) == 2


def test_the_readme_batch_example_runs(tmp_path, monkeypatch):
    """The README's two commands, on the first frames of the samples they write
    (the whole samples take minutes on a CI machine) and with a coarser
    prompt grid; every option is the README's own."""
    import re
    import shlex
    import subprocess
    import sys
    from pathlib import Path

    from napari_sam2 import cli

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- batch-example -->\n```bash\n(.*?)```", text, re.S).group(1)
    generate, run = [line for line in block.splitlines() if line.strip()]
    monkeypatch.chdir(tmp_path)
    argv = shlex.split(generate)
    assert argv[:3] == ["python", "-m", "napari_sam2.sample_data.generate"]
    subprocess.run([sys.executable, *argv[1:]], check=True, timeout=600)
    argv = shlex.split(run)
    assert argv[:2] == ["napari-sam2", "batch"]
    for name in argv[2:]:
        if name.endswith(".tif"):
            tifffile.imwrite(name, tifffile.imread(name)[:3], photometric="minisblack")
    assert cli.main(argv[1:] + ["--points-per-side", "8"]) == 0
    rows = _summary(tmp_path / "results")
    assert [r["status"] for r in rows.values()] == ["done", "done"]
    assert all(int(r["objects"]) >= 1 for r in rows.values())
