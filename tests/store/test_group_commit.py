"""Group commit: threads and coroutines that submit at the same time share one transaction,
each returns its own result, and a refused row fails only its own caller. First the
combiner with a write whose timing the test holds; then the real store under real threads
and event loops (``asubmit``, on both databases)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from queue import SimpleQueue
from typing import Any

import pytest

from queuelab import Queue, QuotaExceeded, UnknownTask
from queuelab.models import Job
from queuelab.store.group_commit import GroupCommit, siblings
from tests.support.helpers import wait_until

Rows = list[dict[str, Any]]


def rows(*users: str, key: str | None = None) -> Rows:
    return [{"user_id": user, "idempotency_key": key} for user in users]


class HeldWrite:
    """A write that records each batch, refuses rows of user "bad", and (while ``hold`` is
    clear) blocks each write until the test lets it go."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.hold = threading.Event()
        self.entered = threading.Event()

    def __call__(self, batch: Rows, now: float) -> dict[str, Job]:
        self.entered.set()
        if not self.hold.wait(120):  # never let go by the clock: a slow machine fails loudly
            raise AssertionError("the test never let the held write go")
        if any(row["user_id"] == "bad" for row in batch):
            raise ValueError("refused")
        self.batches.append([row["user_id"] for row in batch])
        return {}


def in_threads(group: GroupCommit, calls: list[Rows]) -> tuple[list[threading.Thread], list[object]]:
    results: list[object] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            results[i] = group.write(calls[i], 0.0)
        except ValueError as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    return threads, results


def wait_queued(group: GroupCommit, n: int) -> None:
    """Until ``n`` callers wait in line (the leader's write is held, so none leaves it)."""
    wait_until(lambda: len(group._queued) >= n, timeout=30, what=f"{n} callers to queue", interval=0.001)


def test_a_lone_caller_writes_at_once_and_callers_who_come_meanwhile_share_the_next_write() -> None:
    write = HeldWrite()
    group = GroupCommit(write)
    (first,), _ = in_threads(group, [rows("a")])
    assert write.entered.wait(60)  # the first caller leads at once, alone
    others, results = in_threads(group, [rows("b"), rows("c", "d"), rows("e")])
    wait_queued(group, 3)
    write.hold.set()
    for thread in [first, *others]:
        thread.join(60)
    assert write.batches[0] == ["a"]
    assert sorted(write.batches[1]) == ["b", "c", "d", "e"]  # one write for the three callers
    assert results == [{}, {}, {}]
    assert group.shared_writes == 1


def test_a_refused_row_fails_only_its_own_caller() -> None:
    write = HeldWrite()
    group = GroupCommit(write)
    (first,), _ = in_threads(group, [rows("a")])
    assert write.entered.wait(60)
    others, results = in_threads(group, [rows("b"), rows("bad"), rows("c")])
    wait_queued(group, 3)
    write.hold.set()
    for thread in [first, *others]:
        thread.join(60)
    assert [isinstance(r, ValueError) for r in results] == [False, True, False]
    assert sorted(map(tuple, write.batches)) == [("a",), ("b",), ("c",)]  # the shared write failed: each alone
    assert group.shared_writes == 0


class Interrupt(BaseException):
    """Not an Exception: as KeyboardInterrupt or SystemExit raised inside a write."""


def test_an_interrupted_shared_write_fails_every_caller_of_it() -> None:
    """Interrupted (a BaseException), a shared write is not retried caller by caller: each of
    its callers gets the interruption, none is left waiting for an outcome."""
    write = HeldWrite()
    group = GroupCommit(write)
    (first,), _ = in_threads(group, [rows("a")])
    assert write.entered.wait(60)
    results: list[object] = [None, None]

    def run(i: int, users: Rows) -> None:
        try:
            results[i] = group.write(users, 0.0)
        except Interrupt as exc:
            results[i] = exc

    others = [threading.Thread(target=run, args=(i, rows(u)), daemon=True) for i, u in enumerate(["b", "c"])]
    for thread in others:
        thread.start()
    wait_queued(group, 2)

    def interrupted(batch: Rows, now: float) -> dict[str, Job]:
        if len(batch) > 1:
            raise Interrupt
        return write(batch, now)

    group._write = interrupted
    write.hold.set()
    for thread in [first, *others]:
        thread.join(60)
    assert not any(thread.is_alive() for thread in others)  # nobody waits forever
    assert [type(r) for r in results] == [Interrupt, Interrupt]
    assert write.batches == [["a"]]


