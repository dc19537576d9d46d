"""Announcement playout over real UDP sockets on 127.0.0.1: what the far end of a leg receives.

Every scenario runs in its own event loop under ``asyncio.timeout``. The far end is a plain
datagram endpoint that records each packet with its arrival time; the leg is a real
``LegProtocol``; the relay hand-over goes through its ``outbound`` hook, and a steady relayed
source is renumbered by the leg itself. Timing asserts are loose (a slow machine must not fail
them); ``benchmarks.announce_load`` measures timing tightly.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import math
import socket
import statistics
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
import uvloop

from announcements import PreparedPrompt, beep_frames, ringback_frames
from announcements.frames import CODECS, encode_frames
from proxy.aio import playout as playout_module
from proxy.aio.announce import CallAnnouncements
from proxy.aio.media import LegProtocol, MediaRelay, MediaSession, RelayRenumbering, RtcpLegProtocol
from proxy.aio.playout import (
    MAX_BURST_FRAMES,
    RELAY_GUARD_PACKETS,
    AnnouncementPlayer,
    Playout,
    PlayoutResult,
    PlayoutScheduler,
)
from proxy.b2bua.effects import MediaFormat, MediaLeg
from proxy.b2bua.settings import Address
from proxy.rtp.packet import RtpPacket, build_rtcp_bye
from proxy.rtp.seqnum import seq_add, seq_diff, ts_add, ts_diff
from tests.e2e.harness import free_port_range

pytestmark = pytest.mark.e2e

LOCALHOST = "127.0.0.1"
SCENARIO_TIMEOUT_S = 10.0
FRAME_S = 0.020
SAMPLES = 160
QUIET_S = 0.06  # three frame intervals: long enough for a packet that should not come
SSRC = 0x5EED_CA11
SOURCE_SSRC = 0x0B0B_0B0B
CODEC_PAYLOAD_TYPES = [("pcmu", 0), ("pcma", 8)]

LoopFactory = Callable[[], asyncio.AbstractEventLoop]
LOOPS: list[Any] = [
    pytest.param(asyncio.new_event_loop, id="asyncio"),
    pytest.param(uvloop.new_event_loop, id="uvloop"),
]


def run(scenario: Callable[[], Coroutine[Any, Any, None]], loop_factory: LoopFactory | None = None) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(SCENARIO_TIMEOUT_S):
            await scenario()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(bounded())


def prepared_prompt(frame_count: int, prompt_id: str = "notice") -> PreparedPrompt:
    """A prompt of ``frame_count`` frames, every frame distinct (a tone that grows louder)."""
    samples = np.arange(frame_count * SAMPLES, dtype=np.float64)
    level = 2000 + 8000 * samples / max(1, len(samples))
    narrow = np.round(level * np.sin(2 * math.pi * 440 * samples / 8000)).astype(np.int16)
    wide_samples = np.arange(frame_count * 2 * SAMPLES, dtype=np.float64)
    wide = np.round(2000 * np.sin(2 * math.pi * 440 * wide_samples / 16000)).astype(np.int16)
    frames = encode_frames(narrow, wide)
    return PreparedPrompt(
        id=prompt_id,
        language="en",
        version="0" * 64,
        source_sha256="0" * 64,
        source=Path(f"{prompt_id}.wav"),
        text=None,
        duration_ms=frame_count * 20,
        frames=frames,
        audio_sha256={codec: hashlib.sha256(b"".join(frames[codec])).hexdigest() for codec in CODECS},
    )


def distinct_frames(count: int, codec: str = "pcmu") -> tuple[bytes, ...]:
    frames = prepared_prompt(count).frames_for(codec)
    assert len(set(frames)) == count
    return frames


# The far end, the legs and the relay hook ---------------------------------------------------------


class FarEnd(asyncio.DatagramProtocol):
    """A peer socket that records every datagram with its arrival time (``time.perf_counter``)."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, bytes]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.arrivals.append((time.perf_counter(), data))

    @property
    def address(self) -> Address:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    @property
    def packets(self) -> list[RtpPacket]:
        return [RtpPacket.parse(data) for _, data in self.arrivals]

    def send(self, data: bytes, to: Address) -> None:
        assert self.transport is not None
        self.transport.sendto(data, to)

    async def wait_for(self, count: int, timeout_s: float = 3.0) -> None:
        async with asyncio.timeout(timeout_s):
            while len(self.arrivals) < count:
                await asyncio.sleep(0.005)


def leg_address(leg: LegProtocol) -> Address:
    assert leg.transport is not None
    host, port = leg.transport.get_extra_info("sockname")[:2]
    return str(host), int(port)


@dataclass
class Rig:
    """Leg a (played to, its far end listening) and leg b (its peer, the other party, sending)."""

    scheduler: PlayoutScheduler
    player: AnnouncementPlayer
    leg: LegProtocol
    other_leg: LegProtocol
    far: FarEnd
    other_party: FarEnd
    source_sequence: int = 40_000
    source_timestamp: int = 3_000_000_000
    source_sent: list[RtpPacket] = field(default_factory=list)

    def source_packet(self, *, ssrc: int = SOURCE_SSRC, marker: bool = False) -> RtpPacket:
        """The other party's next packet: its own SSRC, sequence numbers and timestamps."""
        index = len(self.source_sent)
        packet = RtpPacket(
            payload_type=0,
            sequence=seq_add(self.source_sequence, index),
            timestamp=ts_add(self.source_timestamp, index * SAMPLES),
            ssrc=ssrc,
            marker=marker,
            payload=bytes([index % 256]) * SAMPLES,
        )
        self.source_sent.append(packet)
        return packet

    async def talk(self, count: int, *, ssrc: int = SOURCE_SSRC) -> list[RtpPacket]:
        """The other party sends ``count`` packets toward leg b, one per 20 ms deadline."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        sent = []
        for index in range(count):
            await asyncio.sleep(max(0.0, start + index * FRAME_S - loop.time()))
            packet = self.source_packet(ssrc=ssrc, marker=index == 0)
            self.other_party.send(bytes(packet), leg_address(self.other_leg))
            sent.append(packet)
        return sent

    def call_announcements(self, *, constant_ssrc: bool = True) -> CallAnnouncements:
        """Players of a call's own (legs a and b as the call's legs A and B) in place of the rig's."""
        self.leg.outbound = None
        session = MediaSession(
            call_ref="call",
            rtp={MediaLeg.A: self.leg, MediaLeg.B: self.other_leg},
            rtcp={MediaLeg.A: RtcpLegProtocol(), MediaLeg.B: RtcpLegProtocol()},
            last_activity=0.0,
        )
        return CallAnnouncements(session=session, scheduler=self.scheduler, constant_ssrc=constant_ssrc)

    async def burst(self, count: int, *, ssrc: int = SOURCE_SSRC) -> list[RtpPacket]:
        """The other party sends its next ``count`` packets about a millisecond apart."""
        sent = [self.source_packet(ssrc=ssrc) for _ in range(count)]
        await self.send(sent)
        return sent

    async def send(self, packets: Sequence[RtpPacket]) -> None:
        for packet in packets:
            self.other_party.send(bytes(packet), leg_address(self.other_leg))
            await asyncio.sleep(0.001)


