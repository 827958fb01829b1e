"""The job path's statements run on SQLite's cursor give what SQLAlchemy would."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from queuelab.models import JobStatus
from queuelab.queue import Queue
from queuelab.store import direct
from queuelab.store import statements as st
from queuelab.store.schema import jobs
from queuelab.testing import internals


def test_a_direct_claim_returns_the_rows_and_types_sqlalchemy_would(tmp_path: Path) -> None:
    with Queue(f"sqlite:///{tmp_path / 'q.db'}") as q:
        q.submit("simulate", {"duration": 0})
        q.submit("simulate", {"duration": 0})
        db = internals(q).db
        params = {"p_now": 2e9, "p_started": 2e9, "p_limit": 1, "p_token": "t", "p_owner": "w", "p_tasks_0": "simulate"}
        with db.write() as conn:
            fast = direct.execute(conn, db, st.claim_statement(0, 1, 0), params)
            slow = conn.execute(st.claim_statement(0, 1, 0), {**params, "p_token": "u"}).all()
        assert direct._compiled(db, st.claim_statement(0, 1, 0), params) is not None  # it took the direct path
        assert fast.rowcount == 1
        assert len(fast.rows) == len(slow) == 1
        assert fast.rows[0]._fields == tuple(slow[0]._fields)
        assert [type(v) for v in fast.rows[0]] == [type(v) for v in slow[0]]
        assert fast.rows[0].id != slow[0].id
        assert fast.rows[0].attempts == slow[0].attempts == 1


def test_a_direct_ack_counts_only_a_held_lease(tmp_path: Path) -> None:
    with Queue(f"sqlite:///{tmp_path / 'q.db'}") as q:
        job = q.submit("simulate")
        (lease,) = internals(q).leases.claim("w", None, 1, 2e9)
        db = internals(q).db
        ack = {"p_id": job.id, "p_now": 2e9 + 1, "p_started": 2e9, "p_result": "null"}
        with db.write() as conn:
            assert direct.execute(conn, db, st.COMPLETE, {**ack, "p_token": "not-mine"}).rowcount == 0
            assert direct.execute(conn, db, st.COMPLETE, {**ack, "p_token": lease.token}).rowcount == 1
        assert q.get(job.id).status == JobStatus.COMPLETED


def test_a_statement_run_from_its_sql_returns_what_sqlalchemy_would(postgres_url: str) -> None:
    """PostgreSQL's execute_sql: the statement's constants (an enum among them) bound as
    SQLAlchemy binds them, the same rows back; a statement with parameters rendered at
    execution, or a parameter left unset, is refused rather than run wrong."""
    with Queue(postgres_url) as q:
        q.submit("simulate", user_id="ann")
        q.submit("simulate", user_id="bob")
        db = internals(q).db
        query = sa.select(jobs.c.user_id, jobs.c.attempts).where(
            jobs.c.status == JobStatus.PENDING, jobs.c.user_id != sa.bindparam("p_user")
        )
        with db.read() as conn:
            fast = direct.execute_sql(conn, db, query, {"p_user": "bob"})
            slow = conn.execute(query, {"p_user": "bob"}).all()
            assert [tuple(row) for row in fast] == [tuple(row) for row in slow] == [("ann", 0)]
            assert fast[0].user_id == "ann"
            literal = query.limit(sa.bindparam("n", literal_execute=True))
            with pytest.raises(ValueError, match="rendered at execution"):
                direct.execute_sql(conn, db, literal, {"p_user": "bob", "n": 1})
            unset = query.where(jobs.c.queue == sa.bindparam("p_queue"))  # not given: not bound as NULL
            with pytest.raises(ValueError, match="no value for the bind parameter 'p_queue'"):
                direct.execute_sql(conn, db, unset, {"p_user": "bob"})


def test_a_connection_that_dies_under_a_statement_run_from_its_sql_is_not_pooled_again(postgres_url: str) -> None:
    """execute_sql runs on psycopg's cursor: a server connection that ends under it (a
    restart, an idle-session kill) raises SQLAlchemy's error, as the normal path would, and
    the pool drops the connection; the next statement gets a new one and succeeds."""
    with Queue(postgres_url) as q:
        job = q.submit("simulate")
        db = internals(q).db
        query = sa.select(jobs.c.id).where(jobs.c.id == sa.bindparam("p_id"))
        with db.autocommit() as conn:
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
            with db.engine.connect() as other:
                other.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
                other.commit()
            with pytest.raises(sa.exc.DBAPIError, match=r"terminat|closed") as raised:
                direct.execute_sql(conn, db, query, {"p_id": job.id})
            assert conn.invalidated
            assert raised.value.connection_invalidated  # as SQLAlchemy's own error says it
        with db.autocommit() as conn:
            assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() != pid
            assert [row.id for row in direct.execute_sql(conn, db, query, {"p_id": job.id})] == [job.id]


def test_a_statement_run_from_its_sql_takes_sqlalchemys_path_only_while_a_listener_watches(postgres_url: str) -> None:
    """Nobody watching: psycopg's cursor (the fast path). A cursor listener (OpenTelemetry's
    instrumentation, a test counting round trips) sees every statement: SQLAlchemy runs it."""
    with Queue(postgres_url) as q:
        job = q.submit("simulate")
        db = internals(q).db
        query = sa.select(jobs.c.id).where(jobs.c.id == sa.bindparam("p_id"))
        seen: list[str] = []

        def record(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
            seen.append(statement)

        with db.autocommit() as conn:
            assert not direct._observed(conn)
            assert [row.id for row in direct.execute_sql(conn, db, query, {"p_id": job.id})] == [job.id]
        sa.event.listen(db.engine, "before_cursor_execute", record)
        try:
            with db.autocommit() as conn:
                assert direct._observed(conn)
                assert [row.id for row in direct.execute_sql(conn, db, query, {"p_id": job.id})] == [job.id]
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", record)
        assert len(seen) == 1
        assert "queuelab_jobs" in seen[0]


# What direct._compile and direct.execute_sql read of a compiled statement: private
# (_bind_processors) or undocumented attributes that a SQLAlchemy release may drop or reshape.
FAST_PATH_READS = (
    "the compiled statement's .string, .positiontup (bind names in ? order), ._bind_processors "
    "(bind name -> processor), .binds (name -> BindParameter with .value, .required, .callable), "
    ".bind_names (BindParameter -> name), .literal_execute_params and .post_compile_params"
)


def _probe() -> Any:
    """A compiled UPDATE with a processed parameter (a datetime), a processed constant (a
    boolean) and a plain parameter, as the fast path compiles one."""
    table = sa.table("t", sa.column("at", sa.DateTime), sa.column("flag", sa.Boolean), sa.column("n", sa.Integer))
    statement = table.update().where(table.c.n == sa.bindparam("p_n"))
    statement = statement.values(at=sa.bindparam("p_at", type_=sa.DateTime), flag=True)
    return statement.compile(dialect=sqlite.pysqlite.dialect(), column_keys=["p_n", "p_at"])


def _fast_path_problems() -> list[str]:
    """How the installed SQLAlchemy differs from what the fast path expects (empty: none)."""
    compiled = _probe()
    read = ("string", "positiontup", "_bind_processors", "binds", "bind_names")
    problems = [f"no .{name}" for name in read if not hasattr(compiled, name)]
    for name in ("literal_execute_params", "post_compile_params"):
        if getattr(compiled, name, None) != frozenset():
            problems.append(f".{name} is {getattr(compiled, name, 'missing')!r}, expected an empty frozenset")
    return problems or _shape_problems(compiled)


def _shape_problems(compiled: Any) -> list[str]:
    problems = []
    if compiled.string.count("?") != 3 or list(compiled.positiontup) != ["p_at", "flag", "p_n"]:
        problems.append(f".positiontup is {compiled.positiontup!r} for {compiled.string!r}")
    processors = compiled._bind_processors
    if not isinstance(processors, Mapping) or set(processors) - set(compiled.positiontup):
        problems.append(f"._bind_processors is {processors!r}, expected a mapping keyed by bind name")
    elif processors.get("p_at", str)(datetime(2020, 1, 2, 3, 4, 5)) != "2020-01-02 03:04:05.000000":
        problems.append("._bind_processors['p_at'] does not turn a datetime into SQLite's text")
    flag, n = compiled.binds.get("flag"), compiled.binds.get("p_n")
    if flag is None or (flag.value, flag.required, flag.callable) != (True, False, None):
        problems.append(f".binds['flag'] is {flag!r}, expected a constant True")
    if n is None or not n.required:
        problems.append(f".binds['p_n'] is {n!r}, expected a required parameter")
    if sorted(compiled.bind_names.values()) != ["flag", "p_at", "p_n"]:
        problems.append(f".bind_names is {compiled.bind_names!r}")
    table = sa.table("t", sa.column("n", sa.Integer))
    expanding: Any = sa.select(table.c.n).where(table.c.n.in_([1, 2])).compile(dialect=sqlite.pysqlite.dialect())
    if not expanding.post_compile_params:
        problems.append(".post_compile_params is empty for an expanding IN (the fast path must refuse those)")
    return problems


def test_the_sqlalchemy_internals_the_fast_path_reads_are_still_there_and_of_the_same_shape() -> None:
    """store/direct.py binds values itself from SQLAlchemy's compiled form. If that form
    changes, the fast path would crash or, worse, bind wrong values: fail here first."""
    problems = _fast_path_problems()

    assert not problems, (
        f"store/direct.py (the SQLite fast path) reads SQLAlchemy internals that SQLAlchemy "
        f"{sa.__version__} no longer has in the expected shape: {'; '.join(problems)}. It reads "
        f"{FAST_PATH_READS}. Adapt direct._compile and direct.execute_sql to this SQLAlchemy (or "
        f"send those statements through conn.execute), then move the pin in pyproject.toml."
    )


def test_the_fast_path_binds_what_sqlalchemy_would(tmp_path: Path) -> None:
    """A statement with a processed parameter (a datetime), a processed constant (a boolean)
    and a plain parameter: the fast path hands the driver the SQL and the values that
    SQLAlchemy's own execution does."""
    with Queue(f"sqlite:///{tmp_path / 'q.db'}") as q:
        db = internals(q).db
        metadata = sa.MetaData()
        table = sa.Table(
            "probe", metadata, sa.Column("at", sa.DateTime), sa.Column("flag", sa.Boolean), sa.Column("n", sa.Integer)
        )
        metadata.create_all(db.engine)
        statement = table.update().where(table.c.n == sa.bindparam("p_n"))
        statement = statement.values(at=sa.bindparam("p_at", type_=sa.DateTime), flag=True)
        params = {"p_n": 3, "p_at": datetime(2020, 1, 2, 3, 4, 5)}
        sent: list[tuple[str, Any]] = []

        def record(conn: Any, cursor: Any, sql: str, parameters: Any, *rest: Any) -> None:
            sent.append((sql, parameters))

        sa.event.listen(db.engine, "before_cursor_execute", record)
        try:
            with db.write() as conn:
                conn.execute(statement, params)
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", record)
        fast = direct._compile(db, statement, list(params))

        assert fast is not None
        assert (fast.sql, fast.values(params)) == (sent[-1][0], tuple(sent[-1][1]))
        assert fast.values(params) == ("2020-01-02 03:04:05.000000", 1, 3)


