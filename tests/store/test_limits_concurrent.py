"""Per-user limits hold exactly under concurrent submitters: N real processes (each with its
own connections) submit as one user at once, each also from several threads, and exactly K
are admitted by a rate limit of K per window and by an active cap of K, on each database."""

from __future__ import annotations

import multiprocessing as mp
import threading
from typing import Any

import pytest

from queuelab import Queue, QuotaExceeded, RateLimited
from queuelab.errors import QueuelabError

pytestmark = pytest.mark.slow

PROCESSES, THREADS, TRIES = 4, 3, 8  # 96 submits for K = 10
K = 10


def _submitter(url: str, start: Any, results: Any) -> None:
    """One process: THREADS threads, each TRIES submits as user "u"; put (admitted, refused)."""
    q = Queue(url)
    q.open()  # the connection and the schema, before the common start
    counts = {"admitted": 0, "refused": 0}
    lock = threading.Lock()

    def run() -> None:
        for _ in range(TRIES):
            try:
                q.submit("simulate", user_id="u")
                outcome = "admitted"
            except (RateLimited, QuotaExceeded):
                outcome = "refused"
            with lock:
                counts[outcome] += 1

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    start.wait(60)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    q.close()
    results.put((counts["admitted"], counts["refused"]))


def submit_from_processes(url: str) -> tuple[int, int]:
    ctx = mp.get_context("spawn")
    start, results = ctx.Barrier(PROCESSES), ctx.SimpleQueue()
    procs = [ctx.Process(target=_submitter, args=(url, start, results)) for _ in range(PROCESSES)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0, f"a submitter process exited with {proc.exitcode}"
    found = [results.get() for _ in procs]
    return sum(a for a, _ in found), sum(r for _, r in found)


@pytest.mark.parametrize("limit", ["rate_limit", "max_active"])
def test_n_processes_submitting_as_one_user_are_admitted_exactly_k(db_url: str, limit: str) -> None:
    with Queue(db_url) as q:
        if limit == "rate_limit":
            q.set_limits("u", rate_limit=f"{K}/hour")  # nothing leaves the window during the test
        else:
            q.set_limits("u", max_active=K)  # no worker runs: every admitted job stays active
    admitted, refused = submit_from_processes(db_url)
    assert (admitted, refused) == (K, PROCESSES * THREADS * TRIES - K)
    with Queue(db_url) as q:
        assert q.stats().by_status["PENDING"] == K
        with pytest.raises(QueuelabError):  # and the limit still holds afterwards
            q.submit("simulate", user_id="u")
