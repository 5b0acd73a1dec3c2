"""Name embeddings for entity resolution (``knowlm kg resolve --embedding-model``): any local transformers
encoder, mean-pooled over the name's tokens and L2-normalised."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from knowlm.errors import InputError


class Embedder:
    """``Embedder(path)(names)`` -> one unit vector per name. Loaded on first use; safetensors only, no
    remote code."""

    def __init__(self, path: str | Path, *, batch_size: int = 64) -> None:
        if not Path(path).is_dir():
            raise InputError(
                f"--embedding-model {path}: no model directory there (a local transformers encoder, e.g. "
                "a sentence-transformers checkpoint downloaded with knowlm download)"
            )
        self.path = Path(path)
        self.batch_size = batch_size
        self._model: Any = None
        self._tokenizer: Any = None

    def _load(self) -> None:
        from transformers import AutoModel, AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(self.path, trust_remote_code=False)
        self._model = AutoModel.from_pretrained(self.path, trust_remote_code=False, use_safetensors=True)
        self._model.eval()

    def __call__(self, names: list[str]) -> list[list[float]]:
        import torch

        if self._model is None:
            self._load()
        vectors: list[list[float]] = []
        for i in range(0, len(names), self.batch_size):
            batch = self._tokenizer(
                names[i : i + self.batch_size],
                padding=True,
                truncation=True,
                max_length=64,
                return_tensors="pt",
            )
            with torch.inference_mode():
                hidden = self._model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            vectors += torch.nn.functional.normalize(pooled.float(), dim=-1).tolist()
        return vectors
