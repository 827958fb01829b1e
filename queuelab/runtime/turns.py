"""When a worker takes a turn, how many jobs it claims, and how long it waits: pure
functions of a snapshot and a time, so the rules are tested with plain asserts.

A *turn* acks every attempt that finished since the last one and claims new jobs, in one
transaction (see :mod:`queuelab.runtime.worker`). Without prefetch a turn is due for any ack or free
slot. With prefetch (jobs claimed ahead, beyond the free slots, run without a turn each) a
turn is due when half the prefetch is used up, or when an ack has waited ``ACK_DELAY_SECONDS``.
How far ahead to claim follows the jobs' measured run time (:func:`claim_ahead`): short jobs
come in batches, long ones one per free slot. Async jobs run on the worker's event loop, not
in its slots: a turn also claims them, for the loop's free places (``async_free``), never ahead.
Times here are :func:`time.monotonic` seconds, except where a name says "wall".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from queuelab.bounds import AUTO_PREFETCH

# Jobs that run shorter than this (on a moving average) finish in bursts: the dispatcher
# then waits up to this long for the other busy slots to finish, so that one transaction
# acks them all and claims as many, instead of one transaction per job. Longer jobs are
# acked at once: for them the wait would only idle a slot.
ACK_GATHER_SECONDS = 0.001
# With prefetch, the longest a finished job's ack waits for the next turn.
ACK_DELAY_SECONDS = 0.02
# Waits for a job held back by a running quota on PostgreSQL (see idle_wait): the first,
# doubled each time nothing came free, up to the last.
# With the prefetch on "auto" (the default), a worker claims ahead about this much work (by
# the moving average of its jobs' run time), at most bounds.AUTO_PREFETCH jobs: short jobs
# then cost one transaction per batch, while a
# job claimed ahead waits behind at most about this long of its worker's work. Jobs this
# long or longer are claimed only for a free slot.
AHEAD_SECONDS = 0.05
# What a job costs the worker beside its own run (claim, ack, bookkeeping: about 50-100 µs
# measured on PostgreSQL and SQLite): jobs shorter than this are counted at this, so that
# AHEAD_SECONDS of them is what the worker gets through in that time. Claiming ahead 50 ms
# of such jobs lets a turn's database wait overlap the runs of the jobs still waiting; at
# the old bound of 100 no-op jobs the slot ran dry in every turn and idled 63% of a drain
# (PostgreSQL: 100 -> 1,000 ahead took a 1-slot drain from 4,076 to 6,801 jobs/s).
JOB_OVERHEAD_SECONDS = 0.00005
HELD_WAIT_SECONDS = 0.01
HELD_WAIT_MAX_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class TurnSnapshot:
    """What a turn is planned from: the worker's counts at one instant."""

    concurrency: int  # slots
    prefetch: int  # jobs to hold beyond the slots now (0 while a running quota is set)
    waiting: int  # claimed, not started by a slot yet (prefetched)
    running: int
    finished: int  # outcomes not acked yet
    oldest_unacked: float | None  # when the oldest of those came
    stopping: bool  # no more claims
    poll_seconds: float  # the longest a busy worker waits before planning again
    async_free: int = 0  # async jobs the event loop could take now (0: no async task here)


@dataclass(frozen=True, slots=True)
class TurnPlan:
    due: bool  # take a turn now
    claim: int  # jobs to claim in it: enough to fill the free slots and the prefetch
    wait_seconds: float  # not due: the longest to wait (for a slot's poke) before planning again
    start: int = 0  # of ``claim``, those for free slots, started at once; the rest are claimed ahead
    claim_async: int = 0  # async jobs to claim besides, for the event loop (started at once)


def plan_turn(s: TurnSnapshot, now: float) -> TurnPlan:
    # An idle worker claims for its free slots only: the job that woke it starts after one
    # statement, not two. Claiming ahead starts with the next turn, once it is busy.
    prefetch = s.prefetch if s.waiting or s.running or s.finished else 0
    claim = 0 if s.stopping else max(0, s.concurrency + prefetch - s.waiting - s.running)
    start = min(claim, max(0, s.concurrency - s.waiting - s.running))
    claim_async = 0 if s.stopping else s.async_free
    low = prefetch // 2
    ack_waited = s.oldest_unacked is None or now - s.oldest_unacked >= ACK_DELAY_SECONDS
    if s.finished and (not s.prefetch or s.waiting <= low or ack_waited):
        return TurnPlan(True, claim, 0.0, start, claim_async)
    wait = s.poll_seconds
    if s.finished and s.prefetch and s.oldest_unacked is not None:
        wait = min(wait, max(0.0, s.oldest_unacked + ACK_DELAY_SECONDS - now))
    due = claim > low or claim_async > 0
    return TurnPlan(due, claim, 0.0 if due else wait, start, claim_async)


