"""Call transfer by REFER (RFC 3515) in the B2BUA core on virtual time.

A party of an established call (the transferor, X) sends REFER; callherald answers 202, reports
progress to X by NOTIFY (message/sipfrag), keeps the other party (Y) apart with ringback and
nothing recorded, and calls the target (T) on X's side with X's RTP port. When T answers, T's
dialog replaces X's: a new outside party hears the notice before anything is recorded, a new
agent is joined at once with the beep. Every scenario ends in ``finish`` (from the notice tests):
the recording invariant held over the whole log (GDPR Art. 7) and nothing of the call is left.

callherald sends the INVITE to the target along X's dialog (X's Contact, or the carrier's proxy),
so in this harness X and T share an address; the Call-ID tells their messages apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import pytest

from proxy.b2bua.consent import (
    ConsentWithdrawn,
    DigitMechanism,
    PartyChanged,
)
from proxy.b2bua.core import TRANSFEROR_LEAVES_S
from proxy.b2bua.effects import (
    BridgeMedia,
    CallEnded,
    Effect,
    Evidence,
    LawTranslation,
    LogEvent,
    MediaLeg,
    PauseRecording,
    PlayTone,
    SetMediaRemote,
    StartRecording,
    StopPlayout,
    StopRecording,
    Tone,
    TranslateAudio,
)
from proxy.b2bua.policy import UNRECORDED, CallPolicy
from proxy.b2bua.settings import Address
from proxy.sip import Request, Response
from tests.proxy.b2bua.harness import (
    CALLEE_ANSWER,
    FakeUa,
    FakeUac,
    FakeUas,
    origin_of,
    sdp,
    sdp_without_origin,
    sip_summary,
)
from tests.proxy.b2bua.test_announce import (
    INBOUND,
    OUTBOUND,
    PCMU,
    POLICY,
    Scene,
    Way,
    announcing,
    events,
    finish,
    notice_again,
    of,
    own_origin,
    party_sdp,
)

TARGET = "sip:transfer-target@127.0.0.1"
REFERRED_BY = "<sip:transferor@example.net>"
RING_TIMEOUT_S = 180.0  # B2buaSettings.ring_timeout_s: the target rings at most this long
TIMER_B_S = 32.0  # 64 * T1: an INVITE without any response times out (RFC 3261 §17.1.1.2)
ALL_PURPOSES = ("quality", "training")  # what connect("1") leaves the call recorded for

# The target answers PCMU and telephone-event from 127.0.0.4:34000.
TARGET_ANSWER = sdp(
    "v=0",
    "o=target 4004 1 IN IP4 127.0.0.4",
    "s=target",
    "c=IN IP4 127.0.0.4",
    "t=0 0",
    "m=audio 34000 RTP/AVP 0 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=sendrecv",
)
TARGET_MEDIA: Address = ("127.0.0.4", 34000)
POLICIES = pytest.mark.parametrize("policy", [POLICY, UNRECORDED], ids=lambda policy: policy.name)


# Parties that share an address ---------------------------------------------------------------


class _OwnDialog(FakeUa):
    """Reads only the messages of its own dialog (its Call-ID); before it has one, every message
    but those of the UAs in ``others``, which share its address."""

    others: tuple[FakeUa, ...] = ()

    def inbox(self) -> list[Request | Response]:
        messages = super().inbox()
        if self.call_id:
            return [message for message in messages if message.call_id == self.call_id]
        taken = {ua.call_id for ua in self.others}
        return [message for message in messages if message.call_id not in taken]


class Caller(_OwnDialog, FakeUac):
    """A caller that reads only its own dialog."""


class Callee(_OwnDialog, FakeUas):
    """A callee (or a transfer target) that reads only its own dialog."""


# Who transfers -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Transferor:
    """Which party sends the REFER: the outside party or the agent, on a call going ``way``."""

    way: Way
    outside: bool

    @property
    def name(self) -> str:
        return f"{self.way.name}-{'outside' if self.outside else 'agent'}"

    @property
    def leg(self) -> MediaLeg:
        return self.way.outside_leg if self.outside else self.way.outside_leg.other


TRANSFERORS = [
    Transferor(way=way, outside=outside) for way in (INBOUND, OUTBOUND) for outside in (True, False)
]
BY_EVERY_TRANSFEROR = pytest.mark.parametrize("who", TRANSFERORS, ids=lambda who: who.name)


class TransferScene(Scene):
    """A call under ``policy`` in which ``who`` transfers the call to ``target``."""

    def __init__(self, who: Transferor, policy: CallPolicy) -> None:
        super().__init__(who.way, policy)
        way = who.way
        self.who = who
        self.caller = Caller(self.h, address=way.caller, side=way.caller_side)
        self.callee = Callee(self.h, address=way.callee, side=way.callee_side)
        self.target = self.new_target("target", (self.x,))
        self._notifies_answered: dict[str, int] = {}
        self.last_refer: Request | None = None

    def new_target(self, name: str, others: tuple[FakeUa, ...]) -> Callee:
        """A transfer target at the transferor's address (where callherald sends its INVITE)."""
        target = Callee(self.h, name=name, address=self.x.address, side=self.x.side)
        target.others = others
        return target

    @property
    def x(self) -> FakeUa:
        """The transferor."""
        return self.caller if self.who.leg is MediaLeg.A else self.callee

    @property
    def y(self) -> FakeUa:
        """The party that stays on the call."""
        return self.callee if self.who.leg is MediaLeg.A else self.caller

    @property
    def x_leg(self) -> MediaLeg:
        return self.who.leg

    @property
    def y_leg(self) -> MediaLeg:
        return self.who.leg.other

    def establish(self) -> None:
        """The parties talk: recorded calls after the notice and a "yes", others at once."""
        if self.policy.record:
            self.connect("1")
            return
        self.dial()
        self.callee.take_invite()
        self.callee.ring()
        self.callee.answer()
        self.caller.ack_answer()

    def refer(self, *refer_to: str, sender: FakeUa | None = None) -> list[Effect]:
        """REFER from ``sender`` (the transferor by default) with these Refer-To fields (the target
        when none are given) and Referred-By (RFC 3892)."""
        party = sender or self.x
        extra = [("Refer-To", value) for value in refer_to or (f"<{TARGET}>",)]
        extra.append(("Referred-By", REFERRED_BY))
        self.last_refer = party.request("REFER", extra=extra)
        return party.send(self.last_refer)

    @property
    def refer_sent(self) -> Request:
        assert self.last_refer is not None, "no REFER sent"
        return self.last_refer

    def answer_notifies(self, party: FakeUa | None = None) -> list[Request]:
        """The transferor answers every NOTIFY it has not answered yet with 200; they are returned."""
        party = party or self.x
        answered = self._notifies_answered.get(party.name, 0)
        fresh = party.requests("NOTIFY")[answered:]
        self._notifies_answered[party.name] = answered + len(fresh)
        for notify in fresh:
            party.reply(notify, 200)
        return fresh

    def dismiss_transferor(self, party: FakeUa | None = None) -> Request:
        """The transferor answers the final NOTIFY; callherald's BYE comes ``TRANSFEROR_LEAVES_S``
        later (RFC 5589 §6 gives the transferor the chance to leave first) and is answered."""
        party = party or self.x
        self.answer_notifies(party)
        self.h.advance(TRANSFEROR_LEAVES_S)
        bye = party.last_request("BYE")
        party.reply(bye, 200)
        return bye

    def start_transfer(self) -> Request:
        """REFER accepted and its first NOTIFY answered; the INVITE the target got is returned."""
        self.refer()
        self.answer_notifies()
        return self.target.take_invite()

    def hang_up_y(self, talking_to: FakeUa) -> list[Effect]:
        """Y leaves with BYE; ``talking_to`` answers callherald's BYE."""
        effects = self.y.send(self.y.request("BYE"))
        talking_to.reply(talking_to.last_request("BYE"), 200)
        return effects


