"""Waiting for a job to finish: ``Queue.wait`` / ``Queue.wait_async`` return the finished
job (completed, dead-lettered or cancelled), raise ``WaitTimeout`` when it is not, and are
woken by the database (a NOTIFY from the job's ending on PostgreSQL, the data_version
counter on SQLite), never by a poll of the jobs table. Both databases."""

from __future__ import annotations

import asyncio
import functools
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from queuelab import InvalidArgument, JobNotFound, JobStatus, Queue, WaitTimeout
from queuelab.store import wakeup
from queuelab.store.completions import Completions
from queuelab.store.schema import DONE_CHANNEL
from queuelab.testing import internals

LONG = 120.0  # a wait that ends this way failed the test: no wake-up came


def _with_tasks(q: Queue) -> Queue:
    q.task(name="noop")(lambda: None)
    q.task(name="add")(lambda a, b: a + b)
    return q


@pytest.fixture
def make(make_queue: Callable[..., Queue]) -> Callable[..., Queue]:
    """Queues on the test's database that know the tasks ``noop`` and ``add``."""
    return lambda **options: _with_tasks(make_queue(**options))


def _no_fallback(q: Queue) -> Completions:
    """``q``'s waiters with the periodic re-read pushed out of reach: what wakes them must be
    the database's signal."""
    completions = Completions(internals(q).db, fallback_seconds=3600.0)
    internals(q).__dict__["completions"] = completions
    return completions


