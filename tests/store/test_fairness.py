"""Fair scheduling and the running quota under concurrent claimers, on each database."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from queuelab import FakeClock, InvalidArgument, Queue
from queuelab.models import AttemptOutcome
from queuelab.policy import Complete, DeadLetter, Errored
from queuelab.store import quota_sql
from queuelab.store.schema import jobs, user_locks
from queuelab.submission import Submission
from queuelab.testing import internals


def drain_order(q: Queue, worker: str = "w") -> list[str]:
    """Claim one job at a time and finish it; return the users in start order."""
    users = []
    while leases := internals(q).leases.claim(worker, None, 1, q.clock.now()):
        (lease,) = leases
        users.append(lease.user_id)
        internals(q).leases.ack(lease, Complete(None), worker, q.clock.now())
    return users


def test_a_light_user_is_not_starved_by_a_heavy_backlog(queue: Queue, clock: FakeClock) -> None:
    queue.submit_many(Submission(task="simulate", user_id="heavy") for _ in range(2000))
    clock.advance(1)
    queue.submit_many(Submission(task="simulate", user_id="light") for _ in range(20))
    order = drain_order(queue)
    assert len(order) == 2020
    last_light = max(i for i, user in enumerate(order) if user == "light")
    heavy_before = order[:last_light].count("heavy")
    # The bound reached: the light user's 20 jobs interleave one for one with the heavy
    # backlog, so all of them start before 21 of the 2,000 heavy jobs (1%); the issue
    # asks for < 25%.
    assert heavy_before <= 21, heavy_before


def test_a_user_who_was_idle_starts_at_the_head_of_the_line(queue: Queue, clock: FakeClock) -> None:
    queue.submit_many(Submission(task="simulate", user_id="heavy") for _ in range(100))
    for lease in internals(queue).leases.claim("w", None, 50, clock.now()):
        internals(queue).leases.ack(lease, Complete(None), "w", clock.now())
    queue.submit("simulate", user_id="light")
    assert "light" in drain_order(queue)[:3]  # at the head, beside the heavy head job


def test_weights_give_proportional_shares(queue: Queue) -> None:
    queue.set_limits("gold", weight=3)
    queue.submit_many(Submission(task="simulate", user_id="gold") for _ in range(300))
    queue.submit_many(Submission(task="simulate", user_id="basic") for _ in range(300))
    first = drain_order(queue)[:200]
    assert 145 <= first.count("gold") <= 155, first.count("gold")  # 3 : 1 of 200 = 150 : 50


def test_fairness_holds_within_priority_not_across_it(queue: Queue) -> None:
    queue.submit_many(Submission(task="simulate", user_id="heavy") for _ in range(50))
    queue.submit_many(Submission(task="simulate", user_id="urgent", priority=9) for _ in range(5))
    assert drain_order(queue)[:5] == ["urgent"] * 5


def test_two_claimers_on_two_connections_never_both_take_the_last_slot(make_queue: Callable[..., Queue]) -> None:
    setup = make_queue()
    setup.set_limits("alice", max_running=1)
    setup.submit_many(Submission(task="simulate", user_id="alice") for _ in range(60))
    intervals: list[tuple[float, float]] = []
    lock = threading.Lock()

    def claimer(name: str) -> None:
        q = make_queue()  # its own engine and connections
        while True:
            leases = internals(q).leases.claim(name, None, 2, q.clock.now())
            if not leases:
                if q.stats().by_status["PENDING"] == 0:
                    return
                continue
            assert len(leases) == 1  # the quota caps even one claimer's batch
            began = time.monotonic()  # after the claim committed ...
            time.sleep(0.002)
            ended = time.monotonic()  # ... and before the ack commits
            internals(q).leases.ack(leases[0], Complete(None), name, q.clock.now())
            with lock:
                intervals.append((began, ended))

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(intervals) == 60
    events = sorted([(b, 1) for b, _ in intervals] + [(e, -1) for _, e in intervals])
    peak = running = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak == 1


def test_a_postgres_quota_claim_adds_the_users_lock_row_and_counts_its_claims(postgres_url: str) -> None:
    """A user's first claim under a quota finds no row to lock: it adds one (outside its
    transaction) and takes the job in the same claim; each claim then bumps it."""
    q = Queue(postgres_url)
    q.set_limits("carol", max_running=2)
    q.submit_many(Submission(task="simulate", user_id="carol") for _ in range(3))
    query = sa.select(user_locks.c.claims).where(user_locks.c.user_id == "carol")
    with internals(q).db.read() as conn:
        assert conn.execute(query).first() is None
    first = internals(q).leases.claim("w", None, 1, q.clock.now())
    second = internals(q).leases.claim("w", None, 5, q.clock.now())
    third = internals(q).leases.claim("w", None, 5, q.clock.now())
    assert (len(first), len(second), len(third)) == (1, 1, 0)  # the quota of 2 holds
    with internals(q).db.read() as conn:
        assert conn.execute(query).scalar_one() == 2
    q.close()


def test_postgres_quota_lock_rows_of_idle_users_are_forgotten(postgres_url: str) -> None:
    """Maintenance deletes the lock rows of users with nothing pending or running; a user
    who comes back gets a new row from the next claim and is served as before."""
    from queuelab.store.claims import forget_idle_users

    q = Queue(postgres_url)
    q.set_limits("*", max_running=2)
    q.submit_many(Submission(task="simulate", user_id=user) for user in ("done", "waiting", "waiting"))
    for lease in internals(q).leases.claim("w", None, 1, q.clock.now()):  # "done" ranks first
        internals(q).leases.ack(lease, Complete(None), "w", q.clock.now())
    internals(q).leases.claim("w", None, 5, q.clock.now())  # adds "waiting"'s row, takes one job
    rows = sa.select(user_locks.c.user_id).order_by(user_locks.c.user_id)
    with internals(q).db.read() as conn:
        assert list(conn.execute(rows).scalars()) == ["done", "waiting"]
    assert forget_idle_users(internals(q).db) == 1
    with internals(q).db.read() as conn:
        assert list(conn.execute(rows).scalars()) == ["waiting"]
    q.submit("simulate", user_id="done")  # back again
    taken = [lease.user_id for _ in range(3) for lease in internals(q).leases.claim("w", None, 1, q.clock.now())]
    assert "done" in taken
    q.close()


def test_a_postgres_quota_claim_takes_its_jobs_by_row_address(postgres_url: str) -> None:
    """The quota claim takes the jobs it picked by TID. By id, on a fresh table without
    statistics, the planner read the pending index with the ids as a filter (or, without
    the status test, the whole table): a read of the backlog per claim, 1.3 ms at 3,000
    pending jobs, kept in the plan PostgreSQL caches for the prepared statement."""
    q = Queue(postgres_url)
    q.set_limits(max_running=2)
    q.submit_many(Submission(task="simulate", user_id=f"u{i % 10}") for i in range(3000))
    compiled = quota_sql.postgres_quota_claim(0, 0, 0, 4, 8).compile(dialect=internals(q).db.engine.dialect)
    given = {"p_now": time.time(), "p_token": "t", "p_owner": "w", "p_default_quota": 2}
    params = {name: given.get(name, value) for name, value in compiled.params.items()}
    with internals(q).db.read() as conn:
        rows = conn.exec_driver_sql("EXPLAIN " + compiled.string, direct_params(params)).all()
    plan = "\n".join(row[0] for row in rows)
    assert "Tid Scan on queuelab_jobs" in plan, plan
    assert "Seq Scan on queuelab_jobs" not in plan, plan
    q.close()


def direct_params(params: dict[str, object]) -> dict[str, object]:
    """Bound values as the driver takes them (a status enum as its text)."""
    return {name: getattr(value, "value", value) for name, value in params.items()}


def test_one_batch_of_several_users_and_priorities_is_ranked_as_if_submitted_one_by_one(queue: Queue) -> None:
    """A batch is ranked in one statement on PostgreSQL (INSERT_BATCH) and row by row on
    SQLite; both follow the rule: after the user's last pending job at that priority, else
    at the head of that priority's line, in steps of 1/weight."""
    queue.set_limits("b", weight=2)
    first = queue.submit("simulate", user_id="a")  # alone at priority 0: rank 0 + 1
    made = queue.submit_many(
        Submission(task="simulate", user_id=user, priority=priority)
        for user, priority in [("a", 0), ("b", 0), ("a", 0), ("b", 5), ("b", 0), ("a", 5)]
    )
    with internals(queue).db.engine.connect() as conn:
        ranks = dict(conn.execute(sa.select(jobs.c.id, jobs.c.fair_rank)).all())
    assert ranks[first.id] == 1.0
    # a at 0 continues after 1.0; b at 0 starts at the head (1.0) in halves; at 5 nobody waits
    assert [ranks[job.id] for job in made] == [2.0, 1.5, 3.0, 0.5, 2.0, 1.0]


