"""``q.explain(job_id)``: why a job has not started, in words and as data."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from queuelab.models import AttemptOutcome, JobStatus
from queuelab.runtime import Runtime
from queuelab.store.reports import POSITION_CAP, JobFacts, Throttled, job_facts


@dataclass(frozen=True, slots=True)
class Explanation:
    reason: str  # a stable code: scheduled, retry_backoff, queue_paused, user_at_running_quota, ...
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


def explain_job(runtime: Runtime, job_id: str) -> Explanation:
    facts = job_facts(runtime.db, runtime.settings, job_id, runtime.clock.now(), runtime.settings.worker_ttl_seconds)
    return explain(facts)


def explain(facts: JobFacts) -> Explanation:
    """The first reason that holds, in the order a worker would meet them."""
    job, now = facts.job, facts.now
    if job.status != JobStatus.PENDING:
        return _not_pending(facts)
    if job.waiting_for:
        return _waiting(facts)
    run_at = job.run_at.timestamp()
    if run_at > now:
        until = _iso(run_at)
        details = {"until": until, "seconds": round(run_at - now, 3), "attempts": job.attempts}
        if job.history and job.history[-1].outcome != AttemptOutcome.RELEASED and job.attempts > 0:
            last = job.history[-1]
            details["last_error"] = f"{last.error_type}: {last.error_message}"
            return Explanation(
                "retry_backoff",
                f"waiting for its retry backoff until {until} (attempt {job.attempts} failed: {last.error_type})",
                details,
            )
        return Explanation("scheduled", f"scheduled to run at {until}", details)
    if facts.queue_paused:
        return Explanation("queue_paused", f"its queue {job.queue!r} is paused", {"queue": job.queue})
    if facts.throttled is not None:
        return _throttled(facts.throttled, now)
    quota = facts.user_max_running
    if quota is not None and facts.user_running >= quota:
        return Explanation(
            "user_at_running_quota",
            f"its user {job.user_id!r} is at the running quota ({facts.user_running} of {quota} running)",
            {"user_id": job.user_id, "running": facts.user_running, "max_running": quota},
        )
    if not any(q == "*" or job.queue in q.split(",") for q in facts.live_worker_queues):
        return Explanation(
            "no_live_worker",
            f"no live worker serves its queue {job.queue!r}",
            {"queue": job.queue, "live_workers": len(facts.live_worker_queues)},
        )
    ahead = facts.ahead
    where = f"{ahead}+" if ahead >= POSITION_CAP else str(ahead)
    return Explanation(
        "next_in_line",
        f"runnable and waiting for a free worker: {where} job(s) ahead of it",
        {"ahead": ahead, "capped": ahead >= POSITION_CAP},
    )


def _waiting(facts: JobFacts) -> Explanation:
    """A job held by its dependencies (``after=``): which parents, and what releases it."""
    parents = [{"job_id": parent, "status": status} for parent, status in facts.waiting_on]
    held = [p for p in parents if p["status"] in (None, JobStatus.FAILED, JobStatus.CANCELLED)]
    first = (held or parents or [{"job_id": "?", "status": None}])[0]
    state = "no longer stored" if first["status"] is None else first["status"]
    details = {"waiting_for": parents}
    if held:
        return Explanation(
            "parent_not_completed",
            f"waiting for job {first['job_id']}, which is {state}: requeue it (or force it to success) to "
            "release this job, or cancel this job",
            details,
        )
    return Explanation(
        "waiting_for_parent",
        f"waiting for {len(parents)} job(s) to complete first, e.g. {first['job_id']} ({state})",
        details,
    )


def _throttled(held: Throttled, now: float) -> Explanation:
    throttle, until = held.throttle, _iso(held.frees_at)
    rate = throttle.rate
    return Explanation(
        "throttled",
        f"throttled: its {throttle.scope.value} {throttle.name!r} started {held.started} jobs in the last "
        f"{rate.window_seconds:g}s and the throttle is {rate.count} per {rate.window_seconds:g}s; "
        f"it can start at {until}",
        {
            "scope": throttle.scope.value,
            "name": throttle.name,
            "started": held.started,
            "throttle": str(rate),
            "until": until,
            "seconds": round(max(0.0, held.frees_at - now), 3),
        },
    )


def _not_pending(facts: JobFacts) -> Explanation:
    job = facts.job
    status = job.status
    asked = job.cancel_requested_at
    if status == JobStatus.RUNNING and asked is not None:
        when = asked.isoformat(timespec="milliseconds")
        return Explanation(
            "cancel_requested",
            f"cancel requested at {when}, waiting for the worker {job.lease_owner} to stop it",
            {"cancel_requested_at": when, "worker_id": job.lease_owner, "attempt": job.attempts},
        )
    if status == JobStatus.RUNNING:
        return Explanation(
            "running",
            f"running on worker {job.lease_owner} (attempt {job.attempts})",
            {"worker_id": job.lease_owner, "attempt": job.attempts},
        )
    if status == JobStatus.FAILED:
        last = job.errors[-1] if job.errors else None
        why = f": {last.error_type}: {last.error_message}" if last else ""
        reason = f" ({job.dead_letter_reason})" if job.dead_letter_reason else ""
        return Explanation(
            "dead_letter",
            f"in the dead-letter queue after {job.attempts} attempt(s){reason}{why}",
            {"attempts": job.attempts, "reason": job.dead_letter_reason},
        )
    return Explanation(status.lower(), f"{status.lower()}; nothing to wait for", {})


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")
