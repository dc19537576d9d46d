"""callherald registering itself with the carrier (RFC 3261 §10.2), sans-IO.

``RegistrationClient`` builds REGISTER requests and reacts to responses, timeouts and timers; the
caller sends the requests (through a client transaction, which retransmits and reports a timeout)
and calls ``handle_timers`` at ``next_deadline()``.

Rules:

* One Call-ID and one From-tag for the client's whole life; the CSeq grows by one per request
  (§10.2.4); every request has a new Via branch ``z9hG4bK<token>``.
* 401/407 challenges are answered (RFC 3261 §22.2, §22.3). The answered challenges are remembered
  and later requests carry credentials for them up front, with the nonce-count growing while the
  nonce stays the same. A challenge that comes back for the nonce just answered without
  ``stale=true`` means the credentials are wrong: a failure. At most
  ``MAX_CHALLENGE_ROUNDS`` challenges (and 423s) are answered per attempt.
* The granted time is the ``expires`` parameter of our Contact in the 2xx, else its Expires header,
  else the interval asked for; it counts from when the REGISTER was sent. The refresh is sent when
  80 % of the grant has passed, but no later than 5 s before expiry, and never before half of it
  (``refresh_delay_s``).
* 423 is answered at once with the Min-Expires value, which then becomes the interval asked for.
* Any other failure, and a transaction timeout, schedule a retry after a back-off: ``retry_min_s``,
  doubling up to ``retry_max_s``, reset by a success. A Retry-After in the failure response
  lengthens the wait (up to ``retry_max_s``).
* ``state`` is REGISTERED from the first success until ``stop`` or a failure, refreshes included;
  REGISTERING while a first registration or a retry is in flight.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from proxy.b2bua.settings import RegistrationSettings
from proxy.sip.auth import (
    Challenge,
    auth_header_for,
    build_credentials,
    challenge_header_for,
    choose_challenge,
)
from proxy.sip.errors import SipError
from proxy.sip.message import Request, Response
from proxy.sip.uri import SipUri, Uri, parse_uri

__all__ = [
    "DEFAULT_ALLOW",
    "MAX_CHALLENGE_ROUNDS",
    "MAX_FORWARDS",
    "REFRESH_FRACTION",
    "REFRESH_MARGIN_S",
    "RegistrationClient",
    "RegistrationState",
    "refresh_delay_s",
]

REFRESH_FRACTION = 0.8
REFRESH_MARGIN_S = 5.0
MAX_CHALLENGE_ROUNDS = 3
MAX_FORWARDS = 70
DEFAULT_ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS"


class RegistrationState(StrEnum):
    """Where the registration stands (see the module rules)."""

    UNREGISTERED = "unregistered"
    REGISTERING = "registering"
    REGISTERED = "registered"
    FAILED_BACKING_OFF = "failed_backing_off"


def refresh_delay_s(granted_s: float) -> float:
    """Seconds after sending a REGISTER granted ``granted_s`` at which to refresh it.

    80 % of the grant, but no later than ``REFRESH_MARGIN_S`` before expiry; for grants so short
    that this falls before the halfway point, the halfway point.
    """
    return max(min(REFRESH_FRACTION * granted_s, granted_s - REFRESH_MARGIN_S), granted_s / 2)


@dataclass(slots=True)
class _Answer:
    """A challenge we answer in every request, and how often its nonce was sent."""

    challenge: Challenge
    uses: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class _Pending:
    cseq: int
    expires: int
    sent_at: float
    unregister: bool
    sent_nonces: dict[int, str] = field(default_factory=dict)


class RegistrationClient:
    """Keeps callherald's contact registered with the carrier's registrar (RFC 3261 §10.2).

    ``contact`` is our Contact URI text (surrounding ``<>`` are accepted and dropped); ``aor``
    the account's URI (``sip:username@carrier``); ``auth_username`` the Digest user name when it
    differs from ``username``; ``realm``, when given, restricts which challenges are answered.
    Raises SipError if ``contact`` is not a URI.
    """

    def __init__(
        self,
        *,
        registrar_uri: SipUri,
        aor: SipUri,
        contact: str,
        settings: RegistrationSettings,
        username: str,
        password: str,
        auth_username: str | None = None,
        realm: str | None = None,
        token: Callable[[], str],
        local_via_host_port: str,
        transport: str = "UDP",
        user_agent: str = "callherald",
        allow: str = DEFAULT_ALLOW,
    ) -> None:
        self._registrar_uri = registrar_uri
        self._aor = aor
        self._contact = contact.strip().removeprefix("<").removesuffix(">")
        self._contact_uri = parse_uri(self._contact)
        self._settings = settings
        self._digest_username = auth_username if auth_username is not None else username
        self._password = password
        self._realm = realm
        self._token = token
        self._via_host_port = local_via_host_port
        self._transport = transport.upper()
        self._user_agent = user_agent
        self._allow = allow
        self._from_tag = token()
        self._call_id = token()
        self._cseq = 0
        self._interval_s = settings.interval_s
        self._answers: dict[int, _Answer] = {}
        self._pending: _Pending | None = None
        self._deadline: float | None = None
        self._rounds = 0
        self._next_backoff_s: float | None = None
        self.state = RegistrationState.UNREGISTERED
        self.registered_until: float | None = None

    @property
    def call_id(self) -> str:
        return self._call_id

    @property
    def interval_s(self) -> int:
        """The registration interval asked for (raised by a 423)."""
        return self._interval_s

    # API ---------------------------------------------------------------------------------------

    def start(self, now: float) -> Request:
        """The first REGISTER. Raises RuntimeError unless UNREGISTERED."""
        if self.state is not RegistrationState.UNREGISTERED:
            raise RuntimeError(f"registration already started ({self.state})")
        self.state = RegistrationState.REGISTERING
        self._next_backoff_s = None
        self._rounds = 0
        return self._send(now, self._interval_s, unregister=False)

    def stop(self, now: float) -> Request | None:
        """Stop; the un-REGISTER (Expires: 0) to send when a binding may exist, else None."""
        pending = self._pending
        may_be_bound = (self.registered_until is not None and self.registered_until > now) or (
            pending is not None and not pending.unregister
        )
        self.state = RegistrationState.UNREGISTERED
        self.registered_until = None
        self._deadline = None
        self._rounds = 0
        if not may_be_bound:
            self._pending = None
            return None
        return self._send(now, 0, unregister=True)

    def next_deadline(self) -> float | None:
        """When ``handle_timers`` has work (refresh or retry); None while a request is in flight."""
        return self._deadline if self._pending is None else None

    def handle_timers(self, now: float) -> Request | None:
        """The refresh or retry REGISTER when its time has come, else None."""
        if self._pending is not None or self._deadline is None or now < self._deadline:
            return None
        self._deadline = None
        self._rounds = 0
        if self.state is RegistrationState.FAILED_BACKING_OFF:
            self.state = RegistrationState.REGISTERING
        return self._send(now, self._interval_s, unregister=False)

    def on_timeout(self, now: float) -> None:
        """The REGISTER transaction timed out (Timer F): back off and retry."""
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        self._fail(now, pending, retry_after_s=None)

    def on_response(self, response: Response, now: float) -> Request | None:
        """Handle a response; return a request to send at once (answer to a challenge or a 423)."""
        pending = self._pending
        if pending is None or not self._matches(response, pending) or response.status < 200:
            return None
        self._pending = None
        status = response.status
        if 200 <= status < 300:
            if pending.unregister:
                return None
            granted = self._granted_s(response, pending.expires)
            if granted <= 0:
                self._fail(now, pending, retry_after_s=None)
                return None
            self.state = RegistrationState.REGISTERED
            self.registered_until = pending.sent_at + granted
            self._deadline = pending.sent_at + refresh_delay_s(granted)
            self._next_backoff_s = None
            self._rounds = 0
            return None
        if status in (401, 407):
            return self._on_challenge(response, pending, now)
        if status == 423 and not pending.unregister and self._rounds < MAX_CHALLENGE_ROUNDS:
            min_expires = _leading_int(response.headers.get("min-expires"))
            if min_expires is not None and min_expires > pending.expires:
                self._rounds += 1
                self._interval_s = min_expires  # §10.2.8: retry with the registrar's minimum
                return self._send(now, min_expires, unregister=False)
        self._fail(now, pending, retry_after_s=_leading_int(response.headers.get("retry-after")))
        return None

    # Internals ---------------------------------------------------------------------------------

    def _matches(self, response: Response, pending: _Pending) -> bool:
        try:
            cseq, call_id = response.cseq, response.call_id
        except SipError:
            return False
        return call_id == self._call_id and cseq.seq == pending.cseq and cseq.method == "REGISTER"

    def _on_challenge(self, response: Response, pending: _Pending, now: float) -> Request | None:
        status = response.status
        challenges: list[Challenge] = []
        for value in response.headers.get_all(challenge_header_for(status)):
            try:
                challenge = Challenge.parse(value)
            except SipError:
                continue
            if self._realm is None or challenge.realm == self._realm:
                challenges.append(challenge)
        chosen = choose_challenge(challenges)
        sent_nonce = pending.sent_nonces.get(status)
        rejected = chosen is not None and sent_nonce == chosen.nonce and not chosen.stale
        if chosen is None or rejected or self._rounds >= MAX_CHALLENGE_ROUNDS:
            self._answers.clear()  # start the next attempt without credentials known to fail
            self._fail(now, pending, retry_after_s=None)
            return None
        self._rounds += 1
        previous = self._answers.get(status)
        uses = previous.uses if previous is not None and previous.challenge.nonce == chosen.nonce else 0
        self._answers[status] = _Answer(challenge=chosen, uses=uses)
        return self._send(now, pending.expires, unregister=pending.unregister)

    def _fail(self, now: float, pending: _Pending, *, retry_after_s: int | None) -> None:
        self._rounds = 0
        if pending.unregister:
            return  # stopping: nothing to retry
        retry_max = self._settings.retry_max_s
        backoff = self._next_backoff_s
        delay = min(float(self._settings.retry_min_s if backoff is None else backoff), retry_max)
        self._next_backoff_s = min(delay * 2, retry_max)
        if retry_after_s is not None:
            delay = max(delay, min(float(retry_after_s), retry_max))  # §20.33
        self.state = RegistrationState.FAILED_BACKING_OFF
        self._deadline = now + delay

    def _granted_s(self, response: Response, requested: int) -> int:
        """§10.2.4: our Contact's expires parameter, else the Expires header, else what we asked."""
        try:
            contacts = response.contacts
        except SipError:
            contacts = []
        for contact in contacts:
            if _same_uri(contact.uri, self._contact_uri):
                value = _leading_int(contact.param("expires"))
                if value is not None:
                    return value
        value = _leading_int(response.headers.get("expires"))
        return requested if value is None else value

    def _send(self, now: float, expires: int, *, unregister: bool) -> Request:
        self._cseq += 1
        branch = "z9hG4bK" + self._token()
        fields = [
            ("Via", f"SIP/2.0/{self._transport} {self._via_host_port};branch={branch};rport"),
            ("Max-Forwards", str(MAX_FORWARDS)),
            ("From", f"<{self._aor}>;tag={self._from_tag}"),
            ("To", f"<{self._aor}>"),
            ("Call-ID", self._call_id),
            ("CSeq", f"{self._cseq} REGISTER"),
            ("Contact", f"<{self._contact}>"),
            ("Expires", str(expires)),
        ]
        sent_nonces: dict[int, str] = {}
        for status in sorted(self._answers):
            answer = self._answers[status]
            answer.uses += 1
            credentials = build_credentials(
                answer.challenge,
                method="REGISTER",
                uri=str(self._registrar_uri),
                username=self._digest_username,
                password=self._password,
                cnonce=self._token(),
                nonce_count=answer.uses,
            )
            fields.append((auth_header_for(status), str(credentials)))
            sent_nonces[status] = answer.challenge.nonce or ""
        fields += [
            ("User-Agent", self._user_agent),
            ("Allow", self._allow),
            ("Content-Length", "0"),
        ]
        self._pending = _Pending(
            cseq=self._cseq, expires=expires, sent_at=now, unregister=unregister, sent_nonces=sent_nonces
        )
        return Request("REGISTER", self._registrar_uri, fields)


def _leading_int(value: str | None) -> int | None:
    """The decimal number a header value or parameter starts with (``120;duration=60`` -> 120)."""
    if value is None:
        return None
    text = value.strip()
    end = 0
    while end < len(text) and end < 10 and text[end] in "0123456789":
        end += 1
    return int(text[:end]) if end else None


def _same_uri(a: Uri, b: Uri) -> bool:
    """Contact match: scheme, user, host (any case) and port for SIP URIs, else the text."""
    if isinstance(a, SipUri) and isinstance(b, SipUri):
        return (
            a.scheme == b.scheme
            and a.user_unescaped == b.user_unescaped
            and a.host.lower() == b.host.lower()
            and a.port == b.port
        )
    return str(a) == str(b)
