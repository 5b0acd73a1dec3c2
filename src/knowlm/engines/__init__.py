"""Text generation behind one protocol: transformers, llama.cpp, vLLM (imported lazily)."""

from knowlm.config import SamplingParams
from knowlm.engines.base import (
    Completion,
    Engine,
    create_engine,
    engine_names,
    find_stop,
    pick_engine,
    register_engine,
)

__all__ = [
    "Completion",
    "Engine",
    "SamplingParams",
    "create_engine",
    "engine_names",
    "find_stop",
    "pick_engine",
    "register_engine",
]
