-- ack_cancel, PostgreSQL (psycopg). Ack an attempt stopped by a cancel request: CANCELLED, its
-- attempt handed back (unspent). Fenced: it matches only while this attempt holds the lease (id,
-- token, RUNNING).
-- Python (modules of queuelab.store): built by statements.CANCEL; run by leases._cancel (then
-- attempt_insert).
-- Constants bound by the statement: attempts_1 = 1, lease_expires_at = NULL, lease_owner = NULL,
-- lease_token = NULL, status = 'CANCELLED', status_1 = 'RUNNING'.
-- Generated, do not edit: regenerate with `python -m queuelab.store.sql`.

UPDATE queuelab_jobs
SET
    status=%(status)s::VARCHAR,
    attempts=(queuelab_jobs.attempts - %(attempts_1)s::INTEGER),
    lease_token=%(lease_token)s::VARCHAR,
    lease_owner=%(lease_owner)s::VARCHAR,
    lease_expires_at=%(lease_expires_at)s,
    started_at=%(p_started)s,
    finished_at=%(p_now)s
WHERE queuelab_jobs.id = %(p_id)s::VARCHAR
    AND queuelab_jobs.lease_token = %(p_token)s::VARCHAR
    AND queuelab_jobs.status = %(status_1)s::VARCHAR
