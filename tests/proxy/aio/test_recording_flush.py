"""Recordings flushed together on the 50 ms grid: the same audio as each flushed alone, on virtual time."""

from __future__ import annotations

import math
import struct
from collections.abc import Callable

import numpy as np
import pytest

from proxy.aio.media import LegProtocol
from proxy.aio.recording import (
    FLUSH_GRID_S,
    SAFETY_MARGIN_SAMPLES,
    CallRecording,
    ChannelQuality,
    FlushSlots,
    MediaQuality,
    flush_together,
    recorder_format,
    recording_sample_rate_hz,
    static_aliases,
)
from proxy.b2bua.effects import MediaFormat, MediaLeg
from proxy.rtp.g711 import ulaw_encode
from proxy.rtp.masking import mask_dtmf
from proxy.rtp.recorder import RECORDED_PAYLOAD_TYPES, Channel

_HEADER = struct.Struct("!BBHII")
PACKETS_PER_S = 50
PEER = ("127.0.0.1", 40000)


class VirtualLoop:
    """``time`` and ``call_at`` on simulated time; ``run_until`` fires the due timers in order."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[tuple[float, int, Callable[..., object], tuple[object, ...]]] = []
        self.fired: list[float] = []
        self._count = 0

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[..., object], *args: object) -> VirtualTimer:
        self._count += 1
        entry = (when, self._count, callback, args)
        self.timers.append(entry)
        return VirtualTimer(self, entry)

    def run_until(self, until: float) -> None:
        while True:
            due = sorted(t for t in self.timers if t[0] <= until)
            if not due:
                break
            when, _, callback, args = due[0]
            self.timers.remove(due[0])
            self.now = max(self.now, when)
            self.fired.append(when)
            callback(*args)
        self.now = until


class VirtualTimer:
    def __init__(
        self, loop: VirtualLoop, entry: tuple[float, int, Callable[..., object], tuple[object, ...]]
    ):
        self._loop, self._entry = loop, entry

    def cancel(self) -> None:
        if self._entry in self._loop.timers:
            self._loop.timers.remove(self._entry)


class Handle:
    def __init__(self, *, fail: bool = False) -> None:
        self.blocks: list[bytes] = []
        self.fail = fail
        self.media_quality: MediaQuality | None = None

    def write(self, pcm: bytes) -> None:
        if self.fail:
            raise OSError("disk gone")
        self.blocks.append(pcm)

    def pause(self, reason: str, at: float) -> None: ...

    def resume(self, reason: str, at: float) -> None: ...

    def close(self, *, at: float, reason: str, media_quality: MediaQuality) -> None:
        self.media_quality = media_quality


def dtmf_ulaw(samples: int) -> bytes:
    # Key 5 (770 + 1336 Hz, ITU-T Q.23) at a comfortable level.
    n = np.arange(samples)
    tone = 6000 * (np.sin(2 * np.pi * 770 * n / 8000) + np.sin(2 * np.pi * 1336 * n / 8000))
    return ulaw_encode(tone.astype(np.int16))


class Caller:
    """One call's two streams: steady, one with a loss and a reordering, a key pressed on the left."""

    def __init__(self, index: int, rng: np.random.Generator) -> None:
        self.streams = [
            [int(rng.integers(1 << 16)), int(rng.integers(1 << 32)), 0x1000 + 2 * index + c] for c in (0, 1)
        ]
        self.irregular = index % 3 == 1
        self.key = index % 3 == 2
        self.voice = [rng.integers(0, 256, 160, dtype=np.uint8).tobytes() for _ in range(PACKETS_PER_S)]
        self.tone = dtmf_ulaw(160 * 10)

    def packets(self, tick: int) -> list[bytes | None]:
        out: list[bytes | None] = []
        for channel, stream in enumerate(self.streams):
            payload = self.voice[tick % PACKETS_PER_S]
            if self.key and channel == 0 and 60 <= tick < 70:
                payload = self.tone[(tick - 60) * 160 : (tick - 59) * 160]
            packet = _HEADER.pack(0x80, 0, stream[0] & 0xFFFF, stream[1] & 0xFFFFFFFF, stream[2]) + payload
            stream[0] += 1
            stream[1] += 160
            lost = self.irregular and channel == 1 and tick == 75
            out.append(None if lost else packet)
        return out


