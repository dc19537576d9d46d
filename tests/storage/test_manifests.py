"""Recording manifests on a real SQLite file: written with the recording's end, rebuilt and compared
by ``verify_manifests``; an edit of the evidence is found, what legitimately follows the end is not."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlite_utils import Database

from storage.audit import AuditLog
from storage.crypto import WrappedKey
from storage.manifests import AUDIT_ACTION_MANIFEST, ManifestMismatch, recording_manifest
from storage.migrations import MIGRATIONS
from storage.records import (
    AUDIT_ACTION_LATER_EVENT,
    AgentNotice,
    AgentNoticeEnd,
    AgentNoticeKind,
    Announcement,
    AnnouncementEnd,
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
    LegalHold,
    LegalHoldRelease,
    LegRole,
    MediaQuality,
    Pause,
    PauseReason,
    Purpose,
    RecordingEnd,
    RecordingErasure,
    RecordingStarted,
    RecordingState,
    write_recording_erasure,
)
from storage.sqlite_keys import SqliteKeyStore

T0 = dt.datetime(2026, 3, 1, 9, 0, 0, tzinfo=dt.UTC)
CALL = "c1"
OUT, PBX = f"{CALL}-out", f"{CALL}-pbx"
RID = uuid.UUID(int=1)
KEY_ID = "0123456789abcdef"
DPO = "cli (user dpo, uid 1001)"

EVIDENCE = Purpose(
    purpose_id="evidence", lawful_basis=LawfulBasis.CONTRACT, reference="terms v3", retention_days=30
)
TRAINING = Purpose(
    purpose_id="training", lawful_basis=LawfulBasis.CONSENT, reference="script v2", retention_days=90
)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def stored(seconds: float) -> str:
    """A time as the database stores it (and a manifest keeps it)."""
    return at(seconds).isoformat(timespec="microseconds")


def leg(leg_id: str, role: LegRole) -> Leg:
    return Leg(
        leg_id=leg_id, call_id=CALL, role=role, sip_call_id=f"{leg_id}@sip", remote_uri=f"sip:{leg_id}"
    )


def notice(start: float, end: float | None, *, leg_id: str = OUT) -> Announcement:
    return Announcement(
        leg_id=leg_id,
        prompt_id="notice",
        version="4",
        language="nl",
        audio_sha256="ab" * 32,
        started_at=at(start),
        ended_at=None if end is None else at(end),
        complete=end is not None,
    )


def beep(start: float) -> AgentNotice:
    return AgentNotice(
        leg_id=PBX,
        kind=AgentNoticeKind.TONE,
        name="beep",
        started_at=at(start),
        ended_at=None,
        complete=False,
    )


def decision(what: Decision, seconds: float) -> ConsentDecision:
    return ConsentDecision(
        call_id=CALL,
        question_id="training-consent",
        question_version="2",
        purpose_id=TRAINING.purpose_id,
        decision=what,
        mechanism="rfc4733",
        at=at(seconds),
    )


def digit(key: str, seconds: float) -> DtmfEvent:
    return DtmfEvent(leg_id=OUT, digit=key, mechanism="rfc4733", at=at(seconds), counted=True)


def started(rid: uuid.UUID, seconds: float, *purposes: Purpose) -> RecordingStarted:
    return RecordingStarted(
        recording_id=rid,
        call_id=CALL,
        file_name=f"{rid}.chrec",
        key_id=(KEY_ID,),
        started_at=at(seconds),
        first_frame_at=at(seconds),
        purposes=tuple(purpose.purpose_id for purpose in purposes),
        storage_region="EU, Amsterdam",
        worm=True,
    )


def end(rid: uuid.UUID, seconds: float) -> RecordingEnd:
    return RecordingEnd(
        recording_id=rid,
        finished_at=at(seconds),
        audio_sha256="cd" * 32,
        size_bytes=4000,
        duration_ms=round((seconds - 7) * 1000),
        end_reason="ended",
        media_quality=MediaQuality(
            outside_party=ChannelQuality(lost_ms=240, late_packets=2, late_ms=40), pbx_side=ChannelQuality()
        ),
    )


def recovered_end(*, file_sha256: str = "") -> RecordingEnd:
    """``RID`` as recovery ends it after a crash at 13 s: no audio hash (it cannot decrypt)."""
    return RecordingEnd(
        recording_id=RID,
        finished_at=at(13),
        audio_sha256="",
        size_bytes=1200,
        duration_ms=6000,
        end_reason="interrupted",
        file_sha256=file_sha256,
    )


def record_call(store: EvidenceStore, *, ended: bool = True) -> None:
    """Call ``c1``: the notice, a granted training question, recording ``RID`` from 7 s for both
    purposes with the beep to the agent, a key and a PCI pause in it, ended at 60 s."""
    store.write(
        CallStarted(
            call_id=CALL,
            direction=Direction.INBOUND,
            calling="+31201234567",
            called="+31307654321",
            local_line="+31307654321",
            agent_id="agent-7",
            setup_at=at(0),
            legs=(leg(OUT, LegRole.OUTSIDE), leg(PBX, LegRole.PBX)),
        )
    )
    store.write(notice(0, 5))
    store.write(digit("1", 6))
    store.write(decision(Decision.GRANTED, 6))
    store.write(CallPurposes(call_id=CALL, purposes=(EVIDENCE, TRAINING)))
    SqliteKeyStore(store).put(RID, [wrapped(RID)])
    store.write(started(RID, 7, EVIDENCE, TRAINING))
    store.write(beep(7))
    store.write(AgentNoticeEnd(leg_id=PBX, name="beep", started_at=at(7), ended_at=at(7.3), complete=True))
    store.write(digit("#", 20))
    store.write(Pause(recording_id=RID, reason=PauseReason.PCI, started_at=at(20), ended_at=None))
    if ended:
        store.record_recording_finished(end(RID, 60)).result()


def wrapped(rid: uuid.UUID) -> WrappedKey:
    return WrappedKey(
        recording_id=rid, recipient_key_id=KEY_ID, encapsulated_key=b"\1" * 32, sealed_key=b"\2" * 48
    )


def manifests(store: EvidenceStore) -> list[tuple[dt.datetime, str, str, dict[str, object]]]:
    entries = store.submit_read(lambda db: AuditLog(db).entries()).result()
    return [
        (entry.at, entry.actor, entry.subject, json.loads(entry.detail))
        for entry in entries
        if entry.action == AUDIT_ACTION_MANIFEST
    ]


def attacker(path: Path, *statements: str) -> None:
    """Someone with write access to the file, past the store's checks and triggers."""
    conn = sqlite3.connect(path)
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "evidence.db"


