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
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

from sqlite_utils import Database

from storage.crypto import DATA_KEY_BYTES, TAG_BYTES, X25519_KEY_BYTES, KeyStoreError, WrappedKey
from storage.records import EvidenceStore

__all__ = ["WRAPPED_KEY_BYTES", "SqliteKeyStore"]

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
