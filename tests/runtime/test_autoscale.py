"""The autoscaling policy as a table of cases (pure; no workers, no clock), and the loop that
applies it, ticked with the times the test chooses."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from queuelab import FakeClock, InvalidArgument, Queue
from queuelab.runtime.autoscale import Autoscaler, ScaleDecision, ScaleMetrics, ScalePolicy, decide_scale
from queuelab.submission import Submission
from queuelab.testing import internals

PROTOTYPE = ScalePolicy()  # min 1, max 50, up above 10, down after 300 s idle, cooldown 30 s


def metrics(
    backlog: int = 0, running: int = 0, workers: int = 1, idle: float = 0.0, since: float = 999.0
) -> ScaleMetrics:
    return ScaleMetrics(
        runnable_backlog=backlog,
        running=running,
        workers=workers,
        idle_for_seconds=idle,
        since_last_change_seconds=since,
    )


@pytest.mark.parametrize(
    ("case", "m", "target", "reason"),
    [
        ("small backlog: steady", metrics(backlog=10, running=1, workers=1), 1, "steady"),
        ("backlog 11: +1", metrics(backlog=11, workers=1), 2, "> 10: +1"),
        ("big backlog: +2 at most", metrics(backlog=500, workers=4), 6, "> 10: +2"),
        ("never above the maximum", metrics(backlog=500, workers=49), 50, "+1"),
        ("at the maximum", metrics(backlog=500, workers=50), 50, "already at the maximum"),
        ("cooldown holds a change", metrics(backlog=500, workers=4, since=10), 4, "cooling down"),
        ("idle but not long enough", metrics(workers=3, idle=299), 3, "steady"),
        ("idle 5 minutes: -1", metrics(workers=3, idle=300), 2, "no runnable job for 300s"),
        ("idle at the minimum", metrics(workers=1, idle=10_000), 1, "at the minimum"),
        ("a trickle does not hold a burst's pool", metrics(running=2, workers=18, idle=300), 17, "2 running: -1"),
        ("running jobs keep their workers", metrics(running=3, workers=3, idle=10_000), 3, "3 running need 3"),
        ("claimed-ahead jobs keep theirs too", metrics(running=9, workers=3, idle=10_000), 3, "need 9"),
        ("waiting jobs: no scale-down", metrics(backlog=1, running=0, workers=3, idle=0), 3, "steady"),
        ("below the minimum, even in cooldown", metrics(workers=0, since=0), 1, "below the minimum"),
        ("above the maximum", metrics(workers=60), 50, "above the maximum"),
    ],
)
def test_the_policy(case: str, m: ScaleMetrics, target: int, reason: str) -> None:
    decision = decide_scale(m, PROTOTYPE)
    assert decision.workers == target, case
    assert reason in decision.reason, case


def test_headroom_keeps_idle_workers_beyond_the_running_jobs() -> None:
    policy = ScalePolicy(headroom=2)
    assert decide_scale(metrics(running=3, workers=6, idle=300), policy).workers == 5
    assert decide_scale(metrics(running=3, workers=5, idle=300), policy).workers == 5
    assert decide_scale(metrics(running=0, workers=2, idle=300), ScalePolicy(min_workers=2, headroom=0)).workers == 2


def test_bad_policies_are_refused() -> None:
    with pytest.raises(InvalidArgument, match=r"min_workers must be between 0 and max_workers \(4\), got 5"):
        ScalePolicy(min_workers=5, max_workers=4)
    with pytest.raises(InvalidArgument, match="cooldown_seconds must be >= 0 seconds, got -1"):
        ScalePolicy(cooldown_seconds=-1)
    with pytest.raises(InvalidArgument, match="headroom must be a positive whole number, got -1"):
        ScalePolicy(headroom=-1)


def test_the_runnable_backlog_leaves_out_what_workers_cannot_serve(queue: object) -> None:
    from queuelab import Queue
    from queuelab.store.reports import runnable_backlog

    assert isinstance(queue, Queue)
    now = queue.clock.now()
    queue.submit("simulate", user_id="a")  # runnable
    queue.submit("simulate", user_id="a", delay=60)  # scheduled later
    queue.submit("simulate", user_id="a", queue="paused")
    queue.pause("paused")
    queue.set_limits("busy", max_running=1)
    queue.submit("simulate", user_id="busy", priority=9)
    queue.submit("simulate", user_id="busy")
    assert runnable_backlog(internals(queue).db, now) == {"default": 3}
    (lease,) = internals(queue).leases.claim("w", None, 1, now)  # busy's first job: busy is now at quota
    assert lease.user_id == "busy"
    assert runnable_backlog(internals(queue).db, now) == {"default": 1}


@pytest.mark.slow
def test_a_real_process_pool_scales_up_for_a_burst_and_back_down(sqlite_url: str, tmp_path: object) -> None:
    from pathlib import Path

    from queuelab.runtime.pool import ProcessPool
    from queuelab.submission import Submission
    from tests.support.helpers import recorder_queue, starts_per_job, wait_until

    record = Path(str(tmp_path)) / "executions.log"
    q = recorder_queue(sqlite_url)
    policy = ScalePolicy(
        min_workers=1,
        max_workers=4,
        scale_up_backlog=10,
        jobs_per_new_worker=10,
        idle_seconds=1.5,
        cooldown_seconds=0.5,
    )
    pool = ProcessPool(internals(q), 1).start()
    scaler = q.autoscaler(pool, policy, tick_seconds=0.3).start()
    try:
        jobs = q.submit_many(
            Submission(task="record", payload={"path": str(record), "seconds": 0.05}) for _ in range(500)
        )
        wait_until(lambda: q.stats().by_status["COMPLETED"] == 500, timeout=120, what="the burst to drain")
        wait_until(lambda: pool.size == 1, timeout=60, what="the pool to scale back to 1")
    finally:
        scaler.stop()
        pool.stop()
    sizes = [event.workers_after for event in scaler.decisions]
    assert max(sizes) > 1, scaler.decisions  # it scaled up
    # It scaled up for the burst, while it waited (not a bound on how soon: a busy machine
    # may take longer to tick, and that is not a defect of the policy).
    ups = [e for e in scaler.decisions if e.workers_after > e.workers_before]
    assert ups[0].backlog > policy.scale_up_backlog, scaler.decisions
    assert max(sizes) <= 4  # never above the maximum
    assert min(sizes) >= 1  # never below the minimum
    assert set(starts_per_job(record).values()) == {1}  # every job ran, none twice
    assert len(starts_per_job(record)) == len(jobs)
    assert (q.jobs_frame()["attempts"] == 1).all()  # scaling down spent no attempt
    q.close()


# -- the decision log ---------------------------------------------------------------------


def tick(scaler: Autoscaler, mono: float) -> ScaleDecision:
    """One tick at the store's (fake) time and the given monotonic time; its decision."""
    scaler.tick(scaler.runtime.clock.now(), mono)
    assert scaler.last is not None
    return scaler.last


