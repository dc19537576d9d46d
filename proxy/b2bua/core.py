"""The B2BUA core: every call as two dialogs, media anchored, decisions returned as effects.

Theory of operation
-------------------
``proxy.aio`` hands every parsed message to ``B2bua.receive(message, source, side, now)``. The
transaction layer (RFC 3261 §17) absorbs retransmissions and hands the rest up: new requests,
responses to our requests, timeouts. The core answers with effects (``SendSip``, ``OpenMedia``,
``SetMediaRemote``, ``CloseMedia``, ``CallStarted``, ``CallEnded``, ``LogEvent``) which
``proxy.aio`` executes in order. Time only moves through ``now`` arguments: the I/O layer calls
``handle_timers(now)`` at ``next_deadline()``.

A call begins with an INVITE on one side (the ``a`` leg). The core answers 100 at once, rewrites
the SDP offer so both legs' media flow through its own RTP ports, and sends a new INVITE with its
own Call-ID, tags, Via and Contact to the other side (the ``b`` leg). Provisional responses and the
final answer travel back the same way, SDP rewritten again. BYE on either leg ends both; CANCEL
before the answer cancels ``b`` and answers ``a`` with 487; re-INVITE, UPDATE and INFO are relayed
within the call. Issue hooks for announcements and recording sit at ``_call_callee`` (before ``b``
is called) and ``_bridge`` (when ``b`` answered).
"""

from __future__ import annotations

import heapq
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from functools import partial
from types import MappingProxyType
from typing import Final
from urllib.parse import unquote

from proxy.b2bua.admission import CallAdmission
from proxy.b2bua.announcer import AnnouncerStage, CallAnnouncer
from proxy.b2bua.call import (
    STATIC_PAYLOAD_TYPES,
    Call,
    CallPhase,
    DeferredAck,
    Dialog,
    PartyIdentity,
    PendingRelay,
    Transfer,
    anchor_sdp,
    answer_with_offers_lines,
    answer_within_offer,
    call_answer_in_party_law,
    carries_plain_rtp,
    has_allowed_audio,
    media_format,
    offer_with_other_law,
    packet_ms,
    party_offer_in_call_law,
    rejecting_answer,
    set_media_remote,
    translated_answer,
    unplayable_reason,
    without_format,
)
from proxy.b2bua.consent import DigitMechanism
from proxy.b2bua.effects import (
    BridgeMedia,
    CallEnded,
    CallStarted,
    CloseMedia,
    Effect,
    LawTranslation,
    LogEvent,
    MediaLeg,
    OpenMedia,
    PlayTone,
    SendSip,
    StopPlayout,
    Tone,
    TranslateAudio,
)
from proxy.b2bua.media_ports import PortCheck, PortPool
from proxy.b2bua.policy import UNRECORDED, AnnouncementMode, FailureBehaviour, PolicyResolver, PromptCheck
from proxy.b2bua.registrar import Registrar
from proxy.b2bua.registration import RegistrationClient, RegistrationState
from proxy.b2bua.settings import Address, B2buaSettings, Side
from proxy.b2bua.settings import TrunkAccount as _TrunkAccount
from proxy.sip.auth import (
    Challenge,
    auth_header_for,
    build_credentials,
    challenge_header_for,
    choose_challenge,
)
from proxy.sip.body import ACCEPTED_BODY_TYPES, sdp_body
from proxy.sip.errors import SipError
from proxy.sip.headers import NameAddress
from proxy.sip.message import Message, Request, Response, make_response
from proxy.sip.sdp import Direction, SessionDescription
from proxy.sip.transaction import (
    DeliverRequest,
    DeliverResponse,
    DeliverStrayResponse,
    SendMessage,
    Timer,
    TimerConfig,
    TransactionId,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimedOut,
)
from proxy.sip.transaction import Effect as TransactionEffect
from proxy.sip.uri import SipUri, TelUri, Uri, escape_user, format_host, parse_uri, same_sip_uri

__all__ = ["ALLOWED_METHODS", "TRANSFEROR_LEAVES_S", "B2bua", "B2buaStats", "CallSummary"]

ALLOWED_METHODS = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REGISTER, REFER, NOTIFY"
# RFC 3261 §21.4.6: Allow lists what an address accepts; REGISTER is for the PBX side only.
_CARRIER_SIDE_METHODS = ALLOWED_METHODS.replace(" REGISTER,", "")
TRANSFEROR_LEAVES_S: Final = 2.0
"""How long a transferor has, after answering the final NOTIFY, to leave with its own BYE before
callherald sends one (RFC 5589 §6): the two BYEs then do not cross."""

# RFC 3261 §20.43, warn-code 302: the offer's transport protocol is not available here.
_NOT_PLAIN_RTP = ("Warning", '302 callherald "Incompatible transport protocol"')
_NO_ALLOWED_CODEC = ("Warning", '305 callherald "Incompatible media format"')  # RFC 3261 §20.43
_REPLACES_OWN_DIALOG = (
    "Warning",
    '399 callherald "Both calls pass through callherald: join them on the PBX"',
)
_KNOWN_METHODS = frozenset(
    {
        "INVITE",
        "ACK",
        "CANCEL",
        "BYE",
        "OPTIONS",
        "INFO",
        "UPDATE",
        "REGISTER",
        "PRACK",
        "SUBSCRIBE",
        "NOTIFY",
        "REFER",
        "MESSAGE",
        "PUBLISH",
    }
)
_RELAYED_IN_DIALOG = frozenset({"INFO", "UPDATE", "MESSAGE", "NOTIFY"})
# The in-dialog requests other than INVITE a CANCEL may refer to (RFC 3261 §9.2), tried in turn.
_CANCELLABLE_IN_DIALOG = ("UPDATE", "INFO", "MESSAGE", "NOTIFY", "OPTIONS", "REFER", "BYE", "PRACK")
_COPIED_HEADERS = (
    "privacy",
    "p-asserted-identity",
    "p-preferred-identity",
    "subject",
    "priority",
    "alert-info",
)
_SUPPORTED_EXTENSIONS: frozenset[str] = frozenset()  # we require nothing and support no option tags
_DEFAULT_MAX_FORWARDS = 70
_RETRY_LATER = (("Retry-After", "5"),)  # RFC 3261 §20.33: seconds
_REOFFER_ATTEMPTS = 2  # callherald's own re-INVITEs on one leg (``_Reoffer``), the second after a 491


