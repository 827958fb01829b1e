"""The end of a worker's stop: what becomes of the jobs it still holds once the grace
period is over (see ``Worker._drain``, which first hands back the jobs not started and
waits for the running ones).

A job that never started goes back; so does an async job, whose coroutine is cancelled
first. A slot's job still running goes back only where its process is about to exit
(``release_on_stop``): elsewhere its thread runs on and would run beside a new attempt, so
its lease is left to expire and the job to be rescued.
"""

from __future__ import annotations

import logging

from queuelab.runtime.coroutines import Coroutines
from queuelab.runtime.held import EntryState, HeldJobs
from queuelab.runtime.writes import WorkerWrites

log = logging.getLogger("queuelab.worker")

CANCEL_WAIT_SECONDS = 2.0  # how long cancelled coroutines get to end before their jobs go back


def release_left(
    held: HeldJobs, coroutines: Coroutines, writes: WorkerWrites, *, release_on_stop: bool, grace: float
) -> None:
    """Abandon every job still held (whatever it returns is discarded), cancel the
    coroutines, and hand back the jobs that may go back, without spending their attempt."""
    left = [(entry, entry.state is EntryState.WAITING) for entry in held.entries()]
    left = [(entry, never_started) for entry, never_started in left if held.abandon(entry)]
    coroutines.close(CANCEL_WAIT_SECONDS)  # they end before their jobs go back
    for entry, never_started in left:
        if release_on_stop or never_started or entry.coroutine:
            writes.release(entry.lease, grace)
        else:
            log.warning(
                "job %s is still running after the %gs grace period; its thread cannot be stopped, "
                "so its lease will expire and it will be rescued",
                entry.lease.job_id,
                grace,
            )
