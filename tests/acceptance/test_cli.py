"""The command line: bad arguments get one clear line and exit 2, never a traceback."""

from __future__ import annotations

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
        (["explain", "not-a-job"], "no job with id 'not-a-job'"),
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
    assert unknown.returncode == 2
    assert "no job with id" in unknown.stderr
