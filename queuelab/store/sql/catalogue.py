"""Which statements are committed as SQL, how each is built, and what its file says.

Each entry names the Python that builds the statement; :func:`render` compiles it with the
dialect the store runs it on (SQLite's binds shown by name) and lays it out. The shapes
shown: a worker of one named queue that runs two tasks while one queue is paused (each
filter is a bind per value, ``p_queues_0``..., and is left out when empty), and on
PostgreSQL a quota claim for 4 free slots (its limits are fixed in the SQL).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from queuelab.store import quota_sql
from queuelab.store import statements as st
from queuelab.store.claims import OVERFETCH
from queuelab.store.schema import IS_RUNNING, jobs
from queuelab.store.sql.layout import format_sql

REGENERATE = "python -m queuelab.store.sql"
SQLITE, POSTGRESQL = "sqlite", "postgresql"
BOTH = (SQLITE, POSTGRESQL)
QUEUES, TASKS, PAUSED = 1, 2, 1  # the claim's filters, as shown
SLOTS = 4  # the PostgreSQL quota claim's limit, as shown
# The attempt row's columns, as the store binds them (leases._attempt_row).
ATTEMPT_ROW = ("job_id", *st.ATTEMPT_COLUMNS, "finished_at")


def dialect(name: str) -> Dialect:
    """The dialect the store runs on; SQLite's with named binds, so the files show names
    (the driver gets ``?`` in the same order)."""
    if name == SQLITE:
        return sqlite.pysqlite.dialect(paramstyle="named")
    return postgresql.psycopg.dialect()  # type: ignore[no-untyped-call]  # its __init__ is unannotated


def rescue_expired(now: float = 0.0, limit: int = 100) -> sa.Select[Any]:
    """A copy of the query ``LeaseStore.rescue`` builds inline (store/leases.py), which this
    package cannot import; tests/store/test_sql_golden.py checks the copy against what rescue runs."""
    columns = (
        jobs.c.lease_expires_at,
        jobs.c.lease_owner,
        *st.CLAIMED_COLUMNS,
        jobs.c.lease_token,
        jobs.c.started_at,
        jobs.c.unstarted_rescues,
        jobs.c.cancel_requested_at,
    )
    return (
        sa.select(*columns)
        .where(IS_RUNNING, jobs.c.lease_expires_at < now)
        .order_by(jobs.c.lease_expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


def rescue_probe(now: float = 0.0) -> sa.Select[Any]:
    """``LeaseStore.rescue``'s first read: is any lease expired (no write lock if not)?"""
    return rescue_expired(now).with_only_columns(jobs.c.id).limit(1)


@dataclass(frozen=True, slots=True)
class Entry:
    """One committed statement: ``sql/<dialect>/<name>.sql`` for each of ``dialects``."""

    name: str
    dialects: tuple[str, ...]
    what: str
    built_by: str  # under queuelab.store: the Python that builds it
    run_by: str  # under queuelab.store: the Python that runs it
    build: Callable[[], ClauseElement]
    column_keys: tuple[str, ...] | None = None  # an INSERT's columns, as the store binds them
    per_call: Mapping[str, str] = field(default_factory=dict)  # literal binds set per call

    def compiled(self, name: str) -> SQLCompiler:
        """Compiled as the store compiles it on dialect ``name``."""
        keys = list(self.column_keys) if self.column_keys is not None else None
        compiled = self.build().compile(dialect=dialect(name), column_keys=keys)
        assert isinstance(compiled, SQLCompiler)
        return compiled