def test_rows_with_an_idempotency_key_are_never_shared() -> None:
    write = HeldWrite()
    write.hold.set()
    group = GroupCommit(write)
    assert group.write(rows("a", key="k"), 0.0) == {}
    assert write.batches == [["a"]]
    assert not group._busy


class Caller:
    """A thread that writes through ``group`` when told to: the same thread each time, so the
    group knows it as a sibling after its first write."""

    def __init__(self, group: GroupCommit) -> None:
        self.group = group
        self.todo: SimpleQueue[Rows | None] = SimpleQueue()
        self.done: SimpleQueue[object] = SimpleQueue()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def write(self, batch: Rows) -> None:
        self.todo.put(batch)

    def result(self) -> object:
        return self.done.get(timeout=30)

    def stop(self) -> None:
        self.todo.put(None)
        self.thread.join(60)

    def _run(self) -> None:
        while (batch := self.todo.get()) is not None:
            self.done.put(self.group.write(batch, 0.0))


def test_a_leader_waits_for_a_thread_that_wrote_lately_and_shares_its_write() -> None:
    write = HeldWrite()
    write.hold.set()
    group = GroupCommit(write, sibling_seconds=60, gather_seconds=60)  # a sibling is always awaited
    first, second = Caller(group), Caller(group)
    first.write(rows("a"))
    assert first.result() == {}  # alone: it has no sibling yet
    second.write(rows("b"))  # leads, and waits for the sibling that wrote lately...
    wait_until(lambda: group._wanted == 2, timeout=30, what="the leader to gather", interval=0.001)
    first.write(rows("c"))  # ...which comes back
    assert (first.result(), second.result()) == ({}, {})
    assert write.batches == [["a"], ["b", "c"]]
    assert group.shared_writes == 1
    first.stop()
    second.stop()


def test_a_thread_that_writes_alone_never_waits_to_gather() -> None:
    write = HeldWrite()
    write.hold.set()
    group = GroupCommit(write, sibling_seconds=60, gather_seconds=600)  # a wait would time the test out
    for user in "abc":
        assert group.write(rows(user), 0.0) == {}
    assert write.batches == [["a"], ["b"], ["c"]]


def test_a_sibling_that_does_not_come_back_delays_the_leader_only_for_the_gather() -> None:
    write = HeldWrite()
    write.hold.set()
    group = GroupCommit(write, sibling_seconds=60, gather_seconds=0.05)
    gone = Caller(group)
    gone.write(rows("a"))
    assert gone.result() == {}
    gone.stop()
    assert group.write(rows("b"), 0.0) == {}  # waited for the sibling in vain, then wrote alone
    assert write.batches == [["a"], ["b"]]


def test_siblings_are_the_threads_that_wrote_within_the_window_and_the_others_are_forgotten() -> None:
    last_write = {1: 10.0, 2: 14.5, 3: 15.0}
    assert siblings(last_write, 15.0, 1.0) == 2
    assert last_write == {2: 14.5, 3: 15.0}
    assert siblings(last_write, 30.0, 1.0) == 0


# -- the real store ---------------------------------------------------------------------------


def submit_in_threads(q: Queue, users: list[str]) -> list[Job | Exception]:
    start = threading.Barrier(len(users))
    results: list[Job | Exception] = [QuotaExceeded("not run")] * len(users)

    def run(i: int) -> None:
        start.wait(60)
        try:
            results[i] = q.submit("simulate", user_id=users[i])
        except QuotaExceeded as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(users))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


@pytest.fixture
def sqlite_queue(tmp_path: Path) -> Iterator[Callable[..., Queue]]:
    made: list[Queue] = []

    def make(**options: Any) -> Queue:
        q = Queue(f"sqlite:///{tmp_path / 'q.db'}", **options)
        made.append(q)
        return q

    yield make
    for q in made:
        q.close()


def test_concurrent_submits_each_get_their_own_stored_job(sqlite_queue: Callable[..., Queue]) -> None:
    q = sqlite_queue()
    results = [job for _ in range(5) for job in submit_in_threads(q, [f"u{i}" for i in range(8)])]
    assert all(isinstance(job, Job) for job in results)
    stored = {job.id: job.user_id for job in q.jobs(limit=100)}
    assert {job.id: job.user_id for job in results if isinstance(job, Job)} == stored
    assert len(stored) == 40


