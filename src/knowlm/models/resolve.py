"""Turn the one string a user gives (``--model``) into a local model on disk.

A reference is one of: ``default`` (the embedded model), a ``.gguf`` file, a local Hugging Face
directory, or a Hub id ``org/name`` (downloaded with huggingface_hub). Everything is checked before any
model is loaded, and errors list what is missing and what is there.
"""

from __future__ import annotations

import logging
import math
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from knowlm.errors import CorruptFileError, InputError, ModelNotFoundError

log = logging.getLogger(__name__)

ModelKind = Literal["hf", "gguf", "default"]
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "model.safetensors.index.json")
_NON_WEIGHT_FILES = ("*.json", "*.model", "*.txt", "*.tiktoken", "*.py", "*.jinja")


@dataclass(frozen=True)
class ResolvedModel:
    """A model reference resolved to files on disk."""

    ref: str
    kind: ModelKind
    path: Path
    """The HF directory, or the .gguf file."""

    @property
    def is_gguf(self) -> bool:
        return self.kind == "gguf" or (self.kind == "default" and self.path.suffix == ".gguf")


def resolve_model(ref: str, *, revision: str | None = None) -> ResolvedModel:
    """Resolve ``ref`` to local files, downloading from the Hub when it is a Hub id."""
    ref = ref.strip()
    if ref == "default":
        from knowlm.models.default import default_gguf

        return ResolvedModel(ref, "default", default_gguf())
    path = Path(ref).expanduser()
    if path.exists():
        if path.is_file():
            if path.suffix.lower() != ".gguf":
                raise ModelNotFoundError(
                    f"{ref} is a file but not a .gguf model; give a .gguf file or a model directory"
                )
            check_gguf(path)
            return ResolvedModel(ref, "gguf", path)
        check_hf_dir(path)
        return ResolvedModel(ref, "hf", path)
    if ref.lower().endswith(".gguf") or ref.startswith((".", "/", "~")) or not _HUB_ID.match(ref):
        raise ModelNotFoundError(
            f"model {ref!r} not found: no such file or directory"
            + ("" if _HUB_ID.match(ref) else " (and it is not a Hub id of the form org/name)")
        )
    return ResolvedModel(ref, "hf", download_from_hub(ref, revision=revision))


def check_hf_dir(path: Path) -> None:
    """Check that ``path`` holds a transformers model: a config and weights."""
    present = sorted(p.name for p in path.iterdir())
    shown = ", ".join(present[:12]) + (" ..." if len(present) > 12 else "") if present else "nothing"
    if (path / "adapter_config.json").exists() and not (path / "config.json").exists():
        raise ModelNotFoundError(
            f"{path} is a LoRA adapter, not a full model; pass it as --adapter {path} "
            "together with --model <its base model>"
        )
    missing = []
    if not (path / "config.json").exists():
        missing.append("config.json")
    if not any(next(path.glob(pattern), None) for pattern in _WEIGHT_PATTERNS):
        missing.append("weights (*.safetensors or pytorch_model*.bin)")
    if missing:
        raise ModelNotFoundError(
            f"{path} is not a model directory: missing {' and '.join(missing)}; it contains: {shown}"
        )


def check_gguf(path: Path) -> None:
    """Check a GGUF file's magic, header, metadata and tensor table, and that its tensors fit in the file.

    Reads the header directly, skipping metadata values (a 262k-word vocabulary costs no Python objects),
    so the check takes milliseconds; gguf's ``GGUFReader`` builds every field and took seconds."""
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise CorruptFileError(f"{path} is not a GGUF file (it starts with {magic!r}, expected b'GGUF')")
    try:
        end = gguf_data_end(path)
    except (ValueError, KeyError, IndexError, struct.error) as exc:
        raise CorruptFileError(f"{path} is a damaged GGUF file: {exc}") from exc
    size = path.stat().st_size
    if end > size:
        raise CorruptFileError(
            f"{path} is a truncated GGUF file: its tensors need {end} bytes, it has {size}"
        )


