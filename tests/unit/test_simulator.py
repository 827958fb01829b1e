"""The autoscaling simulator: analytic cases as a table, the policy's bounds on every trace
shape, and one comparison of the shape of a burst with a real process pool."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest

from queuelab import InvalidArgument, Queue, ScaleEvent
from queuelab.lab.simulator import Exponential, Fixed, LogNormal, SimResult, Trace, burst, diurnal, simulate, steady
from queuelab.runtime.autoscale import ScalePolicy
from queuelab.testing import internals

PROTOTYPE = ScalePolicy()


def fixed_pool(workers: int) -> ScalePolicy:
    return ScalePolicy(min_workers=workers, max_workers=workers)


# -- traces ---------------------------------------------------------------------------------


def test_traces_have_the_shape_asked_for() -> None:
    assert len(steady(2.0, 1000, poisson=False)) == 2000
    poisson = steady(2.0, 1000, seed=1)
    assert 1800 < len(poisson) < 2200
    assert np.all(np.diff(poisson.arrivals) >= 0)
    spread = burst(10, at=5.0, over_seconds=10.0)
    assert list(spread.arrivals) == [5.0 + i for i in range(10)]
    assert spread.seconds == 15.0
    day = diurnal(1.0, peak_to_trough=4.0, peak_at_seconds=14 * 3600, seed=2)
    per_hour = np.histogram(day.arrivals, bins=24, range=(0, 86_400))[0]
    assert per_hour.argmax() in (13, 14)
    assert per_hour.max() / per_hour.min() == pytest.approx(4.0, rel=0.2)
    assert len(day) == pytest.approx(86_400, rel=0.02)
    both = steady(1.0, 100, poisson=False) + burst(50, at=30.0)
    assert (len(both), both.name) == (150, "steady+burst")


def test_durations_have_the_mean_asked_for() -> None:
    rng = np.random.default_rng(0)
    assert Fixed(0.5).sample(rng, 3).tolist() == [0.5, 0.5, 0.5]
    assert Exponential(2.0).sample(rng, 200_000).mean() == pytest.approx(2.0, rel=0.02)
    assert LogNormal(2.0, sigma=1.0).sample(rng, 200_000).mean() == pytest.approx(2.0 * math.exp(0.5), rel=0.05)


# -- analytic cases -------------------------------------------------------------------------


def test_a_burst_on_one_worker_drains_in_n_times_the_duration() -> None:
    result = simulate(burst(50), Fixed(2.0), fixed_pool(1))
    assert result.drain_seconds == 100.0
    assert result.worker_seconds == 100.0
    assert result.job_frame["wait"].tolist() == [2.0 * i for i in range(50)]
    assert result.wait_max == 98.0
    assert result.wait_p50 == pytest.approx(49.0)


@pytest.mark.parametrize(
    ("case", "trace", "durations", "policy", "drain", "worker_seconds", "wait_max"),
    [
        ("even arrivals, one fast worker: nobody waits", steady(2.0, 600, poisson=False), Fixed(0.4),
         fixed_pool(1), 599.9, 600.0, 0.0),
        ("a burst on k workers: ceil(n/k) rounds", burst(60), Fixed(1.0), fixed_pool(4), 15.0, 60.0, 14.0),
        ("a burst on 3 workers, 10 jobs: 4 rounds", burst(10), Fixed(1.0), fixed_pool(3), 4.0, 12.0, 3.0),
    ],
)  # fmt: skip
def test_analytic_cases(
    case: str, trace: Trace, durations: Fixed, policy: ScalePolicy, drain: float, worker_seconds: float, wait_max: float
) -> None:
    result = simulate(trace, durations, policy)
    assert result.drain_seconds == pytest.approx(drain), case
    assert result.worker_seconds == pytest.approx(worker_seconds), case
    assert result.wait_max == pytest.approx(wait_max), case
    assert result.unfinished == 0, case


def test_poisson_arrivals_with_enough_workers_wait_almost_never() -> None:
    result = simulate(steady(1.0, 3600, seed=3), Exponential(0.5), fixed_pool(8))
    assert result.wait_p95 == 0.0
    assert result.wait_max < 1.0


def test_a_new_worker_is_ready_only_after_its_start_up_delay() -> None:
    policy = ScalePolicy(min_workers=1, max_workers=2, cooldown_seconds=0)
    result = simulate(burst(40), Fixed(1.0), policy, tick_seconds=1.0, startup_seconds=10.0)
    # Worker 1 runs jobs 0..10 alone; from t=11 two workers share the remaining 29: 15 rounds.
    assert result.drain_seconds == 26.0
    assert result.job_frame["start"].iloc[12] == 11.0
    starting = result.timeline.set_index("time")["starting"]
    assert starting.loc[1.0:10.0].eq(1).all()
    assert starting.loc[11.0] == 0
    assert result.time_to_peak == 1.0


def test_the_pool_scales_up_in_steps_and_back_down_after_the_idle_window() -> None:
    policy = ScalePolicy(min_workers=1, max_workers=6, cooldown_seconds=10, idle_seconds=60)
    result = simulate(burst(300), Fixed(1.0), policy, tick_seconds=2.0, startup_seconds=4.0, until_seconds=1000)
    ups = result.decisions[result.decisions["workers_after"] > result.decisions["workers_before"]]
    assert (ups["workers_after"] - ups["workers_before"]).max() <= policy.max_step_up
    assert ups["time"].diff().dropna().min() >= policy.cooldown_seconds
    assert result.max_workers == 6
    downs = result.decisions[result.decisions["workers_after"] < result.decisions["workers_before"]]
    assert (downs["workers_before"] - downs["workers_after"]).eq(1).all()
    assert downs["time"].min() >= result.drain_seconds + policy.idle_seconds
    assert result.timeline["workers"].iloc[-1] == 1  # back at the minimum after the idle window


def test_a_scaled_down_busy_worker_finishes_its_job() -> None:
    # 6 long jobs on 3 workers; the idle window can never open while they run, so shrink by
    # hand: a pool of 3 asked to be 1 keeps every job and ends with one worker.
    policy = ScalePolicy(min_workers=1, max_workers=1)
    result = simulate(burst(6), Fixed(10.0), policy, initial_workers=3, tick_seconds=1.0)
    assert result.decisions["reason"].iloc[0].startswith("above the maximum")
    assert result.unfinished == 0
    assert result.job_frame["start"].tolist() == [0.0, 0.0, 0.0, 10.0, 20.0, 30.0]
    assert result.worker_seconds == 3 * 10 + 30  # the two removed workers cost until their jobs ended


@pytest.mark.parametrize("trace", [burst(500), steady(3.0, 3600, seed=4), diurnal(2.0, seconds=6 * 3600, seed=5),
                                   steady(0.5, 3600, seed=6) + burst(400, at=1800.0, over_seconds=60)],
                         ids=["burst", "steady", "diurnal", "steady+burst"])  # fmt: skip
def test_the_policy_never_leaves_its_bounds(trace: Trace) -> None:
    policy = ScalePolicy(min_workers=2, max_workers=7, cooldown_seconds=20, idle_seconds=120)
    result = simulate(trace, LogNormal(1.5, sigma=0.8), policy, startup_seconds=15.0, seed=7)
    assert result.timeline["workers"].between(2, 7).all()
    assert result.decisions["workers_after"].between(2, 7).all()
    assert result.unfinished == 0
    assert 2 <= result.max_workers <= 7


def test_the_prototype_policy_on_a_busy_day() -> None:
    result = simulate(diurnal(3.0, seed=8), Exponential(2.0), PROTOTYPE, startup_seconds=20.0)
    assert result.timeline["workers"].between(PROTOTYPE.min_workers, PROTOTYPE.max_workers).all()
    assert result.unfinished == 0
    assert 3.0 * 86_400 * 2.0 < result.worker_seconds < 50 * 86_400  # at least the work itself
    assert result.wait_p50 <= result.wait_p95 <= result.wait_max


def test_a_day_long_trace_runs_in_seconds() -> None:
    started = time.perf_counter()
    result = simulate(diurnal(5.0, seed=9), Exponential(2.0), PROTOTYPE, startup_seconds=20.0)
    elapsed = time.perf_counter() - started
    assert result.jobs > 400_000
    assert elapsed < 30, f"{elapsed:.1f}s for a day of {result.jobs} jobs"


def test_a_run_is_reproducible_from_its_seed() -> None:
    def run(seed: int) -> SimResult:
        return simulate(steady(2.0, 600, seed=1), Exponential(1.0), PROTOTYPE, seed=seed)

    assert run(1).summary() == run(1).summary()
    assert run(1).worker_seconds != run(2).worker_seconds


def test_a_minimum_of_zero_can_leave_a_small_backlog_unserved() -> None:
    policy = ScalePolicy(min_workers=0, max_workers=4)
    result = simulate(burst(5), Fixed(1.0), policy, until_seconds=600)
    assert result.unfinished == 5  # 5 <= scale_up_backlog: the policy never starts a worker
    assert math.isnan(result.drain_seconds)
    assert result.worker_seconds == 0.0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: steady(0, 10), "rate_per_second must be a finite number > 0, got 0"),
        (lambda: burst(0), "jobs must be a whole number >= 1, got 0"),
        (lambda: diurnal(1.0, peak_to_trough=0.5), "peak_to_trough must be >= 1, got 0.5"),
        (lambda: simulate(burst(1), Fixed(1), PROTOTYPE, tick_seconds=0), "tick_seconds must be a finite number > 0"),
        (lambda: simulate(burst(1), Fixed(1), PROTOTYPE, initial_workers=-1), "initial_workers must be a whole number"),
    ],
)
def test_bad_arguments_are_refused(call: object, message: str) -> None:
    assert callable(call)
    with pytest.raises(InvalidArgument, match=message):
        call()


# -- the simulator against a real pool --------------------------------------------------------

BURST_JOBS = 500
JOB_SECONDS = 0.1
SHORT = ScalePolicy(min_workers=1, max_workers=8, cooldown_seconds=0.5, idle_seconds=1.5)
TICK_SECONDS = 0.3


def shape_of_real_burst(sqlite_url: str, tmp_path: Path) -> dict[str, float]:
    """Run the burst through a real process pool under the real Autoscaler; return its shape,
    the measured job cycle time and worker start-up delay."""
    from queuelab.runtime.pool import ProcessPool
    from queuelab.submission import Submission
    from tests.support.helpers import recorder_queue, wait_until

    q = recorder_queue(sqlite_url)
    pool = ProcessPool(internals(q), 1).start()
    wait_until(lambda: len(q.stats().live_workers) == 1, timeout=60, what="the first worker")
    scaler = q.autoscaler(pool, SHORT, tick_seconds=TICK_SECONDS).start()
    try:
        started = time.time()
        payload = {"path": str(tmp_path / "runs.log"), "seconds": JOB_SECONDS}
        q.submit_many(Submission(task="record", payload=payload) for _ in range(BURST_JOBS))
        wait_until(lambda: q.stats().by_status["COMPLETED"] == BURST_JOBS, timeout=120, what="the burst to drain")
        wait_until(lambda: pool.size == 1, timeout=60, what="the pool to scale back to 1")
    finally:
        scaler.stop()
        pool.stop()
    shape = measure(q, scaler.decisions, started)
    q.close()
    return shape


def measure(q: Queue, decisions: list[ScaleEvent], started: float) -> dict[str, float]:
    import pandas as pd

    from queuelab.store.reports import Reports
    from queuelab.store.schema import workers

    attempts = pd.DataFrame(Reports(internals(q).db).attempt_rows(10 * BURST_JOBS))
    drain = attempts["finished_at"].max() - started
    # A worker's cycle: from one claim to its next (the run plus the ack and claim around it).
    cycles = attempts.sort_values("started_at").groupby("worker_id")["started_at"].diff().dropna()
    changes = [(e.at.timestamp() - started, e.workers_before, e.workers_after) for e in decisions]
    peak = max(after for _, _, after in changes)
    # Start-up: from each +1 asked for to the next worker process registering in the store.
    asked = sorted(at for at, before, after in changes for _ in range(max(0, after - before)))
    with internals(q).db.read() as conn:
        registered = sorted(conn.execute(workers.select().with_only_columns(workers.c.started_at)).scalars())[1:]
    delays = [r - (started + a) for a, r in zip(asked, registered, strict=False)]
    return {
        "peak_workers": peak,
        "time_to_peak": next(at for at, _, after in changes if after == peak),
        "drain_seconds": drain,
        "worker_seconds": integral_of_size(changes, drain),
        "job_cycle_seconds": float(cycles.median()),
        "job_run_seconds": float((attempts["finished_at"] - attempts["started_at"]).median()),
        "startup_seconds": float(np.median(delays)),
    }


def integral_of_size(changes: list[tuple[float, int, int]], end: float) -> float:
    """Worker-seconds from 0 to ``end`` of a pool of 1 resized at ``changes``."""
    total, size, since = 0.0, 1, 0.0
    for at, _, after in changes:
        if at >= end:
            break
        total += size * (max(at, 0.0) - since)
        size, since = after, max(at, 0.0)
    return total + size * (end - since)


@pytest.mark.slow
def test_the_simulator_and_a_real_pool_agree_on_the_shape_of_a_burst(sqlite_url: str, tmp_path: Path) -> None:
    real = shape_of_real_burst(sqlite_url, tmp_path)
    sim = simulate(
        burst(BURST_JOBS),
        Fixed(real["job_cycle_seconds"]),
        SHORT,
        tick_seconds=TICK_SECONDS,
        startup_seconds=real["startup_seconds"],
    )
    predicted = {
        "peak_workers": sim.max_workers,
        "time_to_peak": sim.time_to_peak,
        "drain_seconds": sim.drain_seconds,
        "worker_seconds": sim.worker_seconds,
    }
    print(f"\nburst of {BURST_JOBS} x {JOB_SECONDS}s jobs, policy {SHORT}, tick {TICK_SECONDS}s")
    print(f"measured: job cycle {real['job_cycle_seconds']:.3f}s (run {real['job_run_seconds']:.3f}s), "
          f"worker start-up {real['startup_seconds']:.2f}s")  # fmt: skip
    for name, value in predicted.items():
        print(f"{name:>16}: real {real[name]:8.2f}   simulated {value:8.2f}")
    assert predicted["peak_workers"] == real["peak_workers"]
    assert predicted["time_to_peak"] == pytest.approx(real["time_to_peak"], abs=max(1.0, 0.5 * real["time_to_peak"]))
    assert predicted["drain_seconds"] == pytest.approx(real["drain_seconds"], rel=0.35)
    assert predicted["worker_seconds"] == pytest.approx(real["worker_seconds"], rel=0.35)


def test_a_burst_then_a_trickle_falls_back_to_what_the_trickle_needs() -> None:
    """The seed's rule: no runnable job for 5 minutes, one worker less, even while jobs of
    the trickle run. The pool a burst grew used to stay for as long as the trickle kept a
    job running; now it shrinks to the workers the trickle needs, and its jobs still start
    at once (the trace and the durations are seeded: the figures are exact)."""
    trace = burst(2000) + steady(0.5, 3 * 3600, seed=3)
    scaled = simulate(trace, Exponential(1.0), PROTOTYPE)
    kept = simulate(trace, Exponential(1.0), fixed_pool(scaled.max_workers))  # the burst's pool, kept
    assert scaled.max_workers >= 15
    assert scaled.worker_seconds < kept.worker_seconds / 5  # 6.1 worker-hours against 54
    assert scaled.timeline["workers"].iloc[-1] == 1
    late = scaled.job_frame[scaled.job_frame["arrival"] >= 3600]  # the trickle, long after the burst
    assert late["wait"].median() == 0.0
    assert late["wait"].quantile(0.95) < 5.0
    roomy = simulate(trace, Exponential(1.0), ScalePolicy(headroom=2))
    late = roomy.job_frame[roomy.job_frame["arrival"] >= 3600]
    assert late["wait"].quantile(0.99) < 2.0  # a headroom of idle workers buys the tail back
    assert roomy.worker_seconds < kept.worker_seconds / 4
