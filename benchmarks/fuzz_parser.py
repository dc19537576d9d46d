"""Mutation fuzzer for ``proxy.sip.parse_message``: bad input must end in ``SipError``, never a crash.

Run as ``python -m benchmarks.fuzz_parser [--count 200000] [--seed S] [--hypothesis-examples N]``.

Inputs come from three phases, all counted in ``--count``:

- random mutations (``random.Random(seed)``) of a corpus of valid seed messages: bit flips, byte
  insertions and deletions, duplicated, removed and shuffled lines, swapped and compact header names,
  truncation, huge values, random bytes, random Content-Length values, LF / CR / CRLF mixes, random
  Unicode, NUL bytes, folding, token splices and cross-overs between seeds;
- hypothesis ``binary()`` examples;
- hypothesis examples of a structured strategy that assembles start lines and header lines.

Every input must either parse into a ``Request``/``Response`` whose serialisation parses again into
an equal serialisation with the same typed views, or raise ``SipError``; a ``SipError`` that carries
a half-parsed request (``partial``) must let ``make_response`` build the error response; and
``StreamFramer`` fed the same bytes must only raise ``SipError``. Anything else is a bug: its input
and traceback are printed, the fuzzer carries on, and the exit status is 1 at the end. Each distinct
bug is also shrunk to a small reproducing input. The same ``--seed`` gives the same inputs.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import hypothesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st

from benchmarks.sip_parse import INVITE_WITH_SDP, OK_WITH_SDP
from proxy.sip import (
    DEFAULT_LIMITS,
    NameAddress,
    Request,
    Response,
    SipError,
    SipUri,
    StreamFramer,
    TelUri,
    Uri,
    make_response,
    parse_message,
)

__all__ = [
    "DEFAULT_COUNT",
    "DEFAULT_SEED",
    "SEEDS",
    "Bug",
    "FuzzReport",
    "examine",
    "format_report",
    "main",
    "mutate",
    "run_fuzz",
    "shrink",
    "sip_messages",
]

DEFAULT_COUNT = 200_000
DEFAULT_SEED = 1
HYPOTHESIS_SHARE = 0.1  # of --count, when --hypothesis-examples is not given
MAX_PRINTED_PER_BUG = 2
SHRINK_BUDGET_CALLS = 3_000


def _with_body(head: str, body: str) -> bytes:
    encoded = body.encode()
    return head.format(length=len(encoded)).encode() + encoded


_EARLY_SDP = (
    "v=0\r\n"
    "o=CarrierSBC 4711 4711 IN IP4 203.0.113.5\r\n"
    "s=SBC\r\n"
    "c=IN IP4 203.0.113.5\r\n"
    "t=0 0\r\n"
    "m=audio 40002 RTP/AVP 8 101\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=sendrecv\r\n"
)

_TEL_SDP = (
    "v=0\r\n"
    "o=- 20518 0 IN IP4 192.0.2.33\r\n"
    "s=-\r\n"
    "c=IN IP4 192.0.2.33\r\n"
    "t=0 0\r\n"
    "m=audio 30000 RTP/AVP 0 101\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
)

_IPV6_SDP = (
    "v=0\r\n"
    "o=- 1 1 IN IP6 2001:db8::10\r\n"
    "s=-\r\n"
    "c=IN IP6 2001:db8::10\r\n"
    "t=0 0\r\n"
    "m=audio 5004 RTP/AVP 9 0\r\n"
)

# A corpus of valid messages, one per shape the B2BUA meets; every one must parse as is.
SEEDS: tuple[bytes, ...] = (
    INVITE_WITH_SDP,
    OK_WITH_SDP,
    _with_body(
        "REGISTER sip:pbx.example.com SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 10.0.0.31:5060;branch=z9hG4bKreg0002;rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:201@pbx.example.com>;tag=reg-8812\r\n"
        "To: <sip:201@pbx.example.com>\r\n"
        "Call-ID: reg-5d1f0e2a@10.0.0.31\r\n"
        "CSeq: 2 REGISTER\r\n"
        "Contact: <sip:201@10.0.0.31:5060>;expires=3600;q=0.8\r\n"
        'Authorization: Digest username="201", realm="pbx.example.com", '
        'nonce="5f2b9c3e8a7d", uri="sip:pbx.example.com", '
        'response="6629fae49393a05397450978507c4ef1", algorithm=MD5, '
        'cnonce="0a4f113b", qop=auth, nc=00000001\r\n'
        "Expires: 3600\r\n"
        "User-Agent: DeskPhone/3.1\r\n"
        "Content-Length: {length}\r\n"
        "\r\n",
        "",
    ),
    _with_body(
        "BYE sip:+4930123456@203.0.113.5:5060;transport=udp SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 10.0.0.21:5060;branch=z9hG4bKbye777;rport\r\n"
        "Route: <sip:198.51.100.10:5060;lr;ftag=as1f2e3d4c>\r\n"
        "Max-Forwards: 70\r\n"
        'From: "Reception Desk" <sip:200@pbx.example.com>;tag=as1f2e3d4c\r\n'
        "To: <sip:+4930123456@carrier.example.net;user=phone>;tag=sbc-7f3e9a01\r\n"
        "Call-ID: 3c26700b7f2a4e1c9a1b0c5d6e7f8091@10.0.0.21\r\n"
        "CSeq: 103 BYE\r\n"
        'Reason: Q.850;cause=16;text="Normal call clearing"\r\n'
        "Content-Length: {length}\r\n"
        "\r\n",
        "",
    ),
    _with_body(
        "CANCEL sip:+4930123456@carrier.example.net;user=phone SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 10.0.0.21:5060;branch=z9hG4bK776asdhds;rport\r\n"
        "Max-Forwards: 70\r\n"
        'From: "Reception Desk" <sip:200@pbx.example.com>;tag=as1f2e3d4c\r\n'
        "To: <sip:+4930123456@carrier.example.net;user=phone>\r\n"
        "Call-ID: 3c26700b7f2a4e1c9a1b0c5d6e7f8091@10.0.0.21\r\n"
        "CSeq: 102 CANCEL\r\n"
        "Content-Length: {length}\r\n"
        "\r\n",
        "",
    ),
    _with_body(
        "ACK sip:+4930123456@203.0.113.5:5060;transport=udp SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 10.0.0.21:5060;branch=z9hG4bKack555\r\n"
        "Route: <sip:198.51.100.10:5060;lr;ftag=as1f2e3d4c>, <sip:203.0.113.9;lr>\r\n"
        "Max-Forwards: 70\r\n"
        'From: "Reception Desk" <sip:200@pbx.example.com>;tag=as1f2e3d4c\r\n'
        "To: <sip:+4930123456@carrier.example.net;user=phone>;tag=sbc-7f3e9a01\r\n"
        "Call-ID: 3c26700b7f2a4e1c9a1b0c5d6e7f8091@10.0.0.21\r\n"
        "CSeq: 102 ACK\r\n"
        "Content-Length: {length}\r\n"
        "\r\n",
        "",
    ),
    # OPTIONS keep-alive in compact forms, with a folded header.
    _with_body(
        "OPTIONS sip:carrier.example.net SIP/2.0\r\n"
        "v: SIP/2.0/TCP 198.51.100.10:5060;branch=z9hG4bKopt1\r\n"
        "f: <sip:ping@198.51.100.10>;tag=opt-1\r\n"
        "t: <sip:carrier.example.net>\r\n"
        "i: opt-ping-0001\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Max-Forwards: 70\r\n"
        "Accept: application/sdp,\r\n"
        "  application/dtmf-relay\r\n"
        "k: timer\r\n"
        "l: {length}\r\n"
        "\r\n",
        "",
    ),
    _with_body(
        "SIP/2.0 183 Session Progress\r\n"
        "Via: SIP/2.0/UDP 198.51.100.10:5060;branch=z9hG4bK-524287-1---8a7f3c;rport=5060\r\n"
        'From: "Reception Desk" <sip:200@pbx.example.com>;tag=as1f2e3d4c\r\n'
        "To: <sip:+4930123456@carrier.example.net;user=phone>;tag=sbc-7f3e9a01\r\n"
        "Call-ID: 3c26700b7f2a4e1c9a1b0c5d6e7f8091@10.0.0.21\r\n"
        "CSeq: 102 INVITE\r\n"
        "Contact: <sip:+4930123456@203.0.113.5:5060>\r\n"
        "Require: 100rel\r\n"
        "RSeq: 1\r\n"
        "Content-Type: application/sdp\r\n"
        "Content-Length: {length}\r\n"
        "\r\n",
        _EARLY_SDP,
    ),
    _with_body(
        "SIP/2.0 407 Proxy Authentication Required\r\n"
        "Via: SIP/2.0/UDP 10.0.0.21:5060;branch=z9hG4bK776asdhds;received=10.0.0.21;rport=5060\r\n"
        'From: "Reception Desk" <sip:200@pbx.example.com>;tag=as1f2e3d4c\r\n'
        "To: <sip:+4930123456@carrier.example.net;user=phone>;tag=auth-99\r\n"
        "Call-ID: 3c26700b7f2a4e1c9a1b0c5d6e7f8091@10.0.0.21\r\n"
        "CSeq: 102 INVITE\r\n"
        'Proxy-Authenticate: Digest realm="carrier.example.net", '
        'nonce="a8e1c0ffee5e4d31b2", opaque="0badcafe", algorithm=MD5, qop="auth,auth-int", stale=FALSE\r\n'
        "Content-Length: {length}\r\n"
        "\r\n",
        "",
    ),
    _with_body(
        "NOTIFY sip:200@10.0.0.21:5060 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKnotify42\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:+4930123456@carrier.example.net>;tag=sbc-7f3e9a01\r\n"
        "To: <sip:200@pbx.example.com>;tag=as1f2e3d4c\r\n"
        "Call-ID: 3c26700b7f2a4e1c9a1b0c5d6e7f8091@10.0.0.21\r\n"
        "CSeq: 7 NOTIFY\r\n"
        "Contact: <sip:203.0.113.5:5060>\r\n"
        "Event: refer;id=104\r\n"
        "Subscription-State: active;expires=60\r\n"
        "Content-Type: message/sipfrag;version=2.0\r\n"
        "Content-Length: {length}\r\n"
        "\r\n",
        "SIP/2.0 100 Trying\r\n",
    ),
    _with_body(
        "REFER sip:+4930123456@203.0.113.5:5060 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 10.0.0.21:5060;branch=z9hG4bKrefer1;rport\r\n"
        "Max-Forwards: 70\r\n"
        'From: "Reception Desk" <sip:200@pbx.example.com>;tag=as1f2e3d4c\r\n'
        "To: <sip:+4930123456@carrier.example.net;user=phone>;tag=sbc-7f3e9a01\r\n"
        "Call-ID: 3c26700b7f2a4e1c9a1b0c5d6e7f8091@10.0.0.21\r\n"
        "CSeq: 104 REFER\r\n"
        "Contact: <sip:200@10.0.0.21:5060>\r\n"
        "Refer-To: <sip:210@pbx.example.com?Replaces=abc%40host%3Bto-tag%3D1%3Bfrom-tag%3D2>\r\n"
        'Referred-By: "Reception Desk" <sip:200@pbx.example.com>\r\n'
        "Content-Length: {length}\r\n"
        "\r\n",
        "",
    ),
    _with_body(
        "INFO sip:+4930123456@203.0.113.5:5060 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 10.0.0.21:5060;branch=z9hG4bKinfo5\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:200@pbx.example.com>;tag=as1f2e3d4c\r\n"
        "To: <sip:+4930123456@carrier.example.net>;tag=sbc-7f3e9a01\r\n"
        "Call-ID: 3c26700b7f2a4e1c9a1b0c5d6e7f8091@10.0.0.21\r\n"
        "CSeq: 105 INFO\r\n"
        "Content-Type: application/dtmf-relay\r\n"
        "Content-Length: {length}\r\n"
        "\r\n",
        "Signal=5\r\nDuration=160\r\n",
    ),
    _with_body(
        "MESSAGE sip:reception@pbx.example.com SIP/2.0\r\n"
        "Via: SIP/2.0/TLS 192.0.2.77:5061;branch=z9hG4bKmsg9\r\n"
        "Max-Forwards: 70\r\n"
        'From: "Jürgen Groß" <sips:jg@example.org>;tag=m-1\r\n'
        "To: <sip:reception@pbx.example.com>\r\n"
        "Call-ID: msg-77aa@192.0.2.77\r\n"
        "CSeq: 1 MESSAGE\r\n"
        "Content-Type: text/plain;charset=UTF-8\r\n"
        "Content-Length: {length}\r\n"
        "\r\n",
        "Grüße aus Köln — bitte zurückrufen ☎",
    ),
    _with_body(
        "INVITE tel:+4930123456;phone-context=+49 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.33:5060;branch=z9hG4bKtel1\r\n"
        "Max-Forwards: 70\r\n"
        "From: <tel:+49-30-555-0100>;tag=t1\r\n"
        "To: <tel:+4930123456>\r\n"
        "Call-ID: tel-call-1@192.0.2.33\r\n"
        "CSeq: 1 INVITE\r\n"
        "Contact: <sip:+4930555010@192.0.2.33:5060>\r\n"
        "P-Asserted-Identity: <tel:+4930555010>\r\n"
        "Content-Type: application/sdp\r\n"
        "Content-Length: {length}\r\n"
        "\r\n",
        _TEL_SDP,
    ),
    _with_body(
        "INVITE sip:200@[2001:db8::21]:5060 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP [2001:db8::10]:5060;branch=z9hG4bKv6a;rport\r\n"
        "Via: SIP/2.0/TCP [2001:db8::1];branch=z9hG4bKv6b;received=2001:db8::99\r\n"
        "Max-Forwards: 68\r\n"
        "From: <sip:alice@[2001:db8::10]>;tag=v6-1\r\n"
        "To: sip:200@[2001:db8::21]\r\n"
        "Call-ID: v6-call@2001:db8::10\r\n"
        "CSeq: 5 INVITE\r\n"
        "Contact: <sip:alice@[2001:db8::10]:5060;transport=udp>;expires=60\r\n"
        "Content-Type: application/sdp\r\n"
        "Content-Length: {length}\r\n"
        "\r\n",
        _IPV6_SDP,
    ),
    _with_body(
        "SIP/2.0 100 Trying\r\n"
        "v: SIP/2.0/UDP 10.0.0.21:5060;branch=z9hG4bK776asdhds;rport=5060, "
        "SIP/2.0/UDP 10.0.0.5;branch=z9hG4bKfirst\r\n"
        "f: <sip:200@pbx.example.com>;tag=as1f2e3d4c\r\n"
        "t: <sip:+4930123456@carrier.example.net>\r\n"
        "i: 3c26700b7f2a4e1c9a1b0c5d6e7f8091@10.0.0.21\r\n"
        "CSeq: 102 INVITE\r\n"
        "l: {length}\r\n"
        "\r\n",
        "",
    ),
)

# Fragments that sit on the edges of the grammar (§25.1), spliced into messages.
_TOKENS: tuple[bytes, ...] = (
    b"sip:",
    b"sips:",
    b"tel:",
    b"mailto:",
    b"urn:x",
    b"[::1]",
    b"[",
    b"]",
    b"[2001:db8::1",
    b"65535",
    b"65536",
    b"0",
    b"-1",
    b"99999999999",
    b"4294967296",
    b"2147483648",
    b"%",
    b"%zz",
    b"%41",
    b'"',
    b'\\"',
    b"\\",
    b"<",
    b">",
    b"<>",
    b",",
    b",,",
    b";",
    b";;",
    b"=",
    b"==",
    b"@",
    b"@@",
    b":",
    b"::",
    b"SIP/2.0",
    b"SIP/3.0",
    b"sip/2.0",
    b"SIP/2.0/",
    b"z9hG4bK",
    b";tag=",
    b";branch=",
    b";lr",
    b"*",
    b"\t",
    b" ",
    b"",
    b"\r\n ",
    b"\r\n\t",
    b"\r\n",
    b"\n",
    b"\r",
    b"\x00",
    b"\xff",
    b"\xc3\x28",
    b"\xed\xa0\x80",
    b"\xef\xbb\xbf",
    b"\xe2\x80\xa8",
    b"\xd9\xa3",
    b"\xc2\xb2",
    b"\xef\xbc\x91",
    b"?",
    b"?a=b",
    b"&",
    b"+",
    b"/",
    b"//",
)

_HEADER_NAMES: tuple[bytes, ...] = (
    b"Via",
    b"From",
    b"To",
    b"Call-ID",
    b"CSeq",
    b"Contact",
    b"Content-Length",
    b"Content-Type",
    b"Max-Forwards",
    b"Route",
    b"Record-Route",
    b"Expires",
    b"Supported",
    b"Require",
    b"Allow",
    b"P-Asserted-Identity",
    b"Refer-To",
    b"Event",
    b"RSeq",
    b"RAck",
    b"Authorization",
    b"Proxy-Authenticate",
    b"WWW-Authenticate",
    b"Session-Expires",
    b"Reason",
    b"X-Custom",
    b"CALL-ID",
    b"cseq",
    b"content-length",
    b"VIA",
    b"i",
    b"f",
    b"t",
    b"v",
    b"m",
    b"l",
    b"c",
    b"k",
)

_CONTENT_LENGTHS: tuple[bytes, ...] = (
    b"-1",
    b"0",
    b"1",
    b"+5",
    b"0x10",
    b" 12 ",
    b"1 2",
    b"99999999999",
    b"4294967296",
    b"",
    b"abc",
    b"\xd9\xa1\xd9\xa2",
    b"\xef\xbc\x91",
    b"007",
    b"60001",
    b"65536",
    b"1e3",
    b"\x00",
    b"12;x=1",
)

_STATUS_CODES: tuple[bytes, ...] = (
    b"099",
    b"100",
    b"199",
    b"200",
    b"2OO",
    b"\xc2\xb2\xc2\xb200",
    b"600",
    b"699",
    b"700",
    b"1000",
    b"20",
    b"",
    b"-20",
    b"+200",
    b" 200",
)

_METHODS: tuple[bytes, ...] = (
    b"INVITE",
    b"ACK",
    b"BYE",
    b"CANCEL",
    b"OPTIONS",
    b"REGISTER",
    b"invite",
    b"INV ITE",
    b"",
    b"IN\x00VITE",
    b"PRACK",
    b"UPDATE",
    b"X-CUSTOM",
    b"\xc3\x89TAT",
    b"INVITE\t",
)

_VERSIONS: tuple[bytes, ...] = (
    b"SIP/2.0",
    b"sip/2.0",
    b"SIP/2.1",
    b"SIP/3.0",
    b"SIP/",
    b"HTTP/1.1",
    b"SIP/2.0.0",
    b"SIP/a.b",
)

_UNICODE_RANGES: tuple[tuple[int, int], ...] = (
    (0x80, 0x2FF),  # Latin-1 and Latin extended
    (0x300, 0x36F),  # combining marks
    (0x590, 0x6FF),  # Hebrew, Arabic (right to left, Arabic digits)
    (0x2000, 0x206F),  # general punctuation: spaces, line and paragraph separators
    (0xD800, 0xDFFF),  # lone surrogates, encoded with surrogatepass: invalid UTF-8
    (0xFF00, 0xFFEF),  # fullwidth forms, fullwidth digits
    (0xFFF0, 0xFFFF),  # specials, BOM-like
    (0x1F300, 0x1F6FF),  # emoji
)


def _split_lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


def _header_bounds(lines: list[bytes]) -> int:
    """Index of the first line after the header block (the empty line), or len(lines)."""
    for index, line in enumerate(lines[1:], start=1):
        if line in (b"\r\n", b"\n", b"\r"):
            return index
    return len(lines)


def _pick_header_line(rng: random.Random, lines: list[bytes]) -> int | None:
    end = _header_bounds(lines)
    return rng.randrange(1, end) if end > 1 else None


def _random_bytes(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size)


def _random_unicode(rng: random.Random, count: int) -> bytes:
    chars = []
    for _ in range(count):
        low, high = rng.choice(_UNICODE_RANGES)
        chars.append(chr(rng.randint(low, high)))
    return "".join(chars).encode("utf-8", "surrogatepass")


def _flip_bits(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return data
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        buffer[rng.randrange(len(buffer))] ^= 1 << rng.randrange(8)
    return bytes(buffer)


def _replace_bytes(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return data
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        buffer[rng.randrange(len(buffer))] = rng.randrange(256)
    return bytes(buffer)


def _insert_bytes(rng: random.Random, data: bytes) -> bytes:
    at = rng.randint(0, len(data))
    insert = _random_bytes(rng, rng.randint(1, 16)) if rng.random() < 0.3 else rng.choice(_TOKENS)
    return data[:at] + insert + data[at:]


def _delete_range(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return data
    start = rng.randrange(len(data))
    return data[:start] + data[start + rng.randint(1, 32) :]


def _duplicate_line(rng: random.Random, data: bytes) -> bytes:
    lines = _split_lines(data)
    if not lines:
        return data
    index = rng.randrange(len(lines))
    lines.insert(rng.randint(0, len(lines)), lines[index])
    return b"".join(lines)


def _remove_line(rng: random.Random, data: bytes) -> bytes:
    lines = _split_lines(data)
    if not lines:
        return data
    del lines[rng.randrange(len(lines))]
    return b"".join(lines)


def _shuffle_headers(rng: random.Random, data: bytes) -> bytes:
    lines = _split_lines(data)
    end = _header_bounds(lines)
    headers = lines[1:end]
    rng.shuffle(headers)
    return b"".join([*lines[:1], *headers, *lines[end:]])


def _swap_header_names(rng: random.Random, data: bytes) -> bytes:
    lines = _split_lines(data)
    first, second = _pick_header_line(rng, lines), _pick_header_line(rng, lines)
    if first is None or second is None:
        return data
    name_a, colon_a, rest_a = lines[first].partition(b":")
    name_b, colon_b, rest_b = lines[second].partition(b":")
    if not (colon_a and colon_b):
        return data
    lines[first], lines[second] = name_b + b":" + rest_a, name_a + b":" + rest_b
    return b"".join(lines)


def _rename_header(rng: random.Random, data: bytes) -> bytes:
    lines = _split_lines(data)
    index = _pick_header_line(rng, lines)
    if index is None:
        return data
    _, colon, rest = lines[index].partition(b":")
    roll = rng.random()
    if roll < 0.4:
        name = bytes([rng.choice(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")])
    elif roll < 0.9:
        name = rng.choice(_HEADER_NAMES)
    else:
        name = rng.choice(_TOKENS) + rng.choice(_HEADER_NAMES)
    lines[index] = name + rng.choice((b":", b" :", b"\t:", b"")) + (rest if colon else lines[index])
    return b"".join(lines)


def _truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randint(0, len(data))]


def _huge_value(rng: random.Random, data: bytes) -> bytes:
    lines = _split_lines(data)
    index = _pick_header_line(rng, lines)
    if index is None:
        return data
    unit = rng.choice((b"a", b",", b";p", b";p=v", b", <sip:h>", b'"', b"<", b" ", b"1", b"%"))
    size = rng.choice((100, 1_000, 10_000, 65_000, 70_000))
    line = lines[index].rstrip(b"\r\n")
    lines[index] = line + unit * (size // len(unit)) + b"\r\n"
    return b"".join(lines)


def _many_headers(rng: random.Random, data: bytes) -> bytes:
    lines = _split_lines(data)
    end = _header_bounds(lines)
    extra = [b"X-Pad-%d: x\r\n" % number for number in range(rng.choice((100, 255, 256, 300)))]
    return b"".join([*lines[:end], *extra, *lines[end:]])


def _random_input(rng: random.Random, data: bytes) -> bytes:
    if rng.random() < 0.5:
        return _random_bytes(rng, rng.randint(0, 600))
    # Random printable lines: more of them reach the header parser.
    alphabet = b'abcXYZ019 :;,<>@"=.-/\t\r\n'
    return bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 400)))


def _content_length(rng: random.Random, data: bytes) -> bytes:
    lines = _split_lines(data)
    end = _header_bounds(lines)
    value = rng.choice(_CONTENT_LENGTHS) if rng.random() < 0.7 else str(rng.randint(0, 2_000)).encode()
    name = rng.choice((b"Content-Length", b"l", b"content-length", b"L"))
    for index in range(1, end):
        if lines[index].lower().startswith((b"content-length", b"l:")):
            lines[index] = name + b": " + value + b"\r\n"
            return b"".join(lines)
    lines.insert(end, name + b": " + value + b"\r\n")
    return b"".join(lines)


def _line_endings(rng: random.Random, data: bytes) -> bytes:
    roll = rng.random()
    if roll < 0.3:
        return data.replace(b"\r\n", b"\n")
    if roll < 0.45:
        return data.replace(b"\r\n", b"\r")
    if roll < 0.55:
        return data.replace(b"\r\n", b"\n\r")
    pieces = data.split(b"\r\n")
    out = [pieces[0]]
    for piece in pieces[1:]:
        out.append(rng.choice((b"\r\n", b"\r\n", b"\n", b"\r", b" \r\n", b"\r\r\n", b"\t\r\n")))
        out.append(piece)
    return b"".join(out)


def _insert_unicode(rng: random.Random, data: bytes) -> bytes:
    at = rng.randint(0, len(data))
    return data[:at] + _random_unicode(rng, rng.randint(1, 6)) + data[at:]


def _insert_nul(rng: random.Random, data: bytes) -> bytes:
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        buffer.insert(rng.randint(0, len(buffer)), 0)
    return bytes(buffer)


def _splice_token(rng: random.Random, data: bytes) -> bytes:
    """Replace the text between two separators with a grammar-edge fragment."""
    if not data:
        return data
    start = rng.randrange(len(data))
    end = start
    while end < len(data) and data[end] not in b' ;,:<>=@\r\n"':
        end += 1
    return data[:start] + rng.choice(_TOKENS) + data[end:]


def _start_line(rng: random.Random, data: bytes) -> bytes:
    first, newline, rest = data.partition(b"\n")
    if rng.random() < 0.5:
        line = (
            b"SIP/2.0 "
            + rng.choice(_STATUS_CODES)
            + rng.choice((b" OK\r", b"\r", b" \r", b" Reason Phrase\r"))
        )
    else:
        parts = first.rstrip(b"\r").split(b" ")
        method = rng.choice(_METHODS)
        uri = parts[1] if len(parts) > 1 and rng.random() < 0.6 else rng.choice(_TOKENS) + b"host"
        line = b" ".join((method, uri, rng.choice(_VERSIONS))) + b"\r"
    return line + newline + rest


def _fold(rng: random.Random, data: bytes) -> bytes:
    lines = _split_lines(data)
    index = _pick_header_line(rng, lines) if rng.random() < 0.8 else 1
    if index is None or index >= len(lines):
        return data
    line = lines[index]
    at = rng.randint(0, len(line))
    lines[index] = line[:at] + rng.choice((b"\r\n ", b"\r\n\t", b"\n ", b"\r\n \r\n ")) + line[at:]
    return b"".join(lines)


def _leading_line_ends(rng: random.Random, data: bytes) -> bytes:
    return rng.choice((b"\r\n", b"\n", b"\r\n\r\n", b" \r\n", b"\r")) * rng.randint(1, 3) + data


def _body(rng: random.Random, data: bytes) -> bytes:
    roll = rng.random()
    if roll < 0.4:
        return data + _random_bytes(rng, rng.randint(1, 64))
    if roll < 0.6:
        return data + b"x" * 60_001
    head, separator, _ = data.partition(b"\r\n\r\n")
    return head + separator if separator else data


_MUTATORS: tuple[Callable[[random.Random, bytes], bytes], ...] = (
    _flip_bits,
    _replace_bytes,
    _insert_bytes,
    _insert_bytes,
    _delete_range,
    _duplicate_line,
    _remove_line,
    _remove_line,
    _shuffle_headers,
    _swap_header_names,
    _rename_header,
    _rename_header,
    _truncate,
    _huge_value,
    _many_headers,
    _random_input,
    _content_length,
    _content_length,
    _line_endings,
    _line_endings,
    _insert_unicode,
    _insert_nul,
    _splice_token,
    _splice_token,
    _splice_token,
    _start_line,
    _fold,
    _leading_line_ends,
    _body,
)


def mutate(rng: random.Random, seeds: Sequence[bytes] = SEEDS) -> bytes:
    """One fuzz input: a seed, sometimes crossed with another, put through one to four mutations."""
    data = rng.choice(seeds)
    if rng.random() < 0.05:
        other = rng.choice(seeds)
        data = data[: rng.randint(0, len(data))] + other[rng.randint(0, len(other)) :]
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
        data = rng.choice(_MUTATORS)(rng, data)
    return data


# ------------------------------------------------------------------------------------------------
# Checking one input


@dataclass(frozen=True, slots=True, kw_only=True)
class Bug:
    """One input that did something other than parse cleanly or raise SipError."""

    signature: str  # what failed and where, e.g. "parse: ValueError at uri.py:48"
    data: bytes
    details: str  # traceback or explanation


def _where(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return "?"
    frame = frames[-1]
    return f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}"


def _crash(stage: str, data: bytes, error: BaseException) -> Bug:
    return Bug(
        signature=f"{stage}: {type(error).__name__} at {_where(error)}",
        data=data,
        details="".join(traceback.format_exception(error)),
    )


def _uri_views(uri: Uri) -> tuple[object, ...]:
    if isinstance(uri, SipUri):
        return (str(uri), uri.user_unescaped, uri.host_port(), uri.transport)
    if isinstance(uri, TelUri):
        return (str(uri), uri.digits)
    return (str(uri),)


def _address_views(address: NameAddress) -> tuple[object, ...]:
    return (str(address), address.display_text, address.tag, _uri_views(address.uri))


def _view(build: Callable[[], object]) -> object:
    """A view's value, or the SipError it raises (allowed: it is still bad input)."""
    try:
        return build()
    except SipError as error:
        return ("SipError", error.reason, error.status_hint)


