"""``python -m queuelab jobs | show | submit | requeue | force-success | cancel``: see and act
on jobs from a shell. Readable tables by default, ``--json`` for scripts, and exit codes a
script can trust (:data:`EXIT_CODES`)."""

from __future__ import annotations

import argparse
import getpass
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import datetime
from enum import Enum
from typing import Any

from queuelab.errors import (
    InvalidArgument,
    InvalidTransition,
    JobNotFound,
    QuotaExceeded,
    RateLimited,
    ScheduleNotFound,
)
from queuelab.models import Job, JobStatus
from queuelab.queue import Queue, load_queue

# What a command's exit status means (0: done).
EXIT_CODES = {
    InvalidArgument: 2,  # bad input: an unknown task, a bad filter, a payload that is not JSON...
    JobNotFound: 3,  # no job with that id
    ScheduleNotFound: 3,  # no schedule with that name
    InvalidTransition: 4,  # not allowed in the job's state (requeue a RUNNING job...)
    RateLimited: 5,  # refused by the user's limits
    QuotaExceeded: 5,
}
EPILOG = "exit status: 0 done, 2 bad input, 3 no such job, 4 not allowed in the job's state, 5 refused by a limit"
TABLE = ("id", "status", "task", "user", "queue", "attempts", "created")


def add_commands(commands: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the job commands to the CLI's subparsers; ``common`` adds --db and --app."""

    def command(name: str, help: str, run: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(name, help=help, epilog=EPILOG)
        common(parser)
        parser.add_argument("--json", action="store_true", help="print JSON instead of text")
        parser.set_defaults(command=run)
        return parser

    jobs = command("jobs", "list jobs, newest first", _jobs)
    _filters(jobs)
    jobs.add_argument("--status", default=None, help="PENDING, RUNNING, COMPLETED, FAILED or CANCELLED")
    jobs.add_argument("--limit", type=int, default=20, help="how many (default 20)")

    show = command("show", "a job with its attempts, errors, manual actions, and why it waits", _show)
    show.add_argument("job_id")

    submit = command("submit", "submit a job", _submit)
    submit.add_argument("task")
    submit.add_argument("--payload", default="{}", help="a JSON object (default {})")
    submit.add_argument("--user", default="default")
    submit.add_argument("--queue", default=None)
    submit.add_argument("--priority", type=int, default=None)
    submit.add_argument("--delay", type=float, default=None, help="seconds before it may start")
    submit.add_argument("--idempotency-key", default=None)
    submit.add_argument(
        "--after", action="append", default=[], metavar="JOB_ID", help="run after this job (repeatable)"
    )

    requeue = command("requeue", "requeue a job, or the dead-letter queue (--dlq)", _requeue)
    requeue.add_argument("job_id", nargs="?", default=None)
    requeue.add_argument("--dlq", action="store_true", help="every FAILED job matching the filters")
    _filters(requeue)
    requeue.add_argument("--rate", type=float, default=None, help="with --dlq: jobs per second made runnable")
    _by(requeue)

    force = command("force-success", "mark a FAILED (or COMPLETED) job COMPLETED", _force_success)
    force.add_argument("job_id")
    force.add_argument("--result", default=None, help="a JSON value to store as the result")
    _by(force)

    cancel = command("cancel", "cancel a PENDING job, or ask a RUNNING one's worker to stop it", _cancel)
    cancel.add_argument("job_id")
    _by(cancel)


def exit_code(exc: Exception) -> int:
    """The exit status for a queuelab error (2 for any other)."""
    return next((code for kind, code in EXIT_CODES.items() if isinstance(exc, kind)), 2)


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", default=None)
    parser.add_argument("--queue", default=None)
    parser.add_argument("--task", default=None)


def _by(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--by", default=None, help="who acts, kept in the job's history (default: your login)")


def _who(args: argparse.Namespace) -> str:
    if args.by is not None:
        return str(args.by)
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        return "cli"


def _queue(args: argparse.Namespace) -> Queue:
    return load_queue(args.db, args.app)


# -- commands -----------------------------------------------------------------------------


def _jobs(args: argparse.Namespace) -> int:
    found = _queue(args).jobs(status=args.status, user_id=args.user, queue=args.queue, task=args.task, limit=args.limit)
    if args.json:
        _print_json([_plain_job(job) for job in found])
    else:
        rows = [(j.id, j.status.value, j.task, j.user_id, j.queue, str(j.attempts), _time(j.created_at)) for j in found]
        print(_table(TABLE, rows) if rows else "no jobs")
    return 0


def _show(args: argparse.Namespace) -> int:
    q = _queue(args)
    job, why = q.get(args.job_id), q.explain(args.job_id)
    if args.json:
        _print_json({**_plain_job(job), "explain": {"reason": why.reason, "message": why.message}})
        return 0
    print(f"{job.id}  {job.status.value}  task {job.task}  user {job.user_id}  queue {job.queue}")
    print(f"attempts {job.attempts} of {job.max_retries + 1}, priority {job.priority}, created {_time(job.created_at)}")
    print(f"payload {json.dumps(job.payload)}")
    if job.result is not None or job.forced:
        print(f"result {json.dumps(job.result)}{' (forced)' if job.forced else ''}")
    if job.dead_letter_reason:
        print(f"dead-letter reason: {job.dead_letter_reason}")
    if job.progress is not None:
        print(f"progress {job.progress:.0%}" + (f" {job.progress_message}" if job.progress_message else ""))
    print(f"why: {why.reason}: {why.message}")
    for attempt in job.history:
        error = f"  {attempt.error_type}: {attempt.error_message}" if attempt.error_type else ""
        error = error or (f"  {attempt.error_message}" if attempt.error_message else "")  # a cancel's why
        print(f"  attempt {attempt.number} {attempt.outcome.value} {_time(attempt.finished_at)}{error}")
    for action in job.actions:
        print(f"  {action.kind.value} from {action.from_status.value} {_time(action.at)} by {action.by or '-'}")
    return 0


def _submit(args: argparse.Namespace) -> int:
    payload = _json_arg("--payload", args.payload)
    job = _queue(args).submit(
        args.task,
        payload,
        user_id=args.user,
        queue=args.queue,
        priority=args.priority,
        delay=args.delay,
        idempotency_key=args.idempotency_key,
        after=args.after,
    )
    if args.json:
        _print_json(_plain_job(job))
    else:
        print(job.id)
    return 0


def _requeue(args: argparse.Namespace) -> int:
    q = _queue(args)
    if args.dlq == (args.job_id is not None):
        raise InvalidArgument("give a JOB_ID, or --dlq (with filters), not both and not neither")
    if args.job_id is not None:
        if args.rate is not None or args.user or args.queue or args.task:
            raise InvalidArgument("--rate and the filters go with --dlq, not with a JOB_ID")
        return _done(args, q.requeue(args.job_id, by=_who(args)), "requeued")
    count = q.requeue_many(user_id=args.user, queue=args.queue, task=args.task, rate=args.rate, by=_who(args))
    if args.json:
        _print_json({"requeued": count})
    else:
        print(f"{count} job(s) requeued")
    return 0


def _force_success(args: argparse.Namespace) -> int:
    result = None if args.result is None else _json_arg("--result", args.result)
    return _done(args, _queue(args).force_success(args.job_id, result, by=_who(args)), "completed (forced)")


def _cancel(args: argparse.Namespace) -> int:
    job = _queue(args).cancel(args.job_id, by=_who(args))
    return _done(
        args, job, "cancelled" if job.status != JobStatus.RUNNING else "cancel requested (its worker stops it)"
    )


def _done(args: argparse.Namespace, job: Job, verb: str) -> int:
    if args.json:
        _print_json(_plain_job(job))
    else:
        print(f"{job.id} {verb}: now {job.status.value}")
    return 0


# -- output -------------------------------------------------------------------------------


def _json_arg(flag: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"{flag} must be JSON, got {text!r}: {exc}") from None


def _plain_job(job: Job) -> dict[str, Any]:
    return {key: _plain(value) for key, value in asdict(job).items()}


def _plain(value: Any) -> Any:
    """A JSON-ready copy: datetimes as ISO 8601, enums by value, containers walked."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


def _time(at: datetime) -> str:
    return at.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(head, *rows, strict=True)]
    lines = [head, *rows]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in lines
    )
