"""Races, tried rather than argued (both databases):

- the same idempotency key submitted at once from several processes, several threads each:
  exactly one job, and every caller gets its id;
- a requeue against the rescue that puts the job in the dead-letter queue;
- a forced success against the ack of the attempt that is running;
- a cancel against a worker's claim of the same PENDING job, from threads and from another
  process: the job is cancelled before it starts (and nobody holds it) or it is claimed and
  the cancel becomes a request its worker honours; never lost, never run after the cancel
  reported it cancelled.

Each race starts its two sides together (a barrier) many times over; whichever side wins a
round, the final state and the history must be one of the outcomes the docs allow, so the
assertions hold for every interleaving and none depends on the machine's speed.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

from queuelab import FakeClock, InvalidTransition, JobStatus, Queue
from queuelab.models import ActionKind, AttemptOutcome, Job, Lease
from queuelab.policy import Cancel, Complete
from queuelab.testing import internals

PROCESSES, THREADS = 4, 4
ROUNDS = 12
KEY = "one-key"


def _same_key_submitter(url: str, start: Any, results: Any) -> None:
    q = Queue(url)
    q.open()
    ids: list[str] = []
    lock = threading.Lock()

    def submit() -> None:
        job = q.submit("simulate", {"duration": 0}, idempotency_key=KEY)
        with lock:
            ids.append(job.id)

    threads = [threading.Thread(target=submit) for _ in range(THREADS)]
    start.wait(60)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    q.close()
    results.put(ids)


@pytest.mark.slow
def test_one_key_submitted_at_once_from_many_processes_makes_one_job(db_url: str) -> None:
    with Queue(db_url) as q:
        q.open()  # the schema, before the processes race to create it
    ctx = mp.get_context("spawn")
    start, results = ctx.Barrier(PROCESSES), ctx.SimpleQueue()
    procs = [ctx.Process(target=_same_key_submitter, args=(db_url, start, results)) for _ in range(PROCESSES)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0, f"a submitter exited with {proc.exitcode}"
    ids = [job_id for _ in procs for job_id in results.get()]
    with Queue(db_url) as q:
        stored = q.jobs()
    assert len(ids) == PROCESSES * THREADS
    assert [job.id for job in stored] == [ids[0]]  # one job ...
    assert set(ids) == {ids[0]}  # ... and every caller got its id


def _together(*sides: Callable[[], object]) -> list[object]:
    """Run the sides on threads released at once; each one's return value or exception."""
    barrier = threading.Barrier(len(sides))
    out: list[object] = [None] * len(sides)

    def run(i: int, side: Callable[[], object]) -> None:
        barrier.wait(30)
        try:
            out[i] = side()
        except Exception as exc:
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i, s)) for i, s in enumerate(sides)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return out


def test_a_requeue_racing_the_rescue_that_dead_letters_the_job(queue: Queue, clock: FakeClock) -> None:
    """The job's last attempt has expired. The rescue puts it in the DLQ; the requeue is
    allowed only from there. Either the requeue came first (refused: the job is still
    RUNNING, then FAILED), or after (the job is PENDING again with a fresh budget); never
    both, never a second rescue."""
    queue.task(name="step")(lambda: None)
    runtime = internals(queue)
    outcomes = set()
    for _ in range(ROUNDS):
        job = queue.submit("step", max_retries=0, lease_seconds=5)
        (lease,) = runtime.leases.claim("w", None, 1, clock.now())
        assert lease.job_id == job.id
        clock.advance(10)  # the lease has expired
        rescued, requeued = _together(
            lambda: runtime.leases.rescue(clock.now(), runtime.decide), partial(queue.requeue, job.id, by="ops")
        )
        final = queue.get(job.id)
        assert rescued == 1
        assert [a.outcome for a in final.history] == [AttemptOutcome.LOST]
        if isinstance(requeued, InvalidTransition):
            assert final.status is JobStatus.FAILED
            assert final.actions == ()
        else:
            assert final.status is JobStatus.PENDING
            assert [a.kind for a in final.actions] == [ActionKind.REQUEUED]
            assert [a.from_status for a in final.actions] == [JobStatus.FAILED]
            queue.cancel(job.id)
        outcomes.add(final.status)
    assert outcomes <= {JobStatus.FAILED, JobStatus.PENDING}


def test_a_forced_success_racing_the_ack_of_the_running_attempt(queue: Queue, clock: FakeClock) -> None:
    """Force-success is allowed only once the attempt has ended (COMPLETED or FAILED). Either
    it came first (refused: RUNNING) and the ack completes the job, or it came after the
    ack and marks the completed job forced with its own result; the attempt is recorded
    once either way, and the ack is never refused."""
    queue.task(name="step")(lambda: None)
    runtime = internals(queue)
    for _ in range(ROUNDS):
        job = queue.submit("step")
        (lease,) = runtime.leases.claim("w", None, 1, clock.now())
        acked, forced = _together(
            partial(runtime.leases.ack, lease, Complete("worker"), "w", clock.now()),
            partial(queue.force_success, job.id, "ops", by="ops"),
        )
        final = queue.get(job.id)
        assert acked is None  # the ack was never refused
        assert final.status is JobStatus.COMPLETED
        assert [a.outcome for a in final.history] == [AttemptOutcome.COMPLETED]
        if isinstance(forced, InvalidTransition):
            assert (final.result, final.forced, final.actions) == ("worker", False, ())
        else:
            assert (final.result, final.forced) == ("ops", True)
            assert [(a.kind, a.from_status) for a in final.actions] == [
                (ActionKind.FORCED_SUCCESS, JobStatus.COMPLETED)
            ]


