"""A prompt riding in the packets relayed from the other side (``AnnouncementPlayer.play`` with
``carry_silence``): the far end hears one stream, the other side's own, and the relay renumbers
nothing after it. On the event loop's real clock: first with a fake leg that records what is
sent, then over real UDP sockets on 127.0.0.1 through the relay and a call's announcements."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import cast

import pytest

from proxy.aio.playout import CARRY_WAIT_S, AnnouncementPlayer, Playout, PlayoutScheduler
from proxy.b2bua.effects import MediaFormat, MediaLeg
from proxy.b2bua.settings import Address
from proxy.rtp.g711 import ULAW_SILENCE_BYTE
from proxy.rtp.packet import RtpPacket
from proxy.rtp.seqnum import seq_add, ts_add, ts_diff
from proxy.rtp.transcode import LawTranslator
from tests.e2e.test_playout import (
    SAMPLES,
    SOURCE_SSRC,
    SSRC,
    FakeLeg,
    RecordingTransport,
    Rig,
    distinct_frames,
    rig,
    run,
)

pytestmark = pytest.mark.e2e

TARGET: Address = ("192.0.2.9", 5000)
SOURCE_PAYLOAD = b"\x11"


def source_packet(
    index: int, *, payload_type: int = 0, samples: int = SAMPLES, timestamp_index: int | None = None
) -> bytes:
    """The source's packet ``index``; ``timestamp_index`` gives it a later packet's timestamp (a
    source that resumes after silence suppression keeps counting packets, not time)."""
    return bytes(
        RtpPacket(
            payload_type=payload_type,
            sequence=seq_add(700, index),
            timestamp=ts_add(90_000, (index if timestamp_index is None else timestamp_index) * samples),
            ssrc=SOURCE_SSRC,
            marker=index == 0,
            payload=SOURCE_PAYLOAD * samples,
        )
    )


def player_on_fake_leg(
    *, ssrc: int | None = None, sequence: int | None = None, timestamp: int | None = None
) -> tuple[AnnouncementPlayer, FakeLeg, RecordingTransport]:
    """A player on a leg that records what is sent, with the loop's own grid: call it inside the
    scenario."""
    transport = RecordingTransport()
    leg = FakeLeg(cast(asyncio.DatagramTransport, transport))
    player = AnnouncementPlayer(leg, PlayoutScheduler(), ssrc=ssrc, sequence=sequence, timestamp=timestamp)
    return player, leg, transport


def carried(player: AnnouncementPlayer, frames: Sequence[bytes]) -> Playout:
    return player.play(
        frames, payload_type=0, clock_rate=8000, samples_per_frame=SAMPLES, carry_silence=ULAW_SILENCE_BYTE
    )


async def relay_packets(
    player: AnnouncementPlayer, packets: Sequence[bytes], *, interval_s: float = 0.02
) -> None:
    for packet in packets:
        player.relay(packet, TARGET)
        await asyncio.sleep(interval_s)


def sent(transport: RecordingTransport) -> list[RtpPacket]:
    assert {addr for _, addr in transport.sent} <= {TARGET, FakeLeg(None).remote}
    return [RtpPacket.parse(data) for data, _ in transport.sent]


def test_a_prompt_rides_in_the_relayed_packets_and_nothing_is_renumbered_after_it() -> None:
    async def scenario() -> None:
        player, leg, transport = player_on_fake_leg(ssrc=SSRC)
        frames = distinct_frames(5)
        playout = carried(player, frames)
        hooked_while_playing = player.needs_relay_hook
        await relay_packets(player, [source_packet(i) for i in range(6)])
        result = await playout
        assert result.completed
        assert (result.frames_played, result.frames_sent) == (5, 5)
        assert result.started_at is not None
        assert result.ended_at is not None
        assert result.ended_at - result.started_at == pytest.approx(0.1, abs=0.03)
        out = sent(transport)
        # The source's own numbers, SSRC and marker; the prompt's frames for payloads, then its own.
        assert [p.ssrc for p in out] == [SOURCE_SSRC] * 6
        assert [p.sequence for p in out] == [seq_add(700, i) for i in range(6)]
        assert [p.timestamp for p in out] == [ts_add(90_000, i * SAMPLES) for i in range(6)]
        assert [p.payload for p in out] == [*frames, SOURCE_PAYLOAD * SAMPLES]
        # Nothing left to do per packet: the relay sends them itself, unchanged.
        assert (hooked_while_playing, player.needs_relay_hook) == (True, False)
        assert leg.renumber is None
        assert leg.rtcp_renumber is None
        assert not leg.rtcp_blocked

    run(scenario)


def test_packets_of_another_duration_carry_the_prompt_byte_for_byte() -> None:
    """30 ms packets carry 20 ms frames: the prompt goes on across packet edges, and the last one
    is filled with the source's own audio (parties joined) or silence (kept apart)."""

    async def scenario() -> None:
        for muted in (False, True):
            player, _, transport = player_on_fake_leg()
            player.muted = muted
            frames = distinct_frames(4)  # 640 bytes: two whole 240-byte packets and 160 bytes
            playout = carried(player, frames)
            await relay_packets(player, [source_packet(i, samples=240) for i in range(3)], interval_s=0.03)
            result = await playout
            assert result.completed
            assert result.frames_played == 4
            payloads = [p.payload for p in sent(transport)]
            rest = (ULAW_SILENCE_BYTE if muted else SOURCE_PAYLOAD) * 80
            assert payloads == [
                b"".join(frames)[:240],
                b"".join(frames)[240:480],
                b"".join(frames)[480:] + rest,
            ]

    run(scenario)


