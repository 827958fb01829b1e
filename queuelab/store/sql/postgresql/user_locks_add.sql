-- user_locks_add, PostgreSQL (psycopg). The per-user rows the quota claim found missing, added and
-- committed on a connection of their own, outside the claim's transaction.
-- Python (modules of queuelab.store): built by quota_sql.ADD_USER_LOCKS; run by
-- claims._add_user_locks.
-- Generated, do not edit: regenerate with `python -m queuelab.store.sql`.

INSERT INTO queuelab_user_locks (user_id, claims)
SELECT u, 0
FROM unnest(CAST(%(users)s AS text[])) AS u
ORDER BY u
ON CONFLICT DO NOTHING