def dead_letter_all(q: Queue, n: int) -> None:
    """Claim ``n`` jobs and send each to the dead-letter queue."""
    failed = Errored(AttemptOutcome.FAILED, "ValueError", "boom")
    for lease in internals(q).leases.claim("w", None, n, q.clock.now()):
        internals(q).leases.ack(lease, DeadLetter(failed, "no retries left"), "w", q.clock.now())


def test_a_bulk_redrive_queues_behind_the_work_already_waiting(queue: Queue, clock: FakeClock) -> None:
    queue.submit_many(Submission(task="simulate", user_id="heavy", max_retries=0) for _ in range(200))
    dead_letter_all(queue, 200)
    clock.advance(1)
    queue.submit_many(Submission(task="simulate", user_id="light") for _ in range(20))
    assert queue.requeue_many(user_id="heavy") == 200
    order = drain_order(queue)
    assert len(order) == 220
    # light waited first: its 20 interleave with heavy's redrive, one for one, from the head
    assert order[:40].count("light") == 20


def test_a_requeued_job_goes_behind_its_users_waiting_jobs(queue: Queue) -> None:
    first = queue.submit("simulate", user_id="a", max_retries=0)
    dead_letter_all(queue, 1)
    waiting = queue.submit_many(Submission(task="simulate", user_id="a") for _ in range(3))
    requeued = queue.requeue(first.id)
    assert requeued.status.value == "PENDING"
    with internals(queue).db.engine.connect() as conn:
        ranks = dict(conn.execute(sa.select(jobs.c.id, jobs.c.fair_rank)).all())
    assert ranks[first.id] > max(ranks[job.id] for job in waiting)


def test_a_paced_redrive_spreads_the_jobs_run_at(queue: Queue, clock: FakeClock) -> None:
    queue.submit_many(Submission(task="simulate", user_id="u", max_retries=0) for _ in range(5))
    dead_letter_all(queue, 5)
    clock.advance(10)
    now = clock.now()
    assert queue.requeue_many(rate=4) == 5
    starts = sorted(job.run_at.timestamp() - now for job in queue.jobs(limit=10))
    assert starts == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    assert queue.requeue_many(rate=4) == 0  # nothing left in the DLQ: says so
    with pytest.raises(InvalidArgument, match="rate must be a finite number > 0, got 0"):
        queue.requeue_many(rate=0)
