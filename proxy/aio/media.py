"""The RTP relay: one socket pair per leg, latched to the first source heard (symmetric RTP).

This is the hot path. A packet passed on unchanged costs one callback, one attribute chain and
one ``sendto``: no logging, no parsing, no allocation beyond what the event loop does. Inactivity
is found by a sweep over per-leg packet counters, not by clock reads per packet.

A leg whose far end hears one stream of callherald's own (after a notice, with a constant SSRC)
has its relayed packets renumbered into that stream. The leg's announcement player decides how
(``RelayRenumbering``: constant offsets for one source SSRC) and the relay applies it inline,
without a Python call per packet (a header unpack, a copy and a pack); anything else (another
source, a prompt playing, the parties kept apart) goes through the player's ``outbound`` hook.

RTCP follows the renumbering (RFC 3550 §7.2): while either party hears a renumbered stream (by
the relay, or still by the player: ``rtcp_renumber``), each compound RTCP packet relayed between
them is put in its receiver's terms (``translate_rtcp``: the sender's SSRC and SR timestamp as the
stream the receiver hears, report blocks about a renumbered stream as its source), on the RTCP
sockets (``RtcpLegProtocol``) and for RTCP multiplexed on the RTP port (RFC 5761), where it costs
a packet passed on unchanged one attribute read (and, on the way back from a party that hears a
renumbered stream, a compare of its second octet, inline). While a party hears a prompt or
nothing of the other party, the other party's RTCP is dropped (``rtcp_blocked``; multiplexed, the
player's hook drops it with the RTP).

A party that answered the other G.711 law than its offer's has its audio translated
(``set_translator``, ``proxy.rtp.transcode``): what it sends as soon as it is heard, before the
recording, the key-press listeners or the other leg see it, and everything sent to it (relayed,
renumbered, or a prompt) in a wrapper around its socket's transport. Every other leg pays one
attribute read per packet for it.

A recorded leg appends each packet its party sends, and the loop time it came at, to its
recording's list, also inline: a Python call per packet, with its frame and closure, costs more
than the two appends.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, cast

from proxy.b2bua.effects import LawTranslation, MediaLeg
from proxy.b2bua.settings import Address
from proxy.rtp.packet import RTCP_PT_HIGH, RTCP_PT_LOW, RTP_HEADER_LEN
from proxy.rtp.rtcp import translate_rtcp
from proxy.rtp.transcode import LawTranslator

__all__ = [
    "DEPARTED_PACKETS",
    "LegProtocol",
    "MediaRelay",
    "MediaSession",
    "RelayRenumbering",
    "RtcpLegProtocol",
    "RtpPortProbe",
]

_LOG = logging.getLogger("callherald.media")

# RFC 3550 §5.1: V/P/X/CC, M/PT, sequence number, timestamp, SSRC. Unpacked here, not through
# proxy.rtp.packet.peek_header: the relay's fast path makes no Python call of its own per packet.
_RTP_HEADER: Final = struct.Struct("!BBHII")
_SEQUENCE_TIMESTAMP_SSRC: Final = struct.Struct("!HII")  # from octet 2


@dataclass(frozen=True, slots=True)
class RelayRenumbering:
    """How the relay renumbers one source's packets into the stream a leg's far end hears.

    A packet of version 2 (RFC 3550 §5.1) from SSRC ``source_ssrc`` gets ``sequence_offset`` and
    ``timestamp_offset`` added to its numbers (modulo 2**16 and 2**32) and ``ssrc`` for its SSRC;
    everything else in it is left as it is. (Slots, not a named tuple: the relay reads all four
    per packet, and a slot is the cheapest attribute to read.)
    """

    source_ssrc: int
    sequence_offset: int
    timestamp_offset: int
    ssrc: int


DEPARTED_PACKETS: Final = 50
"""Packets (a second of 20 ms audio) from the source of a party a transfer replaced before that
source may latch the leg again: the new party may send from the same address."""


def _no_clock() -> float:
    return 0.0


class LegProtocol(asyncio.DatagramProtocol):
    """One leg's RTP (or RTCP) socket. Packets from the leg's peer go out of the other leg's socket."""

    __slots__ = (
        "clock",
        "closed",
        "departed",
        "departed_heard",
        "dropped",
        "inbound",
        "latched",
        "other",
        "outbound",
        "packets",
        "relatch",
        "remote",
        "renumber",
        "renumbered_sequence",
        "renumbered_timestamp",
        "rtcp_blocked",
        "rtcp_renumber",
        "sock",
        "socket_transport",
        "tapped",
        "translator",
        "transport",
    )

    def __init__(self, sock: socket.socket | None = None) -> None:
        # What sends to this leg's party: its socket's transport, or a wrapper around it that
        # translates the party's G.711 law (``set_translator``).
        self.transport: asyncio.DatagramTransport | None = None
        self.socket_transport: asyncio.DatagramTransport | None = None
        self.translator: LawTranslator | None = None
        # While an announcement player owns this leg, relayed packets go through it (renumbered).
        self.outbound: Callable[[bytes, Address], None] | None = None
        # While someone listens to this leg's party (key presses, recording), every packet heard.
        self.inbound: Callable[[bytes], None] | None = None
        # While the call is recorded: every packet heard, then the loop time it came at (``tap``).
        self.tapped: list[bytes | float] | None = None
        self.clock: Callable[[], float] = _no_clock
        # Set by the leg's announcement player while the relay may renumber packets towards this
        # leg itself; it reads back the newest sequence number sent and its timestamp when it
        # takes the stream over again.
        self.renumber: RelayRenumbering | None = None
        self.renumbered_sequence = 0
        self.renumbered_timestamp = 0
        # Set by the leg's announcement player for RTCP (RFC 3550 §7.2): how the stream this leg's
        # party hears is renumbered, by the relay (``renumber``) or still by the player itself;
        # and whether the party hears callherald's prompt or nothing of the other party, so that
        # the other party's RTCP, naming a stream this party does not hear, is not passed on.
        self.rtcp_renumber: RelayRenumbering | None = None
        self.rtcp_blocked = False
        self.sock = sock
        self.closed = False
        self.other: LegProtocol | None = None
        self.remote: Address | None = None  # from SDP
        self.latched: Address | None = None  # the source actually heard
        self.relatch = False  # a new SDP address came: the next new source takes the latch over
        # The source of a party a transfer replaced, and how many of its packets came since.
        self.departed: Address | None = None
        self.departed_heard = 0
        self.packets = 0
        self.dropped = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.socket_transport = cast(asyncio.DatagramTransport, transport)  # uvloop's is not a subclass
        self._wrap_transport()

    def set_translator(self, translator: LawTranslator | None) -> None:
        """Translate this leg's party's audio with ``translator`` from its next packet on (each
        way); None: relay it as it is."""
        self.translator = translator
        self._wrap_transport()

    def _wrap_transport(self) -> None:
        inner, translator = self.socket_transport, self.translator
        if inner is None or translator is None:
            self.transport = inner
        else:
            self.transport = _TranslatingTransport(inner, translator)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        latched = self.latched
        if latched != addr:
            # Latch to the first source heard. After a new SDP address the old source keeps the
            # latch until a new one is heard (a moved stream may still send from the old port
            # until the answer), then the new one takes it over (RFC 3264 §8.3.1). The address
            # the party's SDP gave takes it over from any other source: a stranger's stream that
            # reached the port first (left from a crashed run, say) must not keep the leg.
            if latched is not None and not self.relatch and addr != self.remote:
                self.dropped += 1
                return
            if addr == self.departed:
                # The replaced party's packets still in flight do not latch; a second of them
                # does: that is the new party, sending from the same address after all.
                self.departed_heard += 1
                if self.departed_heard < DEPARTED_PACKETS:
                    self.dropped += 1
                    return
            self.latched = addr
            self.relatch = False
            self.departed = None
        self.packets += 1
        translator = self.translator
        if translator is not None:
            data = translator.from_party(data)
        tapped = self.tapped
        if tapped is not None:
            tapped.append(data)
            tapped.append(self.clock())
        inbound = self.inbound
        if inbound is not None:
            inbound(data)
        other = self.other
        if other is None:
            return
        target = other.latched or other.remote
        transport = other.transport
        if target is None or transport is None:
            return
        renumber = other.renumber
        if renumber is not None and len(data) >= RTP_HEADER_LEN:
            first, second, sequence, timestamp, ssrc = _RTP_HEADER.unpack_from(data)
            if RTCP_PT_LOW <= second & 0x7F <= RTCP_PT_HIGH:  # multiplexed RTCP (RFC 5761 §4)
                data = translate_rtcp(data, sent=renumber, heard=self.rtcp_renumber)
            elif ssrc == renumber.source_ssrc and first & 0xC0 == 0x80:
                sequence = (sequence + renumber.sequence_offset) & 0xFFFF
                timestamp = (timestamp + renumber.timestamp_offset) & 0xFFFFFFFF
                packet = bytearray(data)
                _SEQUENCE_TIMESTAMP_SSRC.pack_into(packet, 2, sequence, timestamp, renumber.ssrc)
                transport.sendto(packet, target)
                # Keep the newest: later by the wrap-around compare of proxy.rtp.seqnum.seq_newer.
                if ((sequence - other.renumbered_sequence + 0x8000) & 0xFFFF) > 0x8000:
                    other.renumbered_sequence = sequence
                    other.renumbered_timestamp = timestamp
                return
        elif (
            self.rtcp_renumber is not None and len(data) > 1 and RTCP_PT_LOW <= data[1] & 0x7F <= RTCP_PT_HIGH
        ):
            # Multiplexed (RFC 5761 §4); the sender's side is the hook's to translate, if any.
            data = translate_rtcp(data, sent=None, heard=self.rtcp_renumber)
        outbound = other.outbound
        if outbound is None:
            transport.sendto(data, target)
        else:
            outbound(data, target)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP unreachable from a peer that went away: the inactivity sweep ends the call

    def tap(self, into: list[bytes | float], clock: Callable[[], float]) -> None:
        """Append every packet heard, then its arrival time by ``clock``, to ``into``."""
        self.tapped = into
        self.clock = clock

    def untap(self) -> None:
        self.tapped = None
        self.clock = _no_clock

    def set_remote(self, remote: Address | None, *, new_party: bool = False) -> None:
        """A new SDP address: the next new source heard takes the latch over. A new party's
        address is used at once, until its own packets latch the leg (RFC 4961); the source
        latched so far, the party that left, does not latch it again (``DEPARTED_PACKETS``)."""
        if new_party:
            gone = self.latched
            self.departed = gone if gone != remote else None
            self.departed_heard = 0
            self.remote = remote
            self.latched = None
            self.relatch = False
        elif remote != self.remote:
            self.remote = remote
            self.relatch = self.latched is not None

    def close(self) -> None:
        self.closed = True
        self.other = None  # the two legs point at each other: freed at once, not by the collector
        if self.socket_transport is not None:
            self.socket_transport.close()
            self.socket_transport = self.transport = None
        elif self.sock is not None:
            self.sock.close()  # never attached to the loop
        self.sock = None


