"""A running job's cancel flag (queuelab.runtime.progress.CancelSignal): an Event's
behaviour, with the Event made only by a waiter. Real threads, no sleeps."""

from __future__ import annotations

import threading

from queuelab.runtime.progress import CancelSignal


def test_unset_it_reads_false_and_a_wait_times_out() -> None:
    signal = CancelSignal()
    assert not signal.is_set()
    assert signal.wait(0) is False


def test_set_before_a_wait_the_wait_returns_at_once() -> None:
    signal = CancelSignal()
    signal.set()
    assert signal.is_set()
    assert signal.wait(None) is True  # no timeout: it would hang if the flag were missed


def test_set_from_another_thread_wakes_a_waiter_whenever_it_came() -> None:
    for _ in range(200):  # the set lands before, during or after the waiter makes its Event
        signal, results = CancelSignal(), list[bool]()
        waiter = threading.Thread(target=lambda s=signal, r=results: r.append(s.wait(60)))
        waiter.start()
        signal.set()
        waiter.join(120)
        assert results == [True]


def test_several_waiters_share_one_event() -> None:
    signal, results = CancelSignal(), list[bool]()
    ready = threading.Barrier(5)

    def wait() -> None:
        ready.wait()
        results.append(signal.wait(60))

    waiters = [threading.Thread(target=wait) for _ in range(4)]
    for waiter in waiters:
        waiter.start()
    ready.wait()
    signal.set()
    for waiter in waiters:
        waiter.join(120)
    assert results == [True] * 4
