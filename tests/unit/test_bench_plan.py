"""The bench's sizes: what ``--jobs`` and ``--quick`` change."""

from queuelab.bench.plan import Sizes, shrunk


def test_the_scaling_drains_are_ten_times_the_other_runs_by_default() -> None:
    # A drain of 2,000 jobs lasted 0.05-0.1 s, too short for a scaling curve.
    sizes = Sizes.full()
    assert (sizes.jobs, sizes.drain_jobs) == (2000, 20_000)


def test_jobs_sets_the_drains_as_well() -> None:
    sizes = Sizes.full(500)
    assert (sizes.jobs, sizes.drain_jobs) == (500, 500)


def test_quick_drains_as_many_jobs_as_it_enqueues_and_says_it_shrank_the_drain() -> None:
    quick = Sizes.quick()
    assert quick.drain_jobs == quick.jobs == 150
    assert "jobs per drain of the scaling curves (1 to 8 workers, defaults): 20,000 -> 150" in shrunk(
        quick, Sizes.full()
    )
