"""Pure decisions: backoff and what to do after an attempt. Plain asserts, no I/O."""

from __future__ import annotations

import re

import pytest

from queuelab.errors import InvalidArgument
from queuelab.models import AttemptOutcome, RetryPolicy
from queuelab.policy import (
    Cancel,
    Cancelled,
    Complete,
    DeadLetter,
    Errored,
    Retry,
    Succeeded,
    backoff_seconds,
    decide,
)

NOW = 1_800_000_000.0
NO_JITTER = RetryPolicy(base_seconds=0.5, factor=2.0, max_seconds=300.0, jitter=0.0)
JITTER = RetryPolicy(base_seconds=0.5, factor=2.0, max_seconds=300.0, jitter=0.2)
ERROR = Errored(AttemptOutcome.FAILED, "RuntimeError", "boom")
JUST_BELOW_ONE = 1.0 - 1e-12


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (10, 256.0)],
)
def test_backoff_doubles_with_each_retry(attempt: int, expected: float) -> None:
    assert backoff_seconds(attempt, NO_JITTER, 0.5) == expected


def test_backoff_follows_the_policy_base_and_factor() -> None:
    policy = RetryPolicy(base_seconds=3.0, factor=10.0, max_seconds=1e6, jitter=0.0)

    assert [backoff_seconds(n, policy, 0.0) for n in (1, 2, 3)] == [3.0, 30.0, 300.0]


@pytest.mark.parametrize("attempt", [10, 11, 12, 50, 101])
def test_backoff_is_capped_at_max_seconds(attempt: int) -> None:
    # 0.5 * 2**9 = 256 is still under the cap; 0.5 * 2**10 = 512 is over it.
    expected = 256.0 if attempt == 10 else 300.0

    assert backoff_seconds(attempt, NO_JITTER, 0.5) == expected


def test_backoff_cap_holds_however_many_attempts() -> None:
    # 2.0 ** 9999 does not fit in a float; a capped delay must still be the cap.
    assert backoff_seconds(10_000, NO_JITTER, 0.5) == 300.0


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("base_seconds", -1.0, ">= 0"),
        ("factor", 0.5, ">= 1"),
        ("max_seconds", -1.0, ">= 0"),
        ("jitter", 1.5, "0 and 1"),
    ],
)
def test_a_policy_with_a_bad_field_is_refused(field: str, value: float, allowed: str) -> None:
    with pytest.raises(InvalidArgument, match=rf"{field} must be .*{allowed}.*got {value}"):
        RetryPolicy(**{field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [("base_seconds", True), ("factor", "2"), ("max_seconds", float("nan")), ("jitter", None)],
)
def test_a_policy_field_that_is_not_a_finite_number_is_refused_by_name(field: str, value: object) -> None:
    with pytest.raises(InvalidArgument, match=rf"{field} must be a finite number \(not a bool\), got {value!r}"):
        RetryPolicy(**{field: value})  # type: ignore[arg-type]


def test_full_jitter_can_shorten_the_delay_to_zero_but_not_below() -> None:
    full = RetryPolicy(base_seconds=1.0, factor=2.0, max_seconds=300.0, jitter=1.0)

    assert backoff_seconds(1, full, 1.0) == 0.0


def test_jitter_at_unit_random_zero_is_the_plain_delay() -> None:
    assert backoff_seconds(3, JITTER, 0.0) == pytest.approx(2.0)


def test_jitter_near_unit_random_one_approaches_the_lower_bound() -> None:
    delay = backoff_seconds(3, JITTER, JUST_BELOW_ONE)

    assert delay == pytest.approx(2.0 * 0.8)
    assert delay > 2.0 * 0.8


def test_jitter_never_passes_the_cap() -> None:
    delays = [backoff_seconds(50, JITTER, i / 100) for i in range(100)]

    assert all(300.0 * 0.8 < d <= 300.0 for d in delays)
    assert delays == sorted(delays, reverse=True)  # more randomness, shorter delay


def test_a_success_completes_with_its_result() -> None:
    decision = decide(Succeeded({"ok": 1}), attempt=1, max_retries=3, policy=NO_JITTER, now=NOW, unit_random=0.5)

    assert decision == Complete({"ok": 1})


def test_a_success_on_the_last_allowed_run_still_completes() -> None:
    decision = decide(Succeeded(None), attempt=4, max_retries=3, policy=NO_JITTER, now=NOW, unit_random=0.5)

    assert decision == Complete(None)


@pytest.mark.parametrize(
    ("attempt", "max_retries", "delay"),
    [(1, 3, 0.5), (2, 3, 1.0), (3, 3, 2.0), (1, 1, 0.5), (99, 100, 300.0)],
)
def test_a_failure_with_retries_left_is_retried_after_the_backoff(attempt: int, max_retries: int, delay: float) -> None:
    decision = decide(ERROR, attempt=attempt, max_retries=max_retries, policy=NO_JITTER, now=NOW, unit_random=0.5)

    assert decision == Retry(run_at=NOW + delay, error=ERROR)


def test_a_retry_uses_the_jittered_backoff() -> None:
    decision = decide(ERROR, attempt=2, max_retries=3, policy=JITTER, now=NOW, unit_random=0.0)

    assert isinstance(decision, Retry)
    assert decision.run_at == NOW + backoff_seconds(2, JITTER, 0.0)
    assert decision.run_at == pytest.approx(NOW + 1.0)


@pytest.mark.parametrize(
    ("attempt", "max_retries", "runs"),
    [(4, 3, "4 runs"), (1, 0, "1 run"), (101, 100, "101 runs")],
)
def test_a_failure_with_no_retries_left_is_dead_lettered_with_the_count(
    attempt: int, max_retries: int, runs: str
) -> None:
    decision = decide(ERROR, attempt=attempt, max_retries=max_retries, policy=NO_JITTER, now=NOW, unit_random=0.5)

    assert isinstance(decision, DeadLetter)
    assert decision.error == ERROR
    assert re.search(rf"\b{runs}\b", decision.reason), decision.reason
    assert f"max_retries={max_retries}" in decision.reason
    assert "RuntimeError" in decision.reason


@pytest.mark.parametrize("kind", [AttemptOutcome.FAILED, AttemptOutcome.TIMEOUT, AttemptOutcome.LOST])
def test_every_kind_of_error_spends_the_same_retry_budget(kind: AttemptOutcome) -> None:
    error = Errored(kind, "JobTimeout", "too slow")

    retried = decide(error, attempt=3, max_retries=3, policy=NO_JITTER, now=NOW, unit_random=0.5)
    dead = decide(error, attempt=4, max_retries=3, policy=NO_JITTER, now=NOW, unit_random=0.5)

    assert isinstance(retried, Retry)
    assert isinstance(dead, DeadLetter)


def test_errored_from_exception_keeps_type_message_and_traceback() -> None:
    try:
        raise KeyError("missing")
    except KeyError as exc:
        error = Errored.from_exception(exc, AttemptOutcome.TIMEOUT)

    assert error.kind == AttemptOutcome.TIMEOUT
    assert error.error_type == "KeyError"
    assert error.message == "'missing'"
    assert error.traceback is not None
    assert "KeyError: 'missing'" in error.traceback


@pytest.mark.parametrize("attempt", [1, 4, 9])
def test_a_cancelled_attempt_is_cancelled_whatever_its_budget(attempt: int) -> None:
    decision = decide(
        Cancelled("stopped"), attempt=attempt, max_retries=3, policy=RetryPolicy(), now=0.0, unit_random=0.0
    )
    assert decision == Cancel("stopped")