_FENCED = "Fenced: it matches only while this attempt holds the lease (id, token, RUNNING)."
_AND_RECORD = (
    "and its attempt row, in one statement (PostgreSQL's single ack): the row is inserted only if "
    "the ack matched, and the rows returned say whether it did."
)
ENTRIES = (
    Entry(
        "claim_pick",
        (SQLITE,),
        "The claim when no running quota is set, its first statement: up to p_limit runnable jobs, in "
        "claim order (priority, then fair_rank), as one JSON array of rows (one step however many; the "
        "REAL columns as quote()'s exact text), under BEGIN IMMEDIATE (the database write lock; SQLite "
        "has no row locks). claim_take then leases them in the same transaction.",
        f"statements.sqlite_pick_rows({QUEUES}, {TASKS}, {PAUSED})",
        "claims._take_sqlite",
        lambda: st.sqlite_pick_rows(QUEUES, TASKS, PAUSED),
    ),
    Entry(
        "claim_take",
        (SQLITE,),
        "The claim's second statement: lease the jobs claim_pick read (p_ids, a JSON array of ids in "
        "claim order), the first p_start of them recorded as started at p_started and the rest claimed "
        "ahead (started_at NULL: their start is recorded by a heartbeat once they start).",
        "statements.SQLITE_TAKE",
        "claims._take_sqlite",
        lambda: st.SQLITE_TAKE,
    ),
    Entry(
        "claim",
        (POSTGRESQL,),
        "The claim when no running quota is set: up to p_limit runnable jobs, in claim order "
        "(priority, then fair_rank), picked, locked (skipping rows other claimers hold) and leased "
        "in one statement; the rows picked are taken by address (a TID scan). Run once with "
        "p_started = p_now for the jobs a worker starts at once, then (if it claims ahead) with "
        "p_started NULL for the rest: their start is recorded by a heartbeat once they start.",
        f"statements.claim_statement({QUEUES}, {TASKS}, {PAUSED}, postgres=True)",
        "claims.claim, as text (direct.execute_sql)",
        lambda: st.claim_statement(QUEUES, TASKS, PAUSED, postgres=True),
    ),
    Entry(
        "claim_quota",
        (SQLITE,),
        "The claim under per-user running quotas, one statement under the write lock: up to p_limit "
        "jobs from the first p_overfetch candidates, each within its user's room.",
        f"quota_sql.sqlite_quota_claim({QUEUES}, {TASKS}, {PAUSED})",
        "claims._claim_within_quotas",
        lambda: quota_sql.sqlite_quota_claim(QUEUES, TASKS, PAUSED),
    ),
    Entry(
        "claim_quota",
        (POSTGRESQL,),
        f"The claim under per-user running quotas, for {SLOTS} free slots (the limits are fixed in the "
        "SQL, a statement per limit): lock the candidates and their users' rows, take only for users "
        "whose row is unchanged since the snapshot, bump those rows (see postgres_quota_claim).",
        f"quota_sql.postgres_quota_claim({QUEUES}, {TASKS}, {PAUSED}, {SLOTS}, {SLOTS * OVERFETCH})",
        "claims._claim_within_quotas, as text (direct.execute_sql)",
        lambda: quota_sql.postgres_quota_claim(QUEUES, TASKS, PAUSED, SLOTS, SLOTS * OVERFETCH),
    ),
    Entry(
        "user_locks_add",
        (POSTGRESQL,),
        "The per-user rows the quota claim found missing, added and committed on a connection of "
        "their own, outside the claim's transaction.",
        "quota_sql.ADD_USER_LOCKS",
        "claims._add_user_locks",
        lambda: quota_sql.ADD_USER_LOCKS,
    ),
    Entry(
        "user_locks_forget",
        (POSTGRESQL,),
        "The per-user rows of users with nothing PENDING or RUNNING; rows a claim holds are left.",
        "quota_sql.FORGET_IDLE_USER_LOCKS",
        "claims.forget_idle_users",
        lambda: quota_sql.FORGET_IDLE_USER_LOCKS,
    ),
    Entry(
        "ack_complete",
        BOTH,
        "Ack a completed attempt (a batch of them: ack_complete_batch), its attempt kept "
        f"in the job's row (completed_by: the lease's owner) instead of an attempt_insert. {_FENCED}",
        "statements.COMPLETE",
        "leases._apply",
        lambda: st.COMPLETE,
    ),
    Entry(
        "ack_retry",
        (SQLITE,),
        "Ack a failed attempt to be retried at p_run_at (PENDING again; CANCELLED, never run again, if "
        f"a cancel was requested while it ran). {_FENCED}",
        "statements.RETRY",
        "leases._apply (then attempt_insert)",
        lambda: st.RETRY,
    ),
    Entry(
        "ack_cancel",
        (SQLITE, POSTGRESQL),
        f"Ack an attempt stopped by a cancel request: CANCELLED, its attempt handed back (unspent). {_FENCED}",
        "statements.CANCEL",
        "leases._cancel (then attempt_insert)",
        lambda: st.CANCEL,
    ),
    Entry(
        "ack_dead_letter",
        (SQLITE,),
        f"Ack a failed attempt with no retry left (FAILED: the dead-letter queue). {_FENCED}",
        "statements.DEAD_LETTER",
        "leases._apply (then attempt_insert)",
        lambda: st.DEAD_LETTER,
    ),
    Entry(
        "ack_complete_batch",
        (SQLITE,),
        "A worker's batch of completions in one statement, one step: the batch as one JSON array of "
        "[id, lease token, result, started_at, finished_at] (p_rows), each ack fenced by its lease "
        "token, its attempt kept in the job's row (completed_by). Run in a savepoint: if the rowcount "
        "is short of the batch, it is undone and the acks are written one by one (ack_complete).",
        "statements.SQLITE_COMPLETE_MANY",
        "leases._apply_all (a batch of 2 or more completions)",
        lambda: st.SQLITE_COMPLETE_MANY,
    ),
    Entry(
        "ack_complete_batch",
        (POSTGRESQL,),
        "A worker's batch of completions in one statement, one round trip: the batch as one JSON "
        "array of rows (p_rows), each ack fenced by its lease token, its attempt kept in the job's "
        "row (completed_by); RETURNING names those that matched, the rest found their lease lost.",
        "statements.COMPLETE_BATCH",
        "leases._complete_batch, from leases._apply_all (a batch of 2 or more completions in a "
        "transaction: beside a retry, a dead letter or a cancel, or under a quota or a throttle)",
        lambda: st.COMPLETE_BATCH,
    ),
    Entry(
        "turn",
        (POSTGRESQL,),
        "A worker's turn in one statement, its own transaction (autocommit): the completions in "
        "p_rows acked as ack_complete_batch does (acked), up to p_limit runnable jobs picked and "
        "locked as claim does (picked) and leased, the first p_start of them in claim order recorded "
        "as started at p_now and the rest claimed ahead (claimed). One result: a row per ack that "
        "matched its lease (acked_id; read first, so the acks lock their rows before the pick), then "
        "the claimed rows. Only without quotas, throttles or an async claim beside.",
        f"statements.turn_statement({QUEUES}, {TASKS}, {PAUSED})",
        "claims.complete_and_claim, from leases.LeaseStore.ack_and_claim, as text (direct.execute_sql)",
        lambda: st.turn_statement(QUEUES, TASKS, PAUSED),
    ),
    Entry(
        "submit_batch",
        (POSTGRESQL,),
        "New jobs in one statement, one round trip: the batch as one JSON array of rows (p_rows), each "
        "row ranked after its user's last pending job at its priority (else at the head of that "
        "priority's line) in steps of its step, inserted, and one NOTIFY per queue, sent at commit.",
        "statements.INSERT_BATCH",
        "jobs._insert_ranked, for a batch of 2 to BATCH_ROWS jobs (a group commit, submit_many)",
        lambda: st.INSERT_BATCH,
    ),
    Entry(
        "ack_retry_and_record",
        (POSTGRESQL,),
        "Ack a failed attempt to be retried at p_run_at (PENDING again; CANCELLED if a cancel was "
        f"requested while it ran) {_AND_RECORD}",
        "statements.RETRY_AND_RECORD",
        "leases._apply",
        lambda: st.RETRY_AND_RECORD,
    ),
    Entry(
        "ack_dead_letter_and_record",
        (POSTGRESQL,),
        f"Ack a failed attempt with no retry left (FAILED: the dead-letter queue) {_AND_RECORD}",
        "statements.DEAD_LETTER_AND_RECORD",
        "leases._apply",
        lambda: st.DEAD_LETTER_AND_RECORD,
    ),
    Entry(
        "attempt_insert",
        BOTH,
        "An attempt's history row, written after its ack or release matched (not a completion's: see ack_complete).",
        "statements.RECORD_ATTEMPT, with the columns of leases._attempt_row",
        "leases._apply (SQLite), leases._apply_all (a batch) and leases.LeaseStore.release_many",
        lambda: st.RECORD_ATTEMPT,
        column_keys=ATTEMPT_ROW,
    ),
    Entry(
        "heartbeat",
        BOTH,
        "Extend a running job's lease to p_now plus its lease_seconds, and record its start "
        f"(p_started) if it was claimed ahead and has started since. {_FENCED}",
        "statements.EXTEND",
        "leases.LeaseStore.heartbeat",
        lambda: st.EXTEND,
    ),
    Entry(
        "release",
        BOTH,
        "Hand an unfinished job back to PENDING without spending its attempt (shutdown; CANCELLED if a "
        f"cancel was requested while it ran). {_FENCED}",
        "statements.RELEASE",
        "leases.LeaseStore.release_many (then attempt_insert)",
        lambda: st.RELEASE,
    ),
    Entry(
        "rescue_unstarted",
        BOTH,
        "A rescued job its worker claimed ahead and never recorded as started (started_at NULL): "
        f"back to PENDING with its attempt unspent, the rescue counted. {_FENCED}",
        "statements.HAND_BACK_UNSTARTED",
        "leases._hand_back_unstarted, from leases.LeaseStore.rescue (then attempt_insert)",
        lambda: st.HAND_BACK_UNSTARTED,
    ),
    Entry(
        "rescue_probe",
        BOTH,
        "Whether any lease has expired, read first so that the usual answer (none) takes no write lock.",
        "sql.catalogue.rescue_probe, a copy of the query leases.LeaseStore.rescue builds inline",
        "leases.LeaseStore.rescue",
        rescue_probe,
        per_call={"lease_expires_at_1": "now"},
    ),
    Entry(
        "rescue",
        BOTH,
        "The RUNNING jobs whose lease expired, oldest first, up to the limit, locked (PostgreSQL: "
        "skipping rows another rescuer holds); each is then acked as a retry or a dead letter, or "
        "handed back unspent (rescue_unstarted).",
        "sql.catalogue.rescue_expired, a copy of the query leases.LeaseStore.rescue builds inline",
        "leases.LeaseStore.rescue",
        rescue_expired,
        per_call={"lease_expires_at_1": "now", "param_1": "limit"},
    ),
)

