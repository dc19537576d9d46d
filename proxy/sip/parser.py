"""Bytes to SIP messages (RFC 3261 §7, §18.3), for datagrams and for byte streams.

``parse_message`` takes one complete message (a UDP datagram) and returns a ``Request`` or
``Response``, or raises ``SipError`` whose ``status_hint`` says how a server should answer. When
the fields needed to build a response (Via, From, To, Call-ID, CSeq) were readable, the error
carries the half-parsed request in ``partial`` so the transport can send that response.

``StreamFramer`` cuts a TCP byte stream into messages by Content-Length (§18.3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from operator import itemgetter

from proxy.sip.errors import SipError
from proxy.sip.grammar import is_token
from proxy.sip.headers import CSEQ_PATTERN, MAX_CSEQ, CSeq, header_key
from proxy.sip.message import SIP_VERSION, Headers, Message, Request, Response
from proxy.sip.uri import SipUri, check_uri

__all__ = ["DEFAULT_LIMITS", "ParserLimits", "StreamFramer", "parse_message"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ParserLimits:
    """Size limits in bytes; exceeding them raises 513 (whole message) or 413 (body)."""

    max_message_bytes: int = 65_535
    max_body_bytes: int = 60_000


DEFAULT_LIMITS = ParserLimits()

_SUPPORTED_URI_SCHEMES = frozenset({"sip", "sips", "tel"})
_REQUIRED_HEADERS = frozenset({"via", "from", "to", "call-id", "cseq"})
_KEY_OF = itemgetter(1)
_SINGLE_HEADERS = frozenset(
    {"from", "to", "call-id", "cseq", "max-forwards", "content-length", "content-type"}
)


def _find_header_end(data: bytes | bytearray, start: int) -> tuple[int, int]:
    """(end of header block, start of body), accepting CRLF and bare LF line ends (§7.5)."""
    crlf = data.find(b"\n\r\n", start)
    bare = data.find(b"\n\n", start, crlf if crlf >= 0 else len(data))
    if bare >= 0:
        return bare, bare + 2
    if crlf >= 0:
        return crlf, crlf + 3
    return -1, -1


def _skip_leading_line_ends(data: bytes) -> int:
    # §7.5: implementations SHOULD ignore CRLFs that precede the start line.
    start = 0
    length = len(data)
    while start < length and data[start] in (0x0D, 0x0A):
        start += 1
    return start


_is_token = is_token
# A header line: a token name, optional blanks, a colon, the value (§7.3.1, HCOLON).
_HEADER_LINE = re.compile(r"([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*:[ \t]*(.*)")


# Every header line of a block without folding, in one pass: "\n" name HCOLON value (§7.3.1).
_NAME_LINES = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+(?:\n[A-Za-z0-9\-.!%*_+`'~]+)*")
_NAME = itemgetter(0)
_SEPARATOR = itemgetter(1)
_KEY_CACHE: dict[str, str] = {}
_DIGITS = re.compile(r"[0-9]{1,10}")
_CSEQ = CSEQ_PATTERN
_KEY_CACHE_LIMIT = 512


def _key(name: str) -> str:
    key = _KEY_CACHE.get(name)
    if key is None:
        key = header_key(name)
        if len(_KEY_CACHE) < _KEY_CACHE_LIMIT:
            _KEY_CACHE[name] = key
    return key


def _field_value(value: str) -> str:
    value = value.rstrip(" \t\r")
    if "\r" in value:
        raise SipError("bare CR inside a header line", 400)
    return value


def _split_header_lines(head: str) -> tuple[str, list[tuple[str, str, str]]]:
    """Start line and (name, key, value) fields with folding undone (§7.3.1)."""
    carriage_returns = head.count("\r")
    lines = head.split("\r\n") if carriage_returns else head.split("\n")
    if carriage_returns and (len(lines) != carriage_returns + 1 or carriage_returns != head.count("\n")):
        # Bare CR or mixed line ends: every CR must end a line (§7: CRLF, leniently LF).
        start_line, _, rest = head.partition("\n")
        start_line = start_line.removesuffix("\r")
        if "\r" in start_line:
            raise SipError("bare CR in the start line", 400)
        return start_line, _split_folded(rest)
    start_line = lines[0]
    if len(lines) == 1:
        return start_line, []
    # Fast path: every line is "token: value". A folded line, a line without colon or a bad
    # name makes the check fail, and the line-by-line path takes over with a precise error.
    parts = [line.partition(":") for line in lines[1:]]
    if "" not in map(_SEPARATOR, parts) and _NAME_LINES.fullmatch("\n".join(map(_NAME, parts))):
        known = _KEY_CACHE.get
        return start_line, [(name, known(name) or _key(name), value.strip(" \t")) for name, _, value in parts]
    return start_line, _split_folded("\n".join(lines[1:]))


def _split_folded(rest: str) -> list[tuple[str, str, str]]:
    """The line-by-line path: folded headers, and precise errors for bad lines."""
    fields: list[tuple[str, str, str]] = []
    for raw_line in rest.split("\n"):
        line = raw_line.rstrip("\r")
        if line[:1] in (" ", "\t"):
            if not fields:
                raise SipError("continuation line before the first header", 400)
            name, key, value = fields[-1]
            continuation = _field_value(line.strip(" \t"))
            if continuation:
                fields[-1] = (name, key, f"{value} {continuation}" if value else continuation)
            continue
        match = _HEADER_LINE.fullmatch(line)
        if match is None:
            if ":" not in line:
                raise SipError(f"header line without colon: {line[:40]!r}", 400)
            raise SipError(f"bad header name {line.partition(':')[0][:40]!r}", 400)
        name, value = match.groups()
        fields.append((name, _key(name), _field_value(value)))
    return fields


def _check_version(version: str, *, is_request: bool) -> str:
    if version == SIP_VERSION:
        return SIP_VERSION
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
        return Response._parsed(int(code), reason, headers)
    parts = start_line.split(" ")
    if len(parts) != 3 or not all(parts):
        raise SipError(f"bad request line {start_line[:80]!r}", 400)
    method, uri_text, version = parts
    if not _is_token(method):
        raise SipError(f"bad method {method[:40]!r}", 400)
    _check_version(version, is_request=True)
    scheme = check_uri(uri_text)
    if scheme not in _SUPPORTED_URI_SCHEMES:
        raise SipError(f"unsupported URI scheme {scheme!r}", 416)  # §8.2.2.1
    return Request._parsed(method, uri_text, headers)


def _validate(message: Message, fields: list[tuple[str, str, str]]) -> str | None:
    """The checks of §8.1.1 and §20 every message must pass before it is handed on.

    Mandatory headers present, single-valued ones not repeated, Call-ID, CSeq (its method equal to
    the request's, §8.1.1.5) and Max-Forwards well formed. Header fields with a grammar of their
    own (Via, From, To, Contact, Route, Record-Route, the auth headers) are parsed when first read,
    raising SipError(400) then; ``Message.validate()`` reads them all at once. Returns the
    Content-Length value as written, None when absent.
    """
    keys = list(map(_KEY_OF, fields))
    present = set(keys)
    if not _REQUIRED_HEADERS.issubset(present):
        missing = next(key for key in sorted(_REQUIRED_HEADERS) if key not in present)
        raise SipError(f"missing mandatory header {missing}", 400)
    if len(present) != len(keys) and sum(map(_SINGLE_HEADERS.__contains__, keys)) != len(
        _SINGLE_HEADERS.intersection(present)
    ):
        repeated = next(key for key in sorted(_SINGLE_HEADERS) if keys.count(key) > 1)
        raise SipError(f"repeated single-value header {repeated}", 400)
    call_id = fields[keys.index("call-id")][2]
    if not call_id or " " in call_id or "\t" in call_id:
        raise SipError(f"bad Call-ID {call_id!r}", 400)
    cseq_text = fields[keys.index("cseq")][2]
    cseq = _CSEQ.fullmatch(cseq_text)
    if cseq is None or int(cseq[1]) > MAX_CSEQ:
        CSeq.parse(cseq_text)  # raises the precise SipError
    assert cseq is not None
    message.headers._cache["call-id"] = call_id
    if "max-forwards" in present:
        max_forwards = fields[keys.index("max-forwards")][2]
        if not _DIGITS.fullmatch(max_forwards):
            raise SipError(f"bad Max-Forwards value {max_forwards!r}", 400)
    if isinstance(message, Request) and cseq[2] != message.method:
        raise SipError("CSeq method does not match the request method", 400)  # §8.1.1.5
    return fields[keys.index("content-length")][2] if "content-length" in present else None


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
    start = _skip_leading_line_ends(data) if data[:1] in (b"\r", b"\n") else 0
    if start == len(data):
        raise SipError("empty message", 400)
    first_newline = data.find(b"\n", start)
    crlf_end = data.find(b"\r\n\r\n", start) if data[first_newline - 1 : first_newline] == b"\r" else -1
    if crlf_end >= 0:  # the usual CRLF message: its empty line is the first CRLFCRLF
        head_end, body_start = crlf_end + 1, crlf_end + 4
    else:
        head_end, body_start = _find_header_end(data, start)
    if head_end < 0:
        # No empty line: accept a message that ends right after its last header line.
        if data[-1:] != b"\n":
            raise SipError("header section is not terminated by an empty line", 400)
        head_end, body_start = len(data) - 1, len(data)
    if data[head_end - 1 : head_end] == b"\r":
        head_end -= 1  # the CR of the last header line's CRLF
    head = data[start:head_end].decode("utf-8", "surrogateescape")
    start_line, raw_fields = _split_header_lines(head)
    headers = Headers._from_keyed(raw_fields)
    try:
        message = _parse_start_line(start_line, headers)
    except SipError as error:
        _attach_partial(error, start_line, headers)
        raise
    body = data[body_start:]
    try:
        declared = _validate(message, raw_fields)
        if declared is not None:
            if _DIGITS.fullmatch(declared) is None:
                raise SipError(f"bad Content-Length value {declared!r}", 400)
            if int(declared) > len(body):
                raise SipError("body shorter than Content-Length", 400)
            body = body[: int(declared)]
        if len(body) > limits.max_body_bytes:
            raise SipError("body too large", 413)
        message.body = body
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
    or missing Content-Length); the connection should then be closed.
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
        length: int | None = None
        for line in head.split(b"\n")[1:]:
            name, colon, value = line.partition(b":")
            if colon and name.strip().lower() in (b"content-length", b"l"):
                text = value.strip()
                if not text.isdigit() or len(text) > 10:
                    raise SipError("bad Content-Length on stream", 400)
                length = int(text)
        if length is None:
            # §18.3, §20.14: Content-Length MUST be used with stream transports; without it the
            # end of the body cannot be known, and guessing would read a body as the next message.
            raise SipError("no Content-Length on stream", 400)
        if length > self._limits.max_body_bytes:
            raise SipError("body too large", 413)
        return length
