"""A worker's job events, each a log line (``queuelab.jobs``, with the job's fields and an
``event`` field) and a count (when :attr:`Runtime.metrics <queuelab.runtime.Runtime.metrics>`
is on). The worker calls these at few places: :func:`started` when a slot or the event
loop starts an attempt, :func:`turn` once per turn with what it wrote and claimed.

Both are lazy: a line is built only if ``queuelab.jobs`` logs at its level
(``isEnabledFor``), a count only if metrics are on. The worker checks the same two things
before calling :func:`started`, so a drain logging at WARNING without metrics pays two
cheap tests per job and nothing more. The attempt's end (completed, failed with a retry
scheduled or to the dead-letter queue) is logged where it is decided
(:func:`queuelab.runtime.context.Runtime.decide`); a hand-back and a rescue, by the store.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from queuelab.logs import job_fields
from queuelab.models import Lease
from queuelab.runtime.context import Runtime
from queuelab.store.leases import Finished

log = logging.getLogger("queuelab.jobs")

# A claim is logged at DEBUG: a prefetching worker claims a hundred jobs a turn, and their
# start, logged at INFO, says the same a moment later (see the README's logging section
# for the measured cost).
CLAIMED_LEVEL = logging.DEBUG


def started(runtime: Runtime, lease: Lease) -> None:
    """An attempt started (``lease.started_at``, wall time)."""
    if log.isEnabledFor(logging.INFO):
        fields = {**job_fields(lease), "event": "started"}
        if lease.run_at is not None:
            fields["wait_seconds"] = round(max(0.0, lease.started_at - lease.run_at), 6)
        log.info("job %s (%s) attempt %d started", lease.job_id, lease.task, lease.attempt, extra={"fields": fields})
    if runtime.metrics is not None:
        runtime.metrics.started(lease)


def turn(
    runtime: Runtime, worker_id: str, finished: Sequence[Finished], lost: Sequence[Lease], claimed: Sequence[Lease]
) -> None:
    """A turn wrote ``finished`` (but ``lost``) and claimed ``claimed``."""
    if finished and runtime.metrics is not None:
        runtime.metrics.written(finished, lost)
    if claimed and log.isEnabledFor(CLAIMED_LEVEL):
        for lease in claimed:
            fields = {**job_fields(lease), "event": "claimed", "worker_id": worker_id}
            done = (lease.job_id, lease.task, lease.attempt, worker_id)
            log.log(CLAIMED_LEVEL, "job %s (%s) attempt %d claimed by worker %s", *done, extra={"fields": fields})
