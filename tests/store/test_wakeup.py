"""The PostgreSQL LISTEN loop, ticked by the test: it connects, hears a NOTIFY, drops a
connection the server ended, backs off while the server is away and closes on stop."""

from __future__ import annotations

import logging

import psycopg
import pytest
import sqlalchemy as sa

from queuelab.errors import StoreError
from queuelab.store.schema import NOTIFY_CHANNEL
from queuelab.store.wakeup import MAX_RECONNECT_SECONDS, Listener

NOW, MONO = 1_800_000_000.0, 100.0  # the listener does not use them
NOWHERE = "postgresql://postgres@127.0.0.1:1/test?connect_timeout=10"  # nothing listens on port 1
TICKS = 60  # ticks of at most 0.5 s each: a bound a notification's delivery cannot reach


class Calls:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def _dsn(postgres_url: str) -> str:
    return sa.make_url(postgres_url).set(drivername="postgresql").render_as_string(hide_password=False)


def test_a_failing_connection_backs_off_doubling_up_to_the_cap() -> None:
    listener = Listener(NOWHERE, "nowhere", Calls())
    assert listener.interval() == 0.0
    delays = []
    for _ in range(6):
        with pytest.raises(StoreError, match=r"LISTEN connection to nowhere failed \(.+\); polling until it is back"):
            listener.tick(NOW, MONO)
        delays.append(listener.interval())
    assert delays == [0.4, 0.8, 1.6, 3.2, MAX_RECONNECT_SECONDS, MAX_RECONNECT_SECONDS]
    assert listener.backend_pid is None
    assert listener.tried.is_set()


def test_a_failed_connection_is_logged_in_one_line(caplog: pytest.LogCaptureFixture) -> None:
    listener = Listener(NOWHERE, "nowhere", Calls())
    with caplog.at_level(logging.ERROR, logger="queuelab.looper"):
        listener.run_tick()
    assert "queuelab-listen: tick failed, will retry: LISTEN connection to nowhere failed" in caplog.text
    assert "Traceback" not in caplog.text
    assert len(caplog.text.splitlines()) == 1
    assert listener.errors == 1


@pytest.mark.postgres
def test_a_tick_connects_then_the_next_hear_a_notify(postgres_url: str) -> None:
    calls = Calls()
    listener = Listener(_dsn(postgres_url), "test", calls)
    listener.tick(NOW, MONO)
    assert listener.backend_pid is not None
    assert calls.count == 1  # jobs may have been submitted while nobody listened
    with psycopg.connect(_dsn(postgres_url), autocommit=True) as conn:
        conn.execute(f"NOTIFY {NOTIFY_CHANNEL}")
    for _ in range(TICKS):
        listener.tick(NOW, MONO)
        if calls.count > 1:
            break
    assert calls.count > 1
    listener.stop()
    assert listener.backend_pid is None  # stop closed the connection


@pytest.mark.postgres
def test_a_connection_the_server_ends_is_dropped_and_made_again(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    calls = Calls()
    listener = Listener(_dsn(postgres_url), "test", calls)
    listener.tick(NOW, MONO)
    pid = listener.backend_pid
    with psycopg.connect(_dsn(postgres_url), autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
    with pytest.raises(StoreError, match="LISTEN connection to test failed"):  # noqa: PT012 (ticks until the end is seen)
        for _ in range(TICKS):
            listener.tick(NOW, MONO)
    assert (listener.backend_pid, listener.failures, listener.interval()) == (None, 1, 0.4)
    with caplog.at_level(logging.WARNING, logger="queuelab.wakeup"):
        listener.tick(NOW, MONO + 0.4)
    assert "LISTEN connection to test is back" in caplog.text
    assert listener.backend_pid not in (None, pid)
    assert (listener.failures, listener.interval()) == (0, 0.0)
    assert calls.count >= 2  # at each connection
    listener.stop()


@pytest.mark.postgres
def test_the_loop_listens_in_its_thread_and_stop_closes_the_connection(postgres_url: str) -> None:
    listener = Listener(_dsn(postgres_url), "test", Calls()).start()
    assert listener.tried.wait(30)
    assert listener.backend_pid is not None
    listener.stop(timeout=30)
    assert not listener.alive
    assert listener.backend_pid is None
