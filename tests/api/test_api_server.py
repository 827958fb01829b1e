"""The prototype README's curl flows, verbatim, against a real API server process and real
worker processes, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.support.apiserver import api_server
from tests.support.helpers import WorkerProcess, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[str]:
    with api_server(db_url, tmp_path / "api.log") as base:
        yield base


def curl(method: str, url: str, body: str | None = None) -> httpx.Response:
    """As the prototype's README does it: JSON text with a Content-Type header."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    return httpx.request(method, url, content=body, headers=headers, timeout=10)


def status_of(base: str, job_id: str) -> dict[str, object]:
    response = curl("GET", f"{base}/api/status/{job_id}/")
    assert response.status_code == 200
    return dict(response.json())


def test_the_prototype_readme_flows(server: str, db_url: str, tmp_path: Path) -> None:
    worker = WorkerProcess(db_url, tmp_path / "worker.log", mode="process", concurrency=2)
    try:
        ok = curl("POST", f"{server}/api/submit/", '{"user_id": "alice", "payload": {"duration": 5}}')
        failing = curl(
            "POST", f"{server}/api/submit/", '{"user_id": "bob", "payload": {"fail_simulation": true, "duration": 1}}'
        )
        assert (ok.status_code, failing.status_code) == (201, 201)
        ok_id, failing_id = ok.json()["job_id"], failing.json()["job_id"]

        wait_until(lambda: status_of(server, ok_id)["status"] == "COMPLETED", timeout=60, what="the 5 s job")
        assert status_of(server, ok_id)["result"] == {"slept": 5}
        wait_until(lambda: status_of(server, failing_id)["status"] == "FAILED", timeout=60, what="the DLQ")
        dead = status_of(server, failing_id)
        assert dead["attempts"] == 4
        assert isinstance(dead["errors"], list)
        assert len(dead["errors"]) == 4

        requeued = curl("POST", f"{server}/api/requeue/{failing_id}/", '{"action": "REQUEUE"}')
        assert (requeued.status_code, requeued.json()["status"]) == (200, "PENDING")
        wait_until(lambda: status_of(server, failing_id)["status"] == "FAILED", timeout=60, what="the DLQ again")
        errors = status_of(server, failing_id)["errors"]
        assert isinstance(errors, list)
        assert len(errors) == 8

        forced = curl("POST", f"{server}/api/requeue/{failing_id}/", '{"action": "FORCE_SUCCESS"}')
        assert (forced.status_code, forced.json()["status"], forced.json()["forced"]) == (200, "COMPLETED", True)
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0, worker.output()
    finally:
        worker.stop()


def submit_as(base: str, user: str) -> httpx.Response:
    return curl("POST", f"{base}/api/submit/", f'{{"user_id": "{user}", "payload": {{"duration": 0}}}}')


def test_the_server_limits_each_user_by_default(sqlite_url: str, tmp_path: Path) -> None:
    """With no limit configured anywhere, `python -m queuelab.api` caps a user at 10
    active jobs and 60 submissions a minute (no worker runs here, so every job stays active)."""
    with api_server(sqlite_url, tmp_path / "api.log", QUEUELAB_RATE_LIMIT="", QUEUELAB_MAX_ACTIVE_PER_USER="") as base:
        assert [submit_as(base, "alice").status_code for _ in range(10)] == [201] * 10
        capped = submit_as(base, "alice")
        assert (capped.status_code, capped.json()["error"]) == (429, "quota_exceeded")
        assert submit_as(base, "bob").status_code == 201  # per user
    with api_server(
        sqlite_url.replace(".db", "-rate.db"),
        tmp_path / "api2.log",
        "--max-active",
        "none",
        QUEUELAB_RATE_LIMIT="",
        QUEUELAB_MAX_ACTIVE_PER_USER="",
    ) as base:
        assert all(submit_as(base, "carol").status_code == 201 for _ in range(60))
        limited = submit_as(base, "carol")
        assert (limited.status_code, limited.json()["error"]) == (429, "rate_limited")
        assert int(limited.headers["Retry-After"]) >= 1


def test_flags_change_or_switch_off_the_servers_limits(sqlite_url: str, tmp_path: Path) -> None:
    with api_server(
        sqlite_url, tmp_path / "api.log", "--max-active", "2", QUEUELAB_RATE_LIMIT="", QUEUELAB_MAX_ACTIVE_PER_USER=""
    ) as base:
        assert [submit_as(base, "dan").status_code for _ in range(3)] == [201, 201, 429]
    with api_server(
        sqlite_url,
        tmp_path / "api2.log",
        "--max-active",
        "0",
        "--rate-limit",
        "none",
        QUEUELAB_RATE_LIMIT="",
        QUEUELAB_MAX_ACTIVE_PER_USER="",
    ) as base:
        assert all(submit_as(base, "dan").status_code == 201 for _ in range(70))  # 2 stored before: 72 active


def test_the_server_logs_json_lines_with_access_and_job_events_and_no_secret(postgres_url: str, tmp_path: Path) -> None:
    """`--log-format json` at debug: every line is a JSON object; each request has an access
    line; a job's completion has its fields; neither the token nor the database password
    appears anywhere (trust auth accepts any password, so the URL can carry one)."""
    token, password = "sekrit-token-0123456789", "hunter2-password"
    url = sa.make_url(postgres_url).set(password=password).render_as_string(hide_password=False)
    log = tmp_path / "api.log"
    env = {"QUEUELAB_API_TOKENS": f"{token}:alice:admin"}
    with api_server(url, log, "--log-level", "debug", "--log-format", "json", workers=1, mode="thread", **env) as base:
        headers = {"Authorization": f"Bearer {token}"}
        job = httpx.post(f"{base}/api/submit/", json={"payload": {"duration": 0}}, headers=headers).json()["job_id"]
        done = httpx.get(f"{base}/api/status/{job}/", params={"wait": 60}, headers=headers).json()
        assert done["status"] == "COMPLETED"
    text = log.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert any(line["logger"] == "uvicorn.access" and "POST /api/submit/" in line["message"] for line in lines)
    assert any(line.get("job_id") == job and "completed" in line["message"] for line in lines)
    assert token not in text
    assert password not in text