def test_kept_apart_after_a_carried_prompt_the_far_end_hears_the_stream_silent() -> None:
    async def scenario() -> None:
        player, _, transport = player_on_fake_leg()
        player.muted = True
        playout = carried(player, distinct_frames(2))
        await relay_packets(player, [source_packet(i) for i in range(2)])
        await playout
        transport.sent.clear()
        dropped = player.relay_dropped
        player.relay(source_packet(2), TARGET)
        player.relay(source_packet(3, payload_type=101), TARGET)  # a telephone event is not audio
        out = sent(transport)
        assert [(p.sequence, p.payload) for p in out] == [(seq_add(700, 2), ULAW_SILENCE_BYTE * SAMPLES)]
        assert player.relay_dropped == dropped + 1
        player.muted = False
        player.relay(source_packet(4), TARGET)
        assert sent(transport)[-1].payload == SOURCE_PAYLOAD * SAMPLES

    run(scenario)


def test_other_packets_during_a_carried_prompt_are_dropped_and_do_not_take_its_audio() -> None:
    async def scenario() -> None:
        player, _, transport = player_on_fake_leg()
        frames = distinct_frames(2)
        playout = carried(player, frames)
        player.relay(source_packet(0, payload_type=101), TARGET)  # RFC 4733 event
        player.relay(source_packet(1, payload_type=13), TARGET)  # comfort noise
        player.relay(b"\x80\x00", TARGET)  # shorter than a header
        player.relay(b"\xa0" + source_packet(2)[1:], TARGET)  # padding
        assert transport.sent == []
        assert player.relay_dropped == 4
        await relay_packets(player, [source_packet(i) for i in range(3, 5)])
        await playout
        assert [p.payload for p in sent(transport)] == list(frames)

    run(scenario)


