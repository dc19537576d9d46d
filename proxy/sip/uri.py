"""SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966), parsed into frozen values.

``parse_uri`` accepts any absolute URI; ``sip``/``sips`` and ``tel`` get typed fields, every other
scheme is kept opaque as ``AbsoluteUri`` (the parser answers 416 when one arrives as a Request-URI).
``str(uri)`` rebuilds the text from the parsed pieces, which are kept as written (escapes included),
so a parse and serialise round trip gives the same URI.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from typing import Self
from urllib.parse import quote

from proxy.sip.errors import SipError

__all__ = [
    "AbsoluteUri",
    "SipUri",
    "TelUri",
    "Uri",
    "check_uri",
    "escape_user",
    "format_host",
    "parse_host_port",
    "parse_uri",
    "same_sip_uri",
]

Params = tuple[tuple[str, str | None], ...]

# §25.1 user / password / hostname character classes; escapes are checked separately.
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-.]*[A-Za-z0-9])?\.?\Z")
_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")


# §25.1: user = 1*( unreserved / escaped / user-unreserved ); ``quote`` keeps letters, digits and
# "_.-~" of those itself.
_USER_SAFE = "!*'()&=+$,;?/"


def _bad(reason: str) -> SipError:
    return SipError(reason, 400)


def escape_user(text: str) -> str:
    """``text`` (an unescaped user part, such as a dialled number) fit to write into a SIP URI:
    every character §25.1 does not allow there escaped as %XX of its UTF-8 octets (§19.1.2), so
    that no CR, LF or NUL a party escaped in its URI reaches another message raw."""
    return quote(text, safe=_USER_SAFE, errors="surrogateescape")


def _unescape(text: str) -> str:
    """Resolve %XX escapes (RFC 3261 §19.1.2, RFC 3986 §2.1)."""
    if "%" not in text:
        return text
    out = bytearray()
    index = 0
    raw = text.encode("utf-8", "surrogateescape")
    while index < len(raw):
        if raw[index] == 0x25 and index + 2 < len(raw):
            out.append(int(raw[index + 1 : index + 3], 16))
            index += 3
        else:
            out.append(raw[index])
            index += 1
    return out.decode("utf-8", "replace")


def parse_host_port(text: str) -> tuple[str, int | None]:
    """Split ``host[:port]``; IPv6 references keep their brackets. Raises SipError(400)."""
    if not text:
        raise _bad("empty host")
    if text[0] == "[":
        close = text.find("]")
        if close < 0:
            raise _bad(f"unterminated IPv6 reference in {text!r}")
        host = text[: close + 1]
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise _bad(f"bad IPv6 address {host!r}") from None
        rest = text[close + 1 :]
        if not rest:
            return host, None
        if rest[0] != ":":
            raise _bad(f"junk after IPv6 reference in {text!r}")
        return host, _parse_port(rest[1:])
    host, colon, port_text = text.partition(":")
    if not _HOSTNAME_RE.match(host):
        raise _bad(f"bad host {host!r}")
    return host, _parse_port(port_text) if colon else None


def _parse_port(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 5:
        raise _bad(f"bad port {text!r}")
    port = int(text)
    if port > 65535:
        raise _bad(f"port out of range {text!r}")
    return port


def format_host(host: str, port: int | None) -> str:
    """``host[:port]``; an IPv6 address is bracketed if it is not already."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return host if port is None else f"{host}:{port}"


def _param_lookup(params: Params, name: str) -> str | None:
    lowered = name.lower()
    for key, value in params:
        if key.lower() == lowered:
            return "" if value is None else value
    return None


def _format_params(params: Params) -> str:
    return "".join(f";{key}" if value is None else f";{key}={value}" for key, value in params)