@contextlib.asynccontextmanager
async def rig(
    *,
    sequence: int = 1000,
    timestamp: int = 160_000,
    scheduler: PlayoutScheduler | None = None,
    renumber_relayed: bool = True,
) -> AsyncIterator[Rig]:
    loop = asyncio.get_running_loop()
    endpoints: list[asyncio.BaseTransport] = []

    async def endpoint(factory: Callable[[], asyncio.DatagramProtocol]) -> Any:
        transport, protocol = await loop.create_datagram_endpoint(factory, local_addr=(LOCALHOST, 0))
        endpoints.append(transport)
        return protocol

    try:
        far = await endpoint(FarEnd)
        other_party = await endpoint(FarEnd)
        leg = await endpoint(LegProtocol)
        other_leg = await endpoint(LegProtocol)
        leg.other, other_leg.other = other_leg, leg
        leg.set_remote(far.address)
        other_leg.set_remote(other_party.address)
        scheduler = scheduler or PlayoutScheduler()
        player = AnnouncementPlayer(
            leg,
            scheduler,
            ssrc=SSRC,
            sequence=sequence,
            timestamp=timestamp,
            renumber_relayed=renumber_relayed,
        )
        leg.outbound = player.relay
        yield Rig(scheduler, player, leg, other_leg, far, other_party)
    finally:
        for transport in endpoints:
            transport.close()


def pcmu(player: AnnouncementPlayer, frames: Sequence[bytes], *, loop: bool = False) -> Playout:
    return player.play(frames, payload_type=0, clock_rate=8000, samples_per_frame=SAMPLES, loop=loop)


def assert_continuous(packets: Sequence[RtpPacket], *, first_sequence: int, first_timestamp: int) -> None:
    """One SSRC, sequence numbers +1 and timestamps +160 from the given first values."""
    assert [p.ssrc for p in packets] == [SSRC] * len(packets)
    assert [p.sequence for p in packets] == [seq_add(first_sequence, i) for i in range(len(packets))]
    assert [p.timestamp for p in packets] == [
        ts_add(first_timestamp, i * SAMPLES) for i in range(len(packets))
    ]


def gaps_ms(arrivals: Sequence[tuple[float, bytes]]) -> list[float]:
    return [(b[0] - a[0]) * 1000 for a, b in itertools.pairwise(arrivals)]


# One prompt ------------------------------------------------------------------------------------


@pytest.mark.parametrize("delay_s", [0.0, 0.015, 0.045])
def test_not_before_holds_the_first_frame_until_then(delay_s: float) -> None:
    prompt = prepared_prompt(5)
    frames = prompt.frames_for("pcmu")

    async def scenario() -> None:
        async with rig() as r:
            asked_at = asyncio.get_running_loop().time()
            result = await r.player.play(
                frames,
                payload_type=0,
                clock_rate=8000,
                samples_per_frame=SAMPLES,
                not_before=asked_at + delay_s,
            )
            await asyncio.sleep(QUIET_S)
            assert len(r.far.packets) == 5
            assert result.started_at is not None
            # The first tick at or after the moment asked for: never earlier, at most a frame later.
            assert asked_at + delay_s - 1e-9 <= result.started_at <= asked_at + delay_s + FRAME_S + 1e-9

    run(scenario, uvloop.new_event_loop)


@pytest.mark.parametrize("loop_factory", LOOPS)
@pytest.mark.parametrize(("codec", "payload_type"), CODEC_PAYLOAD_TYPES)
def test_a_prompt_arrives_whole_numbered_and_paced(
    loop_factory: LoopFactory, codec: str, payload_type: int
) -> None:
    prompt = prepared_prompt(30)
    frames = prompt.frames_for(codec)

    async def scenario() -> None:
        # Sequence numbers and timestamps wrap within the prompt.
        async with rig(sequence=65_520, timestamp=2**32 - 8 * SAMPLES) as r:
            loop = asyncio.get_running_loop()
            asked_at = loop.time()
            result = await r.player.play(
                frames, payload_type=payload_type, clock_rate=8000, samples_per_frame=SAMPLES
            )
            await asyncio.sleep(QUIET_S)
            packets = r.far.packets
            assert len(packets) == 30
            assert [p.payload for p in packets] == list(frames)
            assert [p.payload_type for p in packets] == [payload_type] * 30
            assert [p.marker for p in packets] == [True] + [False] * 29
            assert_continuous(packets, first_sequence=65_520, first_timestamp=2**32 - 8 * SAMPLES)
            assert result.completed
            assert (result.frames_played, result.frames_sent, result.stalls) == (30, 30, 0)
            assert result.started_at is not None
            assert result.ended_at == pytest.approx(result.started_at + 30 * FRAME_S, abs=1e-9)
            assert asked_at - 0.002 <= result.started_at <= asked_at + FRAME_S + 0.002
            assert 17.0 <= statistics.median(gaps_ms(r.far.arrivals)) <= 23.0
            assert r.scheduler.active == 0

    run(scenario, loop_factory)


def test_the_beep_is_eight_packets() -> None:
    async def scenario() -> None:
        async with rig() as r:
            result = await pcmu(r.player, beep_frames("pcmu"))
            await r.far.wait_for(8)
            await asyncio.sleep(QUIET_S)
            assert [p.payload for p in r.far.packets] == list(beep_frames("pcmu"))
            assert result.frames_sent == 8

    run(scenario)


