"""``python -m queuelab schedules``: list the periodic jobs, pause and resume one, on a real
database (both); an unknown schedule exits 3 with one clear line."""

from __future__ import annotations

import json

from queuelab import Queue
from tests.acceptance.test_cli import cli, run_ok


def test_the_schedules_command_lists_pauses_and_resumes(db_url: str) -> None:
    with Queue(db_url) as q:
        q.schedule("simulate", name="nightly", cron="0 3 * * *", timezone="Europe/Paris")
    db = ["--db", db_url]
    table = run_ok("schedules", *db)
    assert table.splitlines()[0].split() == [
        "name",
        "task",
        "cron",
        "timezone",
        "paused",
        "next_run_at",
        "last_tick_at",
    ]
    assert "nightly" in table
    assert "Europe/Paris" in table
    paused = json.loads(run_ok("schedules", "pause", "nightly", *db, "--json"))
    assert [(s["name"], s["paused"]) for s in paused] == [("nightly", True)]
    listed = json.loads(run_ok("schedules", *db, "--json"))
    assert [(s["name"], s["paused"], s["cron"]) for s in listed] == [("nightly", True, "0 3 * * *")]
    resumed = json.loads(run_ok("schedules", "resume", "nightly", *db, "--json"))
    assert resumed[0]["paused"] is False


def test_an_unknown_schedule_exits_3_and_a_missing_name_2(db_url: str) -> None:
    missing = cli("schedules", "pause", "nope", "--db", db_url)
    assert missing.returncode == 3
    assert missing.stderr.strip() == "queuelab: error: no schedule is named 'nope'"
    nameless = cli("schedules", "resume", "--db", db_url)
    assert nameless.returncode == 2
    assert "needs the schedule's name" in nameless.stderr
