"""The ``callherald recordings`` commands: list, show, export and erase the recordings of the evidence
record, erase those past their retention, and put them on legal hold and release them.

Each command works on one data directory (``callherald.layout.DataLayout``): the evidence database
says which recordings exist and what happened on their calls; the encrypted files lie under
``recordings/``; the wrapped data keys are in the evidence database (``SqliteKeyStore``).

``export`` is the only place where audio leaves its encryption. Its contract:

* the whole file is authenticated (``SegmentReader.status``) and the SHA-256 of its audio compared
  with the one the evidence record holds *before* a byte of audio is written, so a tampered,
  substituted or foreign file yields no output at all; a recording recovered after a crash has no
  audio SHA-256 (the proxy cannot decrypt) but the SHA-256 of its file as recovered, compared
  before any key is used (``_check_file_sha256``);
* the plaintext goes to ``--out`` and nowhere else: WAV is written by this process, FLAC by ffmpeg
  reading from a pipe; the output is created mode 0600 (it is personal data, GDPR Art. 32) and an
  existing file is replaced only with ``force``, by renaming a new file over it once written (so
  it is never written through a symlink, nor keeps an old file's mode);
* a truncated recording exports its intact, authentic part and says so, but never less than the
  evidence record says was kept (``_check_against_record``);
* every export is appended to the hash-chained audit log (actor ``cli`` and the operating-system
  user who ran it, action ``export``, the record's state and whether the export is partial;
  accountability, GDPR Art. 5(2)); an export that cannot be audited is removed again. An attempt
  on a recording that is refused (a wrong passphrase, a key that is not a recipient, a file that
  fails verification) is audited too, as ``export_refused`` with the reason.

``erase`` crypto-shreds a recording: its wrapped keys are destroyed (``SqliteKeyStore.destroy``,
the write-ahead log checkpointed) in the transaction that marks the recording erased, adds an
``erasure`` later event to its call and an ``erase`` row (with the operating-system user) to the
audit log; then its encrypted file is removed, unless the recording was made on write-once (WORM)
storage (``recording.worm``), which refuses that: the file stays, and no key can decrypt it
(crypto-shredding, as for any backup copy). The evidence record of the call stays (GDPR Art.
17(3)(e), 5(2)). It erases one recording by id, or, for a data subject's request (Art. 17), every
recording of a call or of every call from or to a number (``Selection``). ``expire`` does that,
reason ``retention expired``, for every recording whose own purposes (those it served, of its
call's) all have a delete-after date before today (UTC): storage limitation, Art. 5(1)(e).

``hold`` puts recordings on legal hold (kept for legal claims, Art. 17(3)(e)) and ``release`` ends
the hold; both are later events of the call and rows of the audit log. A held recording is not
erased: the evidence store refuses it (``erase`` reports that), and ``expire`` keeps it and says so.

A command on several recordings goes on past a recording it is refused (reported on stderr, exit
1 at the end) and skips, saying so, one for which it is done already (erased, held, not held);
it ends with a total. One recording named by id exits 1 on any refusal.

Exit codes of every command: 0 done; 1 the data refuses (unknown recording, missing, erased,
tampered or substituted file, a key that is not a recipient, the audit log not writable); 2 the
invocation is wrong (bad value, unreadable key file, wrong passphrase, no terminal to ask for one,
``--out`` exists, ffmpeg missing).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import enum
import getpass
import hashlib
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import uuid
import wave
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from announcements.decode import pydub_ffmpeg
from callherald.command import PASSPHRASE_ENV, CommandError, ExitCode
from callherald.layout import DataLayout
from proxy.rtp.g711 import alaw_decode, ulaw_decode
from storage.crypto import (
    KeyFileError,
    KeyNotFoundError,
    KeyStoreError,
    NotARecipientError,
    RecordingIntegrityError,
    StorageError,
    TruncatedRecordingError,
    WrongPassphraseError,
    key_id,
)
from storage.keys import load_private_key, parse_public_key
from storage.recording_state import recovery_fault
from storage.records import (
    EvidenceStore,
    InvariantError,
    LegalHold,
    LegalHoldRelease,
    MediaQuality,
    NotFoundError,
    RecordedPurpose,
    RecordingErasure,
    RecordingRecord,
    RecordingState,
    TimelineEvent,
    TimelineKind,
    UnreadableRecordError,
    erasure_refusal,
    write_recording_erasure,
)
from storage.segments import (
    CODEC_PCM_ALAW,
    CODEC_PCM_MULAW,
    CODEC_PCM_S16LE,
    AudioFormat,
    RecordingStatus,
    SegmentReader,
    read_header,
)
from storage.sqlite_keys import SqliteKeyStore

__all__ = [
    "AUDIT_ACTION_EXPORT",
    "AUDIT_ACTOR",
    "PASSPHRASE_ENV",
    "CommandError",
    "Container",
    "ExitCode",
    "ExportResult",
    "Selection",
    "erase_recordings",
    "expire_recordings",
    "export_recording",
    "hold_recordings",
    "list_recordings",
    "media_quality_text",
    "parse_utc_time",
    "recording_json",
    "recordings_table",
    "release_recordings",
    "show_recording",
    "timeline_json",
    "timeline_table",
]

AUDIT_ACTOR = "cli"
AUDIT_ACTION_EXPORT = "export"
AUDIT_ACTION_EXPORT_REFUSED = "export_refused"
RETENTION_EXPIRED = "retention expired"
_FLAC_SUFFIX = ".flac"
_WAV_SUFFIX = ".wav"
_WAV_SAMPLE_WIDTH_BYTES = 2
_PUBLIC_KEY_MAX_BYTES = 64 * 1024
"""A larger file given as ``--key`` is not taken for a public key (one is a few hundred bytes)."""


def audit_actor() -> str:
    """Who runs this command, for the audit log: ``cli`` and the operating-system user (by the
    process's user id, not by environment variables a user can set)."""
    uid = os.getuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = "?"
    return f"{AUDIT_ACTOR} (user {name}, uid {uid})"


def _refused(message: str) -> CommandError:
    return CommandError(message, exit_code=ExitCode.REFUSED)


def _usage(message: str) -> CommandError:
    return CommandError(message, exit_code=ExitCode.USAGE)


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


# --------------------------------------------------------------------------------------------------
# Values to text and JSON


def parse_utc_time(text: str) -> dt.datetime:
    """An ISO 8601 date or time; one without an offset is taken as UTC. ValueError if unparsable."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 date or time: {text!r}") from None
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _json_value(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {str(key): _json_value(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [_json_value(item) for item in value]
    if isinstance(value, RecordedPurpose):  # one flat object: the definition, its version, the date
        return {
            **_json_value(value.purpose),
            "version": value.version,
            "delete_after": value.delete_after.isoformat(),
        }
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: _json_value(getattr(value, field.name)) for field in dataclasses.fields(value)}
    return value


def recording_json(record: RecordingRecord) -> dict[str, Any]:
    """Every field of ``record``: datetimes ISO 8601 in UTC (``+00:00``), UUIDs and enums as strings."""
    return {field.name: _json_value(getattr(record, field.name)) for field in dataclasses.fields(record)}


def timeline_json(events: Sequence[TimelineEvent]) -> list[dict[str, Any]]:
    """The timeline as JSON objects (``at``, ``kind``, ``leg_id``, ``recording_id``, ``detail``)."""
    return [
        {field.name: _json_value(getattr(event, field.name)) for field in dataclasses.fields(event)}
        for event in events
    ]


def _dumps(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _time(value: dt.datetime | None) -> str:
    return "-" if value is None else value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _precise_time(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _duration(milliseconds: int | None) -> str:
    if milliseconds is None:
        return "-"
    minutes, seconds = divmod(round(milliseconds / 1000), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"


def _size(size_bytes: int | None) -> str:
    if size_bytes is None:
        return "-"
    if size_bytes < 1024:
        return f"{size_bytes} B"
    value, unit = size_bytes / 1024, "KiB"
    for larger in ("MiB", "GiB"):
        if value < 1024:
            break
        value, unit = value / 1024, larger
    return f"{value:.1f} {unit}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [header, *rows]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


_LIST_HEADER = (
    "recording",
    "call",
    "direction",
    "calling",
    "called",
    "started (UTC)",
    "duration",
    "state",
    "size",
    "legal hold",
)


def recordings_table(records: Sequence[RecordingRecord]) -> str:
    """One line per recording under a header line; columns as ``_LIST_HEADER``."""
    rows = [
        (
            str(record.recording_id),
            record.call_id,
            record.direction.value,
            record.calling,
            record.called,
            _time(record.started_at),
            _duration(record.duration_ms),
            _state(record),
            _size(record.size_bytes),
            "-" if record.held_at is None else f"since {_time(record.held_at)} UTC ({record.hold_reason})",
        )
        for record in records
    ]
    return _table(_LIST_HEADER, rows)


def _state(record: RecordingRecord) -> str:
    """The recording's state, and whether recovery found its file corrupt or unreadable."""
    fault = recovery_fault(record.end_reason)
    return record.state.value if fault is None else f"{record.state.value} ({fault} file)"


def manifest_text(record: RecordingRecord) -> str:
    """Where the recording's manifest is and who signed it: ``audit row N, signed by key ID``;
    ``-`` while it runs."""
    if record.manifest_seq is None:
        return "-"
    signed = f"signed by key {record.manifest_key_id}" if record.manifest_signature else "not signed"
    return f"audit row {record.manifest_seq}, {signed} (callherald audit verify checks it)"


def storage_text(record: RecordingRecord) -> str:
    """Where the recording's file is kept and on what: ``region EU (own rack), write-once (WORM)``;
    ``not recorded`` for a recording stored before callherald kept it."""
    if record.worm is None:
        return "not recorded"
    region = f"region {record.storage_region}" if record.storage_region else "region not stated"
    return f"{region}, {'write-once (WORM)' if record.worm else 'rewritable'}"


def media_quality_text(record: RecordingRecord) -> str:
    """What the network cost the recording's audio, per channel, for a reader: ``clean`` when
    nothing of either channel was lost, dropped or moved; ``not measured`` for a recording closed
    by the recovery after a crash or stored before callherald kept it; ``-`` while it runs."""
    quality: MediaQuality | None = record.media_quality
    if quality is None:
        return "-" if record.finished_at is None else "not measured"
    return quality.describe()


def _facts(record: RecordingRecord) -> str:
    fault = recovery_fault(record.end_reason)
    state = _state(record)
    if fault is not None:
        state += ": found so after a crash, which never leaves a file so: tampering or a disk fault"
    facts = [
        ("recording", str(record.recording_id)),
        ("call", record.call_id),
        ("direction", record.direction.value),
        ("calling", record.calling),
        ("called", record.called),
        ("state", state),
        ("started (UTC)", _precise_time(record.started_at)),
        ("first frame (UTC)", _precise_time(record.first_frame_at)),
        ("finished (UTC)", "-" if record.finished_at is None else _precise_time(record.finished_at)),
        ("end reason", record.end_reason or "-"),
        ("duration", _duration(record.duration_ms)),
        (
            "size",
            "-" if record.size_bytes is None else f"{_size(record.size_bytes)} ({record.size_bytes} bytes)",
        ),
        ("media quality", media_quality_text(record)),
        ("audio sha256", record.audio_sha256 or "-"),
        *(
            [("file sha256", f"{record.file_sha256} (as recovered after a crash)")]
            if record.file_sha256
            else []
        ),
        ("key ids" if len(record.key_id) > 1 else "key id", ", ".join(record.key_id)),
        ("storage", storage_text(record)),
        ("file", record.file_name),
        ("manifest", manifest_text(record)),
    ]
    if record.erased_at is not None:
        facts += [
            ("erased (UTC)", _precise_time(record.erased_at)),
            ("erased by", record.erased_by or "-"),
            ("erasure reason", record.erasure_reason or "-"),
        ]
    if record.held_at is not None:
        facts += [
            ("legal hold (UTC)", f"since {_precise_time(record.held_at)}"),
            ("held by", record.held_by or "-"),
            ("hold reason", record.hold_reason or "-"),
        ]
    # One line per purpose the recording serves, the first beside the name.
    purposes = [_purpose(purpose) for purpose in record.purposes] or ["-"]
    facts += [("purposes", purposes[0]), *(("", line) for line in purposes[1:])]
    width = max(len(name) for name, _ in facts)
    return "\n".join(f"{(name + ':') if name else '':<{width + 1}}  {value}" for name, value in facts)


def _purpose(recorded: RecordedPurpose) -> str:
    purpose = recorded.purpose
    reference = f" ({purpose.reference})" if purpose.reference else ""
    return (
        f"{purpose.purpose_id}: {purpose.lawful_basis.value}{reference}, "
        f"delete after {recorded.delete_after.isoformat()}"
    )


_EVENT_LABELS = {
    TimelineKind.CALL_SETUP: "call set-up",
    TimelineKind.ANNOUNCEMENT_START: "announcement start",
    TimelineKind.ANNOUNCEMENT_END: "announcement end",
    TimelineKind.DTMF: "digit",
    TimelineKind.CONSENT: "consent",
    TimelineKind.NOT_RECORDED: "not recorded",
    TimelineKind.RECORDING_START: "recording start",
    TimelineKind.FIRST_FRAME: "first frame",
    TimelineKind.AGENT_INFORMED: "agent informed",
    TimelineKind.PAUSE_START: "pause start",
    TimelineKind.PAUSE_END: "pause end",
    TimelineKind.RECORDING_END: "recording end",
    TimelineKind.CALL_END: "call end",
    TimelineKind.LATER_EVENT: "later event",
}


def _event_details(event: TimelineEvent) -> str:
    detail = event.detail
    match event.kind:
        case TimelineKind.CALL_SETUP:
            agent = detail.get("agent_id")
            parties = f"{detail['direction']} {detail['calling']} -> {detail['called']}"
            return f"{parties}, line {detail['local_line']}" + (f", agent {agent}" if agent else "")
        case TimelineKind.ANNOUNCEMENT_START:
            return (
                f"prompt {detail['prompt_id']} version {detail['version']} ({detail['language']}), "
                f"sha256 {detail['audio_sha256']}"
            )
        case TimelineKind.ANNOUNCEMENT_END:
            if detail.get("failure"):
                played = f"failed ({detail['failure']})"
            else:
                played = "played to the end" if detail.get("complete") else "cut off"
            version = f" version {detail['version']}" if detail["version"] else ""  # none: never loaded
            return f"prompt {detail['prompt_id']}{version} ({detail['language']}) {played}"
        case TimelineKind.AGENT_INFORMED:
            if detail.get("failure"):
                played = f"failed ({detail['failure']})"
            else:
                played = "played to the end" if detail.get("complete") else "cut off"
            if detail["kind"] == "tone":
                heard = f"tone {detail['name']}"
            else:
                heard = (
                    f"prompt {detail['name']} version {detail['version']} ({detail['language']}), "
                    f"sha256 {detail['audio_sha256']}"
                )
            if detail["ended_at"] is None:  # its call still runs, or the proxy stopped since
                return f"{heard}, no end stored yet"
            return f"{heard} until {_precise_time(detail['ended_at'])}, {played}"
        case TimelineKind.DTMF:
            # Only an in-band key was ever audio to mask; RFC 4733 events and SIP INFO never are.
            masked = "masked, " if detail["mechanism"] == "inband" else ""
            counted = "" if detail.get("counted") else f" ({masked}not counted)"
            return f"{detail['digit']} via {detail['mechanism']}{counted}"
        case TimelineKind.CONSENT:
            # A decision without a key press (no answer, a failed question) has no mechanism.
            mechanism = detail.get("mechanism")
            how = f", {mechanism}" if mechanism and mechanism != "none" else ""
            return (
                f"{detail['decision']} for purpose {detail['purpose_id']} (question {detail['question_id']} "
                f"version {detail['question_version']}{how})"
            )
        case TimelineKind.RECORDING_START:
            keys = detail["key_id"]
            return f"file {detail['file_name']}, key id{'s' if len(keys) > 1 else ''} {', '.join(keys)}"
        case TimelineKind.PAUSE_START | TimelineKind.PAUSE_END | TimelineKind.NOT_RECORDED:
            return f"reason {detail['reason']}"
        case TimelineKind.RECORDING_END:
            reason = f" ({detail['end_reason']})" if detail.get("end_reason") else ""
            file_sha256 = f", file sha256 {detail['file_sha256']}" if detail.get("file_sha256") else ""
            measured = detail.get("media_quality")
            quality = ""
            if measured is not None:
                quality = f", media quality {MediaQuality.from_plain(measured).describe()}"
            return (
                f"{detail['state']}{reason}, {_duration(detail.get('duration_ms'))}, "
                f"{_size(detail.get('size_bytes'))}, sha256 {detail.get('audio_sha256') or '-'}{file_sha256}"
                f"{quality}"
            )
        case TimelineKind.CALL_END:
            return f"reason {detail.get('end_reason') or '-'}"
        case TimelineKind.LATER_EVENT:
            rest = ", ".join(
                f"{key} {value}" for key, value in detail.items() if key not in ("kind", "actor")
            )
            return f"{detail['kind']} by {detail['actor']}" + (f": {rest}" if rest else "")
        case _:
            return ", ".join(f"{key} {value}" for key, value in detail.items())


def timeline_table(events: Sequence[TimelineEvent], *, recording_id: uuid.UUID | None = None) -> str:
    """The call's timeline, one line per event; events of another recording of the call name it."""
    rows = []
    for event in events:
        details = _event_details(event)
        if event.recording_id is not None and event.recording_id != recording_id:
            details = f"recording {event.recording_id}" + (f": {details}" if details else "")
        rows.append((_precise_time(event.at), _EVENT_LABELS[event.kind], event.leg_id or "", details))
    return _table(("time (UTC)", "event", "leg", "details"), rows)


# --------------------------------------------------------------------------------------------------
# The evidence database


@contextlib.contextmanager
def _evidence(layout: DataLayout, *, read_only: bool = False) -> Iterator[EvidenceStore | None]:
    """The evidence store of ``layout``, or None when no database exists yet (nothing recorded).

    A missing database is not created. ``read_only`` for the commands that only read, so that they
    work on a read-only copy or mount; those that write (export appends to the audit log) are
    refused there, and say why.
    """
    if not layout.evidence_db.exists():
        yield None
        return
    try:
        store = EvidenceStore(layout.evidence_db, read_only=read_only)
    except StorageError as error:
        raise _refused(str(error)) from error
    try:
        yield store
    except UnreadableRecordError as error:
        raise _refused(str(error)) from error
    finally:
        store.close()


def _recording_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise _usage(f"not a recording id (a UUID): {text!r}") from None


def _find(store: EvidenceStore | None, recording_id: uuid.UUID, layout: DataLayout) -> RecordingRecord:
    # EvidenceStore has no lookup by id: the list of all recordings is filtered here.
    found = [] if store is None else [r for r in store.recordings_list() if r.recording_id == recording_id]
    if not found:
        raise _refused(f"no recording {recording_id} in the evidence record ({layout.evidence_db})")
    return found[0]


def _report(error: CommandError) -> int:
    print(f"callherald recordings: {error}", file=sys.stderr)
    return int(error.exit_code)


# --------------------------------------------------------------------------------------------------
# list and show


def list_recordings(
    layout: DataLayout,
    *,
    number: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    state: RecordingState | None = None,
    limit: int | None = None,
    as_json: bool = False,
) -> int:
    """Print the recordings by start time (``since <= started < until``, number as caller or callee)."""
    try:
        with _evidence(layout, read_only=True) as store:
            if store is None:  # a wrong directory or a data_dir typo, not an empty record
                raise _refused(f"no evidence database at {layout.evidence_db}")
            records = store.recordings_list(number=number, since=since, until=until, state=state, limit=limit)
    except CommandError as error:
        return _report(error)
    if as_json:
        print(_dumps([recording_json(record) for record in records]))
    elif records:
        print(recordings_table(records))
    else:
        print("no recordings")
    return ExitCode.OK


def show_recording(layout: DataLayout, recording_id: str, *, as_json: bool = False) -> int:
    """Print one recording's facts and the evidence timeline of its call."""
    try:
        rid = _recording_id(recording_id)
        with _evidence(layout, read_only=True) as store:
            record = _find(store, rid, layout)
            assert store is not None
            try:
                events = store.call_timeline(record.call_id)
            except NotFoundError as error:
                raise _refused(str(error)) from error
    except CommandError as error:
        return _report(error)
    if as_json:
        print(_dumps({"recording": recording_json(record), "timeline": timeline_json(events)}))
    else:
        print(_facts(record))
        print()
        print(f"timeline of call {record.call_id}:")
        print(timeline_table(events, recording_id=rid))
    return ExitCode.OK


# --------------------------------------------------------------------------------------------------
# export


class Container(enum.StrEnum):
    WAV = "wav"
    FLAC = "flac"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportResult:
    """What ``export`` wrote: the intact audio of the recording, authenticated and hash-checked."""

    recording_id: uuid.UUID
    out: Path
    container: Container
    key_id: str
    status: RecordingStatus
    audio_sha256: str
    """SHA-256 of the decrypted audio, as checked against the evidence record."""
    record_state: RecordingState
    """The evidence record's state: ``recording`` while callherald still writes the file."""


def _read_passphrase(key_path: Path) -> str:
    """The passphrase of ``key_path``: ``PASSPHRASE_ENV``, else asked on the terminal."""
    passphrase = os.environ.get(PASSPHRASE_ENV)
    if passphrase:
        return passphrase
    if not sys.stdin.isatty():
        raise _usage(f"no terminal to ask for the passphrase of {key_path}: set {PASSPHRASE_ENV}")
    return getpass.getpass(f"Passphrase for {key_path}: ")


def _private_key(layout: DataLayout, key_path: Path | None) -> X25519PrivateKey:
    """The private key to open recordings with: ``key_path``, else the development key."""
    if key_path is None:
        development = layout.development_key
        if not development.private.exists():
            raise _usage(f"no --key given and no development key at {development.private}")
        _warn(
            f"using the development key {development.private}: its passphrase lies next to it, "
            "so it protects nothing; configure recording.recipients for real recordings"
        )
        key_path = development.private
        passphrase = (
            development.read_passphrase() if development.passphrase.exists() else _read_passphrase(key_path)
        )
    else:
        if not key_path.is_file():
            raise _usage(f"no private key file at {key_path}")
        if _is_public_key(key_path):  # the recipient file given to the proxy, which opens nothing
            private = key_path.with_suffix(".key")
            which = private if private.is_file() else "the NAME.key made with it by callherald keys generate"
            raise _usage(f"{key_path} is a public key: give the private key file ({which})")
        mode = stat.S_IMODE(key_path.stat().st_mode)
        if mode & 0o077:  # the passphrase is then all that stands between others and every recording
            _warn(f"the private key {key_path} is open to other users (mode {mode:04o}): chmod 600 it")
        passphrase = _read_passphrase(key_path)
    try:
        return load_private_key(key_path, passphrase)
    except WrongPassphraseError:
        raise _usage(f"wrong passphrase for {key_path}") from None
    except (KeyFileError, ValueError, OSError) as error:
        raise _usage(f"cannot read the private key {key_path}: {error}") from error


def _is_public_key(path: Path) -> bool:
    """Whether the file at ``path`` holds a public key (PEM or base64), as a recipient file does."""
    try:
        with path.open("rb") as file:
            data = file.read(_PUBLIC_KEY_MAX_BYTES + 1)
    except OSError:
        return False  # reading it as a private key says why
    if len(data) > _PUBLIC_KEY_MAX_BYTES:
        return False
    try:
        parse_public_key(data)
    except KeyFileError:
        return False
    return True


def _recording_file(layout: DataLayout, record: RecordingRecord) -> Path:
    """Where the recording's file is, from a stored name that must be a plain file name."""
    name = record.file_name
    if Path(name).name != name or name in ("", ".", ".."):
        raise _refused(f"recording {record.recording_id}: stored file name {name!r} is not a plain file name")
    return layout.recordings_dir / name


def _recording_path(layout: DataLayout, record: RecordingRecord) -> Path:
    path = _recording_file(layout, record)
    if not path.is_file():
        raise _refused(f"recording {record.recording_id}: its file {path} is missing")
    return path


def _check_file_sha256(path: Path, record: RecordingRecord) -> None:
    """Refuse a recording recovered after a crash whose file is not the one recovery found.

    Recovery cannot decrypt, so it pins the SHA-256 of the file instead of the audio's
    (``file_sha256``): anyone holding a recipient's public key can seal new audio under the same
    header and wrap a new data key for it, which authenticates; only this hash tells it apart.
    """
    expected = record.file_sha256.lower()
    if not expected:
        return
    try:
        with path.open("rb") as file:
            actual = hashlib.file_digest(file, "sha256").hexdigest()
    except OSError as error:
        raise _refused(f"recording {record.recording_id}: cannot read its file {path}: {error}") from error
    if actual != expected:
        raise _refused(
            f"recording {record.recording_id}: its file's SHA-256 {actual} does not match the evidence "
            f"record's {expected}, pinned when it was recovered after a crash: the file was replaced or "
            "altered since; nothing exported"
        )


def _check_audio_sha256(reader: SegmentReader, record: RecordingRecord) -> str:
    """Decrypt every segment and compare the audio's SHA-256 with the evidence record's.

    The recorder stores the SHA-256 of the plaintext it sealed (interleaved samples as stored), so
    a match proves this is exactly the audio recorded for this call; a recording substituted from
    elsewhere is authentic to its own key but does not match. A recording recovered after a crash
    has no such hash (the proxy cannot decrypt), and one still being written has none yet: then
    only the per-segment authentication vouches for it, which is said on stderr.
    """
    digest = hashlib.sha256()
    for chunk in reader:
        digest.update(chunk)
    actual = digest.hexdigest()
    expected = (record.audio_sha256 or "").lower()
    if not expected and record.file_sha256:  # checked by ``_check_file_sha256``
        _warn(
            f"recording {record.recording_id} was recovered after a crash: the evidence record holds no "
            "audio SHA-256 for it, but the SHA-256 of its file, which matches"
        )
        return actual
    if not expected:
        why = (
            "it is still being recorded: callherald stores it when the recording ends"
            if record.state is RecordingState.RECORDING
            else f"state {record.state.value}; a recording recovered after a crash has none"
        )
        _warn(
            f"the evidence record holds no audio SHA-256 for recording {record.recording_id} ({why}): "
            "every segment is authenticated, but the audio cannot be matched against the record"
        )
        return actual
    if actual != expected:
        raise _refused(
            f"recording {record.recording_id}: the decrypted audio's SHA-256 {actual} does not match the "
            f"evidence record's {expected}: this is not the audio the recorder wrote; nothing exported"
        )
    return actual


def _check_against_record(status: RecordingStatus, record: RecordingRecord) -> None:
    """Refuse a file that holds less than the evidence record says was kept.

    A recording recovered after a crash has no audio SHA-256 (``_check_audio_sha256``), so the
    size, duration and state the record pinned when it was closed are what vouch for its length:
    every segment left is authentic, but sealed segments cut off the end later would otherwise pass
    as a crash's truncation. The final segment carries no audio, so a complete recording cut just
    before it passes the SHA-256 check too. A recording still being written has pinned nothing yet.
    """
    if record.state is RecordingState.RECORDING:
        return
    kept = (
        f"{record.size_bytes if record.size_bytes is not None else '-'} bytes, {_seconds(record.duration_ms)}"
    )
    holds = f"{status.intact_bytes} bytes, {status.duration_s:.3f} s in {status.segments} segments"
    if record.state is RecordingState.COMPLETE and not status.complete:
        problem = f"the evidence record says it is complete ({kept}), but the file has no final segment"
    elif (record.size_bytes is not None and status.intact_bytes < record.size_bytes) or (
        record.duration_ms is not None and round(status.duration_s * 1000) < record.duration_ms
    ):
        problem = f"the evidence record says {kept} were kept"
    else:
        return
    raise _refused(
        f"recording {record.recording_id}: its file holds {holds} intact; {problem}: "
        "sealed segments were cut off; nothing exported"
    )


def _seconds(milliseconds: int | None) -> str:
    return "-" if milliseconds is None else f"{milliseconds / 1000:.3f} s"


def _pcm16(chunk: bytes, audio_format: AudioFormat) -> bytes:
    """Interleaved 16-bit little-endian samples of one segment."""
    if audio_format.codec == CODEC_PCM_S16LE:
        return chunk
    if audio_format.codec == CODEC_PCM_MULAW:
        return ulaw_decode(chunk).astype("<i2").tobytes()
    if audio_format.codec == CODEC_PCM_ALAW:
        return alaw_decode(chunk).astype("<i2").tobytes()
    raise _refused(f"recording codec {audio_format.codec} cannot be exported")


def _create_output(out: Path, *, force: bool) -> tuple[int, Path]:
    """A new file, mode 0600 (plaintext audio is personal data), to write the export into, and its path.

    Without ``force`` that is ``out`` itself, which must not exist. With ``force`` it is a hidden
    temporary file beside ``out``, renamed over it once written (``_publish``): an existing ``out``
    keeps its content until then and never lends its mode, and a symlink at ``out`` is replaced,
    not written through.
    """
    try:
        if force:
            fd, temporary = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
            return fd, Path(temporary)
        return os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), out
    except FileExistsError:
        raise _usage(f"{out} exists already; pass --force to replace it") from None
    except OSError as error:
        raise _usage(f"cannot create {out}: {error.strerror or error}") from error


