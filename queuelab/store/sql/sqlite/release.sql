-- release, SQLite (binds shown by name; the driver gets ? in the same order). Hand an unfinished
-- job back to PENDING without spending its attempt (shutdown; CANCELLED if a cancel was requested
-- while it ran). Fenced: it matches only while this attempt holds the lease (id, token, RUNNING).
-- Python (modules of queuelab.store): built by statements.RELEASE; run by
-- leases.LeaseStore.release_many (then attempt_insert).
-- Constants bound by the statement: attempts_1 = 1, lease_expires_at = NULL, lease_owner = NULL,
-- lease_token = NULL, param_1 = 'CANCELLED', param_2 = 'PENDING', status_1 = 'RUNNING'.
-- Generated, do not edit: regenerate with `python -m queuelab.store.sql`.

UPDATE queuelab_jobs
SET
    status=CASE WHEN (queuelab_jobs.cancel_requested_at IS NOT NULL) THEN :param_1 ELSE :param_2 END,
    attempts=(queuelab_jobs.attempts - :attempts_1),
    lease_token=:lease_token,
    lease_owner=:lease_owner,
    lease_expires_at=:lease_expires_at,
    finished_at=CASE WHEN (queuelab_jobs.cancel_requested_at IS NOT NULL) THEN :p_now END
WHERE queuelab_jobs.id = :p_id
    AND queuelab_jobs.lease_token = :p_token
    AND queuelab_jobs.status = :status_1
