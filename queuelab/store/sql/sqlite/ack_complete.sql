-- ack_complete, SQLite (binds shown by name; the driver gets ? in the same order). Ack a completed
-- attempt (a batch of them: ack_complete_batch), its attempt kept in the job's row (completed_by:
-- the lease's owner) instead of an attempt_insert. Fenced: it matches only while this attempt holds
-- the lease (id, token, RUNNING).
-- Python (modules of queuelab.store): built by statements.COMPLETE; run by leases._apply.
-- Constants bound by the statement: lease_expires_at = NULL, lease_owner = NULL,
-- lease_token = NULL, status = 'COMPLETED', status_1 = 'RUNNING'.
-- Generated, do not edit: regenerate with `python -m queuelab.store.sql`.

UPDATE queuelab_jobs
SET
    status=:status,
    lease_token=:lease_token,
    lease_owner=:lease_owner,
    lease_expires_at=:lease_expires_at,
    result=:p_result,
    completed_by=queuelab_jobs.lease_owner,
    started_at=:p_started,
    finished_at=:p_now
WHERE queuelab_jobs.id = :p_id
    AND queuelab_jobs.lease_token = :p_token
    AND queuelab_jobs.status = :status_1
