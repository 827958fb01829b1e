-- user_locks_forget, PostgreSQL (psycopg). The per-user rows of users with nothing PENDING or
-- RUNNING; rows a claim holds are left.
-- Python (modules of queuelab.store): built by quota_sql.FORGET_IDLE_USER_LOCKS; run by
-- claims.forget_idle_users.
-- Generated, do not edit: regenerate with `python -m queuelab.store.sql`.

DELETE FROM queuelab_user_locks
WHERE user_id IN (
    SELECT l.user_id
    FROM queuelab_user_locks AS l
    WHERE NOT EXISTS (
        SELECT
        FROM queuelab_jobs AS j
        WHERE j.user_id = l.user_id
            AND j.status = 'PENDING'
    )
        AND NOT EXISTS (
            SELECT
            FROM queuelab_jobs AS j
            WHERE j.user_id = l.user_id
                AND j.status = 'RUNNING'
        )
    FOR UPDATE SKIP LOCKED
)
