"""The relay's own renumbering of a steady source (``LegProtocol`` with a ``RelayRenumbering``),
against the stream state's ``translate`` and ``rewrite_header``; no sockets, a recording transport."""

from __future__ import annotations

import asyncio
from typing import cast

from hypothesis import given
from hypothesis import strategies as st

from proxy.aio.media import LegProtocol, RelayRenumbering
from proxy.b2bua.settings import Address
from proxy.rtp.pacing import RtpStreamState
from proxy.rtp.packet import rewrite_header

SSRC = 0x1234ABCD
SOURCE_SSRC = 0x01020304
FAR_END: Address = ("192.0.2.9", 5000)
PEER: Address = ("192.0.2.8", 4000)

RELAYED = st.lists(
    st.tuples(
        st.integers(0, 0xFFFF),  # sequence
        st.integers(0, 0xFFFFFFFF),  # timestamp
        st.booleans(),  # marker
        st.binary(min_size=0, max_size=40),  # CSRCs, extension, payload: copied as they are
    ),
    min_size=1,
    max_size=30,
)


class RecordingTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Address]] = []

    def sendto(self, data: bytes, addr: Address) -> None:
        self.sent.append((bytes(data), addr))


def source_packet(sequence: int, timestamp: int, marker: bool, rest: bytes) -> bytes:
    header = bytes([0x80, (0x80 if marker else 0) | 8]) + sequence.to_bytes(2, "big")
    return header + timestamp.to_bytes(4, "big") + SOURCE_SSRC.to_bytes(4, "big") + rest


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF), RELAYED, st.integers(0, 2000))
def test_the_relay_renumbers_as_translate_then_rewrite_header(
    sequence: int, timestamp: int, packets: list[tuple[int, int, bool, bytes]], elapsed: int
) -> None:
    # The relay must number every packet, and hand the stream back for the next switch, exactly as
    # translate + rewrite_header do, for any order of source packets.
    by_relay = RtpStreamState(ssrc=SSRC, sequence=sequence, timestamp=timestamp)
    two_steps = RtpStreamState(ssrc=SSRC, sequence=sequence, timestamp=timestamp)
    first_sequence, first_timestamp, first_marker, _ = packets[0]
    for stream in (by_relay, two_steps):
        stream.next_frame(160)
        stream.continue_from(
            source_sequence=first_sequence, source_timestamp=first_timestamp, elapsed_samples=0
        )
        stream.translate(first_sequence, first_timestamp, first_marker)  # the marked first packet
    source, towards = LegProtocol(), LegProtocol()
    source.other, towards.other = towards, source
    transport = RecordingTransport()
    towards.connection_made(cast(asyncio.DatagramTransport, transport))
    towards.set_remote(FAR_END)
    sequence_offset, timestamp_offset = by_relay.relay_offsets
    assert by_relay.last_sequence is not None
    assert by_relay.last_timestamp is not None
    towards.renumbered_sequence, towards.renumbered_timestamp = (
        by_relay.last_sequence,
        by_relay.last_timestamp,
    )
    towards.renumber = RelayRenumbering(SOURCE_SSRC, sequence_offset, timestamp_offset, SSRC)
    for seq, ts, marker, rest in packets[1:]:
        data = source_packet(seq, ts, marker, rest)
        new_seq, new_ts, new_marker = two_steps.translate(seq, ts, marker)
        source.datagram_received(data, PEER)
        expected = rewrite_header(data, sequence=new_seq, timestamp=new_ts, ssrc=SSRC, marker=new_marker)
        assert transport.sent.pop() == (expected, FAR_END)
        assert (towards.renumbered_sequence, towards.renumbered_timestamp) == (
            two_steps.last_sequence,
            two_steps.last_timestamp,
        )
    by_relay.relayed_up_to(towards.renumbered_sequence, towards.renumbered_timestamp)
    for stream in (by_relay, two_steps):
        stream.resume_local(elapsed_samples=elapsed)
    assert by_relay.next_frame(160) == two_steps.next_frame(160)


def test_other_sources_and_multiplexed_rtcp_go_through_the_hook() -> None:
    source, towards = LegProtocol(), LegProtocol()
    source.other, towards.other = towards, source
    transport = RecordingTransport()
    towards.connection_made(cast(asyncio.DatagramTransport, transport))
    towards.set_remote(FAR_END)
    hooked: list[bytes] = []
    towards.outbound = lambda data, target: hooked.append(data)
    towards.renumber = RelayRenumbering(SOURCE_SSRC, 5, 7, SSRC)
    other_source = source_packet(1, 160, False, b"x")[:8] + b"\x09\x09\x09\x09" + b"x"
    # An SR (second octet 200: 72 with the marker bit masked) whose octets 8-11 match the source.
    rtcp = bytes([0x80, 200]) + bytes(6) + SOURCE_SSRC.to_bytes(4, "big") + bytes(4)
    short = source_packet(1, 160, False, b"")[:11]
    for data in (other_source, rtcp, short):
        source.datagram_received(data, PEER)
    assert hooked == [other_source, rtcp, short]
    assert transport.sent == []
