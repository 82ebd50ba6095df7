"""Session files: save a :class:`StackSession` and open it again.

A session file is a folder (or a ``.zip`` of the same content)::

    cells.sam2/
      CURRENT              the name of the complete version, e.g. "v-3f2a..."
      v-3f2a.../
        session.json       format version, objects, prompts, lineage, frame
                           source, model, frames current per object
        labels.zarr/       the labels, one chunk per frame
        masks.npz          mask prompts (compressed), named in session.json
        states.npz         what prompted frames decoded (outputs, memories,
                           candidates), named in session.json

Saving writes a new version folder beside the old one and then replaces
``CURRENT`` atomically; the old version is removed only after that. A
label frame that has not changed since the version before (its digest in
``session.json`` is the same) is not written again: its chunk file is
hard-linked into the new version, so that autosaving after a click writes
the frames that click changed, not the whole stack. A save
interrupted at any point (a crash, a killed process) leaves the previous
version loadable. A ``.zip`` is written to a temporary name and moved into
place.

``session.json`` holds the prompts in original-image pixels, napari order
(points ``(y, x)``, boxes ``(y0, x0, y1, x1)``), in the schema of
:mod:`.prompt_records` (the batch runner's prompts files use it too), plus
per object the frames it was tracked on (direction, current).

Per prompted frame the file also keeps what was decoded there (format
version 2): the output not yet propagated, the conditioning memory of the
last propagation, SAM's candidates and the one chosen, so that a loaded
session shows the same masks, reports the same frame states and
propagates to the same labels without decoding anything again. Image
features and the memories of tracked (unprompted) frames are not stored: a
correction decoded after loading reads the prompted frames' memories only,
and a pass continued after loading reads the memories it computes itself
(as after the history budget dropped old entries). Version 1 files open
too; their prompted frames are decoded again.

Loading checks what it is given against the file: another stack shape,
another model (a hash of its weights) or a newer format version is an
error that says what differs.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import uuid
import weakref
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._io import fsync_folder, write_synced
from .candidates import CandidateSnapshot, Output
from .lineage import state_from_json, state_to_json
from .memory import FrameMemory
from .prompt_records import FrameRecord, ObjectRecord, apply_objects, objects_to_json, parse_objects
from .prompted_state import PromptedState

FORMAT = "napari-sam2 session"
FORMAT_VERSION = 2
CURRENT = "CURRENT"
DOCUMENT = "session.json"
LABELS = "labels.zarr"
MASKS = "masks.npz"
STATES = "states.npz"
# dtypes the decoded states are stored in (bfloat16 as its 16 bits)
_TENSOR_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
                  "float64": torch.float64}

_digests: "weakref.WeakKeyDictionary[Any, str]" = weakref.WeakKeyDictionary()


class SessionFileError(ValueError):
    """A session file that cannot be opened, or does not fit what it is opened with."""


def weights_digest(model) -> str:
    """A SHA-256 of the model's weights (names, shapes, dtypes, values), cached per model."""
    digest = _digests.get(model)
    if digest is None:
        h = hashlib.sha256()
        for name, tensor in sorted(model.state_dict().items()):
            t = tensor.detach().cpu().contiguous()
            h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        digest = h.hexdigest()
        _digests[model] = digest
    return digest


# ------------------------------------------------------------------ save
def save_session(session, path: str | os.PathLike, *, objects_meta: dict[int, dict] | None = None,
                 model_source: str | None = None) -> Path:
    """Write ``session`` to ``path`` (a folder, or a file ending in ``.zip``).

    ``objects_meta``: per object id, extra fields kept with it (``name``,
    ``colour``); ``model_source``: the model's name or checkpoint path, for
    the record (the weights' hash is what loading checks).
    """
    target = Path(path)
    if target.exists() and not (target.is_dir() or target.suffix == ".zip"):
        raise FileExistsError(f"session path {str(target)!r} is a file that is not a session (.zip)")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"folder {str(parent)!r} of the session path does not exist")
    if not os.access(parent, os.W_OK):
        raise PermissionError(f"folder {str(parent)!r} of the session path is not writable")
    doc, arrays = _document(session, objects_meta or {}, model_source)
    if target.suffix == ".zip":
        _save_zip(target, doc, arrays, session.labels)
    else:
        _save_folder(target, doc, arrays, session.labels)
    return target


