"""The raw floor: the queue's work as bare SQL through the same driver SQLAlchemy uses
(the stdlib ``sqlite3`` module; psycopg 3), on a table made by queuelab's own schema, so
each queuelab figure can be read as a fraction of what the database itself allows.

The floor does the minimum a durable queue must: insert a row; claim (mark RUNNING with a
lease token, ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) in
claim order; ack (mark COMPLETED, matching the token). Not included, and part of what the
ratio charges to queuelab: validation, fair ranks and limits at submit, ``NOTIFY``, the
attempt-history row every ack writes, worker bookkeeping.

Beside it, the same steps on a **minimal table** (:data:`MINIMAL`): the columns a leasing
queue cannot do without (id, payload, status, priority and rank, run_at, attempts, the lease,
finish time and result) and one partial index for the claim, in the same database. The gap
between the two floors is what queuelab's own schema costs (its indexes for listings,
limits, pruning and rescue, its wider rows), apart from anything its Python does.
"""

from __future__ import annotations

import re
import sqlite3
import statistics
import time
import uuid
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from queuelab.bench.harness import fresh_queue
from queuelab.bench.plan import Context, Sizes
from queuelab.bench.results import BenchError, Finding, Result, per_second
from queuelab.ids import new_id
from queuelab.queue import Queue

Held = tuple[str, str]  # (job id, lease token)

_INSERT = (
    "INSERT INTO queuelab_jobs (id, queue, task, payload, user_id, status, priority, fair_rank, run_at, "
    "attempts, max_retries, lease_seconds, forced, created_at) VALUES (:id, 'default', 'simulate', '{}', "
    "'default', 'PENDING', 0, :rank, :now, 0, 3, 30.0, false, :now)"
)
_ACK = (
    "UPDATE queuelab_jobs SET status = 'COMPLETED', result = :result, finished_at = :now, lease_token = NULL, "
    "lease_owner = NULL, lease_expires_at = NULL WHERE id = :id AND lease_token = :token AND status = 'RUNNING'"
)
_RESULT = '{"slept": 0}'

# PostgreSQL takes the rows the claim picked and locked by address, as queuelab does (see
# statements.claim_statement): ``id IN (pick)`` may be planned as a scan of the whole table.
_PICKED_SQLITE = "id IN (SELECT id FROM {table} WHERE {pick})"
_PICKED_POSTGRES = "ctid = ANY(ARRAY(SELECT ctid FROM {table} WHERE {pick} FOR UPDATE SKIP LOCKED))"


@dataclass(frozen=True, slots=True)
class FloorTable:
    """The table a floor works on and its statements; the claim's ``{picked}`` is the choice of
    rows, filled in per dialect."""

    name: str
    rank: str  # the claim order's column after priority
    label: str  # a prefix of the case names ("" for queuelab's own table)
    key_prefix: str  # a prefix of the result keys
    create: tuple[str, ...]  # DDL run first (queuelab's own table exists already)
    insert: str
    claim: str
    ack: str

    def claim_sql(self, postgres: bool) -> str:
        pick = f"status = 'PENDING' AND run_at <= :now ORDER BY priority DESC, {self.rank} LIMIT :limit"
        picked = (_PICKED_POSTGRES if postgres else _PICKED_SQLITE).format(table=self.name, pick=pick)
        return self.claim.replace("{picked}", picked)