# Reading what was sent -----------------------------------------------------------------------


def last_sdp_to(party: FakeUa) -> bytes:
    """The last SDP body callherald sent to ``party``."""
    bodies = [message.body for message in party.inbox() if message.content_type == "application/sdp"]
    assert bodies, f"no SDP was sent to {party.name}"
    return bodies[-1]


def assert_notify(notify: Request, status_line: str, *, final: bool, refer: Request) -> None:
    """A NOTIFY for the REFER's implicit subscription (RFC 3515 §2.4.4-2.4.6) carrying ``status_line``."""
    assert notify.call_id == refer.call_id
    assert notify.headers.get("event") == f"refer;id={refer.cseq.seq}"
    state = notify.headers.get("subscription-state") or ""
    assert state.split(";")[0] == ("terminated" if final else "active")
    assert notify.headers.get("content-type") == "message/sipfrag;version=2.0"
    assert notify.body == f"{status_line}\r\n".encode()
    assert notify.contacts, "a NOTIFY carries a Contact (RFC 6665)"


def kept_apart(s: TransferScene, *, recording: bool) -> list[Effect]:
    """While the target rings: no audio between the parties, no recording, ringback to Y."""
    ref = s.ref
    paused: list[Effect] = [BridgeMedia(call_ref=ref, bridged=False)]
    if recording:
        paused.append(StopRecording(call_ref=ref, reason="transfer"))
    paused.append(PlayTone(call_ref=ref, leg=s.y_leg, tone=Tone.RINGBACK, media=PCMU))
    return paused


def joined_again(s: TransferScene, purposes: tuple[str, ...] = ALL_PURPOSES) -> list[Effect]:
    """The same outside party as before: joined at once; the agent hears the beep when recording."""
    ref = s.ref
    if not s.policy.record:
        return [BridgeMedia(call_ref=ref, bridged=True)]
    agent = s.way.outside_leg.other
    return [
        BridgeMedia(call_ref=ref, bridged=True),
        PlayTone(call_ref=ref, leg=agent, tone=Tone.BEEP, media=PCMU),
        StartRecording(call_ref=ref, outside_leg=s.way.outside_leg, purposes=purposes, policy=s.policy.name),
    ]


def notice_for_new_party(s: TransferScene) -> list[Effect]:
    """A new outside party: the notice again (the agent hears it too on outbound calls)."""
    event = PartyChanged(reason="transfer", at=s.h.now)
    return [
        Evidence(call_ref=s.ref, leg=s.way.outside_leg, event=event),
        *notice_again(s.ref, s.way, at=s.h.now),
    ]


def after_answer(s: TransferScene) -> list[Effect]:
    """What follows the target's answer, after StopPlayout of Y's ringback."""
    if s.policy.record and s.who.outside:
        return notice_for_new_party(s)
    return joined_again(s)


# The transfer succeeds -----------------------------------------------------------------------


