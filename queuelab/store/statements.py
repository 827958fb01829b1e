"""The hot-path statements, built once with bind parameters.

Building a Core statement costs more than running it on SQLite; these are built at
import and reused, so each call only binds values (SQLAlchemy caches the compiled SQL).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.dml import Insert, Update

from queuelab.models import JobStatus
from queuelab.store.schema import IS_PENDING, IS_RUNNING, attempts, jobs

NOW = sa.bindparam("p_now", type_=sa.Double)
# PostgreSQL's batch statements (INSERT_BATCH, COMPLETE_BATCH) take their rows as one JSON
# array of objects (``p_rows``, read by json_to_recordset), not an array parameter per
# column: psycopg dumps an array's elements one by one in Python, about 1 µs each, where the
# json module's C encoder writes a whole batch at once. Client CPU, measured: 100 acks 792-911
# -> 369-442 µs; an insert of 16 rows 799-887 -> 407-472 µs, of 200 rows 4.3-5.9 -> 1.9-2.5
# ms. ASCII out (other characters as \u escapes, which PostgreSQL's JSON reader turns back);
# a float is written in its shortest round-trip form, which PostgreSQL reads back to the same
# double.
encode_batch = json.JSONEncoder(allow_nan=False, check_circular=False, separators=(",", ":")).encode
# When the attempt started, as its worker saw it; NULL for a job claimed ahead of a free slot.
STARTED = sa.bindparam("p_started", type_=sa.Double)
_NO_LEASE = {"lease_token": None, "lease_owner": None, "lease_expires_at": None}
_HELD = (
    jobs.c.id == sa.bindparam("p_id"),
    jobs.c.lease_token == sa.bindparam("p_token"),
    jobs.c.status == JobStatus.RUNNING,
)

CLAIMED_COLUMNS = (
    jobs.c.id,
    jobs.c.task,
    jobs.c.payload,
    jobs.c.user_id,
    jobs.c.queue,
    jobs.c.attempts,
    jobs.c.max_retries,
    jobs.c.lease_seconds,
    jobs.c.timeout_seconds,
    jobs.c.priority,  # with fair_rank: the claim order, which RETURNING does not keep
    jobs.c.fair_rank,
    jobs.c.run_at,  # when the attempt was due: a worker's wait metric (started_at - run_at)
    jobs.c.trace_context,  # the submitter's trace, continued by the run (NULL without OpenTelemetry)
)


def in_list(name: str, count: int) -> list[sa.BindParameter[Any]]:
    """``count`` plain bind parameters ``name_0``, ``name_1``...: an ``IN`` list whose SQL is
    compiled once per length and cached, where an expanding parameter would re-render the
    statement on every execution (a tenth of a millisecond per claim)."""
    return [sa.bindparam(f"{name}_{i}") for i in range(count)]


def in_list_params(name: str, values: Sequence[Any]) -> dict[str, Any]:
    """The values for :func:`in_list` (``name``, ``len(values)``)."""
    return {f"{name}_{i}": value for i, value in enumerate(values)}


def runnable(
    pick: sa.Select[Any], queues: int, tasks: int, skip_queues: int, skip_tasks: int = 0, skip_users: int = 0
) -> sa.Select[Any]:
    """``pick`` narrowed to PENDING jobs due now, of the worker's queues and tasks, in queues
    that are not paused. Each filter is a list of that many values (0: no filter), bound at
    execution (see :func:`in_list_params`: p_queues, p_tasks, p_skip_queues). Under
    execution throttles, the tasks and users with no room left are skipped too
    (p_skip_tasks, p_skip_users; their queues join p_skip_queues)."""
    pick = pick.where(IS_PENDING, jobs.c.run_at <= NOW)
    if queues:
        pick = pick.where(jobs.c.queue.in_(in_list("p_queues", queues)))
    if tasks:
        pick = pick.where(jobs.c.task.in_(in_list("p_tasks", tasks)))
    if skip_queues:
        pick = pick.where(jobs.c.queue.not_in(in_list("p_skip_queues", skip_queues)))
    if skip_tasks:
        pick = pick.where(jobs.c.task.not_in(in_list("p_skip_tasks", skip_tasks)))
    if skip_users:
        pick = pick.where(jobs.c.user_id.not_in(in_list("p_skip_users", skip_users)))
    return pick


@cache
def pick_statement(
    queues: int, tasks: int, skip_queues: int, skip_tasks: int = 0, skip_users: int = 0
) -> sa.Select[Any]:
    """The runnable jobs in claim order: highest priority, then lowest fair rank.

    PostgreSQL: FOR UPDATE SKIP LOCKED lets concurrent claimers pass over rows another
    transaction is taking instead of queueing behind it. SQLite has no row locks (SQLAlchemy
    drops the clause there without a word): the enclosing BEGIN IMMEDIATE holds the
    database write lock across the whole claim, which serialises claimers instead.
    """
    pick = runnable(sa.select(jobs.c.id, jobs.c.user_id), queues, tasks, skip_queues, skip_tasks, skip_users)
    pick = pick.order_by(jobs.c.priority.desc(), jobs.c.fair_rank).limit(sa.bindparam("p_limit"))
    return pick.with_for_update(skip_locked=True)


_TAKE = {
    "status": JobStatus.RUNNING,
    "attempts": jobs.c.attempts + 1,
    "lease_token": sa.bindparam("p_token"),
    "lease_owner": sa.bindparam("p_owner"),
    "lease_expires_at": NOW + jobs.c.lease_seconds,
    # p_now for the jobs a worker starts at once; NULL for those it claims ahead (a rescue
    # then hands them back without spending their attempt, see leases.LeaseStore.rescue).
    "started_at": STARTED,
}


# PostgreSQL: a row's physical address (see claim_statement).
TID: sa.ColumnElement[Any] = sa.literal_column("ctid")


@cache
def claim_statement(
    queues: int, tasks: int, skip_queues: int, skip_tasks: int = 0, skip_users: int = 0, *, postgres: bool = False
) -> Update:
    """Pick and take in one statement: UPDATE ... WHERE id IN (pick) RETURNING ...

    PostgreSQL takes the rows it picked and locked by address, ``ctid = ANY(ARRAY(pick))``:
    a TID scan, whatever the planner believes of the table. ``id IN (pick)`` was planned as
    a hash semi join over a sequential scan of the whole table (history included) once the
    prepared statement's generic plan set in: 1.7 of a 4.7 ms claim of 100 jobs at 10,000
    rows, growing with the table. The addresses are of rows the pick locked ``FOR UPDATE``
    after re-checking them PENDING, so no one else changes them before this commits (the
    one rare miss, a row updated after this statement's snapshot and left PENDING, is
    described at quota_sql._take: that job is not taken this time)."""
    pick = pick_statement(queues, tasks, skip_queues, skip_tasks, skip_users)
    if postgres:
        taken = sa.any_(sa.func.array(pick.with_only_columns(TID).scalar_subquery())) == TID
    else:
        taken = jobs.c.id.in_(pick.with_only_columns(jobs.c.id).scalar_subquery())
    return jobs.update().where(taken).values(**_TAKE).returning(*CLAIMED_COLUMNS)


RUNNING_BY_USER = sa.select(jobs.c.user_id, sa.func.count()).where(IS_RUNNING).group_by(jobs.c.user_id)


# An ack also writes when the attempt started: a job claimed ahead starts after its claim.
_ENDED = {**_NO_LEASE, "started_at": STARTED}
# A completion records its attempt in the job's row (completed_by: the worker, the lease's
# owner), not in a queuelab_attempts row: see store/history.py.
COMPLETE = (
    jobs.update()
    .where(*_HELD)
    .values(
        status=JobStatus.COMPLETED,
        result=sa.bindparam("p_result"),
        finished_at=NOW,
        completed_by=jobs.c.lease_owner,
        **_ENDED,
    )
)
# A retry of a job someone asked to cancel while it ran (a request its worker had not seen
# when the attempt failed) ends it CANCELLED instead: a cancelled job never runs again.
_ASKED_TO_CANCEL = jobs.c.cancel_requested_at.is_not(None)
RETRY = (
    jobs.update()
    .where(*_HELD)
    .values(
        status=sa.case((_ASKED_TO_CANCEL, JobStatus.CANCELLED), else_=JobStatus.PENDING),
        finished_at=sa.case((_ASKED_TO_CANCEL, NOW), else_=None),
        run_at=sa.bindparam("p_run_at"),
        **_ENDED,
    )
)
DEAD_LETTER = (
    jobs.update()
    .where(*_HELD)
    .values(status=JobStatus.FAILED, finished_at=NOW, dead_letter_reason=sa.bindparam("p_reason"), **_ENDED)
)
# A job handed back at a stop goes back to PENDING, its attempt unspent; one someone asked to
# cancel meanwhile ends CANCELLED instead (it must not run again).
RELEASE = (
    jobs.update()
    .where(*_HELD)
    .values(
        status=sa.case((_ASKED_TO_CANCEL, JobStatus.CANCELLED), else_=JobStatus.PENDING),
        finished_at=sa.case((_ASKED_TO_CANCEL, NOW), else_=None),
        attempts=jobs.c.attempts - 1,
        **_NO_LEASE,
    )
)
# A cancelled attempt (q.cancel while it ran): the job ends CANCELLED, and its attempt is
# handed back as a release's is (the history row says CANCELLED).
CANCEL = (
    jobs.update()
    .where(*_HELD)
    .values(status=JobStatus.CANCELLED, finished_at=NOW, attempts=jobs.c.attempts - 1, **_ENDED)
)
# A heartbeat also records the start of a job claimed ahead (p_started NULL: not started yet).
EXTEND = (
    jobs.update()
    .where(*_HELD)
    .values(lease_expires_at=NOW + jobs.c.lease_seconds, started_at=sa.func.coalesce(jobs.c.started_at, STARTED))
)
# A rescue of a job claimed ahead whose start was never recorded: back to PENDING, its
# attempt unspent, the rescue counted (leases.UNSTARTED_RESCUES bounds how often).
# A release, for a job with no recorded start, that also counts the rescue.
HAND_BACK_UNSTARTED = RELEASE.where(jobs.c.started_at.is_(None)).values(
    unstarted_rescues=sa.func.coalesce(jobs.c.unstarted_rescues, 0) + 1
)
RECORD_ATTEMPT = attempts.insert()

# The attempt row's values, bound as a_<column> where one statement also acks (below).
ATTEMPT_COLUMNS = ("number", "worker_id", "outcome", "started_at", "error_type", "error_message", "traceback")


def _and_record(ack: Update) -> Insert:
    """PostgreSQL: the ack and its attempt row in one statement, one round trip instead
    of two: the row is inserted only if the ack matched (the lease was held), so the
    statement's rowcount is the ack's. SQLite has no UPDATE inside WITH; it runs the two
    statements, each a few microseconds there. Returns one row if the lease was held."""
    done = ack.returning(jobs.c.id).cte("done")
    # Cast, since a NULL bound in a SELECT list would be typed text; to the type without its
    # length, which a cast would silently truncate to (the insert still checks it).
    values = [sa.cast(sa.bindparam(f"a_{name}"), type(attempts.c[name].type)()) for name in ATTEMPT_COLUMNS]
    row = sa.select(done.c.id, *values, sa.cast(NOW, sa.Double))
    # RETURNING: psycopg reports no rowcount for this statement; the rows say it.
    return attempts.insert().from_select(["job_id", *ATTEMPT_COLUMNS, "finished_at"], row).returning(attempts.c.id)


# PostgreSQL: a batch of completions in one statement, one round trip: the batch comes as
# one JSON array of rows (encode_batch); each ack is guarded by its lease token as the one-by-one ack is,
# and RETURNING names those that matched (job id and attempt number): the others found their
# lease gone. Each completion's attempt stays in its row (completed_by, as COMPLETE).
_BATCH = (
    sa.func.json_to_recordset(sa.cast(sa.bindparam("p_rows"), sa.JSON))
    .table_valued(
        sa.column("id", sa.String),
        sa.column("token", sa.String),
        sa.column("number", sa.Integer),
        sa.column("started_at", sa.Double),
        sa.column("finished_at", sa.Double),
        sa.column("result", sa.Text),
    )
    .render_derived(name="b", with_types=True)
)
_COMPLETE_BATCH = (
    jobs.update()
    .where(jobs.c.id == _BATCH.c.id, jobs.c.lease_token == _BATCH.c.token, IS_RUNNING)
    .values(
        status=JobStatus.COMPLETED,
        result=_BATCH.c.result,
        finished_at=_BATCH.c.finished_at,
        started_at=_BATCH.c.started_at,
        completed_by=jobs.c.lease_owner,
        lease_token=sa.null(),
        lease_owner=sa.null(),
        lease_expires_at=sa.null(),
    )
)
COMPLETE_BATCH = _COMPLETE_BATCH.returning(jobs.c.id.label("job_id"), _BATCH.c.number)


@cache
def turn_statement(queues: int, tasks: int, skip_queues: int) -> sa.CompoundSelect[Any]:
    """PostgreSQL: a worker's whole turn in one statement, run on its own (autocommit): one
    round trip where BEGIN, the acks, the claim, the claim ahead and COMMIT were five.

    ``acked``: COMPLETE_BATCH over ``p_rows`` (``[]``: nothing to ack). ``picked``: up to
    ``p_limit`` runnable jobs in claim order, locked (skipping rows other claimers hold);
    ``claimed`` leases them, taken by address as claim_statement does, and records
    ``started_at`` (``p_now``) of the first ``p_start`` in claim order only: the rest are
    claimed ahead. The result holds one row per ack that matched (``acked_id``,
    ``acked_number``; the rest NULL), then the claimed rows (``acked_id`` NULL). The acks
    touch the worker's RUNNING jobs and the claim PENDING ones: no row is written twice.
    Only for completions without quotas or throttles (claims.one_statement); the rest take a
    transaction (leases.LeaseStore.ack_and_claim).

    The acks' branch comes first: PostgreSQL runs a data-modifying CTE when the query first
    reads it, so the acks take their row locks before the pick locks any job, as the ack
    then the claim did in a transaction (an ack that waits on a row, behind a heartbeat
    say, then holds no pending job meanwhile). One difference: every part of a statement
    reads the snapshot it began with, so a child that an ack here releases (a dependency,
    released by the trigger) is not claimed by this statement: the release's NOTIFY wakes
    the workers (this one too) to claim it in a later turn."""
    acked = _COMPLETE_BATCH.returning(jobs.c.id.label("acked_id"), _BATCH.c.number.label("acked_number"))
    acked_rows = acked.cte("acked")
    pick = pick_statement(queues, tasks, skip_queues)
    picked = pick.with_only_columns(TID.label("tid"), jobs.c.priority, jobs.c.fair_rank).cte("picked")
    in_order = sa.select(picked.c.tid).order_by(picked.c.priority.desc(), picked.c.fair_rank)
    first = in_order.limit(sa.bindparam("p_start"))
    started = sa.any_(sa.func.array(first.scalar_subquery())) == TID
    taken = sa.any_(sa.func.array(sa.select(picked.c.tid).scalar_subquery())) == TID
    take = {**_TAKE, "started_at": sa.case((started, NOW), else_=sa.null())}
    claimed = jobs.update().where(taken).values(**take).returning(*CLAIMED_COLUMNS, jobs.c.started_at).cte("claimed")
    matched = sa.select(*(sa.null().label(c.name) for c in claimed.c), acked_rows.c.acked_id, acked_rows.c.acked_number)
    leases = sa.select(*claimed.c, sa.null().label("acked_id"), sa.null().label("acked_number"))
    return sa.union_all(matched, leases)


RETRY_AND_RECORD = _and_record(RETRY)
DEAD_LETTER_AND_RECORD = _and_record(DEAD_LETTER)

# -- SQLite: a turn in a few steps, whatever its size ----------------------------------------
# The sqlite3 module releases the GIL around every step of a statement: once per parameter
# set of an executemany, once per row a SELECT or RETURNING hands back. Each step's return
# then waits for the GIL, which a worker's slot threads hold while they run jobs (a job's
# Python runs until its next I/O or the 5 ms switch interval). A turn of 400 acks and 400
# claims was 800 such waits: raw sqlite3, a batch of 435 completions took 21 µs a row alone
# and 143 µs a row (45 of them CPU) beside four threads appending to a file. So a batch
# goes to SQLite as one JSON array (encode_batch) read by json_each, and a claim's rows come
# back as one JSON array: one step each, however many jobs (19 µs a row beside the four).


def _sqlite_field(rows: Any, index: int) -> sa.ColumnElement[Any]:
    return sa.func.json_extract(rows.c.value, sa.literal_column(f"'$[{index}]'"))


# The completions of a batch: ``p_rows`` is a JSON array of [id, lease token, result (JSON
# text), started_at, finished_at], each guarded by its lease token as COMPLETE is; the
# statement's rowcount says whether every one matched (leases._apply_all).
_SQLITE_ACKS = sa.func.json_each(sa.bindparam("p_rows")).table_valued("value").alias("a")
SQLITE_COMPLETE_MANY = (
    jobs.update()
    .where(
        jobs.c.id == _sqlite_field(_SQLITE_ACKS, 0),
        jobs.c.lease_token == _sqlite_field(_SQLITE_ACKS, 1),
        IS_RUNNING,
    )
    .values(
        status=JobStatus.COMPLETED,
        result=_sqlite_field(_SQLITE_ACKS, 2),
        started_at=_sqlite_field(_SQLITE_ACKS, 3),
        finished_at=_sqlite_field(_SQLITE_ACKS, 4),
        completed_by=jobs.c.lease_owner,
        **_NO_LEASE,
    )
)

# A claim's rows as one JSON array of arrays, CLAIMED_COLUMNS in order. SQLite's JSON writes
# a REAL with 15 significant digits (a time of day to 10 µs, a fair rank rounded), so the
# REAL columns come as quote()'s text, which reads back to the same double; NULL as null.
_REAL_COLUMNS = frozenset({"lease_seconds", "timeout_seconds", "fair_rank", "run_at"})


@cache
def sqlite_pick_rows(
    queues: int, tasks: int, skip_queues: int, skip_tasks: int = 0, skip_users: int = 0
) -> sa.Select[Any]:
    """SQLite: the rows :func:`pick_statement` picks (up to ``p_limit``), CLAIMED_COLUMNS of
    each before the claim changes them, as one JSON array (one step); SQLITE_TAKE then takes
    them, in the same transaction, which holds the database write lock between the two."""
    pick = pick_statement(queues, tasks, skip_queues, skip_tasks, skip_users)
    picked = pick.with_only_columns(*CLAIMED_COLUMNS).subquery("picked")
    fields = [
        sa.func.nullif(sa.func.quote(picked.c[c.name]), sa.literal_column("'NULL'"))
        if c.name in _REAL_COLUMNS
        else picked.c[c.name]
        for c in CLAIMED_COLUMNS
    ]
    return sa.select(sa.func.json_group_array(sa.func.json_array(*fields)).label("picked"))


# SQLite: take the jobs ``p_ids`` (a JSON array of ids, in claim order) as claim_statement
# does; the first ``p_start`` of them start now (``p_started``), the rest are claimed ahead.
_SQLITE_IDS = sa.func.json_each(sa.bindparam("p_ids")).table_valued("value", "key").alias("c")
SQLITE_TAKE = (
    jobs.update()
    .where(jobs.c.id == _SQLITE_IDS.c.value, IS_PENDING)
    .values(**{**_TAKE, "started_at": sa.case((_SQLITE_IDS.c.key < sa.bindparam("p_start"), STARTED), else_=sa.null())})
)


# PostgreSQL, a batch of new jobs in one statement: each row's fair rank (the rule of
# admission._assign_ranks: after its user's last pending job at its priority, else at the
# head of that priority's line, in steps of 1/weight; ``nth`` counts the user's rows at
# that priority in this batch from 1), the insert, and one NOTIFY per queue, delivered at
# commit; the rows come as one JSON array (encode_batch). Replaces, for group commits and
# submit_many, a rank query per user, the COPY and a NOTIFY per queue: one round trip where
# there were five. The user's last rank is the first row of a backward index scan (ORDER BY
# ... DESC LIMIT 1), not max(): see admission._LAST_RANK for why.
INSERT_BATCH = sa.text(
    """
