"""The stack engine: torch + numpy, no napari, no Qt."""

from .candidates import MaskCandidate
from .features import CacheBudget, FeatureCache
from .frame_states import FRAME_CURRENT, FRAME_NOT_REACHED, FRAME_OUT_OF_DATE
from .frames import FrameSource
from .memory import FrameMemory, MemoryBank
from .persist import SessionFileError
from .prompted_state import PromptedState
from .session import FrameResult, SessionOptions, StackSession

__all__ = [
    "CacheBudget",
    "FRAME_CURRENT",
    "FRAME_NOT_REACHED",
    "FRAME_OUT_OF_DATE",
    "FeatureCache",
    "FrameMemory",
    "FrameResult",
    "FrameSource",
    "MaskCandidate",
    "MemoryBank",
    "PromptedState",
    "SessionFileError",
    "SessionOptions",
    "StackSession",
]
