"""The RTP port pool: even RTP ports with RTCP above, handed out in order and reused oldest-freed first."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.b2bua.media_ports import MAX_PORT_TRIES, PortPool


def drain(pool: PortPool) -> list[int]:
    """Every port the pool still has, in the order it hands them out."""
    ports: list[int] = []
    for _ in range(pool.capacity + 1):
        port = pool.allocate()
        if port is None:
            return ports
        ports.append(port)
    raise AssertionError("the pool handed out more than its capacity")


@pytest.mark.parametrize(
    ("port_min", "port_max", "expected"),
    [
        (20000, 20009, [20000, 20002, 20004, 20006, 20008]),
        (20000, 20008, [20000, 20002, 20004, 20006]),  # 20008's RTCP port 20009 is outside
        (20001, 20010, [20002, 20004, 20006, 20008]),  # an odd minimum starts at the next even port
        (20000, 20001, [20000]),
        (20000, 20000, []),
        (20001, 20002, []),
        (20000, 20099, list(range(20000, 20099, 2))),
    ],
)
def test_allocation_order_and_capacity(port_min: int, port_max: int, expected: list[int]) -> None:
    pool = PortPool(port_min, port_max)
    assert pool.capacity == len(expected)
    assert pool.available == len(expected)
    assert drain(pool) == expected
    assert pool.available == 0


@pytest.mark.parametrize("first_pair", [2, 5, -1])
def test_allocation_starts_at_the_first_pair_and_wraps_round(first_pair: int) -> None:
    pool = PortPool(20000, 20009, first_pair=first_pair)  # pairs 20000 .. 20008
    start = 20000 + 2 * (first_pair % 5)
    assert drain(pool) == [*range(start, 20009, 2), *range(20000, start, 2)]


def test_an_empty_pool_with_a_first_pair_is_still_empty() -> None:
    assert drain(PortPool(20001, 20002, first_pair=3)) == []


def test_exhausted_pool_returns_none_until_a_release() -> None:
    pool = PortPool(20000, 20003)
    assert drain(pool) == [20000, 20002]
    assert pool.allocate() is None
    assert pool.allocate() is None
    pool.release(20002)
    assert pool.available == 1
    assert pool.allocate() == 20002
    assert pool.allocate() is None


@pytest.mark.parametrize(
    "bogus",
    [20000, 20001, 19998, 20010, 0],
    ids=["twice", "rtcp-port", "below", "above", "zero"],
)
def test_releasing_a_port_not_in_use_is_ignored(bogus: int) -> None:
    pool = PortPool(20000, 20005)
    first = pool.allocate()
    assert first == 20000
    pool.release(first)
    assert pool.available == 3
    pool.release(bogus)  # 20000 is free again by now: a second release
    assert pool.available == 3
    assert drain(pool) == [20002, 20004, 20000]


def test_never_allocated_free_port_release_is_ignored() -> None:
    pool = PortPool(20000, 20005)
    pool.release(20004)  # free, never handed out
    assert pool.available == 3
    assert drain(pool) == [20000, 20002, 20004]


def test_freed_ports_are_reused_oldest_freed_first() -> None:
    pool = PortPool(20000, 20007)
    assert drain(pool) == [20000, 20002, 20004, 20006]
    for port in (20004, 20000, 20006):
        pool.release(port)
    assert drain(pool) == [20004, 20000, 20006]


def test_a_freed_port_waits_behind_the_never_used_ones() -> None:
    pool = PortPool(20000, 20007)
    assert pool.allocate() == 20000
    pool.release(20000)
    assert drain(pool) == [20002, 20004, 20006, 20000]


class HeldPorts:
    """A port check: the pairs in ``held`` are refused; every pair asked about is noted."""

    def __init__(self, *held: int) -> None:
        self.held = set(held)
        self.asked: list[int] = []

    def __call__(self, port: int) -> bool:
        self.asked.append(port)
        return port not in self.held


def test_a_refused_pair_is_passed_over_and_tried_again_after_the_others() -> None:
    check = HeldPorts(20002)
    pool = PortPool(20000, 20007, usable=check)
    assert [pool.allocate(), pool.allocate()] == [20000, 20004]
    assert pool.passed_over == 1
    assert pool.available == 2  # 20002 stays in the pool
    check.held.clear()  # the other program let it go
    assert drain(pool) == [20006, 20002]
    assert check.asked == [20000, 20002, 20004, 20006, 20002]


def test_a_pair_refused_again_keeps_its_place_behind_the_freed_ones() -> None:
    pool = PortPool(20000, 20005, usable=HeldPorts(20000))
    assert pool.allocate() == 20002
    assert pool.allocate() == 20004
    pool.release(20002)
    assert pool.allocate() == 20002  # 20000 is asked about first, refused again
    assert pool.passed_over == 2


def test_allocation_gives_up_after_max_port_tries_refusals() -> None:
    check = HeldPorts(*range(20000, 20100, 2))
    pool = PortPool(20000, 20199, usable=check)
    assert pool.allocate() is None
    assert len(check.asked) == MAX_PORT_TRIES
    assert pool.available == pool.capacity  # nothing lost
    assert pool.allocate() is None  # the next call asks about the next pairs in turn
    assert check.asked[MAX_PORT_TRIES:] == list(
        range(20000 + 2 * MAX_PORT_TRIES, 20000 + 4 * MAX_PORT_TRIES, 2)
    )


def test_a_small_pool_asks_about_each_pair_once_per_allocation() -> None:
    check = HeldPorts(20000, 20002)
    pool = PortPool(20000, 20003, usable=check)
    assert pool.allocate() is None
    assert check.asked == [20000, 20002]


@given(
    st.lists(st.one_of(st.none(), st.integers(min_value=19996, max_value=20012)), max_size=60),
    st.sets(st.sampled_from(range(20000, 20010, 2))),
)
def test_pool_invariants_hold_for_any_sequence(operations: list[int | None], held: set[int]) -> None:
    """None allocates; a number releases it; the pairs in ``held`` are always refused. Ports in
    use are unique, even, in range and never held; none is lost."""
    pool = PortPool(20000, 20009, usable=HeldPorts(*held))
    in_use: list[int] = []
    for operation in operations:
        if operation is None:
            port = pool.allocate()
            if port is None:
                assert len(in_use) + len(held) == pool.capacity
            else:
                assert port not in held
                assert port not in in_use
                assert port % 2 == 0
                assert 20000 <= port <= 20008
                in_use.append(port)
        else:
            pool.release(operation)
            if operation in in_use:
                in_use.remove(operation)
        assert pool.available + len(in_use) == pool.capacity
