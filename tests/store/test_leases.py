"""The lease life cycle on a real store, with an injected clock: no sleeps."""

from __future__ import annotations

import itertools
import sqlite3
from dataclasses import dataclass, field, replace

import pytest
import sqlalchemy as sa

from queuelab import FakeClock, InvalidTransition, JobStatus, LeaseLost, Queue
from queuelab.models import AttemptOutcome, Lease, RetryPolicy
from queuelab.policy import Complete, DeadLetter, Decision, Errored, Retry, Succeeded, decide, decide_for
from queuelab.store.claims import ClaimFilter
from queuelab.store.leases import UNSTARTED_RESCUES, Finished
from queuelab.testing import internals

WORKER = "test-worker"
POLICY = RetryPolicy(base_seconds=0.5, factor=2.0, max_seconds=300.0, jitter=0.0)


def claim(q: Queue, limit: int = 10, queues: list[str] | None = None, worker: str = WORKER) -> list[Lease]:
    return internals(q).leases.claim(worker, queues, limit, q.clock.now())


def fail_decision(q: Queue, lease: Lease, message: str = "boom") -> Decision:
    error = Errored(AttemptOutcome.FAILED, "RuntimeError", message)
    return decide(
        error,
        attempt=lease.attempt,
        max_retries=lease.max_retries,
        policy=POLICY,
        now=q.clock.now(),
        unit_random=0.5,
    )


def rescue(q: Queue) -> int:
    now = q.clock.now()

    def decider(lease: Lease, error: Errored) -> Decision:
        return decide_for(lease, error, policy=POLICY, now=now, unit_random=0.5)

    return internals(q).leases.rescue(now, decider)


def test_claim_takes_priority_then_oldest_and_respects_the_limit(queue: Queue, clock: FakeClock) -> None:
    low = queue.submit("simulate", priority=0)
    clock.advance(1)
    high = queue.submit("simulate", priority=9)
    clock.advance(1)
    low2 = queue.submit("simulate", priority=0)
    first = claim(queue, limit=2)
    assert {lease.job_id for lease in first} == {high.id, low.id}
    assert [lease.job_id for lease in claim(queue)] == [low2.id]
    assert claim(queue) == []


def test_a_claim_writes_a_fresh_lease_and_spends_an_attempt(queue: Queue, clock: FakeClock) -> None:
    job = queue.submit("simulate", lease_seconds=10)
    (lease,) = claim(queue)
    stored = queue.get(job.id)
    assert stored.status == JobStatus.RUNNING
    assert stored.attempts == 1 == lease.attempt
    assert stored.lease_token == lease.token
    assert stored.lease_owner == WORKER
    assert stored.lease_expires_at is not None
    assert stored.lease_expires_at.timestamp() == pytest.approx(clock.now() + 10)


def test_delayed_job_is_not_claimed_before_its_time(queue: Queue, clock: FakeClock) -> None:
    job = queue.submit("simulate", delay=30)
    assert claim(queue) == []
    assert internals(queue).leases.next_run_at(None) == pytest.approx(clock.now() + 30)
    clock.advance(29.9)
    assert claim(queue) == []
    clock.advance(0.2)
    assert [lease.job_id for lease in claim(queue)] == [job.id]


def test_claim_only_takes_the_named_queues_and_known_tasks(queue: Queue) -> None:
    mail = queue.submit("simulate", queue="mail")
    queue.submit("simulate", queue="reports")
    now = queue.clock.now()
    assert internals(queue).leases.claim(WORKER, None, 10, now, tasks=["other"]) == []
    assert [lease.job_id for lease in claim(queue, queues=["mail"])] == [mail.id]


def test_heartbeat_extends_the_lease_so_it_is_not_rescued(queue: Queue, clock: FakeClock) -> None:
    job = queue.submit("simulate", lease_seconds=10)
    (lease,) = claim(queue)
    clock.advance(8)
    assert internals(queue).leases.heartbeat([lease], clock.now()) == []
    clock.advance(8)  # 16 s after the claim, 8 s after the heartbeat
    assert rescue(queue) == 0
    assert queue.get(job.id).status == JobStatus.RUNNING