@pytest.mark.parametrize(
    ("use_remote", "use_latched", "receiver"),
    [
        pytest.param(True, False, "remote", id="sdp-address"),
        pytest.param(True, True, "latched", id="latched-wins"),
        pytest.param(False, True, "latched", id="latched-only"),
    ],
)
def test_packets_go_to_the_latched_address_else_the_sdp_one(
    use_remote: bool, use_latched: bool, receiver: str
) -> None:
    async def scenario() -> None:
        async with rig() as r:
            r.leg.set_remote(r.far.address if use_remote else None)
            if use_latched:
                r.leg.latched = r.other_party.address
            result = await pcmu(r.player, distinct_frames(3))
            await asyncio.sleep(QUIET_S)
            received = {"remote": len(r.far.arrivals), "latched": len(r.other_party.arrivals)}
            expected = {"remote": 0, "latched": 0}
            expected[receiver] = 3
            assert received == expected
            assert result.frames_played == 3
            assert result.frames_sent == 3
            assert result.completed

    run(scenario)


def test_a_prompt_waits_for_the_party_s_first_packet_when_it_has_no_address() -> None:
    # An SDP address the sockets cannot use is not set (MediaRelay.set_remote): the first frame
    # waits until the party's own RTP latches the leg, and the whole prompt reaches it.
    frames = distinct_frames(4)

    async def scenario() -> None:
        async with rig() as r:
            r.leg.set_remote(None)
            playout = pcmu(r.player, frames)
            await asyncio.sleep(0.2)
            assert r.far.arrivals == []
            assert playout.active
            r.leg.latched = r.far.address
            result = await playout
            await asyncio.sleep(QUIET_S)
            assert [p.payload for p in r.far.packets] == list(frames)
            assert (result.frames_played, result.frames_sent, result.completed, result.error) == (
                4,
                4,
                True,
                None,
            )
            assert r.far.packets[0].marker

    run(scenario)


def test_a_prompt_with_nowhere_to_go_fails_after_the_address_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(playout_module, "ADDRESS_WAIT_S", 0.2)

    async def scenario() -> None:
        async with rig() as r:
            r.leg.set_remote(None)
            started = time.perf_counter()
            result = await pcmu(r.player, distinct_frames(3))
            waited = time.perf_counter() - started
            assert 0.18 <= waited < 2.0
            assert (result.frames_played, result.frames_sent, result.completed) == (0, 0, False)
            assert result.error is not None
            assert "no address to send to" in result.error
            assert r.player.playing is None

    run(scenario)


def test_a_send_that_raises_fails_the_playout_with_its_error() -> None:
    # uvloop raises at once for an address of another family: the scheduler ends the playout
    # with the error, so that the call's announcer learns of it (and the other players go on).
    async def scenario() -> None:
        async with rig() as r, rig(scheduler=r.scheduler) as healthy:
            r.leg.set_remote(("::1", r.far.address[1]))
            broken = pcmu(r.player, distinct_frames(3))
            fine = pcmu(healthy.player, distinct_frames(3))
            result = await broken
            assert not result.completed
            assert result.error is not None
            assert "ValueError" in result.error
            assert (await fine).completed
            await asyncio.sleep(QUIET_S)
            assert len(healthy.far.arrivals) == 3

    run(scenario, uvloop.new_event_loop)


# Successive prompts ------------------------------------------------------------------------------


def test_notice_question_and_ringback_continue_one_talkspurt() -> None:
    notice, question = distinct_frames(6), prepared_prompt(4, "question").frames_for("pcmu")
    ringback = ringback_frames("pcmu")

    async def scenario() -> None:
        async with rig() as r:
            first = await pcmu(r.player, notice)
            second = await pcmu(r.player, question)
            playout = pcmu(r.player, ringback, loop=True)
            await r.far.wait_for(6 + 4 + 5)
            playout.stop()
            third = await playout
            await asyncio.sleep(QUIET_S)
            packets = r.far.packets
            rung = third.frames_sent
            assert [p.payload for p in packets] == [*notice, *question, *ringback[:rung]]
            assert_continuous(packets, first_sequence=1000, first_timestamp=160_000)
            assert [p.marker for p in packets] == [True] + [False] * (len(packets) - 1)
            assert second.started_at == pytest.approx(first.ended_at, abs=1e-9)
            assert third.started_at == pytest.approx(second.ended_at, abs=1e-9)
            assert (first.completed, second.completed, third.completed) == (True, True, False)

    run(scenario)


@pytest.mark.parametrize("pause_s", [0.05, 0.13])
def test_a_pause_between_prompts_moves_the_timestamp_and_sets_the_marker(pause_s: float) -> None:
    async def scenario() -> None:
        async with rig() as r:
            first = await pcmu(r.player, distinct_frames(3))
            await asyncio.sleep(pause_s)
            second = await pcmu(r.player, distinct_frames(3))
            await asyncio.sleep(QUIET_S)
            packets = r.far.packets
            assert [p.sequence for p in packets] == [seq_add(1000, i) for i in range(6)]
            assert [p.marker for p in packets] == [True, False, False, True, False, False]
            assert second.started_at is not None
            assert first.ended_at is not None
            # The gap in media time is exactly the gap between the deadlines, whole frames of it.
            gap_frames = round((second.started_at - first.ended_at) / FRAME_S)
            assert gap_frames >= round(pause_s / FRAME_S)
            assert ts_diff(packets[3].timestamp, packets[2].timestamp) == (gap_frames + 1) * SAMPLES
            assert [ts_diff(packets[i + 1].timestamp, packets[i].timestamp) for i in (0, 1, 3, 4)] == [
                SAMPLES
            ] * 4

    run(scenario)


def test_a_new_prompt_replaces_the_one_playing() -> None:
    first_frames, second_frames = distinct_frames(50), prepared_prompt(4, "other").frames_for("pcmu")

    async def scenario() -> None:
        async with rig() as r:
            first = pcmu(r.player, first_frames)
            await r.far.wait_for(5)
            second = pcmu(r.player, second_frames)
            interrupted, finished = await first, await second
            await asyncio.sleep(QUIET_S)
            packets = r.far.packets
            played = interrupted.frames_sent
            assert not interrupted.completed
            assert finished.completed
            assert [p.payload for p in packets] == [*first_frames[:played], *second_frames]
            assert_continuous(packets, first_sequence=1000, first_timestamp=160_000)
            assert [p.marker for p in packets] == [True] + [False] * (len(packets) - 1)

    run(scenario)


# Stopping and looping ----------------------------------------------------------------------------


def test_stop_mid_prompt_sends_nothing_more() -> None:
    frames = distinct_frames(50)

    async def scenario() -> None:
        async with rig() as r:
            playout = pcmu(r.player, frames)
            await r.far.wait_for(6)
            playout.stop()
            result = await playout
            await asyncio.sleep(QUIET_S)
            count = len(r.far.arrivals)
            assert 6 <= count < 50
            assert (result.frames_played, result.frames_sent, result.completed) == (count, count, False)
            assert [p.payload for p in r.far.packets] == list(frames[:count])
            assert result.started_at is not None
            assert result.ended_at == pytest.approx(result.started_at + count * FRAME_S, abs=1e-9)
            assert r.player.playing is None
            assert not playout.active
            playout.stop()  # a second stop changes nothing
            assert (await playout) == result

    run(scenario)


