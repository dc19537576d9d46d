"""The append-only, hash-chained audit log (table ``audit_log``).

Every row holds ``seq`` (1, 2, 3, ... without gaps), ``at``, ``actor``, ``action``, ``subject``,
``detail`` (canonical JSON text), ``prev_hash`` (the previous row's ``hash``; ``AUDIT_GENESIS_HASH``
for row 1) and ``hash``: the SHA-256 hex digest of the canonical encoding of
``[seq, at, actor, action, subject, detail, prev_hash]``, which is UTF-8 JSON with no whitespace,
non-ASCII characters kept as they are (``canonical_row_bytes``).

Triggers forbid UPDATE and DELETE through SQL. Someone with write access to the file can still drop
them; ``AuditLog.verify`` then finds the first row that was edited, deleted, reordered or inserted.
A chain without a secret cannot prove its own tail: an attacker who cuts the last rows, or rewrites
every hash after an edit, leaves a consistent chain. Keep ``AuditReport.head_hash`` somewhere else
(a signed or off-site note) and pass it to ``verify(expected_head=...)`` to close that gap up to
that row (``callherald audit verify`` prints the head and takes it back).
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from storage.migrations import AUDIT_GENESIS_HASH, from_db_time, to_db_time

__all__ = [
    "AUDIT_ACTION_MANIFEST",
    "AuditEntry",
    "AuditLog",
    "AuditProblem",
    "AuditReport",
    "canonical_detail",
    "canonical_row_bytes",
    "row_hash",
]


AUDIT_ACTION_MANIFEST = "manifest"
"""``action`` of a recording's manifest row (``storage.manifests``)."""


