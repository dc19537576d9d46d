"""Erasing a recording in the evidence record (crypto-shredding through ``SqliteKeyStore.destroy``),
its purposes as the record reads them, and which recordings are past their retention."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.audit import AuditEntry, AuditLog
from storage.crypto import WrappedKey
from storage.manifests import AUDIT_ACTION_MANIFEST
from storage.records import (
    Announcement,
    CallPurposes,
    CallStarted,
    ConsentDecision,
    Decision,
    Direction,
    EvidenceStore,
    InvariantError,
    LawfulBasis,
    Leg,
    LegalHold,
    LegalHoldRelease,
    LegRole,
    NotFoundError,
    Purpose,
    RecordedPurpose,
    RecordingEnd,
    RecordingErasure,
    RecordingStarted,
    RecordingState,
    TimelineKind,
    erasure_refusal,
    write_recording_erasure,
)
from storage.sqlite_keys import SqliteKeyStore

T0 = dt.datetime(2026, 3, 1, 9, 0, 0, tzinfo=dt.UTC)
ERASED_AT = dt.datetime(2026, 6, 1, 8, 0, 0, tzinfo=dt.UTC)
ACTOR = "cli (user dpo, uid 1001)"

SHORT = Purpose(
    purpose_id="evidence", lawful_basis=LawfulBasis.CONTRACT, reference="terms v3", retention_days=30
)
LONG = Purpose(
    purpose_id="training", lawful_basis=LawfulBasis.CONSENT, reference="script v2", retention_days=90
)


def record_call(store: EvidenceStore, number: int, *purposes: Purpose, ended: bool = True) -> uuid.UUID:
    """Call ``c<number>`` with a notice, ``purposes`` and one recording (ended unless not ``ended``),
    whose wrapped keys are in the key store; returns the recording id."""
    call_id, rid = f"c{number}", uuid.UUID(int=number)
    store.write(
        CallStarted(
            call_id=call_id,
            direction=Direction.INBOUND,
            calling="+31201234567",
            called="+31307654321",
            local_line="+31307654321",
            agent_id=None,
            setup_at=T0,
            legs=(
                Leg(
                    leg_id=f"{call_id}-out",
                    call_id=call_id,
                    role=LegRole.OUTSIDE,
                    sip_call_id="a",
                    remote_uri="sip:a",
                ),
            ),
        )
    )
    store.write(
        Announcement(
            leg_id=f"{call_id}-out",
            prompt_id="notice",
            version="1",
            language="nl",
            audio_sha256="ab" * 32,
            started_at=T0,
            ended_at=T0 + dt.timedelta(seconds=5),
            complete=True,
        )
    )
    if any(purpose.lawful_basis is LawfulBasis.CONSENT for purpose in purposes):
        store.write(
            ConsentDecision(
                call_id=call_id,
                question_id="q",
                question_version="1",
                purpose_id=LONG.purpose_id,
                decision=Decision.GRANTED,
                mechanism="rfc4733",
                at=T0 + dt.timedelta(seconds=6),
            )
        )
    store.write(CallPurposes(call_id=call_id, purposes=purposes))
    SqliteKeyStore(store).put(rid, [wrapped(rid, "0123456789abcdef", number)])
    store.write(
        RecordingStarted(
            recording_id=rid,
            call_id=call_id,
            file_name=f"{rid}.chrec",
            key_id=("0123456789abcdef",),
            started_at=T0 + dt.timedelta(seconds=7),
            first_frame_at=T0 + dt.timedelta(seconds=7),
            purposes=tuple(purpose.purpose_id for purpose in purposes),
        )
    )
    if ended:
        store.record_recording_finished(
            RecordingEnd(
                recording_id=rid,
                finished_at=T0 + dt.timedelta(seconds=60),
                audio_sha256="cd" * 32,
                size_bytes=1000,
                duration_ms=53_000,
                end_reason="ended",
            )
        ).result()
    return rid


def wrapped(rid: uuid.UUID, key_id: str, fill: int) -> WrappedKey:
    return WrappedKey(
        recording_id=rid,
        recipient_key_id=key_id,
        encapsulated_key=bytes([fill]) * 32,
        sealed_key=bytes([fill + 1]) * 48,
    )


def erase(store: EvidenceStore, rid: uuid.UUID, reason: str = "data subject request 17-3") -> bool:
    erasure = RecordingErasure(recording_id=rid, at=ERASED_AT, actor=ACTOR, reason=reason)
    return SqliteKeyStore(store).destroy(rid, along=lambda db: write_recording_erasure(db, erasure))


def command_entries(store: EvidenceStore) -> list[AuditEntry]:
    """The audit rows of erasures, holds and releases (not the manifests the recordings' ends wrote)."""
    entries = store.submit_read(lambda db: AuditLog(db).entries()).result()
    return [entry for entry in entries if entry.action != AUDIT_ACTION_MANIFEST]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EvidenceStore]:
    with EvidenceStore(tmp_path / "evidence.db") as evidence:
        yield evidence