def test_a_looped_prompt_repeats_until_stopped() -> None:
    frames = distinct_frames(4)

    async def scenario() -> None:
        async with rig() as r:
            playout = pcmu(r.player, frames, loop=True)
            await r.far.wait_for(11)
            playout.stop()
            result = await playout
            await asyncio.sleep(QUIET_S)
            packets = r.far.packets
            assert len(packets) == result.frames_sent >= 11
            assert [p.payload for p in packets] == [frames[i % 4] for i in range(len(packets))]
            assert_continuous(packets, first_sequence=1000, first_timestamp=160_000)
            assert [p.marker for p in packets] == [True] + [False] * (len(packets) - 1)

    run(scenario)


def test_cancelling_the_task_that_awaits_a_playout_stops_it() -> None:
    async def scenario() -> None:
        async with rig() as r:
            playout = pcmu(r.player, distinct_frames(50))
            waiter = asyncio.ensure_future(playout)
            await r.far.wait_for(3)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            await asyncio.sleep(QUIET_S)
            count = len(r.far.arrivals)
            await asyncio.sleep(QUIET_S)
            assert len(r.far.arrivals) == count < 50
            assert r.player.playing is None
            assert r.scheduler.active == 0

    run(scenario)


def test_an_empty_prompt_completes_at_once_and_sends_nothing() -> None:
    async def scenario() -> None:
        async with rig() as r:
            result = await pcmu(r.player, ())
            await asyncio.sleep(QUIET_S)
            assert result == PlayoutResult(
                started_at=None, ended_at=None, frames_played=0, frames_sent=0, completed=True, stalls=0
            )
            assert r.far.arrivals == []

    run(scenario)


# Late ticks --------------------------------------------------------------------------------------


def test_a_short_stall_is_caught_up_in_a_burst() -> None:
    frames = distinct_frames(15)

    async def scenario() -> None:
        async with rig() as r:
            loop = asyncio.get_running_loop()
            playout = pcmu(r.player, frames)
            await r.far.wait_for(3)
            loop.call_soon(time.sleep, (MAX_BURST_FRAMES - 1.8) * FRAME_S)  # block the loop
            result = await playout
            await asyncio.sleep(QUIET_S)
            packets = r.far.packets
            assert [p.payload for p in packets] == list(frames)
            assert_continuous(packets, first_sequence=1000, first_timestamp=160_000)
            assert [p.marker for p in packets] == [True] + [False] * 14
            assert result.stalls == 0
            assert result.started_at is not None
            assert result.ended_at == pytest.approx(result.started_at + 15 * FRAME_S, abs=1e-9)

    run(scenario)


def test_a_long_stall_skips_deadlines_but_no_audio() -> None:
    frames = distinct_frames(15)
    stall_s = 0.2

    async def scenario() -> None:
        async with rig() as r:
            loop = asyncio.get_running_loop()
            playout = pcmu(r.player, frames)
            await r.far.wait_for(3)
            loop.call_soon(time.sleep, stall_s)
            result = await playout
            await asyncio.sleep(QUIET_S)
            packets = r.far.packets
            assert [p.payload for p in packets] == list(frames)
            assert [p.sequence for p in packets] == [seq_add(1000, i) for i in range(15)]
            steps = [ts_diff(b.timestamp, a.timestamp) for a, b in itertools.pairwise(packets)]
            [resumed] = [i + 1 for i, step in enumerate(steps) if step != SAMPLES]
            assert steps[resumed - 1] % SAMPLES == 0
            assert steps[resumed - 1] > MAX_BURST_FRAMES * SAMPLES
            assert [p.marker for p in packets] == [i in (0, resumed) for i in range(15)]
            assert result.stalls == 1
            assert result.completed
            assert result.started_at is not None
            assert result.ended_at is not None
            # The prompt ends later by the skipped deadlines.
            skipped = steps[resumed - 1] // SAMPLES - 1
            assert result.ended_at == pytest.approx(result.started_at + (15 + skipped) * FRAME_S, abs=1e-9)

    run(scenario)


# One scheduler for many players ------------------------------------------------------------------


def test_twenty_players_share_one_timer_callback_per_tick() -> None:
    async def scenario() -> None:
        scheduler = PlayoutScheduler()
        async with contextlib.AsyncExitStack() as stack:
            rigs = [await stack.enter_async_context(rig(scheduler=scheduler)) for _ in range(20)]
            # Join the grid together: start every prompt within one tick's callbacks.
            playouts = [pcmu(r.player, distinct_frames(10)) for r in rigs]
            results = await asyncio.gather(*playouts)
            await asyncio.sleep(QUIET_S)
            assert [len(r.far.arrivals) for r in rigs] == [10] * 20
            assert {res.started_at for res in results} == {results[0].started_at}
            assert scheduler.ticks + scheduler.late_ticks == 10
            assert scheduler.active == 0

    run(scenario)


# Switching to relayed media ----------------------------------------------------------------------


def test_relayed_media_before_any_prompt_passes_unchanged() -> None:
    async def scenario() -> None:
        async with rig() as r:
            sent = await r.talk(5)
            await r.far.wait_for(5)
            assert [data for _, data in r.far.arrivals] == [bytes(p) for p in sent]

    run(scenario)


def test_relayed_media_continues_the_announcement_stream() -> None:
    prompt = distinct_frames(5)

    async def scenario() -> None:
        async with rig() as r:
            playout = pcmu(r.player, prompt)
            during = await r.talk(3)  # the other party speaks during the announcement: not heard
            await playout
            after = await r.talk(10)
            await r.far.wait_for(15)
            await asyncio.sleep(QUIET_S)
            packets = r.far.packets
            assert len(packets) == 15
            assert r.player.relay_dropped == len(during)
            assert [p.payload for p in packets] == [*prompt, *(p.payload for p in after)]
            assert [p.ssrc for p in packets] == [SSRC] * 15
            assert [p.sequence for p in packets] == [seq_add(1000, i) for i in range(15)]
            assert [p.marker for p in packets] == [True] + [False] * 4 + [True] + [False] * 9
            # No jump back: the first relayed packet comes at least a frame after the last prompt frame.
            switch = ts_diff(packets[5].timestamp, packets[4].timestamp)
            assert SAMPLES <= switch < 50 * SAMPLES
            # After the switch the source's own timestamp steps pass through.
            assert [ts_diff(b.timestamp, a.timestamp) for a, b in itertools.pairwise(packets[5:])] == [
                ts_diff(b.timestamp, a.timestamp) for a, b in itertools.pairwise(after)
            ]

    run(scenario)


