"""API conventions: the OpenAPI document declares the bearer scheme (the docs page's
Authorize button sends the token to every route that checks it), and a user's token reads
the statistics of its own jobs only, where an admin's reads the queue's. Both databases."""

from __future__ import annotations

from fastapi.testclient import TestClient

from queuelab import Queue
from queuelab.api import TokenBook, create_app

ALICE, BOB, ROOT = "alice-token-0123456789", "bob-token-0123456789", "root-token-0123456789"
TOKENS = f"{ALICE}:alice:user,{BOB}:bob:user,{ROOT}:root:admin"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_openapi_document_declares_the_bearer_scheme_on_the_routes(queue: Queue) -> None:
    with TestClient(create_app(queue, TokenBook.load(env=TOKENS))) as c:
        document = c.get("/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert [(s["type"], s["scheme"]) for s in schemes.values()] == [("http", "bearer")]
    (name,) = schemes
    assert name == "HTTPBearer"  # the name clients' generated code knows it by
    for path in ("/api/submit/", "/api/stats/", "/api/status/{job_id}/"):
        for operation in document["paths"][path].values():
            assert {name: []} in operation["security"], path


def test_a_users_token_reads_the_stats_of_its_own_jobs(queue: Queue) -> None:
    with TestClient(create_app(queue, TokenBook.load(env=TOKENS))) as c:
        for token, n in ((ALICE, 2), (BOB, 3)):
            for _ in range(n):
                assert c.post("/api/submit/", json={"payload": {}}, headers=bearer(token)).status_code == 201
        pending = {
            who: c.get("/api/stats/", headers=bearer(token)).json()["by_status"]["PENDING"]
            for who, token in (("alice", ALICE), ("bob", BOB), ("root", ROOT))
        }
    assert pending == {"alice": 2, "bob": 3, "root": 5}
    assert queue.stats(user_id="alice").by_queue == {"default": {**queue.stats(user_id="alice").by_status}}
