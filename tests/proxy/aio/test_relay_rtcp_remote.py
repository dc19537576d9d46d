"""Where the relay sends a party the other party's RTCP, on real sockets on 127.0.0.1: to the port
its SDP's ``a=rtcp`` names (RFC 3605 §2.1), else to its RTP port + 1 (RFC 3550 §11), else, when it
multiplexes RTCP on the RTP port (RFC 5761), to no RTCP port; and, whichever it was, to the source
of the party's own RTCP once that is heard (symmetric RTCP, RFC 4961)."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest
import uvloop

from proxy.aio.media import MediaRelay
from proxy.b2bua.effects import MediaLeg
from tests.e2e.harness import free_port_range

LOOPBACK = "127.0.0.1"
REPORT = b"\x81\xc8\x00\x06 the callee's sender report"


def bound(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOOPBACK, port))
    sock.setblocking(False)
    return sock


def drained(sock: socket.socket) -> list[bytes]:
    packets = []
    while True:
        try:
            packets.append(sock.recv(2048))
        except BlockingIOError:
            return packets


async def rtcp_heard_by_the_caller(
    *, named_rtcp: bool, rtcp_mux: bool = False, rtcp_host: str = LOOPBACK
) -> tuple[dict[str, list[bytes]], list[bytes]]:
    """The callee's RTCP to callherald's RTCP port: what the caller's RTP port, its RTP port + 1
    and the port its ``a=rtcp`` named heard of it; then what the caller's own RTCP source heard
    once the caller had sent callherald a report from it."""
    first, _ = await asyncio.to_thread(free_port_range, 4)  # callherald's: a RTP, RTCP; b RTP, RTCP
    caller_first, _ = await asyncio.to_thread(free_port_range, 4)
    caller = {"rtp": bound(caller_first), "rtp+1": bound(caller_first + 1), "a=rtcp": bound(caller_first + 3)}
    caller_own_rtcp, callee_rtp, callee_rtcp = bound(), bound(), bound()
    relay = MediaRelay(LOOPBACK, inactivity_timeout_s=30.0, on_inactive=lambda _ref: None)
    try:
        relay.open("call", first, first + 2)
        await asyncio.sleep(0.05)  # the sockets are attached to the loop
        relay.set_remote(
            "call",
            MediaLeg.A,
            (LOOPBACK, caller_first),
            rtcp=(rtcp_host, caller_first + 3) if named_rtcp else None,
            rtcp_mux=rtcp_mux,
        )
        relay.set_remote("call", MediaLeg.B, callee_rtp.getsockname())
        callee_rtcp.sendto(REPORT, (LOOPBACK, first + 3))
        await asyncio.sleep(0.1)
        heard = {name: drained(sock) for name, sock in caller.items()}

        caller_own_rtcp.sendto(b"\x81\xc9\x00\x01 the caller's receiver report", (LOOPBACK, first + 1))
        await asyncio.sleep(0.05)
        callee_rtcp.sendto(REPORT, (LOOPBACK, first + 3))
        await asyncio.sleep(0.1)
        latched = drained(caller_own_rtcp)
        assert [packet for sock in caller.values() for packet in drained(sock)] == []
        return heard, latched
    finally:
        relay.close_all()
        for sock in (*caller.values(), caller_own_rtcp, callee_rtp, callee_rtcp):
            sock.close()


@pytest.mark.parametrize(
    ("named_rtcp", "rtcp_mux", "heard_at"),
    [(True, False, "a=rtcp"), (False, False, "rtp+1"), (True, True, None), (False, True, None)],
    ids=["a=rtcp", "rtp-port-plus-one", "multiplexed-with-a=rtcp", "multiplexed"],
)
def test_rtcp_goes_to_the_port_the_partys_sdp_names_until_its_own_rtcp_latches_the_leg(
    named_rtcp: bool, rtcp_mux: bool, heard_at: str | None
) -> None:
    heard, latched = uvloop.run(rtcp_heard_by_the_caller(named_rtcp=named_rtcp, rtcp_mux=rtcp_mux))
    expected = {name: [REPORT] if name == heard_at else [] for name in ("rtp", "rtp+1", "a=rtcp")}
    assert heard == expected
    assert latched == [REPORT]


def test_an_rtcp_address_the_sockets_cannot_send_to_waits_for_the_partys_own_rtcp(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="callherald.media")
    heard, latched = uvloop.run(rtcp_heard_by_the_caller(named_rtcp=True, rtcp_host="::1"))
    assert heard == {"rtp": [], "rtp+1": [], "a=rtcp": []}
    assert latched == [REPORT]
    (warning,) = [record.getMessage() for record in caplog.records]
    assert warning.startswith("[call] leg a: the SDP RTCP address ::1 is not an IPv4 address")
