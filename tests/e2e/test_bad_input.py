"""Bad SIP input sent from raw UDP sockets to a real ``callherald serve``, then a normal SIPp call.

One callherald serves the whole module, configured with ``max_message_bytes: 2000`` and with
both sides allowed from 127.0.0.1 only, so that a socket bound to 127.0.0.2 is an unknown
source. Each case sends its datagrams to one listener and checks the exact answer (or that no
answer comes), that nothing was passed on to the other side, and that a normal call through
the same callherald still succeeds afterwards.
"""

from __future__ import annotations

import contextlib
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from proxy.sip import Response, parse_message
from tests.e2e.harness import CallheraldProcess, running_callherald, sipp_available
from tests.e2e.test_sipp_calls import Direction, assert_ok, place_call

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not sipp_available(), reason="SIPp (sip-tester) is not installed"),
]

LOOPBACK = "127.0.0.1"
UNKNOWN_HOST = "127.0.0.2"  # on the loopback network, outside the configured allowed networks
MAX_MESSAGE_BYTES = 2000
ANSWER_WAIT_S = 2.0
QUIET_S = 0.3  # loopback answers in milliseconds; this long without one means none is coming
UNKNOWN_SOURCE_REQUESTS = 5
AFTER_CALL_MS = 200
SDP = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 20000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CallheraldProcess]:
    with running_callherald(
        tmp_path_factory.mktemp("callherald"),
        rtp_ports=40,
        limits=f"  max_message_bytes: {MAX_MESSAGE_BYTES}",
        allowed_networks=f"{LOOPBACK}/32",  # so that 127.0.0.2 is an unknown source
    ) as running:
        yield running


# Raw UDP ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sent:
    """What a case sent, to match the answer against."""

    call_id: str
    branch: str
    cseq: int
    method: str


def request(
    method: str,
    local: tuple[str, int],
    *,
    version: str = "SIP/2.0",
    uri: str = "sip:4930123456@127.0.0.1",
    cseq: str | None = None,
    to_tag: str | None = None,
    max_forwards: str = "70",
    extra: str = "",
    body: bytes = b"",
    content_type: str = "application/sdp",
    call_id: str | None = None,
    branch: str | None = None,
) -> tuple[bytes, Sent]:
    """A request datagram from ``local`` (its Via), with a fresh Call-ID and branch unless given."""
    call_id = call_id or f"bad-{uuid.uuid4().hex}"
    branch = branch or f"z9hG4bK-{uuid.uuid4().hex[:12]}"
    cseq = cseq or f"1 {method}"
    to = "<sip:4930123456@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"{method} {uri} {version}",
        f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch={branch};rport",
        f"Max-Forwards: {max_forwards}",
        "From: <sip:prober@127.0.0.1>;tag=p1",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq}",
        "Contact: <sip:prober@127.0.0.1>",
    ]
    lines += [line for line in extra.split("\n") if line]
    if body:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {len(body)}")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    seq, cseq_method = cseq.split()
    return data, Sent(call_id=call_id, branch=branch, cseq=int(seq), method=cseq_method)


class Probe:
    """A UDP socket bound to ``host`` and ``port`` (0: any); closed on exit."""

    def __init__(self, host: str = LOOPBACK, port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))

    def __enter__(self) -> Probe:
        return self

    def __exit__(self, *_: object) -> None:
        self.sock.close()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()[:2]
        return str(host), int(port)

    def send(self, data: bytes, port: int) -> None:
        self.sock.sendto(data, (LOOPBACK, port))

    def receive(self, timeout_s: float) -> bytes | None:
        self.sock.settimeout(timeout_s)
        try:
            data, _ = self.sock.recvfrom(65536)
        except TimeoutError:
            return None
        return data

    def answer(self) -> Response:
        data = self.receive(ANSWER_WAIT_S)
        assert data is not None, f"no answer within {ANSWER_WAIT_S} s"
        message = parse_message(data)
        assert isinstance(message, Response), message
        return message


