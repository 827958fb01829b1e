"""Job ids: version 7 UUIDs, increasing within a process, unique across processes."""

from __future__ import annotations

import multiprocessing
import time
import uuid

import pytest

from queuelab import ids
from queuelab.ids import new_id, new_ids


def test_ids_are_version_7_uuids_in_canonical_form_carrying_the_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    made = new_ids(2000)
    after = time.time_ns() // 1_000_000

    for text in made:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
    stamps = [uuid.UUID(text).int >> 80 for text in made]
    # 2,000 ids overflow a millisecond's counter at most once: one millisecond borrowed
    assert before <= stamps[0]
    assert stamps[-1] <= after + 1


def test_ids_of_one_process_increase_as_text_across_calls() -> None:
    made = new_ids(3) + [new_id() for _ in range(500)] + new_ids(5000) + new_ids(0) + new_ids(1)

    assert made == sorted(made)
    assert len(set(made)) == len(made)


def test_a_full_millisecond_borrows_the_next_and_a_clock_stepping_back_is_not_followed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [2_000_000_000_000]
    monkeypatch.setattr(ids, "_milliseconds", lambda: clock[0])
    monkeypatch.setattr(ids, "_last_ms", 0)  # restored after the test, with the counter:
    monkeypatch.setattr(ids, "_counter", 0)  # later ids follow the real clock again
    first = new_ids(5000)  # more than the 4,096 one millisecond's counter holds
    clock[0] -= 60_000  # NTP steps the clock back a minute
    later = new_ids(10)
    clock[0] += 120_000
    fresh = new_id()

    stamps = [uuid.UUID(text).int >> 80 for text in first]
    assert stamps[0] == 2_000_000_000_000
    assert set(stamps) == {2_000_000_000_000, 2_000_000_000_001}
    assert first + later + [fresh] == sorted(first + later + [fresh])
    assert uuid.UUID(later[0]).int >> 80 == stamps[-1]  # held at the last millisecond used
    assert uuid.UUID(fresh).int >> 80 == 2_000_000_060_000
    counter = (uuid.UUID(fresh).int >> 64) & 0xFFF
    assert counter <= 0x3FF  # a fresh millisecond's counter starts low, leaving room to count


def _made_in_a_child(count: int) -> list[str]:
    return new_ids(count)


def test_ids_made_by_several_processes_at_once_are_unique() -> None:
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        batches = pool.map(_made_in_a_child, [20_000] * 4)
    made = [text for batch in batches for text in batch]

    assert len(set(made)) == len(made) == 80_000
    for batch in batches:
        assert batch == sorted(batch)
