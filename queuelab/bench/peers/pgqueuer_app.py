"""pgqueuer on PostgreSQL (asyncpg), its entrypoint running the shared body. Run as a module
it is pgqueuer's default worker (``QueueManager.run()`` with its defaults: batches of 10,
LISTEN/NOTIFY), in drain mode so that it exits when the queue is empty:
``python -m queuelab.bench.peers.pgqueuer_app DSN``."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from queuelab.bench.peers.body import append_line

ENTRYPOINT = "append_line"


async def install(dsn: str) -> None:
    import asyncpg
    from pgqueuer import AsyncpgDriver, Queries

    conn = await asyncpg.connect(dsn)
    try:
        await Queries(AsyncpgDriver(conn)).install()
    finally:
        await conn.close()


async def enqueue(dsn: str, path: str, n: int, batch: int) -> float:
    """``n`` jobs, ``batch`` per call (1: one call per job); the seconds it took, timed
    after the connection is open and one job was enqueued and removed (warm)."""
    import time

    import asyncpg
    from pgqueuer import AsyncpgDriver, Queries

    conn = await asyncpg.connect(dsn)
    try:
        queries = Queries(AsyncpgDriver(conn))
        await queries.enqueue(ENTRYPOINT, path.encode())
        await queries.clear_queue(ENTRYPOINT)
        started = time.perf_counter()
        for offset in range(0, n, batch):
            count = min(batch, n - offset)
            if batch == 1:
                await queries.enqueue(ENTRYPOINT, path.encode())
            else:
                await queries.enqueue([ENTRYPOINT] * count, [path.encode()] * count, [0] * count)
        return time.perf_counter() - started
    finally:
        await conn.close()


async def work(dsn: str) -> None:
    import asyncpg
    from pgqueuer import AsyncpgDriver, Queries, QueueManager
    from pgqueuer.domain.types import QueueExecutionMode

    conn = await asyncpg.connect(dsn)
    qm = QueueManager(Queries(AsyncpgDriver(conn)))

    @qm.entrypoint(ENTRYPOINT)
    async def run(job: Any) -> None:
        append_line(job.payload.decode())

    await qm.run(mode=QueueExecutionMode.drain)
    await conn.close()


if __name__ == "__main__":
    asyncio.run(work(sys.argv[1]))
