-- claim_pick, SQLite (binds shown by name; the driver gets ? in the same order). The claim when no
-- running quota is set, its first statement: up to p_limit runnable jobs, in claim order (priority,
-- then fair_rank), as one JSON array of rows (one step however many; the REAL columns as quote()'s
-- exact text), under BEGIN IMMEDIATE (the database write lock; SQLite has no row locks). claim_take
-- then leases them in the same transaction.
-- Python (modules of queuelab.store): built by statements.sqlite_pick_rows(1, 2, 1); run by
-- claims._take_sqlite.
-- Constants bound by the statement: param_1 = 0.
-- Generated, do not edit: regenerate with `python -m queuelab.store.sql`.

SELECT json_group_array(json_array(picked.id, picked.task, picked.payload, picked.user_id, picked.queue, picked.attempts, picked.max_retries, nullif(quote(picked.lease_seconds), 'NULL'), nullif(quote(picked.timeout_seconds), 'NULL'), picked.priority, nullif(quote(picked.fair_rank), 'NULL'), nullif(quote(picked.run_at), 'NULL'), picked.trace_context)) AS picked
FROM (
    SELECT
        queuelab_jobs.id AS id,
        queuelab_jobs.task AS task,
        queuelab_jobs.payload AS payload,
        queuelab_jobs.user_id AS user_id,
        queuelab_jobs.queue AS queue,
        queuelab_jobs.attempts AS attempts,
        queuelab_jobs.max_retries AS max_retries,
        queuelab_jobs.lease_seconds AS lease_seconds,
        queuelab_jobs.timeout_seconds AS timeout_seconds,
        queuelab_jobs.priority AS priority,
        queuelab_jobs.fair_rank AS fair_rank,
        queuelab_jobs.run_at AS run_at,
        queuelab_jobs.trace_context AS trace_context
    FROM queuelab_jobs
    WHERE queuelab_jobs.status = 'PENDING'
        AND queuelab_jobs.run_at <= :p_now
        AND queuelab_jobs.queue IN (:p_queues_0)
        AND queuelab_jobs.task IN (:p_tasks_0, :p_tasks_1)
        AND (queuelab_jobs.queue NOT IN (:p_skip_queues_0))
    ORDER BY queuelab_jobs.priority DESC, queuelab_jobs.fair_rank
    LIMIT :p_limit OFFSET :param_1
) AS picked
