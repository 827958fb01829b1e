"""Crash recovery: a worker is SIGKILLed in the middle of a job; how long until that job
runs again on another worker? The lease is short (1 s), so recovery is lease expiry, then
the survivor's next maintenance tick (a quarter of the lease) rescues the attempt as
``WorkerLost``, then the retry's backoff (0.5 s, less up to 20% jitter), then a claim.

Processes: a pool of two worker processes, one child killed. Threads: two ``python -m
queuelab worker --mode thread`` processes (a thread pool lives in its host process, so the
whole process is killed), the one holding the job killed and replaced."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from queuelab.bench.harness import POLL_SECONDS, fresh_queue, running_pool, status_counts
from queuelab.bench.plan import Context
from queuelab.bench.results import BenchError, Finding, Result
from queuelab.queue import Queue
from queuelab.runtime.pool import ProcessPool
from queuelab.store.schema import attempts, jobs, workers

LEASE_SECONDS = 1.0
GRACE_SECONDS = 1.0
JOB_SECONDS = 0.5  # long enough to be killed mid-job, short enough to need no heartbeat
WAIT_SECONDS = 60.0
SETTINGS = {"lease_seconds": LEASE_SECONDS, "shutdown_grace_seconds": GRACE_SECONDS}


def crash(ctx: Context, kind: str) -> list[Finding]:
    trials = ctx.sizes.crash_trials
    with fresh_queue(kind, ctx.postgres_url, **SETTINGS) as q, running_pool(q, 2, "process") as pool:
        assert isinstance(pool, ProcessPool)
        processes = [trial(q, _kill, pool.pids) for _ in range(trials)]
    with fresh_queue(kind, ctx.postgres_url, **SETTINGS) as q, worker_processes(q, 2) as group:
        threads = [trial(q, group.kill, group.pids) for _ in range(trials)]
    return _results(kind, "process", processes) + _results(kind, "thread", threads)


def _results(kind: str, mode: str, trials: list[tuple[float, float]]) -> list[Finding]:
    where = "2 worker processes" if mode == "process" else "2 thread-mode workers (1 process each)"
    case = f"SIGKILL mid-job, lease {LEASE_SECONDS:g} s, {where}"
    rescued = [r for r, _ in trials]
    again = [a for _, a in trials]
    figures = [
        ("kill_to_rescue", statistics.median(rescued)),
        ("kill_to_running_again", statistics.median(again)),
        ("kill_to_running_again_max", max(again)),
    ]
    return [
        Result(
            database=kind,
            scenario="crash",
            case=case,
            metric=metric,
            value=value,
            unit="s",
            mode=mode,
            workers=2,
            jobs=len(trials),
        )
        for metric, value in figures
    ]


def trial(q: Queue, kill: Callable[[int], None], pids: Callable[[], list[int]]) -> tuple[float, float]:
    """With two workers up, submit a job, kill the worker running it, wait for it to run
    again; return the seconds from the kill to the rescue and to the new start."""
    _wait_registered(q, pids, 2)
    job = q.submit("simulate", {"duration": JOB_SECONDS})
    first = _wait_attempt(q, job.id, 1)
    victim = _owner_pid(first)
    kill(victim)
    killed = time.time()
    second = _wait_attempt(q, job.id, 2)
    if _owner_pid(second) == victim:
        raise BenchError(f"job {job.id} is running again on the killed worker {victim}")
    query = sa.select(attempts.c.finished_at, attempts.c.outcome)
    with q.database.read() as conn:
        rescued, outcome = conn.execute(query.where(attempts.c.job_id == job.id, attempts.c.number == 1)).one()
    if outcome != "LOST":
        raise BenchError(f"job {job.id}: its first attempt ended {outcome}, not LOST: the kill came too late")
    _wait_status(q, job.id, "COMPLETED")
    return rescued - killed, second.started_at - killed


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def _owner_pid(row: Any) -> int:
    return int(row.lease_owner.split(":")[1])  # hostname:pid:suffix


def _poll(q: Queue, job_id: str, ready: Callable[[Any], bool], what: str) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    query = sa.select(jobs).where(jobs.c.id == job_id)
    while True:
        with q.database.read() as conn:
            row = conn.execute(query).one()
        if ready(row):
            return row
        if time.monotonic() > deadline:
            raise BenchError(f"job {job_id} did not {what} within {WAIT_SECONDS:.0f}s: {status_counts(q)}")
        time.sleep(POLL_SECONDS / 4)


def _wait_attempt(q: Queue, job_id: str, attempt: int) -> Any:
    return _poll(q, job_id, lambda r: r.status == "RUNNING" and r.attempts == attempt, f"start attempt {attempt}")


def _wait_status(q: Queue, job_id: str, status: str) -> None:
    _poll(q, job_id, lambda r: r.status == status, f"become {status}")


# -- thread-mode workers in processes of their own ----------------------------------------


class WorkerGroup:
    """One-slot thread-mode workers, each ``python -m queuelab worker`` in a process of
    its own; a killed one is replaced at once."""

    def __init__(self, q: Queue) -> None:
        self._env = {**os.environ, **{f"QUEUELAB_{k.upper()}": str(v) for k, v in SETTINGS.items()}}
        self._command = [sys.executable, "-m", "queuelab", "--log-level", "error", "worker"]
        self._command += ["--db", q.settings.database_url, "--concurrency", "1", "--mode", "thread"]
        self._procs: dict[int, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        proc = subprocess.Popen(self._command, env=self._env)
        self._procs[proc.pid] = proc

    def kill(self, pid: int) -> None:
        proc = self._procs.pop(pid)
        proc.kill()
        proc.wait()
        self.start()

    def pids(self) -> list[int]:
        for pid, proc in self._procs.items():
            if proc.poll() is not None:
                raise BenchError(f"worker process {pid} exited with code {proc.returncode}")
        return list(self._procs)

    def stop(self) -> None:
        for proc in self._procs.values():
            proc.terminate()
        for proc in self._procs.values():
            try:
                proc.wait(GRACE_SECONDS + 10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def worker_processes(q: Queue, count: int) -> Iterator[WorkerGroup]:
    group = WorkerGroup(q)
    try:
        for _ in range(count):
            group.start()
        yield group
    finally:
        group.stop()


def _wait_registered(q: Queue, pids: Callable[[], list[int]], count: int) -> None:
    """Until ``count`` workers are up: alive, and registered in the store."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        alive = pids()
        query = sa.select(sa.func.count()).select_from(workers).where(workers.c.pid.in_(alive))
        with q.database.read() as conn:
            if len(alive) >= count and conn.execute(query).scalar_one() >= count:
                return
        if time.monotonic() > deadline:
            raise BenchError(f"{count} workers were not up within {WAIT_SECONDS:.0f}s (alive: {alive})")
        time.sleep(POLL_SECONDS)
