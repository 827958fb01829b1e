"""The median of each figure over several bench runs, with every run's value beside it.

    python benchmarks/results/issue15-async/medians.py RUN_DIR [RUN_DIR ...] > medians.txt

Each RUN_DIR holds a ``bench.csv`` from ``python -m queuelab.bench --out RUN_DIR``.
"""

from __future__ import annotations

import csv
import statistics
import sys
from pathlib import Path


def main(runs: list[str]) -> None:
    values: dict[tuple[str, str, str, str], list[float]] = {}
    units: dict[tuple[str, str, str, str], str] = {}
    for run in runs:
        with (Path(run) / "bench.csv").open() as f:
            for row in csv.DictReader(f):
                key = (row["database"], row["scenario"], row["case"], row["metric"])
                values.setdefault(key, [])
                try:
                    values[key].append(float(row["value"]))
                except ValueError:
                    continue
                units[key] = row["unit"]
    for key, found in values.items():
        if not found:
            continue
        database, scenario, case, metric = key
        each = ", ".join(f"{v:,.2f}" for v in found)
        median = statistics.median(found)
        print(f"{database:10} | {scenario:8} | {case[:70]:70} | {metric:10} | {median:12,.2f} {units[key]} | {each}")


if __name__ == "__main__":
    main(sys.argv[1:])