def test_a_recording_for_every_purpose_of_its_call_carries_them_all(store: EvidenceStore) -> None:
    record_call(store, 1, SHORT, LONG)
    (record,) = store.recordings_list()
    assert record.purposes == (
        RecordedPurpose(purpose=SHORT, version=1, delete_after=dt.date(2026, 3, 31)),
        RecordedPurpose(purpose=LONG, version=1, delete_after=dt.date(2026, 5, 30)),
    )
    assert (record.erased_at, record.erased_by, record.erasure_reason) == (None, None, None)


def test_an_erased_recording_loses_its_keys_and_keeps_its_record(store: EvidenceStore) -> None:
    erased, kept = record_call(store, 1, SHORT), record_call(store, 2, SHORT)
    assert erase(store, erased) is True
    keys = SqliteKeyStore(store)
    assert keys.get(erased) == ()
    assert keys.get(kept) == (wrapped(kept, "0123456789abcdef", 2),)
    first, second = store.recordings_list()
    assert (first.state, first.erased_at, first.erased_by, first.erasure_reason) == (
        RecordingState.ERASED,
        ERASED_AT,
        ACTOR,
        "data subject request 17-3",
    )
    assert (first.audio_sha256, first.duration_ms) == ("cd" * 32, 53_000)  # what was kept stays on record
    assert second.state is RecordingState.COMPLETE
    assert [r.recording_id for r in store.recordings_list(state=RecordingState.ERASED)] == [erased]
    assert [r.recording_id for r in store.recordings_list(state=RecordingState.COMPLETE)] == [kept]
    # The timeline keeps how the recording ended, and says when it was erased, why and by whom.
    timeline = store.call_timeline("c1")
    (end,) = [event for event in timeline if event.kind is TimelineKind.RECORDING_END]
    assert end.detail["state"] == "complete"
    assert timeline[-1].kind is TimelineKind.LATER_EVENT
    assert timeline[-1].at == ERASED_AT
    assert timeline[-1].detail == {
        "kind": "erasure",
        "actor": ACTOR,
        "recording_id": str(erased),
        "reason": "data subject request 17-3",
    }
    entries = command_entries(store)
    assert [(e.actor, e.action, e.subject) for e in entries] == [(ACTOR, "erase", str(erased))]
    assert json.loads(entries[0].detail) == {
        "call_id": "c1",
        "reason": "data subject request 17-3",
        "file_name": f"{erased}.chrec",
        "state": "complete",
        "wrapped_keys": 1,
    }
    assert store.audit_verify().ok