@dataclass(slots=True)
class B2buaStats:
    """Counters for logs and metrics."""

    calls_started: int = 0
    calls_ended: int = 0
    rejected_unknown_source: int = 0
    rejected_over_capacity: int = 0
    rejected_overload: int = 0  # over the call-attempt rate or while overloaded (``CallAdmission``)
    stray_messages: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class CallSummary:
    """What an operator may see of an active call: its reference, its direction, and the reasons its
    recording is paused for (``hold``, ``pci``, ``api``; kept while the recording has not started)."""

    call_ref: str
    direction: str
    paused: tuple[str, ...]
    recording_pending: bool = False
    """The notice and questions are not over, so a recording may yet start (with the pauses asked
    for meanwhile); False once it started, or when none will (``record: false``, a failed notice)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Reoffer:
    """A re-INVITE of callherald's own on one leg (RFC 3264 §8): the SDP it offers, anchored anew
    on each attempt, and what it is for, as the log says when it is sent (``doing``) and when the
    party refuses it for good (``refused``)."""

    sdp: SessionDescription
    doing: str
    refused: str
    attempt: int = 1


@dataclass(slots=True, kw_only=True)
class _ClientContext:
    kind: str  # "invite", "relay", "bye", "cancel", "register", "transfer", "notify", "reoffer"
    call: Call | None
    leg: MediaLeg | None = None
    transfer: Transfer | None = None
    reoffer: _Reoffer | None = None  # "reoffer": what it offers and why
    request: Request | None = None  # what the transaction sent (``_send_request`` sets it)
    auth_attempts: int = 0  # answers to the carrier's challenges of this request (RFC 3261 §22.2)
    bye_after: Dialog | None = None  # a final NOTIFY: the transferor's dialog, ended once it is answered


@dataclass(frozen=True, slots=True, kw_only=True)
class _Resend2xx:
    """A 2xx to an INVITE resent until its ACK (RFC 3261 §13.3.1.4), and until when."""

    call: Call
    leg: MediaLeg
    dialog: Dialog
    response: Response
    give_up: float

    @property
    def key(self) -> str:
        return f"{self.call.ref}:2xx:{self.leg}"


def _status_for_caller(status: int) -> int:
    """Map the callee side's final failure to what the caller side hears.

    Busy stays busy and decline stays decline. 3xx is not followed (the other side must not be
    sent around callherald): 480. 401/407 are the other trunk's business: 403. A 503 names that
    hop's overload, not ours (RFC 3261 §16.7 point 6): 500. A 422 asks for a longer session
    timer (RFC 4028 §6), which callherald neither runs nor passes on (``Session-Expires`` is not
    relayed): a caller retrying with a longer one would get the same answer, so 500.
    """
    if 300 <= status < 400:
        return 480
    if status in (401, 407):
        return 403
    if status in (422, 503):
        return 500
    return status


def _session_timer_warning(
    call: Call, dialog: Dialog, response: Response, consequence: str
) -> LogEvent | None:
    """A warning for a 422 to a request callherald sent (``_status_for_caller``): the side that
    sent it asks for session timers, which callherald does not do; None for any other response."""
    if response.status != 422:
        return None
    min_se = response.headers.get("min-se")
    asked = f" (Min-SE: {min_se.strip()})" if min_se else ""
    return LogEvent(
        level="warning",
        text=f"the {dialog.side} side refused the {response.cseq.method} with 422{asked}: it asks for"
        f" session timers (RFC 4028), which callherald does not do; {consequence}",
        call_ref=call.ref,
    )


class B2bua:
    """The call logic. Feed it messages, media events and time; execute what it returns."""

    def __init__(
        self,
        settings: B2buaSettings,
        *,
        token: Callable[[], str] | None = None,
        timers: TimerConfig | None = None,
        policy_for: PolicyResolver | None = None,
        prompt_ready: PromptCheck | None = None,
        port_usable: PortCheck | None = None,
        first_port_pair: int = 0,
    ) -> None:
        self._settings = settings
        self._policy_for: PolicyResolver = policy_for or (lambda _direction, _calling, _called: UNRECORDED)
        self._prompt_ready: PromptCheck = prompt_ready or (lambda _prompt_id, _language: True)
        self._token = token or (lambda: secrets.token_hex(8))
        self._timer_config = timers or TimerConfig()
        self._tx = TransactionLayer(timers=self._timer_config)
        self._ports = PortPool(
            settings.rtp_port_min, settings.rtp_port_max, usable=port_usable, first_pair=first_port_pair
        )
        self._admission = CallAdmission(
            max_new_calls_per_s=settings.max_new_calls_per_s, overload_lag_s=settings.overload_lag_s
        )
        self._calls: dict[str, Call] = {}
        self._dialogs: dict[tuple[str, str], tuple[Call, MediaLeg]] = {}
        # (Call-ID, the peer's tag) -> dialog: for peers that send a wrong To tag in ACK or BYE.
        self._dialogs_by_remote_tag: dict[tuple[str, str], tuple[Call, MediaLeg]] = {}
        self._calls_by_a_transaction: dict[TransactionId, Call] = {}
        # Dialogs a transfer replaced: their BYE is answered without ending the call.
        self._retired: dict[tuple[str, str], Call] = {}
        # b dialogs whose INVITE got no response before Timer B: a late 2xx is ACKed and hung up.
        self._abandoned: dict[tuple[str, str], Call] = {}
        # Retired transferors' dialogs callherald ends with BYE once its final NOTIFY is answered,
        # unless the transferor's own BYE comes first (RFC 5589 §6).
        self._leaving: set[tuple[str, str]] = set()
        self._our_call_ids: set[str] = set()
        self._routes: dict[TransactionId, tuple[Address, Side]] = {}
        self._clients: dict[TransactionId, _ClientContext] = {}
        self._timers: list[tuple[float, int, str]] = []
        self._timer_actions: dict[str, tuple[float, Callable[[float, list[Effect]], None]]] = {}
        self._timer_seq = 0
        self._source: tuple[Address, Side] = (("0.0.0.0", 0), Side.PBX)
        self.stats = B2buaStats()
        self.registrar = Registrar(
            [
                _TrunkAccount(username=a.username, password=a.password, realm=a.realm)
                for a in settings.trunk_accounts
            ],
            realm=settings.registrar_realm,
            token=self._token,
            min_expires_s=settings.registrar_min_expires_s,
            max_expires_s=settings.registrar_max_expires_s,
        )
        self.registration: RegistrationClient | None = None
        carrier = settings.carrier
        if carrier.registration is not None and carrier.username and carrier.password:
            local_host, local_port = settings.local_address[Side.CARRIER]
            self.registration = RegistrationClient(
                registrar_uri=SipUri(host=carrier.host, port=carrier.port),
                aor=SipUri(user=carrier.username, host=carrier.host),
                contact=f"sip:{carrier.username}@{format_host(local_host, local_port)}",
                settings=carrier.registration,
                username=carrier.username,
                password=carrier.password,
                auth_username=carrier.auth_username,
                token=self._token,
                local_via_host_port=format_host(local_host, local_port),
                transport=settings.transport[Side.CARRIER].upper(),
                user_agent=settings.user_agent,
                realm=carrier.realm,
            )

    # Public surface ---------------------------------------------------------------------------

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    @property
    def ports_available(self) -> int:
        return self._ports.available

    @property
    def ports_capacity(self) -> int:
        return self._ports.capacity

    @property
    def ports_passed_over(self) -> int:
        """Port pairs passed over because another program held one of their ports."""
        return self._ports.passed_over

    def accepts_source(self, host: str, side: Side | None) -> bool:
        """Whether ``host`` is a configured peer of ``side`` (of either side when None)."""
        settings = self._settings
        if side is not None:
            return settings.is_allowed(side, host)
        return settings.is_allowed(Side.PBX, host) or settings.is_allowed(Side.CARRIER, host)

    def side_of(self, host: str) -> Side:
        """The side a source belongs to when both sides share one listener: the carrier's networks win."""
        return Side.CARRIER if self._settings.is_allowed(Side.CARRIER, host) else Side.PBX

    def start(self, now: float) -> list[Effect]:
        """Begin registering with the carrier when configured."""
        out: list[Effect] = []
        if self.registration is not None:
            self._send_register(self.registration.start(now), now, out)
        return out

    def shutdown(self, now: float) -> list[Effect]:
        """End every call with BYE (or CANCEL / 503 before answer) and un-register."""
        out: list[Effect] = []
        for call in list(self._calls.values()):
            self._hang_up(call, "shutdown", now, out)
        if self.registration is not None:
            request = self.registration.stop(now)
            if request is not None:
                self._send_register(request, now, out)
        return out

    def receive(self, message: Request | Response, source: Address, side: Side, now: float) -> list[Effect]:
        """Handle one message that arrived on ``side``'s listener from ``source``."""
        out: list[Effect] = []
        if isinstance(message, Request) and not self._settings.is_allowed(side, source[0]):
            # Scanners learn nothing: no response at all, whatever the method or number.
            self.stats.rejected_unknown_source += 1
            out.append(LogEvent(level="debug", text=f"dropped {message.method} from unknown {source[0]}"))
            return out
        self._source = (source, side)
        try:
            effects = self._tx.receive(message, now)
        except SipError as error:
            out.append(LogEvent(level="info", text=f"bad message from {source[0]}: {error.reason}"))
            if isinstance(message, Request) and message.method != "ACK":
                self._stateless_error(message, error, source, side, out)
            return out
        self._run(effects, now, out)
        return out

    def _stateless_error(
        self, request: Request, error: SipError, source: Address, side: Side, out: list[Effect]
    ) -> None:
        """Answer a request whose matching headers do not parse, when a response can be built."""
        try:
            response = make_response(request, error.status_hint, to_tag=self._token())
        except SipError:
            return  # not even the fields of a response are readable: drop it
        out.append(SendSip(message=response, destination=source, side=side))

    def media_inactive(self, call_ref: str, now: float) -> list[Effect]:
        """No RTP on the call for the inactivity timeout: end both legs."""
        out: list[Effect] = []
        call = self._calls.get(call_ref)
        if call is not None:
            out.append(LogEvent(level="info", text="no RTP within the inactivity timeout", call_ref=call_ref))
            self._hang_up(call, "rtp-timeout", now, out)
        return out

    def media_failed(self, call_ref: str, reason: str, now: float) -> list[Effect]:
        """The media sockets could not be opened: fail the call cleanly."""
        out: list[Effect] = []
        call = self._calls.get(call_ref)
        if call is not None:
            out.append(LogEvent(level="error", text=f"media failed: {reason}", call_ref=call_ref))
            self._hang_up(call, "media-failed", now, out, status=500)
        return out

    def prompt_finished(self, call_ref: str, leg: MediaLeg, now: float) -> list[Effect]:
        """The prompt played into ``leg`` was sent whole; ``now`` is when its last frame ended."""
        out: list[Effect] = []
        call = self._calls.get(call_ref)
        if call is not None and call.announcer is not None:
            out.extend(call.announcer.prompt_finished(leg, now))
            self._after_announcer(call, now, out)
        return out

    def prompt_failed(self, call_ref: str, leg: MediaLeg, reason: str, now: float) -> list[Effect]:
        """The prompt for ``leg`` could not be played (missing, corrupt, no codec): fail closed."""
        out: list[Effect] = []
        call = self._calls.get(call_ref)
        if call is not None and call.announcer is not None:
            out.extend(call.announcer.prompt_failed(leg, reason, now))
            self._after_announcer(call, now, out)
        return out

    def not_recording(self, call_ref: str) -> list[Effect]:
        """The recording a ``StartRecording`` asked for does not run: it could not start, or
        storage stopped it since (``on_stopped``). The agent is not told the call is recorded
        when it comes off hold (``CallAnnouncer.not_recording``)."""
        call = self._calls.get(call_ref)
        if call is None or call.announcer is None:
            return []
        return call.announcer.not_recording()

    def digit(
        self,
        call_ref: str,
        leg: MediaLeg,
        digit: str,
        mechanism: DigitMechanism,
        now: float,
        pressed_at: float | None = None,
    ) -> list[Effect]:
        """A key press heard from the party on ``leg`` (RFC 4733 event or in-band tone) ``now``,
        the key down since ``pressed_at`` (``now`` when unknown)."""
        out: list[Effect] = []
        call = self._calls.get(call_ref)
        announcer = call.announcer if call is not None else None
        if call is not None and announcer is not None and leg is announcer.outside_leg:
            out.extend(announcer.digit(digit, mechanism, now, pressed_at))
            self._after_announcer(call, now, out)
        return out

    @property
    def watches_loop_lag(self) -> bool:
        """Whether the service should report its event loop's lag (``loop_lag``), every
        ``proxy.b2bua.admission.LAG_PROBE_INTERVAL_S``."""
        return self._admission.watches_lag

    @property
    def overloaded(self) -> bool:
        """Whether new calls are being shed because the service's loop keeps running late."""
        return self._admission.overloaded

    def loop_lag(self, lag_s: float) -> list[Effect]:
        """The service's loop ran a timer ``lag_s`` late: new calls are refused while it keeps
        running late (``CallAdmission``); an admin is told when that starts and ends."""
        change = self._admission.lag_observed(lag_s)
        if change is None:
            return []
        limit_ms = self._settings.overload_lag_s * 1000
        if change.overloaded:
            text = (
                f"overloaded: the event loop ran {change.lag_s * 1000:.0f} ms late (limits.overload_lag_ms"
                f" {limit_ms:.0f}); new calls are refused with 503 until it keeps time, calls up go on"
            )
            return [LogEvent(level="warning", text=text)]
        text = "no longer overloaded: the event loop keeps time again; new calls are accepted"
        return [LogEvent(level="warning", text=text)]

    def next_deadline(self) -> float | None:
        while self._timers and self._timer_actions.get(self._timers[0][2], (None,))[0] != self._timers[0][0]:
            heapq.heappop(self._timers)
        deadlines = [d for d in (self._tx.next_deadline(), self._timers[0][0] if self._timers else None) if d]
        if self.registration is not None:
            registration_deadline = self.registration.next_deadline()
            if registration_deadline is not None:
                deadlines.append(registration_deadline)
        return min(deadlines) if deadlines else None

    def handle_timers(self, now: float) -> list[Effect]:
        out: list[Effect] = []
        self._run(self._tx.handle_timers(now), now, out)
        while self._timers and self._timers[0][0] <= now:
            deadline, _, key = heapq.heappop(self._timers)
            entry = self._timer_actions.get(key)
            if entry is None or entry[0] != deadline:
                continue
            del self._timer_actions[key]
            entry[1](now, out)
        if self.registration is not None:
            request = self.registration.handle_timers(now)
            if request is not None:
                self._send_register(request, now, out)
        return out

    # Timers -----------------------------------------------------------------------------------

    def _arm(self, key: str, deadline: float, action: Callable[[float, list[Effect]], None]) -> None:
        self._timer_seq += 1
        self._timer_actions[key] = (deadline, action)
        heapq.heappush(self._timers, (deadline, self._timer_seq, key))

    def _disarm(self, key: str) -> None:
        self._timer_actions.pop(key, None)

    # Transaction-layer plumbing ---------------------------------------------------------------

    def _run(self, effects: Sequence[TransactionEffect], now: float, out: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, SendMessage):
                route = self._routes.get(effect.transaction_id)
                if route is not None:
                    out.append(SendSip(message=effect.message, destination=route[0], side=route[1]))
            elif isinstance(effect, DeliverRequest):
                try:
                    self._on_request(effect.request, effect.transaction_id, now, out)
                except SipError as error:
                    self._request_failed(effect.request, effect.transaction_id, error, now, out)
            elif isinstance(effect, DeliverResponse):
                try:
                    self._on_response(effect.response, effect.transaction_id, now, out)
                except SipError as error:
                    out.append(LogEvent(level="info", text=f"dropped a bad response: {error.reason}"))
            elif isinstance(effect, DeliverStrayResponse):
                self._on_stray_response(effect.response, out)
            elif isinstance(effect, TransactionTimedOut):
                self._on_timeout(effect.transaction_id, now, out)
            elif isinstance(effect, TransactionTerminated):
                self._routes.pop(effect.transaction_id, None)
                self._clients.pop(effect.transaction_id, None)
                self._calls_by_a_transaction.pop(effect.transaction_id, None)

    def _request_failed(
        self,
        request: Request,
        transaction_id: TransactionId | None,
        error: SipError,
        now: float,
        out: list[Effect],
    ) -> None:
        """A header of ``request`` turned out malformed while handling it: answer with the hint."""
        out.append(LogEvent(level="info", text=f"bad {request.method}: {error.reason}"))
        if transaction_id is None:
            return
        try:
            response = make_response(request, error.status_hint, to_tag=self._token())
        except SipError:
            return
        self._respond(transaction_id, response, now, out)

    def _respond(
        self, transaction_id: TransactionId, response: Response, now: float, out: list[Effect]
    ) -> None:
        try:
            effects = self._tx.send_response(transaction_id, response, now)
        except SipError as error:  # the transaction ended or already has its final response
            out.append(LogEvent(level="debug", text=f"response {response.status} not sent: {error.reason}"))
            return
        self._run(effects, now, out)

    def _reply(
        self,
        transaction_id: TransactionId,
        request: Request,
        status: int,
        out: list[Effect],
        now: float,
        *,
        extra: tuple[tuple[str, str], ...] = (),
        to_tag: str | None = None,
    ) -> None:
        tag = to_tag if to_tag is not None else (self._token() if status > 100 else None)
        headers = (*extra, ("Server", self._settings.user_agent))
        self._respond(
            transaction_id, make_response(request, status, to_tag=tag, extra_headers=headers), now, out
        )

    def _send_request(
        self,
        request: Request,
        destination: Address,
        side: Side,
        context: _ClientContext,
        now: float,
        out: list[Effect],
    ) -> TransactionId:
        transaction_id, effects = self._tx.create_client(
            request, now, reliable=self._settings.transport[side] != "udp"
        )
        self._routes[transaction_id] = (destination, side)
        context.request = request
        self._clients[transaction_id] = context
        self._run(effects, now, out)
        return transaction_id

    def _send_register(self, request: Request, now: float, out: list[Effect]) -> None:
        carrier = self._settings.carrier
        self._send_request(
            request, carrier.next_hop, Side.CARRIER, _ClientContext(kind="register", call=None), now, out
        )

    # Requests ---------------------------------------------------------------------------------

    def _on_request(
        self, request: Request, transaction_id: TransactionId | None, now: float, out: list[Effect]
    ) -> None:
        if request.method == "ACK" or transaction_id is None:
            self._on_ack(request, now, out)
            return
        source, side = self._source
        self._routes[transaction_id] = (source, side)
        method = request.method
        max_forwards = request.max_forwards
        if max_forwards is not None and max_forwards <= 0 and method not in ("OPTIONS", "REGISTER"):
            self._reply(transaction_id, request, 483, out, now)  # §16.3 / §8.2
            return
        if request.to.tag is None:
            self._on_out_of_dialog(request, transaction_id, source, side, now, out)
        elif method == "CANCEL":
            self._on_cancel_in_dialog(request, transaction_id, now, out)
        else:
            self._on_in_dialog(request, transaction_id, now, out)

    def _on_out_of_dialog(
        self,
        request: Request,
        transaction_id: TransactionId,
        source: Address,
        side: Side,
        now: float,
        out: list[Effect],
    ) -> None:
        method = request.method
        if method == "INVITE":
            self._on_new_invite(request, transaction_id, source, side, now, out)
        elif method == "CANCEL":
            self._on_cancel(request, transaction_id, now, out)
        elif method == "OPTIONS":
            self._reply(
                transaction_id,
                request,
                200,
                out,
                now,
                extra=(("Allow", ALLOWED_METHODS), ("Accept", ACCEPTED_BODY_TYPES)),
            )
        elif method == "REGISTER":
            if side is Side.PBX:
                response = self.registrar.handle(request, source, now)
                response.headers.add("Server", self._settings.user_agent)
                self._respond(transaction_id, response, now, out)
            else:
                self._reply(transaction_id, request, 405, out, now, extra=(("Allow", _CARRIER_SIDE_METHODS),))
        elif method in ("BYE", "INFO", "UPDATE", "PRACK", "NOTIFY"):
            self._reply(transaction_id, request, 481, out, now)
        elif method in _KNOWN_METHODS:
            self._reply(transaction_id, request, 405, out, now, extra=(("Allow", ALLOWED_METHODS),))
        else:
            self._reply(transaction_id, request, 501, out, now, extra=(("Allow", ALLOWED_METHODS),))

    def _refuse_codecs(
        self, transaction_id: TransactionId, request: Request, now: float, out: list[Effect]
    ) -> None:
        """488 to an in-dialog offer with no codec allowed here, saying why (RFC 3261 §20.43)."""
        self._reply(transaction_id, request, 488, out, now, to_tag=request.to.tag, extra=(_NO_ALLOWED_CODEC,))

    def _unsupported_required(self, request: Request) -> list[str]:
        return [tag for tag in request.option_tags("require") if tag not in _SUPPORTED_EXTENSIONS]

    def _parse_offer(self, message: Message) -> SessionDescription | None:
        """The SDP of ``message`` (its body, or a part of a multipart body: ``sdp_body``), None
        when it has no body. Raises SipError 415/400/488."""
        sdp = sdp_body(message)
        if sdp is None:
            if not message.body:
                return None
            raise SipError(f"a body of type {message.content_type} without SDP", 415)
        return SessionDescription.parse(sdp)

    def _on_new_invite(
        self,
        request: Request,
        transaction_id: TransactionId,
        source: Address,
        side: Side,
        now: float,
        out: list[Effect],
    ) -> None:
        settings = self._settings

        def refuse(
            status: int, why: str, extra: tuple[tuple[str, str], ...] = (), to_tag: str | None = None
        ) -> None:
            # An admin sees in the log why a peer's calls fail; no phone number goes there.
            self._reply(transaction_id, request, status, out, now, extra=extra, to_tag=to_tag)
            out.append(
                LogEvent(
                    level="warning",
                    text=f"refused a call from {side} peer {source[0]}:{source[1]} with {status}: {why}"
                    f" (Call-ID {request.call_id})",
                )
            )

        if request.call_id in self._our_call_ids:
            refuse(482, "callherald's own call came back (a routing loop)")
            return
        unsupported = self._unsupported_required(request)
        if unsupported:
            refuse(
                420,
                f"it requires {', '.join(unsupported)}, which callherald does not support",
                (("Unsupported", ", ".join(unsupported)),),
            )
            return
        if len(self._calls) >= settings.max_concurrent_calls:
            self.stats.rejected_over_capacity += 1
            limit = settings.max_concurrent_calls
            refuse(503, f"limits.max_concurrent_calls ({limit}) reached", _RETRY_LATER)
            return
        shed = self._admission.refusal(now)
        if shed is not None:
            self.stats.rejected_overload += 1
            refuse(503, shed, _RETRY_LATER)  # RFC 3261 §21.5.4; RFC 7339 §1: shed, do not fail
            return
        try:
            offer = self._parse_offer(request)
        except SipError as error:
            refuse(
                error.status_hint,
                f"its body: {error.reason}",
                (("Accept", ACCEPTED_BODY_TYPES),) if error.status_hint == 415 else (),
            )
            return
        a_port = self._ports.allocate()
        b_port = self._ports.allocate()
        if a_port is None or b_port is None:
            for port in (a_port, b_port):
                if port is not None:
                    self._ports.release(port)
            self.stats.rejected_over_capacity += 1
            refuse(503, "no free RTP port pair (media.rtp_port_min..rtp_port_max)", _RETRY_LATER)
            return
        a_tag = self._token()
        self._reply(transaction_id, request, 100, out, now, to_tag=None)
        call = self._new_call(request, transaction_id, source, side, a_port, b_port, a_tag, now)
        b_offer: bytes = b""
        if offer is not None:
            anchored = anchor_sdp(
                offer, dialog=call.b, media_address=settings.media_address, codecs=settings.codecs
            )
            if anchored is None:
                self._release_ports(call)
                self._forget_b(call)
                allowed = ", ".join(sorted(settings.codecs - {"telephone-event"}))
                refuse(
                    488,
                    f"no audio codec of its offer is allowed here ({allowed})",
                    (_NO_ALLOWED_CODEC,),
                    to_tag=a_tag,
                )
                return
            b_offer = bytes(anchored)
        call.b_invite_had_offer = offer is not None
        self._register_call(call)
        out.append(OpenMedia(call_ref=call.ref, a_port=a_port, b_port=b_port))
        out.append(set_media_remote(call.ref, MediaLeg.A, offer))
        out.append(
            CallStarted(
                call_ref=call.ref,
                direction=call.direction,
                caller=str(request.from_.uri),
                callee=str(request.uri),
                a_call_id=call.a.call_id,
                b_call_id=call.b.call_id,
                at=now,
            )
        )
        self.stats.calls_started += 1
        if self._choose_policy(call, request, transaction_id, now, out):
            return
        if offer is not None and offer.is_hold():
            # On hold from its first offer (RFC 3264 §8.4): as if a re-INVITE held the call at once.
            self._hold_changed(call, MediaLeg.A, True, now, out)
        if (
            call.announcer is not None
            and call.announcer.stage is AnnouncerStage.IDLE
            and call.direction == "inbound"
        ):
            self._announce_to_caller(call, offer, b_offer, now, out)
            return
        self._call_callee(call, b_offer, now, out)

    # Notice and consent --------------------------------------------------------------------------

    def _choose_policy(
        self, call: Call, request: Request, transaction_id: TransactionId, now: float, out: list[Effect]
    ) -> bool:
        """Find the call's policy and check its prompts; True when the call was refused here."""
        calling = _user_of(request.from_.uri) or "anonymous"
        policy = self._policy_for(call.direction, calling, _dialled_user(request))
        call.policy = policy
        if not policy.record:
            return False
        outside = MediaLeg.A if call.direction == "inbound" else MediaLeg.B
        announcer = CallAnnouncer(
            call_ref=call.ref,
            policy=policy,
            outside_leg=outside,
            agent_hears_notice=outside is MediaLeg.B,
            hold_limit_s=self._settings.notice_hold_timeout_s,
        )
        call.announcer = announcer
        out.append(LogEvent(level="info", text=f"policy {policy.name}", call_ref=call.ref))
        missing = [p for p in policy.prompt_ids if not self._prompt_ready(p, policy.language)]
        if not missing:
            return False
        out.extend(announcer.fail_now(f"prompt {missing[0]!r} in {policy.language!r} is not available", now))
        call.announce_progressed = True
        if policy.on_failure is FailureBehaviour.REJECT:
            self._reject_unannounced(call, transaction_id, request, now, out)
            return True
        return False

    def _reject_unannounced(
        self, call: Call, transaction_id: TransactionId, request: Request, now: float, out: list[Effect]
    ) -> None:
        """The policy says: no notice, no call (480, RFC 3261 §21.4.18)."""
        self._reply(
            transaction_id,
            request,
            480,
            out,
            now,
            to_tag=call.a.local_tag,
            extra=(("Reason", 'SIP;cause=480;text="recording notice unavailable"'),),
        )
        self._end_call(call, now, "notice-unavailable", out, status=480)

    def _announce_to_caller(
        self,
        call: Call,
        offer: SessionDescription | None,
        b_offer: bytes,
        now: float,
        out: list[Effect],
    ) -> None:
        """Inbound: answer the caller ourselves (200, or 183 early media) and play the notice first.

        The PBX is called only after the notice and questions; it is offered only the codec the
        caller's leg negotiated, so the legs need no transcoding (but a G.711 law translated for
        a PBX that answers the other one: ``translated_answer``).
        """
        announcer = call.announcer
        assert announcer is not None
        if offer is None:
            self._offer_to_caller(call, now, out)
            return
        fmt = media_format(offer, self._settings.codecs)
        if fmt is None:
            reason = unplayable_reason(offer)
            out.extend(announcer.fail_now(reason, now))
            call.announce_progressed = True
            if call.policy.on_failure is FailureBehaviour.REJECT:
                self._reject_unannounced(call, call.a_invite_transaction, call.a_invite, now, out)
                return
            self._call_callee(call, b_offer, now, out)
            return
        codecs = frozenset({fmt.codec, "telephone-event"})
        settings = self._settings
        answer = anchor_sdp(offer, dialog=call.a, media_address=settings.media_address, codecs=codecs)
        pbx_offer = anchor_sdp(offer, dialog=call.b, media_address=settings.media_address, codecs=codecs)
        assert answer is not None
        assert pbx_offer is not None
        _answer_directions(answer)
        call.a_answer = bytes(answer)
        call.b_offer = bytes(pbx_offer)
        if call.policy.mode is AnnouncementMode.EARLY_MEDIA:
            call.a_early_media = True
            self._respond(call.a_invite_transaction, self._own_answer_to_a(call, 183), now, out)
        else:
            call.a_answered = True
            call.a.confirmed = True
            response = self._own_answer_to_a(call, 200)
            self._respond(call.a_invite_transaction, response, now, out)
            self._retransmit_2xx(call, MediaLeg.A, response, call.a_invite.cseq.seq, now)
        call.outside_identity = _identity(call.a_invite, offer)
        out.extend(announcer.start(fmt, now))
        self._after_announcer(call, now, out)

    def _offer_to_caller(self, call: Call, now: float, out: list[Effect]) -> None:
        """Inbound late offer: the INVITE had no SDP, so our 200 carries the offer (every codec we
        can play) and the caller's answer comes in its ACK (RFC 3261 §13.2.1, RFC 3264 §5).
        The notice starts then; an early-media policy answers at once too, as a 183 cannot carry
        an offer reliably without 100rel (RFC 3262), which callherald does not use."""
        settings = self._settings
        playable = [codec for codec in ("pcmu", "pcma", "g722") if codec in settings.codecs] or ["pcmu"]
        names = {"pcmu": "PCMU/8000", "pcma": "PCMA/8000", "g722": "G722/8000"}
        formats = [str(STATIC_PAYLOAD_TYPES[codec]) for codec in playable] + ["101"]
        lines = [
            "v=0",
            "o=callherald 0 0 IN IP4 127.0.0.1",  # origin, address and port are ours once anchored
            "s=callherald",
            "c=IN IP4 127.0.0.1",
            "t=0 0",
            f"m=audio {call.a.media_port} RTP/AVP {' '.join(formats)}",
            *(f"a=rtpmap:{STATIC_PAYLOAD_TYPES[codec]} {names[codec]}" for codec in playable),
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-16",
            "a=ptime:20",
            "a=sendrecv",
        ]
        template = SessionDescription.parse("".join(f"{line}\r\n" for line in lines).encode())
        codecs = frozenset({*playable, "telephone-event"})
        offer = anchor_sdp(template, dialog=call.a, media_address=settings.media_address, codecs=codecs)
        assert offer is not None
        call.a_answer = bytes(offer)
        call.answer_in_ack = True
        call.a_answered = True
        call.a.confirmed = True
        response = self._own_answer_to_a(call, 200)
        self._respond(call.a_invite_transaction, response, now, out)
        self._retransmit_2xx(call, MediaLeg.A, response, call.a_invite.cseq.seq, now)

    def _caller_answered_in_ack(self, call: Call, ack: Request, now: float, out: list[Effect]) -> None:
        """The ACK to our offer brings the caller's answer: now the notice can play."""
        call.answer_in_ack = False
        announcer = call.announcer
        assert announcer is not None
        answer = _sdp_of(ack)
        fmt = media_format(answer, self._settings.codecs) if answer is not None else None
        if answer is None or fmt is None:
            # §13.2.1: the ACK must carry the answer to an offer in a 2xx; without one there is
            # no media to announce on.
            reason = "no SDP answer in the ACK" if answer is None else unplayable_reason(answer)
            out.extend(announcer.fail_now(reason, now, consequence="call ended"))
            call.announce_progressed = True
            self._hang_up(call, "no-answer-in-ack", now, out)
            return
        out.append(set_media_remote(call.ref, MediaLeg.A, answer))
        codecs = frozenset({fmt.codec, "telephone-event"})
        pbx_offer = anchor_sdp(
            answer, dialog=call.b, media_address=self._settings.media_address, codecs=codecs
        )
        assert pbx_offer is not None
        call.b_offer = bytes(pbx_offer)
        call.outside_identity = _identity(call.a_invite, answer)
        if answer.is_hold():  # the caller holds the call from its answer (RFC 3264 §8.4)
            self._hold_changed(call, MediaLeg.A, True, now, out)
        out.extend(announcer.start(fmt, now))
        self._after_announcer(call, now, out)

    def _own_answer_to_a(self, call: Call, status: int) -> Response:
        headers: list[tuple[str, str]] = [("Contact", call.a.local_contact)]
        if status >= 200:
            headers.append(("Allow", ALLOWED_METHODS))
        headers.append(("Server", self._settings.user_agent))
        headers.append(("Content-Type", "application/sdp"))
        return make_response(
            call.a_invite,
            status,
            None,
            to_tag=call.a.local_tag,
            extra_headers=headers,
            body=call.a_answer,
        )

    def _after_announcer(self, call: Call, now: float, out: list[Effect]) -> None:
        """Follow the announcer: arm its answer window or hold limit; once settled, call the callee
        or bridge."""
        announcer = call.announcer
        if announcer is None or call.ref not in self._calls:
            return
        self._arm_announcer_timer(call, announcer)
        if not announcer.settled or call.announce_progressed:
            return
        call.announce_progressed = True
        if announcer.stage is AnnouncerStage.FAILED and call.policy.on_failure is FailureBehaviour.REJECT:
            if call.phase in (CallPhase.CALLING, CallPhase.EARLY) and not call.a_answered:
                self._reject_unannounced(call, call.a_invite_transaction, call.a_invite, now, out)
            else:
                self._hang_up(call, "notice-failed", now, out)
            return
        if call.direction == "inbound" and not call.b_called:
            if announcer.media is not None:
                out.append(
                    PlayTone(call_ref=call.ref, leg=MediaLeg.A, tone=Tone.RINGBACK, media=announcer.media)
                )
            self._call_callee(call, call.b_offer, now, out)
        elif call.phase in (CallPhase.ANSWERED, CallPhase.CONFIRMED):
            out.extend(announcer.bridge(now))

    def _arm_announcer_timer(self, call: Call, announcer: CallAnnouncer) -> None:
        deadline = announcer.next_deadline()
        key = f"{call.ref}:consent"
        if deadline is None:
            self._disarm(key)
        else:
            self._arm(key, deadline, partial(self._consent_timer, call))

    def _notice_for_new_party(
        self,
        call: Call,
        relay: PendingRelay,
        answer: SessionDescription | None,
        now: float,
        out: list[Effect],
    ) -> None:
        """A re-INVITE or UPDATE brought another outside party: they hear the notice before being
        recorded."""
        announcer = call.announcer
        assert announcer is not None
        assert relay.new_party is not None
        call.outside_identity = _identity(relay.request, _sdp_of(relay.request))
        call.announce_progressed = False
        out.append(
            LogEvent(
                level="info", text=f"new outside party ({relay.new_party}): notice again", call_ref=call.ref
            )
        )
        fmt = media_format(answer) if answer is not None else None
        out.extend(
            announcer.party_changed(
                relay.new_party,
                fmt,
                now,
                sip_call_id=call.dialog(relay.origin_leg).call_id,
                remote_uri=_asserted_uri(relay.request) or "",
            )
        )
        self._after_announcer(call, now, out)

    @staticmethod
    def _plain_rtp_only(call: Call) -> bool:
        """This call's media must stay plain RTP (``PLAIN_RTP_PROFILES``): its notice or questions
        play, or played. callherald sends them (and the agent's copy and beep) in plain RTP, which a
        party expecting SRTP drops (RFC 3711 §3.3), and from the bridge on the relay renumbers and
        the recorder decodes the call's RTP. A call with no notice, or whose notice failed (it goes
        on unrecorded), has neither, and is relayed as it is."""
        announcer = call.announcer
        return announcer is not None and announcer.stage in (
            AnnouncerStage.ANNOUNCING,
            AnnouncerStage.DECIDED,
            AnnouncerStage.BRIDGED,
        )

    def _hold_changed(
        self,
        call: Call,
        leg: MediaLeg,
        on_hold: bool,
        now: float,
        out: list[Effect],
        *,
        party_left: bool = False,
        undone: str = "",
    ) -> None:
        """A party put the call on hold (sendonly, inactive, 0.0.0.0; RFC 3264 §8.4) or took it off
        (``undone``: its hold was ``"refused"`` or ``"cancelled"``, so it never held):
        a held call is not recorded (silence is written and the pause is in the evidence). An
        outside party that holds while its notice or questions play hears them again from the
        start (``CallAnnouncer.outside_hold``), unless its hold ends because it left. An agent that
        holds hears its notice copy or beep when it comes off hold (``CallAnnouncer.agent_hold``)."""
        was_held = bool(call.held_by)
        announcer = call.announcer
        changed = on_hold != (leg in call.held_by)
        if announcer is not None and leg is announcer.outside_leg and changed and not party_left:
            out.extend(announcer.outside_hold(on_hold, now))
            if call.ref in self._calls:  # the hold limit runs while the notice waits for the hold
                self._arm_announcer_timer(call, announcer)
        elif announcer is not None and leg is not announcer.outside_leg and changed:
            out.extend(announcer.agent_hold(on_hold, party_left=party_left))
        if on_hold:
            call.held_by.add(leg)
        else:
            call.held_by.discard(leg)
        if changed:
            ended = ""
            if not on_hold:
                ended = " ended, the party left" if party_left else f" {undone}" if undone else " ended"
            out.append(LogEvent(level="info", text=f"hold from leg {leg}{ended}", call_ref=call.ref))
        held = bool(call.held_by)
        if held != was_held and call.announcer is not None:
            out.extend(call.announcer.hold(held))

    def pause_recording(self, call_ref: str, pause: bool, now: float) -> list[Effect]:
        """Pause (or resume) a call's recording on request (an operator's API call, PCI DSS 3.3.1)."""
        out: list[Effect] = []
        call = self._calls.get(call_ref)
        if call is not None and call.announcer is not None:
            out.extend(call.announcer.manual_pause(pause, "api"))
        return out

    def call_summaries(self) -> list[CallSummary]:
        """Every active call, in the order the calls began (read-only; for the operator's listing)."""
        return [_summary(call) for call in self._calls.values()]

    def call_summary(self, call_ref: str) -> CallSummary | None:
        """The active call ``call_ref``; None when there is no such call."""
        call = self._calls.get(call_ref)
        return None if call is None else _summary(call)

    def _consent_timer(self, call: Call, now: float, out: list[Effect]) -> None:
        if call.announcer is not None and call.ref in self._calls:
            out.extend(call.announcer.handle_timers(now))
            self._after_announcer(call, now, out)

    def _start_outbound_notice(
        self,
        call: Call,
        sdp: SessionDescription | None,
        now: float,
        out: list[Effect],
        *,
        identity: PartyIdentity | None = None,
        no_sdp: str = "no SDP in the 2xx nor in an earlier provisional",
        callee_sdp: SessionDescription | None = None,
        agent_sdp: SessionDescription | None = None,
    ) -> None:
        """Outbound: the callee answered; the notice plays to callee and agent before they talk.

        ``sdp`` names the codec: the callee's answer, or the agent's answer in its ACK to a late
        offer, whose offer is then ``callee_sdp``. Each party hears the notice in the packet
        duration its own SDP asks for: the callee's, and the agent's (``agent_sdp``, else the
        agent's INVITE). ``identity`` is the callee's (``_identity``), when not already recorded;
        ``no_sdp`` is the reason the notice fails for when ``sdp`` is None."""
        announcer = call.announcer
        if announcer is None or announcer.stage is not AnnouncerStage.IDLE:
            return
        fmt = media_format(sdp) if sdp is not None else None
        if fmt is None:
            reason = no_sdp if sdp is None else unplayable_reason(sdp)
            out.extend(announcer.fail_now(reason, now))
            call.announce_progressed = True
            if call.policy.on_failure is FailureBehaviour.REJECT:
                self._hang_up(call, "notice-failed", now, out)
            return
        if identity is not None:
            call.outside_identity = identity
        callee = replace(fmt, packet_ms=packet_ms(callee_sdp if callee_sdp is not None else sdp))
        agent = replace(
            fmt, packet_ms=packet_ms(agent_sdp if agent_sdp is not None else _sdp_of(call.a_invite))
        )
        out.extend(announcer.start(callee, now, agent_media=agent))
        self._after_announcer(call, now, out)

    def _new_call(
        self,
        request: Request,
        transaction_id: TransactionId,
        source: Address,
        side: Side,
        a_port: int,
        b_port: int,
        a_tag: str,
        now: float,
    ) -> Call:
        settings = self._settings
        ref = self._token()
        contacts = request.contacts
        a = Dialog(
            side=side,
            leg=MediaLeg.A,
            call_id=request.call_id,
            local_tag=a_tag,
            remote_tag=request.from_.tag,
            local_party=NameAddress(display=request.to.display, uri=request.to.uri),
            remote_party=NameAddress(display=request.from_.display, uri=request.from_.uri),
            local_seq=0,
            remote_seq=request.cseq.seq,
            remote_target=contacts[0].uri if contacts else None,
            route_set=list(request.headers.get_all("record-route")),
            peer=source,
            local_contact=self._contact(side),
            media_port=a_port,
            sdp_session_id=str(int(self._token()[:8], 16)),
        )
        b_side = side.other
        b_host = settings.local_address[b_side][0]
        user = _dialled_user(request)  # unescaped, for routing; escaped again in URIs (§19.1.2)
        uri_user = escape_user(user)
        if b_side is Side.CARRIER:
            direction = "outbound"
            carrier = settings.carrier
            target_uri: SipUri = SipUri(user=uri_user, host=carrier.host, port=carrier.port)
            destination = carrier.next_hop
            to_party = NameAddress(uri=SipUri(user=uri_user, host=carrier.host))
        else:
            direction = "inbound"
            target_uri, destination = self._pbx_target(user, now)
            to_party = NameAddress(
                display=request.to.display, uri=SipUri(user=uri_user, host=target_uri.host)
            )
        caller_user = escape_user(_user_of(request.from_.uri) or "anonymous")
        b_call_id = f"{self._token()}{self._token()}@callherald"
        self._our_call_ids.add(b_call_id)
        b = Dialog(
            side=b_side,
            leg=MediaLeg.B,
            call_id=b_call_id,
            local_tag=self._token(),
            remote_tag=None,
            local_party=NameAddress(display=request.from_.display, uri=SipUri(user=caller_user, host=b_host)),
            remote_party=to_party,
            local_seq=0,
            remote_seq=None,
            remote_target=target_uri,
            route_set=[],
            peer=destination,
            local_contact=self._contact(b_side),
            media_port=b_port,
            sdp_session_id=str(int(self._token()[:8], 16)),
        )
        b_invite = Request("INVITE", target_uri)
        return Call(
            ref=ref,
            direction=direction,
            a=a,
            b=b,
            a_invite=request,
            a_invite_transaction=transaction_id,
            b_invite=b_invite,
        )

    def _pbx_target(self, user: str, now: float) -> tuple[SipUri, Address]:
        """Where an inbound call goes: a DID route, a registered trunk, or a configured default target."""
        settings = self._settings
        routed = settings.inbound_routes.get(user)
        if routed is not None:
            return SipUri(user=escape_user(user), host=routed[0], port=routed[1]), routed
        binding = self.registrar.lookup(user, now)  # an account registered as the number itself first
        if binding is not None:
            contact = parse_uri(binding.contact_uri)
            if isinstance(contact, SipUri):
                return contact, binding.source
        host, port = settings.fallback_inbound_target or settings.pbx_default_target
        return SipUri(user=escape_user(user), host=host, port=port), (host, port)

    def _find_dialog(self, request: Request) -> tuple[Call, MediaLeg] | None:
        """The dialog of an in-dialog request by Call-ID and To tag (§12.2.2).

        Some phones (pyVoIP 1.6.8) put a random To tag on ACK and BYE; then the Call-ID and their
        own From tag, which is unique per dialog too, find it.
        """
        found = self._dialogs.get((request.call_id, request.to.tag or ""))
        if found is None and request.from_.tag:
            found = self._dialogs_by_remote_tag.get((request.call_id, request.from_.tag))
        return found

    def _register_call(self, call: Call) -> None:
        self._calls[call.ref] = call
        if call.a.remote_tag:
            self._dialogs_by_remote_tag[(call.a.call_id, call.a.remote_tag)] = (call, MediaLeg.A)
        self._dialogs[(call.a.call_id, call.a.local_tag)] = (call, MediaLeg.A)
        self._dialogs[(call.b.call_id, call.b.local_tag)] = (call, MediaLeg.B)
        self._calls_by_a_transaction[call.a_invite_transaction] = call

    def _call_callee(self, call: Call, offer: bytes, now: float, out: list[Effect]) -> None:
        """Send the b-leg INVITE. (Announcements for inbound calls will run before this.)"""
        request = self._build_invite(call, offer)
        call.b_invite = request
        call.b_called = True
        self._arm(f"{call.ref}:ring", now + self._settings.ring_timeout_s, partial(self._ring_timeout, call))
        self._send_request(
            request,
            call.b.peer,
            call.b.side,
            _ClientContext(kind="invite", call=call, leg=MediaLeg.B),
            now,
            out,
        )

    def _ring_timeout(self, call: Call, now: float, out: list[Effect]) -> None:
        """Nobody answered in time (the role of Timer C, RFC 3261 §16.6): cancel b, 480 to a."""
        if call.ref in self._calls and call.phase in (CallPhase.CALLING, CallPhase.EARLY):
            out.append(LogEvent(level="info", text="no answer within the ring timeout", call_ref=call.ref))
            self._hang_up(call, "no-answer", now, out, status=480)

    def _contact(self, side: Side) -> str:
        """Our Contact on ``side``; a stream transport is named so in-dialog requests use it (RFC 3263)."""
        host_port = format_host(*self._settings.local_address[side])
        transport = self._settings.transport[side]
        return (
            f"<sip:callherald@{host_port};transport={transport}>"
            if transport != "udp"
            else f"<sip:callherald@{host_port}>"
        )

    def _via(self, side: Side) -> str:
        host, port = self._settings.local_address[side]
        transport = self._settings.transport[side].upper()
        return f"SIP/2.0/{transport} {format_host(host, port)};branch=z9hG4bK{self._token()};rport"

    def _build_invite(self, call: Call, offer: bytes) -> Request:
        a_invite = call.a_invite
        max_forwards = a_invite.max_forwards
        copied = [(name, value) for name, value in a_invite.headers if name.lower() in _COPIED_HEADERS]
        return self._dialog_invite(
            call.b,
            offer,
            max_forwards=_DEFAULT_MAX_FORWARDS if max_forwards is None else max_forwards - 1,
            extra=copied,
        )

    def _dialog_invite(
        self, dialog: Dialog, offer: bytes, *, max_forwards: int, extra: Sequence[tuple[str, str]]
    ) -> Request:
        """The INVITE that opens ``dialog`` (§8.1.1), with ``extra`` headers and the SDP ``offer``."""
        headers: list[tuple[str, str]] = [
            ("Via", self._via(dialog.side)),
            ("Max-Forwards", str(max_forwards)),
            ("From", dialog.from_header),
            ("To", dialog.to_header),
            ("Call-ID", dialog.call_id),
            ("CSeq", f"{dialog.next_seq()} INVITE"),
            ("Contact", dialog.local_contact),
            ("Allow", ALLOWED_METHODS),
            ("User-Agent", self._settings.user_agent),
            *extra,
        ]
        if offer:
            headers.append(("Content-Type", "application/sdp"))
        headers.append(("Content-Length", str(len(offer))))
        target = dialog.remote_target
        assert target is not None
        return Request("INVITE", target, headers, offer)

    def _in_dialog_request(
        self,
        dialog: Dialog,
        method: str,
        body: bytes = b"",
        content_type: str = "",
        *,
        seq: int | None = None,
    ) -> Request:
        """A request within ``dialog`` (§12.2.1.1): remote target, route set, next CSeq (or ``seq``)."""
        if seq is None:
            seq = dialog.next_seq()
        headers: list[tuple[str, str]] = [
            ("Via", self._via(dialog.side)),
            ("Max-Forwards", str(_DEFAULT_MAX_FORWARDS)),
            ("From", dialog.from_header),
            ("To", dialog.to_header),
            ("Call-ID", dialog.call_id),
            ("CSeq", f"{seq} {method}"),
        ]
        headers.extend(("Route", route) for route in dialog.route_set)
        if method in ("INVITE", "UPDATE"):
            headers.append(("Contact", dialog.local_contact))
        headers.append(("User-Agent", self._settings.user_agent))
        if body:
            headers.append(("Content-Type", content_type or "application/sdp"))
        headers.append(("Content-Length", str(len(body))))
        target = dialog.remote_target or dialog.remote_party.uri
        return Request(method, target, headers, body)

    def _dialog_destination(self, dialog: Dialog) -> Address:
        """Where requests within ``dialog`` go: the first route, else the remote target (§12.2.1.1).

        Towards a carrier with an outbound proxy everything goes to the proxy.
        """
        settings = self._settings
        if dialog.side is Side.CARRIER and settings.carrier.next_hop != (
            settings.carrier.host,
            settings.carrier.port,
        ):
            return settings.carrier.next_hop
        uri: Uri | None = None
        if dialog.route_set:
            try:
                uri = NameAddress.parse(dialog.route_set[0]).uri
            except SipError:
                uri = None
        if uri is None:
            uri = dialog.remote_target
        if isinstance(uri, SipUri):
            if uri.has_param("maddr"):
                return uri.param("maddr") or uri.host, uri.port or 5060
            return uri.host_port()
        return dialog.peer

    # ACK ---------------------------------------------------------------------------------------

    def _on_ack(self, request: Request, now: float, out: list[Effect]) -> None:
        found = self._find_dialog(request)
        if found is None:
            self.stats.stray_messages += 1
            return
        call, leg = found
        pending = call.unacked_2xx.get(leg)
        if pending is None or pending[1] != request.cseq.seq:
            return
        del call.unacked_2xx[leg]
        self._disarm(f"{call.ref}:2xx:{leg}")
        if call.phase is CallPhase.ANSWERED and leg is MediaLeg.A:
            call.phase = CallPhase.CONFIRMED
        if call.answer_in_ack and leg is MediaLeg.A:
            self._caller_answered_in_ack(call, request, now, out)
            return
        if call.deferred_ack is not None and call.deferred_ack.leg is leg.other:
            # Late offer: the answer rides in this ACK and goes on in the other leg's ACK.
            self._send_deferred_ack(call, request, now, out)

    def _send_deferred_ack(self, call: Call, ack: Request, now: float, out: list[Effect]) -> None:
        deferred = call.deferred_ack
        assert deferred is not None
        call.deferred_ack = None
        target_leg = deferred.leg
        dialog = call.dialog(target_leg)
        body = b""
        answer: SessionDescription | None = None
        if ack.body:
            try:
                answer = SessionDescription.parse(ack.body)
            except SipError:
                answer = None
            if answer is not None:
                answer = _within_offer(
                    call, target_leg.other, answer, deferred.offer, out, self._settings.codecs
                )
                out.append(set_media_remote(call.ref, target_leg.other, answer))
                if deferred.offer is not None and not deferred.offer.is_hold():
                    # The answerer's own hold (``_holds``), as in an answer in a 2xx: a first
                    # answer that holds the call holds it from the start.
                    held_before = target_leg.other in call.held_by
                    self._hold_changed(call, target_leg.other, answer.is_hold(), now, out)
                    if deferred.acked and answer.is_hold() != held_before:
                        self._far_party_follows_the_ack(call, target_leg, answer, now, out)
                if not deferred.acked:
                    previous = dialog.last_sdp
                    anchored = anchor_sdp(
                        answer,
                        dialog=dialog,
                        media_address=self._settings.media_address,
                        codecs=self._settings.codecs,
                    )
                    if anchored is not None and previous is not None:
                        self._new_version_if_changed(dialog, anchored, bytes(previous))
                    body = bytes(anchored) if anchored is not None else b""
        if not deferred.acked:
            self._send_ack(call, target_leg, deferred.seq, out, body)
        if call.announce_after_ack:
            call.announce_after_ack = False
            # identity: from the callee's 2xx
            self._start_outbound_notice(
                call,
                answer,
                now,
                out,
                no_sdp="no SDP answer in the ACK",
                callee_sdp=deferred.offer,
                agent_sdp=answer,
            )

    def _far_party_follows_the_ack(
        self, call: Call, leg: MediaLeg, answer: SessionDescription, now: float, out: list[Effect]
    ) -> None:
        """The other party held the call, or ended its hold, in ``answer``, the answer in its ACK to
        the session it was offered unchanged (``_no_offer_in_2xx``), when the party on ``leg`` had
        its ACK already: a re-INVITE of callherald's own offers that party the session it last had
        from callherald in ``answer``'s direction (RFC 3264 §8.4, RFC 6337 §5.3), so that it
        stops sending into the hold, or sends again, as ``_pbx_follows_the_caller`` does."""
        direction = _audio_direction(answer)
        offered = call.dialog(leg).last_sdp
        if direction is None or offered is None or direction == _audio_direction(offered):
            return
        reoffer = _Reoffer(
            sdp=_with_audio_direction(offered, direction),
            doing=f"offering leg {leg} the direction ({direction}) leg {leg.other} answered in its ACK",
            refused=f"leg {leg} refused the direction leg {leg.other} answered in its ACK",
        )
        self._reoffer(call, leg, reoffer, now, out)

    def _send_ack(self, call: Call, leg: MediaLeg, seq: int, out: list[Effect], body: bytes = b"") -> None:
        """ACK a 2xx on ``leg`` and keep the ACK to answer retransmissions of that 2xx."""
        dialog = call.dialog(leg)
        ack = self._ack_for(dialog, seq, body)
        call.sent_acks[(leg, seq)] = ack
        out.append(SendSip(message=ack, destination=self._dialog_destination(dialog), side=dialog.side))

    def _resend_ack(self, call: Call, leg: MediaLeg, response: Response, out: list[Effect]) -> None:
        """A 2xx came again: our ACK was lost (§13.2.2.4). A late-offer ACK waits for its answer."""
        dialog = call.dialog(leg)
        if response.to.tag != dialog.remote_tag:
            self._end_fork(call, leg, response, out)
            return
        ack = call.sent_acks.get((leg, response.cseq.seq))
        if ack is not None:
            out.append(SendSip(message=ack, destination=self._dialog_destination(dialog), side=dialog.side))

    def _end_fork(self, call: Call, leg: MediaLeg, response: Response, out: list[Effect]) -> None:
        """A 2xx from a second fork of our INVITE: ACK it and hang it up at once (§13.2.2.4)."""
        main = call.dialog(leg)
        contacts = response.contacts
        fork = replace(
            main,
            remote_tag=response.to.tag,
            remote_target=contacts[0].uri if contacts else main.remote_target,
            route_set=list(reversed(response.headers.get_all("record-route"))),
            local_seq=response.cseq.seq,
        )
        destination = self._dialog_destination(fork)
        out.append(
            SendSip(message=self._ack_for(fork, response.cseq.seq), destination=destination, side=fork.side)
        )
        out.append(
            SendSip(message=self._in_dialog_request(fork, "BYE"), destination=destination, side=fork.side)
        )

    def _ack_for(self, dialog: Dialog, seq: int, body: bytes = b"") -> Request:
        """The ACK for a 2xx (§13.2.2.4): a new transaction, the INVITE's CSeq number."""
        return self._in_dialog_request(dialog, "ACK", body, seq=seq)

    # CANCEL and BYE ----------------------------------------------------------------------------

    def _on_cancel(
        self, request: Request, transaction_id: TransactionId, now: float, out: list[Effect]
    ) -> None:
        invite_transaction = self._tx.find_invite_server_for_cancel(request)
        call = self._calls_by_a_transaction.get(invite_transaction) if invite_transaction else None
        if call is None or call.a_answered or call.phase not in (CallPhase.CALLING, CallPhase.EARLY):
            # Too late once the INVITE has its final response (§9.2): the CANCEL changes nothing,
            # and its 200 carries the To tag the INVITE's responses did (§9.2).
            if call is None:
                self._reply(transaction_id, request, 481, out, now)
            else:
                self._reply(transaction_id, request, 200, out, now, to_tag=call.a.local_tag)
            return
        self._reply(transaction_id, request, 200, out, now, to_tag=request.to.tag or call.a.local_tag)
        self._reply(call.a_invite_transaction, call.a_invite, 487, out, now, to_tag=call.a.local_tag)  # §9.2
        self._cancel_b(call, now, out)
        self._end_call(call, now, "cancelled", out, status=487)

    def _on_cancel_in_dialog(
        self, request: Request, transaction_id: TransactionId, now: float, out: list[Effect]
    ) -> None:
        """A CANCEL with a To tag: of a re-INVITE (RFC 3261 §9.2). It matches the re-INVITE's
        server transaction (§17.2.3) and gets 200, else 481. A re-INVITE callherald relayed and
        the far party has not answered yet is cancelled (``_cancel_relay``); one that has its
        final response already, or that callherald answered itself, is not changed by it. A
        CANCEL of an in-dialog request of another method (an UPDATE) gets 200 too and changes
        nothing (§9.2): that request takes its course."""
        invite_transaction = self._tx.find_invite_server_for_cancel(request)
        if invite_transaction is None:
            matched = self._tx.find_non_invite_server_for_cancel(request, _CANCELLABLE_IN_DIALOG)
            status = 481 if matched is None else 200
            self._reply(transaction_id, request, status, out, now, to_tag=request.to.tag)
            return
        self._reply(transaction_id, request, 200, out, now, to_tag=request.to.tag)
        found = self._find_dialog(request)
        if found is None or found[0].ref not in self._calls:
            return
        call = found[0]
        for client_id, relay in call.pending_relays.items():
            if relay.server_transaction == invite_transaction and not relay.cancelled:
                self._cancel_relay(call, client_id, relay, now, out)
                return

    def _cancel_relay(
        self, call: Call, client_id: TransactionId, relay: PendingRelay, now: float, out: list[Effect]
    ) -> None:
        """The sender of a relayed re-INVITE cancelled it: it gets 487 (§9.2) and keeps the session
        it had (§14.2), so a hold it offered is over; callherald cancels the re-INVITE it relayed,
        once the far party has sent a provisional response (§9.1). What the far party answers then
        is taken care of by ``_cancelled_relay_answered``."""
        relay.cancelled = True
        request, leg = relay.request, relay.origin_leg
        self._reply(relay.server_transaction, request, 487, out, now, to_tag=request.to.tag)
        out.append(
            LogEvent(
                level="info",
                text=f"leg {leg} cancelled its re-INVITE: cancelling the one relayed to leg {leg.other}",
                call_ref=call.ref,
            )
        )
        self._offer_refused(call, relay, now, out, cancelled=True)
        if relay.far_provisional:
            self._send_relay_cancel(call, client_id, now, out)

    def _send_relay_cancel(self, call: Call, client_id: TransactionId, now: float, out: list[Effect]) -> None:
        """CANCEL the re-INVITE callherald relayed in ``client_id``, where that INVITE went (§9.1)."""
        context, route = self._clients.get(client_id), self._routes.get(client_id)
        if context is None or context.request is None or route is None:
            return
        cancel = _cancel_for(context.request)
        self._send_request(cancel, route[0], route[1], _ClientContext(kind="cancel", call=call), now, out)

    def _cancelled_relay_answered(
        self, call: Call, relay: PendingRelay, response: Response, now: float, out: list[Effect]
    ) -> None:
        """The far party's final response to a re-INVITE its sender cancelled. A 487 (or any other
        failure) leaves it the session it had, as the sender has (§14.2). A 2xx that crossed the
        CANCEL (§9.1) gave it a new session the sender does not have: it is ACKed (an offer in it,
        to a re-INVITE without SDP, answered with every stream rejected, as that ACK must carry the
        answer: §13.2.1, RFC 3264 §6) and the far party is offered the session it had before
        again, by a re-INVITE of callherald's own. A 408 or 481 says the dialog is gone (§14.1)."""
        far_leg = relay.origin_leg.other
        status = response.status
        if status in (408, 481):
            self._hang_up(call, f"reinvite-{status}", now, out)
            return
        if not 200 <= status < 300:
            return
        body = b""
        offer = None if relay.offer_from_origin else _sdp_of(response)
        if offer is not None:
            dialog = call.dialog(far_leg)
            body = bytes(rejecting_answer(offer, dialog=dialog, media_address=self._settings.media_address))
        self._send_ack(call, far_leg, response.cseq.seq, out, body)
        out.append(
            LogEvent(
                level="info",
                text=f"leg {far_leg} answered the re-INVITE that leg {relay.origin_leg} cancelled"
                " (its 2xx crossed the CANCEL): ACKed",
                call_ref=call.ref,
            )
        )
        self._offer_previous_session(call, relay, now, out, before=" the cancelled re-INVITE")

    def _offer_previous_session(
        self, call: Call, relay: PendingRelay, now: float, out: list[Effect], *, before: str = ""
    ) -> None:
        """Offer the far party of ``relay`` the session callherald sent it before the relayed
        offer, which it took but its sender does not have (RFC 3264 §8)."""
        if relay.previous_sdp is None:
            return
        far_leg = relay.origin_leg.other
        back = _Reoffer(
            sdp=relay.previous_sdp,
            doing=f"offering leg {far_leg} the session as it was before{before}",
            refused=f"leg {far_leg} refused the session as it was before{before}",
        )
        self._reoffer(call, far_leg, back, now, out)

    def _cancel_b(self, call: Call, now: float, out: list[Effect]) -> None:
        """CANCEL the b-leg INVITE (§9.1): only after a provisional response, else later."""
        if not call.b_called:
            return
        if not call.b_provisional_seen:
            call.cancel_pending = True
            call.phase = CallPhase.CANCELLING
            return
        cancel = _cancel_for(call.b_invite)
        call.cancel_pending = False
        call.phase = CallPhase.CANCELLING
        self._send_request(
            cancel, call.b.peer, call.b.side, _ClientContext(kind="cancel", call=call), now, out
        )

    def _send_bye(self, call: Call, leg: MediaLeg, now: float, out: list[Effect]) -> None:
        dialog = call.dialog(leg)
        if (dialog.call_id, dialog.local_tag) in self._retired:
            return  # the transferor already left with BYE (RFC 5589 §6): that dialog is over
        bye = self._in_dialog_request(dialog, "BYE")
        self._send_request(
            bye,
            self._dialog_destination(dialog),
            dialog.side,
            _ClientContext(kind="bye", call=call, leg=leg),
            now,
            out,
        )

    def _hang_up(self, call: Call, reason: str, now: float, out: list[Effect], status: int = 503) -> None:
        """End ``call`` from our side, whatever phase it is in."""
        if call.phase in (CallPhase.CALLING, CallPhase.EARLY):
            if call.a_answered:
                self._send_bye(call, MediaLeg.A, now, out)
            else:
                self._reply(
                    call.a_invite_transaction, call.a_invite, status, out, now, to_tag=call.a.local_tag
                )
            self._cancel_b(call, now, out)
        elif call.phase in (CallPhase.ANSWERED, CallPhase.CONFIRMED):
            # The requests pending on the dialogs our BYEs end are answered first (§15.1.2).
            self._terminate_pending_relays(call, now, out)
            self._send_bye(call, MediaLeg.A, now, out)
            self._send_bye(call, MediaLeg.B, now, out)
        self._end_call(call, now, reason, out)

    def _end_call(
        self, call: Call, now: float, reason: str, out: list[Effect], status: int | None = None
    ) -> None:
        """Free everything the call holds; dialogs stay findable while a CANCEL is in flight."""
        if call.ref not in self._calls:
            return
        for leg in (MediaLeg.A, MediaLeg.B):
            self._disarm(f"{call.ref}:2xx:{leg}")
        self._disarm(f"{call.ref}:ring")
        self._disarm(f"{call.ref}:consent")
        self._disarm(f"{call.ref}:transfer")
        if call.announcer is not None:
            out.extend(call.announcer.ended(now))
        for key in [key for key, retired in self._retired.items() if retired is call]:
            del self._retired[key]
        self._end_transfer(call, now, out)
        self._release_ports(call)
        out.append(CloseMedia(call_ref=call.ref))
        del self._calls[call.ref]
        if call.phase is not CallPhase.CANCELLING:
            call.phase = CallPhase.ENDED
        self._dialogs.pop((call.a.call_id, call.a.local_tag), None)
        self._dialogs_by_remote_tag.pop((call.a.call_id, call.a.remote_tag or ""), None)
        self._our_call_ids.discard(call.a.call_id)  # ours when a transfer's dialog replaced a
        if call.phase is CallPhase.ENDED:
            self._forget_b(call)
        self.stats.calls_ended += 1
        out.append(CallEnded(call_ref=call.ref, reason=reason, status=status, at=now))

    def _forget_b(self, call: Call) -> None:
        self._dialogs.pop((call.b.call_id, call.b.local_tag), None)
        self._dialogs_by_remote_tag.pop((call.b.call_id, call.b.remote_tag or ""), None)
        self._our_call_ids.discard(call.b.call_id)

    def _release_ports(self, call: Call) -> None:
        if not call.ports_released:
            call.ports_released = True
            self._ports.release(call.a.media_port)
            self._ports.release(call.b.media_port)

    # In-dialog requests ------------------------------------------------------------------------

    def _on_in_dialog(
        self, request: Request, transaction_id: TransactionId, now: float, out: list[Effect]
    ) -> None:
        found = self._find_dialog(request)
        if found is None or found[0].ref not in self._calls:
            if request.method == "BYE":
                self._leaving.discard((request.call_id, request.to.tag or ""))  # it left by itself
            retired = self._retired.get((request.call_id, request.to.tag or ""))
            status = 200 if retired is not None and request.method == "BYE" else 481
            self._reply(transaction_id, request, status, out, now, to_tag=request.to.tag)
            return
        call, leg = found
        dialog = call.dialog(leg)
        seq = request.cseq.seq
        if dialog.remote_seq is not None and seq <= dialog.remote_seq and request.method != "CANCEL":
            self._reply(transaction_id, request, 500, out, now, to_tag=request.to.tag)  # §12.2.2
            return
        dialog.remote_seq = seq
        method = request.method
        if method != "BYE" and self._handled_by_announcer(call, leg, request, transaction_id, now, out):
            return
        transfer = call.transfer
        if method == "BYE" and transfer is not None and transfer.leg is leg:
            # The transferor leaves after the REFER (RFC 5589 §6): the transfer goes on without it.
            self._reply(transaction_id, request, 200, out, now, to_tag=request.to.tag)
            transfer.notify = False
            self._retire(call, transfer.old)
            return
        if method == "REFER":
            self._on_refer(call, leg, request, transaction_id, now, out)
            return
        if method == "BYE":
            self._reply(transaction_id, request, 200, out, now, to_tag=request.to.tag)
            self._terminate_pending_relays(call, now, out)
            if (
                leg is MediaLeg.A
                and call.phase in (CallPhase.CALLING, CallPhase.EARLY)
                and not call.a_answered
            ):
                # BYE on the early dialog: the INVITE still needs its final response (§15.1.2).
                self._reply(call.a_invite_transaction, call.a_invite, 487, out, now, to_tag=call.a.local_tag)
            other = leg.other
            if call.dialog(other).confirmed or call.phase in (CallPhase.ANSWERED, CallPhase.CONFIRMED):
                self._send_bye(call, other, now, out)
            elif other is MediaLeg.B:
                self._cancel_b(call, now, out)
            self._end_call(call, now, f"bye-from-{leg}", out)
        elif method == "OPTIONS":
            self._reply(
                transaction_id,
                request,
                200,
                out,
                now,
                to_tag=request.to.tag,
                extra=(("Allow", ALLOWED_METHODS),),
            )
        elif method == "INVITE" or method in _RELAYED_IN_DIALOG:
            self._relay_in_dialog(call, leg, request, transaction_id, now, out)
        elif method == "PRACK":
            self._reply(
                transaction_id, request, 481, out, now, to_tag=request.to.tag
            )  # we send no reliable 1xx
        elif method in _KNOWN_METHODS:
            self._reply(
                transaction_id,
                request,
                405,
                out,
                now,
                to_tag=request.to.tag,
                extra=(("Allow", ALLOWED_METHODS),),
            )
        else:
            self._reply(
                transaction_id,
                request,
                501,
                out,
                now,
                to_tag=request.to.tag,
                extra=(("Allow", ALLOWED_METHODS),),
            )

    def _handled_by_announcer(
        self,
        call: Call,
        leg: MediaLeg,
        request: Request,
        transaction_id: TransactionId,
        now: float,
        out: list[Effect],
    ) -> bool:
        """Requests of the outside party that callherald answers itself; True when handled.

        A SIP INFO key press (application/dtmf-relay) answers a consent question; once consent is
        decided it may withdraw consent: callherald answers it itself while the agent is not
        joined yet, and relays it as well after the bridge; otherwise (an unannounced or unrecorded
        call) it is relayed like any INFO. Until the PBX answers an inbound call (in answer mode
        or as 183 early media) callherald answers the caller's re-INVITE or UPDATE itself: a
        session refresh with the same SDP, a hold with the direction it asks for.
        """
        announcer = call.announcer
        if announcer is None or leg is not announcer.outside_leg:
            return False
        method = request.method
        keyed_stages = (AnnouncerStage.ANNOUNCING, AnnouncerStage.DECIDED, AnnouncerStage.BRIDGED)
        if method == "INFO" and announcer.stage in keyed_stages:
            digit = _info_digit(request)
            if digit is not None:
                announcing = announcer.stage is not AnnouncerStage.BRIDGED
                out.extend(announcer.digit(digit, DigitMechanism.SIP_INFO, now))
                self._after_announcer(call, now, out)
                if announcing:  # for callherald (its question, or the agent not joined yet)
                    self._reply(transaction_id, request, 200, out, now, to_tag=request.to.tag)
                    return True
                return False
        if not ((call.a_answered or call.a_early_media) and leg is MediaLeg.A and not call.b.confirmed):
            return False
        if method in ("INVITE", "UPDATE"):
            try:
                offer = self._parse_offer(request)
            except SipError as error:
                self._reply(transaction_id, request, error.status_hint, out, now, to_tag=request.to.tag)
                return True
            if offer is not None and not carries_plain_rtp(offer):
                # callherald plays to the caller in plain RTP only (``_relay_in_dialog``).
                self._reply(
                    transaction_id, request, 488, out, now, to_tag=request.to.tag, extra=(_NOT_PLAIN_RTP,)
                )
                return True
            if offer is not None:
                media = announcer.media
                answer = None
                if media is not None and media_format(offer) == media:
                    codecs = frozenset({media.codec, "telephone-event"})
                    answer = anchor_sdp(
                        offer, dialog=call.a, media_address=self._settings.media_address, codecs=codecs
                    )
                if answer is None:
                    self._refuse_codecs(transaction_id, request, now, out)
                    return True
                _answer_directions(answer)
                call.a_answer = self._new_version_if_changed(call.a, answer, call.a_answer)
                self._apply_later_sdp(call, MediaLeg.A, offer, out)
                self._hold_changed(call, MediaLeg.A, offer.is_hold(), now, out)
                if call.b_called:  # the PBX learns it once it answers (``_pbx_follows_the_caller``)
                    call.caller_direction = _audio_direction(offer)
                else:  # the PBX is offered the caller's media as it is now (on hold, or not)
                    pbx_offer = anchor_sdp(
                        offer, dialog=call.b, media_address=self._settings.media_address, codecs=codecs
                    )
                    call.b_offer = bytes(pbx_offer) if pbx_offer is not None else call.b_offer
            headers = (
                ("Contact", call.a.local_contact),
                ("Server", self._settings.user_agent),
                ("Content-Type", "application/sdp"),
            )
            response = make_response(
                request, 200, to_tag=request.to.tag, extra_headers=headers, body=call.a_answer
            )
            self._respond(transaction_id, response, now, out)
            if method == "INVITE":
                self._retransmit_2xx(call, MediaLeg.A, response, request.cseq.seq, now)
            return True
        self._reply(
            transaction_id, request, 200 if method == "INFO" else 491, out, now, to_tag=request.to.tag
        )
        return True

    @staticmethod
    def _apply_later_sdp(
        call: Call, leg: MediaLeg, sdp: SessionDescription, out: list[Effect], *, new_party: bool = False
    ) -> None:
        """``leg``'s party answered a re-INVITE or UPDATE with ``sdp``, or the other party answered
        the offer ``sdp`` it made in one (a 2xx): the relay learns where it receives, and prompts
        and tones go to it in the packets it asks for now (``a=ptime``, RFC 4566 §6), the one
        playing from its next packet on. An offer refused changes neither: the session stays as
        it was (RFC 3261 §14.2)."""
        out.append(set_media_remote(call.ref, leg, sdp, new_party=new_party))
        if call.announcer is not None:
            call.announcer.packet_ms_changed(leg, packet_ms(sdp))

    def _offer_refused(
        self, call: Call, relay: PendingRelay, now: float, out: list[Effect], *, cancelled: bool = False
    ) -> None:
        """The offer in ``relay`` was refused: by the far party's non-2xx or its silence, or by
        callherald's 488 to the far party's answer; or its sender cancelled it. The session stays
        as it was (RFC 3261 §14.1, §14.2; RFC 3311 §5.1): the relay never took its address, and a
        hold it began, which paused the recording as it arrived, ends here (an end of a hold
        waits for the answer, so a refused one changes nothing)."""
        if relay.offer_from_origin:
            undone = "cancelled" if cancelled else "refused"
            self._hold_changed(call, relay.origin_leg, relay.held_before, now, out, undone=undone)

    def _with_added_law(self, call: Call, dialog: Dialog, offer: SessionDescription) -> SessionDescription:
        """``offer``, about to be sent in ``dialog``, with the G.711 law callherald added to leg b's
        INVITE (``offer_with_other_law``) where it offers the same law alone: leg b keeps being
        offered the session it answered (RFC 3264 §8), and a refresh stays the same SDP."""
        if dialog.leg is not MediaLeg.B or call.b_offer_added_law is None:
            return offer
        extended, added = offer_with_other_law(offer, self._settings.codecs)
        if added != call.b_offer_added_law:
            return offer
        dialog.last_sdp = extended
        return extended

    @staticmethod
    def _new_version_if_changed(dialog: Dialog, answer: SessionDescription, previous: bytes) -> bytes:
        """``answer`` (an offer too) as sent, or ``previous`` when nothing but the version would
        differ, ``answer`` then taking its version: an unchanged session keeps its version (RFC
        3264 §8), as in a session refresh."""
        bumped = answer.origin
        try:
            before = SessionDescription.parse(previous).origin
        except SipError:
            before = None
        if before is not None:
            answer.origin = replace(bumped, sess_version=before.sess_version)
            if bytes(answer) == previous:
                dialog.sdp_version -= 1  # the version anchor_sdp drew was not used
                dialog.last_sdp = answer
                return previous
            answer.origin = bumped
        return bytes(answer)

    def _terminate_pending_relays(self, call: Call, now: float, out: list[Effect]) -> None:
        """The call ends on a BYE, a party's or callherald's own: each request still waiting for
        the far side's answer gets 487 at once (RFC 3261 §15.1.2): not a late 408 on the ended
        dialog once the far side times out, and a final response even when the far side never
        sends one. A relayed re-INVITE stays pending (``ended``) until the far side's final
        response: a 2xx to it must be ACKed."""
        for transaction_id, relay in list(call.pending_relays.items()):
            if not relay.cancelled:  # a cancelled one had its 487 already
                self._reply(
                    relay.server_transaction, relay.request, 487, out, now, to_tag=relay.request.to.tag
                )
            if relay.request.method == "INVITE":
                relay.ended = True
            else:
                del call.pending_relays[transaction_id]

    def _relay_in_dialog(
        self,
        call: Call,
        leg: MediaLeg,
        request: Request,
        transaction_id: TransactionId,
        now: float,
        out: list[Effect],
    ) -> None:
        """Relay a re-INVITE, UPDATE, INFO, MESSAGE or NOTIFY to the other leg, SDP re-anchored."""
        other = call.dialog(leg.other)
        if request.method == "INVITE":
            pending = [r for r in call.pending_relays.values() if r.request.method == "INVITE"]
            # One its sender cancelled had its 487; only the far party's answer is still to come.
            pending_from = {r.origin_leg for r in pending if not r.cancelled}
            if leg in pending_from:
                # §14.2: a second INVITE before the first got its final response.
                self._reply_retry_later(transaction_id, request, out, now)
                return
            if pending or call.unacked_2xx or call.reoffers_pending:
                self._reply(transaction_id, request, 491, out, now, to_tag=request.to.tag)  # §14.1 glare
                return
        if other.remote_target is None:
            self._reply(transaction_id, request, 491, out, now, to_tag=request.to.tag)
            return
        if request.method == "INVITE":
            self._reply(transaction_id, request, 100, out, now, to_tag=None)
        body = request.body
        content_type = request.headers.get("content-type") or ""
        offer_present = False
        offer: SessionDescription | None = None
        anchored: SessionDescription | None = None
        new_party: str | None = None
        law_swapped: LawTranslation | None = None
        previous_sdp = other.last_sdp
        held_before = leg in call.held_by
        if request.method in ("INVITE", "UPDATE") and body:
            try:
                offer = self._parse_offer(request)
            except SipError as error:
                self._reply(transaction_id, request, error.status_hint, out, now, to_tag=request.to.tag)
                return
            if offer is not None:
                if request.method == "UPDATE" and self._offer_outstanding(call):
                    # RFC 3311 §5.1, §5.2: no offer while another is unanswered on either dialog:
                    # 500 when it is the sender's own, still unanswered by callherald; else 491.
                    if self._unanswered_offer_from(call, leg):
                        self._reply_retry_later(transaction_id, request, out, now)
                    else:
                        self._reply(transaction_id, request, 491, out, now, to_tag=request.to.tag)
                    return
                if not carries_plain_rtp(offer) and self._plain_rtp_only(call):
                    # The notice goes out in plain RTP, which a party expecting SRTP drops, and
                    # the relay renumbers and the recorder decodes plain RTP: SRTP would be garbled
                    # by one and stored as noise by the other. Refused, the session goes on as it
                    # was (RFC 3264 §8).
                    self._reply(
                        transaction_id, request, 488, out, now, to_tag=request.to.tag, extra=(_NOT_PLAIN_RTP,)
                    )
                    return
                new_party = self._new_outside_party(call, leg, request, offer)
                anchored = anchor_sdp(
                    offer,
                    dialog=other,
                    media_address=self._settings.media_address,
                    codecs=self._offer_codecs(call, new_party),
                )
                if anchored is None:
                    self._refuse_codecs(transaction_id, request, now, out)
                    return
                anchored = self._with_added_law(call, other, anchored)
                translation = call.translations.get(leg)
                if translation is not None:
                    in_call_law = party_offer_in_call_law(anchored, translation)
                    law_swapped = translation if in_call_law is not anchored else None
                    anchored = in_call_law
                if previous_sdp is not None:  # a session refresh offers the same session, same version
                    self._new_version_if_changed(other, anchored, bytes(previous_sdp))
                # RFC 3264 §8: the relay sends to the offer's address once the other party
                # answered it (``_on_relay_response``). A hold pauses the recording at once, as
                # music on hold may start before the answer; a refusal ends it (``_offer_refused``).
                if offer.is_hold():
                    self._hold_changed(call, leg, True, now, out)
                body = bytes(anchored)
                content_type = "application/sdp"
                offer_present = True
        if offer is None:
            new_party = self._new_outside_party(call, leg, request, None)
        relayed = self._in_dialog_request(other, request.method, body, content_type)
        if request.max_forwards is not None:
            relayed.headers.set("Max-Forwards", str(request.max_forwards - 1))  # §16.6 step 3
        for name, value in request.headers:
            if name.lower() in ("event", "subscription-state", "info-package", "recv-info"):
                relayed.headers.add(name, value)
        client_id = self._send_request(
            relayed,
            self._dialog_destination(other),
            other.side,
            _ClientContext(kind="relay", call=call, leg=leg.other),
            now,
            out,
        )
        call.pending_relays[client_id] = PendingRelay(
            origin_leg=leg,
            server_transaction=transaction_id,
            request=request,
            offer_from_origin=offer_present,
            relayed_offer=anchored,
            previous_sdp=previous_sdp,
            held_before=held_before,
            new_party=new_party,
            law_swapped=law_swapped,
        )

    @staticmethod
    def _unanswered_offer_from(call: Call, leg: MediaLeg) -> bool:
        """Whether an offer ``leg``'s party sent, relayed by callherald, still waits for the answer
        callherald owes it (one its sender cancelled was answered by the 487)."""
        return any(
            relay.origin_leg is leg and relay.offer_from_origin and not relay.cancelled
            for relay in call.pending_relays.values()
        )

    def _reply_retry_later(
        self, transaction_id: TransactionId, request: Request, out: list[Effect], now: float
    ) -> None:
        """500 with a Retry-After of 1-10 s, random (RFC 3261 §14.2, RFC 3311 §5.2): a party's new
        offer while callherald still owes an answer to its last one."""
        retry_after = str(1 + int(self._token()[:2], 16) % 10)
        extra = (("Retry-After", retry_after),)
        self._reply(transaction_id, request, 500, out, now, to_tag=request.to.tag, extra=extra)

    @staticmethod
    def _offer_outstanding(call: Call) -> bool:
        """Whether an offer callherald sent or relayed waits for its answer: in a re-INVITE it
        relayed (also one its sender cancelled: the far party's answer is still to come) or one
        of its own (a re-offer), or in an UPDATE it relayed. Another offer on either dialog now
        would cross it (RFC 3261 §14.1, RFC 3311 §5.1), so it gets 491 (§14.2)."""
        relayed = any(
            relay.request.method == "INVITE" or relay.offer_from_origin
            for relay in call.pending_relays.values()
        )
        return relayed or bool(call.reoffers_pending)

    def _offer_codecs(self, call: Call, new_party: str | None) -> frozenset[str]:
        """The codecs a relayed offer may keep. While callherald's own notice or questions play,
        only the one they play in: a prompt cannot change format midway, so an offer without
        it gets 488 and the session goes on as it was (RFC 3261 §14.2), as an inbound caller's
        does before the PBX answers. A new party hears the notice again, in its own codec."""
        announcer = call.announcer
        codecs = self._settings.codecs
        if announcer is None or announcer.stage is not AnnouncerStage.ANNOUNCING or new_party is not None:
            return codecs
        media = announcer.media
        return codecs if media is None else codecs & {media.codec, "telephone-event"}

    @staticmethod
    def _new_outside_party(
        call: Call, leg: MediaLeg, request: Request, offer: SessionDescription | None
    ) -> str | None:
        """Why a re-INVITE or UPDATE on ``leg`` brings another outside party (``_party_change``);
        None: it does not. A carrier may connect a forwarded or transferred party with either
        (RFC 3311 §5.1 lets an UPDATE change the session as a re-INVITE does)."""
        announcer = call.announcer
        if (
            request.method in ("INVITE", "UPDATE")
            and announcer is not None
            and leg is announcer.outside_leg
            # Also while a notice plays: a party arriving mid-notice hears it again from the start.
            and announcer.stage in (AnnouncerStage.ANNOUNCING, AnnouncerStage.DECIDED, AnnouncerStage.BRIDGED)
        ):
            return _party_change(call.outside_identity, _identity(request, offer))
        return None

    # Transfer (REFER, RFC 3515) ---------------------------------------------------------------

    def _replaces_own_dialog(self, uri_headers: list[tuple[str, str]]) -> bool:
        """Whether a Refer-To's Replaces (RFC 3891 §6.1: Call-ID, to-tag, from-tag) names a dialog
        callherald is a party to."""
        for name, value in uri_headers:
            if name.lower() != "replaces":
                continue
            call_id, *params = (part.strip() for part in value.split(";"))
            tags = [
                param.partition("=")[2]
                for param in params
                if param.lower().startswith(("to-tag=", "from-tag="))
            ]
            if any((call_id, tag) in self._dialogs for tag in tags):
                return True
        return False

    def _on_refer(
        self,
        call: Call,
        leg: MediaLeg,
        request: Request,
        transaction_id: TransactionId,
        now: float,
        out: list[Effect],
    ) -> None:
        """The party on ``leg`` asks us to replace it by calling the Refer-To target (blind transfer).

        callherald stays in the path: it calls the target on the same side, with the same RTP port,
        and joins it to the other party when it answers. Headers in the Refer-To URI (an attended
        transfer's Replaces, RFC 3891) go into that INVITE. The transferor hears of progress by
        NOTIFY with a message/sipfrag body (RFC 3515 §2.4.4). A new outside party hears the notice
        before anything is recorded; a new agent hears the beep.
        """
        announcer = call.announcer
        busy = call.transfer is not None or call.pending_relays or call.unacked_2xx
        settled = announcer is None or announcer.stage in (AnnouncerStage.BRIDGED, AnnouncerStage.FAILED)
        if call.phase is not CallPhase.CONFIRMED or busy or not settled:
            self._reply(transaction_id, request, 491, out, now, to_tag=request.to.tag)
            return
        refer_tos = request.headers.fields("refer-to")
        try:
            if len(refer_tos) != 1:
                raise SipError("REFER needs exactly one Refer-To", 400)  # RFC 3515 §2.4.1
            target = NameAddress.parse(refer_tos[0]).uri
        except SipError as error:
            self._reply(transaction_id, request, error.status_hint, out, now, to_tag=request.to.tag)
            return
        old = call.dialog(leg)
        if isinstance(target, TelUri):
            host, port = old.remote_target.host_port() if isinstance(old.remote_target, SipUri) else old.peer
            target = SipUri(user=target.digits, host=host, port=port)
        if not isinstance(target, SipUri) or old.last_sdp is None:
            self._reply(
                transaction_id,
                request,
                416 if not isinstance(target, SipUri) else 488,
                out,
                now,
                to_tag=request.to.tag,
            )
            return
        uri_headers = _uri_headers(target.headers)
        if self._replaces_own_dialog(uri_headers):
            # An attended transfer between two calls that both pass through callherald: the INVITE
            # with Replaces would come back to callherald itself (RFC 3891 §3), which cannot join two
            # of its calls. Refused, so that the PBX joins them itself; both calls go on.
            out.append(
                LogEvent(
                    level="warning",
                    text="refused a REFER whose Replaces names another call through callherald"
                    " (an attended transfer between two of its calls); the calls go on",
                    call_ref=call.ref,
                )
            )
            self._reply(
                transaction_id, request, 403, out, now, to_tag=request.to.tag, extra=(_REPLACES_OWN_DIALOG,)
            )
            return
        target = replace(target, headers="")
        new = Dialog(
            side=old.side,
            leg=leg,
            call_id=f"{self._token()}{self._token()}@callherald",
            local_tag=self._token(),
            remote_tag=None,
            local_party=old.local_party,
            remote_party=NameAddress(uri=target),
            local_seq=0,
            remote_seq=None,
            remote_target=target,
            route_set=[],
            peer=self._dialog_destination(old),
            local_contact=old.local_contact,
            media_port=old.media_port,
            sdp_session_id=str(int(self._token()[:8], 16)),
        )
        offer = anchor_sdp(
            old.last_sdp, dialog=new, media_address=self._settings.media_address, codecs=self._settings.codecs
        )
        if offer is None:
            self._reply(transaction_id, request, 488, out, now, to_tag=request.to.tag)
            return
        # The last SDP the transferor got may answer its own hold (recvonly): the target is offered
        # the other party's side of the call as it will be, held only if that party holds it.
        for media in offer.media:
            if media.media == "audio" and not media.rejected:
                media.direction = "sendonly" if leg.other in call.held_by else "sendrecv"
        self._reply(transaction_id, request, 202, out, now, to_tag=request.to.tag)
        extra: list[tuple[str, str]] = []
        referred_by = request.headers.get("referred-by")
        if referred_by:
            extra.append(("Referred-By", referred_by))
        extra.extend((name, value) for name, value in uri_headers if name.lower() == "replaces")
        invite = self._dialog_invite(new, bytes(offer), max_forwards=_DEFAULT_MAX_FORWARDS, extra=extra)
        transfer = Transfer(leg=leg, old=old, new=new, invite=invite, refer=request)
        call.transfer = transfer
        self._our_call_ids.add(new.call_id)
        out.append(LogEvent(level="info", text=f"leg {leg} transfers to {target}", call_ref=call.ref))
        self._notify_transferor(call, transfer, "SIP/2.0 100 Trying", final=False, now=now, out=out)
        self._pause_for_transfer(call, out)
        self._arm(
            f"{call.ref}:transfer", now + self._settings.ring_timeout_s, partial(self._transfer_timeout, call)
        )
        self._send_request(
            invite,
            new.peer,
            new.side,
            _ClientContext(kind="transfer", call=call, leg=leg, transfer=transfer),
            now,
            out,
        )

    def _pause_for_transfer(self, call: Call, out: list[Effect]) -> None:
        """While the target rings the remaining party hears ringback and nothing is recorded."""
        transfer = call.transfer
        assert transfer is not None
        announcer = call.announcer
        if announcer is not None:
            out.extend(announcer.pause())
        else:
            out.append(BridgeMedia(call_ref=call.ref, bridged=False))
        media = announcer.media if announcer is not None else None
        if media is None and transfer.old.last_sdp is not None:
            media = media_format(transfer.old.last_sdp)
        if media is not None:
            out.append(PlayTone(call_ref=call.ref, leg=transfer.leg.other, tone=Tone.RINGBACK, media=media))

    def _transfer_timeout(self, call: Call, now: float, out: list[Effect]) -> None:
        transfer = call.transfer
        if transfer is not None and call.ref in self._calls:
            self._cancel_transfer(call, transfer, now, out)
            self._transfer_failed(call, 408, "Request Timeout", now, out)

    def _on_transfer_response(
        self, call: Call, transfer: Transfer, response: Response, now: float, out: list[Effect]
    ) -> None:
        status = response.status
        new = transfer.new
        if status < 200:
            transfer.provisional_seen = True  # §9.1: a CANCEL may follow any provisional response
            if transfer.cancel_pending:
                self._cancel_transfer(call, transfer, now, out)
            elif status in (180, 183) and call.transfer is transfer:
                self._notify_transferor(
                    call, transfer, f"SIP/2.0 {status} {response.reason}", final=False, now=now, out=out
                )
            return
        if status >= 300:
            if call.transfer is transfer:
                self._transfer_failed(call, status, response.reason, now, out)
            return
        if call.dialog(transfer.leg) is new:
            self._resend_ack(call, transfer.leg, response, out)  # our ACK was lost (§13.2.2.4)
            return
        self._learn_remote(new, response, early=False)
        ack = self._ack_for(new, response.cseq.seq)
        out.append(SendSip(message=ack, destination=self._dialog_destination(new), side=new.side))
        if call.transfer is not transfer or call.ref not in self._calls:
            # The call ended (or the transfer was given up) while the target rang: hang it up.
            out.append(
                SendSip(
                    message=self._in_dialog_request(new, "BYE"),
                    destination=self._dialog_destination(new),
                    side=new.side,
                )
            )
            self._our_call_ids.discard(new.call_id)
            return
        call.sent_acks[(transfer.leg, response.cseq.seq)] = ack
        self._disarm(f"{call.ref}:transfer")
        self._notify_transferor(call, transfer, "SIP/2.0 200 OK", final=True, now=now, out=out, then_bye=True)
        self._retire(call, transfer.old)
        call.transfer = None
        leg = transfer.leg
        if leg is MediaLeg.A:
            call.a = new
        else:
            call.b = new
        self._dialogs[(new.call_id, new.local_tag)] = (call, leg)
        if new.remote_tag:
            self._dialogs_by_remote_tag[(new.call_id, new.remote_tag)] = (call, leg)
        sdp = _sdp_of(response)
        # The new party's law is its own: translated only if it too answered the other one.
        offer = _sdp_of(transfer.invite)
        if sdp is not None and offer is not None:
            sdp, _ = _in_offers_law(call, leg, sdp, offer, self._settings.codecs, out)
        else:
            _translate_audio(call, leg, None, out)
        out.append(set_media_remote(call.ref, leg, sdp, new_party=True))
        out.append(StopPlayout(call_ref=call.ref, leg=leg.other))
        out.append(LogEvent(level="info", text=f"transfer on leg {leg} answered", call_ref=call.ref))
        if leg in call.held_by:
            # The transferor held the other party (as RFC 5589 §6 has it do before a REFER): its
            # hold left with it, and the other party, which answered it recvonly, comes off hold.
            self._hold_changed(call, leg, False, now, out, party_left=True)
            if sdp is not None:
                other = leg.other
                resume = _Reoffer(
                    sdp=sdp,
                    doing=f"taking leg {other} off hold after the transfer",
                    refused=f"leg {other} refused to come off hold after the transfer",
                )
                self._reoffer(call, other, resume, now, out)
        announcer = call.announcer
        if announcer is None:
            out.append(BridgeMedia(call_ref=call.ref, bridged=True))
        elif leg is announcer.outside_leg and announcer.stage is not AnnouncerStage.FAILED:
            call.outside_identity = _identity(response, sdp)
            call.announce_progressed = False
            fmt = media_format(sdp) if sdp is not None else None
            out.extend(
                announcer.party_changed(
                    "transfer",
                    fmt,
                    now,
                    sip_call_id=new.call_id,
                    remote_uri=_asserted_uri(response) or str(new.remote_party.uri),
                )
            )
            self._after_announcer(call, now, out)
        else:
            out.extend(announcer.resume(now))

    def _reoffer(self, call: Call, leg: MediaLeg, reoffer: _Reoffer, now: float, out: list[Effect]) -> None:
        """Offer ``leg``'s party ``reoffer.sdp`` by a re-INVITE of callherald's own: the transfer
        target's media once a transferor's hold is over (RFC 3264 §8.4), which the party answered
        recvonly, sending nothing; the caller's direction to a PBX that was offered another."""
        dialog = call.dialog(leg)
        offer = anchor_sdp(
            reoffer.sdp,
            dialog=dialog,
            media_address=self._settings.media_address,
            codecs=self._settings.codecs,
        )
        if offer is None or dialog.remote_target is None or call.ref not in self._calls:
            return
        reinvite = self._in_dialog_request(dialog, "INVITE", bytes(offer), "application/sdp")
        out.append(LogEvent(level="info", text=reoffer.doing, call_ref=call.ref))
        call.reoffers_pending.append(leg)
        self._send_request(
            reinvite,
            self._dialog_destination(dialog),
            dialog.side,
            _ClientContext(kind="reoffer", call=call, leg=leg, reoffer=reoffer),
            now,
            out,
        )

    def _on_reoffer_response(
        self, call: Call, context: _ClientContext, response: Response, now: float, out: list[Effect]
    ) -> None:
        leg, status, reoffer = context.leg, response.status, context.reoffer
        if status < 200 or leg is None or reoffer is None:
            return
        if leg in call.reoffers_pending:  # a 2xx retransmitted finds it answered
            call.reoffers_pending.remove(leg)
        if status < 300:
            self._send_ack(call, leg, response.cseq.seq, out)
            sdp = _sdp_of(response)
            if sdp is not None:
                out.append(set_media_remote(call.ref, leg, sdp))
            return
        if status == 491 and reoffer.attempt < _REOFFER_ATTEMPTS:
            # RFC 3261 §14.1: glare. The owner of the Call-ID waits 2.1-4 s, the other party 0-2 s.
            owner = call.dialog(leg).call_id.endswith("@callherald")
            tenths = int(self._token()[:2], 16) % 20
            delay_s = (21 + tenths) / 10 if owner else tenths / 10
            again = partial(self._reoffer, call, leg, replace(reoffer, attempt=reoffer.attempt + 1))
            self._arm(f"{call.ref}:reoffer:{leg}", now + delay_s, again)
            return
        out.append(
            LogEvent(
                level="warning",
                text=f"{reoffer.refused}: {status} {response.reason}",
                call_ref=call.ref,
            )
        )

    def _transfer_failed(self, call: Call, status: int, reason: str, now: float, out: list[Effect]) -> None:
        """The target did not answer: the transferor keeps the call, or it ends if it left."""
        transfer = call.transfer
        assert transfer is not None
        call.transfer = None
        self._disarm(f"{call.ref}:transfer")
        self._our_call_ids.discard(transfer.new.call_id)
        out.append(LogEvent(level="info", text=f"transfer failed: {status} {reason}", call_ref=call.ref))
        self._notify_transferor(call, transfer, f"SIP/2.0 {status} {reason}", final=True, now=now, out=out)
        if not transfer.notify:
            self._send_bye(call, transfer.leg.other, now, out)
            self._end_call(call, now, "transfer-failed", out)
            return
        out.append(StopPlayout(call_ref=call.ref, leg=transfer.leg.other))
        if call.announcer is not None:
            out.extend(call.announcer.resume(now))
        else:
            out.append(BridgeMedia(call_ref=call.ref, bridged=True))

    def _cancel_transfer(self, call: Call, transfer: Transfer, now: float, out: list[Effect]) -> None:
        """CANCEL the INVITE to the transfer target (§9.1: only after a provisional response, else later)."""
        if not transfer.provisional_seen:
            transfer.cancel_pending = True
            return
        transfer.cancel_pending = False
        cancel = _cancel_for(transfer.invite)
        self._send_request(
            cancel, transfer.new.peer, transfer.new.side, _ClientContext(kind="cancel", call=call), now, out
        )

    def _end_transfer(self, call: Call, now: float, out: list[Effect]) -> None:
        """The call ends while a transfer target rings: cancel that INVITE."""
        transfer = call.transfer
        if transfer is None:
            return
        call.transfer = None
        self._our_call_ids.discard(transfer.new.call_id)
        self._cancel_transfer(call, transfer, now, out)

    def _notify_transferor(
        self,
        call: Call,
        transfer: Transfer,
        status_line: str,
        *,
        final: bool,
        now: float,
        out: list[Effect],
        then_bye: bool = False,
    ) -> None:
        """Tell the transferor how the transfer goes (RFC 3515 §2.4.4, implicit subscription).
        ``then_bye``: end its dialog with BYE ``TRANSFEROR_LEAVES_S`` after this NOTIFY is
        answered, unless the transferor's own BYE comes first (RFC 5589 §6 has it send one), and
        never before: sent together, the BYE may overtake the NOTIFY on the way (through a proxy
        with several workers), and the transferor must then refuse the NOTIFY and never learns
        the outcome."""
        if not transfer.notify:
            return
        if transfer.notify_in_flight:
            # RFC 6665 §4.2.2: no new NOTIFY before the last one is answered; through a proxy
            # they could arrive out of order. Only the newest state is worth sending.
            transfer.notify_next = (status_line, final, then_bye)
            return
        transfer.notify_in_flight = True
        dialog = transfer.old
        notify = self._in_dialog_request(
            dialog, "NOTIFY", f"{status_line}\r\n".encode(), "message/sipfrag;version=2.0"
        )
        # The REFER's CSeq tells its subscription from an earlier REFER's in this dialog (RFC 3515 §2.4.6).
        notify.headers.add("Event", f"refer;id={transfer.refer.cseq.seq}")
        notify.headers.add("Contact", dialog.local_contact)  # RFC 6665: a NOTIFY carries a Contact
        notify.headers.add(
            "Subscription-State", "terminated;reason=noresource" if final else "active;expires=60"
        )
        context = _ClientContext(kind="notify", call=call, transfer=transfer)
        if then_bye:
            context.bye_after = dialog
            self._leaving.add((dialog.call_id, dialog.local_tag))
        self._send_request(notify, self._dialog_destination(dialog), dialog.side, context, now, out)

    def _notify_done(self, call: Call, transfer: Transfer | None, now: float, out: list[Effect]) -> None:
        """A NOTIFY was answered or timed out: the progress reported meanwhile goes now."""
        if transfer is None:
            return
        transfer.notify_in_flight = False
        waiting, transfer.notify_next = transfer.notify_next, None
        if waiting is not None:
            status_line, final, then_bye = waiting
            self._notify_transferor(
                call, transfer, status_line, final=final, now=now, out=out, then_bye=then_bye
            )

    def _leave(self, call: Call, dialog: Dialog, now: float, out: list[Effect]) -> None:
        """End a transferor's retired dialog with BYE, unless its own BYE came first."""
        key = (dialog.call_id, dialog.local_tag)
        if key in self._leaving:
            self._leaving.discard(key)
            self._send_bye_on(call, dialog, now, out)

    def _send_bye_on(self, call: Call, dialog: Dialog, now: float, out: list[Effect]) -> None:
        bye = self._in_dialog_request(dialog, "BYE")
        self._send_request(
            bye,
            self._dialog_destination(dialog),
            dialog.side,
            _ClientContext(kind="bye", call=call),
            now,
            out,
        )

    def _retire(self, call: Call, dialog: Dialog) -> None:
        """Forget a replaced dialog, but keep answering its BYE."""
        key = (dialog.call_id, dialog.local_tag)
        if self._dialogs.get(key, (None,))[0] is call:
            del self._dialogs[key]
        self._dialogs_by_remote_tag.pop((dialog.call_id, dialog.remote_tag or ""), None)
        self._our_call_ids.discard(dialog.call_id)
        self._retired[key] = call

    # Responses ---------------------------------------------------------------------------------

    def _on_response(
        self, response: Response, transaction_id: TransactionId, now: float, out: list[Effect]
    ) -> None:
        context = self._clients.get(transaction_id)
        if context is None:
            self.stats.stray_messages += 1
            return
        if context.kind == "register":
            if self.registration is not None and response.status >= 200:
                follow_up = self.registration.on_response(response, now)
                if follow_up is not None:
                    self._send_register(follow_up, now, out)
                else:
                    self._log_registration(response.status, now, out)
            return
        call = context.call
        if call is None:
            return
        relay = call.pending_relays.get(transaction_id) if context.kind == "relay" else None
        challenged = (
            response.status in (401, 407)
            and context.kind in _CHALLENGED_KINDS
            and not (relay is not None and (relay.cancelled or relay.ended))  # nothing is left to send it for
        )
        if challenged and self._answer_challenge(call, transaction_id, context, response, now, out):
            return
        if context.kind == "notify" and response.status >= 200:
            self._notify_done(call, context.transfer, now, out)
        if context.bye_after is not None and response.status >= 200:
            dialog = context.bye_after
            self._arm(
                f"{call.ref}:leave:{dialog.call_id}",
                now + TRANSFEROR_LEAVES_S,
                partial(self._leave, call, dialog),
            )
        if context.kind == "invite":
            self._on_invite_response(call, response, now, out)
        elif context.kind == "transfer" and context.transfer is not None:
            self._on_transfer_response(call, context.transfer, response, now, out)
        elif context.kind == "relay":
            self._on_relay_response(call, transaction_id, response, now, out)
        elif context.kind == "reoffer":
            self._on_reoffer_response(call, context, response, now, out)

    def _on_invite_response(self, call: Call, response: Response, now: float, out: list[Effect]) -> None:
        status = response.status
        if call.phase is CallPhase.CANCELLING:
            self._on_response_while_cancelling(call, response, now, out)
            return
        if call.phase is CallPhase.ENDED:
            if 200 <= status < 300:
                self._resend_ack(call, MediaLeg.B, response, out)
            return
        if status == 100:
            call.b_provisional_seen = True  # §9.1: any provisional response allows a CANCEL
            return
        b = call.b
        if status < 200:
            self._unsolicited_reliable(call, b, response, out)
            call.b_provisional_seen = True
            self._learn_remote(b, response, early=True)
            self._keep_early_answer(call, response)
            call.phase = CallPhase.EARLY
            early = self._callee_answer(call, response, out) if call.b_invite_had_offer else None
            if early is not None and not has_allowed_audio(early, self._settings.codecs):
                self._callee_sdp_unusable(call, response, now, out, offer=None)
                return
            self._relay_provisional(call, response, early, now, out)
            return
        if 200 <= status < 300:
            self._on_b_answered(call, response, now, out)
            return
        if status in (401, 407) and self._retry_with_credentials(call, response, now, out):
            return
        if status in (488, 606) and self._retry_with_other_law(call, response, now, out):
            return
        consequence = "the call ends" if call.a_answered else "the caller gets 500"
        warning = _session_timer_warning(call, b, response, consequence)
        if warning is not None:
            out.append(warning)
        if call.a_answered:
            out.append(LogEvent(level="info", text=f"callee failed with {status}", call_ref=call.ref))
            self._send_bye(call, MediaLeg.A, now, out)
            self._end_call(
                call, now, "busy" if status in (486, 600) else f"failed-{status}", out, status=status
            )
            return
        mapped = _status_for_caller(status)
        reason = response.reason if mapped == status else None
        response_to_a = make_response(
            call.a_invite,
            mapped,
            reason,
            to_tag=call.a.local_tag,
            extra_headers=(("Server", self._settings.user_agent),),
        )
        for name, value in response.headers:
            if mapped == status and name.lower() in ("retry-after", "warning", "reason"):
                response_to_a.headers.add(name, value)
        self._respond(call.a_invite_transaction, response_to_a, now, out)
        self._end_call(call, now, "busy" if status in (486, 600) else f"failed-{status}", out, status=status)

    def _on_response_while_cancelling(
        self, call: Call, response: Response, now: float, out: list[Effect]
    ) -> None:
        status = response.status
        if status < 200:
            call.b_provisional_seen = True
            if call.cancel_pending:
                self._cancel_b(call, now, out)
            return
        if 200 <= status < 300:
            # The callee answered although we cancelled (§9.1 race): ACK and BYE it.
            self._learn_remote(call.b, response, early=False)
            call.b.confirmed = True
            ack = self._ack_for(call.b, response.cseq.seq)
            out.append(SendSip(message=ack, destination=self._dialog_destination(call.b), side=call.b.side))
            self._send_bye(call, MediaLeg.B, now, out)
        call.phase = CallPhase.ENDED
        self._forget_b(call)

    @staticmethod
    def _unsolicited_reliable(call: Call, dialog: Dialog, response: Response, out: list[Effect]) -> None:
        """Warn, once per call, of a provisional response sent reliably (``Require: 100rel``)
        although callherald's INVITE did not offer 100rel: RFC 3262 §3 forbids it. callherald does
        not PRACK it, so the party resends it and may give up on the INVITE after 64*T1 (§3)."""
        if call.unsolicited_100rel_warned or "100rel" not in response.option_tags("require"):
            return
        call.unsolicited_100rel_warned = True
        out.append(
            LogEvent(
                level="warning",
                text=f"the {dialog.side} side sent its {response.status} to the {response.cseq.method}"
                " reliably (Require: 100rel) although callherald did not offer 100rel (RFC 3262 §3):"
                " it gets no PRACK, and may resend it and give up on the request",
                call_ref=call.ref,
            )
        )

    def _learn_remote(self, dialog: Dialog, response: Response, *, early: bool) -> None:
        """Dialog state from a response to our INVITE (§12.1.2): remote tag, target, route set."""
        if response.to.tag:
            dialog.remote_tag = response.to.tag
        contacts = response.contacts
        if contacts:
            dialog.remote_target = contacts[0].uri
        dialog.route_set = list(reversed(response.headers.get_all("record-route")))
        if not early:
            dialog.confirmed = True

    @staticmethod
    def _keep_early_answer(call: Call, response: Response) -> None:
        """Remember the answer a provisional response of b brought, for its early dialog (an
        INVITE without an offer gets its offer in the 2xx, RFC 3261 §13.2.1: nothing to keep)."""
        sdp = _sdp_of(response)
        if sdp is not None and response.to.tag and call.b_invite_had_offer:
            call.b_early_answers[response.to.tag] = sdp

    def _callee_answer(self, call: Call, response: Response, out: list[Effect]) -> SessionDescription | None:
        """The SDP answer of b's response, in the formats of callherald's offer (``_within_offer``).
        A 2xx without one takes the last answer its early dialog (by To tag) brought in a
        provisional response, as that dialog is the one the 2xx confirms (RFC 3261 §13.2.2.4):
        §13.2.1 wants the answer in the 2xx, the 183 repeating it ahead, but carrier SBCs often
        send it in the 183 alone. To an INVITE without SDP, the 2xx's SDP is the offer."""
        sdp = _sdp_of(response)
        if sdp is None and response.status >= 200 and response.to.tag:
            sdp = call.b_early_answers.get(response.to.tag)
        if sdp is None:
            return None
        return _within_offer(call, MediaLeg.B, sdp, _sdp_of(call.b_invite), out, self._settings.codecs)

    def _answer_sdp_for_a(self, call: Call, sdp: SessionDescription | None, out: list[Effect]) -> bytes:
        """Re-anchor b's SDP (``_callee_answer``) for the a side and point the b leg's relay at b's media."""
        if sdp is None:
            return b""
        out.append(set_media_remote(call.ref, MediaLeg.B, sdp))
        if call.a_answered or call.a_early_media:
            # a already has callherald's own answer (the notice): nothing more is sent to a, so its
            # SDP version and last SDP stay those a heard (RFC 3264 §8).
            return b""
        previous = call.a.last_sdp
        anchored = anchor_sdp(
            sdp, dialog=call.a, media_address=self._settings.media_address, codecs=self._settings.codecs
        )
        if anchored is None:
            return b""
        if previous is None:
            return bytes(anchored)
        # The 2xx repeating a 183's answer keeps its version (RFC 3264 §8: nothing changed).
        return self._new_version_if_changed(call.a, anchored, bytes(previous))

    def _relayed_to_a(self, call: Call, response: Response, body: bytes, *, final: bool) -> Response:
        """b's response to the INVITE as a's response: our tag, Contact and SDP (§12.1.1)."""
        headers: list[tuple[str, str]] = [("Contact", call.a.local_contact)]
        if final:
            headers.append(("Allow", ALLOWED_METHODS))
        headers.append(("Server", self._settings.user_agent))
        if body:
            headers.append(("Content-Type", "application/sdp"))
        return make_response(
            call.a_invite,
            response.status,
            response.reason,
            to_tag=call.a.local_tag,
            extra_headers=headers,
            body=body,
        )

    def _relay_provisional(
        self,
        call: Call,
        response: Response,
        early: SessionDescription | None,
        now: float,
        out: list[Effect],
    ) -> None:
        """Pass b's provisional response to a, with ``early``, its answer (``_callee_answer``), if any."""
        if call.a_answered or call.a_early_media:
            # The caller hears our ringback (or has been answered); the PBX's early media stays out.
            if call.cancel_pending:
                self._cancel_b(call, now, out)
            return
        body = self._answer_sdp_for_a(call, early, out)
        provisional = self._relayed_to_a(call, response, body, final=False)
        self._respond(call.a_invite_transaction, provisional, now, out)
        if call.cancel_pending:
            self._cancel_b(call, now, out)

    def _on_b_answered(self, call: Call, response: Response, now: float, out: list[Effect]) -> None:
        b = call.b
        if call.phase in (CallPhase.ANSWERED, CallPhase.CONFIRMED):
            self._resend_ack(call, MediaLeg.B, response, out)
            return
        self._disarm(f"{call.ref}:ring")
        self._learn_remote(b, response, early=False)
        if b.remote_tag:
            self._dialogs_by_remote_tag[(b.call_id, b.remote_tag)] = (call, MediaLeg.B)
        sdp = self._callee_answer(call, response, out)  # the 183's, when the 2xx has none
        if sdp is not None and not has_allowed_audio(sdp, self._settings.codecs):
            self._callee_sdp_unusable(
                call, response, now, out, offer=None if call.b_invite_had_offer else sdp
            )
            return
        body = self._answer_sdp_for_a(call, sdp, out)
        if call.b_invite_had_offer or not body:
            self._send_ack(call, MediaLeg.B, response.cseq.seq, out)
        else:  # late offer: the answer comes in a's ACK
            call.deferred_ack = DeferredAck(
                leg=MediaLeg.B, seq=response.cseq.seq, offer=SessionDescription.parse(body)
            )
        offer = _sdp_of(call.b_invite)  # None: the INVITE had none, and this 2xx is the offer
        if sdp is not None and _holds(sdp, offer):
            # On hold from its first answer (or its offer, to an INVITE without one): as if a
            # re-INVITE held the call at once.
            self._hold_changed(call, MediaLeg.B, True, now, out)
        self._bridge(call, response, sdp, body, now, out)
        self._pbx_follows_the_caller(call, now, out)

    def _callee_sdp_unusable(
        self,
        call: Call,
        response: Response,
        now: float,
        out: list[Effect],
        *,
        offer: SessionDescription | None,
    ) -> None:
        """b answered callherald's offer with no codec allowed here, or none of that offer's
        (``_within_offer``), or, to an INVITE without SDP, made ``offer`` in its 2xx with none
        allowed here: the call has no media, and the caller may not be sent a 2xx without SDP
        (RFC 3261 §13.2.1). b's 2xx is ACKed, an offer in it answered with every stream rejected
        as that ACK must carry the answer (RFC 3264 §6), and b's dialog ended with BYE, as a UAC
        that cannot accept the session does (§13.2.2.4, §15). An answer in a provisional response
        is the one the 2xx must bring again (§13.2.1): b is cancelled then (§9.1; a 2xx that
        crosses the CANCEL is ACKed and hung up). The caller gets 488 with a Warning (§20.43), or
        a BYE when callherald already answered it itself (the notice)."""
        allowed = ", ".join(sorted(self._settings.codecs - {"telephone-event"}))
        if offer is not None:
            reason = (
                "the callee's offer in its 2xx to an INVITE without SDP has no audio codec allowed"
                f" here ({allowed})"
            )
        elif response.status < 200:
            reason = (
                f"the callee's answer in its {response.status} has no audio codec of the offer that is"
                f" allowed here ({allowed})"
            )
        else:
            reason = f"the callee's answer has no audio codec of the offer that is allowed here ({allowed})"
        out.append(LogEvent(level="warning", text=f"call failed: {reason}", call_ref=call.ref))
        announcer = call.announcer
        if announcer is not None and announcer.stage is AnnouncerStage.IDLE:
            out.extend(announcer.fail_now(reason, now, consequence="call failed"))
            call.announce_progressed = True
        if response.status < 200:
            self._cancel_b(call, now, out)
        else:
            body = b""
            if offer is not None:
                address = self._settings.media_address
                body = bytes(rejecting_answer(offer, dialog=call.b, media_address=address))
            self._send_ack(call, MediaLeg.B, response.cseq.seq, out, body)
            self._send_bye(call, MediaLeg.B, now, out)
        if call.a_answered:
            self._send_bye(call, MediaLeg.A, now, out)
        else:
            self._reply(
                call.a_invite_transaction,
                call.a_invite,
                488,
                out,
                now,
                to_tag=call.a.local_tag,
                extra=(_NO_ALLOWED_CODEC,),
            )
        reason_code = "no-codec-in-answer" if offer is None else "no-codec-in-offer"
        self._end_call(call, now, reason_code, out, status=488)

    def _pbx_follows_the_caller(self, call: Call, now: float, out: list[Effect]) -> None:
        """Inbound: the caller held the call, or came off hold, in a re-INVITE or UPDATE that
        callherald answered itself while the PBX rang. Now that the PBX answered, a re-INVITE
        offers it the caller's direction (RFC 3264 §8.4) if its INVITE offered another: a PBX
        that answered a held caller recvonly would otherwise send nothing all call long."""
        direction, call.caller_direction = call.caller_direction, None
        offered = call.b.last_sdp
        if direction is None or offered is None or direction == _audio_direction(offered):
            return
        reoffer = _Reoffer(
            sdp=_with_audio_direction(offered, direction),
            doing=f"offering leg b the caller's direction ({direction}) now that it answered",
            refused="leg b refused the caller's direction",
        )
        self._reoffer(call, MediaLeg.B, reoffer, now, out)

    def _bridge(
        self,
        call: Call,
        response: Response,
        sdp: SessionDescription | None,
        body: bytes,
        now: float,
        out: list[Effect],
    ) -> None:
        """The callee answered: answer the caller, or, when the caller already heard the notice, join them.

        Outbound, the notice plays to both now, before they hear each other. ``sdp`` is the
        callee's (``_callee_answer``), ``body`` the SDP for the caller (``_answer_sdp_for_a``).
        """
        announcer = call.announcer
        if call.a_answered or call.a_early_media:
            if not call.a_answered:
                final = self._own_answer_to_a(call, 200)  # the 183's answer again (RFC 3261 §13.2.1)
                call.a_answered = True
                call.a.confirmed = True
                self._respond(call.a_invite_transaction, final, now, out)
                self._retransmit_2xx(call, MediaLeg.A, final, call.a_invite.cseq.seq, now)
            call.phase = CallPhase.ANSWERED if MediaLeg.A in call.unacked_2xx else CallPhase.CONFIRMED
            out.append(StopPlayout(call_ref=call.ref, leg=MediaLeg.A))
            if announcer is not None:  # the agent's beep in the packet duration its answer asks for
                out.extend(announcer.bridge(now, agent_packet_ms=packet_ms(sdp) if sdp is not None else None))
            return
        answer = self._relayed_to_a(call, response, body, final=True)
        call.phase = CallPhase.ANSWERED
        call.a.confirmed = True
        self._respond(call.a_invite_transaction, answer, now, out)
        self._retransmit_2xx(call, MediaLeg.A, answer, call.a_invite.cseq.seq, now)
        if announcer is not None and announcer.stage is AnnouncerStage.IDLE:
            if call.deferred_ack is not None:
                # Late offer: the codec is known from a's ACK; the callee is who sent this 2xx, not
                # the agent whose answer rides in that ACK.
                call.outside_identity = _identity(response, sdp)
                call.announce_after_ack = True
            else:
                self._start_outbound_notice(call, sdp, now, out, identity=_identity(response, sdp))

    def _retransmit_2xx(self, call: Call, leg: MediaLeg, response: Response, seq: int, now: float) -> None:
        """Resend a 2xx to an INVITE until its ACK arrives (§13.3.1.4): T1 doubling to T2, up to 64*T1."""
        call.unacked_2xx[leg] = (response, seq)
        t1_s = self._timer_config.t1_s
        resend = _Resend2xx(
            call=call, leg=leg, dialog=call.dialog(leg), response=response, give_up=now + 64 * t1_s
        )
        self._arm(resend.key, now + t1_s, partial(self._resend_2xx, resend, t1_s))

    def _resend_2xx(self, resend: _Resend2xx, interval: float, at: float, out: list[Effect]) -> None:
        # A timer action, a method and not a closure that arms itself: such a closure is a reference
        # cycle, and would keep the ended call for the garbage collector to find.
        call, leg = resend.call, resend.leg
        if call.unacked_2xx.get(leg) is None or call.ref not in self._calls:
            return
        if at >= resend.give_up:
            out.append(LogEvent(level="warning", text=f"no ACK for 2xx on leg {leg}", call_ref=call.ref))
            self._hang_up(call, "no-ack", at, out)
            return
        dialog = resend.dialog
        out.append(SendSip(message=resend.response, destination=dialog.peer, side=dialog.side))
        next_interval = min(interval * 2, self._timer_config.t2_s)
        deadline = min(at + next_interval, resend.give_up)
        self._arm(resend.key, deadline, partial(self._resend_2xx, resend, next_interval))

    def _carrier_credentials(self, request: Request, response: Response, attempts: int) -> str | None:
        """Digest credentials answering the carrier's 401/407 to ``request`` (RFC 3261 §22.2):
        once, and once more only for a stale nonce; None when there is nothing to answer with."""
        carrier = self._settings.carrier
        if not carrier.username or carrier.password is None or attempts >= 2:
            return None
        challenges: list[Challenge] = []
        for value in response.headers.fields(challenge_header_for(response.status)):
            try:
                parsed = Challenge.parse(value)
            except SipError:
                continue
            if carrier.realm is None or parsed.realm == carrier.realm:  # never answer another realm
                challenges.append(parsed)
        challenge = choose_challenge(challenges)
        if challenge is None or (attempts >= 1 and challenge.stale is not True):
            return None
        credentials = build_credentials(
            challenge,
            method=request.method,
            uri=str(request.uri),
            username=carrier.auth_username or carrier.username,
            password=carrier.password,
            cnonce=self._token(),
        )
        return str(credentials)

    def _answer_challenge(
        self,
        call: Call,
        transaction_id: TransactionId,
        context: _ClientContext,
        response: Response,
        now: float,
        out: list[Effect],
    ) -> bool:
        """Send a request the carrier challenged again with credentials, as a new transaction with
        the next CSeq of its dialog (RFC 3261 §22.2, §8.1.3.5); True when it was sent. Carriers
        and their proxies may challenge a BYE or re-INVITE as well as the first INVITE."""
        request, route = context.request, self._routes.get(transaction_id)
        if request is None or route is None:
            return False
        destination, side = route
        credentials = None
        if side is Side.CARRIER:
            credentials = self._carrier_credentials(request, response, context.auth_attempts)
        if credentials is None:
            out.append(
                LogEvent(
                    level="warning",
                    text=f"the {side.value} side refused our {request.method} with {response.status}"
                    " and callherald has no credentials to answer it with",
                    call_ref=call.ref,
                )
            )
            return False
        retry = request.copy()
        dialog = _dialog_of(call, request)
        seq = dialog.next_seq() if dialog is not None else request.cseq.seq + 1
        retry.headers.set("Via", self._via(side))
        retry.headers.set("CSeq", f"{seq} {request.method}")
        retry.headers.set(auth_header_for(response.status), credentials)
        context.auth_attempts += 1
        if context.transfer is not None and context.kind == "transfer":
            context.transfer.invite = retry  # its CANCEL goes with the INVITE sent last (§9.1)
        retried = self._send_request(retry, destination, side, context, now, out)
        relay = call.pending_relays.pop(transaction_id, None)
        if relay is not None:
            relay.far_provisional = False  # the retry is a new transaction (§9.1)
            call.pending_relays[retried] = relay
        return True

    def _retry_with_other_law(self, call: Call, response: Response, now: float, out: list[Effect]) -> bool:
        """Offer the callee the other G.711 law too (``offer_with_other_law``) when it refused an
        INVITE offering one law alone as not acceptable (488, 606: RFC 3261 §21.4.26, §21.6.4),
        in a new INVITE of the same dialog, once: a PBX or carrier that has only the other law
        answers it, and callherald translates between the two for the rest of the call."""
        offer = _sdp_of(call.b_invite)
        if call.b_offer_added_law is not None or offer is None:
            return False
        extended, added = offer_with_other_law(offer, self._settings.codecs)
        if added is None:
            return False
        settings = self._settings
        anchored = anchor_sdp(
            extended, dialog=call.b, media_address=settings.media_address, codecs=settings.codecs
        )
        assert anchored is not None  # the offer's own codecs, and the added law, are allowed
        call.b_offer_added_law = added
        law = "PCMU" if added == "0" else "PCMA"
        out.append(
            LogEvent(
                level="info",
                text=f"leg b refused an offer of one G.711 law alone ({response.status}): offering it"
                f" {law} too, which callherald translates to the other party's law",
                call_ref=call.ref,
            )
        )
        retry = self._next_b_invite(call)
        retry.body = bytes(anchored)
        call.b_early_answers.clear()  # the refused INVITE's early dialogs ended with it (§13.2.2.4)
        self._send_b_invite(call, retry, now, out)
        return True

    def _next_b_invite(self, call: Call) -> Request:
        """A new INVITE of the b dialog after a refusal of the last one (a new transaction)."""
        retry = call.b_invite.copy()
        retry.headers.set("Via", self._via(call.b.side))
        retry.headers.set("CSeq", f"{call.b.next_seq()} INVITE")
        return retry

    def _send_b_invite(self, call: Call, invite: Request, now: float, out: list[Effect]) -> None:
        call.b_invite = invite
        self._send_request(
            invite,
            call.b.peer,
            call.b.side,
            _ClientContext(kind="invite", call=call, leg=MediaLeg.B),
            now,
            out,
        )

    def _retry_with_credentials(self, call: Call, response: Response, now: float, out: list[Effect]) -> bool:
        """Answer a 401/407 from the carrier to the first INVITE with digest credentials (RFC 3261
        §22.2)."""
        if call.b.side is not Side.CARRIER:
            return False
        credentials = self._carrier_credentials(call.b_invite, response, call.auth_attempts)
        if credentials is None:
            # Every call fails this way until an admin acts: say what to look at.
            carrier = self._settings.carrier
            if call.auth_attempts:
                why = "rejected callherald's credentials: check carrier.credentials (user, password, realm)"
            elif not carrier.username or carrier.password is None:
                why = "asks for credentials and carrier.credentials has none"
            else:
                why = "asks for credentials of a realm carrier.credentials.realm does not name"
            out.append(
                LogEvent(
                    level="warning",
                    text=f"the carrier refused the call's INVITE with {response.status}: it {why}",
                    call_ref=call.ref,
                )
            )
            return False
        call.auth_attempts += 1
        retry = self._next_b_invite(call)
        retry.headers.set(auth_header_for(response.status), credentials)
        self._send_b_invite(call, retry, now, out)
        return True

    def _log_registration(self, status: int, now: float, out: list[Effect]) -> None:
        registration = self.registration
        assert registration is not None
        if registration.state is RegistrationState.REGISTERED:
            lifetime_s = round((registration.registered_until or now) - now)
            out.append(LogEvent(level="info", text=f"registered with the carrier for {lifetime_s} s"))
        elif registration.state is RegistrationState.UNREGISTERED:
            out.append(LogEvent(level="info", text="unregistered from the carrier"))
        else:
            out.append(
                LogEvent(
                    level="warning", text=f"registration with the carrier failed ({status}); retrying later"
                )
            )

    def _on_relay_response(
        self, call: Call, transaction_id: TransactionId, response: Response, now: float, out: list[Effect]
    ) -> None:
        relay = call.pending_relays.get(transaction_id)
        if relay is None:
            if 200 <= response.status < 300 and response.cseq.method == "INVITE":
                self._resend_ack(call, self._leg_of_response(call, response), response, out)
            return
        if response.status < 200:
            self._unsolicited_reliable(call, call.dialog(relay.origin_leg.other), response, out)
            if relay.cancelled and not relay.far_provisional:
                self._send_relay_cancel(call, transaction_id, now, out)  # now it may be (§9.1)
            relay.far_provisional = True
            return
        del call.pending_relays[transaction_id]
        if relay.ended:  # its sender had 487 when the call ended (``_terminate_pending_relays``)
            if 200 <= response.status < 300:
                self._send_ack(call, relay.origin_leg.other, response.cseq.seq, out)  # §13.2.2.4
            return
        if relay.cancelled:
            self._cancelled_relay_answered(call, relay, response, now, out)
            return
        origin = call.dialog(relay.origin_leg)
        far_leg = relay.origin_leg.other
        success = 200 <= response.status < 300
        # To a re-INVITE without SDP the 2xx is the far party's offer (RFC 3261 §14.1).
        offer_in_2xx = relay.request.method == "INVITE" and not relay.offer_from_origin
        body = b""
        anchored: SessionDescription | None = None
        sdp: SessionDescription | None = None
        content_type = response.headers.get("content-type") or ""
        try:
            found = sdp_body(response)
        except SipError:
            found = None  # a part callherald does not understand: the body is passed on as it is
        if found is not None:
            try:
                sdp = SessionDescription.parse(found)
            except SipError:
                sdp = None
            if sdp is not None:
                sdp = _within_offer(call, far_leg, sdp, relay.relayed_offer, out, self._settings.codecs)
                if success and offer_in_2xx and not carries_plain_rtp(sdp) and self._plain_rtp_only(call):
                    # Refused as the same offer in a re-INVITE is (``_relay_in_dialog``): the
                    # notice, the relay and the recorder work in plain RTP.
                    self._relayed_sdp_unusable(call, relay, response, now, out, offer=sdp, plain_rtp=False)
                    return
                # A 2xx offer keeps to the codecs a re-INVITE's own offer may (the prompt's, while
                # one plays: ``_offer_codecs``).
                allowed = self._offer_codecs(call, relay.new_party) if offer_in_2xx else self._settings.codecs
                if (
                    success
                    and (relay.relayed_offer is not None or offer_in_2xx)
                    and not has_allowed_audio(sdp, allowed)
                ):
                    self._relayed_sdp_unusable(
                        call, relay, response, now, out, offer=sdp if offer_in_2xx else None
                    )
                    return
                if success:  # an SDP in a refusal answers nothing (RFC 3261 §13.2.1)
                    self._apply_later_sdp(call, far_leg, sdp, out)
                offer = _sdp_of(relay.request) if relay.offer_from_origin else None
                # The answerer's own hold or its end, as the first answer may hold the call
                # (``_holds``); an answer to a held offer only follows that hold. To a re-INVITE
                # without SDP the 2xx is the far party's offer (RFC 3261 §14.1), which holds the
                # call or ends a hold as an offer in a re-INVITE does.
                own_hold = relay.request.method == "INVITE" if offer is None else not offer.is_hold()
                if success and own_hold:
                    self._hold_changed(call, far_leg, sdp.is_hold(), now, out)
                previous = origin.last_sdp
                anchored = anchor_sdp(
                    sdp, dialog=origin, media_address=self._settings.media_address, codecs=allowed
                )
                if anchored is not None and offer_in_2xx:
                    anchored = self._with_added_law(call, origin, anchored)
                if anchored is not None and relay.law_swapped is not None and not offer_in_2xx:
                    anchored = call_answer_in_party_law(anchored, relay.law_swapped)
                if anchored is not None and previous is not None:
                    self._new_version_if_changed(origin, anchored, bytes(previous))
                body = bytes(anchored) if anchored is not None else b""
                content_type = "application/sdp"
        elif response.body:
            body = response.body
        elif success and offer_in_2xx:
            self._no_offer_in_2xx(call, relay, response, now, out)
            return
        origin_offer = _sdp_of(relay.request) if success and relay.offer_from_origin else None
        if origin_offer is not None and relay.law_swapped is not None:
            origin_offer = party_offer_in_call_law(origin_offer, relay.law_swapped)  # as translated
        if origin_offer is not None and relay.law_swapped is None and relay.origin_leg in call.translations:
            # A translated party's offer that kept the call's law went out as it was: both parties
            # now send what its answer says, so its audio needs no translation any more.
            leg = relay.origin_leg
            as_it_is = f"leg {leg}'s offer was answered as it was: its audio is relayed as it is again"
            _translate_audio(call, leg, None, out, text=as_it_is)
        if origin_offer is not None:
            # Answered: the relay sends to the offer's address now (RFC 3264 §8), and a hold the
            # offer ends is over (a hold it makes paused the recording as it came).
            self._apply_later_sdp(
                call, relay.origin_leg, origin_offer, out, new_party=relay.new_party is not None
            )
            self._hold_changed(call, relay.origin_leg, origin_offer.is_hold(), now, out)
        if not success:
            self._offer_refused(call, relay, now, out)
        is_invite = relay.request.method == "INVITE"
        if is_invite and success:
            if relay.offer_from_origin or not body:
                self._send_ack(call, far_leg, response.cseq.seq, out)
            else:
                call.deferred_ack = DeferredAck(leg=far_leg, seq=response.cseq.seq, offer=anchored)
        consequence = f"leg {relay.origin_leg} gets 500, the session goes on as it was"
        warning = _session_timer_warning(call, call.dialog(far_leg), response, consequence)
        if warning is not None:
            out.append(warning)
        extra: list[tuple[str, str]] = [("Server", self._settings.user_agent)]
        if is_invite or relay.request.method == "UPDATE":
            extra.append(("Contact", origin.local_contact))
        if body:
            extra.append(("Content-Type", content_type))
        status = _status_for_caller(response.status) if response.status >= 300 else response.status
        reply = make_response(
            relay.request,
            status,
            response.reason if status == response.status else None,
            to_tag=relay.request.to.tag,
            extra_headers=extra,
            body=body,
        )
        self._respond(relay.server_transaction, reply, now, out)
        if is_invite and success:
            self._retransmit_2xx(call, relay.origin_leg, reply, relay.request.cseq.seq, now)
        if success and relay.new_party is not None and call.announcer is not None:
            self._notice_for_new_party(call, relay, sdp, now, out)
        if response.status in (408, 481) and is_invite:
            self._hang_up(call, f"reinvite-{response.status}", now, out)  # §14.1: the dialog is gone

    def _relayed_sdp_unusable(
        self,
        call: Call,
        relay: PendingRelay,
        response: Response,
        now: float,
        out: list[Effect],
        *,
        offer: SessionDescription | None,
        plain_rtp: bool = True,
    ) -> None:
        """The far party answered a relayed offer with no codec allowed here, or none of that
        offer's, or, to a re-INVITE without SDP, made ``offer`` in its 2xx with none allowed here,
        or (``plain_rtp`` False) in another transport than plain RTP where the call must keep to
        it (``_plain_rtp_only``):
        the re-INVITE or UPDATE gets 488 with a Warning (§20.43) and its sender keeps the session
        it had (RFC 3261 §14.2). The far party's 2xx is ACKed, an offer in it answered with every
        stream rejected, as that ACK must carry the answer (§13.2.1, RFC 3264 §6), and the far
        party, which took the new session or has none now, is offered the one before again."""
        origin_leg, far_leg = relay.origin_leg, relay.origin_leg.other
        method = relay.request.method
        self._offer_refused(call, relay, now, out)
        if method == "INVITE":
            body = b""
            if offer is not None:
                dialog = call.dialog(far_leg)
                body = bytes(
                    rejecting_answer(offer, dialog=dialog, media_address=self._settings.media_address)
                )
            self._send_ack(call, far_leg, response.cseq.seq, out, body)
        if plain_rtp:
            self._refuse_codecs(relay.server_transaction, relay.request, now, out)
        else:
            self._reply(
                relay.server_transaction,
                relay.request,
                488,
                out,
                now,
                to_tag=relay.request.to.tag,
                extra=(_NOT_PLAIN_RTP,),
            )
        if offer is None:
            what = (
                f"leg {far_leg} answered the {method} of leg {origin_leg} with no audio codec of the offer"
                " that is allowed here"
            )
        else:
            offered = "no audio codec that is allowed here" if plain_rtp else "no plain RTP audio"
            what = (
                f"leg {far_leg} offered, in its 2xx to the {method} of leg {origin_leg} without SDP,"
                f" {offered}"
            )
        out.append(
            LogEvent(
                level="warning",
                text=f"{what}: 488 to leg {origin_leg}, the session goes on as it was",
                call_ref=call.ref,
            )
        )
        self._offer_previous_session(call, relay, now, out)

    def _no_offer_in_2xx(
        self, call: Call, relay: PendingRelay, response: Response, now: float, out: list[Effect]
    ) -> None:
        """The far party's 2xx to a re-INVITE without SDP has no offer, which it must have (RFC 3261
        §14.2): it is ACKed without SDP (there is nothing to answer), and the re-INVITE's sender,
        which may not get a 2xx without SDP either, is offered the session it last had from
        callherald, unchanged (its version too: RFC 3264 §8), so the call goes on as it was. Its
        answer comes in its ACK (``DeferredAck.acked``), and a hold or its end in that answer is
        offered to the far party (``_far_party_follows_the_ack``); without such a session it gets
        500."""
        origin_leg, far_leg = relay.origin_leg, relay.origin_leg.other
        origin = call.dialog(origin_leg)
        self._send_ack(call, far_leg, response.cseq.seq, out)
        session = origin.last_sdp
        fault = f"leg {far_leg} sent no offer in its 2xx to the INVITE of leg {origin_leg} without SDP"
        if session is None:
            consequence = f"500 to leg {origin_leg}, which has no session from callherald to be offered"
        else:
            consequence = f"leg {origin_leg} is offered its session as it was"
        out.append(
            LogEvent(level="warning", text=f"{fault} (RFC 3261 §14.2): {consequence}", call_ref=call.ref)
        )
        if session is None:
            self._reply(relay.server_transaction, relay.request, 500, out, now, to_tag=relay.request.to.tag)
            return
        reply = make_response(
            relay.request,
            response.status,
            response.reason,
            to_tag=relay.request.to.tag,
            extra_headers=[
                ("Server", self._settings.user_agent),
                ("Contact", origin.local_contact),
                ("Content-Type", "application/sdp"),
            ],
            body=bytes(session),
        )
        call.deferred_ack = DeferredAck(leg=far_leg, seq=response.cseq.seq, offer=session, acked=True)
        self._respond(relay.server_transaction, reply, now, out)
        self._retransmit_2xx(call, origin_leg, reply, relay.request.cseq.seq, now)
        if relay.new_party is not None and call.announcer is not None:
            self._notice_for_new_party(call, relay, session, now, out)

    def _on_stray_response(self, response: Response, out: list[Effect]) -> None:
        """A 2xx retransmission after our INVITE transaction ended: our ACK was lost (§13.2.2.4).
        A 2xx to an INVITE given up after Timer B is ACKed and hung up at once (§13.2.2.4)."""
        if not 200 <= response.status < 300 or response.cseq.method != "INVITE":
            return
        key = (response.call_id, response.from_.tag or "")
        found = self._dialogs.get(key)
        if found is not None:
            self._resend_ack(found[0], found[1], response, out)
            return
        abandoned = self._abandoned.pop(key, None)
        if abandoned is not None:
            out.append(
                LogEvent(
                    level="info",
                    text="the callee answered the INVITE given up after Timer B: hung up",
                    call_ref=abandoned.ref,
                )
            )
            self._end_fork(abandoned, MediaLeg.B, response, out)

    def _forget_abandoned(self, key: tuple[str, str], _now: float, _out: list[Effect]) -> None:
        self._abandoned.pop(key, None)

    @staticmethod
    def _leg_of_response(call: Call, response: Response) -> MediaLeg:
        return MediaLeg.A if response.call_id == call.a.call_id else MediaLeg.B

    def _on_timeout(self, transaction_id: TransactionId, now: float, out: list[Effect]) -> None:
        context = self._clients.get(transaction_id)
        if context is None:
            return
        if context.kind == "register":
            if self.registration is not None:
                self.registration.on_timeout(now)
                out.append(
                    LogEvent(level="warning", text="registration with the carrier timed out; retrying later")
                )
            return
        call = context.call
        if call is None:
            return
        if context.kind == "invite" and call.phase is CallPhase.CANCELLING:
            call.phase = CallPhase.ENDED  # the cancelled INVITE never got a final response
            self._forget_b(call)
        elif context.kind == "invite" and call.phase in (CallPhase.CALLING, CallPhase.EARLY):
            waited = self._timer_config.duration_s(Timer.B, reliable=False)
            side = call.b.side.value  # the INVITE given up is the b leg's
            out.append(
                LogEvent(
                    level="warning",
                    text=f"no response to the INVITE within {waited:g} s (Timer B): the {side} side is"
                    " unreachable",
                    call_ref=call.ref,
                )
            )
            if call.a_answered:
                self._send_bye(call, MediaLeg.A, now, out)
            else:
                self._reply(call.a_invite_transaction, call.a_invite, 408, out, now, to_tag=call.a.local_tag)
            self._end_call(call, now, "timeout", out, status=408)
            # The callee may still answer: a 2xx sent now is retransmitted for 64*T1 (§13.3.1.4).
            key = (call.b.call_id, call.b.local_tag)
            self._abandoned[key] = call
            late_2xx_s = 64 * self._timer_config.t1_s
            self._arm(f"{call.ref}:abandoned", now + late_2xx_s, partial(self._forget_abandoned, key))
        elif context.kind == "transfer" and call.transfer is context.transfer and call.transfer is not None:
            self._transfer_failed(call, 408, "Request Timeout", now, out)
        elif context.kind == "notify":
            self._notify_done(call, context.transfer, now, out)
            if context.bye_after is not None:
                self._leave(call, context.bye_after, now, out)  # the final NOTIFY went unanswered
        elif context.kind == "bye" and transaction_id in self._routes:
            side = self._routes[transaction_id][1]
            out.append(
                LogEvent(
                    level="warning",
                    text=f"the {side.value} side never answered callherald's BYE (Timer F):"
                    " it may not know the call ended",
                    call_ref=call.ref,
                )
            )
        elif context.kind == "reoffer" and context.leg in call.reoffers_pending:
            call.reoffers_pending.remove(context.leg)
        elif context.kind == "relay":
            relay = call.pending_relays.pop(transaction_id, None)
            if relay is not None and not relay.cancelled and not relay.ended:  # they had 487 already
                self._offer_refused(call, relay, now, out)
                self._reply(
                    relay.server_transaction, relay.request, 408, out, now, to_tag=relay.request.to.tag
                )
                if relay.request.method == "INVITE":
                    self._hang_up(call, "reinvite-timeout", now, out)