def test_expired_lease_is_rescued_as_a_lost_attempt_and_the_late_ack_is_refused(queue: Queue, clock: FakeClock) -> None:
    job = queue.submit("simulate", lease_seconds=10)
    (old,) = claim(queue, worker="dead-worker")
    clock.advance(10.5)
    assert rescue(queue) == 1
    rescued = queue.get(job.id)
    assert rescued.status == JobStatus.PENDING
    assert rescued.lease_token is None
    assert rescued.history[-1].outcome == AttemptOutcome.LOST
    assert rescued.history[-1].error_type == "WorkerLost"
    assert "dead-worker" in (rescued.history[-1].error_message or "")
    assert rescued.run_at.timestamp() == pytest.approx(clock.now() + 0.5)  # first retry's backoff

    clock.advance(1)
    (new,) = claim(queue, worker="live-worker")
    assert new.attempt == 2
    assert new.token != old.token
    with pytest.raises(LeaseLost, match="no longer held"):
        internals(queue).leases.ack(old, Complete({"late": True}), "dead-worker", clock.now())
    assert internals(queue).leases.heartbeat([old], clock.now()) == [old]
    internals(queue).leases.ack(new, Complete({"ok": True}), "live-worker", clock.now())
    done = queue.get(job.id)
    assert done.status == JobStatus.COMPLETED
    assert done.result == {"ok": True}
    assert [a.outcome for a in done.history] == [AttemptOutcome.LOST, AttemptOutcome.COMPLETED]


def test_failing_job_runs_four_times_with_backoff_then_lands_in_the_dlq(queue: Queue, clock: FakeClock) -> None:
    job = queue.submit("simulate", {"fail_simulation": True})
    waits = []
    for attempt in range(1, 5):
        (lease,) = claim(queue)
        assert lease.attempt == attempt
        internals(queue).leases.ack(lease, fail_decision(queue, lease, f"failure {attempt}"), WORKER, clock.now())
        stored = queue.get(job.id)
        if attempt < 4:
            assert stored.status == JobStatus.PENDING
            wait = stored.run_at.timestamp() - clock.now()
            waits.append(round(wait, 6))
            assert claim(queue) == []  # still backing off
            clock.advance(wait)
    assert waits == [0.5, 1.0, 2.0]
    dead = queue.get(job.id)
    assert dead.status == JobStatus.FAILED
    assert dead.attempts == 4
    assert [e.error_message for e in dead.errors] == [f"failure {n}" for n in range(1, 5)]
    assert [d.id for d in queue.dlq()] == [job.id]

    again = queue.requeue(job.id)
    assert again.status == JobStatus.PENDING
    assert again.attempts == 0
    assert len(again.errors) == 4  # the history is kept
    (lease,) = claim(queue)
    assert lease.attempt == 1
    internals(queue).leases.ack(lease, fail_decision(queue, lease), WORKER, clock.now())
    clock.advance(5)
    (lease,) = claim(queue)
    internals(queue).leases.ack(lease, Complete(None), WORKER, clock.now())

    forced = queue.force_success(job.id, {"by": "admin"})
    assert forced.status == JobStatus.COMPLETED
    assert forced.forced is True
    assert forced.result == {"by": "admin"}


def test_force_success_moves_a_dead_letter_to_completed(queue: Queue, clock: FakeClock) -> None:
    job = queue.submit("simulate", max_retries=0)
    (lease,) = claim(queue)
    decision = fail_decision(queue, lease)
    assert isinstance(decision, DeadLetter)
    internals(queue).leases.ack(lease, decision, WORKER, clock.now())
    assert queue.get(job.id).status == JobStatus.FAILED
    forced = queue.force_success(job.id)
    assert (forced.status, forced.forced) == (JobStatus.COMPLETED, True)
    assert forced.finished_at is not None


