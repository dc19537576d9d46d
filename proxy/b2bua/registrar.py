"""The registrar for the PBX's trunk (RFC 3261 §10.3).

A PBX or softphone points its carrier trunk at callherald and REGISTERs here as if callherald were
the carrier; inbound calls are later sent to the contact it registered, at the address its REGISTER
came from (NAT).

Contracts:

* Sans-IO: ``now`` is always a parameter and every random value (nonces, To-tags) comes from the
  injected ``token``. ``handle`` never raises for bad input; it answers with a response.
* With trunk accounts configured, every REGISTER is authenticated with Digest (RFC 3261 §22.4,
  RFC 7616): MD5 with ``qop="auth"`` is offered, and clients answering RFC 2069-style (no qop, as
  pyVoIP 1.6.8 does) are accepted. The digest ``uri`` is not compared with the Request-URI, since
  some phones send another URI (pyVoIP sends ``sip:<server>;transport=UDP``).
* With no trunk accounts the registrar trusts the network: the caller has already checked that the
  source is an allowed PBX network, and every REGISTER is accepted without authentication.
* Nonces are issued by us, live ``nonce_lifetime_s`` and are checked for replay: with a qop the
  nonce-count must grow; without one a nonce is good for one request. A correct answer on an
  unknown, expired or replayed nonce gets a new challenge with ``stale=true``.
* A wrong password or unknown user is re-challenged (401) like a missing one, so the answer is no
  oracle; after ``max_auth_failures`` failures from one source host within
  ``auth_failure_window_s``, that host gets 403 for every REGISTER until old failures age out.
* The challenge realm is the realm of the account named by the To URI's user, else ``realm``.
* Only the To URI's user and host name the address-of-record: the user compared as unescaped
  text, case-sensitively, the host case-insensitively; scheme, port and parameters are ignored.
  The Request-URI's domain is not checked (the PBX addresses callherald by IP).
* Contacts are matched by scheme, unescaped user, host (any case), port and ``transport``; other
  URI parameters are not compared (a simplification of §19.1.4).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from proxy.b2bua.settings import Address, TrunkAccount
from proxy.sip.auth import Credentials, make_challenge, verify_credentials
from proxy.sip.errors import SipError
from proxy.sip.headers import NameAddress
from proxy.sip.message import Request, Response, make_response
from proxy.sip.uri import SipUri, Uri

__all__ = [
    "AUTH_FAILURE_WINDOW_S",
    "DIGEST_ALGORITHM",
    "MAX_AUTH_FAILURES",
    "MAX_OUTSTANDING_NONCES",
    "Binding",
    "Registrar",
]

DIGEST_ALGORITHM = "MD5"
MAX_AUTH_FAILURES = 5
AUTH_FAILURE_WINDOW_S = 300.0
MAX_OUTSTANDING_NONCES = 1024  # oldest nonces are forgotten beyond this, bounding memory

_ContactKey = tuple[object, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Binding:
    """One registered contact of an address-of-record (RFC 3261 §10.3).

    ``aor`` is ``user@host`` (host lower-case); ``contact_uri`` the Contact URI as sent;
    ``source`` where the REGISTER came from; ``expires_at`` when the binding lapses;
    ``call_id`` / ``cseq`` of the REGISTER that last set it (§10.3 step 7); ``refreshed_at`` when.
    """

    aor: str
    user: str
    contact_uri: str
    source: Address
    expires_at: float
    call_id: str
    cseq: int
    refreshed_at: float

    def remaining_s(self, now: float) -> int:
        """Whole seconds left, as written in a Contact ``expires`` parameter."""
        return max(0, round(self.expires_at - now))


@dataclass(frozen=True, slots=True, kw_only=True)
class _Record:
    binding: Binding
    order: tuple[int, int]  # (request number, -position in the request): later wins, first listed wins


@dataclass(slots=True)
class _Nonce:
    issued_at: float
    last_nc: int = 0
    used: bool = False


class Registrar:
    """Accepts REGISTER requests for the trunk and keeps the bindings (RFC 3261 §10.3)."""

    def __init__(
        self,
        accounts: Sequence[TrunkAccount],
        *,
        realm: str,
        token: Callable[[], str],
        min_expires_s: int = 60,
        max_expires_s: int = 3600,
        default_expires_s: int = 3600,
        nonce_lifetime_s: float = 300.0,
        max_auth_failures: int = MAX_AUTH_FAILURES,
        auth_failure_window_s: float = AUTH_FAILURE_WINDOW_S,
    ) -> None:
        if not 0 < min_expires_s <= max_expires_s:
            raise ValueError(f"need 0 < min_expires_s <= max_expires_s, got {min_expires_s}, {max_expires_s}")
        if not min_expires_s <= default_expires_s <= max_expires_s:
            raise ValueError(f"default_expires_s {default_expires_s} outside the min/max range")
        if max_auth_failures < 1:
            raise ValueError("max_auth_failures must be at least 1")
        self._accounts = {account.username: account for account in accounts}
        self._realm = realm
        self._token = token
        self.min_expires_s = min_expires_s
        self.max_expires_s = max_expires_s
        self.default_expires_s = default_expires_s
        self._nonce_lifetime_s = nonce_lifetime_s
        self._max_failures = max_auth_failures
        self._failure_window_s = auth_failure_window_s
        self._nonces: dict[str, _Nonce] = {}
        self._failures: dict[str, list[float]] = {}
        self._aors: dict[tuple[str, str], dict[_ContactKey, _Record]] = {}
        self._requests = 0

    # Queries -----------------------------------------------------------------------------------

    def lookup(self, user: str | None, now: float) -> Binding | None:
        """The binding an inbound call for ``user`` goes to, or None.

        The most recently refreshed live binding whose AOR user is ``user``; when ``user`` is None
        or has no live binding, the most recently refreshed live binding of any AOR. Among
        contacts refreshed by the same REGISTER the first listed wins.
        """
        live = [record for table in self._aors.values() for record in table.values()]
        live = [record for record in live if record.binding.expires_at > now]
        if user is not None:
            mine = [record for record in live if record.binding.user == user]
            live = mine or live
        if not live:
            return None
        return max(live, key=lambda record: (record.binding.refreshed_at, record.order)).binding

    def bindings(self, now: float) -> list[Binding]:
        """Every live binding, grouped by AOR; AORs and contacts in order of first registration."""
        return [
            record.binding
            for table in self._aors.values()
            for record in table.values()
            if record.binding.expires_at > now
        ]

    def purge(self, now: float) -> list[Binding]:
        """Remove the bindings that expired at or before ``now``; return them."""
        removed: list[Binding] = []
        for aor in list(self._aors):
            table = self._aors[aor]
            for key in [key for key, record in table.items() if record.binding.expires_at <= now]:
                removed.append(table.pop(key).binding)
            if not table:
                del self._aors[aor]
        return removed

    # REGISTER ----------------------------------------------------------------------------------

    def handle(self, request: Request, source: Address, now: float) -> Response:
        """Process one REGISTER from ``source`` and return the final response to send.

        Raises ValueError for a method other than REGISTER (the caller routes requests).
        """
        if request.method != "REGISTER":
            raise ValueError(f"the registrar handles REGISTER, not {request.method}")
        self.purge(now)
        self._forget(now)
        to_tag = self._token()
        try:
            return self._handle(request, source, now, to_tag)
        except SipError as error:
            return _reply(request, error.status_hint, to_tag)

    def _handle(self, request: Request, source: Address, now: float, to_tag: str) -> Response:
        aor = _address_of_record(request.to)
        if aor is None:
            return _reply(request, 404, to_tag)  # §10.3 step 5
        if self._accounts:
            denial = self._authenticate(request, source, now, aor[0], to_tag)
            if denial is not None:
                return denial
        return self._update(request, source, now, aor, to_tag)

    def _authenticate(
        self, request: Request, source: Address, now: float, user: str, to_tag: str
    ) -> Response | None:
        """None when the request is authenticated and authorised, else the response (§10.3 steps 3-6)."""
        host = source[0]
        if len(self._failures.get(host, ())) >= self._max_failures:
            return _reply(request, 403, to_tag)
        challenge_account = self._accounts.get(user)
        realm = challenge_account.realm if challenge_account is not None else self._realm
        credentials = _digest_credentials(request.headers.get_all("authorization"))
        if credentials is None:
            return self._challenge(request, realm, now, to_tag, stale=False)
        account = self._accounts.get(credentials.username or "")
        algorithm = credentials.algorithm
        valid = (
            account is not None
            and (algorithm is None or algorithm.upper() == DIGEST_ALGORITHM)
            and verify_credentials(
                credentials,
                method=request.method,
                password=account.password,
                expected_realm=account.realm,
                body=request.body,
            )
        )
        if not valid or account is None:
            self._failures.setdefault(host, []).append(now)
            if len(self._failures[host]) >= self._max_failures:
                return _reply(request, 403, to_tag)
            return self._challenge(request, realm, now, to_tag, stale=False)
        if not self._use_nonce(credentials, now):
            # RFC 7616 §3.3: the digest was right, only the nonce was not (any more) valid.
            return self._challenge(request, realm, now, to_tag, stale=True)
        if account.username != user:
            return _reply(request, 403, to_tag)  # §10.3 step 6: not authorised for this AOR
        return None

    def _use_nonce(self, credentials: Credentials, now: float) -> bool:
        state = self._nonces.get(credentials.nonce or "")
        if state is None or state.issued_at + self._nonce_lifetime_s <= now:
            return False
        if credentials.qop is None:
            if state.used:
                return False  # RFC 2069 form: no nonce-count, so one request per nonce
        else:
            nc = int(credentials.nc or "0", 16)
            if nc <= state.last_nc:
                return False  # RFC 7616 §3.4.5: a replayed nonce-count
            state.last_nc = nc
        state.used = True
        return True

    def _challenge(self, request: Request, realm: str, now: float, to_tag: str, *, stale: bool) -> Response:
        nonce = self._token()
        self._nonces[nonce] = _Nonce(issued_at=now)
        while len(self._nonces) > MAX_OUTSTANDING_NONCES:
            del self._nonces[next(iter(self._nonces))]
        challenge = make_challenge(realm=realm, nonce=nonce, algorithm=DIGEST_ALGORITHM, stale=stale)
        return _reply(request, 401, to_tag, [("WWW-Authenticate", str(challenge))])

    def _forget(self, now: float) -> None:
        """Drop expired nonces and failures older than the window."""
        for nonce in [n for n, s in self._nonces.items() if s.issued_at + self._nonce_lifetime_s <= now]:
            del self._nonces[nonce]
        horizon = now - self._failure_window_s
        for host in list(self._failures):
            recent = [t for t in self._failures[host] if t > horizon]
            if recent:
                self._failures[host] = recent
            else:
                del self._failures[host]

    def _update(
        self, request: Request, source: Address, now: float, aor: tuple[str, str], to_tag: str
    ) -> Response:
        """§10.3 steps 7-8: validate every contact, then apply all changes or none."""
        call_id, cseq = request.call_id, request.cseq.seq
        table = self._aors.get(aor, {})
        values = [value.strip() for value in request.headers.get_all("contact")]
        if "*" in values:
            if len(values) != 1 or request.expires != 0:
                return _reply(request, 400, to_tag)  # §10.3 step 6: "*" only alone with Expires: 0
            if any(_out_of_order(record.binding, call_id, cseq) for record in table.values()):
                return _reply(request, 500, to_tag, reason="Out of Order")
            self._aors.pop(aor, None)
            return self._ok(request, aor, now, to_tag)
        header_expires = request.expires
        planned: list[tuple[_ContactKey, NameAddress, int]] = []
        for contact in request.contacts:
            expires = _requested_expires(contact, header_expires, self.default_expires_s)
            if 0 < expires < self.min_expires_s:
                return _reply(request, 423, to_tag, [("Min-Expires", str(self.min_expires_s))])
            planned.append((_contact_key(contact.uri), contact, min(expires, self.max_expires_s)))
        for key, _, _ in planned:
            existing = table.get(key)
            if existing is not None and _out_of_order(existing.binding, call_id, cseq):
                return _reply(request, 500, to_tag, reason="Out of Order")  # §10.3 step 7
        if planned:
            self._requests += 1
            table = self._aors.setdefault(aor, {})
            for position, (key, contact, expires) in enumerate(planned):
                if expires == 0:
                    table.pop(key, None)
                    continue
                binding = Binding(
                    aor=f"{aor[0]}@{aor[1]}",
                    user=aor[0],
                    contact_uri=str(contact.uri),
                    source=source,
                    expires_at=now + expires,
                    call_id=call_id,
                    cseq=cseq,
                    refreshed_at=now,
                )
                table[key] = _Record(binding=binding, order=(self._requests, -position))
            if not table:
                del self._aors[aor]
        return self._ok(request, aor, now, to_tag)

    def _ok(self, request: Request, aor: tuple[str, str], now: float, to_tag: str) -> Response:
        """200 listing every current binding of the AOR with its remaining time (§10.3 step 8)."""
        contacts = [
            ("Contact", f"<{record.binding.contact_uri}>;expires={record.binding.remaining_s(now)}")
            for record in self._aors.get(aor, {}).values()
        ]
        return _reply(request, 200, to_tag, contacts)


def _reply(
    request: Request,
    status: int,
    to_tag: str,
    extra_headers: Iterable[tuple[str, str]] = (),
    *,
    reason: str | None = None,
) -> Response:
    """A final response with our To-tag (§8.2.6.2), or without it when the To header is unusable."""
    extra = list(extra_headers)
    try:
        return make_response(request, status, reason, to_tag=to_tag, extra_headers=extra)
    except SipError:
        return make_response(request, status, reason, extra_headers=extra)


def _address_of_record(to: NameAddress) -> tuple[str, str] | None:
    """(unescaped user, lower-case host) of a SIP/SIPS To URI with a user part, else None."""
    uri = to.uri
    if not isinstance(uri, SipUri) or uri.user is None:
        return None
    user = uri.user_unescaped
    assert user is not None
    return user, uri.host.lower()


def _digest_credentials(values: Sequence[str]) -> Credentials | None:
    """The first Digest credentials among Authorization values. Raises SipError(400) if malformed."""
    for value in values:
        credentials = Credentials.parse(value)
        if credentials.is_digest:
            return credentials
    return None


def _requested_expires(contact: NameAddress, header_expires: int | None, default: int) -> int:
    """§10.3 step 7: the Contact ``expires`` parameter, else the Expires header, else the default."""
    param = contact.param("expires")
    if param is not None:
        if not param.isascii() or not param.isdigit() or len(param) > 10:
            raise SipError(f"bad Contact expires parameter {param!r}", 400)
        return int(param)
    return default if header_expires is None else header_expires


def _contact_key(uri: Uri) -> _ContactKey:
    if isinstance(uri, SipUri):
        return (uri.scheme, uri.user_unescaped, uri.host.lower(), uri.port, uri.transport)
    return (str(uri),)


def _out_of_order(binding: Binding, call_id: str, cseq: int) -> bool:
    """§10.3 step 7: the same Call-ID needs a higher CSeq than the stored one."""
    return binding.call_id == call_id and cseq <= binding.cseq
