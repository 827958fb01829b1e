"""Bulk submits (``submit_many`` of more rows than one statement takes: COPY on PostgreSQL)
keep every rule of a single submit: each row is checked (a value a batch repeats is checked
once, so a bad value after good ones of the same field must still be refused), keys find
their stored jobs, ``after=`` links, limits refuse the whole batch, and the Jobs returned are
the jobs stored."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from queuelab import InvalidArgument, JobStatus, PayloadTooLarge, Queue, QuotaExceeded, Submission
from queuelab.store.jobs import BATCH_ROWS
from queuelab.testing import internals

BULK = BATCH_ROWS + 50  # past the one-statement batch: COPY on PostgreSQL


def plain(n: int, **options: Any) -> list[Submission]:
    return [Submission(task="simulate", **options) for _ in range(n)]


def stored_ids(q: Queue) -> set[str]:
    return {job.id for job in q.jobs(limit=10 * BULK)}


# Strings JSON must escape, in a payload and a user id: INSERT_BATCH carries its rows as one
# JSON document (PostgreSQL), COPY and SQLite as values.
AWKWARD = ['quote " backslash \\ slash /', "tab\t newline\n nul\x00", "é ü 日本 🚀", "\u2028 \\u0041"]


@pytest.mark.parametrize("size", [40, BULK], ids=["one-statement", "copy"])
def test_the_jobs_returned_are_the_jobs_stored(queue: Queue, size: int) -> None:
    batch = [
        Submission(
            task="simulate",
            payload={"duration": i % 3, "text": AWKWARD[i % len(AWKWARD)], "float": i / 7},
            user_id=f"user-{i % 4}-é",
            priority=i % 10,
            delay=None if i % 5 else timedelta(seconds=i / 3),
            max_retries=i % 7,
            lease_seconds=None if i % 3 else 10 / 3,
            timeout_seconds=None if i % 2 else 30.0,
            idempotency_key=None if i % 6 else f"key-{i}-🚀",
        )
        for i in range(size)
    ]
    jobs = queue.submit_many(batch)

    assert len({job.id for job in jobs}) == size
    for job in jobs:
        assert queue.get(job.id) == job


@pytest.mark.parametrize(
    ("good", "bad", "message"),
    [
        ({"priority": 1}, {"priority": True}, r"^priority must be a whole number between 0 and 9, got True$"),
        ({"priority": 1}, {"priority": 1.0}, r"^priority must be a whole number between 0 and 9, got 1\.0$"),
        ({"max_retries": 0}, {"max_retries": False}, r"^max_retries must be .*, got False$"),
        ({"lease_seconds": 1}, {"lease_seconds": True}, r"^lease_seconds must be .*, got True$"),
        ({"timeout_seconds": 5.0}, {"timeout_seconds": float("nan")}, r"^timeout_seconds must be .*, got nan$"),
        ({"user_id": "alice"}, {"user_id": "alice\x00"}, r"^user_id must be .*'alice\\x00'$"),
        ({"queue": "emails"}, {"queue": "emails\n"}, r"^queue must be .*'emails\\n'$"),
    ],
    ids=["bool-after-int", "float-after-int", "false-after-zero", "true-lease", "nan", "nul-user", "newline-queue"],
)
def test_a_bad_value_after_good_ones_of_the_same_field_is_refused(
    queue: Queue, good: dict[str, Any], bad: dict[str, Any], message: str
) -> None:
    batch = plain(BULK - 1, **good) + plain(1, **bad)

    with pytest.raises(InvalidArgument, match=message):
        queue.submit_many(batch)

    assert stored_ids(queue) == set()


def test_a_payload_over_the_limit_late_in_a_bulk_stores_nothing(queue: Queue) -> None:
    limit = queue.settings.max_payload_bytes
    batch = [*plain(BULK - 1), Submission(task="simulate", payload={"note": "é" * limit})]

    with pytest.raises(PayloadTooLarge, match=rf"bytes; the limit is {limit} bytes$"):
        queue.submit_many(batch)

    assert stored_ids(queue) == set()


def test_a_bulk_mixing_keyed_and_unkeyed_rows_stores_each_key_once(queue: Queue) -> None:
    earlier = queue.submit("simulate", idempotency_key="stored")
    batch = [
        *plain(BULK),
        Submission(task="simulate", idempotency_key="stored"),
        Submission(task="simulate", idempotency_key="new"),
        Submission(task="simulate", idempotency_key="new"),
    ]

    jobs = queue.submit_many(batch)

    stored, first_new, second_new = jobs[-3:]
    assert stored == earlier
    assert second_new == first_new
    assert queue.find_by_idempotency_key("new") == first_new
    assert stored_ids(queue) == {earlier.id} | {job.id for job in jobs}
    assert len(stored_ids(queue)) == BULK + 2


def test_a_bulk_with_after_links_its_rows(queue: Queue) -> None:
    parent = queue.submit("simulate")
    head = Submission(task="simulate")
    batch = [head, *plain(BULK), Submission(task="simulate", after=[head, parent])]

    jobs = queue.submit_many(batch)

    child = queue.get(jobs[-1].id)
    assert child.status == JobStatus.PENDING
    assert child.waiting_for == 2
    assert len(stored_ids(queue)) == BULK + 3


def test_a_bulk_over_a_users_cap_is_refused_whole(make_queue: Callable[..., Queue]) -> None:
    q = make_queue(max_active_per_user=BULK)
    q.submit_many(plain(10))

    with pytest.raises(QuotaExceeded, match=r"^user 'default' has 10 active jobs .* the cap is"):
        q.submit_many(plain(BULK))

    assert len(stored_ids(q)) == 10
    assert len(q.submit_many(plain(BULK - 10))) == BULK - 10


def scanned_rows(plan: dict[str, Any]) -> int:
    """Rows every scan node of an EXPLAIN (ANALYZE, FORMAT JSON) plan read, in all."""
    own = plan["Actual Rows"] * plan["Actual Loops"] if "Scan" in plan["Node Type"] else 0
    return int(own) + sum(scanned_rows(child) for child in plan.get("Plans", []))


def test_the_rank_lookup_reads_a_row_or_two_on_a_table_not_yet_analysed(postgres_url: str) -> None:
    """A user's last pending rank is read as the first row in rank order: on a new table
    (no statistics yet) max() was planned as an aggregate over every pending row at that
    priority, a cost per submit that grew with the backlog."""
    from queuelab.store.admission import _RANKS

    q = Queue(postgres_url)
    q.submit_many(plain(2000))
    db = internals(q).db
    compiled = _RANKS.compile(dialect=db.engine.dialect)
    params = {**compiled.params, "p_user": "default", "p_priority": 0}
    with db.read() as conn:
        explained = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {compiled}", params)
        plan = explained.scalar_one()[0]["Plan"]
    q.close()

    assert scanned_rows(plan) <= 2
