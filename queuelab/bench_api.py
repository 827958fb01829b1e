"""API figures for ``python -m queuelab.bench --suite api``: submissions per second
through ``POST /api/submit/`` (one uvicorn process) and its latency at a fixed rate."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import httpx

BODY = b'{"user_id": "alice", "payload": {"duration": 0}}'
HEADERS = {"Content-Type": "application/json"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``python -m queuelab.api`` on a fresh SQLite file (no workers)."""

    def __init__(self, db_url: str | None = None) -> None:
        self._folder = tempfile.TemporaryDirectory()
        url = db_url or f"sqlite:///{os.path.join(self._folder.name, 'api.db')}"
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "QUEUELAB_API_TOKENS": "", "QUEUELAB_RATE_LIMIT": "none"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "queuelab.api", "--db", url, "--port", str(self.port), "--log-level", "warning"],
            env=env,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the API server did not start")

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        self._folder.cleanup()


async def _closed_loop(base: str, seconds: float, clients: int) -> int:
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


async def _open_loop(base: str, rate: float, seconds: float) -> list[float]:
    latencies: list[float] = []

    async def one(http: httpx.AsyncClient) -> None:
        started = time.perf_counter()
        response = await http.post(f"{base}/api/submit/", content=BODY, headers=HEADERS)
        response.raise_for_status()
        latencies.append(1000 * (time.perf_counter() - started))

    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=200)) as http:
        tasks = []
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(http)))
        await asyncio.gather(*tasks)
    return latencies


def api_figures(seconds: float = 5.0, rate: float = 200.0, db_url: str | None = None) -> dict[str, float]:
    server = Server(db_url)
    try:
        done = asyncio.run(_closed_loop(server.base, seconds, clients=16))
        latencies = sorted(asyncio.run(_open_loop(server.base, rate, seconds)))
    finally:
        server.close()
    return {
        "submits_per_second": done / seconds,
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "rate": rate,
    }
