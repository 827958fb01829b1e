"""Every error the API returns is JSON with a code and a message a person can act on:
library exceptions map to 4xx (503 for the database), never to a bare 500."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from queuelab.errors import (
    InvalidArgument,
    InvalidTransition,
    JobNotFound,
    PayloadTooLarge,
    QuotaExceeded,
    RateLimited,
    StoreError,
)

log = logging.getLogger("queuelab.api")

QUOTA_RETRY_AFTER_SECONDS = 5


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error(status: int, code: str, message: str, field: str | None = None, **headers: str) -> JSONResponse:
    body: dict[str, Any] = {"error": code, "message": message}
    if field is not None:
        body["field"] = field
    return JSONResponse(body, status_code=status, headers=headers or None)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error(exc.status, exc.code, exc.message, **(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = exc.errors()
        if any(p.get("type") == "json_invalid" for p in problems):
            return error(400, "malformed_json", "the request body is not valid JSON")
        first = problems[0] if problems else {}
        if tuple(first.get("loc", ())) == ("body",) and first.get("type") == "missing":
            return error(400, "malformed_json", "the request body is empty; send a JSON object")
        where = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
        field = ".".join(where) or None
        message = f"{field}: {first.get('msg', 'invalid')}" if field else str(first.get("msg", "invalid request"))
        return error(422, "invalid_field", message, field)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            # FastAPI's answer when the JSON parser itself gives up: bad UTF-8, or nesting too deep
            return error(400, "malformed_json", "the request body is not valid JSON (UTF-8, nested at most ~1000 deep)")
        codes = {404: "not_found", 405: "method_not_allowed", 413: "too_large", 401: "unauthorized"}
        return error(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail))

    @app.exception_handler(PayloadTooLarge)
    async def too_large(_: Request, exc: PayloadTooLarge) -> JSONResponse:
        return error(413, "payload_too_large", str(exc), "payload")

    @app.exception_handler(InvalidArgument)
    async def bad_argument(_: Request, exc: InvalidArgument) -> JSONResponse:
        message = str(exc)
        return error(400, "bad_request", message, _field_of(message))

    @app.exception_handler(JobNotFound)
    async def not_found(_: Request, exc: JobNotFound) -> JSONResponse:
        return error(404, "not_found", str(exc))

    @app.exception_handler(InvalidTransition)
    async def conflict(_: Request, exc: InvalidTransition) -> JSONResponse:
        return error(409, "conflict", str(exc))

    @app.exception_handler(RateLimited)
    async def rate_limited(_: Request, exc: RateLimited) -> JSONResponse:
        return error(429, "rate_limited", str(exc), **{"Retry-After": str(max(1, math.ceil(exc.retry_after)))})

    @app.exception_handler(QuotaExceeded)
    async def quota(_: Request, exc: QuotaExceeded) -> JSONResponse:
        return error(429, "quota_exceeded", str(exc), **{"Retry-After": str(QUOTA_RETRY_AFTER_SECONDS)})

    @app.exception_handler(StoreError)
    async def store_down(_: Request, exc: StoreError) -> JSONResponse:
        log.error("store error: %s", exc)
        return error(
            503, "store_unavailable", "the job store is unavailable; try again shortly", **{"Retry-After": "1"}
        )

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return error(500, "internal_error", "an unexpected error occurred; it has been logged")


def _field_of(message: str) -> str | None:
    """Library messages start with the argument's name: 'priority must be ...'."""
    head = message.split(" ", 1)[0].rstrip(":")
    if head == "payload" or head.startswith("payload."):
        return head
    known = (
        "user_id",
        "queue",
        "priority",
        "delay",
        "max_retries",
        "task",
        "status",
        "limit",
        "rate_limit",
        "max_active",
        "max_running",
        "weight",
        "idempotency_key",
        "result",
    )
    if head in known:
        return "delay_seconds" if head == "delay" else head
    if message.startswith("unknown task"):
        return "task"
    return None
