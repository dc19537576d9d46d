"""Notice and consent in the B2BUA core on virtual time: who hears what, when the parties are joined
and when recording may start.

Every scenario ends in ``finish``, which checks the recording invariant over the whole effect log
(``assert_recording_lawful``: no recording before the notice was heard whole and consent finished for
the party on the line, no consent purpose without a "yes", GDPR Art. 7) and that nothing is left.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import pytest

from proxy.b2bua.announcer import NOTICE_LEAD_IN_MS
from proxy.b2bua.call import PartyIdentity
from proxy.b2bua.consent import (
    KEY_REPORT_GRACE_S,
    AnnouncementEnded,
    AnnouncementStarted,
    ConsentDecided,
    ConsentFinished,
    ConsentQuestion,
    ConsentWithdrawn,
    Decision,
    DigitMechanism,
    DigitReceived,
    EvidenceEvent,
    NoticeFailed,
    PartyChanged,
    Purpose,
)
from proxy.b2bua.core import _identity, _party_change
from proxy.b2bua.effects import (
    BridgeMedia,
    CallEnded,
    Effect,
    Evidence,
    ListenForDigits,
    LogEvent,
    MediaFormat,
    MediaLeg,
    PauseRecording,
    PlayPrompt,
    PlayTone,
    ResumeRecording,
    SendSip,
    SetMediaRemote,
    StartRecording,
    StopPlayout,
    StopRecording,
    Tone,
)
from proxy.b2bua.pci_code import PCI_CODE_GAP_S
from proxy.b2bua.policy import UNRECORDED, AnnouncementMode, CallPolicy, FailureBehaviour, PromptCheck
from proxy.b2bua.settings import Address, B2buaSettings, Side
from proxy.sip.headers import NameAddress
from proxy.sip.message import Request, Response
from proxy.sip.uri import parse_uri
from tests.proxy.b2bua.harness import (
    CALLEE_ANSWER,
    CALLER_OFFER,
    CARRIER,
    PBX,
    T0,
    FakeUa,
    FakeUac,
    FakeUas,
    Harness,
    cancel_of,
    make_settings,
    non_sip,
    origin_of,
    sdp,
    sdp_without_origin,
    sent_sip,
    sip_summary,
)

DIALLED = "4930123456"
A_PORT = 20000  # the first call's ports, in pool order: a leg, then b leg
B_PORT = 20002
CALLEE_MEDIA: Address = ("127.0.0.3", 30000)
PCMU = MediaFormat(codec="pcmu", payload_type=0, event_payload_type=101)
OUTSIDE_IDENTITY = ("P-Asserted-Identity", "<sip:+4930555000@carrier.example>")

QUALITY = Purpose(purpose_id="quality", lawful_basis="legitimate-interest", needs_consent=False)
TRAINING = Purpose(purpose_id="training", lawful_basis="consent", needs_consent=True)
TRAINING_QUESTION = ConsentQuestion(
    question_id="training-question",
    version="3",
    purpose_id="training",
    prompt_id="ask-training",
    yes_digit="1",
    timeout_s=5.0,
)
POLICY = CallPolicy(
    name="service-line",
    record=True,
    notice_prompt_id="notice",
    language="de",
    purposes=(QUALITY, TRAINING),
    questions=(TRAINING_QUESTION,),
    withdrawal_digit="*",
)
CONSENT_ONLY = dataclasses.replace(POLICY, name="consent-only", purposes=(TRAINING,))
EARLY_MEDIA = dataclasses.replace(POLICY, mode=AnnouncementMode.EARLY_MEDIA)

ANNOUNCER_EFFECTS = (
    PlayPrompt,
    PlayTone,
    StopPlayout,
    BridgeMedia,
    ListenForDigits,
    Evidence,
    StartRecording,
    StopRecording,
)

E = TypeVar("E")


# Ways and scenes -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Way:
    """Where a call comes from and goes to, and on which leg the outside party is."""

    name: str
    caller: Address
    caller_side: Side
    callee: Address
    callee_side: Side
    outside_leg: MediaLeg


INBOUND = Way(
    name="inbound",
    caller=CARRIER,
    caller_side=Side.CARRIER,
    callee=PBX,
    callee_side=Side.PBX,
    outside_leg=MediaLeg.A,
)
OUTBOUND = Way(
    name="outbound",
    caller=PBX,
    caller_side=Side.PBX,
    callee=CARRIER,
    callee_side=Side.CARRIER,
    outside_leg=MediaLeg.B,
)
WAYS = pytest.mark.parametrize("way", [INBOUND, OUTBOUND], ids=lambda way: way.name)


class Scene:
    """One call under ``policy``: the harness, both parties, and the playout layer's reports."""

    def __init__(
        self,
        way: Way = INBOUND,
        policy: CallPolicy = POLICY,
        *,
        prompt_ready: PromptCheck | None = None,
        settings: B2buaSettings | None = None,
        caller_user: str = "201",
    ) -> None:
        self.way = way
        self.policy = policy
        self.resolved: list[tuple[str, str, str]] = []
        self.h = Harness(settings, policy_for=self._resolve, prompt_ready=prompt_ready)
        self.caller = FakeUac(self.h, address=way.caller, side=way.caller_side, user=caller_user)
        self.callee = FakeUas(self.h, address=way.callee, side=way.callee_side)

    def _resolve(self, direction: str, calling: str, called: str) -> CallPolicy:
        self.resolved.append((direction, calling, called))
        return self.policy

    @property
    def outside(self) -> FakeUa:
        return self.caller if self.way.outside_leg is MediaLeg.A else self.callee

    @property
    def agent(self) -> FakeUa:
        return self.callee if self.way.outside_leg is MediaLeg.A else self.caller

    @property
    def ref(self) -> str:
        return self.h.call_ref()

    def dial(self, body: bytes = CALLER_OFFER, dialled: str = DIALLED) -> list[Effect]:
        extra = (OUTSIDE_IDENTITY,) if self.way is INBOUND else ()
        return self.caller.send(self.caller.invite(dialled, body=body, extra=extra))

    def callee_answers(self) -> list[Effect]:
        """The callee's 200 (the carrier asserts who answered, RFC 3325)."""
        extra = (OUTSIDE_IDENTITY,) if self.way is OUTBOUND else ()
        return self.callee.reply(self.callee.invite, 200, body=CALLEE_ANSWER, extra=extra)

    def notice_playing(self) -> None:
        """Dial and get to where the outside party hears the notice; a 2xx to the caller is ACKed."""
        self.dial()
        if self.way is OUTBOUND:
            self.callee.take_invite()
            self.callee.ring()
            self.callee_answers()
        if self.caller.responses("INVITE", 200):
            self.caller.ack_answer()

    def notice_heard(self) -> list[Effect]:
        return self.h.prompt_finished(self.ref, self.way.outside_leg)

    def question_heard(self) -> list[Effect]:
        return self.h.prompt_finished(self.ref, self.way.outside_leg)

    def press(self, digit: str, leg: MediaLeg | None = None) -> list[Effect]:
        return self.h.digit(self.ref, leg or self.way.outside_leg, digit)

    def decide(self, digit: str | None) -> list[Effect]:
        """Answer the question with ``digit``; None lets the answer window close."""
        if digit is None:
            return self.h.advance(TRAINING_QUESTION.timeout_s + KEY_REPORT_GRACE_S)
        return self.press(digit)

    def connect(self, digit: str | None = "1") -> None:
        """Notice, question answered with ``digit``, callee answered: the parties are bridged."""
        self.notice_playing()
        self.notice_heard()
        self.question_heard()
        self.decide(digit)
        if self.way is INBOUND:
            self.callee.take_invite()
            self.callee.ring()
            self.callee_answers()
        self.caller.new_messages()
        self.callee.new_messages()

    def hang_up(self) -> None:
        """The caller says BYE and the callee answers callherald's BYE."""
        self.caller.send(self.caller.request("BYE"))
        self.callee.reply(self.callee.last_request("BYE"), 200)


def finish(scene: Scene) -> None:
    """The invariant held all along, and once timers ran out nothing of the call is left."""
    assert_recording_lawful(scene.h.effects, scene.policy)
    scene.h.advance(64.0)
    assert scene.h.leftovers() == dict.fromkeys(scene.h.leftovers(), 0)
    scene.h.assert_idle()


# Reading effects -------------------------------------------------------------------------------


def announcing(effects: Iterable[Effect]) -> list[Effect]:
    """The effects about the notice, consent, playout, bridging and recording, in order."""
    return [effect for effect in effects if isinstance(effect, ANNOUNCER_EFFECTS)]


def of(effects: Iterable[Effect], kind: type[E]) -> list[E]:
    return [effect for effect in effects if isinstance(effect, kind)]


def events(effects: Iterable[Effect], kind: type[E]) -> list[E]:
    """The evidence events of type ``kind``."""
    return [effect.event for effect in of(effects, Evidence) if isinstance(effect.event, kind)]


def index_of(effects: Sequence[Effect], wanted: Effect) -> int:
    return list(effects).index(wanted)


def sip_index(effects: Sequence[Effect], destination: Address, label: str) -> int:
    """Where in ``effects`` the SendSip ``label`` to ``destination`` is."""
    for index, effect in enumerate(effects):
        if isinstance(effect, SendSip) and sip_summary([effect]) == [(destination, label)]:
            return index
    raise AssertionError(f"no {label} to {destination}")


def audio_lines(body: bytes) -> list[str]:
    """The m= and a=rtpmap lines of an SDP body: which codecs it names."""
    return [line for line in sdp_without_origin(body) if line.startswith(("m=", "a=rtpmap:"))]


def warnings(effects: Iterable[Effect]) -> list[LogEvent]:
    return [effect for effect in of(effects, LogEvent) if effect.level == "warning"]


# The invariant ---------------------------------------------------------------------------------


def assert_recording_lawful(effects: Iterable[Effect], policy: CallPolicy) -> None:
    """Per call and outside party: ``StartRecording`` only after the notice ended complete and
    ``ConsentFinished``; a consent purpose only after a granted ``ConsentDecided`` for it that was
    not withdrawn (GDPR Art. 7, 7(3)); Start and Stop alternate. ``PartyChanged`` starts over."""
    consent_purposes = {purpose.purpose_id for purpose in policy.purposes if purpose.needs_consent}
    heard: dict[str, bool] = {}
    finished: dict[str, bool] = {}
    granted: dict[str, set[str]] = {}
    recording: dict[str, bool] = {}
    for effect in effects:
        if isinstance(effect, Evidence):
            ref, event = effect.call_ref, effect.event
            if isinstance(event, PartyChanged):
                heard[ref] = finished[ref] = False
                granted[ref] = set()
            elif isinstance(event, AnnouncementEnded) and event.prompt_id == policy.notice_prompt_id:
                heard[ref] = heard.get(ref, False) or event.complete
            elif isinstance(event, ConsentDecided) and event.decision is Decision.GRANTED:
                granted.setdefault(ref, set()).add(event.purpose_id)
            elif isinstance(event, ConsentWithdrawn):
                granted[ref] = granted.get(ref, set()) - set(event.purposes)
            elif isinstance(event, ConsentFinished):
                finished[ref] = True
        elif isinstance(effect, StartRecording):
            ref = effect.call_ref
            assert heard.get(ref), f"recording before the notice was heard: {effect}"
            assert finished.get(ref), f"recording before consent finished: {effect}"
            assert not recording.get(ref), f"recording started twice: {effect}"
            unconsented = set(effect.purposes) & consent_purposes - granted.get(ref, set())
            assert not unconsented, f"recording for {sorted(unconsented)} without consent"
            recording[ref] = True
        elif isinstance(effect, StopRecording):
            assert recording.get(effect.call_ref), f"stopped a recording that never ran: {effect}"
            recording[effect.call_ref] = False


def _evidence(event: EvidenceEvent) -> Evidence:
    return Evidence(call_ref="c", leg=MediaLeg.A, event=event)


_HEARD = _evidence(AnnouncementEnded(prompt_id="notice", at=1.0, complete=True))
_CUT = _evidence(AnnouncementEnded(prompt_id="notice", at=1.0, complete=False))
_YES = _evidence(
    ConsentDecided(
        question_id="training-question",
        question_version="3",
        purpose_id="training",
        decision=Decision.GRANTED,
        mechanism=DigitMechanism.RFC4733,
        at=2.0,
    )
)
_FINISHED = _evidence(ConsentFinished(purposes=("quality", "training"), at=2.0))
_NEW_PARTY = _evidence(PartyChanged(reason="SDP origin changed", at=3.0))
_WITHDRAWN = _evidence(ConsentWithdrawn(purposes=("training",), mechanism=DigitMechanism.RFC4733, at=3.0))


def _start(*purposes: str) -> StartRecording:
    return StartRecording(call_ref="c", outside_leg=MediaLeg.A, purposes=purposes, policy="service-line")


_STOP = StopRecording(call_ref="c", reason="new-party")


@pytest.mark.parametrize(
    ("log", "lawful"),
    [
        ([_HEARD, _YES, _FINISHED, _start("quality", "training")], True),
        ([_HEARD, _FINISHED, _start("quality")], True),
        ([_YES, _FINISHED, _start("quality")], False),  # notice never ended
        ([_CUT, _FINISHED, _start("quality")], False),  # notice cut short
        ([_HEARD, _start("quality")], False),  # consent not finished
        ([_HEARD, _FINISHED, _start("quality", "training")], False),  # no "yes" for training
        ([_HEARD, _YES, _FINISHED, _start("quality"), _NEW_PARTY, _STOP, _start("quality")], False),
        ([_HEARD, _YES, _FINISHED, _start("training"), _WITHDRAWN, _STOP, _start("training")], False),
        ([_HEARD, _FINISHED, _STOP], False),  # stopped what never ran
    ],
    ids=[
        "granted",
        "no-consent-purpose",
        "notice-missing",
        "notice-cut",
        "unfinished",
        "ungranted-purpose",
        "new-party-unannounced",
        "after-withdrawal",
        "stop-without-start",
    ],
)
def test_the_invariant_check_itself(log: list[Effect], lawful: bool) -> None:
    if lawful:
        assert_recording_lawful(log, POLICY)
    else:
        with pytest.raises(AssertionError):
            assert_recording_lawful(log, POLICY)


# The policy resolver ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("way", "caller_user", "dialled"),
    [
        (INBOUND, "+4930111222", "4930123456"),
        (INBOUND, "anonymous", "800123"),
        (OUTBOUND, "201", "004930999888"),
    ],
    ids=["inbound", "inbound-anonymous", "outbound"],
)
@pytest.mark.parametrize("policy", [POLICY, UNRECORDED], ids=lambda policy: policy.name)
def test_resolver_is_asked_once_with_direction_and_user_parts(
    way: Way, caller_user: str, dialled: str, policy: CallPolicy
) -> None:
    s = Scene(way, policy, caller_user=caller_user)
    effects = s.dial(dialled=dialled)

    assert s.resolved == [(way.name, caller_user, dialled)]
    if policy.record:
        assert LogEvent(level="info", text=f"policy {policy.name}", call_ref=s.ref) in effects
    else:  # unrecorded: the INVITE goes on at once and nothing is played
        assert sip_summary(effects)[-1] == (way.callee, "INVITE")
        assert announcing(effects) == []
    s.h.shutdown()
    assert s.resolved == [(way.name, caller_user, dialled)]
    finish(s)


# Inbound: callherald answers and plays the notice before the PBX is called ---------------------


ANSWER_TO_CALLER_LINES = [
    "v=0",
    "s=call",
    "c=IN IP4 127.0.0.1",
    "t=0 0",
    f"m=audio {A_PORT} RTP/AVP 0 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=ptime:20",
    "a=sendrecv",
]


def test_inbound_caller_is_answered_at_once_and_hears_the_notice() -> None:
    s = Scene()
    effects = s.dial()
    ref = s.ref

    assert sip_summary(effects) == [(CARRIER, "100 INVITE"), (CARRIER, "200 INVITE")]
    assert s.callee.inbox() == []  # the PBX is not called yet
    ok = s.caller.last_response("INVITE", 200)
    assert ok.headers.get("content-type") == "application/sdp"
    assert sdp_without_origin(ok.body) == ANSWER_TO_CALLER_LINES  # PCMU only, plus telephone-event
    assert announcing(effects) == [
        BridgeMedia(call_ref=ref, bridged=False),
        ListenForDigits(call_ref=ref, leg=MediaLeg.A, media=PCMU),
        PlayPrompt(
            call_ref=ref,
            leg=MediaLeg.A,
            prompt_id="notice",
            language="de",
            media=PCMU,
            lead_in_ms=NOTICE_LEAD_IN_MS,
        ),
        Evidence(
            call_ref=ref, leg=MediaLeg.A, event=AnnouncementStarted(prompt_id="notice", language="de", at=T0)
        ),
    ]
    assert sip_index(effects, CARRIER, "200 INVITE") < index_of(
        effects, BridgeMedia(call_ref=ref, bridged=False)
    )

    s.caller.ack_answer()
    s.h.advance(7.0)
    effects = s.notice_heard()
    assert announcing(effects) == [
        Evidence(
            call_ref=ref,
            leg=MediaLeg.A,
            event=AnnouncementEnded(prompt_id="notice", at=T0 + 7, complete=True),
        ),
        PlayPrompt(call_ref=ref, leg=MediaLeg.A, prompt_id="ask-training", language="de", media=PCMU),
        Evidence(
            call_ref=ref,
            leg=MediaLeg.A,
            event=AnnouncementStarted(prompt_id="ask-training", language="de", at=T0 + 7),
        ),
    ]
    assert sent_sip(effects) == []
    s.h.shutdown()
    assert s.callee.inbox() == []
    finish(s)


DIRECTIONS = ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive")


@pytest.mark.parametrize(
    ("offered", "answered"),
    [
        ("a=sendonly", "a=recvonly"),
        ("a=inactive", "a=inactive"),
        ("a=recvonly", "a=sendonly"),
        ("a=sendrecv", "a=sendrecv"),
    ],
    ids=["sendonly", "inactive", "recvonly", "sendrecv"],
)
@pytest.mark.parametrize("policy", [POLICY, EARLY_MEDIA], ids=["answer", "early-media"])
def test_inbound_callers_offer_is_answered_in_the_direction_rfc3264_asks_for(
    policy: CallPolicy, offered: str, answered: str
) -> None:
    # RFC 3264 §6.1: "If a stream is offered as sendonly, the corresponding stream MUST be marked
    # as recvonly or inactive in the answer", and so on for each direction.
    s = Scene(policy=policy)
    s.dial(body=party_sdp(own_origin(INBOUND), 1, offered))

    status = 183 if policy is EARLY_MEDIA else 200
    answer = sdp_without_origin(s.caller.last_response("INVITE", status).body)
    assert [line for line in answer if line in DIRECTIONS] == [answered]
    s.h.shutdown()
    finish(s)


@dataclass(frozen=True, slots=True, kw_only=True)
class CodecCase:
    name: str
    offer_formats: str  # the m= line's formats
    rtpmaps: tuple[str, ...]
    allowed: frozenset[str] | None  # configured codecs; None: the default
    expected: MediaFormat
    expected_lines: tuple[str, ...]  # m= (without port) and a=rtpmap lines callherald answers with


CODEC_CASES = [
    CodecCase(
        name="pcmu-first",
        offer_formats="0 3 8 18 101",
        rtpmaps=("0 PCMU/8000", "3 GSM/8000", "8 PCMA/8000", "18 G729/8000", "101 telephone-event/8000"),
        allowed=None,
        expected=PCMU,
        expected_lines=("RTP/AVP 0 101", "a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000"),
    ),
    CodecCase(
        name="pcma-after-g729",
        offer_formats="18 8 0 101",
        rtpmaps=("18 G729/8000", "8 PCMA/8000", "0 PCMU/8000", "101 telephone-event/8000"),
        allowed=None,
        expected=MediaFormat(codec="pcma", payload_type=8, event_payload_type=101),
        expected_lines=("RTP/AVP 8 101", "a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000"),
    ),
    CodecCase(
        name="g722-first-dynamic-events",
        offer_formats="9 0 96",
        rtpmaps=("9 G722/8000", "0 PCMU/8000", "96 telephone-event/8000"),
        allowed=None,
        expected=MediaFormat(codec="g722", payload_type=9, event_payload_type=96),
        expected_lines=("RTP/AVP 9 96", "a=rtpmap:9 G722/8000", "a=rtpmap:96 telephone-event/8000"),
    ),
    CodecCase(
        name="static-types-no-events",
        offer_formats="8 0",
        rtpmaps=(),
        allowed=None,
        expected=MediaFormat(codec="pcma", payload_type=8, event_payload_type=None),
        expected_lines=("RTP/AVP 8",),
    ),
    CodecCase(
        name="configured-without-pcma",
        offer_formats="8 0 101",
        rtpmaps=("8 PCMA/8000", "0 PCMU/8000", "101 telephone-event/8000"),
        allowed=frozenset({"pcmu", "telephone-event"}),
        expected=PCMU,
        expected_lines=("RTP/AVP 0 101", "a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000"),
    ),
]


