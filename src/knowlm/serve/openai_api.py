"""OpenAI-compatible routes: /v1/models, /v1/completions, /v1/chat/completions (with streaming and n > 1)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from knowlm.config import SamplingParams
from knowlm.engines.base import Completion
from knowlm.errors import KnowLMError
from knowlm.prompts import chat_prompt
from knowlm.serve.protocol import (
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatDelta,
    CompletionChoice,
    CompletionRequest,
    CompletionResponse,
    FinishReason,
    ModelCard,
    ModelList,
    Usage,
)
from knowlm.serve.routing import APIError, authorize, service_of, status_of
from knowlm.serve.service import Service

router = APIRouter(dependencies=[Depends(authorize)])


@router.get("/v1/models")
async def models(request: Request) -> ModelList:
    service = service_of(request)
    from knowlm.models.default import model_note

    note = model_note(service.engine.model_name)
    return ModelList(data=[ModelCard(id=service.model_name, created=service.started, description=note)])


OpenAIRequest = CompletionRequest | ChatCompletionRequest


async def _sample(
    service: Service,
    prompts: list[str],
    body: OpenAIRequest,
    max_tokens: int | None,
    request: Request,
    extra_stop: list[str] | None = None,
) -> list[list[Completion]]:
    """``body.n`` completions of every prompt: [prompt][choice]. Each choice samples with its own seed;
    all of them go to the engine in one call."""
    runs = [_params(body, max_tokens, j, extra_stop) for j in range(body.n)]
    done = await service.complete(
        [p for p in prompts for _ in runs], [r for _ in prompts for r in runs], request.is_disconnected
    )
    return [done[i * body.n : (i + 1) * body.n] for i in range(len(prompts))]


def _params(
    body: OpenAIRequest, max_tokens: int | None, choice: int, extra_stop: list[str] | None
) -> SamplingParams:
    params = body.to_sampling_params(max_tokens, choice)
    return params.replace(stop=[*params.stop, *extra_stop]) if extra_stop else params


@router.post("/v1/completions", response_model=None)
async def completions(body: CompletionRequest, request: Request) -> CompletionResponse | StreamingResponse:
    service = service_of(request)
    if body.echo:
        raise APIError(400, "echo is not supported")
    if body.logprobs:
        raise APIError(400, "logprobs are not supported")
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if not prompts:
        raise APIError(400, "prompt must not be empty")
    rid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
    if body.stream:
        if len(prompts) != 1:
            raise APIError(400, "streaming takes one prompt")

        def chunk(index: int, text: str, finish: FinishReason | None) -> dict[str, Any]:
            choice = CompletionChoice(index=index, text=text, finish_reason=finish)
            out = CompletionResponse(id=rid, created=created, model=service.model_name, choices=[choice])
            return out.model_dump(exclude={"usage"})

        return _sse(service, prompts[0], [_params(body, None, j, None) for j in range(body.n)], chunk, body)
    done = await _sample(service, prompts, body, None, request)
    return CompletionResponse(
        id=rid,
        created=created,
        model=service.model_name,
        choices=[
            CompletionChoice(index=i * body.n + j, text=c.text, finish_reason=c.finish_reason)
            for i, row in enumerate(done)
            for j, c in enumerate(row)
        ],
        usage=_usage(done),
    )


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    body: ChatCompletionRequest, request: Request
) -> ChatCompletionResponse | StreamingResponse:
    service = service_of(request)
    if body.logprobs:
        raise APIError(400, "logprobs are not supported")
    messages = [m.model_dump() for m in body.messages]
    if messages[-1]["role"] != "user":
        raise APIError(400, "the last message must come from the user")
    prompt, markers = chat_prompt(service.engine.render_chat, messages)
    max_tokens = body.max_completion_tokens or body.max_tokens
    rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    if body.stream:

        def chunk(index: int, text: str | None, finish: FinishReason | None) -> dict[str, Any]:
            delta = (
                ChatDelta(role="assistant", content="") if text is None else ChatDelta(content=text or None)
            )
            choice = ChatChunkChoice(index=index, delta=delta, finish_reason=finish)
            out = ChatCompletionChunk(id=rid, created=created, model=service.model_name, choices=[choice])
            data = out.model_dump(exclude={"usage"})
            data["choices"][0]["delta"] = delta.model_dump(exclude_none=True)
            return data

        runs = [_params(body, max_tokens, j, markers) for j in range(body.n)]
        return _sse(service, prompt, runs, chunk, body, chat=True)
    (row,) = await _sample(service, [prompt], body, max_tokens, request, markers)
    return ChatCompletionResponse(
        id=rid,
        created=created,
        model=service.model_name,
        choices=[
            ChatChoice(index=j, message=AssistantMessage(content=c.text), finish_reason=c.finish_reason)
            for j, c in enumerate(row)
        ],
        usage=_usage([row]),
    )


def _usage(done: list[list[Completion]]) -> Usage:
    """Prompt tokens once per prompt (as OpenAI counts them), completion tokens of every choice."""
    return Usage.of(
        sum(row[0].prompt_tokens for row in done), sum(c.completion_tokens for r in done for c in r)
    )


def _sse(
    service: Service,
    prompt: str,
    runs: list[SamplingParams],
    chunk: Callable[[int, Any, FinishReason | None], dict[str, Any]],
    body: OpenAIRequest,
    *,
    chat: bool = False,
) -> StreamingResponse:
    """Server-sent events in OpenAI's chunk format, one choice after another, ending with ``data: [DONE]``."""
    prompt_tokens = service.check_prompt(prompt)
    service.check_max_tokens(runs[0].max_new_tokens)
    include_usage = body.stream_options is not None and body.stream_options.include_usage

    def event(data: dict[str, Any]) -> str:
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    async def events() -> AsyncIterator[str]:
        completion = 0
        for index, params in enumerate(runs):
            if chat:
                yield event(chunk(index, None, None))  # the assistant role comes first
            text: list[str] = []
            try:
                async for piece in service.stream(prompt, params):
                    text.append(piece)
                    yield event(chunk(index, piece, None))
            except KnowLMError as exc:
                status, kind = status_of(exc)
                yield event({"error": {"message": str(exc), "type": kind, "code": status}})
                return
            tokens = service.completion_tokens("".join(text))
            completion += tokens
            yield event(chunk(index, "", "length" if tokens >= params.max_new_tokens else "stop"))
        if include_usage:
            final = chunk(0, "", None)
            final["choices"], final["usage"] = [], Usage.of(prompt_tokens, completion).model_dump()
            yield event(final)
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
