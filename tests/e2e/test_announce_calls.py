"""The recording notice and consent on real calls: SIPp callers and callees through
``callherald serve`` over UDP on 127.0.0.1, media from test-owned RTP peers.

Each test plays short generated prompts (a rising sweep as the notice, a falling one as the
question) and compares what the outside party's RTP peer received with the prompt's own frames,
imported the same way callherald imports them: the whole notice must arrive, in order, before any
packet of the other party. The evidence callherald logs (one JSON object per line) must show the
notice, the consent decision and the recording start in that order.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from proxy.rtp.packet import RtpPacket
from proxy.rtp.seqnum import seq_diff, ts_diff
from tests.e2e.announce_support import (
    NOTICE_S,
    ToneCall,
    agent_beep,
    call_with_tones,
    evidence_records,
    find_run,
    payloads_of,
    policy_yaml,
    prepared,
    write_prompt_wavs,
)
from tests.e2e.harness import sipp_available
from tests.e2e.media_peer import SAMPLES_PER_PACKET, tone_payloads
from tests.e2e.test_sipp_calls import Direction

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
    caller_tone, callee_tone = tone_payloads(1000.0, TONE_PACKETS), tone_payloads(440.0, TONE_PACKETS)
    call = call_with_tones(
        tmp_path,
        direction,
        caller_payloads=caller_tone,
        callee_payloads=callee_tone,
        policies=policy_yaml(),
        pause_ms=CALL_MS,
    )
    caller, callee, log = call.caller, call.callee, call.log
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
@pytest.mark.parametrize("constant_ssrc", [True, False], ids=["constant-ssrc", "ssrc-changes"])
def test_after_the_prompts_the_agent_is_heard_in_callheralds_stream_or_as_sent(
    tmp_path: Path, constant_ssrc: bool
) -> None:
    """``media.constant_ssrc``: true, the outside party hears the agent in the stream that carried
    the notice (one SSRC, no sequence jump): the agent's own, the notice having ridden in its
    packets, or callherald's, the agent renumbered into it, had they not come in time; false, it
    hears the agent's packets exactly as the agent's phone sent them (a new SSRC, RFC 3550 §8.2)."""
    notice_wav, _ = write_prompt_wavs(tmp_path)
    notice = prepared(notice_wav, "test-notice", tmp_path / "expected-cache").frames_for("pcmu")
    agent_tone = tone_payloads(440.0, TONE_PACKETS)
    call = call_with_tones(
        tmp_path,
        Direction.OUTBOUND,  # the PBX's agent calls out: the carrier's callee is the outside party
        caller_payloads=agent_tone,
        callee_payloads=tone_payloads(1000.0, TONE_PACKETS),
        policies=policy_yaml(),
        pause_ms=CALL_MS,
        media_section_extra=f"  constant_ssrc: {str(constant_ssrc).lower()}\n",
    )
    heard = [RtpPacket.parse(datagram.data) for datagram in call.callee.received]
    notice_at = find_run([packet.payload for packet in heard], notice)
    assert notice_at >= 0, f"the whole notice did not arrive in order\n{call.log[-3000:]}"
    callheralds_ssrc = heard[notice_at].ssrc
    agent_at = [index for index, packet in enumerate(heard) if packet.payload in set(agent_tone)]
    assert len(agent_at) >= 50, "the parties were never joined"  # a second of the agent at least
    own = heard[notice_at : agent_at[0]]  # notice, question and answer window: all callherald's
    assert {packet.ssrc for packet in own} == {callheralds_ssrc}
    agent_heard = [heard[index] for index in agent_at]
    if constant_ssrc:
        assert {packet.ssrc for packet in agent_heard} == {callheralds_ssrc}
        assert seq_diff(agent_heard[0].sequence, own[-1].sequence) == 1
        assert ts_diff(agent_heard[0].timestamp, own[-1].timestamp) > 0
    else:
        as_sent = {call.caller.packet(index) for index in range(TONE_PACKETS)}
        assert all(call.callee.received[index].data in as_sent for index in agent_at)
        assert {packet.ssrc for packet in agent_heard} == {call.caller.ssrc} != {callheralds_ssrc}


@dataclass(frozen=True)
class SenderReport:
    ssrc: int
    rtp_timestamp: int
    block_about: int | None  # the first report block's source, and its extended highest sequence
    block_highest: int | None


def sender_report(data: bytes) -> SenderReport:
    first, packet_type, _, ssrc = struct.unpack_from("!BBHI", data)
    assert packet_type == 200, data.hex()
    (rtp_timestamp,) = struct.unpack_from("!I", data, 16)
    if first & 0x1F == 0:
        return SenderReport(ssrc, rtp_timestamp, None, None)
    about, _, highest = struct.unpack_from("!III", data, 28)
    return SenderReport(ssrc, rtp_timestamp, about, highest)


@requires_sipp
@pytest.mark.timeout(60)
def test_rtcp_between_the_parties_names_the_streams_each_one_hears(tmp_path: Path) -> None:
    """RFC 3550 §7.2: after the notice (to the caller, in callherald's own packets: the agent is
    not called yet) the caller hears the agent in callherald's stream; the beep rode in the
    caller's own packets to the agent, who hears the caller's stream as sent. The other party's
    sender reports must name the stream each party hears, with RTP timestamps in its timeline, and
    their report blocks the receiver's own stream in its own numbering, from the first report on;
    RTCP on the port above RTP, both ways."""
    write_prompt_wavs(tmp_path)
    call = call_with_tones(
        tmp_path,
        Direction.INBOUND,
        caller_payloads=tone_payloads(1000.0, TONE_PACKETS),
        callee_payloads=tone_payloads(440.0, TONE_PACKETS),
        policies=policy_yaml(),
        pause_ms=CALL_MS,
        rtcp_every=25,  # a report every half second
    )
    for sender, receiver, renumbered in ((call.caller, call.callee, False), (call.callee, call.caller, True)):
        index_of = {payload: index for index, payload in enumerate(sender.payloads)}
        heard = [RtpPacket.parse(datagram.data) for datagram in receiver.received]
        relayed = [(index_of[packet.payload], packet) for packet in heard if packet.payload in index_of]
        assert len(relayed) >= 50, f"the parties were never joined\n{call.log[-3000:]}"
        last_index, last = relayed[-1]
        assert (last.ssrc != sender.ssrc) is renumbered, sender.name  # into callherald's stream
        shift = ts_diff(last.timestamp, sender.first_timestamp + last_index * SAMPLES_PER_PACKET)
        reports = [sender_report(datagram.data) for datagram in receiver.rtcp_received]
        assert reports, sender.name
        translated = [report for report in reports if report.ssrc == last.ssrc]
        assert reports[-1] in translated, (sender.name, [hex(report.ssrc) for report in reports])
        # Never the sender's own SSRC, which the receiver does not hear: not during the prompts,
        # nor before the relay takes the renumbering over.
        assert translated == reports, (sender.name, [hex(report.ssrc) for report in reports])
        sent_at = {sender_report(report).rtp_timestamp for report in sender.rtcp_sent}
        assert {(report.rtp_timestamp - shift) & 0xFFFFFFFF for report in translated} <= sent_at
        own_sequences = {(receiver.first_sequence + index) & 0xFFFF for index in range(receiver.sent)}
        assert reports[-1].block_about == receiver.ssrc, sender.name
        assert reports[-1].block_highest is not None
        assert reports[-1].block_highest & 0xFFFF in own_sequences, sender.name


def _inbound_tone_call(
    tmp_path: Path,
    *,
    caller: str,
    scenario_keys: dict[str, object] | None = None,
    caller_silent_for_s: float = 0.0,
) -> tuple[ToneCall, Sequence[bytes]]:
    """An inbound call from the ``caller`` scenario, 1000 Hz against 440 Hz, with the test
    prompts; returns it and the notice's PCMU frames."""
    notice_wav, _ = write_prompt_wavs(tmp_path)
    notice = prepared(notice_wav, "test-notice", tmp_path / "expected-cache").frames_for("pcmu")
    call = call_with_tones(
        tmp_path,
        Direction.INBOUND,
        caller_payloads=tone_payloads(1000.0, TONE_PACKETS),
        callee_payloads=tone_payloads(440.0, TONE_PACKETS),
        policies=policy_yaml(),
        pause_ms=CALL_MS,
        caller=caller,
        scenario_keys=scenario_keys,
        caller_silent_for_s=caller_silent_for_s,
    )
    return call, notice


