"""The benchmark suite end to end: ``python -m queuelab.bench --quick`` as a real
subprocess against a SQLite file and the test PostgreSQL (a throwaway schema), then its
CSV and JSON read back. It checks behaviour: every scenario ran on both databases, the
figures are positive, each throughput sits beside its raw floor with a sane ratio, and
the plots exist. It never checks speed."""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.support.helpers import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

DATABASES = ["sqlite", "postgresql"]
SCENARIOS = {
    "floor",
    "enqueue",
    "drain",
    "latency",
    "growth",
    "fairness",
    "crash",
    "api",
    "limits",
    "io",
    "peers",
    "churn",
}
PEERS = {"sqlite": "huey", "postgresql": "pgqueuer"}  # installed by the bench extra (make setup)
RATIO_BOUND = 20.0  # many workers may beat one connection's floor; 20x would be a broken floor
SIGNED_METRICS = {"rss_change", "change"}  # a change may be negative


def run_quick(out: Path, postgres_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "QUEUELAB_TEST_REDIS_URL"}  # SQL limiter only
    command = [sys.executable, "-m", "queuelab.bench", "--quick", "--out", str(out), "--postgres", postgres_url]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=840, check=False)


def read_outputs(out: Path) -> tuple[list[dict[str, str]], dict[str, Any]]:
    with (out / "bench-quick.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return rows, json.loads((out / "bench-quick.json").read_text(encoding="utf-8"))


@pytest.mark.timeout(900)
def test_quick_run_writes_every_scenario_on_both_databases(tmp_path: Path, postgres_url: str) -> None:
    out = tmp_path / "results"
    proc = run_quick(out, postgres_url)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-6000:]}"
    assert "quick mode shrank (nothing is skipped):" in proc.stdout
    assert "finished jobs in the growth table: 1,000,000 -> 20,000" in proc.stdout
    rows, document = read_outputs(out)

    assert document["quick"] is True
    assert document["errors"] == []
    assert document["databases"] == DATABASES
    assert document["machine"]["cpus"] >= 1
    assert document["machine"]["postgresql"]
    assert [(r["database"], r["case"], r["metric"]) for r in rows] == [
        (r["database"], r["case"], r["metric"]) for r in document["results"]
    ]
    assert {(r["database"], r["scenario"]) for r in rows} == set(itertools.product(DATABASES, SCENARIOS))
    check_values(rows)
    check_floors(rows)
    check_scenarios(rows)
    check_peers(rows)
    for name in document["files"]:
        assert (out / name).stat().st_size > 0
    pngs = [name for name in document["files"] if name.endswith(".png")]
    expected = ["bench-quick-churn.png", "bench-quick-drain.png", "bench-quick-floor-ratios.png", "bench-quick-rss.png"]
    assert sorted(pngs) == expected
    assert all((out / name).read_bytes().startswith(b"\x89PNG") for name in pngs)


def check_values(rows: list[dict[str, str]]) -> None:
    for row in rows:
        value = float(row["value"])
        assert math.isfinite(value), row
        if row["metric"] not in SIGNED_METRICS:
            assert value > 0, row
        if row["target"]:
            assert row["met"] in ("True", "False"), row


def check_floors(rows: list[dict[str, str]]) -> None:
    """Every throughput outside the floor and the peer comparison names a floor, found in
    the same run."""
    for row in rows:
        # (the peers' figures are theirs; io's rate is bounded by its jobs' waits, not the database)
        # churn's rate is a loop's that also prunes and samples: no floor does that work
        if row["metric"] == "throughput" and not row["key"] and row["scenario"] not in ("peers", "io", "churn"):
            assert row["floor_key"], row
        if row["floor_key"]:
            floor, ratio = float(row["floor_value"]), float(row["ratio"])
            assert floor > 0, row
            assert 0 < ratio < RATIO_BOUND, row
            assert ratio == pytest.approx(float(row["value"]) / floor), row
    # The minimal table's floor runs every step queuelab's own table's floor runs.
    for database in DATABASES:
        keys = {r["key"] for r in rows if r["database"] == database and r["scenario"] == "floor"}
        own = {k for k in keys if not k.startswith("min-")}
        assert own, keys
        assert keys - own == {f"min-{k}" for k in own}, keys


def check_scenarios(rows: list[dict[str, str]]) -> None:
    by: dict[tuple[str, str, str], dict[str, float]] = defaultdict(dict)
    for row in rows:
        by[(row["database"], row["scenario"], row["case"])][row["metric"]] = float(row["value"])
    drains = {(r["database"], r["mode"], int(r["workers"])) for r in rows if r["scenario"] == "drain"}
    assert drains == set(itertools.product(DATABASES, ("thread", "process"), (1, 2, 4, 8)))
    for (_, scenario, case), figures in by.items():
        if scenario == "latency":
            assert figures["p50"] <= figures["p95"] <= figures["p99"], case
        if scenario == "crash":
            assert 0 < figures["kill_to_rescue"] <= figures["kill_to_running_again"], case
        if scenario == "fairness" and "running quota 2" in case:
            assert figures["peak_running_per_user"] <= 2, case
    for database in DATABASES:  # (coroutines overlap 100 waits, 8 threads at most 8: a wide margin)
        io = {case: f["throughput"] for (db, s, case), f in by.items() if (db, s) == (database, "io")}
        threads = [rate for case, rate in io.items() if case.startswith("threads")]
        assert len(threads) == 2, io
        assert all(io[c] > max(threads) > 0 for c in io if c.startswith("async")), io
    for database in DATABASES:
        growth = {case: f for (db, s, case), f in by.items() if db == database and s == "growth"}
        assert growth["drain rate over its floor: with history / empty"]["ratio"] > 0
        assert "worker RSS change over a long run" in growth


def check_peers(rows: list[dict[str, str]]) -> None:
    """Each database's peer ran beside queuelab, and each ratio is queuelab's figure over
    the peer's for that case (a drain with the default pool over the peer's one process)."""
    for database, peer in PEERS.items():
        found = {r["case"]: float(r["value"]) for r in rows if r["database"] == database and r["scenario"] == "peers"}
        ratios = {case: value for case, value in found.items() if case.startswith(f"queuelab / {peer}: ")}
        assert len(ratios) >= 3, found
        for case, ratio in ratios.items():
            what = case.removeprefix(f"queuelab / {peer}: ")
            against = "drain, 1 worker process" if what.startswith("drain, default worker") else what
            assert ratio == pytest.approx(found[f"queuelab: {what}"] / found[f"{peer}: {against}"]), case