@pytest.fixture
def store(path: Path) -> Iterator[EvidenceStore]:
    with EvidenceStore(path) as evidence:
        yield evidence


# --------------------------------------------------------------------------------------------------
# Written with the end


def test_a_recording_s_end_writes_its_manifest_to_the_audit_log(store: EvidenceStore) -> None:
    record_call(store)
    ((when, actor, subject, manifest),) = manifests(store)
    assert (when, actor, subject) == (at(60), "callherald", str(RID))
    assert manifest == {
        "format": 1,
        "recording": {
            "id": str(RID),
            "call_id": CALL,
            "file_name": f"{RID}.chrec",
            "key_ids": [KEY_ID],
            "started_at": stored(7),
            "first_frame_at": stored(7),
            "finished_at": stored(60),
            "duration_ms": 53_000,
            "size_bytes": 4000,
            "state": "complete",
            "audio_sha256": "cd" * 32,
            "end_reason": "ended",
            "file_sha256": "",
            "storage_region": "EU, Amsterdam",
            "worm": True,
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
        },
        "call": {
            "id": CALL,
            "direction": "inbound",
            "calling": "+31201234567",
            "called": "+31307654321",
            "local_line": "+31307654321",
            "agent_id": "agent-7",
            "setup_at": stored(0),
        },
        "legs": [
            {"id": OUT, "role": "outside", "sip_call_id": f"{OUT}@sip", "remote_uri": f"sip:{OUT}"},
            {"id": PBX, "role": "pbx", "sip_call_id": f"{PBX}@sip", "remote_uri": f"sip:{PBX}"},
        ],
        "announcements": [
            {
                "leg_id": OUT,
                "prompt_id": "notice",
                "version": "4",
                "language": "nl",
                "audio_sha256": "ab" * 32,
                "started_at": stored(0),
                "ended_at": stored(5),
                "complete": True,
                "failure": None,
            }
        ],
        "digits": [
            {"leg_id": OUT, "digit": "1", "mechanism": "rfc4733", "at": stored(6), "counted": True},
            {"leg_id": OUT, "digit": "#", "mechanism": "rfc4733", "at": stored(20), "counted": True},
        ],
        "consent_decisions": [
            {
                "question_id": "training-consent",
                "question_version": "2",
                "purpose_id": "training",
                "decision": "granted",
                "mechanism": "rfc4733",
                "at": stored(6),
            }
        ],
        "purposes": [
            {
                "purpose_id": "evidence",
                "version": 1,
                "lawful_basis": "contract",
                "reference": "terms v3",
                "retention_days": 30,
                "delete_after": "2026-03-31",
            },
            {
                "purpose_id": "training",
                "version": 1,
                "lawful_basis": "consent",
                "reference": "script v2",
                "retention_days": 90,
                "delete_after": "2026-05-30",
            },
        ],
        # The pause still open ends with the recording, in the same transaction, before the manifest.
        "pauses": [{"reason": "pci", "started_at": stored(20), "ended_at": stored(60)}],
        "agent_notices": [
            {
                "leg_id": PBX,
                "kind": "tone",
                "name": "beep",
                "version": "",
                "language": "",
                "audio_sha256": "",
                "started_at": stored(7),
                "ended_at": stored(7.3),
                "complete": True,
                "failure": None,
            }
        ],
    }
    # Canonical: sorted keys, no whitespace, as every audit detail.
    (entry,) = store.submit_read(lambda db: AuditLog(db).entries()).result()
    assert entry.detail == json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    report = store.verify_manifests()
    assert (report.ok, report.checked, report.without_manifest) == (True, 1, 0)
    assert store.audit_verify().ok


