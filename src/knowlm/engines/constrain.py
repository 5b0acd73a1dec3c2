"""Constrained decoding on every local engine, through llguidance (the grammar engine vLLM also uses).

A constraint is a JSON schema (``SamplingParams.json_schema``) or a Lark grammar in llguidance's syntax
(``SamplingParams.grammar``, e.g. the grounded answer grammars of `knowlm.ie.grammar`). At every step
llguidance computes the set of allowed next tokens as a bitmask (tens of microseconds, even over Gemma's
262k-word vocabulary); the engines apply it to the logits before sampling: `TorchMaskProcessor` for
transformers (one matcher per row of a batch); llama.cpp's scheduler keeps one matcher per sequence
(`knowlm.engines.llamacpp_scheduler`).

Extraction answers are also kept from looping (``SamplingParams.distinct_items``): a small model asked for
a list under a grammar may write the same item again and again until the token limit, and the grammar
alone cannot forbid it. `ItemGuard` follows the JSON as it is written; once the last item of a list
repeats an earlier one, the tokens that would go on with a comma are masked, so the list closes there
(the repeat itself is said once in the result) and the answer goes on to its next key.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
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
    """Matchers for the rows of a batch; feeds each the tokens generated since the previous step (and
    its `ItemGuard` their text, when it has one)."""

    def __init__(self, ll_tokenizer: Any, grammar: str, rows: int, guarded: bool) -> None:
        self.matchers = [new_matcher(ll_tokenizer, grammar) for _ in range(rows)]
        self.guards = [ItemGuard() for _ in range(rows)] if guarded else None
        self.vocab_size = ll_tokenizer.vocab_size
        self.start: int | None = None

    def advance(self, row: int, tokens: Any, piece: Callable[[int], str]) -> Any:
        """Consume the newest token of ``tokens`` (the row's whole sequence so far); return the matcher."""
        matcher = self.matchers[row]
        if self.start is None:
            self.start = len(tokens)
        if len(tokens) > self.start and not matcher.is_stopped() and not matcher.is_error():
            matcher.consume_token(int(tokens[-1]))
            if self.guards is not None:
                self.guards[row].feed(piece(int(tokens[-1])))
        return matcher


class TorchMaskProcessor:
    """transformers logits processor: masks, for every row, the tokens the constraint does not allow;
    with ``comma_tokens`` (the ids whose text holds a comma) and ``piece`` (a token's text), also those
    that would go on with a list after an item it repeats (`ItemGuard`)."""

    def __init__(
        self,
        ll_tokenizer: Any,
        grammar: str,
        batch_size: int,
        *,
        comma_tokens: Any = None,
        piece: Callable[[int], str] = str,
    ) -> None:
        import llguidance.torch as llg_torch

        self.rows = _Rows(ll_tokenizer, grammar, batch_size, guarded=comma_tokens is not None)
        self.comma_tokens, self.piece = comma_tokens, piece
        self.bitmask = llg_torch.allocate_token_bitmask(batch_size, self.rows.vocab_size)
        self._fill = llg_torch.fill_next_token_bitmask
        self._apply = llg_torch.apply_token_bitmask_inplace

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        for row in range(input_ids.shape[0]):
            self._fill(self.rows.advance(row, input_ids[row], self.piece), self.bitmask, row)
        scores = scores.clone()  # generate() keeps the raw logits it passed in (the tokens' logprobs)
        self._apply(scores, self.bitmask.to(scores.device))
        for row, guard in enumerate(self.rows.guards or ()):
            if guard.watching:
                self._unrepeat(scores[row], guard)
        return scores

    def _unrepeat(self, row: Any, guard: ItemGuard) -> None:
        """Mask the allowed tokens of ``row`` that the guard refuses, unless it refuses them all."""
        import torch

        ids = self.comma_tokens[self.comma_tokens < row.shape[0]]
        candidates = ids[torch.isfinite(row[ids])].tolist()
        refused = [t for t in candidates if guard.refuses(self.piece(t))]
        if refused and int(torch.isfinite(row).sum()) > len(refused):
            row[refused] = float("-inf")


@dataclass
class _Frame:
    kind: str
    """``[`` or ``{``."""
    start: int
    items: set[str] | None = None
    """A list's items so far, as written."""
    repeated: bool = False
    """A list's last item repeats an earlier one: it may only close."""


@dataclass
class ItemGuard:
    """Follows a JSON answer as it is written and says which next pieces would go on with a list whose
    last item repeats an earlier item of it (see the module docstring)."""

    text: str = ""
    stack: list[_Frame] = field(default_factory=list)
    in_string: bool = False
    escape: bool = False
    string_start: int = 0

    @property
    def watching(self) -> bool:
        """Whether some open list has an item: only then can a piece be refused."""
        return any(f.items for f in self.stack)

    def feed(self, piece: str) -> None:
        """The answer went on with ``piece``."""
        self._run(piece, commit=True)

    def refuses(self, piece: str) -> bool:
        """Whether ``piece`` would put a comma after a list item that repeats an earlier one."""
        copy = dataclasses.replace(self, stack=[dataclasses.replace(f) for f in self.stack])
        return not copy._run(piece, commit=False)

    def _run(self, piece: str, *, commit: bool) -> bool:
        """Follow ``piece``; False at a comma after a repeated item. ``commit``: remember new items (a
        trial run only reads them)."""
        at = len(self.text)
        self.text += piece
        for i, c in enumerate(piece, start=at):
            if self.in_string:
                if self.escape:
                    self.escape = False
                elif c == "\\":
                    self.escape = True
                elif c == '"':
                    self.in_string = False
                    self._item(self.text[self.string_start : i + 1], commit)
            elif c == '"':
                self.in_string, self.string_start = True, i
            elif c in "[{":
                self.stack.append(_Frame(c, i, set() if c == "[" else None))
            elif c in "]}" and self.stack:
                frame = self.stack.pop()
                if c == "}":
                    self._item(self.text[frame.start : i + 1], commit)
            elif c == "," and self.stack and self.stack[-1].repeated:
                return False
        return True

    def _item(self, item: str, commit: bool) -> None:
        """A value ended: when it is a list's item, note it (and whether it was there already)."""
        if not self.stack or self.stack[-1].items is None:
            return
        frame = self.stack[-1]
        assert frame.items is not None
        frame.repeated = item in frame.items
        if commit:
            frame.items.add(item)