def _views(message: Request | Response) -> tuple[object, ...]:
    """Everything the proxy reads from a message, to compare a message with its re-parse."""
    if isinstance(message, Request):
        start: tuple[object, ...] = (message.method, _uri_views(message.uri), message.version)
    else:
        start = (message.status, message.reason, message.version)
    return (
        type(message).__name__,
        start,
        message.call_id,
        str(message.cseq),
        # Header bodies with a grammar are parsed when first read: a SipError then is bad input
        # found late, and must be the same after the round trip.
        _view(lambda: _address_views(message.from_)),
        _view(lambda: _address_views(message.to)),
        _view(
            lambda: [(str(v), v.sent_by, v.branch, v.received, v.rport, v.wants_rport) for v in message.vias]
        ),
        _view(lambda: [_address_views(contact) for contact in message.contacts]),
        _view(lambda: [_address_views(route) for route in message.routes]),
        _view(lambda: [_address_views(route) for route in message.record_routes]),
        message.max_forwards,
        message.body,
        message.content_type,
        _view(lambda: message.contact_is_wildcard),
        _view(lambda: message.expires),
        _view(lambda: message.option_tags("supported")),
        _view(lambda: message.option_tags("require")),
    )


def _check_framer(data: bytes, split_at: int) -> Bug | None:
    framer = StreamFramer()
    try:
        frames = framer.feed(data[:split_at])
        frames += framer.feed(data[split_at:])
    except SipError:
        return None
    except Exception as error:
        return _crash("framer", data, error)
    for frame in frames:
        try:
            parse_message(frame)
        except SipError:
            pass
        except Exception as error:
            return _crash("framed parse", frame, error)
    return None


