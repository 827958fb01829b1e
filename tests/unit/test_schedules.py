"""The pure side of periodic jobs: definitions checked where they are made, and which
ticks a scheduler enqueues at ``now`` (no database, no thread, no sleep)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from queuelab import InvalidArgument, InvalidSchedule
from queuelab.schedules import GRACE_SECONDS, ScheduleSpec, check_spec, next_tick, plan_ticks, tick_key, tick_of

T0 = datetime(2027, 1, 15, 8, 0, tzinfo=UTC).timestamp()  # a whole minute


def spec(cron: str = "* * * * *", **changes: Any) -> ScheduleSpec:
    return ScheduleSpec(**{"name": "beat", "task": "beat", "cron": cron, **changes})


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("cron", "61 * * * *", r"cron must be a cron expression .* got '61 \* \* \* \*': .*out of range"),
        ("cron", "* * *", r"cron must be a cron expression .* got '\* \* \*'"),
        ("cron", "", r"cron must be a cron expression"),
        ("cron", 5, r"cron must be a cron expression .* got 5"),
        ("timezone", "Mars/Olympus", r"timezone must be an IANA time zone name .* got 'Mars/Olympus'"),
        ("timezone", "../etc", r"timezone must be an IANA time zone name .* got '../etc'"),
        ("name", "a:b", r"schedule name must be 1 to 100 letters, digits, _ . or -, got 'a:b'"),
        ("payload", [1], r"payload must be a JSON object \(a dict\), got list"),
    ],
)
def test_a_bad_definition_is_refused_with_what_was_wrong(field: str, value: object, match: str) -> None:
    with pytest.raises(InvalidSchedule, match=match):
        check_spec(spec(**{field: value}))  # type: ignore[arg-type]


def test_a_bad_catch_up_is_an_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match=r"catch_up must be .*got -1"):
        check_spec(spec(catch_up=-1))


def test_the_next_tick_follows_the_time_zone_across_daylight_saving() -> None:
    # 09:00 in Paris is 08:00 UTC in winter and 07:00 UTC in summer (DST began 28 March 2027).
    before = datetime(2027, 3, 26, 12, tzinfo=UTC).timestamp()
    first = next_tick("0 9 * * *", "Europe/Paris", before)
    second = next_tick("0 9 * * *", "Europe/Paris", first)
    assert datetime.fromtimestamp(first, UTC).hour == 8
    assert datetime.fromtimestamp(second, UTC).hour == 7


def test_a_tick_still_to_come_plans_nothing() -> None:
    assert plan_ticks(spec(), T0 + 60, T0 + 59) is None


def test_a_tick_on_time_is_enqueued_and_the_schedule_moves_to_the_next() -> None:
    plan = plan_ticks(spec(), T0, T0 + 0.3)
    assert plan is not None
    assert plan.ticks == (T0,)
    assert plan.next_run_at == T0 + 60
    assert plan.skipped_from is None


def test_ticks_within_the_grace_are_on_time_even_several() -> None:
    plan = plan_ticks(spec("* * * * * *"), T0, T0 + GRACE_SECONDS)  # every second, 5 s late
    assert plan is not None
    assert plan.ticks == tuple(T0 + s for s in range(int(GRACE_SECONDS) + 1))
    assert plan.skipped_from is None


def test_after_downtime_missed_ticks_are_skipped_by_default() -> None:
    plan = plan_ticks(spec(), T0, T0 + 3600 + 30)  # an hour down; the latest tick 30 s ago
    assert plan is not None
    assert plan.ticks == ()
    assert plan.skipped_from == T0
    assert plan.next_run_at == T0 + 3660


def test_catch_up_enqueues_at_most_that_many_missed_ticks_the_latest() -> None:
    plan = plan_ticks(spec(catch_up=3), T0, T0 + 3600 + 30)
    assert plan is not None
    assert plan.ticks == (T0 + 3480, T0 + 3540, T0 + 3600)
    assert plan.skipped_from == T0


def test_catch_up_larger_than_the_downtime_enqueues_every_missed_tick() -> None:
    plan = plan_ticks(spec(catch_up=100), T0, T0 + 185)
    assert plan is not None
    assert plan.ticks == (T0, T0 + 60, T0 + 120, T0 + 180)
    assert plan.skipped_from is None


def test_a_tick_key_names_the_schedule_and_the_tick_in_utc() -> None:
    assert tick_key("beat", T0) == "schedule:beat:2027-01-15T08:00:00+00:00"


def test_a_tick_key_reads_back_as_its_tick_for_its_schedule_only() -> None:
    assert tick_of("beat", tick_key("beat", T0 + 1.5)) == T0 + 1.5
    assert tick_of("beat", tick_key("beats", T0)) is None
    assert tick_of("be", tick_key("beat", T0)) is None
    assert tick_of("beat", "schedule:beat:2027-01-15T08:00:00") is None  # no offset: not a tick key
    assert tick_of("beat", "schedule:beat:tomorrow") is None
    assert tick_of("beat", None) is None
