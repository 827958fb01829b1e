"""Isolation and auth: every endpoint against every kind of caller (user A, user B, an admin,
no token, a bad token) gets exactly the answer it should; token checks take the same time
whatever the token; hostile strings are stored and returned as data; tokens never reach
the logs."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from queuelab import FakeClock, Queue
from queuelab.api import TokenBook, create_app
from tests.api.test_api import fail_to_dlq
from tests.support.apiserver import api_server

ALICE, BOB, ADMIN = "alice-token-0123456789abcdef", "bob-token-0123456789abcdef", "admin-token-0123456789abcdef"
TOKENS = f"{ALICE}:alice:user,{BOB}:bob:user,{ADMIN}:root:admin"
CALLERS: dict[str, dict[str, str]] = {
    "none": {},
    "bad": {"Authorization": "Bearer not-a-token-0123456789abcdef"},
    "malformed": {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
    "alice": {"Authorization": f"Bearer {ALICE}"},
    "bob": {"Authorization": f"Bearer {BOB}"},
    "admin": {"Authorization": f"Bearer {ADMIN}"},
}

# (method, path, body) -> expected status for: none, bad, malformed, alice (owner), bob (other user), admin.
# {pending}/{failed} are alice's jobs, made fresh for every call.
MATRIX: list[tuple[str, str, dict[str, Any] | None, tuple[int, ...]]] = [
    ("POST", "/api/submit/", {"payload": {}}, (401, 401, 401, 201, 201, 201)),
    ("POST", "/api/submit/", {"payload": {}, "user_id": "alice"}, (401, 401, 401, 201, 403, 201)),
    ("GET", "/api/status/{pending}/", None, (401, 401, 401, 200, 404, 200)),
    ("GET", "/api/explain/{pending}/", None, (401, 401, 401, 200, 404, 200)),
    ("POST", "/api/cancel/{pending}/", None, (401, 401, 401, 200, 404, 200)),
    ("POST", "/api/requeue/{failed}/", {"action": "REQUEUE"}, (401, 401, 401, 403, 404, 200)),
    ("POST", "/api/requeue/{failed}/", {"action": "FORCE_SUCCESS"}, (401, 401, 401, 403, 404, 200)),
    ("GET", "/api/jobs/", None, (401, 401, 401, 200, 200, 200)),
    ("GET", "/api/jobs/?user_id=alice", None, (401, 401, 401, 200, 403, 200)),
    ("GET", "/api/dlq/", None, (401, 401, 401, 200, 200, 200)),
    ("POST", "/api/dlq/requeue/", {}, (401, 401, 401, 403, 403, 200)),
    ("GET", "/api/limits/alice/", None, (401, 401, 401, 403, 403, 200)),
    ("PUT", "/api/limits/alice/", {"max_running": 3}, (401, 401, 401, 403, 403, 200)),
    ("GET", "/api/stats/", None, (401, 401, 401, 200, 200, 200)),
    ("GET", "/api/scale-events/", None, (401, 401, 401, 200, 200, 200)),
    ("GET", "/metrics", None, (401, 401, 401, 200, 200, 200)),
    ("GET", "/healthz", None, (200, 200, 200, 200, 200, 200)),
    ("GET", "/", None, (200, 200, 200, 200, 200, 200)),
]


@pytest.fixture
def api(queue: Queue) -> Iterator[TestClient]:
    with TestClient(create_app(queue, TokenBook.load(env=TOKENS))) as client:
        yield client


def _alice_jobs(api: TestClient, queue: Queue) -> dict[str, str]:
    failed = api.post("/api/submit/", json={"payload": {}}, headers=CALLERS["alice"]).json()["job_id"]
    fail_to_dlq(queue, failed)  # (claims, and completes, whatever is ahead of it)
    pending = api.post("/api/submit/", json={"payload": {}}, headers=CALLERS["alice"]).json()["job_id"]
    return {"pending": pending, "failed": failed}


@pytest.mark.parametrize(("method", "path", "body", "expected"), MATRIX, ids=[f"{m} {p}" for m, p, _, _ in MATRIX])
def test_every_endpoint_answers_every_caller_as_it_should(
    api: TestClient, queue: Queue, method: str, path: str, body: dict[str, Any] | None, expected: tuple[int, ...]
) -> None:
    got = {}
    for caller, headers in CALLERS.items():
        url = path.format(**_alice_jobs(api, queue))
        response = api.request(method, url, json=body, headers=headers)
        got[caller] = response.status_code
        if response.status_code == 401:
            assert response.headers.get("WWW-Authenticate") == "Bearer"
        if response.status_code >= 400 and not url.startswith("/metrics"):
            assert set(response.json()) >= {"error", "message"}, "errors are JSON naming what went wrong"
    assert got == dict(zip(CALLERS, expected, strict=True))


def test_users_only_ever_see_their_own_jobs(api: TestClient, queue: Queue) -> None:
    mine = _alice_jobs(api, queue)
    theirs = api.post("/api/submit/", json={"payload": {}}, headers=CALLERS["bob"]).json()["job_id"]
    for caller, own, other in (("alice", set(mine.values()), {theirs}), ("bob", {theirs}, set(mine.values()))):
        listed = {j["job_id"] for j in api.get("/api/jobs/", headers=CALLERS[caller]).json()["jobs"]}
        dead = {j["job_id"] for j in api.get("/api/dlq/", headers=CALLERS[caller]).json()["jobs"]}
        assert listed == own
        assert dead <= own
        assert not (listed | dead) & other
    everything = {j["job_id"] for j in api.get("/api/jobs/", headers=CALLERS["admin"]).json()["jobs"]}
    assert everything == {*mine.values(), theirs}
    # bob's failed attempts at alice's jobs changed nothing
    assert api.post(f"/api/cancel/{mine['pending']}/", headers=CALLERS["bob"]).status_code == 404
    assert queue.get(mine["pending"]).status == "PENDING"


def test_hostile_strings_are_stored_and_returned_as_data(api: TestClient, queue: Queue) -> None:
    nasty = {
        "html": "<script>alert('x')</script><img src=x onerror=alert(1)>",
        "sql": "'; DROP TABLE queuelab_jobs; --",
        "quote": 'Robert"); DELETE FROM queuelab_jobs WHERE ("1"="1',
        "unicode": "\u202e\u0000-less \U0001f4a3 \ud7ff",
    }
    made = api.post("/api/submit/", json={"payload": {"duration": 0, "note": nasty}}, headers=CALLERS["alice"])
    assert made.status_code == 201
    job_id = made.json()["job_id"]
    assert api.get(f"/api/status/{job_id}/", headers=CALLERS["alice"]).json()["payload"]["note"] == nasty
    assert queue.get(job_id).payload["note"] == nasty
    assert queue.stats().by_status["PENDING"] == 1  # the table is still there, and holds just this job


def test_token_checks_take_the_same_time_whatever_the_token() -> None:
    """The book stores SHA-256 digests and compares in constant time: a token sharing a
    long prefix with a real one is rejected no slower than a random one."""
    book = TokenBook.load(env=TOKENS)
    near = ALICE[:-1] + "X"
    far = "zzzzzzzz-unrelated-token-0000"

    def median_ns(token: str) -> float:
        samples = []
        for _ in range(7):
            started = time.perf_counter_ns()
            for _ in range(2000):
                book.lookup(token)
            samples.append(time.perf_counter_ns() - started)
        return statistics.median(samples)

    median_ns(far)  # warm up
    near_ns, far_ns, right_ns = median_ns(near), median_ns(far), median_ns(ALICE)
    assert book.lookup(near) is None
    assert book.lookup(far) is None
    assert 0.5 < near_ns / far_ns < 2.0
    assert 0.5 < right_ns / far_ns < 2.0


def test_tokens_never_reach_the_logs(sqlite_url: str, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{ALICE} alice user\n{ADMIN} root admin\n")
    wrong = "wrong-token-abcdefghijklmnop"
    log = tmp_path / "api.log"
    with api_server(sqlite_url, log, "--tokens-file", str(tokens), "--log-level", "debug") as url:
        calls: list[Callable[[], httpx.Response]] = [
            lambda: httpx.post(f"{url}/api/submit/", json={"payload": {}}, headers=CALLERS["alice"]),
            lambda: httpx.get(f"{url}/api/stats/", headers={"Authorization": f"Bearer {wrong}"}),
            lambda: httpx.get(f"{url}/api/jobs/", headers=CALLERS["admin"]),
            lambda: httpx.get(f"{url}/metrics", headers=CALLERS["admin"]),
        ]
        codes = [call().status_code for call in calls]
    text = log.read_text()
    assert codes == [201, 401, 200, 200]
    assert "serving sqlite" in text  # the server logged, at debug level...
    for secret in (ALICE, ADMIN, wrong):
        assert secret not in text  # ...and never a token


def test_a_fake_clock_keeps_the_fixture_honest(queue: Queue, clock: FakeClock) -> None:
    assert queue.clock is clock