def test_a_recording_still_running_has_no_manifest_and_is_not_counted_without_one(
    store: EvidenceStore,
) -> None:
    record_call(store, ended=False)
    assert manifests(store) == []
    report = store.verify_manifests()
    assert (report.ok, report.checked, report.without_manifest) == (True, 0, 0)


def test_a_truncated_recording_gets_its_manifest_with_its_end(store: EvidenceStore) -> None:
    record_call(store, ended=False)
    store.write(notice(30, None))  # a prompt playing when the process died
    store.record_recording_truncated(recovered_end()).result()
    ((_, _, _, manifest),) = manifests(store)
    recording = manifest["recording"]
    assert isinstance(recording, dict)
    assert (recording["state"], recording["finished_at"], recording["audio_sha256"]) == (
        "truncated",
        stored(13),
        "",
    )
    # Recovery then ends the prompt as interrupted, and the call: that is not tampering.
    store.write(
        AnnouncementEnd(
            leg_id=OUT,
            prompt_id="notice",
            started_at=at(30),
            ended_at=at(30),
            complete=False,
            failure="interrupted",
        )
    )
    store.write(CallEnded(call_id=CALL, ended_at=at(30), end_reason="interrupted"))
    assert store.verify_manifests().ok


def test_a_recovered_recording_s_manifest_pins_its_file(path: Path, store: EvidenceStore) -> None:
    # Recovery cannot decrypt: the SHA-256 of the file as it recovered it is what fixes the audio.
    record_call(store, ended=False)
    store.record_recording_truncated(recovered_end(file_sha256="12" * 32)).result()
    ((_, _, _, manifest),) = manifests(store)
    recording = manifest["recording"]
    assert isinstance(recording, dict)
    assert (recording["audio_sha256"], recording["file_sha256"]) == ("", "12" * 32)
    (record,) = store.recordings_list()
    assert record.file_sha256 == "12" * 32
    assert store.verify_manifests().ok
    attacker(path, f"UPDATE recordings SET file_sha256 = '{'34' * 32}'")  # to match a replaced file
    (mismatch,) = store.verify_manifests().mismatches
    assert mismatch.parts == ("recording",)


def test_a_manifest_written_before_file_hashes_were_kept_still_matches(
    path: Path, store: EvidenceStore
) -> None:
    record_call(store)
    older = store.submit_read(lambda db: recording_manifest(db, str(RID))).result()
    recording = older["recording"]
    del recording["file_sha256"]  # as callherald wrote manifests before it kept file hashes
    store.audit_append(
        at=at(61), actor="callherald", action=AUDIT_ACTION_MANIFEST, subject=str(RID), detail=older
    ).result()
    report = store.verify_manifests()
    assert (report.ok, report.checked) == (True, 2)
    # A file hash such a recording never had is a change, against both manifests.
    attacker(path, f"UPDATE recordings SET file_sha256 = '{'34' * 32}'")
    assert [(m.seq, m.parts) for m in store.verify_manifests().mismatches] == [
        (1, ("recording",)),
        (2, ("recording",)),
    ]


def test_a_recovered_recording_s_media_quality_is_not_measured(store: EvidenceStore) -> None:
    # Recovery after a crash has no recorder to ask: the manifest says so (null), not "clean".
    record_call(store, ended=False)
    store.record_recording_truncated(recovered_end()).result()
    ((_, _, _, manifest),) = manifests(store)
    recording = manifest["recording"]
    assert isinstance(recording, dict)
    assert recording["media_quality"] is None
    (record,) = store.recordings_list()
    assert record.media_quality is None


