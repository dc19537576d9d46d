"""A test-owned RTP endpoint on 127.0.0.1: sends a paced G.711 µ-law tone and records what arrives.

Each SIPp scenario advertises a ``MediaPeer``'s port in its SDP and writes the SDP connection and
media lines it receives from callherald to a file (``c=IN IP4 <address>|m=audio <port>``). The
peer waits for that file, then sends one 20 ms packet per 20 ms to the address in it, while it
records every datagram that reaches its own socket together with the datagram's source address.

A peer made with ``rtcp_every`` also binds the port above its RTP port (or ``rtcp_above`` ports
above it, for a peer whose SDP names that port in ``a=rtcp``, RFC 3605) and, every that many
packets, sends an RTCP compound packet to the port above the one it sends RTP to (RFC 3550 §11):
a sender report for the packet just sent, with a report block on the newest stream it heard, and
an SDES CNAME. It records the reports it sends and those that reach it. With ``rtcp_every`` 0 it
listens for RTCP and sends none.

A peer made with an ``Impairment`` plays the network between it and callherald: some of its
packets never leave (lost), some leave later than their turn (overtaken, or held up by a stall and
then sent in a burst), some leave twice. ``sent`` counts the payloads played, whatever became of
them.

Every payload of a stream is distinct (each packet's tone starts at its own phase and is a little
louder than the one before), so the receiving side can tell which packet it got and in what
order, whatever the relay does to the RTP header.
"""

from __future__ import annotations

import re
import select
import socket
import struct
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from proxy.rtp.g711 import PCMU_PAYLOAD_TYPE, SAMPLE_RATE_HZ, ulaw_encode
from proxy.rtp.packet import RtpPacket

__all__ = [
    "LOOPBACK",
    "PACKET_S",
    "SAMPLES_PER_PACKET",
    "Datagram",
    "Impairment",
    "MediaPeer",
    "RelayReport",
    "read_sdp_file",
    "relay_report",
    "tone_payloads",
]

LOOPBACK = "127.0.0.1"
PACKET_S = 0.020
SAMPLES_PER_PACKET = 160  # 20 ms at 8 kHz
_TONE_START_AMPLITUDE = 4000
_TONE_AMPLITUDE_STEP = 20  # per packet
_TONE_PHASE_STEP_RAD = 2.399963229728653  # the golden angle: packet phases never line up
_POLL_S = 0.01
_PAIR_ATTEMPTS = 50
_NTP_EPOCH_OFFSET_S = 2_208_988_800  # 1900 to 1970 (RFC 3550 §4)
_SDP_FILE = re.compile(r"c=IN IP4 (?P<address>[0-9.]+)\|m=audio (?P<port>[0-9]+)")

Address = tuple[str, int]


def tone_payloads(frequency_hz: float, count: int) -> list[bytes]:
    """``count`` consecutive 20 ms µ-law payloads of a sine at ``frequency_hz``, all distinct.

    Packet ``i`` holds the tone at amplitude ``4000 + 20 * i`` (below full scale for up to 500
    packets), its phase advanced by ``i`` times the golden angle. Raises ValueError for a count
    outside 1..500 or when two payloads come out equal (for some frequency that is an exact
    divisor of the sample rate).
    """
    if not 0 < count <= 500:
        raise ValueError(f"count must be 1..500, got {count}")
    samples = np.arange(count * SAMPLES_PER_PACKET, dtype=np.float64)
    packet = samples // SAMPLES_PER_PACKET
    envelope = _TONE_START_AMPLITUDE + _TONE_AMPLITUDE_STEP * packet
    phase = 2 * np.pi * frequency_hz * samples / SAMPLE_RATE_HZ + _TONE_PHASE_STEP_RAD * packet
    pcm = np.round(envelope * np.sin(phase)).astype(np.int16)
    payloads = [
        ulaw_encode(pcm[index * SAMPLES_PER_PACKET : (index + 1) * SAMPLES_PER_PACKET])
        for index in range(count)
    ]
    if len(set(payloads)) != count:
        raise ValueError(f"{frequency_hz} Hz gives repeated payloads within {count} packets")
    return payloads


def read_sdp_file(path: Path) -> Address | None:
    """The (address, port) a scenario wrote to ``path``; None while the file is absent or partial."""
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return None
    match = _SDP_FILE.search(text)
    if match is None:
        return None
    return match["address"], int(match["port"])


@dataclass(frozen=True, slots=True)
class Datagram:
    """One datagram that reached a peer: its bytes, where it came from, and when (monotonic s)."""

    data: bytes
    source: Address
    at: float


