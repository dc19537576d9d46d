"""Consent by key press on real calls: SIPp callers through ``callherald serve`` over UDP on
127.0.0.1, the PBX a SIPp UAS that answers.

Every call here is inbound: callherald answers the caller itself, plays the notice (0.8 s) and
the training question (0.4 s, then a 1 s answer window), and calls the PBX only once the caller
has answered or the window has passed. The caller presses keys the ways phones do:

* RFC 4733 telephone-events, replayed by SIPp (``play_pcap_audio``) from its own media port from
  the captures the sip-tester package ships (``dtmf_2833_<key>.pcap``, payload type 101);
* SIP INFO with an ``application/dtmf-relay`` body.

What callherald decided is read from its evidence log (``callherald.evidence``, one JSON object
per line): the decision and how the key was heard, the purposes consented to, what recording
started for which purposes, a withdrawal after the bridge (GDPR Art. 7(3)), and what happens
when the notice cannot be played at all (the policy's ``on_failure``).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.announce_support import (
    NOTICE_S,
    QUESTION_S,
    evidence_records,
    find_run,
    payloads_of,
    policy_yaml,
    prepared,
    write_prompt_wavs,
)
from tests.e2e.harness import CALLHERALD, CallheraldProcess, free_port, running_callherald, sipp_available
from tests.e2e.media_peer import MediaPeer, tone_payloads
from tests.e2e.test_sipp_calls import (
    Direction,
    SippRun,
    assert_ok,
    run_caller,
    sipp_keys,
    start_callee,
)

pytestmark = pytest.mark.e2e
requires_sipp = pytest.mark.skipif(not sipp_available(), reason="SIPp (sip-tester) is not installed")

# The RFC 4733 captures of the sip-tester package: one 140 ms press each, payload type 101.
DTMF_CAPTURES = Path("/usr/share/sip-tester")
KEY_CAPTURES = {"1": "dtmf_2833_1.pcap", "2": "dtmf_2833_2.pcap", "*": "dtmf_2833_star.pcap"}
requires_key_captures = pytest.mark.skipif(
    not all((DTMF_CAPTURES / name).is_file() for name in KEY_CAPTURES.values()),
    reason="the sip-tester RFC 4733 captures (dtmf_2833_*.pcap) are not installed",
)

ANSWER_WINDOW_S = 1.0  # policy_yaml's timeout_s
# Times after the caller's ACK (callherald starts the notice as it sends the 200).
DURING_NOTICE_MS = 300  # the 140 ms press ends well before the 0.8 s notice does
DURING_QUESTION_MS = 1000  # the press ends during the question (0.8 s to 1.2 s)
HANG_UP_MS = 3200  # past the end of the answer window (2.2 s) and the bridge
WITHDRAW_AFTER_MS = 1000  # after the answer: the PBX has answered and the parties are bridged
HOLD_AFTER_WITHDRAWAL_MS = 800
CALL_TIMEOUT_S = 20.0
# One call takes four RTP ports (two legs, RTP and RTCP each); a small range is found free sooner.
RTP_PORTS = 8
CALLEE_WAIT_S = 5.0
NO_INVITE_WAIT_S = 0.5
# Purposes as the evidence log lists them (JSON arrays).
EVIDENCE = ["evidence"]
EVIDENCE_AND_TRAINING = ["evidence", "training"]


# Helpers ----------------------------------------------------------------------------------------


def _events(records: list[dict[str, object]]) -> list[str]:
    return [str(record["event"]) for record in records]


def _index(records: list[dict[str, object]], event: str, **fields: object) -> int:
    """Where the first ``event`` record with these field values is; fails the test when absent."""
    for index, record in enumerate(records):
        if record["event"] == event and all(record.get(name) == value for name, value in fields.items()):
            return index
    pytest.fail(f"no {event} record with {fields} in {_events(records)}")


def _only(records: list[dict[str, object]], event: str) -> dict[str, object]:
    matching = [record for record in records if record["event"] == event]
    assert len(matching) == 1, (event, _events(records))
    return matching[0]


def _announced(log: str) -> list[dict[str, object]]:
    """The evidence records of a call whose prompts all played (else the test fails saying why)."""
    records = evidence_records(log)
    failures = [record for record in records if record["event"] == "notice_failed"]
    assert not failures, f"a prompt failed: {failures}"
    return records


def _stage_captures(workdir: Path, **captures: str) -> list[str]:
    """Copy each key's capture to the caller's working directory as ``<name>.pcap`` (the name its
    scenario plays); return the SIPp arguments for its media port, which the offer names and the
    presses are sent from."""
    caller_dir = workdir / "caller"
    caller_dir.mkdir(parents=True, exist_ok=True)
    for name, key in captures.items():
        shutil.copyfile(DTMF_CAPTURES / KEY_CAPTURES[key], caller_dir / f"{name}.pcap")
    return ["-mp", str(free_port())]


def _inbound_call(
    proxy: CallheraldProcess,
    workdir: Path,
    caller: str,
    caller_args: list[str],
    *,
    pause_ms: int,
    callee_wait_s: float = CALLEE_WAIT_S,
) -> tuple[SippRun, SippRun]:
    """One inbound call from ``caller`` to the PBX (a SIPp UAS that answers); both runs returned."""
    callee_keys = sipp_keys(rtp_port=free_port(), portfile=workdir / "callee.sdp")
    with start_callee("uas_call.xml", proxy.pbx_target_port, workdir, callee_keys) as uas:
        uac = run_caller(
            caller,
            proxy.carrier_port,
            workdir,
            caller_args,
            number=Direction.INBOUND.number,
            pause_ms=pause_ms,
            timeout_s=CALL_TIMEOUT_S,
        )
        return uac, uas.finish(timeout_s=callee_wait_s)


# 1. RFC 4733 key presses ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyPressCase:
    """A press at ``key_at_ms`` after the ACK and what callherald must make of it."""

    key: str
    key_at_ms: int
    counted: bool
    decision: str
    mechanism: str | None
    recorded: tuple[str, ...]


@requires_sipp
@requires_key_captures
@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            KeyPressCase(
                key="1",
                key_at_ms=DURING_QUESTION_MS,
                counted=True,
                decision="granted",
                mechanism="rfc4733",
                recorded=("evidence", "training"),
            ),
            id="yes-during-question",
        ),
        pytest.param(
            KeyPressCase(
                key="2",
                key_at_ms=DURING_QUESTION_MS,
                counted=True,
                decision="refused",
                mechanism="rfc4733",
                recorded=("evidence",),
            ),
            id="other-key-during-question",
        ),
        pytest.param(
            KeyPressCase(
                key="1",
                key_at_ms=DURING_NOTICE_MS,
                counted=False,
                decision="no_answer",
                mechanism=None,
                recorded=("evidence",),
            ),
            id="yes-during-notice-only",
        ),
    ],
)
def test_rfc4733_key_press_answers_the_question(tmp_path: Path, case: KeyPressCase) -> None:
    write_prompt_wavs(tmp_path)
    media_args = _stage_captures(tmp_path, key=case.key)
    with running_callherald(tmp_path, rtp_ports=RTP_PORTS, policies=policy_yaml()) as proxy:
        uac, uas = _inbound_call(
            proxy,
            tmp_path,
            "consent_uac_rfc4733.xml",
            [*media_args, "-set", "key_at_ms", str(case.key_at_ms)],
            pause_ms=HANG_UP_MS - case.key_at_ms,
        )
        assert_ok(proxy, uac, uas)
        log = proxy.log_text()
    records = _announced(log)
    pressed = _index(records, "digit_received", digit=case.key, mechanism="rfc4733", counted=case.counted)
    assert _events(records).count("digit_received") == 1, "one press, reported once"
    notice_ended = _index(records, "announcement_ended", prompt_id="test-notice")
    question_started = _index(records, "announcement_started", prompt_id="test-question")
    if case.counted:
        assert question_started < pressed
    else:  # ignored: heard while the notice played (the notice must not be cut short)
        assert pressed < notice_ended
        assert records[notice_ended]["complete"] is True
    decided = _only(records, "consent_decided")
    assert (decided["decision"], decided["mechanism"], decided["purpose_id"]) == (
        case.decision,
        case.mechanism,
        "training",
    )
    finished = _index(records, "consent_finished", purposes=list(case.recorded))
    started = _index(records, "recording_started", purposes=list(case.recorded))
    assert records.index(decided) < finished < started
    assert _events(records).count("recording_started") == 1
    # The PBX was called (only after the decision) and answered; the caller's BYE reached it.
    assert uas.methods_received() == ["INVITE", "ACK", "BYE"]


# 2. Withdrawal after the bridge -----------------------------------------------------------------


@requires_sipp
@requires_key_captures
@pytest.mark.timeout(30)
def test_withdrawal_key_after_the_bridge_restarts_recording_without_consent_purposes(
    tmp_path: Path,
) -> None:
    write_prompt_wavs(tmp_path)
    media_args = _stage_captures(tmp_path, key="1", again="*")
    keys = ["-set", "key_at_ms", str(DURING_QUESTION_MS), "-set", "again_at_ms", str(WITHDRAW_AFTER_MS)]
    with running_callherald(tmp_path, rtp_ports=RTP_PORTS, policies=policy_yaml()) as proxy:
        uac, uas = _inbound_call(
            proxy,
            tmp_path,
            "consent_uac_rfc4733_twice.xml",
            [*media_args, *keys],
            pause_ms=HOLD_AFTER_WITHDRAWAL_MS,
        )
        assert_ok(proxy, uac, uas)
        log = proxy.log_text()
    records = _announced(log)
    granted = _index(records, "consent_decided", decision="granted", mechanism="rfc4733")
    recorded_all = _index(records, "recording_started", purposes=EVIDENCE_AND_TRAINING)
    withdrawn = _index(records, "consent_withdrawn", purposes=["training"], mechanism="rfc4733")
    stopped = _index(records, "recording_stopped", reason="withdrawn")
    recorded_rest = _index(records, "recording_started", purposes=EVIDENCE)
    ended = _index(records, "recording_stopped", reason="ended")
    assert (
        granted < recorded_all < withdrawn < stopped < recorded_rest < ended < _index(records, "call_ended")
    )
    assert _events(records).count("recording_started") == 2
    # The withdrawal came after the bridge: the PBX had answered (and was not disturbed by it).
    assert uas.methods_received() == ["INVITE", "ACK", "BYE"]
    # The evidence record tells the two recordings apart as the log does: the one after the
    # withdrawal served evidence alone, and a reviewer does not take it for one usable for training.
    listed = subprocess.run(
        [str(CALLHERALD), "recordings", "list", "--json", "--config", str(proxy.config_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    served = [[p["purpose_id"] for p in item["purposes"]] for item in json.loads(listed.stdout)]
    assert served == [EVIDENCE_AND_TRAINING, EVIDENCE]
    # Each recording's evidence still matches the manifest its end fixed in the audit log: what the
    # call added after the first one ended (the withdrawal, the second recording) is no change.
    verified = subprocess.run(
        [str(CALLHERALD), "audit", "verify", "--json", "--config", str(proxy.config_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    manifests = json.loads(verified.stdout)["manifests"]
    assert (manifests["checked"], manifests["mismatches"]) == (2, [])


# 3. SIP INFO ------------------------------------------------------------------------------------


@requires_sipp
@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("signal", "decision", "recorded"),
    [
        pytest.param("1", "granted", EVIDENCE_AND_TRAINING, id="yes"),
        pytest.param("2", "refused", EVIDENCE, id="other-key"),
    ],
)
def test_sip_info_key_press_answers_the_question(
    tmp_path: Path, signal: str, decision: str, recorded: list[str]
) -> None:
    write_prompt_wavs(tmp_path)
    keys = [*sipp_keys(rtp_port=free_port(), signal=signal), "-set", "key_at_ms", str(DURING_QUESTION_MS)]
    with running_callherald(tmp_path, rtp_ports=RTP_PORTS, policies=policy_yaml()) as proxy:
        uac, uas = _inbound_call(
            proxy, tmp_path, "consent_uac_info.xml", keys, pause_ms=HANG_UP_MS - DURING_QUESTION_MS
        )
        assert_ok(proxy, uac, uas)
        log = proxy.log_text()
    # callherald answered the INFO itself (the scenario insists on a 200) ...
    info_answers = [m.first_line for m in uac.messages if not m.sent and m.header("CSeq") == "2 INFO"]
    assert info_answers == ["SIP/2.0 200 OK"]
    # ... and kept it: it was an answer to callherald's question, not for the PBX.
    assert uas.methods_received() == ["INVITE", "ACK", "BYE"]
    records = _announced(log)
    _index(records, "digit_received", digit=signal, mechanism="sip_info", counted=True)
    decided = _only(records, "consent_decided")
    assert (decided["decision"], decided["mechanism"]) == (decision, "sip_info")
    assert records.index(decided) < _index(records, "consent_finished", purposes=recorded)
    assert _index(records, "consent_finished") < _index(records, "recording_started", purposes=recorded)


# 4. Early media ---------------------------------------------------------------------------------


@requires_sipp
@pytest.mark.timeout(30)
def test_early_media_plays_the_notice_before_the_call_is_answered(tmp_path: Path) -> None:
    notice_wav, _ = write_prompt_wavs(tmp_path)
    notice = prepared(notice_wav, "test-notice", tmp_path / "expected-cache").frames_for("pcmu")
    portfile = tmp_path / "caller.sdp"
    early_sdp, final_sdp = tmp_path / "early.sdp", tmp_path / "final.sdp"
    with (
        running_callherald(tmp_path, rtp_ports=RTP_PORTS, policies=policy_yaml(mode="early_media")) as proxy,
        MediaPeer("caller", ssrc=0x11110001, payloads=tone_payloads(1000.0, 50)) as caller,
    ):
        caller.start(portfile)
        keys = sipp_keys(
            rtp_port=caller.port, portfile=portfile, early_sdp_file=early_sdp, final_sdp_file=final_sdp
        )
        uac, uas = _inbound_call(proxy, tmp_path, "consent_uac_early_media.xml", keys, pause_ms=1000)
        caller.stop()
        assert_ok(proxy, uac, uas)
        log = proxy.log_text()
    # 183 with callherald's answer first; the 200 repeats that answer once consent is settled.
    responses = [m for m in uac.messages if not m.sent and m.header("CSeq") == "1 INVITE"]
    statuses = [m.first_line for m in responses if not m.first_line.startswith("SIP/2.0 100")]
    assert statuses == ["SIP/2.0 183 Session Progress", "SIP/2.0 200 OK"], statuses
    early_answer = early_sdp.read_text()
    assert early_answer.startswith("v=0")
    assert "m=audio" in early_answer
    assert final_sdp.read_text() == early_answer  # RFC 3261 §13.2.1: one answer per offer
    # Nobody pressed a key: the 200 comes after the notice, the question and the answer window.
    waited_s = (responses[-1].at - responses[-2].at).total_seconds()
    assert waited_s >= NOTICE_S + QUESTION_S + ANSWER_WINDOW_S - 0.1, waited_s
    assert find_run(payloads_of(caller.received), notice) >= 0, "the whole notice did not arrive in order"
    records = _announced(log)
    notice_ended = _index(records, "announcement_ended", prompt_id="test-notice", complete=True)
    decided = _index(records, "consent_decided", decision="no_answer")
    finished = _index(records, "consent_finished", purposes=EVIDENCE)
    started = _index(records, "recording_started", purposes=EVIDENCE)
    assert notice_ended < decided < finished < started
    assert uas.methods_received() == ["INVITE", "ACK", "BYE"]


# 5. A notice that cannot be played --------------------------------------------------------------

CORRUPT_WAV = b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(range(256)) * 4


@requires_sipp
@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("on_failure", "caller", "caller_status", "pbx_heard"),
    [
        pytest.param(
            "connect_unrecorded", "uac_call.xml", "SIP/2.0 200 OK", ["INVITE", "ACK", "BYE"], id="connect"
        ),
        pytest.param("reject", "consent_uac_expect_480.xml", "SIP/2.0 480", [], id="reject"),
    ],
)
def test_corrupt_notice_follows_the_policys_on_failure(
    tmp_path: Path, on_failure: str, caller: str, caller_status: str, pbx_heard: list[str]
) -> None:
    notice_wav, _ = write_prompt_wavs(tmp_path)
    notice_wav.write_bytes(CORRUPT_WAV)  # it exists, so the configuration loads; importing it fails
    keys = sipp_keys(rtp_port=free_port(), portfile=tmp_path / "caller.sdp")
    with running_callherald(
        tmp_path, rtp_ports=RTP_PORTS, policies=policy_yaml(on_failure=on_failure)
    ) as proxy:
        uac, uas = _inbound_call(
            proxy,
            tmp_path,
            caller,
            keys,
            pause_ms=500,
            callee_wait_s=CALLEE_WAIT_S if pbx_heard else NO_INVITE_WAIT_S,
        )
        assert_ok(proxy, uac)
        log = proxy.log_text()
    errors = [line for line in log.splitlines() if " ERROR " in line and "test-notice" in line]
    assert errors, f"no error naming the notice at start-up\n{log[-3000:]}"
    finals = [m for m in uac.messages if not m.sent and m.header("CSeq") == "1 INVITE"]
    assert finals[-1].first_line.startswith(caller_status), finals[-1].first_line
    assert uas.methods_received() == pbx_heard
    if pbx_heard:
        assert uas.returncode == 0, uas.report()
    records = evidence_records(log)
    failed = _only(records, "notice_failed")
    assert failed["prompt_id"] == "test-notice"
    assert str(failed["reason"]).strip()
    events = _events(records)
    assert "recording_started" not in events  # fail closed: no notice, no recording
    assert "announcement_started" not in events
    # The evidence record keeps the failure too: the prompt, why, and that nothing played.
    with sqlite3.connect(proxy.data_dir / "evidence.sqlite") as db:
        rows = db.execute(
            "SELECT prompt_id, version, complete, failure, started_at = ended_at FROM announcements_played"
        ).fetchall()
    assert rows == [("test-notice", "", 0, failed["reason"], 1)]


# 6. A caller hanging up during the notice --------------------------------------------------------

HANG_UP_DURING_NOTICE_MS = 400  # of the 0.8 s notice


@requires_sipp
@pytest.mark.timeout(30)
def test_a_caller_hanging_up_during_the_notice_leaves_it_cut_short_in_the_evidence(tmp_path: Path) -> None:
    write_prompt_wavs(tmp_path)
    keys = sipp_keys(rtp_port=free_port(), portfile=tmp_path / "caller.sdp")
    with running_callherald(tmp_path, rtp_ports=RTP_PORTS, policies=policy_yaml()) as proxy:
        uac, uas = _inbound_call(
            proxy,
            tmp_path,
            "uac_call.xml",
            keys,
            pause_ms=HANG_UP_DURING_NOTICE_MS,
            callee_wait_s=NO_INVITE_WAIT_S,
        )
        assert_ok(proxy, uac)
        log = proxy.log_text()
        evidence_db = proxy.data_dir / "evidence.sqlite"
        with sqlite3.connect(f"file:{evidence_db}?mode=ro", uri=True) as db:
            rows = db.execute(
                "SELECT prompt_id, started_at, ended_at, complete FROM announcements_played"
            ).fetchall()
            (call_ended_at,) = db.execute("SELECT ended_at FROM calls").fetchone()
    assert uas.methods_received() == []  # the PBX was never called
    records = _announced(log)
    started = _index(records, "announcement_started", prompt_id="test-notice")
    ended = _index(records, "announcement_ended", prompt_id="test-notice")
    assert started < ended < _index(records, "call_ended")
    assert records[ended]["complete"] is False
    assert "consent_decided" not in _events(records)  # the question was never asked
    # The database keeps the notice, cut short when the caller left, and nothing else was played.
    ((prompt_id, started_at, ended_at, complete),) = rows
    assert (prompt_id, complete) == ("test-notice", 0)
    heard_s = (dt.datetime.fromisoformat(ended_at) - dt.datetime.fromisoformat(started_at)).total_seconds()
    assert 0 < heard_s < NOTICE_S
    assert ended_at <= call_ended_at
