"""DigitListener: key presses in one party's RTP, as RFC 4733 telephone-events or in-band G.711 tones.

Each case is a stream of packets built the way a phone sends them (``TelephoneEventSender``'s
schedule, 20 ms G.711 frames of a generated Q.23 tone pair), merged in sending order, and the
presses the listener must report while it is fed and at ``flush()``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.rtp.digits import INBAND_BATCH_SAMPLES, DigitListener, HeardDigit, judge_together
from proxy.rtp.dtmf import TelephoneEvent, TelephoneEventSender
from proxy.rtp.g711 import (
    PCMA_PAYLOAD_TYPE,
    PCMU_PAYLOAD_TYPE,
    alaw_decode,
    alaw_encode,
    ulaw_decode,
    ulaw_encode,
)
from proxy.rtp.inband import DBM0_MEAN_SQUARE, DTMF_HIGH_HZ, DTMF_KEYPAD, DTMF_LOW_HZ, InbandDtmfDetector
from proxy.rtp.packet import RtpExtension, RtpPacket

RATE_HZ = 8000
SAMPLES_PER_MS = RATE_HZ // 1000
FRAME_MS = 20
FRAME_SAMPLES = FRAME_MS * SAMPLES_PER_MS
EVENT_PT = 101
G722_PAYLOAD_TYPE = 9
SSRC = 0x5EED0001
BASE_TS = 3_000_000
# ITU-T Q.23 nominal sending levels: low group -11 dBm0, high group 2 dB above it (-9 dBm0).
LOW_GROUP_DBM0 = -11.0
HIGH_GROUP_DBM0 = -9.0

Expected = list[tuple[str, str]]  # (digit, mechanism)


# -- packet builders ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Sent:
    """One packet a phone sends ``at_ms`` after the stream starts."""

    at_ms: float
    payload_type: int
    timestamp: int
    payload: bytes
    marker: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Shape:
    """Optional RTP header parts every packet of a stream carries (RFC 3550 §5.1, §5.3.1)."""

    csrc: tuple[int, ...] = ()
    extension: RtpExtension | None = None
    padding: bytes = b""


PLAIN = Shape()


def _ts(offset_ms: float, base_ts: int) -> int:
    return (base_ts + round(offset_ms * SAMPLES_PER_MS)) & 0xFFFFFFFF


def press(
    digit: str,
    onset_ms: float,
    duration_ms: int = 120,
    *,
    payload_type: int = EVENT_PT,
    keep: Callable[[TelephoneEvent], bool] = lambda _event: True,
    base_ts: int = BASE_TS,
) -> list[Sent]:
    """The RFC 4733 packets of one press (three end packets), those ``keep`` accepts."""
    sent = []
    for packet in TelephoneEventSender().packets(digit, duration_ms):
        if keep(TelephoneEvent.parse(packet.payload)):
            sent.append(
                Sent(
                    at_ms=onset_ms + packet.send_offset_ms,
                    payload_type=payload_type,
                    timestamp=(_ts(onset_ms, base_ts) + packet.timestamp_offset) & 0xFFFFFFFF,
                    payload=packet.payload,
                    marker=packet.marker,
                )
            )
    return sent


def without_end(event: TelephoneEvent) -> bool:
    return not event.end


def _amplitude(level_dbm0: float) -> float:
    return math.sqrt(2.0 * DBM0_MEAN_SQUARE * 10.0 ** (level_dbm0 / 10.0))


def tone(digit: str, ms: float) -> npt.NDArray[np.float64]:
    """The digit's Q.23 tone pair at the nominal levels."""
    row, column = divmod(DTMF_KEYPAD.index(digit), 4)
    t = np.arange(round(ms * SAMPLES_PER_MS)) / RATE_HZ
    low = _amplitude(LOW_GROUP_DBM0) * np.sin(2.0 * np.pi * DTMF_LOW_HZ[row] * t)
    high = _amplitude(HIGH_GROUP_DBM0) * np.sin(2.0 * np.pi * DTMF_HIGH_HZ[column] * t + 0.7)
    return low + high


def silence(ms: float) -> npt.NDArray[np.float64]:
    return np.zeros(round(ms * SAMPLES_PER_MS))


