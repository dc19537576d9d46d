"""Signed manifests on a real SQLite file: signed as a recording ends, checked with the public key
alone; a chain rewritten after an edit, a key swapped in and a signature removed are all found."""

from __future__ import annotations

import json
import sqlite3
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from storage.audit import AuditLog, row_hash
from storage.crypto import StorageError
from storage.records import EvidenceStore
from storage.signing import (
    ManifestSigner,
    SignatureProblem,
    ensure_signing_key,
    load_signing_key,
    load_verify_key,
    public_key_path,
)
from storage.sqlite_keys import SqliteKeyStore
from tests.storage.test_manifests import EVIDENCE, RID, attacker, end, record_call, started, wrapped

REWRITTEN = "the signature does not fit the row (the manifest or the chain before it was rewritten)"


@pytest.fixture
def signer() -> ManifestSigner:
    return ManifestSigner(Ed25519PrivateKey.generate())


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "evidence.db"


@pytest.fixture
def store(path: Path, signer: ManifestSigner) -> Iterator[EvidenceStore]:
    with EvidenceStore(path, manifest_signer=signer) as evidence:
        yield evidence


def another_recording(store: EvidenceStore, number: int) -> uuid.UUID:
    """A second (third, ...) recording of call ``c1``, ended: one more manifest."""
    rid = uuid.UUID(int=number)
    SqliteKeyStore(store).put(rid, [wrapped(rid)])
    store.write(started(rid, 60 + number, EVIDENCE))
    store.record_recording_finished(end(rid, 70 + number)).result()
    return rid


def rewrite_chain_from(path: Path, seq: int, edit: dict[str, object]) -> None:
    """Someone with write access to the file changes the manifest in row ``seq`` and computes the
    hash of that row and every later one again: the chain is consistent once more."""
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER audit_log_no_update")
    rows = conn.execute(
        "SELECT seq, at, actor, action, subject, detail, prev_hash FROM audit_log WHERE seq >= ? ORDER BY seq",
        [seq],
    ).fetchall()
    prev_hash = conn.execute("SELECT hash FROM audit_log WHERE seq = ?", [seq - 1]).fetchone()
    previous = prev_hash[0] if prev_hash else rows[0][6]
    for number, at, actor, action, subject, stored, _ in rows:
        detail = stored
        if number == seq:
            detail = json.dumps({**json.loads(stored), **edit}, sort_keys=True, separators=(",", ":"))
        digest = row_hash(
            seq=number, at=at, actor=actor, action=action, subject=subject, detail=detail, prev_hash=previous
        )
        conn.execute(
            "UPDATE audit_log SET detail = ?, prev_hash = ?, hash = ? WHERE seq = ?",
            [detail, previous, digest, number],
        )
        previous = digest
    conn.commit()
    conn.close()


def manifest_seqs(store: EvidenceStore) -> list[int]:
    entries = store.submit_read(lambda db: AuditLog(db).entries()).result()
    return [entry.seq for entry in entries if entry.action == "manifest"]


def test_a_manifest_is_signed_as_its_recording_ends_and_checks_with_the_public_key_alone(
    store: EvidenceStore, signer: ManifestSigner, tmp_path: Path
) -> None:
    record_call(store)
    another_recording(store, 2)
    report = store.verify_manifest_signatures([signer.public_key])
    assert (report.signed, report.unsigned_before, report.key_ids, report.problems) == (
        2,
        0,
        (signer.key_id,),
        (),
    )
    assert report.ok


def test_a_chain_rewritten_after_an_edit_passes_the_chain_check_but_not_the_signatures(
    path: Path, store: EvidenceStore, signer: ManifestSigner
) -> None:
    # The hash chain alone cannot tell: every hash was computed again. The signature can.
    record_call(store)
    another_recording(store, 2)
    first, second = manifest_seqs(store)
    rewrite_chain_from(path, first, {"purposes": []})
    assert store.audit_verify().ok
    report = store.verify_manifest_signatures([signer.public_key])
    assert report.problems == (
        SignatureProblem(seq=first, recording_id=str(RID), problem=REWRITTEN),
        SignatureProblem(seq=second, recording_id=str(uuid.UUID(int=2)), problem=REWRITTEN),
    )
    assert report.signed == 0