def test_a_manifest_written_before_media_quality_was_kept_still_matches(
    path: Path, store: EvidenceStore
) -> None:
    record_call(store, ended=False)
    store.record_recording_truncated(recovered_end()).result()  # not measured: the row holds ''
    older = store.submit_read(lambda db: recording_manifest(db, str(RID))).result()
    del older["recording"]["media_quality"]  # as callherald wrote manifests before it kept it
    store.audit_append(
        at=at(61), actor="callherald", action=AUDIT_ACTION_MANIFEST, subject=str(RID), detail=older
    ).result()
    report = store.verify_manifests()
    assert (report.ok, report.checked) == (True, 2)
    # A measure such a recording never had is a change, against both manifests.
    clean = '{"outside_party":{},"pbx_side":{}}'
    attacker(path, f"UPDATE recordings SET media_quality = '{clean}'")
    assert [(m.seq, m.parts) for m in store.verify_manifests().mismatches] == [
        (1, ("recording",)),
        (2, ("recording",)),
    ]


def test_a_manifest_written_before_the_storage_was_kept_still_matches(
    path: Path, store: EvidenceStore
) -> None:
    record_call(store)
    # The row as the upgrade left it (no region, no WORM flag), with the manifest of the time.
    attacker(path, "UPDATE recordings SET storage_region = '', worm = NULL")
    older = store.submit_read(lambda db: recording_manifest(db, str(RID))).result()
    assert (older["recording"].pop("storage_region"), older["recording"].pop("worm")) == ("", None)
    store.audit_append(
        at=at(61), actor="callherald", action=AUDIT_ACTION_MANIFEST, subject=str(RID), detail=older
    ).result()
    assert [(m.seq, m.parts) for m in store.verify_manifests().mismatches] == [(1, ("recording",))]
    # A flag or region such a recording never had is a change against the old manifest too.
    attacker(path, "UPDATE recordings SET storage_region = 'EU, Amsterdam', worm = 1")
    assert [(m.seq, m.parts) for m in store.verify_manifests().mismatches] == [(2, ("recording",))]


def test_an_end_whose_manifest_cannot_be_written_is_not_stored(path: Path, store: EvidenceStore) -> None:
    # One transaction: no recording ends without its manifest in the chain.
    record_call(store, ended=False)
    attacker(
        path,
        "CREATE TRIGGER no_manifest BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'full'); END",
    )
    with pytest.raises(sqlite3.IntegrityError, match="full"):
        store.record_recording_finished(end(RID, 60)).result()
    (record,) = store.recordings_list()
    assert (record.state, record.finished_at) == (RecordingState.RECORDING, None)
    assert store.submit_read(lambda db: db.execute("SELECT ended_at FROM pauses").fetchall()).result() == [
        (None,)
    ]


def test_the_manifest_is_the_evidence_as_it_stands_at_the_end(store: EvidenceStore) -> None:
    record_call(store)
    ((_, _, _, manifest),) = manifests(store)
    assert store.submit_read(lambda db: recording_manifest(db, str(RID))).result() == manifest


# --------------------------------------------------------------------------------------------------
# Tampering found


