"""RTCP relayed between parties whose RTP is renumbered (``translate_rtcp``), packet by packet."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from proxy.rtp.packet import RTCP_APP, RTCP_BYE, RTCP_RR, RTCP_SDES, RTCP_SR, parse_rtcp
from proxy.rtp.rtcp import RTCP_PSFB, RTCP_RTPFB, translate_rtcp

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
