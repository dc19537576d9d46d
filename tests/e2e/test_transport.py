"""SIP over UDP and TCP on 127.0.0.1: the asyncio transports against raw sockets.

Every scenario runs in its own event loop under ``asyncio.timeout`` and binds ephemeral ports.
Via stamping and response routing are also checked without sockets, as tables and properties.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.aio import (
    Address,
    TcpTransport,
    Transport,
    UdpTransport,
    response_address,
    stamp_via,
    start_tcp,
    start_udp,
)
from proxy.aio import transport as transport_module
from proxy.aio.transport import LOG_LINES_PER_S, AcceptSource
from proxy.sip import (
    DEFAULT_LIMITS,
    ParserLimits,
    Request,
    Response,
    StreamFramer,
    make_response,
    parse_message,
)

pytestmark = pytest.mark.e2e

SCENARIO_TIMEOUT_S = 3.0
QUIET_S = 0.05  # long enough on loopback for an answer that should not come
LOCALHOST = "127.0.0.1"
UDP_VIA = "SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-1"
TCP_VIA = "SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK-1"
SDP = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(SCENARIO_TIMEOUT_S):
            await scenario()

    asyncio.run(bounded())


def sip(
    method: str = "OPTIONS",
    *,
    uri: str = "sip:b2bua@127.0.0.1",
    version: str = "SIP/2.0",
    via: str = UDP_VIA,
    call_id: str = "call-1",
    cseq_method: str | None = None,
    extra: str = "",
    body: bytes = b"",
) -> bytes:
    """A request as bytes; ``extra`` holds header lines written with ``\\n``."""
    head = (
        f"{method} {uri} {version}\n"
        f"Via: {via}\n"
        "Max-Forwards: 70\n"
        "From: <sip:alice@127.0.0.1>;tag=a1\n"
        "To: <sip:b2bua@127.0.0.1>\n"
        f"Call-ID: {call_id}\n"
        f"CSeq: 1 {cseq_method or method}\n"
        f"{extra}"
        f"Content-Length: {len(body)}\n\n"
    )
    return head.replace("\n", "\r\n").encode() + body


@dataclass(frozen=True, slots=True)
class Delivery:
    message: Request | Response
    source: Address
    transport: Transport


class Inbox:
    """The ``on_message`` callback: records deliveries and can answer requests with 200."""

    def __init__(self, *, answer: bool = False, fail_on: str | None = None) -> None:
        self.deliveries: asyncio.Queue[Delivery] = asyncio.Queue()
        self._answer = answer
        self._fail_on = fail_on

    def __call__(self, message: Request | Response, source: Address, transport: Transport) -> None:
        if message.call_id == self._fail_on:
            raise RuntimeError("handler bug")
        self.deliveries.put_nowait(Delivery(message, source, transport))
        if self._answer and isinstance(message, Request):
            transport.send(make_response(message, 200, to_tag="b1"), source)

    async def next(self) -> Delivery:
        return await self.deliveries.get()


class RecordingHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def private_logger() -> tuple[logging.Logger, RecordingHandler]:
    logger = logging.getLogger(f"test.transport.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = RecordingHandler()
    logger.addHandler(handler)
    return logger, handler


# UDP ---------------------------------------------------------------------------------------------


class UdpPeer(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.datagrams: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.datagrams.put_nowait(data)

    @property
    def address(self) -> Address:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return host, port

    def send(self, data: bytes, address: Address) -> None:
        assert self.transport is not None
        self.transport.sendto(data, address)

    async def receive(self) -> Response:
        message = parse_message(await self.datagrams.get())
        assert isinstance(message, Response)
        return message


@contextlib.asynccontextmanager
async def udp_pair(
    inbox: Inbox,
    *,
    limits: ParserLimits = DEFAULT_LIMITS,
    logger: logging.Logger | None = None,
    accept_source: AcceptSource | None = None,
) -> AsyncIterator[tuple[UdpTransport, UdpPeer]]:
    """A UDP transport under test and a raw peer socket, both closed on exit."""
    server = await start_udp(LOCALHOST, 0, inbox, limits=limits, logger=logger, accept_source=accept_source)
    loop = asyncio.get_running_loop()
    peer_transport, peer = await loop.create_datagram_endpoint(UdpPeer, local_addr=(LOCALHOST, 0))
    try:
        yield server, peer
    finally:
        peer_transport.close()
        await server.close()


def test_udp_request_reaches_callback_and_answer_returns() -> None:
    async def scenario() -> None:
        inbox = Inbox(answer=True)
        async with udp_pair(inbox) as (server, peer):
            assert server.local_address[0] == LOCALHOST
            assert server.local_address[1] > 0
            peer.send(sip(), server.local_address)
            delivery = await inbox.next()
            assert delivery.source == peer.address
            assert delivery.transport is server
            assert isinstance(delivery.message, Request)
            assert (delivery.message.method, delivery.message.call_id) == ("OPTIONS", "call-1")
            answer = await peer.receive()
            assert (answer.status, answer.call_id, answer.to.tag) == (200, "call-1", "b1")
            assert (server.stats.received, server.stats.sent) == (1, 1)
            assert (server.name, server.reliable) == ("udp", False)

    run(scenario)


@pytest.mark.parametrize(
    ("datagram", "limits", "status", "reason"),
    [
        pytest.param(
            sip(extra="Max-Forwards: 69\n"), DEFAULT_LIMITS, 400, "Bad Request", id="repeated-max-forwards"
        ),
        pytest.param(
            sip(cseq_method="INVITE"), DEFAULT_LIMITS, 400, "Bad Request", id="cseq-method-mismatch"
        ),
        pytest.param(sip(uri="sip:"), DEFAULT_LIMITS, 400, "Bad Request", id="bad-request-uri"),
        pytest.param(sip(version="SIP/3.0"), DEFAULT_LIMITS, 505, "Version Not Supported", id="sip-3.0"),
        pytest.param(
            sip(uri="mailto:bob@example.com"), DEFAULT_LIMITS, 416, "Unsupported URI Scheme", id="mailto"
        ),
        pytest.param(
            sip(body=b"x" * 1500),
            ParserLimits(max_message_bytes=1024),
            513,
            "Message Too Large",
            id="oversize-datagram",
        ),
        pytest.param(
            sip(uri="sips:bob@127.0.0.1"),
            DEFAULT_LIMITS,
            416,
            "Unsupported URI Scheme",
            id="sips-without-tls",
        ),
        pytest.param(
            sip(extra="X-Pad: 1\n" * 200),
            ParserLimits(max_message_bytes=1024),
            513,
            "Message Too Large",
            id="many-small-headers-over-the-byte-limit",
        ),
        pytest.param(
            sip(body=b"x" * 200),
            ParserLimits(max_body_bytes=100),
            413,
            "Request Entity Too Large",
            id="body-too-large",
        ),
    ],
)
def test_udp_malformed_request_with_readable_headers_is_answered(
    datagram: bytes, limits: ParserLimits, status: int, reason: str
) -> None:
    async def scenario() -> None:
        inbox = Inbox()
        async with udp_pair(inbox, limits=limits) as (server, peer):
            peer.send(datagram, server.local_address)
            answer = await peer.receive()
            assert (answer.status, answer.reason) == (status, reason)
            assert (answer.call_id, answer.cseq.seq, answer.from_.tag) == ("call-1", 1, "a1")
            assert answer.to.tag is not None
            assert answer.top_via.branch == "z9hG4bK-1"
            assert answer.top_via.received is None  # sent-by is the source address and no rport
            assert inbox.deliveries.empty()
            stats = server.stats
            assert (stats.received, stats.error_responses_sent, stats.sent, stats.malformed_dropped) == (
                0,
                1,
                1,
                0,
            )

    run(scenario)


def test_udp_error_response_to_tag_is_stable_and_via_stamped() -> None:
    async def scenario() -> None:
        datagram = sip(version="SIP/3.0", via="SIP/2.0/UDP 192.0.2.7:5080;branch=z9hG4bK-9;rport")
        async with udp_pair(Inbox()) as (server, peer):
            peer.send(datagram, server.local_address)
            first = await peer.receive()
            peer.send(datagram, server.local_address)
            second = await peer.receive()
            assert first.to.tag == second.to.tag  # §8.2.7
            assert str(first.top_via) == (
                f"SIP/2.0/UDP 192.0.2.7:5080;branch=z9hG4bK-9;rport={peer.address[1]};received=127.0.0.1"
            )

    run(scenario)


@pytest.mark.parametrize(
    "datagram",
    [
        pytest.param(b"hello world", id="text"),
        pytest.param(bytes(range(256)), id="binary"),
        pytest.param(
            b"SIP/2.0 200 OK\r\nVia: " + UDP_VIA.encode() + b"\r\n\r\n", id="response-missing-headers"
        ),
        pytest.param(sip(via="garbage"), id="unreadable-via"),
        pytest.param(sip().replace(b"CSeq: 1 OPTIONS\r\n", b""), id="missing-cseq"),
        pytest.param(sip("ACK", version="SIP/3.0"), id="malformed-ack"),
        pytest.param(sip("ACK", extra="Max-Forwards: 1\n"), id="ack-with-partial"),
        pytest.param(b"OPTIONS sip:b2bua@127.0.0.1 SIP/2.0\r\nVia: x", id="unterminated"),
        pytest.param(b"OPTIONS  sip:b2bua@127.0.0.1 SIP/2.0\r\n\r\n", id="bad-request-line"),
    ],
)
def test_udp_garbage_is_dropped_and_next_message_works(datagram: bytes) -> None:
    async def scenario() -> None:
        logger, handler = private_logger()
        inbox = Inbox(answer=True)
        async with udp_pair(inbox, logger=logger) as (server, peer):
            peer.send(datagram, server.local_address)
            peer.send(sip(call_id="after"), server.local_address)
            answer = await peer.receive()  # the first datagram back answers the valid request
            assert (answer.status, answer.call_id) == (200, "after")
            assert (await inbox.next()).message.call_id == "after"
            stats = server.stats
            assert (stats.malformed_dropped, stats.error_responses_sent, stats.received) == (1, 0, 1)
            assert [record.levelno for record in handler.records] == [logging.WARNING]

    run(scenario)


@pytest.mark.parametrize(("keepalive", "counted"), [(b"\r\n\r\n", 1), (b"\r\n", 1), (b"", 0)])
def test_udp_crlf_keepalive_is_ignored(keepalive: bytes, counted: int) -> None:
    async def scenario() -> None:
        async with udp_pair(Inbox(answer=True)) as (server, peer):
            peer.send(keepalive, server.local_address)
            peer.send(sip(), server.local_address)
            answer = await peer.receive()
            assert answer.status == 200
            stats = server.stats
            assert (stats.keepalives, stats.malformed_dropped, stats.received) == (counted, 0, 1)

    run(scenario)


def test_udp_callback_failure_is_logged_and_transport_keeps_running() -> None:
    async def scenario() -> None:
        logger, handler = private_logger()
        async with udp_pair(Inbox(answer=True, fail_on="boom"), logger=logger) as (server, peer):
            peer.send(sip(call_id="boom"), server.local_address)
            peer.send(sip(call_id="fine"), server.local_address)
            answer = await peer.receive()
            assert answer.call_id == "fine"
            assert (server.stats.received, server.stats.callback_errors) == (2, 1)
            [record] = handler.records
            assert record.levelno == logging.ERROR
            assert record.exc_info is not None
            assert isinstance(record.exc_info[1], RuntimeError)

    run(scenario)


def test_udp_flood_of_garbage_is_rate_limited_in_the_log() -> None:
    flood = 200

    async def scenario() -> None:
        logger, handler = private_logger()
        async with udp_pair(Inbox(answer=True), logger=logger) as (server, peer):
            for index in range(flood):
                peer.send(b"junk %d" % index, server.local_address)
            peer.send(sip(), server.local_address)
            assert (await peer.receive()).status == 200
            assert server.stats.malformed_dropped == flood
            # One window holds LOG_LINES_PER_S lines; a second window may add its lines and a summary.
            assert LOG_LINES_PER_S <= len(handler.records) <= 2 * LOG_LINES_PER_S + 1

    run(scenario)


@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG])
def test_udp_debug_lines_never_hide_a_warning(level: int) -> None:
    # Each SIP/3.0 request is answered 505 with a DEBUG line; the junk after them is a WARNING.
    async def scenario() -> None:
        logger, handler = private_logger()
        logger.setLevel(level)
        async with udp_pair(Inbox(answer=True), logger=logger) as (server, peer):
            for index in range(3 * LOG_LINES_PER_S):
                peer.send(sip(version="SIP/3.0", call_id=f"old-{index}"), server.local_address)
            peer.send(b"junk", server.local_address)
            peer.send(sip(call_id="after"), server.local_address)
            await eventually(lambda: server.stats.received == 1)
            warnings = [
                record.getMessage() for record in handler.records if record.levelno == logging.WARNING
            ]
            assert any(text.startswith("udp: dropped malformed message") for text in warnings)
            if level == logging.INFO:
                # Lines below the level were never going to be printed: nothing is suppressed.
                assert handler.records == [record for record in handler.records if record.levelno >= level]
                assert len(warnings) == 1

    run(scenario)


def test_udp_drops_from_unknown_sources_are_summarised_at_info(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport_module, "UNKNOWN_SOURCE_REPORT_S", 0.2)

    def summaries(handler: RecordingHandler) -> list[str]:
        return [record.getMessage() for record in handler.records if record.levelno == logging.INFO]

    async def scenario() -> None:
        logger, handler = private_logger()
        logger.setLevel(logging.INFO)
        refuse_all: AcceptSource = lambda host: False  # noqa: E731
        async with udp_pair(Inbox(answer=True), logger=logger, accept_source=refuse_all) as (server, peer):
            peer.send(sip(), server.local_address)
            await eventually(lambda: server.stats.unknown_source_dropped == 1)
            first = "udp: dropped 1 datagram(s) from addresses outside the allowed networks"
            assert summaries(handler) == [f"{first} (latest from 127.0.0.1; 1 since start)"]
            for _ in range(4):
                peer.send(sip(), server.local_address)
            await eventually(lambda: server.stats.unknown_source_dropped == 5)
            assert len(summaries(handler)) == 1  # the rest wait for the next report
            await eventually(lambda: len(summaries(handler)) == 2)
            assert summaries(handler)[1] == (
                "udp: dropped 4 datagram(s) from addresses outside the allowed networks"
                " (latest from 127.0.0.1; 5 since start)"
            )
            await asyncio.sleep(0.5)
            assert len(summaries(handler)) == 2  # quiet: no more lines
            assert peer.datagrams.empty()

    run(scenario)


@pytest.mark.parametrize(
    ("via", "expected", "answer_port"),
    [
        pytest.param(
            "SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK-1;rport",
            "SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK-1;rport={port};received=127.0.0.1",
            None,
            id="rport-other-host",
        ),
        pytest.param(
            "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1;rport",
            "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1;rport={port};received=127.0.0.1",
            None,
            id="rport-same-host",
        ),
        pytest.param(
            "SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK-1",
            "SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK-1;received=127.0.0.1",
            5060,
            id="other-host",
        ),
        pytest.param(
            "SIP/2.0/UDP pbx.example.com;branch=z9hG4bK-1",
            "SIP/2.0/UDP pbx.example.com;branch=z9hG4bK-1;received=127.0.0.1",
            5060,
            id="domain-name",
        ),
        pytest.param(
            "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1",
            "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1",
            5060,
            id="same-host-unchanged",
        ),
    ],
)
def test_udp_delivery_stamps_received_and_rport(via: str, expected: str, answer_port: int | None) -> None:
    """``answer_port`` None: the response goes back to the source port (RFC 3581)."""

    async def scenario() -> None:
        inbox = Inbox()
        async with udp_pair(inbox) as (server, peer):
            peer.send(sip(via=via), server.local_address)
            delivery = await inbox.next()
            assert isinstance(delivery.message, Request)
            assert delivery.message.headers.fields("via") == [expected.format(port=peer.address[1])]
            port = peer.address[1] if answer_port is None else answer_port
            assert response_address(delivery.message, delivery.source) == (LOCALHOST, port)

    run(scenario)


def test_udp_send_to_peer_and_refusal_of_names() -> None:
    async def scenario() -> None:
        async with udp_pair(Inbox()) as (server, peer):
            data = sip(call_id="outbound")
            server.send(data, peer.address)
            assert await peer.datagrams.get() == data
            server.send(data, ("localhost", peer.address[1]))
            assert (server.stats.sent, server.stats.send_errors) == (1, 1)
        server.send(data, peer.address)
        assert server.stats.send_errors == 2

    run(scenario)


# Via stamping and response routing without sockets -----------------------------------------------


def request_with(*via_fields: str) -> Request:
    message = parse_message(
        sip(via=via_fields[0], extra="".join(f"Via: {field}\n" for field in via_fields[1:]))
    )
    assert isinstance(message, Request)
    return message


@pytest.mark.parametrize(
    ("vias", "source", "expected"),
    [
        pytest.param(
            ["SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK-a;rport, SIP/2.0/UDP 10.0.0.8;branch=z9hG4bK-b"],
            ("192.0.2.1", 4000),
            [
                "SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK-a;rport=4000;received=192.0.2.1, "
                "SIP/2.0/UDP 10.0.0.8;branch=z9hG4bK-b"
            ],
            id="combined-field",
        ),
        pytest.param(
            ["SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK-a", "SIP/2.0/UDP 10.0.0.8;branch=z9hG4bK-b;rport"],
            ("192.0.2.1", 4000),
            [
                "SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK-a;received=192.0.2.1",
                "SIP/2.0/UDP 10.0.0.8;branch=z9hG4bK-b;rport",
            ],
            id="second-field-untouched",
        ),
        pytest.param(
            ["SIP/2.0/UDP [2001:db8::1]:5070;branch=z9hG4bK-a;rport"],
            ("2001:db8::1", 5071),
            ["SIP/2.0/UDP [2001:db8::1]:5070;branch=z9hG4bK-a;rport=5071;received=2001:db8::1"],
            id="ipv6",
        ),
        pytest.param(
            ["SIP/2.0/UDP [2001:db8::1]:5070;branch=z9hG4bK-a"],
            ("2001:db8:0:0::1", 5071),
            ["SIP/2.0/UDP [2001:db8::1]:5070;branch=z9hG4bK-a"],
            id="ipv6-same-address-other-spelling",
        ),
        pytest.param(
            ["SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK-a;rport=1234;received=10.1.1.1"],
            ("10.0.0.9", 4000),
            ["SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK-a;rport=1234;received=10.1.1.1"],
            id="rport-already-filled",
        ),
    ],
)
def test_stamp_via_rewrites_only_the_top_value(vias: list[str], source: Address, expected: list[str]) -> None:
    request = request_with(*vias)
    names = [name for name, _ in request.headers]
    stamp_via(request, source)
    assert request.headers.fields("via") == expected
    assert [name for name, _ in request.headers] == names


@pytest.mark.parametrize(
    ("via", "source", "expected"),
    [
        pytest.param(
            "SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bK-a",
            ("10.0.0.9", 40000),
            ("10.0.0.9", 5070),
            id="sent-by",
        ),
        pytest.param(
            "SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK-a",
            ("10.0.0.9", 40000),
            ("10.0.0.9", 5060),
            id="default-port",
        ),
        pytest.param(
            "SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bK-a;received=192.0.2.1",
            ("192.0.2.1", 40000),
            ("192.0.2.1", 5070),
            id="received",
        ),
        pytest.param(
            "SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bK-a;rport=40000;received=192.0.2.1",
            ("192.0.2.1", 40000),
            ("192.0.2.1", 40000),
            id="rport-filled",
        ),
        pytest.param(
            "SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bK-a;rport",
            ("192.0.2.1", 40000),
            ("192.0.2.1", 40000),
            id="rport-not-yet-stamped",
        ),
        pytest.param(
            "SIP/2.0/UDP pbx.example.com:5070;branch=z9hG4bK-a",
            ("192.0.2.1", 40000),
            ("192.0.2.1", 5070),
            id="domain-not-yet-stamped",
        ),
        pytest.param(
            "SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bK-a;maddr=239.1.1.1;received=192.0.2.1",
            ("192.0.2.1", 40000),
            ("239.1.1.1", 5070),
            id="maddr",
        ),
        pytest.param(
            "SIP/2.0/UDP [2001:db8::1]:5070;branch=z9hG4bK-a",
            ("2001:db8::1", 9),
            ("2001:db8::1", 5070),
            id="ipv6",
        ),
    ],
)
def test_response_address_follows_18_2_2(via: str, source: Address, expected: Address) -> None:
    assert response_address(request_with(via), source) == expected


@given(
    sent_by=st.sampled_from(
        ["10.0.0.9", "10.0.0.9:5070", "pbx.example.com", "[2001:db8::9]:5062", "192.0.2.1"]
    ),
    rport=st.booleans(),
    source_ip=st.sampled_from(["192.0.2.1", "10.0.0.9", "2001:db8::9"]),
    source_port=st.integers(min_value=1, max_value=65535),
)
def test_stamping_is_idempotent_and_keeps_the_response_address(
    sent_by: str, rport: bool, source_ip: str, source_port: int
) -> None:
    via = f"SIP/2.0/UDP {sent_by};branch=z9hG4bK-p" + (";rport" if rport else "")
    request = request_with(via)
    before = response_address(request, (source_ip, source_port))
    stamp_via(request, (source_ip, source_port))
    once = request.headers.fields("via")
    stamp_via(request, (source_ip, source_port))
    assert request.headers.fields("via") == once
    assert response_address(request, (source_ip, source_port)) == before
    if rport:
        assert before == (source_ip, source_port)


# TCP ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class TcpClient:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    framer: StreamFramer

    @property
    def address(self) -> Address:
        host, port = self.writer.get_extra_info("sockname")[:2]
        return host, port

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def receive(self) -> Response:
        while True:
            data = await self.reader.read(65536)
            assert data, "connection closed before a response arrived"
            frames = self.framer.feed(data)
            if frames:
                assert len(frames) == 1
                message = parse_message(frames[0])
                assert isinstance(message, Response)
                return message

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def tcp_client(address: Address) -> TcpClient:
    reader, writer = await asyncio.open_connection(*address)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return TcpClient(reader, writer, StreamFramer())


async def eventually(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.01)


def tcp_scenario(
    body: Callable[[TcpTransport, TcpClient, Inbox], Coroutine[Any, Any, None]],
    *,
    answer: bool = True,
    limits: ParserLimits = DEFAULT_LIMITS,
) -> None:
    async def scenario() -> None:
        inbox = Inbox(answer=answer)
        server = await start_tcp(LOCALHOST, 0, inbox, limits=limits)
        client = await tcp_client(server.local_address)
        try:
            await body(server, client, inbox)
        finally:
            await server.close()
            client.writer.close()

    run(scenario)


def test_tcp_two_messages_in_one_write() -> None:
    async def body(server: TcpTransport, client: TcpClient, inbox: Inbox) -> None:
        await client.write(sip(via=TCP_VIA, call_id="one") + sip(via=TCP_VIA, call_id="two"))
        first, second = await inbox.next(), await inbox.next()
        assert (first.message.call_id, second.message.call_id) == ("one", "two")
        assert first.source == second.source == client.address
        assert first.transport is server
        assert (server.name, server.reliable) == ("tcp", True)

    tcp_scenario(body, answer=False)


def test_tcp_message_split_byte_by_byte() -> None:
    data = sip("INVITE", via=TCP_VIA, extra="Content-Type: application/sdp\n", body=SDP)

    async def body(server: TcpTransport, client: TcpClient, inbox: Inbox) -> None:
        for index in range(len(data)):
            await client.write(data[index : index + 1])
        delivery = await inbox.next()
        assert bytes(delivery.message) == bytes(parse_message(data))
        assert server.stats.received == 1

    tcp_scenario(body, answer=False)


def test_tcp_message_with_body() -> None:
    async def body(server: TcpTransport, client: TcpClient, inbox: Inbox) -> None:
        await client.write(sip("INVITE", via=TCP_VIA, extra="Content-Type: application/sdp\n", body=SDP))
        delivery = await inbox.next()
        assert isinstance(delivery.message, Request)
        assert (delivery.message.body, delivery.message.content_type) == (SDP, "application/sdp")

    tcp_scenario(body, answer=False)


def test_tcp_response_goes_over_the_same_connection() -> None:
    async def body(server: TcpTransport, client: TcpClient, inbox: Inbox) -> None:
        await client.write(sip(via=TCP_VIA))
        answer = await client.receive()
        assert (answer.status, answer.call_id) == (200, "call-1")
        assert server.connected_addresses == (client.address,)
        assert (server.stats.received, server.stats.sent) == (1, 1)

    tcp_scenario(body)


def test_tcp_request_via_is_stamped() -> None:
    async def body(server: TcpTransport, client: TcpClient, inbox: Inbox) -> None:
        await client.write(sip(via="SIP/2.0/TCP 10.0.0.9:5060;branch=z9hG4bK-1;rport"))
        delivery = await inbox.next()
        assert delivery.message.headers.fields("via") == [
            f"SIP/2.0/TCP 10.0.0.9:5060;branch=z9hG4bK-1;rport={client.address[1]};received=127.0.0.1"
        ]

    tcp_scenario(body, answer=False)


def test_tcp_ping_is_answered_with_one_crlf() -> None:
    async def body(server: TcpTransport, client: TcpClient, inbox: Inbox) -> None:
        await client.write(b"\r\n\r\n")
        assert await client.reader.readexactly(2) == b"\r\n"
        await client.write(sip(via=TCP_VIA))
        assert (await client.receive()).status == 200
        assert (server.stats.keepalives, server.stats.sent) == (1, 1)

    tcp_scenario(body)


def test_tcp_malformed_framed_request_is_answered_and_connection_kept() -> None:
    async def body(server: TcpTransport, client: TcpClient, inbox: Inbox) -> None:
        await client.write(sip(via=TCP_VIA, version="SIP/3.0") + b"junk\r\nContent-Length: 0\r\n\r\n")
        answer = await client.receive()
        assert (answer.status, answer.call_id) == (505, "call-1")
        await client.write(sip(via=TCP_VIA, call_id="next"))
        assert (await client.receive()).call_id == "next"
        assert (server.stats.error_responses_sent, server.stats.malformed_dropped) == (1, 1)

    tcp_scenario(body)


@pytest.mark.parametrize(
    ("content_length", "status"),
    [pytest.param("abc", 400, id="not-a-number"), pytest.param("99999999", 413, id="over-body-limit")],
)
def test_tcp_bad_content_length_is_answered_then_closed(content_length: str, status: int) -> None:
    bad = sip(via=TCP_VIA, call_id="bad").replace(
        b"Content-Length: 0", f"Content-Length: {content_length}".encode()
    )

    async def body(server: TcpTransport, client: TcpClient, inbox: Inbox) -> None:
        # A good message and a ping first, so the answer must come from the right place in the stream.
        await client.write(sip(via=TCP_VIA, call_id="good") + b"\r\n\r\n")
        assert (await inbox.next()).message.call_id == "good"
        assert await client.reader.readexactly(2) == b"\r\n"
        await client.write(bad)
        answer = await client.receive()
        assert (answer.status, answer.call_id) == (status, "bad")
        assert await client.reader.read() == b""
        await eventually(lambda: not server.connected_addresses)
        assert inbox.deliveries.empty()

    tcp_scenario(body, answer=False)


def test_tcp_request_without_content_length_is_answered_400_then_closed() -> None:
    # §18.3: on a stream the body's end is known only from Content-Length; the SDP must not be
    # read as the next message.
    invite = sip(
        "INVITE", via=TCP_VIA, call_id="no-length", extra="Content-Type: application/sdp\n", body=SDP
    )
    invite = invite.replace(f"Content-Length: {len(SDP)}\r\n".encode(), b"")

    async def body(server: TcpTransport, client: TcpClient, inbox: Inbox) -> None:
        await client.write(invite)
        answer = await client.receive()
        assert (answer.status, answer.call_id) == (400, "no-length")
        assert await client.reader.read() == b""
        await eventually(lambda: not server.connected_addresses)
        assert inbox.deliveries.empty()
        assert (server.stats.received, server.stats.error_responses_sent) == (0, 1)

    tcp_scenario(body, answer=False)


def test_tcp_connection_from_an_unknown_source_is_closed_at_once() -> None:
    async def scenario() -> None:
        logger, handler = private_logger()
        logger.setLevel(logging.INFO)
        inbox = Inbox(answer=True)
        only_second_loopback: AcceptSource = lambda host: host == "127.0.0.2"  # noqa: E731
        server = await start_tcp(LOCALHOST, 0, inbox, logger=logger, accept_source=only_second_loopback)
        try:
            reader, writer = await asyncio.open_connection(*server.local_address)
            async with asyncio.timeout(1.0):  # long before the idle timeout
                assert await reader.read() == b""
            writer.close()
            assert server.stats.unknown_source_dropped == 1
            assert server.connected_addresses == ()
            [record] = handler.records
            assert record.getMessage().startswith("tcp: dropped 1 connection(s) or message(s) from addresses")
            reader, writer = await asyncio.open_connection(*server.local_address, local_addr=("127.0.0.2", 0))
            client = TcpClient(reader, writer, StreamFramer())
            await client.write(sip(via=TCP_VIA))
            assert (await client.receive()).status == 200
            await client.close()
        finally:
            await server.close()

    run(scenario)


def test_tcp_oversized_header_section_closes_without_answer() -> None:
    async def body(server: TcpTransport, client: TcpClient, inbox: Inbox) -> None:
        await client.write(b"OPTIONS sip:b2bua@127.0.0.1 SIP/2.0\r\n" + b"X-Pad: 0123456789\r\n" * 40)
        assert await client.reader.read() == b""
        assert server.stats.malformed_dropped == 1

    tcp_scenario(body, limits=ParserLimits(max_message_bytes=512))


def test_tcp_send_without_connection_opens_one_and_reuses_it() -> None:
    async def scenario() -> None:
        accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

        async def on_accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.put_nowait((reader, writer))

        peer_server = await asyncio.start_server(on_accept, LOCALHOST, 0)
        peer_address: Address = peer_server.sockets[0].getsockname()[:2]
        inbox = Inbox()
        server = await start_tcp(LOCALHOST, 0, inbox)
        try:
            request = parse_message(sip(via=TCP_VIA, call_id="out-1"))
            assert isinstance(request, Request)
            server.send(request, peer_address)
            server.send(sip(via=TCP_VIA, call_id="out-2"), peer_address)
            reader, writer = await accepted.get()
            framer = StreamFramer()
            frames: list[bytes] = []
            while len(frames) < 2:
                data = await reader.read(65536)
                assert data
                frames += framer.feed(data)
            assert [parse_message(frame).call_id for frame in frames] == ["out-1", "out-2"]
            writer.write(bytes(make_response(request, 180)))
            delivery = await inbox.next()
            assert isinstance(delivery.message, Response)
            assert (delivery.message.status, delivery.source) == (180, peer_address)
            server.send(sip(via=TCP_VIA, call_id="out-3"), peer_address)
            frames = []
            while not frames:
                data = await reader.read(65536)
                assert data
                frames = framer.feed(data)
            assert parse_message(frames[0]).call_id == "out-3"
            assert accepted.empty()
            assert server.connected_addresses == (peer_address,)
            assert server.stats.sent == 3
            writer.close()
        finally:
            await server.close()
            peer_server.close()
            await peer_server.wait_closed()

    run(scenario)


def test_tcp_connect_failure_counts_dropped_messages() -> None:
    async def scenario() -> None:
        with socket.socket() as probe:
            probe.bind((LOCALHOST, 0))
            closed_address: Address = probe.getsockname()[:2]
        server = await start_tcp(LOCALHOST, 0, Inbox())
        try:
            server.send(sip(via=TCP_VIA), closed_address)
            server.send(sip(via=TCP_VIA), closed_address)
            await eventually(lambda: server.stats.send_errors == 2)
            assert server.connected_addresses == ()
        finally:
            await server.close()

    run(scenario)


def test_tcp_idle_connection_is_closed() -> None:
    async def scenario() -> None:
        server = await start_tcp(LOCALHOST, 0, Inbox(), idle_timeout_s=0.2)
        client = await tcp_client(server.local_address)
        try:
            await client.write(b"\r\n\r\n")
            assert await client.reader.readexactly(2) == b"\r\n"
            async with asyncio.timeout(1.0):
                assert await client.reader.read() == b""
            await eventually(lambda: not server.connected_addresses)
        finally:
            await server.close()
            client.writer.close()

    run(scenario)


def test_tcp_close_ends_connections_and_tasks() -> None:
    async def scenario() -> None:
        server = await start_tcp(LOCALHOST, 0, Inbox(answer=True))
        client = await tcp_client(server.local_address)
        await client.write(sip(via=TCP_VIA))
        assert (await client.receive()).status == 200
        await server.close()
        assert await client.reader.read() == b""
        assert asyncio.all_tasks() == {asyncio.current_task()}
        assert server.connected_addresses == ()
        server.send(sip(via=TCP_VIA), client.address)
        assert server.stats.send_errors == 1
        client.writer.close()

    run(scenario)


def test_transports_satisfy_the_protocol() -> None:
    async def scenario() -> None:
        udp: UdpTransport = await start_udp(LOCALHOST, 0, Inbox())
        tcp: TcpTransport = await start_tcp(LOCALHOST, 0, Inbox())
        transports: list[Transport] = [udp, tcp]
        assert [(t.name, t.reliable) for t in transports] == [("udp", False), ("tcp", True)]
        for transport in transports:
            await transport.close()

    run(scenario)


def test_no_answer_leaves_the_socket_quiet() -> None:
    async def scenario() -> None:
        async with udp_pair(Inbox()) as (server, peer):
            peer.send(b"garbage", server.local_address)
            await asyncio.sleep(QUIET_S)
            assert peer.datagrams.empty()
            assert server.stats.malformed_dropped == 1

    run(scenario)