@BY_EVERY_TRANSFEROR
@POLICIES
def test_refer_replaces_the_transferor_by_the_target(who: Transferor, policy: CallPolicy) -> None:
    s = TransferScene(who, policy)
    s.establish()
    ref, x, y = s.ref, s.x, s.y
    offered_to_x = last_sdp_to(x)

    effects = s.refer()
    assert sip_summary(effects) == [(x.address, "202 REFER"), (x.address, "NOTIFY"), (x.address, "INVITE")]
    refer = x.last_response("REFER", 202)
    (trying,) = s.answer_notifies()
    assert_notify(trying, "SIP/2.0 100 Trying", final=False, refer=s.refer_sent)
    assert announcing(effects) == kept_apart(s, recording=policy.record)
    assert refer.to.tag is not None

    invite = s.target.take_invite()
    assert invite.call_id not in (s.caller.call_id, s.callee.call_id)
    assert str(invite.uri) == TARGET
    assert invite.headers.get("referred-by") == REFERRED_BY
    assert invite.headers.get("replaces") is None
    assert sdp_without_origin(invite.body) == sdp_without_origin(offered_to_x)  # X's RTP port and codecs
    assert origin_of(invite.body).username == "callherald"

    effects = s.target.ring()
    assert sip_summary(effects) == [(x.address, "NOTIFY")]
    (ringing,) = s.answer_notifies()
    assert_notify(ringing, "SIP/2.0 180 Ringing", final=False, refer=s.refer_sent)
    assert announcing(effects) == []

    effects = s.target.answer(body=TARGET_ANSWER)
    assert sip_summary(effects) == [(x.address, "ACK"), (x.address, "NOTIFY")]
    assert s.target.last_request("ACK").call_id == invite.call_id
    assert x.requests("BYE") == []  # not before the NOTIFY is answered: the BYE could overtake it
    (ok,) = s.answer_notifies()
    assert_notify(ok, "SIP/2.0 200 OK", final=True, refer=s.refer_sent)
    assert SetMediaRemote(call_ref=ref, leg=s.x_leg, remote=TARGET_MEDIA, new_party=True) in effects
    assert announcing(effects) == [StopPlayout(call_ref=ref, leg=s.y_leg), *after_answer(s)]
    # The evidence names the new party and its dialog, not only why it came.
    joined = [e.event for e in effects if isinstance(e, Evidence) and isinstance(e.event, PartyChanged)]
    assert [(event.sip_call_id, event.remote_uri) for event in joined] == (
        [(invite.call_id, TARGET)] if s.policy.record and s.who.outside else []
    )
    s.h.advance(TRANSFEROR_LEAVES_S - 0.1)
    assert x.requests("BYE") == []  # X may leave by itself first (RFC 5589 §6)
    s.h.advance(0.1)
    bye = x.last_request("BYE")
    assert bye.call_id == x.call_id
    x.reply(bye, 200)

    # X's own BYE crossing ours belongs to a retired dialog: 200, and the call goes on.
    effects = x.send(x.request("BYE"))
    assert sip_summary(effects) == [(x.address, "200 BYE")]
    assert s.h.ended() == []

    if policy.record and who.outside:
        assert sip_summary(s.refer(sender=s.target)) == [(x.address, "491 REFER")]  # during the notice
        assert len(of(s.h.effects, StartRecording)) == 1  # the first party's only
        s.notice_heard()
        s.question_heard()
        effects = s.press("2")  # the new party says no to training
        agent = who.way.outside_leg.other
        assert announcing(effects)[-3:] == [
            BridgeMedia(call_ref=ref, bridged=True),
            PlayTone(call_ref=ref, leg=agent, tone=Tone.BEEP, media=PCMU),
            StartRecording(
                call_ref=ref, outside_leg=who.way.outside_leg, purposes=("quality",), policy="service-line"
            ),
        ]

    # The call now runs between Y and the target.
    effects = s.hang_up_y(s.target)
    assert sip_summary(effects) == [(y.address, "200 BYE"), (x.address, "BYE")]
    assert s.target.last_request("BYE").call_id == invite.call_id
    assert s.h.ended() == [CallEnded(call_ref=ref, reason=f"bye-from-{s.y_leg}")]
    finish(s)


@BY_EVERY_TRANSFEROR
def test_a_target_answering_the_other_g711_law_has_its_audio_translated(who: Transferor) -> None:
    # The offer to the target is what the transferor had: PCMU alone, or PCMU and PCMA. A target
    # answering PCMA alone to PCMU alone (against RFC 3264 §6.1) is taken, as a callee is, with
    # its audio translated; to an offer with PCMA its answer is within it, relayed as it is.
    s = TransferScene(who, UNRECORDED)
    s.establish()
    s.refer()
    s.answer_notifies()
    invite = s.target.take_invite()
    s.target.ring()
    s.answer_notifies()
    pcma = TARGET_ANSWER.replace(b"RTP/AVP 0 101", b"RTP/AVP 8 101").replace(
        b"a=rtpmap:0 PCMU/8000", b"a=rtpmap:8 PCMA/8000"
    )
    effects = s.target.answer(body=pcma)
    translated = LawTranslation(
        party_payload_type=8, party_codec="pcma", call_payload_type=0, call_codec="pcmu"
    )
    expected = (
        []
        if b"PCMA/8000" in invite.body
        else [TranslateAudio(call_ref=s.ref, leg=s.x_leg, translation=translated)]
    )
    assert [e for e in effects if isinstance(e, TranslateAudio)] == expected
    assert SetMediaRemote(call_ref=s.ref, leg=s.x_leg, remote=TARGET_MEDIA, new_party=True) in effects
    s.answer_notifies()


@BY_EVERY_TRANSFEROR
def test_a_target_replacing_a_translated_party_is_relayed_as_it_answers(who: Transferor) -> None:
    # X answered Y's re-offer of PCMU alone in PCMA: its audio is translated. The target that
    # replaces X answers in PCMU, the offer's law: the translation leaves with X.
    s = TransferScene(who, UNRECORDED)
    s.establish()
    x, y = s.x, s.y
    y_origin = "agent 3003 127.0.0.9" if who.outside else own_origin(who.way)
    y.send(y.request("INVITE", body=party_sdp(y_origin, 2, "a=sendrecv")))
    x_origin = own_origin(who.way) if who.outside else "agent 3003 127.0.0.9"
    pcma = party_sdp(x_origin, 2, "a=sendrecv").replace(b"RTP/AVP 0 101", b"RTP/AVP 8 101")
    effects = x.reply(
        x.last_request("INVITE"), 200, body=pcma.replace(b"a=rtpmap:0 PCMU", b"a=rtpmap:8 PCMA")
    )
    translated = LawTranslation(
        party_payload_type=8, party_codec="pcma", call_payload_type=0, call_codec="pcmu"
    )
    assert TranslateAudio(call_ref=s.ref, leg=s.x_leg, translation=translated) in effects
    y.send(y.ack_2xx(y.last_response("INVITE", 200)))

    s.refer()
    s.answer_notifies()
    s.target.take_invite()
    s.target.ring()
    s.answer_notifies()
    effects = s.target.answer(body=TARGET_ANSWER)
    assert [e for e in effects if isinstance(e, TranslateAudio)] == [
        TranslateAudio(call_ref=s.ref, leg=s.x_leg, translation=None)
    ]
    s.answer_notifies()


