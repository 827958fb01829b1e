-- claim_quota, SQLite (binds shown by name; the driver gets ? in the same order). The claim under
-- per-user running quotas, one statement under the write lock: up to p_limit jobs from the first
-- p_overfetch candidates, each within its user's room.
-- Python (modules of queuelab.store): built by quota_sql.sqlite_quota_claim(1, 2, 1); run by
-- claims._claim_within_quotas.
-- Constants bound by the statement: attempts_1 = 1, coalesce_1 = 2147483647,
-- coalesce_2 = 2147483647, nullif_1 = 0, nullif_2 = 0, param_1 = 0, param_2 = 0,
-- status = 'RUNNING', user_id_1 = '*', user_id_2 = '*'.
-- Generated, do not edit: regenerate with `python -m queuelab.store.sql`.

UPDATE queuelab_jobs
SET
    status=:status,
    attempts=(queuelab_jobs.attempts + :attempts_1),
    lease_token=:p_token,
    lease_owner=:p_owner,
    lease_expires_at=(:p_now + queuelab_jobs.lease_seconds),
    started_at=:p_started
WHERE queuelab_jobs.id IN (
    SELECT ranked.id
    FROM (
        SELECT
            candidates.id AS id,
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
                WHERE queuelab_limits.user_id = :user_id_1
            ), :p_default_quota), :nullif_1), :coalesce_1) - (
                SELECT count(*) AS count_1
                FROM queuelab_jobs AS running
                WHERE running.user_id = candidates.user_id
                    AND running.status = 'RUNNING'
            ) AS room
        FROM (
            SELECT
                queuelab_jobs.id AS id,
                queuelab_jobs.user_id AS user_id,
                queuelab_jobs.priority AS priority,
                queuelab_jobs.fair_rank AS fair_rank
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
                    WHERE queuelab_limits.user_id = :user_id_2
                ), :p_default_quota), :nullif_2), :coalesce_2)
            ))
                AND queuelab_jobs.status = 'PENDING'
                AND queuelab_jobs.run_at <= :p_now
                AND queuelab_jobs.queue IN (:p_queues_0)
                AND queuelab_jobs.task IN (:p_tasks_0, :p_tasks_1)
                AND (queuelab_jobs.queue NOT IN (:p_skip_queues_0))
            ORDER BY queuelab_jobs.priority DESC, queuelab_jobs.fair_rank
            LIMIT :p_overfetch OFFSET :param_1
        ) AS candidates
    ) AS ranked
    WHERE ranked.rn <= ranked.room
    ORDER BY ranked.priority DESC, ranked.fair_rank
    LIMIT :p_limit OFFSET :param_2
)
    AND queuelab_jobs.status = 'PENDING'
RETURNING
    id,
    task,
    payload,
    user_id,
    queue,
    attempts,
    max_retries,
    lease_seconds,
    timeout_seconds,
    priority,
    fair_rank,
    run_at,
    trace_context
