-- ack_cancel, SQLite (binds shown by name; the driver gets ? in the same order). Ack an attempt
-- stopped by a cancel request: CANCELLED, its attempt handed back (unspent). Fenced: it matches
-- only while this attempt holds the lease (id, token, RUNNING).
-- Python (modules of queuelab.store): built by statements.CANCEL; run by leases._cancel (then
-- attempt_insert).
-- Constants bound by the statement: attempts_1 = 1, lease_expires_at = NULL, lease_owner = NULL,
-- lease_token = NULL, status = 'CANCELLED', status_1 = 'RUNNING'.
-- Generated, do not edit: regenerate with `python -m queuelab.store.sql`.

UPDATE queuelab_jobs
SET
    status=:status,
    attempts=(queuelab_jobs.attempts - :attempts_1),
    lease_token=:lease_token,
    lease_owner=:lease_owner,
    lease_expires_at=:lease_expires_at,
    started_at=:p_started,
    finished_at=:p_now
WHERE queuelab_jobs.id = :p_id
    AND queuelab_jobs.lease_token = :p_token
    AND queuelab_jobs.status = :status_1
