"""The targets of issue #15 (speed on the defaults), matched to the rows that measure
them: ratios to the peers measured in the same run (scenario "peers"), a fraction of the
raw floor, latencies, and the growth targets of issue #7."""

from __future__ import annotations

from dataclasses import dataclass

from queuelab.bench.api import CLIENTS
from queuelab.bench.peers.scenario import QUEUELAB_DRAINS
from queuelab.bench.results import (
    ENQUEUE_ONE,
    GROWTH_RATIO,
    LONG_RUN_RSS,
    POSTGRES,
    SQLITE,
    Result,
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
    of_floor: bool = False  # the bound is on the value's fraction of its raw floor

    def text(self) -> str:
        bound = f"{self.bound:,.0f}" if self.bound >= 100 else f"{self.bound:g}"
        return f"{'>=' if self.at_least else '<='} {bound} {self.unit}"

    def met(self, value: float) -> bool:
        return value >= self.bound if self.at_least else value <= self.bound


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


def _peer(database: str, peer: str, case: str, bound: float, note: str) -> Target:
    return Target(database, "peers", f"queuelab / {peer}: {case}", "ratio", bound, True, "x", note)


DEFAULT_DRAIN = QUEUELAB_DRAINS[0][0]
API = f"POST /api/submit/, {CLIENTS} clients (wrk), 1 server process"
HUEY = "huey's default consumer, same run"
PGQUEUER = "pgqueuer's default worker, same run"

TARGETS: tuple[Target, ...] = (
    _peer(SQLITE, "huey", DEFAULT_DRAIN, 5, HUEY + " (1 worker thread)"),
    _peer(SQLITE, "huey", "enqueue, one call per job", 3, HUEY),
    *_latency(SQLITE, "p50", 2, "huey polls: p50 54 ms"),
    *_latency(SQLITE, "p99", 15, ""),
    _peer(POSTGRES, "pgqueuer", DEFAULT_DRAIN, 2, PGQUEUER + " (1 process)"),
    _peer(POSTGRES, "pgqueuer", "drain, 2 worker processes", 2, PGQUEUER),
    _peer(POSTGRES, "pgqueuer", "enqueue, bulk of 1,000", 2, PGQUEUER),
    Target(POSTGRES, "enqueue", ENQUEUE_ONE, "throughput", 0.8, True, "x floor", "commit-bound", of_floor=True),
    *_latency(POSTGRES, "p50", 2, "pgqueuer p50 2.8 ms"),
    Target(SQLITE, "api", API, "throughput", 3000, True, "jobs/s", "a bare FastAPI endpoint: 7,060/s"),
    Target(POSTGRES, "api", API, "throughput", 2500, True, "jobs/s", "a bare FastAPI endpoint: 7,060/s"),
    *(Target(db, "api", API, "p99", 15, False, "ms") for db in (SQLITE, POSTGRES)),
    *_growth(SQLITE),
    *_growth(POSTGRES),
)

_BY_ROW = {(t.database, t.scenario, t.case, t.metric): t for t in TARGETS}


def target_for(result: Result) -> Target | None:
    return _BY_ROW.get((result.database, result.scenario, result.case, result.metric))
