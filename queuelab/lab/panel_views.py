"""What the control panel shows of jobs, as small HTML fragments: the recent jobs, and one
job in detail with why it waits (``explain``) and what people did to it. Every value that
came from a user (payloads, ids, errors) is escaped: a payload holding ``<script>`` shows as text."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence

from queuelab.explain import Explanation
from queuelab.models import Job, JobStatus
from queuelab.schedules import Schedule

RECENT_ROWS = 10


def _cells(values: Sequence[object], tag: str = "td") -> str:
    return "".join(f"<{tag}>{html.escape(str(v))}</{tag}>" for v in values)


def recent_jobs(jobs: Sequence[Job]) -> str:
    """The newest jobs as a table: id, task, user, status, attempts, created."""
    if not jobs:
        return "no jobs yet"
    head = _cells(("job", "task", "user", "status", "attempts", "created"), "th")
    rows = "".join(
        "<tr>"
        + _cells(
            (j.id[:8], j.task, j.user_id, j.status.value, j.attempts, j.created_at.astimezone().strftime("%H:%M:%S"))
        )
        + "</tr>"
        for j in jobs
    )
    return f"<table class='recent-jobs'><tr>{head}</tr>{rows}</table>"


def job_detail(job: Job, why: Explanation) -> str:
    """One job: its state and budget, payload and result, why it is where it is, each
    attempt's error, and each manual action with when and who."""
    lines = [
        f"<b>{html.escape(job.id)}</b> · {job.status.value} · {job.attempts} of {job.max_retries + 1} attempts · "
        f"user {html.escape(job.user_id)} · task {html.escape(job.task)} · queue {html.escape(job.queue)}",
        f"payload: <code>{html.escape(json.dumps(job.payload))}</code>",
        f"result: <code>{html.escape(json.dumps(job.result))}</code>" + (" (forced)" if job.forced else ""),
        f"explain: {html.escape(why.reason)}: {html.escape(why.message)}",
    ]
    if job.status is JobStatus.RUNNING and job.cancel_requested_at is not None:
        lines.append(f"cancel requested at {job.cancel_requested_at.astimezone():%H:%M:%S}, waiting for its worker")
    if job.dead_letter_reason:
        lines.append(f"dead-letter reason: {html.escape(job.dead_letter_reason)}")
    if job.progress is not None:
        note = f" · {html.escape(job.progress_message)}" if job.progress_message else ""
        lines.append(f"progress {job.progress:.0%}{note}")
    for attempt in job.errors:
        lines.append(
            f"attempt {attempt.number}: {html.escape(attempt.outcome.value)} "
            f"{html.escape(attempt.error_type or '')}: {html.escape(attempt.error_message or '')}"
        )
    for action in job.actions:
        when = action.at.astimezone().strftime("%H:%M:%S")
        who = html.escape(action.by or "(not said)")
        what = action.kind.value.lower().replace("_", " ")
        lines.append(f"{what} from {action.from_status.value} at {when} by {who}")
    return "<br>".join(lines)


def schedules_table(schedules: Sequence[Schedule]) -> str:
    """The periodic jobs: name, task, cron, time zone, next and latest tick, state."""
    if not schedules:
        return "no schedules"
    head = _cells(("schedule", "task", "cron", "time zone", "next tick", "latest tick", "state"), "th")
    rows = "".join(
        "<tr>"
        + _cells(
            (
                s.name,
                s.spec.task,
                s.spec.cron,
                s.spec.timezone,
                s.next_run_at.astimezone().strftime("%m-%d %H:%M:%S"),
                "" if s.last_tick_at is None else s.last_tick_at.astimezone().strftime("%m-%d %H:%M:%S"),
                "paused" if s.paused else "active",
            )
        )
        + "</tr>"
        for s in schedules
    )
    return f"<table class='schedules'><tr>{head}</tr>{rows}</table>"
