-- heartbeat, PostgreSQL (psycopg). Extend a running job's lease to p_now plus its lease_seconds,
-- and record its start (p_started) if it was claimed ahead and has started since. Fenced: it
-- matches only while this attempt holds the lease (id, token, RUNNING).
-- Python (modules of queuelab.store): built by statements.EXTEND; run by
-- leases.LeaseStore.heartbeat.
-- Constants bound by the statement: status_1 = 'RUNNING'.
-- Generated, do not edit: regenerate with `python -m queuelab.store.sql`.

UPDATE queuelab_jobs
SET
    lease_expires_at=(%(p_now)s + queuelab_jobs.lease_seconds),
    started_at=coalesce(queuelab_jobs.started_at, %(p_started)s)
WHERE queuelab_jobs.id = %(p_id)s::VARCHAR
    AND queuelab_jobs.lease_token = %(p_token)s::VARCHAR
    AND queuelab_jobs.status = %(status_1)s::VARCHAR
