"""RTP and RTCP packets on the wire (RFC 3550 §5.1, §6; RFC 5761 §4).

Two ways in:

* ``RtpPacket.parse(data)`` / ``bytes(packet)``: the full header (CSRC list, header extension,
  padding kept verbatim), validated; ``bytes(RtpPacket.parse(data)) == data`` for every packet it
  accepts.
* ``peek_header`` / ``rewrite_header``: the relay's per-packet path. They read or patch the fixed
  12-byte header with one precompiled ``struct.Struct`` and leave everything after it untouched.

RTCP is parsed only as far as a relay needs to validate and count it (``parse_rtcp``), and
``build_rtcp_bye`` makes the compound packet that ends a stream.

Malformed input raises ``RtpError`` (a ``ValueError``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from proxy.rtp.errors import RtpError

__all__ = [
    "RTCP_APP",
    "RTCP_BYE",
    "RTCP_PT_HIGH",
    "RTCP_PT_LOW",
    "RTCP_REPORT_BLOCK_LEN",
    "RTCP_RR",
    "RTCP_SDES",
    "RTCP_SR",
    "RTCP_SR_SENDER_INFO_LEN",
    "RTP_HEADER_LEN",
    "RTP_VERSION",
    "RtcpHeader",
    "RtpError",
    "RtpExtension",
    "RtpPacket",
    "build_rtcp_bye",
    "is_rtcp",
    "parse_rtcp",
    "peek_header",
    "rewrite_header",
]

RTP_VERSION = 2
RTP_HEADER_LEN = 12
MAX_CSRC = 15

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
RTCP_APP = 204

# Second octet of a demultiplexed packet, marker bit masked off (RFC 5761 §4).
RTCP_PT_LOW = 64
RTCP_PT_HIGH = 95

_HEADER = struct.Struct("!BBHII")  # V/P/X/CC, M/PT, sequence, timestamp, SSRC
_EXT_HEADER = struct.Struct("!HH")  # profile, length in 32-bit words
_RTCP_HEADER = struct.Struct("!BBH")  # V/P/count, packet type, length in words minus one
_U32 = struct.Struct("!I")
_CSRC = tuple(struct.Struct(f"!{n}I") for n in range(MAX_CSRC + 1))

_SDES_CNAME = 1
RTCP_SR_SENDER_INFO_LEN = 20  # NTP time, RTP timestamp, packet and octet counts (RFC 3550 §6.4.1)
RTCP_REPORT_BLOCK_LEN = 24


@dataclass(frozen=True, slots=True, kw_only=True)
class RtpExtension:
    """An RTP header extension (RFC 3550 §5.3.1): 16-bit profile word and the data, kept opaque."""

    profile: int
    data: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.profile <= 0xFFFF:
            raise RtpError(f"RTP extension profile out of range: {self.profile}")
        if len(self.data) % 4:
            raise RtpError(f"RTP extension data must be a multiple of 4 bytes, got {len(self.data)}")
        if len(self.data) > 0xFFFF * 4:
            raise RtpError(f"RTP extension data too long: {len(self.data)} bytes")


@dataclass(frozen=True, slots=True, kw_only=True)
class RtpPacket:
    """One RTP packet (RFC 3550 §5.1), version 2.

    ``padding`` is the padding verbatim, including its final count octet (empty: no P bit), so that
    parsing and serialising round-trip exactly. Field values are validated when built.
    """

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension: RtpExtension | None = None
    payload: bytes = b""
    padding: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.payload_type <= 0x7F:
            raise RtpError(f"RTP payload type out of range: {self.payload_type}")
        if not 0 <= self.sequence <= 0xFFFF:
            raise RtpError(f"RTP sequence number out of range: {self.sequence}")
        if not 0 <= self.timestamp <= 0xFFFFFFFF:
            raise RtpError(f"RTP timestamp out of range: {self.timestamp}")
        if not 0 <= self.ssrc <= 0xFFFFFFFF:
            raise RtpError(f"RTP SSRC out of range: {self.ssrc}")
        if len(self.csrc) > MAX_CSRC:
            raise RtpError(f"RTP packet has more than {MAX_CSRC} CSRCs: {len(self.csrc)}")
        if self.csrc and any(not 0 <= c <= 0xFFFFFFFF for c in self.csrc):
            raise RtpError("RTP CSRC out of range")
        if self.padding and (len(self.padding) > 0xFF or self.padding[-1] != len(self.padding)):
            raise RtpError("RTP padding must end with its own length (1..255)")

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse one RTP packet; raise ``RtpError`` if it is malformed (RFC 3550 §5.1, §A.1)."""
        size = len(data)
        if size < RTP_HEADER_LEN:
            raise RtpError(f"RTP packet shorter than its {RTP_HEADER_LEN}-byte header: {size} bytes")
        b0, b1, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
        if b0 >> 6 != RTP_VERSION:
            raise RtpError(f"RTP version must be {RTP_VERSION}, got {b0 >> 6}")
        count = b0 & 0x0F
        pos = RTP_HEADER_LEN + 4 * count
        if pos > size:
            raise RtpError(f"RTP packet has truncated CSRC list ({count} CSRCs, {size} bytes)")
        csrc: tuple[int, ...] = _CSRC[count].unpack_from(data, RTP_HEADER_LEN) if count else ()
        extension = None
        if b0 & 0x10:
            # RFC 3550 §5.3.1: profile word, length in 32-bit words, then the data.
            if pos + 4 > size:
                raise RtpError("RTP packet has truncated extension header")
            profile, words = _EXT_HEADER.unpack_from(data, pos)
            pos += 4
            end = pos + 4 * words
            if end > size:
                raise RtpError(f"RTP extension length ({words} words) runs past the packet")
            extension = RtpExtension(profile=profile, data=bytes(data[pos:end]))
            pos = end
        end = size
        padding = b""
        if b0 & 0x20:
            # RFC 3550 §5.1: the last octet counts the padding, itself included.
            pad = data[-1]
            if pad == 0:
                raise RtpError("RTP padding count is zero")
            if pad > size - pos:
                raise RtpError(f"RTP padding ({pad} bytes) larger than payload ({size - pos} bytes)")
            end = size - pad
            padding = bytes(data[end:])
        return cls(
            payload_type=b1 & 0x7F,
            sequence=sequence,
            timestamp=timestamp,
            ssrc=ssrc,
            marker=bool(b1 & 0x80),
            csrc=csrc,
            extension=extension,
            payload=bytes(data[pos:end]),
            padding=padding,
        )

    def __bytes__(self) -> bytes:
        b0 = (RTP_VERSION << 6) | len(self.csrc)
        if self.padding:
            b0 |= 0x20
        if self.extension is not None:
            b0 |= 0x10
        b1 = self.payload_type | (0x80 if self.marker else 0)
        parts = [_HEADER.pack(b0, b1, self.sequence, self.timestamp, self.ssrc)]
        if self.csrc:
            parts.append(_CSRC[len(self.csrc)].pack(*self.csrc))
        if self.extension is not None:
            parts.append(_EXT_HEADER.pack(self.extension.profile, len(self.extension.data) // 4))
            parts.append(self.extension.data)
        parts.append(self.payload)
        parts.append(self.padding)
        return b"".join(parts)

    def __repr__(self) -> str:
        extras = ""
        if self.csrc:
            extras += f", csrc={len(self.csrc)}"
        if self.extension is not None:
            extras += f", ext=0x{self.extension.profile:04x}/{len(self.extension.data)}"
        if self.padding:
            extras += f", padding={len(self.padding)}"
        return (
            f"RtpPacket(pt={self.payload_type}, seq={self.sequence}, ts={self.timestamp}, "
            f"ssrc=0x{self.ssrc:08x}, m={int(self.marker)}{extras}, payload={len(self.payload)}B)"
        )


def peek_header(data: bytes) -> tuple[int, int, int, int, bool]:
    """``(payload_type, sequence, timestamp, ssrc, marker)`` of an RTP packet, from its fixed header.

    Checks only the length and the version; the rest of the packet is not looked at.
    """
    if len(data) < RTP_HEADER_LEN:
        raise RtpError(f"RTP packet shorter than its {RTP_HEADER_LEN}-byte header: {len(data)} bytes")
    b0, b1, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
    if b0 & 0xC0 != 0x80:
        raise RtpError(f"RTP version must be {RTP_VERSION}, got {b0 >> 6}")
    return b1 & 0x7F, sequence, timestamp, ssrc, b1 > 0x7F


def rewrite_header(
    data: bytes, *, sequence: int, timestamp: int, ssrc: int, marker: bool | None = None
) -> bytes:
    """``data`` with a new sequence number, timestamp and SSRC (and marker, unless ``None``).

    Everything else (version, flags, payload type, CSRCs, extension, payload, padding) is copied
    unchanged. Values must already be in range (use ``seqnum.seq_add``/``ts_add``); otherwise
    ``struct.error`` is raised.
    """
    if len(data) < RTP_HEADER_LEN:
        raise RtpError(f"RTP packet shorter than its {RTP_HEADER_LEN}-byte header: {len(data)} bytes")
    b1 = data[1]
    if marker is not None:
        b1 = (b1 | 0x80) if marker else (b1 & 0x7F)
    return _HEADER.pack(data[0], b1, sequence, timestamp, ssrc) + data[RTP_HEADER_LEN:]


def is_rtcp(data: bytes) -> bool:
    """True if a packet on an RTP/RTCP-multiplexed port is RTCP (RFC 5761 §4).

    RTCP packet types 192-223 put 64-95 in the second octet's low seven bits; RTP payload types
    64-95 are forbidden on a multiplexed port, so masking the marker bit tells the two apart.
    """
    return len(data) >= 2 and RTCP_PT_LOW <= (data[1] & 0x7F) <= RTCP_PT_HIGH


@dataclass(frozen=True, slots=True, kw_only=True)
class RtcpHeader:
    """One packet of a compound RTCP packet.

    ``length`` is the packet's size in bytes, header and padding included. ``ssrc`` is the sender
    SSRC (SR, RR, APP and other types), or the first source listed (SDES, BYE); ``None`` when the
    packet lists no source.
    """

    packet_type: int
    length: int
    ssrc: int | None


def parse_rtcp(data: bytes) -> list[RtcpHeader]:
    """Split and validate a compound RTCP packet (RFC 3550 §6.1, validity checks of §A.2).

    Checks: version 2 in every packet; the first packet is SR or RR; lengths add up to exactly the
    datagram; padding only on the last packet and within it; packet types in the RTCP range
    192-223; SR, RR, SDES, BYE and APP long enough for what their count field announces. Report
    blocks, SDES items and the rest of the bodies are not decoded.
    """
    size = len(data)
    if size < 4:
        raise RtpError(f"RTCP packet shorter than its 4-byte header: {size} bytes")
    headers: list[RtcpHeader] = []
    pos = 0
    while pos < size:
        if size - pos < 4:
            raise RtpError(f"RTCP compound packet has {size - pos} trailing bytes")
        b0, packet_type, words = _RTCP_HEADER.unpack_from(data, pos)
        if b0 >> 6 != RTP_VERSION:
            raise RtpError(f"RTCP version must be {RTP_VERSION}, got {b0 >> 6}")
        if not 192 <= packet_type <= 223:
            raise RtpError(f"not an RTCP packet type: {packet_type}")
        if not headers and packet_type not in (RTCP_SR, RTCP_RR):
            raise RtpError(f"RTCP compound packet must start with SR or RR, got {packet_type}")
        length = 4 * (words + 1)
        end = pos + length
        if end > size:
            raise RtpError(f"RTCP packet length ({length} bytes) runs past the datagram")
        body = length - 4
        if b0 & 0x20:
            # RFC 3550 §A.2: only the last packet of a compound packet may be padded.
            if end != size:
                raise RtpError("RTCP padding on a packet that is not the last")
            pad = data[end - 1]
            if pad == 0 or pad > body:
                raise RtpError(f"RTCP padding count {pad} invalid for a {body}-byte body")
            body -= pad
        count = b0 & 0x1F
        if packet_type == RTCP_SR:
            needed = 4 + RTCP_SR_SENDER_INFO_LEN + RTCP_REPORT_BLOCK_LEN * count
        elif packet_type == RTCP_RR:
            needed = 4 + RTCP_REPORT_BLOCK_LEN * count
        elif packet_type == RTCP_SDES:
            needed = 8 * count  # each chunk: SSRC and at least one terminating word
        elif packet_type == RTCP_BYE:
            needed = 4 * count
        elif packet_type == RTCP_APP:
            needed = 8  # SSRC and four-character name
        else:
            needed = 0
        if body < needed:
            raise RtpError(f"RTCP packet type {packet_type} too short: {body} < {needed} bytes")
        if packet_type in (RTCP_SDES, RTCP_BYE):
            ssrc = _U32.unpack_from(data, pos + 4)[0] if count else None
        else:
            ssrc = _U32.unpack_from(data, pos + 4)[0] if body >= 4 else None
        headers.append(RtcpHeader(packet_type=packet_type, length=length, ssrc=ssrc))
        pos = end
    return headers


def _rtcp_packet(count: int, packet_type: int, body: bytes) -> bytes:
    return _RTCP_HEADER.pack((RTP_VERSION << 6) | count, packet_type, len(body) // 4) + body


def _pad_to_word(data: bytes) -> bytes:
    return data + bytes(-len(data) % 4)


def build_rtcp_bye(ssrc: int, *, reason: str = "", cname: str | None = None) -> bytes:
    """A compound RTCP packet announcing that ``ssrc`` leaves (RFC 3550 §6.6).

    It is an empty RR (a compound packet starts with a report, RFC 3550 §6.1), an SDES CNAME chunk
    if ``cname`` is given, and the BYE with the optional UTF-8 ``reason``.
    """
    if not 0 <= ssrc <= 0xFFFFFFFF:
        raise RtpError(f"RTCP SSRC out of range: {ssrc}")
    ssrc_bytes = _U32.pack(ssrc)
    parts = [_rtcp_packet(0, RTCP_RR, ssrc_bytes)]
    if cname is not None:
        text = cname.encode("utf-8")
        if not 1 <= len(text) <= 0xFF:
            raise RtpError(f"RTCP CNAME must be 1..255 bytes, got {len(text)}")
        # RFC 3550 §6.5: item list ends with a null octet, chunk padded to a 32-bit boundary.
        chunk = _pad_to_word(ssrc_bytes + bytes((_SDES_CNAME, len(text))) + text + b"\x00")
        parts.append(_rtcp_packet(1, RTCP_SDES, chunk))
    body = ssrc_bytes
    if reason:
        text = reason.encode("utf-8")
        if len(text) > 0xFF:
            raise RtpError(f"RTCP BYE reason longer than 255 bytes: {len(text)}")
        body += _pad_to_word(bytes((len(text),)) + text)
    parts.append(_rtcp_packet(1, RTCP_BYE, body))
    return b"".join(parts)
