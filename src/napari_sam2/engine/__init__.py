"""The stack engine: torch + numpy, no napari, no Qt."""

from .features import CacheBudget, FeatureCache
from .frames import FrameSource
from .memory import FrameMemory, MemoryBank
from .persist import SessionFileError
from .session import FrameResult, SessionOptions, StackSession

__all__ = [
    "CacheBudget",
    "FeatureCache",
    "FrameMemory",
    "FrameResult",
    "FrameSource",
    "MemoryBank",
    "SessionFileError",
    "SessionOptions",
    "StackSession",
]