def _difference(first: bytes, second: bytes) -> str:
    """What changed between two serialisations, coarsely, to group round-trip bugs."""
    first_lines, second_lines = first.split(b"\r\n"), second.split(b"\r\n")
    for index, (line, other) in enumerate(zip(first_lines, second_lines, strict=False)):
        if line != other:
            where = "start line" if index == 0 else "a header line"
            if line.rstrip() != other.rstrip():
                return f"content of {where}"
            tails = sorted((line[len(line.rstrip()) :], other[len(other.rstrip()) :]), key=len)
            return f"{where} loses {tails[1][len(tails[0]) :]!r} at its end"
    return "number of lines"


def examine(data: bytes, framer_split: int = -1) -> tuple[int | None, Bug | None]:
    """Run one input; (None when it parsed else the SipError's status_hint, the bug found or None).

    ``framer_split`` is where the input is cut in two for ``StreamFramer``; negative skips that check.
    """
    try:
        message = parse_message(data)
    except SipError as error:
        hint = error.status_hint
        if not 400 <= hint <= 699:
            return 400, Bug(signature=f"status_hint {hint!r}", data=data, details=repr(error))
        if error.partial is not None:
            try:
                bytes(make_response(error.partial, hint, to_tag="fuzz1"))
            except Exception as crash:
                return hint, _crash("error response from partial", data, crash)
        bug = _check_framer(data, framer_split) if framer_split >= 0 else None
        return hint, bug
    except Exception as error:
        return None, _crash("parse", data, error)
    try:
        first = bytes(message)
        views = _views(message)
    except Exception as error:
        return None, _crash("serialise or read views", data, error)
    if len(first) > DEFAULT_LIMITS.max_message_bytes:
        return None, None  # normalising (": " after names) grew it past the size limit: fine
    try:
        again = parse_message(first)
    except Exception as error:
        return None, _crash("re-parse of the serialisation", data, error)
    try:
        second = bytes(again)
        views_again = _views(again)
    except Exception as error:
        return None, _crash("serialise or read views after re-parse", data, error)
    if second != first:
        details = f"first serialisation:  {first!r}\nsecond serialisation: {second!r}"
        signature = f"round trip: serialisation changes ({_difference(first, second)})"
        return None, Bug(signature=signature, data=data, details=details)
    if views_again != views:
        details = f"views: {views!r}\nafter round trip: {views_again!r}"
        return None, Bug(signature="round trip: typed views change", data=data, details=details)
    bug = _check_framer(data, framer_split) if framer_split >= 0 else None
    return None, bug


