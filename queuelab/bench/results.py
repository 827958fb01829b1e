"""The values a benchmark run produces: one :class:`Result` per figure, a :class:`Series`
per sampled curve, and the case labels the targets refer to."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from queuelab.errors import QueuelabError

SQLITE = "sqlite"
POSTGRES = "postgresql"


class BenchError(QueuelabError):
    """A benchmark scenario could not complete."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """One measured figure.

    ``key`` names a raw-floor measurement; ``floor_key`` names the floor a throughput is
    compared with (same database, same run)."""

    database: str
    scenario: str
    case: str
    metric: str  # throughput, p50, p95, p99, rss, ratio, ...
    value: float
    unit: str
    mode: str = ""  # thread | process | "" (not a worker pool)
    workers: int = 0
    jobs: int = 0
    floor_key: str = ""
    key: str = ""
    samples: tuple[float, ...] = ()  # a floor's figure per round; its value is their median


@dataclass(frozen=True, slots=True)
class Series:
    """A sampled curve (a worker's RSS over a long run), for the JSON file and the plots."""

    database: str
    name: str
    x_label: str
    y_label: str
    points: tuple[tuple[float, float], ...]


Finding = Result | Series

# Case labels shared by the scenarios and the targets.
ENQUEUE_ONE = "one call per job, 1 caller"
ENQUEUE_BULK = "bulk: submit_many of 1,000"
GROWTH_RATIO = "drain rate over its floor: with history / empty"
LONG_RUN_RSS = "worker RSS change over a long run"


# The drain runs on the defaults (the prefetch on auto) and again with one or two worker
# processes that claim only for a free slot (prefetch 0): what the defaults buy.
DRAIN_PREFETCH = 0


def drain_case(workers: int, mode: str, prefetch: int | None = None) -> str:
    extra = "" if prefetch is None else f", prefetch {prefetch}"
    if mode == "process":
        return f"{workers} worker process{'es' if workers > 1 else ''}{extra}"
    return f"{workers} slot thread{'s' if workers > 1 else ''} in 1 process{extra}"


def latency_case(mode: str) -> str:
    return "idle worker: 1 worker process" if mode == "process" else "idle worker: 1 slot thread"


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0..100) of a non-empty sample."""
    if not values:
        raise BenchError(f"no samples to take the p{p:g} of")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def per_second(count: int, seconds: float) -> float:
    if seconds <= 0:
        raise BenchError(f"{count} operations took {seconds:.6f}s: the clock did not move")
    return count / seconds