def make_calls(
    count: int, loop: VirtualLoop, *, failing: int | None = None
) -> tuple[list[CallRecording], list[Caller]]:
    rng = np.random.default_rng(7)
    recordings = [
        CallRecording(Handle(fail=index == failing), outside_leg=MediaLeg.A, media=None, loop=loop)  # type: ignore[arg-type]
        for index in range(count)
    ]
    return recordings, [Caller(index, rng) for index in range(count)]


def relay_tap(recording: CallRecording, leg: MediaLeg, loop: VirtualLoop) -> Callable[[bytes], None]:
    """What the relay does with a packet from ``leg``'s party: a leg tapped into the recording."""
    protocol = LegProtocol()
    protocol.tap(recording.tapped(leg), loop.time)
    return lambda packet: protocol.datagram_received(packet, PEER)


def tapped_pcmu_recording() -> tuple[
    VirtualLoop, CallRecording, Callable[[bytes], None], Callable[[bytes], None]
]:
    """A recording on virtual time, the outside party on leg a, and the relay taps of its two
    parties: outside party (left), PBX side (right)."""
    loop = VirtualLoop()
    recording = CallRecording(Handle(), outside_leg=MediaLeg.A, media=None, loop=loop)  # type: ignore[arg-type]
    return loop, recording, relay_tap(recording, MediaLeg.A, loop), relay_tap(recording, MediaLeg.B, loop)


def play(
    loop: VirtualLoop,
    recordings: list[CallRecording],
    callers: list[Caller],
    seconds: float,
    flush: Callable[[float], None],
) -> None:
    taps = [
        (relay_tap(recording, MediaLeg.A, loop), relay_tap(recording, MediaLeg.B, loop))
        for recording in recordings
    ]
    held: list[tuple[Callable[[bytes], None], bytes]] = []
    for tick in range(int(seconds * PACKETS_PER_S)):
        at = 0.0005 + tick / PACKETS_PER_S
        flush(at)
        loop.now = at
        for (left, right), caller in zip(taps, callers, strict=True):
            first, second = caller.packets(tick)
            for tap, packet in ((left, first), (right, second)):
                if packet is None:
                    continue
                if caller.irregular and tick == 40 and tap is left:
                    held.append((tap, packet))  # arrives after the next one
                    continue
                tap(packet)
            while held and tick == 41:
                tap, packet = held.pop()
                tap(packet)


def test_recordings_flushed_together_write_what_each_flushed_alone_writes() -> None:
    alone_loop, together_loop = VirtualLoop(), VirtualLoop()
    alone, callers = make_calls(7, alone_loop)
    together, same_callers = make_calls(7, together_loop)
    slots = FlushSlots(together_loop)  # type: ignore[arg-type]
    for recording in together:
        slots.add(recording)

    next_second = [1.0]

    def flush_each_alone(at: float) -> None:
        # The reference: each channel through `feed_batch`, each block masked on its own.
        if at < next_second[0]:
            return
        alone_loop.now = next_second[0]
        for recording in alone:
            for channel, both in zip((Channel.LEFT, Channel.RIGHT), recording._tapped, strict=True):
                packets = [p for p in both[0::2] if isinstance(p, bytes)]
                times = [t for t in both[1::2] if isinstance(t, float)]
                arrivals = [int((t - recording._started) * 8000) for t in times]
                recording.recorder.feed_batch(channel, packets, arrivals)
                both.clear()
            block = recording.recorder.drain(recording.position() - SAFETY_MARGIN_SAMPLES)
            mask_dtmf(block)
            recording.handle.write(block.astype("<i2").tobytes())
            recording.blocks_written += 1
        next_second[0] += 1.0

    play(alone_loop, alone, callers, 4.0, flush_each_alone)
    play(together_loop, together, same_callers, 4.0, together_loop.run_until)
    alone_loop.now = together_loop.now
    for one, other in zip(alone, together, strict=True):
        one.close("ended")
        other.close("ended")
        assert b"".join(other.handle.blocks) == b"".join(one.handle.blocks)  # type: ignore[attr-defined]
        assert other.blocks_written == one.blocks_written >= 4
    keyed = np.frombuffer(b"".join(together[2].handle.blocks), dtype="<i2").reshape(-1, 2)  # type: ignore[attr-defined]
    assert not keyed[int(1.25 * 8000) : int(1.35 * 8000)].any()  # the key press was masked, both channels


