"""Load a resolved model with transformers (+ an optional PEFT LoRA adapter)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from knowlm.config import ModelConfig
from knowlm.errors import InputError, MissingDependencyError, ModelLoadError, ModelNotFoundError
from knowlm.models.resolve import ResolvedModel, resolve_model

log = logging.getLogger(__name__)


class AdapterMismatchError(InputError):
    """A LoRA adapter was trained for a different base model."""


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {device} was asked for but no CUDA GPU is available; use --device cpu")
    return device


def resolve_dtype(dtype: str, device: str) -> Any:
    import torch

    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return getattr(torch, dtype)


if TYPE_CHECKING:
    from knowlm.ie.instructions import Instructions


def hf_model_dir(resolved: ResolvedModel) -> tuple[Path, str | None]:
    """The directory (and GGUF file name, if any) transformers loads for ``resolved``."""
    if resolved.kind == "default":
        from knowlm.models.default import default_hf_dir

        return default_hf_dir(), None
    if resolved.kind == "gguf":
        return resolved.path.parent, resolved.path.name
    return resolved.path, None


def model_instructions(config: ModelConfig) -> Instructions | None:
    """The IE instruction texts the adapter or the model directory carries (`knowlm.ie.instructions`)."""
    from knowlm.ie.instructions import directory_instructions

    path, _ = hf_model_dir(resolve_model(config.model, revision=config.revision))
    return directory_instructions(Path(config.adapter) if config.adapter else None, path)


def quantization_config(config: ModelConfig, device: str) -> Any:
    if not (config.load_in_8bit or config.load_in_4bit):
        return None
    flag = "--load-in-8bit" if config.load_in_8bit else "--load-in-4bit"
    if not device.startswith("cuda"):
        raise InputError(
            f"{flag} needs a CUDA GPU (bitsandbytes); on CPU use --dtype bfloat16, or a quantized "
            ".gguf model with --engine llamacpp"
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(f"{flag} needs bitsandbytes: pip install bitsandbytes") from exc
    import torch
    from transformers import BitsAndBytesConfig

    if config.load_in_8bit:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )


def load_tokenizer(path: Path, gguf_file: str | None, config: ModelConfig) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        str(path), gguf_file=gguf_file, trust_remote_code=config.trust_remote_code
    )
    tokenizer.padding_side = "left"  # decoder-only batches are padded on the left
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_transformers(config: ModelConfig) -> tuple[Any, Any]:
    """Load (model, tokenizer) for ``config`` with transformers, ready for generation."""
    config.validate()
    device = resolve_device(config.device)
    resolved = resolve_model(config.model, revision=config.revision)
    path, gguf_file = hf_model_dir(resolved)
    quant = quantization_config(config, device)
    adapter_dir = check_adapter(config.adapter) if config.adapter else None

    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {
        "dtype": resolve_dtype(config.dtype, device),
        "trust_remote_code": config.trust_remote_code,
    }
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    if quant is not None:
        kwargs["quantization_config"] = quant
        kwargs["device_map"] = {"": device}
    try:
        tokenizer = load_tokenizer(path, gguf_file, config)
        model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    except (OSError, ValueError, RuntimeError, KeyError, SafetensorError) as exc:
        raise ModelLoadError(f"could not load the model from {path}: {_first_line(exc)}") from exc
    if gguf_file:
        from knowlm.models.default import unmark_quantized

        unmark_quantized(model)
    if quant is None:
        model.to(device)  # type: ignore[arg-type]  # transformers types .to as the Module's
    if adapter_dir is not None:
        model = apply_adapter(model, adapter_dir)
        if quant is None:  # fold the LoRA into the weights: generation then runs at the base model's speed
            model = model.merge_and_unload()
    model.eval()
    return model, tokenizer


def check_adapter(adapter: str, flag: str = "--adapter") -> Path:
    path = Path(adapter).expanduser()
    if not path.is_dir():
        raise ModelNotFoundError(f"{flag} {adapter}: no such directory")
    if not (path / "adapter_config.json").exists():
        present = ", ".join(sorted(p.name for p in path.iterdir())) or "nothing"
        raise ModelNotFoundError(
            f"{flag} {adapter} is not a PEFT adapter: missing adapter_config.json; it contains: {present}"
        )
    return path


def apply_adapter(model: Any, adapter_dir: Path, trainable: bool = False) -> Any:
    """Wrap ``model`` with the LoRA adapter in ``adapter_dir`` (``trainable``: to train it further); a base
    mismatch is a clear error."""
    from peft import PeftModel

    base = json.loads((adapter_dir / "adapter_config.json").read_text()).get("base_model_name_or_path")
    try:
        return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=trainable)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise AdapterMismatchError(
            f"adapter {adapter_dir} does not fit this model (it was trained on {base or 'another base'}): "
            f"{_first_line(exc)}"
        ) from exc


def _first_line(exc: BaseException) -> str:
    """The informative line of an exception message (PEFT puts the shape mismatch on line 2)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    useful = next((line for line in lines if "mismatch" in line or "not found" in line), lines[0])
    return useful[:400]
