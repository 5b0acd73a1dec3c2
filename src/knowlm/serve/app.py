"""The FastAPI app: routes by API (`knowlm_api`, `openai_api`) over `Service`. One error shape everywhere:
``{"error": {"message", "type", "code"}}`` (KnowLM's /generate keeps its own ``error`` field)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from knowlm.errors import KnowLMError
from knowlm.serve import knowlm_api, openai_api
from knowlm.serve.protocol import GenerateResponse
from knowlm.serve.routing import APIError, authorize, status_of
from knowlm.serve.service import ClientGoneError, Service


def _error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "code": status}}
    return JSONResponse(body, status_code=status, headers=headers)


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
            await self.app(scope, receive, send)
            return
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
    """The API app over ``service``: KnowLM's routes (`knowlm_api`), OpenAI's (`openai_api`), health and
    metrics, with one error shape, optional API key, CORS and a request size limit."""
    config = service.config
    app = FastAPI(title="KnowLM API", version="1", docs_url="/docs", redoc_url=None)

    @app.middleware("http")
    async def observe(request: Request, call_next: Any) -> Response:
        start = time.perf_counter()
        response: Response = await call_next(request)
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
        status, kind = status_of(exc)
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

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": service.model_name, "engine": service.engine.name}

    @app.get("/metrics", dependencies=[Depends(authorize)])
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type="text/plain; version=0.0.4")

    app.include_router(knowlm_api.router)
    app.include_router(openai_api.router)
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
