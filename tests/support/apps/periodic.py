"""A periodic task for the scheduler's process tests: ``beat`` every second, its missed
ticks caught up (so a loaded machine delays ticks but never drops one).

With ``QUEUELAB_TEST_HANG_MID_TICK=<file>``, the first tick this process enqueues stops
after its job is inserted and before the commit: the process writes the tick's keys to the
file and waits there, holding the transaction open, for the test to SIGKILL it."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from queuelab import Queue
from queuelab.store.jobs import JobStore

q = Queue()


@q.periodic("* * * * * *", catch_up=100)  # croniter: seconds are the sixth field
@q.task
def beat() -> None:
    return None


def _hang_mid_tick(marker: Path) -> None:
    insert_in = JobStore.insert_in

    def insert_then_hang(self: JobStore, conn: Any, rows: Any, now: float, **kwargs: Any) -> Any:
        result = insert_in(self, conn, rows, now, **kwargs)
        keys = [row["idempotency_key"] for row in rows if str(row["idempotency_key"]).startswith("schedule:")]
        if keys:
            marker.write_text(json.dumps(keys))
            threading.Event().wait()  # until SIGKILL, the transaction open
        return result

    JobStore.insert_in = insert_then_hang  # type: ignore[method-assign]


if os.environ.get("QUEUELAB_TEST_HANG_MID_TICK"):
    _hang_mid_tick(Path(os.environ["QUEUELAB_TEST_HANG_MID_TICK"]))
