"""The engine protocol: every caller (CLI, IE, API, web) generates text through it."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from knowlm.config import ModelConfig, SamplingParams
from knowlm.errors import InputError

FinishReason = Literal["stop", "length"]


@dataclass
class Completion:
    """One generated continuation (prompt not included; stop strings cut off)."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason
    logprobs: list[tuple[str, float]] | None = None
    """Each generated token's text and natural-log probability under the model itself (its raw logits:
    before temperature, top-k/top-p and constraint masks), in order; the texts join to ``text`` plus
    whatever a stop string cut off. None when the engine gives none (beam search)."""


class Engine(Protocol):
    """Generates text from prompt strings. Prompts are complete: templates are applied by the caller.

    An engine may also carry ``ie_instructions``: the IE instruction texts its model was trained with
    (`knowlm.ie.instructions`; None or absent: the built-in texts); ``ie_options``: how its model is best
    asked, per task ({task: {"prompt_format": ..., "ask_each_up_to": N, "text_first_over": M}}: what the
    extraction settings "auto" and unset mean; schemas of at most N items are asked one item a prompt, of
    more than M one item a prompt with the text first); ``generate_each(prompts, params)``,
    every prompt with its own settings in one call (see `generate_each`); and
    ``submit_each(prompts, params)``, a future per prompt, when it schedules sequences itself (the server
    then hands it every request)."""

    name: str
    model_name: str

    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[Completion]:
        """Complete every prompt; the result is in the order of ``prompts``."""
        ...

    def stream(self, prompt: str, params: SamplingParams) -> Iterator[str]:
        """Yield the completion of one prompt piece by piece; the pieces join to ``generate``'s text."""
        ...

    def render_chat(self, messages: list[dict[str, str]]) -> str | None:
        """The prompt for a chat ending in the assistant's turn, or None if the model has no template."""
        ...

    def count_tokens(self, text: str) -> int:
        """Number of tokens ``text`` encodes to (special tokens included as the engine adds them)."""
        ...


EngineFactory = Callable[[ModelConfig], Engine]


def settings_key(params: SamplingParams) -> str:
    """A key equal for equal decoding settings: prompts with one key can share an engine call."""
    return json.dumps(dataclasses.asdict(params), sort_keys=True)


def generate_each(
    engine: Engine, prompts: Sequence[str], params: Sequence[SamplingParams]
) -> list[Completion]:
    """Complete every prompt with its own settings (e.g. its own grounded grammar), in the order given.

    An engine that decodes differently-configured prompts together (llama.cpp's scheduler) gets them all
    in one call through its ``generate_each``; any other engine gets one ``generate`` call per distinct
    setting."""
    if len(prompts) != len(params):
        raise ValueError(f"generate_each: {len(prompts)} prompts but {len(params)} settings")
    native = getattr(engine, "generate_each", None)
    if native is not None:
        return list(native(prompts, params))
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(params):
        groups.setdefault(settings_key(p), []).append(i)
    out: dict[int, Completion] = {}
    for indices in groups.values():
        done = engine.generate([prompts[i] for i in indices], params[indices[0]])
        out.update(zip(indices, done, strict=True))
    return [out[i] for i in range(len(prompts))]


@dataclass(frozen=True)
class EngineEntry:
    target: str
    """``"module:attribute"``, imported only when the engine is used, so extras stay optional."""
    auto: Callable[[ModelConfig], bool] | None = None
    """Whether ``--engine auto`` should pick this engine for a model (asked in registration order)."""


def _gguf_on_llamacpp(config: ModelConfig) -> bool:
    """llama.cpp loads GGUF models (.gguf files and the embedded default) without an adapter to apply,
    when llama-cpp-python is installed."""
    is_gguf = config.model == "default" or config.model.lower().endswith(".gguf")
    return is_gguf and config.adapter is None and importlib.util.find_spec("llama_cpp") is not None


_ENGINES: dict[str, EngineEntry] = {
    "llamacpp": EngineEntry("knowlm.engines.llamacpp:LlamaCppEngine", _gguf_on_llamacpp),
    "transformers": EngineEntry("knowlm.engines.hf:TransformersEngine"),
    "vllm": EngineEntry("knowlm.engines.vllm:VllmEngine"),
}
AUTO_FALLBACK = "transformers"


def register_engine(name: str, target: str, *, auto: Callable[[ModelConfig], bool] | None = None) -> None:
    """Register an engine by name as ``"package.module:ClassOrFactory"`` (imported lazily); ``auto`` says
    which models ``--engine auto`` should give it."""
    if not name.isidentifier() or ":" not in target:
        raise ValueError(f"register_engine({name!r}, {target!r}): need an identifier and 'module:attr'")
    if name in _ENGINES:
        raise ValueError(f"engine {name!r} is already registered")
    _ENGINES[name] = EngineEntry(target, auto)


def engine_names() -> list[str]:
    return list(_ENGINES)


def pick_engine(config: ModelConfig) -> str:
    """The engine ``auto`` stands for: the first registered engine that claims the model (llamacpp: GGUF
    models when it is installed and no adapter is asked for), else transformers."""
    if config.engine != "auto":
        return config.engine
    return next((n for n, e in _ENGINES.items() if e.auto is not None and e.auto(config)), AUTO_FALLBACK)