def test_relay_then_announcement_then_relay_again() -> None:
    ringback = ringback_frames("pcmu")

    async def scenario() -> None:
        async with rig() as r:
            await pcmu(r.player, distinct_frames(2))
            await r.talk(4)
            await r.far.wait_for(6)
            rung = pcmu(r.player, ringback, loop=True)
            await r.far.wait_for(6 + 3)
            rung.stop()
            await rung
            await r.talk(4)
            await r.far.wait_for(6 + 3 + 4)
            await asyncio.sleep(QUIET_S)
            packets = r.far.packets
            assert [p.ssrc for p in packets] == [SSRC] * len(packets)
            assert [p.sequence for p in packets] == [seq_add(1000, i) for i in range(len(packets))]
            steps = [ts_diff(b.timestamp, a.timestamp) for a, b in itertools.pairwise(packets)]
            assert min(steps) >= SAMPLES
            markers = [i for i, p in enumerate(packets) if p.marker]
            assert markers == [0, 2, 6, len(packets) - 4]

    run(scenario)


def test_without_constant_ssrc_relayed_media_passes_unchanged_after_a_prompt() -> None:
    prompt = distinct_frames(5)

    async def scenario() -> None:
        async with rig(renumber_relayed=False) as r:
            playout = pcmu(r.player, prompt)
            hook_needed = [r.player.needs_relay_hook]
            during = await r.talk(3)  # not heard: the leg carries the prompt
            await playout
            hook_needed.append(r.player.needs_relay_hook)
            assert hook_needed == [True, False]
            after = await r.talk(6)
            await r.far.wait_for(11)
            await pcmu(r.player, distinct_frames(2))
            await r.far.wait_for(13)
            await asyncio.sleep(QUIET_S)
            assert r.player.relay_dropped == len(during)
            own = [*r.far.packets[:5], *r.far.packets[11:]]
            assert [p.payload for p in own[:5]] == list(prompt)
            # The other party's own packets, byte for byte: its SSRC and numbering (RFC 3550 §8.2).
            assert [data for _, data in r.far.arrivals[5:11]] == [bytes(p) for p in after]
            # The next prompt continues the player's stream: its SSRC, its numbering, a new talkspurt,
            # and a timestamp no earlier than the media time that passed meanwhile.
            assert [p.ssrc for p in own] == [SSRC] * 7
            assert [p.sequence for p in own] == [seq_add(1000, i) for i in range(7)]
            assert [p.marker for p in own[5:]] == [True, False]
            assert ts_diff(own[5].timestamp, own[4].timestamp) >= len(after) * SAMPLES

    run(scenario)


@pytest.mark.parametrize("constant_ssrc", [True, False], ids=["constant-ssrc", "ssrc-changes"])
def test_call_announcements_hook_a_player_in_only_while_it_has_a_say(constant_ssrc: bool) -> None:
    """The relay hands packets to a leg's player while a prompt plays, while the parties are kept
    apart, and, with a constant SSRC, for good after a prompt; otherwise it sends them itself."""

    async def scenario() -> None:
        async with rig() as r:
            announcements = r.call_announcements(constant_ssrc=constant_ssrc)
            players = announcements.players

            def hooked() -> list[bool]:
                return [
                    leg.outbound is not None and leg.outbound == players[name].relay
                    for name, leg in ((MediaLeg.A, r.leg), (MediaLeg.B, r.other_leg))
                ]

            announcements.bridge(False)
            assert hooked() == [True, True]
            playout = announcements.play(
                MediaLeg.A, distinct_frames(3), MediaFormat(codec="pcmu", payload_type=0)
            )
            announcements.bridge(True)
            assert hooked() == [True, False]
            await playout
            await asyncio.sleep(0)  # the playout's done callbacks
            assert hooked() == [constant_ssrc, False]
            after = await r.talk(4)
            await r.far.wait_for(7)
            relayed = r.far.packets[3:]
            if constant_ssrc:
                assert [p.ssrc for p in relayed] == [players[MediaLeg.A].ssrc] * 4
            else:
                assert [data for _, data in r.far.arrivals[3:]] == [bytes(p) for p in after]
            announcements.close()
            assert (r.leg.outbound, r.other_leg.outbound) == (None, None)

    run(scenario)


# A party that asked for other packets (a=ptime, RFC 4566 §6) --------------------------------------


@pytest.mark.parametrize("loop_factory", LOOPS)
def test_a_party_that_asked_for_30_ms_hears_the_prompt_in_30_ms_packets_then_the_other_party(
    loop_factory: LoopFactory,
) -> None:
    # 12 frames of 20 ms are 8 packets of 30 ms: 240 bytes, 30 ms apart, timestamps 240 apart.
    # The relay takes the stream over after them, one packet's worth on at least, as after 20 ms.
    prompt = distinct_frames(12)
    packet_30ms = MediaFormat(codec="pcmu", payload_type=0, packet_ms=30)

    async def scenario() -> None:
        async with rig() as r:
            announcements = r.call_announcements()
            announcements.bridge(True)
            result = await announcements.play(MediaLeg.A, prompt, packet_30ms)
            after = await r.talk(RELAY_GUARD_PACKETS + 5)
            await r.far.wait_for(8 + len(after))
            packets = r.far.packets
            played, relayed = packets[:8], packets[8:]
            assert [len(p.payload) for p in played] == [240] * 8
            assert b"".join(p.payload for p in played) == b"".join(prompt)
            player = announcements.players[MediaLeg.A]
            assert [p.ssrc for p in packets] == [player.ssrc] * len(packets)
            first = played[0]
            assert [p.sequence for p in packets] == [seq_add(first.sequence, i) for i in range(len(packets))]
            assert [ts_diff(p.timestamp, first.timestamp) for p in played] == [240 * i for i in range(8)]
            assert (result.completed, result.frames_played) == (True, 8)
            assert result.started_at is not None
            assert result.ended_at == pytest.approx(result.started_at + 8 * 0.030)
            gaps = gaps_ms(r.far.arrivals[:8])
            assert 25 <= statistics.median(gaps) <= 35, gaps
            assert sum(gaps) >= 7 * 30 - 10, gaps
            switch = ts_diff(relayed[0].timestamp, played[-1].timestamp)
            assert 240 <= switch < 50 * SAMPLES
            assert [p.marker for p in packets[7:10]] == [False, True, False]
            # Past the guard the relay renumbers on its own: the source's steps pass through.
            assert r.leg.renumber is not None
            assert [ts_diff(b.timestamp, a.timestamp) for a, b in itertools.pairwise(relayed)] == [
                SAMPLES
            ] * (len(relayed) - 1)
            announcements.close()

    run(scenario, loop_factory)


