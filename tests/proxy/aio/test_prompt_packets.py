"""The packets a prompt is sent in, on virtual time: every one of the duration the party asked for
(a=ptime, RFC 4566 §6; RFC 3551 §4.5), the last one filled with the codec's silence, and a new
duration asked for midway taken from the next packet on."""

from __future__ import annotations

import asyncio
import itertools
import socket
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pytest
from G722 import G722

from proxy.aio.announce import G722_SILENCE_BYTE, CallAnnouncements
from proxy.aio.media import MediaSession, RelayRenumbering
from proxy.aio.playout import PlayoutResult, PlayoutScheduler
from proxy.b2bua.effects import MediaFormat, MediaLeg
from proxy.b2bua.settings import Address
from proxy.rtp.g711 import ALAW_SILENCE_BYTE, ULAW_SILENCE_BYTE
from proxy.rtp.seqnum import seq_diff, ts_diff

_HEADER = struct.Struct("!BBHII")
FAR_END = ("192.0.2.1", 4000)
SSRC_OF_THE_OTHER_PARTY = 0x0B0B_0B0B


class VirtualLoop:
    """What the playout uses of an event loop (``time``, ``call_at``, ``call_soon``, futures), on
    simulated time; ``run_until`` runs what is due in order."""

    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[tuple[float, int, Callable[..., object], tuple[Any, ...]]] = []
        self._soon: list[tuple[Callable[..., object], tuple[Any, ...]]] = []
        self._count = 0

    def time(self) -> float:
        return self.now

    def get_debug(self) -> bool:
        return False

    def create_future(self) -> asyncio.Future[Any]:
        return asyncio.Future(loop=cast(asyncio.AbstractEventLoop, self))

    def call_soon(self, callback: Callable[..., object], *args: Any, context: object = None) -> None:
        self._soon.append((callback, args))

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> _Timer:
        self._count += 1
        entry = (when, self._count, callback, args)
        self._timers.append(entry)
        return _Timer(self._timers, entry)

    def run_until(self, until: float) -> None:
        while True:
            while self._soon:
                callback, args = self._soon.pop(0)
                callback(*args)
            due = sorted(timer for timer in self._timers if timer[0] <= until)
            if not due:
                break
            self._timers.remove(due[0])
            when, _, callback, args = due[0]
            self.now = max(self.now, when)
            callback(*args)
        self.now = until


@dataclass
class _Timer:
    timers: list[tuple[float, int, Callable[..., object], tuple[Any, ...]]]
    entry: tuple[float, int, Callable[..., object], tuple[Any, ...]]

    def cancel(self) -> None:
        if self.entry in self.timers:
            self.timers.remove(self.entry)


@dataclass
class Sent:
    at: float
    sequence: int
    timestamp: int
    marker: bool
    ssrc: int
    payload: bytes


@dataclass
class RecordingLeg:
    """A leg that records what is sent to its far end, with the virtual time it was sent at."""

    loop: VirtualLoop
    sent: list[Sent] = field(default_factory=list)
    latched: Address | None = None
    remote: Address | None = FAR_END
    sock: socket.socket | None = None
    renumber: RelayRenumbering | None = None
    renumbered_sequence: int = 0
    renumbered_timestamp: int = 0
    rtcp_renumber: RelayRenumbering | None = None
    rtcp_blocked: bool = False
    outbound: Callable[[bytes, Address], None] | None = None
    translator: None = None

    @property
    def transport(self) -> asyncio.DatagramTransport:
        return cast(asyncio.DatagramTransport, self)

    def sendto(self, data: bytes, target: Address) -> None:
        _, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
        marker = bool(second & 0x80)
        self.sent.append(Sent(self.loop.now, sequence, timestamp, marker, ssrc, data[_HEADER.size :]))


def announcements_on(loop: VirtualLoop) -> tuple[CallAnnouncements, RecordingLeg]:
    # Leg b's party has no address yet, so nothing of it may come for a prompt to ride in: the
    # prompts go in callherald's own packets (carried ones: tests/e2e/test_playout_carried.py).
    legs = {MediaLeg.A: RecordingLeg(loop), MediaLeg.B: RecordingLeg(loop, remote=None)}
    session = cast(MediaSession, _Session(rtp=legs))
    scheduler = PlayoutScheduler(loop=cast(asyncio.AbstractEventLoop, loop))
    return CallAnnouncements(session=session, scheduler=scheduler), legs[MediaLeg.A]


