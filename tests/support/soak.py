"""Soak: the API and its worker processes under a steady mixed load for a long time (make
soak: 30 minutes). Every ``--sample`` seconds it records the throughput, the memory (RSS)
of the API process and each worker, their open file descriptors, and, on PostgreSQL, the
server's connections to the database. The run passes when memory and connections stay flat
and throughput stays steady.

    python -m tests.support.soak --db sqlite:///soak.db --minutes 30
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import sqlalchemy as sa

from tests.support.apiserver import free_port
from tests.support.helpers import ROOT, wait_until


def _children(pid: int) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append(int(proc.name))
    return found


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _pg_connections(url: str) -> int | None:
    if not url.startswith("postgresql"):
        return None
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            query = (
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return int(conn.execute(sa.text(query)).scalar_one())
    finally:
        engine.dispose()


def _load(base: str, rate: float, stop: threading.Event, counts: dict[str, int]) -> None:
    rng = random.Random(1)
    with httpx.Client(timeout=10) as client:
        due = time.monotonic()
        while not stop.is_set():
            due += rng.expovariate(rate)
            time.sleep(max(0.0, due - time.monotonic()))
            payload = {"duration": rng.choice([0, 0, 0.005, 0.02]), "fail_rate": rng.choice([0, 0, 0, 0.2])}
            body: dict[str, object] = {"user_id": f"user{rng.randrange(20)}", "payload": payload}
            if rng.random() < 0.1:
                body["delay_seconds"] = rng.choice([1, 5])
            try:
                code = client.post(f"{base}/api/submit/", json=body).status_code
            except httpx.HTTPError:
                code = 0
            counts[str(code)] = counts.get(str(code), 0) + 1


def soak(url: str, minutes: float, sample: float, rate: float, workers: int, log: Path) -> list[dict[str, float]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "queuelab.api", "--db", url, "--port", str(port), "--workers", str(workers),
               "--mode", "process", "--log-level", "warning",
               "--rate-limit", "none", "--max-active", "none"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QUEUELAB_API_TOKENS": "", "QUEUELAB_RETRY_BASE_SECONDS": "0.1"}
    rows: list[dict[str, float]] = []
    with log.open("wb") as out:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    stop, counts = threading.Event(), dict[str, int]()
    loader = threading.Thread(target=_load, args=(base, rate, stop, counts), daemon=True)
    try:
        wait_until(lambda: _up(base), timeout=60, what="the API server")
        loader.start()
        started, last_done = time.monotonic(), _completed(base)
        while time.monotonic() - started < minutes * 60:
            time.sleep(sample)
            done = _completed(base)
            procs = [server.pid, *_children(server.pid)]
            row = {
                "minute": round((time.monotonic() - started) / 60, 2),
                "jobs_per_second": round((done - last_done) / sample, 1),
                "api_rss_mb": round(_rss_mb(server.pid), 1),
                "worker_rss_mb_max": round(max((_rss_mb(p) for p in procs[1:]), default=0.0), 1),
                "open_fds": sum(_fds(p) for p in procs),
                "processes": len(procs),
            }
            connections = _pg_connections(url)
            if connections is not None:
                row["pg_connections"] = connections
            rows.append(row)
            last_done = done
            print(json.dumps(row), flush=True)
    finally:
        stop.set()
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    print(json.dumps({"responses": counts}), flush=True)
    return rows


def _up(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _completed(base: str) -> int:
    return int(httpx.get(f"{base}/api/stats/", timeout=10).json()["by_status"]["COMPLETED"])


def verdict(rows: list[dict[str, float]]) -> list[str]:
    """What did not stay flat: compare the second quarter of the run with the last."""
    if len(rows) < 8:
        return ["too short to judge (fewer than 8 samples)"]
    quarter = len(rows) // 4
    early, late = rows[quarter : 2 * quarter], rows[-quarter:]
    problems = []
    for key, slack in (("api_rss_mb", 1.25), ("worker_rss_mb_max", 1.25), ("open_fds", 1.2), ("pg_connections", 1.2)):
        if key not in rows[0]:
            continue
        before, after = max(r[key] for r in early), max(r[key] for r in late)
        if after > before * slack + 2:
            problems.append(f"{key} grew from {before} to {after}")
    rate_early = sum(r["jobs_per_second"] for r in early) / len(early)
    rate_late = sum(r["jobs_per_second"] for r in late) / len(late)
    if rate_late < 0.8 * rate_early:
        problems.append(f"throughput fell from {rate_early:.1f} to {rate_late:.1f} jobs/s")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.soak", description=__doc__)
    parser.add_argument("--db", required=True)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--sample", type=float, default=30, help="seconds between samples")
    parser.add_argument("--rate", type=float, default=50, help="submissions per second")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--log", type=Path, default=Path("soak-api.log"))
    args = parser.parse_args(argv)
    rows = soak(args.db, args.minutes, args.sample, args.rate, args.workers, args.log)
    problems = verdict(rows)
    print("soak:", "flat and steady" if not problems else "; ".join(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