@pytest.mark.parametrize(("packet_ms", "lengths"), [(10, [80] * 16), (40, [320] * 4), (60, [480] * 3)])
def test_the_beep_goes_in_the_packets_the_agent_asked_for(packet_ms: int, lengths: list[int]) -> None:
    # 160 ms in 60 ms packets: the last one is filled with silence to 60 ms (RFC 3551 §4.5).
    beep = beep_frames("pcmu")  # 8 frames, 160 ms

    async def scenario() -> None:
        async with rig() as r:
            announcements = r.call_announcements()
            media = MediaFormat(codec="pcmu", payload_type=0, packet_ms=packet_ms)
            await announcements.play(MediaLeg.A, beep, media)
            await r.far.wait_for(len(lengths))
            await asyncio.sleep(QUIET_S)
            packets = r.far.packets
            assert [len(p.payload) for p in packets] == lengths
            audio = b"".join(beep)
            assert b"".join(p.payload for p in packets) == audio + b"\xff" * (sum(lengths) - len(audio))
            steps = [ts_diff(b.timestamp, a.timestamp) for a, b in itertools.pairwise(packets)]
            assert steps == [8 * packet_ms] * (len(packets) - 1)
            announcements.close()

    run(scenario)


def test_each_packet_duration_has_one_grid_closed_with_the_first() -> None:
    async def scenario() -> None:
        scheduler = PlayoutScheduler()
        grid_30ms = scheduler.for_interval(0.030)
        assert grid_30ms.interval_s == 0.030
        assert scheduler.for_interval(0.030) is grid_30ms
        assert grid_30ms.for_interval(0.020) is scheduler
        player = AnnouncementPlayer(FakeLeg(None), scheduler)
        with pytest.raises(ValueError, match="160 samples at 8000 Hz do not last 30 ms"):
            player.play(
                [b"x" * 160], payload_type=0, clock_rate=8000, samples_per_frame=160, scheduler=grid_30ms
            )
        playout = player.play(
            [b"x" * 240] * 50, payload_type=0, clock_rate=8000, samples_per_frame=240, scheduler=grid_30ms
        )
        assert (scheduler.active, grid_30ms.active) == (0, 1)
        scheduler.close()
        assert not (await playout).completed
        assert grid_30ms.active == 0

    run(scenario)


def test_a_new_source_while_relaying_is_anchored_again() -> None:
    async def scenario() -> None:
        async with rig() as r:
            await pcmu(r.player, distinct_frames(2))
            await r.talk(4)
            r.source_sequence, r.source_timestamp = 7, 99  # a transfer: new SSRC, numbering restarts
            await r.talk(4, ssrc=SOURCE_SSRC + 1)
            await r.far.wait_for(10)
            await asyncio.sleep(QUIET_S)
            packets = r.far.packets
            assert [p.sequence for p in packets] == [seq_add(1000, i) for i in range(10)]
            assert [p.ssrc for p in packets] == [SSRC] * 10
            assert [p.marker for p in packets] == [i in (0, 2, 6) for i in range(10)]
            steps = [ts_diff(b.timestamp, a.timestamp) for a, b in itertools.pairwise(packets)]
            assert min(steps) >= SAMPLES
            assert [steps[i] for i in (0, 2, 3, 4, 6, 7, 8)] == [SAMPLES] * 7

    run(scenario)


# The relay renumbering a steady source itself ---------------------------------------------------


def test_the_relay_renumbers_a_steady_source_and_a_prompt_continues_from_the_newest() -> None:
    async def scenario() -> None:
        async with rig() as r:
            await pcmu(r.player, distinct_frames(2))
            await r.burst(RELAY_GUARD_PACKETS + 10)
            handed_to_relay = r.leg.renumber is not None  # past the guard: the relay renumbers by itself
            older, newest = r.source_packet(), r.source_packet()
            await r.send([newest, older])  # reordered on the way
            relayed = RELAY_GUARD_PACKETS + 12
            await r.far.wait_for(2 + relayed)
            prompt = distinct_frames(3)
            await pcmu(r.player, prompt)
            taken_back = r.leg.renumber is None  # the player took the stream back for its prompt
            assert (handed_to_relay, taken_back) == (True, True)
            await r.far.wait_for(2 + relayed + 3)
            await asyncio.sleep(QUIET_S)
            packets = r.far.packets
            assert [p.ssrc for p in packets] == [SSRC] * len(packets)
            by_source = packets[2 : 2 + relayed]
            assert [p.payload for p in by_source] == [p.payload for p in (*r.source_sent[:-2], newest, older)]
            assert [p.payload for p in packets[-3:]] == list(prompt)
            # The relayed packets keep the source's order and steps; the prompt follows the newest.
            last_relayed = max(by_source, key=lambda p: seq_diff(p.sequence, by_source[0].sequence))
            assert last_relayed.payload == newest.payload
            assert [p.sequence for p in packets[-3:]] == [
                seq_add(last_relayed.sequence, i) for i in (1, 2, 3)
            ]
            assert ts_diff(packets[-3].timestamp, last_relayed.timestamp) >= SAMPLES
            assert [p.marker for p in packets[-3:]] == [True, False, False]
            assert sorted(seq_diff(p.sequence, 1002) for p in by_source) == list(range(relayed))

    run(scenario)


