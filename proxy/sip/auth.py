"""SIP Digest authentication: header values and the digest computation.

Covers the WWW-Authenticate / Proxy-Authenticate challenge and the Authorization /
Proxy-Authorization credentials (RFC 3261 §20.7, §20.27, §20.28, §20.44, §22, §25), the Digest
computation of RFC 7616 §3.4 with the SIP algorithms of RFC 8760 (MD5, SHA-256, SHA-512-256 and their
``-sess`` variants), and the RFC 2069 form used when a challenge carries no ``qop``.

Contracts:

* Parsing raises ``SipError(reason, 400)`` on a malformed value; a parsed value serialises with
  ``str()`` and parses back to an equal value.
* Parameter names are case-insensitive and stored lower-case; parameter order and unknown
  parameters are kept; each value remembers whether it was a quoted-string or a token.
* Hashes are taken over the UTF-8 encoding of the strings (SIP text is UTF-8, RFC 3261 §7.3.1).
* No I/O, no clock, no randomness: the caller supplies the cnonce and the nonce-count, and on the
  server side issues, remembers and checks nonces itself.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

from proxy.sip.errors import SipError

__all__ = [
    "AuthParam",
    "Challenge",
    "Credentials",
    "auth_header_for",
    "build_credentials",
    "challenge_header_for",
    "choose_challenge",
    "is_supported_algorithm",
    "make_challenge",
    "verify_credentials",
]

# RFC 3261 §25: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
# Linear white space between elements; folded lines are unfolded by the message parser, CR and LF
# are still skipped here so that a value taken straight from a raw header does not fail.
_LWS = " \t\r\n"
_MAX_NONCE_COUNT = 0xFFFFFFFF

_AUTH_HEADERS = {401: "Authorization", 407: "Proxy-Authorization"}
_CHALLENGE_HEADERS = {401: "WWW-Authenticate", 407: "Proxy-Authenticate"}

# RFC 8760 §2.1 / RFC 7616 §3.3: algorithm label (lower-case, no "-sess") -> hashlib name, strength.
_HASHES: dict[str, tuple[str, int]] = {
    "md5": ("md5", 0),
    "sha-256": ("sha256", 1),
    "sha-512-256": ("sha512_256", 1),
}


def _is_token(text: str) -> bool:
    return bool(text) and all(ch in _TOKEN_CHARS for ch in text)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthParam:
    """One ``name=value`` auth-param (RFC 3261 §25 ``auth-param``).

    ``name`` is stored lower-case. ``value`` is the unescaped text. ``quoted`` says whether it is
    written as a quoted-string (any text without CR or LF) or as a bare token (non-empty, token
    characters only). A value that cannot be written in the chosen form raises ``ValueError``.
    """

    name: str
    value: str
    quoted: bool = True

    def __post_init__(self) -> None:
        if not _is_token(self.name):
            raise ValueError(f"auth-param name is not a token: {self.name!r}")
        object.__setattr__(self, "name", self.name.lower())
        if self.quoted:
            if "\r" in self.value or "\n" in self.value:
                raise ValueError(f"auth-param {self.name!r}: quoted value contains CR or LF")
        elif not _is_token(self.value):
            raise ValueError(f"auth-param {self.name!r}: unquoted value is not a token: {self.value!r}")

    def __str__(self) -> str:
        return f"{self.name}={_quote(self.value) if self.quoted else self.value}"


@dataclass(frozen=True, slots=True, kw_only=True)
class _AuthValue:
    """``scheme`` followed by one or more comma-separated auth-params, names unique."""

    scheme: str
    params: tuple[AuthParam, ...]

    def __post_init__(self) -> None:
        if not _is_token(self.scheme):
            raise ValueError(f"auth scheme is not a token: {self.scheme!r}")
        if not self.params:
            raise ValueError("an auth header value needs at least one parameter")  # RFC 3261 §25
        names = [param.name for param in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate auth-param names: {names}")

    @classmethod
    def parse(cls, value: str) -> Self:
        """Parse one header value; raise ``SipError(reason, 400)`` if it is malformed."""
        scheme, params = _parse_auth_value(value)
        return cls(scheme=scheme, params=params)

    def __str__(self) -> str:
        return f"{self.scheme} " + ", ".join(str(param) for param in self.params)

    def get(self, name: str) -> str | None:
        """The unescaped value of parameter ``name`` (case-insensitive), or None if absent."""
        key = name.lower()
        for param in self.params:
            if param.name == key:
                return param.value
        return None

    @property
    def is_digest(self) -> bool:
        """True for the Digest scheme (scheme names are case-insensitive, RFC 7235 §2.1)."""
        return self.scheme.lower() == "digest"

    @property
    def realm(self) -> str | None:
        return self.get("realm")

    @property
    def nonce(self) -> str | None:
        return self.get("nonce")

    @property
    def opaque(self) -> str | None:
        return self.get("opaque")

    @property
    def algorithm(self) -> str | None:
        """The algorithm as written; None means MD5 (RFC 7616 §3.3)."""
        return self.get("algorithm")

    @property
    def userhash(self) -> bool:
        return _is_true(self.get("userhash"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Challenge(_AuthValue):
    """A WWW-Authenticate or Proxy-Authenticate header value (RFC 3261 §20.27, §20.44).

    One header value holds exactly one challenge; a response may carry several headers, e.g. one
    per algorithm (RFC 8760 §2.4), which the caller parses one by one.
    """

    @property
    def stale(self) -> bool:
        """``stale=true`` (any case): the credentials were good, only the nonce was old."""
        return _is_true(self.get("stale"))

    @property
    def qop_options(self) -> tuple[str, ...]:
        """The ``qop`` list (RFC 7616 §3.3 ``qop="auth,auth-int"``); empty when absent."""
        return _split_list(self.get("qop"), ",")

    @property
    def domain(self) -> tuple[str, ...]:
        """The space-separated ``domain`` URI list; empty when absent."""
        return _split_list(self.get("domain"), " \t")

    @property
    def charset(self) -> str | None:
        return self.get("charset")


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials(_AuthValue):
    """An Authorization or Proxy-Authorization header value (RFC 3261 §20.7, §20.28)."""

    @property
    def username(self) -> str | None:
        return self.get("username")

    @property
    def uri(self) -> str | None:
        return self.get("uri")

    @property
    def response(self) -> str | None:
        return self.get("response")

    @property
    def cnonce(self) -> str | None:
        return self.get("cnonce")

    @property
    def nc(self) -> str | None:
        """The nonce-count as written (8 hex digits)."""
        return self.get("nc")

    @property
    def qop(self) -> str | None:
        return self.get("qop")


def auth_header_for(status: int) -> str:
    """The request header that answers a challenge in a ``status`` response (RFC 3261 §22.2, §22.3)."""
    try:
        return _AUTH_HEADERS[status]
    except KeyError:
        raise ValueError(f"status {status} carries no authentication challenge") from None


def challenge_header_for(status: int) -> str:
    """The header that carries the challenge in a ``status`` response (RFC 3261 §22.2, §22.3)."""
    try:
        return _CHALLENGE_HEADERS[status]
    except KeyError:
        raise ValueError(f"status {status} carries no authentication challenge") from None


def is_supported_algorithm(algorithm: str | None) -> bool:
    """True if ``algorithm`` (None meaning MD5) can be computed here."""
    return _resolve_algorithm(algorithm) is not None


def choose_challenge(challenges: Sequence[Challenge]) -> Challenge | None:
    """The challenge to answer, or None if none can be answered.

    Skips non-Digest schemes and Digest challenges that ``build_credentials`` would refuse
    (missing realm or nonce, unknown algorithm, no usable qop). Prefers the SHA-2 algorithms
    (SHA-256, SHA-512-256) over MD5; among equals the first (topmost) one wins, which is the
    server's order of preference (RFC 8760 §2.4).
    """
    best: Challenge | None = None
    best_strength = -1
    for challenge in challenges:
        try:
            plan = _plan(challenge)
        except SipError:
            continue
        if plan.strength > best_strength:
            best, best_strength = challenge, plan.strength
    return best


def build_credentials(
    challenge: Challenge,
    *,
    method: str,
    uri: str,
    username: str,
    password: str,
    cnonce: str,
    nonce_count: int = 1,
    body: bytes = b"",
) -> Credentials:
    """Answer a Digest ``challenge`` for one request (RFC 7616 §3.4, RFC 3261 §22.4).

    ``uri`` is the Request-URI as sent; ``method`` the request method; ``body`` the message body,
    used only for qop=auth-int. ``cnonce`` comes from the caller and must be non-empty when a qop
    is used; ``nonce_count`` counts requests sent with this nonce, from 1.

    qop=auth is chosen when offered, else auth-int; with no qop in the challenge the RFC 2069 form
    is used and cnonce/nc are not sent. The opaque value is echoed; ``algorithm`` is sent exactly
    when the challenge had it; ``userhash=true`` in the challenge hashes the username
    (RFC 7616 §3.4.4).

    Raises ``SipError(reason, 400)`` if the challenge cannot be answered, and ``ValueError`` for an
    out-of-range ``nonce_count`` or an empty ``cnonce`` where one is needed.
    """
    plan = _plan(challenge)
    if not 1 <= nonce_count <= _MAX_NONCE_COUNT:
        raise ValueError(f"nonce_count out of range: {nonce_count}")
    if plan.qop is not None and not cnonce:
        raise ValueError("cnonce must not be empty when a qop is used")
    nc = f"{nonce_count:08x}"  # RFC 7616 §3.4: 8LHEX
    response = _response(
        hash_name=plan.hash_name,
        session=plan.session,
        username=username,
        realm=plan.realm,
        password=password,
        method=method,
        uri=uri,
        nonce=plan.nonce,
        qop=plan.qop,
        nc=nc,
        cnonce=cnonce,
        body=body,
    )
    shown_username = _hex_hash(plan.hash_name, f"{username}:{plan.realm}") if challenge.userhash else username
    params = [
        AuthParam(name="username", value=shown_username),
        AuthParam(name="realm", value=plan.realm),
        AuthParam(name="nonce", value=plan.nonce),
        AuthParam(name="uri", value=uri),
        AuthParam(name="response", value=response),
    ]
    if challenge.algorithm is not None:
        params.append(AuthParam(name="algorithm", value=challenge.algorithm, quoted=False))
    if plan.qop is not None:
        params.append(AuthParam(name="cnonce", value=cnonce))
    if challenge.opaque is not None:
        params.append(AuthParam(name="opaque", value=challenge.opaque))
    if plan.qop is not None:
        # RFC 3261 §25 message-qop and nonce-count are tokens, not quoted-strings.
        params.append(AuthParam(name="qop", value=plan.qop, quoted=False))
        params.append(AuthParam(name="nc", value=nc, quoted=False))
    if challenge.userhash:
        params.append(AuthParam(name="userhash", value="true", quoted=False))
    return Credentials(scheme=challenge.scheme, params=tuple(params))


def verify_credentials(
    credentials: Credentials,
    *,
    method: str,
    password: str,
    expected_realm: str,
    body: bytes = b"",
) -> bool:
    """True if ``credentials`` carry the right Digest response for ``password``.

    The expected response is computed from the credentials' own username, realm, nonce, uri, qop,
    nc, cnonce and algorithm, with ``method`` and ``body`` from the request, and compared in
    constant time. False for a non-Digest scheme, a realm other than ``expected_realm``, missing
    fields, an unknown algorithm or qop, a malformed nc, a ``-sess`` algorithm without qop, and
    ``userhash=true`` (the registrar never offers it).

    Not checked here, and left to the caller: that the nonce was issued by us and is fresh, that
    nc grows (replay), that opaque and algorithm match what was challenged (downgrade), that the
    username is known (its password is looked up before the call), and whether ``uri`` must equal
    the Request-URI (RFC 3261 §22.4 says it should; some phones send another URI).
    """
    if not credentials.is_digest or credentials.userhash:
        return False
    username, realm, nonce = credentials.username, credentials.realm, credentials.nonce
    uri, response = credentials.uri, credentials.response
    if username is None or realm is None or nonce is None or uri is None or response is None:
        return False
    if realm != expected_realm:
        return False
    algorithm = _resolve_algorithm(credentials.algorithm)
    if algorithm is None:
        return False
    hash_name, session, _ = algorithm
    qop = credentials.qop
    nc = credentials.nc
    cnonce = credentials.cnonce
    if qop is None:
        if session:
            return False
        nc = cnonce = ""
    elif qop.lower() not in ("auth", "auth-int") or nc is None or cnonce is None or not _is_nc(nc):
        return False
    expected = _response(
        hash_name=hash_name,
        session=session,
        username=username,
        realm=realm,
        password=password,
        method=method,
        uri=uri,
        nonce=nonce,
        qop=qop,
        nc=nc,
        cnonce=cnonce,
        body=body,
    )
    return hmac.compare_digest(expected.encode("ascii"), response.lower().encode("utf-8"))


def make_challenge(
    *,
    realm: str,
    nonce: str,
    algorithm: str | None = None,
    qop: Sequence[str] = ("auth",),
    opaque: str | None = None,
    stale: bool = False,
) -> Challenge:
    """A Digest challenge for a 401/407 (RFC 3261 §22.1). ``qop=()`` omits qop (RFC 2069 clients)."""
    params = [AuthParam(name="realm", value=realm)]
    if qop:
        params.append(AuthParam(name="qop", value=",".join(qop)))
    params.append(AuthParam(name="nonce", value=nonce))
    if opaque is not None:
        params.append(AuthParam(name="opaque", value=opaque))
    if stale:
        params.append(AuthParam(name="stale", value="true", quoted=False))
    if algorithm is not None:
        params.append(AuthParam(name="algorithm", value=algorithm, quoted=False))
    return Challenge(scheme="Digest", params=tuple(params))


@dataclass(frozen=True, slots=True, kw_only=True)
class _Plan:
    """What answering a challenge takes: the resolved algorithm, qop, realm and nonce."""

    hash_name: str
    session: bool
    strength: int
    qop: str | None
    realm: str
    nonce: str


def _plan(challenge: Challenge) -> _Plan:
    """Check that ``challenge`` can be answered; raise ``SipError(reason, 400)`` if not."""
    if not challenge.is_digest:
        raise SipError(f"unsupported authentication scheme {challenge.scheme!r}", 400)
    realm, nonce = challenge.realm, challenge.nonce
    if realm is None or nonce is None:
        raise SipError("Digest challenge without realm or nonce", 400)
    algorithm = _resolve_algorithm(challenge.algorithm)
    if algorithm is None:
        raise SipError(f"unsupported Digest algorithm {challenge.algorithm!r}", 400)
    hash_name, session, strength = algorithm
    qop: str | None = None
    if challenge.get("qop") is not None:
        options = {option.lower() for option in challenge.qop_options}
        if "auth" in options:
            qop = "auth"
        elif "auth-int" in options:
            qop = "auth-int"
        else:
            raise SipError(f"no supported qop in {challenge.qop_options!r}", 400)
    if session and qop is None:
        # RFC 2617 §3.2.2: cnonce, which -sess hashes into A1, is sent only with a qop.
        raise SipError("-sess algorithm without qop", 400)
    return _Plan(hash_name=hash_name, session=session, strength=strength, qop=qop, realm=realm, nonce=nonce)


def _resolve_algorithm(algorithm: str | None) -> tuple[str, bool, int] | None:
    """(hashlib name, is -sess, strength) for an algorithm label, None if unsupported."""
    label = "md5" if algorithm is None else algorithm.lower()  # RFC 7616 §3.3: absent means MD5
    base = label.removesuffix("-sess")
    entry = _HASHES.get(base)
    if entry is None or entry[0] not in hashlib.algorithms_available:
        return None
    return entry[0], base != label, entry[1]


def _hex_hash(hash_name: str, data: str | bytes) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.new(hash_name, raw).hexdigest()


def _response(
    *,
    hash_name: str,
    session: bool,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None,
    nc: str,
    cnonce: str,
    body: bytes,
) -> str:
    """The request-digest of RFC 7616 §3.4.1 (with qop) or RFC 2069 (without)."""
    ha1 = _hex_hash(hash_name, f"{username}:{realm}:{password}")
    if session:
        ha1 = _hex_hash(hash_name, f"{ha1}:{nonce}:{cnonce}")  # RFC 7616 §3.4.2
    a2 = f"{method}:{uri}"
    if qop is not None and qop.lower() == "auth-int":
        a2 = f"{a2}:{_hex_hash(hash_name, body)}"  # RFC 7616 §3.4.3
    ha2 = _hex_hash(hash_name, a2)
    if qop is None:
        return _hex_hash(hash_name, f"{ha1}:{nonce}:{ha2}")
    return _hex_hash(hash_name, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def _is_nc(text: str) -> bool:
    return len(text) == 8 and all(ch in "0123456789abcdefABCDEF" for ch in text)


def _is_true(value: str | None) -> bool:
    return value is not None and value.lower() == "true"


def _split_list(value: str | None, separators: str) -> tuple[str, ...]:
    if value is None:
        return ()
    for separator in separators[1:]:
        value = value.replace(separator, separators[0])
    return tuple(item.strip(" \t") for item in value.split(separators[0]) if item.strip(" \t"))


def _quote(value: str) -> str:
    """A quoted-string for ``value``: ``"`` and ``\\`` and control characters as quoted-pairs."""
    out = ['"']
    for ch in value:
        if ch in '"\\' or (ch < " " and ch != "\t") or ch == "\x7f":
            out.append("\\")  # RFC 3261 §25 quoted-pair
        out.append(ch)
    out.append('"')
    return "".join(out)


