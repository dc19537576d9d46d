"""Recording manifests: each recording's consent-and-purpose evidence, fixed in the audit log as it ends.

When a recording's end is stored (finished, or truncated after a crash), the same transaction
appends an audit row (action ``manifest``, subject the recording id) whose detail is the
recording's manifest: its evidence as it stands then, as stored (times as the database keeps
them, sorted keys: ``storage.audit.canonical_detail``). The hash chain then covers the evidence
rows themselves, which SQL can change (GDPR Art. 5(1)(f), 32(1)(b); MiFID II Del. Reg. 2017/565
Art. 72(1)(b)-(c): records that cannot be altered unseen). A manifest holds:

* ``recording``: id, call, file name, key ids, start, first frame, end, duration, size, state as
  it ended, SHA-256 of the audio, why it ended, and the SHA-256 of the file of a recording recovered
  after a crash (``file_sha256``; '' for others; a manifest written before it was kept has no
  such key, and matches while the row's is ''), and what the network cost its audio per channel
  (``media_quality``: lost, late, timestamp jumps, drift; null when not measured, as for a
  recording recovered after a crash; a manifest written before it was kept has no such key, and
  matches while the row's is not measured), and where its file is kept (``storage_region``, as
  the operator named it, '' when not stated; ``worm``, whether on write-once storage; a manifest
  written before they were kept has neither, and matches while the row's are '' and NULL);
* ``call``: id, direction, calling, called, local line, agent, set-up;
* ``legs``, ``announcements`` (prompt, version, language, hash, start, end, complete, failure),
  ``digits``, ``consent_decisions`` and ``agent_notices`` of the call;
* ``purposes``: those the recording serves (a recording stored before recordings kept their own:
  its call's), each with lawful basis, reference, retention, definition version, delete-after date;
* ``pauses`` of the recording.

Left out, because they legitimately change after the recording ends: the call's end, the
recording's erasure (``erased_*``; its wrapped keys and file), legal holds and their releases,
later events (withdrawal, access, export, erasure), and rows not yet stored. Erasures, holds,
releases and later events are checked against the audit rows written with them instead
(``storage.records.audited_changes_mismatches``).

``verify_manifests`` rebuilds every manifest from the current rows and names the parts that
differ. The evidence of a call grows after one of its recordings ends (a new party on the line,
the next recording's notice, keys and decisions): a part with times may hold rows the manifest
has not, when they date from the recording's end or later (a row dated while the recording ran
was stored before its end, and so is in the manifest); legs, which have no time, may be added. A
row the manifest holds open (no end yet: a prompt or agent notice still playing, ended later) may
have ended since. Any other change, removal or addition is a difference.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from storage.audit import AUDIT_ACTION_MANIFEST, AuditEntry, AuditLog, canonical_detail
from storage.signing import ManifestSigner, write_manifest_signature

__all__ = [
    "AUDIT_ACTION_MANIFEST",
    "MANIFEST_ACTOR",
    "MANIFEST_PARTS",
    "ManifestMismatch",
    "ManifestReport",
    "append_manifest",
    "recording_manifest",
    "verify_manifests",
]

MANIFEST_ACTOR = "callherald"
"""Who writes a manifest, for the audit log: the proxy (or its recovery), as the recording ends."""
MANIFEST_FORMAT = 1
"""``format`` of a manifest: what it holds and how, as this module describes it."""

MANIFEST_PARTS = {
    "recording": "recording",
    "call": "call",
    "legs": "legs",
    "announcements": "announcements",
    "digits": "digits",
    "consent_decisions": "consent decisions",
    "purposes": "purposes",
    "pauses": "pauses",
    "agent_notices": "agent notices",
}
"""Manifest key -> the name a mismatch report gives the part, in report order."""

# The time a row of a part is dated by: rows dated from the recording's end on may be added later.
_ROW_TIME = {
    "announcements": "started_at",
    "digits": "at",
    "consent_decisions": "at",
    "agent_notices": "started_at",
}
# What an open row (``ended_at`` None) may gain when it ends.
_END_FIELDS = frozenset({"ended_at", "complete", "failure"})

Row = dict[str, Any]


# --------------------------------------------------------------------------------------------------
# Building


def _rows(db: Database, sql: str, params: list[Any], shape: Callable[[Mapping[str, Any]], Row]) -> list[Row]:
    return [shape(row) for row in db.query(sql, params)]


def _recording_part(row: Mapping[str, Any]) -> Row:
    return {
        "id": row["id"],
        "call_id": row["call_id"],
        "file_name": row["file_name"],
        "key_ids": str(row["key_id"]).split(","),
        "started_at": row["started_at"],
        "first_frame_at": row["first_frame_at"],
        "finished_at": row["finished_at"],
        "duration_ms": row["duration_ms"],
        "size_bytes": row["size_bytes"],
        "state": row["state"],
        "audio_sha256": row["audio_sha256"],
        "end_reason": row["end_reason"],
        "file_sha256": row["file_sha256"],
        "media_quality": _media_quality(str(row["media_quality"])),
        "storage_region": row["storage_region"],
        "worm": None if row["worm"] is None else bool(row["worm"]),
    }


def _media_quality(stored: str) -> Any:
    # The column's JSON as an object; None for '' (not measured). Text that is not JSON (an edit
    # by hand) is kept as it is, and so differs from the object a manifest kept.
    if not stored:
        return None
    try:
        return json.loads(stored)
    except ValueError:
        return stored


def _call_part(row: Mapping[str, Any]) -> Row:
    return {
        "id": row["id"],
        "direction": row["direction"],
        "calling": row["calling"],
        "called": row["called"],
        "local_line": row["local_line"],
        "agent_id": row["agent_id"],
        "setup_at": row["setup_at"],
    }


def _leg(row: Mapping[str, Any]) -> Row:
    return {
        "id": row["id"],
        "role": row["role"],
        "sip_call_id": row["sip_call_id"],
        "remote_uri": row["remote_uri"],
    }


def _announcement(row: Mapping[str, Any]) -> Row:
    return {
        "leg_id": row["leg_id"],
        "prompt_id": row["prompt_id"],
        "version": row["version"],
        "language": row["language"],
        "audio_sha256": row["audio_sha256"],
        "started_at": row["started_at"],
        "ended_at": row["ended_at"],
        "complete": bool(row["complete"]),
        "failure": row["failure"],
    }


def _digit(row: Mapping[str, Any]) -> Row:
    return {
        "leg_id": row["leg_id"],
        "digit": row["digit"],
        "mechanism": row["mechanism"],
        "at": row["at"],
        "counted": bool(row["counted"]),
    }


def _consent_decision(row: Mapping[str, Any]) -> Row:
    return {
        "question_id": row["question_id"],
        "question_version": row["question_version"],
        "purpose_id": row["purpose_id"],
        "decision": row["decision"],
        "mechanism": row["mechanism"],
        "at": row["at"],
    }


def _purpose(row: Mapping[str, Any]) -> Row:
    return {
        "purpose_id": row["purpose_id"],
        "version": row["purpose_version"],
        "lawful_basis": row["lawful_basis"],
        "reference": row["reference"],
        "retention_days": row["retention_days"],
        "delete_after": row["delete_after"],
    }


def _pause(row: Mapping[str, Any]) -> Row:
    return {"reason": row["reason"], "started_at": row["started_at"], "ended_at": row["ended_at"]}


def _agent_notice(row: Mapping[str, Any]) -> Row:
    return {
        "leg_id": row["leg_id"],
        "kind": row["kind"],
        "name": row["name"],
        "version": row["version"],
        "language": row["language"],
        "audio_sha256": row["audio_sha256"],
        "started_at": row["started_at"],
        "ended_at": row["ended_at"],
        "complete": bool(row["complete"]),
        "failure": row["failure"],
    }


_PURPOSE_COLUMNS = (
    "cp.purpose_id, cp.purpose_version, cp.delete_after, p.lawful_basis, p.reference, p.retention_days"
)


def _evidence(db: Database, recording_id: str, call_id: str) -> dict[str, Any]:
    """The manifest of ``recording_id`` of call ``call_id`` as the rows are now; a part whose row
    is gone (the recording's, the call's) is None."""
    recording = next(db.query("SELECT * FROM recordings WHERE id = ?", [recording_id]), None)
    call = next(db.query("SELECT * FROM calls WHERE id = ?", [call_id]), None)
    on_legs = "JOIN legs l ON l.id = x.leg_id WHERE l.call_id = ? ORDER BY x.rowid"
    purposes = _rows(
        db,
        f"SELECT {_PURPOSE_COLUMNS} FROM recording_purposes rp "
        "JOIN call_purposes cp ON cp.call_id = rp.call_id AND cp.purpose_id = rp.purpose_id "
        "AND cp.purpose_version = rp.purpose_version "
        "JOIN purposes p ON p.id = cp.purpose_id AND p.version = cp.purpose_version "
        "WHERE rp.recording_id = ? ORDER BY cp.purpose_id",
        [recording_id],
        _purpose,
    )
    if not purposes:  # stored before recordings kept their own purposes: it served its call's
        purposes = _rows(
            db,
            f"SELECT {_PURPOSE_COLUMNS} FROM call_purposes cp "
            "JOIN purposes p ON p.id = cp.purpose_id AND p.version = cp.purpose_version "
            "WHERE cp.call_id = ? ORDER BY cp.purpose_id",
            [call_id],
            _purpose,
        )
    return {
        "format": MANIFEST_FORMAT,
        "recording": None if recording is None else _recording_part(recording),
        "call": None if call is None else _call_part(call),
        "legs": _rows(db, "SELECT * FROM legs WHERE call_id = ? ORDER BY rowid", [call_id], _leg),
        "announcements": _rows(
            db, f"SELECT x.* FROM announcements_played x {on_legs}", [call_id], _announcement
        ),
        "digits": _rows(db, f"SELECT x.* FROM dtmf_events x {on_legs}", [call_id], _digit),
        "consent_decisions": _rows(
            db,
            "SELECT * FROM consent_decisions WHERE call_id = ? ORDER BY rowid",
            [call_id],
            _consent_decision,
        ),
        "purposes": purposes,
        "pauses": _rows(
            db, "SELECT * FROM pauses WHERE recording_id = ? ORDER BY rowid", [recording_id], _pause
        ),
        "agent_notices": _rows(db, f"SELECT x.* FROM agent_notices x {on_legs}", [call_id], _agent_notice),
    }


def recording_manifest(db: Database, recording_id: str) -> dict[str, Any]:
    """The manifest of ``recording_id`` as its rows are now. LookupError for an unknown recording."""
    row = db.execute("SELECT call_id FROM recordings WHERE id = ?", [recording_id]).fetchone()
    if row is None:
        raise LookupError(f"recording {recording_id} is not recorded")
    return _evidence(db, recording_id, str(row[0]))


def append_manifest(
    db: Database, recording_id: str, *, at: dt.datetime, signer: ManifestSigner | None = None
) -> AuditEntry:
    """Append the manifest of ``recording_id`` to the audit log, made ``at`` (its end), signed by
    ``signer`` if given (``storage.signing``). Run it in the transaction that stores the
    recording's end, after the rows that end writes."""
    entry = AuditLog(db).append(
        at=at,
        actor=MANIFEST_ACTOR,
        action=AUDIT_ACTION_MANIFEST,
        subject=recording_id,
        detail=recording_manifest(db, recording_id),
    )
    if signer is not None:
        write_manifest_signature(db, entry, signer)
    return entry


