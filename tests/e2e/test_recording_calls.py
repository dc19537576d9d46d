"""Recorded calls end to end: SIPp signalling through ``callherald serve``, tones from RTP peers,
the recording decrypted with the development key and checked sample by sample.

The outside party sends a continuous 1000 Hz tone and the PBX side 440 Hz, in µ-law (a caller
offering PCMU and PCMA), A-law (both offering PCMA only) or G.722. After the notice and
the answer window the parties are joined and recording starts: the decrypted recording must hold
1000 Hz on the left, 440 Hz on the right, nothing of the announcements, and last as long as the
parties were joined (within 100 ms). The storage directory must never hold the tones in plaintext,
and a ``kill -9`` during the call must cost at most the unsealed last second.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from G722 import G722

from callherald.evidence import INTERRUPTED_AGENT_NOTICE
from proxy.rtp.g711 import SAMPLE_RATE_HZ, alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from storage.keys import load_private_key
from storage.records import EvidenceStore, RecordingRecord, RecordingState, TimelineKind
from storage.segments import SegmentReader
from storage.sqlite_keys import SqliteKeyStore
from tests.e2e.announce_support import (
    NOTICE_S,
    ToneCall,
    call_with_tones,
    evidence_records,
    policy_yaml,
    write_prompt_wavs,
)
from tests.e2e.harness import (
    CALLHERALD,
    LOOPBACK,
    CallheraldProcess,
    running_callherald,
    sipp_available,
    stop_callherald,
    stop_process,
)
from tests.e2e.media_peer import SAMPLES_PER_PACKET, MediaPeer
from tests.e2e.test_sipp_calls import (
    BackgroundSipp,
    Direction,
    SippRun,
    assert_ok,
    place_call,
    sipp_keys,
    start_callee,
    start_caller,
)
from tests.small_disk import fill_up, tiny_file_system
from tests.storage.recordings import record_spans

pytestmark = pytest.mark.e2e
requires_sipp = pytest.mark.skipif(not sipp_available(), reason="SIPp (sip-tester) is not installed")

CALL_MS = 6000
TONE_PACKETS = 400  # 8 s: longer than the call
OUTSIDE_HZ = 1000.0
PBX_HZ = 440.0


def pure_tone(
    frequency_hz: float,
    count: int,
    amplitude: float = 8000.0,
    encode: Callable[[npt.NDArray[np.int16]], bytes] = ulaw_encode,
) -> tuple[npt.NDArray[np.int16], list[bytes]]:
    """A continuous sine as PCM and as ``count`` 20 ms payloads (µ-law unless ``encode`` says)."""
    samples = np.arange(count * SAMPLES_PER_PACKET)
    pcm = np.round(amplitude * np.sin(2 * np.pi * frequency_hz * samples / SAMPLE_RATE_HZ)).astype(np.int16)
    payloads = [encode(pcm[i * SAMPLES_PER_PACKET : (i + 1) * SAMPLES_PER_PACKET]) for i in range(count)]
    return pcm, payloads


@dataclass(frozen=True, slots=True)
class G711Case:
    """How both parties send their tones: the codec, and the scenarios that negotiate it."""

    codec: str
    payload_type: int
    encode: Callable[[npt.NDArray[np.int16]], bytes]
    caller: str = "uac_call.xml"  # offers PCMU and PCMA: PCMU is chosen
    callee: str = "uas_call.xml"

    @property
    def scenario_keys(self) -> dict[str, object]:
        return {"payload_type": self.payload_type, "encoding": self.codec}


G711_CASES = [
    G711Case("PCMU", 0, ulaw_encode),
    G711Case("PCMA", 8, alaw_encode, caller="recording_uac_codec.xml", callee="recording_uas_codec.xml"),
    # A dynamic payload type for a codec that has a static one (RFC 3551 §6 allows it).
    G711Case("PCMU", 96, ulaw_encode, caller="recording_uac_codec.xml", callee="recording_uas_codec.xml"),
]


def dominant_hz(channel: npt.NDArray[np.int16]) -> tuple[float, float]:
    """The strongest frequency and the share of the energy within 50 Hz of it."""
    spectrum = np.abs(np.fft.rfft(channel.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(channel), 1 / SAMPLE_RATE_HZ)
    peak = float(freqs[int(spectrum.argmax())])
    near = spectrum[np.abs(freqs - peak) <= 50].sum()
    return peak, float(near / spectrum.sum())


def decrypt(
    data_dir: Path, record: RecordingRecord, store: EvidenceStore, *, truncated: bool = False
) -> npt.NDArray[np.int16]:
    passphrase = (data_dir / "keys" / "development.passphrase").read_text().strip()
    key = load_private_key(data_dir / "keys" / "development.key", passphrase)
    reader = SegmentReader(
        data_dir / "recordings" / record.file_name,
        private_key=key,
        key_store=SqliteKeyStore(store),
        allow_truncated=truncated,
    )
    return np.frombuffer(reader.read_all(), dtype="<i2").reshape(-1, 2)


def manifests_verified(proxy: CallheraldProcess) -> object:
    """``callherald audit verify --json`` on the proxy's data directory: the chain is intact,
    every recording matches its manifest and every manifest is signed with the key the proxy made
    on its first start (exit 0); its ``manifests`` part."""
    verified = subprocess.run(
        [str(CALLHERALD), "audit", "verify", "--json", "--config", str(proxy.config_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    report = json.loads(verified.stdout)
    signatures = report["signatures"]
    assert (signatures["signed"], signatures["unsigned_before"]) == (report["manifests"]["checked"], 0)
    assert signatures["key_ids"] == [key["key_id"] for key in signatures["trusted"]]  # the one key made
    return report["manifests"]


def _local(at: dt.datetime) -> dt.datetime:
    return at.astimezone() if at.tzinfo is None else at


@requires_sipp
@pytest.mark.timeout(60)
@pytest.mark.parametrize("g711", G711_CASES, ids=lambda case: f"{case.codec}-{case.payload_type}")
@pytest.mark.parametrize("direction", list(Direction))
def test_recording_is_both_parties_from_the_bridge_and_nothing_in_plaintext(
    tmp_path: Path, direction: Direction, g711: G711Case
) -> None:
    write_prompt_wavs(tmp_path)
    outside_pcm, outside_payloads = pure_tone(OUTSIDE_HZ, TONE_PACKETS, encode=g711.encode)
    pbx_pcm, pbx_payloads = pure_tone(PBX_HZ, TONE_PACKETS, encode=g711.encode)
    caller_tone, callee_tone = (
        (outside_payloads, pbx_payloads)
        if direction is Direction.INBOUND
        else (pbx_payloads, outside_payloads)
    )
    call = call_with_tones(
        tmp_path,
        direction,
        caller_payloads=caller_tone,
        callee_payloads=callee_tone,
        policies=policy_yaml(),
        pause_ms=CALL_MS,
        caller=g711.caller,
        callee=g711.callee,
        payload_type=g711.payload_type,
        scenario_keys=g711.scenario_keys,
    )
    uas = call.uas
    data_dir = call.proxy.data_dir
    with EvidenceStore(data_dir / "evidence.sqlite") as store:
        (record,) = store.recordings_list()
        assert record.state is RecordingState.COMPLETE
        audio = decrypt(data_dir, record, store)
        timeline = store.call_timeline(record.call_id)
    # Over the loopback nothing is lost, late or moved, and the evidence (what `recordings show`
    # reads) says so for both channels: measured, and clean.
    quality = record.media_quality
    assert quality is not None
    assert (quality.outside_party.clean, quality.pbx_side.clean) == (True, True), quality
    # Left is the outside party, right the PBX side; no announcement audio in either.
    for column, expected_hz in ((0, OUTSIDE_HZ), (1, PBX_HZ)):
        peak, share = dominant_hz(audio[:, column])
        assert abs(peak - expected_hz) < 5, (column, peak)
        assert share > 0.95, (column, share)
    # The recording lasts as long as the parties were joined: first frame to the BYE.
    bye = next(m for m in uas.messages if not m.sent and m.first_line.startswith("BYE"))
    assert record.duration_ms is not None
    joined_s = (_local(bye.at) - record.first_frame_at).total_seconds()
    assert abs(record.duration_ms / 1000 - joined_s) < 0.1, (record.duration_ms, joined_s)
    assert abs(len(audio) / SAMPLE_RATE_HZ * 1000 - record.duration_ms) < 1
    # Evidence in order: notice heard whole, consent decided, then the first frame.
    kinds = [event.kind for event in timeline]
    ends = [e.at for e in timeline if e.kind is TimelineKind.ANNOUNCEMENT_END]
    consent = [e.at for e in timeline if e.kind is TimelineKind.CONSENT]
    first_frame = next(e.at for e in timeline if e.kind is TimelineKind.FIRST_FRAME)
    assert TimelineKind.ANNOUNCEMENT_START in kinds
    assert ends
    assert consent
    assert max(ends) <= first_frame
    assert max(consent) <= first_frame
    # The agent was told too (GDPR Art. 13): the beep on its leg as recording starts, played
    # whole, and on an outbound call its copy of the notice; neither is the outside party's notice.
    informed = [e for e in timeline if e.kind is TimelineKind.AGENT_INFORMED]
    agent_leg = f"{record.call_id}:{'b' if direction is Direction.INBOUND else 'a'}"
    assert {e.leg_id for e in informed} == {agent_leg}
    (beep,) = (e for e in informed if e.detail["kind"] == "tone")
    assert (beep.detail["name"], beep.detail["complete"]) == ("beep", True)
    # Dated by its first frame's tick, which a loop running late serves a few ms after its time.
    assert abs((beep.at - record.started_at).total_seconds()) < 0.1
    assert beep.at < beep.detail["ended_at"]
    copies = [(e.detail["name"], e.detail["complete"]) for e in informed if e.detail["kind"] == "prompt"]
    assert copies == ([] if direction is Direction.INBOUND else [("test-notice", True)])
    assert all(e.leg_id != agent_leg for e in timeline if e.kind is TimelineKind.ANNOUNCEMENT_END)
    logged = [record for record in evidence_records(call.log) if record["event"] == "agent_informed"]
    assert sorted("prompt" in record for record in logged) == sorted(
        e.detail["kind"] == "prompt" for e in informed
    )
    # Each is written once it is over: its last frame has stopped sounding by then.
    for logged_event in logged:
        ended_at, written_at = (
            dt.datetime.fromisoformat(str(logged_event[key])) for key in ("ended_at", "at")
        )
        assert ended_at <= written_at, logged_event
    # Nothing of the tones reaches the disk in plaintext: not as PCM, not as G.711.
    needles = [
        outside_pcm[:32].astype("<i2").tobytes(),
        pbx_pcm[:32].astype("<i2").tobytes(),
        audio[1000:1016].astype("<i2").tobytes(),
        outside_payloads[0][:32],
        pbx_payloads[0][:32],
    ]
    for path in data_dir.rglob("*"):
        if path.is_file() and "announcements-cache" not in path.parts:
            content = path.read_bytes()
            for needle in needles:
                assert needle not in content, path
    # The recording's end put its manifest into the audit log, and the evidence still matches it.
    assert manifests_verified(call.proxy) == {
        "ok": True,
        "checked": 1,
        "without_manifest": 0,
        "mismatches": [],
    }


@contextlib.contextmanager
def inbound_tone_call(
    tmp_path: Path,
    proxy: CallheraldProcess,
    *,
    caller_pause_ms: int,
    direction: Direction = Direction.INBOUND,
) -> Iterator[BackgroundSipp]:
    """An inbound (or ``direction``) SIPp call through ``proxy``, its RTP peers sending the outside
    party's and the PBX side's tones; yields the caller's SIPp once placed, and stops the peers
    afterwards."""
    _, outside_payloads = pure_tone(OUTSIDE_HZ, TONE_PACKETS)
    _, pbx_payloads = pure_tone(PBX_HZ, TONE_PACKETS)
    if direction is Direction.OUTBOUND:  # the PBX side calls
        outside_payloads, pbx_payloads = pbx_payloads, outside_payloads
    caller_sdp, callee_sdp = tmp_path / "caller.sdp", tmp_path / "callee.sdp"
    with (
        MediaPeer("caller", ssrc=0x11110001, payloads=outside_payloads) as caller,
        MediaPeer("callee", ssrc=0x22220002, payloads=pbx_payloads) as callee,
    ):
        caller.start(caller_sdp)
        callee.start(callee_sdp)
        uac_keys = sipp_keys(rtp_port=caller.port, portfile=caller_sdp, resultfile=tmp_path / "caller.txt")
        uas_keys = sipp_keys(rtp_port=callee.port, portfile=callee_sdp, resultfile=tmp_path / "callee.txt")
        with (
            start_callee("uas_call.xml", direction.callee_port(proxy), tmp_path, uas_keys, pause_ms=20000),
            start_caller(
                "uac_call.xml",
                direction.caller_target(proxy),
                tmp_path,
                uac_keys,
                number=direction.number,
                pause_ms=caller_pause_ms,
            ) as uac,
        ):
            yield uac
        caller.stop()
        callee.stop()


def kill_9_during_a_recorded_call(tmp_path: Path, policies: str) -> tuple[Path, dt.datetime]:
    """An inbound tone call recorded for 3.5 s, then callherald killed with SIGKILL: its data
    directory, and when it was killed."""
    with (
        running_callherald(tmp_path, policies=policies) as proxy,
        inbound_tone_call(tmp_path, proxy, caller_pause_ms=20000),
    ):
        assert proxy.wait_for_log('"event": "recording_started"', timeout_s=15), proxy.log_text()[-3000:]
        time.sleep(3.5)
        os.kill(proxy.process.pid, signal.SIGKILL)
        proxy.process.wait(timeout=5)
        return proxy.data_dir, dt.datetime.now(dt.UTC)


@requires_sipp
@pytest.mark.timeout(60)
def test_kill_9_during_a_call_keeps_every_sealed_second(tmp_path: Path) -> None:
    write_prompt_wavs(tmp_path)
    policies = policy_yaml()
    data_dir, killed_at = kill_9_during_a_recorded_call(tmp_path, policies)
    with EvidenceStore(data_dir / "evidence.sqlite") as store:
        (record,) = store.recordings_list()
        assert record.state is RecordingState.RECORDING
    # Restart on the same data directory: the recording is found and marked truncated.
    with running_callherald(tmp_path, policies=policies) as again:
        assert again.wait_for_log("after a crash", timeout_s=10), again.log_text()[-3000:]
    with EvidenceStore(data_dir / "evidence.sqlite") as store:
        (record,) = store.recordings_list()
        assert record.state is RecordingState.TRUNCATED
        audio = decrypt(data_dir, record, store, truncated=True)
        timeline = store.call_timeline(record.call_id)
    # The proxy cannot hash the audio; it pins the file as recovered (the torn tail cut off).
    file_bytes = (data_dir / "recordings" / record.file_name).read_bytes()
    assert (record.audio_sha256, record.size_bytes) == ("", len(file_bytes))
    assert record.file_sha256 == hashlib.sha256(file_bytes).hexdigest()
    assert record.duration_ms is not None
    recorded_before_kill = (killed_at - record.first_frame_at).total_seconds()
    # At most the unsealed last second is lost (plus the 200 ms the recorder holds back).
    assert recorded_before_kill - 1.3 <= record.duration_ms / 1000 <= recorded_before_kill
    assert abs(len(audio) / SAMPLE_RATE_HZ * 1000 - record.duration_ms) < 1
    peak, _ = dominant_hz(audio[:, 0])
    assert abs(peak - OUTSIDE_HZ) < 5
    assert any(event.kind is TimelineKind.CALL_END for event in timeline)
    # Recovery wrote the manifest with the truncated end; ending the call afterwards changes none of it.
    assert manifests_verified(again) == {"ok": True, "checked": 1, "without_manifest": 0, "mismatches": []}


@requires_sipp
@pytest.mark.timeout(60)
def test_a_file_changed_between_a_kill_9_and_the_restart_is_an_error_not_a_truncation(tmp_path: Path) -> None:
    write_prompt_wavs(tmp_path)
    policies = policy_yaml()
    data_dir, _ = kill_9_during_a_recorded_call(tmp_path, policies)
    with EvidenceStore(data_dir / "evidence.sqlite") as store:
        (record,) = store.recordings_list()
    path = data_dir / "recordings" / record.file_name
    second, _ = record_spans(path)[1]
    content = bytearray(path.read_bytes())
    content[second + 11] ^= 0x01  # record 1's counter: its checksum no longer matches
    path.write_bytes(bytes(content))
    with running_callherald(tmp_path, policies=policies) as again:
        assert again.wait_for_log("is CORRUPT", timeout_s=10), again.log_text()[-3000:]
    errors = [line for line in again.log_text().splitlines() if "is CORRUPT" in line]
    assert len(errors) == 1, errors
    assert "ERROR" in errors[0]
    assert "tampering or a disk fault" in errors[0]
    with EvidenceStore(data_dir / "evidence.sqlite") as store:
        (record,) = store.recordings_list()
    assert path.read_bytes() == content  # kept as found
    assert record.state is RecordingState.TRUNCATED
    assert record.end_reason is not None
    assert record.end_reason.startswith(
        f"corrupt at segment 1 (byte {second}): record header checksum mismatch"
    )
    assert record.file_sha256 == hashlib.sha256(content).hexdigest()
    assert record.size_bytes == len(content)
    # Its end is when the file was last written, not where the audio before the fault ends.
    assert record.finished_at is not None
    assert record.duration_ms is not None
    assert record.finished_at > record.first_frame_at + dt.timedelta(milliseconds=record.duration_ms + 500)


LONG_NOTICE_S = 5.0


@requires_sipp
@pytest.mark.timeout(90)
def test_kill_9_while_the_agent_hears_the_notice_keeps_that_it_was_told(tmp_path: Path) -> None:
    # Outbound, the agent hears its copy of the notice (here 5 s long). It is stored as it starts:
    # a kill -9 while it plays keeps that the agent was being told, and the next start ends it as
    # interrupted, where the call is known to have lasted.
    write_prompt_wavs(tmp_path)
    samples = np.arange(int(LONG_NOTICE_S * 16000))
    with wave.open(str(tmp_path / "notice.wav"), "wb") as notice:
        notice.setnchannels(1)
        notice.setsampwidth(2)
        notice.setframerate(16000)
        notice.writeframes(np.round(8000 * np.sin(2 * np.pi * 500 * samples / 16000)).astype("<i2").tobytes())
    policies = policy_yaml()
    with (
        running_callherald(tmp_path, policies=policies) as proxy,
        inbound_tone_call(tmp_path, proxy, caller_pause_ms=20000, direction=Direction.OUTBOUND),
    ):
        assert proxy.wait_for_log('"event": "agent_inform_started"', timeout_s=15), proxy.log_text()[-3000:]
        time.sleep(1.0)
        os.kill(proxy.process.pid, signal.SIGKILL)
        proxy.process.wait(timeout=5)
    assert '"event": "agent_informed"' not in proxy.log_text()  # it was still playing
    data_dir = proxy.data_dir
    with EvidenceStore(data_dir / "evidence.sqlite") as store:
        (call,) = store.calls_for_number(Direction.OUTBOUND.number)
        (playing,) = [e for e in store.call_timeline(call.call_id) if e.kind is TimelineKind.AGENT_INFORMED]
    assert (playing.leg_id, playing.detail["kind"], playing.detail["ended_at"]) == (
        f"{call.call_id}:a",
        "prompt",
        None,
    )
    # Restart on the same data directory: the notice copy is ended as interrupted, with its call.
    with running_callherald(tmp_path, policies=policies) as again:
        assert again.wait_for_log("left open by a crash: cut off", timeout_s=10), again.log_text()[-3000:]
    with EvidenceStore(data_dir / "evidence.sqlite") as store:
        timeline = store.call_timeline(call.call_id)
    (interrupted,) = [e for e in timeline if e.kind is TimelineKind.AGENT_INFORMED]
    assert interrupted.at == playing.at
    assert interrupted.detail["complete"] is False
    assert interrupted.detail["failure"] == INTERRUPTED_AGENT_NOTICE
    assert (
        interrupted.at
        <= interrupted.detail["ended_at"]
        < interrupted.at + dt.timedelta(seconds=LONG_NOTICE_S)
    )
    assert timeline[-1].kind is TimelineKind.CALL_END
    assert timeline[-1].detail == {"end_reason": "interrupted"}


@requires_sipp
@pytest.mark.timeout(90)
def test_a_disk_that_fills_mid_call_keeps_the_sealed_audio_and_all_the_evidence(tmp_path: Path) -> None:
    # The data directory on a small file system that fills up while a call is recorded: the call
    # goes on, and the proxy stops recording it (`calls list` says so, the log says why); the
    # recording ends at its last sealed segment; the evidence the database cannot take then
    # (recording end, call end) waits in memory and is written once the disk has room again; no
    # traceback, and the database is intact.
    write_prompt_wavs(tmp_path)
    with tiny_file_system(tmp_path / "data", size_kib=4096) as data_dir:
        with (
            running_callherald(
                tmp_path, policies=policy_yaml(), extra="recording:\n  min_free_mb: 0\n"
            ) as proxy,
            inbound_tone_call(tmp_path, proxy, caller_pause_ms=9000) as uac,
        ):

            def logged(text: str, timeout_s: float = 5.0) -> None:
                assert proxy.wait_for_log(text, timeout_s=timeout_s), proxy.log_text()[-3000:]

            logged('"event": "recording_started"', timeout_s=15)
            time.sleep(2.5)
            filler = fill_up(data_dir)
            logged("disk full, recording stopped at its last sealed segment")
            logged("recording stopped, the call is NOT recorded: disk full")
            listed = subprocess.run(
                [str(CALLHERALD), "calls", "list", "--json", "--config", str(proxy.config_path)],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            logged('"event": "call_ended"', timeout_s=15)
            logged("evidence is held in memory")
            filler.unlink()
            logged("disk space is back: the held evidence is written")
            caller_run = uac.finish()
        assert caller_run.returncode == 0, caller_run.stderr
        assert listed.returncode == 0, listed.stderr
        assert [call["recording"] for call in json.loads(listed.stdout)] == [False]
        log = proxy.log_text()
        assert "Traceback" not in log, log[-3000:]
        with EvidenceStore(data_dir / "evidence.sqlite") as store:
            (record,) = store.recordings_list()
            audio = decrypt(data_dir, record, store, truncated=True)
            (call,) = store.calls_for_number(record.calling)
            check = store.submit_read(lambda db: db.execute("PRAGMA integrity_check").fetchone()[0]).result()
        assert check == "ok"
        assert record.state is RecordingState.TRUNCATED
        assert record.duration_ms is not None
        assert 1500 <= record.duration_ms <= 3500, record.duration_ms
        assert abs(len(audio) / SAMPLE_RATE_HZ * 1000 - record.duration_ms) < 1
        peak, _ = dominant_hz(audio[:, 0])
        assert abs(peak - OUTSIDE_HZ) < 5
        assert call.ended_at is not None  # written once the disk had room again


@requires_sipp
@pytest.mark.timeout(120)
def test_evidence_waiting_for_disk_space_at_a_stop_is_in_the_record_after_the_next_start(
    tmp_path: Path,
) -> None:
    # A call while the data disk is full to the last byte: it connects unrecorded and its evidence
    # waits in memory. callherald is stopped (SIGTERM) before there is room again: the evidence is
    # kept in recording.held_evidence_dir, on another disk, and the next start writes it in.
    write_prompt_wavs(tmp_path)
    spool = tmp_path / "spool"
    spool.mkdir()
    extra = f"recording:\n  min_free_mb: 1\n  held_evidence_dir: {spool}\n"
    with tiny_file_system(tmp_path / "data", size_kib=4096) as data_dir:
        with running_callherald(tmp_path, policies=policy_yaml(), extra=extra) as proxy:
            filler = fill_up(data_dir)
            with inbound_tone_call(tmp_path, proxy, caller_pause_ms=5000) as uac:
                assert proxy.wait_for_log('"event": "not_recorded"', timeout_s=15), proxy.log_text()[-3000:]
                caller_run = uac.finish()
            assert proxy.wait_for_log('"event": "call_ended"', timeout_s=15), proxy.log_text()[-3000:]
            stop_callherald(proxy, timeout_s=30)  # the stop tries the database for a few seconds first
        assert caller_run.returncode == 0, caller_run.stderr
        assert proxy.process.returncode == 0
        first_log = proxy.log_text()
        assert f"kept in {spool}/evidence-held-" in first_log, first_log[-3000:]
        assert "not written" not in first_log, first_log[-3000:]
        (kept,) = spool.glob("evidence-held-*.jsonl")
        (not_recorded,) = [r for r in evidence_records(first_log) if r["event"] == "not_recorded"]
        call_id = str(not_recorded["call"])

        filler.unlink()
        with running_callherald(tmp_path, policies=policy_yaml(), extra=extra) as second:
            second_log = second.log_text()
        assert f"{kept}: evidence kept while the disk was full is written into the evidence database" in (
            second_log
        ), second_log[-3000:]
        assert not kept.exists()
        with EvidenceStore(data_dir / "evidence.sqlite") as store:
            timeline = store.call_timeline(call_id)
            assert store.audit_verify().ok
    kinds = [event.kind for event in timeline]
    assert kinds[0] is TimelineKind.CALL_SETUP
    assert TimelineKind.NOT_RECORDED in kinds
    assert kinds[-1] is TimelineKind.CALL_END
    assert timeline[-1].detail["end_reason"] != "interrupted"  # its real end, not a crash's


@requires_sipp
@pytest.mark.timeout(120)
def test_a_start_on_a_disk_too_full_for_the_database_takes_calls_and_writes_their_evidence_later(
    tmp_path: Path,
) -> None:
    # A clean stop leaves the evidence database without its -shm and -wal files, which SQLite must
    # make to open it: on a disk full to the last byte it cannot. callherald starts all the same,
    # connects a call unrecorded, holds its evidence in memory, and once there is room opens the
    # database and writes it in.
    write_prompt_wavs(tmp_path)
    with tiny_file_system(tmp_path / "data", size_kib=4096) as data_dir:
        with running_callherald(tmp_path, policies=policy_yaml()):
            pass  # the first start makes the database and the development key
        assert not (data_dir / "evidence.sqlite-shm").exists()
        filler = fill_up(data_dir)
        with running_callherald(tmp_path, policies=policy_yaml()) as proxy:

            def logged(text: str, timeout_s: float = 15.0) -> None:
                assert proxy.wait_for_log(text, timeout_s=timeout_s), proxy.log_text()[-3000:]

            logged("cannot open the evidence database: the disk holding it is full")
            with inbound_tone_call(tmp_path, proxy, caller_pause_ms=3000) as uac:
                logged('"event": "not_recorded"')
                caller_run = uac.finish()
            logged('"event": "call_ended"')
            logged("evidence is held in memory")
            filler.unlink()
            logged("disk space is back: the evidence database is open")
            logged("disk space is back: the held evidence is written")
            log = proxy.log_text()
        assert caller_run.returncode == 0, caller_run.stderr
        assert "Traceback" not in log, log[-3000:]
        (not_recorded,) = [r for r in evidence_records(log) if r["event"] == "not_recorded"]
        # The call's own evidence waits already, or the free space says it first.
        reason = str(not_recorded["reason"])
        assert reason.startswith(("disk full: evidence is waiting", "disk nearly full (")), reason
        with EvidenceStore(data_dir / "evidence.sqlite") as store:
            timeline = store.call_timeline(str(not_recorded["call"]))
            assert store.recordings_list() == []
            assert store.audit_verify().ok
    kinds = [event.kind for event in timeline]
    assert kinds[0] is TimelineKind.CALL_SETUP
    assert TimelineKind.NOT_RECORDED in kinds
    assert kinds[-1] is TimelineKind.CALL_END
    assert timeline[-1].detail["end_reason"] != "interrupted"


@requires_sipp
@pytest.mark.timeout(120)
def test_a_first_start_ever_on_a_full_disk_takes_calls_unrecorded_and_the_next_start_records(
    tmp_path: Path,
) -> None:
    # No development key can be written: callherald starts all the same and connects calls
    # unrecorded, saying why; a start with room makes the key and records again.
    write_prompt_wavs(tmp_path)
    extra = "recording:\n  min_free_mb: 0\n"  # the disk is tiny: recording needs room, not 200 MB
    with tiny_file_system(tmp_path / "data", size_kib=4096) as data_dir:
        filler = fill_up(data_dir)
        with running_callherald(tmp_path, policies=policy_yaml(), extra=extra) as proxy:
            assert proxy.wait_for_log(
                "cannot make the development key pair: the disk holding it is full", timeout_s=15
            ), proxy.log_text()[-3000:]
            with inbound_tone_call(tmp_path, proxy, caller_pause_ms=3000) as uac:
                assert proxy.wait_for_log('"event": "not_recorded"', timeout_s=15), proxy.log_text()[-3000:]
                caller_run = uac.finish()
            assert proxy.wait_for_log('"event": "call_ended"', timeout_s=15), proxy.log_text()[-3000:]
            log = proxy.log_text()
        assert caller_run.returncode == 0, caller_run.stderr
        assert "Traceback" not in log, log[-3000:]
        assert "DEVELOPMENT KEY" not in log
        (not_recorded,) = [r for r in evidence_records(log) if r["event"] == "not_recorded"]
        assert str(not_recorded["reason"]).startswith(
            ("disk full: evidence is waiting", "disk nearly full (")
        )

        filler.unlink()
        with running_callherald(tmp_path, policies=policy_yaml(), extra=extra) as second:
            with inbound_tone_call(tmp_path, second, caller_pause_ms=3000) as uac:
                assert second.wait_for_log('"event": "recording_started"', timeout_s=15), second.log_text()[
                    -3000:
                ]
                caller_run = uac.finish()
            assert second.wait_for_log('"event": "call_ended"', timeout_s=15), second.log_text()[-3000:]
            second_log = second.log_text()
        assert caller_run.returncode == 0, caller_run.stderr
        assert "made a new development key pair" in second_log, second_log[-3000:]


@requires_sipp
@pytest.mark.timeout(60)
def test_a_call_that_cannot_be_recorded_connects_and_the_evidence_says_why(tmp_path: Path) -> None:
    # More free space asked for than the disk has: the call connects unrecorded, and the evidence
    # (database and JSON log) says that and why; it never says a recording started or stopped.
    write_prompt_wavs(tmp_path)
    with (
        running_callherald(
            tmp_path, policies=policy_yaml(), extra="recording:\n  min_free_mb: 1000000000\n"
        ) as proxy,
        inbound_tone_call(tmp_path, proxy, caller_pause_ms=4000) as uac,
    ):
        assert proxy.wait_for_log('"event": "not_recorded"', timeout_s=15), proxy.log_text()[-3000:]
        caller_run = uac.finish()
        assert proxy.wait_for_log('"event": "call_ended"', timeout_s=15), proxy.log_text()[-3000:]
    assert caller_run.returncode == 0, caller_run.stderr
    records = evidence_records(proxy.log_text())
    events = [record["event"] for record in records]
    assert "recording_started" not in events
    assert "recording_stopped" not in events
    (not_recorded,) = [record for record in records if record["event"] == "not_recorded"]
    reason = str(not_recorded["reason"])
    assert reason.startswith("disk nearly full (")
    assert reason.endswith(" MB free, 1000000000 MB needed)")
    with EvidenceStore(proxy.data_dir / "evidence.sqlite") as store:
        assert store.recordings_list() == []
        timeline = store.call_timeline(str(not_recorded["call"]))
    assert [event.detail for event in timeline if event.kind is TimelineKind.NOT_RECORDED] == [
        {"reason": reason}
    ]


@requires_sipp
@pytest.mark.timeout(60)
def test_a_recording_the_evidence_record_refuses_is_stopped_and_listed_as_not_recorded(
    tmp_path: Path,
) -> None:
    # The evidence record refuses the recording the proxy opened: a trigger stores every prompt's
    # end as cut off, so no notice was heard to the end. Nothing is kept, the evidence says
    # not_recorded, and the proxy stops recording the call: `calls list` says so, the log says why.
    write_prompt_wavs(tmp_path)
    with running_callherald(tmp_path, policies=policy_yaml()) as proxy:
        database = sqlite3.connect(proxy.data_dir / "evidence.sqlite")
        try:
            database.execute(
                "CREATE TRIGGER prompts_cut_off AFTER UPDATE OF ended_at ON announcements_played "
                "BEGIN UPDATE announcements_played SET complete = 0 WHERE rowid = NEW.rowid; END"
            )
            database.commit()
        finally:
            database.close()
        with inbound_tone_call(tmp_path, proxy, caller_pause_ms=5000) as uac:
            stopped = "recording stopped, the call is NOT recorded: the evidence record refused the recording"
            assert proxy.wait_for_log(stopped, timeout_s=15), proxy.log_text()[-3000:]
            listed = subprocess.run(
                [str(CALLHERALD), "calls", "list", "--json", "--config", str(proxy.config_path)],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            caller_run = uac.finish()
        assert proxy.wait_for_log('"event": "call_ended"', timeout_s=15), proxy.log_text()[-3000:]
    assert caller_run.returncode == 0, caller_run.stderr
    records = evidence_records(proxy.log_text())
    events = [record["event"] for record in records]
    assert events.index("recording_started") < events.index("not_recorded")
    assert "recording_stopped" not in events
    (not_recorded,) = [record for record in records if record["event"] == "not_recorded"]
    reason = str(not_recorded["reason"])
    assert "no announcement was played to the end" in reason
    assert f"recording stopped, the call is NOT recorded: {reason}" in proxy.log_text()
    assert listed.returncode == 0, listed.stderr
    ref = not_recorded["call"]
    assert json.loads(listed.stdout) == [
        {"call": ref, "direction": "inbound", "recording": False, "paused": []}
    ]
    with EvidenceStore(proxy.data_dir / "evidence.sqlite") as store:
        assert store.recordings_list() == []
    assert list((proxy.data_dir / "recordings").iterdir()) == []


def g722_tone(frequency_hz: float, count: int, amplitude: float = 8000.0) -> list[bytes]:
    """A continuous 16 kHz sine as ``count`` 20 ms G.722 payloads (160 bytes each)."""
    encoder = G722(16000, 64000)
    samples = np.arange(count * 320)
    pcm = np.round(amplitude * np.sin(2 * np.pi * frequency_hz * samples / 16000)).astype(np.int16)
    encoded = bytes(encoder.encode(pcm))
    return [encoded[i * 160 : (i + 1) * 160] for i in range(count)]


def _heard(peer: MediaPeer) -> tuple[set[int], list[bytes]]:
    # The payload types of the RTP a peer received, and its payloads in arrival order.
    packets = [datagram.data for datagram in peer.received if len(datagram.data) > 12]
    return {data[1] & 0x7F for data in packets}, [data[12:] for data in packets]


@requires_sipp
@pytest.mark.timeout(60)
def test_a_g722_call_is_recorded_wideband(tmp_path: Path) -> None:
    write_prompt_wavs(tmp_path)
    call = call_with_tones(
        tmp_path,
        Direction.INBOUND,
        caller_payloads=g722_tone(OUTSIDE_HZ, TONE_PACKETS),
        callee_payloads=g722_tone(PBX_HZ, TONE_PACKETS),
        policies=policy_yaml(),
        pause_ms=CALL_MS,
        caller="recording_uac_codec.xml",
        callee="recording_uas_codec.xml",
        payload_type=9,
        scenario_keys={"payload_type": 9, "encoding": "G722"},
    )
    proxy = call.proxy
    data_dir = proxy.data_dir
    with EvidenceStore(data_dir / "evidence.sqlite") as store:
        (record,) = store.recordings_list()
        audio = decrypt(data_dir, record, store)
        passphrase = (data_dir / "keys" / "development.passphrase").read_text().strip()
        reader = SegmentReader(
            data_dir / "recordings" / record.file_name,
            private_key=load_private_key(data_dir / "keys" / "development.key", passphrase),
            key_store=SqliteKeyStore(store),
        )
        assert reader.audio_format.sample_rate_hz == 16000
    assert record.duration_ms is not None
    assert abs(len(audio) / 16000 * 1000 - record.duration_ms) < 1
    for column, expected_hz in ((0, OUTSIDE_HZ), (1, PBX_HZ)):
        spectrum = np.abs(np.fft.rfft(audio[:, column].astype(np.float64))) ** 2
        freqs = np.fft.rfftfreq(len(audio), 1 / 16000)
        assert abs(float(freqs[int(spectrum.argmax())]) - expected_hz) < 5, column
    # The caller heard the notice in G.722 (RFC 3551 §4.5.2: 160 octets per 20 ms): decoded, its
    # first 0.8 s is the notice's 300-1200 Hz sweep, not noise.
    types, payloads = _heard(call.caller)  # no CSRCs or extension in callherald's packets
    assert types == {9}
    assert {len(payload) for payload in payloads} == {160}
    notice = np.asarray(
        G722(16000, 64000).decode(b"".join(payloads[: round(NOTICE_S * 50)])), dtype=np.float64
    )
    spectrum = np.abs(np.fft.rfft(notice)) ** 2
    freqs = np.fft.rfftfreq(len(notice), 1 / 16000)
    assert spectrum[(freqs >= 250) & (freqs <= 1250)].sum() > 0.9 * spectrum.sum()
    assert float(np.sqrt(np.mean(notice * notice))) > 1000


def pcmu_carrier_calls_pcma_pbx(
    tmp_path: Path, pbx_scenario: str, carrier_scenario: str = "recording_uac_codec.xml"
) -> ToneCall:
    """An inbound call: the carrier (``carrier_scenario``) offers PCMU alone with the outside tone,
    the PBX (``pbx_scenario``) answers PCMA with the PBX tone."""
    write_prompt_wavs(tmp_path)
    _, outside_payloads = pure_tone(OUTSIDE_HZ, TONE_PACKETS, encode=ulaw_encode)
    _, pbx_payloads = pure_tone(PBX_HZ, TONE_PACKETS, encode=alaw_encode)
    return call_with_tones(
        tmp_path,
        Direction.INBOUND,
        caller_payloads=outside_payloads,
        callee_payloads=pbx_payloads,
        policies=policy_yaml(),
        pause_ms=CALL_MS,
        caller=carrier_scenario,
        callee=pbx_scenario,
        payload_type=0,
        scenario_keys={"payload_type": 0, "encoding": "PCMU"},
        callee_payload_type=8,
        callee_scenario_keys={"payload_type": 8, "encoding": "PCMA"},
    )


def assert_translated_and_recorded(call: ToneCall) -> None:
    """An inbound call of a µ-law carrier (outside tone) and an A-law PBX (PBX tone): the recording
    is complete with both tones, and each party heard only its own law, the other party's tone in
    it once they were joined."""
    data_dir = call.proxy.data_dir
    with EvidenceStore(data_dir / "evidence.sqlite") as store:
        (record,) = store.recordings_list()
        assert record.state is RecordingState.COMPLETE
        audio = decrypt(data_dir, record, store)
    for column, expected_hz in ((0, OUTSIDE_HZ), (1, PBX_HZ)):
        peak, share = dominant_hz(audio[:, column])
        assert abs(peak - expected_hz) < 5, (column, peak)
        assert share > 0.95, (column, share)
    for peer, payload_type, decode, expected_hz in (
        (call.caller, 0, ulaw_decode, PBX_HZ),
        (call.callee, 8, alaw_decode, OUTSIDE_HZ),
    ):
        types, payloads = _heard(peer)
        assert types == {payload_type}, peer.name
        joined = np.concatenate([decode(payload) for payload in payloads[-100:]])
        peak, share = dominant_hz(joined)
        assert abs(peak - expected_hz) < 5, (peer.name, peak)
        assert share > 0.95, (peer.name, share)


@requires_sipp
@pytest.mark.timeout(60)
def test_a_pbx_answering_the_other_g711_law_is_translated_and_both_parties_recorded(tmp_path: Path) -> None:
    # The carrier offers PCMU only and the PBX answers PCMA alone, against RFC 3264 §6.1 (SIPp's
    # built-in uas does the same with PCMU). callherald connects them and translates: the PBX
    # hears A-law on 8, the carrier µ-law on 0, and the recording has both tones.
    call = pcmu_carrier_calls_pcma_pbx(tmp_path, "recording_uas_codec.xml")
    assert (
        "leg b answered PCMA to an offer with PCMU only (RFC 3264 §6.1 forbids it): callherald"
        " translates that party's audio between the two G.711 laws"
    ) in call.log
    assert_translated_and_recorded(call)


@requires_sipp
@pytest.mark.timeout(60)
def test_a_pbx_refusing_the_callers_g711_law_is_offered_the_other_and_both_parties_recorded(
    tmp_path: Path,
) -> None:
    # The carrier offers PCMU only; the PBX has PCMA only and refuses that offer with 488.
    # callherald offers it PCMA too in a new INVITE, the PBX takes it, and callherald translates:
    # the PBX hears A-law on 8, the carrier µ-law on 0, and the recording has both tones.
    call = pcmu_carrier_calls_pcma_pbx(tmp_path, "recording_uas_refuse_law.xml")
    assert (
        "leg b refused an offer of one G.711 law alone (488): offering it PCMA too, which callherald"
        " translates to the other party's law"
    ) in call.log
    assert (
        "leg b answered PCMA, which callherald offered it beside PCMU: callherald translates that"
        " party's audio between the two G.711 laws"
    ) in call.log
    assert_translated_and_recorded(call)


@requires_sipp
@pytest.mark.timeout(60)
def test_an_a_law_pbx_holding_a_u_law_carrier_is_offered_to_it_in_u_law(tmp_path: Path) -> None:
    # The PBX has A-law only (it refused the carrier's µ-law alone and took the A-law callherald
    # offered beside it) and holds the call, then resumes it, each time offering A-law alone. The
    # carrier, µ-law only, would refuse that: callherald offers it µ-law in its place, and answers
    # the PBX in A-law (the scenarios check both). The hold pauses the recording, which is
    # complete with both tones, and each party heard only its own law.
    call = pcmu_carrier_calls_pcma_pbx(
        tmp_path, "recording_uas_refuse_law_hold.xml", carrier_scenario="recording_uac_codec_held.xml"
    )
    assert "leg b answered PCMA, which callherald offered it beside PCMU" in call.log
    with EvidenceStore(call.proxy.data_dir / "evidence.sqlite") as store:
        (record,) = store.recordings_list()
        timeline = store.call_timeline(record.call_id)
    pauses = [(event.kind, event.detail.get("reason")) for event in timeline if event.recording_id]
    assert [p for p in pauses if p[0] in (TimelineKind.PAUSE_START, TimelineKind.PAUSE_END)] == [
        (TimelineKind.PAUSE_START, "hold"),
        (TimelineKind.PAUSE_END, "hold"),
    ]
    assert_translated_and_recorded(call)


SIPP_PCAP_DIR = Path("/usr/share/sip-tester")  # where Debian's sip-tester puts uac_pcap's audio


@requires_sipp
@pytest.mark.skipif(not (SIPP_PCAP_DIR / "g711a.pcap").exists(), reason="SIPp's pcap files are not installed")
@pytest.mark.timeout(90)
def test_sipps_own_uac_pcap_and_uas_scenarios_make_a_recorded_call(tmp_path: Path) -> None:
    # SIPp's built-in scenarios as a tester runs them: uac_pcap calls in offering PCMA only, plays
    # its pcap and presses 1 by RFC 4733 eight seconds in (while the question plays); the
    # built-in uas answers PCMU whatever it is offered and echoes what it hears. callherald
    # translates the PBX side's audio, and the call is recorded with the consent it was given.
    write_prompt_wavs(tmp_path)
    (tmp_path / "pcap").symlink_to(SIPP_PCAP_DIR)
    common = ["-i", LOOPBACK, "-m", "1", "-nostdin", "-timeout", "40s"]
    with running_callherald(tmp_path, policies=policy_yaml(timeout_s=10)) as proxy:
        pbx = subprocess.Popen(
            ["sipp", "-sn", "uas", "-p", str(proxy.pbx_target_port), "-rtp_echo", *common],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=tmp_path,
        )
        try:
            carrier = subprocess.run(
                ["sipp", "-sn", "uac_pcap", "-s", "0612345678", *common, f"{LOOPBACK}:{proxy.carrier_port}"],
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
                cwd=tmp_path,
                timeout=60,
                check=False,
            )
            assert proxy.wait_for_log('"event": "call_ended"', timeout_s=10), proxy.log_text()[-3000:]
        finally:
            stop_process(pbx)
        log = proxy.log_text()
    assert carrier.returncode == 0, carrier.stdout[-2000:] + carrier.stderr[-2000:]
    assert "leg b answered PCMU to an offer with PCMA only" in log
    assert "call failed" not in log
    records = evidence_records(log)
    (decided,) = [record for record in records if record["event"] == "consent_decided"]
    assert decided["decision"] == "granted", decided
    with EvidenceStore(proxy.data_dir / "evidence.sqlite") as store:
        (record,) = store.recordings_list()
        assert record.state is RecordingState.COMPLETE
        assert sorted(p.purpose.purpose_id for p in record.purposes) == ["evidence", "training"]
        audio = decrypt(proxy.data_dir, record, store)
    assert len(audio) > 0


SWITCH_AT_MS = 4500  # after the caller's ACK: the notice is over and the parties are joined
RECODEC_CALL_MS = 9000


def _wait_for_file(path: Path, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return True
        time.sleep(0.02)
    return False


@requires_sipp
@pytest.mark.timeout(60)
@pytest.mark.parametrize("later_payload_type", [8, 97], ids=["static", "dynamic"])
def test_a_codec_change_by_reinvite_mid_call_keeps_both_parties_recorded(
    tmp_path: Path, later_payload_type: int
) -> None:
    # The caller re-INVITEs offering PCMA only, the PBX answers PCMA, and both parties switch from
    # µ-law to A-law as the re-INVITE reaches the PBX. Every second of both tones is recorded. On
    # a dynamic type that no SDP of the call listed before (RFC 3264 §8.3.2 lets an offer add
    # one), the recorder learns it from the re-INVITE.
    write_prompt_wavs(tmp_path)
    caller_sdp, callee_sdp = tmp_path / "caller.sdp", tmp_path / "callee.sdp"
    caller_result, callee_result = tmp_path / "caller.txt", tmp_path / "callee.txt"
    peers = {
        name: MediaPeer(
            name,
            ssrc=ssrc,
            payloads=pure_tone(hz, TONE_PACKETS * 2)[1],
            later_payloads=pure_tone(hz, TONE_PACKETS * 2, encode=alaw_encode)[1],
            later_payload_type=later_payload_type,
        )
        for name, ssrc, hz in (("caller", 0x11110001, OUTSIDE_HZ), ("callee", 0x22220002, PBX_HZ))
    }
    with running_callherald(tmp_path, policies=policy_yaml()) as proxy, peers["caller"], peers["callee"]:
        peers["caller"].start(caller_sdp)
        peers["callee"].start(callee_sdp)
        later = ["-set", "later_pt", str(later_payload_type)]
        uac_keys = [
            *sipp_keys(rtp_port=peers["caller"].port, portfile=caller_sdp, resultfile=caller_result),
            *later,
        ]
        uas_keys = [
            *sipp_keys(rtp_port=peers["callee"].port, portfile=callee_sdp, resultfile=callee_result),
            *later,
        ]
        inbound = Direction.INBOUND
        with (
            start_callee(
                "recording_uas_recodec.xml", inbound.callee_port(proxy), tmp_path, uas_keys, pause_ms=0
            ) as uas,
            start_caller(
                "recording_uac_recodec.xml",
                inbound.caller_target(proxy),
                tmp_path,
                [*uac_keys, "-set", "switch_at_ms", str(SWITCH_AT_MS)],
                number=inbound.number,
                pause_ms=RECODEC_CALL_MS,
            ) as uac,
        ):
            assert proxy.wait_for_log('"event": "recording_started"', timeout_s=15), proxy.log_text()[-3000:]
            assert _wait_for_file(callee_result, 15), "the PBX saw no re-INVITE"
            switch_at = time.monotonic()
            for peer in peers.values():
                peer.codec_switch_at = switch_at
            runs = [uac.finish(timeout_s=20), uas.finish(timeout_s=5)]
        for peer in peers.values():
            peer.stop()
        for run in runs:
            assert run.returncode == 0, run.report()
    # Callherald relayed the PCMA-only offer to the PBX and its PCMA answer to the caller.
    assert f"RTP/AVP {later_payload_type} 101" in callee_result.read_text()
    assert f"RTP/AVP {later_payload_type} 101" in caller_result.read_text()
    for peer in peers.values():  # each sent both codecs
        assert peer.codec_switched_from is not None, peer.name
        assert 0 < peer.codec_switched_from < peer.sent, peer.name
    data_dir = proxy.data_dir
    with EvidenceStore(data_dir / "evidence.sqlite") as store:
        (record,) = store.recordings_list()
        assert record.state is RecordingState.COMPLETE
        audio = decrypt(data_dir, record, store)
    # Both tones, at full level, in every 100 ms of the recording from 100 ms on (the first
    # packets of each side may come a packet time after the first frame).
    tenths = len(audio) // 800
    assert tenths >= 40, len(audio)
    for column, expected_hz in ((0, OUTSIDE_HZ), (1, PBX_HZ)):
        channel = audio[800 : tenths * 800, column].astype(np.float64)
        levels = np.sqrt(np.mean(channel.reshape(-1, 800) ** 2, axis=1))
        assert levels.min() > 0.8 * 8000 / np.sqrt(2), (column, levels.round().tolist())
        peak, share = dominant_hz(audio[:, column])
        assert abs(peak - expected_hz) < 5, (column, peak)
        assert share > 0.95, (column, share)


@requires_sipp
@pytest.mark.timeout(60)
@pytest.mark.parametrize("direction", list(Direction))
def test_an_srtp_call_is_relayed_untouched_and_not_recorded(tmp_path: Path, direction: Direction) -> None:
    # callherald cannot play its notice into SRTP (it has no keys of its own), so under a
    # recording policy the call connects unrecorded (on_failure: connect_unrecorded): offer and
    # answer keep their transport and keys, and every packet passes as it came, header and all.
    write_prompt_wavs(tmp_path)
    rng = np.random.default_rng(7)
    ciphertext = [rng.bytes(SAMPLES_PER_PACKET + 10) for _ in range(150)]  # payload + auth tag
    call = call_with_tones(
        tmp_path,
        direction,
        caller_payloads=ciphertext[:75],
        callee_payloads=ciphertext[75:],
        policies=policy_yaml(),
        pause_ms=2500,
        caller="uac_srtp.xml",
        callee="uas_srtp.xml",
    )
    # Each side saw the other's transport and key: callherald anchored the media, nothing else.
    caller_saw = (tmp_path / "caller.txt").read_text()
    callee_saw = (tmp_path / "callee.txt").read_text()
    assert caller_saw.startswith("RTP/SAVP 0 101|a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:QUJD"), caller_saw
    assert callee_saw.startswith("RTP/SAVP 0 8 101|a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1u"), (
        callee_saw
    )
    for sender, receiver in ((call.caller, call.callee), (call.callee, call.caller)):
        sent = {sender.packet(index) for index in range(sender.sent)}
        heard = [datagram.data for datagram in receiver.received]
        assert len(heard) >= sender.sent - 2, (sender.name, len(heard), sender.sent)
        assert set(heard) <= sent, sender.name  # byte for byte: no renumbering, no notice, no beep
    records = evidence_records(call.log)
    (failed,) = [record for record in records if record["event"] == "notice_failed"]
    assert failed["reason"] == "the audio is sent as RTP/SAVP: callherald plays the notice in plain RTP only"
    assert not [record for record in records if record["event"] == "recording_started"]
    with EvidenceStore(call.proxy.data_dir / "evidence.sqlite") as store:
        assert store.recordings_list() == []


def assert_failed_unrecorded_with_488(
    proxy: CallheraldProcess, uac: SippRun, workdir: Path, *, why: str, reason: str
) -> None:
    """The PBX's INVITE got 488 with the Warning (RFC 3261 §20.43), its only final response; the
    log and the evidence say ``why`` the call failed, it ended ``reason``, and nothing was
    recorded."""
    assert (workdir / "caller.txt").read_text().strip() == '305 callherald "Incompatible media format"'
    caller_finals = [
        m.first_line for m in uac.messages if not m.sent and not m.first_line.startswith("SIP/2.0 1")
    ]
    assert caller_finals == ["SIP/2.0 488 Not Acceptable Here"]
    records = evidence_records(proxy.log_text())
    (failed,) = [record for record in records if record["event"] == "notice_failed"]
    assert failed["reason"] == why
    (ended,) = [record for record in records if record["event"] == "call_ended"]
    assert ended["reason"] == reason
    assert not [record for record in records if record["event"] == "recording_started"]
    assert f"call failed: {why}" in proxy.log_text()
    with EvidenceStore(proxy.data_dir / "evidence.sqlite") as store:
        assert store.recordings_list() == []


@requires_sipp
@pytest.mark.timeout(60)
def test_a_callee_answering_with_no_allowed_codec_is_hung_up_and_the_caller_gets_488(tmp_path: Path) -> None:
    # The carrier answers G.729 only: a 200 to the PBX would carry no answer (RFC 3261 §13.2.1).
    # callherald ACKs the carrier's 200 and sends it BYE (§15), refuses the PBX's INVITE with 488
    # and a Warning (§20.43), and the evidence says why the call failed: nothing is recorded.
    write_prompt_wavs(tmp_path)
    with running_callherald(tmp_path, policies=policy_yaml()) as proxy:
        uac, uas = place_call(
            proxy, Direction.OUTBOUND, tmp_path, caller="uac_expect_488.xml", callee="uas_answer_g729.xml"
        )
        assert_ok(proxy, uac, uas)
        assert proxy.wait_for_log('"event": "call_ended"', timeout_s=10), proxy.log_text()[-3000:]
    callee_heard = uas.methods_received()
    assert callee_heard == ["INVITE", "ACK", "BYE"]
    why = "the callee's answer has no audio codec of the offer that is allowed here (g722, pcma, pcmu)"
    assert_failed_unrecorded_with_488(proxy, uac, tmp_path, why=why, reason="no-codec-in-answer")


@requires_sipp
@pytest.mark.timeout(60)
def test_a_callee_answering_in_its_183_with_no_allowed_codec_is_cancelled_and_the_caller_gets_488(
    tmp_path: Path,
) -> None:
    # The carrier answers G.729 only in its 183, and its 200 would have to bring the same answer
    # (RFC 3261 §13.2.1): callherald cancels the carrier's INVITE (§9.1) rather than pass the PBX a
    # 183 without SDP, refuses the PBX's INVITE with 488 and a Warning, and the evidence says why.
    write_prompt_wavs(tmp_path)
    with running_callherald(tmp_path, policies=policy_yaml()) as proxy:
        uac, uas = place_call(
            proxy,
            Direction.OUTBOUND,
            tmp_path,
            caller="uac_expect_488.xml",
            callee="uas_early_answer_g729.xml",
        )
        assert_ok(proxy, uac, uas)
        assert proxy.wait_for_log('"event": "call_ended"', timeout_s=10), proxy.log_text()[-3000:]
    callee_heard = uas.methods_received()
    assert callee_heard == ["INVITE", "CANCEL", "ACK"]
    assert not [m for m in uac.messages if not m.sent and m.first_line.startswith("SIP/2.0 183")]
    why = "the callee's answer in its 183 has no audio codec of the offer that is allowed here (g722, pcma, pcmu)"
    assert_failed_unrecorded_with_488(proxy, uac, tmp_path, why=why, reason="no-codec-in-answer")


@requires_sipp
@pytest.mark.timeout(60)
def test_a_late_offer_with_no_allowed_codec_is_rejected_in_the_ack_and_the_caller_gets_488(
    tmp_path: Path,
) -> None:
    # The PBX's INVITE has no SDP and the carrier's 200 offers G.729 only: the ACK must carry the
    # answer (RFC 3261 §13.2.1), which rejects the stream with port 0 (RFC 3264 §6); callherald
    # then sends the carrier BYE, refuses the PBX's INVITE with 488 and a Warning, and the
    # evidence says why the call failed: nothing is recorded.
    write_prompt_wavs(tmp_path)
    with running_callherald(tmp_path, policies=policy_yaml()) as proxy:
        uac, uas = place_call(
            proxy,
            Direction.OUTBOUND,
            tmp_path,
            caller="uac_late_offer_expect_488.xml",
            callee="uas_answer_g729.xml",
        )
        assert_ok(proxy, uac, uas)
        assert proxy.wait_for_log('"event": "call_ended"', timeout_s=10), proxy.log_text()[-3000:]
    callee_heard = uas.requests_received()
    assert [m.method for m in callee_heard] == ["INVITE", "ACK", "BYE"]
    invite, ack = callee_heard[0], callee_heard[1]
    assert invite.header("Content-Length") == "0"
    assert ack.header("Content-Type") == "application/sdp"
    assert "m=audio 0 RTP/AVP 18" in ack.text.split("\n\n", 1)[1].splitlines(), ack.text
    why = "the callee's offer in its 2xx to an INVITE without SDP has no audio codec allowed here (g722, pcma, pcmu)"
    assert_failed_unrecorded_with_488(proxy, uac, tmp_path, why=why, reason="no-codec-in-offer")
