"""An inbound INVITE without SDP (late offer): callherald offers in its 200, the caller answers in
its ACK (RFC 3261 §13.2.1), and only then the notice plays; the PBX is offered the answered codec.
"""

from __future__ import annotations

import dataclasses

import pytest

from proxy.b2bua.announcer import NOTICE_LEAD_IN_MS
from proxy.b2bua.consent import NoticeFailed
from proxy.b2bua.effects import Evidence, LogEvent, MediaFormat, MediaLeg, PlayPrompt, SetMediaRemote
from proxy.b2bua.policy import AnnouncementMode
from tests.proxy.b2bua.harness import CARRIER, PBX, sdp, sdp_without_origin, sip_summary
from tests.proxy.b2bua.test_announce import (
    A_PORT,
    B_PORT,
    POLICY,
    Scene,
    announcing,
    audio_lines,
    finish,
    of,
)

OFFER_TO_CALLER = [
    "v=0",
    "s=callherald",
    "c=IN IP4 127.0.0.1",
    "t=0 0",
    f"m=audio {A_PORT} RTP/AVP 0 8 9 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:9 G722/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=ptime:20",
    "a=sendrecv",
]


def caller_answer(payload_type: int, encoding: str) -> bytes:
    return sdp(
        "v=0",
        "o=caller 1001 1 IN IP4 127.0.0.2",
        "s=call",
        "c=IN IP4 127.0.0.2",
        "t=0 0",
        f"m=audio 40000 RTP/AVP {payload_type} 101",
        f"a=rtpmap:{payload_type} {encoding}/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=sendrecv",
    )


@pytest.mark.parametrize("mode", list(AnnouncementMode))
@pytest.mark.parametrize(
    ("payload_type", "encoding", "codec"), [(8, "PCMA", "pcma"), (0, "PCMU", "pcmu"), (9, "G722", "g722")]
)
def test_late_offer_caller_hears_the_notice_after_answering_in_its_ack(
    mode: AnnouncementMode, payload_type: int, encoding: str, codec: str
) -> None:
    s = Scene(policy=dataclasses.replace(POLICY, mode=mode))
    effects = s.dial(body=b"")
    assert sip_summary(effects) == [(CARRIER, "100 INVITE"), (CARRIER, "200 INVITE")]
    offer = s.caller.last_response("INVITE", 200)
    assert sdp_without_origin(offer.body) == OFFER_TO_CALLER
    assert of(effects, PlayPrompt) == []
    assert s.callee.inbox() == []

    effects = s.caller.ack_answer(body=caller_answer(payload_type, encoding))
    media = MediaFormat(codec=codec, payload_type=payload_type, event_payload_type=101)
    assert SetMediaRemote(call_ref=s.ref, leg=MediaLeg.A, remote=("127.0.0.2", 40000)) in effects
    assert PlayPrompt(
        call_ref=s.ref,
        leg=MediaLeg.A,
        prompt_id="notice",
        language="de",
        media=media,
        lead_in_ms=NOTICE_LEAD_IN_MS,
    ) in announcing(effects)

    s.notice_heard()
    s.question_heard()
    s.decide("1")
    invite = s.callee.take_invite()
    assert audio_lines(invite.body)[0] == f"m=audio {B_PORT} RTP/AVP {payload_type} 101"
    s.callee.ring()
    s.callee_answers()
    assert s.caller.statuses() == [100, 200]  # no second final response
    s.hang_up()
    finish(s)


def test_late_offer_without_an_answer_in_the_ack_hangs_up_unannounced() -> None:
    s = Scene()
    s.dial(body=b"")
    effects = s.caller.ack_answer(body=b"")
    assert sip_summary(effects) == [(CARRIER, "BYE")]
    failed = [e.event for e in of(effects, Evidence) if isinstance(e.event, NoticeFailed)]
    assert [event.reason for event in failed] == ["no SDP answer in the ACK"]
    (warning,) = [e.text for e in of(effects, LogEvent) if e.level == "warning"]
    assert warning.endswith("(no SDP answer in the ACK): call ended")  # not "connects unrecorded"
    assert s.callee.inbox() == []
    assert all(destination != PBX for destination, _ in sip_summary(s.h.effects))
    finish(s)