def _summary(call: Call) -> CallSummary:
    announcer = call.announcer
    # Read from the announcer's own set: it has no public view of it (yet); nothing is changed.
    paused = announcer.paused_reasons if announcer is not None else ()
    pending = announcer is not None and (
        announcer.stage in (AnnouncerStage.IDLE, AnnouncerStage.ANNOUNCING)
        or (announcer.stage is AnnouncerStage.DECIDED and bool(announcer.purposes))
    )
    return CallSummary(call_ref=call.ref, direction=call.direction, paused=paused, recording_pending=pending)


def _user_of(uri: Uri) -> str | None:
    if isinstance(uri, SipUri):
        return uri.user_unescaped
    if isinstance(uri, TelUri):
        return uri.digits
    return None


def _dialled_user(request: Request) -> str:
    """The number being called: the Request-URI's user part, else the To URI's."""
    return _user_of(request.uri) or _user_of(request.to.uri) or "unknown"


_CHALLENGED_KINDS: Final = frozenset({"relay", "bye", "notify", "reoffer", "transfer"})
"""What callherald sends, besides a call's first INVITE (``_retry_with_credentials``), that answers
a carrier's challenge (``_answer_challenge``): requests in a call and a transfer's INVITE."""


def _dialog_of(call: Call, request: Request) -> Dialog | None:
    """The dialog of ``call`` that ``request`` was sent in (our Call-ID and tag), if still known."""
    transfer = call.transfer
    dialogs: tuple[Dialog, ...] = (call.a, call.b)
    if transfer is not None:
        dialogs += (transfer.old, transfer.new)
    for dialog in dialogs:
        if dialog.call_id == request.call_id and dialog.local_tag == request.from_.tag:
            return dialog
    return None


