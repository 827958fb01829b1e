-- ack_complete_batch, SQLite (binds shown by name; the driver gets ? in the same order). A worker's
-- batch of completions in one statement, one step: the batch as one JSON array of [id, lease token,
-- result, started_at, finished_at] (p_rows), each ack fenced by its lease token, its attempt kept
-- in the job's row (completed_by). Run in a savepoint: if the rowcount is short of the batch, it is
-- undone and the acks are written one by one (ack_complete).
-- Python (modules of queuelab.store): built by statements.SQLITE_COMPLETE_MANY; run by
-- leases._apply_all (a batch of 2 or more completions).
-- Constants bound by the statement: lease_expires_at = NULL, lease_owner = NULL,
-- lease_token = NULL, status = 'COMPLETED'.
-- Generated, do not edit: regenerate with `python -m queuelab.store.sql`.

UPDATE queuelab_jobs
SET
    status=:status,
    lease_token=:lease_token,
    lease_owner=:lease_owner,
    lease_expires_at=:lease_expires_at,
    result=json_extract(a.value, '$[2]'),
    completed_by=queuelab_jobs.lease_owner,
    started_at=json_extract(a.value, '$[3]'),
    finished_at=json_extract(a.value, '$[4]')
FROM json_each(:p_rows) AS a
WHERE queuelab_jobs.id = json_extract(a.value, '$[0]')
    AND queuelab_jobs.lease_token = json_extract(a.value, '$[1]')
    AND queuelab_jobs.status = 'RUNNING'