def test_keeping_the_parties_apart_stops_a_renumbering_relay_at_once() -> None:
    """Keeping the parties apart (notice and consent) must drop the very next relayed packet, also
    when the relay renumbers by itself."""

    async def scenario() -> None:
        async with rig() as r:
            announcements = r.call_announcements()
            await announcements.play(
                MediaLeg.A, distinct_frames(2), MediaFormat(codec="pcmu", payload_type=0)
            )
            await asyncio.sleep(0)  # the playout's done callbacks
            before = await r.burst(RELAY_GUARD_PACKETS + 5)
            await r.far.wait_for(2 + len(before))
            assert r.leg.renumber is not None
            announcements.bridge(False)
            kept_apart = await r.burst(5)
            await asyncio.sleep(QUIET_S)
            assert len(r.far.arrivals) == 2 + len(before)
            assert announcements.players[MediaLeg.A].relay_dropped == len(kept_apart)
            announcements.bridge(True)
            after = await r.burst(RELAY_GUARD_PACKETS + 5)
            await r.far.wait_for(2 + len(before) + len(after))
            assert r.leg.renumber is not None
            packets = r.far.packets
            assert [p.payload for p in packets[2:]] == [p.payload for p in (*before, *after)]
            assert {p.ssrc for p in packets} == {announcements.players[MediaLeg.A].ssrc}
            steps = [seq_diff(b.sequence, a.sequence) for a, b in itertools.pairwise(packets)]
            assert steps == [1] * (1 + len(before)) + [1 + len(kept_apart)] + [1] * (len(after) - 1)
            announcements.close()
            assert r.leg.renumber is None

    run(scenario)


def test_a_new_source_takes_the_stream_over_from_a_renumbering_relay() -> None:
    async def scenario() -> None:
        async with rig() as r:
            await pcmu(r.player, distinct_frames(2))
            first = await r.burst(RELAY_GUARD_PACKETS + 5)
            r.source_sequence, r.source_timestamp = 7, 99  # a transfer: new SSRC, numbering restarts
            second = await r.burst(4, ssrc=SOURCE_SSRC + 1)
            await r.far.wait_for(2 + len(first) + len(second))
            await asyncio.sleep(QUIET_S)
            packets = r.far.packets
            assert [p.sequence for p in packets] == [seq_add(1000, i) for i in range(len(packets))]
            assert [p.ssrc for p in packets] == [SSRC] * len(packets)
            switch = 2 + len(first)
            assert [i for i, p in enumerate(packets) if p.marker] == [0, 2, switch]
            assert ts_diff(packets[switch].timestamp, packets[switch - 1].timestamp) >= SAMPLES

    run(scenario)


# The relay hook, packet by packet (recording transport, no sockets) -------------------------------


class RecordingTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Address]] = []

    def sendto(self, data: bytes, addr: Address) -> None:
        self.sent.append((data, addr))


@dataclass
class FakeLeg:
    transport: asyncio.DatagramTransport | None
    latched: Address | None = None
    remote: Address | None = ("192.0.2.1", 4000)
    sock: socket.socket | None = None
    renumber: RelayRenumbering | None = None
    renumbered_sequence: int = 0
    renumbered_timestamp: int = 0
    rtcp_renumber: RelayRenumbering | None = None
    rtcp_blocked: bool = False
    outbound: Callable[[bytes, Address], None] | None = None


def source(sequence: int, timestamp: int, *, ssrc: int = SOURCE_SSRC, marker: bool = False) -> bytes:
    return bytes(
        RtpPacket(
            payload_type=0,
            sequence=sequence,
            timestamp=timestamp,
            ssrc=ssrc,
            marker=marker,
            payload=b"\x7f" * 4,
        )
    )


@pytest.mark.parametrize(
    ("arriving", "expected"),
    [
        pytest.param(
            [source(500, 8000, marker=True), source(501, 8160), source(503, 8480), source(502, 8320)],
            [(0, 0, True), (1, 160, False), (3, 480, False), (2, 320, False)],
            id="gaps-and-reordering-pass-through",
        ),
        pytest.param(
            [source(500, 8000), source(499, 7840), source(501, 8160)],
            [(0, 0, True), None, (1, 160, False)],
            id="older-than-the-anchor-dropped",
        ),
        pytest.param(
            [source(65_535, 2**32 - 160), source(0, 0), source(1, 160)],
            [(0, 0, True), (1, 160, False), (2, 320, False)],
            id="source-wraps",
        ),
        pytest.param(
            [source(500, 8000), b"\x00" * 20, b"\x80\x00", source(501, 8160, marker=True)],
            [(0, 0, True), None, None, (1, 160, True)],
            id="malformed-dropped-marker-kept",
        ),
    ],
)
def test_the_relay_hook_renumbers_after_a_prompt(
    arriving: list[bytes], expected: list[tuple[int, int, bool] | None]
) -> None:
    """Expected: (sequence, timestamp) relative to the first relayed packet, and the marker; None: dropped."""

    async def scenario() -> None:
        transport = RecordingTransport()
        leg = FakeLeg(cast(asyncio.DatagramTransport, transport))
        player = AnnouncementPlayer(leg, PlayoutScheduler(), ssrc=SSRC, sequence=10, timestamp=1000)
        await pcmu(player, distinct_frames(2))
        transport.sent.clear()
        target = ("192.0.2.9", 5000)
        dropped_before = player.relay_dropped
        for data in arriving:
            player.relay(data, target)
        out = [RtpPacket.parse(data) for data, _ in transport.sent]
        assert {addr for _, addr in transport.sent} == {target}
        kept = [e for e in expected if e is not None]
        assert len(out) == len(kept)
        assert player.relay_dropped - dropped_before == expected.count(None)
        first = out[0]
        assert first.sequence == 12  # right after the two prompt frames
        assert ts_diff(first.timestamp, 1160) >= SAMPLES
        assert [
            (seq_diff(p.sequence, first.sequence), ts_diff(p.timestamp, first.timestamp), p.marker)
            for p in out
        ] == kept
        assert {p.ssrc for p in out} == {SSRC}
        sources = [RtpPacket.parse(d) for d in arriving if len(d) >= 12 and d[0] == 0x80]
        assert {p.payload for p in out} <= {p.payload for p in sources}

    run(scenario)


def test_the_relay_guard_ends_after_max_misorder_packets() -> None:
    """Only packets within ``RELAY_GUARD_PACKETS`` of the switch are checked against the anchor, so
    a long call whose sequence numbers wrap past the anchor is not cut off."""

    async def scenario() -> None:
        transport = RecordingTransport()
        player = AnnouncementPlayer(FakeLeg(cast(asyncio.DatagramTransport, transport)), PlayoutScheduler())
        await pcmu(player, distinct_frames(1))
        transport.sent.clear()
        for index in range(RELAY_GUARD_PACKETS + 1):
            player.relay(source(index, index * SAMPLES), ("192.0.2.9", 5000))
        player.relay(source(65_535, 2**32 - SAMPLES), ("192.0.2.9", 5000))  # "older" after 32768+ packets
        assert len(transport.sent) == RELAY_GUARD_PACKETS + 2
        assert player.relay_dropped == 0

    run(scenario)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(source(1, 160), id="rtp"),
        pytest.param(build_rtcp_bye(SOURCE_SSRC), id="rtcp-bye"),
    ],
)
def test_the_relay_hook_leaves_rtcp_and_unplayed_legs_alone(data: bytes) -> None:
    async def scenario() -> None:
        transport = RecordingTransport()
        player = AnnouncementPlayer(FakeLeg(cast(asyncio.DatagramTransport, transport)), PlayoutScheduler())
        player.relay(data, ("192.0.2.9", 5000))  # nothing played yet: unchanged
        assert transport.sent == [(data, ("192.0.2.9", 5000))]
        await pcmu(player, distinct_frames(1))
        transport.sent.clear()
        player.relay(build_rtcp_bye(SOURCE_SSRC), ("192.0.2.9", 5000))  # multiplexed RTCP: unchanged
        assert [d for d, _ in transport.sent] == [build_rtcp_bye(SOURCE_SSRC)]

    run(scenario)


