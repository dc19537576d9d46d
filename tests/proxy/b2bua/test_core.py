"""The B2BUA core on virtual time: what it sends to each leg, and that every call gives its ports back."""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from proxy.b2bua.call import Call, Dialog
from proxy.b2bua.core import ALLOWED_METHODS
from proxy.b2bua.effects import (
    CallEnded,
    CallStarted,
    CloseMedia,
    Effect,
    LawTranslation,
    LogEvent,
    MediaLeg,
    OpenMedia,
    SendSip,
    SetMediaRemote,
    TranslateAudio,
)
from proxy.b2bua.settings import Address, Side
from proxy.sip import Request, Response
from proxy.sip.auth import Challenge, Credentials, build_credentials, make_challenge, verify_credentials
from proxy.sip.body import ACCEPTED_BODY_TYPES
from proxy.sip.sdp import Origin, SessionDescription
from proxy.sip.transaction import TimerConfig
from proxy.sip.uri import SipUri, parse_uri
from tests.proxy.b2bua.harness import (
    BOUNDARY,
    CALLEE_ANSWER,
    CALLER_OFFER,
    CARRIER,
    CARRIER_LISTEN,
    PBX,
    PBX_LISTEN,
    T0,
    FakeUa,
    FakeUac,
    FakeUas,
    Harness,
    ack_of_failure,
    cancel_of,
    carrier_with_credentials,
    make_settings,
    multipart_with_isup,
    non_sip,
    origin_of,
    sdp,
    sdp_without_origin,
    sent_sip,
    sip_summary,
    trunk_account,
    wire,
)

DIALLED = "4930123456"
A_PORT = 20000  # the first call's ports, in pool order: a leg, then b leg
B_PORT = 20002
CALLER_MEDIA: Address = ("127.0.0.2", 40000)
CALLEE_MEDIA: Address = ("127.0.0.3", 30000)

# The caller's offer after anchoring: GSM and G729 (and G729's fmtp) gone, order kept.
ANCHORED_OFFER_LINES = [
    "v=0",
    "s=call",
    "c=IN IP4 127.0.0.1",
    "t=0 0",
    f"m=audio {B_PORT} RTP/AVP 0 8 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=ptime:20",
    "a=sendrecv",
]
ANCHORED_ANSWER_LINES = [
    "v=0",
    "s=answer",
    "c=IN IP4 127.0.0.1",
    "t=0 0",
    f"m=audio {A_PORT} RTP/AVP 0 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=sendrecv",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Way:
    """Where a call comes from and goes to."""

    name: str
    caller: Address
    caller_side: Side
    callee: Address
    callee_side: Side

    @property
    def a_listener(self) -> Address:
        return PBX_LISTEN if self.caller_side is Side.PBX else CARRIER_LISTEN

    @property
    def b_listener(self) -> Address:
        return PBX_LISTEN if self.callee_side is Side.PBX else CARRIER_LISTEN


OUTBOUND = Way(name="outbound", caller=PBX, caller_side=Side.PBX, callee=CARRIER, callee_side=Side.CARRIER)
INBOUND = Way(name="inbound", caller=CARRIER, caller_side=Side.CARRIER, callee=PBX, callee_side=Side.PBX)
WAYS = pytest.mark.parametrize("way", [OUTBOUND, INBOUND], ids=lambda way: way.name)


# Steps -----------------------------------------------------------------------------------------


def parties(h: Harness, way: Way = OUTBOUND) -> tuple[FakeUac, FakeUas]:
    caller = FakeUac(h, address=way.caller, side=way.caller_side)
    callee = FakeUas(h, address=way.callee, side=way.callee_side)
    return caller, callee


def dial(h: Harness, way: Way = OUTBOUND, *, body: bytes = CALLER_OFFER) -> tuple[FakeUac, FakeUas]:
    """The caller's INVITE reaches callherald and callherald's INVITE reaches the callee."""
    caller, callee = parties(h, way)
    caller.send(caller.invite(DIALLED, body=body))
    callee.take_invite()
    return caller, callee


def ring(caller: FakeUac, callee: FakeUas) -> None:
    callee.ring()
    caller.learn(caller.last_response("INVITE", 180))


def connect(h: Harness, way: Way = OUTBOUND) -> tuple[FakeUac, FakeUas]:
    """A confirmed call: INVITE, 180, 200, ACK; both peers' inboxes read."""
    caller, callee = dial(h, way)
    ring(caller, callee)
    callee.answer()
    caller.ack_answer()
    caller.new_messages()
    callee.new_messages()
    return caller, callee


def hang_up(caller: FakeUac, callee: FakeUas) -> None:
    """The caller says BYE and the callee answers callherald's BYE."""
    caller.send(caller.request("BYE"))
    callee.reply(callee.last_request("BYE"), 200)


def only(messages: list[Request | Response]) -> Request | Response:
    assert len(messages) == 1, messages
    return messages[0]


def times_of(h: Harness, peer: FakeUa, label_: str) -> list[float]:
    """Seconds after T0 at which callherald sent ``label_`` (``200 INVITE``, ``BYE``...) to ``peer``."""
    return [
        round(at - T0, 3)
        for at, effect in h.log
        for destination, text in sip_summary([effect])
        if destination == peer.address and text == label_
    ]


# Basic call ------------------------------------------------------------------------------------


@WAYS
def test_invite_is_answered_100_at_once_and_opens_media(way: Way) -> None:
    h = Harness()
    caller, _ = parties(h, way)
    effects = caller.send(caller.invite(DIALLED))

    assert sip_summary(effects) == [(way.caller, "100 INVITE"), (way.callee, "INVITE")]
    trying = only(caller.new_messages())
    assert isinstance(trying, Response)
    assert trying.to.tag is None
    assert caller.invite_request is not None
    assert trying.headers.fields("via") == caller.invite_request.headers.fields("via")
    ref = h.call_ref()
    invite_to_b = next(
        effect.message
        for effect in effects
        if isinstance(effect, SendSip)
        and isinstance(effect.message, Request)
        and effect.message.method == "INVITE"
    )
    assert non_sip(effects) == [
        OpenMedia(call_ref=ref, a_port=A_PORT, b_port=B_PORT),
        SetMediaRemote(call_ref=ref, leg=MediaLeg.A, remote=CALLER_MEDIA),
        CallStarted(
            call_ref=ref,
            direction=way.name,
            caller="sip:201@127.0.0.1",
            callee=f"sip:{DIALLED}@{way.a_listener[0]}:{way.a_listener[1]}",
            a_call_id=caller.invite_request.call_id,
            b_call_id=invite_to_b.call_id,
        ),
    ]
    assert h.b2bua.ports_available == h.b2bua.ports_capacity - 2
    assert h.b2bua.active_calls == 1
    h.shutdown()
    h.assert_idle()


def test_a_pair_another_program_holds_is_passed_over_before_any_sdp_names_it() -> None:
    held = {A_PORT, A_PORT + 4}  # the first and third pairs: the call gets the second and fourth
    asked: list[int] = []

    def usable(port: int) -> bool:
        asked.append(port)
        return port not in held

    h = Harness(port_usable=usable)
    _, callee = dial(h, INBOUND)
    opened = [effect for effect in h.effects if isinstance(effect, OpenMedia)]
    assert opened == [OpenMedia(call_ref=h.call_ref(), a_port=A_PORT + 2, b_port=A_PORT + 6)]
    assert asked == [A_PORT, A_PORT + 2, A_PORT + 4, A_PORT + 6]
    assert b"m=audio 20006 " in callee.invite.body
    assert h.b2bua.ports_passed_over == 2
    assert h.b2bua.ports_available == h.b2bua.ports_capacity - 2
    h.shutdown()
    h.assert_idle()


@WAYS
def test_b_leg_invite_is_a_new_dialog_of_ours(way: Way) -> None:
    h = Harness()
    caller, callee = dial(h, way)
    a_invite, b_invite = caller.invite_request, callee.invite
    assert a_invite is not None

    host, port = way.callee
    assert str(b_invite.uri) == f"sip:{DIALLED}@{host}:{port}"
    assert b_invite.call_id != a_invite.call_id
    assert b_invite.call_id.endswith("@callherald")
    assert b_invite.from_.tag not in (None, a_invite.from_.tag)
    assert b_invite.headers.get("from") == f'"Alice" <sip:201@127.0.0.1>;tag={b_invite.from_.tag}'
    assert b_invite.headers.get("to") == f"<sip:{DIALLED}@127.0.0.1>"
    (via,) = b_invite.vias
    assert via.sent_by == way.b_listener
    assert via.transport == "UDP"
    assert via.branch is not None
    assert via.branch.startswith("z9hG4bK")
    assert len(via.branch) > len("z9hG4bK")
    assert b_invite.headers.get("contact") == f"<sip:callherald@{way.b_listener[0]}:{way.b_listener[1]}>"
    assert b_invite.max_forwards == 69
    assert b_invite.headers.get("cseq") == "1 INVITE"
    assert b_invite.headers.get("content-type") == "application/sdp"
    h.shutdown()
    h.assert_idle()


@WAYS
def test_b_leg_offer_is_anchored_and_codecs_filtered(way: Way) -> None:
    h = Harness()
    _, callee = dial(h, way)
    body = callee.invite.body

    assert sdp_without_origin(body) == ANCHORED_OFFER_LINES
    origin = origin_of(body)
    assert origin == Origin(
        username="callherald", sess_id=origin.sess_id, sess_version=1, addrtype="IP4", address="127.0.0.1"
    )
    assert origin.sess_id.isdigit()
    h.shutdown()
    h.assert_idle()


def test_only_listed_headers_are_copied_to_the_b_leg() -> None:
    h = Harness()
    caller, callee = parties(h)
    extra = (
        ("P-Asserted-Identity", "<sip:+4930999@pbx.example>"),
        ("Privacy", "id"),
        ("X-Internal-Extension", "201"),
        ("Record-Route", "<sip:10.0.0.9;lr>"),
    )
    caller.send(caller.invite(DIALLED, extra=extra))
    b_invite = callee.take_invite()

    assert b_invite.headers.fields("p-asserted-identity") == ["<sip:+4930999@pbx.example>"]
    assert b_invite.headers.fields("privacy") == ["id"]
    assert b_invite.headers.fields("x-internal-extension") == []
    assert b_invite.headers.fields("record-route") == []
    assert b_invite.headers.fields("allow") == [ALLOWED_METHODS]
    h.shutdown()
    h.assert_idle()


@pytest.mark.parametrize(("max_forwards", "expected"), [(70, 69), (1, 0), (None, 70)])
def test_max_forwards_is_decremented(max_forwards: int | None, expected: int) -> None:
    h = Harness()
    caller, callee = parties(h)
    caller.send(caller.invite(DIALLED, max_forwards=max_forwards))
    assert callee.take_invite().max_forwards == expected
    h.shutdown()
    h.assert_idle()


@WAYS
def test_provisional_is_relayed_with_the_a_leg_tag(way: Way) -> None:
    h = Harness()
    caller, callee = dial(h, way)
    caller.new_messages()
    effects = callee.ring()

    assert sip_summary(effects) == [(way.caller, "180 INVITE")]
    ringing = only(caller.new_messages())
    assert isinstance(ringing, Response)
    assert caller.invite_request is not None
    assert ringing.headers.fields("via") == caller.invite_request.headers.fields("via")
    assert ringing.call_id == caller.call_id
    assert ringing.from_.tag == "caller-tag"
    assert ringing.to.tag is not None
    assert ringing.to.tag != "callee-tag"
    assert ringing.headers.get("contact") == f"<sip:callherald@{way.a_listener[0]}:{way.a_listener[1]}>"
    assert ringing.body == b""
    assert non_sip(effects) == []

    callee.answer()
    assert caller.last_response("INVITE", 200).to.tag == ringing.to.tag
    caller.ack_answer()
    hang_up(caller, callee)
    h.assert_idle()


@WAYS
def test_answer_is_relayed_with_sdp_anchored_to_the_a_port(way: Way) -> None:
    h = Harness()
    caller, callee = dial(h, way)
    ring(caller, callee)
    caller.new_messages()
    effects = callee.answer()

    assert sip_summary(effects) == [(way.callee, "ACK"), (way.caller, "200 INVITE")]
    ok = only(caller.new_messages())
    assert isinstance(ok, Response)
    assert ok.reason == "OK"
    assert ok.headers.get("content-type") == "application/sdp"
    assert ok.headers.get("contact") == f"<sip:callherald@{way.a_listener[0]}:{way.a_listener[1]}>"
    assert ok.headers.get("allow") == ALLOWED_METHODS
    assert sdp_without_origin(ok.body) == ANCHORED_ANSWER_LINES
    assert origin_of(ok.body).username == "callherald"
    assert origin_of(ok.body).sess_version == 1
    assert origin_of(ok.body).sess_id != origin_of(callee.invite.body).sess_id
    assert non_sip(effects) == [SetMediaRemote(call_ref=h.call_ref(), leg=MediaLeg.B, remote=CALLEE_MEDIA)]

    caller.ack_answer()
    hang_up(caller, callee)
    h.assert_idle()


@WAYS
def test_2xx_from_b_is_acked_at_its_contact(way: Way) -> None:
    h = Harness()
    caller, callee = dial(h, way)
    ring(caller, callee)
    callee.answer()

    ack = callee.last_request("ACK")
    assert str(ack.uri) == f"sip:callee@{way.callee[0]}:{way.callee[1]}"
    assert ack.headers.get("cseq") == "1 ACK"
    assert ack.call_id == callee.call_id
    assert ack.from_.tag == callee.invite.from_.tag
    assert ack.to.tag == "callee-tag"
    assert ack.top_via.branch != callee.invite.top_via.branch  # a new transaction (§13.2.2.4)
    assert ack.body == b""

    caller.ack_answer()
    hang_up(caller, callee)
    h.assert_idle()


def test_ack_from_a_confirms_without_sending_anything() -> None:
    h = Harness()
    caller, callee = dial(h)
    ring(caller, callee)
    callee.answer()
    effects = caller.ack_answer()

    assert effects == []
    assert h.b2bua.active_calls == 1
    hang_up(caller, callee)
    h.assert_idle()


def test_invite_retransmission_is_absorbed() -> None:
    h = Harness()
    caller, callee = dial(h)
    assert caller.invite_request is not None
    effects = caller.send(caller.invite_request)

    assert sip_summary(effects) == [(PBX, "100 INVITE")]
    assert len(callee.requests("INVITE")) == 1
    ring(caller, callee)
    effects = caller.send(caller.invite_request)
    assert sip_summary(effects) == [(PBX, "180 INVITE")]
    h.shutdown()
    h.assert_idle()


def test_100_from_b_is_not_relayed() -> None:
    h = Harness()
    caller, callee = dial(h)
    assert callee.reply(callee.invite, 100) == []
    assert caller.statuses() == [100]
    h.shutdown()
    h.assert_idle()


def test_early_media_sdp_is_anchored_to_the_a_port() -> None:
    h = Harness()
    caller, callee = dial(h)
    effects = callee.ring(183, body=CALLEE_ANSWER)

    assert sip_summary(effects) == [(PBX, "183 INVITE")]
    progress = caller.last_response("INVITE", 183)
    assert progress.headers.get("content-type") == "application/sdp"
    assert sdp_without_origin(progress.body) == ANCHORED_ANSWER_LINES
    assert non_sip(effects) == [SetMediaRemote(call_ref=h.call_ref(), leg=MediaLeg.B, remote=CALLEE_MEDIA)]
    callee.answer()
    assert sdp_without_origin(caller.last_response("INVITE", 200).body) == ANCHORED_ANSWER_LINES
    caller.ack_answer()
    hang_up(caller, callee)
    h.assert_idle()


# The 2xx answering with another codec than the 183: a changed session.
CALLEE_PCMA_ANSWER = CALLEE_ANSWER.replace(b"RTP/AVP 0 101", b"RTP/AVP 8 101").replace(
    b"a=rtpmap:0 PCMU/8000", b"a=rtpmap:8 PCMA/8000"
)


@pytest.mark.parametrize(("answer", "same_version"), [(CALLEE_ANSWER, True), (CALLEE_PCMA_ANSWER, False)])
def test_the_2xx_repeating_the_early_answer_keeps_its_version(answer: bytes, same_version: bool) -> None:
    # RFC 3264 §8: the version changes with the session, not with every message that carries it.
    h = Harness()
    caller, callee = dial(h)
    callee.ring(183, body=CALLEE_ANSWER)
    callee.answer(body=answer)
    early = SessionDescription.parse(caller.last_response("INVITE", 183).body).origin
    final = SessionDescription.parse(caller.last_response("INVITE", 200).body).origin
    assert final.sess_id == early.sess_id
    assert (final.sess_version == early.sess_version) is same_version
    caller.ack_answer()
    hang_up(caller, callee)
    h.assert_idle()


def test_a_2xx_without_sdp_after_an_early_answer_gives_the_caller_that_answer() -> None:
    # The callee answered in its 183 only; the caller, which offered in its INVITE, gets the
    # answer in the 2xx (RFC 3261 §13.2.1), unchanged and with the same version (RFC 3264 §8).
    h = Harness()
    caller, callee = dial(h)
    callee.ring(183, body=CALLEE_ANSWER)
    effects = callee.answer(body=b"")

    assert sip_summary(effects) == [(CARRIER, "ACK"), (PBX, "200 INVITE")]
    ok = caller.last_response("INVITE", 200)
    assert ok.headers.get("content-type") == "application/sdp"
    assert ok.body == caller.last_response("INVITE", 183).body
    caller.ack_answer()
    hang_up(caller, callee)
    h.assert_idle()


# 2xx retransmission (RFC 3261 §13.3.1.4) -------------------------------------------------------


def reliable_warning(ref: str, side: Side, status: int = 183, method: str = "INVITE") -> LogEvent:
    return LogEvent(
        level="warning",
        text=f"the {side} side sent its {status} to the {method} reliably (Require: 100rel) although"
        " callherald did not offer 100rel (RFC 3262 §3): it gets no PRACK, and may resend it and give up"
        " on the request",
        call_ref=ref,
    )


@WAYS
def test_a_reliable_provisional_response_callherald_did_not_ask_for_is_logged_once(way: Way) -> None:
    # RFC 3262 §3: only a UAC that offered 100rel may get one. callherald sends no PRACK, so the
    # party resends it (and, in 64*T1, may give up on the call): the log says why, once.
    h = Harness()
    caller, callee = dial(h, way)
    ref = h.call_ref()
    assert "100rel" not in callee.invite.option_tags("supported")
    reliable = (("Require", "100rel"), ("RSeq", "1"))
    effects = [
        e for _ in range(3) for e in callee.reply(callee.invite, 183, body=CALLEE_ANSWER, extra=reliable)
    ]

    assert [e for e in effects if isinstance(e, LogEvent)] == [reliable_warning(ref, way.callee_side)]
    early = caller.last_response("INVITE", 183)
    assert (early.option_tags("require"), early.headers.get("rseq")) == ([], None)
    assert not any(message.method == "PRACK" for message in callee.inbox() if isinstance(message, Request))
    callee.answer()
    caller.ack_answer()
    hang_up(caller, callee)
    h.assert_idle()


def test_a_reliable_provisional_response_to_a_relayed_reinvite_is_logged() -> None:
    h = Harness()
    caller, callee = connect(h)
    caller.send(caller.request("INVITE", body=offer_from(caller)))
    effects = callee.reply(callee.last_request("INVITE"), 180, extra=(("Require", "100rel"), ("RSeq", "7")))

    assert reliable_warning(h.call_ref(), Side.CARRIER, 180) in effects
    callee.reply(callee.last_request("INVITE"), 200, body=offer_from(callee, direction="a=recvonly"))
    caller.send(caller.ack_2xx(caller.last_response("INVITE", 200)))
    hang_up(caller, callee)
    h.assert_idle()


def test_2xx_is_retransmitted_until_the_ack() -> None:
    h = Harness()
    caller, callee = dial(h)
    ring(caller, callee)
    callee.answer()
    h.advance(8.0)

    assert times_of(h, caller, "200 INVITE") == [0.0, 0.5, 1.5, 3.5, 7.5]
    caller.ack_answer()
    h.advance(60.0)
    assert times_of(h, caller, "200 INVITE") == [0.0, 0.5, 1.5, 3.5, 7.5]
    assert h.b2bua.active_calls == 1
    hang_up(caller, callee)
    h.assert_idle()


def test_no_ack_within_64_t1_ends_both_legs() -> None:
    h = Harness()
    caller, callee = dial(h)
    ring(caller, callee)
    callee.answer()
    h.advance(32.0)

    retransmits = [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]  # T1 doubling, capped at T2
    assert times_of(h, caller, "200 INVITE") == [0.0, *retransmits]
    assert times_of(h, caller, "BYE") == [32.0]
    assert times_of(h, callee, "BYE") == [32.0]
    caller.reply(caller.last_request("BYE"), 200)
    callee.reply(callee.last_request("BYE"), 200)
    h.advance(40.0)
    assert times_of(h, caller, "BYE") == times_of(h, callee, "BYE") == [32.0]
    assert times_of(h, caller, "200 INVITE") == [0.0, *retransmits]
    ref = h.call_ref()
    assert h.closed() == [CloseMedia(call_ref=ref)]
    assert h.ended() == [CallEnded(call_ref=ref, reason="no-ack")]
    h.assert_idle()


@pytest.mark.parametrize("wait_s", [1.0, 40.0], ids=["in-transaction", "after-timer-m"])
def test_b_2xx_retransmission_is_acked_again(wait_s: float) -> None:
    h = Harness()
    caller, callee = connect(h)
    first_ack = callee.last_request("ACK")
    h.advance(wait_s)
    effects = callee.answer()  # our ACK was lost (§13.2.2.4)

    assert sip_summary(effects) == [(CARRIER, "ACK")]
    assert callee.last_request("ACK") == first_ack
    assert caller.new_messages() == []
    hang_up(caller, callee)
    h.assert_idle()


def test_2xx_from_another_fork_is_acked_and_hung_up() -> None:
    h = Harness()
    caller, callee = dial(h)
    ring(caller, callee)
    callee.answer()
    fork = callee.respond(callee.invite, 200, body=CALLEE_ANSWER)
    fork.headers.set("To", f"{callee.local_party};tag=fork-2")
    effects = callee.send(fork)

    assert sip_summary(effects) == [(CARRIER, "ACK"), (CARRIER, "BYE")]
    assert {request.to.tag for request in callee.requests("ACK")} == {"callee-tag", "fork-2"}
    assert callee.last_request("BYE").to.tag == "fork-2"
    caller.ack_answer()
    hang_up(caller, callee)
    h.assert_idle()


# BYE -------------------------------------------------------------------------------------------


@WAYS
@pytest.mark.parametrize("from_leg", ["a", "b"])
def test_bye_ends_both_legs(way: Way, from_leg: str) -> None:
    h = Harness()
    caller, callee = connect(h, way)
    sender, other = (caller, callee) if from_leg == "a" else (callee, caller)
    effects = sender.send(sender.request("BYE"))

    assert sip_summary(effects) == [(sender.address, "200 BYE"), (other.address, "BYE")]
    bye = other.last_request("BYE")
    assert str(bye.uri) == f"sip:{other.name}@{other.address[0]}:{other.address[1]}"
    assert bye.call_id == other.call_id
    assert bye.to.tag == other.local_tag
    assert bye.from_.tag == other.remote_tag
    assert bye.headers.get("cseq") == ("2 BYE" if other is callee else "1 BYE")
    ref = h.call_ref()
    assert non_sip(effects) == [
        CloseMedia(call_ref=ref),
        CallEnded(call_ref=ref, reason=f"bye-from-{from_leg}"),
    ]
    h.assert_idle()

    assert other.reply(bye, 200) == []
    assert sip_summary(sender.send(sender.request("BYE"))) == [(sender.address, "481 BYE")]


@WAYS
def test_an_ended_call_is_freed_without_the_garbage_collector(way: Way) -> None:
    # A full collection stalls the relay for every call; an ended call must not wait for one (a
    # reference cycle, such as a timer action that re-arms itself through its own closure).
    gc.collect()
    gc.disable()
    try:
        before = _calls_and_dialogs_alive()
        h = Harness()
        caller, callee = connect(h, way)
        hang_up(caller, callee)
        h.advance(64 * 0.5 + 1)  # every transaction and timer of the call has run out
        h.assert_idle()
        assert h.leftovers() == dict.fromkeys(h.leftovers(), 0)
        after = _calls_and_dialogs_alive()
    finally:
        gc.enable()
    assert after == before


def _calls_and_dialogs_alive() -> list[str]:
    return sorted(type(o).__name__ for o in gc.get_objects() if isinstance(o, Call | Dialog))


def test_bye_retransmission_after_the_call_is_answered_again() -> None:
    h = Harness()
    caller, callee = connect(h)
    bye = caller.request("BYE")
    caller.send(bye)
    effects = caller.send(bye)

    assert sip_summary(effects) == [(PBX, "200 BYE")]
    assert len(callee.requests("BYE")) == 1
    h.assert_idle()


def test_bye_with_an_old_cseq_gets_500() -> None:
    h = Harness()
    caller, callee = connect(h)
    effects = caller.send(caller.request("BYE", seq=1))

    assert sip_summary(effects) == [(PBX, "500 BYE")]
    assert h.b2bua.active_calls == 1
    hang_up(caller, callee)
    h.assert_idle()


def test_caller_bye_on_the_early_dialog_answers_the_invite_487() -> None:
    h = Harness()
    caller, callee = dial(h)
    ring(caller, callee)
    effects = caller.send(caller.request("BYE"))

    assert sip_summary(effects) == [(PBX, "200 BYE"), (PBX, "487 INVITE"), (CARRIER, "CANCEL")]
    h.assert_idle()


def test_caller_bye_on_the_early_dialog_cancels_b() -> None:
    h = Harness()
    caller, callee = dial(h)
    ring(caller, callee)
    effects = caller.send(caller.request("BYE"))

    assert (PBX, "200 BYE") in sip_summary(effects)
    assert (CARRIER, "CANCEL") in sip_summary(effects)
    ref = h.call_ref()
    assert non_sip(effects) == [CloseMedia(call_ref=ref), CallEnded(call_ref=ref, reason="bye-from-a")]
    h.assert_idle()


# CANCEL (RFC 3261 §9) --------------------------------------------------------------------------


def test_cancel_after_b_rang_cancels_b_at_once() -> None:
    h = Harness()
    caller, callee = dial(h)
    ring(caller, callee)
    effects = caller.send(caller.cancel())

    assert sip_summary(effects) == [(PBX, "200 CANCEL"), (PBX, "487 INVITE"), (CARRIER, "CANCEL")]
    terminated = caller.last_response("INVITE", 487)
    assert terminated.to.tag == caller.remote_tag  # the tag of the 180
    cancel = callee.last_request("CANCEL")
    assert str(cancel.uri) == str(callee.invite.uri)
    assert cancel.headers.fields("via") == callee.invite.headers.fields("via")
    assert cancel.headers.get("cseq") == "1 CANCEL"
    assert cancel.headers.get("from") == callee.invite.headers.get("from")
    assert cancel.headers.get("to") == callee.invite.headers.get("to")
    ref = h.call_ref()
    assert non_sip(effects) == [
        CloseMedia(call_ref=ref),
        CallEnded(call_ref=ref, reason="cancelled", status=487),
    ]
    h.assert_idle()

    assert callee.reply(cancel, 200) == []
    effects = callee.reply(callee.invite, 487)
    assert sip_summary(effects) == [(CARRIER, "ACK")]
    assert callee.last_request("ACK").top_via.branch == callee.invite.top_via.branch  # §17.1.1.3
    assert caller.send(caller.ack_failure(terminated)) == []
    h.assert_idle()


def test_cancel_before_any_b_provisional_waits_for_one() -> None:
    h = Harness()
    caller, callee = dial(h)
    effects = caller.send(caller.cancel())

    assert sip_summary(effects) == [(PBX, "200 CANCEL"), (PBX, "487 INVITE")]
    h.assert_idle()
    caller.new_messages()
    effects = callee.ring()
    assert sip_summary(effects) == [(CARRIER, "CANCEL")]
    assert caller.new_messages() == []

    callee.reply(callee.last_request("CANCEL"), 200)
    assert sip_summary(callee.reply(callee.invite, 487)) == [(CARRIER, "ACK")]
    assert caller.new_messages() == []
    h.assert_idle()


def test_cancel_after_b_sent_100_goes_out_at_once() -> None:
    h = Harness()
    caller, callee = dial(h)
    callee.reply(callee.invite, 100)
    effects = caller.send(caller.cancel())

    assert sip_summary(effects) == [(PBX, "200 CANCEL"), (PBX, "487 INVITE"), (CARRIER, "CANCEL")]
    callee.reply(callee.last_request("CANCEL"), 200)
    callee.reply(callee.invite, 487)
    h.assert_idle()


def test_answer_racing_the_cancel_is_acked_and_hung_up() -> None:
    h = Harness()
    caller, callee = dial(h)
    ring(caller, callee)
    caller.send(caller.cancel())
    caller.new_messages()
    effects = callee.answer()

    assert sip_summary(effects) == [(CARRIER, "ACK"), (CARRIER, "BYE")]
    ack, bye = callee.requests("ACK")[-1], callee.last_request("BYE")
    assert ack.headers.get("cseq") == "1 ACK"
    assert bye.headers.get("cseq") == "2 BYE"
    assert ack.to.tag == bye.to.tag == "callee-tag"
    assert caller.new_messages() == []
    assert non_sip(effects) == []
    h.assert_idle()


@WAYS
def test_escaped_characters_in_the_numbers_stay_escaped_on_the_other_leg(way: Way) -> None:
    # RFC 3261 §19.1.2, §25.1: a user part is written escaped. A CR LF a party escaped in its
    # number must not become a header line of the INVITE on the other leg, nor a NUL a raw octet.
    h = Harness()
    caller = FakeUac(h, address=way.caller, side=way.caller_side, user="2001%0d%0aX-From-Inj%3a%201")
    caller.send(caller.invite("%2B3120%0D%0AX-Injected%3A%20yes%00"))
    (request,) = [e.message for e in sent_sip(h.effects, way.callee) if isinstance(e.message, Request)]
    raw = bytes(request)
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"X-Injected" not in head.replace(b"X-Injected%3A", b"")
    assert b"\x00" not in raw
    assert [
        line for line in head.split(b"\r\n") if line.lower().startswith((b"x-from-inj", b"x-injected"))
    ] == []
    invite = wire(request)
    assert isinstance(invite, Request)
    assert isinstance(invite.uri, SipUri)
    assert invite.uri.user == "+3120%0D%0AX-Injected%3A%20yes%00"
    assert invite.uri.user_unescaped == "+3120\r\nX-Injected: yes\x00"
    assert isinstance(invite.from_.uri, SipUri)
    assert invite.from_.uri.user_unescaped == "2001\r\nX-From-Inj: 1"
    callee = FakeUas(h, address=way.callee, side=way.callee_side)
    callee.take_invite()
    callee.reply(callee.invite, 486)
    caller.send(caller.ack_failure(caller.last_response("INVITE", 486)))
    h.assert_idle()


def test_cancel_for_an_unknown_invite_gets_481() -> None:
    h = Harness()
    caller, _ = parties(h)
    caller.invite(DIALLED)
    effects = caller.send(caller.cancel())
    assert sip_summary(effects) == [(PBX, "481 CANCEL")]
    h.assert_idle()


def test_cancel_after_the_answer_changes_nothing() -> None:
    h = Harness()
    caller, callee = dial(h)
    ring(caller, callee)
    callee.answer()
    effects = caller.send(caller.cancel())

    assert sip_summary(effects) == [(PBX, "200 CANCEL")]
    # RFC 3261 §9.2: the same To tag as the INVITE's responses.
    assert caller.last_response("CANCEL", 200).to.tag == caller.last_response("INVITE", 200).to.tag
    assert h.b2bua.active_calls == 1
    caller.ack_answer()
    hang_up(caller, callee)
    h.assert_idle()


# Failures from the callee ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected", "reason", "ended"),
    [
        (486, 486, "Busy Here", "busy"),
        (600, 600, "Busy Everywhere", "busy"),
        (603, 603, "Decline", "failed-603"),
        (503, 500, "Server Internal Error", "failed-503"),
        (302, 480, "Temporarily Unavailable", "failed-302"),
        (404, 404, "Not Found", "failed-404"),
        (401, 403, "Forbidden", "failed-401"),  # no carrier credentials configured
        (407, 403, "Forbidden", "failed-407"),
        (488, 488, "Not Acceptable Here", "failed-488"),
    ],
)
@WAYS
def test_failure_is_mapped_for_the_caller(
    way: Way, status: int, expected: int, reason: str, ended: str
) -> None:
    h = Harness()
    caller, callee = dial(h, way)
    ring(caller, callee)
    effects = callee.reply(callee.invite, status, extra=(("Contact", "<sip:elsewhere@192.0.2.9>"),))

    assert sip_summary(effects) == [(way.callee, "ACK"), (way.caller, f"{expected} INVITE")]
    failure = caller.last_response("INVITE", expected)
    assert failure.reason == reason
    assert failure.to.tag == caller.remote_tag
    assert failure.headers.fields("contact") == []
    ref = h.call_ref()
    # A carrier's challenge without carrier.credentials to answer it: the log says so.
    warned = way is OUTBOUND and status in (401, 407)
    warning = LogEvent(
        level="warning",
        text=f"the carrier refused the call's INVITE with {status}: it asks for credentials and"
        " carrier.credentials has none",
        call_ref=ref,
    )
    assert non_sip(effects) == [
        *([warning] if warned else []),
        CloseMedia(call_ref=ref),
        CallEnded(call_ref=ref, reason=ended, status=status),
    ]
    h.assert_idle()
    assert caller.send(caller.ack_failure(failure)) == []