def test_admin_operations_refuse_a_running_job(queue: Queue) -> None:
    job = queue.submit("simulate")
    claim(queue)
    for operation in (queue.requeue, queue.force_success):  # (a cancel is a request: see test_cancel.py)
        with pytest.raises(InvalidTransition, match=f"job {job.id} is RUNNING"):
            operation(job.id)
    assert queue.get(job.id).status == JobStatus.RUNNING


def test_requeue_many_requeues_the_dlq_by_filter(queue: Queue, clock: FakeClock) -> None:
    ids = {}
    for name in ("a", "b", "c"):
        job = queue.submit("simulate", max_retries=0, queue=name)
        (lease,) = claim(queue)
        internals(queue).leases.ack(lease, fail_decision(queue, lease), WORKER, clock.now())
        ids[name] = job.id
    assert queue.requeue_many(queue="a") == 1
    assert queue.get(ids["a"]).status == JobStatus.PENDING
    assert queue.requeue_many() == 2
    assert {j.id for j in queue.jobs(status="PENDING")} == set(ids.values())
    assert queue.dlq() == []


def test_release_hands_the_job_back_without_spending_an_attempt(queue: Queue, clock: FakeClock) -> None:
    job = queue.submit("simulate")
    (lease,) = claim(queue)
    assert internals(queue).leases.release(lease, WORKER, clock.now()) is True
    released = queue.get(job.id)
    assert (released.status, released.attempts, released.lease_token) == (JobStatus.PENDING, 0, None)
    assert released.history[-1].outcome == AttemptOutcome.RELEASED
    assert internals(queue).leases.release(lease, WORKER, clock.now()) is False  # the token is spent
    (again,) = claim(queue)
    assert again.attempt == 1


def test_rescue_dead_letters_a_job_whose_budget_is_spent(queue: Queue, clock: FakeClock) -> None:
    job = queue.submit("simulate", max_retries=0, lease_seconds=5)
    claim(queue)
    clock.advance(6)
    assert rescue(queue) == 1
    dead = queue.get(job.id)
    assert dead.status == JobStatus.FAILED
    assert dead.errors[-1].error_type == "WorkerLost"


def test_prune_deletes_old_finished_jobs_and_their_history_only(queue: Queue, clock: FakeClock) -> None:
    old = queue.submit("simulate")
    (lease,) = claim(queue)
    internals(queue).leases.ack(lease, Complete(1), WORKER, clock.now())
    pending = queue.submit("simulate")
    clock.advance(100)
    recent = queue.submit("simulate", priority=9)
    (lease,) = claim(queue, limit=1)
    assert lease.job_id == recent.id
    internals(queue).leases.ack(lease, Complete(2), WORKER, clock.now())
    assert queue.prune(older_than=50) == 1
    remaining = {j.id for j in queue.jobs()}
    assert remaining == {pending.id, recent.id}
    from queuelab.store.schema import attempts

    with internals(queue).db.read() as conn:
        orphans = conn.execute(sa.select(sa.func.count()).where(attempts.c.job_id == old.id)).scalar()
    assert orphans == 0


def test_a_decision_for_success_is_complete() -> None:
    assert decide(Succeeded(3), attempt=1, max_retries=0, policy=POLICY, now=0, unit_random=0) == Complete(3)
    retry = decide(
        Errored(AttemptOutcome.FAILED, "E", "m"), attempt=1, max_retries=1, policy=POLICY, now=10, unit_random=0.5
    )
    assert isinstance(retry, Retry)
    assert retry.run_at == 10.5


