"""The lean core: a SQLite queue and its worker load no extra's package, and a feature
whose extra is missing fails with a message naming the extra and the pip line.

A missing package is simulated with ``sys.modules[name] = None`` (Python's own way to make
``import name`` fail with ModuleNotFoundError), in this process or in a child."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from queuelab import MissingExtra, Queue, Settings
from queuelab.extras import DISTRIBUTION
from queuelab.store.database import Database
from queuelab.store.redis_limiter import RedisRateLimiter

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "tests" / "support" / "core_smoke.py"


def run_python(code_or_args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """A child python importing this tree's queuelab (from a folder with none of its own)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, *code_or_args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180, check=False
    )


def test_a_sqlite_queue_and_its_workers_load_no_extra(tmp_path: Path) -> None:
    """Submit, a thread pool and a foreground worker's step: no psycopg, pandas, numpy,
    FastAPI, tqdm, prometheus_client... in sys.modules afterwards."""
    done = run_python([str(SMOKE), str(tmp_path / "q.db")], tmp_path)

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["queuelab"] == str(ROOT / "queuelab" / "__init__.py")
    assert report["jobs"] == [["COMPLETED", n + 1] for n in range(5)] + [["COMPLETED", 42]]
    assert report["loaded"] == []
    assert report["completed"] == 6


def test_postgresql_without_psycopg_names_the_postgres_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the database opens (a Queue opens it at its first use), before any connection."""
    monkeypatch.setitem(sys.modules, "psycopg", None)

    with pytest.raises(MissingExtra, match=rf"needs the postgres extra .*pip install '{DISTRIBUTION}\[postgres\]'"):
        Database(Settings(database_url="postgresql://nobody@127.0.0.1:1/none"))


def test_a_redis_url_without_redis_names_the_redis_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)

    with pytest.raises(MissingExtra, match=rf"needs the redis extra .*pip install '{DISTRIBUTION}\[redis\]'"):
        RedisRateLimiter("redis://127.0.0.1:1/0")


def test_a_frame_without_pandas_names_the_lab_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with Queue(f"sqlite:///{tmp_path / 'q.db'}") as q:
        monkeypatch.setitem(sys.modules, "pandas", None)

        with pytest.raises(MissingExtra, match=r"Queue.jobs_frame\(\) needs the lab extra \(pandas is not installed\)"):
            q.jobs_frame()
        with pytest.raises(MissingExtra, match=r"needs the lab extra"):
            q.scale_events_frame()


def test_a_missing_extra_is_an_import_error_and_a_config_error() -> None:
    """``except ImportError`` (what a caller probing for an optional feature writes) catches it."""
    assert issubclass(MissingExtra, ImportError)
    assert issubclass(MissingExtra, ValueError)


@pytest.mark.parametrize(
    ("module", "extra", "missing"),
    [("queuelab.api", "api", "fastapi"), ("queuelab.lab", "lab", "pandas"), ("queuelab.bench", "bench", "tqdm")],
)
def test_importing_an_edge_without_its_extra_names_it(module: str, extra: str, missing: str, tmp_path: Path) -> None:
    code = f"import sys; sys.modules[{missing!r}] = None\nimport importlib, {module}\n"
    code += f"getattr({module}, {module}.__all__[0])"
    done = run_python(["-c", code], tmp_path)

    assert done.returncode == 1
    assert f"MissingExtra: {module} needs the {extra} extra ({missing} is not installed)" in done.stderr
    assert f"pip install '{DISTRIBUTION}[{extra}]'" in done.stderr


def test_the_api_server_without_fastapi_says_so_in_one_line_and_exits_2(tmp_path: Path) -> None:
    code = (
        "import runpy, sys\n"
        "sys.modules['fastapi'] = None\n"
        "sys.argv = ['python -m queuelab.api']\n"
        "runpy.run_module('queuelab.api', run_name='__main__', alter_sys=True)\n"
    )
    done = run_python(["-c", code], tmp_path)

    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "queuelab.api: error: python -m queuelab.api needs the api extra (fastapi is not installed): "
        f"pip install '{DISTRIBUTION}[api]'"
    ]


def test_a_worker_metrics_port_without_prometheus_client_names_the_api_extra(tmp_path: Path) -> None:
    """The worker counts without prometheus_client (core_smoke enables metrics); serving the
    counts needs it, and says so before the worker starts."""
    code = (
        "import sys\n"
        "sys.modules['prometheus_client'] = None\n"
        "from queuelab.cli import main\n"
        f"raise SystemExit(main(['worker', '--db', 'sqlite:///{tmp_path / 'q.db'}', '--metrics-port', '0']))\n"
    )
    done = run_python(["-c", code], tmp_path)

    assert done.returncode != 0
    assert done.stderr.splitlines()[-1] == (
        "queuelab: error: --metrics-port needs the api extra (prometheus_client is not installed): "
        f"pip install '{DISTRIBUTION}[api]'"
    )
