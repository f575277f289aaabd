"""Tests for frontdesk.pbx.guard: blocking after failed authentications, expiry, memory bounds."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from frontdesk.pbx.guard import AuthFailureGuard, SourceBlocked

T0 = 1000.0


def fail(guard: AuthFailureGuard, source: str, times: list[float]) -> list[bool]:
    return [guard.record_failure(source, t) for t in times]


def test_blocks_on_the_tenth_failure_within_the_window() -> None:
    guard = AuthFailureGuard()  # 10 failures in 60 s -> 600 s
    results = fail(guard, "127.0.0.5", [T0 + i for i in range(10)])
    assert results == [False] * 9 + [True]
    assert guard.is_blocked("127.0.0.5", T0 + 10)
    block = guard.block_of("127.0.0.5", T0 + 10)
    assert block is not None
    assert block.describe() == (
        "blocking 127.0.0.5 for 600 s after 10 failed authentications in 60 s"
    )
    assert not guard.is_blocked("127.0.0.6", T0 + 10)


def test_nine_failures_do_not_block() -> None:
    guard = AuthFailureGuard()
    assert not any(fail(guard, "192.0.2.1", [T0 + i for i in range(9)]))
    assert not guard.is_blocked("192.0.2.1", T0 + 9)


def test_block_ends_after_block_for_and_the_source_starts_afresh() -> None:
    guard = AuthFailureGuard(max_failures=3, window=60, block_for=600)
    assert fail(guard, "192.0.2.1", [T0, T0 + 1, T0 + 2]) == [False, False, True]
    assert guard.is_blocked("192.0.2.1", T0 + 601.9)
    assert not guard.is_blocked("192.0.2.1", T0 + 602)
    assert guard.blocked_sources(T0 + 602) == []
    assert fail(guard, "192.0.2.1", [T0 + 603, T0 + 604]) == [False, False]
    assert guard.record_failure("192.0.2.1", T0 + 605)


def test_failures_while_blocked_do_not_extend_the_block() -> None:
    guard = AuthFailureGuard(max_failures=2, window=10, block_for=100)
    assert fail(guard, "192.0.2.9", [T0, T0 + 1]) == [False, True]
    assert fail(guard, "192.0.2.9", [T0 + 50 + i for i in range(20)]) == [False] * 20
    assert not guard.is_blocked("192.0.2.9", T0 + 101)


def test_window_slides() -> None:
    guard = AuthFailureGuard(max_failures=3, window=60, block_for=600)
    # One failure every 31 s: never three inside 60 s.
    assert not any(fail(guard, "192.0.2.2", [T0 + 31 * i for i in range(20)]))
    # The last slow ones were at T0 + 558 and T0 + 589. At T0 + 625 the one at 558 has slid
    # out of the window (two in 60 s); at T0 + 630 there are three (589, 625, 630).
    assert fail(guard, "192.0.2.2", [T0 + 625, T0 + 630]) == [False, True]


def test_window_boundary_is_inclusive() -> None:
    guard = AuthFailureGuard(max_failures=2, window=60, block_for=600)
    assert fail(guard, "192.0.2.3", [T0, T0 + 60]) == [False, True]
    guard2 = AuthFailureGuard(max_failures=2, window=60, block_for=600)
    assert fail(guard2, "192.0.2.3", [T0, T0 + 60.001]) == [False, False]


def test_success_does_not_reset_failures_but_explains_the_block() -> None:
    guard = AuthFailureGuard(max_failures=4, window=60, block_for=600)
    times = [T0, T0 + 1, T0 + 2]
    fail(guard, "198.51.100.7", times)
    guard.record_success("198.51.100.7", T0 + 3)
    assert guard.record_failure("198.51.100.7", T0 + 5)
    block = guard.block_of("198.51.100.7", T0 + 5)
    assert block is not None and block.last_success_at == T0 + 3
    text = block.describe()
    assert text.startswith("blocking 198.51.100.7 for 600 s after 4 failed authentications")
    assert "successfully 2 s before" in text and "exempt" in text


def test_loopback_is_not_exempt_unless_configured() -> None:
    guard = AuthFailureGuard(max_failures=2)
    assert fail(guard, "127.0.0.1", [T0, T0 + 1]) == [False, True]
    exempt = AuthFailureGuard(max_failures=2, exempt=frozenset({"127.0.0.0/8", "::1"}))
    for source in ("127.0.0.1", "127.0.0.5", "::1", "[::1]", "::ffff:127.0.0.1"):
        assert fail(exempt, source, [T0 + i for i in range(10)]) == [False] * 10
        assert not exempt.is_blocked(source, T0 + 10)
    assert fail(exempt, "192.0.2.1", [T0, T0 + 1]) == [False, True]
    assert exempt.tracked_sources == 1  # exempt sources leave no trace


def test_bad_exempt_entry_names_the_entry_and_the_fix() -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0\.300' is not an IP address.*192\.0\.2\.0/24"):
        AuthFailureGuard(exempt=frozenset({"10.0.0.300"}))
    with pytest.raises(ValueError, match="max_failures >= 1"):
        AuthFailureGuard(max_failures=0)


def test_ipv6_sources_are_grouped_per_64_and_mapped_ipv4_is_ipv4() -> None:
    guard = AuthFailureGuard(max_failures=3)
    results = fail(guard, "2001:db8:1:2::1", [T0]) + fail(guard, "2001:db8:1:2::2", [T0 + 1])
    results += fail(guard, "2001:db8:1:2:ffff::3", [T0 + 2])
    assert results == [False, False, True]
    assert guard.is_blocked("2001:db8:1:2::abcd", T0 + 3)
    assert not guard.is_blocked("2001:db8:1:3::1", T0 + 3)
    block = guard.block_of("2001:db8:1:2::1", T0 + 3)
    assert block is not None and block.source == "2001:db8:1:2::/64"

    per_address = AuthFailureGuard(max_failures=2, ipv6_prefix_len=128)
    assert fail(per_address, "2001:db8::1", [T0]) + fail(per_address, "2001:db8::2", [T0]) == [
        False,
        False,
    ]
    assert fail(guard, "::ffff:192.0.2.50", [T0, T0 + 1]) + fail(guard, "192.0.2.50", [T0 + 2]) == [
        False,
        False,
        True,
    ]


def test_blocked_sources_lists_active_blocks_soonest_end_first() -> None:
    guard = AuthFailureGuard(max_failures=1, block_for=100)
    guard.record_failure("192.0.2.1", T0)
    guard.record_failure("192.0.2.2", T0 + 10)
    blocks = guard.blocked_sources(T0 + 20)
    assert [b.source for b in blocks] == ["192.0.2.1", "192.0.2.2"]
    assert blocks[0] == SourceBlocked("192.0.2.1", T0, T0 + 100, 1, 60.0, None)
    assert [b.source for b in guard.blocked_sources(T0 + 105)] == ["192.0.2.2"]


def test_memory_is_capped_and_old_entries_expire() -> None:
    guard = AuthFailureGuard(max_failures=5, window=60, max_sources=100)
    for i in range(5000):
        guard.record_failure(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", T0 + i * 0.001)
        guard.record_success(f"172.16.{i // 256 % 256}.{i % 256}", T0 + i * 0.001)
    assert guard.tracked_sources <= 200
    # After the window (and the success memory) has passed, nothing is held.
    guard.is_blocked("192.0.2.1", T0 + 5 + 600.1)
    assert guard.tracked_sources == 0


def test_blocks_are_capped_too() -> None:
    guard = AuthFailureGuard(max_failures=1, block_for=600, max_sources=10)
    for i in range(50):
        assert guard.record_failure(f"192.0.2.{i}", T0 + i)
    assert len(guard.blocked_sources(T0 + 50)) == 10
    assert guard.is_blocked("192.0.2.49", T0 + 50)  # the newest blocks are the ones kept
    assert not guard.is_blocked("192.0.2.0", T0 + 50)


# A reference model without caps: every failure since the last block, counted in the window.
_events = st.lists(
    st.tuples(
        st.sampled_from(["fail", "success", "check"]),
        st.sampled_from(["192.0.2.1", "192.0.2.2", "198.51.100.1"]),
        st.floats(min_value=0, max_value=30, allow_nan=False),
    ),
    max_size=80,
)


@settings(max_examples=300)
@given(_events)
def test_matches_reference_model(events: list[tuple[str, str, float]]) -> None:
    guard = AuthFailureGuard(max_failures=4, window=20, block_for=50)
    failures: dict[str, list[float]] = {}
    blocked_until: dict[str, float] = {}
    now = 0.0
    for kind, source, step in events:
        now += step
        model_blocked = blocked_until.get(source, -1.0) > now
        if kind == "fail":
            triggered = False
            if not model_blocked:
                recent = [t for t in failures.get(source, []) if now - t <= 20] + [now]
                failures[source] = recent
                if len(recent) >= 4:
                    blocked_until[source] = now + 50
                    failures[source] = []
                    triggered = True
            assert guard.record_failure(source, now) is triggered
        elif kind == "success":
            guard.record_success(source, now)
        else:
            assert guard.is_blocked(source, now) is model_blocked