_ANSWERED_DIRECTION: Final[Mapping[str, Direction]] = MappingProxyType(
    {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}
)


def _answer_directions(answer: SessionDescription) -> None:
    """Turn an anchored copy of an offer into callherald's own answer to it: each stream's
    direction as the answerer's (an offer's sendonly is answered recvonly, RFC 3264 §6.1)."""
    for media in answer.media:
        if not media.rejected:
            media.direction = _ANSWERED_DIRECTION[answer.effective_direction(media)]
    answer.direction = None


def _audio_direction(sdp: SessionDescription) -> Direction | None:
    """The direction of the first active audio stream as ``anchor_sdp`` passes it on (an RFC 2543
    hold, 0.0.0.0, as sendonly); None when there is none."""
    for media in sdp.media:
        if media.media == "audio" and not media.rejected:
            direction = sdp.effective_direction(media)
            if direction == "sendrecv" and sdp.hold_kind(media) == "zero-address":
                return "sendonly"
            return direction
    return None


def _with_audio_direction(sdp: SessionDescription, direction: Direction) -> SessionDescription:
    """A copy of ``sdp`` whose active audio streams are ``direction`` (RFC 3264 §8.4), for a
    re-offer that changes nothing else (anchoring it again bumps its version, §8)."""
    changed = sdp.copy()
    changed.direction = None
    for media in changed.media:
        if media.media == "audio" and not media.rejected:
            media.direction = direction
    return changed