def _document(session, meta: dict[int, dict], model_source: str | None) -> tuple[dict, dict[str, dict]]:
    """``(session.json, {file name: arrays})``."""
    records = session.prompt_records()
    masks: dict[str, np.ndarray] = {}
    prompts = objects_to_json(records)
    for rec, item in zip(records, prompts["objects"]):
        extra = meta.get(rec.id, {})
        for key in ("name", "colour"):
            if extra.get(key) is not None:
                item[key] = extra[key] if key != "colour" else [float(v) for v in extra[key]]
        for frame, fr in rec.frames.items():
            if fr.mask is not None:
                name = f"object{rec.id}_frame{frame}"
                masks[name] = np.packbits(fr.mask, axis=None)
                item["frames"][str(frame)]["mask"] = name
    tracking = {str(obj_id): {k: _runs(v) if v.dtype == bool else v.tolist() for k, v in arrays.items()}
                for obj_id, arrays in session.tracking_state().items()}
    src = session.frames
    doc = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "shape": [session.num_frames, session.height, session.width],
        "data_shape": list(src.data_shape),
        "labels_dtype": str(np.dtype(session.labels.dtype)),
        "frame_source": {
            "axis": src.axis,
            "channel_axis": src.channel_axis,
            "channels": None if src.channels is None else list(src.channels),
            "index": {str(k): v for k, v in src.index.items()},
            "intensity_range": [float(v) for v in src.intensity_range],
        },
        "model": {"source": model_source, "image_size": session.model.image_size,
                  "weights_sha256": weights_digest(session.model)},
        "objects": prompts["objects"],
        "lineage": state_to_json(session.lineage_state()),
        "tracking": tracking,
    }
    doc["states"], states = _states_to_document(session.prompted_states())
    return doc, {MASKS: masks, STATES: states}


def _runs(flags: np.ndarray) -> list[list[int]]:
    """Boolean per frame -> [[first, last], ...] runs of True."""
    f = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(np.int8), [0]])))
    return [[int(a), int(b) - 1] for a, b in zip(f[::2], f[1::2])]


