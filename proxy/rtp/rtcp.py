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
* ``heard``: of the stream the packet's *sender* hears. Where the sender names that stream, it
  names its source instead: in a report block (RFC 3550 §6.4.1), an XR report block about a
  source (Loss RLE, Duplicate RLE, Packet Receipt Times, Statistics Summary, VoIP Metrics: RFC
  3611 §4.1-§4.3, §4.6, §4.7), a feedback packet's media source (RFC 4585 §6.1) and the FCI
  entries of TMMBR, FIR, TSTR and VBCM (RFC 5104 §4.2.1, §4.3.1, §4.3.2, §4.3.4). Sequence
  numbers of that stream move back into the source's numbering: a report's extended highest
  sequence number, an XR block's begin_seq and end_seq, a Generic NACK's PIDs (RFC 4585 §6.2.1).
  The sender knows the packet's receiver by that stream's SSRC too, so ``heard`` also renames a
  DLRR sub-block's receiver (RFC 3611 §4.5), a TSTN's requester and a TMMBN's tuple owners (RFC
  5104 §4.3.3, §4.2.2).

Everything else passes as it is: other SSRCs, NTP times, counts, loss and jitter, LSR and DLSR
(the NTP times they echo are not changed), LRR and DLRR, XR receipt times (the reporter's own
clock, RFC 3611 §4.3), a NACK's BLP (relative to its PID), FCI command sequence numbers, and XR
block types and feedback formats not named above. A compound packet that ``parse_rtcp`` rejects,
or whose SDES chunks, XR blocks or FCI entries do not add up, is relayed unchanged: it is the
parties' business, not ours.
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
from proxy.rtp.seqnum import seq_add

__all__ = ["RTCP_PSFB", "RTCP_RTPFB", "RTCP_XR", "Renumbering", "translate_rtcp"]

RTCP_RTPFB: Final = 205  # RFC 4585 §6.1: transport-layer feedback
RTCP_PSFB: Final = 206  # payload-specific feedback
RTCP_XR: Final = 207  # RFC 3611 §2: extended report

_U16: Final = struct.Struct("!H")
_U32: Final = struct.Struct("!I")
_SR_RTP_TIMESTAMP: Final = 16  # from the start of an SR: header, SSRC, NTP (RFC 3550 §6.4.1)
_RR_BLOCKS: Final = 8  # after the header and the sender's SSRC (XR blocks too, RFC 3611 §2)
_SR_BLOCKS: Final = _RR_BLOCKS + RTCP_SR_SENDER_INFO_LEN
_BLOCK_HIGHEST: Final = 8  # the extended highest sequence number, within a report block
_MEDIA_SOURCE: Final = 8  # a feedback packet's media source SSRC (RFC 4585 §6.1)
_FCI: Final = 12  # a feedback packet's feedback control information, after the media source

# RFC 3611 §4: XR block types (BT) whose contents start with the SSRC of the source reported on.
_XR_SEQUENCE_RANGE: Final = frozenset({1, 2, 3, 6})  # Loss/Duplicate RLE, Receipt Times, Statistics
_XR_DLRR: Final = 5  # §4.5: sub-blocks of a receiver's SSRC, LRR and DLRR
_XR_VOIP_METRICS: Final = 7  # §4.7: no sequence numbers
_XR_DLRR_SUB_BLOCK_LEN: Final = 12

# Feedback formats (packet type, FMT) whose FCI is rewritten.
_GENERIC_NACK: Final = (RTCP_RTPFB, 1)  # RFC 4585 §6.2.1: entries of PID and BLP, 4 bytes
_NACK_ENTRY_LEN: Final = 4
_SSRC_ENTRIES: Final = frozenset(  # entries of 8 bytes, each starting with an SSRC
    {
        (RTCP_RTPFB, 3),  # TMMBR, RFC 5104 §4.2.1: the media sender asked
        (RTCP_RTPFB, 4),  # TMMBN, §4.2.2: a bounding tuple's owner, i.e. a TMMBR's sender
        (RTCP_PSFB, 4),  # FIR, §4.3.1: the media sender asked
        (RTCP_PSFB, 5),  # TSTR, §4.3.2: the media sender asked
        (RTCP_PSFB, 6),  # TSTN, §4.3.3: the TSTR's sender
    }
)
_SSRC_ENTRY_LEN: Final = 8
_VBCM: Final = (RTCP_PSFB, 7)  # RFC 5104 §4.3.4: SSRC, seq nr, payload type, length, octets


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
    """``data`` with its SSRCs, SR timestamps, report blocks, XR blocks and feedback in the
    receiver's terms (see the module docstring); ``data`` itself when nothing changes or it is
    not valid RTCP."""
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
    if packet[start] & 0x20:
        end -= packet[end - 1]  # RFC 3550 §6.4.1: padding, counted by its last octet (checked)
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
    elif packet_type == RTCP_XR:
        _translate_xr_blocks(packet, start + _RR_BLOCKS, end, heard)
    elif packet_type in (RTCP_RTPFB, RTCP_PSFB) and end - start >= _FCI:
        _translate_feedback(packet, start, end, (packet_type, count), heard)


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