@dataclass(frozen=True, slots=True)
class Impairment:
    """What the network does to a peer's packets, by payload index: ``lost`` never arrive;
    ``held_for`` maps an index to how many packet times it is held back: it leaves right after
    the packet that many places later, which overtakes it; ``stalls`` maps the first index of a
    stall to how many packets it holds up: they leave together, in order, right before the next
    packet; ``doubled`` arrive twice (a duplicate, RFC 3550 §A.3)."""

    lost: frozenset[int] = frozenset()
    held_for: Mapping[int, int] = field(default_factory=dict)
    stalls: Mapping[int, int] = field(default_factory=dict)
    doubled: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        if any(places < 1 for places in (*self.held_for.values(), *self.stalls.values())):
            raise ValueError("a packet is held back by one place or more, a stall holds one packet or more")
        if self.lost & (self.held_for.keys() | self.doubled | self._stalled()):
            raise ValueError("a lost packet is neither held back nor doubled")

    def _stalled(self) -> set[int]:
        return {index for first, count in self.stalls.items() for index in range(first, first + count)}

    def leaving_after(self, index: int) -> list[int]:
        """The payload indices that leave in packet time ``index``, in the order they leave."""
        unstalled = [
            held
            for first, count in self.stalls.items()
            if first + count == index
            for held in range(first, index)
        ]
        delayed = index in self.lost or index in self.held_for or index in self._stalled()
        overtaken = sorted(held for held, places in self.held_for.items() if held + places == index)
        return [
            leaving
            for sent in (*unstalled, *([] if delayed else [index]), *overtaken)
            for leaving in ((sent, sent) if sent in self.doubled else (sent,))
        ]


