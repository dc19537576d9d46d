"""RFC 4733 telephone-events: payload, digit codes, receiver de-duplication, sender schedule."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.rtp.dtmf import (
    DigitDetected,
    EventPacket,
    TelephoneEvent,
    TelephoneEventReceiver,
    TelephoneEventSender,
    digit_to_event,
    event_to_digit,
)
from proxy.rtp.errors import RtpError


@pytest.mark.parametrize(
    ("payload", "event"),
    [
        pytest.param("05 0a 0320", TelephoneEvent(event=5, volume=10, duration=800), id="update"),
        pytest.param("0b 8a 0640", TelephoneEvent(event=11, end=True, volume=10, duration=1600), id="end"),
        pytest.param("10 3f ffff", TelephoneEvent(event=16, volume=63, duration=0xFFFF), id="flash-max"),
        pytest.param(
            "ff c0 0000", TelephoneEvent(event=255, end=True, reserved=True), id="reserved-bit-kept"
        ),
    ],
)
def test_telephone_event_parse_and_serialise(payload: str, event: TelephoneEvent) -> None:
    data = bytes.fromhex(payload)
    assert TelephoneEvent.parse(data) == event
    assert bytes(event) == data


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("", "telephone-event payload must be 4 bytes, got 0"),
        ("050a03", "telephone-event payload must be 4 bytes, got 3"),
        ("050a0320 060a0320", "telephone-event payload must be 4 bytes, got 8"),
    ],
)
def test_telephone_event_parse_rejects(payload: str, message: str) -> None:
    with pytest.raises(RtpError) as excinfo:
        TelephoneEvent.parse(bytes.fromhex(payload))
    assert str(excinfo.value) == message


@pytest.mark.parametrize(
    "kwargs", [{"event": 256}, {"event": 0, "volume": 64}, {"event": 0, "duration": 0x10000}]
)
def test_telephone_event_validates(kwargs: dict[str, int]) -> None:
    with pytest.raises(RtpError):
        TelephoneEvent(**kwargs)  # type: ignore[arg-type]


@given(st.binary(min_size=4, max_size=4))
def test_telephone_event_round_trip(data: bytes) -> None:
    assert bytes(TelephoneEvent.parse(data)) == data


DIGIT_CODES = [(str(d), d) for d in range(10)] + [
    ("*", 10),
    ("#", 11),
    ("A", 12),
    ("B", 13),
    ("C", 14),
    ("D", 15),
    ("!", 16),
]


@pytest.mark.parametrize(("digit", "code"), DIGIT_CODES)
def test_digit_event_mapping(digit: str, code: int) -> None:
    assert digit_to_event(digit) == code
    assert event_to_digit(code) == digit


@pytest.mark.parametrize(("digit", "code"), [("a", 12), ("d", 15)])
def test_lowercase_letters_accepted(digit: str, code: int) -> None:
    assert digit_to_event(digit) == code


@pytest.mark.parametrize("digit", ["", "E", "12", "x", " "])
def test_unknown_digits_rejected(digit: str) -> None:
    with pytest.raises(RtpError) as excinfo:
        digit_to_event(digit)
    assert str(excinfo.value) == f"not a DTMF digit: {digit!r}"


@pytest.mark.parametrize("code", [17, 32, 255])
def test_non_dtmf_events_have_no_digit(code: int) -> None:
    assert event_to_digit(code) is None


def ev(code: int, duration: int, *, end: bool = False) -> TelephoneEvent:
    return TelephoneEvent(event=code, end=end, volume=10, duration=duration)


def d(digit: str, ts: int, duration: int, *, end: bool = True) -> DigitDetected:
    return DigitDetected(digit=digit, rtp_timestamp=ts, duration=duration, end_received=end)


TS_HIGH = 0xFFFFFF00
TS_WRAPPED = 0x00000100

# (packets as (timestamp, event), expected (index of the packet that produced it or "flush", digit))
RECEIVER_CASES = [
    pytest.param(
        [(1000, ev(5, 400)), (1000, ev(5, 800)), *[(1000, ev(5, 960, end=True))] * 3],
        [(2, d("5", 1000, 960))],
        id="normal-press-three-end-packets",
    ),
    pytest.param(
        [*[(1000, ev(1, 160))] * 3, (1000, ev(1, 480)), *[(1000, ev(1, 800, end=True))] * 3],
        [(4, d("1", 1000, 800))],
        id="retransmitted-start-packets",
    ),
    pytest.param(
        [(1000, ev(1, 400)), (1000, ev(1, 800)), (3000, ev(2, 400)), *[(3000, ev(2, 800, end=True))] * 3],
        [(2, d("1", 1000, 800, end=False)), (3, d("2", 3000, 800))],
        id="end-packets-lost-next-event-reports-previous",
    ),
    pytest.param(
        [(1000, ev(1, 400)), (1000, ev(1, 800))],
        [("flush", d("1", 1000, 800, end=False))],
        id="end-packets-lost-stream-stops",
    ),
    pytest.param(
        [*[(1000, ev(8, 160 * k)) for k in range(1, 21)], *[(1000, ev(8, 3360, end=True))] * 3],
        [(20, d("8", 1000, 3360))],
        id="long-press-with-updates",
    ),
    pytest.param(
        [
            (1000, ev(7, 400)),
            *[(1000, ev(7, 800, end=True))] * 3,
            (3000, ev(7, 400)),
            *[(3000, ev(7, 640, end=True))] * 3,
        ],
        [(1, d("7", 1000, 800)), (5, d("7", 3000, 640))],
        id="same-digit-twice-told-apart-by-timestamp",
    ),
    pytest.param(
        [(1000, ev(7, 400)), (3000, ev(7, 400)), (3000, ev(7, 640, end=True))],
        [(1, d("7", 1000, 400, end=False)), (2, d("7", 3000, 640))],
        id="same-digit-twice-first-end-lost",
    ),
    pytest.param(
        [(1000, ev(3, 800, end=True)), (1000, ev(3, 400)), (1000, ev(3, 800, end=True))],
        [(0, d("3", 1000, 800))],
        id="end-before-updates-reordered",
    ),
    pytest.param(
        [(1000, ev(4, 800, end=True)), (3000, ev(6, 160)), (1000, ev(4, 800, end=True)), (1000, ev(4, 400))],
        [(0, d("4", 1000, 800)), ("flush", d("6", 3000, 160, end=False))],
        id="stragglers-of-previous-event-ignored",
    ),
    pytest.param(
        [*[(1000, ev(9, 800, end=True))] * 3],
        [(0, d("9", 1000, 800))],
        id="only-end-packets-arrive",
    ),
    pytest.param(
        [
            (TS_HIGH, ev(1, 400, end=True)),
            (TS_WRAPPED, ev(2, 400, end=True)),
            (TS_HIGH, ev(1, 400, end=True)),
        ],
        [(0, d("1", TS_HIGH, 400)), (1, d("2", TS_WRAPPED, 400))],
        id="timestamp-wrap",
    ),
    pytest.param(
        [(1000, ev(1, 400)), *[(3000, ev(32, 800, end=True))] * 3],
        [(1, d("1", 1000, 400, end=False))],
        id="non-dtmf-event-ends-pending-digit-but-is-not-reported",
    ),
    pytest.param(
        [(1000, ev(16, 800, end=True))],
        [(0, d("!", 1000, 800))],
        id="flash",
    ),
    pytest.param(
        [(1000, ev(2, 400)), (1000, ev(5, 400, end=True)), (1000, ev(2, 800, end=True))],
        [(2, d("2", 1000, 800))],
        id="other-code-at-same-timestamp-ignored",
    ),
    pytest.param(
        [
            (0, ev(5, 65535)),
            (65535, ev(5, 8000)),
            *[(65535, ev(5, 16000, end=True))] * 3,
        ],
        [(2, d("5", 0, 65535 + 16000))],
        id="long-duration-event-in-two-segments",
    ),
    pytest.param(
        [(0, ev(5, 40000)), (65535, ev(5, 8000)), (65535, ev(5, 9000, end=True))],
        [(2, d("5", 0, 65535 + 9000))],
        id="segment-final-packet-lost",
    ),
    pytest.param(
        [(0, ev(5, 800, end=True)), (65535, ev(5, 800, end=True))],
        [(0, d("5", 0, 800)), (1, d("5", 65535, 800))],
        id="ended-event-is-not-continued-by-a-segment-distance",
    ),
]


@pytest.mark.parametrize(("packets", "expected"), RECEIVER_CASES)
def test_receiver(
    packets: list[tuple[int, TelephoneEvent]], expected: list[tuple[int | str, DigitDetected]]
) -> None:
    receiver = TelephoneEventReceiver()
    got: list[tuple[int | str, DigitDetected]] = []
    for index, (timestamp, event) in enumerate(packets):
        got.extend((index, digit) for digit in receiver.receive(timestamp, event))
    got.extend(("flush", digit) for digit in receiver.flush())
    assert got == expected
    assert receiver.flush() == ()


def test_receiver_new_event_that_is_also_an_end_reports_both() -> None:
    receiver = TelephoneEventReceiver()
    assert receiver.receive(1000, ev(1, 400)) == ()
    assert receiver.receive(3000, ev(2, 800, end=True)) == (
        d("1", 1000, 400, end=False),
        d("2", 3000, 800),
    )


def _packet(
    code: int, duration: int, *, end: bool = False, marker: bool, ts: int = 0, at: int
) -> EventPacket:
    return EventPacket(
        payload=bytes(TelephoneEvent(event=code, end=end, volume=10, duration=duration)),
        marker=marker,
        timestamp_offset=ts,
        send_offset_ms=at,
    )


@pytest.mark.parametrize(
    ("digit", "duration_ms", "expected"),
    [
        pytest.param(
            "5",
            200,
            [
                _packet(5, 400, marker=True, at=50),
                _packet(5, 800, marker=False, at=100),
                _packet(5, 1200, marker=False, at=150),
                _packet(5, 1600, end=True, marker=False, at=200),
                _packet(5, 1600, end=True, marker=False, at=250),
                _packet(5, 1600, end=True, marker=False, at=300),
            ],
            id="200ms",
        ),
        pytest.param(
            "#",
            120,
            [
                _packet(11, 400, marker=True, at=50),
                _packet(11, 800, marker=False, at=100),
                _packet(11, 960, end=True, marker=False, at=120),
                _packet(11, 960, end=True, marker=False, at=170),
                _packet(11, 960, end=True, marker=False, at=220),
            ],
            id="not-a-multiple-of-the-interval",
        ),
        pytest.param(
            "*",
            40,
            [
                _packet(10, 320, end=True, marker=True, at=40),
                _packet(10, 320, end=True, marker=False, at=90),
                _packet(10, 320, end=True, marker=False, at=140),
            ],
            id="shorter-than-one-interval-end-carries-marker",
        ),
    ],
)
def test_sender_schedule(digit: str, duration_ms: int, expected: list[EventPacket]) -> None:
    assert TelephoneEventSender().packets(digit, duration_ms) == expected


def test_sender_options() -> None:
    sender = TelephoneEventSender(clock_rate_hz=16000, interval_ms=20, volume=5, end_repeats=1)
    assert sender.packets("a", 50) == [
        EventPacket(payload=bytes(TelephoneEvent(event=12, volume=5, duration=320)), marker=True,
                    timestamp_offset=0, send_offset_ms=20),
        EventPacket(payload=bytes(TelephoneEvent(event=12, volume=5, duration=640)), marker=False,
                    timestamp_offset=0, send_offset_ms=40),
        EventPacket(payload=bytes(TelephoneEvent(event=12, end=True, volume=5, duration=800)), marker=False,
                    timestamp_offset=0, send_offset_ms=50),
    ]  # fmt: skip


def test_sender_splits_long_events_into_segments() -> None:
    packets = TelephoneEventSender().packets("1", 9000)
    by_time = [
        (p.send_offset_ms, TelephoneEvent.parse(p.payload), p.timestamp_offset, p.marker) for p in packets
    ]
    # 8200 ms = 65600 samples: the first segment closes at 0xFFFF, the second starts 0xFFFF later.
    assert by_time[162:166] == [
        (8150, ev(1, 65200), 0, False),
        (8200, ev(1, 65535), 0, False),
        (8200, ev(1, 65), 65535, False),
        (8250, ev(1, 465), 65535, False),
    ]
    assert by_time[-3:] == [(9000 + 50 * k, ev(1, 72000 - 65535, end=True), 65535, False) for k in range(3)]
    assert sum(p.marker for p in packets) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"clock_rate_hz": 0}, "clock_rate_hz must be positive, got 0"),
        ({"interval_ms": 0}, "interval_ms must be positive, got 0"),
        ({"volume": 64}, "volume must be in 0..63 (-dBm0), got 64"),
        ({"end_repeats": 0}, "end_repeats must be at least 1, got 0"),
    ],
)
def test_sender_validates_options(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as excinfo:
        TelephoneEventSender(**kwargs)
    assert str(excinfo.value) == message


def test_sender_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="duration_ms must be positive, got 0"):
        TelephoneEventSender().packets("1", 0)
    with pytest.raises(RtpError, match="not a DTMF digit"):
        TelephoneEventSender().packets("E", 100)


DIGITS = st.sampled_from([digit for digit, _ in DIGIT_CODES])


@given(DIGITS, st.integers(1, 20_000), st.integers(10, 100), st.integers(0, 0xFFFFFFFF))
def test_sender_output_yields_exactly_one_digit(
    digit: str, duration_ms: int, interval_ms: int, base: int
) -> None:
    receiver = TelephoneEventReceiver()
    got: list[DigitDetected] = []
    for packet in TelephoneEventSender(interval_ms=interval_ms).packets(digit, duration_ms):
        timestamp = (base + packet.timestamp_offset) & 0xFFFFFFFF
        got.extend(receiver.receive(timestamp, TelephoneEvent.parse(packet.payload)))
    got.extend(receiver.flush())
    assert got == [d(digit, base, duration_ms * 8)]


@given(DIGITS, st.integers(1, 8000), st.integers(0, 0xFFFFFFFF), st.data())
def test_any_loss_and_order_of_one_press_yields_exactly_one_digit(
    digit: str, duration_ms: int, base: int, data: st.DataObject
) -> None:
    packets = TelephoneEventSender().packets(digit, duration_ms)
    arrived = data.draw(st.permutations(packets).flatmap(lambda p: st.lists(st.sampled_from(p), min_size=1)))
    receiver = TelephoneEventReceiver()
    got: list[DigitDetected] = []
    for packet in arrived:
        got.extend(receiver.receive(base, TelephoneEvent.parse(packet.payload)))
    got.extend(receiver.flush())
    assert len(got) == 1
    assert got[0].digit == digit
    assert got[0].rtp_timestamp == base
    assert got[0].end_received == any(TelephoneEvent.parse(p.payload).end for p in arrived)


# Reported at the onset: each press once, by the first of its packets that arrives (RFC 4733 §2.5.1.2),
# with the duration that packet carries; nothing after it, final packets and their retransmissions
# included (§2.5.1.4).
RECEIVER_AT_ONSET_CASES = [
    pytest.param(
        [(1000, ev(5, 400)), (1000, ev(5, 800)), *[(1000, ev(5, 960, end=True))] * 3],
        [(0, d("5", 1000, 400, end=False))],
        id="reported-at-the-start-packet-not-at-the-end-packets",
    ),
    pytest.param(
        [(1000, ev(5, 800)), *[(1000, ev(5, 960, end=True))] * 3],
        [(0, d("5", 1000, 800, end=False))],
        id="start-packet-lost-reported-at-the-next-update",
    ),
    pytest.param(
        [*[(1000, ev(5, 960, end=True))] * 3],
        [(0, d("5", 1000, 960))],
        id="only-end-packets-arrive",
    ),
    pytest.param(
        [(1000, ev(1, 400)), (1000, ev(1, 800)), (3000, ev(2, 400)), *[(3000, ev(2, 800, end=True))] * 3],
        [(0, d("1", 1000, 400, end=False)), (2, d("2", 3000, 400, end=False))],
        id="end-packets-lost-nothing-reported-twice",
    ),
    pytest.param(
        [(1000, ev(1, 400)), (3000, ev(1, 400)), (1000, ev(1, 800, end=True))],
        [(0, d("1", 1000, 400, end=False)), (1, d("1", 3000, 400, end=False))],
        id="same-key-twice-and-a-straggler",
    ),
    pytest.param(
        [
            (1000, ev(9, 0xFFFF)),
            (1000 + 0xFFFF, ev(9, 400)),
            *[(1000 + 0xFFFF, ev(9, 800, end=True))] * 3,
        ],
        [(0, d("9", 1000, 0xFFFF, end=False))],
        id="long-press-in-segments-reported-once",
    ),
]


@pytest.mark.parametrize(("packets", "expected"), RECEIVER_AT_ONSET_CASES)
def test_receiver_at_onset(
    packets: list[tuple[int, TelephoneEvent]], expected: list[tuple[int | str, DigitDetected]]
) -> None:
    receiver = TelephoneEventReceiver(at_onset=True)
    got: list[tuple[int | str, DigitDetected]] = []
    for index, (timestamp, event) in enumerate(packets):
        got.extend((index, digit) for digit in receiver.receive(timestamp, event))
    got.extend(("flush", digit) for digit in receiver.flush())
    assert got == expected


@given(DIGITS, st.integers(1, 8000), st.integers(0, 0xFFFFFFFF), st.data())
def test_any_loss_and_order_of_one_press_is_reported_once_at_the_first_packet_at_onset(
    digit: str, duration_ms: int, base: int, data: st.DataObject
) -> None:
    packets = TelephoneEventSender().packets(digit, duration_ms)
    arrived = data.draw(st.permutations(packets).flatmap(lambda p: st.lists(st.sampled_from(p), min_size=1)))
    receiver = TelephoneEventReceiver(at_onset=True)
    got: list[tuple[int, DigitDetected]] = []
    for index, packet in enumerate(arrived):
        got.extend((index, digit) for digit in receiver.receive(base, TelephoneEvent.parse(packet.payload)))
    got.extend((len(arrived), digit) for digit in receiver.flush())
    first = TelephoneEvent.parse(arrived[0].payload)
    assert got == [(0, d(digit, base, first.duration, end=first.end))]
