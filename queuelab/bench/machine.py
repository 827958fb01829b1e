"""The machine a run measured: CPUs, memory, versions, and the load other processes put
on it (the figures are only as steady as that)."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
from typing import Any

import sqlalchemy as sa


def load() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def describe(postgres_url: str | None) -> dict[str, Any]:
    import psycopg

    return {
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "sqlalchemy": sa.__version__,
        "psycopg": psycopg.__version__,
        "postgresql": describe_postgres(postgres_url) if postgres_url else None,
        "lscpu": _lscpu(),
    }


def _lscpu() -> list[str]:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [" ".join(line.split()) for line in out.splitlines()[:16]]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            kib = int(f.readline().split()[1])  # MemTotal
    except (OSError, ValueError, IndexError):
        return None
    return round(kib / 2**20, 1)


def describe_postgres(url: str) -> str | None:
    """The server's version; None if it cannot be reached."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(sa.text("SHOW server_version")).scalar())
    except sa.exc.SQLAlchemyError:
        return None
    finally:
        engine.dispose()
