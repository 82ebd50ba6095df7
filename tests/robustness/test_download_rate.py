"""A mirror that trickles bytes (each within the read timeout) cannot stall
a download: the transfer must keep a minimum rate, and nothing partial is
left behind."""

from __future__ import annotations

import http.server
import threading
import time

import pytest

from napari_sam2 import checkpoints, download
from napari_sam2.checkpoints import CheckpointDownloadError, ensure_checkpoint, load_model

TRICKLE_SECONDS = 4.0  # the server gives up after this long (bounds the test on any code)


class _Trickle(http.server.BaseHTTPRequestHandler):
    """Announces 10 000 bytes, then sends one every 20 ms."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", "10000")
        self.end_headers()
        stop = time.monotonic() + TRICKLE_SECONDS
        try:
            while time.monotonic() < stop:
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.02)
        except OSError:  # the client gave up
            pass
        self.close_connection = True

    def log_message(self, format, *args):
        pass


@pytest.fixture
def trickling_mirror(tmp_path, monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv("NAPARI_SAM2_CHECKPOINT_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NAPARI_SAM2_CHECKPOINT_URL", f"http://127.0.0.1:{server.server_address[1]}/")
    yield tmp_path / "cache"
    server.shutdown()
    server.server_close()


def test_trickling_download_fails_for_being_too_slow(trickling_mirror, monkeypatch):
    # about 50 bytes/s arrive; ask for 1000 bytes/s over half-second windows
    monkeypatch.setattr(checkpoints, "DEFAULT_MIN_RATE", (1000.0, 0.5))
    with pytest.raises(CheckpointDownloadError, match="too slow") as err:
        load_model("sam2.1_hiera_tiny", device="cpu", progress=False)
    assert "sam2.1_hiera_tiny.pt" in str(err.value)
    assert not trickling_mirror.exists() or list(trickling_mirror.iterdir()) == []


def test_min_rate_argument_of_ensure_checkpoint(trickling_mirror):
    with pytest.raises(CheckpointDownloadError, match="too slow"):
        ensure_checkpoint("sam2.1_hiera_tiny", progress=False, min_rate=(1000.0, 0.5))


def test_min_rate_is_checked():
    with pytest.raises(ValueError, match="min_rate"):
        download.RateGuard((100.0, 0.0))


def test_default_is_a_real_bound():
    rate, window = checkpoints.DEFAULT_MIN_RATE
    assert rate > 1 and 0 < window <= 120  # a byte a second can never pass