def _in_thread(fn: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    out: list[object] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def test_wait_returns_the_completed_job_with_its_result(make: Callable[..., Queue]) -> None:
    q = make()
    with q.worker(2):
        jobs = [q.submit("add", {"a": 1, "b": i}) for i in range(20)]
        done = [q.wait(job, timeout=LONG) for job in jobs]
    assert [job.status for job in done] == [JobStatus.COMPLETED] * 20
    assert [job.result for job in done] == [1 + i for i in range(20)]


def test_wait_returns_a_dead_lettered_job_with_its_errors(make: Callable[..., Queue]) -> None:
    q = make(max_retries=1, retry_base_seconds=0)

    @q.task
    def boom() -> None:
        raise KeyError("nope")

    with q.worker(1):
        done = q.wait(q.submit("boom"), timeout=LONG)
    assert done.status is JobStatus.FAILED
    assert [a.error_type for a in done.errors] == ["KeyError", "KeyError"]


def test_a_cancel_from_another_connection_wakes_the_waiter(make: Callable[..., Queue]) -> None:
    waiting, other = make(), make()
    _no_fallback(waiting)
    job = waiting.submit("noop", delay=3600)
    thread, out = _in_thread(lambda: waiting.wait(job.id, timeout=LONG))
    _wait_for_waiters(waiting, 1)
    other.cancel(job.id)
    thread.join(LONG)
    assert [getattr(found, "status", found) for found in out] == [JobStatus.CANCELLED]


def test_an_ending_elsewhere_wakes_the_waiter_without_a_poll(make: Callable[..., Queue]) -> None:
    """The re-read fallback is an hour away: only the database's signal can end these waits.
    The jobs end in another queue object's worker (batched acks, as in production)."""
    waiting, other = make(), make()
    _no_fallback(waiting)
    jobs = [waiting.submit("add", {"a": i, "b": i}, queue="elsewhere") for i in range(3)]
    threads = [_in_thread(functools.partial(waiting.wait, j, timeout=LONG)) for j in jobs]
    _wait_for_waiters(waiting, 3)
    with other.worker(2, queues=["elsewhere"]):
        for thread, _ in threads:
            thread.join(LONG)
    assert [[getattr(found, "result", found) for found in out] for _, out in threads] == [[0], [2], [4]]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")
def test_on_sqlite_an_ending_in_another_process_wakes_the_waiter_at_the_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reads of data_version on schedule are pushed out of reach (600 s), and those after
    a write to the WAL left to go on until the commit shows: only the write can end this."""
    monkeypatch.setattr(wakeup, "SQLITE_POLL_SECONDS", 600.0)
    monkeypatch.setattr(wakeup, "SQLITE_IDLE_POLL_SECONDS", 600.0)
    monkeypatch.setattr(wakeup, "SQLITE_AFTER_WRITE_READS", 10**6)
    url = f"sqlite:///{tmp_path / 'q.db'}"
    with _with_tasks(Queue(url)) as waiting:
        _no_fallback(waiting)
        job = waiting.submit("noop", delay=3600)
        thread, out = _in_thread(lambda: waiting.wait(job.id, timeout=LONG))
        _wait_for_waiters(waiting, 1)
        code = f"from queuelab import Queue\nwith Queue({url!r}) as q: q.cancel({job.id!r})"
        subprocess.run([sys.executable, "-c", code], check=True, timeout=LONG)
        thread.join(LONG)
    assert [getattr(found, "status", found) for found in out] == [JobStatus.CANCELLED]


def test_wait_times_out_with_a_specific_error_and_the_job_runs_on(make: Callable[..., Queue]) -> None:
    queue = make()
    job = queue.submit("noop", delay=3600)
    with pytest.raises(WaitTimeout, match=rf"job {job.id} did not finish within 0.05s \(it is PENDING\)") as caught:
        queue.wait(job, timeout=0.05)
    assert isinstance(caught.value, TimeoutError)
    assert queue.get(job.id).status is JobStatus.PENDING


def test_a_finished_job_is_returned_at_once_even_with_no_time_to_wait(make: Callable[..., Queue]) -> None:
    queue = make()
    job = queue.submit("noop", delay=3600)
    queue.cancel(job.id)
    assert queue.wait(job.id, timeout=0).status is JobStatus.CANCELLED


def test_bad_waits_are_clear_errors(make: Callable[..., Queue]) -> None:
    queue = make()
    with pytest.raises(JobNotFound):
        queue.wait("00000000-0000-0000-0000-000000000000", timeout=1)
    job = queue.submit("noop")
    for bad in (-1, float("nan"), "5", True):
        with pytest.raises(InvalidArgument, match="timeout must be a number of seconds"):
            queue.wait(job, timeout=bad)  # type: ignore[arg-type]


def test_wait_async_lets_the_event_loop_run_and_returns_the_job(make: Callable[..., Queue]) -> None:
    q, other = make(), make()
    _no_fallback(q)
    jobs = [q.submit("noop", delay=3600) for _ in range(5)]

    async def main() -> list[JobStatus]:
        waits = [asyncio.create_task(q.wait_async(job, timeout=LONG)) for job in jobs]
        while internals(q).completions.waiting() < len(jobs):  # the loop runs meanwhile
            await asyncio.sleep(0.01)
        await asyncio.to_thread(lambda: [other.cancel(job.id) for job in jobs])
        return [found.status for found in await asyncio.gather(*waits)]

    assert asyncio.run(main()) == [JobStatus.CANCELLED] * 5


def test_wait_async_times_out(make: Callable[..., Queue]) -> None:
    queue = make()
    job = queue.submit("noop", delay=3600)
    with pytest.raises(WaitTimeout):
        asyncio.run(queue.wait_async(job, timeout=0.05))


def test_the_waiters_thread_sleeps_when_nobody_waits(make: Callable[..., Queue]) -> None:
    queue = make()
    job = queue.submit("noop", delay=3600)
    queue.cancel(job.id)
    queue.wait(job, timeout=1)
    completions = internals(queue).completions
    assert completions.waiting() == 0
    assert completions.interval() == 3600.0


@pytest.mark.postgres
def test_only_awaited_endings_notify(postgres_database_url: str) -> None:
    """PostgreSQL: an ending sends a NOTIFY only for a job someone waits for (the rest, the
    bulk of a queue's traffic, cost nothing), and once per ending."""
    q = _with_tasks(Queue(postgres_database_url))
    try:
        quiet, awaited = q.submit("noop", delay=3600), q.submit("noop", delay=3600)
        with psycopg.connect(postgres_database_url.replace("+psycopg", ""), autocommit=True) as listen:
            listen.execute(f"LISTEN {DONE_CHANNEL}")
            q.cancel(quiet.id)
            completions = internals(q).completions
            with completions.watching(awaited.id, lambda: None):
                completions.prepare(awaited.id)
            q.cancel(awaited.id)
            q.requeue(awaited.id)  # back to PENDING: not an ending, no notification
            listen.execute(f"NOTIFY {DONE_CHANNEL}, 'end'")  # delivered after the earlier commits
            heard = []
            for note in listen.notifies(timeout=LONG):
                heard.append(note.payload)
                if note.payload == "end":
                    break
        assert heard == [awaited.id, "end"]
    finally:
        q.close()


def _wait_for_waiters(q: Queue, n: int) -> None:
    """Until ``n`` callers are registered (whether they read the job before or after its
    ending, they must return it)."""
    from tests.support.helpers import wait_until

    wait_until(lambda: internals(q).completions.waiting() >= n, timeout=LONG, what=f"{n} waiters")


@pytest.mark.slow
def test_wait_on_jobs_run_by_a_worker_process(make_queue: Callable[..., Queue]) -> None:
    """The worker is another process (its acks come from its own connections): each wait
    returns the job that process completed. (The built-in task: a process worker imports
    the tasks it runs, and this module's lambdas are not importable.)"""
    q = make_queue()
    with q.worker(1, "process"):
        done = [q.wait(q.submit("simulate", {"duration": 0}), timeout=LONG) for _ in range(10)]
    assert {job.status for job in done} == {JobStatus.COMPLETED}
    assert all(job.history[-1].worker_id != "" for job in done)
