"""The session description in a SIP message body (RFC 3261 §7.4, RFC 5621).

SDP comes as the whole body (``application/sdp``) or as one part of a multipart body: carriers that
interwork with the telephone network send it beside an ISUP part (``application/isup``, RFC 3204;
SIP-I, ITU-T Q.1912.5). callherald reads the SDP part and passes no other part on. A part it does
not understand may be dropped only when its ``Content-Disposition`` says ``handling=optional``; the
default handling is ``required``, and a message with a required part it does not understand is
refused with 415 (RFC 5621 §9.1, RFC 3261 §20.11).
"""

from __future__ import annotations

from typing import Final

from proxy.sip.errors import SipError
from proxy.sip.message import Message

__all__ = ["ACCEPTED_BODY_TYPES", "SDP_TYPE", "sdp_body"]

SDP_TYPE: Final = "application/sdp"
ACCEPTED_BODY_TYPES: Final = "application/sdp, multipart/mixed, multipart/alternative"
"""For the Accept header of a 415 (RFC 3261 §21.4.13)."""

_MAX_DEPTH: Final = 3  # multipart within multipart, as deep as this
_DEFAULT_PART_TYPE: Final = "text/plain"  # RFC 2046 §5.1: a part without Content-Type


def sdp_body(message: Message) -> bytes | None:
    """The SDP in ``message``'s body, None when it has no body or the body holds no SDP.

    Raises ``SipError`` (415) when the body is a multipart one with a required part that is not
    SDP, or (400) when it cannot be split into parts.
    """
    if not message.body:
        return None
    return _sdp_in(message.headers.get("content-type") or "", message.body, 0)


def _sdp_in(content_type: str, body: bytes, depth: int) -> bytes | None:
    media_type, parameters = _media_type(content_type)
    if media_type == SDP_TYPE:
        return body
    if not media_type.startswith("multipart/") or depth >= _MAX_DEPTH:
        return None
    boundary = parameters.get("boundary")
    if not boundary:
        raise SipError(f"{media_type} body without a boundary", 400)
    found: bytes | None = None
    for headers, part in _parts(body, boundary.encode("utf-8", "surrogateescape")):
        part_type = headers.get("content-type", _DEFAULT_PART_TYPE)
        sdp = _sdp_in(part_type, part, depth + 1)
        if sdp is not None:
            found = sdp if found is None else found  # multipart/alternative: the first is taken
        elif _handling(headers.get("content-disposition", "")) == "required":
            shown = _media_type(part_type)[0]
            raise SipError(f"a body part of type {shown} that callherald must understand (RFC 5621 §9)", 415)
    return found


def _parts(body: bytes, boundary: bytes) -> list[tuple[dict[str, str], bytes]]:
    # RFC 2046 §5.1.1: parts lie between "--boundary" lines, the last one "--boundary--"; the
    # CRLF before a delimiter belongs to the delimiter; text before the first is ignored.
    delimiter = b"--" + boundary
    text = b"\r\n" + body
    start = text.find(b"\r\n" + delimiter)
    if start < 0:
        raise SipError("multipart body without its boundary", 400)
    parts: list[tuple[dict[str, str], bytes]] = []
    position = start + 2 + len(delimiter)
    while True:
        if text.startswith(b"--", position):
            return parts  # the close delimiter
        line_end = text.find(b"\r\n", position)
        if line_end < 0:
            raise SipError("multipart body ends inside a delimiter line", 400)
        following = text.find(b"\r\n" + delimiter, line_end)
        if following < 0:
            raise SipError("multipart body without its closing boundary", 400)
        parts.append(_part(text[line_end + 2 : following]))
        position = following + 2 + len(delimiter)


def _part(raw: bytes) -> tuple[dict[str, str], bytes]:
    # A part's header fields (lower-case names), a blank line, its body (RFC 2046 §5.1.1).
    if raw.startswith(b"\r\n"):
        return {}, raw[2:]
    head, separator, content = raw.partition(b"\r\n\r\n")
    if not separator:
        raise SipError("multipart body part without the blank line after its headers", 400)
    headers: dict[str, str] = {}
    for line in head.decode("utf-8", "surrogateescape").split("\r\n"):
        name, colon, value = line.partition(":")
        if not colon:
            raise SipError(f"malformed header in a multipart body part: {line[:40]!r}", 400)
        headers.setdefault(name.strip().lower(), value.strip())
    return headers, content


def _media_type(value: str) -> tuple[str, dict[str, str]]:
    # "multipart/mixed;boundary=unique-boundary-1" -> ("multipart/mixed", {"boundary": ...}).
    media_type, *parameters = value.split(";")
    found: dict[str, str] = {}
    for parameter in parameters:
        name, _, raw = parameter.partition("=")
        found[name.strip().lower()] = raw.strip().strip('"')
    return media_type.strip().lower(), found


def _handling(disposition: str) -> str:
    # RFC 3261 §20.11: without a handling parameter a part is required.
    _, parameters = _media_type(disposition)
    return parameters.get("handling", "required").lower()