def shrink(bug: Bug, budget_calls: int = SHRINK_BUDGET_CALLS) -> bytes:
    """A smaller input that shows the same bug signature (greedy: lines, then byte chunks)."""
    calls = 0

    def same(candidate: bytes) -> bool:
        nonlocal calls
        calls += 1
        found = examine(candidate, 0 if bug.signature.startswith("fram") else -1)[1]
        return found is not None and found.signature == bug.signature

    data = bug.data
    if bug.signature.startswith("framed parse"):
        return data
    lines = _split_lines(data)
    index = 0
    while index < len(lines) and calls < budget_calls:
        fewer = lines[:index] + lines[index + 1 :]
        if same(b"".join(fewer)):
            lines = fewer
        else:
            index += 1
    data = b"".join(lines)
    chunk = max(1, len(data) // 2)
    while chunk >= 1 and calls < budget_calls:
        start = 0
        while start < len(data) and calls < budget_calls:
            candidate = data[:start] + data[start + chunk :]
            if same(candidate):
                data = candidate
            else:
                start += chunk
        chunk //= 2
    return data


# ------------------------------------------------------------------------------------------------
# Running phases


@dataclass(slots=True)
class FuzzReport:
    """Counters of a fuzz run."""

    seed: int
    inputs: Counter[str] = field(default_factory=Counter)  # per phase
    parsed: int = 0
    errors: Counter[int] = field(default_factory=Counter)  # SipError count per status_hint
    bug_count: int = 0
    bugs_by_signature: dict[str, list[Bug]] = field(default_factory=dict)  # first few kept each
    bug_totals: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.inputs.values())


