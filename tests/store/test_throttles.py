"""Execution throttles at claim time, on each database, with an injected clock: at most N
starts per sliding window of a task, queue or user; throttled jobs stay PENDING, spend no
attempt, and do not hold up the jobs behind them."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa

from queuelab import FakeClock, JobStatus, Queue
from queuelab.errors import InvalidArgument
from queuelab.limits import RateLimit
from queuelab.models import Lease
from queuelab.store.schema import SCHEMA_REVISION, meta
from queuelab.store.throttling import THROTTLE_LOCK_SPACE
from queuelab.submission import Submission
from queuelab.testing import internals
from tests.support.helpers import wait_until

WORKER = "test-worker"


def claim(q: Queue, limit: int = 10, tasks: list[str] | None = None) -> list[Lease]:
    return internals(q).leases.claim(WORKER, None, limit, q.clock.now(), tasks=tasks)


def submit(q: Queue, task: str, n: int, **options: str) -> None:
    q.submit_many(Submission(task=task, **options) for _ in range(n))  # type: ignore[arg-type]


def tasks_of(leases: list[Lease]) -> list[str]:
    return sorted(lease.task for lease in leases)


@pytest.fixture
def tasked(queue: Queue) -> Queue:
    @queue.task(name="call_api")
    def call_api() -> None: ...

    @queue.task(name="other")
    def other() -> None: ...

    return queue


def test_a_task_throttle_allows_n_starts_per_window_and_reopens(tasked: Queue, clock: FakeClock) -> None:
    tasked.set_throttle("3/10s", task="call_api")
    submit(tasked, "call_api", 6)
    start = clock.now()
    assert len(claim(tasked, 2)) == 2
    clock.set(start + 4.0)
    assert len(claim(tasked, 10)) == 1  # the room left: 3 - 2
    assert claim(tasked, 10) == []  # full until the first two leave the window at start + 10
    clock.set(start + 9.999)
    assert claim(tasked, 10) == []
    clock.set(start + 10.0)
    assert len(claim(tasked, 10)) == 2
    assert claim(tasked, 10) == []
    clock.set(start + 14.0)
    assert len(claim(tasked, 10)) == 1
    assert [j.status for j in tasked.jobs()].count(JobStatus.PENDING) == 0


def test_a_throttled_job_stays_pending_unspent_and_the_claim_passes_over_it(tasked: Queue) -> None:
    tasked.set_throttle("1/minute", task="call_api")
    submit(tasked, "call_api", 3)
    submit(tasked, "other", 3)  # behind the throttled ones in the line
    assert tasks_of(claim(tasked, 1)) == ["call_api"]
    assert tasks_of(claim(tasked, 10)) == ["other"] * 3  # not starved by the head of the line
    waiting = [j for j in tasked.jobs() if j.status == JobStatus.PENDING]
    assert len(waiting) == 2
    assert all(j.task == "call_api" and j.attempts == 0 for j in waiting)


def test_one_claim_never_takes_more_than_the_room_left(tasked: Queue) -> None:
    tasked.set_throttle("3/minute", task="call_api")
    submit(tasked, "call_api", 10)
    assert tasks_of(claim(tasked, 10)) == ["call_api"] * 3
    assert claim(tasked, 10) == []


def test_a_worker_of_other_tasks_is_not_capped_by_a_throttle_it_cannot_meet(tasked: Queue) -> None:
    tasked.set_throttle("1/minute", task="call_api")
    submit(tasked, "other", 5)
    assert len(claim(tasked, 10, tasks=["other"])) == 5


def test_queue_and_user_throttles(tasked: Queue) -> None:
    tasked.set_throttle("2/minute", queue="slow")
    tasked.set_throttle("1/minute", user="alice")
    submit(tasked, "other", 4, queue="slow")
    submit(tasked, "other", 3, user_id="alice")
    submit(tasked, "other", 2, user_id="bob")
    taken = claim(tasked, 1) + claim(tasked, 1) + claim(tasked, 20) + claim(tasked, 20)
    assert sum(lease.queue == "slow" for lease in taken) == 2
    assert sum(lease.user_id == "alice" for lease in taken) == 1
    assert sum(lease.user_id == "bob" for lease in taken) == 2


def test_removing_a_throttle_frees_its_jobs(tasked: Queue) -> None:
    tasked.set_throttle("1/hour", task="call_api")
    submit(tasked, "call_api", 3)
    assert len(claim(tasked)) == 1
    assert claim(tasked) == []
    assert [t.key for t in tasked.throttles()] == ["task:call_api"]
    assert tasked.set_throttle(None, task="call_api") is None
    assert tasked.throttles() == []
    assert len(claim(tasked)) == 2


def test_throttles_compose_with_running_quotas(tasked: Queue) -> None:
    tasked.set_limits("alice", max_running=2)
    tasked.set_throttle("3/minute", task="call_api")
    submit(tasked, "call_api", 5, user_id="alice")
    submit(tasked, "call_api", 5, user_id="bob")
    taken = claim(tasked, 10) + claim(tasked, 10)
    assert len(taken) == 3
    assert sum(lease.user_id == "alice" for lease in taken) <= 2


def test_set_throttle_names_one_scope_and_a_valid_rate(tasked: Queue) -> None:
    with pytest.raises(InvalidArgument, match="exactly one of task=, queue= or user=, got task, queue"):
        tasked.set_throttle("1/s", task="call_api", queue="default")
    with pytest.raises(InvalidArgument, match="exactly one of task=, queue= or user=, got none"):
        tasked.set_throttle("1/s")
    with pytest.raises(InvalidArgument, match=r"throttle must be N/unit .* got '5 per minute'"):
        tasked.set_throttle("5 per minute", task="call_api")
    with pytest.raises(InvalidArgument, match="task must be a name of 1 to 200 characters, got ''"):
        tasked.set_throttle("5/minute", task="")


def test_opening_a_revision_7_database_adds_the_throttle_tables(db_url: str) -> None:
    q = Queue(db_url)
    q.open()
    with internals(q).db.write() as conn:  # as revision 7 left it
        conn.execute(meta.update().where(meta.c.key == "schema_revision").values(value="7"))
        conn.exec_driver_sql("DROP TABLE queuelab_throttles")
        conn.exec_driver_sql("DROP TABLE queuelab_starts")
    q.close()
    q = Queue(db_url)
    assert q.throttles() == []
    q.set_throttle("1/s", task="x")
    with internals(q).db.read() as conn:
        found = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_revision")).scalar_one()
    assert int(found) == SCHEMA_REVISION >= 8
    q.close()


def test_an_idle_worker_learns_when_a_full_throttle_frees(tasked: Queue, clock: FakeClock) -> None:
    leases = internals(tasked).leases
    assert not leases.claims_held_back()  # nothing set: workers prefetch as before
    tasked.set_throttle("2/10s", task="call_api")
    assert leases.claims_held_back()
    submit(tasked, "call_api", 3)
    start = clock.now()
    claim(tasked, 1)
    assert leases.throttle_frees_at(None, None, start + 1.0) is None  # room left: not held back
    clock.set(start + 4.0)
    claim(tasked, 1)
    assert leases.throttle_frees_at(None, None, start + 5.0) == pytest.approx(start + 10.0)
    assert leases.throttle_frees_at(None, ["other"], start + 5.0) is None  # not this worker's task


def test_explain_says_a_throttled_job_waits_and_until_when(tasked: Queue, clock: FakeClock) -> None:
    tasked.set_throttle("2/10s", task="call_api")
    submit(tasked, "call_api", 3)
    start = clock.now()
    claim(tasked, 2)
    clock.set(start + 4.0)
    (waiting,) = [j for j in tasked.jobs() if j.status == JobStatus.PENDING]
    explanation = tasked.explain(waiting.id)
    assert explanation.reason == "throttled"
    assert "its task 'call_api' started 2 jobs in the last 10s and the throttle is 2 per 10s" in str(explanation)
    assert explanation.details["seconds"] == pytest.approx(6.0)
    clock.set(start + 10.0)
    assert tasked.explain(waiting.id).reason != "throttled"


def test_the_autoscaler_demand_leaves_out_jobs_a_full_throttle_holds(tasked: Queue, clock: FakeClock) -> None:
    tasked.set_throttle("2/minute", task="call_api")
    submit(tasked, "call_api", 5)
    submit(tasked, "other", 2)
    assert tasked.runnable_backlog() == {"default": 4}  # 2 of the throttled (its room) and the others
    claim(tasked, 1)
    assert tasked.runnable_backlog() == {"default": 3}
    claim(tasked, 1)
    assert tasked.runnable_backlog() == {"default": 2}  # full: only the others are demand


def test_a_task_declares_its_throttle_and_a_worker_stores_it(queue: Queue) -> None:
    @queue.task(throttle="2/minute")
    def limited() -> None: ...

    assert limited.throttle == RateLimit(2, 60.0)
    assert queue.throttles() == []  # stored by the workers that serve it, when they start
    with queue.worker(1):
        wait_until(lambda: queue.throttles(), timeout=30, what="the worker to store the throttle")
    assert [str(t) for t in queue.throttles()] == ["task 'limited': 2 starts per 60s"]
    with pytest.raises(InvalidArgument, match=r"throttle must be N/unit"):
        queue.task(name="bad", throttle="often")


@pytest.mark.postgres
def test_postgres_a_claim_passes_over_a_throttle_another_claimer_holds(postgres_url: str, clock: FakeClock) -> None:
    q = Queue(postgres_url, clock=clock)
    q.task(name="call_api")(lambda: None)
    q.task(name="other")(lambda: None)
    q.set_throttle("10/minute", task="call_api")
    submit(q, "call_api", 2)
    submit(q, "other", 2)
    lock = sa.text("SELECT pg_advisory_xact_lock(:space, hashtext('task:call_api'))")
    with internals(q).db.engine.connect() as other, other.begin():  # a claimer mid-transaction
        other.execute(lock, {"space": THROTTLE_LOCK_SPACE})
        assert tasks_of(claim(q, 10)) == ["other", "other"]  # no wait, and not counted as taken
    assert tasks_of(claim(q, 10)) == ["call_api", "call_api"]
    q.close()


def test_an_idle_worker_sleeps_until_the_window_frees_not_a_poll_longer(make_queue: Callable[..., Queue]) -> None:
    clock = FakeClock()
    q = make_queue(clock=clock, poll_interval_seconds=30.0)
    q.task(name="call_api")(lambda: None)
    q.set_throttle("1/5s", task="call_api")
    submit(q, "call_api", 2)
    worker = q.foreground_worker()
    start = clock.now()
    assert len(claim(q, 10)) == 1
    clock.set(start + 2.0)
    assert claim(q, 10) == []
    assert worker._idle_wait(clock.now()) == pytest.approx(3.0, abs=0.01)  # until start + 5
