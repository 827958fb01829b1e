"""Periodic jobs with real worker processes (``python -m queuelab worker``), on SQLite and
PostgreSQL: three run the scheduler together for a minute of ticks of an every-second
schedule, and each tick is one job; a worker SIGKILLed in the middle of a tick (its job
inserted, the transaction not committed) changes nothing.

Asserted by counting tick keys, never by timing: the ticks enqueued form one run of
consecutive seconds with no gap and no tick twice (the schedule catches up missed ticks,
so a loaded machine delays a tick but cannot drop one)."""

from __future__ import annotations

import json
import signal
from datetime import datetime
from pathlib import Path

import pytest

from queuelab import Queue
from queuelab.testing import internals
from tests.support.apps import periodic
from tests.support.helpers import WorkerProcess, wait_until

pytestmark = pytest.mark.slow
APP = "tests.support.apps.periodic:q"
TICKS = 60


def tick_keys(q: Queue) -> list[str]:
    return [str(job.idempotency_key) for job in q.jobs(task="beat", limit=10_000)]


def seconds_of(keys: list[str]) -> list[int]:
    return sorted(int(datetime.fromisoformat(key.split(":", 2)[2]).timestamp()) for key in keys)


def test_three_workers_enqueue_each_tick_once_and_a_kill_mid_tick_changes_nothing(db_url: str, tmp_path: Path) -> None:
    q = Queue(db_url)
    internals(q).tasks.add(periodic.beat)
    q.open()
    marker = tmp_path / "hung-tick.json"
    hung = WorkerProcess(db_url, tmp_path / "hung.log", app=APP, QUEUELAB_TEST_HANG_MID_TICK=str(marker))
    workers: list[WorkerProcess] = []
    try:
        wait_until(marker.exists, timeout=60, what="the first worker to hang mid-tick")
        held = json.loads(marker.read_text())
        assert [q.find_by_idempotency_key(key) for key in held] == [None] * len(held)  # not committed
        workers = [WorkerProcess(db_url, tmp_path / f"worker-{i}.log", app=APP) for i in range(2)]
        hung.signal(signal.SIGKILL)
        assert hung.wait() == -signal.SIGKILL
        workers.append(WorkerProcess(db_url, tmp_path / "worker-2.log", app=APP))
        wait_until(lambda: len(tick_keys(q)) >= TICKS, timeout=240, interval=0.5, what=f"{TICKS} ticks")
        for worker in workers:
            worker.signal(signal.SIGTERM)
        for worker in workers:
            assert worker.wait() == 0, worker.output()
    finally:
        for process in [hung, *workers]:
            process.stop()
    keys = tick_keys(q)
    seconds = seconds_of(keys)
    assert len(keys) == len(set(keys)) >= TICKS
    assert seconds == list(range(seconds[0], seconds[0] + len(seconds)))  # no gap, none twice
    assert set(held) <= set(keys)  # the killed worker's tick was enqueued, once, by another
    assert q.get_schedule("beat").last_tick_at.timestamp() == seconds[-1]  # type: ignore[union-attr]
    q.close()
