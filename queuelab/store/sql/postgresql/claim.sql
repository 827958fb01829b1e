-- claim, PostgreSQL (psycopg). The claim when no running quota is set: up to p_limit runnable jobs,
-- in claim order (priority, then fair_rank), picked, locked (skipping rows other claimers hold) and
-- leased in one statement; the rows picked are taken by address (a TID scan). Run once with
-- p_started = p_now for the jobs a worker starts at once, then (if it claims ahead) with p_started
-- NULL for the rest: their start is recorded by a heartbeat once they start.
-- Python (modules of queuelab.store): built by statements.claim_statement(1, 2, 1, postgres=True);
-- run by claims.claim, as text (direct.execute_sql).
-- Constants bound by the statement: attempts_1 = 1, status = 'RUNNING'.
-- Generated, do not edit: regenerate with `python -m queuelab.store.sql`.

UPDATE queuelab_jobs
SET
    status=%(status)s::VARCHAR,
    attempts=(queuelab_jobs.attempts + %(attempts_1)s::INTEGER),
    lease_token=%(p_token)s::VARCHAR,
    lease_owner=%(p_owner)s::VARCHAR,
    lease_expires_at=(%(p_now)s + queuelab_jobs.lease_seconds),
    started_at=%(p_started)s
WHERE ctid = ANY (array((
    SELECT ctid
    FROM queuelab_jobs
    WHERE queuelab_jobs.status = 'PENDING'
        AND queuelab_jobs.run_at <= %(p_now)s
        AND queuelab_jobs.queue IN (%(p_queues_0)s)
        AND queuelab_jobs.task IN (%(p_tasks_0)s, %(p_tasks_1)s)
        AND (queuelab_jobs.queue NOT IN (%(p_skip_queues_0)s))
    ORDER BY queuelab_jobs.priority DESC, queuelab_jobs.fair_rank
    LIMIT %(p_limit)s
    FOR UPDATE SKIP LOCKED
)))
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
    queuelab_jobs.trace_context
