"""Export a Hugging Face checkpoint (LLaMA family or Gemma 3 text) to one GGUF file for llama.cpp.

Tensors are converted and written one at a time (`gguf.GGUFWriter`'s streaming API), so memory stays
around the largest tensor. What llama.cpp expects differs from the HF layout in a few places:
  - LLaMA's q/k projections are stored in Meta's interleaved rotary order (HF permuted them);
  - Gemma's RMSNorm multiplies by (1 + w); llama.cpp stores 1 + w;
  - 1-D tensors (norms) stay float32; 2-D ones become f16, q8_0 (rows of 32) or stay f32.
The tokenizer goes in as a SentencePiece-style vocabulary (``tokenizer.ggml.model = llama``): from
``tokenizer.model`` when present, else from ``tokenizer.json`` (BPE merge ranks become scores), or copied
from an existing GGUF with the same tokens (``tokenizer_from``; the default model's merges take its GGUF's).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from knowlm.errors import InputError
from knowlm.weights.checkpoint import CheckpointReader, check_disk
from knowlm.weights.formats import GGUF_TYPES

ARCHES = {"llama": "llama", "gemma3_text": "gemma3"}
BYTE_TOKEN = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")


@dataclass
class Vocab:
    """A SentencePiece-style vocabulary as llama.cpp reads it."""

    tokens: list[str]
    scores: list[float]
    types: list[int]
    add_space_prefix: bool
    special: dict[str, int] = field(default_factory=dict)  # bos/eos/unk/pad -> id
    add_bos: bool = True
    chat_template: str | None = None
    copied: dict[str, Any] | None = None  # tokenizer.* fields copied verbatim from another GGUF


def _config(directory: Path) -> dict[str, Any]:
    path = directory / "config.json"
    if not path.exists():
        raise InputError(f"{directory}: no config.json; export-gguf needs a Hugging Face model directory")
    config: dict[str, Any] = json.loads(path.read_text())
    if config.get("model_type") == "gemma3" and "text_config" in config:
        raise InputError(
            f"{directory} is a multimodal Gemma 3 checkpoint; export-gguf handles the text-only Gemma 3 "
            "(Gemma3ForCausalLM) and LLaMA-family models"
        )
    if config.get("model_type") not in ARCHES:
        raise InputError(
            f"{directory}: model_type {config.get('model_type')!r} is not supported by export-gguf (LLaMA-family "
            "and Gemma 3 text models are); for other architectures use llama.cpp's convert_hf_to_gguf.py"
        )
    return config


def _rope_theta(
    config: dict[str, Any], layer_type: str = "full_attention", default: float = 10000.0
) -> float:
    if "rope_theta" in config:
        return float(config["rope_theta"])
    params = config.get("rope_parameters") or {}
    params = params.get(layer_type, params)
    return float(params.get("rope_theta", default))


def _rope_scaling(config: dict[str, Any]) -> dict[str, Any] | None:
    scaling: dict[str, Any] | None = config.get("rope_scaling")
    if scaling is None:
        params = config.get("rope_parameters") or {}
        scaling = params.get("full_attention", params)
    kind = (scaling or {}).get("rope_type", (scaling or {}).get("type", "default"))
    if kind == "default":
        return None
    if kind != "linear":
        raise InputError(
            f"rope scaling {kind!r} is not supported by export-gguf (only linear); use llama.cpp's converter"
        )
    return scaling


def _write_hparams(writer: Any, config: dict[str, Any], arch: str) -> None:
    import gguf

    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(config.get("num_key_value_heads") or heads)
    writer.add_layer_norm_rms_eps(config.get("rms_norm_eps", 1e-6))
    writer.add_rope_freq_base(_rope_theta(config, default=1e6 if arch == "gemma3" else 1e4))
    if arch == "gemma3":
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
        writer.add_sliding_window(config.get("sliding_window", 512))
    else:
        writer.add_rope_dimension_count(head_dim)
        writer.add_vocab_size(config["vocab_size"])
    scaling = _rope_scaling(config)
    if scaling:
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(scaling["factor"]))


def _permute_rotary(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """HF's rotate-half q/k layout -> Meta's interleaved one, which llama.cpp's LLaMA graph uses."""
    rows = weight.shape[0]  # per head, row j * half + i (half j of rotary pair i) becomes row 2 * i + j
    return (
        weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:]).transpose(1, 2).reshape(weight.shape)
    )