def _publish(written: Path, out: Path) -> None:
    """Put the finished export at ``out`` (a rename within one directory: all or nothing)."""
    if written != out:
        os.replace(written, out)


def _write_wav(fd: int, reader: SegmentReader) -> None:
    audio_format = reader.audio_format
    with os.fdopen(fd, "wb") as stream, wave.open(stream, "wb") as out:
        out.setnchannels(audio_format.channels)
        out.setsampwidth(_WAV_SAMPLE_WIDTH_BYTES)
        out.setframerate(audio_format.sample_rate_hz)
        for chunk in reader:
            out.writeframes(_pcm16(chunk, audio_format))


def _ffmpeg_flac_command(ffmpeg: str, audio_format: AudioFormat, out: Path) -> list[str]:
    return [
        ffmpeg,
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-protocol_whitelist",
        "pipe,file",
        "-f",
        "s16le",
        "-ar",
        str(audio_format.sample_rate_hz),
        "-ac",
        str(audio_format.channels),
        "-i",
        "pipe:0",
        "-c:a",
        "flac",
        "-f",
        "flac",
        "-y",  # writes into the empty 0600 file made by _create_output (its mode stays)
        f"file:{out.resolve()}",
    ]


def _write_flac(ffmpeg: str, into: Path, reader: SegmentReader, *, out: Path) -> None:
    """Encode with ffmpeg from a pipe into ``into`` (the file that becomes ``out``): the plaintext
    exists only in memory and in that file."""
    audio_format = reader.audio_format
    command = _ffmpeg_flac_command(ffmpeg, audio_format, into)
    with subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    ) as process:
        assert process.stdin is not None
        assert process.stderr is not None
        stdin = process.stdin
        try:
            for chunk in reader:
                stdin.write(_pcm16(chunk, audio_format))
        except BrokenPipeError:
            pass  # ffmpeg stopped early; its exit status and message say why
        except BaseException:
            process.kill()
            raise
        finally:
            with contextlib.suppress(BrokenPipeError):
                stdin.close()
        message = process.stderr.read().decode("utf-8", errors="replace").strip()
        code = process.wait()
    if code != 0:
        raise _refused(f"ffmpeg could not write {out}: {message[-300:] or f'exit status {code}'}")