class _TranslatingTransport(asyncio.DatagramTransport):
    """A leg's socket transport that sends its party every packet in the party's own G.711 law."""

    def __init__(self, inner: asyncio.DatagramTransport, translator: LawTranslator) -> None:
        super().__init__()
        self._inner = inner
        self._translator = translator

    def sendto(self, data: bytes | bytearray | memoryview, addr: Any = None) -> None:
        self._inner.sendto(self._translator.to_party(bytes(data)), addr)

    def close(self) -> None:
        self._inner.close()

    def is_closing(self) -> bool:
        return self._inner.is_closing()

    def abort(self) -> None:
        self._inner.abort()

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self._inner.get_extra_info(name, default)


class RtcpLegProtocol(LegProtocol):
    """One leg's RTCP socket. It relays as the RTP socket does; while either party's RTP is
    renumbered, each compound packet is put in its receiver's terms first (``translate_rtcp``,
    RFC 3550 §7.2), and while the receiver hears a prompt or nothing of the sender
    (``rtcp_blocked``) it is dropped. RTCP comes every few seconds: a Python call per packet is
    nothing here."""

    __slots__ = ("other_rtp", "rtp")

    def __init__(self, sock: socket.socket | None = None) -> None:
        super().__init__(sock)
        self.rtp: LegProtocol | None = None  # this leg's RTP: the stream its party hears
        self.other_rtp: LegProtocol | None = None  # the other leg's RTP: what the far party hears

    def datagram_received(self, data: bytes, addr: Address) -> None:
        rtp, other_rtp = self.rtp, self.other_rtp
        if rtp is not None and other_rtp is not None:
            if other_rtp.rtcp_blocked:
                self.packets += 1  # the party is still there
                self.dropped += 1
                return
            sent, heard = other_rtp.rtcp_renumber, rtp.rtcp_renumber
            if sent is not None or heard is not None:
                data = translate_rtcp(data, sent=sent, heard=heard)
        super().datagram_received(data, addr)

    def close(self) -> None:
        self.rtp = self.other_rtp = None
        super().close()