def x_holds_y(s: TransferScene) -> int:
    """X puts Y on hold (a=sendonly), Y answers recvonly; how many INVITEs Y has had by then."""
    x, y = s.x, s.y
    x_origin = own_origin(s.who.way) if s.who.outside else "agent 3003 127.0.0.9"
    x.send(x.request("INVITE", body=party_sdp(x_origin, 2, "a=sendonly")))
    y.reply(y.last_request("INVITE"), 200, body=party_sdp("other 5005 127.0.0.5", 2, "a=recvonly"))
    x.send(x.ack_2xx(x.last_response("INVITE", 200)))
    return len(y.requests("INVITE"))


@BY_EVERY_TRANSFEROR
@POLICIES
def test_a_transferor_that_held_the_call_first_leaves_no_hold_behind(
    who: Transferor, policy: CallPolicy
) -> None:
    # RFC 5589 §6: X holds Y, then transfers. The target is offered sendrecv, not the recvonly
    # of Y's answer to the hold; once it answers, callherald takes Y off hold with its media,
    # and the recording that follows is not paused.
    s = TransferScene(who, policy)
    s.establish()
    ref, y = s.ref, s.y
    y_invites = x_holds_y(s)

    invite = s.start_transfer()
    assert b"a=sendrecv" in invite.body
    assert b"a=recvonly" not in invite.body
    effects = s.target.answer(body=TARGET_ANSWER)
    assert SetMediaRemote(call_ref=ref, leg=s.x_leg, remote=TARGET_MEDIA, new_party=True) in effects
    (resume,) = y.requests("INVITE")[y_invites:]
    assert resume.call_id == y.call_id
    assert b"a=sendrecv" in resume.body
    assert b"127.0.0.4" not in resume.body  # anchored: Y sends to callherald, not to the target
    effects = y.reply(resume, 200, body=party_sdp("other 5005 127.0.0.5", 3, "a=sendrecv"))
    assert sip_summary(effects) == [(y.address, "ACK")]
    assert SetMediaRemote(call_ref=ref, leg=s.y_leg, remote=("127.0.0.5", 40000)) in effects
    s.dismiss_transferor()

    if policy.record:
        if who.outside:
            s.notice_heard()
            s.question_heard()
            s.press("1")
        last_start = max(i for i, effect in enumerate(s.h.effects) if isinstance(effect, StartRecording))
        assert of(s.h.effects[last_start:], PauseRecording) == []
    s.hang_up_y(s.target)
    finish(s)


@pytest.mark.parametrize("notify_answered_first", [False, True], ids=["bye-first", "notify-answered-first"])
def test_a_transferor_that_leaves_by_itself_gets_no_bye_from_callherald(notify_answered_first: bool) -> None:
    # RFC 5589 §6: the transferor sends BYE once it learns the outcome.
    s = TransferScene(TRANSFERORS[0], UNRECORDED)
    s.establish()
    x = s.x
    s.start_transfer()
    s.target.answer(body=TARGET_ANSWER)
    if notify_answered_first:
        s.answer_notifies()
        s.h.advance(TRANSFEROR_LEAVES_S / 2)
    effects = x.send(x.request("BYE"))
    assert sip_summary(effects) == [(x.address, "200 BYE")]
    if not notify_answered_first:
        assert sip_summary(x.reply(x.requests("NOTIFY")[-1], 200)) == []
    s.h.advance(TRANSFEROR_LEAVES_S)
    assert x.requests("BYE") == []
    s.hang_up_y(s.target)
    finish(s)


def test_a_notify_waits_until_the_one_before_it_is_answered() -> None:
    # RFC 6665 §4.2.2: through a proxy, two NOTIFYs in flight may arrive out of order, and the
    # transferor refuses the older one after the final (481). Only the newest progress is sent.
    s = TransferScene(TRANSFERORS[0], UNRECORDED)
    s.establish()
    x = s.x
    s.refer()
    (trying,) = x.requests("NOTIFY")
    s.target.take_invite()
    assert sip_summary(s.target.ring()) == []  # 180 while 100 Trying is unanswered: it waits
    assert sip_summary(s.target.ring(183, body=TARGET_ANSWER)) == []  # and gives way to the newer
    assert sip_summary(s.target.answer(body=TARGET_ANSWER)) == [(x.address, "ACK")]
    effects = x.reply(trying, 200)
    assert sip_summary(effects) == [(x.address, "NOTIFY")]
    final = x.requests("NOTIFY")[-1]
    assert_notify(final, "SIP/2.0 200 OK", final=True, refer=s.refer_sent)
    assert final.cseq.seq == trying.cseq.seq + 1
    s.dismiss_transferor()
    s.hang_up_y(s.target)
    finish(s)


def test_a_transferor_that_never_answers_the_final_notify_gets_the_bye_after_timer_f() -> None:
    s = TransferScene(TRANSFERORS[0], UNRECORDED)
    s.establish()
    x = s.x
    s.start_transfer()
    s.target.answer(body=TARGET_ANSWER)
    s.h.advance(31.0)
    assert x.requests("BYE") == []
    s.h.advance(2.0)  # Timer F: 64 * T1 (RFC 3261 §17.1.2.2)
    x.reply(x.last_request("BYE"), 200)
    s.hang_up_y(s.target)
    finish(s)


def held_then_transferred(who: Transferor, policy: CallPolicy) -> tuple[TransferScene, list[Request]]:
    """X holds Y, transfers, and the target answers; callherald's re-INVITEs to Y so far."""
    s = TransferScene(who, policy)
    s.establish()
    x, y = s.x, s.y
    y_invites = x_holds_y(s)
    s.start_transfer()
    s.target.answer(body=TARGET_ANSWER)
    s.answer_notifies()
    x.send(x.request("BYE"))  # X leaves by itself (RFC 5589 §6): callherald sends it no BYE
    return s, y.requests("INVITE")[y_invites:]


