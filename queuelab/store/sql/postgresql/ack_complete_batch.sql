-- ack_complete_batch, PostgreSQL (psycopg). A worker's batch of completions in one statement, one
-- round trip: the batch as one JSON array of rows (p_rows), each ack fenced by its lease token, its
-- attempt kept in the job's row (completed_by); RETURNING names those that matched, the rest found
-- their lease lost.
-- Python (modules of queuelab.store): built by statements.COMPLETE_BATCH; run by
-- leases._complete_batch, from leases._apply_all (a batch of 2 or more completions in a
-- transaction: beside a retry, a dead letter or a cancel, or under a quota or a throttle).
-- Constants bound by the statement: status = 'COMPLETED'.
-- Generated, do not edit: regenerate with `python -m queuelab.store.sql`.

UPDATE queuelab_jobs
SET
    status=%(status)s::VARCHAR,
    lease_token=NULL,
    lease_owner=NULL,
    lease_expires_at=NULL,
    result=b.result,
    completed_by=queuelab_jobs.lease_owner,
    started_at=b.started_at,
    finished_at=b.finished_at
FROM json_to_recordset(CAST(%(p_rows)s AS JSON)) AS b(id VARCHAR, token VARCHAR, number INTEGER, started_at DOUBLE PRECISION, finished_at DOUBLE PRECISION, result TEXT)
WHERE queuelab_jobs.id = b.id
    AND queuelab_jobs.lease_token = b.token
    AND queuelab_jobs.status = 'RUNNING'
RETURNING queuelab_jobs.id AS job_id, b.number
