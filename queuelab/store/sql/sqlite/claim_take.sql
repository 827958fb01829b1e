-- claim_take, SQLite (binds shown by name; the driver gets ? in the same order). The claim's second
-- statement: lease the jobs claim_pick read (p_ids, a JSON array of ids in claim order), the first
-- p_start of them recorded as started at p_started and the rest claimed ahead (started_at NULL:
-- their start is recorded by a heartbeat once they start).
-- Python (modules of queuelab.store): built by statements.SQLITE_TAKE; run by claims._take_sqlite.
-- Constants bound by the statement: attempts_1 = 1, status = 'RUNNING'.
-- Generated, do not edit: regenerate with `python -m queuelab.store.sql`.

UPDATE queuelab_jobs
SET
    status=:status,
    attempts=(queuelab_jobs.attempts + :attempts_1),
    lease_token=:p_token,
    lease_owner=:p_owner,
    lease_expires_at=(:p_now + queuelab_jobs.lease_seconds),
    started_at=CASE WHEN (c."key" < :p_start) THEN :p_started ELSE NULL END
FROM json_each(:p_ids) AS c
WHERE queuelab_jobs.id = c.value
    AND queuelab_jobs.status = 'PENDING'
