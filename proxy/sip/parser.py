"""Bytes to SIP messages (RFC 3261 §7, §18.3), for datagrams and for byte streams.

``parse_message`` takes one complete message (a UDP datagram) and returns a ``Request`` or
``Response``, or raises ``SipError`` whose ``status_hint`` says how a server should answer. When
the fields needed to build a response (Via, From, To, Call-ID, CSeq) were readable, the error
carries the half-parsed request in ``partial`` so the transport can send that response.

``StreamFramer`` cuts a TCP byte stream into messages by Content-Length (§18.3).
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy.sip.errors import SipError
from proxy.sip.grammar import TOKEN_CHARS
from proxy.sip.headers import header_key
from proxy.sip.message import SIP_VERSION, Headers, Message, Request, Response
from proxy.sip.uri import SipUri, TelUri, parse_uri

__all__ = ["DEFAULT_LIMITS", "ParserLimits", "StreamFramer", "parse_message"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ParserLimits:
    """Size limits; exceeding them raises 513 (whole message) or 413 (body)."""

    max_message_bytes: int = 65_535
    max_body_bytes: int = 60_000
    max_header_fields: int = 256


DEFAULT_LIMITS = ParserLimits()

_SUPPORTED_URI_SCHEMES = (SipUri, TelUri)
_REQUIRED_HEADERS = ("via", "from", "to", "call-id", "cseq")
_SINGLE_HEADERS = ("from", "to", "call-id", "cseq", "max-forwards", "content-length", "content-type")


def _find_header_end(data: bytes | bytearray, start: int) -> tuple[int, int]:
    """(end of header block, start of body), accepting CRLF and bare LF line ends (§7.5)."""
    crlf = data.find(b"\n\r\n", start)
    bare = data.find(b"\n\n", start)
    if crlf >= 0 and (bare < 0 or crlf < bare):
        return crlf, crlf + 3
    if bare >= 0:
        return bare, bare + 2
    return -1, -1


def _skip_leading_line_ends(data: bytes) -> int:
    # §7.5: implementations SHOULD ignore CRLFs that precede the start line.
    start = 0
    length = len(data)
    while start < length and data[start] in (0x0D, 0x0A):
        start += 1
    return start


def _is_token(text: str) -> bool:
    return bool(text) and all(ch in TOKEN_CHARS for ch in text)


def _split_header_lines(head: str, limits: ParserLimits) -> tuple[str, list[tuple[str, str, str]]]:
    """Start line and (name, key, value) fields with folding undone (§7.3.1)."""
    lines = head.split("\n")
    start_line = lines[0].rstrip("\r")
    fields: list[tuple[str, str, str]] = []
    for raw_line in lines[1:]:
        line = raw_line.rstrip("\r")
        if line[:1] in (" ", "\t"):
            if not fields:
                raise SipError("continuation line before the first header", 400)
            name, key, value = fields[-1]
            continuation = line.strip()
            if continuation:
                fields[-1] = (name, key, f"{value} {continuation}" if value else continuation)
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise SipError(f"header line without colon: {line[:40]!r}", 400)
        name = name.rstrip(" \t")
        if not _is_token(name):
            raise SipError(f"bad header name {name[:40]!r}", 400)
        fields.append((name, header_key(name), value.strip(" \t")))
    return start_line, fields


def _check_version(version: str, *, is_request: bool) -> str:
    upper = version.upper()
    if upper == SIP_VERSION:
        return SIP_VERSION
    prefix, _, number = upper.partition("/")
    major, dot, minor = number.partition(".")
    if prefix == "SIP" and dot and major.isdigit() and minor.isdigit():
        raise SipError(f"unsupported SIP version {version!r}", 505 if is_request else 400)
    raise SipError(f"bad SIP version {version!r}", 400)


def _parse_start_line(start_line: str, headers: Headers) -> Request | Response:
    if start_line[:4].upper() == "SIP/":
        version, _, rest = start_line.partition(" ")
        _check_version(version, is_request=False)
        code, _, reason = rest.partition(" ")
        if len(code) != 3 or not code.isascii() or not code.isdigit() or not 100 <= int(code) <= 699:
            raise SipError(f"bad status code {code!r}", 400)
        return Response(int(code), reason, headers)
    parts = start_line.split(" ")
    if len(parts) != 3 or not all(parts):
        raise SipError(f"bad request line {start_line[:80]!r}", 400)
    method, uri_text, version = parts
    if not _is_token(method):
        raise SipError(f"bad method {method[:40]!r}", 400)
    version = _check_version(version, is_request=True)
    uri = parse_uri(uri_text)
    if not isinstance(uri, _SUPPORTED_URI_SCHEMES):
        raise SipError(f"unsupported URI scheme {uri.scheme!r}", 416)  # §8.2.2.1
    return Request(method, uri, headers)


def _validate(message: Message) -> None:
    """Semantic checks of §8.1.1 and §20 that every message must pass; fills the typed caches."""
    fields = message.headers.fields
    for key in _REQUIRED_HEADERS:
        if not fields(key):
            raise SipError(f"missing mandatory header {key}", 400)
    for key in _SINGLE_HEADERS:
        if len(fields(key)) > 1:
            raise SipError(f"repeated single-value header {key}", 400)
    message.call_id  # noqa: B018  (parse and cache)
    cseq = message.cseq
    message.from_  # noqa: B018
    message.to  # noqa: B018
    if not message.vias:
        raise SipError("empty Via header", 400)
    message.contacts  # noqa: B018
    message.routes  # noqa: B018
    message.record_routes  # noqa: B018
    message.max_forwards  # noqa: B018
    if isinstance(message, Request) and cseq.method != message.method:
        raise SipError("CSeq method does not match the request method", 400)  # §8.1.1.5


def _respondable(message: Message) -> bool:
    """True when a response to ``message`` can be built (§8.2.6.2 needs these five)."""
    try:
        message.call_id  # noqa: B018
        message.cseq  # noqa: B018
        message.from_  # noqa: B018
        message.to  # noqa: B018
        return bool(message.vias)
    except SipError:
        return False


def _attach_partial(error: SipError, start_line: str, headers: Headers) -> None:
    """Keep what an error response needs when the request line itself was bad (416, 505, 400)."""
    if start_line[:4].upper() == "SIP/":
        return
    method = start_line.split(" ", 1)[0]
    placeholder = Request(method if _is_token(method) else "UNKNOWN", SipUri(host="invalid"), headers)
    if _respondable(placeholder):
        error.partial = placeholder


def parse_message(data: bytes, limits: ParserLimits = DEFAULT_LIMITS) -> Request | Response:
    """Parse one whole SIP message (one datagram). Raises ``SipError``.

    Status hints: 400 malformed, 413 body too large, 416 unsupported Request-URI scheme,
    505 unsupported version, 513 message too large. A body longer than Content-Length is cut
    (§18.3); a shorter one is an error; with no Content-Length the body is the rest of the datagram.
    """
    if len(data) > limits.max_message_bytes:
        raise SipError("message too large", 513)
    start = _skip_leading_line_ends(data)
    if start == len(data):
        raise SipError("empty message", 400)
    head_end, body_start = _find_header_end(data, start)
    if head_end < 0:
        # No empty line: accept a message that ends right after its last header line.
        if data[-1:] != b"\n":
            raise SipError("header section is not terminated by an empty line", 400)
        head_end, body_start = len(data) - 1, len(data)
    head = data[start:head_end].decode("utf-8", "surrogateescape")
    start_line, raw_fields = _split_header_lines(head, limits)
    headers = Headers._from_keyed(raw_fields)
    try:
        message = _parse_start_line(start_line, headers)
    except SipError as error:
        _attach_partial(error, start_line, headers)
        raise
    body = data[body_start:]
    try:
        if len(raw_fields) > limits.max_header_fields:
            raise SipError("too many header fields", 513)
        declared = message.content_length
        if declared is not None:
            if declared > len(body):
                raise SipError("body shorter than Content-Length", 400)
            body = body[:declared]
        if len(body) > limits.max_body_bytes:
            raise SipError("body too large", 413)
        message.body = body
        _validate(message)
    except SipError as error:
        if isinstance(message, Request) and _respondable(message):
            error.partial = message
        raise
    return message


class StreamFramer:
    """Splits a stream transport's bytes into whole messages by Content-Length (§18.3).

    ``feed`` returns the complete messages found so far (as bytes, for ``parse_message``); CRLF
    keep-alives between messages (RFC 5626 §3.5.1) are skipped and counted in ``keepalives``.
    Raises ``SipError`` when the stream cannot be framed any more (oversized headers or body, bad
    Content-Length); the connection should then be closed. A message without Content-Length on a
    stream is taken to have an empty body.
    """

    def __init__(self, limits: ParserLimits = DEFAULT_LIMITS) -> None:
        self._limits = limits
        self._buffer = bytearray()
        self._body_length: int | None = None
        self._head_length = 0
        self.keepalives = 0
        self._crlf_run = 0

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        messages: list[bytes] = []
        while True:
            message = self._next_message()
            if message is None:
                return messages
            messages.append(message)

    def _next_message(self) -> bytes | None:
        buffer = self._buffer
        if self._body_length is None:
            self._skip_keepalives()
            head_end, body_start = _find_header_end(buffer, 0)
            if head_end < 0:
                if len(buffer) > self._limits.max_message_bytes:
                    raise SipError("header section too large", 513)
                return None
            self._head_length = body_start
            self._body_length = self._declared_length(bytes(buffer[:head_end]))
        total = self._head_length + self._body_length
        if len(buffer) < total:
            return None
        message = bytes(buffer[:total])
        del buffer[:total]
        self._body_length = None
        return message

    def _skip_keepalives(self) -> None:
        buffer = self._buffer
        while buffer[:2] == b"\r\n":
            del buffer[:2]
            self._crlf_run += 1
            if self._crlf_run == 2:  # a ping is CRLFCRLF; a lone CRLF is a pong
                self.keepalives += 1
                self._crlf_run = 0
        if buffer and buffer[:1] != b"\r":
            self._crlf_run = 0

    def _declared_length(self, head: bytes) -> int:
        length = 0
        for line in head.split(b"\n")[1:]:
            name, colon, value = line.partition(b":")
            if colon and name.strip().lower() in (b"content-length", b"l"):
                text = value.strip()
                if not text.isdigit() or len(text) > 10:
                    raise SipError("bad Content-Length on stream", 400)
                length = int(text)
        if length > self._limits.max_body_bytes:
            raise SipError("body too large", 413)
        return length
