"""Announcement playout: prompt frames sent as RTP into one leg, paced against absolute deadlines.

Theory of operation
-------------------
One ``PlayoutScheduler`` per event loop keeps a grid of ticks, ``origin + k * 20 ms``, fixed for
its lifetime. While any announcement plays it runs one timer, armed with ``loop.call_at`` on the
next tick's absolute deadline; every tick sends the due frame of every active player, so N
concurrent announcements cost one timer callback per 20 ms, not N. With nothing playing no timer
runs. Because the grid never moves, a prompt that starts on the tick after another one ended
continues it without a gap. Packets of another duration (a party's ``a=ptime:30``, RFC 4566 §6)
are paced on a grid of that interval (``for_interval``), with a timer of its own. A party that asks
for another duration while a prompt plays gets the rest of it in that one from the next packet on
(``AnnouncementPlayer.repacketize``): the packet in flight is not cut, the first new one goes on
the new grid's first tick after it ends, and its timestamp follows it without a gap.

An ``AnnouncementPlayer`` owns one leg's outgoing RTP stream: its SSRC and an ``RtpStreamState``
that numbers every packet the leg's far end receives, whether generated here or relayed from the
other leg. ``play`` joins the grid at the next tick: frame ``n`` of the prompt is due at that
tick's deadline plus ``n * 20 ms``. Sequence numbers and timestamps continue across successive
prompts (notice, then question, then ringback) and across switches to and from relaying.

Marker bit (RFC 3551 §4.1): set on the first packet of a talkspurt, that is the first packet the
leg ever sends and the first packet after a timestamp discontinuity (a pause between prompts, a
switch from relayed media, a stall). A prompt that starts on the very next tick after the previous
one's last frame continues the talkspurt and has no marker.

No address. A prompt's first frame waits, tick by tick, until the leg has an address to go to:
the SDP address, unless the sockets cannot use it (``MediaRelay.set_remote``), or the source the
leg latched. A late offer's answer comes in the ACK; a party whose address is unusable is found by
its first packet (symmetric RTP, RFC 4961). After ``ADDRESS_WAIT_S`` the playout fails, with its
result saying why, and so does one whose sending raises.

Late ticks. A tick that runs late sends every frame whose deadline has passed, back to back, up to
``MAX_BURST_FRAMES`` per player. Further behind than that (the loop was stalled for longer), the
player skips the missed *deadlines*, never the audio: it sends the next unsent frame now, with its
timestamp placed where the elapsed time puts it (a gap the receiver conceals) and the marker bit
set, and the rest of the prompt follows on the grid from there. The prompt ends that much later;
``PlayoutResult.stalls`` counts such skips.

Relaying. The relay hands every packet it would send out of the leg's socket to
``AnnouncementPlayer.relay`` instead (a per-leg hook; see ``relay``). Before the first prompt the
packet passes unchanged. While a prompt plays it is dropped: the leg carries the announcement.
After a prompt, the first relayed packet anchors the other side's stream with
``RtpStreamState.continue_from`` (reading the clock once), and every packet then has its sequence
number, timestamp and SSRC rewritten in place of the other side's (``RtpStreamState.translate``,
``rewrite_header``), so the far end sees one stream with no sequence reset and no timestamp jump
back. A new source SSRC anchors again. Once the anchored source's packets are past the reorder
guard, the player hands the renumbering to the relay itself (``RelayRenumbering`` on the leg: the
stream state's offsets for that source), so a packet costs no Python call of its own: a header
unpack, two additions, a copy and a pack in the relay's callback, and no clock read. The player
takes it back, reading the newest sequence number and timestamp the relay sent into its
``RtpStreamState``, before anything that needs them or must stop relayed packets at once: a
prompt, keeping the parties apart, a new source, closing.

Carried prompts. While the far end has heard nothing of the player's own (no prompt, no
renumbered packet), a G.711 prompt played with ``carry_silence`` rides in the packets relayed from
the other side: each of them that carries the prompt's codec goes out with its header as it came
and the prompt's next bytes for its payload (a byte a sample, however long the packet), the last
one filled up with the other side's audio, or silence while the parties are kept apart. The far
end hears one stream, the other side's own, before, during and after the prompt, so nothing is
renumbered after it and the relay touches no packet once the parties are joined. Other packets
(telephone events, comfort noise, padding) are dropped, as during any prompt; CSRCs and a header
extension stay as they came. Kept apart after such a prompt, the far end hears the stream silent:
no gap in its sequence numbers. Such a prompt starts and ends when the packets carrying it go out;
it is not repacketized (the packets are the other side's).

If no packet carries the prompt for ``CARRY_WAIT_S`` once one did (the other side stalled or went
quiet), the player stands in for the other side: the rest of the prompt goes out a frame a tick in
packets of that side's stream, its SSRC, the sequence numbers after the last packet the far end
got and timestamps following on, so the far end still hears one stream with no gap. The other
side's packets that come later are judged against the stand-in: one numbered within it (late, its
place taken) is dropped; one past it in sequence number and timestamp ends the stand-in, carries
the prompt again if it still plays, and its stream goes on as it came, with nothing renumbered
(a telephone event or comfort noise is judged by its sequence number alone: its timestamp is
where the event or the silence began, RFC 4733 §2.5.1.4, RFC 3389 §4); one that cannot follow
it (the other side resumed behind it after a pause, or another SSRC) ends it too, and the player
then goes on as after a prompt of its own, in the stand-in's stream (``ssrc`` is the other side's
from then on). If no packet carried the prompt within
``CARRY_START_WAIT_S`` of its first tick (the other side never sent), that side's numbering is
unknown: the prompt goes out in the player's own packets on the grid, and from then on the player
works as for any prompt of its own. The first packet is waited for longer than the next ones: a
party's stream often starts a little after the answer, and a prompt that never rode is paid for by
every packet of the call (renumbered after it).

A player made with ``renumber_relayed=False`` (``media.constant_ssrc: false``) leaves relayed
packets as they are after a prompt: the far end hears the other side's own stream, a new SSRC with
its own numbering (RFC 3550 §8.2 lets a receiver meet a new source at any time; the first packet
of the player's next prompt carries the marker bit). Relaying then costs nothing per packet, and
``needs_relay_hook`` tells the owner when the hook can come off the leg.

Timestamps across a switch (prompt to relay, relay to prompt, source to source) advance by the
media time elapsed since the last packet sent. The player keeps one timeline anchor, a packet
whose timestamp was due at a known time (a prompt frame's deadline, the arrival of the first
packet of a relayed source), and measures from it, so a relayed source's timestamps stand in for
its packets' times. The step is at least one frame of the last prompt: the length of a relayed
packet is not known, and a small gap is better than media that overlap.

Times are the event loop's clock (``loop.time()``), in seconds.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import socket
import struct
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from proxy.aio.media import RelayRenumbering
from proxy.b2bua.settings import Address
from proxy.rtp.errors import RtpError
from proxy.rtp.pacing import PacedClock, RtpStreamState
from proxy.rtp.packet import RTCP_PT_HIGH, RTCP_PT_LOW, RTP_HEADER_LEN, peek_header, rewrite_header
from proxy.rtp.rtcp import translate_rtcp
from proxy.rtp.seqnum import seq_add, seq_newer, ts_add, ts_diff

__all__ = [
    "ADDRESS_WAIT_S",
    "CARRY_START_WAIT_S",
    "CARRY_WAIT_S",
    "EARLY_TOLERANCE_S",
    "FRAME_INTERVAL_S",
    "MAX_BURST_FRAMES",
    "RELAY_GUARD_PACKETS",
    "AnnouncementPlayer",
    "Playout",
    "PlayoutLeg",
    "PlayoutResult",
    "PlayoutScheduler",
]

_LOG = logging.getLogger("callherald.playout")

FRAME_INTERVAL_S: Final = 0.020
MAX_BURST_FRAMES: Final = 3
"""Frames one player sends back to back at a late tick before it skips deadlines instead."""
EARLY_TOLERANCE_S: Final = 0.002
"""A timer that fires this much before its tick still serves it (uvloop rounds timers to 1 ms)."""
ADDRESS_WAIT_S: Final = 3.0
"""How long a prompt's first frame waits for the leg to have an address to go to (an SDP address
the sockets cannot use, or an offer still to come in the ACK) before the playout fails."""
CARRY_WAIT_S: Final = 0.060
"""How long a prompt riding in the relayed packets waits for the next one before the player stands
in for the other side (it went quiet: silence suppression, hold, a stall)."""
CARRY_START_WAIT_S: Final = 0.250
"""How long a prompt that may ride in the relayed packets waits for the first one before it goes
out in the player's own packets: a party's media often starts a little after the answer (after
its ACK, say), and a prompt that never rode leaves its packets renumbered for the rest of the call."""
RELAY_GUARD_PACKETS: Final = 100
"""After anchoring on a source, this many packets are checked for arriving older than the anchor
(RFC 3550 §A.1 ``MAX_MISORDER``); such a packet would reuse sequence numbers already sent."""


@dataclass(slots=True)
class _StreamHeard:
    """The newest packet of the other side's stream the far end got during a carried prompt,
    relayed or sent in the player's stand-in (see the module docstring)."""

    ssrc: int
    sequence: int
    timestamp: int
    samples: int
    sent_at: float
    payload_type: int
    """The prompt's audio type: the other side's packets of another type (telephone events,
    comfort noise) are judged against the stand-in by their sequence numbers alone."""