def test_flush_slots_flush_a_slot_s_recordings_in_one_pass_every_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = VirtualLoop()
    recordings, _ = make_calls(3, loop)
    passes: list[tuple[float, list[int]]] = []
    monkeypatch.setattr(
        "proxy.aio.recording.flush_together",
        lambda due: passes.append((loop.now, [recordings.index(r) for r in due])),
    )
    slots = FlushSlots(loop)  # type: ignore[arg-type]
    loop.now = 0.01
    slots.add(recordings[0])
    loop.now = 0.03
    slots.add(recordings[1])  # the same slot: 1.05
    loop.now = 0.06
    slots.add(recordings[2])  # the next one: 1.10
    loop.run_until(2.2)
    recordings[1].close("ended")
    loop.run_until(3.2)
    assert [(round(at, 2), due) for at, due in passes] == [
        (1.05, [0, 1]),
        (1.1, [2]),
        (2.05, [0, 1]),
        (2.1, [2]),
        (3.05, [0]),  # a closed recording leaves its slot
        (3.1, [2]),
    ]
    assert all(math.isclose(at / FLUSH_GRID_S, round(at / FLUSH_GRID_S)) for at, _ in passes)
    slots.close()
    assert not loop.timers


def test_a_failing_recording_does_not_stop_the_others_in_its_slot() -> None:
    loop = VirtualLoop()
    recordings, callers = make_calls(3, loop, failing=1)
    play(loop, recordings, callers, 2.1, lambda at: None)
    loop.now = 2.1
    flush_together(recordings)
    assert [recording.blocks_written for recording in recordings] == [1, 0, 1]


def batched_masking_fails(blocks: object) -> None:
    raise MemoryError("no room for the slot's frames")


def test_when_the_batched_masking_fails_each_block_is_masked_on_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = VirtualLoop()
    recordings, callers = make_calls(3, loop)
    play(loop, recordings, callers, 2.1, lambda at: None)
    monkeypatch.setattr("proxy.aio.recording.mask_dtmf_many", batched_masking_fails)
    loop.now = 2.1
    flush_together(recordings)
    assert [recording.blocks_written for recording in recordings] == [1, 1, 1]
    keyed = np.frombuffer(recordings[2].handle.blocks[0], dtype="<i2").reshape(-1, 2)  # type: ignore[attr-defined]
    assert keyed[: int(1.2 * 8000)].any()
    assert not keyed[int(1.25 * 8000) : int(1.35 * 8000)].any()  # still masked, by the fallback


def slot_flushed_once() -> list[bytes]:
    # The blocks of three recordings' first flush, together in one slot.
    loop = VirtualLoop()
    recordings, callers = make_calls(3, loop)
    play(loop, recordings, callers, 2.1, lambda at: None)
    loop.now = 2.1
    flush_together(recordings)
    return [b"".join(recording.handle.blocks) for recording in recordings]  # type: ignore[attr-defined]


def test_when_the_batched_drain_fails_each_recording_drains_on_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expected = slot_flushed_once()
    assert all(expected)

    def batched_drain_fails(items: object) -> None:
        raise MemoryError("no room for the slot's audio")

    monkeypatch.setattr("proxy.aio.recording.drain_together", batched_drain_fails)
    assert slot_flushed_once() == expected


def test_a_block_that_cannot_be_masked_is_not_written(monkeypatch: pytest.MonkeyPatch) -> None:
    # PCI DSS 3.3.1: rather no audio than audio that may hold card digits.
    masked = []

    def mask_failing_second(block: np.ndarray, sample_rate_hz: int = 8000) -> None:
        masked.append(block)
        if len(masked) == 2:
            raise MemoryError("no room for this block")
        mask_dtmf(block, sample_rate_hz)

    loop = VirtualLoop()
    recordings, callers = make_calls(3, loop)
    play(loop, recordings, callers, 2.1, lambda at: None)
    monkeypatch.setattr("proxy.aio.recording.mask_dtmf_many", batched_masking_fails)
    monkeypatch.setattr("proxy.aio.recording.mask_dtmf", mask_failing_second)
    loop.now = 2.1
    flush_together(recordings)
    assert [recording.blocks_written for recording in recordings] == [1, 0, 1]