def test_a_recording_is_erased_once(store: EvidenceStore) -> None:
    rid = record_call(store, 1, SHORT)
    erase(store, rid)
    with pytest.raises(InvariantError, match=f"recording {rid} was erased already, at 2026-06-01T08:00:00"):
        erase(store, rid, "again")
    (record,) = store.recordings_list()
    assert record.erasure_reason == "data subject request 17-3"
    assert len(command_entries(store)) == 1


def test_a_recording_still_being_recorded_is_not_erased_and_keeps_its_keys(store: EvidenceStore) -> None:
    rid = record_call(store, 1, SHORT, ended=False)
    with pytest.raises(InvariantError, match=f"recording {rid} is still being recorded"):
        erase(store, rid)
    # All or nothing: the keys its writer seals with are still there, nothing was recorded.
    assert SqliteKeyStore(store).get(rid) == (wrapped(rid, "0123456789abcdef", 1),)
    (record,) = store.recordings_list()
    assert (record.state, record.erased_at) == (RecordingState.RECORDING, None)
    assert command_entries(store) == []
    assert [e.kind for e in store.call_timeline("c1")][-1] is not TimelineKind.LATER_EVENT


def test_an_unknown_recording_is_not_found(store: EvidenceStore) -> None:
    with pytest.raises(NotFoundError, match="is not recorded"):
        erase(store, uuid.UUID(int=99))


def test_a_recording_is_past_retention_when_every_purpose_of_its_call_is(store: EvidenceStore) -> None:
    short_only = record_call(store, 1, SHORT)  # delete after 2026-03-31
    both = record_call(store, 2, SHORT, LONG)  # 2026-03-31 and 2026-05-30
    erased = record_call(store, 3, SHORT)
    erase(store, erased)

    def past(today: dt.date) -> list[uuid.UUID]:
        return [record.recording_id for record in store.recordings_past_retention(today)]

    assert past(dt.date(2026, 3, 31)) == []  # its delete-after day itself is still within retention
    assert past(dt.date(2026, 4, 1)) == [short_only]  # `both` is still kept for training
    assert past(dt.date(2026, 5, 30)) == [short_only]
    assert past(dt.date(2026, 5, 31)) == [short_only, both]


def record_withdrawal_split(store: EvidenceStore) -> tuple[uuid.UUID, uuid.UUID]:
    """Call ``c1`` recorded for evidence and training until the caller withdrew consent for
    training, then for evidence alone: two recordings of one call serving different purposes."""
    first = record_call(store, 1, SHORT, LONG)
    second = uuid.UUID(int=0x101)
    store.write(
        RecordingStarted(
            recording_id=second,
            call_id="c1",
            file_name=f"{second}.chrec",
            key_id=("0123456789abcdef",),
            started_at=T0 + dt.timedelta(seconds=60),
            first_frame_at=T0 + dt.timedelta(seconds=60),
            purposes=(SHORT.purpose_id,),
        )
    )
    return first, second


def test_each_recording_of_a_call_carries_the_purposes_it_serves(store: EvidenceStore) -> None:
    first, second = record_withdrawal_split(store)
    assert [(record.recording_id, record.purposes) for record in store.recordings_list()] == [
        (
            first,
            (
                RecordedPurpose(purpose=SHORT, version=1, delete_after=dt.date(2026, 3, 31)),
                RecordedPurpose(purpose=LONG, version=1, delete_after=dt.date(2026, 5, 30)),
            ),
        ),
        (second, (RecordedPurpose(purpose=SHORT, version=1, delete_after=dt.date(2026, 3, 31)),)),
    ]


def test_a_recording_is_past_retention_when_every_purpose_it_serves_is(store: EvidenceStore) -> None:
    # The recording after the withdrawal served evidence alone: it is not kept for training, which
    # its call (and the recording before it) had.
    first, second = record_withdrawal_split(store)

    def past(today: dt.date) -> list[uuid.UUID]:
        return [record.recording_id for record in store.recordings_past_retention(today)]

    assert past(dt.date(2026, 3, 31)) == []
    assert past(dt.date(2026, 4, 1)) == [second]
    assert past(dt.date(2026, 5, 31)) == [first, second]


