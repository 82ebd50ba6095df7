"""napari-sam2: segment and track objects through stacks with SAM 2.

The public API is imported lazily so that ``import napari_sam2`` (done by
napari when it scans plugins) stays cheap and pulls in neither torch nor Qt.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_model": "napari_sam2.checkpoints",
    "available_models": "napari_sam2.checkpoints",
    "load_config": "napari_sam2.config",
    "ModelConfig": "napari_sam2.config",
    "StackSession": "napari_sam2.engine",
    "SessionOptions": "napari_sam2.engine",
    "CacheBudget": "napari_sam2.engine",
    "FrameSource": "napari_sam2.engine",
    "save_checkpoint": "napari_sam2.checkpoints",
    "segment_everything": "napari_sam2.engine.automatic",
    "AutomaticOptions": "napari_sam2.engine.automatic",
    "AutomaticResult": "napari_sam2.engine.automatic",
    "DivisionOptions": "napari_sam2.engine.division_options",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'napari_sam2' has no attribute {name!r}")
    return getattr(import_module(module), name)


def __dir__() -> list[str]:
    return __all__
