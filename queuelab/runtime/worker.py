"""One worker: claim → run → ack, on ``concurrency`` slot threads.

A *turn* acks every attempt that finished since the last turn and claims what
:func:`~queuelab.runtime.turns.plan_turn` says, in ONE transaction, so a busy worker spends
one write per batch, not two per job. One turn runs at a time (``_turn_lock``). The
dispatcher (the thread in :meth:`Worker.run`) takes turns while the worker is idle,
gathers the acks of short jobs that finish together, enforces timeouts, and sleeps on a
:mod:`wakeup <queuelab.store.wakeup>` signal when nothing is runnable. A slot thread whose
job ends while no other slot is busy takes the turn itself and runs the first job it
claims: a steady stream through one slot costs no hand-off between threads per job.
:meth:`Worker.step` runs one turn on the calling thread, for tests and tools.

The parts: the jobs held and their states (:mod:`.held`), the slot threads (:mod:`.slots`),
the turn rules (:mod:`.turns`), the store writes and what their failures mean
(:mod:`.writes`), the leases kept alive (:mod:`.maintenance`), the event loop of the async
jobs (:mod:`.coroutines`), the jobs left at the end of a stop (:mod:`.stopping`).

**Claiming ahead** (prefetch): a worker claims jobs beyond its free slots and runs them
without a turn each. With ``Settings.prefetch`` on "auto" (None, the default) it claims as
many as ``turns.AHEAD_SECONDS`` of work at its jobs' measured run time, at most
``bounds.AUTO_PREFETCH``: short jobs come in batches, one transaction per batch, and long
ones one per free slot. A number claims that many (0: only for free slots). A job claimed
ahead has no recorded start until it starts and a heartbeat records it: a worker that dies
holding it spends no attempt of it (see ``LeaseStore.rescue``), and a stop hands it back.
Nothing is claimed ahead while a running quota is set (such a job would hold one of its
user's running slots without running).

**Async jobs** (a task that is an ``async def``) do not take a slot: each runs as a
coroutine on the worker's event loop (:mod:`.coroutines`), up to ``async_concurrency`` at
once. A turn claims them apart from the slots' jobs (a second claim in its transaction, for
the loop's free places) and they start at once; their outcomes are acked by the turns like
any other. Past its timeout an async job's coroutine is cancelled (no thread is lost, no
process exits); at a stop, those still running after the grace period are cancelled and
handed back without spending their attempt.

**Cancelling a running job** (``q.cancel``): the store records the request on the job's
row; the maintenance loop reads, once per tick, which of the jobs held here have one
(:meth:`~queuelab.store.leases.LeaseStore.cancel_requests`) and calls
:meth:`Worker.cancel`. That sets the job's ``cancel`` event (``current_job().cancelled``;
``check_cancelled()`` and ``progress()`` raise :class:`~queuelab.JobCancelled`) and cancels
an async job's coroutine; the task's outcome is then a cancel, acked CANCELLED with its
attempt unspent. A slot's job still running ``Settings.cancel_grace_seconds`` later is
stopped as a timed-out one is: in process mode the process acks it and exits; in thread
mode its thread is abandoned (a thread cannot be killed) and a fresh slot takes its place.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Sequence

from queuelab.bounds import Prefetch, resolve_prefetch
from queuelab.errors import StoreError
from queuelab.models import Lease
from queuelab.policy import Decision
from queuelab.runtime import events, turns
from queuelab.runtime.context import Runtime
from queuelab.runtime.coroutines import Coroutines
from queuelab.runtime.execution import attempt, attempt_coroutine, cancelled, timed_out
from queuelab.runtime.held import Entry, EntryState, HeldJobs
from queuelab.runtime.maintenance import Maintenance
from queuelab.runtime.scheduler import Scheduler, define_all
from queuelab.runtime.slots import Ran, Slots
from queuelab.runtime.stopping import release_left
from queuelab.runtime.writes import WorkerWrites
from queuelab.store import WorkerInfo
from queuelab.store.claims import ClaimFilter
from queuelab.store.leases import Finished
from queuelab.store.wakeup import Wakeup, wakeup_for

log = logging.getLogger("queuelab.worker")

STORE_RETRY_SECONDS = 0.5
# After a turn hands jobs to free slots (a submit woke an idle worker), the dispatcher waits
# up to this long for a slot to start one before it plans again. Python runs one thread at a
# time: the slot woken by the hand-over would otherwise start only when the dispatcher next
# waits on the database, after the Python of the next turn (a claim ahead): 0.6-0.8 ms
# later on PostgreSQL after an idle spell, about a third of a submit-to-start p50. The wait
# ends as soon as a slot starts a job; it is bounded for a slot that cannot (lanes busy).
HANDOFF_SECONDS = 0.005
ACK_GRACE_SECONDS = 5.0
TIMEOUT_EXIT_CODE = 70  # a process worker exits with it to kill a job past its timeout


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
        prefetch: Prefetch = None,
        async_concurrency: int | None = None,
        scheduler: bool = True,
    ) -> None:
        self.runtime = runtime
        self.concurrency = concurrency
        # Async jobs at once on the event loop (None: the setting), beside the slots.
        self.async_concurrency = async_concurrency or runtime.settings.async_concurrency
        # Every worker may enqueue periodic jobs' ticks; each tick is enqueued once (see
        # queuelab.runtime.scheduler), so running one in every worker only adds redundancy.
        self.scheduler = Scheduler(runtime) if scheduler else None
        self.prefetch = resolve_prefetch(prefetch, runtime.settings.prefetch)  # None: auto
        self._ahead = 0  # claimed ahead now: follows the jobs' run time (see _prefetch_now)
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
        self.held = HeldJobs()
        self.writes = WorkerWrites(runtime, self.id)
        self.slots = Slots(self._run_in_slot, self._own_turn, self._poke)
        self.coroutines = Coroutines(self._run_coroutine)
        self._claiming = True  # False once a timed-out process is about to exit
        self._turn_lock = threading.Lock()  # one turn (ack + claim + dispatch) at a time
        self._wakeup: Wakeup | None = None
        self._held_wait = turns.HELD_WAIT_SECONDS
        self._handing_over = False  # the dispatcher waits for a slot to start (see HANDOFF_SECONDS)
        self._slot_started = threading.Event()

    # -- life cycle -------------------------------------------------------------------

    def run(self) -> None:
        """Work until :meth:`stop` is called, then shut down gracefully."""
        if self.scheduler is not None:
            define_all(self.runtime)  # raises here, before anything starts, if it cannot
        declared = {t.name: t.throttle for t in self.runtime.tasks if t.throttle is not None}
        self.runtime.limits.declare_task_throttles(declared, self.runtime.clock.now())
        self._wakeup = wakeup_for(self.runtime.db)
        maintenance = Maintenance(self.runtime, self.held, self.info(), lambda: self.concurrency, self.cancel).start()
        if self.scheduler is not None:
            self.scheduler.start()
        self.slots.start(self.concurrency)
        log.info(
            "worker %s started: %d slot(s)%s%s, queues %s, %s",
            self.id,
            self.concurrency,
            f", prefetch {'auto' if self.prefetch is None else self.prefetch}" if self.prefetch != 0 else "",
            f", {self.async_concurrency} async" if any(t.is_async for t in self.runtime.tasks) else "",
            ",".join(self.queues or ["*"]),
            self.runtime.db.describe(),
        )
        try:
            self._dispatch_loop()
        finally:
            if self.scheduler is not None:
                self.scheduler.stop()
            self._drain()
            maintenance.stop()
            self._wakeup.close()
            log.info("worker %s stopped", self.id)

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
        Shrinking is graceful: no job is interrupted or released; the worker claims
        nothing until fewer than ``concurrency`` jobs run, and surplus slot threads end
        when they are next free. The worker's row in the store follows."""
        change, self.concurrency = concurrency - self.concurrency, concurrency
        if not self.stop_event.is_set():
            self.slots.resize(change)
        if change:
            log.info("worker %s resized: %d -> %d slot(s)", self.id, concurrency - change, concurrency)
            try:
                self.runtime.workers.resize(self.id, self.concurrency, self.runtime.clock.now())
            except StoreError as exc:  # the next heartbeat writes it again
                log.warning("could not record worker %s's new size: %s", self.id, exc)
            self._poke()

    # -- turns --------------------------------------------------------------------------

    def step(self, now: float | None = None) -> list[Lease]:
        """One turn on the calling thread, for tests and tools: enforce timeouts, ack what
        has finished, claim what the plan for ``now`` (monotonic seconds) asks for, then run
        each job held here that no slot has started, to its end. Their outcomes are acked
        by the next step (or :meth:`flush`). Returns the leases run. A worker driven by
        ``step`` runs no threads: do not also call :meth:`run`."""
        mono = time.monotonic() if now is None else now
        self.enforce_timeouts(mono)
        with self._turn_lock:
            finished = self.held.finished()
            plan = self._plan(len(finished), mono)
            if plan.due:
                self.held.add(self._turn(finished, plan), mono, self._is_async)
        waiting = [e for e in self.held.entries() if e.state is EntryState.WAITING]
        return [e.lease for e in waiting if self._run_to_end(e, mono)]

    def _run_to_end(self, entry: Entry, now: float) -> bool:
        """:meth:`_run` a slot's job on this thread, or an async one on the loop, waiting."""
        if not entry.coroutine:
            return self._run(entry, now)
        self.coroutines.start(entry).result()
        return entry.state is EntryState.FINISHED

    def flush(self) -> None:
        """Ack every finished job now, claiming nothing."""
        with self._turn_lock:
            finished = self.held.finished()
            if finished:
                self._turn(finished, None)

    def _plan(self, finished: int, now: float) -> turns.TurnPlan:
        counts = self.held.counts()
        self._ahead = self._prefetch_now()
        held = self.held
        if held.solo_runs:
            # The run time of jobs that ran alone, unless every job's (overlaps included) is
            # shorter: the first job alone may have been slow (a cold start), and with every
            # lane open short jobs seldom run alone to bring that average down again.
            run = min(held.solo_run_seconds, held.run_seconds)
            self.slots.set_lanes(turns.lanes(self.concurrency, run, held.solo_wait_ratio))
        else:
            self.slots.set_lanes(turns.lanes(self.concurrency, None, None))
        snapshot = turns.TurnSnapshot(
            concurrency=self.concurrency,
            prefetch=self._ahead,
            waiting=counts.waiting,
            running=counts.running,
            finished=finished,
            oldest_unacked=counts.oldest_unacked,
            stopping=self.stop_event.is_set() or not self._claiming,
            poll_seconds=self.runtime.settings.poll_interval_seconds,
            async_free=max(0, self.async_concurrency - counts.async_live) if self._async_tasks else 0,
        )
        return turns.plan_turn(snapshot, now)

    def _prefetch_now(self) -> int:
        """Jobs to hold beyond the slots: ``prefetch``, or on auto as many as the jobs' run
        time justifies; none while a running quota or an execution throttle is set."""
        runs = self.held.run_seconds if self.held.runs else None
        ahead = turns.claim_ahead(self.prefetch, self.concurrency, runs)
        if not ahead:
            return 0
        try:
            return 0 if self.runtime.leases.claims_held_back() else ahead
        except StoreError:
            return 0

    def _turn(self, finished: list[Finished], plan: turns.TurnPlan | None) -> list[Lease]:
        """Ack ``finished`` and claim what ``plan`` says (None: nothing) in one transaction
        (the caller holds the turn lock); the new leases. On a database error the acks are
        kept for the next turn, after a pause."""
        start, ahead = (plan.start, plan.claim - plan.start) if plan is not None else (0, 0)
        sync = ClaimFilter(self.id, self.queues, self._sync_tasks)
        also = (ClaimFilter(self.id, self.queues, self._async_tasks), plan.claim_async) if plan else None
        with self.held.turn():
            claimed = self.writes.turn(finished, sync, start, ahead, also if also and also[1] else None)
        if claimed is None:
            self.stop_event.wait(STORE_RETRY_SECONDS)
            return []
        self.held.forget(finished)
        return claimed

    def _dispatch_loop(self) -> None:
        assert self._wakeup is not None
        wake = self._wakeup
        while not self.stop_event.is_set():
            wake.mark()  # a slot that cannot take its turn pokes after this
            self._check_parent()
            self.enforce_timeouts(time.monotonic())
            with self._turn_lock:
                finished = self.held.finished()
                if finished and turns.gathers_acks(self.held.run_seconds) and not self._ahead:
                    finished = self._gather(wake)
                plan = self._plan(len(finished), time.monotonic())
                claimed_at = self.runtime.clock.now()
                claimed: list[Entry] = []
                if plan.due:
                    if not finished:
                        wake.watch()  # this claim may come back empty and end in the wait below
                    self._slot_started.clear()
                    self._handing_over = plan.start > 0
                    claimed, _ = self._dispatch(self._turn(finished, plan))
                    if claimed:
                        self._held_wait = turns.HELD_WAIT_SECONDS
            if self._handing_over:
                if any(not entry.coroutine for entry in claimed):
                    self._slot_started.wait(HANDOFF_SECONDS)  # a slot starts its job first
                self._handing_over = False
            if not plan.due:  # busy: a slot finishing (a poke) or an ack waiting too long ends this wait
                wake.wait(self._until_timeout(plan.wait_seconds), database=False)
            elif len(claimed) < plan.claim + plan.claim_async and not finished:
                # The claim came back short: nothing more is runnable now. Claiming again at
                # once would only read an empty queue beside the job just started; a submit
                # (or a slot's poke) since watch() ends this wait at once.
                wake.wait(self._until_timeout(self._idle_wait(claimed_at)))

    def _gather(self, wake: Wakeup) -> list[Finished]:
        """Wait briefly for the running slots to finish too (short jobs finish in bursts)."""
        deadline = time.monotonic() + turns.ACK_GATHER_SECONDS
        while self._running_now() and (remaining := deadline - time.monotonic()) > 0:
            wake.wait(remaining, database=False)  # a slot that finishes pokes
            wake.mark()
        return self.held.finished()

    def _running_now(self) -> bool:
        """Whether a slot runs a job, or is about to: a job dispatched without prefetch
        goes to a free slot at once. Prefetched jobs waiting do not count."""
        counts = self.held.counts()
        return bool(counts.running or (counts.waiting and not self._ahead))

    def _idle_wait(self, claimed_at: float) -> float:
        try:
            leases = self.runtime.leases
            next_run = leases.next_run_at(self.queues, tasks=self._tasks)
            if next_run is not None and next_run <= claimed_at:  # due, yet not claimed: throttled?
                next_run = leases.throttle_frees_at(self.queues, self._tasks, claimed_at) or next_run
            held = next_run is not None and next_run <= claimed_at and leases.held_back_wakes_nobody()
        except StoreError:
            return self.runtime.settings.poll_interval_seconds
        wait = turns.idle_wait(
            next_run_at=next_run,
            claimed_at=claimed_at,
            now_wall=self.runtime.clock.now(),
            held_back_wakes_nobody=held,
            held_wait=self._held_wait,
            poll_seconds=self.runtime.settings.poll_interval_seconds,
        )
        self._held_wait = wait.next_held_wait
        return wait.seconds

    def _until_timeout(self, wait: float) -> float:
        """``wait``, cut short to wake when the first running job passes its timeout."""
        deadline = self.held.next_deadline()
        return wait if deadline is None else max(0.0, min(wait, deadline - time.monotonic() + 0.001))

    def _dispatch(self, leases: list[Lease], *, keep: bool = False) -> tuple[list[Entry], Entry | None]:
        """Hold new leases and hand them to the slot threads, or the async ones to the event
        loop; returns them, and the one ``keep`` kept: the calling slot thread runs the first
        slot job itself (it is not put in the inbox)."""
        with self.held.turn():  # handing out a turn's jobs is part of it
            entries = self.held.add(leases, time.monotonic(), self._is_async)
            kept: Entry | None = None
            for entry in entries:
                if entry.coroutine:
                    self.coroutines.start(entry)
                elif keep and kept is None:
                    kept = entry
                else:
                    self.slots.put(entry)
        return entries, kept

    @property
    def _tasks(self) -> tuple[str, ...]:
        """The tasks this worker can run: those registered now (a notebook may add more)."""
        return tuple(t.name for t in self.runtime.tasks)

    @property
    def _sync_tasks(self) -> tuple[str, ...]:
        """Those run by the slots."""
        return tuple(t.name for t in self.runtime.tasks if not t.is_async)

    @property
    def _async_tasks(self) -> tuple[str, ...]:
        """Those run on the event loop (``async def``)."""
        return tuple(t.name for t in self.runtime.tasks if t.is_async)

    def _is_async(self, lease: Lease) -> bool:
        return lease.task in self.runtime.tasks and self.runtime.tasks.get(lease.task).is_async

    def _poke(self) -> None:
        if self._wakeup is not None:
            self._wakeup.poke()

    # -- slots ----------------------------------------------------------------------------

    def _run_in_slot(self, entry: Entry) -> Ran:
        if self._run(entry):
            return Ran.FINISHED
        return Ran.END if self._stopping() or entry.state is EntryState.ABANDONED else Ran.SKIPPED

    def _stopping(self) -> bool:
        return self.stop_event.is_set() or not self._claiming

    def _run(self, entry: Entry, now: float | None = None) -> bool:
        """Run one held job and record its decision for the next turn. False if it was not
        run to a recorded outcome: dropped or abandoned, or the worker is stopping (a job
        not started yet is handed back instead). ``now``: a fixed monotonic time (step)."""
        started_at = self.runtime.clock.now() if self.prefetch != 0 else None  # it may have waited since its claim
        if self._stopping() or not self.held.start(entry, _mono(now), started_at):
            return False
        if self._handing_over:
            self._slot_started.set()
        if self.runtime.metrics is not None or events.log.isEnabledFor(logging.INFO):  # else: nothing to do
            events.started(self.runtime, entry.lease)
        cpu = time.thread_time()
        decision = attempt(self.runtime, entry.lease, entry.cancel)
        cpu = time.thread_time() - cpu
        return self.held.finish(entry, decision, self.runtime.clock.now(), _mono(now), cpu)

    async def _run_coroutine(self, entry: Entry) -> None:
        """Run one held async job on the event loop and record its decision for the next
        turn (a poke tells the dispatcher). Its start was recorded by its claim."""
        if self._stopping() or not self.held.start(entry, time.monotonic()):
            return
        if self.runtime.metrics is not None or events.log.isEnabledFor(logging.INFO):
            events.started(self.runtime, entry.lease)
        reports = self.coroutines.reports(
            lambda fraction, message: self.runtime.leases.report_progress(entry.lease, fraction, message)
        )
        decision = await attempt_coroutine(self.runtime, entry.lease, reports, entry.cancel)
        try:
            await reports.written()  # the last report is stored before the ack ends the lease
        except asyncio.CancelledError:
            if not entry.cancel.is_set():
                raise  # the worker is stopping
            asyncio.current_task().uncancel()  # type: ignore[union-attr]  # a cancel that came late: the outcome stands
        if self.held.finish(entry, decision, self.runtime.clock.now(), time.monotonic()):
            self._poke()

    def _own_turn(self, done: Entry) -> Entry | None:
        """After a job: ack it and claim the next one from this thread, when no other slot
        runs and no other turn is under way; return the job to run next. Otherwise (or if
        the claim found nothing) poke the dispatcher, which takes the turn. With prefetched
        jobs left to run and no turn due, return None: the inbox has them."""
        mono = time.monotonic()
        first_ack = self.held.oldest_unacked == done.finished_at  # the dispatcher times its delay
        skip = turns.skip_turn(
            prefetch=self._ahead,
            queued=self.slots.queued(),
            oldest_unacked=self.held.oldest_unacked,
            now=mono,
            stopping=self._stopping(),
        )
        # Jobs claimed ahead still wait in the inbox: run them while the dispatcher takes the
        # turn (its database wait overlaps their runs); a slot takes a turn itself only when
        # it would otherwise idle.
        busy = bool(self._ahead) and self.slots.queued() > 0
        if skip or busy or not self._turn_lock.acquire(blocking=False):
            if not skip or first_ack:
                self._poke()
            return None
        try:
            gather = not self._ahead and turns.gathers_acks(self.held.run_seconds) and self._running_now()
            if self.stop_event.is_set() or gather:
                self._poke()  # short jobs, none claimed ahead: the dispatcher gathers the acks of the busy slots
                return None
            finished = self.held.finished()
            plan = self._plan(len(finished), mono)
            if not plan.due:
                if first_ack:
                    self._poke()
                return None
            keep = self.slots.queued() == 0  # jobs prefetched earlier run first
            claimed, mine = self._dispatch(self._turn(finished, plan), keep=keep)
            if not claimed:
                self._poke()
            return mine  # (the inbox has the rest)
        except Exception:  # a bug: leave the turn to the dispatcher, which reports it too
            log.exception("worker %s: a slot's turn failed", self.id)
            self._poke()
            return None
        finally:
            self._turn_lock.release()

    # -- cancels (someone cancelled a job held here: the maintenance loop calls this) ----

    def cancel(self, leases: Sequence[Lease]) -> None:
        """Tell these jobs they are cancelled: a task sees ``current_job().cancelled``, an
        async job's coroutine is cancelled; a slot's job still running after the grace
        period is stopped by :meth:`enforce_timeouts`."""
        grace = self.runtime.settings.cancel_grace_seconds
        for entry in self.held.request_cancel(leases, time.monotonic() + grace):
            log.info("job %s cancelled while running; asking it to stop (grace %gs)", entry.lease.job_id, grace)
            if entry.coroutine:
                self.coroutines.cancel(entry)
        self._poke()  # the dispatcher's wait ends by the first deadline, the new ones included

    # -- timeouts (the worker's own: it owns the job and its thread or process) ----------

    def enforce_timeouts(self, now: float) -> None:
        """Fail the running jobs past their timeout at ``now`` (monotonic): each is acked at
        once as a TIMEOUT, decided with its task's policy; and cancel those still running
        past their cancel's grace period. A thread cannot be killed: in thread mode it is
        abandoned and a fresh slot takes its place; in process mode the process writes what
        it can and exits, and its supervisor starts another."""
        for entry in self.held.timed_out(now):
            cancel = entry.cancel_deadline is not None and now > entry.cancel_deadline
            if self.exit_on_timeout:
                self._claiming = False  # this process is about to exit: take no new job
            if not self.held.abandon(entry):
                continue  # it finished meanwhile
            decision, why = self._forced(entry, cancel)
            self.writes.ack_now(entry.lease, decision)
            if self.exit_on_timeout:
                log.error("job %s %s; stopping this worker process to kill it", entry.lease.job_id, why)
                self.flush()
                self._release_waiting()
                os._exit(TIMEOUT_EXIT_CODE)
            log.error(
                "job %s %s; its thread cannot be killed and is abandoned (use process mode to kill stuck jobs)",
                entry.lease.job_id,
                why,
            )
            if not self.stop_event.is_set() and self.slots.started:
                self.slots.add()

    def _forced(self, entry: Entry, cancel: bool) -> tuple[Decision, str]:
        """The decision for a job stopped by force (its cancel's grace, else its timeout) and
        why, for the log."""
        if cancel:
            grace = self.runtime.settings.cancel_grace_seconds
            how = "killed with its worker process" if self.exit_on_timeout else "its thread abandoned"
            message = f"cancelled while running; it did not stop within {grace:g}s, so it was {how}"
            return cancelled(self.runtime, entry.lease, message), f"did not stop within {grace:g}s of its cancel"
        limit = entry.lease.timeout_seconds or 0.0
        return timed_out(self.runtime, entry.lease, limit), f"timed out after {limit:g}s"

    def _check_parent(self) -> None:
        if self.parent_pid is not None and os.getppid() != self.parent_pid and not self.stop_event.is_set():
            log.warning("worker %s: its supervisor is gone; stopping", self.id)
            self.stop()

    # -- shutdown ---------------------------------------------------------------------

    def _drain(self) -> None:
        """Stop claiming; let running jobs finish within the grace period, acking as they
        do; release the rest without spending their attempt."""
        grace = self.runtime.settings.shutdown_grace_seconds
        self._release_waiting()
        self._await_running(grace)
        release_left(self.held, self.coroutines, self.writes, release_on_stop=self.release_on_stop, grace=grace)
        ack_deadline = time.monotonic() + ACK_GRACE_SECONDS
        while self.held.finished() and time.monotonic() < ack_deadline:
            self.flush()
            if self.held.finished():
                self.stop_event.wait(0.05)
        self.slots.close()

    def _await_running(self, grace: float) -> None:
        """Wait up to ``grace`` seconds (or a second stop) for the running jobs, slots' and
        async, to finish, acking them as they do."""
        deadline = time.monotonic() + grace
        if self._running_at_all():
            log.info("worker %s stopping: waiting up to %gs for running jobs", self.id, grace)
        while self._running_at_all() and time.monotonic() < deadline and not self.hurry_event.is_set():
            self.flush()
            self.stop_event.wait(0.01)

    def _running_at_all(self) -> bool:
        counts = self.held.counts()
        return bool(counts.running or counts.async_live)

    def _release_waiting(self) -> None:
        """Hand back the jobs no slot has started, without spending their attempt. The
        caller has stopped claiming; taking the turn lock waits for a turn already under
        way, so that what it claims is handed back too."""
        with self._turn_lock:
            waiting = self.held.abandon_waiting()
        if waiting:
            self.writes.hand_back([entry.lease for entry in waiting])

    def info(self) -> WorkerInfo:
        now = self.runtime.clock.now()
        where = (socket.gethostname(), os.getpid(), ",".join(self.queues or ["*"]))
        return WorkerInfo(self.id, *where, self.concurrency, self.mode, started_at=now, last_seen_at=now)


def _mono(now: float | None) -> float:
    return time.monotonic() if now is None else now