def _token_end(text: str, pos: int) -> int:
    end = pos
    while end < len(text) and text[end] in _TOKEN_CHARS:
        end += 1
    return end


def _skip_lws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _LWS:
        pos += 1
    return pos


def _read_quoted(text: str, pos: int) -> tuple[str, int]:
    """Read a quoted-string whose opening quote ends before ``pos``; return (value, end)."""
    out: list[str] = []
    while pos < len(text):
        ch = text[pos]
        if ch == '"':
            return "".join(out), pos + 1
        if ch == "\\":
            pos += 1
            if pos == len(text):
                break
            ch = text[pos]
        if ch in "\r\n":
            raise SipError("line break inside a quoted-string", 400)
        out.append(ch)
        pos += 1
    raise SipError("unterminated quoted-string in authentication header", 400)


def _parse_auth_value(value: str) -> tuple[str, tuple[AuthParam, ...]]:
    """RFC 3261 §25: ``auth-scheme LWS auth-param *(COMMA auth-param)``."""
    text = value.strip(_LWS)
    if not text:
        raise SipError("empty authentication header value", 400)
    pos = _token_end(text, 0)
    if pos == 0 or (pos < len(text) and text[pos] not in _LWS):
        raise SipError("authentication header value without a scheme", 400)
    scheme = text[:pos]
    if pos == len(text):
        raise SipError(f"authentication scheme {scheme!r} without parameters", 400)
    pos = _skip_lws(text, pos)
    params: list[AuthParam] = []
    seen: set[str] = set()
    while True:
        name_end = _token_end(text, pos)
        if name_end == pos:
            raise SipError("expected an authentication parameter name", 400)
        name = text[pos:name_end].lower()
        if name in seen:
            raise SipError(f"duplicate authentication parameter {name!r}", 400)  # RFC 3261 §7.3.1
        seen.add(name)
        pos = _skip_lws(text, name_end)
        if pos == len(text) or text[pos] != "=":
            raise SipError(f"authentication parameter {name!r} without '='", 400)
        pos = _skip_lws(text, pos + 1)
        if pos < len(text) and text[pos] == '"':
            param_value, pos = _read_quoted(text, pos + 1)
            params.append(AuthParam(name=name, value=param_value, quoted=True))
        else:
            value_end = _token_end(text, pos)
            if value_end == pos:
                raise SipError(f"authentication parameter {name!r} without a value", 400)
            params.append(AuthParam(name=name, value=text[pos:value_end], quoted=False))
            pos = value_end
        pos = _skip_lws(text, pos)
        if pos == len(text):
            return scheme, tuple(params)
        if text[pos] != ",":
            raise SipError("expected ',' between authentication parameters", 400)
        pos = _skip_lws(text, pos + 1)