@pytest.mark.parametrize(
    ("statements", "parts"),
    [
        pytest.param(
            ["UPDATE consent_decisions SET decision = 'refused'"],
            ("consent decisions",),
            id="consent-decision",
        ),
        pytest.param(
            [f"UPDATE announcements_played SET ended_at = '{stored(8)}'"],
            ("announcements",),
            id="announcement-end",
        ),
        pytest.param(
            ["UPDATE announcements_played SET complete = 0"], ("announcements",), id="announcement-complete"
        ),
        pytest.param(
            [f"UPDATE recordings SET audio_sha256 = '{'ef' * 32}'"], ("recording",), id="audio-sha256"
        ),
        pytest.param(
            [f"UPDATE recordings SET first_frame_at = '{stored(4)}'"], ("recording",), id="first-frame"
        ),
        pytest.param(
            [f"UPDATE recordings SET file_sha256 = '{'ef' * 32}'"], ("recording",), id="file-sha256"
        ),
        pytest.param(
            # The lost audio made to look clean.
            ["UPDATE recordings SET media_quality = json_set(media_quality, '$.outside_party.lost_ms', 0)"],
            ("recording",),
            id="media-quality",
        ),
        pytest.param(["UPDATE recordings SET media_quality = ''"], ("recording",), id="media-quality-gone"),
        pytest.param(["UPDATE recordings SET storage_region = 'US'"], ("recording",), id="storage-region"),
        # Made to look rewritable, so that its file may go.
        pytest.param(["UPDATE recordings SET worm = 0"], ("recording",), id="worm"),
        pytest.param(
            ["UPDATE purposes SET lawful_basis = 'legitimate_interest' WHERE id = 'training'"],
            ("purposes",),
            id="purpose-basis",
        ),
        pytest.param(
            ["UPDATE call_purposes SET delete_after = '2036-01-01'"], ("purposes",), id="purpose-delete-after"
        ),
        pytest.param(
            ["DELETE FROM recording_purposes WHERE purpose_id = 'training'"],
            ("purposes",),
            id="purpose-dropped",
        ),
        pytest.param(["DELETE FROM pauses"], ("pauses",), id="pause-removed"),
        pytest.param(["DELETE FROM dtmf_events WHERE digit = '#'"], ("digits",), id="digit-removed"),
        pytest.param(["UPDATE agent_notices SET complete = 0"], ("agent notices",), id="agent-notice"),
        pytest.param(["UPDATE calls SET calling = '+31209999999'"], ("call",), id="call-number"),
        pytest.param(["UPDATE legs SET remote_uri = 'sip:someone-else'"], ("legs",), id="leg"),
        pytest.param(
            [
                "INSERT INTO consent_decisions VALUES "
                f"('{CALL}', 'training-consent', '2', 'training', 'refused', 'rfc4733', '{stored(6.5)}')"
            ],
            ("consent decisions",),
            id="decision-added-before-the-recording",
        ),
        pytest.param(
            [
                "INSERT INTO consent_decisions VALUES "
                f"('{CALL}', 'training-consent', '2', 'training', 'granted', 'rfc4733', '{stored(30)}')"
            ],
            ("consent decisions",),
            id="decision-added-while-the-recording-ran",
        ),
        pytest.param(
            [
                "UPDATE consent_decisions SET decision = 'refused'",
                f"UPDATE calls SET setup_at = '{stored(-1)}'",
            ],
            ("call", "consent decisions"),
            id="two-parts",
        ),
    ],
)
def test_an_edited_row_of_the_evidence_is_found_and_named(
    path: Path, store: EvidenceStore, statements: list[str], parts: tuple[str, ...]
) -> None:
    record_call(store)
    assert store.verify_manifests().ok
    attacker(path, *statements)
    report = store.verify_manifests()
    assert not report.ok
    assert report.mismatches == (ManifestMismatch(recording_id=str(RID), call_id=CALL, seq=1, parts=parts),)
    assert store.audit_verify().ok  # the chain itself is intact: only the manifests tell


def test_a_recording_row_that_is_gone_is_found(path: Path, store: EvidenceStore) -> None:
    record_call(store)
    attacker(path, "DELETE FROM pauses", "DELETE FROM recordings")
    (mismatch,) = store.verify_manifests().mismatches
    assert (mismatch.recording_id, mismatch.call_id, mismatch.parts) == (
        str(RID),
        CALL,
        ("recording", "pauses"),
    )


def test_a_row_open_at_the_end_may_end_but_not_change(path: Path, store: EvidenceStore) -> None:
    record_call(store, ended=False)
    store.write(notice(40, None, leg_id=PBX))
    store.record_recording_finished(end(RID, 60)).result()
    store.write(
        AnnouncementEnd(leg_id=PBX, prompt_id="notice", started_at=at(40), ended_at=at(61), complete=True)
    )
    assert store.verify_manifests().ok
    attacker(path, "UPDATE announcements_played SET version = '5' WHERE leg_id = 'c1-pbx'")
    (mismatch,) = store.verify_manifests().mismatches
    assert mismatch.parts == ("announcements",)


def test_every_manifest_of_a_recording_is_checked(path: Path, store: EvidenceStore) -> None:
    # A manifest appended after an edit, to match it, does not hide the edit from the first one.
    record_call(store)
    attacker(path, "UPDATE consent_decisions SET decision = 'refused'")
    store.submit_write(
        lambda db: AuditLog(db).append(
            at=at(70),
            actor="callherald",
            action=AUDIT_ACTION_MANIFEST,
            subject=str(RID),
            detail=recording_manifest(db, str(RID)),
        )
    ).result()
    report = store.verify_manifests()
    assert report.checked == 2
    assert [(m.seq, m.parts) for m in report.mismatches] == [(1, ("consent decisions",))]


# --------------------------------------------------------------------------------------------------
# Legitimate changes after the end are not tampering


