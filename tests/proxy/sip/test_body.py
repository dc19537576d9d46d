"""The SDP in a message body: whole, or one part of a multipart body (RFC 5621, RFC 2046 §5.1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.sip.body import sdp_body
from proxy.sip.errors import SipError
from proxy.sip.message import Message

SDP = b"v=0\r\no=- 1 1 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
ISUP = b"\x01\x10\x60\x01\x0a\x00\x02\x0a\x08\x83\x90\x89\x73\x81\x15\x0f"


def message(content_type: str | None, body: bytes) -> Message:
    headers = [] if content_type is None else [("Content-Type", content_type)]
    return Message(headers, body)


def multipart(
    boundary: str, *parts: tuple[str, bytes], preamble: bytes = b"", epilogue: bytes = b""
) -> bytes:
    """Parts as (header lines, body), each header line ending in CRLF."""
    out = preamble
    for index, (headers, body) in enumerate(parts):
        out += (b"" if index == 0 and not preamble else b"\r\n") + f"--{boundary}\r\n{headers}\r\n".encode()
        out += body
    return out + f"\r\n--{boundary}--".encode() + epilogue


def test_a_plain_sdp_body_is_the_sdp() -> None:
    assert sdp_body(message("application/sdp", SDP)) == SDP
    assert sdp_body(message("Application/SDP; charset=utf-8", SDP)) == SDP


def test_no_body_and_other_bodies_hold_no_sdp() -> None:
    assert sdp_body(message("application/sdp", b"")) is None
    assert sdp_body(message(None, b"")) is None
    assert sdp_body(message("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n")) is None


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/mixed;boundary=unique-boundary-1",
        'multipart/mixed; boundary="unique-boundary-1"',
        "Multipart/Mixed ; Boundary=unique-boundary-1",
    ],
)
def test_the_sdp_part_beside_an_optional_isup_part(content_type: str) -> None:
    body = multipart(
        "unique-boundary-1",
        ("Content-Type: application/sdp\r\n", SDP),
        (
            "Content-Type: application/isup;version=itu-t92+\r\nContent-Disposition: signal;handling=optional\r\n",
            ISUP,
        ),
        preamble=b"preamble text\r\n",
        epilogue=b"\r\nepilogue",
    )
    assert sdp_body(message(content_type, body)) == SDP


def test_the_sdp_part_may_come_second_and_be_nested() -> None:
    inner = multipart("inner", ("Content-Type: application/sdp\r\n", SDP))
    body = multipart(
        "outer",
        ("Content-Type: text/plain\r\nContent-Disposition: render;handling=optional\r\n", b"hello"),
        ("Content-Type: multipart/alternative;boundary=inner\r\n", inner),
    )
    assert sdp_body(message("multipart/mixed;boundary=outer", body)) == SDP


def test_of_alternatives_the_first_sdp_is_taken() -> None:
    other = SDP.replace(b"4000", b"5000")
    body = multipart(
        "b", ("Content-Type: application/sdp\r\n", SDP), ("Content-Type: application/sdp\r\n", other)
    )
    assert sdp_body(message("multipart/alternative;boundary=b", body)) == SDP


@pytest.mark.parametrize(
    "disposition",
    ["", "Content-Disposition: signal\r\n", "Content-Disposition: signal;handling=required\r\n"],
    ids=["no-disposition", "no-handling", "required"],
)
def test_a_part_that_must_be_understood_is_refused_with_415(disposition: str) -> None:
    # RFC 3261 §20.11: without a handling parameter a part is required.
    body = multipart(
        "b",
        ("Content-Type: application/sdp\r\n", SDP),
        (f"Content-Type: application/isup\r\n{disposition}", ISUP),
    )
    with pytest.raises(SipError) as raised:
        sdp_body(message("multipart/mixed;boundary=b", body))
    assert raised.value.status_hint == 415
    assert "application/isup" in raised.value.reason


def test_a_multipart_body_without_sdp_holds_none() -> None:
    body = multipart(
        "b", ("Content-Type: application/isup\r\nContent-Disposition: signal;handling=optional\r\n", ISUP)
    )
    assert sdp_body(message("multipart/mixed;boundary=b", body)) is None


@pytest.mark.parametrize(
    ("content_type", "body", "why"),
    [
        ("multipart/mixed", multipart("b", ("Content-Type: application/sdp\r\n", SDP)), "without a boundary"),
        (
            "multipart/mixed;boundary=x",
            multipart("b", ("Content-Type: application/sdp\r\n", SDP)),
            "its boundary",
        ),
        (
            "multipart/mixed;boundary=b",
            b"--b\r\nContent-Type: application/sdp\r\n\r\n" + SDP,
            "closing boundary",
        ),
        ("multipart/mixed;boundary=b", b"--b", "delimiter line"),
        ("multipart/mixed;boundary=b", b"--b\r\nContent-Type: application/sdp\r\n--b--", "blank line"),
        ("multipart/mixed;boundary=b", b"--b\r\nno colon here\r\n\r\nx\r\n--b--", "malformed header"),
    ],
    ids=[
        "no-boundary-parameter",
        "boundary-absent",
        "unclosed",
        "cut-delimiter",
        "no-blank-line",
        "bad-header",
    ],
)
def test_a_malformed_multipart_body_is_a_400(content_type: str, body: bytes, why: str) -> None:
    with pytest.raises(SipError) as raised:
        sdp_body(message(content_type, body))
    assert raised.value.status_hint == 400
    assert why in raised.value.reason


def test_a_part_without_headers_is_text_that_must_be_understood() -> None:
    # RFC 2046 §5.1: a part without Content-Type is text/plain; it is required (RFC 3261 §20.11).
    body = multipart("b", ("Content-Type: application/sdp\r\n", SDP), ("", b"plain words"))
    with pytest.raises(SipError) as raised:
        sdp_body(message("multipart/mixed;boundary=b", body))
    assert raised.value.status_hint == 415


@given(
    st.binary(max_size=300),
    st.sampled_from(["multipart/mixed;boundary=b", "multipart/mixed", "application/sdp"]),
)
def test_any_body_gives_sdp_none_or_a_clear_sip_error(body: bytes, content_type: str) -> None:
    status: int | None = None
    found: bytes | None = None
    try:
        found = sdp_body(message(content_type, body))
    except SipError as error:
        status = error.status_hint
    assert status in (None, 400, 415)
    assert found is None or found in body
