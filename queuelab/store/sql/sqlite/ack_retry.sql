-- ack_retry, SQLite (binds shown by name; the driver gets ? in the same order). Ack a failed
-- attempt to be retried at p_run_at (PENDING again; CANCELLED, never run again, if a cancel was
-- requested while it ran). Fenced: it matches only while this attempt holds the lease (id, token,
-- RUNNING).
-- Python (modules of queuelab.store): built by statements.RETRY; run by leases._apply (then
-- attempt_insert).
-- Constants bound by the statement: lease_expires_at = NULL, lease_owner = NULL,
-- lease_token = NULL, param_1 = 'CANCELLED', param_2 = 'PENDING', status_1 = 'RUNNING'.
-- Generated, do not edit: regenerate with `python -m queuelab.store.sql`.

UPDATE queuelab_jobs
SET
    status=CASE WHEN (queuelab_jobs.cancel_requested_at IS NOT NULL) THEN :param_1 ELSE :param_2 END,
    run_at=:p_run_at,
    lease_token=:lease_token,
    lease_owner=:lease_owner,
    lease_expires_at=:lease_expires_at,
    started_at=:p_started,
    finished_at=CASE WHEN (queuelab_jobs.cancel_requested_at IS NOT NULL) THEN :p_now END
WHERE queuelab_jobs.id = :p_id
    AND queuelab_jobs.lease_token = :p_token
    AND queuelab_jobs.status = :status_1
