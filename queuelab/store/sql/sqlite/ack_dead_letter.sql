-- ack_dead_letter, SQLite (binds shown by name; the driver gets ? in the same order). Ack a failed
-- attempt with no retry left (FAILED: the dead-letter queue). Fenced: it matches only while this
-- attempt holds the lease (id, token, RUNNING).
-- Python (modules of queuelab.store): built by statements.DEAD_LETTER; run by leases._apply (then
-- attempt_insert).
-- Constants bound by the statement: lease_expires_at = NULL, lease_owner = NULL,
-- lease_token = NULL, status = 'FAILED', status_1 = 'RUNNING'.
-- Generated, do not edit: regenerate with `python -m queuelab.store.sql`.

UPDATE queuelab_jobs
SET
    status=:status,
    lease_token=:lease_token,
    lease_owner=:lease_owner,
    lease_expires_at=:lease_expires_at,
    dead_letter_reason=:p_reason,
    started_at=:p_started,
    finished_at=:p_now
WHERE queuelab_jobs.id = :p_id
    AND queuelab_jobs.lease_token = :p_token
    AND queuelab_jobs.status = :status_1
