"""Admission limits, running quotas, paused queues and explain, on each database, with an
injected clock."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from queuelab import FakeClock, JobStatus, Queue, QuotaExceeded, RateLimited
from queuelab.errors import ConfigError, InvalidArgument
from queuelab.limits import RateLimit, retry_after
from queuelab.models import Lease
from queuelab.policy import Complete
from queuelab.submission import Submission
from queuelab.testing import internals

WORKER = "test-worker"


def claim(q: Queue, limit: int = 10) -> list[Lease]:
    return internals(q).leases.claim(WORKER, None, limit, q.clock.now())


def job_count(q: Queue) -> int:
    return sum(q.stats().by_status.values())


def test_the_sliding_window_allows_n_refuses_n_plus_one_and_reopens(queue: Queue, clock: FakeClock) -> None:
    queue.set_limits("alice", rate_limit="3/10s")
    start = clock.now()
    for offset in (0.0, 2.0, 4.0):
        clock.set(start + offset)
        queue.submit("simulate", user_id="alice")
    clock.set(start + 5.0)
    with pytest.raises(RateLimited, match=r"rate limit is 3 per 10s; retry after 5\.000s") as refused:
        queue.submit("simulate", user_id="alice")
    assert refused.value.retry_after == pytest.approx(5.0)  # the first submission leaves at start + 10
    assert job_count(queue) == 3  # nothing stored
    queue.submit("simulate", user_id="bob")  # other users are not affected
    clock.set(start + 9.999)
    with pytest.raises(RateLimited):
        queue.submit("simulate", user_id="alice")
    clock.set(start + 10.0)
    queue.submit("simulate", user_id="alice")  # the oldest has left the window
    with pytest.raises(RateLimited) as again:
        queue.submit("simulate", user_id="alice")
    assert again.value.retry_after == pytest.approx(2.0)  # the one at start + 2 leaves next


def test_no_burst_of_two_n_across_a_window_boundary(queue: Queue, clock: FakeClock) -> None:
    """A fixed window would allow N at the end of one window and N at the start of the next."""
    queue.set_limits("alice", rate_limit="5/60s")
    start = clock.now()
    clock.set(start + 59.0)
    queue.submit_many(Submission(task="simulate", user_id="alice") for _ in range(5))
    clock.set(start + 61.0)  # "a new minute"
    with pytest.raises(RateLimited) as refused:
        queue.submit("simulate", user_id="alice")
    assert refused.value.retry_after == pytest.approx(58.0)
    accepted_in_any_60s = 5
    assert job_count(queue) == accepted_in_any_60s


def test_a_batch_is_admitted_whole_or_not_at_all(queue: Queue) -> None:
    queue.set_limits("alice", rate_limit="4/minute")
    queue.submit_many(Submission(task="simulate", user_id="alice") for _ in range(3))
    with pytest.raises(RateLimited):
        queue.submit_many(Submission(task="simulate", user_id="alice") for _ in range(2))
    assert job_count(queue) == 3


def test_the_active_cap_counts_pending_and_running(queue: Queue) -> None:
    queue.set_limits("alice", max_active=2)
    queue.submit("simulate", user_id="alice")
    queue.submit("simulate", user_id="alice")
    claim(queue, 1)
    with pytest.raises(QuotaExceeded, match=r"user 'alice' has 2 active jobs \(PENDING or RUNNING\) and the cap is 2"):
        queue.submit("simulate", user_id="alice")
    assert job_count(queue) == 2
    (lease,) = claim(queue, 1)
    internals(queue).leases.ack(lease, Complete(None), WORKER, queue.clock.now())
    queue.submit("simulate", user_id="alice")  # one finished: room again


def test_limits_fall_back_from_user_to_defaults_to_settings(make_queue: Callable[..., Queue], clock: FakeClock) -> None:
    q = make_queue(clock=clock, rate_limit="100/minute", max_running_per_user=5)
    assert q.limits("anyone").rate_limit == RateLimit(100, 60.0)
    assert q.limits("anyone").max_running == 5
    q.set_limits(max_running=4)  # the "*" defaults override the settings
    q.set_limits("alice", max_running=2, weight=3)
    assert (q.limits("anyone").max_running, q.limits("alice").max_running) == (4, 2)
    assert q.limits("alice").rate_limit == RateLimit(100, 60.0)  # not overridden: falls back
    q.set_limits("alice", rate_limit="none")  # explicitly off for alice only
    for _ in range(150):
        q.submit("simulate", user_id="alice")
    q.set_limits("alice", max_running=None)  # cleared: back to the defaults
    assert q.limits("alice").max_running == 4
    assert q.limits("alice").weight == 3


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("rate_limit", "lots", r"rate_limit must be N/unit .* got 'lots'"),
        ("rate_limit", 5, r"rate_limit must be a string such as '60/minute'"),
        ("max_running", -1, r"max_running must be a whole number between 0 and 1000000000 \(0 switches it off\) .*-1$"),
        ("max_active", 1.5, r"max_active must be a whole number between 0 and 1000000000 .* got 1\.5$"),
        ("weight", 0, r"weight must be a whole number between 1 and 1000 or None, got 0"),
    ],
)
def test_bad_limits_are_refused(queue: Queue, field: str, value: object, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        queue.set_limits("alice", **{field: value})  # type: ignore[arg-type]
    assert queue.limits("alice").max_running is None


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("QUEUELAB_RATE_LIMIT", "60 per minute"),
        ("QUEUELAB_MAX_RUNNING_PER_USER", "-3"),
        ("QUEUELAB_MAX_ACTIVE_PER_USER", "many"),
    ],
)
def test_bad_limit_settings_name_the_variable(var: str, value: str) -> None:
    from queuelab import Settings

    with pytest.raises(ConfigError, match=rf"^{var} must be .*got '{value}'"):
        Settings.load(env={var: value})


def test_a_running_quota_holds_jobs_back_without_spending_attempts(queue: Queue) -> None:
    queue.set_limits("alice", max_running=2)
    jobs = [queue.submit("simulate", user_id="alice") for _ in range(4)]
    bob = queue.submit("simulate", user_id="bob")
    first = claim(queue, 10)
    assert sorted(lease.user_id for lease in first) == ["alice", "alice", "bob"]
    assert claim(queue, 10) == []
    held = [queue.get(j.id) for j in jobs if j.id not in {lease.job_id for lease in first}]
    assert [(j.status, j.attempts) for j in held] == [(JobStatus.PENDING, 0)] * 2
    explanation = queue.explain(held[0].id)
    assert explanation.reason == "user_at_running_quota"
    assert "(2 of 2 running)" in explanation.message
    internals(queue).leases.ack(first[0], Complete(None), WORKER, queue.clock.now())
    assert [lease.user_id for lease in claim(queue, 10)] == ["alice"]
    assert bob.id in {lease.job_id for lease in first}


def test_running_quotas_resolve_own_then_star_then_settings(make_queue: Callable[..., Queue]) -> None:
    """Inside the claim, a user's quota is their own max_running, else the * row's, else
    the setting; 0 switches it off; setting only another limit leaves the quota inherited."""
    queue = make_queue(clock=FakeClock(), max_running_per_user=1)
    for user in ("ann", "ben", "cat", "dan"):
        for _ in range(4):
            queue.submit("simulate", user_id=user)
    queue.set_limits("ben", max_running=3)  # own row
    queue.set_limits("cat", max_running=0)  # own row: off
    queue.set_limits("dan", rate_limit="100/minute")  # a row, but no max_running of its own
    taken = Counter(lease.user_id for lease in claim(queue, 100))
    assert taken == {"ann": 1, "ben": 3, "cat": 4, "dan": 1}  # ann and dan: the setting, 1
    queue.set_limits("*", max_running=2)  # the * row now beats the setting
    assert Counter(lease.user_id for lease in claim(queue, 100)) == {"ann": 1, "dan": 1}
    assert claim(queue, 100) == []


def test_explain_gives_each_reason(queue: Queue, clock: FakeClock) -> None:
    later = queue.submit("simulate", delay=60)
    assert queue.explain(later.id).reason == "scheduled"
    assert queue.explain(later.id).details["seconds"] == pytest.approx(60)

    failing = queue.submit("simulate", {"fail_simulation": True}, priority=9)
    (lease,) = claim(queue, 1)
    from queuelab.models import AttemptOutcome
    from queuelab.policy import Errored, Retry

    retry = Retry(clock.now() + 5, Errored(AttemptOutcome.FAILED, "SimulatedFailure", "boom"))
    internals(queue).leases.ack(lease, retry, WORKER, clock.now())
    backoff = queue.explain(failing.id)
    assert (backoff.reason, backoff.details["attempts"]) == ("retry_backoff", 1)
    assert "SimulatedFailure" in backoff.message

    waiting = queue.submit("simulate", queue="mail")
    assert queue.explain(waiting.id).reason == "no_live_worker"
    from queuelab.store import WorkerInfo

    now = clock.now()
    internals(queue).workers.register(WorkerInfo("w1", "host", 1, "mail,default", 1, "thread", now, now))
    ahead = queue.submit("simulate", queue="mail", priority=5)
    explained = queue.explain(waiting.id)
    assert (explained.reason, explained.details["ahead"]) == ("next_in_line", 1)
    assert queue.explain(ahead.id).details["ahead"] == 0

    queue.pause("mail")
    assert queue.explain(waiting.id).reason == "queue_paused"
    assert claim(queue, 10) == []  # a paused queue gives no work
    queue.resume("mail")
    assert {lease.job_id for lease in claim(queue, 10)} == {waiting.id, ahead.id}
    assert queue.explain(waiting.id).reason == "running"


def test_the_pure_sliding_window() -> None:
    rate = RateLimit(3, 10.0)
    assert retry_after([], rate, now=100.0) is None
    assert retry_after([91.0, 95.0], rate, now=100.0) is None
    assert retry_after([91.0, 95.0, 99.0], rate, now=100.0) == pytest.approx(1.0)
    assert retry_after([90.0, 95.0, 99.0], rate, now=100.0) is None  # 90 left the window at 100
    assert retry_after([95.0, 99.0], rate, now=100.0, wanted=2) == pytest.approx(5.0)
    assert retry_after([], rate, now=100.0, wanted=4) == pytest.approx(10.0)