def test_the_autoscaler_logs_every_change_in_the_store(queue: Queue, clock: FakeClock) -> None:
    pool = queue.worker(1)  # not started: resizing it only sets its size
    scaler = queue.autoscaler(pool, ScalePolicy(max_workers=4, cooldown_seconds=0))
    queue.submit_many(Submission(task="simulate") for _ in range(30))
    assert tick(scaler, 100.0).workers == 3
    assert tick(scaler, 101.0).workers == 4
    assert tick(scaler, 102.0).workers == 4  # at the maximum: no change, nothing logged
    assert pool.size == 4
    newest, oldest = queue.scale_events()
    assert (oldest.workers_before, oldest.workers_after, oldest.backlog, oldest.running) == (1, 3, 30, 0)
    assert "runnable backlog 30 > 10: +2" in oldest.reason
    assert (newest.workers_before, newest.workers_after, newest.change) == (3, 4, 1)
    assert newest.at == datetime.fromtimestamp(clock.now(), UTC)
    assert newest.pool_id == scaler.id
    assert newest.pool_id.startswith(f"{newest.hostname}:")
    assert scaler.decisions == [oldest, newest]
    assert queue.stats().recent_scale_events == [newest, oldest]
    assert queue.scale_events(limit=1) == [newest]
    frame = queue.scale_events_frame()
    assert list(frame["workers_after"]) == [3, 4]  # oldest first
    assert str(frame["at"].dt.tz) == "UTC"


