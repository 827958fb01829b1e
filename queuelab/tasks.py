"""Tasks: named functions a job runs, registered with ``@q.task``, and the built-in
``simulate`` task of the prototype."""

from __future__ import annotations

import functools
import inspect
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from queuelab import bounds
from queuelab.errors import InvalidArgument, SimulatedFailure, UnknownTask
from queuelab.limits import RateLimit
from queuelab.models import RetryPolicy

PayloadCheck = Callable[[dict[str, Any]], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Task:
    """A registered task. Calling it calls the function directly (no queue involved)."""

    name: str
    fn: Callable[..., Any]
    queue: str = "default"
    priority: int = 0
    max_retries: int | None = None  # None: the queue's setting
    lease_seconds: float | None = None
    timeout_seconds: float | None = None
    retry: RetryPolicy | None = None
    check: PayloadCheck | None = None
    # At most this many starts per sliding window, across every worker: stored by each
    # worker that serves the task when it starts (``q.set_throttle`` changes it at run time).
    throttle: RateLimit | None = None
    # An ``async def`` task: a worker runs it on its event loop (see runtime.coroutines),
    # many at once, rather than in a slot thread. Set from ``fn``, never guessed elsewhere.
    is_async: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "is_async", inspect.iscoroutinefunction(self.fn))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    @property
    def ref(self) -> tuple[str, str]:
        """(module, qualified name) of the function, so a spawned process can import it."""
        return self.fn.__module__, self.fn.__qualname__

    def check_payload(self, payload: dict[str, Any]) -> None:
        """Raise :class:`InvalidArgument` if the task could not be called with ``payload``."""
        misfit = _misfit(self.fn, tuple(payload))
        if misfit is not None:
            raise InvalidArgument(f"payload does not fit task {self.name!r}: {misfit}")
        if self.check is not None:
            self.check(payload)

    def run(self, payload: dict[str, Any]) -> Any:
        """Call the function with ``payload``: its result, or for an async task the
        coroutine to await."""
        return self.fn(**payload)


@functools.lru_cache(maxsize=4096)
def _misfit(fn: Callable[..., Any], keys: tuple[Any, ...]) -> str | None:
    """Why ``fn`` cannot take keyword arguments named ``keys`` (None if it can). Binding
    depends on the names alone, so a bulk submit of one shape binds once, not per job."""
    try:
        inspect.signature(fn).bind(**dict.fromkeys(keys))
    except TypeError as exc:
        return str(exc)
    return None


class TaskRegistry:
    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}

    def add(self, task: Task) -> Task:
        if not bounds.TASK_NAME.fullmatch(task.name):
            raise InvalidArgument(
                f"task name must start with a letter or _ and hold only letters, digits and _ . : -, "
                f"at most {bounds.MAX_TASK_NAME_LENGTH} characters; got {task.name!r}"
            )
        self._tasks[task.name] = task
        return task

    def get(self, name: str) -> Task:
        try:
            return self._tasks[name]
        except (KeyError, TypeError):
            known = ", ".join(sorted(self._tasks)) or "none"
            raise UnknownTask(f"unknown task {name!r}; registered tasks: {known}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def __iter__(self) -> Iterator[Task]:
        return iter(list(self._tasks.values()))


def simulate(
    duration: float = 0.0, fail_simulation: bool = False, fail_rate: float = 0.0, **_ignored: Any
) -> dict[str, Any]:
    """The prototype's demo task: sleep ``duration`` seconds, then fail if asked to
    (``fail_simulation``) or at random with probability ``fail_rate``."""
    if duration:
        time.sleep(duration)
    if fail_simulation:
        raise SimulatedFailure("simulated failure (fail_simulation is true)")
    if fail_rate and random.random() < fail_rate:
        raise SimulatedFailure(f"simulated failure (fail_rate={fail_rate:g})")
    return {"slept": duration}


def check_simulate(payload: dict[str, Any]) -> None:
    duration = payload.get("duration", 0)
    if not bounds.is_number(duration) or not 0 <= duration <= bounds.MAX_SIMULATED_SECONDS:
        raise InvalidArgument(
            f"payload.duration must be {bounds.seconds_form(bounds.MAX_SIMULATED_SECONDS, zero_ok=True)}, "
            f"got {duration!r}"
        )
    if not isinstance(payload.get("fail_simulation", False), bool):
        raise InvalidArgument(f"payload.fail_simulation must be true or false, got {payload['fail_simulation']!r}")
    rate = payload.get("fail_rate", 0)
    if not bounds.is_number(rate) or not 0 <= rate <= 1:
        raise InvalidArgument(f"payload.fail_rate must be a probability between 0 and 1, got {rate!r}")


def builtin_tasks() -> list[Task]:
    return [Task(name="simulate", fn=simulate, check=check_simulate)]
