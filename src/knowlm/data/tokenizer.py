"""The tokenizer a dataset is prepared with, and the fingerprint that ties a dataset to it."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from knowlm.errors import InputError


def load_tokenizer(ref: str, *, trust_remote_code: bool = False) -> Any:
    """A fast (Rust-backed) transformers tokenizer for a model reference ('default', a model or tokenizer
    directory, a .gguf file, a Hub id)."""
    from pathlib import Path

    from transformers import AutoTokenizer

    from knowlm.models.loading import hf_model_dir
    from knowlm.models.resolve import resolve_model

    local = Path(ref).expanduser()
    if (local / "tokenizer.json").is_file() or (local / "tokenizer_config.json").is_file():
        path, gguf_file = local, None  # a tokenizer directory needs no weights
    else:
        path, gguf_file = hf_model_dir(resolve_model(ref))
    tokenizer = AutoTokenizer.from_pretrained(
        str(path), gguf_file=gguf_file, trust_remote_code=trust_remote_code
    )
    if not getattr(tokenizer, "is_fast", False):
        raise InputError(f"tokenizer of {ref}: data preparation needs a fast (tokenizer.json) tokenizer")
    return tokenizer


def fingerprint(tokenizer: Any) -> str:
    """A short hash of the token -> id map (added tokens included): equal maps, equal fingerprints."""
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    return hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode()).hexdigest()[:16]


def describe(tokenizer: Any, ref: str) -> dict[str, Any]:
    """What a dataset records about its tokenizer (stored in the index metadata and the manifest)."""
    return {
        "tokenizer": fingerprint(tokenizer),
        "tokenizer_ref": ref,
        "vocab_size": len(tokenizer),
        "bos_id": tokenizer.bos_token_id,
        "eos_id": tokenizer.eos_token_id,
    }


def check_compatible(
    metadata: dict[str, Any], tokenizer: Any, where: str, model_vocab: int | None = None
) -> None:
    """Raise if a dataset was tokenized with another tokenizer than ``tokenizer`` (or ids overflow the model)."""
    expected = metadata.get("tokenizer")
    actual = fingerprint(tokenizer)
    if expected != actual:
        raise InputError(
            f"{where} was tokenized with {metadata.get('tokenizer_ref', '?')} (fingerprint {expected}, "
            f"{metadata.get('vocab_size', '?')} tokens) but the model's tokenizer differs (fingerprint {actual}, "
            f"{len(tokenizer)} tokens): prepare the data again with --tokenizer set to this model"
        )
    if model_vocab is not None and int(metadata.get("vocab_size", 0)) > model_vocab:
        raise InputError(
            f"{where}: token ids go up to {metadata['vocab_size'] - 1} but the model has only {model_vocab} "
            "embeddings"
        )
