"""Request and response models of the HTTP API (pydantic): KnowLM's /generate, OpenAI's /v1/*, /v1/extract."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from knowlm.config import BOUNDS, ExtractConfig, SamplingParams
from knowlm.errors import InputError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Lenient(BaseModel):
    """OpenAI clients send fields we do not use (user, metadata, ...): accept and ignore them."""

    model_config = ConfigDict(extra="ignore")


def api_model(
    settings: type, *, exclude: tuple[str, ...] = (), rename: dict[str, str] | None = None
) -> type[BaseModel]:
    """A strict pydantic model of the settings dataclass ``settings``: every field the API may set (not
    ``api=False``, not in ``exclude``) with its type, default, bounds and help, named as ``rename`` says."""
    hints = typing.get_type_hints(settings)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        if f.name in exclude or f.metadata.get("api") is False:
            continue
        bounds = {key: f.metadata[key] for key in BOUNDS if key in f.metadata}
        if f.default_factory is not dataclasses.MISSING:
            info = Field(default_factory=f.default_factory, description=f.metadata.get("help"), **bounds)
        else:
            info = Field(f.default, description=f.metadata.get("help"), **bounds)
        fields[(rename or {}).get(f.name, f.name)] = (hints[f.name], info)
    model: type[BaseModel] = create_model(settings.__name__ + "Fields", __base__=_Strict, **fields)
    return model


# ---- KnowLM /generate -------------------------------------------------------------------------------


_SAMPLING_NAMES = {"max_new_tokens": "max_tokens"}  # the API's name (OpenAI's) for a SamplingParams field


class GenerateParameters(api_model(SamplingParams, rename=_SAMPLING_NAMES)):  # type: ignore[misc]
    """`SamplingParams` as the API takes them (``max_tokens`` for ``max_new_tokens``)."""

    def to_sampling_params(self) -> SamplingParams:
        values = self.model_dump()
        back = {api: name for name, api in _SAMPLING_NAMES.items()}
        return SamplingParams(**{back.get(k, k): v for k, v in values.items()}).validate()


class GenerateRequest(_Strict):
    instruction: str = Field(min_length=1)
    input: str | None = None
    parameters: GenerateParameters = Field(default_factory=GenerateParameters)


class GenerateResponse(BaseModel):
    generated_text: str
    num_output_tokens_cf: int
    error: str | None = None


# ---- OpenAI-compatible ------------------------------------------------------------------------------


class StreamOptions(_Lenient):
    include_usage: bool = False


class _OpenAIRequest(_Lenient):
    """The sampling fields the completions and chat requests share."""

    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = Field(1, ge=1, le=16, description="sampled choices per prompt")
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0

    def to_sampling_params(self, max_tokens: int | None = None, choice: int = 0) -> SamplingParams:
        """Sampling parameters of choice number ``choice`` (of ``n``): a given seed becomes seed + choice,
        so the choices differ and each is reproducible."""
        if self.frequency_penalty or self.presence_penalty:
            raise InputError("frequency_penalty and presence_penalty are not supported; leave them at 0")
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return SamplingParams(
            max_new_tokens=max_tokens or self.max_tokens or 256,
            temperature=self.temperature,
            top_p=self.top_p,
            stop=stop,
            seed=None if self.seed is None else self.seed + choice,
        ).validate()


class CompletionRequest(_OpenAIRequest):
    prompt: str | list[str]
    logprobs: int | None = None
    echo: bool = False


class ChatMessage(_Lenient):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatCompletionRequest(_OpenAIRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, prompt: int, completion: int) -> Usage:
        return cls(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


FinishReason = Literal["stop", "length"]


class CompletionChoice(BaseModel):
    index: int
    text: str
    finish_reason: FinishReason | None
    logprobs: None = None


class _Envelope(BaseModel):
    """What every completion response and chunk carries around its choices."""

    id: str
    created: int
    model: str


class CompletionResponse(_Envelope):
    object: Literal["text_completion"] = "text_completion"
    choices: list[CompletionChoice]
    usage: Usage | None = None


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: FinishReason


class ChatCompletionResponse(_Envelope):
    object: Literal["chat.completion"] = "chat.completion"
    choices: list[ChatChoice]
    usage: Usage


class ChatDelta(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatChunkChoice(BaseModel):
    index: int
    delta: ChatDelta
    finish_reason: FinishReason | None


class ChatCompletionChunk(_Envelope):
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    choices: list[ChatChunkChoice]
    usage: Usage | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "knowlm"
    description: str | None = None
    """What the model is for, where users should know (the default model is made for extraction)."""


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# ---- /v1/extract ------------------------------------------------------------------------------------


class ExtractOptions(api_model(ExtractConfig, exclude=("task", "schema"))):  # type: ignore[misc]
    """`ExtractConfig` as the API takes it: every setting but the task and schema (given beside it) and
    the files a server would read."""

    def to_config(self, task: str, schema: str | None) -> ExtractConfig:
        return ExtractConfig(task=task, schema=schema, **self.model_dump()).validate()


class ExtractRequest(_Strict):
    task: str
    schema_: str | list[Any] = Field(alias="schema")
    text: str | None = None
    texts: list[str] | None = None
    options: ExtractOptions = Field(default_factory=ExtractOptions)
    parameters: GenerateParameters = Field(default_factory=GenerateParameters)
    include_outputs: bool = False


class ExtractResponse(BaseModel):
    model: str
    task: str
    results: list[dict[str, Any]]


class ErrorBody(BaseModel):
    message: str
    type: str
    code: int