@pytest.mark.parametrize("lost_index", [None, 1])
def test_a_batch_of_completions_writes_each_or_reports_the_lost_one(
    queue: Queue, clock: FakeClock, lost_index: int | None
) -> None:
    from queuelab.store.claims import ClaimFilter
    from queuelab.store.leases import Finished

    jobs = [queue.submit("simulate", {"n": i}) for i in range(4)]
    leases = claim(queue)
    assert len(leases) == 4
    if lost_index is not None:  # its lease is gone: released, as at a stop
        assert internals(queue).leases.release(leases[lost_index], WORKER, clock.now())
    clock.advance(2)
    finished = [Finished(lease, Complete({"n": i}), clock.now()) for i, lease in enumerate(leases)]
    lost, claimed = internals(queue).leases.ack_and_claim(finished, ClaimFilter(WORKER), 0, clock.now)
    assert claimed == []
    assert lost == ([] if lost_index is None else [leases[lost_index]])
    for i, job in enumerate(jobs):
        after = queue.get(job.id)
        if i == lost_index:
            assert (after.status, after.attempts) == (JobStatus.PENDING, 0)
            assert [a.outcome for a in after.history] == [AttemptOutcome.RELEASED]
            continue
        assert (after.status, after.result, after.attempts) == (JobStatus.COMPLETED, {"n": i}, 1)
        assert [a.outcome for a in after.history] == [AttemptOutcome.COMPLETED]
        assert after.history[0].finished_at == after.finished_at


# -- claimed ahead: a job a worker holds but has not started ------------------------------


def claim_ahead(q: Queue, start: int, ahead: int, worker: str = "dead-worker") -> list[Lease]:
    which = ClaimFilter(worker)
    return internals(q).leases.ack_and_claim([], which, start, q.clock.now(), ahead)[1]


def test_jobs_claimed_ahead_have_no_recorded_start_until_a_heartbeat_records_it(queue: Queue, clock: FakeClock) -> None:
    jobs = [queue.submit("simulate") for _ in range(3)]
    first, *ahead = claim_ahead(queue, start=1, ahead=5)
    assert [lease.job_id for lease in (first, *ahead)] == [job.id for job in jobs]  # claim order kept
    assert queue.get(first.job_id).started_at is not None  # started at once
    assert [queue.get(lease.job_id).started_at for lease in ahead] == [None, None]
    assert all(queue.get(job.id).status == JobStatus.RUNNING for job in jobs)
    clock.advance(2)
    began = replace(ahead[0], started_at=clock.now() - 1)
    assert internals(queue).leases.heartbeat([first, began, ahead[1]], clock.now(), {first.job_id, began.job_id}) == []
    started = queue.get(began.job_id).started_at
    assert started is not None
    assert started.timestamp() == pytest.approx(clock.now() - 1)
    assert queue.get(ahead[1].job_id).started_at is None
    assert queue.get(first.job_id).started_at == queue.get(jobs[0].id).started_at  # the first start is kept


def test_a_rescue_hands_back_a_job_claimed_ahead_and_never_started_without_spending_its_attempt(
    queue: Queue, clock: FakeClock
) -> None:
    started, waiting = (queue.submit("simulate", lease_seconds=10) for _ in range(2))
    claim_ahead(queue, start=1, ahead=1)
    clock.advance(11)
    assert rescue(queue) == 2
    lost = queue.get(started.id)  # it had started: a lost attempt, retried after the backoff
    assert (lost.status, lost.attempts, lost.history[-1].outcome) == (JobStatus.PENDING, 1, AttemptOutcome.LOST)
    assert lost.run_at.timestamp() == pytest.approx(clock.now() + 0.5)
    back = queue.get(waiting.id)  # it had not: back in line at once, its attempt unspent
    assert (back.status, back.attempts, back.lease_token) == (JobStatus.PENDING, 0, None)
    assert back.run_at.timestamp() < clock.now()
    (note,) = back.history
    assert (note.outcome, note.error_type, note.started_at) == (AttemptOutcome.LOST, "WorkerLost", None)
    assert "without spending an attempt (1 of 3" in (note.error_message or "")
    (again,) = claim(queue, limit=1, worker="live-worker")
    assert (again.job_id, again.attempt) == (waiting.id, 1)  # (the other waits for its backoff)