# --------------------------------------------------------------------------------------------------
# Legal hold

HELD_AT = dt.datetime(2026, 4, 1, 10, 0, 0, tzinfo=dt.UTC)
RELEASED_AT = dt.datetime(2026, 5, 1, 10, 0, 0, tzinfo=dt.UTC)
LAWYER = "cli (user legal, uid 1002)"


def hold(store: EvidenceStore, rid: uuid.UUID, reason: str = "claim 2026-118") -> None:
    store.record_legal_hold(LegalHold(recording_id=rid, at=HELD_AT, actor=LAWYER, reason=reason)).result()


def release(store: EvidenceStore, rid: uuid.UUID, at: dt.datetime = RELEASED_AT) -> None:
    store.record_legal_hold_release(
        LegalHoldRelease(recording_id=rid, at=at, actor=ACTOR, reason="claim settled")
    ).result()


def audit_rows(store: EvidenceStore) -> list[tuple[str, str, str, dict[str, object]]]:
    entries = command_entries(store)
    return [(e.actor, e.action, e.subject, json.loads(e.detail)) for e in entries]


def test_a_held_recording_says_so_and_is_not_erased(store: EvidenceStore) -> None:
    held, other = record_call(store, 1, SHORT), record_call(store, 2, SHORT)
    hold(store, held)
    first, second = store.recordings_list()
    assert (first.held_at, first.held_by, first.hold_reason) == (HELD_AT, LAWYER, "claim 2026-118")
    assert (second.held_at, second.held_by, second.hold_reason) == (None, None, None)
    with pytest.raises(
        InvariantError,
        match=f"recording {held} is on legal hold since 2026-04-01T10:00:00.000000\\+00:00 by {re.escape(LAWYER)} "
        r"\(claim 2026-118\): release the hold to erase it",
    ):
        erase(store, held)
    # All or nothing: its keys stay, nothing says it was erased.
    assert SqliteKeyStore(store).get(held) == (wrapped(held, "0123456789abcdef", 1),)
    assert store.recordings_list()[0].state is RecordingState.COMPLETE
    assert erase(store, other) is True  # a hold is on one recording, not on every one
    # Expiry sees it, held, so that it can say why it keeps it.
    assert [(r.recording_id, r.held_at) for r in store.recordings_past_retention(dt.date(2026, 4, 1))] == [
        (held, HELD_AT)
    ]


def test_hold_and_release_are_later_events_and_audit_rows(store: EvidenceStore) -> None:
    rid = record_call(store, 1, SHORT)
    hold(store, rid)
    release(store, rid)
    (record,) = store.recordings_list()
    assert (record.held_at, record.held_by, record.hold_reason) == (None, None, None)
    later = [e for e in store.call_timeline("c1") if e.kind is TimelineKind.LATER_EVENT]
    assert [(e.at, e.detail) for e in later] == [
        (
            HELD_AT,
            {"kind": "legal_hold", "actor": LAWYER, "recording_id": str(rid), "reason": "claim 2026-118"},
        ),
        (
            RELEASED_AT,
            {
                "kind": "legal_hold_release",
                "actor": ACTOR,
                "recording_id": str(rid),
                "reason": "claim settled",
                "held_at": "2026-04-01T10:00:00.000000+00:00",
                "held_by": LAWYER,
                "hold_reason": "claim 2026-118",
            },
        ),
    ]
    released = {
        "call_id": "c1",
        "reason": "claim settled",
        "held_at": "2026-04-01T10:00:00.000000+00:00",
        "held_by": LAWYER,
        "hold_reason": "claim 2026-118",
    }
    assert audit_rows(store) == [
        (LAWYER, "legal_hold", str(rid), {"call_id": "c1", "reason": "claim 2026-118"}),
        (ACTOR, "legal_hold_release", str(rid), released),
    ]
    # The hold's row stays, with its release.
    rows = store.submit_read(lambda db: db.execute("SELECT * FROM legal_holds").fetchall()).result()
    assert rows == [
        (
            str(rid),
            "2026-04-01T10:00:00.000000+00:00",
            LAWYER,
            "claim 2026-118",
            "2026-05-01T10:00:00.000000+00:00",
            ACTOR,
            "claim settled",
        )
    ]
    assert erase(store, rid) is True  # released, it is erased as any other
    assert store.audit_verify().ok