def keyed(digit: str, lead_ms: float, tone_ms: float, tail_ms: float) -> npt.NDArray[np.float64]:
    """Silence, the digit's tone, silence."""
    return np.concatenate([silence(lead_ms), tone(digit, tone_ms), silence(tail_ms)])


ENCODERS = {"pcmu": ulaw_encode, "pcma": alaw_encode, "g722": ulaw_encode}  # G.722: any bytes will do
AUDIO_PT = {"pcmu": PCMU_PAYLOAD_TYPE, "pcma": PCMA_PAYLOAD_TYPE, "g722": G722_PAYLOAD_TYPE}


def audio(
    signal: npt.NDArray[np.float64],
    codec: str,
    *,
    start_ms: float = 0.0,
    payload_type: int | None = None,
    base_ts: int = BASE_TS,
) -> list[Sent]:
    """20 ms frames of ``signal`` coded for ``codec``, each sent once it has been captured."""
    pcm = np.clip(np.round(signal), -32768, 32767).astype(np.int16)
    encode = ENCODERS[codec]
    return [
        Sent(
            at_ms=start_ms + (index + 1) * FRAME_MS,
            payload_type=AUDIO_PT[codec] if payload_type is None else payload_type,
            timestamp=_ts(start_ms + index * FRAME_MS, base_ts),
            payload=encode(pcm[start : start + FRAME_SAMPLES]),
        )
        for index, start in enumerate(range(0, len(pcm) - FRAME_SAMPLES + 1, FRAME_SAMPLES))
    ]


def stream(*parts: list[Sent], shape: Shape = PLAIN) -> list[bytes]:
    """The parts merged in sending order, numbered as one RTP stream."""
    merged = sorted((sent for part in parts for sent in part), key=lambda sent: sent.at_ms)
    return [
        bytes(
            RtpPacket(
                payload_type=sent.payload_type,
                sequence=sequence & 0xFFFF,
                timestamp=sent.timestamp,
                ssrc=SSRC,
                marker=sent.marker,
                csrc=shape.csrc,
                extension=shape.extension,
                payload=sent.payload,
                padding=shape.padding,
            )
        )
        for sequence, sent in enumerate(merged, start=4000)
    ]


def listener(codec: str = "pcmu", *, event_pt: int | None = EVENT_PT, inband: bool = True) -> DigitListener:
    return DigitListener(
        codec=codec, audio_payload_type=AUDIO_PT[codec], event_payload_type=event_pt, inband=inband
    )


def heard(digits: list[HeardDigit]) -> Expected:
    return [(digit.digit, digit.mechanism) for digit in digits]


def run(target: DigitListener, packets: list[bytes]) -> tuple[Expected, Expected]:
    """(presses reported while fed, presses reported by ``flush()``)."""
    fed: list[HeardDigit] = []
    for packet in packets:
        fed += target.feed(packet)
    return heard(fed), heard(target.flush())


# -- the table ---------------------------------------------------------------------------------


