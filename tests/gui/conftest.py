"""GUI tests: napari viewers under a real display (Xvfb on CI).

They are skipped on a developer machine without a display or without napari,
but fail on CI (``CI=true``): there the GUI must be tested, never skipped.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest


def _on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _gui_problem() -> str | None:
    try:
        import napari  # noqa: F401
        import pytestqt  # noqa: F401
        import qtpy  # noqa: F401
    except Exception as exc:  # ImportError, or a Qt binding that fails to load
        return f"napari with a Qt binding and pytest-qt are needed: {exc}"
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return "no display: run under Xvfb, e.g. `xvfb-run -a python -m pytest tests/gui`"
    return None


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.gui)


@pytest.fixture(autouse=True)
def _gui_available():
    problem = _gui_problem()
    if problem is not None:
        if _on_ci():
            pytest.fail(f"GUI tests must run on CI, but {problem}", pytrace=False)
        pytest.skip(problem)


@pytest.fixture
def make_viewer(request):
    """napari's ``make_napari_viewer`` (looked up only once the GUI is known
    to be available)."""
    return request.getfixturevalue("make_napari_viewer")


@pytest.fixture(scope="session")
def tiny_model():
    """A random-weight SAM 2.1 tiny at 256 px (fast on a CPU)."""
    import torch

    from napari_sam2.config import load_config
    from napari_sam2.model import build_model

    torch.manual_seed(0)
    return build_model(load_config("sam2.1_hiera_tiny", image_size=256)).eval()


@pytest.fixture(scope="session")
def demo_model():
    """The shipped demo model (256 px; it tracks the samples' cells)."""
    from napari_sam2 import load_model

    return load_model("demo", device="cpu")


@pytest.fixture(scope="session")
def cells():
    """The cells sample, cropped: 6 frames of 96 x 112 (image, ground truth, kwargs)."""
    from napari_sam2._sample_data import cells_timelapse

    (image, image_kwargs, _), (truth, truth_kwargs, _) = cells_timelapse()
    crop = (slice(0, 6), slice(40, 136), slice(60, 172))
    return np.ascontiguousarray(image[crop]), np.ascontiguousarray(truth[crop]), image_kwargs, truth_kwargs


@pytest.fixture
def notifications():
    """The napari notifications dispatched during the test."""
    from napari.utils.notifications import notification_manager

    start = len(notification_manager.records)

    class Recorded:
        @property
        def all(self):
            return notification_manager.records[start:]

        def messages(self, severity: str | None = None) -> list[str]:
            return [
                str(n.message) for n in self.all
                if severity is None or str(n.severity).lower().endswith(severity)
            ]

        def tracebacks(self):
            """Notifications that carry an exception (napari shows their traceback)."""
            return [n for n in self.all if getattr(n, "exception", None) is not None]

    return Recorded()


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_model, tmp_path_factory):
    """``tiny_model`` saved as a checkpoint file (loadable by path)."""
    from napari_sam2 import save_checkpoint

    return save_checkpoint(tiny_model, tmp_path_factory.mktemp("checkpoints") / "tiny_random.pt")
