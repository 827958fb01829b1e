"""Worker chaos, the quick version (the full one: make chaos): real worker processes
SIGKILLed at random while they drain jobs, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.chaos import run_worker_chaos

pytestmark = pytest.mark.slow


@pytest.mark.timeout(300)
@pytest.mark.parametrize("prefetch", ["auto", "0", "20"])  # the default, then none, then a fixed 20
def test_killing_workers_at_random_loses_nothing(db_url: str, tmp_path: Path, prefetch: str) -> None:
    report = run_worker_chaos(
        db_url, tmp_path, jobs_total=1000, workers=3, kill_every=0.4, timeout=180, prefetch=prefetch
    )
    assert report.kills >= 3, report
    assert report.completed == 1000, report
    assert report.lost == 0, report
    assert report.stuck == 0, report
    assert report.unexplained_duplicates == 0, report  # only jobs whose worker died mid-run ran again
    assert report.attempts_run_twice == 0, report  # no attempt ran twice: leases held
