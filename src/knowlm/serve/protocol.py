"""Request and response models of the HTTP API (pydantic): KnowLM's /generate, OpenAI's /v1/*, /v1/extract."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Lenient(BaseModel):
    """OpenAI clients send fields we do not use (user, metadata, ...): accept and ignore them."""

    model_config = ConfigDict(extra="ignore")


# ---- KnowLM /generate -------------------------------------------------------------------------------


class GenerateParameters(_Strict):
    max_tokens: int = Field(256, ge=1, description="maximum new tokens")
    temperature: float = Field(0.0, ge=0, description="0 = greedy")
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0, description="0 = off")
    num_beams: int = Field(1, ge=1)
    repetition_penalty: float = Field(1.0, gt=0)
    stop: list[str] = Field(default_factory=list)
    seed: int | None = None


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


class CompletionRequest(_Lenient):
    model: str | None = None
    prompt: str | list[str]
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = Field(1, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    logprobs: int | None = None
    echo: bool = False


class ChatMessage(_Lenient):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatCompletionRequest(_Lenient):
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = Field(1, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    logprobs: bool = False


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


# ---- /v1/extract ------------------------------------------------------------------------------------


class ExtractOptions(_Strict):
    lang: Literal["auto", "zh", "en"] = "auto"
    prompt_format: str = "oneke"
    template: str = "auto"
    schema_batch_size: int | None = Field(None, ge=1)
    constrained: bool = False
    drop_ungrounded: bool = False
    max_chunk_tokens: int = Field(1024, ge=16)


class ExtractRequest(_Strict):
    task: str
    schema_: str | list[Any] = Field(alias="schema")
    text: str | None = None
    texts: list[str] | None = None
    options: ExtractOptions = Field(default_factory=ExtractOptions)
    parameters: GenerateParameters = Field(default_factory=GenerateParameters)
    include_outputs: bool = False


class ErrorBody(BaseModel):
    message: str
    type: str
    code: int
