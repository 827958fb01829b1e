"""What a run found, joined and written: each result beside its raw floor (the ratio is
the figure that counts on a shared machine) and its target; a terminal table, a CSV file
with one row per result, and a JSON file with the rows, the curves and the machine."""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from queuelab.bench.results import Result, Series
from queuelab.bench.targets import Target, target_for

COLUMNS = (
    "database",
    "scenario",
    "case",
    "metric",
    "value",
    "unit",
    "mode",
    "workers",
    "jobs",
    "key",
    "samples",
    "floor_key",
    "floor_case",
    "floor_value",
    "ratio",
    "target",
    "peers",
    "met",
)


@dataclass(frozen=True, slots=True)
class Row:
    result: Result
    floor: Result | None = None
    target: Target | None = None

    @property
    def ratio(self) -> float | None:
        return None if self.floor is None else self.result.value / self.floor.value

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        if self.target.of_floor:
            return None if self.ratio is None else self.target.met(self.ratio)
        return self.target.met(self.result.value)

    def as_dict(self) -> dict[str, Any]:
        r, f, t = self.result, self.floor, self.target
        return {
            **asdict(r),
            "samples": ";".join(f"{x:.6g}" for x in r.samples),
            "floor_case": f.case if f else "",
            "floor_value": f.value if f else None,
            "ratio": self.ratio,
            "target": t.text() if t else "",
            "peers": t.peers if t else "",
            "met": self.met,
        }


def merge_floors(results: Sequence[Result]) -> list[Result]:
    """One row per floor measurement: the floor runs before and after a database's other
    scenarios, so it brackets them in time; the merged figure is the median of every round."""
    merged: dict[tuple[str, str], Result] = {}
    out: list[Result] = []
    for r in results:
        first = merged.get((r.database, r.key)) if r.key else None
        if first is None:
            if r.key:
                merged[(r.database, r.key)] = r
            out.append(r)
            continue
        samples = first.samples + r.samples
        both = replace(first, value=statistics.median(samples), samples=samples, jobs=first.jobs + r.jobs)
        merged[(r.database, r.key)] = both
        out[out.index(first)] = both
    return out


def join(results: Sequence[Result]) -> list[Row]:
    """Each result with the floor it names (same database) and its target, if any."""
    floors = {(r.database, r.key): r for r in results if r.key}
    return [Row(r, floors.get((r.database, r.floor_key)) if r.floor_key else None, target_for(r)) for r in results]


def missing_floors(rows: Sequence[Row]) -> list[str]:
    return [f"{r.result.database} {r.result.floor_key}" for r in rows if r.result.floor_key and r.floor is None]


# -- terminal -----------------------------------------------------------------------------

_HEADER = ("database", "scenario", "case", "metric", "value", "unit", "raw floor", "x floor", "target", "met")
_WIDTHS = (10, 8, 58, 13, 9, 6, 20, 7, 16, 3)
_RIGHT = {4, 6, 7}


def number(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def table(rows: Sequence[Row]) -> str:
    lines = [_line(_HEADER), _line(tuple("-" * w for w in _WIDTHS))]
    for row in rows:
        r = row.result
        floor = f"{number(row.floor.value)} {row.floor.key}" if row.floor else ""
        ratio = f"{row.ratio:.2f}" if row.ratio is not None else ""
        met = "" if row.met is None else ("yes" if row.met else "no")
        target = row.target.text() if row.target else ""
        lines.append(
            _line((r.database, r.scenario, r.case, r.metric, number(r.value), r.unit, floor, ratio, target, met))
        )
    return "\n".join(lines)


def _line(cells: Sequence[str]) -> str:
    out = []
    for i, (cell, width) in enumerate(zip(cells, _WIDTHS, strict=True)):
        text = cell if len(cell) <= width else cell[: width - 1] + "~"
        out.append(text.rjust(width) if i in _RIGHT else text.ljust(width))
    return "  ".join(out).rstrip()


def markdown(rows: Sequence[Row]) -> str:
    """The table for a README: queuelab, its raw floor and the ratio, target and peers."""
    lines = [
        "| database | scenario | case | metric | queuelab | raw floor | x floor | target | met | peers |",
        "|---|---|---|---|--:|--:|--:|---|---|---|",
    ]
    for row in rows:
        r, t = row.result, row.target
        floor = f"{number(row.floor.value)} ({row.floor.key})" if row.floor else ""
        ratio = f"{row.ratio:.2f}" if row.ratio is not None else ""
        met = "" if row.met is None else ("**yes**" if row.met else "no")
        cells = (r.database, r.scenario, r.case, r.metric, f"{number(r.value)} {r.unit}", floor, ratio)
        lines.append("| " + " | ".join((*cells, t.text() if t else "", met, t.peers if t else "")) + " |")
    return "\n".join(lines) + "\n"


# -- files --------------------------------------------------------------------------------


def write_csv(rows: Sequence[Row], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.as_dict().items()})


def series_dict(series: Series) -> dict[str, Any]:
    return {**asdict(series), "points": [list(p) for p in series.points]}


def write_json(document: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")
