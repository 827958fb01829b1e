"""huey on SQLite (``SqliteHuey``), its task running the shared body. Run as a module it is
huey's default consumer (``huey_consumer`` with no options: one worker thread, polling from
0.1 s with backoff): ``python -m queuelab.bench.peers.huey_app DB_FILE``."""

from __future__ import annotations

import sys
from typing import Any

from queuelab.bench.peers.body import append_line


def build(filename: str) -> tuple[Any, Any]:
    """The huey instance on ``filename`` and its task (registered under a fixed name, so the
    consumer process finds the producer's task)."""
    from huey import SqliteHuey

    huey = SqliteHuey("queuelab-bench", filename=filename)
    return huey, huey.task(name="append_line")(append_line)


def main(filename: str) -> None:
    huey, _ = build(filename)
    huey.create_consumer().run()  # the defaults of huey_consumer; SIGINT/SIGTERM stop it


if __name__ == "__main__":
    main(sys.argv[1])
