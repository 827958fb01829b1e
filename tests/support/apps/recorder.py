"""Tasks for the process tests: each run appends one line to a file, so a test can count
how many times every job ran and by which process."""

from __future__ import annotations

import os
import time

from queuelab import Queue, current_job

q = Queue()


def _record(path: str, event: str) -> None:
    job = current_job()
    line = f"{job.job_id} {job.attempt} {os.getpid()} {event} {time.time():.6f}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())  # one write() with O_APPEND: lines never interleave
    finally:
        os.close(fd)


@q.task
def record(path: str, seconds: float = 0.0, first_seconds: float | None = None) -> dict[str, int]:
    """Sleep ``seconds`` (``first_seconds`` on the first attempt, if given)."""
    _record(path, "start")
    first = current_job().attempt == 1 and first_seconds is not None
    time.sleep(first_seconds if first and first_seconds is not None else seconds)
    _record(path, "end")
    return {"pid": os.getpid()}


@q.task(max_retries=3)
def fail(path: str) -> None:
    _record(path, "start")
    raise RuntimeError("this task always fails")


@q.task(timeout_seconds=1.0, max_retries=0)
def stuck(path: str, seconds: float = 3600.0) -> None:
    _record(path, "start")
    time.sleep(seconds)
    _record(path, "end")


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("this exception cannot be printed")


class NotAnException(BaseException):
    """Escapes ``except Exception``, like asyncio.CancelledError does."""


@q.task(max_retries=0)
def raise_unprintable(path: str) -> None:
    _record(path, "start")
    raise Unprintable()


@q.task(max_retries=0)
def raise_base_exception(path: str) -> None:
    _record(path, "start")
    raise NotAnException("gone")


@q.task
def record_other(path: str) -> None:
    """Another task, for tests where one task is held back and the others must not be."""
    _record(path, "start")
