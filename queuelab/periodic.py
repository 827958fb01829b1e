"""The facade's periodic jobs: ``@q.periodic`` and ``q.schedule(...)`` define them,
``q.schedules()`` lists them, ``pause_schedule`` / ``resume_schedule`` / ``unschedule``
change them at run time. :class:`~queuelab.queue.Queue` takes these methods from
:class:`PeriodicMethods`; the scheduler that enqueues the ticks runs in every worker
(:mod:`queuelab.runtime.scheduler`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from queuelab.errors import InvalidSchedule, UnknownTask
from queuelab.runtime import Runtime
from queuelab.schedules import Schedule, ScheduleSpec, check_cron, check_name, check_spec, check_timezone
from queuelab.submission import Submission, build_row
from queuelab.tasks import Task


class PeriodicMethods:
    """Mixed into :class:`~queuelab.queue.Queue` (which sets ``_runtime``)."""

    _runtime: Runtime

    def periodic(
        self,
        cron: str,
        *,
        name: str | None = None,
        payload: dict[str, Any] | None = None,
        timezone: str = "UTC",
        queue: str | None = None,
        priority: int | None = None,
        user_id: str = "default",
        catch_up: int = 0,
    ) -> Callable[[Task], Task]:
        """Run a task on a schedule: ``@q.periodic("*/5 * * * *")`` above ``@q.task``.

        The definition is checked now (:class:`InvalidSchedule` for a bad cron expression,
        time zone or name) and written to the database when a worker starts. ``name``
        defaults to the task's; ``catch_up``: after downtime, enqueue at most this many
        missed ticks (0: skip them). Returns the task unchanged."""
        check_cron(cron)  # here, at the decorator's line, before a task is at hand
        check_timezone(timezone)

        def register(task: Task) -> Task:
            if not isinstance(task, Task):
                raise InvalidSchedule(f"@q.periodic goes above @q.task, got {task!r}")
            spec = ScheduleSpec(
                name=task.name if name is None else name,
                task=task.name,
                cron=cron,
                timezone=timezone,
                payload={} if payload is None else payload,
                queue=queue,
                priority=priority,
                user_id=user_id,
                catch_up=catch_up,
            )
            checked = self._checked(spec)
            self._runtime.periodic[checked.name] = checked
            return task

        return register

    def schedule(
        self,
        task: str | Task,
        *,
        cron: str,
        name: str | None = None,
        payload: dict[str, Any] | None = None,
        timezone: str = "UTC",
        queue: str | None = None,
        priority: int | None = None,
        user_id: str = "default",
        catch_up: int = 0,
    ) -> Schedule:
        """Create a schedule now, or change the one named ``name`` (default: the task's
        name); a pause stays, and a new cron or time zone starts from its next tick.
        Checked like :meth:`periodic`; returns the stored schedule."""
        task_name = task.name if isinstance(task, Task) else task
        spec = ScheduleSpec(
            name=task_name if name is None else name,
            task=task_name,
            cron=cron,
            timezone=timezone,
            payload={} if payload is None else payload,
            queue=queue,
            priority=priority,
            user_id=user_id,
            catch_up=catch_up,
        )
        return self._runtime.schedules.define(self._checked(spec), self._runtime.clock.now())

    def schedules(self) -> list[Schedule]:
        """Every schedule in the database, by name (those of ``@q.periodic`` once a worker
        has started), with its next tick, its latest and whether it is paused."""
        return self._runtime.schedules.all()

    def get_schedule(self, name: str) -> Schedule:
        """The schedule named ``name``; :class:`ScheduleNotFound` if there is none."""
        return self._runtime.schedules.get(check_name(name))

    def pause_schedule(self, name: str) -> Schedule:
        """Enqueue no more ticks of ``name`` until :meth:`resume_schedule`."""
        return self._runtime.schedules.set_paused(check_name(name), True, self._runtime.clock.now())

    def resume_schedule(self, name: str) -> Schedule:
        """Enqueue ``name``'s ticks again, from its next tick (the paused ones are not caught up)."""
        return self._runtime.schedules.set_paused(check_name(name), False, self._runtime.clock.now())

    def unschedule(self, name: str) -> None:
        """Delete the schedule ``name`` (the jobs it enqueued stay). A ``@q.periodic``
        definition comes back at the next worker start unless removed from the code."""
        self._runtime.schedules.delete(check_name(name))

    def _checked(self, spec: ScheduleSpec) -> ScheduleSpec:
        """``spec`` checked: its own fields, then a job of it against its task."""
        checked = check_spec(spec)
        if checked.task not in self._runtime.tasks:
            raise UnknownTask(f"schedule {checked.name!r}: no task is registered under the name {checked.task!r}")
        sub = Submission(
            task=checked.task,
            payload=checked.payload,
            user_id=checked.user_id,
            queue=checked.queue,
            priority=checked.priority,
        )
        build_row(sub, self._runtime.tasks.get(checked.task), self._runtime.settings, 0.0)
        return checked