@WAYS
def test_a_422_asks_for_session_timers_callherald_does_not_do_and_the_caller_gets_500(way: Way) -> None:
    # RFC 4028 §6: a 422 carries the Min-SE the UAC should retry with. callherald passes no
    # Session-Expires on, so a caller retrying with a longer one would get the same 422: it gets
    # 500 instead, and the log says what the other side asks for.
    h = Harness()
    caller, callee = dial(h, way)
    ring(caller, callee)
    ref = h.call_ref()
    effects = callee.reply(callee.invite, 422, extra=(("Min-SE", "1800"),))

    assert sip_summary(effects) == [(way.callee, "ACK"), (way.caller, "500 INVITE")]
    failure = caller.last_response("INVITE", 500)
    assert failure.headers.fields("min-se") == []
    warning = LogEvent(
        level="warning",
        text=f"the {way.callee_side} side refused the INVITE with 422 (Min-SE: 1800): it asks for session"
        " timers (RFC 4028), which callherald does not do; the caller gets 500",
        call_ref=ref,
    )
    assert warning in effects
    assert h.ended() == [CallEnded(call_ref=ref, reason="failed-422", status=422)]
    assert caller.send(caller.ack_failure(failure)) == []
    h.assert_idle()


def test_busy_keeps_retry_after() -> None:
    h = Harness()
    caller, callee = dial(h)
    callee.reply(callee.invite, 486, extra=(("Retry-After", "30"),))
    assert caller.last_response("INVITE", 486).headers.fields("retry-after") == ["30"]
    h.assert_idle()


def test_timer_b_times_out_with_408_to_the_caller() -> None:
    h = Harness()
    caller, callee = dial(h)
    effects = h.advance(32.0)

    text = "no response to the INVITE within 32 s (Timer B): the carrier side is unreachable"
    assert LogEvent(level="warning", text=text, call_ref=h.call_ref()) in effects
    assert times_of(h, callee, "INVITE") == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert times_of(h, caller, "408 INVITE") == [32.0]
    assert caller.send(caller.ack_failure(caller.last_response("INVITE", 408))) == []
    h.advance(60.0)
    assert times_of(h, caller, "408 INVITE") == [32.0]
    assert len(callee.requests("INVITE")) == 7
    ref = h.call_ref()
    assert h.ended() == [CallEnded(call_ref=ref, reason="timeout", status=408)]
    assert h.closed() == [CloseMedia(call_ref=ref)]
    h.assert_idle()


@WAYS
def test_a_shorter_no_response_timeout_gives_up_on_a_silent_callee_sooner(way: Way) -> None:
    # limits.no_response_timeout_s: Timer B (RFC 3261 §17.1.1.2) shortened; 408 to the caller.
    h = Harness(timers=TimerConfig(timer_b_s=6.0))
    caller, callee = dial(h, way)
    h.advance(5.9)
    assert times_of(h, caller, "408 INVITE") == []
    effects = h.advance(0.1)

    assert times_of(h, callee, "INVITE") == [0.0, 0.5, 1.5, 3.5]
    assert times_of(h, caller, "408 INVITE") == [6.0]
    side = "carrier" if way is OUTBOUND else "pbx"
    text = f"no response to the INVITE within 6 s (Timer B): the {side} side is unreachable"
    assert LogEvent(level="warning", text=text, call_ref=h.call_ref()) in effects
    assert h.ended() == [CallEnded(call_ref=h.call_ref(), reason="timeout", status=408)]
    caller.send(caller.ack_failure(caller.last_response("INVITE", 408)))
    h.advance(60.0)
    assert len(callee.requests("INVITE")) == 4  # no retransmission after giving up
    h.assert_idle()


@WAYS
def test_a_callee_answering_after_timer_b_is_acked_and_hung_up(way: Way) -> None:
    # The INVITE was given up (Timer B), but the callee answers after all: its 2xx reaches
    # callherald outside any transaction and is ACKed and hung up (RFC 3261 §13.2.2.4).
    h = Harness(timers=TimerConfig(timer_b_s=6.0))
    caller, callee = dial(h, way)
    h.advance(6.0)
    caller.send(caller.ack_failure(caller.last_response("INVITE", 408)))
    h.advance(10.0)
    caller.new_messages()  # the 100 and the 408
    late = callee.respond(callee.invite, 200, body=CALLEE_ANSWER)
    effects = callee.send(late)

    assert sip_summary(effects) == [(callee.address, "ACK"), (callee.address, "BYE")]
    ack, bye = callee.last_request("ACK"), callee.last_request("BYE")
    assert ack.cseq.seq == callee.invite.cseq.seq
    assert bye.cseq.seq > ack.cseq.seq
    assert ack.to.tag == bye.to.tag == late.to.tag
    assert ack.call_id == bye.call_id == callee.invite.call_id
    text = "the callee answered the INVITE given up after Timer B: hung up"
    assert LogEvent(level="info", text=text, call_ref=h.call_ref()) in effects
    assert caller.new_messages() == []
    assert callee.send(late) == []  # hung up once; its retransmissions end with our BYE
    h.assert_idle()


def test_a_callee_answering_once_its_2xx_would_have_ended_is_no_longer_known() -> None:
    # A 2xx is retransmitted for 64*T1 (RFC 3261 §13.3.1.4): the given-up INVITE is remembered
    # that long, then forgotten.
    h = Harness(timers=TimerConfig(timer_b_s=6.0))
    _, callee = dial(h)
    h.advance(6.0 + 32.0)
    assert h.leftovers()["abandoned"] == 0
    assert callee.send(callee.respond(callee.invite, 200, body=CALLEE_ANSWER)) == []
    h.assert_idle()


def test_ring_timeout_cancels_the_callee_and_answers_480() -> None:
    h = Harness(make_settings(ring_timeout_s=30.0))
    caller, callee = dial(h)
    ring(caller, callee)
    effects = h.advance(30.0)

    assert (PBX, "480 INVITE") in sip_summary(effects)
    assert (CARRIER, "CANCEL") in sip_summary(effects)
    assert times_of(h, caller, "480 INVITE") == [30.0]
    ref = h.call_ref()
    assert h.ended() == [CallEnded(call_ref=ref, reason="no-answer", status=None)]
    callee.reply(callee.last_request("CANCEL"), 200)
    callee.reply(callee.invite, 487)
    caller.send(caller.ack_failure(caller.last_response("INVITE", 480)))
    h.assert_idle()


def test_answer_before_the_ring_timeout_keeps_the_call() -> None:
    h = Harness(make_settings(ring_timeout_s=30.0))
    caller, callee = connect(h)
    h.advance(60.0)
    assert h.b2bua.active_calls == 1
    hang_up(caller, callee)
    h.assert_idle()


# Carrier authentication (RFC 3261 §22.2) -------------------------------------------------------


def challenge_header(status: int, *, nonce: str = "nonce-1", stale: bool = False) -> tuple[str, str]:
    name = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
    return name, str(make_challenge(realm="carrier.example", nonce=nonce, opaque="op-1", stale=stale))


def credentials_in(request: Request, status: int) -> Credentials:
    values = request.headers.fields("authorization" if status == 401 else "proxy-authorization")
    assert len(values) == 1, values
    return Credentials.parse(values[0])


def authenticating_harness(auth_username: str | None = None) -> Harness:
    return Harness(make_settings(carrier=carrier_with_credentials(auth_username=auth_username)))


@pytest.mark.parametrize("status", [401, 407])
@pytest.mark.parametrize("auth_username", [None, "auth-id-7"])
def test_carrier_challenge_is_answered_with_credentials(status: int, auth_username: str | None) -> None:
    h = authenticating_harness(auth_username)
    caller, callee = dial(h)
    first = callee.invite
    effects = callee.reply(first, status, extra=(challenge_header(status),))

    assert sip_summary(effects) == [(CARRIER, "ACK"), (CARRIER, "INVITE")]
    assert caller.statuses() == [100]
    retry = callee.take_invite()
    assert retry.headers.get("cseq") == "2 INVITE"
    assert retry.call_id == first.call_id
    assert retry.headers.get("from") == first.headers.get("from")
    assert retry.headers.get("to") == first.headers.get("to")
    assert retry.top_via.branch != first.top_via.branch
    assert retry.body == first.body
    credentials = credentials_in(retry, status)
    assert credentials.username == (auth_username or "trunk1")
    assert credentials.uri == str(retry.uri)
    assert credentials.nonce == "nonce-1"
    assert credentials.opaque == "op-1"
    assert verify_credentials(
        credentials, method="INVITE", password="carrier-secret", expected_realm="carrier.example"
    )

    ring(caller, callee)
    callee.answer()
    assert callee.last_request("ACK").headers.get("cseq") == "2 ACK"
    caller.ack_answer()
    hang_up(caller, callee)
    assert callee.last_request("BYE").headers.get("cseq") == "3 BYE"
    h.assert_idle()


@pytest.mark.parametrize("status", [401, 407])
def test_second_challenge_for_the_same_nonce_fails_with_403(status: int) -> None:
    h = authenticating_harness()
    _, callee = dial(h)
    callee.reply(callee.invite, status, extra=(challenge_header(status),))
    callee.take_invite()
    effects = callee.reply(callee.invite, status, extra=(challenge_header(status),))

    assert sip_summary(effects) == [(CARRIER, "ACK"), (PBX, "403 INVITE")]
    assert len(callee.requests("INVITE")) == 2
    assert h.ended() == [CallEnded(call_ref=h.call_ref(), reason=f"failed-{status}", status=status)]
    # Every call fails so until an admin acts: the log says what to look at.
    assert [e.text for e in effects if isinstance(e, LogEvent) and e.level == "warning"] == [
        f"the carrier refused the call's INVITE with {status}: it rejected callherald's credentials:"
        " check carrier.credentials (user, password, realm)"
    ]
    h.assert_idle()