@pytest.mark.parametrize("who", TRANSFERORS[:2], ids=lambda who: who.name)  # Y's dialog ours, then not
def test_a_resume_that_meets_glare_is_sent_again_after_the_rfc3261_wait(who: Transferor) -> None:
    s, (first,) = held_then_transferred(who, UNRECORDED)
    y = s.y
    y.reply(first, 491)
    # RFC 3261 §14.1: the owner of the Call-ID tries again after 2.1-4 s, the other party 0-2 s.
    if y.call_id.endswith("@callherald"):
        s.h.advance(2.05)
        assert y.requests("INVITE")[-1].cseq.seq == first.cseq.seq
        s.h.advance(1.95)
    else:
        s.h.advance(2.0)
    second = y.requests("INVITE")[-1]
    assert second.cseq.seq == first.cseq.seq + 1
    assert second.body.split(b"\r\n", 2)[2] == first.body.split(b"\r\n", 2)[2]  # the same offer
    effects = y.reply(second, 200, body=party_sdp("other 5005 127.0.0.5", 3, "a=sendrecv"))
    assert sip_summary(effects) == [(y.address, "ACK")]
    s.hang_up_y(s.target)
    finish(s)


def test_a_resume_refused_twice_is_logged_and_the_call_goes_on() -> None:
    s, (first,) = held_then_transferred(TRANSFERORS[0], UNRECORDED)
    y = s.y
    y.reply(first, 491)
    s.h.advance(4.1)
    second = y.requests("INVITE")[-1]
    effects = y.reply(second, 491)
    assert (
        LogEvent(
            level="warning",
            text=f"leg {s.y_leg} refused to come off hold after the transfer: 491 Request Pending",
            call_ref=s.ref,
        )
        in effects
    )
    s.h.advance(10.0)
    assert y.requests("INVITE")[-1].cseq.seq == second.cseq.seq
    assert s.h.ended() == []
    s.hang_up_y(s.target)
    finish(s)


@BY_EVERY_TRANSFEROR
@POLICIES
def test_the_target_can_transfer_the_call_on(who: Transferor, policy: CallPolicy) -> None:
    s = TransferScene(who, policy)
    s.establish()
    s.start_transfer()
    s.target.answer(body=TARGET_ANSWER)
    s.dismiss_transferor()
    if policy.record and who.outside:  # the new outside party hears the notice and says yes
        s.notice_heard()
        s.question_heard()
        s.decide("1")
    offered_to_target = last_sdp_to(s.target)

    # The target, now a party of the call, transfers it on in turn: T's dialog is retired now.
    second = s.new_target("second-target", (s.x, s.target))
    effects = s.refer("<sip:second@127.0.0.1>", sender=s.target)
    assert sip_summary(effects) == [
        (s.x.address, "202 REFER"),
        (s.x.address, "NOTIFY"),
        (s.x.address, "INVITE"),
    ]
    assert announcing(effects) == kept_apart(s, recording=policy.record)
    (trying,) = s.answer_notifies(s.target)
    assert_notify(trying, "SIP/2.0 100 Trying", final=False, refer=s.refer_sent)
    invite = second.take_invite()
    assert invite.call_id not in (s.x.call_id, s.target.call_id, s.y.call_id)
    assert sdp_without_origin(invite.body) == sdp_without_origin(offered_to_target)
    effects = second.answer(body=CALLEE_ANSWER)
    assert sip_summary(effects) == [(s.x.address, "ACK"), (s.x.address, "NOTIFY")]
    assert SetMediaRemote(call_ref=s.ref, leg=s.x_leg, remote=("127.0.0.3", 30000), new_party=True) in effects
    assert announcing(effects) == [StopPlayout(call_ref=s.ref, leg=s.y_leg), *after_answer(s)]
    assert s.dismiss_transferor(s.target).call_id == s.target.call_id
    if policy.record and who.outside:
        s.notice_heard()
        s.question_heard()
        s.decide(None)

    effects = second.send(second.request("BYE"))
    assert sip_summary(effects) == [(s.x.address, "200 BYE"), (s.y.address, "BYE")]
    s.y.reply(s.y.last_request("BYE"), 200)
    assert s.h.ended() == [CallEnded(call_ref=s.ref, reason=f"bye-from-{s.x_leg}")]
    finish(s)


# What the Refer-To names ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ReferTo:
    name: str
    value: str  # the Refer-To header field
    request_uri: str  # of the INVITE to the target
    replaces: str | None  # the Replaces header of that INVITE (RFC 3891), percent-decoded


REFER_TOS = [
    ReferTo(name="sip", value=f"<{TARGET}>", request_uri=TARGET, replaces=None),
    ReferTo(
        name="display-name-and-params",
        value='"Front Desk" <sip:200@pbx.example;user=phone>',
        request_uri="sip:200@pbx.example;user=phone",
        replaces=None,
    ),
    ReferTo(
        name="attended-replaces",
        value=f"<{TARGET}?Replaces=call-9%40pbx.example%3Bto-tag%3Dt9%3Bfrom-tag%3Df9>",
        request_uri=TARGET,
        replaces="call-9@pbx.example;to-tag=t9;from-tag=f9",
    ),
    ReferTo(
        name="other-uri-headers-left-out",
        value=f"<{TARGET}?Subject=hello&Replaces=c%40h%3Bto-tag%3Da%3Bfrom-tag%3Db>",
        request_uri=TARGET,
        replaces="c@h;to-tag=a;from-tag=b",
    ),
    ReferTo(
        name="tel-at-the-transferors-host",
        value="<tel:+49-30-555111>",
        request_uri="sip:+4930555111@{host}",
        replaces=None,
    ),
]


@pytest.mark.parametrize("who", [TRANSFERORS[0], TRANSFERORS[3]], ids=lambda who: who.name)
@pytest.mark.parametrize("case", REFER_TOS, ids=lambda case: case.name)
def test_refer_to_uri_and_its_headers_make_the_invite(who: Transferor, case: ReferTo) -> None:
    s = TransferScene(who, UNRECORDED)
    s.establish()
    s.refer(case.value)
    s.answer_notifies()
    invite = s.target.take_invite()

    host, port = s.x.address
    assert str(invite.uri) == case.request_uri.format(host=f"{host}:{port}")
    assert invite.headers.get("replaces") == case.replaces
    assert invite.headers.get("subject") is None
    assert invite.to.uri == invite.uri
    s.target.reply(invite, 486)
    s.answer_notifies()
    s.x.send(s.x.request("BYE"))
    s.y.reply(s.y.last_request("BYE"), 200)
    finish(s)


