"""Shared by the tests that start real worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from queuelab import JobStatus, Queue
from queuelab.testing import internals

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.support.apps.recorder:q"


def recorder_queue(url: str, app: Queue | None = None, **settings: Any) -> Queue:
    """A queue on ``url`` that knows the recorder tasks (or ``app``'s), to submit them."""
    from tests.support.apps import recorder

    q = Queue(url, **settings)
    for task in (app or recorder.q).tasks:
        internals(q).tasks.add(task)
    return q


class WorkerProcess:
    """``python -m queuelab worker`` as a real child process."""

    def __init__(
        self,
        url: str,
        log: Path,
        *,
        mode: str = "thread",
        concurrency: int = 1,
        prefetch: int | None = None,
        app: str = APP,
        args: Sequence[str] = (),
        **env: str,
    ) -> None:
        self.log_path = log
        self._log: IO[bytes] = open(log, "ab")  # noqa: SIM115 (closed in wait())
        command = [sys.executable, "-m", "queuelab", "--log-level", "info", "worker", "--db", url, "--app", app,
                   "--mode", mode, "--concurrency", str(concurrency)]  # fmt: skip
        if prefetch is not None:
            command += ["--prefetch", str(prefetch)]
        command += args
        environment = {**os.environ, "PYTHONPATH": str(ROOT), **env}
        self.proc = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_until(predicate: Callable[[], object], *, timeout: float, what: str, interval: float = 0.05) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def wait_for_status(q: Queue, job_id: str, status: JobStatus, timeout: float = 60.0) -> None:
    wait_until(lambda: q.get(job_id).status == status, timeout=timeout, what=f"job {job_id} to be {status}")


def read_records(path: Path) -> list[tuple[str, int, int, str, float]]:
    """(job id, attempt, pid, 'start'|'end', time) for every line the recorder wrote."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        job_id, attempt, pid, event, when = line.split()
        rows.append((job_id, int(attempt), int(pid), event, float(when)))
    return rows


def starts_per_job(path: Path) -> Counter[str]:
    return Counter(job_id for job_id, _, _, event, _ in read_records(path) if event == "start")


def drain_each_once(
    q: Queue, url: str, folder: Path, count: int, *, concurrency: int, prefetch: int | None = None
) -> tuple[Path, str]:
    """Submit ``count`` recorder jobs, let a process-mode worker pool drain them, stop it
    with SIGTERM (it must exit 0), and check that every job ran exactly once. Returns the
    record file and the pool's output."""
    from queuelab.submission import Submission

    record = folder / "executions.log"
    jobs = q.submit_many(Submission(task="record", payload={"path": str(record)}) for _ in range(count))
    worker = WorkerProcess(url, folder / "worker.log", mode="process", concurrency=concurrency, prefetch=prefetch)
    try:
        wait_until(
            lambda: q.stats().by_status["COMPLETED"] == count,
            timeout=240,
            interval=0.5,
            what=f"{count:,} jobs to complete",
        )
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0, worker.output()
    finally:
        worker.stop()
    starts = starts_per_job(record)
    assert set(starts) == {job.id for job in jobs}  # none lost
    assert set(starts.values()) == {1}  # none run twice
    assert (q.jobs_frame()["attempts"] == 1).all()
    return record, worker.output()