def test_the_player_tells_the_leg_which_rtcp_its_party_may_hear() -> None:
    """RTCP of the other party (RFC 3550 §7.2) never reaches the party with that party's own SSRC
    while it hears callherald's stream: dropped during a prompt and while the parties are kept
    apart, and renumbered as the relayed packets are from the first one on, not only once the
    relay takes the renumbering over after its guard."""

    async def scenario() -> None:
        transport = RecordingTransport()
        leg = FakeLeg(cast(asyncio.DatagramTransport, transport))
        player = AnnouncementPlayer(leg, PlayoutScheduler(), ssrc=SSRC, sequence=10, timestamp=1000)

        def rtcp_terms() -> tuple[bool, RelayRenumbering | None]:
            return leg.rtcp_blocked, leg.rtcp_renumber

        def relay_renumbering() -> RelayRenumbering | None:
            return leg.renumber

        assert rtcp_terms() == (False, None)
        playing = player.play(distinct_frames(2), payload_type=0, clock_rate=8000, samples_per_frame=SAMPLES)
        assert rtcp_terms() == (True, None)
        await playing
        assert rtcp_terms() == (False, None)
        player.muted = True
        assert rtcp_terms() == (True, None)
        player.muted = False
        assert rtcp_terms() == (False, None)

        target = ("192.0.2.9", 5000)
        player.relay(source(500, 8000, marker=True), target)
        _, terms = rtcp_terms()
        assert terms is not None
        assert (terms.source_ssrc, terms.ssrc) == (SOURCE_SSRC, SSRC)
        transport.sent.clear()
        player.relay(build_rtcp_bye(SOURCE_SSRC), target)  # multiplexed, within the guard
        assert [d for d, _ in transport.sent] == [build_rtcp_bye(SSRC)]
        player.muted = True  # kept apart a moment, no prompt: the same source goes on after
        assert rtcp_terms() == (True, None)
        player.muted = False
        assert rtcp_terms() == (False, terms)
        for index in range(1, RELAY_GUARD_PACKETS + 1):
            player.relay(source(500 + index, 8000 + index * SAMPLES), target)
        assert relay_renumbering() == terms  # the relay's own, past the guard: the same
        assert rtcp_terms() == (False, terms)

        player.play(distinct_frames(1), payload_type=0, clock_rate=8000, samples_per_frame=SAMPLES)
        assert (rtcp_terms(), relay_renumbering()) == ((True, None), None)
        player.close()
        assert rtcp_terms() == (False, None)

    run(scenario)


# Arguments ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload_type", "clock_rate", "samples_per_frame", "message"),
    [
        (128, 8000, 160, "payload type out of range"),
        (-1, 8000, 160, "payload type out of range"),
        (0, 8000, 80, "80 samples at 8000 Hz do not last 20 ms"),
        (9, 16000, 160, "160 samples at 16000 Hz do not last 20 ms"),
        (0, 0, 160, "must be positive"),
    ],
)
def test_play_refuses_frames_that_do_not_fit_the_grid(
    payload_type: int, clock_rate: int, samples_per_frame: int, message: str
) -> None:
    async def scenario() -> None:
        player = AnnouncementPlayer(FakeLeg(None), PlayoutScheduler())
        with pytest.raises(ValueError, match=message):
            player.play(
                [b"x"], payload_type=payload_type, clock_rate=clock_rate, samples_per_frame=samples_per_frame
            )
        assert player.playing is None

    run(scenario)


def test_a_closed_player_refuses_to_play() -> None:
    async def scenario() -> None:
        player = AnnouncementPlayer(FakeLeg(None), PlayoutScheduler())
        playout = pcmu(player, distinct_frames(50))
        player.close()
        assert not (await playout).completed
        with pytest.raises(RuntimeError, match="closed"):
            pcmu(player, distinct_frames(1))

    run(scenario)


# The SDP addresses the relay sends to --------------------------------------------------------------


@pytest.mark.parametrize(
    ("bind_address", "sdp_host", "used"),
    [
        pytest.param("127.0.0.1", "127.0.0.2", True, id="ipv4"),
        pytest.param("127.0.0.1", "::1", False, id="ipv6-to-ipv4-sockets"),
        pytest.param("127.0.0.1", "media.carrier.example", False, id="host-name"),
        pytest.param("::1", "::1", True, id="ipv6"),
        pytest.param("::1", "127.0.0.1", False, id="ipv4-to-ipv6-sockets"),
    ],
)
def test_the_relay_takes_only_sdp_addresses_its_sockets_can_send_to(
    bind_address: str, sdp_host: str, used: bool, caplog: pytest.LogCaptureFixture
) -> None:
    first_port, _ = free_port_range(4)

    async def scenario() -> None:
        relay = MediaRelay(bind_address, inactivity_timeout_s=30.0, on_inactive=lambda _: None)
        relay.open("call", first_port, first_port + 2)
        try:
            relay.set_remote("call", MediaLeg.A, (sdp_host, 40_000))
            session = relay.sessions["call"]
            expected = (sdp_host, 40_000) if used else None
            assert session.rtp[MediaLeg.A].remote == expected
            assert session.rtcp[MediaLeg.A].remote == ((sdp_host, 40_001) if used else None)
            assert session.rtp[MediaLeg.B].remote is None
        finally:
            relay.close_all()

    with caplog.at_level(logging.WARNING, logger="callherald.media"):
        run(scenario)
    warned = [r.getMessage() for r in caplog.records if r.name == "callherald.media"]
    if used:
        assert warned == []
    else:
        (message,) = warned
        assert f"[call] leg a: the SDP media address {sdp_host} is not an IPv" in message
        assert "waiting for the party's own packets (symmetric RTP)" in message