def _cases() -> list[object]:
    rows: list[object] = []

    def case(
        name: str,
        packets: list[bytes],
        fed: Expected,
        flushed: Expected | None = None,
        *,
        codec: str = "pcmu",
        event_pt: int | None = EVENT_PT,
        inband: bool = True,
    ) -> None:
        rows.append(pytest.param(packets, codec, event_pt, inband, fed, flushed or [], id=name))

    rfc, inb = "rfc4733", "inband"
    # RFC 4733: the end packet is sent three times (§2.5.1.4); the press is reported once.
    case("rfc4733-press-with-three-end-packets", stream(press("1", 0)), [("1", rfc)])
    for digit in "0*#D!":
        case(f"rfc4733-press-{digit}", stream(press(digit, 0)), [(digit, rfc)])
    doubled = stream(press("7", 0))
    case("rfc4733-every-packet-duplicated", [p for packet in doubled for p in (packet, packet)], [("7", rfc)])
    case("rfc4733-same-key-twice", stream(press("3", 0), press("3", 400)), [("3", rfc), ("3", rfc)])
    case("rfc4733-two-keys", stream(press("4", 0), press("2", 400)), [("4", rfc), ("2", rfc)])
    case(
        "rfc4733-long-press-in-segments",
        stream(press("9", 0, duration_ms=9000)),  # 72000 units: two segments (§2.5.1.3)
        [("9", rfc)],
    )
    # Every end packet lost (§2.5.2.2): the press was reported at its first packet all the same.
    case(
        "end-packets-lost-reported-at-next-event",
        stream(press("5", 0, keep=without_end), press("6", 400)),
        [("5", rfc), ("6", rfc)],
    )
    case("end-packets-lost-reported-all-the-same", stream(press("8", 0, keep=without_end)), [("8", rfc)])
    case(
        "only-end-packets-arrive",
        stream(press("2", 0, keep=lambda event: event.end)),
        [("2", rfc)],
    )
    # Not the negotiated telephone-event payload type, or none negotiated.
    case("wrong-event-payload-type-ignored", stream(press("1", 0, payload_type=100)), [])
    case("events-on-the-audio-payload-type-ignored", stream(press("1", 0, payload_type=0)), [])
    case("no-event-payload-type-negotiated", stream(press("1", 0)), [], event_pt=None)
    # In-band tones in G.711 audio.
    case("inband-1-pcmu", stream(audio(keyed("1", 100, 120, 200), "pcmu")), [("1", inb)])
    case("inband-1-pcma", stream(audio(keyed("1", 100, 120, 200), "pcma")), [("1", inb)], codec="pcma")
    case("inband-1-pcmu-reported-while-held", stream(audio(keyed("1", 100, 120, 0), "pcmu")), [("1", inb)])
    case(
        "inband-no-event-payload-type",
        stream(audio(keyed("1", 100, 120, 200), "pcmu")),
        [("1", inb)],
        event_pt=None,
    )
    case(
        "inband-tone-on-another-payload-type-ignored",
        stream(audio(keyed("1", 100, 120, 200), "pcma", payload_type=PCMU_PAYLOAD_TYPE)),
        [],
        codec="pcma",
    )
    case(
        "inband-pcma-tone-sent-as-pcmu-ignored",
        stream(audio(keyed("1", 100, 120, 200), "pcma", payload_type=PCMA_PAYLOAD_TYPE)),
        [],
    )
    case("g722-no-inband-detection", stream(audio(keyed("1", 100, 120, 200), "g722")), [], codec="g722")
    case(
        "g722-events-still-heard",
        stream(audio(silence(400), "g722"), press("1", 100)),
        [("1", rfc)],
        codec="g722",
    )
    case("inband-disabled", stream(audio(keyed("1", 100, 120, 200), "pcmu")), [], inband=False)
    case(
        "inband-disabled-events-still-heard",
        stream(audio(keyed("1", 100, 120, 200), "pcmu"), press("1", 100)),
        [("1", rfc)],
        inband=False,
    )
    # A phone sending both: the tone stays in its audio while the events go out. The first event
    # packet comes 50 ms into the press, after 40 ms of tone: that tone is never reported.
    for codec in ("pcmu", "pcma"):
        case(
            f"both-mechanisms-counted-once-{codec}",
            stream(audio(keyed("1", 100, 120, 300), codec), press("1", 100)),
            [("1", rfc)],
            codec=codec,
        )
    case(
        "after-an-event-inband-stops",
        stream(audio(keyed("2", 600, 120, 300), "pcmu"), press("1", 100)),
        [("1", rfc)],
    )
    case(
        "inband-before-the-first-event-is-heard",
        stream(audio(keyed("2", 100, 120, 500), "pcmu"), press("1", 600)),
        [("2", inb), ("1", rfc)],
    )
    # RTP timestamps that wrap around 2**32 in the middle of the stream.
    near_wrap = 0xFFFFFFFF - 20 * SAMPLES_PER_MS
    case(
        "rfc4733-across-timestamp-wrap",
        stream(press("5", 0, base_ts=near_wrap), press("6", 400, base_ts=near_wrap)),
        [("5", rfc), ("6", rfc)],
    )
    case(
        "inband-across-timestamp-wrap",
        stream(audio(keyed("6", 60, 120, 200), "pcmu", base_ts=near_wrap)),
        [("6", inb)],
    )
    return rows


