"""The ``peers`` scenario: each peer and queuelab enqueue and drain the same jobs with their
own defaults, one after the other in the same run; each queuelab figure is reported beside
the peer's and as a ratio to it.

- SQLite: huey (``SqliteHuey``, its default consumer: one worker thread).
- PostgreSQL: pgqueuer (asyncpg, its default worker: batches of 10), in a database of its own.

queuelab runs with no knob set: ``q.worker()`` (4 slot threads), and one and two worker
processes (``q.worker(n, "process")``)."""

from __future__ import annotations

import asyncio
import importlib.util
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from queuelab.bench.harness import fresh_queue, running_pool
from queuelab.bench.peers import pgqueuer_app
from queuelab.bench.peers.body import drain_rate, wait_for_lines
from queuelab.bench.peers.queuelab_app import TASK, append_line
from queuelab.bench.plan import Context
from queuelab.bench.results import SQLITE, BenchError, Finding, Result, per_second
from queuelab.runtime.pool import Mode
from queuelab.submission import Submission

BULK = 1000  # jobs per bulk call, for every queue
DRAIN_TIMEOUT = 600.0
# queuelab's drains: the default pool, then one and two worker processes.
QUEUELAB_DRAINS: tuple[tuple[str, int, Mode], ...] = (
    ("drain, default worker (q.worker(): 4 slot threads)", 4, "thread"),
    ("drain, 1 worker process", 1, "process"),
    ("drain, 2 worker processes", 2, "process"),
)


def missing(module: str) -> str | None:
    """Why a peer cannot run here (its package is not installed), or None."""
    if importlib.util.find_spec(module) is None:
        return f"{module} is not installed (pip install 'queuelab[bench]')"
    return None


def peers(ctx: Context, kind: str) -> list[Finding]:
    n = ctx.sizes.peer_jobs
    with tempfile.TemporaryDirectory(prefix="queuelab-peers-") as folder:
        work = Path(folder)
        if kind == SQLITE:
            peer, why = ("huey", missing("huey"))
            figures = {} if why else _huey(work, n)
        else:
            peer, why = ("pgqueuer", missing("pgqueuer") or missing("asyncpg"))
            figures = {} if why else _pgqueuer(ctx, work, n)
        ours = _queuelab(ctx, kind, work, n)
    if why:
        print(f"peers on {kind}: {peer} skipped: {why}", file=sys.stderr)
    return _compare(kind, peer, figures, ours, n)


def _compare(kind: str, peer: str, theirs: dict[str, float], ours: dict[str, float], n: int) -> list[Finding]:
    """Every figure as a Result; each of ours with a peer figure of the same case (or of the
    case it is compared with) also as a ratio."""
    found: list[Finding] = []
    for case, value in theirs.items():
        found.append(_result(kind, f"{peer}: {case}", "throughput", value, "jobs/s", n))
    for case, value in ours.items():
        found.append(_result(kind, f"queuelab: {case}", "throughput", value, "jobs/s", n))
        against = _PEER_CASE.get(case, case)
        if against in theirs:
            found.append(_result(kind, f"queuelab / {peer}: {case}", "ratio", value / theirs[against], "x", n))
    return found


# Each queuelab drain is compared with the peer's drain with as many worker processes; the
# default pool (one process) with the peer's single default worker.
_PEER_CASE = {QUEUELAB_DRAINS[0][0]: "drain, 1 worker process"}


def _result(kind: str, case: str, metric: str, value: float, unit: str, n: int) -> Result:
    return Result(database=kind, scenario="peers", case=case, metric=metric, value=value, unit=unit, jobs=n)


# -- queuelab ------------------------------------------------------------------------------