def test_stale_challenge_is_answered_once_more() -> None:
    h = authenticating_harness()
    _, callee = dial(h)
    callee.reply(callee.invite, 401, extra=(challenge_header(401),))
    callee.take_invite()
    effects = callee.reply(callee.invite, 401, extra=(challenge_header(401, nonce="nonce-2", stale=True),))

    assert sip_summary(effects) == [(CARRIER, "ACK"), (CARRIER, "INVITE")]
    third = callee.take_invite()
    assert third.headers.get("cseq") == "3 INVITE"
    credentials = credentials_in(third, 401)
    assert credentials.nonce == "nonce-2"
    assert verify_credentials(
        credentials, method="INVITE", password="carrier-secret", expected_realm="carrier.example"
    )
    effects = callee.reply(third, 401, extra=(challenge_header(401, nonce="nonce-3", stale=True),))
    assert sip_summary(effects) == [(CARRIER, "ACK"), (PBX, "403 INVITE")]
    h.assert_idle()


def carrier_and_pbx(caller: FakeUac, callee: FakeUas, way: Way) -> tuple[FakeUa, FakeUa]:
    return (callee, caller) if way is OUTBOUND else (caller, callee)


@pytest.mark.parametrize("status", [401, 407])
@pytest.mark.parametrize("way", [OUTBOUND, INBOUND], ids=["outbound", "inbound"])
def test_a_bye_the_carrier_challenges_is_sent_again_with_credentials(status: int, way: Way) -> None:
    # A carrier's proxy may challenge in-dialog requests too: unanswered, the carrier never
    # learns that the call ended (RFC 3261 §22.2; the retry takes the dialog's next CSeq, §8.1.3.5).
    h = authenticating_harness()
    carrier, pbx = carrier_and_pbx(*connect(h, way), way)
    pbx.send(pbx.request("BYE"))
    bye = carrier.last_request("BYE")
    effects = carrier.reply(bye, status, extra=(challenge_header(status),))

    assert sip_summary(effects) == [(CARRIER, "BYE")]
    retry = carrier.last_request("BYE")
    assert retry.cseq.seq == bye.cseq.seq + 1
    assert retry.top_via.branch != bye.top_via.branch
    assert (retry.call_id, retry.headers.get("to")) == (bye.call_id, bye.headers.get("to"))
    credentials = credentials_in(retry, status)
    assert credentials.uri == str(retry.uri)
    assert verify_credentials(
        credentials, method="BYE", password="carrier-secret", expected_realm="carrier.example"
    )
    carrier.reply(retry, 200)
    h.assert_idle()


@pytest.mark.parametrize("way", [OUTBOUND, INBOUND], ids=["outbound", "inbound"])
def test_a_reinvite_the_carrier_challenges_is_sent_again_and_its_answer_relayed(way: Way) -> None:
    h = authenticating_harness()
    carrier, pbx = carrier_and_pbx(*connect(h, way), way)
    pbx.send(pbx.request("INVITE", body=offer_from(pbx)))  # the agent holds
    first = carrier.last_request("INVITE")
    effects = carrier.reply(first, 407, extra=(challenge_header(407),))

    assert sip_summary(effects) == [(CARRIER, "ACK"), (CARRIER, "INVITE")]
    retry = carrier.last_request("INVITE")
    assert retry.cseq.seq == first.cseq.seq + 1
    assert retry.body == first.body
    assert verify_credentials(
        credentials_in(retry, 407),
        method="INVITE",
        password="carrier-secret",
        expected_realm="carrier.example",
    )
    effects = carrier.reply(retry, 200, body=offer_from(carrier, direction="a=recvonly"))
    assert sip_summary(effects) == [(CARRIER, "ACK"), (PBX, "200 INVITE")]
    assert carrier.last_request("ACK").cseq.seq == retry.cseq.seq
    assert b"a=recvonly" in pbx.last_response("INVITE", 200).body
    pbx.send(pbx.ack_2xx(pbx.last_response("INVITE", 200)))
    bye = pbx.request("BYE")
    pbx.send(bye)
    assert carrier.last_request("BYE").cseq.seq == retry.cseq.seq + 1
    carrier.reply(carrier.last_request("BYE"), 200)
    h.assert_idle()


def test_a_bye_never_answered_is_logged() -> None:
    h = Harness()
    caller, _ = connect(h)
    caller.send(caller.request("BYE"))
    effects = h.advance(33.0)  # Timer F: 64 * T1 (RFC 3261 §17.1.2.2)
    assert LogEvent(
        level="warning",
        text="the carrier side never answered callherald's BYE (Timer F): it may not know the call ended",
        call_ref=h.call_ref(),
    ) in non_sip(effects)
    h.assert_idle()


def test_without_credentials_a_challenged_bye_is_logged_and_the_call_still_ends() -> None:
    h = Harness()
    caller, callee = connect(h)
    caller.send(caller.request("BYE"))
    effects = callee.reply(callee.last_request("BYE"), 407, extra=(challenge_header(407),))

    assert sip_summary(effects) == []
    assert LogEvent(
        level="warning",
        text="the carrier side refused our BYE with 407 and callherald has no credentials to answer it with",
        call_ref=h.call_ref(),
    ) in non_sip(effects)
    h.assert_idle()


def test_a_challenge_to_the_retried_bye_is_not_answered_again() -> None:
    h = authenticating_harness()
    caller, callee = connect(h)
    caller.send(caller.request("BYE"))
    callee.reply(callee.last_request("BYE"), 407, extra=(challenge_header(407),))
    effects = callee.reply(callee.last_request("BYE"), 407, extra=(challenge_header(407, nonce="nonce-2"),))

    assert sip_summary(effects) == []
    assert len(callee.requests("BYE")) == 2
    h.assert_idle()


def test_pbx_side_challenge_is_not_answered() -> None:
    h = authenticating_harness()
    _, callee = dial(h, INBOUND)
    effects = callee.reply(callee.invite, 401, extra=(challenge_header(401),))
    assert sip_summary(effects) == [(PBX, "ACK"), (CARRIER, "403 INVITE")]
    h.assert_idle()


# re-INVITE, UPDATE, INFO -----------------------------------------------------------------------


def offer_from(
    peer: FakeUa, *, direction: str = "a=sendonly", version: int = 2, host: str | None = None
) -> bytes:
    """A new offer from ``peer``'s media address (127.0.0.2 for the caller, .3 for the callee)."""
    media_host, port = CALLER_MEDIA if isinstance(peer, FakeUac) else CALLEE_MEDIA
    lines = [
        "v=0",
        f"o={peer.name} 77 {version} IN IP4 {media_host}",
        "s=-",
        f"c=IN IP4 {host or media_host}",
        "t=0 0",
        f"m=audio {port} RTP/AVP 0 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
    ]
    if direction:
        lines.append(direction)
    return sdp(*lines)


def leg_of(peer: FakeUa) -> MediaLeg:
    return MediaLeg.A if isinstance(peer, FakeUac) else MediaLeg.B


def port_towards(peer: FakeUa) -> int:
    """callherald's RTP port on ``peer``'s leg, which the SDP sent to ``peer`` names."""
    return A_PORT if isinstance(peer, FakeUac) else B_PORT


def anchored_lines(port: int, direction: str) -> list[str]:
    return [
        "v=0",
        "s=-",
        "c=IN IP4 127.0.0.1",
        "t=0 0",
        f"m=audio {port} RTP/AVP 0 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
        direction,
    ]


def first_sdp_to(peer: FakeUa) -> bytes:
    for message in peer.inbox():
        if message.body and message.content_type == "application/sdp":
            return message.body
    raise AssertionError(f"{peer.name} received no SDP")


@WAYS
@pytest.mark.parametrize("from_leg", ["a", "b"])
def test_reinvite_hold_is_relayed_and_re_anchored(way: Way, from_leg: str) -> None:
    h = Harness()
    caller, callee = connect(h, way)
    sender, other = (caller, callee) if from_leg == "a" else (callee, caller)
    ref = h.call_ref()
    effects = sender.send(sender.request("INVITE", body=offer_from(sender)))

    assert sip_summary(effects) == [(sender.address, "100 INVITE"), (other.address, "INVITE")]
    relayed = other.last_request("INVITE")
    assert str(relayed.uri) == f"sip:{other.name}@{other.address[0]}:{other.address[1]}"
    assert relayed.call_id == other.call_id
    assert relayed.to.tag == other.local_tag
    assert relayed.from_.tag == other.remote_tag
    assert relayed.headers.get("cseq") == ("2 INVITE" if other is callee else "1 INVITE")
    listener = way.b_listener if other is callee else way.a_listener
    assert relayed.headers.get("contact") == f"<sip:callherald@{listener[0]}:{listener[1]}>"
    assert sdp_without_origin(relayed.body) == anchored_lines(port_towards(other), "a=sendonly")
    before = origin_of(first_sdp_to(other))
    assert origin_of(relayed.body) == Origin(
        username="callherald", sess_id=before.sess_id, sess_version=2, address="127.0.0.1"
    )  # same session, next version (RFC 3264 §8)
    # The hold pauses the recording as it comes; the relay takes its address once it is answered.
    assert LogEvent(level="info", text=f"hold from leg {leg_of(sender)}", call_ref=ref) in effects
    assert [e for e in effects if isinstance(e, SetMediaRemote)] == []

    effects = other.reply(relayed, 200, body=offer_from(other, direction="a=recvonly"))
    assert sip_summary(effects) == [(other.address, "ACK"), (sender.address, "200 INVITE")]
    ack = other.last_request("ACK")
    assert ack.headers.get("cseq") == f"{relayed.cseq.seq} ACK"
    ok = sender.last_response("INVITE", 200)
    assert ok.headers.get("cseq") == f"{sender.local_seq} INVITE"
    assert ok.to.tag == sender.remote_tag
    assert sdp_without_origin(ok.body) == anchored_lines(port_towards(sender), "a=recvonly")
    other_media = CALLEE_MEDIA if other is callee else CALLER_MEDIA
    sender_media = CALLER_MEDIA if sender is caller else CALLEE_MEDIA
    assert SetMediaRemote(call_ref=ref, leg=leg_of(other), remote=other_media) in effects
    assert SetMediaRemote(call_ref=ref, leg=leg_of(sender), remote=sender_media) in effects

    at = h.now - T0
    h.advance(2.0)
    assert times_of(h, sender, "200 INVITE")[-2:] == [at + 0.5, at + 1.5]  # relayed 2xx resent until ACK
    assert sender.send(sender.ack_2xx(ok)) == []
    h.advance(30.0)
    assert times_of(h, sender, "200 INVITE")[-1] == at + 1.5
    assert h.b2bua.active_calls == 1

    hang_up(caller, callee)
    h.assert_idle()


@WAYS
def test_the_relay_is_told_the_rtcp_port_each_partys_sdp_names(way: Way) -> None:
    # RFC 3605 §2.1: a=rtcp names an RTCP port other than the RTP port + 1, and maybe an address.
    # callherald's own RTCP port is its RTP port + 1 (RFC 3550 §11): its SDP has no a=rtcp.
    h = Harness()
    caller, callee = parties(h, way)
    effects = caller.send(caller.invite(DIALLED, body=CALLER_OFFER + b"a=rtcp:40005\r\n"))
    ref = h.call_ref()
    assert (
        SetMediaRemote(call_ref=ref, leg=MediaLeg.A, remote=CALLER_MEDIA, rtcp=("127.0.0.2", 40005))
        in effects
    )
    assert b"a=rtcp:" not in callee.take_invite().body

    effects = callee.answer(body=CALLEE_ANSWER + b"a=rtcp:30011 IN IP4 127.0.0.9\r\n")
    assert (
        SetMediaRemote(call_ref=ref, leg=MediaLeg.B, remote=CALLEE_MEDIA, rtcp=("127.0.0.9", 30011))
        in effects
    )
    assert b"a=rtcp:" not in caller.last_response("INVITE", 200).body
    caller.ack_answer()
    hang_up(caller, callee)
    h.assert_idle()


def test_the_relay_is_told_a_party_multiplexes_rtcp_when_its_sdp_has_rtcp_mux() -> None:
    # RFC 5761 §5.1.1: both sides multiplex when the answer accepts the offer's a=rtcp-mux, which
    # callherald passes on.
    h = Harness()
    caller, callee = parties(h)
    effects = caller.send(caller.invite(DIALLED, body=CALLER_OFFER + b"a=rtcp-mux\r\n"))
    ref = h.call_ref()
    assert SetMediaRemote(call_ref=ref, leg=MediaLeg.A, remote=CALLER_MEDIA, rtcp_mux=True) in effects
    assert b"a=rtcp-mux\r\n" in callee.take_invite().body

    effects = callee.answer(body=CALLEE_ANSWER + b"a=rtcp-mux\r\n")
    assert SetMediaRemote(call_ref=ref, leg=MediaLeg.B, remote=CALLEE_MEDIA, rtcp_mux=True) in effects
    assert b"a=rtcp-mux\r\n" in caller.last_response("INVITE", 200).body
    caller.ack_answer()
    hang_up(caller, callee)
    h.assert_idle()


def test_legacy_zero_address_hold_becomes_sendonly() -> None:
    h = Harness()
    caller, callee = connect(h)
    caller.send(caller.request("INVITE", body=offer_from(caller, direction="", host="0.0.0.0")))

    relayed = callee.last_request("INVITE")
    assert sdp_without_origin(relayed.body) == anchored_lines(B_PORT, "a=sendonly")
    effects = callee.reply(relayed, 200, body=offer_from(callee, direction="a=recvonly"))
    assert SetMediaRemote(call_ref=h.call_ref(), leg=MediaLeg.A, remote=None) in effects
    caller.send(caller.ack_2xx(caller.last_response("INVITE", 200)))
    hang_up(caller, callee)
    h.assert_idle()


def test_a_reinvite_answer_reaches_the_other_party_without_the_answerers_details() -> None:
    h = Harness()
    caller, callee = connect(h)
    caller.send(caller.request("INVITE", body=offer_from(caller, version=2)))
    details = b"a=tool:baresip 1.0.0\r\na=label:1\r\na=ssrc:709712656 cname:sip:0201234567@127.0.0.1\r\n"
    callee.reply(
        callee.last_request("INVITE"), 200, body=offer_from(callee, direction="a=recvonly") + details
    )

    ok = caller.last_response("INVITE", 200)
    assert sdp_without_origin(ok.body) == anchored_lines(A_PORT, "a=recvonly")
    caller.send(caller.ack_2xx(ok))
    hang_up(caller, callee)
    h.assert_idle()


def test_resume_after_hold_is_sendrecv_again() -> None:
    h = Harness()
    caller, callee = connect(h)
    caller.send(caller.request("INVITE", body=offer_from(caller, version=2)))
    callee.reply(callee.last_request("INVITE"), 200, body=offer_from(callee, direction="a=recvonly"))
    caller.send(caller.ack_2xx(caller.last_response("INVITE", 200)))
    caller.send(caller.request("INVITE", body=offer_from(caller, version=3)))  # still on hold
    # The same session offered again keeps its version (RFC 3264 §8).
    assert origin_of(callee.last_request("INVITE").body).sess_version == 2
    callee.reply(callee.last_request("INVITE"), 200, body=offer_from(callee, direction="a=recvonly"))
    caller.send(caller.ack_2xx(caller.last_response("INVITE", 200)))
    caller.send(caller.request("INVITE", body=offer_from(caller, direction="a=sendrecv", version=4)))

    resumed = callee.last_request("INVITE")
    assert sdp_without_origin(resumed.body) == anchored_lines(B_PORT, "a=sendrecv")
    assert origin_of(resumed.body).sess_version == 3
    assert resumed.headers.get("cseq") == "4 INVITE"
    callee.reply(resumed, 200, body=offer_from(callee, direction="a=sendrecv"))
    caller.send(caller.ack_2xx(caller.last_response("INVITE", 200)))
    # The hold is logged as it starts and as it ends, not again for an offer that keeps it.
    holds = [e.text for e in h.effects if isinstance(e, LogEvent) and e.text.startswith("hold from")]
    assert holds == ["hold from leg a", "hold from leg a ended"]
    hang_up(caller, callee)
    h.assert_idle()


def test_reinvite_glare_gets_491() -> None:
    h = Harness()
    caller, callee = connect(h)
    caller.send(caller.request("INVITE", body=offer_from(caller)))
    effects = callee.send(callee.request("INVITE", body=offer_from(callee)))

    assert sip_summary(effects) == [(CARRIER, "491 INVITE")]
    assert caller.requests("INVITE") == []
    callee.reply(callee.last_request("INVITE"), 200, body=offer_from(callee, direction="a=recvonly"))
    caller.send(caller.ack_2xx(caller.last_response("INVITE", 200)))
    hang_up(caller, callee)
    h.assert_idle()


def test_second_reinvite_from_the_same_side_gets_500_with_retry_after() -> None:
    h = Harness()
    caller, callee = connect(h)
    caller.send(caller.request("INVITE", body=offer_from(caller)))
    effects = caller.send(caller.request("INVITE", body=offer_from(caller, version=3)))

    assert sip_summary(effects) == [(PBX, "500 INVITE")]
    assert caller.last_response("INVITE", 500).headers.fields("retry-after") != []
    callee.reply(callee.last_request("INVITE"), 200, body=offer_from(callee, direction="a=recvonly"))
    caller.send(caller.ack_2xx(caller.last_response("INVITE", 200)))
    hang_up(caller, callee)
    h.assert_idle()


@pytest.mark.parametrize("first", ["INVITE", "UPDATE"])
def test_an_update_offer_while_the_senders_own_offer_is_unanswered_gets_500_with_retry_after(
    first: str,
) -> None:
    # RFC 3311 §5.2: an UPDATE offer to a UAS that has not yet answered the sender's own offer
    # gets 500 with a Retry-After (491 is for offers that cross, §5.1); nothing reaches the far party.
    h = Harness()
    caller, callee = connect(h)
    caller.send(caller.request(first, body=offer_from(caller)))
    relayed = callee.last_request(first)
    callee.new_messages()
    effects = caller.send(caller.request("UPDATE", body=offer_from(caller, version=3)))

    assert sip_summary(effects) == [(PBX, "500 UPDATE")]
    retry_after = caller.last_response("UPDATE", 500).headers.fields("retry-after")
    assert len(retry_after) == 1
    assert 1 <= int(retry_after[0]) <= 10
    assert callee.new_messages() == []
    callee.reply(relayed, 200, body=offer_from(callee, direction="a=recvonly"))
    if first == "INVITE":
        caller.send(caller.ack_2xx(caller.last_response("INVITE", 200)))
    effects = caller.send(caller.request("UPDATE", body=offer_from(caller, version=3)))
    assert sip_summary(effects) == [(CARRIER, "UPDATE")]
    callee.reply(
        callee.last_request("UPDATE"), 200, body=offer_from(callee, direction="a=recvonly", version=3)
    )
    hang_up(caller, callee)
    h.assert_idle()


def test_reinvite_failure_is_relayed_and_the_call_goes_on() -> None:
    h = Harness()
    caller, callee = connect(h)
    caller.send(caller.request("INVITE", body=offer_from(caller)))
    effects = callee.reply(callee.last_request("INVITE"), 488)

    assert sip_summary(effects) == [(CARRIER, "ACK"), (PBX, "488 INVITE")]
    assert h.b2bua.active_calls == 1
    hang_up(caller, callee)
    h.assert_idle()


@pytest.mark.parametrize("method", ["INVITE", "UPDATE"])
def test_a_422_to_a_relayed_reinvite_reaches_its_sender_as_500_and_the_call_goes_on(method: str) -> None:
    # A party's own refresh with a Session-Expires callherald did not pass on (RFC 4028 §6).
    h = Harness()
    caller, callee = connect(h)
    caller.send(caller.request(method, body=offer_from(caller)))
    effects = callee.reply(callee.last_request(method), 422, extra=(("Min-SE", "1800"),))

    acked = [(CARRIER, "ACK")] if method == "INVITE" else []
    assert sip_summary(effects) == [*acked, (PBX, f"500 {method}")]
    warning = LogEvent(
        level="warning",
        text=f"the carrier side refused the {method} with 422 (Min-SE: 1800): it asks for session timers"
        " (RFC 4028), which callherald does not do; leg a gets 500, the session goes on as it was",
        call_ref=h.call_ref(),
    )
    assert warning in effects
    assert h.b2bua.active_calls == 1
    hang_up(caller, callee)
    h.assert_idle()


def test_reinvite_2xx_retransmission_is_acked_again() -> None:
    h = Harness()
    caller, callee = connect(h)
    caller.send(caller.request("INVITE", body=offer_from(caller)))
    relayed = callee.last_request("INVITE")
    callee.reply(relayed, 200, body=offer_from(callee, direction="a=recvonly"))
    h.advance(0.5)
    effects = callee.reply(relayed, 200, body=offer_from(callee, direction="a=recvonly"))

    assert sip_summary(effects) == [(CARRIER, "ACK")]
    caller.send(caller.ack_2xx(caller.last_response("INVITE", 200)))
    hang_up(caller, callee)
    h.assert_idle()


