"""One file over HTTP(S) or ``file://``, atomically, with bounded waits.

:func:`download` copies a URL into a file: the bytes go to a hidden
temporary file in the destination's folder and are moved into place only
once complete, so the destination never holds a partial file, whatever goes
wrong (network error, short read, Ctrl-C). Every wait is bounded: the DNS
lookup and the TCP/TLS handshake by the connect timeout, each next chunk by
the read timeout, and the whole transfer by a minimum rate over a sliding
window (a mirror trickling a byte now and then cannot stall it for hours).
Used by :mod:`napari_sam2.checkpoints`; nothing here knows about models.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.client import HTTPConnection, HTTPSConnection
from pathlib import Path
from typing import Callable, Union

__all__ = ["ProgressCallback", "RateGuard", "download", "failure_reason", "open_url", "split_timeout"]

# Called with (bytes received so far, total bytes or None when unknown).
ProgressCallback = Callable[[int, Union[int, None]], None]

_CHUNK = 1 << 20  # bytes read per step
_USER_AGENT = "napari-sam2 (checkpoint download)"


def split_timeout(timeout: float | tuple[float, float]) -> tuple[float, float]:
    """``(connect, read)`` seconds from one number for both or a pair."""
    if isinstance(timeout, (tuple, list)):
        connect, read = timeout
    else:
        connect = read = timeout
    return float(connect), float(read)


def _resolve(host: str, port: int, deadline: float) -> list:
    """``getaddrinfo`` that gives up after ``deadline`` seconds.

    The system resolver takes no timeout and can stall far longer than the
    connect timeout when no DNS server answers; a daemon thread bounds it.
    """
    result: dict = {}

    def lookup() -> None:
        try:
            result["infos"] = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        except BaseException as exc:  # handed to the caller's thread
            result["error"] = exc

    worker = threading.Thread(target=lookup, name="napari-sam2-dns", daemon=True)
    worker.start()
    worker.join(deadline)
    if worker.is_alive():
        raise socket.timeout(f"DNS lookup of {host} timed out after {deadline:g} s")
    if "error" in result:
        raise result["error"]
    return result["infos"]


def _connect(address: tuple[str, int], timeout: float, source_address=None) -> socket.socket:
    """Like ``socket.create_connection`` but with the DNS lookup bounded too."""
    host, port = address
    error: BaseException | None = None
    for family, kind, proto, _, sockaddr in _resolve(host, port, timeout):
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error if error is not None else OSError(f"no address found for {host}")


class _TimedHTTPConnection(HTTPConnection):
    """An HTTP connection with separate connect and read timeouts.

    ``timeout`` (set by urllib from the request) bounds the DNS lookup and
    the handshake; once connected, the socket waits ``read_timeout`` for data.
    """

    def __init__(self, *args, read_timeout: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._read_timeout = read_timeout
        self._create_connection = _connect  # http.client's hook for opening the socket

    def connect(self) -> None:
        super().connect()
        self.sock.settimeout(self._read_timeout)


class _TimedHTTPSConnection(HTTPSConnection):
    __doc__ = _TimedHTTPConnection.__doc__

    def __init__(self, *args, read_timeout: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._read_timeout = read_timeout
        self._create_connection = _connect

    def connect(self) -> None:
        super().connect()  # TCP connect then TLS handshake, both under `timeout`
        self.sock.settimeout(self._read_timeout)


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, read_timeout: float) -> None:
        super().__init__()
        self._read_timeout = read_timeout

    def http_open(self, req):
        def connection(*args, **kwargs):
            return _TimedHTTPConnection(*args, read_timeout=self._read_timeout, **kwargs)

        return self.do_open(connection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, read_timeout: float) -> None:
        super().__init__()
        self._read_timeout = read_timeout

    def https_open(self, req):
        def connection(*args, **kwargs):
            return _TimedHTTPSConnection(*args, read_timeout=self._read_timeout, **kwargs)

        return self.do_open(connection, req, context=self._context)


def open_url(url: str, timeout: tuple[float, float]):
    """Open ``url`` (http, https or file) and return the response."""
    connect, read = timeout
    opener = urllib.request.build_opener(_HTTPHandler(read), _HTTPSHandler(read))
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    return opener.open(request, timeout=connect)


def _content_length(response) -> int | None:
    value = response.headers.get("Content-Length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def failure_reason(exc: BaseException) -> str:
    """What went wrong with a transfer, in words for an error message."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"the server answered HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    if isinstance(exc, socket.timeout):
        return f"timed out ({exc})" if str(exc) else "timed out"
    if isinstance(exc, socket.gaierror):
        return f"the host name could not be resolved ({exc})"
    return f"{type(exc).__name__}: {exc}"


