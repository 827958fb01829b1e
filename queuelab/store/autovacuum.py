"""PostgreSQL: the autovacuum settings queuelab gives its churning tables (revision 12).

A job row is inserted, updated two or three times (claim, heartbeats, ack) and deleted by a
prune: four or five dead versions per job, in the heap and in every index (the updates
change indexed columns, so none is HOT). PostgreSQL's defaults vacuum a table once a fifth
of it is dead (``autovacuum_vacuum_scale_factor`` 0.2), so a table holding a long history
(the retention period's finished jobs) waits for hundreds of thousands of dead rows, and
each vacuum then pauses 2 ms per 200 cost units (``autovacuum_vacuum_cost_delay``), so it
lags the churn it must clean up after. The settings below vacuum after a fixed number of
dead rows whatever the table's size, at full speed, and freeze pages of inserted rows early.
Measured (benchmarks/README.md, churn): beside 1,000,000 kept jobs at 300 jobs/s, a vacuum
a minute instead of one after 196,000 dead rows, the heap +6.7 MB instead of +31.4 MB; at
2,800 jobs/s with a small table, no better than the defaults (the naptime rules there).

Per-table storage parameters, so nothing else in the database changes; they apply only
where the server runs autovacuum at all (``autovacuum = on``, the default): a server that
turned it off reclaims nothing until someone runs VACUUM, and :func:`server_autovacuum_off`
lets the opener say so (an INFO line when it creates the tables). ``autovacuum_naptime``
(how often a database is visited, 60 s by default) is server-wide: at N jobs per second the
table holds about naptime x N x 4 dead row versions at most, whatever is set here.

No fillfactor: it leaves room on each page for HOT updates, and no queuelab update is HOT
(each changes ``status`` or ``lease_expires_at``, both indexed: 0 of 159,500 updates in the
churn bench were), so it would only make the table larger.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from queuelab.store.schema import actions, attempts, jobs

# Each job: a few row versions in queuelab_jobs; one insert and one delete of its attempt.
JOBS_SETTINGS: dict[str, str] = {
    "autovacuum_vacuum_scale_factor": "0.0",  # after a fixed count of dead rows, not a fraction
    "autovacuum_vacuum_threshold": "5000",
    "autovacuum_vacuum_insert_scale_factor": "0.0",
    "autovacuum_vacuum_insert_threshold": "20000",
    "autovacuum_analyze_scale_factor": "0.02",
    "autovacuum_vacuum_cost_delay": "0",  # never sleep: a vacuum that lags the churn never catches up
}
HISTORY_SETTINGS: dict[str, str] = {
    "autovacuum_vacuum_scale_factor": "0.0",
    "autovacuum_vacuum_threshold": "5000",
    "autovacuum_vacuum_cost_delay": "0",
}
SETTINGS: dict[str, dict[str, str]] = {
    jobs.name: JOBS_SETTINGS,
    attempts.name: HISTORY_SETTINGS,
    actions.name: HISTORY_SETTINGS,
}


def statements() -> tuple[str, ...]:
    """``ALTER TABLE … SET (…)`` for each table: takes a SHARE UPDATE EXCLUSIVE lock, which
    waits for a running (auto)vacuum of the table but never for reads or writes of rows."""
    return tuple(
        f"ALTER TABLE {table} SET ({', '.join(f'{name} = {value}' for name, value in values.items())})"
        for table, values in SETTINGS.items()
    )


def reset_statements() -> tuple[str, ...]:
    """The opposite: PostgreSQL's defaults again (the bench's "before")."""
    return tuple(f"ALTER TABLE {table} RESET ({', '.join(values)})" for table, values in SETTINGS.items())


def apply(conn: Connection) -> None:
    for statement in statements():
        conn.execute(sa.text(statement))


def server_autovacuum_off(conn: Connection) -> bool:
    """True where the server runs no autovacuum at all (``autovacuum = off``)."""
    return conn.execute(sa.text("SELECT current_setting('autovacuum') = 'off'")).scalar() is True
