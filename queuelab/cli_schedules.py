"""``python -m queuelab schedules [pause NAME | resume NAME]``: the periodic jobs, their next
and latest ticks, and pausing or resuming one from a shell (``--json`` for scripts)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from queuelab.errors import InvalidArgument
from queuelab.queue import load_queue
from queuelab.schedules import Schedule

TABLE = ("name", "task", "cron", "timezone", "paused", "next_run_at", "last_tick_at")
ACTIONS = ("list", "pause", "resume")


def add_command(commands: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "schedules",
        help="list the periodic jobs, or pause / resume one",
        epilog="exit status: 0 done, 2 bad input, 3 no such schedule",
    )
    common(parser)
    parser.add_argument("action", nargs="?", default="list", choices=ACTIONS)
    parser.add_argument("name", nargs="?", default=None, help="the schedule to pause or resume")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(command=_schedules)


def _schedules(args: argparse.Namespace) -> int:
    q = load_queue(args.db, args.app)
    try:
        if args.action == "list":
            found = q.schedules()
        elif args.name is None:
            raise InvalidArgument(f"schedules {args.action} needs the schedule's name")
        else:
            act = q.pause_schedule if args.action == "pause" else q.resume_schedule
            found = [act(args.name)]
        print(_render(found, as_json=args.json))
    finally:
        q.close()
    return 0


def _render(found: list[Schedule], *, as_json: bool) -> str:
    rows = [s.as_dict() for s in found]
    if as_json:
        return json.dumps(rows, indent=2)
    if not rows:
        return "no schedules"
    cells = [[str(row[column])[:25] for column in TABLE] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(TABLE)]
    lines = [TABLE, *cells]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in lines)