def _open_reader(
    path: Path,
    record: RecordingRecord,
    private_key: X25519PrivateKey,
    store: EvidenceStore,
    *,
    development: bool,
) -> SegmentReader:
    rid = record.recording_id
    try:
        # The header names the recording the file holds: one that names another (in the record or
        # not) was swapped or altered, which is said before keys are looked up by that id.
        held = read_header(path).recording_id
        if held != rid:
            raise _refused(
                f"{path} holds recording {held}, not {rid}: the file was swapped; nothing exported"
            )
        reader = SegmentReader(
            path, private_key=private_key, key_store=SqliteKeyStore(store), allow_truncated=True
        )
    except TruncatedRecordingError as error:
        raise _refused(f"recording {rid} holds no audio: {error}") from error
    except NotARecipientError as error:
        own = key_id(private_key.public_key())
        if own in record.key_id:  # the record says it was wrapped for this key
            raise _refused(_keys_removed(record, f"its wrapped key for key {own} is missing")) from error
        hint = "; pass --key with a recipient's private key" if development else ""
        raise _refused(f"{error}{hint}") from error
    except KeyNotFoundError as error:  # not erased (``_export`` refused that): removed by hand
        raise _refused(_keys_removed(record, "no wrapped key is stored for it")) from error
    except (RecordingIntegrityError, KeyStoreError) as error:
        raise _refused(f"recording {rid} failed verification: {error}") from error
    return reader