def test_when_the_source_goes_quiet_the_player_stands_in_for_it_in_its_stream() -> None:
    async def scenario() -> None:
        player, _, transport = player_on_fake_leg(ssrc=SSRC, sequence=10, timestamp=1000)
        frames = distinct_frames(6)
        playout = carried(player, frames)
        await relay_packets(player, [source_packet(i) for i in range(2)])  # then silence suppression
        result = await playout
        assert result.completed
        assert (result.frames_played, result.frames_sent) == (6, 6)
        out = sent(transport)
        # One stream: the source's SSRC, numbers and timestamps going on without a gap or a marker.
        assert [p.ssrc for p in out] == [SOURCE_SSRC] * 6
        assert [p.sequence for p in out] == [seq_add(700, i) for i in range(6)]
        assert [p.timestamp for p in out] == [ts_add(90_000, i * SAMPLES) for i in range(6)]
        assert [p.marker for p in out] == [True] + [False] * 5
        assert [p.payload for p in out] == list(frames)
        gap_s = (result.ended_at or 0.0) - (result.started_at or 0.0)
        assert gap_s >= 6 * 0.02 + CARRY_WAIT_S - 0.03  # the wait shows as a late packet
        # The source resumes behind the stand-in (its next sequence number, a later timestamp):
        # its packets are renumbered into the stream from the stand-in on.
        player.relay(source_packet(2, timestamp_index=40), TARGET)
        resumed = sent(transport)[-1]
        assert (resumed.ssrc, resumed.sequence, resumed.marker) == (SOURCE_SSRC, seq_add(700, 6), True)
        assert ts_diff(resumed.timestamp, ts_add(90_000, 5 * SAMPLES)) >= SAMPLES
        assert player.ssrc == SOURCE_SSRC
        assert player.needs_relay_hook
        player.relay(source_packet(3, timestamp_index=41), TARGET)
        assert sent(transport)[-1].sequence == seq_add(700, 7)

    run(scenario)


def test_late_packets_of_a_stalled_source_are_dropped_and_it_carries_the_prompt_again() -> None:
    async def scenario() -> None:
        player, leg, transport = player_on_fake_leg(ssrc=SSRC)
        frames = distinct_frames(12)
        playout = carried(player, frames)
        await relay_packets(player, [source_packet(i) for i in range(2)])
        await asyncio.sleep(CARRY_WAIT_S + 0.05)  # the source stalls: the player stands in
        stood_in = len(transport.sent) - 2
        assert stood_in >= 1
        dropped = player.relay_dropped
        # The stalled packets arrive at once: those the stand-in took the place of are dropped,
        # the next carries the prompt on, and the source keeps it.
        late = [source_packet(i) for i in range(2, 2 + stood_in)]
        await relay_packets(player, late, interval_s=0)
        assert player.relay_dropped == dropped + stood_in
        await relay_packets(player, [source_packet(i) for i in range(2 + stood_in, 16)])
        result = await playout
        assert result.completed
        out = sent(transport)
        assert {p.ssrc for p in out} == {SOURCE_SSRC}
        assert [p.sequence for p in out] == [seq_add(700, i) for i in range(len(out))]
        assert [p.timestamp for p in out] == [ts_add(90_000, i * SAMPLES) for i in range(len(out))]
        assert [p.payload for p in out[:12]] == list(frames)
        assert [p.payload for p in out[12:]] == [SOURCE_PAYLOAD * SAMPLES] * (len(out) - 12)
        assert not player.needs_relay_hook
        assert leg.renumber is None

    run(scenario)


@pytest.mark.parametrize("muted", [False, True])
def test_a_prompt_that_ends_standing_in_gives_the_stream_back_to_the_source_that_overtakes_it(
    muted: bool,
) -> None:
    async def scenario() -> None:
        player, leg, transport = player_on_fake_leg(ssrc=SSRC)
        player.muted = muted
        frames = distinct_frames(4)
        playout = carried(player, frames)
        await relay_packets(player, [source_packet(0)])
        await playout  # stood in for three frames: the far end heard up to the source's 703
        leg.outbound = player.relay  # as the call's announcements hook it
        player.relay(source_packet(2), TARGET)  # late: its place was taken
        assert len(transport.sent) == 4
        player.relay(source_packet(4), TARGET)
        last = sent(transport)[-1]
        assert (last.ssrc, last.sequence) == (SOURCE_SSRC, seq_add(700, 4))
        assert last.payload == (ULAW_SILENCE_BYTE if muted else SOURCE_PAYLOAD) * SAMPLES
        # Unmuted, nothing more is left to do per packet: the player takes its hook off.
        assert (leg.outbound is None) is not muted
        assert player.ssrc == SSRC
        assert leg.renumber is None

    run(scenario)


