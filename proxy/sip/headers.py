"""Header names and the typed header values the SIP core relies on (RFC 3261 §7.3, §20).

Header fields stay text in a message; these types are views parsed from that text on demand:
``Via``, ``NameAddress`` (From, To, Contact, Route, Record-Route) and ``CSeq``. Each pairs
``parse()`` with ``__str__``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Self

from proxy.sip.errors import SipError
from proxy.sip.grammar import parse_params, split_quoted, unquote
from proxy.sip.uri import SipUri, Uri, format_host, parse_host_port, parse_uri

__all__ = [
    "CSEQ_PATTERN",
    "LIST_HEADERS",
    "MAX_CSEQ",
    "CSeq",
    "NameAddress",
    "Via",
    "display_name",
    "header_key",
    "split_values",
]

# RFC 3261 §7.3.3 plus RFC 3262/3265/3515/4028/3892 compact forms.
_COMPACT_FORMS = {
    "a": "accept-contact",
    "b": "referred-by",
    "c": "content-type",
    "d": "request-disposition",
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "n": "identity-info",
    "o": "event",
    "r": "refer-to",
    "s": "subject",
    "t": "to",
    "u": "allow-events",
    "v": "via",
    "x": "session-expires",
    "y": "identity",
}

# Names whose spelling is not plain title case.
_SPECIAL_NAMES = {
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "www-authenticate": "WWW-Authenticate",
    "rack": "RAck",
    "rseq": "RSeq",
    "mime-version": "MIME-Version",
    "sip-etag": "SIP-ETag",
    "sip-if-match": "SIP-If-Match",
}

# Headers whose grammar is a comma-separated list (§7.3.1): several values may share one field.
LIST_HEADERS = frozenset(
    {
        "via",
        "route",
        "record-route",
        "contact",
        "allow",
        "supported",
        "require",
        "proxy-require",
        "unsupported",
        "accept",
        "accept-encoding",
        "accept-language",
        "allow-events",
        "content-encoding",
        "content-language",
        "in-reply-to",
        "alert-info",
        "call-info",
        "error-info",
        "warning",
        "path",
        "service-route",
        "p-asserted-identity",
        "reason",
    }
)

MAX_CSEQ = 2**31 - 1  # §8.1.1.5: the sequence number MUST be less than 2**31
# §20.16: CSeq = 1*DIGIT LWS Method
CSEQ_PATTERN = re.compile(r"[ \t]*([0-9]{1,10})[ \t]+([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*")


def header_key(name: str) -> str:
    """The lookup key for a header name: lower case, compact form expanded (§7.3.3)."""
    lowered = name.lower()
    if len(lowered) == 1:
        return _COMPACT_FORMS.get(lowered, lowered)
    return lowered


def display_name(key: str) -> str:
    """The conventional spelling for writing a header we create (``call-id`` -> ``Call-ID``)."""
    special = _SPECIAL_NAMES.get(key)
    if special is not None:
        return special
    return "-".join(part.capitalize() for part in key.split("-"))


def split_values(value: str) -> list[str]:
    """Split a list header's field value on commas outside quotes and angle brackets (§7.3.1)."""
    if "," not in value:
        return [value]
    try:
        return [piece for piece in split_quoted(value, ",") if piece]
    except ValueError as exc:
        raise SipError(f"bad header list: {exc}", 400) from None


Params = tuple[tuple[str, str | None], ...]


def _lookup(params: Params, name: str) -> str | None:
    for key, value in params:
        if key.lower() == name:
            return "" if value is None else value
    return None


def _with_param(params: Params, name: str, value: str | None) -> Params:
    lowered = name.lower()
    kept = [p for p in params if p[0].lower() != lowered]
    return (*kept, (name, value))


def _format_params(params: Params) -> str:
    return "".join(f";{key}" if value is None else f";{key}={value}" for key, value in params)


# RFC 3261 §25.1 in patterns: generic-param = token [ EQUAL gen-value ],
# gen-value = token / host / quoted-string. Parameters after a pattern match need no more checks.
_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
_QUOTED = r'"(?:[^"\\\r\n]|\\.)*"'
_PARAMS = rf"(?:[ \t]*;[ \t]*{_TOKEN}(?:[ \t]*=[ \t]*(?:{_QUOTED}|[^;,\"\s<>]*))?)*"
_HOST = r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9\-.]*[A-Za-z0-9])?\.?"
_NAME_ADDR = re.compile(
    rf"[ \t]*(?:(?P<display>{_QUOTED}|[^<\"]*?)[ \t]*<(?P<uri>[^<>]*)>|(?P<bare>[^;,<>\"\s]+))"
    rf"(?P<params>{_PARAMS})[ \t]*"
)
_VIA = re.compile(
    rf"[ \t]*({_TOKEN})[ \t]*/[ \t]*({_TOKEN})[ \t]*/[ \t]*({_TOKEN})[ \t]+({_HOST})"
    rf"(?:[ \t]*:[ \t]*([0-9]{{1,5}}))?({_PARAMS})[ \t]*"
)


def _checked_params(text: str) -> Params:
    """Split parameters a pattern has already checked (``;name=value``, blanks allowed around)."""
    if not text:
        return ()
    pieces = text.split(";") if '"' not in text else split_quoted(text, ";")
    params: list[tuple[str, str | None]] = []
    for piece in pieces[1:]:
        name, equals, value = piece.partition("=")
        params.append((name.strip(" \t"), value.strip(" \t") if equals else None))
    return tuple(params)