@dataclass(frozen=True, slots=True, kw_only=True)
class SipUri:
    """A ``sip:`` or ``sips:`` URI. ``user`` and ``password`` are kept escaped as written."""

    scheme: str = "sip"
    user: str | None = None
    password: str | None = None
    host: str
    port: int | None = None
    params: Params = ()
    headers: str = ""

    def __str__(self) -> str:
        userinfo = ""
        if self.user is not None:
            userinfo = self.user if self.password is None else f"{self.user}:{self.password}"
            userinfo += "@"
        text = f"{self.scheme}:{userinfo}{format_host(self.host, self.port)}{_format_params(self.params)}"
        return f"{text}?{self.headers}" if self.headers else text

    @property
    def user_unescaped(self) -> str | None:
        """The user part with %XX escapes resolved (§19.1.4 compares unescaped)."""
        return None if self.user is None else _unescape(self.user)

    @property
    def transport(self) -> str | None:
        """The ``transport`` parameter, lower-cased, or None."""
        value = self.param("transport")
        return value.lower() if value else None

    def param(self, name: str) -> str | None:
        """Value of a URI parameter (case-insensitive name); ``""`` for a flag; None if absent."""
        return _param_lookup(self.params, name)

    def has_param(self, name: str) -> bool:
        return _param_lookup(self.params, name) is not None

    def with_param(self, name: str, value: str | None) -> Self:
        """A copy with ``name`` set (replacing any existing one); ``value=None`` makes it a flag."""
        kept = tuple(p for p in self.params if p[0].lower() != name.lower())
        return replace(self, params=(*kept, (name, value)))

    def without_param(self, name: str) -> Self:
        return replace(self, params=tuple(p for p in self.params if p[0].lower() != name.lower()))

    def host_port(self, default_port: int = 5060) -> tuple[str, int]:
        """Host without IPv6 brackets and the port, defaulting per scheme (§19.1.2: 5061 for sips)."""
        host = self.host[1:-1] if self.host.startswith("[") else self.host
        port = self.port if self.port is not None else (5061 if self.scheme == "sips" else default_port)
        return host, port


@dataclass(frozen=True, slots=True, kw_only=True)
class TelUri:
    """A ``tel:`` URI (RFC 3966): the number as written and its parameters."""

    number: str
    params: Params = ()

    scheme = "tel"

    def __str__(self) -> str:
        return f"tel:{self.number}{_format_params(self.params)}"

    @property
    def digits(self) -> str:
        """The number without visual separators (RFC 3966 §5.1.1), leading ``+`` kept."""
        return "".join(ch for ch in self.number if ch not in "-.()")

    def param(self, name: str) -> str | None:
        return _param_lookup(self.params, name)


@dataclass(frozen=True, slots=True, kw_only=True)
class AbsoluteUri:
    """Any other absolute URI (RFC 3986), kept opaque."""

    scheme: str
    rest: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"


Uri = SipUri | TelUri | AbsoluteUri

# §19.1.4: these parameters, present in only one of two URIs, make them different.
_PARAMS_IN_BOTH_OR_NEITHER = frozenset({"user", "ttl", "method", "maddr"})


def same_sip_uri(a: SipUri, b: SipUri) -> bool:
    """Whether two SIP or SIPS URIs are equivalent (RFC 3261 §19.1.4): same scheme; user and
    password alike, case-sensitively, escapes resolved; host alike in any case; the same port, or
    none in either (a default port written out is not the same as none); each parameter in both
    alike in any case, and ``user``, ``ttl``, ``method`` and ``maddr`` in both or neither (others
    in one only do not count); the same URI headers."""
    if (
        a.scheme != b.scheme
        or a.user_unescaped != b.user_unescaped
        or (None if a.password is None else _unescape(a.password))
        != (None if b.password is None else _unescape(b.password))
        or a.host.lower() != b.host.lower()
        or a.port != b.port
    ):
        return False
    params_a, params_b = _compared_params(a.params), _compared_params(b.params)
    for name in params_a.keys() | params_b.keys():
        if name in params_a and name in params_b:
            if params_a[name] != params_b[name]:
                return False
        elif name in _PARAMS_IN_BOTH_OR_NEITHER:
            return False
    return _compared_headers(a.headers) == _compared_headers(b.headers)


def _compared_params(params: Params) -> dict[str, str]:
    return {name.lower(): _unescape(value or "").lower() for name, value in params}