def test_erasure_hold_release_and_later_events_leave_the_manifest_matching(store: EvidenceStore) -> None:
    record_call(store)
    store.write(CallEnded(call_id=CALL, ended_at=at(61), end_reason="bye-from-a"))
    for kind in (LaterEventKind.ACCESS, LaterEventKind.EXPORT, LaterEventKind.WITHDRAWAL):
        store.write(
            LaterEvent(call_id=CALL, kind=kind, at=at(3600), actor=DPO, detail={"recording_id": str(RID)})
        )
    store.record_legal_hold(LegalHold(recording_id=RID, at=at(7200), actor=DPO, reason="claim 118")).result()
    store.record_legal_hold_release(
        LegalHoldRelease(recording_id=RID, at=at(7300), actor=DPO, reason="claim settled")
    ).result()
    erasure = RecordingErasure(recording_id=RID, at=at(7400), actor=DPO, reason="data subject request")
    assert SqliteKeyStore(store).destroy(RID, along=lambda db: write_recording_erasure(db, erasure))
    (record,) = store.recordings_list()
    assert record.state is RecordingState.ERASED
    report = store.verify_manifests()
    assert (report.ok, report.checked) == (True, 1)
    assert store.audit_verify().ok


def _held_released_and_held_again(store: EvidenceStore) -> None:
    record_call(store)
    store.record_legal_hold(LegalHold(recording_id=RID, at=at(7200), actor=DPO, reason="claim 118")).result()
    store.record_legal_hold_release(
        LegalHoldRelease(recording_id=RID, at=at(7300), actor=DPO, reason="claim settled")
    ).result()
    store.record_legal_hold(LegalHold(recording_id=RID, at=at(7400), actor=DPO, reason="claim 119")).result()


@pytest.mark.parametrize(
    ("statements", "seq"),
    [
        pytest.param(["DELETE FROM legal_holds WHERE reason = 'claim 119'"], 4, id="hold-in-force-deleted"),
        pytest.param(["DELETE FROM legal_holds WHERE reason = 'claim 118'"], 2, id="released-hold-deleted"),
        pytest.param(
            [
                "DELETE FROM legal_holds WHERE reason = 'claim 119'",
                "UPDATE legal_holds SET released_at = NULL, released_by = NULL, release_reason = NULL",
            ],
            2,
            id="release-undone",
        ),
        pytest.param(["UPDATE legal_holds SET reason = 'nothing'"], 2, id="hold-reason-changed"),
        pytest.param(
            [
                "UPDATE legal_holds SET released_at = held_at, released_by = held_by, release_reason = 'x'"
                " WHERE released_at IS NULL"
            ],
            4,
            id="release-invented",
        ),
    ],
)
def test_a_legal_hold_that_is_not_as_its_audit_rows_say_is_found(
    path: Path, store: EvidenceStore, statements: list[str], seq: int
) -> None:
    _held_released_and_held_again(store)
    assert store.verify_manifests().ok
    attacker(path, *statements)
    mismatches = store.verify_manifests().mismatches
    assert ManifestMismatch(recording_id=str(RID), call_id=CALL, seq=seq, parts=("legal hold",)) in mismatches
    assert store.audit_verify().ok  # the chain itself is intact


def test_a_legal_hold_no_audit_row_records_is_found(path: Path, store: EvidenceStore) -> None:
    record_call(store)
    attacker(
        path,
        f"INSERT INTO legal_holds VALUES ('{RID}', '{stored(100)}', 'someone', 'forged', NULL, NULL, NULL)",
    )
    assert store.verify_manifests().mismatches == (
        ManifestMismatch(recording_id=str(RID), call_id=CALL, seq=0, parts=("legal hold",)),
    )


@pytest.mark.parametrize(
    ("statement", "seq"),
    [
        pytest.param(
            "UPDATE recordings SET erased_at = NULL, erased_by = NULL, erasure_reason = NULL", 1, id="cleared"
        ),
        pytest.param("UPDATE recordings SET erasure_reason = 'retention expired'", 1, id="reason-changed"),
    ],
)
def test_an_erasure_that_is_not_as_its_audit_row_says_is_found(
    path: Path, store: EvidenceStore, statement: str, seq: int
) -> None:
    record_call(store)
    erasure = RecordingErasure(recording_id=RID, at=at(7400), actor=DPO, reason="data subject request")
    assert SqliteKeyStore(store).destroy(RID, along=lambda db: write_recording_erasure(db, erasure))
    assert store.verify_manifests().ok
    attacker(path, statement)
    assert store.verify_manifests().mismatches == (
        ManifestMismatch(recording_id=str(RID), call_id=CALL, seq=seq + 1, parts=("erasure",)),
    )


