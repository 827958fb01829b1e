"""``python -m queuelab.bench``: every scenario on SQLite and (with ``--postgres``) on
PostgreSQL, each throughput beside the raw SQL floor of the same run; a table in the
terminal, CSV, JSON and PNG files in ``--out``."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
import time
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from tqdm import tqdm

from queuelab import __version__
from queuelab.bench import machine, report, scenarios
from queuelab.bench.plan import Context, Sizes, shrunk
from queuelab.bench.results import POSTGRES, SQLITE, Finding, Result, Series
from queuelab.errors import QueuelabError

DEFAULT_OUT = Path("benchmarks/results")


def parser() -> argparse.ArgumentParser:
    listing = "; ".join(f"{name}: {what}" for name, (_, what) in scenarios.SCENARIOS.items())
    p = argparse.ArgumentParser(prog="python -m queuelab.bench", description=__doc__, epilog=f"Scenarios: {listing}.")
    p.add_argument("--postgres", default=os.environ.get("QUEUELAB_TEST_POSTGRES_URL") or None,
                   help="PostgreSQL URL (default: QUEUELAB_TEST_POSTGRES_URL); empty: SQLite only")  # fmt: skip
    p.add_argument("--redis", default=os.environ.get("QUEUELAB_TEST_REDIS_URL") or None,
                   help="Redis URL: adds the Redis rate limiter to the limits scenario")  # fmt: skip
    p.add_argument("--jobs", type=int, default=None,
                   help="jobs per enqueue, drain, fairness run (default 2000; 20000 per 1-8 worker drain)")  # fmt: skip
    p.add_argument("--suite", choices=sorted(scenarios.SUITES), default="all", help="a group of scenarios")
    p.add_argument("--scenarios", default=None, help="comma-separated scenario names (wins over --suite)")
    p.add_argument("--quick", action="store_true", help="a smoke run of about a minute: small sizes (listed)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder for CSV, JSON, PNG (default {DEFAULT_OUT})")
    p.add_argument("--log-level", default="error", choices=["debug", "info", "warning", "error"])
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(process)d %(name)s %(message)s")
    if args.jobs is not None and args.jobs < 10:
        print(f"queuelab.bench: error: --jobs must be at least 10, got {args.jobs}", file=sys.stderr)
        return 2
    try:
        names = scenarios.select(args.suite, args.scenarios)
    except QueuelabError as exc:
        print(f"queuelab.bench: error: {exc}", file=sys.stderr)
        return 2
    if args.postgres and machine.describe_postgres(args.postgres) is None:
        print(f"queuelab.bench: error: cannot reach PostgreSQL at {_safe(args.postgres)}", file=sys.stderr)
        return 2
    sizes = Sizes.quick(args.jobs) if args.quick else Sizes.full(args.jobs)
    ctx = Context(sizes, args.postgres, args.redis, args.quick)
    _announce(ctx, names)
    return _run(ctx, names, args.out)


def _announce(ctx: Context, names: list[str]) -> None:
    if ctx.quick:
        print("quick mode shrank (nothing is skipped):")
        for line in shrunk(ctx.sizes, Sizes.full()):
            print(f"  {line}")
    if not ctx.postgres_url:
        print("no --postgres URL (nor QUEUELAB_TEST_POSTGRES_URL): SQLite only")
    print(f"scenarios: {', '.join(names)} (the floor always runs, first and again last on each database)")


def _run(ctx: Context, names: list[str], out: Path) -> int:
    kinds = [SQLITE] + ([POSTGRES] if ctx.postgres_url else [])
    started, load_before = datetime.now(UTC), machine.load()
    found, timings, errors = _run_units(ctx, [unit for kind in kinds for unit in _units(kind, names)])
    load_after = machine.load()
    results = report.merge_floors([f for f in found if isinstance(f, Result)])
    series = [f for f in found if isinstance(f, Series)]
    rows = report.join(results)
    errors += [f"no floor measured for {what}" for what in report.missing_floors(rows)]
    print(report.table(rows))
    print(f"load average (1, 5, 15 min) before {load_before}, after {load_after}; {os.cpu_count()} CPUs")
    document = {
        "tool": "python -m queuelab.bench",
        "queuelab": __version__,
        "started_at": started.isoformat(timespec="seconds"),
        "seconds": round((datetime.now(UTC) - started).total_seconds(), 1),
        "quick": ctx.quick,
        "shrunk": shrunk(ctx.sizes, Sizes.full()) if ctx.quick else [],
        "sizes": ctx.sizes.as_dict(),
        "databases": kinds,
        "scenarios": names,
        "postgres_url": _safe(ctx.postgres_url) if ctx.postgres_url else None,
        "machine": machine.describe(ctx.postgres_url),
        "load_before": load_before,
        "load_after": load_after,
        "timings": timings,
        "errors": errors,
        "results": [row.as_dict() for row in rows],
        "series": [report.series_dict(s) for s in series],
    }
    _write(document, rows, series, out, "bench-quick" if ctx.quick else "bench")
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if errors else 0


def _units(kind: str, names: list[str]) -> list[tuple[str, str]]:
    """A database's scenarios, the floor first and again last: it brackets them in time."""
    units = [(kind, name) for name in names]
    return [*units, (kind, "floor")] if len(names) > 1 else units


def _run_units(ctx: Context, units: list[tuple[str, str]]) -> tuple[list[Finding], list[dict[str, Any]], list[str]]:
    found: list[Finding] = []
    timings: list[dict[str, Any]] = []
    errors: list[str] = []
    bar = tqdm(units, desc="bench", unit="scenario", file=sys.stderr, dynamic_ncols=True)
    for kind, name in bar:
        bar.set_postfix_str(f"{name} on {kind}")
        began = time.monotonic()
        try:
            found += scenarios.run(name, ctx, kind)
        except Exception as exc:  # one broken scenario must not cost the others' figures
            errors.append(f"{name} on {kind}: {type(exc).__name__}: {exc}")
            tqdm.write(f"{name} on {kind} failed:\n{traceback.format_exc()}", file=sys.stderr)
        timings.append({"scenario": name, "database": kind, "seconds": round(time.monotonic() - began, 1)})
    bar.close()
    return found, timings, errors


def _write(document: dict[str, Any], rows: list[report.Row], series: list[Series], out: Path, stem: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    written = [out / f"{stem}.csv", out / f"{stem}.json", out / f"{stem}.md"]
    report.write_csv(rows, written[0])
    written[2].write_text(report.markdown(rows), encoding="utf-8")
    if importlib.util.find_spec("matplotlib") is None:
        print("plots skipped: matplotlib is not installed (pip install 'queuelab[lab]')")
    else:
        from queuelab.bench import plots

        written += plots.save(rows, series, out, stem)
    document["files"] = [p.name for p in written]
    report.write_json(document, written[1])
    print("wrote " + ", ".join(str(p) for p in written))


def _safe(url: str) -> str:
    return sa.make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    raise SystemExit(main())
