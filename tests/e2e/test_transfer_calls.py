"""Call transfer by REFER (RFC 3515) through a real ``callherald serve``, SIPp over UDP on 127.0.0.1.

An outbound call: a SIPp UAC on the PBX side calls out; the carrier side is one SIPp UAS process
(``transfer_uas_refer.xml``, two calls). On its first call it answers, then transfers the call
with REFER to ``sip:transfer-target@<its own address>``. callherald calls the target along that
dialog, i.e. to the transferor's Contact (no outbound proxy is configured), so the same SIPp
process receives the target's INVITE as its second call, tells it by its Referred-By, rings and
answers. The UAC hangs up at the end; its BYE must reach the target.

The message traces show what the carrier side received: 202, NOTIFY 100 / 180 / 200 (sipfrag),
the BYE that retires the transferor's dialog, and the target's INVITE with callherald's SDP (the
transferor's RTP port). Every SIPp process has a time limit and is stopped by its PID.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TypedDict

import pytest

from tests.e2e.announce_support import evidence_records, policy_yaml, write_prompt_wavs
from tests.e2e.harness import UNRECORDED_POLICIES, CallheraldProcess, running_callherald, sipp_available
from tests.e2e.media_peer import MediaPeer, tone_payloads
from tests.e2e.test_recording_pauses import recorded_calls
from tests.e2e.test_sipp_calls import (
    OUTBOUND_NUMBER,
    SippRun,
    TracedMessage,
    assert_ok,
    run_caller,
    sipp_keys,
    start_callee,
)

pytestmark = pytest.mark.e2e
requires_sipp = pytest.mark.skipif(not sipp_available(), reason="SIPp (sip-tester) is not installed")

TRANSFEROR_SCENARIO = "transfer_uas_refer.xml"
TARGET_USER = "transfer-target"


# Unrecorded: REFER soon after the answer. Recorded: only once the notice, the question and its
# 1 s answer window are over (about 2.2 s), since callherald refuses a REFER during the notice.
class Timing(TypedDict):
    refer_after_ms: int
    call_ms: int


SIGNALLING_ONLY = Timing(refer_after_ms=500, call_ms=3000)
RECORDED = Timing(refer_after_ms=4000, call_ms=9500)
_M_LINE = re.compile(r"^m=audio (\d+) ", re.MULTILINE)
_C_LINE = re.compile(r"^c=IN IP4 (\S+)", re.MULTILINE)


def transfer_call(
    proxy: CallheraldProcess,
    workdir: Path,
    *,
    refer_after_ms: int,
    call_ms: int,
    rtp_sink: int,
    transferor: str = TRANSFEROR_SCENARIO,
    caller: str = "uac_call.xml",
) -> tuple[SippRun, SippRun]:
    """The PBX UAC calls out; the carrier UAS transfers after ``refer_after_ms``; the UAC hangs up
    after ``call_ms``. Both runs are returned."""
    workdir.mkdir(parents=True, exist_ok=True)
    uas_keys = sipp_keys(rtp_port=rtp_sink)
    uac_keys = sipp_keys(rtp_port=rtp_sink, portfile=workdir / "caller.sdp")
    with start_callee(
        transferor, proxy.carrier_target_port, workdir, uas_keys, calls=2, pause_ms=refer_after_ms
    ) as uas:
        uac = run_caller(
            caller,
            proxy.pbx_port,
            workdir,
            uac_keys,
            number=OUTBOUND_NUMBER,
            pause_ms=call_ms,
            timeout_s=call_ms / 1000 + 15,
        )
        return uac, uas.finish(timeout_s=10)


def body_of(message: TracedMessage) -> str:
    return message.text.split("\n\n", 1)[1] if "\n\n" in message.text else ""


def received(run: SippRun, first_line: str) -> list[TracedMessage]:
    """The messages ``run`` received whose first line starts with ``first_line``."""
    return [m for m in run.messages if not m.sent and m.first_line.startswith(first_line)]


def media_port(message: TracedMessage) -> int:
    match = _M_LINE.search(body_of(message))
    assert match is not None, message.text
    return int(match[1])


def check_transfer_signalling(proxy: CallheraldProcess, uas: SippRun) -> None:
    """What the carrier side received of the transfer, in order, and where the target's INVITE went."""
    messages = [m for m in uas.messages if not m.sent]
    invites = received(uas, "INVITE ")
    assert len(invites) == 2, [m.first_line for m in messages]
    original, to_target = invites
    transferor_call = original.header("call-id")
    target_call = to_target.header("call-id")
    assert transferor_call != target_call
    # The target's INVITE came to the transferor's Contact: this very process, as a second call.
    assert to_target.first_line == (f"INVITE sip:{TARGET_USER}@127.0.0.1:{proxy.carrier_target_port} SIP/2.0")
    assert to_target.header("referred-by") == f"<sip:callee@127.0.0.1:{proxy.carrier_target_port}>"
    assert original.header("referred-by") is None
    # callherald's SDP, anchored on the transferor's RTP port.
    connection = _C_LINE.search(body_of(to_target))
    assert connection is not None
    assert connection[1] == "127.0.0.1"
    port = media_port(to_target)
    assert port == media_port(original)
    assert proxy.rtp_min <= port <= proxy.rtp_max

    accepted = [m for m in received(uas, "SIP/2.0 202") if (m.header("cseq") or "").endswith("REFER")]
    assert len(accepted) == 1
    notifies = [m for m in received(uas, "NOTIFY ") if m.header("call-id") == transferor_call]
    assert [body_of(m).strip() for m in notifies] == [
        "SIP/2.0 100 Trying",
        "SIP/2.0 180 Ringing",
        "SIP/2.0 200 OK",
    ]
    assert {m.header("event") for m in notifies} == {"refer;id=1"}
    assert [(m.header("subscription-state") or "").split(";")[0] for m in notifies] == [
        "active",
        "active",
        "terminated",
    ]
    byes = received(uas, "BYE ")
    assert [m.header("call-id") for m in byes] == [transferor_call, target_call]
    order = [(m.first_line.split()[0], m.header("call-id")) for m in messages]
    assert order.index(("NOTIFY", transferor_call)) < order.index(("INVITE", target_call))
    assert order.index(("BYE", transferor_call)) > order.index(("ACK", target_call))
    log = proxy.log_text()
    assert "transfer on leg b answered" in log
    assert "call ended: bye-from-a" in log


