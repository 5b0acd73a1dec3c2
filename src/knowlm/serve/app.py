"""The FastAPI app: thin routes over `Service`. One error shape everywhere:
``{"error": {"message", "type", "code"}}`` (KnowLM's /generate keeps its own ``error`` field)."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from knowlm.config import SamplingParams
from knowlm.errors import InputError, KnowLMError
from knowlm.prompts import AlpacaTemplate, chat_prompt
from knowlm.serve.batching import QueueFullError
from knowlm.serve.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    ExtractRequest,
    GenerateRequest,
    GenerateResponse,
)
from knowlm.serve.service import ClientGoneError, Service


class APIError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


def _error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "code": status}}
    return JSONResponse(body, status_code=status, headers=headers)


def _status_of(exc: BaseException) -> tuple[int, str]:
    if isinstance(exc, APIError):
        return exc.status, exc.kind
    if isinstance(exc, QueueFullError):
        return 503, "server_overloaded"
    if isinstance(exc, InputError):
        return 400, "invalid_request_error"
    return 500, "server_error"


def _validation_message(exc: RequestValidationError) -> str:
    problems = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            return f"the request body is not valid JSON: {err.get('ctx', {}).get('error', 'parse error')}"
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        problems.append(f"{where or 'body'}: {err.get('msg')}")
    return "invalid request: " + "; ".join(problems)


class _BodyTooLarge(Exception):
    pass


class BodyGuard:
    """ASGI middleware: refuse bodies larger than ``limit`` bytes with 413 (before reading them whole),
    and read every POST body as JSON, whatever its content type (``curl -d`` sends a form type)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if scope["method"] == "POST" and b"json" not in headers.get(b"content-type", b""):
            headers[b"content-type"] = b"application/json"
            scope = {**scope, "headers": list(headers.items())}
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await self._refuse(send)
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _BodyTooLarge:
            await self._refuse(send)

    async def _refuse(self, send: Any) -> None:
        response = _error(413, f"the request body exceeds {self.limit} bytes", "request_too_large")
        await send({"type": "http.response.start", "status": 413, "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body})


def create_app(service: Service) -> FastAPI:
    config = service.config
    app = FastAPI(title="KnowLM API", version="1", docs_url="/docs", redoc_url=None)

    async def authorize(request: Request) -> None:
        if not config.api_key:
            return
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
        if not secrets.compare_digest(token.encode(), config.api_key.encode()):
            raise APIError(
                401, "missing or wrong API key: send 'Authorization: Bearer KEY'", "authentication_error"
            )

    @app.middleware("http")
    async def observe(request: Request, call_next: Any) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        name = getattr(route, "path", "unmatched")
        service.metrics.requests.labels(name, str(response.status_code)).inc()
        service.metrics.latency.labels(name).observe(time.perf_counter() - start)
        return response

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        message = _validation_message(exc)
        if request.url.path == "/generate":
            return JSONResponse(
                GenerateResponse(generated_text="", num_output_tokens_cf=0, error=message).model_dump(), 400
            )
        return _error(400, message, "invalid_request_error")

    @app.exception_handler(APIError)
    @app.exception_handler(KnowLMError)
    @app.exception_handler(ClientGoneError)
    @app.exception_handler(Exception)
    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, ClientGoneError):
            return _error(499, "client closed the request", "client_closed")
        status, kind = _status_of(exc)
        message = (
            exc.message
            if isinstance(exc, APIError)
            else str(exc)
            if isinstance(exc, KnowLMError)
            else (f"internal error: {type(exc).__name__}")
        )
        headers = {"Retry-After": "1"} if status == 503 else None
        if request.url.path == "/generate" and status != 401:
            body = GenerateResponse(generated_text="", num_output_tokens_cf=0, error=message).model_dump()
            return JSONResponse(body, status_code=status, headers=headers)
        return _error(status, message, kind, headers)

    guarded = [Depends(authorize)]

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": service.model_name, "engine": service.engine.name}

    @app.get("/metrics", dependencies=guarded)
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type="text/plain; version=0.0.4")

    # -- KnowLM ---------------------------------------------------------------------------------

    @app.post("/generate", dependencies=guarded)
    async def generate(body: GenerateRequest, request: Request) -> GenerateResponse:
        p = body.parameters
        params = SamplingParams(
            max_new_tokens=p.max_tokens,
            temperature=p.temperature,
            top_p=p.top_p,
            top_k=p.top_k,
            num_beams=p.num_beams,
            repetition_penalty=p.repetition_penalty,
            stop=p.stop,
            seed=p.seed,
        ).validate()
        prompt = AlpacaTemplate().format(body.instruction, body.input)
        (done,) = await service.complete([prompt], params, request.is_disconnected)
        return GenerateResponse(generated_text=done.text, num_output_tokens_cf=done.completion_tokens)

    # -- OpenAI-compatible ----------------------------------------------------------------------

    @app.get("/v1/models", dependencies=guarded)
    async def models() -> dict[str, Any]:
        card = {"id": service.model_name, "object": "model", "created": service.started, "owned_by": "knowlm"}
        return {"object": "list", "data": [card]}

    def openai_params(
        body: CompletionRequest | ChatCompletionRequest, max_tokens: int | None
    ) -> SamplingParams:
        if body.n != 1:
            raise APIError(400, "n must be 1: this server returns one choice per prompt")
        if body.frequency_penalty or body.presence_penalty:
            raise APIError(400, "frequency_penalty and presence_penalty are not supported; leave them at 0")
        if body.logprobs:
            raise APIError(400, "logprobs are not supported")
        stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
        return SamplingParams(
            max_new_tokens=max_tokens or 256,
            temperature=body.temperature,
            top_p=body.top_p,
            stop=stop,
            seed=body.seed,
        ).validate()

    @app.post("/v1/completions", dependencies=guarded)
    async def completions(body: CompletionRequest, request: Request) -> Any:
        if body.echo:
            raise APIError(400, "echo is not supported")
        params = openai_params(body, body.max_tokens)
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if not prompts:
            raise APIError(400, "prompt must not be empty")
        rid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        if body.stream:
            if len(prompts) != 1:
                raise APIError(400, "streaming takes one prompt")
            usage = body.stream_options is not None and body.stream_options.include_usage

            def chunk(text: str, finish: str | None) -> dict[str, Any]:
                return {
                    "id": rid,
                    "object": "text_completion",
                    "created": created,
                    "model": service.model_name,
                    "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}],
                }

            return _sse(service, prompts[0], params, chunk, rid, created, usage, chat=False)
        done = await service.complete(prompts, params, request.is_disconnected)
        return {
            "id": rid,
            "object": "text_completion",
            "created": created,
            "model": service.model_name,
            "choices": [
                {"index": i, "text": c.text, "finish_reason": c.finish_reason, "logprobs": None}
                for i, c in enumerate(done)
            ],
            "usage": _usage(sum(c.prompt_tokens for c in done), sum(c.completion_tokens for c in done)),
        }

    @app.post("/v1/chat/completions", dependencies=guarded)
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
        params = openai_params(body, body.max_completion_tokens or body.max_tokens)
        messages = [m.model_dump() for m in body.messages]
        if messages[-1]["role"] != "user":
            raise APIError(400, "the last message must come from the user")
        prompt, stops = chat_prompt(service.engine.render_chat, messages)
        params = params.replace(stop=[*params.stop, *stops])
        rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if body.stream:
            usage = body.stream_options is not None and body.stream_options.include_usage

            def chunk(text: str, finish: str | None) -> dict[str, Any]:
                delta = {"content": text} if text else {}
                return {
                    "id": rid,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": service.model_name,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                }

            return _sse(service, prompt, params, chunk, rid, created, usage, chat=True)
        (done,) = await service.complete([prompt], params, request.is_disconnected)
        return {
            "id": rid,
            "object": "chat.completion",
            "created": created,
            "model": service.model_name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": done.text},
                    "finish_reason": done.finish_reason,
                }
            ],
            "usage": _usage(done.prompt_tokens, done.completion_tokens),
        }

    # -- extraction -----------------------------------------------------------------------------

    @app.post("/v1/extract", dependencies=guarded)
    async def extract(body: ExtractRequest) -> dict[str, Any]:
        from knowlm.ie.extractor import Extractor

        texts = body.texts if body.texts is not None else [body.text] if body.text is not None else []
        if not texts or (body.text is not None and body.texts is not None):
            raise APIError(400, "give either 'text' or 'texts' (a non-empty list)")
        p = body.parameters
        params = SamplingParams(
            max_new_tokens=service.check_max_tokens(p.max_tokens),
            temperature=p.temperature,
            top_p=p.top_p,
            top_k=p.top_k,
            repetition_penalty=p.repetition_penalty,
            stop=p.stop,
            seed=p.seed,
        ).validate()
        extractor = Extractor(
            service.engine, body.task, body.schema_, params=params, **body.options.model_dump()
        )
        for text in texts:
            service.check_prompt(text)
        results = await run_in_threadpool(extractor.extract_many, texts)
        return {
            "model": service.model_name,
            "task": extractor.task.name,
            "results": [
                {"text": t, **r.to_dict(outputs=body.include_outputs)}
                for t, r in zip(texts, results, strict=True)
            ],
        }

    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=config.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key"],
        )
    app.add_middleware(BodyGuard, limit=config.max_body_bytes)
    app.state.service = service
    return app


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _sse(
    service: Service,
    prompt: str,
    params: SamplingParams,
    chunk: Any,
    rid: str,
    created: int,
    include_usage: bool,
    *,
    chat: bool,
) -> StreamingResponse:
    """Server-sent events in OpenAI's chunk format, ending with ``data: [DONE]``."""
    prompt_tokens = service.check_prompt(prompt)
    service.check_max_tokens(params.max_new_tokens)

    async def events() -> AsyncIterator[str]:
        text: list[str] = []
        if chat:
            first = chunk("", None)
            first["choices"][0]["delta"] = {"role": "assistant", "content": ""}
            yield f"data: {json.dumps(first, ensure_ascii=False)}\n\n"
        try:
            async for piece in service.stream(prompt, params):
                text.append(piece)
                yield f"data: {json.dumps(chunk(piece, None), ensure_ascii=False)}\n\n"
        except KnowLMError as exc:
            status, kind = _status_of(exc)
            yield f"data: {json.dumps({'error': {'message': str(exc), 'type': kind, 'code': status}})}\n\n"
            return
        completion = service.completion_tokens("".join(text))
        finish = "length" if completion >= params.max_new_tokens else "stop"
        yield f"data: {json.dumps(chunk('', finish), ensure_ascii=False)}\n\n"
        if include_usage:
            final = {
                "id": rid,
                "object": "chat.completion.chunk" if chat else "text_completion",
                "created": created,
                "model": service.model_name,
                "choices": [],
                "usage": _usage(prompt_tokens, completion),
            }
            yield f"data: {json.dumps(final)}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
