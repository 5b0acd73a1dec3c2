"""Constrained decoding on every local engine, through llguidance (the grammar engine vLLM also uses).

A constraint is a JSON schema (``SamplingParams.json_schema``) or a Lark grammar in llguidance's syntax
(``SamplingParams.grammar``, e.g. the grounded answer grammars of `knowlm.ie.grammar`). At every step
llguidance computes the set of allowed next tokens as a bitmask (tens of microseconds, even over Gemma's
262k-word vocabulary); the engines apply it to the logits before sampling: `TorchMaskProcessor` for
transformers (one matcher per row of a batch); llama.cpp's scheduler keeps one matcher per sequence
(`knowlm.engines.llamacpp_scheduler`).
"""

from __future__ import annotations

import json
from typing import Any

from knowlm.config import SamplingParams
from knowlm.errors import InputError, MissingDependencyError


def llguidance_module() -> Any:
    try:
        import llguidance
    except ImportError as exc:
        raise MissingDependencyError(
            "constrained decoding needs llguidance: pip install 'knowlm[constrained]'"
        ) from exc
    return llguidance


def compiled_grammar(params: SamplingParams) -> str | None:
    """llguidance's grammar for the constraint in ``params`` (None: unconstrained)."""
    if params.grammar is None and params.json_schema is None:
        return None
    llg = llguidance_module()
    if params.grammar is not None:
        return str(llg.LLMatcher.grammar_from_lark(params.grammar))
    return str(
        llg.LLMatcher.grammar_from_json_schema(
            json.dumps(params.json_schema),
            # json.dumps' separators: the form answers take in training data
            defaults={"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "},
        )
    )


def new_matcher(ll_tokenizer: Any, grammar: str) -> Any:
    """A matcher for one output; a grammar llguidance refuses is a clear error."""
    llg = llguidance_module()
    matcher = llg.LLMatcher(ll_tokenizer, grammar)
    if matcher.is_error():
        raise InputError(f"invalid constraint grammar: {matcher.get_error()}")
    return matcher


class _Rows:
    """Matchers for the rows of a batch; feeds each the tokens generated since the previous step."""

    def __init__(self, ll_tokenizer: Any, grammar: str, rows: int) -> None:
        self.matchers = [new_matcher(ll_tokenizer, grammar) for _ in range(rows)]
        self.vocab_size = ll_tokenizer.vocab_size
        self.start: int | None = None

    def advance(self, row: int, tokens: Any) -> Any:
        """Consume the newest token of ``tokens`` (the row's whole sequence so far); return the matcher."""
        matcher = self.matchers[row]
        if self.start is None:
            self.start = len(tokens)
        if len(tokens) > self.start and not matcher.is_stopped() and not matcher.is_error():
            matcher.consume_token(int(tokens[-1]))
        return matcher


class TorchMaskProcessor:
    """transformers logits processor: masks, for every row, the tokens the constraint does not allow."""

    def __init__(self, ll_tokenizer: Any, grammar: str, batch_size: int) -> None:
        import llguidance.torch as llg_torch

        self.rows = _Rows(ll_tokenizer, grammar, batch_size)
        self.bitmask = llg_torch.allocate_token_bitmask(batch_size, self.rows.vocab_size)
        self._fill = llg_torch.fill_next_token_bitmask
        self._apply = llg_torch.apply_token_bitmask_inplace

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        for row in range(input_ids.shape[0]):
            self._fill(self.rows.advance(row, input_ids[row]), self.bitmask, row)
        scores = scores.clone()  # generate() keeps the raw logits it passed in (the tokens' logprobs)
        self._apply(scores, self.bitmask.to(scores.device))
        return scores
