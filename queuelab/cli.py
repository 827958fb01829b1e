"""``python -m queuelab``: run workers, a demo load, stats and pruning from a shell; list,
show, submit, requeue, force and cancel jobs (:mod:`queuelab.cli_jobs`); list, pause and
resume periodic jobs (:mod:`queuelab.cli_schedules`)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from queuelab import bounds, cli_jobs, cli_schedules, logs
from queuelab.errors import InvalidArgument, QueuelabError
from queuelab.queue import Queue, load_queue
from queuelab.runtime.autoscale import Resizable, ScalePolicy
from queuelab.runtime.metrics import require_prometheus
from queuelab.runtime.pool import MODES, check_pool_args, on_signals
from queuelab.store import compaction

log = logging.getLogger("queuelab.cli")
LOG_LEVELS = ["debug", "info", "warning", "error"]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        logs.configure(args.log_level, args.log_format)
        return int(args.command(args) or 0)
    except QueuelabError as exc:
        print(f"queuelab: error: {exc}", file=sys.stderr)
        return cli_jobs.exit_code(exc)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m queuelab", description=__doc__)
    parser.add_argument("--log-level", default=None, choices=LOG_LEVELS, help="default: QUEUELAB_LOG_LEVEL, else info")
    parser.add_argument(
        "--log-format", default=None, choices=logs.FORMATS, help="default: QUEUELAB_LOG_FORMAT, else text"
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    worker = commands.add_parser("worker", help="run a worker pool until SIGTERM or SIGINT")
    _common(worker)
    worker.add_argument("--concurrency", "-c", type=int, default=4, help="slots (thread) or processes (process)")
    worker.add_argument("--mode", choices=MODES, default="thread")
    worker.add_argument("--queues", "-q", default=None, help="comma-separated queue names (default: all)")
    worker.add_argument(
        "--prefetch",
        default=None,
        metavar="N",
        help="jobs each worker claims beyond its free slots: auto or a number (default: QUEUELAB_PREFETCH, else auto)",
    )
    worker.add_argument(
        "--async-concurrency",
        type=int,
        default=None,
        metavar="N",
        help="async (async def) jobs each worker runs at once on its event loop (default: "
        "QUEUELAB_ASYNC_CONCURRENCY, else 100)",
    )
    worker.add_argument(
        "--autoscale",
        default=None,
        metavar="MIN:MAX",
        help="scale the pool (processes, or slot threads) between MIN and MAX on the runnable backlog",
    )
    worker.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="N",
        help="serve this worker's counters and histograms (a process pool's: all its children's) on "
        "http://0.0.0.0:N/metrics for Prometheus (needs the api extra)",
    )
    worker.set_defaults(command=_worker)

    demo = commands.add_parser("demo", help="submit a small demo load and work it off")
    _common(demo)
    demo.add_argument("--jobs", type=int, default=200)
    demo.add_argument("--concurrency", "-c", type=int, default=4)
    demo.add_argument("--mode", choices=MODES, default="process")
    demo.set_defaults(command=_demo)

    stats = commands.add_parser("stats", help="print counts by status and queue, and live workers")
    _common(stats)
    stats.set_defaults(command=_stats)

    limits = commands.add_parser("limits", help="show or change per-user limits (run time, every process)")
    _common(limits)
    limits.add_argument("--user", default="*", help="a user id, or * for the defaults (default: *)")
    limits.add_argument("--rate-limit", default=None, help="submissions per sliding window: 60/minute, none")
    limits.add_argument("--max-active", default=None, help="PENDING + RUNNING jobs at once (0: off, clear: unset)")
    limits.add_argument("--max-running", default=None, help="RUNNING jobs at once (0: off, clear: unset)")
    limits.add_argument("--weight", default=None, help="share under fair scheduling, 1-1000 (clear: unset)")
    limits.set_defaults(command=_limits)

    explain = commands.add_parser("explain", help="say why a job has not started")
    _common(explain)
    explain.add_argument("job_id")
    explain.set_defaults(command=_explain)

    for verb in ("pause", "resume"):
        sub = commands.add_parser(verb, help=f"{verb} a queue (workers stop / start taking its jobs)")
        _common(sub)
        sub.add_argument("queue")
        sub.set_defaults(command=_pause if verb == "pause" else _resume)

    prune = commands.add_parser("prune", help="delete finished jobs older than the retention period")
    _common(prune)
    prune.add_argument("--older-than", type=float, default=None, help="seconds (default: retention setting)")
    prune.set_defaults(command=_prune)

    vacuum = commands.add_parser(
        "vacuum",
        help="SQLite: rewrite the file without its free pages, converted to incremental auto-vacuum "
        "(holds the write lock until done: workers wait meanwhile)",
    )
    _common(vacuum)
    vacuum.set_defaults(command=_vacuum)
    cli_jobs.add_commands(commands, _common)
    cli_schedules.add_command(commands, _common)
    return parser


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", default=None, help="database URL (default: QUEUELAB_DATABASE_URL or sqlite:///queuelab.db)"
    )
    # Also after the command (`queuelab worker --log-level debug`); SUPPRESS keeps a value
    # given before it.
    parser.add_argument("--log-level", default=argparse.SUPPRESS, choices=LOG_LEVELS)
    parser.add_argument("--log-format", default=argparse.SUPPRESS, choices=logs.FORMATS)
    parser.add_argument("--app", default=None, help="MODULE:ATTR naming a Queue whose tasks to load")


def _scale_policy(text: str) -> ScalePolicy:
    low, _, high = text.partition(":")
    try:
        return ScalePolicy(min_workers=max(1, int(low)), max_workers=int(high))
    except ValueError:
        raise InvalidArgument(f"--autoscale must be MIN:MAX with 1 <= MIN <= MAX (e.g. 1:8), got {text!r}") from None


def _worker(args: argparse.Namespace) -> int:
    check_pool_args(args.concurrency, args.mode)
    policy = _scale_policy(args.autoscale) if args.autoscale else None
    q = load_queue(args.db, args.app, prefetch=args.prefetch, async_concurrency=args.async_concurrency)
    names = [name.strip() for name in args.queues.split(",") if name.strip()] if args.queues else []
    queues = names or None  # none named: all queues
    size = policy.min_workers if policy is not None else args.concurrency
    with _serving_metrics(q, args.metrics_port):
        if args.mode == "thread":
            worker = q.foreground_worker(size, queues=queues)
            with _autoscaling(q, worker, policy):
                on_signals(worker.stop, signal.SIGTERM, signal.SIGINT)
                worker.run()
        else:
            pool = q.worker(size, "process", queues=queues).start()
            with _autoscaling(q, pool, policy):
                on_signals(pool.request_stop, signal.SIGTERM, signal.SIGINT)
                pool.wait()
            pool.stop()
    q.close()
    return 0


@contextmanager
def _serving_metrics(q: Queue, port: int | None) -> Iterator[None]:
    """``--metrics-port``: this process's counts on http://0.0.0.0:PORT/metrics meanwhile."""
    if port is None:
        yield
        return
    bounds.whole("--metrics-port", port, 0, 65535)
    require_prometheus("--metrics-port")
    from queuelab.runtime.exposition import MetricsServer

    server = MetricsServer(q.enable_metrics(), port, lambda: [(task.queue, task.name) for task in q.tasks])
    log.info("serving this worker's metrics on http://0.0.0.0:%d/metrics", server.port)
    try:
        yield
    finally:
        server.stop()


