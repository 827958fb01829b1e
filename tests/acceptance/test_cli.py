"""The command line: bad arguments get one clear line and a non-zero exit (2 bad input, 3 no
such job, 4 not allowed, 5 refused by a limit), never a traceback; the job commands list,
show, submit, requeue, force and cancel on a real database (both)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from tests.support.helpers import ROOT


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "queuelab", "--log-level", "warning", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["worker", "--concurrency", "0"], "concurrency must be a whole number between 1 and 1024, got 0"),
        (["worker", "--app", "nosuchmodule:q"], "--app 'nosuchmodule:q': No module named 'nosuchmodule'"),
        (["worker", "--app", "tests.support.apps.recorder"], "--app must be MODULE:ATTR"),
        (["worker", "--app", "tests.support.apps.recorder:record"], "names a Task, not a queuelab Queue"),
        (["stats", "--db", "mysql://x/y"], "must be an SQLAlchemy URL for SQLite"),
        (["limits", "--max-running", "lots"], "--max-running must be a whole number or 'clear', got 'lots'"),
        (["limits", "--rate-limit", "60 a minute"], "rate_limit must be N/unit"),
        (["worker", "--mode", "process", "--autoscale", "5:2"], "--autoscale must be MIN:MAX"),
        (["worker", "--autoscale", "4"], "--autoscale must be MIN:MAX"),
        (["worker", "--prefetch", "-1"], "prefetch must be auto or a whole number between 0 and 10000, got '-1'"),
        (
            ["worker", "--app", "tests.support.apps.recorder:q", "--prefetch", "lots"],
            "prefetch must be auto or a whole number",
        ),
    ],
)
def test_bad_arguments_get_a_clear_error(args: list[str], message: str, tmp_path: object) -> None:
    db = ["--db", f"sqlite:///{tmp_path}/cli.db"] if "--db" not in args else []
    result = cli(args[0], *db, *args[1:])
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_limits_set_and_show_from_the_shell(tmp_path: object) -> None:
    db = f"sqlite:///{tmp_path}/cli.db"
    shown = cli("limits", "--db", db, "--user", "alice", "--max-running", "2", "--rate-limit", "60/minute")
    assert shown.returncode == 0, shown.stderr
    assert "max_running=2" in shown.stdout
    assert "rate_limit=60/60s" in shown.stdout
    unknown = cli("explain", "--db", db, str(uuid.uuid4()))
    assert unknown.returncode == 3  # no such job
    malformed = cli("explain", "--db", db, "not-a-job")
    assert (malformed.returncode, "no job with id 'not-a-job'" in malformed.stderr) == (3, True)
    assert "no job with id" in unknown.stderr


def run_ok(*args: str) -> str:
    result = cli(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_job_commands_see_and_act_on_jobs(db_url: str) -> None:
    db = ["--db", db_url]
    payload = ["--payload", '{"duration": 0}']
    job_id = run_ok("submit", *db, "simulate", *payload, "--user", "ann", "--priority", "2").strip()
    listed = json.loads(run_ok("jobs", *db, "--json", "--user", "ann"))
    assert [(j["id"], j["status"], j["priority"]) for j in listed] == [(job_id, "PENDING", 2)]
    table = run_ok("jobs", *db)
    assert table.splitlines()[0].split() == ["id", "status", "task", "user", "queue", "attempts", "created"]
    assert job_id in table
    shown = run_ok("show", *db, job_id)
    assert f"{job_id}  PENDING" in shown
    assert "why: " in shown
    assert "cancelled" in run_ok("cancel", *db, job_id, "--by", "ops")
    again = cli("cancel", *db, job_id)
    assert again.returncode == 4  # not allowed: it is CANCELLED
    assert "only PENDING or RUNNING jobs can be cancelled" in again.stderr
    assert "now PENDING" in run_ok("requeue", *db, job_id)
    detail = json.loads(run_ok("show", *db, job_id, "--json"))
    actions = [(a["kind"], a["from_status"]) for a in detail["actions"]]
    assert actions == [("CANCELLED", "PENDING"), ("REQUEUED", "CANCELLED")]
    assert detail["actions"][0]["by"] == "ops"
    assert detail["actions"][1]["by"].startswith("cli")
    assert detail["explain"]["reason"]
    forced = cli("force-success", *db, job_id)
    assert forced.returncode == 4  # a PENDING job cannot be forced
    assert json.loads(run_ok("requeue", *db, "--dlq", "--json")) == {"requeued": 0}


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["submit", "simulate", "--payload", "{bad"], 2, "--payload must be JSON"),
        (["submit", "no-such-task"], 2, "unknown task"),
        (["submit", "simulate", "--payload", '{"duration": -1}'], 2, "payload.duration"),
        (["jobs", "--status", "WHAT"], 2, "status must be one of"),
        (["requeue"], 2, "give a JOB_ID, or --dlq"),
        (["requeue", str(uuid.uuid4()), "--rate", "5"], 2, "--rate and the filters go with --dlq"),
        (["show", str(uuid.uuid4())], 3, "no job with id"),
        (["force-success", str(uuid.uuid4())], 3, "no job with id"),
        (["cancel", "nope"], 3, "no job with id 'nope'"),
    ],
)
def test_the_job_commands_refuse_bad_input_with_a_code_scripts_can_trust(
    args: list[str], code: int, message: str, tmp_path: object
) -> None:
    result = cli(args[0], "--db", f"sqlite:///{tmp_path}/cli.db", *args[1:])
    assert result.returncode == code, result.stderr
    assert message.lower() in result.stderr.lower()
    assert "Traceback" not in result.stderr


def test_a_submit_refused_by_a_limit_exits_5(tmp_path: object) -> None:
    db = ["--db", f"sqlite:///{tmp_path}/cli.db"]
    run_ok("limits", *db, "--user", "capped", "--max-active", "1")
    run_ok("submit", *db, "simulate", "--user", "capped")
    refused = cli("submit", *db, "simulate", "--user", "capped")
    assert refused.returncode == 5
    assert "active jobs" in refused.stderr


@pytest.mark.parametrize(
    ("argv", "level"),
    [
        (["stats"], None),  # not given: QUEUELAB_LOG_LEVEL, else info (queuelab.logs)
        (["--log-level", "warning", "stats"], "warning"),
        (["stats", "--log-level", "debug"], "debug"),  # after the command too
        (["--log-level", "error", "worker", "--log-level", "debug"], "debug"),  # the nearer one wins
    ],
)
def test_the_log_level_goes_before_or_after_the_command(argv: list[str], level: str | None) -> None:
    from queuelab.cli import _parser

    assert _parser().parse_args(argv).log_level == level


def test_submit_after_from_the_shell(tmp_path: object) -> None:
    db = ["--db", f"sqlite:///{tmp_path}/cli.db"]
    parent = run_ok("submit", *db, "simulate").strip()
    child = run_ok("submit", *db, "simulate", "--after", parent, "--json")
    assert json.loads(child)["status"] == "PENDING"
    shown = json.loads(run_ok("show", *db, json.loads(child)["id"], "--json"))
    assert shown["waiting_for"] == 1
    unknown = cli("submit", *db, "simulate", "--after", str(uuid.uuid4()))
    assert unknown.returncode == 2
    assert "after names no job with id" in unknown.stderr