@requires_sipp
@pytest.mark.timeout(60)
def test_a_late_offer_caller_hears_the_whole_notice_after_its_ack(tmp_path: Path) -> None:
    """The INVITE has no SDP: callherald offers in its 200, the ACK answers, then the notice plays."""
    call, notice = _inbound_tone_call(tmp_path, caller="consent_uac_late_offer.xml")
    assert find_run(payloads_of(call.caller.received), notice) >= 0, call.log[-3000:]
    events = _events(evidence_records(call.log))
    assert (
        events.index("announcement_ended")
        < events.index("consent_finished")
        < events.index("recording_started")
    )


@requires_sipp
@pytest.mark.timeout(60)
def test_a_caller_whose_offer_comes_beside_isup_is_announced_and_recorded(tmp_path: Path) -> None:
    """SIP-I: the INVITE's body is multipart/mixed, SDP and an optional ISUP part (RFC 5621). The
    SDP part is the offer; the PBX gets that alone; the call runs as any other."""
    call, notice = _inbound_tone_call(tmp_path, caller="uac_call_sip_i.xml")
    assert find_run(payloads_of(call.caller.received), notice) == 0, call.log[-3000:]
    assert "Traceback" not in call.log
    assert "refused a call" not in call.log
    events = _events(evidence_records(call.log))
    assert events.index("announcement_ended") < events.index("recording_started")


