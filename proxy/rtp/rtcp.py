"""RTCP between two parties whose RTP is renumbered on the way (RFC 3550 §7.2), sans-IO.

After a notice the far end of a leg hears one stream of callherald's own: the other party's
packets carry callherald's SSRC, and their sequence numbers and timestamps are shifted by
constant offsets (``Renumbering``). The parties' RTCP must name the streams as the other side
knows them, or a sender report describes a source its receiver never heard and a receiver report
a stream its sender never sent. ``translate_rtcp`` rewrites a compound packet relayed from one
party to the other, in place, with two renumberings:

* ``sent``: of the stream the packet's *receiver* hears, made of its sender's packets. The
  sender's own SSRC (as sender of an SR, RR, APP, XR or feedback packet, as an SDES chunk, in a
  BYE) becomes the stream's, and an SR's RTP timestamp moves into the stream's timeline, so that
  it still names the instant its NTP timestamp does (RFC 3550 §6.4.1).
* ``heard``: of the stream the packet's *sender* hears. A report block (RFC 3550 §6.4.1) or a
  feedback packet's media source (RFC 4585 §6.1) naming that stream names its source instead, and
  a report's extended highest sequence number moves back into the source's numbering.

Everything else passes as it is: other SSRCs, NTP times, counts, loss and jitter, LSR and DLSR
(the NTP times they echo are not changed). A compound packet that ``parse_rtcp`` rejects, or
whose SDES chunks do not add up, is relayed unchanged: it is the parties' business, not ours.
Report blocks inside XR packets (RFC 3611) and SSRCs in feedback control information are not
rewritten.
"""

from __future__ import annotations

import struct
from typing import Final, Protocol

from proxy.rtp.errors import RtpError
from proxy.rtp.packet import (
    RTCP_BYE,
    RTCP_REPORT_BLOCK_LEN,
    RTCP_RR,
    RTCP_SDES,
    RTCP_SR,
    RTCP_SR_SENDER_INFO_LEN,
    RtcpHeader,
    parse_rtcp,
)

__all__ = ["RTCP_PSFB", "RTCP_RTPFB", "Renumbering", "translate_rtcp"]

RTCP_RTPFB: Final = 205  # RFC 4585 §6.1: transport-layer feedback
RTCP_PSFB: Final = 206  # payload-specific feedback

_U32: Final = struct.Struct("!I")
_SR_RTP_TIMESTAMP: Final = 16  # from the start of an SR: header, SSRC, NTP (RFC 3550 §6.4.1)
_RR_BLOCKS: Final = 8  # after the header and the sender's SSRC
_SR_BLOCKS: Final = _RR_BLOCKS + RTCP_SR_SENDER_INFO_LEN
_BLOCK_HIGHEST: Final = 8  # the extended highest sequence number, within a report block
_MEDIA_SOURCE: Final = 8  # a feedback packet's media source SSRC (RFC 4585 §6.1)


class Renumbering(Protocol):
    """How one source's packets become the stream a party hears (``proxy.aio.media.RelayRenumbering``)."""

    @property
    def source_ssrc(self) -> int: ...

    @property
    def sequence_offset(self) -> int: ...

    @property
    def timestamp_offset(self) -> int: ...

    @property
    def ssrc(self) -> int: ...


def translate_rtcp(data: bytes, *, sent: Renumbering | None, heard: Renumbering | None) -> bytes:
    """``data`` with its SSRCs, SR timestamps and report blocks in the receiver's terms (see the
    module docstring); ``data`` itself when nothing changes or it is not valid RTCP."""
    if sent is None and heard is None:
        return data
    try:
        headers = parse_rtcp(data)
    except RtpError:
        return data
    packet = bytearray(data)
    start = 0
    try:
        for header in headers:
            _translate_one(packet, start, header, sent, heard)
            start += header.length
    except RtpError:
        return data
    return data if packet == data else bytes(packet)


def _translate_one(
    packet: bytearray, start: int, header: RtcpHeader, sent: Renumbering | None, heard: Renumbering | None
) -> None:
    packet_type, count, end = header.packet_type, packet[start] & 0x1F, start + header.length
    if packet_type == RTCP_SDES:
        _translate_sdes_chunks(packet, start + 4, end, count, sent)
        return
    if packet_type == RTCP_BYE:
        for index in range(count):
            _rename_sender(packet, start + 4 + 4 * index, sent)
        return
    if end - start < 8:
        return  # no sender SSRC (an empty packet of a type we do not know)
    renamed = _rename_sender(packet, start + 4, sent)
    if packet_type == RTCP_SR:
        if renamed:
            assert sent is not None
            _add_u32(packet, start + _SR_RTP_TIMESTAMP, sent.timestamp_offset)
        _translate_blocks(packet, start + _SR_BLOCKS, count, heard)
    elif packet_type == RTCP_RR:
        _translate_blocks(packet, start + _RR_BLOCKS, count, heard)
    elif packet_type in (RTCP_RTPFB, RTCP_PSFB) and end - start >= 12:
        _rename_heard(packet, start + _MEDIA_SOURCE, heard)


def _rename_sender(packet: bytearray, at: int, sent: Renumbering | None) -> bool:
    # The sender's own SSRC becomes that of the stream its packets make for the receiver.
    if sent is None or _U32.unpack_from(packet, at)[0] != sent.source_ssrc:
        return False
    _U32.pack_into(packet, at, sent.ssrc)
    return True


def _rename_heard(packet: bytearray, at: int, heard: Renumbering | None) -> bool:
    # A stream the sender hears is named by the source it was made of.
    if heard is None or _U32.unpack_from(packet, at)[0] != heard.ssrc:
        return False
    _U32.pack_into(packet, at, heard.source_ssrc)
    return True


def _translate_blocks(packet: bytearray, at: int, count: int, heard: Renumbering | None) -> None:
    for block in range(at, at + count * RTCP_REPORT_BLOCK_LEN, RTCP_REPORT_BLOCK_LEN):
        if _rename_heard(packet, block, heard):
            assert heard is not None
            # Sequence numbers of the heard stream are the source's plus the offset (mod 2**16).
            _add_u32(packet, block + _BLOCK_HIGHEST, -heard.sequence_offset)


def _add_u32(packet: bytearray, at: int, amount: int) -> None:
    _U32.pack_into(packet, at, (_U32.unpack_from(packet, at)[0] + amount) & 0xFFFFFFFF)


def _translate_sdes_chunks(
    packet: bytearray, chunk: int, end: int, count: int, sent: Renumbering | None
) -> None:
    # RFC 3550 §6.5: each chunk is an SSRC and items (type, length, text), ended by a null octet
    # and padded to a 32-bit boundary.
    for _ in range(count):
        if chunk + 4 > end:
            raise RtpError("SDES chunks run past their packet")
        _rename_sender(packet, chunk, sent)
        item = chunk + 4
        while True:
            if item >= end:
                raise RtpError("SDES items run past their packet")
            if packet[item] == 0:
                break
            if item + 1 >= end:
                raise RtpError("SDES item without its length")
            item += 2 + packet[item + 1]
        chunk = item + 1 + (-(item + 1 - chunk) % 4)