def test_a_recording_is_held_once_and_released_once(store: EvidenceStore) -> None:
    rid = record_call(store, 1, SHORT)
    with pytest.raises(InvariantError, match=f"recording {rid} is not on legal hold"):
        release(store, rid)
    hold(store, rid)
    with pytest.raises(
        InvariantError, match=f"recording {rid} is on legal hold already, since 2026-04-01T10"
    ):
        hold(store, rid, "another claim")
    with pytest.raises(InvariantError, match="cannot be released before it began"):
        release(store, rid, at=HELD_AT - dt.timedelta(seconds=1))
    release(store, rid)
    hold(store, rid, "another claim")  # held again, by a new hold
    (record,) = store.recordings_list()
    assert record.hold_reason == "another claim"
    assert [action for _, action, _, _ in audit_rows(store)] == [
        "legal_hold",
        "legal_hold_release",
        "legal_hold",
    ]


def test_a_live_recording_may_be_held_an_erased_or_unknown_one_not(store: EvidenceStore) -> None:
    live, erased = record_call(store, 1, SHORT, ended=False), record_call(store, 2, SHORT)
    hold(store, live)  # litigation may be foreseen while the call goes on
    erase(store, erased)
    with pytest.raises(
        InvariantError, match=f"recording {erased} was erased at 2026-06-01T08:00:00.*nothing is left"
    ):
        hold(store, erased)
    with pytest.raises(NotFoundError, match="is not recorded"):
        hold(store, uuid.UUID(int=99))
    with pytest.raises(NotFoundError, match="is not recorded"):
        release(store, uuid.UUID(int=99))
    assert [action for _, action, _, _ in audit_rows(store)] == ["legal_hold", "erase"]


@pytest.mark.parametrize("reason", ["", "  "])
def test_a_hold_and_its_release_need_a_reason(reason: str) -> None:
    with pytest.raises(ValueError, match="needs a reason"):
        LegalHold(recording_id=uuid.UUID(int=1), at=HELD_AT, actor=ACTOR, reason=reason)
    with pytest.raises(ValueError, match="needs a reason"):
        LegalHoldRelease(recording_id=uuid.UUID(int=1), at=HELD_AT, actor=ACTOR, reason=reason)


def test_recordings_list_by_call(store: EvidenceStore) -> None:
    first, second = record_withdrawal_split(store)
    other = record_call(store, 2, SHORT)
    assert [r.recording_id for r in store.recordings_list(call_id="c1")] == [first, second]
    assert [r.recording_id for r in store.recordings_list(call_id="c2")] == [other]
    assert store.recordings_list(call_id="c9") == []


def test_erasure_refusal_foretells_the_erasure_s_refusal_in_its_words(store: EvidenceStore) -> None:
    held, live, erased, free = (
        record_call(store, 1, SHORT),
        record_call(store, 2, SHORT, ended=False),
        record_call(store, 3, SHORT),
        record_call(store, 4, SHORT),
    )
    hold(store, held)
    erase(store, erased)
    records = {record.recording_id: record for record in store.recordings_list()}
    assert erasure_refusal(records[free]) is None
    for rid in (held, live, erased):
        foretold = erasure_refusal(records[rid])
        assert foretold is not None
        with pytest.raises(InvariantError) as refused:
            erase(store, rid)
        assert str(refused.value) == foretold
