"""Reading and writing sharded checkpoints one tensor at a time, in bounded memory.

`CheckpointReader` indexes a Hugging Face model directory (safetensors or ``pytorch_model*.bin`` shards)
without loading weights: safetensors are memory-mapped, ``.bin`` shards are opened with
``torch.load(weights_only=True, mmap=True)`` one shard at a time. `ShardWriter` writes tensors into
shards of bounded size in a temporary directory, records each finished shard (so ``--resume`` can skip
it), and renames the directory into place only when everything, index and checksums included, is done.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from knowlm.errors import CorruptFileError, InputError
from knowlm.weights.formats import WEIGHT_DTYPES, weight_format

SIDE_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "ie_instructions.json",
    "vocab.json",
    "merges.txt",
)
MANIFEST = "checksums.json"
PROGRESS = ".knowlm-progress.json"
DTYPES: dict[str, torch.dtype] = {name: getattr(torch, name) for name in WEIGHT_DTYPES}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    file: str

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize


class CheckpointReader:
    """The tensors of a model directory, by name, loaded one at a time."""

    def __init__(self, directory: str | Path, what: str = "checkpoint") -> None:
        self.dir = Path(directory)
        if not self.dir.is_dir():
            raise InputError(f"{what} {self.dir}: no such directory")
        self.files = self._weight_files(what)
        self.kind = "safetensors" if self.files[0].endswith(".safetensors") else "bin"
        self.tensors: dict[str, TensorInfo] = {}
        self._open_name: str | None = None
        self._open: dict[str, torch.Tensor] = {}
        for file in self.files:
            for info in self._scan(file):
                self.tensors[info.name] = info

    def _weight_files(self, what: str) -> list[str]:
        for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
            index = self.dir / index_name
            if index.exists():
                try:
                    files: list[str] = sorted(set(json.loads(index.read_text())["weight_map"].values()))
                except (ValueError, KeyError) as exc:
                    raise CorruptFileError(f"{index}: not a valid shard index ({exc})") from None
                missing = [f for f in files if not (self.dir / f).exists()]
                if missing:
                    present = sorted(p.name for p in self.dir.iterdir())
                    raise InputError(
                        f"{what} {self.dir}: missing shards {', '.join(missing)}; present: {', '.join(present)}"
                    )
                return files
        found = sorted(p.name for p in self.dir.glob("*.safetensors")) or sorted(
            p.name for p in self.dir.glob("pytorch_model*.bin")
        )
        if not found:
            listing = ", ".join(sorted(p.name for p in self.dir.iterdir())) or "nothing"
            raise InputError(
                f"{what} {self.dir}: no weights (*.safetensors or pytorch_model*.bin); it contains: {listing}"
            )
        return found

    def _scan(self, file: str) -> Iterator[TensorInfo]:
        path = self.dir / file
        if self.kind == "safetensors":
            from safetensors import safe_open

            try:
                with safe_open(path, framework="pt") as f:
                    for name in f.keys():  # noqa: SIM118 (safe_open is not a dict)
                        sl = f.get_slice(name)
                        dtype = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}.get(
                            sl.get_dtype()
                        )
                        if dtype is None:
                            dtype = getattr(
                                torch,
                                {"I64": "int64", "I32": "int32", "U8": "uint8", "BOOL": "bool"}.get(
                                    sl.get_dtype(), "float32"
                                ),
                            )
                        yield TensorInfo(name, tuple(sl.get_shape()), dtype, file)
            except Exception as exc:  # safetensors raises its own error type on damaged files
                raise CorruptFileError(f"{path} is damaged or truncated: {exc}") from None
        else:
            for name, tensor in self._load_bin(path).items():
                yield TensorInfo(name, tuple(tensor.shape), tensor.dtype, file)

    @staticmethod
    def _load_bin(path: Path) -> dict[str, torch.Tensor]:
        try:
            loaded: dict[str, torch.Tensor] = torch.load(
                path, map_location="cpu", weights_only=True, mmap=True
            )
            return loaded
        except Exception as exc:
            raise CorruptFileError(f"{path} is damaged or not a PyTorch checkpoint: {exc}") from None

    def get(self, name: str) -> torch.Tensor:
        """One tensor (a memory-mapped view; copy before changing it)."""
        info = self.tensors[name]
        if self.kind == "safetensors":
            from safetensors import safe_open

            with safe_open(self.dir / info.file, framework="pt") as f:
                tensor: torch.Tensor = f.get_tensor(name)
                return tensor
        if self._open_name != info.file:  # keep one .bin shard mapped at a time
            self._open, self._open_name = self._load_bin(self.dir / info.file), info.file
        return self._open[name]

    def total_bytes(self) -> int:
        return sum(info.nbytes for info in self.tensors.values())


def check_same_layout(a: CheckpointReader, b: CheckpointReader, names: tuple[str, str]) -> None:
    """The same tensor names and shapes on both sides, or one error listing every mismatch."""
    problems = []
    only_a = sorted(set(a.tensors) - set(b.tensors))
    only_b = sorted(set(b.tensors) - set(a.tensors))
    if only_a:
        problems.append(f"only in {names[0]}: {', '.join(only_a[:8])}" + (" ..." if len(only_a) > 8 else ""))
    if only_b:
        problems.append(f"only in {names[1]}: {', '.join(only_b[:8])}" + (" ..." if len(only_b) > 8 else ""))
    shapes = [n for n in sorted(set(a.tensors) & set(b.tensors)) if a.tensors[n].shape != b.tensors[n].shape]
    problems += [
        f"{n}: {a.tensors[n].shape} in {names[0]} vs {b.tensors[n].shape} in {names[1]}" for n in shapes[:8]
    ]
    if problems:
        raise InputError(
            f"{names[0]} and {names[1]} do not match (made against another base?): " + "; ".join(problems)
        )


def check_disk(target: Path, needed: int) -> None:
    parent = target.parent if target.parent.exists() else Path(".")
    free = shutil.disk_usage(parent).free
    if free < needed * 1.05:
        raise InputError(
            f"not enough disk at {parent}: the output needs about {needed / 1e9:.1f} GB, {free / 1e9:.1f} GB are free"
        )


def file_digests(path: Path) -> dict[str, Any]:
    sha, md5 = hashlib.sha256(), hashlib.md5()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            sha.update(block)
            md5.update(block)
    return {"size": path.stat().st_size, "sha256": sha.hexdigest(), "md5": md5.hexdigest()}


class ShardWriter:
    """Writes tensors in a fixed plan of shards to ``OUT.partial`` and renames it to OUT at the end."""

    def __init__(
        self,
        out: str | Path,
        plan: list[list[str]],
        *,
        fmt: str = "safetensors",
        resume: bool = False,
        sources: str = "",
    ) -> None:
        self.out = Path(out)
        if self.out.exists():
            raise InputError(f"{self.out} already exists; choose another --out or remove it")
        self.tmp = self.out.with_name(self.out.name + ".partial")
        self.fmt, self.plan = weight_format(fmt), plan
        self.names = self.fmt.shard_names(len(plan))
        signature = {"plan": plan, "format": fmt, "sources": sources}
        progress_file = self.tmp / PROGRESS
        self.done: dict[str, Any] = {}
        if self.tmp.exists() and resume:
            state = json.loads(progress_file.read_text()) if progress_file.exists() else {}
            if state.get("signature") != signature:
                raise InputError(f"{self.tmp} holds a different job; remove it or run without --resume")
            self.done = state.get("done", {})
        elif self.tmp.exists():
            raise InputError(
                f"{self.tmp} holds an interrupted run; add --resume to continue it, or remove it"
            )
        else:
            self.tmp.mkdir(parents=True)
        self.signature = signature
        self.tensor_sums: dict[str, Any] = {}
        for shard in self.done.values():
            self.tensor_sums.update(shard["tensors"])

    def pending(self) -> Iterator[tuple[int, list[str]]]:
        """(shard index, tensor names) of the shards still to write."""
        for i, names in enumerate(self.plan):
            if self.names[i] not in self.done:
                yield i, names

    def write_shard(self, index: int, tensors: dict[str, torch.Tensor]) -> None:
        path = self.tmp / self.names[index]
        partial = path.with_name(path.name + ".tmp")
        tensors = {k: v.contiguous() for k, v in tensors.items()}
        self.fmt.save(tensors, partial)
        with partial.open("rb") as f:
            os.fsync(f.fileno())
        os.replace(partial, path)
        sums = {
            k: {
                "shape": list(v.shape),
                "dtype": str(v.dtype).removeprefix("torch."),
                "sum": float(v.double().sum()),
            }
            for k, v in tensors.items()
        }
        self.tensor_sums.update(sums)
        self.done[self.names[index]] = {"tensors": sums}
        progress = self.tmp / PROGRESS
        progress.with_suffix(".tmp").write_text(json.dumps({"signature": self.signature, "done": self.done}))
        os.replace(progress.with_suffix(".tmp"), progress)

    def finish(self, copy_from: list[Path]) -> Path:
        """Write the index, copy config/tokenizer files, write the manifest, rename into place."""
        if len(self.names) > 1:
            weight_map = {t: self.names[i] for i, names in enumerate(self.plan) for t in names}
            total = sum((self.tmp / n).stat().st_size for n in self.names)
            (self.tmp / self.fmt.index_name).write_text(
                json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=1)
            )
        copy_side_files(copy_from, self.tmp)
        write_manifest(self.tmp, self.tensor_sums)
        (self.tmp / PROGRESS).unlink(missing_ok=True)
        os.replace(self.tmp, self.out)
        return self.out


def copy_side_files(sources: list[Path], directory: Path) -> None:
    """Copy config, tokenizer and IE-instruction files (``SIDE_FILES``) into ``directory``; the first
    source that has a file gives it."""
    for source in sources:
        for name in SIDE_FILES:
            if (source / name).exists() and not (directory / name).exists():
                shutil.copy2(source / name, directory / name)


def write_manifest(directory: Path, tensor_sums: dict[str, Any]) -> None:
    files = {
        p.name: file_digests(p)
        for p in sorted(directory.iterdir())
        if p.is_file() and p.name not in (MANIFEST, PROGRESS)
    }
    (directory / MANIFEST).write_text(json.dumps({"files": files, "tensors": tensor_sums}, indent=1))


def plan_shards(infos: list[TensorInfo], max_bytes: int, element_size: int | None = None) -> list[list[str]]:
    """Group tensors, in order, into shards of at most ``max_bytes`` (a larger tensor gets its own)."""
    shards: list[list[str]] = [[]]
    size = 0
    for info in infos:
        n = info.nbytes if element_size is None else info.numel * element_size
        if shards[-1] and size + n > max_bytes:
            shards.append([])
            size = 0
        shards[-1].append(info.name)
        size += n
    return shards
