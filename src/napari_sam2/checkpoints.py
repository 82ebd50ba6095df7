"""Model registry and checkpoint files: where each model comes from and where it lives.

Every model name maps to a :class:`ModelEntry`: the config to build it from
and where its weights come from, either a URL (Meta's published files) or a
file shipped inside this package. Downloaded files are cached in
:func:`checkpoint_dir` under Meta's own file names, so a file fetched by hand
can simply be dropped there.

Environment variables, read at call time:

``NAPARI_SAM2_CHECKPOINT_DIR``
    Folder holding the checkpoint files (default: the user cache folder).
``NAPARI_SAM2_CHECKPOINT_URL``
    Base URL of a mirror (``https://``, ``http://``, ``file://`` or a plain
    local folder); a model's file name is appended to it.

Downloads (:mod:`napari_sam2.download`) are atomic: bytes go to a hidden
temporary file in the same folder and are moved into place only once
complete, so the cache never holds a partial file, whatever goes wrong
(network error, short read, Ctrl-C). Nothing here imports torch at import
time; loading the weights into a network sits on top.
"""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass
from http.client import HTTPException
from importlib import resources
from pathlib import Path

from .download import ProgressCallback, download, failure_reason, split_timeout

__all__ = [
    "ModelEntry",
    "CheckpointError",
    "CheckpointDownloadError",
    "CHECKPOINT_DIR_ENV",
    "CHECKPOINT_URL_ENV",
    "DEFAULT_TIMEOUT",
    "DEFAULT_MIN_RATE",
    "available_models",
    "model_entry",
    "checkpoint_dir",
    "checkpoint_url",
    "checkpoint_path",
    "ensure_checkpoint",
    "load_model",
    "save_checkpoint",
]

CHECKPOINT_DIR_ENV = "NAPARI_SAM2_CHECKPOINT_DIR"
CHECKPOINT_URL_ENV = "NAPARI_SAM2_CHECKPOINT_URL"

# (connect, read) seconds. Connect covers the DNS lookup and the TCP/TLS
# handshake; read is the longest wait for the next bytes of a running transfer.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 30.0)

# (bytes per second, seconds): a running transfer must bring at least this
# many bytes per second on average over every window of this many seconds,
# so that a mirror trickling a byte now and then (each read within the read
# timeout) cannot stall a download for hours. Read at call time.
DEFAULT_MIN_RATE: tuple[float, float] = (16 * 1024.0, 60.0)


# --------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelEntry:
    """One known model: the config it is built from and where its weights are.

    Exactly one of ``url`` (downloaded into :func:`checkpoint_dir`) and
    ``package_file`` (a path relative to the ``napari_sam2`` package, shipped
    in the wheel) is set.
    """

    name: str
    config: str
    url: str | None = None
    package_file: str | None = None

    def __post_init__(self) -> None:
        if (self.url is None) == (self.package_file is None):
            raise ValueError(f"model {self.name!r}: give exactly one of url and package_file")

    @property
    def filename(self) -> str:
        """File name of the checkpoint (the last part of its URL or package path)."""
        if self.url is not None:
            return urllib.parse.urlsplit(self.url).path.rsplit("/", 1)[-1]
        return str(self.package_file).replace("\\", "/").rsplit("/", 1)[-1]


_META_BASE = "https://dl.fbaipublicfiles.com/segment_anything_2"
_SIZES = ("tiny", "small", "base_plus", "large")


def _meta_entries(family: str, release: str) -> dict[str, ModelEntry]:
    names = (f"{family}_hiera_{size}" for size in _SIZES)
    return {
        name: ModelEntry(name=name, config=name, url=f"{_META_BASE}/{release}/{name}.pt")
        for name in names
    }


# Model name -> entry. SAM 2.1 was released 2024-09-28, SAM 2 2024-07-28.
# "demo" is the project's own small model, trained on synthetic microscopy
# (tools/train_demo.py) and shipped in the package: it works offline.
_REGISTRY: dict[str, ModelEntry] = {
    **_meta_entries("sam2.1", "092824"),
    **_meta_entries("sam2", "072824"),
    "demo": ModelEntry(name="demo", config="demo", package_file="weights/demo.pt"),
}