# GGUF metadata value types -> byte size (8 = string, 9 = array: variable)
_GGUF_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def gguf_data_end(path: Path) -> int:
    """The byte offset where a GGUF file's last tensor ends, read from its header (versions 2 and 3)."""
    import mmap

    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        pos = 4

        def take(fmt: str) -> tuple[Any, ...]:
            nonlocal pos
            values = struct.unpack_from("<" + fmt, data, pos)
            pos += struct.calcsize("<" + fmt)
            return values

        def string() -> bytes:
            nonlocal pos
            (length,) = take("Q")
            if pos + length > len(data):
                raise ValueError("a string runs past the end of the file")
            pos += length
            return bytes(data[pos - length : pos])

        def skip(kind: int) -> None:
            nonlocal pos
            if kind == 8:
                string()
            elif kind == 9:
                item, count = take("IQ")
                if item in _GGUF_SIZES:
                    pos += count * _GGUF_SIZES[item]
                elif item == 8:  # a string array (the vocabulary): lengths only, no objects
                    unpack = struct.Struct("<Q").unpack_from
                    for _ in range(count):
                        pos += 8 + unpack(data, pos)[0]
                    if pos > len(data):
                        raise ValueError("a string array runs past the end of the file")
                else:
                    for _ in range(count):
                        skip(item)
            elif kind in _GGUF_SIZES:
                pos += _GGUF_SIZES[kind]
            else:
                raise ValueError(f"unknown metadata value type {kind}")

        version, n_tensors, n_kv = take("IQQ")
        if version not in (2, 3):
            raise ValueError(f"unsupported GGUF version {version}")
        alignment = 32
        for _ in range(n_kv):
            key = string()
            (kind,) = take("I")
            if key == b"general.alignment" and kind == 4:
                (alignment,) = take("I")
            else:
                skip(kind)
        end = 0
        for _ in range(n_tensors):
            string()
            (n_dims,) = take("I")
            count = math.prod(take(f"{n_dims}Q"))
            (qtype, offset) = take("IQ")
            block, size = GGML_QUANT_SIZES[GGMLQuantizationType(qtype)]
            end = max(end, offset + count // block * size)
        start = (pos + alignment - 1) // alignment * alignment
        return start + end


def _reason(exc: BaseException) -> str:
    """The first line of an exception's message (the Hub client's are long)."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def download_from_hub(repo_id: str, *, revision: str | None = None) -> Path:
    """Download a model from the Hugging Face Hub (safetensors only when the repo has them)."""
    from huggingface_hub import HfApi, snapshot_download

    try:  # reuse a complete earlier download without touching the network
        return Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except Exception:
        log.info("%s is not in the local Hub cache; downloading", repo_id)
    try:
        files = [s.rfilename for s in HfApi().model_info(repo_id, revision=revision).siblings or []]
        has_safetensors = any(f.endswith(".safetensors") for f in files)
        weights = ["*.safetensors"] if has_safetensors else ["*.bin"]
        local = snapshot_download(repo_id, revision=revision, allow_patterns=[*weights, *_NON_WEIGHT_FILES])
    except Exception as exc:
        raise ModelNotFoundError(
            f"could not download {repo_id!r} from the Hugging Face Hub ({_reason(exc)}); check the id, your "
            "network and HF_TOKEN, or pass a local directory or .gguf file"
        ) from exc
    return Path(local)


_HUB_FILE = re.compile(r"^hf://datasets/(?P<repo>[^/@]+/[^/@]+)(?:@(?P<revision>[^/]+))?/(?P<path>.+)$")


def dataset_file(ref: str) -> Path:
    """A local path for ``ref``: a file path as is, or ``hf://datasets/OWNER/NAME[@REVISION]/PATH`` (the
    Hugging Face file-system form) downloaded from the Hub into its cache (reused when already there)."""
    if not ref.startswith("hf://"):
        return Path(ref)
    match = _HUB_FILE.match(ref)
    if match is None:
        raise InputError(f"{ref}: a Hub file is hf://datasets/OWNER/NAME[@REVISION]/PATH")
    from huggingface_hub import hf_hub_download

    def download(local_only: bool) -> Path:
        return Path(
            hf_hub_download(
                match["repo"],
                match["path"],
                repo_type="dataset",
                revision=match["revision"],
                local_files_only=local_only,
            )
        )

    try:
        return download(local_only=True)
    except Exception:
        log.info("%s is not in the local Hub cache; downloading", ref)
    try:
        return download(local_only=False)
    except Exception as exc:
        raise InputError(
            f"could not download {ref} from the Hugging Face Hub ({_reason(exc)}); check the dataset, the path "
            "and your network (HF_HUB_OFFLINE unset, HF_TOKEN for gated sets), or give a local file"
        ) from exc