@dataclass
class _Session:
    rtp: dict[MediaLeg, RecordingLeg]


def numbered_audio(frame_count: int) -> tuple[bytes, ...]:
    """20 ms PCMU frames whose bytes count up (never a silence code), to see where each went."""
    audio = bytes(index % 200 + 1 for index in range(frame_count * 160))
    return tuple(audio[start : start + 160] for start in range(0, len(audio), 160))


def steps(sent: Sequence[Sent]) -> list[int]:
    return [ts_diff(b.timestamp, a.timestamp) for a, b in itertools.pairwise(sent)]


def relayed_packet(sequence: int, timestamp: int) -> bytes:
    return _HEADER.pack(0x80, 0, sequence, timestamp, SSRC_OF_THE_OTHER_PARTY) + b"\x7f" * 160


# The last packet filled with silence ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("codec", "payload_type", "silence"),
    [("pcmu", 0, ULAW_SILENCE_BYTE), ("pcma", 8, ALAW_SILENCE_BYTE), ("g722", 9, G722_SILENCE_BYTE)],
)
def test_a_prompt_s_last_packet_is_filled_with_the_codec_s_silence(
    codec: str, payload_type: int, silence: bytes
) -> None:
    # 1000 ms in 30 ms packets: 33 full packets and 10 ms, sent as a 34th packet of 30 ms.
    loop = VirtualLoop()
    announcements, leg = announcements_on(loop)
    media = MediaFormat(codec=codec, payload_type=payload_type, packet_ms=30)
    notice, question = numbered_audio(50), numbered_audio(10)
    announcements.play(MediaLeg.A, notice, media)
    loop.run_until(2.0)
    played = list(leg.sent)
    assert [len(packet.payload) for packet in played] == [240] * 34
    assert b"".join(packet.payload for packet in played) == b"".join(notice) + silence * 160
    assert steps(played) == [240] * 33
    assert [packet.at - played[0].at for packet in played] == pytest.approx([0.030 * i for i in range(34)])
    # The next prompt, a while later, is placed after the whole of the filled packet, and filled too.
    result: list[PlayoutResult] = []
    announcements.play(MediaLeg.A, question, media).finished.add_done_callback(
        lambda f: result.append(f.result())
    )
    loop.run_until(4.0)
    next_prompt = leg.sent[34:]
    assert [len(packet.payload) for packet in next_prompt] == [240] * 7
    assert next_prompt[-1].payload == b"".join(question)[-160:] + silence * 80
    assert next_prompt[0].marker  # a pause between the prompts (RFC 3551 §4.1)
    assert ts_diff(next_prompt[0].timestamp, played[-1].timestamp) >= 240
    assert result[0].ended_at == pytest.approx(next_prompt[-1].at + 0.030)


def test_the_other_party_s_audio_follows_a_filled_last_packet_without_overlapping_it() -> None:
    loop = VirtualLoop()
    announcements, leg = announcements_on(loop)
    announcements.bridge(True)
    announcements.play(MediaLeg.A, numbered_audio(5), MediaFormat(codec="pcmu", payload_type=0, packet_ms=30))
    loop.run_until(1.0)
    played = list(leg.sent)
    assert [len(packet.payload) for packet in played] == [240] * 4
    player = announcements.players[MediaLeg.A]
    player.relay(relayed_packet(7000, 800_000), FAR_END)  # right after the last packet's end
    player.relay(relayed_packet(7001, 800_160), FAR_END)
    relayed = leg.sent[4:]
    assert ts_diff(relayed[0].timestamp, played[-1].timestamp) >= 240  # after the whole 30 ms
    assert ts_diff(relayed[1].timestamp, relayed[0].timestamp) == 160
    assert [seq_diff(packet.sequence, played[0].sequence) for packet in leg.sent] == list(range(6))


def test_g722_silence_decodes_to_silence() -> None:
    decoded = np.asarray(G722(16000, 64000).decode(G722_SILENCE_BYTE * 800), dtype=np.int32)
    assert np.abs(decoded[320:]).max() == 0  # digital silence once the decoder settled (20 ms)


# Another packet duration asked for while a prompt plays ------------------------------------------


