"""SIP transactions (RFC 3261 §17, as corrected by RFC 6026), sans-IO.

Four state machines (INVITE / non-INVITE, client / server) and ``TransactionLayer``, which owns them,
matches incoming messages to them (§17.1.3, §17.2.3) and merges their timers. Nothing here reads a
clock or touches a socket: every call takes ``now`` (seconds, any monotonic origin) and returns a
list of effects for the caller to carry out.
"""

from __future__ import annotations

import enum
import heapq
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar, NewType, TypeAlias

from proxy.sip.errors import SipError
from proxy.sip.message import Request, Response

__all__ = [
    "DEFAULT_TIMERS",
    "T1_S",
    "T2_S",
    "T4_S",
    "TIMER_D_UNRELIABLE_S",
    "DeliverRequest",
    "DeliverResponse",
    "DeliverStrayResponse",
    "Effect",
    "InviteClientTransaction",
    "InviteServerTransaction",
    "NonInviteClientTransaction",
    "NonInviteServerTransaction",
    "SendMessage",
    "State",
    "Timer",
    "TimerConfig",
    "Transaction",
    "TransactionId",
    "TransactionLayer",
    "TransactionTerminated",
    "TransactionTimedOut",
    "build_ack",
]

# Theory of operation
# ===================
#
# A transaction is one request and the responses to it, hop by hop (§17). Each of the four kinds is
# a state machine whose states are those of §17 (Figures 5-8, with the Accepted state that RFC 6026
# adds to both INVITE machines). The transitions are data: one table per kind,
#
#     (state, trigger) -> (next state, actions)
#
# A trigger is one of:
#   * START: the TU hands a client transaction its request (``start``);
#   * a response, classed 1xx / 2xx / 300-699: received from the network by a client transaction
#     (``receive``), or passed down by the TU to a server transaction (``send_response``);
#   * REQUEST or ACK: a retransmission of the server transaction's request, or an ACK matched to
#     an INVITE server transaction (``receive``);
#   * a Timer (A..M) whose deadline has passed (``handle_timers``).
#
# Actions run in order, then the state changes. An action is one of ``_Action`` (send the request,
# send the ACK, send or resend the response, deliver the message to the TU, report a timeout,
# back a retransmission timer off) or a ``Timer``, meaning "start this timer now".
#
# Rules:
#   1. A timer runs only in the states of ``_TIMER_STATES`` (the states the RFC figures arm it in).
#      A state change stops every running timer the new state does not list, so the tables never
#      say "cancel".
#   2. Retransmission timers (A, E, G) are never started on a reliable transport (§17.1.1.2,
#      §17.1.2.2, §17.2.1). The wait timers D, I, J and K are zero there: they are due at once.
#   3. Every entry point runs its input, then fires every timer due by ``now`` (this is how a
#      zero-length timer ends a transaction within the same call), in deadline order.
#   4. A retransmission timer is re-armed from the deadline it fired at, not from ``now``, so the
#      schedule does not drift with the caller's lateness; if the caller was late by more than a
#      whole interval the next deadline counts from ``now`` instead (one retransmission, no burst).
#   5. A message from the network with no table entry is absorbed: the RFC defines no reaction and
#      the peer is not to be trusted. A TU input with no entry (a 2xx after a 486, a second start)
#      is a bug in the TU and raises SipError(500) before anything changes.
#   6. Entering Terminated stops all timers and emits TransactionTerminated, exactly once; the
#      layer then forgets the transaction, so a later message finds nothing (a stray response, or
#      a new server transaction).
#
# Effects flow one way: the transaction never calls out. SendMessage goes to the transport,
# Deliver* and TransactionTimedOut / TransactionTerminated go to the TU. The layer only adds
# routing: which transaction a message belongs to, and the merged earliest deadline of all.

T1_S = 0.5  # §17.1.1.1: RTT estimate
T2_S = 4.0  # maximum retransmit interval for non-INVITE requests and INVITE responses
T4_S = 5.0  # maximum duration a message remains in the network
TIMER_D_UNRELIABLE_S = 32.0  # Table 4: Timer D "> 32s for UDP"


class State(enum.Enum):
    """Transaction states, named as in RFC 3261 §17 and RFC 6026 §7."""

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


class Timer(enum.StrEnum):
    """The transaction timers of RFC 3261 Table 4 and RFC 6026 §8 (Timer C belongs to proxies)."""

    A = "A"  # INVITE request retransmit interval
    B = "B"  # INVITE transaction timeout
    D = "D"  # wait time for response retransmits (INVITE client)
    E = "E"  # non-INVITE request retransmit interval
    F = "F"  # non-INVITE transaction timeout
    G = "G"  # INVITE response retransmit interval
    H = "H"  # wait time for ACK receipt
    I = "I"  # noqa: E741  wait time for ACK retransmits
    J = "J"  # wait time for non-INVITE request retransmits
    K = "K"  # wait time for response retransmits (non-INVITE client)
    L = "L"  # RFC 6026: wait time for accepted INVITE request retransmits
    M = "M"  # RFC 6026: wait time for 2xx retransmits and other forks' 2xx