def _keys_removed(record: RecordingRecord, what: str) -> str:
    """A recording the record shows not erased whose wrapped keys are gone: removed outside
    callherald, with no erasure in the record (``audit verify`` names every such recording)."""
    return (
        f"recording {record.recording_id}: {what}, although the evidence record shows no erasure: "
        f"removed outside callherald (the record lists key ids {', '.join(record.key_id)}); nothing exported"
    )


def _export(
    layout: DataLayout, rid: uuid.UUID, *, out: Path, key_path: Path | None, force: bool
) -> ExportResult:
    suffix = out.suffix.lower()
    if suffix not in (_WAV_SUFFIX, _FLAC_SUFFIX):
        raise _usage(f"{out}: name the file .wav or .flac, the formats export writes")
    container = Container.FLAC if suffix == _FLAC_SUFFIX else Container.WAV
    if out.is_dir():
        raise _usage(f"{out} is a directory")
    if out.exists() and not force:
        raise _usage(f"{out} exists already; pass --force to replace it")
    ffmpeg = ""
    if container is Container.FLAC:
        ffmpeg = pydub_ffmpeg()
        if shutil.which(ffmpeg) is None:
            raise _usage(f"FLAC needs ffmpeg, which is not installed (no {ffmpeg!r}); export to .wav instead")
    with _evidence(layout) as store:
        record = _find(store, rid, layout)
        assert store is not None
        try:
            if record.erased_at is not None:
                raise _refused(f"{_erased(record)}: its keys and file are gone; nothing exported")
            path = _recording_path(layout, record)
            _check_file_sha256(path, record)
            fault = recovery_fault(record.end_reason)
            if fault is not None:
                _warn(f"recording {rid}: recovery found its file {fault} after a crash ({record.end_reason})")
            private_key = _private_key(layout, key_path)
            reader = _open_reader(path, record, private_key, store, development=key_path is None)
            try:
                status = reader.status  # authenticates every segment; raises on anything but truncation
            except RecordingIntegrityError as error:
                raise _refused(f"recording {rid} failed verification: {error}; nothing exported") from error
            audio_sha256 = _check_audio_sha256(reader, record)
            _check_against_record(status, record)
        except CommandError as refusal:
            _audit_refusal(store, rid, record, key_path, refusal)
            raise
        if record.state is RecordingState.RECORDING:
            _warn(f"recording {rid} is still being written: exporting what is on disk now")
        fd, written = _create_output(out, force=force)
        try:
            if container is Container.FLAC:
                os.close(fd)
                _write_flac(ffmpeg, written, reader, out=out)
            else:
                _write_wav(fd, reader)
            _publish(written, out)
        except BaseException as error:
            written.unlink(missing_ok=True)
            if isinstance(error, RecordingIntegrityError):  # the file changed since it was verified
                raise _refused(f"recording {rid} failed verification: {error}; nothing exported") from error
            if isinstance(error, OSError):
                raise _usage(f"cannot write {out}: {error.strerror or error}") from error
            raise
        result = ExportResult(
            recording_id=rid,
            out=out,
            container=container,
            key_id=key_id(private_key.public_key()),
            status=status,
            audio_sha256=audio_sha256,
            record_state=record.state,
        )
        try:
            _audit(
                store,
                AUDIT_ACTION_EXPORT,
                rid,
                {
                    "call_id": record.call_id,
                    "format": container.value,
                    "out": str(out.resolve()),
                    "key_id": result.key_id,
                    # The record's state when exported; a recording still being written is
                    # exported only as far as it is on disk now.
                    "state": record.state.value,
                    "partial": record.state is RecordingState.RECORDING,
                    "segments": status.segments,
                    "duration_ms": round(status.duration_s * 1000),
                    "audio_sha256": audio_sha256,
                },
            )
        except Exception as error:
            out.unlink(missing_ok=True)  # no export without its audit entry (GDPR Art. 5(2))
            raise _refused(
                f"the export could not be written to the audit log ({error}); {out} removed"
            ) from error
    return result


