"""Jobs as records: insert, read, list, and the admin transitions (requeue, force-success,
cancel, prune). The lease life cycle lives in :mod:`queuelab.store.leases`."""

from __future__ import annotations

import functools
import itertools
import json
import operator
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.engine import Connection, RowMapping

from queuelab.errors import InvalidArgument, InvalidTransition, JobNotFound, StoreError
from queuelab.models import ActionKind, Job, JobStatus
from queuelab.store import direct
from queuelab.store.admission import (
    RANK_STEP,
    admit,
    fresh_ranks,
    ranked_insert,
    sqlite_ranked_insert,
    unchecked_rank_step,
)
from queuelab.store.database import Database, translate_errors
from queuelab.store.dependencies import Parents, block, check_parents_exist, forget, link
from queuelab.store.group_commit import GroupCommit
from queuelab.store.history import keep_completions
from queuelab.store.rows import job_from_row
from queuelab.store.schema import NOTIFY_CHANNEL, actions, attempts, jobs
from queuelab.store.statements import INSERT_BATCH, encode_batch

_INSERT = jobs.insert()
# PostgreSQL: batches up to this size are ranked, inserted and notified in one statement
# (INSERT_BATCH); larger ones stream by COPY, which binds rows faster than arrays (measured,
# jobs/s: 10 rows 2,700-3,200 against 1,200-1,400; 1,000 rows 13,100 against 14,000-20,700).
BATCH_ROWS = 200
REQUEUEABLE = (JobStatus.FAILED, JobStatus.COMPLETED, JobStatus.CANCELLED)
FORCEABLE = (JobStatus.FAILED, JobStatus.COMPLETED)
CANCELLABLE = (JobStatus.PENDING, JobStatus.RUNNING)  # a RUNNING one: see JobStore.cancel
PRUNABLE = (JobStatus.COMPLETED, JobStatus.CANCELLED)


@dataclass(frozen=True, slots=True)
class JobFilter:
    status: JobStatus | None = None
    user_id: str | None = None
    queue: str | None = None
    task: str | None = None

    def clauses(self) -> list[sa.ColumnElement[bool]]:
        pairs = [
            (jobs.c.status, self.status),
            (jobs.c.user_id, self.user_id),
            (jobs.c.queue, self.queue),
            (jobs.c.task, self.task),
        ]
        return [column == value for column, value in pairs if value is not None]


class JobStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.group = GroupCommit(self.insert)

    def insert_shared(self, rows: Sequence[dict[str, Any]], now: float) -> dict[str, Job]:
        """:meth:`insert`; on SQLite sharing one transaction with the submits of other
        threads that write at the same time (see :mod:`queuelab.store.group_commit`), since
        its writers queue for one lock. PostgreSQL commits concurrent connections side by
        side, and one submit alone is one statement there (measured: sharing made 4
        producer threads slower, 1,023 against 1,193 jobs/s for one)."""
        if not self.db.is_sqlite:
            return self.insert(rows, now)
        return self.group.write(list(rows), now)

    async def ainsert_shared(self, rows: Sequence[dict[str, Any]], now: float) -> dict[str, Job]:
        """:meth:`insert_shared` for a coroutine, on both databases: the rows are written
        by the group's writer thread, with those of the other coroutines waiting meanwhile,
        while the event loop runs on. PostgreSQL shares too here: the alternative is a
        thread hop per caller, and a shared batch is one statement (INSERT_BATCH)."""
        return await self.group.awrite(list(rows), now)

    def insert(self, rows: Sequence[dict[str, Any]], now: float, *, rate_in_sql: bool = True) -> dict[str, Job]:
        """Store new jobs in one transaction (all or nothing) and wake their workers.

        A row whose idempotency key names a stored job is not inserted; the result maps
        such keys to the stored job. Two submitters racing with one key: the loser's
        insert breaks the unique index, and its retry finds the winner's job.
        """
        keys = sorted({r["idempotency_key"] for r in rows if r["idempotency_key"] is not None})
        for attempt in (1, 2):
            try:
                return self._insert_once(rows, keys, now, rate_in_sql)
            except StoreError as exc:
                if attempt == 2 or not keys or not isinstance(exc.__cause__, sa.exc.IntegrityError):
                    raise
        raise AssertionError("unreachable")

    def insert_in(
        self, conn: Connection, rows: Sequence[dict[str, Any]], now: float, *, rate_in_sql: bool = True
    ) -> dict[str, Job]:
        """:meth:`insert` on the caller's connection, in its transaction (begun if none is):
        nothing is committed here; the jobs commit, or roll back, with the caller's other
        writes (an application's rows, a schedule's next tick). A refusal (a limit, a bad key) raises before anything is
        written, so the caller's transaction stays usable. On PostgreSQL the rows go in under
        a savepoint: a concurrent submit with the same idempotency key breaks the unique
        index, the savepoint is undone and the retry finds that job, and the caller's
        transaction lives on."""
        keys = sorted({r["idempotency_key"] for r in rows if r["idempotency_key"] is not None})
        with translate_errors(self.db):
            if self.db.is_sqlite or not keys:
                return self._insert_on(conn, rows, keys, now, rate_in_sql)
            for attempt in (1, 2):
                savepoint = conn.begin_nested()
                try:
                    existing = self._insert_on(conn, rows, keys, now, rate_in_sql)
                except sa.exc.IntegrityError:
                    savepoint.rollback()
                    if attempt == 2:
                        raise
                    continue
                except BaseException:
                    savepoint.rollback()
                    raise
                savepoint.commit()
                return existing
        raise AssertionError("unreachable")

    def insert_after(
        self,
        rows: Sequence[dict[str, Any]],
        parents: Parents,
        now: float,
        *,
        conn: Connection | None = None,
        rate_in_sql: bool = True,
    ) -> dict[str, Job]:
        """:meth:`insert` (or :meth:`insert_in` on ``conn``) of rows some of which run after
        other jobs, stored or in the same batch (``parents``: new job id -> parent ids; see
        :mod:`queuelab.store.dependencies`). An unknown parent raises before anything is
        written."""
        keys = sorted({r["idempotency_key"] for r in rows if r["idempotency_key"] is not None})

        def write(c: Connection) -> dict[str, Job]:
            check_parents_exist(c, parents, {row["id"] for row in rows})
            ready = block(rows, parents)
            existing = self._insert_on(c, rows, keys, now, rate_in_sql)
            stand_in = _stand_ins(rows, existing)
            link(c, self.db, ready, {child: [stand_in.get(p, p) for p in ps] for child, ps in parents.items()})
            return existing

        if conn is None:
            with self.db.write() as c:
                return write(c)
        with translate_errors(self.db):
            if self.db.is_sqlite:
                return write(conn)
            with conn.begin_nested():
                return write(conn)

    def _insert_once(
        self, rows: Sequence[dict[str, Any]], keys: list[str], now: float, rate_in_sql: bool
    ) -> dict[str, Job]:
        if not keys and not self.db.is_sqlite and len(rows) <= BATCH_ROWS and self._insert_unchecked(rows, rate_in_sql):
            return {}
        with self.db.write() as conn:
            return self._insert_on(conn, rows, keys, now, rate_in_sql)

    def _insert_on(
        self, conn: Connection, rows: Sequence[dict[str, Any]], keys: list[str], now: float, rate_in_sql: bool
    ) -> dict[str, Job]:
        """Write the rows whose idempotency keys name no stored job (nor an earlier row);
        return the stored jobs by key."""
        existing: dict[str, Job] = {}
        if keys:
            found = conn.execute(sa.select(jobs).where(jobs.c.idempotency_key.in_(keys))).mappings()
            existing = {row["idempotency_key"]: job_from_row(row) for row in found}
        seen: set[str] = set(existing)
        fresh = []
        for row in rows:
            key = row["idempotency_key"]
            if key is None or key not in seen:
                fresh.append(row)
                if key is not None:
                    seen.add(key)
        if fresh:
            self._write_rows(conn, fresh, now, rate_in_sql)
        return existing

    def _insert_unchecked(self, rows: Sequence[dict[str, Any]], rate_in_sql: bool) -> bool:
        """PostgreSQL, up to BATCH_ROWS jobs whose users' limits count no rows: the ranks,
        the insert and the NOTIFYs are one statement, run as its own transaction (one round
        trip). False, and nothing written, if an admission needs the transaction (and the
        user's lock)."""
        with self.db.autocommit() as conn:
            steps = {}
            for user in {row["user_id"] for row in rows}:
                step = unchecked_rank_step(conn, self.db, user, rate_in_sql=rate_in_sql)
                if step is None:
                    return False
                steps[user] = step
            _insert_ranked(conn, self.db, [{**row, RANK_STEP: steps[row["user_id"]]} for row in rows])
        return True

    def _write_rows(self, conn: Connection, rows: list[dict[str, Any]], now: float, rate_in_sql: bool) -> None:
        """Admit, rank and insert ``rows``, and wake the workers of their queues."""
        if len(rows) <= BATCH_ROWS and not self.db.is_sqlite:  # admitted, then one statement
            admit(conn, self.db, rows, now, rate_in_sql=rate_in_sql, rank_in_sql=True)
            _insert_ranked(conn, self.db, rows)
            return
        if len(rows) == 1:  # SQLite: admitted, then the rank and the insert in one statement
            admit(conn, self.db, rows, now, rate_in_sql=rate_in_sql, rank_in_sql=True)
            row = rows[0]
            columns = tuple(name for name in row if name != RANK_STEP)
            params = {**row, "p_user": row["user_id"], "p_priority": row["priority"]}
            direct.execute(conn, self.db, sqlite_ranked_insert(columns), params)
            return
        admit(conn, self.db, rows, now, rate_in_sql=rate_in_sql)
        if not self.db.is_sqlite:  # more than BATCH_ROWS: streamed
            _copy_rows(conn, rows)
            for queue in sorted({r["queue"] for r in rows}):
                self.db.notify(conn, queue)
        else:
            direct.insert_many(conn, self.db, _INSERT, rows)

    def find_by_idempotency_key(self, key: str) -> Job | None:
        with self.db.read() as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.idempotency_key == key)).mappings().first()
        return None if row is None else job_from_row(row)

    def get(self, job_id: str) -> Job:
        with self.db.read() as conn:
            return _read_job(conn, job_id)

    def page(
        self, where: JobFilter, *, limit: int, before: tuple[float, str] | None = None, history: bool = False
    ) -> tuple[list[Job], tuple[float, str] | None]:
        """:meth:`list`, and the ``before`` of the next page (None: no more jobs). The mark
        is the stored created_at, not the Job's: a datetime keeps microseconds, and a mark
        rounded up past its own job would put that job on the next page as well."""
        found, rows = self._read(where, limit + 1, before, history)
        if len(found) <= limit:
            return found, None
        last = rows[limit - 1]
        return found[:limit], (float(last["created_at"]), str(last["id"]))

    def _read(
        self, where: JobFilter, limit: int, before: tuple[float, str] | None, history: bool
    ) -> tuple[list[Job], list[RowMapping]]:
        query = sa.select(jobs).where(*where.clauses())
        if before is not None:
            query = query.where(sa.tuple_(jobs.c.created_at, jobs.c.id) < sa.tuple_(*before))
        query = query.order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit)
        with self.db.read() as conn:
            rows = list(conn.execute(query).mappings())
            if not history or not rows:
                return [job_from_row(row) for row in rows], rows
            ids = [row["id"] for row in rows]
            found = conn.execute(sa.select(attempts).where(attempts.c.job_id.in_(ids)).order_by(attempts.c.id))
            by_job: dict[str, list[Any]] = {}
            for attempt in found.mappings():
                by_job.setdefault(attempt["job_id"], []).append(attempt)
            return [job_from_row(row, by_job.get(row["id"], [])) for row in rows], rows

    def list(
        self, where: JobFilter, *, limit: int, before: tuple[float, str] | None = None, history: bool = False
    ) -> list[Job]:
        """Newest first; ``before`` is the (created_at, id) of the last job of the previous page.
        ``history``: with every job's attempts (one more query for the whole page)."""
        return self._read(where, limit, before, history)[0]

    def requeue(self, job_id: str, now: float, by: str | None = None) -> Job:
        """Back to PENDING with a fresh retry budget and a fresh fair rank (behind the work
        already waiting, as a new submission); the attempt history is kept, and the requeue
        recorded in it (when, ``by`` whom)."""
        with self.db.write() as conn:
            if _requeue(conn, self.db, [jobs.c.id == job_id], REQUEUEABLE, now, None, by):
                self.db.notify(conn, "*")
                return _read_job(conn, job_id)
            status = conn.execute(sa.select(jobs.c.status).where(jobs.c.id == job_id)).scalar()
        if status is None:
            raise JobNotFound(f"no job with id {job_id!r}")
        raise InvalidTransition(f"job {job_id} is {status}; only {_names(REQUEUEABLE)} jobs can be requeued")

    def requeue_many(self, where: JobFilter, now: float, rate: float | None = None, by: str | None = None) -> int:
        """Requeue the matching jobs, oldest first, each with a fresh fair rank; with
        ``rate`` (jobs per second) their run_at is spread from now at that pace, so a large
        DLQ does not land on the workers (and other users' jobs) at once. Each requeue is
        recorded in its job's history. Returns the count."""
        statuses = (where.status,) if where.status is not None else (JobStatus.FAILED,)
        if not set(statuses) <= set(REQUEUEABLE):
            raise InvalidTransition(f"only {_names(REQUEUEABLE)} jobs can be requeued, not {where.status}")
        clauses = JobFilter(None, where.user_id, where.queue, where.task).clauses()
        with self.db.write() as conn:
            count = _requeue(conn, self.db, clauses, statuses, now, rate, by)
            if count:
                self.db.notify(conn, where.queue or "*")
        return count

    def force_success(self, job_id: str, now: float, result: Any = None, by: str | None = None) -> Job:
        values = {"status": JobStatus.COMPLETED, "forced": True, "finished_at": now, "dead_letter_reason": None}
        if result is not None:
            try:
                values["result"] = json.dumps(result, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise InvalidArgument(f"result must be JSON-serialisable (no NaN or Infinity): {exc}") from None
        action = Acted(ActionKind.FORCED_SUCCESS, now, by)
        return self._transition(job_id, FORCEABLE, "forced to success", values, action)

    def cancel(self, job_id: str, now: float, by: str | None = None) -> Job:
        """A PENDING job ends CANCELLED at once. A RUNNING one gets a cancel request: its
        worker learns of it within a maintenance tick, stops the job (cooperatively, then by
        force) and acks it CANCELLED; until then it stays RUNNING, ``cancel_requested_at``
        set. Either way the action (when, ``by`` whom) is in the job's history, once."""
        acted = Acted(ActionKind.CANCELLED, now, by)
        found = sa.select(jobs.c.status, jobs.c.cancel_requested_at).where(jobs.c.id == job_id).with_for_update()
        with self.db.write() as conn:
            row = conn.execute(found).first()
            if row is not None and row.status in CANCELLABLE:
                if row.status == JobStatus.PENDING:
                    values = {"status": JobStatus.CANCELLED, "finished_at": now}
                elif row.cancel_requested_at is None:
                    values = {"cancel_requested_at": now}
                else:  # a second request for a running job changes nothing
                    return _read_job(conn, job_id)
                conn.execute(jobs.update().where(jobs.c.id == job_id, jobs.c.status == row.status).values(**values))
                _record(conn, acted, [(job_id, row.status)])
                return _read_job(conn, job_id)
        if row is None:
            raise JobNotFound(f"no job with id {job_id!r}")
        raise InvalidTransition(f"job {job_id} is {row.status}; only {_names(CANCELLABLE)} jobs can be cancelled")

    def prune(
        self,
        finished_before: float,
        statuses: Sequence[JobStatus] = PRUNABLE,
        batch: int = 5000,
        max_batches: int | None = None,
    ) -> int:
        """Delete finished jobs (and their attempts) in batches, so SQLite's write lock is
        never held for long."""
        total = 0
        for _ in itertools.count() if max_batches is None else range(max_batches):
            victims = (
                sa.select(jobs.c.id)
                .where(jobs.c.status.in_(statuses), jobs.c.finished_at < finished_before)
                .limit(batch)
            )
            with self.db.write() as conn:
                ids = list(conn.execute(victims).scalars())
                if ids:
                    conn.execute(attempts.delete().where(attempts.c.job_id.in_(ids)))
                    conn.execute(actions.delete().where(actions.c.job_id.in_(ids)))
                    forget(conn, ids)
                    conn.execute(jobs.delete().where(jobs.c.id.in_(ids)))
            total += len(ids)
            if len(ids) < batch:
                break
        return total

    def _transition(
        self, job_id: str, allowed: Sequence[JobStatus], verb: str, values: dict[str, Any], action: Acted
    ) -> Job:
        """Apply the change if the job's status allows it, and record it in the job's history;
        return the job as the change left it, read in the same transaction."""
        found = sa.select(jobs.c.status).where(jobs.c.id == job_id).with_for_update()
        with self.db.write() as conn:
            status = conn.execute(found).scalar()
            if status is not None and status in allowed:
                if status == JobStatus.COMPLETED:  # its row stops recording the completing attempt
                    keep_completions(conn, [job_id])
                conn.execute(jobs.update().where(jobs.c.id == job_id, jobs.c.status == status).values(**values))
                _record(conn, action, [(job_id, status)])
                return _read_job(conn, job_id)
        if status is None:
            raise JobNotFound(f"no job with id {job_id!r}")
        raise InvalidTransition(f"job {job_id} is {status}; only {_names(allowed)} jobs can be {verb}")


@dataclass(frozen=True, slots=True)
class Acted:
    """A manual action to record: what, when, by whom."""

    kind: ActionKind
    at: float
    by: str | None


def _record(conn: Connection, action: Acted, changed: Sequence[tuple[str, str]]) -> None:
    """One history row per (job id, status before) that ``action`` changed."""
    rows = [
        {"job_id": job_id, "at": action.at, "action": action.kind.value, "actor": action.by, "from_status": before}
        for job_id, before in changed
    ]
    conn.execute(actions.insert(), rows)


def _copy_rows(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """PostgreSQL, many new jobs: COPY, in the transaction (an executemany sends an INSERT
    per row; COPY streams them), in binary, formatted by psycopg's C code: measured on
    1,000 rows, 0.9 µs of client CPU a row against 2.8 in text (floats need no printing)
    and 13.7 against 15.7 µs a row end to end. Its errors are raised as SQLAlchemy's, like
    every other statement's (a duplicate idempotency key is an IntegrityError, which the
    caller retries)."""
    import psycopg  # the postgres extra's: only a PostgreSQL Database gets here

    columns = tuple(rows[0])
    for row in rows:
        if row["status"] is not JobStatus.PENDING or row["attempts"] or row["forced"]:
            raise ValueError("COPY stores new PENDING jobs only")
    values_of = operator.itemgetter(*columns)
    sql = f"COPY {jobs.name} ({', '.join(columns)}) FROM STDIN WITH (FORMAT BINARY)"
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor, cursor.copy(sql) as copy:
            copy.set_types(_copy_types(columns))
            for row in rows:
                copy.write_row(values_of(row))
    except psycopg.Error as exc:
        raise sa.exc.DBAPIError.instance(sql, None, exc, psycopg.Error) from exc


@functools.cache
def _copy_types(columns: tuple[str, ...]) -> list[str]:
    """The PostgreSQL type of each of ``columns`` of the jobs table, for a binary COPY (which
    sends each value in its column's own binary form: no conversion on the server)."""
    return [_PG_TYPES[type(jobs.c[name].type)] for name in columns]


_PG_TYPES = {
    sa.String: "varchar",
    sa.Text: "text",
    sa.SmallInteger: "int2",
    sa.Integer: "int4",
    sa.BigInteger: "int8",
    sa.Double: "float8",
    sa.Boolean: "bool",
}


def _stand_ins(rows: Sequence[dict[str, Any]], existing: dict[str, Job]) -> dict[str, str]:
    """The stored job that stands in for each row an idempotency key kept out: the job
    stored earlier under its key, or the batch's first row with it."""
    first: dict[str, str] = {}
    out = {}
    for row in rows:
        key = row["idempotency_key"]
        if key is None:
            continue
        if key in existing:
            out[row["id"]] = existing[key].id
        elif key in first:
            out[row["id"]] = first[key]
        else:
            first[key] = row["id"]
    return out


def _insert_ranked(conn: Connection, db: Database, rows: Sequence[dict[str, Any]]) -> None:
    """PostgreSQL: rank, insert and NOTIFY ``rows`` in one statement; each row holds its
    rank step under RANK_STEP. One row: :func:`~queuelab.store.admission.ranked_insert`;
    more: :data:`~queuelab.store.statements.INSERT_BATCH`, whose arrays cost more to plan
    and bind than one row's values (measured: 1,400 single submits/s against 800)."""
    if len(rows) == 1:
        row = rows[0]
        columns = tuple(name for name in row if name != RANK_STEP)
        params = {**row, "p_user": row["user_id"], "p_priority": row["priority"]}
        direct.execute_sql(conn, db, ranked_insert(columns), params)
        return
    seen: Counter[tuple[str, int]] = Counter()
    batch = []
    for row in rows:
        if row["status"] is not JobStatus.PENDING or row["attempts"] or row["forced"]:
            raise ValueError("INSERT_BATCH stores new PENDING jobs only")
        seen[row["user_id"], row["priority"]] += 1
        fields = {name: row[name] for name in _BATCH_FIELDS}
        fields["step"], fields["nth"] = row[RANK_STEP], seen[row["user_id"], row["priority"]]
        fields["trace_context"] = row.get("trace_context")  # a row has one where OpenTelemetry runs
        batch.append(fields)
    direct.execute_sql(conn, db, INSERT_BATCH, {"p_rows": encode_batch(batch), "p_channel": NOTIFY_CHANNEL})


# INSERT_BATCH's row fields taken from the row as they are (``step``, ``nth`` and
# ``trace_context`` are added).
_BATCH_FIELDS = (
    "id",
    "queue",
    "task",
    "payload",
    "user_id",
    "priority",
    "run_at",
    "max_retries",
    "lease_seconds",
    "timeout_seconds",
    "idempotency_key",
    "created_at",
)


def _rows_of(table: sa.Table) -> sa.ScalarSelect[Any]:
    """PostgreSQL: the rows of ``table`` (attempts, actions) of the job read, in order, as one
    JSON array (NULL: none), a subquery of :data:`READ_WHOLE_JOB`."""
    rows = sa.func.json_agg(aggregate_order_by(table.table_valued(), table.c.id), type_=sa.JSON)
    return sa.select(rows).where(table.c.job_id == jobs.c.id).scalar_subquery()


# PostgreSQL: a job with its attempts and its manual actions in one statement, one round trip
# and one snapshot, where three statements (each its own snapshot on an autocommit read) took
# three: q.get, the status API and every wake-up of q.wait read a job this way.
READ_WHOLE_JOB = sa.select(jobs, _rows_of(attempts).label("history_rows"), _rows_of(actions).label("action_rows"))


def _read_job(conn: Connection, job_id: str) -> Job:
    if conn.dialect.name == "postgresql":
        found = conn.execute(READ_WHOLE_JOB.where(jobs.c.id == job_id)).mappings().first()
        if found is None:
            raise JobNotFound(f"no job with id {job_id!r}")
        return job_from_row(found, found["history_rows"] or (), found["action_rows"] or ())
    row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).mappings().first()
    if row is None:
        raise JobNotFound(f"no job with id {job_id!r}")
    history = conn.execute(sa.select(attempts).where(attempts.c.job_id == job_id).order_by(attempts.c.id)).mappings()
    acted = conn.execute(sa.select(actions).where(actions.c.job_id == job_id).order_by(actions.c.id)).mappings()
    return job_from_row(row, history, acted)


def _requeue(
    conn: Connection,
    db: Database,
    clauses: Sequence[sa.ColumnElement[bool]],
    statuses: Sequence[JobStatus],
    now: float,
    rate: float | None,
    by: str | None,
) -> int:
    """Requeue the jobs in ``statuses`` that match ``clauses``, oldest first, each ranked as
    a new submission would be (:func:`~queuelab.store.admission.fresh_ranks`), and record
    each requeue; the count. The rows are locked as they are read (PostgreSQL), so each one
    read is the one changed."""
    query = sa.select(jobs.c.id, jobs.c.user_id, jobs.c.priority, jobs.c.status).where(
        jobs.c.status.in_(statuses), *clauses
    )
    found = conn.execute(query.order_by(jobs.c.created_at, jobs.c.id).with_for_update()).mappings()
    rows = [dict(row) for row in found]
    if not rows:
        return 0
    fresh_ranks(conn, db, rows)
    keep_completions(conn, [row["id"] for row in rows if row["status"] == JobStatus.COMPLETED])
    values = {**_requeue_values(now), "fair_rank": sa.bindparam("p_rank"), "run_at": sa.bindparam("p_run_at")}
    stmt = jobs.update().where(jobs.c.id == sa.bindparam("p_id")).values(values)
    params = [
        {"p_id": row["id"], "p_rank": row["fair_rank"], "p_run_at": now if rate is None else now + i / rate}
        for i, row in enumerate(rows)
    ]
    conn.execute(stmt, params)
    _record(conn, Acted(ActionKind.REQUEUED, now, by), [(row["id"], row["status"]) for row in rows])
    return len(rows)


def _requeue_values(now: float) -> dict[str, Any]:
    return {
        "status": JobStatus.PENDING,
        "attempts": 0,
        "run_at": now,
        "result": None,
        "forced": False,
        "dead_letter_reason": None,
        "started_at": None,
        "finished_at": None,
        "lease_token": None,
        "lease_owner": None,
        "lease_expires_at": None,
        "progress": None,
        "progress_message": None,
        "cancel_requested_at": None,
    }


def _names(statuses: Sequence[JobStatus]) -> str:
    names = [str(s) for s in statuses]
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]
