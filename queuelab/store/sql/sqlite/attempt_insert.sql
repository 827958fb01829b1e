-- attempt_insert, SQLite (binds shown by name; the driver gets ? in the same order). An attempt's
-- history row, written after its ack or release matched (not a completion's: see ack_complete).
-- Python (modules of queuelab.store): built by statements.RECORD_ATTEMPT, with the columns of
-- leases._attempt_row; run by leases._apply (SQLite), leases._apply_all (a batch) and
-- leases.LeaseStore.release_many.
-- Generated, do not edit: regenerate with `python -m queuelab.store.sql`.

INSERT INTO queuelab_attempts (job_id, number, worker_id, outcome, started_at, finished_at, error_type, error_message, traceback)
VALUES (:job_id, :number, :worker_id, :outcome, :started_at, :finished_at, :error_type, :error_message, :traceback)
