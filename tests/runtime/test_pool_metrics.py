"""A process pool's children count their own jobs and the parent adds them up
(queuelab.runtime.snapshots), also when metrics are enabled after the pool was made (the
API's order: the pool, then the app), and a child that dies keeps its counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from queuelab import JobStatus
from queuelab.runtime.metrics import JobMetrics
from tests.support.helpers import recorder_queue, wait_for_status, wait_until

pytestmark = pytest.mark.slow


def completed(metrics: JobMetrics, task: str) -> float:
    return metrics.snapshot().counters.get(("completed", ("default", task)), 0.0)


def test_the_parent_adds_up_its_childrens_counts(db_url: str, tmp_path: Path) -> None:
    q = recorder_queue(db_url)
    out = str(tmp_path / "runs.txt")
    pool = q.worker(2, "process")
    metrics = q.enable_metrics()  # after the pool was made, before it starts
    with pool:
        jobs = [q.submit("record", {"path": out}) for _ in range(6)]
        for job in jobs:
            wait_for_status(q, job.id, JobStatus.COMPLETED)
        wait_until(lambda: completed(metrics, "record") == 6, timeout=30, what="6 completions counted")
        pool.resize(1)  # a child stops: its counts stay
        wait_until(lambda: len(pool.pids()) == 1, timeout=60, what="one child left")
        assert completed(metrics, "record") == 6
        more = q.submit("record", {"path": out})
        wait_for_status(q, more.id, JobStatus.COMPLETED)
        wait_until(lambda: completed(metrics, "record") == 7, timeout=30, what="the 7th counted")
    snapshot = metrics.snapshot()
    assert snapshot.counters[("started", ("default", "record"))] == 7
    assert sum(snapshot.histograms[("run", ("default", "record"))].counts) == 7
    q.close()
