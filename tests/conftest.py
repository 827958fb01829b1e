"""Fixtures: every store behaviour runs against a real SQLite file and a real PostgreSQL.

PostgreSQL comes from QUEUELAB_TEST_POSTGRES_URL (default: the local server). Each test
gets a schema of its own (search_path in the URL), so tests never see each other's jobs.
Where no server answers, the PostgreSQL half skips with the reason, except under CI,
where it fails: CI must never skip it.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from queuelab import FakeClock, Queue

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ROOT = Path(__file__).resolve().parent.parent

_pg_problem: str | None = None
_pg_checked = False


def postgres_base_url() -> str:
    return os.environ.get("QUEUELAB_TEST_POSTGRES_URL") or DEFAULT_PG_URL


def _postgres_problem() -> str | None:
    global _pg_checked, _pg_problem
    if not _pg_checked:
        _pg_checked = True
        engine = sa.create_engine(postgres_base_url())
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except Exception as exc:  # any failure to reach it is the reason to report
            _pg_problem = f"PostgreSQL not reachable at {postgres_base_url()}: {str(exc).splitlines()[0]}"
        finally:
            engine.dispose()
    return _pg_problem


def require_postgres() -> None:
    problem = _postgres_problem()
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{problem} (CI must run the PostgreSQL tests; set QUEUELAB_TEST_POSTGRES_URL)")
    pytest.skip(f"{problem}; set QUEUELAB_TEST_POSTGRES_URL to run these tests")


DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture(autouse=True)
def _root_logger_restored() -> Iterator[None]:
    """A test that runs a command's ``main()`` in-process (it configures logging: a stderr
    handler on the root logger, level INFO) leaves the root logger as it found it, so that
    tests after it do not log at INFO into a stream pytest has closed."""
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    yield
    for handler in [h for h in root.handlers if getattr(h, "queuelab", False) and h not in before]:
        root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def redis_url() -> str:
    """The local Redis (QUEUELAB_TEST_REDIS_URL); skipped where none answers, except in CI."""
    import redis

    url = os.environ.get("QUEUELAB_TEST_REDIS_URL") or DEFAULT_REDIS_URL
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.RedisError as exc:
        problem = f"Redis not reachable at {url}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(f"{problem} (CI must run the Redis tests)")
        pytest.skip(f"{problem}; set QUEUELAB_TEST_REDIS_URL to run these tests")
    finally:
        client.close()
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'queue.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    # NullPool: no connection is kept across the test, which may restart the server.
    admin = sa.create_engine(postgres_base_url(), poolclass=sa.pool.NullPool)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    base = sa.make_url(postgres_base_url())
    url = base.update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def postgres_database_url() -> Iterator[str]:
    """A PostgreSQL database of the test's own, for tests that count a worker's wake-ups:
    NOTIFY reaches every listener in the database whatever its schema, so in a shared one
    another test's or another run's submits wake the worker too."""
    require_postgres()
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_base_url(), poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield sa.make_url(postgres_base_url()).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def pgbouncer_url(postgres_database_url: str) -> str:
    """A database of the test's own, reached through PgBouncer in transaction pooling mode
    (QUEUELAB_TEST_PGBOUNCER_URL: its address, e.g. postgresql+psycopg://postgres@127.0.0.1:6432/;
    `.ci/run` starts one). Skips with the reason where none answers; fails under CI."""
    given = os.environ.get("QUEUELAB_TEST_PGBOUNCER_URL", "")
    problem = "QUEUELAB_TEST_PGBOUNCER_URL is not set" if not given else None
    url = ""
    if given:
        url = (
            sa.make_url(given)
            .set(database=sa.make_url(postgres_database_url).database)
            .render_as_string(hide_password=False)
        )
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args={"prepare_threshold": None})
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except Exception as exc:  # any failure to reach it is the reason to report
            problem = f"PgBouncer not reachable at {given}: {str(exc).splitlines()[0]}"
        finally:
            engine.dispose()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{problem} (CI must run the PgBouncer tests: .ci/run starts one)")
        pytest.skip(f"{problem}; start PgBouncer in transaction mode (see .ci/pgbouncer.sh) to run these tests")
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty database of each kind."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_queue(db_url: str) -> Iterator[Callable[..., Queue]]:
    """Queue factory on the test's database; every queue is closed afterwards."""
    made: list[Queue] = []

    def make(**options: Any) -> Queue:
        q = Queue(db_url, **options)
        made.append(q)
        return q

    yield make
    for q in made:
        q.close()


@pytest.fixture
def queue(make_queue: Callable[..., Queue], clock: FakeClock) -> Queue:
    """A queue on a fresh database whose time only moves when the test says so."""
    return make_queue(clock=clock)


def url_quote(text: str) -> str:
    return quote(text, safe="")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses PostgreSQL is marked ``postgres`` (the PostgreSQL half of ``db_url``
    by its param), so ``-m "not postgres"`` leaves them all out. Tests that restart PostgreSQL
    run last, so nothing else sees the server go away."""
    for item in items:
        if {"postgres_url", "postgres_database_url"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)
    items.sort(key=lambda item: item.get_closest_marker("restarts_postgres") is not None)