@dataclass(slots=True)
class MediaSession:
    """A call's four sockets: RTP and RTCP for legs a and b."""

    call_ref: str
    rtp: dict[MediaLeg, LegProtocol]
    rtcp: dict[MediaLeg, RtcpLegProtocol]
    last_activity: float
    ports: tuple[int, ...] = ()  # the RTP port of each leg
    last_count: int = 0
    pending: set[asyncio.Task[None]] = field(default_factory=set)

    def packet_count(self) -> int:
        return sum(p.packets for p in self.rtp.values()) + sum(p.packets for p in self.rtcp.values())

    def close(self) -> None:
        for task in self.pending:
            task.cancel()
        for protocol in (*self.rtp.values(), *self.rtcp.values()):
            protocol.close()


def _family_of(bind_address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in bind_address else socket.AF_INET


class RtpPortProbe:
    """The core's port check (``proxy.b2bua.media_ports.PortCheck``): whether an RTP port and
    the RTCP port above it can be bound on the media address now.

    Another program may hold one of them: any socket bound to port 0 gets a port from the
    kernel's ephemeral range, which a configured RTP range may overlap. The call handed such a
    pair would fail when its sockets are bound, after its SDP named the ports; the pool passes
    the pair over instead. A pair is logged when it is first found taken, and again only after
    it was found free. The relay's own sockets stay bound for a moment after a session closes
    (the event loop closes them on its next round): such a pair (``closing``) is passed over once
    without a warning.
    """

    def __init__(self, bind_address: str) -> None:
        self._bind_address = bind_address
        self._family = _family_of(bind_address)
        self._taken: set[int] = set()
        self._closing: set[int] = set()

    def closing(self, port: int) -> None:
        """The relay is closing its sockets on ``port`` and ``port + 1``."""
        self._closing.add(port)

    def __call__(self, port: int) -> bool:
        sockets: list[socket.socket] = []
        try:
            for each in (port, port + 1):
                sock = socket.socket(self._family, socket.SOCK_DGRAM)
                sockets.append(sock)
                sock.bind((self._bind_address, each))
        except OSError as error:
            if port in self._closing:
                self._closing.discard(port)  # the next refusal is not ours
                return False
            if port not in self._taken:
                self._taken.add(port)
                _LOG.warning(
                    "RTP ports %d-%d on %s cannot be bound (%s); calls get other ports. Keep"
                    " media.rtp_port_min..rtp_port_max clear of ports other programs use",
                    port,
                    port + 1,
                    self._bind_address,
                    error.strerror or error,
                )
            return False
        finally:
            for sock in sockets:
                sock.close()
        self._taken.discard(port)
        self._closing.discard(port)
        return True


class MediaRelay:
    """Opens and closes media sessions and reports calls whose media went quiet."""

    def __init__(
        self,
        bind_address: str,
        *,
        inactivity_timeout_s: float,
        on_inactive: Callable[[str], None],
        sweep_interval_s: float | None = None,
        port_probe: RtpPortProbe | None = None,
    ) -> None:
        self._bind_address = bind_address
        self._family = _family_of(bind_address)
        self._sessions: dict[str, MediaSession] = {}
        self._timeout_s = inactivity_timeout_s
        self._sweep_interval_s = sweep_interval_s or min(1.0, inactivity_timeout_s / 4)
        self._on_inactive = on_inactive
        self._port_probe = port_probe

    @property
    def sessions(self) -> dict[str, MediaSession]:
        return self._sessions

    def open(self, call_ref: str, a_port: int, b_port: int) -> None:
        """Bind the four sockets now (raises OSError when a port is taken); relaying starts at once.

        Binding is synchronous so that a later ``set_remote`` always finds the session; the event
        loop attaches the sockets in tasks that ``close`` cancels if they are still pending.
        """
        loop = asyncio.get_running_loop()
        sockets: list[socket.socket] = []

        def bound(port: int) -> socket.socket:
            sock = socket.socket(self._family, socket.SOCK_DGRAM)
            sockets.append(sock)
            sock.bind((self._bind_address, port))
            sock.setblocking(False)
            return sock

        rtp: dict[MediaLeg, LegProtocol] = {}
        rtcp: dict[MediaLeg, RtcpLegProtocol] = {}
        try:
            for leg, port in ((MediaLeg.A, a_port), (MediaLeg.B, b_port)):
                rtp[leg] = LegProtocol(bound(port))
                rtcp[leg] = RtcpLegProtocol(bound(port + 1))
        except OSError:
            for sock in sockets:
                sock.close()
            raise
        for leg in (MediaLeg.A, MediaLeg.B):
            rtp[leg].other = rtp[leg.other]
            rtcp[leg].other = rtcp[leg.other]
            rtcp[leg].rtp = rtp[leg]
            rtcp[leg].other_rtp = rtp[leg.other]
        session = MediaSession(
            call_ref=call_ref, rtp=rtp, rtcp=rtcp, last_activity=loop.time(), ports=(a_port, b_port)
        )
        self._sessions[call_ref] = session
        for protocol in (*rtp.values(), *rtcp.values()):
            assert protocol.sock is not None  # bound above
            task = loop.create_task(self._attach(protocol.sock, protocol))
            session.pending.add(task)
            task.add_done_callback(session.pending.discard)

    @staticmethod
    async def _attach(sock: socket.socket, protocol: LegProtocol) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.create_datagram_endpoint(lambda: protocol, sock=sock)
        except BaseException:
            protocol.close()
            raise
        if protocol.closed:
            protocol.close()

    def set_remote(
        self,
        call_ref: str,
        leg: MediaLeg,
        remote: Address | None,
        *,
        rtcp: Address | None = None,
        rtcp_mux: bool = False,
        new_party: bool = False,
    ) -> None:
        """The SDP addresses of ``leg``'s party: ``remote`` for RTP; for RTCP, ``rtcp`` (its
        ``a=rtcp``, RFC 3605 §2.1), else the RTP port + 1 (RFC 3550 §11), else none when it
        multiplexes RTCP on the RTP port (``rtcp_mux``, RFC 5761 §5.1.1). One these sockets
        cannot send to (another address family, or a host name: RFC 8866 §5.7 allows both) is
        not used: the leg sends nothing until the party's own packets latch it (symmetric RTP,
        RFC 4961)."""
        session = self._sessions.get(call_ref)
        if session is None:
            return
        remote = self._usable(call_ref, leg, remote, "media")
        session.rtp[leg].set_remote(remote, new_party=new_party)
        if remote is None or rtcp_mux:
            rtcp = None
        elif rtcp is None:
            rtcp = (remote[0], remote[1] + 1)
        else:
            rtcp = self._usable(call_ref, leg, rtcp, "RTCP")
        session.rtcp[leg].set_remote(rtcp, new_party=new_party)

    def translate(self, call_ref: str, leg: MediaLeg, translation: LawTranslation | None) -> None:
        """Translate ``leg``'s party's audio between its G.711 law and the call's as
        ``translation`` says (None: no more)."""
        session = self._sessions.get(call_ref)
        if session is None:
            return
        translator = None
        if translation is not None:
            translator = LawTranslator(
                party_payload_type=translation.party_payload_type,
                party_codec=translation.party_codec,
                call_payload_type=translation.call_payload_type,
                call_codec=translation.call_codec,
            )
        session.rtp[leg].set_translator(translator)

    def _usable(self, call_ref: str, leg: MediaLeg, remote: Address | None, what: str) -> Address | None:
        """``remote``, or None (with a warning) when these sockets cannot send to it."""
        if remote is None or self._can_send_to(remote[0]):
            return remote
        _LOG.warning(
            "[%s] leg %s: the SDP %s address %s is not an IPv%d address that callherald's RTP"
            " sockets on %s can send to; waiting for the party's own packets (symmetric RTP)",
            call_ref,
            leg.value,
            what,
            remote[0],
            6 if self._family == socket.AF_INET6 else 4,
            self._bind_address,
        )
        return None

    def _can_send_to(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False  # a host name: resolving it here would block the loop
        return address.version == (6 if self._family == socket.AF_INET6 else 4)

    def close(self, call_ref: str) -> None:
        session = self._sessions.pop(call_ref, None)
        if session is not None:
            session.close()
            if self._port_probe is not None:
                for port in session.ports:
                    self._port_probe.closing(port)

    def close_all(self) -> None:
        for call_ref in list(self._sessions):
            self.close(call_ref)

    async def sweep_forever(self) -> None:
        """Every sweep interval, report sessions that heard no packet for the inactivity timeout."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._sweep_interval_s)
            now = loop.time()
            for session in list(self._sessions.values()):
                count = session.packet_count()
                if count != session.last_count:
                    session.last_count = count
                    session.last_activity = now
                elif now - session.last_activity >= self._timeout_s:
                    session.last_activity = now  # report again only after another full timeout
                    try:
                        self._on_inactive(session.call_ref)
                    except Exception:
                        _LOG.exception("inactivity handler failed for %s", session.call_ref)
