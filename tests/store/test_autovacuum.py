"""PostgreSQL: the churning tables get queuelab's autovacuum settings (revision 12), and with
autovacuum alone (never a manual VACUUM) the jobs table stops growing under churn."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from queuelab import Queue
from queuelab.bench.churn import push
from queuelab.store import autovacuum
from queuelab.store.schema import SCHEMA_REVISION, jobs, meta
from queuelab.testing import internals
from tests.support.helpers import wait_until

_OPTIONS = sa.text("SELECT coalesce(reloptions, '{}') FROM pg_class WHERE oid = to_regclass(:table)")


def table_options(q: Queue, table: str) -> dict[str, str]:
    with internals(q).db.read() as conn:
        found = conn.execute(_OPTIONS, {"table": table}).scalar_one()
    return dict(option.split("=", 1) for option in found)


def test_a_new_database_gets_the_autovacuum_settings(postgres_url: str) -> None:
    with Queue(postgres_url) as q:
        q.open()
        for table, settings in autovacuum.SETTINGS.items():
            assert table_options(q, table) == settings


def test_opening_a_database_of_an_older_revision_sets_them(postgres_url: str) -> None:
    with Queue(postgres_url) as q:
        q.open()
        with internals(q).db.write() as conn:  # as revision 10 left it
            for statement in autovacuum.reset_statements():
                conn.exec_driver_sql(statement)
            conn.execute(meta.update().where(meta.c.key == "schema_revision").values(value="10"))
        assert table_options(q, jobs.name) == {}
    with Queue(postgres_url) as q:
        q.open()
        assert table_options(q, jobs.name) == autovacuum.JOBS_SETTINGS
        with internals(q).db.read() as conn:
            found = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_revision")).scalar_one()
        assert int(found) == SCHEMA_REVISION >= 12


# -- churn, autovacuum alone ----------------------------------------------------------------

CYCLE_JOBS = 10_000
_STATS = sa.text(
    "SELECT autovacuum_count AS vacuums, pg_table_size(relid) AS heap FROM pg_stat_user_tables "
    "WHERE relid = to_regclass('queuelab_jobs')"
)


def _jobs_table(q: Queue) -> sa.Row[tuple[int, int]]:
    with internals(q).db.read() as conn:
        conn.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
        return conn.execute(_STATS).one()


def _cycle(q: Queue, vacuums: int) -> int:
    """Push a cycle of jobs through and prune them all; wait for autovacuum's next visit
    (an event in the statistics: its count moves; within three naptimes, and more); the
    table's size before the visit."""
    push(q, CYCLE_JOBS, retention=0.0, windows=1)
    q.prune(0)  # every job finished before now: all of them
    size = int(_jobs_table(q).heap)
    wait_until(
        lambda: _jobs_table(q).vacuums > vacuums, timeout=240, what="autovacuum to visit the jobs table", interval=0.5
    )
    return size


@pytest.mark.slow
def test_under_churn_autovacuum_alone_keeps_the_jobs_table_from_growing(postgres_url: str) -> None:
    """Each cycle leaves four or five dead versions of every job it pushed through; if
    nothing reclaimed them the table would grow by the same amount each cycle (three cycles:
    three times the first's size). Autovacuum, with queuelab's settings, frees them between
    cycles and the next cycle reuses the space."""
    with Queue(postgres_url) as q:
        q.open()
        with internals(q).db.read() as conn:
            if autovacuum.server_autovacuum_off(conn):
                pytest.skip("autovacuum is off on this PostgreSQL server: only a manual VACUUM reclaims space there")
        sizes = []
        for cycle in range(3):
            sizes.append(_cycle(q, cycle))
        assert sizes[2] < 1.6 * sizes[0], f"the jobs table grew cycle after cycle: {sizes} bytes"
