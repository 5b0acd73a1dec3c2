"""Memory-mapped indexed token datasets, Megatron style: token ids in ``PREFIX.bin``, the index in
``PREFIX.idx``.

``.idx`` layout (little endian): magic ``KNOWLMDS``, version (u32), dtype code (u32), sample count (u64),
document count (u64), metadata length (u64), metadata (UTF-8 JSON: tokenizer fingerprint, vocabulary size,
...) padded to 8 bytes, then ``sizes`` (u32 per sample), ``offsets`` (u64 per sample, in tokens) and
``doc_index`` (u64, documents + 1: the first sample of each document). Both files are memory-mapped, so
opening a dataset costs nothing and memory does not grow with its size.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from knowlm.errors import CorruptFileError, InputError

MAGIC = b"KNOWLMDS"
VERSION = 1
DTYPES: dict[int, type[np.unsignedinteger[Any]]] = {1: np.uint16, 2: np.uint32}
_HEADER = struct.Struct("<8sIIQQQ")


def dtype_for(vocab_size: int) -> type[np.unsignedinteger[Any]]:
    """uint16 when every token id fits in it, else uint32."""
    if vocab_size <= 1 << 16:
        return np.uint16
    if vocab_size <= 1 << 32:
        return np.uint32
    raise InputError(f"vocabulary of {vocab_size} tokens does not fit in uint32")


def _code(dtype: Any) -> int:
    for code, dt in DTYPES.items():
        if np.dtype(dt) == np.dtype(dtype):
            return code
    raise InputError(f"unsupported token dtype {dtype}; use uint16 or uint32")


def paths(prefix: str | Path) -> tuple[Path, Path]:
    prefix = str(prefix)
    return Path(prefix + ".bin"), Path(prefix + ".idx")


def exists(prefix: str | Path) -> bool:
    return all(p.is_file() for p in paths(prefix))


class IndexedDatasetWriter:
    """Append samples (and document boundaries); ``finish()`` moves ``.bin`` then ``.idx`` into place, so
    an ``.idx`` on disk always describes a complete ``.bin``. Use as a context manager: on an error the
    temporary files are removed and nothing is left behind."""

    def __init__(self, prefix: str | Path, dtype: Any, metadata: dict[str, Any] | None = None) -> None:
        self.prefix = Path(prefix)
        self.bin_path, self.idx_path = paths(prefix)
        self.dtype = np.dtype(dtype)
        self.code = _code(dtype)
        self.metadata = dict(metadata or {})
        self.bin_path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp_bin = self.bin_path.with_name(self.bin_path.name + ".tmp")
        self._tmp_idx = self.idx_path.with_name(self.idx_path.name + ".tmp")
        self._bin = self._tmp_bin.open("wb")
        self.sizes = array("I")
        self.doc_index = array("Q", [0])
        self.tokens = 0
        self._limit = np.iinfo(self.dtype).max

    def add(self, tokens: Sequence[int] | np.ndarray) -> None:
        """Append one sample."""
        arr = np.asarray(tokens)
        if arr.size and (arr.min() < 0 or arr.max() > self._limit):
            raise InputError(f"token ids outside 0..{self._limit} cannot be stored as {self.dtype}")
        self._bin.write(arr.astype(self.dtype, copy=False).tobytes())
        self.sizes.append(arr.size)
        self.tokens += arr.size

    def end_document(self) -> None:
        """Mark that the samples added since the last call form one document."""
        if self.doc_index[-1] != len(self.sizes):
            self.doc_index.append(len(self.sizes))

    def add_dataset(self, other: IndexedDataset) -> None:
        """Append every sample and document of ``other`` (same dtype), streaming its ``.bin``."""
        if np.dtype(other.dtype) != self.dtype:
            raise InputError(f"{other.prefix}: dtype {other.dtype} differs from {self.dtype}")
        self.end_document()
        base = len(self.sizes)
        with other.bin_path.open("rb") as f:
            shutil.copyfileobj(f, self._bin, 16 << 20)
        self.sizes.extend(array("I", other.sizes.astype(np.uint32).tobytes()))
        self.doc_index.extend(array("Q", (other.doc_index[1:].astype(np.uint64) + base).tobytes()))
        self.tokens += other.num_tokens

    def finish(self) -> Path:
        self.end_document()
        self._bin.flush()
        os.fsync(self._bin.fileno())
        self._bin.close()
        sizes = np.frombuffer(self.sizes, dtype=np.uint32) if self.sizes else np.zeros(0, np.uint32)
        offsets = np.zeros(len(sizes), dtype=np.uint64)
        np.cumsum(sizes[:-1], dtype=np.uint64, out=offsets[1:])
        meta = json.dumps(self.metadata, ensure_ascii=False, sort_keys=True).encode()
        meta += b" " * (-len(meta) % 8)
        with self._tmp_idx.open("wb") as f:
            f.write(_HEADER.pack(MAGIC, VERSION, self.code, len(sizes), len(self.doc_index) - 1, len(meta)))
            f.write(meta)
            f.write(sizes.tobytes())
            f.write(offsets.tobytes())
            f.write(np.frombuffer(self.doc_index, dtype=np.uint64).tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(self._tmp_bin, self.bin_path)
        os.replace(self._tmp_idx, self.idx_path)
        return self.prefix

    def abort(self) -> None:
        if not self._bin.closed:
            self._bin.close()
        for p in (self._tmp_bin, self._tmp_idx):
            p.unlink(missing_ok=True)

    def __enter__(self) -> IndexedDatasetWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            if not self._bin.closed:
                self.finish()
        else:
            self.abort()


class IndexedDataset:
    """Read-only view of ``PREFIX.bin`` / ``PREFIX.idx``: ``ds[i]`` is sample ``i`` as a numpy array (a view
    into the memory map, O(1)). Picklable: a copy reopens the files (for DataLoader workers)."""

    def __init__(self, prefix: str | Path) -> None:
        self.prefix = Path(prefix)
        self.bin_path, self.idx_path = paths(prefix)
        for p in (self.bin_path, self.idx_path):
            if not p.is_file():
                there = sorted(x.name for x in p.parent.glob("*.idx")) if p.parent.is_dir() else []
                raise InputError(
                    f"{p}: no such file (an indexed dataset is PREFIX.bin + PREFIX.idx"
                    + (f"; {p.parent} has {', '.join(there[:10])})" if there else ")")
                )
        self._open()

    def _open(self) -> None:
        idx = np.memmap(self.idx_path, dtype=np.uint8, mode="r")
        where = str(self.idx_path)
        if len(idx) < _HEADER.size:
            raise CorruptFileError(f"{where}: too short for an index ({len(idx)} bytes)")
        magic, version, code, n, docs, meta_len = _HEADER.unpack(bytes(idx[: _HEADER.size]))
        if magic != MAGIC:
            raise CorruptFileError(f"{where}: not a KnowLM index (magic {magic!r})")
        if version != VERSION:
            raise CorruptFileError(f"{where}: index version {version}; this KnowLM reads version {VERSION}")
        if code not in DTYPES:
            raise CorruptFileError(f"{where}: unknown dtype code {code}")
        pos = _HEADER.size
        expected = pos + meta_len + 4 * n + 8 * n + 8 * (docs + 1)
        if len(idx) != expected:
            raise CorruptFileError(f"{where}: {len(idx)} bytes, the header implies {expected} (truncated?)")
        self.metadata: dict[str, Any] = json.loads(bytes(idx[pos : pos + meta_len]).decode() or "{}")
        pos += meta_len
        self.dtype = DTYPES[code]
        self.sizes = idx[pos : pos + 4 * n].view(np.uint32)
        pos += 4 * n
        self.offsets = idx[pos : pos + 8 * n].view(np.uint64)
        pos += 8 * n
        self.doc_index = idx[pos:].view(np.uint64)
        self.num_tokens = int(self.offsets[-1]) + int(self.sizes[-1]) if n else 0
        size = self.bin_path.stat().st_size
        if size != self.num_tokens * np.dtype(self.dtype).itemsize:
            raise CorruptFileError(
                f"{self.bin_path}: {size} bytes, the index describes {self.num_tokens} tokens of "
                f"{np.dtype(self.dtype).name} (truncated or not this index's data)"
            )
        self._tokens = (
            np.memmap(self.bin_path, dtype=self.dtype, mode="r") if size else np.zeros(0, self.dtype)
        )

    def __getstate__(self) -> dict[str, Any]:
        return {"prefix": self.prefix}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["prefix"])  # type: ignore[misc]

    def __len__(self) -> int:
        return len(self.sizes)

    def __getitem__(self, i: int) -> np.ndarray:
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample {i} out of range (dataset has {len(self)})")
        start = int(self.offsets[i])
        return self._tokens[start : start + int(self.sizes[i])]

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(len(self)))

    @property
    def num_documents(self) -> int:
        return len(self.doc_index) - 1


def merge(prefixes: Sequence[str | Path], out: str | Path) -> IndexedDataset:
    """Concatenate datasets (same dtype and tokenizer) into ``out``, streaming, atomically."""
    if not prefixes:
        raise InputError("merge: no datasets given")
    parts = [IndexedDataset(p) for p in prefixes]
    first = parts[0]
    for part in parts[1:]:
        if part.metadata.get("tokenizer") != first.metadata.get("tokenizer"):
            raise InputError(
                f"{part.prefix} was tokenized with {part.metadata.get('tokenizer')}, {first.prefix} with "
                f"{first.metadata.get('tokenizer')}: datasets of different tokenizers cannot be merged"
            )
    metadata = {k: v for k, v in first.metadata.items() if k in ("tokenizer", "vocab_size", "seq_length")}
    metadata["merged_from"] = [str(p.prefix) for p in parts]
    with IndexedDatasetWriter(out, first.dtype, metadata) as writer:
        for part in parts:
            writer.add_dataset(part)
    return IndexedDataset(out)
