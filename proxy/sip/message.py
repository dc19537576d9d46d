"""SIP requests and responses (RFC 3261 §7).

A message keeps its header fields as text, in order, with the names as written, so that a message
parsed and serialised without edits gives back equivalent bytes (folding undone, CRLF endings,
``Name: value`` spacing). Typed views (``vias``, ``from_``, ``cseq``...) are parsed on first use
and cached until the headers change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from operator import itemgetter
from typing import TypeVar

from proxy.sip.auth import Challenge, Credentials
from proxy.sip.errors import SipError
from proxy.sip.headers import LIST_HEADERS, CSeq, NameAddress, Via, display_name, header_key, split_values
from proxy.sip.uri import Uri, parse_uri

__all__ = ["REASON_PHRASES", "Headers", "Message", "Request", "Response", "make_response"]

SIP_VERSION = "SIP/2.0"

# RFC 3261 §21 and the extensions the B2BUA meets.
REASON_PHRASES = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    580: "Precondition Failure",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}

_T = TypeVar("_T")
_KEY_OF = itemgetter(1)


class Headers:
    """Ordered header fields: (name as written, value). Lookups use ``header_key`` (case, compact)."""

    __slots__ = ("_cache", "_fields")

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        self._fields: list[tuple[str, str, str]] = [(name, header_key(name), value) for name, value in fields]
        self._cache: dict[str, object] = {}

    @classmethod
    def _from_keyed(cls, fields: list[tuple[str, str, str]]) -> Headers:
        headers = cls.__new__(cls)
        headers._fields = fields
        headers._cache = {}
        return headers

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return ((name, value) for name, _, value in self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = header_key(name)
        return any(k == key for _, k, _ in self._fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def get(self, name: str) -> str | None:
        """The first field's value for ``name``, or None."""
        key = header_key(name)
        for _, k, value in self._fields:
            if k == key:
                return value
        return None

    def fields(self, name: str) -> list[str]:
        """Every field value for ``name`` as written (comma lists not split)."""
        key = header_key(name)
        return [value for _, k, value in self._fields if k == key]

    def get_all(self, name: str) -> list[str]:
        """Every value for ``name``; list headers are split on commas (§7.3.1)."""
        key = header_key(name)
        values = [value for _, k, value in self._fields if k == key]
        if key not in LIST_HEADERS:
            return values
        out: list[str] = []
        for value in values:
            out.extend(split_values(value))
        return out

    def add(self, name: str, value: str) -> None:
        """Append a field at the end."""
        self._fields.append((name, header_key(name), value))
        self._cache.clear()

    def prepend(self, name: str, value: str) -> None:
        """Insert a field before the first field of the same name (or at the top): how Via grows."""
        key = header_key(name)
        for index, (_, k, _) in enumerate(self._fields):
            if k == key:
                self._fields.insert(index, (name, key, value))
                break
        else:
            self._fields.insert(0, (name, key, value))
        self._cache.clear()

    def set(self, name: str, value: str) -> None:
        """Replace every field of ``name`` by one, at the position of the first (or at the end)."""
        key = header_key(name)
        position = None
        kept: list[tuple[str, str, str]] = []
        for field in self._fields:
            if field[1] == key:
                if position is None:
                    position = len(kept)
                    kept.append((field[0], key, value))
            else:
                kept.append(field)
        if position is None:
            kept.append((name, key, value))
        self._fields = kept
        self._cache.clear()

    def remove(self, name: str) -> None:
        """Remove every field of ``name``."""
        key = header_key(name)
        self._fields = [field for field in self._fields if field[1] != key]
        self._cache.clear()

    def remove_first_value(self, name: str) -> None:
        """Remove the topmost value of a list header, splitting a combined field if needed."""
        key = header_key(name)
        for index, (raw_name, k, value) in enumerate(self._fields):
            if k == key:
                rest = split_values(value)[1:]
                if rest:
                    self._fields[index] = (raw_name, key, ", ".join(rest))
                else:
                    del self._fields[index]
                break
        self._cache.clear()

    def copy(self) -> Headers:
        return Headers._from_keyed(list(self._fields))

    def cached(self, key: str, build: Callable[[], _T]) -> _T:
        """``build()``'s result, memoised until the next edit."""
        try:
            return self._cache[key]  # type: ignore[return-value]
        except KeyError:
            value = build()
            self._cache[key] = value
            return value

    def serialise_into(self, lines: list[str], body_length: int) -> None:
        """Append ``Name: value`` lines; Content-Length always states ``body_length``."""
        fields = self._fields
        lines += [
            f"{name}: {body_length}" if key == "content-length" else f"{name}: {value}"
            for name, key, value in fields
        ]
        if body_length and "content-length" not in map(_KEY_OF, fields):
            lines.append(f"Content-Length: {body_length}")


