"""``GET /api/status/{id}/?wait=S`` against the real server: held until the job finishes,
answered at once when it does, and holding no thread meanwhile (more long polls than the
server has threads for its plain routes leave those routes answering). Both databases."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from queuelab import Queue
from tests.support.apiserver import api_server
from tests.support.helpers import wait_until

# More than the 40 threads Starlette runs its plain (non-async) routes on: were each long
# poll holding one, the listing below would queue behind them and time out.
LONG_POLLS = 48
HELD_SECONDS = 60.0  # the most a long poll may ask; answered this late, it was not woken: the test fails


def test_a_long_poll_returns_when_the_job_finishes_and_the_server_serves_others_meanwhile(
    db_url: str, tmp_path: Path
) -> None:
    with api_server(db_url, tmp_path / "api.log") as base, httpx.Client(base_url=base, timeout=300) as client:
        ids = [_submit(client) for _ in range(LONG_POLLS)]
        with ThreadPoolExecutor(LONG_POLLS) as pool:
            polls = [pool.submit(client.get, f"/api/status/{job_id}/", params={"wait": HELD_SECONDS}) for job_id in ids]
            held = _wait_until_held(client, ids)
            assert held == LONG_POLLS  # every job still pending: nothing has run them
            listing = client.get("/api/jobs/", params={"limit": 5}, timeout=30)  # a plain route, answered meanwhile
            assert listing.status_code == 200
            assert not any(poll.done() for poll in polls)
            q = Queue(db_url)
            try:
                with q.worker(2):
                    answers = [poll.result(timeout=HELD_SECONDS + 60) for poll in polls]
            finally:
                q.close()
    assert [a.status_code for a in answers] == [200] * LONG_POLLS
    assert {a.json()["status"] for a in answers} == {"COMPLETED"}


def test_a_long_poll_past_its_time_answers_the_job_as_it_is(db_url: str, tmp_path: Path) -> None:
    with api_server(db_url, tmp_path / "api.log") as base, httpx.Client(base_url=base, timeout=60) as client:
        job_id = _submit(client, delay_seconds=3600)
        answer = client.get(f"/api/status/{job_id}/", params={"wait": 0.2})
        assert (answer.status_code, answer.json()["status"]) == (200, "PENDING")


def test_bad_waits_are_400_with_the_bound_or_422_for_the_shape(sqlite_url: str, tmp_path: Path) -> None:
    with api_server(sqlite_url, tmp_path / "api.log") as base, httpx.Client(base_url=base, timeout=60) as client:
        job_id = _submit(client)
        for bad in ("61", "-1", "inf", "nan"):
            answer = client.get(f"/api/status/{job_id}/", params={"wait": bad})
            assert (answer.status_code, answer.json()["error"]) == (400, "bad_request"), bad
        assert "60" in client.get(f"/api/status/{job_id}/", params={"wait": "61"}).json()["message"]
        assert client.get(f"/api/status/{job_id}/", params={"wait": "soon"}).status_code == 422
        missing = client.get("/api/status/00000000-0000-0000-0000-000000000000/", params={"wait": 5})
        assert missing.status_code == 404


def _submit(client: httpx.Client, **extra: float) -> str:
    made = client.post("/api/submit/", json={"user_id": "alice", "payload": {"duration": 0}, **extra})
    assert made.status_code == 201, made.text
    return str(made.json()["job_id"])


def _wait_until_held(client: httpx.Client, ids: list[str]) -> int:
    """Until the server counts every long poll as waiting (its /metrics); then how many of
    the jobs are still pending."""

    def waiting() -> int:
        text = client.get("/metrics", timeout=30).text
        line = next(line for line in text.splitlines() if line.startswith("queuelab_waiting_callers "))
        return int(float(line.split()[1]))

    wait_until(lambda: waiting() == len(ids), timeout=30, what=f"{len(ids)} long polls held")
    jobs = client.get("/api/jobs/", params={"limit": 500, "status": "PENDING"}, timeout=30).json()["jobs"]
    return len({job["job_id"] for job in jobs} & set(ids))