def test_reinvite_without_sdp_takes_the_offer_from_the_far_side() -> None:
    h = Harness()
    caller, callee = connect(h)
    ref = h.call_ref()
    callee.send(callee.request("INVITE"))
    relayed = caller.last_request("INVITE")
    assert relayed.body == b""

    effects = caller.reply(relayed, 200, body=offer_from(caller, direction="a=sendrecv", version=2))
    assert sip_summary(effects) == [(CARRIER, "200 INVITE")]  # a's ACK waits for b's answer
    ok = callee.last_response("INVITE", 200)
    assert sdp_without_origin(ok.body) == anchored_lines(B_PORT, "a=sendrecv")
    assert SetMediaRemote(call_ref=ref, leg=MediaLeg.A, remote=CALLER_MEDIA) in effects

    effects = callee.send(callee.ack_2xx(ok, body=offer_from(callee, direction="a=sendrecv", version=2)))
    assert sip_summary(effects) == [(PBX, "ACK")]
    ack = caller.last_request("ACK")
    assert ack.headers.get("cseq") == f"{relayed.cseq.seq} ACK"
    assert sdp_without_origin(ack.body) == anchored_lines(A_PORT, "a=sendrecv")
    assert SetMediaRemote(call_ref=ref, leg=MediaLeg.B, remote=CALLEE_MEDIA) in effects
    hang_up(caller, callee)
    h.assert_idle()


# The same codecs both ways, so that each party's SDP offers what the other's answers.
PCMU_FROM_CALLER = sdp(
    "v=0",
    "o=caller 1001 5 IN IP4 127.0.0.2",
    "s=-",
    "c=IN IP4 127.0.0.2",
    "t=0 0",
    "m=audio 40000 RTP/AVP 0 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/8000",
)
PCMU_FROM_CALLEE = sdp(
    "v=0",
    "o=callee 2002 5 IN IP4 127.0.0.3",
    "s=-",
    "c=IN IP4 127.0.0.3",
    "t=0 0",
    "m=audio 30000 RTP/AVP 0 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/8000",
)


@pytest.mark.parametrize("method", ["INVITE", "UPDATE"])
@pytest.mark.parametrize("refresher", ["caller", "callee"])
def test_a_session_refresh_after_the_bridge_leaves_callheralds_sdp_and_its_version_as_they_were(
    method: str, refresher: str
) -> None:
    # RFC 3264 §8: the version grows only when the session changes. A refresh offering the same
    # SDP, answered with the same SDP, gives each party callherald's SDP byte for byte as before:
    # a version change would make many SBCs and PBXs renegotiate the media.
    h = Harness()
    caller, callee = dial(h, body=PCMU_FROM_CALLER)
    callee.answer(body=PCMU_FROM_CALLEE)
    caller.ack_answer()
    own: dict[FakeUa, bytes] = {caller: PCMU_FROM_CALLER, callee: PCMU_FROM_CALLEE}
    sent_to: dict[FakeUa, bytes] = {
        caller: caller.last_response("INVITE", 200).body,
        callee: callee.invite.body,
    }
    offerer, answerer = (caller, callee) if refresher == "caller" else (callee, caller)
    for _ in range(2):
        offerer.send(offerer.request(method, body=own[offerer]))
        relayed = answerer.last_request(method)
        assert relayed.body == sent_to[answerer]
        answerer.reply(relayed, 200, body=own[answerer])
        ok = offerer.last_response(method, 200)
        assert ok.body == sent_to[offerer]
        if method == "INVITE":
            offerer.send(offerer.ack_2xx(ok))
    # A change is a new version, one more than the last.
    offerer.send(offerer.request("INVITE", body=offer_from(offerer, version=9)))
    assert (
        origin_of(answerer.last_request("INVITE").body).sess_version
        == origin_of(sent_to[answerer]).sess_version + 1
    )
    hang_up(caller, callee)
    h.assert_idle()


def test_a_refresh_without_sdp_after_the_bridge_leaves_callheralds_sdp_and_its_version_as_they_were() -> None:
    # To a re-INVITE without SDP the 2xx offers and the ACK answers (RFC 3261 §14.1): the same
    # session both ways keeps callherald's versions too.
    h = Harness()
    caller, callee = dial(h, body=PCMU_FROM_CALLER)
    callee.answer(body=PCMU_FROM_CALLEE)
    caller.ack_answer()
    to_caller, to_callee = caller.last_response("INVITE", 200).body, callee.invite.body
    callee.send(callee.request("INVITE"))
    caller.reply(caller.last_request("INVITE"), 200, body=PCMU_FROM_CALLER)
    ok = callee.last_response("INVITE", 200)
    assert ok.body == to_callee
    callee.send(callee.ack_2xx(ok, body=PCMU_FROM_CALLEE))
    assert caller.last_request("ACK").body == to_caller
    hang_up(caller, callee)
    h.assert_idle()


def test_unanswered_reinvite_gets_408_and_ends_the_call() -> None:
    h = Harness()
    caller, callee = connect(h)
    caller.send(caller.request("INVITE", body=offer_from(caller)))
    h.advance(32.0)

    assert times_of(h, caller, "408 INVITE") == [32.0]
    assert times_of(h, caller, "BYE") == [32.0]
    assert times_of(h, callee, "BYE") == [32.0]
    assert h.ended() == [CallEnded(call_ref=h.call_ref(), reason="reinvite-timeout")]
    h.assert_idle()


def test_reinvite_481_ends_the_call() -> None:
    h = Harness()
    caller, callee = connect(h)
    caller.send(caller.request("INVITE", body=offer_from(caller)))
    effects = callee.reply(callee.last_request("INVITE"), 481)

    assert sip_summary(effects) == [(CARRIER, "ACK"), (PBX, "481 INVITE"), (PBX, "BYE"), (CARRIER, "BYE")]
    assert h.ended() == [CallEnded(call_ref=h.call_ref(), reason="reinvite-481")]
    h.assert_idle()


# CANCEL of a re-INVITE (RFC 3261 §9) -----------------------------------------------------------


@WAYS
@pytest.mark.parametrize("from_leg", ["a", "b"])
def test_a_cancelled_reinvite_gets_487_and_the_one_relayed_is_cancelled(way: Way, from_leg: str) -> None:
    # §9.2: the CANCEL matches the re-INVITE's server transaction and gets 200, the re-INVITE 487;
    # callherald, a UAC towards the far party, cancels the re-INVITE it relayed (§9.1).
    h = Harness()
    caller, callee = connect(h, way)
    sender, other = (caller, callee) if from_leg == "a" else (callee, caller)
    ref = h.call_ref()
    reinvite = sender.request("INVITE", body=offer_from(sender))
    sender.send(reinvite)
    relayed = other.last_request("INVITE")
    other.reply(relayed, 100)
    effects = sender.send(cancel_of(reinvite))

    assert sip_summary(effects) == [
        (sender.address, "200 CANCEL"),
        (sender.address, "487 INVITE"),
        (other.address, "CANCEL"),
    ]
    terminated = sender.last_response("INVITE", 487)
    assert terminated.headers.get("cseq") == reinvite.headers.get("cseq")
    assert terminated.to.tag == sender.remote_tag == sender.last_response("CANCEL", 200).to.tag
    cancel = other.last_request("CANCEL")
    assert cancel.headers.fields("via") == relayed.headers.fields("via")[:1]
    assert (cancel.uri, cancel.call_id) == (relayed.uri, relayed.call_id)
    assert cancel.headers.get("cseq") == f"{relayed.cseq.seq} CANCEL"
    assert (cancel.from_.tag, cancel.to.tag) == (relayed.from_.tag, relayed.to.tag)
    # The sender keeps the session it had (§14.2): its hold is over.
    holds = [e.text for e in h.effects if isinstance(e, LogEvent) and e.text.startswith("hold from")]
    assert holds == [f"hold from leg {leg_of(sender)}", f"hold from leg {leg_of(sender)} cancelled"]
    assert sender.send(ack_of_failure(reinvite, terminated)) == []

    # Until the far party answers the cancelled re-INVITE, no other may start (§14.1).
    assert sip_summary(sender.send(sender.request("INVITE", body=offer_from(sender, version=3)))) == [
        (sender.address, "491 INVITE")
    ]
    other.reply(cancel, 200)
    assert sip_summary(other.reply(relayed, 487)) == [(other.address, "ACK")]
    assert [r.status for r in sender.responses("INVITE") if r.cseq.seq == reinvite.cseq.seq] == [100, 487]

    # The call goes on, and the next re-INVITE is relayed as before.
    sender.send(sender.request("INVITE", body=offer_from(sender, version=4)))
    effects = other.reply(other.last_request("INVITE"), 200, body=offer_from(other, direction="a=recvonly"))
    assert sip_summary(effects) == [(other.address, "ACK"), (sender.address, "200 INVITE")]
    sender.send(sender.ack_2xx(sender.last_response("INVITE", 200)))
    assert h.b2bua.active_calls == 1
    assert [e for e in h.effects if isinstance(e, CallEnded)] == []
    hang_up(caller, callee)
    assert h.ended() == [CallEnded(call_ref=ref, reason="bye-from-a")]
    h.assert_idle()


def test_a_reinvite_cancelled_before_the_far_party_sent_a_provisional_is_cancelled_after_one() -> None:
    # §9.1: a CANCEL may not be sent before a provisional response.
    h = Harness()
    caller, callee = connect(h)
    reinvite = caller.request("INVITE", body=offer_from(caller))
    caller.send(reinvite)
    relayed = callee.last_request("INVITE")
    effects = caller.send(cancel_of(reinvite))

    assert sip_summary(effects) == [(PBX, "200 CANCEL"), (PBX, "487 INVITE")]
    assert sip_summary(callee.reply(relayed, 100)) == [(CARRIER, "CANCEL")]
    assert sip_summary(callee.reply(relayed, 180)) == []  # one CANCEL
    callee.reply(callee.last_request("CANCEL"), 200)
    callee.reply(relayed, 487)
    h.advance(64.0)
    assert h.b2bua.active_calls == 1
    hang_up(caller, callee)
    h.assert_idle()


@pytest.mark.parametrize("with_sdp", [True, False], ids=["offer", "no-offer"])
def test_a_2xx_crossing_the_cancel_of_a_reinvite_is_acked_and_the_session_before_offered_again(
    with_sdp: bool,
) -> None:
    # §9.1: the far party may answer before the CANCEL reaches it. Its 2xx is ACKed, and as the
    # sender got 487 and keeps the session it had (§14.2), the far party is offered the session it
    # had before again. To a re-INVITE without SDP the 2xx is an offer (§14.1), answered in the ACK
    # with every stream rejected (RFC 3264 §6), as the ACK must answer it (§13.2.1).
    h = Harness()
    caller, callee = connect(h)
    before = callee.inbox()[0].body  # callherald's INVITE to the callee: its session so far
    reinvite = caller.request("INVITE", body=offer_from(caller) if with_sdp else b"")
    caller.send(reinvite)
    relayed = callee.last_request("INVITE")
    callee.reply(relayed, 100)
    caller.send(cancel_of(reinvite))
    answer = offer_from(callee, direction="a=recvonly" if with_sdp else "a=sendrecv", version=3)
    effects = callee.reply(relayed, 200, body=answer)

    assert sip_summary(effects) == [(CARRIER, "ACK"), (CARRIER, "INVITE")]
    ack = callee.last_request("ACK")
    assert ack.headers.get("cseq") == f"{relayed.cseq.seq} ACK"
    if with_sdp:
        assert ack.body == b""
    else:
        assert SessionDescription.parse(ack.body).media[0].port == 0
    again = callee.last_request("INVITE")
    assert sdp_without_origin(again.body) == sdp_without_origin(before)
    assert origin_of(again.body).sess_id == origin_of(before).sess_id
    assert [r.status for r in caller.responses("INVITE") if r.cseq.seq == reinvite.cseq.seq] == [100, 487]
    assert sip_summary(callee.reply(relayed, 200, body=answer)) == [(CARRIER, "ACK")]  # resent: ACKed again

    effects = callee.reply(again, 200, body=offer_from(callee, direction="a=sendrecv", version=4))
    assert sip_summary(effects) == [(CARRIER, "ACK")]
    assert h.b2bua.active_calls == 1
    hang_up(caller, callee)
    h.assert_idle()


def test_a_cancel_of_a_reinvite_already_answered_gets_200_and_changes_nothing() -> None:
    # §9.2: once the re-INVITE has its final response the CANCEL has no effect; one that matches
    # no transaction gets 481.
    h = Harness()
    caller, callee = connect(h)
    reinvite = caller.request("INVITE", body=offer_from(caller))
    caller.send(reinvite)
    callee.reply(callee.last_request("INVITE"), 200, body=offer_from(callee, direction="a=recvonly"))
    ok = caller.last_response("INVITE", 200)
    effects = caller.send(cancel_of(reinvite))

    assert sip_summary(effects) == [(PBX, "200 CANCEL")]
    assert caller.last_response("CANCEL", 200).to.tag == ok.to.tag
    assert caller.send(caller.ack_2xx(ok)) == []
    assert callee.requests("CANCEL") == []
    stray = cancel_of(caller.request("INVITE", body=offer_from(caller, version=3)))
    assert sip_summary(caller.send(stray)) == [(PBX, "481 CANCEL")]
    hang_up(caller, callee)
    h.assert_idle()


@pytest.mark.parametrize("method", ["INVITE", "UPDATE"])
def test_an_offer_while_callheralds_own_reoffer_is_unanswered_gets_491_and_changes_nothing(
    method: str,
) -> None:
    # RFC 3261 §14.1, RFC 3311 §5.1: callherald, the far party's UAC, starts no offer there while
    # its own re-offer of the session before (after a 2xx crossed a CANCEL) is unanswered; the
    # sender gets 491 (§14.2) and keeps the session it had, its hold never begun.
    h = Harness()
    caller, callee = connect(h)
    reinvite = caller.request("INVITE", body=offer_from(caller))
    caller.send(reinvite)
    relayed = callee.last_request("INVITE")
    callee.reply(relayed, 100)
    caller.send(cancel_of(reinvite))
    caller.send(ack_of_failure(reinvite, caller.last_response("INVITE", 487)))
    callee.reply(relayed, 200, body=offer_from(callee, direction="a=recvonly", version=3))
    reoffer = callee.last_request("INVITE")
    assert reoffer.cseq.seq > relayed.cseq.seq
    callee.new_messages()
    effects = caller.send(caller.request(method, body=offer_from(caller, version=3)))

    assert sip_summary(effects) == [(PBX, f"491 {method}")]
    assert callee.new_messages() == []
    holds = [e.text for e in h.effects if isinstance(e, LogEvent) and e.text.startswith("hold from")]
    assert holds == ["hold from leg a", "hold from leg a cancelled"]

    # Once the re-offer is answered, the next offer is relayed as before.
    callee.reply(reoffer, 200, body=offer_from(callee, direction="a=sendrecv", version=4))
    effects = caller.send(caller.request(method, body=offer_from(caller, version=4)))
    assert (CARRIER, method) in sip_summary(effects)
    callee.reply(callee.last_request(method), 200, body=offer_from(callee, direction="a=recvonly", version=5))
    if method == "INVITE":
        caller.send(caller.ack_2xx(caller.last_response("INVITE", 200)))
    hang_up(caller, callee)
    h.assert_idle()


@pytest.mark.parametrize("update_from", ["sender", "other"])
def test_an_update_offer_while_a_cancelled_reinvite_awaits_the_far_answer_gets_491(update_from: str) -> None:
    # RFC 3311 §5.1, §5.2: the re-INVITE callherald relayed, though its sender cancelled it, still
    # carries an offer the far party has not answered: no UPDATE with another crosses it, from
    # either party.
    h = Harness()
    caller, callee = connect(h)
    reinvite = caller.request("INVITE", body=offer_from(caller))
    caller.send(reinvite)
    relayed = callee.last_request("INVITE")
    callee.reply(relayed, 100)
    caller.send(cancel_of(reinvite))
    caller.send(ack_of_failure(reinvite, caller.last_response("INVITE", 487)))
    sender, far = (caller, callee) if update_from == "sender" else (callee, caller)
    far.new_messages()
    effects = sender.send(sender.request("UPDATE", body=offer_from(sender, version=3)))

    assert sip_summary(effects) == [(sender.address, "491 UPDATE")]
    assert far.new_messages() == []
    holds = [e.text for e in h.effects if isinstance(e, LogEvent) and e.text.startswith("hold from")]
    assert holds == ["hold from leg a", "hold from leg a cancelled"]

    callee.reply(callee.last_request("CANCEL"), 200)
    callee.reply(relayed, 487)
    effects = sender.send(sender.request("UPDATE", body=offer_from(sender, version=4)))
    assert sip_summary(effects) == [(far.address, "UPDATE")]
    hang_up(caller, callee)
    h.assert_idle()


@pytest.mark.parametrize("from_leg", ["a", "b"])
def test_a_cancel_of_a_pending_update_gets_200_and_changes_nothing(from_leg: str) -> None:
    # RFC 3261 §9.2: a CANCEL that matches a transaction gets 200 whatever that request's method;
    # it has no effect on a request other than INVITE, which takes its course.
    h = Harness()
    caller, callee = connect(h)
    sender, other = (caller, callee) if from_leg == "a" else (callee, caller)
    update = sender.request("UPDATE", body=offer_from(sender, direction="a=sendrecv"))
    sender.send(update)
    relayed = other.last_request("UPDATE")
    effects = sender.send(cancel_of(update))

    assert sip_summary(effects) == [(sender.address, "200 CANCEL")]
    assert sender.last_response("CANCEL", 200).to.tag == sender.remote_tag
    assert other.requests("CANCEL") == []
    effects = other.reply(relayed, 200, body=offer_from(other, direction="a=sendrecv"))
    assert sip_summary(effects) == [(sender.address, "200 UPDATE")]
    stray = cancel_of(sender.request("UPDATE", body=offer_from(sender, version=3)))
    assert sip_summary(sender.send(stray)) == [(sender.address, "481 CANCEL")]
    hang_up(caller, callee)
    h.assert_idle()


def test_update_with_sdp_is_relayed_and_its_answer_relayed_back() -> None:
    h = Harness()
    caller, callee = connect(h)
    ref = h.call_ref()
    effects = caller.send(caller.request("UPDATE", body=offer_from(caller, direction="a=sendrecv")))

    assert sip_summary(effects) == [(CARRIER, "UPDATE")]
    update = callee.last_request("UPDATE")
    assert sdp_without_origin(update.body) == anchored_lines(B_PORT, "a=sendrecv")
    assert update.headers.get("cseq") == "2 UPDATE"
    assert update.headers.get("contact") == "<sip:callherald@127.0.0.1:5070>"

    effects = callee.reply(update, 200, body=offer_from(callee, direction="a=sendrecv"))
    assert SetMediaRemote(call_ref=ref, leg=MediaLeg.A, remote=CALLER_MEDIA) in effects
    assert sip_summary(effects) == [(PBX, "200 UPDATE")]
    ok = caller.last_response("UPDATE", 200)
    assert ok.to.tag == caller.remote_tag
    assert sdp_without_origin(ok.body) == anchored_lines(A_PORT, "a=sendrecv")
    assert ok.headers.get("contact") == "<sip:callherald@127.0.0.1:5060>"
    assert SetMediaRemote(call_ref=ref, leg=MediaLeg.B, remote=CALLEE_MEDIA) in effects
    h.advance(10.0)
    assert len(caller.responses("UPDATE")) == 1  # no 2xx retransmission outside INVITE
    hang_up(caller, callee)
    h.assert_idle()


@pytest.mark.parametrize("from_leg", ["a", "b"])
@pytest.mark.parametrize("status", [200, 415])
def test_info_is_relayed_with_its_body_and_response(from_leg: str, status: int) -> None:
    h = Harness()
    caller, callee = connect(h)
    sender, other = (caller, callee) if from_leg == "a" else (callee, caller)
    body = b"Signal=5\r\nDuration=160\r\n"
    info = sender.request(
        "INFO", body=body, content_type="application/dtmf-relay", extra=(("Info-Package", "dtmf"),)
    )
    effects = sender.send(info)

    assert sip_summary(effects) == [(other.address, "INFO")]
    relayed = other.last_request("INFO")
    assert relayed.body == body
    assert relayed.headers.get("content-type") == "application/dtmf-relay"
    assert relayed.headers.get("info-package") == "dtmf"
    assert relayed.call_id == other.call_id
    assert non_sip(effects) == []

    effects = other.reply(relayed, status)
    assert sip_summary(effects) == [(sender.address, f"{status} INFO")]
    response = sender.last_response("INFO")
    assert response.headers.get("cseq") == info.headers.get("cseq")
    assert response.to.tag == sender.remote_tag
    hang_up(caller, callee)
    h.assert_idle()


@pytest.mark.parametrize("from_leg", ["a", "b"])
def test_a_relayed_info_still_unanswered_at_a_bye_gets_487_not_a_late_408(from_leg: str) -> None:
    # RFC 3261 §15.1.2: requests pending on a dialog a BYE ends are answered 487.
    h = Harness()
    caller, callee = connect(h)
    sender, other = (caller, callee) if from_leg == "a" else (callee, caller)
    info = sender.request("INFO", body=b"Signal=5\r\n", content_type="application/dtmf-relay")
    sender.send(info)
    relayed = other.last_request("INFO")
    effects = caller.send(caller.request("BYE"))

    assert (sender.address, "487 INFO") in sip_summary(effects)
    assert sender.last_response("INFO").headers.get("cseq") == info.headers.get("cseq")
    callee.reply(callee.last_request("BYE"), 200)
    other.reply(relayed, 200)  # late: the call is over
    h.advance(64.0)
    assert [r.status for r in sender.responses("INFO")] == [487]
    h.assert_idle()