def test_a_quota_refusal_among_concurrent_submits_fails_only_the_refused(sqlite_queue: Callable[..., Queue]) -> None:
    q = sqlite_queue()
    q.set_limits("capped", max_active=3)
    users = ["capped"] * 6 + ["free"] * 6
    results = submit_in_threads(q, users)
    capped = [r for r, user in zip(results, users, strict=True) if user == "capped"]
    free = [r for r, user in zip(results, users, strict=True) if user == "free"]
    assert sum(isinstance(r, Job) for r in capped) == 3
    assert sum(isinstance(r, QuotaExceeded) for r in capped) == 3
    assert all(isinstance(r, Job) for r in free)
    assert q.stats().by_status["PENDING"] == 9


# -- coroutines: the writer thread leads for them ----------------------------------------------


def test_coroutines_share_a_write_led_by_the_writer_thread_and_each_gets_its_own_outcome() -> None:
    write = HeldWrite()
    group = GroupCommit(write)

    async def main() -> list[object]:
        first = asyncio.ensure_future(group.awrite(rows("a"), 0.0))
        await asyncio.to_thread(write.entered.wait, 10)  # the writer thread leads at once
        later = [asyncio.ensure_future(group.awrite(r, 0.0)) for r in (rows("b"), rows("bad"), rows("c", "d"))]
        # One pass of the loop runs each task to its first await, and awrite queues its call
        # before it awaits: a step of the loop, not a wait on time (the leader's write is held).
        await asyncio.sleep(0)
        assert len(group._queued) == 3
        write.hold.set()
        return await asyncio.gather(first, *later, return_exceptions=True)

    results = asyncio.run(main())
    assert [isinstance(r, ValueError) for r in results] == [False, False, True, False]
    # the shared write of b, bad, c+d failed on "bad": each was written alone
    assert sorted(map(tuple, write.batches)) == [("a",), ("b",), ("c", "d")]
    group.close()


def test_coroutines_that_queue_in_one_turn_of_the_loop_share_its_first_write() -> None:
    """The loop starts the write at the end of its turn, so the first caller does not leave
    alone with the others a step behind it (under HTTP load on SQLite most writes were of one
    row when the writer thread started at once)."""
    write = HeldWrite()
    write.hold.set()
    group = GroupCommit(write)

    async def main() -> list[dict[str, Job]]:
        return await asyncio.gather(*(group.awrite(rows(user), 0.0) for user in "abcde"))

    assert asyncio.run(main()) == [{}] * 5
    assert write.batches == [["a", "b", "c", "d", "e"]]
    assert group.shared_writes == 1
    group.close()


def test_coroutines_that_queue_during_a_write_share_the_next_one() -> None:
    write = HeldWrite()
    group = GroupCommit(write)

    async def main() -> None:
        first = asyncio.ensure_future(group.awrite(rows("a"), 0.0))
        await asyncio.to_thread(write.entered.wait, 10)
        during = [asyncio.ensure_future(group.awrite(rows(user), 0.0)) for user in "bcd"]
        await asyncio.sleep(0)  # b, c and d queue while a's write is held
        write.hold.set()
        await asyncio.gather(first, *during)

    asyncio.run(main())
    assert write.batches == [["a"], ["b", "c", "d"]]
    assert not group._busy
    group.close()


def test_a_thread_queued_behind_coroutines_is_made_leader_and_a_coroutine_behind_a_thread_is_led() -> None:
    write = HeldWrite()
    group = GroupCommit(write)
    (leader,), _ = in_threads(group, [rows("t1")])
    assert write.entered.wait(60)  # a thread leads the first write

    async def main() -> dict[str, Job]:
        waiting = asyncio.ensure_future(group.awrite(rows("c1"), 0.0))
        await asyncio.sleep(0)  # one step of the loop: the task queues its call (see above)
        assert len(group._queued) == 1
        (thread,), results = in_threads(group, [rows("t2")])
        await asyncio.to_thread(wait_queued, group, 2)
        write.hold.set()  # t1's write ends; c1 is next: the writer thread leads c1 and t2
        found = await waiting
        await asyncio.to_thread(thread.join, 10)
        assert results == [{}]
        return found

    assert asyncio.run(main()) == {}
    leader.join(60)
    assert write.batches[0] == ["t1"]
    assert sorted(write.batches[1]) == ["c1", "t2"]
    assert not group._busy
    group.close()


