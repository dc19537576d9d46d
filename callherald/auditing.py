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

Last, it hashes the file of every recording recovered after a crash whose SHA-256 the evidence
record holds (``file_sha256``, pinned by the recovery, which cannot decrypt) and names each whose
file is missing or differs: such a file can be replaced by new audio sealed with a recipient's
public key alone, and only that hash tells. This needs no key.

Then it checks the signature of every manifest (``storage.signing``) with the trusted public keys:
those given with ``--trust`` (copies kept away from the machine), else the public half of the
signing key on this machine, which tells an edit but not a key swapped in with it. A signature that
does not fit (the manifest or the chain before it was rewritten, with every hash computed again),
one by a key not trusted, and a manifest left unsigned after the first signed one are each named.

And every recording the record says is kept (not erased, ended, with a file of some bytes) must
still have a wrapped key for each key id its row names and its file under ``recordings/``:
deleting either erases the recording for good with no erasure in the record (no reason, no user,
no audit row), so each recording missing one is named, with the key ids or the file it lacks.

Exit codes: 0 the chain is intact (and holds the expected head), every recording matches its
manifest, every manifest signature holds, every recovered file the SHA-256 pinned for it, and
every kept recording has its keys and file; 1 the chain is broken, a recording, signature or file
does not match, a recording lacks keys or its file, or there is no evidence database; 2 the
invocation is wrong (a trusted key file that cannot be read).
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlite_utils import Database

from callherald.command import CommandError, ExitCode
from callherald.layout import DataLayout
from storage.audit import AuditReport
from storage.crypto import StorageError
from storage.manifests import ManifestReport
from storage.records import EvidenceStore
from storage.signing import SignatureReport, load_verify_key, public_key_path, signing_key_id
from storage.sqlite_keys import KeptRecording, PinnedFile, kept_recordings, pinned_files