@pytest.mark.parametrize(
    ("media", "rate", "events"),
    [
        (MediaFormat(codec="pcmu", payload_type=0, event_payload_type=101), 8000, 101),
        (MediaFormat(codec="pcma", payload_type=8), 8000, None),
        (MediaFormat(codec="g722", payload_type=9, event_payload_type=96), 16000, 96),
        (MediaFormat(codec="pcmu", payload_type=0, event_payload_type=8), 8000, None),  # not dynamic
        (None, 8000, None),
    ],
)
def test_a_recording_takes_every_codec_at_the_rate_first_negotiated(
    media: MediaFormat | None, rate: int, events: int | None
) -> None:
    # A re-INVITE may change the codec (RFC 3264 §8.3.2): every recordable codec is decoded.
    chosen = recorder_format(media)
    assert chosen.audio_payload_types == RECORDED_PAYLOAD_TYPES
    assert chosen.event_payload_type == events
    assert recording_sample_rate_hz(media) == rate
    loop = VirtualLoop()
    recording = CallRecording(Handle(), outside_leg=MediaLeg.A, media=media, loop=loop)  # type: ignore[arg-type]
    assert recording.recorder.sample_rate_hz == rate


@pytest.mark.parametrize(("codec", "static"), [("pcmu", 0), ("pcma", 8)])
def test_a_codec_on_a_dynamic_payload_type_is_recorded_as_on_its_static_one(codec: str, static: int) -> None:
    # a=rtpmap:96 PCMU/8000 (RFC 3551 §6 allows it): the same audio as on type 0.
    assert static_aliases(MediaFormat(codec=codec, payload_type=96)) == {96: static}
    assert static_aliases(MediaFormat(codec=codec, payload_type=static)) == {}
    written = []
    for payload_type in (static, 96):
        loop = VirtualLoop()
        media = MediaFormat(codec=codec, payload_type=payload_type, event_payload_type=101)
        recording = CallRecording(Handle(), outside_leg=MediaLeg.A, media=media, loop=loop)  # type: ignore[arg-type]
        left, right = relay_tap(recording, MediaLeg.A, loop), relay_tap(recording, MediaLeg.B, loop)
        rng = np.random.default_rng(3)
        for tick in range(100):
            loop.now = 0.0005 + tick / PACKETS_PER_S
            for tap, ssrc in ((left, 0x1111), (right, 0x2222)):
                marker = 0x80 if tick == 0 else 0
                payload = rng.integers(0, 256, 160, dtype=np.uint8).tobytes()
                tap(_HEADER.pack(0x80, marker | payload_type, tick, 160 * tick, ssrc) + payload)
            if tick == 50:  # a key press event on the left (RFC 4733), not audio
                left(_HEADER.pack(0x80, 101, 9999, 160 * tick, 0x1111) + bytes([5, 0x80, 0, 160]))
        loop.now = 2.0
        recording.close("ended")
        written.append(b"".join(recording.handle.blocks))  # type: ignore[attr-defined]
        assert recording.recorder.stats(Channel.LEFT).other_dropped == 0
    assert len(written[0]) == 2 * 2 * 16000
    assert written[1] == written[0]


def recorded_switch(
    media: MediaFormat,
    first: int,
    second: int,
    *,
    learnt_at_tick: tuple[int, tuple[tuple[int, int], ...]] | None = None,
) -> tuple[CallRecording, bytes]:
    """Two seconds of random payloads both ways, on payload type ``first`` then, half way,
    ``second``; ``learnt_at_tick`` gives an SDP's aliases to the recording at that packet. Checks
    that no packet was dropped as of an unknown type; returns the recording and what it stored."""
    loop = VirtualLoop()
    recording = CallRecording(Handle(), outside_leg=MediaLeg.A, media=media, loop=loop)  # type: ignore[arg-type]
    left, right = relay_tap(recording, MediaLeg.A, loop), relay_tap(recording, MediaLeg.B, loop)
    rng = np.random.default_rng(4)
    for tick in range(100):
        loop.now = 0.0005 + tick / PACKETS_PER_S
        payload_type = first if tick < 50 else second
        for tap, ssrc in ((left, 0x1111), (right, 0x2222)):
            payload = rng.integers(0, 256, 160, dtype=np.uint8).tobytes()
            tap(_HEADER.pack(0x80, payload_type, tick, 160 * tick, ssrc) + payload)
        if learnt_at_tick is not None and tick == learnt_at_tick[0]:
            recording.learn_aliases(learnt_at_tick[1])
    loop.now = 2.0
    recording.close("ended")
    for channel in (Channel.LEFT, Channel.RIGHT):
        assert recording.recorder.stats(channel).other_dropped == 0
    stored = b"".join(recording.handle.blocks)  # type: ignore[attr-defined]
    assert len(stored) == 2 * 2 * 16000
    return recording, stored