@pytest.mark.parametrize("case", CODEC_CASES, ids=lambda case: case.name)
def test_inbound_answer_and_pbx_offer_carry_only_the_first_playable_codec(case: CodecCase) -> None:
    settings = make_settings(codecs=case.allowed) if case.allowed is not None else None
    s = Scene(settings=settings)
    offer = sdp(
        "v=0",
        "o=caller 1001 1 IN IP4 127.0.0.2",
        "s=call",
        "c=IN IP4 127.0.0.2",
        "t=0 0",
        f"m=audio 40000 RTP/AVP {case.offer_formats}",
        *(f"a=rtpmap:{rtpmap}" for rtpmap in case.rtpmaps),
    )
    effects = s.dial(body=offer)
    ref = s.ref

    m_line, *rtpmaps = case.expected_lines
    ok = s.caller.last_response("INVITE", 200)
    assert audio_lines(ok.body) == [f"m=audio {A_PORT} {m_line}", *rtpmaps]
    assert ListenForDigits(call_ref=ref, leg=MediaLeg.A, media=case.expected) in effects
    assert of(effects, PlayPrompt)[0].media == case.expected

    s.caller.ack_answer()
    s.notice_heard()
    s.question_heard()
    effects = s.press("1")
    assert PlayTone(call_ref=ref, leg=MediaLeg.A, tone=Tone.RINGBACK, media=case.expected) in effects
    invite = s.callee.take_invite()
    assert audio_lines(invite.body) == [f"m=audio {B_PORT} {m_line}", *rtpmaps]
    s.h.shutdown()
    finish(s)


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """How the caller answers the training question and what that decides."""

    name: str
    digit: str | None  # None: silence until the window closes
    while_asking: bool  # pressed while the question still plays
    decision: Decision
    purposes: tuple[str, ...]


ANSWERS = [
    Answer(
        name="yes", digit="1", while_asking=False, decision=Decision.GRANTED, purposes=("quality", "training")
    ),
    Answer(
        name="yes-barging-in",
        digit="1",
        while_asking=True,
        decision=Decision.GRANTED,
        purposes=("quality", "training"),
    ),
    Answer(
        name="silence", digit=None, while_asking=False, decision=Decision.NO_ANSWER, purposes=("quality",)
    ),
    Answer(
        name="other-digit", digit="2", while_asking=False, decision=Decision.REFUSED, purposes=("quality",)
    ),
    Answer(
        name="hash-barging-in", digit="#", while_asking=True, decision=Decision.REFUSED, purposes=("quality",)
    ),
]


@pytest.mark.parametrize("answer", ANSWERS, ids=lambda answer: answer.name)
def test_inbound_consent_decides_then_the_pbx_is_called_and_bridged(answer: Answer) -> None:
    s = Scene()
    s.dial()
    ref = s.ref
    s.caller.ack_answer()
    s.h.advance(7.0)
    s.notice_heard()
    a = MediaLeg.A

    def evidence(event: EvidenceEvent) -> Evidence:
        return Evidence(call_ref=ref, leg=a, event=event)

    if answer.while_asking:
        s.h.advance(1.0)
        effects = s.press(answer.digit or "")
        at = T0 + 8
        expected_head = [
            evidence(
                DigitReceived(digit=answer.digit or "", mechanism=DigitMechanism.RFC4733, at=at, counted=True)
            ),
            StopPlayout(call_ref=ref, leg=a),
            evidence(AnnouncementEnded(prompt_id="ask-training", at=at, complete=False)),
        ]
    else:
        s.h.advance(3.0)
        s.question_heard()  # the answer window opens at T0 + 10
        if answer.digit is None:
            # The window closes at T0 + 15; a key that went down in it may still be reported.
            assert announcing(s.h.advance(4.9 + KEY_REPORT_GRACE_S)) == []
            effects = s.h.advance(0.1)
            at = T0 + 15 + KEY_REPORT_GRACE_S
            expected_head = []
        else:
            s.h.advance(2.0)
            effects = s.press(answer.digit)
            at = T0 + 12
            expected_head = [
                evidence(
                    DigitReceived(digit=answer.digit, mechanism=DigitMechanism.RFC4733, at=at, counted=True)
                )
            ]
    mechanism = None if answer.digit is None else DigitMechanism.RFC4733
    assert announcing(effects) == [
        *expected_head,
        evidence(
            ConsentDecided(
                question_id="training-question",
                question_version="3",
                purpose_id="training",
                decision=answer.decision,
                mechanism=mechanism,
                at=at,
            )
        ),
        evidence(ConsentFinished(purposes=answer.purposes, at=at)),
        PlayTone(call_ref=ref, leg=a, tone=Tone.RINGBACK, media=PCMU),
    ]
    assert sip_summary(effects)[0] == (PBX, "INVITE")  # only now, after ConsentFinished
    assert audio_lines(s.callee.take_invite().body) == [
        f"m=audio {B_PORT} RTP/AVP 0 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
    ]

    s.caller.new_messages()
    effects = s.callee.ring()
    assert sip_summary(effects) == []  # the caller hears our ringback, not the PBX's 180
    assert s.caller.new_messages() == []

    effects = s.callee_answers()
    assert sip_summary(effects) == [(PBX, "ACK")]  # no second 200 to the caller
    assert non_sip(effects) == [
        SetMediaRemote(call_ref=ref, leg=MediaLeg.B, remote=CALLEE_MEDIA),
        StopPlayout(call_ref=ref, leg=a),
        BridgeMedia(call_ref=ref, bridged=True),
        PlayTone(call_ref=ref, leg=MediaLeg.B, tone=Tone.BEEP, media=PCMU),
        StartRecording(call_ref=ref, outside_leg=a, purposes=answer.purposes, policy="service-line"),
    ]
    assert sip_index(effects, PBX, "ACK") < index_of(effects, StopPlayout(call_ref=ref, leg=a))
    assert s.caller.statuses() == [100, 200]
    s.hang_up()
    assert of(s.h.effects, StopRecording) == [StopRecording(call_ref=ref, reason="ended")]
    finish(s)


def test_inbound_early_media_notice_then_the_answer_repeats_the_183_sdp() -> None:
    s = Scene(policy=EARLY_MEDIA)
    effects = s.dial()
    ref = s.ref

    assert sip_summary(effects) == [(CARRIER, "100 INVITE"), (CARRIER, "183 INVITE")]
    progress = s.caller.last_response("INVITE", 183)
    assert sdp_without_origin(progress.body) == ANSWER_TO_CALLER_LINES
    assert (
        PlayPrompt(
            call_ref=ref,
            leg=MediaLeg.A,
            prompt_id="notice",
            language="de",
            media=PCMU,
            lead_in_ms=NOTICE_LEAD_IN_MS,
        )
        in effects
    )
    assert s.callee.inbox() == []

    s.notice_heard()
    s.question_heard()
    effects = s.press("1")
    assert sip_summary(effects) == [(PBX, "INVITE")]
    s.callee.take_invite()
    s.caller.new_messages()
    assert sip_summary(s.callee.ring()) == []
    assert s.caller.new_messages() == []

    effects = s.callee_answers()
    assert sip_summary(effects) == [(PBX, "ACK"), (CARRIER, "200 INVITE")]
    ok = s.caller.last_response("INVITE", 200)
    assert ok.body == progress.body  # the answer already given in the 183 (RFC 3261 §13.2.1)
    assert ok.to.tag == progress.to.tag
    assert announcing(effects) == [
        StopPlayout(call_ref=ref, leg=MediaLeg.A),
        BridgeMedia(call_ref=ref, bridged=True),
        PlayTone(call_ref=ref, leg=MediaLeg.B, tone=Tone.BEEP, media=PCMU),
        StartRecording(
            call_ref=ref, outside_leg=MediaLeg.A, purposes=("quality", "training"), policy="service-line"
        ),
    ]
    assert s.caller.statuses() == [100, 183, 200]
    s.caller.ack_answer()
    s.hang_up()
    finish(s)


def test_inbound_reinvite_during_the_notice_is_answered_by_callherald() -> None:
    s = Scene()
    s.notice_playing()
    first_answer = s.caller.last_response("INVITE", 200).body

    effects = s.caller.send(s.caller.request("INVITE", body=CALLER_OFFER))
    assert sip_summary(effects) == [(CARRIER, "200 INVITE")]
    assert s.caller.last_response("INVITE", 200).body == first_answer  # unchanged session (RFC 3264 §8)
    s.caller.send(s.caller.ack_2xx(s.caller.last_response("INVITE", 200)))

    pcma_only = CALLER_OFFER.replace(b"RTP/AVP 0 3 8 18 101", b"RTP/AVP 8 101")
    effects = s.caller.send(s.caller.request("INVITE", body=pcma_only))
    assert sip_summary(effects) == [(CARRIER, "488 INVITE")]  # the notice plays in PCMU
    assert s.callee.inbox() == []
    s.h.shutdown()
    finish(s)


def test_a_cancel_of_a_reinvite_callherald_answered_during_the_notice_changes_nothing() -> None:
    # RFC 3261 §9.2: the re-INVITE has its final response (callherald's own 200): the CANCEL gets
    # 200 and has no effect; the notice plays on.
    s = Scene()
    s.notice_playing()
    reinvite = s.caller.request("INVITE", body=CALLER_OFFER)
    s.caller.send(reinvite)
    effects = s.caller.send(cancel_of(reinvite))

    assert sip_summary(effects) == [(CARRIER, "200 CANCEL")]
    assert announcing(effects) == []
    assert s.caller.statuses()[-1:] == [200]
    s.caller.send(s.caller.ack_2xx(s.caller.last_response("INVITE", 200)))
    assert s.callee.inbox() == []
    s.h.shutdown()
    finish(s)


# Outbound: the notice plays when the carrier answers, to both ---------------------------------


def test_outbound_notice_plays_to_callee_and_agent_after_the_answer() -> None:
    s = Scene(OUTBOUND)
    effects = s.dial()
    ref = s.ref
    assert sip_summary(effects) == [(PBX, "100 INVITE"), (CARRIER, "INVITE")]
    assert announcing(effects) == []
    s.callee.take_invite()
    s.callee.ring()

    effects = s.callee_answers()
    assert sip_summary(effects) == [(CARRIER, "ACK"), (PBX, "200 INVITE")]
    b, a = MediaLeg.B, MediaLeg.A
    assert announcing(effects) == [
        BridgeMedia(call_ref=ref, bridged=False),
        ListenForDigits(call_ref=ref, leg=b, media=PCMU),
        PlayPrompt(
            call_ref=ref, leg=b, prompt_id="notice", language="de", media=PCMU, lead_in_ms=NOTICE_LEAD_IN_MS
        ),
        PlayPrompt(
            call_ref=ref,
            leg=a,
            prompt_id="notice",
            language="de",
            media=PCMU,
            report=False,
            agent_copy=True,
            lead_in_ms=NOTICE_LEAD_IN_MS,
        ),
        Evidence(call_ref=ref, leg=b, event=AnnouncementStarted(prompt_id="notice", language="de", at=T0)),
    ]
    assert sip_index(effects, PBX, "200 INVITE") < index_of(effects, BridgeMedia(call_ref=ref, bridged=False))
    s.caller.ack_answer()

    assert announcing(s.h.prompt_finished(ref, a)) == []  # the agent's copy reports nothing
    effects = s.notice_heard()
    assert [(p.leg, p.prompt_id) for p in of(effects, PlayPrompt)] == [(b, "ask-training")]  # callee only
    s.question_heard()
    assert announcing(s.press("1", leg=a)) == []  # the agent cannot answer for the callee
    effects = s.press("1")
    assert announcing(effects)[-4:] == [
        Evidence(call_ref=ref, leg=b, event=ConsentFinished(purposes=("quality", "training"), at=T0)),
        BridgeMedia(call_ref=ref, bridged=True),
        PlayTone(call_ref=ref, leg=a, tone=Tone.BEEP, media=PCMU),
        StartRecording(call_ref=ref, outside_leg=b, purposes=("quality", "training"), policy="service-line"),
    ]
    assert sent_sip(effects) == []
    s.hang_up()
    finish(s)


def test_an_outbound_answer_that_remaps_the_event_type_records_with_the_offers_mapping() -> None:
    # The agent's offer has telephone-event on 101; a callee that answers PCMA on 101 would have
    # the recording take the agent's key presses for PCMA audio. 101 is dropped from the answer
    # (RFC 3264 §8.3.2): the notice, the recording and what the relay learns keep the offer's 101.
    s = Scene(OUTBOUND)
    s.dial()
    s.callee.take_invite()
    s.callee.ring()
    remapped = CALLEE_ANSWER.replace(b"a=rtpmap:101 telephone-event/8000", b"a=rtpmap:101 PCMA/8000")
    effects = s.callee.reply(s.callee.invite, 200, body=remapped, extra=(OUTSIDE_IDENTITY,))
    s.caller.ack_answer()
    s.notice_heard()
    s.question_heard()
    s.press("1")

    ok = s.caller.last_response("INVITE", 200)
    assert audio_lines(ok.body)[0] == f"m=audio {A_PORT} RTP/AVP 0"
    assert [w.text.rsplit(": ", 1)[-1] for w in warnings(effects)] == ["101"]
    (start,) = of(s.h.effects, StartRecording)
    assert start.media == MediaFormat(codec="pcmu", payload_type=0, event_payload_type=None)
    assert start.media.aliases == ()
    learned: dict[int, int] = {}
    for remote in of(s.h.effects, SetMediaRemote):
        learned.update(remote.aliases)
    assert learned == {}
    s.hang_up()
    finish(s)


CALLEE_PCMA_ANSWER = CALLEE_ANSWER.replace(b"RTP/AVP 0 101", b"RTP/AVP 8 101").replace(
    b"a=rtpmap:0 PCMU/8000", b"a=rtpmap:8 PCMA/8000"
)
PCMA = MediaFormat(codec="pcma", payload_type=8, event_payload_type=101)


def test_outbound_2xx_without_sdp_uses_the_last_answer_of_its_early_dialog() -> None:
    # A carrier that answered in its 183 (early media) and sends the 200 without SDP: the notice
    # plays in the last answer that early dialog brought, and the call is recorded.
    s = Scene(OUTBOUND)
    s.dial()
    ref = s.ref
    s.callee.take_invite()
    s.callee.ring(183, body=CALLEE_ANSWER)
    s.callee.ring(183, body=CALLEE_PCMA_ANSWER)  # the same early dialog, a new answer
    progress = s.caller.last_response("INVITE", 183)

    effects = s.callee.reply(s.callee.invite, 200, extra=(OUTSIDE_IDENTITY,))
    assert sip_summary(effects) == [(CARRIER, "ACK"), (PBX, "200 INVITE")]
    ok = s.caller.last_response("INVITE", 200)
    assert ok.body == progress.body  # RFC 3261 §13.2.1: the agent gets the answer in the 2xx
    assert [(p.leg, p.media) for p in of(effects, PlayPrompt)] == [(MediaLeg.B, PCMA), (MediaLeg.A, PCMA)]
    assert events(effects, NoticeFailed) == []
    s.caller.ack_answer()
    s.notice_heard()
    s.question_heard()
    effects = s.press("1")
    assert of(effects, StartRecording) == [
        StartRecording(
            call_ref=ref, outside_leg=MediaLeg.B, purposes=("quality", "training"), policy="service-line"
        )
    ]
    s.hang_up()
    finish(s)


def test_outbound_2xx_without_sdp_and_no_early_answer_in_its_dialog_connects_unannounced() -> None:
    # The answer came in a 183 of another fork (another To tag): not this dialog's answer.
    s = Scene(OUTBOUND)
    s.dial()
    s.callee.take_invite()
    other_fork = s.callee.respond(s.callee.invite, 183, body=CALLEE_ANSWER)
    other_fork.headers.set("To", f"{s.callee.local_party};tag=fork-2")
    s.callee.send(other_fork)

    effects = s.callee.reply(s.callee.invite, 200, extra=(OUTSIDE_IDENTITY,))
    assert of(effects, PlayPrompt) == []
    reason = "no SDP in the 2xx nor in an earlier provisional"
    assert events(effects, NoticeFailed) == [
        NoticeFailed(prompt_id="notice", language="de", reason=reason, at=T0)
    ]
    (warning,) = warnings(effects)
    assert f"({reason})" in warning.text
    assert warning.text.endswith("call connects unrecorded")
    s.caller.ack_answer()
    s.hang_up()
    finish(s)


# The notice cannot be played ------------------------------------------------------------------


def unannounced_flow(scene: Scene, offer: bytes = CALLER_OFFER, answer: bytes = CALLEE_ANSWER) -> None:
    """A whole call: INVITE, 180, 200, ACK, a SIP INFO key press from each party (relayed), BYE."""
    unannounced_flow_until_bye(scene, offer, answer)
    scene.hang_up()


def unannounced_flow_until_bye(
    scene: Scene, offer: bytes = CALLER_OFFER, answer: bytes = CALLEE_ANSWER
) -> None:
    """``unannounced_flow`` up to the BYE: the call is connected."""
    scene.dial(body=offer)
    scene.callee.take_invite()
    scene.callee.ring()
    extra = (OUTSIDE_IDENTITY,) if scene.way is OUTBOUND else ()
    scene.callee.reply(scene.callee.invite, 200, body=answer, extra=extra)
    scene.caller.ack_answer()
    for sender, receiver in ((scene.caller, scene.callee), (scene.callee, scene.caller)):
        body = b"Signal=5\r\nDuration=160\r\n"
        sender.send(sender.request("INFO", body=body, content_type="application/dtmf-relay"))
        receiver.reply(receiver.last_request("INFO"), 200)


def missing(prompt_id: str) -> PromptCheck:
    return lambda wanted, _language: wanted != prompt_id


@WAYS
@pytest.mark.parametrize("missing_prompt", ["notice", "ask-training"])
def test_unavailable_prompt_connects_exactly_like_an_unannounced_call(way: Way, missing_prompt: str) -> None:
    plain = Scene(way, UNRECORDED)
    unannounced_flow(plain)
    s = Scene(way, POLICY, prompt_ready=missing(missing_prompt))
    unannounced_flow(s)

    assert_connected_unannounced(s, plain, f"prompt {missing_prompt!r} in 'de' is not available")


def assert_connected_unannounced(s: Scene, plain: Scene, reason: str) -> None:
    """``s`` sent exactly the SIP of the same call without a notice (``plain``); its evidence and
    log say that the notice failed, and why."""
    assert [bytes(e.message) for e in sent_sip(s.h.effects)] == [
        bytes(e.message) for e in sent_sip(plain.h.effects)
    ]
    assert announcing(s.h.effects) == [
        Evidence(
            call_ref=s.ref,
            leg=s.way.outside_leg,
            event=NoticeFailed(prompt_id="notice", language="de", reason=reason, at=T0),
        )
    ]
    (warning,) = warnings(s.h.effects)
    assert warning.text.endswith("call connects unrecorded")
    assert warning.call_ref == s.ref
    finish(s)


def srtp(body: bytes, proto: str) -> bytes:
    """``body`` with its audio sent as ``proto`` and an SDES key (RFC 4568)."""
    lines = body.decode().replace("RTP/AVP", proto).splitlines()
    key = "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"
    return sdp(*lines, key)


@WAYS
@pytest.mark.parametrize("proto", ["RTP/SAVP", "RTP/SAVPF", "UDP/TLS/RTP/SAVPF"])
def test_encrypted_media_cannot_carry_the_notice_and_connects_unrecorded(way: Way, proto: str) -> None:
    # callherald plays its notice as plain RTP: into SRTP the party would hear nothing (RFC 3711
    # §3.3: unauthenticated packets are dropped), so the notice fails closed before it starts.
    offer, answer = srtp(CALLER_OFFER, proto), srtp(CALLEE_ANSWER, proto)
    plain = Scene(way, UNRECORDED)
    unannounced_flow(plain, offer, answer)
    s = Scene(way, POLICY)
    unannounced_flow(s, offer, answer)

    assert_connected_unannounced(
        s, plain, f"the audio is sent as {proto}: callherald plays the notice in plain RTP only"
    )


@WAYS
def test_unavailable_prompt_with_reject_refuses_the_call_480(way: Way) -> None:
    s = Scene(
        way, dataclasses.replace(POLICY, on_failure=FailureBehaviour.REJECT), prompt_ready=missing("notice")
    )
    effects = s.dial()

    assert sip_summary(effects) == [(way.caller, "100 INVITE"), (way.caller, "480 INVITE")]
    refusal = s.caller.last_response("INVITE", 480)
    assert refusal.headers.get("reason") == 'SIP;cause=480;text="recording notice unavailable"'
    assert s.callee.inbox() == []
    assert s.h.ended() == [CallEnded(call_ref=s.ref, reason="notice-unavailable", status=480)]
    assert s.h.b2bua.ports_available == s.h.b2bua.ports_capacity
    assert events(effects, NoticeFailed) != []
    assert warnings(effects)[0].text.endswith("call rejected")
    s.caller.send(s.caller.ack_failure(refusal))
    finish(s)


@dataclass(frozen=True, slots=True, kw_only=True)
class PlayoutFailure:
    """A prompt fails while it should play; what callherald sends then and whether the call goes on."""

    name: str
    way: Way
    policy: CallPolicy
    during: str  # "notice" or "question"
    sent: tuple[tuple[str, str], ...]  # (caller|callee, label) sent right after the failure
    connects: bool


def _failing(mode: AnnouncementMode, on_failure: FailureBehaviour) -> CallPolicy:
    return dataclasses.replace(POLICY, mode=mode, on_failure=on_failure)