def test_a_signature_by_a_key_not_trusted_is_named(store: EvidenceStore, signer: ManifestSigner) -> None:
    record_call(store)
    stranger = ManifestSigner(Ed25519PrivateKey.generate())
    report = store.verify_manifest_signatures([stranger.public_key])
    assert [problem.problem for problem in report.problems] == [
        f"signed by key {signer.key_id}, which is not trusted"
    ]
    both = store.verify_manifest_signatures([stranger.public_key, signer.public_key])  # a key rotated
    assert both.ok


def test_manifests_from_before_signing_are_counted_and_a_removed_signature_is_found(
    path: Path, signer: ManifestSigner
) -> None:
    with EvidenceStore(path) as unsigned:  # a callherald that did not sign yet
        record_call(unsigned)
    with EvidenceStore(path, manifest_signer=signer) as store:
        another_recording(store, 2)
        removed = another_recording(store, 3)
        assert store.verify_manifest_signatures([signer.public_key]).unsigned_before == 1
        third = manifest_seqs(store)[-1]
        attacker(
            path,
            "DROP TRIGGER manifest_signatures_no_delete",
            f"DELETE FROM manifest_signatures WHERE seq = {third}",
        )
        report = store.verify_manifest_signatures([signer.public_key])
    assert (report.signed, report.unsigned_before) == (1, 1)
    assert report.problems == (
        SignatureProblem(seq=third, recording_id=str(removed), problem="no signature"),
    )


def test_a_signature_for_a_row_that_holds_no_manifest_is_named(
    path: Path, store: EvidenceStore, signer: ManifestSigner
) -> None:
    record_call(store)
    attacker(path, "INSERT INTO manifest_signatures VALUES (99, 'x', 'eA==')")  # no such row
    report = store.verify_manifest_signatures([signer.public_key])
    assert report.problems == (
        SignatureProblem(seq=99, recording_id="", problem="a signature for no manifest row"),
    )


def test_signatures_cannot_be_changed_or_deleted_through_sql(path: Path, store: EvidenceStore) -> None:
    record_call(store)
    conn = sqlite3.connect(path)
    try:
        for statement in ("UPDATE manifest_signatures SET key_id = 'x'", "DELETE FROM manifest_signatures"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(statement)
    finally:
        conn.close()
    assert store.verify_manifest_signatures([]).problems  # still there, by a key not trusted


def test_a_signing_key_is_made_once_private_to_its_owner_with_its_public_key_beside_it(
    tmp_path: Path,
) -> None:
    key_path = tmp_path / "manifest-signing.key"
    made, was_made = ensure_signing_key(key_path)
    again, made_again = ensure_signing_key(key_path)
    assert (was_made, made_again) == (True, False)
    assert again.key_id == made.key_id == load_signing_key(key_path).key_id
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    public = load_verify_key(public_key_path(key_path))
    assert public.public_bytes_raw() == made.public_key.public_bytes_raw()
    assert load_verify_key(key_path).public_bytes_raw() == made.public_key.public_bytes_raw()  # from the key


def test_a_file_that_is_no_signing_key_is_refused_with_its_name(tmp_path: Path) -> None:
    not_a_key = tmp_path / "notes.txt"
    not_a_key.write_text("hello\n")
    with pytest.raises(StorageError, match=r"notes\.txt: not an unencrypted PEM private key"):
        load_signing_key(not_a_key)
    with pytest.raises(StorageError, match=r"notes\.txt: not a PEM Ed25519 public key"):
        load_verify_key(not_a_key)
    with pytest.raises(StorageError, match="cannot read the manifest signing key"):
        load_signing_key(tmp_path / "missing.key")
