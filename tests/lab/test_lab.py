"""The lab: load plans, experiments on real queues and pools, the frames and the plots made
from what those runs stored."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
from matplotlib.patches import Rectangle

from queuelab import InvalidArgument, Job, Queue, Submission, lab
from queuelab.lab import experiment, frames, load, plots

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# -- load plans --------------------------------------------------------------------------------


def test_plans_are_seeded_and_sorted() -> None:
    shape = load.Poisson(rate=100, seconds=2)
    first, again, other = load.plan(shape, seed=1), load.plan(shape, seed=1), load.plan(shape, seed=2)
    pd.testing.assert_frame_equal(first, again)
    assert not first["at"].equals(other["at"])
    assert first["at"].is_monotonic_increasing
    assert 140 < len(first) < 260  # Poisson(200): five standard deviations either side
    assert (first["at"] >= 0).all()
    assert (first["at"] < 2).all()


def test_shapes_give_the_counts_they_promise() -> None:
    rng = np.random.default_rng(0)
    assert len(load.Constant(rate=10, seconds=3).arrivals(rng)) == 30
    burst = load.Burst(50, at=2.0).arrivals(rng)
    assert len(burst) == 50
    assert (burst == 2.0).all()
    spread = load.Burst(50, at=1.0, spread=2.0).arrivals(rng)
    assert spread.min() >= 1.0
    assert spread.max() < 3.0
    ramp = load.Ramp(start_rate=0, end_rate=100, seconds=4).arrivals(rng)
    assert len(ramp) == 200  # the area under the rate
    gaps = np.diff(ramp)
    assert (gaps > 0).all()
    assert gaps[-1] < gaps[0]


def test_mixes_durations_and_failure_rates() -> None:
    mix = load.heavy_and_light(
        heavy=1,
        heavy_shape=load.Burst(100),
        light=3,
        light_shape=load.Constant(rate=5, seconds=1),
        duration=load.Uniform(0.01, 0.02),
        fail_rate=0.1,
    )
    planned = load.plan(mix, seed=3)
    assert planned["user_id"].value_counts().to_dict() == {"heavy-0": 100, "light-0": 5, "light-1": 5, "light-2": 5}
    assert planned["duration"].between(0.01, 0.02).all()
    assert (planned["fail_rate"] == 0.1).all()
    assert load.LogNormal(median=0.05).sample(np.random.default_rng(0), 2000).mean() > 0.05  # a right tail
    assert load.Exponential(mean=0.02).sample(np.random.default_rng(0), 5000).mean() == pytest.approx(0.02, rel=0.1)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: load.Constant(rate=0, seconds=1), "rate must be a finite number > 0"),
        (lambda: load.Poisson(rate=5, seconds=float("inf")), "seconds must be a finite number"),
        (lambda: load.Burst(0), "jobs must be a whole number >= 1"),
        (lambda: load.Ramp(0, 0, 5), "start_rate or end_rate"),
        (lambda: load.Uniform(2, 1), "high (1) must be >= low (2)"),
        (lambda: load.Tenant(user_id="a", shape=load.Burst(1), fail_rate=1.5), "fail_rate must be a probability"),
        (lambda: load.Tenant(user_id="", shape=load.Burst(1)), "user_id"),
        (lambda: load.plan("lots"), "load must be a shape"),  # type: ignore[arg-type]
    ],
)
def test_bad_load_parameters_name_the_problem(build: Callable[[], object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(").replace(")", r"\)")):
        build()


# -- experiments -------------------------------------------------------------------------------


def test_a_sampler_tick_appends_one_sample_taken_at_the_given_time(queue: Queue) -> None:
    pool = queue.worker(2)  # not started: the sampler only reads its size
    sampler = experiment.Sampler(queue, "lab-t", pool, every=1.0, origin=1000.0)
    jobs = [queue.submit("simulate", queue="lab-t") for _ in range(3)]
    queue.submit("simulate")  # another queue: not the experiment's
    sampler.tick(1012.5, 0.0)
    assert sampler.rows == [
        {"time": 12.5, "workers": 2.0, "pending": 3.0, "running": 0.0, "completed": 0.0, "failed": 0.0}
    ]
    assert sampler.finished == 0
    queue.cancel(jobs[0].id)
    sampler.tick(1013.0, 0.0)
    assert [(row["time"], row["pending"]) for row in sampler.rows] == [(12.5, 3.0), (13.0, 2.0)]
    assert sampler.finished == 1  # a cancelled job is finished
    assert sampler.wait_finished(1, timeout=0)
    assert list(sampler.frame().columns) == ["time", "pending", "running", "completed", "failed", "workers"]


def test_a_sampler_samples_at_start_and_at_stop(queue: Queue) -> None:
    sampler = experiment.Sampler(queue, "lab-t", queue.worker(1), every=3600.0, origin=queue.clock.now())
    sampler.start()
    assert [row["time"] for row in sampler.rows] == [0.0]  # time zero, before the thread's first tick
    sampler.stop()
    assert not sampler.alive
    assert len(sampler.rows) == 2  # and the final state


def test_an_experiment_runs_every_job_and_times_it(db_url: str) -> None:
    with Queue(db_url) as q:
        result = lab.run_experiment(q, load.Constant(rate=100, seconds=1), workers=2, progress=False)
    frame, s = result.timeline, result.summary
    assert len(frame) == 100 == s["jobs"] == s["completed"]
    assert (frame["status"] == "COMPLETED").all()
    assert (frame["queue"] == result.params["queue"]).all()
    assert (frame["started"] >= frame["submitted"]).all()
    assert (frame["finished"] >= frame["started"]).all()
    assert (frame["wait"] >= 0).all()
    assert frame["worker"].notna().all()
    # submitted on schedule: no job is stored before its planned time, and the schedule is
    # kept from the timeline's origin: some job went in on time (a stall of the machine
    # makes the jobs due during it late, then the feeder catches up), where a clock started
    # apart from the origin made every job late by the gap (0.57 s once in CI)
    lag = frame["submitted"] - frame["planned"]
    assert (lag > -0.05).all()
    assert lag.min() < 0.25, lag.describe()
    assert 0 < s["wait_p50"] <= s["wait_p95"] <= s["wait_p99"] <= s["wait_max"]
    assert s["throughput"] > 0
    assert s["retries"] == 0
    assert s["failed"] == 0
    assert not s["timed_out"]
    samples = result.samples
    assert samples["time"].is_monotonic_increasing
    assert samples.iloc[-1]["completed"] == 100
    assert (samples["workers"] == 2).all()


def test_failures_are_retried_then_dead_lettered(db_url: str) -> None:
    with Queue(db_url, retry_base_seconds=0.01) as q:
        result = lab.run_experiment(
            q, lab_tenant(fail_rate=1.0, jobs=20), workers=2, max_retries=2, progress=False, name="always fails"
        )
        by_error = frames.dlq_by_error(q, queue=result.params["queue"])
    s = result.summary
    assert s["failed"] == 20
    assert s["completed"] == 0
    assert s["retries"] == 40
    assert (result.timeline["attempts"] == 3).all()
    assert by_error[["error_type", "jobs"]].to_dict("records") == [{"error_type": "SimulatedFailure", "jobs": 20}]
    assert "fail_rate=1" in by_error["example"].iloc[0]
    assert result.name == "always fails"


def lab_tenant(*, fail_rate: float, jobs: int) -> load.Tenant:
    return load.Tenant(user_id="u", shape=load.Burst(jobs), fail_rate=fail_rate)


def test_refused_arrivals_are_counted_and_store_nothing(sqlite_url: str) -> None:
    with Queue(sqlite_url) as q:
        q.set_limits("*", rate_limit="5/minute")
        mix = [
            load.Tenant(user_id="heavy", shape=load.Constant(rate=40, seconds=0.5)),
            load.Tenant(user_id="light", shape=load.Constant(rate=6, seconds=0.5)),
        ]
        result = lab.run_experiment(q, mix, workers=2, progress=False)
        stored = q.jobs(queue=result.params["queue"], limit=1000)
    users = result.per_user.set_index("user_id")
    assert users.loc["heavy", "jobs"] == 20
    assert users.loc["heavy", "completed"] == 5
    assert users.loc["light", "jobs"] == 3
    assert users.loc["light", "completed"] == 3
    assert result.summary["refused"] == 15
    assert len(stored) == 8
    refused = result.timeline[result.timeline["status"] == "REFUSED"]
    assert refused["job_id"].isna().all()
    assert (refused["user_id"] == "heavy").all()


def test_a_burst_is_fed_in_few_transactions(sqlite_url: str) -> None:
    """Arrivals due together go in chunks of 5,000 (the bench's): fed 500 at a time, a
    burst's transactions competed with the workers' turns and the feeder bounded the drain."""
    jobs = 10_007
    with Queue(sqlite_url) as q:
        sizes: list[int] = []
        submit_many = q.submit_many

        def counted(submissions: list[Submission]) -> list[Job]:
            sizes.append(len(submissions))
            return submit_many(submissions)

        q.submit_many = counted  # type: ignore[method-assign,assignment]
        feeder = experiment.Feeder(q, "lab-fed", load.plan(load.Burst(jobs)), None)
        assert feeder.run(time.monotonic(), time.monotonic() + 600, lambda: None)
        assert sizes == [5000, 5000, 7]
        assert feeder.submitted == jobs == q.stats().by_status["PENDING"]


def test_fair_scheduling_shows_in_per_user_waits(sqlite_url: str) -> None:
    mix = load.heavy_and_light(
        heavy=1, heavy_shape=load.Burst(300), light=2, light_shape=load.Burst(5, at=0.05), duration=0.002
    )
    result = lab.run_experiment(sqlite_url, mix, workers=1, progress=False)
    users = result.per_user.set_index("user_id")
    assert users["completed"].sum() == 310
    # the light users' jobs start long before the heavy user's backlog drains
    assert users.loc["light-0", "last_start"] < users.loc["heavy-0", "last_start"] / 2
    assert users.loc["light-1", "wait_p95"] < users.loc["heavy-0", "wait_p95"]


def test_process_pools_run_experiments(sqlite_url: str) -> None:
    # Jobs of 50 ms: a worker claims about that much ahead, one job beyond its slot, so the
    # second process finds work left (a burst of instant jobs may all go to the first).
    burst = load.Tenant(user_id="default", shape=load.Burst(40), duration=0.05)
    result = lab.run_experiment(sqlite_url, burst, workers=2, mode="process", progress=False)
    assert result.summary["completed"] == 40
    assert result.params["mode"] == "process"
    assert result.timeline["worker"].nunique() == 2  # both processes took jobs


def test_a_sweep_is_one_tidy_frame(sqlite_url: str) -> None:
    frame = lab.sweep({"workers": [1, 2]}, repeat=2, db=sqlite_url, load=load.Burst(30), progress=False)
    assert list(frame["workers"]) == [1, 1, 2, 2]
    assert list(frame["repeat"]) == [0, 1, 0, 1]
    assert (frame["completed"] == 30).all()
    assert (frame["throughput"] > 0).all()
    assert {"backend", "mode", "wait_p95"} <= set(frame.columns)
    with pytest.raises(InvalidArgument, match="grid must map"):
        lab.sweep({"workers": 4}, db=sqlite_url, load=load.Burst(1))  # type: ignore[dict-item]


def test_bad_experiment_arguments_store_nothing(sqlite_url: str) -> None:
    with pytest.raises(InvalidArgument, match="concurrency"):
        lab.run_experiment(sqlite_url, load.Burst(5), workers=0)
    with pytest.raises(InvalidArgument, match="load must be"):
        lab.run_experiment(sqlite_url, 12)  # type: ignore[arg-type]


# -- frames and plots from a real run -------------------------------------------------------


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory: pytest.TempPathFactory) -> lab.ExperimentResult:
    url = f"sqlite:///{tmp_path_factory.mktemp('lab') / 'plots.db'}"
    with Queue(url, retry_base_seconds=0.01) as q:
        mix = load.heavy_and_light(
            heavy=1,
            heavy_shape=load.Poisson(rate=150, seconds=1),
            light=3,
            light_shape=load.Constant(rate=10, seconds=1),
            duration=load.Exponential(0.002),
            fail_rate=0.3,
        )
        return lab.run_experiment(q, mix, workers=3, max_retries=1, progress=False)


def test_stats_frames_from_a_run(mixed_run: lab.ExperimentResult) -> None:
    frame = mixed_run.timeline
    per_second = frames.throughput(frame)
    assert per_second["completed"].sum() == mixed_run.summary["completed"]
    assert per_second["failed"].sum() == mixed_run.summary["failed"] > 0
    waits = frames.wait_percentiles(frame, by="user_id")
    assert set(waits["user_id"]) == {"heavy-0", "light-0", "light-1", "light-2"}
    assert (waits["p50"] <= waits["p95"]).all()
    assert (waits["p95"] <= waits["max"]).all()
    assert mixed_run.per_user["jobs"].sum() == len(frame)


def _plotted(fig: Figure) -> None:
    for ax in fig.axes:
        assert ax.get_xlabel() or ax.get_ylabel() or ax.get_title(), "every axes is labelled"
    main = fig.axes[0]
    assert main.get_xlabel()
    assert main.get_ylabel()
    assert any(np.size(line.get_xdata()) > 1 for line in main.lines) or main.patches or main.collections


def test_every_plot_draws_a_real_run(mixed_run: lab.ExperimentResult, tmp_path: Path) -> None:
    frame = mixed_run.timeline
    figures = {
        "throughput": plots.throughput(frame),
        "wait_cdf": plots.wait_cdf(frame, by="user_id"),
        "retries": plots.retries_histogram(frame),
        "dlq": plots.dlq_growth(frame),
        "users": plots.user_waits(frame),
        "workers": plots.workers_over_time(mixed_run.samples),
    }
    for name, fig in figures.items():
        _plotted(fig)
        fig.savefig(tmp_path / f"{name}.png")
    bars = [bar for bar in figures["retries"].axes[0].patches if isinstance(bar, Rectangle)]
    assert sum(p.get_height() for p in bars) == (frame["attempts"] > 0).sum()
    cdf = figures["wait_cdf"].axes[0]
    assert len(cdf.lines) == 4
    assert all(np.asarray(line.get_ydata())[-1] == pytest.approx(1.0) for line in cdf.lines)


def test_throughput_against_workers_plots_a_sweep(sqlite_url: str) -> None:
    frame = lab.sweep({"workers": [1, 2], "mode": ["thread"]}, db=sqlite_url, load=load.Burst(20), progress=False)
    fig = plots.throughput_vs_workers(frame)
    _plotted(fig)
    (line,) = fig.axes[0].lines
    assert np.asarray(line.get_xdata()).tolist() == [1, 2]
    assert line.get_label() == "sqlite thread"
    with pytest.raises(InvalidArgument, match="missing"):
        plots.throughput_vs_workers(frame.drop(columns=["throughput"]))


def test_an_autoscaled_experiment_grows_its_pool_within_bounds(sqlite_url: str) -> None:
    from queuelab.runtime.autoscale import ScalePolicy

    policy = ScalePolicy(min_workers=1, max_workers=4, scale_up_backlog=5, cooldown_seconds=0.0, idle_seconds=60)
    burst = load.Tenant(user_id="u", shape=load.Burst(300), duration=0.01)
    result = lab.run_experiment(sqlite_url, burst, autoscale=policy, tick_seconds=0.1, progress=False)
    sizes = result.samples["workers"]
    assert result.summary["completed"] == 300
    assert sizes.iloc[0] == 1
    assert sizes.max() == 4  # it scaled up to the maximum, and never past it
    assert sizes.min() >= 1
    assert result.params["autoscale"] == "1:4"


def test_an_experiment_can_prefetch(sqlite_url: str) -> None:
    slow = load.Tenant(user_id="u", shape=load.Burst(40), duration=0.05)
    peaks = {}
    for prefetch in (0, 10):
        result = lab.run_experiment(
            sqlite_url, slow, workers=2, mode="process", prefetch=prefetch, sample_every=0.05, progress=False
        )
        assert result.summary["completed"] == 40
        assert result.params["prefetch"] == result.summary["prefetch"] == prefetch
        peaks[prefetch] = result.samples["running"].max()
    assert peaks[0] <= 2  # one job per worker process
    assert peaks[10] > 2  # each process holds up to 1 + 10: prefetched jobs are RUNNING
    with pytest.raises(InvalidArgument, match='prefetch must be "auto", a whole number'):
        lab.run_experiment(sqlite_url, load.Burst(5), prefetch=-1)


@pytest.mark.parametrize(
    ("finished", "width"),
    [
        ([0.30, 0.31, 0.35, 0.52, 0.80], 0.02),  # a sub-second run: 0.5 s of finishes in 20+ bins
        ([5.0], 0.001),  # a single finish: one bin, drawn to its end
        (list(np.linspace(0.0, 90.0, 50)), 1.0),  # a long run: per second
    ],
)
def test_the_throughput_plot_sizes_its_bins_to_the_run(finished: list[float], width: float) -> None:
    frame = pd.DataFrame({"status": ["COMPLETED"] * len(finished), "finished": finished})
    assert frames.bin_seconds(frame) == width
    fig = plots.throughput(frame)
    _plotted(fig)
    (line,) = fig.axes[0].lines
    xs, ys = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
    assert xs[-1] - xs[0] == pytest.approx(
        (np.floor(max(finished) / width) - np.floor(min(finished) / width) + 1) * width
    )
    # the rates drawn add up to every finish: each bin's count is its rate times its width
    assert ys[:-1].sum() * width == pytest.approx(len(finished))


def test_the_lab_and_the_bench_compute_one_drain_rate_on_a_shared_run(sqlite_url: str) -> None:
    """The lab's ``drain_rate`` and the bench's drain figure are one quantity (completed jobs
    over first start to last finish, from the stored times): on the same run they agree to
    the float, so figures from the two can be set side by side."""
    from queuelab.bench.harness import drain_rate_of

    with Queue(sqlite_url) as q:
        result = lab.run_experiment(q, load.Burst(300), workers=2, progress=False)
        assert result.summary["completed"] == 300
        assert result.summary["drain_rate"] == pytest.approx(drain_rate_of(q, 300), rel=1e-9)
        # the lab's throughput also counts the wait before the first start: never above it
        assert result.summary["throughput"] <= result.summary["drain_rate"]