@requires_sipp
@pytest.mark.timeout(60)
def test_carrier_transfers_an_outbound_call_unrecorded(tmp_path: Path) -> None:
    with (
        running_callherald(tmp_path, policies=UNRECORDED_POLICIES) as proxy,
        MediaPeer("sink", ssrc=0x33330003, payloads=tone_payloads(440.0, 1)) as sink,
    ):
        uac, uas = transfer_call(proxy, tmp_path, rtp_sink=sink.port, **SIGNALLING_ONLY)
        assert_ok(proxy, uac, uas)
        check_transfer_signalling(proxy, uas)
        records = evidence_records(proxy.log_text())
    assert {record["event"] for record in records} == {"call_started", "call_ended"}  # nothing announced


@requires_sipp
@pytest.mark.timeout(90)
def test_transferred_outside_party_hears_the_notice_before_recording_resumes(tmp_path: Path) -> None:
    write_prompt_wavs(tmp_path)
    with (
        running_callherald(tmp_path, policies=policy_yaml()) as proxy,
        MediaPeer("sink", ssrc=0x33330003, payloads=tone_payloads(440.0, 1)) as sink,
    ):
        uac, uas = transfer_call(proxy, tmp_path, rtp_sink=sink.port, **RECORDED)
        assert_ok(proxy, uac, uas)
        check_transfer_signalling(proxy, uas)
        log = proxy.log_text()
    records = evidence_records(log)
    events = [str(record["event"]) for record in records]
    changed = events.index("party_changed")
    party = records[changed]
    assert party["reason"] == "transfer"
    assert party["leg"] == "b"  # outbound: the outside party is on the carrier leg
    # The first party: notice, consent, recording; stopped for the transfer before the change.
    assert events.index("announcement_started") < events.index("recording_started") < changed
    stopped = [r for r in records[:changed] if r["event"] == "recording_stopped"]
    assert [r["reason"] for r in stopped] == ["transfer"]
    # The new party: the notice again, its own consent, and only then recording again.
    after = events[changed + 1 :]
    notices = [
        r
        for r in records[changed + 1 :]
        if r["event"] == "announcement_started" and r["prompt_id"] == "test-notice"
    ]
    assert len(notices) == 1
    assert after.index("announcement_started") < after.index("announcement_ended")
    assert after.index("consent_finished") < after.index("recording_started")
    assert events.count("recording_started") == 2
    ended_notice = [
        r
        for r in records[changed + 1 :]
        if r["event"] == "announcement_ended" and r["prompt_id"] == "test-notice"
    ]
    assert [r["complete"] for r in ended_notice] == [True]


