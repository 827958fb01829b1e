"""Churn: many jobs through submit → run → prune, with nothing but the database's own
space reclaiming: autovacuum on PostgreSQL (never a manual VACUUM, unlike growth), the
maintenance loop's incremental vacuum on SQLite.

One loop on the store, as fast as it goes: keep a backlog with ``submit_many``, claim
batches as a worker would (each claim timed), ack them, and every ``PRUNE_EVERY_SECONDS``
prune what finished more than ``RETENTION_SECONDS`` ago with ``Queue.prune``, as a user's
cron or a worker's maintenance would. Every ``jobs / WINDOWS`` jobs one sample: the claim
p50 of the window, dead tuples, table and index sizes (SQLite: the file, its live pages).

PostgreSQL runs twice on fresh schemas: with PostgreSQL's default autovacuum settings for
the tables (queuelab's reset), then with queuelab's (store/autovacuum.py).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa

from queuelab.bench.growth import fill_history
from queuelab.bench.harness import fresh_queue
from queuelab.bench.plan import Context
from queuelab.bench.results import POSTGRES, BenchError, Finding, Result, Series
from queuelab.models import Lease
from queuelab.policy import Complete
from queuelab.queue import Queue
from queuelab.store import autovacuum, compaction
from queuelab.store import statements as st
from queuelab.store.claims import ClaimFilter
from queuelab.store.leases import Finished, LeaseStore
from queuelab.submission import Submission

WINDOWS = 20
WARM_UP = 0.25  # the first quarter of the windows: tables and caches fill, autovacuum's first visits
CLAIM_BATCH = 50
SUBMIT_BATCH = 2000
BACKLOG = 4000  # submit when fewer are pending
RETENTION_SECONDS = 20.0
PRUNE_EVERY_SECONDS = 2.0
VACUUM_BUDGET_SECONDS = 0.05  # SQLite: incremental vacuum per maintenance turn
WHO = ClaimFilter("bench-churn")
VARIANTS = {"sqlite": ("queuelab",), POSTGRES: ("postgres defaults", "queuelab")}


@dataclass(slots=True)
class Window:
    """One sample, at the end of a window of jobs."""

    jobs: int
    seconds: float
    claim_p50_ms: float
    dead_tuples: float  # PostgreSQL: the jobs table's n_dead_tup; SQLite: free pages
    table_mb: float  # PostgreSQL: the jobs table (heap); SQLite: the main file
    index_mb: float  # PostgreSQL: its indexes; SQLite: live pages
    history_mb: float  # PostgreSQL: the attempts table and its indexes; SQLite: the WAL
    vacuums: float  # PostgreSQL: autovacuums of the jobs table so far; SQLite: longest step, ms
    step_p50_ms: float = 0.0  # SQLite: the median incremental-vacuum step so far
    claim_buffers: float = 0.0  # PostgreSQL: pages one claim of CLAIM_BATCH reads (EXPLAIN ANALYZE)


@dataclass(slots=True)
class Run:
    """One churn run's loop state."""

    q: Queue
    leases: LeaseStore
    pending: int = 0
    done: int = 0
    claims: list[float] = field(default_factory=list)
    steps: list[float] = field(default_factory=list)  # SQLite: each vacuum step's seconds
    next_prune: float = 0.0
    prunes: int = 0
    rate: float | None = None  # jobs per second to hold to (None: as fast as it goes)
    began: float = field(default_factory=time.monotonic)


def churn(ctx: Context, kind: str) -> list[Finding]:
    found: list[Finding] = []
    for variant in VARIANTS.get(kind, VARIANTS["sqlite"]):
        windows = run_churn(kind, ctx.postgres_url, ctx.sizes.churn_jobs, variant)
        found += findings(kind, variant + _server_note(kind, ctx.postgres_url), windows)
    return found


def _server_note(kind: str, postgres_url: str | None) -> str:
    """Said beside the figures where the server runs no autovacuum: nothing reclaims space."""
    if kind != POSTGRES or postgres_url is None:
        return ""
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            off = autovacuum.server_autovacuum_off(conn)
    finally:
        engine.dispose()
    return " (server autovacuum OFF)" if off else ""


def run_churn(
    kind: str, postgres_url: str | None, n: int, variant: str = "queuelab", retention: float = RETENTION_SECONDS
) -> list[Window]:
    """Push ``n`` jobs through a fresh database; one :class:`Window` per ``n / WINDOWS`` jobs."""
    with fresh_queue(kind, postgres_url) as q:
        _settings(q, variant)
        return push(q, n, retention)


def _settings(q: Queue, variant: str) -> None:
    """PostgreSQL's defaults on the tables for "postgres defaults"; queuelab's stay otherwise."""
    if variant != "queuelab":
        with q.database.write() as conn:
            for statement in autovacuum.reset_statements():
                conn.execute(sa.text(statement))