def available_models() -> list[str]:
    """Names of the known models, the ones :func:`ensure_checkpoint` accepts."""
    return sorted(_REGISTRY)


def model_entry(name: str) -> ModelEntry:
    """The registry entry of a model.

    ``name`` is a model name; its checkpoint file name (``"sam2.1_hiera_tiny.pt"``)
    is accepted too. Raises ``ValueError`` listing the known names otherwise.
    """
    key = str(name)
    if key not in _REGISTRY and key.endswith((".pt", ".pth")):
        key = key.rsplit(".", 1)[0]
    try:
        return _REGISTRY[key]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; known models: {', '.join(available_models())}"
        ) from None


# --------------------------------------------------------------------------
# Locations
# --------------------------------------------------------------------------


def checkpoint_dir() -> Path:
    """Folder where downloaded checkpoints are cached.

    ``$NAPARI_SAM2_CHECKPOINT_DIR`` when set (``~`` is expanded), else the
    user cache folder (e.g. ``~/.cache/napari-sam2`` on Linux). The folder is
    not created here.
    """
    override = os.environ.get(CHECKPOINT_DIR_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    import pooch  # only needed for the platform's cache convention

    return Path(pooch.os_cache("napari-sam2"))


def _mirror_base(base: str) -> str:
    """A mirror base as a URL ending in "/"; a plain folder becomes a file:// URL."""
    if "://" not in base:
        base = Path(base).expanduser().resolve().as_uri()
    return base if base.endswith("/") else base + "/"


def checkpoint_url(name: str) -> str | None:
    """URL the model's checkpoint is downloaded from (None for a shipped file).

    ``$NAPARI_SAM2_CHECKPOINT_URL``, when set, replaces Meta's folder: the
    file name is appended to it.
    """
    entry = model_entry(name)
    if entry.url is None:
        return None
    base = os.environ.get(CHECKPOINT_URL_ENV, "").strip()
    if base:
        return _mirror_base(base) + urllib.parse.quote(entry.filename)
    return entry.url


def checkpoint_path(name: str) -> Path:
    """Where the model's checkpoint file is, or will be once downloaded."""
    entry = model_entry(name)
    if entry.package_file is not None:
        return Path(str(resources.files("napari_sam2").joinpath(entry.package_file)))
    return checkpoint_dir() / entry.filename


# --------------------------------------------------------------------------
# Download
# --------------------------------------------------------------------------


class CheckpointError(RuntimeError):
    """A checkpoint file is missing or cannot be read."""


class CheckpointDownloadError(CheckpointError):
    """A checkpoint could not be downloaded; the message says how to get it by hand.

    Attributes: ``url`` (the source), ``path`` (where the file belongs) and
    ``reason`` (what went wrong). The original error is the ``__cause__``.
    """

    def __init__(self, name: str, url: str, path: Path, reason: str) -> None:
        self.url = url
        self.path = path
        self.reason = reason
        super().__init__(
            f"could not download the checkpoint of model {name!r}\n"
            f"  from: {url}\n"
            f"  to:   {path}\n"
            f"  reason: {reason}\n"
            "To fix this, any one of:\n"
            f"  - download {url} by other means (browser, curl) and save it as {path}\n"
            f"  - set {CHECKPOINT_DIR_ENV} to a folder that already holds {path.name}\n"
            f"  - set {CHECKPOINT_URL_ENV} to a mirror (a base URL or a local folder "
            f"from which {path.name} can be read)\n"
            "  - check the network connection and proxy settings (HTTPS_PROXY), then retry"
        )

def ensure_checkpoint(
    name: str,
    *,
    progress: bool | ProgressCallback = True,
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
    min_rate: tuple[float, float] | None = None,
) -> Path:
    """Path of the model's checkpoint file, downloading it first if needed.

    A file already at :func:`checkpoint_path` is returned as is, without any
    network access. Otherwise the file is fetched from :func:`checkpoint_url`
    into :func:`checkpoint_dir`.

    Args:
        name: a model name from :func:`available_models`.
        progress: ``True`` shows a tqdm bar on stderr, ``False`` nothing; a
            callable is called as ``progress(bytes_done, total_or_None)``
            after each chunk (e.g. to drive a GUI progress bar).
        timeout: seconds, one number for both or ``(connect, read)``: the
            connect part bounds the DNS lookup and handshake, the read part
            the wait for each next chunk.
        min_rate: ``(bytes per second, seconds)``: the transfer fails when it
            brings less than that rate over a window of that many seconds
            (default :data:`DEFAULT_MIN_RATE`, 16 KiB/s over 60 s), however
            often single bytes arrive.

    Raises:
        ValueError: ``name`` is not a known model.
        CheckpointError: a shipped checkpoint file is missing from the install.
        CheckpointDownloadError: the download failed (no network, HTTP error,
            short transfer, ...); its message gives the URL, the path where
            the file belongs and what to do. No partial file is left behind.
        KeyboardInterrupt: passed on after removing the partial file.
    """
    entry = model_entry(name)
    path = checkpoint_path(entry.name)
    if path.is_file():
        return path
    url = checkpoint_url(entry.name)
    if url is None:
        raise CheckpointError(
            f"the checkpoint of model {entry.name!r} ships with napari-sam2 but is "
            f"missing at {path}; reinstall the package"
        )
    try:
        download(url, path, progress=progress, timeout=split_timeout(timeout),
                 min_rate=DEFAULT_MIN_RATE if min_rate is None else min_rate)
    except (OSError, HTTPException, ValueError) as exc:  # URLError and timeouts are OSErrors
        raise CheckpointDownloadError(entry.name, url, path, failure_reason(exc)) from exc
    return path


# --------------------------------------------------------------------------
# Loading (on top of the above)
# --------------------------------------------------------------------------

def load_model(
    name_or_path: str | os.PathLike,
    *,
    config: str | None = None,
    device: str | None = None,
    image_size: int | None = None,
    progress: bool | ProgressCallback = True,
):
    """A ready SAM 2 network in eval mode.

    Args:
        name_or_path: a model name from :func:`available_models` (its file is
            downloaded into :func:`checkpoint_dir` on first use) or the path
            of a checkpoint file (Meta's ``.pt`` or one saved by this package).
        config: the model config: a model name (``"sam2.1_hiera_small"``) or
            Meta's config name (``"sam2.1_hiera_s"``). Inferred from a model
            name, from a config stored in the file, or from a file name that
            follows Meta's naming.
        device: ``"cuda"``, ``"mps"``, ``"cpu"``...; default the best available.
        image_size: run the network at this input size instead of the
            config's (e.g. 512: 4-8x less compute for small images or CPUs).
        progress: as for :func:`ensure_checkpoint`.

    Raises:
        ValueError: unknown name, or no config can be inferred for a file.
        CheckpointDownloadError: the download failed (the message says where
            to put the file by hand).
        CheckpointError: the file is unreadable, truncated, or holds another
            model's weights (the message names the file and the model).
    """
    import torch

    from .config import config_from_dict, load_config, resolve_config_name
    from .model import CheckpointMismatchError, build_model, check_weights_fit, load_weights_strict
    from .model.device import resolve_device

    text = os.fspath(name_or_path)
    is_name = text in _REGISTRY or (
        not Path(text).exists() and text.rsplit(".", 1)[0] in _REGISTRY
    )
    if is_name:
        entry = model_entry(text)
        path = ensure_checkpoint(entry.name, progress=progress)
        config = config or entry.config
    else:
        path = Path(text).expanduser()
        if not path.is_file():
            raise ValueError(
                f"{text!r} is neither a known model ({', '.join(available_models())}) "
                "nor an existing checkpoint file"
            )
    payload = _read_checkpoint(path, torch)
    overrides = {} if image_size is None else {"image_size": int(image_size)}
    if config is not None:
        cfg = load_config(resolve_config_name(config), **overrides)
    elif payload.get("config") is not None:
        stored = payload["config"]
        if not isinstance(stored, dict):
            raise CheckpointError(
                f"checkpoint {path}: its stored 'config' must be a mapping of config values, "
                f"got {type(stored).__name__}"
            )
        try:
            cfg = config_from_dict({**stored, **overrides})
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {path}: its stored config is not valid: {exc}") from exc
    else:
        try:
            cfg = load_config(resolve_config_name(path.name), **overrides)
        except ValueError:
            raise ValueError(
                f"cannot tell which model {path} holds from its name; pass config=, e.g. "
                "config='sam2.1_hiera_tiny' (or Meta's 'sam2.1_hiera_t')"
            ) from None
    source = f"checkpoint {path}"
    try:
        # keys and shapes first, on a network without storage: a file that
        # does not fit never makes the real (maybe large) network allocate
        with torch.device("meta"):
            skeleton = build_model(cfg)
        check_weights_fit(skeleton, payload["model"], source=source)
        del skeleton
        model = build_model(cfg)
        load_weights_strict(model, payload["model"], source=source)
    except CheckpointMismatchError as exc:
        raise CheckpointError(str(exc)) from exc
    return model.to(resolve_device(device)).eval()


def _check_tensors(path: Path, state: dict, torch) -> None:
    """Every entry a floating-point tensor with finite values."""
    for key, value in state.items():
        if not isinstance(key, str):
            raise CheckpointError(f"checkpoint {path}: state dict key {key!r} is not a string")
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"checkpoint {path}: {key!r} holds a {type(value).__name__}, not a tensor; "
                "the file is not a SAM 2 checkpoint"
            )
        if not value.is_floating_point():
            raise CheckpointError(
                f"checkpoint {path}: {key!r} holds {value.dtype} values; SAM 2 weights are floating point"
            )
    bad = [k for k, v in state.items() if v.numel() and not bool(torch.isfinite(v).all())]
    if bad:
        shown = ", ".join(bad[:3]) + (f" (+{len(bad) - 3} more)" if len(bad) > 3 else "")
        raise CheckpointError(
            f"checkpoint {path}: {len(bad)} tensor(s) hold NaN or infinite values ({shown}); "
            "the weights are damaged (e.g. a diverged training run)"
        )