# REFERs callherald refuses -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    name: str
    situation: str  # where the call is when the REFER comes (see ``into``)
    refer_to: tuple[str, ...]  # the Refer-To fields
    status: int


REFUSALS = [
    Refusal(name="no-refer-to", situation="talking", refer_to=(), status=400),  # RFC 3515 §2.4.1
    Refusal(
        name="two-refer-tos",
        situation="talking",
        refer_to=("<sip:a@127.0.0.1>", "<sip:b@127.0.0.1>"),
        status=400,
    ),
    Refusal(name="malformed-refer-to", situation="talking", refer_to=("<sip:>",), status=400),
    Refusal(name="http-refer-to", situation="talking", refer_to=("<http://example.net/agent>",), status=416),
    Refusal(
        name="mailto-refer-to", situation="talking", refer_to=("<mailto:agent@example.net>",), status=416
    ),
    Refusal(name="early-dialog", situation="ringing", refer_to=(TARGET,), status=491),
    Refusal(name="answer-not-acked", situation="answered", refer_to=(TARGET,), status=491),
    Refusal(name="reinvite-pending", situation="reinvite", refer_to=(TARGET,), status=491),
    Refusal(name="during-the-notice", situation="notice", refer_to=(TARGET,), status=491),
    Refusal(name="transfer-in-progress", situation="transferring", refer_to=(TARGET,), status=491),
    Refusal(
        name="other-party-during-transfer", situation="other-transferring", refer_to=(TARGET,), status=491
    ),
]


def into(s: TransferScene, situation: str) -> FakeUa:
    """Bring the call into ``situation``; return who sends the REFER."""
    if situation == "notice":
        s.notice_playing()
        return s.outside if s.way is INBOUND else s.x  # inbound, the PBX is called after the notice
    if situation in ("ringing", "answered"):
        s.dial()
        s.callee.take_invite()
        s.callee.ring()
        if situation == "answered":
            s.callee.answer()
        s.caller.learn(s.caller.last_response("INVITE"))
        return s.caller
    s.establish()
    if situation == "reinvite":
        s.y.send(s.y.request("INVITE", body=CALLEE_ANSWER))
        return s.x
    if situation in ("transferring", "other-transferring"):
        s.start_transfer()
        return s.x if situation == "transferring" else s.y
    return s.x


def tidy_up(s: TransferScene, situation: str) -> None:
    """End the call from where ``into`` left it."""
    if situation == "ringing":
        s.caller.send(s.caller.cancel())
        s.callee.reply(s.callee.last_request("CANCEL"), 200)
        s.callee.reply(s.callee.invite, 487)
        s.caller.send(s.caller.ack_failure(s.caller.last_response("INVITE", 487)))
        return
    if situation == "answered":
        s.caller.ack_answer()
    if situation == "reinvite":
        relayed = s.x.last_request("INVITE")
        s.x.reply(relayed, 200, body=TARGET_ANSWER)
        s.y.send(s.y.ack_2xx(s.y.last_response("INVITE", 200)))
    if situation in ("transferring", "other-transferring"):
        s.target.reply(s.target.invite, 486)
        s.answer_notifies()
    s.caller.send(s.caller.request("BYE"))
    for bye in s.callee.requests("BYE"):
        s.callee.reply(bye, 200)


@BY_EVERY_TRANSFEROR
@pytest.mark.parametrize("case", REFUSALS, ids=lambda case: case.name)
def test_refer_is_refused_and_the_call_goes_on(who: Transferor, case: Refusal) -> None:
    policy = POLICY if case.situation == "notice" else UNRECORDED
    s = TransferScene(who, policy)
    sender = into(s, case.situation)

    if case.refer_to:
        effects = s.refer(*case.refer_to, sender=sender)
    else:
        effects = sender.send(sender.request("REFER", extra=[("Referred-By", REFERRED_BY)]))
    assert sip_summary(effects) == [(sender.address, f"{case.status} REFER")]
    assert announcing(effects) == []
    assert s.h.ended() == []
    tidy_up(s, case.situation)
    assert len(s.h.ended()) == 1
    finish(s)


@BY_EVERY_TRANSFEROR
def test_an_attended_transfer_whose_replaces_names_a_call_through_callherald_is_refused(
    who: Transferor,
) -> None:
    # The INVITE with Replaces would come back to callherald (RFC 3891 §3), which cannot join two
    # of its calls: the REFER is refused with the reason, so the PBX joins them itself.
    s = TransferScene(who, UNRECORDED)
    s.establish()
    other = s.y  # a dialog callherald is a party to
    replaces = quote(f"{other.call_id};to-tag={other.remote_tag};from-tag={other.local_tag}", safe="")
    effects = s.refer(f"<{TARGET}?Replaces={replaces}>")

    assert sip_summary(effects) == [(s.x.address, "403 REFER")]
    refusal = s.x.last_response("REFER", 403)
    assert (
        refusal.headers.get("warning")
        == '399 callherald "Both calls pass through callherald: join them on the PBX"'
    )
    assert s.target.inbox() == []
    assert s.h.ended() == []
    s.x.send(s.x.request("BYE"))
    s.y.reply(s.y.last_request("BYE"), 200)
    finish(s)


# The target does not answer ------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    name: str
    rings: bool  # the target sends 180 first
    status: int | None  # the target's final response; None: none (ring timeout, or Timer B)
    status_line: str  # in the final NOTIFY


FAILURES = [
    Failure(name="busy", rings=True, status=486, status_line="SIP/2.0 486 Busy Here"),
    Failure(name="decline-at-once", rings=False, status=603, status_line="SIP/2.0 603 Decline"),
    Failure(name="not-found", rings=False, status=404, status_line="SIP/2.0 404 Not Found"),
    Failure(name="ring-timeout", rings=True, status=None, status_line="SIP/2.0 408 Request Timeout"),
    Failure(name="no-response-timer-b", rings=False, status=None, status_line="SIP/2.0 408 Request Timeout"),
]


