"""The committed SQL (queuelab/store/sql/) is what the job path's statements compile to.

Every statement is recompiled and compared with its file; a change to a statement must come
with its regenerated file (`python -m queuelab.store.sql`), so the review shows the SQL.
"""

from __future__ import annotations

import difflib
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from queuelab import FakeClock, Queue
from queuelab.models import Lease
from queuelab.policy import Decision, Errored, Retry
from queuelab.store.sql import catalogue, generate
from queuelab.store.sql.layout import format_sql
from queuelab.testing import internals

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = catalogue.expected()
ENTRIES = [(entry, name) for entry in catalogue.ENTRIES for name in entry.dialects]


def entry_id(pair: tuple[catalogue.Entry, str]) -> str:
    return f"{pair[1]}/{pair[0].name}"


@pytest.mark.parametrize("path", sorted(EXPECTED))
def test_each_committed_file_is_what_its_statement_compiles_to(path: str) -> None:
    on_disk = generate.HERE / path
    assert on_disk.exists(), f"{on_disk} is missing: generate it with `{catalogue.REGENERATE}` and commit it"
    committed = on_disk.read_text(encoding="utf-8")
    if committed != EXPECTED[path]:
        diff = difflib.unified_diff(
            committed.splitlines(), EXPECTED[path].splitlines(), "committed", "compiled now", lineterm="", n=1
        )
        shown = "\n".join(list(diff)[:40])
        pytest.fail(
            f"{on_disk} is stale: its statement now compiles to other SQL. Regenerate with "
            f"`{catalogue.REGENERATE}`, read the diff and commit it.\n{shown}",
            pytrace=False,
        )


def test_no_committed_file_is_left_over_from_a_statement_gone() -> None:
    left = {path: why for path, why in generate.stale().items() if why == "not generated any more"}

    assert left == {}, f"not generated any more; `{catalogue.REGENERATE}` removes them: {sorted(left)}"


def test_the_layout_only_changes_whitespace() -> None:
    """Laid out, every statement keeps SQLAlchemy's text, character for character."""
    for entry, name in ENTRIES:
        sql = str(entry.compiled(name))

        assert re.sub(r"\s+", "", format_sql(sql)) == re.sub(r"\s+", "", sql), entry_id((entry, name))


def test_the_layout_breaks_clauses_indents_subqueries_and_keeps_short_ones_inline() -> None:
    sql = (
        "UPDATE t SET a=:a WHERE t.id IN (SELECT t.id \nFROM t \nWHERE t.b = 'x y' AND t.c IN "
        "(SELECT u.c FROM u) ORDER BY t.d\n LIMIT :n FOR UPDATE SKIP LOCKED) RETURNING t.id"
    )

    assert format_sql(sql) == (
        "UPDATE t\n"
        "SET a=:a\n"
        "WHERE t.id IN (\n"
        "    SELECT t.id\n"
        "    FROM t\n"
        "    WHERE t.b = 'x y'\n"
        "        AND t.c IN (SELECT u.c FROM u)\n"
        "    ORDER BY t.d\n"
        "    LIMIT :n\n"
        "    FOR UPDATE SKIP LOCKED\n"
        ")\n"
        "RETURNING t.id"
    )
    with pytest.raises(ValueError, match=r"unbalanced '\('"):
        format_sql("SELECT (a")


def test_the_generator_writes_what_is_stale_and_check_lists_it(tmp_path: Path) -> None:
    assert set(generate.write(tmp_path).values()) == {"missing"}
    assert generate.stale(tmp_path) == {}
    (tmp_path / "sqlite" / "claim_pick.sql").write_text("-- edited by hand\n", encoding="utf-8")
    (tmp_path / "postgresql" / "gone.sql").write_text("SELECT 1\n", encoding="utf-8")

    assert generate.stale(tmp_path) == {
        "postgresql/gone.sql": "not generated any more",
        "sqlite/claim_pick.sql": "differs",
    }
    generate.write(tmp_path)
    assert generate.stale(tmp_path) == {}
    assert not (tmp_path / "postgresql" / "gone.sql").exists()


def test_the_check_command_exits_zero_on_the_committed_files() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "queuelab.store.sql", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_sqlite_files_show_by_name_the_binds_the_driver_gets_by_position() -> None:
    """SQLite's files use named binds to be readable; the store's dialect sends ``?``."""
    for entry, name in ENTRIES:
        if name != catalogue.SQLITE:
            continue
        keys = list(entry.column_keys) if entry.column_keys is not None else None
        positional = str(entry.build().compile(dialect=sqlite.pysqlite.dialect(), column_keys=keys))

        assert re.sub(r":\w+", "?", str(entry.compiled(name))) == positional, entry.name


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_the_files_are_compiled_as_a_connected_store_compiles(kind: str, request: pytest.FixtureRequest) -> None:
    """The files use a dialect that has never connected; the store's has met its server
    (its version, its settings). Both must compile every statement alike."""
    url = str(request.getfixturevalue("sqlite_url" if kind == "sqlite" else "postgres_url"))
    name = catalogue.SQLITE if kind == "sqlite" else catalogue.POSTGRESQL
    with Queue(url) as q:
        engine = internals(q).db.engine
        with engine.connect():
            pass
        for entry in (entry for entry, dialect in ENTRIES if dialect == name):
            keys = list(entry.column_keys) if entry.column_keys is not None else None
            live = str(entry.build().compile(dialect=engine.dialect, column_keys=keys))
            expected = str(entry.compiled(name))
            if name == catalogue.SQLITE:
                expected = re.sub(r":\w+", "?", expected)

            assert live == expected, entry.name


def test_the_rescue_copy_is_what_lease_store_rescue_runs(queue: Queue, clock: FakeClock) -> None:
    """store/leases.py builds the rescue's queries inline; the catalogue holds a copy to
    compile. Run a real rescue and compare the SQL it sent with the copy's."""
    queue.submit("simulate", lease_seconds=1)
    assert len(internals(queue).leases.claim("w", None, 1, clock.now())) == 1
    clock.advance(10)
    now = clock.now()
    sent: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        sent.append(statement)

    def retry(lease: Lease, error: Errored) -> Decision:
        return Retry(now + 60, error)

    engine = internals(queue).db.engine
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        assert internals(queue).leases.rescue(now, retry) == 1
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    for name, copy in {"rescue_probe": catalogue.rescue_probe(now), "rescue": catalogue.rescue_expired(now)}.items():
        compiled = str(copy.compile(dialect=engine.dialect))

        assert compiled in sent, (
            f"LeaseStore.rescue (store/leases.py) no longer runs the query copied in "
            f"queuelab/store/sql/catalogue.py for {name}: make the copy match it, then regenerate "
            f"with `{catalogue.REGENERATE}`.\nthe copy: {compiled}\nsent: {sent}"
        )