ANSWER, EARLY = AnnouncementMode.ANSWER, AnnouncementMode.EARLY_MEDIA
CONNECT, REJECT = FailureBehaviour.CONNECT_UNRECORDED, FailureBehaviour.REJECT
PLAYOUT_FAILURES = [
    PlayoutFailure(
        name="inbound-answer-connect",
        way=INBOUND,
        policy=_failing(ANSWER, CONNECT),
        during="notice",
        sent=(("callee", "INVITE"),),
        connects=True,
    ),
    PlayoutFailure(
        name="inbound-answer-connect-question",
        way=INBOUND,
        policy=_failing(ANSWER, CONNECT),
        during="question",
        sent=(("callee", "INVITE"),),
        connects=True,
    ),
    PlayoutFailure(
        name="inbound-answer-reject",
        way=INBOUND,
        policy=_failing(ANSWER, REJECT),
        during="notice",
        sent=(("caller", "BYE"),),
        connects=False,
    ),
    PlayoutFailure(
        name="inbound-early-connect",
        way=INBOUND,
        policy=_failing(EARLY, CONNECT),
        during="notice",
        sent=(("callee", "INVITE"),),
        connects=True,
    ),
    PlayoutFailure(
        name="inbound-early-reject",
        way=INBOUND,
        policy=_failing(EARLY, REJECT),
        during="notice",
        sent=(("caller", "480 INVITE"),),
        connects=False,
    ),
    PlayoutFailure(
        name="outbound-connect",
        way=OUTBOUND,
        policy=_failing(ANSWER, CONNECT),
        during="notice",
        sent=(),
        connects=True,
    ),
    PlayoutFailure(
        name="outbound-reject",
        way=OUTBOUND,
        policy=_failing(ANSWER, REJECT),
        during="question",
        sent=(("caller", "BYE"), ("callee", "BYE")),
        connects=False,
    ),
]


@pytest.mark.parametrize("case", PLAYOUT_FAILURES, ids=lambda case: case.name)
def test_prompt_failing_during_playout_fails_closed(case: PlayoutFailure) -> None:
    s = Scene(case.way, case.policy)
    s.notice_playing()
    ref, leg = s.ref, case.way.outside_leg
    prompt_id = "notice"
    if case.during == "question":
        s.notice_heard()
        prompt_id = "ask-training"
    effects = s.h.prompt_failed(ref, leg, "file missing")

    assert announcing(effects)[:2] == [
        Evidence(
            call_ref=ref,
            leg=leg,
            event=NoticeFailed(prompt_id=prompt_id, language="de", reason="file missing", at=T0),
        ),
        StopPlayout(call_ref=ref, leg=leg),
    ]
    (warning,) = warnings(effects)
    assert warning.text.endswith("call connects unrecorded" if case.connects else "call rejected")
    peers = {"caller": s.caller.address, "callee": s.callee.address}
    assert sip_summary(effects) == [(peers[who], label) for who, label in case.sent]
    assert announcing(s.press("1")) == []  # no more questions once failed

    if case.connects:
        if case.way is INBOUND:
            s.callee.take_invite()
            s.callee_answers()
            if s.caller.responses("INVITE", 200) and not s.caller.requests("BYE"):
                s.caller.ack_answer()
        assert BridgeMedia(call_ref=ref, bridged=True) in s.h.effects
        assert s.h.b2bua.active_calls == 1
        s.hang_up()
    else:
        assert s.h.ended()[0].call_ref == ref
        assert s.callee.requests("INVITE") == ([] if case.way is INBOUND else [s.callee.invite])
        for peer in (s.caller, s.callee):
            for bye in peer.requests("BYE"):
                peer.reply(bye, 200)
        refused = s.caller.responses("INVITE", 480)
        if refused:
            s.caller.send(s.caller.ack_failure(refused[0]))
    assert of(s.h.effects, StartRecording) == []
    finish(s)


# Key presses by SIP INFO (RFC 6086) ------------------------------------------------------------

INFO_BODIES = [
    pytest.param("application/dtmf-relay", b"Signal=1\r\nDuration=160\r\n", id="dtmf-relay"),
    pytest.param("application/dtmf", b"1", id="dtmf"),
]


@WAYS
@pytest.mark.parametrize(("content_type", "body"), INFO_BODIES)
def test_sip_info_answers_the_question_and_is_not_relayed(way: Way, content_type: str, body: bytes) -> None:
    s = Scene(way)
    s.notice_playing()
    s.notice_heard()
    ref, leg = s.ref, way.outside_leg
    s.outside.new_messages()

    effects = s.outside.send(s.outside.request("INFO", body=body, content_type=content_type))
    assert (s.outside.address, "200 INFO") in sip_summary(effects)
    assert s.agent.requests("INFO") == []
    (decided,) = events(effects, ConsentDecided)
    assert decided.decision is Decision.GRANTED
    assert decided.mechanism is DigitMechanism.SIP_INFO
    assert events(effects, DigitReceived)[0].mechanism is DigitMechanism.SIP_INFO

    if way is INBOUND:
        s.callee.take_invite()
        s.callee_answers()
    (started,) = of(s.h.effects, StartRecording)
    assert started == StartRecording(
        call_ref=ref, outside_leg=leg, purposes=("quality", "training"), policy="service-line"
    )
    s.hang_up()
    finish(s)


@WAYS
def test_sip_info_during_the_notice_is_logged_not_counted(way: Way) -> None:
    s = Scene(way)
    s.notice_playing()
    info = s.outside.request(
        "INFO", body=b"Signal=1\r\nDuration=160\r\n", content_type="application/dtmf-relay"
    )
    effects = s.outside.send(info)

    assert sip_summary(effects) == [(s.outside.address, "200 INFO")]
    assert events(effects, DigitReceived) == [
        DigitReceived(digit="1", mechanism=DigitMechanism.SIP_INFO, at=T0, counted=False)
    ]
    assert events(effects, ConsentDecided) == []
    assert s.agent.requests("INFO") == []
    s.h.shutdown()
    finish(s)


# Withdrawal (GDPR Art. 7(3)) ------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Withdrawal:
    name: str
    policy: CallPolicy
    by_info: bool  # the "*" comes as SIP INFO (relayed as well) rather than RFC 4733
    resumed: tuple[str, ...]  # what recording resumes for; () none


WITHDRAWALS = [
    Withdrawal(name="rfc4733", policy=POLICY, by_info=False, resumed=("quality",)),
    Withdrawal(name="sip-info", policy=POLICY, by_info=True, resumed=("quality",)),
    Withdrawal(name="consent-only", policy=CONSENT_ONLY, by_info=False, resumed=()),
]


@WAYS
@pytest.mark.parametrize("case", WITHDRAWALS, ids=lambda case: case.name)
def test_withdrawal_digit_stops_consent_purposes(way: Way, case: Withdrawal) -> None:
    s = Scene(way, case.policy)
    s.connect("1")
    ref, leg = s.ref, way.outside_leg
    first = of(s.h.effects, StartRecording)[-1]
    assert first.purposes == tuple(p.purpose_id for p in case.policy.purposes)
    assert first.media is not None
    assert announcing(s.press("*", leg=leg.other)) == []  # only the outside party can withdraw
    s.h.advance(30.0)

    if case.by_info:
        effects = s.outside.send(
            s.outside.request(
                "INFO", body=b"Signal=*\r\nDuration=160\r\n", content_type="application/dtmf-relay"
            )
        )
        assert sip_summary(effects) == [(s.agent.address, "INFO")]  # after the bridge, relayed as well
        s.agent.reply(s.agent.last_request("INFO"), 200)
        mechanism = DigitMechanism.SIP_INFO
    else:
        effects = s.press("*")
        mechanism = DigitMechanism.RFC4733
    expected: list[Effect] = [
        Evidence(
            call_ref=ref,
            leg=leg,
            event=ConsentWithdrawn(purposes=("training",), mechanism=mechanism, at=T0 + 30),
        ),
        StopRecording(call_ref=ref, reason="withdrawn"),
    ]
    if case.resumed:
        expected.append(
            StartRecording(call_ref=ref, outside_leg=leg, purposes=case.resumed, policy=case.policy.name)
        )
    assert announcing(effects) == expected
    # The recording for the purposes left is stored as the first was: its rate (16 kHz for
    # G.722) and the codecs the call put on dynamic types come from the call's media.
    assert [started.media for started in of(effects, StartRecording)] == [first.media] * len(case.resumed[:1])
    assert announcing(s.press("*")) == []  # nothing left to withdraw
    s.hang_up()
    finish(s)


def test_a_key_heard_in_band_and_then_by_rfc4733_is_one_answer() -> None:
    # A phone that leaves its tones in the audio, whose RFC 4733 events come late (a lost first
    # packet): the in-band press answers, and the same key by RFC 4733 0.1 s later is that press.
    s = Scene()
    s.notice_playing()
    s.notice_heard()
    s.question_heard()
    ref, a = s.ref, MediaLeg.A
    first = s.h.digit(ref, a, "1", DigitMechanism.INBAND)
    s.h.advance(0.1)
    again = s.h.digit(ref, a, "1", DigitMechanism.RFC4733)
    assert [e.counted for e in events(first, DigitReceived)] == [True]
    assert events(again, DigitReceived) == []
    assert (
        LogEvent(
            level="info",
            text="key 1 heard by inband and rfc4733 0.10 s apart: taken as one press",
            call_ref=ref,
        )
        in again
    )
    assert [e.decision for e in events(s.h.effects, ConsentDecided)] == [Decision.GRANTED]
    s.h.advance(1.0)
    later = s.h.digit(ref, a, "1", DigitMechanism.RFC4733)  # a second press, by then
    assert [e.counted for e in events(later, DigitReceived)] == [False]
    s.h.shutdown()
    finish(s)


def test_the_pci_code_from_a_phone_that_sends_each_key_by_rfc4733_and_sip_info_pauses() -> None:
    s = Scene(policy=PCI_POLICY)
    s.connect("1")
    ref, a = s.ref, MediaLeg.A
    s.h.advance(2.0)
    effects: list[Effect] = []
    for key in "#9":
        effects += s.h.digit(ref, a, key, DigitMechanism.RFC4733)
        s.h.advance(0.05)
        effects += s.h.digit(ref, a, key, DigitMechanism.SIP_INFO)
        s.h.advance(0.3)
    assert [e for e in effects if isinstance(e, RECORDING)] == [PauseRecording(call_ref=ref, reason="pci")]
    s.hang_up()
    finish(s)


COACHING = Purpose(purpose_id="coaching", lawful_basis="consent", needs_consent=True)
COACHING_QUESTION = dataclasses.replace(
    TRAINING_QUESTION, question_id="coaching-question", purpose_id="coaching", prompt_id="ask-coaching"
)
TWO_QUESTIONS = dataclasses.replace(
    POLICY,
    name="two-questions",
    purposes=(QUALITY, TRAINING, COACHING),
    questions=(TRAINING_QUESTION, COACHING_QUESTION),
)


def test_the_withdrawal_key_during_the_second_question_withdraws_the_first_consent_too() -> None:
    # "Yes" to training, then the withdrawal key while the coaching question plays (GDPR Art. 7(3):
    # as easy to withdraw as to give): the key refuses coaching and withdraws training, and the
    # recording that starts at the bridge serves only what is left.
    s = Scene(policy=TWO_QUESTIONS)
    s.notice_playing()
    s.notice_heard()
    s.question_heard()
    s.press("1")
    s.h.advance(1.0)
    effects = s.press("*")
    ref, a = s.ref, MediaLeg.A
    withdrawn = ConsentWithdrawn(purposes=("training",), mechanism=DigitMechanism.RFC4733, at=s.h.now)
    assert Evidence(call_ref=ref, leg=a, event=withdrawn) in effects
    assert [(e.purpose_id, e.decision) for e in events(s.h.effects, ConsentDecided)] == [
        ("training", Decision.GRANTED),
        ("coaching", Decision.REFUSED),
    ]
    assert LogEvent(level="info", text="consent withdrawn for training", call_ref=ref) in effects
    s.callee.take_invite()
    s.callee.ring()
    s.callee_answers()
    assert of(s.h.effects, StartRecording)[-1].purposes == ("quality",)
    s.hang_up()
    finish(s)


PCI_POLICY = dataclasses.replace(POLICY, pci_pause_code="#9")


def pause_for(s: Scene, reason: str, pause: bool) -> list[Effect]:
    """Pause (or end the pause) for ``reason``: the PCI code, the operator's ``calls pause``, or
    the agent's re-INVITE holding the call (taking it off hold)."""
    if reason == "pci":
        s.h.advance(PCI_CODE_GAP_S)  # the code is keyed on its own, not right after another key
        return s.press("#") + s.press("9")
    if reason == "api":
        return s.h.b2bua.pause_recording(s.ref, pause, s.h.now)
    version = len(s.agent.requests("INVITE")) + 1
    return agent_redirects(s, "a=sendonly" if pause else "a=sendrecv", version)


@WAYS
@pytest.mark.parametrize("reasons", [("pci",), ("api",), ("hold",), ("hold", "pci")], ids="+".join)
def test_a_withdrawal_during_a_pause_starts_the_next_recording_paused(
    way: Way, reasons: tuple[str, ...]
) -> None:
    # The recording for the purposes left must not store what the pause keeps out (a card number,
    # a held call; PCI DSS 3.3.1): it starts paused for every reason still in force, and the end
    # of each pause resumes it.
    s = Scene(way, PCI_POLICY)
    s.connect("1")
    for reason in reasons:
        pause_for(s, reason, True)
    withdrawn = s.press("*")
    assert [e for e in withdrawn if isinstance(e, RECORDING)] == [
        StopRecording(call_ref=s.ref, reason="withdrawn"),
        StartRecording(
            call_ref=s.ref, outside_leg=way.outside_leg, purposes=("quality",), policy="service-line"
        ),
        *(PauseRecording(call_ref=s.ref, reason=reason) for reason in sorted(reasons)),
    ]
    summary = s.h.b2bua.call_summary(s.ref)
    assert summary is not None
    assert summary.paused == tuple(sorted(reasons))
    resumed: list[Effect] = []
    for reason in reasons:
        resumed += pause_for(s, reason, False)
    assert [e for e in resumed if isinstance(e, RECORDING)] == [
        ResumeRecording(call_ref=s.ref, reason=reason) for reason in reasons
    ]
    s.hang_up()
    finish(s)


PAUSES = (PauseRecording, ResumeRecording)


def pci_tone(s: Scene, tone: Tone) -> PlayTone:
    """``tone`` played to the outside party, in the codec of its notice."""
    return PlayTone(call_ref=s.ref, leg=s.way.outside_leg, tone=tone, media=PCMU)


def pci_log(s: Scene, way: str, heard: str) -> LogEvent:
    text = f"the outside party's PCI pause code {way} the recording; it hears {heard}"
    return LogEvent(level="info", text=text, call_ref=s.ref)


@WAYS
def test_the_pci_code_is_confirmed_to_the_outside_party_with_a_tone_for_each_way(way: Way) -> None:
    # A caller who hears nothing keys the code again to make sure, and so resumes the recording
    # in the middle of its card number: it hears two high beeps for "paused" and one low beep for
    # "recording again", in its own leg only (the agent goes on hearing the caller).
    s = Scene(way, PCI_POLICY)
    s.connect("1")
    paused = pause_for(s, "pci", True)
    resumed = pause_for(s, "pci", False)

    assert [e for e in paused if isinstance(e, (*PAUSES, PlayTone))] == [
        PauseRecording(call_ref=s.ref, reason="pci"),
        pci_tone(s, Tone.PCI_PAUSED),
    ]
    assert [e for e in resumed if isinstance(e, (*PAUSES, PlayTone))] == [
        ResumeRecording(call_ref=s.ref, reason="pci"),
        pci_tone(s, Tone.PCI_RESUMED),
    ]
    assert of(paused + resumed, StopPlayout) == []
    assert pci_log(s, "paused", "the pci_paused tone") in paused
    assert pci_log(s, "resumed", "the pci_resumed tone") in resumed
    s.hang_up()
    finish(s)


@WAYS
@pytest.mark.parametrize("reason", ["api", "hold"])
def test_a_pause_the_outside_party_did_not_key_plays_it_no_tone(way: Way, reason: str) -> None:
    # The operator's calls pause and the agent's hold pause the recording as before; the caller
    # asked for neither, and is told nothing of them.
    s = Scene(way, PCI_POLICY)
    s.connect("1")
    effects = pause_for(s, reason, True) + pause_for(s, reason, False)
    assert [e for e in effects if isinstance(e, PAUSES)] == [
        PauseRecording(call_ref=s.ref, reason=reason),
        ResumeRecording(call_ref=s.ref, reason=reason),
    ]
    assert of(effects, PlayTone) == []
    s.hang_up()
    finish(s)


def test_a_policy_without_pci_pause_tones_pauses_and_resumes_without_a_tone() -> None:
    s = Scene(policy=dataclasses.replace(PCI_POLICY, pci_pause_tones=False))
    s.connect("1")
    paused = pause_for(s, "pci", True)
    resumed = pause_for(s, "pci", False)
    assert [e for e in paused + resumed if isinstance(e, PAUSES)] == [
        PauseRecording(call_ref=s.ref, reason="pci"),
        ResumeRecording(call_ref=s.ref, reason="pci"),
    ]
    assert of(paused + resumed, PlayTone) == []
    assert pci_log(s, "paused", "no tone (the policy's pci_pause_tones is off)") in paused
    s.hang_up()
    finish(s)


@WAYS
def test_an_outside_party_holding_the_call_is_sent_no_pci_tone(way: Way) -> None:
    # A party that holds the call receives no media (RFC 3264 §6.1): its code pauses the recording
    # all the same, and once off hold it hears the code's next tone.
    s = Scene(way, PCI_POLICY)
    s.connect("1")
    hold = next(case for case in REINVITES if case.name == "hold")
    reinvite_from_outside(s, hold)
    paused = pause_for(s, "pci", True)
    assert [e for e in paused if isinstance(e, (*PAUSES, PlayTone))] == [
        PauseRecording(call_ref=s.ref, reason="pci")
    ]
    assert pci_log(s, "paused", "no tone (it holds the call)") in paused
    reinvite_from_outside(s, dataclasses.replace(hold, name="resume", version=3, direction="a=sendrecv"))
    resumed = pause_for(s, "pci", False)
    assert [e for e in resumed if isinstance(e, (*PAUSES, PlayTone))] == [
        ResumeRecording(call_ref=s.ref, reason="pci"),
        pci_tone(s, Tone.PCI_RESUMED),
    ]
    s.hang_up()
    finish(s)


@WAYS
def test_a_call_whose_recording_storage_stopped_hears_no_pci_tone(way: Way) -> None:
    # Storage refused the recording or stopped it (disk full): "paused" or "recording again"
    # would tell the caller something untrue, and there is no recording to pause.
    s = Scene(way, PCI_POLICY)
    s.connect("1")
    s.h.not_recording(s.ref)
    effects = pause_for(s, "pci", True) + pause_for(s, "pci", False)
    assert [e for e in effects if isinstance(e, (*PAUSES, PlayTone))] == []
    s.hang_up()
    finish(s)


@WAYS
def test_a_new_outside_party_is_not_paused_by_the_pci_code_of_the_party_before(way: Way) -> None:
    # The party that keyed the code left (a transfer on the carrier's side): the new party's
    # recording starts unpaused, and its own code pauses it rather than resuming it.
    s = Scene(way, PCI_POLICY)
    s.connect("1")
    pause_for(s, "pci", True)
    new_party = next(case for case in REINVITES if case.new_party is not None)
    reinvite_from_outside(s, new_party)
    s.notice_heard()
    s.question_heard()
    bridged = s.press("1")
    assert of(bridged, StartRecording) != []
    assert [e for e in bridged if isinstance(e, PAUSES)] == []
    summary = s.h.b2bua.call_summary(s.ref)
    assert summary is not None
    assert summary.paused == ()
    paused = pause_for(s, "pci", True)
    assert [e for e in paused if isinstance(e, PAUSES)] == [PauseRecording(call_ref=s.ref, reason="pci")]
    s.hang_up()
    finish(s)


def test_a_key_held_from_the_notice_into_the_question_is_no_answer() -> None:
    s = Scene()
    s.notice_playing()
    s.h.advance(3.0)
    s.notice_heard()  # the question starts at T0 + 3
    s.h.advance(0.1)
    ref, a = s.ref, MediaLeg.A
    # In-band, known as a press 0.1 s into the question; the key went down 0.3 s before it.
    effects = s.h.digit(ref, a, "1", DigitMechanism.INBAND, pressed_at=T0 + 2.7)
    assert announcing(effects) == [
        Evidence(
            call_ref=ref,
            leg=a,
            event=DigitReceived(digit="1", mechanism=DigitMechanism.INBAND, at=T0 + 2.7, counted=False),
        )
    ]  # the question plays on
    s.question_heard()
    effects = s.decide(None)
    assert [event.decision for event in events(effects, ConsentDecided)] == [Decision.NO_ANSWER]
    s.h.shutdown()
    finish(s)


