"""Group commit: submitters that write at the same time share one transaction.

A submit that finds no write under way leads one at once, with its own rows: a lone caller
waits for nothing. Submits that arrive while a write is under way queue; when it commits,
the first of them leads the next write, with every row queued meanwhile (up to
``MAX_ROWS``). Each caller returns once its own rows are committed, with its own result. If
a shared write fails (a row refused by a rate limit or a quota, a database error), the
leader writes each caller's rows alone, so a refusal fails only its own caller. Rows with
an idempotency key are never shared: two callers with one key must see each other's job.

One ``GroupCommit`` serves one process (threads); processes each have their own.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from queuelab.models import Job

Rows = list[dict[str, Any]]
Write = Callable[[Rows, float], dict[str, Job]]  # (rows, now) -> the jobs found by idempotency key
MAX_ROWS = 1000  # the most rows one shared write takes


@dataclass(eq=False)
class _Call:
    rows: Rows
    now: float
    ready: threading.Event = field(default_factory=threading.Event)  # result set, or made leader
    lead: bool = False
    result: dict[str, Job] | None = None
    error: BaseException | None = None

    def outcome(self) -> dict[str, Job]:
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class GroupCommit:
    def __init__(self, write: Write) -> None:
        """``write`` stores rows in one transaction (all or nothing) and returns the jobs
        found by idempotency key (:meth:`queuelab.store.jobs.JobStore.insert`). A shared
        write takes the latest ``now`` of its callers."""
        self._write = write
        self._lock = threading.Lock()
        self._queued: deque[_Call] = deque()
        self._busy = False  # a leader is writing, or about to
        self.shared_writes = 0  # writes that carried more than one caller's rows

    def write(self, rows: Rows, now: float) -> dict[str, Job]:
        if any(row["idempotency_key"] is not None for row in rows):
            return self._write(rows, now)
        call = _Call(rows, now)
        with self._lock:
            self._queued.append(call)
            if not self._busy:
                self._busy = call.lead = True
        while not call.lead:
            call.ready.wait()
            if call.result is not None or call.error is not None:
                return call.outcome()
            call.ready.clear()  # made leader: lead the next write
        self._lead()
        return call.outcome()

    def _lead(self) -> None:
        with self._lock:
            batch = [self._queued.popleft()]
            rows = len(batch[0].rows)
            while self._queued and rows + len(self._queued[0].rows) <= MAX_ROWS:
                rows += len(self._queued[0].rows)
                batch.append(self._queued.popleft())
        try:
            self._run(batch)
        finally:
            with self._lock:
                if self._queued:
                    successor = self._queued[0]
                    successor.lead = True
                    successor.ready.set()
                else:
                    self._busy = False
            for call in batch:
                call.ready.set()

    def _run(self, batch: list[_Call]) -> None:
        if len(batch) > 1:
            try:
                found = self._write([row for call in batch for row in call.rows], max(c.now for c in batch))
            except Exception:  # written alone below, where each caller gets its own error
                pass
            else:
                self.shared_writes += 1
                for call in batch:
                    call.result = found
                return
        for call in batch:
            try:
                call.result = self._write(call.rows, call.now)
            except BaseException as exc:  # the caller's own: raised in its thread
                call.error = exc
