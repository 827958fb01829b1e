"""Submitting in the application's own transaction (``submit(..., connection=conn)``): the
job is rolled back with the application's rows, appears when they commit and is woken then,
and the limits and checks of any submit apply. Both databases, with the application's own
engine (not the queue's)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from queuelab import InvalidArgument, JobNotFound, JobStatus, Queue, QuotaExceeded, Submission

LONG = 120.0  # a wait that ends this way failed: the commit woke nobody

app_metadata = sa.MetaData()
orders = sa.Table("orders", app_metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("item", sa.Text))


@pytest.fixture
def app_engine(db_url: str) -> Iterator[sa.Engine]:
    """The application's engine on the queue's database, with a table of its own."""
    engine = sa.create_engine(db_url)
    app_metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def q(make_queue: Callable[..., Queue]) -> Queue:
    # A worker polls the database an hour apart here: only the commit's wake-up can start a job soon.
    queue = make_queue(poll_interval_seconds=3600)
    queue.task(name="ship")(lambda order: order)
    queue.open()
    return queue


def _orders(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(orders.c.item)).scalars())


def test_a_rolled_back_transaction_leaves_no_job(q: Queue, app_engine: sa.Engine) -> None:
    with app_engine.connect() as conn, conn.begin() as tx:
        conn.execute(orders.insert().values(id=1, item="book"))
        job = q.submit("ship", {"order": 1}, connection=conn)
        tx.rollback()
    with pytest.raises(JobNotFound):
        q.get(job.id)
    assert q.jobs() == []
    assert _orders(app_engine) == []


def test_a_committed_job_is_invisible_until_the_commit_then_run_at_once(q: Queue, app_engine: sa.Engine) -> None:
    with q.worker(1):
        with app_engine.connect() as conn, conn.begin():
            conn.execute(orders.insert().values(id=1, item="book"))
            job = q.submit("ship", {"order": 1}, connection=conn)
            with pytest.raises(JobNotFound):  # not committed: no worker can see it
                q.get(job.id)
        done = q.wait(job, timeout=LONG)
    assert (done.status, done.result) == (JobStatus.COMPLETED, 1)
    assert _orders(app_engine) == ["book"]


def test_a_session_works_as_the_connection(q: Queue, app_engine: sa.Engine) -> None:
    with Session(app_engine) as session, session.begin():
        session.execute(orders.insert().values(id=7, item="pen"))
        jobs = q.submit_many([Submission(task="ship", payload={"order": n}) for n in (7, 8)], connection=session)
    assert [q.get(job.id).payload for job in jobs] == [{"order": 7}, {"order": 8}]
    assert _orders(app_engine) == ["pen"]


def test_a_refused_submit_leaves_the_callers_transaction_usable(q: Queue, app_engine: sa.Engine) -> None:
    q.set_limits("alice", max_active=1)
    with app_engine.connect() as conn, conn.begin():
        first = q.submit("ship", {"order": 1}, user_id="alice", connection=conn)
        with pytest.raises(QuotaExceeded):  # counts the first, uncommitted, job: it is in this transaction
            q.submit("ship", {"order": 2}, user_id="alice", connection=conn)
        conn.execute(orders.insert().values(id=1, item="book"))
    assert [job.id for job in q.jobs()] == [first.id]
    assert _orders(app_engine) == ["book"]


def test_an_idempotency_key_returns_the_job_of_the_same_transaction(q: Queue, app_engine: sa.Engine) -> None:
    with app_engine.connect() as conn, conn.begin():
        first = q.submit("ship", {"order": 1}, idempotency_key="order-1", connection=conn)
        again = q.submit("ship", {"order": 1}, idempotency_key="order-1", connection=conn)
    assert again.id == first.id
    assert len(q.jobs()) == 1


def test_bad_input_raises_before_anything_is_written(q: Queue, app_engine: sa.Engine) -> None:
    with app_engine.connect() as conn, conn.begin():
        with pytest.raises(InvalidArgument, match="payload"):
            q.submit("ship", {"nope": 1}, connection=conn)
        conn.execute(orders.insert().values(id=1, item="book"))
    assert q.jobs() == []
    assert _orders(app_engine) == ["book"]


def test_a_connection_elsewhere_or_of_another_kind_is_refused(q: Queue, tmp_path: object) -> None:
    other = sa.create_engine(f"sqlite:///{tmp_path}/other.db")
    with other.connect() as conn, pytest.raises(InvalidArgument, match="connection must"):
        q.submit("ship", {"order": 1}, connection=conn)
    other.dispose()
    with pytest.raises(InvalidArgument, match="connection must be a SQLAlchemy Connection or Session, got str"):
        q.submit("ship", {"order": 1}, connection="sqlite:///x.db")  # type: ignore[arg-type]
