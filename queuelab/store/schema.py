"""The one schema, shared by SQLite and PostgreSQL (SQLAlchemy Core).

Times are stored as epoch seconds (double precision, UTC): comparisons are numeric and
identical on both databases, and the worker's injected clock writes the same values the
real one would.
"""

from __future__ import annotations

import sqlalchemy as sa

# Adding a table, an index or a nullable column leaves the version alone: opening a database
# creates whatever tables, indexes and columns it lacks, so an older file gains them, and an
# older queuelab ignores what it does not know. Bump it only for a change older code would misread.
SCHEMA_VERSION = 1
# Bumped with each such addition, so that opening an older database (whose revision is
# lower or unset) adds it; a database at this revision is opened with one catalog read.
SCHEMA_REVISION = 14  # 14: jobs.completed_by; 13: the per-user index holds PENDING rows only
# Indexes an older revision made and this one does not use: opening such a database drops
# them (an older queuelab on it then reads without them: slower, never wrong).
RETIRED_INDEXES = ("queuelab_jobs_user",)  # revision 13: queuelab_jobs_user_pending instead
NOTIFY_CHANNEL = "queuelab_jobs"
# PostgreSQL: a job that someone waits for (``awaited``) sends its id on this channel when
# it finishes (the trigger below), so ``Queue.wait`` needs no polling.
DONE_CHANNEL = "queuelab_done"

metadata = sa.MetaData()

