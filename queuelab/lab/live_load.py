"""A load generator whose knobs can be turned while it runs: Poisson arrivals of ``simulate``
jobs at ``rate`` per second, spread over ``users`` users, each running about ``duration``
seconds and failing with probability ``fail_rate`` per attempt. The control panel drives
it; a notebook can too. A failed submit is logged (``errors`` counts them) and the load
goes on after a pause."""

from __future__ import annotations

import math
import random
import time

from queuelab.errors import InvalidArgument, QueuelabError, QuotaExceeded, RateLimited
from queuelab.looper import Looper
from queuelab.queue import Queue
from queuelab.submission import Submission

MAX_RATE = 10_000.0
MAX_BATCH = 200  # arrivals submitted by one tick at most: a loop that falls behind catches up over several
MAX_WAIT_SECONDS = 0.1  # between ticks, at most: a knob turned takes effect within this
ERROR_PAUSE_SECONDS = 0.5  # after a failed submit


class LoadGenerator(Looper):
    """Each tick submits the arrivals due by then, drawn with the knobs as they are now."""

    def __init__(
        self,
        q: Queue,
        *,
        rate: float = 10.0,
        users: int = 5,
        fail_rate: float = 0.0,
        duration: float = 0.05,
        queue: str = "default",
        seed: int | None = None,
    ) -> None:
        super().__init__("queuelab-load", every=MAX_WAIT_SECONDS, clock=q.clock)
        self.q, self.queue = q, queue
        self.rate, self.users, self.fail_rate, self.duration = rate, users, fail_rate, duration
        self.check()
        self.submitted = 0
        self.refused = 0
        self._rng = random.Random(seed)
        self._due: float | None = None  # monotonic time of the next arrival (None: the first tick's)
        self._paused_until = -math.inf  # monotonic: after a failed submit, give the database a moment

    def check(self) -> None:
        """Raise :class:`InvalidArgument` if a knob is out of range."""
        if not 0 < self.rate <= MAX_RATE:
            raise InvalidArgument(f"rate must be between 0 and {MAX_RATE:g} jobs per second, got {self.rate!r}")
        if isinstance(self.users, bool) or not isinstance(self.users, int) or not 1 <= self.users <= 10_000:
            raise InvalidArgument(f"users must be a whole number between 1 and 10000, got {self.users!r}")
        if not 0 <= self.fail_rate <= 1:
            raise InvalidArgument(f"fail_rate must be a probability between 0 and 1, got {self.fail_rate!r}")
        if not 0 <= self.duration <= 3600:
            raise InvalidArgument(f"duration must be between 0 and 3600 seconds, got {self.duration!r}")

    def tick(self, now: float, mono: float) -> None:
        """Submit the arrivals due by ``mono`` (at most :data:`MAX_BATCH`; the rest next tick).
        A failure (the database went away, say) raises for the loop to log, and pauses it."""
        try:
            self.check()  # a knob may have been turned
            due = mono if self._due is None else self._due
            batch = 0
            while due <= mono and batch < MAX_BATCH:
                due += self._rng.expovariate(self.rate)
                batch += 1
            self._due = due
            self._submit(batch)
        except QueuelabError:
            self._paused_until = mono + ERROR_PAUSE_SECONDS
            raise

    def interval(self) -> float:
        return self.wait_at(time.monotonic())

    def wait_at(self, mono: float) -> float:
        """Seconds from ``mono`` to the next tick: to the next arrival, but at most ``every``
        (so a turned knob takes effect soon), or to the end of the pause after a failure."""
        if mono < self._paused_until:
            return self._paused_until - mono
        if self._due is None:
            return 0.0
        return max(0.0, min(self.every, self._due - mono))

    def _submission(self) -> Submission:
        payload = {"duration": round(self._rng.expovariate(1 / self.duration), 6) if self.duration else 0.0}
        if self.fail_rate:
            payload["fail_rate"] = self.fail_rate
        user = f"user-{self._rng.randrange(self.users)}"
        return Submission(task="simulate", payload=payload, user_id=user, queue=self.queue)

    def _submit(self, n: int) -> None:
        for sub in [self._submission() for _ in range(n)]:
            try:
                self.q.submit_many([sub])
                self.submitted += 1
            except (RateLimited, QuotaExceeded):
                self.refused += 1