def test_a_switch_to_another_codec_on_a_dynamic_payload_type_is_recorded() -> None:
    # The SDP listed PCMU on 96 and PCMA on 97; a re-INVITE moves the call to PCMA (RFC 3264
    # §8.3.2) half way. Recorded as the same call on the static types 0 then 8 would be.
    dynamic = MediaFormat(codec="pcmu", payload_type=96, event_payload_type=101, aliases=((96, 0), (97, 8)))
    static = MediaFormat(codec="pcmu", payload_type=0, event_payload_type=101)
    assert static_aliases(dynamic) == {96: 0, 97: 8}
    _, on_static = recorded_switch(static, 0, 8)
    _, on_dynamic = recorded_switch(dynamic, 96, 97)
    assert on_dynamic == on_static


def test_a_dynamic_type_a_later_sdp_adds_is_recorded_from_then_on() -> None:
    # The call began on PCMU (type 0) with no dynamic type; a re-INVITE adds PCMA on 97 (RFC 3264
    # §8.3.2) and the parties switch to it. Packets of 97 tapped before the SDP was learnt are
    # recorded too (the flush retypes them). A pair naming the events' type is never taken.
    media = MediaFormat(codec="pcmu", payload_type=0, event_payload_type=101)
    _, on_static = recorded_switch(media, 0, 8)
    recording, on_dynamic = recorded_switch(media, 0, 97, learnt_at_tick=(55, ((97, 8), (101, 0))))
    assert recording.aliases == {97: 8}
    assert on_dynamic == on_static


def test_a_later_sdp_s_pair_wins() -> None:
    loop = VirtualLoop()
    media = MediaFormat(codec="pcmu", payload_type=96, event_payload_type=101)
    recording = CallRecording(Handle(), outside_leg=MediaLeg.A, media=media, loop=loop)  # type: ignore[arg-type]
    assert recording.aliases == {96: 0}
    recording.learn_aliases(((96, 8), (98, 9)))
    assert recording.aliases == {96: 8, 98: 9}


@pytest.mark.parametrize("tone_starts_ms", range(700, 815, 5))
def test_a_key_press_cut_by_a_flush_is_masked_whole(tone_starts_ms: int) -> None:
    # The flush at 1.0 s drains up to 0.8 s. Judged alone, a fragment of a tone under about 12 ms
    # on either side of where a block ends passes the detector; judged with its context it does
    # not. 60 ms of key 5 on the left, from 100 ms before that point to 15 ms after it, in 5 ms
    # steps; everything else silence: nothing but zeros may be stored.
    loop = VirtualLoop()
    recording = CallRecording(Handle(), outside_leg=MediaLeg.A, media=None, loop=loop)  # type: ignore[arg-type]
    left_pcm = np.zeros(int(2.2 * 8000), dtype=np.int16)
    start = tone_starts_ms * 8
    n = np.arange(480)
    left_pcm[start : start + 480] = 6000 * (
        np.sin(2 * np.pi * 770 * n / 8000) + np.sin(2 * np.pi * 1336 * n / 8000)
    )
    silence = ulaw_encode(np.zeros(160, dtype=np.int16))
    taps = (relay_tap(recording, MediaLeg.A, loop), relay_tap(recording, MediaLeg.B, loop))
    for tick in range(int(2.1 * PACKETS_PER_S)):
        loop.now = 0.0005 + tick / PACKETS_PER_S
        for channel, tap in enumerate(taps):
            payload = ulaw_encode(left_pcm[tick * 160 : (tick + 1) * 160]) if channel == 0 else silence
            tap(_HEADER.pack(0x80, 0, tick, tick * 160, 0x5000 + channel) + payload)
        if tick + 1 in (PACKETS_PER_S, 2 * PACKETS_PER_S):
            loop.now = (tick + 1) / PACKETS_PER_S
            flush_together([recording])
            # The context kept is 40 ms each side, in arrays of its own: not views that would
            # keep the whole second's block alive until the next flush.
            assert len(recording.written_tail) == len(recording.held_back) == 320
            assert recording.written_tail.base is None
            assert recording.held_back.base is None
    loop.now = 2.1
    recording.close("ended")
    stored = np.frombuffer(b"".join(recording.handle.blocks), dtype="<i2").reshape(-1, 2)  # type: ignore[attr-defined]
    assert len(stored) == int(2.1 * 8000)  # closing wrote what was held back
    assert not stored.any(), np.flatnonzero(stored[:, 0])[[0, -1]] / 8


