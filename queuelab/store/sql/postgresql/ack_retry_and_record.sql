-- ack_retry_and_record, PostgreSQL (psycopg). Ack a failed attempt to be retried at p_run_at
-- (PENDING again; CANCELLED if a cancel was requested while it ran) and its attempt row, in one
-- statement (PostgreSQL's single ack): the row is inserted only if the ack matched, and the rows
-- returned say whether it did.
-- Python (modules of queuelab.store): built by statements.RETRY_AND_RECORD; run by leases._apply.
-- Constants bound by the statement: param_1 = 'CANCELLED', param_2 = 'PENDING', param_3 = NULL,
-- param_4 = NULL, param_5 = NULL, status_1 = 'RUNNING'.
-- Generated, do not edit: regenerate with `python -m queuelab.store.sql`.

WITH done AS (
    UPDATE queuelab_jobs
    SET
        status=CASE WHEN (queuelab_jobs.cancel_requested_at IS NOT NULL) THEN %(param_1)s ELSE %(param_2)s END,
        run_at=%(p_run_at)s,
        lease_token=%(param_3)s::VARCHAR,
        lease_owner=%(param_4)s::VARCHAR,
        lease_expires_at=%(param_5)s,
        started_at=%(p_started)s,
        finished_at=CASE WHEN (queuelab_jobs.cancel_requested_at IS NOT NULL) THEN %(p_now)s END
    WHERE queuelab_jobs.id = %(p_id)s::VARCHAR
        AND queuelab_jobs.lease_token = %(p_token)s::VARCHAR
        AND queuelab_jobs.status = %(status_1)s::VARCHAR
    RETURNING queuelab_jobs.id
)
INSERT INTO queuelab_attempts (job_id, number, worker_id, outcome, started_at, error_type, error_message, traceback, finished_at)
SELECT
    done.id,
    CAST(%(a_number)s AS INTEGER) AS anon_1,
    CAST(%(a_worker_id)s AS VARCHAR) AS anon_2,
    CAST(%(a_outcome)s AS VARCHAR) AS anon_3,
    CAST(%(a_started_at)s AS DOUBLE PRECISION) AS anon_4,
    CAST(%(a_error_type)s AS VARCHAR) AS anon_5,
    CAST(%(a_error_message)s AS TEXT) AS anon_6,
    CAST(%(a_traceback)s AS TEXT) AS anon_7,
    CAST(%(p_now)s AS DOUBLE PRECISION) AS anon_8
FROM done
RETURNING queuelab_attempts.id