def _progress_reporter(progress: bool | ProgressCallback, total: int | None, label: str):
    """Return ``(update(n_new_bytes), close())`` for the chosen kind of progress."""
    if callable(progress):
        done = 0

        def update(n: int) -> None:
            nonlocal done
            done += n
            progress(done, total)

        return update, lambda: None
    if progress:
        try:
            from tqdm.auto import tqdm
        except ImportError:  # tqdm comes with napari; without it, no bar
            return (lambda n: None), (lambda: None)
        bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                   desc=label, file=sys.stderr, leave=True)
        return bar.update, bar.close
    return (lambda n: None), (lambda: None)


class RateGuard:
    """Raises ``socket.timeout`` when fewer than ``rate * window`` bytes
    arrived during the last full window of ``window`` seconds."""

    def __init__(self, min_rate: tuple[float, float]) -> None:
        rate, window = (float(v) for v in min_rate)
        if not (rate >= 0 and window > 0) or rate != rate or window != window:
            raise ValueError(f"min_rate must be (bytes per second >= 0, seconds > 0), got {min_rate!r}")
        self.rate, self.window = rate, window
        self.started = time.monotonic()
        self.received = 0

    def update(self, n: int) -> None:
        self.received += n
        now = time.monotonic()
        if now - self.started >= self.window:
            if self.received < self.rate * (now - self.started):
                got = self.received / (now - self.started)
                raise socket.timeout(
                    f"the transfer is too slow: {got:.0f} bytes/s over {now - self.started:.0f} s, "
                    f"below the minimum of {self.rate:.0f} bytes/s"
                )
            self.started, self.received = now, 0


def download(url: str, dest: Path, *, progress: bool | ProgressCallback, timeout: tuple[float, float],
             min_rate: tuple[float, float]) -> None:
    """Copy ``url`` into ``dest`` atomically; raise on any error, leave nothing behind.

    ``progress``: True for a tqdm bar on stderr, False for none, or
    ``progress(bytes_done, total_or_None)``; ``timeout``: ``(connect, read)``
    seconds; ``min_rate``: ``(bytes per second, seconds)``, the least a
    transfer must bring over every window of that many seconds.
    """
    guard = RateGuard(min_rate)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            with open_url(url, timeout) as response:
                total = _content_length(response)
                update, close = _progress_reporter(progress, total, dest.name)
                received = 0
                # read1: whatever has arrived (up to a chunk), so that the
                # rate is checked while bytes trickle in, not after 1 MiB
                read = getattr(response, "read1", response.read)
                try:
                    while True:
                        chunk = read(_CHUNK)
                        if not chunk:
                            break
                        out.write(chunk)
                        received += len(chunk)
                        update(len(chunk))
                        guard.update(len(chunk))
                finally:
                    close()
            if total is not None and received != total:
                raise OSError(
                    f"incomplete transfer: received {received} of {total} bytes "
                    "(the connection was closed early)"
                )
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    except BaseException:
        # Ctrl-C included: the temporary file never outlives a failed download.
        tmp.unlink(missing_ok=True)
        raise
