"""The one background-loop shape: ticks with the times given, errors that do not end it."""

from __future__ import annotations

import logging
import threading

import pytest

from queuelab.clock import FakeClock
from queuelab.errors import StoreError
from queuelab.looper import Looper


class Recorder(Looper):
    def __init__(self, fail_with: BaseException | None = None) -> None:
        super().__init__("test-looper", every=0.0, clock=FakeClock(1000.0))
        self.ticks: list[tuple[float, float]] = []
        self.fail_with = fail_with
        self.ticked = threading.Event()

    def tick(self, now: float, mono: float) -> None:
        self.ticks.append((now, mono))
        self.ticked.set()
        if self.fail_with is not None:
            raise self.fail_with


def test_a_tick_gets_the_injected_clock_and_the_monotonic_time() -> None:
    loop = Recorder()
    loop.run_tick()
    assert loop.ticks[0][0] == 1000.0
    assert loop.ticks[0][1] > 0


@pytest.mark.parametrize(
    ("error", "logged"), [(StoreError("db down"), "db down"), (ValueError("a bug"), "unexpectedly")]
)
def test_a_failing_tick_is_logged_counted_and_the_loop_goes_on(
    error: BaseException, logged: str, caplog: pytest.LogCaptureFixture
) -> None:
    loop = Recorder(fail_with=error)
    with caplog.at_level(logging.ERROR, logger="queuelab.looper"):
        loop.start()
        for _ in range(3):  # three ticks, each raising: the thread outlives them all
            assert loop.ticked.wait(30)
            loop.ticked.clear()
        loop.stop(timeout=30)
    assert loop.errors >= 3
    assert not loop.alive
    assert logged in caplog.text


def test_stop_ends_the_thread_and_can_be_called_from_a_tick() -> None:
    class StopsItself(Recorder):
        def tick(self, now: float, mono: float) -> None:
            super().tick(now, mono)
            self.stop()

    loop = StopsItself()
    loop.start()
    assert loop.ticked.wait(30)
    loop.stop(timeout=30)
    assert not loop.alive
    assert len(loop.ticks) == 1


def test_wake_ticks_before_the_interval_ends() -> None:
    loop = Recorder()
    loop.every = 3600.0  # without wake() the first tick would come in an hour
    loop.start()
    loop.wake()
    assert loop.ticked.wait(30)
    loop.stop(timeout=30)
    assert len(loop.ticks) == 1