def _queuelab(ctx: Context, kind: str, work: Path, n: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    out = str(work / "queuelab-enqueue.txt")
    with fresh_queue(kind, ctx.postgres_url) as q:
        q.task(name=TASK)(append_line.fn)
        q.submit(TASK, {"path": out})  # warm: the connection, the compiled statements
        started = time.perf_counter()
        for _ in range(n):
            q.submit(TASK, {"path": out})
        figures["enqueue, one call per job"] = per_second(n, time.perf_counter() - started)
        jobs = [Submission(task=TASK, payload={"path": out}) for _ in range(10 * n)]
        started = time.perf_counter()
        for offset in range(0, len(jobs), BULK):
            q.submit_many(jobs[offset : offset + BULK])
        figures[f"enqueue, bulk of {BULK:,}"] = per_second(len(jobs), time.perf_counter() - started)
    for case, workers, mode in QUEUELAB_DRAINS:
        path = work / f"queuelab-{mode}-{workers}.txt"
        with fresh_queue(kind, ctx.postgres_url) as q:
            q.task(name=TASK)(append_line.fn)
            with running_pool(q, workers, mode):
                q.submit_many(Submission(task=TASK, payload={"path": str(path)}) for _ in range(n))
                wait_for_lines(path, n, DRAIN_TIMEOUT)
            figures[case] = drain_rate(path, n)
    return figures


# -- huey ----------------------------------------------------------------------------------


def _huey(work: Path, n: int) -> dict[str, float]:
    from queuelab.bench.peers import huey_app

    huey, task = huey_app.build(str(work / "huey.db"))
    out = str(work / "huey-enqueue.txt")
    task(out)  # warm, then cleared with the rest
    started = time.perf_counter()
    for _ in range(n):
        task(out)
    figures = {"enqueue, one call per job": per_second(n, time.perf_counter() - started)}
    huey.flush()
    path = work / "huey-drain.txt"
    for _ in range(n):
        task(str(path))
    with _child([sys.executable, "-m", "queuelab.bench.peers.huey_app", str(work / "huey.db")], signal.SIGINT):
        wait_for_lines(path, n, DRAIN_TIMEOUT)
    figures["drain, 1 worker process"] = drain_rate(path, n)
    return figures


# -- pgqueuer ------------------------------------------------------------------------------


def _pgqueuer(ctx: Context, work: Path, n: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    with _database(ctx) as dsn:
        asyncio.run(pgqueuer_app.install(dsn))
        out = str(work / "pgqueuer-enqueue.txt")
        seconds = asyncio.run(pgqueuer_app.enqueue(dsn, out, n, 1))
        figures["enqueue, one call per job"] = per_second(n, seconds)
        seconds = asyncio.run(pgqueuer_app.enqueue(dsn, out, 10 * n, BULK))
        figures[f"enqueue, bulk of {BULK:,}"] = per_second(10 * n, seconds)
        for workers in (1, 2):
            _clear(dsn)
            path = work / f"pgqueuer-{workers}.txt"
            asyncio.run(pgqueuer_app.enqueue(dsn, str(path), n, BULK))
            command = [sys.executable, "-m", "queuelab.bench.peers.pgqueuer_app", dsn]
            with _children([command] * workers):
                wait_for_lines(path, n, DRAIN_TIMEOUT)
            figures[f"drain, {workers} worker process{'es' if workers > 1 else ''}"] = drain_rate(path, n)
    return figures


def _clear(dsn: str) -> None:
    engine = sa.create_engine(_sqlalchemy_url(dsn))
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE pgqueuer"))
    engine.dispose()


@contextmanager
def _database(ctx: Context) -> Iterator[str]:
    """A new PostgreSQL database for the peer (its own tables, types and triggers), dropped
    afterwards; yields its libpq DSN."""
    if not ctx.postgres_url:
        raise BenchError("the PostgreSQL peers need --postgres URL")
    url = sa.make_url(ctx.postgres_url)
    name = f"queuelab_peer_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        # (without the URL's query: a search_path there names a schema of the other database)
        yield url.set(drivername="postgresql", database=name, query={}).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def _sqlalchemy_url(dsn: str) -> str:
    return sa.make_url(dsn).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


# -- child processes -------------------------------------------------------------------------


@contextmanager
def _child(command: list[str], stop: signal.Signals = signal.SIGTERM) -> Iterator[subprocess.Popen[bytes]]:
    with _children([command], stop) as procs:
        yield procs[0]


@contextmanager
def _children(
    commands: list[list[str]], stop: signal.Signals = signal.SIGTERM
) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs = [subprocess.Popen(command, stdout=subprocess.DEVNULL) for command in commands]
    try:
        yield procs
    finally:
        _stop_all(procs, stop)


def _stop_all(procs: list[subprocess.Popen[bytes]], stop: signal.Signals) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(stop)
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
