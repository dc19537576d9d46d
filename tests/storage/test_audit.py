"""The hash-chained audit log: exact hashes, append-only triggers, and every kind of tampering found."""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from storage.audit import AuditLog, AuditProblem, canonical_detail, canonical_row_bytes, row_hash
from storage.migrations import AUDIT_GENESIS_HASH, open_reader, open_writer
from storage.records import EvidenceStore

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
ROWS = 5


def make_log(path: Path) -> list[str]:
    """Five audit rows; returns their hashes."""
    db = open_writer(path)
    log = AuditLog(db)
    hashes = [
        log.append(
            at=T0 + dt.timedelta(minutes=i),
            actor=f"user-{i}",
            action="play",
            subject=f"recording-{i}",
            detail={"purpose": "evidence", "ip": "192.0.2.1", "n": i},
        ).hash
        for i in range(1, ROWS + 1)
    ]
    db.close()
    return hashes


def attacker(path: Path, *statements: str) -> None:
    """Someone with write access to the file: drops the triggers, then changes rows."""
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("DROP TRIGGER audit_log_no_delete")
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


def verify(path: Path, expected_head: str | None = None) -> tuple[bool, AuditProblem | None, int | None, str]:
    db = open_reader(path)
    try:
        report = AuditLog(db).verify(expected_head=expected_head)
    finally:
        db.close()
    return report.ok, report.problem, report.seq, report.message


def rehash_row(path: Path, seq: int) -> None:
    """Recompute a row's own hash after an edit, as an informed attacker would."""
    conn = sqlite3.connect(path)
    row = conn.execute(
        "SELECT seq, at, actor, action, subject, detail, prev_hash FROM audit_log WHERE seq = ?", [seq]
    ).fetchone()
    digest = row_hash(
        seq=row[0], at=row[1], actor=row[2], action=row[3], subject=row[4], detail=row[5], prev_hash=row[6]
    )
    conn.execute("UPDATE audit_log SET hash = ? WHERE seq = ?", [digest, seq])
    conn.commit()
    conn.close()


def forge_row(path: Path, seq: int, prev_hash: str) -> None:
    at, detail = "2026-03-01T12:02:30.000000+00:00", "{}"
    digest = row_hash(
        seq=seq,
        at=at,
        actor="intruder",
        action="play",
        subject="recording-x",
        detail=detail,
        prev_hash=prev_hash,
    )
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO audit_log VALUES (?, ?, 'intruder', 'play', 'recording-x', ?, ?, ?)",
        [seq, at, detail, prev_hash, digest],
    )
    conn.commit()
    conn.close()


# --------------------------------------------------------------------------------------------------
# Encoding and hashes


def test_canonical_encoding_is_exact() -> None:
    detail = canonical_detail({"b": 1, "a": "é", "c": [1, None]})
    assert detail == '{"a":"é","b":1,"c":[1,null]}'
    data = canonical_row_bytes(
        seq=7,
        at="2026-03-01T12:00:00.000000+00:00",
        actor="dpo",
        action="export",
        subject="r-1",
        detail=detail,
        prev_hash="0" * 64,
    )
    expected = (
        '[7,"2026-03-01T12:00:00.000000+00:00","dpo","export","r-1","{\\"a\\":\\"é\\",\\"b\\":1,\\"c\\":[1,null]}","'
        + "0" * 64
        + '"]'
    ).encode()
    assert data == expected
    assert (
        row_hash(
            seq=7,
            at="2026-03-01T12:00:00.000000+00:00",
            actor="dpo",
            action="export",
            subject="r-1",
            detail=detail,
            prev_hash="0" * 64,
        )
        == hashlib.sha256(expected).hexdigest()
    )


def test_intact_chain(tmp_path: Path) -> None:
    path = tmp_path / "evidence.db"
    hashes = make_log(path)
    db = open_reader(path)
    log = AuditLog(db)
    entries = log.entries()
    report = log.verify(expected_head=hashes[-1])
    db.close()
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == AUDIT_GENESIS_HASH
    assert [e.prev_hash for e in entries[1:]] == hashes[:-1]
    assert [e.hash for e in entries] == hashes
    assert entries[2].at == T0 + dt.timedelta(minutes=3)
    assert entries[2].detail == '{"ip":"192.0.2.1","n":3,"purpose":"evidence"}'
    assert (report.ok, report.rows_checked, report.head_seq, report.head_hash, report.problem) == (
        True,
        5,
        5,
        hashes[-1],
        None,
    )