def _holds(sdp: SessionDescription, offer: SessionDescription | None) -> bool:
    """Whether the party that sent ``sdp`` holds the call (RFC 3264 §8.4): ``sdp`` is an offer
    (``offer`` None) on hold, or an answer on hold to an ``offer`` that was not, as a sendonly
    answer to a sendrecv offer. An answer to a held offer only follows that hold."""
    return sdp.is_hold() and (offer is None or not offer.is_hold())


def _within_offer(
    call: Call,
    leg: MediaLeg,
    answer: SessionDescription,
    offer: SessionDescription | None,
    out: list[Effect],
    codecs: AbstractSet[str],
) -> SessionDescription:
    """``leg``'s ``answer`` to the ``offer`` callherald sent it (None: none, ``answer`` is an
    offer), with one m= line per line of that offer (``answer_with_offers_lines``, RFC 3264 §6),
    in the offer's G.711 law when it answered the other one only (``translated_answer``: its audio
    is translated from now on, until an answer of it keeps the offer's codec) and only the formats
    of that offer (``answer_within_offer``, §6.1); a warning says what was wrong with it. The law
    callherald added to leg b's offers (``offer_with_other_law``) is judged as the other law of
    an offer without it."""
    if offer is None:
        return answer
    answer, fault = answer_with_offers_lines(answer, offer)
    if fault is not None:
        out.append(
            LogEvent(level="warning", text=f"leg {leg}'s answer {fault} (RFC 3264 §6)", call_ref=call.ref)
        )
    answer, offer = _in_offers_law(call, leg, answer, offer, codecs, out)
    kept, dropped = answer_within_offer(answer, offer)
    if dropped:
        out.append(
            LogEvent(
                level="warning",
                text=f"leg {leg} answered with payload types its offer did not have, or with another"
                f" codec on them (RFC 3264 §6.1), dropped: {', '.join(dropped)}",
                call_ref=call.ref,
            )
        )
    return kept