def with_default_adapter(config: ModelConfig, engine: str) -> ModelConfig:
    """``--model default`` means the base model plus KnowLM's shipped IE adapter (unless --no-adapter):
    merged into a cached GGUF for llama.cpp, applied with PEFT for the other engines."""
    if config.model != "default" or config.adapter is not None or config.no_adapter:
        return config
    from knowlm.models.default import default_adapter, default_ie_gguf

    adapter = default_adapter()
    if adapter is None:
        return config
    if engine == "llamacpp":
        return dataclasses.replace(config, model=str(default_ie_gguf(adapter)))
    return dataclasses.replace(config, adapter=str(adapter))


def create_engine(config: ModelConfig) -> Engine:
    """Validate ``config`` and build the engine it names."""
    config.validate()
    name = pick_engine(config)
    if name not in _ENGINES:
        raise InputError(f"--engine {name!r} is unknown; choose one of {', '.join(engine_names())}")
    named = config.model
    shipped = with_default_adapter(config, name)  # a new config when KnowLM's IE adapter is applied
    module, attr = _ENGINES[name].target.split(":")
    factory: EngineFactory = getattr(importlib.import_module(module), attr)
    engine = factory(shipped)
    if named == "default":  # not the merged file's path inside the user's cache
        engine.model_name = named
    if shipped is not config:
        from knowlm.models.default import DEFAULT_IE_OPTIONS

        engine.ie_options = DEFAULT_IE_OPTIONS  # type: ignore[attr-defined]
    return engine


def special_stop_ids(stops: Sequence[str], token_of: Callable[[str], int | None]) -> list[int]:
    """The token ids of the stop strings that are one special token (a chat template's turn markers such
    as Gemma's ``<start_of_turn>``). Engines leave special tokens out of the text they return, so such a
    stop can never match as text: engines stop on these ids instead. ``token_of`` gives the id of a string
    that is exactly one special token of the model's vocabulary, else None."""
    return sorted({t for t in map(token_of, dict.fromkeys(stops)) if t is not None})


def special_token(tokenizer: Any, text: str) -> int | None:
    """The id of ``text`` when it is one special token of a Hugging Face tokenizer (decoding skips it)."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    return ids[0] if len(ids) == 1 and not tokenizer.decode(ids, skip_special_tokens=True) else None


def token_pieces(
    decode: Callable[[list[int]], str], tokens: Sequence[int], logprobs: Sequence[float]
) -> list[tuple[str, float]]:
    """Each token's share of the decoded text with its log-probability: the characters of
    ``decode(tokens)`` that decoding up to that token settles. The pieces join to the decoded text; a token
    ending inside a character gets an empty piece, the character going to the token that completes it."""
    final = decode(list(tokens))
    out: list[tuple[str, float]] = []
    done = 0
    for i, logprob in enumerate(logprobs[: len(tokens)]):
        text = final if i == len(tokens) - 1 else decode(list(tokens[: i + 1]))
        settled = next((k for k, (a, b) in enumerate(zip(text, final, strict=False)) if a != b), None)
        end = max(done, min(len(text), len(final)) if settled is None else settled)
        out.append((final[done:end], logprob))
        done = end
    return out


def find_stop(text: str, stops: Sequence[str]) -> int | None:
    """Index of the earliest stop string in ``text``, or None."""
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(hits) if hits else None


class StopStreamer:
    """Cuts a stream of text deltas at the first stop string.

    Text that might be the beginning of a stop string is held back until it is clear it is not.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.pending = ""
        self.stopped = False

    def feed(self, delta: str) -> str:
        """Add a delta; return the text that is now safe to emit."""
        if self.stopped:
            return ""
        self.pending += delta
        cut = find_stop(self.pending, self.stops)
        if cut is not None:
            self.stopped = True
            out, self.pending = self.pending[:cut], ""
            return out
        hold = max((_overlap(self.pending, s) for s in self.stops), default=0)
        out = self.pending[: len(self.pending) - hold]
        self.pending = self.pending[len(out) :]
        return out

    def flush(self) -> str:
        out, self.pending = ("" if self.stopped else self.pending), ""
        return out


def _overlap(text: str, stop: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``stop``."""
    for n in range(min(len(text), len(stop) - 1), 0, -1):
        if text.endswith(stop[:n]):
            return n
    return 0


def render_with_tokenizer(tokenizer: Any, messages: list[dict[str, str]]) -> str | None:
    """Render ``messages`` with a Hugging Face tokenizer's chat template (None when it has none).

    The template's leading BOS is dropped: engines add BOS themselves when they tokenize the prompt.
    """
    if not getattr(tokenizer, "chat_template", None):
        return None
    text: str = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    bos = tokenizer.bos_token
    return text[len(bos) :] if bos and text.startswith(bos) else text


def chat_renderer(engine: Engine) -> Callable[[list[dict[str, str]]], str] | None:
    """``engine.render_chat`` as a template renderer, or None when the model has no chat template."""
    if engine.render_chat([{"role": "user", "content": "hi"}]) is None:
        return None
    return lambda messages: engine.render_chat(messages) or ""
