"""The relay's legs (``LegProtocol``, ``RtcpLegProtocol``): tapping what a party sends, RTCP of
renumbered streams, translating a party's G.711 law, and closing; no sockets."""

from __future__ import annotations

import asyncio
import gc
import itertools
import struct

from proxy.aio.media import DEPARTED_PACKETS, LegProtocol, RelayRenumbering, RtcpLegProtocol
from proxy.b2bua.effects import MediaLeg
from proxy.b2bua.settings import Address
from proxy.rtp.rtcp import translate_rtcp
from proxy.rtp.transcode import LawTranslator, translation_table

A_PEER: Address = ("127.0.0.1", 40000)
B_PEER: Address = ("127.0.0.1", 40002)


class SentTransport(asyncio.DatagramTransport):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[bytes, object]] = []
        self.closed = False

    def sendto(self, data: bytes | bytearray | memoryview, addr: object = None) -> None:
        self.sent.append((bytes(data), addr))

    def close(self) -> None:
        self.closed = True


def test_a_tapped_leg_keeps_each_packet_and_its_arrival_time_and_still_relays_it() -> None:
    source, towards = LegProtocol(), LegProtocol()
    source.other, towards.other = towards, source
    sent = SentTransport()
    towards.connection_made(sent)
    towards.set_remote(B_PEER)
    ticks = itertools.count(10.0, 0.02)
    tapped: list[bytes | float] = []
    source.tap(tapped, lambda: next(ticks))
    source.datagram_received(b"first", A_PEER)
    source.datagram_received(b"second", A_PEER)
    source.datagram_received(b"stranger", ("127.0.0.1", 49999))  # not the latched source
    source.untap()
    source.datagram_received(b"after", A_PEER)
    assert tapped == [b"first", 10.0, b"second", 10.02]
    assert sent.sent == [(b"first", B_PEER), (b"second", B_PEER), (b"after", B_PEER)]


def test_closed_legs_are_freed_without_the_garbage_collector() -> None:
    # The two legs of a call point at each other; closing them must undo that, or every ended call
    # waits for a full collection, which stalls the relay for all the others.
    gc.collect()
    gc.disable()
    try:
        before = _legs_alive()
        source, towards = LegProtocol(), LegProtocol()
        source.other, towards.other = towards, source
        source.close()
        towards.close()
        del source, towards
        after = _legs_alive()
    finally:
        gc.enable()
    assert after == before


def _legs_alive() -> int:
    return sum(isinstance(o, LegProtocol) for o in gc.get_objects())


A_SSRC, B_SSRC = 0xAAAA0001, 0xBBBB0002  # the parties' own streams
TO_A, TO_B = 0xCA110A00, 0xCA110B00  # callherald's streams towards each party
# What each party hears after its prompt: the other party's packets, renumbered.
HEARD_BY = {
    MediaLeg.A: RelayRenumbering(B_SSRC, sequence_offset=100, timestamp_offset=16_000, ssrc=TO_A),
    MediaLeg.B: RelayRenumbering(A_SSRC, sequence_offset=0xFF00, timestamp_offset=-160, ssrc=TO_B),
}


def sender_report(ssrc: int, rtp_timestamp: int, about: int, highest: int) -> bytes:
    info = struct.pack("!IIIII", 0xE0000001, 0x80000000, rtp_timestamp, 10, 1600)
    block = struct.pack("!IIIIII", about, 0, highest, 4, 0, 0)
    return struct.pack("!BBHI", 0x81, 200, 12, ssrc) + info + block


def call_legs(
    renumbered: tuple[MediaLeg, ...],
) -> tuple[dict[MediaLeg, LegProtocol], dict[MediaLeg, RtcpLegProtocol], dict[MediaLeg, SentTransport]]:
    # A call's four sockets wired as MediaRelay.open wires them, each leg latched to its party.
    rtp = {leg: LegProtocol() for leg in MediaLeg}
    rtcp = {leg: RtcpLegProtocol() for leg in MediaLeg}
    sent = {leg: SentTransport() for leg in MediaLeg}
    for leg in MediaLeg:
        rtp[leg].other, rtcp[leg].other = rtp[leg.other], rtcp[leg.other]
        rtcp[leg].rtp, rtcp[leg].other_rtp = rtp[leg], rtp[leg.other]
        for protocol in (rtp[leg], rtcp[leg]):
            protocol.connection_made(sent[leg])
            protocol.set_remote(A_PEER if leg is MediaLeg.A else B_PEER)
        if leg in renumbered:  # as the leg's announcement player sets them, past its guard
            rtp[leg].renumber = rtp[leg].rtcp_renumber = HEARD_BY[leg]
    return rtp, rtcp, sent