WITH batch AS (
    SELECT *
    FROM json_to_recordset(CAST(:p_rows AS JSON)) AS b (
        id VARCHAR, queue VARCHAR, task VARCHAR, payload TEXT, user_id VARCHAR, priority SMALLINT,
        run_at DOUBLE PRECISION, max_retries INTEGER, lease_seconds DOUBLE PRECISION,
        timeout_seconds DOUBLE PRECISION, idempotency_key VARCHAR, created_at DOUBLE PRECISION,
        step DOUBLE PRECISION, nth INTEGER, trace_context TEXT
    )
),
starts AS MATERIALIZED (
    SELECT l.user_id, l.priority, COALESCE(
        (SELECT p.fair_rank FROM queuelab_jobs AS p
         WHERE p.status = 'PENDING' AND p.user_id = l.user_id AND p.priority = l.priority
         ORDER BY p.fair_rank DESC LIMIT 1),
        (SELECT p.fair_rank FROM queuelab_jobs AS p
         WHERE p.status = 'PENDING' AND p.priority = l.priority ORDER BY p.fair_rank LIMIT 1),
        0.0) AS start
    FROM (SELECT DISTINCT user_id, priority FROM batch) AS l
),
inserted AS (
    INSERT INTO queuelab_jobs (id, queue, task, payload, user_id, status, priority, fair_rank, run_at, attempts,
                               max_retries, lease_seconds, timeout_seconds, forced, idempotency_key, created_at,
                               trace_context)
    SELECT b.id, b.queue, b.task, b.payload, b.user_id, 'PENDING', b.priority, s.start + b.nth * b.step, b.run_at, 0,
           b.max_retries, b.lease_seconds, b.timeout_seconds, false, b.idempotency_key, b.created_at, b.trace_context
    FROM batch AS b JOIN starts AS s ON s.user_id = b.user_id AND s.priority = b.priority
    RETURNING queue
)
SELECT pg_notify(:p_channel, queue) FROM (SELECT DISTINCT queue FROM inserted) AS woken
"""
)


# The latest progress of a running job, fenced by its lease (a rescued job's old runner
# writes nothing).
PROGRESS = (
    jobs.update()
    .where(*_HELD)
    .values(progress=sa.bindparam("p_progress", type_=sa.Double), progress_message=sa.bindparam("p_message"))
)
