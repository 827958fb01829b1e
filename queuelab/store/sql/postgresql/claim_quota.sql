-- claim_quota, PostgreSQL (psycopg). The claim under per-user running quotas, for 4 free slots (the
-- limits are fixed in the SQL, a statement per limit): lock the candidates and their users' rows,
-- take only for users whose row is unchanged since the snapshot, bump those rows (see
-- postgres_quota_claim).
-- Python (modules of queuelab.store): built by quota_sql.postgres_quota_claim(1, 2, 1, 4, 8); run
-- by claims._claim_within_quotas, as text (direct.execute_sql).
-- Constants bound by the statement: attempts_1 = 1, claims_1 = 1, coalesce_1 = 2147483647,
-- coalesce_2 = 2147483647, nullif_1 = 0, nullif_2 = 0, param_1 = 'RUNNING', user_id_1 = '*',
-- user_id_2 = '*'.
-- Generated, do not edit: regenerate with `python -m queuelab.store.sql`.

WITH picked AS MATERIALIZED (
    SELECT
        queuelab_jobs.id AS id,
        queuelab_jobs.user_id AS user_id,
        queuelab_jobs.priority AS priority,
        queuelab_jobs.fair_rank AS fair_rank,
        ctid AS tid
    FROM queuelab_jobs
    WHERE (queuelab_jobs.user_id NOT IN (
        SELECT queuelab_jobs.user_id
        FROM queuelab_jobs
        WHERE queuelab_jobs.status = 'RUNNING'
        GROUP BY queuelab_jobs.user_id
        HAVING count(*) >= coalesce(nullif(coalesce((
            SELECT queuelab_limits.max_running
            FROM queuelab_limits
            WHERE queuelab_limits.user_id = queuelab_jobs.user_id
        ), (
            SELECT queuelab_limits.max_running
            FROM queuelab_limits
            WHERE queuelab_limits.user_id = %(user_id_2)s::VARCHAR
        ), %(p_default_quota)s::INTEGER), %(nullif_2)s::INTEGER), %(coalesce_2)s::INTEGER)
    ))
        AND queuelab_jobs.status = 'PENDING'
        AND queuelab_jobs.run_at <= %(p_now)s
        AND queuelab_jobs.queue IN (%(p_queues_0)s)
        AND queuelab_jobs.task IN (%(p_tasks_0)s, %(p_tasks_1)s)
        AND (queuelab_jobs.queue NOT IN (%(p_skip_queues_0)s))
    ORDER BY queuelab_jobs.priority DESC, queuelab_jobs.fair_rank
    LIMIT 8
    FOR UPDATE OF queuelab_jobs SKIP LOCKED
),
locked AS MATERIALIZED (
    SELECT queuelab_user_locks.user_id AS user_id, queuelab_user_locks.claims AS claims
    FROM queuelab_user_locks
    JOIN (
        SELECT placed.user_id AS user_id, min(placed.place) AS first
        FROM (
            SELECT
                picked.user_id AS user_id,
                row_number() OVER (ORDER BY picked.priority DESC, picked.fair_rank) AS place
            FROM picked
        ) AS placed
        GROUP BY placed.user_id
    ) AS users ON users.user_id = queuelab_user_locks.user_id
    ORDER BY users.first
    LIMIT 4
    FOR UPDATE OF queuelab_user_locks SKIP LOCKED
),
ok AS (
    SELECT locked.user_id AS user_id
    FROM locked
    JOIN queuelab_user_locks AS seen ON seen.user_id = locked.user_id
        AND seen.claims = locked.claims
),
taken AS (
    UPDATE queuelab_jobs
    SET
        status=%(param_1)s::VARCHAR,
        attempts=(queuelab_jobs.attempts + %(attempts_1)s::INTEGER),
        lease_token=%(p_token)s::VARCHAR,
        lease_owner=%(p_owner)s::VARCHAR,
        lease_expires_at=(%(p_now)s + queuelab_jobs.lease_seconds),
        started_at=%(p_started)s
    WHERE ctid = ANY (array((
        SELECT ranked.tid
        FROM (
            SELECT
                candidates.tid AS tid,
                candidates.priority AS priority,
                candidates.fair_rank AS fair_rank,
                row_number() OVER (PARTITION BY candidates.user_id ORDER BY candidates.priority DESC, candidates.fair_rank) AS rn,
                coalesce(nullif(coalesce((
                    SELECT queuelab_limits.max_running
                    FROM queuelab_limits
                    WHERE queuelab_limits.user_id = candidates.user_id
                ), (
                    SELECT queuelab_limits.max_running
                    FROM queuelab_limits
                    WHERE queuelab_limits.user_id = %(user_id_1)s::VARCHAR
                ), %(p_default_quota)s::INTEGER), %(nullif_1)s::INTEGER), %(coalesce_1)s::INTEGER) - (
                    SELECT count(*) AS count_1
                    FROM queuelab_jobs AS running
                    WHERE running.user_id = candidates.user_id
                        AND running.status = 'RUNNING'
                ) AS room
            FROM (
                SELECT
                    picked.id AS id,
                    picked.user_id AS user_id,
                    picked.priority AS priority,
                    picked.fair_rank AS fair_rank,
                    picked.tid AS tid
                FROM picked
                WHERE picked.user_id IN (SELECT ok.user_id FROM ok)
            ) AS candidates
        ) AS ranked
        WHERE ranked.rn <= ranked.room
        ORDER BY ranked.priority DESC, ranked.fair_rank
        LIMIT 4
    )))
    RETURNING
        queuelab_jobs.id,
        queuelab_jobs.task,
        queuelab_jobs.payload,
        queuelab_jobs.user_id,
        queuelab_jobs.queue,
        queuelab_jobs.attempts,
        queuelab_jobs.max_retries,
        queuelab_jobs.lease_seconds,
        queuelab_jobs.timeout_seconds,
        queuelab_jobs.priority,
        queuelab_jobs.fair_rank,
        queuelab_jobs.run_at,
        queuelab_jobs.trace_context
),
bumped AS (
    UPDATE queuelab_user_locks
    SET claims=(queuelab_user_locks.claims + %(claims_1)s::BIGINT)
    WHERE queuelab_user_locks.user_id IN (SELECT taken.user_id FROM taken)
)
SELECT
    taken.id,
    taken.task,
    taken.payload,
    taken.user_id,
    taken.queue,
    taken.attempts,
    taken.max_retries,
    taken.lease_seconds,
    taken.timeout_seconds,
    taken.priority,
    taken.fair_rank,
    taken.run_at,
    taken.trace_context,
    summary.passed,
    summary.missing
FROM (
    SELECT
        (
            SELECT count(*) AS count_2
            FROM picked
            WHERE (picked.user_id NOT IN (SELECT ok.user_id FROM ok))
        ) AS passed,
        array((
            SELECT DISTINCT picked.user_id
            FROM picked
            WHERE NOT (EXISTS (
                SELECT *
                FROM queuelab_user_locks AS seen
                WHERE seen.user_id = picked.user_id
            ))
        )) AS missing
) AS summary
LEFT OUTER JOIN taken ON true