def _from_runs(runs, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    for a, b in runs:
        out[int(a): int(b) + 1] = True
    return out


def _write_version(folder: Path, doc: dict, arrays: dict[str, dict[str, np.ndarray]], labels,
                   previous: Path | None = None) -> None:
    """Write a complete version into the new ``folder``; label frames whose
    digest equals the one in the ``previous`` version folder are linked from
    it instead of written (where the file system allows)."""
    import zarr

    folder.mkdir()
    n, h, w = doc["shape"]
    store = zarr.open(str(folder / LABELS), mode="w", shape=(n, h, w), chunks=(1, h, w),
                      dtype=doc["labels_dtype"], fill_value=0)
    before = _previous_digests(previous, doc)
    digests, linked = [], set()
    for f in range(n):
        frame = np.ascontiguousarray(labels[f])
        digest = hashlib.blake2b(frame.data, digest_size=16).hexdigest()
        digests.append(digest)
        link = _link_chunk(store, previous, folder, f) if before and before[f] == digest else None
        if link is None:
            store[f] = frame
        else:
            linked.add(link)
    doc["frame_digests"] = digests
    for name, content in arrays.items():
        buf = io.BytesIO()
        (np.savez_compressed if name == MASKS else np.savez)(buf, **content)  # states: float noise
        write_synced(folder / name, buf.getvalue())
    write_synced(folder / DOCUMENT, json.dumps(doc, indent=1).encode())
    _fsync_tree(folder, skip=linked)  # linked files were made durable by the save that wrote them


def _previous_digests(previous: Path | None, doc: dict) -> list | None:
    """The frame digests of the version folder ``previous`` when its labels
    have the same shape and dtype (else, or when unreadable, None)."""
    if previous is None:
        return None
    try:
        old = json.loads((previous / DOCUMENT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    digests = old.get("frame_digests")
    if (old.get("shape") != doc["shape"] or old.get("labels_dtype") != doc["labels_dtype"]
            or not isinstance(digests, list) or len(digests) != doc["shape"][0]):
        return None
    return digests


def _chunk_key(store, frame: int) -> str | None:
    """The file name, inside the array's folder, of ``frame``'s chunk."""
    encode = getattr(getattr(store, "metadata", None), "encode_chunk_key", None)  # zarr 3
    if encode is not None:
        return encode((frame, 0, 0))
    key = getattr(store, "_chunk_key", None)  # zarr 2
    return None if key is None else key((frame, 0, 0))


def _link_chunk(store, previous: Path, folder: Path, frame: int) -> Path | None:
    """Hard-link ``frame``'s chunk file of ``previous`` into ``folder`` and
    return the new path; None when there is none (e.g. an empty frame zarr
    did not write) or the file system cannot link (the caller writes the
    frame then)."""
    key = _chunk_key(store, frame)
    if key is None:
        return None
    source, target = previous / LABELS / key, folder / LABELS / key
    if not source.is_file():
        return None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(source, target)
    except OSError:
        return None
    return target


def _save_folder(target: Path, doc, arrays, labels) -> None:
    target.mkdir(exist_ok=True)
    previous = _current_version(target, missing_ok=True)  # a folder whose CURRENT is damaged is not overwritten
    version = f"v-{uuid.uuid4().hex[:12]}"
    try:
        _write_version(target / version, doc, arrays, labels, previous)
        tmp = target / f".{CURRENT}.{uuid.uuid4().hex[:8]}"
        write_synced(tmp, version.encode())
        os.replace(tmp, target / CURRENT)  # the switch: atomic
        fsync_folder(target)
    except BaseException:
        shutil.rmtree(target / version, ignore_errors=True)
        raise
    for p in target.iterdir():  # the old version, and leftovers of interrupted saves
        if p.name != version and p.name != CURRENT and (p.name.startswith("v-") or p.name.startswith(".")):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def _save_zip(target: Path, doc, arrays, labels) -> None:
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as tmp:
        version = Path(tmp) / "v-zip"
        _write_version(version, doc, arrays, labels)
        staged = Path(tmp) / "out.zip"
        with zipfile.ZipFile(staged, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for file in sorted(version.rglob("*")):
                if file.is_file():
                    zf.write(file, file.relative_to(version).as_posix())
        with open(staged, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(staged, target)
        fsync_folder(target.parent)


def _fsync_tree(folder: Path, skip: set = frozenset()) -> None:
    for p in folder.rglob("*"):
        if p.is_file() and p not in skip:
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())
    for p in [folder, *[d for d in folder.rglob("*") if d.is_dir()]]:
        fsync_folder(p)


# ------------------------------------------------------------------ load
def _current_version(target: Path, *, missing_ok: bool = False) -> Path | None:
    pointer = target / CURRENT
    if not pointer.exists():
        if missing_ok:
            return None
        raise SessionFileError(f"{str(target)!r} is not a napari-sam2 session (no {CURRENT} file)")
    name = pointer.read_text(encoding="utf-8").strip()
    folder = target / name
    if not name.startswith("v-") or not (folder / DOCUMENT).is_file():
        raise SessionFileError(f"session {str(target)!r}: {CURRENT} names {name!r}, which is not a saved version")
    return folder


def read_session(path: str | os.PathLike) -> tuple[dict, Any, dict[str, dict[str, np.ndarray]], Any]:
    """``(document, labels array, {file name: arrays}, closer)`` of a session
    file; ``closer()`` releases it."""
    target = Path(path)
    if not target.exists():
        raise FileNotFoundError(f"session {str(target)!r} does not exist")
    if target.is_file():
        if not zipfile.is_zipfile(target):
            raise SessionFileError(f"session {str(target)!r} is neither a session folder nor a .zip of one")
        tmp = tempfile.TemporaryDirectory(prefix="napari-sam2-session-")
        with zipfile.ZipFile(target) as zf:
            zf.extractall(tmp.name)
        folder, closer = Path(tmp.name), tmp.cleanup
    else:
        folder, closer = _current_version(target), (lambda: None)
    try:
        doc = json.loads((folder / DOCUMENT).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        closer()
        raise SessionFileError(f"session {str(target)!r}: {DOCUMENT} cannot be read: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        closer()
        raise SessionFileError(f"session {str(target)!r}: {DOCUMENT} is not a napari-sam2 session document")
    version = doc.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        closer()
        raise SessionFileError(
            f"session {str(target)!r} has format version {version!r}; this napari-sam2 reads versions "
            f"up to {FORMAT_VERSION}: update napari-sam2 to open it")
    import zarr

    labels = zarr.open(str(folder / LABELS), mode="r")
    arrays = {}
    for name in (MASKS, STATES):
        if name == STATES and version < 2:
            arrays[name] = {}
            continue
        try:
            with np.load(folder / name) as npz:
                arrays[name] = {k: npz[k] for k in npz.files}
        except (OSError, ValueError) as exc:
            closer()
            raise SessionFileError(f"session {str(target)!r}: {name} cannot be read: {exc}") from None
    return doc, labels, arrays, closer


def load_session(cls, path, model, data, **kwargs):
    """Build a ``cls`` session over ``data`` with ``model`` from the file at ``path``."""
    doc, stored_labels, arrays, closer = read_session(path)
    try:
        where = str(path)
        digest = weights_digest(model)
        saved = doc.get("model", {})
        if saved.get("weights_sha256") != digest:
            raise SessionFileError(
                f"session {where!r} was made with another model ({saved.get('source') or 'unnamed'}, "
                f"weights {str(saved.get('weights_sha256'))[:12]}...), not the one given "
                f"(weights {digest[:12]}...): load that model, or start a new session")
        if saved.get("image_size") != model.image_size:
            raise SessionFileError(
                f"session {where!r} was made at input size {saved.get('image_size')}, "
                f"the model given runs at {model.image_size}")
        src = doc["frame_source"]
        options = {
            "axis": src["axis"] if src["axis"] is not None else 0,
            "channel_axis": src["channel_axis"],
            "channels": src["channels"],
            "index": {int(k): v for k, v in src["index"].items()} or None,
            "intensity_range": tuple(src["intensity_range"]),
        }
        options = {k: v for k, v in options.items() if k not in kwargs}  # the caller's settings win
        data_shape = tuple(np.shape(data)) if not hasattr(data, "shape") else tuple(data.shape)
        if data_shape != tuple(doc["data_shape"]):
            raise SessionFileError(
                f"session {where!r} was made on a stack of shape {tuple(doc['data_shape'])}, "
                f"the data given has shape {data_shape}")
        labels = kwargs.pop("labels", None)
        n, h, w = doc["shape"]
        if labels is None:
            labels = np.zeros((n, h, w), dtype=np.dtype(doc["labels_dtype"]))
        session = cls(model, data, labels=labels, **options, **kwargs)
        for f in range(n):
            session.labels[f] = stored_labels[f]
        records = _records_with_masks(doc, arrays[MASKS], (h, w), where)
        apply_objects(session, records)
        _restore_lineage(session, doc, where)
        tracking = {}
        for key, per_frame in doc.get("tracking", {}).items():
            tracking[int(key)] = {k: _from_runs(v, n) if k in ("fresh", "reached") else np.asarray(v)
                                  for k, v in per_frame.items()}
        states = _states_from_document(doc.get("states", {}), arrays[STATES], where)
        try:
            session.restore_tracking_state(tracking)
            session.restore_prompted_states(states)
        except (KeyError, ValueError) as exc:
            raise SessionFileError(f"session {where!r} does not fit together: {exc}") from None
        meta = {rec["id"]: {k: rec[k] for k in ("name", "colour") if k in rec} for rec in doc["objects"]}
        return session, meta
    finally:
        closer()


def _restore_lineage(session, doc: dict, where: str) -> None:
    """The mothers and track limits of ``doc`` into ``session`` (files
    written before lineages were kept have none)."""
    try:
        session.restore_lineage(state_from_json(doc.get("lineage"), where=f"session {where!r}"))
    except (KeyError, ValueError) as exc:
        raise SessionFileError(f"session {where!r}: its lineage cannot be restored: {exc}") from None


def _records_with_masks(doc, masks, size, where) -> list[ObjectRecord]:
    plain = {"objects": []}
    mask_of: dict[tuple[int, int], np.ndarray] = {}
    for item in doc["objects"]:
        frames = {}
        for key, entry in item["frames"].items():
            entry = dict(entry)
            name = entry.pop("mask", None)
            if name is not None:
                if name not in masks:
                    raise SessionFileError(f"session {where!r}: mask {name!r} is missing from {MASKS}")
                bits = np.unpackbits(masks[name], count=size[0] * size[1])
                mask_of[(item["id"], int(key))] = bits.reshape(size).astype(bool)
                entry.setdefault("points", [])
            frames[key] = entry
        plain["objects"].append({"id": item["id"], "frames": frames,
                                 **({"name": item["name"]} if "name" in item else {})})
    # a session saved before any object was prompted (labels only) has none
    records = parse_objects(plain, where=f"session {where!r}", allow_empty_frames=True) if plain["objects"] else []
    out = []
    for rec in records:
        frames = {f: FrameRecord(fr.points, fr.labels, fr.box, mask_of.get((rec.id, f)))
                  for f, fr in rec.frames.items()}
        out.append(ObjectRecord(rec.id, rec.name, frames))
    return out


# ------------------------------------------------------------------ decoded states
def _states_to_document(states) -> tuple[dict, dict[str, np.ndarray]]:
    """``PromptedState`` per object and frame -> (JSON entries, arrays by name)."""
    doc: dict[str, dict] = {}
    arrays: dict[str, np.ndarray] = {}
    stored: dict[tuple, str] = {}  # one array for tensors that are the same memory (an output and its memory's)

    def put(name: str, t: torch.Tensor) -> list[str]:
        dtype = str(t.dtype).removeprefix("torch.")
        if dtype not in _TENSOR_DTYPES:
            raise TypeError(f"cannot store a {dtype} tensor ({name}) in a session file")
        same = (t.device, t.data_ptr(), tuple(t.shape), t.stride(), t.dtype)
        if same not in stored:
            t = t.detach().cpu().contiguous()
            arrays[name] = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy()
            stored[same] = name
        return [stored[same], dtype]

    for obj_id, frames in states.items():
        entries = {}
        for frame, st in frames.items():
            at = f"o{obj_id}_f{frame}"
            entry: dict[str, Any] = {"decoded": bool(st.decoded), "initial": bool(st.initial),
                                     "redecode": None if st.redecode is None else bool(st.redecode)}
            entry["output"] = None if st.output is None else {
                part: put(f"{at}_output_{part}", t) for part, t in zip(("logits", "obj_ptr", "object_score"), st.output)}
            entry["memory"] = None if st.memory is None else {
                part: put(f"{at}_memory_{part}", getattr(st.memory, part))
                for part in ("features", "obj_ptr", "object_score", "logits")}
            c = st.candidates
            entry["candidates"] = None if c is None else {
                "chosen": c.chosen,
                **{part: put(f"{at}_candidates_{part}", t) for part, t in (
                    ("logits", c.logits), ("ious", c.ious), ("ptrs", c.ptrs),
                    ("own_logits", c.own.logits), ("own_obj_ptr", c.own.obj_ptr))}}
            entries[str(frame)] = entry
        doc[str(obj_id)] = entries
    return doc, arrays


def _states_from_document(doc: dict, arrays: dict[str, np.ndarray], where: str) -> dict:
    """The inverse of :func:`_states_to_document` (tensors on the CPU)."""

    def get(part: Any) -> torch.Tensor:
        name, dtype = part  # [array name, dtype]
        if name not in arrays:
            raise SessionFileError(f"session {where!r}: {name} is missing from {STATES}")
        if dtype not in _TENSOR_DTYPES:
            raise SessionFileError(f"session {where!r}: {name} has an unknown dtype {dtype!r}")
        t = torch.from_numpy(np.ascontiguousarray(arrays[name]))
        return t.view(torch.bfloat16) if dtype == "bfloat16" else t.to(_TENSOR_DTYPES[dtype])

    out: dict[int, dict[int, Any]] = {}
    try:
        for obj_key, frames in doc.items():
            obj_id = int(obj_key)
            out[obj_id] = {}
            for frame_key, e in frames.items():
                at = f"o{obj_id}_f{int(frame_key)}"
                output = memory = candidates = None
                if e["output"] is not None:
                    output = tuple(get(e["output"][p]) for p in ("logits", "obj_ptr", "object_score"))
                if e["memory"] is not None:
                    memory = FrameMemory(*(get(e["memory"][p]) for p in ("features", "obj_ptr", "object_score", "logits")))
                c = e["candidates"]
                if c is not None:
                    chosen = c["chosen"]
                    if chosen is not None and (isinstance(chosen, bool) or not isinstance(chosen, int)):
                        raise SessionFileError(f"session {where!r}: {at}: chosen candidate {chosen!r} is not a number")
                    t = {p: get(c[p]) for p in ("logits", "ious", "ptrs", "own_logits", "own_obj_ptr")}
                    candidates = CandidateSnapshot(t["logits"], t["ious"], t["ptrs"],
                                                   Output(t["own_logits"], t["own_obj_ptr"]), chosen)
                redecode = e.get("redecode")
                out[obj_id][int(frame_key)] = PromptedState(
                    decoded=bool(e["decoded"]), output=output, memory=memory, initial=bool(e["initial"]),
                    redecode=None if redecode is None else bool(redecode), candidates=candidates)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, SessionFileError):
            raise
        raise SessionFileError(f"session {where!r}: the decoded states in {DOCUMENT} are damaged ({exc!r})") from None
    return out
