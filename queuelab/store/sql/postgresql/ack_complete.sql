-- ack_complete, PostgreSQL (psycopg). Ack a completed attempt (a batch of them:
-- ack_complete_batch), its attempt kept in the job's row (completed_by: the lease's owner) instead
-- of an attempt_insert. Fenced: it matches only while this attempt holds the lease (id, token,
-- RUNNING).
-- Python (modules of queuelab.store): built by statements.COMPLETE; run by leases._apply.
-- Constants bound by the statement: lease_expires_at = NULL, lease_owner = NULL,
-- lease_token = NULL, status = 'COMPLETED', status_1 = 'RUNNING'.
-- Generated, do not edit: regenerate with `python -m queuelab.store.sql`.

UPDATE queuelab_jobs
SET
    status=%(status)s::VARCHAR,
    lease_token=%(lease_token)s::VARCHAR,
    lease_owner=%(lease_owner)s::VARCHAR,
    lease_expires_at=%(lease_expires_at)s,
    result=%(p_result)s::VARCHAR,
    completed_by=queuelab_jobs.lease_owner,
    started_at=%(p_started)s,
    finished_at=%(p_now)s
WHERE queuelab_jobs.id = %(p_id)s::VARCHAR
    AND queuelab_jobs.lease_token = %(p_token)s::VARCHAR
    AND queuelab_jobs.status = %(status_1)s::VARCHAR