def _read_checkpoint(path: Path, torch) -> dict:
    """The checkpoint's content as a dict with a ``"model"`` state dict of
    finite floating-point tensors."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, bad pickle, not a torch file...
        raise CheckpointError(
            f"cannot read checkpoint {path} ({type(exc).__name__}). The file is damaged "
            "or not a PyTorch checkpoint; delete it and download it again (or pass another file)."
        ) from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("model"), dict):
        raise CheckpointError(
            f"checkpoint {path} holds no 'model' state dict; a SAM 2 checkpoint is a dict "
            "{'model': state_dict} as published by Meta or saved by napari_sam2.save_checkpoint"
        )
    if not payload["model"]:
        raise CheckpointError(f"checkpoint {path}: its 'model' state dict is empty")
    _check_tensors(path, payload["model"], torch)
    return payload


def save_checkpoint(model, path: str | os.PathLike) -> Path:
    """Save a network with its config in Meta's file layout (loadable by
    :func:`load_model` and by Meta's own code).

    Written atomically (:func:`napari_sam2._io.atomic_file`): a unique
    temporary file in the same folder, moved into place once complete, so
    two saves to one path never mix and a failed save leaves nothing behind.
    Raises ``FileNotFoundError``/``PermissionError`` naming the path when its
    folder is missing or does not take new files.
    """
    import torch

    from ._io import atomic_file, check_destination
    from .config import config_to_dict
    from .model import to_meta_keys

    path = check_destination(path, what="checkpoint")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    payload = {"model": to_meta_keys(state), "config": config_to_dict(model.config)}
    with atomic_file(path, what="checkpoint") as fh:
        torch.save(payload, fh)
    return path
