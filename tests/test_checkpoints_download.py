"""Checkpoint registry and download: local HTTP server and file:// URLs only."""

from __future__ import annotations

import functools
import http.server
import os
import socket
import threading
from pathlib import Path

import pytest

from napari_sam2 import checkpoints, download
from napari_sam2.checkpoints import (
    CheckpointDownloadError,
    available_models,
    checkpoint_dir,
    checkpoint_path,
    checkpoint_url,
    ensure_checkpoint,
)
from napari_sam2.config import config_names

MODEL = "sam2.1_hiera_tiny"
FILENAME = "sam2.1_hiera_tiny.pt"
# Several chunks long, so progress and interruption happen mid-transfer.
PAYLOAD = bytes(range(256)) * (3 * (1 << 20) // 256 + 7)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep test output clean
        pass


class _TruncatingHandler(http.server.BaseHTTPRequestHandler):
    """Announces the full Content-Length, sends half the bytes, then hangs up."""

    payload = PAYLOAD

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()
        self.wfile.write(self.payload[: len(self.payload) // 2])
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, format, *args):
        pass


def _serve(handler):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    return server, thread


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty checkpoint folder, selected through the environment."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("NAPARI_SAM2_CHECKPOINT_DIR", str(folder))
    monkeypatch.delenv("NAPARI_SAM2_CHECKPOINT_URL", raising=False)
    return folder


@pytest.fixture
def served(tmp_path):
    """A folder holding the model file, served over HTTP on 127.0.0.1."""
    root = tmp_path / "mirror"
    root.mkdir()
    (root / FILENAME).write_bytes(PAYLOAD)
    server, thread = _serve(functools.partial(_QuietHandler, directory=str(root)))
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def truncating_server():
    server, thread = _serve(_TruncatingHandler)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _contents(folder: Path) -> list[str]:
    return sorted(os.listdir(folder)) if folder.exists() else []


# --------------------------------------------------------------------------
# Registry and locations
# --------------------------------------------------------------------------


def test_registry_lists_the_eight_meta_models_and_the_demo():
    names = available_models()
    assert len(names) == 9 and "demo" in names
    assert checkpoints.model_entry("demo").url is None
    for family, release in (("sam2.1", "092824"), ("sam2", "072824")):
        for size in ("tiny", "small", "base_plus", "large"):
            name = f"{family}_hiera_{size}"
            assert name in names
            assert checkpoints.model_entry(name).config in config_names()
            assert checkpoints.model_entry(name).url == (
                f"https://dl.fbaipublicfiles.com/segment_anything_2/{release}/{name}.pt"
            )


def test_unknown_name_lists_known_names(cache):
    with pytest.raises(ValueError) as info:
        ensure_checkpoint("sam3_hiera_huge")
    message = str(info.value)
    assert "sam3_hiera_huge" in message
    for name in available_models():
        assert name in message


def test_file_name_is_accepted_as_model_name(cache):
    assert checkpoint_path(FILENAME) == checkpoint_path(MODEL) == cache / FILENAME


def test_entry_needs_exactly_one_source():
    with pytest.raises(ValueError):
        checkpoints.ModelEntry(name="x", config="sam2.1_hiera_tiny")
    with pytest.raises(ValueError):
        checkpoints.ModelEntry(name="x", config="c", url="file:///x.pt", package_file="x.pt")


def test_packaged_entry_resolves_inside_the_package(monkeypatch, cache):
    entry = checkpoints.ModelEntry(name="missing", config="sam2.1_hiera_tiny",
                                   package_file="weights/missing.pt")
    monkeypatch.setitem(checkpoints._REGISTRY, "missing", entry)
    path = checkpoint_path("missing")
    assert path.name == "missing.pt"
    assert path.parent.name == "weights"
    assert checkpoint_url("missing") is None
    assert not path.exists()
    with pytest.raises(checkpoints.CheckpointError, match="reinstall"):
        ensure_checkpoint("missing")


def test_env_var_overrides_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_SAM2_CHECKPOINT_DIR", str(tmp_path / "a"))
    assert checkpoint_dir() == tmp_path / "a"
    # read at call time, not import time
    monkeypatch.setenv("NAPARI_SAM2_CHECKPOINT_DIR", str(tmp_path / "b"))
    assert checkpoint_dir() == tmp_path / "b"
    assert checkpoint_path(MODEL) == tmp_path / "b" / FILENAME
    monkeypatch.delenv("NAPARI_SAM2_CHECKPOINT_DIR")
    assert checkpoint_dir() != tmp_path / "b"
    assert "napari-sam2" in str(checkpoint_dir())


def test_env_var_overrides_base_url(monkeypatch, tmp_path):
    monkeypatch.setenv("NAPARI_SAM2_CHECKPOINT_URL", "https://mirror.example/sam2")
    assert checkpoint_url(MODEL) == f"https://mirror.example/sam2/{FILENAME}"
    monkeypatch.setenv("NAPARI_SAM2_CHECKPOINT_URL", "https://mirror.example/sam2/")
    assert checkpoint_url("sam2_hiera_large") == "https://mirror.example/sam2/sam2_hiera_large.pt"
    monkeypatch.setenv("NAPARI_SAM2_CHECKPOINT_URL", str(tmp_path))
    assert checkpoint_url(MODEL) == (tmp_path / FILENAME).as_uri()


# --------------------------------------------------------------------------
# Downloads that succeed
# --------------------------------------------------------------------------


def test_http_download_lands_with_exact_bytes(cache, served, monkeypatch, capsys):
    _, base = served
    monkeypatch.setenv("NAPARI_SAM2_CHECKPOINT_URL", base)
    path = ensure_checkpoint(MODEL)
    assert path == cache / FILENAME
    assert path.read_bytes() == PAYLOAD
    assert _contents(cache) == [FILENAME]  # no temporary file left over
    err = capsys.readouterr().err
    assert FILENAME in err  # the tqdm bar names the file
    assert "100%" in err


def test_file_url_download(cache, tmp_path, monkeypatch):
    source = tmp_path / "offline"
    source.mkdir()
    (source / FILENAME).write_bytes(PAYLOAD)
    monkeypatch.setenv("NAPARI_SAM2_CHECKPOINT_URL", source.as_uri())
    path = ensure_checkpoint(MODEL, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert _contents(cache) == [FILENAME]


def test_plain_folder_as_mirror(cache, tmp_path, monkeypatch):
    source = tmp_path / "offline"
    source.mkdir()
    (source / FILENAME).write_bytes(PAYLOAD)
    monkeypatch.setenv("NAPARI_SAM2_CHECKPOINT_URL", str(source))
    assert ensure_checkpoint(MODEL, progress=False).read_bytes() == PAYLOAD


def test_progress_callback_and_no_bar(cache, served, monkeypatch, capsys):
    _, base = served
    monkeypatch.setenv("NAPARI_SAM2_CHECKPOINT_URL", base)
    calls = []
    ensure_checkpoint(MODEL, progress=lambda done, total: calls.append((done, total)))
    assert len(calls) > 1
    assert calls[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert FILENAME not in capsys.readouterr().err


def test_tqdm_is_used_when_progress_is_true(cache, served, monkeypatch):
    import tqdm.auto

    _, base = served
    monkeypatch.setenv("NAPARI_SAM2_CHECKPOINT_URL", base)
    made = []

    class FakeBar:
        def __init__(self, **kwargs):
            self.kwargs, self.n, self.closed = kwargs, 0, False
            made.append(self)

        def update(self, n):
            self.n += n

        def close(self):
            self.closed = True

    monkeypatch.setattr(tqdm.auto, "tqdm", FakeBar)
    ensure_checkpoint(MODEL)
    (bar,) = made
    assert bar.kwargs["total"] == len(PAYLOAD)
    assert bar.n == len(PAYLOAD)
    assert bar.closed


def test_cached_file_is_used_without_network(cache, monkeypatch):
    cache.mkdir()
    (cache / FILENAME).write_bytes(b"already here")

    def no_network(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(download, "open_url", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setenv("NAPARI_SAM2_CHECKPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    path = ensure_checkpoint(MODEL)
    assert path == cache / FILENAME
    assert path.read_bytes() == b"already here"


# --------------------------------------------------------------------------
# Downloads that fail leave nothing behind
# --------------------------------------------------------------------------


def test_short_transfer_raises_and_leaves_no_file(cache, truncating_server, monkeypatch):
    monkeypatch.setenv("NAPARI_SAM2_CHECKPOINT_URL", truncating_server)
    with pytest.raises(CheckpointDownloadError) as info:
        ensure_checkpoint(MODEL, progress=False)
    message = str(info.value)
    assert f"{truncating_server}/{FILENAME}" in message
    assert str(cache / FILENAME) in message
    assert _contents(cache) == []


def test_http_error_status(cache, served, monkeypatch):
    root, base = served
    (root / FILENAME).unlink()
    monkeypatch.setenv("NAPARI_SAM2_CHECKPOINT_URL", base)
    with pytest.raises(CheckpointDownloadError, match="HTTP 404"):
        ensure_checkpoint(MODEL, progress=False)
    assert _contents(cache) == []


def test_missing_file_url(cache, tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_SAM2_CHECKPOINT_URL", (tmp_path / "nowhere").as_uri())
    with pytest.raises(CheckpointDownloadError) as info:
        ensure_checkpoint(MODEL, progress=False)
    assert (tmp_path / "nowhere" / FILENAME).as_uri() in str(info.value)
    assert _contents(cache) == []


def test_closed_port_fails_with_url_and_destination(cache, monkeypatch):
    base = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("NAPARI_SAM2_CHECKPOINT_URL", base)
    with pytest.raises(CheckpointDownloadError) as info:
        ensure_checkpoint(MODEL, timeout=2.0)
    error = info.value
    message = str(error)
    assert f"{base}/{FILENAME}" in message
    assert str(cache / FILENAME) in message
    assert "NAPARI_SAM2_CHECKPOINT_DIR" in message
    assert isinstance(error, RuntimeError)
    assert error.url == f"{base}/{FILENAME}"
    assert error.path == cache / FILENAME
    assert _contents(cache) == []


def test_unresolvable_host_fails_with_message(cache, monkeypatch):
    # .invalid never resolves (RFC 2606); the connect timeout bounds the lookup.
    monkeypatch.setenv("NAPARI_SAM2_CHECKPOINT_URL", "https://dl.fbaipublicfiles.invalid/")
    with pytest.raises(CheckpointDownloadError) as info:
        ensure_checkpoint(MODEL, progress=False, timeout=(3.0, 3.0))
    message = str(info.value)
    assert f"https://dl.fbaipublicfiles.invalid/{FILENAME}" in message
    assert str(cache / FILENAME) in message
    assert _contents(cache) == []


def test_stalled_dns_lookup_is_cut_off(cache, monkeypatch):
    release = threading.Event()

    def stalled_lookup(*args, **kwargs):
        release.wait(30)
        raise socket.gaierror("released")

    monkeypatch.setattr(socket, "getaddrinfo", stalled_lookup)
    monkeypatch.setenv("NAPARI_SAM2_CHECKPOINT_URL", "http://slow-dns.example/")
    try:
        with pytest.raises(CheckpointDownloadError, match="timed out"):
            ensure_checkpoint(MODEL, progress=False, timeout=0.2)
    finally:
        release.set()
    assert _contents(cache) == []


def test_keyboard_interrupt_leaves_no_partial_file(cache, served, monkeypatch):
    _, base = served
    monkeypatch.setenv("NAPARI_SAM2_CHECKPOINT_URL", base)

    def interrupt(done, total):
        assert done < total  # still mid-transfer
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ensure_checkpoint(MODEL, progress=interrupt)
    assert _contents(cache) == []
    # and a later call downloads the file cleanly
    assert ensure_checkpoint(MODEL, progress=False).read_bytes() == PAYLOAD
