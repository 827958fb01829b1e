"""Submitting jobs on both databases: every bad input is refused with a message naming the
argument, the value and what is allowed, and nothing is written; good input is stored as given."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from queuelab import (
    FakeClock,
    InvalidArgument,
    InvalidTransition,
    JobNotFound,
    JobStatus,
    PayloadTooLarge,
    Queue,
    QueuelabError,
    Submission,
    UnknownTask,
)
from queuelab.testing import internals


def assert_nothing_stored(q: Queue) -> None:
    assert q.jobs(limit=100) == []
    assert set(q.stats().by_status.values()) == {0}


def got(value: Any) -> str:
    """The end of a message that names the bad value."""
    return f"got {re.escape(repr(value))}$"


NAIVE = datetime(2030, 1, 1)
AWARE = datetime(2030, 1, 1, tzinfo=UTC)
SIMULATE_DURATION = r"^payload\.duration must be a number of seconds between 0 and 3600, "
PRIORITY = r"^priority must be a whole number between 0 and 9, "
MAX_RETRIES = r"^max_retries must be a whole number between 0 and 100, "
USER_ID = r"^user_id must be a non-empty string of at most 200 characters without NUL, "
QUEUE_NAME = r"^queue must be 1 to 64 letters, digits, _ \. or -, "


def bad(case: str, options: dict[str, Any], message: str) -> Any:
    """One refused ``submit("simulate", **options)``: it raises InvalidArgument matching ``message``."""
    return pytest.param(options, message, id=case)


BAD_SUBMISSIONS = [
    # payload shape and content
    bad("payload-list", {"payload": [1, 2]}, r"^payload must be a JSON object \(a dict\), got list$"),
    bad("payload-str", {"payload": "x"}, r"^payload must be a JSON object \(a dict\), got str$"),
    bad("payload-set", {"payload": {"tags": {1, 2}}}, r"^payload must be JSON-serialisable.*\bset\b"),
    bad(
        "payload-nan",
        {"payload": {"duration": float("nan")}},
        r"^payload must be JSON-serialisable \(no NaN or Infinity\)",
    ),
    bad(
        "payload-inf",
        {"payload": {"duration": float("inf")}},
        r"^payload must be JSON-serialisable \(no NaN or Infinity\)",
    ),
    # the built-in simulate task's own payload rules
    bad("duration-negative", {"payload": {"duration": -1}}, SIMULATE_DURATION + got(-1)),
    bad("duration-str", {"payload": {"duration": "5"}}, SIMULATE_DURATION + got("5")),
    bad("duration-bool", {"payload": {"duration": True}}, SIMULATE_DURATION + got(True)),
    bad("duration-huge", {"payload": {"duration": 10**9}}, SIMULATE_DURATION + got(10**9)),
    bad(
        "fail-rate-2",
        {"payload": {"fail_rate": 2}},
        r"^payload\.fail_rate must be a probability between 0 and 1, " + got(2),
    ),
    bad(
        "fail-simulation-str",
        {"payload": {"fail_simulation": "yes"}},
        r"^payload\.fail_simulation must be true or false, " + got("yes"),
    ),
    # priority
    bad("priority-negative", {"priority": -1}, PRIORITY + got(-1)),
    bad("priority-10", {"priority": 10}, PRIORITY + got(10)),
    bad("priority-float", {"priority": 1.5}, PRIORITY + got(1.5)),
    bad("priority-bool", {"priority": True}, PRIORITY + got(True)),
    # scheduling
    bad("delay-negative", {"delay": -1}, r"^delay must be a number of seconds between 0 and \S+, " + got(-1)),
    bad(
        "delay-timedelta-negative",
        {"delay": timedelta(seconds=-1)},
        r"^delay must be a number of seconds between 0 and \S+, got datetime\.timedelta",
    ),
    bad("delay-and-run-at", {"delay": 5, "run_at": AWARE}, r"^give delay or run_at, not both$"),
    bad("run-at-naive", {"run_at": NAIVE}, r"^run_at must be a timezone-aware datetime, " + got(NAIVE)),
    # retries and leases
    bad("max-retries-negative", {"max_retries": -1}, MAX_RETRIES + got(-1)),
    bad("max-retries-101", {"max_retries": 101}, MAX_RETRIES + got(101)),
    bad("lease-zero", {"lease_seconds": 0}, r"^lease_seconds must be a number of seconds > 0 and <= 86400, " + got(0)),
    # who and where
    bad("user-id-empty", {"user_id": ""}, USER_ID + got("")),
    bad("user-id-201", {"user_id": "u" * 201}, USER_ID + got("u" * 201)),
    bad("user-id-none", {"user_id": None}, USER_ID + got(None)),
    # PostgreSQL cannot store NUL in text and SQLite would store it: refuse it up front on both.
    bad("user-id-nul", {"user_id": "a\x00b"}, r"^user_id .*'a\\x00b'"),
    bad("queue-empty", {"queue": ""}, QUEUE_NAME + got("")),
    bad("queue-space", {"queue": "bad name!"}, QUEUE_NAME + got("bad name!")),
    # `$` in a pattern also matches before a final newline: the name must match in full.
    bad("queue-trailing-newline", {"queue": "emails\n"}, QUEUE_NAME + got("emails\n")),
    bad(
        "idempotency-key-empty",
        {"idempotency_key": ""},
        r"^idempotency_key must be a string of 1 to 200 characters without NUL, " + got(""),
    ),
    bad("idempotency-key-nul", {"idempotency_key": "k\x00"}, r"^idempotency_key .*'k\\x00'"),
]


@pytest.mark.parametrize(("options", "message"), BAD_SUBMISSIONS)
def test_a_bad_submission_is_refused_and_nothing_is_stored(queue: Queue, options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        queue.submit("simulate", **options)

    assert_nothing_stored(queue)


def test_an_unknown_task_is_refused_naming_the_registered_ones(queue: Queue) -> None:
    with pytest.raises(UnknownTask, match=r"^unknown task 'nope'; registered tasks: simulate$"):
        queue.submit("nope")

    assert_nothing_stored(queue)


def test_a_payload_over_the_limit_is_refused(make_queue: Callable[..., Queue], clock: FakeClock) -> None:
    q = make_queue(max_payload_bytes=1024, clock=clock)

    with pytest.raises(PayloadTooLarge, match=r"^payload is 2\d\d\d bytes; the limit is 1024 bytes$"):
        q.submit("simulate", {"blob": "x" * 2000})

    assert_nothing_stored(q)


def test_a_payload_at_the_limit_is_accepted(make_queue: Callable[..., Queue], clock: FakeClock) -> None:
    q = make_queue(max_payload_bytes=1024, clock=clock)
    blob = "x" * (1024 - len('{"blob":""}'))

    job = q.submit("simulate", {"blob": blob})

    assert q.get(job.id).payload == {"blob": blob}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, r"^payload does not fit task 'resize': missing a required argument: 'path'$"),
        (
            {"path": "x", "extra": 1},
            r"^payload does not fit task 'resize': got an unexpected keyword argument 'extra'$",
        ),
    ],
)
def test_a_payload_that_does_not_fit_the_task_signature_is_refused(
    queue: Queue, payload: dict[str, Any], message: str
) -> None:
    @queue.task
    def resize(path: str) -> None:
        pass

    with pytest.raises(InvalidArgument, match=message):
        queue.submit("resize", payload)

    assert_nothing_stored(queue)


# -- good submissions ---------------------------------------------------------------------


def test_a_plain_submit_stores_a_pending_job_with_the_defaults(queue: Queue, clock: FakeClock) -> None:
    job = queue.submit("simulate")
    stored = queue.get(job.id)

    assert stored == job
    assert stored.status == JobStatus.PENDING
    assert stored.attempts == 0
    assert stored.max_retries == 3
    assert stored.queue == "default"
    assert stored.priority == 0
    assert stored.payload == {}
    assert stored.user_id == "default"
    assert stored.lease_seconds == 30.0
    assert stored.timeout_seconds is None
    assert stored.idempotency_key is None
    assert stored.run_at.timestamp() == clock.now()
    assert stored.created_at.timestamp() == clock.now()
    assert stored.history == ()
    assert [j.id for j in queue.jobs(limit=100)] == [job.id]


def test_per_job_options_are_stored(queue: Queue, clock: FakeClock) -> None:
    job = queue.submit(
        "simulate",
        {"duration": 0.25},
        user_id="alice",
        queue="emails",
        priority=9,
        max_retries=0,
        lease_seconds=12.5,
        delay=30,
    )
    stored = queue.get(job.id)

    assert stored.payload == {"duration": 0.25}
    assert stored.user_id == "alice"
    assert stored.queue == "emails"
    assert stored.priority == 9
    assert stored.max_retries == 0
    assert stored.lease_seconds == 12.5
    assert stored.run_at.timestamp() == clock.now() + 30
    assert stored.status == JobStatus.PENDING


def test_a_delay_may_be_a_timedelta(queue: Queue, clock: FakeClock) -> None:
    job = queue.submit("simulate", delay=timedelta(minutes=2))

    assert queue.get(job.id).run_at.timestamp() == clock.now() + 120


def test_run_at_is_stored_as_given(queue: Queue) -> None:
    job = queue.submit("simulate", run_at=AWARE)

    assert queue.get(job.id).run_at == AWARE


def test_task_defaults_apply_when_the_submit_gives_none(queue: Queue) -> None:
    @queue.task(queue="emails", max_retries=5, lease_seconds=7)
    def send(to: str) -> None:
        pass

    stored = queue.get(queue.submit("send", {"to": "a@example.com"}).id)

    assert (stored.queue, stored.max_retries, stored.lease_seconds) == ("emails", 5, 7.0)


def test_submit_options_win_over_task_defaults(queue: Queue) -> None:
    @queue.task(queue="emails", max_retries=5, lease_seconds=7)
    def send(to: str) -> None:
        pass

    job = queue.submit(send, {"to": "a@example.com"}, queue="urgent", max_retries=1, lease_seconds=60)
    stored = queue.get(job.id)

    assert (stored.task, stored.queue, stored.max_retries, stored.lease_seconds) == ("send", "urgent", 1, 60.0)


def test_the_same_idempotency_key_returns_the_first_job_and_stores_one(queue: Queue, clock: FakeClock) -> None:
    first = queue.submit("simulate", idempotency_key="order-42")
    clock.advance(5)
    second = queue.submit("simulate", idempotency_key="order-42")

    assert second.id == first.id
    assert [j.id for j in queue.jobs(limit=100)] == [first.id]
    assert queue.get(first.id).idempotency_key == "order-42"


def test_submit_many_stores_all_in_order(queue: Queue) -> None:
    jobs = queue.submit_many([Submission(task="simulate", priority=p) for p in range(3)])

    assert [j.priority for j in jobs] == [0, 1, 2]
    assert {j.id for j in queue.jobs(limit=100)} == {j.id for j in jobs}


@pytest.mark.parametrize("keyed", [False, True], ids=["plain", "with-idempotency-keys"])
def test_submit_many_with_one_bad_submission_stores_nothing(queue: Queue, keyed: bool) -> None:
    def key(n: int) -> str | None:
        return f"key-{n}" if keyed else None

    batch = [
        Submission(task="simulate", idempotency_key=key(1)),
        Submission(task="simulate", idempotency_key=key(2)),
        Submission(task="simulate", priority=10, idempotency_key=key(3)),
    ]

    with pytest.raises(InvalidArgument, match=PRIORITY + got(10)):
        queue.submit_many(batch)

    assert_nothing_stored(queue)


def test_submit_many_with_idempotency_keys_is_all_or_nothing_in_the_database(queue: Queue) -> None:
    # The second row passes the Python checks today but cannot be stored on PostgreSQL;
    # whichever layer refuses it, the first row must not be left behind.
    batch = [
        Submission(task="simulate", idempotency_key="key-1"),
        Submission(task="simulate", user_id="a\x00b", idempotency_key="key-2"),
    ]

    with pytest.raises(QueuelabError):
        queue.submit_many(batch)

    assert_nothing_stored(queue)


# -- lookups and admin transitions -------------------------------------------------------


@pytest.mark.parametrize("job_id", ["not-a-uuid", "", str(uuid.uuid4())])
def test_get_an_unknown_id_raises_job_not_found(queue: Queue, job_id: str) -> None:
    with pytest.raises(JobNotFound, match=rf"^no job with id '{re.escape(job_id)}'"):
        queue.get(job_id)


@pytest.mark.parametrize("action", ["requeue", "force_success", "cancel"])
@pytest.mark.parametrize("job_id", ["not-a-uuid", str(uuid.uuid4())])
def test_admin_actions_on_an_unknown_id_raise_job_not_found(queue: Queue, action: str, job_id: str) -> None:
    with pytest.raises(JobNotFound, match=rf"^no job with id '{re.escape(job_id)}'"):
        getattr(queue, action)(job_id)

    assert_nothing_stored(queue)


def test_cancel_a_pending_job(queue: Queue, clock: FakeClock) -> None:
    job = queue.submit("simulate")
    clock.advance(3)

    cancelled = queue.cancel(job.id)

    assert cancelled.status == JobStatus.CANCELLED
    assert cancelled.finished_at is not None
    assert cancelled.finished_at.timestamp() == clock.now()
    assert queue.get(job.id).status == JobStatus.CANCELLED


def test_cancel_a_cancelled_job_names_its_status(queue: Queue) -> None:
    job = queue.submit("simulate")
    queue.cancel(job.id)

    with pytest.raises(
        InvalidTransition, match=rf"^job {job.id} is CANCELLED; only PENDING or RUNNING jobs can be cancelled$"
    ):
        queue.cancel(job.id)

    assert queue.get(job.id).status == JobStatus.CANCELLED


@pytest.mark.parametrize("name", ["9lives", "has space", "send\n"])
def test_a_task_with_a_bad_name_is_refused_at_registration(queue: Queue, name: str) -> None:
    def send() -> None:
        pass

    with pytest.raises(
        InvalidArgument, match=r"^task name must start with a letter or _ .*; got " + re.escape(repr(name))
    ):
        queue.task(name=name)(send)

    assert name not in {t.name for t in queue.tasks}


def test_a_single_postgres_submit_is_one_statement_in_its_own_transaction(postgres_url: str) -> None:
    """Without limits that count rows, rank, insert and NOTIFY are one statement run in
    autocommit (one round trip); an active cap needs the transaction and its user lock."""
    q = Queue(postgres_url)
    q.submit("simulate")  # the schema and the limits cache are ready
    inserts: list[bool] = []  # was the connection in autocommit when the insert ran?

    @sa.event.listens_for(internals(q).db.engine, "before_cursor_execute")
    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "INSERT INTO queuelab_jobs" in statement:
            inserts.append(conn.connection.driver_connection.autocommit)

    alone = q.submit("simulate", user_id="ann")
    q.set_limits("bob", max_active=5)
    capped = q.submit("simulate", user_id="bob")
    assert inserts == [True, False]
    assert {q.get(alone.id).status, q.get(capped.id).status} == {JobStatus.PENDING}
    q.close()


def test_a_postgres_bulk_insert_that_breaks_a_unique_key_raises_integrity_error(postgres_url: str) -> None:
    """Bulk inserts COPY on the driver's cursor; a key stored by a racing submitter must
    surface as SQLAlchemy's IntegrityError, which the store retries (finding the winner),
    not as a raw driver error."""
    from queuelab.store.jobs import _copy_rows
    from queuelab.submission import build_row

    q = Queue(postgres_url)
    q.submit("simulate", idempotency_key="raced")
    task, now = internals(q).tasks.get("simulate"), q.clock.now()
    rows = [
        build_row(Submission(task="simulate", idempotency_key=key), task, q.settings, now) for key in ("a", "raced")
    ]
    for row in rows:
        row["fair_rank"] = 0.0
    with pytest.raises(sa.exc.IntegrityError), internals(q).db.engine.begin() as conn:
        _copy_rows(conn, rows)
    assert [job.idempotency_key for job in q.jobs(limit=10)] == ["raced"]  # nothing else stored
    q.close()
