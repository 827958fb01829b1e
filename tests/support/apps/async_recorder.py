"""Async tasks for the process tests (``--app tests.support.apps.async_recorder:q``): each
returns when it ran (wall times), so a test can tell how many ran at once; the SIGTERM
tests record their starts and ends in a file, like :mod:`.recorder`."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from queuelab import Queue, current_job
from tests.support.apps.recorder import _record

q = Queue()


@q.task
async def nap(seconds: float = 0.5) -> dict[str, Any]:
    """Sleep ``seconds`` on the loop; the result says when it ran, where, and as which job."""
    started = time.time()
    await asyncio.sleep(seconds)
    return {"start": started, "end": time.time(), "pid": os.getpid(), "job": current_job().job_id}


@q.task
async def arecord(path: str, seconds: float = 0.0) -> dict[str, int]:
    """:func:`.recorder.record` as a coroutine: records its start, sleeps, records its end."""
    _record(path, "start")
    await asyncio.sleep(seconds)
    _record(path, "end")
    return {"pid": os.getpid()}


@q.task(timeout_seconds=0.2, max_retries=1)
async def never(path: str) -> None:
    """Waits for an event that never fires: only its timeout ends it."""
    _record(path, "start")
    await asyncio.Event().wait()