@requires_sipp
@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("family", "address"),
    [("IP6", "::1"), ("IP4", "media.carrier.example")],
    ids=["ipv6-address", "host-name"],
)
def test_a_caller_whose_sdp_address_cannot_be_used_hears_the_notice_from_its_first_packet(
    tmp_path: Path, family: str, address: str
) -> None:
    """callherald's RTP is IPv4 and resolves no names: the caller's SDP address is not used, and
    the notice waits for its RTP to latch the leg (RFC 4961), half a second after the answer here,
    then plays whole (a phone that guesses its address, as linphone does, offers one like this)."""
    call, notice = _inbound_tone_call(
        tmp_path,
        caller="uac_call_media_address.xml",
        scenario_keys={"media_family": family, "media_address": address},
        caller_silent_for_s=0.5,
    )
    heard = payloads_of(call.caller.received)
    assert find_run(heard, notice) == 0, call.log[-3000:]
    assert f"the SDP media address {address} is not an IPv4 address" in call.log
    assert "Traceback" not in call.log
    records = evidence_records(call.log)
    ended = next(r for r in records if r["event"] == "announcement_ended" and r["prompt_id"] == "test-notice")
    assert ended["complete"] is True
    events = _events(records)
    assert "notice_failed" not in events
    assert events.index("announcement_ended") < events.index("recording_started")


@requires_sipp
@pytest.mark.timeout(60)
def test_a_caller_that_asks_for_30_ms_packets_hears_the_notice_in_them(tmp_path: Path) -> None:
    """a=ptime:30 (RFC 4566 §6): the notice reaches the caller as 240-byte PCMU packets, 30 ms
    apart, their timestamps 240 apart, the last one filled with silence (RFC 3551 §4.5); the
    other party's audio follows in the same stream."""
    call, notice = _inbound_tone_call(tmp_path, caller="uac_call_ptime.xml", scenario_keys={"ptime": 30})
    heard = [(datagram.at, RtpPacket.parse(datagram.data)) for datagram in call.caller.received]
    audio = b"".join(notice)
    count = -(-len(audio) // 240)
    played = [packet for _, packet in heard[:count]]
    fill = count * 240 - len(audio)
    assert b"".join(packet.payload for packet in played) == audio + b"\xff" * fill, call.log[-3000:]
    assert [len(packet.payload) for packet in played] == [240] * count
    first = played[0]
    assert [ts_diff(packet.timestamp, first.timestamp) for packet in played] == [
        240 * i for i in range(count)
    ]
    assert [seq_diff(packet.sequence, first.sequence) for packet in played] == list(range(count))
    gaps_ms = sorted((b[0] - a[0]) * 1000 for a, b in itertools.pairwise(heard[:count]))
    assert 25 <= gaps_ms[len(gaps_ms) // 2] <= 35, gaps_ms
    assert (heard[count - 1][0] - heard[0][0]) * 1000 >= (count - 1) * 30 - 20
    assert {packet.ssrc for _, packet in heard} == {first.ssrc}  # one stream all call long
    events = _events(evidence_records(call.log))
    assert events.index("announcement_ended") < events.index("recording_started")


@requires_sipp
@pytest.mark.timeout(60)
def test_a_callee_answering_only_in_its_183_is_announced_and_recorded(tmp_path: Path) -> None:
    """Outbound, the carrier sends its SDP answer in a 183 (early media) and the 200 without one:
    that answer is the session's, so the notice plays to the callee, the call is recorded, and
    the agent gets the answer in callherald's 200 (RFC 3261 §13.2.1)."""
    notice_wav, _ = write_prompt_wavs(tmp_path)
    notice = prepared(notice_wav, "test-notice", tmp_path / "expected-cache").frames_for("pcmu")
    call = call_with_tones(
        tmp_path,
        Direction.OUTBOUND,
        caller_payloads=tone_payloads(440.0, TONE_PACKETS),
        callee_payloads=tone_payloads(1000.0, TONE_PACKETS),
        policies=policy_yaml(),
        pause_ms=CALL_MS,
        callee="uas_answer_in_183.xml",
    )
    assert find_run(payloads_of(call.callee.received), notice) >= 0, call.log[-3000:]
    records = evidence_records(call.log)
    events = _events(records)
    assert "notice_failed" not in events
    ended = next(r for r in records if r["event"] == "announcement_ended" and r["prompt_id"] == "test-notice")
    assert ended["complete"] is True
    assert events.index("announcement_ended") < events.index("recording_started")