def test_rtcp_reaches_the_other_party_in_the_terms_of_the_streams_it_hears_and_sends() -> None:
    _, rtcp, sent = call_legs((MediaLeg.A, MediaLeg.B))
    from_a = sender_report(A_SSRC, 50_000, about=TO_A, highest=0x0001_0010)
    rtcp[MediaLeg.A].datagram_received(from_a, A_PEER)
    ((relayed, to),) = sent[MediaLeg.B].sent
    assert to == B_PEER
    assert relayed == translate_rtcp(from_a, sent=HEARD_BY[MediaLeg.B], heard=HEARD_BY[MediaLeg.A])
    sender, rtp_timestamp, about, highest = struct.unpack_from("!I8xI8xI4xI", relayed, 4)
    assert sender == TO_B  # the stream B hears is made of A's packets
    assert rtp_timestamp == 50_000 - 160
    assert about == B_SSRC  # A reports on what it hears: B's packets
    assert highest == 0x0001_0010 - 100


def test_rtcp_passes_unchanged_when_neither_party_hears_a_renumbered_stream() -> None:
    _, rtcp, sent = call_legs(())
    from_b = sender_report(B_SSRC, 7, about=A_SSRC, highest=5)
    rtcp[MediaLeg.B].datagram_received(from_b, B_PEER)
    assert sent[MediaLeg.A].sent == [(from_b, A_PEER)]


def test_multiplexed_rtcp_is_translated_on_the_rtp_socket_in_either_direction() -> None:
    # Only A hears a renumbered stream (a notice to A, none to B): RTCP towards A renames B's
    # source; RTCP from A still reports on TO_A, which B knows as its own B_SSRC.
    rtp, _, sent = call_legs((MediaLeg.A,))
    from_b = sender_report(B_SSRC, 1000, about=A_SSRC, highest=3)
    from_a = sender_report(A_SSRC, 2000, about=TO_A, highest=300)
    rtp[MediaLeg.B].datagram_received(from_b, B_PEER)
    rtp[MediaLeg.A].datagram_received(from_a, A_PEER)
    assert sent[MediaLeg.A].sent == [(translate_rtcp(from_b, sent=HEARD_BY[MediaLeg.A], heard=None), A_PEER)]
    assert sent[MediaLeg.B].sent == [(translate_rtcp(from_a, sent=None, heard=HEARD_BY[MediaLeg.A]), B_PEER)]
    assert struct.unpack_from("!I", sent[MediaLeg.A].sent[0][0], 4) == (TO_A,)
    assert struct.unpack_from("!I", sent[MediaLeg.B].sent[0][0], 28) == (B_SSRC,)


def test_rtcp_follows_the_players_renumbering_before_the_relay_takes_it_over() -> None:
    # Within the player's guard after a prompt the relay does not renumber yet (``renumber`` is
    # unset); RTCP must name the streams as each party hears them all the same.
    rtp, rtcp, sent = call_legs(())
    for leg in MediaLeg:
        rtp[leg].rtcp_renumber = HEARD_BY[leg]
    from_a = sender_report(A_SSRC, 50_000, about=TO_A, highest=0x0001_0010)
    rtcp[MediaLeg.A].datagram_received(from_a, A_PEER)
    assert sent[MediaLeg.B].sent == [
        (translate_rtcp(from_a, sent=HEARD_BY[MediaLeg.B], heard=HEARD_BY[MediaLeg.A]), B_PEER)
    ]
    assert struct.unpack_from("!I", sent[MediaLeg.B].sent[0][0], 4) == (TO_B,)


