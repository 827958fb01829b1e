-- rescue, SQLite (binds shown by name; the driver gets ? in the same order). The RUNNING jobs whose
-- lease expired, oldest first, up to the limit, locked (PostgreSQL: skipping rows another rescuer
-- holds); each is then acked as a retry or a dead letter, or handed back unspent
-- (rescue_unstarted).
-- Python (modules of queuelab.store): built by sql.catalogue.rescue_expired, a copy of the query
-- leases.LeaseStore.rescue builds inline; run by leases.LeaseStore.rescue.
-- Bound per call: lease_expires_at_1 = now, param_1 = limit.
-- Constants bound by the statement: param_2 = 0.
-- Generated, do not edit: regenerate with `python -m queuelab.store.sql`.

SELECT
    queuelab_jobs.lease_expires_at,
    queuelab_jobs.lease_owner,
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
    queuelab_jobs.lease_token,
    queuelab_jobs.started_at,
    queuelab_jobs.unstarted_rescues,
    queuelab_jobs.cancel_requested_at
FROM queuelab_jobs
WHERE queuelab_jobs.status = 'RUNNING'
    AND queuelab_jobs.lease_expires_at < :lease_expires_at_1
ORDER BY queuelab_jobs.lease_expires_at
LIMIT :param_1 OFFSET :param_2
