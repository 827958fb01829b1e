"""The targets of issue #7 and the peers' figures measured on this machine, matched to
the rows that measure them."""

from __future__ import annotations

from dataclasses import dataclass

from queuelab.bench.results import (
    DRAIN_PREFETCH,
    ENQUEUE_BULK,
    ENQUEUE_ONE,
    GROWTH_RATIO,
    LONG_RUN_RSS,
    POSTGRES,
    SQLITE,
    Result,
    drain_case,
    latency_case,
)


@dataclass(frozen=True, slots=True)
class Target:
    database: str
    scenario: str
    case: str
    metric: str
    bound: float
    at_least: bool  # True: the value must be >= bound; False: <= bound
    unit: str
    peers: str = ""

    def text(self) -> str:
        bound = f"{self.bound:,.0f}" if self.bound >= 100 else f"{self.bound:g}"
        return f"{'>=' if self.at_least else '<='} {bound} {self.unit}"

    def met(self, value: float) -> bool:
        return value >= self.bound if self.at_least else value <= self.bound


HUEY_LATENCY = "huey p50 58 ms (it polls)"
PG_DRAIN_PEERS = "pgqueuer 2,650/s, oban-py 750/s, procrastinate 210/s; raw batched claims 18,000/s"


def _latency(database: str, metric: str, bound: float, peers: str) -> tuple[Target, ...]:
    return tuple(
        Target(database, "latency", latency_case(mode), metric, bound, False, "ms", peers)
        for mode in ("thread", "process")
    )


def _growth(database: str) -> tuple[Target, ...]:
    return (
        Target(database, "growth", GROWTH_RATIO, "ratio", 0.9, True, "x", "no peer reports it"),
        Target(database, "growth", LONG_RUN_RSS, "rss_change", 10.0, False, "%", "no peer reports it"),
    )


TARGETS: tuple[Target, ...] = (
    Target(SQLITE, "enqueue", ENQUEUE_ONE, "throughput", 8000, True, "jobs/s", "huey SqliteHuey 2,700/s"),
    *(
        Target(
            SQLITE,
            "drain",
            drain_case(1, "process", prefetch),
            "throughput",
            10_000,
            True,
            "jobs/s",
            "huey 1,800/s; raw sqlite3 1 job/txn 6,800/s, 100/txn 53,000/s",
        )
        for prefetch in (0, DRAIN_PREFETCH)
    ),
    *_latency(SQLITE, "p50", 3, HUEY_LATENCY),
    *_latency(SQLITE, "p99", 15, ""),
    Target(
        POSTGRES,
        "enqueue",
        ENQUEUE_ONE,
        "throughput",
        2000,
        True,
        "jobs/s",
        "pgqueuer 1,160/s, oban-py 720/s, procrastinate 310/s",
    ),
    Target(POSTGRES, "enqueue", ENQUEUE_BULK, "throughput", 40_000, True, "jobs/s", "pgqueuer 24,000/s"),
    *(
        Target(
            POSTGRES,
            "drain",
            drain_case(workers, "process", prefetch),
            "throughput",
            6000,
            True,
            "jobs/s",
            PG_DRAIN_PEERS,
        )
        for prefetch in (0, DRAIN_PREFETCH)
        for workers in (1, 2)
    ),
    *_latency(POSTGRES, "p50", 3, "LISTEN/NOTIFY peers: a few ms"),
    *_growth(SQLITE),
    *_growth(POSTGRES),
)

_BY_ROW = {(t.database, t.scenario, t.case, t.metric): t for t in TARGETS}


def target_for(result: Result) -> Target | None:
    return _BY_ROW.get((result.database, result.scenario, result.case, result.metric))
