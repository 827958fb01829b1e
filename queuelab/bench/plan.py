"""How big a run is (:class:`Sizes`, full or ``--quick``) and what every scenario gets
(:class:`Context`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

# What each size means, for the "quick mode shrank ..." notes.
_MEANING = {
    "jobs": "jobs per enqueue, prefetch-0 drain and fairness run",
    "drain_jobs": "jobs per drain of the scaling curves (1 to 8 workers, defaults)",
    "floor_jobs": "jobs per one-per-transaction floor step (three rounds)",
    "bulk_jobs": "jobs per bulk enqueue and batched floor step",
    "workers": "worker counts of the drain",
    "latency_jobs": "jobs per latency run",
    "history_rows": "finished jobs in the growth table",
    "growth_jobs": "jobs per growth drain",
    "long_run_jobs": "jobs queued for the long-run memory test",
    "long_run_seconds": "longest the long-run memory test works",
    "crash_trials": "SIGKILLs per crash-recovery run",
    "api_seconds": "seconds per API measurement",
    "api_rate": "API requests per second in the latency measurement",
    "peer_jobs": "jobs per enqueue and drain in the peer comparison",
    "churn_jobs": "jobs through submit, run and prune in the churn run",
}


@dataclass(frozen=True, slots=True)
class Sizes:
    jobs: int = 2000
    # The scaling curves' drains: at 20,000-40,000 jobs/s a drain of 2,000 lasted 0.05-0.1 s,
    # in which a worker's first turns and a thread switch decide the figure (2 slot threads
    # on SQLite: 28,880 / 15,519 / 17,170 jobs/s in three runs of one sitting).
    drain_jobs: int = 20_000
    floor_jobs: int = 3000
    bulk_jobs: int = 20_000
    workers: tuple[int, ...] = (1, 2, 4, 8)
    latency_jobs: int = 200
    latency_rate: float = 25.0  # submissions per second: 40 ms apart, so the worker is idle
    history_rows: int = 1_000_000
    growth_jobs: int = 2000
    long_run_jobs: int = 30_000
    long_run_seconds: float = 45.0
    crash_trials: int = 3
    api_seconds: float = 5.0
    api_rate: float = 100.0  # well under one server process's capacity here: latency, not a backlog
    peer_jobs: int = 5000
    churn_jobs: int = 500_000

    @classmethod
    def full(cls, jobs: int | None = None) -> Sizes:
        if jobs is None:
            return cls()
        return cls(jobs=jobs, drain_jobs=jobs, floor_jobs=jobs, bulk_jobs=10 * jobs, growth_jobs=jobs)

    @classmethod
    def quick(cls, jobs: int | None = None) -> Sizes:
        n = 150 if jobs is None else jobs
        return cls(
            jobs=n,
            drain_jobs=n,
            floor_jobs=4 * n,
            bulk_jobs=10 * n,
            workers=(1, 2, 4, 8),
            latency_jobs=30,
            history_rows=20_000,
            growth_jobs=n,
            long_run_jobs=1500,
            long_run_seconds=6.0,
            crash_trials=1,
            api_seconds=1.0,
            api_rate=50.0,
            peer_jobs=300,
            churn_jobs=20_000,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def shrunk(small: Sizes, big: Sizes) -> list[str]:
    """One line per size that ``small`` cuts down from ``big``."""
    return [
        f"{_MEANING[f.name]}: {_show(getattr(big, f.name))} -> {_show(getattr(small, f.name))}"
        for f in fields(Sizes)
        if getattr(small, f.name) != getattr(big, f.name)
    ]


def _show(value: object) -> str:
    if isinstance(value, tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


@dataclass(frozen=True, slots=True)
class Context:
    """What every scenario gets: the sizes and the servers."""

    sizes: Sizes
    postgres_url: str | None = None
    redis_url: str | None = None
    quick: bool = False

    def with_sizes(self, **changes: Any) -> Context:
        return replace(self, sizes=replace(self.sizes, **changes))