def test_a_job_that_is_never_seen_to_start_is_failed_after_the_unstarted_rescues_are_used_up(
    queue: Queue, clock: FakeClock
) -> None:
    """A job that kills its worker before a heartbeat records its start looks unstarted each
    time: after UNSTARTED_RESCUES free rescues it spends attempts like any lost job, and so
    still ends in the dead-letter queue."""
    job = queue.submit("simulate", max_retries=1, lease_seconds=10)
    outcomes = []
    for _ in range(UNSTARTED_RESCUES + 2):
        assert len(claim_ahead(queue, start=0, ahead=1)) == 1
        clock.advance(11)
        assert rescue(queue) == 1
        after = queue.get(job.id)
        outcomes.append((after.status, after.attempts))
        clock.advance(1000)  # past any backoff
    free = [(JobStatus.PENDING, 0)] * UNSTARTED_RESCUES
    assert outcomes == [*free, (JobStatus.PENDING, 1), (JobStatus.FAILED, 2)]
    assert "WorkerLost after 2 runs" in (queue.get(job.id).dead_letter_reason or "")


@dataclass
class Turn:
    """A turn's outcome and the statements it sent: for each, whether it ran in a
    transaction (the driver sends BEGIN before the first statement of one), and its SQL."""

    lost: list[Lease] = field(default_factory=list)
    claimed: list[Lease] = field(default_factory=list)
    in_transaction: list[bool] = field(default_factory=list)
    sql: list[str] = field(default_factory=list)

    @property
    def job_writes(self) -> int:
        """Statements that write jobs (a turn, a claim, an ack). The limits' snapshot, read
        again on the same connection when it has aged (after half a second: a slow machine),
        adds reads only."""
        return sum(1 for sql in self.sql if sql.lstrip().startswith(("WITH", "UPDATE")))


def _turn(
    q: Queue, finished: list[Finished], limit: int = 2, ahead: int = 0, also: tuple[ClaimFilter, int] | None = None
) -> Turn:
    """A turn: ack ``finished``, claim ``limit`` to start and ``ahead`` more (and ``also``)."""
    turn = Turn()

    def before(conn: sa.Connection, cursor: object, statement: str, *args: object) -> None:
        turn.in_transaction.append(not conn.connection.driver_connection.autocommit)  # type: ignore[union-attr]
        turn.sql.append(statement)

    sa.event.listen(q.database.engine, "before_cursor_execute", before)
    try:
        turn.lost, turn.claimed = internals(q).leases.ack_and_claim(
            finished, ClaimFilter(WORKER), limit, q.clock.now(), ahead, also=also
        )
    finally:
        sa.event.remove(q.database.engine, "before_cursor_execute", before)
    return turn


