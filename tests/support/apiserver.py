"""``python -m queuelab.api`` as a real child process, for the tests that talk to it over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.helpers import ROOT, wait_until

STOP_TIMEOUT_SECONDS = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def api_server(
    db_url: str, log: Path, *args: str, workers: int = 0, mode: str = "process", **env: str
) -> Iterator[str]:
    """Start the API server (and its worker pool), yield its base URL once ``/healthz`` answers
    200, then stop it with SIGTERM and assert that it exits 0 within :data:`STOP_TIMEOUT_SECONDS`.
    ``args``: more command-line arguments for the server."""
    port = free_port()
    command = [sys.executable, "-m", "queuelab.api", "--db", db_url, "--port", str(port),
               "--workers", str(workers), "--mode", mode, "--log-level", "warning", *args]  # fmt: skip
    # The server's default per-user limits are off here (tests flood one user); the test of
    # those defaults starts the server with them on.
    unlimited = {"QUEUELAB_RATE_LIMIT": "none", "QUEUELAB_MAX_ACTIVE_PER_USER": "none"}
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "QUEUELAB_API_TOKENS": "", **unlimited, **env}
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT)

        def healthy() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"the API server exited with {proc.returncode}:\n{log.read_text()}")
            try:
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_until(healthy, timeout=30, what="the API server to answer /healthz")
            yield base
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise AssertionError(
                    f"the API server did not exit within {STOP_TIMEOUT_SECONDS:g}s of SIGTERM"
                ) from None
            assert code == 0, f"the API server exited with {code} after SIGTERM:\n{log.read_text()}"