_HEADER: Final = struct.Struct("!BBHII")  # V/P/X/CC, M/PT, sequence, timestamp, SSRC (RFC 3550 §5.1)
_VERSION_BYTE: Final = 0x80
_MARKER: Final = 0x80


class PlayoutLeg(Protocol):
    """What the player reads of a leg, and the relay's renumbering it sets on it
    (``proxy.aio.media.LegProtocol`` has them)."""

    renumber: RelayRenumbering | None
    renumbered_sequence: int
    renumbered_timestamp: int
    rtcp_renumber: RelayRenumbering | None
    rtcp_blocked: bool
    outbound: Callable[[bytes, Address], None] | None

    @property
    def transport(self) -> asyncio.DatagramTransport | None: ...

    @property
    def latched(self) -> Address | None: ...

    @property
    def remote(self) -> Address | None: ...

    @property
    def sock(self) -> socket.socket | None:
        """The leg's bound socket, usable before the event loop has attached it."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class PlayoutResult:
    """How one ``play`` went, for the evidence record.

    ``started_at`` is the deadline the first frame was sent on, ``ended_at`` the moment the last
    frame sent stops sounding (its deadline plus one frame); for a prompt carried in relayed
    packets, when the first of them went out and when the last one's share of the prompt stops
    sounding. Both ``None`` when no frame was due before the playout ended. ``frames_played``
    counts frames whose deadline came (carried: whose bytes went out, in part or whole);
    ``frames_sent`` those of them actually handed to the socket (the first frame waits up to
    ``ADDRESS_WAIT_S`` for the leg to have an address; a later frame finding none is not sent, but
    its sequence number and timestamp still advance). ``completed`` is true when every frame was played, false
    after ``stop``, a replacing ``play`` or an error. ``stalls`` counts the times missed deadlines
    were skipped (see the module docstring). ``error`` says why the playout failed (no address
    within ``ADDRESS_WAIT_S``, or sending raised), None when no error stopped it.
    """

    started_at: float | None
    ended_at: float | None
    frames_played: int
    frames_sent: int
    completed: bool
    stalls: int
    error: str | None = None


class Playout:
    """One ``play`` call: await it (or its ``finished`` future) for the ``PlayoutResult``.

    Cancelling ``finished`` (which happens when a task awaiting it is cancelled) stops the playout.
    """

    __slots__ = (
        "_base",
        "_carried",
        "_clock_rate",
        "_ended_at",
        "_finished",
        "_first_tick",
        "_frames",
        "_loop",
        "_on_started",
        "_payload_type",
        "_played",
        "_player",
        "_reanchor",
        "_relayed_at",
        "_resync",
        "_samples_per_frame",
        "_sent",
        "_stalls",
        "_started_at",
        "_waited_ticks",
        "carried_silence",
    )

    def __init__(
        self,
        player: AnnouncementPlayer,
        future: asyncio.Future[PlayoutResult],
        frames: Sequence[bytes],
        *,
        payload_type: int,
        clock_rate: int,
        samples_per_frame: int,
        loop: bool,
    ) -> None:
        self._player = player
        self._finished = future
        self._frames = frames
        self._payload_type = payload_type
        self._clock_rate = clock_rate
        self._samples_per_frame = samples_per_frame
        self._loop = loop
        self._first_tick = 0
        self._played = 0
        self._sent = 0
        self._stalls = 0
        self._resync = True  # the next frame starts a segment: check timestamp continuity
        self._base = 0  # frames played before ``_frames`` took over (``AnnouncementPlayer.repacketize``)
        self._reanchor = False  # the next frame sent is the player's new timeline anchor
        self._started_at: float | None = None
        self._waited_ticks = 0  # ticks the first frame waited for an address to send to
        self._ended_at: float | None = None  # when the last frame sent stops sounding
        self._on_started: Callable[[float], None] | None = None
        # Carried in the relayed packets (see the module docstring): the codec's silence byte,
        # the prompt's bytes already carried, and when the newest packet carrying them went out
        # (before the first: the ``not_before`` of ``play``).
        self.carried_silence: bytes | None = None
        self._carried = 0
        self._relayed_at = 0.0

    @property
    def finished(self) -> asyncio.Future[PlayoutResult]:
        """Resolves with the ``PlayoutResult`` when the last frame is sent or the playout is stopped.

        It resolves on the tick of the last frame, so that a ``play`` called from it (or after
        awaiting it) starts on the next tick, seamlessly.
        """
        return self._finished

    @property
    def active(self) -> bool:
        """True until the playout ends."""
        return not self._finished.done()

    @property
    def frames_played(self) -> int:
        """Frames whose deadline came so far (``PlayoutResult.frames_played``)."""
        return self._played

    def when_started(self, callback: Callable[[float], None]) -> None:
        """Call ``callback(started_at)`` (the first frame's deadline) soon after the first frame is
        due, from the event loop; never for a playout that ends before it. One callback at a time."""
        self._on_started = callback

    def stop(self) -> None:
        """End the playout now; no further frame is sent. Does nothing once it has ended."""
        self._player._end(self, completed=False)

    def __await__(self) -> Generator[Any, None, PlayoutResult]:
        return self._finished.__await__()

    def _frames_behind(self, tick: int) -> int:
        """Frames due by ``tick`` and not yet played."""
        return tick - self._first_tick + 1 - (self._played - self._base)

    def _next_frame_at(self, tick: int) -> None:
        """Move the grid so that the next frame to play (after the ones played, in part or
        whole) is due at ``tick``."""
        self._first_tick = tick - (self._played - self._base)


class PlayoutScheduler:
    """The shared 20 ms tick grid (see the module docstring). One per event loop.

    ``interval_s`` is the frame interval every played prompt must have; ``for_interval`` gives the
    grid of another interval, on the same loop, closed with this one.
    """

    __slots__ = ("_family", "_grid", "_handle", "_loop", "_next_tick", "_players", "late_ticks", "ticks")

    def __init__(
        self, *, interval_s: float = FRAME_INTERVAL_S, loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self._grid = PacedClock(start=self._loop.time(), interval_s=interval_s)
        self._players: dict[AnnouncementPlayer, None] = {}
        self._next_tick = 0
        self._handle: asyncio.TimerHandle | None = None
        self.ticks = 0
        """Ticks served."""
        self.late_ticks = 0
        """Ticks that passed while the loop was busy, served together with a later one."""
        # Every grid of the loop by its interval in µs, shared with those made by ``for_interval``.
        self._family: dict[int, PlayoutScheduler] = {_interval_us(interval_s): self}

    @property
    def interval_s(self) -> float:
        return self._grid.interval_s

    @property
    def active(self) -> int:
        """Players with a prompt playing."""
        return len(self._players)

    def time(self) -> float:
        """The event loop's clock."""
        return self._loop.time()

    def deadline(self, tick: int) -> float:
        """When tick ``tick`` of the grid is due."""
        return self._grid.deadline(tick)

    def tick_at_or_after(self, moment: float) -> int:
        """The first tick of the grid due at ``moment`` or later."""
        return max(0, math.ceil((moment - self._grid.start) / self._grid.interval_s - 1e-9))

    def create_future(self) -> asyncio.Future[PlayoutResult]:
        return self._loop.create_future()

    def call_soon(self, callback: Callable[[float], None], at: float) -> None:
        """Run ``callback(at)`` on the loop after the current tick (a playout's start, see
        ``Playout.when_started``)."""
        self._loop.call_soon(callback, at)

    def for_interval(self, interval_s: float) -> PlayoutScheduler:
        """The grid of the same event loop whose ticks are ``interval_s`` apart: this one, or one
        made on first use (one per interval) that ``close`` closes too."""
        key = _interval_us(interval_s)
        scheduler = self._family.get(key)
        if scheduler is None:
            scheduler = PlayoutScheduler(interval_s=interval_s, loop=self._loop)
            scheduler._family = self._family
            self._family[key] = scheduler
        return scheduler

    def close(self) -> None:
        """Stop every playout and the timer, on every grid of ``for_interval`` too."""
        for scheduler in tuple(self._family.values()):
            scheduler._close_own()

    def _close_own(self) -> None:
        for player in tuple(self._players):
            player.stop()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _add(self, player: AnnouncementPlayer) -> int:
        """Serve ``player`` from the next tick on; return that tick."""
        if self._handle is None:
            # Idle (or inside a tick, before it rearms): the first deadline still ahead.
            self._next_tick = max(self._next_tick, self._grid.frames_due(self._loop.time()))
            self._handle = self._loop.call_at(self._grid.deadline(self._next_tick), self._on_tick)
        self._players[player] = None
        return self._next_tick

    def _remove(self, player: AnnouncementPlayer) -> None:
        self._players.pop(player, None)

    def _on_tick(self) -> None:
        self._handle = None
        tick = self._grid.frames_due(self._loop.time() + EARLY_TOLERANCE_S) - 1
        if tick >= self._next_tick:
            self.ticks += 1
            self.late_ticks += tick - self._next_tick
            self._next_tick = tick + 1
            for player in tuple(self._players):
                try:
                    player._on_tick(tick)
                except Exception as error:
                    _LOG.exception("announcement playout failed; stopping it")
                    player.fail(f"{type(error).__name__}: {error}")
        if self._players and self._handle is None:
            self._handle = self._loop.call_at(self._grid.deadline(self._next_tick), self._on_tick)


def _interval_us(interval_s: float) -> int:
    return round(interval_s * 1_000_000)


def _audio_header_length(data: bytes, payload_type: int) -> int | None:
    """The header length of ``data`` when it is an RTP packet of ``payload_type`` with audio after
    its header (RFC 3550 §5.1, §5.3.1: fixed header, CSRCs, extension), no padding; else None."""
    if len(data) <= RTP_HEADER_LEN or data[0] & 0xE0 != _VERSION_BYTE or data[1] & 0x7F != payload_type:
        return None
    header = RTP_HEADER_LEN + 4 * (data[0] & 0x0F)
    if data[0] & 0x10:
        if len(data) < header + 4:
            return None
        header += 4 + 4 * int.from_bytes(data[header + 2 : header + 4], "big")
    return header if len(data) > header else None


def _total_bytes(frames: Sequence[bytes]) -> int:
    return (len(frames) - 1) * len(frames[0]) + len(frames[-1]) if frames else 0


def _bytes_from(frames: Sequence[bytes], start: int, length: int) -> bytes:
    """``length`` bytes of ``frames`` laid end to end from byte ``start`` (fewer at their end)."""
    frame_bytes = len(frames[0])
    index, within = divmod(start, frame_bytes)
    pieces: list[bytes] = []
    while length > 0 and index < len(frames):
        piece = frames[index][within : within + length]
        pieces.append(piece)
        length -= len(piece)
        index, within = index + 1, 0
    return b"".join(pieces)


class AnnouncementPlayer:
    """Plays prompts into one leg and numbers the packets relayed to it afterwards.

    ``ssrc``, ``sequence`` and ``timestamp`` are the stream's SSRC and first sequence number and
    timestamp, random when not given (RFC 3550 §5.1). Packets go to the leg's latched address if
    known, else to its SDP address, read for every packet, from the leg's own socket.
    ``renumber_relayed=False`` leaves relayed packets unchanged after a prompt (the far end sees
    the other side's own stream, a new SSRC).
    """

    __slots__ = (
        "_anchor_time",
        "_anchor_ts",
        "_carrying_silence",
        "_clock_rate",
        "_closed",
        "_current",
        "_frame_samples",
        "_guard",
        "_heard",
        "_leg",
        "_muted",
        "_renumber_relayed",
        "_rewriting",
        "_scheduler",
        "_source_anchor",
        "_source_ssrc",
        "_ssrc",
        "_standing_in",
        "_state",
        "frames_sent",
        "relay_dropped",
    )

    def __init__(
        self,
        leg: PlayoutLeg,
        scheduler: PlayoutScheduler,
        *,
        ssrc: int | None = None,
        sequence: int | None = None,
        timestamp: int | None = None,
        renumber_relayed: bool = True,
    ) -> None:
        self._leg = leg
        self._renumber_relayed = renumber_relayed
        self._scheduler = scheduler
        self._ssrc = secrets.randbits(32) if ssrc is None else ssrc
        self._state = RtpStreamState(
            ssrc=self._ssrc,
            sequence=secrets.randbits(16) if sequence is None else sequence,
            timestamp=secrets.randbits(32) if timestamp is None else timestamp,
        )
        self._current: Playout | None = None
        self._closed = False
        # Set by the first play when renumbering: from then on relayed packets are renumbered.
        self._rewriting = False
        self._clock_rate = 8000  # of the last prompt: relayed media is assumed to share it
        self._frame_samples = 160
        # Media time anchor: the packet with timestamp _anchor_ts was due at _anchor_time.
        self._anchor_time = 0.0
        self._anchor_ts = 0
        self._source_ssrc: int | None = None
        self._source_anchor = 0
        self._guard = 0
        self.frames_sent = 0
        """Datagrams sent by playouts, over the player's life."""
        self.relay_dropped = 0
        """Relayed packets dropped: during a prompt, muted, malformed, older than the relay anchor,
        or numbered within a stand-in (see the module docstring)."""
        self._muted = False
        # The codec's silence byte and audio payload type, once a prompt rode in the relayed
        # packets and the far end has heard nothing but the other side's own stream: muted, it
        # hears that stream silent.
        self._carrying_silence: tuple[bytes, int] | None = None
        # The other side's stream as the far end heard it last in a carried prompt, and whether the
        # player stands in for that side (see the module docstring).
        self._heard: _StreamHeard | None = None
        self._standing_in = False

    @property
    def muted(self) -> bool:
        """True while the parties are kept apart (notice and consent): relayed packets are dropped,
        from the very next one on."""
        return self._muted

    @muted.setter
    def muted(self, muted: bool) -> None:
        if muted:
            self._take_back_renumbering()
            self._leg.rtcp_renumber = None
        elif self._muted and self._current is None:
            self._rtcp_follows_source()
        self._muted = muted
        self._leg.rtcp_blocked = muted or self._current is not None

    @property
    def ssrc(self) -> int:
        """The SSRC of the player's packets: of every packet the leg's far end receives after the
        first prompt, unless relayed packets are left as they are (``renumber_relayed=False``).
        The other side's once a stand-in for it could not be ended by its stream (see the module
        docstring)."""
        return self._ssrc

    @property
    def needs_relay_hook(self) -> bool:
        """Whether relayed packets must pass through ``relay``: a prompt plays, the parties are
        kept apart, relayed packets are being renumbered, or the player stands in for the other
        side (the player takes the hook off itself once that side's stream takes over). When
        False, ``relay`` would only send them on unchanged, so the relay may send them itself."""
        return self._current is not None or self._muted or self._rewriting or self._standing_in

    @property
    def playing(self) -> Playout | None:
        """The playout in progress, if any."""
        return self._current

    def play(
        self,
        frames: Sequence[bytes],
        *,
        payload_type: int,
        clock_rate: int,
        samples_per_frame: int,
        loop: bool = False,
        not_before: float | None = None,
        scheduler: PlayoutScheduler | None = None,
        carry_silence: bytes | None = None,
    ) -> Playout:
        """Send ``frames`` as RTP payloads, one per tick, from the next tick of the grid on.

        ``carry_silence``, the silence byte of a codec of one byte a sample (G.711), lets the
        prompt ride in the packets relayed from the other side while they come (see the module
        docstring), if the far end has heard nothing of the player's own yet; None: it never does.

        ``not_before`` (loop time) delays the first frame to the first tick at or after it.
        ``loop`` repeats the frames until ``stop``. ``scheduler`` is the grid to play on (from
        ``PlayoutScheduler.for_interval``, for frames of another duration), from now on; by default
        the one the player played on last. A prompt still playing is stopped first (its result
        says not completed). Relayed packets are dropped from now until the playout ends.
        Raises ``ValueError`` when ``samples_per_frame / clock_rate`` is not the scheduler's
        interval or the payload type is out of range, ``RuntimeError`` after ``close``.
        """
        if self._closed:
            raise RuntimeError("play on a closed AnnouncementPlayer")
        if not 0 <= payload_type <= 0x7F:
            raise ValueError(f"payload type out of range: {payload_type}")
        if clock_rate <= 0 or samples_per_frame <= 0:
            raise ValueError(
                f"clock rate and samples per frame must be positive: {clock_rate}, {samples_per_frame}"
            )
        grid = scheduler or self._scheduler
        interval_s = grid.interval_s
        if not math.isclose(samples_per_frame / clock_rate, interval_s, rel_tol=1e-9):
            raise ValueError(
                f"{samples_per_frame} samples at {clock_rate} Hz do not last {interval_s * 1000:g} ms"
            )
        self._take_back_renumbering()
        if self._current is not None:
            self._end(self._current, completed=False)
        self._scheduler = grid  # nothing plays on the one before any more
        future = self._scheduler.create_future()
        playout = Playout(
            self,
            future,
            frames,
            payload_type=payload_type,
            clock_rate=clock_rate,
            samples_per_frame=samples_per_frame,
            loop=loop,
        )
        future.add_done_callback(
            lambda done: self._end(playout, completed=False) if done.cancelled() else None
        )
        if not frames:
            self._end(playout, completed=True)
            return playout
        self._current = playout
        self._leg.rtcp_blocked = True  # the party hears the prompt: no RTCP of the other party
        self._leg.rtcp_renumber = None
        self._clock_rate = clock_rate
        self._frame_samples = samples_per_frame
        if carry_silence is not None and not loop and self._heard_only_relayed:
            playout.carried_silence = carry_silence
            playout._relayed_at = 0.0 if not_before is None else not_before
            self._carrying_silence = (carry_silence, payload_type)
            if not self._standing_in:
                self._heard = None  # the other side's packets since were relayed unseen
        else:
            if self._standing_in:
                self._continue_stand_in_stream()
            self._rewriting = self._renumber_relayed
            self._carrying_silence = None
        self._source_ssrc = None  # relaying after this prompt anchors afresh
        playout._first_tick = self._scheduler._add(self)
        if not_before is not None:
            playout._first_tick = max(playout._first_tick, self._scheduler.tick_at_or_after(not_before))
        return playout

    def stop(self) -> None:
        """Stop the playout in progress, if any."""
        if self._current is not None:
            self._end(self._current, completed=False)

    def fail(self, error: str) -> None:
        """Stop the playout in progress, if any, its result naming ``error``."""
        if self._current is not None:
            self._end(self._current, completed=False, error=error)

    def repacketize(
        self, frames: Sequence[bytes], *, samples_per_frame: int, scheduler: PlayoutScheduler
    ) -> None:
        """Send ``frames``, packets of another duration, from the next packet of the playout in
        progress on: the rest of its audio for a party that asked for that duration midway (a
        re-INVITE or UPDATE with another ``a=ptime``, RFC 4566 §6). Does nothing when no prompt
        plays.

        The packet being sent is not cut: the first of ``frames`` follows it on the next tick of
        ``scheduler`` (the grid of the new duration) at or after its end, its timestamp right after
        it, so the audio goes on without a gap or an overlap and no talkspurt starts (the packet
        is late by less than one new packet at most, which the receiver's jitter buffer takes up).
        A playout that sent nothing yet starts in ``frames`` where it would have started. The
        result counts every frame played, of either duration. Raises ``ValueError`` when
        ``samples_per_frame`` samples do not last ``scheduler``'s interval.
        """
        playout = self._current
        if playout is None or playout.carried_silence is not None:
            return  # one riding in the relayed packets goes in theirs
        clock_rate, interval_s = playout._clock_rate, scheduler.interval_s
        if not math.isclose(samples_per_frame / clock_rate, interval_s, rel_tol=1e-9):
            raise ValueError(
                f"{samples_per_frame} samples at {clock_rate} Hz do not last {interval_s * 1000:g} ms"
            )
        old = self._scheduler
        if playout._ended_at is None:
            resume_at = old.deadline(playout._first_tick)  # where its first frame was due
        else:
            resume_at = playout._ended_at  # the end of the last frame sent
            playout._reanchor = not playout._resync  # media time goes on from there, on the new grid
        old._remove(self)
        self._scheduler = scheduler
        first_tick = max(scheduler._add(self), scheduler.tick_at_or_after(resume_at))
        playout._first_tick = first_tick
        playout._base = playout._played
        playout._frames = frames
        playout._samples_per_frame = samples_per_frame
        self._frame_samples = samples_per_frame
        if not frames and not playout._loop:
            self._end(playout, completed=True)

    def close(self) -> None:
        """Stop and refuse further prompts (the call's media is going away)."""
        self._take_back_renumbering()
        self.stop()
        self._closed = True
        self._standing_in = False
        self._leg.rtcp_renumber = None
        self._leg.rtcp_blocked = False

    def relay(self, data: bytes, target: Address) -> None:
        """Send a packet relayed from the other leg to this leg's far end at ``target``.

        This is the relay's per-packet hook for the leg. Before the first prompt the packet goes
        out unchanged; during a prompt it is dropped; after one it is renumbered into this
        leg's stream (see the module docstring), or goes out unchanged when the player leaves
        relayed packets alone. Malformed packets are counted and dropped; multiplexed RTCP is put
        in the receiver's terms of this leg's renumbering, unless the relay did that already
        (``proxy.aio.media``). Once the anchored source is steady, the relay renumbers its
        packets itself.
        """
        if self._standing_in and not self._follows_stand_in(data):
            self.relay_dropped += 1
            return
        playing = self._current
        if playing is not None and playing.carried_silence is not None:
            self._carry(playing, data, target)
            return
        carrying = self._carrying_silence
        if playing is None and self._muted and carrying is not None:
            self._carry_silence_in(carrying, data, target)
            return
        if playing is not None or self._muted:
            self.relay_dropped += 1
            return
        transport = self._leg.transport
        if transport is None:
            return
        if not self._rewriting:
            transport.sendto(data, target)
            return
        try:
            payload_type, sequence, timestamp, ssrc, marker = peek_header(data)
        except RtpError:
            self.relay_dropped += 1
            return
        if RTCP_PT_LOW <= payload_type <= RTCP_PT_HIGH:  # multiplexed RTCP (RFC 5761 §4)
            if self._leg.renumber is None:  # the relay put it in the receiver's terms otherwise
                data = translate_rtcp(data, sent=self._leg.rtcp_renumber, heard=None)
            transport.sendto(data, target)
            return
        if ssrc != self._source_ssrc:
            self._follow_source(transport, data, target, ssrc, sequence, timestamp, marker)
            return
        if self._guard:
            self._guard -= 1
            if seq_newer(self._source_anchor, sequence):
                self.relay_dropped += 1  # reordered across the switch: its number is taken
                return
        sequence, timestamp, marker = self._state.translate(sequence, timestamp, marker)
        transport.sendto(
            rewrite_header(data, sequence=sequence, timestamp=timestamp, ssrc=self._ssrc, marker=marker),
            target,
        )
        if not self._guard:
            self._hand_renumbering_to_relay()  # the source is steady: the relay takes it from here

    # Internals ---------------------------------------------------------------------------------

    @property
    def _heard_only_relayed(self) -> bool:
        """Whether a prompt may ride in the relayed packets: the far end has heard only the other
        side's own stream (no packet of the player's, none renumbered), and renumbering is on
        (with it off the relay touches no packet after a prompt anyway)."""
        return (
            self._renumber_relayed
            and not self._rewriting
            and self._leg.renumber is None
            and self._state.last_timestamp is None
        )

    def _carry(self, playout: Playout, data: bytes, target: Address) -> None:
        """Send the relayed packet ``data`` with the prompt's next bytes for its payload."""
        transport = self._leg.transport
        now = self._scheduler.time()
        header = _audio_header_length(data, playout._payload_type)
        if (
            transport is None
            or header is None
            or (playout._started_at is None and now < playout._relayed_at)  # ``not_before``
        ):
            self.relay_dropped += 1
            return
        length = len(data) - header
        _, _, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
        heard = self._heard
        if heard is None or heard.ssrc != ssrc or seq_newer(sequence, heard.sequence):
            # G.711: a byte a sample.
            self._heard = _StreamHeard(ssrc, sequence, timestamp, length, now, playout._payload_type)
        audio = _bytes_from(playout._frames, playout._carried, length)
        taken = len(audio)
        playout._carried += taken
        if taken < length:  # the prompt ends inside this packet: the rest as it came, or silence
            silence = playout.carried_silence
            assert silence is not None
            audio += silence * (length - taken) if self._muted else data[header + taken :]
        transport.sendto(data[:header] + audio, target)
        if playout._started_at is None:
            playout._started_at = now
            if playout._on_started is not None:
                self._scheduler.call_soon(playout._on_started, now)
        frame_bytes = len(playout._frames[0])
        playout._played = playout._base + -(-playout._carried // frame_bytes)
        playout._sent = playout._played
        playout._relayed_at = now
        playout._ended_at = now + taken / playout._clock_rate  # G.711: a byte a sample
        self.frames_sent += 1
        if playout._carried >= _total_bytes(playout._frames):
            self._end(playout, completed=True)

    def _carry_silence_in(self, carrying: tuple[bytes, int], data: bytes, target: Address) -> None:
        """Muted after a prompt rode in the relayed packets: the far end hears that stream silent
        (``carrying``: the codec's silence byte and audio payload type)."""
        transport = self._leg.transport
        silence, payload_type = carrying
        header = _audio_header_length(data, payload_type)
        if transport is None or header is None:
            self.relay_dropped += 1
            return
        transport.sendto(data[:header] + silence * (len(data) - header), target)

    def _stand_in(self, playout: Playout, tick: int) -> None:
        """Send the frames of the carried ``playout`` due by ``tick`` in the other side's stream,
        numbered on from the newest packet the far end got in it (see the module docstring)."""
        behind = playout._frames_behind(tick)
        if behind <= 0:
            return
        if behind > MAX_BURST_FRAMES:
            # Late ticks: the timestamps must not jump (the other side's packets are to follow
            # them), so the stand-in falls behind the clock, as a late stream does.
            playout._first_tick += behind - MAX_BURST_FRAMES
            behind = MAX_BURST_FRAMES
        heard = self._heard
        silence = playout.carried_silence
        assert heard is not None  # standing in
        assert silence is not None  # carried
        leg = self._leg
        transport = leg.transport
        target = leg.latched or leg.remote
        now = self._scheduler.time()
        frame_bytes = len(playout._frames[0])
        total = _total_bytes(playout._frames)
        for _ in range(behind):
            audio = _bytes_from(playout._frames, playout._carried, frame_bytes)
            playout._carried += len(audio)
            heard.sequence = seq_add(heard.sequence, 1)
            heard.timestamp = ts_add(heard.timestamp, heard.samples)
            heard.samples = frame_bytes  # G.711: a byte a sample
            heard.sent_at = now
            if transport is not None and target is not None:
                header = _HEADER.pack(
                    _VERSION_BYTE, playout._payload_type, heard.sequence, heard.timestamp, heard.ssrc
                )
                transport.sendto(header + audio + silence * (frame_bytes - len(audio)), target)
                playout._sent += 1
                self.frames_sent += 1
            playout._played = playout._base + -(-playout._carried // frame_bytes)
            playout._relayed_at = now
            playout._ended_at = now + len(audio) / playout._clock_rate
            if playout._started_at is None:  # standing in from an earlier prompt
                playout._started_at = now
                if playout._on_started is not None:
                    self._scheduler.call_soon(playout._on_started, now)
            if playout._carried >= total:
                self._end(playout, completed=True)
                return

    def _follows_stand_in(self, data: bytes) -> bool:
        """While standing in: False for a relayed packet of the other side numbered within the
        stand-in (its place taken: dropped). Otherwise True, and the stand-in is over: the packet
        goes on past it (carrying the prompt, or as it came), or it cannot follow it and the
        player goes on in the stand-in's stream (see the module docstring)."""
        heard = self._heard
        assert heard is not None  # standing in
        try:
            payload_type, sequence, timestamp, ssrc, _ = peek_header(data)
        except RtpError:
            return True  # not RTP: the relay's usual checks drop it
        if RTCP_PT_LOW <= payload_type <= RTCP_PT_HIGH:  # multiplexed RTCP (RFC 5761 §4)
            return True
        if ssrc == heard.ssrc:
            newer = seq_newer(sequence, heard.sequence)
            # An event's packets carry its start (RFC 4733 §2.5.1.4), comfort noise the start of
            # the silence (RFC 3389 §4), not their place in the stream: they are judged by number
            # alone, so a key pressed during the stand-in reaches the far end once past it.
            later = ts_diff(timestamp, heard.timestamp) > 0 if payload_type == heard.payload_type else newer
            if not later:
                return False
            if newer:
                self._standing_in = False
                if not self.needs_relay_hook and self._leg.outbound == self.relay:
                    self._leg.outbound = None  # nothing more to do per packet
                return True
        self._continue_stand_in_stream()
        return True

    def _continue_stand_in_stream(self) -> None:
        """End the stand-in without the other side's stream taking it over: the far end goes on
        hearing its stream, numbered by the player from the stand-in's newest packet, as after a
        prompt of the player's own (relayed packets renumbered into it, RFC 3550 §7)."""
        heard = self._heard
        assert heard is not None  # standing in
        self._standing_in = False
        self._ssrc = heard.ssrc
        self._state = RtpStreamState.following(
            ssrc=heard.ssrc, sequence=heard.sequence, timestamp=heard.timestamp, samples=heard.samples
        )
        self._anchor_time = heard.sent_at
        self._anchor_ts = heard.timestamp
        self._source_ssrc = None
        self._carrying_silence = None
        self._rewriting = self._renumber_relayed
        playout = self._current
        if playout is not None and playout.carried_silence is not None:
            self._stop_carrying(playout, self._scheduler.tick_at_or_after(self._scheduler.time()) - 1)

    def _stop_carrying(self, playout: Playout, tick: int) -> None:
        """The other side's packets stopped coming: the rest of the prompt (from its next whole
        frame) goes out in the player's own packets, from tick ``tick + 1`` on, and relayed packets
        are renumbered after it as after any prompt of the player's."""
        playout.carried_silence = None
        self._carrying_silence = None
        playout._next_frame_at(tick + 1)  # after the frames (partly) carried
        playout._resync = True
        self._rewriting = self._renumber_relayed

    def _hand_renumbering_to_relay(self) -> None:
        """Let the relay renumber the anchored source's packets towards the leg (see the module
        docstring); called past the guard, with no prompt playing and the parties joined."""
        leg = self._leg
        if leg.renumber is not None or self._closed:
            return
        state = self._state
        sequence_offset, timestamp_offset = state.relay_offsets
        last_sequence, last_timestamp = state.last_sequence, state.last_timestamp
        assert last_sequence is not None  # a packet was translated
        assert last_timestamp is not None
        assert self._source_ssrc is not None  # anchored on it
        leg.renumbered_sequence = last_sequence
        leg.renumbered_timestamp = last_timestamp
        leg.renumber = RelayRenumbering(
            source_ssrc=self._source_ssrc,
            sequence_offset=sequence_offset,
            timestamp_offset=timestamp_offset,
            ssrc=self._ssrc,
        )
        leg.rtcp_renumber = leg.renumber

    def _rtcp_follows_source(self) -> None:
        """RTCP towards and from the leg's party follows the anchored source's renumbering
        (``LegProtocol.rtcp_renumber``), whether the player or the relay applies it."""
        state = self._state
        if self._source_ssrc is None or not self._rewriting or not state.relaying:
            return
        try:
            sequence_offset, timestamp_offset = state.relay_offsets
        except RtpError:
            return  # no packet of the source went out yet
        self._leg.rtcp_renumber = RelayRenumbering(
            source_ssrc=self._source_ssrc,
            sequence_offset=sequence_offset,
            timestamp_offset=timestamp_offset,
            ssrc=self._ssrc,
        )

    def _take_back_renumbering(self) -> None:
        """Stop the relay renumbering towards the leg and continue from the newest packet it sent."""
        leg = self._leg
        if leg.renumber is None:
            return
        leg.renumber = None
        self._state.relayed_up_to(leg.renumbered_sequence, leg.renumbered_timestamp)

    def _elapsed_samples(self, at: float, clock_rate: int) -> int:
        """Media time from the newest packet sent to ``at``, in samples (0 before the first)."""
        last_ts = self._state.last_timestamp
        if last_ts is None:
            return 0
        elapsed = round((at - self._anchor_time) * clock_rate) - ts_diff(last_ts, self._anchor_ts)
        return max(elapsed, 0)

    def _follow_source(
        self,
        transport: asyncio.DatagramTransport,
        data: bytes,
        target: Address,
        ssrc: int,
        sequence: int,
        timestamp: int,
        marker: bool,
    ) -> None:
        """Anchor the stream on a relayed source whose packet ``data`` arrives now, and send it."""
        self._take_back_renumbering()
        now = self._scheduler.time()
        state = self._state
        state.continue_from(
            source_sequence=sequence,
            source_timestamp=timestamp,
            elapsed_samples=max(self._elapsed_samples(now, self._clock_rate), self._frame_samples),
        )
        self._source_ssrc = ssrc
        self._source_anchor = sequence
        self._guard = RELAY_GUARD_PACKETS
        sequence, timestamp, marker = state.translate(sequence, timestamp, marker)
        self._rtcp_follows_source()  # from now on, not only once the relay renumbers
        self._anchor_time = now
        self._anchor_ts = timestamp
        transport.sendto(
            rewrite_header(data, sequence=sequence, timestamp=timestamp, ssrc=self._ssrc, marker=marker),
            target,
        )

    def _on_tick(self, tick: int) -> None:
        """Send the frames of the current playout that are due by ``tick``."""
        playout = self._current
        if playout is None:
            return
        if playout.carried_silence is not None:
            if not self._standing_in:
                if playout._started_at is not None:
                    since, wait = playout._relayed_at, CARRY_WAIT_S
                else:
                    since, wait = self._scheduler.deadline(playout._first_tick), CARRY_START_WAIT_S
                if self._scheduler.deadline(tick) - since < wait:
                    return
                if self._heard is None:  # nothing carried it: the other side's numbering is unknown
                    self._stop_carrying(playout, tick)
                    return
                self._standing_in = True
                playout._next_frame_at(tick)
            self._stand_in(playout, tick)
            return
        behind = playout._frames_behind(tick)
        if behind <= 0:
            return
        leg = self._leg
        if playout._played == 0 and leg.latched is None and leg.remote is None:
            # Nowhere to send the first frame yet (RFC 4961: the party's first packet latches the
            # leg when its SDP address is unusable): the prompt starts once it has one.
            playout._waited_ticks += behind
            if playout._waited_ticks * self._scheduler.interval_s >= ADDRESS_WAIT_S:
                self.fail(f"no address to send to after {ADDRESS_WAIT_S:g} s (no usable SDP address, no RTP)")
            else:
                playout._first_tick = tick + 1
            return
        if behind > MAX_BURST_FRAMES:
            # Skip the missed deadlines, not the audio: the next frame goes out now.
            playout._first_tick += behind - 1
            playout._stalls += 1
            playout._resync = True
            behind = 1
        frames = playout._frames
        count = len(frames)
        for _ in range(behind):
            index = playout._played - playout._base
            if index >= count and not playout._loop:
                break
            self._emit(playout, frames[index % count], self._scheduler.deadline(playout._first_tick + index))
        if playout._played - playout._base >= count and not playout._loop:
            self._end(playout, completed=True)

    def _emit(self, playout: Playout, frame: bytes, deadline: float) -> None:
        """Number and send one frame due at ``deadline``."""
        state = self._state
        samples = playout._samples_per_frame
        if playout._resync:
            # A new segment: continue the talkspurt only if it follows on the very next deadline.
            playout._resync = False
            if state.last_timestamp is not None:
                elapsed = self._elapsed_samples(deadline, playout._clock_rate)
                if state.relaying or elapsed != samples:
                    # RFC 3551 §4.1: after a discontinuity the next packet starts a talkspurt.
                    state.resume_local(elapsed_samples=max(elapsed, samples))
            sequence, timestamp, marker = state.next_frame(samples)
            self._anchor_time = deadline
            self._anchor_ts = timestamp
            if playout._started_at is None:
                playout._started_at = deadline
                if playout._on_started is not None:
                    self._scheduler.call_soon(playout._on_started, deadline)
        else:
            sequence, timestamp, marker = state.next_frame(samples)
            if playout._reanchor:
                playout._reanchor = False
                self._anchor_time = deadline
                self._anchor_ts = timestamp
        playout._played += 1
        playout._ended_at = deadline + self._scheduler.interval_s
        leg = self._leg
        transport = leg.transport
        target = leg.latched or leg.remote
        if target is None:
            return
        packet = (
            _HEADER.pack(
                _VERSION_BYTE,
                (playout._payload_type | _MARKER) if marker else playout._payload_type,
                sequence,
                timestamp,
                self._ssrc,
            )
            + frame
        )
        if transport is not None:
            transport.sendto(packet, target)
        else:
            sock = leg.sock  # bound but not yet attached to the loop (the call's first 20 ms)
            if sock is None:
                return
            try:
                sock.sendto(packet, target)
            except OSError:
                return
        playout._sent += 1
        self.frames_sent += 1

    def _end(self, playout: Playout, *, completed: bool, error: str | None = None) -> None:
        """Finish ``playout`` (once) and resolve its future."""
        if self._current is playout:
            self._current = None
            self._scheduler._remove(self)
            self._leg.rtcp_blocked = self._muted
        future = playout.finished
        if future.done():
            return
        future.set_result(
            PlayoutResult(
                started_at=playout._started_at,
                ended_at=playout._ended_at,
                frames_played=playout._played,
                frames_sent=playout._sent,
                completed=completed,
                stalls=playout._stalls,
                error=error,
            )
        )
