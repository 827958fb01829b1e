"""``after`` in ``POST /api/submit/``: the job waits for the jobs it names (``waiting_for``
in its status, ``explain`` names them); a bad or unknown id is a 400 naming the field; a
user's token may name only that user's jobs. Both databases, in-process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from queuelab import Queue
from queuelab.api import TokenBook, create_app

ALICE, BOB = "alice-token-0123456789", "bob-token-0123456789"


@pytest.fixture
def client(queue: Queue) -> Iterator[TestClient]:
    with TestClient(create_app(queue)) as c:
        yield c


def submit(client: TestClient, **body: object) -> str:
    made = client.post("/api/submit/", json={"user_id": "alice", "payload": {"duration": 0}, **body})
    assert made.status_code == 201, made.text
    return str(made.json()["job_id"])


def test_a_job_after_another_waits_for_it(client: TestClient) -> None:
    parent = submit(client)
    child = submit(client, after=[parent])
    assert client.get(f"/api/status/{child}/").json()["waiting_for"] == 1
    assert client.get(f"/api/status/{parent}/").json()["waiting_for"] is None
    explained = client.get(f"/api/explain/{child}/").json()
    assert explained["reason"] == "waiting_for_parent"
    assert explained["details"]["waiting_for"] == [{"job_id": parent, "status": "PENDING"}]


@pytest.mark.parametrize(
    ("after", "status", "says"),
    [
        (["not-an-id"], 400, "after"),
        (["00000000-0000-0000-0000-000000000000"], 400, "after names no job with id"),
        ("00000000-0000-0000-0000-000000000000", 422, "after"),
    ],
)
def test_bad_after_is_refused_by_name(client: TestClient, after: object, status: int, says: str) -> None:
    answer = client.post("/api/submit/", json={"user_id": "alice", "payload": {}, "after": after})
    assert answer.status_code == status, answer.text
    assert says in answer.json()["message"]


def test_a_user_may_name_only_their_own_jobs(queue: Queue) -> None:
    tokens = TokenBook.load(env=f"{ALICE}:alice:user,{BOB}:bob:user")
    with TestClient(create_app(queue, tokens)) as c:
        bobs = c.post("/api/submit/", json={"payload": {}}, headers={"Authorization": f"Bearer {BOB}"}).json()["job_id"]
        alices = c.post("/api/submit/", json={"payload": {}}, headers={"Authorization": f"Bearer {ALICE}"})
        mine = alices.json()["job_id"]
        ok = c.post("/api/submit/", json={"payload": {}, "after": [mine]}, headers={"Authorization": f"Bearer {ALICE}"})
        assert ok.status_code == 201
        theirs = c.post(
            "/api/submit/", json={"payload": {}, "after": [bobs]}, headers={"Authorization": f"Bearer {ALICE}"}
        )
        assert (theirs.status_code, theirs.json()["message"]) == (400, f"after names no job with id {bobs!r}")