_DIALECT_NOTES = {
    SQLITE: "SQLite (binds shown by name; the driver gets ? in the same order)",
    POSTGRESQL: "PostgreSQL (psycopg)",
}


_KEEP = "\xa0"  # a space the header's wrapping does not break at (name = value stays on one line)


def render(entry: Entry, name: str) -> str:
    """The file's text: a comment saying what the statement is, then its SQL laid out."""
    compiled = entry.compiled(name)
    lines = [
        f"{entry.name}, {_DIALECT_NOTES[name]}. {entry.what}",
        f"Python (modules of queuelab.store): built by {entry.built_by}; run by {entry.run_by}.",
    ]
    if entry.per_call:
        calls = (f"{k}{_KEEP}={_KEEP}{v}" for k, v in sorted(entry.per_call.items()))
        lines.append("Bound per call: " + ", ".join(calls) + ".")
    constants = _constants(compiled, entry.per_call)
    if constants:
        lines.append("Constants bound by the statement: " + ", ".join(constants) + ".")
    lines.append(f"Generated, do not edit: regenerate with `{REGENERATE}`.")
    header = [part for line in lines for part in textwrap.wrap(line, 97, break_on_hyphens=False)]
    header = [line.replace(_KEEP, " ") for line in header]
    return "".join(f"-- {line}\n" for line in header) + "\n" + format_sql(str(compiled)) + "\n"


def _constants(compiled: SQLCompiler, per_call: Mapping[str, str]) -> list[str]:
    """``name = value`` for each bind whose value the statement itself holds."""
    found: dict[str, str] = {}
    for bind, name in compiled.bind_names.items():
        if not bind.required and bind.callable is None and name not in per_call:
            found[name] = _literal(bind.value)
    return [f"{name}{_KEEP}={_KEEP}{found[name]}" for name in sorted(found)]


def _literal(value: Any) -> str:
    if isinstance(value, Enum):
        value = value.value
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def expected() -> dict[str, str]:
    """Every file's path under ``sql/`` (``<dialect>/<name>.sql``) and its text."""
    return {f"{name}/{entry.name}.sql": render(entry, name) for entry in ENTRIES for name in entry.dialects}
