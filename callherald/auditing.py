"""The ``callherald audit`` command: check the hash-chained audit log of the evidence record.

``verify`` walks the chain (``storage.audit.AuditLog.verify``) and prints its head: the last row's
number and hash. A chain checks only itself: whoever can write the database file can cut its last
rows or rewrite every hash after an edit. Keep the printed head somewhere else (a signed or
off-site note) and give it back with ``--expected-head`` to close that gap.

Exit codes: 0 the chain is intact (and holds the expected head); 1 it is broken, or there is no
evidence database; 2 the invocation is wrong.
"""

from __future__ import annotations

import json
import sys

from callherald.command import CommandError, ExitCode
from callherald.layout import DataLayout
from storage.audit import AuditReport
from storage.crypto import StorageError
from storage.records import EvidenceStore

__all__ = ["report_text", "verify_audit_log"]


def verify_audit_log(layout: DataLayout, *, expected_head: str | None = None, as_json: bool = False) -> int:
    """Walk the audit chain of ``layout``'s evidence database and print what was found."""
    try:
        report = _verify(layout, expected_head)
    except CommandError as error:
        print(f"callherald audit: {error}", file=sys.stderr)
        return int(error.exit_code)
    if as_json:
        print(json.dumps(_report_json(report), indent=2))
    else:
        print(report_text(report))
    return ExitCode.OK if report.ok else ExitCode.REFUSED


def report_text(report: AuditReport) -> str:
    """What a chain walk found, in a line or two."""
    if report.ok:
        if not report.rows_checked:
            return "audit log: intact, empty"
        return (
            f"audit log: intact, {report.rows_checked} row{'' if report.rows_checked == 1 else 's'}; "
            f"head: row {report.head_seq} {report.head_hash}"
        )
    return (
        f"audit log: BROKEN at row {report.seq} ({report.problem}): {report.message}; "
        f"intact up to row {report.head_seq}"
    )


def _verify(layout: DataLayout, expected_head: str | None) -> AuditReport:
    if not layout.evidence_db.exists():  # a wrong directory or a data_dir typo, not an empty log
        raise CommandError(f"no evidence database at {layout.evidence_db}", exit_code=ExitCode.REFUSED)
    try:
        store = EvidenceStore(layout.evidence_db)
    except StorageError as error:
        raise CommandError(str(error), exit_code=ExitCode.REFUSED) from error
    try:
        return store.audit_verify(expected_head=expected_head)
    finally:
        store.close()


def _report_json(report: AuditReport) -> dict[str, object]:
    return {
        "ok": report.ok,
        "rows_checked": report.rows_checked,
        "head_seq": report.head_seq,
        "head_hash": report.head_hash,
        "problem": None if report.problem is None else str(report.problem),
        "seq": report.seq,
        "message": report.message,
    }
