"""What every route module shares: the service of the running app, API-key checks, the API error."""

from __future__ import annotations

import secrets

from fastapi import Request

from knowlm.errors import InputError
from knowlm.serve.batching import QueueFullError
from knowlm.serve.service import Service


class APIError(Exception):
    """An HTTP error with OpenAI's error shape (status, message, type)."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


def service_of(request: Request) -> Service:
    """The `Service` the app was created with."""
    service: Service = request.app.state.service
    return service


async def authorize(request: Request) -> None:
    """With --api-key set, every guarded route needs 'Authorization: Bearer KEY' (or X-API-Key)."""
    key = service_of(request).config.api_key
    if not key:
        return
    header = request.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
    if not secrets.compare_digest(token.encode(), key.encode()):
        raise APIError(
            401, "missing or wrong API key: send 'Authorization: Bearer KEY'", "authentication_error"
        )


def status_of(exc: BaseException) -> tuple[int, str]:
    """The HTTP status and OpenAI error type of an exception."""
    if isinstance(exc, APIError):
        return exc.status, exc.kind
    if isinstance(exc, QueueFullError):
        return 503, "server_overloaded"
    if isinstance(exc, InputError):
        return 400, "invalid_request_error"
    return 500, "server_error"