def test_empty_log_verifies(tmp_path: Path) -> None:
    open_writer(tmp_path / "evidence.db").close()
    db = open_reader(tmp_path / "evidence.db")
    report = AuditLog(db).verify()
    db.close()
    assert (report.ok, report.rows_checked, report.head_seq, report.head_hash) == (
        True,
        0,
        0,
        AUDIT_GENESIS_HASH,
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"at": dt.datetime(2026, 3, 1, 12, 0)}, "naive datetime"),
        ({"detail": {"when": dt.date(2026, 3, 1)}}, "not JSON-serialisable"),
    ],
)
def test_append_refuses_bad_input(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    db = open_writer(tmp_path / "evidence.db")
    arguments: dict[str, object] = {"at": T0, "actor": "a", "action": "b", "subject": "c", "detail": {}}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        AuditLog(db).append(**arguments)  # type: ignore[arg-type]
    assert db.execute("SELECT count(*) FROM audit_log").fetchone()[0] == 0
    db.close()


# --------------------------------------------------------------------------------------------------
# Append-only triggers


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("UPDATE audit_log SET actor = 'someone else' WHERE seq = 2", "append-only: UPDATE is forbidden"),
        ("UPDATE audit_log SET seq = 9 WHERE seq = 5", "append-only: UPDATE is forbidden"),
        ("DELETE FROM audit_log WHERE seq = 5", "append-only: DELETE is forbidden"),
        ("DELETE FROM audit_log", "append-only: DELETE is forbidden"),
    ],
)
def test_triggers_forbid_update_and_delete(tmp_path: Path, statement: str, message: str) -> None:
    path = tmp_path / "evidence.db"
    hashes = make_log(path)
    conn = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError, match=message):
        conn.execute(statement)
    conn.rollback()
    conn.close()
    assert verify(path, hashes[-1]) == (True, None, None, "")


# --------------------------------------------------------------------------------------------------
# Tampering


Tamper = Callable[[Path, list[str]], None]


def edit_detail(path: Path, hashes: list[str]) -> None:
    attacker(path, """UPDATE audit_log SET detail = '{"purpose":"training"}' WHERE seq = 3""")


def edit_first_actor(path: Path, hashes: list[str]) -> None:
    attacker(path, "UPDATE audit_log SET actor = 'nobody' WHERE seq = 1")


def edit_and_rehash(path: Path, hashes: list[str]) -> None:
    attacker(path, "UPDATE audit_log SET subject = 'recording-99' WHERE seq = 3")
    rehash_row(path, 3)


def delete_middle(path: Path, hashes: list[str]) -> None:
    attacker(path, "DELETE FROM audit_log WHERE seq = 3")


def delete_two(path: Path, hashes: list[str]) -> None:
    attacker(path, "DELETE FROM audit_log WHERE seq IN (2, 3)")


def delete_first(path: Path, hashes: list[str]) -> None:
    attacker(path, "DELETE FROM audit_log WHERE seq = 1")


def delete_and_renumber(path: Path, hashes: list[str]) -> None:
    attacker(
        path,
        "DELETE FROM audit_log WHERE seq = 3",
        "UPDATE audit_log SET seq = 3 WHERE seq = 4",
        "UPDATE audit_log SET seq = 4 WHERE seq = 5",
    )


def swap_rows(path: Path, hashes: list[str]) -> None:
    attacker(
        path,
        "UPDATE audit_log SET seq = 100 WHERE seq = 3",
        "UPDATE audit_log SET seq = 3 WHERE seq = 4",
        "UPDATE audit_log SET seq = 4 WHERE seq = 100",
    )


def insert_middle(path: Path, hashes: list[str]) -> None:
    attacker(path, *(f"UPDATE audit_log SET seq = {s + 1} WHERE seq = {s}" for s in (5, 4, 3)))
    forge_row(path, 3, hashes[1])