@pytest.mark.parametrize("from_leg", ["a", "b"])
@pytest.mark.parametrize("bye_from", ["sender", "other"])
def test_a_relayed_reinvite_still_unanswered_at_a_bye_gets_487(from_leg: str, bye_from: str) -> None:
    # RFC 3261 §15.1.2: the re-INVITE pending on a dialog a BYE ends is answered 487, though the
    # far party never answers the one relayed to it; a 2xx it still sends is ACKed (§13.2.2.4).
    h = Harness()
    caller, callee = connect(h)
    sender, other = (caller, callee) if from_leg == "a" else (callee, caller)
    reinvite = sender.request("INVITE", body=offer_from(sender))
    sender.send(reinvite)
    relayed = other.last_request("INVITE")
    other.reply(relayed, 100)
    leaving, staying = (sender, other) if bye_from == "sender" else (other, sender)
    effects = leaving.send(leaving.request("BYE"))

    assert (sender.address, "487 INVITE") in sip_summary(effects)
    terminated = sender.last_response("INVITE", 487)
    assert terminated.headers.get("cseq") == reinvite.headers.get("cseq")
    sender.send(ack_of_failure(reinvite, terminated))
    staying.reply(staying.last_request("BYE"), 200)
    effects = other.reply(relayed, 200, body=offer_from(other, direction="a=recvonly"))
    assert sip_summary(effects) == [(other.address, "ACK")]
    h.advance(64.0)
    assert [r.status for r in sender.responses("INVITE") if r.cseq.seq == reinvite.cseq.seq] == [100, 487]
    h.assert_idle()


@pytest.mark.parametrize("from_leg", ["a", "b"])
@pytest.mark.parametrize("method", ["INVITE", "INFO"])
@pytest.mark.parametrize("ending", ["rtp-timeout", "shutdown"])
def test_a_relayed_request_still_unanswered_when_callherald_ends_the_call_gets_487(
    from_leg: str, method: str, ending: str
) -> None:
    # RFC 3261 §15.1.2 as for a party's BYE: callherald's own BYE (no RTP, a shutdown) ends the
    # dialog the request was pending on, and its sender gets 487 first, not silence until its
    # Timer B or F; a 2xx the far party still sends a relayed re-INVITE is ACKed (§13.2.2.4).
    h = Harness()
    caller, callee = connect(h)
    sender, other = (caller, callee) if from_leg == "a" else (callee, caller)
    if method == "INVITE":
        request = sender.request("INVITE", body=offer_from(sender))
    else:
        request = sender.request("INFO", body=b"Signal=5\r\n", content_type="application/dtmf-relay")
    sender.send(request)
    relayed = other.last_request(method)
    other.reply(relayed, 100)
    effects = h.media_inactive(h.call_ref()) if ending == "rtp-timeout" else h.shutdown()

    summary = sip_summary(effects)
    assert summary.index((sender.address, f"487 {method}")) < summary.index((sender.address, "BYE"))
    terminated = sender.last_response(method, 487)
    assert terminated.headers.get("cseq") == request.headers.get("cseq")
    if method == "INVITE":
        sender.send(ack_of_failure(request, terminated))
    for party in (caller, callee):
        party.reply(party.last_request("BYE"), 200)
    if method == "INVITE":
        effects = other.reply(relayed, 200, body=offer_from(other, direction="a=recvonly"))
    else:
        effects = other.reply(relayed, 200)
    assert sip_summary(effects) == ([(other.address, "ACK")] if method == "INVITE" else [])
    h.advance(64.0)
    finals = [
        r.status for r in sender.responses(method) if r.cseq.seq == request.cseq.seq and r.status >= 200
    ]
    assert finals == [487]  # one final response, and no late one for the far party's 2xx
    h.assert_idle()


def test_options_in_dialog_is_answered_here() -> None:
    h = Harness()
    caller, callee = connect(h)
    effects = caller.send(caller.request("OPTIONS"))
    assert sip_summary(effects) == [(PBX, "200 OPTIONS")]
    assert caller.last_response("OPTIONS").headers.get("allow") == ALLOWED_METHODS
    assert callee.new_messages() == []
    hang_up(caller, callee)
    h.assert_idle()


# A refused offer (RFC 3261 §14.1, §14.2; RFC 3311 §5.1) ------------------------------------------

MOVED_HOST = "127.0.0.77"  # where an offer says the sender's media goes from now on
# An answer with no codec allowed here, which callherald refuses for the offerer with 488.
G729_ANSWER = ("m=audio 30000 RTP/AVP 18", "a=rtpmap:18 G729/8000")


def last_remote(h: Harness, leg: MediaLeg) -> Address | None:
    """Where the relay sends ``leg``'s media now: the last ``SetMediaRemote`` for it."""
    remotes = [e.remote for e in h.effects if isinstance(e, SetMediaRemote) and e.leg is leg]
    assert remotes, f"no SetMediaRemote for leg {leg}"
    return remotes[-1]


def refuse_offer(h: Harness, answerer: FakeUa, relayed: Request, refusal: str) -> list[Effect]:
    """The offer ``relayed`` to ``answerer`` is refused: by its non-2xx, by callherald's 488 for
    an answer with no codec allowed here (the answerer, offered the session as it was again,
    takes it), or by no answer at all (408)."""
    if refusal == "no-answer":
        return h.advance(32.0)  # Timer F
    if refusal == "no-codec-in-answer":
        host, port = CALLER_MEDIA if isinstance(answerer, FakeUac) else CALLEE_MEDIA
        effects = answerer.reply(relayed, 200, body=party_sdp(host, port, *G729_ANSWER, version=2))
        back = answerer.last_request("INVITE")
        answerer.reply(back, 200, body=offer_from(answerer, direction="a=sendrecv", version=3))
        return effects
    return answerer.reply(relayed, int(refusal))


OFFER_REFUSALS = [
    pytest.param(method, refusal, id=f"{method}-{refusal}")
    for method in ("INVITE", "UPDATE")
    for refusal in ("488", "491", "500", "603", "no-codec-in-answer")
] + [pytest.param("UPDATE", "no-answer", id="UPDATE-no-answer")]


@pytest.mark.parametrize(("method", "refusal"), OFFER_REFUSALS)
@pytest.mark.parametrize("sender_is", ["caller", "callee"])
def test_a_refused_offer_leaves_the_senders_media_where_it_was(
    method: str, refusal: str, sender_is: str
) -> None:
    # RFC 3264 §8: the offerer must receive at the new address from its offer on, the answerer
    # sends there once it answered. Refused, the session stays as it was (RFC 3261 §14.2): the
    # relay goes on sending to the old address.
    h = Harness()
    caller, callee = connect(h)
    sender, other = (caller, callee) if sender_is == "caller" else (callee, caller)
    leg = leg_of(sender)
    before = last_remote(h, leg)
    sender.send(sender.request(method, body=offer_from(sender, direction="a=sendrecv", host=MOVED_HOST)))
    refuse_offer(h, other, other.last_request(method), refusal)
    expected = {"no-codec-in-answer": "488", "no-answer": "408"}.get(refusal, refusal)
    assert sender.statuses(method)[-1] == int(expected)
    assert last_remote(h, leg) == before
    assert h.b2bua.active_calls == 1
    hang_up(caller, callee)
    h.advance(64.0)
    h.assert_idle()


@pytest.mark.parametrize("method", ["INVITE", "UPDATE"])
def test_the_media_capabilities_in_a_488_move_no_media(method: str) -> None:
    # A 488 may describe what its sender can take (RFC 3261 §21.4.26); only a 2xx answers the
    # offer (§13.2.1, §14.2), so neither party's media goes anywhere new.
    h = Harness()
    caller, callee = connect(h)
    caller.send(caller.request(method, body=offer_from(caller, direction="a=sendrecv", host=MOVED_HOST)))
    capabilities = offer_from(callee, direction="a=sendrecv", host="127.0.0.88")
    callee.reply(callee.last_request(method), 488, body=capabilities)

    assert caller.statuses(method)[-1] == 488
    assert last_remote(h, MediaLeg.A) == CALLER_MEDIA
    assert last_remote(h, MediaLeg.B) == CALLEE_MEDIA
    hang_up(caller, callee)
    h.advance(64.0)
    h.assert_idle()


@pytest.mark.parametrize("method", ["INVITE", "UPDATE"])
@pytest.mark.parametrize("sender_is", ["caller", "callee"])
def test_an_accepted_offer_moves_the_senders_media_when_its_2xx_is_relayed(
    method: str, sender_is: str
) -> None:
    h = Harness()
    caller, callee = connect(h)
    ref = h.call_ref()
    sender, other = (caller, callee) if sender_is == "caller" else (callee, caller)
    leg = leg_of(sender)
    _, port = CALLER_MEDIA if sender is caller else CALLEE_MEDIA
    offered = sender.send(
        sender.request(method, body=offer_from(sender, direction="a=sendrecv", host=MOVED_HOST))
    )
    assert [e for e in offered if isinstance(e, SetMediaRemote)] == []

    answered = other.reply(other.last_request(method), 200, body=offer_from(other, direction="a=sendrecv"))
    assert SetMediaRemote(call_ref=ref, leg=leg, remote=(MOVED_HOST, port)) in answered
    assert last_remote(h, leg) == (MOVED_HOST, port)
    if method == "INVITE":
        sender.send(sender.ack_2xx(sender.last_response("INVITE", 200)))
    hang_up(caller, callee)
    h.assert_idle()


# Late offer (RFC 3261 §13.2.1) -----------------------------------------------------------------


def test_late_offer_answer_rides_in_the_acks() -> None:
    h = Harness()
    caller, callee = dial(h, body=b"")
    ref = h.call_ref()
    assert callee.invite.body == b""
    assert callee.invite.headers.fields("content-type") == []
    assert callee.invite.headers.get("content-length") == "0"
    assert SetMediaRemote(call_ref=ref, leg=MediaLeg.A, remote=None) in h.effects

    ring(caller, callee)
    effects = callee.answer(body=offer_from(callee, direction="a=sendrecv", version=1))
    assert sip_summary(effects) == [(PBX, "200 INVITE")]  # no ACK to b before the answer
    ok = caller.last_response("INVITE", 200)
    assert sdp_without_origin(ok.body) == anchored_lines(A_PORT, "a=sendrecv")
    assert non_sip(effects) == [SetMediaRemote(call_ref=ref, leg=MediaLeg.B, remote=CALLEE_MEDIA)]

    effects = caller.ack_answer(body=offer_from(caller, direction="a=sendrecv", version=1))
    assert sip_summary(effects) == [(CARRIER, "ACK")]
    ack = callee.last_request("ACK")
    assert ack.headers.get("cseq") == "1 ACK"
    assert ack.headers.get("content-type") == "application/sdp"
    assert sdp_without_origin(ack.body) == anchored_lines(B_PORT, "a=sendrecv")
    assert origin_of(ack.body).sess_version == 1
    assert non_sip(effects) == [SetMediaRemote(call_ref=ref, leg=MediaLeg.A, remote=CALLER_MEDIA)]

    hang_up(caller, callee)
    h.assert_idle()


def test_late_offer_2xx_retransmission_waits_for_the_answer() -> None:
    h = Harness()
    caller, callee = dial(h, body=b"")
    ring(caller, callee)
    callee.answer(body=offer_from(callee, direction="a=sendrecv", version=1))
    effects = callee.answer(body=offer_from(callee, direction="a=sendrecv", version=1))  # retransmission

    assert sip_summary(effects) == []
    caller.ack_answer(body=offer_from(caller, direction="a=sendrecv", version=1))
    (ack,) = callee.requests("ACK")
    assert ack.body != b""
    hang_up(caller, callee)
    h.assert_idle()


def test_a_hold_in_the_answer_of_an_ack_counts_as_the_answerers_hold_and_reaches_the_offerer() -> None:
    # A re-INVITE without SDP: the callee's 2xx offers, the caller's ACK answers sendonly
    # (RFC 3261 §13.2.1): the caller holds the call, as by an answer in a 2xx, and the callee
    # gets that answer in callherald's ACK.
    h = Harness()
    caller, callee = connect(h)
    ref = h.call_ref()
    caller.send(caller.request("INVITE"))
    relayed = callee.last_request("INVITE")
    assert relayed.body == b""
    callee.reply(relayed, 200, body=offer_from(callee, direction="a=sendrecv"))
    ok = caller.last_response("INVITE", 200)

    effects = caller.send(caller.ack_2xx(ok, body=offer_from(caller, direction="a=sendonly")))
    assert sip_summary(effects) == [(CARRIER, "ACK")]
    assert LogEvent(level="info", text="hold from leg a", call_ref=ref) in effects
    ack = callee.last_request("ACK")
    assert sdp_without_origin(ack.body) == anchored_lines(B_PORT, "a=sendonly")

    hang_up(caller, callee)
    h.assert_idle()


# Requests answered by callherald itself ----------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    name: str
    request: Request
    statuses: list[int]
    headers: dict[str, str]
    logged: str | None = None  # why, in the warning a refused new call logs


def refusals() -> list[Refusal]:
    caller = FakeUac(Harness(), address=PBX, side=Side.PBX)
    no_codec = sdp(
        "v=0",
        "o=caller 1 1 IN IP4 127.0.0.2",
        "s=-",
        "c=IN IP4 127.0.0.2",
        "t=0 0",
        "m=audio 40000 RTP/AVP 18",
        "a=rtpmap:18 G729/8000",
    )
    allow = {"allow": ALLOWED_METHODS}
    return [
        Refusal(
            name="options",
            request=caller.out_of_dialog("OPTIONS"),
            statuses=[200],
            headers={**allow, "accept": ACCEPTED_BODY_TYPES},
        ),
        Refusal(name="unknown-method", request=caller.out_of_dialog("FROB"), statuses=[501], headers=allow),
        Refusal(
            name="message",
            request=caller.out_of_dialog("MESSAGE", body=b"hi", content_type="text/plain"),
            statuses=[405],
            headers=allow,
        ),
        Refusal(name="subscribe", request=caller.out_of_dialog("SUBSCRIBE"), statuses=[405], headers=allow),
        Refusal(
            name="bye-unknown-dialog",
            request=caller.out_of_dialog("BYE", to_tag="gone"),
            statuses=[481],
            headers={},
        ),
        Refusal(name="bye-no-to-tag", request=caller.out_of_dialog("BYE"), statuses=[481], headers={}),
        Refusal(
            name="info-unknown-dialog",
            request=caller.out_of_dialog("INFO", to_tag="gone"),
            statuses=[481],
            headers={},
        ),
        Refusal(
            name="max-forwards-0", request=caller.invite(DIALLED, max_forwards=0), statuses=[483], headers={}
        ),
        Refusal(
            name="require-100rel",
            request=caller.invite(DIALLED, extra=(("Require", "100rel"),)),
            statuses=[420],
            headers={"unsupported": "100rel"},
            logged="with 420: it requires 100rel, which callherald does not support",
        ),
        Refusal(
            name="no-allowed-codec",
            request=caller.invite(DIALLED, body=no_codec),
            statuses=[100, 488],
            headers={"warning": '305 callherald "Incompatible media format"'},
            logged="with 488: no audio codec of its offer is allowed here (g722, pcma, pcmu)",
        ),
        Refusal(
            name="non-sdp-body",
            request=caller.invite(DIALLED, body=b"<xml/>", content_type="application/xml"),
            statuses=[415],
            headers={"accept": ACCEPTED_BODY_TYPES},
            logged="with 415: its body: a body of type application/xml without SDP",
        ),
        Refusal(
            name="multipart-with-a-required-isup-part",
            request=caller.invite(
                DIALLED,
                body=multipart_with_isup(CALLER_OFFER, disposition="signal;handling=required"),
                content_type=f"multipart/mixed;boundary={BOUNDARY}",
            ),
            statuses=[415],
            headers={"accept": ACCEPTED_BODY_TYPES},
            logged="with 415: its body: a body part of type application/isup that callherald must understand (RFC 5621 §9)",
        ),
        Refusal(
            name="multipart-without-a-boundary",
            request=caller.invite(
                DIALLED, body=multipart_with_isup(CALLER_OFFER), content_type="multipart/mixed"
            ),
            statuses=[400],
            headers={},
            logged="with 400: its body: multipart/mixed body without a boundary",
        ),
        Refusal(
            name="publish",
            request=caller.out_of_dialog("PUBLISH"),
            statuses=[405],
            headers=allow,
        ),
    ]


@pytest.mark.parametrize("case", refusals(), ids=lambda case: case.name)
def test_requests_refused_or_answered_here(case: Refusal) -> None:
    h = Harness()
    caller, _ = parties(h)
    effects = caller.send(case.request)

    assert [destination for destination, _ in sip_summary(effects)] == [PBX] * len(case.statuses)
    assert caller.statuses(case.request.method) == case.statuses
    final = caller.last_response(case.request.method)
    for name, value in case.headers.items():
        assert final.headers.fields(name) == [value], name
    assert final.to.tag is not None
    if case.request.to.tag is not None:
        assert final.to.tag == case.request.to.tag
    assert final.headers.get("call-id") == case.request.call_id
    if case.logged is None:
        assert non_sip(effects) == []
    else:
        source = f"{PBX[0]}:{PBX[1]}"
        expected = f"refused a call from pbx peer {source} {case.logged} (Call-ID {case.request.call_id})"
        assert non_sip(effects) == [LogEvent(level="warning", text=expected)]
    h.assert_idle()


def test_offer_with_only_dtmf_left_gets_488() -> None:
    h = Harness()
    caller, callee = parties(h)
    g729_and_dtmf = sdp(
        "v=0",
        "o=caller 1 1 IN IP4 127.0.0.2",
        "s=-",
        "c=IN IP4 127.0.0.2",
        "t=0 0",
        "m=audio 40000 RTP/AVP 18 101",
        "a=rtpmap:18 G729/8000",
        "a=rtpmap:101 telephone-event/8000",
    )
    caller.send(caller.invite(DIALLED, body=g729_and_dtmf))

    assert caller.statuses() == [100, 488]
    assert callee.inbox() == []
    h.assert_idle()


def test_a_reinvite_offering_no_allowed_codec_gets_488_and_the_call_goes_on() -> None:
    # RFC 3261 §20.43: the Warning says why (305 Incompatible media format).
    h = Harness()
    caller, callee = connect(h)
    g729 = sdp(
        "v=0",
        "o=caller 1 2 IN IP4 127.0.0.2",
        "s=-",
        "c=IN IP4 127.0.0.2",
        "t=0 0",
        "m=audio 40000 RTP/AVP 18",
    )
    caller.send(caller.request("INVITE", body=g729))
    refusal = caller.last_response("INVITE", 488)
    assert refusal.headers.get("warning") == '305 callherald "Incompatible media format"'
    assert callee.requests("INVITE")[-1].cseq.seq == callee.invite.cseq.seq  # nothing relayed
    assert h.b2bua.active_calls == 1
    caller.send(caller.ack_failure(refusal))
    hang_up(caller, callee)
    h.assert_idle()


def test_register_on_the_carrier_side_is_refused() -> None:
    h = Harness(make_settings(trunk_accounts=(trunk_account(),)))
    carrier = FakeUac(h, address=CARRIER, side=Side.CARRIER)
    effects = carrier.send(carrier.out_of_dialog("REGISTER"))
    assert sip_summary(effects) == [(CARRIER, "405 REGISTER")]
    # RFC 3261 §21.4.6: Allow names what this side accepts, which is not REGISTER.
    allow = carrier.last_response("REGISTER", 405).headers.get("allow") or ""
    assert allow.split(", ") == [
        "INVITE",
        "ACK",
        "CANCEL",
        "BYE",
        "OPTIONS",
        "INFO",
        "UPDATE",
        "REFER",
        "NOTIFY",
    ]
    h.assert_idle()


def test_invite_looping_back_gets_482() -> None:
    h = Harness()
    _, callee = dial(h)
    effects = h.receive(callee.invite, CARRIER, Side.CARRIER)  # the carrier routes our INVITE back to us

    assert sip_summary(effects) == [(CARRIER, "482 INVITE")]
    assert h.b2bua.active_calls == 1
    assert len(callee.requests("INVITE")) == 1
    callee.reply(callee.invite, 486)
    h.assert_idle()


def test_request_from_an_unknown_source_is_dropped_silently() -> None:
    h = Harness()
    caller, _ = parties(h)
    effects = h.receive(caller.invite(DIALLED), ("192.0.2.66", 5060), Side.PBX)

    assert effects == [LogEvent(level="debug", text="dropped INVITE from unknown 192.0.2.66")]
    assert h.b2bua.stats.rejected_unknown_source == 1
    h.assert_idle()


def second_call_refused_with_503(h: Harness, why: str) -> None:
    """A second caller's INVITE gets 503 with Retry-After (RFC 3261 §21.5.4), logged with ``why``."""
    second = FakeUac(h, name="second", address=("127.0.0.1", 5092), side=Side.PBX)
    effects = second.send(second.invite(DIALLED))

    assert sip_summary(effects) == [(second.address, "503 INVITE")]
    assert second.last_response("INVITE", 503).headers.fields("retry-after") == ["5"]
    assert non_sip(effects) == [
        LogEvent(
            level="warning",
            text=f"refused a call from pbx peer 127.0.0.1:5092 with 503: {why} (Call-ID second-call-1@127.0.0.1)",
        )
    ]


def test_over_capacity_gets_503_with_retry_after() -> None:
    h = Harness(make_settings(max_concurrent_calls=1))
    _, first_callee = dial(h)
    second_call_refused_with_503(h, "limits.max_concurrent_calls (1) reached")
    assert h.b2bua.stats.rejected_over_capacity == 1
    first_callee.reply(first_callee.invite, 486)
    h.assert_idle()


