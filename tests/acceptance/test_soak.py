"""The soak harness, the quick version (the full one: make soak, 30 minutes, not in CI): the
API and a worker process under steady load for half a minute; memory, descriptors and
throughput must not drift, judged by the same verdict the full run uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.soak import soak, verdict

pytestmark = pytest.mark.slow


@pytest.mark.timeout(180)
def test_a_short_soak_stays_flat_and_steady(sqlite_url: str, tmp_path: Path) -> None:
    rows = soak(sqlite_url, minutes=0.6, sample=3, rate=40, workers=1, log=tmp_path / "api.log")
    assert len(rows) >= 10
    assert len({row["processes"] for row in rows}) == 1
    assert "exited with code" not in (tmp_path / "api.log").read_text()  # no worker died on the way
    assert all(row["jobs_per_second"] > 0 for row in rows[1:])
    assert verdict(rows) == []