def _audit_refusal(
    store: EvidenceStore,
    rid: uuid.UUID,
    record: RecordingRecord,
    key_path: Path | None,
    refusal: CommandError,
) -> None:
    # An attempt on personal data that failed is accounted for as well (GDPR Art. 5(2), 32(1)(d)).
    try:
        _audit(
            store,
            AUDIT_ACTION_EXPORT_REFUSED,
            rid,
            {
                "call_id": record.call_id,
                "key": "development" if key_path is None else str(key_path.resolve()),
                "reason": str(refusal),
            },
        )
    except Exception as error:
        _warn(f"the refused export could not be written to the audit log ({error})")


def _audit(store: EvidenceStore, action: str, rid: uuid.UUID, detail: dict[str, object]) -> None:
    """Append ``action`` on recording ``rid`` by whoever runs this command to the audit log, now."""
    store.audit_append(
        at=dt.datetime.now(dt.UTC), actor=audit_actor(), action=action, subject=str(rid), detail=detail
    ).result()


def export_recording(
    layout: DataLayout, recording_id: str, *, out: Path, key_path: Path | None = None, force: bool = False
) -> int:
    """Decrypt, verify and write one recording to ``out`` (WAV, or FLAC for ``.flac``); see the module."""
    try:
        result = _export(layout, _recording_id(recording_id), out=out, key_path=key_path, force=force)
    except CommandError as error:
        return _report(error)
    status = result.status
    # A recording still being written was said so before export began; its file has no end yet.
    still_recording = result.record_state is RecordingState.RECORDING
    if not status.complete and not still_recording:
        print(
            f"callherald recordings: recording {result.recording_id} is truncated: exported its "
            f"{status.segments} intact segments ({status.duration_s:.3f} s); "
            f"{status.ignored_bytes} bytes of torn tail ignored",
            file=sys.stderr,
        )
    state = "so far" if still_recording else status.state.value
    print(
        f"wrote {result.out} ({result.container.value}, {status.duration_s:.3f} s, {state}, "
        f"key id {result.key_id})"
    )
    return ExitCode.OK


