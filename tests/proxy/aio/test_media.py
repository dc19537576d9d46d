"""The relay's legs (``LegProtocol``): tapping what a party sends, and closing; no sockets."""

from __future__ import annotations

import asyncio
import gc
import itertools

from proxy.aio.media import LegProtocol
from proxy.b2bua.settings import Address

A_PEER: Address = ("127.0.0.1", 40000)
B_PEER: Address = ("127.0.0.1", 40002)


class SentTransport(asyncio.DatagramTransport):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[bytes, object]] = []

    def sendto(self, data: bytes | bytearray | memoryview, addr: object = None) -> None:
        self.sent.append((bytes(data), addr))


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
