"""The evidence store on a real SQLite file: schema, invariants, timeline, retention dates, WAL reads."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil
import sqlite3
import stat
import threading
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlite_utils import Database

from storage.audit import AuditLog
from storage.crypto import StorageError
from storage.migrations import (
    MIGRATION_SET,
    MIGRATIONS,
    from_db_time,
    open_reader,
    open_writer,
    to_db_time,
)
from storage.records import (
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
    InvariantError,
    LaterEvent,
    LaterEventKind,
    LawfulBasis,
    Leg,
    LegRole,
    MediaQuality,
    NotFoundError,
    NotRecorded,
    Pause,
    PauseEnd,
    PauseReason,
    Purpose,
    PurposeChange,
    RecordedPurpose,
    RecordingEnd,
    RecordingStarted,
    RecordingState,
    TimelineKind,
    delete_after,
)

T0 = dt.datetime(2026, 3, 1, 23, 30, 0, tzinfo=dt.UTC)
CALL = "call-1"
RID = uuid.UUID("00000000-0000-4000-8000-000000000001")
SHA = "ab" * 32

EVIDENCE = Purpose(
    purpose_id="evidence",
    lawful_basis=LawfulBasis.CONTRACT,
    reference="contract terms v3",
    retention_days=90,
)
TRAINING = Purpose(
    purpose_id="training", lawful_basis=LawfulBasis.CONSENT, reference="consent script v2", retention_days=30
)
MIFID = Purpose(
    purpose_id="mifid",
    lawful_basis=LawfulBasis.LEGAL_OBLIGATION,
    reference="MiFID II Art. 16(7)",
    retention_days=1826,
)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def started(call_id: str = CALL, calling: str = "+31201234567", called: str = "+31307654321") -> CallStarted:
    return CallStarted(
        call_id=call_id,
        direction=Direction.INBOUND,
        calling=calling,
        called=called,
        local_line=called,
        agent_id="agent-7",
        setup_at=at(0),
        legs=(
            Leg(
                leg_id=f"{call_id}-out",
                call_id=call_id,
                role=LegRole.OUTSIDE,
                sip_call_id="a@c",
                remote_uri="sip:c",
            ),
            Leg(
                leg_id=f"{call_id}-pbx",
                call_id=call_id,
                role=LegRole.PBX,
                sip_call_id="b@p",
                remote_uri="sip:p",
            ),
        ),
    )


def announcement(leg_id: str, start: float, end: float | None, complete: bool = True) -> Announcement:
    return Announcement(
        leg_id=leg_id,
        prompt_id="notice-nl",
        version="4",
        language="nl",
        audio_sha256=SHA,
        started_at=at(start),
        ended_at=None if end is None else at(end),
        complete=complete,
    )


def never_started(
    failure: str, *, start: float = 1, end: float | None = 1, complete: bool = False
) -> Announcement:
    """The row of a notice that could not start: no version or hash, sounded for no time."""
    return Announcement(
        leg_id=f"{CALL}-out",
        prompt_id="notice-nl",
        version="",
        language="nl",
        audio_sha256="",
        started_at=at(start),
        ended_at=None if end is None else at(end),
        complete=complete,
        failure=failure,
    )


def consent(decision: Decision, seconds: float, call_id: str = CALL) -> ConsentDecision:
    return ConsentDecision(
        call_id=call_id,
        question_id="q-training",
        question_version="1",
        purpose_id="training",
        decision=decision,
        mechanism="dtmf:1",
        at=at(seconds),
    )


def recording(
    first_frame: float, rid: uuid.UUID = RID, call_id: str = CALL, purposes: tuple[str, ...] = ("evidence",)
) -> RecordingStarted:
    return RecordingStarted(
        recording_id=rid,
        call_id=call_id,
        file_name=f"{rid}.chr",
        key_id=("300c9c9603b92a4b",),
        started_at=at(first_frame),
        first_frame_at=at(first_frame),
        purposes=purposes,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EvidenceStore]:
    with EvidenceStore(tmp_path / "evidence.db") as evidence:
        yield evidence


def prepared_call(store: EvidenceStore, call_id: str = CALL, **numbers: str) -> None:
    """A call with its legs, a complete announcement on the outside leg (1 s-9 s) and the evidence purpose."""
    store.write(started(call_id, **numbers))
    store.write(announcement(f"{call_id}-out", 1, 9))
    store.write(CallPurposes(call_id=call_id, purposes=(EVIDENCE,)))


def table_count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        (count,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(count)


# --------------------------------------------------------------------------------------------------
# Schema and connection settings


def test_migrations_are_tracked_and_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "evidence.db"
    first = open_writer(path)
    schema = sorted(first.table_names())
    first.close()
    second = open_writer(path)  # applies nothing new
    assert sorted(second.table_names()) == schema
    applied = [m.name for m in MIGRATIONS.applied(second)]
    names = [
        "0001_evidence_schema",
        "0002_audit_log_append_only",
        "0003_announcement_failure",
        "0004_pauses_end_with_their_recording",
        "0005_recording_end_reason",
        "0006_not_recorded",
        "0007_purpose_versions",
        "0008_recording_erasure",
        "0009_recording_purposes",
        "0010_agent_notices",
        "0011_legal_holds",
        "0012_agent_notices_written_as_they_start",
        "0013_later_events_audited",
        "0014_database_id",
        "0015_recording_file_sha256",
        "0016_recording_media_quality",
        "0017_manifest_signatures",
        "0018_recording_storage",
    ]
    assert applied == names
    rows = second.execute("SELECT migration_set, name FROM _sqlite_migrations ORDER BY id").fetchall()
    assert rows == [(MIGRATION_SET, name) for name in names]
    assert MIGRATIONS.pending(second) == []
    second.close()
    assert set(schema) >= {
        "calls",
        "legs",
        "announcements_played",
        "dtmf_events",
        "agent_notices",
        "consent_decisions",
        "purposes",
        "call_purposes",
        "recordings",
        "pauses",
        "not_recorded",
        "later_events",
        "legal_holds",
        "key_store",
        "audit_log",
    }


def test_later_events_stored_before_legal_holds_are_kept_in_order(tmp_path: Path) -> None:
    # 0011 rebuilds later_events to admit the release of a legal hold: what was there stays, in order.
    path = tmp_path / "evidence.db"
    older = Database(path)
    MIGRATIONS.apply(older, stop_before="0011_legal_holds")
    older.execute(
        "INSERT INTO calls (id, direction, calling, called, local_line, setup_at) VALUES (?, ?, ?, ?, ?, ?)",
        [CALL, "inbound", "+31201234567", "+31307654321", "+31307654321", to_db_time(at(0))],
    )
    for kind, seconds in (("withdrawal", 30), ("access", 10), ("legal_hold", 20)):
        older.execute(
            "INSERT INTO later_events (call_id, kind, at, actor, detail) VALUES (?, ?, ?, 'dpo', '{}')",
            [CALL, kind, to_db_time(at(seconds))],
        )
    with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
        older.execute(
            "INSERT INTO later_events (call_id, kind, at, actor, detail) "
            "VALUES (?, 'legal_hold_release', ?, 'dpo', '{}')",
            [CALL, to_db_time(at(40))],
        )
    older.conn.commit()
    older.close()
    with EvidenceStore(path) as store:
        store.write(LaterEvent(call_id=CALL, kind=LaterEventKind.LEGAL_HOLD_RELEASE, at=at(40), actor="dpo"))
        rows = store.submit_read(
            lambda db: db.execute("SELECT kind, at FROM later_events ORDER BY rowid").fetchall()
        ).result()
        assert rows == [
            ("withdrawal", to_db_time(at(30))),
            ("access", to_db_time(at(10))),
            ("legal_hold", to_db_time(at(20))),
            ("legal_hold_release", to_db_time(at(40))),
        ]
        fk = store.submit_read(lambda db: db.execute("PRAGMA foreign_key_check").fetchall()).result()
        assert fk == []


@pytest.mark.parametrize(
    ("pragma", "expected"),
    [("journal_mode", "wal"), ("foreign_keys", 1), ("synchronous", 1), ("secure_delete", 1)],
)
def test_connection_settings(tmp_path: Path, pragma: str, expected: object) -> None:
    db = open_writer(tmp_path / "evidence.db")
    try:
        assert db.execute(f"PRAGMA {pragma}").fetchone()[0] == expected
    finally:
        db.close()


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, under which new files are readable by everyone."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def database_files(path: Path) -> dict[str, int]:
    files = (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
    return {file.name: stat.S_IMODE(file.stat().st_mode) for file in files if file.exists()}


@pytest.mark.usefixtures("umask_022")
def test_the_database_and_its_wal_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    # The record holds phone numbers, call times and consent decisions (personal data).
    path = tmp_path / "evidence.db"
    with EvidenceStore(path) as store:
        store.write(started())
        assert database_files(path) == {
            "evidence.db": 0o600,
            "evidence.db-wal": 0o600,
            "evidence.db-shm": 0o600,
        }


@pytest.mark.usefixtures("umask_022")
def test_an_existing_database_readable_by_others_is_tightened_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "evidence.db"
    with EvidenceStore(path) as store:
        store.write(started())
        held_open = sqlite3.connect(path)  # keeps the WAL and its index when the store closes
        held_open.execute("SELECT count(*) FROM calls").fetchone()
    for name in database_files(path):
        (tmp_path / name).chmod(0o644)
    assert set(database_files(path).values()) == {0o644}
    with EvidenceStore(path) as store:
        assert [call.call_id for call in store.calls_for_number("+31201234567")] == [CALL]
        assert database_files(path) == {
            "evidence.db": 0o600,
            "evidence.db-wal": 0o600,
            "evidence.db-shm": 0o600,
        }
    held_open.close()


def test_reader_connection_is_read_only(tmp_path: Path) -> None:
    open_writer(tmp_path / "evidence.db").close()
    reader = open_reader(tmp_path / "evidence.db")
    try:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader.execute("INSERT INTO purposes VALUES ('x', 1, 'contract', 'r', 1)")
    finally:
        reader.close()


def test_open_failure_is_a_storage_error_without_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(StorageError, match="cannot open the evidence database") as raised:
        EvidenceStore(tmp_path / "missing-dir" / "evidence.db")
    assert "the disk holding it is full" not in str(raised.value)
    # The failure comes back in the caller's thread only: the executor logs no traceback of it.
    assert [r for r in caplog.records if r.exc_info] == []


def test_an_open_failure_on_a_full_disk_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr("storage.records.shutil.disk_usage", lambda _: usage._replace(free=0))
    with pytest.raises(StorageError, match="the disk holding it is full"):
        EvidenceStore(tmp_path / "missing-dir" / "evidence.db")


# --------------------------------------------------------------------------------------------------
# Time encoding


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        (dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC), "2026-03-01T12:00:00.000000+00:00"),
        (
            dt.datetime(2026, 3, 1, 13, 0, 0, 5, tzinfo=dt.timezone(dt.timedelta(hours=1))),
            "2026-03-01T12:00:00.000005+00:00",
        ),
        (
            dt.datetime(2026, 3, 1, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            "2026-02-28T22:30:00.000000+00:00",
        ),
    ],
)
def test_times_are_stored_in_utc(value: dt.datetime, stored: str) -> None:
    assert to_db_time(value) == stored
    decoded = from_db_time(stored)
    assert decoded == value
    assert decoded.tzinfo is dt.UTC


@given(st.datetimes(timezones=st.just(dt.UTC)), st.datetimes(timezones=st.just(dt.UTC)))
def test_stored_text_sorts_like_time(a: dt.datetime, b: dt.datetime) -> None:
    assert from_db_time(to_db_time(a)) == a
    assert (to_db_time(a) < to_db_time(b)) == (a < b)


def test_naive_datetimes_are_refused() -> None:
    naive = dt.datetime(2026, 3, 1, 12, 0)
    with pytest.raises(ValueError, match="naive datetime"):
        to_db_time(naive)
    with pytest.raises(ValueError, match="naive datetime"):
        DtmfEvent(leg_id="leg", digit="1", mechanism="rfc4733", at=naive, counted=True)
    with pytest.raises(ValueError, match="naive datetime"):
        CallEnded(call_id=CALL, ended_at=naive, end_reason="bye")
    with pytest.raises(ValueError, match="has no UTC offset"):
        from_db_time("2026-03-01T12:00:00")


# --------------------------------------------------------------------------------------------------
# Purposes and retention


@pytest.mark.parametrize(
    ("setup_at", "days", "expected"),
    [
        (T0, 90, dt.date(2026, 5, 30)),  # 23:30 UTC on 1 March
        (dt.datetime(2026, 3, 2, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=1))), 0, dt.date(2026, 3, 1)),
        (dt.datetime(2028, 2, 28, 12, 0, tzinfo=dt.UTC), 1, dt.date(2028, 2, 29)),
        (dt.datetime(2026, 12, 31, 12, 0, tzinfo=dt.UTC), 1826, dt.date(2031, 12, 31)),
    ],
)
def test_delete_after_is_the_utc_call_date_plus_retention(
    setup_at: dt.datetime, days: int, expected: dt.date
) -> None:
    assert delete_after(setup_at, days) == expected


def test_record_purposes_stores_delete_after_per_purpose(store: EvidenceStore) -> None:
    store.write(started())
    store.write(consent(Decision.GRANTED, 10))
    store.submit(CallPurposes(call_id=CALL, purposes=(EVIDENCE, TRAINING, MIFID))).result()
    assert store.delete_after_dates(CALL) == {
        "evidence": dt.date(2026, 5, 30),
        "mifid": dt.date(2031, 3, 1),  # 1826 days with 29 February 2028 in between
        "training": dt.date(2026, 3, 31),
    }


def purpose_audit(store: EvidenceStore) -> list[tuple[str, str, str, dict[str, object]]]:
    entries = store.submit_read(lambda db: AuditLog(db).entries()).result()
    return [(entry.actor, entry.action, entry.subject, json.loads(entry.detail)) for entry in entries]


def test_a_changed_purpose_applies_to_new_calls_and_earlier_calls_keep_theirs(tmp_path: Path) -> None:
    # The retention of evidence goes from 90 to 730 days between two runs, as a restart with an
    # edited configuration does: the second call is recorded under the new definition.
    path = tmp_path / "evidence.db"
    longer = dataclasses.replace(EVIDENCE, retention_days=730)
    with EvidenceStore(path) as store:
        assert store.define_purposes((EVIDENCE, TRAINING), at=at(0)).result() == []
        prepared_call(store)
        store.write(recording(10))
    with EvidenceStore(path) as store:
        (change,) = store.define_purposes((longer, TRAINING), at=at(60)).result()
        assert change == PurposeChange(version=2, previous=EVIDENCE, current=longer)
        assert store.define_purposes((longer, TRAINING), at=at(61)).result() == []  # once
        store.write(started("call-2"))
        store.write(announcement("call-2-out", 1, 9))
        store.write(CallPurposes(call_id="call-2", purposes=(longer,)))
        store.write(recording(10, uuid.UUID(int=2), call_id="call-2"))

        assert store.call_purposes(CALL) == [
            RecordedPurpose(purpose=EVIDENCE, version=1, delete_after=dt.date(2026, 5, 30))
        ]
        assert store.call_purposes("call-2") == [
            RecordedPurpose(purpose=longer, version=2, delete_after=dt.date(2028, 2, 29))
        ]
        assert [r.call_id for r in store.recordings_list()] == [CALL, "call-2"]
        assert purpose_audit(store) == [
            (
                "configuration",
                "purpose_changed",
                "evidence",
                {
                    "version": 2,
                    "previous": {
                        "version": 1,
                        "lawful_basis": "contract",
                        "reference": "contract terms v3",
                        "retention_days": 90,
                    },
                    "current": {
                        "lawful_basis": "contract",
                        "reference": "contract terms v3",
                        "retention_days": 730,
                    },
                },
            )
        ]
        assert store.audit_verify().ok


def test_a_purpose_changed_without_being_defined_first_is_versioned_as_its_call_is_recorded(
    store: EvidenceStore,
) -> None:
    prepared_call(store)
    legal = Purpose(
        purpose_id="evidence",
        lawful_basis=LawfulBasis.LEGAL_OBLIGATION,
        reference="Wft art. 4:14",
        retention_days=90,
    )
    store.write(started("call-2"))
    store.write(CallPurposes(call_id="call-2", purposes=(legal,)))
    assert [p.version for p in store.call_purposes(CALL)] == [1]
    assert [(p.purpose, p.version) for p in store.call_purposes("call-2")] == [(legal, 2)]
    ((_actor, action, subject, detail),) = purpose_audit(store)
    assert (action, subject, detail["current"]) == (
        "purpose_changed",
        "evidence",
        {"lawful_basis": "legal_obligation", "reference": "Wft art. 4:14", "retention_days": 90},
    )


def test_purposes_stored_before_versions_become_version_1(tmp_path: Path) -> None:
    path = tmp_path / "evidence.db"
    db = Database(sqlite3.connect(path))
    MIGRATIONS.apply(db, stop_before="0007_purpose_versions")
    db.execute(
        "INSERT INTO calls (id, direction, calling, called, local_line, setup_at) VALUES (?, ?, ?, ?, ?, ?)",
        [CALL, "inbound", "+31201234567", "+31307654321", "+31307654321", to_db_time(at(0))],
    )
    db.execute("INSERT INTO purposes VALUES ('evidence', 'contract', 'contract terms v3', 90)")
    db.execute("INSERT INTO call_purposes VALUES (?, 'evidence', '2026-05-30')", [CALL])
    db.conn.commit()
    db.close()
    with EvidenceStore(path) as store:
        assert store.call_purposes(CALL) == [
            RecordedPurpose(purpose=EVIDENCE, version=1, delete_after=dt.date(2026, 5, 30))
        ]
        assert store.define_purposes((EVIDENCE,), at=at(60)).result() == []
        fk = store.submit_read(lambda db: db.execute("PRAGMA foreign_key_check").fetchall()).result()
        assert fk == []


@pytest.mark.parametrize(
    ("decisions", "allowed", "message"),
    [
        ([], False, "no consent decision"),
        ([Decision.REFUSED], False, "the latest decision is refused"),
        ([Decision.NO_ANSWER], False, "the latest decision is no_answer"),
        ([Decision.GRANTED], True, ""),
        ([Decision.NO_ANSWER, Decision.GRANTED], True, ""),
        ([Decision.GRANTED, Decision.REFUSED], False, "the latest decision is refused"),
    ],
)
def test_consent_purpose_needs_granted_consent(
    store: EvidenceStore, decisions: list[Decision], allowed: bool, message: str
) -> None:
    store.write(started())
    for index, decision in enumerate(decisions):
        store.write(consent(decision, 10 + index))
    request = CallPurposes(call_id=CALL, purposes=(EVIDENCE, TRAINING))
    if allowed:
        store.write(request)
        assert set(store.delete_after_dates(CALL)) == {"evidence", "training"}
    else:
        with pytest.raises(InvariantError, match=message):
            store.write(request)
        # all or nothing: the evidence purpose written before the failing one was rolled back
        assert store.delete_after_dates(CALL) == {}
        assert table_count(store.path, "call_purposes") == 0


def test_consent_for_another_call_does_not_count(store: EvidenceStore) -> None:
    store.write(started())
    store.write(started("call-2"))
    store.write(consent(Decision.GRANTED, 10, call_id="call-2"))
    with pytest.raises(InvariantError, match="without granted consent"):
        store.write(CallPurposes(call_id=CALL, purposes=(TRAINING,)))


def test_purposes_for_an_unknown_call_are_refused(store: EvidenceStore) -> None:
    with pytest.raises(InvariantError, match="call nope is not recorded"):
        store.write(CallPurposes(call_id="nope", purposes=(EVIDENCE,)))


# --------------------------------------------------------------------------------------------------
# Recordings


def test_recording_needs_its_call(store: EvidenceStore) -> None:
    with pytest.raises(InvariantError, match="call call-1 is not recorded"):
        store.write(recording(10))
    assert table_count(store.path, "recordings") == 0


def test_recording_needs_purposes(store: EvidenceStore) -> None:
    store.write(started())
    store.write(announcement(f"{CALL}-out", 1, 9))
    with pytest.raises(InvariantError, match="has no purposes recorded"):
        store.write(recording(10))
    assert table_count(store.path, "recordings") == 0


def recording_purpose_rows(path: Path) -> list[tuple[str, str, str, int]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT recording_id, call_id, purpose_id, purpose_version FROM recording_purposes ORDER BY rowid"
        ).fetchall()
    return [(str(rid), str(call), str(purpose), int(version)) for rid, call, purpose, version in rows]


def test_a_recording_names_the_purposes_it_serves_in_its_call_s_version(tmp_path: Path) -> None:
    path = tmp_path / "evidence.db"
    with EvidenceStore(path) as store:
        store.define_purposes((dataclasses.replace(EVIDENCE, retention_days=30),), at=at(0)).result()
        prepared_call(store)  # evidence becomes version 2 with this call
        store.write(consent(Decision.GRANTED, 9.5))
        store.write(CallPurposes(call_id=CALL, purposes=(TRAINING,)))
        store.write(recording(10, purposes=("evidence", "training")))
        store.write(recording(20, uuid.UUID(int=2), purposes=("evidence",)))
    assert recording_purpose_rows(path) == [
        (str(RID), CALL, "evidence", 2),
        (str(RID), CALL, "training", 1),
        (str(uuid.UUID(int=2)), CALL, "evidence", 2),
    ]


def test_a_recording_may_serve_only_purposes_recorded_for_its_call(store: EvidenceStore) -> None:
    prepared_call(store)  # evidence only
    store.write(started("call-2"))
    store.write(consent(Decision.GRANTED, 5, call_id="call-2"))
    store.write(CallPurposes(call_id="call-2", purposes=(TRAINING,)))  # training, of another call
    with pytest.raises(InvariantError, match="purpose training is not recorded for call call-1"):
        store.write(recording(10, purposes=("evidence", "training")))
    assert table_count(store.path, "recordings") == 0
    assert table_count(store.path, "recording_purposes") == 0


def test_a_recording_serves_a_consent_purpose_only_while_consent_is_granted(store: EvidenceStore) -> None:
    prepared_call(store)
    store.write(consent(Decision.GRANTED, 9.5))
    store.write(CallPurposes(call_id=CALL, purposes=(TRAINING,)))
    store.write(consent(Decision.REFUSED, 15))  # asked again later, and refused
    with pytest.raises(
        InvariantError,
        match=f"recording {RID}: consent-based purpose training on call call-1 without granted "
        r"consent \(the latest decision is refused\)",
    ):
        store.write(recording(20, purposes=("evidence", "training")))
    assert table_count(store.path, "recordings") == 0
    store.write(recording(20, purposes=("evidence",)))
    assert recording_purpose_rows(store.path) == [(str(RID), CALL, "evidence", 1)]


def test_the_database_refuses_a_recording_purpose_of_another_version_or_call(store: EvidenceStore) -> None:
    prepared_call(store)
    store.write(CallPurposes(call_id=CALL, purposes=(MIFID,)))
    store.write(started("call-2"))
    store.write(CallPurposes(call_id="call-2", purposes=(MIFID,)))
    store.write(recording(10))  # evidence only
    store.write(recording(20, uuid.UUID(int=2), purposes=("mifid",)))  # a sound row is taken
    for row in ((str(RID), CALL, "mifid", 2), (str(RID), "call-2", "mifid", 1)):
        insert = partial(
            Database.execute, sql="INSERT INTO recording_purposes VALUES (?, ?, ?, ?)", parameters=row
        )
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY constraint failed"):
            store.submit_write(insert).result()


@pytest.mark.parametrize(
    ("purposes", "message"),
    [((), "at least one purpose"), (("evidence", "evidence"), "duplicate purpose ids")],
)
def test_a_recording_serves_one_or_more_distinct_purposes(purposes: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        recording(10, purposes=purposes)


def test_recordings_stored_before_their_own_purposes_serve_their_call_s(tmp_path: Path) -> None:
    # A database of the schema before recordings kept their purposes: its recording is read with
    # every purpose of its call, and kept while any of them allows it.
    path = tmp_path / "evidence.db"
    older = Database(path)
    MIGRATIONS.apply(older, stop_before="0009_recording_purposes")
    older.execute(
        "INSERT INTO calls (id, direction, calling, called, local_line, setup_at) VALUES (?, ?, ?, ?, ?, ?)",
        [CALL, "inbound", "+31201234567", "+31307654321", "+31307654321", to_db_time(at(0))],
    )
    older.execute("INSERT INTO purposes VALUES ('evidence', 1, 'contract', 'contract terms v3', 90)")
    older.execute("INSERT INTO purposes VALUES ('training', 1, 'consent', 'consent script v2', 30)")
    older.execute("INSERT INTO call_purposes VALUES (?, 'evidence', 1, '2026-05-30')", [CALL])
    older.execute("INSERT INTO call_purposes VALUES (?, 'training', 1, '2026-03-31')", [CALL])
    older.execute(
        "INSERT INTO recordings (id, call_id, file_name, key_id, first_frame_at, state, started_at, "
        "finished_at, duration_ms) VALUES (?, ?, 'r.chrec', 'k', ?, 'complete', ?, ?, 50000)",
        [str(RID), CALL, to_db_time(at(10)), to_db_time(at(10)), to_db_time(at(60))],
    )
    older.conn.commit()
    older.close()
    with EvidenceStore(path) as store:
        (row,) = store.recordings_list()
        assert row.purposes == (
            RecordedPurpose(purpose=EVIDENCE, version=1, delete_after=dt.date(2026, 5, 30)),
            RecordedPurpose(purpose=TRAINING, version=1, delete_after=dt.date(2026, 3, 31)),
        )
        assert store.recordings_past_retention(dt.date(2026, 4, 1)) == []
        assert [r.recording_id for r in store.recordings_past_retention(dt.date(2026, 5, 31))] == [RID]
        fk = store.submit_read(lambda db: db.execute("PRAGMA foreign_key_check").fetchall()).result()
        assert fk == []


@pytest.mark.parametrize(
    ("announcements", "first_frame", "message"),
    [
        ([("out", 1, 9, True)], 9, None),  # exactly at the end is allowed
        ([("out", 1, 9, True)], 12, None),
        ([("out", 1, 9, True)], 8.999, "announcement notice-nl on leg call-1-out ended at"),
        ([("out", 1, 9, True), ("out", 20, 30, True)], 25, "ended at 2026-03-01T23:30:30"),
        ([("out", 1, 9, True), ("out", 20, None, False)], 25, "never ended"),
        ([("pbx", 1, 40, True), ("out", 1, 9, True)], 10, None),  # the PBX leg does not count
        ([("pbx", 1, 9, True)], 10, "no announcement was played to the end on an outside leg"),
        ([("out", 1, 5, False)], 10, "no announcement was played to the end on an outside leg"),
        ([], 10, "no announcement was played to the end on an outside leg"),
    ],
)
def test_first_frame_not_before_the_end_of_any_outside_announcement(
    store: EvidenceStore,
    announcements: list[tuple[str, float, float | None, bool]],
    first_frame: float,
    message: str | None,
) -> None:
    store.write(started())
    for leg, start, end, complete in announcements:
        store.write(announcement(f"{CALL}-{leg}", start, end, complete))
    store.write(CallPurposes(call_id=CALL, purposes=(EVIDENCE,)))
    if message is None:
        store.write(recording(first_frame))
        assert [r.recording_id for r in store.recordings_list()] == [RID]
    else:
        with pytest.raises(InvariantError, match=message):
            store.write(recording(first_frame))
        assert store.recordings_list() == []


def announcement_rows(path: Path) -> list[tuple[str, str | None, int]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT started_at, ended_at, complete FROM announcements_played ORDER BY rowid")
        return [(str(start), end, int(complete)) for start, end, complete in rows]


@pytest.mark.parametrize("complete", [True, False], ids=["heard-whole", "cut-short"])
def test_an_announcement_is_stored_when_it_starts_and_its_end_added(
    store: EvidenceStore, complete: bool
) -> None:
    store.write(started())
    store.write(announcement(f"{CALL}-out", 1, None, complete=False))
    # Until its end comes (a crash now would keep this), the row says it started and never ended.
    assert announcement_rows(store.path) == [("2026-03-01T23:30:01.000000+00:00", None, 0)]
    end = AnnouncementEnd(
        leg_id=f"{CALL}-out", prompt_id="notice-nl", started_at=at(1), ended_at=at(9), complete=complete
    )
    store.write(end)
    assert announcement_rows(store.path) == [
        ("2026-03-01T23:30:01.000000+00:00", "2026-03-01T23:30:09.000000+00:00", int(complete))
    ]
    with pytest.raises(InvariantError, match="has already ended"):
        store.write(end)  # an end is added once
    store.write(CallPurposes(call_id=CALL, purposes=(EVIDENCE,)))
    if complete:
        store.write(recording(9))
        assert [r.recording_id for r in store.recordings_list()] == [RID]
    else:
        with pytest.raises(InvariantError, match="no announcement was played to the end"):
            store.write(recording(9))


@pytest.mark.parametrize(
    ("leg", "prompt", "start"),
    [("pbx", "notice-nl", 1), ("out", "ask-training", 1), ("out", "notice-nl", 2)],
    ids=["other-leg", "other-prompt", "other-start"],
)
def test_the_end_of_an_announcement_that_was_not_stored_is_refused(
    store: EvidenceStore, leg: str, prompt: str, start: float
) -> None:
    store.write(started())
    store.write(announcement(f"{CALL}-out", 1, None, complete=False))
    with pytest.raises(InvariantError, match="is not recorded or has already ended"):
        store.write(
            AnnouncementEnd(
                leg_id=f"{CALL}-{leg}", prompt_id=prompt, started_at=at(start), ended_at=at(9), complete=True
            )
        )
    assert announcement_rows(store.path) == [("2026-03-01T23:30:01.000000+00:00", None, 0)]


def test_a_prompt_that_failed_mid_play_ends_with_why_and_bars_recording_until_a_new_notice(
    store: EvidenceStore,
) -> None:
    store.write(started())
    store.write(announcement(f"{CALL}-out", 1, None, complete=False))
    store.write(
        AnnouncementEnd(
            leg_id=f"{CALL}-out",
            prompt_id="notice-nl",
            started_at=at(1),
            ended_at=at(3),
            complete=False,
            failure="codec PCMA not prepared",
        )
    )
    store.write(CallPurposes(call_id=CALL, purposes=(EVIDENCE,)))
    ends = [e for e in store.call_timeline(CALL) if e.kind is TimelineKind.ANNOUNCEMENT_END]
    assert [(e.at, e.detail["complete"], e.detail["failure"]) for e in ends] == [
        (at(3), False, "codec PCMA not prepared")
    ]
    # A notice heard whole before the failure does not make up for it; one heard after it does.
    store.write(announcement(f"{CALL}-out", 0, 1, complete=True))
    with pytest.raises(InvariantError, match=r"failed at .* \(codec PCMA not prepared\) and none was played"):
        store.write(recording(10))
    store.write(announcement(f"{CALL}-out", 4, 9, complete=True))
    store.write(recording(10))
    assert [r.recording_id for r in store.recordings_list()] == [RID]


def test_a_notice_that_could_not_start_is_one_failed_row_with_no_start_in_the_timeline(
    store: EvidenceStore,
) -> None:
    store.write(started())
    store.write(never_started("no codec to play the notice in"))
    store.write(CallPurposes(call_id=CALL, purposes=(EVIDENCE,)))
    prompts = [e for e in store.call_timeline(CALL) if e.kind.name.startswith("ANNOUNCEMENT")]
    assert [(e.kind, e.at, e.detail["complete"], e.detail["failure"]) for e in prompts] == [
        (TimelineKind.ANNOUNCEMENT_END, at(1), False, "no codec to play the notice in")
    ]
    with pytest.raises(InvariantError, match="no announcement was played to the end"):
        store.write(recording(10))


def test_a_failed_prompt_is_not_complete() -> None:
    with pytest.raises(ValueError, match="not complete"):
        AnnouncementEnd(
            leg_id="l", prompt_id="p", started_at=at(1), ended_at=at(2), complete=True, failure="codec"
        )


@pytest.mark.parametrize(("end", "complete"), [(None, False), (2.0, True)], ids=["no-end", "complete"])
def test_a_failed_announcement_row_has_ended_and_is_not_complete(end: float | None, complete: bool) -> None:
    with pytest.raises(ValueError, match="failed is not complete and has ended"):
        never_started("codec", end=end, complete=complete)


def older_database(tmp_path: Path, before: str, *statements: str) -> Path:
    """An evidence database as a callherald without migration ``before`` left it: call ``c``, then
    ``statements``."""
    path = tmp_path / "evidence.db"
    older = Database(path)
    MIGRATIONS.apply(older, stop_before=before)
    older.execute(
        "INSERT INTO calls (id, direction, calling, called, local_line, setup_at) "
        "VALUES ('c', 'inbound', '1', '2', '2', '2026-03-01T23:30:00.000000+00:00')"
    )
    for statement in statements:
        older.execute(statement)
    older.conn.commit()
    older.close()
    return path


def test_an_older_database_gains_the_failure_column_and_keeps_its_rows(tmp_path: Path) -> None:
    path = older_database(
        tmp_path,
        "0003_announcement_failure",
        "INSERT INTO legs VALUES ('c-out', 'c', 'outside', 'sip-1', 'sip:1@x')",
        "INSERT INTO announcements_played VALUES ('c-out', 'notice', '1', 'nl', '', "
        "'2026-03-01T23:30:01.000000+00:00', '2026-03-01T23:30:09.000000+00:00', 1)",
    )
    upgraded = open_writer(path)
    assert upgraded.execute("SELECT prompt_id, complete, failure FROM announcements_played").fetchall() == [
        ("notice", 1, None)
    ]
    upgraded.close()


def test_an_older_database_ends_the_pauses_its_finished_recordings_ended_in(tmp_path: Path) -> None:
    # Before 0004 a pause was stored only when it ended, without an end when its recording ended
    # during it; now no end means the pause still lasts, so those rows end with their recording.
    recordings = [
        "INSERT INTO recordings (id, call_id, file_name, key_id, first_frame_at, state, started_at, "
        f"finished_at) VALUES ('{rid}', 'c', '{rid}.chrec', 'k', '2026-03-01T23:30:10.000000+00:00', "
        f"'{state}', '2026-03-01T23:30:10.000000+00:00', {finished})"
        for rid, state, finished in (
            ("r-done", "complete", "'2026-03-01T23:31:00.000000+00:00'"),
            ("r-running", "recording", "NULL"),  # left open by a crash: recovery will end it
        )
    ]
    pauses = [
        f"INSERT INTO pauses VALUES ('{rid}', 'hold', '2026-03-01T{started}.000000+00:00', {ended})"
        for rid, started, ended in (
            ("r-done", "23:30:20", "'2026-03-01T23:30:30.000000+00:00'"),
            ("r-done", "23:30:50", "NULL"),
            ("r-running", "23:30:20", "NULL"),
        )
    ]
    path = older_database(tmp_path, "0004_pauses_end_with_their_recording", *recordings, *pauses)
    upgraded = open_writer(path)
    assert upgraded.execute(
        "SELECT recording_id, started_at, ended_at FROM pauses ORDER BY rowid"
    ).fetchall() == [
        ("r-done", "2026-03-01T23:30:20.000000+00:00", "2026-03-01T23:30:30.000000+00:00"),
        ("r-done", "2026-03-01T23:30:50.000000+00:00", "2026-03-01T23:31:00.000000+00:00"),
        ("r-running", "2026-03-01T23:30:20.000000+00:00", None),
    ]
    upgraded.close()


def test_an_older_database_gains_the_recording_end_reason_and_keeps_its_rows(tmp_path: Path) -> None:
    path = older_database(
        tmp_path,
        "0005_recording_end_reason",
        "INSERT INTO recordings (id, call_id, file_name, key_id, first_frame_at, state, started_at, "
        f"finished_at, duration_ms) VALUES ('{RID}', 'c', 'r.chrec', 'k', "
        "'2026-03-01T23:30:10.000000+00:00', 'complete', '2026-03-01T23:30:10.000000+00:00', "
        "'2026-03-01T23:31:00.000000+00:00', 50000)",
    )
    with EvidenceStore(path) as store:
        (row,) = store.recordings_list()
    assert (row.recording_id, row.state, row.duration_ms, row.end_reason) == (
        RID,
        RecordingState.COMPLETE,
        50000,
        None,
    )


def test_an_older_database_gains_media_quality_as_not_measured_and_new_ends_store_it(
    tmp_path: Path,
) -> None:
    path = older_database(
        tmp_path,
        "0016_recording_media_quality",
        "INSERT INTO recordings (id, call_id, file_name, key_id, first_frame_at, state, started_at, "
        f"finished_at, duration_ms, end_reason) VALUES ('{RID}', 'c', 'r.chrec', 'k', "
        "'2026-03-01T23:30:10.000000+00:00', 'complete', '2026-03-01T23:30:10.000000+00:00', "
        "'2026-03-01T23:31:00.000000+00:00', 50000, 'ended')",
    )
    with EvidenceStore(path) as store:
        (row,) = store.recordings_list()
    assert (row.recording_id, row.end_reason, row.media_quality) == (RID, "ended", None)


def test_an_older_database_gains_the_storage_as_not_recorded_and_new_recordings_store_it(
    tmp_path: Path,
) -> None:
    path = older_database(
        tmp_path,
        "0018_recording_storage",
        "INSERT INTO recordings (id, call_id, file_name, key_id, first_frame_at, state, started_at) "
        f"VALUES ('{RID}', 'c', 'r.chrec', 'k', '2026-03-01T23:30:10.000000+00:00', 'recording', "
        "'2026-03-01T23:30:10.000000+00:00')",
    )
    with EvidenceStore(path) as store:
        (row,) = store.recordings_list()
        assert (row.recording_id, row.storage_region, row.worm) == (RID, "", None)
        prepared_call(store)
        region = "EU, Amsterdam (own rack)"
        store.write(dataclasses.replace(recording(10, uuid.uuid4()), storage_region=region, worm=True))
        store.write(recording(11, uuid.uuid4()))
        rows = store.recordings_list(call_id=CALL)
    assert [(row.storage_region, row.worm) for row in rows] == [(region, True), ("", False)]


@pytest.mark.parametrize("region", ["e" * 201, "EU\nAmsterdam", "EU\x00"])
def test_a_storage_region_that_is_not_one_line_of_at_most_200_characters_is_refused(region: str) -> None:
    with pytest.raises(ValueError, match="storage region"):
        dataclasses.replace(recording(10), storage_region=region)


QUALITY = MediaQuality(
    outside_party=ChannelQuality(lost_ms=240, late_packets=2, late_ms=40, timestamp_jumps=1),
    pbx_side=ChannelQuality(drift_silence_ms=60, drift_dropped_ms=20),
)


def test_a_recording_s_media_quality_is_stored_with_its_end(store: EvidenceStore) -> None:
    prepared_call(store)
    store.write(recording(10))
    end = RecordingEnd(
        recording_id=RID,
        finished_at=at(70),
        audio_sha256=SHA,
        size_bytes=1234,
        duration_ms=60000,
        end_reason="ended",
        media_quality=QUALITY,
    )
    store.record_recording_finished(end).result()
    (row,) = store.recordings_list()
    assert row.media_quality == QUALITY
    assert not row.media_quality.outside_party.clean
    assert ChannelQuality().clean
    stored = store.submit_read(
        lambda db: db.execute("SELECT media_quality FROM recordings").fetchone()
    ).result()
    assert json.loads(stored[0]) == {
        "outside_party": {
            "lost_ms": 240,
            "late_packets": 2,
            "late_ms": 40,
            "timestamp_jumps": 1,
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
            "drift_silence_ms": 60,
            "drift_dropped_ms": 20,
            "ssrc_changes": 0,
            "duplicate_packets": 0,
        },
    }


def test_media_quality_is_described_per_channel_and_clean_when_nothing_was_lost() -> None:
    assert QUALITY.describe() == (
        "outside party: 240 ms lost (silence in the file), 2 packets too late to place (40 ms), "
        "1 timestamp jump (audio continued as it came); "
        "PBX side: 60 ms of silence put in for drift, 20 ms dropped for drift"
    )
    one_late = ChannelQuality(late_packets=1, late_ms=20)
    assert MediaQuality(outside_party=ChannelQuality(), pbx_side=one_late).describe() == (
        "outside party: clean; PBX side: 1 packet too late to place (20 ms)"
    )
    # The head of a packet partly stored already: its ms count, with no whole packet.
    assert ChannelQuality(late_ms=5).describe() == "5 ms of a packet too late to place"
    clean = MediaQuality(outside_party=ChannelQuality(), pbx_side=ChannelQuality())
    assert clean.clean
    assert clean.describe() == "clean"
    assert not QUALITY.clean


def test_a_new_ssrc_and_duplicate_packets_are_told_but_cost_no_audio() -> None:
    new_source = ChannelQuality(ssrc_changes=1, duplicate_packets=3)
    assert new_source.clean
    assert new_source.describe() == (
        "clean, 1 SSRC change (audio continued as it came), 3 duplicate packets (ignored)"
    )
    quality = MediaQuality(outside_party=new_source, pbx_side=ChannelQuality())
    assert quality.clean
    assert quality.describe() == (
        "outside party: clean, 1 SSRC change (audio continued as it came), 3 duplicate packets "
        "(ignored); PBX side: clean"
    )
    lossy = ChannelQuality(lost_ms=40, ssrc_changes=2)
    assert lossy.describe() == "40 ms lost (silence in the file), 2 SSRC changes (audio continued as it came)"


def test_a_quality_stored_before_ssrc_changes_and_duplicates_were_kept_reads_them_as_none() -> None:
    stored = json.dumps(
        {
            side: {
                "lost_ms": 20,
                "late_packets": 0,
                "late_ms": 0,
                "timestamp_jumps": 0,
                "drift_silence_ms": 0,
                "drift_dropped_ms": 0,
            }
            for side in ("outside_party", "pbx_side")
        }
    )
    quality = MediaQuality.from_json(stored)
    assert quality == MediaQuality(
        outside_party=ChannelQuality(lost_ms=20), pbx_side=ChannelQuality(lost_ms=20)
    )
    assert quality.outside_party.ssrc_changes == quality.pbx_side.duplicate_packets == 0


@pytest.mark.parametrize("text", ["[]", '{"outside_party": {}}', '{"outside_party": 1, "pbx_side": 2}'])
def test_a_media_quality_column_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a recording's media quality"):
        MediaQuality.from_json(text)


def test_media_quality_counts_are_never_negative() -> None:
    with pytest.raises(ValueError, match="lost_ms"):
        ChannelQuality(lost_ms=-1)


def test_an_announcement_cannot_end_before_it_started() -> None:
    with pytest.raises(ValueError, match="ended_at"):
        AnnouncementEnd(leg_id="l", prompt_id="p", started_at=at(9), ended_at=at(1), complete=True)


def test_recording_life_cycle(store: EvidenceStore) -> None:
    prepared_call(store)
    store.submit(recording(10)).result()
    (row,) = store.recordings_list()
    assert (row.state, row.finished_at, row.audio_sha256, row.size_bytes) == (
        RecordingState.RECORDING,
        None,
        None,
        None,
    )
    end = RecordingEnd(
        recording_id=RID,
        finished_at=at(70),
        audio_sha256=SHA,
        size_bytes=1234,
        duration_ms=60000,
        end_reason="ended",
    )
    store.record_recording_finished(end).result()
    (row,) = store.recordings_list()
    assert (
        row.state,
        row.finished_at,
        row.audio_sha256,
        row.size_bytes,
        row.duration_ms,
        row.end_reason,
    ) == (
        RecordingState.COMPLETE,
        at(70),
        SHA,
        1234,
        60000,
        "ended",
    )
    with pytest.raises(InvariantError, match="is not recorded or not running"):
        store.record_recording_truncated(end).result()


def test_truncated_recording(store: EvidenceStore) -> None:
    prepared_call(store)
    store.write(recording(10))
    end = RecordingEnd(
        recording_id=RID,
        finished_at=at(20),
        audio_sha256=SHA,
        size_bytes=10,
        duration_ms=9000,
        end_reason="ended",
    )
    store.record_recording_truncated(end).result()
    assert [r.state for r in store.recordings_list()] == [RecordingState.TRUNCATED]


def test_pause_needs_its_recording(store: EvidenceStore) -> None:
    prepared_call(store)
    pause = Pause(recording_id=RID, reason=PauseReason.HOLD, started_at=at(20), ended_at=at(30))
    with pytest.raises(InvariantError, match="which is not recorded"):
        store.write(pause)


def pause_rows(store: EvidenceStore) -> list[tuple[str, str, str | None]]:
    rows: list[tuple[str, str, str | None]] = store.submit_read(
        lambda db: db.execute("SELECT reason, started_at, ended_at FROM pauses ORDER BY rowid").fetchall()
    ).result()
    return rows


def test_a_pause_is_stored_as_it_starts_and_its_end_added(store: EvidenceStore) -> None:
    prepared_call(store)
    store.write(recording(10))
    store.write(Pause(recording_id=RID, reason=PauseReason.PCI, started_at=at(20), ended_at=None))
    assert pause_rows(store) == [("pci", to_db_time(at(20)), None)]
    store.write(PauseEnd(recording_id=RID, reason=PauseReason.PCI, started_at=at(20), ended_at=at(30)))
    assert pause_rows(store) == [("pci", to_db_time(at(20)), to_db_time(at(30)))]
    with pytest.raises(InvariantError, match="is not recorded or has already ended"):
        store.write(PauseEnd(recording_id=RID, reason=PauseReason.PCI, started_at=at(20), ended_at=at(31)))


def test_pauses_for_two_reasons_that_start_together_end_each_on_its_own(store: EvidenceStore) -> None:
    # A recording that starts paused for a hold and a PCI pause (after a withdrawal during both):
    # the end of one leaves the other open, with its own end later.
    prepared_call(store)
    store.write(recording(10))
    for reason in (PauseReason.HOLD, PauseReason.PCI):
        store.write(Pause(recording_id=RID, reason=reason, started_at=at(10), ended_at=None))
    store.write(PauseEnd(recording_id=RID, reason=PauseReason.PCI, started_at=at(10), ended_at=at(15)))
    assert pause_rows(store) == [
        ("hold", to_db_time(at(10)), None),
        ("pci", to_db_time(at(10)), to_db_time(at(15))),
    ]
    store.write(PauseEnd(recording_id=RID, reason=PauseReason.HOLD, started_at=at(10), ended_at=at(25)))
    assert pause_rows(store) == [
        ("hold", to_db_time(at(10)), to_db_time(at(25))),
        ("pci", to_db_time(at(10)), to_db_time(at(15))),
    ]
    with pytest.raises(InvariantError, match=r"api pause of recording .* is not recorded"):
        store.write(PauseEnd(recording_id=RID, reason=PauseReason.API, started_at=at(10), ended_at=at(26)))


@pytest.mark.parametrize("state", [RecordingState.COMPLETE, RecordingState.TRUNCATED])
@pytest.mark.parametrize(("paused_at", "ended_at"), [(40, 50), (55, 55)], ids=["within", "after its audio"])
def test_a_pause_that_lasts_until_its_recording_ends_ends_with_it(
    store: EvidenceStore, state: RecordingState, paused_at: float, ended_at: float
) -> None:
    # A pause that began after the last kept audio (a crash cut the recording back) ends as it began.
    prepared_call(store)
    store.write(recording(10))
    store.write(Pause(recording_id=RID, reason=PauseReason.HOLD, started_at=at(20), ended_at=at(30)))
    store.write(Pause(recording_id=RID, reason=PauseReason.API, started_at=at(paused_at), ended_at=None))
    end = RecordingEnd(
        recording_id=RID,
        finished_at=at(50),
        audio_sha256="",
        size_bytes=1,
        duration_ms=40000,
        end_reason="ended",
    )
    record = (
        store.record_recording_finished
        if state is RecordingState.COMPLETE
        else store.record_recording_truncated
    )
    record(end).result()
    assert pause_rows(store) == [
        ("hold", to_db_time(at(20)), to_db_time(at(30))),
        ("api", to_db_time(at(paused_at)), to_db_time(at(ended_at))),
    ]
    kinds = [(e.kind, e.at) for e in store.call_timeline(CALL) if e.at >= at(paused_at)]
    assert kinds[:2] == [(TimelineKind.PAUSE_START, at(paused_at)), (TimelineKind.PAUSE_END, at(ended_at))]


def test_a_call_not_recorded_keeps_why_in_its_timeline(store: EvidenceStore) -> None:
    with pytest.raises(InvariantError, match="call call-1 is not recorded"):
        store.write(NotRecorded(call_id=CALL, at=at(10), reason="disk full"))
    prepared_call(store)
    store.write(NotRecorded(call_id=CALL, at=at(10), reason="disk nearly full (2 MB free, 5 MB needed)"))
    (entry,) = [e for e in store.call_timeline(CALL) if e.kind is TimelineKind.NOT_RECORDED]
    assert (entry.at, entry.detail) == (at(10), {"reason": "disk nearly full (2 MB free, 5 MB needed)"})


def test_call_started_is_all_or_nothing(store: EvidenceStore) -> None:
    store.write(started())
    clash = CallStarted(
        call_id="call-2",
        direction=Direction.OUTBOUND,
        calling="+31301111111",
        called="+31302222222",
        local_line="+31301111111",
        agent_id=None,
        setup_at=at(5),
        legs=(
            Leg(
                leg_id=f"{CALL}-out",
                call_id="call-2",
                role=LegRole.OUTSIDE,
                sip_call_id="x",
                remote_uri="sip:x",
            ),
        ),
    )
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        store.write(clash)
    assert store.calls_for_number("+31301111111") == []


def test_foreign_keys_are_enforced(store: EvidenceStore) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        store.write(announcement("no-such-leg", 1, 2))


# --------------------------------------------------------------------------------------------------
# Lookups and the timeline


def test_calls_for_number_matches_calling_or_called(store: EvidenceStore) -> None:
    store.write(started("c1", calling="+31611111111", called="+31300000000"))
    store.write(started("c2", calling="+31300000000", called="+31622222222"))
    store.write(started("c3", calling="+31622222222", called="+31611111111"))
    assert [c.call_id for c in store.calls_for_number("+31611111111")] == ["c1", "c3"]
    assert [c.call_id for c in store.calls_for_number("+31300000000")] == ["c1", "c2"]
    assert store.calls_for_number("+31699999999") == []
    (call,) = store.calls_for_number("+31622222222")[:1]
    assert (call.direction, call.agent_id, call.setup_at, call.ended_at) == (
        Direction.INBOUND,
        "agent-7",
        T0,
        None,
    )


def test_recordings_list_filters(store: EvidenceStore) -> None:
    for index, number in enumerate(["+31611111111", "+31622222222", "+31611111111"]):
        call_id = f"c{index}"
        prepared_call(store, call_id, calling=number)
        rid = uuid.UUID(int=index + 1)
        store.write(recording(10 + 100 * index, rid=rid, call_id=call_id))
    store.record_recording_finished(
        RecordingEnd(
            recording_id=uuid.UUID(int=1),
            finished_at=at(50),
            audio_sha256=SHA,
            size_bytes=1,
            duration_ms=1,
            end_reason="ended",
        )
    ).result()

    def ids(**filters: object) -> list[int]:
        return [r.recording_id.int for r in store.recordings_list(**filters)]  # type: ignore[arg-type]

    assert ids() == [1, 2, 3]
    assert ids(number="+31611111111") == [1, 3]
    assert ids(number="31611111111") == [1, 3]  # spaces, dashes and a leading + are ignored
    assert ids(number="+31 6-1111 1111") == [1, 3]
    assert ids(number="+3161") == []  # a whole number, not a prefix
    assert ids(since=at(110)) == [2, 3]
    assert ids(since=at(110), until=at(210)) == [2]
    assert ids(state=RecordingState.RECORDING) == [2, 3]
    assert ids(state=RecordingState.COMPLETE) == [1]
    assert ids(limit=2) == [1, 2]


def test_call_timeline_is_in_time_order(store: EvidenceStore) -> None:
    # written out of time order on purpose
    store.write(started())
    store.write(consent(Decision.GRANTED, 12))
    store.write(DtmfEvent(leg_id=f"{CALL}-out", digit="1", mechanism="rfc4733", at=at(11.5), counted=True))
    store.write(announcement(f"{CALL}-out", 1, 9))
    # The consent prompt starts as the notice ends.
    store.write(dataclasses.replace(announcement(f"{CALL}-out", 9, 11), prompt_id="ask"))
    store.write(CallPurposes(call_id=CALL, purposes=(EVIDENCE, TRAINING)))
    store.write(recording(13))
    store.write(Pause(recording_id=RID, reason=PauseReason.PCI, started_at=at(40), ended_at=at(55)))
    store.write(Pause(recording_id=RID, reason=PauseReason.HOLD, started_at=at(20), ended_at=at(30)))
    store.write(DtmfEvent(leg_id=f"{CALL}-out", digit="4", mechanism="rfc4733", at=at(45), counted=False))
    store.record_recording_finished(
        RecordingEnd(
            recording_id=RID,
            finished_at=at(60),
            audio_sha256=SHA,
            size_bytes=9,
            duration_ms=47000,
            end_reason="ended",
        )
    ).result()
    store.submit(CallEnded(call_id=CALL, ended_at=at(60), end_reason="bye from outside")).result()
    store.submit(
        LaterEvent(
            call_id=CALL,
            kind=LaterEventKind.ACCESS,
            at=T0 + dt.timedelta(days=3),
            actor="dpo",
            detail={"request": "dsar-17"},
        )
    ).result()

    timeline = store.call_timeline(CALL)
    assert [(e.at - T0, e.kind) for e in timeline] == [
        (dt.timedelta(0), TimelineKind.CALL_SETUP),
        (dt.timedelta(seconds=1), TimelineKind.ANNOUNCEMENT_START),
        (dt.timedelta(seconds=9), TimelineKind.ANNOUNCEMENT_END),  # the notice ends, then
        (dt.timedelta(seconds=9), TimelineKind.ANNOUNCEMENT_START),  # the consent prompt starts
        (dt.timedelta(seconds=11), TimelineKind.ANNOUNCEMENT_END),
        (dt.timedelta(seconds=11.5), TimelineKind.DTMF),
        (dt.timedelta(seconds=12), TimelineKind.CONSENT),
        (dt.timedelta(seconds=13), TimelineKind.RECORDING_START),
        (dt.timedelta(seconds=13), TimelineKind.FIRST_FRAME),
        (dt.timedelta(seconds=20), TimelineKind.PAUSE_START),
        (dt.timedelta(seconds=30), TimelineKind.PAUSE_END),
        (dt.timedelta(seconds=40), TimelineKind.PAUSE_START),
        (dt.timedelta(seconds=45), TimelineKind.DTMF),
        (dt.timedelta(seconds=55), TimelineKind.PAUSE_END),
        (dt.timedelta(seconds=60), TimelineKind.RECORDING_END),
        (dt.timedelta(seconds=60), TimelineKind.CALL_END),
        (dt.timedelta(days=3), TimelineKind.LATER_EVENT),
    ]
    assert timeline[5].detail == {"digit": "1", "mechanism": "rfc4733", "counted": True}
    assert timeline[9].detail == {"reason": "hold"}
    assert timeline[11].detail == {"reason": "pci"}
    assert timeline[12].detail == {"digit": "4", "mechanism": "rfc4733", "counted": False}
    assert timeline[14].detail == {
        "state": "complete",
        "audio_sha256": SHA,
        "size_bytes": 9,
        "duration_ms": 47000,
        "end_reason": "ended",
    }
    assert timeline[16].detail == {"kind": "access", "actor": "dpo", "request": "dsar-17"}
    assert all(e.at.tzinfo is dt.UTC for e in timeline)


def beep(start: float, end: float, *, leg: str = "pbx", complete: bool = True) -> AgentNotice:
    return AgentNotice(
        leg_id=f"{CALL}-{leg}",
        kind=AgentNoticeKind.TONE,
        name="beep",
        started_at=at(start),
        ended_at=at(end),
        complete=complete,
    )


def test_the_agent_s_beep_as_recording_starts_is_in_the_timeline_and_does_not_bar_the_recording(
    store: EvidenceStore,
) -> None:
    prepared_call(store)
    # The beep plays as the recording starts: were it an announcement, the first frame (at 13 s)
    # would come before its end and the recording be refused.
    store.write(beep(13.02, 13.32))
    store.write(recording(13))
    store.write(
        AgentNotice(
            leg_id=f"{CALL}-pbx",
            kind=AgentNoticeKind.PROMPT,
            name="notice-nl",
            version="4",
            language="nl",
            audio_sha256=SHA,
            started_at=at(1),
            ended_at=at(5),
            complete=False,
        )
    )
    assert [r.recording_id for r in store.recordings_list()] == [RID]
    informed = [e for e in store.call_timeline(CALL) if e.kind is TimelineKind.AGENT_INFORMED]
    assert [(e.at - T0, e.leg_id) for e in informed] == [
        (dt.timedelta(seconds=1), f"{CALL}-pbx"),
        (dt.timedelta(seconds=13.02), f"{CALL}-pbx"),
    ]
    assert informed[0].detail == {
        "kind": "prompt",
        "name": "notice-nl",
        "version": "4",
        "language": "nl",
        "audio_sha256": SHA,
        "ended_at": at(5),
        "complete": False,
        "failure": None,
    }
    assert informed[1].detail == {
        "kind": "tone",
        "name": "beep",
        "version": "",
        "language": "",
        "audio_sha256": "",
        "ended_at": at(13.32),
        "complete": True,
        "failure": None,
    }
    assert table_count(store.path, "announcements_played") == 1


@pytest.mark.parametrize(("leg", "found"), [("out", "an outside leg"), ("gone", "not recorded")])
def test_an_agent_notice_is_stored_on_a_pbx_leg_only(store: EvidenceStore, leg: str, found: str) -> None:
    prepared_call(store)
    with pytest.raises(InvariantError, match=f"agent notice beep on leg {CALL}-{leg}, which is {found}"):
        store.write(beep(13, 13.3, leg=leg))
    assert table_count(store.path, "agent_notices") == 0


def test_an_agent_notice_that_failed_is_not_complete() -> None:
    with pytest.raises(ValueError, match="failed is not complete"):
        dataclasses.replace(beep(13, 13), failure="no address")
    with pytest.raises(ValueError, match="complete agent notice needs ended_at"):
        dataclasses.replace(beep(13, 13), ended_at=None)


def test_an_agent_notice_is_written_as_it_starts_and_ended_once(store: EvidenceStore) -> None:
    prepared_call(store)
    store.write(dataclasses.replace(beep(13.02, 13.32), ended_at=None, complete=False))
    (playing,) = [e for e in store.call_timeline(CALL) if e.kind is TimelineKind.AGENT_INFORMED]
    assert (playing.at, playing.detail["ended_at"], playing.detail["complete"]) == (at(13.02), None, False)

    end = AgentNoticeEnd(
        leg_id=f"{CALL}-pbx", name="beep", started_at=at(13.02), ended_at=at(13.32), complete=True
    )
    store.write(end)
    (ended,) = [e for e in store.call_timeline(CALL) if e.kind is TimelineKind.AGENT_INFORMED]
    assert (ended.at, ended.detail["ended_at"], ended.detail["complete"]) == (at(13.02), at(13.32), True)
    with pytest.raises(InvariantError, match="is not recorded or has already ended"):
        store.write(end)
    with pytest.raises(InvariantError, match="is not recorded or has already ended"):
        store.write(dataclasses.replace(end, started_at=at(13), ended_at=at(13.3)))  # no such start
    assert table_count(store.path, "agent_notices") == 1


def test_agent_notices_stored_before_they_were_written_as_they_start_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "evidence.db"
    older = Database(path)
    MIGRATIONS.apply(older, stop_before="0012_agent_notices_written_as_they_start")
    older.execute(
        "INSERT INTO calls (id, direction, calling, called, local_line, setup_at) VALUES (?, ?, ?, ?, ?, ?)",
        [CALL, "inbound", "+31201234567", "+31307654321", "+31307654321", to_db_time(at(0))],
    )
    older.execute("INSERT INTO legs VALUES (?, ?, 'pbx', 'b@p', 'sip:p')", [f"{CALL}-pbx", CALL])
    older.execute(
        "INSERT INTO agent_notices VALUES (?, 'tone', 'beep', '', '', '', ?, ?, 1, NULL)",
        [f"{CALL}-pbx", to_db_time(at(13.02)), to_db_time(at(13.32))],
    )
    older.conn.commit()
    older.close()
    with EvidenceStore(path) as store:
        (kept,) = [e for e in store.call_timeline(CALL) if e.kind is TimelineKind.AGENT_INFORMED]
        assert (kept.at, kept.detail["ended_at"], kept.detail["complete"]) == (at(13.02), at(13.32), True)
        store.write(dataclasses.replace(beep(20, 20.3), ended_at=None, complete=False))  # an open end now
        fk = store.submit_read(lambda db: db.execute("PRAGMA foreign_key_check").fetchall()).result()
        assert fk == []


def test_timeline_of_unknown_call(store: EvidenceStore) -> None:
    with pytest.raises(NotFoundError, match="call nope is not recorded"):
        store.call_timeline("nope")


# --------------------------------------------------------------------------------------------------
# One writer, concurrent readers (WAL)


def test_reader_sees_committed_rows_while_the_writer_holds_a_transaction(store: EvidenceStore) -> None:
    store.write(started("c1", calling="+31611111111"))
    inside = threading.Event()
    release = threading.Event()

    def slow_write(db: Database) -> None:
        # runs in the writer's transaction: a second call, uncommitted until release
        db.execute(
            "INSERT INTO calls (id, direction, calling, called, local_line, setup_at) VALUES (?, ?, ?, ?, ?, ?)",
            ["c2", "inbound", "+31611111111", "+31300000000", "+31300000000", to_db_time(at(1))],
        )
        inside.set()
        assert release.wait(10)

    pending = store.submit_write(slow_write)
    assert inside.wait(10)
    # the writer is mid-transaction: the reader is not blocked and sees only committed rows
    assert [c.call_id for c in store.calls_for_number("+31611111111")] == ["c1"]
    release.set()
    pending.result(timeout=10)
    assert [c.call_id for c in store.calls_for_number("+31611111111")] == ["c1", "c2"]


def test_writes_run_on_one_thread_in_submission_order(store: EvidenceStore) -> None:
    threads: set[int] = set()

    def note(db: Database) -> int:
        threads.add(threading.get_ident())
        return len(threads)

    writes = [store.submit(started(f"c{i}", calling="+31611111111")) for i in range(20)]
    notes = [store.submit_write(note) for _ in range(3)]
    for write in writes:
        write.result(timeout=10)
    assert [n.result(timeout=10) for n in notes] == [1, 1, 1]
    assert len(threads) == 1
    assert threading.get_ident() not in threads
    assert [c.call_id for c in store.calls_for_number("+31611111111")] == [f"c{i}" for i in range(20)]


def test_closed_store_refuses_work(tmp_path: Path) -> None:
    evidence = EvidenceStore(tmp_path / "evidence.db")
    evidence.close()
    evidence.close()  # idempotent
    with pytest.raises(StorageError, match="closed"):
        evidence.write(started())


def test_a_read_only_store_reads_and_refuses_every_write(tmp_path: Path) -> None:
    path = tmp_path / "evidence.sqlite"
    with EvidenceStore(path) as store:
        prepared_call(store)
    with EvidenceStore(path, read_only=True) as reader:
        assert reader.call_timeline(CALL)[0].kind is TimelineKind.CALL_SETUP
        with pytest.raises(StorageError, match="open read-only"):
            reader.write(CallEnded(call_id=CALL, ended_at=at(50), end_reason="bye"))
    with EvidenceStore(path) as store:
        assert store.recordings_list() == []
        assert store.call_timeline(CALL)[-1].kind is not TimelineKind.CALL_END


def test_a_read_only_store_upgrades_an_earlier_schema_where_it_may_write(tmp_path: Path) -> None:
    # As opening for writing did before reading commands opened read-only: the reading still works.
    path = tmp_path / "evidence.sqlite"
    older = Database(path)
    MIGRATIONS.apply(older, stop_before="0011_legal_holds")
    older.close()
    with EvidenceStore(path, read_only=True) as reader:
        assert reader.recordings_list() == []
        assert not reader.submit_read(MIGRATIONS.pending).result()