# -- a cancel against a claim ---------------------------------------------------------------

CANCEL_ROUNDS = 40
CANCEL_MESSAGE = "cancelled while running; the task stopped"


def _finish_as_a_worker(q: Queue, lease: Lease | None) -> str | None:
    """What a worker does after the race with the job it claimed (if any): its maintenance
    asks whether someone cancelled it; if so it stops it and acks CANCELLED, else it runs
    it to completion. Returns what it did (None: it claimed nothing)."""
    if lease is None:
        return None
    runtime = internals(q)
    if runtime.leases.cancel_requests([lease]) == [lease]:
        runtime.leases.ack(lease, Cancel(CANCEL_MESSAGE), "w", q.clock.now())
        return "stopped"
    runtime.leases.ack(lease, Complete("ran"), "w", q.clock.now())
    return "ran"


def _check_cancel_against_claim(q: Queue, job_id: str, cancelled: object, claimed: bool, did: str | None) -> str:
    """The allowed endings of one round; returns which one it was."""
    assert not isinstance(cancelled, Exception), f"the cancel failed: {cancelled!r}"
    assert isinstance(cancelled, Job)
    final = q.get(job_id)
    assert final.status is JobStatus.CANCELLED  # never lost, never run to completion after the cancel
    if cancelled.status is JobStatus.CANCELLED:  # the cancel came first: reported cancelled before it started
        assert (claimed, did) == (False, None)  # ... so no worker holds it or ever ran it
        assert (final.history, final.attempts, final.started_at) == ((), 0, None)
        assert [(a.kind, a.from_status) for a in final.actions] == [(ActionKind.CANCELLED, JobStatus.PENDING)]
        return "cancelled before the claim"
    # The claim came first: the cancel is a request on the RUNNING job, which its worker honours.
    assert cancelled.status is JobStatus.RUNNING
    assert cancelled.cancel_requested_at is not None
    assert (claimed, did) == (True, "stopped")
    assert [(a.outcome, a.error_message) for a in final.history] == [(AttemptOutcome.CANCELLED, CANCEL_MESSAGE)]
    assert [(a.kind, a.from_status) for a in final.actions] == [(ActionKind.CANCELLED, JobStatus.RUNNING)]
    assert final.attempts == 0  # a cancelled attempt is not spent
    return "claimed, then stopped on request"


def test_a_cancel_racing_a_claim_of_the_same_pending_job(queue: Queue) -> None:
    """Threads: the claim and the cancel released together, many times over."""
    queue.task(name="step")(lambda: None)
    runtime = internals(queue)
    seen = set()
    for _ in range(CANCEL_ROUNDS):
        job = queue.submit("step")
        taken, cancelled = _together(
            partial(runtime.leases.claim, "w", None, 1, queue.clock.now()), partial(queue.cancel, job.id, by="ops")
        )
        assert isinstance(taken, list), f"the claim failed: {taken!r}"
        lease = taken[0] if taken else None
        assert lease is None or lease.job_id == job.id
        did = _finish_as_a_worker(queue, lease)
        seen.add(_check_cancel_against_claim(queue, job.id, cancelled, bool(taken), did))
    assert seen  # which endings occurred depends on the machine; each one was checked


def _claimer(url: str, rounds: int, start: Any, asked: Any, results: Any) -> None:
    """Another process: each round, claim at the barrier, wait until the cancel returned,
    then finish the job it claimed as its worker would; report (job id or None, what it did)."""
    q = Queue(url)
    q.open()
    leases = internals(q).leases
    for _ in range(rounds):
        start.wait(60)
        taken = leases.claim("w", None, 1, q.clock.now())
        asked.wait(60)
        lease = taken[0] if taken else None
        results.put((lease.job_id if lease else None, _finish_as_a_worker(q, lease)))
    q.close()


@pytest.mark.slow
def test_a_cancel_racing_a_claim_from_another_process(db_url: str) -> None:
    ctx = mp.get_context("spawn")
    start, asked, results = ctx.Barrier(2), ctx.Barrier(2), ctx.SimpleQueue()
    with Queue(db_url) as q:
        q.open()
        proc = ctx.Process(target=_claimer, args=(db_url, CANCEL_ROUNDS, start, asked, results))
        proc.start()
        try:
            seen = set()
            for _ in range(CANCEL_ROUNDS):
                job = q.submit("simulate")
                start.wait(60)
                try:
                    cancelled: object = q.cancel(job.id, by="ops")
                except Exception as exc:  # checked below, after the claimer's side of the round
                    cancelled = exc
                asked.wait(60)
                claimed_id, did = results.get()
                assert claimed_id in (None, job.id)
                seen.add(_check_cancel_against_claim(q, job.id, cancelled, claimed_id is not None, did))
        finally:
            start.abort()  # a failed round must not leave the claimer waiting for the next
            asked.abort()
            proc.join(60)
        assert proc.exitcode == 0
    assert seen
