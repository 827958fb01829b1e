-- claim, SQLite (binds shown by name; the driver gets ? in the same order). The claim when no
-- running quota is set: up to p_limit runnable jobs, in claim order (priority, then fair_rank),
-- picked and leased in one statement, under BEGIN IMMEDIATE (the database write lock; SQLite has no
-- row locks). Run once with p_started = p_now for the jobs a worker starts at once, then (if it
-- claims ahead) with p_started NULL for the rest: their start is recorded by a heartbeat once they
-- start.
-- Python (modules of queuelab.store): built by statements.claim_statement(1, 2, 1); run by
-- claims.claim.
-- Constants bound by the statement: attempts_1 = 1, param_1 = 0, status = 'RUNNING'.
-- Generated, do not edit: regenerate with `python -m queuelab.store.sql`.

UPDATE queuelab_jobs
SET
    status=:status,
    attempts=(queuelab_jobs.attempts + :attempts_1),
    lease_token=:p_token,
    lease_owner=:p_owner,
    lease_expires_at=(:p_now + queuelab_jobs.lease_seconds),
    started_at=:p_started
WHERE queuelab_jobs.id IN (
    SELECT queuelab_jobs.id
    FROM queuelab_jobs
    WHERE queuelab_jobs.status = 'PENDING'
        AND queuelab_jobs.run_at <= :p_now
        AND queuelab_jobs.queue IN (:p_queues_0)
        AND queuelab_jobs.task IN (:p_tasks_0, :p_tasks_1)
        AND (queuelab_jobs.queue NOT IN (:p_skip_queues_0))
    ORDER BY queuelab_jobs.priority DESC, queuelab_jobs.fair_rank
    LIMIT :p_limit OFFSET :param_1
)
RETURNING
    id,
    task,
    payload,
    user_id,
    queue,
    attempts,
    max_retries,
    lease_seconds,
    timeout_seconds,
    priority,
    fair_rank,
    run_at,
    trace_context
