"""Stereo recorder core: placement by timestamp, loss, reordering, SSRC and drift, pauses, masks."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from G722 import G722
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.rtp.errors import RtpError
from proxy.rtp.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from proxy.rtp.inband import ToneSpan
from proxy.rtp.packet import RtpExtension, RtpPacket
from proxy.rtp.recorder import (
    DEFAULT_DRIFT_LIMIT_SAMPLES,
    DEFAULT_REORDER_WINDOW_SAMPLES,
    DRIFT_BLOCK_PACKETS,
    DRIFT_WINDOW_BLOCKS,
    RECORDED_PAYLOAD_TYPES,
    Channel,
    ChannelStats,
    MediaFormat,
    PauseInterval,
    SteadyFeed,
    StereoRecorder,
    drain_together,
    feed_steady,
)

RATE = 8000
FRAME = 160  # 20 ms
EVENT_PT = 101
PCMU = MediaFormat(audio_payload_types=frozenset({0}), event_payload_type=EVENT_PT)
PCMA = MediaFormat(audio_payload_types=frozenset({8}), event_payload_type=EVENT_PT)


def tone(
    freq_hz: float, samples: int, *, amplitude: float = 8000.0, rate: float = RATE
) -> npt.NDArray[np.int16]:
    n = np.arange(samples)
    wave: npt.NDArray[np.int16] = np.round(amplitude * np.sin(2 * np.pi * freq_hz * n / rate)).astype(
        np.int16
    )
    return wave


@dataclass(frozen=True)
class Pkt:
    channel: Channel
    pt: int
    seq: int
    ts: int
    ssrc: int
    payload: bytes
    arrival: int | None


def packetise(
    channel: Channel,
    codes: bytes,
    *,
    pt: int = 0,
    seq0: int = 1000,
    ts0: int = 50_000,
    ssrc: int = 0x1111,
    arrival0: int | None = 0,
) -> list[Pkt]:
    out = []
    for k in range(len(codes) // FRAME):
        arrival = None if arrival0 is None else arrival0 + k * FRAME
        out.append(
            Pkt(
                channel,
                pt,
                (seq0 + k) & 0xFFFF,
                (ts0 + k * FRAME) & 0xFFFFFFFF,
                ssrc,
                codes[k * FRAME : (k + 1) * FRAME],
                arrival,
            )
        )
    return out


def feed_all(rec: StereoRecorder, packets: list[Pkt]) -> None:
    for p in packets:
        rec.feed(p.channel, p.pt, p.seq, p.ts, p.ssrc, p.payload, p.arrival)


def stats(**changes: int) -> ChannelStats:
    base = dict.fromkeys(ChannelStats.__dataclass_fields__, 0)
    base.update(changes)
    return ChannelStats(**base)


def interleave(a: list[Pkt], b: list[Pkt]) -> list[Pkt]:
    return [p for pair in zip(a, b, strict=True) for p in pair]


def peak_hz(signal: npt.NDArray[np.int16], rate: int = RATE) -> float:
    spectrum = np.abs(np.fft.rfft(signal.astype(np.float64)))
    return float(np.argmax(spectrum) * rate / len(signal))


# -- stereo content and length --------------------------------------------------------------


@pytest.mark.parametrize(
    ("left_hz", "right_hz", "seconds"),
    [(1000.0, 440.0, 2), (440.0, 1000.0, 1), (1000.0, 440.0, 5)],
)
def test_tones_land_on_their_channels_with_exact_length(
    left_hz: float, right_hz: float, seconds: int
) -> None:
    n = seconds * RATE
    left = packetise(Channel.LEFT, ulaw_encode(tone(left_hz, n)), ssrc=1)
    right = packetise(Channel.RIGHT, ulaw_encode(tone(right_hz, n)), ssrc=2, ts0=7, seq0=9)
    rec = StereoRecorder(left=PCMU, right=PCMU)
    feed_all(rec, interleave(left, right))
    out = rec.drain(n)
    assert out.shape == (n, 2)
    assert out.dtype == np.int16
    assert peak_hz(out[:, 0]) == left_hz
    assert peak_hz(out[:, 1]) == right_hz
    np.testing.assert_array_equal(out[:, 0], ulaw_decode(ulaw_encode(tone(left_hz, n))))
    assert rec.stats(Channel.LEFT) == stats(packets_in=n // FRAME)
    assert rec.drained == n


def test_drain_bytes_is_interleaved_s16le_and_blocks_concatenate() -> None:
    n = 3 * RATE
    packets = interleave(
        packetise(Channel.LEFT, ulaw_encode(tone(1000.0, n)), ssrc=1),
        packetise(Channel.RIGHT, ulaw_encode(tone(440.0, n)), ssrc=2),
    )
    whole = StereoRecorder(left=PCMU, right=PCMU)
    feed_all(whole, packets)
    expected = whole.drain(n)
    blocks = StereoRecorder(left=PCMU, right=PCMU)
    feed_all(blocks, packets)
    data = b"".join(blocks.drain_bytes(k * RATE) for k in (1, 2, 3))
    assert len(data) == n * 4
    np.testing.assert_array_equal(np.frombuffer(data, dtype="<i2").reshape(n, 2), expected)
    assert blocks.drain(n).shape == (0, 2)


# -- reassembly of one channel --------------------------------------------------------------

CODES = bytes(range(0x20, 0x20 + 12))  # one distinct µ-law code per packet, none silent


def one_channel(order: list[int], *, arrival: bool) -> tuple[StereoRecorder, npt.NDArray[np.int16]]:
    packets = packetise(Channel.LEFT, b"".join(bytes([c]) * FRAME for c in CODES))
    rec = StereoRecorder(left=PCMU, right=PCMU)
    for i, k in enumerate(order):
        p = packets[k]
        rec.feed(p.channel, p.pt, p.seq, p.ts, p.ssrc, p.payload, i * FRAME if arrival else None)
    return rec, rec.drain(len(CODES) * FRAME)[:, 0]


def expected_left(present: set[int]) -> npt.NDArray[np.int16]:
    per_packet = ulaw_decode(CODES)
    return np.concatenate(
        [np.full(FRAME, per_packet[k] if k in present else 0, dtype=np.int16) for k in range(len(CODES))]
    )


ALL = list(range(12))


REASSEMBLY_CASES = [
    pytest.param(ALL, set(ALL), stats(packets_in=12), id="in-order"),
    pytest.param([0, 1, 3, 2, *ALL[4:]], set(ALL), stats(packets_in=12), id="swap-adjacent"),
    pytest.param([0, 2, 3, 1, *ALL[4:]], set(ALL), stats(packets_in=12), id="two-late-within-window"),
    pytest.param([0, 2, 3, 4, 1, *ALL[5:]], set(ALL), stats(packets_in=12), id="three-late"),
    pytest.param([0, *ALL[2:10], 1, 10, 11], set(ALL), stats(packets_in=12), id="eight-late-edge-of-window"),
    pytest.param(
        [0, *ALL[2:11], 1, 11],
        set(ALL) - {1},
        stats(packets_in=12, late_dropped=1, late_dropped_samples=FRAME, gap_samples=FRAME),
        id="nine-late-dropped",
    ),
    pytest.param(
        [k for k in ALL if k != 4],
        set(ALL) - {4},
        stats(packets_in=11, lost_samples=FRAME, gap_samples=FRAME),
        id="one-lost",
    ),
    pytest.param(
        [0, 1, 2, 6, 7, 8, 9, 10, 11],
        {0, 1, 2, 6, 7, 8, 9, 10, 11},
        stats(packets_in=9, lost_samples=3 * FRAME, gap_samples=3 * FRAME),
        id="three-lost",
    ),
    pytest.param(
        [0, 1, 1, 2, 3, 3, 3, *ALL[4:]],
        set(ALL),
        stats(packets_in=15, duplicates=3),
        id="duplicates",
    ),
    pytest.param(
        [0, 2, 1, 1, *ALL[3:]], set(ALL), stats(packets_in=13, duplicates=1), id="late-then-duplicate"
    ),
]


@pytest.mark.parametrize("arrival", [True, False])
@pytest.mark.parametrize(("order", "present", "expected_stats"), REASSEMBLY_CASES)
def test_reassembly_of_one_channel(
    order: list[int], present: set[int], expected_stats: ChannelStats, arrival: bool
) -> None:
    rec, left = one_channel(order, arrival=arrival)
    np.testing.assert_array_equal(left, expected_left(present))
    assert rec.stats(Channel.LEFT) == expected_stats


def test_late_packet_after_its_position_was_drained_is_dropped() -> None:
    packets = packetise(Channel.LEFT, b"".join(bytes([c]) * FRAME for c in CODES))
    rec = StereoRecorder(left=PCMU, right=PCMU)
    feed_all(rec, packets[:1] + packets[2:5])
    first = rec.drain(3 * FRAME)
    feed_all(rec, packets[1:2])  # within the window, but its place is already stored
    assert rec.stats(Channel.LEFT).late_dropped == 1
    assert np.count_nonzero(first[FRAME : 2 * FRAME, 0]) == 0
    assert rec.drain(5 * FRAME).shape == (2 * FRAME, 2)


def test_a_late_packet_from_before_the_first_does_not_hide_a_later_loss() -> None:
    # Packet 0 comes after packet 1, the channel's first (a recording that starts amid
    # reordering); packet 3 never comes. Packet 0 was never counted as lost, so it cannot make
    # up for packet 3.
    packets = packetise(Channel.LEFT, b"".join(bytes([c]) * FRAME for c in CODES))
    rec = StereoRecorder(left=PCMU, right=PCMU)
    feed_all(rec, [packets[1], packets[0], packets[2], *packets[4:6]])
    assert rec.stats(Channel.LEFT).lost_samples == FRAME


def test_the_drained_part_of_a_late_packet_is_counted_as_late_audio() -> None:
    packets = packetise(Channel.LEFT, b"".join(bytes([c]) * FRAME for c in CODES))
    rec = StereoRecorder(left=PCMU, right=PCMU)
    feed_all(rec, packets[:1] + packets[2:5])
    rec.drain(FRAME + 40)
    feed_all(rec, packets[1:2])  # its first 40 samples' place is stored already
    out = rec.drain(5 * FRAME)
    np.testing.assert_array_equal(out[: FRAME - 40, 0], expected_left(set(ALL))[FRAME + 40 : 2 * FRAME])
    assert rec.stats(Channel.LEFT) == stats(packets_in=5, late_dropped_samples=40, gap_samples=40)


@pytest.mark.parametrize(
    ("seq0", "ts0"),
    [(65530, 50_000), (1000, 2**32 - 3 * FRAME - 17), (65535, 2**32 - FRAME)],
    ids=["seq-wrap", "ts-wrap", "both-wrap"],
)
@pytest.mark.parametrize("swap", [False, True])
def test_sequence_and_timestamp_wrap(seq0: int, ts0: int, swap: bool) -> None:
    packets = packetise(Channel.LEFT, b"".join(bytes([c]) * FRAME for c in CODES), seq0=seq0, ts0=ts0)
    if swap:
        packets[3], packets[4] = packets[4], packets[3]
    rec = StereoRecorder(left=PCMU, right=PCMU)
    feed_all(rec, packets)
    np.testing.assert_array_equal(rec.drain(len(CODES) * FRAME)[:, 0], expected_left(set(ALL)))
    assert rec.stats(Channel.LEFT) == stats(packets_in=12)


@pytest.mark.parametrize("arrival", [True, False])
@pytest.mark.parametrize(("seq1", "ts1"), [(5000, 777_777), (3, 2**32 - 100), (1005, 50_800)])
def test_ssrc_change_continues_without_jump_or_overlap(arrival: bool, seq1: int, ts1: int) -> None:
    codes = b"".join(bytes([c]) * FRAME for c in CODES)
    first = packetise(Channel.LEFT, codes[: 5 * FRAME], ssrc=0xA)
    second = packetise(
        Channel.LEFT,
        codes[5 * FRAME :],
        ssrc=0xB,
        seq0=seq1,
        ts0=ts1,
        arrival0=5 * FRAME if arrival else None,
    )
    rec = StereoRecorder(left=PCMU, right=PCMU)
    feed_all(rec, first + second)
    np.testing.assert_array_equal(rec.drain(len(CODES) * FRAME)[:, 0], expected_left(set(ALL)))
    assert rec.stats(Channel.LEFT) == stats(packets_in=12, reanchors=1, ssrc_changes=1)


def test_pcma_path() -> None:
    n = RATE
    signal = tone(1000.0, n)
    rec = StereoRecorder(left=PCMA, right=PCMU)
    feed_all(
        rec,
        interleave(
            packetise(Channel.LEFT, alaw_encode(signal), pt=8, ssrc=1),
            packetise(Channel.RIGHT, ulaw_encode(tone(440.0, n)), ssrc=2),
        ),
    )
    out = rec.drain(n)
    np.testing.assert_array_equal(out[:, 0], alaw_decode(alaw_encode(signal)))
    assert peak_hz(out[:, 1]) == 440.0


@pytest.mark.parametrize(
    ("media", "pt", "field"),
    [
        (PCMU, 8, "other_dropped"),
        (PCMU, 13, "other_dropped"),
        (PCMU, 9, "other_dropped"),
        (PCMU, EVENT_PT, "event_packets"),
    ],
)
def test_packets_not_recorded_are_counted(media: MediaFormat, pt: int, field: str) -> None:
    rec = StereoRecorder(left=media, right=media)
    rec.feed(Channel.RIGHT, pt, 1, 0, 5, b"\x05\x8a\x01\x40", 0)
    assert rec.stats(Channel.RIGHT) == stats(packets_in=1, **{field: 1})
    assert np.count_nonzero(rec.drain(FRAME)) == 0


@pytest.mark.parametrize("mask_events", [False, True])
def test_telephone_events_are_excluded_and_optionally_masked(mask_events: bool) -> None:
    codes = b"".join(bytes([c]) * FRAME for c in CODES)
    audio = packetise(Channel.LEFT, codes, ssrc=7)
    # RFC 4733 packets on the same SSRC, sequence numbers interleaved, event started at packet 3.
    events = [
        Pkt(
            Channel.LEFT,
            EVENT_PT,
            3000 + i,
            audio[3].ts,
            7,
            bytes([5, 0x0A]) + (FRAME * (i + 1)).to_bytes(2, "big"),
            None,
        )
        for i in range(3)
    ]
    rec = StereoRecorder(left=PCMU, right=PCMU, mask_telephone_events=mask_events)
    feed_all(rec, [*audio[:4], events[0], audio[4], events[1], audio[5], events[2], *audio[6:]])
    left = rec.drain(len(CODES) * FRAME)[:, 0]
    masked = {3, 4, 5} if mask_events else set()
    np.testing.assert_array_equal(left, expected_left(set(ALL) - masked))
    assert rec.stats(Channel.LEFT) == stats(packets_in=15, event_packets=3)


def key_held_in_place_of_audio(*, lose: int | None = None) -> tuple[list[Pkt], list[Pkt], list[Pkt]]:
    # As most phones send a key press (RFC 4733 §2.5.1): audio packets 20 to 31 replaced by the
    # event's packets in the same stream (its sequence numbers, RFC 3550 §5.1), the key held for
    # 200 ms and its end sent three times; the audio goes on with its own timestamps. `lose`
    # drops the packet of that sequence number. Returns the audio before, the events, the audio after.
    audio = packetise(Channel.LEFT, ulaw_encode(tone(1000.0, 2 * RATE)), ssrc=7, seq0=65530)
    events = []
    for k in range(12):
        held = FRAME * min(k + 1, 10)
        end = 0x80 if k >= 9 else 0
        payload = bytes([1, end | 0x0A]) + held.to_bytes(2, "big")
        events.append(dataclasses.replace(audio[20 + k], pt=EVENT_PT, ts=audio[20].ts, payload=payload))

    def kept(packets: list[Pkt]) -> list[Pkt]:
        return [p for p in packets if p.seq != lose]

    return kept(audio[:20]), kept(events), kept(audio[32:])


def as_wire(packets: list[Pkt]) -> tuple[list[bytes], npt.NDArray[np.int64]]:
    # Whole RTP packets and their arrivals, as a flush hands them to the recorder.
    wired = [wire(p.pt, p.seq, p.ts, p.ssrc, p.payload) for p in packets]
    return wired, np.asarray([p.arrival for p in packets], dtype=np.int64)


@pytest.mark.parametrize("mask_events", [False, True])
@pytest.mark.parametrize("how", ["feed", "one batch", "audio after in the next flush"])
def test_a_key_held_in_place_of_audio_loses_no_audio(how: str, mask_events: bool) -> None:
    before, events, after = key_held_in_place_of_audio()
    rec = StereoRecorder(left=PCMU, right=PCMU, mask_telephone_events=mask_events)
    if how == "feed":
        feed_all(rec, [*before, *events, *after])
    elif how == "one batch":
        rec.feed_batch(Channel.LEFT, *as_wire([*before, *events, *after]))
    else:  # as `flush_together` does: the steady bulk path first, which leaves this to feed_batch
        rec.feed_batch(Channel.LEFT, *as_wire([*before, *events]))
        packets, arrivals = as_wire(after)
        if not feed_steady([(rec, Channel.LEFT, packets, arrivals)])[0]:
            rec.feed_batch(Channel.LEFT, packets, arrivals)
    left = rec.drain(100 * FRAME)[:, 0]
    expected = ulaw_decode(ulaw_encode(tone(1000.0, 2 * RATE)))[: 100 * FRAME].copy()
    expected[20 * FRAME : 32 * FRAME] = 0  # no audio came for the key's time
    np.testing.assert_array_equal(left, expected)
    assert rec.stats(Channel.LEFT) == stats(packets_in=100, event_packets=12, gap_samples=12 * FRAME)


def test_events_sent_beside_audio_in_its_numbering_lose_nothing() -> None:
    # A sender that goes on sending audio while a key is held, numbering both in one sequence.
    audio = packetise(Channel.LEFT, ulaw_encode(tone(1000.0, RATE)), ssrc=7)
    event = dataclasses.replace(audio[20], pt=EVENT_PT, payload=bytes([5, 0x0A, 0, 160]))
    sent = [*audio[:20], *[p for k in range(20, 30) for p in (event, audio[k])], *audio[30:]]
    rec = StereoRecorder(left=PCMU, right=PCMU)
    feed_all(rec, [dataclasses.replace(p, seq=k) for k, p in enumerate(sent)])
    np.testing.assert_array_equal(rec.drain(RATE)[:, 0], ulaw_decode(ulaw_encode(tone(1000.0, RATE))))
    assert rec.stats(Channel.LEFT) == stats(packets_in=60, event_packets=10)


@pytest.mark.parametrize("lost", [19, 20, 25, 31, 32])
def test_a_packet_lost_around_a_key_held_counts_as_lost(lost: int) -> None:
    # Before the key, in it or after it: a missing number may have been audio.
    before, events, after = key_held_in_place_of_audio(lose=(65530 + lost) & 0xFFFF)
    rec = StereoRecorder(left=PCMU, right=PCMU)
    feed_all(rec, [*before, *events, *after])
    rec.drain(100 * FRAME)
    assert rec.stats(Channel.LEFT).lost_samples == FRAME


# -- start gate, pause, mask ----------------------------------------------------------------


def reference(n: int) -> tuple[list[Pkt], npt.NDArray[np.int16]]:
    packets = interleave(
        packetise(Channel.LEFT, ulaw_encode(tone(1000.0, n)), ssrc=1),
        packetise(Channel.RIGHT, ulaw_encode(tone(440.0, n)), ssrc=2),
    )
    rec = StereoRecorder(left=PCMU, right=PCMU)
    feed_all(rec, packets)
    return packets, rec.drain(n)


@pytest.mark.parametrize(("start_at", "gated"), [(0, 0), (4000, 25), (4100, 25), (159, 0), (160, 1)])
def test_start_gate_drops_audio_before_start(start_at: int, gated: int) -> None:
    n = 2 * RATE
    packets, full = reference(n)
    rec = StereoRecorder(left=PCMU, right=PCMU, start_at=start_at)
    feed_all(rec, packets)
    out = rec.drain(n)
    assert out.shape == (n - start_at, 2)
    np.testing.assert_array_equal(out, full[start_at:])
    assert rec.stats(Channel.LEFT).gated == gated
    assert rec.stats(Channel.RIGHT).gated == gated


@pytest.mark.parametrize(
    ("pause_at", "resume_at", "drain_steps"),
    [
        (8123, 16077, [24000]),
        (8000, 16000, [8000, 16000, 24000]),
        (100, 23999, [5000, 24000]),
        (5, 6, [24000]),
    ],
)
def test_pause_writes_silence_of_exact_length(pause_at: int, resume_at: int, drain_steps: list[int]) -> None:
    n = 3 * RATE
    packets, full = reference(n)
    rec = StereoRecorder(left=PCMU, right=PCMU)
    feed_all(rec, packets)
    parts = []
    for step in drain_steps:
        if rec.drained <= pause_at < step:
            rec.pause("hold", at=pause_at)
        if rec.drained <= resume_at < step:
            rec.resume(at=resume_at)
        parts.append(rec.drain(step))
    out = np.concatenate(parts)
    expected = full.copy()
    expected[pause_at:resume_at] = 0
    np.testing.assert_array_equal(out, expected)
    assert rec.pauses == (PauseInterval(start=pause_at, end=resume_at, reason="hold"),)
    assert not rec.paused


def test_open_pause_silences_until_resumed_and_misuse_raises() -> None:
    n = 2 * RATE
    packets, full = reference(n)
    rec = StereoRecorder(left=PCMU, right=PCMU)
    feed_all(rec, packets)
    rec.pause("pci", at=12000)
    with pytest.raises(ValueError, match="already paused"):
        rec.pause("pci", at=13000)
    out = rec.drain(n)
    np.testing.assert_array_equal(out[:12000], full[:12000])
    assert np.count_nonzero(out[12000:]) == 0
    assert rec.pauses == (PauseInterval(start=12000, end=None, reason="pci"),)
    assert rec.resume(at=n + 5) == PauseInterval(start=12000, end=n + 5, reason="pci")
    with pytest.raises(ValueError, match="not paused"):
        rec.resume(at=n + 6)


@pytest.mark.parametrize(
    ("start", "stop", "left", "right"),
    [(1000, 1411, True, True), (1000, 1411, True, False), (7990, 8010, False, True), (0, 1, True, True)],
)
def test_mask_silences_exactly_the_span(start: int, stop: int, left: bool, right: bool) -> None:
    n = 2 * RATE
    packets, full = reference(n)
    rec = StereoRecorder(left=PCMU, right=PCMU)
    feed_all(rec, packets)
    assert rec.mask(start, stop, left=left, right=right)
    out = np.concatenate([rec.drain(RATE), rec.drain(n)])
    expected = full.copy()
    expected[start:stop, 0] = 0 if left else expected[start:stop, 0]
    expected[start:stop, 1] = 0 if right else expected[start:stop, 1]
    np.testing.assert_array_equal(out, expected)
    assert not rec.mask(RATE - 10, RATE + 10)  # partly drained already


def test_mask_tone_span_uses_the_channels_timestamps() -> None:
    n = 2 * RATE
    packets, full = reference(n)
    rec = StereoRecorder(left=PCMU, right=PCMU)
    assert not rec.mask_tone_span(Channel.LEFT, ToneSpan(rtp_timestamp=0, duration=10))
    feed_all(rec, packets)
    ts0 = packets[0].ts
    assert rec.mask_tone_span(Channel.LEFT, ToneSpan(rtp_timestamp=ts0 + 3000, duration=700), both=False)
    out = rec.drain(n)
    expected = full.copy()
    expected[3000:3700, 0] = 0
    np.testing.assert_array_equal(out, expected)


# -- drift -----------------------------------------------------------------------------------


def beeps(seconds: int, rate: float) -> npt.NDArray[np.int16]:
    # 40 ms of 1 kHz at the start of every second of the source's own clock.
    signal = np.zeros(round(seconds * rate), dtype=np.int16)
    burst = tone(1000.0, round(0.04 * rate), amplitude=10000.0, rate=rate)
    for s in range(1, seconds):
        at = round(s * rate)
        signal[at : at + len(burst)] = burst
    return signal


def onsets(channel: npt.NDArray[np.int16]) -> npt.NDArray[np.int64]:
    # First loud sample of each beep; a beep split by inserted silence still counts once.
    loud = np.flatnonzero(np.abs(channel.astype(np.int32)) > 2000)
    keep = np.concatenate(([True], np.diff(loud) > RATE // 2))
    return loud[keep]


@pytest.mark.parametrize("fast", [Channel.LEFT, Channel.RIGHT])
@pytest.mark.parametrize("ratio", [1.01, 0.99])
def test_drift_stays_aligned_within_tolerance(fast: Channel, ratio: float) -> None:
    seconds = 60
    n = seconds * RATE
    # The drifting side's clock makes `ratio` times as many samples per common second.
    drifting = packetise(fast, ulaw_encode(beeps(seconds, RATE * ratio)), ssrc=1)
    steady = packetise(Channel(1 - fast), ulaw_encode(beeps(seconds, RATE)), ssrc=2)
    drifting = [
        Pkt(p.channel, p.pt, p.seq, p.ts, p.ssrc, p.payload, round(k * FRAME / ratio))
        for k, p in enumerate(drifting)
    ]
    merged = sorted(drifting + steady, key=lambda p: (p.arrival, p.channel))
    rec = StereoRecorder(left=PCMU, right=PCMU)
    feed_all(rec, merged)
    out = rec.drain(n)
    assert out.shape == (n, 2)
    left, right = onsets(out[:, 0]), onsets(out[:, 1])
    assert len(left) == len(right) == seconds - 1
    skew = np.abs(left - right)
    limit = DEFAULT_DRIFT_LIMIT_SAMPLES
    block_drift = round(DRIFT_BLOCK_PACKETS * FRAME * 0.01)  # 40 samples
    # Running ahead, a channel is let run three times the limit, and measured each block; falling
    # behind, twice the limit, measured over the window (its oldest block may lag).
    allowed = 3 * limit + block_drift if ratio > 1 else 2 * limit + DRIFT_WINDOW_BLOCKS * block_drift
    assert int(skew.max()) <= allowed
    st_ = rec.stats(fast)
    # 1 % of 60 s is 4800 samples, all corrected but what is still allowed at the end; each
    # correction moves at least the limit.
    corrected = st_.drift_dropped_samples if ratio > 1 else st_.drift_silence_samples
    assert 4800 - allowed <= corrected <= 4800
    assert 4800 // allowed <= st_.reanchors <= 4800 // limit
    assert rec.stats(Channel(1 - fast)).reanchors == 0


def test_network_jitter_does_not_reanchor() -> None:
    # Packets arrive up to 60 ms late and out of order; a wider reorder window takes them all.
    n = 20 * RATE
    rng = np.random.default_rng(7)
    packets = packetise(Channel.LEFT, ulaw_encode(tone(1000.0, n)), ssrc=1)
    jittered = [
        Pkt(p.channel, p.pt, p.seq, p.ts, p.ssrc, p.payload, k * FRAME + int(rng.integers(0, 480)))
        for k, p in enumerate(packets)
    ]
    # The anchor packet on time: jitter after it only ever adds delay, which is not drift.
    jittered[0] = packets[0]
    rec = StereoRecorder(left=PCMU, right=PCMU, reorder_window_samples=800)
    feed_all(rec, sorted(jittered, key=lambda p: p.arrival or 0))
    out = rec.drain(n)
    assert rec.stats(Channel.LEFT).reanchors == 0
    assert rec.stats(Channel.LEFT).late_dropped == 0
    np.testing.assert_array_equal(out[:, 0], ulaw_decode(ulaw_encode(tone(1000.0, n))))


def recorded_whole(arrivals: list[int], *, batches: bool) -> tuple[StereoRecorder, npt.NDArray[np.int16]]:
    """A 20 s tone on the left, packet k arriving at ``arrivals[k]``, fed in arrival order packet
    by packet or a second's packets at a time (``feed_batch``, the flush's way). Asserts that
    every packet is in the output where its timestamp puts it (in the timeline its earliest
    arrival anchored) and returns the recorder and the left channel."""
    n = 20 * RATE
    codes = ulaw_encode(tone(1000.0, n))
    packets = packetise(Channel.LEFT, codes, ssrc=1)
    order = sorted(range(len(packets)), key=lambda k: (arrivals[k], k))
    rec = StereoRecorder(left=PCMU, right=PCMU)
    if batches:
        wires = [wire(0, packets[k].seq, packets[k].ts, 1, packets[k].payload) for k in order]
        for second in range(0, len(order), 50):
            chunk = order[second : second + 50]
            rec.feed_batch(Channel.LEFT, wires[second : second + 50], [arrivals[k] for k in chunk])
    else:
        feed_all(rec, [dataclasses.replace(packets[k], arrival=arrivals[k]) for k in order])
    first = order[0]
    base = arrivals[first] - first * FRAME
    out = rec.drain(base + n + RATE)[:, 0]
    np.testing.assert_array_equal(out[base : base + n], ulaw_decode(codes))
    assert rec.stats(Channel.LEFT).late_dropped == 0
    return rec, out


@pytest.mark.parametrize("batches", [False, True])
def test_a_sender_that_reorders_within_three_packets_loses_nothing(batches: bool) -> None:
    # Each group of three goes out permuted in the group's three 20 ms slots: a packet comes up
    # to 40 ms early against the first, which is not drift.
    rng = np.random.default_rng(11)
    arrivals = [0] * (20 * RATE // FRAME)
    for group in range(0, len(arrivals), 3):
        slots = rng.permutation(3)
        for k, slot in zip(range(group, min(group + 3, len(arrivals))), slots, strict=False):
            arrivals[k] = RATE + (group + int(slot)) * FRAME
    rec, _ = recorded_whole(arrivals, batches=batches)
    assert rec.stats(Channel.LEFT).reanchors == 0


@pytest.mark.parametrize("batches", [False, True])
@pytest.mark.parametrize("phase", [0.0, 0.25, 0.5, 0.75])
def test_delay_that_wanders_by_100_ms_is_not_taken_for_drift(phase: float, batches: bool) -> None:
    # 100 ms ± 50 ms of delay, following a 3 s sine, starting anywhere on it (the anchoring
    # packet may be the most delayed of all): no packet reorders, none is lost, none is moved.
    count = 20 * RATE // FRAME
    delays = 800 + 400 * np.sin(2 * np.pi * (np.arange(count) * FRAME / (3 * RATE) + phase))
    arrivals = [RATE + k * FRAME + int(delay) for k, delay in enumerate(delays)]
    rec, _ = recorded_whole(arrivals, batches=batches)
    assert rec.stats(Channel.LEFT).reanchors == 0


@pytest.mark.parametrize("batches", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_random_jitter_of_50_to_150_ms_loses_nothing(seed: int, batches: bool) -> None:
    # Each packet delayed independently: they reorder by up to five places, and the first to
    # arrive may come at any delay.
    rng = np.random.default_rng(seed)
    count = 20 * RATE // FRAME
    arrivals = [RATE + k * FRAME + int(rng.integers(400, 1200)) for k in range(count)]
    rec, _ = recorded_whole(arrivals, batches=batches)
    assert rec.stats(Channel.LEFT).reanchors == 0


@pytest.mark.parametrize("batches", [False, True])
@pytest.mark.parametrize("jump", [2 * RATE, 5 * RATE, 9 * RATE, -3 * RATE])
def test_a_timestamp_jump_under_ten_seconds_in_a_stream_that_keeps_sending_loses_nothing(
    jump: int, batches: bool
) -> None:
    # A phone restarts its media clock (same SSRC, sequence going on) at packet 317: the packets
    # after the jump follow those before it, as they came, with nothing dropped or left out.
    n = 20 * RATE
    codes = ulaw_encode(tone(1000.0, n))
    packets = packetise(Channel.LEFT, codes, ssrc=1, arrival0=RATE)
    jumped = [
        dataclasses.replace(p, ts=(p.ts + jump) & 0xFFFFFFFF) if k >= 317 else p
        for k, p in enumerate(packets)
    ]
    rec = StereoRecorder(left=PCMU, right=PCMU)
    if batches:
        for second in range(0, len(jumped), 50):
            chunk = jumped[second : second + 50]
            wires = [wire(0, p.seq, p.ts, 1, p.payload) for p in chunk]
            rec.feed_batch(Channel.LEFT, wires, [p.arrival for p in chunk])
    else:
        feed_all(rec, jumped)
    out = rec.drain(RATE + n + RATE)[:, 0]
    np.testing.assert_array_equal(out[RATE : RATE + n], ulaw_decode(codes))
    assert rec.stats(Channel.LEFT).reanchors == 1


# -- impairments as the service's flush meets them ----------------------------------------------


def noise_packets(channel: Channel, seconds: int, *, ssrc: int, seed: int) -> list[Pkt]:
    # Random codes: every packet's audio is unique, so a misplaced one cannot pass for another.
    codes = np.random.default_rng(seed).integers(0, 256, seconds * RATE, dtype=np.uint8).tobytes()
    return packetise(channel, codes, ssrc=ssrc, seq0=4000 + seed, ts0=90_000 * seed)


def recorded_as_flushed(
    left: list[Pkt], right: list[Pkt], *, seconds: int, batches: bool
) -> tuple[StereoRecorder, npt.NDArray[np.int16]]:
    """Both channels fed as the service does: each second, the packets that arrived in it (by
    ``feed_batch``, or packet by packet), then a drain up to 200 ms before the second's end."""
    rec = StereoRecorder(left=PCMU, right=PCMU)
    held: list[Pkt] = []
    parts = []

    def flush(up_to: int) -> None:
        for channel in Channel:
            mine = [p for p in held if p.channel is channel]
            if batches and mine:
                wires = [wire(p.pt, p.seq, p.ts, p.ssrc, p.payload) for p in mine]
                rec.feed_batch(channel, wires, [p.arrival for p in mine])
            elif mine:
                feed_all(rec, mine)
        held.clear()
        parts.append(rec.drain(up_to))

    second = RATE
    for p in sorted(left + right, key=lambda p: (p.arrival or 0, p.channel)):
        while (p.arrival or 0) >= second:
            flush(second - 1600)
            second += RATE
        held.append(p)
    flush((seconds + 2) * RATE)
    return rec, np.concatenate(parts)


