"""The recording notice and consent on real calls: SIPp callers and callees through
``callherald serve`` over UDP on 127.0.0.1, media from test-owned RTP peers.

Each test plays short generated prompts (a rising sweep as the notice, a falling one as the
question) and compares what the outside party's RTP peer received with the prompt's own frames,
imported the same way callherald imports them: the whole notice must arrive, in order, before any
packet of the other party. The evidence callherald logs (one JSON object per line) must show the
notice, the consent decision and the recording start in that order.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.announce_support import (
    NOTICE_S,
    agent_beep,
    evidence_records,
    find_run,
    payloads_of,
    policy_yaml,
    prepared,
    write_prompt_wavs,
)
from tests.e2e.harness import running_callherald, sipp_available
from tests.e2e.media_peer import MediaPeer, tone_payloads
from tests.e2e.test_sipp_calls import Direction, assert_ok, place_call

pytestmark = pytest.mark.e2e
requires_sipp = pytest.mark.skipif(not sipp_available(), reason="SIPp (sip-tester) is not installed")

CALL_MS = 5000
TONE_PACKETS = 300


def _events(records: list[dict[str, object]]) -> list[str]:
    return [str(record["event"]) for record in records]


@requires_sipp
@pytest.mark.timeout(60)
@pytest.mark.parametrize("direction", list(Direction))
def test_outside_party_hears_the_whole_notice_before_the_other_party(
    tmp_path: Path, direction: Direction
) -> None:
    notice_wav, question_wav = write_prompt_wavs(tmp_path)
    cache = tmp_path / "expected-cache"
    notice = prepared(notice_wav, "test-notice", cache).frames_for("pcmu")
    question = prepared(question_wav, "test-question", cache).frames_for("pcmu")
    caller_sdp, callee_sdp = tmp_path / "caller.sdp", tmp_path / "callee.sdp"
    caller_tone, callee_tone = tone_payloads(1000.0, TONE_PACKETS), tone_payloads(440.0, TONE_PACKETS)
    with (
        running_callherald(tmp_path, policies=policy_yaml()) as proxy,
        MediaPeer("caller", ssrc=0x11110001, payloads=caller_tone) as caller,
        MediaPeer("callee", ssrc=0x22220002, payloads=callee_tone) as callee,
    ):
        caller.start(caller_sdp)
        callee.start(callee_sdp)
        uac, uas = place_call(
            proxy,
            direction,
            tmp_path,
            pause_ms=CALL_MS,
            caller_keys={"rtp_port": caller.port, "portfile": caller_sdp},
            callee_keys={"rtp_port": callee.port, "portfile": callee_sdp},
        )
        caller.stop()
        callee.stop()
        assert_ok(proxy, uac, uas)
        log = proxy.log_text()
    outside, agent = (caller, callee) if direction is Direction.INBOUND else (callee, caller)
    agent_tone = callee_tone if direction is Direction.INBOUND else caller_tone
    outside_tone = caller_tone if direction is Direction.INBOUND else callee_tone
    heard = payloads_of(outside.received)
    notice_at = find_run(heard, notice)
    question_at = find_run(heard, question)
    assert notice_at >= 0, f"the whole notice did not arrive in order\n{log[-3000:]}"
    assert question_at > notice_at
    agent_audio = [index for index, payload in enumerate(heard) if payload in set(agent_tone)]
    assert agent_audio, "the parties were never joined"
    first_agent = min(agent_audio)
    assert first_agent >= question_at + len(question), "the other party was heard before consent"
    # Nothing of the other party during the answer window (1 s) after the question either.
    question_end = outside.received[question_at + len(question) - 1].at
    assert outside.received[first_agent].at - question_end > 0.9
    # The agent got the beep on the bridge, before any audio of the outside party.
    agent_heard = payloads_of(agent.received)
    beep_at = find_run(agent_heard, agent_beep())
    assert beep_at >= 0
    outside_audio = [index for index, payload in enumerate(agent_heard) if payload in set(outside_tone)]
    assert outside_audio
    if direction is Direction.INBOUND:
        assert beep_at < min(outside_audio)
    else:
        # The agent hears the notice too, then the beep, then the outside party.
        assert 0 <= find_run(agent_heard, notice) < beep_at < min(outside_audio)
    records = evidence_records(log)
    events = _events(records)
    assert events.index("announcement_started") < events.index("announcement_ended")
    assert (
        events.index("consent_decided") < events.index("consent_finished") < events.index("recording_started")
    )
    decided = next(r for r in records if r["event"] == "consent_decided")
    assert decided["decision"] == "no_answer"
    started = next(r for r in records if r["event"] == "recording_started")
    assert started["purposes"] == ["evidence"]
    ended = next(r for r in records if r["event"] == "announcement_ended" and r["prompt_id"] == "test-notice")
    assert ended["complete"] is True
    assert ended["prompt"]["version"] == prepared(notice_wav, "test-notice", cache).version  # type: ignore[index]
    assert NOTICE_S > 0


@requires_sipp
@pytest.mark.timeout(60)
def test_a_late_offer_caller_hears_the_whole_notice_after_its_ack(tmp_path: Path) -> None:
    """The INVITE has no SDP: callherald offers in its 200, the ACK answers, then the notice plays."""
    notice_wav, _ = write_prompt_wavs(tmp_path)
    notice = prepared(notice_wav, "test-notice", tmp_path / "expected-cache").frames_for("pcmu")
    caller_sdp, callee_sdp = tmp_path / "caller.sdp", tmp_path / "callee.sdp"
    with (
        running_callherald(tmp_path, policies=policy_yaml()) as proxy,
        MediaPeer("caller", ssrc=0x11110001, payloads=tone_payloads(1000.0, TONE_PACKETS)) as caller,
        MediaPeer("callee", ssrc=0x22220002, payloads=tone_payloads(440.0, TONE_PACKETS)) as callee,
    ):
        caller.start(caller_sdp)
        callee.start(callee_sdp)
        uac, uas = place_call(
            proxy,
            Direction.INBOUND,
            tmp_path,
            caller="consent_uac_late_offer.xml",
            pause_ms=CALL_MS,
            caller_keys={"rtp_port": caller.port, "portfile": caller_sdp},
            callee_keys={"rtp_port": callee.port, "portfile": callee_sdp},
        )
        caller.stop()
        callee.stop()
        assert_ok(proxy, uac, uas)
        log = proxy.log_text()
    assert find_run(payloads_of(caller.received), notice) >= 0, log[-3000:]
    events = _events(evidence_records(log))
    assert (
        events.index("announcement_ended")
        < events.index("consent_finished")
        < events.index("recording_started")
    )