def test_what_the_network_cost_the_recording_is_told_when_it_closes() -> None:
    loop, recording, left, right = tapped_pcmu_recording()
    silence = ulaw_encode(np.zeros(160, dtype=np.int16))
    for tick in range(50):
        loop.now = 0.0005 + tick / PACKETS_PER_S
        for tap, ssrc in ((left, 0x1111), (right, 0x2222)):
            if (tap, tick) != (left, 10):
                tap(_HEADER.pack(0x80, 0, tick, 160 * tick, ssrc) + silence)
    assert recording.media_quality() == MediaQuality(
        outside_party=ChannelQuality(), pbx_side=ChannelQuality()
    )
    left(_HEADER.pack(0x80, 0, 10, 1600, 0x1111) + silence)  # 0.8 s behind its place: too late
    loop.now = 1.5
    recording.close("ended")
    # The handle is told, for the evidence record, with what the final flush found.
    told = recording.handle.media_quality  # type: ignore[attr-defined]
    assert (
        told
        == recording.media_quality()
        == MediaQuality(outside_party=ChannelQuality(late_packets=1, late_ms=20), pbx_side=ChannelQuality())
    )


def test_lost_audio_and_timestamp_jumps_are_told_as_such_and_silence_suppression_not() -> None:
    loop, recording, left, right = tapped_pcmu_recording()
    silence = ulaw_encode(np.zeros(160, dtype=np.int16))
    for tick in range(150):
        loop.now = 0.0005 + tick / PACKETS_PER_S
        # The outside party's packets 20-22 and 60-109 are lost, and from 120 on its timestamps
        # jump 300 ms ahead (a new source behind the SSRC) while they come on at their pace.
        if not (20 <= tick < 23 or 60 <= tick < 110):
            jump = 2400 if tick >= 120 else 0
            left(_HEADER.pack(0x80, 0, tick, 160 * tick + jump, 0x1111) + silence)
        # The PBX side sends nothing for 1 s (RFC 3551 §4.1: silence suppression, the sequence
        # going on) and loses packet 100.
        if not (30 <= tick < 80 or tick == 100):
            sequence = tick - 50 if tick >= 80 else tick
            right(_HEADER.pack(0x80, 0, sequence, 160 * tick, 0x2222) + silence)
    loop.now = 3.5
    recording.close("ended")
    assert recording.handle.media_quality == MediaQuality(  # type: ignore[attr-defined]
        outside_party=ChannelQuality(lost_ms=1060, timestamp_jumps=1), pbx_side=ChannelQuality(lost_ms=20)
    )


def test_a_new_ssrc_and_packets_that_came_twice_are_told_without_costing_audio() -> None:
    loop, recording, left, right = tapped_pcmu_recording()
    silence = ulaw_encode(np.zeros(160, dtype=np.int16))
    for tick in range(100):
        loop.now = 0.0005 + tick / PACKETS_PER_S
        # The outside party's stream comes from a new source at packet 50 (RFC 3550 §8.2: its own
        # sequence numbers and timestamps); the PBX side's packets 10 and 70 come twice.
        if tick < 50:
            left(_HEADER.pack(0x80, 0, tick, 160 * tick, 0x1111) + silence)
        else:
            left(_HEADER.pack(0x80, 0, 9000 + tick, 777_000 + 160 * tick, 0x3333) + silence)
        packet = _HEADER.pack(0x80, 0, tick, 160 * tick, 0x2222) + silence
        right(packet)
        if tick in (10, 70):
            right(packet)
    loop.now = 2.5
    recording.close("ended")
    assert recording.handle.media_quality == MediaQuality(  # type: ignore[attr-defined]
        outside_party=ChannelQuality(ssrc_changes=1), pbx_side=ChannelQuality(duplicate_packets=2)
    )


