"""SqliteKeyStore: the KeyStore contract on the key_store table, recordings through it, shredding on disk."""

from __future__ import annotations

import dataclasses
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.crypto import KeyNotFoundError, KeyStoreError, WrappedKey
from storage.keys import KeyStore
from storage.records import EvidenceStore, RecordingErasure, write_recording_erasure
from storage.segments import SegmentReader
from storage.sqlite_keys import WRAPPED_KEY_BYTES, KeptRecording, SqliteKeyStore, kept_recordings
from tests.storage.recordings import ESCROW, REVIEWER, REVIEWER_KEY_ID, write_recording
from tests.storage.test_manifests import CALL, DPO, EVIDENCE, KEY_ID, RID, at, end, record_call, started

RID_A = uuid.UUID("00000000-0000-4000-8000-00000000000a")
RID_B = uuid.UUID("00000000-0000-4000-8000-00000000000b")


def entry(recording_id: uuid.UUID, key_id: str, fill: int) -> WrappedKey:
    return WrappedKey(
        recording_id=recording_id,
        recipient_key_id=key_id,
        encapsulated_key=bytes([fill]) * 32,
        sealed_key=bytes([fill + 1]) * 48,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EvidenceStore]:
    with EvidenceStore(tmp_path / "evidence.db") as evidence:
        yield evidence


def test_it_is_a_key_store(store: EvidenceStore) -> None:
    keys: KeyStore = SqliteKeyStore(store)
    assert WRAPPED_KEY_BYTES == 80
    assert keys.get(RID_A) == ()


def test_put_get_destroy_contract(store: EvidenceStore) -> None:
    keys = SqliteKeyStore(store)
    entries = (entry(RID_A, "0123456789abcdef", 1), entry(RID_A, "fedcba9876543210", 7))
    keys.put(RID_A, entries)
    keys.put(RID_B, (entry(RID_B, "0123456789abcdef", 3),))
    assert keys.get(RID_A) == entries
    with pytest.raises(KeyStoreError, match=f"wrapped keys for recording {RID_A} are already stored"):
        keys.put(RID_A, (entry(RID_A, "1111111111111111", 9),))
    assert keys.get(RID_A) == entries  # never replaced
    assert keys.destroy(RID_A) is True
    assert keys.get(RID_A) == ()
    assert keys.destroy(RID_A) is False
    assert keys.get(RID_B) == (entry(RID_B, "0123456789abcdef", 3),)


def test_put_is_all_or_nothing(store: EvidenceStore) -> None:
    keys = SqliteKeyStore(store)
    duplicate = (entry(RID_A, "0123456789abcdef", 1), entry(RID_A, "0123456789abcdef", 2))
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        keys.put(RID_A, duplicate)
    assert keys.get(RID_A) == ()


def test_put_refuses_entries_of_another_recording(store: EvidenceStore) -> None:
    keys = SqliteKeyStore(store)
    with pytest.raises(
        KeyStoreError, match=f"an entry of recording {RID_B} was offered for recording {RID_A}"
    ):
        keys.put(RID_A, (entry(RID_B, "0123456789abcdef", 1),))
    assert keys.get(RID_A) == ()


def test_malformed_row_is_a_key_store_error(store: EvidenceStore) -> None:
    keys = SqliteKeyStore(store)
    store.submit_write(
        lambda db: db.execute(
            "INSERT INTO key_store VALUES (?, '0123456789abcdef', ?)", [str(RID_A), b"short"]
        )
    ).result()
    with pytest.raises(KeyStoreError, match="malformed wrapped key"):
        keys.get(RID_A)


def test_recording_round_trip_and_crypto_shredding(tmp_path: Path, store: EvidenceStore) -> None:
    keys = SqliteKeyStore(store)
    written = write_recording(tmp_path / "a.chr", keys, segments=3)
    stored = keys.get(written.recording_id)
    assert sorted(e.recipient_key_id for e in stored) == sorted(
        [REVIEWER_KEY_ID, written.summary.recipient_key_ids[1]]
    )
    for private_key in (REVIEWER, ESCROW):
        assert (
            SegmentReader(written.path, private_key=private_key, key_store=keys).read_all() == written.audio
        )

    assert keys.destroy(written.recording_id) is True
    for private_key in (REVIEWER, ESCROW):
        with pytest.raises(KeyNotFoundError, match="it was erased or never stored"):
            SegmentReader(written.path, private_key=private_key, key_store=keys)


def _file_bytes(path: Path) -> bytes:
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


@pytest.mark.parametrize("checkpoint_before_destroy", [False, True], ids=["in-wal", "in-db-file"])
def test_destroyed_key_bytes_are_gone_from_the_files(
    tmp_path: Path, store: EvidenceStore, checkpoint_before_destroy: bool
) -> None:
    keys = SqliteKeyStore(store)
    victim = write_recording(tmp_path / "a.chr", keys, segments=1)
    keeper = write_recording(tmp_path / "b.chr", keys, segments=1)
    if checkpoint_before_destroy:
        store.submit_write(
            lambda db: db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall(), transaction=False
        ).result()
    secrets = [e.encapsulated_key + e.sealed_key for e in keys.get(victim.recording_id)]
    kept = [e.encapsulated_key + e.sealed_key for e in keys.get(keeper.recording_id)]
    assert len(secrets) == 2
    before = _file_bytes(store.path)
    assert all(secret in before for secret in secrets)  # the check below can fail

    assert keys.destroy(victim.recording_id) is True
    wal = store.path.with_name(store.path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0  # checkpointed and truncated
    after = _file_bytes(store.path)
    for secret in secrets:
        assert secret not in after
        assert secret[:32] not in after
        assert secret[32:] not in after
    assert all(k in after for k in kept)
    assert SegmentReader(keeper.path, private_key=REVIEWER, key_store=keys).read_all() == keeper.audio


def test_kept_recordings_are_those_whose_keys_and_file_must_still_exist(store: EvidenceStore) -> None:
    record_call(store, ended=False)  # recording RID of call c1, its key stored, still being recorded
    assert store.submit_read(kept_recordings).result() == []
    store.record_recording_finished(end(RID, 60)).result()
    kept = KeptRecording(recording_id=str(RID), call_id=CALL, file_name=f"{RID}.chrec", missing_key_ids=())
    assert store.submit_read(kept_recordings).result() == [kept]
    # A second recording whose file could not be made: the record says it holds nothing, and its
    # keys were removed again as the file failed.
    no_file = uuid.UUID(int=2)
    store.write(started(no_file, 61, EVIDENCE))
    store.record_recording_truncated(dataclasses.replace(end(no_file, 61), size_bytes=0)).result()
    assert store.submit_read(kept_recordings).result() == [kept]
    # Its rows deleted or spoilt outside callherald: what the record names is missing.
    conn = sqlite3.connect(store.path)
    with conn:
        conn.execute("UPDATE key_store SET wrapped_key = x'00' WHERE recording_id = ?", [str(RID)])
    conn.close()
    assert store.submit_read(kept_recordings).result() == [
        dataclasses.replace(kept, missing_key_ids=(KEY_ID,))
    ]
    erasure = RecordingErasure(recording_id=RID, at=at(7400), actor=DPO, reason="data subject request")
    assert SqliteKeyStore(store).destroy(RID, along=lambda db: write_recording_erasure(db, erasure))
    assert store.submit_read(kept_recordings).result() == []  # erased: nothing is to be kept
