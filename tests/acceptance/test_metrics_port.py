"""``python -m queuelab worker --metrics-port N``: a worker's own counts for Prometheus,
read with prometheus_client's parser. In process mode the pool's children each count and
the supervisor adds them up (queuelab.runtime.snapshots)."""

from __future__ import annotations

import re
import signal
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.helpers import WorkerProcess, recorder_queue, wait_until

pytestmark = pytest.mark.slow


def scrape(port: int) -> dict[str, float]:
    """{sample name and labels: value} of the worker's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            found[f"{family.type} {sample.name}{{{labels}}}"] = sample.value
    return found


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_a_worker_serves_its_counts_on_its_metrics_port(sqlite_url: str, tmp_path: Path, mode: str) -> None:
    q = recorder_queue(sqlite_url)
    out = tmp_path / "runs.txt"
    for _ in range(4):
        q.submit("record", {"path": str(out)})
    q.submit("fail", {"path": str(out)}, max_retries=0)
    worker = WorkerProcess(sqlite_url, tmp_path / "worker.log", mode=mode, concurrency=2, args=["--metrics-port", "0"])
    try:
        serving = r"metrics on http://0\.0\.0\.0:(\d+)/metrics"
        served = wait_until(lambda: re.search(serving, worker.output()), timeout=60, what="the port")
        assert isinstance(served, re.Match)
        port = int(served.group(1))
        labels = "queue=default,task=record"
        done = f"counter queuelab_jobs_completed_total{{{labels}}}"
        wait_until(lambda: scrape(port).get(done) == 4, timeout=60, what="4 completions counted")
        found = wait_until(
            lambda: (
                (m := scrape(port)).get("counter queuelab_jobs_dead_lettered_total{queue=default,task=fail}") == 1 and m
            ),
            timeout=60,
            what="the dead letter counted",
        )
        assert isinstance(found, dict)
        assert found[f"counter queuelab_jobs_started_total{{{labels}}}"] == 4
        assert found[f"histogram queuelab_job_run_seconds_count{{{labels}}}"] == 4
        assert found["histogram queuelab_job_wait_seconds_count{queue=default}"] == 5
        assert not any(name.startswith("gauge ") for name in found)  # the store's gauges are the API's
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0
    finally:
        worker.stop()
        q.close()