def _in_offers_law(
    call: Call,
    leg: MediaLeg,
    answer: SessionDescription,
    offer: SessionDescription,
    codecs: AbstractSet[str],
    out: list[Effect],
) -> tuple[SessionDescription, SessionDescription]:
    """``leg``'s ``answer`` in the G.711 law of callherald's ``offer`` (``translated_answer``), the
    relay told when the party starts or stops needing translation (``_translate_audio``); the law
    callherald added to leg b's offers (``offer_with_other_law``) is taken out of both first, so
    that an answer choosing it is translated. Returns the answer and the offer it answers."""
    added_law = call.b_offer_added_law if leg is MediaLeg.B else None
    if added_law is not None:
        offer, answer = without_format(offer, added_law), without_format(answer, added_law)
    answer, translation = translated_answer(answer, offer, codecs)
    _translate_audio(call, leg, translation, out, offered=added_law)
    return answer, offer


def _translate_audio(
    call: Call,
    leg: MediaLeg,
    translation: LawTranslation | None,
    out: list[Effect],
    *,
    offered: str | None = None,
    text: str | None = None,
) -> None:
    """Tell the relay when ``leg``'s party starts or stops needing its G.711 law translated;
    ``offered``: the payload type of the law callherald offered it beside the other one; ``text``:
    what the log says when it stops, if not that the party answered in its offer's codec."""
    if call.translations.get(leg) == translation:
        return
    level = "info"
    if translation is None:
        del call.translations[leg]
        text = text or f"leg {leg} answered in its offer's codec: its audio is relayed as it is again"
    elif offered == str(translation.party_payload_type):
        call.translations[leg] = translation
        text = (
            f"leg {leg} answered {translation.party_codec.upper()}, which callherald offered it beside"
            f" {translation.call_codec.upper()}: callherald translates that party's audio between the"
            " two G.711 laws"
        )
    else:
        call.translations[leg] = translation
        level = "warning"
        text = (
            f"leg {leg} answered {translation.party_codec.upper()} to an offer with"
            f" {translation.call_codec.upper()} only (RFC 3264 §6.1 forbids it): callherald"
            " translates that party's audio between the two G.711 laws"
        )
    out.append(LogEvent(level=level, text=text, call_ref=call.ref))
    out.append(TranslateAudio(call_ref=call.ref, leg=leg, translation=translation))


