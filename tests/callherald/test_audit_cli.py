"""``callherald audit verify``: the audit chain of a real evidence database, checked from the command line."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from callherald.app import manifest_signer, open_storage
from callherald.cli import main
from callherald.layout import DataLayout
from config import HOME_ENV, default_config
from storage.audit import AuditLog
from storage.migrations import AUDIT_GENESIS_HASH
from storage.records import EvidenceStore
from storage.signing import ensure_signing_key, load_signing_key, load_verify_key, public_key_path
from tests.storage.test_manifests import CALL, RID, record_call, stored, withdrawal

T0 = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DataLayout:
    data = DataLayout(tmp_path / "data")
    data.root.mkdir()
    monkeypatch.setenv(HOME_ENV, str(data.root))  # the embedded default's data directory
    return data


def audit_rows(layout: DataLayout, count: int) -> list[str]:
    """Append ``count`` export rows as the export command does; their hashes."""
    store = EvidenceStore(layout.evidence_db)
    try:
        return [
            store.audit_append(
                at=T0 + dt.timedelta(minutes=k),
                actor="cli (user dpo, uid 1000)",
                action="export",
                subject=f"r{k}",
            )
            .result()
            .hash
            for k in range(count)
        ]
    finally:
        store.close()


def edit_first_row(layout: DataLayout) -> None:
    """What someone with write access to the file can do: drop the guard, change a row."""
    with sqlite3.connect(layout.evidence_db) as conn:
        conn.execute("DROP TRIGGER audit_log_no_update")
        conn.execute("UPDATE audit_log SET subject = 'someone else' WHERE seq = 1")
    conn.close()


def record_call_with_file(store: EvidenceStore, layout: DataLayout, *, ended: bool = True) -> None:
    """Call ``c1`` (``record_call``) and a file where its recording's row says it is: the check reads
    only that a kept recording's file is there."""
    record_call(store, ended=ended)
    layout.recordings_dir.mkdir(exist_ok=True)
    layout.recording_file(str(RID)).write_bytes(b"sealed audio")


def serving_store(layout: DataLayout) -> EvidenceStore:
    """The evidence store as `serve` opens it: manifests signed with the data directory's key."""
    signer, _ = ensure_signing_key(layout.manifest_signing_key)
    return EvidenceStore(layout.evidence_db, manifest_signer=signer)


def signing_key_id_of(layout: DataLayout) -> str:
    """How `audit verify` names the key it trusts by default: id and the public key file."""
    public = public_key_path(layout.manifest_signing_key)
    return f"{load_signing_key(layout.manifest_signing_key).key_id} ({public})"