def test_call_attempts_over_the_rate_get_503_with_retry_after_until_a_token_comes_back() -> None:
    h = Harness(make_settings(max_new_calls_per_s=1))
    _, first_callee = dial(h)
    second_call_refused_with_503(h, "limits.max_new_calls_per_s (1) reached")
    assert h.b2bua.stats.rejected_overload == 1
    first_callee.reply(first_callee.invite, 486)
    h.advance(1.0)
    third = FakeUac(h, name="third", address=("127.0.0.1", 5094), side=Side.PBX)
    third.send(third.invite(DIALLED))
    assert third.last_response("INVITE", 100) is not None
    assert h.b2bua.active_calls == 1


def test_a_loop_that_keeps_running_late_sheds_new_calls_and_spares_the_calls_up() -> None:
    h = Harness(make_settings(overload_lag_s=0.25))
    assert h.b2bua.watches_loop_lag
    caller, callee = connect(h)
    late = [h.b2bua.loop_lag(0.4) for _ in range(3)]
    assert late[:2] == [[], []]
    assert late[2] == [
        LogEvent(
            level="warning",
            text="overloaded: the event loop ran 400 ms late (limits.overload_lag_ms 250); new calls are"
            " refused with 503 until it keeps time, calls up go on",
        )
    ]
    second = FakeUac(h, name="second", address=("127.0.0.1", 5092), side=Side.PBX)
    effects = second.send(second.invite(DIALLED))
    assert sip_summary(effects) == [(second.address, "503 INVITE")]
    assert second.last_response("INVITE", 503).headers.fields("retry-after") == ["5"]
    assert h.b2bua.stats.rejected_overload == 1
    # The call up is not touched: its re-INVITE (RFC 3261 §14) is relayed, not shed.
    effects = caller.send(caller.request("INVITE", body=offer_from(caller)))
    assert sip_summary(effects) == [(caller.address, "100 INVITE"), (callee.address, "INVITE")]
    timely = [h.b2bua.loop_lag(0.01) for _ in range(10)]
    assert timely[:9] == [[]] * 9
    assert timely[9] == [
        LogEvent(
            level="warning",
            text="no longer overloaded: the event loop keeps time again; new calls are accepted",
        )
    ]
    third = FakeUac(h, name="third", address=("127.0.0.1", 5094), side=Side.PBX)
    third.send(third.invite(DIALLED))
    assert third.last_response("INVITE", 100) is not None


def test_without_an_overload_limit_the_loop_is_not_watched() -> None:
    h = Harness(make_settings(overload_lag_s=0))
    assert not h.b2bua.watches_loop_lag
    assert [h.b2bua.loop_lag(9.0) for _ in range(5)] == [[]] * 5
    dial(h)
    assert h.b2bua.active_calls == 1


@pytest.mark.parametrize(("port_max", "calls_before"), [(20003, 1), (20001, 0)])
def test_port_pool_exhausted_gets_503(port_max: int, calls_before: int) -> None:
    h = Harness(make_settings(rtp_port_max=port_max))
    callees = [dial(h)[1] for _ in range(calls_before)]
    late = FakeUac(h, name="late", address=("127.0.0.1", 5092), side=Side.PBX)
    effects = late.send(late.invite(DIALLED, call_id="late-1@127.0.0.1"))

    assert sip_summary(effects) == [(late.address, "503 INVITE")]
    assert late.last_response("INVITE", 503).headers.fields("retry-after") == ["5"]
    assert h.b2bua.ports_available == 0 if calls_before else h.b2bua.ports_capacity
    for callee in callees:
        callee.reply(callee.invite, 486)
    h.assert_idle()


# Media events ------------------------------------------------------------------------------------


def test_media_inactive_ends_both_legs() -> None:
    h = Harness()
    caller, callee = connect(h)
    ref = h.call_ref()
    effects = h.media_inactive(ref)

    assert sip_summary(effects) == [(PBX, "BYE"), (CARRIER, "BYE")]
    assert non_sip(effects) == [
        LogEvent(level="info", text="no RTP within the inactivity timeout", call_ref=ref),
        CloseMedia(call_ref=ref),
        CallEnded(call_ref=ref, reason="rtp-timeout"),
    ]
    h.assert_idle()
    assert caller.reply(caller.last_request("BYE"), 200) == []
    assert callee.reply(callee.last_request("BYE"), 200) == []
    assert h.media_inactive(ref) == []


def test_media_failed_after_b_rang_answers_500_and_cancels() -> None:
    h = Harness()
    caller, callee = dial(h)
    ring(caller, callee)
    ref = h.call_ref()
    effects = h.media_failed(ref)

    assert sip_summary(effects) == [(PBX, "500 INVITE"), (CARRIER, "CANCEL")]
    assert caller.last_response("INVITE", 500).to.tag == caller.remote_tag
    assert non_sip(effects) == [
        LogEvent(level="error", text="media failed: bind failed", call_ref=ref),
        CloseMedia(call_ref=ref),
        CallEnded(call_ref=ref, reason="media-failed"),
    ]
    h.assert_idle()
    callee.reply(callee.last_request("CANCEL"), 200)
    assert sip_summary(callee.reply(callee.invite, 487)) == [(CARRIER, "ACK")]
    h.assert_idle()


def test_media_failed_before_b_rang_cancels_on_its_provisional() -> None:
    h = Harness()
    caller, callee = dial(h)
    effects = h.media_failed(h.call_ref())

    assert sip_summary(effects) == [(PBX, "500 INVITE")]
    h.assert_idle()
    assert sip_summary(callee.ring()) == [(CARRIER, "CANCEL")]
    assert caller.statuses() == [100, 500]
    h.assert_idle()


def test_shutdown_ends_answered_and_ringing_calls() -> None:
    h = Harness()
    connect(h)
    second = FakeUac(h, name="second", address=("127.0.0.1", 5092), side=Side.PBX)
    second.send(second.invite(DIALLED, call_id="second-1@127.0.0.1"))
    effects = h.shutdown()

    assert sip_summary(effects) == [(PBX, "BYE"), (CARRIER, "BYE"), (second.address, "503 INVITE")]
    assert [ended.reason for ended in h.ended()] == ["shutdown", "shutdown"]
    h.assert_idle()


# REGISTER from the PBX and inbound routing -------------------------------------------------------


def register(pbx: FakeUac, authorization: str | None = None, *, cseq: int = 1) -> Request:
    """A REGISTER for the trunk account ``pbx.user`` with the PBX's Contact."""
    host, port = pbx.listener
    headers: list[tuple[str, str]] = [
        ("Via", pbx.via()),
        ("Max-Forwards", "70"),
        ("From", f"<sip:{pbx.user}@{host}>;tag=reg-1"),
        ("To", f"<sip:{pbx.user}@{host}>"),
        ("Call-ID", "register-1@127.0.0.1"),
        ("CSeq", f"{cseq} REGISTER"),
        ("Contact", pbx.contact),
        ("Expires", "600"),
    ]
    if authorization is not None:
        headers.append(("Authorization", authorization))
    headers.append(("Content-Length", "0"))
    return Request("REGISTER", parse_uri(f"sip:{host}:{port}"), headers)


def registered_pbx(
    h: Harness, address: Address, *, account: str = "pbx1", password: str = "pbx-secret"
) -> FakeUac:
    """The PBX at ``address`` registers as trunk ``account``: challenged, then accepted."""
    pbx = FakeUac(h, name="trunk", address=address, side=Side.PBX, user=account)
    effects = pbx.send(register(pbx))
    assert sip_summary(effects) == [(address, "401 REGISTER")]
    (value,) = pbx.last_response("REGISTER", 401).headers.fields("www-authenticate")
    challenge = Challenge.parse(value)
    assert challenge.realm == "callherald"
    credentials = build_credentials(
        challenge,
        method="REGISTER",
        uri=f"sip:{PBX_LISTEN[0]}:{PBX_LISTEN[1]}",
        username=account,
        password=password,
        cnonce="c0ffee",
    )
    effects = pbx.send(register(pbx, str(credentials), cseq=2))
    assert sip_summary(effects) == [(address, "200 REGISTER")]
    ok = pbx.last_response("REGISTER", 200)
    assert [contact.uri for contact in ok.contacts] == [parse_uri(f"sip:trunk@{address[0]}:{address[1]}")]
    return pbx


def test_register_is_challenged_then_accepted() -> None:
    h = Harness(make_settings(trunk_accounts=(trunk_account(),)))
    registered_pbx(h, ("127.0.0.1", 5094))
    assert non_sip(h.effects) == []
    h.assert_idle()


def test_register_with_a_wrong_password_is_challenged_again() -> None:
    h = Harness(make_settings(trunk_accounts=(trunk_account(),)))
    pbx = FakeUac(h, name="trunk", address=("127.0.0.1", 5094), side=Side.PBX, user="pbx1")
    pbx.send(register(pbx))
    challenge = Challenge.parse(pbx.last_response("REGISTER", 401).headers.fields("www-authenticate")[0])
    wrong = build_credentials(
        challenge, method="REGISTER", uri="sip:127.0.0.1:5060", username="pbx1", password="guess", cnonce="c0"
    )
    effects = pbx.send(register(pbx, str(wrong), cseq=2))
    assert sip_summary(effects) == [(pbx.address, "401 REGISTER")]
    h.assert_idle()


@pytest.mark.parametrize("way", [INBOUND, OUTBOUND], ids=["inbound", "outbound"])
def test_an_offer_beside_an_isup_part_is_relayed_as_its_sdp_alone(way: Way) -> None:
    # RFC 5621: the SDP part is the offer; the optional ISUP part goes no further. The other side
    # gets what a plain SDP offer would have given it.
    relayed: list[Request] = []
    for body, content_type in (
        (CALLER_OFFER, "application/sdp"),
        (multipart_with_isup(CALLER_OFFER), f'multipart/mixed; boundary="{BOUNDARY}"'),
    ):
        h = Harness()
        caller, callee = parties(h, way)
        caller.send(caller.invite(DIALLED, body=body, content_type=content_type))
        relayed.append(callee.take_invite())
        callee.ring()
        callee.answer()
        caller.ack_answer()
        hang_up(caller, callee)
        h.assert_idle()
    plain, from_multipart = relayed
    assert from_multipart.content_type == "application/sdp"
    assert from_multipart.body == plain.body
    assert b"isup" not in bytes(from_multipart).lower()


def test_inbound_call_goes_to_the_registered_contact() -> None:
    h = Harness(make_settings(trunk_accounts=(trunk_account(),)))
    trunk_address: Address = ("127.0.0.1", 5094)
    registered_pbx(h, trunk_address)
    carrier = FakeUac(h, address=CARRIER, side=Side.CARRIER)
    effects = carrier.send(carrier.invite(DIALLED))

    assert sip_summary(effects) == [(CARRIER, "100 INVITE"), (trunk_address, "INVITE")]
    pbx = FakeUas(h, name="trunk", address=trunk_address, side=Side.PBX)
    invite = pbx.take_invite()
    assert str(invite.uri) == "sip:trunk@127.0.0.1:5094"
    pbx.ring()
    pbx.answer()
    carrier.ack_answer()
    hang_up(carrier, pbx)
    h.assert_idle()


@pytest.mark.parametrize(
    ("dialled", "expected"), [(DIALLED, ("127.0.0.1", 5096)), ("4930999999", ("127.0.0.1", 5094))]
)
def test_an_inbound_call_for_an_account_s_own_number_goes_to_that_account(
    dialled: str, expected: Address
) -> None:
    # Two accounts registered: a phone registered under the dialled number gets its calls, though
    # the trunk registered after it; any other number goes to the latest registration.
    accounts = (trunk_account(), trunk_account(DIALLED, "phone-secret"))
    h = Harness(make_settings(trunk_accounts=accounts))
    registered_pbx(h, ("127.0.0.1", 5096), account=DIALLED, password="phone-secret")
    h.advance(1.0)
    registered_pbx(h, ("127.0.0.1", 5094))
    carrier = FakeUac(h, address=CARRIER, side=Side.CARRIER)
    effects = carrier.send(carrier.invite(dialled))

    assert sip_summary(effects) == [(CARRIER, "100 INVITE"), (expected, "INVITE")]
    callee = FakeUas(h, name="trunk", address=expected, side=Side.PBX)
    callee.take_invite()
    callee.reply(callee.invite, 486)
    carrier.send(carrier.ack_failure(carrier.last_response("INVITE", 486)))
    h.assert_idle()


@pytest.mark.parametrize(
    ("routes", "fallback", "expected_destination", "expected_uri"),
    [
        ({DIALLED: ("127.0.0.1", 5096)}, None, ("127.0.0.1", 5096), f"sip:{DIALLED}@127.0.0.1:5096"),
        ({"499999": ("127.0.0.1", 5096)}, None, PBX, f"sip:{DIALLED}@127.0.0.1:5090"),
        ({}, ("127.0.0.1", 5098), ("127.0.0.1", 5098), f"sip:{DIALLED}@127.0.0.1:5098"),
        (
            {DIALLED: ("127.0.0.1", 5096)},
            ("127.0.0.1", 5098),
            ("127.0.0.1", 5096),
            f"sip:{DIALLED}@127.0.0.1:5096",
        ),
    ],
    ids=["did-route", "other-did-default-target", "fallback-target", "did-beats-fallback"],
)
def test_inbound_routing(
    routes: dict[str, Address], fallback: Address | None, expected_destination: Address, expected_uri: str
) -> None:
    h = Harness(make_settings(inbound_routes=routes, fallback_inbound_target=fallback))
    carrier = FakeUac(h, address=CARRIER, side=Side.CARRIER)
    effects = carrier.send(carrier.invite(DIALLED))

    assert sip_summary(effects) == [(CARRIER, "100 INVITE"), (expected_destination, "INVITE")]
    pbx = FakeUas(h, address=expected_destination, side=Side.PBX)
    assert str(pbx.take_invite().uri) == expected_uri
    pbx.reply(pbx.invite, 486)
    h.assert_idle()


# Nothing is left behind --------------------------------------------------------------------------


def bye_from_a(h: Harness) -> None:
    hang_up(*connect(h))


def bye_from_b(h: Harness) -> None:
    caller, callee = connect(h)
    callee.send(callee.request("BYE"))
    caller.reply(caller.last_request("BYE"), 200)


def cancel_after_ringing(h: Harness) -> None:
    caller, callee = dial(h)
    ring(caller, callee)
    caller.send(caller.cancel())
    callee.reply(callee.last_request("CANCEL"), 200)
    callee.reply(callee.invite, 487)
    caller.send(caller.ack_failure(caller.last_response("INVITE", 487)))


def cancel_before_ringing(h: Harness) -> None:
    caller, callee = dial(h)
    caller.send(caller.cancel())
    callee.ring()
    callee.reply(callee.last_request("CANCEL"), 200)
    callee.reply(callee.invite, 487)
    caller.send(caller.ack_failure(caller.last_response("INVITE", 487)))


def cancel_before_ringing_then_silence(h: Harness) -> None:
    caller, _ = dial(h)
    caller.send(caller.cancel())


def busy(h: Harness) -> None:
    caller, callee = dial(h)
    callee.reply(callee.invite, 486)
    caller.send(caller.ack_failure(caller.last_response("INVITE", 486)))


def no_answer(h: Harness) -> None:
    dial(h)


def no_ack(h: Harness) -> None:
    caller, callee = dial(h)
    callee.answer()
    h.advance(32.0)
    caller.reply(caller.last_request("BYE"), 200)
    callee.reply(callee.last_request("BYE"), 200)


def reinvite_then_bye(h: Harness) -> None:
    caller, callee = connect(h)
    caller.send(caller.request("INVITE", body=offer_from(caller)))
    callee.reply(callee.last_request("INVITE"), 200, body=offer_from(callee, direction="a=recvonly"))
    caller.send(caller.ack_2xx(caller.last_response("INVITE", 200)))
    hang_up(caller, callee)


def no_allowed_codec(h: Harness) -> None:
    caller, _ = parties(h)
    body = sdp(
        "v=0", "o=c 1 1 IN IP4 127.0.0.2", "s=-", "c=IN IP4 127.0.0.2", "t=0 0", "m=audio 40000 RTP/AVP 18"
    )
    caller.send(caller.invite(DIALLED, body=body))
    caller.send(caller.ack_failure(caller.last_response("INVITE", 488)))


def early_bye(h: Harness) -> None:
    caller, callee = dial(h)
    ring(caller, callee)
    caller.send(caller.request("BYE"))
    callee.reply(callee.last_request("CANCEL"), 200)
    callee.reply(callee.invite, 487)


@pytest.mark.parametrize(
    "scenario",
    [
        bye_from_a,
        bye_from_b,
        cancel_after_ringing,
        cancel_before_ringing,
        pytest.param(cancel_before_ringing_then_silence),
        busy,
        no_answer,
        no_ack,
        reinvite_then_bye,
        pytest.param(no_allowed_codec),
        pytest.param(early_bye),
    ],
)
def test_no_state_is_left_once_everything_ended(scenario: Callable[[Harness], None]) -> None:
    h = Harness()
    scenario(h)
    h.advance(100.0)

    assert h.leftovers() == dict.fromkeys(h.leftovers(), 0)
    h.assert_idle()


# Answers within their offer (RFC 3264 §6.1) ------------------------------------------------------


def party_sdp(host: str, port: int, *media: str, version: int = 1) -> bytes:
    return sdp("v=0", f"o=party 55 {version} IN IP4 {host}", "s=-", f"c=IN IP4 {host}", "t=0 0", *media)


def dropped_warning(ref: str, leg: str, types: str) -> LogEvent:
    return LogEvent(
        level="warning",
        text=f"leg {leg} answered with payload types its offer did not have, or with another codec on"
        f" them (RFC 3264 §6.1), dropped: {types}",
        call_ref=ref,
    )


PCMU_ONLY = ("a=rtpmap:0 PCMU/8000",)
ANSWER_WITH_EVENTS_NOT_OFFERED = (
    "m=audio 30000 RTP/AVP 0 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
)


def test_an_answer_with_a_payload_type_the_offer_did_not_have_reaches_the_caller_without_it() -> None:
    # A carrier that answers telephone-event 101 to an offer without it: the caller is told of
    # the codec it offered only, and the log says what went.
    h = Harness()
    caller, callee = dial(h, body=party_sdp("127.0.0.2", 40000, "m=audio 40000 RTP/AVP 0", *PCMU_ONLY))
    ref = h.call_ref()
    ring(caller, callee)
    effects = callee.answer(body=party_sdp("127.0.0.3", 30000, *ANSWER_WITH_EVENTS_NOT_OFFERED))

    ok = caller.last_response("INVITE", 200)
    assert audio_of(ok.body) == [f"m=audio {A_PORT} RTP/AVP 0", "a=rtpmap:0 PCMU/8000"]
    assert dropped_warning(ref, "b", "101") in effects
    caller.ack_answer()
    hang_up(caller, callee)
    h.assert_idle()


# Answers in the other G.711 law (against RFC 3264 §6.1): translated ------------------------------

PCMU_ONLY_OFFER_LINES = (
    "m=audio 40000 RTP/AVP 0 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/8000",
)
PCMA_ANSWER_LINES = (
    "m=audio 30000 RTP/AVP 8 101",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:101 telephone-event/8000",
)
PCMA_TO_PCMU = LawTranslation(
    party_payload_type=8, party_codec="pcma", call_payload_type=0, call_codec="pcmu"
)


def translation_warning(ref: str, leg: str) -> LogEvent:
    return LogEvent(
        level="warning",
        text=f"leg {leg} answered PCMA to an offer with PCMU only (RFC 3264 §6.1 forbids it): callherald"
        " translates that party's audio between the two G.711 laws",
        call_ref=ref,
    )


@WAYS
def test_a_callee_answering_the_other_g711_law_is_connected_with_its_audio_translated(way: Way) -> None:
    # SIPp's built-in uas answers PCMU whatever it is offered; some gateways do the same with PCMA.
    # Such a party sends and expects the law it answered: the caller is answered in the law it
    # offered, and the relay translates the callee's audio both ways.
    h = Harness()
    caller, callee = dial(h, way, body=party_sdp("127.0.0.2", 40000, *PCMU_ONLY_OFFER_LINES))
    ref = h.call_ref()
    ring(caller, callee)
    effects = callee.answer(body=party_sdp("127.0.0.3", 30000, *PCMA_ANSWER_LINES))

    assert sip_summary(effects) == [(way.callee, "ACK"), (way.caller, "200 INVITE")]
    assert audio_of(caller.last_response("INVITE", 200).body) == [
        f"m=audio {A_PORT} RTP/AVP 0 101",
        "a=rtpmap:101 telephone-event/8000",
        "a=rtpmap:0 PCMU/8000",
    ]
    assert TranslateAudio(call_ref=ref, leg=MediaLeg.B, translation=PCMA_TO_PCMU) in effects
    assert translation_warning(ref, "b") in effects
    assert SetMediaRemote(call_ref=ref, leg=MediaLeg.B, remote=CALLEE_MEDIA) in effects
    assert h.ended() == []
    caller.ack_answer()
    hang_up(caller, callee)
    h.assert_idle()


def other_law_offered(ref: str) -> LogEvent:
    return LogEvent(
        level="info",
        text="leg b refused an offer of one G.711 law alone (488): offering it PCMA too, which callherald"
        " translates to the other party's law",
        call_ref=ref,
    )


