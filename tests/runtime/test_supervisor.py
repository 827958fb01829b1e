"""The process pool's supervisor, ticked with the monotonic times the test chooses: fake
children whose deaths the test decides, and real short-lived processes."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os

import pytest

from queuelab import Queue
from queuelab.runtime.supervisor import MAX_RESTART_DELAY, Child, Supervisor, restart_delay
from queuelab.testing import internals

NOW = 1_800_000_000.0  # the supervisor does not use the wall clock


class FakeChild:
    """A child process that lives until the test says it died."""

    def __init__(self, pid: int) -> None:
        self.pid: int | None = pid
        self.exitcode: int | None = None
        self.terminated = False

    def is_alive(self) -> bool:
        return self.exitcode is None

    def die(self, code: int = 1) -> None:
        self.exitcode = code

    def terminate(self) -> None:
        self.terminated = True
        self.exitcode = -15

    def kill(self) -> None:
        self.exitcode = -9

    def join(self, timeout: float | None = None) -> None:
        pass


class Spawner:
    """The supervisor's ``spawn``: records every child it starts."""

    def __init__(self) -> None:
        self.started: list[FakeChild] = []

    def __call__(self) -> Child:
        child = FakeChild(1000 + len(self.started))
        self.started.append(child)
        return child


def test_the_restart_delay_doubles_from_half_a_second_up_to_the_maximum() -> None:
    assert [restart_delay(n) for n in range(9)] == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert restart_delay(1000) == MAX_RESTART_DELAY


def test_a_child_that_dies_quickly_twice_is_restarted_only_after_the_doubled_delay() -> None:
    spawn = Spawner()
    sup = Supervisor(spawn)
    sup.resize(1, mono=0.0)
    spawn.started[0].die()
    sup.tick(NOW, 1.0)  # lived 1 s: a quick death, the slot waits 0.5 s
    assert (len(spawn.started), sup.waiting(), sup.restarts) == (1, 1, 1)
    sup.tick(NOW, 1.49)
    assert len(spawn.started) == 1
    sup.tick(NOW, 1.5)
    assert (len(spawn.started), sup.waiting()) == (2, 0)
    spawn.started[1].die()
    sup.tick(NOW, 2.0)  # lived 0.5 s: the second quick death in a row, the slot waits 1 s
    sup.tick(NOW, 2.99)
    assert (len(spawn.started), sup.waiting(), sup.restarts) == (2, 1, 2)
    sup.tick(NOW, 3.0)
    assert len(spawn.started) == 3
    assert sup.pids() == [1002]


def test_a_child_that_lived_long_is_replaced_at_once_and_ends_the_back_off() -> None:
    spawn = Spawner()
    sup = Supervisor(spawn)
    sup.resize(1, mono=0.0)
    for mono in (1.0, 2.0, 4.0):  # three quick deaths in a row: the next delay would be 4 s
        spawn.started[-1].die()
        sup.tick(NOW, mono)
        sup.tick(NOW, mono + restart_delay(sup.restarts))
    assert len(spawn.started) == 4
    spawn.started[-1].die()
    sup.tick(NOW, 100.0)  # lived 94 s: not a crash loop
    assert (len(spawn.started), sup.waiting()) == (5, 0)
    spawn.started[-1].die()
    sup.tick(NOW, 101.0)  # a quick death again: the back-off starts over at 0.5 s
    sup.tick(NOW, 101.49)
    assert len(spawn.started) == 5
    sup.tick(NOW, 101.5)
    assert len(spawn.started) == 6


def test_the_back_off_is_one_for_the_pool(caplog: pytest.LogCaptureFixture) -> None:
    spawn = Spawner()
    sup = Supervisor(spawn)
    sup.resize(2, mono=0.0)
    for child in spawn.started:
        child.die(code=3)  # both die at once, as with a database that is down
    with caplog.at_level(logging.WARNING, logger="queuelab.pool"):
        sup.tick(NOW, 1.0)  # the first: 0.5 s
        sup.tick(NOW, 1.2)  # the second is not even counted during the first's back-off
        assert sup.restarts == 1
        sup.tick(NOW, 1.5)  # the second: a quick death in a row, 1 s, which holds the first's restart too
    assert (sup.restarts, sup.waiting(), len(spawn.started)) == (2, 2, 2)
    assert "worker process 1000 exited with code 3 after 1.0s; starting another in 0.5s" in caplog.text
    assert "worker process 1001 exited with code 3 after 1.5s; starting another in 1.0s" in caplog.text
    sup.tick(NOW, 2.5)
    sup.tick(NOW, 2.5)  # one start per tick
    assert (sup.waiting(), len(spawn.started)) == (0, 4)


def test_resize_starts_and_stops_children_at_once() -> None:
    spawn = Spawner()
    sup = Supervisor(spawn)
    sup.resize(3, mono=0.0)
    assert sup.pids() == [1000, 1001, 1002]
    sup.resize(1, mono=1.0)
    assert [c.terminated for c in spawn.started] == [False, True, True]  # the newest go first
    assert sup.pids() == [1000]
    sup.resize(2, mono=2.0)
    assert sup.pids() == [1000, 1003]


def test_a_stopped_supervisor_starts_nothing() -> None:
    spawn = Spawner()
    sup = Supervisor(spawn)
    sup.resize(1, mono=0.0)
    sup.stop()
    spawn.started[0].die()
    sup.tick(NOW, 100.0)
    sup.resize(3, mono=100.0)
    assert len(spawn.started) == 1
    assert sup.restarts == 0


def _exit_at_once() -> Child:
    child = mp.get_context("spawn").Process(target=os._exit, args=(3,), name="short-lived")
    child.start()
    return child


def test_real_short_lived_children_are_restarted_after_the_back_off(caplog: pytest.LogCaptureFixture) -> None:
    sup = Supervisor(_exit_at_once)
    sup.resize(1, mono=0.0)
    (first,) = sup.children()
    first.join(60)  # it has exited: what the tick sees is settled
    assert first.exitcode == 3
    with caplog.at_level(logging.WARNING, logger="queuelab.pool"):
        sup.tick(NOW, 1.0)
    assert f"worker process {first.pid} exited with code 3 after 1.0s; starting another in 0.5s" in caplog.text
    assert sup.children() == []
    sup.tick(NOW, 1.5)
    (second,) = sup.children()
    assert second is not first
    second.join(60)
    assert second.exitcode == 3


def test_a_process_pool_resized_before_start_starts_with_that_size(sqlite_url: str) -> None:
    from queuelab.runtime.pool import ProcessPool

    q = Queue(sqlite_url)
    pool = ProcessPool(internals(q), 2)
    pool.resize(3)
    assert pool.size == 3
    assert pool.pids() == []  # nothing started before start()
    pool.stop()
    q.close()
