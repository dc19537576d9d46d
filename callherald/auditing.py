"""The ``callherald audit`` command: check the hash-chained audit log of the evidence record.

``verify`` walks the chain (``storage.audit.AuditLog.verify``) and prints its head: the last row's
number and hash. A chain checks only itself: whoever can write the database file can cut its last
rows or rewrite every hash after an edit. Keep the printed head somewhere else (a signed or
off-site note) and give it back with ``--expected-head`` to close that gap.

It then rebuilds the manifest of every recording from the evidence rows as they are now and
compares it with the one the audit log holds (``storage.manifests.verify_manifests``), naming each
recording whose evidence no longer matches, and counts the recordings that ended before manifests
were kept (not an error). Legal holds, their releases, erasures and later events (a withdrawal of
consent) are checked against the audit rows written with them: one deleted, changed or added
without its audit row is named with its recording, or its call for an event that names none.

Exit codes: 0 the chain is intact (and holds the expected head) and every recording matches its
manifest; 1 the chain is broken, a recording does not match, or there is no evidence database;
2 the invocation is wrong.
"""

from __future__ import annotations

import json
import sys

from callherald.command import CommandError, ExitCode
from callherald.layout import DataLayout
from storage.audit import AuditReport
from storage.crypto import StorageError
from storage.manifests import ManifestReport
from storage.records import EvidenceStore

__all__ = ["manifest_report_line", "manifest_report_text", "report_text", "verify_audit_log"]


def verify_audit_log(layout: DataLayout, *, expected_head: str | None = None, as_json: bool = False) -> int:
    """Walk the audit chain of ``layout``'s evidence database, check every recording against its
    manifest, and print what was found."""
    try:
        report, manifests = _verify(layout, expected_head)
    except CommandError as error:
        print(f"callherald audit: {error}", file=sys.stderr)
        return int(error.exit_code)
    ok = report.ok and manifests.ok
    if as_json:
        print(
            json.dumps({**_report_json(report), "ok": ok, "manifests": _manifests_json(manifests)}, indent=2)
        )
    else:
        print(report_text(report))
        print(manifest_report_text(manifests))
    return ExitCode.OK if ok else ExitCode.REFUSED


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


def _recordings(count: int) -> str:
    return f"{count} recording{'' if count == 1 else 's'}"


def manifest_report_text(report: ManifestReport) -> str:
    """What the manifest check found: a summary line, then one line per recording that no longer
    matches its manifest."""
    if not report.checked:
        summary = "manifests: none yet"
    elif report.ok:
        summary = f"manifests: {report.checked} checked, the evidence matches each"
    else:
        differ = len(report.mismatches)
        summary = (
            f"manifests: {report.checked} checked, {differ} no longer match{'es' if differ == 1 else ''} "
            "the evidence"
        )
    if report.without_manifest:
        summary += (
            f"; {_recordings(report.without_manifest)} ended without one (stored before manifests were kept)"
        )
    lines = [summary]
    for mismatch in report.mismatches:
        if mismatch.recording_id:
            of_call = f" of call {mismatch.call_id}" if mismatch.call_id else ""
            what = f"recording {mismatch.recording_id}{of_call}"
        else:  # a later event of the call that names no recording (a withdrawal)
            what = f"call {mismatch.call_id}"
        lines.append(
            f"  {what}: {', '.join(mismatch.parts)} "
            + (f"changed since audit row {mismatch.seq}" if mismatch.seq else "not in the audit log")
        )
    return "\n".join(lines)


def manifest_report_line(report: ManifestReport) -> str:
    """``manifest_report_text`` on one line, for the log."""
    return "; ".join(line.strip() for line in manifest_report_text(report).splitlines())


def _verify(layout: DataLayout, expected_head: str | None) -> tuple[AuditReport, ManifestReport]:
    if not layout.evidence_db.exists():  # a wrong directory or a data_dir typo, not an empty log
        raise CommandError(f"no evidence database at {layout.evidence_db}", exit_code=ExitCode.REFUSED)
    try:
        store = EvidenceStore(layout.evidence_db, read_only=True)  # works on a read-only copy too
    except StorageError as error:
        raise CommandError(str(error), exit_code=ExitCode.REFUSED) from error
    try:
        return store.audit_verify(expected_head=expected_head), store.verify_manifests()
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


def _manifests_json(report: ManifestReport) -> dict[str, object]:
    return {
        "ok": report.ok,
        "checked": report.checked,
        "without_manifest": report.without_manifest,
        "mismatches": [
            {
                "recording_id": mismatch.recording_id or None,
                "call_id": mismatch.call_id,
                "audit_seq": mismatch.seq,
                "parts": list(mismatch.parts),
            }
            for mismatch in report.mismatches
        ],
    }