def append_bad_hash(path: Path, hashes: list[str]) -> None:
    attacker(
        path,
        "INSERT INTO audit_log VALUES (6, '2026-03-01T13:00:00.000000+00:00', 'x', 'play', 's', '{}', "
        f"'{hashes[-1]}', '{'f' * 64}')",
    )


def cut_tail(path: Path, hashes: list[str]) -> None:
    attacker(path, "DELETE FROM audit_log WHERE seq = 5")


@pytest.mark.parametrize(
    ("tamper", "problem", "seq", "message"),
    [
        pytest.param(
            edit_detail, AuditProblem.EDITED, 3, "row 3: content does not match its hash", id="edited"
        ),
        pytest.param(
            edit_first_actor, AuditProblem.EDITED, 1, "row 1: content does not match", id="edited-first"
        ),
        pytest.param(edit_and_rehash, AuditProblem.EDITED, 3, "row 3 was rewritten", id="edited-rehashed"),
        pytest.param(delete_middle, AuditProblem.DELETED, 3, "row 3 missing", id="deleted"),
        pytest.param(delete_two, AuditProblem.DELETED, 2, "rows 2-3 missing", id="deleted-two"),
        pytest.param(delete_first, AuditProblem.DELETED, 1, "row 1 missing", id="deleted-first"),
        pytest.param(
            delete_and_renumber, AuditProblem.DELETED, 3, "the row before row 3 is gone", id="renumbered"
        ),
        pytest.param(
            swap_rows, AuditProblem.REORDERED, 3, "row 3 links to row 4, which comes after it", id="reordered"
        ),
        pytest.param(
            insert_middle, AuditProblem.INSERTED, 3, "rows 3-3 are not part of the chain", id="inserted"
        ),
        pytest.param(
            append_bad_hash, AuditProblem.EDITED, 6, "row 6: content does not match", id="appended-bad"
        ),
        pytest.param(cut_tail, AuditProblem.HEAD_MISMATCH, 4, "ends at row 4", id="tail-cut"),
    ],
)
def test_verify_reports_the_first_broken_row(
    tmp_path: Path, tamper: Tamper, problem: AuditProblem, seq: int, message: str
) -> None:
    path = tmp_path / "evidence.db"
    hashes = make_log(path)
    tamper(path, hashes)
    ok, found, at_seq, text = verify(path, expected_head=hashes[-1])
    assert (ok, found, at_seq) == (False, problem, seq)
    assert message in text


def test_a_head_noted_earlier_still_verifies_after_rows_are_appended(tmp_path: Path) -> None:
    path = tmp_path / "evidence.db"
    hashes = make_log(path)
    assert verify(path, expected_head=hashes[2])[0]  # row 3 noted, rows 4 and 5 appended since
    ok, found, at_seq, text = verify(path, expected_head="0" * 64)
    assert (ok, found, at_seq) == (False, AuditProblem.HEAD_MISMATCH, 5)
    assert "holds no row with the expected head's hash" in text


def test_tail_cut_is_invisible_without_the_head(tmp_path: Path) -> None:
    path = tmp_path / "evidence.db"
    hashes = make_log(path)
    cut_tail(path, hashes)
    assert verify(path) == (True, None, None, "")


# --------------------------------------------------------------------------------------------------
# Through the evidence store


def test_store_appends_on_the_writer_and_verifies_on_the_reader(tmp_path: Path) -> None:
    with EvidenceStore(tmp_path / "evidence.db") as store:
        first = store.audit_append(at=T0, actor="dpo", action="export", subject="+31611111111").result()
        second = store.audit_append(
            at=T0 + dt.timedelta(seconds=1),
            actor="dpo",
            action="erase",
            subject="+31611111111",
            detail={"req": 1},
        ).result()
        report = store.audit_verify(expected_head=second.hash)
    assert (first.seq, first.prev_hash, second.seq, second.prev_hash) == (
        1,
        AUDIT_GENESIS_HASH,
        2,
        first.hash,
    )
    assert (report.ok, report.rows_checked, report.head_hash) == (True, 2, second.hash)
