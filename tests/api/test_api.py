"""The HTTP API in-process (Starlette's TestClient), on each database: the prototype's
endpoints, bad input, idempotency, limits, who may do what, metrics."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from queuelab import FakeClock, JobStatus, Queue, bounds
from queuelab.api import TokenBook, create_app
from queuelab.models import AttemptOutcome
from queuelab.policy import Complete, DeadLetter, Errored, Retry
from queuelab.testing import internals

ALICE, BOB, ROOT_TOKEN = "alice-token-0123456789", "bob-token-0123456789", "root-token-0123456789"
TOKENS = f"{ALICE}:alice:user,{BOB}:bob:user,{ROOT_TOKEN}:root:admin"


@pytest.fixture
def client(queue: Queue) -> Iterator[TestClient]:
    with TestClient(create_app(queue)) as c:
        yield c


@pytest.fixture
def secured(queue: Queue) -> Iterator[TestClient]:
    with TestClient(create_app(queue, TokenBook.load(env=TOKENS))) as c:
        yield c


def as_(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def fail_to_dlq(q: Queue, job_id: str) -> None:
    """Claim jobs one by one (completing the others) until ``job_id``, then dead-letter it."""
    while True:
        (lease,) = internals(q).leases.claim("w", None, 1, q.clock.now())
        if lease.job_id == job_id:
            break
        internals(q).leases.ack(lease, Complete(None), "w", q.clock.now())
    error = Errored(AttemptOutcome.FAILED, "SimulatedFailure", "boom")
    internals(q).leases.ack(lease, DeadLetter(error, "test"), "w", q.clock.now())


def test_the_prototype_flow(client: TestClient, queue: Queue) -> None:
    made = client.post("/api/submit/", json={"user_id": "alice", "payload": {"duration": 5}})
    assert made.status_code == 201
    assert made.json()["status"] == "PENDING"
    job_id = made.json()["job_id"]
    status = client.get(f"/api/status/{job_id}/").json()
    assert (status["job_id"], status["user_id"], status["task"], status["attempts"]) == (job_id, "alice", "simulate", 0)
    assert status["payload"] == {"duration": 5}
    assert client.get(f"/api/status/{job_id}").status_code == 200  # without the trailing slash too

    failing = client.post("/api/submit", json={"user_id": "bob", "payload": {"fail_simulation": True, "duration": 1}})
    failed_id = failing.json()["job_id"]
    fail_to_dlq(queue, failed_id)
    dead = client.get(f"/api/status/{failed_id}/").json()
    assert dead["status"] == "FAILED"
    assert dead["errors"][-1]["error_type"] == "SimulatedFailure"
    assert [j["job_id"] for j in client.get("/api/dlq/").json()["jobs"]] == [failed_id]

    again = client.post(f"/api/requeue/{failed_id}/", json={"action": "REQUEUE"})
    assert (again.status_code, again.json()["status"], again.json()["attempts"]) == (200, "PENDING", 0)
    fail_to_dlq(queue, failed_id)
    forced = client.post(f"/api/requeue/{failed_id}/", json={"action": "FORCE_SUCCESS"}).json()
    assert (forced["status"], forced["forced"]) == ("COMPLETED", True)


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"payload": {"duration": 1}}, 422, None),
        ({"user_id": "a", "payload": [1, 2]}, 422, "payload"),
        ({"user_id": "a", "payload": "text"}, 422, "payload"),
        ({"user_id": "a", "priority": "high"}, 422, "priority"),
        ({"user_id": "a", "surprise": 1}, 422, "surprise"),
        ({"user_id": "", "payload": {}}, 400, "user_id"),
        ({"user_id": "a", "payload": {"duration": -1}}, 400, "payload.duration"),
        ({"user_id": "a", "payload": {"duration": "5"}}, 400, "payload.duration"),
        ({"user_id": "a", "task": "nope"}, 400, "task"),
        ({"user_id": "a", "priority": 12}, 400, "priority"),
        ({"user_id": "a", "delay_seconds": -3}, 400, "delay_seconds"),
        ({"user_id": "a", "queue": "bad name!"}, 400, "queue"),
    ],
)
def test_bad_submissions_get_a_4xx_naming_the_field(
    client: TestClient, body: dict[str, Any], status: int, field: str | None
) -> None:
    """422: not the shape (missing, unknown, wrong JSON type); 400: a value out of bounds."""
    response = client.post("/api/submit/", json=body)
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["error"] == {400: "bad_request", 422: "invalid_field"}[status]
    assert answer["message"]
    assert answer.get("field") == field or (field is None and "user_id" in answer["message"])
    assert client.get("/api/jobs/").json()["jobs"] == []


SUBMIT = [("POST", "/api/submit/", "body"), ("POST", "/api/submit", "body")]
JOBS = [("GET", "/api/jobs/", "query"), ("GET", "/api/jobs", "query")]
DLQ = [("GET", "/api/dlq/", "query"), ("POST", "/api/dlq/requeue/", "body")]
LIMITS = [("PUT", "/api/limits/alice/", "body")]
NO_SUCH_JOB = "00000000-0000-0000-0000-000000000000"

# (field, a value out of its bounds, every route that takes the field): the bound is checked by
# pydantic on some, by the library on others (user_id in the path), and the answer is the same.
OUT_OF_BOUNDS = [
    ("priority", 12, SUBMIT),
    ("priority", -1, SUBMIT),
    ("max_retries", 101, SUBMIT),
    ("delay_seconds", -3, SUBMIT),
    ("user_id", "", SUBMIT + JOBS + DLQ[1:]),
    ("user_id", "u" * 201, [*SUBMIT, *JOBS, *DLQ[1:], ("PUT", "/api/limits/{value}/", "path")]),
    ("queue", "bad name!", SUBMIT + JOBS + DLQ),
    ("queue", "q" * 65, SUBMIT + JOBS + DLQ),
    ("task", "t" * 201, SUBMIT + JOBS + DLQ),
    ("limit", 0, [*JOBS, ("GET", "/api/dlq/", "query"), ("GET", "/api/scale-events/", "query")]),
    ("limit", 501, [*JOBS, ("GET", "/api/dlq/", "query"), ("GET", "/api/scale-events/", "query")]),
    ("status", "SLEEPING", JOBS),
    ("action", "EXPLODE", [("POST", f"/api/requeue/{NO_SUCH_JOB}/", "body")]),
    ("max_active", -1, LIMITS),
    ("max_running", 10**10, LIMITS),
    ("weight", 1001, LIMITS),
    ("rate_limit", "often", LIMITS),
    ("idempotency-key", "k" * 201, [("POST", "/api/submit/", "header")]),
]


def _case_id(value: object) -> str:
    return f"{len(value)}-routes" if isinstance(value, list) else str(value)[:12]


@pytest.mark.parametrize(("field", "value", "routes"), OUT_OF_BOUNDS, ids=_case_id)
def test_a_field_out_of_bounds_gets_400_naming_it_from_every_route(
    client: TestClient, field: str, value: Any, routes: list[tuple[str, str, str]]
) -> None:
    for method, path, where in routes:
        response = _send(client, method, path, where, {field: value})
        answer = response.json()
        assert (response.status_code, answer["error"], answer.get("field")) == (400, "bad_request", field), answer
        assert answer["message"].startswith(f"{field} must be"), answer
    assert client.get("/api/jobs/").json()["jobs"] == []
    assert client.get("/api/limits/alice/").json()["weight"] == 1


def _send(client: TestClient, method: str, path: str, where: str, sent: dict[str, Any]) -> Any:
    """``sent`` as the body, the query, a header or the path, with whatever else the route needs."""
    submitting = {"user_id": "a"} if path.startswith("/api/submit") else {}
    if where == "body":
        return client.request(method, path, json={**submitting, **sent})
    if where == "query":
        return client.request(method, path, params=sent)
    if where == "header":
        return client.request(method, path, json=submitting, headers=sent)
    return client.request(method, path.format(value=next(iter(sent.values()))), json={"weight": 1})


def test_the_schema_shows_the_bounds_the_library_enforces(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    submit = schema["components"]["schemas"]["SubmitRequest"]["properties"]
    limits = schema["components"]["schemas"]["LimitsRequest"]["properties"]

    def ranged(prop: dict[str, Any]) -> tuple[Any, ...]:
        (shown,) = [p for p in prop["anyOf"] if p["type"] != "null"]
        return tuple(shown.get(k) for k in ("minimum", "maximum", "minLength", "maxLength", "pattern"))

    assert ranged(submit["priority"]) == (bounds.PRIORITY_MIN, bounds.PRIORITY_MAX, None, None, None)
    assert ranged(submit["max_retries"]) == (0, bounds.MAX_RETRIES, None, None, None)
    assert ranged(submit["delay_seconds"]) == (0, bounds.MAX_DELAY_SECONDS, None, None, None)
    assert ranged(submit["user_id"]) == (None, None, 1, bounds.MAX_USER_ID_LENGTH, None)
    assert ranged(submit["queue"]) == (None, None, None, None, bounds.QUEUE_NAME.pattern)
    assert ranged(limits["weight"]) == (1, bounds.MAX_WEIGHT, None, None, None)
    assert ranged(limits["max_running"]) == (0, bounds.MAX_COUNT, None, None, None)
    (limit,) = [p for p in schema["paths"]["/api/jobs/"]["get"]["parameters"] if p["name"] == "limit"]
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, bounds.MAX_PAGE)


def test_malformed_json_wrong_content_and_huge_bodies(client: TestClient) -> None:
    bad = client.post("/api/submit/", content=b"{not json", headers={"Content-Type": "application/json"})
    assert (bad.status_code, bad.json()["error"]) == (400, "malformed_json")
    huge = client.post("/api/submit/", content=b"x" * (2 * 1024 * 1024), headers={"Content-Type": "application/json"})
    assert (huge.status_code, huge.json()["error"]) == (413, "too_large")
    big_payload = {"user_id": "a", "payload": {"blob": "x" * 300_000}}
    assert client.post("/api/submit/", json=big_payload).status_code == 413


@pytest.mark.parametrize("path", ["/api/status/{id}/", "/api/explain/{id}/"])
def test_unknown_or_malformed_job_ids_are_404(client: TestClient, path: str) -> None:
    for job_id in ("not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        response = client.get(path.format(id=job_id))
        assert (response.status_code, response.json()["error"]) == (404, "not_found")


def test_transitions_that_are_not_allowed_are_409(client: TestClient, queue: Queue) -> None:
    job_id = client.post("/api/submit/", json={"user_id": "a"}).json()["job_id"]
    internals(queue).leases.claim("w", None, 1, queue.clock.now())
    response = client.post(f"/api/requeue/{job_id}/", json={"action": "REQUEUE"})
    assert response.status_code == 409
    assert "RUNNING" in response.json()["message"]
    bad_action = client.post(f"/api/requeue/{job_id}/", json={"action": "EXPLODE"})
    assert (bad_action.status_code, bad_action.json()["field"]) == (400, "action")


def test_idempotency_key_returns_the_earlier_job(client: TestClient) -> None:
    first = client.post("/api/submit/", json={"user_id": "a"}, headers={"Idempotency-Key": "k-1"})
    second = client.post("/api/submit/", json={"user_id": "a"}, headers={"Idempotency-Key": "k-1"})
    other_user = client.post("/api/submit/", json={"user_id": "b"}, headers={"Idempotency-Key": "k-1"})
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json() == {**first.json(), "created": False}
    assert other_user.json()["job_id"] != first.json()["job_id"]  # keys are per user
    assert len(client.get("/api/jobs/").json()["jobs"]) == 2


def test_the_prototypes_clients_may_send_the_idempotency_key_in_the_body(client: TestClient) -> None:
    first = client.post("/api/submit/", json={"user_id": "a", "idempotency_key": "k-2"})
    by_header = client.post("/api/submit/", json={"user_id": "a"}, headers={"Idempotency-Key": "k-2"})
    both = client.post(
        "/api/submit/", json={"user_id": "a", "idempotency_key": "k-2"}, headers={"Idempotency-Key": "k-2"}
    )
    assert (first.status_code, by_header.status_code, both.status_code) == (201, 200, 200)
    assert by_header.json()["job_id"] == both.json()["job_id"] == first.json()["job_id"]
    differ = client.post(
        "/api/submit/", json={"user_id": "a", "idempotency_key": "k-3"}, headers={"Idempotency-Key": "k-2"}
    )
    assert (differ.status_code, differ.json()["error"]) == (400, "bad_request")
    assert "differ" in differ.json()["message"]
    too_long = client.post("/api/submit/", json={"user_id": "a", "idempotency_key": "k" * 1000})
    assert (too_long.status_code, too_long.json()["field"]) == (400, "idempotency_key")
    assert len(client.get("/api/jobs/").json()["jobs"]) == 1


def test_the_status_answer_counts_retries_as_the_prototype_did(client: TestClient, queue: Queue) -> None:
    job_id = client.post("/api/submit/", json={"user_id": "a"}).json()["job_id"]
    assert client.get(f"/api/status/{job_id}/").json()["retries"] == 0
    for attempt in range(1, 4):
        (lease,) = internals(queue).leases.claim("w", None, 1, queue.clock.now())
        answer = client.get(f"/api/status/{job_id}/").json()
        assert (answer["attempts"], answer["retries"]) == (attempt, attempt - 1)
        failed = Errored(AttemptOutcome.FAILED, "ValueError", "try again")
        internals(queue).leases.ack(lease, Retry(queue.clock.now(), failed), "w", queue.clock.now())


def test_rate_limit_and_quota_are_429_with_retry_after(client: TestClient, queue: Queue, clock: FakeClock) -> None:
    queue.set_limits("a", rate_limit="2/minute")
    for _ in range(2):
        assert client.post("/api/submit/", json={"user_id": "a"}).status_code == 201
    limited = client.post("/api/submit/", json={"user_id": "a"})
    assert (limited.status_code, limited.json()["error"], limited.headers["Retry-After"]) == (429, "rate_limited", "60")
    queue.set_limits("b", max_active=1)
    client.post("/api/submit/", json={"user_id": "b"})
    capped = client.post("/api/submit/", json={"user_id": "b"})
    assert (capped.status_code, capped.json()["error"]) == (429, "quota_exceeded")
    assert int(capped.headers["Retry-After"]) >= 1


def test_cursor_pagination_walks_every_job_once(client: TestClient, clock: FakeClock) -> None:
    made = []
    for i in range(7):
        clock.advance(1)
        made.append(client.post("/api/submit/", json={"user_id": f"u{i % 2}"}).json()["job_id"])
    seen, cursor = [], None
    while True:
        page = client.get("/api/jobs/", params={"limit": 3, **({"cursor": cursor} if cursor else {})}).json()
        seen += [j["job_id"] for j in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1]
    filtered = client.get("/api/jobs/", params={"user_id": "u1", "status": "PENDING"}).json()["jobs"]
    assert {j["user_id"] for j in filtered} == {"u1"}
    assert client.get("/api/jobs/", params={"cursor": "garbage!"}).status_code == 400
    assert client.get("/api/jobs/", params={"status": "SLEEPING"}).status_code == 400


def test_cursor_pagination_with_times_past_the_microsecond(client: TestClient, clock: FakeClock) -> None:
    """Real clocks give such times; a cursor rounded to a datetime's microsecond repeated a job."""
    clock.set(1_800_000_000.1234567)
    made = []
    for _ in range(6):
        made.append(client.post("/api/submit/", json={"user_id": "u"}).json()["job_id"])
        clock.advance(0.3333333)
    seen, cursor = [], None
    while True:
        page = client.get("/api/jobs/", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        seen += [j["job_id"] for j in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1]


def test_stats_explain_metrics_and_health(client: TestClient, queue: Queue) -> None:
    job_id = client.post("/api/submit/", json={"user_id": "a"}).json()["job_id"]
    stats = client.get("/api/stats/").json()
    assert stats["by_status"]["PENDING"] == 1
    assert len(stats["throughput"]) == 60
    assert client.get(f"/api/explain/{job_id}/").json()["reason"] == "no_live_worker"
    metrics = client.get("/metrics").text
    assert 'queuelab_jobs{queue="default",status="PENDING"} 1.0' in metrics
    assert 'queuelab_runnable_backlog{queue="default"} 1.0' in metrics
    assert "queuelab_live_workers 0.0" in metrics
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/docs").status_code == 200
    assert "/api/submit/" in client.get("/openapi.json").json()["paths"]
    page = client.get("/")
    assert page.status_code == 200
    assert "queuelab" in page.text


def test_limits_and_bulk_requeue_from_the_api(client: TestClient, queue: Queue) -> None:
    changed = client.put("/api/limits/alice/", json={"max_running": 2, "rate_limit": "30/minute"}).json()
    assert (changed["max_running"], changed["rate_limit"]) == (2, "30/60s")
    assert client.get("/api/limits/alice/").json()["max_running"] == 2
    assert client.put("/api/limits/alice/", json={"rate_limit": "often"}).status_code == 400
    ids = [client.post("/api/submit/", json={"user_id": "a", "queue": q}).json()["job_id"] for q in ("x", "y")]
    for job_id in ids:
        fail_to_dlq(queue, job_id)
    assert client.post("/api/dlq/requeue/", json={"queue": "x"}).json() == {"requeued": 1}
    assert client.post("/api/dlq/requeue/", json={}).json() == {"requeued": 1}
    assert queue.get(ids[1]).status == JobStatus.PENDING
    bad_pace = client.post("/api/dlq/requeue/", json={"rate": 0})
    assert (bad_pace.status_code, bad_pace.json()["field"]) == (400, "rate")


def test_a_paced_bulk_requeue_from_the_api(client: TestClient, queue: Queue, clock: FakeClock) -> None:
    ids = [client.post("/api/submit/", json={"user_id": "a"}).json()["job_id"] for _ in range(3)]
    for job_id in ids:
        fail_to_dlq(queue, job_id)
    now = clock.now()
    assert client.post("/api/dlq/requeue/", json={"rate": 2}).json() == {"requeued": 3}
    run_at = sorted(queue.get(job_id).run_at.timestamp() - now for job_id in ids)
    assert run_at == pytest.approx([0.0, 0.5, 1.0])


def test_the_autoscaling_decision_log(client: TestClient, secured: TestClient, queue: Queue) -> None:
    from queuelab.store.scaling import ScaleLog

    assert client.get("/api/scale-events/").json() == {"events": []}
    for before, after in ((1, 3), (3, 2)):
        ScaleLog(internals(queue).db).record(
            at=queue.clock.now(),
            pool_id="host:1:abcd",
            hostname="host",
            backlog=30,
            running=1,
            workers_before=before,
            workers_after=after,
            reason="<b>why</b>",
        )
    events = client.get("/api/scale-events", params={"limit": 1}).json()["events"]
    assert [(e["workers_before"], e["workers_after"], e["reason"]) for e in events] == [(3, 2, "<b>why</b>")]
    assert events[0]["at"].endswith("Z")
    assert len(client.get("/api/scale-events/").json()["events"]) == 2
    too_many = client.get("/api/scale-events/", params={"limit": 501})
    assert (too_many.status_code, too_many.json()["field"]) == (400, "limit")
    assert secured.get("/api/scale-events/").status_code == 401
    assert len(secured.get("/api/scale-events/", headers=as_(ALICE)).json()["events"]) == 2


def test_who_may_do_what(secured: TestClient, queue: Queue) -> None:
    assert secured.post("/api/submit/", json={"payload": {}}).status_code == 401
    assert secured.post("/api/submit/", json={}, headers=as_("wrong-token-0123456789")).status_code == 401
    assert secured.get("/api/stats/").headers.get("WWW-Authenticate") == "Bearer"
    mine = secured.post("/api/submit/", json={"payload": {"duration": 0}}, headers=as_(ALICE))
    assert mine.status_code == 201
    job_id = mine.json()["job_id"]
    assert queue.get(job_id).user_id == "alice"  # the user comes from the token
    assert secured.post("/api/submit/", json={"user_id": "bob"}, headers=as_(ALICE)).status_code == 403
    assert secured.get(f"/api/status/{job_id}/", headers=as_(ALICE)).status_code == 200
    assert secured.get(f"/api/status/{job_id}/", headers=as_(BOB)).status_code == 404  # not 403: no leak
    assert secured.post(f"/api/cancel/{job_id}/", headers=as_(BOB)).status_code == 404
    assert secured.get("/api/jobs/", headers=as_(BOB)).json()["jobs"] == []
    assert secured.get("/api/jobs/", params={"user_id": "alice"}, headers=as_(BOB)).status_code == 403
    fail_to_dlq(queue, job_id)
    refused = secured.post(f"/api/requeue/{job_id}/", json={"action": "REQUEUE"}, headers=as_(ALICE))
    assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
    assert secured.put("/api/limits/alice/", json={"max_running": 1}, headers=as_(ALICE)).status_code == 403
    assert secured.post("/api/dlq/requeue/", json={}, headers=as_(ALICE)).status_code == 403
    admin = secured.post(f"/api/requeue/{job_id}/", json={"action": "REQUEUE"}, headers=as_(ROOT_TOKEN))
    assert admin.status_code == 200
    on_behalf = secured.post("/api/submit/", json={"user_id": "bob"}, headers=as_(ROOT_TOKEN))
    assert queue.get(on_behalf.json()["job_id"]).user_id == "bob"
    assert secured.get("/metrics").status_code == 401
    assert secured.get("/healthz").status_code == 200


def test_token_files_are_checked(tmp_path: Any) -> None:
    from queuelab import ConfigError

    path = tmp_path / "tokens"
    path.write_text("# token user role\nshort alice user\n")
    with pytest.raises(ConfigError, match=r"tokens:2: expected 'TOKEN USER ROLE' with a token of at least 16"):
        TokenBook.load(str(path), env="")
    path.write_text(f"{ALICE} alice superuser\n")
    with pytest.raises(ConfigError, match="a role of user or admin"):
        TokenBook.load(str(path), env="")
    path.write_text(f"{ALICE} alice user\n{ROOT_TOKEN} root admin\n")
    book = TokenBook.load(str(path), env="")
    alice = book.lookup(ALICE)
    assert alice is not None
    assert alice.user_id == "alice"
    assert book.lookup("nope") is None


def test_the_server_refuses_to_listen_beyond_loopback_without_tokens(tmp_path: Any) -> None:
    import subprocess
    import sys

    from tests.support.helpers import ROOT

    result = subprocess.run(
        [sys.executable, "-m", "queuelab.api", "--db", f"sqlite:///{tmp_path}/x.db", "--host", "0.0.0.0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "QUEUELAB_API_TOKENS": ""},
        check=False,
    )
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0 with no API tokens" in result.stderr


def test_make_client(make_queue: Callable[..., Queue]) -> None:
    """A second app on the same database sees the same jobs (no per-process state)."""
    a, b = make_queue(), make_queue()
    with TestClient(create_app(a)) as one, TestClient(create_app(b)) as two:
        job_id = one.post("/api/submit/", json={"user_id": "x"}).json()["job_id"]
        assert two.get(f"/api/status/{job_id}/").json()["job_id"] == job_id


def test_manual_actions_name_who_did_them(client: TestClient, secured: TestClient, queue: Queue) -> None:
    job_id = client.post("/api/submit/", json={"user_id": "alice"}).json()["job_id"]
    fail_to_dlq(queue, job_id)
    requeued = client.post(f"/api/requeue/{job_id}/", json={"action": "REQUEUE"}).json()
    assert [(a["action"], a["by"], a["from_status"]) for a in requeued["actions"]] == [("REQUEUED", "api", "FAILED")]
    cancelled = secured.post(f"/api/cancel/{job_id}/", headers=as_(ROOT_TOKEN)).json()
    assert [(a["action"], a["by"]) for a in cancelled["actions"]] == [("REQUEUED", "api"), ("CANCELLED", "root")]
    assert client.get(f"/api/status/{job_id}/").json()["actions"][-1]["from_status"] == "PENDING"


def test_the_status_answer_shows_a_running_jobs_progress(client: TestClient, queue: Queue) -> None:
    job_id = client.post("/api/submit/", json={"user_id": "a"}).json()["job_id"]
    assert client.get(f"/api/status/{job_id}/").json()["progress"] is None
    (lease,) = internals(queue).leases.claim("w", None, 1, queue.clock.now())
    internals(queue).leases.report_progress(lease, 0.25, "a quarter")
    answer = client.get(f"/api/status/{job_id}/").json()
    assert (answer["status"], answer["progress"], answer["progress_message"]) == ("RUNNING", 0.25, "a quarter")


def test_a_method_not_allowed_names_the_allowed_ones(client: TestClient) -> None:
    answer = client.post("/api/jobs/")
    assert (answer.status_code, answer.json()["error"]) == (405, "method_not_allowed")
    assert answer.headers["Allow"] == "GET"
    submit = client.get("/api/submit/")
    assert (submit.status_code, submit.headers["Allow"]) == (405, "POST")


def test_the_backlog_gauge_stays_at_zero_instead_of_vanishing(client: TestClient, queue: Queue) -> None:
    """An autoscaler reading the gauge must see it fall to 0 to scale down."""
    assert 'queuelab_runnable_backlog{queue="default"} 0.0' in client.get("/metrics").text  # an empty store
    job_id = client.post("/api/submit/", json={"user_id": "a", "queue": "images"}).json()["job_id"]
    assert 'queuelab_runnable_backlog{queue="images"} 1.0' in client.get("/metrics").text
    client.post(f"/api/cancel/{job_id}/")
    metrics = client.get("/metrics").text
    assert 'queuelab_runnable_backlog{queue="images"} 0.0' in metrics
    assert 'queuelab_runnable_backlog{queue="default"} 0.0' in metrics


def test_an_idempotency_key_reused_with_another_request_is_a_conflict(client: TestClient) -> None:
    key = {"Idempotency-Key": "order-7"}
    first = client.post("/api/submit/", json={"user_id": "a", "payload": {"n": 1}}, headers=key)
    same = client.post("/api/submit/", json={"user_id": "a", "payload": {"n": 1}}, headers=key)
    assert (first.status_code, same.status_code) == (201, 200)
    other = client.post("/api/submit/", json={"user_id": "a", "payload": {"n": 2}, "priority": 5}, headers=key)
    assert (other.status_code, other.json()["error"]) == (409, "idempotency_key_reused")
    assert first.json()["job_id"] in other.json()["message"]
    assert "payload, priority" in other.json()["message"]
    assert len(client.get("/api/jobs/").json()["jobs"]) == 1


def test_cancel_a_running_job_answers_it_still_running_with_the_request(client: TestClient, queue: Queue) -> None:
    job_id = client.post("/api/submit/", json={"user_id": "a"}).json()["job_id"]
    (lease,) = internals(queue).leases.claim("w", None, 1, queue.clock.now())
    answer = client.post(f"/api/cancel/{job_id}/")
    assert answer.status_code == 200
    body = answer.json()
    assert (body["status"], body["cancel_requested_at"] is not None) == ("RUNNING", True)
    assert [(a["action"], a["from_status"]) for a in body["actions"]] == [("CANCELLED", "RUNNING")]
    assert client.get(f"/api/explain/{job_id}/").json()["reason"] == "cancel_requested"
    internals(queue).leases.ack(lease, Complete(None), "w", queue.clock.now())  # it finished first
    refused = client.post(f"/api/cancel/{job_id}/")
    assert (refused.status_code, refused.json()["error"]) == (409, "conflict")
