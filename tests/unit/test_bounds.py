"""queuelab.bounds: every limit written once, and the checks that enforce them, with messages
that name the argument, the value and what is allowed."""

from __future__ import annotations

import ast
import math
import re
from datetime import timedelta
from pathlib import Path

import pytest

from queuelab import InvalidArgument, bounds


@pytest.mark.parametrize("value", [0, 5, 9])
def test_whole_passes_a_whole_number_in_range(value: int) -> None:
    assert bounds.whole("priority", value, 0, 9) == value


@pytest.mark.parametrize("value", [-1, 10, 12, 1.0, 2.5, "3", None, True, False, math.nan])
def test_whole_refuses_anything_else_naming_the_argument_the_value_and_the_range(value: object) -> None:
    message = rf"^priority must be a whole number between 0 and 9, got {re.escape(repr(value))}$"
    with pytest.raises(InvalidArgument, match=message):
        bounds.whole("priority", value, 0, 9)


def test_whole_without_an_upper_bound() -> None:
    assert bounds.whole("jobs", 10**12, 1) == 10**12
    with pytest.raises(InvalidArgument, match=r"^jobs must be a whole number >= 1, got 0$"):
        bounds.whole("jobs", 0, 1)


def test_whole_or_none_lets_none_through_and_says_so() -> None:
    assert bounds.whole_or_none("prefetch", None, 0, 10) is None
    assert bounds.whole_or_none("prefetch", 3, 0, 10) == 3
    with pytest.raises(InvalidArgument, match=r"^prefetch must be a whole number between 0 and 10 or None, got -5$"):
        bounds.whole_or_none("prefetch", -5, 0, 10)


@pytest.mark.parametrize(("value", "expected"), [(1, 1.0), (0.5, 0.5), (86400, 86400.0), (timedelta(minutes=2), 120.0)])
def test_seconds_takes_numbers_and_timedeltas(value: object, expected: float) -> None:
    assert bounds.seconds("lease_seconds", value, 86400) == expected


@pytest.mark.parametrize("value", [0, -1, 86401, math.nan, math.inf, True, "5", None, timedelta(0)])
def test_seconds_refuses_zero_negatives_too_long_nan_and_non_numbers(value: object) -> None:
    message = rf"^lease_seconds must be a number of seconds > 0 and <= 86400, got {re.escape(repr(value))}$"
    with pytest.raises(InvalidArgument, match=message):
        bounds.seconds("lease_seconds", value, 86400)


def test_seconds_with_zero_allowed_and_without_an_upper_bound() -> None:
    assert bounds.seconds("delay", 0, 60, zero_ok=True) == 0.0
    with pytest.raises(InvalidArgument, match=r"^delay must be a number of seconds between 0 and 60, got -1$"):
        bounds.seconds("delay", -1, 60, zero_ok=True)
    assert bounds.seconds("older_than", 10**9, zero_ok=True) == 1e9
    with pytest.raises(InvalidArgument, match=r"^older_than must be a number of seconds >= 0, got inf$"):
        bounds.seconds("older_than", math.inf, zero_ok=True)


def test_number_is_finite_and_positive_or_with_zero_ok_not_negative() -> None:
    assert bounds.number("rate", 2) == 2.0
    assert bounds.number("at", 0, zero_ok=True) == 0.0
    with pytest.raises(InvalidArgument, match=r"^rate must be a finite number > 0, got 0$"):
        bounds.number("rate", 0)
    with pytest.raises(InvalidArgument, match=r"^at must be a finite number >= 0, got nan$"):
        bounds.number("at", math.nan, zero_ok=True)


def test_one_of_returns_the_choice_and_refuses_the_rest() -> None:
    assert bounds.one_of("mode", "process", ("thread", "process")) == "process"
    with pytest.raises(InvalidArgument, match=r"^mode must be one of thread, process, got 'fiber'$"):
        bounds.one_of("mode", "fiber", ("thread", "process"))
    with pytest.raises(InvalidArgument, match=r"^level must be one of 0, 1, got True$"):
        bounds.one_of("level", True, (0, 1))  # True == 1 in Python, but is not the choice 1


def test_the_predicates_treat_a_bool_as_no_number() -> None:
    assert [bounds.is_whole(v, 0) for v in (3, True, 3.0)] == [True, False, False]
    assert [bounds.is_number(v) for v in (0.5, 2, False, math.nan, -math.inf)] == [True, True, False, False, False]


def test_the_ranges_hold_together() -> None:
    assert bounds.PRIORITY_MIN < bounds.PRIORITY_MAX
    assert bounds.QUEUE_NAME.fullmatch("q" * bounds.MAX_QUEUE_NAME_LENGTH)
    assert not bounds.QUEUE_NAME.fullmatch("q" * (bounds.MAX_QUEUE_NAME_LENGTH + 1))
    assert bounds.TASK_NAME.fullmatch("t" * bounds.MAX_TASK_NAME_LENGTH)
    assert not bounds.TASK_NAME.fullmatch("t" * (bounds.MAX_TASK_NAME_LENGTH + 1))
    assert bounds.MAX_COUNT < 2**31  # every database's INTEGER holds it
    assert bounds.MIN_PAYLOAD_BYTES < bounds.MAX_PAYLOAD_BYTES


def test_bounds_sits_at_the_bottom_it_imports_only_the_errors() -> None:
    source = Path(bounds.__file__).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    assert {name for name in imported if name.split(".")[0] == "queuelab"} == {"queuelab.errors"}


def test_a_pools_prefetch_is_auto_a_number_or_none_and_resolves_against_the_setting() -> None:
    assert bounds.prefetch_or_none(None) is None
    assert bounds.prefetch_or_none("auto") == "auto"
    assert bounds.prefetch_or_none(7) == 7
    for bad in (-1, "lots", 1.5, True):
        with pytest.raises(InvalidArgument, match=r'^prefetch must be "auto", a whole number between 0 and 10000'):
            bounds.prefetch_or_none(bad)
    assert bounds.resolve_prefetch(None, 5) == 5  # the setting
    assert bounds.resolve_prefetch("auto", 5) is None  # auto, whatever the setting
    assert bounds.resolve_prefetch(0, None) == 0
