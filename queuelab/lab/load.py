"""Load shapes for experiments: when jobs arrive, for which user, how long they run and how
often an attempt fails.

A *shape* gives arrival times (seconds from the start); a *duration* gives run times; a
:class:`Tenant` ties a user to a shape, a duration and a failure rate. :func:`plan` turns
a load (a shape, a tenant or a list of tenants) into one table of arrivals, seeded, so the
same parameters replay the same load.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeAlias

import numpy as np

from queuelab import bounds
from queuelab.errors import InvalidArgument
from queuelab.submission import check_user_id

if TYPE_CHECKING:
    import pandas as pd

PLAN_COLUMNS = ("at", "user_id", "duration", "fail_rate", "priority")


class Shape(Protocol):
    def arrivals(self, rng: np.random.Generator) -> np.ndarray:
        """Arrival offsets in seconds, sorted."""
        ...


class Duration(Protocol):
    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray: ...


# -- arrival shapes -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rate:
    rate: float
    seconds: float

    def __post_init__(self) -> None:
        bounds.number("rate", self.rate)
        bounds.number("seconds", self.seconds)


@dataclass(frozen=True, slots=True)
class Constant(_Rate):
    """``rate`` jobs per second, evenly spaced, for ``seconds``."""

    def arrivals(self, rng: np.random.Generator) -> np.ndarray:
        return np.arange(0.0, self.seconds, 1.0 / self.rate)


@dataclass(frozen=True, slots=True)
class Poisson(_Rate):
    """Poisson arrivals: exponential gaps with mean ``1 / rate``, for ``seconds``."""

    def arrivals(self, rng: np.random.Generator) -> np.ndarray:
        n = rng.poisson(self.rate * self.seconds)
        return np.sort(rng.uniform(0.0, self.seconds, n))


@dataclass(frozen=True, slots=True)
class Burst:
    """``jobs`` jobs at once at ``at`` seconds, or spread uniformly over ``spread`` seconds."""

    jobs: int
    at: float = 0.0
    spread: float = 0.0

    def __post_init__(self) -> None:
        bounds.whole("jobs", self.jobs, 1)
        bounds.number("at", self.at, zero_ok=True)
        bounds.number("spread", self.spread, zero_ok=True)

    def arrivals(self, rng: np.random.Generator) -> np.ndarray:
        if not self.spread:
            return np.full(self.jobs, float(self.at))
        return np.sort(self.at + rng.uniform(0.0, self.spread, self.jobs))


@dataclass(frozen=True, slots=True)
class Ramp:
    """A rate rising (or falling) linearly from ``start_rate`` to ``end_rate`` over ``seconds``."""

    start_rate: float
    end_rate: float
    seconds: float

    def __post_init__(self) -> None:
        bounds.number("start_rate", self.start_rate, zero_ok=True)
        bounds.number("end_rate", self.end_rate, zero_ok=True)
        bounds.number("seconds", self.seconds)
        if self.start_rate == self.end_rate == 0:
            raise InvalidArgument("a ramp needs start_rate or end_rate > 0")

    def arrivals(self, rng: np.random.Generator) -> np.ndarray:
        # The k-th arrival is where the expected count a*t + (b-a)*t^2/(2T) reaches k + 1/2.
        a, b, t = self.start_rate, self.end_rate, self.seconds
        total = (a + b) * t / 2
        k = np.arange(int(total)) + 0.5
        slope = (b - a) / t
        if abs(slope) < 1e-12:
            return k / a
        times: np.ndarray = (-a + np.sqrt(a * a + 2 * slope * k)) / slope
        return times


# -- durations ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fixed:
    seconds: float

    def __post_init__(self) -> None:
        bounds.number("seconds", self.seconds, zero_ok=True)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, float(self.seconds))


@dataclass(frozen=True, slots=True)
class Exponential:
    mean: float

    def __post_init__(self) -> None:
        bounds.number("mean", self.mean)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.exponential(self.mean, n)


@dataclass(frozen=True, slots=True)
class Uniform:
    low: float
    high: float

    def __post_init__(self) -> None:
        bounds.number("low", self.low, zero_ok=True)
        bounds.number("high", self.high, zero_ok=True)
        if self.high < self.low:
            raise InvalidArgument(f"high ({self.high}) must be >= low ({self.low})")

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, n)


@dataclass(frozen=True, slots=True)
class LogNormal:
    """Heavy-tailed run times: half the jobs take less than ``median`` seconds."""

    median: float
    sigma: float = 1.0

    def __post_init__(self) -> None:
        bounds.number("median", self.median)
        bounds.number("sigma", self.sigma, zero_ok=True)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.lognormal(math.log(self.median), self.sigma, n)


# -- tenants and plans ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Tenant:
    """One user's share of a load."""

    user_id: str
    shape: Shape
    duration: Duration | float = 0.0
    fail_rate: float = 0.0  # the chance that each attempt fails
    priority: int = 0

    def __post_init__(self) -> None:
        check_user_id(self.user_id)
        if not hasattr(self.shape, "arrivals"):
            raise InvalidArgument(f"shape must be a load shape (Constant, Poisson, Burst, Ramp), got {self.shape!r}")
        if isinstance(self.duration, int | float) and not isinstance(self.duration, bool):
            bounds.number("duration", self.duration, zero_ok=True)
        elif not hasattr(self.duration, "sample"):
            raise InvalidArgument(f"duration must be seconds or a distribution, got {self.duration!r}")
        if not bounds.is_number(self.fail_rate) or not 0 <= self.fail_rate <= 1:
            raise InvalidArgument(f"fail_rate must be a probability between 0 and 1, got {self.fail_rate!r}")


