"""A discrete-event simulator of an autoscaled worker pool: replay a load trace against a
:class:`~queuelab.runtime.autoscale.ScalePolicy` in seconds of wall time, and read off the cost
(worker-seconds) and the waits it buys.

Pure and deterministic: no clock reads, no I/O, one seeded random generator. The model is
the local pool's: jobs wait in arrival order; a free, ready worker starts the next one at
once; every ``tick_seconds`` the policy (:func:`~queuelab.runtime.autoscale.decide_scale`, the very
function the real :class:`~queuelab.runtime.autoscale.Autoscaler` calls) sees the runnable backlog,
the running jobs, the pool size, how long no runnable job has waited and the time since the
last change. A new worker is ready ``startup_seconds`` after the decision; a removed one is an
idle one if any, else one still starting, else a busy one that stops after its job (a
process pool's graceful SIGTERM). A worker costs from the moment it is asked for until it
is gone.

    >>> from queuelab.lab.simulator import Fixed, burst, simulate
    >>> from queuelab.runtime.autoscale import ScalePolicy
    >>> simulate(burst(100), Fixed(1.0), ScalePolicy(min_workers=1, max_workers=1)).drain_seconds
    100.0
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from queuelab import bounds
from queuelab.errors import InvalidArgument
from queuelab.lab.load import Constant, Duration, Exponential, Fixed, LogNormal, Poisson
from queuelab.runtime.autoscale import ScaleMetrics, ScalePolicy, decide_scale

__all__ = [
    "Duration",
    "Exponential",
    "Fixed",
    "LogNormal",
    "SimResult",
    "Trace",
    "burst",
    "diurnal",
    "simulate",
    "steady",
]

if TYPE_CHECKING:
    import pandas as pd

DAY_SECONDS = 86_400.0
FloatArray = np.ndarray[Any, np.dtype[np.float64]]


# -- load traces ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class Trace:
    """Job arrival times in seconds from 0, sorted, over ``seconds`` of load."""

    name: str
    arrivals: FloatArray
    seconds: float

    def __add__(self, other: Trace) -> Trace:
        merged = np.sort(np.concatenate([self.arrivals, other.arrivals]))
        return Trace(f"{self.name}+{other.name}", merged, max(self.seconds, other.seconds))

    def __len__(self) -> int:
        return len(self.arrivals)


def steady(rate_per_second: float, seconds: float, *, poisson: bool = True, seed: int = 0) -> Trace:
    """A constant rate: Poisson arrivals, or evenly spaced ones with ``poisson=False``."""
    bounds.number("rate_per_second", rate_per_second)
    bounds.number("seconds", seconds)
    shape = Poisson(rate_per_second, seconds) if poisson else Constant(rate_per_second, seconds)
    return Trace("steady", shape.arrivals(np.random.default_rng(seed)).astype(np.float64), float(seconds))


def burst(jobs: int, *, at: float = 0.0, over_seconds: float = 0.0) -> Trace:
    """``jobs`` arriving at ``at`` all at once, or evenly over ``over_seconds``."""
    bounds.whole("jobs", jobs, 1)
    bounds.number("at", at, zero_ok=True)
    bounds.number("over_seconds", over_seconds, zero_ok=True)
    arrivals = at + np.arange(jobs) * (over_seconds / jobs)
    return Trace("burst", arrivals.astype(np.float64), float(at + over_seconds))


def diurnal(
    mean_rate_per_second: float,
    *,
    seconds: float = DAY_SECONDS,
    peak_to_trough: float = 4.0,
    peak_at_seconds: float = 14 * 3600.0,
    seed: int = 0,
) -> Trace:
    """A day's cycle: Poisson arrivals whose rate follows a cosine with period one day, peaking
    at ``peak_at_seconds`` at ``peak_to_trough`` times the rate of the quietest hour."""
    bounds.number("mean_rate_per_second", mean_rate_per_second)
    bounds.number("seconds", seconds)
    if peak_to_trough < 1:
        raise InvalidArgument(f"peak_to_trough must be >= 1, got {peak_to_trough!r}")
    amplitude = (peak_to_trough - 1) / (peak_to_trough + 1)
    top = mean_rate_per_second * (1 + amplitude)
    rng = np.random.default_rng(seed)
    candidates = np.sort(rng.uniform(0.0, seconds, rng.poisson(top * seconds)))
    rate = mean_rate_per_second * (1 + amplitude * np.cos(2 * np.pi * (candidates - peak_at_seconds) / DAY_SECONDS))
    kept = candidates[rng.uniform(0.0, top, len(candidates)) < rate]  # thinning
    return Trace("diurnal", kept, float(seconds))


# -- job durations: the lab's distributions (queuelab.lab.load), re-exported here -----------------


# -- the result -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class SimResult:
    """What a run cost and what it bought. Times in seconds from the start of the trace."""

    trace: str
    jobs: int
    unfinished: int  # jobs not finished when the run ended (a policy that never served them)
    worker_seconds: float  # cost: workers asked for, integrated over the run
    wait_p50: float
    wait_p95: float
    wait_max: float
    max_workers: int
    time_to_peak: float  # when the pool size first reached max_workers
    drain_seconds: float  # when the last job finished (nan if some never did)
    end_seconds: float  # how far the run went (the cost's window)
    job_frame: pd.DataFrame = field(repr=False)  # arrival, start, finish, wait, duration per job
    timeline: pd.DataFrame = field(repr=False)  # per tick: time, workers, provisioned, busy, starting, backlog
    decisions: pd.DataFrame = field(repr=False)  # time, backlog, running, workers_before, workers_after, reason

    def summary(self) -> dict[str, float | int | str]:
        """The headline numbers, one row of a comparison table."""
        names = ("trace", "jobs", "unfinished", "worker_seconds", "wait_p50", "wait_p95", "wait_max")
        more = ("max_workers", "time_to_peak", "drain_seconds")
        return {name: getattr(self, name) for name in (*names, *more)}


# -- the simulation ---------------------------------------------------------------------------


def simulate(
    trace: Trace,
    durations: Duration,
    policy: ScalePolicy,
    *,
    tick_seconds: float = 2.0,
    startup_seconds: float = 0.0,
    initial_workers: int | None = None,
    until_seconds: float | None = None,
    seed: int = 0,
) -> SimResult:
    """Replay ``trace`` with job durations drawn from ``durations`` against ``policy``.

    The pool starts with ``initial_workers`` ready workers (default: the policy's minimum).
    The run ends when the last job has finished and the trace is over (giving up a day
    after the trace), or exactly at ``until_seconds`` if given: to watch the pool scale back
    down, or to compare costs over one window."""
    bounds.number("tick_seconds", tick_seconds)
    bounds.number("startup_seconds", startup_seconds, zero_ok=True)
    start = policy.min_workers if initial_workers is None else initial_workers
    bounds.whole("initial_workers", start, 0)
    if until_seconds is not None:
        bounds.number("until_seconds", until_seconds)
    service = durations.sample(np.random.default_rng(seed), len(trace))
    pool = _Pool(trace.arrivals, service, policy, tick_seconds, startup_seconds, start)
    if until_seconds is None:
        pool.run(trace.seconds, trace.seconds + DAY_SECONDS, stop_when_drained=True)
    else:
        pool.run(trace.seconds, until_seconds, stop_when_drained=False)
    return pool.result(trace.name)


class _Pool:
    """The simulation's state. Events, earliest first: a job finishes, a worker becomes
    ready, a job arrives, the autoscaler ticks (ties in that order)."""

    def __init__(
        self, arrivals: FloatArray, service: FloatArray, policy: ScalePolicy, tick: float, startup: float, start: int
    ) -> None:
        self.arrivals, self.service, self.policy, self.tick, self.startup = arrivals, service, policy, tick, startup
        self.started = np.full(len(arrivals), np.nan)
        self.waiting: deque[int] = deque()
        self.finishing: list[float] = []  # finish times of the running jobs (a heap)
        self.starting: list[float] = []  # ready times of workers starting up (a heap)
        self.idle, self.retiring, self.target = start, 0, start
        self.next_arrival = 0
        self.now = self.cost = 0.0
        self.changed_at = -math.inf  # the pool has been this size since long before the trace
        self.idle_since: float | None = None
        self.done_at = math.nan if len(arrivals) else 0.0
        self.peak, self.peak_at = start, 0.0
        self.samples: list[tuple[float, int, int, int, int, int]] = []
        self.changes: list[tuple[float, int, int, int, int, str]] = []

    @property
    def busy(self) -> int:
        return len(self.finishing)

    def run(self, trace_seconds: float, until: float, *, stop_when_drained: bool) -> None:
        next_tick = self.tick
        self._sample()
        while True:
            arrival = self.arrivals[self.next_arrival] if self.next_arrival < len(self.arrivals) else math.inf
            finish = self.finishing[0] if self.finishing else math.inf
            ready = self.starting[0] if self.starting else math.inf
            when = min(finish, ready, arrival, next_tick)
            if when > until or (stop_when_drained and self._all_done() and when > trace_seconds):
                break
            self._advance(when)
            if finish == when:
                self._finish()
            elif ready == when:
                self._ready()
            elif arrival == when:
                self._arrive()
            else:
                self._decide()
                self._sample()
                next_tick += self.tick
        drained = stop_when_drained and self._all_done()
        self._advance(max(self.now, trace_seconds) if drained else until)

    def _all_done(self) -> bool:
        return self.next_arrival == len(self.arrivals) and not self.waiting and not self.finishing

    def _advance(self, when: float) -> None:
        self.cost += (self.idle + self.busy + len(self.starting)) * (when - self.now)
        self.now = when

    def _finish(self) -> None:
        heapq.heappop(self.finishing)
        if self.retiring:
            self.retiring -= 1  # a removed worker stops after its job
        else:
            self.idle += 1
        self._dispatch()
        if self._all_done():
            self.done_at = self.now

    def _ready(self) -> None:
        heapq.heappop(self.starting)
        self.idle += 1
        self._dispatch()

    def _arrive(self) -> None:
        self.waiting.append(self.next_arrival)
        self.next_arrival += 1
        self._dispatch()

    def _dispatch(self) -> None:
        while self.idle and self.waiting:
            job = self.waiting.popleft()
            self.idle -= 1
            self.started[job] = self.now
            heapq.heappush(self.finishing, self.now + float(self.service[job]))

    def _decide(self) -> None:
        backlog, running = len(self.waiting), self.busy
        if backlog:  # idle: no runnable job waits (as the autoscaler counts it)
            self.idle_since = None
        elif self.idle_since is None:
            self.idle_since = self.now
        metrics = ScaleMetrics(
            runnable_backlog=backlog,
            running=running,
            workers=self.target,
            idle_for_seconds=0.0 if self.idle_since is None else self.now - self.idle_since,
            since_last_change_seconds=self.now - self.changed_at,
        )
        decision = decide_scale(metrics, self.policy)
        if decision.changes(self.target):
            self.changes.append((self.now, backlog, running, self.target, decision.workers, decision.reason))
            self._resize(decision.workers)

    def _resize(self, n: int) -> None:
        if n > self.target:
            for _ in range(n - self.target):
                heapq.heappush(self.starting, self.now + self.startup)
        else:
            self._shrink(self.target - n)
        self.target, self.changed_at = n, self.now
        if n > self.peak:
            self.peak, self.peak_at = n, self.now

    def _shrink(self, surplus: int) -> None:
        """Idle workers go first, then those still starting (latest first), then busy ones
        after their job."""
        gone = min(self.idle, surplus)
        self.idle -= gone
        surplus -= gone
        if surplus and self.starting:
            cancelled = min(len(self.starting), surplus)
            self.starting = sorted(self.starting)[: len(self.starting) - cancelled]
            surplus -= cancelled
        self.retiring += surplus

    def _sample(self) -> None:
        provisioned = self.idle + self.busy + len(self.starting)
        self.samples.append((self.now, self.target, provisioned, self.busy, len(self.starting), len(self.waiting)))

    def result(self, name: str) -> SimResult:
        import pandas as pd

        finished = self.started + self.service
        waits = self.started - self.arrivals
        ran = waits[~np.isnan(waits)]
        unfinished = int(np.sum(np.isnan(self.started) | (finished > self.now)))
        jobs = pd.DataFrame(
            {
                "arrival": self.arrivals,
                "start": self.started,
                "finish": finished,
                "wait": waits,
                "duration": self.service,
            }
        )
        timeline = pd.DataFrame(self.samples, columns=["time", "workers", "provisioned", "busy", "starting", "backlog"])
        decisions = pd.DataFrame(
            self.changes, columns=["time", "backlog", "running", "workers_before", "workers_after", "reason"]
        )
        return SimResult(
            trace=name,
            jobs=len(self.arrivals),
            unfinished=unfinished,
            worker_seconds=float(self.cost),
            wait_p50=_percentile(ran, 50),
            wait_p95=_percentile(ran, 95),
            wait_max=float(ran.max()) if len(ran) else math.nan,
            max_workers=self.peak,
            time_to_peak=self.peak_at,
            drain_seconds=float(self.done_at) if not unfinished else math.nan,
            end_seconds=float(self.now),
            job_frame=jobs,
            timeline=timeline,
            decisions=decisions,
        )


def _percentile(values: FloatArray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else math.nan
