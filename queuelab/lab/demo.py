"""The demo load of ``make run``: three users, short jobs, a few random failures and the
prototype's failing job, worked off by a pool while a progress bar runs."""

from __future__ import annotations

import random
import time

from queuelab.models import JobStatus
from queuelab.queue import Queue
from queuelab.runtime.pool import Mode
from queuelab.submission import Submission

USERS = ("alice", "bob", "carol")


def demo_load(jobs: int, seed: int = 7) -> list[Submission]:
    rng = random.Random(seed)
    load = [
        Submission(
            task="simulate",
            payload={"duration": round(rng.uniform(0, 0.2), 3), "fail_rate": 0.05},
            user_id=rng.choice(USERS),
            priority=rng.choice((0, 0, 0, 5)),
        )
        for _ in range(max(jobs - 1, 0))
    ]
    # The prototype's failing job: 4 runs, then the dead-letter queue.
    load.append(Submission(task="simulate", payload={"fail_simulation": True, "duration": 1}, user_id="bob"))
    return load


def run_demo(q: Queue, *, jobs: int, concurrency: int, mode: Mode) -> None:
    from tqdm import tqdm

    print(f"queuelab demo on {q.describe()}: {jobs} jobs, {concurrency} {mode} worker(s)")
    remaining = {job.id for job in q.submit_many(demo_load(jobs))}
    with q.worker(concurrency, mode), tqdm(total=len(remaining), unit="job") as bar:
        while remaining:
            time.sleep(0.2)
            finished = {i for i in remaining if q.get(i).status in (JobStatus.COMPLETED, JobStatus.FAILED)}
            remaining -= finished
            bar.update(len(finished))
    print_stats(q)
    for job in q.dlq(limit=5):
        job = q.get(job.id)
        last = job.errors[-1] if job.errors else None
        print(
            f"DLQ {job.id} {job.task} user={job.user_id} attempts={job.attempts}: "
            f"{last.error_type if last else '?'}: {last.error_message if last else ''}"
        )


def print_stats(q: Queue) -> None:
    stats = q.stats()
    print("status counts:", ", ".join(f"{k}={v}" for k, v in stats.by_status.items()))
    for queue, counts in sorted(stats.by_queue.items()):
        print(f"  queue {queue}: " + ", ".join(f"{k}={v}" for k, v in counts.items() if v))
    age = stats.oldest_pending_age_seconds
    print(f"oldest runnable job waiting: {'-' if age is None else f'{age:.1f}s'}")
    print(f"completed in the last minute: {stats.outcomes_last_minute.get('COMPLETED', 0)}")
    print(f"live workers: {len(stats.live_workers)}")
    for w in stats.live_workers:
        print(f"  {w.id} mode={w.mode} slots={w.concurrency} queues={w.queues}")
    if stats.recent_scale_events:
        print("latest autoscaling decisions:")
    for e in stats.recent_scale_events:
        print(
            f"  {e.at:%Y-%m-%d %H:%M:%S} {e.pool_id}: {e.workers_before} -> {e.workers_after} workers "
            f"(backlog {e.backlog}, running {e.running}): {e.reason}"
        )
