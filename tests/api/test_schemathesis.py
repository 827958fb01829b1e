"""Property-based tests of the HTTP API against its own OpenAPI schema (schemathesis).

Schemathesis reads ``/openapi.json`` from the app in-process, generates requests for every
operation (valid and invalid ones), and checks that the server never answers 5xx, that every
answer's status code, content type and body are the ones the schema documents. It runs twice:
on a development server (no tokens: everyone is an admin) and on one with tokens, as an admin.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from queuelab import Queue
from queuelab.api import TokenBook, create_app

ADMIN_TOKEN = "b" * 20
TOKENS = f"{'a' * 20}:alice:user,{ADMIN_TOKEN}:root:admin"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# A few dozen examples per operation keep the file well under a minute on two cores. No example
# database: a failure prints the exact request (as curl) to reproduce it.
FUZZ = settings(
    max_examples=int(os.environ.get("QUEUELAB_FUZZ_EXAMPLES", "25")),  # make fuzz: a few thousand in all
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)

# parametrize() needs the schema at import time, so the apps (and their databases) are made here
# and torn down by the module fixture below.
_FOLDER = Path(tempfile.mkdtemp(prefix="queuelab-schemathesis-"))
_QUEUES = [Queue(f"sqlite:///{_FOLDER / 'open.db'}"), Queue(f"sqlite:///{_FOLDER / 'secured.db'}")]


def _schema(app: FastAPI) -> schemathesis.schemas.BaseSchema:
    return schemathesis.openapi.from_asgi("/openapi.json", app)


open_schema = _schema(create_app(_QUEUES[0]))
secured_schema = _schema(create_app(_QUEUES[1], TokenBook.load(env=TOKENS)))


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    for q in _QUEUES:
        q.close()
    shutil.rmtree(_FOLDER, ignore_errors=True)


@open_schema.parametrize()
@FUZZ
def test_the_api_keeps_its_schema(case: Case[Any]) -> None:
    case.call_and_validate(checks=CHECKS)


@secured_schema.parametrize()
@FUZZ
def test_the_api_keeps_its_schema_with_tokens(case: Case[Any]) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, checks=CHECKS)


# -- what the fuzzing found, pinned down so that it fails every time, not one run in three ----------


def test_an_idempotent_replay_answers_with_a_documented_status() -> None:
    """The second submit with the same Idempotency-Key returns the earlier job with 200."""
    submit = open_schema["/api/submit/"]["POST"]
    for _ in range(2):
        case = submit.Case(body={"user_id": "alice"}, headers={"Idempotency-Key": "replay-1"})
        case.call_and_validate(checks=CHECKS)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_active", 2**31),  # past PostgreSQL's INTEGER
        ("max_running", 2**63),  # past SQLite's INTEGER
        ("rate_limit", f"{2**63}/second"),
    ],
)
def test_limits_the_store_cannot_hold_are_refused_not_a_server_error(db_url: str, field: str, value: object) -> None:
    """Either the value is kept exactly, or the caller gets a 4xx naming the field: never a 500,
    and never a 503 that blames the database for the caller's number."""
    q = Queue(db_url)
    try:
        with TestClient(create_app(q), raise_server_exceptions=False) as client:
            response = client.put("/api/limits/alice/", json={field: value})
            if response.status_code == 200:
                kept = client.get("/api/limits/alice/").json()[field]
                assert kept == (value if field != "rate_limit" else f"{2**63}/1s")
            else:
                assert response.status_code in (400, 422), response.text
                assert response.json()["field"] == field
    finally:
        q.close()
