"""The job body of the peer comparison, and how a drain's rate is read from what it wrote.

Every queue runs the same body: append one line (the time it ran) to a file. A drain's rate
is then read from the file alone, the same way for every queue: jobs per second from the
first job's end to the last's."""

from __future__ import annotations

import time
from pathlib import Path

from queuelab.bench.results import BenchError, per_second


def append_line(path: str) -> None:
    with open(path, "a", encoding="ascii") as out:
        out.write(f"{time.time()!r}\n")


def lines_written(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def drain_rate(path: Path, n: int) -> float:
    """Jobs per second over ``n`` lines: (n - 1) intervals from the first to the last."""
    times = [float(line) for line in path.read_text(encoding="ascii").split()]
    if len(times) != n:
        raise BenchError(f"{path.name}: expected {n} lines (one per job), found {len(times)}")
    return per_second(n - 1, max(times) - min(times))


def wait_for_lines(path: Path, n: int, timeout: float) -> None:
    """Wait until ``path`` has ``n`` lines (polling: the file is the only shared state)."""
    deadline = time.monotonic() + timeout
    while lines_written(path) < n:
        if time.monotonic() > deadline:
            raise BenchError(f"{path.name}: {lines_written(path)} of {n} jobs ran within {timeout:.0f}s")
        time.sleep(0.02)