__all__ = [
    "FileMismatch",
    "FileReport",
    "IncompleteRecording",
    "KeptReport",
    "TrustedKey",
    "file_report",
    "file_report_text",
    "kept_report",
    "kept_report_text",
    "manifest_report_line",
    "manifest_report_text",
    "report_text",
    "signature_report_text",
    "trusted_keys",
    "verify_audit_log",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class FileMismatch:
    """The file of recording ``recording_id``, recovered after a crash, is not the one recovery
    pinned: ``actual_sha256`` is None when the file is missing or cannot be read (``problem``)."""

    recording_id: str
    file_name: str
    expected_sha256: str
    actual_sha256: str | None
    problem: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FileReport:
    """What hashing the recovered recordings' files found: ``checked`` files, and every mismatch."""

    checked: int
    mismatches: tuple[FileMismatch, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.mismatches


@dataclass(frozen=True, slots=True, kw_only=True)
class IncompleteRecording:
    """A kept recording (``storage.sqlite_keys.kept_recordings``) that lacks wrapped keys or its file."""

    recording_id: str
    call_id: str
    missing_key_ids: tuple[str, ...]
    file_name: str
    file_missing: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class KeptReport:
    """``checked`` recordings the record says are kept, and those that lack keys or their file."""

    checked: int
    incomplete: tuple[IncompleteRecording, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.incomplete


@dataclass(frozen=True, slots=True)
class TrustedKey:
    """A public key manifest signatures are checked with, and the file it came from."""

    key_id: str
    path: Path
    key: Ed25519PublicKey


def trusted_keys(paths: Sequence[Path], signing_key: Path) -> tuple[TrustedKey, ...]:
    """The keys in ``paths`` (``--trust``); without any, the public half of ``signing_key`` (its
    ``.pub`` beside it, else the key itself), none if neither is there. CommandError (usage) for a
    file given that holds no Ed25519 key."""
    if not paths:
        paths = [path for path in (public_key_path(signing_key), signing_key) if path.exists()][:1]
    try:
        keys = [(path, load_verify_key(path)) for path in paths]
    except StorageError as error:
        raise CommandError(str(error), exit_code=ExitCode.USAGE) from error
    return tuple(TrustedKey(signing_key_id(key), path, key) for path, key in keys)


def verify_audit_log(
    layout: DataLayout,
    *,
    expected_head: str | None = None,
    as_json: bool = False,
    trust: Sequence[Path] = (),
    signing_key: Path | None = None,
) -> int:
    """Walk the audit chain of ``layout``'s evidence database, check every recording against its
    manifest and every manifest's signature, and print what was found. ``trust``: the public keys
    to check signatures with (default: that of ``signing_key``, the configured signing key, by
    default ``layout.manifest_signing_key``)."""
    try:
        trusted = trusted_keys(trust, signing_key or layout.manifest_signing_key)
        report, manifests, signatures, files, kept = _verify(layout, expected_head, trusted)
    except CommandError as error:
        print(f"callherald audit: {error}", file=sys.stderr)
        return int(error.exit_code)
    ok = report.ok and manifests.ok and signatures.ok and files.ok and kept.ok
    if as_json:
        print(
            json.dumps(
                {
                    **_report_json(report),
                    "ok": ok,
                    "manifests": _manifests_json(manifests),
                    "signatures": _signatures_json(signatures, trusted),
                    "files": _files_json(files),
                    "files_and_keys": _kept_json(kept),
                },
                indent=2,
            )
        )
    else:
        print(report_text(report))
        print(manifest_report_text(manifests))
        print(signature_report_text(signatures, trusted))
        if files.checked:
            print(file_report_text(files))
        print(kept_report_text(kept))
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


def signature_report_text(report: SignatureReport, trusted: Sequence[TrustedKey]) -> str:
    """What checking the manifests' signatures found: a summary line, the keys trusted, then one
    line per manifest whose signature does not hold."""
    if report.ok and not report.signed and not report.unsigned_before:
        return "manifest signatures: none yet"
    if report.ok:
        checked = f"{report.signed} checked, each holds" if report.signed else "none signed"
        summary = f"manifest signatures: {checked}"
    else:
        summary = f"manifest signatures: {len(report.problems)} do not hold, {report.signed} do"
    if report.unsigned_before:
        summary += f"; {report.unsigned_before} written before manifests were signed"
    keys = ", ".join(f"{key.key_id} ({key.path})" for key in trusted) or "none (give --trust)"
    lines = [summary, f"  trusted keys: {keys}"]
    for problem in report.problems:
        what = f"recording {problem.recording_id}" if problem.recording_id else "no recording"
        lines.append(f"  audit row {problem.seq}, {what}: {problem.problem}")
    return "\n".join(lines)


def file_report_text(report: FileReport) -> str:
    """What hashing the recovered recordings' files found: a summary line, then one line per file
    that is missing or differs."""
    if report.ok:
        return f"recovered files: {report.checked} checked, each matches the SHA-256 pinned at its recovery"
    differ = len(report.mismatches)
    lines = [
        f"recovered files: {report.checked} checked, {differ} do{'es' if differ == 1 else ''} not match "
        "the SHA-256 pinned at recovery"
    ]
    lines += [f"  recording {mismatch.recording_id}: {mismatch.problem}" for mismatch in report.mismatches]
    return "\n".join(lines)


def kept_report_text(report: KeptReport) -> str:
    """What the check of the kept recordings' keys and files found: a summary line, then one line
    per recording that lacks any."""
    if not report.checked:
        return "files and keys: no recordings kept"
    if report.ok:
        return f"files and keys: {_recordings(report.checked)} kept, each has its file and its wrapped keys"
    lines = [
        f"files and keys: {_recordings(report.checked)} kept, {len(report.incomplete)} incomplete "
        "although the record shows no erasure (removed outside callherald)"
    ]
    for item in report.incomplete:
        lacks = []
        if item.missing_key_ids:
            ids = ", ".join(item.missing_key_ids)
            lacks.append(f"no wrapped key for key id{'s' if len(item.missing_key_ids) > 1 else ''} {ids}")
        if item.file_missing:
            lacks.append(f"its file {item.file_name} is missing")
        lines.append(f"  recording {item.recording_id} of call {item.call_id}: {'; '.join(lacks)}")
    return "\n".join(lines)


def _plain_file_name(name: str) -> bool:
    """Whether a stored file name names a file directly under ``recordings/``."""
    return Path(name).name == name and name not in ("", ".", "..")


def _check_kept(layout: DataLayout, kept: Sequence[KeptRecording]) -> KeptReport:
    """Which of the ``kept`` recordings lack their file or any of their wrapped keys."""
    incomplete = []
    for recording in kept:
        name = recording.file_name
        file_missing = not _plain_file_name(name) or not (layout.recordings_dir / name).is_file()
        if recording.missing_key_ids or file_missing:
            incomplete.append(
                IncompleteRecording(
                    recording_id=recording.recording_id,
                    call_id=recording.call_id,
                    missing_key_ids=recording.missing_key_ids,
                    file_name=name,
                    file_missing=file_missing,
                )
            )
    return KeptReport(checked=len(kept), incomplete=tuple(incomplete))


def kept_report(layout: DataLayout, db: Database) -> KeptReport:
    """``_check_kept`` of the recordings ``db`` says are kept (run it on the evidence reader). One
    found incomplete is looked up again after the check: an erasure running meanwhile removes the
    file once the erasure is recorded, and is no finding."""
    report = _check_kept(layout, kept_recordings(db))
    if report.ok:
        return report
    still = {recording.recording_id for recording in kept_recordings(db)}
    incomplete = tuple(item for item in report.incomplete if item.recording_id in still)
    return KeptReport(checked=report.checked, incomplete=incomplete)


def _sha256_of(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _check_files(layout: DataLayout, pinned: Sequence[PinnedFile]) -> FileReport:
    """Hash the file of every ``pinned`` recording (not erased, its evidence holding the SHA-256 of
    its file: recovered after a crash) and compare."""
    mismatches: list[FileMismatch] = []
    for record in pinned:
        expected = record.file_sha256.lower()
        name = record.file_name
        actual: str | None = None
        if not _plain_file_name(name):
            problem = f"its stored file name {name!r} is not a plain file name"
        else:
            path = layout.recordings_dir / name
            try:
                actual = _sha256_of(path)
            except FileNotFoundError:
                problem = f"its file {path} is missing"
            except OSError as error:
                problem = f"its file {path} cannot be read ({error.strerror or error})"
            else:
                if actual == expected:
                    continue
                problem = (
                    f"its file {path} has SHA-256 {actual}, the evidence record {expected}: "
                    "the file was replaced or altered since"
                )
        mismatches.append(
            FileMismatch(
                recording_id=str(record.recording_id),
                file_name=name,
                expected_sha256=expected,
                actual_sha256=actual,
                problem=problem,
            )
        )
    return FileReport(checked=len(pinned), mismatches=tuple(mismatches))


def file_report(layout: DataLayout, db: Database) -> FileReport:
    """``_check_files`` of the recordings whose file SHA-256 ``db`` pins (run it on the evidence
    reader: the files are hashed there too)."""
    return _check_files(layout, pinned_files(db))


def manifest_report_line(report: ManifestReport) -> str:
    """``manifest_report_text`` on one line, for the log."""
    return "; ".join(line.strip() for line in manifest_report_text(report).splitlines())


def _verify(
    layout: DataLayout, expected_head: str | None, trusted: Sequence[TrustedKey]
) -> tuple[AuditReport, ManifestReport, SignatureReport, FileReport, KeptReport]:
    if not layout.evidence_db.exists():  # a wrong directory or a data_dir typo, not an empty log
        raise CommandError(f"no evidence database at {layout.evidence_db}", exit_code=ExitCode.REFUSED)
    try:
        store = EvidenceStore(layout.evidence_db, read_only=True)  # works on a read-only copy too
    except StorageError as error:
        raise CommandError(str(error), exit_code=ExitCode.REFUSED) from error
    try:
        kept = store.submit_read(partial(kept_report, layout)).result()
        return (
            store.audit_verify(expected_head=expected_head),
            store.verify_manifests(),
            store.verify_manifest_signatures([key.key for key in trusted]),
            store.submit_read(partial(file_report, layout)).result(),
            kept,
        )
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


def _signatures_json(report: SignatureReport, trusted: Sequence[TrustedKey]) -> dict[str, object]:
    return {
        "ok": report.ok,
        "signed": report.signed,
        "unsigned_before": report.unsigned_before,
        "key_ids": list(report.key_ids),
        "trusted": [{"key_id": key.key_id, "file": str(key.path)} for key in trusted],
        "problems": [
            {"audit_seq": item.seq, "recording_id": item.recording_id or None, "problem": item.problem}
            for item in report.problems
        ],
    }


def _files_json(report: FileReport) -> dict[str, object]:
    return {
        "ok": report.ok,
        "checked": report.checked,
        "mismatches": [
            {
                "recording_id": mismatch.recording_id,
                "file_name": mismatch.file_name,
                "expected_sha256": mismatch.expected_sha256,
                "actual_sha256": mismatch.actual_sha256,
                "problem": mismatch.problem,
            }
            for mismatch in report.mismatches
        ],
    }


def _kept_json(report: KeptReport) -> dict[str, object]:
    return {
        "ok": report.ok,
        "checked": report.checked,
        "incomplete": [
            {
                "recording_id": item.recording_id,
                "call_id": item.call_id,
                "missing_key_ids": list(item.missing_key_ids),
                "file_name": item.file_name,
                "file_missing": item.file_missing,
            }
            for item in report.incomplete
        ],
    }
