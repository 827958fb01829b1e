"""A load generator whose knobs can be turned while it runs: Poisson arrivals of ``simulate``
jobs at ``rate`` per second, spread over ``users`` users, each running about ``duration``
seconds and failing with probability ``fail_rate`` per attempt. The control panel drives
it; a notebook can too."""

from __future__ import annotations

import logging
import random
import threading
import time

from queuelab.errors import InvalidArgument, QueuelabError, QuotaExceeded, RateLimited
from queuelab.queue import Queue
from queuelab.submission import Submission

log = logging.getLogger("queuelab.live_load")

MAX_RATE = 10_000.0
MAX_BATCH = 200


class LoadGenerator:
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
        self.q, self.queue = q, queue
        self.rate, self.users, self.fail_rate, self.duration = rate, users, fail_rate, duration
        self.check()
        self.submitted = 0
        self.refused = 0
        self.errors = 0
        self.last_error: str | None = None
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

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

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> LoadGenerator:
        if self.running:
            return self
        self.check()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="queuelab-load", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._thread = None

    def _loop(self) -> None:
        due = time.monotonic()
        while not self._stop.is_set():
            self.check()  # a knob may have been turned
            now = time.monotonic()
            batch = 0
            while due <= now and batch < MAX_BATCH:
                due += self._rng.expovariate(self.rate)
                batch += 1
            if batch:
                self._submit(batch)
            self._stop.wait(max(0.0, min(0.1, due - time.monotonic())))

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
            except QueuelabError as exc:  # the database went away, say: keep trying, say why
                self.errors += 1
                self.last_error = str(exc)
                log.warning("load generator could not submit: %s", exc)
                self._stop.wait(0.5)
                return
