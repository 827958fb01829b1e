-- turn, PostgreSQL (psycopg). A worker's turn in one statement, its own transaction (autocommit):
-- the completions in p_rows acked as ack_complete_batch does (acked), up to p_limit runnable jobs
-- picked and locked as claim does (picked) and leased, the first p_start of them in claim order
-- recorded as started at p_now and the rest claimed ahead (claimed). One result: a row per ack that
-- matched its lease (acked_id; read first, so the acks lock their rows before the pick), then the
-- claimed rows. Only without quotas, throttles or an async claim beside.
-- Python (modules of queuelab.store): built by statements.turn_statement(1, 2, 1); run by
-- claims.complete_and_claim, from leases.LeaseStore.ack_and_claim, as text (direct.execute_sql).
-- Constants bound by the statement: attempts_1 = 1, param_1 = 'COMPLETED', param_2 = 'RUNNING'.
-- Generated, do not edit: regenerate with `python -m queuelab.store.sql`.

WITH acked AS (
    UPDATE queuelab_jobs
    SET
        status=%(param_1)s::VARCHAR,
        lease_token=NULL,
        lease_owner=NULL,
        lease_expires_at=NULL,
        result=b.result,
        completed_by=queuelab_jobs.lease_owner,
        started_at=b.started_at,
        finished_at=b.finished_at
    FROM json_to_recordset(CAST(%(p_rows)s AS JSON)) AS b(id VARCHAR, token VARCHAR, number INTEGER, started_at DOUBLE PRECISION, finished_at DOUBLE PRECISION, result TEXT)
    WHERE queuelab_jobs.id = b.id
        AND queuelab_jobs.lease_token = b.token
        AND queuelab_jobs.status = 'RUNNING'
    RETURNING queuelab_jobs.id AS acked_id, b.number AS acked_number
),
picked AS (
    SELECT ctid AS tid, queuelab_jobs.priority AS priority, queuelab_jobs.fair_rank AS fair_rank
    FROM queuelab_jobs
    WHERE queuelab_jobs.status = 'PENDING'
        AND queuelab_jobs.run_at <= %(p_now)s
        AND queuelab_jobs.queue IN (%(p_queues_0)s)
        AND queuelab_jobs.task IN (%(p_tasks_0)s, %(p_tasks_1)s)
        AND (queuelab_jobs.queue NOT IN (%(p_skip_queues_0)s))
    ORDER BY queuelab_jobs.priority DESC, queuelab_jobs.fair_rank
    LIMIT %(p_limit)s
    FOR UPDATE SKIP LOCKED
),
claimed AS (
    UPDATE queuelab_jobs
    SET
        status=%(param_2)s::VARCHAR,
        attempts=(queuelab_jobs.attempts + %(attempts_1)s::INTEGER),
        lease_token=%(p_token)s::VARCHAR,
        lease_owner=%(p_owner)s::VARCHAR,
        lease_expires_at=(%(p_now)s + queuelab_jobs.lease_seconds),
        started_at=CASE WHEN (ctid = ANY (array((
            SELECT picked.tid
            FROM picked
            ORDER BY picked.priority DESC, picked.fair_rank
            LIMIT %(p_start)s
        )))) THEN %(p_now)s ELSE NULL END
    WHERE ctid = ANY (array((SELECT picked.tid FROM picked)))
    RETURNING
        queuelab_jobs.id,
        queuelab_jobs.task,
        queuelab_jobs.payload,
        queuelab_jobs.user_id,
        queuelab_jobs.queue,
        queuelab_jobs.attempts,
        queuelab_jobs.max_retries,
        queuelab_jobs.lease_seconds,
        queuelab_jobs.timeout_seconds,
        queuelab_jobs.priority,
        queuelab_jobs.fair_rank,
        queuelab_jobs.run_at,
        queuelab_jobs.trace_context,
        queuelab_jobs.started_at
)
SELECT
    NULL AS id,
    NULL AS task,
    NULL AS payload,
    NULL AS user_id,
    NULL AS queue,
    NULL AS attempts,
    NULL AS max_retries,
    NULL AS lease_seconds,
    NULL AS timeout_seconds,
    NULL AS priority,
    NULL AS fair_rank,
    NULL AS run_at,
    NULL AS trace_context,
    NULL AS started_at,
    acked.acked_id,
    acked.acked_number
FROM acked UNION ALL
SELECT
    claimed.id,
    claimed.task,
    claimed.payload,
    claimed.user_id,
    claimed.queue,
    claimed.attempts,
    claimed.max_retries,
    claimed.lease_seconds,
    claimed.timeout_seconds,
    claimed.priority,
    claimed.fair_rank,
    claimed.run_at,
    claimed.trace_context,
    claimed.started_at,
    NULL AS acked_id,
    NULL AS acked_number
FROM claimed