@WAYS
def test_a_callee_refusing_one_g711_law_is_offered_the_other_too_and_its_audio_translated(way: Way) -> None:
    # A PBX or carrier with A-law only refuses an offer of µ-law alone (488, RFC 3261 §21.4.26).
    # callherald offers it again, PCMA added after PCMU, in a new INVITE of the same dialog, and
    # translates between the laws when it takes PCMA: the caller is answered in its own law.
    h = Harness()
    caller, callee = dial(h, way, body=party_sdp("127.0.0.2", 40000, *PCMU_ONLY_OFFER_LINES))
    ref = h.call_ref()
    first = callee.invite
    effects = callee.reply(first, 488)
    assert other_law_offered(ref) in effects
    assert all(response.status < 300 for response in caller.responses("INVITE"))  # nothing failed
    retry = callee.take_invite()
    assert (retry.call_id, retry.from_.tag, retry.cseq.seq) == (
        first.call_id,
        first.from_.tag,
        first.cseq.seq + 1,
    )
    assert audio_of(retry.body) == [
        f"m=audio {B_PORT} RTP/AVP 0 8 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=rtpmap:8 PCMA/8000",
    ]
    assert origin_of(retry.body).sess_version == origin_of(first.body).sess_version + 1
    ring(caller, callee)
    effects = callee.answer(body=party_sdp("127.0.0.3", 30000, *PCMA_ANSWER_LINES))

    assert audio_of(caller.last_response("INVITE", 200).body)[0] == f"m=audio {A_PORT} RTP/AVP 0 101"
    assert TranslateAudio(call_ref=ref, leg=MediaLeg.B, translation=PCMA_TO_PCMU) in effects
    assert (
        LogEvent(
            level="info",
            text="leg b answered PCMA, which callherald offered it beside PCMU: callherald translates that"
            " party's audio between the two G.711 laws",
            call_ref=ref,
        )
        in effects
    )
    assert translation_warning(ref, "b") not in effects
    caller.ack_answer()

    # The caller's session refresh reaches the callee as the session it answered, byte for byte
    # (RFC 3264 §8); its answer, the same again, keeps the translation as it is.
    caller.send(caller.request("INVITE", body=party_sdp("127.0.0.2", 40000, *PCMU_ONLY_OFFER_LINES)))
    assert callee.last_request("INVITE").body == retry.body
    pcma = party_sdp("127.0.0.3", 30000, *PCMA_ANSWER_LINES)
    again = callee.reply(callee.last_request("INVITE"), 200, body=pcma)
    assert [e for e in again if isinstance(e, TranslateAudio)] == []
    assert audio_of(caller.last_response("INVITE", 200).body)[0] == f"m=audio {A_PORT} RTP/AVP 0 101"
    caller.send(caller.ack_2xx(caller.last_response("INVITE", 200)))
    hang_up(caller, callee)
    h.assert_idle()


def test_a_callee_that_refuses_the_other_law_too_fails_the_call_as_it_would_have() -> None:
    # One more offer only: a callee refusing both laws fails the call as before, with its status.
    h = Harness()
    caller, callee = dial(h, body=party_sdp("127.0.0.2", 40000, *PCMU_ONLY_OFFER_LINES))
    callee.reply(callee.invite, 488)
    callee.take_invite()
    callee.reply(callee.invite, 488)
    assert len(callee.requests("INVITE")) == 2
    refused = caller.last_response("INVITE", 488)
    caller.send(caller.ack_failure(refused))
    h.assert_idle()


@pytest.mark.parametrize(
    "offer_lines",
    [
        ("m=audio 40000 RTP/AVP 0 8 101", "a=rtpmap:101 telephone-event/8000"),
        ("m=audio 40000 RTP/AVP 9 101", "a=rtpmap:101 telephone-event/8000"),
        ("m=audio 40000 RTP/SAVP 0", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + "A" * 40),
    ],
    ids=["both-laws", "g722-only", "srtp"],
)
def test_a_refusal_of_an_offer_the_other_law_would_not_change_is_not_retried(
    offer_lines: tuple[str, ...],
) -> None:
    # Both laws offered already, no G.711 law at all, or SRTP (whose payloads callherald cannot
    # translate): the refusal stands.
    h = Harness()
    caller, callee = dial(h, body=party_sdp("127.0.0.2", 40000, *offer_lines))
    effects = callee.reply(callee.invite, 488)
    assert not [e for e in effects if isinstance(e, LogEvent) and "offering it" in e.text]
    assert len(callee.requests("INVITE")) == 1
    caller.send(caller.ack_failure(caller.last_response("INVITE", 488)))
    h.assert_idle()


def test_a_translated_party_answering_in_the_offers_law_again_is_relayed_as_it_is() -> None:
    # The callee answers a re-INVITE's PCMU offer in PCMA, then the next one in PCMU: its audio is
    # translated between the two answers only, and each change is told once.
    h = Harness()
    caller, callee = dial(h, body=party_sdp("127.0.0.2", 40000, *PCMU_ONLY_OFFER_LINES))
    ref = h.call_ref()
    ring(caller, callee)
    callee.answer()
    caller.ack_answer()
    assert ref not in [e.call_ref for e in h.effects if isinstance(e, TranslateAudio)]

    caller.send(caller.request("INVITE", body=offer_from(caller, direction="a=sendrecv")))
    pcma = party_sdp("127.0.0.3", 30000, *PCMA_ANSWER_LINES, "a=sendrecv", version=2)
    effects = callee.reply(callee.last_request("INVITE"), 200, body=pcma)
    assert TranslateAudio(call_ref=ref, leg=MediaLeg.B, translation=PCMA_TO_PCMU) in effects
    assert audio_of(caller.last_response("INVITE", 200).body)[0] == f"m=audio {A_PORT} RTP/AVP 0 101"
    caller.send(caller.ack_2xx(caller.last_response("INVITE", 200)))

    caller.send(caller.request("INVITE", body=offer_from(caller, direction="a=sendrecv", version=3)))
    again = callee.reply(callee.last_request("INVITE"), 200, body=pcma)  # the same answer
    assert [e for e in again if isinstance(e, TranslateAudio)] == []
    caller.send(caller.ack_2xx(caller.last_response("INVITE", 200)))

    caller.send(caller.request("INVITE", body=offer_from(caller, direction="a=sendrecv", version=4)))
    pcmu = offer_from(callee, direction="a=sendrecv", version=3)
    effects = callee.reply(callee.last_request("INVITE"), 200, body=pcmu)
    assert TranslateAudio(call_ref=ref, leg=MediaLeg.B, translation=None) in effects
    assert (
        LogEvent(
            level="info",
            text="leg b answered in its offer's codec: its audio is relayed as it is again",
            call_ref=ref,
        )
        in effects
    )
    caller.send(caller.ack_2xx(caller.last_response("INVITE", 200)))
    hang_up(caller, callee)
    h.assert_idle()


def translated_callee(h: Harness) -> tuple[FakeUac, FakeUas, str]:
    """A call whose callee has A-law only: it refused the caller's µ-law alone (488), took the
    PCMA callherald offered beside it, and is translated; answered and ACKed."""
    caller, callee = dial(h, body=party_sdp("127.0.0.2", 40000, *PCMU_ONLY_OFFER_LINES))
    callee.reply(callee.invite, 488)
    callee.take_invite()
    ring(caller, callee)
    callee.answer(body=party_sdp("127.0.0.3", 30000, *PCMA_ANSWER_LINES))
    caller.ack_answer()
    return caller, callee, h.call_ref()


def test_a_translated_party_s_own_offer_reaches_the_other_party_in_the_call_s_law() -> None:
    # The A-law PBX puts the µ-law caller on hold: its re-INVITE offers PCMA alone, which the
    # caller cannot take (it would refuse it, 488, and the hold would fail). The caller is offered
    # PCMU in its place, and the PBX gets the caller's answer in PCMA, as its offer had it (RFC
    # 3264 §6.1); the translation goes on.
    h = Harness()
    caller, callee, ref = translated_callee(h)
    hold = party_sdp("127.0.0.3", 30000, *PCMA_ANSWER_LINES, "a=sendonly", version=2)
    callee.send(callee.request("INVITE", body=hold))
    relayed = caller.last_request("INVITE")
    assert audio_of(relayed.body) == [
        f"m=audio {A_PORT} RTP/AVP 0 101",
        "a=rtpmap:101 telephone-event/8000",
        "a=sendonly",
        "a=rtpmap:0 PCMU/8000",
    ]
    answer = party_sdp("127.0.0.2", 40000, *PCMU_ONLY_OFFER_LINES, "a=recvonly", version=2)
    effects = caller.reply(relayed, 200, body=answer)
    assert [e for e in effects if isinstance(e, TranslateAudio)] == []
    answered = callee.last_response("INVITE", 200)
    assert audio_of(answered.body) == [
        f"m=audio {B_PORT} RTP/AVP 8 101",
        "a=rtpmap:101 telephone-event/8000",
        "a=recvonly",
        "a=rtpmap:8 PCMA/8000",
    ]
    assert [e for e in effects if isinstance(e, SetMediaRemote) and e.leg is MediaLeg.B] == [
        SetMediaRemote(call_ref=ref, leg=MediaLeg.B, remote=CALLEE_MEDIA, packet_ms=20)
    ]
    callee.send(callee.ack_2xx(answered))

    # Off hold, now with both laws: relayed as it is. The caller answers PCMU, which the PBX then
    # sends too: its audio is relayed as it is again.
    both = ("m=audio 30000 RTP/AVP 8 0 101", "a=rtpmap:8 PCMA/8000", "a=rtpmap:0 PCMU/8000")
    resume = party_sdp("127.0.0.3", 30000, *both, "a=rtpmap:101 telephone-event/8000", version=3)
    callee.send(callee.request("INVITE", body=resume))
    relayed = caller.last_request("INVITE")
    assert audio_of(relayed.body)[0] == f"m=audio {A_PORT} RTP/AVP 8 0 101"
    answer = party_sdp("127.0.0.2", 40000, *PCMU_ONLY_OFFER_LINES, version=3)
    effects = caller.reply(relayed, 200, body=answer)
    assert TranslateAudio(call_ref=ref, leg=MediaLeg.B, translation=None) in effects
    assert (
        LogEvent(
            level="info",
            text="leg b's offer was answered as it was: its audio is relayed as it is again",
            call_ref=ref,
        )
        in effects
    )
    assert audio_of(callee.last_response("INVITE", 200).body)[0] == f"m=audio {B_PORT} RTP/AVP 0 101"
    callee.send(callee.ack_2xx(callee.last_response("INVITE", 200)))
    hang_up(caller, callee)
    h.assert_idle()


def test_a_translated_party_s_offer_the_other_party_refuses_leaves_the_translation_as_it_was() -> None:
    # The caller refuses the PCMU put in the PCMA offer's place: the PBX gets the refusal, the
    # session and the translation go on as they were (RFC 3261 §14.2).
    h = Harness()
    caller, callee, _ = translated_callee(h)
    reinvite = callee.request("INVITE", body=party_sdp("127.0.0.3", 30000, *PCMA_ANSWER_LINES, version=2))
    callee.send(reinvite)
    effects = caller.reply(caller.last_request("INVITE"), 488)
    assert [e for e in effects if isinstance(e, TranslateAudio)] == []
    refused = callee.last_response("INVITE", 488)
    callee.send(ack_of_failure(reinvite, refused))
    # The next offer of the PBX alone is put in the call's law again: the translation still holds.
    callee.send(callee.request("INVITE", body=party_sdp("127.0.0.3", 30000, *PCMA_ANSWER_LINES, version=3)))
    assert audio_of(caller.last_request("INVITE").body)[0] == f"m=audio {A_PORT} RTP/AVP 0 101"
    hang_up(caller, callee)
    h.assert_idle()


def audio_of(body: bytes) -> list[str]:
    lines = sdp_without_origin(body)
    return lines[lines.index(next(line for line in lines if line.startswith("m="))) :]


def test_an_answer_that_maps_a_dynamic_type_to_another_codec_leaves_the_recording_the_offers_mapping() -> (
    None
):
    # The caller put PCMA on 96; an answer that puts PCMU there would have the recording decode
    # the caller's PCMA as PCMU (it learns dynamic types from every SDP it is told of). RFC 3264
    # §8.3.2 keeps 96 PCMA for the whole session: the answer's 96 goes.
    h = Harness()
    offer = party_sdp(
        "127.0.0.2",
        40000,
        "m=audio 40000 RTP/AVP 96 0 101",
        "a=rtpmap:96 PCMA/8000",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
    )
    caller, callee = dial(h, body=offer)
    ref = h.call_ref()
    ring(caller, callee)
    answer = party_sdp(
        "127.0.0.3",
        30000,
        "m=audio 30000 RTP/AVP 96 0 101",
        "a=rtpmap:96 PCMU/8000",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 PCMA/8000",
    )
    effects = callee.answer(body=answer)

    assert audio_of(caller.last_response("INVITE", 200).body) == [
        f"m=audio {A_PORT} RTP/AVP 0",
        "a=rtpmap:0 PCMU/8000",
    ]
    assert dropped_warning(ref, "b", "96, 101") in effects
    # What the relay learns from the SDP it is told of, in order, as the recording is fed.
    learned: dict[int, int] = {}
    for remote in (e for e in h.effects if isinstance(e, SetMediaRemote)):
        learned.update(remote.aliases)
    assert learned == {96: 8}
    caller.ack_answer()
    hang_up(caller, callee)
    h.assert_idle()


@pytest.mark.parametrize("answerer", ["caller", "callee"])
def test_an_answer_to_a_relayed_reinvite_keeps_only_the_offered_formats(answerer: str) -> None:
    h = Harness()
    caller, callee = connect(h)
    ref = h.call_ref()
    offerer, other = (callee, caller) if answerer == "caller" else (caller, callee)
    offerer.send(offerer.request("INVITE", body=offer_from(offerer, direction="a=sendrecv")))
    relayed = other.last_request("INVITE")
    media_host, port = CALLER_MEDIA if other is caller else CALLEE_MEDIA
    answer = party_sdp(
        media_host,
        port,
        f"m=audio {port} RTP/AVP 8 0 101",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
        version=2,
    )
    effects = other.reply(relayed, 200, body=answer)

    ok = offerer.last_response("INVITE", 200)
    assert sdp_without_origin(ok.body) == anchored_lines(port_towards(offerer), "a=sendrecv")[:-1]
    assert dropped_warning(ref, leg_of(other).value, "8") in effects
    offerer.send(offerer.ack_2xx(ok))
    hang_up(caller, callee)
    h.assert_idle()


def test_an_answer_in_an_ack_keeps_only_the_formats_the_2xx_offered() -> None:
    h = Harness()
    caller, callee = dial(h, body=b"")
    ref = h.call_ref()
    ring(caller, callee)
    callee.answer(body=offer_from(callee, direction="a=sendrecv", version=1))
    answer = party_sdp(
        "127.0.0.2",
        40000,
        "m=audio 40000 RTP/AVP 0 8 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=sendrecv",
    )
    effects = caller.ack_answer(body=answer)

    ack = callee.last_request("ACK")
    assert sdp_without_origin(ack.body) == anchored_lines(B_PORT, "a=sendrecv")
    assert dropped_warning(ref, "a", "8") in effects
    hang_up(caller, callee)
    h.assert_idle()


NO_USABLE_ANSWERS = {
    # G.722 is allowed here, but the caller did not offer it: nothing is left of the answer.
    "not-offered": ("m=audio 30000 RTP/AVP 9", "a=rtpmap:9 G722/8000"),
    "not-allowed": ("m=audio 30000 RTP/AVP 18", "a=rtpmap:18 G729/8000"),
}


@WAYS
@pytest.mark.parametrize("media", NO_USABLE_ANSWERS.values(), ids=NO_USABLE_ANSWERS.keys())
def test_a_callee_answer_with_no_usable_codec_is_hung_up_and_the_caller_gets_488(
    way: Way, media: tuple[str, ...]
) -> None:
    # A 2xx to the caller must carry the answer (RFC 3261 §13.2.1), and there is none callherald
    # may pass on: the callee's 2xx is ACKed and its dialog ended with BYE (§15), and the caller
    # gets 488 with a Warning saying why (§20.43).
    h = Harness()
    caller, callee = dial(h, way)
    ref = h.call_ref()
    ring(caller, callee)
    effects = callee.answer(body=party_sdp("127.0.0.3", 30000, *media))

    assert sip_summary(effects) == [(way.callee, "ACK"), (way.callee, "BYE"), (way.caller, "488 INVITE")]
    refusal = caller.last_response("INVITE", 488)
    assert caller.statuses() == [100, 180, 488]
    assert refusal.headers.get("warning") == '305 callherald "Incompatible media format"'
    assert refusal.to.tag == caller.remote_tag  # the dialog the 180 began
    ack, bye = callee.last_request("ACK"), callee.last_request("BYE")
    assert (ack.headers.get("cseq"), bye.headers.get("cseq")) == ("1 ACK", "2 BYE")
    assert bye.to.tag == callee.local_tag
    assert [e for e in effects if isinstance(e, SetMediaRemote)] == []  # nothing to relay to
    assert h.ended() == [CallEnded(call_ref=ref, reason="no-codec-in-answer", status=488)]
    assert (
        LogEvent(
            level="warning",
            text="call failed: the callee's answer has no audio codec of the offer that is allowed here"
            " (g722, pcma, pcmu)",
            call_ref=ref,
        )
        in effects
    )
    caller.send(caller.ack_failure(refusal))
    callee.reply(bye, 200)
    h.advance(100.0)
    assert h.leftovers() == dict.fromkeys(h.leftovers(), 0)
    h.assert_idle()


@WAYS
@pytest.mark.parametrize("media", NO_USABLE_ANSWERS.values(), ids=NO_USABLE_ANSWERS.keys())
def test_an_early_answer_with_no_usable_codec_cancels_the_callee_and_the_caller_gets_488(
    way: Way, media: tuple[str, ...]
) -> None:
    # The 2xx must bring the 183's answer again (RFC 3261 §13.2.1), so the call can have no media:
    # the callee is cancelled (§9.1), and the caller gets 488 with the Warning (§20.43) rather than
    # a 183 without the answer, as when the answer comes in the 2xx.
    h = Harness()
    caller, callee = dial(h, way)
    ref = h.call_ref()
    ring(caller, callee)
    effects = callee.ring(183, body=party_sdp("127.0.0.3", 30000, *media))

    assert sip_summary(effects) == [(way.callee, "CANCEL"), (way.caller, "488 INVITE")]
    refusal = caller.last_response("INVITE", 488)
    assert caller.statuses() == [100, 180, 488]
    assert refusal.headers.get("warning") == '305 callherald "Incompatible media format"'
    assert refusal.to.tag == caller.remote_tag  # the dialog the 180 began
    assert [e for e in effects if isinstance(e, SetMediaRemote)] == []
    assert h.ended() == [CallEnded(call_ref=ref, reason="no-codec-in-answer", status=488)]
    assert (
        LogEvent(
            level="warning",
            text="call failed: the callee's answer in its 183 has no audio codec of the offer that is"
            " allowed here (g722, pcma, pcmu)",
            call_ref=ref,
        )
        in effects
    )
    caller.send(caller.ack_failure(refusal))
    assert callee.reply(callee.last_request("CANCEL"), 200) == []
    assert sip_summary(callee.reply(callee.invite, 487)) == [(way.callee, "ACK")]
    h.advance(100.0)
    assert h.leftovers() == dict.fromkeys(h.leftovers(), 0)
    h.assert_idle()


def test_a_2xx_crossing_the_cancel_of_an_early_answer_with_no_usable_codec_is_acked_and_hung_up() -> None:
    # RFC 3261 §9.1: the callee answered before the CANCEL reached it; its dialog is ended with BYE.
    h = Harness()
    caller, callee = dial(h)
    g729 = party_sdp("127.0.0.3", 30000, *NO_USABLE_ANSWERS["not-allowed"])
    callee.ring(183, body=g729)
    caller.new_messages()
    effects = callee.answer(body=g729)

    assert sip_summary(effects) == [(CARRIER, "ACK"), (CARRIER, "BYE")]
    assert callee.last_request("BYE").headers.get("cseq") == "2 BYE"
    assert caller.new_messages() == []
    assert h.ended() == [CallEnded(call_ref=h.call_ref(), reason="no-codec-in-answer", status=488)]
    callee.reply(callee.last_request("CANCEL"), 200)
    callee.reply(callee.last_request("BYE"), 200)
    h.advance(100.0)
    assert h.leftovers() == dict.fromkeys(h.leftovers(), 0)
    h.assert_idle()


def test_a_usable_early_answer_followed_by_a_2xx_with_no_usable_codec_ends_as_that_2xx() -> None:
    # The caller heard the 183's answer; the 2xx's answer is the one that counts (RFC 3261 §13.2.1)
    # and leaves no media: ACK and BYE to the callee, 488 to the caller.
    h = Harness()
    caller, callee = dial(h)
    callee.ring(183, body=CALLEE_ANSWER)
    effects = callee.answer(body=party_sdp("127.0.0.3", 30000, *NO_USABLE_ANSWERS["not-allowed"], version=2))

    assert sip_summary(effects) == [(CARRIER, "ACK"), (CARRIER, "BYE"), (PBX, "488 INVITE")]
    assert caller.statuses() == [100, 183, 488]
    assert h.ended() == [CallEnded(call_ref=h.call_ref(), reason="no-codec-in-answer", status=488)]
    caller.send(caller.ack_failure(caller.last_response("INVITE", 488)))
    callee.reply(callee.last_request("BYE"), 200)
    h.advance(100.0)
    h.assert_idle()


