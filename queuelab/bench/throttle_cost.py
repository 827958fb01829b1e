"""What an execution throttle adds to a claim, measured in one run on each database.

Three queues on fresh databases, each with the same backlog of no-op jobs, claimed from
in turns (rounds of ``per_round`` claims each, so drift on a shared machine hits all three
alike): ``none`` (no throttle: the claim as before), ``other`` (a throttle on another task,
with room: counted, capping the claim, never matching), ``matching`` (a throttle on the
claimed task with room to spare: counted, and a start recorded per job taken).

    python -m queuelab.bench.throttle_cost [--postgres URL] [--claims 1500] [--batch 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from contextlib import ExitStack

from queuelab import Queue
from queuelab.bench.harness import enqueue_noop, fresh_queue
from queuelab.bench.results import POSTGRES, SQLITE
from queuelab.store.leases import LeaseStore

VARIANTS = ("none", "other", "matching")
ROOMY = "1000000/minute"  # never full: the cost of the bookkeeping, not of waiting


def _prepare(q: Queue, variant: str, backlog: int) -> None:
    enqueue_noop(q, backlog)
    if variant == "other":
        q.set_throttle(ROOMY, task="another_task")
    elif variant == "matching":
        q.set_throttle(ROOMY, task="simulate")


def _claim_micros(q: Queue, batch: int) -> float:
    leases = LeaseStore(q.database)
    start = time.perf_counter()
    taken = leases.claim("bench", None, batch, q.clock.now())
    elapsed = time.perf_counter() - start
    assert len(taken) == batch, "the backlog ran out"
    return elapsed * 1e6


def measure(kind: str, postgres_url: str | None, claims: int, batch: int, per_round: int = 50) -> dict[str, float]:
    """Median microseconds per claim of ``batch`` jobs, by variant."""
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    with ExitStack() as stack:
        queues = {v: stack.enter_context(fresh_queue(kind, postgres_url)) for v in VARIANTS}
        for variant, q in queues.items():
            _prepare(q, variant, (claims + 40) * batch)
            for _ in range(20):  # warm up: statements compiled, caches filled
                _claim_micros(q, batch)
        for _ in range(claims // per_round):
            for variant, q in queues.items():
                times[variant] += [_claim_micros(q, batch) for _ in range(per_round)]
    return {v: statistics.median(t) for v, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=os.environ.get("QUEUELAB_TEST_POSTGRES_URL"))
    parser.add_argument("--claims", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()
    kinds = [SQLITE] + ([POSTGRES] if args.postgres else [])
    print(f"median µs per claim of {args.batch} job(s), {args.claims} claims per variant")
    for kind in kinds:
        found = measure(kind, args.postgres, args.claims, args.batch)
        base = found["none"]
        row = ", ".join(f"{v} {us:.0f} µs ({us / base:.2f}x)" for v, us in found.items())
        print(f"{kind}: {row}")


if __name__ == "__main__":
    main()