def test_a_key_pressed_during_a_stand_in_reaches_the_far_end_once_numbered_past_it() -> None:
    """RFC 4733 §2.5.1.4: every packet of an event carries the event's start as its timestamp, so
    a key pressed while the player stood in is judged by sequence number, not timestamp."""

    def event_packet(index: int, *, began_at_index: int, duration: int) -> bytes:
        return bytes(
            RtpPacket(
                payload_type=101,
                sequence=seq_add(700, index),
                timestamp=ts_add(90_000, began_at_index * SAMPLES),
                ssrc=SOURCE_SSRC,
                marker=False,
                payload=bytes((5, 10)) + duration.to_bytes(2, "big"),  # key 5, -10 dBm0
            )
        )

    async def scenario() -> None:
        player, leg, transport = player_on_fake_leg(ssrc=SSRC)
        playout = carried(player, distinct_frames(4))
        await relay_packets(player, [source_packet(0)])
        await playout  # stood in for three frames: the far end heard up to the source's 703
        leg.outbound = player.relay
        dropped = player.relay_dropped
        player.relay(event_packet(2, began_at_index=2, duration=SAMPLES), TARGET)  # its place was taken
        assert player.relay_dropped == dropped + 1
        # The event began within the stand-in; its next packets are numbered past it.
        later = [event_packet(i, began_at_index=2, duration=(i - 1) * SAMPLES) for i in (4, 5)]
        for packet in later:
            player.relay(packet, TARGET)
        player.relay(source_packet(6), TARGET)
        assert [data for data, _ in transport.sent[-3:]] == [*later, source_packet(6)]
        assert player.relay_dropped == dropped + 1
        # The stream is the source's own again: no hook left on the leg, nothing renumbered.
        assert (leg.outbound is None, leg.renumber) == (True, None)

    run(scenario)


def test_a_prompt_of_the_players_own_after_a_stand_in_goes_on_in_the_stand_ins_stream() -> None:
    async def scenario() -> None:
        player, _, transport = player_on_fake_leg(ssrc=SSRC)
        player.muted = True
        playout = carried(player, distinct_frames(3))
        await relay_packets(player, [source_packet(0)])
        await playout  # stood in for two frames
        await player.play(distinct_frames(2), payload_type=0, clock_rate=8000, samples_per_frame=SAMPLES)
        out = sent(transport)
        assert {p.ssrc for p in out} == {SOURCE_SSRC}
        assert [p.sequence for p in out] == [seq_add(700, i) for i in range(len(out))]

    run(scenario)


def test_a_source_that_never_sends_gets_the_whole_prompt_in_the_players_own_packets() -> None:
    async def scenario() -> None:
        player, _, transport = player_on_fake_leg(ssrc=SSRC)
        frames = distinct_frames(3)
        result = await carried(player, frames)
        assert result.completed
        assert result.frames_sent == 3
        assert [(p.ssrc, p.payload) for p in sent(transport)] == [(SSRC, frame) for frame in frames]

    run(scenario)


def test_a_player_heard_once_never_carries_again() -> None:
    """Once the far end heard a packet of the player's own, a later prompt goes in its own packets
    too (a new SSRC would follow otherwise): one stream for the rest of the call."""

    async def scenario() -> None:
        player, _, transport = player_on_fake_leg(ssrc=SSRC)
        await player.play(distinct_frames(1), payload_type=0, clock_rate=8000, samples_per_frame=SAMPLES)
        playout = carried(player, distinct_frames(2))
        player.relay(source_packet(0), TARGET)
        await playout
        assert {p.ssrc for p in sent(transport)} == {SSRC}

    run(scenario)


def test_csrcs_and_a_header_extension_stay_and_the_prompt_follows_them() -> None:
    async def scenario() -> None:
        player, _, transport = player_on_fake_leg()
        frames = distinct_frames(1)
        playout = carried(player, frames)
        plain = source_packet(0)
        csrc = (0xC5C5C5C5).to_bytes(4, "big")
        extension = bytes.fromhex("bede0001") + bytes.fromhex("10ff0000")  # RFC 8285, one word
        header = bytes([0x80 | 0x10 | 1]) + plain[1:12] + csrc + extension
        player.relay(header + SOURCE_PAYLOAD * SAMPLES, TARGET)
        await playout
        ((data, _),) = transport.sent
        assert data == header + frames[0]

    run(scenario)


