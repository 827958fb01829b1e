"""Every error the API returns is JSON with a code and a message a person can act on:
library exceptions map to 4xx (503 for the database), never to a bare 500.

A bad field is 422 when the request is not the schema's shape and 400 when a value of the
right type is out of bounds, whichever layer (pydantic or the library) catches it; the rule
is written out in :mod:`queuelab.api.schemas`."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
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
    ScheduleNotFound,
    StoreError,
)

log = logging.getLogger("queuelab.api")

QUOTA_RETRY_AFTER_SECONDS = 5

# pydantic's error types for a value of the right JSON type that breaks a bound the schema
# declares (from queuelab.bounds), with what is allowed in words: answered 400, like the
# library's own checks of the same bounds. Every other type is the request's shape: 422.
OUT_OF_BOUNDS = {
    "greater_than": "> {gt}",
    "greater_than_equal": ">= {ge}",
    "less_than": "< {lt}",
    "less_than_equal": "<= {le}",
    "finite_number": "a finite number",
    "string_too_short": "a string of at least {min_length} character(s)",
    "string_too_long": "a string of at most {max_length} characters",
    "string_pattern_mismatch": "a string matching {pattern}",
    "string_unicode": "valid Unicode text (no lone surrogates)",
    "literal_error": "{expected}",
    "enum": "{expected}",
}
SHOWN_CHARACTERS = 60  # of a bad value, in a message


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
        return _invalid(exc.errors())

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            # FastAPI's answer when the JSON parser itself gives up: bad UTF-8, or nesting too deep
            return error(400, "malformed_json", "the request body is not valid JSON (UTF-8, nested at most ~1000 deep)")
        codes = {404: "not_found", 405: "method_not_allowed", 413: "too_large", 401: "unauthorized"}
        # Its headers too: a 405 names the methods the path allows (Allow), as HTTP asks.
        return error(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail), **(exc.headers or {}))

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

    @app.exception_handler(ScheduleNotFound)
    async def no_schedule(_: Request, exc: ScheduleNotFound) -> JSONResponse:
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


def _invalid(problems: Sequence[Any]) -> JSONResponse:
    """pydantic's answer, in ours: not JSON 400; out of bounds 400; not the shape 422."""
    if any(p.get("type") == "json_invalid" for p in problems):
        return error(400, "malformed_json", "the request body is not valid JSON")
    first = problems[0] if problems else {}
    if tuple(first.get("loc", ())) == ("body",) and first.get("type") == "missing":
        return error(400, "malformed_json", "the request body is empty; send a JSON object")
    shape = [p for p in problems if p.get("type") not in OUT_OF_BOUNDS]
    if problems and not shape:
        field = _field_at(first)
        return error(400, "bad_request", _out_of_bounds(field, first), field)
    problem = shape[0] if shape else {}
    field = _field_at(problem)
    message = f"{field}: {problem.get('msg', 'invalid')}" if field else str(problem.get("msg", "invalid request"))
    return error(422, "invalid_field", message, field)


def _field_at(problem: Any) -> str | None:
    where = [str(part) for part in problem.get("loc", ()) if part not in ("body", "query", "path", "header")]
    return ".".join(where) or None


def _out_of_bounds(field: str | None, problem: Any) -> str:
    """The house form: 'priority must be <= 9, got 12'."""
    try:
        allowed = OUT_OF_BOUNDS[problem["type"]].format(**problem.get("ctx", {}))
    except (KeyError, IndexError):
        allowed = str(problem.get("msg", "allowed"))
    return f"{field or 'the request'} must be {allowed}, got {_shown(problem.get('input'))}"


def _shown(value: object) -> str:
    text = repr(value)
    if len(text) <= SHOWN_CHARACTERS:
        return text
    size = f" ({len(value)} characters)" if isinstance(value, str) else ""
    return f"{text[:SHOWN_CHARACTERS]}...{size}"


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