# --------------------------------------------------------------------------------------------------
# Selections of recordings


@dataclass(frozen=True, slots=True, kw_only=True)
class Selection:
    """The recordings a command acts on: one by id, every one of a call, or every one of the calls
    whose calling or called number is ``number`` (a whole number, matched as ``list --number``)."""

    recording_id: str | None = None
    call_id: str | None = None
    number: str | None = None

    def __post_init__(self) -> None:
        if sum(value is not None for value in (self.recording_id, self.call_id, self.number)) != 1:
            raise ValueError("select recordings by exactly one of: recording id, call, number")

    def __str__(self) -> str:
        if self.call_id is not None:
            return f"call {self.call_id}"
        if self.number is not None:
            return f"number {self.number}"
        return f"recording {self.recording_id}"


def _selected(store: EvidenceStore | None, layout: DataLayout, selection: Selection) -> list[RecordingRecord]:
    """The recordings of ``selection`` by start time; refused when there are none."""
    if selection.recording_id is not None:
        return [_find(store, _recording_id(selection.recording_id), layout)]
    if store is None:
        raise _refused(f"no evidence database at {layout.evidence_db}")
    records = store.recordings_list(call_id=selection.call_id, number=selection.number)
    if not records:
        raise _refused(f"no recordings of {selection} in the evidence record ({layout.evidence_db})")
    return records