def _sdp_of(message: Message) -> SessionDescription | None:
    """The message's SDP (``sdp_body``), None when it has none or it does not parse."""
    try:
        sdp = sdp_body(message)
        return None if sdp is None else SessionDescription.parse(sdp)
    except SipError:
        return None


def _identity(message: Message | None, sdp: SessionDescription | None) -> PartyIdentity:
    """Who the outside party is, as far as signalling tells: asserted identity and SDP origin.

    A different origin or a different P-Asserted-Identity (RFC 3325) in a re-INVITE means another
    party joined. Of the origin (RFC 8866 §5.2) the username and session id count, not the
    address: the same session may give another one (an RFC 2543 hold writes 0.0.0.0 there, as in
    its connection line, RFC 3264 §8.4). Of the asserted identity the URIs count, not the display
    names (``_same_identity``).
    """
    asserted: list[Uri | str] = []
    if message is not None:
        try:
            values = message.headers.get_all("p-asserted-identity")
        except SipError:  # an unbalanced quote or bracket: the header as written
            values = message.headers.fields("p-asserted-identity")
        for value in values:
            text = value.strip()
            try:
                asserted.append(NameAddress.parse(text).uri)
            except SipError:
                if text:
                    asserted.append(text)
    origin = ""
    if sdp is not None:
        o = sdp.origin
        origin = f"{o.username} {o.sess_id}"
    return PartyIdentity(asserted=tuple(asserted), origin=origin)


