-- submit_batch, PostgreSQL (psycopg). New jobs in one statement, one round trip: the batch as one
-- JSON array of rows (p_rows), each row ranked after its user's last pending job at its priority
-- (else at the head of that priority's line) in steps of its step, inserted, and one NOTIFY per
-- queue, sent at commit.
-- Python (modules of queuelab.store): built by statements.INSERT_BATCH; run by jobs._insert_ranked,
-- for a batch of 2 to BATCH_ROWS jobs (a group commit, submit_many).
-- Generated, do not edit: regenerate with `python -m queuelab.store.sql`.

WITH batch AS (
    SELECT *
    FROM json_to_recordset(CAST(%(p_rows)s AS JSON)) AS b (id VARCHAR, queue VARCHAR, task VARCHAR, payload TEXT, user_id VARCHAR, priority SMALLINT, run_at DOUBLE PRECISION, max_retries INTEGER, lease_seconds DOUBLE PRECISION, timeout_seconds DOUBLE PRECISION, idempotency_key VARCHAR, created_at DOUBLE PRECISION, step DOUBLE PRECISION, nth INTEGER, trace_context TEXT)
),
starts AS MATERIALIZED (
    SELECT
        l.user_id,
        l.priority,
        COALESCE((
            SELECT p.fair_rank
            FROM queuelab_jobs AS p
            WHERE p.status = 'PENDING'
                AND p.user_id = l.user_id
                AND p.priority = l.priority
            ORDER BY p.fair_rank DESC
            LIMIT 1
        ), (
            SELECT p.fair_rank
            FROM queuelab_jobs AS p
            WHERE p.status = 'PENDING'
                AND p.priority = l.priority
            ORDER BY p.fair_rank
            LIMIT 1
        ), 0.0) AS start
    FROM (SELECT DISTINCT user_id, priority FROM batch) AS l
),
inserted AS (
    INSERT INTO queuelab_jobs (id, queue, task, payload, user_id, status, priority, fair_rank, run_at, attempts, max_retries, lease_seconds, timeout_seconds, forced, idempotency_key, created_at, trace_context)
    SELECT
        b.id,
        b.queue,
        b.task,
        b.payload,
        b.user_id,
        'PENDING',
        b.priority,
        s.start + b.nth * b.step,
        b.run_at,
        0,
        b.max_retries,
        b.lease_seconds,
        b.timeout_seconds,
        false,
        b.idempotency_key,
        b.created_at,
        b.trace_context
    FROM batch AS b
    JOIN starts AS s ON s.user_id = b.user_id
        AND s.priority = b.priority
    RETURNING queue
)
SELECT pg_notify(%(p_channel)s, queue)
FROM (SELECT DISTINCT queue FROM inserted) AS woken
