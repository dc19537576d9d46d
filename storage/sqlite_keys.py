"""``SqliteKeyStore``: the ``KeyStore`` of wrapped data keys in the evidence database (table ``key_store``).

One row per (recording, recipient): ``wrapped_key`` is the HPKE encapsulated key (32 bytes) followed
by the sealed data key (48 bytes). Writes go through the ``EvidenceStore`` writer thread; ``get``
reads through its read-only connection, after ``put`` has committed.

``destroy`` deletes the rows (crypto-shredding) with ``secure_delete=ON``, so SQLite overwrites the
deleted bytes with zeros, then runs ``wal_checkpoint(TRUNCATE)`` so the write-ahead log that held
the inserted row is emptied. What records the erasure (``storage.records.write_recording_erasure``)
is passed as ``destroy``'s ``along`` and runs in the delete's transaction. As with any file,
overwriting cannot reach copies made before (backups, snapshots, SSD remapping): keep this
database out of the backups that hold the audio, or accept that those backups keep the keys.

Rows deleted or spoilt by plain SQL erase a recording as well, but record nothing:
``kept_recordings`` lists, for every recording the record says is kept, the key ids its row names
that have no well-formed wrapped key here (``callherald audit verify`` reports them).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlite_utils import Database

from storage.crypto import DATA_KEY_BYTES, TAG_BYTES, X25519_KEY_BYTES, KeyStoreError, WrappedKey
from storage.records import EvidenceStore, RecordingState

__all__ = [
    "WRAPPED_KEY_BYTES",
    "KeptRecording",
    "PinnedFile",
    "SqliteKeyStore",
    "kept_recordings",
    "pinned_files",
]

WRAPPED_KEY_BYTES = X25519_KEY_BYTES + DATA_KEY_BYTES + TAG_BYTES


def _put(db: Database, recording_id: uuid.UUID, entries: Sequence[WrappedKey]) -> None:
    (existing,) = db.execute(
        "SELECT count(*) FROM key_store WHERE recording_id = ?", [str(recording_id)]
    ).fetchone()
    if existing:
        raise KeyStoreError(f"wrapped keys for recording {recording_id} are already stored")
    for entry in entries:
        db.execute(
            "INSERT INTO key_store (recording_id, recipient_key_id, wrapped_key) VALUES (?, ?, ?)",
            [str(recording_id), entry.recipient_key_id, entry.encapsulated_key + entry.sealed_key],
        )


def _get(db: Database, recording_id: uuid.UUID) -> tuple[WrappedKey, ...]:
    rows = db.execute(
        "SELECT recipient_key_id, wrapped_key FROM key_store WHERE recording_id = ? ORDER BY rowid",
        [str(recording_id)],
    ).fetchall()
    entries = []
    for recipient, blob in rows:
        if not isinstance(blob, bytes) or len(blob) != WRAPPED_KEY_BYTES:
            raise KeyStoreError(f"malformed wrapped key of recording {recording_id} for key {recipient}")
        try:
            entries.append(
                WrappedKey(
                    recording_id=recording_id,
                    recipient_key_id=str(recipient),
                    encapsulated_key=blob[:X25519_KEY_BYTES],
                    sealed_key=blob[X25519_KEY_BYTES:],
                )
            )
        except ValueError as exc:
            raise KeyStoreError(f"malformed wrapped key of recording {recording_id}: {exc}") from exc
    return tuple(entries)


def _delete(db: Database, recording_id: uuid.UUID) -> bool:
    cursor = db.execute("DELETE FROM key_store WHERE recording_id = ?", [str(recording_id)])
    return cursor.rowcount > 0


def _checkpoint(db: Database) -> None:
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


class SqliteKeyStore:
    """A ``KeyStore`` on the ``key_store`` table of an ``EvidenceStore``'s database.

    Contract as ``storage.keys.KeyStore``: ``put`` once per recording (``KeyStoreError`` on a
    second one; all entries or none), ``get`` the entries or ``()``, ``destroy`` for good.
    """

    def __init__(self, store: EvidenceStore) -> None:
        self.store = store

    def put(self, recording_id: uuid.UUID, entries: Sequence[WrappedKey]) -> None:
        for entry in entries:
            if entry.recording_id != recording_id:
                raise KeyStoreError(
                    f"an entry of recording {entry.recording_id} was offered for recording {recording_id}"
                )
        items = tuple(entries)
        self.store.submit_write(lambda db: _put(db, recording_id, items)).result()

    def get(self, recording_id: uuid.UUID) -> tuple[WrappedKey, ...]:
        return self.store.submit_read(lambda db: _get(db, recording_id)).result()

    def destroy(self, recording_id: uuid.UUID, *, along: Callable[[Database], object] | None = None) -> bool:
        """Delete the recording's wrapped keys for good; True if there were any.

        ``along(db)``, if given, runs first in the same transaction (its exception undoes it all),
        so that an erasure is recorded exactly when its keys are gone."""

        def delete(db: Database) -> bool:
            if along is not None:
                along(db)
            return _delete(db, recording_id)

        removed = self.store.submit_write(delete).result()
        self.store.submit_write(_checkpoint, transaction=False).result()
        return removed


@dataclass(frozen=True, slots=True, kw_only=True)
class KeptRecording:
    """A recording the evidence record says is kept: ended with a file of some bytes, not erased."""

    recording_id: str
    call_id: str
    file_name: str
    missing_key_ids: tuple[str, ...]
    """The key ids its row names for which no well-formed wrapped key is stored, in its row's order."""


def kept_recordings(db: Database) -> list[KeptRecording]:
    """Every recording whose keys and file must still exist, by start: not erased, ended (one still
    being recorded has its row before its keys and file), with a file the record says holds bytes
    (one whose file could not be made, or was never written, has none), and which of the key ids
    its row names have no wrapped key of ``WRAPPED_KEY_BYTES`` in ``key_store``."""
    kept = []
    # One statement, so one snapshot: a recording and its keys as they stood together.
    for rid, call_id, file_name, key_ids, stored in db.execute(
        "SELECT r.id, r.call_id, r.file_name, r.key_id, (SELECT group_concat(k.recipient_key_id, ',')"
        " FROM key_store k WHERE k.recording_id = r.id AND length(k.wrapped_key) = ?) FROM recordings r"
        " WHERE r.erased_at IS NULL AND r.state != ? AND r.size_bytes > 0 ORDER BY r.started_at, r.rowid",
        [WRAPPED_KEY_BYTES, RecordingState.RECORDING.value],
    ):
        have = set(str(stored).split(",")) if stored is not None else set()
        kept.append(
            KeptRecording(
                recording_id=str(rid),
                call_id=str(call_id),
                file_name=str(file_name),
                missing_key_ids=tuple(kid for kid in str(key_ids).split(",") if kid not in have),
            )
        )
    return kept


@dataclass(frozen=True, slots=True)
class PinnedFile:
    """A recording, not erased, whose evidence pins the SHA-256 of its file (one recovered after a
    crash, ``file_sha256``)."""

    recording_id: str
    file_name: str
    file_sha256: str


def pinned_files(db: Database) -> list[PinnedFile]:
    """Every recording not erased whose row holds the SHA-256 of its file, by start. Read from the
    columns alone: a row whose other values cannot be read is still checked."""
    return [
        PinnedFile(recording_id=str(rid), file_name=str(file_name), file_sha256=str(sha256))
        for rid, file_name, sha256 in db.execute(
            "SELECT id, file_name, file_sha256 FROM recordings WHERE erased_at IS NULL AND file_sha256 != ''"
            " ORDER BY started_at, rowid"
        )
    ]
