"""The registry: every scenario by name, in run order, and the ``--suite`` groups of the
first bench (kept so old command lines still work)."""

from __future__ import annotations

from collections.abc import Callable

from queuelab.bench import api, churn, core, crash, fairness, growth, io_bound
from queuelab.bench.floor import floor_scenario
from queuelab.bench.peers.scenario import peers
from queuelab.bench.plan import Context
from queuelab.bench.results import Finding
from queuelab.errors import InvalidArgument

Scenario = Callable[[Context, str], list[Finding]]

SCENARIOS: dict[str, tuple[Scenario, str]] = {
    "floor": (floor_scenario, "the raw SQL floor: insert, claim, ack, worker turns; always run"),
    "enqueue": (core.enqueue, "one call per job (1 caller, 4 threads, 4 processes) and bulk"),
    "drain": (core.drain, "pre-enqueued no-op jobs with 1, 2, 4, 8 slot threads or worker processes"),
    "latency": (core.latency, "submit-to-start p50/p95/p99 with an idle worker"),
    "growth": (growth.growth, "drain and worker memory against a long history; memory over a long run"),
    "churn": (churn.churn, "500,000 jobs through submit, run, prune: dead tuples, sizes, claim p50 over time"),
    "fairness": (fairness.fairness, "100 users, running quota: throughput and light users' p95 wait"),
    "crash": (crash.crash, "SIGKILL a worker mid-job: time until the job runs again"),
    "api": (api.api, "POST /api/submit/: submissions per second, p50/p99 at a fixed rate"),
    "limits": (core.limits, "the cost of a submission under the SQL (and Redis) rate limiter"),
    "io": (io_bound.io_bound, "I/O-bound jobs (50 ms waits): async tasks on the event loop against 8 and 32 threads"),
    "peers": (peers, "huey (SQLite) and pgqueuer (PostgreSQL) beside queuelab, same job body, each's defaults"),
}
SUITES: dict[str, tuple[str, ...]] = {
    "core": ("enqueue", "drain", "latency"),
    "limits": ("fairness", "limits"),
    "api": ("api",),
    "peers": ("peers",),
    "all": tuple(SCENARIOS),
}


def select(suite: str, names: str | None) -> list[str]:
    """The scenarios to run, in registry order; ``names`` (comma-separated) wins over
    ``suite``. The floor always runs: every throughput is shown against it."""
    if names is None:
        wanted = set(SUITES[suite])
    else:
        wanted = {n.strip() for n in names.split(",") if n.strip()}
        unknown = sorted(wanted - set(SCENARIOS))
        if unknown or not wanted:
            raise InvalidArgument(
                f"--scenarios must be a comma-separated list of {', '.join(SCENARIOS)}; got {names!r}"
            )
    return [name for name in SCENARIOS if name in wanted or name == "floor"]


def run(name: str, ctx: Context, kind: str) -> list[Finding]:
    return SCENARIOS[name][0](ctx, kind)
