"""The package as a user installs it: a wheel built from this tree, installed (not editable)
into a fresh virtualenv with the core alone, then with the api extra, from the package
index like ``pip install 'queuelab-jobs[api]'``. Each test builds its own wheel and venv.

Slow (a build and a pip install each, a minute or two on a busy machine) and needs the
package index."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import pytest

from queuelab.extras import DISTRIBUTION

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "tests" / "support" / "core_smoke.py"
STATIC = ("index.html", "dashboard.js", "style.css")
INSTALL_SECONDS = 900  # pip resolving and downloading on a busy 2-core machine
START_SECONDS = 120


def clean_env() -> dict[str, str]:
    """No PYTHONPATH: the venv must import its own installed queuelab, not this tree."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


def run(command: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout)


def build_wheel(tmp_path: Path) -> Path:
    """``pip wheel`` on a copy of what the sdist holds (so no build/ or egg-info lands in the tree)."""
    source = tmp_path / "source"
    shutil.copytree(ROOT / "queuelab", source / "queuelab", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(source)]
    done = run(command, tmp_path, INSTALL_SECONDS)
    assert done.returncode == 0, done.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    return wheel


def make_venv(tmp_path: Path, name: str, requirement: str) -> Path:
    """A fresh venv with ``requirement`` pip-installed into it; returns its python."""
    done = run([sys.executable, "-m", "venv", str(tmp_path / name)], tmp_path, 300)
    assert done.returncode == 0, done.stderr
    python = tmp_path / name / "bin" / "python"
    done = run([str(python), "-m", "pip", "install", "-q", requirement], tmp_path, INSTALL_SECONDS)
    assert done.returncode == 0, done.stderr
    return python


def installed(python: Path, modules: tuple[str, ...], cwd: Path) -> list[str]:
    code = f"import importlib.util as u; print(' '.join(m for m in {modules!r} if u.find_spec(m)))"
    done = run([str(python), "-c", code], cwd, 120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def smoke(python: Path, tmp_path: Path) -> dict[str, Any]:
    """Submit and run jobs on SQLite with the venv's queuelab (tests/support/core_smoke.py)."""
    done = run([str(python), str(SMOKE), str(tmp_path / "smoke.db")], tmp_path, 300)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    assert str(report["queuelab"]).startswith(str(python.parent.parent)), "not the venv's own queuelab"
    assert report["jobs"] == [["COMPLETED", n + 1] for n in range(5)] + [["COMPLETED", 42]]
    return report


def test_the_wheel_holds_the_package_files_and_the_core_alone_runs_a_worker(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    metadata = zipfile.ZipFile(wheel).read(f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info/METADATA")

    assert {f"queuelab/api/static/{name}" for name in STATIC} <= names
    assert "queuelab/py.typed" in names
    assert any(name.startswith("queuelab/store/sql/sqlite/") and name.endswith(".sql") for name in names)
    assert f"Name: {DISTRIBUTION}\n" in metadata.decode()
    for extra in ("postgres", "api", "lab", "redis", "bench", "otel", "all", "dev"):
        assert f"Provides-Extra: {extra}\n" in metadata.decode()

    python = make_venv(tmp_path, "core", str(wheel))
    heavy = ("psycopg", "pandas", "numpy", "tqdm", "fastapi", "uvicorn", "prometheus_client")
    assert installed(python, heavy, tmp_path) == []
    assert smoke(python, tmp_path)["loaded"] == []

    cli = run([str(python.parent / "queuelab"), "--help"], tmp_path, 120)
    assert cli.returncode == 0, cli.stderr
    api = run([str(python), "-m", "queuelab.api"], tmp_path, 120)
    assert api.returncode == 2
    assert api.stderr.strip().endswith(
        f"needs the api extra (fastapi is not installed): pip install '{DISTRIBUTION}[api]'"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return int(response.status), response.read()


def test_the_api_extra_serves_the_dashboard_and_its_static_files(tmp_path: Path) -> None:
    python = make_venv(tmp_path, "api", f"{build_wheel(tmp_path)}[api]")
    assert installed(python, ("fastapi", "uvicorn", "prometheus_client", "psycopg", "pandas"), tmp_path) == [
        "fastapi",
        "uvicorn",
        "prometheus_client",
    ]
    smoke(python, tmp_path)

    port = free_port()
    command = [str(python), "-m", "queuelab.api", "--db", f"sqlite:///{tmp_path / 'api.db'}", "--port", str(port)]
    env = {**clean_env(), "QUEUELAB_API_TOKENS": ""}
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        server = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        status, page = wait_for_page(f"http://127.0.0.1:{port}/", server, log)
        assert status == 200
        assert b"/static/dashboard.js" in page
        for name in STATIC[1:]:
            assert get(f"http://127.0.0.1:{port}/static/{name}") == (
                200,
                (ROOT / "queuelab/api/static" / name).read_bytes(),
            )
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(60)
    assert code == 0, log.read_text()


def wait_for_page(url: str, server: subprocess.Popen[bytes], log: Path) -> tuple[int, bytes]:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"the API server exited with {server.returncode}:\n{log.read_text()}")
        try:
            return get(url)
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise AssertionError(f"the API server did not answer {url} within {START_SECONDS}s:\n{log.read_text()}")