def channel_with(
    packets: list[Pkt], *, at: Callable[[int], int | None], length: int
) -> npt.NDArray[np.int16]:
    # The channel expected: packet k decoded at position at(k), or nowhere when that is None.
    out = np.zeros(length, dtype=np.int16)
    for k, p in enumerate(packets):
        place = at(k)
        if place is not None:
            out[place : place + len(p.payload)] = ulaw_decode(p.payload)
    return out


def held_until(packets: list[Pkt], start: int, stop: int) -> list[Pkt]:
    # The packets sent from `start` up to `stop` (positions) held, then delivered in one burst.
    return [dataclasses.replace(p, arrival=stop) if start <= (p.arrival or 0) < stop else p for p in packets]


@pytest.mark.parametrize("batches", [True, False])
@pytest.mark.parametrize(
    ("stall_ms", "drained_first"),
    [(300, 0), (900, 0), (1500, 40), (2500, 90), (4000, 190)],
)
def test_a_stall_keeps_the_channel_in_step_and_drops_only_what_was_drained(
    stall_ms: int, drained_first: int, batches: bool
) -> None:
    # The outside party's packets from 6 s on are held for `stall_ms`, then come in one burst
    # (a Wi-Fi or LTE stall): same SSRC, sequence and timestamps going on. Those whose place was
    # drained before the burst came are late; the rest, and all after, sit where their
    # timestamps say, in step with the PBX side: the stall is not a new timeline, nor drift.
    seconds = 24
    left = noise_packets(Channel.LEFT, seconds, ssrc=1, seed=1)
    right = noise_packets(Channel.RIGHT, seconds, ssrc=2, seed=2)
    stall_start = 6 * RATE
    stalled = held_until(left, stall_start, stall_start + stall_ms * RATE // 1000)
    rec, out = recorded_as_flushed(stalled, right, seconds=seconds, batches=batches)
    length = (seconds + 2) * RATE
    first_late = stall_start // FRAME
    expected = channel_with(
        left, at=lambda k: None if first_late <= k < first_late + drained_first else k * FRAME, length=length
    )
    np.testing.assert_array_equal(out[:, 0], expected)
    np.testing.assert_array_equal(out[:, 1], channel_with(right, at=lambda k: k * FRAME, length=length))
    assert rec.stats(Channel.LEFT) == stats(
        packets_in=len(left), late_dropped=drained_first, late_dropped_samples=drained_first * FRAME
    )


@pytest.mark.parametrize("batches", [True, False])
def test_a_path_delay_grown_for_good_by_seconds_starts_a_new_timeline(batches: bool) -> None:
    # From 6 s on every packet comes 1.5 s late, at the stream's own pace: no backlog catching
    # up, so after the reorder window of such packets the channel is anchored anew at arrival.
    seconds = 12
    delay = 3 * RATE // 2
    left = noise_packets(Channel.LEFT, seconds, ssrc=1, seed=1)
    delayed = [
        dataclasses.replace(p, arrival=(p.arrival or 0) + delay) if k >= 300 else p
        for k, p in enumerate(left)
    ]
    right = noise_packets(Channel.RIGHT, seconds, ssrc=2, seed=2)
    rec, out = recorded_as_flushed(delayed, right, seconds=seconds, batches=batches)
    # Packets 300-308 came within the window, kept their places, which were drained: late.
    reanchored = 300 + DEFAULT_REORDER_WINDOW_SAMPLES // FRAME + 1
    expected = channel_with(
        left,
        at=lambda k: k * FRAME if k < 300 else None if k < reanchored else k * FRAME + delay,
        length=(seconds + 2) * RATE,
    )
    np.testing.assert_array_equal(out[:, 0], expected)
    left_stats = rec.stats(Channel.LEFT)
    assert (left_stats.late_dropped, left_stats.reanchors) == (reanchored - 300, 1)
    assert left_stats.drift_silence_samples == left_stats.drift_dropped_samples == 0


def left_changed_at(change: str, packets: list[Pkt], at: int) -> tuple[list[Pkt], set[int]]:
    """The outside party's packets with `change` from packet `at` on, and which were not sent.
    The sender's clock keeps time: packet k, when sent, goes out at k * FRAME."""
    unsent: set[int] = set()
    out = list(packets)
    for k in range(at, len(out)):
        p = out[k]
        if change.startswith("timestamp "):  # a new source behind the SSRC, with the marker bit
            out[k] = dataclasses.replace(p, ts=(p.ts + int(change.split()[1]) * RATE // 1000) & 0xFFFFFFFF)
        elif change == "new SSRC":
            out[k] = dataclasses.replace(p, ssrc=0xFEED, seq=(p.seq + 20_000) & 0xFFFF, ts=p.ts + 3_000_000)
    if change.startswith("silence "):  # RFC 3551 §4.1: nothing sent, the sequence goes on
        count = int(change.split()[1]) * RATE // 1000 // FRAME
        unsent = set(range(at, at + count))
        out = [
            dataclasses.replace(p, seq=(p.seq - count) & 0xFFFF) if k >= at + count else p
            for k, p in enumerate(out)
        ]
    if change == "reorder":  # eight packets come in reverse order, the first 140 ms late
        last = at + 7
        out[at : last + 1] = [
            dataclasses.replace(out[k], arrival=last * FRAME + (last - k)) for k in range(at, last + 1)
        ]
    return [p for k, p in enumerate(out) if k not in unsent], unsent


@pytest.mark.parametrize("batches", [True, False])
@pytest.mark.parametrize(
    ("change", "reanchors"),
    [
        ("timestamp +300", 1),
        ("timestamp +500", 1),
        ("timestamp +900", 1),
        ("timestamp -500", 1),
        ("timestamp -100", 1),
        ("timestamp +10000", 1),
        ("new SSRC", 1),
        ("silence 2000", 0),
        ("silence 500", 0),
        ("reorder", 0),
    ],
)
def test_a_discontinuity_leaves_every_packet_where_the_sender_sent_it(
    change: str, reanchors: int, batches: bool
) -> None:
    # From 6 s on, the outside party's stream changes while the PBX side's goes on. A timestamp
    # jump while packets keep coming at their pace (a media server switching sources behind one
    # SSRC) continues the audio as it arrives, as a new SSRC does; silence suppression keeps its
    # pause; reordering within the window is undone. Nothing is lost, overwritten or moved.
    seconds = 16
    left = noise_packets(Channel.LEFT, seconds, ssrc=1, seed=1)
    right = noise_packets(Channel.RIGHT, seconds, ssrc=2, seed=2)
    changed, unsent = left_changed_at(change, left, 300)
    rec, out = recorded_as_flushed(changed, right, seconds=seconds, batches=batches)
    length = (seconds + 2) * RATE
    expected = channel_with(left, at=lambda k: None if k in unsent else k * FRAME, length=length)
    np.testing.assert_array_equal(out[:, 0], expected)
    np.testing.assert_array_equal(out[:, 1], channel_with(right, at=lambda k: k * FRAME, length=length))
    left_stats = rec.stats(Channel.LEFT)
    assert (left_stats.late_dropped, left_stats.reanchors) == (0, reanchors)
    assert left_stats.timestamp_jumps == (1 if change.startswith("timestamp ") else 0)
    assert left_stats.lost_samples == 0
    assert left_stats.drift_silence_samples == left_stats.drift_dropped_samples == 0


# -- properties and validation ---------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=1, max_value=12 * FRAME), max_size=6),
    swaps=st.lists(st.integers(min_value=0, max_value=10), max_size=4),
)
def test_any_drain_chunking_and_adjacent_swaps_give_the_same_audio(cuts: list[int], swaps: list[int]) -> None:
    order = list(ALL)
    swapped: set[int] = set()
    for i in swaps:
        if {i, i + 1} & swapped:
            continue  # chained swaps would carry a packet beyond the reorder window (3 packets)
        swapped |= {i, i + 1}
        order[i], order[i + 1] = order[i + 1], order[i]
    packets = packetise(Channel.LEFT, b"".join(bytes([c]) * FRAME for c in CODES))
    rec = StereoRecorder(left=PCMU, right=PCMU)
    feed_all(rec, [packets[k] for k in order])
    parts = [rec.drain(c) for c in sorted(cuts)] + [rec.drain(12 * FRAME)]
    out = np.concatenate(parts)
    assert out.shape == (12 * FRAME, 2)
    np.testing.assert_array_equal(out[:, 0], expected_left(set(ALL)))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"audio_payload_types": frozenset({18})},  # G.729 is not recorded
        {"audio_payload_types": frozenset({0, 9, 3})},
        {"audio_payload_types": frozenset({9}), "event_payload_type": 9},
        {"audio_payload_types": frozenset({0}), "event_payload_type": 0},
        {"event_payload_type": 128},
    ],
)
def test_media_format_rejects_what_it_cannot_record(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        MediaFormat(**kwargs)  # type: ignore[arg-type]


# -- G.722: wideband recording ---------------------------------------------------------------

WIDE = 16000
G722_PT = 9
G722_FORMAT = MediaFormat(audio_payload_types=frozenset({G722_PT}), event_payload_type=EVENT_PT)
NOISE = np.random.default_rng(3).normal(0.0, 3000.0, 2 * len(CODES) * FRAME).round().astype(np.int16)
LONG_NOISE = np.random.default_rng(4).normal(0.0, 3000.0, 2 * 3 * len(CODES) * FRAME).round().astype(np.int16)


def g722_encode(signal: npt.NDArray[np.int16]) -> bytes:
    """A new stream: a fresh encoder, 16 kHz in, one byte per two samples out."""
    return bytes(G722(WIDE, 64000).encode(signal))


def g722_decode(codes: bytes, *, rate: int = WIDE) -> npt.NDArray[np.int16]:
    """The direct decode the recorder must reproduce: a fresh decoder over the whole stream."""
    return np.frombuffer(G722(rate, 64000).decode(codes), dtype=np.int16).copy()


G722_CODES = g722_encode(NOISE)  # distinct content in every packet


def expected_g722_left(present: set[int]) -> npt.NDArray[np.int16]:
    # One decoder fed the packets that arrived, in timeline order; lost ones are silence.
    decoder = G722(WIDE, 64000)
    out = np.zeros(2 * len(CODES) * FRAME, dtype=np.int16)
    for k in sorted(present):
        pcm = decoder.decode(G722_CODES[k * FRAME : (k + 1) * FRAME])
        out[2 * k * FRAME : 2 * (k + 1) * FRAME] = np.frombuffer(pcm, dtype=np.int16)
    return out


def sine_snr_db(signal: npt.NDArray[np.int16], freq_hz: float, rate: int) -> float:
    # Least-squares fit of a sine at freq_hz (any phase); the rest is noise and distortion.
    t = np.arange(len(signal)) / rate
    basis = np.column_stack([np.sin(2 * np.pi * freq_hz * t), np.cos(2 * np.pi * freq_hz * t)])
    x = signal.astype(np.float64)
    fit = basis @ np.linalg.lstsq(basis, x, rcond=None)[0]
    return float(10 * np.log10(np.sum(fit**2) / np.sum((x - fit) ** 2)))


@pytest.mark.parametrize(
    ("left", "right", "rate", "rows"),
    [
        (PCMU, PCMU, 8000, 1),
        (PCMU, PCMA, 8000, 1),
        (G722_FORMAT, G722_FORMAT, 16000, 2),
        (G722_FORMAT, PCMU, 16000, 2),
        (PCMA, G722_FORMAT, 16000, 2),
        (MediaFormat(audio_payload_types=frozenset({0, 9})), PCMU, 16000, 2),
    ],
)
def test_output_rate_is_wideband_when_g722_is_negotiated(
    left: MediaFormat, right: MediaFormat, rate: int, rows: int
) -> None:
    rec = StereoRecorder(left=left, right=right)
    assert rec.sample_rate_hz == rate
    assert rec.rows_per_unit == rows
    assert rec.drain(FRAME).shape == (rows * FRAME, 2)
    rec.set_format(Channel.LEFT, PCMU)  # a re-INVITE does not change the rate of a recording
    assert rec.sample_rate_hz == rate


@pytest.mark.parametrize(
    ("left_hz", "right_hz", "seconds"),
    [(1000.0, 440.0, 2), (440.0, 1000.0, 1), (1000.0, 2500.0, 3)],
)
def test_g722_tones_round_trip_at_16_khz(left_hz: float, right_hz: float, seconds: int) -> None:
    units = seconds * RATE  # G.722 timestamps run at 8000 Hz: one unit per payload byte
    left_codes = g722_encode(tone(left_hz, 2 * units, rate=WIDE))
    right_codes = g722_encode(tone(right_hz, 2 * units, rate=WIDE))
    rec = StereoRecorder(left=G722_FORMAT, right=G722_FORMAT)
    feed_all(
        rec,
        interleave(
            packetise(Channel.LEFT, left_codes, pt=G722_PT, ssrc=1),
            packetise(Channel.RIGHT, right_codes, pt=G722_PT, ssrc=2, ts0=7, seq0=9),
        ),
    )
    out = rec.drain(units)
    assert out.shape == (2 * units, 2)
    assert rec.drained == units
    np.testing.assert_array_equal(out[:, 0], g722_decode(left_codes))
    np.testing.assert_array_equal(out[:, 1], g722_decode(right_codes))
    assert peak_hz(out[:, 0], WIDE) == left_hz
    assert peak_hz(out[:, 1], WIDE) == right_hz
    settled = slice(WIDE // 10, None)  # past the ADPCM's adaptation
    assert sine_snr_db(out[settled, 0], left_hz, WIDE) > 35.0
    assert sine_snr_db(out[settled, 1], right_hz, WIDE) > 35.0
    assert rec.stats(Channel.LEFT) == stats(packets_in=units // FRAME)
    assert len(rec.drain_bytes(units + FRAME)) == 2 * FRAME * 4  # s16le stereo: 4 bytes a row


def one_g722_channel(order: list[int], *, arrival: bool) -> tuple[StereoRecorder, npt.NDArray[np.int16]]:
    packets = packetise(Channel.LEFT, G722_CODES, pt=G722_PT)
    rec = StereoRecorder(left=G722_FORMAT, right=G722_FORMAT)
    for i, k in enumerate(order):
        p = packets[k]
        rec.feed(p.channel, p.pt, p.seq, p.ts, p.ssrc, p.payload, i * FRAME if arrival else None)
    out = rec.drain(len(CODES) * FRAME)
    assert out.shape == (2 * len(CODES) * FRAME, 2)
    return rec, out[:, 0]


@pytest.mark.parametrize("arrival", [True, False])
@pytest.mark.parametrize(("order", "present", "expected_stats"), REASSEMBLY_CASES)
def test_g722_reassembly_decodes_in_timeline_order(
    order: list[int], present: set[int], expected_stats: ChannelStats, arrival: bool
) -> None:
    # Loss leaves two rows of silence per unit and the decoder's state carries on over the gap.
    rec, left = one_g722_channel(order, arrival=arrival)
    np.testing.assert_array_equal(left, expected_g722_left(present))
    assert rec.stats(Channel.LEFT) == expected_stats


@pytest.mark.parametrize("arrival", [True, False])
@pytest.mark.parametrize(("seq1", "ts1"), [(5000, 777_777), (3, 2**32 - 100), (1005, 50_800)])
@pytest.mark.parametrize("cuts", [[], [3 * FRAME, 5 * FRAME + 80], [5 * FRAME], [6 * FRAME]])
def test_g722_ssrc_change_resets_the_decoder(arrival: bool, seq1: int, ts1: int, cuts: list[int]) -> None:
    first_codes = g722_encode(NOISE[: 2 * 5 * FRAME])
    second_codes = g722_encode(NOISE[2 * 5 * FRAME :])  # a new stream: its encoder starts afresh
    first = packetise(Channel.LEFT, first_codes, pt=G722_PT, ssrc=0xA)
    second = packetise(
        Channel.LEFT,
        second_codes,
        pt=G722_PT,
        ssrc=0xB,
        seq0=seq1,
        ts0=ts1,
        arrival0=5 * FRAME if arrival else None,
    )
    rec = StereoRecorder(left=G722_FORMAT, right=G722_FORMAT)
    feed_all(rec, first + second)
    out = np.concatenate([*(rec.drain(c) for c in cuts), rec.drain(len(CODES) * FRAME)])
    expected = np.concatenate([g722_decode(first_codes), g722_decode(second_codes)])
    np.testing.assert_array_equal(out[:, 0], expected)
    # Without the reset the second stream would decode differently.
    continued = np.frombuffer(G722(WIDE, 64000).decode(first_codes + second_codes), dtype=np.int16)
    assert not np.array_equal(continued, expected)
    assert rec.stats(Channel.LEFT) == stats(packets_in=12, reanchors=1, ssrc_changes=1)


@pytest.mark.parametrize(
    ("streams", "segments"),
    [
        pytest.param(
            [(5, 0), (5, 5 * FRAME + 100)],
            [(0, 5 * FRAME, 0), (1, 5 * FRAME, 5 * FRAME)],
            id="within-drift-limit-continues",
        ),
        pytest.param(
            [(5, 0), (5, 2 * FRAME)],
            [(0, 5 * FRAME, 0), (1, 5 * FRAME, 5 * FRAME)],
            id="early-within-the-ahead-limit-continues",
        ),
        pytest.param(
            [(10, 0), (5, 2 * FRAME)],
            [(0, 2 * FRAME, 0), (1, 5 * FRAME, 2 * FRAME)],
            id="far-behind-replaces-the-tail",
        ),
        pytest.param(
            [(5, 0), (5, 9 * FRAME)],
            [(0, 5 * FRAME, 0), (1, 5 * FRAME, 5 * FRAME)],
            id="late-within-the-behind-limit-continues",
        ),
        pytest.param(
            [(5, 0), (5, 10 * FRAME)],
            [(0, 5 * FRAME, 0), (1, 5 * FRAME, 10 * FRAME)],
            id="far-ahead-leaves-silence",
        ),
        pytest.param(
            [(5, 0), (8, 5 * FRAME), (5, 3 * FRAME)],
            [(0, 3 * FRAME, 0), (2, 5 * FRAME, 3 * FRAME)],
            id="third-far-behind-replaces-the-second",
        ),
    ],
)
@pytest.mark.parametrize("cuts", [[], [2 * FRAME + 1, 4 * FRAME], [7 * FRAME]])
def test_g722_new_ssrc_anchored_by_arrival_decodes_each_stream_from_reset(
    streams: list[tuple[int, int]], segments: list[tuple[int, int, int]], cuts: list[int]
) -> None:
    # streams: (packets, first arrival) per SSRC, fed in turn; segments: (stream, units, position)
    # of what survives, each stream decoded by a fresh decoder from its first byte.
    codes: list[bytes] = []
    packets: list[Pkt] = []
    for k, (count, arrival0) in enumerate(streams):
        offset = 2 * FRAME * sum(c for c, _ in streams[:k])
        codes.append(g722_encode(LONG_NOISE[offset : offset + 2 * count * FRAME]))
        packets += packetise(
            Channel.LEFT, codes[k], pt=G722_PT, ssrc=0xA + k, seq0=100 * k, ts0=10_000 * k, arrival0=arrival0
        )
    rec = StereoRecorder(left=G722_FORMAT, right=G722_FORMAT)
    feed_all(rec, packets)
    units = 16 * FRAME
    out = np.concatenate([*(rec.drain(c) for c in cuts), rec.drain(units)])
    expected = np.zeros(2 * units, dtype=np.int16)
    for stream, length, at in segments:
        expected[2 * at : 2 * (at + length)] = g722_decode(codes[stream])[: 2 * length]
    np.testing.assert_array_equal(out[:, 0], expected)


@settings(max_examples=60, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=1, max_value=12 * FRAME), max_size=6),
    swaps=st.lists(st.integers(min_value=0, max_value=10), max_size=4),
    lost=st.sets(st.integers(min_value=1, max_value=11), max_size=3),
)
def test_g722_any_drain_chunking_gives_the_same_audio(
    cuts: list[int], swaps: list[int], lost: set[int]
) -> None:
    order = list(ALL)
    swapped: set[int] = set()
    for i in swaps:
        if {i, i + 1} & swapped:
            continue  # chained swaps would carry a packet beyond the reorder window (3 packets)
        swapped |= {i, i + 1}
        order[i], order[i + 1] = order[i + 1], order[i]
    packets = packetise(Channel.LEFT, G722_CODES, pt=G722_PT)
    rec = StereoRecorder(left=G722_FORMAT, right=G722_FORMAT)
    feed_all(rec, [packets[k] for k in order if k not in lost])
    parts = [rec.drain(c) for c in sorted(cuts)] + [rec.drain(12 * FRAME)]
    out = np.concatenate(parts)
    assert out.shape == (2 * 12 * FRAME, 2)
    np.testing.assert_array_equal(out[:, 0], expected_g722_left(set(ALL) - lost))


def test_g711_in_a_wideband_recording_is_repeated_to_16_khz() -> None:
    # One leg on G.722, the other on PCMU (e.g. after a re-INVITE): both are recorded at 16 kHz.
    units = RATE
    wide_codes = g722_encode(tone(1000.0, 2 * units, rate=WIDE))
    narrow = tone(440.0, units)
    rec = StereoRecorder(left=G722_FORMAT, right=PCMU)
    feed_all(
        rec,
        interleave(
            packetise(Channel.LEFT, wide_codes, pt=G722_PT, ssrc=1),
            packetise(Channel.RIGHT, ulaw_encode(narrow), ssrc=2),
        ),
    )
    out = rec.drain(units)
    np.testing.assert_array_equal(out[:, 0], g722_decode(wide_codes))
    np.testing.assert_array_equal(out[:, 1], np.repeat(ulaw_decode(ulaw_encode(narrow)), 2))
    assert peak_hz(out[:, 1], WIDE) == 440.0


@pytest.mark.parametrize(("wideband", "rate"), [(False, RATE), (True, WIDE), (None, WIDE)])
def test_the_output_rate_can_be_chosen_apart_from_the_codecs_accepted(
    wideband: bool | None, rate: int
) -> None:
    # Every codec accepted from the start, the rate fixed by what was negotiated: a codec change
    # in the middle of one feed (µ-law, then A-law, then G.722) loses nothing.
    every = MediaFormat(audio_payload_types=RECORDED_PAYLOAD_TYPES, event_payload_type=EVENT_PT)
    rec = StereoRecorder(left=every, right=every, wideband=wideband)
    assert rec.sample_rate_hz == rate
    signal = tone(1000.0, 3 * RATE)
    wide = g722_encode(tone(1000.0, 2 * RATE, rate=WIDE))
    first, second = ulaw_encode(signal[:RATE]), alaw_encode(signal[RATE : 2 * RATE])
    packets = [
        *packetise(Channel.LEFT, first, pt=0),
        *packetise(Channel.LEFT, second, pt=8, seq0=1050, ts0=58_000, arrival0=RATE),
        *packetise(Channel.LEFT, wide, pt=G722_PT, seq0=1100, ts0=66_000, arrival0=2 * RATE),
    ]
    feed_all(rec, packets)
    out = rec.drain(3 * RATE)
    assert rec.stats(Channel.LEFT) == stats(packets_in=150)
    rows = rate // RATE
    np.testing.assert_array_equal(out[: rows * RATE, 0], np.repeat(ulaw_decode(first), rows))
    np.testing.assert_array_equal(out[rows * RATE : 2 * rows * RATE, 0], np.repeat(alaw_decode(second), rows))
    np.testing.assert_array_equal(out[2 * rows * RATE :, 0], g722_decode(wide, rate=rate))


def test_g722_in_a_narrowband_recording_keeps_its_lower_band() -> None:
    # The call began on PCMU (8 kHz recording); a re-INVITE moved the left leg to G.722.
    units = RATE
    codes = g722_encode(tone(1000.0, 2 * units, rate=WIDE))
    rec = StereoRecorder(left=PCMU, right=PCMU)
    rec.set_format(Channel.LEFT, G722_FORMAT)
    feed_all(rec, packetise(Channel.LEFT, codes, pt=G722_PT, ssrc=1))
    out = rec.drain(units)
    assert out.shape == (units, 2)
    np.testing.assert_array_equal(out[:, 0], g722_decode(codes, rate=RATE))
    assert peak_hz(out[:, 0]) == 1000.0
    assert sine_snr_db(out[RATE // 10 :, 0], 1000.0, RATE) > 30.0


def g722_reference(units: int, start_at: int) -> tuple[list[Pkt], npt.NDArray[np.int16]]:
    # Nothing before start_at is decoded either: the decoder starts cold there (and adapts).
    left = g722_encode(tone(1000.0, 2 * units, rate=WIDE))
    right = g722_encode(tone(440.0, 2 * units, rate=WIDE))
    packets = interleave(
        packetise(Channel.LEFT, left, pt=G722_PT, ssrc=1),
        packetise(Channel.RIGHT, right, pt=G722_PT, ssrc=2),
    )
    return packets, np.column_stack([g722_decode(left[start_at:]), g722_decode(right[start_at:])])


@pytest.mark.parametrize(
    ("start_at", "pause", "mask", "silent_left", "silent_right"),
    [
        pytest.param(0, (8123, 9077), None, [(8123, 9077)], [(8123, 9077)], id="pause"),
        pytest.param(0, None, (1000, 1411, True, False), [(1000, 1411)], [], id="mask-left"),
        pytest.param(0, None, (7990, 8010, True, True), [(7990, 8010)], [(7990, 8010)], id="mask-both"),
        pytest.param(4100, None, None, [], [], id="start-gate"),
        pytest.param(
            4100,
            (5000, 6000),
            (100, 4200, False, True),
            [(5000, 6000)],
            [(4100, 4200), (5000, 6000)],
            id="gate-pause-and-mask",
        ),
    ],
)
def test_g722_gate_pause_and_mask_are_in_units(
    start_at: int,
    pause: tuple[int, int] | None,
    mask: tuple[int, int, bool, bool] | None,
    silent_left: list[tuple[int, int]],
    silent_right: list[tuple[int, int]],
) -> None:
    units = 2 * RATE
    packets, expected = g722_reference(units, start_at)
    rec = StereoRecorder(left=G722_FORMAT, right=G722_FORMAT, start_at=start_at)
    feed_all(rec, packets)
    if mask is not None:
        rec.mask(mask[0], mask[1], left=mask[2], right=mask[3])
    parts = []
    for step in (RATE, units):
        if pause is not None and rec.drained <= pause[0] < step:
            rec.pause("hold", at=pause[0])
        if pause is not None and rec.drained <= pause[1] < step:
            rec.resume(at=pause[1])
        parts.append(rec.drain(step))
    out = np.concatenate(parts)
    for column, spans in ((0, silent_left), (1, silent_right)):
        for lo, hi in spans:  # units: two rows each
            expected[2 * (lo - start_at) : 2 * (hi - start_at), column] = 0
    assert out.shape == (2 * (units - start_at), 2)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("mask_events", [False, True])
def test_g722_telephone_events_are_excluded_and_optionally_masked(mask_events: bool) -> None:
    audio = packetise(Channel.LEFT, G722_CODES, pt=G722_PT, ssrc=7)
    events = [
        Pkt(
            Channel.LEFT,
            EVENT_PT,
            3000 + i,
            audio[3].ts,
            7,
            bytes([5, 0x0A]) + (FRAME * (i + 1)).to_bytes(2, "big"),
            None,
        )
        for i in range(3)
    ]
    rec = StereoRecorder(left=G722_FORMAT, right=G722_FORMAT, mask_telephone_events=mask_events)
    feed_all(rec, [*audio[:4], events[0], audio[4], events[1], audio[5], events[2], *audio[6:]])
    left = rec.drain(len(CODES) * FRAME)[:, 0]
    expected = expected_g722_left(set(ALL))
    if mask_events:
        expected[2 * 3 * FRAME : 2 * 6 * FRAME] = 0
    np.testing.assert_array_equal(left, expected)
    assert rec.stats(Channel.LEFT) == stats(packets_in=15, event_packets=3)


# -- feed_batch: whole packets in bulk, exactly as packet by packet ---------------------------

MAX_JUMP = 10 * RATE


def wire(
    pt: int,
    seq: int,
    ts: int,
    ssrc: int,
    payload: bytes,
    *,
    csrc: tuple[int, ...] = (),
    extension: RtpExtension | None = None,
    padding: bytes = b"",
) -> bytes:
    return bytes(
        RtpPacket(
            payload_type=pt,
            sequence=seq & 0xFFFF,
            timestamp=ts & 0xFFFFFFFF,
            ssrc=ssrc,
            csrc=csrc,
            extension=extension,
            payload=payload,
            padding=padding,
        )
    )


def feed_wire_one_by_one(
    rec: StereoRecorder, channel: Channel, packets: list[bytes], arrivals: list[int | None]
) -> None:
    # The reference: parse each packet and `feed` it; a malformed one is one of a payload type
    # that is not recorded (127 is never audio or events here).
    for data, arrival in zip(packets, arrivals, strict=True):
        try:
            p = RtpPacket.parse(data)
        except RtpError:
            rec.feed(channel, 127, 0, 0, 0, b"", arrival)
            continue
        rec.feed(channel, p.payload_type, p.sequence, p.timestamp, p.ssrc, p.payload, arrival)


# Irregular packets a stream may carry, inserted between its audio packets.
ODD_PACKETS: dict[str, Callable[[int, int, int, int, bytes], bytes]] = {
    "short": lambda pt, seq, ts, ssrc, payload: b"\x80\x00\x01",
    "version 1": lambda pt, seq, ts, ssrc, payload: b"\x40" + wire(pt, seq, ts, ssrc, payload)[1:],
    "csrc": lambda pt, seq, ts, ssrc, payload: wire(pt, seq, ts, ssrc, payload, csrc=(7, 8)),
    "extension": lambda pt, seq, ts, ssrc, payload: wire(
        pt, seq, ts, ssrc, payload, extension=RtpExtension(profile=0xBEDE, data=b"\x10\xaa\x00\x00")
    ),
    "padding": lambda pt, seq, ts, ssrc, payload: wire(pt, seq, ts, ssrc, payload, padding=b"\x00\x00\x03"),
    "truncated csrc": lambda pt, seq, ts, ssrc, payload: (
        bytes([0x8F]) + wire(pt, seq, ts, ssrc, payload)[1:20]
    ),
    "truncated extension": lambda pt, seq, ts, ssrc, payload: (
        bytes([0x90]) + wire(pt, seq, ts, ssrc, payload)[1:12] + b"\xbe\xde\x00\xff"
    ),
    "zero padding": lambda pt, seq, ts, ssrc, payload: (
        bytes([0xA0]) + wire(pt, seq, ts, ssrc, payload)[1:-1] + b"\x00"
    ),
    "padding too long": lambda pt, seq, ts, ssrc, payload: (
        bytes([0xA0]) + wire(pt, seq, ts, ssrc, payload)[1:-1] + b"\xff"
    ),
    "comfort noise": lambda pt, seq, ts, ssrc, payload: wire(13, seq, ts, ssrc, payload[:1]),
    "event": lambda pt, seq, ts, ssrc, payload: wire(EVENT_PT, seq, ts, ssrc, b"\x05\x0a\x01\x40"),
    "empty": lambda pt, seq, ts, ssrc, payload: wire(pt, seq, ts, ssrc, b""),
}


@dataclass(frozen=True)
class WireStream:
    packets: list[bytes]
    arrivals: list[int | None]


@st.composite
def wire_streams(draw: st.DrawFn, pt: int) -> WireStream:
    """One direction's packets as they came: loss, duplicates, reordering, SSRC changes, jumps,
    size changes, odd and malformed packets, arrivals with drift and jitter (or none)."""
    count = draw(st.integers(min_value=0, max_value=140))
    index = st.integers(min_value=0, max_value=max(count - 1, 0))
    sizes = draw(st.lists(st.sampled_from([80, 160, 240]), min_size=1, max_size=3))
    size_changes = draw(st.lists(index, max_size=len(sizes) - 1))
    ssrc_changes = set(draw(st.lists(index, max_size=3)))
    ts_jumps = dict(
        draw(st.lists(st.tuples(index, st.sampled_from([MAX_JUMP + 1, -MAX_JUMP - 1, 2000])), max_size=2))
    )
    seq_jumps = set(draw(st.lists(index, max_size=2)))
    lost = set(draw(st.lists(index, max_size=8)))
    duplicated = set(draw(st.lists(index, max_size=5)))
    moves = draw(st.lists(st.tuples(index, st.integers(min_value=1, max_value=8)), max_size=5))
    odd = draw(st.lists(st.tuples(index, st.sampled_from(sorted(ODD_PACKETS))), max_size=6))
    drift = draw(st.sampled_from([0.0, 0.004, -0.004, 0.03, -0.03]))
    arrival_kind = draw(st.sampled_from(["all", "all", "none", "some"]))
    seed = draw(st.integers(min_value=0, max_value=2**32 - 1))
    rng = np.random.default_rng(seed)
    start = int(rng.integers(0, 4000))
    seq, ts, ssrc = int(rng.integers(0, 1 << 16)), int(rng.integers(0, 1 << 32)), 0x1000
    size = sizes[0]
    content = rng.integers(0, 256, size=count * 240, dtype=np.uint8).tobytes()
    ordered: list[tuple[bytes, int]] = []  # (packet, send time in units)
    clock = 0
    for k in range(count):
        if k in size_changes:
            size = sizes[(sizes.index(size) + 1) % len(sizes)]
        if k in ssrc_changes:
            ssrc += 1
            seq, ts = int(rng.integers(0, 1 << 16)), int(rng.integers(0, 1 << 32))
        if k in seq_jumps:
            seq += 4000  # beyond RFC 3550 §A.1 MAX_DROPOUT: a jump, confirmed by the next one
        ts += ts_jumps.get(k, 0)
        payload = content[k * 240 : k * 240 + size]
        for at, kind in odd:
            if at == k:
                ordered.append((ODD_PACKETS[kind](pt, seq, ts, ssrc, payload), clock))
        if k not in lost:
            packet = wire(pt, seq, ts, ssrc, payload)
            ordered.append((packet, clock))
            if k in duplicated:
                ordered.append((packet, clock + 40))
        seq, ts, clock = seq + 1, ts + size, clock + size
    for at, distance in moves:
        if at < len(ordered):
            moved = ordered.pop(at)
            ordered.insert(min(at + distance, len(ordered)), moved)
    packets = [packet for packet, _ in ordered]
    jitter = rng.integers(0, 400, size=len(ordered)) * (rng.random(len(ordered)) < 0.3)
    arrivals: list[int | None] = [
        start + int(sent * (1 + drift)) + int(extra) for (_, sent), extra in zip(ordered, jitter, strict=True)
    ]
    if arrival_kind == "none":
        arrivals = [None] * len(arrivals)
    elif arrival_kind == "some":
        arrivals = [None if rng.random() < 0.1 else a for a in arrivals]
    return WireStream(packets=packets, arrivals=arrivals)


def cut(
    items: list[bytes], arrivals: list[int | None], fractions: list[float]
) -> list[tuple[list[bytes], list[int | None]]]:
    edges = [0, *sorted(int(f * len(items)) for f in fractions), len(items)]
    return [(items[a:b], arrivals[a:b]) for a, b in itertools.pairwise(edges)]


@st.composite
def recordings(draw: st.DrawFn) -> tuple[dict[str, object], WireStream, WireStream, list[float], list[int]]:
    pt = draw(st.sampled_from([0, 8, 9]))
    media = MediaFormat(audio_payload_types=frozenset({pt}), event_payload_type=EVENT_PT)
    options: dict[str, object] = {
        "left": media,
        "right": media,
        "start_at": draw(st.sampled_from([0, 0, 1000])),
        "drift_limit_samples": draw(st.sampled_from([320, 40, 1])),
        "mask_telephone_events": draw(st.booleans()),
    }
    left = draw(wire_streams(pt))
    right = draw(wire_streams(pt))
    fractions = draw(st.lists(st.floats(min_value=0.0, max_value=1.0), max_size=6))
    margins = draw(
        st.lists(
            st.sampled_from([0, 160, 480, 1600, -200]),
            min_size=len(fractions) + 1,
            max_size=len(fractions) + 1,
        )
    )
    return options, left, right, fractions, margins


def record_wire(
    options: dict[str, object],
    left: WireStream,
    right: WireStream,
    fractions: list[float],
    margins: list[int],
    *,
    batched: bool,
) -> tuple[bytes, ChannelStats, ChannelStats]:
    rec = StereoRecorder(**options)  # type: ignore[arg-type]
    batches = zip(
        cut(left.packets, left.arrivals, fractions),
        cut(right.packets, right.arrivals, fractions),
        margins,
        strict=True,
    )
    parts: list[bytes] = []
    newest = 0
    for (left_packets, left_arrivals), (right_packets, right_arrivals), margin in batches:
        for channel, packets, arrivals in (
            (Channel.LEFT, left_packets, left_arrivals),
            (Channel.RIGHT, right_packets, right_arrivals),
        ):
            if batched and arrivals and all(a is not None for a in arrivals):
                rec.feed_batch(
                    channel, packets, np.asarray(arrivals, dtype=np.int64)
                )  # as CallRecording does
            elif batched:
                rec.feed_batch(channel, packets, arrivals)
            else:
                feed_wire_one_by_one(rec, channel, packets, arrivals)
            newest = max([newest, *(a for a in arrivals if a is not None)])
        parts.append(rec.drain_bytes(newest - margin))
    parts.append(rec.drain_bytes(newest + 20 * RATE))
    return b"".join(parts), rec.stats(Channel.LEFT), rec.stats(Channel.RIGHT)


@settings(max_examples=400, deadline=None)
@given(recordings())
def test_feed_batch_is_exactly_feed_packet_by_packet(
    case: tuple[dict[str, object], WireStream, WireStream, list[float], list[int]],
) -> None:
    options, left, right, fractions, margins = case
    expected = record_wire(options, left, right, fractions, margins, batched=False)
    assert record_wire(options, left, right, fractions, margins, batched=True) == expected


Case = tuple[dict[str, object], WireStream, WireStream, list[float], list[int]]


def record_together(cases: list[Case]) -> list[tuple[bytes, ChannelStats, ChannelStats]]:
    # As CallRecording flushes a slot: every recording's channels through one `feed_steady`, the
    # rest through `feed_batch`, then each drains with its margin. Arrivals are numpy arrays, as
    # CallRecording's; a recording with an unknown arrival in a batch, which CallRecording never
    # has, feeds both channels in order straight to `feed_batch`.
    recorders = [StereoRecorder(**options) for options, *_ in cases]  # type: ignore[arg-type]
    steps = [
        list(
            zip(
                cut(left.packets, left.arrivals, fractions),
                cut(right.packets, right.arrivals, fractions),
                margins,
                strict=True,
            )
        )
        for _, left, right, fractions, margins in cases
    ]
    parts: list[list[bytes]] = [[] for _ in cases]
    newest = [0] * len(cases)
    for step in range(max(len(s) for s in steps)):
        feeds: list[SteadyFeed] = []
        for index, rec in enumerate(recorders):
            if step >= len(steps[index]):
                continue
            (left_packets, left_arrivals), (right_packets, right_arrivals), _ = steps[index][step]
            channels = (
                (Channel.LEFT, left_packets, left_arrivals),
                (Channel.RIGHT, right_packets, right_arrivals),
            )
            known = all(a is not None for a in [*left_arrivals, *right_arrivals])
            for channel, packets, arrivals in channels:
                if known:
                    feeds.append((rec, channel, packets, np.asarray(arrivals, dtype=np.int64)))
                else:
                    rec.feed_batch(channel, packets, arrivals)
                newest[index] = max([newest[index], *(a for a in arrivals if a is not None)])
        for feed, taken in zip(feeds, feed_steady(feeds), strict=True):
            if not taken:
                feed[0].feed_batch(*feed[1:])
        due = [index for index in range(len(cases)) if step < len(steps[index])]
        drains = [(recorders[index], newest[index] - steps[index][step][2]) for index in due]
        for index, block in zip(due, drain_all_together(drains), strict=True):
            parts[index].append(block)
    ends = drain_all_together([(rec, last + 20 * RATE) for rec, last in zip(recorders, newest, strict=True)])
    return [
        (b"".join([*part, end]), rec.stats(Channel.LEFT), rec.stats(Channel.RIGHT))
        for rec, part, end in zip(recorders, parts, ends, strict=True)
    ]


def drain_all_together(drains: list[tuple[StereoRecorder, int]]) -> list[bytes]:
    # As CallRecording drains a slot: `drain_together`, then the recorders it left alone.
    blocks = drain_together(drains)
    return [
        (rec.drain(up_to) if block is None else block).astype("<i2").tobytes()
        for (rec, up_to), block in zip(drains, blocks, strict=True)
    ]


@settings(max_examples=150, deadline=None)
@given(st.lists(recordings(), min_size=1, max_size=4))
def test_feed_steady_for_many_recordings_is_exactly_feed_packet_by_packet(cases: list[Case]) -> None:
    expected = [
        record_wire(options, left, right, fractions, margins, batched=False)
        for options, left, right, fractions, margins in cases
    ]
    assert record_together(cases) == expected


def test_feed_steady_takes_steady_channels_and_leaves_the_rest() -> None:
    # Six recordings' left channels, 50 packets per flush after each channel's first packet: a
    # steady stream is taken every time, and so are streams with lost packets (one, three at a
    # flush's start, ten in a row); one whose packets change size and one whose clock runs 3 %
    # slow (a drift correction due in every block once the window's oldest block shows it, from
    # the fifth block on) are left to `feed_batch` when that happens. The result is that of
    # feeding packet by packet.
    resized = [
        *regular(60),
        *(wire(0, 65560 + k, 2**32 - 1000 + 60 * FRAME + k * 80, 0x2222, bytes([k]) * 80) for k in range(90)),
    ]
    losses = [{30}, {51, 52, 53}, set(range(70, 80))]
    streams = [regular(150), *(lossy(150 + len(lost), lost) for lost in losses), resized, regular(150)]
    positions = [k * FRAME for k in range(150)]
    arrivals = [
        positions,
        *([k * FRAME for k in range(150 + len(lost)) if k not in lost] for lost in losses),
        [k * FRAME if k < 60 else 60 * FRAME + (k - 60) * 80 for k in range(150)],
        [int(k * FRAME * 1.03) for k in range(150)],
    ]
    recorders = [StereoRecorder(left=PCMU, right=PCMU, drift_limit_samples=40) for _ in streams]
    references = [StereoRecorder(left=PCMU, right=PCMU, drift_limit_samples=40) for _ in streams]
    for rec, reference, stream, times in zip(recorders, references, streams, arrivals, strict=True):
        feed_wire_one_by_one(reference, Channel.LEFT, stream, list(times))
        rec.feed_batch(Channel.LEFT, stream[:1], times[:1])  # the first packet anchors the timeline
    taken_per_flush = []
    for start in range(1, 150, 50):
        feeds: list[SteadyFeed] = [
            (
                rec,
                Channel.LEFT,
                stream[start : start + 50],
                np.asarray(times[start : start + 50], dtype=np.int64),
            )
            for rec, stream, times in zip(recorders, streams, arrivals, strict=True)
        ]
        taken = feed_steady(feeds)
        taken_per_flush.append(taken)
        for (rec, channel, batch, batch_arrivals), was_taken in zip(feeds, taken, strict=True):
            if not was_taken:
                rec.feed_batch(channel, batch, batch_arrivals)
    assert taken_per_flush == [
        [True, True, True, True, True, True],
        [True, True, True, True, False, True],
        [True, True, True, True, True, False],
    ]
    for rec, reference in zip(recorders, references, strict=True):
        assert rec.drain_bytes(400 * FRAME) == reference.drain_bytes(400 * FRAME)
        assert rec.stats(Channel.LEFT) == reference.stats(Channel.LEFT)


@settings(max_examples=150, deadline=None)
@given(
    lost=st.sets(st.integers(1, 299), max_size=40),
    burst=st.tuples(st.integers(1, 299), st.integers(0, 60)),
    cuts=st.lists(st.integers(1, 299), max_size=8),
    cut_at_burst=st.booleans(),
    clock_ratio=st.sampled_from([1.0, 1.0, 1.02, 0.98]),
    jitter=st.lists(st.integers(0, 400), min_size=300, max_size=300),
    jitter_scale=st.sampled_from([0, 0.1, 1]),
)
def test_feed_steady_with_lost_packets_is_exactly_feed_packet_by_packet(
    lost: set[int],
    burst: tuple[int, int],
    cuts: list[int],
    cut_at_burst: bool,
    clock_ratio: float,
    jitter: list[int],
    jitter_scale: float,
) -> None:
    # Packets lost anywhere, alone or in bursts longer than `feed_steady` takes, flushed in any
    # batches (one may start right after a burst), arriving late by up to 50 ms on a clock that
    # may drift: the audio and statistics are those of feeding packet by packet.
    first, length = burst
    lost |= set(range(first, min(300, first + length)))
    packets = lossy(300, lost)
    arrivals = [int(k * FRAME * clock_ratio + jitter[k] * jitter_scale) for k in range(300) if k not in lost]
    reference = StereoRecorder(left=PCMU, right=PCMU, drift_limit_samples=40)
    feed_wire_one_by_one(reference, Channel.LEFT, packets, list(arrivals))
    rec = StereoRecorder(left=PCMU, right=PCMU, drift_limit_samples=40)
    if cut_at_burst:
        cuts = [*cuts, len([k for k in range(first) if k not in lost])]  # the first packet after it
    edges = [0, *sorted({cut for cut in cuts if 0 < cut < len(packets)}), len(packets)]
    for start, end in itertools.pairwise(edges):
        batch, times = packets[start:end], np.asarray(arrivals[start:end], dtype=np.int64)
        if not feed_steady([(rec, Channel.LEFT, batch, times)])[0]:
            rec.feed_batch(Channel.LEFT, batch, times)
    assert rec.drain_bytes(700 * FRAME) == reference.drain_bytes(700 * FRAME)
    assert rec.stats(Channel.LEFT) == reference.stats(Channel.LEFT)


def regular(count: int, *, seq0: int = 65500, ts0: int = 2**32 - 1000, size: int = FRAME) -> list[bytes]:
    # One stream in order across both wraps; distinct content in every packet.
    return [wire(0, seq0 + k, ts0 + k * size, 0x2222, bytes([k % 256]) * size) for k in range(count)]


def lossy(count: int, lost: set[int]) -> list[bytes]:
    return [packet for k, packet in enumerate(regular(count)) if k not in lost]


def with_marker(count: int) -> list[bytes]:
    packets = regular(count)
    packets[70] = bytes([packets[70][0], packets[70][1] | 0x80]) + packets[70][2:]  # a talkspurt starts
    return packets


def with_csrc(count: int) -> list[bytes]:
    packets = regular(count)
    payload = RtpPacket.parse(packets[40]).payload
    packets[40] = wire(0, 65500 + 40, 2**32 - 1000 + 40 * FRAME, 0x2222, payload, csrc=(1,))
    return packets


@pytest.mark.parametrize(
    ("name", "packets", "arrival_ratio", "batch", "per_packet_feeds"),
    [
        # Only each timeline's first packet, and each irregular one, goes through `feed`.
        ("regular, one batch", regular(200), 1.0, 200, 1),
        ("regular, 50 per flush", regular(200), 1.0, 50, 1),
        ("drift corrections within runs", regular(400), 1.03, 50, 1),
        ("drift the other way", regular(400), 0.97, 50, 1),
        ("a loss", lossy(201, {30}), 1.0, 50, 2),
        ("a marker bit", with_marker(200), 1.0, 50, 1),
        ("a packet with a CSRC", with_csrc(200), 1.0, 50, 2),
        ("short batches go one by one", regular(40), 1.0, 5, 40),
    ],
)
@pytest.mark.parametrize("as_array", [False, True], ids=["arrival-list", "arrival-array"])
def test_feed_batch_takes_regular_runs_in_bulk(
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    packets: list[bytes],
    arrival_ratio: float,
    batch: int,
    per_packet_feeds: int,
    as_array: bool,
) -> None:
    arrivals: list[int | None] = [int(k * FRAME * arrival_ratio) for k in range(len(packets))]
    reference = StereoRecorder(left=PCMU, right=PCMU, drift_limit_samples=40)
    feed_wire_one_by_one(reference, Channel.LEFT, packets, arrivals)
    expected = reference.drain_bytes(len(packets) * 2 * FRAME)

    calls: list[int] = []
    feed = StereoRecorder.feed

    def counting_feed(self: StereoRecorder, *args: Any) -> None:
        calls.append(1)
        feed(self, *args)

    monkeypatch.setattr(StereoRecorder, "feed", counting_feed)
    rec = StereoRecorder(left=PCMU, right=PCMU, drift_limit_samples=40)
    for k in range(0, len(packets), batch):
        batch_arrivals = arrivals[k : k + batch]
        rec.feed_batch(
            Channel.LEFT,
            packets[k : k + batch],
            np.asarray(batch_arrivals, dtype=np.int64) if as_array else batch_arrivals,
        )
    assert rec.drain_bytes(len(packets) * 2 * FRAME) == expected, name
    assert rec.stats(Channel.LEFT) == reference.stats(Channel.LEFT)
    assert len(calls) == per_packet_feeds
    if arrival_ratio != 1.0:
        assert rec.stats(Channel.LEFT).reanchors > 0  # the corrections happened in bulk


def test_feed_batch_needs_an_arrival_per_packet() -> None:
    rec = StereoRecorder(left=PCMU, right=PCMU)
    with pytest.raises(ValueError, match="2 packets but 1 arrivals"):
        rec.feed_batch(Channel.LEFT, regular(2), [0])


PCMU_OR_PCMA = MediaFormat(audio_payload_types=frozenset({0, 8}), event_payload_type=EVENT_PT)
G722_FORMAT = MediaFormat(audio_payload_types=frozenset({9}), event_payload_type=EVENT_PT)


@st.composite
def drained_recorders(draw: st.DrawFn) -> tuple[dict[str, object], list[Pkt], list[tuple[str, int, int]]]:
    """A recorder's options, its packets (lost, reordered, a law switched or G.722 at times) and
    what happens between its feeds: pauses, resumes, masks and drains, in order."""
    left_law, right_law = draw(st.sampled_from([(0, 0), (8, 8), (0, 8), (9, 9)]))
    switch_at = draw(st.sampled_from([None, 20, 37]))  # the left party changes law (re-INVITE)
    wide = left_law == 9 and draw(st.booleans())
    options: dict[str, object] = {
        "left": G722_FORMAT if left_law == 9 else PCMU_OR_PCMA,
        "right": G722_FORMAT if right_law == 9 else PCMU_OR_PCMA,
        "start_at": draw(st.sampled_from([0, 700])),
        "wideband": wide,
    }
    seed = draw(st.integers(min_value=0, max_value=2**32 - 1))
    rng = np.random.default_rng(seed)
    packets: list[Pkt] = []
    for channel, law, ssrc in ((Channel.LEFT, left_law, 1), (Channel.RIGHT, right_law, 2)):
        codes = rng.integers(0, 256, size=60 * FRAME, dtype=np.uint8).tobytes()
        stream = packetise(channel, codes, pt=law, ssrc=ssrc)
        if channel is Channel.LEFT and switch_at is not None and law != 9:
            stream = [
                dataclasses.replace(p, pt=8 - law) if k >= switch_at else p for k, p in enumerate(stream)
            ]
        packets.extend(p for k, p in enumerate(stream) if rng.random() > 0.05 or k == 0)
    packets.sort(key=lambda p: (p.arrival or 0) + int(rng.integers(0, 3 * FRAME)))  # some reordering
    kinds = st.sampled_from(["drain", "drain", "drain", "pause", "resume", "mask"])
    where = st.integers(min_value=-400, max_value=62 * FRAME)
    spans = st.integers(min_value=1, max_value=2000)
    actions = draw(st.lists(st.tuples(kinds, where, spans), min_size=1, max_size=12))
    return options, packets, actions


@settings(max_examples=150, deadline=None)
@given(st.lists(drained_recorders(), min_size=1, max_size=4))
def test_drain_together_is_drain_for_each_recorder(
    cases: list[tuple[dict[str, object], list[Pkt], list[Any]]],
) -> None:
    # Twins fed alike, one drained alone, one with the others through `drain_together`: the same
    # audio, statistics, pauses and masks left; a recorder it leaves alone (G.722, wideband, a
    # law switched within the drain) is not touched.
    alone = [StereoRecorder(**options) for options, _, _ in cases]  # type: ignore[arg-type]
    together = [StereoRecorder(**options) for options, _, _ in cases]  # type: ignore[arg-type]
    rounds = max(len(actions) for _, _, actions in cases)
    for step in range(rounds):
        drains: list[tuple[StereoRecorder, int]] = []
        expected: list[npt.NDArray[np.int16]] = []
        for (_, packets, actions), a, b in zip(cases, alone, together, strict=True):
            share = packets[step * len(packets) // rounds : (step + 1) * len(packets) // rounds]
            feed_all(a, share)
            feed_all(b, share)
            if step >= len(actions):
                continue
            kind, at, span = actions[step]
            if kind == "drain":
                expected.append(a.drain(at))
                drains.append((b, at))
            elif kind == "pause" and not a.paused:
                for rec in (a, b):
                    rec.pause("pci", at=max(at, rec.drained))
            elif kind == "resume" and a.paused:
                for rec in (a, b):
                    rec.resume(at=max(at, rec.pauses[-1].start))
            elif kind == "mask":
                assert a.mask(at, at + span, left=span % 2 == 0) == b.mask(at, at + span, left=span % 2 == 0)
        before = [(rec.drained, rec.stats(Channel.LEFT), rec.stats(Channel.RIGHT)) for rec, _ in drains]
        blocks = drain_together(drains)
        for (rec, up_to), block, want, state in zip(drains, blocks, expected, before, strict=True):
            if block is None:  # left alone: as it was, then drained alone
                assert (rec.drained, rec.stats(Channel.LEFT), rec.stats(Channel.RIGHT)) == state
                np.testing.assert_array_equal(rec.drain(up_to), want)
            else:
                np.testing.assert_array_equal(block, want)
    for a, b in zip(alone, together, strict=True):
        end = max(a.drained, 70 * FRAME)
        np.testing.assert_array_equal(b.drain(end), a.drain(end))
        assert (b.stats(Channel.LEFT), b.stats(Channel.RIGHT), b.pauses) == (
            a.stats(Channel.LEFT),
            a.stats(Channel.RIGHT),
            a.pauses,
        )


def test_drain_together_takes_plain_g711_recorders_only() -> None:
    # Both laws, one per channel, are taken; G.722 and a law switched within the drain are not.
    ulaw, alaw = ulaw_encode(tone(1000.0, RATE)), alaw_encode(tone(440.0, RATE))
    plain = StereoRecorder(left=PCMU_OR_PCMA, right=PCMU_OR_PCMA)
    feed_all(plain, [*packetise(Channel.LEFT, ulaw, pt=0), *packetise(Channel.RIGHT, alaw, pt=8, ssrc=2)])
    switched = StereoRecorder(left=PCMU_OR_PCMA, right=PCMU_OR_PCMA)
    halves = packetise(Channel.LEFT, ulaw[: RATE // 2], pt=0) + packetise(
        Channel.LEFT, alaw[RATE // 2 :], pt=8, seq0=1025, ts0=50_000 + RATE // 2, arrival0=RATE // 2
    )
    feed_all(switched, halves)
    wide = StereoRecorder(left=G722_FORMAT, right=G722_FORMAT)
    feed_all(wide, packetise(Channel.LEFT, bytes(RATE), pt=9))
    blocks = drain_together([(plain, RATE), (switched, RATE), (wide, RATE), (plain, RATE)])
    assert [block is None for block in blocks] == [False, True, True, True]  # each recorder once
    assert blocks[0] is not None
    np.testing.assert_array_equal(blocks[0][:, 0], ulaw_decode(ulaw))
    np.testing.assert_array_equal(blocks[0][:, 1], alaw_decode(alaw))
    assert [plain.drained, switched.drained, wide.drained] == [RATE, 0, 0]
