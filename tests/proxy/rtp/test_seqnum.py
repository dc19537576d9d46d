"""Wrap-around arithmetic and RFC 3550 §A.1 sequence tracking."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.rtp.seqnum import (
    ExtendedSequence,
    SeqStatus,
    SequenceStats,
    seq_add,
    seq_diff,
    seq_newer,
    ts_add,
    ts_diff,
    ts_newer,
)

SEQ = st.integers(0, 0xFFFF)
TS = st.integers(0, 0xFFFFFFFF)


@pytest.mark.parametrize(
    ("a", "b", "diff", "newer"),
    [
        pytest.param(1, 0, 1, True, id="plus-one"),
        pytest.param(0, 65535, 1, True, id="wrap-65535-to-0"),
        pytest.param(65535, 0, -1, False, id="wrap-backwards"),
        pytest.param(5, 5, 0, False, id="equal"),
        pytest.param(100, 65500, 136, True, id="across-wrap"),
        pytest.param(32767, 0, 32767, True, id="just-under-half"),
        pytest.param(0, 32767, -32767, False, id="just-under-half-reverse"),
        pytest.param(32768, 0, -32768, False, id="halfway-ambiguous"),
        pytest.param(0, 32768, -32768, False, id="halfway-ambiguous-reverse"),
        pytest.param(65536 + 3, 1, 2, True, id="arguments-taken-modulo"),
    ],
)
def test_seq_diff_and_newer(a: int, b: int, diff: int, newer: bool) -> None:
    assert seq_diff(a, b) == diff
    assert seq_newer(a, b) is newer


@pytest.mark.parametrize(
    ("a", "n", "result"),
    [(65535, 1, 0), (0, -1, 65535), (65530, 10, 4), (10, 65536, 10), (7, 0, 7)],
)
def test_seq_add(a: int, n: int, result: int) -> None:
    assert seq_add(a, n) == result


@pytest.mark.parametrize(
    ("a", "b", "diff", "newer"),
    [
        pytest.param(0, 0xFFFFFFFF, 1, True, id="wrap-ffffffff-to-0"),
        pytest.param(0xFFFFFFFF, 0, -1, False, id="wrap-backwards"),
        pytest.param(160, 0xFFFFFF60, 320, True, id="across-wrap"),
        pytest.param(0x7FFFFFFF, 0, 2**31 - 1, True, id="just-under-half"),
        pytest.param(0x80000000, 0, -(2**31), False, id="halfway-ambiguous"),
        pytest.param(0, 0x80000000, -(2**31), False, id="halfway-ambiguous-reverse"),
        pytest.param(42, 42, 0, False, id="equal"),
    ],
)
def test_ts_diff_and_newer(a: int, b: int, diff: int, newer: bool) -> None:
    assert ts_diff(a, b) == diff
    assert ts_newer(a, b) is newer


@pytest.mark.parametrize(
    ("a", "n", "result"),
    [(0xFFFFFFFF, 1, 0), (0, -160, 0xFFFFFF60), (0xFFFFFF60, 160, 0), (1, 2**32, 1)],
)
def test_ts_add(a: int, n: int, result: int) -> None:
    assert ts_add(a, n) == result


@given(SEQ, SEQ)
def test_seq_diff_inverts_seq_add(a: int, b: int) -> None:
    d = seq_diff(a, b)
    assert -32768 <= d <= 32767
    assert seq_add(b, d) == a
    assert not (seq_newer(a, b) and seq_newer(b, a))
    assert seq_newer(a, b) == (d > 0)


@given(TS, TS)
def test_ts_diff_inverts_ts_add(a: int, b: int) -> None:
    d = ts_diff(a, b)
    assert -(2**31) <= d <= 2**31 - 1
    assert ts_add(b, d) == a
    assert not (ts_newer(a, b) and ts_newer(b, a))
    assert ts_newer(a, b) == (d > 0)


IN = SeqStatus.IN_ORDER
LATE = SeqStatus.LATE
DUP = SeqStatus.DUPLICATE
JUMP = SeqStatus.JUMP
RESYNC = SeqStatus.RESYNC
PROB = SeqStatus.PROBATION


def _stats(**kwargs: int | None) -> SequenceStats:
    fields: dict[str, int | None] = {
        "received": 0,
        "expected": 0,
        "lost": 0,
        "duplicates": 0,
        "reordered": 0,
        "resyncs": 0,
        "ignored": 0,
        "highest": None,
    }
    fields.update(kwargs)
    return SequenceStats(**fields)  # type: ignore[arg-type]


# (seqs, min_sequential, statuses, extended numbers, final stats)
TRACKER_CASES = [
    pytest.param(
        [10, 11, 12],
        1,
        [IN, IN, IN],
        [10, 11, 12],
        _stats(received=3, expected=3, highest=12),
        id="in-order",
    ),
    pytest.param(
        [10, 11, 12],
        2,
        [PROB, IN, IN],
        [None, 11, 12],
        _stats(received=2, expected=2, ignored=1, highest=12),
        id="probation-two-sequential",
    ),
    pytest.param(
        [10, 20, 21, 22],
        2,
        [PROB, PROB, IN, IN],
        [None, None, 21, 22],
        _stats(received=2, expected=2, ignored=2, highest=22),
        id="probation-restarts-on-gap",
    ),
    pytest.param(
        [65534, 65535, 0, 1],
        1,
        [IN, IN, IN, IN],
        [65534, 65535, 65536, 65537],
        _stats(received=4, expected=4, highest=65537),
        id="wrap-counts-a-cycle",
    ),
    pytest.param(
        [1, 2, 5, 6],
        1,
        [IN, IN, IN, IN],
        [1, 2, 5, 6],
        _stats(received=4, expected=6, lost=2, highest=6),
        id="loss",
    ),
    pytest.param(
        [1, 3, 2, 4],
        1,
        [IN, IN, LATE, IN],
        [1, 3, 2, 4],
        _stats(received=4, expected=4, reordered=1, highest=4),
        id="reorder",
    ),
    pytest.param(
        [1, 2, 2, 3, 1],
        1,
        [IN, IN, DUP, IN, DUP],
        [1, 2, 2, 3, 1],
        _stats(received=3, expected=3, duplicates=2, highest=3),
        id="duplicates",
    ),
    pytest.param(
        [65534, 0, 65535, 1],
        1,
        [IN, IN, LATE, IN],
        [65534, 65536, 65535, 65537],
        _stats(received=4, expected=4, reordered=1, highest=65537),
        id="reorder-across-wrap",
    ),
    pytest.param(
        [10, 9],
        1,
        [IN, LATE],
        [10, 9],
        _stats(received=2, expected=2, reordered=1, highest=10),
        id="late-packet-before-the-first",
    ),
    pytest.param(
        [5, 65530],
        1,
        [IN, LATE],
        [5, -6],
        _stats(received=2, expected=12, lost=10, reordered=1, highest=5),
        id="late-across-wrap-before-the-first-is-negative",
    ),
    pytest.param(
        [200, 101, 100],
        1,
        [IN, LATE, JUMP],
        [200, 101, None],
        _stats(received=2, expected=100, lost=98, reordered=1, ignored=1, highest=200),
        id="misorder-window-boundary",
    ),
    pytest.param(
        [0, 2999, 5999],
        1,
        [IN, IN, JUMP],
        [0, 2999, None],
        _stats(received=2, expected=3000, lost=2998, ignored=1, highest=2999),
        id="dropout-boundary",
    ),
    pytest.param(
        [100, 101, 20000, 102],
        1,
        [IN, IN, JUMP, IN],
        [100, 101, None, 102],
        _stats(received=3, expected=3, ignored=1, highest=102),
        id="isolated-jump-ignored",
    ),
    pytest.param(
        [100, 101, 20000, 20001, 20002],
        1,
        [IN, IN, JUMP, RESYNC, IN],
        [100, 101, None, 20001, 20002],
        _stats(received=4, expected=4, resyncs=1, ignored=1, highest=20002),
        id="confirmed-jump-resyncs",
    ),
    pytest.param(
        [5000, 5001, 10, 11, 12],
        1,
        [IN, IN, JUMP, RESYNC, IN],
        [5000, 5001, None, 65547, 65548],
        _stats(received=4, expected=4, resyncs=1, ignored=1, highest=65548),
        id="backward-restart-keeps-extended-increasing",
    ),
    pytest.param(
        [*range(1, 151), 60, 51],
        1,
        [IN] * 150 + [DUP, DUP],
        [*range(1, 151), 60, 51],
        _stats(received=150, expected=150, duplicates=2, highest=150),
        id="duplicate-detected-across-the-whole-window",
    ),
]


@pytest.mark.parametrize(("seqs", "min_sequential", "statuses", "extended", "stats"), TRACKER_CASES)
def test_extended_sequence(
    seqs: list[int],
    min_sequential: int,
    statuses: list[SeqStatus],
    extended: list[int | None],
    stats: SequenceStats,
) -> None:
    tracker = ExtendedSequence(min_sequential=min_sequential)
    got_status = []
    got_extended = []
    for seq in seqs:
        got_status.append(tracker.update(seq))
        got_extended.append(tracker.last_extended)
    assert got_status == statuses
    assert got_extended == extended
    assert tracker.stats() == stats
    assert tracker.highest == stats.highest


def test_first_is_where_counting_started_and_moves_only_with_a_resync() -> None:
    assert ExtendedSequence().first is None
    tracker = ExtendedSequence(min_sequential=2)
    for seq in (100, 101, 103, 99):  # probation, then in order, a gap, one late from before
        tracker.update(seq)
    assert tracker.first == 101
    for seq in (20_000, 20_001):  # a jump confirmed by the next number: counting restarts
        tracker.update(seq)
    assert tracker.first == tracker.highest == 103 + ((20_001 - 103) & 0xFFFF)


def test_fresh_tracker_stats() -> None:
    assert ExtendedSequence().stats() == _stats()


@pytest.mark.parametrize(
    ("status", "accepted"),
    [(IN, True), (LATE, True), (RESYNC, True), (DUP, False), (JUMP, False), (PROB, False)],
)
def test_status_accepted(status: SeqStatus, accepted: bool) -> None:
    assert status.accepted is accepted


@pytest.mark.parametrize(
    "kwargs",
    [{"min_sequential": 0}, {"max_dropout": 0}, {"max_dropout": 32769}, {"max_misorder": 0}],
)
def test_tracker_rejects_bad_parameters(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must be"):
        ExtendedSequence(**kwargs)


@st.composite
def _arrivals(draw: st.DrawFn) -> list[int]:
    """Indices of a packet stream after loss, adjacent swaps and immediate duplicates."""
    n = draw(st.integers(1, 300))
    indices = [i for i in range(n) if i == 0 or draw(st.integers(0, 4)) > 0]
    for i in range(len(indices) - 1):
        if draw(st.integers(0, 3)) == 0:
            indices[i], indices[i + 1] = indices[i + 1], indices[i]
    out: list[int] = []
    for index in indices:
        out.append(index)
        if draw(st.integers(0, 5)) == 0:
            out.append(index)
    return out


@given(_arrivals(), SEQ)
def test_tracker_counts_any_lossy_reordered_stream(arrivals: list[int], start: int) -> None:
    tracker = ExtendedSequence(min_sequential=1)
    extended = []
    for index in arrivals:
        tracker.update((start + index) & 0xFFFF)
        extended.append(tracker.last_extended)
    assert all(e is not None for e in extended)
    first = extended[0]
    assert first is not None
    assert [e - first for e in extended if e is not None] == [i - arrivals[0] for i in arrivals]
    distinct = len(set(arrivals))
    expected = max(arrivals) - min(arrivals) + 1
    stats = tracker.stats()
    assert stats.received == distinct
    assert stats.duplicates == len(arrivals) - distinct
    assert stats.expected == expected
    assert stats.lost == expected - distinct


@given(_arrivals(), SEQ, st.integers(0, 200), st.integers(0, 5))
def test_advance_equals_in_order_updates(arrivals: list[int], start: int, count: int, later: int) -> None:
    # `advance(n)` leaves the tracker exactly as n updates, each one past the highest, would:
    # same counters, and the same answers for reordered and duplicate packets afterwards.
    bulk = ExtendedSequence(min_sequential=1)
    single = ExtendedSequence(min_sequential=1)
    for index in arrivals:
        bulk.update((start + index) & 0xFFFF)
        single.update((start + index) & 0xFFFF)
    highest = single.highest
    assert highest is not None
    bulk.advance(count)
    for offset in range(1, count + 1):
        assert single.update((highest + offset) & 0xFFFF) is SeqStatus.IN_ORDER
    assert bulk.stats() == single.stats()
    assert bulk.last_extended == single.last_extended
    for back in range(later + 1):
        seq = (highest + count - back * 7) & 0xFFFF
        assert bulk.update(seq) is single.update(seq)
    assert bulk.stats() == single.stats()


def test_advance_needs_a_valid_source() -> None:
    tracker = ExtendedSequence(min_sequential=2)
    tracker.update(10)
    with pytest.raises(ValueError, match="valid"):
        tracker.advance(3)
    tracker.advance(0)  # nothing to account for: no error