# --------------------------------------------------------------------------------------------------
# Verifying


@dataclass(frozen=True, slots=True, kw_only=True)
class ManifestMismatch:
    """Recording ``recording_id`` of call ``call_id`` no longer matches the manifest in audit row
    ``seq``: ``parts`` names what differs (``MANIFEST_PARTS`` values, ``manifest`` for a manifest
    that cannot be read). A later event that names no recording (a withdrawal) is reported with
    its call alone: ``recording_id`` empty."""

    recording_id: str
    call_id: str
    seq: int
    parts: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ManifestReport:
    """What ``verify_manifests`` found: ``checked`` manifests, ``without_manifest`` recordings that
    ended with none (stored before manifests were kept), and every mismatch."""

    checked: int
    without_manifest: int
    mismatches: tuple[ManifestMismatch, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.mismatches


def _text(row: Row) -> str:
    return canonical_detail(row)


def _without_end(row: Row) -> Row:
    return {name: value for name, value in row.items() if name not in _END_FIELDS}


def _rows_differ(key: str, kept: list[Row], now: list[Row], recording_end: str) -> bool:
    """Whether the rows ``now`` of part ``key`` differ from those the manifest ``kept`` (see the
    module for what may change since)."""
    remaining = [_text(row) for row in now]
    still_open: list[Row] = []
    for row in kept:
        text = _text(row)
        if text in remaining:
            remaining.remove(text)
        elif row.get("ended_at", "") is None:
            still_open.append(_without_end(row))
        else:
            return True  # changed or removed
    added: list[Row] = [json.loads(text) for text in remaining]
    for fixed in still_open:  # open when the recording ended: it may have ended since
        ended = next(
            (row for row in added if row.get("ended_at") is not None and _without_end(row) == fixed), None
        )
        if ended is None:
            return True
        added.remove(ended)
    if not added or key == "legs":
        return False
    time_field = _ROW_TIME.get(key)
    # Stored times are fixed-width UTC text: text order is time order.
    return time_field is None or any(str(row[time_field]) < recording_end for row in added)


# Fields of the recording part added since manifests were first written, each with the value a
# row stored before it was kept holds.
_LATER_RECORDING_FIELDS: dict[str, Any] = {
    "file_sha256": "",
    "media_quality": None,
    "storage_region": "",
    "worm": None,
}


def _recording_as_kept(kept: Any, now: Any) -> Any:
    """The recording part ``now`` in the shape of the manifest that ``kept`` it: one written before
    file hashes were kept has no ``file_sha256``, which its row then holds as ''; one written before
    media quality was kept has no ``media_quality``, which its row then holds as not measured; one
    written before the storage was kept has no ``storage_region`` and ``worm``, which its row then
    holds as '' and NULL."""
    if not (isinstance(kept, dict) and isinstance(now, dict)):
        return now
    left_out = {
        name
        for name, before in _LATER_RECORDING_FIELDS.items()
        if name not in kept and now.get(name) == before
    }
    return {name: value for name, value in now.items() if name not in left_out}


def _differences(kept: Mapping[str, Any], now: Mapping[str, Any]) -> tuple[str, ...]:
    recording = kept.get("recording")
    end = str(recording.get("finished_at") or "") if isinstance(recording, dict) else ""
    parts = []
    for key, name in MANIFEST_PARTS.items():
        if key not in kept:
            parts.append(name)
        elif isinstance(now[key], list) and isinstance(kept[key], list):
            if _rows_differ(key, kept[key], now[key], end):
                parts.append(name)
        elif key == "recording":
            if kept[key] != _recording_as_kept(kept[key], now[key]):
                parts.append(name)
        elif kept[key] != now[key]:
            parts.append(name)
    return tuple(parts)


def verify_manifests(db: Database) -> ManifestReport:
    """Rebuild the manifest of every recording that has one in the audit log and compare (each of
    its manifests, should it have several); count the recordings that ended without one."""
    mismatches: list[ManifestMismatch] = []
    checked = 0
    manifests = db.execute(
        "SELECT seq, subject, detail FROM audit_log WHERE action = ? ORDER BY seq", [AUDIT_ACTION_MANIFEST]
    ).fetchall()
    for seq, subject, detail in manifests:
        checked += 1
        recording_id = str(subject)
        try:
            kept = json.loads(str(detail))
            call_id = str(kept["recording"]["call_id"])
        except (ValueError, TypeError, KeyError):
            mismatches.append(
                ManifestMismatch(recording_id=recording_id, call_id="", seq=int(seq), parts=("manifest",))
            )
            continue
        parts = _differences(kept, _evidence(db, recording_id, call_id))
        if parts:
            mismatches.append(
                ManifestMismatch(recording_id=recording_id, call_id=call_id, seq=int(seq), parts=parts)
            )
    (without,) = db.execute(
        "SELECT count(*) FROM recordings r WHERE r.finished_at IS NOT NULL AND NOT EXISTS ("
        "SELECT 1 FROM audit_log a WHERE a.action = ? AND a.subject = r.id)",
        [AUDIT_ACTION_MANIFEST],
    ).fetchone()
    return ManifestReport(checked=checked, without_manifest=int(without), mismatches=tuple(mismatches))
