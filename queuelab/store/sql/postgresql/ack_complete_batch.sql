-- ack_complete_batch, PostgreSQL (psycopg). A worker's batch of completions in one statement, one
-- round trip: the batch as one JSON array of rows (p_rows), each ack fenced by its lease token, its
-- attempt kept in the job's row (completed_by); RETURNING names those that matched, the rest found
-- their lease lost.
-- Python (modules of queuelab.store): built by statements.COMPLETE_BATCH; run by
-- leases._complete_batch, from leases._apply_all (a batch of 2 or more completions).
-- Generated, do not edit: regenerate with `python -m queuelab.store.sql`.

WITH batch AS (
    SELECT *
    FROM json_to_recordset(CAST(%(p_rows)s AS JSON)) AS b (id VARCHAR, token VARCHAR, number INTEGER, started_at DOUBLE PRECISION, finished_at DOUBLE PRECISION, result TEXT)
)
UPDATE queuelab_jobs AS j
SET
    status = 'COMPLETED',
    result = b.result,
    finished_at = b.finished_at,
    started_at = b.started_at,
    completed_by = j.lease_owner,
    lease_token = NULL,
    lease_owner = NULL,
    lease_expires_at = NULL
FROM batch AS b
WHERE j.id = b.id
    AND j.lease_token = b.token
    AND j.status = 'RUNNING'
RETURNING j.id AS job_id, b.number