# Over real sockets: the relay's hook, a call's announcements ----------------------------------------


async def notice_while_the_other_party_talks(
    live: Rig, frames: Sequence[bytes], packets: int
) -> tuple[Playout, asyncio.Future[list[RtpPacket]]]:
    """A call's notice to leg a's party, started just after the other party's first packet of
    ``packets`` (one per 20 ms) is on its way."""
    announcements = live.call_announcements()
    talking = asyncio.ensure_future(live.talk(packets))
    await asyncio.sleep(0.005)
    return announcements.play(MediaLeg.A, frames, MediaFormat(codec="pcmu", payload_type=0)), talking


def test_a_calls_notice_rides_in_the_other_partys_packets_and_the_relay_then_leaves_them_alone() -> None:
    async def scenario() -> None:
        async with rig() as live:
            frames = distinct_frames(4)
            playout, talking = await notice_while_the_other_party_talks(live, frames, 10)
            result = await playout
            sent_by_other = await talking
            await live.far.wait_for(10)
            heard = live.far.packets
            assert result.completed
            assert {p.ssrc for p in heard} == {SOURCE_SSRC}
            assert [p.sequence for p in heard] == [p.sequence for p in sent_by_other]
            first = [p.payload for p in heard].index(frames[0])
            assert [p.payload for p in heard[first : first + 4]] == list(frames)
            assert [p.payload for p in heard[first + 4 :]] == [p.payload for p in sent_by_other[first + 4 :]]
            assert live.leg.outbound is None  # nothing per packet once the prompt is over
            assert live.leg.renumber is None

    run(scenario)


def test_a_stall_of_the_other_party_mid_notice_leaves_one_stream_and_nothing_renumbered() -> None:
    async def scenario() -> None:
        async with rig() as live:
            frames = distinct_frames(12)
            playout, talking = await notice_while_the_other_party_talks(live, frames, 3)
            await talking
            await asyncio.sleep(CARRY_WAIT_S + 0.06)  # the party stalls: callherald stands in for it
            await live.burst(6)  # then its stalled packets come at once
            rest = await live.talk(12)
            result = await playout
            await live.far.wait_for(21)
            await asyncio.sleep(0.05)
            heard = live.far.packets
            assert result.completed
            assert len(heard) == 21  # the party's 21 packets less those the stand-in took the place of
            assert {p.ssrc for p in heard} == {SOURCE_SSRC}
            first = heard[0].sequence
            assert [p.sequence for p in heard] == [seq_add(first, i) for i in range(len(heard))]
            start = [p.payload for p in heard].index(frames[0])  # a packet may pass before it
            end = start + len(frames)
            assert [p.payload for p in heard[start:end]] == list(frames)
            assert [p.payload for p in heard[end:]] == [
                p.payload for p in rest[len(rest) - len(heard) + end :]
            ]
            assert live.leg.outbound is None  # the party's stream took over: nothing per packet
            assert live.leg.renumber is None

    run(scenario)


@pytest.mark.parametrize("case", ["g722", "other-party-without-address", "translated", "constant-ssrc-off"])
def test_a_prompt_goes_in_callheralds_own_packets_where_it_cannot_ride(case: str) -> None:
    async def scenario() -> None:
        async with rig() as live:
            announcements = live.call_announcements(constant_ssrc=case != "constant-ssrc-off")
            media = MediaFormat(codec="pcmu", payload_type=0)
            frames = distinct_frames(2)
            if case == "g722":
                media, frames = MediaFormat(codec="g722", payload_type=9), distinct_frames(2, "g722")
            elif case == "other-party-without-address":
                live.other_leg.set_remote(None)
            elif case == "translated":
                live.other_leg.set_translator(
                    LawTranslator(
                        party_payload_type=8, party_codec="pcma", call_payload_type=0, call_codec="pcmu"
                    )
                )
            playout = announcements.play(MediaLeg.A, frames, media)
            player = announcements.players[MediaLeg.A]
            assert player.playing is playout
            assert playout.carried_silence is None
            await playout

    run(scenario)