_RETRANSMIT_TIMERS = frozenset({Timer.A, Timer.E, Timer.G})
_TIMER_RANK = {timer: rank for rank, timer in enumerate(Timer)}

# Rule 1: the states each timer runs in (RFC 3261 Figures 5-8, RFC 6026 Figures 3-4).
_TIMER_STATES: dict[Timer, frozenset[State]] = {
    Timer.A: frozenset({State.CALLING}),
    Timer.B: frozenset({State.CALLING}),
    Timer.D: frozenset({State.COMPLETED}),
    Timer.E: frozenset({State.TRYING, State.PROCEEDING}),
    Timer.F: frozenset({State.TRYING, State.PROCEEDING}),
    Timer.G: frozenset({State.COMPLETED}),
    Timer.H: frozenset({State.COMPLETED}),
    Timer.I: frozenset({State.CONFIRMED}),
    Timer.J: frozenset({State.COMPLETED}),
    Timer.K: frozenset({State.COMPLETED}),
    Timer.L: frozenset({State.ACCEPTED}),
    Timer.M: frozenset({State.ACCEPTED}),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerConfig:
    """Transaction timer values, in seconds (RFC 3261 §17 and Table 4; RFC 6026 §8).

    T1, T2 and T4 are the base values; the others derive from them. Timers B, F and H (the
    transaction timeouts) may be set directly, for instance to give up after 32 s whatever T1 is;
    None means the RFC value 64*T1.
    """

    t1_s: float = T1_S
    """Round-trip time estimate: the first retransmit interval, and the unit of B, F, H, J, L, M."""
    t2_s: float = T2_S
    """Cap of the non-INVITE request and INVITE response retransmit intervals."""
    t4_s: float = T4_S
    """How long a message may stay in the network: Timers I and K on unreliable transports."""
    timer_b_s: float | None = None
    """INVITE client transaction timeout; None means 64*T1."""
    timer_f_s: float | None = None
    """Non-INVITE client transaction timeout; None means 64*T1."""
    timer_h_s: float | None = None
    """How long an INVITE server transaction waits for the ACK of a 300-699; None means 64*T1."""

    def __post_init__(self) -> None:
        if not 0 < self.t1_s <= self.t2_s:
            raise ValueError(f"need 0 < T1 <= T2, got T1={self.t1_s} T2={self.t2_s}")
        if self.t4_s <= 0:
            raise ValueError(f"need T4 > 0, got {self.t4_s}")
        for name in ("timer_b_s", "timer_f_s", "timer_h_s"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"need {name} > 0, got {value}")

    def duration_s(self, timer: Timer, *, reliable: bool) -> float:
        """The value ``timer`` starts with on a reliable or unreliable transport.

        For the retransmission timers A, E and G this is the first interval (T1); they are only
        started on unreliable transports, see ``next_interval_s`` for the following ones.
        """
        sixty_four_t1 = 64 * self.t1_s
        match timer:
            case Timer.A | Timer.E | Timer.G:
                return self.t1_s
            case Timer.B:
                return sixty_four_t1 if self.timer_b_s is None else self.timer_b_s
            case Timer.F:
                return sixty_four_t1 if self.timer_f_s is None else self.timer_f_s
            case Timer.H:
                return sixty_four_t1 if self.timer_h_s is None else self.timer_h_s
            case Timer.D:
                return 0.0 if reliable else TIMER_D_UNRELIABLE_S
            case Timer.I | Timer.K:
                return 0.0 if reliable else self.t4_s
            case Timer.J:
                return 0.0 if reliable else sixty_four_t1
            case Timer.L | Timer.M:
                return sixty_four_t1
        raise AssertionError(timer)  # pragma: no cover

    def next_interval_s(self, timer: Timer, interval_s: float) -> float:
        """The retransmit interval after ``interval_s``: doubled, and for E and G capped at T2.

        §17.1.1.2 (Timer A doubles without a cap; Timer B ends it), §17.1.2.2 (E), §17.2.1 (G).
        """
        doubled = 2 * interval_s
        return doubled if timer is Timer.A else min(doubled, self.t2_s)


DEFAULT_TIMERS = TimerConfig()

TransactionId = NewType("TransactionId", tuple[str, ...])
"""Names a transaction: the key its messages are matched by. Hashable; compare it, do not parse it."""


# Effects -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SendMessage:
    """For the transport: send ``message``, the request (first time or again), an ACK or a response.

    The transport picks the destination: the one it chose for ``transaction_id``'s request, or for a
    response the top Via (§18.2.2).
    """

    message: Request | Response
    transaction_id: TransactionId


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverRequest:
    """For the TU: a request to act on.

    ``transaction_id`` is the new server transaction to answer through ``send_response``. An ACK
    has no transaction of its own: it carries None when it matched nothing (the ACK of a 2xx, a
    dialog matter, §13.2.2.4) or the id of the INVITE server transaction in Accepted it matched
    (RFC 6026 §7.1); an ACK is never answered.
    """

    request: Request
    transaction_id: TransactionId | None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverResponse:
    """For the TU: a response received by client transaction ``transaction_id`` (§17.1)."""

    response: Response
    transaction_id: TransactionId


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverStrayResponse:
    """For the TU: a response that matched no client transaction.

    Typically a 2xx retransmission after the INVITE client transaction ended (§13.2.2.4: the UAC
    core ACKs it again); anything else may be dropped.
    """

    response: Response


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionTimedOut:
    """For the TU: the transaction gave up (Timer B or F: no final response; Timer H: no ACK).

    TransactionTerminated follows at once.
    """

    transaction_id: TransactionId
    timer: Timer


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionTerminated:
    """For the TU and the transport: the transaction is over and forgotten; its id is free."""

    transaction_id: TransactionId


Effect: TypeAlias = (
    SendMessage
    | DeliverRequest
    | DeliverResponse
    | DeliverStrayResponse
    | TransactionTimedOut
    | TransactionTerminated
)


# State tables ------------------------------------------------------------------------------------


class _Trigger(enum.Enum):
    START = "start"
    RESPONSE_1XX = "1xx"
    RESPONSE_2XX = "2xx"
    RESPONSE_3XX_6XX = "300-699"
    REQUEST = "request retransmission"
    ACK = "ACK"


class _Action(enum.Enum):
    SEND_REQUEST = "send the request"
    SEND_ACK = "send the ACK of the final response"
    SEND_RESPONSE = "send the TU's response and remember it"
    RESEND_RESPONSE = "send the last response again, if any"
    DELIVER = "deliver the message to the TU"
    REPORT_TIMEOUT = "report the timer that fired as a timeout"
    BACK_OFF = "re-arm the timer that fired with the next interval"
    HOLD_AT_T2 = "re-arm the timer that fired with T2"


_Step = tuple[State, tuple[_Action | Timer, ...]]
_Table = dict[tuple[State, _Trigger | Timer], _Step]

_PROVISIONAL = _Trigger.RESPONSE_1XX
_SUCCESS = _Trigger.RESPONSE_2XX
_FAILURE = _Trigger.RESPONSE_3XX_6XX
_SEND_REQUEST = _Action.SEND_REQUEST
_SEND_ACK = _Action.SEND_ACK
_SEND_RESPONSE = _Action.SEND_RESPONSE
_RESEND_RESPONSE = _Action.RESEND_RESPONSE
_DELIVER = _Action.DELIVER
_REPORT_TIMEOUT = _Action.REPORT_TIMEOUT
_BACK_OFF = _Action.BACK_OFF

# §17.1.1.2 Figure 5, with RFC 6026 §8.4 (2xx -> Accepted, Timer M).
_INVITE_CLIENT_TABLE: _Table = {
    (State.CALLING, _Trigger.START): (State.CALLING, (_SEND_REQUEST, Timer.A, Timer.B)),
    (State.CALLING, Timer.A): (State.CALLING, (_SEND_REQUEST, _BACK_OFF)),
    (State.CALLING, Timer.B): (State.TERMINATED, (_REPORT_TIMEOUT,)),
    (State.CALLING, _PROVISIONAL): (State.PROCEEDING, (_DELIVER,)),
    (State.CALLING, _SUCCESS): (State.ACCEPTED, (_DELIVER, Timer.M)),
    (State.CALLING, _FAILURE): (State.COMPLETED, (_SEND_ACK, _DELIVER, Timer.D)),
    (State.PROCEEDING, _PROVISIONAL): (State.PROCEEDING, (_DELIVER,)),
    (State.PROCEEDING, _SUCCESS): (State.ACCEPTED, (_DELIVER, Timer.M)),
    (State.PROCEEDING, _FAILURE): (State.COMPLETED, (_SEND_ACK, _DELIVER, Timer.D)),
    # A retransmitted final response is ACKed again and not passed up.
    (State.COMPLETED, _FAILURE): (State.COMPLETED, (_SEND_ACK,)),
    (State.COMPLETED, Timer.D): (State.TERMINATED, ()),
    # RFC 6026 §8.4: "any 2xx responses ... received while in the Accepted state MUST be passed up".
    (State.ACCEPTED, _SUCCESS): (State.ACCEPTED, (_DELIVER,)),
    (State.ACCEPTED, Timer.M): (State.TERMINATED, ()),
}

# §17.1.2.2 Figure 6.
_NON_INVITE_CLIENT_TABLE: _Table = {
    (State.TRYING, _Trigger.START): (State.TRYING, (_SEND_REQUEST, Timer.E, Timer.F)),
    (State.TRYING, Timer.E): (State.TRYING, (_SEND_REQUEST, _BACK_OFF)),
    (State.TRYING, Timer.F): (State.TERMINATED, (_REPORT_TIMEOUT,)),
    (State.TRYING, _PROVISIONAL): (State.PROCEEDING, (_DELIVER,)),
    (State.TRYING, _SUCCESS): (State.COMPLETED, (_DELIVER, Timer.K)),
    (State.TRYING, _FAILURE): (State.COMPLETED, (_DELIVER, Timer.K)),
    # "If Timer E fires while in the Proceeding state ... reset with a value of T2 seconds."
    (State.PROCEEDING, Timer.E): (State.PROCEEDING, (_SEND_REQUEST, _Action.HOLD_AT_T2)),
    (State.PROCEEDING, Timer.F): (State.TERMINATED, (_REPORT_TIMEOUT,)),
    (State.PROCEEDING, _PROVISIONAL): (State.PROCEEDING, (_DELIVER,)),
    (State.PROCEEDING, _SUCCESS): (State.COMPLETED, (_DELIVER, Timer.K)),
    (State.PROCEEDING, _FAILURE): (State.COMPLETED, (_DELIVER, Timer.K)),
    (State.COMPLETED, Timer.K): (State.TERMINATED, ()),
}

# §17.2.1 Figure 7, with RFC 6026 §7.1 (2xx -> Accepted, Timer L). 100 Trying is the TU's job.
_INVITE_SERVER_TABLE: _Table = {
    # "If a request retransmission is received while in the Proceeding state, the most recent
    # provisional response ... MUST be passed to the transport layer for retransmission."
    (State.PROCEEDING, _Trigger.REQUEST): (State.PROCEEDING, (_RESEND_RESPONSE,)),
    (State.PROCEEDING, _PROVISIONAL): (State.PROCEEDING, (_SEND_RESPONSE,)),
    (State.PROCEEDING, _SUCCESS): (State.ACCEPTED, (_SEND_RESPONSE, Timer.L)),
    (State.PROCEEDING, _FAILURE): (State.COMPLETED, (_SEND_RESPONSE, Timer.G, Timer.H)),
    (State.COMPLETED, _Trigger.REQUEST): (State.COMPLETED, (_RESEND_RESPONSE,)),
    (State.COMPLETED, Timer.G): (State.COMPLETED, (_RESEND_RESPONSE, _BACK_OFF)),
    (State.COMPLETED, _Trigger.ACK): (State.CONFIRMED, (Timer.I,)),
    (State.COMPLETED, Timer.H): (State.TERMINATED, (_REPORT_TIMEOUT,)),
    # Confirmed absorbs further ACKs (no entry).
    (State.CONFIRMED, Timer.I): (State.TERMINATED, ()),
    # RFC 6026 §7.1: INVITE retransmissions are absorbed (no entry); the TU retransmits the 2xx
    # (§13.3.1.4) through the transaction; ACKs that match go to the TU.
    (State.ACCEPTED, _SUCCESS): (State.ACCEPTED, (_SEND_RESPONSE,)),
    (State.ACCEPTED, _Trigger.ACK): (State.ACCEPTED, (_DELIVER,)),
    (State.ACCEPTED, Timer.L): (State.TERMINATED, ()),
}

# §17.2.2 Figure 8. Retransmissions in Trying are discarded (no entry).
_NON_INVITE_SERVER_TABLE: _Table = {
    (State.TRYING, _PROVISIONAL): (State.PROCEEDING, (_SEND_RESPONSE,)),
    (State.TRYING, _SUCCESS): (State.COMPLETED, (_SEND_RESPONSE, Timer.J)),
    (State.TRYING, _FAILURE): (State.COMPLETED, (_SEND_RESPONSE, Timer.J)),
    (State.PROCEEDING, _Trigger.REQUEST): (State.PROCEEDING, (_RESEND_RESPONSE,)),
    (State.PROCEEDING, _PROVISIONAL): (State.PROCEEDING, (_SEND_RESPONSE,)),
    (State.PROCEEDING, _SUCCESS): (State.COMPLETED, (_SEND_RESPONSE, Timer.J)),
    (State.PROCEEDING, _FAILURE): (State.COMPLETED, (_SEND_RESPONSE, Timer.J)),
    (State.COMPLETED, _Trigger.REQUEST): (State.COMPLETED, (_RESEND_RESPONSE,)),
    # "Any other final responses passed by the TU ... MUST be discarded while in the Completed state."
    (State.COMPLETED, _SUCCESS): (State.COMPLETED, ()),
    (State.COMPLETED, _FAILURE): (State.COMPLETED, ()),
    (State.COMPLETED, Timer.J): (State.TERMINATED, ()),
}


def _response_trigger(status: int) -> _Trigger:
    if status < 200:
        return _PROVISIONAL
    if status < 300:
        return _SUCCESS
    return _FAILURE


# Transactions ------------------------------------------------------------------------------------


class Transaction:
    """What the four §17 state machines share: the table walk, the timers and the effects.

    Attributes (read only for callers): ``request`` (the request that created the transaction),
    ``transaction_id``, ``reliable``, ``timers``, ``state``, and ``last_response`` (the most recent
    response received by a client transaction, or sent by a server transaction).
    """

    __slots__ = (
        "_ack",
        "_deadlines",
        "_intervals",
        "last_response",
        "reliable",
        "request",
        "state",
        "timers",
        "transaction_id",
    )

    _TABLE: ClassVar[_Table]
    _INITIAL_STATE: ClassVar[State]
    _TU_TRIGGERS: ClassVar[frozenset[_Trigger]]

    def __init__(
        self,
        request: Request,
        transaction_id: TransactionId,
        *,
        reliable: bool,
        timers: TimerConfig = DEFAULT_TIMERS,
    ) -> None:
        self.request = request
        self.transaction_id = transaction_id
        self.reliable = reliable
        self.timers = timers
        self.state = self._INITIAL_STATE
        self.last_response: Response | None = None
        self._ack: Request | None = None
        self._deadlines: dict[Timer, float] = {}
        self._intervals: dict[Timer, float] = {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.state.value} {self.transaction_id}>"

    def next_deadline(self) -> float | None:
        """The earliest time ``handle_timers`` has work to do, or None when no timer runs."""
        return min(self._deadlines.values(), default=None)

    def handle_timers(self, now: float) -> list[Effect]:
        """Fire, in deadline order, every timer due at or before ``now``."""
        effects: list[Effect] = []
        self._fire_due(now, effects)
        return effects

    def _input(self, trigger: _Trigger, message: Request | Response | None, now: float) -> list[Effect]:
        try:
            step = self._TABLE[(self.state, trigger)]
        except KeyError:
            if trigger in self._TU_TRIGGERS:
                raise SipError(
                    f"{type(self).__name__} in state {self.state.value} cannot take {trigger.value}", 500
                ) from None
            step = None  # rule 5: absorbed
        effects: list[Effect] = []
        if step is not None:
            self._apply(step, trigger, message, now, now, effects)
        self._fire_due(now, effects)
        return effects

    def _fire_due(self, now: float, effects: list[Effect]) -> None:
        while self._deadlines and self.state is not State.TERMINATED:
            timer, deadline = min(self._deadlines.items(), key=lambda item: (item[1], _TIMER_RANK[item[0]]))
            if deadline > now:
                return
            del self._deadlines[timer]
            self._apply(self._TABLE[(self.state, timer)], timer, None, deadline, now, effects)

    def _apply(
        self,
        step: _Step,
        trigger: _Trigger | Timer,
        message: Request | Response | None,
        at: float,
        now: float,
        effects: list[Effect],
    ) -> None:
        """Run ``step``'s actions for ``trigger`` (which happened ``at``), then change state."""
        next_state, actions = step
        for action in actions:
            if isinstance(action, Timer):
                self._start_timer(action, at)
            else:
                self._run(action, trigger, message, at, now, effects)
        if next_state is self.state:
            return
        self.state = next_state
        if next_state is State.TERMINATED:
            self._deadlines.clear()
            effects.append(TransactionTerminated(transaction_id=self.transaction_id))
            return
        for timer in [t for t in self._deadlines if next_state not in _TIMER_STATES[t]]:
            del self._deadlines[timer]  # rule 1

    def _run(
        self,
        action: _Action,
        trigger: _Trigger | Timer,
        message: Request | Response | None,
        at: float,
        now: float,
        effects: list[Effect],
    ) -> None:
        tid = self.transaction_id
        match action:
            case _Action.SEND_REQUEST:
                effects.append(SendMessage(message=self.request, transaction_id=tid))
            case _Action.SEND_ACK:
                if self._ack is None:
                    assert isinstance(message, Response)
                    self._ack = build_ack(self.request, message)
                effects.append(SendMessage(message=self._ack, transaction_id=tid))
            case _Action.SEND_RESPONSE:
                assert isinstance(message, Response)
                self.last_response = message
                effects.append(SendMessage(message=message, transaction_id=tid))
            case _Action.RESEND_RESPONSE:
                if self.last_response is not None:
                    effects.append(SendMessage(message=self.last_response, transaction_id=tid))
            case _Action.DELIVER:
                if isinstance(message, Response):
                    self.last_response = message
                    effects.append(DeliverResponse(response=message, transaction_id=tid))
                else:
                    assert isinstance(message, Request)
                    effects.append(DeliverRequest(request=message, transaction_id=tid))
            case _Action.REPORT_TIMEOUT:
                assert isinstance(trigger, Timer)
                effects.append(TransactionTimedOut(transaction_id=tid, timer=trigger))
            case _Action.BACK_OFF:
                assert isinstance(trigger, Timer)
                self._restart_timer(
                    trigger, self.timers.next_interval_s(trigger, self._intervals[trigger]), at, now
                )
            case _Action.HOLD_AT_T2:
                assert isinstance(trigger, Timer)
                self._restart_timer(trigger, self.timers.t2_s, at, now)

    def _start_timer(self, timer: Timer, at: float) -> None:
        if self.reliable and timer in _RETRANSMIT_TIMERS:
            return  # rule 2
        interval = self.timers.duration_s(timer, reliable=self.reliable)
        self._intervals[timer] = interval
        self._deadlines[timer] = at + interval

    def _restart_timer(self, timer: Timer, interval: float, fired_at: float, now: float) -> None:
        self._intervals[timer] = interval
        deadline = fired_at + interval
        self._deadlines[timer] = deadline if deadline > now else now + interval  # rule 4


class _ClientTransaction(Transaction):
    __slots__ = ("_started",)

    _TU_TRIGGERS = frozenset({_Trigger.START})

    def __init__(self, request: Request, *, reliable: bool, timers: TimerConfig = DEFAULT_TIMERS) -> None:
        super().__init__(request, _client_key(request), reliable=reliable, timers=timers)
        self._started = False

    def start(self, now: float) -> list[Effect]:
        """Send the request and start the timers (§17.1.1.2, §17.1.2.2).

        Raises SipError(500) when called twice.
        """
        if self._started:
            raise SipError(f"{self.transaction_id} already started", 500)
        self._started = True
        return self._input(_Trigger.START, None, now)

    def receive(self, response: Response, now: float) -> list[Effect]:
        """Take a response matched to this transaction (§17.1.3)."""
        return self._input(_response_trigger(response.status), response, now)


class _ServerTransaction(Transaction):
    __slots__ = ()

    _TU_TRIGGERS = frozenset({_PROVISIONAL, _SUCCESS, _FAILURE})

    def __init__(self, request: Request, *, reliable: bool, timers: TimerConfig = DEFAULT_TIMERS) -> None:
        super().__init__(request, _server_key(request), reliable=reliable, timers=timers)

    def receive(self, request: Request, now: float) -> list[Effect]:
        """Take a retransmission of the request, or an ACK, matched to this transaction (§17.2.3)."""
        trigger = _Trigger.ACK if request.method == "ACK" else _Trigger.REQUEST
        return self._input(trigger, request, now)

    def send_response(self, response: Response, now: float) -> list[Effect]:
        """Send the TU's response (§17.2.1, §17.2.2).

        Raises SipError(500) when the state does not allow it (for an INVITE: anything after a
        300-699, or anything but a 2xx after a 2xx). A non-INVITE transaction discards a second
        final response, as §17.2.2 requires.
        """
        return self._input(_response_trigger(response.status), response, now)


class InviteClientTransaction(_ClientTransaction):
    """INVITE client transaction (§17.1.1, RFC 6026 §8.4): Calling, Proceeding, Completed, Accepted.

    Builds and sends the ACK of a 300-699 itself (§17.1.1.3); a 2xx goes to the TU, which ACKs it.
    """

    __slots__ = ()
    _TABLE = _INVITE_CLIENT_TABLE
    _INITIAL_STATE = State.CALLING


class NonInviteClientTransaction(_ClientTransaction):
    """Non-INVITE client transaction (§17.1.2): Trying, Proceeding, Completed."""

    __slots__ = ()
    _TABLE = _NON_INVITE_CLIENT_TABLE
    _INITIAL_STATE = State.TRYING


class InviteServerTransaction(_ServerTransaction):
    """INVITE server transaction (§17.2.1, RFC 6026 §7.1): Proceeding, Completed, Confirmed, Accepted.

    The TU sends 100 Trying (the transaction does not); 2xx retransmissions are the TU's too.
    """

    __slots__ = ()
    _TABLE = _INVITE_SERVER_TABLE
    _INITIAL_STATE = State.PROCEEDING


class NonInviteServerTransaction(_ServerTransaction):
    """Non-INVITE server transaction (§17.2.2): Trying, Proceeding, Completed."""

    __slots__ = ()
    _TABLE = _NON_INVITE_SERVER_TABLE
    _INITIAL_STATE = State.TRYING


def build_ack(invite: Request, response: Response) -> Request:
    """The ACK of a 300-699 response to ``invite``, as a client transaction builds it (§17.1.1.3).

    Request-URI, Call-ID and From of the INVITE; only its top Via; To of the response; CSeq with
    the INVITE's number and method ACK; the INVITE's Route header fields; Max-Forwards of the
    INVITE (70 if it had none, §8.1.1.6); no body.
    """
    fields = [("Via", invite.headers.get_all("via")[0])]
    fields.extend(("Route", value) for value in invite.headers.fields("route"))
    fields.append(("Max-Forwards", invite.headers.get("max-forwards") or "70"))
    fields.append(("From", _field(invite, "from")))
    fields.append(("To", _field(response, "to")))
    fields.append(("Call-ID", _field(invite, "call-id")))
    fields.append(("CSeq", f"{invite.cseq.seq} ACK"))
    fields.append(("Content-Length", "0"))
    return Request("ACK", invite.uri, fields)


def _field(message: Request | Response, name: str) -> str:
    value = message.headers.get(name)
    if value is None:
        raise SipError(f"missing {name} header", 400)
    return value


# Matching ----------------------------------------------------------------------------------------


def _client_key(request: Request) -> TransactionId:
    """§17.1.3: the top Via branch and the method. The branch must carry the §8.1.1.7 cookie."""
    via = request.top_via
    if not via.is_rfc3261_branch:
        raise SipError("a client transaction needs a z9hG4bK branch in its top Via (§8.1.1.7)", 500)
    return TransactionId(("client", via.branch or "", request.method))


def _response_key(response: Response) -> TransactionId | None:
    branch = response.top_via.branch
    if branch is None:
        return None
    return TransactionId(("client", branch, response.cseq.method))


def _server_key(request: Request, method: str | None = None) -> TransactionId:
    """§17.2.3: the id of the server transaction ``request`` belongs to, with ``method`` if given.

    With a z9hG4bK branch: branch, sent-by and method (INVITE for an ACK). Otherwise the RFC 2543
    rule: Request-URI, To tag, From tag, Call-ID, CSeq and top Via, compared as parsed and
    re-serialised text. (An RFC 2543 ACK is matched through ``_legacy_ack_key`` instead.)
    """
    if method is None:
        method = "INVITE" if request.method == "ACK" else request.method
    via = request.top_via
    if via.is_rfc3261_branch:
        host, port = via.sent_by
        return TransactionId(("server", via.branch or "", host.lower(), str(port), method))
    return TransactionId(
        (
            "server-2543",
            str(request.uri),
            request.to.tag or "",
            request.from_.tag or "",
            request.call_id,
            str(request.cseq.seq),
            method,
            str(via),
        )
    )


def _legacy_ack_key(request: Request) -> tuple[str, ...]:
    """§17.2.3, RFC 2543 ACK matching: the fields an ACK shares with its INVITE (no To tag, no method)."""
    return (
        str(request.uri),
        request.from_.tag or "",
        request.call_id,
        str(request.cseq.seq),
        str(request.top_via),
    )


def _is_reliable_transport(transport: str) -> bool:
    return transport.upper() != "UDP"


class TransactionLayer:
    """The transactions of one SIP endpoint, keyed by their matching rules (§17.1.3, §17.2.3).

    Lookups are dict hits; timers are merged in a heap, so ``next_deadline`` and ``handle_timers``
    cost O(log n) per due transaction. Terminated transactions are dropped at once.
    """

    __slots__ = ("_heap", "_legacy_acks", "_scheduled", "_sequence", "_transactions", "timers")

    def __init__(self, *, timers: TimerConfig = DEFAULT_TIMERS) -> None:
        self.timers = timers
        self._transactions: dict[TransactionId, Transaction] = {}
        # RFC 2543 INVITE server transactions by the fields an ACK shares with the INVITE.
        self._legacy_acks: dict[tuple[str, ...], TransactionId] = {}
        # Lazy-deletion heap: an entry is live only while ``_scheduled`` maps its id to its deadline.
        self._heap: list[tuple[float, int, TransactionId]] = []
        self._scheduled: dict[TransactionId, float] = {}
        self._sequence = itertools.count()

    def __len__(self) -> int:
        return len(self._transactions)

    def transaction(self, transaction_id: TransactionId) -> Transaction | None:
        """The live transaction with that id, for inspection (state, request, last response)."""
        return self._transactions.get(transaction_id)

    def create_client(
        self, request: Request, now: float, *, reliable: bool
    ) -> tuple[TransactionId, list[Effect]]:
        """Start a client transaction for ``request`` and send it.

        Returns the transaction id and the effects (the first SendMessage). Raises SipError(500)
        for an ACK (never a transaction, §17.1.1.3 / §13.2.2.4), a top Via without a z9hG4bK branch,
        or an id already in use (same branch and method).
        """
        if request.method == "ACK":
            raise SipError("an ACK is not sent through a client transaction", 500)
        transaction: _ClientTransaction
        if request.method == "INVITE":
            transaction = InviteClientTransaction(request, reliable=reliable, timers=self.timers)
        else:
            transaction = NonInviteClientTransaction(request, reliable=reliable, timers=self.timers)
        tid = transaction.transaction_id
        if tid in self._transactions:
            raise SipError(f"transaction {tid} already exists", 500)
        self._transactions[tid] = transaction
        effects = transaction.start(now)
        self._after(transaction)
        return tid, effects

    def receive(
        self, message: Request | Response, now: float, *, reliable: bool | None = None
    ) -> list[Effect]:
        """Route a message from the transport.

        A response goes to its client transaction, or comes back as DeliverStrayResponse. A request
        goes to its server transaction (a retransmission, or an ACK); a new one creates a server
        transaction and comes back as DeliverRequest with its id; an ACK that matches nothing comes
        back as DeliverRequest without one. ``reliable`` is the transport a new server transaction
        answers over; None reads it from the top Via (anything but UDP is reliable).

        Raises SipError(400) when a header needed for matching does not parse.
        """
        if isinstance(message, Response):
            key = _response_key(message)
            client = self._transactions.get(key) if key is not None else None
            if not isinstance(client, _ClientTransaction):
                return [DeliverStrayResponse(response=message)]
            effects = client.receive(message, now)
            self._after(client)
            return effects
        if message.method == "ACK":
            invite = self._match_ack(message)
            if invite is None:
                return [DeliverRequest(request=message, transaction_id=None)]
            effects = invite.receive(message, now)
            self._after(invite)
            return effects
        tid = _server_key(message)
        existing = self._transactions.get(tid)
        if isinstance(existing, _ServerTransaction):
            effects = existing.receive(message, now)
            self._after(existing)
            return effects
        if reliable is None:
            reliable = _is_reliable_transport(message.top_via.transport)
        server: _ServerTransaction
        if message.method == "INVITE":
            server = InviteServerTransaction(message, reliable=reliable, timers=self.timers)
            if tid[0] == "server-2543":
                self._legacy_acks[_legacy_ack_key(message)] = tid
        else:
            server = NonInviteServerTransaction(message, reliable=reliable, timers=self.timers)
        self._transactions[tid] = server
        return [DeliverRequest(request=message, transaction_id=tid)]

    def send_response(self, transaction_id: TransactionId, response: Response, now: float) -> list[Effect]:
        """Pass the TU's response to its server transaction.

        Raises SipError(500) when no server transaction has that id (it never existed, or it ended)
        or its state does not allow the response (see ``send_response`` of the transactions).
        """
        server = self._transactions.get(transaction_id)
        if not isinstance(server, _ServerTransaction):
            raise SipError(f"no server transaction {transaction_id}", 500)
        effects = server.send_response(response, now)
        self._after(server)
        return effects

    def find_invite_server_for_cancel(self, cancel: Request) -> TransactionId | None:
        """The INVITE server transaction ``cancel`` refers to (§9.2), or None (answer 481).

        The CANCEL matches like any request (§17.2.3) with INVITE as the method; under RFC 2543 rules
        its To tag must equal the INVITE's, which §9.1 makes so.
        """
        tid = _server_key(cancel, "INVITE")
        return tid if isinstance(self._transactions.get(tid), InviteServerTransaction) else None

    def find_non_invite_server_for_cancel(
        self, cancel: Request, methods: Iterable[str]
    ) -> TransactionId | None:
        """The server transaction of a request of one of ``methods`` that ``cancel`` refers to
        (§9.2), or None (answer 481). A CANCEL does not name the method it cancels: it matches
        like any request (§17.2.3) with each of them in turn."""
        for method in methods:
            tid = _server_key(cancel, method)
            if isinstance(self._transactions.get(tid), NonInviteServerTransaction):
                return tid
        return None

    def next_deadline(self) -> float | None:
        """The earliest deadline over all transactions, or None."""
        heap = self._heap
        while heap and self._scheduled.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)  # stale entry
        return heap[0][0] if heap else None

    def handle_timers(self, now: float) -> list[Effect]:
        """Fire every timer due at or before ``now``, across all transactions."""
        effects: list[Effect] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, tid = heapq.heappop(heap)
            if self._scheduled.get(tid) != deadline:
                continue
            del self._scheduled[tid]
            transaction = self._transactions[tid]
            effects.extend(transaction.handle_timers(now))
            self._after(transaction)
        return effects

    def _match_ack(self, ack: Request) -> InviteServerTransaction | None:
        """§17.2.3: the INVITE server transaction ``ack`` belongs to, if any."""
        if ack.top_via.is_rfc3261_branch:
            found = self._transactions.get(_server_key(ack))
            return found if isinstance(found, InviteServerTransaction) else None
        tid = self._legacy_acks.get(_legacy_ack_key(ack))
        found = self._transactions.get(tid) if tid is not None else None
        if not isinstance(found, InviteServerTransaction) or found.last_response is None:
            return None
        # "... and the To tag of the ACK matches the To tag of the response sent by the server transaction."
        return found if found.last_response.to.tag == ack.to.tag else None

    def _after(self, transaction: Transaction) -> None:
        """Drop ``transaction`` if it ended, else keep its heap entry in step with its deadline."""
        tid = transaction.transaction_id
        if transaction.state is State.TERMINATED:
            del self._transactions[tid]
            self._scheduled.pop(tid, None)
            if tid[0] == "server-2543" and isinstance(transaction, InviteServerTransaction):
                ack_key = _legacy_ack_key(transaction.request)
                if self._legacy_acks.get(ack_key) == tid:
                    del self._legacy_acks[ack_key]
            return
        deadline = transaction.next_deadline()
        if deadline == self._scheduled.get(tid):
            return
        if deadline is None:
            del self._scheduled[tid]
            return
        self._scheduled[tid] = deadline
        heapq.heappush(self._heap, (deadline, next(self._sequence), tid))