def canonical_detail(detail: Mapping[str, Any]) -> str:
    """The canonical JSON text of a detail mapping: sorted keys, no whitespace, UTF-8 kept."""
    return json.dumps(dict(detail), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_row_bytes(
    *, seq: int, at: str, actor: str, action: str, subject: str, detail: str, prev_hash: str
) -> bytes:
    """The bytes a row's hash covers: ``[seq, at, actor, action, subject, detail, prev_hash]`` as JSON."""
    fields = [seq, at, actor, action, subject, detail, prev_hash]
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def row_hash(*, seq: int, at: str, actor: str, action: str, subject: str, detail: str, prev_hash: str) -> str:
    """SHA-256 (lowercase hex) of ``canonical_row_bytes``."""
    data = canonical_row_bytes(
        seq=seq, at=at, actor=actor, action=action, subject=subject, detail=detail, prev_hash=prev_hash
    )
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    """One audit row as stored (``at`` decoded to an aware UTC datetime, ``detail`` as JSON text)."""

    seq: int
    at: dt.datetime
    actor: str
    action: str
    subject: str
    detail: str
    prev_hash: str
    hash: str


class AuditProblem(enum.StrEnum):
    """How the chain is broken at ``AuditReport.seq``."""

    EDITED = "edited"
    """The row's content no longer matches its hash, or it was rewritten with a fresh hash."""
    DELETED = "deleted"
    """One or more rows before this point are gone."""
    REORDERED = "reordered"
    """The row links to a row that now comes after it."""
    INSERTED = "inserted"
    """The row is not part of the original chain; the row after it links past it."""
    HEAD_MISMATCH = "head_mismatch"
    """The chain is consistent but holds no row with the expected head's hash (rows cut or rewritten)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditReport:
    """The result of a chain walk. ``ok`` is True when no problem was found.

    On failure ``seq`` is the first broken row (for ``DELETED``: the first missing ``seq``) and
    ``message`` says what was found there.
    """

    ok: bool
    rows_checked: int
    head_seq: int
    head_hash: str
    problem: AuditProblem | None = None
    seq: int | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class _Row:
    seq: int
    at: str
    actor: str
    action: str
    subject: str
    detail: str
    prev_hash: str
    hash: str

    def recomputed(self) -> str:
        return row_hash(
            seq=self.seq,
            at=self.at,
            actor=self.actor,
            action=self.action,
            subject=self.subject,
            detail=self.detail,
            prev_hash=self.prev_hash,
        )


class AuditLog:
    """The audit log on a ``Database``. Use it from the thread that owns the connection.

    ``append`` must run on the writer connection; ``verify`` works on any connection.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def append(
        self,
        *,
        at: dt.datetime,
        actor: str,
        action: str,
        subject: str,
        detail: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        """Append one row in its own transaction (or savepoint) and return it.

        Raises ValueError for a naive ``at`` or a detail that is not JSON-serialisable.
        """
        at_text = to_db_time(at)
        try:
            detail_text = canonical_detail(detail or {})
        except TypeError as exc:
            raise ValueError(f"audit detail is not JSON-serialisable: {exc}") from exc
        with self.db.atomic():
            last = self.db.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev_hash = (1, AUDIT_GENESIS_HASH) if last is None else (int(last[0]) + 1, str(last[1]))
            digest = row_hash(
                seq=seq,
                at=at_text,
                actor=actor,
                action=action,
                subject=subject,
                detail=detail_text,
                prev_hash=prev_hash,
            )
            self.db.execute(
                "INSERT INTO audit_log (seq, at, actor, action, subject, detail, prev_hash, hash) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [seq, at_text, actor, action, subject, detail_text, prev_hash, digest],
            )
        return AuditEntry(
            seq=seq,
            at=from_db_time(at_text),
            actor=actor,
            action=action,
            subject=subject,
            detail=detail_text,
            prev_hash=prev_hash,
            hash=digest,
        )

    def entries(self) -> list[AuditEntry]:
        """All rows in ``seq`` order, as stored."""
        return [
            AuditEntry(
                seq=row.seq,
                at=from_db_time(row.at),
                actor=row.actor,
                action=row.action,
                subject=row.subject,
                detail=row.detail,
                prev_hash=row.prev_hash,
                hash=row.hash,
            )
            for row in self._rows()
        ]

    def _rows(self) -> list[_Row]:
        cursor = self.db.execute(
            "SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit_log ORDER BY seq"
        )
        return [
            _Row(
                int(seq), str(at), str(actor), str(action), str(subject), str(detail), str(prev), str(digest)
            )
            for seq, at, actor, action, subject, detail, prev, digest in cursor
        ]

    def verify(self, *, expected_head: str | None = None) -> AuditReport:
        """Walk the chain from row 1 and report the first broken row.

        Checks, per row in ``seq`` order: ``seq`` continues without a gap, ``prev_hash`` is the
        previous row's ``hash``, and ``hash`` is the digest of the row's content. When
        ``expected_head`` is given (a head noted earlier), a row must have that hash: the rows
        up to it are then as they were when it was noted, and rows appended since are allowed.
        """
        rows = self._rows()
        seq_of_hash = {row.hash: row.seq for row in rows}
        prev_seq, prev_hash = 0, AUDIT_GENESIS_HASH

        def broken(problem: AuditProblem, seq: int, message: str, checked: int) -> AuditReport:
            return AuditReport(
                ok=False,
                rows_checked=checked,
                head_seq=prev_seq,
                head_hash=prev_hash,
                problem=problem,
                seq=seq,
                message=message,
            )

        for checked, row in enumerate(rows):
            expected_seq = prev_seq + 1
            if row.seq > expected_seq:
                last = row.seq - 1
                span = f"row {expected_seq}" if last == expected_seq else f"rows {expected_seq}-{last}"
                return broken(AuditProblem.DELETED, expected_seq, f"{span} missing (deleted)", checked)
            if row.seq < expected_seq:
                return broken(AuditProblem.EDITED, row.seq, f"row {row.seq}: seq out of range", checked)
            content_ok = row.recomputed() == row.hash
            if row.prev_hash != prev_hash:
                target = seq_of_hash.get(row.prev_hash)
                if target is not None and target > row.seq:
                    message = f"row {row.seq} links to row {target}, which comes after it (reordered)"
                    return broken(AuditProblem.REORDERED, row.seq, message, checked)
                if target is not None and target < prev_seq:
                    first = target + 1
                    message = (
                        f"row {row.seq} links to row {target}: rows {first}-{prev_seq} "
                        "are not part of the chain (inserted)"
                    )
                    return broken(AuditProblem.INSERTED, first, message, checked)
                if content_ok and prev_seq > 0:
                    message = (
                        f"row {prev_seq} was rewritten: row {row.seq} links to a hash no row has (edited)"
                    )
                    return broken(AuditProblem.EDITED, prev_seq, message, checked)
                message = f"the row before row {row.seq} is gone: it links to a hash no row has (deleted)"
                return broken(AuditProblem.DELETED, row.seq, message, checked)
            if not content_ok:
                message = f"row {row.seq}: content does not match its hash (edited)"
                return broken(AuditProblem.EDITED, row.seq, message, checked)
            prev_seq, prev_hash = row.seq, row.hash

        if expected_head is not None and expected_head not in seq_of_hash:
            message = (
                f"the chain ends at row {prev_seq} with hash {prev_hash} and holds no row with the"
                " expected head's hash"
            )
            return broken(AuditProblem.HEAD_MISMATCH, prev_seq, message, len(rows))
        return AuditReport(ok=True, rows_checked=len(rows), head_seq=prev_seq, head_hash=prev_hash)