def numbered(tick: int, ssrc: int) -> bytes:
    """Packet ``tick`` of a 20 ms µ-law stream whose every packet holds its own constant level."""
    return _HEADER.pack(0x80, 0, tick, 160 * tick, ssrc) + bytes([0x80 + tick % 100]) * 160


def stereo(recording: CallRecording) -> np.ndarray:
    return np.frombuffer(b"".join(recording.handle.blocks), dtype="<i2").reshape(-1, 2)  # type: ignore[attr-defined]


def test_a_stalled_party_s_packets_that_come_in_a_burst_find_their_place() -> None:
    # The outside party's packets of 1.5 s to 2.3 s are held up on the way and come in a burst,
    # in order, with the next one; the flush at 2 s must not drain their places as silence.
    loop, recording, left, right = tapped_pcmu_recording()
    held: list[bytes] = []
    for tick in range(150):
        at = 0.0005 + tick / PACKETS_PER_S
        if int(at) > int(loop.now):  # the flushes at 1 s and 2 s
            loop.now = float(int(at))
            flush_together([recording])
        loop.now = at
        right(numbered(tick, 0x2222))
        if 75 <= tick < 115:
            held.append(numbered(tick, 0x1111))
            continue
        for packet in held:
            left(packet)
        held.clear()
        left(numbered(tick, 0x1111))
    assert recording.blocks_written == 2
    loop.now = 3.1
    recording.close("ended")
    assert recording.media_quality() == MediaQuality(
        outside_party=ChannelQuality(), pbx_side=ChannelQuality()
    )
    audio = stereo(recording)
    # Every packet is in its place: silence only before the first one came (position 4).
    assert np.count_nonzero(audio[: 150 * 160, 0] == 0) == 4


def test_a_party_that_stops_sending_holds_the_flush_back_for_a_second_at_most() -> None:
    loop, recording, left, right = tapped_pcmu_recording()
    drained: list[int] = []
    for tick in range(175):
        at = 0.0005 + tick / PACKETS_PER_S
        if int(at) > int(loop.now):
            loop.now = float(int(at))
            flush_together([recording])
            drained.append(recording.recorder.drained)
        loop.now = at
        right(numbered(tick, 0x2222))
        if tick < 75:  # the outside party sends nothing after 1.5 s (silence suppression, say)
            left(numbered(tick, 0x1111))
    stopped = recording.recorder.heard_until(Channel.LEFT)
    assert stopped == 4 + 75 * 160
    # At 1 s both parties send: the safety margin. At 2 s the flush waits where the outside
    # party's packets stopped; at 3 s that is more than a second ago and the margin rules again.
    assert drained == [8000 - SAFETY_MARGIN_SAMPLES, stopped, 24000 - SAFETY_MARGIN_SAMPLES]


class PauseLog(Handle):
    """A handle that keeps what it is told of pauses: (``pause`` or ``resume``, reason, loop time)."""

    def __init__(self) -> None:
        super().__init__()
        self.told: list[tuple[str, str, float]] = []

    def pause(self, reason: str, at: float) -> None:
        self.told.append(("pause", reason, at))

    def resume(self, reason: str, at: float) -> None:
        self.told.append(("resume", reason, at))


def test_overlapping_pauses_are_each_told_to_the_handle_and_silence_lasts_while_any_holds() -> None:
    # A PCI pause, then the operator's pause over it: the record keeps each reason's own interval,
    # and the audio is silent from the first pause to the end of the last.
    loop = VirtualLoop()
    handle = PauseLog()
    recording = CallRecording(handle, outside_leg=MediaLeg.A, media=None, loop=loop)  # type: ignore[arg-type]
    moments = [("pause", "pci", 1.0), ("pause", "api", 2.0), ("resume", "pci", 3.0), ("resume", "api", 4.0)]
    for verb, reason, moment in moments:
        loop.now = moment
        if verb == "pause":
            recording.pause(reason, moment)
        else:
            recording.resume(reason, moment)
    recording.pause("pci", 5.0)
    recording.pause("pci", 5.5)  # already paused for it: nothing more
    recording.resume("api", 5.5)  # not paused for it: nothing
    assert handle.told == [*moments, ("pause", "pci", 5.0)]
    assert [(p.start, p.end) for p in recording.recorder.pauses] == [(8000, 32000), (40000, None)]