def _transform(config: dict[str, Any], arch: str) -> Callable[[str, torch.Tensor], torch.Tensor]:
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads

    def apply(name: str, tensor: torch.Tensor) -> torch.Tensor:
        if arch == "llama" and name.endswith("self_attn.q_proj.weight"):
            return _permute_rotary(tensor, heads)
        if arch == "llama" and name.endswith("self_attn.k_proj.weight"):
            return _permute_rotary(tensor, kv_heads)
        if arch == "gemma3" and name.endswith("norm.weight"):
            return tensor + 1.0
        return tensor

    return apply


# ---------------------------------------------------------------------------------------------- vocabulary


def _token_type(token: str, *, special: bool, added: bool, unk: str | None, byte_fallback: bool) -> int:
    import gguf

    if token == unk:
        return gguf.TokenType.UNKNOWN
    if special:
        return gguf.TokenType.CONTROL
    if added:
        return gguf.TokenType.USER_DEFINED
    if byte_fallback and BYTE_TOKEN.match(token):
        return gguf.TokenType.BYTE
    return gguf.TokenType.NORMAL


def _vocab_from_sentencepiece(directory: Path) -> Vocab:
    """The exact vocabulary of ``tokenizer.model`` (LLaMA 1/2 and KnowLM's ZhiXi ship one)."""
    import gguf
    from sentencepiece import SentencePieceProcessor

    path = directory / "tokenizer.model"
    try:
        sp = SentencePieceProcessor(model_file=str(path))
    except Exception as exc:
        raise InputError(f"{path} is not a readable SentencePiece model ({exc})") from None
    tokens: list[str] = []
    scores: list[float] = []
    types: list[int] = []
    for i in range(sp.vocab_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        if sp.is_unknown(i):
            types.append(gguf.TokenType.UNKNOWN)
        elif sp.is_control(i):
            types.append(gguf.TokenType.CONTROL)
        elif sp.is_unused(i):
            types.append(gguf.TokenType.UNUSED)
        elif sp.is_byte(i):
            types.append(gguf.TokenType.BYTE)
        else:
            types.append(gguf.TokenType.NORMAL)
    added = directory / "added_tokens.json"
    if added.exists():
        for token, index in sorted(json.loads(added.read_text()).items(), key=lambda kv: kv[1]):
            if index >= len(tokens):
                tokens.append(token)
                scores.append(-1000.0)
                types.append(gguf.TokenType.USER_DEFINED)
    ids = {"bos": sp.bos_id(), "eos": sp.eos_id(), "unk": sp.unk_id(), "pad": sp.pad_id()}
    config = directory / "tokenizer_config.json"
    add_bos = json.loads(config.read_text()).get("add_bos_token", True) if config.exists() else True
    return Vocab(
        tokens,
        scores,
        types,
        sp.encode_as_pieces("a")[0].startswith("▁"),  # the model's add_dummy_prefix
        {key: i for key, i in ids.items() if i >= 0},
        add_bos=bool(add_bos),
    )


def _vocab_from_tokenizer_json(data: dict[str, Any]) -> tuple[list[str], list[float], list[int], bool]:
    model = data["model"]
    if any(
        step.get("type") == "ByteLevel"
        for part in ("pre_tokenizer", "decoder")
        for step in [data.get(part) or {}, *(data.get(part) or {}).get("pretokenizers", [])]
    ):
        raise InputError(
            "this tokenizer is a byte-level BPE (LLaMA 3 / GPT-2 style); export-gguf writes SentencePiece-style "
            "vocabularies (LLaMA 1/2, Gemma): use llama.cpp's convert_hf_to_gguf.py for this model"
        )
    added = {t["id"]: t for t in data.get("added_tokens", [])}
    tokens = _token_list(data)
    scores = [-1e9] * len(tokens)
    if model["type"] == "Unigram":
        for i, (_, score) in enumerate(model["vocab"]):
            scores[i] = float(score)
    elif model["type"] == "BPE":
        # llama.cpp's SentencePiece tokenizer merges the highest-scoring pair first: rank r -> score -r
        for rank, merge in enumerate(model.get("merges", [])):
            left, right = merge if isinstance(merge, list) else merge.split(" ", 1)
            index = model["vocab"].get(left + right)
            if index is not None and scores[index] == -1e9:
                scores[index] = -float(rank)
        for token, i in model["vocab"].items():
            if len(token) == 1 or BYTE_TOKEN.match(token):
                scores[i] = 0.0
    else:
        raise InputError(
            f"tokenizer model {model['type']!r} is not supported by export-gguf (BPE, Unigram are)"
        )
    unk = model.get("unk_token") if model["type"] == "BPE" else None
    if model["type"] == "Unigram" and model.get("unk_id") is not None:
        unk = tokens[model["unk_id"]]
    types = []
    for i in range(len(tokens)):
        info = added.get(i)
        types.append(
            _token_type(
                tokens[i],
                special=bool(info and info.get("special")),
                added=info is not None,
                unk=unk,
                byte_fallback=bool(model.get("byte_fallback")) or model["type"] == "Unigram",
            )
        )
    text = json.dumps([data.get("normalizer"), data.get("pre_tokenizer")])
    space_prefix = (
        '"Prepend"' in text or '"prepend_scheme": "always"' in text or '"prepend_scheme": "first"' in text
    )
    return tokens, scores, types, space_prefix


def load_vocab(directory: Path, vocab_size: int) -> Vocab:
    """The checkpoint's tokenizer as a SentencePiece-style GGUF vocabulary."""
    import gguf

    if (directory / "tokenizer.model").exists():
        vocab = _vocab_from_sentencepiece(directory)
    elif (directory / "tokenizer.json").exists():
        from transformers import AutoTokenizer

        try:
            hf = AutoTokenizer.from_pretrained(str(directory))
        except Exception as exc:
            raise InputError(f"{directory}: could not load the tokenizer ({exc})") from None
        probe = hf("a").input_ids
        vocab = Vocab(
            *_vocab_from_tokenizer_json(
                json.loads((directory / "tokenizer.json").read_text(encoding="utf-8"))
            ),
            {
                key: getattr(hf, f"{key}_token_id")
                for key in ("bos", "eos", "unk", "pad")
                if getattr(hf, f"{key}_token_id", None) is not None
            },
            add_bos=bool(probe) and probe[0] == hf.bos_token_id,
        )
    else:
        raise InputError(f"{directory}: no tokenizer.model or tokenizer.json to export")
    if len(vocab.tokens) > vocab_size:
        raise InputError(
            f"{directory}: the tokenizer has {len(vocab.tokens)} tokens but the model only {vocab_size} embeddings"
        )
    while len(vocab.tokens) < vocab_size:  # the embedding may be padded beyond the tokenizer
        vocab.tokens.append(f"[PAD{len(vocab.tokens)}]")
        vocab.scores.append(-1e9)
        vocab.types.append(gguf.TokenType.UNUSED)
    vocab.chat_template = _chat_template(directory)
    return vocab


_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}


