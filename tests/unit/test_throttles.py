"""The throttle's window arithmetic and the claim's plan under throttles, as pure functions."""

from __future__ import annotations

from queuelab.limits import RateLimit
from queuelab.store.throttling import HoldBack, plan
from queuelab.throttles import Scope, Throttle, frees_at, matches, room

API = Throttle(Scope.TASK, "call_api", RateLimit(3, 10.0))
SLOW = Throttle(Scope.QUEUE, "slow", RateLimit(5, 60.0))
ALICE = Throttle(Scope.USER, "alice", RateLimit(2, 1.0))


def test_room_is_what_is_left_of_the_count() -> None:
    assert room(API.rate, 0) == 3
    assert room(API.rate, 2) == 1
    assert room(API.rate, 3) == room(API.rate, 7) == 0


def test_frees_at_is_when_the_oldest_start_that_must_go_has_left_the_window() -> None:
    assert frees_at([], API.rate, 100.0) is None
    assert frees_at([95.0, 99.0], API.rate, 100.0) is None  # a third fits now
    assert frees_at([99.0, 95.0, 97.0], API.rate, 100.0) == 105.0
    assert frees_at([89.0, 95.0, 97.0, 99.0], API.rate, 100.0) == 105.0  # 89 has left already
    assert frees_at([95.0, 96.0, 97.0, 98.0], API.rate, 100.0) == 106.0  # one too many: two must go


def test_a_key_names_scope_and_name_and_matches_its_jobs() -> None:
    assert API.key == "task:call_api"
    assert matches(API, "call_api", "default", "bob")
    assert not matches(API, "other", "call_api", "call_api")
    assert matches(SLOW, "x", "slow", "bob")
    assert matches(ALICE, "x", "q", "alice")


def test_a_full_throttle_is_skipped_and_the_others_cap_the_claim() -> None:
    held = plan([API, SLOW, ALICE], {API.key: 3, SLOW.key: 2, ALICE.key: 1}, None, None, 10)
    assert held == HoldBack(skip_tasks=("call_api",), limit=1, counted=(SLOW, ALICE))


def test_a_throttle_held_by_another_claimer_counts_as_full() -> None:
    held = plan([API, SLOW], {API.key: None, SLOW.key: 0}, None, None, 10)
    assert held == HoldBack(skip_tasks=("call_api",), limit=5, counted=(SLOW,))


def test_throttles_a_worker_cannot_meet_leave_its_claim_alone() -> None:
    held = plan([API, SLOW], {API.key: 3, SLOW.key: 5}, ["fast"], ["other"], 8)
    assert held == HoldBack(limit=8)