def _to_source_sequence(packet: bytearray, at: int, heard: Renumbering) -> None:
    # A 16-bit sequence number of the heard stream, back into its source's numbering.
    _U16.pack_into(packet, at, seq_add(_U16.unpack_from(packet, at)[0], -heard.sequence_offset))


def _entries(at: int, end: int, size: int) -> range:
    if (end - at) % size:
        raise RtpError(f"{end - at} bytes are not a whole number of {size}-byte entries")
    return range(at, end, size)


def _translate_xr_blocks(packet: bytearray, block: int, end: int, heard: Renumbering | None) -> None:
    # RFC 3611 §3: blocks of a type octet, a type-specific octet and a length in 32-bit words
    # minus one, the header included; unknown types are skipped by their length.
    while block < end:
        if block + 4 > end:
            raise RtpError("XR block header runs past its packet")
        block_type = packet[block]
        block_end = block + 4 * (_U16.unpack_from(packet, block + 2)[0] + 1)
        if block_end > end:
            raise RtpError("XR block runs past its packet")
        if block_type in _XR_SEQUENCE_RANGE:
            # §4.1: SSRC of source, then begin_seq and end_seq (the last one reported plus one),
            # 16-bit numbers of the stream as the reporter received it.
            if block_end - block < 12:
                raise RtpError(f"XR block type {block_type} too short for its source and sequence range")
            if _rename_heard(packet, block + 4, heard):
                assert heard is not None
                _to_source_sequence(packet, block + 8, heard)
                _to_source_sequence(packet, block + 10, heard)
        elif block_type == _XR_VOIP_METRICS:
            if block_end - block < 8:
                raise RtpError("XR VoIP Metrics block without its source")
            _rename_heard(packet, block + 4, heard)
        elif block_type == _XR_DLRR:
            # §4.5: SSRC_i is a receiver whose Receiver Reference Time block (§4.4) the XR's sender
            # answers. Here that is the packet's receiver, whose XR reached the sender renamed by
            # the stream the sender hears: ``heard``'s, as for a report block's source.
            for sub_block in _entries(block + 4, block_end, _XR_DLRR_SUB_BLOCK_LEN):
                _rename_heard(packet, sub_block, heard)
        block = block_end


def _translate_feedback(
    packet: bytearray, start: int, end: int, kind: tuple[int, int], heard: Renumbering | None
) -> None:
    about_heard = _rename_heard(packet, start + _MEDIA_SOURCE, heard)
    fci = start + _FCI
    if kind == _GENERIC_NACK:
        # RFC 4585 §6.2.1: a lost packet's sequence number (PID) of the media source and a bitmask
        # of the 16 after it (BLP, relative: unchanged).
        entries = _entries(fci, end, _NACK_ENTRY_LEN)
        if about_heard:
            assert heard is not None
            for entry in entries:
                _to_source_sequence(packet, entry, heard)
    elif kind in _SSRC_ENTRIES:
        # RFC 5104 §4.2, §4.3: the media source field is unused; each entry names its own SSRC.
        for entry in _entries(fci, end, _SSRC_ENTRY_LEN):
            _rename_heard(packet, entry, heard)
    elif kind == _VBCM:
        # RFC 5104 §4.3.4.1: SSRC of the media sender asked, seq nr, payload type, then a 16-bit
        # length of the octet string that follows, padded to 32 bits.
        entry = fci
        while entry < end:
            if entry + 8 > end:
                raise RtpError("VBCM entry runs past its packet")
            entry_end = entry + 8 + (_U16.unpack_from(packet, entry + 6)[0] + 3) // 4 * 4
            if entry_end > end:
                raise RtpError("VBCM octet string runs past its packet")
            _rename_heard(packet, entry, heard)
            entry = entry_end


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
