"""Torture tables for the SIP parser, in the spirit of RFC 4475 (our own cases, none copied).

Each valid case is parsed whole, re-serialised and re-parsed, and fed to the stream framer whole
and byte by byte. Each invalid case must raise SipError with the right status hint.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.sip import (
    Request,
    Response,
    SipError,
    SipUri,
    StreamFramer,
    TelUri,
    parse_message,
)
from proxy.sip.parser import ParserLimits, _respondable
from proxy.sip.uri import escape_user, parse_uri

SDP = (
    b"v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
)
MULTIPART = b"--b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b1--\r\n\r\n\r\n\r\n"


def crlf(text: str) -> bytes:
    """Test messages are written with \\n; the wire uses CRLF."""
    return text.replace("\n", "\r\n").encode("utf-8")


@dataclass(frozen=True)
class Valid:
    name: str
    data: bytes
    expect: dict[str, object] = field(default_factory=dict)


MINIMAL = crlf(
    "INVITE sip:bob@biloxi.example.com SIP/2.0\n"
    "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\n"
    "Max-Forwards: 70\n"
    "To: Bob <sip:bob@biloxi.example.com>\n"
    "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\n"
    "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\n"
    "CSeq: 314159 INVITE\n"
    "Contact: <sip:alice@pc33.atlanta.example.com>\n"
    "Content-Length: 0\n\n"
)

VALID_CASES = [
    Valid(
        "minimal invite",
        MINIMAL,
        {
            "method": "INVITE",
            "call_id": "a84b4c76e66710@pc33.atlanta.example.com",
            "from_tag": "1928301774",
            "to_tag": None,
            "cseq": (314159, "INVITE"),
            "branch": "z9hG4bK776asdhds",
            "max_forwards": 70,
        },
    ),
    Valid(
        "compact names, folding, odd spacing and case",
        crlf(
            "OPTIONS sip:carol@chicago.example.com SIP/2.0\n"
            "v:  SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw\n"
            "TO :\n sip:carol@chicago.example.com\n"
            'from:\t"Joe" <sip:joe@example.com>;tag=88\n'
            "i:compact-1\n"
            "cSeQ:  8\n   OPTIONS\n"
            "MAX-FORWARDS: 9\n"
            "X-Folded: first\n\tsecond\n  third\n"
            "l: 0\n\n"
        ),
        {
            "method": "OPTIONS",
            "call_id": "compact-1",
            "from_tag": "88",
            "cseq": (8, "OPTIONS"),
            "max_forwards": 9,
            "header:X-Folded": "first second third",
            "to_uri": "sip:carol@chicago.example.com",
        },
    ),
    Valid(
        "escaped user part and quoted display name with escapes",
        crlf(
            "INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0\n"
            "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKesc\n"
            "To: sip:sips%3Auser%40example.com@example.net\n"
            'From: "Ali\\"ce \\\\ B" <sip:alice@example.com>;tag=x\n'
            "Call-ID: esc@192.0.2.1\n"
            "CSeq: 1 INVITE\n"
            "Content-Length: 0\n\n"
        ),
        {
            "ruri_user": "sips%3Auser%40example.com",
            "ruri_user_unescaped": "sips:user@example.com",
            "from_display": 'Ali"ce \\ B',
        },
    ),
    Valid(
        "IPv6 everywhere",
        crlf(
            "REGISTER sip:[2001:db8::10]:5070 SIP/2.0\n"
            "Via: SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKv6;received=2001:db8::9:255;rport=6050\n"
            "To: <sip:user@[2001:db8::10]>\n"
            "From: <sip:user@[2001:db8::10]>;tag=v6\n"
            "Call-ID: v6@[2001:db8::9:1]\n"
            "CSeq: 2 REGISTER\n"
            "Contact: <sip:user@[2001:db8::9:1]:6050;transport=udp>;expires=600\n"
            "Content-Length: 0\n\n"
        ),
        {
            "ruri_host": "[2001:db8::10]",
            "ruri_port": 5070,
            "via_sent_by": ("2001:db8::9:1", 6050),
            "via_rport": 6050,
            "contact_count": 1,
        },
    ),
    Valid(
        "comma lists and repeated list headers",
        crlf(
            "BYE sip:bob@192.0.2.4 SIP/2.0\n"
            "Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bKa, SIP/2.0/TCP p2.example.com:5080;branch=z9hG4bKb\n"
            "Via: SIP/2.0/UDP ua.example.com;branch=z9hG4bKc\n"
            "Route: <sip:p1.example.com;lr>,<sip:p2.example.com;lr>\n"
            "Route: <sip:p3.example.com;lr>\n"
            'Record-Route: "Proxy, One" <sip:p1.example.com;lr>\n'
            "To: <sip:bob@example.com>;tag=b\n"
            "From: <sip:alice@example.com>;tag=a\n"
            "Call-ID: lists\n"
            "CSeq: 2 BYE\n"
            "Content-Length: 0\n\n"
        ),
        {"via_count": 3, "route_count": 3, "record_route_count": 1, "branch": "z9hG4bKa", "to_tag": "b"},
    ),
    Valid(
        "tel URIs",
        crlf(
            "INVITE tel:+1-201-555-0123 SIP/2.0\n"
            "Via: SIP/2.0/UDP gw.example.com;branch=z9hG4bKtel\n"
            "To: <tel:+1-201-555-0123>\n"
            "From: <tel:7042;phone-context=example.com>;tag=t\n"
            "Call-ID: tel-1\n"
            "CSeq: 1 INVITE\n"
            "Content-Length: 0\n\n"
        ),
        {"ruri_tel_digits": "+12015550123", "from_tel": "7042"},
    ),
    Valid(
        "sips URI and URI headers in Contact",
        crlf(
            "MESSAGE sips:bob@secure.example.com SIP/2.0\n"
            "Via: SIP/2.0/TLS ua.example.com;branch=z9hG4bKs\n"
            "To: <sips:bob@secure.example.com>\n"
            "From: <sips:alice@secure.example.com>;tag=s\n"
            "Call-ID: s\n"
            "CSeq: 5 MESSAGE\n"
            "Contact: <sip:alice@ua.example.com?Subject=hi&Priority=urgent>\n"
            "Content-Type: text/plain\n"
            "Content-Length: 5\n\nhello"
        ),
        {
            "ruri_scheme": "sips",
            "body": b"hello",
            "contact_headers": "Subject=hi&Priority=urgent",
            "content_type": "text/plain",
        },
    ),
    Valid(
        "unknown method",
        crlf(
            "NEWMETHOD sip:user@example.com SIP/2.0\n"
            "Via: SIP/2.0/UDP h;branch=z9hG4bKnm\n"
            "To: <sip:user@example.com>\n"
            "From: <sip:a@example.com>;tag=1\n"
            "Call-ID: nm\n"
            "CSeq: 9 NEWMETHOD\n"
            "Content-Length: 0\n\n"
        ),
        {"method": "NEWMETHOD"},
    ),
    Valid(
        "status 699 with an unusual UTF-8 reason phrase",
        crlf(
            "SIP/2.0 699 Ça ne marche pas — désolé\n"
            "Via: SIP/2.0/UDP h;branch=z9hG4bK699\n"
            "To: <sip:user@example.com>;tag=2\n"
            "From: <sip:a@example.com>;tag=1\n"
            "Call-ID: r699\n"
            "CSeq: 9 INVITE\n"
            "Content-Length: 0\n\n"
        ),
        {"status": 699, "reason": "Ça ne marche pas — désolé"},
    ),
    Valid(
        "status 100 with empty reason",
        crlf(
            "SIP/2.0 100 \n"
            "Via: SIP/2.0/UDP h;branch=z9hG4bK1\n"
            "To: <sip:user@example.com>\n"
            "From: <sip:a@example.com>;tag=1\n"
            "Call-ID: r100\n"
            "CSeq: 9 INVITE\n\n"
        ),
        {"status": 100, "reason": ""},
    ),
    Valid(
        "LF-only line endings with an SDP body",
        (
            "SIP/2.0 200 OK\n"
            "Via: SIP/2.0/UDP h;branch=z9hG4bKlf\n"
            "To: <sip:user@example.com>;tag=2\n"
            "From: <sip:a@example.com>;tag=1\n"
            "Call-ID: lf\n"
            "CSeq: 1 INVITE\n"
            "Content-Type: application/sdp\n"
            f"Content-Length: {len(SDP)}\n\n"
        ).encode()
        + SDP,
        {"status": 200, "body": SDP, "content_type": "application/sdp"},
    ),
    Valid(
        "multipart body kept opaque, including blank lines",
        crlf(
            "INVITE sip:bob@example.com SIP/2.0\n"
            "Via: SIP/2.0/UDP h;branch=z9hG4bKmp\n"
            "To: <sip:bob@example.com>\n"
            "From: <sip:a@example.com>;tag=1\n"
            "Call-ID: mp\n"
            "CSeq: 1 INVITE\n"
            'Content-Type: multipart/mixed;boundary="b1"\n'
            f"Content-Length: {len(MULTIPART)}\n\n"
        )
        + MULTIPART,
        {"content_type": "multipart/mixed", "body": MULTIPART},
    ),
    Valid(
        "no Content-Length on a datagram: body is the rest",
        crlf(
            "INFO sip:bob@example.com SIP/2.0\n"
            "Via: SIP/2.0/UDP h;branch=z9hG4bKinfo\n"
            "To: <sip:bob@example.com>;tag=2\n"
            "From: <sip:a@example.com>;tag=1\n"
            "Call-ID: info\n"
            "CSeq: 3 INFO\n"
            "Content-Type: application/dtmf-relay\n\n"
            "Signal=1\nDuration=160\n"
        ),
        {"body": b"Signal=1\r\nDuration=160\r\n"},
    ),
    Valid(
        "datagram longer than Content-Length: the excess is dropped (§18.3)",
        crlf(
            "INFO sip:bob@example.com SIP/2.0\n"
            "Via: SIP/2.0/UDP h;branch=z9hG4bKcut\n"
            "To: <sip:bob@example.com>;tag=2\n"
            "From: <sip:a@example.com>;tag=1\n"
            "Call-ID: cut\n"
            "CSeq: 3 INFO\n"
            "Content-Length: 4\n\n"
            "abcdEXTRA"
        ),
        {"body": b"abcd"},
    ),
    Valid(
        "leading CRLFs before the start line (§7.5)",
        b"\r\n\r\n" + MINIMAL,
        {"method": "INVITE"},
    ),
    Valid(
        "REGISTER with Contact star",
        crlf(
            "REGISTER sip:example.com SIP/2.0\n"
            "Via: SIP/2.0/UDP h;branch=z9hG4bKstar\n"
            "To: <sip:u@example.com>\n"
            "From: <sip:u@example.com>;tag=1\n"
            "Call-ID: star\n"
            "CSeq: 4 REGISTER\n"
            "Contact: *\n"
            "Expires: 0\n"
            "Content-Length: 0\n\n"
        ),
        {"contact_wildcard": True, "expires": 0},
    ),
    Valid(
        "unquoted multi-word display name, bare addr-spec with header params, quoted param values",
        crlf(
            "SUBSCRIBE sip:presence@example.com SIP/2.0\n"
            "Via: SIP/2.0/UDP h;branch=z9hG4bKsub\n"
            "To: Bob Smith Jr <sip:bob@example.com>\n"
            "From: sip:a@example.com;tag=abc;x-flag\n"
            "Call-ID: sub\n"
            "CSeq: 1 SUBSCRIBE\n"
            'Contact: <sip:a@192.0.2.9>;+sip.instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"\n'
            "Event: presence\n"
            "Content-Length: 0\n\n"
        ),
        {
            "to_display": "Bob Smith Jr",
            "from_tag": "abc",
            "from_uri": "sip:a@example.com",
            "contact_instance": '"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"',
        },
    ),
    Valid(
        "LWS inside Via and unusual but legal tokens",
        crlf(
            "INVITE sip:bob@example.com SIP/2.0\n"
            "Via: SIP / 2.0 / UDP host.example.com : 5062 ; branch = z9hG4bKlws\n"
            "To: <sip:bob@example.com>\n"
            "From: <sip:a@example.com>;tag=1\n"
            "Call-ID: !%*_+`'~-.@example\n"
            "CSeq: 1 INVITE\n"
            "Content-Length: 0\n\n"
        ),
        {"via_sent_by": ("host.example.com", 5062), "branch": "z9hG4bKlws", "call_id": "!%*_+`'~-.@example"},
    ),
]


def _check(message: Request | Response, expect: dict[str, object]) -> None:
    for key, wanted in expect.items():
        if key == "method":
            assert isinstance(message, Request)
            got: object = message.method
        elif key == "status":
            assert isinstance(message, Response)
            got = message.status
        elif key == "reason":
            assert isinstance(message, Response)
            got = message.reason
        elif key == "call_id":
            got = message.call_id
        elif key == "from_tag":
            got = message.from_.tag
        elif key == "to_tag":
            got = message.to.tag
        elif key == "cseq":
            got = (message.cseq.seq, message.cseq.method)
        elif key == "branch":
            got = message.top_via.branch
        elif key == "max_forwards":
            got = message.max_forwards
        elif key.startswith("header:"):
            got = message.headers.get(key.split(":", 1)[1])
        elif key == "to_uri":
            got = str(message.to.uri)
        elif key == "from_uri":
            got = str(message.from_.uri)
        elif key.startswith("ruri_"):
            assert isinstance(message, Request)
            uri = message.uri
            if key == "ruri_tel_digits":
                assert isinstance(uri, TelUri)
                got = uri.digits
            elif key == "ruri_scheme":
                got = uri.scheme
            else:
                assert isinstance(uri, SipUri)
                got = {
                    "ruri_user": uri.user,
                    "ruri_user_unescaped": uri.user_unescaped,
                    "ruri_host": uri.host,
                    "ruri_port": uri.port,
                }[key]
        elif key == "from_display":
            got = message.from_.display_text
        elif key == "to_display":
            got = message.to.display_text
        elif key == "via_sent_by":
            got = message.top_via.sent_by
        elif key == "via_rport":
            got = message.top_via.rport
        elif key == "via_count":
            got = len(message.vias)
        elif key == "route_count":
            got = len(message.routes)
        elif key == "record_route_count":
            got = len(message.record_routes)
        elif key == "contact_count":
            got = len(message.contacts)
        elif key == "contact_headers":
            uri = message.contacts[0].uri
            assert isinstance(uri, SipUri)
            got = uri.headers
        elif key == "contact_instance":
            got = message.contacts[0].param("+sip.instance")
        elif key == "contact_wildcard":
            got = message.contact_is_wildcard
        elif key == "expires":
            got = message.expires
        elif key == "from_tel":
            uri = message.from_.uri
            assert isinstance(uri, TelUri)
            got = uri.number
        elif key == "body":
            got = message.body
        elif key == "body_length":
            got = len(message.body)
        elif key == "content_type":
            got = message.content_type
        else:  # pragma: no cover - a typo in the table
            raise AssertionError(f"unknown expectation {key}")
        assert got == wanted, key


@pytest.mark.parametrize("case", VALID_CASES, ids=lambda case: case.name)
def test_valid_message_parses_with_expected_fields(case: Valid) -> None:
    message = parse_message(case.data)
    message.validate()
    _check(message, case.expect)


@pytest.mark.parametrize("case", VALID_CASES, ids=lambda case: case.name)
def test_round_trip_is_stable_and_equivalent(case: Valid) -> None:
    message = parse_message(case.data)
    wire = bytes(message)
    again = parse_message(wire)
    assert bytes(again) == wire
    _check(again, case.expect)
    original = list(message.headers)
    if message.headers.get("content-length") is None and message.body:
        original.append(("Content-Length", str(len(message.body))))  # added for stream safety
    assert list(again.headers) == original


def test_round_trip_of_a_canonical_message_is_byte_identical() -> None:
    assert bytes(parse_message(MINIMAL)) == MINIMAL


def test_header_order_unknown_headers_and_name_spelling_survive() -> None:
    data = crlf(
        "INVITE sip:bob@example.com SIP/2.0\n"
        "x-zeta: 1\n"
        "Via: SIP/2.0/UDP h;branch=z9hG4bKorder\n"
        'P-Weird-Header: <strange>;;value="q,"\n'
        "t: <sip:bob@example.com>\n"
        "f: <sip:a@example.com>;tag=1\n"
        "i: order\n"
        "CSeq: 1 INVITE\n"
        "X-Alpha: a\n"
        "X-Alpha: b\n"
        "Content-Length: 0\n\n"
    )
    message = parse_message(data)
    assert [name for name, _ in message.headers] == [
        "x-zeta",
        "Via",
        "P-Weird-Header",
        "t",
        "f",
        "i",
        "CSeq",
        "X-Alpha",
        "X-Alpha",
        "Content-Length",
    ]
    assert message.headers.fields("x-alpha") == ["a", "b"]
    assert bytes(message) == data


@dataclass(frozen=True)
class Invalid:
    name: str
    data: bytes
    status: int
    respondable: bool = True


def _with(header_lines: str, start: str = "INVITE sip:bob@example.com SIP/2.0", body: str = "") -> bytes:
    return crlf(f"{start}\n{header_lines}\n{body}")


BASE_HEADERS = (
    "Via: SIP/2.0/UDP h.example.com;branch=z9hG4bKbad\n"
    "To: <sip:bob@example.com>\n"
    "From: <sip:a@example.com>;tag=1\n"
    "Call-ID: bad-1\n"
    "CSeq: 1 INVITE\n"
)


def _without(name: str) -> str:
    return "".join(line + "\n" for line in BASE_HEADERS.splitlines() if not line.startswith(name))


INVALID_CASES = [
    Invalid("missing Call-ID", _with(_without("Call-ID") + "Content-Length: 0\n"), 400, False),
    Invalid("missing CSeq", _with(_without("CSeq") + "Content-Length: 0\n"), 400, False),
    Invalid("missing From", _with(_without("From") + "Content-Length: 0\n"), 400, False),
    Invalid("missing To", _with(_without("To") + "Content-Length: 0\n"), 400, False),
    Invalid("missing Via", _with(_without("Via") + "Content-Length: 0\n"), 400, False),
    Invalid(
        "CSeq method differs from the request method",
        _with(BASE_HEADERS.replace("1 INVITE", "1 BYE") + "Content-Length: 0\n"),
        400,
    ),
    Invalid(
        "CSeq number beyond 2**31-1",
        _with(BASE_HEADERS.replace("1 INVITE", "2147483648 INVITE") + "Content-Length: 0\n"),
        400,
        False,
    ),
    Invalid(
        "CSeq without method",
        _with(BASE_HEADERS.replace("1 INVITE", "1") + "Content-Length: 0\n"),
        400,
        False,
    ),
    Invalid(
        "Content-Length larger than the body", _with(BASE_HEADERS + "Content-Length: 50\n", body="short"), 400
    ),
    Invalid("Content-Length not a number", _with(BASE_HEADERS + "Content-Length: ten\n"), 400),
    Invalid("negative Content-Length", _with(BASE_HEADERS + "Content-Length: -1\n"), 400),
    Invalid(
        "Max-Forwards not a number", _with(BASE_HEADERS + "Max-Forwards: seventy\nContent-Length: 0\n"), 400
    ),
    Invalid("two Call-ID headers", _with(BASE_HEADERS + "Call-ID: other\nContent-Length: 0\n"), 400, False),
    Invalid(
        "Call-ID with a space",
        _with(BASE_HEADERS.replace("bad-1", "bad 1") + "Content-Length: 0\n"),
        400,
        False,
    ),
    Invalid(
        "unsupported SIP version in a request",
        _with(BASE_HEADERS + "Content-Length: 0\n", start="INVITE sip:bob@example.com SIP/7.0"),
        505,
        True,
    ),
    Invalid(
        "garbled SIP version",
        _with(BASE_HEADERS + "Content-Length: 0\n", start="INVITE sip:bob@example.com SIP/two"),
        400,
        True,
    ),
    Invalid(
        "mailto Request-URI",
        _with(BASE_HEADERS + "Content-Length: 0\n", start="INVITE mailto:bob@example.com SIP/2.0"),
        416,
        True,
    ),
    Invalid(
        "Request-URI that is not a URI",
        _with(BASE_HEADERS + "Content-Length: 0\n", start="INVITE bob.example.com SIP/2.0"),
        400,
        True,
    ),
    Invalid(
        "spaces inside the request line",
        _with(BASE_HEADERS + "Content-Length: 0\n", start="INVITE  sip:bob@example.com SIP/2.0"),
        400,
        True,
    ),
    Invalid(
        "request line with a URI containing a space",
        _with(BASE_HEADERS + "Content-Length: 0\n", start="INVITE sip:bob smith@example.com SIP/2.0"),
        400,
        True,
    ),
    Invalid(
        "escaped character in the host",
        _with(BASE_HEADERS + "Content-Length: 0\n", start="INVITE sip:bob@exa%6dple.com SIP/2.0"),
        400,
        True,
    ),
    Invalid(
        "port out of range",
        _with(BASE_HEADERS + "Content-Length: 0\n", start="INVITE sip:bob@example.com:99999 SIP/2.0"),
        400,
        True,
    ),
    Invalid(
        "unterminated IPv6 reference",
        _with(BASE_HEADERS + "Content-Length: 0\n", start="INVITE sip:bob@[2001:db8::1 SIP/2.0"),
        400,
        True,
    ),
    Invalid(
        "not an IPv6 address",
        _with(BASE_HEADERS + "Content-Length: 0\n", start="INVITE sip:bob@[2001:db8::zz] SIP/2.0"),
        400,
        True,
    ),
    Invalid(
        "bad escape in user part",
        _with(BASE_HEADERS + "Content-Length: 0\n", start="INVITE sip:b%4@example.com SIP/2.0"),
        400,
        True,
    ),
    Invalid("status code out of range", crlf("SIP/2.0 700 Nope\n" + BASE_HEADERS + "\n"), 400, False),
    Invalid("status code too short", crlf("SIP/2.0 99 Nope\n" + BASE_HEADERS + "\n"), 400, False),
    Invalid("status code not digits", crlf("SIP/2.0 2x0 Nope\n" + BASE_HEADERS + "\n"), 400, False),
    Invalid(
        "header line without colon", _with(BASE_HEADERS + "Just some text\nContent-Length: 0\n"), 400, False
    ),
    Invalid("header name with a space", _with(BASE_HEADERS + "Bad Name: x\nContent-Length: 0\n"), 400, False),
    Invalid(
        "continuation before the first header",
        crlf("INVITE sip:bob@example.com SIP/2.0\n  folded\n\n"),
        400,
        False,
    ),
    Invalid(
        "unterminated quoted display name",
        _with(
            BASE_HEADERS.replace("To: <sip:bob@example.com>", 'To: "Bob <sip:bob@example.com>')
            + "Content-Length: 0\n"
        ),
        400,
        False,
    ),
    Invalid(
        "unterminated angle bracket",
        _with(BASE_HEADERS.replace("<sip:bob@example.com>", "<sip:bob@example.com") + "Content-Length: 0\n"),
        400,
        False,
    ),
    Invalid(
        "junk after the To address",
        _with(
            BASE_HEADERS.replace("<sip:bob@example.com>", "<sip:bob@example.com> junk")
            + "Content-Length: 0\n"
        ),
        400,
        False,
    ),
    Invalid(
        "bad Via sent-protocol",
        _with(BASE_HEADERS.replace("SIP/2.0/UDP", "SIP-2.0-UDP") + "Content-Length: 0\n"),
        400,
        False,
    ),
    Invalid("bad Contact", _with(BASE_HEADERS + "Contact: <sip:@@>\nContent-Length: 0\n"), 400),
    Invalid("empty datagram", b"", 400, False),
    Invalid("only line ends", b"\r\n\r\n", 400, False),
    Invalid("no empty line after the headers", MINIMAL.rstrip(b"\r\n") + b"\r\nX-Cut-Off: abc", 400, False),
    Invalid("random binary", bytes(range(256)), 400, False),
]


@pytest.mark.parametrize("case", INVALID_CASES, ids=lambda case: case.name)
def test_invalid_message_raises_sip_error_with_hint(case: Invalid) -> None:
    with pytest.raises(SipError) as info:
        parse_message(case.data).validate()  # header bodies are parsed when first read
    assert info.value.status_hint == case.status
    try:
        message = parse_message(case.data)
        respondable = _respondable(message)  # a header body failed when read; the caller holds it
    except SipError as error:
        respondable = error.partial is not None
    assert respondable == case.respondable


def test_message_too_large_is_513_and_body_too_large_is_413() -> None:
    limits = ParserLimits(max_message_bytes=2000, max_body_bytes=100)
    body = "x" * 150
    data = _with(BASE_HEADERS + f"Content-Length: {len(body)}\n", body=body)
    with pytest.raises(SipError) as info:
        parse_message(data, limits)
    assert info.value.status_hint == 413
    with pytest.raises(SipError) as info:
        parse_message(data + b" " * 2000, limits)
    assert info.value.status_hint == 513


def test_message_size_limit_counts_bytes_not_header_fields() -> None:
    # limits.max_message_bytes is a number of bytes: many small headers pass while they fit in it.
    many = _with(BASE_HEADERS + "X-H: 1\n" * 2000 + "Content-Length: 0\n")
    assert len(parse_message(many).headers.fields("x-h")) == 2000
    with pytest.raises(SipError) as info:
        parse_message(many, ParserLimits(max_message_bytes=len(many) - 1))
    assert info.value.status_hint == 513


def test_error_keeps_the_partial_request_for_an_error_response() -> None:
    data = _with(BASE_HEADERS + "Max-Forwards: x\nContent-Length: 0\n")
    with pytest.raises(SipError) as info:
        parse_message(data)
    partial = info.value.partial
    assert partial is not None
    assert partial.call_id == "bad-1"
    assert partial.top_via.branch == "z9hG4bKbad"


# On a stream every message needs Content-Length and nothing after its body.
STREAMABLE = [
    case
    for case in VALID_CASES
    if (b"Content-Length" in case.data or b"\nl:" in case.data) and not case.data.endswith(b"EXTRA")
]


def test_stream_framer_splits_concatenated_messages_whole_and_byte_by_byte() -> None:
    stream = b"\r\n\r\n".join(case.data for case in STREAMABLE)
    expected = [bytes(parse_message(case.data)) for case in STREAMABLE]

    whole = StreamFramer()
    assert [bytes(parse_message(m)) for m in whole.feed(stream)] == expected

    trickle = StreamFramer()
    found: list[bytes] = []
    for index in range(len(stream)):
        found.extend(trickle.feed(stream[index : index + 1]))
    assert [bytes(parse_message(m)) for m in found] == expected
    leading_pings = sum(case.data.startswith(b"\r\n\r\n") for case in STREAMABLE)
    assert trickle.keepalives == len(STREAMABLE) - 1 + leading_pings


def test_stream_framer_waits_for_the_whole_body() -> None:
    framer = StreamFramer()
    data = VALID_CASES[6].data  # MESSAGE with a 5-byte body
    assert framer.feed(data[:-2]) == []
    assert framer.feed(data[-2:]) == [data]


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"INVITE sip:a@b SIP/2.0\r\nContent-Length: abc\r\n\r\n", 400),
        (b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 99999999\r\n\r\n", 413),
        (b"INVITE sip:a@b SIP/2.0\r\n" + b"X: " + b"y" * 70_000, 513),
        (b"INVITE sip:a@b SIP/2.0\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n", 400),
    ],
    ids=["bad-content-length", "body-over-limit", "endless-header", "no-content-length"],
)
def test_stream_framer_rejects_unframeable_input(data: bytes, status: int) -> None:
    with pytest.raises(SipError) as info:
        StreamFramer().feed(data)
    assert info.value.status_hint == status


_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.", min_size=1, max_size=12)
_value = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=',"<>;'),
    min_size=1,
    max_size=30,
)


@given(
    method=st.sampled_from(["INVITE", "BYE", "OPTIONS", "FOO-BAR"]),
    user=_token,
    host=st.sampled_from(["example.com", "192.0.2.7", "[2001:db8::1]"]),
    tag=_token,
    call_id=_token,
    seq=st.integers(min_value=0, max_value=2**31 - 1),
    extra=st.lists(st.tuples(st.sampled_from(["X-A", "x-b", "P-Thing", "Subject"]), _value), max_size=6),
    body=st.binary(max_size=200),
)
def test_generated_requests_round_trip(
    method: str,
    user: str,
    host: str,
    tag: str,
    call_id: str,
    seq: int,
    extra: list[tuple[str, str]],
    body: bytes,
) -> None:
    headers = [
        ("Via", f"SIP/2.0/UDP {host}:5060;branch=z9hG4bK{tag}"),
        ("From", f"<sip:{user}@{host}>;tag={tag}"),
        ("To", f"<sip:{user}@{host}>"),
        ("Call-ID", call_id),
        ("CSeq", f"{seq} {method}"),
        *extra,
    ]
    request = Request(method, SipUri(user=user, host=host), headers, body)
    wire = bytes(request)
    parsed = parse_message(wire)
    assert isinstance(parsed, Request)
    assert bytes(parsed) == wire
    assert parsed.body == body
    assert parsed.cseq.seq == seq
    assert parsed.from_.tag == tag
    assert [(n, v) for n, v in parsed.headers if n in {"X-A", "x-b", "P-Thing", "Subject"}] == extra


@pytest.mark.parametrize(
    "case",
    [
        case
        for case in INVALID_CASES
        if case.name in {"bad Contact", "junk after the To address", "bad Via sent-protocol"}
    ],
    ids=lambda case: case.name,
)
def test_header_bodies_are_checked_when_first_read(case: Invalid) -> None:
    message = parse_message(case.data)  # structure is fine: Via/To/Contact are parsed lazily
    with pytest.raises(SipError) as info:
        message.validate()
    assert info.value.status_hint == 400


def test_auth_header_accessors() -> None:
    data = crlf(
        "SIP/2.0 407 Proxy Authentication Required\n"
        "Via: SIP/2.0/UDP h;branch=z9hG4bKauth\n"
        "To: <sip:bob@example.com>;tag=2\n"
        "From: <sip:a@example.com>;tag=1\n"
        "Call-ID: auth\n"
        "CSeq: 1 INVITE\n"
        'Proxy-Authenticate: Digest realm="carrier", nonce="n1", qop="auth,auth-int", algorithm=SHA-256\n'
        'Proxy-Authenticate: Digest realm="carrier", nonce="n2", algorithm=MD5\n'
        "Content-Length: 0\n\n"
    )
    response = parse_message(data)
    challenges = response.proxy_authenticate
    assert [(c.realm, c.nonce, c.algorithm) for c in challenges] == [
        ("carrier", "n1", "SHA-256"),
        ("carrier", "n2", "MD5"),
    ]
    assert challenges[0].qop_options == ("auth", "auth-int")
    assert response.www_authenticate == []
    assert response.authorization == []
    response.headers.add(
        "Authorization", 'Digest username="u", realm="r", nonce="n", uri="sip:x", response="ab"'
    )
    assert [c.username for c in response.authorization] == ["u"]


def test_malformed_auth_header_raises_when_read() -> None:
    message = parse_message(MINIMAL.replace(b"Content-Length", b"WWW-Authenticate: Digest\r\nContent-Length"))
    with pytest.raises(SipError) as info:
        message.www_authenticate  # noqa: B018
    assert info.value.status_hint == 400


@pytest.mark.parametrize(
    ("user", "escaped"),
    [
        ("+31201234567", "+31201234567"),
        ("alice.o'neil-2_(x)~!*", "alice.o'neil-2_(x)~!*"),
        ("a&b=c+d$e,f;g?h/i", "a&b=c+d$e,f;g?h/i"),  # user-unreserved (RFC 3261 §25.1)
        ("2001\r\nX-Inj: 1", "2001%0D%0AX-Inj%3A%201"),
        ("\x00@%", "%00%40%25"),
        ("josé", "jos%C3%A9"),
    ],
)
def test_a_user_part_is_written_escaped(user: str, escaped: str) -> None:
    assert escape_user(user) == escaped
    uri = parse_uri(f"sip:{escaped}@example.net")
    assert isinstance(uri, SipUri)
    assert uri.user_unescaped == user


@given(st.text(min_size=1, max_size=40))
def test_any_user_part_escaped_parses_back(user: str) -> None:
    uri = parse_uri(f"sip:{escape_user(user)}@example.net")
    assert isinstance(uri, SipUri)
    assert uri.user_unescaped == user