def test_a_cancelled_coroutine_stops_waiting_but_its_rows_are_written() -> None:
    write = HeldWrite()
    group = GroupCommit(write)

    async def main() -> None:
        task = asyncio.ensure_future(group.awrite(rows("a"), 0.0))
        await asyncio.to_thread(write.entered.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        write.hold.set()

    asyncio.run(main())
    group.close()  # waits for the writer thread
    assert write.batches == [["a"]]
    assert not group._busy


# -- asubmit on both databases ------------------------------------------------------------------


def test_concurrent_asubmits_each_get_their_own_stored_job(queue: Queue) -> None:
    async def main() -> list[Job]:
        return await asyncio.gather(*(queue.asubmit("simulate", {"n": i}, user_id=f"u{i % 3}") for i in range(40)))

    made = asyncio.run(main())
    stored = {job.id: (job.user_id, job.payload) for job in queue.jobs(limit=100)}
    assert {job.id: (job.user_id, job.payload) for job in made} == stored
    assert sorted(job.payload["n"] for job in made) == list(range(40))


def test_a_quota_refusal_among_concurrent_asubmits_fails_only_the_refused(queue: Queue) -> None:
    queue.set_limits("capped", max_active=3)
    users = ["capped"] * 6 + ["free"] * 6

    async def main() -> list[Job | BaseException]:
        return await asyncio.gather(*(queue.asubmit("simulate", user_id=u) for u in users), return_exceptions=True)

    results = asyncio.run(main())
    capped = [r for r, user in zip(results, users, strict=True) if user == "capped"]
    assert sum(isinstance(r, Job) for r in capped) == 3
    assert sum(isinstance(r, QuotaExceeded) for r in capped) == 3
    assert all(isinstance(r, Job) for r, user in zip(results, users, strict=True) if user == "free")
    assert queue.stats().by_status["PENDING"] == 9


def test_asubmit_with_an_idempotency_key_returns_the_first_job(queue: Queue) -> None:
    async def main() -> list[Job]:
        first = await queue.asubmit("simulate", {"n": 1}, idempotency_key="k")
        again = await queue.asubmit("simulate", {"n": 2}, idempotency_key="k")
        return [first, again]

    first, again = asyncio.run(main())
    assert again.id == first.id
    assert again.payload == {"n": 1}
    assert len(queue.jobs(limit=10)) == 1


def test_bad_input_to_asubmit_raises_before_anything_is_stored(queue: Queue) -> None:
    with pytest.raises(UnknownTask):
        asyncio.run(queue.asubmit("no-such-task"))
    assert queue.jobs(limit=10) == []


def test_the_event_loop_runs_on_while_asubmit_waits_for_the_database(sqlite_queue: Callable[..., Queue]) -> None:
    q = sqlite_queue()
    q.submit("simulate")  # the schema exists
    blocker = sqlite3.connect(
        q.settings.database_url.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False
    )
    blocker.execute("BEGIN IMMEDIATE")  # holds SQLite's write lock

    async def main() -> Job:
        submit = asyncio.ensure_future(q.asubmit("simulate", {"n": 2}))
        other = asyncio.Event()
        asyncio.get_running_loop().call_soon(other.set)
        await asyncio.wait_for(other.wait(), 10)  # served while the submit waits for the lock
        assert not submit.done()
        await asyncio.to_thread(blocker.execute, "COMMIT")
        return await submit

    job = asyncio.run(main())
    blocker.close()
    assert q.get(job.id).payload == {"n": 2}


def test_asubmit_after_close_opens_the_queue_again_as_submit_does(queue: Queue) -> None:
    """close() stops the group's writer thread; the next asubmit starts a new one (it
    waited forever for the stopped one, its start failing inside the event loop)."""
    first = asyncio.run(queue.asubmit("simulate"))
    queue.close()

    async def after_close() -> Job:
        return await asyncio.wait_for(queue.asubmit("simulate"), timeout=120)

    second = asyncio.run(after_close())
    assert {job.id for job in queue.jobs(limit=10)} == {first.id, second.id}