def test_rtcp_to_a_party_hearing_a_prompt_is_dropped() -> None:
    # B hears callherald's notice, nothing of A: A's sender report names a stream B never hears.
    rtp, rtcp, sent = call_legs(())
    rtp[MediaLeg.B].rtcp_blocked = True
    rtcp[MediaLeg.A].datagram_received(sender_report(A_SSRC, 7, about=TO_A, highest=5), A_PEER)
    assert sent[MediaLeg.B].sent == []
    from_b = sender_report(B_SSRC, 7, about=TO_B, highest=5)
    rtcp[MediaLeg.B].datagram_received(from_b, B_PEER)  # A is not blocked: B's RTCP goes on
    assert sent[MediaLeg.A].sent == [(from_b, A_PEER)]
    rtp[MediaLeg.B].rtcp_blocked = False
    from_a = sender_report(A_SSRC, 8, about=TO_A, highest=6)
    rtcp[MediaLeg.A].datagram_received(from_a, A_PEER)
    assert sent[MediaLeg.B].sent == [(from_a, B_PEER)]


def _transfer_scene() -> tuple[LegProtocol, LegProtocol, SentTransport]:
    """Leg a latched to A_PEER (the party a transfer will replace); leg b's party sends to it."""
    leg_a, leg_b = LegProtocol(), LegProtocol()
    leg_a.other, leg_b.other = leg_b, leg_a
    towards_a = SentTransport()
    leg_a.connection_made(towards_a)
    leg_b.connection_made(SentTransport())
    leg_a.set_remote(A_PEER)
    leg_a.datagram_received(b"old party", A_PEER)
    assert leg_a.latched == A_PEER
    return leg_a, leg_b, towards_a


NEW_PARTY: Address = ("127.0.0.4", 34000)


def test_a_new_party_is_sent_to_at_once_and_the_departed_one_cannot_take_the_latch_back() -> None:
    leg_a, leg_b, towards_a = _transfer_scene()
    leg_a.set_remote(NEW_PARTY, new_party=True)
    leg_b.datagram_received(b"to the new party", B_PEER)
    leg_a.datagram_received(b"in flight from the old party", A_PEER)
    leg_b.datagram_received(b"still to the new party", B_PEER)
    leg_a.datagram_received(b"the new party", ("127.0.0.4", 34000))
    leg_a.datagram_received(b"the old party again", A_PEER)
    assert [addr for _, addr in towards_a.sent] == [NEW_PARTY, NEW_PARTY]
    assert leg_a.latched == NEW_PARTY
    assert leg_a.dropped == 2


def test_a_new_party_sending_from_the_departed_address_latches_after_a_second() -> None:
    leg_a, _, _ = _transfer_scene()
    leg_a.set_remote(NEW_PARTY, new_party=True)
    for _ in range(DEPARTED_PACKETS - 1):
        leg_a.datagram_received(b"from the old address", A_PEER)
    assert leg_a.latched is None
    leg_a.datagram_received(b"from the old address", A_PEER)
    assert leg_a.latched == A_PEER


def test_a_new_party_at_the_same_address_latches_at_once() -> None:
    leg_a, _, _ = _transfer_scene()
    leg_a.set_remote(A_PEER, new_party=True)
    leg_a.datagram_received(b"the new party", A_PEER)
    assert leg_a.latched == A_PEER
    assert leg_a.dropped == 0


def test_a_new_address_of_the_same_party_keeps_the_latch_until_the_new_source_is_heard() -> None:
    leg_a, leg_b, towards_a = _transfer_scene()
    leg_a.set_remote(NEW_PARTY)
    leg_b.datagram_received(b"to the latched source", B_PEER)
    leg_a.datagram_received(b"the moved stream", NEW_PARTY)
    leg_b.datagram_received(b"to the moved stream", B_PEER)
    assert [addr for _, addr in towards_a.sent] == [A_PEER, NEW_PARTY]


STRANGER: Address = ("127.0.0.66", 40000)


def test_a_strangers_stream_that_latched_first_gives_way_to_the_sdp_address() -> None:
    # RTP bleed: a stream left by a crashed run still reaches the port a new call got. The party
    # at the address its SDP gave takes the leg over, and the stranger is dropped from then on.
    leg_a, leg_b = LegProtocol(), LegProtocol()
    leg_a.other, leg_b.other = leg_b, leg_a
    towards_b = SentTransport()
    leg_a.connection_made(SentTransport())
    leg_b.connection_made(towards_b)
    leg_b.set_remote(B_PEER)
    leg_a.set_remote(A_PEER)
    leg_a.datagram_received(b"stranger", STRANGER)
    assert leg_a.latched == STRANGER
    leg_a.datagram_received(b"the party", A_PEER)
    leg_a.datagram_received(b"stranger again", STRANGER)
    leg_a.datagram_received(b"the party again", A_PEER)
    assert leg_a.latched == A_PEER
    assert [data for data, _ in towards_b.sent] == [b"stranger", b"the party", b"the party again"]
    assert leg_a.dropped == 1