@pytest.mark.parametrize(("packets", "codec", "event_pt", "inband", "fed", "flushed"), _cases())
def test_presses_heard(
    packets: list[bytes],
    codec: str,
    event_pt: int | None,
    inband: bool,
    fed: Expected,
    flushed: Expected,
) -> None:
    assert run(listener(codec, event_pt=event_pt, inband=inband), packets) == (fed, flushed)


@pytest.mark.parametrize("digit", list(DTMF_KEYPAD))
@pytest.mark.parametrize("codec", ["pcmu", "pcma"])
def test_every_key_inband(codec: str, digit: str) -> None:
    packets = stream(audio(keyed(digit, 100, 80, 200), codec))
    assert run(listener(codec), packets) == ([(digit, "inband")], [])


def test_events_seen_is_set_by_the_first_event_packet() -> None:
    target = listener()
    target.feed(stream(audio(silence(100), "pcmu"))[0])
    assert not target.events_seen
    target.feed(stream(press("1", 0))[0])
    assert target.events_seen


# -- header shapes: CSRCs, extension, padding --------------------------------------------------

SHAPES = [
    pytest.param(Shape(csrc=(0x01020304,)), id="one-csrc"),
    pytest.param(Shape(csrc=tuple(range(1, 16))), id="fifteen-csrcs"),
    pytest.param(Shape(extension=RtpExtension(profile=0xBEDE)), id="empty-extension"),
    pytest.param(Shape(extension=RtpExtension(profile=0xBEDE, data=bytes(range(12)))), id="extension"),
    pytest.param(Shape(padding=b"\x01"), id="padding-1"),
    pytest.param(Shape(padding=bytes(7) + b"\x08"), id="padding-8"),
    pytest.param(Shape(padding=bytes(254) + b"\xff"), id="padding-255"),
    pytest.param(
        Shape(
            csrc=(7, 8),
            extension=RtpExtension(profile=0x1000, data=b"\xee" * 8),
            padding=b"\x00\x00\x03",
        ),
        id="csrc-extension-padding",
    ),
]


@pytest.mark.parametrize("shape", SHAPES)
def test_events_in_packets_with_optional_header_parts(shape: Shape) -> None:
    # Any byte left over or cut off would make the 4-byte event payload unreadable.
    assert run(listener(), stream(press("1", 0), shape=shape)) == ([("1", "rfc4733")], [])


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("codec", ["pcmu", "pcma"])
def test_tones_in_packets_with_optional_header_parts(codec: str, shape: Shape) -> None:
    packets = stream(audio(keyed("1", 100, 120, 200), codec), shape=shape)
    assert run(listener(codec), packets) == ([("1", "inband")], [])


# -- malformed packets -------------------------------------------------------------------------

GOOD_EVENT = stream(press("1", 0))[0]
GOOD_AUDIO = stream(audio(silence(20), "pcmu"))[0]


def _with_first_byte(packet: bytes, first: int) -> bytes:
    return bytes([first]) + packet[1:]


def _event(payload: bytes, padding: bytes = b"") -> bytes:
    return bytes(
        RtpPacket(
            payload_type=EVENT_PT, sequence=1, timestamp=BASE_TS, ssrc=SSRC, payload=payload, padding=padding
        )
    )