@pytest.mark.parametrize(("before_ms", "after_ms"), [(20, 30), (30, 20), (30, 60), (40, 10)])
def test_a_prompt_goes_on_in_the_packets_asked_for_midway(before_ms: int, after_ms: int) -> None:
    loop = VirtualLoop()
    announcements, leg = announcements_on(loop)
    notice = numbered_audio(50)  # 1000 ms
    result: list[PlayoutResult] = []
    media = MediaFormat(codec="pcmu", payload_type=0, packet_ms=before_ms)
    announcements.play(MediaLeg.A, notice, media).finished.add_done_callback(
        lambda f: result.append(f.result())
    )
    loop.run_until(0.205)  # between two packets, some sent
    before = list(leg.sent)
    announcements.repacketize(MediaLeg.A, after_ms)
    loop.run_until(3.0)
    after = leg.sent[len(before) :]
    old_bytes, new_bytes = 8 * before_ms, 8 * after_ms
    assert before
    assert {len(packet.payload) for packet in before} == {old_bytes}
    assert {len(packet.payload) for packet in after} == {new_bytes}  # from the very next packet on
    audio = b"".join(notice)
    heard = b"".join(packet.payload for packet in leg.sent)
    assert heard[: len(audio)] == audio  # nothing lost, nothing repeated
    assert set(heard[len(audio) :]) <= {0xFF}  # the last packet filled with silence
    assert len(heard) - len(audio) < new_bytes
    # The timestamps go on without a gap or an overlap, and no talkspurt starts again.
    assert steps(leg.sent) == [len(packet.payload) for packet in leg.sent[:-1]]
    assert [packet.marker for packet in leg.sent] == [True] + [False] * (len(leg.sent) - 1)
    assert [seq_diff(packet.sequence, leg.sent[0].sequence) for packet in leg.sent] == list(
        range(len(leg.sent))
    )
    # Paced on the new duration, the first new packet not before the last old one ended.
    assert after[0].at >= before[-1].at + before_ms / 1000 - 1e-9
    assert after[0].at < before[-1].at + before_ms / 1000 + after_ms / 1000
    gaps = [b.at - a.at for a, b in itertools.pairwise(after)]
    assert gaps == pytest.approx([after_ms / 1000] * len(gaps))
    assert (result[0].completed, result[0].frames_played) == (True, len(leg.sent))
    assert result[0].ended_at == pytest.approx(after[-1].at + after_ms / 1000)


def test_the_other_party_s_audio_follows_a_prompt_that_changed_packets_at_once() -> None:
    # The stream's timeline follows the new packets: relayed audio arriving as the prompt ends is
    # placed one packet after it, not further on by the wait for the new grid.
    loop = VirtualLoop()
    announcements, leg = announcements_on(loop)
    announcements.bridge(True)
    announcements.play(MediaLeg.A, numbered_audio(10), MediaFormat(codec="pcmu", payload_type=0))
    loop.run_until(0.075)
    announcements.repacketize(MediaLeg.A, 30)
    loop.run_until(1.0)
    played = list(leg.sent)
    last = played[-1]
    loop.now = last.at + 0.030
    announcements.players[MediaLeg.A].relay(relayed_packet(9, 90_000), FAR_END)
    assert ts_diff(leg.sent[-1].timestamp, last.timestamp) == 240


def test_the_same_packet_duration_again_changes_nothing() -> None:
    loop = VirtualLoop()
    announcements, leg = announcements_on(loop)
    announcements.play(
        MediaLeg.A, numbered_audio(10), MediaFormat(codec="pcmu", payload_type=0, packet_ms=30)
    )
    loop.run_until(0.1)
    announcements.repacketize(MediaLeg.A, 30)
    announcements.repacketize(MediaLeg.B, 40)  # nothing plays there
    loop.run_until(1.0)
    assert [len(packet.payload) for packet in leg.sent] == [240] * 7
    assert steps(leg.sent) == [240] * 6


def test_a_looped_tone_goes_on_in_the_new_packets_where_it_was() -> None:
    loop = VirtualLoop()
    announcements, leg = announcements_on(loop)
    period = numbered_audio(3)  # 60 ms, looped
    announcements.play(MediaLeg.A, period, MediaFormat(codec="pcmu", payload_type=0), loop=True)
    loop.run_until(0.1)
    count = len(leg.sent)
    announcements.repacketize(MediaLeg.A, 40)
    loop.run_until(1.0)
    announcements.stop(MediaLeg.A)
    assert {len(packet.payload) for packet in leg.sent[count:]} == {320}
    heard = b"".join(packet.payload for packet in leg.sent)
    audio = b"".join(period)
    assert heard == (audio * (len(heard) // len(audio) + 1))[: len(heard)]
    assert steps(leg.sent) == [len(packet.payload) for packet in leg.sent[:-1]]
