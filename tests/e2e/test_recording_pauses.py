"""Recording pauses end to end: by the operator (``callherald calls pause`` / ``resume`` through the
control socket), by hold (re-INVITE ``a=sendonly``, RFC 3264 §8.4) and by the PCI pause code keyed
by SIP INFO (``application/dtmf-relay``), each on a real recorded call through ``callherald serve``;
and the tones that confirm the PCI code to the party that keyed it, in the RTP it receives.

The outside party sends a continuous 1000 Hz tone and the PBX side 440 Hz, without a break. The
decrypted recording must hold exactly one stretch of digital silence on both channels, as long as
the pause the evidence record gives (with its reason), where the evidence puts it, and the tones
everywhere else.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from announcements import pci_paused_frames, pci_resumed_frames, silence_frame
from proxy.rtp.g711 import SAMPLE_RATE_HZ
from proxy.rtp.packet import RtpPacket
from proxy.rtp.seqnum import ts_diff
from storage.records import EvidenceStore, RecordingRecord, RecordingState, TimelineEvent, TimelineKind
from tests.e2e.announce_support import evidence_records, policy_yaml, write_prompt_wavs
from tests.e2e.harness import (
    UNRECORDED_POLICIES,
    CallheraldProcess,
    free_port,
    running_callherald,
    sipp_available,
)
from tests.e2e.media_peer import Datagram, MediaPeer, read_sdp_file
from tests.e2e.test_recording_calls import (
    OUTSIDE_HZ,
    PBX_HZ,
    decrypt,
    dominant_hz,
    pure_tone,
)
from tests.e2e.test_sipp_calls import (
    Direction,
    SippRun,
    assert_ok,
    sipp_keys,
    start_callee,
    start_caller,
)
from tests.small_disk import tiny_file_system

pytestmark = pytest.mark.e2e
requires_sipp = pytest.mark.skipif(not sipp_available(), reason="SIPp (sip-tester) is not installed")

CALLHERALD = Path(sys.executable).with_name("callherald")
TONE_PACKETS = 500  # 10 s: longer than any call here
PAUSE_AT_MS = 3500  # after the ACK: the notice (0.8 s) and the question window (0.4 s + 1 s) are over
PAUSE_FOR_MS = 1500
AFTER_MS = 2500  # recorded again before the caller hangs up
API_PAUSE_S = 1.0
WINDOW = SAMPLE_RATE_HZ // 10  # 100 ms windows for "tone everywhere else"
EDGE = SAMPLE_RATE_HZ // 10  # 100 ms left out around the pause and at both ends (jitter, ramps)
STRAY_SILENCE = SAMPLE_RATE_HZ // 25  # 40 ms: a zero stretch this long that is no pause is a fault
PLACE_TOLERANCE_S = 0.1  # where the silence lies against the evidence's times
LENGTH_TOLERANCE_S = 0.05  # how long the silence is against the evidence's pause
REFUSED_WITHIN_S = 0.5  # from a hold's re-INVITE to the PBX's 488, through callherald on loopback
INBOUND = Direction.INBOUND


def pci_policy_yaml() -> str:
    """The test policy of ``policy_yaml`` with the PCI pause code ``#9`` (no withdrawal digit in it)."""
    text = policy_yaml()
    marker = '    withdrawal_digit: "*"\n'
    assert marker in text
    return text.replace(marker, marker + '    pci_pause_code: "#9"\n')