def _parse_params_or_400(text: str, what: str) -> Params:
    try:
        return parse_params(text)
    except ValueError as exc:
        raise SipError(f"bad {what} parameters: {exc}", 400) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class Via:
    """One Via value (§20.42): ``SIP/2.0/UDP host:port;branch=...;received=...;rport``."""

    protocol: str = "SIP/2.0"
    transport: str
    host: str
    port: int | None = None
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> Via:
        """Parse one Via value. Raises SipError(400)."""
        match = _VIA.fullmatch(text)
        if match is None:
            raise SipError(f"bad Via {text[:80]!r}", 400)
        name, version, transport, host, port_text, params_text = match.groups()
        if host[0] == "[":
            host, _ = parse_host_port(host)  # checks the IPv6 address
        port = None
        if port_text is not None:
            port = int(port_text)
            if port > 65535:
                raise SipError(f"bad Via port in {text[:80]!r}", 400)
        return cls(
            protocol=f"{name}/{version}",
            transport=transport.upper(),
            host=host,
            port=port,
            params=_checked_params(params_text),
        )

    def __str__(self) -> str:
        sent_by = format_host(self.host, self.port)
        return f"{self.protocol}/{self.transport} {sent_by}{_format_params(self.params)}"

    def param(self, name: str) -> str | None:
        """A parameter's value (case-insensitive name); ``""`` for a flag, None if absent."""
        return _lookup(self.params, name.lower())

    def with_param(self, name: str, value: str | None) -> Self:
        return replace(self, params=_with_param(self.params, name, value))

    @property
    def branch(self) -> str | None:
        return _lookup(self.params, "branch")

    @property
    def received(self) -> str | None:
        return _lookup(self.params, "received")

    @property
    def rport(self) -> int | None:
        """The rport value filled in by a server (RFC 3581 §4); None when absent or still empty."""
        value = _lookup(self.params, "rport")
        return int(value) if value and value.isascii() and value.isdigit() and len(value) <= 5 else None

    @property
    def wants_rport(self) -> bool:
        """True when the client asked for symmetric response routing (RFC 3581 §3)."""
        return _lookup(self.params, "rport") is not None

    @property
    def sent_by(self) -> tuple[str, int]:
        """Host (brackets removed) and port (default 5060, 5061 for TLS) of the sent-by field."""
        host = self.host[1:-1] if self.host.startswith("[") else self.host
        default = 5061 if self.transport in ("TLS", "WSS") else 5060
        return host, self.port if self.port is not None else default

    @property
    def is_rfc3261_branch(self) -> bool:
        """True when the branch carries the §8.1.1.7 magic cookie ``z9hG4bK``."""
        branch = self.branch
        return branch is not None and branch.startswith("z9hG4bK")


@dataclass(frozen=True, slots=True, kw_only=True)
class NameAddress:
    """A name-addr or addr-spec with header parameters (§20.10, §20.20, §20.39).

    ``display`` is kept as written (quoted or not); ``bracketed`` records whether the URI was in
    ``<...>``. Parameters after a bare URI belong to the header, not to the URI (§20).
    """

    display: str = ""
    uri: Uri
    params: Params = ()
    bracketed: bool = True

    @classmethod
    def parse(cls, text: str) -> NameAddress:
        """Parse a name-addr / addr-spec with parameters. Raises SipError(400)."""
        match = _NAME_ADDR.fullmatch(text)
        if match is None:
            raise SipError(f"bad address {text[:80]!r}", 400)
        uri_text = match["uri"]
        display = match["display"] or ""
        return cls(
            display=display.strip(" \t") if display else "",
            uri=parse_uri(uri_text.strip(" \t") if uri_text is not None else match["bare"]),
            params=_checked_params(match["params"]),
            bracketed=uri_text is not None,
        )

    def __str__(self) -> str:
        uri = str(self.uri)
        if self.display:
            return f"{self.display} <{uri}>{_format_params(self.params)}"
        needs_brackets = self.bracketed or any(ch in uri for ch in ";,?")
        text = f"<{uri}>" if needs_brackets else uri
        return text + _format_params(self.params)

    @property
    def display_text(self) -> str:
        """The display name with quotes and escapes resolved."""
        return unquote(self.display)

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter of From/To (§19.3), or None."""
        return _lookup(self.params, "tag")

    @property
    def sip_uri(self) -> SipUri | None:
        return self.uri if isinstance(self.uri, SipUri) else None

    def param(self, name: str) -> str | None:
        return _lookup(self.params, name.lower())

    def with_param(self, name: str, value: str | None) -> Self:
        return replace(self, params=_with_param(self.params, name, value))

    def with_tag(self, tag: str) -> Self:
        return self.with_param("tag", tag)


@dataclass(frozen=True, slots=True, kw_only=True)
class CSeq:
    """The CSeq header (§20.16): a sequence number and a method."""

    seq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        match = CSEQ_PATTERN.fullmatch(text)
        if match is None:
            number = text.strip().partition(" ")[0]
            if not (number.isascii() and number.isdigit() and len(number) <= 10):
                raise SipError(f"bad CSeq number in {text!r}", 400)
            raise SipError(f"bad CSeq method in {text!r}", 400)
        seq = int(match[1])
        if seq > MAX_CSEQ:
            raise SipError(f"CSeq number out of range in {text!r}", 400)
        return cls(seq=seq, method=match[2])

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"