@pytest.mark.parametrize("policy", [POLICY, CONSENT_ONLY], ids=lambda policy: policy.name)
@pytest.mark.parametrize("by_info", [False, True], ids=["rfc4733", "sip-info"])
def test_withdrawal_while_the_pbx_rings_holds_for_the_recording_at_the_bridge(
    policy: CallPolicy, by_info: bool
) -> None:
    s = Scene(policy=policy)
    s.notice_playing()
    s.notice_heard()
    s.question_heard()
    s.decide("1")  # granted: the PBX is called and rings
    s.callee.take_invite()
    s.callee.ring()
    ref, a = s.ref, MediaLeg.A
    s.h.advance(1.0)

    def press(digit: str) -> list[Effect]:
        if not by_info:
            return s.press(digit)
        info = s.caller.request(
            "INFO", body=f"Signal={digit}\r\nDuration=160\r\n".encode(), content_type="application/dtmf-relay"
        )
        effects = s.caller.send(info)
        assert sip_summary(effects) == [(CARRIER, "200 INFO")]  # for callherald: the PBX has not answered
        return effects

    mechanism = DigitMechanism.SIP_INFO if by_info else DigitMechanism.RFC4733
    other_key = press("2")
    assert announcing(other_key) == [
        Evidence(
            call_ref=ref, leg=a, event=DigitReceived(digit="2", mechanism=mechanism, at=T0 + 1, counted=False)
        )
    ]
    s.h.advance(0.5)
    effects = press("*")
    assert announcing(effects) == [
        Evidence(
            call_ref=ref,
            leg=a,
            event=DigitReceived(digit="*", mechanism=mechanism, at=T0 + 1.5, counted=True),
        ),
        Evidence(
            call_ref=ref,
            leg=a,
            event=ConsentWithdrawn(purposes=("training",), mechanism=mechanism, at=T0 + 1.5),
        ),
    ]
    assert announcing(press("*")) == [  # nothing left to withdraw: only evidence
        Evidence(
            call_ref=ref,
            leg=a,
            event=DigitReceived(digit="*", mechanism=mechanism, at=T0 + 1.5, counted=False),
        )
    ]
    assert s.callee.requests("INFO") == []

    effects = s.callee_answers()
    left = tuple(purpose.purpose_id for purpose in policy.purposes if not purpose.needs_consent)
    assert [effect.purposes for effect in of(effects, StartRecording)] == ([left] if left else [])
    if not left:
        assert LogEvent(level="info", text="no purpose allows recording", call_ref=ref) in effects
    s.caller.new_messages()
    s.callee.new_messages()
    s.hang_up()
    finish(s)


# Hang-ups around the notice --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "answers"),
    [(POLICY, ["200 BYE"]), (EARLY_MEDIA, ["200 BYE", "487 INVITE"])],
    ids=["answer", "early-media"],
)
def test_caller_bye_during_the_notice_ends_the_call_quietly(policy: CallPolicy, answers: list[str]) -> None:
    s = Scene(policy=policy)
    s.notice_playing()
    if policy.mode is AnnouncementMode.EARLY_MEDIA:
        s.caller.learn(s.caller.last_response("INVITE", 183))
    effects = s.caller.send(s.caller.request("BYE"))

    assert sip_summary(effects) == [(CARRIER, label) for label in answers]
    assert s.h.ended() == [CallEnded(call_ref=s.ref, reason="bye-from-a")]
    # The evidence says the notice was cut short when the caller left, before the call's end.
    cut = Evidence(
        call_ref=s.ref,
        leg=MediaLeg.A,
        event=AnnouncementEnded(prompt_id="notice", at=s.h.now, complete=False),
    )
    assert announcing(effects) == [cut]
    assert index_of(effects, cut) < index_of(effects, s.h.ended()[0])
    assert s.callee.inbox() == []  # no INVITE, no CANCEL
    assert of(s.h.effects, StopRecording) == []  # it never started
    finish(s)


def test_caller_bye_during_the_question_cuts_it_short_and_decides_nothing() -> None:
    s = Scene()
    s.notice_playing()
    s.notice_heard()
    s.h.advance(2.0)
    effects = s.caller.send(s.caller.request("BYE"))

    assert events(effects, AnnouncementEnded) == [
        AnnouncementEnded(prompt_id="ask-training", at=s.h.now, complete=False)
    ]
    assert events(s.h.effects, ConsentDecided) == []
    assert s.h.advance(TRAINING_QUESTION.timeout_s) == []  # no answer window left behind
    finish(s)


@pytest.mark.parametrize("leaver", ["caller", "callee"])
def test_bye_during_the_outbound_notice_ends_both_legs(leaver: str) -> None:
    s = Scene(OUTBOUND)
    s.notice_playing()
    sender, other = (s.caller, s.callee) if leaver == "caller" else (s.callee, s.caller)
    effects = sender.send(sender.request("BYE"))

    assert sip_summary(effects) == [(sender.address, "200 BYE"), (other.address, "BYE")]
    leg = "a" if sender is s.caller else "b"
    assert s.h.ended() == [CallEnded(call_ref=s.ref, reason=f"bye-from-{leg}")]
    # Only the outside party's notice is evidence; it was cut short whoever left.
    assert [(effect.leg, effect.event) for effect in of(effects, Evidence)] == [
        (MediaLeg.B, AnnouncementEnded(prompt_id="notice", at=s.h.now, complete=False))
    ]
    other.reply(other.last_request("BYE"), 200)
    assert of(s.h.effects, StopRecording) == []
    finish(s)


def test_cancel_after_callherald_answered_changes_nothing() -> None:
    s = Scene()
    s.dial()
    effects = s.caller.send(s.caller.cancel())

    assert sip_summary(effects) == [(CARRIER, "200 CANCEL")]
    assert s.h.b2bua.active_calls == 1
    s.caller.ack_answer()
    s.notice_heard()
    s.question_heard()
    s.press("1")
    s.callee.take_invite()
    s.callee_answers()
    assert len(of(s.h.effects, StartRecording)) == 1
    s.hang_up()
    finish(s)


def test_cancel_during_the_early_media_notice_answers_487() -> None:
    s = Scene(policy=EARLY_MEDIA)
    s.dial()
    effects = s.caller.send(s.caller.cancel())

    assert sip_summary(effects) == [(CARRIER, "200 CANCEL"), (CARRIER, "487 INVITE")]
    assert s.h.ended() == [CallEnded(call_ref=s.ref, reason="cancelled", status=487)]
    assert s.callee.inbox() == []
    s.caller.send(s.caller.ack_failure(s.caller.last_response("INVITE", 487)))
    finish(s)


@pytest.mark.parametrize("pbx_rang_first", [True, False], ids=["after-180", "before-any-provisional"])
def test_caller_bye_while_the_pbx_rings_cancels_the_pbx(pbx_rang_first: bool) -> None:
    s = Scene()
    s.notice_playing()
    s.notice_heard()
    s.question_heard()
    s.press("2")
    s.callee.take_invite()
    if pbx_rang_first:
        s.callee.ring()
    effects = s.caller.send(s.caller.request("BYE"))

    assert sip_summary(effects) == [(CARRIER, "200 BYE")] + ([(PBX, "CANCEL")] if pbx_rang_first else [])
    if not pbx_rang_first:
        assert sip_summary(s.callee.ring()) == [(PBX, "CANCEL")]  # §9.1: only after a provisional
    s.callee.reply(s.callee.last_request("CANCEL"), 200)
    assert sip_summary(s.callee.reply(s.callee.invite, 487)) == [(PBX, "ACK")]
    assert s.caller.requests("BYE") == []
    assert of(s.h.effects, StartRecording) == []
    finish(s)


@pytest.mark.parametrize(("status", "reason"), [(486, "busy"), (480, "failed-480"), (603, "failed-603")])
def test_pbx_failure_after_callherald_answered_hangs_up_the_caller(status: int, reason: str) -> None:
    s = Scene()
    s.notice_playing()
    s.notice_heard()
    s.question_heard()
    s.press("1")
    s.callee.take_invite()
    s.callee.ring()
    effects = s.callee.reply(s.callee.invite, status)

    assert sip_summary(effects) == [(PBX, "ACK"), (CARRIER, "BYE")]
    assert s.caller.statuses() == [100, 200]  # the INVITE had its answer; no error response follows
    assert s.h.ended() == [CallEnded(call_ref=s.ref, reason=reason, status=status)]
    s.caller.reply(s.caller.last_request("BYE"), 200)
    assert of(s.h.effects, StartRecording) == []
    finish(s)