@pytest.mark.postgres
def test_on_postgresql_a_turn_of_completions_and_claims_is_one_statement(postgres_url: str) -> None:
    """A turn that acks only completions and claims, ahead too, is ONE statement on an
    autocommit connection (no BEGIN, no COMMIT: one round trip where there were five); one
    that acks a retry, or records a throttle's starts, is one transaction with its other
    writes."""
    clock = FakeClock(1_000.0)
    q = Queue(postgres_url, clock=clock)
    try:
        jobs = [q.submit("simulate") for _ in range(7)]
        first = _turn(q, [])
        assert [lease.job_id for lease in first.claimed] == [jobs[0].id, jobs[1].id]
        assert (first.job_writes, any(first.in_transaction)) == (1, False)
        assert q.get(jobs[0].id).status is JobStatus.RUNNING

        done = [Finished(lease, Complete(result=i), clock.now()) for i, lease in enumerate(first.claimed)]
        busy = _turn(q, done, ahead=2)
        assert (busy.job_writes, any(busy.in_transaction), busy.lost) == (1, False, [])
        assert [lease.job_id for lease in busy.claimed] == [job.id for job in jobs[2:6]]  # claim order, started first
        assert [q.get(job.id).result for job in jobs[:2]] == [0, 1]
        assert all(q.get(job.id).status is JobStatus.COMPLETED for job in jobs[:2])
        assert [q.get(lease.job_id).started_at is not None for lease in busy.claimed] == [True, True, False, False]

        failed = Errored(AttemptOutcome.FAILED, "E", "m")
        retried = _turn(q, [Finished(busy.claimed[0], Retry(clock.now() + 60, failed), clock.now())])
        assert [lease.job_id for lease in retried.claimed] == [jobs[6].id]
        assert retried.job_writes >= 2
        assert all(retried.in_transaction)
        assert q.get(jobs[2].id).status is JobStatus.PENDING

        # With an async claim beside, all of it is one transaction: were the async claim a
        # statement after a committed turn and failed, the turn's acks would be retried as
        # lost and its leases dropped unheld.
        asynchronous = (ClaimFilter(WORKER, tasks=("an_async_task",)), 4)
        fresh = q.submit("simulate")
        done = [Finished(lease, Complete(result=None), clock.now()) for lease in busy.claimed[1:2]]
        both = _turn(q, done, limit=1, also=asynchronous)
        assert (both.lost, [lease.job_id for lease in both.claimed]) == ([], [fresh.id])
        assert both.job_writes >= 2
        assert all(both.in_transaction)

        q.set_throttle("10/minute", queue="default")
        extra = q.submit("simulate")
        throttled = _turn(q, [])
        assert [lease.job_id for lease in throttled.claimed] == [extra.id]
        assert throttled.in_transaction
        assert all(throttled.in_transaction)
    finally:
        q.close()


@pytest.mark.postgres
def test_on_postgresql_one_statement_reports_a_lost_completion_and_writes_the_rest(postgres_url: str) -> None:
    """In the one-statement turn, an ack whose lease is gone (rescued, released) matches
    nothing and is reported lost; the others are written and the claim goes ahead."""
    clock = FakeClock(1_000.0)
    q = Queue(postgres_url, clock=clock)
    try:
        jobs = [q.submit("simulate") for _ in range(4)]
        claimed = _turn(q, []).claimed
        assert internals(q).leases.release(claimed[1], WORKER, clock.now())
        turn = _turn(q, [Finished(lease, Complete(result="ok"), clock.now()) for lease in claimed], limit=1)
        assert (turn.job_writes, any(turn.in_transaction)) == (1, False)
        assert turn.lost == [claimed[1]]
        assert q.get(jobs[0].id).status is JobStatus.COMPLETED
        # handed back, its attempt unspent, and first in line again
        assert [(lease.job_id, lease.attempt) for lease in turn.claimed] == [(jobs[1].id, 1)]
        again = q.get(jobs[1].id)
        assert (again.status, again.lease_token, again.result) == (JobStatus.RUNNING, turn.claimed[0].token, None)
    finally:
        q.close()