def run_cli(proxy: CallheraldProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CALLHERALD), "calls", *args, "--config", str(proxy.config_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@dataclass(frozen=True, slots=True)
class RecordedCall:
    """What one call left behind: the recording's record, its decrypted audio, the call's timeline,
    and the datagrams the caller's and the callee's media peers received."""

    record: RecordingRecord
    audio: npt.NDArray[np.int16]
    timeline: list[TimelineEvent]
    log: str
    caller_heard: tuple[Datagram, ...] = ()
    callee_heard: tuple[Datagram, ...] = ()


def recorded_call(tmp_path: Path, **call: Any) -> RecordedCall:
    """The one recording of a call made as ``recorded_calls`` makes it."""
    (recorded,) = recorded_calls(tmp_path, **call)
    return recorded


def recorded_calls(
    tmp_path: Path,
    *,
    caller: str,
    callee: str,
    caller_set: dict[str, int] | None = None,
    callee_set: dict[str, int] | None = None,
    pause_ms: int,
    policies: str | None = None,
    extra: str = "",
    while_recording: Callable[[CallheraldProcess, str], None] | None = None,
    direction: Direction = INBOUND,
) -> list[RecordedCall]:
    """One call (inbound unless ``direction`` says) from ``caller`` to ``callee`` (SIPp scenarios)
    through ``callherald serve`` (``extra``: more of its configuration) with tones from both
    parties, and its recordings in the order they started; ``while_recording(proxy, call_ref)``
    runs once recording started."""
    write_prompt_wavs(tmp_path)
    _, outside_payloads = pure_tone(OUTSIDE_HZ, TONE_PACKETS)
    _, pbx_payloads = pure_tone(PBX_HZ, TONE_PACKETS)
    caller_sdp, callee_sdp = tmp_path / "caller.sdp", tmp_path / "callee.sdp"
    sets = [arg for name, value in (caller_set or {}).items() for arg in ("-set", name, str(value))]
    callee_sets = [arg for name, value in (callee_set or {}).items() for arg in ("-set", name, str(value))]
    with (
        running_callherald(tmp_path, policies=policies or policy_yaml(), extra=extra) as proxy,
        MediaPeer("caller", ssrc=0x11110001, payloads=outside_payloads) as caller_media,
        MediaPeer("callee", ssrc=0x22220002, payloads=pbx_payloads) as callee_media,
    ):
        caller_media.start(caller_sdp)
        callee_media.start(callee_sdp)
        uac_keys = sipp_keys(
            rtp_port=caller_media.port, portfile=caller_sdp, resultfile=tmp_path / "caller.txt"
        )
        uas_keys = sipp_keys(
            rtp_port=callee_media.port, portfile=callee_sdp, resultfile=tmp_path / "callee.txt"
        )
        runs: list[SippRun] = []
        with (
            start_callee(
                callee, direction.callee_port(proxy), tmp_path, [*uas_keys, *callee_sets], pause_ms=pause_ms
            ) as uas,
            start_caller(
                caller,
                direction.caller_target(proxy),
                tmp_path,
                [*uac_keys, *sets],
                number=direction.number,
                pause_ms=pause_ms,
            ) as uac,
        ):
            assert proxy.wait_for_log('"event": "recording_started"', timeout_s=15), proxy.log_text()[-3000:]
            if while_recording is not None:
                started = [r for r in evidence_records(proxy.log_text()) if r["event"] == "recording_started"]
                while_recording(proxy, str(started[0]["call"]))
            runs = [uac.finish(timeout_s=20), uas.finish(timeout_s=5)]
        caller_media.stop()
        callee_media.stop()
        assert_ok(proxy, *runs)
    data_dir = proxy.data_dir
    calls = []
    with EvidenceStore(data_dir / "evidence.sqlite") as store:
        for record in sorted(store.recordings_list(), key=lambda record: record.started_at):
            assert record.state is RecordingState.COMPLETE
            audio = decrypt(data_dir, record, store)
            timeline = store.call_timeline(record.call_id)
            calls.append(
                RecordedCall(
                    record=record,
                    audio=audio,
                    timeline=timeline,
                    log=proxy.log_text(),
                    caller_heard=tuple(caller_media.received),
                    callee_heard=tuple(callee_media.received),
                )
            )
    return calls


def silent_runs(audio: npt.NDArray[np.int16], min_samples: int) -> list[tuple[int, int]]:
    """The [start, end) sample ranges of at least ``min_samples`` where both channels are 0."""
    silent = np.concatenate(([False], (audio == 0).all(axis=1), [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(silent))
    starts, ends = edges[::2], edges[1::2]
    return [(int(s), int(e)) for s, e in zip(starts, ends, strict=True) if e - s >= min_samples]


def _offset_s(at: dt.datetime, origin: dt.datetime) -> float:
    return (at - origin).total_seconds()


def assert_one_pause(call: RecordedCall, reason: str) -> float:
    """Exactly one pause, for ``reason``: digital silence on both channels where and as long as the
    evidence says, the tones everywhere else. Returns the pause's length in seconds."""
    pauses = [e for e in call.timeline if e.kind in (TimelineKind.PAUSE_START, TimelineKind.PAUSE_END)]
    assert [(e.kind, e.detail["reason"]) for e in pauses] == [
        (TimelineKind.PAUSE_START, reason),
        (TimelineKind.PAUSE_END, reason),
    ], call.timeline
    first_frame = call.record.first_frame_at
    pause_from_s = _offset_s(pauses[0].at, first_frame)
    pause_to_s = _offset_s(pauses[1].at, first_frame)
    # One stretch of silence, where the evidence puts the pause and as long as it.
    runs = silent_runs(call.audio, STRAY_SILENCE)
    assert len(runs) == 1, (runs, pause_from_s, pause_to_s)
    ((start, end),) = runs
    assert abs(start / SAMPLE_RATE_HZ - pause_from_s) < PLACE_TOLERANCE_S, (start, pause_from_s)
    assert abs(end / SAMPLE_RATE_HZ - pause_to_s) < PLACE_TOLERANCE_S, (end, pause_to_s)
    assert abs((end - start) / SAMPLE_RATE_HZ - (pause_to_s - pause_from_s)) < LENGTH_TOLERANCE_S
    # The tones before and after it, in every 100 ms window, on both channels.
    audible = [(EDGE, start - EDGE), (end + EDGE, len(call.audio) - EDGE)]
    assert all(stop - begin >= 5 * WINDOW for begin, stop in audible), (audible, len(call.audio))
    for begin, stop in audible:
        for window in range(begin, stop - WINDOW + 1, WINDOW):
            for column, expected_hz in ((0, OUTSIDE_HZ), (1, PBX_HZ)):
                peak, share = dominant_hz(call.audio[window : window + WINDOW, column])
                assert abs(peak - expected_hz) <= 10, (column, window, peak)
                assert share > 0.9, (column, window, share)
    return (end - start) / SAMPLE_RATE_HZ


@requires_sipp
@pytest.mark.timeout(90)
def test_the_operator_pauses_and_resumes_a_recording_with_the_calls_commands(tmp_path: Path) -> None:
    moments: dict[str, float] = {}
    listed: dict[str, object] = {}

    def pause_and_resume(proxy: CallheraldProcess, call_ref: str) -> None:
        time.sleep(1.0)
        not_paused = run_cli(proxy, "resume", call_ref)  # nothing to resume: it says so, and changes nothing
        assert (not_paused.returncode, not_paused.stdout) == (1, ""), not_paused.stdout
        assert (
            f"call {call_ref}: not paused by callherald calls pause: nothing to resume\n" in not_paused.stderr
        )
        moments["before_pause"] = time.monotonic()
        paused = run_cli(proxy, "pause", call_ref)
        moments["after_pause"] = time.monotonic()
        assert paused.returncode == 0, paused.stderr
        assert f"call {call_ref}: recording paused" in paused.stdout
        again = run_cli(proxy, "pause", call_ref)  # it said "recording paused" again, exit 0
        assert (again.returncode, again.stdout) == (1, ""), again.stdout
        assert f"call {call_ref}: already paused by callherald calls pause: nothing changed" in again.stderr
        while_paused = run_cli(proxy, "list", "--json")
        time.sleep(max(0.0, API_PAUSE_S - (time.monotonic() - moments["after_pause"])))
        moments["before_resume"] = time.monotonic()
        resumed = run_cli(proxy, "resume", call_ref)
        moments["after_resume"] = time.monotonic()
        assert resumed.returncode == 0, resumed.stderr
        listed["paused"] = json.loads(while_paused.stdout)
        listed["resumed"] = json.loads(run_cli(proxy, "list", "--json").stdout)
        unknown = run_cli(proxy, "pause", "no-such-call")
        assert unknown.returncode == 1
        assert "no such call: no-such-call" in unknown.stderr

    call = recorded_call(
        tmp_path,
        caller="uac_call.xml",
        callee="uas_call.xml",
        pause_ms=PAUSE_AT_MS + 2 * PAUSE_FOR_MS + AFTER_MS,
        while_recording=pause_and_resume,
    )
    ref = call.record.call_id
    assert listed["paused"] == [{"call": ref, "direction": "inbound", "recording": True, "paused": ["api"]}]
    assert listed["resumed"] == [{"call": ref, "direction": "inbound", "recording": True, "paused": []}]
    length_s = assert_one_pause(call, "api")
    shortest = moments["before_resume"] - moments["after_pause"]
    longest = moments["after_resume"] - moments["before_pause"]
    assert shortest - LENGTH_TOLERANCE_S <= length_s <= longest + LENGTH_TOLERANCE_S, (
        shortest,
        length_s,
        longest,
    )
    assert f"control socket at {tmp_path / 'data' / 'control.sock'}" in call.log


@requires_sipp
@pytest.mark.timeout(60)
def test_pausing_a_call_that_is_not_recorded_is_refused(tmp_path: Path) -> None:
    # A record: false call (an emergency number): "recording paused" would be a false assurance.
    answered = tmp_path / "caller.sdp"
    with running_callherald(tmp_path, policies=UNRECORDED_POLICIES) as proxy:
        callee_keys = sipp_keys(rtp_port=free_port(), portfile=tmp_path / "callee.sdp")
        caller_keys = sipp_keys(rtp_port=free_port(), portfile=answered)
        with (
            start_callee("uas_call.xml", proxy.carrier_target_port, tmp_path, callee_keys) as callee,
            start_caller("uac_call.xml", proxy.pbx_port, tmp_path, caller_keys, pause_ms=4000) as caller,
        ):
            deadline = time.monotonic() + 10
            while read_sdp_file(answered) is None and time.monotonic() < deadline:
                time.sleep(0.02)
            assert read_sdp_file(answered) is not None, "the call was not answered"
            (call,) = json.loads(run_cli(proxy, "list", "--json").stdout)
            paused = run_cli(proxy, "pause", str(call["call"]))
            resumed = run_cli(proxy, "resume", str(call["call"]))
            listed = json.loads(run_cli(proxy, "list", "--json").stdout)
            runs = [caller.finish(timeout_s=15), callee.finish(timeout_s=5)]
        assert_ok(proxy, *runs)
    ref = call["call"]
    assert (paused.returncode, paused.stdout) == (1, ""), paused.stdout
    assert f"call {ref} is not being recorded, and will not be: nothing to pause" in paused.stderr
    assert resumed.returncode == 1
    assert "nothing to resume" in resumed.stderr
    assert listed == [{"call": ref, "direction": "outbound", "recording": False, "paused": []}]


@requires_sipp
@pytest.mark.timeout(60)
def test_the_control_socket_goes_with_callherald(tmp_path: Path) -> None:
    socket_file = tmp_path / "data" / "control.sock"
    with running_callherald(tmp_path) as proxy:
        assert socket_file.is_socket()
        assert socket_file.stat().st_mode & 0o777 == 0o600
        listing = run_cli(proxy, "list")
        assert (listing.returncode, listing.stdout.strip()) == (0, "no calls"), listing.stderr
    assert not socket_file.exists()
    gone = run_cli(proxy, "list")
    assert gone.returncode == 1
    assert f"callherald is not running (no control socket at {socket_file})" in gone.stderr


@requires_sipp
@pytest.mark.timeout(60)
def test_hold_writes_silence_until_the_call_is_taken_off_hold(tmp_path: Path) -> None:
    call = recorded_call(
        tmp_path,
        caller="recording_uac_hold.xml",
        callee="recording_uas_hold.xml",
        caller_set={"hold_at_ms": PAUSE_AT_MS, "hold_for_ms": PAUSE_FOR_MS},
        pause_ms=AFTER_MS,
    )
    length_s = assert_one_pause(call, "hold")
    # The hold and its end reached the PBX as such (the scenarios wrote what they matched).
    assert (tmp_path / "caller.txt").read_text().strip() == "a=recvonly|"
    assert (tmp_path / "callee.txt").read_text().strip() == "a=sendonly|"
    assert PAUSE_FOR_MS / 1000 - LENGTH_TOLERANCE_S <= length_s <= PAUSE_FOR_MS / 1000 + 0.3


@requires_sipp
@pytest.mark.timeout(60)
def test_a_hold_the_pbx_refuses_pauses_the_recording_only_until_the_refusal(tmp_path: Path) -> None:
    # The caller's re-INVITE holds the call (a=sendonly) and the PBX refuses it with 488: the call
    # was never held (RFC 3261 §14.2). The recording paused as the hold came (music on hold may
    # start at once), and the pause ends at the refusal: both tones are recorded after it.
    call = recorded_call(
        tmp_path,
        caller="recording_uac_hold_refused.xml",
        callee="recording_uas_hold_refused.xml",
        caller_set={"hold_at_ms": PAUSE_AT_MS},
        pause_ms=AFTER_MS,
    )
    assert (tmp_path / "callee.txt").read_text().strip() == "a=sendonly"
    pauses = [e for e in call.timeline if e.kind in PAUSE_KINDS]
    assert [(e.kind, e.detail["reason"]) for e in pauses] == [
        (TimelineKind.PAUSE_START, "hold"),
        (TimelineKind.PAUSE_END, "hold"),
    ]
    start, end = (_offset_s(e.at, call.record.first_frame_at) for e in pauses)
    assert 0 <= end - start < REFUSED_WITHIN_S, (start, end)
    refused_at = round(end * SAMPLE_RATE_HZ)
    after = call.audio[refused_at + EDGE : len(call.audio) - EDGE]
    assert len(after) >= 10 * WINDOW, len(after)
    for window in range(0, len(after) - WINDOW + 1, WINDOW):
        for column, expected_hz in ((0, OUTSIDE_HZ), (1, PBX_HZ)):
            peak, share = dominant_hz(after[window : window + WINDOW, column])
            assert abs(peak - expected_hz) <= 10, (column, window, peak)
            assert share > 0.9, (column, window, share)


@requires_sipp
@pytest.mark.timeout(60)
def test_a_caller_on_hold_from_its_invite_hears_the_notice_once_off_hold_and_the_pbx_gets_sendrecv(
    tmp_path: Path,
) -> None:
    # The caller's INVITE holds the call (a=sendonly): callherald answers recvonly (RFC 3264 §6.1)
    # and keeps the notice back until the caller comes off hold; then the notice plays whole, and
    # the PBX, called after the question, is offered the caller's media as it is now (sendrecv).
    call = recorded_call(
        tmp_path,
        caller="recording_uac_held_at_start.xml",
        callee="recording_uas_direction.xml",
        caller_set={"hold_for_ms": PAUSE_FOR_MS},
        # After the unhold: the notice, the question and its answer window (2.45 s), then recorded.
        pause_ms=AFTER_MS + 1500,
    )
    assert (tmp_path / "caller.txt").read_text().strip() == "a=recvonly|"
    assert (tmp_path / "callee.txt").read_text().strip() == "a=sendrecv"
    records = evidence_records(call.log)
    notice = [r for r in records if r.get("prompt_id") == "test-notice"]
    assert [(r["event"], r.get("complete")) for r in notice] == [
        ("announcement_started", None),
        ("announcement_ended", True),
    ]
    assert [e for e in call.timeline if e.kind is TimelineKind.PAUSE_START] == []
    assert silent_runs(call.audio, STRAY_SILENCE) == []  # both parties recorded throughout


@requires_sipp
@pytest.mark.timeout(60)
def test_an_agent_on_hold_from_its_invite_hears_the_beep_only_once_off_hold(tmp_path: Path) -> None:
    # Outbound, the PBX's INVITE holds the call (a=sendonly): the callee hears the notice, the
    # recording starts paused for the hold, and the agent, which receives nothing meanwhile (RFC
    # 3264 §6.1), is sent neither the notice copy nor the beep until its re-INVITE takes the call
    # off hold after the bridge; then the beep plays whole, and the evidence says so.
    call = recorded_call(
        tmp_path,
        caller="recording_uac_held_at_start.xml",
        callee="recording_uas_held_offer.xml",
        caller_set={"hold_for_ms": PAUSE_AT_MS},
        pause_ms=AFTER_MS,
        direction=Direction.OUTBOUND,
    )
    assert (tmp_path / "caller.txt").read_text().strip() == "a=recvonly|"
    assert (tmp_path / "callee.txt").read_text().strip() == "a=sendrecv"
    pauses = [(e.kind, e.detail["reason"]) for e in call.timeline if e.kind in PAUSE_KINDS]
    assert pauses == [(TimelineKind.PAUSE_START, "hold"), (TimelineKind.PAUSE_END, "hold")]
    (hold_end,) = [e for e in call.timeline if e.kind is TimelineKind.PAUSE_END]
    informed = [e for e in call.timeline if e.kind is TimelineKind.AGENT_INFORMED]
    assert [(e.detail["kind"], e.detail["name"], e.detail["complete"]) for e in informed] == [
        ("tone", "beep", True)
    ]
    assert hold_end.at <= informed[0].at
    logged = [r for r in evidence_records(call.log) if r["event"] == "agent_informed"]
    assert len(logged) == 1
    assert "the agent holds the call: its beep plays when it comes off hold" in call.log


PAUSE_KINDS = (TimelineKind.PAUSE_START, TimelineKind.PAUSE_END)


@requires_sipp
@pytest.mark.timeout(60)
def test_a_caller_on_hold_from_its_invite_past_the_hold_limit_is_connected_unrecorded(tmp_path: Path) -> None:
    # limits.notice_hold_timeout_s: the caller holds the call from its INVITE for longer than the
    # limit, so it has not heard the notice; the policy's on_failure (connect_unrecorded) applies:
    # the PBX is called then, the call is never recorded, and the evidence says why.
    write_prompt_wavs(tmp_path)
    caller_keys = sipp_keys(
        rtp_port=free_port(), portfile=tmp_path / "caller.sdp", resultfile=tmp_path / "caller.txt"
    )
    callee_keys = sipp_keys(
        rtp_port=free_port(), portfile=tmp_path / "callee.sdp", resultfile=tmp_path / "callee.txt"
    )
    limits = "  notice_hold_timeout_s: 2\n"
    with running_callherald(tmp_path, policies=policy_yaml(), limits=limits) as proxy:
        with (
            start_callee(
                "more_uas_reinvite.xml", INBOUND.callee_port(proxy), tmp_path, callee_keys, pause_ms=50
            ) as callee,
            start_caller(
                "recording_uac_held_at_start.xml",
                INBOUND.caller_target(proxy),
                tmp_path,
                [*caller_keys, "-set", "hold_for_ms", "4000"],
                number=INBOUND.number,
                pause_ms=500,
            ) as caller,
        ):
            runs = [caller.finish(timeout_s=20), callee.finish(timeout_s=5)]
        assert_ok(proxy, *runs)
    # Held when answered, taken off hold by a re-INVITE the PBX answered: it was connected.
    assert (tmp_path / "caller.txt").read_text().strip() == "a=recvonly|"
    assert (tmp_path / "callee.txt").exists()
    records = evidence_records(proxy.log_text())
    reason = "announcement not heard: the outside party held the call for 2 s"
    (failed,) = [r for r in records if r["event"] == "notice_failed"]
    assert (failed["prompt_id"], failed["reason"]) == ("test-notice", reason)
    assert [r for r in records if r["event"] in ("announcement_started", "recording_started")] == []
    assert "without hearing recording notice 'test-notice': call connects unrecorded" in proxy.log_text()
    with EvidenceStore(proxy.data_dir / "evidence.sqlite") as store:
        assert store.recordings_list() == []
        timeline = store.call_timeline(str(failed["call"]))
    (notice,) = [e for e in timeline if e.kind is TimelineKind.ANNOUNCEMENT_END]
    assert notice.detail["failure"] == reason


@requires_sipp
@pytest.mark.timeout(60)
def test_the_pci_code_keyed_by_sip_info_pauses_and_resumes_and_the_caller_hears_it_confirmed(
    tmp_path: Path,
) -> None:
    # The caller keys the code, and the code again 1.5 s later: the recording pauses and resumes;
    # after the first it receives the "paused" tone (two high beeps), after the second the
    # "recording again" tone (one low beep), each in place of the agent's audio, which goes on
    # after it in the same RTP stream, numbered on without a gap. The agent hears neither.
    call = recorded_call(
        tmp_path,
        caller="recording_uac_pci_info.xml",
        callee="recording_uas_info.xml",
        caller_set={"pci_at_ms": PAUSE_AT_MS, "pci_for_ms": PAUSE_FOR_MS},
        pause_ms=AFTER_MS,
        policies=pci_policy_yaml(),
    )
    length_s = assert_one_pause(call, "pci")
    assert PAUSE_FOR_MS / 1000 - LENGTH_TOLERANCE_S <= length_s <= PAUSE_FOR_MS / 1000 + 0.3
    # The keys went on to the PBX too (callherald relays INFO after the bridge).
    assert (tmp_path / "callee.txt").read_text().strip() == "Signal=#|Signal=9|Signal=#|Signal=9"
    _, agent_payloads = pure_tone(PBX_HZ, TONE_PACKETS)
    relayed = set(agent_payloads)
    packets = [(RtpPacket.parse(d.data), d.at) for d in call.caller_heard]
    first_relayed = next(i for i, (packet, _) in enumerate(packets) if packet.payload in relayed)
    bridged = packets[first_relayed:]
    # Once the parties hear each other, the caller receives the agent's audio but for two runs:
    # the two tones, whole and in order.
    runs: list[list[tuple[RtpPacket, float]]] = []
    for index, (packet, at) in enumerate(bridged):
        if packet.payload in relayed:
            continue
        if bridged[index - 1][0].payload in relayed:
            runs.append([])
        runs[-1].append((packet, at))
    assert [[packet.payload for packet, _ in run] for run in runs] == [
        list(pci_paused_frames("pcmu")),
        list(pci_resumed_frames("pcmu")),
    ]
    paused_tone, resumed_tone = runs
    assert bridged[-1][0].payload in relayed  # the agent's audio after the second tone
    # One stream: one SSRC, sequence numbers one apart, timestamps a packet or more apart.
    assert len({packet.ssrc for packet, _ in bridged}) == 1
    for (before, _), (after, _) in itertools.pairwise(bridged):
        assert (after.sequence - before.sequence) & 0xFFFF == 1, (before, after)
        assert ts_diff(after.timestamp, before.timestamp) >= 160, (before, after)
    # The tones came as the pause began and ended.
    between_s = resumed_tone[0][1] - paused_tone[0][1]
    assert abs(between_s - length_s) < 0.15, (between_s, length_s)
    # The agent heard neither tone.
    tone_frames = {*pci_paused_frames("pcmu"), *pci_resumed_frames("pcmu")} - {silence_frame("pcmu")}
    assert [d for d in call.callee_heard if RtpPacket.parse(d.data).payload in tone_frames] == []
    assert "PCI pause code paused the recording; it hears the pci_paused tone" in call.log
    assert "PCI pause code resumed the recording; it hears the pci_resumed tone" in call.log


@requires_sipp
@pytest.mark.timeout(60)
def test_a_withdrawal_during_a_pci_pause_starts_the_next_recording_paused_until_the_pause_ends(
    tmp_path: Path,
) -> None:
    # The caller consents, keys the PCI code, withdraws consent during the card payment and keys
    # the code again: the recording for the purposes left stores nothing of the payment.
    withdraw_after_ms, resume_after_ms = 700, 1500
    first, second = recorded_calls(
        tmp_path,
        caller="recording_uac_pci_withdraw_info.xml",
        callee="recording_uas_info5.xml",
        caller_set={
            "key_at_ms": 1000,  # during the question
            "pci_after_ms": PAUSE_AT_MS - 1000,
            "withdraw_after_ms": withdraw_after_ms,
            "resume_after_ms": resume_after_ms,
        },
        pause_ms=AFTER_MS,
        policies=pci_policy_yaml(),
    )
    assert (tmp_path / "callee.txt").read_text().strip() == "Signal=#|Signal=9|Signal=*|Signal=#|Signal=9"
    assert first.record.end_reason == "withdrawn"
    assert [[p.purpose.purpose_id for p in call.record.purposes] for call in (first, second)] == [
        ["evidence", "training"],
        ["evidence"],
    ]
    pauses = [
        [
            (e.kind, e.at, e.detail["reason"])
            for e in first.timeline
            if e.kind in PAUSE_KINDS and e.recording_id == rid
        ]
        for rid in (first.record.recording_id, second.record.recording_id)
    ]
    # The first recording's pause ends with it; the second is paused from its start to the resume.
    (_, paused_at, _), _ = pauses[0]
    assert pauses[0] == [
        (TimelineKind.PAUSE_START, paused_at, "pci"),
        (TimelineKind.PAUSE_END, first.record.finished_at, "pci"),
    ]
    (_, second_paused_at, _), (_, resumed_at, _) = pauses[1]
    assert pauses[1] == [
        (TimelineKind.PAUSE_START, second.record.started_at, "pci"),
        (TimelineKind.PAUSE_END, resumed_at, "pci"),
    ]
    assert second_paused_at == second.record.started_at
    resumed_s = _offset_s(resumed_at, second.record.first_frame_at)
    assert resume_after_ms / 1000 - 0.3 <= resumed_s <= resume_after_ms / 1000 + 0.3, resumed_s
    # The audio: the first recording silent from its pause to its end, the second from its start
    # to the resume; the tones everywhere else.
    ((start, end),) = silent_runs(first.audio, STRAY_SILENCE)
    assert abs(start / SAMPLE_RATE_HZ - _offset_s(paused_at, first.record.first_frame_at)) < PLACE_TOLERANCE_S
    assert len(first.audio) - end < EDGE
    ((start, end),) = silent_runs(second.audio, STRAY_SILENCE)
    assert start == 0
    assert abs(end / SAMPLE_RATE_HZ - resumed_s) < PLACE_TOLERANCE_S, (end, resumed_s)
    for window in range(end + EDGE, len(second.audio) - EDGE - WINDOW + 1, WINDOW):
        for column, expected_hz in ((0, OUTSIDE_HZ), (1, PBX_HZ)):
            peak, share = dominant_hz(second.audio[window : window + WINDOW, column])
            assert abs(peak - expected_hz) <= 10, (column, window, peak)
            assert share > 0.9, (column, window, share)
    logged = [
        (r["event"], r.get("reason"))
        for r in evidence_records(second.log)
        if str(r["event"]).startswith("recording_")
    ]
    assert logged == [
        ("recording_started", None),
        ("recording_paused", "pci"),
        ("recording_stopped", "withdrawn"),
        ("recording_started", None),
        ("recording_paused", "pci"),
        ("recording_resumed", "pci"),
        ("recording_stopped", "ended"),
    ]


@requires_sipp
@pytest.mark.timeout(60)
def test_a_call_whose_only_purpose_is_withdrawn_during_a_pci_pause_is_listed_unrecorded_not_paused(
    tmp_path: Path,
) -> None:
    # The policy records for training only (consent): the caller consents, keys the PCI code and
    # withdraws its consent during the card payment. No purpose is left, so nothing is recorded
    # from then on, and `calls list` shows no pause of a recording that no longer runs.
    listed: dict[str, Any] = {}

    def list_after_the_withdrawal(proxy: CallheraldProcess, call_ref: str) -> None:
        withdrawn = "consent withdrawn for training"
        assert proxy.wait_for_log(withdrawn, timeout_s=15), proxy.log_text()[-3000:]
        as_json = run_cli(proxy, "list", "--json")
        as_table = run_cli(proxy, "list")
        assert (as_json.returncode, as_table.returncode) == (0, 0), as_json.stderr + as_table.stderr
        listed["json"] = json.loads(as_json.stdout)
        listed["table"] = as_table.stdout.splitlines()
        listed["call"] = call_ref

    training_only = pci_policy_yaml().replace("purposes: [evidence, training]", "purposes: [training]")
    assert training_only != pci_policy_yaml()
    (call,) = recorded_calls(
        tmp_path,
        caller="recording_uac_pci_withdraw_info.xml",
        callee="recording_uas_info5.xml",
        caller_set={
            "key_at_ms": 1000,  # during the question
            "pci_after_ms": PAUSE_AT_MS - 1000,
            "withdraw_after_ms": 700,
            "resume_after_ms": 2500,  # the listing comes before the code is keyed again
        },
        pause_ms=AFTER_MS,
        policies=training_only,
        while_recording=list_after_the_withdrawal,
    )
    assert call.record.end_reason == "withdrawn"
    ref = call.record.call_id
    assert listed["call"] == ref
    assert listed["json"] == [{"call": ref, "direction": "inbound", "recording": False, "paused": []}]
    header, row = listed["table"]
    assert (header.split(), row.split()) == (
        ["call", "direction", "recording", "paused"],
        [ref, "inbound", "no", "-"],
    )


@requires_sipp
@pytest.mark.timeout(90)
def test_a_beep_released_by_the_agents_unhold_stops_and_is_stored_when_the_restart_after_a_withdrawal_fails(
    tmp_path: Path,
) -> None:
    # Outbound, the PBX's INVITE holds the call (a=sendonly): the agent's beep waits for its unhold,
    # after the bridge. Meanwhile the data directory fills below recording.min_free_mb, and the
    # callee withdraws consent (for training) as soon as the unhold reached it, while the beep
    # plays: the recording for the purpose left cannot start, so the beep stops at once, as when
    # storage stops a recording, and it is stored as not played to the end.
    beep_s = 0.16
    min_free_mib, size_mib = 32, 64

    def fill_below_min_free(proxy: CallheraldProcess, call_ref: str) -> None:
        (proxy.data_dir / "filler").write_bytes(bytes((size_mib - min_free_mib + 8) * 1024 * 1024))

    with tiny_file_system(tmp_path / "data", size_kib=size_mib * 1024):
        (call,) = recorded_calls(
            tmp_path,
            caller="recording_uac_held_at_start_info.xml",
            callee="recording_uas_held_offer_withdraw_info.xml",
            caller_set={"hold_for_ms": 2000},  # after its ACK, which follows the bridge
            # The yes during the question; the withdrawal halfway through the beep (160 ms), which
            # starts on the first playout tick after the unhold.
            callee_set={"key_at_ms": 1000, "withdraw_after_ms": 70},
            pause_ms=AFTER_MS,
            extra=f"recording:\n  min_free_mb: {min_free_mib}\n",
            while_recording=fill_below_min_free,
            direction=Direction.OUTBOUND,
        )
    assert call.record.end_reason == "withdrawn"
    assert [p.purpose.purpose_id for p in call.record.purposes] == ["evidence", "training"]
    (not_recorded,) = [e for e in call.timeline if e.kind is TimelineKind.NOT_RECORDED]
    assert str(not_recorded.detail["reason"]).startswith("disk nearly full ("), not_recorded.detail
    (hold_end,) = [e for e in call.timeline if e.kind is TimelineKind.PAUSE_END]
    (beep,) = [e for e in call.timeline if e.kind is TimelineKind.AGENT_INFORMED]
    assert (beep.detail["kind"], beep.detail["name"]) == ("tone", "beep")
    # Released by the unhold, stopped by the failed restart: its end is stored, short of the whole.
    assert hold_end.at <= beep.at
    ended_at = beep.detail["ended_at"]
    assert ended_at is not None, beep.detail
    assert beep.detail["complete"] is False
    assert beep.at < ended_at < beep.at + dt.timedelta(seconds=beep_s), beep.detail
    assert abs((ended_at - not_recorded.at).total_seconds()) < 0.1, (ended_at, not_recorded.at)
    logged = [r for r in evidence_records(call.log) if r["event"] == "agent_informed"]
    assert [(r.get("complete"), r.get("ended_at") is not None) for r in logged] == [(False, True)], logged
    assert "the call is not recorded: the agent's beep stops if it still plays" in call.log