def test_without_a_usable_sdp_address_the_first_source_keeps_the_latch() -> None:
    # Behind NAT the SDP address may not be one the party sends from (RFC 4961): the first
    # source heard is the party, and no other source takes the leg over.
    leg_a, leg_b = LegProtocol(), LegProtocol()
    leg_a.other, leg_b.other = leg_b, leg_a
    leg_a.connection_made(SentTransport())
    leg_b.connection_made(SentTransport())
    leg_a.set_remote(("192.168.1.20", 4000))
    leg_a.datagram_received(b"the party from its public address", A_PEER)
    leg_a.datagram_received(b"someone else", STRANGER)
    assert leg_a.latched == A_PEER
    assert leg_a.dropped == 1


def g711_packet(payload_type: int, payload: bytes, *, ssrc: int = A_SSRC, sequence: int = 7) -> bytes:
    return struct.pack("!BBHII", 0x80, payload_type, sequence, 1600, ssrc) + payload


SPEECH_ULAW = bytes(range(0, 256, 2)) + bytes(range(1, 64, 2))  # 160 assorted µ-law codes


def test_a_translated_leg_hears_its_own_law_and_the_call_hears_the_offers_law() -> None:
    # Leg b's party answered PCMA on 8 to an offer of PCMU on 0 only.
    a, b = LegProtocol(), LegProtocol()
    a.other, b.other = b, a
    to_a, to_b = SentTransport(), SentTransport()
    b.set_translator(
        LawTranslator(party_payload_type=8, party_codec="pcma", call_payload_type=0, call_codec="pcmu")
    )
    for leg, transport, peer in ((a, to_a, A_PEER), (b, to_b, B_PEER)):
        leg.connection_made(transport)  # after the translator: the wrapper is made now
        leg.set_remote(peer)
    tapped: list[bytes | float] = []
    b.tap(tapped, lambda: 0.0)

    a.datagram_received(g711_packet(0, SPEECH_ULAW), A_PEER)
    pcma = SPEECH_ULAW.translate(translation_table("pcmu", "pcma"))
    assert to_b.sent == [(g711_packet(8, pcma), B_PEER)]

    b.datagram_received(g711_packet(8, pcma, ssrc=B_SSRC), B_PEER)
    in_call_terms = g711_packet(0, pcma.translate(translation_table("pcma", "pcmu")), ssrc=B_SSRC)
    assert to_a.sent == [(in_call_terms, A_PEER)]
    assert tapped == [in_call_terms, 0.0]  # the recording hears the call's law

    event = g711_packet(101, b"\x01\x0a\x00\xa0")
    a.datagram_received(event, A_PEER)  # a key press (RFC 4733) is no audio
    assert to_b.sent[-1] == (event, B_PEER)


def test_packets_renumbered_towards_a_translated_leg_are_translated_too() -> None:
    a, b = LegProtocol(), LegProtocol()
    a.other, b.other = b, a
    to_b = SentTransport()
    b.connection_made(to_b)  # before the translator: the wrapper replaces the transport
    b.set_remote(B_PEER)
    b.renumber = HEARD_BY[MediaLeg.B]
    b.set_translator(
        LawTranslator(party_payload_type=8, party_codec="pcma", call_payload_type=0, call_codec="pcmu")
    )
    a.datagram_received(g711_packet(0, SPEECH_ULAW, sequence=0x0100), A_PEER)
    ((sent, _),) = to_b.sent
    assert sent[1] == 8
    assert struct.unpack("!HI", sent[2:8]) == (0x0000, 1440)  # renumbered: 0x100 + 0xFF00, 1600 - 160
    assert sent[8:12] == struct.pack("!I", TO_B)
    assert sent[12:] == SPEECH_ULAW.translate(translation_table("pcmu", "pcma"))

    b.set_translator(None)  # answered in the offer's law again
    a.datagram_received(g711_packet(0, SPEECH_ULAW, sequence=0x0101), A_PEER)
    assert to_b.sent[-1][0][1] == 0
    assert to_b.sent[-1][0][12:] == SPEECH_ULAW
    b.close()
    assert to_b.closed
    assert b.transport is None
    assert b.socket_transport is None