def test_the_call_going_on_after_the_recording_is_not_tampering(store: EvidenceStore) -> None:
    # Consent withdrawn at 60 s: the next recording serves evidence alone, after a new party on the
    # line heard the notice; a purpose redefined later does not touch the recorded version.
    record_call(store)
    store.write(digit("9", 60.1))  # stored after the end, dated after the recording's start
    store.write(decision(Decision.REFUSED, 60.1))
    store.write(leg("c1-new", LegRole.OUTSIDE))
    store.write(notice(62, 66, leg_id="c1-new"))
    second = uuid.UUID(int=2)
    store.write(started(second, 67, EVIDENCE))
    store.write(beep(67))
    store.record_recording_finished(end(second, 90)).result()
    store.write(AgentNoticeEnd(leg_id=PBX, name="beep", started_at=at(67), ended_at=at(90.2), complete=True))
    store.write(CallEnded(call_id=CALL, ended_at=at(91), end_reason="bye-from-a"))
    store.define_purposes((EVIDENCE, dataclasses.replace(TRAINING, retention_days=9)), at=at(99)).result()
    report = store.verify_manifests()
    assert (report.ok, report.checked) == (True, 2)


def test_recordings_that_ended_before_manifests_were_kept_are_counted(
    path: Path, store: EvidenceStore
) -> None:
    record_call(store, ended=False)
    # Ended as the store did before manifests were kept: no audit row.
    attacker(
        path,
        f"UPDATE recordings SET state = 'complete', finished_at = '{stored(60)}', audio_sha256 = '', "
        "size_bytes = 0, duration_ms = 0",
    )
    report = store.verify_manifests()
    assert (report.ok, report.checked, report.without_manifest) == (True, 0, 1)


# --------------------------------------------------------------------------------------------------
# Later events, against the audit rows written with them


def withdrawal(seconds: float) -> LaterEvent:
    """The caller withdraws consent for training at ``seconds``, as the proxy stores it."""
    return LaterEvent(
        call_id=CALL,
        kind=LaterEventKind.WITHDRAWAL,
        at=at(seconds),
        actor="caller",
        detail={"purposes": ["training"], "mechanism": "rfc4733"},
    )


def audit_rows(
    store: EvidenceStore, action: str
) -> list[tuple[int, dt.datetime, str, str, dict[str, object]]]:
    entries = store.submit_read(lambda db: AuditLog(db).entries()).result()
    return [
        (entry.seq, entry.at, entry.actor, entry.subject, json.loads(entry.detail))
        for entry in entries
        if entry.action == action
    ]


def withdrawn_mid_call(store: EvidenceStore) -> int:
    """Call ``c1`` recorded, consent for training withdrawn at 30 s (stored after the recording's
    end, as its key's effects are); the seq of the withdrawal's audit row."""
    record_call(store)
    store.write(withdrawal(30))
    ((seq, *_),) = audit_rows(store, AUDIT_ACTION_LATER_EVENT)
    return seq


def test_a_later_event_is_stored_with_its_audit_row(store: EvidenceStore) -> None:
    record_call(store)
    store.write(withdrawal(30))
    assert audit_rows(store, AUDIT_ACTION_LATER_EVENT) == [
        (
            2,
            at(30),
            "caller",
            CALL,
            {
                "call_id": CALL,
                "kind": "withdrawal",
                "at": stored(30),
                "actor": "caller",
                "detail": {"purposes": ["training"], "mechanism": "rfc4733"},
            },
        )
    ]
    assert store.verify_manifests().ok
    assert store.audit_verify().ok


def test_a_later_event_whose_audit_row_cannot_be_written_is_not_stored(
    path: Path, store: EvidenceStore
) -> None:
    record_call(store)
    attacker(path, "CREATE TRIGGER no_row BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'full'); END")
    with pytest.raises(sqlite3.IntegrityError, match="full"):
        store.write(withdrawal(30))
    count = store.submit_read(lambda db: db.execute("SELECT count(*) FROM later_events").fetchone()).result()
    assert count == (0,)


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param("DELETE FROM later_events WHERE kind = 'withdrawal'", id="deleted"),
        pytest.param(f"UPDATE later_events SET at = '{stored(75)}'", id="time-changed"),
        pytest.param(
            """UPDATE later_events SET detail = '{"mechanism":"rfc4733","purposes":[]}'""", id="purposes"
        ),
        pytest.param("UPDATE later_events SET kind = 'objection'", id="kind-changed"),
    ],
)
def test_a_withdrawal_changed_or_deleted_is_found_with_its_call(
    path: Path, store: EvidenceStore, statement: str
) -> None:
    seq = withdrawn_mid_call(store)
    attacker(path, statement)
    report = store.verify_manifests()
    assert not report.ok
    assert (
        ManifestMismatch(recording_id="", call_id=CALL, seq=seq, parts=("withdrawal",)) in report.mismatches
    )
    assert store.audit_verify().ok  # the chain itself is intact: only the audit rows' content tells