@contextlib.contextmanager
def far_sides_watched(proxy: CallheraldProcess) -> Iterator[list[Probe]]:
    """Sockets where callherald would pass calls on (carrier and PBX targets): should stay silent."""
    probes = [Probe(port=proxy.carrier_target_port)]
    try:
        probes.append(Probe(port=proxy.pbx_target_port))
        yield probes
        for probe in probes:
            leaked = probe.receive(0.05)
            assert leaked is None, f"passed on to port {probe.address[1]}: {leaked!r}"
    finally:
        for probe in probes:
            probe.sock.close()


def assert_answer(answer: Response, sent: Sent, status: int, reason: str) -> None:
    assert (answer.status, answer.reason) == (status, reason)
    assert (answer.call_id, answer.cseq.seq, answer.cseq.method) == (sent.call_id, sent.cseq, sent.method)
    assert answer.top_via.branch == sent.branch
    assert answer.from_.tag == "p1"
    assert answer.to.tag is not None


def normal_call_still_works(proxy: CallheraldProcess, side: str, workdir: Path) -> None:
    direction = Direction.OUTBOUND if side == "pbx" else Direction.INBOUND
    uac, uas = place_call(proxy, direction, workdir, pause_ms=AFTER_CALL_MS)
    assert_ok(proxy, uac, uas)


def listener(proxy: CallheraldProcess, side: str) -> int:
    return proxy.pbx_port if side == "pbx" else proxy.carrier_port


SIDES = ["pbx", "carrier"]


# Answered with an error -------------------------------------------------------------------------

Builder = Callable[[tuple[str, int]], tuple[bytes, Sent]]