@requires_sipp
@pytest.mark.timeout(90)
def test_a_party_that_holds_then_transfers_leaves_no_hold_behind(tmp_path: Path) -> None:
    # RFC 5589 §6: the carrier side holds the call, then transfers it. The target is offered the
    # call off hold, the PBX side is taken off hold once the target answers, and the recording of
    # the new party is not paused.
    write_prompt_wavs(tmp_path)
    with (
        running_callherald(tmp_path, policies=policy_yaml()) as proxy,
        MediaPeer("sink", ssrc=0x33330003, payloads=tone_payloads(440.0, 1)) as sink,
    ):
        uac, uas = transfer_call(
            proxy,
            tmp_path,
            rtp_sink=sink.port,
            refer_after_ms=RECORDED["refer_after_ms"],
            call_ms=5000,
            transferor="transfer_uas_hold_refer.xml",
            caller="transfer_uac_held.xml",
        )
        assert_ok(proxy, uac, uas)  # the PBX side saw the hold, then the resume (checked there)
        log = proxy.log_text()
    _, to_target = received(uas, "INVITE ")
    assert "a=sendrecv" in body_of(to_target)
    assert "a=recvonly" not in body_of(to_target)
    assert "taking leg a off hold after the transfer" in log
    events = [str(record["event"]) for record in evidence_records(log)]
    changed = events.index("party_changed")
    after = events[changed + 1 :]
    assert after.count("recording_started") == 1
    assert "recording_paused" not in after[after.index("recording_started") :]
    assert "Traceback" not in log


@requires_sipp
@pytest.mark.timeout(90)
def test_a_refresh_asserting_the_same_identity_otherwise_is_no_new_party(tmp_path: Path) -> None:
    # RFC 3325 §9.1: the asserted identity is its URI. A carrier's session refresh that adds a
    # display name and a tel URI beside the sip URI, and writes the host in capitals (RFC 3261
    # §19.1.4), asserts the same party: no notice again, one recording to the end of the call.
    (recorded,) = recorded_calls(
        tmp_path,
        caller="recording_uac_refresh_identity.xml",
        callee="more_uas_reinvite.xml",
        pause_ms=200,
    )
    records = evidence_records(recorded.log)
    events = [str(record["event"]) for record in records]
    assert "party_changed" not in events
    assert [r["reason"] for r in records if r["event"] == "recording_stopped"] != ["new-party"]
    assert recorded.record.end_reason != "new-party"
    notices = [r for r in records if r["event"] == "announcement_started" and r["prompt_id"] == "test-notice"]
    assert len(notices) == 1
    # The refresh did reach the PBX (the callee wrote the re-INVITE's lines).
    assert len((tmp_path / "callee.txt").read_text().strip().split("|")) == 4