def read_metadata(path: Path, prefix: str = "") -> dict[str, tuple[Any, Any, Any]]:
    """The key/value metadata of a GGUF file whose key starts with ``prefix``: key -> (value, type, subtype).

    A small direct parser: `gguf.GGUFReader` takes ~20 s on a 262k-token vocabulary, this well under 1 s.
    """
    import struct

    import gguf

    with path.open("rb") as f:
        head = f.read(24)
        if len(head) < 24 or head[:4] != b"GGUF":
            raise InputError(f"{path} is not a GGUF file")
        (n_kv,) = struct.unpack("<Q", head[16:24])

        def read(fmt: str) -> Any:
            return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]

        def string() -> str:
            return f.read(read("<Q")).decode("utf-8")

        fields = {}
        for _ in range(n_kv):
            key, kind, sub = string(), read("<I"), None
            if kind == gguf.GGUFValueType.ARRAY:
                sub, count = read("<I"), read("<Q")
                if sub == gguf.GGUFValueType.STRING:
                    value: Any = [string() for _ in range(count)]
                else:
                    fmt = _SCALARS[sub]
                    value = np.frombuffer(f.read(struct.calcsize(fmt) * count), dtype=np.dtype(fmt)).tolist()
            else:
                value = string() if kind == gguf.GGUFValueType.STRING else read(_SCALARS[kind])
            if key.startswith(prefix):
                fields[key] = (
                    value,
                    gguf.GGUFValueType(kind),
                    None if sub is None else gguf.GGUFValueType(sub),
                )
    return fields


