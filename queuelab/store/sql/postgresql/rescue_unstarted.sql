-- rescue_unstarted, PostgreSQL (psycopg). A rescued job its worker claimed ahead and never recorded
-- as started (started_at NULL): back to PENDING with its attempt unspent, the rescue counted.
-- Fenced: it matches only while this attempt holds the lease (id, token, RUNNING).
-- Python (modules of queuelab.store): built by statements.HAND_BACK_UNSTARTED; run by
-- leases._hand_back_unstarted, from leases.LeaseStore.rescue (then attempt_insert).
-- Constants bound by the statement: attempts_1 = 1, coalesce_1 = 0, coalesce_2 = 1,
-- lease_expires_at = NULL, lease_owner = NULL, lease_token = NULL, param_1 = 'CANCELLED',
-- param_2 = 'PENDING', status_1 = 'RUNNING'.
-- Generated, do not edit: regenerate with `python -m queuelab.store.sql`.

UPDATE queuelab_jobs
SET
    status=CASE WHEN (queuelab_jobs.cancel_requested_at IS NOT NULL) THEN %(param_1)s ELSE %(param_2)s END,
    attempts=(queuelab_jobs.attempts - %(attempts_1)s::INTEGER),
    lease_token=%(lease_token)s::VARCHAR,
    lease_owner=%(lease_owner)s::VARCHAR,
    lease_expires_at=%(lease_expires_at)s,
    unstarted_rescues=(coalesce(queuelab_jobs.unstarted_rescues, %(coalesce_1)s::INTEGER) + %(coalesce_2)s::INTEGER),
    finished_at=CASE WHEN (queuelab_jobs.cancel_requested_at IS NOT NULL) THEN %(p_now)s END
WHERE queuelab_jobs.id = %(p_id)s::VARCHAR
    AND queuelab_jobs.lease_token = %(p_token)s::VARCHAR
    AND queuelab_jobs.status = %(status_1)s::VARCHAR
    AND queuelab_jobs.started_at IS NULL
