-- rescue_probe, PostgreSQL (psycopg). Whether any lease has expired, read first so that the usual
-- answer (none) takes no write lock.
-- Python (modules of queuelab.store): built by sql.catalogue.rescue_probe, a copy of the query
-- leases.LeaseStore.rescue builds inline; run by leases.LeaseStore.rescue.
-- Bound per call: lease_expires_at_1 = now.
-- Constants bound by the statement: param_1 = 1.
-- Generated, do not edit: regenerate with `python -m queuelab.store.sql`.

SELECT queuelab_jobs.id
FROM queuelab_jobs
WHERE queuelab_jobs.status = 'RUNNING'
    AND queuelab_jobs.lease_expires_at < %(lease_expires_at_1)s
ORDER BY queuelab_jobs.lease_expires_at
LIMIT %(param_1)s::INTEGER
FOR UPDATE SKIP LOCKED