@contextmanager
def _autoscaling(q: Queue, pool: Resizable, policy: ScalePolicy | None) -> Iterator[None]:
    """Run an autoscaler on ``pool`` meanwhile (none without a policy)."""
    scaler = q.autoscaler(pool, policy).start() if policy is not None else None
    try:
        yield
    finally:
        if scaler is not None:
            scaler.stop()


def _demo(args: argparse.Namespace) -> int:
    from queuelab.lab.demo import run_demo

    run_demo(load_queue(args.db, args.app), jobs=args.jobs, concurrency=args.concurrency, mode=args.mode)
    return 0


def _stats(args: argparse.Namespace) -> int:
    from queuelab.lab.demo import print_stats

    print_stats(load_queue(args.db, args.app))
    return 0


def _prune(args: argparse.Namespace) -> int:
    q = load_queue(args.db, args.app)
    print(f"pruned {q.prune(args.older_than)} job(s)")
    return 0


def _vacuum(args: argparse.Namespace) -> int:
    q = load_queue(args.db, args.app)
    try:
        before, after = q.compact()
    finally:
        q.close()
    print(f"{q.settings.database_url}: {_usage(before)} -> {_usage(after)}")
    return 0


def _usage(used: compaction.FileUsage) -> str:
    mode = {0: "none", 1: "full", 2: "incremental"}.get(used.auto_vacuum, str(used.auto_vacuum))
    return f"{used.file_bytes / 2**20:.1f} MiB ({used.free_pages:,} free pages, auto_vacuum {mode})"


def _limits(args: argparse.Namespace) -> int:
    q = load_queue(args.db, args.app)
    changes: dict[str, Any] = {}
    for field in ("rate_limit", "max_active", "max_running", "weight"):
        raw = getattr(args, field)
        if raw is None:
            continue
        if raw == "clear":
            changes[field] = None
        elif field == "rate_limit":
            changes[field] = raw
        else:
            changes[field] = _whole_number(f"--{field.replace('_', '-')}", raw)
    shown = q.set_limits(args.user, **changes) if changes else q.limits(args.user)
    rate = shown.rate_limit if shown.rate_limit is None or shown.rate_limit.count else "off"
    print(
        f"limits for {args.user}: rate_limit={rate or 'none'} max_active={shown.max_active or 'none'} "
        f"max_running={shown.max_running or 'none'} weight={shown.weight or 1}"
    )
    return 0


def _whole_number(flag: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise InvalidArgument(f"{flag} must be a whole number or 'clear', got {raw!r}") from None


def _explain(args: argparse.Namespace) -> int:
    explanation = load_queue(args.db, args.app).explain(args.job_id)
    print(f"{explanation.reason}: {explanation.message}")
    return 0


def _pause(args: argparse.Namespace) -> int:
    load_queue(args.db, args.app).pause(args.queue)
    print(f"queue {args.queue} paused")
    return 0


def _resume(args: argparse.Namespace) -> int:
    load_queue(args.db, args.app).resume(args.queue)
    print(f"queue {args.queue} resumed")
    return 0