def _token_list(data: dict[str, Any]) -> list[str]:
    """The token strings of a ``tokenizer.json`` (BPE or Unigram model, plus added tokens) in id order;
    ids nobody uses become "[PAD<id>]"."""
    vocab = data["model"]["vocab"]
    pairs = [(t, i) for i, (t, _) in enumerate(vocab)] if isinstance(vocab, list) else list(vocab.items())
    pairs += [(t["content"], t["id"]) for t in data.get("added_tokens", [])]
    tokens = [f"[PAD{i}]" for i in range(max(i for _, i in pairs) + 1)]
    for token, i in pairs:
        tokens[i] = token
    return tokens


def _same_tokens(a: list[str], b: list[str]) -> bool:
    """Equal up to how spaces are spelled (transformers writes "▁▁" where a GGUF may hold "  ")."""
    return len(a) == len(b) and all(
        x == y or x.replace("▁", " ") == y.replace("▁", " ") for x, y in zip(a, b, strict=True)
    )


def _chat_template(directory: Path) -> str | None:
    if (directory / "chat_template.jinja").exists():
        return (directory / "chat_template.jinja").read_text(encoding="utf-8")
    config = directory / "tokenizer_config.json"
    template = json.loads(config.read_text()).get("chat_template") if config.exists() else None
    return template if isinstance(template, str) else None


def copied_vocab(directory: Path, source: Path) -> Vocab | None:
    """The tokenizer metadata of the GGUF ``source`` if it has the same tokens as ``directory``, else None."""
    path = directory / "tokenizer.json"
    if not path.exists():
        return None
    tokens = _token_list(json.loads(path.read_text(encoding="utf-8")))
    fields = read_metadata(source, "tokenizer.")
    theirs = fields.get("tokenizer.ggml.tokens", ([], None, None))[0]
    if not _same_tokens(tokens, theirs):
        return None
    if "tokenizer.chat_template" not in fields and (template := _chat_template(directory)):
        fields["tokenizer.chat_template"] = (template, *fields["tokenizer.ggml.model"][1:])
    return Vocab(theirs, [], [], False, copied=fields)


# ---------------------------------------------------------------------------------------------- export


def _plan(shape: tuple[int, ...], qtype: str) -> tuple[Any, int]:
    """(GGML type, bytes) of one tensor in the output."""
    import gguf
    from gguf.quants import quant_shape_to_byte_shape

    numel = int(np.prod(shape))
    if len(shape) == 1 or qtype == "f32":
        return gguf.GGMLQuantizationType.F32, numel * 4
    if qtype == "q8_0" and shape[-1] % 32 == 0:
        kind = gguf.GGMLQuantizationType.Q8_0
        return kind, int(np.prod(quant_shape_to_byte_shape(shape, kind)))
    return gguf.GGMLQuantizationType.F16, numel * 2


def _encode(tensor: torch.Tensor, kind: Any) -> np.ndarray:
    import gguf
    from gguf.quants import quantize

    data = tensor.to(torch.float32).numpy()
    if kind == gguf.GGMLQuantizationType.F32:
        return np.ascontiguousarray(data)
    if kind == gguf.GGMLQuantizationType.F16:
        return np.ascontiguousarray(data.astype(np.float16))
    return quantize(data, kind)