def _compared_headers(headers: str) -> set[tuple[str, str]]:
    pairs = (item.partition("=") for item in headers.split("&") if item)
    return {(_unescape(name).lower(), _unescape(value)) for name, _, value in pairs}


_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
_URI_PARAMS = rf"(?:;{_TOKEN}(?:=[^\s;?<>\"]*)?)*"
# RFC 3261 §25.1 SIP-URI / SIPS-URI in one pass; escapes, IPv6 and the port range are checked after.
_SIP_URI = re.compile(
    r"(?P<scheme>[sS][iI][pP][sS]?):"
    r"(?:(?P<user>[A-Za-z0-9\-_.!~*'()&=+$,;?/%]+)(?::(?P<password>[A-Za-z0-9\-_.!~*'()&=+$,%]*))?@)?"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9\-.]*[A-Za-z0-9])?\.?)"
    r"(?::(?P<port>[0-9]{1,5}))?"
    rf"(?P<params>{_URI_PARAMS})"
    r"(?:\?(?P<headers>[^\s<>\"]+))?"
)
_TEL_URI = re.compile(rf"[tT][eE][lL]:(?P<number>\+?[0-9A-Fa-f*#\-.()]+)(?P<params>{_URI_PARAMS})")
_ABSOLUTE_URI = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+\-.]*):(?P<rest>[^\s<>\"]+)")


def parse_uri(text: str) -> Uri:
    """Parse an absolute URI. Raises SipError(400) when it is malformed."""
    match = _SIP_URI.fullmatch(text)
    if match is not None:
        return _sip_uri_from(match, text)
    match = _TEL_URI.fullmatch(text)
    if match is not None:
        return TelUri(number=match["number"], params=_split_params(match["params"]))
    match = _ABSOLUTE_URI.fullmatch(text)
    if match is None:
        raise _bad(f"not an absolute URI: {text!r}")
    scheme = match["scheme"].lower()
    if scheme in ("sip", "sips", "tel"):
        raise _bad(f"bad {scheme} URI {text!r}")
    return AbsoluteUri(scheme=scheme, rest=match["rest"])


def _split_params(text: str) -> Params:
    """Parameters already checked by a URI pattern: split without further checks."""
    if not text:
        return ()
    return tuple(
        (name, value if equals else None)
        for name, equals, value in (piece.partition("=") for piece in text[1:].split(";"))
    )


def check_uri(text: str) -> str:
    """Check an absolute URI without building it (as ``parse_uri`` would); return its scheme.

    Raises SipError(400) exactly when ``parse_uri`` would.
    """
    match = _SIP_URI.fullmatch(text)
    if match is not None:
        _check_sip(match, text)
        return match["scheme"].lower()
    if _TEL_URI.fullmatch(text) is not None:
        return "tel"
    match = _ABSOLUTE_URI.fullmatch(text)
    if match is None:
        raise _bad(f"not an absolute URI: {text!r}")
    scheme = match["scheme"].lower()
    if scheme in ("sip", "sips", "tel"):
        raise _bad(f"bad {scheme} URI {text!r}")
    return scheme


def _check_sip(match: re.Match[str], text: str) -> None:
    """What the SIP-URI pattern cannot say: escapes, the IPv6 address, the port range."""
    if "%" in text:
        user = match["user"]
        password = match["password"]
        if (user is not None and _ESCAPE_RE.search(user)) or (
            password is not None and _ESCAPE_RE.search(password)
        ):
            raise _bad(f"bad escape in {text!r}")
    host = match["host"]
    if host[0] == "[":
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise _bad(f"bad IPv6 address {host!r}") from None
    port_text = match["port"]
    if port_text is not None and int(port_text) > 65535:
        raise _bad(f"port out of range in {text!r}")


def _sip_uri_from(match: re.Match[str], text: str) -> SipUri:
    _check_sip(match, text)
    user = match["user"]
    password = match["password"]
    port_text = match["port"]
    return SipUri(
        scheme=match["scheme"].lower(),
        user=user,
        password=password,
        host=match["host"],
        port=None if port_text is None else int(port_text),
        params=_split_params(match["params"]),
        headers=match["headers"] or "",
    )
