"""Turn the one string a user gives (``--model``) into a local model on disk.

A reference is one of: ``default`` (the embedded model), a ``.gguf`` file, a local Hugging Face
directory, or a Hub id ``org/name`` (downloaded with huggingface_hub). Everything is checked before any
model is loaded, and errors list what is missing and what is there.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from knowlm.errors import CorruptFileError, ModelNotFoundError

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
    """Check a GGUF file's magic and that its header and tensor table are readable and complete."""
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise CorruptFileError(f"{path} is not a GGUF file (it starts with {magic!r}, expected b'GGUF')")
    try:
        from gguf import GGUFReader

        reader = GGUFReader(path)
        end = max((int(t.data_offset) + int(t.n_bytes) for t in reader.tensors), default=0)
    except Exception as exc:  # the gguf reader raises assorted errors on damaged files
        raise CorruptFileError(f"{path} is a damaged GGUF file: {exc}") from exc
    size = path.stat().st_size
    if end > size:
        raise CorruptFileError(
            f"{path} is a truncated GGUF file: its tensors need {end} bytes, it has {size}"
        )


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
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelNotFoundError(
            f"could not download {repo_id!r} from the Hugging Face Hub ({reason}); check the id, your "
            "network and HF_TOKEN, or pass a local directory or .gguf file"
        ) from exc
    return Path(local)
