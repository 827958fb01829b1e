"""PostgreSQL's planner statistics for the jobs table, refreshed after a bulk load.

The claim reads the pending index in order and stops at its LIMIT, but only if the planner
knows the table is large. A table that grew from nothing (a fresh database, then a bulk
submit) has no statistics until autovacuum gets to it, up to a minute later; meanwhile,
with a task filter, the planner sorts the whole pending set for every claim (12 ms at 30,000
pending, where the index takes 1 ms). A worker's maintenance loop therefore compares the
live row count with the one the planner believes, and runs ANALYZE when the table has more
than doubled since. Steady churn keeps the two close and never triggers it.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

from queuelab.errors import StoreError
from queuelab.store.database import Database
from queuelab.store.schema import jobs

log = logging.getLogger("queuelab.statistics")

MIN_ROWS = 5000  # below this, even a sorted claim is quick
GROWTH = 2.0  # analyze when the live rows exceed the planner's count by this factor
_LOCK_KEY = 0x716C_0002  # one worker analyzes at a time
# The table as found through the search path, as every statement finds it.
# ``owned``: only the table's owner (or a superuser) may ANALYZE it; a worker whose role
# is not leaves it to autovacuum rather than try every few seconds.
_COUNTS = sa.text(
    "SELECT s.n_live_tup AS live, c.reltuples AS planned, pg_has_role(c.relowner, 'USAGE') AS owned "
    "FROM pg_class AS c JOIN pg_stat_user_tables AS s ON s.relid = c.oid WHERE c.oid = to_regclass(:table)"
)


def refresh_if_stale(db: Database) -> bool:
    """ANALYZE the jobs table if the planner's row count is far behind; True if it ran.
    Never waits: another worker already analyzing, or autovacuum holding the table, means
    skip this time (a maintenance tick must not stall the lease heartbeats)."""
    if db.is_sqlite:  # SQLite's planner needs no statistics for the claim
        return False
    try:
        with db.write() as conn:
            counts = conn.execute(_COUNTS, {"table": jobs.name}).first()
            if counts is None or not counts.owned or counts.live < MIN_ROWS:
                return False
            if counts.live <= GROWTH * max(counts.planned, 0.0):
                return False
            if not conn.execute(sa.text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _LOCK_KEY}).scalar():
                return False
            conn.execute(sa.text("SET LOCAL lock_timeout = '100ms'"))
            conn.execute(sa.text(f"ANALYZE {jobs.name}"))
    except StoreError as exc:
        log.info("skipped refreshing the planner's statistics for %s: %s", jobs.name, exc)
        return False
    log.info(
        "analyzed %s: %d live rows against the %d the planner knew of", jobs.name, counts.live, max(counts.planned, 0)
    )
    return True