class Message:
    """What requests and responses share: headers, body and typed header views."""

    __slots__ = ("body", "headers")

    def __init__(self, headers: Headers | Iterable[tuple[str, str]] = (), body: bytes = b"") -> None:
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.body = body

    def _start_line(self) -> str:
        raise NotImplementedError

    def __bytes__(self) -> bytes:
        lines = [self._start_line()]
        self.headers.serialise_into(lines, len(self.body))
        lines.append("")
        lines.append("")
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + self.body

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Message)
        return bytes(self) == bytes(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._start_line()!r} call-id={self.headers.get('call-id')!r}>"

    # Typed views -------------------------------------------------------------------------------

    def _single(self, name: str) -> str:
        values = self.headers.fields(name)
        if not values:
            raise SipError(f"missing {display_name(header_key(name))} header", 400)
        if len(values) > 1:
            raise SipError(f"more than one {display_name(header_key(name))} header", 400)
        return values[0]

    @property
    def call_id(self) -> str:
        """Call-ID (§20.8). Raises SipError(400) if missing or repeated."""
        return self.headers.cached("call-id", lambda: _check_call_id(self._single("call-id")))

    @property
    def cseq(self) -> CSeq:
        return self.headers.cached("cseq", lambda: CSeq.parse(self._single("cseq")))

    @property
    def from_(self) -> NameAddress:
        return self.headers.cached("from", lambda: NameAddress.parse(self._single("from")))

    @property
    def to(self) -> NameAddress:
        return self.headers.cached("to", lambda: NameAddress.parse(self._single("to")))

    @property
    def vias(self) -> list[Via]:
        """Via values, topmost first (§20.42)."""
        return self.headers.cached("via", lambda: [Via.parse(v) for v in self.headers.get_all("via")])

    @property
    def top_via(self) -> Via:
        vias = self.vias
        if not vias:
            raise SipError("missing Via header", 400)
        return vias[0]

    @property
    def contact_is_wildcard(self) -> bool:
        """True for ``Contact: *`` (§10.2.2, REGISTER only)."""
        return self.headers.get_all("contact") == ["*"]

    @property
    def contacts(self) -> list[NameAddress]:
        """Contact values; empty for ``Contact: *``."""

        def build() -> list[NameAddress]:
            values = self.headers.get_all("contact")
            if values == ["*"]:
                return []
            return [NameAddress.parse(v) for v in values]

        return self.headers.cached("contact", build)

    @property
    def routes(self) -> list[NameAddress]:
        return self.headers.cached(
            "route", lambda: [NameAddress.parse(v) for v in self.headers.get_all("route")]
        )

    @property
    def record_routes(self) -> list[NameAddress]:
        return self.headers.cached(
            "record-route", lambda: [NameAddress.parse(v) for v in self.headers.get_all("record-route")]
        )

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards (§20.22), None when absent."""
        return self.headers.cached("max-forwards", lambda: _optional_int(self.headers, "max-forwards"))

    @property
    def content_length(self) -> int | None:
        """The Content-Length header's value as sent, None when absent (§20.14)."""
        return self.headers.cached("content-length", lambda: _optional_int(self.headers, "content-length"))

    @property
    def content_type(self) -> str | None:
        """The media type of the body, lower case without parameters (``application/sdp``)."""
        value = self.headers.get("content-type")
        return None if value is None else value.split(";", 1)[0].strip().lower()

    @property
    def expires(self) -> int | None:
        return _optional_int(self.headers, "expires")

    @property
    def www_authenticate(self) -> list[Challenge]:
        """WWW-Authenticate challenges (§20.44), one per field (a challenge holds commas itself)."""
        return self.headers.cached("www-authenticate", lambda: _challenges(self.headers, "www-authenticate"))

    @property
    def proxy_authenticate(self) -> list[Challenge]:
        """Proxy-Authenticate challenges (§20.27)."""
        return self.headers.cached(
            "proxy-authenticate", lambda: _challenges(self.headers, "proxy-authenticate")
        )

    @property
    def authorization(self) -> list[Credentials]:
        """Authorization credentials (§20.7)."""
        return self.headers.cached("authorization", lambda: _credentials(self.headers, "authorization"))

    @property
    def proxy_authorization(self) -> list[Credentials]:
        """Proxy-Authorization credentials (§20.28)."""
        return self.headers.cached(
            "proxy-authorization", lambda: _credentials(self.headers, "proxy-authorization")
        )

    def validate(self) -> None:
        """Parse every typed header view now; raises SipError(400) for the first malformed one.

        ``parse_message`` checks the structure and the fields every layer needs (Call-ID, CSeq,
        Max-Forwards, Content-Length); fields with a grammar of their own are parsed when first
        read. This reads them all, for callers that want the whole message checked up front.
        """
        self.call_id  # noqa: B018
        self.cseq  # noqa: B018
        self.from_  # noqa: B018
        self.to  # noqa: B018
        if not self.vias:
            raise SipError("empty Via header", 400)
        self.contacts  # noqa: B018
        self.routes  # noqa: B018
        self.record_routes  # noqa: B018
        self.max_forwards  # noqa: B018
        self.expires  # noqa: B018

    def option_tags(self, name: str) -> list[str]:
        """Option tags of Supported / Require / Proxy-Require / Unsupported, lower case."""
        return [tag.lower() for tag in self.headers.get_all(name) if tag]


