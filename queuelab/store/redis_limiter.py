"""The submission rate limiter in Redis, as the prototype's design notes suggest: a
sliding-window log per user (a sorted set of submission times), checked and appended by
one Lua script, so the check and the write are atomic across every process and machine.

Same semantics and errors as the SQL limiter: at most N submissions in any window,
:class:`RateLimited` with ``retry_after`` otherwise. A submission admitted here and then
refused by the database (a quota, a failure) is taken back out of the log.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from queuelab.errors import RateLimited, StoreError
from queuelab.extras import REDIS, require
from queuelab.limits import RateLimit

KEY_PREFIX = "queuelab:rate:"

# KEYS[1] the user's log. ARGV: now, window seconds, limit, wanted, member prefix.
# Returns {1, ""} when admitted, {0, retry_after} when refused.
SLIDING_WINDOW = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local wanted = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
local excess = count + wanted - limit
if excess > 0 then
  if wanted > limit then
    return {0, tostring(window), tostring(count)}
  end
  local oldest = redis.call('ZRANGE', key, excess - 1, excess - 1, 'WITHSCORES')
  return {0, tostring(tonumber(oldest[2]) + window - now), tostring(count)}
end
for i = 1, wanted do
  redis.call('ZADD', key, now, ARGV[5] .. ':' .. i)
end
redis.call('PEXPIRE', key, math.ceil(window * 1000) + 1000)
return {1, '0', tostring(count)}
"""


@dataclass(frozen=True, slots=True)
class Admission:
    """Entries written to a user's log, to take back if the submission fails."""

    key: str
    members: tuple[str, ...]


class RedisRateLimiter:
    def __init__(self, url: str) -> None:
        (redis,) = require(REDIS, extra="redis", feature="QUEUELAB_REDIS_URL (the Redis rate limiter)")
        self._redis = redis.Redis.from_url(url)
        self._script = self._redis.register_script(SLIDING_WINDOW)
        self._url = url

    def admit(self, user_id: str, wanted: int, rate: RateLimit, now: float) -> Admission:
        key = KEY_PREFIX + user_id
        prefix = uuid.uuid4().hex
        reply = self._call(keys=[key], args=[repr(now), repr(rate.window_seconds), rate.count, wanted, prefix])
        admitted, retry_after, count = int(reply[0]), float(reply[1]), int(reply[2])
        if not admitted:
            raise RateLimited(
                f"user {user_id!r} submitted {count} jobs in the last {rate.window_seconds:g}s and the rate limit "
                f"is {rate.count} per {rate.window_seconds:g}s; retry after {max(0.0, retry_after):.3f}s",
                retry_after=max(0.0, retry_after),
            )
        return Admission(key, tuple(f"{prefix}:{i}" for i in range(1, wanted + 1)))

    def take_back(self, admission: Admission) -> None:
        import redis

        try:
            self._redis.zrem(admission.key, *admission.members)
        except redis.RedisError as exc:
            raise StoreError(f"Redis at {self._url}: {exc}") from exc

    def close(self) -> None:
        self._redis.close()

    def _call(self, *, keys: list[str], args: list[Any]) -> Any:
        import redis

        try:
            return self._script(keys=keys, args=args)
        except redis.RedisError as exc:
            raise StoreError(f"Redis at {self._url}: {exc}") from exc