class _Runner:
    def __init__(self, report: FuzzReport, rng: random.Random, *, verbose: bool) -> None:
        self.report = report
        self.rng = rng
        self.verbose = verbose

    def run(self, data: bytes, phase: str) -> None:
        report = self.report
        report.inputs[phase] += 1
        hint, bug = examine(data, self.rng.randint(0, len(data)))
        if hint is not None:
            report.errors[hint] += 1
        elif bug is None or bug.signature.startswith("fram"):
            report.parsed += 1
        if bug is not None:
            self.record(bug, phase)

    def record(self, bug: Bug, phase: str) -> None:
        report = self.report
        report.bug_count += 1
        report.bug_totals[bug.signature] += 1
        kept = report.bugs_by_signature.setdefault(bug.signature, [])
        if len(kept) < MAX_PRINTED_PER_BUG:
            kept.append(bug)
            if self.verbose:
                print(f"BUG [{phase}] {bug.signature}\ninput: {bug.data!r}\n{bug.details}", flush=True)


def _random_phase(runner: _Runner, count: int) -> None:
    rng = runner.rng
    for _ in range(count):
        runner.run(mutate(rng), "random mutations")


# Hypothesis strategies ----------------------------------------------------------------------------

_TOKEN_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
_FRAGMENTS = [token.decode("utf-8", "surrogateescape") for token in _TOKENS]