@BY_EVERY_TRANSFEROR
@POLICIES
@pytest.mark.parametrize("failure", FAILURES, ids=lambda failure: failure.name)
def test_failed_transfer_gives_the_call_back_to_the_transferor(
    who: Transferor, policy: CallPolicy, failure: Failure
) -> None:
    s = TransferScene(who, policy)
    s.establish()
    ref, x, y = s.ref, s.x, s.y
    invite = s.start_transfer()
    if failure.rings:
        s.target.ring()
        s.answer_notifies()

    if failure.status is None:
        effects = s.h.advance(RING_TIMEOUT_S if failure.rings else TIMER_B_S)
        sent = [sent for sent in sip_summary(effects) if sent[1] != "INVITE"]  # no retransmissions
        if failure.rings:
            assert sent == [(x.address, "CANCEL"), (x.address, "NOTIFY")]
            cancel = s.target.last_request("CANCEL")
            assert cancel.call_id == invite.call_id
            s.target.reply(cancel, 200)
            assert sip_summary(s.target.reply(invite, 487)) == [(x.address, "ACK")]
        else:
            assert sent == [(x.address, "NOTIFY")]  # the INVITE transaction timed out: nothing to cancel
    else:
        effects = s.target.reply(invite, failure.status)
        assert sip_summary(effects) == [(x.address, "ACK"), (x.address, "NOTIFY")]
        assert s.target.last_request("ACK").call_id == invite.call_id
    (final,) = s.answer_notifies()
    assert_notify(final, failure.status_line, final=True, refer=s.refer_sent)
    assert announcing(effects) == [StopPlayout(call_ref=ref, leg=s.y_leg), *joined_again(s)]
    assert s.h.ended() == []
    assert x.requests("BYE") == []

    # X may try again: a new subscription, told apart by the new REFER's CSeq.
    effects = s.refer("<sip:second-try@127.0.0.1>")
    assert sip_summary(effects) == [(x.address, "202 REFER"), (x.address, "NOTIFY"), (x.address, "INVITE")]
    (trying,) = s.answer_notifies()
    assert_notify(trying, "SIP/2.0 100 Trying", final=False, refer=s.refer_sent)
    again = s.new_target("second-try", (x, s.target))
    again.reply(again.take_invite(), 480)
    s.answer_notifies()

    # The call is X's again: X's BYE ends it.
    effects = x.send(x.request("BYE"))
    assert sip_summary(effects) == [(x.address, "200 BYE"), (y.address, "BYE")]
    y.reply(y.last_request("BYE"), 200)
    assert s.h.ended() == [CallEnded(call_ref=ref, reason=f"bye-from-{s.x_leg}")]
    finish(s)


# Blind transfer: the transferor leaves at once (RFC 5589 §6) --------------------------------


@BY_EVERY_TRANSFEROR
@POLICIES
@pytest.mark.parametrize("answered", [True, False], ids=["target-answers", "target-busy"])
def test_blind_transfer_goes_on_without_the_transferor(
    who: Transferor, policy: CallPolicy, answered: bool
) -> None:
    s = TransferScene(who, policy)
    s.establish()
    ref, x, y = s.ref, s.x, s.y
    s.refer()
    s.answer_notifies()

    effects = x.send(x.request("BYE"))
    assert sip_summary(effects) == [(x.address, "200 BYE")]
    assert announcing(effects) == []
    assert s.h.ended() == []
    invite = s.target.take_invite()
    assert sip_summary(s.target.ring()) == []  # nobody to tell any more

    if answered:
        effects = s.target.answer(body=TARGET_ANSWER)
        assert sip_summary(effects) == [(x.address, "ACK")]
        assert announcing(effects) == [StopPlayout(call_ref=ref, leg=s.y_leg), *after_answer(s)]
        assert [notify.body for notify in x.requests("NOTIFY")] == [b"SIP/2.0 100 Trying\r\n"]
        assert x.requests("BYE") == []
        if policy.record and who.outside:
            s.notice_heard()
            s.question_heard()
            s.decide(None)
        effects = s.hang_up_y(s.target)
        assert sip_summary(effects) == [(y.address, "200 BYE"), (x.address, "BYE")]
        assert s.target.last_request("BYE").call_id == invite.call_id
        assert s.h.ended() == [CallEnded(call_ref=ref, reason=f"bye-from-{s.y_leg}")]
    else:
        effects = s.target.reply(invite, 486)
        assert sip_summary(effects) == [(x.address, "ACK"), (y.address, "BYE")]  # Y is hung up
        assert s.h.ended() == [CallEnded(call_ref=ref, reason="transfer-failed")]
        y.reply(y.last_request("BYE"), 200)
        assert x.requests("BYE") == []
    assert len(x.requests("NOTIFY")) == 1
    finish(s)


# The other party leaves while the target rings ------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Leaving:
    name: str
    blind: bool  # the transferor left right after the 202
    rang: bool  # the target sent 180 before
    how: str  # "bye": Y hangs up; "shutdown": callherald stops
    target_then: int  # the target's final response to its INVITE afterwards (200: racing the CANCEL)


LEAVINGS = [
    Leaving(name="after-180", blind=False, rang=True, how="bye", target_then=487),
    Leaving(name="before-any-provisional", blind=False, rang=False, how="bye", target_then=487),
    Leaving(name="blind-after-180", blind=True, rang=True, how="bye", target_then=487),
    Leaving(name="blind-before-any-provisional", blind=True, rang=False, how="bye", target_then=487),
    Leaving(name="answer-races-the-cancel", blind=False, rang=True, how="bye", target_then=200),
    Leaving(name="shutdown", blind=False, rang=True, how="shutdown", target_then=487),
    Leaving(name="shutdown-blind", blind=True, rang=False, how="shutdown", target_then=487),
]