def export_gguf(
    directory: str | Path,
    out: str | Path,
    *,
    qtype: str = "f16",
    tokenizer_from: str | Path | None = None,
    name: str | None = None,
) -> Path:
    """Write ``directory`` (an HF LLaMA-family or Gemma 3 text checkpoint) to the GGUF file ``out``."""
    import gguf
    from tqdm.auto import tqdm

    directory, out = Path(directory), Path(out)
    if qtype not in GGUF_TYPES:
        raise InputError(f"--type must be one of {', '.join(GGUF_TYPES)}, got {qtype!r}")
    if out.suffix != ".gguf":
        raise InputError(f"--out should name a .gguf file, got {out}")
    config = _config(directory)
    arch = ARCHES[config["model_type"]]
    reader = CheckpointReader(directory, "model")
    tensor_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH[arch.upper()], config["num_hidden_layers"])
    tied = config.get("tie_word_embeddings", arch == "gemma3")
    planned: list[tuple[str, str, Any, int]] = []  # hf name, gguf name, type, bytes
    unknown = []
    for hf_name, info in reader.tensors.items():
        if hf_name.endswith("rotary_emb.inv_freq") or (tied and hf_name == "lm_head.weight"):
            continue
        gguf_name = tensor_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            unknown.append(hf_name)
            continue
        planned.append((hf_name, gguf_name, *_plan(info.shape, qtype)))
    if unknown:
        raise InputError(
            f"{directory}: tensors with no GGUF counterpart for {arch}: {', '.join(unknown[:8])}"
            + (f" (and {len(unknown) - 8} more)" if len(unknown) > 8 else "")
        )
    vocab = None
    if tokenizer_from is not None:
        if not Path(tokenizer_from).is_file():
            raise InputError(f"--tokenizer-from {tokenizer_from}: no such file")
        vocab = copied_vocab(directory, Path(tokenizer_from))
        if vocab is None:
            raise InputError(
                f"--tokenizer-from {tokenizer_from}: its tokens differ from the tokenizer of {directory}"
            )
    vocab = vocab or load_vocab(directory, config["vocab_size"])
    out.parent.mkdir(parents=True, exist_ok=True)
    check_disk(out.parent, sum(size for *_, size in planned) + 64 * 2**20)
    partial = out.with_name(f".{out.name}.partial")
    writer = gguf.GGUFWriter(str(partial), arch)
    try:
        writer.add_name(name or config.get("_name_or_path") or directory.name)
        writer.add_file_type(
            {
                "f16": gguf.LlamaFileType.MOSTLY_F16,
                "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
                "f32": gguf.LlamaFileType.ALL_F32,
            }[qtype]
        )
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        _write_hparams(writer, config, arch)
        _write_vocab(writer, vocab)
        _write_instructions(writer, directory)
        for hf_name, gguf_name, kind, size in planned:
            shape = reader.tensors[hf_name].shape
            if kind == gguf.GGMLQuantizationType.Q8_0:
                writer.add_tensor_info(
                    gguf_name,
                    gguf.quants.quant_shape_to_byte_shape(shape, kind),
                    np.dtype(np.uint8),
                    size,
                    raw_dtype=kind,
                )
            else:
                dtype = np.float32 if kind == gguf.GGMLQuantizationType.F32 else np.float16
                writer.add_tensor_info(gguf_name, shape, np.dtype(dtype), size)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        transform = _transform(config, arch)
        for hf_name, _, kind, _ in tqdm(planned, desc="export-gguf", unit="tensor"):
            writer.write_tensor_data(_encode(transform(hf_name, reader.get(hf_name)), kind))
        writer.close()
        os.replace(partial, out)
    except BaseException:
        writer.close()
        partial.unlink(missing_ok=True)
        raise
    return out


def _write_instructions(writer: Any, directory: Path) -> None:
    """The IE instruction texts of ``directory`` (`knowlm.ie.instructions`) travel into the GGUF's metadata."""
    from knowlm.ie.instructions import FILE_NAME, GGUF_KEY, load_instructions

    if (directory / FILE_NAME).is_file():
        writer.add_string(GGUF_KEY, json.dumps(load_instructions(directory / FILE_NAME), ensure_ascii=False))


def _write_vocab(writer: Any, vocab: Vocab) -> None:
    if vocab.copied is not None:
        for key, (value, vtype, sub) in vocab.copied.items():
            writer.add_key_value(key, value, vtype, sub_type=sub)
        return
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(vocab.tokens)
    writer.add_token_scores(vocab.scores)
    writer.add_token_types(vocab.types)
    adders = {
        "bos": writer.add_bos_token_id,
        "eos": writer.add_eos_token_id,
        "unk": writer.add_unk_token_id,
        "pad": writer.add_pad_token_id,
    }
    for key, token_id in vocab.special.items():
        adders[key](token_id)
    writer.add_add_bos_token(vocab.add_bos)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(vocab.add_space_prefix)
    if vocab.chat_template:
        writer.add_chat_template(vocab.chat_template)