def test_a_changed_withdrawal_is_one_change_not_a_deletion_and_a_forgery(
    path: Path, store: EvidenceStore
) -> None:
    seq = withdrawn_mid_call(store)
    attacker(path, f"UPDATE later_events SET at = '{stored(75)}'")
    assert store.verify_manifests().mismatches == (
        ManifestMismatch(recording_id="", call_id=CALL, seq=seq, parts=("withdrawal",)),
    )


def test_a_withdrawal_no_audit_row_records_is_found(path: Path, store: EvidenceStore) -> None:
    record_call(store)
    attacker(
        path,
        "INSERT INTO later_events VALUES "
        f"""('{CALL}', 'withdrawal', '{stored(30)}', 'caller', '{{"mechanism":"rfc4733","purposes":["training"]}}')""",
    )
    assert store.verify_manifests().mismatches == (
        ManifestMismatch(recording_id="", call_id=CALL, seq=0, parts=("withdrawal",)),
    )


def test_the_later_event_of_a_hold_deleted_is_found_with_its_recording(
    path: Path, store: EvidenceStore
) -> None:
    # A hold's later event is recorded by the hold's own audit row (row 2), not by one of its own.
    record_call(store)
    store.record_legal_hold(LegalHold(recording_id=RID, at=at(7200), actor=DPO, reason="claim 118")).result()
    assert audit_rows(store, AUDIT_ACTION_LATER_EVENT) == []
    attacker(path, "DELETE FROM later_events")
    assert store.verify_manifests().mismatches == (
        ManifestMismatch(recording_id=str(RID), call_id=CALL, seq=2, parts=("legal hold",)),
    )


def _database_before_later_events_were_audited(path: Path) -> None:
    """A database as the store left it before later events had audit rows: call ``c1`` recorded
    (its manifest in the audit log), consent withdrawn, a subject access, a legal hold."""
    with EvidenceStore(path) as evidence:
        record_call(evidence)
        evidence.record_legal_hold(
            LegalHold(recording_id=RID, at=at(7200), actor=DPO, reason="claim 118")
        ).result()
    older = Database(path)
    older.execute("DELETE FROM _sqlite_migrations WHERE name = '0013_later_events_audited'")
    for event in (
        withdrawal(30),
        LaterEvent(call_id=CALL, kind=LaterEventKind.ACCESS, at=at(3600), actor=DPO),
    ):
        older.execute(
            "INSERT INTO later_events VALUES (?, ?, ?, ?, ?)",
            [
                event.call_id,
                event.kind.value,
                stored((event.at - T0).total_seconds()),
                event.actor,
                json.dumps(dict(event.detail), sort_keys=True, separators=(",", ":")),
            ],
        )
    older.conn.commit()
    older.close()


def test_later_events_stored_before_they_were_audited_get_their_rows_on_upgrade(path: Path) -> None:
    _database_before_later_events_were_audited(path)
    with EvidenceStore(path) as evidence:
        assert evidence.verify_manifests().ok  # not an error: the upgrade wrote their audit rows
        rows = audit_rows(evidence, AUDIT_ACTION_LATER_EVENT)
        assert [
            (subject, detail["kind"], detail["at"], detail["audited_on_upgrade"])
            for _, _, _, subject, detail in rows
        ] == [
            (CALL, "withdrawal", stored(30), True),
            (CALL, "access", stored(3600), True),
        ]
        assert {actor for _, _, actor, _, _ in rows} == {"callherald"}
        assert evidence.audit_verify().ok
        (applied,) = [
            m for m in evidence.submit_read(MIGRATIONS.applied).result() if m.name.startswith("0013")
        ]
        assert applied.name == "0013_later_events_audited"
    # From then on, one deleted is found as any other.
    attacker(path, "DELETE FROM later_events WHERE kind = 'withdrawal'")
    with EvidenceStore(path) as evidence:
        ((seq, *_), _) = audit_rows(evidence, AUDIT_ACTION_LATER_EVENT)
        assert evidence.verify_manifests().mismatches == (
            ManifestMismatch(recording_id="", call_id=CALL, seq=seq, parts=("withdrawal",)),
        )
