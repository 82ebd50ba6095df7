"""Helpers shared by the benchmark scripts.

Every benchmark prints exactly one JSON line per case on stdout; progress
and diagnostics go to stderr. Both implementations get the same random
weights, built the way the reference equality tests build them
(``tests/reference/conftest.py``).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Callable

# On a shared machine, OpenMP threads that spin while they wait for a
# descheduled sibling make every parallel region crawl (measured here: the
# tiny encoder at 256 px 7x slower with 2 spinning threads than with 1 while
# another job held the CPU). Sleeping waits keep timings meaningful; the
# setting must be made before torch loads OpenMP and is printed with the results.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # so that ``tests.reference.conftest`` imports
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

MODEL = "sam2.1_hiera_tiny"
# exit status of a benchmark that needs Meta's sam2 package and cannot import it
NO_REFERENCE_EXIT = 3


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def emit(record: dict) -> None:
    """One JSON line on stdout."""
    print(json.dumps(record, sort_keys=False), flush=True)


def have_reference() -> bool:
    try:
        import sam2  # noqa: F401
        from sam2.build_sam import build_sam2_video_predictor  # noqa: F401
    except Exception:
        return False
    return True


def require_reference() -> None:
    """Exit with :data:`NO_REFERENCE_EXIT` when Meta's ``sam2`` is missing."""
    if not have_reference():
        log("Meta's sam2==1.1.0 is not importable; this benchmark compares against it")
        sys.exit(NO_REFERENCE_EXIT)


def build_pair(name: str, size: int, seed: int = 0, **tracking):
    """(ours, reference) with the same random weights, float32, CPU, eval."""
    require_reference()
    from tests.reference.conftest import build_pair as _build_pair

    return _build_pair(name, size, seed, **tracking)


def random_state(name: str, size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """The random weights :func:`build_pair` loads (Meta's key names)."""
    require_reference()
    from tests.reference.conftest import build_reference, random_state_dict

    return random_state_dict(build_reference(name, size), seed)


def our_model(name: str, size: int, seed: int = 0, state: dict | None = None, device: str = "cpu"):
    """Our network with the benchmark weights: ``state`` if given, else the
    same random weights as :func:`build_pair` when the reference is
    installed, else our own initial weights perturbed the same way."""
    from napari_sam2.config import load_config
    from napari_sam2.model import build_model, load_weights_strict

    model = build_model(load_config(name, image_size=size)).eval()
    if state is None and have_reference():
        state = random_state(name, size, seed)
    if state is not None:
        load_weights_strict(model, state, source=f"random weights for {name}")
    else:
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for key, value in model.state_dict().items():
                if not value.is_floating_point():
                    continue
                scale = 0.02 if value.ndim > 1 else 0.05
                value.add_(scale * torch.randn(value.shape, generator=gen))
            # keep objects scored present, as the reference helper does
            model.mask_decoder.pred_obj_score_head.layers[2].bias.add_(1.0)
    return model.to(device)


def add_threads_option(parser) -> None:
    parser.add_argument(
        "--threads", type=int, default=None,
        help="torch intra-op threads (default: torch's own choice, usually the core count)",
    )


def apply_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)


def settings(size: int, *, model: str = MODEL, **extra) -> dict:
    return {
        "model": model,
        "image_size": size,
        **extra,
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }


def ratio(ours: float | None, ref: float | None) -> float | None:
    if ours is None or ref is None or ref == 0:
        return None
    return round(ours / ref, 4)


def median(values: list[float]) -> float:
    return statistics.median(values)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def alternate(ours: Callable[[], object], ref: Callable[[], object], repeats: int) -> tuple[list[float], list[float]]:
    """Time ``ours`` and ``ref`` alternately (ABBA order, so that a slow
    spell on the shared machine hits both); lists of seconds."""
    a, b = [], []
    for i in range(repeats):
        if i % 2 == 0:
            a.append(timed(ours))
            b.append(timed(ref))
        else:
            b.append(timed(ref))
            a.append(timed(ours))
    return a, b


def paired_ratio(ours: list[float], ref: list[float]) -> float:
    """Median of ours[i] / ref[i] over runs taken back to back: less
    sensitive than the ratio of medians to load that drifts during a run."""
    return round(statistics.median(a / b for a, b in zip(ours, ref)), 4)


def r6(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


class AnonPeak:
    """Samples ``RssAnon`` of this process from ``/proc/self/status`` in a
    background thread; ``peak_mb`` is the largest value seen (anonymous
    memory only: memory-mapped input files do not count)."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def read_kb(field: str = "RssAnon") -> int:
        try:
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith(field + ":"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, self.read_kb())
            self._stop.wait(self.interval)

    def __enter__(self) -> "AnonPeak":
        self.peak_kb = self.read_kb()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, self.read_kb())

    @property
    def peak_mb(self) -> float:
        return self.peak_kb / 1024


def max_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def synthetic_frames(n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """``n x height x width`` float frames in [0, 1]: a textured background
    and two bright blobs that drift across the field."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    texture = rng.random((height, width), dtype=np.float32)
    out = np.empty((n, height, width), dtype=np.float32)
    r1, r2 = 0.09 * min(height, width), 0.07 * min(height, width)
    for t in range(n):
        phase = t / max(n - 1, 1)
        c1 = (0.35 * height + 0.1 * height * np.sin(6.28 * phase), 0.3 * width + 0.3 * width * phase)
        c2 = (0.65 * height, 0.75 * width - 0.25 * width * phase)
        img = 0.15 + 0.1 * texture
        for (cy, cx), r in ((c1, r1), (c2, r2)):
            img = img + 0.6 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2))
        out[t] = np.clip(img, 0.0, 1.0)
    return out


def first_click(height: int, width: int) -> list[list[float]]:
    """A point (y, x) on the first blob in frame 0."""
    return [[0.35 * height, 0.3 * width]]
