"""Constrained decoding for the transformers engine: a logits processor that only allows tokens that
keep the output valid for a JSON schema, built on llguidance (the grammar engine vLLM and llama.cpp
ecosystems also use). llama.cpp gets a GBNF grammar instead (see the llamacpp engine)."""

from __future__ import annotations

import json
from typing import Any

import torch
from transformers import LogitsProcessor

from knowlm.errors import MissingDependencyError


def _llguidance() -> Any:
    try:
        import llguidance
        import llguidance.hf
        import llguidance.torch
    except ImportError as exc:
        raise MissingDependencyError(
            "constrained decoding with the transformers engine needs llguidance: pip install 'knowlm[constrained]'"
        ) from exc
    return llguidance


class JsonSchemaProcessor(LogitsProcessor):
    """Masks, at every step and for every row, the tokens that would break the JSON schema."""

    def __init__(
        self, tokenizer: Any, vocab_size: int, schema: dict[str, Any], batch_size: int, prompt_len: int
    ):
        llg = _llguidance()
        eos = tokenizer.eos_token_id
        self.ll_tokenizer = llg.hf.from_tokenizer(tokenizer, n_vocab=vocab_size, eos_token=eos)
        grammar = llg.LLMatcher.grammar_from_json_schema(
            json.dumps(schema), defaults={"whitespace_flexible": False}
        )
        self.matchers = [llg.LLMatcher(self.ll_tokenizer, grammar) for _ in range(batch_size)]
        self.bitmask = llg.torch.allocate_token_bitmask(batch_size, self.ll_tokenizer.vocab_size)
        self.prompt_len = prompt_len
        self._fill = llg.torch.fill_next_token_bitmask
        self._apply = llg.torch.apply_token_bitmask_inplace

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        generated = input_ids.shape[1] - self.prompt_len
        for row, matcher in enumerate(self.matchers):
            if generated > 0 and not matcher.is_stopped() and not matcher.is_error():
                matcher.consume_token(int(input_ids[row, -1]))
            self._fill(matcher, self.bitmask, row)
        self._apply(scores, self.bitmask.to(scores.device))
        return scores