meta = sa.Table(
    "queuelab_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)

jobs = sa.Table(
    "queuelab_jobs",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("queue", sa.String(64), nullable=False),
    sa.Column("task", sa.String(200), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),  # JSON text: the bytes the user sent, checked once
    sa.Column("user_id", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("priority", sa.SmallInteger, nullable=False),
    # Fair scheduling: start-time fair queueing. A user's jobs get consecutive ranks (steps
    # of 1/weight); a user with nothing pending starts at the head of the line. Claims take
    # the lowest rank within the highest priority, so users interleave.
    sa.Column("fair_rank", sa.Double, nullable=False),
    sa.Column("run_at", sa.Double, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("max_retries", sa.Integer, nullable=False),
    sa.Column("lease_seconds", sa.Double, nullable=False),
    sa.Column("timeout_seconds", sa.Double),
    sa.Column("lease_token", sa.String(36)),
    sa.Column("lease_owner", sa.String(200)),
    sa.Column("lease_expires_at", sa.Double),
    sa.Column("result", sa.Text),
    sa.Column("forced", sa.Boolean, nullable=False, default=False),
    # Why a FAILED job is in the dead-letter queue ("TimeoutError after 4 runs
    # (max_retries=3)"); cleared when it leaves it. Revision 3: added to older tables.
    sa.Column("dead_letter_reason", sa.Text),
    # How many times the job was rescued from a worker that had claimed it ahead and stopped
    # heartbeating before its start was recorded: such a rescue spends no attempt, up to
    # leases.UNSTARTED_RESCUES of them (NULL: none yet). Revision 4.
    sa.Column("unstarted_rescues", sa.Integer),
    # The latest progress a run reported (revision 6): a fraction 0-1 and a message.
    sa.Column("progress", sa.Double),
    sa.Column("progress_message", sa.Text),
    # Someone waits for this job to finish (revision 7; PostgreSQL only: its ending sends a
    # NOTIFY, see DONE_TRIGGER). NULL on the jobs nobody waits for, whose endings cost nothing.
    sa.Column("awaited", sa.Boolean),
    # Dependencies (revision 8; see queuelab.store.dependencies): a job submitted with
    # ``after=`` counts the parents it still waits for in ``waiting_for`` and stays PENDING
    # with run_at at BLOCKED_RUN_AT (so no claim sees it) until the count reaches 0; then its
    # run_at becomes ``ready_at`` (when it asked to run) or the last parent's finish, if later.
    # ``has_dependents`` marks a parent, so that the release trigger skips every other ending.
    sa.Column("waiting_for", sa.Integer),
    sa.Column("ready_at", sa.Double),
    sa.Column("has_dependents", sa.Boolean),
    # When someone asked to cancel this job while it ran (revision 10): its worker stops it
    # (cooperatively, then by force past Settings.cancel_grace_seconds) and acks it
    # CANCELLED; who asked is in queuelab_actions. NULL on the jobs nobody cancelled.
    sa.Column("cancel_requested_at", sa.Double),
    # The submitter's trace context (revision 11): the W3C headers (traceparent, tracestate)
    # of the submit's span as JSON, written only where OpenTelemetry is configured; the
    # worker continues that trace (queuelab.runtime.tracing). NULL otherwise.
    sa.Column("trace_context", sa.Text),
    sa.Column("idempotency_key", sa.String(200)),
    # The worker whose attempt completed this job (revision 14): that attempt, the last, is
    # recorded here (number ``attempts``, ``started_at``, ``finished_at``) instead of in a
    # queuelab_attempts row, which cost a third of a SQLite worker's turn (see
    # store/history.py, which reads it back as one). NULL on every other job: not completed,
    # completed by force, or completed before revision 14 (its attempt has its row).
    sa.Column("completed_by", sa.String(200)),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("started_at", sa.Double),
    sa.Column("finished_at", sa.Double),
    sa.CheckConstraint(
        "status IN ('PENDING', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED')", name="queuelab_jobs_status"
    ),
)

# PostgreSQL (revision 7): the UPDATE that ends an awaited job (an ack, a rescue into the
# dead-letter queue, a cancel, a forced success) NOTIFYs its id on DONE_CHANNEL, delivered
# at commit. The WHEN clause is evaluated without calling the function, so the endings of
# jobs nobody waits for (the rest) queue no trigger event. One trigger covers every path
# that ends a job, present and future, where code in each would miss one.
DONE_TRIGGER = (
    "CREATE OR REPLACE FUNCTION queuelab_notify_done() RETURNS trigger LANGUAGE plpgsql AS "
    f"$$ BEGIN PERFORM pg_notify('{DONE_CHANNEL}', NEW.id); RETURN NULL; END $$",
    "DROP TRIGGER IF EXISTS queuelab_jobs_done ON queuelab_jobs",
    "CREATE TRIGGER queuelab_jobs_done AFTER UPDATE OF status ON queuelab_jobs FOR EACH ROW "
    "WHEN (NEW.awaited AND NEW.status IN ('COMPLETED', 'FAILED', 'CANCELLED') "
    "AND OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION queuelab_notify_done()",
)

# Dependencies (revision 8): the UPDATE that completes a parent (an ack, a forced success)
# counts one parent fewer for each child still waiting for it and releases the children it
# was the last for (their run_at becomes due, their priority their own again: see
# dependencies.blocked_priority), then forgets those edges; on PostgreSQL it
# also wakes the released children's workers. In the database, not in each code path that
# completes a job: a batch ack, a forced success and any later path all release. The WHEN
# clause skips every ending of a job that no other job waits for.
_RELEASE_SET = (
    "SET waiting_for = waiting_for - 1, "
    "run_at = CASE WHEN waiting_for = 1 THEN {greatest}(ready_at, NEW.finished_at) ELSE run_at END, "
    "priority = CASE WHEN waiting_for = 1 AND priority < 0 THEN -1 - priority ELSE priority END "
    "WHERE status = 'PENDING' AND waiting_for > 0 "
    "AND id IN (SELECT child_id FROM queuelab_dependencies WHERE parent_id = NEW.id)"
)
_RELEASE_WHEN = "NEW.has_dependents AND NEW.status = 'COMPLETED' AND OLD.status <> 'COMPLETED'"
SQLITE_RELEASE_TRIGGER = (
    "CREATE TRIGGER IF NOT EXISTS queuelab_jobs_release AFTER UPDATE OF status ON queuelab_jobs "
    f"FOR EACH ROW WHEN {_RELEASE_WHEN} BEGIN "
    f"UPDATE queuelab_jobs {_RELEASE_SET.format(greatest='max')}; "
    "DELETE FROM queuelab_dependencies WHERE parent_id = NEW.id; END",
)
POSTGRES_RELEASE_TRIGGER = (
    "CREATE OR REPLACE FUNCTION queuelab_release_dependents() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "DECLARE woken integer; BEGIN "
    f"WITH released AS (UPDATE queuelab_jobs {_RELEASE_SET.format(greatest='GREATEST')} "
    "RETURNING queue, waiting_for) "
    f"SELECT count(pg_notify('{NOTIFY_CHANNEL}', queue)) INTO woken "
    "FROM (SELECT DISTINCT queue FROM released WHERE waiting_for = 0) AS due; "
    "DELETE FROM queuelab_dependencies WHERE parent_id = NEW.id; RETURN NULL; END $$",
    "DROP TRIGGER IF EXISTS queuelab_jobs_release ON queuelab_jobs",
    "CREATE TRIGGER queuelab_jobs_release AFTER UPDATE OF status ON queuelab_jobs FOR EACH ROW "
    f"WHEN ({_RELEASE_WHEN}) EXECUTE FUNCTION queuelab_release_dependents()",
)

# PostgreSQL (revision 9): a throttled claim's first step in one round trip: for each key
# (sorted by the caller), try its transaction-scoped advisory lock and, if granted, count its
# starts after its window's start. VOLATILE: each query inside takes a fresh snapshot, so the
# count, taken after the lock was granted, sees every start committed before (one statement
# would count in a snapshot taken before it held the lock). Keys not locked are left out.
THROTTLE_FUNCTION = (
    "CREATE OR REPLACE FUNCTION queuelab_throttle_starts(p_space integer, p_keys text[], "
    "p_since double precision[]) RETURNS TABLE (locked_key text, started bigint) LANGUAGE plpgsql VOLATILE AS $$ "
    "BEGIN FOR i IN 1 .. coalesce(array_length(p_keys, 1), 0) LOOP "
    "IF pg_try_advisory_xact_lock(p_space, hashtext(p_keys[i])) THEN locked_key := p_keys[i]; "
    "SELECT count(*) INTO started FROM queuelab_starts AS s WHERE s.key = p_keys[i] AND s.at > p_since[i]; "
    "RETURN NEXT; END IF; END LOOP; END $$",
)

# Literal SQL, not bound parameters: SQLite uses a partial index only when the query's
# WHERE clause repeats the index's condition word for word ("status = ?" would not do).
IS_PENDING = jobs.c.status == sa.literal_column("'PENDING'")
IS_RUNNING = jobs.c.status == sa.literal_column("'RUNNING'")

# The claim reads only the runnable set, in claim order (highest priority, then lowest
# fair_rank: statements.pick_statement), so the first rows of an index scan are the answer
# and nothing is sorted. Partial indexes hold just the PENDING rows: they stay small when
# the table holds millions of finished jobs. One serves workers of all queues, the other
# workers of named queues.
sa.Index(
    "queuelab_jobs_claim",
    jobs.c.priority.desc(),
    jobs.c.fair_rank,
    sqlite_where=IS_PENDING,
    postgresql_where=IS_PENDING,
)
sa.Index(
    "queuelab_jobs_claim_by_queue",
    jobs.c.queue,
    jobs.c.priority.desc(),
    jobs.c.fair_rank,
    sqlite_where=IS_PENDING,
    postgresql_where=IS_PENDING,
)
# Rescue scans running jobs by lease expiry; partial for the same reason.
sa.Index("queuelab_jobs_lease", jobs.c.lease_expires_at, sqlite_where=IS_RUNNING, postgresql_where=IS_RUNNING)
# Pruning finds finished jobs by finish time. Deliberately not (status, finished_at): an
# index led by status tempts SQLite's planner into using it for the claim's status test
# and sorting, instead of reading the claim index in order.
_finished = jobs.c.finished_at.is_not(None)
sa.Index("queuelab_jobs_finished", jobs.c.finished_at, sqlite_where=_finished, postgresql_where=_finished)
# Listings, newest first; the dead-letter queue has its own small index.
sa.Index("queuelab_jobs_created", jobs.c.created_at)
_dead = jobs.c.status == sa.literal_column("'FAILED'")
sa.Index("queuelab_jobs_dlq", jobs.c.created_at, sqlite_where=_dead, postgresql_where=_dead)
# Per user, the PENDING rows only (revision 13): the user's last pending rank at a priority
# (fairness, read by every submit) and the pending half of the active count (the cap). It
# replaced (user_id, status, priority, fair_rank) over every row, whose entry moved at every
# claim, ack and heartbeat (on PostgreSQL, a non-HOT update adds an entry to every index
# whose predicate the row meets): a SQLite worker's turn spent 11 of 92 µs a job on it.
# Listings by user read queuelab_jobs_user_created, the running half of the count
# queuelab_jobs_running_user. ``status`` last, though constant here: it makes the index cover
# the count, so that SQLite's planner takes it without statistics (else it read the user's
# every job through queuelab_jobs_user_created).
sa.Index(
    "queuelab_jobs_user_pending",
    jobs.c.user_id,
    jobs.c.priority,
    jobs.c.fair_rank,
    jobs.c.status,
    sqlite_where=IS_PENDING,
    postgresql_where=IS_PENDING,
)
# The quota claim's running count per user reads only the RUNNING rows (revision 2). Without
# it SQLite's planner counted them by scanning the whole of the index above, finished jobs
# included: 176 µs at 3,000 rows, growing with the history. (user_id, status), not user_id
# alone: covering, so the planner takes it without statistics.
sa.Index(
    "queuelab_jobs_running_user",
    jobs.c.user_id,
    jobs.c.status,
    sqlite_where=IS_RUNNING,
    postgresql_where=IS_RUNNING,
)
# The sliding-window rate limit counts a user's recent submissions.
sa.Index("queuelab_jobs_user_created", jobs.c.user_id, jobs.c.created_at)
# An idempotency key names at most one job; most jobs have none, so leave those out.
_keyed = jobs.c.idempotency_key.is_not(None)
sa.Index(
    "queuelab_jobs_idempotency",
    jobs.c.idempotency_key,
    unique=True,
    sqlite_where=_keyed,
    postgresql_where=_keyed,
)

attempts = sa.Table(
    "queuelab_attempts",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(36), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("worker_id", sa.String(200)),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("started_at", sa.Double),
    sa.Column("finished_at", sa.Double, nullable=False),
    sa.Column("error_type", sa.String(200)),
    sa.Column("error_message", sa.Text),
    sa.Column("traceback", sa.Text),
)
# A job's history is read by job id, in order.
sa.Index("queuelab_attempts_job", attempts.c.job_id, attempts.c.id)
# Throughput and outcome stats over a recent window.
sa.Index("queuelab_attempts_finished", attempts.c.finished_at)

# Dependencies not yet met (revision 8): one row per (job, parent it waits for); deleted
# when the parent completes (RELEASE_TRIGGER), so the table holds only waiting edges.
dependencies = sa.Table(
    "queuelab_dependencies",
    metadata,
    sa.Column("child_id", sa.String(36), primary_key=True),
    sa.Column("parent_id", sa.String(36), primary_key=True),
)
sa.Index("queuelab_dependencies_parent", dependencies.c.parent_id)

# Manual actions (revision 5): requeue, force-success, cancel, with when and who, read with
# the job's history; pruned with their job.
actions = sa.Table(
    "queuelab_actions",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(36), nullable=False),
    sa.Column("at", sa.Double, nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("actor", sa.String(200)),
    sa.Column("from_status", sa.String(16), nullable=False),
)
sa.Index("queuelab_actions_job", actions.c.job_id, actions.c.id)

workers = sa.Table(
    "queuelab_workers",
    metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("hostname", sa.String(200), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("queues", sa.String(1000), nullable=False),
    sa.Column("concurrency", sa.Integer, nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("started_at", sa.Double, nullable=False),
    sa.Column("last_seen_at", sa.Double, nullable=False),
    sa.Column("stopped_at", sa.Double),
)

# Per-user limits; user_id "*" holds the defaults that override the settings. NULL: not
# set here (fall back); 0: explicitly off.
limits = sa.Table(
    "queuelab_limits",
    metadata,
    sa.Column("user_id", sa.String(200), primary_key=True),
    sa.Column("rate_count", sa.Integer),
    sa.Column("rate_window_seconds", sa.Double),
    sa.Column("max_active", sa.Integer),
    sa.Column("max_running", sa.Integer),
    sa.Column("weight", sa.Integer),
    sa.Column("updated_at", sa.Double, nullable=False),
)

# PostgreSQL's running quota (revision 2): one row per user whose jobs were claimed under a
# quota. A claim locks its candidates' rows (FOR UPDATE SKIP LOCKED) and bumps ``claims`` for
# each user it takes from, so a claimer can tell whether another's claim for that user
# committed after its snapshot (the locked row's ``claims`` then differs from the one its
# snapshot sees). Unused on SQLite, where the claim holds the database write lock.
user_locks = sa.Table(
    "queuelab_user_locks",
    metadata,
    sa.Column("user_id", sa.String(200), primary_key=True),
    sa.Column("claims", sa.BigInteger, nullable=False),
)

queues = sa.Table(
    "queuelab_queues",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("paused", sa.Boolean, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)

# The autoscaler's decision log: one row per change of a pool's size, newest read first
# (by id). Each autoscaler prunes it by age and to a cap on rows as it writes.
scale_events = sa.Table(
    "queuelab_scale_events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("at", sa.Double, nullable=False),
    sa.Column("pool_id", sa.String(200), nullable=False),
    sa.Column("hostname", sa.String(200), nullable=False),
    sa.Column("backlog", sa.Integer, nullable=False),
    sa.Column("running", sa.Integer, nullable=False),
    sa.Column("workers_before", sa.Integer, nullable=False),
    sa.Column("workers_after", sa.Integer, nullable=False),
    sa.Column("reason", sa.String(500), nullable=False),
)
# Pruning by age.
sa.Index("queuelab_scale_events_at", scale_events.c.at)

# Periodic jobs (revision 7): one row per schedule, its definition and its next tick. Each
# scheduler moves ``next_run_at`` on with a compare-and-set in the transaction that inserts
# the tick's job (store/schedules.py), so a tick is enqueued once however many run. No index
# but the key: the table holds one row per schedule, and the due scan reads all of them.
schedules = sa.Table(
    "queuelab_schedules",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("task", sa.String(200), nullable=False),
    sa.Column("cron", sa.String(200), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),  # JSON text
    sa.Column("queue", sa.String(64)),  # NULL: the task's
    sa.Column("priority", sa.SmallInteger),  # NULL: the task's
    sa.Column("user_id", sa.String(200), nullable=False),
    sa.Column("catch_up", sa.Integer, nullable=False),
    sa.Column("paused", sa.Boolean, nullable=False),
    sa.Column("next_run_at", sa.Double, nullable=False),
    sa.Column("last_tick_at", sa.Double),
    sa.Column("last_job_id", sa.String(36)),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)

# Execution throttles (revision 9): at most ``count`` starts per sliding ``window_seconds``
# of the jobs of one task, queue or user (``scope``, ``name``), across every worker. Few rows:
# every claim reads them all, through the limits snapshot (store/limits.py).
throttles = sa.Table(
    "queuelab_throttles",
    metadata,
    sa.Column("scope", sa.String(16), primary_key=True),  # task, queue or user
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("window_seconds", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)

# The starts a throttle counts (revision 9): one row per claimed job and throttle key
# ("task:send_email"), written by the claim that took the job, in its transaction; pruned by
# the claims once far out of the window. Only throttled jobs have rows: a queue without
# throttles writes none.
starts = sa.Table(
    "queuelab_starts",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(220), nullable=False),
    sa.Column("at", sa.Double, nullable=False),
)
# A throttle counts one key's starts after a time: a range scan of this index.
sa.Index("queuelab_starts_key_at", starts.c.key, starts.c.at)