def test_the_installed_sqlalchemy_is_inside_the_pinned_range() -> None:
    """The pin in pyproject.toml names the minor whose internals the fast path was tested on
    (and whose SQL the files in queuelab/store/sql/ show)."""
    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    (spec,) = [d for d in pyproject["project"]["dependencies"] if d.startswith("sqlalchemy")]
    match = re.fullmatch(r"sqlalchemy>=([\d.]+),<([\d.]+)", spec.replace(" ", ""))
    assert match, f"pyproject.toml pins {spec!r}; expected sqlalchemy>=X.Y.Z,<X.Y+1 (the tested minor)"

    def version(text: str) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", text)[:3])

    installed = version(sa.__version__)
    assert version(match[1]) <= installed < version(match[2]), (
        f"SQLAlchemy {sa.__version__} is installed, outside pyproject.toml's {spec!r}: "
        "run the tests on the pinned minor, or check store/direct.py against this one and move the pin"
    )


def test_a_multi_row_insert_stores_each_row_exactly_in_statements_of_insert_chunk_rows(tmp_path: Path) -> None:
    """direct.insert_many on SQLite: 150 rows (64 + 64 + 22) as three INSERT statements, each
    value read back as given: floats bit for bit (delays, ranks, tiny and huge), None,
    booleans, text outside ASCII; and the rows in the order given (rowid order)."""
    with Queue(f"sqlite:///{tmp_path / 'q.db'}") as q:
        q.submit("simulate")  # the schema
        db = internals(q).db
        rows = [_probe_row(i) for i in range(150)]
        sent: list[str] = []
        with db.write() as conn:
            conn.connection.driver_connection.set_trace_callback(sent.append)  # type: ignore[union-attr]
            try:
                direct.insert_many(conn, db, jobs.insert(), rows)
            finally:
                conn.connection.driver_connection.set_trace_callback(None)  # type: ignore[union-attr]
        with db.read() as conn:
            stored = conn.execute(sa.select(jobs).where(jobs.c.task == "probe").order_by(sa.text("rowid"))).mappings()
            back = [{name: row[name] for name in rows[0]} for row in stored]

    assert [sql.count("), (") + 1 for sql in sent if sql.startswith("INSERT")] == [64, 64, 22]
    assert back == [{**row, "status": str(row["status"])} for row in rows]
    assert [float(r["fair_rank"]).hex() for r in back] == [float(r["fair_rank"]).hex() for r in rows]


def _probe_row(i: int) -> dict[str, Any]:
    return {
        "id": f"probe-{i:04d}",
        "queue": "default",
        "task": "probe",
        "payload": f'{{"name":"Zoë ✓","i":{i}}}',
        "user_id": f"user-{i % 3}",
        "status": JobStatus.PENDING,
        "priority": i % 5 - 2,
        "run_at": 1.7e9 + i / 3,
        "attempts": 0,
        "max_retries": i % 4,
        "lease_seconds": 30.0 + i * 0.1,
        "timeout_seconds": None if i % 2 else 1e-300 * (i + 1),
        "forced": bool(i % 7 == 0),
        "idempotency_key": None,
        "created_at": 1.7e9 + 0.1 + 0.2,
        "fair_rank": (i + 1) / 7 + 2.0**60 * (i == 149),
    }
