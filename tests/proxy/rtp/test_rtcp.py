"""RTCP relayed between parties whose RTP is renumbered (``translate_rtcp``), packet by packet."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.rtp.packet import RTCP_APP, RTCP_BYE, RTCP_RR, RTCP_SDES, RTCP_SR, parse_rtcp
from proxy.rtp.rtcp import RTCP_PSFB, RTCP_RTPFB, RTCP_XR, translate_rtcp

SENDER = 0x0A0A0A0A  # the party sending the RTCP
RECEIVER = 0x0B0B0B0B  # the party it goes to
STREAM_TO_RECEIVER = 0xC0C0C0C0  # callherald's stream the receiver hears, made of SENDER's packets
STREAM_TO_SENDER = 0xD0D0D0D0  # callherald's stream the sender hears, made of RECEIVER's packets
STRANGER = 0x12345678


@dataclass(frozen=True)
class Renumbered:
    source_ssrc: int
    sequence_offset: int
    timestamp_offset: int
    ssrc: int


SENT = Renumbered(SENDER, sequence_offset=0x1234, timestamp_offset=0xFFFF0000, ssrc=STREAM_TO_RECEIVER)
HEARD = Renumbered(RECEIVER, sequence_offset=0xFFF0, timestamp_offset=77, ssrc=STREAM_TO_SENDER)


def rtcp(packet_type: int, count: int, body: bytes, *, padding: int = 0) -> bytes:
    body += bytes(padding - 1) + bytes([padding]) if padding else b""
    first = 0x80 | (0x20 if padding else 0) | count
    return struct.pack("!BBH", first, packet_type, len(body) // 4) + body


def block(ssrc: int, highest: int, *, lost: int = 0x01000005, jitter: int = 33) -> bytes:
    return struct.pack("!IIIIII", ssrc, lost, highest, jitter, 0xAABBCCDD, 0x00010000)


def sender_report(ssrc: int, rtp_timestamp: int, *blocks: bytes) -> bytes:
    info = struct.pack("!IIIII", 0xE1E2E3E4, 0x55667788, rtp_timestamp, 500, 80_000)
    return rtcp(RTCP_SR, len(blocks), struct.pack("!I", ssrc) + info + b"".join(blocks))


def receiver_report(ssrc: int, *blocks: bytes) -> bytes:
    return rtcp(RTCP_RR, len(blocks), struct.pack("!I", ssrc) + b"".join(blocks))


def sdes_chunk(ssrc: int, *items: tuple[int, bytes]) -> bytes:
    chunk = (
        struct.pack("!I", ssrc) + b"".join(bytes([kind, len(text)]) + text for kind, text in items) + b"\0"
    )
    return chunk + bytes(-len(chunk) % 4)


def sdes(*chunks: bytes) -> bytes:
    return rtcp(RTCP_SDES, len(chunks), b"".join(chunks))


def words(data: bytes) -> list[int]:
    return list(struct.unpack(f"!{len(data) // 4}I", data))


def xr(ssrc: int, *blocks: bytes, padding: int = 0) -> bytes:
    return rtcp(RTCP_XR, 0, struct.pack("!I", ssrc) + b"".join(blocks), padding=padding)


def xr_block(block_type: int, contents: bytes, *, specific: int = 0) -> bytes:
    # RFC 3611 §3: the length is in 32-bit words, the header included, minus one.
    return struct.pack("!BBH", block_type, specific, len(contents) // 4) + contents


def feedback(packet_type: int, fmt: int, sender: int, media_source: int, fci: bytes) -> bytes:
    return rtcp(packet_type, fmt, struct.pack("!II", sender, media_source) + fci)


def nack(sender: int, media_source: int, pids: list[int]) -> bytes:
    # RFC 4585 §6.2.1: each entry a lost packet's PID and a bitmask of the 16 after it (BLP).
    return feedback(
        RTCP_RTPFB, 1, sender, media_source, b"".join(struct.pack("!HH", p, 0x8001) for p in pids)
    )


def voip_metrics(ssrc: int) -> bytes:
    # RFC 3611 §4.7: loss, discard, burst and gap densities and durations, delays, levels, R
    # factors, MOS, receiver configuration, jitter buffer: nothing that names a stream.
    metrics = (
        bytes([5, 0, 20, 2])  # loss and discard rates, burst and gap densities
        + struct.pack("!4H", 120, 4000, 80, 60)  # burst and gap durations, round trip and end system delays
        + struct.pack("!2b6B", -20, -70, 25, 16, 85, 127, 40, 38)  # levels, RERL, Gmin, R factors, MOS
        + struct.pack("!2B3H", 0x2B, 0, 60, 120, 300)  # receiver configuration, jitter buffer
    )
    return xr_block(7, struct.pack("!I", ssrc) + metrics)


def test_a_sender_report_names_the_stream_the_receiver_hears_at_the_same_instant() -> None:
    original = sender_report(SENDER, 0x00020000, block(STREAM_TO_SENDER, 0x0001_0005), block(STRANGER, 9))
    translated = translate_rtcp(original, sent=SENT, heard=HEARD)
    before, after = words(original), words(translated)
    assert len(after) == len(before)
    assert after[1] == STREAM_TO_RECEIVER
    assert after[4] == (0x00020000 + 0xFFFF0000) & 0xFFFFFFFF  # the receiver's timeline, wrapped
    # The block about what the sender hears names its source, in the source's numbering.
    assert after[7] == RECEIVER
    assert after[9] == (0x0001_0005 - 0xFFF0) & 0xFFFFFFFF
    assert (after[9] + HEARD.sequence_offset) & 0xFFFF == 0x0005
    # NTP time, counts, loss, jitter, LSR and DLSR, and the block about a stranger: unchanged.
    unchanged = [0, 2, 3, 5, 6, 8, 10, 11, 12, *range(13, 19)]
    assert [after[i] for i in unchanged] == [before[i] for i in unchanged]


def test_an_sr_from_another_source_keeps_its_timestamp() -> None:
    original = sender_report(STRANGER, 1234)
    assert translate_rtcp(original, sent=SENT, heard=HEARD) == original


def test_a_receiver_report_rewrites_only_the_block_about_the_heard_stream() -> None:
    original = receiver_report(SENDER, block(STRANGER, 100), block(STREAM_TO_SENDER, 0x0003_0001))
    after = words(translate_rtcp(original, sent=None, heard=HEARD))
    assert after[1] == SENDER  # no renumbering towards the receiver: the sender stays itself
    assert after[2] == STRANGER
    assert after[4] == 100
    assert after[8] == RECEIVER
    assert after[10] == (0x0003_0001 - 0xFFF0) & 0xFFFFFFFF


def test_sdes_chunks_of_every_padding_are_walked_and_only_the_senders_renamed() -> None:
    for length in range(1, 9):
        chunks = (
            sdes_chunk(STRANGER, (1, b"x" * length), (2, b"name")),
            sdes_chunk(SENDER, (1, b"c" * length), (6, b"tool" * length)),
            sdes_chunk(RECEIVER, (1, b"r")),
        )
        original = receiver_report(SENDER) + sdes(*chunks)
        translated = translate_rtcp(original, sent=SENT, heard=None)
        expected = receiver_report(STREAM_TO_RECEIVER) + sdes(
            chunks[0], struct.pack("!I", STREAM_TO_RECEIVER) + chunks[1][4:], chunks[2]
        )
        assert translated == expected, length


def test_bye_app_and_feedback_name_the_renamed_streams() -> None:
    bye = rtcp(RTCP_BYE, 2, struct.pack("!II", STRANGER, SENDER) + b"\x03bye")
    app = rtcp(RTCP_APP, 1, struct.pack("!I", SENDER) + b"NAME" + b"data")
    nack = rtcp(RTCP_RTPFB, 1, struct.pack("!IIHH", SENDER, STREAM_TO_SENDER, 7, 0))
    pli = rtcp(RTCP_PSFB, 1, struct.pack("!II", SENDER, STRANGER))
    original = receiver_report(SENDER) + bye + app + nack + pli
    after = words(translate_rtcp(original, sent=SENT, heard=HEARD))
    assert after[1] == STREAM_TO_RECEIVER
    assert after[3:5] == [STRANGER, STREAM_TO_RECEIVER]  # BYE: only the sender's own source
    assert after[7] == STREAM_TO_RECEIVER  # APP
    assert after[11:13] == [STREAM_TO_RECEIVER, RECEIVER]  # NACK about the heard stream
    assert after[15:17] == [STREAM_TO_RECEIVER, STRANGER]  # PLI about someone else
    assert len(after) * 4 == len(original)


# RFC 3611 blocks about a source's sequence range (§4.1): block type, type-specific octet, and
# what follows the SSRC, begin_seq and end_seq, for the three packets 0xFFFE, 0xFFFF and 0x0000.
SEQUENCE_RANGE_BLOCKS = [
    pytest.param(1, 0x00, struct.pack("!HH", 0x4003, 0), id="loss-rle-4.1"),  # 3 received, null chunk
    pytest.param(2, 0x00, struct.pack("!HH", 0x0003, 0), id="duplicate-rle-4.2"),  # 3 not duplicated
    pytest.param(3, 0x00, struct.pack("!III", 0x1000, 0x10A0, 0x1140), id="packet-receipt-times-4.3"),
    pytest.param(
        6, 0xE8, struct.pack("!6I4B", 0, 1, 3, 40, 12, 9, 60, 64, 62, 1), id="statistics-summary-4.6"
    ),  # L, D, J and IPv4 TTLs reported
]


@pytest.mark.parametrize(("block_type", "specific", "rest"), SEQUENCE_RANGE_BLOCKS)
def test_an_xr_block_about_the_heard_stream_names_its_source_and_the_sources_sequence_numbers(
    block_type: int, specific: int, rest: bytes
) -> None:
    def compound(sender: int, source: int, begin: int, end: int) -> bytes:
        about = xr_block(block_type, struct.pack("!IHH", source, begin, end) + rest, specific=specific)
        stranger = xr_block(block_type, struct.pack("!IHH", STRANGER, 0xFFFE, 1) + rest, specific=specific)
        return receiver_report(sender) + xr(sender, about, stranger)

    original = compound(SENDER, STREAM_TO_SENDER, 0xFFFE, 0x0001)
    # The heard stream's 0xFFFE up to 0x0001 (end_seq is the last one plus one) are the source's
    # 0x000E up to 0x0011: the offset is 0xFFF0, and both ends wrap. Receipt times, counts, jitter
    # and TTLs stay; so does the block about a stranger.
    expected = compound(STREAM_TO_RECEIVER, RECEIVER, 0x000E, 0x0011)
    assert translate_rtcp(original, sent=SENT, heard=HEARD) == expected


def test_xr_voip_metrics_about_the_heard_stream_name_its_source_past_blocks_of_other_types() -> None:
    unknown = xr_block(42, struct.pack("!II", STREAM_TO_SENDER, 7))  # not a type of RFC 3611: as it is
    rrtr = xr_block(4, struct.pack("!II", 0xE1E2E3E4, STREAM_TO_SENDER))  # §4.4: an NTP time, no source
    original = receiver_report(SENDER) + xr(
        SENDER, unknown, rrtr, voip_metrics(STREAM_TO_SENDER), voip_metrics(STRANGER)
    )
    expected = receiver_report(SENDER) + xr(
        SENDER, unknown, rrtr, voip_metrics(RECEIVER), voip_metrics(STRANGER)
    )
    assert translate_rtcp(original, sent=None, heard=HEARD) == expected


def test_a_dlrr_names_the_receiver_it_answers_as_the_receiver_is_itself() -> None:
    # RFC 3611 §4.5: SSRC_i sent the Receiver Reference Time block answered. The receiver's XR
    # reached the sender as STREAM_TO_SENDER's (renamed by the renumbering of the stream the
    # sender hears), so the answer goes back to it as RECEIVER. LRR and DLRR are NTP-based.
    def dlrr(receiver: int) -> bytes:
        return xr_block(5, struct.pack("!6I", STRANGER, 0x11223344, 0x20000, receiver, 0x55667788, 0x18000))

    original = receiver_report(SENDER) + xr(SENDER, dlrr(STREAM_TO_SENDER))
    expected = receiver_report(SENDER) + xr(SENDER, dlrr(RECEIVER))
    assert translate_rtcp(original, sent=None, heard=HEARD) == expected


def test_a_padded_xr_packet_is_walked_up_to_its_padding() -> None:
    def compound(source: int, begin: int) -> bytes:
        block = xr_block(1, struct.pack("!IHHHH", source, begin, begin + 1, 0x4001, 0))
        return receiver_report(SENDER) + xr(SENDER, block, padding=4)

    # The padding (0, 0, 0, 4) read as a block would run past the packet and undo everything.
    expected = compound(RECEIVER, 0x0010)
    assert translate_rtcp(compound(STREAM_TO_SENDER, 0x0000), sent=None, heard=HEARD) == expected


def test_a_generic_nack_about_the_heard_stream_asks_for_the_sources_sequence_numbers() -> None:
    original = (
        receiver_report(SENDER)
        + nack(SENDER, STREAM_TO_SENDER, [0xFFFE, 0x0005])
        + nack(SENDER, STRANGER, [0xFFFE, 0x0005])
    )
    # The heard stream's PIDs 0xFFFE and 0x0005 are the source's 0x000E and 0x0015; the BLPs are
    # relative to their PIDs and stay. A NACK about another source keeps its PIDs.
    expected = (
        receiver_report(SENDER)
        + nack(SENDER, RECEIVER, [0x000E, 0x0015])
        + nack(SENDER, STRANGER, [0xFFFE, 0x0005])
    )
    assert translate_rtcp(original, sent=None, heard=HEARD) == expected


# RFC 5104 FCI entries of 8 bytes that start with an SSRC: the format and the 4 bytes after it.
SSRC_ENTRY_FORMATS = [
    # §4.2.1, §4.2.2: MxTBR exponent 9, mantissa 1000, measured overhead 40 bytes.
    pytest.param(RTCP_RTPFB, 3, struct.pack("!I", 9 << 26 | 1000 << 9 | 40), id="tmmbr-4.2.1"),
    pytest.param(RTCP_RTPFB, 4, struct.pack("!I", 9 << 26 | 1000 << 9 | 40), id="tmmbn-4.2.2"),
    pytest.param(RTCP_PSFB, 4, struct.pack("!B3x", 7), id="fir-4.3.1"),  # command sequence number 7
    pytest.param(RTCP_PSFB, 5, struct.pack("!B2xB", 7, 12), id="tstr-4.3.2"),  # and trade-off index 12
    pytest.param(RTCP_PSFB, 6, struct.pack("!B2xB", 7, 12), id="tstn-4.3.3"),
]


@pytest.mark.parametrize(("packet_type", "fmt", "rest"), SSRC_ENTRY_FORMATS)
def test_fci_entries_naming_the_heard_stream_name_its_source(packet_type: int, fmt: int, rest: bytes) -> None:
    # The media source field is unused (0) here; each entry names a stream. In a TMMBR, FIR or
    # TSTR it is the media sender asked, in a TMMBN or TSTN the requester: either way the packet's
    # receiver, which the sender knows by the stream it hears.
    def compound(sender: int, named: int) -> bytes:
        fci = struct.pack("!I", STRANGER) + rest + struct.pack("!I", named) + rest
        return receiver_report(sender) + feedback(packet_type, fmt, sender, 0, fci)

    expected = compound(STREAM_TO_RECEIVER, RECEIVER)
    assert translate_rtcp(compound(SENDER, STREAM_TO_SENDER), sent=SENT, heard=HEARD) == expected


def test_vbcm_entries_of_every_length_are_walked_and_name_the_source() -> None:
    # RFC 5104 §4.3.4.1: SSRC, seq nr, payload type, the octet string's length, the string padded
    # to 32 bits. The entry to rename comes after one of each string length.
    def compound(named: int, length: int) -> bytes:
        string = bytes(range(1, length + 1)) + bytes(-length % 4)
        fci = struct.pack("!IBBH", STRANGER, 3, 96, length) + string
        fci += struct.pack("!IBBH", named, 4, 96, 2) + b"\x01\x02\0\0"
        return receiver_report(SENDER) + feedback(RTCP_PSFB, 7, SENDER, 0, fci)

    for length in range(9):
        translated = translate_rtcp(compound(STREAM_TO_SENDER, length), sent=None, heard=HEARD)
        assert translated == compound(RECEIVER, length), length


def test_xr_blocks_and_fci_entries_that_do_not_add_up_leave_the_compound_unchanged() -> None:
    loss = xr_block(1, struct.pack("!IHHHH", STREAM_TO_SENDER, 1, 2, 0x4001, 0))
    for bad in (
        xr(SENDER, loss, struct.pack("!BBHI", 1, 0, 3, STREAM_TO_SENDER)),  # a block longer than its packet
        rtcp(RTCP_XR, 0, struct.pack("!I", SENDER) + loss + b"\x07\0", padding=2),  # half a block header
        xr(SENDER, loss, xr_block(2, b"")),  # a Duplicate RLE block without source or range
        xr(SENDER, loss, xr_block(6, struct.pack("!I", STREAM_TO_SENDER))),  # Statistics without a range
        xr(SENDER, loss, xr_block(7, b"")),  # VoIP Metrics without their source
        xr(SENDER, loss, xr_block(5, struct.pack("!II", STREAM_TO_SENDER, 0))),  # a DLRR sub-block cut short
        feedback(RTCP_RTPFB, 3, SENDER, 0, struct.pack("!I", STREAM_TO_SENDER)),  # half a TMMBR entry
        feedback(
            RTCP_PSFB, 4, SENDER, 0, struct.pack("!II4B", STREAM_TO_SENDER, 7 << 24, 1, 2, 3, 4)
        ),  # 1.5 FIR entries
        feedback(RTCP_PSFB, 7, SENDER, 0, struct.pack("!IBBH", STREAM_TO_SENDER, 1, 96, 5) + b"abcd"),  # VBCM
        # A VBCM entry, then half of another one's SSRC, seq nr, payload type and length.
        feedback(
            RTCP_PSFB, 7, SENDER, 0, struct.pack("!IBBHI", STREAM_TO_SENDER, 1, 96, 0, STREAM_TO_SENDER)
        ),
    ):
        compound = receiver_report(SENDER) + bad
        assert translate_rtcp(compound, sent=SENT, heard=HEARD) == compound, bad.hex()


def test_nothing_to_translate_returns_the_packet_itself() -> None:
    original = sender_report(SENDER, 5, block(STREAM_TO_SENDER, 5))
    assert translate_rtcp(original, sent=None, heard=None) is original
    unrelated = sender_report(STRANGER, 5, block(STRANGER, 5))
    assert translate_rtcp(unrelated, sent=SENT, heard=HEARD) is unrelated


def test_invalid_rtcp_is_relayed_unchanged() -> None:
    valid = sender_report(SENDER, 5, block(STREAM_TO_SENDER, 5))
    broken_sdes = receiver_report(SENDER) + rtcp(RTCP_SDES, 1, struct.pack("!I", SENDER) + b"\x01\x09ab\x00")
    for bad in (
        valid[:-4],  # length runs past the datagram
        bytes([0x40]) + valid[1:],  # version 1
        sdes(sdes_chunk(SENDER, (1, b"c"))),  # a compound packet must start with a report
        broken_sdes,  # an item longer than its packet
        receiver_report(SENDER) + rtcp(RTCP_SDES, 2, sdes_chunk(SENDER, (1, b"c"))),  # a chunk missing
    ):
        assert translate_rtcp(bad, sent=SENT, heard=HEARD) == bad


def inverse(renumbering: Renumbered) -> Renumbered:
    return Renumbered(
        source_ssrc=renumbering.ssrc,
        sequence_offset=-renumbering.sequence_offset,
        timestamp_offset=-renumbering.timestamp_offset,
        ssrc=renumbering.source_ssrc,
    )


SSRCS = st.sampled_from([SENDER, STREAM_TO_SENDER, STRANGER, 0])
U32 = st.integers(0, 0xFFFFFFFF)
U16 = st.integers(0, 0xFFFF)

# Parts of an XR or feedback packet, each built as its sender writes it (``heard`` None) or as its
# receiver must get it, given the renumbering of the stream the sender hears: the model of what
# ``translate_rtcp`` does there, field by field.
Part = Callable[[Renumbered | None], bytes]


def name(ssrc: int, heard: Renumbered | None) -> int:
    return heard.source_ssrc if heard is not None and ssrc == heard.ssrc else ssrc


def number(sequence: int, ssrc: int, heard: Renumbered | None) -> int:
    if heard is None or ssrc != heard.ssrc:
        return sequence
    return (sequence - heard.sequence_offset) & 0xFFFF


def range_block(block_type: int, ssrc: int, begin: int, end: int, heard: Renumbered | None) -> bytes:
    sequences = number(begin, ssrc, heard), number(end, ssrc, heard)
    return xr_block(block_type, struct.pack("!IHHI", name(ssrc, heard), *sequences, 0x4001_0000))


def dlrr_block(receivers: list[int], heard: Renumbered | None) -> bytes:
    return xr_block(5, b"".join(struct.pack("!III", name(r, heard), 0x11223344, 0x8000) for r in receivers))


def voip_block(ssrc: int, heard: Renumbered | None) -> bytes:
    return voip_metrics(name(ssrc, heard))


def other_block(block_type: int, contents: list[int], heard: Renumbered | None) -> bytes:
    return xr_block(block_type, b"".join(struct.pack("!I", word) for word in contents))


def xr_part(sender: int, blocks: list[Part], heard: Renumbered | None) -> bytes:
    return xr(sender, *(block(heard) for block in blocks))


def nack_part(media_source: int, pids: list[int], heard: Renumbered | None) -> bytes:
    return nack(SENDER, name(media_source, heard), [number(pid, media_source, heard) for pid in pids])


def ssrc_entries_part(kind: tuple[int, int], ssrcs: list[int], heard: Renumbered | None) -> bytes:
    fci = b"".join(struct.pack("!II", name(ssrc, heard), 0x07000000) for ssrc in ssrcs)
    return feedback(*kind, SENDER, 0, fci)


XR_BLOCKS = st.one_of(
    st.builds(partial, st.just(range_block), st.sampled_from([1, 2, 3, 6]), SSRCS, U16, U16),
    st.builds(partial, st.just(dlrr_block), st.lists(SSRCS, min_size=1, max_size=3)),
    st.builds(partial, st.just(voip_block), SSRCS),
    # Receiver Reference Time (§4.4) and types RFC 3611 does not define: never rewritten.
    st.builds(partial, st.just(other_block), st.sampled_from([4, 8, 42, 255]), st.lists(SSRCS, max_size=3)),
)
FEEDBACK_PARTS: st.SearchStrategy[Part] = st.one_of(
    st.builds(partial, st.just(xr_part), SSRCS, st.lists(XR_BLOCKS, max_size=4)),
    st.builds(partial, st.just(nack_part), SSRCS, st.lists(U16, min_size=1, max_size=3)),
    st.builds(
        partial,
        st.just(ssrc_entries_part),
        st.sampled_from([(RTCP_RTPFB, 3), (RTCP_RTPFB, 4), (RTCP_PSFB, 4), (RTCP_PSFB, 5), (RTCP_PSFB, 6)]),
        st.lists(SSRCS, min_size=1, max_size=3),
    ),
)
BLOCKS = st.lists(st.builds(block, SSRCS, U32, lost=U32, jitter=U32), max_size=3)
TEXT = st.binary(min_size=0, max_size=12)
PACKETS = st.one_of(
    st.builds(lambda s, t, b: sender_report(s, t, *b), SSRCS, U32, BLOCKS),
    st.builds(lambda s, b: receiver_report(s, *b), SSRCS, BLOCKS),
    st.builds(
        lambda chunks: sdes(*(sdes_chunk(s, *((1, t) for t in texts)) for s, texts in chunks)),
        st.lists(st.tuples(SSRCS, st.lists(TEXT.filter(bool), max_size=3)), max_size=3),
    ),
    st.builds(lambda s, m: rtcp(RTCP_RTPFB, 1, struct.pack("!II", s, m) + b"fci!"), SSRCS, SSRCS),
    st.builds(
        lambda ss: rtcp(RTCP_BYE, len(ss), b"".join(struct.pack("!I", s) for s in ss)),
        st.lists(SSRCS, max_size=4),  # the count field holds up to 31
    ),
    st.builds(lambda part: part(None), FEEDBACK_PARTS),
)


@given(st.lists(PACKETS, min_size=1, max_size=5), U32, st.integers(0, 0xFFFF), U32, st.integers(0, 0xFFFF))
def test_translating_back_with_the_inverse_renumberings_gives_the_packet_again(
    packets: list[bytes], sent_ts: int, sent_seq: int, heard_ts: int, heard_seq: int
) -> None:
    # The sender's SSRCs are SENDER or STREAM_TO_SENDER (or others), never the names they are
    # renamed to, so the translation can be undone; it never changes a packet's size or validity.
    original = receiver_report(SENDER) + b"".join(packets)
    sent = Renumbered(SENDER, sent_seq, sent_ts, STREAM_TO_RECEIVER)
    heard = Renumbered(RECEIVER, heard_seq, heard_ts, STREAM_TO_SENDER)
    translated = translate_rtcp(original, sent=sent, heard=heard)
    assert [h.packet_type for h in parse_rtcp(translated)] == [h.packet_type for h in parse_rtcp(original)]
    assert translate_rtcp(translated, sent=inverse(sent), heard=inverse(heard)) == original


@given(st.lists(FEEDBACK_PARTS, min_size=1, max_size=4), st.integers(0, 0xFFFF), U32)
def test_xr_blocks_and_feedback_reach_the_receiver_as_the_model_names_them(
    parts: list[Part], heard_seq: int, heard_ts: int
) -> None:
    # Every SSRC in them naming the stream the sender hears names its source, with that stream's
    # sequence numbers in the source's numbering; everything else, unknown blocks included, stays.
    heard = Renumbered(RECEIVER, heard_seq, heard_ts, STREAM_TO_SENDER)
    original = receiver_report(SENDER) + b"".join(part(None) for part in parts)
    expected = receiver_report(SENDER) + b"".join(part(heard) for part in parts)
    assert translate_rtcp(original, sent=None, heard=heard) == expected