Load: TypeAlias = "Shape | Tenant | Sequence[Tenant]"


def heavy_and_light(
    *,
    heavy: int = 1,
    heavy_shape: Shape,
    light: int = 5,
    light_shape: Shape,
    duration: Duration | float = 0.0,
    fail_rate: float = 0.0,
) -> list[Tenant]:
    """A multi-tenant mix: ``heavy`` users (``heavy-0``...) each with ``heavy_shape``, and
    ``light`` users (``light-0``...) each with ``light_shape``."""
    return [
        Tenant(user_id=f"{kind}-{i}", shape=shape, duration=duration, fail_rate=fail_rate)
        for kind, count, shape in (("heavy", heavy, heavy_shape), ("light", light, light_shape))
        for i in range(count)
    ]


def tenants_of(load: Load) -> list[Tenant]:
    if isinstance(load, Tenant):
        return [load]
    if hasattr(load, "arrivals"):
        return [Tenant(user_id="user", shape=load)]
    if isinstance(load, Sequence) and load and all(isinstance(t, Tenant) for t in load):
        return list(load)
    raise InvalidArgument(
        f"load must be a shape (Constant, Poisson, Burst, Ramp), a Tenant or a list of them, got {load!r}"
    )


def plan(load: Load, *, seed: int = 0) -> pd.DataFrame:
    """Every arrival of ``load`` as a row (at, user_id, duration, fail_rate, priority), by time."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    parts = []
    for tenant in tenants_of(load):
        at = tenant.shape.arrivals(rng)
        duration = tenant.duration
        runs = duration.sample(rng, len(at)) if hasattr(duration, "sample") else np.full(len(at), float(duration))
        parts.append(
            pd.DataFrame(
                {
                    "at": at,
                    "user_id": tenant.user_id,
                    "duration": np.round(np.clip(runs, 0.0, bounds.MAX_SIMULATED_SECONDS), 6),
                    "fail_rate": float(tenant.fail_rate),
                    "priority": tenant.priority,
                }
            )
        )
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(PLAN_COLUMNS))
    return frame.sort_values("at", kind="stable").reset_index(drop=True)