_tokens = st.text(alphabet=_TOKEN_ALPHABET, min_size=1, max_size=12)
_hosts = st.sampled_from(
    [
        "pbx.example.com",
        "10.0.0.1",
        "[2001:db8::1]",
        "[::1]",
        "example",
        "a-b.c",
        "[1::2::3]",
        "-bad",
        "host.",
    ]
)
_ports = st.one_of(st.just(""), st.integers(0, 70_000).map(lambda port: f":{port}"))
_params = st.lists(
    st.tuples(_tokens, st.one_of(st.none(), _tokens, st.sampled_from(_FRAGMENTS))).map(
        lambda pair: f";{pair[0]}" if pair[1] is None else f";{pair[0]}={pair[1]}"
    ),
    max_size=3,
).map("".join)
_sip_uris = st.builds(
    lambda scheme, user, host, port, params: f"{scheme}:{user}{host}{port}{params}",
    st.sampled_from(["sip", "sips", "SIP"]),
    st.one_of(st.just(""), _tokens.map(lambda user: f"{user}@")),
    _hosts,
    _ports,
    _params,
)
_uris = st.one_of(
    _sip_uris,
    st.text(alphabet="+0123456789-.()*#", min_size=1, max_size=12).map(lambda number: f"tel:{number}"),
    st.sampled_from(["mailto:a@b", "urn:x:y", "http://h/", "sip:", "tel:", "::"]),
)
_addresses = st.builds(
    lambda display, uri, bracket, params: f"{display}<{uri}>{params}" if bracket else f"{uri}{params}",
    st.sampled_from(["", '"Alice" ', "Bob ", '"a\\"b" ', '"unterminated ', '"Jürgen" ']),
    _uris,
    st.booleans(),
    _params,
)
_vias = st.builds(
    lambda protocol, transport, host, port, params: f"{protocol}/{transport} {host}{port}{params}",
    st.sampled_from(["SIP/2.0", "sip/2.0", "SIP/3.0", "SIP /2.0", "SIP/2.0/"]),
    st.sampled_from(["UDP", "TCP", "TLS", "WS", "udp", "", "U DP"]),
    _hosts,
    _ports,
    _params,
)
_values = st.one_of(
    _addresses,
    _vias,
    _uris,
    st.integers(-5, 2**32).map(str),
    st.builds(lambda number, method: f"{number} {method}", st.integers(-1, 2**32), _tokens),
    st.lists(st.one_of(st.sampled_from(_FRAGMENTS), _tokens, st.text(max_size=8)), max_size=6).map("".join),
)
_names = st.one_of(
    st.sampled_from([name.decode() for name in _HEADER_NAMES]),
    _tokens,
    st.text(max_size=4),
)
_line_ends = st.sampled_from(["\r\n", "\r\n", "\r\n", "\n", "\r", "\r\n "])
_header_lines = st.builds(
    lambda name, colon, value, end: f"{name}{colon}{value}{end}",
    _names,
    st.sampled_from([": ", ": ", ":", " : ", ":\t", ""]),
    _values,
    _line_ends,
)
_words = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._", min_size=1, max_size=10
)
_valid_hosts = st.sampled_from(["pbx.example.com", "10.0.0.1", "[2001:db8::1]", "carrier.example.net"])
_valid_ports = st.sampled_from(["", ":5060", ":5061", ":65535"])
_valid_params = st.lists(
    st.tuples(_words, st.one_of(st.none(), _words)).map(
        lambda pair: f";{pair[0]}" if pair[1] is None else f";{pair[0]}={pair[1]}"
    ),
    max_size=3,
).map("".join)
_valid_sip_uris = st.builds(
    lambda scheme, user, host, port, params: f"{scheme}:{user}{host}{port}{params}",
    st.sampled_from(["sip", "sips"]),
    st.one_of(st.just(""), _words.map(lambda user: f"{user}@")),
    _valid_hosts,
    _valid_ports,
    _valid_params,
)
_valid_addresses = st.builds(
    lambda display, uri, params: f"{display}<{uri}>{params}",
    st.sampled_from(["", '"Alice" ', "Bob ", '"J\\"G\\" Groß" ']),
    _valid_sip_uris,
    _valid_params,
)
_valid_vias = st.builds(
    lambda transport, host, port, branch, params: (
        f"SIP/2.0/{transport} {host}{port};branch=z9hG4bK{branch}{params}"
    ),
    st.sampled_from(["UDP", "TCP", "TLS"]),
    _valid_hosts,
    _valid_ports,
    _words,
    _valid_params,
)


