-- rescue_unstarted, SQLite (binds shown by name; the driver gets ? in the same order). A rescued
-- job its worker claimed ahead and never recorded as started (started_at NULL): back to PENDING
-- with its attempt unspent, the rescue counted. Fenced: it matches only while this attempt holds
-- the lease (id, token, RUNNING).
-- Python (modules of queuelab.store): built by statements.HAND_BACK_UNSTARTED; run by
-- leases._hand_back_unstarted, from leases.LeaseStore.rescue (then attempt_insert).
-- Constants bound by the statement: attempts_1 = 1, coalesce_1 = 0, coalesce_2 = 1,
-- lease_expires_at = NULL, lease_owner = NULL, lease_token = NULL, param_1 = 'CANCELLED',
-- param_2 = 'PENDING', status_1 = 'RUNNING'.
-- Generated, do not edit: regenerate with `python -m queuelab.store.sql`.

UPDATE queuelab_jobs
SET
    status=CASE WHEN (queuelab_jobs.cancel_requested_at IS NOT NULL) THEN :param_1 ELSE :param_2 END,
    attempts=(queuelab_jobs.attempts - :attempts_1),
    lease_token=:lease_token,
    lease_owner=:lease_owner,
    lease_expires_at=:lease_expires_at,
    unstarted_rescues=(coalesce(queuelab_jobs.unstarted_rescues, :coalesce_1) + :coalesce_2),
    finished_at=CASE WHEN (queuelab_jobs.cancel_requested_at IS NOT NULL) THEN :p_now END
WHERE queuelab_jobs.id = :p_id
    AND queuelab_jobs.lease_token = :p_token
    AND queuelab_jobs.status = :status_1
    AND queuelab_jobs.started_at IS NULL