def test_on_sqlite_a_turn_is_a_few_statements_however_many_jobs_it_acks_and_claims(sqlite_url: str) -> None:
    """The sqlite3 module releases the GIL at every step of a statement, and a worker's slot
    threads take it meanwhile: a turn of 200 acks and 200 claims must not be 400 steps. The
    acks go as one statement (no executemany), the claim's rows come back as one (no
    RETURNING of a row per job); what they write is what the one-by-one statements wrote."""
    clock = FakeClock(1_000.0)
    q = Queue(sqlite_url, clock=clock)
    seen: list[str] = []
    engine = internals(q).db.engine
    sa.event.listen(engine, "checkout", lambda dbapi, record, proxy: dbapi.set_trace_callback(seen.append))
    sa.event.listen(engine, "checkin", lambda dbapi, record: dbapi.set_trace_callback(None))
    try:
        jobs = [q.submit("simulate", {"i": i}, lease_seconds=1 / 3, timeout_seconds=0.1 + 0.2) for i in range(400)]
        which = ClaimFilter(WORKER)
        _, first = internals(q).leases.ack_and_claim([], which, 150, clock.now, 50)
        assert [lease.job_id for lease in first] == [job.id for job in jobs[:200]]  # claim order
        clock.advance(1)
        done = [Finished(lease, Complete({"n": i}), clock.now()) for i, lease in enumerate(first)]
        seen.clear()
        lost, claimed = internals(q).leases.ack_and_claim(done, which, 120, clock.now, 80)
        # A trigger's run (queuelab_jobs_release, per row updated) is traced with the text of
        # the statement that fired it: runs of one text are one statement. An executemany's
        # statements differ by their bound values.
        turn = [sql for sql, _ in itertools.groupby(seen)]
    finally:
        q.close()
    with Queue(sqlite_url, clock=clock) as q:
        assert lost == []
        assert len(turn) <= 12, turn  # BEGIN, savepoint, acks, release, pick, take, COMMIT and the like
        assert not [sql for sql in turn if "RETURNING" in sql.upper()]
        assert [lease.job_id for lease in claimed] == [job.id for job in jobs[200:]]
        assert all(lease.attempt == 1 for lease in claimed)
        # The REAL columns exactly as stored (SQLite's JSON would round them to 15 digits).
        assert {(lease.lease_seconds, lease.timeout_seconds) for lease in claimed} == {(1 / 3, 0.1 + 0.2)}
        assert {lease.run_at for lease in claimed} == {q.get(job.id).run_at.timestamp() for job in jobs[200:]}
        started = [q.get(lease.job_id).started_at is not None for lease in claimed]
        assert started == [True] * 120 + [False] * 80
        for i, job in enumerate(jobs[:200]):
            after = q.get(job.id)
            assert (after.status, after.result, after.attempts) == (JobStatus.COMPLETED, {"n": i}, 1)
            assert after.started_at is not None
            assert after.finished_at is not None
            assert after.started_at.timestamp() == first[i].started_at
            assert after.finished_at.timestamp() == done[i].finished_at


def test_a_claimed_row_on_sqlite_has_the_columns_returning_gives_on_postgresql() -> None:
    from queuelab.store import statements as st
    from queuelab.store.claims import _Claimed

    assert _Claimed._fields == tuple(column.name for column in st.CLAIMED_COLUMNS)


def test_on_sqlite_a_claim_too_big_for_one_string_is_read_in_smaller_picks(sqlite_url: str) -> None:
    """The claim's rows come back as one JSON string, which SQLite caps (SQLITE_MAX_LENGTH,
    1 GB by default; lowered here to 4,000 bytes, for jobs of about 1,000): it is then read
    in picks of fewer jobs, each taken before the next, in claim order."""
    clock = FakeClock(1_000.0)
    q = Queue(sqlite_url, clock=clock)
    try:
        jobs = [q.submit("simulate", {"pad": "x" * 1000, "i": i}) for i in range(10)]
        engine = internals(q).db.engine
        sa.event.listen(
            engine, "checkout", lambda dbapi, record, proxy: dbapi.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 4000)
        )
        sa.event.listen(
            engine, "checkin", lambda dbapi, record: dbapi.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 1_000_000_000)
        )
        _, claimed = internals(q).leases.ack_and_claim([], ClaimFilter(WORKER), 3, clock.now, 7)
        assert [lease.job_id for lease in claimed] == [job.id for job in jobs]
        assert [lease.payload["i"] for lease in claimed] == list(range(10))
    finally:
        q.close()
    with Queue(sqlite_url, clock=clock) as q:
        stored = [q.get(job.id) for job in jobs]
        assert all(job.status is JobStatus.RUNNING and job.attempts == 1 for job in stored)
        assert [job.started_at is not None for job in stored] == [True] * 3 + [False] * 7
