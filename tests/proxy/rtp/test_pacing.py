"""Pacing against absolute deadlines on virtual time, and stream numbering across source switches."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.rtp.errors import RtpError
from proxy.rtp.pacing import PacedClock, Repacketized, RtpStreamState
from proxy.rtp.seqnum import seq_add, ts_diff

FRAME_S = 0.02


@pytest.mark.parametrize(
    ("now", "due", "next_deadline"),
    [
        pytest.param(99.0, 0, 100.0, id="before-start"),
        pytest.param(100.0, 1, 100.0 + FRAME_S, id="at-start"),
        pytest.param(100.0 + 0.019, 1, 100.0 + FRAME_S, id="within-first-interval"),
        pytest.param(100.0 + FRAME_S, 2, 100.0 + 2 * FRAME_S, id="at-second-deadline"),
        pytest.param(100.0 + 49 * FRAME_S, 50, 100.0 + 50 * FRAME_S, id="at-frame-49"),
    ],
)
def test_frames_due_and_next_deadline(now: float, due: int, next_deadline: float) -> None:
    clock = PacedClock(100.0, FRAME_S)
    assert clock.frames_due(now) == due
    assert clock.next_deadline(now) == next_deadline


def test_deadlines_are_absolute() -> None:
    clock = PacedClock(1000.0, 0.02)
    assert [clock.deadline(n) for n in (0, 1, 50, 3000)] == [1000.0, 1000.02, 1001.0, 1060.0]


@given(
    st.floats(0, 1e6, allow_nan=False),
    st.sampled_from([0.01, 0.02, 0.03, 0.06, 1 / 3]),
    st.integers(0, 10_000_000),
)
def test_frames_due_agrees_exactly_with_deadline(start: float, interval: float, n: int) -> None:
    clock = PacedClock(start, interval)
    at = clock.deadline(n)
    assert clock.frames_due(at) == n + 1
    assert clock.frames_due(math.nextafter(at, -math.inf)) == n
    assert clock.next_deadline(at) == clock.deadline(n + 1)


def test_late_wakeups_do_not_drift() -> None:
    """A sender that always wakes 7 ms late sends frame n at deadline(n) + 7 ms, even after 60 s."""
    clock = PacedClock(50.0, FRAME_S)
    sent_at: list[float] = []
    now = 50.0
    while len(sent_at) < 3000:
        due = clock.frames_due(now)
        sent_at.extend(now for _ in range(len(sent_at), due))
        now = clock.next_deadline(now) + 0.007
    assert sent_at == [50.0] + [clock.deadline(n) + 0.007 for n in range(1, 3000)]
    assert all(clock.deadline(n) <= t < clock.deadline(n) + FRAME_S for n, t in enumerate(sent_at))


def test_a_stall_makes_the_missed_frames_due_at_once() -> None:
    clock = PacedClock(0.0, FRAME_S)
    assert clock.frames_due(0.0) == 1
    assert clock.frames_due(0.1005) == 6


@pytest.mark.parametrize("interval", [0.0, -0.02, math.inf, math.nan])
def test_clock_rejects_bad_interval(interval: float) -> None:
    with pytest.raises(ValueError, match="interval_s must be positive and finite"):
        PacedClock(0.0, interval)


def test_generated_frames_wrap_sequence_and_timestamp() -> None:
    stream = RtpStreamState(ssrc=0x1234, sequence=65534, timestamp=0xFFFFFF60)
    assert (stream.last_sequence, stream.last_timestamp) == (None, None)
    assert [stream.next_frame(160) for _ in range(3)] == [
        (65534, 0xFFFFFF60, True),
        (65535, 0, False),
        (0, 160, False),
    ]
    assert (stream.last_sequence, stream.last_timestamp, stream.ssrc) == (0, 160, 0x1234)


def _relaying(stream: RtpStreamState) -> bool:
    return stream.relaying


def test_announcement_then_relay_then_beep() -> None:
    stream = RtpStreamState(ssrc=7, sequence=100, timestamp=8000)
    assert [stream.next_frame(160) for _ in range(3)] == [
        (100, 8000, True),
        (101, 8160, False),
        (102, 8320, False),
    ]

    # The other leg's first packet arrives 50 ms (400 samples) after the last announcement frame started.
    stream.continue_from(source_sequence=5000, source_timestamp=777, elapsed_samples=400)
    assert _relaying(stream)
    assert stream.translate(5000, 777, False) == (103, 8720, True)
    assert stream.translate(5001, 937, False) == (104, 8880, False)
    assert stream.translate(5003, 1257, True) == (106, 9200, True)  # the source's gap and marker pass through
    assert stream.translate(5002, 1097, False) == (105, 9040, False)  # late: mapped, but not the newest
    assert (stream.last_sequence, stream.last_timestamp) == (106, 9200)

    stream.resume_local(elapsed_samples=480)
    assert not _relaying(stream)
    assert [stream.next_frame(160) for _ in range(2)] == [(107, 9680, True), (108, 9840, False)]


def test_relay_from_the_start_uses_the_initial_values() -> None:
    stream = RtpStreamState(ssrc=7, sequence=0, timestamp=0)
    stream.continue_from(source_sequence=65535, source_timestamp=0xFFFFFFFF, elapsed_samples=12345)
    assert stream.translate(65535, 0xFFFFFFFF, False) == (0, 0, True)
    assert stream.translate(0, 159, False) == (1, 160, False)


def test_switch_never_overlaps_the_last_generated_frame() -> None:
    stream = RtpStreamState(ssrc=1, sequence=10, timestamp=1000)
    stream.next_frame(240)
    stream.continue_from(source_sequence=1, source_timestamp=1, elapsed_samples=100)
    assert stream.translate(1, 1, False) == (11, 1240, True)


def test_source_change_while_relaying() -> None:
    stream = RtpStreamState(ssrc=1, sequence=10, timestamp=1000)
    stream.continue_from(source_sequence=500, source_timestamp=0, elapsed_samples=0)
    assert stream.translate(500, 0, False) == (10, 1000, True)
    assert stream.translate(501, 160, False) == (11, 1160, False)
    stream.continue_from(source_sequence=9, source_timestamp=4_000_000_000, elapsed_samples=160)
    assert stream.translate(9, 4_000_000_000, False) == (12, 1320, True)


def _no_setup(stream: RtpStreamState) -> None:
    pass


def _start_relaying(stream: RtpStreamState) -> None:
    stream.continue_from(source_sequence=1, source_timestamp=1, elapsed_samples=0)


@pytest.mark.parametrize(
    ("setup", "call", "error", "message"),
    [
        pytest.param(
            _no_setup,
            lambda s: s.translate(1, 1, False),
            RtpError,
            "translate before continue_from",
            id="translate-first",
        ),
        pytest.param(
            _start_relaying,
            lambda s: s.relay_offsets,
            RtpError,
            "relay_offsets before the first relayed packet was translated",
            id="offsets-before-the-marked-packet",
        ),
        pytest.param(
            _no_setup,
            lambda s: s.relayed_up_to(1, 1),
            RtpError,
            "relayed_up_to before continue_from",
            id="note-relayed-first",
        ),
        pytest.param(
            _start_relaying,
            lambda s: s.next_frame(160),
            RtpError,
            "next_frame while relaying: call resume_local first",
            id="frame-while-relaying",
        ),
        pytest.param(
            _no_setup,
            lambda s: s.resume_local(elapsed_samples=-1),
            ValueError,
            "elapsed_samples must not be negative, got -1",
            id="negative-elapsed",
        ),
        pytest.param(
            _no_setup,
            lambda s: s.next_frame(0),
            ValueError,
            "samples must be positive, got 0",
            id="zero-samples",
        ),
    ],
)
def test_stream_misuse(
    setup: Callable[[RtpStreamState], None],
    call: Callable[[RtpStreamState], object],
    error: type[Exception],
    message: str,
) -> None:
    stream = RtpStreamState(ssrc=1, sequence=1, timestamp=1)
    setup(stream)
    with pytest.raises(error) as excinfo:
        call(stream)
    assert str(excinfo.value) == message


@pytest.mark.parametrize(
    "kwargs", [{"ssrc": 2**32}, {"sequence": 65536}, {"timestamp": -1}], ids=["ssrc", "sequence", "timestamp"]
)
def test_stream_validates_initial_values(kwargs: dict[str, int]) -> None:
    values = {"ssrc": 1, "sequence": 1, "timestamp": 1}
    values.update(kwargs)
    with pytest.raises(ValueError, match="out of range"):
        RtpStreamState(**values)


SEGMENTS = st.lists(
    st.tuples(
        st.booleans(),  # True: relay a source, False: generate frames
        st.integers(1, 40),  # packets in the segment
        st.integers(0, 0xFFFF),  # source's first sequence number
        st.integers(0, 0xFFFFFFFF),  # source's first timestamp
        st.integers(0, 2000),  # elapsed samples at the switch
    ),
    min_size=1,
    max_size=8,
)


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF), SEGMENTS)
def test_numbering_stays_continuous_across_any_switches(
    sequence: int, timestamp: int, segments: list[tuple[bool, int, int, int, int]]
) -> None:
    stream = RtpStreamState(ssrc=99, sequence=sequence, timestamp=timestamp)
    emitted: list[tuple[int, int, bool]] = []
    for index, (relay, count, src_seq, src_ts, elapsed) in enumerate(segments):
        if relay:
            stream.continue_from(source_sequence=src_seq, source_timestamp=src_ts, elapsed_samples=elapsed)
            emitted.extend(
                stream.translate(seq_add(src_seq, k), src_ts + 160 * k, False) for k in range(count)
            )
        else:
            if index:
                stream.resume_local(elapsed_samples=elapsed)
            emitted.extend(stream.next_frame(160) for _ in range(count))
    assert emitted[0][:2] == (sequence, timestamp)
    for (seq_a, ts_a, _), (seq_b, ts_b, _) in itertools.pairwise(emitted):
        assert seq_b == seq_add(seq_a, 1)
        assert ts_diff(ts_b, ts_a) > 0
    starts = {sum(c for _, c, *_ in segments[:i]) for i in range(len(segments))}
    assert [i for i, (_, _, marker) in enumerate(emitted) if marker] == sorted(starts)


def test_packets_renumbered_elsewhere_are_continued_from_the_newest() -> None:
    """The relay renumbers with ``relay_offsets`` and reports the newest packet it sent, however
    far past the last one the state saw; the next generated frame follows it across the wrap."""
    stream = RtpStreamState(ssrc=7, sequence=65533, timestamp=0xFFFFFE00)
    stream.next_frame(160)  # 65533
    stream.continue_from(source_sequence=40, source_timestamp=1000, elapsed_samples=160)
    assert stream.translate(40, 1000, False) == (65534, 0xFFFFFEA0, True)
    sequence_offset, timestamp_offset = stream.relay_offsets

    def renumbered(source_sequence: int, source_timestamp: int) -> tuple[int, int]:
        return (source_sequence + sequence_offset) & 0xFFFF, (
            source_timestamp + timestamp_offset
        ) & 0xFFFFFFFF

    assert renumbered(41, 1160) == stream.translate(41, 1160, False)[:2]
    stream.relayed_up_to(*renumbered(44, 1640))
    assert (stream.last_sequence, stream.last_timestamp) == (2, 0x120)
    stream.resume_local(elapsed_samples=160)
    assert stream.next_frame(160) == (3, 0x1C0, True)
    # Eleven minutes of relaying: 32,768 packets, half the sequence space past the last frame.
    stream.continue_from(source_sequence=7, source_timestamp=0, elapsed_samples=160)
    stream.translate(7, 0, False)
    offset = stream.relay_offsets[0]
    stream.relayed_up_to((7 + 32_768 + offset) & 0xFFFF, 5_243_040)
    stream.resume_local(elapsed_samples=160)
    assert stream.next_frame(160)[0] == (4 + 32_768 + 1) & 0xFFFF


def test_a_stream_following_someone_elses_packet_goes_on_from_it() -> None:
    """``following``: the packet (65535, 0xFFFFFF60), 240 samples long, was someone else's; the
    next frame follows it across the wrap with no marker, and a switch keeps its distance."""
    stream = RtpStreamState.following(ssrc=9, sequence=65535, timestamp=0xFFFFFF60, samples=240)
    assert (stream.ssrc, stream.last_sequence, stream.last_timestamp) == (9, 65535, 0xFFFFFF60)
    assert stream.next_frame(160) == (0, 0x50, False)
    stream = RtpStreamState.following(ssrc=9, sequence=10, timestamp=1000, samples=160)
    stream.continue_from(source_sequence=500, source_timestamp=7, elapsed_samples=800)
    assert stream.translate(500, 7, False) == (11, 1800, True)


# Repacketized -----------------------------------------------------------------------------------


def _frames(count: int, size: int = 160) -> list[bytes]:
    """``count`` frames whose bytes count up, so that where each byte went can be seen."""
    audio = bytes(index % 251 for index in range(count * size))
    return [audio[index : index + size] for index in range(0, len(audio), size)]


@pytest.mark.parametrize(
    ("frames", "packet_bytes", "lengths"),
    [
        pytest.param(3, 240, [240, 240], id="30ms-even"),
        pytest.param(4, 240, [240, 240, 160], id="30ms-last-short"),
        pytest.param(2, 80, [80, 80, 80, 80], id="10ms"),
        pytest.param(5, 320, [320, 320, 160], id="40ms"),
        pytest.param(8, 480, [480, 480, 320], id="60ms-the-beep"),
        pytest.param(1, 240, [160], id="less-than-a-packet"),
        pytest.param(0, 240, [], id="nothing"),
    ],
)
def test_repacketized_cuts_the_audio_in_packets_of_the_length_asked(
    frames: int, packet_bytes: int, lengths: list[int]
) -> None:
    source = _frames(frames)
    packets = Repacketized(source, packet_bytes)
    assert [len(packet) for packet in packets] == lengths
    assert b"".join(packets) == b"".join(source)  # the same audio, in order, nothing added
    assert len(packets) == len(lengths)
    assert list(packets[1:]) == list(packets)[1:]


def test_repacketized_in_a_loop_ends_on_a_packet_boundary_so_repeating_repeats_the_audio() -> None:
    # Ringback: one period of 250 frames (5 s) does not divide into 30 ms packets; three periods do.
    period = _frames(250)
    packets = Repacketized(period, 240, loop=True)
    assert len(packets) == 500
    assert {len(packet) for packet in packets} == {240}
    assert b"".join(packets) == b"".join(period) * 3
    assert packets[-1] == packets[499]
    with pytest.raises(IndexError):
        packets[500]


def test_repacketized_keeps_a_short_last_frame() -> None:
    source = [*_frames(2), b"\x01" * 40]
    assert [len(packet) for packet in Repacketized(source, 240)] == [240, 120]
    assert b"".join(Repacketized(source, 240)) == b"".join(source)
    looped = Repacketized(source, 240, loop=True)
    assert b"".join(looped) == b"".join(source) * (len(looped) * 240 // 360)


@pytest.mark.parametrize(
    ("frames", "packet_bytes", "lengths"),
    [
        pytest.param(4, 240, [240, 240, 240], id="30ms"),
        pytest.param(8, 480, [480, 480, 480], id="60ms-the-beep"),
        pytest.param(1, 240, [240], id="less-than-a-packet"),
        pytest.param(3, 240, [240, 240], id="nothing-to-fill"),
    ],
)
def test_repacketized_fills_the_last_packet_with_silence(
    frames: int, packet_bytes: int, lengths: list[int]
) -> None:
    # RFC 3551 §4.5: every packet lasts the duration the receiver asked for.
    source = _frames(frames)
    packets = Repacketized(source, packet_bytes, silence=b"\xff")
    assert [len(packet) for packet in packets] == lengths
    audio = b"".join(source)
    assert b"".join(packets) == audio + b"\xff" * (sum(lengths) - len(audio))


@pytest.mark.parametrize("loop", [False, True])
def test_repacketized_from_a_byte_on_starts_its_first_packet_there(loop: bool) -> None:
    source = _frames(5)  # 800 bytes
    audio = b"".join(source)
    packets = Repacketized(source, 240, loop=loop, silence=b"\xd5", start=300)
    if loop:
        assert len(packets) == 10  # 2400 bytes: three times round the audio, from byte 300
        assert b"".join(packets) == (audio * 4)[300:2700]
    else:
        assert [len(packet) for packet in packets] == [240, 240, 240]
        assert b"".join(packets) == audio[300:] + b"\xd5" * 220


@pytest.mark.parametrize(
    ("frames", "packet_bytes", "message"),
    [
        pytest.param([b"ab", b"abc"], 2, "not empty nor longer", id="last-longer"),
        pytest.param([b"abc", b"ab", b"a"], 2, "as long as the first", id="uneven"),
        pytest.param([b"ab", b""], 2, "not empty nor longer", id="empty-last"),
        pytest.param([b"ab"], 0, "packet_bytes must be positive", id="no-bytes"),
    ],
)
def test_repacketized_refuses_what_it_cannot_cut(
    frames: list[bytes], packet_bytes: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Repacketized(frames, packet_bytes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"silence": b"\xff\xff"}, "silence must be one byte", id="silence-of-two-bytes"),
        pytest.param({"start": 321}, "not within", id="start-past-the-end"),
        pytest.param({"start": -1}, "not within", id="start-before-the-start"),
        pytest.param({"start": 320, "loop": True}, "not within", id="loop-from-its-end"),
    ],
)
def test_repacketized_refuses_a_silence_or_start_it_cannot_use(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Repacketized(_frames(2), 240, **changes)


@given(
    frames=st.integers(min_value=1, max_value=60),
    packet_ms=st.sampled_from([10, 20, 30, 40, 50, 60, 100, 200]),
    loop=st.booleans(),
)
def test_repacketized_is_the_audio_whole_and_in_order(frames: int, packet_ms: int, loop: bool) -> None:
    source = _frames(frames)
    packets = Repacketized(source, 8 * packet_ms, loop=loop)
    audio = b"".join(source)
    joined = b"".join(packets)
    if loop:
        assert len(joined) % len(audio) == 0
        assert joined == audio * (len(joined) // len(audio))
    else:
        assert joined == audio
    assert all(len(packet) == 8 * packet_ms for packet in list(packets)[:-1])