# Hypothesis leans towards the simplest choice (the first element, the lower bound): make it the valid one.
_nine_in_ten = st.sampled_from([*[True] * 9, False])


@st.composite
def sip_messages(draw: st.DrawFn) -> bytes:
    """Start line, a mostly valid mandatory header set, random header lines, a body.

    Each piece comes from a valid strategy nine times in ten and from a wild one otherwise, so
    that a good share of the messages parses and reaches the round-trip check.
    """

    def mostly(valid: st.SearchStrategy[str], wild: st.SearchStrategy[str]) -> str:
        return draw(valid if draw(_nine_in_ten) else wild)

    is_response = draw(st.booleans())
    method = mostly(st.sampled_from(["INVITE", "BYE", "ACK", "OPTIONS", "REGISTER", "NOTIFY"]), _tokens)
    if is_response:
        status = mostly(st.integers(100, 699).map(str), st.integers(0, 1000).map(str))
        reason = draw(st.sampled_from(["OK", "", "Ringing", "Grüße"]))
        start = f"SIP/2.0 {status} {reason}\r\n"
    else:
        version = mostly(st.just("SIP/2.0"), st.sampled_from(["sip/2.0", "SIP/3.0", "SIP/2", "SIP/2.0 "]))
        start = f"{method} {mostly(_valid_sip_uris, _uris)} {version}\r\n"
    mandatory = [
        f"Via: {mostly(_valid_vias, _vias)}\r\n",
        f"From: {mostly(_valid_addresses, _addresses)};tag={draw(_words)}\r\n",
        f"To: {mostly(_valid_addresses, _addresses)}\r\n",
        f"Call-ID: {draw(_words)}@{mostly(_valid_hosts, _hosts)}\r\n",
        f"CSeq: {draw(st.integers(0, 2**31))} {method}\r\n",
    ]
    lines = [line for line in mandatory if draw(_nine_in_ten)]
    lines.extend(draw(st.lists(_header_lines, max_size=draw(st.sampled_from([0, 0, 1, 3, 8])))))
    order = draw(st.permutations(range(len(lines))))
    body = draw(st.binary(max_size=40))
    length = draw(st.one_of(st.just(len(body)), st.just(len(body)), st.none(), st.integers(0, 80)))
    head = start + "".join(lines[index] for index in order)
    if length is not None:
        head += f"Content-Length: {length}\r\n"
    return (head + "\r\n").encode("utf-8", "surrogatepass") + body


