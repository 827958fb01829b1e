"""One worker: claim → run → ack, on ``concurrency`` slot threads.

A *turn* writes the job path: in ONE transaction it acks every attempt that finished
since the last turn and claims as many new jobs as there are free slots, so a busy worker
spends one write per batch, not two per job, and never holds a lease on a job that is not
running. One turn runs at a time (``_turn_lock``). The dispatcher (the thread that calls
:meth:`Worker.run`) takes turns while the worker is idle, gathers the acks of short jobs
that finish together, and sleeps on a :mod:`wakeup <queuelab.store.wakeup>` signal, not a
fixed poll, when nothing is runnable. A slot thread whose job ends while no other slot is
busy takes the turn itself and runs the first job it claims: a steady stream through one
slot then costs no hand-off between threads per job. :mod:`queuelab.maintenance` keeps the
leases alive and rescues those of vanished workers.

**Prefetch** (``Settings.prefetch``, 0 by default): a worker may claim up to that many jobs
beyond its free slots. They wait in the worker, their leases kept alive, and the slots run
them without a turn each: a turn is due only when half the prefetch has been used, or an
ack has waited ACK_DELAY_SECONDS. Short jobs then cost one transaction per batch, as with
many slots. The price, which is why it is off by default: a worker that dies holding
prefetched jobs spends an attempt of each (they are rescued as LOST like the running one),
and a long job delays the jobs prefetched behind it while other workers may be idle. A
worker stopped gracefully hands its unstarted jobs back at once, without spending their
attempt. No job is prefetched while a running quota is set: a prefetched job holds one of
its user's running slots without running.
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
from dataclasses import dataclass, replace

from queuelab.errors import LeaseLost, StoreError
from queuelab.execution import decide_after, last_resort, run_task
from queuelab.models import Lease
from queuelab.policy import Decision
from queuelab.runtime import Runtime
from queuelab.store import WorkerInfo
from queuelab.store.claims import ClaimFilter
from queuelab.store.leases import Finished
from queuelab.store.wakeup import Wakeup, wakeup_for

log = logging.getLogger("queuelab.worker")

STORE_RETRY_SECONDS = 0.5
# Jobs that run shorter than this (on a moving average) finish in bursts: the dispatcher
# then waits up to this long for the other busy slots to finish, so that one transaction
# acks them all and claims as many, instead of one transaction per job. Longer jobs are
# acked at once: for them the wait would only idle a slot.
ACK_GATHER_SECONDS = 0.001
# Waits for a job held back by a running quota on PostgreSQL (see _idle_timeout): the
# first, doubled each time nothing came free, up to the last.
HELD_WAIT_SECONDS = 0.01
HELD_WAIT_MAX_SECONDS = 0.25
# With prefetch, the longest a finished job's ack waits for the next turn.
ACK_DELAY_SECONDS = 0.02
ACK_GRACE_SECONDS = 5.0


@dataclass(slots=True, eq=False)
class Running:
    lease: Lease
    started_monotonic: float  # when it was claimed, then when a slot started it
    heartbeat_at: float
    started: bool = False  # False while a prefetched job waits for a slot
    finished: Finished | None = None  # the outcome, until a turn has written it
    finished_monotonic: float = 0.0
    abandoned: bool = False  # timed out or released: whatever the task returns is discarded
    dropped: bool = False  # prefetched, and its lease was lost before it started: not run


class _Retire:
    """Put in the inbox after a shrink: wakes an idle slot thread so it can retire."""


RETIRE = _Retire()


class Worker:
    def __init__(
        self,
        runtime: Runtime,
        *,
        concurrency: int = 1,
        queues: Sequence[str] | None = None,
        mode: str = "thread",
        exit_on_timeout: bool = False,
        release_on_stop: bool = True,
        parent_pid: int | None = None,
        prefetch: int | None = None,
    ) -> None:
        self.runtime = runtime
        self.concurrency = concurrency
        self.prefetch = runtime.settings.prefetch if prefetch is None else prefetch
        self.queues = tuple(queues) if queues else None
        self.mode = mode
        # Process mode: a timed-out job cannot be stopped from another thread, so the
        # process records the timeout and exits; its supervisor starts a fresh one.
        self.exit_on_timeout = exit_on_timeout
        # A worker whose process exits after stopping hands unfinished jobs back. One that
        # lives on (a pool in a notebook) must not: the abandoned thread is still running
        # the job, so it lets the lease expire and the job be rescued instead.
        self.release_on_stop = release_on_stop
        # A pool's child stops when its supervisor dies (SIGKILL, OOM): no orphan workers.
        self.parent_pid = parent_pid
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stop_event = threading.Event()
        self.hurry_event = threading.Event()  # a second signal: skip the grace period
        self._inbox: stdlib_queue.SimpleQueue[Running | _Retire | None] = stdlib_queue.SimpleQueue()
        # Keyed by (job id, lease token): after a lost lease this worker may claim the same
        # job again while the old attempt's thread still runs; both entries must count.
        self._running: dict[tuple[str, str], Running] = {}
        self._claiming = True  # False once a timed-out process is about to exit
        self._lock = threading.Lock()
        self._turn_lock = threading.Lock()  # one turn (ack + claim + dispatch) at a time
        self._slot_threads: list[threading.Thread] = []
        self._slots_lock = threading.Lock()  # resize() against run() starting the slots
        self._slots_started = False
        self._retiring = 0  # slot threads asked to end after a shrink, not yet ended
        self._wakeup: Wakeup | None = None
        self._run_seconds = 1.0  # moving average of how long a job ran (see ACK_GATHER_SECONDS)
        self._held_wait = HELD_WAIT_SECONDS  # see _idle_timeout
        self._unacked_since: float | None = None  # when the oldest unwritten outcome came

    # -- life cycle -------------------------------------------------------------------

    def run(self) -> None:
        """Work until :meth:`stop` is called, then shut down gracefully."""
        from queuelab.maintenance import Maintenance

        self._wakeup = wakeup_for(self.runtime.db)
        self._register()
        maintenance = Maintenance(self)
        maintenance.start()
        with self._slots_lock:
            self._slots_started = True
            for _ in range(self.concurrency):
                self._start_slot()
        log.info(
            "worker %s started: %d slot(s)%s, queues %s, %s",
            self.id,
            self.concurrency,
            f", prefetch {self.prefetch}" if self.prefetch else "",
            ",".join(self.queues or ["*"]),
            self.runtime.db.describe(),
        )
        try:
            self._dispatch_loop()
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
        self._poke()

    @property
    def size(self) -> int:
        return self.concurrency

    def resize(self, concurrency: int) -> None:
        """Run ``concurrency`` slots from now on. Growing starts slot threads at once.
        Shrinking is graceful: no job is interrupted or released; the dispatcher claims
        nothing until fewer than ``concurrency`` jobs run, and surplus slot threads end
        when they are next free. The worker's row in the store follows."""
        with self._slots_lock:
            before, self.concurrency = self.concurrency, concurrency
            if self._slots_started and not self.stop_event.is_set():
                self._resize_slots(concurrency - before)
        if concurrency != before:
            log.info("worker %s resized: %d -> %d slot(s)", self.id, before, concurrency)
            self._record_concurrency()
            self._poke()

    def _resize_slots(self, change: int) -> None:
        """Start or retire ``abs(change)`` slot threads (the caller holds the slots lock)."""
        if change > 0:
            kept = min(self._retiring, change)  # threads about to retire stay instead
            self._retiring -= kept
            for _ in range(change - kept):
                self._start_slot()
        for _ in range(-change):
            self._retiring += 1
            self._inbox.put(RETIRE)  # an idle thread takes it; a busy one retires after its job

    def _retire_one(self) -> bool:
        """True if the calling slot thread should end (a shrink is still owed a thread)."""
        with self._slots_lock:
            if self._retiring <= 0:
                return False
            self._retiring -= 1
            return True

    def _record_concurrency(self) -> None:
        try:
            self.runtime.workers.resize(self.id, self.concurrency, self.runtime.clock.now())
        except StoreError as exc:  # the next heartbeat writes it again
            log.warning("could not record worker %s's new size: %s", self.id, exc)

    def running(self) -> list[Running]:
        """Jobs holding a lease here: running, or finished and not yet acked."""
        with self._lock:
            return list(self._running.values())

    # -- dispatch ---------------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        assert self._wakeup is not None
        wake = self._wakeup
        while not self.stop_event.is_set():
            wake.mark()  # a slot that cannot take its turn pokes after this
            with self._turn_lock:
                finished = self._take_finished()
                if finished and self._run_seconds < ACK_GATHER_SECONDS and not self.prefetch:
                    finished = self._gather(wake)
                due, wanted = self._turn_due(finished)
                claimed: list[Running] = []
                claimed_at = self.runtime.clock.now()
                if due:
                    if not finished:
                        wake.watch()  # this claim may come back empty and end in the wait below
                    claimed = self._dispatch(self.settle(finished, wanted))
                    if claimed:
                        self._held_wait = HELD_WAIT_SECONDS
            if not due:
                # The slots are busy (or have prefetched jobs to run): a slot finishing
                # (a poke) or an ack waiting too long ends this wait.
                wake.wait(self._busy_timeout(finished), database=False)
            elif not claimed and not finished:
                wake.wait(self._idle_timeout(claimed_at))

    def _gather(self, wake: Wakeup) -> list[Finished]:
        """Wait briefly for the running slots to finish too (short jobs finish in bursts)."""
        deadline = time.monotonic() + ACK_GATHER_SECONDS
        while self._running_now() and (remaining := deadline - time.monotonic()) > 0:
            wake.wait(remaining, database=False)  # a slot that finishes pokes
            wake.mark()
        return self._take_finished()

    def _turn_due(self, finished: list[Finished]) -> tuple[bool, int]:
        """Whether to take a turn now, and how many jobs it should claim: enough to fill the
        free slots and the prefetch. Without prefetch a turn is due for any ack or free
        slot. With it, when half the prefetch is used up, or an ack has waited too long."""
        extra = self._prefetch_now()
        oldest = self._unacked_since
        with self._lock:
            unfinished = waiting = 0
            for e in self._running.values():
                if e.finished is None:
                    unfinished += 1
                    waiting += not e.started
        stopping = self.stop_event.is_set() or not self._claiming
        wanted = 0 if stopping else max(0, self.concurrency + extra - unfinished)
        low = extra // 2
        if finished and (
            not extra or waiting <= low or oldest is None or time.monotonic() - oldest >= ACK_DELAY_SECONDS
        ):
            return True, wanted
        return wanted > low, wanted

    def _prefetch_now(self) -> int:
        """Jobs to hold beyond the slots: ``prefetch``, or none while a running quota is set."""
        if not self.prefetch:
            return 0
        try:
            return 0 if self.runtime.leases.running_quota_set() else self.prefetch
        except StoreError:
            return 0

    def _busy_timeout(self, finished: list[Finished]) -> float:
        timeout = self.runtime.settings.poll_interval_seconds
        oldest = self._unacked_since
        if finished and self.prefetch and oldest is not None:
            timeout = min(timeout, max(0.0, oldest + ACK_DELAY_SECONDS - time.monotonic()))
        return timeout

    def settle(self, finished: list[Finished], wanted: int) -> list[Lease]:
        """Ack ``finished`` and claim up to ``wanted`` jobs in one transaction; return the
        new leases, for :meth:`_dispatch`. On a database error, the acks are kept for the
        next turn. The caller holds the turn lock."""
        which = ClaimFilter(self.id, self.queues, self._task_names())
        try:
            lost, claimed = self.runtime.leases.settle(finished, which, wanted, self.runtime.clock.now)
        except StoreError as exc:
            log.error("could not write acks or claim (will retry): %s", exc)
            self.stop_event.wait(STORE_RETRY_SECONDS)
            return []
        for lease in lost:
            log.warning(
                "job %s: the lease of attempt %d was lost (it expired and was rescued, or was "
                "released); its outcome was discarded",
                lease.job_id,
                lease.attempt,
            )
        self._forget(finished)
        return claimed

    def _take_finished(self) -> list[Finished]:
        with self._lock:
            return [e.finished for e in self._running.values() if e.finished is not None]

    def stop_claiming(self) -> None:
        """No more claims (a process about to exit after a timeout)."""
        self._claiming = False

    def _forget(self, finished: list[Finished]) -> None:
        with self._lock:
            for done in finished:
                key = (done.lease.job_id, done.lease.token)
                entry = self._running.get(key)
                if entry is not None and entry.finished is done:
                    del self._running[key]
            self._unacked_since = min(
                (e.finished_monotonic for e in self._running.values() if e.finished), default=None
            )

    def _dispatch(self, leases: list[Lease], *, keep: bool = False) -> list[Running]:
        """Hand new leases to the slot threads. ``keep``: the calling slot thread runs the
        first itself (it is not put in the inbox)."""
        started = time.monotonic()
        entries = [Running(lease, started, heartbeat_at=started) for lease in leases]
        with self._lock:
            for entry in entries:
                self._running[(entry.lease.job_id, entry.lease.token)] = entry
        for entry in entries[1:] if keep else entries:
            self._inbox.put(entry)
        return entries

    def _idle_timeout(self, claimed_at: float) -> float:
        """Sleep until the next delayed job is due, at most the poll interval. A job that
        was already due when the claim came back empty is not for us (another task, a
        paused queue, a user at quota): wait for a change rather than spin on it. On
        PostgreSQL under running quotas that change (an ack freeing a user's slot, another
        claimer's commit) sends no NOTIFY: look again after a short wait, doubled each
        time it finds nothing, up to HELD_WAIT_MAX_SECONDS."""
        timeout = self.runtime.settings.poll_interval_seconds
        try:
            next_run = self.runtime.leases.next_run_at(self.queues, tasks=self._task_names())
            held = next_run is not None and next_run <= claimed_at and self.runtime.leases.held_back_wakes_nobody()
        except StoreError:
            return timeout
        if next_run is not None and next_run > claimed_at:
            timeout = min(timeout, max(0.0, next_run - self.runtime.clock.now()) + 0.001)
        elif held:
            timeout = min(timeout, self._held_wait)
            self._held_wait = min(2 * self._held_wait, HELD_WAIT_MAX_SECONDS)
        return timeout

    def _task_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.runtime.tasks)

    def _poke(self) -> None:
        if self._wakeup is not None:
            self._wakeup.poke()

    # -- run --------------------------------------------------------------------------

    def _start_slot(self) -> None:
        thread = threading.Thread(target=self._slot, name=f"queuelab-slot-{len(self._slot_threads)}", daemon=True)
        self._slot_threads.append(thread)
        thread.start()

    def _slot(self) -> None:
        entry = self._inbox.get()
        while entry is not None:
            if isinstance(entry, _Retire):
                if self._retire_one():
                    return
                entry = self._inbox.get()
                continue  # the pool grew again meanwhile: this thread stays
            if entry.dropped:
                entry = self._inbox.get()
                continue
            if not self._execute(entry):
                return  # abandoned after a timeout: a replacement slot has taken over
            if self._retire_one():
                self._poke()
                return  # the pool shrank while this job ran
            entry = self._own_turn(entry) or self._inbox.get()

    def _own_turn(self, done: Running) -> Running | None:
        """After a job: ack it and claim the next one from this thread, when no other
        slot is running and no other turn is; return the job to run next. Otherwise (or
        if the claim found nothing) poke the dispatcher, which takes the turn. With
        prefetched jobs left to run and no turn due, return None: the inbox has them."""
        if self._prefetched_enough(done):
            return None
        gather = self._run_seconds < ACK_GATHER_SECONDS  # short jobs: the dispatcher batches acks
        if self._turn_lock.acquire(blocking=False):
            try:
                if not (self.stop_event.is_set() or (gather and self._running_now())):
                    finished = self._take_finished()
                    due, wanted = self._turn_due(finished)
                    if not due:
                        if self._unacked_since == done.finished_monotonic:
                            self._poke()  # the first ack to wait: the dispatcher times its delay
                        return None
                    # Jobs prefetched earlier run first: keep one only if none waits.
                    keep = self._inbox.qsize() == 0
                    mine = self._dispatch(self.settle(finished, wanted), keep=keep)
                    if mine:
                        return mine[0] if keep else None  # (the inbox has the rest)
            except Exception:  # a bug: leave the turn to the dispatcher, which reports it too
                log.exception("worker %s: a slot's turn failed", self.id)
            finally:
                self._turn_lock.release()
        self._poke()
        return None

    def _prefetched_enough(self, done: Running) -> bool:
        """The fast way to tell no turn is due (see _turn_due): more than half the prefetch
        still waits in the inbox and no ack has waited long. If ``done`` is the first
        unwritten outcome, the dispatcher is poked to time its ack's delay."""
        since = self._unacked_since
        if not self.prefetch or since is None or self._inbox.qsize() <= self.prefetch // 2:
            return False
        age = time.monotonic() - since
        if age >= ACK_DELAY_SECONDS or self.stop_event.is_set():
            return False
        if since == done.finished_monotonic:
            self._poke()
        return True

    def _execute(self, entry: Running) -> bool:
        """Run and decide; record the outcome for the next turn. False if the job was
        abandoned meanwhile (this thread must then end: another has taken its slot).
        Whatever the task does, the slot survives and the attempt gets an outcome."""
        with self._lock:
            if entry.abandoned:
                return False
            if self.stop_event.is_set() or not self._claiming:
                return False  # stopping: a job not started yet is handed back instead
            entry.started_monotonic = time.monotonic()  # before `started`: timeouts read both unlocked
            entry.started = True
            if self.prefetch:  # it may have waited since its claim
                entry.lease = replace(entry.lease, started_at=self.runtime.clock.now())
        lease = entry.lease
        try:
            decision = decide_after(self.runtime, lease, run_task(self.runtime, lease))
        except BaseException as exc:
            decision = last_resort(self.runtime, lease, exc)
        with self._lock:
            if entry.abandoned:
                return False
            entry.finished = Finished(lease, decision, self.runtime.clock.now())
            entry.finished_monotonic = time.monotonic()
            if self._unacked_since is None:
                self._unacked_since = entry.finished_monotonic
            ran = entry.finished_monotonic - entry.started_monotonic
            self._run_seconds += 0.2 * (ran - self._run_seconds)
        return True

    def finish(self, lease: Lease, decision: Decision) -> None:
        """Ack one attempt at once (timeouts); a lost lease or a database error is logged."""
        try:
            self.runtime.leases.finish(lease, decision, self.id, self.runtime.clock.now())
        except LeaseLost as exc:
            log.warning("%s", exc)
        except StoreError as exc:
            log.error(
                "could not record the outcome of job %s; it will be rescued when its lease expires: %s",
                lease.job_id,
                exc,
            )

    def abandon(self, entry: Running, *, replace: bool = True) -> bool:
        """Stop waiting for a job (timed out, or released at shutdown) and give its slot to
        a fresh thread. False if the job has already finished."""
        with self._lock:
            if entry.finished is not None or entry.abandoned:
                return False
            entry.abandoned = True
            self._running.pop((entry.lease.job_id, entry.lease.token), None)
        if replace and not self.stop_event.is_set():
            self._start_slot()
        self._poke()
        return True

    # -- shutdown ---------------------------------------------------------------------

    def _drain(self) -> None:
        """Stop claiming; let running jobs finish within the grace period, acking as they
        do; release the rest without spending their attempt."""
        grace = self.runtime.settings.shutdown_grace_seconds
        deadline = time.monotonic() + grace
        self.release_waiting()
        if self._busy():
            log.info("worker %s stopping: waiting up to %gs for running jobs", self.id, grace)
        while self._busy() and time.monotonic() < deadline and not self.hurry_event.is_set():
            self._flush()
            time.sleep(0.01)
        for entry in self.running():
            if not self.abandon(entry, replace=False):
                continue
            if self.release_on_stop or not entry.started:  # (a job that never started can always go back)
                self._release(entry.lease, grace)
            else:
                log.warning(
                    "job %s is still running after the %gs grace period; its thread cannot be stopped, "
                    "so its lease will expire and it will be rescued",
                    entry.lease.job_id,
                    grace,
                )
        ack_deadline = time.monotonic() + ACK_GRACE_SECONDS
        while self.running() and time.monotonic() < ack_deadline:
            self._flush()
            if self.running():
                time.sleep(0.05)
        for _ in self._slot_threads:
            self._inbox.put(None)

    def _busy(self) -> bool:
        return any(e.finished is None for e in self.running())

    def _running_now(self) -> bool:
        """Whether a slot is running a job, or is about to: a job dispatched without
        prefetch goes to a free slot at once. Prefetched jobs waiting do not count."""
        return any(e.finished is None and (e.started or not self.prefetch) for e in self.running())

    def release_waiting(self) -> None:
        """Hand back the prefetched jobs no slot has started, without spending their
        attempt (a stop, or a process about to exit after a timeout). The caller has
        stopped claiming; taking the turn lock waits for a turn already under way, so
        that what it claims is handed back too."""
        with self._turn_lock, self._lock:
            waiting = [e for e in self._running.values() if not (e.started or e.finished or e.abandoned)]
            for entry in waiting:
                entry.abandoned = True  # a slot that takes it from the inbox skips it
                del self._running[(entry.lease.job_id, entry.lease.token)]
        if not waiting:
            return
        try:
            leases = [entry.lease for entry in waiting]
            released = self.runtime.leases.release_many(leases, self.id, self.runtime.clock.now(), started=False)
        except StoreError as exc:
            log.error("could not hand back %d prefetched job(s); they will be rescued: %s", len(waiting), exc)
            return
        if released:
            log.info("worker %s handed back %d prefetched job(s) it had not started", self.id, released)

    def prepare_exit(self) -> None:
        """Before a process exits after a timeout (claiming has stopped): write the
        outcomes of finished jobs and hand back the prefetched ones."""
        self._flush()
        self.release_waiting()

    def drop_lost(self, leases: Sequence[Lease]) -> list[Lease]:
        """Leases a heartbeat found lost (rescued elsewhere): a prefetched job among them
        that no slot has started is not run here. Returns those."""
        dropped = []
        with self._lock:
            for lease in leases:
                entry = self._running.get((lease.job_id, lease.token))
                if entry is not None and not entry.started and entry.finished is None:
                    entry.dropped = True
                    del self._running[(lease.job_id, lease.token)]
                    dropped.append(lease)
        return dropped

    def _flush(self) -> None:
        with self._turn_lock:
            finished = self._take_finished()
            if finished:
                self.settle(finished, 0)

    def _release(self, lease: Lease, grace: float) -> None:
        try:
            released = self.runtime.leases.release(lease, self.id, self.runtime.clock.now())
        except StoreError as exc:
            log.error("could not release job %s; it will be rescued when its lease expires: %s", lease.job_id, exc)
            return
        if released:
            log.warning(
                "worker %s released job %s unfinished after the %gs grace period; no attempt spent",
                self.id,
                lease.job_id,
                grace,
            )

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