def test_an_answer_with_no_offered_format_left_is_an_answer_with_no_usable_codec() -> None:
    # Nothing of the answer is left once the format the offer did not have goes: the call fails
    # as it does when an answer has no codec callherald may pass on, and the log says what went.
    def answered_with(*media: str) -> Harness:
        h = Harness()
        caller, callee = dial(h)
        ring(caller, callee)
        callee.answer(body=party_sdp("127.0.0.3", 30000, *media))
        caller.send(caller.ack_failure(caller.last_response("INVITE", 488)))
        callee.reply(callee.last_request("BYE"), 200)
        h.assert_idle()
        return h

    not_offered = answered_with(*NO_USABLE_ANSWERS["not-offered"])
    not_allowed = answered_with(*NO_USABLE_ANSWERS["not-allowed"])
    assert sip_summary(not_offered.effects) == sip_summary(not_allowed.effects)
    assert dropped_warning(not_offered.call_ref(), "b", "9") in not_offered.effects


AUDIO_AND_VIDEO_OFFER = party_sdp(
    "127.0.0.2",
    40000,
    "m=audio 40000 RTP/AVP 0",
    "m=video 40002 RTP/AVP 96",
    "a=rtpmap:96 H264/90000",
)
PCMU_ANSWER = ("m=audio 30000 RTP/AVP 0", *PCMU_ONLY)


def lines_warning(ref: str, fault: str) -> LogEvent:
    return LogEvent(level="warning", text=f"leg b's answer {fault} (RFC 3264 §6)", call_ref=ref)


def test_an_answer_missing_m_lines_reaches_the_caller_with_them_rejected() -> None:
    # RFC 3264 §6: the answer has exactly as many m= lines as the offer. A carrier that answers
    # callherald's audio and rejected video with the audio line alone still gives the caller an
    # answer to each of its streams: the video one rejected, as callherald offered it.
    h = Harness()
    caller, callee = dial(h, body=AUDIO_AND_VIDEO_OFFER)
    ref = h.call_ref()
    assert [m.m_line for m in SessionDescription.parse(callee.invite.body).media] == [
        f"m=audio {B_PORT} RTP/AVP 0",
        "m=video 0 RTP/AVP 96",
    ]
    ring(caller, callee)
    effects = callee.answer(body=party_sdp("127.0.0.3", 30000, *PCMU_ANSWER))

    ok = caller.last_response("INVITE", 200)
    assert audio_of(ok.body) == [
        f"m=audio {A_PORT} RTP/AVP 0",
        "a=rtpmap:0 PCMU/8000",
        "m=video 0 RTP/AVP 96",
    ]
    fault = "has 1 m= lines for the 2 of its offer: the missing ones are rejected"
    assert lines_warning(ref, fault) in effects
    caller.ack_answer()
    hang_up(caller, callee)
    h.assert_idle()


def test_an_answer_that_leaves_out_the_line_callherald_rejected_first_pairs_its_audio() -> None:
    # A common SBC habit (RFC 3264 §6 forbids it): the offer's first line, video, went out
    # rejected (port 0), and the answer has its audio line alone. Its lines are those the offer
    # did not reject, in order: the call connects, the video line answered rejected in its place.
    h = Harness()
    video_first = party_sdp(
        "127.0.0.2", 40000, "m=video 40002 RTP/AVP 96", "a=rtpmap:96 H264/90000", "m=audio 40000 RTP/AVP 0"
    )
    caller, callee = dial(h, body=video_first)
    ref = h.call_ref()
    assert [m.m_line for m in SessionDescription.parse(callee.invite.body).media] == [
        "m=video 0 RTP/AVP 96",
        f"m=audio {B_PORT} RTP/AVP 0",
    ]
    ring(caller, callee)
    effects = callee.answer(body=party_sdp("127.0.0.3", 30000, *PCMU_ANSWER))

    ok = caller.last_response("INVITE", 200)
    assert [m.m_line for m in SessionDescription.parse(ok.body).media] == [
        "m=video 0 RTP/AVP 96",
        f"m=audio {A_PORT} RTP/AVP 0",
    ]
    fault = "has 1 m= lines for the 2 of its offer, leaving out those the offer rejected: they are answered rejected"
    assert lines_warning(ref, fault) in effects
    caller.ack_answer()
    hang_up(caller, callee)
    h.assert_idle()


@pytest.mark.parametrize(
    ("media", "fault"),
    [
        pytest.param(
            (*PCMU_ANSWER, "m=video 0 RTP/AVP 96", "m=audio 30002 RTP/AVP 0"),
            "has 3 m= lines for the 2 of its offer",
            id="more-lines",
        ),
        pytest.param(
            ("m=video 0 RTP/AVP 96", *PCMU_ANSWER),
            "answers a stream of its offer as another media type",
            id="reordered",
        ),
    ],
)
def test_an_answer_that_does_not_answer_the_offers_m_lines_is_one_with_no_usable_codec(
    media: tuple[str, ...], fault: str
) -> None:
    # RFC 3264 §6 pairs streams by position: an answer with more lines than the offer, or its
    # lines in another order, pairs with none of the offer's. The caller may not be given it
    # (it breaks §6 towards it too), so the call fails as with an answer with no codec allowed here.
    h = Harness()
    caller, callee = dial(h, body=AUDIO_AND_VIDEO_OFFER)
    ref = h.call_ref()
    ring(caller, callee)
    effects = callee.answer(body=party_sdp("127.0.0.3", 30000, *media))

    assert sip_summary(effects) == [(CARRIER, "ACK"), (CARRIER, "BYE"), (PBX, "488 INVITE")]
    assert lines_warning(ref, f"{fault}: it is no answer to that offer, and rejects every stream") in effects
    assert h.ended() == [CallEnded(call_ref=ref, reason="no-codec-in-answer", status=488)]
    caller.send(caller.ack_failure(caller.last_response("INVITE", 488)))
    callee.reply(callee.last_request("BYE"), 200)
    h.assert_idle()


def test_an_answer_to_a_relayed_reinvite_missing_m_lines_reaches_the_offerer_with_them_rejected() -> None:
    # The same for a re-INVITE after the bridge: the offerer gets an answer to each of its lines.
    h = Harness()
    caller, callee = connect(h)
    ref = h.call_ref()
    reoffer = party_sdp(
        "127.0.0.2",
        40000,
        "m=audio 40000 RTP/AVP 0 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
        "m=video 40002 RTP/AVP 96",
        "a=rtpmap:96 H264/90000",
        version=2,
    )
    caller.send(caller.request("INVITE", body=reoffer))
    relayed = callee.last_request("INVITE")
    effects = callee.reply(relayed, 200, body=offer_from(callee, direction="a=sendrecv"))

    ok = caller.last_response("INVITE", 200)
    assert audio_of(ok.body) == [*anchored_lines(A_PORT, "a=sendrecv")[4:], "m=video 0 RTP/AVP 96"]
    fault = "has 1 m= lines for the 2 of its offer: the missing ones are rejected"
    assert lines_warning(ref, fault) in effects
    caller.send(caller.ack_2xx(ok))
    hang_up(caller, callee)
    h.assert_idle()


@pytest.mark.parametrize("method", ["INVITE", "UPDATE"])
@pytest.mark.parametrize("answerer", ["caller", "callee"])
def test_a_relayed_offer_answered_with_no_usable_codec_gets_488_and_the_session_goes_on(
    method: str, answerer: str
) -> None:
    # The offerer keeps the session it had (RFC 3261 §14.2); the answerer, which took the new one,
    # is offered the session as it was before, in a re-INVITE of callherald's own.
    h = Harness()
    caller, callee = connect(h)
    ref = h.call_ref()
    offerer, other = (callee, caller) if answerer == "caller" else (caller, callee)
    session_before = sdp_without_origin(first_sdp_to(other))
    offerer.send(offerer.request(method, body=offer_from(offerer, direction="a=sendrecv")))
    relayed = other.last_request(method)
    media_host, port = CALLER_MEDIA if other is caller else CALLEE_MEDIA
    g729 = party_sdp(media_host, port, f"m=audio {port} RTP/AVP 18", "a=rtpmap:18 G729/8000", version=2)
    effects = other.reply(relayed, 200, body=g729)

    acked = [(other.address, "ACK")] if method == "INVITE" else []
    assert sip_summary(effects) == [*acked, (offerer.address, f"488 {method}"), (other.address, "INVITE")]
    refusal = offerer.last_response(method, 488)
    assert refusal.headers.get("warning") == '305 callherald "Incompatible media format"'
    assert [e for e in effects if isinstance(e, SetMediaRemote)] == []
    back = other.last_request("INVITE")
    assert sdp_without_origin(back.body) == session_before
    assert origin_of(back.body).sess_version == origin_of(relayed.body).sess_version + 1  # RFC 3264 §8
    assert LogEvent(
        level="info", text=f"offering leg {leg_of(other)} the session as it was before", call_ref=ref
    ) in (effects)

    effects = other.reply(back, 200, body=offer_from(other, direction="a=sendrecv", version=3))
    assert sip_summary(effects) == [(other.address, "ACK")]
    assert SetMediaRemote(call_ref=ref, leg=leg_of(other), remote=(media_host, port)) in effects
    assert h.b2bua.active_calls == 1
    hang_up(caller, callee)
    h.advance(100.0)
    assert h.leftovers() == dict.fromkeys(h.leftovers(), 0)
    h.assert_idle()


# An offer callherald can take nothing of: G.729 only, and a video stream it never relays.
NO_USABLE_OFFER = ("m=audio 30000 RTP/AVP 18", "a=rtpmap:18 G729/8000", "m=video 30002 RTP/AVP 96")
# The answer to it: each stream rejected with port 0, the offer's formats kept (RFC 3264 §6).
REJECTING_ANSWER_LINES = [
    "v=0",
    "s=-",
    "c=IN IP4 127.0.0.1",
    "t=0 0",
    "m=audio 0 RTP/AVP 18",
    "m=video 0 RTP/AVP 96",
]


@pytest.mark.parametrize("offerer_is", ["caller", "callee"])
def test_a_2xx_offer_with_no_usable_codec_to_a_reinvite_without_sdp_gets_488_and_the_session_goes_on(
    offerer_is: str,
) -> None:
    # To a re-INVITE without SDP the 2xx is the far party's offer and the ACK must carry the answer
    # (RFC 3261 §13.2.1, §14.1); none of the offer can be passed on, so it is answered with every
    # stream rejected, the re-INVITE gets 488 and its sender keeps its session (§14.2), and the far
    # party is offered the session as it was before.
    h = Harness()
    caller, callee = connect(h)
    ref = h.call_ref()
    sender, other = (caller, callee) if offerer_is == "caller" else (callee, caller)
    session_before = sdp_without_origin(first_sdp_to(other))
    sender.send(sender.request("INVITE"))
    relayed = other.last_request("INVITE")
    assert relayed.body == b""
    media_host = CALLER_MEDIA[0] if other is caller else CALLEE_MEDIA[0]
    effects = other.reply(relayed, 200, body=party_sdp(media_host, 30000, *NO_USABLE_OFFER, version=2))

    assert sip_summary(effects) == [
        (other.address, "ACK"),
        (sender.address, "488 INVITE"),
        (other.address, "INVITE"),
    ]
    ack = other.last_request("ACK")
    assert ack.headers.get("content-type") == "application/sdp"
    assert sdp_without_origin(ack.body) == REJECTING_ANSWER_LINES
    refusal = sender.last_response("INVITE", 488)
    assert refusal.headers.get("warning") == '305 callherald "Incompatible media format"'
    assert refusal.body == b""
    assert [e for e in effects if isinstance(e, SetMediaRemote)] == []  # the media goes on as it was
    back = other.last_request("INVITE")
    assert sdp_without_origin(back.body) == session_before
    assert origin_of(back.body).sess_version == origin_of(ack.body).sess_version + 1  # RFC 3264 §8
    assert (
        LogEvent(
            level="warning",
            text=f"leg {leg_of(other)} offered, in its 2xx to the INVITE of leg {leg_of(sender)} without SDP,"
            f" no audio codec that is allowed here: 488 to leg {leg_of(sender)}, the session goes on as it was",
            call_ref=ref,
        )
        in effects
    )

    effects = other.reply(back, 200, body=offer_from(other, direction="a=sendrecv", version=3))
    assert sip_summary(effects) == [(other.address, "ACK")]
    assert h.b2bua.active_calls == 1
    hang_up(caller, callee)
    h.advance(100.0)
    assert h.leftovers() == dict.fromkeys(h.leftovers(), 0)
    h.assert_idle()


def last_sdp_to(peer: FakeUa) -> bytes:
    return [m.body for m in peer.inbox() if m.body and m.content_type == "application/sdp"][-1]


@pytest.mark.parametrize("offerer_is", ["caller", "callee"])
def test_a_2xx_without_an_offer_to_a_reinvite_without_sdp_offers_the_sender_its_session_unchanged(
    offerer_is: str,
) -> None:
    # RFC 3261 §14.2: that 2xx must carry an offer, and the sender may not get a 2xx without one
    # either. The far party is ACKed without SDP (it offered nothing); the sender is offered the
    # session it last had from callherald, with the same version (RFC 3264 §8: no change), and
    # its answer, in its ACK, says where its media goes.
    h = Harness()
    caller, callee = connect(h)
    ref = h.call_ref()
    sender, other = (caller, callee) if offerer_is == "caller" else (callee, caller)
    session = last_sdp_to(sender)
    sender.send(sender.request("INVITE"))
    relayed = other.last_request("INVITE")
    effects = other.reply(relayed, 200)

    assert sip_summary(effects) == [(other.address, "ACK"), (sender.address, "200 INVITE")]
    ack = other.last_request("ACK")
    assert (ack.body, ack.headers.get("cseq")) == (b"", f"{relayed.cseq.seq} ACK")
    ok = sender.last_response("INVITE", 200)
    assert ok.headers.get("content-type") == "application/sdp"
    assert ok.body == session
    assert [e for e in effects if isinstance(e, SetMediaRemote)] == []
    assert (
        LogEvent(
            level="warning",
            text=f"leg {leg_of(other)} sent no offer in its 2xx to the INVITE of leg {leg_of(sender)} without"
            f" SDP (RFC 3261 §14.2): leg {leg_of(sender)} is offered its session as it was",
            call_ref=ref,
        )
        in effects
    )

    moved = offer_from(sender, direction="a=sendrecv", version=2, host="127.0.0.7")
    effects = sender.send(sender.ack_2xx(ok, body=moved))
    assert sip_summary(effects) == []  # the far party has its ACK already
    port = (CALLER_MEDIA if sender is caller else CALLEE_MEDIA)[1]
    assert non_sip(effects) == [SetMediaRemote(call_ref=ref, leg=leg_of(sender), remote=("127.0.0.7", port))]
    assert h.b2bua.active_calls == 1
    hang_up(caller, callee)
    h.advance(100.0)
    assert h.leftovers() == dict.fromkeys(h.leftovers(), 0)
    h.assert_idle()


def with_direction(lines: list[str], direction: str) -> list[str]:
    """SDP ``lines`` with their one direction attribute (RFC 3264 §5.1) made ``direction``."""
    directions = ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive")
    assert len([line for line in lines if line in directions]) == 1, lines
    return [direction if line in directions else line for line in lines]


@pytest.mark.parametrize("offerer_is", ["caller", "callee"])
@pytest.mark.parametrize(
    ("held", "host", "told"),
    [("a=sendonly", None, "a=sendonly"), ("a=inactive", None, "a=inactive"), ("", "0.0.0.0", "a=sendonly")],
    ids=["sendonly", "inactive", "rfc2543"],
)
def test_a_hold_in_the_answer_to_a_session_offered_unchanged_is_offered_to_the_far_party(
    offerer_is: str, held: str, host: str | None, told: str
) -> None:
    # The far party's 2xx had no offer, so it was ACKed before the sender's answer came, in the
    # sender's ACK (``_no_offer_in_2xx``). A hold in that answer, and then its end, reach the far
    # party by a re-INVITE of callherald's own in the matching direction (RFC 3264 §8.4, RFC 6337
    # §5.3), its session otherwise as it was; it would send into the hold, or wait, otherwise.
    h = Harness()
    caller, callee = connect(h)
    ref = h.call_ref()
    sender, other = (caller, callee) if offerer_is == "caller" else (callee, caller)
    far_leg = leg_of(other)
    for answer, direction, version in ((held, told, 2), ("a=sendrecv", "a=sendrecv", 3)):
        had = last_sdp_to(other)
        sender.send(sender.request("INVITE"))
        other.reply(other.last_request("INVITE"), 200)
        ok = sender.last_response("INVITE", 200)
        body = offer_from(sender, direction=answer, version=version, host=host if answer == held else None)
        effects = sender.send(sender.ack_2xx(ok, body=body))

        assert sip_summary(effects) == [(other.address, "INVITE")]
        reoffer = other.last_request("INVITE")
        assert sdp_without_origin(reoffer.body) == with_direction(sdp_without_origin(had), direction)
        assert origin_of(reoffer.body).sess_version == origin_of(had).sess_version + 1  # RFC 3264 §8
        doing = (
            f"offering leg {far_leg} the direction ({direction[2:]}) leg {leg_of(sender)} answered in its ACK"
        )
        assert LogEvent(level="info", text=doing, call_ref=ref) in effects
        answered = {"a=sendonly": "a=recvonly"}.get(direction, direction)
        effects = other.reply(reoffer, 200, body=offer_from(other, direction=answered, version=version))
        assert sip_summary(effects) == [(other.address, "ACK")]

    # An answer that changes nothing (not held, and not held before) sends nothing on.
    sender.send(sender.request("INVITE"))
    other.reply(other.last_request("INVITE"), 200)
    ok = sender.last_response("INVITE", 200)
    effects = sender.send(sender.ack_2xx(ok, body=offer_from(sender, direction="a=sendrecv", version=4)))
    assert sip_summary(effects) == []
    hang_up(caller, callee)
    h.advance(100.0)
    assert h.leftovers() == dict.fromkeys(h.leftovers(), 0)
    h.assert_idle()


def test_a_2xx_without_an_offer_to_a_reinvite_from_a_party_without_a_session_gets_500() -> None:
    # The caller was answered without SDP (the callee's 2xx had none, nor a 183 before it), so
    # callherald has no session to offer it: its re-INVITE gets 500, and nothing else changes.
    h = Harness()
    caller, callee = dial(h)
    ring(caller, callee)
    callee.answer(body=b"")
    caller.ack_answer()
    caller.send(caller.request("INVITE"))
    effects = callee.reply(callee.last_request("INVITE"), 200)

    assert sip_summary(effects) == [(CARRIER, "ACK"), (PBX, "500 INVITE")]
    assert caller.last_response("INVITE", 500).body == b""
    caller.send(caller.ack_failure(caller.last_response("INVITE", 500)))
    assert h.b2bua.active_calls == 1
    hang_up(caller, callee)
    h.advance(100.0)
    h.assert_idle()


def test_a_late_offer_with_no_usable_codec_is_answered_rejected_and_hung_up_and_the_caller_gets_488() -> None:
    # To an INVITE without SDP the callee's 2xx is the offer, and the ACK must carry the answer
    # (RFC 3261 §13.2.1): it rejects every stream (RFC 3264 §6) and the callee's dialog is ended
    # with BYE (§13.2.2.4); the caller, which may not get a 2xx without SDP, gets 488.
    h = Harness()
    caller, callee = dial(h, body=b"")
    ref = h.call_ref()
    ring(caller, callee)
    effects = callee.answer(body=party_sdp("127.0.0.3", 30000, *NO_USABLE_OFFER))

    assert sip_summary(effects) == [(CARRIER, "ACK"), (CARRIER, "BYE"), (PBX, "488 INVITE")]
    ack, bye = callee.last_request("ACK"), callee.last_request("BYE")
    assert ack.headers.get("content-type") == "application/sdp"
    assert sdp_without_origin(ack.body) == REJECTING_ANSWER_LINES
    assert (ack.headers.get("cseq"), bye.headers.get("cseq")) == ("1 ACK", "2 BYE")
    refusal = caller.last_response("INVITE", 488)
    assert refusal.headers.get("warning") == '305 callherald "Incompatible media format"'
    assert [e for e in effects if isinstance(e, SetMediaRemote)] == []
    assert h.ended() == [CallEnded(call_ref=ref, reason="no-codec-in-offer", status=488)]
    assert (
        LogEvent(
            level="warning",
            text="call failed: the callee's offer in its 2xx to an INVITE without SDP has no audio codec"
            " allowed here (g722, pcma, pcmu)",
            call_ref=ref,
        )
        in effects
    )
    caller.send(caller.ack_failure(refusal))
    callee.reply(bye, 200)
    h.advance(100.0)
    assert h.leftovers() == dict.fromkeys(h.leftovers(), 0)
    h.assert_idle()


def test_the_offer_in_the_2xx_to_a_reinvite_without_sdp_counts_as_that_partys_hold() -> None:
    # To a re-INVITE without SDP the 2xx is the far party's offer (RFC 3261 §14.1): a hold in it
    # is that party's hold (RFC 3264 §8.4), as in an offer of its own re-INVITE.
    h = Harness()
    caller, callee = connect(h)
    ref = h.call_ref()
    held: list[LogEvent] = []
    for version, direction, answer in [(2, "a=sendonly", "a=recvonly"), (3, "a=sendrecv", "a=sendrecv")]:
        callee.send(callee.request("INVITE"))
        effects = caller.reply(
            caller.last_request("INVITE"), 200, body=offer_from(caller, direction=direction, version=version)
        )
        held.extend(e for e in effects if isinstance(e, LogEvent) and e.text.startswith("hold from"))
        ok = callee.last_response("INVITE", 200)
        assert sdp_without_origin(ok.body) == anchored_lines(B_PORT, direction)
        callee.send(callee.ack_2xx(ok, body=offer_from(callee, direction=answer, version=version)))
    assert held == [
        LogEvent(level="info", text="hold from leg a", call_ref=ref),
        LogEvent(level="info", text="hold from leg a ended", call_ref=ref),
    ]
    hang_up(caller, callee)
    h.assert_idle()