def run_history_churn(postgres_url: str, history: int, n: int, rate: float, variant: str = "queuelab") -> list[Window]:
    """PostgreSQL, a long retention: ``history`` dead-lettered jobs that no prune removes
    (analysed, never vacuumed), then ``n`` jobs pushed through at ``rate`` jobs/s."""
    with fresh_queue(POSTGRES, postgres_url) as q:
        _settings(q, variant)
        fill_history(q, history, status="FAILED", vacuum=False)
        return push(q, n, rate=rate)


def push(
    q: Queue, n: int, retention: float = RETENTION_SECONDS, windows: int = WINDOWS, rate: float | None = None
) -> list[Window]:
    """Push ``n`` jobs through ``q`` (at ``rate`` jobs/s, if given); one :class:`Window` per
    ``n / windows`` jobs."""
    run = Run(q, LeaseStore(q.database), next_prune=time.monotonic() + PRUNE_EVERY_SECONDS, rate=rate)
    sample = _sampler(q)
    began, found = time.monotonic(), []
    for end in (n * (i + 1) // windows for i in range(windows)):
        run.claims.clear()
        prunes = run.prunes
        while run.done < end:
            _turn(run, retention)
        if run.prunes == prunes:  # a window faster than PRUNE_EVERY_SECONDS (a --quick run)
            _prune(run, retention)  # still measures a prune and, on SQLite, a vacuum step
        found.append(sample(run, run.done, time.monotonic() - began))
    return found


def _turn(run: Run, retention: float) -> None:
    if run.pending < BACKLOG:
        run.q.submit_many(Submission(task="simulate") for _ in range(SUBMIT_BATCH))
        run.pending += SUBMIT_BATCH
    started = time.perf_counter()
    taken = run.leases.claim(WHO.worker_id, None, CLAIM_BATCH, run.q.clock.now())
    run.claims.append(time.perf_counter() - started)
    if not taken:
        raise BenchError(f"a claim found nothing with {run.pending} jobs thought pending")
    _ack(run, taken)
    if time.monotonic() >= run.next_prune:
        _prune(run, retention)


def _prune(run: Run, retention: float) -> None:
    run.q.prune(older_than=retention)
    if run.q.database.is_sqlite:
        _vacuum(run)
    run.prunes += 1
    run.next_prune = time.monotonic() + PRUNE_EVERY_SECONDS


def _ack(run: Run, taken: list[Lease]) -> None:
    now = run.q.clock.now()
    run.leases.ack_and_claim([Finished(lease, Complete(None), now) for lease in taken], WHO, 0, now)
    run.pending -= len(taken)
    run.done += len(taken)
    if run.rate is not None:  # a paced run: the next claim when its jobs are due
        time.sleep(max(0.0, run.began + run.done / run.rate - time.monotonic()))


def _vacuum(run: Run) -> None:
    """What the maintenance loop does after a prune (runtime/maintenance.py), one step
    timed at a time: the longest is the longest the write lock was held."""
    deadline = time.monotonic() + VACUUM_BUDGET_SECONDS
    while time.monotonic() < deadline:
        started = time.perf_counter()
        left = compaction.vacuum_step(run.q.database)
        run.steps.append(time.perf_counter() - started)
        if not left:
            with run.q.database.outside_transaction() as conn:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            return


# -- samples --------------------------------------------------------------------------------

_MB = 2.0**20
_PG_STATS = sa.text(
    "SELECT s.n_dead_tup AS dead, s.autovacuum_count AS vacuums, pg_table_size(c.oid) AS heap, "
    "pg_indexes_size(c.oid) AS indexes, pg_total_relation_size(to_regclass('queuelab_attempts')) AS history "
    "FROM pg_class AS c JOIN pg_stat_user_tables AS s ON s.relid = c.oid WHERE c.oid = to_regclass('queuelab_jobs')"
)


def _sampler(q: Queue) -> Callable[[Run, int, float], Window]:
    return _sqlite_sample if q.database.is_sqlite else _postgres_sample


def _postgres_sample(run: Run, jobs: int, seconds: float) -> Window:
    with run.q.database.read() as conn:
        conn.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
        row = conn.execute(_PG_STATS).one()
    sizes = (row.heap / _MB, row.indexes / _MB, row.history / _MB)
    buffers = claim_buffers(run.q)
    return Window(jobs, seconds, _p50_ms(run.claims), row.dead, *sizes, row.vacuums, claim_buffers=buffers)


def claim_buffers(q: Queue) -> float:
    """The pages (shared buffers hit or read) one claim of CLAIM_BATCH jobs touches, from
    EXPLAIN (ANALYZE, BUFFERS), rolled back: the claim's work, which dead index entries
    and dead rows would swell, without the machine's noise that its time carries."""
    db = q.database
    compiled = st.claim_statement(0, 0, 0).compile(dialect=db.engine.dialect)
    given = {"p_now": q.clock.now(), "p_limit": CLAIM_BATCH, "p_token": "probe", "p_owner": "bench-churn-probe"}
    params = {name: given.get(name, value) for name, value in compiled.params.items()}
    explain = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + compiled.string.replace("%%", "%")
    with db.engine.connect() as conn, conn.begin() as transaction:
        plan = conn.exec_driver_sql(explain, params).scalar_one()
        transaction.rollback()
    top = plan[0]["Plan"]
    return float(top["Shared Hit Blocks"] + top["Shared Read Blocks"])


def _sqlite_sample(run: Run, jobs: int, seconds: float) -> Window:
    used = compaction.usage(run.q.database)
    path = run.q.database.sqlite_path
    wal = os.path.getsize(path + "-wal") if os.path.exists(path + "-wal") else 0
    longest = max(run.steps, default=0.0) * 1000
    return Window(
        jobs,
        seconds,
        _p50_ms(run.claims),
        used.free_pages,
        os.path.getsize(path) / _MB,
        used.live_bytes / _MB,
        wal / _MB,
        longest,
        _p50_ms(run.steps),
    )


def _p50_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000 if values else 0.0


# -- findings -------------------------------------------------------------------------------


def findings(kind: str, variant: str, windows: list[Window]) -> list[Finding]:
    """How each curve moved after warm-up, its end values, and the curves themselves."""
    settled = windows[max(1, int(WARM_UP * len(windows))) :]
    n = windows[-1].jobs
    what = f"{n:,} jobs, {variant}"
    table = "jobs table" if kind == POSTGRES else "file"
    found: list[Finding] = [
        _result(kind, f"churn rate, {what}", "throughput", n / windows[-1].seconds, "jobs/s", n),
        _result(
            kind,
            f"claim p50 change after warm-up, {what}",
            "change",
            _change([w.claim_p50_ms for w in settled]),
            "%",
            n,
        ),
        _result(kind, f"claim p50 at the end, {what}", "p50", settled[-1].claim_p50_ms, "ms", n),
        _result(
            kind, f"{table} change after warm-up, {what}", "change", _change([w.table_mb for w in settled]), "%", n
        ),
        _result(kind, f"{table} at the end, {what}", "size", settled[-1].table_mb, "MB", n),
    ]
    if kind == POSTGRES:
        buffers = [w.claim_buffers for w in settled]
        found.append(
            _result(kind, f"claim pages read change after warm-up, {what}", "change", _change(buffers), "%", n)
        )
        found.append(_result(kind, f"claim pages read, most after warm-up, {what}", "pages", max(buffers), "pages", n))
        found.append(
            _result(
                kind, f"most dead tuples after warm-up, {what}", "dead", max(w.dead_tuples for w in settled), "rows", n
            )
        )
    else:
        worst = max(w.table_mb / w.index_mb for w in settled)
        found.append(_result(kind, f"file / live data, largest after warm-up, {what}", "ratio", worst, "x", n))
        found.append(_result(kind, f"longest incremental vacuum step, {what}", "step", windows[-1].vacuums, "ms", n))
        found.append(_result(kind, f"median incremental vacuum step, {what}", "step", windows[-1].step_p50_ms, "ms", n))
    return found + _curves(kind, variant, windows)


def _curves(kind: str, variant: str, windows: list[Window]) -> list[Finding]:
    curves = (
        ("claim p50 (ms)", "claim_p50_ms"),
        *((("pages one claim reads", "claim_buffers"),) if kind == POSTGRES else ()),
        ("dead tuples" if kind == POSTGRES else "free pages", "dead_tuples"),
        ("jobs table (MB)" if kind == POSTGRES else "file (MB)", "table_mb"),
        ("indexes (MB)" if kind == POSTGRES else "live data (MB)", "index_mb"),
    )
    return [
        Series(
            kind,
            f"churn: {label}, {variant}",
            "jobs done",
            label,
            tuple((float(w.jobs), float(getattr(w, a))) for w in windows),
        )
        for label, a in curves
    ]


def _change(values: list[float]) -> float:
    """How far the curve moved, in %: the median of its last third against its first third's
    (a trend; the noise of single windows on a shared machine cancels out)."""
    third = max(1, len(values) // 3)
    first, last = statistics.median(values[:third]), statistics.median(values[-third:])
    return 100 * (last - first) / first if first else 0.0


def _result(kind: str, case: str, metric: str, value: float, unit: str, jobs: int) -> Result:
    return Result(database=kind, scenario="churn", case=case, metric=metric, value=value, unit=unit, jobs=jobs)
