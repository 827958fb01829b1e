"""One worker: claim → run → ack, on ``concurrency`` slot threads.

The fetch loop claims only as many jobs as there are free slots (a lease is never held
by a job that is not running), runs each on a slot thread, and each slot acks its own
job. Between claims an idle worker sleeps on a :mod:`wakeup <queuelab.store.wakeup>`
signal, not on a fixed poll. :mod:`queuelab.maintenance` keeps the leases alive.
"""

from __future__ import annotations

import logging
import os
import queue as stdlib_queue
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from queuelab.errors import LeaseLost, StoreError
from queuelab.execution import decide_after, run_task
from queuelab.models import Lease
from queuelab.policy import Decision
from queuelab.runtime import Runtime
from queuelab.store import WorkerInfo
from queuelab.store.wakeup import Wakeup, wakeup_for

log = logging.getLogger("queuelab.worker")

FINISH_ATTEMPTS = 5


@dataclass(slots=True, eq=False)
class Running:
    lease: Lease
    started_monotonic: float
    heartbeat_at: float
    finishing: bool = False  # the slot has the outcome and is acking it
    abandoned: bool = False  # timed out: whatever the task returns later is discarded


class Worker:
    def __init__(
        self,
        runtime: Runtime,
        *,
        concurrency: int = 1,
        queues: Sequence[str] | None = None,
        mode: str = "thread",
        exit_on_timeout: bool = False,
    ) -> None:
        self.runtime = runtime
        self.concurrency = concurrency
        self.queues = tuple(queues) if queues else None
        self.mode = mode
        # Process mode: a timed-out job cannot be stopped from another thread, so the
        # process records the timeout and exits; its supervisor starts a fresh one.
        self.exit_on_timeout = exit_on_timeout
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stop_event = threading.Event()
        self.hurry_event = threading.Event()  # a second signal: skip the grace period
        self._inbox: stdlib_queue.SimpleQueue[Running | None] = stdlib_queue.SimpleQueue()
        self._running: dict[str, Running] = {}
        self._lock = threading.Lock()
        self._slot_threads: list[threading.Thread] = []
        self._wakeup: Wakeup | None = None

    # -- life cycle -------------------------------------------------------------------

    def run(self) -> None:
        """Work until :attr:`stop_event` is set, then shut down gracefully."""
        from queuelab.maintenance import Maintenance

        self._wakeup = wakeup_for(self.runtime.db)
        self._register()
        maintenance = Maintenance(self)
        maintenance.start()
        for _ in range(self.concurrency):
            self._start_slot()
        log.info(
            "worker %s started: %d slot(s), queues %s, %s",
            self.id,
            self.concurrency,
            ",".join(self.queues or ["*"]),
            self.runtime.db.describe(),
        )
        try:
            self._fetch_loop()
        finally:
            self._drain()
            maintenance.stop()
            self._say_goodbye()
            self._wakeup.close()

    def stop(self) -> None:
        """Stop claiming and shut down gracefully; called twice, skip the grace period."""
        if self.stop_event.is_set():
            self.hurry_event.set()
        self.stop_event.set()
        if self._wakeup is not None:
            self._wakeup.poke()

    def running(self) -> list[Running]:
        with self._lock:
            return list(self._running.values())

    # -- claim ------------------------------------------------------------------------

    def _fetch_loop(self) -> None:
        assert self._wakeup is not None
        wake = self._wakeup
        while not self.stop_event.is_set():
            wake.mark()
            free = self.concurrency - len(self._running)
            if free <= 0:
                wake.wait(self.runtime.settings.poll_interval_seconds)
                continue
            if self.claim_once(free):
                continue
            wake.wait(self._idle_timeout())

    def claim_once(self, limit: int) -> int:
        """Claim up to ``limit`` jobs and hand them to the slots; return how many."""
        now = self.runtime.clock.now()
        try:
            leases = self.runtime.leases.claim(self.id, self.queues, limit, now, tasks=self._task_names())
        except StoreError as exc:
            log.error("claim failed, retrying after a pause: %s", exc)
            self.stop_event.wait(1.0)
            return 0
        started = time.monotonic()
        entries = [Running(lease, started, heartbeat_at=started) for lease in leases]
        with self._lock:
            for entry in entries:
                self._running[entry.lease.job_id] = entry
        for entry in entries:
            self._inbox.put(entry)
        return len(entries)

    def _idle_timeout(self) -> float:
        timeout = self.runtime.settings.poll_interval_seconds
        try:
            next_run = self.runtime.leases.next_run_at(self.queues)
        except StoreError:
            return timeout
        if next_run is not None:
            timeout = min(timeout, max(0.0, next_run - self.runtime.clock.now()) + 0.001)
        return timeout

    def _task_names(self) -> list[str]:
        return [task.name for task in self.runtime.tasks]

    # -- run --------------------------------------------------------------------------

    def _start_slot(self) -> None:
        thread = threading.Thread(target=self._slot, name=f"queuelab-slot-{len(self._slot_threads)}", daemon=True)
        self._slot_threads.append(thread)
        thread.start()

    def _slot(self) -> None:
        while (entry := self._inbox.get()) is not None:
            if not self._execute(entry):
                return  # abandoned after a timeout: a replacement slot has taken over

    def _execute(self, entry: Running) -> bool:
        """Run, decide, ack. False if the job was abandoned meanwhile (this thread must end)."""
        lease = entry.lease
        outcome = run_task(self.runtime, lease)
        decision = decide_after(self.runtime, lease, outcome)
        with self._lock:
            if entry.abandoned:
                return False
            entry.finishing = True
        self.finish(lease, decision)
        with self._lock:
            self._running.pop(lease.job_id, None)
        if self._wakeup is not None:
            self._wakeup.poke()
        return True

    def finish(self, lease: Lease, decision: Decision) -> None:
        """Ack the attempt, retrying transient database errors; a lost lease is logged."""
        for attempt in range(1, FINISH_ATTEMPTS + 1):
            try:
                self.runtime.leases.finish(lease, decision, self.id, self.runtime.clock.now())
                return
            except LeaseLost as exc:
                log.warning("%s", exc)
                return
            except StoreError as exc:
                if attempt == FINISH_ATTEMPTS:
                    log.error(
                        "could not record the outcome of job %s; its lease will expire and it will be rescued: %s",
                        lease.job_id,
                        exc,
                    )
                    return
                time.sleep(0.1 * 2**attempt)

    def abandon(self, entry: Running) -> bool:
        """Stop waiting for a job (timed out, or released at shutdown) and give its slot to a
        fresh thread. False if the slot is already acking it."""
        with self._lock:
            if entry.finishing or entry.abandoned:
                return False
            entry.abandoned = True
            self._running.pop(entry.lease.job_id, None)
        if not self.stop_event.is_set():
            self._start_slot()
        if self._wakeup is not None:
            self._wakeup.poke()
        return True

    # -- shutdown ---------------------------------------------------------------------

    def _drain(self) -> None:
        """Stop claiming; let running jobs finish within the grace period; release the rest."""
        grace = self.runtime.settings.shutdown_grace_seconds
        deadline = time.monotonic() + grace
        if self._running:
            log.info("worker %s stopping: waiting up to %gs for %d running job(s)", self.id, grace, len(self._running))
        while self._running and time.monotonic() < deadline and not self.hurry_event.is_set():
            time.sleep(0.01)
        for entry in self.running():
            if not self.abandon(entry):
                continue
            try:
                released = self.runtime.leases.release(entry.lease, self.id, self.runtime.clock.now())
            except StoreError as exc:
                log.error(
                    "could not release job %s; it will be rescued when its lease expires: %s", entry.lease.job_id, exc
                )
                continue
            if released:
                log.warning(
                    "worker %s released job %s unfinished after the %gs grace period; no attempt spent",
                    self.id,
                    entry.lease.job_id,
                    grace,
                )
        # Slots already acking when the grace period ended get a moment to commit.
        ack_deadline = time.monotonic() + 5.0
        while any(e.finishing for e in self.running()) and time.monotonic() < ack_deadline:
            time.sleep(0.01)
        for _ in self._slot_threads:
            self._inbox.put(None)

    def _register(self) -> None:
        now = self.runtime.clock.now()
        info = WorkerInfo(
            id=self.id,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            queues=",".join(self.queues or ["*"]),
            concurrency=self.concurrency,
            mode=self.mode,
            started_at=now,
            last_seen_at=now,
        )
        self.runtime.workers.register(info)

    def _say_goodbye(self) -> None:
        try:
            self.runtime.workers.stop(self.id, self.runtime.clock.now())
        except StoreError as exc:
            log.warning("could not mark worker %s stopped: %s", self.id, exc)
        log.info("worker %s stopped", self.id)