def _asserted_uri(message: Message) -> str | None:
    """The URI of a message's P-Asserted-Identity (RFC 3325 §9.1), if it has a readable one."""
    value = message.headers.get("p-asserted-identity")
    if not value:
        return None
    try:
        return str(NameAddress.parse(value.split(",")[0].strip()).uri)
    except SipError:
        return None


def _same_identity(before: Sequence[Uri | str], after: Sequence[Uri | str]) -> bool:
    """Whether two P-Asserted-Identity headers name the same party (RFC 3325 §9.1): a URI of one
    is a URI of the other, SIP and SIPS URIs compared as RFC 3261 §19.1.4 says (but for a
    ``user`` parameter in one only: ``_without_user_param``), and URIs that
    name a telephone number (``_asserted_number``) by that number. A header with a sip and a tel
    URI is thus the same identity as either alone, when they agree."""
    for old in before:
        for new in after:
            if (
                isinstance(old, SipUri)
                and isinstance(new, SipUri)
                and same_sip_uri(_without_user_param(old), _without_user_param(new))
            ):
                return True
            if isinstance(old, str) or isinstance(new, str):
                if old == new:
                    return True
            else:
                number = _asserted_number(old)
                if number is not None and number == _asserted_number(new):
                    return True
    return False


def _without_user_param(uri: SipUri) -> SipUri:
    """``uri`` without its ``user`` parameter: for an identity, ``user=phone`` only says how to
    read the user part, and carriers add and drop it between an INVITE and its refreshes."""
    return replace(uri, params=tuple(p for p in uri.params if p[0].lower() != "user"))


_GLOBAL_NUMBER: Final = re.compile(r"\+[0-9][0-9().-]*")  # RFC 3966 §5.1.4, visual separators


def _asserted_number(uri: Uri) -> str | None:
    """The telephone number a tel URI (RFC 3966), or a SIP URI with ``user=phone`` (RFC 3261
    §19.1.6), names: without visual separators (RFC 3966 §5.1.1), a local number with its
    phone-context (§5.1.5); None for any other URI. A SIP URI whose user part is a global number
    (``+`` and digits) names it without ``user=phone`` too: carriers add and drop the parameter
    between an INVITE and its refreshes."""
    if isinstance(uri, TelUri):
        number, context = uri.number, uri.param("phone-context")
    elif isinstance(uri, SipUri) and _GLOBAL_NUMBER.fullmatch(uri.user_unescaped or ""):
        number, context = uri.user_unescaped or "", None
    elif isinstance(uri, SipUri) and (uri.param("user") or "").lower() == "phone" and uri.user_unescaped:
        number, *user_params = uri.user_unescaped.split(";")
        context = next(
            (
                value
                for name, _, value in (p.partition("=") for p in user_params)
                if name.lower() == "phone-context"
            ),
            None,
        )
    else:
        return None
    digits = "".join(ch for ch in number if ch not in "-.()").lower()
    if digits.startswith("+") or not context:
        return digits
    return f"{digits};{context.lower()}"


def _party_change(before: PartyIdentity | None, after: PartyIdentity) -> str | None:
    """Why ``after`` is another party than ``before``; None when nothing shows it."""
    if before is None:
        return None
    if before.asserted and after.asserted and not _same_identity(before.asserted, after.asserted):
        return "asserted identity changed"
    if before.origin and after.origin and before.origin != after.origin:
        return "SDP origin changed"
    return None


def _info_digit(request: Request) -> str | None:
    """The key in a SIP INFO DTMF body: ``application/dtmf-relay`` (``Signal=5``) or ``application/dtmf``."""
    content_type = request.content_type
    body = request.body.decode("utf-8", "replace")
    value: str | None = None
    if content_type == "application/dtmf-relay":
        for line in body.splitlines():
            name, _, rest = line.partition("=")
            if name.strip().lower() == "signal":
                value = rest.strip()
                break
    elif content_type == "application/dtmf":
        value = body.strip()
    if value is None:
        return None
    if value == "10":
        return "*"
    if value == "11":
        return "#"
    value = value.upper()
    return value if len(value) == 1 and value in "0123456789*#ABCD" else None


def _cancel_for(invite: Request) -> Request:
    """The CANCEL of a pending INVITE (§9.1): its Via, From, To, Call-ID, CSeq number and Route."""
    headers: list[tuple[str, str]] = [
        ("Via", invite.headers.fields("via")[0]),
        ("Max-Forwards", str(_DEFAULT_MAX_FORWARDS)),
        ("From", invite.headers.get("from") or ""),
        ("To", invite.headers.get("to") or ""),
        ("Call-ID", invite.call_id),
        ("CSeq", f"{invite.cseq.seq} CANCEL"),
    ]
    headers.extend(("Route", route) for route in invite.headers.fields("route"))
    headers.append(("Content-Length", "0"))
    return Request("CANCEL", invite.uri, headers)


def _uri_headers(text: str) -> list[tuple[str, str]]:
    """The ``?name=value&...`` headers of a SIP URI, percent-decoded (RFC 3261 §19.1.1)."""
    pairs: list[tuple[str, str]] = []
    for item in text.split("&") if text else ():
        name, _, value = item.partition("=")
        if name:
            pairs.append((unquote(name), unquote(value)))
    return pairs