ANSWERED: list[tuple[str, Builder, int, str]] = [
    (
        "cseq-method-mismatch",
        lambda local: request("OPTIONS", local, cseq="1 INVITE"),
        400,
        "Bad Request",
    ),
    (
        "repeated-max-forwards",
        lambda local: request("OPTIONS", local, extra="Max-Forwards: 69"),
        400,
        "Bad Request",
    ),
    (
        "unreadable-request-uri",
        lambda local: request("OPTIONS", local, uri="sip:"),
        400,
        "Bad Request",
    ),
    ("sip-3.0", lambda local: request("OPTIONS", local, version="SIP/3.0"), 505, "Version Not Supported"),
    ("unknown-method", lambda local: request("FOOBAR", local), 501, "Not Implemented"),
    (
        "bye-unknown-dialog",
        lambda local: request("BYE", local, to_tag="nosuchdialog"),
        481,
        "Call/Transaction Does Not Exist",
    ),
    (
        "bye-without-to-tag",
        lambda local: request("BYE", local),
        481,
        "Call/Transaction Does Not Exist",
    ),
    (
        "invite-max-forwards-0",
        lambda local: request("INVITE", local, max_forwards="0", body=SDP),
        483,
        "Too Many Hops",
    ),
]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize(
    ("build", "status", "reason"),
    [pytest.param(build, status, reason, id=name) for name, build, status, reason in ANSWERED],
)
def test_bad_request_is_answered_and_calls_still_work(
    proxy: CallheraldProcess, tmp_path: Path, side: str, build: Builder, status: int, reason: str
) -> None:
    with far_sides_watched(proxy), Probe() as probe:
        data, sent = build(probe.address)
        probe.send(data, listener(proxy, side))
        answer = probe.answer()
        assert_answer(answer, sent, status, reason)
        if status == 501:
            allowed = {m.strip() for m in (answer.headers.get("allow") or "").split(",")}
            assert {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS"} <= allowed
        if sent.method == "INVITE":
            # ACK the final response (RFC 3261 §17.1.1.3) and expect no retransmission after it.
            ack, _ = request(
                "ACK",
                probe.address,
                cseq="1 ACK",
                to_tag=answer.to.tag,
                call_id=sent.call_id,
                branch=sent.branch,
            )
            probe.send(ack, listener(proxy, side))
            late = probe.receive(QUIET_S)
            while late is not None and parse_message(late).call_id == sent.call_id:
                late = probe.receive(QUIET_S)  # retransmissions already in flight before the ACK
            assert late is None
        else:
            assert probe.receive(QUIET_S) is None  # one answer, no retransmissions
    normal_call_still_works(proxy, side, tmp_path)


# Too large --------------------------------------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize("side", SIDES)
def test_message_over_the_size_limit_is_refused_or_dropped(
    proxy: CallheraldProcess, tmp_path: Path, side: str
) -> None:
    with far_sides_watched(proxy), Probe() as probe:
        data, sent = request("OPTIONS", probe.address, body=b"x" * 2800, content_type="text/plain")
        assert 3000 <= len(data) < 3200
        probe.send(data, listener(proxy, side))
        raw = probe.receive(QUIET_S)
        if raw is not None:  # 513 or silence are both allowed; an answer to the request is not
            answer = parse_message(raw)
            assert isinstance(answer, Response)
            assert_answer(answer, sent, 513, "Message Too Large")
    normal_call_still_works(proxy, side, tmp_path)


# Not answered at all ----------------------------------------------------------------------------

GARBAGE = [
    pytest.param(b"hello world", id="text"),
    pytest.param(bytes(range(256)), id="binary"),
    pytest.param(b"INVITE sip:4930123456@127.0.0.1 SIP/2.0\r\nVia: x", id="truncated-head"),
    pytest.param(b"\x80\x00\x12\x34" + bytes(168), id="rtp-on-the-sip-port"),
]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("datagram", GARBAGE)
def test_garbage_gets_no_answer_and_calls_still_work(
    proxy: CallheraldProcess, tmp_path: Path, side: str, datagram: bytes
) -> None:
    with far_sides_watched(proxy), Probe() as probe:
        probe.send(datagram, listener(proxy, side))
        assert probe.receive(QUIET_S) is None
    normal_call_still_works(proxy, side, tmp_path)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("side", SIDES)
def test_unknown_source_gets_no_answer_at_all(proxy: CallheraldProcess, tmp_path: Path, side: str) -> None:
    with far_sides_watched(proxy), Probe(UNKNOWN_HOST) as probe:
        assert probe.address[0] == UNKNOWN_HOST
        for _ in range(UNKNOWN_SOURCE_REQUESTS):
            for method, body in (("INVITE", SDP), ("OPTIONS", b"")):
                data, _ = request(method, probe.address, body=body)
                probe.send(data, listener(proxy, side))
        assert probe.receive(QUIET_S) is None
    # The same requests from an allowed address are answered: the silence was the source check.
    with Probe() as allowed:
        data, sent = request("OPTIONS", allowed.address)
        allowed.send(data, listener(proxy, side))
        assert_answer(allowed.answer(), sent, 200, "OK")
    normal_call_still_works(proxy, side, tmp_path)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda local: request("OPTIONS", local, version="SIP/3.0"), id="sip-3.0"),
        pytest.param(lambda local: request("OPTIONS", local, cseq="1 INVITE"), id="cseq-method-mismatch"),
        pytest.param(
            lambda local: request("OPTIONS", local, body=b"x" * 2800, content_type="text/plain"),
            id="over-size-limit",
        ),
        pytest.param(lambda local: request("FOOBAR", local), id="unknown-method"),
        pytest.param(lambda local: request("BYE", local, to_tag="nosuchdialog"), id="bye-unknown-dialog"),
    ],
)
def test_unknown_source_gets_no_answer_even_for_bad_requests(
    proxy: CallheraldProcess, tmp_path: Path, side: str, build: Builder
) -> None:
    """Not even the transport's error answers (400, 505, 513) may tell a scanner someone is here."""
    with far_sides_watched(proxy), Probe(UNKNOWN_HOST) as probe:
        data, _ = build(probe.address)
        probe.send(data, listener(proxy, side))
        leaked = probe.receive(QUIET_S)
        assert leaked is None, leaked.split(b"\r\n", 1)[0]
    normal_call_still_works(proxy, side, tmp_path)
