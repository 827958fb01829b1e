"""The Redis submission rate limiter: same semantics and errors as the SQL one, against
the local Redis server."""

from __future__ import annotations

import uuid

import pytest
import redis

from queuelab import FakeClock, Queue, QuotaExceeded, RateLimited
from queuelab.store.redis_limiter import KEY_PREFIX


@pytest.fixture
def user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"  # a fresh log in the shared server


def log_size(url: str, user: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.zcard(KEY_PREFIX + user))
    finally:
        client.close()


def test_redis_sliding_window_matches_the_sql_one(sqlite_url: str, redis_url: str, clock: FakeClock, user: str) -> None:
    q = Queue(sqlite_url, redis_url=redis_url, clock=clock)
    q.set_limits(user, rate_limit="3/10s")
    start = clock.now()
    for offset in (0.0, 2.0, 4.0):
        clock.set(start + offset)
        q.submit("simulate", user_id=user)
    clock.set(start + 5.0)
    with pytest.raises(RateLimited, match=r"rate limit is 3 per 10s; retry after 5\.000s") as refused:
        q.submit("simulate", user_id=user)
    assert refused.value.retry_after == pytest.approx(5.0)
    assert sum(q.stats().by_status.values()) == 3
    clock.set(start + 10.0)
    q.submit("simulate", user_id=user)
    with pytest.raises(RateLimited) as again:
        q.submit("simulate", user_id=user)
    assert again.value.retry_after == pytest.approx(2.0)
    assert log_size(redis_url, user) == 3  # the one at start+0 has left the window
    q.close()


def test_a_submission_refused_by_the_database_is_taken_back_from_redis(
    sqlite_url: str, redis_url: str, clock: FakeClock, user: str
) -> None:
    q = Queue(sqlite_url, redis_url=redis_url, clock=clock)
    q.set_limits(user, rate_limit="10/minute", max_active=1)
    q.submit("simulate", user_id=user)
    with pytest.raises(QuotaExceeded):
        q.submit("simulate", user_id=user)
    assert log_size(redis_url, user) == 1
    q.close()


def test_an_unreachable_redis_is_a_clear_store_error(sqlite_url: str, user: str) -> None:
    from queuelab import StoreError

    q = Queue(sqlite_url, redis_url="redis://127.0.0.1:1/0")
    q.set_limits(user, rate_limit="10/minute")
    with pytest.raises(StoreError, match=r"Redis at redis://127.0.0.1:1/0"):
        q.submit("simulate", user_id=user)
    assert sum(q.stats().by_status.values()) == 0
    q.close()
