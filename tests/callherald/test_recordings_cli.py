"""``callherald recordings list / show / export`` on a real data directory: evidence database, sealed files."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import hashlib
import io
import json
import logging
import os
import pwd
import re
import shutil
import sqlite3
import subprocess
import sys
import uuid
import wave
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from callherald.app import open_storage
from callherald.cli import PASSPHRASE_ENV, main
from callherald.evidence import INTERRUPTED_AGENT_NOTICE, recover_open_recordings
from callherald.layout import DataLayout, ensure_development_key
from callherald.recordings import audit_actor, media_quality_text, storage_text, timeline_table
from config import EMBEDDED_DEFAULT_YAML, HOME_ENV, default_config
from storage.audit import AuditEntry, AuditLog
from storage.keys import generate_private_key, key_id, load_private_key, save_private_key, save_public_key
from storage.manifests import AUDIT_ACTION_MANIFEST
from storage.records import (
    AUDIT_ACTION_LATER_EVENT,
    AgentNotice,
    AgentNoticeKind,
    Announcement,
    CallEnded,
    CallPurposes,
    CallStarted,
    ChannelQuality,
    ConsentDecision,
    Decision,
    Direction,
    DtmfEvent,
    EvidenceStore,
    LaterEvent,
    LaterEventKind,
    LawfulBasis,
    Leg,
    LegRole,
    MediaQuality,
    Pause,
    PauseReason,
    Purpose,
    RecordingEnd,
    RecordingRecord,
    RecordingStarted,
    RecordingState,
    TimelineEvent,
    TimelineKind,
)
from storage.segments import CODEC_PCM_S16LE, AudioFormat, FsyncPolicy, RecordingSummary, SegmentWriter
from storage.signing import SIGNED_PREFIX, load_signing_key, public_key_path
from storage.sqlite_keys import SqliteKeyStore
from tests.callherald.test_audit_cli import serving_store
from tests.storage.recordings import record_spans

T0 = dt.datetime(2026, 3, 2, 9, 15, 0, tzinfo=dt.UTC)
RATE_HZ = 8000
STEREO = AudioFormat(codec=CODEC_PCM_S16LE, sample_rate_hz=RATE_HZ, channels=2, sample_width_bytes=2)
LEFT_HZ = 1000  # the outside party
RIGHT_HZ = 440  # the PBX side
PASSPHRASE = "reviewer passphrase 2026"
PROMPT_SHA = "5e" * 32

EVIDENCE = Purpose(
    purpose_id="evidence", lawful_basis=LawfulBasis.CONTRACT, reference="contract terms v3", retention_days=90
)
TRAINING = Purpose(
    purpose_id="training", lawful_basis=LawfulBasis.CONSENT, reference="consent script v2", retention_days=30
)

COMPLETE_ID = uuid.UUID("00000000-0000-4000-8000-00000000000a")
TRUNCATED_ID = uuid.UUID("00000000-0000-4000-8000-00000000000b")
COMPLETE_SECONDS = 3
TRUNCATED_SECONDS = 2


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def audio_sha256(seconds: int) -> str:
    """What the recorder stores as ``audio_sha256``: the SHA-256 of the plaintext it sealed."""
    return hashlib.sha256(b"".join(tone_segment(index) for index in range(seconds))).hexdigest()


def tone_segment(index: int) -> bytes:
    """One second of 1000 Hz left, 440 Hz right, continuous across segments."""
    t = (np.arange(RATE_HZ) + index * RATE_HZ) / RATE_HZ
    frames = np.empty((RATE_HZ, 2), dtype="<i2")
    frames[:, 0] = np.round(8000 * np.sin(2 * np.pi * LEFT_HZ * t))
    frames[:, 1] = np.round(8000 * np.sin(2 * np.pi * RIGHT_HZ * t))
    return frames.tobytes()


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    call_id: str
    recording_id: uuid.UUID
    direction: Direction
    calling: str
    called: str
    offset_s: float
    seconds: int
    final: bool
    media_quality: MediaQuality | None = None
    """As the recorder measured it; None as for a recording closed before callherald kept it."""
    storage_region: str = ""
    worm: bool = False


LOSSY = MediaQuality(
    outside_party=ChannelQuality(lost_ms=240, late_packets=2, late_ms=40), pbx_side=ChannelQuality()
)
COMPLETE_CALL = Call(
    call_id="call-a",
    recording_id=COMPLETE_ID,
    direction=Direction.INBOUND,
    calling="+31201234567",
    called="+31307654321",
    offset_s=0,
    seconds=COMPLETE_SECONDS,
    final=True,
    media_quality=LOSSY,
    storage_region="EU, Amsterdam (own rack)",
)
TRUNCATED_CALL = Call(
    call_id="call-b",
    recording_id=TRUNCATED_ID,
    direction=Direction.OUTBOUND,
    calling="+31307654321",
    called="+31612345678",
    offset_s=3600,
    seconds=TRUNCATED_SECONDS,
    final=False,
    worm=True,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class DataDir:
    layout: DataLayout
    reviewer_key: Path
    summaries: dict[uuid.UUID, RecordingSummary]
    key_ids: list[str]
    """The key ids of the two recipients every recording is wrapped for (development, reviewer)."""


def record_call(
    store: EvidenceStore,
    layout: DataLayout,
    call: Call,
    *,
    recipients: list[X25519PublicKey],
    sha256: str | None = None,
    ended: bool = True,
) -> RecordingSummary:
    """A call with notice, digit, consent, purposes, a recording with a hold pause, and its end
    (unless not ``ended``: then the call and its recording are still going on, as at a crash)."""
    out_leg, pbx_leg = f"{call.call_id}-out", f"{call.call_id}-pbx"
    t = call.offset_s
    store.write(
        CallStarted(
            call_id=call.call_id,
            direction=call.direction,
            calling=call.calling,
            called=call.called,
            local_line="+31307654321",
            agent_id="agent-7",
            setup_at=at(t),
            legs=(
                Leg(
                    leg_id=out_leg,
                    call_id=call.call_id,
                    role=LegRole.OUTSIDE,
                    sip_call_id="a@c",
                    remote_uri="sip:c",
                ),
                Leg(
                    leg_id=pbx_leg,
                    call_id=call.call_id,
                    role=LegRole.PBX,
                    sip_call_id="b@p",
                    remote_uri="sip:p",
                ),
            ),
        )
    )
    store.write(
        Announcement(
            leg_id=out_leg,
            prompt_id="notice",
            version="4",
            language="nl",
            audio_sha256=PROMPT_SHA,
            started_at=at(t + 0.5),
            ended_at=at(t + 4.0),
            complete=True,
        )
    )
    store.write(DtmfEvent(leg_id=out_leg, digit="1", mechanism="rfc4733", at=at(t + 5.0), counted=True))
    store.write(
        ConsentDecision(
            call_id=call.call_id,
            question_id="q-training",
            question_version="1",
            purpose_id="training",
            decision=Decision.GRANTED,
            mechanism="dtmf:1",
            at=at(t + 5.1),
        )
    )
    store.write(CallPurposes(call_id=call.call_id, purposes=(EVIDENCE, TRAINING)))
    rid = call.recording_id
    store.write(
        RecordingStarted(
            recording_id=rid,
            call_id=call.call_id,
            file_name=layout.recording_file(str(rid)).name,
            key_id=tuple(key_id(recipient) for recipient in recipients),
            started_at=at(t + 5.5),
            first_frame_at=at(t + 5.5),
            purposes=("evidence", "training"),
            storage_region=call.storage_region,
            worm=call.worm,
        )
    )
    store.write(  # the agent's beep as the recording starts (GDPR Art. 13: the agent is told too)
        AgentNotice(
            leg_id=pbx_leg,
            kind=AgentNoticeKind.TONE,
            name="beep",
            started_at=at(t + 5.52),
            ended_at=at(t + 5.82),
            complete=True,
        )
    )
    store.write(
        Pause(recording_id=rid, reason=PauseReason.HOLD, started_at=at(t + 6.0), ended_at=at(t + 6.5))
    )
    writer = SegmentWriter(
        layout.recording_file(str(rid)),
        recording_id=rid,
        recipients=recipients,
        audio_format=STEREO,
        key_store=SqliteKeyStore(store),
        fsync=FsyncPolicy.NEVER,
    )
    for index in range(call.seconds):
        writer.write_segment(tone_segment(index))
    summary = writer.close(final=call.final)
    if not ended:
        return summary
    end = RecordingEnd(
        recording_id=rid,
        finished_at=at(t + 5.5 + call.seconds),
        audio_sha256=sha256 or audio_sha256(call.seconds),
        size_bytes=summary.file_bytes,
        duration_ms=round(summary.duration_s * 1000),
        end_reason="ended" if call.final else "interrupted",
        media_quality=call.media_quality,
    )
    if call.final:
        store.record_recording_finished(end).result()
    else:
        store.record_recording_truncated(end).result()
    store.write(CallEnded(call_id=call.call_id, ended_at=at(t + 6.0 + call.seconds), end_reason="bye"))
    return summary


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DataDir:
    layout = DataLayout(tmp_path / "data")
    layout.recordings_dir.mkdir(parents=True)
    development_public, _ = ensure_development_key(layout)
    reviewer = generate_private_key()
    reviewer_key = tmp_path / "reviewer.key"
    save_private_key(reviewer_key, reviewer, PASSPHRASE, scrypt_log2_n=14)
    summaries = {}
    with serving_store(layout) as store:
        for call in (COMPLETE_CALL, TRUNCATED_CALL):
            summaries[call.recording_id] = record_call(
                store, layout, call, recipients=[development_public, reviewer.public_key()]
            )
        store.write(
            LaterEvent(
                call_id=COMPLETE_CALL.call_id,
                kind=LaterEventKind.ACCESS,
                at=at(86_400),
                actor="dpo",
                detail={"request": "art15-7"},
            )
        )
    monkeypatch.setenv(HOME_ENV, str(layout.root))
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)
    key_ids = [key_id(development_public), key_id(reviewer.public_key())]
    return DataDir(layout=layout, reviewer_key=reviewer_key, summaries=summaries, key_ids=key_ids)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["recordings", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --------------------------------------------------------------------------------------------------
# list


def test_list_prints_a_table(data: DataDir, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "list")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == [
        "recording", "call", "direction", "calling", "called", "started", "(UTC)", "duration", "state", "size",
        "legal", "hold",
    ]  # fmt: skip
    assert len(rows) == 2
    assert rows[0].split()[:9] == [
        str(COMPLETE_ID), "call-a", "inbound", "+31201234567", "+31307654321",
        "2026-03-02", "09:15:05", "0:00:03", "complete",
    ]  # fmt: skip
    assert rows[1].split()[:9] == [
        str(TRUNCATED_ID), "call-b", "outbound", "+31307654321", "+31612345678",
        "2026-03-02", "10:15:05", "0:00:02", "truncated",
    ]  # fmt: skip
    assert re.search(r"KiB +-$", rows[0])  # not on legal hold


def test_list_json_carries_every_field(data: DataDir, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "list", "--json")
    assert code == 0
    items = json.loads(out)
    assert [item["recording_id"] for item in items] == [str(COMPLETE_ID), str(TRUNCATED_ID)]
    assert set(items[0]) == set(RecordingRecord.__dataclass_fields__)
    # Its manifest's audit row, signed with the data directory's key, the signature fitting the row.
    signer = load_signing_key(data.layout.manifest_signing_key)
    with EvidenceStore(data.layout.evidence_db) as store:
        rows = store.submit_read(lambda db: AuditLog(db).entries()).result()
    manifest = next(row for row in rows if row.action == "manifest" and row.subject == str(COMPLETE_ID))
    assert (items[0].pop("manifest_seq"), items[0].pop("manifest_key_id")) == (manifest.seq, signer.key_id)
    signature = base64.b64decode(items[0].pop("manifest_signature"))
    signer.public_key.verify(signature, SIGNED_PREFIX + manifest.hash.encode())
    summary = data.summaries[COMPLETE_ID]
    assert items[0] == {
        "recording_id": str(COMPLETE_ID),
        "call_id": "call-a",
        "file_name": f"{COMPLETE_ID}.chrec",
        "key_id": data.key_ids,  # one per recipient the recording is wrapped for
        "state": "complete",
        "started_at": "2026-03-02T09:15:05.500000+00:00",
        "first_frame_at": "2026-03-02T09:15:05.500000+00:00",
        "finished_at": "2026-03-02T09:15:08.500000+00:00",
        "audio_sha256": audio_sha256(COMPLETE_SECONDS),
        "size_bytes": summary.file_bytes,
        "duration_ms": 3000,
        "end_reason": "ended",
        "direction": "inbound",
        "calling": "+31201234567",
        "called": "+31307654321",
        "purposes": [
            {
                "purpose_id": "evidence",
                "lawful_basis": "contract",
                "reference": "contract terms v3",
                "retention_days": 90,
                "version": 1,
                "delete_after": "2026-05-31",
            },
            {
                "purpose_id": "training",
                "lawful_basis": "consent",
                "reference": "consent script v2",
                "retention_days": 30,
                "version": 1,
                "delete_after": "2026-04-01",
            },
        ],
        "erased_at": None,
        "erased_by": None,
        "erasure_reason": None,
        "held_at": None,
        "held_by": None,
        "hold_reason": None,
        "file_sha256": "",
        "media_quality": {
            "outside_party": {
                "lost_ms": 240,
                "late_packets": 2,
                "late_ms": 40,
                "timestamp_jumps": 0,
                "drift_silence_ms": 0,
                "drift_dropped_ms": 0,
                "ssrc_changes": 0,
                "duplicate_packets": 0,
            },
            "pbx_side": {
                "lost_ms": 0,
                "late_packets": 0,
                "late_ms": 0,
                "timestamp_jumps": 0,
                "drift_silence_ms": 0,
                "drift_dropped_ms": 0,
                "ssrc_changes": 0,
                "duplicate_packets": 0,
            },
        },
        "storage_region": "EU, Amsterdam (own rack)",
        "worm": False,
    }
    assert items[1]["state"] == "truncated"
    assert items[1]["media_quality"] is None  # not measured
    assert (items[1]["storage_region"], items[1]["worm"]) == ("", True)


LIST_FILTERS = [
    pytest.param([], [COMPLETE_ID, TRUNCATED_ID], id="all"),
    pytest.param(["--number", "+31201234567"], [COMPLETE_ID], id="number-calling"),
    pytest.param(["--number", "+31612345678"], [TRUNCATED_ID], id="number-called"),
    pytest.param(["--number", "+31307654321"], [COMPLETE_ID, TRUNCATED_ID], id="number-both"),
    pytest.param(["--number", "31201234567"], [COMPLETE_ID], id="number-without-plus"),
    pytest.param(["--number", "+31 20 123 4567"], [COMPLETE_ID], id="number-with-spaces"),
    pytest.param(["--number", "+31-20-1234567"], [COMPLETE_ID], id="number-with-dashes"),
    pytest.param(["--number", "+3120"], [], id="number-is-not-a-prefix"),
    pytest.param(["--state", "truncated"], [TRUNCATED_ID], id="state"),
    pytest.param(["--state", "recording"], [], id="state-none"),
    pytest.param(["--since", "2026-03-02T10:00:00"], [TRUNCATED_ID], id="since-naive-is-utc"),
    pytest.param(["--since", "2026-03-02T10:00:00+01:00"], [COMPLETE_ID, TRUNCATED_ID], id="since-offset"),
    pytest.param(["--until", "2026-03-02T10:00:00Z"], [COMPLETE_ID], id="until"),
    pytest.param(["--since", "2026-03-03"], [], id="since-date"),
    pytest.param(["--until", "2026-03-02"], [COMPLETE_ID, TRUNCATED_ID], id="until-date-is-the-whole-day"),
    pytest.param(["--until", "2026-03-01"], [], id="until-date-before"),
    pytest.param(["--limit", "1"], [COMPLETE_ID], id="limit"),
]


@pytest.mark.parametrize(("arguments", "expected"), LIST_FILTERS)
def test_list_filters(
    data: DataDir, capsys: pytest.CaptureFixture[str], arguments: list[str], expected: list[uuid.UUID]
) -> None:
    code, out, _ = run(capsys, "list", "--json", *arguments)
    assert code == 0
    assert [item["recording_id"] for item in json.loads(out)] == [str(rid) for rid in expected]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--since", "yesterday"], "not an ISO 8601 date or time"),
        (["--limit", "0"], "must be at least 1"),
        (["--state", "lost"], "invalid choice"),
        (["--number", ""], "expected a number, got nothing"),
        (["--number", "  "], "expected a number, got nothing"),
    ],
)
def test_list_refuses_bad_values(
    data: DataDir, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["recordings", "list", *arguments])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_list_reads_the_data_dir_of_config(
    data: DataDir, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "elsewhere"))
    config = tmp_path / "callherald.yaml"
    config.write_text(EMBEDDED_DEFAULT_YAML + f"data_dir: {data.layout.root}\n", encoding="utf-8")
    code, out, _ = run(capsys, "list", "--json", "--config", str(config))
    assert code == 0
    assert len(json.loads(out)) == 2


def test_list_needs_no_carrier_password_in_the_environment(
    data: DataDir, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only `serve` uses the carrier's password; an admin's shell need not have it.
    monkeypatch.delenv("CH_UNSET_CARRIER_PASSWORD", raising=False)
    credentials = '  credentials:\n    username: "trunk"\n    password: {env: CH_UNSET_CARRIER_PASSWORD}\n'
    text = EMBEDDED_DEFAULT_YAML.replace("  port: 5080\n", "  port: 5080\n" + credentials, 1)
    assert text != EMBEDDED_DEFAULT_YAML
    config = tmp_path / "callherald.yaml"
    config.write_text(text + f"data_dir: {data.layout.root}\n", encoding="utf-8")
    code, out, err = run(capsys, "list", "--json", "--config", str(config))
    assert (code, err) == (0, "")
    assert len(json.loads(out)) == 2


def test_list_without_an_evidence_database_says_so_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A reviewer in the wrong directory, or a data_dir typo: not "no recordings".
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "fresh"))
    said = f"callherald recordings: no evidence database at {tmp_path / 'fresh' / 'evidence.sqlite'}\n"
    assert run(capsys, "list") == (1, "", said)
    assert run(capsys, "list", "--json") == (1, "", said)
    assert not (tmp_path / "fresh").exists()


def test_list_of_an_evidence_database_without_recordings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = DataLayout(tmp_path / "data")
    layout.root.mkdir()
    EvidenceStore(layout.evidence_db).close()
    monkeypatch.setenv(HOME_ENV, str(layout.root))
    assert run(capsys, "list") == (0, "no recordings\n", "")
    assert run(capsys, "list", "--json") == (0, "[]\n", "")


# --------------------------------------------------------------------------------------------------
# show

TIMELINE = [
    ("call_setup", None),
    ("announcement_start", "call-a-out"),
    ("announcement_end", "call-a-out"),
    ("dtmf", "call-a-out"),
    ("consent", None),
    ("recording_start", None),
    ("first_frame", None),
    ("agent_informed", "call-a-pbx"),
    ("pause_start", None),
    ("pause_end", None),
    ("recording_end", None),
    ("call_end", None),
    ("later_event", None),
]


def test_show_json_gives_the_recording_and_its_timeline_in_order(
    data: DataDir, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "show", str(COMPLETE_ID), "--json")
    assert code == 0
    document = json.loads(out)
    assert document["recording"]["recording_id"] == str(COMPLETE_ID)
    timeline = document["timeline"]
    assert [(event["kind"], event["leg_id"]) for event in timeline] == TIMELINE
    times = [dt.datetime.fromisoformat(event["at"]) for event in timeline]
    assert times == sorted(times)
    assert all(event["at"].endswith("+00:00") for event in timeline)
    announcement = timeline[1]["detail"]
    assert announcement == {
        "prompt_id": "notice",
        "version": "4",
        "language": "nl",
        "audio_sha256": PROMPT_SHA,
    }
    assert timeline[2]["detail"]["complete"] is True
    assert timeline[4]["detail"]["decision"] == "granted"
    assert timeline[5]["recording_id"] == str(COMPLETE_ID)
    assert timeline[5]["detail"]["key_id"] == data.key_ids
    assert document["recording"]["key_id"] == data.key_ids
    assert document["recording"]["media_quality"]["outside_party"]["lost_ms"] == 240
    assert document["recording"]["media_quality"]["pbx_side"]["lost_ms"] == 0
    assert timeline[7]["detail"] == {
        "kind": "tone",
        "name": "beep",
        "version": "",
        "language": "",
        "audio_sha256": "",
        "ended_at": "2026-03-02T09:15:05.820000+00:00",
        "complete": True,
        "failure": None,
    }
    assert timeline[12]["detail"] == {"kind": "access", "actor": "dpo", "request": "art15-7"}
    (end,) = [event for event in timeline if event["kind"] == "recording_end"]
    assert end["detail"]["media_quality"] == document["recording"]["media_quality"]


def test_show_prints_facts_and_a_timeline_table(data: DataDir, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "show", str(COMPLETE_ID))
    assert code == 0
    facts, timeline = out.split("\n\n", 1)
    assert f"recording:          {COMPLETE_ID}" in facts
    assert "state:              complete" in facts
    assert "end reason:         ended" in facts
    assert (
        "media quality:      outside party: 240 ms lost (silence in the file), 2 packets too late to "
        "place (40 ms); PBX side: clean"
    ) in facts
    assert f"audio sha256:       {audio_sha256(COMPLETE_SECONDS)}" in facts
    assert f"key ids:            {', '.join(data.key_ids)}" in facts
    assert "storage:            region EU, Amsterdam (own rack), rewritable" in facts
    lines = timeline.splitlines()
    assert lines[0] == "timeline of call call-a:"
    assert lines[1].split() == ["time", "(UTC)", "event", "leg", "details"]
    labels = [
        "call set-up", "announcement start", "announcement end", "digit", "consent", "recording start",
        "first frame", "agent informed", "pause start", "pause end", "recording end", "call end",
        "later event",
    ]  # fmt: skip
    event_column = slice(lines[1].index("event"), lines[1].index("leg"))
    assert [line[event_column].strip() for line in lines[2:]] == labels
    assert f"prompt notice version 4 (nl), sha256 {PROMPT_SHA}" in lines[3]
    assert lines[2].startswith("2026-03-02 09:15:00.000")
    assert "1 via rfc4733" in lines[5]
    assert "granted for purpose training" in lines[6]
    assert f"file {COMPLETE_ID}.chrec, key ids {', '.join(data.key_ids)}" in lines[7]
    assert "call-a-pbx  tone beep until 2026-03-02 09:15:05.820, played to the end" in lines[9]
    assert "reason hold" in lines[10]
    assert "complete (ended), 0:00:03" in lines[12]
    assert lines[12].endswith(
        ", media quality outside party: 240 ms lost (silence in the file), 2 packets too late to "
        "place (40 ms); PBX side: clean"
    )
    assert "access by dpo: request art15-7" in lines[14]


@pytest.mark.parametrize(
    ("region", "worm", "said"),
    [
        ("EU, Frankfurt", True, "region EU, Frankfurt, write-once (WORM)"),
        ("", False, "region not stated, rewritable"),
        ("", None, "not recorded"),  # stored before callherald kept it
    ],
)
def test_show_says_where_the_file_is_kept(region: str, worm: bool | None, said: str) -> None:
    record = RecordingRecord(
        recording_id=COMPLETE_ID,
        call_id="call-a",
        file_name="f.chrec",
        key_id=("k",),
        state=RecordingState.COMPLETE,
        started_at=at(0),
        first_frame_at=at(0),
        finished_at=at(3),
        audio_sha256=None,
        size_bytes=None,
        duration_ms=None,
        end_reason="ended",
        direction=Direction.INBOUND,
        calling="1",
        called="2",
        storage_region=region,
        worm=worm,
    )
    assert storage_text(record) == said


def test_erasing_a_recording_kept_on_write_once_storage_destroys_its_keys_and_leaves_its_file(
    data: DataDir, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = data.layout.recording_file(str(TRUNCATED_ID))
    code, out, err = run(
        capsys, "erase", str(TRUNCATED_ID), "--reason", "Art. 17 request 2026-43", "--dry-run"
    )
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == (
        f"would erase recording {TRUNCATED_ID} (call call-b), leaving its file on the write-once storage"
    )
    code, out, err = run(capsys, "erase", str(TRUNCATED_ID), "--reason", "Art. 17 request 2026-43")
    assert (code, err) == (0, "")
    assert out == (
        f"erased recording {TRUNCATED_ID} (call call-b): wrapped keys destroyed; its file {path} stays on"
        " the write-once storage, which no key can decrypt now\n"
    )
    assert path.exists()
    with EvidenceStore(data.layout.evidence_db) as store:
        assert not SqliteKeyStore(store).get(TRUNCATED_ID)
        (record,) = store.recordings_list(state=RecordingState.ERASED)
    assert record.recording_id == TRUNCATED_ID
    code, _, err = run(
        capsys, "export", str(TRUNCATED_ID), "--out", str(tmp_path / "x.wav"), "--key", str(data.reviewer_key)
    )
    assert code == 1
    assert "was erased" in err
    assert not (tmp_path / "x.wav").exists()


def test_show_says_a_recording_closed_before_media_quality_was_kept_was_not_measured(
    data: DataDir, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "show", str(TRUNCATED_ID))
    assert code == 0
    assert "media quality:      not measured" in out
    code, out, _ = run(capsys, "show", str(TRUNCATED_ID), "--json")
    document = json.loads(out)
    assert document["recording"]["media_quality"] is None
    (end,) = [
        event
        for event in document["timeline"]
        if event["kind"] == "recording_end" and event["recording_id"] == str(TRUNCATED_ID)
    ]
    assert "media_quality" not in end["detail"]  # not measured: nothing to tell, not "clean"


@pytest.mark.parametrize(
    ("column", "value"),
    [("media_quality", "not json"), ("media_quality", '{"outside_party": 1}'), ("started_at", "yesterday")],
)
def test_a_row_edited_into_nonsense_is_refused_by_name_and_audit_verify_still_runs(
    data: DataDir, capsys: pytest.CaptureFixture[str], column: str, value: str
) -> None:
    # A value no callherald writer stores (the database edited by hand, a disk fault).
    with contextlib.closing(sqlite3.connect(data.layout.evidence_db)) as db, db:
        db.execute(f"UPDATE recordings SET {column} = ? WHERE id = ?", [value, str(COMPLETE_ID)])
    for argv in (["list"], ["list", "--json"], ["show", str(COMPLETE_ID)], ["show", str(TRUNCATED_ID)]):
        code, out, err = run(capsys, *argv)
        assert (code, out) == (1, ""), argv
        assert err.startswith(
            f"callherald recordings: recording {COMPLETE_ID}: its row in the evidence record"
        )
        assert err.endswith("cannot be read (" + err.split("cannot be read (", 1)[1])
        assert "callherald audit verify tells what changed\n" in err
    code = main(["audit", "verify"])
    out, err = capsys.readouterr().out, capsys.readouterr().err
    assert code == 1, (out, err)
    if column == "media_quality":
        assert f"recording {COMPLETE_ID}" in out


RECORD = RecordingRecord(
    recording_id=COMPLETE_ID,
    call_id="call-a",
    file_name=f"{COMPLETE_ID}.chrec",
    key_id=("k",),
    state=RecordingState.COMPLETE,
    started_at=at(5),
    first_frame_at=at(5),
    finished_at=at(8),
    audio_sha256="ab" * 32,
    size_bytes=100,
    duration_ms=3000,
    end_reason="ended",
    direction=Direction.INBOUND,
    calling="+31201234567",
    called="+31307654321",
)


@pytest.mark.parametrize(
    ("quality", "said"),
    [
        (MediaQuality(outside_party=ChannelQuality(), pbx_side=ChannelQuality()), "clean"),
        (
            MediaQuality(
                outside_party=ChannelQuality(late_ms=12),
                pbx_side=ChannelQuality(late_packets=1, late_ms=20, timestamp_jumps=1),
            ),
            "outside party: 12 ms of a packet too late to place; PBX side: 1 packet too late to place "
            "(20 ms), 1 timestamp jump (audio continued as it came)",
        ),
        (
            MediaQuality(
                outside_party=ChannelQuality(),
                pbx_side=ChannelQuality(timestamp_jumps=2, drift_silence_ms=60, drift_dropped_ms=40),
            ),
            "outside party: clean; PBX side: 2 timestamp jumps (audio continued as it came), 60 ms of "
            "silence put in for drift, 40 ms dropped for drift",
        ),
        (
            MediaQuality(outside_party=ChannelQuality(ssrc_changes=1), pbx_side=ChannelQuality()),
            "outside party: clean, 1 SSRC change (audio continued as it came); PBX side: clean",
        ),
    ],
)
def test_media_quality_reads_per_channel(quality: MediaQuality, said: str) -> None:
    record = dataclasses.replace(RECORD, media_quality=quality)
    assert media_quality_text(record) == said
    assert media_quality_text(dataclasses.replace(record, media_quality=None)) == "not measured"
    running = dataclasses.replace(record, media_quality=None, finished_at=None)
    assert media_quality_text(running) == "-"


@pytest.mark.parametrize(
    ("version", "complete", "failure", "said"),
    [
        ("4", True, None, "prompt notice version 4 (nl) played to the end"),
        ("4", False, None, "prompt notice version 4 (nl) cut off"),
        ("4", False, "file missing", "prompt notice version 4 (nl) failed (file missing)"),
        ("", False, "file missing", "prompt notice (nl) failed (file missing)"),  # could not start
    ],
)
def test_an_announcement_s_end_says_how_it_ended(
    version: str, complete: bool, failure: str | None, said: str
) -> None:
    end = TimelineEvent(
        at=dt.datetime(2026, 3, 2, 9, 15, 7, tzinfo=dt.UTC),
        kind=TimelineKind.ANNOUNCEMENT_END,
        leg_id="call-a:a",
        detail={
            "prompt_id": "notice",
            "version": version,
            "language": "nl",
            "complete": complete,
            "failure": failure,
        },
    )
    (row,) = timeline_table([end]).splitlines()[1:]
    assert row.endswith(said)


@pytest.mark.parametrize(
    ("kind", "name", "complete", "failure", "said"),
    [
        ("tone", "beep", True, None, "tone beep until 2026-03-02 09:15:07.300, played to the end"),
        ("tone", "beep", False, "no address", "tone beep until 2026-03-02 09:15:07.300, failed (no address)"),
        (  # ended by the next start after a crash while it played
            "tone",
            "beep",
            False,
            INTERRUPTED_AGENT_NOTICE,
            "tone beep until 2026-03-02 09:15:07.300, failed (interrupted: callherald stopped while it played)",
        ),
        (
            "prompt",
            "notice",
            False,
            None,
            f"prompt notice version 4 (nl), sha256 {PROMPT_SHA} until 2026-03-02 09:15:07.300, cut off",
        ),
    ],
)
def test_what_told_the_agent_says_how_it_played(
    kind: str, name: str, complete: bool, failure: str | None, said: str
) -> None:
    event = TimelineEvent(
        at=dt.datetime(2026, 3, 2, 9, 15, 7, tzinfo=dt.UTC),
        kind=TimelineKind.AGENT_INFORMED,
        leg_id="call-a:b",
        detail={
            "kind": kind,
            "name": name,
            "version": "4" if kind == "prompt" else "",
            "language": "nl" if kind == "prompt" else "",
            "audio_sha256": PROMPT_SHA if kind == "prompt" else "",
            "ended_at": dt.datetime(2026, 3, 2, 9, 15, 7, 300000, tzinfo=dt.UTC),
            "complete": complete,
            "failure": failure,
        },
    )
    (row,) = timeline_table([event]).splitlines()[1:]
    assert row.split()[2:5] == ["agent", "informed", "call-a:b"]
    assert row.endswith(said)


def test_what_tells_the_agent_while_its_call_runs_has_no_end_yet() -> None:
    event = TimelineEvent(
        at=dt.datetime(2026, 3, 2, 9, 15, 7, tzinfo=dt.UTC),
        kind=TimelineKind.AGENT_INFORMED,
        leg_id="call-a:b",
        detail={
            "kind": "tone",
            "name": "beep",
            "version": "",
            "language": "",
            "audio_sha256": "",
            "ended_at": None,
            "complete": False,
            "failure": None,
        },
    )
    (row,) = timeline_table([event]).splitlines()[1:]
    assert row.endswith("call-a:b  tone beep, no end stored yet")


def test_a_call_not_recorded_says_why() -> None:
    entry = TimelineEvent(
        at=dt.datetime(2026, 3, 2, 9, 15, 7, tzinfo=dt.UTC),
        kind=TimelineKind.NOT_RECORDED,
        detail={"reason": "disk full: evidence is waiting for disk space"},
    )
    (row,) = timeline_table([entry]).splitlines()[1:]
    assert row.split()[2:4] == ["not", "recorded"]
    assert row.endswith("  reason disk full: evidence is waiting for disk space")


@pytest.mark.parametrize(
    ("decision", "mechanism", "said"),
    [
        ("granted", "dtmf:1", "granted for purpose training (question q-training version 1, dtmf:1)"),
        ("no_answer", "none", "no_answer for purpose training (question q-training version 1)"),  # no key
    ],
)
def test_a_consent_decision_names_its_mechanism_only_when_it_has_one(
    decision: str, mechanism: str, said: str
) -> None:
    event = TimelineEvent(
        at=dt.datetime(2026, 3, 2, 9, 15, 7, tzinfo=dt.UTC),
        kind=TimelineKind.CONSENT,
        detail={
            "question_id": "q-training",
            "question_version": "1",
            "purpose_id": "training",
            "decision": decision,
            "mechanism": mechanism,
        },
    )
    (row,) = timeline_table([event]).splitlines()[1:]
    assert row.endswith(said)


@pytest.mark.parametrize(
    ("recording_id", "code", "message"),
    [
        (str(uuid.UUID(int=7)), 1, f"no recording {uuid.UUID(int=7)} in the evidence record"),
        ("not-a-uuid", 2, "not a recording id"),
    ],
)
def test_show_refuses_an_unknown_id(
    data: DataDir, capsys: pytest.CaptureFixture[str], recording_id: str, code: int, message: str
) -> None:
    result, out, err = run(capsys, "show", recording_id)
    assert (result, out) == (code, "")
    assert message in err


# --------------------------------------------------------------------------------------------------
# export


def _peak_hz(samples: npt.NDArray[np.float64], rate_hz: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate_hz / len(samples))


def assert_tones(path: Path, seconds: int) -> None:
    with wave.open(str(path), "rb") as audio:
        assert (audio.getnchannels(), audio.getsampwidth(), audio.getframerate()) == (2, 2, RATE_HZ)
        assert audio.getnframes() == seconds * RATE_HZ
        frames = np.frombuffer(audio.readframes(audio.getnframes()), dtype="<i2").reshape(-1, 2)
    expected = np.frombuffer(b"".join(tone_segment(i) for i in range(seconds)), dtype="<i2").reshape(-1, 2)
    assert np.array_equal(frames, expected)  # lossless: the very samples that were sealed
    assert _peak_hz(frames[:, 0].astype(np.float64), RATE_HZ) == pytest.approx(LEFT_HZ, abs=1)
    assert _peak_hz(frames[:, 1].astype(np.float64), RATE_HZ) == pytest.approx(RIGHT_HZ, abs=1)


def audit_entries(layout: DataLayout) -> list[AuditEntry]:
    """The audit rows the commands wrote (not the manifests the recordings' ends wrote, nor the rows
    of the later events the calls stored); the chain verifies, and what the commands did (export,
    erasure, hold) leaves every manifest matching."""
    with EvidenceStore(layout.evidence_db) as store:
        assert store.audit_verify().ok
        assert store.verify_manifests().ok
        entries = store.submit_read(lambda db: AuditLog(db).entries()).result()
    return [
        entry for entry in entries if entry.action not in (AUDIT_ACTION_MANIFEST, AUDIT_ACTION_LATER_EVENT)
    ]


def test_export_wav_with_a_key_and_passphrase(
    data: DataDir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "call-a.wav"
    code, stdout, err = run(
        capsys, "export", str(COMPLETE_ID), "--out", str(out), "--key", str(data.reviewer_key)
    )
    assert (code, err) == (0, "")
    assert stdout.startswith(f"wrote {out} (wav, 3.000 s, complete, key id ")
    assert out.stat().st_mode & 0o777 == 0o600
    assert_tones(out, COMPLETE_SECONDS)
    [entry] = audit_entries(data.layout)
    assert (entry.actor, entry.action, entry.subject) == (audit_actor(), "export", str(COMPLETE_ID))
    assert entry.actor == f"cli (user {pwd.getpwuid(os.getuid()).pw_name}, uid {os.getuid()})"
    detail = json.loads(entry.detail)
    assert detail["format"] == "wav"
    assert detail["state"] == "complete"
    assert detail["audio_sha256"] == audio_sha256(COMPLETE_SECONDS)
    assert detail["out"] == str(out.resolve())


def test_export_warns_about_a_private_key_other_users_can_read(
    data: DataDir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data.reviewer_key.chmod(0o644)
    out = tmp_path / "call-a.wav"
    code, _, err = run(capsys, "export", str(COMPLETE_ID), "--out", str(out), "--key", str(data.reviewer_key))
    assert code == 0
    assert f"warning: the private key {data.reviewer_key} is open to other users (mode 0644)" in err
    assert_tones(out, COMPLETE_SECONDS)


@pytest.mark.parametrize("beside_its_private_key", [True, False], ids=["beside", "alone"])
def test_export_with_a_public_key_says_to_give_the_private_key(
    data: DataDir, tmp_path: Path, capsys: pytest.CaptureFixture[str], beside_its_private_key: bool
) -> None:
    # The recipient file, given by mistake: it was told to chmod it, then that it is not JSON.
    public_key = load_private_key(data.reviewer_key, PASSPHRASE).public_key()
    public = (
        data.reviewer_key.with_suffix(".pub") if beside_its_private_key else tmp_path / "keys" / "escrow.pub"
    )
    public.parent.mkdir(exist_ok=True)
    save_public_key(public, public_key)
    public.chmod(0o644)
    out = tmp_path / "call-a.wav"
    code, stdout, err = run(capsys, "export", str(COMPLETE_ID), "--out", str(out), "--key", str(public))
    which = (
        data.reviewer_key
        if beside_its_private_key
        else "the NAME.key made with it by callherald keys generate"
    )
    assert (code, stdout) == (2, "")
    assert err == f"callherald recordings: {public} is a public key: give the private key file ({which})\n"
    assert not out.exists()


def test_export_with_the_development_key_warns(
    data: DataDir, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV)  # the development key's passphrase file is used
    out = tmp_path / "dev.wav"
    code, _, err = run(capsys, "export", str(COMPLETE_ID), "--out", str(out))
    assert code == 0
    assert "warning: using the development key" in err
    assert_tones(out, COMPLETE_SECONDS)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_export_flac_decodes_to_the_same_audio(
    data: DataDir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "call-a.FLAC"
    code, stdout, err = run(
        capsys, "export", str(COMPLETE_ID), "--out", str(out), "--key", str(data.reviewer_key)
    )
    assert (code, err) == (0, "")
    assert "(flac, 3.000 s, complete" in stdout
    assert out.read_bytes()[:4] == b"fLaC"
    assert out.stat().st_mode & 0o777 == 0o600
    decoded = tmp_path / "decoded.wav"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", str(out), "-c:a", "pcm_s16le", str(decoded)],
        check=True,
        timeout=60,
    )
    assert_tones(decoded, COMPLETE_SECONDS)
    assert json.loads(audit_entries(data.layout)[0].detail)["format"] == "flac"


def test_export_of_a_truncated_recording_keeps_the_intact_part(
    data: DataDir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = data.layout.recording_file(str(TRUNCATED_ID))
    with open(path, "ab") as stream:  # a torn tail left by a crash after the record was made
        stream.write(b"\x01" * 10)
    out = tmp_path / "call-b.wav"
    code, stdout, err = run(
        capsys, "export", str(TRUNCATED_ID), "--out", str(out), "--key", str(data.reviewer_key)
    )
    assert code == 0
    assert f"recording {TRUNCATED_ID} is truncated: exported its 2 intact segments (2.000 s)" in err
    assert "10 bytes of torn tail ignored" in err
    assert "truncated" in stdout
    assert_tones(out, TRUNCATED_SECONDS)
    detail = json.loads(audit_entries(data.layout)[0].detail)
    assert (detail["state"], detail["partial"]) == ("truncated", False)


LIVE_ID = uuid.UUID("00000000-0000-4000-8000-00000000000d")
LIVE_CALL = Call(
    call_id="call-d",
    recording_id=LIVE_ID,
    direction=Direction.INBOUND,
    calling="+31201234567",
    called="+31307654321",
    offset_s=7200,
    seconds=3,
    final=False,
)


def _record_live_call(data: DataDir) -> None:
    """LIVE_CALL's recording, still being written (or left so by a crash): no end in the record."""
    development_public, _ = ensure_development_key(data.layout)
    with serving_store(data.layout) as store:
        record_call(store, data.layout, LIVE_CALL, recipients=[development_public], ended=False)


