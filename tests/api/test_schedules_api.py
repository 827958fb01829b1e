"""``GET /api/schedules/`` and the admin's pause and resume, in-process, on each database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from queuelab import Queue
from queuelab.api import TokenBook, create_app

ALICE, ROOT_TOKEN = "alice-token-0123456789", "root-token-0123456789"
TOKENS = f"{ALICE}:alice:user,{ROOT_TOKEN}:root:admin"


@pytest.fixture
def secured(queue: Queue) -> Iterator[TestClient]:
    @queue.task(name="beat")
    def beat() -> None:
        return None

    queue.schedule("beat", cron="*/5 * * * *", timezone="Europe/Paris")
    with TestClient(create_app(queue, TokenBook.load(env=TOKENS))) as c:
        yield c


def as_(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_anyone_signed_in_lists_the_schedules(secured: TestClient) -> None:
    found = secured.get("/api/schedules/", headers=as_(ALICE))
    assert found.status_code == 200
    [only] = found.json()["schedules"]
    assert (only["name"], only["cron"], only["timezone"], only["paused"]) == (
        "beat",
        "*/5 * * * *",
        "Europe/Paris",
        False,
    )
    assert secured.get("/api/schedules/").status_code == 401


def test_only_an_admin_pauses_and_resumes(secured: TestClient, queue: Queue) -> None:
    refused = secured.post("/api/schedules/beat/pause/", headers=as_(ALICE))
    assert refused.status_code == 403
    assert refused.json()["message"] == "only an admin may pause a schedule"
    paused = secured.post("/api/schedules/beat/pause/", headers=as_(ROOT_TOKEN))
    assert paused.status_code == 200
    assert paused.json()["paused"] is True
    assert queue.get_schedule("beat").paused
    resumed = secured.post("/api/schedules/beat/resume", headers=as_(ROOT_TOKEN))
    assert resumed.json()["paused"] is False


def test_an_unknown_schedule_is_404(secured: TestClient) -> None:
    missing = secured.post("/api/schedules/nope/pause/", headers=as_(ROOT_TOKEN))
    assert missing.status_code == 404
    assert "no schedule is named 'nope'" in missing.json()["message"]
