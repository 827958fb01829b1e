"""The lease life cycle: claim → heartbeat → ack (complete / retry / dead-letter),
plus release on shutdown and rescue of leases whose worker vanished.

Every claim writes a fresh lease token. Heartbeat, finish and release match on the job id
*and* that token, so a worker whose lease was rescued can never overwrite the newer attempt:
its late ack matches nothing and raises :class:`LeaseLost` (or is reported as lost).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from queuelab.errors import LeaseLost, WorkerLost
from queuelab.logs import job_fields
from queuelab.models import AttemptOutcome, Lease
from queuelab.policy import Cancel, Complete, DeadLetter, Decision, Errored, Retry
from queuelab.store import direct, throttling
from queuelab.store import statements as st
from queuelab.store.claims import ClaimFilter, claim, complete_and_claim, lease_from_row, one_statement
from queuelab.store.database import Database
from queuelab.store.limits import cache_for, running_quotas
from queuelab.store.schema import IS_PENDING, IS_RUNNING, jobs

log = logging.getLogger("queuelab.jobs")

# A rescue hands a job back without spending its attempt when its worker had claimed it
# ahead and not recorded its start; this many times at most. The start of a job claimed
# ahead is recorded by the next heartbeat after it starts, so a job that kills its worker
# sooner looks unstarted: after this many such rescues it is failed like any other.
UNSTARTED_RESCUES = 3
RescueDecider = Callable[[Lease, Errored], Decision]  # (the expired lease, its LOST outcome) -> decision
Now = float | Callable[[], float]


def _read(now: Now) -> float:
    return now() if callable(now) else now


@dataclass(frozen=True, slots=True)
class Finished:
    """An attempt's outcome, waiting to be written."""

    lease: Lease
    decision: Decision
    finished_at: float


class LeaseStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def claim(
        self,
        worker_id: str,
        queues: Sequence[str] | None,
        limit: int,
        now: float,
        *,
        tasks: Sequence[str] | None = None,
    ) -> list[Lease]:
        """Take up to ``limit`` runnable jobs, highest priority first, then lowest ``fair_rank``.
        ``tasks``: only jobs of these tasks (those the worker can run)."""
        which = ClaimFilter(worker_id, tuple(queues) if queues else None, tuple(tasks) if tasks is not None else None)
        return self.ack_and_claim([], which, limit, now)[1]

    def ack_and_claim(
        self,
        finished: Sequence[Finished],
        which: ClaimFilter,
        limit: int,
        now: Now,
        ahead: int = 0,
        *,
        also: tuple[ClaimFilter, int] | None = None,
    ) -> tuple[list[Lease], list[Lease]]:
        """Write finished attempts and claim up to ``limit`` new jobs to start at once, and
        ``ahead`` more to start later (see :func:`~queuelab.store.claims.claim`), in ONE
        transaction.

        A busy worker thus spends one write transaction per batch of jobs, not two per job.
        ``also``: a second claim in the same transaction, (filter, jobs to start at once),
        after the first (a worker's async jobs, claimed for its event loop).
        Returns (leases found lost while writing, new leases). ``now`` may be a clock,
        read once the write lock is held, so a long wait for it cannot shorten a lease.
        """
        alone = also is None or also[1] == 0
        if not self.db.is_sqlite and alone and all(isinstance(f.decision, Complete) for f in finished):
            # PostgreSQL, nothing to ack but completions (a busy worker's every turn), no async
            # claim beside, no quota or throttle: the acks and the claim are one statement,
            # its own transaction on an autocommit connection: one round trip where BEGIN, the
            # acks, the claim, the claim ahead and COMMIT were five. (The limits are read on
            # that connection too when stale, without a transaction.) An async claim beside
            # takes the transaction: were it a statement after a committed turn and failed,
            # the turn's acks would be retried as lost and its leases dropped unheld.
            with self.db.autocommit() as conn:
                if one_statement(cache_for(self.db).get(conn), self.db.settings):
                    return self._complete_and_claim(conn, finished, which, limit, now, ahead)
        with self.db.write() as conn:
            lost = _apply_all(conn, self.db, finished, which.worker_id)
            return lost, self._claim_on(conn, which, limit, now, ahead, also)

    def _complete_and_claim(
        self,
        conn: Connection,
        finished: Sequence[Finished],
        which: ClaimFilter,
        limit: int,
        now: Now,
        ahead: int,
    ) -> tuple[list[Lease], list[Lease]]:
        """:meth:`ack_and_claim` on PostgreSQL's autocommit ``conn`` in one statement (see there)."""
        at = _read(now)
        if finished or ahead > 0:
            rows = _completion_rows((f, f.decision) for f in finished if isinstance(f.decision, Complete))
            acked, claimed = complete_and_claim(conn, self.db, rows, which, limit, at, ahead)
            return [f.lease for f in finished if (f.lease.job_id, f.lease.attempt) not in acked], claimed
        # The claim that wakes an idle worker: the plain claim statement, which PostgreSQL plans
        # and runs in 0.2-0.3 ms less than the turn's (2.0 against 2.3 ms after an idle spell,
        # round trip included); with nothing to ack or claim ahead the rest is not needed.
        return [], claim(conn, self.db, which, limit, at) if limit > 0 else []

    def _claim_on(
        self,
        conn: Connection,
        which: ClaimFilter,
        limit: int,
        now: Now,
        ahead: int,
        also: tuple[ClaimFilter, int] | None,
    ) -> list[Lease]:
        """The claims of :meth:`ack_and_claim` on ``conn``, ``now`` read once."""
        at = _read(now)
        claimed = claim(conn, self.db, which, limit, at, ahead) if limit + ahead > 0 else []
        if also is not None and also[1] > 0:
            claimed += claim(conn, self.db, also[0], also[1], at)
        return claimed

    def heartbeat(self, leases: Sequence[Lease], now: Now, started: Container[str] = ()) -> list[Lease]:
        """Extend the leases; return those that are no longer ours. ``started``: the ids of
        the jobs among them that have started, whose start (``lease.started_at``) is then
        recorded if it was not (a job claimed ahead)."""
        with self.db.write() as conn:
            at = _read(now)
            extend = [
                direct.execute(conn, self.db, st.EXTEND, _beat(lease, at, lease.job_id in started)) for lease in leases
            ]
            return [lease for lease, done in zip(leases, extend, strict=True) if done.rowcount != 1]

    def cancel_requests(self, leases: Sequence[Lease]) -> list[Lease]:
        """Those of ``leases`` whose job someone asked to cancel while it ran (``q.cancel``):
        one read by primary key, no write lock; a worker asks once per maintenance tick."""
        if not leases:
            return []
        asked = sa.select(jobs.c.id, jobs.c.lease_token).where(
            jobs.c.id.in_([lease.job_id for lease in leases]), jobs.c.cancel_requested_at.is_not(None), IS_RUNNING
        )
        with self.db.read() as conn:
            found = {(row.id, row.lease_token) for row in conn.execute(asked)}
        return [lease for lease in leases if (lease.job_id, lease.token) in found]

    def report_progress(self, lease: Lease, fraction: float, message: str | None) -> bool:
        """Store the latest progress of the job ``lease`` holds; False, and nothing
        written, if the lease is no longer held (the job was rescued or finished)."""
        with self.db.write() as conn:
            return (
                direct.execute(
                    conn, self.db, st.PROGRESS, {**_held(lease), "p_progress": fraction, "p_message": message}
                ).rowcount
                == 1
            )

    def ack(self, lease: Lease, decision: Decision, worker_id: str, now: float) -> None:
        """Apply the decision for one attempt; :class:`LeaseLost` if the lease is gone."""
        with self.db.write() as conn:
            if not _apply(conn, self.db, Finished(lease, decision, now), worker_id):
                raise LeaseLost(
                    f"job {lease.job_id}: the lease of attempt {lease.attempt} is no longer held by "
                    f"{worker_id} (it expired and was rescued, or was released); the result was discarded"
                )

    def release(self, lease: Lease, worker_id: str, now: float) -> bool:
        """Hand an unfinished job back to PENDING without spending an attempt (shutdown);
        one someone asked to cancel ends CANCELLED instead."""
        return self.release_many([lease], worker_id, now) == 1

    def release_many(self, leases: Sequence[Lease], worker_id: str, now: float, *, started: bool = True) -> int:
        """:meth:`release` for several jobs in one transaction; the number released.
        ``started=False``: jobs claimed but never started (a prefetching worker's), whose
        history rows then have no start time."""
        released, handed = 0, []
        with self.db.write() as conn:
            for lease in leases:
                if conn.execute(st.RELEASE, {**_held(lease), "p_now": now}).rowcount != 1:
                    continue
                outcome = AttemptOutcome.RELEASED
                began = lease.started_at if started else None
                conn.execute(
                    st.RECORD_ATTEMPT, _attempt_row(lease.job_id, lease.attempt, worker_id, outcome, began, now)
                )
                released += 1
                handed.append(lease)
            for queue in sorted({lease.queue for lease in leases}) if released else ():
                self.db.notify(conn, queue)
        for lease in handed:
            log.info(
                "job %s (%s) attempt %d released: handed back unspent by worker %s",
                lease.job_id,
                lease.task,
                lease.attempt,
                worker_id,
                extra={"fields": {**job_fields(lease), "event": "released", "worker_id": worker_id}},
            )
        return released

    def rescue(self, now: float, decide: RescueDecider, limit: int = 100) -> int:
        """Fail the attempts whose lease expired (their worker stopped heartbeating): each
        becomes a retry or a dead letter like any other failure. A job its worker claimed
        ahead and never recorded as started goes back to PENDING with its attempt unspent,
        the first UNSTARTED_RESCUES times: after that it is failed like the others, so a
        job that kills its worker before a heartbeat can record its start still ends in
        the dead-letter queue."""
        expired = (
            sa.select(
                jobs.c.lease_expires_at,
                jobs.c.lease_owner,
                *st.CLAIMED_COLUMNS,
                jobs.c.lease_token,
                jobs.c.started_at,
                jobs.c.unstarted_rescues,
                jobs.c.cancel_requested_at,
            )
            .where(IS_RUNNING, jobs.c.lease_expires_at < now)
            .order_by(jobs.c.lease_expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self.db.read() as conn:  # the common case, nothing expired, takes no write lock
            if conn.execute(expired.with_only_columns(jobs.c.id).limit(1)).first() is None:
                return 0
        rescued: list[tuple[Lease, str]] = []  # and what became of it, for the log
        with self.db.write() as conn:
            for row in conn.execute(expired).all():
                lease = lease_from_row(row, row.lease_token, row.started_at)
                when = datetime.fromtimestamp(row.lease_expires_at, UTC).isoformat(timespec="milliseconds")
                message = f"worker {row.lease_owner} stopped heartbeating; its lease expired at {when}"
                if row.cancel_requested_at is not None:  # cancelled: it ends so, not retried
                    cancel = Cancel(f"cancelled while running; {message} before it stopped the job")
                    if _apply(conn, self.db, Finished(lease, cancel, now), row.lease_owner):
                        rescued.append((lease, f"{message}; cancelled"))
                    continue
                if row.started_at is None and (row.unstarted_rescues or 0) < UNSTARTED_RESCUES:
                    if _hand_back_unstarted(conn, self.db, row, message, now):
                        rescued.append((lease, f"{message}; not started, handed back unspent"))
                    continue
                error = Errored(AttemptOutcome.LOST, WorkerLost.__name__, message)
                decision = decide(lease, error)
                if _apply(conn, self.db, Finished(lease, decision, now), row.lease_owner):
                    rescued.append((lease, message))  # (the decision logged its own line)
        _log_rescued(rescued)
        return len(rescued)

    def held_back_wakes_nobody(self) -> bool:
        """Whether a job held back by a running quota can become claimable without waking
        an idle worker: on PostgreSQL (SQLite's idle workers wake on any commit) while a
        quota is set, or a throttle (a claimer that found one locked by another passed over
        its jobs, and the other's commit sends no NOTIFY)."""
        return not self.db.is_sqlite and self.claims_held_back()

    def running_quota_set(self) -> bool:
        """Whether any user has a running quota (from the cached limits snapshot)."""
        return running_quotas(cache_for(self.db).current(self.db), self.db.settings) is not None

    def claims_held_back(self) -> bool:
        """Whether a running quota or an execution throttle is set: a worker then claims
        nothing ahead (a claim ahead would hold a slot, or count as a start, unstarted)."""
        return self.running_quota_set() or bool(cache_for(self.db).current(self.db).throttles)

    def throttle_frees_at(self, queues: Sequence[str] | None, tasks: Sequence[str] | None, now: float) -> float | None:
        """When the first full throttle that can hold back this worker's jobs has room
        again (an idle worker sleeps until then: nothing else wakes it); None if none is full."""
        snapshot = cache_for(self.db).current(self.db)
        mine = [t for t in snapshot.throttles if throttling.relevant(t, queues, tasks)]
        if not mine:
            return None
        with self.db.read() as conn:
            return throttling.next_free_at(conn, mine, now)

    def next_run_at(self, queues: Sequence[str] | None, tasks: Sequence[str] | None = None) -> float | None:
        """When the earliest pending job becomes runnable (for an idle worker's sleep).
        Paused queues are left out: their jobs wait for a resume, which wakes workers."""
        query = sa.select(sa.func.min(jobs.c.run_at)).where(IS_PENDING)
        if queues is not None:
            query = query.where(jobs.c.queue.in_(queues))
        if tasks is not None:
            query = query.where(jobs.c.task.in_(tasks))
        with self.db.read() as conn:
            paused = cache_for(self.db).get(conn).paused
            if paused:
                query = query.where(jobs.c.queue.not_in(paused))
            return conn.execute(query).scalar()


def _log_rescued(rescued: Sequence[tuple[Lease, str]]) -> None:
    """A line per rescued job, at INFO (written, so after the commit)."""
    if not rescued or not log.isEnabledFor(logging.INFO):
        return
    for lease, what in rescued:
        fields = {**job_fields(lease), "event": "rescued"}
        log.info(
            "job %s (%s) attempt %d rescued: %s",
            lease.job_id,
            lease.task,
            lease.attempt,
            what,
            extra={"fields": fields},
        )


def _held(lease: Lease) -> dict[str, Any]:
    return {"p_id": lease.job_id, "p_token": lease.token}


def _beat(lease: Lease, now: float, started: bool) -> dict[str, Any]:
    return {**_held(lease), "p_now": now, "p_started": lease.started_at if started else None}


def _hand_back_unstarted(conn: Connection, db: Database, row: Any, lost: str, now: float) -> bool:
    """A rescued job its worker claimed ahead and never started (as far as the store
    knows): back to PENDING in its place in line, its attempt unspent; the history row
    says so."""
    held = {"p_id": row.id, "p_token": row.lease_token, "p_now": now}
    if conn.execute(st.HAND_BACK_UNSTARTED, held).rowcount != 1:
        return False
    count = (row.unstarted_rescues or 0) + 1
    message = (
        f"{lost}; it had claimed this job ahead and not started it, so the job was handed back "
        f"without spending an attempt ({count} of {UNSTARTED_RESCUES} such rescues)"
    )
    error = Errored(AttemptOutcome.LOST, WorkerLost.__name__, message)
    conn.execute(st.RECORD_ATTEMPT, _attempt_row(row.id, row.attempts, row.lease_owner, error.kind, None, now, error))
    db.notify(conn, row.queue)
    return True


def _ended(lease: Lease, now: float) -> dict[str, Any]:
    """An ack's guard and times: the attempt's start as the worker saw it (a prefetched
    job starts after its claim)."""
    return {**_held(lease), "p_now": now, "p_started": lease.started_at}


def _result_json(result: object) -> str:
    """A completion's result as stored: JSON text (``null`` for None, what most tasks
    return, without the encoder: 1-2 µs a job)."""
    return "null" if result is None else json.dumps(result)


def _apply_all(conn: Connection, db: Database, finished: Sequence[Finished], worker_id: str) -> list[Lease]:
    """Write every finished attempt; return the leases found lost. Completions, the bulk
    of a busy worker's acks, go in one statement for the whole batch (each records its
    attempt in the job's row: see store/history.py); if any of them finds its lease gone,
    the batch is undone to a savepoint and written one by one, which tells which."""
    completed = [(f, f.decision) for f in finished if isinstance(f.decision, Complete)]
    if len(completed) < 2:
        return [f.lease for f in finished if not _apply(conn, db, f, worker_id)]
    lost = [f.lease for f in finished if not isinstance(f.decision, Complete) and not _apply(conn, db, f, worker_id)]
    if not db.is_sqlite:
        return lost + _complete_batch(conn, db, completed)
    # One statement for the batch, not one step per ack (statements.SQLITE_COMPLETE_MANY: why).
    acks = [
        [f.lease.job_id, f.lease.token, _result_json(done.result), f.lease.started_at, f.finished_at]
        for f, done in completed
    ]
    with direct.Savepoint(conn, db) as batch:
        if direct.execute(conn, db, st.SQLITE_COMPLETE_MANY, {"p_rows": st.encode_batch(acks)}).rowcount == len(acks):
            return lost
        batch.rollback()
    return lost + [f.lease for f, _ in completed if not _apply(conn, db, f, worker_id)]


def _complete_batch(conn: Connection, db: Database, completed: Sequence[tuple[Finished, Complete]]) -> list[Lease]:
    """PostgreSQL: every completion of a batch in one statement (statements.COMPLETE_BATCH);
    returns the leases found lost."""
    params = {"p_rows": st.encode_batch(_completion_rows(completed))}
    acked = {(row.job_id, row.number) for row in direct.execute_sql(conn, db, st.COMPLETE_BATCH, params)}
    return [f.lease for f, _ in completed if (f.lease.job_id, f.lease.attempt) not in acked]


def _completion_rows(completed: Iterable[tuple[Finished, Complete]]) -> list[dict[str, Any]]:
    """The rows of statements.COMPLETE_BATCH (PostgreSQL) for ``completed``."""
    return [
        {
            "id": f.lease.job_id,
            "token": f.lease.token,
            "number": f.lease.attempt,
            "started_at": f.lease.started_at,
            "finished_at": f.finished_at,
            "result": _result_json(done.result),
        }
        for f, done in completed
    ]


def _apply(conn: Connection, db: Database, done: Finished, worker_id: str | None) -> bool:
    """One UPDATE guarded by the lease token, then the attempt's history row (a completion
    has none: its row records it). False, and nothing written, when the token no longer
    matches."""
    lease, now = done.lease, done.finished_at
    params = _ended(lease, now)
    match done.decision:
        case Complete(result):  # its attempt is recorded in the job's row (completed_by)
            params["p_result"] = _result_json(result)
            return direct.execute(conn, db, st.COMPLETE, params).rowcount == 1
        case Retry(run_at, error):
            stmt, both, outcome = st.RETRY, st.RETRY_AND_RECORD, error.kind
            params["p_run_at"] = run_at
        case DeadLetter(error, reason):
            stmt, both, outcome = st.DEAD_LETTER, st.DEAD_LETTER_AND_RECORD, error.kind
            params["p_reason"] = reason
        case Cancel(message):
            return _cancel(conn, db, done, worker_id, message)
    row = _attempt_row(lease.job_id, lease.attempt, worker_id, outcome, lease.started_at, now, error)
    if not db.is_sqlite:
        recorded = {f"a_{name}": row[name] for name in st.ATTEMPT_COLUMNS}
        return len(conn.execute(both, {**params, **recorded}).all()) == 1
    if direct.execute(conn, db, stmt, params).rowcount != 1:
        return False
    direct.execute(conn, db, st.RECORD_ATTEMPT, row)
    return True


def _cancel(conn: Connection, db: Database, done: Finished, worker_id: str | None, message: str) -> bool:
    """A cancelled attempt: the job CANCELLED, the attempt unspent, its history row saying
    why (no error type: it is no error). Rare, so two statements on both databases."""
    lease = done.lease
    if conn.execute(st.CANCEL, _ended(lease, done.finished_at)).rowcount != 1:
        return False
    outcome = AttemptOutcome.CANCELLED
    row = _attempt_row(lease.job_id, lease.attempt, worker_id, outcome, lease.started_at, done.finished_at)
    conn.execute(st.RECORD_ATTEMPT, {**row, "error_message": message})
    return True


def _attempt_row(
    job_id: str,
    number: int,
    worker_id: str | None,
    outcome: AttemptOutcome,
    started_at: float | None,
    finished_at: float,
    error: Errored | None = None,
) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "number": number,
        "worker_id": worker_id,
        "outcome": outcome,
        "started_at": started_at,
        "finished_at": finished_at,
        "error_type": error.error_type if error else None,
        "error_message": error.message if error else None,
        "traceback": error.traceback if error else None,
    }