class Request(Message):
    """A SIP request: method, Request-URI, headers, body.

    A parsed request keeps its Request-URI as text (already checked by the parser) and builds the
    typed ``uri`` on first use; assigning ``uri`` replaces both.
    """

    __slots__ = ("_uri", "_uri_text", "method", "version")

    def __init__(
        self,
        method: str,
        uri: Uri,
        headers: Headers | Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        *,
        version: str = SIP_VERSION,
    ) -> None:
        super().__init__(headers, body)
        self.method = method
        self._uri: Uri | None = uri
        self._uri_text: str | None = None
        self.version = version

    @classmethod
    def _parsed(cls, method: str, uri_text: str, headers: Headers) -> Request:
        request = cls.__new__(cls)
        request.headers = headers
        request.body = b""
        request.method = method
        request._uri = None
        request._uri_text = uri_text
        request.version = SIP_VERSION
        return request

    @property
    def uri(self) -> Uri:
        if self._uri is None:
            assert self._uri_text is not None
            self._uri = parse_uri(self._uri_text)
        return self._uri

    @uri.setter
    def uri(self, value: Uri) -> None:
        self._uri = value
        self._uri_text = None

    def _start_line(self) -> str:
        uri = self._uri_text if self._uri_text is not None else str(self._uri)
        return f"{self.method} {uri} {self.version}"

    def copy(self) -> Request:
        return Request(self.method, self.uri, self.headers.copy(), self.body, version=self.version)


class Response(Message):
    """A SIP response: status code, reason phrase, headers, body."""

    __slots__ = ("reason", "status", "version")

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Headers | Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        *,
        version: str = SIP_VERSION,
    ) -> None:
        super().__init__(headers, body)
        self.status = status
        self.reason = REASON_PHRASES.get(status, "Unknown") if reason is None else reason
        self.version = version

    @classmethod
    def _parsed(cls, status: int, reason: str, headers: Headers) -> Response:
        response = cls.__new__(cls)
        response.headers = headers
        response.body = b""
        response.status = status
        response.reason = reason
        response.version = SIP_VERSION
        return response

    def _start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    @property
    def is_provisional(self) -> bool:
        return self.status < 200

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    def copy(self) -> Response:
        return Response(self.status, self.reason, self.headers.copy(), self.body, version=self.version)


def _optional_int(headers: Headers, name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    value = value.strip()
    if not value.isascii() or not value.isdigit() or len(value) > 10:
        raise SipError(f"bad {display_name(header_key(name))} value {value!r}", 400)
    return int(value)


def _challenges(headers: Headers, name: str) -> list[Challenge]:
    return [Challenge.parse(value) for value in headers.fields(name)]


def _credentials(headers: Headers, name: str) -> list[Credentials]:
    return [Credentials.parse(value) for value in headers.fields(name)]


def _check_call_id(value: str) -> str:
    # §25.1: callid = word [ "@" word ]; no whitespace.
    if not value or any(ch in value for ch in " \t"):
        raise SipError(f"bad Call-ID {value!r}", 400)
    return value


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    extra_headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Response:
    """A response to ``request`` per §8.2.6.2: Via, From, To, Call-ID and CSeq copied.

    ``to_tag`` is added to To unless it already has one. Record-Route is copied into responses to
    dialog-creating requests (§12.1.1).
    """
    fields: list[tuple[str, str]] = [("Via", value) for value in request.headers.fields("via")]
    fields.append(("From", request.headers.get("from") or ""))
    to_value = request.headers.get("to") or ""
    if to_tag is not None and request.to.tag is None:
        to_value = str(request.to.with_tag(to_tag))
    fields.append(("To", to_value))
    fields.append(("Call-ID", request.headers.get("call-id") or ""))
    fields.append(("CSeq", request.headers.get("cseq") or ""))
    if 100 < status < 300 and request.method in ("INVITE", "SUBSCRIBE", "REFER"):
        fields.extend(("Record-Route", value) for value in request.headers.fields("record-route"))
    fields.extend(extra_headers)
    fields.append(("Content-Length", str(len(body))))
    return Response(status, reason, fields, body)