@BY_EVERY_TRANSFEROR
@POLICIES
@pytest.mark.parametrize("case", LEAVINGS, ids=lambda case: case.name)
def test_call_ending_while_the_target_rings_cancels_the_target(
    who: Transferor, policy: CallPolicy, case: Leaving
) -> None:
    s = TransferScene(who, policy)
    s.establish()
    ref, x, y = s.ref, s.x, s.y
    s.refer()
    s.answer_notifies()
    if case.blind:
        x.send(x.request("BYE"))
    invite = s.target.take_invite()
    if case.rang:
        s.target.ring()
        s.answer_notifies()

    if case.how == "bye":
        effects = y.send(y.request("BYE"))
        assert s.h.ended() == [CallEnded(call_ref=ref, reason=f"bye-from-{s.y_leg}")]
    else:
        effects = s.h.shutdown()
        assert s.h.ended() == [CallEnded(call_ref=ref, reason="shutdown")]
    assert of(effects, StartRecording) == []
    assert of(effects, StopRecording) == []  # already stopped when the transfer began
    if case.blind:
        assert x.requests("BYE") == []  # the transferor is gone already
    else:
        x.reply(x.last_request("BYE"), 200)
    if case.how == "shutdown":
        y.reply(y.last_request("BYE"), 200)
    else:
        assert sip_summary(effects)[0] == (y.address, "200 BYE")
    if not case.rang:
        assert s.target.requests("CANCEL") == []
        assert sip_summary(s.target.ring()) == [(x.address, "CANCEL")]  # §9.1: only after a provisional
    cancel = s.target.last_request("CANCEL")
    assert cancel.call_id == invite.call_id
    s.target.reply(cancel, 200)

    effects = s.target.reply(invite, case.target_then)
    if case.target_then == 200:
        assert sip_summary(effects) == [(x.address, "ACK"), (x.address, "BYE")]
        s.target.reply(s.target.last_request("BYE"), 200)
    else:
        assert sip_summary(effects) == [(x.address, "ACK")]
    assert [notify.body for notify in x.requests("NOTIFY")] == [b"SIP/2.0 100 Trying\r\n"] + (
        [b"SIP/2.0 180 Ringing\r\n"] if case.rang and not case.blind else []
    )
    assert len(s.h.ended()) == 1
    finish(s)


# Consent withdrawn while the target rings (GDPR Art. 7(3)) ------------------------------------


@pytest.mark.parametrize("way", [INBOUND, OUTBOUND], ids=lambda way: way.name)
@pytest.mark.parametrize("answered", [True, False], ids=["target-answers", "target-busy"])
def test_withdrawal_while_an_agent_transfers_holds_when_recording_resumes(way: Way, answered: bool) -> None:
    s = TransferScene(Transferor(way=way, outside=False), POLICY)
    s.establish()
    ref, leg = s.ref, way.outside_leg
    invite = s.start_transfer()
    s.h.advance(3.0)

    effects = s.press("*")  # the outside party hears ringback and withdraws
    assert announcing(effects) == [
        Evidence(
            call_ref=ref,
            leg=leg,
            event=ConsentWithdrawn(purposes=("training",), mechanism=DigitMechanism.RFC4733, at=s.h.now),
        )
    ]  # nothing records while the parties are apart: nothing to stop, nothing to start yet

    if answered:
        effects = s.target.answer(body=TARGET_ANSWER)
        s.dismiss_transferor()
        talking_to: FakeUa = s.target
    else:
        effects = s.target.reply(invite, 486)
        s.answer_notifies()
        talking_to = s.x
    assert announcing(effects) == [StopPlayout(call_ref=ref, leg=s.y_leg), *joined_again(s, ("quality",))]
    assert events(s.h.effects, ConsentWithdrawn) != []
    s.hang_up_y(talking_to)
    finish(s)


# The target's SDP points X's leg at the target ---------------------------------------------


def test_answer_without_sdp_leaves_the_leg_without_a_remote() -> None:
    s = TransferScene(TRANSFERORS[0], UNRECORDED)
    s.establish()
    s.start_transfer()
    effects = s.target.answer(body=b"")
    assert SetMediaRemote(call_ref=s.ref, leg=s.x_leg, remote=None, new_party=True) in effects
    s.dismiss_transferor()
    s.hang_up_y(s.target)
    finish(s)


# What the target says before it answers, and after -------------------------------------------


@pytest.mark.parametrize(
    ("status", "reported"),
    [(100, None), (180, "SIP/2.0 180 Ringing"), (183, "SIP/2.0 183 Session Progress")],
    ids=["trying", "ringing", "session-progress"],
)
def test_provisional_responses_of_the_target_are_reported(status: int, reported: str | None) -> None:
    s = TransferScene(TRANSFERORS[2], POLICY)
    s.establish()
    s.start_transfer()

    effects = s.target.ring(status, body=TARGET_ANSWER if status == 183 else b"")
    if reported is None:
        assert sip_summary(effects) == []
    else:
        assert sip_summary(effects) == [(s.x.address, "NOTIFY")]
        (notify,) = s.answer_notifies()
        assert_notify(notify, reported, final=False, refer=s.refer_sent)
    assert announcing(effects) == []  # the target's early media stays out: Y hears ringback
    assert of(effects, SetMediaRemote) == []
    s.target.answer(body=TARGET_ANSWER)
    s.dismiss_transferor()
    s.hang_up_y(s.target)
    finish(s)


@pytest.mark.parametrize("wait_s", [1.0, 40.0], ids=["in-transaction", "after-timer-m"])
def test_target_2xx_retransmission_is_acked_again_and_keeps_the_call(wait_s: float) -> None:
    s = TransferScene(TRANSFERORS[0], UNRECORDED)
    s.establish()
    s.start_transfer()
    s.target.answer(body=TARGET_ANSWER)
    s.dismiss_transferor()
    (ack,) = s.target.requests("ACK")
    s.h.advance(wait_s)

    effects = s.target.answer(body=TARGET_ANSWER)  # our ACK was lost (§13.2.2.4)
    assert sip_summary(effects) == [(s.x.address, "ACK")]
    assert bytes(s.target.last_request("ACK")) == bytes(ack)
    assert s.target.requests("BYE") == []
    assert s.h.ended() == []
    s.hang_up_y(s.target)
    finish(s)
