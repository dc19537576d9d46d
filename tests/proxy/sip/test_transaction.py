"""Transactions on virtual time: retransmission schedules, state tables, ACK building, matching.

Time is a float passed in; the tests drive timers by calling ``handle_timers`` at each
``next_deadline``. Effects are compared exactly, as objects or as short descriptions
(``"send INVITE"``, ``"deliver 486"``, ``"timeout B"``, ``"terminated"``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.sip import Request, Response, SipError, parse_message
from proxy.sip.transaction import (
    DeliverRequest,
    DeliverResponse,
    DeliverStrayResponse,
    Effect,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    SendMessage,
    State,
    Timer,
    TimerConfig,
    TransactionId,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimedOut,
    build_ack,
)
from tests.proxy.sip import sip_samples
from tests.proxy.sip.sip_samples import cancel_for, request, response


class _Timed(Protocol):
    def next_deadline(self) -> float | None: ...

    def handle_timers(self, now: float) -> list[Effect]: ...


def describe(effect: Effect) -> str:
    match effect:
        case SendMessage(message=Request() as sent):
            return f"send {sent.method}"
        case SendMessage(message=Response() as sent):
            return f"send {sent.status}"
        case DeliverRequest(request=delivered):
            return f"deliver {delivered.method}"
        case DeliverResponse(response=delivered):
            return f"deliver {delivered.status}"
        case DeliverStrayResponse(response=stray):
            return f"stray {stray.status}"
        case TransactionTimedOut(timer=timer):
            return f"timeout {timer}"
        case TransactionTerminated():
            return "terminated"
    raise AssertionError(effect)


def describe_all(effects: list[Effect]) -> list[str]:
    return [describe(effect) for effect in effects]


def run_timers(timed: _Timed, until: float) -> list[tuple[float, Effect]]:
    """Call ``handle_timers`` at every deadline up to ``until``; the effects with their times."""
    fired: list[tuple[float, Effect]] = []
    while (deadline := timed.next_deadline()) is not None and deadline <= until:
        fired.extend((deadline, effect) for effect in timed.handle_timers(deadline))
    return fired


def send_times(fired: list[tuple[float, Effect]]) -> list[float]:
    return [at for at, effect in fired if isinstance(effect, SendMessage)]


# TimerConfig -------------------------------------------------------------------------------------

DEFAULT_DURATIONS = [
    # (timer, unreliable value, reliable value): RFC 3261 Table 4, RFC 6026 §8.
    (Timer.A, 0.5, 0.5),
    (Timer.B, 32.0, 32.0),
    (Timer.D, 32.0, 0.0),
    (Timer.E, 0.5, 0.5),
    (Timer.F, 32.0, 32.0),
    (Timer.G, 0.5, 0.5),
    (Timer.H, 32.0, 32.0),
    (Timer.I, 5.0, 0.0),
    (Timer.J, 32.0, 0.0),
    (Timer.K, 5.0, 0.0),
    (Timer.L, 32.0, 32.0),
    (Timer.M, 32.0, 32.0),
]


@pytest.mark.parametrize(("timer", "unreliable", "reliable"), DEFAULT_DURATIONS)
def test_default_durations(timer: Timer, unreliable: float, reliable: float) -> None:
    config = TimerConfig()
    assert config.duration_s(timer, reliable=False) == unreliable
    assert config.duration_s(timer, reliable=True) == reliable


SCALED = TimerConfig(t1_s=1.0, t2_s=8.0, t4_s=6.0, timer_b_s=20.0, timer_h_s=10.0)


@pytest.mark.parametrize(
    ("timer", "unreliable", "reliable"),
    [
        (Timer.A, 1.0, 1.0),
        (Timer.B, 20.0, 20.0),  # configured
        (Timer.D, 32.0, 0.0),  # "at least 32 s", not a multiple of T1
        (Timer.F, 64.0, 64.0),  # 64*T1
        (Timer.H, 10.0, 10.0),  # configured
        (Timer.I, 6.0, 0.0),
        (Timer.J, 64.0, 0.0),
        (Timer.K, 6.0, 0.0),
        (Timer.L, 64.0, 64.0),
        (Timer.M, 64.0, 64.0),
    ],
)
def test_scaled_durations(timer: Timer, unreliable: float, reliable: float) -> None:
    assert SCALED.duration_s(timer, reliable=False) == unreliable
    assert SCALED.duration_s(timer, reliable=True) == reliable


@pytest.mark.parametrize(
    ("timer", "interval", "expected"),
    [
        (Timer.A, 0.5, 1.0),
        (Timer.A, 16.0, 32.0),  # A is not capped
        (Timer.E, 1.0, 2.0),
        (Timer.E, 2.0, 4.0),
        (Timer.E, 4.0, 4.0),  # capped at T2
        (Timer.G, 4.0, 4.0),
    ],
)
def test_next_interval(timer: Timer, interval: float, expected: float) -> None:
    assert TimerConfig().next_interval_s(timer, interval) == expected


@pytest.mark.parametrize(
    "kwargs",
    [
        {"t1_s": 0.0},
        {"t1_s": 5.0},
        {"t4_s": 0.0},
        {"timer_b_s": 0.0},
        {"timer_f_s": -1.0},
        {"timer_h_s": 0.0},
    ],
)
def test_bad_config_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="need"):
        TimerConfig(**kwargs)


# Client retransmission schedules -----------------------------------------------------------------

INVITE_UDP_SENDS = [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
NON_INVITE_UDP_SENDS = [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]


@pytest.mark.parametrize(
    ("method", "reliable", "timers", "sends", "timeout_at", "timer"),
    [
        pytest.param("INVITE", False, TimerConfig(), INVITE_UDP_SENDS, 32.0, "B", id="invite-udp"),
        pytest.param("INVITE", True, TimerConfig(), [0.0], 32.0, "B", id="invite-tcp"),
        pytest.param("OPTIONS", False, TimerConfig(), NON_INVITE_UDP_SENDS, 32.0, "F", id="options-udp"),
        pytest.param("OPTIONS", True, TimerConfig(), [0.0], 32.0, "F", id="options-tcp"),
        pytest.param(
            "INVITE",
            False,
            TimerConfig(timer_b_s=16.0),
            [0.0, 0.5, 1.5, 3.5, 7.5, 15.5],
            16.0,
            "B",
            id="b-16s",
        ),
        pytest.param(
            "BYE", False, TimerConfig(timer_f_s=10.0), [0.0, 0.5, 1.5, 3.5, 7.5], 10.0, "F", id="f-10s"
        ),
    ],
)
def test_client_schedule_until_timeout(
    method: str, reliable: bool, timers: TimerConfig, sends: list[float], timeout_at: float, timer: str
) -> None:
    layer = TransactionLayer(timers=timers)
    invite = request(method)
    tid, effects = layer.create_client(invite, 0.0, reliable=reliable)
    assert effects == [SendMessage(message=invite, transaction_id=tid)]
    fired = [(0.0, effect) for effect in effects] + run_timers(layer, 100.0)
    assert send_times(fired) == sends
    assert all(effect == SendMessage(message=invite, transaction_id=tid) for _, effect in fired[:-2])
    assert fired[-2:] == [
        (timeout_at, TransactionTimedOut(transaction_id=tid, timer=Timer(timer))),
        (timeout_at, TransactionTerminated(transaction_id=tid)),
    ]
    assert len(layer) == 0
    assert layer.next_deadline() is None


def test_non_invite_proceeding_retransmits_every_t2() -> None:
    layer = TransactionLayer()
    options = request("OPTIONS")
    tid, _ = layer.create_client(options, 0.0, reliable=False)
    assert describe_all(layer.receive(response(options, 100), 0.2)) == ["deliver 100"]
    fired = run_timers(layer, 100.0)
    # §17.1.2.2: Timer E keeps its deadline (0.5), then restarts with T2 each time.
    assert send_times(fired) == [0.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5]
    assert fired[-2:] == [
        (32.0, TransactionTimedOut(transaction_id=tid, timer=Timer.F)),
        (32.0, TransactionTerminated(transaction_id=tid)),
    ]


def test_invite_proceeding_stops_retransmitting_and_timer_b() -> None:
    layer = TransactionLayer()
    invite = request()
    tid, _ = layer.create_client(invite, 0.0, reliable=False)
    assert run_timers(layer, 0.5) == [(0.5, SendMessage(message=invite, transaction_id=tid))]
    assert describe_all(layer.receive(response(invite, 180), 1.0)) == ["deliver 180"]
    assert layer.next_deadline() is None  # §17.1.1.2: no retransmission, no Timer B in Proceeding
    assert run_timers(layer, 1000.0) == []


def test_late_caller_gets_one_retransmission_not_a_burst() -> None:
    transaction = InviteClientTransaction(request(), reliable=False)
    transaction.start(0.0)
    assert describe_all(transaction.handle_timers(2.0)) == ["send INVITE"]  # A was due at 0.5
    assert transaction.next_deadline() == 3.0  # 0.5 + 1.0 has passed: 2.0 + 1.0


def test_client_start_twice_raises() -> None:
    transaction = NonInviteClientTransaction(request("OPTIONS"), reliable=False)
    transaction.start(0.0)
    with pytest.raises(SipError, match="already started") as caught:
        transaction.start(1.0)
    assert caught.value.status_hint == 500


# Server retransmission schedules -----------------------------------------------------------------

G_SENDS = [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]


@pytest.mark.parametrize(("transport", "sends"), [("UDP", G_SENDS), ("TCP", [0.0])])
def test_server_invite_timer_g_until_h(transport: str, sends: list[float]) -> None:
    layer = TransactionLayer()
    invite = request(transport=transport)
    [delivered] = layer.receive(invite, 0.0)
    assert isinstance(delivered, DeliverRequest)
    assert delivered.request is invite
    tid = delivered.transaction_id
    assert tid is not None
    busy = response(invite, 486)
    fired = [(0.0, effect) for effect in layer.send_response(tid, busy, 0.0)] + run_timers(layer, 100.0)
    assert send_times(fired) == sends
    assert all(effect == SendMessage(message=busy, transaction_id=tid) for _, effect in fired[:-2])
    assert fired[-2:] == [
        (32.0, TransactionTimedOut(transaction_id=tid, timer=Timer.H)),
        (32.0, TransactionTerminated(transaction_id=tid)),
    ]
    assert len(layer) == 0


# State tables, walked step by step ---------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """At ``at``: do ``do``, expect these effects and then this state (None: the layer dropped it).

    ``do``: "start" (client), "request" (server: the request arrives, again if repeated), a status
    (client: received; server: sent by the TU), "ack" (the ACK of the last final response, same
    branch), "timers".
    """

    at: float
    do: str
    expect: tuple[str, ...]
    state: State | None


@dataclass(frozen=True)
class Walk:
    name: str
    method: str
    reliable: bool
    steps: tuple[Step, ...]


WALKS = [
    Walk(
        "invite client 486 udp",
        "INVITE",
        False,
        (
            Step(0.0, "start", ("send INVITE",), State.CALLING),
            Step(0.1, "100", ("deliver 100",), State.PROCEEDING),
            Step(0.2, "180", ("deliver 180",), State.PROCEEDING),
            Step(1.0, "486", ("send ACK", "deliver 486"), State.COMPLETED),
            Step(2.0, "486", ("send ACK",), State.COMPLETED),  # retransmission: ACK again, TU not told
            Step(2.5, "200", (), State.COMPLETED),
            Step(2.6, "180", (), State.COMPLETED),
            Step(32.9, "timers", (), State.COMPLETED),
            Step(33.0, "timers", ("terminated",), None),  # Timer D = 32 s
        ),
    ),
    Walk(
        "invite client 486 tcp",
        "INVITE",
        True,
        (
            Step(0.0, "start", ("send INVITE",), State.CALLING),
            Step(1.0, "486", ("send ACK", "deliver 486", "terminated"), None),  # Timer D = 0
        ),
    ),
    Walk(
        "invite client 2xx",
        "INVITE",
        False,
        (
            Step(0.0, "start", ("send INVITE",), State.CALLING),
            Step(1.0, "200", ("deliver 200",), State.ACCEPTED),
            Step(2.0, "200", ("deliver 200",), State.ACCEPTED),  # RFC 6026: 2xx retransmissions go up
            Step(3.0, "486", (), State.ACCEPTED),
            Step(3.1, "180", (), State.ACCEPTED),
            Step(32.0, "timers", (), State.ACCEPTED),  # Timer B does not run in Accepted
            Step(33.0, "timers", ("terminated",), None),  # Timer M
            Step(34.0, "200", ("stray 200",), None),
        ),
    ),
    Walk(
        "invite client 2xx tcp keeps timer M",
        "INVITE",
        True,
        (
            Step(0.0, "start", ("send INVITE",), State.CALLING),
            Step(5.0, "200", ("deliver 200",), State.ACCEPTED),
            Step(37.0, "timers", ("terminated",), None),
        ),
    ),
    Walk(
        "non-invite client udp",
        "BYE",
        False,
        (
            Step(0.0, "start", ("send BYE",), State.TRYING),
            Step(0.5, "timers", ("send BYE",), State.TRYING),
            Step(0.7, "200", ("deliver 200",), State.COMPLETED),
            Step(1.5, "timers", (), State.COMPLETED),  # E stopped
            Step(1.6, "200", (), State.COMPLETED),  # retransmission absorbed
            Step(5.7, "timers", ("terminated",), None),  # Timer K = T4
        ),
    ),
    Walk(
        "non-invite client tcp",
        "BYE",
        True,
        (
            Step(0.0, "start", ("send BYE",), State.TRYING),
            Step(0.7, "100", ("deliver 100",), State.PROCEEDING),
            Step(0.8, "481", ("deliver 481", "terminated"), None),  # Timer K = 0
        ),
    ),
    Walk(
        "invite server 486 udp",
        "INVITE",
        False,
        (
            Step(0.0, "request", ("deliver INVITE",), State.PROCEEDING),
            Step(0.1, "request", (), State.PROCEEDING),  # nothing sent yet: nothing to repeat
            Step(0.2, "100", ("send 100",), State.PROCEEDING),
            Step(0.3, "request", ("send 100",), State.PROCEEDING),
            Step(0.4, "180", ("send 180",), State.PROCEEDING),
            Step(0.6, "request", ("send 180",), State.PROCEEDING),  # the most recent provisional
            Step(1.0, "486", ("send 486",), State.COMPLETED),
            Step(1.2, "request", ("send 486",), State.COMPLETED),
            Step(1.5, "timers", ("send 486",), State.COMPLETED),  # Timer G
            Step(2.0, "ack", (), State.CONFIRMED),
            Step(2.1, "ack", (), State.CONFIRMED),
            Step(2.2, "request", (), State.CONFIRMED),
            Step(6.9, "timers", (), State.CONFIRMED),
            Step(7.0, "timers", ("terminated",), None),  # Timer I = T4
        ),
    ),
    Walk(
        "invite server 486 tcp",
        "INVITE",
        True,
        (
            Step(0.0, "request", ("deliver INVITE",), State.PROCEEDING),
            Step(1.0, "486", ("send 486",), State.COMPLETED),
            Step(31.0, "timers", (), State.COMPLETED),  # no Timer G on TCP
            Step(31.5, "ack", ("terminated",), None),  # Timer I = 0
        ),
    ),
    Walk(
        "invite server 2xx",
        "INVITE",
        False,
        (
            Step(0.0, "request", ("deliver INVITE",), State.PROCEEDING),
            Step(0.0, "100", ("send 100",), State.PROCEEDING),
            Step(1.0, "200", ("send 200",), State.ACCEPTED),
            Step(1.1, "request", (), State.ACCEPTED),  # RFC 6026 §7.1: absorbed
            Step(1.5, "200", ("send 200",), State.ACCEPTED),  # the TU retransmits the 2xx
            Step(2.0, "ack", ("deliver ACK",), State.ACCEPTED),
            Step(32.9, "timers", (), State.ACCEPTED),
            Step(33.0, "timers", ("terminated",), None),  # Timer L from the first 2xx
        ),
    ),
    Walk(
        "non-invite server udp",
        "OPTIONS",
        False,
        (
            Step(0.0, "request", ("deliver OPTIONS",), State.TRYING),
            Step(0.4, "request", (), State.TRYING),  # discarded
            Step(0.5, "100", ("send 100",), State.PROCEEDING),
            Step(0.6, "request", ("send 100",), State.PROCEEDING),
            Step(1.0, "200", ("send 200",), State.COMPLETED),
            Step(1.5, "request", ("send 200",), State.COMPLETED),
            Step(2.0, "500", (), State.COMPLETED),  # §17.2.2: further finals discarded
            Step(32.9, "timers", (), State.COMPLETED),
            Step(33.0, "timers", ("terminated",), None),  # Timer J = 64*T1
        ),
    ),
    Walk(
        "non-invite server tcp",
        "OPTIONS",
        True,
        (
            Step(0.0, "request", ("deliver OPTIONS",), State.TRYING),
            Step(1.0, "200", ("send 200", "terminated"), None),  # Timer J = 0
            Step(2.0, "request", ("deliver OPTIONS",), State.TRYING),  # a new transaction
        ),
    ),
]


@pytest.mark.parametrize("walk", WALKS, ids=lambda walk: walk.name)
def test_state_table_walk(walk: Walk) -> None:
    layer = TransactionLayer()
    origin = request(walk.method, transport="TCP" if walk.reliable else "UDP")
    tid: TransactionId | None = None
    final: Response | None = None
    for step in walk.steps:
        effects: list[Effect]
        if step.do == "start":
            tid, effects = layer.create_client(origin, step.at, reliable=walk.reliable)
        elif step.do == "request":
            effects = layer.receive(origin, step.at)
            if effects and isinstance(effects[0], DeliverRequest):
                tid = effects[0].transaction_id
        elif step.do == "timers":
            effects = layer.handle_timers(step.at)
        elif step.do == "ack":
            assert final is not None
            effects = layer.receive(build_ack(origin, final), step.at)
        else:
            message = response(origin, int(step.do))
            if message.status >= 200:
                final = message
            if walk.steps[0].do == "start":
                effects = layer.receive(message, step.at)
            else:
                assert tid is not None
                effects = layer.send_response(tid, message, step.at)
        assert describe_all(effects) == list(step.expect), (step, effects)
        assert tid is not None
        transaction = layer.transaction(tid)
        assert (None if transaction is None else transaction.state) is step.state, step


@pytest.mark.parametrize(
    ("sent", "then"),
    [
        (486, 200),  # after a 300-699 only the ACK may come
        (486, 180),
        (200, 486),  # after a 2xx only 2xx retransmissions
        (200, 180),
    ],
)
def test_invite_server_rejects_out_of_order_response(sent: int, then: int) -> None:
    invite = request()
    transaction = InviteServerTransaction(invite, reliable=False)
    transaction.send_response(response(invite, sent), 0.0)
    state, deadline = transaction.state, transaction.next_deadline()
    with pytest.raises(SipError, match="cannot take") as caught:
        transaction.send_response(response(invite, then), 1.0)
    assert caught.value.status_hint == 500
    assert (transaction.state, transaction.next_deadline()) == (state, deadline)


def test_non_invite_server_rejects_provisional_after_final() -> None:
    options = request("OPTIONS")
    transaction = NonInviteServerTransaction(options, reliable=False)
    transaction.send_response(response(options, 200), 0.0)
    with pytest.raises(SipError, match="cannot take"):
        transaction.send_response(response(options, 180), 1.0)


# Wait timers D, I, J, K, L, M, measured from an event at t=10 --------------------------------------


def _ict_final(status: int) -> Callable[[TransactionLayer, bool], TransactionId]:
    def scenario(layer: TransactionLayer, reliable: bool) -> TransactionId:
        invite = request()
        tid, _ = layer.create_client(invite, 0.0, reliable=reliable)
        layer.receive(response(invite, status), 10.0)
        return tid

    return scenario


def _nict_final(layer: TransactionLayer, reliable: bool) -> TransactionId:
    bye = request("BYE")
    tid, _ = layer.create_client(bye, 0.0, reliable=reliable)
    layer.receive(response(bye, 200), 10.0)
    return tid


def _server(method: str, status: int, *, ack: bool) -> Callable[[TransactionLayer, bool], TransactionId]:
    def scenario(layer: TransactionLayer, reliable: bool) -> TransactionId:
        origin = request(method, transport="TCP" if reliable else "UDP")
        [delivered] = layer.receive(origin, 0.0)
        assert isinstance(delivered, DeliverRequest)
        assert delivered.transaction_id is not None
        final = response(origin, status)
        layer.send_response(delivered.transaction_id, final, 1.0 if ack else 10.0)
        if ack:
            layer.receive(build_ack(origin, final), 10.0)
        return delivered.transaction_id

    return scenario


@pytest.mark.parametrize(
    ("timer", "scenario", "state", "udp_deadline", "tcp_deadline"),
    [
        ("D", _ict_final(486), State.COMPLETED, 42.0, None),
        ("M", _ict_final(200), State.ACCEPTED, 42.0, 42.0),
        ("K", _nict_final, State.COMPLETED, 15.0, None),
        ("I", _server("INVITE", 486, ack=True), State.CONFIRMED, 15.0, None),
        ("J", _server("OPTIONS", 200, ack=False), State.COMPLETED, 42.0, None),
        ("L", _server("INVITE", 200, ack=False), State.ACCEPTED, 42.0, 42.0),
    ],
)
def test_wait_timer(
    timer: str,
    scenario: Callable[[TransactionLayer, bool], TransactionId],
    state: State,
    udp_deadline: float,
    tcp_deadline: float | None,
) -> None:
    for reliable, deadline in ((False, udp_deadline), (True, tcp_deadline)):
        layer = TransactionLayer()
        tid = scenario(layer, reliable)
        transaction = layer.transaction(tid)
        if deadline is None:  # zero on a reliable transport: ended within the same call
            assert transaction is None, timer
            continue
        assert transaction is not None
        assert (transaction.state, transaction.next_deadline(), layer.next_deadline()) == (
            state,
            deadline,
            deadline,
        )
        assert layer.handle_timers(deadline - 0.001) == []
        assert layer.handle_timers(deadline) == [TransactionTerminated(transaction_id=tid)]
        assert len(layer) == 0


# The ACK of a non-2xx final response (§17.1.1.3) ---------------------------------------------------


def test_ack_for_486_field_by_field() -> None:
    invite = request(
        extra_headers=(
            "Via: SIP/2.0/UDP proxy.atlanta.example.com;branch=z9hG4bKprx1, SIP/2.0/UDP 192.0.2.1\n"
            "Route: <sip:p1.example.com;lr>\n"
            "Route: <sip:p2.example.com;lr>, <sip:p3.example.com;lr>\n"
        ),
    )
    assert len(invite.vias) == 3
    busy = response(invite, 486, to_tag="b0b")
    layer = TransactionLayer()
    tid, _ = layer.create_client(invite, 0.0, reliable=False)
    effects = layer.receive(busy, 1.0)
    assert len(effects) == 2
    sent, delivered = effects
    assert delivered == DeliverResponse(response=busy, transaction_id=tid)
    assert isinstance(sent, SendMessage)
    ack = sent.message
    assert isinstance(ack, Request)
    assert ack == build_ack(invite, busy)
    assert ack.method == "ACK"
    assert ack.uri is invite.uri
    assert list(ack.headers) == [
        ("Via", "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds"),
        ("Route", "<sip:p1.example.com;lr>"),
        ("Route", "<sip:p2.example.com;lr>, <sip:p3.example.com;lr>"),
        ("Max-Forwards", "70"),
        ("From", "Alice <sip:alice@atlanta.example.com>;tag=1928301774"),
        ("To", "Bob <sip:bob@biloxi.example.com>;tag=b0b"),
        ("Call-ID", sip_samples.CALL_ID),
        ("CSeq", "314159 ACK"),
        ("Content-Length", "0"),
    ]
    assert ack.body == b""
    reparsed = parse_message(bytes(ack))
    assert isinstance(reparsed, Request)
    assert reparsed.cseq.method == "ACK"
    # The retransmitted 486 is answered with the very same ACK.
    assert layer.receive(busy, 2.0) == [SendMessage(message=ack, transaction_id=tid)]


# Matching (§17.1.3, §17.2.3, §9.2) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "make", "expect"),
    [
        ("same branch and method", lambda inv: response(inv, 180), "deliver 180"),
        (
            "same branch, CSeq method CANCEL",
            lambda inv: response(cancel_for(inv), 200),
            "stray 200",
        ),
        ("other branch", lambda inv: response(request(branch="z9hG4bKother"), 180), "stray 180"),
        ("no branch", lambda inv: response(request(branch=None), 180), "stray 180"),
    ],
)
def test_client_response_matching(name: str, make: Callable[[Request], Response], expect: str) -> None:
    layer = TransactionLayer()
    invite = request()
    layer.create_client(invite, 0.0, reliable=False)
    assert describe_all(layer.receive(make(invite), 1.0)) == [expect], name


def test_client_ids_differ_by_method_for_the_same_branch() -> None:
    layer = TransactionLayer()
    invite = request()
    invite_id, _ = layer.create_client(invite, 0.0, reliable=False)
    cancel_id, _ = layer.create_client(cancel_for(invite), 1.0, reliable=False)
    assert invite_id != cancel_id
    assert layer.receive(response(cancel_for(invite), 200), 2.0) == [
        DeliverResponse(response=response(cancel_for(invite), 200), transaction_id=cancel_id)
    ]
    assert layer.receive(response(invite, 487), 2.1)[1] == DeliverResponse(
        response=response(invite, 487), transaction_id=invite_id
    )


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (request("ACK"), "ACK is not sent"),
        (request(branch="1234"), "z9hG4bK"),
        (request(branch=None), "z9hG4bK"),
    ],
)
def test_create_client_rejects(bad: Request, reason: str) -> None:
    with pytest.raises(SipError, match=reason):
        TransactionLayer().create_client(bad, 0.0, reliable=False)


def test_create_client_twice_rejected() -> None:
    layer = TransactionLayer()
    layer.create_client(request(), 0.0, reliable=False)
    with pytest.raises(SipError, match="already exists"):
        layer.create_client(request(), 0.0, reliable=False)


INVITE = request()
BUSY = response(INVITE, 486)


@pytest.mark.parametrize(
    ("name", "incoming", "expect", "same_transaction", "count_after"),
    [
        ("retransmitted INVITE", INVITE, ["send 486"], True, 1),
        ("ACK of the 486", build_ack(INVITE, BUSY), [], True, 1),
        (
            "ACK with a new branch (a 2xx ACK)",
            build_ack(request(branch="z9hG4bKack2"), BUSY),
            ["deliver ACK"],
            False,
            1,
        ),
        ("same branch, other sent-by", request(sent_by="192.0.2.99:5070"), ["deliver INVITE"], False, 2),
        (
            "same branch, other port",
            request(sent_by="pc33.atlanta.example.com:5070"),
            ["deliver INVITE"],
            False,
            2,
        ),
        (
            "same branch, sent-by in upper case",
            request(sent_by="PC33.Atlanta.Example.COM:5060"),
            ["send 486"],
            True,
            1,
        ),
        ("same branch, method OPTIONS", request("OPTIONS"), ["deliver OPTIONS"], False, 2),
        ("CANCEL", cancel_for(INVITE), ["deliver CANCEL"], False, 2),
        ("other branch", request(branch="z9hG4bKnew"), ["deliver INVITE"], False, 2),
    ],
)
def test_server_request_matching(
    name: str, incoming: Request, expect: list[str], same_transaction: bool, count_after: int
) -> None:
    layer = TransactionLayer()
    [delivered] = layer.receive(INVITE, 0.0)
    assert isinstance(delivered, DeliverRequest)
    invite_id = delivered.transaction_id
    assert invite_id is not None
    layer.send_response(invite_id, BUSY, 0.0)
    effects = layer.receive(incoming, 0.1)
    assert describe_all(effects) == expect, name
    if same_transaction:
        assert all(getattr(effect, "transaction_id", invite_id) == invite_id for effect in effects)
    else:
        [new] = effects
        assert isinstance(new, DeliverRequest)
        assert new.transaction_id != invite_id
        if incoming.method == "ACK":
            assert new.transaction_id is None
    assert len(layer) == count_after


def test_ack_after_invite_transaction_ended_goes_to_tu() -> None:
    layer = TransactionLayer()
    [delivered] = layer.receive(request(transport="TCP"), 0.0)
    assert isinstance(delivered, DeliverRequest)
    assert delivered.transaction_id is not None
    ack = build_ack(request(transport="TCP"), BUSY)
    assert layer.receive(ack, 1.0) == []  # matched, but meaningless in Proceeding: absorbed
    layer.send_response(delivered.transaction_id, BUSY, 2.0)
    # Absorbed: Confirmed, where Timer I = 0 on TCP ends it.
    assert layer.receive(ack, 3.0) == [TransactionTerminated(transaction_id=delivered.transaction_id)]
    assert len(layer) == 0
    assert layer.receive(ack, 4.0) == [DeliverRequest(request=ack, transaction_id=None)]


def test_ack_in_accepted_carries_the_invite_transaction() -> None:
    layer = TransactionLayer()
    [delivered] = layer.receive(INVITE, 0.0)
    assert isinstance(delivered, DeliverRequest)
    tid = delivered.transaction_id
    assert tid is not None
    ok = response(INVITE, 200)
    layer.send_response(tid, ok, 1.0)
    ack = build_ack(INVITE, ok)  # a UA that wrongly reuses the INVITE branch for the 2xx ACK
    assert layer.receive(ack, 2.0) == [DeliverRequest(request=ack, transaction_id=tid)]


def test_cancel_gets_its_own_transaction_and_finds_the_invite() -> None:
    layer = TransactionLayer()
    [invite_delivered] = layer.receive(INVITE, 0.0)
    assert isinstance(invite_delivered, DeliverRequest)
    invite_id = invite_delivered.transaction_id
    assert invite_id is not None
    layer.send_response(invite_id, response(INVITE, 180), 0.1)
    cancel = cancel_for(INVITE)
    [cancel_delivered] = layer.receive(cancel, 1.0)
    assert isinstance(cancel_delivered, DeliverRequest)
    cancel_id = cancel_delivered.transaction_id
    assert cancel_id is not None
    assert cancel_id != invite_id
    assert layer.find_invite_server_for_cancel(cancel) == invite_id
    ok = response(cancel, 200)
    assert layer.send_response(cancel_id, ok, 1.1) == [SendMessage(message=ok, transaction_id=cancel_id)]
    terminated = response(INVITE, 487)
    assert describe_all(layer.send_response(invite_id, terminated, 1.1)) == ["send 487"]
    assert layer.receive(cancel, 1.2) == [SendMessage(message=ok, transaction_id=cancel_id)]
    # A CANCEL for an INVITE the layer never saw: the TU answers 481.
    assert layer.find_invite_server_for_cancel(cancel_for(request(branch="z9hG4bKunknown"))) is None


# RFC 2543 fallback (§17.2.3): no z9hG4bK cookie in the top Via branch.

LEGACY_INVITE = request(branch="1234")
LEGACY_BUSY = response(LEGACY_INVITE, 486, to_tag="xyz")


@pytest.mark.parametrize(
    ("name", "incoming", "expect", "same_transaction"),
    [
        ("retransmitted INVITE", request(branch="1234"), ["send 486"], True),
        ("ACK with the response's To tag", build_ack(LEGACY_INVITE, LEGACY_BUSY), [], True),
        (
            "ACK with another To tag",
            build_ack(LEGACY_INVITE, response(LEGACY_INVITE, 486, to_tag="o")),
            ["deliver ACK"],
            False,
        ),
        ("other Call-ID", request(branch="1234", call_id="other@host"), ["deliver INVITE"], False),
        ("other CSeq", request(branch="1234", cseq=314160), ["deliver INVITE"], False),
        (
            "other Request-URI",
            request(branch="1234", uri="sip:carol@chicago.example.com"),
            ["deliver INVITE"],
            False,
        ),
        ("other To tag", request(branch="1234", to_tag="t2"), ["deliver INVITE"], False),
        ("other top Via", request(branch="1234", sent_by="192.0.2.7"), ["deliver INVITE"], False),
        ("CANCEL", cancel_for(LEGACY_INVITE), ["deliver CANCEL"], False),
    ],
)
def test_rfc2543_matching(name: str, incoming: Request, expect: list[str], same_transaction: bool) -> None:
    layer = TransactionLayer()
    [delivered] = layer.receive(LEGACY_INVITE, 0.0)
    assert isinstance(delivered, DeliverRequest)
    invite_id = delivered.transaction_id
    assert invite_id is not None
    layer.send_response(invite_id, LEGACY_BUSY, 0.0)
    effects = layer.receive(incoming, 0.1)
    assert describe_all(effects) == expect, name
    if same_transaction:
        transaction = layer.transaction(invite_id)
        assert transaction is not None
        assert transaction.state is (State.CONFIRMED if incoming.method == "ACK" else State.COMPLETED)
    else:
        [new] = effects
        assert isinstance(new, DeliverRequest)
        assert new.transaction_id != invite_id


def test_rfc2543_cancel_and_ack_after_end() -> None:
    layer = TransactionLayer()
    invite = request(branch=None)
    [delivered] = layer.receive(invite, 0.0)
    assert isinstance(delivered, DeliverRequest)
    invite_id = delivered.transaction_id
    assert invite_id is not None
    assert layer.find_invite_server_for_cancel(cancel_for(invite)) == invite_id
    busy = response(invite, 486, to_tag="xyz")
    layer.send_response(invite_id, busy, 0.0)
    ack = build_ack(invite, busy)
    assert layer.receive(ack, 1.0) == []
    run_timers(layer, 10.0)  # Timer I
    assert len(layer) == 0
    assert layer.receive(ack, 11.0) == [DeliverRequest(request=ack, transaction_id=None)]


def test_send_response_to_unknown_transaction_raises() -> None:
    layer = TransactionLayer()
    tid, _ = layer.create_client(request("OPTIONS"), 0.0, reliable=False)
    with pytest.raises(SipError, match="no server transaction") as caught:
        layer.send_response(tid, response(request("OPTIONS"), 200), 1.0)
    assert caught.value.status_hint == 500


def test_layer_merges_deadlines() -> None:
    layer = TransactionLayer()
    invite = request()
    invite_id, _ = layer.create_client(invite, 0.0, reliable=False)
    bye = request("BYE", branch="z9hG4bKbye")
    bye_id, _ = layer.create_client(bye, 0.2, reliable=False)
    assert layer.next_deadline() == 0.5
    assert layer.handle_timers(0.5) == [SendMessage(message=invite, transaction_id=invite_id)]
    assert layer.next_deadline() == 0.7
    layer.receive(response(bye, 200), 0.6)  # BYE done: Timer K at 5.6, E stale in the heap
    assert layer.next_deadline() == 1.5
    fired = run_timers(layer, 6.0)
    assert [(at, describe(effect)) for at, effect in fired] == [
        (1.5, "send INVITE"),
        (3.5, "send INVITE"),
        (5.6, "terminated"),
    ]
    assert fired[-1][1] == TransactionTerminated(transaction_id=bye_id)
    assert len(layer) == 1


def test_reliability_read_from_via_or_given() -> None:
    for transport, given_reliable, expect in [
        ("UDP", None, ["send 200"]),
        ("TCP", None, ["send 200", "terminated"]),
        ("TLS", None, ["send 200", "terminated"]),
        ("UDP", True, ["send 200", "terminated"]),
        ("TCP", False, ["send 200"]),
    ]:
        layer = TransactionLayer()
        options = request("OPTIONS", transport=transport)
        [delivered] = layer.receive(options, 0.0, reliable=given_reliable)
        assert isinstance(delivered, DeliverRequest)
        assert delivered.transaction_id is not None
        effects = layer.send_response(delivered.transaction_id, response(options, 200), 0.0)
        assert describe_all(effects) == expect, (transport, given_reliable)


# Properties --------------------------------------------------------------------------------------

client_inputs = st.lists(
    st.tuples(st.floats(min_value=0.0, max_value=40.0), st.sampled_from([100, 180, 200, 302, 486, 503])),
    max_size=8,
)


@given(method=st.sampled_from(["INVITE", "OPTIONS"]), reliable=st.booleans(), inputs=client_inputs)
def test_client_always_ends_once(method: str, reliable: bool, inputs: list[tuple[float, int]]) -> None:
    layer = TransactionLayer()
    origin = request(method)
    tid, effects = layer.create_client(origin, 0.0, reliable=reliable)
    ours: list[Effect] = list(effects)
    for at, status in sorted(inputs):
        ours += [e for _, e in run_timers(layer, at)]
        ours += [
            e for e in layer.receive(response(origin, status), at) if not isinstance(e, DeliverStrayResponse)
        ]
    transaction = layer.transaction(tid)
    if transaction is not None and transaction.state is State.PROCEEDING and method == "INVITE":
        # §17.1.1.2: no timer runs in Proceeding; the TU cancels, and the 487 ends it.
        ours += layer.receive(response(origin, 487), 40.0)
    ours += [e for _, e in run_timers(layer, 1000.0)]
    assert ours[-1] == TransactionTerminated(transaction_id=tid)
    assert sum(isinstance(e, TransactionTerminated) for e in ours) == 1
    assert len(layer) == 0
    assert layer.next_deadline() is None
    finals = [e.response.status for e in ours if isinstance(e, DeliverResponse) and e.response.status >= 300]
    assert len(finals) <= 1  # a 300-699 reaches the TU once; retransmissions are ACKed, not delivered
    sent = {e.message.method for e in ours if isinstance(e, SendMessage) and isinstance(e.message, Request)}
    assert sent <= {method, "ACK"}


server_inputs = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=40.0),
        st.sampled_from(["request", "ack", "100", "180", "200", "486"]),
    ),
    max_size=8,
)


@given(method=st.sampled_from(["INVITE", "OPTIONS"]), reliable=st.booleans(), inputs=server_inputs)
def test_server_always_ends_once(method: str, reliable: bool, inputs: list[tuple[float, str]]) -> None:
    transaction: InviteServerTransaction | NonInviteServerTransaction
    origin = request(method)
    if method == "INVITE":
        transaction = InviteServerTransaction(origin, reliable=reliable)
    else:
        transaction = NonInviteServerTransaction(origin, reliable=reliable)
    effects: list[Effect] = []
    last = 0.0
    for at, do in sorted(inputs):
        effects += [e for _, e in run_timers(transaction, at)]
        last = at
        if transaction.state is State.TERMINATED:
            break
        if do == "request":
            effects += transaction.receive(origin, at)
        elif do == "ack":
            final = transaction.last_response or response(origin, 486)
            effects += transaction.receive(build_ack(origin, final), at)
        else:
            before = (transaction.state, transaction.next_deadline())
            try:
                effects += transaction.send_response(response(origin, int(do)), at)
            except SipError:
                assert (transaction.state, transaction.next_deadline()) == before
    if transaction.state in (State.TRYING, State.PROCEEDING):
        effects += transaction.send_response(response(origin, 486), last)
    effects += [e for _, e in run_timers(transaction, 1000.0)]
    assert transaction.state is State.TERMINATED
    assert effects[-1] == TransactionTerminated(transaction_id=transaction.transaction_id)
    assert sum(isinstance(e, TransactionTerminated) for e in effects) == 1
    assert transaction.next_deadline() is None