def test_the_decision_log_is_pruned_by_age_and_by_count(
    queue: Queue, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from queuelab.store import scaling

    log = scaling.ScaleLog(internals(queue).db)

    def record(at: float, keep: float | None = None) -> None:
        log.record(
            at=at,
            pool_id="p",
            hostname="h",
            backlog=0,
            running=0,
            workers_before=1,
            workers_after=2,
            reason="x" * 600,
            keep_seconds=keep,
        )

    now = clock.now()
    for age in (500, 300, 100):
        record(now - age)
    record(now, keep=200)  # drops the two older than 200 s
    assert [round(now - e.at.timestamp()) for e in queue.scale_events()] == [0, 100]
    assert len(queue.scale_events()[0].reason) == scaling.MAX_REASON_LENGTH
    monkeypatch.setattr(scaling, "KEEP_ROWS", 3)
    for _ in range(5):
        record(now)
    assert len(queue.scale_events()) == 3


def test_an_older_database_gains_the_decision_log_table(db_url: str) -> None:
    import sqlalchemy as sa

    from queuelab.store.schema import scale_events

    q = Queue(db_url)
    q.stats()
    with internals(q).db.write() as conn:
        scale_events.drop(conn)  # as a database written before the table existed
    q.close()
    again = Queue(db_url)
    assert again.scale_events() == []
    assert "queuelab_scale_events" in sa.inspect(internals(again).db.engine).get_table_names()
    assert again.stats().recent_scale_events == []
    again.close()


def test_a_local_autoscaler_needs_at_least_one_worker(queue: Queue) -> None:
    with pytest.raises(InvalidArgument, match=r"min_workers must be at least 1 for a local pool.*got 0"):
        queue.autoscaler(queue.worker(1), ScalePolicy(min_workers=0))


def test_a_fresh_autoscaler_does_not_wait_out_a_cooldown(queue: Queue) -> None:
    pool = queue.worker(1)
    scaler = queue.autoscaler(pool, PROTOTYPE)  # cooldown 30 s
    queue.submit_many(Submission(task="simulate") for _ in range(30))
    assert tick(scaler, 100.0).workers == 3  # starting is not a change
    assert "cooling down (0s of 30s)" in tick(scaler, 100.0).reason


def test_the_cooldown_runs_on_the_monotonic_time_of_the_ticks(queue: Queue) -> None:
    pool = queue.worker(1)
    scaler = queue.autoscaler(pool, PROTOTYPE)  # cooldown 30 s, +2 at most per change
    queue.submit_many(Submission(task="simulate") for _ in range(30))
    assert tick(scaler, 1000.0).workers == 3
    decision = tick(scaler, 1029.9)
    assert (decision.workers, pool.size) == (3, 3)
    assert "cooling down (30s of 30s)" in decision.reason  # 29.9 s, rounded in the message
    assert tick(scaler, 1030.0).workers == 5
    assert pool.size == 5
    assert [(e.workers_before, e.workers_after) for e in scaler.decisions] == [(1, 3), (3, 5)]


def test_an_idle_pool_shrinks_one_worker_per_idle_window_and_cooldown(queue: Queue) -> None:
    pool = queue.worker(3)
    scaler = queue.autoscaler(pool, PROTOTYPE)  # idle 300 s, cooldown 30 s
    assert "steady" in tick(scaler, 1000.0).reason  # idle from here
    assert tick(scaler, 1299.0).workers == 3
    decision = tick(scaler, 1300.0)
    assert decision.workers == pool.size == 2
    assert "no runnable job for 300s >= 300s, 0 running: -1" in decision.reason
    assert "cooling down" in tick(scaler, 1329.0).reason
    assert tick(scaler, 1330.0).workers == pool.size == 1  # still idle, the cooldown over
    assert tick(scaler, 5000.0).reason == "idle, at the minimum"


def test_running_jobs_keep_their_workers_but_not_the_idle_ones(queue: Queue) -> None:
    pool = queue.worker(4)
    scaler = queue.autoscaler(pool, PROTOTYPE)
    queue.submit_many(Submission(task="simulate") for _ in range(2))
    leases = internals(queue).leases.claim("elsewhere", None, 2, queue.clock.now())  # RUNNING from here
    assert len(leases) == 2
    tick(scaler, 1000.0)  # no runnable job from here; two run
    assert tick(scaler, 1300.0).workers == pool.size == 3
    assert tick(scaler, 1330.0).workers == pool.size == 2
    decision = tick(scaler, 5000.0)
    assert (decision.workers, pool.size) == (2, 2)
    assert "2 running need 2 workers" in decision.reason


def test_work_restarts_the_idle_window(queue: Queue) -> None:
    pool = queue.worker(2)
    scaler = queue.autoscaler(pool, PROTOTYPE)
    tick(scaler, 1000.0)  # idle from here
    job = queue.submit("simulate")
    assert "steady (runnable backlog 1" in tick(scaler, 1200.0).reason
    queue.cancel(job.id)
    tick(scaler, 1250.0)  # idle again, from here
    assert tick(scaler, 1549.0).workers == 2  # 299 s: the 200 s idle before the job do not count
    assert tick(scaler, 1550.0).workers == 1


def test_a_real_tick_reads_the_clocks_itself(queue: Queue) -> None:
    pool = queue.worker(1)
    scaler = queue.autoscaler(pool, ScalePolicy(max_workers=4))
    queue.submit_many(Submission(task="simulate") for _ in range(30))
    scaler.run_tick()  # what the thread runs
    assert pool.size == 3
    assert scaler.errors == 0
