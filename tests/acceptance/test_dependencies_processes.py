"""Dependencies under real worker processes: diamonds (top -> left, right -> bottom) run in
order by 4 worker processes: no job starts before each of its parents has finished, as
the database recorded it. Both databases."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from queuelab import JobStatus, Queue, Submission

DIAMONDS = 6
LONG = 180.0


@pytest.mark.slow
def test_diamonds_run_in_order_under_four_worker_processes(make_queue: Callable[..., Queue]) -> None:
    q = make_queue()
    edges: list[tuple[str, str]] = []  # (parent, child) as submissions, resolved to ids below
    batch: list[Submission] = []
    for _ in range(DIAMONDS):
        top = Submission(task="simulate", payload={"duration": 0.05})
        left = Submission(task="simulate", payload={"duration": 0.02}, after=[top])
        right = Submission(task="simulate", payload={"duration": 0.08}, after=[top])
        bottom = Submission(task="simulate", payload={"duration": 0}, after=[left, right])
        batch += [bottom, right, left, top]  # children first: the order of the batch does not matter
    jobs = q.submit_many(batch)
    by_submission = {id(sub): job.id for sub, job in zip(batch, jobs, strict=True)}
    for sub in batch:
        edges += [(by_submission[id(parent)], by_submission[id(sub)]) for parent in sub.after]
    with q.worker(4, "process"):
        finished = {job.id: q.wait(job, timeout=LONG) for job in jobs}
    assert {job.status for job in finished.values()} == {JobStatus.COMPLETED}
    for parent, child in edges:
        parent_done, child_started = finished[parent].finished_at, finished[child].started_at
        assert parent_done is not None
        assert child_started is not None
        assert child_started >= parent_done, f"job {child} started before its parent {parent} finished"
    assert len(edges) == 4 * DIAMONDS
