"""Submit and run jobs on SQLite with the core alone, then print what was imported.

Standalone (it imports queuelab and the standard library only), so a test can run it with
any interpreter: the suite's, or a fresh virtualenv's with the core distribution installed.
``python core_smoke.py DB_PATH`` prints one JSON line: each job's status and result, and
which of the extras' modules ended up in ``sys.modules`` (the core should load none).
"""

from __future__ import annotations

import json
import sys

import queuelab

# Import names of every extra's packages (pyproject.toml's optional dependencies).
EXTRAS_MODULES = (
    "psycopg",
    "pandas",
    "numpy",
    "tqdm",
    "fastapi",
    "starlette",
    "pydantic",
    "uvicorn",
    "prometheus_client",
    "httpx",
    "matplotlib",
    "redis",
    "ipywidgets",
    "opentelemetry",
)


def main(db_path: str) -> int:
    with queuelab.Queue(f"sqlite:///{db_path}") as q:
        metrics = q.enable_metrics()  # counting needs no extra (serving the counts does)

        @q.task
        def add(a: int, b: int) -> int:
            return a + b

        jobs = [q.submit("add", {"a": n, "b": 1}) for n in range(5)]
        with q.worker(2, mode="thread"):
            done = [q.wait(job, timeout=120) for job in jobs]
        stepped = q.submit("add", {"a": 40, "b": 2})
        worker = q.foreground_worker()
        worker.step()  # runs the job; its ack waits for the next step, or a flush
        worker.flush()
        done.append(q.wait(stepped, timeout=120))
    report = {
        "queuelab": queuelab.__file__,
        "jobs": [[job.status.value, job.result] for job in done],
        "loaded": [name for name in EXTRAS_MODULES if name in sys.modules],
        "completed": sum(v for (name, _), v in metrics.snapshot().counters.items() if name == "completed"),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