OWN = FloorTable(
    name="queuelab_jobs",
    rank="fair_rank",
    label="",
    key_prefix="",
    create=(),
    insert=_INSERT,
    claim=(
        "UPDATE queuelab_jobs SET status = 'RUNNING', attempts = attempts + 1, lease_token = :token, "
        "lease_owner = 'floor', lease_expires_at = :now + lease_seconds, started_at = :now WHERE {picked} "
        "RETURNING id, task, payload, user_id, queue, attempts, max_retries, lease_seconds, timeout_seconds"
    ),
    ack=_ACK,
)
MINIMAL = FloorTable(
    name="floor_jobs",
    rank="rank",
    label="minimal table: ",
    key_prefix="min-",
    create=(
        "CREATE TABLE floor_jobs (id VARCHAR(36) PRIMARY KEY, payload TEXT NOT NULL, status VARCHAR(16) NOT NULL, "
        "priority SMALLINT NOT NULL, rank DOUBLE PRECISION NOT NULL, run_at DOUBLE PRECISION NOT NULL, "
        "attempts INTEGER NOT NULL, lease_token VARCHAR(36), lease_expires_at DOUBLE PRECISION, "
        "finished_at DOUBLE PRECISION, result TEXT)",
        "CREATE INDEX floor_jobs_claim ON floor_jobs (priority DESC, rank) WHERE status = 'PENDING'",
    ),
    insert=(
        "INSERT INTO floor_jobs (id, payload, status, priority, rank, run_at, attempts) "
        "VALUES (:id, '{}', 'PENDING', 0, :rank, :now, 0)"
    ),
    claim=(
        "UPDATE floor_jobs SET status = 'RUNNING', attempts = attempts + 1, lease_token = :token, "
        "lease_expires_at = :now + 30.0 WHERE {picked} RETURNING id, payload, attempts"
    ),
    ack=(
        "UPDATE floor_jobs SET status = 'COMPLETED', result = :result, finished_at = :now, lease_token = NULL, "
        "lease_expires_at = NULL WHERE id = :id AND lease_token = :token AND status = 'RUNNING'"
    ),
)
BATCH_INSERT = 1000  # rows per transaction, as the bulk enqueue's submit_many calls
BATCH_CLAIM = 100  # jobs per claim or ack transaction in the batched steps


class Floor(ABC):
    """One connection doing the queue's work in bare SQL."""

    def __init__(self, table: FloorTable, postgres: bool) -> None:
        self.table = table
        self._insert_sql = table.insert
        self._claim_sql = table.claim_sql(postgres)
        self._ack_sql = table.ack
        self._rank = 0.0

    def create(self) -> None:
        """The floor's own table, where it has one (untimed)."""
        for ddl in self.table.create:
            self._begin()
            self._rows(ddl, {})
            self._commit()

    @abstractmethod
    def _begin(self) -> None: ...
    @abstractmethod
    def _commit(self) -> None: ...
    @abstractmethod
    def _rows(self, sql: str, params: dict[str, Any]) -> list[Any]: ...
    @abstractmethod
    def _many(self, sql: str, params: Sequence[dict[str, Any]]) -> None: ...
    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def analyze(self) -> None:
        """Fresh planner statistics (untimed, before each step): the floor is the best case."""

    def insert(self, n: int, per_transaction: int) -> None:
        for offset in range(0, n, per_transaction):
            self._begin()
            rows = [self._row() for _ in range(min(per_transaction, n - offset))]
            if len(rows) == 1:
                self._rows(self._insert_sql, rows[0])
            else:
                self._many(self._insert_sql, rows)
            self._commit()

    def claim(self, limit: int) -> list[Held]:
        self._begin()
        held = self._claim(limit)
        self._commit()
        return held

    def ack(self, held: Sequence[Held]) -> None:
        self._begin()
        self._ack(held)
        self._commit()

    def settle(self, held: Sequence[Held], limit: int) -> list[Held]:
        """Ack ``held`` and claim up to ``limit`` more in one transaction (a worker's turn)."""
        self._begin()
        self._ack(held)
        claimed = self._claim(limit)
        self._commit()
        return claimed

    def _row(self) -> dict[str, Any]:
        self._rank += 1.0
        return {"id": new_id(), "rank": self._rank, "now": time.time()}  # time-ordered, as queuelab's

    def _claim(self, limit: int) -> list[Held]:
        token = str(uuid.uuid4())
        rows = self._rows(self._claim_sql, {"token": token, "now": time.time(), "limit": limit})
        return [(row[0], token) for row in rows]

    def _ack(self, held: Sequence[Held]) -> None:
        now = time.time()
        params = [{"id": job_id, "token": token, "now": now, "result": _RESULT} for job_id, token in held]
        if len(params) == 1:
            self._rows(self._ack_sql, params[0])
        elif params:
            self._many(self._ack_sql, params)


