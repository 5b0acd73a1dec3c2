"""The weight formats `knowlm weights` writes, as registries the CLI offers (a leaf module: importing it loads
no torch, so `knowlm --help` stays fast).

- `WEIGHT_FORMATS`: how a checkpoint's shards are named and written (safetensors, PyTorch ``.bin``);
  `register_weight_format` adds one, and `recover`/`diff`/`merge-lora --format` offer it.
- `WEIGHT_DTYPES`: the precisions an output may take.
- `GGUF_TYPES`: how `export-gguf --type` stores the 2-D weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from knowlm.errors import InputError

WEIGHT_DTYPES = ("float32", "float16", "bfloat16")
GGUF_TYPES = ("f16", "q8_0", "f32")


@dataclass(frozen=True)
class WeightFormat:
    """A checkpoint format: its shards are ``PREFIX.EXT`` (one) or ``PREFIX-00001-of-0000N.EXT`` with the
    index ``PREFIX.EXT.index.json`` (as transformers names them); ``save(tensors, path)`` writes one shard."""

    prefix: str
    ext: str
    save: Callable[[dict[str, Any], Path], None]

    def shard_names(self, count: int) -> list[str]:
        if count == 1:
            return [f"{self.prefix}.{self.ext}"]
        return [f"{self.prefix}-{i + 1:05d}-of-{count:05d}.{self.ext}" for i in range(count)]

    @property
    def index_name(self) -> str:
        return f"{self.prefix}.{self.ext}.index.json"


def _save_safetensors(tensors: dict[str, Any], path: Path) -> None:
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata={"format": "pt"})


def _save_torch(tensors: dict[str, Any], path: Path) -> None:
    import torch

    torch.save(tensors, path)


WEIGHT_FORMATS: dict[str, WeightFormat] = {}


def register_weight_format(name: str, fmt: WeightFormat) -> None:
    """Make ``name`` a choice of ``--format`` (and of the library's ``fmt=``)."""
    WEIGHT_FORMATS[name] = fmt


def weight_format(name: str) -> WeightFormat:
    if name not in WEIGHT_FORMATS:
        raise InputError(f"--format {name!r} is not one of {', '.join(WEIGHT_FORMATS)}")
    return WEIGHT_FORMATS[name]


register_weight_format("safetensors", WeightFormat("model", "safetensors", _save_safetensors))
register_weight_format("bin", WeightFormat("pytorch_model", "bin", _save_torch))