def verify(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["audit", "verify", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_an_intact_chain_prints_its_head_to_keep_elsewhere(
    layout: DataLayout, capsys: pytest.CaptureFixture[str]
) -> None:
    hashes = audit_rows(layout, 3)
    code, out, _ = verify(capsys)
    assert code == 0
    assert out.splitlines() == [
        f"audit log: intact, 3 rows; head: row 3 {hashes[-1]}",
        "manifests: none yet",
        "manifest signatures: none yet",
        "files and keys: no recordings kept",
    ]


def test_one_row_is_one_row(layout: DataLayout, capsys: pytest.CaptureFixture[str]) -> None:
    (only,) = audit_rows(layout, 1)
    assert verify(capsys)[1].splitlines()[0] == f"audit log: intact, 1 row; head: row 1 {only}"


def test_a_head_noted_earlier_verifies_after_more_rows_and_a_foreign_one_does_not(
    layout: DataLayout, capsys: pytest.CaptureFixture[str]
) -> None:
    hashes = audit_rows(layout, 3)
    assert verify(capsys, "--expected-head", hashes[0].upper())[0] == 0
    code, out, _ = verify(capsys, "--expected-head", "ab" * 32)
    assert code == 1
    assert out.startswith("audit log: BROKEN at row 3 (head_mismatch)")


def test_an_edited_row_is_reported_with_where_the_chain_breaks(
    layout: DataLayout, capsys: pytest.CaptureFixture[str]
) -> None:
    audit_rows(layout, 3)
    edit_first_row(layout)
    code, out, _ = verify(capsys)
    assert code == 1
    assert out.splitlines() == [
        "audit log: BROKEN at row 1 (edited): row 1: content does not match its hash (edited); intact up to row 0",
        "manifests: none yet",
        "manifest signatures: none yet",
        "files and keys: no recordings kept",
    ]
    code, out, _ = verify(capsys, "--json")
    assert code == 1
    assert json.loads(out) == {
        "ok": False,
        "rows_checked": 0,
        "head_seq": 0,
        "head_hash": AUDIT_GENESIS_HASH,  # nothing before row 1
        "problem": "edited",
        "seq": 1,
        "message": "row 1: content does not match its hash (edited)",
        "manifests": {"ok": True, "checked": 0, "without_manifest": 0, "mismatches": []},
        "signatures": {
            "ok": True,
            "signed": 0,
            "unsigned_before": 0,
            "key_ids": [],
            "trusted": [],
            "problems": [],
        },
        "files": {"ok": True, "checked": 0, "mismatches": []},
        "files_and_keys": {"ok": True, "checked": 0, "incomplete": []},
    }


def test_no_evidence_database_is_not_an_intact_log(
    layout: DataLayout, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = verify(capsys)
    assert code == 1
    assert out == ""
    assert f"no evidence database at {layout.evidence_db}" in err
    assert not layout.evidence_db.exists()  # not created by looking


def test_an_expected_head_that_is_not_a_hash_is_a_usage_error(
    layout: DataLayout, capsys: pytest.CaptureFixture[str]
) -> None:
    audit_rows(layout, 1)
    with pytest.raises(SystemExit) as exited:
        verify(capsys, "--expected-head", "row-3")
    assert exited.value.code == 2
    assert "not a SHA-256 hash" in capsys.readouterr().err


def test_serve_says_at_start_that_the_audit_log_is_broken(
    layout: DataLayout, caplog: pytest.LogCaptureFixture
) -> None:
    audit_rows(layout, 2)
    config = default_config(layout.root)
    open_storage(config).close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    edit_first_row(layout)
    open_storage(config).close()
    (error,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert error.startswith("audit log: BROKEN at row 1 (edited)")
    assert error.endswith("(callherald audit verify)")


def cli_verify(layout: DataLayout, *argv: str) -> subprocess.CompletedProcess[str]:
    """``callherald audit verify`` in a process of its own, on the embedded default's data directory."""
    return subprocess.run(
        [sys.executable, "-m", "callherald.cli", "audit", "verify", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, HOME_ENV: str(layout.root)},
        timeout=60,
        check=False,
    )


def test_a_consent_decision_edited_after_the_recording_is_reported_with_its_recording(
    layout: DataLayout,
) -> None:
    with serving_store(layout) as store:
        record_call_with_file(store, layout)
        (manifest_row,) = store.submit_read(lambda db: AuditLog(db).entries()).result()
    intact = cli_verify(layout)
    assert (intact.returncode, intact.stderr) == (0, "")
    assert intact.stdout.splitlines() == [
        f"audit log: intact, 1 row; head: row 1 {manifest_row.hash}",
        "manifests: 1 checked, the evidence matches each",
        "manifest signatures: 1 checked, each holds",
        f"  trusted keys: {signing_key_id_of(layout)}",
        "files and keys: 1 recording kept, each has its file and its wrapped keys",
    ]
    # Someone with write access to the file turns the caller's yes into a no: the chain is intact,
    # the recording's manifest is not.
    with sqlite3.connect(layout.evidence_db) as conn:
        conn.execute("UPDATE consent_decisions SET decision = 'refused'")
    conn.close()
    edited = cli_verify(layout)
    assert edited.returncode == 1
    assert edited.stdout.splitlines() == [
        f"audit log: intact, 1 row; head: row 1 {manifest_row.hash}",
        "manifests: 1 checked, 1 no longer matches the evidence",
        f"  recording {RID} of call {CALL}: consent decisions changed since audit row 1",
        "manifest signatures: 1 checked, each holds",
        f"  trusted keys: {signing_key_id_of(layout)}",
        "files and keys: 1 recording kept, each has its file and its wrapped keys",
    ]
    as_json = cli_verify(layout, "--json", "--expected-head", manifest_row.hash)
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert (report["ok"], report["problem"], report["head_hash"]) == (False, None, manifest_row.hash)
    assert report["manifests"] == {
        "ok": False,
        "checked": 1,
        "without_manifest": 0,
        "mismatches": [
            {"recording_id": str(RID), "call_id": CALL, "audit_seq": 1, "parts": ["consent decisions"]}
        ],
    }


def test_recordings_that_ended_before_manifests_were_kept_are_counted_not_failed(
    layout: DataLayout, capsys: pytest.CaptureFixture[str]
) -> None:
    with serving_store(layout) as store:
        record_call_with_file(store, layout, ended=False)
    with sqlite3.connect(layout.evidence_db) as conn:  # ended as before manifests: no audit row
        conn.execute(
            f"UPDATE recordings SET state = 'complete', finished_at = '{stored(60)}', size_bytes = 4000"
        )
    conn.close()
    code, out, _ = verify(capsys)
    assert code == 0
    assert out.splitlines() == [
        "audit log: intact, empty",
        "manifests: none yet; 1 recording ended without one (stored before manifests were kept)",
        "manifest signatures: none yet",
        "files and keys: 1 recording kept, each has its file and its wrapped keys",
    ]


def withdrawn_and_edited(layout: DataLayout, statement: str) -> str:
    """Call ``c1`` recorded and consent withdrawn at 30 s (audit row 2); then someone with write
    access to the file runs ``statement``. The head of the chain."""
    with serving_store(layout) as store:
        record_call_with_file(store, layout)
        store.write(withdrawal(30))
        head = store.audit_verify().head_hash
    assert cli_verify(layout).returncode == 0
    with sqlite3.connect(layout.evidence_db) as conn:
        conn.execute(statement)
    conn.close()
    return head


@pytest.mark.parametrize(
    ("statement", "found"),
    [
        pytest.param(
            "DELETE FROM later_events WHERE kind = 'withdrawal'",
            "changed since audit row 2",
            id="deleted",
        ),
        pytest.param(f"UPDATE later_events SET at = '{stored(90)}'", "changed since audit row 2", id="time"),
        pytest.param(
            "INSERT INTO later_events SELECT call_id, kind, ?, actor, detail FROM later_events",
            "not in the audit log",
            id="forged",
        ),
    ],
)
def test_a_withdrawal_edited_by_hand_is_reported_with_its_call(
    layout: DataLayout, statement: str, found: str
) -> None:
    head = withdrawn_and_edited(layout, statement.replace("?", f"'{stored(45)}'"))
    edited = cli_verify(layout)
    assert edited.returncode == 1
    assert edited.stdout.splitlines() == [
        f"audit log: intact, 2 rows; head: row 2 {head}",
        "manifests: 1 checked, 1 no longer matches the evidence",
        f"  call {CALL}: withdrawal {found}",
        "manifest signatures: 1 checked, each holds",
        f"  trusted keys: {signing_key_id_of(layout)}",
        "files and keys: 1 recording kept, each has its file and its wrapped keys",
    ]
    as_json = cli_verify(layout, "--json")
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert (report["ok"], report["problem"]) == (False, None)
    assert report["manifests"]["mismatches"] == [
        {
            "recording_id": None,
            "call_id": CALL,
            "audit_seq": 0 if found.startswith("not") else 2,
            "parts": ["withdrawal"],
        }
    ]


def test_serve_says_at_start_which_evidence_no_longer_matches_its_audit_rows(
    layout: DataLayout, caplog: pytest.LogCaptureFixture
) -> None:
    config = default_config(layout.root)
    with serving_store(layout) as store:
        record_call_with_file(store, layout)
        store.write(withdrawal(30))
    caplog.set_level(logging.INFO, logger="callherald")
    open_storage(config).close()  # closing waits for the checks queued on the reader thread
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "manifests: 1 checked, the evidence matches each" in caplog.messages
    assert "files and keys: 1 recording kept, each has its file and its wrapped keys" in caplog.messages
    assert not [message for message in caplog.messages if message.startswith("recovered files")]
    caplog.clear()
    with sqlite3.connect(layout.evidence_db) as conn:
        conn.execute("UPDATE consent_decisions SET decision = 'refused'")
        conn.execute("DELETE FROM later_events WHERE kind = 'withdrawal'")
    conn.close()
    open_storage(config).close()
    (error,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert error.getMessage() == (
        "manifests: 1 checked, 2 no longer match the evidence; "
        f"recording {RID} of call {CALL}: consent decisions changed since audit row 1; "
        f"call {CALL}: withdrawal changed since audit row 2 (callherald audit verify)"
    )
    # Checked on the evidence reader's thread, not in the way of start-up; the chain is intact.
    assert str(error.threadName).startswith("evidence-reader")


def test_signed_manifests_are_checked_with_the_key_beside_the_signing_key_or_a_trusted_copy(
    layout: DataLayout, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    signer, _ = ensure_signing_key(layout.manifest_signing_key)  # as `serve` makes it
    with EvidenceStore(layout.evidence_db, manifest_signer=signer) as store:
        record_call_with_file(store, layout)
    code, out, _ = verify(capsys)
    assert code == 0
    assert out.splitlines()[2:4] == [
        "manifest signatures: 1 checked, each holds",
        f"  trusted keys: {signer.key_id} ({public_key_path(layout.manifest_signing_key)})",
    ]
    # A copy of the public key kept elsewhere holds too; another key does not.
    copy = tmp_path / "kept-elsewhere.pub"
    copy.write_bytes(public_key_path(layout.manifest_signing_key).read_bytes())
    assert verify(capsys, "--trust", str(copy))[0] == 0
    other, _ = ensure_signing_key(tmp_path / "other" / "signing.key")
    code, out, _ = verify(capsys, "--trust", str(tmp_path / "other" / "signing.pub"))
    assert code == 1
    lines = out.splitlines()
    assert lines[2] == "manifest signatures: 1 do not hold, 0 do"
    assert lines[4].endswith(f"recording {RID}: signed by key {signer.key_id}, which is not trusted")
    assert lines[4].startswith("  audit row ")
    report = json.loads(verify(capsys, "--json", "--trust", str(tmp_path / "other" / "signing.pub"))[1])
    assert report["signatures"]["trusted"] == [
        {"key_id": other.key_id, "file": str(tmp_path / "other" / "signing.pub")}
    ]
    assert [problem["recording_id"] for problem in report["signatures"]["problems"]] == [str(RID)]


def test_a_trusted_key_file_that_holds_no_key_is_a_usage_error(
    layout: DataLayout, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    audit_rows(layout, 1)
    not_a_key = tmp_path / "notes.txt"
    not_a_key.write_text("hello\n")
    code, out, err = verify(capsys, "--trust", str(not_a_key))
    assert (code, out) == (2, "")
    assert f"{not_a_key}: not a PEM Ed25519 public key" in err


def test_serve_makes_the_signing_key_once_and_signs_with_it(layout: DataLayout) -> None:
    config = default_config(layout.root)
    made = manifest_signer(config)
    again = manifest_signer(config)
    assert made is not None
    assert again is not None
    assert made.key_id == again.key_id
    assert load_verify_key(public_key_path(layout.manifest_signing_key)).public_bytes_raw() == (
        made.public_key.public_bytes_raw()
    )
