"""A worker's writes to the lease store, each with what its failure means.

A worker never lets a database error end it: an ack that cannot be written now is written
by a later turn, or its lease expires and the job is rescued; a job that cannot be handed
back is rescued the same way. These functions say so in the log and carry on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from queuelab.errors import LeaseLost, StoreError
from queuelab.models import Lease
from queuelab.policy import Decision
from queuelab.runtime import events
from queuelab.runtime.context import Runtime
from queuelab.store.claims import ClaimFilter
from queuelab.store.leases import Finished

log = logging.getLogger("queuelab.worker")


class WorkerWrites:
    def __init__(self, runtime: Runtime, worker_id: str) -> None:
        self.runtime = runtime
        self.worker_id = worker_id

    def turn(
        self,
        finished: Sequence[Finished],
        which: ClaimFilter,
        start: int,
        ahead: int = 0,
        also: tuple[ClaimFilter, int] | None = None,
    ) -> list[Lease] | None:
        """Ack ``finished`` and claim up to ``start`` jobs to start at once and ``ahead`` to
        start later, and ``also`` (filter, jobs: the async ones), in one transaction; the
        new leases, or None if the database failed (the acks are then still to be written)."""
        try:
            now = self.runtime.clock.now
            more = {"also": also} if also is not None else {}  # (keeps the plain call for wrappers)
            lost, claimed = self.runtime.leases.ack_and_claim(finished, which, start, now, ahead, **more)
        except StoreError as exc:
            log.error("could not write acks or claim (will retry): %s", exc)
            return None
        for lease in lost:
            log.warning(
                "job %s: the lease of attempt %d was lost (it expired and was rescued, or was "
                "released); its outcome was discarded",
                lease.job_id,
                lease.attempt,
            )
        events.turn(self.runtime, self.worker_id, finished, lost, claimed)
        return claimed

    def ack_now(self, lease: Lease, decision: Decision) -> None:
        """Ack one attempt at once, outside a turn (a timeout)."""
        now = self.runtime.clock.now()
        try:
            self.runtime.leases.ack(lease, decision, self.worker_id, now)
            events.turn(self.runtime, self.worker_id, [Finished(lease, decision, now)], [], [])
        except LeaseLost as exc:
            log.warning("%s", exc)
        except StoreError as exc:
            log.error(
                "could not record the outcome of job %s; it will be rescued when its lease expires: %s",
                lease.job_id,
                exc,
            )

    def hand_back(self, leases: Sequence[Lease]) -> None:
        """Hand back jobs no slot started, without spending their attempt."""
        try:
            released = self.runtime.leases.release_many(leases, self.worker_id, self.runtime.clock.now(), started=False)
        except StoreError as exc:
            log.error("could not hand back %d job(s) not started; they will be rescued: %s", len(leases), exc)
            return
        if released:
            log.info("worker %s handed back %d job(s) it had not started", self.worker_id, released)

    def release(self, lease: Lease, grace: float) -> None:
        """Hand back a job still running after the grace period, without spending its attempt."""
        try:
            released = self.runtime.leases.release(lease, self.worker_id, self.runtime.clock.now())
        except StoreError as exc:
            log.error("could not release job %s; it will be rescued when its lease expires: %s", lease.job_id, exc)
            return
        if released:
            log.warning(
                "worker %s released job %s unfinished after the %gs grace period; no attempt spent",
                self.worker_id,
                lease.job_id,
                grace,
            )