def claim_ahead(prefetch: int | None, concurrency: int, run_seconds: float | None) -> int:
    """How many jobs to claim ahead: ``prefetch`` if set; if None ("auto"), as many as
    ``AHEAD_SECONDS`` of work for the ``concurrency`` slots at ``run_seconds`` a job (their
    moving average; None: no job measured yet, so none), at most ``bounds.AUTO_PREFETCH``."""
    if prefetch is not None:
        return prefetch
    if run_seconds is None:
        return 0
    return min(AUTO_PREFETCH, int(AHEAD_SECONDS * concurrency / max(run_seconds, JOB_OVERHEAD_SECONDS)))


def skip_turn(*, prefetch: int, queued: int, oldest_unacked: float | None, now: float, stopping: bool) -> bool:
    """The slot's fast way to tell, after a job, that no turn is due (see :func:`plan_turn`)
    without counting the worker's jobs: more than half the prefetch still waits in the
    inbox (``queued``) and no ack has waited long."""
    if not prefetch or oldest_unacked is None or queued <= prefetch // 2 or stopping:
        return False
    return now - oldest_unacked < ACK_DELAY_SECONDS


# Jobs shorter than this may run in fewer slot threads than the worker has (see lanes):
# beside a longer job a thread switch costs nothing worth saving.
LANE_JOB_SECONDS = 0.005


def lanes(concurrency: int, run_seconds: float | None, wait_ratio: float | None) -> int:
    """How many slot threads take jobs at once, from the moving averages of a job's run
    (wall) time and of its ratio to its thread's CPU time, over jobs that ran alone (with
    others running, a job's wall time includes its waits for Python's lock). Python runs one
    thread at a time: short jobs that keep the CPU busy go fastest through one thread, since
    several would take turns on the
    lock, a thread switch per job; jobs that wait (network, disk) overlap, about run/cpu of
    them at once. Long jobs get every slot. Jobs not measured yet get one lane, so that some
    run alone to be measured. (The inbox lets any idle thread take a job that has waited a
    few milliseconds, so one lane never holds long jobs back.)"""
    if run_seconds is None or wait_ratio is None:
        return 1
    if run_seconds >= LANE_JOB_SECONDS:
        return concurrency
    return max(1, min(concurrency, math.floor(wait_ratio)))


def gathers_acks(run_seconds: float) -> bool:
    """Whether jobs are short enough that the acks of slots finishing together are
    gathered into one turn (``run_seconds``: the moving average of a job's run)."""
    return run_seconds < ACK_GATHER_SECONDS


@dataclass(frozen=True, slots=True)
class IdleWait:
    seconds: float
    next_held_wait: float  # the back-off for the next wait on a held-back job


def idle_wait(
    *,
    next_run_at: float | None,
    claimed_at: float,
    now_wall: float,
    held_back_wakes_nobody: bool,
    held_wait: float,
    poll_seconds: float,
) -> IdleWait:
    """How long an idle worker (its claim came back empty) sleeps, woken early by a submit.

    Until the next delayed job is due (``next_run_at``, wall time), at most the poll
    interval. A job that was already due when the claim came back empty is not for us
    (another task, a paused queue, a user at quota): wait for a change rather than spin on
    it. On PostgreSQL under running quotas that change (an ack freeing a user's slot,
    another claimer's commit) sends no NOTIFY: look again after ``held_wait``, doubled
    each time nothing came, up to HELD_WAIT_MAX_SECONDS."""
    if next_run_at is not None and next_run_at > claimed_at:
        return IdleWait(min(poll_seconds, max(0.0, next_run_at - now_wall) + 0.001), held_wait)
    if next_run_at is not None and held_back_wakes_nobody:
        return IdleWait(min(poll_seconds, held_wait), min(2 * held_wait, HELD_WAIT_MAX_SECONDS))
    return IdleWait(poll_seconds, held_wait)