def _recover_after_a_crash(data: DataDir) -> None:
    """What the next start does with LIVE_CALL: the record pins the file's size and duration."""
    with serving_store(data.layout) as store:
        [message, _] = recover_open_recordings(data.layout, store)
    assert message == f"recording {LIVE_ID} after a crash: truncated, 3000 ms kept"


def _cut_after_segments(path: Path, segments: int) -> None:
    """Cut ``path`` just after its first ``segments`` records, as someone with the file could."""
    _, end = record_spans(path)[segments - 1]
    with open(path, "r+b") as stream:
        stream.truncate(end)


def test_export_of_a_recording_still_being_written_is_audited_as_partial(
    data: DataDir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _record_live_call(data)
    out = tmp_path / "live.wav"
    code, stdout, err = run(capsys, "export", str(LIVE_ID), "--out", str(out))
    assert code == 0
    assert f"recording {LIVE_ID} is still being written: exporting what is on disk now" in err
    assert (
        f"the evidence record holds no audio SHA-256 for recording {LIVE_ID} (it is still being recorded: "
        "callherald stores it when the recording ends)"
    ) in err
    assert "truncated" not in err + stdout  # not yet: it has no end
    assert "crash" not in err
    assert stdout.startswith(f"wrote {out} (wav, 3.000 s, so far, key id ")
    assert_tones(out, 3)
    detail = json.loads(audit_entries(data.layout)[0].detail)
    assert (detail["state"], detail["partial"]) == ("recording", True)  # the record's state, not the file's


def test_export_of_a_recording_recovered_after_a_crash(
    data: DataDir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _record_live_call(data)
    _recover_after_a_crash(data)
    out = tmp_path / "recovered.wav"
    code, stdout, err = run(capsys, "export", str(LIVE_ID), "--out", str(out))
    assert code == 0
    assert (
        f"recording {LIVE_ID} was recovered after a crash: the evidence record holds no audio SHA-256 "
        "for it, but the SHA-256 of its file, which matches"
    ) in err
    assert "(wav, 3.000 s, truncated," in stdout
    assert_tones(out, 3)
    detail = json.loads(audit_entries(data.layout)[0].detail)
    assert (detail["state"], detail["partial"]) == ("truncated", False)
    file_sha256 = hashlib.sha256(data.layout.recording_file(str(LIVE_ID)).read_bytes()).hexdigest()
    code, shown, _ = run(capsys, "show", str(LIVE_ID))
    assert code == 0
    assert f"file sha256:        {file_sha256} (as recovered after a crash)" in shown
    assert f"sha256 -, file sha256 {file_sha256}" in shown  # the recording's end in the timeline
    verified = run_on(data.layout.root, "audit", "verify")
    assert verified.returncode == 0
    assert "recovered files: 1 checked, each matches the SHA-256 pinned at its recovery" in verified.stdout


def _recovered_before_files_were_pinned(data: DataDir) -> None:
    """LIVE_CALL's recording closed as the recovery of earlier versions did: size and duration only."""
    path = data.layout.recording_file(str(LIVE_ID))
    with serving_store(data.layout) as store:
        store.record_recording_truncated(
            RecordingEnd(
                recording_id=LIVE_ID,
                finished_at=at(LIVE_CALL.offset_s + 5.5 + LIVE_CALL.seconds),
                audio_sha256="",
                size_bytes=path.stat().st_size,
                duration_ms=LIVE_CALL.seconds * 1000,
                end_reason="interrupted",
            )
        ).result()


def _forge_with_the_public_key(data: DataDir) -> None:
    """What anyone who can write the data directory can do with the recipient's PUBLIC key alone to
    LIVE_CALL's recording: seal other audio (silence) under the same header (same id and format:
    the same bytes), wrap a new data key for the recipient, and replace the file and its key rows.
    Same size, same duration, every segment authentic."""
    development_public, _ = ensure_development_key(data.layout)
    path = data.layout.recording_file(str(LIVE_ID))
    size = path.stat().st_size
    path.unlink()
    with sqlite3.connect(data.layout.evidence_db) as attacker:
        attacker.execute("DELETE FROM key_store WHERE recording_id = ?", [str(LIVE_ID)])
    attacker.close()
    with serving_store(data.layout) as store:
        writer = SegmentWriter(
            path,
            recording_id=LIVE_ID,
            recipients=[development_public],
            audio_format=STEREO,
            key_store=SqliteKeyStore(store),
            fsync=FsyncPolicy.NEVER,
        )
        for _ in range(LIVE_CALL.seconds):
            writer.write_segment(bytes(len(tone_segment(0))))
        writer.close(final=False)
    assert path.stat().st_size == size


def test_a_recovered_recording_forged_with_the_public_key_alone_is_refused_and_found(
    data: DataDir, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    _record_live_call(data)
    _recover_after_a_crash(data)
    path = data.layout.recording_file(str(LIVE_ID))
    pinned = hashlib.sha256(path.read_bytes()).hexdigest()
    _forge_with_the_public_key(data)
    forged = hashlib.sha256(path.read_bytes()).hexdigest()

    out = tmp_path / "forged.wav"
    code, stdout, err = run(capsys, "export", str(LIVE_ID), "--out", str(out))
    assert (code, stdout) == (1, "")
    assert (
        f"recording {LIVE_ID}: its file's SHA-256 {forged} does not match the evidence record's {pinned}, "
        "pinned when it was recovered after a crash: the file was replaced or altered since; nothing exported"
    ) in err
    assert not out.exists()
    [refused] = audit_entries(data.layout)
    assert refused.action == "export_refused"
    assert "does not match the evidence record's" in json.loads(refused.detail)["reason"]

    verified = run_on(data.layout.root, "audit", "verify")
    assert verified.returncode == 1
    assert verified.stdout.splitlines()[-3:] == [
        "recovered files: 1 checked, 1 does not match the SHA-256 pinned at recovery",
        f"  recording {LIVE_ID}: its file {path} has SHA-256 {forged}, the evidence record {pinned}: "
        "the file was replaced or altered since",
        "files and keys: 3 recordings kept, each has its file and its wrapped keys",  # forged keys too
    ]
    as_json = run_on(data.layout.root, "audit", "verify", "--json")
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert report["ok"] is False
    assert report["manifests"]["ok"] is True  # the evidence rows are untouched: only the file tells
    assert report["files"]["mismatches"] == [
        {
            "recording_id": str(LIVE_ID),
            "file_name": path.name,
            "expected_sha256": pinned,
            "actual_sha256": forged,
            "problem": f"its file {path} has SHA-256 {forged}, the evidence record {pinned}: "
            "the file was replaced or altered since",
        }
    ]

    # callherald serve says so at its start too, as errors, and starts.
    caplog.set_level(logging.INFO, logger="callherald")
    config = default_config(data.layout.root)
    open_storage(config).close()  # closing waits for the checks queued on the reader thread
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        "recovered files: 1 checked, 1 does not match the SHA-256 pinned at recovery; "
        f"recording {LIVE_ID}: its file {path} has SHA-256 {forged}, the evidence record {pinned}: "
        "the file was replaced or altered since (callherald audit verify)"
    ]
    assert "files and keys: 3 recordings kept, each has its file and its wrapped keys" in caplog.messages

    path.unlink()
    gone = run_on(data.layout.root, "audit", "verify")
    assert gone.returncode == 1
    assert f"  recording {LIVE_ID}: its file {path} is missing" in gone.stdout.splitlines()
    assert (
        gone.stdout.splitlines()[-1]
        == f"  recording {LIVE_ID} of call call-d: its file {path.name} is missing"
    )
    caplog.clear()
    open_storage(config).close()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        "files and keys: 3 recordings kept, 1 incomplete although the record shows no erasure (removed"
        f" outside callherald); recording {LIVE_ID} of call call-d: its file {path.name} is missing"
        " (callherald audit verify)",
        f"recovered files: 1 checked, 1 does not match the SHA-256 pinned at recovery; recording {LIVE_ID}:"
        f" its file {path} is missing (callherald audit verify)",
    ]


def test_a_recording_found_corrupt_after_a_crash_is_shown_as_such(
    data: DataDir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A record header changed between the crash and the restart: tampering or a disk fault.
    _record_live_call(data)
    path = data.layout.recording_file(str(LIVE_ID))
    second, _ = record_spans(path)[1]
    content = bytearray(path.read_bytes())
    content[second + 11] ^= 0x01
    path.write_bytes(bytes(content))
    with serving_store(data.layout) as store:
        messages = recover_open_recordings(data.layout, store)
    assert [line for line in messages if line.startswith("recording")] == []  # logged as an error instead
    reason = (
        f"corrupt at segment 1 (byte {second}): record header checksum mismatch at offset {second}; "
        "kept as found, 1000 ms readable before it"
    )

    code, shown, _ = run(capsys, "show", str(LIVE_ID))
    assert code == 0
    assert (
        "state:              truncated (corrupt file): found so after a crash, which never leaves a file "
        "so: tampering or a disk fault"
    ) in shown
    assert f"end reason:         {reason}" in shown
    assert f"truncated ({reason}), 0:00:01" in shown  # the recording's end in the timeline
    code, listed, _ = run(capsys, "list")
    assert code == 0
    (row,) = [line for line in listed.splitlines() if line.startswith(str(LIVE_ID))]
    assert " truncated (corrupt file) " in row
    code, as_json, _ = run(capsys, "list", "--json")
    (item,) = [item for item in json.loads(as_json) if item["recording_id"] == str(LIVE_ID)]
    assert (item["state"], item["end_reason"]) == ("truncated", reason)
    assert item["file_sha256"] == hashlib.sha256(content).hexdigest()

    out = tmp_path / "corrupt.wav"
    code, stdout, err = run(capsys, "export", str(LIVE_ID), "--out", str(out))
    assert (code, stdout) == (1, "")
    assert f"warning: recording {LIVE_ID}: recovery found its file corrupt after a crash ({reason})" in err
    assert "record header checksum mismatch" in err.splitlines()[-1]
    assert not out.exists()


def test_export_refuses_a_recovered_recording_cut_shorter_than_its_file_sha256(
    data: DataDir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _record_live_call(data)
    _recover_after_a_crash(data)
    path = data.layout.recording_file(str(LIVE_ID))
    _cut_after_segments(path, 1)
    out = tmp_path / "cut.wav"
    code, stdout, err = run(capsys, "export", str(LIVE_ID), "--out", str(out))
    assert (code, stdout) == (1, "")
    assert "pinned when it was recovered after a crash: the file was replaced or altered since" in err
    assert not out.exists()
    assert [entry.action for entry in audit_entries(data.layout)] == ["export_refused"]


def test_export_refuses_a_recording_recovered_before_files_were_pinned_cut_shorter_than_the_record_says(
    data: DataDir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Without an audio or file SHA-256, the size and duration recovery pinned are all the file is
    # checked against: sealed segments cut off later must not pass as the crash's truncation.
    _record_live_call(data)
    _recovered_before_files_were_pinned(data)
    path = data.layout.recording_file(str(LIVE_ID))
    spans = record_spans(path)
    _cut_after_segments(path, 1)
    out = tmp_path / "cut.wav"
    code, stdout, err = run(capsys, "export", str(LIVE_ID), "--out", str(out))
    assert (code, stdout) == (1, "")
    assert (
        f"recording {LIVE_ID}: its file holds {spans[0][1]} bytes, 1.000 s in 1 segments intact; the "
        f"evidence record says {spans[-1][1]} bytes, 3.000 s were kept: sealed segments were cut off; "
        "nothing exported"
    ) in err
    assert not out.exists()
    assert [entry.action for entry in audit_entries(data.layout)] == ["export_refused"]


def test_export_refuses_a_complete_recording_whose_final_segment_was_cut_off(
    data: DataDir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The final segment carries no audio, so the audio's SHA-256 still matches without it.
    path = data.layout.recording_file(str(COMPLETE_ID))
    _cut_after_segments(path, COMPLETE_SECONDS)
    out = tmp_path / "out.wav"
    key = ["--key", str(data.reviewer_key)]
    code, stdout, err = run(capsys, "export", str(COMPLETE_ID), "--out", str(out), *key)
    assert (code, stdout) == (1, "")
    assert "the evidence record says it is complete" in err
    assert "but the file has no final segment: sealed segments were cut off; nothing exported" in err
    assert not out.exists()
    assert [entry.action for entry in audit_entries(data.layout)] == ["export_refused"]


def _flip_segment_byte(data: DataDir) -> None:
    path = data.layout.recording_file(str(COMPLETE_ID))
    start, _ = record_spans(path)[1]
    content = bytearray(path.read_bytes())
    content[start + 25 + 100] ^= 0x01
    path.write_bytes(bytes(content))


def _swap_files(data: DataDir) -> None:
    shutil.copyfile(
        data.layout.recording_file(str(TRUNCATED_ID)), data.layout.recording_file(str(COMPLETE_ID))
    )


def _remove_file(data: DataDir) -> None:
    data.layout.recording_file(str(COMPLETE_ID)).unlink()


def _erase_keys(data: DataDir) -> None:
    """Destroy the keys as an erasure does, but leave the record showing none."""
    with serving_store(data.layout) as store:
        assert SqliteKeyStore(store).destroy(COMPLETE_ID)


def _delete_reviewer_key_row(data: DataDir) -> None:
    """What anyone with write access to the database can do: one recipient's key row gone."""
    with sqlite3.connect(data.layout.evidence_db) as conn:
        deleted = conn.execute(
            "DELETE FROM key_store WHERE recording_id = ? AND recipient_key_id = ?",
            [str(COMPLETE_ID), key_id(load_private_key(data.reviewer_key, PASSPHRASE).public_key())],
        )
        assert deleted.rowcount == 1
    conn.close()


OTHER_ID = uuid.UUID("00000000-0000-4000-8000-0000000000ee")
"""A recording id the evidence record does not know."""


def _header_names_an_unknown_recording(data: DataDir) -> None:
    """The header's recording id altered, its checksum recomputed, as a forger would."""
    path = data.layout.recording_file(str(COMPLETE_ID))
    content = bytearray(path.read_bytes())
    content[16:32] = OTHER_ID.bytes
    content[60:64] = zlib.crc32(content[:60]).to_bytes(4, "big")
    path.write_bytes(bytes(content))


def _record_wrong_hash(data: DataDir) -> None:
    with serving_store(data.layout) as store:
        development_public, _ = ensure_development_key(data.layout)
        call = Call(
            call_id="call-c",
            recording_id=uuid.UUID(int=0xC),
            direction=Direction.INBOUND,
            calling="+31200000000",
            called="+31307654321",
            offset_s=7200,
            seconds=1,
            final=True,
        )
        record_call(store, data.layout, call, recipients=[development_public], sha256="00" * 32)


def _foreign_key(data: DataDir) -> None:
    data.reviewer_key.unlink()
    save_private_key(data.reviewer_key, generate_private_key(), PASSPHRASE, scrypt_log2_n=14)


REFUSALS = [
    pytest.param(
        _flip_segment_byte, COMPLETE_ID, "the segment failed authentication (segment 1,", id="tampered-byte"
    ),
    pytest.param(
        _swap_files, COMPLETE_ID, f"holds recording {TRUNCATED_ID}, not {COMPLETE_ID}", id="swapped"
    ),
    pytest.param(_remove_file, COMPLETE_ID, "is missing", id="file-missing"),
    pytest.param(
        _header_names_an_unknown_recording,
        COMPLETE_ID,
        f"holds recording {OTHER_ID}, not {COMPLETE_ID}: the file was swapped",
        id="header-id-unknown",
    ),
    pytest.param(
        _erase_keys,
        COMPLETE_ID,
        f"recording {COMPLETE_ID}: no wrapped key is stored for it, although the evidence record shows "
        "no erasure: removed outside callherald (the record lists key ids ",
        id="keys-removed-unrecorded",
    ),
    pytest.param(
        _delete_reviewer_key_row,
        COMPLETE_ID,
        "is missing, although the evidence record shows no erasure: removed outside callherald",
        id="one-key-removed-unrecorded",
    ),
    pytest.param(_foreign_key, COMPLETE_ID, "is not readable with key", id="not-a-recipient"),
    pytest.param(
        _record_wrong_hash, uuid.UUID(int=0xC), "does not match the evidence record's 0000", id="sha256"
    ),
    pytest.param(
        lambda data: None, uuid.UUID(int=7), "no recording 00000000-0000-0000-0000-000000000007", id="unknown"
    ),
]


@pytest.mark.parametrize(("spoil", "recording_id", "message"), REFUSALS)
def test_export_refuses_and_writes_nothing(
    data: DataDir,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    spoil: Callable[[DataDir], None],
    recording_id: uuid.UUID,
    message: str,
) -> None:
    spoil(data)
    out = tmp_path / "out.wav"
    key = [] if recording_id.int == 0xC else ["--key", str(data.reviewer_key)]
    code, stdout, err = run(capsys, "export", str(recording_id), "--out", str(out), *key)
    assert (code, stdout) == (1, "")
    assert message in err
    assert not out.exists()
    # An attempt on a recording the record knows is accounted for, with the reason.
    entries = audit_entries(data.layout)
    if recording_id.int == 7:
        assert entries == []
    else:
        [entry] = entries
        assert (entry.actor, entry.action, entry.subject) == (
            audit_actor(),
            "export_refused",
            str(recording_id),
        )
        assert message in json.loads(entry.detail)["reason"]


def _no_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV)
    monkeypatch.setattr(sys, "stdin", io.StringIO())


KEY_PROBLEMS = [
    pytest.param(
        lambda m: m.setenv(PASSPHRASE_ENV, "not the passphrase"),
        True,
        "wrong passphrase for",
        id="wrong-passphrase",
    ),
    pytest.param(
        _no_terminal, True, f"no terminal to ask for the passphrase of .*: set {PASSPHRASE_ENV}", id="no-tty"
    ),
    pytest.param(lambda m: None, False, "no --key given and no development key at", id="no-development-key"),
]


@pytest.mark.parametrize(("setup", "with_key", "message"), KEY_PROBLEMS)
def test_export_key_problems_exit_2(
    data: DataDir,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    setup: Callable[[pytest.MonkeyPatch], None],
    with_key: bool,
    message: str,
) -> None:
    setup(monkeypatch)
    if not with_key:
        shutil.rmtree(data.layout.keys_dir)
    out = tmp_path / "out.wav"
    key = ["--key", str(data.reviewer_key)] if with_key else []
    code, stdout, err = run(capsys, "export", str(COMPLETE_ID), "--out", str(out), *key)
    assert (code, stdout) == (2, "")
    assert re.search(message, err)
    assert not out.exists()
    [entry] = audit_entries(data.layout)
    assert (entry.action, entry.subject) == ("export_refused", str(COMPLETE_ID))
    assert re.search(message, json.loads(entry.detail)["reason"])


def test_export_names_a_missing_key_file(
    data: DataDir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nobody.key"
    code, _, err = run(
        capsys, "export", str(COMPLETE_ID), "--out", str(tmp_path / "x.wav"), "--key", str(missing)
    )
    assert code == 2
    assert f"no private key file at {missing}" in err


@pytest.mark.parametrize("name", ["call.mp3", "call", "call.wav.gz"])
def test_export_writes_only_wav_or_flac_named_so(
    data: DataDir, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    # A WAV named .mp3 would mislead whoever plays it: the name must say what the file is.
    out = tmp_path / name
    code, _, err = run(capsys, "export", str(COMPLETE_ID), "--out", str(out), "--key", str(data.reviewer_key))
    assert code == 2
    assert f"{out}: name the file .wav or .flac, the formats export writes" in err
    assert not out.exists()


def test_export_overwrites_only_with_force(
    data: DataDir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.wav"
    out.write_bytes(b"earlier export")
    arguments = ["export", str(COMPLETE_ID), "--out", str(out), "--key", str(data.reviewer_key)]
    code, _, err = run(capsys, *arguments)
    assert code == 2
    assert f"{out} exists already; pass --force to replace it" in err
    assert out.read_bytes() == b"earlier export"
    code, _, err = run(capsys, *arguments, "--force")
    assert (code, err) == (0, "")
    assert_tones(out, COMPLETE_SECONDS)
    assert len(audit_entries(data.layout)) == 1


FORCE_FORMATS = [
    pytest.param(".wav", id="wav"),
    pytest.param(
        ".flac",
        id="flac",
        marks=pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed"),
    ),
]


def _exported(out: Path) -> None:
    """``out`` holds the complete recording (of a FLAC file only its signature is checked here)."""
    if out.suffix == ".wav":
        assert_tones(out, COMPLETE_SECONDS)
    else:
        assert out.read_bytes()[:4] == b"fLaC"


@pytest.mark.parametrize("suffix", FORCE_FORMATS)
def test_export_force_writes_a_new_0600_file_over_an_existing_one(
    data: DataDir, tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    exports = tmp_path / "exports"
    exports.mkdir()
    out = exports / f"pre{suffix}"
    out.write_bytes(b"earlier export")
    out.chmod(0o644)
    arguments = ["export", str(COMPLETE_ID), "--out", str(out), "--key", str(data.reviewer_key), "--force"]
    code, _, err = run(capsys, *arguments)
    assert (code, err) == (0, "")
    assert out.stat().st_mode & 0o777 == 0o600  # not the old file's 0644: the audio is personal data
    _exported(out)
    assert [path.name for path in exports.iterdir()] == [out.name]  # no temporary file left


@pytest.mark.parametrize("suffix", FORCE_FORMATS)
def test_export_force_replaces_a_symlink_and_leaves_its_target_alone(
    data: DataDir, tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    target = tmp_path / "target.txt"
    target.write_text("precious\n")
    target.chmod(0o644)
    link = tmp_path / f"link{suffix}"
    link.symlink_to(target)
    arguments = ["export", str(COMPLETE_ID), "--out", str(link), "--key", str(data.reviewer_key), "--force"]
    code, _, err = run(capsys, *arguments)
    assert (code, err) == (0, "")
    assert target.read_text() == "precious\n"
    assert not link.is_symlink()
    assert link.stat().st_mode & 0o777 == 0o600
    _exported(link)
    detail = json.loads(audit_entries(data.layout)[0].detail)
    assert detail["out"] == str(link.resolve())  # the file written, not the symlink's old target


def test_export_force_that_fails_midway_leaves_the_existing_file(
    data: DataDir, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    exports = tmp_path / "exports"
    exports.mkdir()
    out = exports / "out.wav"
    out.write_bytes(b"earlier export")
    written: list[bytes] = []

    def disk_full_after_one_segment(chunk: bytes, audio_format: AudioFormat) -> bytes:
        if written:
            raise OSError(28, "No space left on device")
        written.append(chunk)
        return chunk

    monkeypatch.setattr("callherald.recordings._pcm16", disk_full_after_one_segment)
    arguments = ["export", str(COMPLETE_ID), "--out", str(out), "--key", str(data.reviewer_key), "--force"]
    code, stdout, err = run(capsys, *arguments)
    assert (code, stdout) == (2, "")
    assert f"cannot write {out}: No space left on device" in err
    assert out.read_bytes() == b"earlier export"
    assert [path.name for path in exports.iterdir()] == ["out.wav"]
    assert audit_entries(data.layout) == []


# --------------------------------------------------------------------------------------------------
# purposes, erase and expire

CALLHERALD = Path(sys.executable).with_name("callherald")


def test_show_gives_the_purposes_of_the_recording(data: DataDir, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "show", str(COMPLETE_ID))
    assert code == 0
    facts = out.split("\n\n", 1)[0].splitlines()
    assert facts[-2:] == [
        "purposes:           evidence: contract (contract terms v3), delete after 2026-05-31",
        "                    training: consent (consent script v2), delete after 2026-04-01",
    ]
    code, out, _ = run(capsys, "show", str(COMPLETE_ID), "--json")
    assert [p["purpose_id"] for p in json.loads(out)["recording"]["purposes"]] == ["evidence", "training"]


def _database_bytes(layout: DataLayout) -> bytes:
    """The database file and its write-ahead log, read by another process: closing a descriptor of
    the database here would drop this process's SQLite locks, and the next connection to close
    elsewhere would then take itself for the last one, checkpoint and remove the log."""
    wal = layout.evidence_db.with_name(layout.evidence_db.name + "-wal")
    assert wal.exists()  # the database is open, as while callherald serve runs
    return subprocess.run(["cat", str(layout.evidence_db), str(wal)], capture_output=True, check=True).stdout


def test_erase_destroys_the_keys_and_the_file_and_keeps_the_evidence(data: DataDir, tmp_path: Path) -> None:
    path = data.layout.recording_file(str(COMPLETE_ID))
    # callherald serve keeps the database open meanwhile, so the write-ahead log is not removed on close.
    with serving_store(data.layout) as running:
        secrets = [e.encapsulated_key + e.sealed_key for e in SqliteKeyStore(running).get(COMPLETE_ID)]
        kept = [e.encapsulated_key + e.sealed_key for e in SqliteKeyStore(running).get(TRUNCATED_ID)]
        assert len(secrets) == 2
        assert all(secret in _database_bytes(data.layout) for secret in secrets)  # the check below can fail
        erased = subprocess.run(
            [str(CALLHERALD), "recordings", "erase", str(COMPLETE_ID), "--reason", "Art. 17 request 2026-41"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert (erased.returncode, erased.stderr) == (0, "")
        assert erased.stdout == (
            f"erased recording {COMPLETE_ID} (call call-a): wrapped keys destroyed, {path} removed\n"
        )
        after = _database_bytes(data.layout)
        for secret in secrets:
            assert secret[:32] not in after
            assert secret[32:] not in after
        assert all(secret in after for secret in kept)
    assert not path.exists()
    assert data.layout.recording_file(str(TRUNCATED_ID)).exists()

    listed = subprocess.run(
        [str(CALLHERALD), "recordings", "list", "--state", "erased", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    [item] = json.loads(listed.stdout)
    assert (item["recording_id"], item["state"], item["erasure_reason"]) == (
        str(COMPLETE_ID),
        "erased",
        "Art. 17 request 2026-41",
    )
    assert item["erased_by"] == audit_actor()
    shown = subprocess.run(
        [str(CALLHERALD), "recordings", "show", str(COMPLETE_ID)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "state:              erased" in shown
    assert f"erased by:          {audit_actor()}" in shown
    assert "erasure reason:     Art. 17 request 2026-41" in shown
    [erasure] = [line.split(None, 4) for line in shown.splitlines() if "later event  " in line][1:]
    assert erasure[2:] == [
        "later",
        "event",
        f"erasure by {audit_actor()}: reason Art. 17 request 2026-41, recording_id {COMPLETE_ID}",
    ]

    out = tmp_path / "erased.wav"
    exported = subprocess.run(
        [
            str(CALLHERALD),
            "recordings",
            "export",
            str(COMPLETE_ID),
            "--out",
            str(out),
            "--key",
            str(data.reviewer_key),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert exported.returncode == 1
    assert f"recording {COMPLETE_ID} was erased at " in exported.stderr
    assert "(Art. 17 request 2026-41): its keys and file are gone; nothing exported" in exported.stderr
    assert not out.exists()
    erase_entry, refused_entry = audit_entries(data.layout)  # the chain verifies
    assert (erase_entry.actor, erase_entry.action, erase_entry.subject) == (
        audit_actor(),
        "erase",
        str(COMPLETE_ID),
    )
    assert json.loads(erase_entry.detail) == {
        "call_id": "call-a",
        "reason": "Art. 17 request 2026-41",
        "file_name": path.name,
        "state": "complete",
        "wrapped_keys": 2,
    }
    assert (refused_entry.action, refused_entry.subject) == ("export_refused", str(COMPLETE_ID))
    assert "was erased at" in json.loads(refused_entry.detail)["reason"]


def _attacker(data: DataDir, statement: str) -> None:
    """What anyone with write access to the database can do, past callherald."""
    with sqlite3.connect(data.layout.evidence_db) as conn:
        assert conn.execute(statement, [str(COMPLETE_ID)]).rowcount > 0
    conn.close()


def _erase_keys_and_remove_file(data: DataDir) -> None:
    _erase_keys(data)
    _remove_file(data)


UNRECORDED_ERASURES = [
    pytest.param(
        lambda data: _attacker(data, "DELETE FROM key_store WHERE recording_id = ?"),
        lambda data: f"no wrapped key for key ids {', '.join(data.key_ids)}",
        id="every-key-row",
    ),
    pytest.param(
        lambda data: _attacker(
            data, f"DELETE FROM key_store WHERE recording_id = ? AND recipient_key_id = '{data.key_ids[1]}'"
        ),
        lambda data: f"no wrapped key for key id {data.key_ids[1]}",
        id="one-key-row",
    ),
    pytest.param(
        lambda data: _attacker(
            data,
            f"UPDATE key_store SET recipient_key_id = 'ffffffffffffffff' WHERE recording_id = ? "
            f"AND recipient_key_id = '{data.key_ids[1]}'",
        ),
        lambda data: f"no wrapped key for key id {data.key_ids[1]}",
        id="key-row-relabelled",
    ),
    pytest.param(
        lambda data: _attacker(
            data,
            "UPDATE key_store SET wrapped_key = x'00' WHERE recording_id = ? "
            f"AND recipient_key_id = '{data.key_ids[0]}'",
        ),
        lambda data: f"no wrapped key for key id {data.key_ids[0]}",
        id="key-overwritten",
    ),
    pytest.param(_remove_file, lambda data: f"its file {COMPLETE_ID}.chrec is missing", id="file"),
    pytest.param(
        _erase_keys_and_remove_file,
        lambda data: (
            f"no wrapped key for key ids {', '.join(data.key_ids)}; its file {COMPLETE_ID}.chrec is missing"
        ),
        id="keys-and-file",
    ),
]


@pytest.mark.parametrize(("spoil", "lacks"), UNRECORDED_ERASURES)
def test_keys_or_a_file_removed_outside_callherald_fail_audit_verify(
    data: DataDir, spoil: Callable[[DataDir], None], lacks: Callable[[DataDir], str]
) -> None:
    intact = run_on(data.layout.root, "audit", "verify")
    assert (intact.returncode, intact.stderr) == (0, "")
    assert intact.stdout.splitlines()[-1] == (
        "files and keys: 2 recordings kept, each has its file and its wrapped keys"
    )
    spoil(data)
    found = run_on(data.layout.root, "audit", "verify")
    assert (found.returncode, found.stderr) == (1, "")
    # The recording is gone for good, with no erasure in the record: its manifest still matches.
    assert found.stdout.splitlines()[1:] == [
        "manifests: 2 checked, the evidence matches each",
        "manifest signatures: 2 checked, each holds",
        f"  trusted keys: {load_signing_key(data.layout.manifest_signing_key).key_id} "
        f"({public_key_path(data.layout.manifest_signing_key)})",
        "files and keys: 2 recordings kept, 1 incomplete although the record shows no erasure "
        "(removed outside callherald)",
        f"  recording {COMPLETE_ID} of call call-a: {lacks(data)}",
    ]
    as_json = run_on(data.layout.root, "audit", "verify", "--json")
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert (report["ok"], report["manifests"]["ok"]) == (False, True)
    [incomplete] = report["files_and_keys"]["incomplete"]
    assert (incomplete["recording_id"], incomplete["call_id"], incomplete["file_name"]) == (
        str(COMPLETE_ID),
        "call-a",
        f"{COMPLETE_ID}.chrec",
    )
    assert incomplete["file_missing"] == ("file" in lacks(data))
    assert (report["files_and_keys"]["checked"], report["files_and_keys"]["ok"]) == (2, False)


def test_audit_verify_expects_no_keys_nor_file_of_an_erased_or_live_recording(data: DataDir) -> None:
    _record_live_call(data)
    # As just after a recording starts: its row is stored before its keys and its file exist.
    data.layout.recording_file(str(LIVE_ID)).unlink()
    with sqlite3.connect(data.layout.evidence_db) as conn:
        conn.execute("DELETE FROM key_store WHERE recording_id = ?", [str(LIVE_ID)])
    conn.close()
    erased = run_on(data.layout.root, "recordings", "erase", str(COMPLETE_ID), "--reason", "Art. 17 request")
    assert erased.returncode == 0
    verified = run_on(data.layout.root, "audit", "verify")
    assert (verified.returncode, verified.stderr) == (0, "")
    assert verified.stdout.splitlines()[-1] == (
        "files and keys: 1 recording kept, each has its file and its wrapped keys"
    )


def test_erase_refuses_an_erased_an_unknown_and_a_live_recording(
    data: DataDir, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "erase", str(COMPLETE_ID), "--reason", "retention")[0] == 0
    code, out, err = run(capsys, "erase", str(COMPLETE_ID), "--reason", "again")
    assert (code, out) == (1, "")
    assert f"recording {COMPLETE_ID} was erased at " in err
    assert f"by {audit_actor()} (retention)" in err
    unknown = uuid.UUID(int=7)
    code, out, err = run(capsys, "erase", str(unknown), "--reason", "retention")
    assert (code, out) == (1, "")
    assert f"no recording {unknown} in the evidence record" in err
    _record_live_call(data)
    code, out, err = run(capsys, "erase", str(LIVE_ID), "--reason", "retention")
    assert (code, out) == (1, "")
    assert f"recording {LIVE_ID} is still being recorded: erase it once its call has ended" in err
    assert data.layout.recording_file(str(LIVE_ID)).exists()
    assert [entry.action for entry in audit_entries(data.layout)] == ["erase"]


def test_erase_needs_a_reason(data: DataDir, capsys: pytest.CaptureFixture[str]) -> None:
    for reason in ([], ["--reason", "  "]):
        with pytest.raises(SystemExit) as info:
            main(["recordings", "erase", str(COMPLETE_ID), *reason])
        assert info.value.code == 2
    assert data.layout.recording_file(str(COMPLETE_ID)).exists()


def _call_with_purposes(
    store: EvidenceStore,
    layout: DataLayout,
    number: int,
    setup_at: dt.datetime,
    *purposes: Purpose,
    withdrawn: Purpose | None = None,
) -> uuid.UUID:
    """A call set up at ``setup_at`` for ``purposes`` (no consent needed), with a finished recording
    for them. With ``withdrawn`` (a consent purpose), the caller consented to it too, and withdrew
    it mid-call: the recording served it as well, and a second recording follows for ``purposes``
    alone (its id is the first's plus 0x100)."""
    call_id, rid = f"call-r{number}", uuid.UUID(int=0x100 + number)
    store.write(
        CallStarted(
            call_id=call_id,
            direction=Direction.INBOUND,
            calling="+31201234567",
            called="+31307654321",
            local_line="+31307654321",
            agent_id=None,
            setup_at=setup_at,
            legs=(
                Leg(
                    leg_id=f"{call_id}-out",
                    call_id=call_id,
                    role=LegRole.OUTSIDE,
                    sip_call_id="r",
                    remote_uri="sip:r",
                ),
            ),
        )
    )
    store.write(
        Announcement(
            leg_id=f"{call_id}-out",
            prompt_id="notice",
            version="4",
            language="nl",
            audio_sha256=PROMPT_SHA,
            started_at=setup_at,
            ended_at=setup_at + dt.timedelta(seconds=4),
            complete=True,
        )
    )
    served = tuple(purpose.purpose_id for purpose in purposes)
    if withdrawn is None:
        store.write(CallPurposes(call_id=call_id, purposes=purposes))
        _finished_recording(store, layout, call_id, rid, setup_at + dt.timedelta(seconds=5), served)
        return rid
    store.write(
        ConsentDecision(
            call_id=call_id,
            question_id="q-training",
            question_version="1",
            purpose_id=withdrawn.purpose_id,
            decision=Decision.GRANTED,
            mechanism="dtmf:1",
            at=setup_at + dt.timedelta(seconds=4.5),
        )
    )
    store.write(CallPurposes(call_id=call_id, purposes=(*purposes, withdrawn)))
    both = (*served, withdrawn.purpose_id)
    _finished_recording(store, layout, call_id, rid, setup_at + dt.timedelta(seconds=5), both)
    store.write(
        LaterEvent(
            call_id=call_id,
            kind=LaterEventKind.WITHDRAWAL,
            at=setup_at + dt.timedelta(seconds=6),
            actor="caller",
            detail={"purposes": [withdrawn.purpose_id], "mechanism": "rfc4733"},
        )
    )
    after = uuid.UUID(int=rid.int + 0x100)
    _finished_recording(store, layout, call_id, after, setup_at + dt.timedelta(seconds=6), served)
    return rid


def _finished_recording(
    store: EvidenceStore,
    layout: DataLayout,
    call_id: str,
    rid: uuid.UUID,
    started_at: dt.datetime,
    purposes: tuple[str, ...],
) -> None:
    """A one-second recording of ``call_id`` from ``started_at`` for ``purposes``, finished."""
    development_public, _ = ensure_development_key(layout)
    store.write(
        RecordingStarted(
            recording_id=rid,
            call_id=call_id,
            file_name=layout.recording_file(str(rid)).name,
            key_id=(key_id(development_public),),
            started_at=started_at,
            first_frame_at=started_at,
            purposes=purposes,
        )
    )
    writer = SegmentWriter(
        layout.recording_file(str(rid)),
        recording_id=rid,
        recipients=[development_public],
        audio_format=STEREO,
        key_store=SqliteKeyStore(store),
        fsync=FsyncPolicy.NEVER,
    )
    writer.write_segment(tone_segment(0))
    summary = writer.close(final=True)
    store.record_recording_finished(
        RecordingEnd(
            recording_id=rid,
            finished_at=started_at + dt.timedelta(seconds=1),
            audio_sha256=audio_sha256(1),
            size_bytes=summary.file_bytes,
            duration_ms=1000,
            end_reason="ended",
        )
    ).result()


def test_expire_erases_only_recordings_past_every_delete_after_date(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = DataLayout(tmp_path / "data")
    layout.recordings_dir.mkdir(parents=True)
    now = dt.datetime.now(dt.UTC)
    week = Purpose(
        purpose_id="quality",
        lawful_basis=LawfulBasis.LEGITIMATE_INTEREST,
        reference="LIA 4",
        retention_days=7,
    )
    year = Purpose(
        purpose_id="mifid",
        lawful_basis=LawfulBasis.LEGAL_OBLIGATION,
        reference="MiFID II",
        retention_days=365,
    )
    with EvidenceStore(layout.evidence_db) as store:
        expired = _call_with_purposes(store, layout, 1, now - dt.timedelta(days=9), week)
        due_today = _call_with_purposes(
            store, layout, 2, now - dt.timedelta(days=7), week
        )  # delete after today
        kept_for_one = _call_with_purposes(store, layout, 3, now - dt.timedelta(days=9), week, year)
        recent = _call_with_purposes(store, layout, 4, now - dt.timedelta(hours=1), week)
    monkeypatch.setenv(HOME_ENV, str(layout.root))
    expired_date = (now - dt.timedelta(days=2)).date().isoformat()

    code, out, err = run(capsys, "expire", "--dry-run")
    assert (code, err) == (0, "")
    assert out == f"would erase recording {expired} (call call-r1, delete after quality {expired_date})\n"
    assert layout.recording_file(str(expired)).exists()
    assert audit_entries(layout) == []

    code, out, err = run(capsys, "expire")
    assert (code, err) == (0, "")
    assert out == (
        f"erased recording {expired} (call call-r1): wrapped keys destroyed, "
        f"{layout.recording_file(str(expired))} removed; delete after quality {expired_date}\n"
    )
    assert not layout.recording_file(str(expired)).exists()
    for rid in (due_today, kept_for_one, recent):
        assert layout.recording_file(str(rid)).exists()
    [entry] = audit_entries(layout)
    assert (entry.action, entry.subject, json.loads(entry.detail)["reason"]) == (
        "erase",
        str(expired),
        "retention expired",
    )
    code, out, _ = run(capsys, "list", "--json")
    assert [(item["recording_id"], item["state"]) for item in json.loads(out)] == [
        (str(expired), "erased"),
        (str(kept_for_one), "complete"),
        (str(due_today), "complete"),
        (str(recent), "complete"),
    ]
    code, out, err = run(capsys, "expire")
    assert (code, err) == (0, "")
    assert out.startswith("no recording is past its delete-after dates (today is ")


def test_recordings_split_by_a_withdrawal_show_and_expire_by_the_purposes_each_served(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Quality for a week, and training for a year until the caller withdrew consent mid-call: the
    # recording after the withdrawal served quality alone and is due, the one before is kept.
    layout = DataLayout(tmp_path / "data")
    layout.recordings_dir.mkdir(parents=True)
    now = dt.datetime.now(dt.UTC)
    week = Purpose(
        purpose_id="quality",
        lawful_basis=LawfulBasis.LEGITIMATE_INTEREST,
        reference="LIA 4",
        retention_days=7,
    )
    year = dataclasses.replace(TRAINING, retention_days=365)
    with EvidenceStore(layout.evidence_db) as store:
        before = _call_with_purposes(store, layout, 1, now - dt.timedelta(days=9), week, withdrawn=year)
    after = uuid.UUID(int=before.int + 0x100)
    monkeypatch.setenv(HOME_ENV, str(layout.root))
    week_date = (now - dt.timedelta(days=2)).date().isoformat()
    year_date = (now - dt.timedelta(days=9) + dt.timedelta(days=365)).date().isoformat()

    code, out, _ = run(capsys, "list", "--json")
    assert code == 0
    assert [(item["recording_id"], item["purposes"]) for item in json.loads(out)] == [
        (
            str(before),
            [
                {
                    "purpose_id": "quality",
                    "lawful_basis": "legitimate_interest",
                    "reference": "LIA 4",
                    "retention_days": 7,
                    "version": 1,
                    "delete_after": week_date,
                },
                {
                    "purpose_id": "training",
                    "lawful_basis": "consent",
                    "reference": "consent script v2",
                    "retention_days": 365,
                    "version": 1,
                    "delete_after": year_date,
                },
            ],
        ),
        (
            str(after),
            [
                {
                    "purpose_id": "quality",
                    "lawful_basis": "legitimate_interest",
                    "reference": "LIA 4",
                    "retention_days": 7,
                    "version": 1,
                    "delete_after": week_date,
                }
            ],
        ),
    ]
    code, out, _ = run(capsys, "show", str(after), "--json")
    assert [p["purpose_id"] for p in json.loads(out)["recording"]["purposes"]] == ["quality"]
    code, out, _ = run(capsys, "show", str(after))
    facts = out.split("\n\n", 1)[0].splitlines()
    assert facts[-1] == f"purposes:           quality: legitimate_interest (LIA 4), delete after {week_date}"
    assert facts[-2].startswith("manifest:           audit row ")
    assert facts[-3].startswith("file:")

    code, out, err = run(capsys, "expire")
    assert (code, err) == (0, "")
    assert out == (
        f"erased recording {after} (call call-r1): wrapped keys destroyed, "
        f"{layout.recording_file(str(after))} removed; delete after quality {week_date}\n"
    )
    assert layout.recording_file(str(before)).exists()
    code, out, _ = run(capsys, "list", "--json")
    assert [(item["recording_id"], item["state"]) for item in json.loads(out)] == [
        (str(before), "complete"),
        (str(after), "erased"),
    ]


# --------------------------------------------------------------------------------------------------
# erase by call or number, legal hold


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    """``callherald recordings ARGV`` as a process of its own, on the data directory of the environment."""
    return subprocess.run(
        [str(CALLHERALD), "recordings", *argv], capture_output=True, text=True, timeout=60, check=False
    )


def _erased_line(layout: DataLayout, rid: uuid.UUID, call_id: str) -> str:
    return f"erased recording {rid} (call {call_id}): wrapped keys destroyed, {layout.recording_file(str(rid))} removed"


def test_erase_by_call_erases_both_recordings_of_a_withdrawal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Consent withdrawn mid-call split call-r1 into two recordings; call-r2 is another call of the
    # same caller, which erasing call-r1 leaves alone.
    layout = DataLayout(tmp_path / "data")
    layout.recordings_dir.mkdir(parents=True)
    now = dt.datetime.now(dt.UTC)
    week = Purpose(
        purpose_id="quality",
        lawful_basis=LawfulBasis.LEGITIMATE_INTEREST,
        reference="LIA 4",
        retention_days=7,
    )
    with EvidenceStore(layout.evidence_db) as store:
        before = _call_with_purposes(store, layout, 1, now - dt.timedelta(days=1), week, withdrawn=TRAINING)
        other = _call_with_purposes(store, layout, 2, now, week)
    after = uuid.UUID(int=before.int + 0x100)
    monkeypatch.setenv(HOME_ENV, str(layout.root))

    dry = cli("erase", "--call", "call-r1", "--reason", "Art. 17 request 2026-52", "--dry-run")
    assert (dry.returncode, dry.stderr) == (0, "")
    assert dry.stdout.splitlines() == [
        f"would erase recording {before} (call call-r1)",
        f"would erase recording {after} (call call-r1)",
        "2 would be erased, 0 refused, 0 skipped, of 2 recordings of call call-r1",
    ]
    assert all(layout.recording_file(str(rid)).exists() for rid in (before, after, other))
    assert audit_entries(layout) == []

    erased = cli("erase", "--call", "call-r1", "--reason", "Art. 17 request 2026-52")
    assert (erased.returncode, erased.stderr) == (0, "")
    assert erased.stdout.splitlines() == [
        _erased_line(layout, before, "call-r1"),
        _erased_line(layout, after, "call-r1"),
        "2 erased, 0 refused, 0 skipped, of 2 recordings of call call-r1",
    ]
    assert not layout.recording_file(str(before)).exists()
    assert not layout.recording_file(str(after)).exists()
    assert layout.recording_file(str(other)).exists()
    assert [(e.action, e.subject, json.loads(e.detail)["reason"]) for e in audit_entries(layout)] == [
        ("erase", str(before), "Art. 17 request 2026-52"),
        ("erase", str(after), "Art. 17 request 2026-52"),
    ]

    again = cli("erase", "--call", "call-r1", "--reason", "Art. 17 request 2026-52")
    assert (again.returncode, again.stderr) == (0, "")  # what was asked for is done
    lines = again.stdout.splitlines()
    assert [line.split(" was erased at ")[0] for line in lines[:2]] == [
        f"recording {before}",
        f"recording {after}",
    ]
    assert all(line.endswith(f"by {audit_actor()} (Art. 17 request 2026-52): skipped") for line in lines[:2])
    assert lines[2:] == ["0 erased, 0 refused, 2 skipped, of 2 recordings of call call-r1"]
    assert len(audit_entries(layout)) == 2


def test_erase_by_number_goes_on_past_a_recording_it_may_not_erase(data: DataDir) -> None:
    # +31201234567 called on call-a and on call-d, whose recording is still being made.
    _record_live_call(data)
    dry = cli("erase", "--number", "+31 20 123-4567", "--reason", "Art. 17 request 2026-53", "--dry-run")
    assert dry.returncode == 1
    assert dry.stdout.splitlines() == [
        f"would erase recording {COMPLETE_ID} (call call-a)",
        "1 would be erased, 1 refused, 0 skipped, of 2 recordings of number +31 20 123-4567",
    ]
    assert data.layout.recording_file(str(COMPLETE_ID)).exists()
    erased = cli("erase", "--number", "+31 20 123-4567", "--reason", "Art. 17 request 2026-53")
    assert erased.returncode == 1
    assert erased.stdout.splitlines() == [
        _erased_line(data.layout, COMPLETE_ID, "call-a"),
        "1 erased, 1 refused, 0 skipped, of 2 recordings of number +31 20 123-4567",
    ]
    refusal = (
        f"callherald recordings: recording {LIVE_ID} is still being recorded: erase it once its call has "
        "ended (a recording that a crash left open is closed by the next start of callherald serve)\n"
    )
    assert erased.stderr == dry.stderr == refusal
    assert not data.layout.recording_file(str(COMPLETE_ID)).exists()
    assert data.layout.recording_file(str(LIVE_ID)).exists()
    assert data.layout.recording_file(str(TRUNCATED_ID)).exists()  # called from +31307654321 only
    assert [(e.action, e.subject) for e in audit_entries(data.layout)] == [("erase", str(COMPLETE_ID))]


def test_erase_refuses_a_held_and_a_live_recording_as_its_dry_run_said(data: DataDir) -> None:
    _record_live_call(data)
    assert cli("hold", "--call", "call-b", "--reason", "claim 2026-118").returncode == 0
    dry = cli("erase", "--number", "+31307654321", "--reason", "Art. 17 request 2026-53", "--dry-run")
    assert dry.returncode == 1
    assert dry.stdout.splitlines() == [
        f"would erase recording {COMPLETE_ID} (call call-a)",
        "1 would be erased, 2 refused, 0 skipped, of 3 recordings of number +31307654321",
    ]
    first, second = dry.stderr.splitlines()
    assert f"recording {TRUNCATED_ID} is on legal hold since " in first
    assert first.endswith(f"by {audit_actor()} (claim 2026-118): release the hold to erase it")
    assert f"recording {LIVE_ID} is still being recorded: erase it once its call has ended" in second
    one = cli("erase", str(COMPLETE_ID), "--reason", "Art. 17 request 2026-53", "--dry-run")
    assert (one.returncode, one.stdout, one.stderr) == (
        0,
        f"would erase recording {COMPLETE_ID} (call call-a)\n",
        "",
    )
    for rid in (COMPLETE_ID, TRUNCATED_ID, LIVE_ID):
        assert data.layout.recording_file(str(rid)).exists()
    assert [e.action for e in audit_entries(data.layout)] == ["legal_hold"]
    # The erasure itself refuses the same two, in the same words, and erases the third.
    erased = cli("erase", "--number", "+31307654321", "--reason", "Art. 17 request 2026-53")
    assert (erased.returncode, erased.stderr) == (1, dry.stderr)
    assert erased.stdout.splitlines() == [
        _erased_line(data.layout, COMPLETE_ID, "call-a"),
        "1 erased, 2 refused, 0 skipped, of 3 recordings of number +31307654321",
    ]
    assert data.layout.recording_file(str(TRUNCATED_ID)).exists()
    assert [(e.action, e.subject) for e in audit_entries(data.layout)] == [
        ("legal_hold", str(TRUNCATED_ID)),
        ("erase", str(COMPLETE_ID)),
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--call", "call-z"], "no recordings of call call-z in the evidence record"),
        (["--number", "+4420 7123 4567"], "no recordings of number +4420 7123 4567 in the evidence record"),
        (
            ["--number", "+3120123456"],
            "no recordings of number +3120123456 in the evidence record",
        ),  # no prefix
    ],
)
def test_erase_of_a_call_or_number_without_recordings_exits_1(
    data: DataDir, argv: list[str], message: str
) -> None:
    for command in ("erase", "hold", "release"):
        result = cli(command, *argv, "--reason", "Art. 17 request 2026-54")
        assert (result.returncode, result.stdout) == (1, "")
        assert message in result.stderr
    assert audit_entries(data.layout) == []


@pytest.mark.parametrize(
    "argv",
    [
        [],
        [str(COMPLETE_ID), "--call", "call-a"],
        ["--call", "call-a", "--number", "+31201234567"],
        ["--call", " "],
        ["--number", ""],
    ],
)
def test_erase_hold_and_release_take_exactly_one_selection(data: DataDir, argv: list[str]) -> None:
    for command in ("erase", "hold", "release"):
        result = cli(command, *argv, "--reason", "Art. 17 request 2026-54")
        assert result.returncode == 2
        assert result.stderr.startswith(f"usage: callherald recordings {command}")
    assert data.layout.recording_file(str(COMPLETE_ID)).exists()


def test_a_held_recording_is_not_erased_until_its_hold_is_released(data: DataDir) -> None:
    held = cli("hold", str(COMPLETE_ID), "--reason", "claim 2026-118")
    assert (held.returncode, held.stderr) == (0, "")
    assert re.fullmatch(
        f"put recording {COMPLETE_ID} \\(call call-a\\) on legal hold at [-0-9]+ [:.0-9]+ UTC \\(claim 2026-118\\)\n",
        held.stdout,
    )
    shown = cli("show", str(COMPLETE_ID)).stdout
    facts = shown.split("\n\n", 1)[0].splitlines()
    assert re.fullmatch(r"legal hold \(UTC\):   since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", facts[-5])
    assert facts[-4:-2] == [f"held by:            {audit_actor()}", "hold reason:        claim 2026-118"]
    [event] = [line for line in shown.splitlines() if "legal_hold by" in line]
    assert event.endswith(f"legal_hold by {audit_actor()}: reason claim 2026-118, recording_id {COMPLETE_ID}")
    items = json.loads(cli("list", "--json").stdout)
    assert [(item["held_by"], item["hold_reason"]) for item in items] == [
        (audit_actor(), "claim 2026-118"),
        (None, None),
    ]
    held_at = items[0]["held_at"]
    assert dt.datetime.fromisoformat(held_at).utcoffset() == dt.timedelta(0)
    table = cli("list").stdout.splitlines()
    since = dt.datetime.fromisoformat(held_at).strftime("%Y-%m-%d %H:%M:%S")
    assert table[1].endswith(f"  since {since} UTC (claim 2026-118)")
    assert table[2].endswith("  -")

    for argv in ([str(COMPLETE_ID)], ["--call", "call-a"]):
        for dry_run in ([], ["--dry-run"]):
            refused = cli("erase", *argv, "--reason", "Art. 17 request 2026-55", *dry_run)
            assert refused.returncode == 1
            assert f"recording {COMPLETE_ID} is on legal hold since " in refused.stderr
            assert f"by {audit_actor()} (claim 2026-118): release the hold to erase it" in refused.stderr
    assert data.layout.recording_file(str(COMPLETE_ID)).exists()
    again = cli("hold", str(COMPLETE_ID), "--reason", "claim 2026-119")
    assert (again.returncode, again.stdout) == (1, "")
    assert f"recording {COMPLETE_ID} is on legal hold already, since " in again.stderr

    released = cli("release", str(COMPLETE_ID), "--reason", "claim 2026-118 settled")
    assert (released.returncode, released.stderr) == (0, "")
    assert released.stdout.startswith(
        f"released recording {COMPLETE_ID} (call call-a) from its legal hold (claim 2026-118 settled); "
        "it was on legal hold since "
    )
    assert released.stdout.endswith(f" UTC by {audit_actor()} (claim 2026-118)\n")
    assert "legal hold" not in cli("show", str(COMPLETE_ID)).stdout.split("\n\n", 1)[0]
    assert json.loads(cli("list", "--json").stdout)[0]["held_at"] is None
    not_held = cli("release", str(COMPLETE_ID), "--reason", "again")
    assert (not_held.returncode, not_held.stdout) == (1, "")
    assert f"recording {COMPLETE_ID} is not on legal hold" in not_held.stderr
    assert cli("erase", str(COMPLETE_ID), "--reason", "Art. 17 request 2026-55").returncode == 0
    gone = cli("hold", str(COMPLETE_ID), "--reason", "claim 2026-120")
    assert gone.returncode == 1
    assert f"recording {COMPLETE_ID} was erased at " in gone.stderr
    assert "(Art. 17 request 2026-55): nothing is left to hold" in gone.stderr

    entries = audit_entries(data.layout)  # the chain verifies
    assert [(e.actor, e.action, e.subject) for e in entries] == [
        (audit_actor(), "legal_hold", str(COMPLETE_ID)),
        (audit_actor(), "legal_hold_release", str(COMPLETE_ID)),
        (audit_actor(), "erase", str(COMPLETE_ID)),
    ]
    assert json.loads(entries[0].detail) == {"call_id": "call-a", "reason": "claim 2026-118"}
    assert json.loads(entries[1].detail) == {
        "call_id": "call-a",
        "reason": "claim 2026-118 settled",
        "held_at": json.loads(entries[1].detail)["held_at"],
        "held_by": audit_actor(),
        "hold_reason": "claim 2026-118",
    }
    timeline = json.loads(cli("show", str(COMPLETE_ID), "--json").stdout)["timeline"]
    assert [e["detail"]["kind"] for e in timeline if e["kind"] == "later_event"][1:] == [
        "legal_hold",
        "legal_hold_release",
        "erasure",
    ]


def test_hold_and_release_by_number_and_call(data: DataDir) -> None:
    held = cli("hold", "--number", "+31307654321", "--reason", "claim 2026-118")
    assert (held.returncode, held.stderr) == (0, "")
    lines = held.stdout.splitlines()
    assert [line.split(" on legal hold at ")[0] for line in lines[:2]] == [
        f"put recording {COMPLETE_ID} (call call-a)",
        f"put recording {TRUNCATED_ID} (call call-b)",
    ]
    assert lines[2:] == ["2 held, 0 refused, 0 skipped, of 2 recordings of number +31307654321"]
    # Held already: said and skipped, not refused.
    again = cli("hold", "--call", "call-b", "--reason", "claim 2026-119")
    assert (again.returncode, again.stderr) == (0, "")
    first, total = again.stdout.splitlines()
    assert first.startswith(f"recording {TRUNCATED_ID} is on legal hold since ")
    assert first.endswith(f" by {audit_actor()} (claim 2026-118) already: skipped")
    assert total == "0 held, 0 refused, 1 skipped, of 1 recording of call call-b"

    released = cli("release", "--call", "call-a", "--reason", "claim settled for call-a")
    assert (released.returncode, released.stderr) == (0, "")
    assert (
        released.stdout.splitlines()[-1] == "1 released, 0 refused, 0 skipped, of 1 recording of call call-a"
    )
    released = cli("release", "--number", "+31307654321", "--reason", "claim settled")
    assert (released.returncode, released.stderr) == (0, "")
    assert released.stdout.splitlines()[0] == f"recording {COMPLETE_ID} is not on legal hold: skipped"
    assert released.stdout.splitlines()[-1] == (
        "1 released, 0 refused, 1 skipped, of 2 recordings of number +31307654321"
    )
    assert [(e.action, e.subject) for e in audit_entries(data.layout)] == [
        ("legal_hold", str(COMPLETE_ID)),
        ("legal_hold", str(TRUNCATED_ID)),
        ("legal_hold_release", str(COMPLETE_ID)),
        ("legal_hold_release", str(TRUNCATED_ID)),
    ]


def test_hold_and_release_need_a_reason(data: DataDir) -> None:
    for command in ("hold", "release"):
        for reason in ([], ["--reason", "  "]):
            assert cli(command, str(COMPLETE_ID), *reason).returncode == 2
    assert audit_entries(data.layout) == []


def test_expire_keeps_a_held_recording_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    layout = DataLayout(tmp_path / "data")
    layout.recordings_dir.mkdir(parents=True)
    now = dt.datetime.now(dt.UTC)
    week = Purpose(
        purpose_id="quality",
        lawful_basis=LawfulBasis.LEGITIMATE_INTEREST,
        reference="LIA 4",
        retention_days=7,
    )
    with EvidenceStore(layout.evidence_db) as store:
        held = _call_with_purposes(store, layout, 1, now - dt.timedelta(days=9), week)
        expired = _call_with_purposes(store, layout, 2, now - dt.timedelta(days=9), week)
    monkeypatch.setenv(HOME_ENV, str(layout.root))
    dates = f"delete after quality {(now - dt.timedelta(days=2)).date().isoformat()}"
    assert cli("hold", str(held), "--reason", "claim 2026-118").returncode == 0
    hold = f"on legal hold since [-0-9]+ [:.0-9]+ UTC by {re.escape(audit_actor())} \\(claim 2026-118\\)"

    dry = cli("expire", "--dry-run")
    assert (dry.returncode, dry.stderr) == (0, "")
    kept, would = dry.stdout.splitlines()
    assert re.fullmatch(f"would keep recording {held} \\(call call-r1, {dates}\\): {hold}", kept)
    assert would == f"would erase recording {expired} (call call-r2, {dates})"

    done = cli("expire")
    assert (done.returncode, done.stderr) == (0, "")
    kept, erased = done.stdout.splitlines()
    assert re.fullmatch(f"kept recording {held} \\(call call-r1, {dates}\\): {hold}", kept)
    assert erased == f"{_erased_line(layout, expired, 'call-r2')}; {dates}"
    assert layout.recording_file(str(held)).exists()
    assert not layout.recording_file(str(expired)).exists()
    assert [(e.action, e.subject) for e in audit_entries(layout)] == [
        ("legal_hold", str(held)),
        ("erase", str(expired)),
    ]

    assert cli("release", str(held), "--reason", "claim settled").returncode == 0
    done = cli("expire")
    assert (done.returncode, done.stderr, done.stdout) == (
        0,
        "",
        f"{_erased_line(layout, held, 'call-r1')}; {dates}\n",
    )


def test_expire_dry_run_foretells_the_refusal_of_a_recording_still_being_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = DataLayout(tmp_path / "data")
    layout.recordings_dir.mkdir(parents=True)
    started = dt.datetime.now(dt.UTC) - dt.timedelta(days=9)
    week = Purpose(
        purpose_id="quality",
        lawful_basis=LawfulBasis.LEGITIMATE_INTEREST,
        reference="LIA 4",
        retention_days=7,
    )
    with EvidenceStore(layout.evidence_db) as store:
        finished = _call_with_purposes(store, layout, 1, started, week)
        open_rid = uuid.UUID(int=finished.int + 0x200)  # a second recording of the call, never closed
        store.write(
            RecordingStarted(
                recording_id=open_rid,
                call_id="call-r1",
                file_name=layout.recording_file(str(open_rid)).name,
                key_id=("0123456789abcdef",),
                started_at=started + dt.timedelta(seconds=5),
                first_frame_at=started + dt.timedelta(seconds=5),
                purposes=("quality",),
            )
        )
    monkeypatch.setenv(HOME_ENV, str(layout.root))

    code, out, err = run(capsys, "expire", "--dry-run")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert [line.split(" (call")[0] for line in lines] == [
        f"would erase recording {finished}",
        f"would not erase recording {open_rid}",
    ]
    assert "still being recorded" in lines[1]

    code, out, err = run(capsys, "expire")
    assert code == 1
    assert out.startswith(f"erased recording {finished} (call call-r1)")
    assert f"recording {open_rid}" in err
    assert "still being recorded" in err


@pytest.mark.parametrize(
    ("mechanism", "shown"),
    [
        ("inband", "5 via inband (masked, not counted)"),
        ("rfc4733", "5 via rfc4733 (not counted)"),
        ("sip_info", "5 via sip_info (not counted)"),
    ],
)
def test_an_uncounted_key_is_called_masked_only_when_it_was_audio(mechanism: str, shown: str) -> None:
    # Only an in-band tone is in the audio to be masked; an RFC 4733 event or a SIP INFO never is.
    at = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
    key = TimelineEvent(
        at=at,
        kind=TimelineKind.DTMF,
        leg_id="a",
        detail={"digit": "5", "mechanism": mechanism, "counted": False},
    )
    assert shown in timeline_table([key])


# --------------------------------------------------------------------------------------------------
# A read-only copy (a backup, a snapshot, a volume the kernel remounted read-only)


@contextlib.contextmanager
def read_only_copy(data_dir: Path, where: Path, *, leave_out: tuple[str, ...] = ()) -> Iterator[Path]:
    """A copy of ``data_dir`` (less the files named in ``leave_out``) that this user cannot write:
    on a tmpfs remounted read-only when run as root (root writes whatever the file modes say), its
    directories made mode 0555 otherwise."""
    where.mkdir()
    copy = where / "data"
    if os.geteuid() != 0:
        shutil.copytree(data_dir, copy, ignore=lambda _dir, names: [n for n in names if n in leave_out])
        directories = [copy, *(path for path in copy.rglob("*") if path.is_dir())]
        for directory in directories:
            directory.chmod(0o555)
        try:
            yield copy
        finally:
            for directory in directories:
                directory.chmod(0o700)
        return
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=20m,mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(
            f"running as root, and cannot mount a file system to make read-only: {mounted.stderr.strip()}"
        )
    try:
        shutil.copytree(data_dir, copy, ignore=lambda _dir, names: [n for n in names if n in leave_out])
        subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True, capture_output=True)
        yield copy
    finally:
        subprocess.run(["umount", "--lazy", str(where)], check=True)


def run_on(data_dir: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CALLHERALD), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, HOME_ENV: str(data_dir)},
    )


def test_reading_commands_work_on_a_read_only_copy_and_writing_ones_say_why_they_cannot(
    data: DataDir, tmp_path: Path
) -> None:
    # The copy of a cleanly closed database has no -wal or -shm file, which SQLite in WAL mode
    # would make even to read; it is read as it is (nothing can change it there).
    assert not list(data.layout.root.glob("evidence.sqlite-*"))
    with read_only_copy(data.layout.root, tmp_path / "backup") as copy:
        listed = run_on(copy, "recordings", "list")
        assert (listed.returncode, listed.stderr) == (0, "")
        assert str(COMPLETE_ID) in listed.stdout
        assert str(TRUNCATED_ID) in listed.stdout
        shown = run_on(copy, "recordings", "show", str(COMPLETE_ID))
        assert (shown.returncode, shown.stderr) == (0, "")
        assert "timeline of call call-a:" in shown.stdout
        verified = run_on(copy, "audit", "verify")
        assert (verified.returncode, verified.stderr) == (0, "")
        assert "intact" in verified.stdout
        dry_run = run_on(copy, "recordings", "expire", "--dry-run")
        assert (dry_run.returncode, dry_run.stderr) == (0, "")

        # Export writes an audit row, erase and hold write the record: refused, saying why.
        out = tmp_path / "call.wav"
        unwritable = "is on a read-only file system" if os.geteuid() == 0 else "is not writable by this user"
        for argv in (
            ("recordings", "export", str(COMPLETE_ID), "--out", str(out), "--key", str(data.reviewer_key)),
            ("recordings", "erase", str(COMPLETE_ID), "--reason", "Art. 17 request"),
            ("recordings", "hold", str(COMPLETE_ID), "--reason", "claim 7"),
        ):
            refused = run_on(copy, *argv)
            assert refused.returncode == 1, argv
            assert refused.stderr == (
                f"callherald recordings: {copy / 'evidence.sqlite'}: cannot open the evidence database"
                f" (writer): unable to open database file; {copy} {unwritable}\n"
            )
        assert not out.exists()
        assert sorted(path.name for path in copy.iterdir()) == sorted(
            path.name for path in data.layout.root.iterdir()
        )


@contextlib.contextmanager
def copy_while_open(data: DataDir) -> Iterator[Path]:
    """The data directory as a copy taken while callherald runs: the newest rows (an access request
    and its audit row) in the write-ahead log, not yet in the database file."""
    with serving_store(data.layout) as running:
        running.write(
            LaterEvent(call_id=COMPLETE_CALL.call_id, kind=LaterEventKind.ACCESS, at=at(90_000), actor="dpo")
        )
        wal = data.layout.evidence_db.with_name("evidence.sqlite-wal")
        assert wal.stat().st_size > 0
        yield data.layout.root


def test_a_read_only_copy_taken_while_running_is_read_with_its_write_ahead_log(
    data: DataDir, tmp_path: Path
) -> None:
    with copy_while_open(data) as root, read_only_copy(root, tmp_path / "backup") as copy:
        verified = run_on(copy, "audit", "verify", "--json")
    assert (verified.returncode, verified.stderr) == (0, "")
    with serving_store(data.layout) as store:
        rows = len(store.submit_read(lambda db: AuditLog(db).entries()).result())
    assert json.loads(verified.stdout)["rows_checked"] == rows  # the row in the log was read too


def test_a_read_only_copy_whose_write_ahead_log_cannot_be_read_is_refused_not_read_short(
    data: DataDir, tmp_path: Path
) -> None:
    # Without its -shm file SQLite cannot read the -wal in a directory it cannot write: reading the
    # database file alone would leave out its newest rows without a word.
    with (
        copy_while_open(data) as root,
        read_only_copy(root, tmp_path / "backup", leave_out=("evidence.sqlite-shm",)) as copy,
    ):
        verified = run_on(copy, "audit", "verify")
    assert verified.returncode == 1
    assert "write-ahead log evidence.sqlite-wal holds rows that SQLite reads only with write access" in (
        verified.stderr
    )
    assert "Traceback" not in verified.stderr