def _hypothesis_phase(
    runner: _Runner, strategy: st.SearchStrategy[bytes], examples: int, seed: int, phase: str
) -> None:
    if examples <= 0:
        return

    @hypothesis.settings(
        max_examples=examples,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.seed(seed)
    @hypothesis.given(strategy)
    def run(data: bytes) -> None:
        runner.run(data, phase)

    run()


def run_fuzz(
    count: int = DEFAULT_COUNT,
    seed: int = DEFAULT_SEED,
    hypothesis_examples: int | None = None,
    *,
    verbose: bool = False,
) -> FuzzReport:
    """Feed ``count`` inputs to the parser; ``hypothesis_examples`` of them from hypothesis.

    Seeds that fail to parse are bugs of their own (``seed corpus``).
    """
    if hypothesis_examples is None:
        hypothesis_examples = int(count * HYPOTHESIS_SHARE)
    hypothesis_examples = min(hypothesis_examples, count)
    report = FuzzReport(seed=seed)
    runner = _Runner(report, random.Random(seed), verbose=verbose)
    started = time.perf_counter()
    for data in SEEDS:
        try:
            parse_message(data)
        except SipError as error:
            runner.record(
                Bug(signature="seed corpus: a seed does not parse", data=data, details=repr(error)), "seeds"
            )
        runner.run(data, "seed corpus")
    binary_examples = hypothesis_examples // 2
    structured_examples = hypothesis_examples - binary_examples
    _random_phase(runner, count - hypothesis_examples - len(SEEDS))
    _hypothesis_phase(runner, st.binary(max_size=2_000), binary_examples, seed, "hypothesis binary()")
    _hypothesis_phase(runner, sip_messages(), structured_examples, seed, "hypothesis header lines")
    report.elapsed_s = time.perf_counter() - started
    return report


def format_report(report: FuzzReport, *, shrink_bugs: bool = True) -> str:
    lines = [
        f"SIP parser fuzz, seed {report.seed}: {report.total} inputs in {report.elapsed_s:.1f} s "
        f"({report.total / max(report.elapsed_s, 1e-9):.0f} inputs/s)",
    ]
    lines.extend(f"  {phase:<26} {number:>8}" for phase, number in report.inputs.items())
    lines.append(f"parsed (and round-trip stable): {report.parsed}")
    lines.append(f"SipError: {sum(report.errors.values())}")
    lines.extend(f"  status_hint {hint}: {number:>8}" for hint, number in sorted(report.errors.items()))
    lines.append(f"bugs: {report.bug_count}")
    for signature, total in report.bug_totals.most_common():
        lines.append(f"  {total:>6} x {signature}")
        kept = report.bugs_by_signature.get(signature)
        if kept and shrink_bugs:
            lines.append(f"         smallest repro found: {shrink(kept[0])!r}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: prints the counts; returns 1 when a bug was found, else 0."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.fuzz_parser", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--count", type=int, default=DEFAULT_COUNT, help="inputs in all (default %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (default %(default)s)")
    parser.add_argument(
        "--hypothesis-examples",
        type=int,
        default=None,
        help=f"inputs from hypothesis, part of --count (default {HYPOTHESIS_SHARE:.0%} of --count)",
    )
    args = parser.parse_args(argv)
    if args.count < len(SEEDS):
        parser.error(f"--count must be at least {len(SEEDS)}")
    report = run_fuzz(args.count, args.seed, args.hypothesis_examples, verbose=True)
    print(format_report(report))
    return 1 if report.bug_count else 0


if __name__ == "__main__":
    sys.exit(main())