def _recordings(count: int) -> str:
    return f"{count} recording" + ("" if count == 1 else "s")


def _for_each(
    layout: DataLayout,
    selection: Selection,
    act: Callable[[EvidenceStore, RecordingRecord], str],
    *,
    done_already: Callable[[RecordingRecord], str | None],
    done: str,
    read_only: bool = False,
) -> int:
    """``act`` on each recording of ``selection`` and print what it did (see the module): with
    several, a refusal does not stop the others, a recording ``done_already`` describes is skipped,
    and a total (how many were ``done``) follows."""
    acted = refused = skipped = 0
    try:
        with _evidence(layout, read_only=read_only) as store:
            records = _selected(store, layout, selection)
            assert store is not None
            if selection.recording_id is not None:
                print(act(store, records[0]))
                return ExitCode.OK
            for record in records:
                already = done_already(record)
                if already is not None:
                    print(f"{already}: skipped")
                    skipped += 1
                    continue
                try:
                    print(act(store, record))
                except CommandError as error:
                    _report(error)
                    refused += 1
                else:
                    acted += 1
    except CommandError as error:
        return _report(error)
    print(
        f"{acted} {done}, {refused} refused, {skipped} skipped, of {_recordings(len(records))} of {selection}"
    )
    return ExitCode.REFUSED if refused else ExitCode.OK


def _check_reason(reason: str, why: str) -> str:
    if not reason.strip():
        raise _usage(f"--reason must say why {why}")
    return reason.strip()


# --------------------------------------------------------------------------------------------------
# erase and expire


def _erased(record: RecordingRecord) -> str:
    at = "-" if record.erased_at is None else _precise_time(record.erased_at)
    return (
        f"recording {record.recording_id} was erased at {at} UTC by {record.erased_by} "
        f"({record.erasure_reason})"
    )


def _held(record: RecordingRecord) -> str:
    at = "-" if record.held_at is None else _precise_time(record.held_at)
    return f"on legal hold since {at} UTC by {record.held_by} ({record.hold_reason})"