@dataclass
class MediaPeer:
    """A UDP socket on 127.0.0.1 that plays ``payloads`` as RTP and records what it receives.

    Use as a context manager (the socket is closed on exit). ``start`` runs the peer in a thread;
    ``stop`` ends it and raises what the thread raised, if anything.
    """

    name: str
    ssrc: int
    payloads: list[bytes]
    first_sequence: int = 1000
    first_timestamp: int = 160_000
    payload_type: int = PCMU_PAYLOAD_TYPE
    received: list[Datagram] = field(default_factory=list)
    remote: Address | None = None
    sent: int = 0
    # A codec change (after a re-INVITE): the first packet sent at or after ``codec_switch_at``
    # (monotonic s, may be set while the peer runs) and every later one carry ``later_payloads``
    # as ``later_payload_type``, on the same sequence and timestamp line.
    later_payloads: list[bytes] | None = None
    later_payload_type: int | None = None
    codec_switch_at: float | None = None
    codec_switched_from: int | None = None  # the index of the first packet in the later codec
    rtcp_every: int | None = None
    rtcp_above: int = 1  # its RTCP port, above its RTP port
    # After the answer, this long without sending (still listening): a phone slow to start media.
    silent_for_s: float = 0.0
    impairment: Impairment = field(default_factory=Impairment)
    rtcp_sent: list[bytes] = field(default_factory=list)
    rtcp_received: list[Datagram] = field(default_factory=list)
    _sock: socket.socket = field(init=False, repr=False)
    _rtcp_sock: socket.socket | None = field(default=None, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _error: BaseException | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((LOOPBACK, 0))
        for _ in range(_PAIR_ATTEMPTS if self.rtcp_every is not None else 0):
            rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                rtcp.bind((LOOPBACK, self.port + self.rtcp_above))
            except OSError:  # taken: try another RTP port
                rtcp.close()
                self._sock.close()
                self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                self._sock.bind((LOOPBACK, 0))
                continue
            self._rtcp_sock = rtcp
            break
        else:
            if self.rtcp_every is not None:
                raise OSError(f"media peer {self.name}: no free RTP/RTCP port pair")

    def __enter__(self) -> MediaPeer:
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._sock.close()
        if self._rtcp_sock is not None:
            self._rtcp_sock.close()

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    @property
    def rtcp_port(self) -> int:
        return self.port + self.rtcp_above

    def packet(self, index: int) -> bytes:
        """The RTP packet carrying payload ``index`` (20 ms steps, marker on the first)."""
        payload_type, payload = self.payload_type, self.payloads[index]
        if self.codec_switched_from is not None and index >= self.codec_switched_from:
            if self.later_payloads is None or self.later_payload_type is None:
                raise ValueError(f"media peer {self.name}: a codec switch needs later payloads and type")
            payload_type, payload = self.later_payload_type, self.later_payloads[index]
        return bytes(
            RtpPacket(
                payload_type=payload_type,
                sequence=(self.first_sequence + index) & 0xFFFF,
                timestamp=(self.first_timestamp + index * SAMPLES_PER_PACKET) & 0xFFFFFFFF,
                ssrc=self.ssrc,
                marker=index == 0,
                payload=payload,
            )
        )

    def start(self, sdp_file: Path, *, wait_s: float = 10.0) -> None:
        """Receive from now on; send every payload once ``sdp_file`` names where to (within ``wait_s``)."""
        self._thread = threading.Thread(
            target=self._run, args=(sdp_file, wait_s), name=f"media-{self.name}", daemon=True
        )
        self._thread.start()

    def stop(self, *, linger_s: float = 0.2) -> None:
        """Wait ``linger_s`` for late packets, end the thread, re-raise its error."""
        time.sleep(linger_s)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            if self._thread.is_alive():
                raise RuntimeError(f"media peer {self.name} did not stop")
        if self._error is not None:
            raise self._error

    def sender_report(self, index: int) -> bytes:
        """The RTCP compound packet sent after packet ``index``: SR, a block on the newest stream
        heard (its latest sequence number as the extended highest), SDES CNAME."""
        now = time.time() + _NTP_EPOCH_OFFSET_S
        timestamp = (self.first_timestamp + index * SAMPLES_PER_PACKET) & 0xFFFFFFFF
        octets = sum(len(p) for p in self.payloads[: index + 1])
        info = struct.pack("!IIIII", int(now), int(now % 1 * 2**32), timestamp, index + 1, octets)
        blocks = b""
        heard = [d for d in self.received if len(d.data) >= 12]
        if heard:
            sequence, _, ssrc = struct.unpack_from("!HII", heard[-1].data, 2)
            blocks = struct.pack("!IIIIII", ssrc, 0, sequence, 0, 0, 0)
        count = len(blocks) // 24
        report = struct.pack("!BBHI", 0x80 | count, 200, 6 + 6 * count, self.ssrc) + info + blocks
        cname = f"{self.name}@{LOOPBACK}".encode()
        chunk = struct.pack("!I", self.ssrc) + bytes((1, len(cname))) + cname + b"\0"
        chunk += bytes(-len(chunk) % 4)
        return report + struct.pack("!BBH", 0x81, 202, len(chunk) // 4) + chunk

    def _receive_until(self, deadline: float) -> None:
        sockets = [self._sock] if self._rtcp_sock is None else [self._sock, self._rtcp_sock]
        while not self._stop.is_set():
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                return
            ready, _, _ = select.select(sockets, [], [], min(timeout, _POLL_S * 5))
            for sock in ready:
                data, source = sock.recvfrom(65536)
                into = self.received if sock is self._sock else self.rtcp_received
                into.append(Datagram(data, (str(source[0]), int(source[1])), time.monotonic()))

    def _run(self, sdp_file: Path, wait_s: float) -> None:
        try:
            give_up = time.monotonic() + wait_s
            while self.remote is None:
                if self._stop.is_set():
                    return
                if time.monotonic() > give_up:
                    raise TimeoutError(f"media peer {self.name}: no SDP file {sdp_file} in {wait_s} s")
                self.remote = read_sdp_file(sdp_file)
                self._receive_until(time.monotonic() + _POLL_S)
            self._receive_until(time.monotonic() + self.silent_for_s)
            begin = time.monotonic()
            for index in range(len(self.payloads)):
                if self._stop.is_set():
                    return
                if (
                    self.codec_switched_from is None
                    and self.codec_switch_at is not None
                    and time.monotonic() >= self.codec_switch_at
                ):
                    self.codec_switched_from = index
                for leaving in self.impairment.leaving_after(index):
                    self._sock.sendto(self.packet(leaving), self.remote)
                self.sent += 1
                if self._rtcp_sock is not None and self.rtcp_every and (index + 1) % self.rtcp_every == 0:
                    report = self.sender_report(index)
                    self._rtcp_sock.sendto(report, (self.remote[0], self.remote[1] + 1))
                    self.rtcp_sent.append(report)
                self._receive_until(begin + (index + 1) * PACKET_S)
            self._receive_until(float("inf"))
        except BaseException as error:
            self._error = error


@dataclass(frozen=True, slots=True)
class RelayReport:
    """What one peer received of another peer's stream.

    ``indices``: which of the sender's payloads arrived, in arrival order. ``foreign``: datagrams
    whose payload is none of the sender's. ``sources``: the distinct source addresses.
    ``payload_types``: the distinct RTP payload types (None for a datagram that is not RTP).
    """

    indices: tuple[int, ...]
    foreign: int
    sources: frozenset[Address]
    payload_types: frozenset[int | None]

    @property
    def in_order(self) -> bool:
        return all(a < b for a, b in zip(self.indices, self.indices[1:], strict=False))

    def loss(self, sent: int) -> float:
        return 1 - len(set(self.indices)) / sent if sent else 0.0


def relay_report(sender: MediaPeer, receiver: MediaPeer) -> RelayReport:
    """Match what ``receiver`` got against what ``sender`` sent, by payload."""
    index_of = {payload: index for index, payload in enumerate(sender.payloads)}
    indices: list[int] = []
    foreign = 0
    payload_types: set[int | None] = set()
    for datagram in receiver.received:
        try:
            packet = RtpPacket.parse(datagram.data)
        except ValueError:
            payload_types.add(None)
            foreign += 1
            continue
        payload_types.add(packet.payload_type)
        index = index_of.get(packet.payload)
        if index is None:
            foreign += 1
        else:
            indices.append(index)
    return RelayReport(
        indices=tuple(indices),
        foreign=foreign,
        sources=frozenset(datagram.source for datagram in receiver.received),
        payload_types=frozenset(payload_types),
    )
