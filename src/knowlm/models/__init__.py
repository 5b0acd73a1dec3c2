"""Resolve and load models: HF directories, GGUF files, Hub ids, LoRA adapters, the embedded default."""

from knowlm.models.resolve import ResolvedModel, resolve_model

__all__ = ["ResolvedModel", "resolve_model"]