MALFORMED = [
    pytest.param(b"", id="empty"),
    pytest.param(GOOD_EVENT[:11], id="shorter-than-the-header"),
    pytest.param(GOOD_EVENT[:12], id="header-only-event"),
    pytest.param(_with_first_byte(GOOD_EVENT, 0x00), id="version-0"),
    pytest.param(_with_first_byte(GOOD_EVENT, 0x40), id="version-1"),
    pytest.param(_with_first_byte(GOOD_EVENT, 0xC0), id="version-3"),
    pytest.param(_with_first_byte(GOOD_AUDIO, 0x00), id="audio-version-0"),
    pytest.param(GOOD_EVENT[:15], id="event-payload-truncated"),
    pytest.param(GOOD_EVENT + GOOD_EVENT[12:], id="two-events-packed"),
    pytest.param(_with_first_byte(GOOD_EVENT, 0x8F), id="csrc-list-runs-past-the-packet"),
    pytest.param(_with_first_byte(GOOD_AUDIO, 0x8F)[:40], id="audio-csrc-list-runs-past-the-packet"),
    pytest.param(_with_first_byte(GOOD_EVENT, 0x90)[:14], id="extension-header-truncated"),
    pytest.param(
        _with_first_byte(GOOD_EVENT[:12] + b"\xbe\xde\x00\x05" + GOOD_EVENT[12:], 0x90),
        id="extension-runs-past",
    ),
    pytest.param(_with_first_byte(GOOD_EVENT[:12] + b"\xbe\xde\xff\xff", 0x90), id="extension-huge"),
    pytest.param(_with_first_byte(GOOD_EVENT, 0xA0)[:-1] + b"\x09", id="padding-longer-than-payload"),
    pytest.param(_with_first_byte(GOOD_EVENT, 0xA0)[:-1] + b"\x00", id="padding-count-zero"),
    pytest.param(_with_first_byte(GOOD_AUDIO, 0xA0)[:-1] + b"\xff", id="audio-padding-past-payload"),
    pytest.param(_with_first_byte(GOOD_AUDIO, 0xA0)[:-1] + b"\x00", id="audio-padding-count-zero"),
    pytest.param(_with_first_byte(GOOD_EVENT[:12], 0xA0), id="padding-bit-on-header-only"),
    pytest.param(_event(b"\x05\x8a\x03"), id="event-3-bytes"),
    pytest.param(_event(b"\x05\x8a\x03\x20\x00", padding=b"\x01"), id="event-5-bytes-padded"),
    pytest.param(_event(b"\xff\x8a\x03\x20"), id="event-code-not-a-digit"),
]


@pytest.mark.parametrize("packet", MALFORMED)
@pytest.mark.parametrize("codec", ["pcmu", "g722"])
def test_malformed_packets_are_ignored(codec: str, packet: bytes) -> None:
    target = listener(codec)
    assert target.feed(packet) == []
    # The listener still works afterwards.
    assert run(target, stream(press("4", 100))) == ([("4", "rfc4733")], [])


@given(st.binary(max_size=80))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    target = listener()
    target.feed(data)
    target.flush()


@given(
    first=st.integers(min_value=0x80, max_value=0xBF),
    payload_type=st.sampled_from([PCMU_PAYLOAD_TYPE, EVENT_PT, 13]),
    rest=st.binary(max_size=200),
)
def test_arbitrary_version_2_packets_never_raise(first: int, payload_type: int, rest: bytes) -> None:
    target = listener()
    target.feed(bytes([first, payload_type]) + GOOD_EVENT[2:12] + rest)
    target.flush()


# -- in-band audio judged in batches -------------------------------------------------------------


@given(
    digits=st.lists(st.sampled_from(DTMF_KEYPAD), min_size=1, max_size=3),
    tone_ms=st.sampled_from([45, 60, 120]),
    lost=st.sets(st.integers(0, 60), max_size=4),
    swapped=st.sets(st.integers(0, 60), max_size=3),
    codec=st.sampled_from(["pcmu", "pcma"]),
)
@settings(max_examples=60, deadline=None)
def test_inband_batches_hear_what_a_packet_by_packet_detector_hears_at_most_80_ms_later(
    digits: list[str], tone_ms: int, lost: set[int], swapped: set[int], codec: str
) -> None:
    signal = np.concatenate([keyed(digit, 90, tone_ms, 110) for digit in digits])
    packets = stream(audio(signal, codec))
    for index in sorted(swapped):  # a packet late by one: a break in the run each way
        if index + 1 < len(packets):
            packets[index], packets[index + 1] = packets[index + 1], packets[index]
    packets = [packet for index, packet in enumerate(packets) if index not in lost]
    reference = InbandDtmfDetector(at_onset=True)
    decode = ulaw_decode if codec == "pcmu" else alaw_decode
    expected: list[tuple[int, str]] = []  # (packet index, digit) as each press is reported
    batched: list[tuple[int, str]] = []
    target = listener(codec)
    for index, packet in enumerate(packets):
        parsed = RtpPacket.parse(packet)
        expected += [(index, d.digit) for d in reference.feed(decode(parsed.payload), parsed.timestamp)]
        batched += [(index, d.digit) for d in target.feed(packet)]
    expected += [(len(packets), d.digit) for d in reference.flush()]
    batched += [(len(packets), d.digit) for d in target.flush()]
    assert [digit for _, digit in batched] == [digit for _, digit in expected]
    batch_packets = INBAND_BATCH_SAMPLES // FRAME_SAMPLES
    for (at, _), (due, _) in zip(batched, expected, strict=True):
        assert due <= at < due + batch_packets