G729_ANSWER = (
    CALLEE_ANSWER.replace(b"RTP/AVP 0 101", b"RTP/AVP 18")
    .replace(b"a=rtpmap:0 PCMU/8000", b"a=rtpmap:18 G729/8000")
    .replace(b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n", b"")
)
NO_CODEC_IN_ANSWER = (
    "the callee's answer has no audio codec of the offer that is allowed here (g722, pcma, pcmu)"
)


def test_an_outbound_callee_answering_with_no_usable_codec_fails_the_call_unrecorded() -> None:
    # No notice can play and nothing can be recorded: the evidence says why the call failed.
    s = Scene(OUTBOUND)
    s.dial()
    s.callee.take_invite()
    s.callee.ring()
    effects = s.callee.reply(s.callee.invite, 200, body=G729_ANSWER, extra=(OUTSIDE_IDENTITY,))

    assert sip_summary(effects) == [(CARRIER, "ACK"), (CARRIER, "BYE"), (PBX, "488 INVITE")]
    assert [(e.leg, e.event.reason) for e in of(effects, Evidence) if isinstance(e.event, NoticeFailed)] == [
        (MediaLeg.B, NO_CODEC_IN_ANSWER)
    ]
    assert of(effects, PlayPrompt) == []
    assert s.h.ended() == [CallEnded(call_ref=s.ref, reason="no-codec-in-answer", status=488)]
    s.caller.send(s.caller.ack_failure(s.caller.last_response("INVITE", 488)))
    s.callee.reply(s.callee.last_request("BYE"), 200)
    assert of(s.h.effects, StartRecording) == []
    finish(s)


def test_an_outbound_late_offer_with_no_usable_codec_fails_the_call_unrecorded() -> None:
    # The agent's INVITE had no SDP and the callee's 2xx offers only G.729: no notice can play and
    # nothing can be recorded, and the evidence says why the call failed.
    s = Scene(OUTBOUND)
    s.dial(body=b"")
    s.callee.take_invite()
    s.callee.ring()
    effects = s.callee.reply(s.callee.invite, 200, body=G729_ANSWER, extra=(OUTSIDE_IDENTITY,))

    assert sip_summary(effects) == [(CARRIER, "ACK"), (CARRIER, "BYE"), (PBX, "488 INVITE")]
    reason = "the callee's offer in its 2xx to an INVITE without SDP has no audio codec allowed here (g722, pcma, pcmu)"
    assert [(e.leg, e.event.reason) for e in of(effects, Evidence) if isinstance(e.event, NoticeFailed)] == [
        (MediaLeg.B, reason)
    ]
    assert of(effects, PlayPrompt) == []
    assert s.h.ended() == [CallEnded(call_ref=s.ref, reason="no-codec-in-offer", status=488)]
    s.caller.send(s.caller.ack_failure(s.caller.last_response("INVITE", 488)))
    s.callee.reply(s.callee.last_request("BYE"), 200)
    assert of(s.h.effects, StartRecording) == []
    finish(s)


def test_a_pbx_answering_with_no_usable_codec_after_the_notice_hangs_up_the_caller() -> None:
    # The caller was answered by callherald and heard the notice: it gets a BYE, as when the PBX
    # fails; the PBX's 2xx is ACKed and hung up.
    s = Scene()
    s.notice_playing()
    s.notice_heard()
    s.question_heard()
    s.press("1")
    s.callee.take_invite()
    s.callee.ring()
    effects = s.callee.reply(s.callee.invite, 200, body=G729_ANSWER)

    assert sip_summary(effects) == [(PBX, "ACK"), (PBX, "BYE"), (CARRIER, "BYE")]
    assert s.caller.statuses() == [100, 200]
    assert s.h.ended() == [CallEnded(call_ref=s.ref, reason="no-codec-in-answer", status=488)]
    assert LogEvent(level="warning", text=f"call failed: {NO_CODEC_IN_ANSWER}", call_ref=s.ref) in effects
    s.caller.reply(s.caller.last_request("BYE"), 200)
    s.callee.reply(s.callee.last_request("BYE"), 200)
    assert of(s.h.effects, StartRecording) == []
    finish(s)


def test_an_outbound_callee_answering_in_its_183_with_no_usable_codec_fails_the_call_unrecorded() -> None:
    # The 2xx must bring the 183's answer again (RFC 3261 §13.2.1): no notice can play and nothing
    # can be recorded; the callee is cancelled and the evidence says why the call failed.
    s = Scene(OUTBOUND)
    s.dial()
    s.callee.take_invite()
    effects = s.callee.reply(s.callee.invite, 183, body=G729_ANSWER, extra=(OUTSIDE_IDENTITY,))

    assert sip_summary(effects) == [(CARRIER, "CANCEL"), (PBX, "488 INVITE")]
    reason = "the callee's answer in its 183 has no audio codec of the offer that is allowed here (g722, pcma, pcmu)"
    assert [(e.leg, e.event.reason) for e in of(effects, Evidence) if isinstance(e.event, NoticeFailed)] == [
        (MediaLeg.B, reason)
    ]
    assert of(effects, PlayPrompt) == []
    assert s.h.ended() == [CallEnded(call_ref=s.ref, reason="no-codec-in-answer", status=488)]
    s.caller.send(s.caller.ack_failure(s.caller.last_response("INVITE", 488)))
    s.callee.reply(s.callee.last_request("CANCEL"), 200)
    s.callee.reply(s.callee.invite, 487)
    assert of(s.h.effects, StartRecording) == []
    finish(s)


@pytest.mark.parametrize(
    ("policy", "to_caller", "caller_statuses"),
    [(POLICY, (CARRIER, "BYE"), [100, 200]), (EARLY_MEDIA, (CARRIER, "488 INVITE"), [100, 183, 488])],
    ids=["answered", "early-media"],
)
def test_a_pbx_answering_in_its_183_with_no_usable_codec_after_the_notice_ends_the_call(
    policy: CallPolicy, to_caller: tuple[Address, str], caller_statuses: list[int]
) -> None:
    # The caller heard the notice, answered by callherald or in its 183: the PBX is cancelled, and
    # the caller gets a BYE, or 488 when its INVITE has no final response yet.
    s = Scene(policy=policy)
    s.notice_playing()
    s.notice_heard()
    s.question_heard()
    s.press("1")
    s.callee.take_invite()
    effects = s.callee.ring(183, body=G729_ANSWER)

    assert sip_summary(effects) == [(PBX, "CANCEL"), to_caller]
    assert s.caller.statuses() == caller_statuses
    assert s.h.ended() == [CallEnded(call_ref=s.ref, reason="no-codec-in-answer", status=488)]
    if policy is POLICY:
        s.caller.reply(s.caller.last_request("BYE"), 200)
    else:
        s.caller.send(s.caller.ack_failure(s.caller.last_response("INVITE", 488)))
    s.callee.reply(s.callee.last_request("CANCEL"), 200)
    s.callee.reply(s.callee.invite, 487)
    assert of(s.h.effects, StartRecording) == []
    finish(s)


# re-INVITE: hold, or a new outside party -------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Reinvite:
    """A re-INVITE from the outside party after the bridge."""

    name: str
    origin: str | None  # "user sess-id address" of the new o= line; None: the party's own
    version: int
    direction: str
    identity: str | None  # P-Asserted-Identity on the re-INVITE; None: none
    new_party: str | None  # why callherald takes it for another party; None: the same one
    address: str | None = None  # the party's own origin, but at this address in o= and c=


REINVITES = [
    Reinvite(name="hold", origin=None, version=2, direction="a=sendonly", identity=None, new_party=None),
    Reinvite(
        name="hold-same-identity",
        origin=None,
        version=2,
        direction="a=sendonly",
        identity=OUTSIDE_IDENTITY[1],
        new_party=None,
    ),
    Reinvite(name="refresh", origin=None, version=2, direction="a=sendrecv", identity=None, new_party=None),
    # The same asserted identity written otherwise (RFC 3325 §9.1, RFC 3261 §19.1.4): the URI
    # counts, not the display name, nor the case of the host; a tel URI beside it, naming the same
    # number, is the same identity.
    Reinvite(
        name="refresh-identity-with-display-name",
        origin=None,
        version=2,
        direction="a=sendrecv",
        identity='"Caller" <sip:+4930555000@carrier.example>',
        new_party=None,
    ),
    Reinvite(
        name="refresh-identity-host-in-capitals",
        origin=None,
        version=2,
        direction="a=sendrecv",
        identity="<sip:+4930555000@CARRIER.Example>",
        new_party=None,
    ),
    Reinvite(
        name="refresh-identity-with-tel-uri",
        origin=None,
        version=2,
        direction="a=sendrecv",
        identity="<sip:+4930555000@carrier.example>, <tel:+49-30-555000>",
        new_party=None,
    ),
    # RFC 2543 hold (RFC 3264 §8.4): some phones (twinkle) write 0.0.0.0 in the origin too.
    Reinvite(
        name="hold-rfc2543",
        origin=None,
        version=2,
        direction="a=sendrecv",
        identity=None,
        new_party=None,
        address="0.0.0.0",
    ),
    Reinvite(
        name="moved-address",
        origin=None,
        version=2,
        direction="a=sendrecv",
        identity=None,
        new_party=None,
        address="127.0.0.77",
    ),
    Reinvite(
        name="transfer-new-origin",
        origin="transferee 5550 127.0.0.7",
        version=1,
        direction="a=sendrecv",
        identity=None,
        new_party="SDP origin changed",
    ),
    Reinvite(
        name="transfer-new-identity",
        origin=None,
        version=2,
        direction="a=sendrecv",
        identity="<sip:+4940777000@carrier.example>",
        new_party="asserted identity changed",
    ),
    Reinvite(
        name="transfer-new-identity-with-tel-uri",
        origin=None,
        version=2,
        direction="a=sendrecv",
        identity='"Transferee" <sip:+4940777000@carrier.example>, <tel:+4940777000>',
        new_party="asserted identity changed",
    ),
]


ASSERTED_IDENTITIES = [
    # (before, after, the same party)
    ("<sip:+4930555000@carrier.example;user=phone>", "<tel:+49-30-555000>", True),
    ("<tel:+4930555000>", '"Caller" <sip:+4930555000@gw.example;user=phone>', True),
    ("<tel:+4930555000>, <sip:caller@carrier.example>", "<sip:caller@Carrier.Example>", True),
    ("<tel:555000;phone-context=+4930>", "<tel:555-000;phone-context=+4930>", True),
    ("<tel:555000;phone-context=+4930>", "<tel:555000;phone-context=+4940>", False),
    # A global number is one with or without user=phone: carriers add and drop the parameter.
    ("<sip:+4930555000@carrier.example>", "<tel:+4930555000>", True),
    ("<sip:+4930555000@carrier.example;user=phone>", "<sip:+4930555000@carrier.example>", True),
    ("<sip:+4930555000@carrier.example>", "<sip:+4940777000@carrier.example;user=phone>", False),
    # A national number too: user=phone only says how to read the same user part.
    ("<sip:0612345678@carrier.example;user=phone>", "<sip:0612345678@carrier.example>", True),
    ("<sip:0612345678@carrier.example;user=phone>", "<sip:0687654321@carrier.example>", False),
    # Without user=phone any other user part is a name, not a number (RFC 3261 §19.1.6).
    ("<sip:5550000@carrier.example>", "<tel:5550000;phone-context=+4930>", False),
    ("<sip:caller@carrier.example>", "<sip:Caller@carrier.example>", False),  # §19.1.4: user case
    ("<sip:caller@carrier.example>", "<sips:caller@carrier.example>", False),
    ("<sip:caller@carrier.example>", "<sip:caller@carrier.example:5060>", False),
    ("<tel:+4930555000>", "<tel:+4940777000>", False),
    ("not an address", "not an address", True),
    ("not an address", "another", False),
]


@pytest.mark.parametrize(("before", "after", "same"), ASSERTED_IDENTITIES)
def test_an_asserted_identity_is_compared_by_its_uris(before: str, after: str, same: bool) -> None:
    def identity(value: str) -> PartyIdentity:
        message = Request("INVITE", parse_uri("sip:callherald.example"), [("P-Asserted-Identity", value)])
        return _identity(message, None)

    expected = None if same else "asserted identity changed"
    assert _party_change(identity(before), identity(after)) == expected
    assert _party_change(identity(after), identity(before)) == expected


def party_sdp(origin: str, version: int, direction: str) -> bytes:
    user, sess_id, address = origin.split()
    return sdp(
        "v=0",
        f"o={user} {sess_id} {version} IN IP4 {address}",
        "s=-",
        f"c=IN IP4 {address}",
        "t=0 0",
        "m=audio 40000 RTP/AVP 0 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
        direction,
    )


def own_origin(way: Way) -> str:
    """The outside party's o= line as first seen: the caller's offer inbound, the callee's answer outbound."""
    return "caller 1001 127.0.0.2" if way is INBOUND else "callee 2002 127.0.0.3"


def reinvite_from_outside(s: Scene, case: Reinvite) -> list[Effect]:
    """The outside party's re-INVITE, the agent's 200 with SDP, and the outside party's ACK."""
    origin = case.origin or own_origin(s.way)
    if case.address is not None:
        user, sess_id, _ = origin.split()
        origin = f"{user} {sess_id} {case.address}"
    body = party_sdp(origin, case.version, case.direction)
    extra = (("P-Asserted-Identity", case.identity),) if case.identity else ()
    s.outside.send(s.outside.request("INVITE", body=body, extra=extra))
    relayed = s.agent.last_request("INVITE")
    effects = s.agent.reply(relayed, 200, body=party_sdp("agent 3003 127.0.0.9", 1, "a=sendrecv"))
    s.outside.send(s.outside.ack_2xx(s.outside.last_response("INVITE", 200)))
    return effects


def notice_again(ref: str, way: Way, *, at: float) -> list[Effect]:
    """A new outside party hears the notice from the start, parties apart (the agent hears it too
    on outbound calls)."""
    leg = way.outside_leg
    notice: list[Effect] = [
        BridgeMedia(call_ref=ref, bridged=False),
        ListenForDigits(call_ref=ref, leg=leg, media=PCMU),
        PlayPrompt(
            call_ref=ref, leg=leg, prompt_id="notice", language="de", media=PCMU, lead_in_ms=NOTICE_LEAD_IN_MS
        ),
    ]
    if way is OUTBOUND:
        notice.append(
            PlayPrompt(
                call_ref=ref,
                leg=leg.other,
                prompt_id="notice",
                language="de",
                media=PCMU,
                report=False,
                agent_copy=True,
                lead_in_ms=NOTICE_LEAD_IN_MS,
            )
        )
    notice.append(
        Evidence(call_ref=ref, leg=leg, event=AnnouncementStarted(prompt_id="notice", language="de", at=at))
    )
    return notice


@WAYS
@pytest.mark.parametrize("sender", ["outside", "agent"])
def test_a_reinvite_to_srtp_after_the_notice_is_refused_and_the_call_goes_on(way: Way, sender: str) -> None:
    # The relay renumbers and the recorder decodes this call's plain RTP: encrypted media would
    # be garbled by the one and stored as noise by the other. The session stays as it was
    # (RFC 3264 §8: a refused re-offer changes nothing).
    s = Scene(way)
    s.connect("1")
    party, other = (s.outside, s.agent) if sender == "outside" else (s.agent, s.outside)
    before = len(other.requests("INVITE"))
    body = srtp(
        party_sdp(own_origin(way) if sender == "outside" else "agent 3003 127.0.0.9", 2, "a=sendrecv"),
        "RTP/SAVP",
    )
    effects = party.send(party.request("INVITE", body=body))

    refusal = party.last_response("INVITE", 488)
    assert refusal.headers.get("warning") == '302 callherald "Incompatible transport protocol"'
    assert len(other.requests("INVITE")) == before  # not relayed
    assert of(effects, StopRecording) == []
    s.hang_up()
    finish(s)


@WAYS
def test_a_reinvite_to_srtp_on_an_unannounced_call_is_relayed(way: Way) -> None:
    # No notice, nothing renumbered or recorded (record: false): the parties may encrypt.
    s = Scene(way, UNRECORDED)
    s.dial()
    s.callee.take_invite()
    s.callee_answers()
    s.caller.ack_answer()
    body = srtp(party_sdp("caller 1001 127.0.0.2", 2, "a=sendrecv"), "RTP/SAVP")
    s.caller.send(s.caller.request("INVITE", body=body))

    relayed = s.callee.last_request("INVITE")
    assert b"RTP/SAVP 0 101" in relayed.body
    assert b"a=crypto:1 AES_CM_128_HMAC_SHA1_80" in relayed.body
    s.callee.reply(relayed, 200, body=srtp(party_sdp("callee 2002 127.0.0.3", 2, "a=sendrecv"), "RTP/SAVP"))
    s.caller.send(s.caller.ack_2xx(s.caller.last_response("INVITE", 200)))
    s.hang_up()
    finish(s)


def last_sdp_to(peer: FakeUa) -> bytes:
    return [m.body for m in peer.inbox() if m.body and m.content_type == "application/sdp"][-1]


@WAYS
@pytest.mark.parametrize("sender", ["outside", "agent"])
def test_an_srtp_offer_in_the_2xx_to_a_reinvite_without_sdp_after_the_notice_is_refused(
    way: Way, sender: str
) -> None:
    # The 2xx to a re-INVITE without SDP is the far party's offer (RFC 3261 §14.1): SRTP is refused
    # as in a re-INVITE's own offer. Its ACK rejects every stream (RFC 3264 §6), the sender gets
    # 488 and keeps its session (§14.2), and the far party is offered the session it had again.
    s = Scene(way)
    s.connect("1")
    party, other = (s.outside, s.agent) if sender == "outside" else (s.agent, s.outside)
    session_before = sdp_without_origin(last_sdp_to(other))
    party.send(party.request("INVITE"))
    relayed = other.last_request("INVITE")
    offer = srtp(party_sdp("far 4004 127.0.0.8", 5, "a=sendrecv"), "RTP/SAVP")
    effects = other.reply(relayed, 200, body=offer)

    assert sip_summary(effects) == [
        (other.address, "ACK"),
        (party.address, "488 INVITE"),
        (other.address, "INVITE"),
    ]
    assert b"m=audio 0 RTP/SAVP 0 101" in other.last_request("ACK").body
    refusal = party.last_response("INVITE", 488)
    assert refusal.headers.get("warning") == '302 callherald "Incompatible transport protocol"'
    assert of(effects, SetMediaRemote) == []
    assert of(effects, StopRecording) == []
    back = other.last_request("INVITE")
    assert sdp_without_origin(back.body) == session_before
    side = "a" if other is s.caller else "b"
    origin_side = "b" if side == "a" else "a"
    assert (
        LogEvent(
            level="warning",
            text=f"leg {side} offered, in its 2xx to the INVITE of leg {origin_side} without SDP, no plain RTP"
            f" audio: 488 to leg {origin_side}, the session goes on as it was",
            call_ref=s.ref,
        )
        in effects
    )
    other.reply(back, 200, body=party_sdp("far 4004 127.0.0.8", 6, "a=sendrecv"))
    s.hang_up()
    finish(s)


@WAYS
def test_an_srtp_offer_in_the_2xx_to_a_reinvite_without_sdp_on_an_unannounced_call_is_relayed(
    way: Way,
) -> None:
    # As an SRTP offer in an INVITE is, on a call with nothing renumbered or recorded.
    s = Scene(way, UNRECORDED)
    s.dial()
    s.callee.take_invite()
    s.callee_answers()
    s.caller.ack_answer()
    s.caller.send(s.caller.request("INVITE"))
    relayed = s.callee.last_request("INVITE")
    s.callee.reply(relayed, 200, body=srtp(party_sdp("callee 2002 127.0.0.3", 2, "a=sendrecv"), "RTP/SAVP"))

    ok = s.caller.last_response("INVITE", 200)
    assert b"RTP/SAVP 0 101" in ok.body
    assert b"a=crypto:1 AES_CM_128_HMAC_SHA1_80" in ok.body
    answer = srtp(party_sdp("caller 1001 127.0.0.2", 2, "a=sendrecv"), "RTP/SAVP")
    effects = s.caller.send(s.caller.ack_2xx(ok, body=answer))
    assert sip_summary(effects) == [(way.callee, "ACK")]
    s.hang_up()
    finish(s)


def test_a_new_party_whose_reinvite_without_sdp_gets_a_2xx_without_an_offer_hears_the_notice() -> None:
    # The PBX's 2xx has no offer (RFC 3261 §14.2): the carrier is offered its session as it was,
    # and the party its re-INVITE brought hears the notice in that session's codec.
    s = Scene(INBOUND)
    s.connect("1")
    session = last_sdp_to(s.caller)
    s.caller.send(
        s.caller.request("INVITE", extra=(("P-Asserted-Identity", "<sip:+4930999888@carrier.example>"),))
    )
    effects = s.callee.reply(s.callee.last_request("INVITE"), 200)

    assert sip_summary(effects) == [(PBX, "ACK"), (CARRIER, "200 INVITE")]
    ok = s.caller.last_response("INVITE", 200)
    assert ok.body == session
    (notice,) = [e for e in of(effects, PlayPrompt) if e.prompt_id == "notice"]
    assert (notice.leg, notice.media) == (MediaLeg.A, PCMU)
    s.caller.send(s.caller.ack_2xx(ok, body=party_sdp("caller 1001 127.0.0.2", 2, "a=sendrecv")))
    s.hang_up()
    finish(s)


@WAYS
def test_a_hold_in_the_ack_to_a_session_offered_unchanged_pauses_and_reaches_the_agent(way: Way) -> None:
    # The agent's 2xx to the outside party's re-INVITE without SDP had no offer: it was ACKed at
    # once, and the outside party was offered its session as it was. Its hold, in its ACK, pauses
    # the recording and reaches the agent by re-INVITE (RFC 3264 §8.4); its end resumes both.
    s = Scene(way)
    s.connect("1")
    for direction, version, recording in (
        ("a=sendonly", 2, PauseRecording),
        ("a=sendrecv", 3, ResumeRecording),
    ):
        s.outside.send(s.outside.request("INVITE"))
        s.agent.reply(s.agent.last_request("INVITE"), 200)
        ok = s.outside.last_response("INVITE", 200)
        effects = s.outside.send(s.outside.ack_2xx(ok, body=party_sdp(own_origin(way), version, direction)))

        assert of(effects, recording) == [recording(call_ref=s.ref, reason="hold")]
        assert sip_summary(effects) == [(s.agent.address, "INVITE")]
        reoffer = s.agent.last_request("INVITE")
        assert direction.encode() in reoffer.body
        answered = {"a=sendonly": "a=recvonly"}.get(direction, direction)
        s.agent.reply(reoffer, 200, body=party_sdp("agent 3003 127.0.0.9", version, answered))
    s.hang_up()
    finish(s)


NOTICE_BETWEEN_DIALOGS = pytest.mark.parametrize(
    ("way", "moment"),
    [(OUTBOUND, "first-notice"), (INBOUND, "new-party"), (OUTBOUND, "new-party")],
    ids=["outbound-first-notice", "inbound-new-party", "outbound-new-party"],
)


def notice_plays_between_dialogs(s: Scene, moment: str) -> str:
    """Get to where the notice plays with both dialogs confirmed, so that the parties' re-INVITEs
    and UPDATEs are relayed: the callee's first notice on an outbound call (``first-notice``), or
    a new outside party's after the bridge. Returns the outside party's o= ("user sess-id address")."""
    if moment == "first-notice":
        s.notice_playing()
        return own_origin(s.way)
    s.connect("1")
    transferred = next(case for case in REINVITES if case.name == "transfer-new-origin")
    reinvite_from_outside(s, transferred)
    assert transferred.origin is not None
    return transferred.origin


@NOTICE_BETWEEN_DIALOGS
@pytest.mark.parametrize("sender", ["outside", "agent"])
@pytest.mark.parametrize("method", ["INVITE", "UPDATE"])
def test_an_srtp_offer_while_the_notice_plays_is_refused_as_after_it(
    way: Way, moment: str, sender: str, method: str
) -> None:
    # The notice goes out in plain RTP, which a party expecting SRTP drops (RFC 3711 §3.3), and
    # the call could not be recorded after it: SRTP is refused as once the notice played (488,
    # Warning 302), the session goes on as it was (RFC 3261 §14.2), and so does the notice.
    s = Scene(way)
    outside_origin = notice_plays_between_dialogs(s, moment)
    party, other = (s.outside, s.agent) if sender == "outside" else (s.agent, s.outside)
    before = len(other.requests(method))
    origin = outside_origin if sender == "outside" else "agent 3003 127.0.0.9"
    body = srtp(party_sdp(origin, 2, "a=sendrecv"), "RTP/SAVP")
    effects = party.send(party.request(method, body=body))

    refusal = party.last_response(method, 488)
    assert refusal.headers.get("warning") == '302 callherald "Incompatible transport protocol"'
    assert len(other.requests(method)) == before  # not relayed
    assert of(effects, SetMediaRemote) == []
    assert announcing(effects) == []
    s.notice_heard()
    s.question_heard()
    s.press("1")
    assert of(s.h.effects, StartRecording)[-1].purposes == ("quality", "training")
    s.hang_up()
    finish(s)


@NOTICE_BETWEEN_DIALOGS
@pytest.mark.parametrize("sender", ["outside", "agent"])
def test_an_srtp_offer_in_the_2xx_to_a_reinvite_without_sdp_while_the_notice_plays_is_refused(
    way: Way, moment: str, sender: str
) -> None:
    # As after the notice: the offer is answered in the ACK with every stream rejected (RFC 3264
    # §6), the sender gets 488 (Warning 302) and keeps its session (RFC 3261 §14.2), and the far
    # party is offered the session it had again. The notice plays on.
    s = Scene(way)
    notice_plays_between_dialogs(s, moment)
    party, other = (s.outside, s.agent) if sender == "outside" else (s.agent, s.outside)
    session_before = sdp_without_origin(last_sdp_to(other))
    party.send(party.request("INVITE"))
    relayed = other.last_request("INVITE")
    offer = srtp(party_sdp("far 4004 127.0.0.8", 5, "a=sendrecv"), "RTP/SAVP")
    effects = other.reply(relayed, 200, body=offer)

    assert sip_summary(effects) == [
        (other.address, "ACK"),
        (party.address, "488 INVITE"),
        (other.address, "INVITE"),
    ]
    assert b"m=audio 0 RTP/SAVP 0 101" in other.last_request("ACK").body
    refusal = party.last_response("INVITE", 488)
    assert refusal.headers.get("warning") == '302 callherald "Incompatible transport protocol"'
    assert of(effects, SetMediaRemote) == []
    assert announcing(effects) == []
    back = other.last_request("INVITE")
    assert sdp_without_origin(back.body) == session_before
    other.reply(back, 200, body=party_sdp("far 4004 127.0.0.8", 6, "a=sendrecv"))
    s.notice_heard()
    s.question_heard()
    s.press("1")
    assert of(s.h.effects, StartRecording)[-1].purposes == ("quality", "training")
    s.hang_up()
    finish(s)


@NOTICE_BETWEEN_DIALOGS
@pytest.mark.parametrize("sender", ["outside", "agent"])
def test_a_2xx_offer_without_the_notice_codec_to_a_reinvite_without_sdp_while_it_plays_is_refused(
    way: Way, moment: str, sender: str
) -> None:
    # A prompt cannot change format midway: as a re-INVITE's own offer without the notice's codec
    # gets 488 while it plays (``_offer_codecs``), so does the far party's offer in its 2xx to a
    # re-INVITE without SDP. It is answered in the ACK with every stream rejected (RFC 3264 §6),
    # the sender keeps its session (RFC 3261 §14.2), and the far party is offered its own again.
    s = Scene(way)
    notice_plays_between_dialogs(s, moment)
    party, other = (s.outside, s.agent) if sender == "outside" else (s.agent, s.outside)
    session_before = sdp_without_origin(last_sdp_to(other))
    party.send(party.request("INVITE"))
    relayed = other.last_request("INVITE")
    pcma_only = (
        party_sdp("far 4004 127.0.0.8", 5, "a=sendrecv")
        .replace(b"RTP/AVP 0 101", b"RTP/AVP 8 101")
        .replace(b"a=rtpmap:0 PCMU/8000", b"a=rtpmap:8 PCMA/8000")
    )
    effects = other.reply(relayed, 200, body=pcma_only)

    assert sip_summary(effects) == [
        (other.address, "ACK"),
        (party.address, "488 INVITE"),
        (other.address, "INVITE"),
    ]
    assert b"m=audio 0 RTP/AVP" in other.last_request("ACK").body
    refusal = party.last_response("INVITE", 488)
    assert refusal.headers.get("warning") == '305 callherald "Incompatible media format"'
    assert of(effects, SetMediaRemote) == []
    back = other.last_request("INVITE")
    assert sdp_without_origin(back.body) == session_before
    other.reply(back, 200, body=party_sdp("far 4004 127.0.0.8", 6, "a=sendrecv"))
    s.notice_heard()
    s.question_heard()
    s.press("1")
    assert of(s.h.effects, StartRecording)[-1].purposes == ("quality", "training")
    s.hang_up()
    finish(s)


@NOTICE_BETWEEN_DIALOGS
def test_a_2xx_offer_to_a_reinvite_without_sdp_while_the_notice_plays_is_passed_on_in_its_codec(
    way: Way, moment: str
) -> None:
    # The far party offers PCMA besides the notice's PCMU: the sender is offered PCMU alone, so
    # that its answer cannot switch the codec under the prompt.
    s = Scene(way)
    notice_plays_between_dialogs(s, moment)
    party, other = s.agent, s.outside
    party.send(party.request("INVITE"))
    both = (
        party_sdp("far 4004 127.0.0.8", 5, "a=sendrecv")
        .replace(b"RTP/AVP 0 101", b"RTP/AVP 8 0 101")
        .replace(b"a=rtpmap:0 PCMU/8000", b"a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000")
    )
    other.reply(other.last_request("INVITE"), 200, body=both)

    offered = party.last_response("INVITE", 200).body
    assert b"m=audio" in offered
    assert b"PCMA" not in offered
    assert b"a=rtpmap:0 PCMU/8000" in offered
    s.h.shutdown()
    finish(s)


@pytest.mark.parametrize("method", ["INVITE", "UPDATE"])
@pytest.mark.parametrize("moment", ["notice", "ringing"])
def test_an_srtp_offer_callherald_answers_itself_is_refused_for_its_transport(
    method: str, moment: str
) -> None:
    # Until the PBX answers, callherald answers the inbound caller's re-INVITE or UPDATE itself and
    # plays to it in plain RTP only: the Warning says so (302), not that a codec is missing (305).
    s = Scene(INBOUND)
    s.notice_playing()
    if moment == "ringing":
        s.notice_heard()
        s.question_heard()
        s.press("1")
        s.callee.take_invite()
        s.callee.ring()
    body = srtp(party_sdp(own_origin(INBOUND), 2, "a=sendrecv"), "RTP/SAVP")
    effects = s.caller.send(s.caller.request(method, body=body))

    refusal = s.caller.last_response(method, 488)
    assert refusal.headers.get("warning") == '302 callherald "Incompatible transport protocol"'
    assert of(effects, SetMediaRemote) == []
    assert announcing(effects) == []
    if moment == "notice":
        s.notice_heard()
        s.question_heard()
        s.press("1")
        s.callee.take_invite()
        s.callee.ring()
    s.callee_answers()
    assert of(s.h.effects, StartRecording)[-1].purposes == ("quality", "training")
    s.hang_up()
    finish(s)


@WAYS
def test_a_reinvite_to_srtp_on_a_call_whose_notice_failed_is_relayed(way: Way) -> None:
    # A call that began in SRTP could not hear the notice and connects unrecorded: nothing is
    # played, renumbered or recorded, so its re-INVITEs may keep to SRTP as on an unannounced call.
    s = Scene(way)
    unannounced_flow_until_bye(s, srtp(CALLER_OFFER, "RTP/SAVP"), srtp(CALLEE_ANSWER, "RTP/SAVP"))
    body = srtp(party_sdp("caller 1001 127.0.0.2", 2, "a=sendrecv"), "RTP/SAVP")
    s.caller.send(s.caller.request("INVITE", body=body))

    relayed = s.callee.last_request("INVITE")
    assert b"RTP/SAVP 0 101" in relayed.body
    s.callee.reply(relayed, 200, body=srtp(party_sdp("callee 2002 127.0.0.3", 2, "a=sendrecv"), "RTP/SAVP"))
    s.caller.send(s.caller.ack_2xx(s.caller.last_response("INVITE", 200)))
    s.hang_up()
    finish(s)


def pcma_first(body: bytes) -> bytes:
    """``body`` offering PCMA ahead of PCMU."""
    return body.replace(b"RTP/AVP 0 101", b"RTP/AVP 8 0 101").replace(
        b"a=rtpmap:0 PCMU/8000", b"a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000"
    )


def pcma_only(body: bytes) -> bytes:
    """``body`` offering PCMA and no PCMU."""
    return body.replace(b"RTP/AVP 0 101", b"RTP/AVP 8 101").replace(b"0 PCMU/8000", b"8 PCMA/8000")


@pytest.mark.parametrize("sender", ["outside", "agent"])
def test_outbound_codec_change_while_the_notice_plays_is_refused(sender: str) -> None:
    # The notice and questions play in the codec the call began with and cannot switch midway:
    # a re-INVITE without that codec gets 488 and the session goes on as it was (RFC 3261
    # §14.2), as an inbound caller's does before the PBX answers.
    s = Scene(OUTBOUND)
    s.notice_playing()
    party, other = (s.outside, s.agent) if sender == "outside" else (s.agent, s.outside)
    before = len(other.requests("INVITE"))
    origin = own_origin(OUTBOUND) if sender == "outside" else "caller 1001 127.0.0.2"
    effects = party.send(party.request("INVITE", body=pcma_only(party_sdp(origin, 2, "a=sendrecv"))))

    refusal = party.last_response("INVITE", 488)
    assert refusal.headers.get("warning") == '305 callherald "Incompatible media format"'
    assert len(other.requests("INVITE")) == before  # not relayed
    assert not [e for e in effects if isinstance(e, SetMediaRemote | StopPlayout | PlayPrompt)]

    # An offer that keeps the codec goes on, limited to it: the answer cannot switch either.
    party.send(party.request("INVITE", body=pcma_first(party_sdp(origin, 2, "a=sendrecv"))))
    relayed = other.last_request("INVITE")
    assert audio_lines(relayed.body)[1:] == ["a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000"]
    other.reply(relayed, 200, body=party_sdp("answer 4004 127.0.0.9", 1, "a=sendrecv"))
    party.send(party.ack_2xx(party.last_response("INVITE", 200)))
    s.notice_heard()
    s.question_heard()
    s.press("1")

    # Bridged, the relay and the recording follow a codec change.
    effects = party.send(party.request("INVITE", body=pcma_only(party_sdp(origin, 3, "a=sendrecv"))))
    relayed = other.last_request("INVITE")
    assert audio_lines(relayed.body)[1:] == ["a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000"]
    other.reply(relayed, 200, body=pcma_only(party_sdp("answer 4004 127.0.0.9", 2, "a=sendrecv")))
    party.send(party.ack_2xx(party.last_response("INVITE", 200)))
    s.hang_up()
    finish(s)


@WAYS
@pytest.mark.parametrize("case", REINVITES, ids=lambda case: case.name)
def test_reinvite_from_a_new_party_restarts_the_notice(way: Way, case: Reinvite) -> None:
    s = Scene(way)
    s.connect("1")
    ref, leg = s.ref, way.outside_leg
    effects = reinvite_from_outside(s, case)

    assert sip_summary(effects) == [(s.agent.address, "ACK"), (s.outside.address, "200 INVITE")]
    # The relay sends to a new party's address at once, not to the source that left.
    (*_, remote) = (e for e in s.h.effects if isinstance(e, SetMediaRemote) and e.leg is leg)
    assert remote.new_party is (case.new_party is not None)
    if case.new_party is None:
        assert announcing(effects) == []
        assert of(s.h.effects, StartRecording)[-1].purposes == ("quality", "training")
        s.hang_up()
        finish(s)
        return
    expected: list[Effect] = [
        Evidence(call_ref=ref, leg=leg, event=PartyChanged(reason=case.new_party, at=T0)),
        StopRecording(call_ref=ref, reason="new-party"),
        *notice_again(ref, way, at=T0),
    ]
    assert sip_index(effects, s.outside.address, "200 INVITE") < index_of(effects, expected[0])
    assert announcing(effects) == expected

    s.notice_heard()
    s.question_heard()
    effects = s.press("2")  # the new party says no to training
    assert announcing(effects)[-3:] == [
        BridgeMedia(call_ref=ref, bridged=True),
        PlayTone(call_ref=ref, leg=leg.other, tone=Tone.BEEP, media=PCMU),
        StartRecording(call_ref=ref, outside_leg=leg, purposes=("quality",), policy="service-line"),
    ]
    s.hang_up()
    finish(s)


def update_from_outside(s: Scene, case: Reinvite) -> list[Effect]:
    """The outside party's UPDATE (RFC 3311) with ``case``'s offer, and the agent's 200 with SDP."""
    origin = case.origin or own_origin(s.way)
    body = party_sdp(origin, case.version, case.direction)
    extra = (("P-Asserted-Identity", case.identity),) if case.identity else ()
    s.outside.send(s.outside.request("UPDATE", body=body, extra=extra))
    relayed = s.agent.last_request("UPDATE")
    return s.agent.reply(relayed, 200, body=party_sdp("agent 3003 127.0.0.9", 1, "a=sendrecv"))


@WAYS
@pytest.mark.parametrize(
    "case", [case for case in REINVITES if case.address is None], ids=lambda case: case.name
)
def test_an_update_from_a_new_party_restarts_the_notice_as_a_reinvite_does(way: Way, case: Reinvite) -> None:
    # A carrier may connect a forwarded or transferred party by UPDATE (RFC 3311 §5.1): that
    # party must hear the notice before anything of it is recorded, as after a re-INVITE.
    s = Scene(way)
    s.connect("1")
    ref, leg = s.ref, way.outside_leg
    effects = update_from_outside(s, case)

    assert sip_summary(effects) == [(s.outside.address, "200 UPDATE")]
    (*_, remote) = (e for e in s.h.effects if isinstance(e, SetMediaRemote) and e.leg is leg)
    assert remote.new_party is (case.new_party is not None)
    if case.new_party is None:
        assert announcing(effects) == []
        s.hang_up()
        finish(s)
        return
    assert announcing(effects) == [
        Evidence(call_ref=ref, leg=leg, event=PartyChanged(reason=case.new_party, at=T0)),
        StopRecording(call_ref=ref, reason="new-party"),
        *notice_again(ref, way, at=T0),
    ]
    # The evidence names the new party by its asserted identity (RFC 3325), and its dialog.
    (changed,) = [e.event for e in effects if isinstance(e, Evidence) and isinstance(e.event, PartyChanged)]
    assert changed.sip_call_id == s.outside.call_id
    assert changed.remote_uri == (
        str(NameAddress.parse(case.identity.split(",")[0]).uri) if case.identity else ""
    )
    s.notice_heard()
    s.question_heard()
    effects = s.press("1")
    assert announcing(effects)[-1] == StartRecording(
        call_ref=ref, outside_leg=leg, purposes=("quality", "training"), policy="service-line"
    )
    s.hang_up()
    finish(s)


@WAYS
def test_an_rfc2543_hold_with_0000_in_the_origin_pauses_the_recording_and_resume_resumes_it(way: Way) -> None:
    s = Scene(way)
    s.connect("1")
    hold = next(case for case in REINVITES if case.name == "hold-rfc2543")
    before = len(s.h.effects)
    reinvite_from_outside(s, hold)
    held = s.h.effects[before:]
    reinvite_from_outside(s, dataclasses.replace(hold, name="resume", version=3, address=None))
    resumed = s.h.effects[before + len(held) :]

    pauses = (PauseRecording, ResumeRecording, StopRecording, PlayPrompt)
    assert [e for e in held if isinstance(e, pauses)] == [PauseRecording(call_ref=s.ref, reason="hold")]
    assert [e for e in resumed if isinstance(e, pauses)] == [ResumeRecording(call_ref=s.ref, reason="hold")]
    assert events(s.h.effects, PartyChanged) == []
    s.hang_up()
    finish(s)


@WAYS
def test_an_outside_party_holding_in_the_2xx_to_a_reinvite_without_sdp_pauses_the_recording(way: Way) -> None:
    # The agent's re-INVITE without SDP asks the outside party for an offer (RFC 3261 §14.1): a
    # hold in it pauses the recording as a hold in the party's own re-INVITE does, and its
    # sendrecv offer to the next one resumes it.
    s = Scene(way)
    s.connect("1")
    recorded: list[Effect] = []
    for version, direction, answer in [(2, "a=sendonly", "a=recvonly"), (3, "a=sendrecv", "a=sendrecv")]:
        s.agent.send(s.agent.request("INVITE"))
        offer = party_sdp(own_origin(way), version, direction)
        recorded += s.outside.reply(s.outside.last_request("INVITE"), 200, body=offer)
        ok = s.agent.last_response("INVITE", 200)
        recorded += s.agent.send(s.agent.ack_2xx(ok, body=party_sdp("agent 3003 127.0.0.9", version, answer)))
        s.outside.new_messages()

    assert [e for e in recorded if isinstance(e, RECORDING)] == [
        PauseRecording(call_ref=s.ref, reason="hold"),
        ResumeRecording(call_ref=s.ref, reason="hold"),
    ]
    s.hang_up()
    finish(s)


@WAYS
def test_a_new_party_during_the_notice_cuts_it_short_and_hears_it_from_the_start(way: Way) -> None:
    s = Scene(way)
    s.connect("1")
    ref, leg = s.ref, way.outside_leg
    transferred = next(case for case in REINVITES if case.name == "transfer-new-origin")
    reinvite_from_outside(s, transferred)
    s.h.advance(1.5)  # the second party is hearing the notice; a third one takes over the line
    third = dataclasses.replace(transferred, origin="third 6660 127.0.0.8")
    effects = reinvite_from_outside(s, third)

    cut = AnnouncementEnded(prompt_id="notice", at=s.h.now, complete=False)
    assert announcing(effects) == [
        Evidence(call_ref=ref, leg=leg, event=cut),
        Evidence(call_ref=ref, leg=leg, event=PartyChanged(reason="SDP origin changed", at=s.h.now)),
        *notice_again(ref, way, at=s.h.now),
    ]
    s.notice_heard()
    s.question_heard()
    s.press("1")
    assert of(s.h.effects, StartRecording)[-1] == StartRecording(
        call_ref=ref, outside_leg=leg, purposes=("quality", "training"), policy="service-line"
    )
    s.hang_up()
    finish(s)


def outside_redirects(s: Scene, direction: str, version: int) -> tuple[Response, list[Effect]]:
    """The outside party's re-INVITE in ``direction`` (what the agent answers when it has the
    call), ACKed; callherald's 200 and the effects."""
    before = len(s.h.effects)
    s.outside.send(s.outside.request("INVITE", body=party_sdp(own_origin(s.way), version, direction)))
    if s.way is OUTBOUND:  # the agent has the call: the re-INVITE goes on to it
        answered = {"a=sendonly": "a=recvonly"}.get(direction, direction)
        s.agent.reply(
            s.agent.last_request("INVITE"), 200, body=party_sdp("agent 3003 127.0.0.9", version, answered)
        )
    ok = s.outside.last_response("INVITE", 200)
    s.outside.send(s.outside.ack_2xx(ok))
    return ok, s.h.effects[before:]


@WAYS
def test_a_hold_during_the_notice_cuts_it_short_and_it_plays_again_after_the_hold(way: Way) -> None:
    # A held party hears nothing (RFC 3264 §8.4): the notice it missed is played again, whole,
    # before anything is asked or recorded.
    s = Scene(way)
    s.notice_playing()
    ref, leg = s.ref, way.outside_leg
    s.h.advance(1.5)
    ok, held = outside_redirects(s, "a=sendonly", 2)

    assert b"a=recvonly" in ok.body  # the answer to a sendonly offer (RFC 3264 §6.1)
    stopped = [StopPlayout(call_ref=ref, leg=leg)]
    if way is OUTBOUND:
        stopped.append(StopPlayout(call_ref=ref, leg=leg.other))  # the agent's copy too
    cut = AnnouncementEnded(prompt_id="notice", at=s.h.now, complete=False)
    assert announcing(held) == [Evidence(call_ref=ref, leg=leg, event=cut), *stopped]
    pressed = s.press("1")  # kept in the evidence, but nothing is asked while the party holds
    assert [e.counted for e in events(pressed, DigitReceived)] == [False]
    assert events(pressed, ConsentDecided) == []
    assert s.h.prompt_finished(ref, leg) == []

    s.h.advance(4.0)
    ok, resumed = outside_redirects(s, "a=sendrecv", 3)
    assert b"a=sendrecv" in ok.body
    assert announcing(resumed) == notice_again(ref, way, at=s.h.now)
    if way is INBOUND:
        assert s.callee.inbox() == []  # the PBX is called only once the questions are over
    s.notice_heard()
    s.question_heard()
    s.press("1")
    if way is INBOUND:
        s.callee.take_invite()
        s.callee.ring()
        s.callee_answers()
    assert of(s.h.effects, StartRecording)[-1].purposes == ("quality", "training")
    ended = events(s.h.effects, AnnouncementEnded)
    assert [e.complete for e in ended if e.prompt_id == "notice"] == [False, True]
    s.hang_up()
    finish(s)


def test_an_early_media_caller_that_holds_by_update_hears_the_notice_again() -> None:
    # 183 early media: the dialog is early, so the hold comes as UPDATE (RFC 3311); the PBX has
    # not been called, so callherald answers it.
    s = Scene(policy=EARLY_MEDIA)
    s.dial()
    s.caller.learn(s.caller.last_response("INVITE", 183))
    ref = s.ref
    origin = own_origin(INBOUND)
    effects = s.caller.send(s.caller.request("UPDATE", body=party_sdp(origin, 2, "a=sendonly")))

    assert sip_summary(effects) == [(CARRIER, "200 UPDATE")]
    assert b"a=recvonly" in s.caller.last_response("UPDATE", 200).body
    cut = AnnouncementEnded(prompt_id="notice", at=s.h.now, complete=False)
    assert announcing(effects) == [
        Evidence(call_ref=ref, leg=MediaLeg.A, event=cut),
        StopPlayout(call_ref=ref, leg=MediaLeg.A),
    ]
    effects = s.caller.send(s.caller.request("UPDATE", body=party_sdp(origin, 3, "a=sendrecv")))
    assert sip_summary(effects) == [(CARRIER, "200 UPDATE")]
    assert announcing(effects) == notice_again(ref, INBOUND, at=s.h.now)
    assert s.callee.inbox() == []
    s.h.shutdown()
    finish(s)


def test_outbound_late_offer_hold_from_the_callee_keeps_the_recording() -> None:
    s = Scene(OUTBOUND)
    s.dial(body=b"")
    s.callee.take_invite()
    s.callee.reply(s.callee.invite, 200, body=party_sdp("callee 2002 127.0.0.3", 1, "a=sendrecv"))
    effects = s.caller.ack_answer(body=party_sdp("agent 3003 127.0.0.2", 1, "a=sendrecv"))
    assert of(effects, PlayPrompt) != []  # the notice starts once the agent's answer names the codec
    s.notice_heard()
    s.question_heard()
    s.press("1")
    assert len(of(s.h.effects, StartRecording)) == 1

    hold = Reinvite(
        name="hold", origin=None, version=2, direction="a=sendonly", identity=None, new_party=None
    )
    effects = reinvite_from_outside(s, hold)
    assert announcing(effects) == []  # the callee is the same party as the one who answered
    s.hang_up()
    finish(s)


@dataclass(frozen=True, slots=True, kw_only=True)
class FirstHold:
    """An SDP that holds the call from its start (RFC 3264 §8.4, or RFC 2543's 0.0.0.0)."""

    name: str
    direction: str
    address: str | None = None  # the party's own, unless 0.0.0.0
    answered: str  # how the other party answers an offer in this direction (RFC 3264 §6.1)


FIRST_HOLDS = [
    FirstHold(name="sendonly", direction="a=sendonly", answered="a=recvonly"),
    FirstHold(name="inactive", direction="a=inactive", answered="a=inactive"),
    FirstHold(name="rfc2543", direction="a=sendrecv", address="0.0.0.0", answered="a=recvonly"),
]
FIRST_HOLD = pytest.mark.parametrize("hold", FIRST_HOLDS, ids=lambda hold: hold.name)


def held_sdp(origin: str, hold: FirstHold) -> bytes:
    """``origin``'s first SDP ("user sess-id address"), holding the call as ``hold`` does."""
    if hold.address is not None:
        user, sess_id, _ = origin.split()
        origin = f"{user} {sess_id} {hold.address}"
    return party_sdp(origin, 1, hold.direction)


def outside_holds_from_the_start(s: Scene, hold: FirstHold) -> list[Effect]:
    """The outside party's first SDP holds the call: the caller's INVITE inbound, the callee's
    200 outbound; the 2xx to the caller is ACKed. The effects of that SDP."""
    before = len(s.h.effects)
    if s.way is INBOUND:
        s.dial(body=held_sdp(own_origin(INBOUND), hold))
    else:
        s.dial()
        s.callee.take_invite()
        s.callee.ring()
        s.callee.reply(
            s.callee.invite, 200, body=held_sdp(own_origin(OUTBOUND), hold), extra=(OUTSIDE_IDENTITY,)
        )
    effects = s.h.effects[before:]
    s.caller.ack_answer()
    return effects


@WAYS
@FIRST_HOLD
def test_an_outside_party_on_hold_from_its_first_sdp_hears_the_notice_when_it_comes_off_hold(
    way: Way, hold: FirstHold
) -> None:
    # As if it held the call by re-INVITE at once: a held party hears nothing (RFC 3264 §8.4), so
    # the notice waits for the hold to end; nothing is asked or decided, nor recorded, meanwhile.
    s = Scene(way)
    effects = outside_holds_from_the_start(s, hold)
    ref, leg = s.ref, way.outside_leg

    assert announcing(effects) == [
        BridgeMedia(call_ref=ref, bridged=False),
        ListenForDigits(call_ref=ref, leg=leg, media=PCMU),
    ]
    assert LogEvent(level="info", text=f"hold from leg {leg}", call_ref=ref) in effects
    if way is INBOUND:
        assert b"a=sendrecv" not in s.caller.last_response("INVITE", 200).body
    s.h.advance(TRAINING_QUESTION.timeout_s + 10.0)
    assert of(s.h.effects, Evidence) == []
    assert s.h.prompt_finished(ref, leg) == []
    if way is INBOUND:
        assert s.callee.inbox() == []  # the PBX is called only once the questions are over
    pressed = s.press("1")  # kept in the evidence, but nothing is asked while the party holds
    assert events(pressed, DigitReceived) == [
        DigitReceived(digit="1", mechanism=DigitMechanism.RFC4733, at=s.h.now, counted=False)
    ]
    assert events(pressed, ConsentDecided) == []

    ok, resumed = outside_redirects(s, "a=sendrecv", 2)
    assert b"a=sendrecv" in ok.body
    assert announcing(resumed) == notice_again(ref, way, at=s.h.now)
    s.notice_heard()
    s.question_heard()
    s.press("1")
    if way is INBOUND:
        s.callee.take_invite()
        s.callee.ring()
        s.callee_answers()
    assert of(s.h.effects, StartRecording)[-1].purposes == ("quality", "training")
    assert of(s.h.effects, PauseRecording) == []  # the hold was over before the recording began
    ended = events(s.h.effects, AnnouncementEnded)
    assert [e.complete for e in ended if e.prompt_id == "notice"] == [True]
    s.hang_up()
    finish(s)


HOLD_LIMIT_S = 12.0  # limits.notice_hold_timeout_s of these scenes
HELD_TOO_LONG = f"announcement not heard: the outside party held the call for {HOLD_LIMIT_S:g} s"


def hold_limited(way: Way, on_failure: FailureBehaviour, mode: AnnouncementMode = ANSWER) -> Scene:
    policy = dataclasses.replace(POLICY, on_failure=on_failure, mode=mode)
    return Scene(way, policy, settings=make_settings(notice_hold_timeout_s=HOLD_LIMIT_S))


def assert_held_too_long(s: Scene, effects: Sequence[Effect], consequence: str) -> None:
    """The notice failed for the hold at ``s.h.now``: in the evidence, and in a warning that says
    what became of the call."""
    failed = NoticeFailed(prompt_id="notice", language="de", reason=HELD_TOO_LONG, at=s.h.now)
    assert events(effects, NoticeFailed) == [failed]
    (warning,) = warnings(effects)
    assert warning.text == (
        f"the outside party held the call for {HOLD_LIMIT_S:g} s without hearing recording notice"
        f" 'notice': {consequence}"
    )
    assert warning.call_ref == s.ref
    assert of(effects, PlayPrompt) == []


def bye_answered(s: Scene) -> None:
    for peer in (s.caller, s.callee):
        for bye in peer.requests("BYE"):
            peer.reply(bye, 200)


@WAYS
@FIRST_HOLD
def test_a_party_held_from_its_first_sdp_past_the_hold_limit_connects_unrecorded(
    way: Way, hold: FirstHold
) -> None:
    # It never heard the notice, so nothing of it may be recorded; on_failure connect_unrecorded:
    # inbound the PBX is called now, outbound the parties are joined. Either way without recording.
    s = hold_limited(way, CONNECT)
    outside_holds_from_the_start(s, hold)
    assert s.h.advance(HOLD_LIMIT_S - 0.5) == []
    effects = s.h.advance(0.5)

    assert_held_too_long(s, effects, "call connects unrecorded")
    if way is INBOUND:
        assert [s.callee.address] == [e.destination for e in sent_sip(effects)]
        s.callee.take_invite()
        s.callee.ring()
        effects = s.callee_answers()
    assert BridgeMedia(call_ref=s.ref, bridged=True) in effects
    assert s.h.b2bua.active_calls == 1
    # Off hold now, it hears the other party: the notice it missed is not played any more.
    _, resumed = outside_redirects(s, "a=sendrecv", 2)
    assert of(resumed, PlayPrompt) == []
    s.hang_up()
    assert of(s.h.effects, StartRecording) == []
    finish(s)


@WAYS
def test_a_party_held_from_its_first_sdp_past_the_hold_limit_is_hung_up_when_the_policy_rejects(
    way: Way,
) -> None:
    s = hold_limited(way, REJECT)
    outside_holds_from_the_start(s, FIRST_HOLDS[0])
    effects = s.h.advance(HOLD_LIMIT_S)

    assert_held_too_long(s, effects, "call rejected")
    byes = [(s.caller.address, "BYE")] if way is INBOUND else [(PBX, "BYE"), (CARRIER, "BYE")]
    assert sorted(sip_summary(effects)) == sorted(byes)
    assert s.h.ended() == [CallEnded(call_ref=s.ref, reason="notice-failed")]
    if way is INBOUND:
        assert s.callee.requests("INVITE") == []  # the PBX never rang
    bye_answered(s)
    finish(s)


def test_an_early_media_caller_held_past_the_hold_limit_is_refused_480_when_the_policy_rejects() -> None:
    # Not answered yet (183 early media): the INVITE itself is refused, as for a missing notice.
    s = hold_limited(INBOUND, REJECT, EARLY)
    s.dial(body=held_sdp(own_origin(INBOUND), FIRST_HOLDS[0]))
    s.caller.learn(s.caller.last_response("INVITE", 183))
    effects = s.h.advance(HOLD_LIMIT_S)

    assert_held_too_long(s, effects, "call rejected")
    assert sip_summary(effects) == [(CARRIER, "480 INVITE")]
    assert s.callee.inbox() == []
    s.caller.send(s.caller.ack_failure(s.caller.last_response("INVITE", 480)))
    finish(s)


@WAYS
def test_a_party_that_holds_during_the_notice_past_the_hold_limit_has_not_heard_it(way: Way) -> None:
    # The notice was cut short by the hold; it counts as heard only when played again whole.
    s = hold_limited(way, CONNECT)
    s.notice_playing()
    s.h.advance(1.5)
    held_at = s.h.now
    outside_redirects(s, "a=sendonly", 2)
    effects = s.h.advance(HOLD_LIMIT_S)

    assert s.h.now == held_at + HOLD_LIMIT_S
    assert_held_too_long(s, effects, "call connects unrecorded")
    if way is INBOUND:
        s.callee.take_invite()
        s.callee.ring()
        s.callee_answers()
    assert BridgeMedia(call_ref=s.ref, bridged=True) in s.h.effects
    s.hang_up()
    assert of(s.h.effects, StartRecording) == []
    finish(s)


@WAYS
def test_a_party_that_comes_off_hold_within_the_hold_limit_is_announced_and_recorded(way: Way) -> None:
    s = hold_limited(way, REJECT)
    outside_holds_from_the_start(s, FIRST_HOLDS[0])
    s.h.advance(HOLD_LIMIT_S - 1.0)
    _, resumed = outside_redirects(s, "a=sendrecv", 2)
    assert announcing(resumed) == notice_again(s.ref, way, at=s.h.now)

    assert s.h.advance(2.0) == []  # past the hold limit: it was disarmed with the hold
    s.notice_heard()
    s.question_heard()
    s.press("1")
    if way is INBOUND:
        s.callee.take_invite()
        s.callee.ring()
        s.callee_answers()
    assert of(s.h.effects, StartRecording)[-1].purposes == ("quality", "training")
    assert events(s.h.effects, NoticeFailed) == []
    s.hang_up()
    finish(s)


def test_a_callee_on_hold_from_its_answer_comes_off_hold_in_its_answer_to_the_agents_reinvite() -> None:
    # The hold of an answer ends in a later answer too: the agent's re-INVITE (a session refresh)
    # is answered sendrecv, and the callee hears the notice.
    s = Scene(OUTBOUND)
    outside_holds_from_the_start(s, FIRST_HOLDS[0])
    ref = s.ref
    s.caller.send(s.caller.request("INVITE", body=party_sdp("caller 1001 127.0.0.2", 2, "a=sendrecv")))
    effects = s.callee.reply(
        s.callee.last_request("INVITE"), 200, body=party_sdp(own_origin(OUTBOUND), 2, "a=sendrecv")
    )
    s.caller.send(s.caller.ack_2xx(s.caller.last_response("INVITE", 200)))

    assert announcing(effects) == notice_again(ref, OUTBOUND, at=s.h.now)
    s.h.shutdown()
    finish(s)


def test_an_inbound_caller_that_answers_on_hold_in_its_ack_hears_the_notice_when_it_comes_off_hold() -> None:
    # Late offer: callherald's 200 offered, and the caller's answer in its ACK holds the call.
    s = Scene(INBOUND)
    s.dial(body=b"")
    effects = s.caller.ack_answer(body=party_sdp(own_origin(INBOUND), 1, "a=sendonly"))
    ref = s.ref

    assert announcing(effects) == [
        BridgeMedia(call_ref=ref, bridged=False),
        ListenForDigits(call_ref=ref, leg=MediaLeg.A, media=PCMU),
    ]
    _, resumed = outside_redirects(s, "a=sendrecv", 2)
    assert announcing(resumed) == notice_again(ref, INBOUND, at=s.h.now)
    s.h.shutdown()
    finish(s)


@WAYS
@FIRST_HOLD
def test_a_call_the_agent_holds_from_its_first_sdp_is_recorded_paused_and_beeps_when_the_hold_ends(
    way: Way, hold: FirstHold
) -> None:
    # As if the agent held the call by re-INVITE at once: the recording starts paused for the
    # hold (silence, and the pause in the evidence), and resumes when the agent takes it off. A
    # held agent is sent nothing (RFC 3264 §6.1): neither its copy of the notice nor the beep,
    # which plays when the hold ends.
    s = Scene(way)
    agent_origin = AGENT_ORIGIN
    if way is OUTBOUND:  # the PBX's INVITE holds; the callee answers it (RFC 3264 §6.1)
        s.dial(body=held_sdp(agent_origin, hold))
        s.callee.take_invite()
        s.callee.ring()
        answer = party_sdp(own_origin(OUTBOUND), 1, hold.answered)
        s.callee.reply(s.callee.invite, 200, body=answer, extra=(OUTSIDE_IDENTITY,))
        s.caller.ack_answer()
        assert of(s.h.effects, PlayPrompt) != []  # a held agent does not keep the notice from the callee
        s.notice_heard()
        s.question_heard()
        s.press("1")
    else:  # the PBX's answer holds
        s.notice_playing()
        s.notice_heard()
        s.question_heard()
        s.press("1")
        s.callee.take_invite()
        s.callee.ring()
        s.callee.reply(s.callee.invite, 200, body=held_sdp(agent_origin, hold))
    ref = s.ref
    start = of(s.h.effects, StartRecording)
    assert [type(e) for e in s.h.effects[s.h.effects.index(start[0]) :] if isinstance(e, RECORDING)] == [
        StartRecording,
        PauseRecording,
    ]
    assert of(s.h.effects, PauseRecording) == [PauseRecording(call_ref=ref, reason="hold")]
    assert to_agent(s, s.h.effects) == []
    assert beep_waits(s) in of(s.h.effects, LogEvent)

    # The hold ends once the outside party answered the agent's offer to end it (RFC 3261 §14.2).
    resumed = s.agent.send(s.agent.request("INVITE", body=party_sdp(agent_origin, 2, "a=sendrecv")))
    resumed += s.outside.reply(
        s.outside.last_request("INVITE"), 200, body=party_sdp(own_origin(way), 2, "a=sendrecv")
    )
    s.agent.send(s.agent.ack_2xx(s.agent.last_response("INVITE", 200)))
    assert of(resumed, ResumeRecording) == [ResumeRecording(call_ref=ref, reason="hold")]
    assert to_agent(s, resumed) == [beep(s)]
    s.hang_up()
    finish(s)


@FIRST_HOLD
def test_an_outbound_agent_that_answers_on_hold_in_its_ack_is_recorded_paused_and_beeps_when_the_hold_ends(
    hold: FirstHold,
) -> None:
    # Late offer: the PBX's INVITE had no SDP, the callee's 200 offered, and the agent's answer in
    # its ACK (RFC 3261 §13.2.1) holds the call: a hold in the first answer, as in a 200. The
    # agent hears neither the notice copy nor the beep while it holds; the beep plays after.
    s = Scene(OUTBOUND)
    agent_origin = AGENT_ORIGIN
    s.dial(body=b"")
    s.callee.take_invite()
    s.callee.ring()
    offer = party_sdp(own_origin(OUTBOUND), 1, "a=sendrecv")
    s.callee.reply(s.callee.invite, 200, body=offer, extra=(OUTSIDE_IDENTITY,))
    effects = s.caller.ack_answer(body=held_sdp(agent_origin, hold))
    ref = s.ref

    assert LogEvent(level="info", text="hold from leg a", call_ref=ref) in effects
    held_direction = "a=inactive" if hold.direction == "a=inactive" else "a=sendonly"
    assert pbx_direction(s.callee.last_request("ACK").body) == [held_direction]  # RFC 3264 §6.1
    assert of(effects, PlayPrompt) != []  # a held agent does not keep the notice from the callee
    s.notice_heard()
    s.question_heard()
    s.press("1")
    start = of(s.h.effects, StartRecording)
    assert [type(e) for e in s.h.effects[s.h.effects.index(start[0]) :] if isinstance(e, RECORDING)] == [
        StartRecording,
        PauseRecording,
    ]
    assert of(s.h.effects, PauseRecording) == [PauseRecording(call_ref=ref, reason="hold")]
    assert to_agent(s, s.h.effects) == []

    resumed = s.agent.send(s.agent.request("INVITE", body=party_sdp(agent_origin, 2, "a=sendrecv")))
    resumed += s.outside.reply(
        s.outside.last_request("INVITE"), 200, body=party_sdp(own_origin(OUTBOUND), 2, "a=sendrecv")
    )
    s.agent.send(s.agent.ack_2xx(s.agent.last_response("INVITE", 200)))
    assert of(resumed, ResumeRecording) == [ResumeRecording(call_ref=ref, reason="hold")]
    assert to_agent(s, resumed) == [beep(s)]
    s.hang_up()
    finish(s)


AGENT_ORIGIN = "agent 3003 127.0.0.9"


def to_agent(s: Scene, effects: Iterable[Effect]) -> list[Effect]:
    """What is played into the agent's leg, or stopped there, in order."""
    agent = s.way.outside_leg.other
    played = (PlayPrompt, PlayTone, StopPlayout)
    return [effect for effect in effects if isinstance(effect, played) and effect.leg is agent]


def beep(s: Scene) -> PlayTone:
    return PlayTone(call_ref=s.ref, leg=s.way.outside_leg.other, tone=Tone.BEEP, media=PCMU)


def agent_copy(s: Scene, lead_in_ms: int) -> PlayPrompt:
    return PlayPrompt(
        call_ref=s.ref,
        leg=s.way.outside_leg.other,
        prompt_id="notice",
        language="de",
        media=PCMU,
        report=False,
        agent_copy=True,
        lead_in_ms=lead_in_ms,
    )


def agent_redirects(s: Scene, direction: str, version: int) -> list[Effect]:
    """The agent's re-INVITE in ``direction``, answered by the outside party and ACKed; the effects."""
    before = len(s.h.effects)
    s.agent.send(s.agent.request("INVITE", body=party_sdp(AGENT_ORIGIN, version, direction)))
    answered = {"a=sendonly": "a=recvonly"}.get(direction, direction)
    s.outside.reply(
        s.outside.last_request("INVITE"), 200, body=party_sdp(own_origin(s.way), version, answered)
    )
    s.agent.send(s.agent.ack_2xx(s.agent.last_response("INVITE", 200)))
    return s.h.effects[before:]


def agent_holds_from_its_first_sdp(s: Scene) -> None:
    """Outbound, the PBX's INVITE holds (sendonly); inbound, the PBX's answer, after the consent."""
    if s.way is OUTBOUND:
        s.dial(body=party_sdp(AGENT_ORIGIN, 1, "a=sendonly"))
        s.callee.take_invite()
        s.callee.ring()
        answer = party_sdp(own_origin(OUTBOUND), 1, "a=recvonly")
        s.callee.reply(s.callee.invite, 200, body=answer, extra=(OUTSIDE_IDENTITY,))
        s.caller.ack_answer()
        return
    s.notice_playing()
    s.notice_heard()
    s.question_heard()
    s.press("1")
    s.callee.take_invite()
    s.callee.ring()
    s.callee.reply(s.callee.invite, 200, body=party_sdp(AGENT_ORIGIN, 1, "a=sendonly"))


def beep_waits(s: Scene) -> LogEvent:
    return LogEvent(
        level="info", text="the agent holds the call: its beep plays when it comes off hold", call_ref=s.ref
    )


def test_an_outbound_agent_off_hold_during_the_notice_hears_its_copy_then_and_the_beep_at_once() -> None:
    # The copy of the notice waits for the agent's hold (RFC 3264 §6.1) and plays, whole, when it
    # ends while the callee still hears the notice; the agent then hears the beep as recording starts.
    s = Scene(OUTBOUND)
    agent_holds_from_its_first_sdp(s)
    ref = s.ref
    assert to_agent(s, s.h.effects) == []
    waits = "the agent holds the call: its copy of the notice plays when it comes off hold"
    assert LogEvent(level="info", text=waits, call_ref=ref) in s.h.effects

    assert to_agent(s, agent_redirects(s, "a=sendrecv", 2)) == [agent_copy(s, NOTICE_LEAD_IN_MS)]
    s.notice_heard()
    s.question_heard()
    bridged = s.press("1")
    assert to_agent(s, bridged) == [beep(s)]
    assert of(bridged, StartRecording) != []
    s.hang_up()
    finish(s)


@WAYS
def test_an_agent_that_never_comes_off_hold_is_played_nothing(way: Way) -> None:
    # Nothing played, so the evidence cannot say the agent was told: no notice copy, no beep.
    s = Scene(way)
    agent_holds_from_its_first_sdp(s)
    if way is OUTBOUND:
        s.notice_heard()
        s.question_heard()
        s.press("1")
    assert of(s.h.effects, StartRecording) != []
    s.h.advance(30.0)
    s.hang_up()
    assert to_agent(s, s.h.effects) == []
    finish(s)


@WAYS
@pytest.mark.parametrize("held_for_s", [0.0, 30.0], ids=["refused-at-once", "stopped-later"])
def test_an_agent_on_hold_hears_no_beep_for_a_recording_that_does_not_run(
    way: Way, held_for_s: float
) -> None:
    # The beep tells the agent the call is recorded. Kept back for its hold, it is dropped when
    # storage refuses the recording or stops it (disk full) before the hold ends: not played, so
    # not stored as played either, like the beep of a recording that did not start.
    s = Scene(way)
    agent_holds_from_its_first_sdp(s)
    if way is OUTBOUND:
        s.notice_heard()
        s.question_heard()
        s.press("1")
    assert of(s.h.effects, StartRecording) != []
    s.h.advance(held_for_s)
    dropped = "the call is not recorded: the agent's beep kept back for its hold will not play"
    assert s.h.not_recording(s.ref) == [LogEvent(level="info", text=dropped, call_ref=s.ref)]
    assert s.h.not_recording(s.ref) == []  # nothing more is kept back

    assert to_agent(s, agent_redirects(s, "a=sendrecv", 2)) == []
    s.hang_up()
    assert to_agent(s, s.h.effects) == []
    finish(s)


@WAYS
def test_the_agent_s_beep_stops_when_its_recording_does_not_run(way: Way) -> None:
    # Storage stops the recording (disk full, evidence refused), or a later start of it fails,
    # while the beep plays: it must not go on telling the agent the call is recorded. Stopped,
    # the agent hears the other party again and the beep's evidence says it did not play to the
    # end (a stop where nothing plays any more does nothing).
    s = Scene(way)
    s.connect()
    agent = way.outside_leg.other
    assert to_agent(s, s.h.effects)[-1] == beep(s)  # outbound after its copy of the notice
    s.h.advance(0.05)
    stopped = "the call is not recorded: the agent's beep stops if it still plays"
    assert s.h.not_recording(s.ref) == [
        StopPlayout(call_ref=s.ref, leg=agent),
        LogEvent(level="info", text=stopped, call_ref=s.ref),
    ]
    assert s.h.not_recording(s.ref) == []  # stopped once

    agent_redirects(s, "a=sendonly", 2)
    assert to_agent(s, agent_redirects(s, "a=sendrecv", 3)) == []  # the beep does not come back
    s.hang_up()
    finish(s)


@WAYS
def test_a_beep_its_hold_cut_short_is_not_stopped_again_when_the_recording_does_not_run(way: Way) -> None:
    s = Scene(way)
    s.connect()
    agent = way.outside_leg.other
    assert to_agent(s, agent_redirects(s, "a=sendonly", 2)) == [StopPlayout(call_ref=s.ref, leg=agent)]
    assert to_agent(s, agent_redirects(s, "a=sendrecv", 3)) == []  # a beep cut short is not played again
    assert s.h.not_recording(s.ref) == []
    s.hang_up()
    finish(s)


def test_the_agent_s_notice_copy_plays_on_when_no_recording_runs() -> None:
    # It claims no recording: only the beep does.
    s = Scene(OUTBOUND)
    s.notice_playing()
    assert to_agent(s, s.h.effects) == [agent_copy(s, NOTICE_LEAD_IN_MS)]
    assert s.h.not_recording(s.ref) == []
    s.hang_up()
    finish(s)


def test_an_outbound_agent_that_holds_during_its_notice_copy_has_it_stopped_and_played_again() -> None:
    # Cut short by the hold (its evidence then says it did not play to the end); as the callee
    # still hears the notice when the hold ends, the agent hears its copy again from the start.
    s = Scene(OUTBOUND)
    s.notice_playing()
    held = agent_redirects(s, "a=sendonly", 2)
    assert to_agent(s, held) == [StopPlayout(call_ref=s.ref, leg=MediaLeg.A)]
    assert to_agent(s, agent_redirects(s, "a=sendrecv", 3)) == [agent_copy(s, 0)]
    s.notice_heard()
    s.question_heard()
    assert to_agent(s, s.press("1")) == [beep(s)]
    s.hang_up()
    finish(s)


def test_an_outbound_agent_that_holds_after_its_notice_copy_hears_it_once() -> None:
    s = Scene(OUTBOUND)
    s.notice_playing()
    s.notice_heard()
    assert to_agent(s, agent_redirects(s, "a=sendonly", 2)) == []
    assert to_agent(s, agent_redirects(s, "a=sendrecv", 3)) == []
    s.question_heard()
    assert to_agent(s, s.press("1")) == [beep(s)]
    s.hang_up()
    finish(s)


@WAYS
def test_an_agent_that_holds_after_the_bridge_has_its_beep_cut_short_and_not_played_again(way: Way) -> None:
    # A beep still sounding stops at the hold, so its evidence says it did not play to the end.
    s = Scene(way)
    s.connect()
    held = agent_redirects(s, "a=sendonly", 2)
    assert to_agent(s, held) == [StopPlayout(call_ref=s.ref, leg=way.outside_leg.other)]
    assert to_agent(s, agent_redirects(s, "a=sendrecv", 3)) == []
    s.hang_up()
    finish(s)


RECORDING = (StartRecording, PauseRecording, ResumeRecording, StopRecording)


def pbx_direction(body: bytes) -> list[str]:
    return [line for line in sdp_without_origin(body) if line in DIRECTIONS]


def test_a_caller_on_hold_from_its_invite_has_the_pbx_offered_its_media_as_it_is_once_off_hold() -> None:
    # The notice waits for the hold to end, and the PBX, called after it, is offered sendrecv.
    s = Scene(INBOUND)
    outside_holds_from_the_start(s, FIRST_HOLDS[0])
    outside_redirects(s, "a=sendrecv", 2)
    s.notice_heard()
    s.question_heard()
    s.press("1")

    invite = s.callee.take_invite()
    assert pbx_direction(invite.body) == ["a=sendrecv"]
    s.callee.ring()
    s.callee_answers()
    assert s.callee.requests("INVITE") == [invite]  # nothing more to tell it
    s.hang_up()
    finish(s)


def caller_redirects_while_the_pbx_rings(s: Scene, *bodies: bytes) -> None:
    """Notice and question over, the PBX called and ringing; the caller re-INVITEs with each of
    ``bodies`` in turn, and callherald answers each itself."""
    s.notice_playing()
    s.notice_heard()
    s.question_heard()
    s.press("1")
    s.callee.take_invite()
    s.callee.ring()
    for body in bodies:
        s.caller.send(s.caller.request("INVITE", body=body))
        s.caller.send(s.caller.ack_2xx(s.caller.last_response("INVITE", 200)))


@FIRST_HOLD
def test_a_pbx_that_answers_after_the_caller_held_the_call_is_offered_the_hold(hold: FirstHold) -> None:
    # The PBX was offered sendrecv; the caller's hold, which callherald answered itself while
    # the PBX rang, reaches it by re-INVITE once it answered (RFC 3264 §8.4), and its end too.
    s = Scene(INBOUND)
    origin = own_origin(INBOUND)
    caller_redirects_while_the_pbx_rings(s, held_sdp(origin, hold))
    held_direction = "a=inactive" if hold.direction == "a=inactive" else "a=sendonly"

    effects = s.callee_answers()
    assert sip_summary(effects)[-2:] == [(PBX, "ACK"), (PBX, "INVITE")]
    reinvite = s.callee.last_request("INVITE")
    assert pbx_direction(reinvite.body) == [held_direction]
    assert b"c=IN IP4 127.0.0.1" in reinvite.body  # callherald's own media, as in the INVITE
    assert audio_lines(reinvite.body) == audio_lines(s.callee.invite.body)
    assert origin_version(reinvite.body) == origin_version(s.callee.invite.body) + 1  # RFC 3264 §8
    assert of(s.h.effects, PauseRecording) == [PauseRecording(call_ref=s.ref, reason="hold")]
    effects = s.callee.reply(reinvite, 200, body=party_sdp("agent 3003 127.0.0.9", 2, hold.answered))
    assert sip_summary(effects) == [(PBX, "ACK")]

    # The caller comes off hold: relayed as any re-INVITE now that the PBX has the call.
    s.caller.send(s.caller.request("INVITE", body=party_sdp(origin, 3, "a=sendrecv")))
    assert pbx_direction(s.callee.last_request("INVITE").body) == ["a=sendrecv"]
    s.hang_up()
    finish(s)


def origin_version(body: bytes) -> int:
    return origin_of(body).sess_version


def test_a_pbx_is_not_reinvited_when_the_caller_came_back_to_the_direction_it_was_offered() -> None:
    s = Scene(INBOUND)
    origin = own_origin(INBOUND)
    caller_redirects_while_the_pbx_rings(
        s, party_sdp(origin, 2, "a=sendonly"), party_sdp(origin, 3, "a=sendrecv")
    )
    effects = s.callee_answers()

    assert sip_summary(effects)[-1] == (PBX, "ACK")
    assert len(s.callee.requests("INVITE")) == 1
    assert of(s.h.effects, PauseRecording) == []
    s.hang_up()
    finish(s)


def test_a_pbx_that_refuses_the_callers_direction_twice_is_logged_and_the_call_goes_on() -> None:
    s = Scene(INBOUND)
    caller_redirects_while_the_pbx_rings(s, party_sdp(own_origin(INBOUND), 2, "a=sendonly"))
    s.callee_answers()
    s.callee.reply(s.callee.last_request("INVITE"), 491)
    s.h.advance(4.1)  # RFC 3261 §14.1: callherald owns the PBX leg's Call-ID, so 2.1-4 s
    second = s.callee.last_request("INVITE")
    assert len({invite.cseq.seq for invite in s.callee.requests("INVITE")}) == 3  # INVITE, re-INVITE, again
    effects = s.callee.reply(second, 491)

    refused = LogEvent(
        level="warning", text="leg b refused the caller's direction: 491 Request Pending", call_ref=s.ref
    )
    assert refused in effects
    assert s.h.ended() == []


def test_outbound_late_offer_without_an_answer_in_the_ack_says_so() -> None:
    # The callee's 2xx brought the offer; it is the agent's ACK that lacks the answer.
    s = Scene(OUTBOUND)
    s.dial(body=b"")
    s.callee.take_invite()
    s.callee.reply(s.callee.invite, 200, body=party_sdp("callee 2002 127.0.0.3", 1, "a=sendrecv"))
    effects = s.caller.ack_answer(body=b"")
    assert of(effects, PlayPrompt) == []
    assert [event.reason for event in events(effects, NoticeFailed)] == ["no SDP answer in the ACK"]
    s.hang_up()
    finish(s)


def recording_pending(s: Scene) -> bool:
    summary = s.h.b2bua.call_summary(s.ref)
    assert summary is not None
    return summary.recording_pending


@WAYS
def test_a_recording_is_pending_while_the_notice_and_questions_may_lead_to_one(way: Way) -> None:
    # What the operator's pause during the notice is told: the recording will start paused.
    s = Scene(way)
    s.notice_playing()
    assert recording_pending(s)
    s.h.b2bua.pause_recording(s.ref, True, s.h.now)
    s.notice_heard()
    s.question_heard()
    s.decide("1")
    if way is INBOUND:  # decided; the PBX is still ringing
        assert recording_pending(s)
        s.callee.take_invite()
        s.callee.ring()
        s.callee_answers()
    start = of(s.h.effects, StartRecording)[0]
    assert of(s.h.effects, PauseRecording) == [PauseRecording(call_ref=start.call_ref, reason="api")]
    assert not recording_pending(s)  # it runs: no longer to come
    s.hang_up()
    finish(s)


@WAYS
@pytest.mark.parametrize(
    ("policy", "prompt_ready"),
    [
        pytest.param(UNRECORDED, None, id="record-false"),
        pytest.param(POLICY, missing("notice"), id="notice-unavailable"),
    ],
)
def test_no_recording_is_pending_for_a_call_that_will_not_be_recorded(
    way: Way, policy: CallPolicy, prompt_ready: PromptCheck | None
) -> None:
    s = Scene(way, policy, prompt_ready=prompt_ready)
    unannounced_flow_until_bye(s)
    assert not recording_pending(s)
    s.hang_up()
    finish(s)


def test_no_recording_is_pending_once_no_purpose_allows_one() -> None:
    s = Scene(INBOUND, CONSENT_ONLY)
    s.notice_playing()
    assert recording_pending(s)
    s.notice_heard()
    s.question_heard()
    s.decide(None)  # no answer: the only purpose needs consent
    assert not recording_pending(s)
    s.callee.take_invite()
    s.callee.ring()
    s.callee_answers()
    assert of(s.h.effects, StartRecording) == []
    s.hang_up()
    finish(s)


@FIRST_HOLD
def test_outbound_callee_on_hold_in_its_183_answer_alone_hears_the_notice_when_it_comes_off_hold(
    hold: FirstHold,
) -> None:
    # The hold came in the 183's answer and the 200 repeats none: still the callee's first
    # answer, so still a hold from the start (the notice waits for it to end).
    s = Scene(OUTBOUND)
    s.dial()
    s.callee.take_invite()
    s.callee.ring(183, body=held_sdp(own_origin(OUTBOUND), hold))
    effects = s.callee.reply(s.callee.invite, 200, extra=(OUTSIDE_IDENTITY,))
    ref, leg = s.ref, OUTBOUND.outside_leg
    assert LogEvent(level="info", text=f"hold from leg {leg}", call_ref=ref) in effects
    assert of(effects, PlayPrompt) == []
    s.caller.ack_answer()
    _, resumed = outside_redirects(s, "a=sendrecv", 2)
    assert announcing(resumed) == notice_again(ref, OUTBOUND, at=s.h.now)


# The packet duration each party asked for (a=ptime, RFC 4566 §6) ----------------------------------


def with_ptime(body: bytes, ms: int) -> bytes:
    """``body`` asking for ``ms`` of audio in every packet its sender receives."""
    text = body.decode().replace("a=ptime:20\r\n", "")
    assert "a=sendrecv\r\n" in text
    return text.replace("a=sendrecv\r\n", f"a=ptime:{ms}\r\na=sendrecv\r\n").encode()


def packet_durations(effects: Iterable[Effect]) -> list[tuple[str, MediaLeg, int]]:
    """What was played into which leg, in packets of how many ms."""
    played: list[tuple[str, MediaLeg, int]] = []
    for effect in effects:
        if isinstance(effect, PlayPrompt):
            played.append((effect.prompt_id, effect.leg, effect.media.packet_ms))
        elif isinstance(effect, PlayTone):
            played.append((str(effect.tone), effect.leg, effect.media.packet_ms))
    return played


def test_inbound_the_caller_hears_its_ptime_and_the_agent_s_beep_comes_in_the_pbx_s() -> None:
    s = Scene(INBOUND)
    s.dial(body=with_ptime(CALLER_OFFER, 30))
    s.caller.ack_answer()
    s.notice_heard()
    s.question_heard()
    s.press("1")
    s.callee.take_invite()
    s.callee.ring()
    s.callee.reply(s.callee.invite, 200, body=with_ptime(CALLEE_ANSWER, 40))

    caller, pbx = MediaLeg.A, MediaLeg.B
    assert packet_durations(s.h.effects) == [
        ("notice", caller, 30),
        ("ask-training", caller, 30),
        ("ringback", caller, 30),
        ("beep", pbx, 40),
    ]
    s.hang_up()
    finish(s)


@pytest.mark.parametrize("late_offer", [False, True], ids=["offer-in-invite", "late-offer"])
def test_outbound_the_callee_and_the_agent_hear_the_notice_each_in_its_own_ptime(late_offer: bool) -> None:
    # Late offer: the callee's 2xx offers, the agent answers in its ACK (RFC 3261 §13.2.1); the
    # agent's answer names the codec, and still each party gets the packets it asked for.
    s = Scene(OUTBOUND)
    agent_sdp = with_ptime(party_sdp("agent 3003 127.0.0.2", 1, "a=sendrecv"), 10)
    s.dial(body=b"" if late_offer else agent_sdp)
    s.callee.take_invite()
    s.callee.ring()
    s.callee.reply(s.callee.invite, 200, body=with_ptime(CALLEE_ANSWER, 30), extra=(OUTSIDE_IDENTITY,))
    s.caller.ack_answer(body=agent_sdp if late_offer else b"")
    s.notice_heard()
    s.question_heard()
    s.press("1")

    agent, callee = MediaLeg.A, MediaLeg.B
    assert packet_durations(s.h.effects) == [
        ("notice", callee, 30),
        ("notice", agent, 10),
        ("ask-training", callee, 30),
        ("beep", agent, 10),
    ]
    assert len(of(s.h.effects, StartRecording)) == 1
    s.hang_up()
    finish(s)


def test_a_ptime_prompts_cannot_be_sent_in_gets_20_ms_packets() -> None:
    s = Scene(INBOUND)
    s.dial(body=with_ptime(CALLER_OFFER, 25))
    assert packet_durations(s.h.effects) == [("notice", MediaLeg.A, 20)]
    s.h.shutdown()
    finish(s)


def test_a_caller_that_asks_for_another_ptime_during_the_notice_hears_the_rest_in_it() -> None:
    # Its re-INVITE, answered by callherald while the notice plays, tells the media side the new
    # duration (the notice switches at its next packet), and the prompts after it use it too.
    s = Scene(INBOUND)
    s.dial(body=with_ptime(CALLER_OFFER, 30))
    s.caller.ack_answer()
    origin = own_origin(INBOUND)
    effects = s.caller.send(
        s.caller.request("INVITE", body=with_ptime(party_sdp(origin, 2, "a=sendrecv"), 60))
    )
    s.caller.send(s.caller.ack_2xx(s.caller.last_response("INVITE", 200)))
    assert [(e.leg, e.packet_ms) for e in of(effects, SetMediaRemote)] == [(MediaLeg.A, 60)]
    s.notice_heard()
    s.question_heard()
    s.press("1")
    s.callee.take_invite()
    s.callee.ring()
    s.callee.reply(s.callee.invite, 200, body=CALLEE_ANSWER)

    caller, pbx = MediaLeg.A, MediaLeg.B
    assert packet_durations(s.h.effects) == [
        ("notice", caller, 30),
        ("ask-training", caller, 60),
        ("ringback", caller, 60),
        ("beep", pbx, 20),
    ]
    s.hang_up()
    finish(s)


@WAYS
def test_a_beep_kept_back_for_the_agent_s_hold_goes_on_in_the_ptime_of_the_sdp_that_ends_it(way: Way) -> None:
    # The re-INVITE that ends the hold releases the beep once the outside party answered it
    # (RFC 3261 §14.2), in the packets it asks for.
    s = Scene(way)
    agent_holds_from_its_first_sdp(s)
    if way is OUTBOUND:
        s.notice_heard()
        s.question_heard()
        s.press("1")
    agent = way.outside_leg.other
    resumed = s.agent.send(
        s.agent.request("INVITE", body=with_ptime(party_sdp(AGENT_ORIGIN, 2, "a=sendrecv"), 40))
    )
    assert of(resumed, SetMediaRemote) == []
    assert packet_durations(resumed) == []
    answered = s.outside.reply(
        s.outside.last_request("INVITE"), 200, body=party_sdp(own_origin(way), 2, "a=sendrecv")
    )
    assert [(e.leg, e.packet_ms) for e in of(answered, SetMediaRemote) if e.leg is agent] == [(agent, 40)]
    assert packet_durations(answered) == [("beep", agent, 40)]
    s.agent.send(s.agent.ack_2xx(s.agent.last_response("INVITE", 200)))
    s.hang_up()
    finish(s)


NO_CODEC_ALLOWED_HERE = sdp(
    "v=0",
    "o=agent 3003 2 IN IP4 127.0.0.9",
    "s=-",
    "c=IN IP4 127.0.0.9",
    "t=0 0",
    "m=audio 40000 RTP/AVP 18",
    "a=rtpmap:18 G729/8000",
    "a=sendrecv",
)


@pytest.mark.parametrize("method", ["INVITE", "UPDATE"])
@pytest.mark.parametrize(
    ("status", "answer", "packet_ms"),
    [
        pytest.param(200, party_sdp("agent 3003 127.0.0.9", 2, "a=sendrecv"), 60, id="answered"),
        pytest.param(488, b"", 30, id="refused"),
        pytest.param(500, b"", 30, id="failed"),
        pytest.param(200, NO_CODEC_ALLOWED_HERE, 30, id="answered-with-no-codec-allowed-here"),
    ],
)
def test_a_ptime_offered_during_the_notice_holds_only_once_the_offer_is_answered(
    method: str, status: int, answer: bytes, packet_ms: int
) -> None:
    # The callee's re-INVITE or UPDATE is relayed to the agent. Refused (by the agent, or by
    # callherald with 488 when the answer leaves no codec), the callee keeps the session it had
    # (RFC 3261 §14.2): the notice playing and the question after it stay in its old packets.
    s = Scene(OUTBOUND)
    s.dial()
    s.callee.take_invite()
    s.callee.ring()
    s.callee.reply(s.callee.invite, 200, body=with_ptime(CALLEE_ANSWER, 30), extra=(OUTSIDE_IDENTITY,))
    s.caller.ack_answer()
    callee = OUTBOUND.outside_leg
    offer = with_ptime(party_sdp(own_origin(OUTBOUND), 2, "a=sendrecv"), 60)
    offered = s.callee.send(s.callee.request(method, body=offer))
    assert of(offered, SetMediaRemote) == []

    answered = s.agent.reply(s.agent.last_request(method), status, body=answer)
    assert s.callee.last_response(method).status == (status if status != 200 or packet_ms == 60 else 488)
    expected = [(callee, 60)] if packet_ms == 60 else []
    assert [(e.leg, e.packet_ms) for e in of(answered, SetMediaRemote) if e.leg is callee] == expected
    if method == "INVITE" and s.callee.responses("INVITE", 200):
        s.callee.send(s.callee.ack_2xx(s.callee.last_response("INVITE", 200)))
    if len(s.agent.requests("INVITE")) > 1:  # offered the session as it was again (a 2xx with no codec)
        again = party_sdp("agent 3003 127.0.0.9", 3, "a=sendrecv")
        s.agent.reply(s.agent.last_request("INVITE"), 200, body=again)
    s.notice_heard()
    s.question_heard()
    s.press("1")
    assert (("ask-training", callee, packet_ms)) in packet_durations(s.h.effects)
    s.hang_up()
    finish(s)


# A refused hold, or a refused end of one (RFC 3261 §14.1, §14.2; RFC 3311 §5.1) -------------------

REFUSALS = ["488", "500", "no-codec-in-answer", "no-answer"]


def party_origin(s: Scene, party: FakeUa) -> str:
    return own_origin(s.way) if party is s.outside else AGENT_ORIGIN


def no_codec_allowed_here(origin: str, version: int) -> bytes:
    """An answer in G.729 alone, which callherald refuses for the offerer with 488."""
    user, sess_id, address = origin.split()
    return sdp(
        "v=0",
        f"o={user} {sess_id} {version} IN IP4 {address}",
        "s=-",
        f"c=IN IP4 {address}",
        "t=0 0",
        "m=audio 40000 RTP/AVP 18",
        "a=rtpmap:18 G729/8000",
        "a=sendrecv",
    )


def offer_accepted(s: Scene, sender: FakeUa, direction: str, version: int) -> list[Effect]:
    """``sender``'s re-INVITE in ``direction``, answered by the other party and ACKed; the effects."""
    other = s.agent if sender is s.outside else s.outside
    before = len(s.h.effects)
    sender.send(sender.request("INVITE", body=party_sdp(party_origin(s, sender), version, direction)))
    answered = {"a=sendonly": "a=recvonly"}.get(direction, direction)
    other.reply(other.last_request("INVITE"), 200, body=party_sdp(party_origin(s, other), version, answered))
    sender.send(sender.ack_2xx(sender.last_response("INVITE", 200)))
    return s.h.effects[before:]


def offer_refused(
    s: Scene, sender: FakeUa, method: str, direction: str, version: int, refusal: str
) -> tuple[list[Effect], list[Effect]]:
    """``sender``'s re-INVITE or UPDATE in ``direction`` (SDP version ``version``), refused: by
    the other party's non-2xx, by callherald's 488 for an answer with no codec allowed here (the
    other party, offered the session as it was again, takes it), or by no answer at all (408 to
    an UPDATE). The effects of the offer, and of its refusal."""
    other = s.agent if sender is s.outside else s.outside
    body = party_sdp(party_origin(s, sender), version, direction)
    offered = sender.send(sender.request(method, body=body))
    relayed = other.last_request(method)
    if refusal == "no-answer":
        refused = s.h.advance(32.0)  # Timer F
    elif refusal == "no-codec-in-answer":
        refused = other.reply(relayed, 200, body=no_codec_allowed_here(party_origin(s, other), version))
        again = party_sdp(party_origin(s, other), version + 1, "a=sendrecv")
        other.reply(other.last_request("INVITE"), 200, body=again)
    else:
        refused = other.reply(relayed, int(refusal))
    status = {"no-codec-in-answer": "488", "no-answer": "408"}.get(refusal, refusal)
    assert sender.statuses(method)[-1] == int(status)
    return offered, refused


REFUSED_OFFERS = [
    pytest.param(method, refusal, id=f"{method}-{refusal}")
    for method in ("INVITE", "UPDATE")
    for refusal in REFUSALS
    if (method, refusal) != ("INVITE", "no-answer")  # that ends the call (RFC 3261 §14.1)
]


@WAYS
@pytest.mark.parametrize("sender", ["outside", "agent"])
@pytest.mark.parametrize(("method", "refusal"), REFUSED_OFFERS)
def test_a_refused_hold_ends_the_pause_it_began_at_the_refusal(
    way: Way, sender: str, method: str, refusal: str
) -> None:
    # Privacy first: the recording pauses as the hold is offered (music on hold may start at
    # once). Refused, the call was never held (RFC 3261 §14.2): the pause ends at the refusal.
    s = Scene(way)
    s.connect("1")
    party = s.outside if sender == "outside" else s.agent
    offered, refused = offer_refused(s, party, method, "a=sendonly", 2, refusal)

    assert of(offered, PauseRecording) == [PauseRecording(call_ref=s.ref, reason="hold")]
    assert [e for e in refused if isinstance(e, RECORDING)] == [
        ResumeRecording(call_ref=s.ref, reason="hold")
    ]
    summary = s.h.b2bua.call_summary(s.ref)
    assert summary is not None
    assert summary.paused == ()
    # The hold is still the party's to make: offered again and accepted, it pauses again.
    held = offer_accepted(s, party, "a=sendonly", 4)
    assert of(held, PauseRecording) == [PauseRecording(call_ref=s.ref, reason="hold")]
    s.hang_up()
    finish(s)


@WAYS
@pytest.mark.parametrize("sender", ["outside", "agent"])
@pytest.mark.parametrize(("method", "refusal"), REFUSED_OFFERS)
def test_a_refused_end_of_a_hold_does_not_resume_the_recording(
    way: Way, sender: str, method: str, refusal: str
) -> None:
    # The party that holds offers sendrecv, which is refused: the call is still held (RFC 3261
    # §14.2), and nothing of it is recorded. Its next offer to end the hold, accepted, resumes.
    s = Scene(way)
    s.connect("1")
    party = s.outside if sender == "outside" else s.agent
    offer_accepted(s, party, "a=sendonly", 2)
    offered, refused = offer_refused(s, party, method, "a=sendrecv", 3, refusal)

    assert [e for e in offered + refused if isinstance(e, RECORDING)] == []
    summary = s.h.b2bua.call_summary(s.ref)
    assert summary is not None
    assert summary.paused == ("hold",)
    resumed = offer_accepted(s, party, "a=sendrecv", 5)
    assert of(resumed, ResumeRecording) == [ResumeRecording(call_ref=s.ref, reason="hold")]
    s.hang_up()
    finish(s)


def test_the_end_of_a_hold_resumes_the_recording_once_it_is_answered() -> None:
    s = Scene(INBOUND)
    s.connect("1")
    agent_redirects(s, "a=sendonly", 2)
    offered = s.agent.send(s.agent.request("INVITE", body=party_sdp(AGENT_ORIGIN, 3, "a=sendrecv")))
    assert of(offered, ResumeRecording) == []

    answer = party_sdp(own_origin(INBOUND), 3, "a=sendrecv")
    answered = s.outside.reply(s.outside.last_request("INVITE"), 200, body=answer)
    assert of(answered, ResumeRecording) == [ResumeRecording(call_ref=s.ref, reason="hold")]
    s.agent.send(s.agent.ack_2xx(s.agent.last_response("INVITE", 200)))
    s.hang_up()
    finish(s)


@pytest.mark.parametrize("refusal", ["488", "no-codec-in-answer"])
def test_a_hold_refused_during_the_notice_plays_it_again_from_the_start(refusal: str) -> None:
    # The hold cut the notice short as it was offered; refused, the party was never held and
    # hears the notice whole before anything is asked or recorded.
    s = Scene(OUTBOUND)
    s.notice_playing()
    s.h.advance(1.5)
    offered, refused = offer_refused(s, s.outside, "INVITE", "a=sendonly", 2, refusal)

    cut = AnnouncementEnded(prompt_id="notice", at=s.h.now, complete=False)
    assert Evidence(call_ref=s.ref, leg=OUTBOUND.outside_leg, event=cut) in offered
    assert announcing(refused) == notice_again(s.ref, OUTBOUND, at=s.h.now)
    s.notice_heard()
    s.question_heard()
    s.press("1")
    assert of(s.h.effects, StartRecording)[-1].purposes == ("quality", "training")
    s.hang_up()
    finish(s)


@pytest.mark.parametrize("refused", ["srtp", "no-codec-allowed-here", "not-the-notice-codec"])
def test_a_hold_callherald_refuses_as_it_comes_changes_nothing(refused: str) -> None:
    # callherald's own 488 (with a Warning) comes before the offer is relayed: the relay, the
    # notice and the recording go on as they were (RFC 3261 §14.2).
    s = Scene(OUTBOUND)
    if refused == "not-the-notice-codec":
        s.notice_playing()
    else:
        s.connect("1")
    held = party_sdp(own_origin(OUTBOUND), 2, "a=sendonly")
    body = {
        "srtp": srtp(held, "RTP/SAVP"),
        "no-codec-allowed-here": no_codec_allowed_here(own_origin(OUTBOUND), 2).replace(
            b"a=sendrecv", b"a=sendonly"
        ),
        "not-the-notice-codec": pcma_only(held),
    }[refused]
    offered = s.outside.send(s.outside.request("INVITE", body=body))

    assert s.outside.last_response("INVITE").status == 488
    assert of(offered, SetMediaRemote) == []
    assert [e for e in offered if isinstance(e, (*RECORDING, *ANNOUNCER_EFFECTS))] == []
    assert [e for e in of(offered, LogEvent) if e.text.startswith("hold from")] == []
    s.hang_up()
    finish(s)