def _erase(store: EvidenceStore, layout: DataLayout, record: RecordingRecord, *, reason: str) -> str:
    """Crypto-shred ``record`` (see the module) and remove its file, unless it is kept on write-once
    storage; what was done, as a line."""
    rid = record.recording_id
    if record.erased_at is not None:
        raise _refused(_erased(record))
    path = _recording_file(layout, record)
    now = dt.datetime.now(dt.UTC)
    erasure = RecordingErasure(recording_id=rid, at=now, actor=audit_actor(), reason=reason)
    try:
        SqliteKeyStore(store).destroy(rid, along=lambda db: write_recording_erasure(db, erasure))
    except (InvariantError, NotFoundError) as error:  # on hold, still being recorded, or erased meanwhile
        raise _refused(str(error)) from error
    erased = f"erased recording {rid} (call {record.call_id}): wrapped keys destroyed"
    if record.worm:
        # Write-once storage refuses the removal; without its keys the file is noise for good.
        return f"{erased}; its file {path} stays on the write-once storage, which no key can decrypt now"
    try:
        path.unlink()
    except FileNotFoundError:
        return f"{erased}; its file {path} was gone already"
    except OSError as error:
        raise _refused(
            f"recording {rid} is erased (its wrapped keys are destroyed, so {path} can no longer be "
            f"decrypted), but the file could not be removed: {error.strerror or error}; remove it by hand"
        ) from error
    return f"{erased}, {path} removed"


def _would_erase(record: RecordingRecord) -> str:
    """What ``_erase`` would do, as a line, or its refusal, in the words the evidence store refuses with."""
    if record.erased_at is not None:
        raise _refused(_erased(record))
    refusal = erasure_refusal(record)
    if refusal is not None:
        raise _refused(refusal)
    kept = ", leaving its file on the write-once storage" if record.worm else ""
    return f"would erase recording {record.recording_id} (call {record.call_id}){kept}"


def erase_recordings(layout: DataLayout, selection: Selection, *, reason: str, dry_run: bool = False) -> int:
    """Erase the recordings of ``selection`` for ``reason``: keys destroyed, files removed, each
    erasure recorded; ``dry_run`` only says what would be erased and what refused."""
    try:
        reason = _check_reason(reason, "the recording is erased")
    except CommandError as error:
        return _report(error)

    def act(store: EvidenceStore, record: RecordingRecord) -> str:
        return _would_erase(record) if dry_run else _erase(store, layout, record, reason=reason)

    return _for_each(
        layout,
        selection,
        act,
        done_already=lambda record: None if record.erased_at is None else _erased(record),
        done="would be erased" if dry_run else "erased",
        read_only=dry_run,
    )


def _delete_after(record: RecordingRecord) -> str:
    return ", ".join(f"{p.purpose.purpose_id} {p.delete_after.isoformat()}" for p in record.purposes)


def expire_recordings(layout: DataLayout, *, dry_run: bool = False) -> int:
    """Erase (or, ``dry_run``, list) every recording whose own purposes all have a delete-after
    date before today (UTC): a recording is kept while any purpose it serves still allows it, and
    while it is on legal hold."""
    today = dt.datetime.now(dt.UTC).date()
    failed = False
    try:
        with _evidence(layout, read_only=dry_run) as store:
            if store is None:
                raise _refused(f"no evidence database at {layout.evidence_db}")
            due = store.recordings_past_retention(today)
            for record in due:
                dates = f"delete after {_delete_after(record)}"
                which = f"recording {record.recording_id} (call {record.call_id}, {dates})"
                if record.held_at is not None:
                    print(f"{'would keep' if dry_run else 'kept'} {which}: {_held(record)}")
                    continue
                if dry_run:
                    refusal = erasure_refusal(record)
                    print(f"would not erase {which}: {refusal}" if refusal else f"would erase {which}")
                    continue
                try:
                    print(f"{_erase(store, layout, record, reason=RETENTION_EXPIRED)}; {dates}")
                except CommandError as error:
                    _report(error)
                    failed = True
    except CommandError as error:
        return _report(error)
    if not due:
        print(f"no recording is past its delete-after dates (today is {today.isoformat()} UTC)")
    return ExitCode.REFUSED if failed else ExitCode.OK


# --------------------------------------------------------------------------------------------------
# legal hold


def _hold(store: EvidenceStore, record: RecordingRecord, *, reason: str) -> str:
    rid = record.recording_id
    now = dt.datetime.now(dt.UTC)
    try:
        store.record_legal_hold(
            LegalHold(recording_id=rid, at=now, actor=audit_actor(), reason=reason)
        ).result()
    except (InvariantError, NotFoundError) as error:  # erased, or held meanwhile
        raise _refused(str(error)) from error
    return f"put recording {rid} (call {record.call_id}) on legal hold at {_precise_time(now)} UTC ({reason})"


def _release(store: EvidenceStore, record: RecordingRecord, *, reason: str) -> str:
    rid = record.recording_id
    release = LegalHoldRelease(
        recording_id=rid, at=dt.datetime.now(dt.UTC), actor=audit_actor(), reason=reason
    )
    try:
        store.record_legal_hold_release(release).result()
    except (InvariantError, NotFoundError) as error:  # not on hold, or released meanwhile
        raise _refused(str(error)) from error
    return (
        f"released recording {rid} (call {record.call_id}) from its legal hold ({reason}); "
        f"it was {_held(record)}"
    )


def _not_to_hold(record: RecordingRecord) -> str | None:
    if record.erased_at is not None:
        return f"{_erased(record)}: nothing is left to hold"
    if record.held_at is not None:
        return f"recording {record.recording_id} is {_held(record)} already"
    return None


def hold_recordings(layout: DataLayout, selection: Selection, *, reason: str) -> int:
    """Put the recordings of ``selection`` on legal hold for ``reason``: none of them is erased
    until the hold is released."""
    try:
        reason = _check_reason(reason, "the recording is held")
    except CommandError as error:
        return _report(error)
    return _for_each(
        layout,
        selection,
        lambda store, record: _hold(store, record, reason=reason),
        done_already=_not_to_hold,
        done="held",
    )


def release_recordings(layout: DataLayout, selection: Selection, *, reason: str) -> int:
    """Release the legal hold of the recordings of ``selection``, for ``reason``."""
    try:
        reason = _check_reason(reason, "the hold is released")
    except CommandError as error:
        return _report(error)
    return _for_each(
        layout,
        selection,
        lambda store, record: _release(store, record, reason=reason),
        done_already=lambda record: (
            None if record.held_at is not None else f"recording {record.recording_id} is not on legal hold"
        ),
        done="released",
    )