def test_inband_audio_waiting_in_a_batch_is_judged_by_flush() -> None:
    # The press is in the last packets, which fill no batch: flush judges them, then the press.
    packets = stream(audio(keyed("5", 170, 50, 0), "pcmu"))
    assert len(packets) * FRAME_SAMPLES % INBAND_BATCH_SAMPLES != 0
    assert run(listener(), packets) == ([], [("5", "inband")])


@pytest.mark.parametrize("mechanism", ["rfc4733", "inband"])
def test_a_held_key_is_reported_once_as_it_goes_down_with_how_long_it_has_been_down(mechanism: str) -> None:
    # A key held 1.5 s from 100 ms: known as a press long before it is released (the first event
    # packet, 50 ms in; in-band, once the tone has lasted the detector's minimum), and no more.
    if mechanism == "rfc4733":
        packets = stream(audio(silence(2000), "pcmu"), press("1", 100, duration_ms=1500))
    else:
        packets = stream(audio(keyed("1", 100, 1500, 400), "pcmu"))
    target = listener()
    reported: list[tuple[float, HeardDigit]] = []
    for packet in packets:
        parsed = RtpPacket.parse(packet)
        end_ms = (parsed.timestamp - BASE_TS + len(parsed.payload)) / SAMPLES_PER_MS
        if parsed.payload_type == EVENT_PT:
            end_ms = (parsed.timestamp - BASE_TS) / SAMPLES_PER_MS + TelephoneEvent.parse(
                parsed.payload
            ).duration / 8
        reported += [(end_ms, digit) for digit in target.feed(packet)]
    assert target.flush() == []
    assert [(digit.digit, digit.mechanism) for _, digit in reported] == [("1", mechanism)]
    heard_at_ms, digit = reported[0]
    assert heard_at_ms < 100 + 250  # not at the release (1600 ms)
    # The key went down at 100 ms: the listener says how long before what reported it (5 ms hops).
    assert heard_at_ms - 1000 * digit.since_onset_s == pytest.approx(100, abs=10)


def test_a_first_event_drops_the_inband_audio_still_waiting() -> None:
    # The phone's tone is in the audio, its RFC 4733 event comes after: counted once, as the event.
    tone_packets = audio(keyed("7", 0, 60, 0), "pcmu")
    packets = stream(tone_packets, press("7", 100))
    assert run(listener(), packets) == ([("7", "rfc4733")], [])


@given(
    calls=st.lists(
        st.tuples(
            st.lists(st.sampled_from(DTMF_KEYPAD), min_size=1, max_size=2), st.sets(st.integers(0, 40))
        ),
        min_size=1,
        max_size=4,
    ),
    every=st.integers(1, 7),
)
@settings(max_examples=40, deadline=None)
def test_listeners_judged_together_hear_what_each_hears_alone(
    calls: list[tuple[list[str], set[int]]], every: int
) -> None:
    # Several calls' listeners gather their audio (feed with judge=False); every few packets
    # judge_together judges all of it: each hears the presses it hears on its own.
    streams = []
    for digits, lost in calls:
        packets = stream(audio(np.concatenate([keyed(d, 90, 80, 110) for d in digits]), "pcmu"))
        streams.append([packet for index, packet in enumerate(packets) if index not in lost])
    alone = [listener() for _ in streams]
    together = [listener() for _ in streams]
    expected: list[Expected] = [[] for _ in streams]
    found: list[Expected] = [[] for _ in streams]
    for index in range(max(len(packets) for packets in streams)):
        for k, packets in enumerate(streams):
            if index < len(packets):
                expected[k] += heard(alone[k].feed(packets[index]))
                found[k] += heard(together[k].feed(packets[index], judge=False))
        if index % every == every - 1:
            waiting = [target for target in together if target.audio_waiting]
            for target, presses in zip(waiting, judge_together(waiting), strict=True):
                found[together.index(target)] += heard(presses)
    for k in range(len(streams)):
        expected[k] += heard(alone[k].flush())
        found[k] += heard(together[k].flush())
    assert found == expected
