-- release, SQLite (binds shown by name; the driver gets ? in the same order). Hand an unfinished
-- job back to PENDING without spending its attempt (shutdown). Fenced: it matches only while this
-- attempt holds the lease (id, token, RUNNING).
-- Python (modules of queuelab.store): built by statements.RELEASE; run by
-- leases.LeaseStore.release_many (then attempt_insert).
-- Constants bound by the statement: attempts_1 = 1, lease_expires_at = NULL, lease_owner = NULL,
-- lease_token = NULL, status = 'PENDING', status_1 = 'RUNNING'.
-- Generated, do not edit: regenerate with `python -m queuelab.store.sql`.

UPDATE queuelab_jobs
SET
    status=:status,
    attempts=(queuelab_jobs.attempts - :attempts_1),
    lease_token=:lease_token,
    lease_owner=:lease_owner,
    lease_expires_at=:lease_expires_at
WHERE queuelab_jobs.id = :p_id
    AND queuelab_jobs.lease_token = :p_token
    AND queuelab_jobs.status = :status_1