class SqliteFloor(Floor):
    def __init__(self, path: str, synchronous: str, table: FloorTable = OWN) -> None:
        super().__init__(table, postgres=False)
        self._conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA synchronous={synchronous}")

    def _begin(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def _commit(self) -> None:
        self._conn.execute("COMMIT")

    def _rows(self, sql: str, params: dict[str, Any]) -> list[Any]:
        return self._conn.execute(sql, params).fetchall()

    def _many(self, sql: str, params: Sequence[dict[str, Any]]) -> None:
        self._conn.executemany(sql, params)

    def analyze(self) -> None:
        pass  # without statistics SQLite's planner already reads the claim index in order

    def close(self) -> None:
        self._conn.close()


class PostgresFloor(Floor):
    """psycopg 3 as SQLAlchemy drives it: a transaction opened implicitly by the first
    statement, ``commit()`` to end it, statements prepared after a few runs."""

    def __init__(self, dsn: str, table: FloorTable = OWN) -> None:
        import psycopg

        super().__init__(table, postgres=True)
        self._conn = psycopg.connect(dsn)

    def _begin(self) -> None:
        pass

    def _commit(self) -> None:
        self._conn.commit()

    def analyze(self) -> None:
        # A table no ANALYZE has seen gets guessed statistics, and psycopg's prepared
        # statements then keep a generic plan made from the guess: an ack that scanned every
        # RUNNING row measured 15x slower than with statistics. SQLite needs none here.
        self._conn.execute(f"ANALYZE {self.table.name}")
        self._conn.commit()

    def _rows(self, sql: str, params: dict[str, Any]) -> list[Any]:
        cursor = self._conn.execute(_pyformat(sql), params)
        return cursor.fetchall() if cursor.description is not None else []

    def _many(self, sql: str, params: Sequence[dict[str, Any]]) -> None:
        with self._conn.cursor() as cursor:
            cursor.executemany(_pyformat(sql), params)

    def close(self) -> None:
        self._conn.close()


def _pyformat(sql: str) -> str:
    return re.sub(r":(\w+)", r"%(\1)s", sql)


def open_floor(q: Queue, table: FloorTable = OWN) -> Floor:
    """A raw connection to the queue's own database (its schema already created), working
    on ``table`` (created here if it is not queuelab's own)."""
    db = q.database
    if db.is_sqlite:
        floor: Floor = SqliteFloor(db.sqlite_path, q.settings.sqlite_synchronous, table)
    else:
        floor = PostgresFloor(db.url.set(drivername="postgresql").render_as_string(hide_password=False), table)
    floor.create()
    return floor


def claims(floor: Floor, n: int, per_transaction: int) -> list[Held]:
    held: list[Held] = []
    while len(held) < n:
        got = floor.claim(min(per_transaction, n - len(held)))
        if not got:
            raise BenchError(f"the floor ran out of pending jobs after claiming {len(held)} of {n}")
        held.extend(got)
    return held


def acks(floor: Floor, held: Sequence[Held], per_transaction: int) -> None:
    for offset in range(0, len(held), per_transaction):
        floor.ack(held[offset : offset + per_transaction])


def turns(floor: Floor, n: int, per_transaction: int) -> None:
    """Drain ``n`` jobs as a worker does: each transaction acks the jobs the previous one
    claimed and claims the next ones."""
    held: list[Held] = []
    done = 0
    while done < n:
        held = floor.settle(held, min(per_transaction, n - done))
        if not held:
            raise BenchError(f"the floor ran out of pending jobs after {done} of {n}")
        done += len(held)
    floor.ack(held)


def turn_case(per_transaction: int) -> str:
    jobs = "job" if per_transaction == 1 else "jobs"
    return f"ack + claim, {per_transaction} {jobs} per transaction"


ROUNDS = 3  # each figure is the median of three rounds: one stall (a checkpoint, a neighbour) is outvoted


def _rate(floor: Floor, count: int, work: Callable[[], object]) -> float:
    floor.analyze()
    started = time.perf_counter()
    work()
    return per_second(count, time.perf_counter() - started)


def _round(floor: Floor, n: int, bulk: int, workers: Sequence[int]) -> Iterator[tuple[str, float]]:
    """One round of every step; each claim step takes jobs the step before it inserted,
    each ack step acks what the claim step took."""
    held: list[Held] = []
    yield "insert/1", _rate(floor, n, partial(floor.insert, n, 1))
    yield "claim/1", _rate(floor, n, lambda: held.extend(claims(floor, n, 1)))
    yield "ack/1", _rate(floor, n, partial(acks, floor, held, 1))
    yield "insert/batch", _rate(floor, bulk, partial(floor.insert, bulk, BATCH_INSERT))
    batch: list[Held] = []
    yield "claim/batch", _rate(floor, bulk, lambda: batch.extend(claims(floor, bulk, BATCH_CLAIM)))
    yield "ack/batch", _rate(floor, bulk, partial(acks, floor, batch, BATCH_CLAIM))
    for k in sorted({1, 4, *workers}):
        floor.insert(n, BATCH_INSERT)  # the supply, untimed
        yield f"turn/{k}", _rate(floor, n, partial(turns, floor, n, k))
    floor.insert(bulk, BATCH_INSERT)
    yield "turn/batch", _rate(floor, bulk, partial(turns, floor, bulk, BATCH_CLAIM))


def _case(key: str) -> str:
    if key.startswith(MINIMAL.key_prefix):
        return MINIMAL.label + _case(key.removeprefix(MINIMAL.key_prefix))
    what, size = key.split("/")
    per = {"1": 1, "batch": BATCH_INSERT if what == "insert" else BATCH_CLAIM}.get(size) or int(size)
    if what == "turn":
        return turn_case(per)
    return f"{what}, {per:,} per transaction"


def _floor_result(kind: str, scenario: str, key: str, case: str, rates: list[float], jobs: int) -> Result:
    return Result(
        database=kind,
        scenario=scenario,
        case=f"raw floor: {case}",
        metric="throughput",
        value=statistics.median(rates),
        unit="jobs/s",
        jobs=jobs,
        key=key,
        samples=tuple(rates),
    )


def measure(floor: Floor, kind: str, sizes: Sizes) -> list[Result]:
    """Every floor step on one connection, ROUNDS times at a third of the size."""
    n, bulk = max(1, sizes.floor_jobs // ROUNDS), max(BATCH_CLAIM, sizes.bulk_jobs // ROUNDS)
    rates: dict[str, list[float]] = defaultdict(list)
    for _ in range(ROUNDS):
        for key, rate in _round(floor, n, bulk, sizes.workers):
            rates[floor.table.key_prefix + key].append(rate)
    return [
        _floor_result(kind, "floor", key, _case(key), found, ROUNDS * (bulk if key.endswith("batch") else n))
        for key, found in rates.items()
    ]


def turn_rate(q: Queue, kind: str, n: int, key: str, case: str) -> Result:
    """The one-job-per-transaction worker turn on ``q``'s database as it is now (the
    growth scenario runs it on an empty table and on one holding a long history)."""
    floor = open_floor(q)
    part = max(1, n // ROUNDS)
    try:
        rates = []
        for _ in range(ROUNDS):
            floor.insert(part, BATCH_INSERT)
            rates.append(_rate(floor, part, partial(turns, floor, part, 1)))
    finally:
        floor.close()
    return _floor_result(kind, "growth", key, case, rates, ROUNDS * part)


def floor_scenario(ctx: Context, kind: str) -> list[Finding]:
    found: list[Finding] = []
    for table in (OWN, MINIMAL):  # each on a database of its own: neither's rows slow the other
        with fresh_queue(kind, ctx.postgres_url) as q:
            q.open()  # the schema, made by queuelab
            floor = open_floor(q, table)
            try:
                found += measure(floor, kind, ctx.sizes)
            finally:
                floor.close()
    return found
