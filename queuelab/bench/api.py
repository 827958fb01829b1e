"""The HTTP API: submissions per second through ``POST /api/submit/`` (one uvicorn
process, no workers, 16 clients in a closed loop), and the request latency at a fixed
rate (an open loop: requests leave on schedule whether or not earlier ones returned).

The closed loop is driven by ``wrk`` (Debian's package) where it is installed: an httpx
client loop tops out near 470 requests/s on this machine, below what the server takes.
Without wrk the httpx loop runs, and the case says so."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import httpx

from queuelab.bench.harness import fresh_queue
from queuelab.bench.plan import Context
from queuelab.bench.results import BenchError, Finding, Result, per_second, percentile

BODY = b'{"user_id": "alice", "payload": {"duration": 0}}'
HEADERS = {"Content-Type": "application/json"}
CLIENTS = 16
WARM_SECONDS = 0.5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``python -m queuelab.api`` on ``db_url`` (no workers, no tokens, no per-user limits)."""

    def __init__(self, db_url: str) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "QUEUELAB_API_TOKENS": "",
            "QUEUELAB_RATE_LIMIT": "none",
            "QUEUELAB_MAX_ACTIVE_PER_USER": "none",
        }
        command = [sys.executable, "-m", "queuelab.api", "--db", db_url, "--port", str(self.port)]
        self.proc = subprocess.Popen([*command, "--log-level", "warning"], env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"the API server exited with code {self.proc.returncode} before answering")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.close()
        raise BenchError("the API server did not answer /healthz within 60s")

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def closed_loop(base: str, seconds: float, clients: int) -> int:
    """Requests answered in ``seconds`` by ``clients`` that each send the next request as
    soon as the last one returns."""
    done = 0
    deadline = time.monotonic() + seconds

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal done
        while time.monotonic() < deadline:
            response = await http.post(f"{base}/api/submit/", content=BODY, headers=HEADERS)
            response.raise_for_status()
            done += 1

    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=clients)) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return done


async def open_loop(base: str, rate: float, seconds: float) -> list[float]:
    """Milliseconds per request, ``rate`` requests a second sent on schedule."""
    latencies: list[float] = []

    async def one(http: httpx.AsyncClient) -> None:
        started = time.perf_counter()
        response = await http.post(f"{base}/api/submit/", content=BODY, headers=HEADERS)
        response.raise_for_status()
        latencies.append(1000 * (time.perf_counter() - started))

    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=200)) as http:
        tasks = []
        start = time.perf_counter()
        for i in range(max(1, int(rate * seconds))):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(http)))
        await asyncio.gather(*tasks)
    return latencies


_WRK_SCRIPT = f"""
wrk.method = "POST"
wrk.body = '{BODY.decode()}'
wrk.headers["Content-Type"] = "application/json"
"""


def cpu_seconds(pid: int) -> float | None:
    """The CPU time (user + system, every thread) process ``pid`` has used, from Linux's
    /proc; None elsewhere. Per request it is the figure the machine's load moves least: a
    loaded machine lowers the requests a second, not the CPU each one takes."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk_closed_loop(base: str, seconds: float, clients: int, server_pid: int | None = None) -> dict[str, float] | None:
    """Requests per second and p50/p99 milliseconds from ``wrk`` (``clients`` keep-alive
    connections on 2 threads), and the server's CPU microseconds a request where its
    ``server_pid`` is given and readable; None where wrk is not installed."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_SCRIPT)
    before = None if server_pid is None else cpu_seconds(server_pid)
    try:
        command = [wrk, "-t2", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--latency", "-s", script.name]
        out = subprocess.run([*command, f"{base}/api/submit/"], capture_output=True, text=True, timeout=120, check=True)
    finally:
        os.unlink(script.name)
    after = None if server_pid is None else cpu_seconds(server_pid)
    found = parse_wrk(out.stdout)
    answered = re.search(r"(\d+) requests in", out.stdout)
    if before is not None and after is not None and answered is not None and int(answered.group(1)) > 0:
        found["cpu_us"] = 1e6 * (after - before) / int(answered.group(1))
    return found


def parse_wrk(text: str) -> dict[str, float]:
    """The figures of a ``wrk --latency`` report; non-2xx answers are an error."""
    if "Non-2xx" in text:
        raise BenchError(f"wrk saw error answers:\n{text}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)\b", text, re.M)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\b", text, re.M)
    if rate is None or p50 is None or p99 is None:
        raise BenchError(f"could not read wrk's report:\n{text}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    return {
        "rate": float(rate.group(1)),
        "p50_ms": float(p50.group(1)) * scale[p50.group(2)],
        "p99_ms": float(p99.group(1)) * scale[p99.group(2)],
    }


def api_figures(db_url: str, seconds: float = 5.0, rate: float = 200.0) -> dict[str, float]:
    server = Server(db_url)
    try:
        asyncio.run(closed_loop(server.base, WARM_SECONDS, CLIENTS))  # connections, compiled statements
        loaded = wrk_closed_loop(server.base, seconds, CLIENTS, server.proc.pid)
        done = asyncio.run(closed_loop(server.base, seconds, CLIENTS)) if loaded is None else 0
        latencies = asyncio.run(open_loop(server.base, rate, seconds))
    finally:
        server.close()
    if loaded is not None:
        return {
            "submits_per_second": loaded["rate"],
            "loaded_p50_ms": loaded["p50_ms"],
            "loaded_p99_ms": loaded["p99_ms"],
            **({"cpu_us": loaded["cpu_us"]} if "cpu_us" in loaded else {}),
            "p50_ms": percentile(latencies, 50),
            "p99_ms": percentile(latencies, 99),
            "rate": rate,
            "wrk": 1.0,
        }
    return {
        "submits_per_second": per_second(done, seconds),
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "rate": rate,
    }


def api(ctx: Context, kind: str) -> list[Finding]:
    sizes = ctx.sizes
    with fresh_queue(kind, ctx.postgres_url) as q:
        q.open()  # the schema exists before the server starts
        found = api_figures(q.settings.database_url, sizes.api_seconds, sizes.api_rate)
    driver = "wrk" if found.get("wrk") else "httpx: no wrk here"
    closed = f"POST /api/submit/, {CLIENTS} clients ({driver}), 1 server process"
    fixed = f"POST /api/submit/ at {sizes.api_rate:g} requests/s"

    def result(case: str, metric: str, value: float, unit: str, floor: str = "") -> Result:
        return Result(database=kind, scenario="api", case=case, metric=metric, value=value, unit=unit, floor_key=floor)

    loaded = [
        result(closed, metric, found[key], "ms")
        for metric, key in (("p50", "loaded_p50_ms"), ("p99", "loaded_p99_ms"))
        if key in found  # measured under wrk's load only: without wrk, the httpx loop has none
    ]
    # the server process's CPU (every thread) a request under wrk's load, where /proc has it
    cpu = [result(closed, "cpu", found["cpu_us"], "µs/req")] if "cpu_us" in found else []
    return [
        result(closed, "throughput", found["submits_per_second"], "jobs/s", "insert/1"),
        *loaded,
        *cpu,
        result(fixed, "p50", found["p50_ms"], "ms"),
        result(fixed, "p99", found["p99_ms"], "ms"),
    ]
