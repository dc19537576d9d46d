"""The consent-and-purpose record of every call (the evidence), kept in the SQLite database.

``EvidenceStore`` owns one writer thread (a one-worker ``ThreadPoolExecutor`` whose initializer
opens the writer connection; SQLite objects stay in the thread that made them) and one reader
thread with a read-only connection, which sees committed rows while the writer works (WAL).

Every ``record_*`` method validates its input, then queues the write and returns a
``concurrent.futures.Future``; asyncio code awaits ``asyncio.wrap_future(future)``, the CLI calls
``future.result()`` or ``write(record)``. Each write runs in one transaction (``db.atomic()``), so a
write that breaks an invariant leaves nothing behind. Invariants enforced (``InvariantError``):

* a recording row needs its call and at least one purpose recorded for that call;
* a recording serves only purposes recorded for its call (``recording_purposes``, in the version
  the call's purposes name);
* a consent-based purpose enters ``call_purposes``, or a recording's purposes, only if the latest
  consent decision of that call for that purpose is ``granted``;
* a recording's ``first_frame_at`` is not before the end of any announcement played on the call's
  outside legs, and at least one announcement was played there to the end (recording fails closed);
* an agent notice (``AgentNotice``: the beep as recording starts, the agent's copy of the notice)
  is on a ``pbx`` leg. It is not an announcement: the first-frame rule above does not cover it,
  as the beep plays at the moment the recording starts.

A full disk (``SQLITE_FULL``) fails a write with ``EvidenceFullError``, or, for a write submitted
with ``hold_when_full``, holds it: it and every write after it wait in memory, in order, and are
retried every ``HELD_RETRY_S`` and before each new write until the database takes them; each
future completes only then. ``held`` says how many wait. Closing the store keeps trying them for
``CLOSE_RETRY_S`` (a stop must end); what the database still cannot take is kept in a file of its
own (``evidence-held-<database id>-<UTC time>.jsonl``: a first line naming this database's id
(``HELD_FILE_DATABASE_KEY``), then one JSON object per record, in order), in ``held_dir``
(another disk) or else beside the database (a few KiB may fit where a database transaction, with
its journal, does not), and if even that cannot be
written each record is logged at error level as the same JSON line. A store opened with
``wait_for_space`` on a disk too full to open the database at all (SQLite needs room for its
``-shm`` and ``-wal`` files; a clean stop removes them) starts without it (``waiting_for_space``):
every write is then one the full database refuses, held or failed as above, and each attempt first
tries to open it again, so the held writes are written as soon as space returns; reads fail until
then. ``import_held_evidence`` (at
the next start) writes such files into the database, each in one transaction with a
``held_evidence_imported`` audit row naming the file and its SHA-256, then removes the file: a file
whose content (its SHA-256) such a row names already, under any name, is not written twice. It
writes only this database's files: those whose first line names its id, and those that name none
beside the database (made by hand from the log); another database's, in a ``held_dir`` two
callheralds share, are logged and left in place.

Purpose definitions are versioned: a purpose id is stored as version 1, and recording it with a
basis, reference or retention other than its latest version's stores the next version, with a
``purpose_changed`` row in the audit log naming the old and the new definition. A call's purposes
name the version they were recorded under, so a changed purpose applies to new calls and the calls
recorded before keep theirs. ``define_purposes`` stores the configured definitions at start-up, so
a change is recorded when it takes effect. ``delete_after`` is the UTC date of the call's set-up
plus the purpose's ``retention_days``. Each recording names the purposes it serves as it starts
(``recording_purposes``): a call's recordings may serve different ones (consent withdrawn mid-call
splits the recording), and a recording is kept until its own purposes' dates have passed.

A recording's end (finished or truncated) appends its manifest to the audit log in the same
transaction: its evidence as it stands then (``storage.manifests``), so that a later edit of those
rows is found by ``verify_manifests``.

A recording is erased (crypto-shredded, ``SqliteKeyStore.destroy`` with ``write_recording_erasure``)
by destroying its wrapped keys; its row stays, marked with when, by whom and why, and reads report
it in state ``erased`` (the stored state keeps how it ended, for the timeline). The erasure is a
later event of its call and a row of the audit log, written in the transaction that destroys the keys.

A recording on legal hold (``LegalHold``, GDPR Art. 17(3)(e): kept for legal claims) is not erased:
``write_recording_erasure`` refuses it until the hold is released (``LegalHoldRelease``). A recording
has at most one hold in force; an erased one cannot be held. Each hold and release is a later event
of the call (``legal_hold``, ``legal_hold_release``) and a row of the audit log, in one transaction;
the hold's row stays after its release, with when, by whom and why it was released.

Every other later event (a withdrawal of consent, an objection, ...) is stored with an audit row of
its own (``later_event``, subject the call), in the same transaction: later events change a
recording's story after its manifest is fixed, so ``audited_changes_mismatches`` checks each
later event's row against the audit row that recorded it (a hold's, a release's, an erasure's, or
its own), and finds one deleted, changed or added without one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import enum
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
import types
import typing
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.thread import BrokenThreadPool
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, Final, NamedTuple, Self, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlite_utils import Database

from storage.audit import AUDIT_ACTION_MANIFEST, AuditEntry, AuditLog, AuditReport, canonical_detail
from storage.crypto import StorageError
from storage.durable import fsync_directory
from storage.manifests import ManifestMismatch, ManifestReport, append_manifest, verify_manifests
from storage.migrations import (
    MIGRATIONS,
    connect_immutable,
    from_db_date,
    from_db_time,
    open_reader,
    open_writer,
    to_db_date,
    to_db_time,
    unwritable_reason,
)
from storage.recording_state import RecordingState
from storage.signing import ManifestSigner, SignatureReport, verify_manifest_signatures
from storage.threads import name_os_thread

__all__ = [
    "AUDIT_ACTION_ERASE",
    "AUDIT_ACTION_HELD_IMPORTED",
    "AUDIT_ACTION_LATER_EVENT",
    "AUDIT_ACTION_LEGAL_HOLD",
    "AUDIT_ACTION_LEGAL_HOLD_RELEASE",
    "AUDIT_ACTION_PURPOSE_CHANGED",
    "DTMF_DIGITS",
    "HELD_FILE_DATABASE_KEY",
    "HELD_FILE_PATTERN",
    "STORAGE_REGION_MAX_LENGTH",
    "AgentNotice",
    "AgentNoticeEnd",
    "AgentNoticeKind",
    "Announcement",
    "AnnouncementEnd",
    "CallEnded",
    "CallPurposes",
    "CallRecord",
    "CallStarted",
    "ChannelQuality",
    "ConsentDecision",
    "Decision",
    "Direction",
    "DtmfEvent",
    "EvidenceFullError",
    "EvidenceKeptError",
    "EvidenceRecord",
    "EvidenceStore",
    "InvariantError",
    "LaterEvent",
    "LaterEventKind",
    "LawfulBasis",
    "Leg",
    "LegRole",
    "LegalHold",
    "LegalHoldRelease",
    "MediaQuality",
    "NotFoundError",
    "NotRecorded",
    "Pause",
    "PauseEnd",
    "PauseReason",
    "Purpose",
    "PurposeChange",
    "RecordedPurpose",
    "RecordingEnd",
    "RecordingErasure",
    "RecordingRecord",
    "RecordingStarted",
    "RecordingState",
    "TimelineEvent",
    "TimelineKind",
    "UnreadableRecordError",
    "delete_after",
    "erasure_refusal",
    "held_record_from_json",
    "held_record_json",
    "write_recording_erasure",
]

T = TypeVar("T")

_LOG = logging.getLogger("callherald.storage")

HELD_RETRY_S = 1.0
"""How often writes held by a full database are tried again."""
CLOSE_RETRY_S = 5.0
"""How long closing the store keeps trying the writes a full database holds, before it keeps them
in a file for the next start."""
OPEN_FREE_BYTES = 1024 * 1024
"""Below this much free space a database that cannot be opened is taken to lack the room for its
``-shm`` and ``-wal`` files (``wait_for_space``)."""
HELD_FILE_PATTERN = "evidence-held-*.jsonl"
"""The files that keep, beside the database, what it could not take before the store closed."""
HELD_FILE_DATABASE_KEY = "evidence_database"
"""The one key of a held file's first line: the id of the evidence database it belongs to."""
AUDIT_ACTION_HELD_IMPORTED = "held_evidence_imported"
HELD_IMPORT_ACTOR = "callherald"

DTMF_DIGITS = frozenset("0123456789*#ABCD")
STORAGE_REGION_MAX_LENGTH = 200
"""The longest storage region a recording row keeps (``RecordingStarted.storage_region``)."""
_KEY_ID_SEPARATOR = ","
"""Joins a recording's key ids in its ``key_id`` column."""

AUDIT_ACTION_PURPOSE_CHANGED = "purpose_changed"
PURPOSE_CHANGE_ACTOR = "configuration"
"""Who changes a purpose's definition, for the audit log: whoever edited the configuration."""
AUDIT_ACTION_ERASE = "erase"
AUDIT_ACTION_LEGAL_HOLD = "legal_hold"
AUDIT_ACTION_LEGAL_HOLD_RELEASE = "legal_hold_release"
AUDIT_ACTION_LATER_EVENT = "later_event"
"""The audit row of a later event (a withdrawal, an objection, ...) that no other audit row records:
a legal hold, its release and an erasure are each recorded by their own (``legal_hold``, ...)."""


class EvidenceFullError(StorageError):
    """The evidence database could not grow: the disk (or quota) is full (``SQLITE_FULL``)."""


class EvidenceKeptError(EvidenceFullError):
    """The store closed while the database was full: the write is not in the database yet, but kept
    in a file beside it, which the next start writes into it (``import_held_evidence``)."""


class InvariantError(StorageError):
    """A write would break an invariant of the evidence record; nothing of it was stored."""


class UnreadableRecordError(StorageError):
    """A row holds a value no writer of callherald stores (edited by hand, or a disk fault)."""


class NotFoundError(StorageError, LookupError):
    """The call or recording asked for is not in the evidence record."""


# --------------------------------------------------------------------------------------------------
# Value types


class Direction(enum.StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class LegRole(enum.StrEnum):
    OUTSIDE = "outside"
    PBX = "pbx"


class Decision(enum.StrEnum):
    GRANTED = "granted"
    REFUSED = "refused"
    NO_ANSWER = "no_answer"


class LawfulBasis(enum.StrEnum):
    """GDPR Art. 6(1) basis of a purpose: (a) consent, (b) contract, (c) legal obligation, (f) interest."""

    CONSENT = "consent"
    CONTRACT = "contract"
    LEGAL_OBLIGATION = "legal_obligation"
    LEGITIMATE_INTEREST = "legitimate_interest"


class PauseReason(enum.StrEnum):
    HOLD = "hold"
    PCI = "pci"
    API = "api"


class AgentNoticeKind(enum.StrEnum):
    TONE = "tone"
    PROMPT = "prompt"


class LaterEventKind(enum.StrEnum):
    WITHDRAWAL = "withdrawal"
    OBJECTION = "objection"
    LEGAL_HOLD = "legal_hold"
    LEGAL_HOLD_RELEASE = "legal_hold_release"
    ACCESS = "access"
    EXPORT = "export"
    ERASURE = "erasure"


def _aware(name: str, value: dt.datetime | None) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{name}: naive datetime refused, pass a timezone-aware time")


def _ordered(start_name: str, start: dt.datetime, end_name: str, end: dt.datetime | None) -> None:
    if end is not None and end < start:
        raise ValueError(f"{end_name} ({end.isoformat()}) is before {start_name} ({start.isoformat()})")


@dataclass(frozen=True, slots=True, kw_only=True)
class Leg:
    leg_id: str
    call_id: str
    role: LegRole
    sip_call_id: str
    remote_uri: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CallStarted:
    """A call's set-up; ``legs`` known at set-up are stored in the same transaction."""

    call_id: str
    direction: Direction
    calling: str
    called: str
    local_line: str
    agent_id: str | None
    setup_at: dt.datetime
    legs: tuple[Leg, ...] = ()

    def __post_init__(self) -> None:
        _aware("setup_at", self.setup_at)
        for leg in self.legs:
            if leg.call_id != self.call_id:
                raise ValueError(f"leg {leg.leg_id} belongs to call {leg.call_id}, not {self.call_id}")


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEnded:
    call_id: str
    ended_at: dt.datetime
    end_reason: str

    def __post_init__(self) -> None:
        _aware("ended_at", self.ended_at)


@dataclass(frozen=True, slots=True, kw_only=True)
class Announcement:
    """A prompt played on a leg. It is written when the prompt starts (``ended_at`` None) and its
    end added with ``AnnouncementEnd``, so that a crash mid-prompt keeps the start; ``ended_at``
    None on a stored row means the end never came (the proxy stopped). A prompt that failed
    mid-play ends with its ``failure``: nothing may be recorded of that party after it. A prompt
    that could not start at all is written whole: ``failure`` set, ``ended_at`` equal to
    ``started_at``, no version or hash."""

    leg_id: str
    prompt_id: str
    version: str
    language: str
    audio_sha256: str
    started_at: dt.datetime
    ended_at: dt.datetime | None
    complete: bool
    failure: str | None = None

    def __post_init__(self) -> None:
        _aware("started_at", self.started_at)
        _aware("ended_at", self.ended_at)
        _ordered("started_at", self.started_at, "ended_at", self.ended_at)
        if self.complete and self.ended_at is None:
            raise ValueError("a complete announcement needs ended_at")
        if self.failure is not None and (self.complete or self.ended_at is None):
            raise ValueError("a prompt that failed is not complete and has ended")


@dataclass(frozen=True, slots=True, kw_only=True)
class AnnouncementEnd:
    """When the prompt of the ``Announcement`` written for ``leg_id``, ``prompt_id`` and
    ``started_at`` stopped sounding; ``complete`` False when it was cut short (an answer during a
    question, the party hanging up or being transferred)."""

    leg_id: str
    prompt_id: str
    started_at: dt.datetime
    ended_at: dt.datetime
    complete: bool
    failure: str | None = None
    """Why the prompt stopped, when playing it failed (it is then not complete)."""

    def __post_init__(self) -> None:
        _aware("started_at", self.started_at)
        _aware("ended_at", self.ended_at)
        _ordered("started_at", self.started_at, "ended_at", self.ended_at)
        if self.failure is not None and self.complete:
            raise ValueError("a prompt that failed is not complete")


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentNotice:
    """What told the agent on ``leg_id`` (a ``pbx`` leg) that the call is recorded (GDPR Art. 13:
    employees are data subjects too): a tone (``name`` ``beep``, played as recording starts) or
    the agent's copy of a prompt (an outbound call's notice; ``version``, ``language`` and
    ``audio_sha256`` as for an ``Announcement``, empty for a tone). Written as it starts sounding
    (``ended_at`` None) and its end added with ``AgentNoticeEnd``, so that a crash while it plays
    keeps that the agent was being told; ``ended_at`` None on a stored row means the end never
    came (the proxy stopped). One that never sounded is written whole: ``failure`` why it did not
    play, ``ended_at`` equal to ``started_at``. ``complete`` False when it was cut short."""

    leg_id: str
    kind: AgentNoticeKind
    name: str
    started_at: dt.datetime
    ended_at: dt.datetime | None
    complete: bool
    version: str = ""
    language: str = ""
    audio_sha256: str = ""
    failure: str | None = None

    def __post_init__(self) -> None:
        _aware("started_at", self.started_at)
        _aware("ended_at", self.ended_at)
        _ordered("started_at", self.started_at, "ended_at", self.ended_at)
        if self.complete and self.ended_at is None:
            raise ValueError("a complete agent notice needs ended_at")
        if self.failure is not None and (self.complete or self.ended_at is None):
            raise ValueError("a notice that failed is not complete and has ended")


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentNoticeEnd:
    """When the ``AgentNotice`` written for ``leg_id``, ``name`` and ``started_at`` stopped
    sounding; ``complete`` False when it was cut short, ``failure`` why, when playing it failed
    (or the proxy stopped while it played)."""

    leg_id: str
    name: str
    started_at: dt.datetime
    ended_at: dt.datetime
    complete: bool
    failure: str | None = None

    def __post_init__(self) -> None:
        _aware("started_at", self.started_at)
        _aware("ended_at", self.ended_at)
        _ordered("started_at", self.started_at, "ended_at", self.ended_at)
        if self.failure is not None and self.complete:
            raise ValueError("a notice that failed is not complete")


@dataclass(frozen=True, slots=True, kw_only=True)
class DtmfEvent:
    leg_id: str
    digit: str
    mechanism: str
    """How it arrived: ``rfc4733``, ``sip_info`` or ``inband``."""
    at: dt.datetime
    counted: bool
    """Whether the digit was taken as an answer (False: masked, e.g. during a PCI pause)."""

    def __post_init__(self) -> None:
        _aware("at", self.at)
        if self.digit not in DTMF_DIGITS:
            raise ValueError(f"not a DTMF digit: {self.digit!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentDecision:
    call_id: str
    question_id: str
    question_version: str
    purpose_id: str
    decision: Decision
    mechanism: str
    at: dt.datetime

    def __post_init__(self) -> None:
        _aware("at", self.at)


@dataclass(frozen=True, slots=True, kw_only=True)
class Purpose:
    purpose_id: str
    lawful_basis: LawfulBasis
    reference: str
    """Interest assessment, DPIA or legal ground the purpose relies on."""
    retention_days: int

    def __post_init__(self) -> None:
        if self.retention_days < 0:
            raise ValueError(f"retention_days must not be negative: {self.retention_days}")


@dataclass(frozen=True, slots=True, kw_only=True)
class PurposeChange:
    """A purpose stored with a new definition: ``current`` is its version ``version``, ``previous``
    the definition of the version before it."""

    version: int
    previous: Purpose
    current: Purpose


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedPurpose:
    """A purpose of a call as the evidence holds it: the definition (``version``) it was recorded
    under, and the date the call's recording is to be deleted by for it."""

    purpose: Purpose
    version: int
    delete_after: dt.date


@dataclass(frozen=True, slots=True, kw_only=True)
class CallPurposes:
    call_id: str
    purposes: tuple[Purpose, ...]

    def __post_init__(self) -> None:
        if not self.purposes:
            raise ValueError("at least one purpose is required")
        ids = [purpose.purpose_id for purpose in self.purposes]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate purpose ids: {ids}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingStarted:
    recording_id: uuid.UUID
    call_id: str
    file_name: str
    key_id: tuple[str, ...]
    """The key ids of the recipients its data key is wrapped for (``storage.crypto.key_id``)."""
    started_at: dt.datetime
    first_frame_at: dt.datetime
    purposes: tuple[str, ...]
    """The ids of the purposes this recording serves, each stored for its call (``CallPurposes``)."""
    storage_region: str = ""
    """Where its file is kept, as the operator names it (``recording.storage_region``); '' when
    not stated."""
    worm: bool = False
    """Whether its file is kept on write-once (WORM) storage (``recording.worm``)."""

    def __post_init__(self) -> None:
        _aware("started_at", self.started_at)
        _aware("first_frame_at", self.first_frame_at)
        if len(self.storage_region) > STORAGE_REGION_MAX_LENGTH or not self.storage_region.isprintable():
            raise ValueError(
                f"a storage region is printable text of at most {STORAGE_REGION_MAX_LENGTH} characters:"
                f" {self.storage_region!r}"
            )
        if not self.key_id or any(not key or _KEY_ID_SEPARATOR in key for key in self.key_id):
            raise ValueError(f"key ids must be one or more, none empty or with a comma: {list(self.key_id)}")
        if not self.purposes:
            raise ValueError("a recording serves at least one purpose")
        if len(set(self.purposes)) != len(self.purposes):
            raise ValueError(f"duplicate purpose ids: {list(self.purposes)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelQuality:
    """What the network cost one channel of a recording's stored audio: ``lost_ms`` of silence put
    in for packets that never came (RFC 3550 §A.3; not the pauses of silence suppression),
    ``late_packets`` that came after their place was stored and ``late_ms`` of audio they took with
    them, ``timestamp_jumps`` the audio was continued across as it came, and the silence put in
    (``drift_silence_ms``) or audio dropped (``drift_dropped_ms``) to correct clock drift. Two
    counts cost no audio: ``ssrc_changes``, the times the party's packets came with a new SSRC
    (RFC 3550 §8.2: a new source, its audio continued as it came), and ``duplicate_packets``, packets
    that came twice (the copy ignored). A quality stored before they were kept reads them as 0."""

    lost_ms: int = 0
    late_packets: int = 0
    late_ms: int = 0
    timestamp_jumps: int = 0
    drift_silence_ms: int = 0
    drift_dropped_ms: int = 0
    ssrc_changes: int = 0
    duplicate_packets: int = 0

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            if getattr(self, item.name) < 0:
                raise ValueError(f"{item.name} must not be negative")

    @property
    def clean(self) -> bool:
        """Nothing of the channel's audio was lost, dropped or moved."""
        return not any(getattr(self, name) for name in _AUDIO_COSTS)

    def describe(self) -> str:
        """What the network cost the channel, for a reader (``240 ms lost (silence in the file), 2
        packets too late to place (40 ms)``); ``clean`` when nothing."""
        faults = []
        if self.lost_ms:
            faults.append(f"{self.lost_ms} ms lost (silence in the file)")
        if self.late_packets:
            faults.append(f"{_counted(self.late_packets, 'packet')} too late to place ({self.late_ms} ms)")
        elif self.late_ms:
            faults.append(f"{self.late_ms} ms of a packet too late to place")
        if self.timestamp_jumps:
            faults.append(f"{_counted(self.timestamp_jumps, 'timestamp jump')} (audio continued as it came)")
        if self.drift_silence_ms:
            faults.append(f"{self.drift_silence_ms} ms of silence put in for drift")
        if self.drift_dropped_ms:
            faults.append(f"{self.drift_dropped_ms} ms dropped for drift")
        told = faults or ["clean"]
        if self.ssrc_changes:
            told.append(f"{_counted(self.ssrc_changes, 'SSRC change')} (audio continued as it came)")
        if self.duplicate_packets:
            told.append(f"{_counted(self.duplicate_packets, 'duplicate packet')} (ignored)")
        return ", ".join(told)


_AUDIO_COSTS: Final = (
    "lost_ms",
    "late_packets",
    "late_ms",
    "timestamp_jumps",
    "drift_silence_ms",
    "drift_dropped_ms",
)
"""The ``ChannelQuality`` counts that say some of the channel's audio is not what the party sent."""


def _counted(count: int, thing: str) -> str:
    return f"{count} {thing}{'' if count == 1 else 's'}"


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaQuality:
    """What the network cost a recording, per channel: the outside party's (left) and the PBX
    side's (right). Stored as JSON on its row (``media_quality``; '' when not measured)."""

    outside_party: ChannelQuality
    pbx_side: ChannelQuality

    @property
    def clean(self) -> bool:
        """Nothing of either channel's audio was lost, dropped or moved."""
        return self.outside_party.clean and self.pbx_side.clean

    def describe(self) -> str:
        """What the network cost the recording, for a reader and the log: ``clean``, or each
        channel's faults (``outside party: 240 ms lost (silence in the file); PBX side: clean``)."""
        outside_party, pbx_side = self.outside_party.describe(), self.pbx_side.describe()
        if outside_party == pbx_side == "clean":
            return "clean"
        return f"outside party: {outside_party}; PBX side: {pbx_side}"

    def to_json(self) -> str:
        return json.dumps(_plain(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> MediaQuality | None:
        """The quality a ``media_quality`` column holds; None for '' (not measured). ValueError if
        it holds something else."""
        if not text:
            return None
        try:
            stored = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"not a recording's media quality: {text!r}") from error
        return cls.from_plain(stored)

    @classmethod
    def from_plain(cls, stored: Any) -> MediaQuality:
        """The quality ``to_json`` wrote, read back as JSON (a mapping); ValueError if it is not one."""
        try:
            return cls(
                outside_party=ChannelQuality(**stored["outside_party"]),
                pbx_side=ChannelQuality(**stored["pbx_side"]),
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"not a recording's media quality: {stored!r}") from error


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingEnd:
    """Storage facts when a recording is closed (finished or truncated): ``finished_at`` is when its
    audio ends, ``end_reason`` why (the call ended, consent withdrawn, ``disk full``, ...).
    ``audio_sha256`` is the SHA-256 of the audio the recorder sealed; a recording closed by the
    recovery after a crash has none (the proxy cannot decrypt) and pins ``file_sha256``, the
    SHA-256 of its file as recovery left it, instead. ``media_quality`` is what the network cost
    its audio, as the recorder measured it; None when not measured (recovery after a crash)."""

    recording_id: uuid.UUID
    finished_at: dt.datetime
    audio_sha256: str
    size_bytes: int
    duration_ms: int
    end_reason: str
    file_sha256: str = ""
    media_quality: MediaQuality | None = None

    def __post_init__(self) -> None:
        _aware("finished_at", self.finished_at)
        if self.size_bytes < 0 or self.duration_ms < 0:
            raise ValueError("size_bytes and duration_ms must not be negative")


@dataclass(frozen=True, slots=True, kw_only=True)
class Pause:
    """A pause of a recording for one reason (silence written while any reason holds). It is
    written when the pause starts (``ended_at`` None) and its end added with ``PauseEnd``, so that
    a crash mid-pause keeps it; a recording that ends during a pause, or is recovered after a
    crash, ends the pause too. Pauses for different reasons may overlap: each keeps its own times."""

    recording_id: uuid.UUID
    reason: PauseReason
    started_at: dt.datetime
    ended_at: dt.datetime | None
    """None while the pause lasts."""

    def __post_init__(self) -> None:
        _aware("started_at", self.started_at)
        _aware("ended_at", self.ended_at)
        _ordered("started_at", self.started_at, "ended_at", self.ended_at)


@dataclass(frozen=True, slots=True, kw_only=True)
class PauseEnd:
    """When the pause of ``recording_id`` for ``reason`` that began at ``started_at`` ended (that
    reason no longer holds the recording paused)."""

    recording_id: uuid.UUID
    reason: PauseReason
    started_at: dt.datetime
    ended_at: dt.datetime

    def __post_init__(self) -> None:
        _aware("started_at", self.started_at)
        _aware("ended_at", self.ended_at)
        _ordered("started_at", self.started_at, "ended_at", self.ended_at)


@dataclass(frozen=True, slots=True, kw_only=True)
class NotRecorded:
    """The call was to be recorded from ``at`` (its notice and consent allowed it) but no recording
    could start, for ``reason`` (a full disk, recording switched off, ...)."""

    call_id: str
    at: dt.datetime
    reason: str

    def __post_init__(self) -> None:
        _aware("at", self.at)


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingErasure:
    """Recording ``recording_id`` is erased at ``at`` by ``actor`` for ``reason`` (a data subject's
    request, retention expired: GDPR Art. 17, 5(1)(e))."""

    recording_id: uuid.UUID
    at: dt.datetime
    actor: str
    reason: str

    def __post_init__(self) -> None:
        _aware("at", self.at)
        if not self.reason.strip():
            raise ValueError("an erasure needs a reason")


@dataclass(frozen=True, slots=True, kw_only=True)
class LegalHold:
    """Recording ``recording_id`` is put on legal hold at ``at`` by ``actor`` for ``reason`` (a
    claim or litigation it is evidence for): it is not erased until the hold is released (GDPR
    Art. 17(3)(e))."""

    recording_id: uuid.UUID
    at: dt.datetime
    actor: str
    reason: str

    def __post_init__(self) -> None:
        _aware("at", self.at)
        if not self.reason.strip():
            raise ValueError("a legal hold needs a reason")


@dataclass(frozen=True, slots=True, kw_only=True)
class LegalHoldRelease:
    """The legal hold of recording ``recording_id`` is released at ``at`` by ``actor`` for ``reason``."""

    recording_id: uuid.UUID
    at: dt.datetime
    actor: str
    reason: str

    def __post_init__(self) -> None:
        _aware("at", self.at)
        if not self.reason.strip():
            raise ValueError("a release of a legal hold needs a reason")


@dataclass(frozen=True, slots=True, kw_only=True)
class LaterEvent:
    call_id: str
    kind: LaterEventKind
    at: dt.datetime
    actor: str
    detail: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _aware("at", self.at)


EvidenceRecord = (
    CallStarted
    | CallEnded
    | Leg
    | Announcement
    | AnnouncementEnd
    | AgentNotice
    | AgentNoticeEnd
    | DtmfEvent
    | ConsentDecision
    | CallPurposes
    | RecordingStarted
    | Pause
    | PauseEnd
    | NotRecorded
    | LaterEvent
)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRecord:
    call_id: str
    direction: Direction
    calling: str
    called: str
    local_line: str
    agent_id: str | None
    setup_at: dt.datetime
    ended_at: dt.datetime | None
    end_reason: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingRecord:
    recording_id: uuid.UUID
    call_id: str
    file_name: str
    key_id: tuple[str, ...]
    """The key ids of the recipients its data key is wrapped for, in the order they were given."""
    state: RecordingState
    started_at: dt.datetime
    first_frame_at: dt.datetime
    finished_at: dt.datetime | None
    audio_sha256: str | None
    size_bytes: int | None
    duration_ms: int | None
    end_reason: str | None
    """None while it runs (and on rows stored before reasons were)."""
    direction: Direction
    calling: str
    called: str
    purposes: tuple[RecordedPurpose, ...] = ()
    """The purposes this recording serves, by id, each with its call's definition and delete-after
    date (a recording stored before recordings kept their own purposes: all of its call's)."""
    erased_at: dt.datetime | None = None
    erased_by: str | None = None
    erasure_reason: str | None = None
    held_at: dt.datetime | None = None
    """When the legal hold in force on it began; None when it is not on hold."""
    held_by: str | None = None
    hold_reason: str | None = None
    file_sha256: str = ""
    """The SHA-256 of its file as recovery left it after a crash; '' for any other recording."""
    media_quality: MediaQuality | None = None
    """What the network cost its audio, per channel; None when not measured (a recording
    recovered after a crash, still running, or stored before callherald measured it)."""
    manifest_seq: int | None = None
    """The audit row of its latest manifest (``storage.manifests``); None while it runs."""
    manifest_signature: str = ""
    """That manifest's signature (``storage.signing``, base64); '' when it has none."""
    manifest_key_id: str = ""
    """The id of the key that signed it; '' when it is not signed."""
    storage_region: str = ""
    """Where its file is kept, as the operator named it; '' when not stated (or stored before
    callherald kept it)."""
    worm: bool | None = None
    """Whether its file is kept on write-once (WORM) storage; None when stored before callherald
    kept it."""


class TimelineKind(enum.StrEnum):
    """Timeline entries; at equal times they sort in this order."""

    CALL_SETUP = "call_setup"
    ANNOUNCEMENT_START = "announcement_start"
    ANNOUNCEMENT_END = "announcement_end"
    DTMF = "dtmf"
    CONSENT = "consent"
    NOT_RECORDED = "not_recorded"
    RECORDING_START = "recording_start"
    FIRST_FRAME = "first_frame"
    AGENT_INFORMED = "agent_informed"
    PAUSE_START = "pause_start"
    PAUSE_END = "pause_end"
    RECORDING_END = "recording_end"
    CALL_END = "call_end"
    LATER_EVENT = "later_event"


_KIND_RANK = {kind: rank for rank, kind in enumerate(TimelineKind)}
# At one moment a prompt's end and the next one's start keep the order they were stored in
# (start, end, start, ...): the notice ends, then the question starts.
_KIND_RANK[TimelineKind.ANNOUNCEMENT_END] = _KIND_RANK[TimelineKind.ANNOUNCEMENT_START]


@dataclass(frozen=True, slots=True, kw_only=True)
class TimelineEvent:
    at: dt.datetime
    kind: TimelineKind
    leg_id: str | None = None
    recording_id: uuid.UUID | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def delete_after(setup_at: dt.datetime, retention_days: int) -> dt.date:
    """The UTC calendar date of ``setup_at`` plus ``retention_days`` days."""
    _aware("setup_at", setup_at)
    return setup_at.astimezone(dt.UTC).date() + dt.timedelta(days=retention_days)


# --------------------------------------------------------------------------------------------------
# Writes (run on the writer thread, each in one transaction)


def _insert(db: Database, table: str, row: Mapping[str, Any]) -> None:
    columns = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    db.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(row.values()))


def _time(value: dt.datetime | None) -> str | None:
    return None if value is None else to_db_time(value)


def _call_setup(db: Database, call_id: str) -> dt.datetime:
    row = db.execute("SELECT setup_at FROM calls WHERE id = ?", [call_id]).fetchone()
    if row is None:
        raise InvariantError(f"call {call_id} is not recorded")
    return from_db_time(str(row[0]))


def _write_leg(db: Database, leg: Leg) -> None:
    _insert(
        db,
        "legs",
        {
            "id": leg.leg_id,
            "call_id": leg.call_id,
            "role": leg.role.value,
            "sip_call_id": leg.sip_call_id,
            "remote_uri": leg.remote_uri,
        },
    )


def _write_call_started(db: Database, call: CallStarted) -> None:
    _insert(
        db,
        "calls",
        {
            "id": call.call_id,
            "direction": call.direction.value,
            "calling": call.calling,
            "called": call.called,
            "local_line": call.local_line,
            "agent_id": call.agent_id,
            "setup_at": to_db_time(call.setup_at),
        },
    )
    for leg in call.legs:
        _write_leg(db, leg)


def _write_call_ended(db: Database, ended: CallEnded) -> None:
    setup_at = _call_setup(db, ended.call_id)
    if ended.ended_at < setup_at:
        raise InvariantError(f"call {ended.call_id} cannot end before its set-up")
    db.execute(
        "UPDATE calls SET ended_at = ?, end_reason = ? WHERE id = ?",
        [to_db_time(ended.ended_at), ended.end_reason, ended.call_id],
    )


def _write_announcement(db: Database, item: Announcement) -> None:
    _insert(
        db,
        "announcements_played",
        {
            "leg_id": item.leg_id,
            "prompt_id": item.prompt_id,
            "version": item.version,
            "language": item.language,
            "audio_sha256": item.audio_sha256,
            "started_at": to_db_time(item.started_at),
            "ended_at": _time(item.ended_at),
            "complete": int(item.complete),
            "failure": item.failure,
        },
    )


def _end_sound(
    db: Database, table: str, name_column: str, item: AnnouncementEnd | AgentNoticeEnd, what: str
) -> None:
    # The end of a prompt or agent notice stored as it started: its one open row gets it.
    name = item.prompt_id if isinstance(item, AnnouncementEnd) else item.name
    cursor = db.execute(
        f"UPDATE {table} SET ended_at = ?, complete = ?, failure = ? "
        f"WHERE leg_id = ? AND {name_column} = ? AND started_at = ? AND ended_at IS NULL",
        [
            to_db_time(item.ended_at),
            int(item.complete),
            item.failure,
            item.leg_id,
            name,
            to_db_time(item.started_at),
        ],
    )
    if cursor.rowcount != 1:
        raise InvariantError(
            f"{what} {name} on leg {item.leg_id} started at "
            f"{to_db_time(item.started_at)} is not recorded or has already ended"
        )


def _write_announcement_end(db: Database, item: AnnouncementEnd) -> None:
    _end_sound(db, "announcements_played", "prompt_id", item, "announcement")


def _write_agent_notice(db: Database, item: AgentNotice) -> None:
    row = db.execute("SELECT role FROM legs WHERE id = ?", [item.leg_id]).fetchone()
    if row is None or row[0] != LegRole.PBX.value:
        found = "not recorded" if row is None else f"an {row[0]} leg"
        raise InvariantError(f"agent notice {item.name} on leg {item.leg_id}, which is {found}")
    # Not in announcements_played: a recording's first frame need not follow it (the beep plays
    # as the recording starts), nor does it count as the outside party's notice.
    _insert(
        db,
        "agent_notices",
        {
            "leg_id": item.leg_id,
            "kind": item.kind.value,
            "name": item.name,
            "version": item.version,
            "language": item.language,
            "audio_sha256": item.audio_sha256,
            "started_at": to_db_time(item.started_at),
            "ended_at": _time(item.ended_at),
            "complete": int(item.complete),
            "failure": item.failure,
        },
    )


def _write_agent_notice_end(db: Database, item: AgentNoticeEnd) -> None:
    _end_sound(db, "agent_notices", "name", item, "agent notice")


def _write_dtmf(db: Database, item: DtmfEvent) -> None:
    _insert(
        db,
        "dtmf_events",
        {
            "leg_id": item.leg_id,
            "digit": item.digit,
            "mechanism": item.mechanism,
            "at": to_db_time(item.at),
            "counted": int(item.counted),
        },
    )


def _write_consent(db: Database, item: ConsentDecision) -> None:
    _call_setup(db, item.call_id)
    _insert(
        db,
        "consent_decisions",
        {
            "call_id": item.call_id,
            "question_id": item.question_id,
            "question_version": item.question_version,
            "purpose_id": item.purpose_id,
            "decision": item.decision.value,
            "mechanism": item.mechanism,
            "at": to_db_time(item.at),
        },
    )


def _purpose_definition(purpose: Purpose) -> dict[str, Any]:
    return {
        "lawful_basis": purpose.lawful_basis.value,
        "reference": purpose.reference,
        "retention_days": purpose.retention_days,
    }


def _ensure_purpose(db: Database, purpose: Purpose, *, at: dt.datetime) -> tuple[int, PurposeChange | None]:
    """The version of ``purpose`` that calls are recorded under from now on: its latest stored
    version when that has the same definition, else a new version (a change, which goes into the
    audit log as made ``at``)."""
    latest = db.execute(
        "SELECT version, lawful_basis, reference, retention_days FROM purposes WHERE id = ? "
        "ORDER BY version DESC LIMIT 1",
        [purpose.purpose_id],
    ).fetchone()
    wanted = _purpose_definition(purpose)
    if latest is not None and (latest[1], latest[2], latest[3]) == tuple(wanted.values()):
        return int(latest[0]), None
    version = 1 if latest is None else int(latest[0]) + 1
    _insert(db, "purposes", {"id": purpose.purpose_id, "version": version, **wanted})
    if latest is None:
        return version, None
    previous = Purpose(
        purpose_id=purpose.purpose_id,
        lawful_basis=LawfulBasis(latest[1]),
        reference=str(latest[2]),
        retention_days=int(latest[3]),
    )
    # Accountability (GDPR Art. 5(2)): when the purpose changed, and from what to what.
    AuditLog(db).append(
        at=at,
        actor=PURPOSE_CHANGE_ACTOR,
        action=AUDIT_ACTION_PURPOSE_CHANGED,
        subject=purpose.purpose_id,
        detail={
            "version": version,
            "previous": {"version": version - 1, **_purpose_definition(previous)},
            "current": wanted,
        },
    )
    return version, PurposeChange(version=version, previous=previous, current=purpose)


def _define_purposes(db: Database, purposes: tuple[Purpose, ...], at: dt.datetime) -> list[PurposeChange]:
    changes = (_ensure_purpose(db, purpose, at=at)[1] for purpose in purposes)
    return [change for change in changes if change is not None]


def _require_granted_consent(db: Database, call_id: str, purpose_id: str, *, subject: str = "") -> None:
    """``InvariantError`` unless the latest consent decision of ``call_id`` for ``purpose_id`` is
    ``granted`` (GDPR Art. 6(1)(a), 7(1)); ``subject`` prefixes the message."""
    latest = db.execute(
        "SELECT decision FROM consent_decisions WHERE call_id = ? AND purpose_id = ? "
        "ORDER BY at DESC, rowid DESC LIMIT 1",
        [call_id, purpose_id],
    ).fetchone()
    if latest is None or latest[0] != Decision.GRANTED.value:
        found = "no consent decision" if latest is None else f"the latest decision is {latest[0]}"
        raise InvariantError(
            f"{subject}consent-based purpose {purpose_id} on call {call_id} without granted consent ({found})"
        )


def _write_purposes(db: Database, item: CallPurposes) -> None:
    setup_at = _call_setup(db, item.call_id)
    for purpose in item.purposes:
        version, _ = _ensure_purpose(db, purpose, at=setup_at)
        if purpose.lawful_basis is LawfulBasis.CONSENT:
            _require_granted_consent(db, item.call_id, purpose.purpose_id)
        _insert(
            db,
            "call_purposes",
            {
                "call_id": item.call_id,
                "purpose_id": purpose.purpose_id,
                "purpose_version": version,
                "delete_after": to_db_date(delete_after(setup_at, purpose.retention_days)),
            },
        )


class _PlayedPrompt(NamedTuple):
    """A row of ``announcements_played`` as the recording-start checks read it (times as stored)."""

    leg_id: str
    prompt_id: str
    started_at: str
    ended_at: str | None
    complete: int
    failure: str | None


def _write_recording_started(db: Database, item: RecordingStarted) -> None:
    _call_setup(db, item.call_id)
    (purposes,) = db.execute(
        "SELECT count(*) FROM call_purposes WHERE call_id = ?", [item.call_id]
    ).fetchone()
    if purposes == 0:
        raise InvariantError(f"recording {item.recording_id}: call {item.call_id} has no purposes recorded")
    # A recording serves only purposes stored for its call, in the version stored there, and a
    # consent-based one only while its latest decision grants it (as for the call's purposes).
    served: list[tuple[str, int]] = []
    for purpose_id in item.purposes:
        row = db.execute(
            "SELECT cp.purpose_version, p.lawful_basis FROM call_purposes cp "
            "JOIN purposes p ON p.id = cp.purpose_id AND p.version = cp.purpose_version "
            "WHERE cp.call_id = ? AND cp.purpose_id = ?",
            [item.call_id, purpose_id],
        ).fetchone()
        if row is None:
            raise InvariantError(
                f"recording {item.recording_id}: purpose {purpose_id} is not recorded for call {item.call_id}"
            )
        if row[1] == LawfulBasis.CONSENT.value:
            _require_granted_consent(db, item.call_id, purpose_id, subject=f"recording {item.recording_id}: ")
        served.append((purpose_id, int(row[0])))
    played = [
        _PlayedPrompt(*row)
        for row in db.execute(
            "SELECT a.leg_id, a.prompt_id, a.started_at, a.ended_at, a.complete, a.failure "
            "FROM announcements_played a JOIN legs l ON l.id = a.leg_id "
            "WHERE l.call_id = ? AND l.role = 'outside'",
            [item.call_id],
        )
    ]
    if not any(prompt.complete for prompt in played):
        raise InvariantError(
            f"recording {item.recording_id}: no announcement was played to the end on an outside leg "
            f"of call {item.call_id}"
        )
    for prompt in played:
        if prompt.ended_at is None or from_db_time(prompt.ended_at) > item.first_frame_at:
            end = "never ended" if prompt.ended_at is None else f"ended at {prompt.ended_at}"
            raise InvariantError(
                f"recording {item.recording_id}: first frame at {to_db_time(item.first_frame_at)} but "
                f"announcement {prompt.prompt_id} on leg {prompt.leg_id} {end}"
            )
    # After a prompt failed, only a party who then heard a notice to the end (a new party on the
    # line, say) may be recorded. Stored times sort as text.
    failed = [prompt for prompt in played if prompt.failure is not None]
    if failed:
        last = max(failed, key=lambda prompt: prompt.ended_at or "")  # a failed prompt has ended
        if not any(prompt.complete and prompt.started_at >= (last.ended_at or "") for prompt in played):
            raise InvariantError(
                f"recording {item.recording_id}: announcement {last.prompt_id} on leg {last.leg_id} "
                f"failed at {last.ended_at} ({last.failure}) and none was played to the end after it"
            )
    _insert(
        db,
        "recordings",
        {
            "id": str(item.recording_id),
            "call_id": item.call_id,
            "file_name": item.file_name,
            "key_id": _KEY_ID_SEPARATOR.join(item.key_id),
            "first_frame_at": to_db_time(item.first_frame_at),
            "state": RecordingState.RECORDING.value,
            "started_at": to_db_time(item.started_at),
            "storage_region": item.storage_region,
            "worm": int(item.worm),
        },
    )
    for purpose_id, version in served:
        _insert(
            db,
            "recording_purposes",
            {
                "recording_id": str(item.recording_id),
                "call_id": item.call_id,
                "purpose_id": purpose_id,
                "purpose_version": version,
            },
        )


def _write_recording_end(
    db: Database, item: RecordingEnd, state: RecordingState, signer: ManifestSigner | None
) -> None:
    cursor = db.execute(
        "UPDATE recordings SET state = ?, finished_at = ?, audio_sha256 = ?, size_bytes = ?, "
        "duration_ms = ?, end_reason = ?, file_sha256 = ?, media_quality = ? "
        "WHERE id = ? AND state = 'recording'",
        [
            state.value,
            to_db_time(item.finished_at),
            item.audio_sha256,
            item.size_bytes,
            item.duration_ms,
            item.end_reason,
            item.file_sha256,
            "" if item.media_quality is None else item.media_quality.to_json(),
            str(item.recording_id),
        ],
    )
    if cursor.rowcount != 1:
        raise InvariantError(f"recording {item.recording_id} is not recorded or not running")
    # A pause still open ends with its recording (never before it began; stored times sort as text).
    db.execute(
        "UPDATE pauses SET ended_at = max(started_at, ?) WHERE recording_id = ? AND ended_at IS NULL",
        [to_db_time(item.finished_at), str(item.recording_id)],
    )
    # Its evidence as it stands now, into the hash chain in this transaction: no end without it.
    append_manifest(db, str(item.recording_id), at=item.finished_at, signer=signer)


def _write_pause(db: Database, item: Pause) -> None:
    row = db.execute("SELECT 1 FROM recordings WHERE id = ?", [str(item.recording_id)]).fetchone()
    if row is None:
        raise InvariantError(f"pause for recording {item.recording_id}, which is not recorded")
    _insert(
        db,
        "pauses",
        {
            "recording_id": str(item.recording_id),
            "reason": item.reason.value,
            "started_at": to_db_time(item.started_at),
            "ended_at": _time(item.ended_at),
        },
    )


def _write_pause_end(db: Database, item: PauseEnd) -> None:
    cursor = db.execute(
        "UPDATE pauses SET ended_at = ? "
        "WHERE recording_id = ? AND reason = ? AND started_at = ? AND ended_at IS NULL",
        [to_db_time(item.ended_at), str(item.recording_id), item.reason.value, to_db_time(item.started_at)],
    )
    if cursor.rowcount != 1:
        raise InvariantError(
            f"{item.reason} pause of recording {item.recording_id} started at "
            f"{to_db_time(item.started_at)} is not recorded or has already ended"
        )


def _write_not_recorded(db: Database, item: NotRecorded) -> None:
    _call_setup(db, item.call_id)
    _insert(db, "not_recorded", {"call_id": item.call_id, "at": to_db_time(item.at), "reason": item.reason})


def _insert_later_event(db: Database, item: LaterEvent) -> None:
    """Store the later event's row alone: for a legal hold, its release and an erasure, whose own
    audit row records the event."""
    _call_setup(db, item.call_id)
    _insert(
        db,
        "later_events",
        {
            "call_id": item.call_id,
            "kind": item.kind.value,
            "at": to_db_time(item.at),
            "actor": item.actor,
            "detail": canonical_detail(item.detail),
        },
    )


def _write_later_event(db: Database, item: LaterEvent) -> None:
    """Store the later event and, in the same transaction, its audit row (``later_event``, subject
    the call): it changes the story of recordings whose manifests are fixed already (a withdrawal
    of consent), so the chain must hold it as it was stored (GDPR Art. 7(1), 5(2))."""
    _insert_later_event(db, item)
    AuditLog(db).append(
        at=item.at,
        actor=item.actor,
        action=AUDIT_ACTION_LATER_EVENT,
        subject=item.call_id,
        detail=_later_event_detail(item),
    )


def _later_event_detail(item: LaterEvent) -> dict[str, Any]:
    """What a ``later_event`` audit row holds: the event's row, field by field, as stored."""
    return {
        "call_id": item.call_id,
        "kind": item.kind.value,
        "at": to_db_time(item.at),
        "actor": item.actor,
        "detail": dict(item.detail),
    }


def _erasure_refusal(
    rid: str, *, erased: tuple[str, str, str] | None, hold: tuple[str, str, str] | None, state: str
) -> str | None:
    """Why recording ``rid`` may not be erased, or None: ``erased`` and ``hold`` are ``(at, by,
    reason)`` as stored, ``state`` the stored state."""
    if erased is not None:
        erased_at, erased_by, erasure_reason = erased
        return f"recording {rid} was erased already, at {erased_at} by {erased_by} ({erasure_reason})"
    if hold is not None:  # kept for legal claims (GDPR Art. 17(3)(e)) until the hold is released
        held_at, held_by, hold_reason = hold
        return (
            f"recording {rid} is on legal hold since {held_at} by {held_by} ({hold_reason}): "
            "release the hold to erase it"
        )
    if state == RecordingState.RECORDING.value:  # its writer would go on sealing under the destroyed key
        return (
            f"recording {rid} is still being recorded: erase it once its call has ended (a recording "
            "that a crash left open is closed by the next start of callherald serve)"
        )
    return None


def erasure_refusal(record: RecordingRecord) -> str | None:
    """Why ``write_recording_erasure`` would refuse to erase ``record`` as it was read, in its words;
    None if it would erase it (for a dry run: the write itself decides, on the record as it is then)."""
    erased = None
    if record.erased_at is not None:
        erased = (to_db_time(record.erased_at), str(record.erased_by), str(record.erasure_reason))
    hold = None
    if record.held_at is not None:
        hold = (to_db_time(record.held_at), str(record.held_by), str(record.hold_reason))
    return _erasure_refusal(str(record.recording_id), erased=erased, hold=hold, state=record.state.value)


def write_recording_erasure(db: Database, item: RecordingErasure) -> None:
    """Mark the recording erased, add an ``erasure`` later event to its call and a row to the audit
    log. Run it in the transaction that destroys the recording's wrapped keys (it counts them, so
    run it before the delete): the erasure and its record commit together or not at all.

    ``NotFoundError`` for an unknown recording; ``InvariantError`` for one erased already, on legal
    hold, or still being recorded (its writer would go on sealing audio under the destroyed key)."""
    rid = str(item.recording_id)
    row = db.execute(
        "SELECT call_id, file_name, state, erased_at, erased_by, erasure_reason FROM recordings WHERE id = ?",
        [rid],
    ).fetchone()
    if row is None:
        raise NotFoundError(f"recording {rid} is not recorded")
    call_id, file_name, state, erased_at, erased_by, erasure_reason = row
    erased = None if erased_at is None else (str(erased_at), str(erased_by), str(erasure_reason))
    refusal = _erasure_refusal(rid, erased=erased, hold=_hold_in_force(db, rid), state=str(state))
    if refusal is not None:
        raise InvariantError(refusal)
    (keys,) = db.execute("SELECT count(*) FROM key_store WHERE recording_id = ?", [rid]).fetchone()
    db.execute(
        "UPDATE recordings SET erased_at = ?, erased_by = ?, erasure_reason = ? WHERE id = ?",
        [to_db_time(item.at), item.actor, item.reason, rid],
    )
    _insert_later_event(
        db,
        LaterEvent(
            call_id=call_id,
            kind=LaterEventKind.ERASURE,
            at=item.at,
            actor=item.actor,
            detail={"recording_id": rid, "reason": item.reason},
        ),
    )
    AuditLog(db).append(
        at=item.at,
        actor=item.actor,
        action=AUDIT_ACTION_ERASE,
        subject=rid,
        detail={
            "call_id": call_id,
            "reason": item.reason,
            "file_name": file_name,
            "state": state,
            "wrapped_keys": int(keys),
        },
    )


def _hold_in_force(db: Database, rid: str) -> tuple[str, str, str] | None:
    """``(held_at, held_by, reason)`` of the recording's legal hold in force, as stored; None if none."""
    row = db.execute(
        "SELECT held_at, held_by, reason FROM legal_holds WHERE recording_id = ? AND released_at IS NULL",
        [rid],
    ).fetchone()
    return None if row is None else (str(row[0]), str(row[1]), str(row[2]))


def _write_legal_hold(db: Database, item: LegalHold) -> None:
    rid = str(item.recording_id)
    row = db.execute(
        "SELECT call_id, erased_at, erased_by, erasure_reason FROM recordings WHERE id = ?", [rid]
    ).fetchone()
    if row is None:
        raise NotFoundError(f"recording {rid} is not recorded")
    call_id, erased_at, erased_by, erasure_reason = row
    if erased_at is not None:
        raise InvariantError(
            f"recording {rid} was erased at {erased_at} by {erased_by} ({erasure_reason}): "
            "nothing is left to hold"
        )
    hold = _hold_in_force(db, rid)
    if hold is not None:
        held_at, held_by, hold_reason = hold
        raise InvariantError(
            f"recording {rid} is on legal hold already, since {held_at} by {held_by} ({hold_reason})"
        )
    _insert(
        db,
        "legal_holds",
        {"recording_id": rid, "held_at": to_db_time(item.at), "held_by": item.actor, "reason": item.reason},
    )
    _insert_later_event(
        db,
        LaterEvent(
            call_id=call_id,
            kind=LaterEventKind.LEGAL_HOLD,
            at=item.at,
            actor=item.actor,
            detail={"recording_id": rid, "reason": item.reason},
        ),
    )
    AuditLog(db).append(
        at=item.at,
        actor=item.actor,
        action=AUDIT_ACTION_LEGAL_HOLD,
        subject=rid,
        detail={"call_id": call_id, "reason": item.reason},
    )


_RELEASED_FIELDS = ("held_at", "held_by", "hold_reason")
"""What the release of a legal hold repeats of the hold, in its later event and its audit row."""


def _write_legal_hold_release(db: Database, item: LegalHoldRelease) -> None:
    rid = str(item.recording_id)
    row = db.execute("SELECT call_id FROM recordings WHERE id = ?", [rid]).fetchone()
    if row is None:
        raise NotFoundError(f"recording {rid} is not recorded")
    (call_id,) = row
    hold = _hold_in_force(db, rid)
    if hold is None:
        raise InvariantError(f"recording {rid} is not on legal hold")
    held_at, held_by, hold_reason = hold
    if item.at < from_db_time(held_at):
        raise InvariantError(f"recording {rid}: a legal hold cannot be released before it began ({held_at})")
    db.execute(
        "UPDATE legal_holds SET released_at = ?, released_by = ?, release_reason = ? "
        "WHERE recording_id = ? AND released_at IS NULL",
        [to_db_time(item.at), item.actor, item.reason, rid],
    )
    # What was released, so that the event and the audit row each tell the whole story.
    released = dict(zip(_RELEASED_FIELDS, (held_at, held_by, hold_reason), strict=True))
    _insert_later_event(
        db,
        LaterEvent(
            call_id=call_id,
            kind=LaterEventKind.LEGAL_HOLD_RELEASE,
            at=item.at,
            actor=item.actor,
            detail={"recording_id": rid, "reason": item.reason, **released},
        ),
    )
    AuditLog(db).append(
        at=item.at,
        actor=item.actor,
        action=AUDIT_ACTION_LEGAL_HOLD_RELEASE,
        subject=rid,
        detail={"call_id": call_id, "reason": item.reason, **released},
    )


def audited_changes_mismatches(db: Database) -> list[ManifestMismatch]:
    """The legal holds, releases, erasures and later events whose rows no longer say what their
    audit rows say (a hold deleted or invented, an erasure cleared or changed, a withdrawal deleted,
    changed or forged): these rows change after a recording ends, so its manifest leaves them out,
    and the audit row of each change is what fixes it. ``parts`` is ``legal hold`` or ``erasure``,
    or the kind of a later event (``withdrawal``: ``_later_event_mismatches``); ``seq`` the audit
    row, 0 for a row that no audit row records."""
    mismatches: list[ManifestMismatch] = []
    calls = {str(rid): str(call) for rid, call in db.execute("SELECT id, call_id FROM recordings")}

    def mismatch(rid: str, part: str, seq: int) -> None:
        mismatches.append(
            ManifestMismatch(recording_id=rid, call_id=calls.get(rid, ""), seq=seq, parts=(part,))
        )

    # What the audit log says: each hold (and its release, if any) and each erasure.
    holds: list[tuple[int, list[str | None]]] = []  # (seq, [rid, at, by, reason, released at, by, reason])
    erasures: dict[str, tuple[int, tuple[str, str, str]]] = {}
    audited = db.execute(
        "SELECT seq, at, actor, action, subject, detail FROM audit_log"
        " WHERE action IN (?, ?, ?) ORDER BY seq",
        [AUDIT_ACTION_LEGAL_HOLD, AUDIT_ACTION_LEGAL_HOLD_RELEASE, AUDIT_ACTION_ERASE],
    ).fetchall()
    for seq, at, actor, action, subject, detail in audited:
        rid = str(subject)
        try:
            reason = str(json.loads(str(detail))["reason"])
        except (ValueError, TypeError, KeyError):
            reason = ""
        if action == AUDIT_ACTION_LEGAL_HOLD:
            holds.append((int(seq), [rid, str(at), str(actor), reason, None, None, None]))
        elif action == AUDIT_ACTION_LEGAL_HOLD_RELEASE:
            held = [hold for _, hold in holds if hold[0] == rid and hold[4] is None]
            if held:
                held[-1][4:] = [str(at), str(actor), reason]
            else:
                mismatch(rid, "legal hold", int(seq))  # a release of no hold the log knows
        else:
            erasures[rid] = (int(seq), (str(at), str(actor), reason))
    stored = [
        [str(value) if value is not None else None for value in row]
        for row in db.execute(
            "SELECT recording_id, held_at, held_by, reason, released_at, released_by, release_reason"
            " FROM legal_holds ORDER BY rowid"
        )
    ]
    for seq, hold in holds:
        if hold in stored:
            stored.remove(hold)
        else:
            mismatch(str(hold[0]), "legal hold", seq)
    for row in stored:
        mismatch(str(row[0]), "legal hold", 0)
    for rid, erased_at, erased_by, erasure_reason in db.execute(
        "SELECT id, erased_at, erased_by, erasure_reason FROM recordings"
    ):
        seq, said = erasures.pop(str(rid), (0, None))
        now = None if erased_at is None else (str(erased_at), str(erased_by), str(erasure_reason))
        if now != said:
            mismatch(str(rid), "erasure", seq)
    for rid, (seq, _) in erasures.items():
        mismatch(rid, "erasure", seq)  # the erased recording's row is gone
    return mismatches + _later_event_mismatches(db)


class _LaterEventRow(NamedTuple):
    """A later event as its row stores it (``detail`` canonical JSON text), to compare by value."""

    call_id: str
    kind: str
    at: str
    actor: str
    detail: str


def _stored_detail(text: str) -> str:
    """A stored detail in canonical form (as written); text that is not a JSON object as it is."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return canonical_detail(value) if isinstance(value, dict) else text


def _audited_later_event(
    at: str, actor: str, action: str, subject: str, said: Mapping[str, Any]
) -> _LaterEventRow:
    """The later event an audit row records: a ``later_event`` row holds it whole; the row of a
    legal hold, its release or an erasure records the event its write stores beside it (the same
    time, actor and call, and the detail those writes give it). KeyError when the row lacks a field."""
    if action == AUDIT_ACTION_LATER_EVENT:
        detail = said["detail"]
        return _LaterEventRow(
            str(said["call_id"]),
            str(said["kind"]),
            str(said["at"]),
            str(said["actor"]),
            canonical_detail(detail) if isinstance(detail, dict) else str(detail),
        )
    event: dict[str, Any] = {"recording_id": subject, "reason": said["reason"]}
    kind = {
        AUDIT_ACTION_LEGAL_HOLD: LaterEventKind.LEGAL_HOLD,
        AUDIT_ACTION_LEGAL_HOLD_RELEASE: LaterEventKind.LEGAL_HOLD_RELEASE,
        AUDIT_ACTION_ERASE: LaterEventKind.ERASURE,
    }[action]
    if kind is LaterEventKind.LEGAL_HOLD_RELEASE:
        event.update({name: said[name] for name in _RELEASED_FIELDS})
    return _LaterEventRow(str(said["call_id"]), kind.value, at, actor, canonical_detail(event))


_LATER_EVENT_AUDIT_ACTIONS = (
    AUDIT_ACTION_LATER_EVENT,
    AUDIT_ACTION_LEGAL_HOLD,
    AUDIT_ACTION_LEGAL_HOLD_RELEASE,
    AUDIT_ACTION_ERASE,
)


def _later_event_mismatches(db: Database) -> list[ManifestMismatch]:
    """The later events whose rows no longer say what their audit rows say. Each audit row that
    records one (``_audited_later_event``) needs its row, as it was stored; each row needs its
    audit row. An audit row whose event is missing is reported together with a row of its call
    and kind that no audit row records, as one change; what is left on either side, alone (a row
    deleted; a row not in the audit log). A mismatch names the recording the event names (a
    hold's, an erasure's), else the call alone (``recording_id`` empty: a withdrawal)."""
    mismatches: list[ManifestMismatch] = []
    audited: list[tuple[int, _LaterEventRow]] = []
    for seq, at, actor, action, subject, detail in db.execute(
        f"SELECT seq, at, actor, action, subject, detail FROM audit_log WHERE action IN "
        f"({', '.join('?' * len(_LATER_EVENT_AUDIT_ACTIONS))}) ORDER BY seq",
        _LATER_EVENT_AUDIT_ACTIONS,
    ):
        try:
            said = json.loads(str(detail))
            event = _audited_later_event(str(at), str(actor), str(action), str(subject), said)
        except (ValueError, TypeError, KeyError):  # written so, as the chain check tells an edit
            call_id = str(subject) if action == AUDIT_ACTION_LATER_EVENT else ""
            mismatches.append(_later_event_mismatch(call_id, "later event", int(seq)))
            continue
        audited.append((int(seq), event))
    stored = [
        _LaterEventRow(str(call_id), str(kind), str(at), str(actor), _stored_detail(str(detail)))
        for call_id, kind, at, actor, detail in db.execute(
            "SELECT call_id, kind, at, actor, detail FROM later_events ORDER BY rowid"
        )
    ]
    unrecorded = Counter(stored)  # rows not yet matched with an audit row (a multiset: linear time)
    missing: list[tuple[int, _LaterEventRow]] = []
    for seq, event in audited:
        if unrecorded[event]:
            unrecorded[event] -= 1
        else:
            missing.append((seq, event))
    left: dict[tuple[str, str], list[_LaterEventRow]] = {}  # by call and kind, in stored order
    for row in stored:
        if unrecorded[row]:
            unrecorded[row] -= 1
            left.setdefault((row.call_id, row.kind), []).append(row)
    for seq, event in missing:
        # A row of the event's call and kind that no audit row records is most likely the event, changed.
        same = left.get((event.call_id, event.kind))
        if same:
            same.pop(0)
        mismatches.append(_later_event_mismatch(event.call_id, event.kind, seq, event))
    for rows in left.values():
        mismatches.extend(_later_event_mismatch(row.call_id, row.kind, 0, row) for row in rows)
    return mismatches


def _later_event_mismatch(
    call_id: str, kind: str, seq: int, event: _LaterEventRow | None = None
) -> ManifestMismatch:
    """A mismatch of a later event of ``kind``, named after the recording the event names, if any."""
    named = None
    if event is not None:
        with contextlib.suppress(ValueError, AttributeError):
            named = json.loads(event.detail).get("recording_id")
    return ManifestMismatch(
        recording_id=named if isinstance(named, str) else "",
        call_id=call_id,
        seq=seq,
        parts=(kind.replace("_", " "),),
    )


_WRITERS: dict[type, Callable[[Database, Any], None]] = {
    CallStarted: _write_call_started,
    CallEnded: _write_call_ended,
    Leg: _write_leg,
    Announcement: _write_announcement,
    AnnouncementEnd: _write_announcement_end,
    AgentNotice: _write_agent_notice,
    AgentNoticeEnd: _write_agent_notice_end,
    DtmfEvent: _write_dtmf,
    ConsentDecision: _write_consent,
    CallPurposes: _write_purposes,
    RecordingStarted: _write_recording_started,
    Pause: _write_pause,
    PauseEnd: _write_pause_end,
    NotRecorded: _write_not_recorded,
    LaterEvent: _write_later_event,
}


# --------------------------------------------------------------------------------------------------
# Evidence kept through a stop on a full disk: one JSON object per record


_HELD_TYPES: dict[str, type] = {kind.__name__: kind for kind in (*_WRITERS, RecordingEnd)}


def _plain(value: Any) -> Any:
    """``value`` as JSON: times as stored (``to_db_time``), ids and enums as their text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {item.name: _plain(getattr(value, item.name)) for item in dataclasses.fields(value)}
    if isinstance(value, dt.datetime):
        return to_db_time(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    return value


def _typed(annotation: Any, value: Any) -> Any:
    """``value`` read back from JSON as ``annotation`` (the field types of the evidence records)."""
    origin = typing.get_origin(annotation)
    if origin in (types.UnionType, typing.Union):
        if value is None:
            return None
        (kind,) = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return _typed(kind, value)
    if origin is tuple:
        return tuple(_typed(typing.get_args(annotation)[0], item) for item in value)
    if origin is not None:  # Mapping[str, Any]: a later event's detail, JSON already
        return dict(value)
    if annotation is dt.datetime:
        return from_db_time(value)
    if annotation is uuid.UUID:
        return uuid.UUID(value)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return annotation(value)
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        hints = typing.get_type_hints(annotation)
        return annotation(**{name: _typed(hints[name], item) for name, item in value.items()})
    return value


def held_record_json(record: EvidenceRecord | RecordingEnd, state: RecordingState | None = None) -> str:
    """One held record as a JSON line: ``{"record": "CallStarted", "fields": {...}}``; a recording's
    end names the ``state`` it ends in (``complete`` or ``truncated``)."""
    line: dict[str, Any] = {"record": type(record).__name__, "fields": _plain(record)}
    if state is not None:
        line["state"] = state.value
    return json.dumps(line, ensure_ascii=False, sort_keys=True)


def held_record_from_json(text: str) -> tuple[EvidenceRecord | RecordingEnd, RecordingState | None]:
    """The record (and a recording end's state) of a ``held_record_json`` line; ValueError if it
    is not one."""
    try:
        line = json.loads(text)
        kind = _HELD_TYPES[line["record"]]
        record = _typed(kind, line["fields"])
        state = None if line.get("state") is None else RecordingState(line["state"])
    except (KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"not a held evidence record: {error!r}") from error
    if (kind is RecordingEnd) != (state is not None):
        raise ValueError("a recording end, and only one, names the state it ends in")
    return record, state


def _write_held_record(
    db: Database,
    record: EvidenceRecord | RecordingEnd,
    state: RecordingState | None,
    signer: ManifestSigner | None,
) -> None:
    if isinstance(record, RecordingEnd):
        assert state is not None
        _write_recording_end(db, record, state, signer)
    else:
        _WRITERS[type(record)](db, record)


def _held_file_database(first_line: bytes) -> str | None:
    """The id of the evidence database a held file's first line names, or None if it names none."""
    try:
        mark = json.loads(first_line)
    except ValueError:
        return None
    if (
        isinstance(mark, dict)
        and list(mark) == [HELD_FILE_DATABASE_KEY]
        and isinstance(mark[HELD_FILE_DATABASE_KEY], str)
    ):
        return str(mark[HELD_FILE_DATABASE_KEY])
    return None


def _import_held_file(db: Database, path: Path, signer: ManifestSigner | None) -> None:
    """Write the records kept in ``path`` in one transaction with its audit row (see the module);
    a record the database refuses (an invariant, a line that is not a record) is logged whole and
    named in the audit row, and the others are written. Runs on the writer thread."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    # By content alone: a copy of a file written already, under any name, is not written twice.
    done = db.execute(
        "SELECT seq, subject FROM audit_log WHERE action = ? AND json_extract(detail, '$.sha256') = ?",
        [AUDIT_ACTION_HELD_IMPORTED, digest],
    ).fetchone()
    if done is not None:
        _LOG.warning(
            "%s: written into the evidence database already, as %s (audit row %d, the same SHA-256): removed",
            path,
            done[1],
            done[0],
        )
        return
    written, refused = 0, []
    with db.atomic():
        for number, raw in enumerate(data.splitlines(), start=1):
            if not raw.strip():
                continue
            if number == 1 and _held_file_database(raw) is not None:
                continue  # the mark of the database the file belongs to, not a record
            text = raw.decode("utf-8", errors="replace")
            try:
                record, state = held_record_from_json(text)
                with db.atomic():  # a savepoint: a refused record leaves nothing behind
                    _write_held_record(db, record, state, signer)
            except (ValueError, StorageError, sqlite3.IntegrityError) as error:
                _LOG.error("%s line %d not written: %s: %s", path, number, error, text)
                refused.append({"line": number, "error": str(error), "record": text})
            else:
                written += 1
        AuditLog(db).append(
            at=dt.datetime.now(dt.UTC),
            actor=HELD_IMPORT_ACTOR,
            action=AUDIT_ACTION_HELD_IMPORTED,
            subject=path.name,
            detail={"sha256": digest, "written": written, "refused": refused},
        )
    _LOG.warning(
        "%s: evidence kept while the disk was full is written into the evidence database"
        " (%d records, %d refused): removed",
        path,
        written,
        len(refused),
    )


# --------------------------------------------------------------------------------------------------
# Reads


def _call_record(row: Mapping[str, Any]) -> CallRecord:
    return CallRecord(
        call_id=row["id"],
        direction=Direction(row["direction"]),
        calling=row["calling"],
        called=row["called"],
        local_line=row["local_line"],
        agent_id=row["agent_id"],
        setup_at=from_db_time(row["setup_at"]),
        ended_at=None if row["ended_at"] is None else from_db_time(row["ended_at"]),
        end_reason=row["end_reason"],
    )


def _read_calls_for_number(db: Database, number: str) -> list[CallRecord]:
    rows = db.query(
        "SELECT * FROM calls WHERE calling = ? OR called = ? ORDER BY setup_at, rowid", [number, number]
    )
    return [_call_record(row) for row in rows]


def _measured_quality(column: str) -> dict[str, Any]:
    """A recording end's ``media_quality`` for the timeline: what the network cost its audio, when
    the recorder measured it. A column no writer stores is left out here: reading the recording
    itself reports it (``UnreadableRecordError``)."""
    try:
        quality = MediaQuality.from_json(column)
    except ValueError:
        return {}
    return {} if quality is None else {"media_quality": _plain(quality)}


def _read_timeline(db: Database, call_id: str) -> list[TimelineEvent]:
    call = next(db.query("SELECT * FROM calls WHERE id = ?", [call_id]), None)
    if call is None:
        raise NotFoundError(f"call {call_id} is not recorded")
    events: list[TimelineEvent] = [
        TimelineEvent(
            at=from_db_time(call["setup_at"]),
            kind=TimelineKind.CALL_SETUP,
            detail={
                "direction": call["direction"],
                "calling": call["calling"],
                "called": call["called"],
                "local_line": call["local_line"],
                "agent_id": call["agent_id"],
            },
        )
    ]
    for row in db.query(
        "SELECT a.* FROM announcements_played a JOIN legs l ON l.id = a.leg_id "
        "WHERE l.call_id = ? ORDER BY a.rowid",
        [call_id],
    ):
        detail = {
            "prompt_id": row["prompt_id"],
            "version": row["version"],
            "language": row["language"],
            "audio_sha256": row["audio_sha256"],
        }
        # A prompt that failed without sounding at all (it could not start: no version, ended as
        # it started) has no start to show; one cut off as it started (a crash) has.
        if row["failure"] is None or row["ended_at"] != row["started_at"] or row["version"]:
            events.append(
                TimelineEvent(
                    at=from_db_time(row["started_at"]),
                    kind=TimelineKind.ANNOUNCEMENT_START,
                    leg_id=row["leg_id"],
                    detail=detail,
                )
            )
        if row["ended_at"] is not None:
            events.append(
                TimelineEvent(
                    at=from_db_time(row["ended_at"]),
                    kind=TimelineKind.ANNOUNCEMENT_END,
                    leg_id=row["leg_id"],
                    detail={**detail, "complete": bool(row["complete"]), "failure": row["failure"]},
                )
            )
    for row in db.query(
        "SELECT n.* FROM agent_notices n JOIN legs l ON l.id = n.leg_id WHERE l.call_id = ? ORDER BY n.rowid",
        [call_id],
    ):
        events.append(
            TimelineEvent(
                at=from_db_time(row["started_at"]),
                kind=TimelineKind.AGENT_INFORMED,
                leg_id=row["leg_id"],
                detail={
                    "kind": row["kind"],
                    "name": row["name"],
                    "version": row["version"],
                    "language": row["language"],
                    "audio_sha256": row["audio_sha256"],
                    "ended_at": None if row["ended_at"] is None else from_db_time(row["ended_at"]),
                    "complete": bool(row["complete"]),
                    "failure": row["failure"],
                },
            )
        )
    for row in db.query(
        "SELECT d.* FROM dtmf_events d JOIN legs l ON l.id = d.leg_id WHERE l.call_id = ? ORDER BY d.rowid",
        [call_id],
    ):
        events.append(
            TimelineEvent(
                at=from_db_time(row["at"]),
                kind=TimelineKind.DTMF,
                leg_id=row["leg_id"],
                detail={
                    "digit": row["digit"],
                    "mechanism": row["mechanism"],
                    "counted": bool(row["counted"]),
                },
            )
        )
    for row in db.query("SELECT * FROM consent_decisions WHERE call_id = ? ORDER BY rowid", [call_id]):
        events.append(
            TimelineEvent(
                at=from_db_time(row["at"]),
                kind=TimelineKind.CONSENT,
                detail={
                    "question_id": row["question_id"],
                    "question_version": row["question_version"],
                    "purpose_id": row["purpose_id"],
                    "decision": row["decision"],
                    "mechanism": row["mechanism"],
                },
            )
        )
    for row in db.query("SELECT * FROM not_recorded WHERE call_id = ? ORDER BY rowid", [call_id]):
        events.append(
            TimelineEvent(
                at=from_db_time(row["at"]), kind=TimelineKind.NOT_RECORDED, detail={"reason": row["reason"]}
            )
        )
    for row in db.query("SELECT * FROM recordings WHERE call_id = ? ORDER BY rowid", [call_id]):
        rid = uuid.UUID(row["id"])
        events.append(
            TimelineEvent(
                at=from_db_time(row["started_at"]),
                kind=TimelineKind.RECORDING_START,
                recording_id=rid,
                detail={"file_name": row["file_name"], "key_id": _key_ids(row["key_id"])},
            )
        )
        events.append(
            TimelineEvent(
                at=from_db_time(row["first_frame_at"]), kind=TimelineKind.FIRST_FRAME, recording_id=rid
            )
        )
        if row["finished_at"] is not None:
            events.append(
                TimelineEvent(
                    at=from_db_time(row["finished_at"]),
                    kind=TimelineKind.RECORDING_END,
                    recording_id=rid,
                    detail={
                        "state": row["state"],
                        "audio_sha256": row["audio_sha256"],
                        "size_bytes": row["size_bytes"],
                        "duration_ms": row["duration_ms"],
                        "end_reason": row["end_reason"],
                        # A recording recovered after a crash: the SHA-256 of its file as recovered.
                        **({"file_sha256": row["file_sha256"]} if row["file_sha256"] else {}),
                        **_measured_quality(row["media_quality"]),
                    },
                )
            )
    for row in db.query(
        "SELECT p.* FROM pauses p JOIN recordings r ON r.id = p.recording_id "
        "WHERE r.call_id = ? ORDER BY p.rowid",
        [call_id],
    ):
        rid = uuid.UUID(row["recording_id"])
        events.append(
            TimelineEvent(
                at=from_db_time(row["started_at"]),
                kind=TimelineKind.PAUSE_START,
                recording_id=rid,
                detail={"reason": row["reason"]},
            )
        )
        if row["ended_at"] is not None:
            events.append(
                TimelineEvent(
                    at=from_db_time(row["ended_at"]),
                    kind=TimelineKind.PAUSE_END,
                    recording_id=rid,
                    detail={"reason": row["reason"]},
                )
            )
    if call["ended_at"] is not None:
        events.append(
            TimelineEvent(
                at=from_db_time(call["ended_at"]),
                kind=TimelineKind.CALL_END,
                detail={"end_reason": call["end_reason"]},
            )
        )
    for row in db.query("SELECT * FROM later_events WHERE call_id = ? ORDER BY rowid", [call_id]):
        events.append(
            TimelineEvent(
                at=from_db_time(row["at"]),
                kind=TimelineKind.LATER_EVENT,
                detail={"kind": row["kind"], "actor": row["actor"], **json.loads(row["detail"])},
            )
        )
    # Stable sort: equal (time, kind) keep the order in which they were stored.
    events.sort(key=lambda event: (event.at, _KIND_RANK[event.kind]))
    return events


def _key_ids(stored: str) -> list[str]:
    """The key ids of a recording row's ``key_id`` column (several are stored comma-joined)."""
    return stored.split(_KEY_ID_SEPARATOR)


def _number_key(number: str) -> str:
    """``number`` as the recordings filter compares it: spaces and dashes dropped, a leading ``+``
    ignored (as the configuration's policy prefixes are), so ``+44 20 7123 4567`` is ``442071234567``."""
    return number.replace(" ", "").replace("-", "").lstrip("+")


# _number_key in SQL, for a stored number.
_NUMBER_KEY_SQL = "ltrim(replace(replace({column}, ' ', ''), '-', ''), '+')"


def _read_recordings(
    db: Database,
    *,
    call_id: str | None,
    number: str | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    state: RecordingState | None,
    limit: int | None,
    kept_past: dt.date | None = None,
) -> list[RecordingRecord]:
    where: list[str] = []
    params: list[Any] = []
    if call_id is not None:
        where.append("r.call_id = ?")
        params.append(call_id)
    if number is not None:
        calling, called = (_NUMBER_KEY_SQL.format(column=column) for column in ("c.calling", "c.called"))
        where.append(f"({calling} = ? OR {called} = ?)")
        params += [_number_key(number)] * 2
    if since is not None:
        where.append("r.started_at >= ?")
        params.append(to_db_time(since))
    if until is not None:
        where.append("r.started_at < ?")
        params.append(to_db_time(until))
    if state is RecordingState.ERASED:
        where.append("r.erased_at IS NOT NULL")
    elif state is not None:
        where.append("r.state = ? AND r.erased_at IS NULL")
        params.append(state.value)
    if kept_past is not None:
        # Not erased, and every purpose it serves has a delete-after date before ``kept_past``; a
        # recording without purposes of its own (stored before they were kept) serves its call's.
        where.append(
            "r.erased_at IS NULL AND coalesce("
            "(SELECT max(cp.delete_after) FROM recording_purposes rp JOIN call_purposes cp "
            "ON cp.call_id = rp.call_id AND cp.purpose_id = rp.purpose_id WHERE rp.recording_id = r.id), "
            "(SELECT max(cp.delete_after) FROM call_purposes cp WHERE cp.call_id = r.call_id)) < ?"
        )
        params.append(to_db_date(kept_past))
    sql = (
        "SELECT r.*, c.direction, c.calling, c.called, h.held_at, h.held_by, h.reason AS hold_reason, "
        "m.seq AS manifest_seq, s.key_id AS manifest_key_id, s.signature AS manifest_signature "
        "FROM recordings r JOIN calls c ON c.id = r.call_id "
        "LEFT JOIN legal_holds h ON h.recording_id = r.id AND h.released_at IS NULL "
        "LEFT JOIN audit_log m ON m.seq = (SELECT max(seq) FROM audit_log "
        f"WHERE action = '{AUDIT_ACTION_MANIFEST}' AND subject = r.id) "
        "LEFT JOIN manifest_signatures s ON s.seq = m.seq"
        + ("" if not where else " WHERE " + " AND ".join(where))
        + " ORDER BY r.started_at, r.rowid"
    )
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    rows = list(db.query(sql, params))
    purposes = _read_purposes_of_recordings(db, [row["id"] for row in rows])
    # A recording stored before recordings kept their own purposes (no rows in
    # ``recording_purposes``) is shown with all of its call's purposes, as it was recorded for them.
    without = sorted({row["call_id"] for row in rows if row["id"] not in purposes})
    of_calls = _read_purposes_of_calls(db, without)
    return [
        _recording_record(row, purposes.get(row["id"]) or of_calls.get(row["call_id"], ())) for row in rows
    ]


def _recording_record(row: Mapping[str, Any], purposes: tuple[RecordedPurpose, ...]) -> RecordingRecord:
    # A value no writer of callherald stores (the database edited by hand, a disk fault) is
    # refused with the recording it is in, not a traceback: audit verify tells what changed.
    try:
        return RecordingRecord(
            recording_id=uuid.UUID(row["id"]),
            call_id=row["call_id"],
            file_name=row["file_name"],
            key_id=tuple(_key_ids(row["key_id"])),
            state=RecordingState.ERASED if row["erased_at"] is not None else RecordingState(row["state"]),
            started_at=from_db_time(row["started_at"]),
            first_frame_at=from_db_time(row["first_frame_at"]),
            finished_at=None if row["finished_at"] is None else from_db_time(row["finished_at"]),
            audio_sha256=row["audio_sha256"],
            size_bytes=row["size_bytes"],
            duration_ms=row["duration_ms"],
            end_reason=row["end_reason"],
            direction=Direction(row["direction"]),
            calling=row["calling"],
            called=row["called"],
            purposes=purposes,
            erased_at=None if row["erased_at"] is None else from_db_time(row["erased_at"]),
            erased_by=row["erased_by"],
            erasure_reason=row["erasure_reason"],
            held_at=None if row["held_at"] is None else from_db_time(row["held_at"]),
            held_by=row["held_by"],
            hold_reason=row["hold_reason"],
            file_sha256=row["file_sha256"],
            media_quality=MediaQuality.from_json(row["media_quality"]),
            manifest_seq=row["manifest_seq"],
            manifest_key_id=row["manifest_key_id"] or "",
            manifest_signature=row["manifest_signature"] or "",
            storage_region=row["storage_region"],
            worm=None if row["worm"] is None else bool(row["worm"]),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise UnreadableRecordError(
            f"recording {row['id']}: its row in the evidence record cannot be read ({error});"
            " callherald audit verify tells what changed"
        ) from error


def _read_call_purposes(db: Database, call_id: str) -> list[RecordedPurpose]:
    return list(_read_purposes_of_calls(db, [call_id]).get(call_id, ()))


def _recorded_purpose(row: Mapping[str, Any]) -> RecordedPurpose:
    return RecordedPurpose(
        purpose=Purpose(
            purpose_id=row["purpose_id"],
            lawful_basis=LawfulBasis(row["lawful_basis"]),
            reference=row["reference"],
            retention_days=int(row["retention_days"]),
        ),
        version=int(row["purpose_version"]),
        delete_after=from_db_date(row["delete_after"]),
    )


def _read_purposes_of_calls(db: Database, call_ids: list[str]) -> dict[str, tuple[RecordedPurpose, ...]]:
    """``call id -> its purposes`` (by purpose id) for ``call_ids``."""
    found: dict[str, list[RecordedPurpose]] = {}
    rows = db.query(
        "SELECT cp.call_id, cp.purpose_id, cp.purpose_version, cp.delete_after, p.lawful_basis, "
        "p.reference, p.retention_days "
        "FROM call_purposes cp JOIN purposes p ON p.id = cp.purpose_id AND p.version = cp.purpose_version "
        "WHERE cp.call_id IN (SELECT value FROM json_each(?)) ORDER BY cp.call_id, cp.purpose_id",
        [json.dumps(call_ids)],
    )
    for row in rows:
        found.setdefault(row["call_id"], []).append(_recorded_purpose(row))
    return {call_id: tuple(items) for call_id, items in found.items()}


def _read_purposes_of_recordings(
    db: Database, recording_ids: list[str]
) -> dict[str, tuple[RecordedPurpose, ...]]:
    """``recording id -> the purposes it serves`` (by purpose id, with its call's definition and
    delete-after date) for those of ``recording_ids`` that have purposes of their own."""
    found: dict[str, list[RecordedPurpose]] = {}
    rows = db.query(
        "SELECT rp.recording_id, cp.purpose_id, cp.purpose_version, cp.delete_after, p.lawful_basis, "
        "p.reference, p.retention_days FROM recording_purposes rp "
        "JOIN call_purposes cp ON cp.call_id = rp.call_id AND cp.purpose_id = rp.purpose_id "
        "AND cp.purpose_version = rp.purpose_version "
        "JOIN purposes p ON p.id = cp.purpose_id AND p.version = cp.purpose_version "
        "WHERE rp.recording_id IN (SELECT value FROM json_each(?)) ORDER BY rp.recording_id, rp.purpose_id",
        [json.dumps(recording_ids)],
    )
    for row in rows:
        found.setdefault(row["recording_id"], []).append(_recorded_purpose(row))
    return {recording_id: tuple(items) for recording_id, items in found.items()}


def _read_delete_after(db: Database, call_id: str) -> dict[str, dt.date]:
    rows = db.execute(
        "SELECT purpose_id, delete_after FROM call_purposes WHERE call_id = ? ORDER BY purpose_id", [call_id]
    )
    return {str(purpose): from_db_date(str(date)) for purpose, date in rows}


# --------------------------------------------------------------------------------------------------
# The store


@dataclass(eq=False, slots=True)
class _Write:
    """One queued write and the future its submitter holds."""

    operation: Callable[[Database], Any]
    transaction: bool
    hold_when_full: bool
    result: Future[Any]
    # What the write stores, for the file that keeps it if the store closes while it is held.
    record: EvidenceRecord | RecordingEnd | None = None
    state: RecordingState | None = None


def _write_new_file(path: Path, data: bytes) -> None:
    """Create ``path`` (mode 0600; it holds personal data) with ``data``, flushed to the disk with
    its directory entry; nothing is left of it on failure."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_directory(path.parent)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _free_bytes(path: Path) -> int | None:
    """Free space on the disk holding ``path``; None when it cannot be read."""
    try:
        return shutil.disk_usage(path.parent).free
    except OSError:
        return None


def _disk_full(path: Path) -> bool:
    return _free_bytes(path) == 0


def _short_of_space(path: Path) -> bool:
    free = _free_bytes(path)
    return free is not None and free < OPEN_FREE_BYTES


def _stored_database_id(path: Path) -> str | None:
    """The id of the database at ``path`` read without its ``-shm`` and ``-wal`` files (it may be
    read so only because nothing writes it: this store holds the data directory), or None."""
    try:
        db = connect_immutable(path)
    except (OSError, sqlite3.Error):
        return None
    try:
        return _read_database_id(db)
    except (sqlite3.Error, TypeError):  # TypeError: no id row
        return None
    finally:
        db.close()


def _read_database_id(db: Database) -> str:
    """The id the database was given when it was made; TypeError when it has none."""
    return str(db.execute("SELECT id FROM database_id").fetchone()[0])


class EvidenceStore:
    """The evidence database at ``path``: one writer thread, one read-only reader thread.

    Opening creates the file if needed, switches it to WAL and applies the migrations; it raises
    ``StorageError`` if the database cannot be opened. Use as a context manager or call ``close``.
    ``held_dir`` is where closing on a full disk keeps the held writes (ideally on another disk),
    else, or when that fails, in the database's directory; ``import_held_evidence`` reads both.

    ``read_only`` opens an existing database for reading only (``open_reader``; works on a
    read-only copy or mount): every write raises ``StorageError``. One an earlier callherald wrote
    (migrations pending) is upgraded first where its directory can be written, and refused where
    it cannot.

    ``wait_for_space``: where the disk is too full to open the database at all, start without it
    and open it on a later write (``waiting_for_space``; see the module docstring) instead of
    raising ``StorageError``.

    ``manifest_signer`` signs each recording's manifest as its end is written (``storage.signing``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        held_dir: str | os.PathLike[str] | None = None,
        read_only: bool = False,
        wait_for_space: bool = False,
        manifest_signer: ManifestSigner | None = None,
    ) -> None:
        self.path = Path(path)
        self.manifest_signer = manifest_signer
        self.held_dirs = tuple(
            dict.fromkeys([*([Path(held_dir)] if held_dir is not None else []), self.path.parent])
        )
        self.read_only = read_only
        self._wait_for_space = wait_for_space and not read_only
        self._waiting = False  # the database could not be opened for lack of space: see above
        self._opened_late = False  # it was opened after waiting: the reader opens on its next read
        self._closed = False
        self._lock = threading.Lock()
        self._writer_db: Database | None = None
        self._reader_db: Database | None = None
        self._open_error: BaseException | None = None
        self._held: deque[_Write] = deque()  # touched on the writer thread only
        self._database_id: str | None = None  # set by the writer thread as it opens the database
        self._retry: threading.Timer | None = None
        if read_only:
            self._upgrade_if_behind()
        self._writer = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="evidence-writer", initializer=self._open_writer
        )
        self._ready(self._writer, "writer")
        self._reader = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="evidence-reader", initializer=self._open_reader
        )
        self._ready(self._reader, "reader")

    # A failed open is kept, not raised in the thread: the executor would log it with a traceback;
    # ``_ready`` raises it as a StorageError in the caller's thread instead.

    def _open_writer(self) -> None:
        name_os_thread("evidence-writer")
        if self.read_only:
            return
        try:
            self._writer_db = open_writer(self.path)
            self._database_id = _read_database_id(self._writer_db)
        except Exception as exc:
            self._open_error = exc

    def _open_reader(self) -> None:
        name_os_thread("evidence-reader")
        try:
            self._reader_db = open_reader(self.path)
        except Exception as exc:
            self._open_error = exc

    def _upgrade_if_behind(self) -> None:
        """Read-only: apply the migrations an earlier callherald's database lacks, as opening it for
        writing does, where its directory can be written; refuse it where it cannot."""
        unwritable = unwritable_reason(self.path.parent)
        try:
            reader = open_reader(self.path)
            try:
                pending = MIGRATIONS.pending(reader)
            finally:
                reader.close()
            if pending and unwritable is None:
                open_writer(self.path).close()
            elif pending:
                raise StorageError("an earlier callherald wrote it, and its schema cannot be upgraded here")
        except (OSError, sqlite3.Error, StorageError) as error:
            raise self._open_failure("reader", error) from error

    def _ready(self, executor: ThreadPoolExecutor, role: str) -> None:
        try:
            executor.submit(lambda: None).result()
        except BrokenThreadPool as broken:  # the initializer raised past its own handler
            self._open_error = self._open_error or broken
        if self._open_error is None:
            return
        if not isinstance(self._open_error, BrokenThreadPool) and (
            self._waiting or (role == "writer" and self._wait_for_space and _short_of_space(self.path))
        ):
            # No room for the -shm and -wal files: start without the database (the reader cannot
            # open it either) and open it on a later write.
            self._open_error = None
            if not self._waiting:
                self._waiting = True
                self._database_id = _stored_database_id(self.path)
            return
        executor.shutdown(wait=True)
        if role == "reader":
            self._writer.submit(self._close_writer).result()
            self._writer.shutdown(wait=True)
        raise self._open_failure(role, self._open_error) from self._open_error

    def _open_failure(self, role: str, error: BaseException) -> StorageError:
        unwritable = unwritable_reason(self.path.parent)
        if unwritable is not None:
            hint = f"; {self.path.parent} {unwritable}"
        elif _disk_full(self.path):
            hint = "; the disk holding it is full"
        else:
            hint = ""
        return StorageError(f"{self.path}: cannot open the evidence database ({role}): {error}{hint}")

    # -- generic submission ------------------------------------------------------------------------

    def submit_write(
        self, operation: Callable[[Database], T], *, transaction: bool = True, hold_when_full: bool = False
    ) -> Future[T]:
        """Run ``operation(db)`` on the writer thread, inside ``db.atomic()`` unless ``transaction``
        is False (for statements that cannot run in a transaction, such as a WAL checkpoint).

        On a full database the future fails with ``EvidenceFullError``, or with ``hold_when_full``
        the write waits for space (see the module docstring). While writes are held, one without
        ``hold_when_full`` fails at once: it would overtake them."""
        return self._queue(_Write(operation, transaction, hold_when_full, Future()))

    def _queue(self, write: _Write) -> Future[Any]:
        with self._lock:
            if self._closed:
                raise StorageError("the evidence store is closed")
            if self.read_only:
                raise StorageError(f"{self.path}: the evidence database is open read-only")
            self._writer.submit(self._run_write, write)
        return write.result

    @property
    def waiting_for_space(self) -> bool:
        """Whether the database could not be opened yet for lack of disk space (``wait_for_space``)."""
        return self._waiting

    @property
    def held(self) -> int:
        """How many writes wait for the full database to take them."""
        return len(self._held)

    def _run_write(self, write: _Write) -> None:
        # Writer thread: held writes go first, in order; a new one waits behind them.
        self._write_held()
        if self._held:
            self._hold_or_fail(write, "earlier evidence is waiting for disk space")
        elif not self._attempt(write):
            self._hold_or_fail(write, "the disk is full")

    def _hold_or_fail(self, write: _Write, why: str) -> None:
        if not write.hold_when_full:
            write.result.set_exception(EvidenceFullError(f"{self.path}: evidence not written: {why}"))
            return
        if not self._held:
            _LOG.error("%s: the disk is full: evidence is held in memory until it can be written", self.path)
        self._held.append(write)
        self._schedule_retry()

    def _attempt(self, write: _Write) -> bool:
        """Run one write; False when the database was full (nothing of it is left behind)."""
        db = self._writer_db
        if db is None and self._waiting:
            db = self._open_after_waiting()
            if db is None:
                return False
        try:
            if db is None:
                raise StorageError("the evidence writer is not open")
            if write.transaction:
                with db.atomic():
                    value = write.operation(db)
            else:
                value = write.operation(db)
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode != sqlite3.SQLITE_FULL:
                write.result.set_exception(error)
                return True
            if db is not None and db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
            return False
        except BaseException as error:
            write.result.set_exception(error)
            return True
        write.result.set_result(value)
        return True

    def _open_after_waiting(self) -> Database | None:
        """Writer thread: open the database a full disk kept closed; None while it still cannot be."""
        try:
            db = open_writer(self.path)
        except (OSError, sqlite3.Error, StorageError):
            return None
        try:
            database_id = _read_database_id(db)
        except (sqlite3.Error, TypeError):
            db.close()
            return None
        self._writer_db, self._database_id = db, database_id
        self._waiting, self._opened_late = False, True
        _LOG.warning("%s: disk space is back: the evidence database is open", self.path)
        return db

    def _write_held(self) -> None:
        if not self._held:
            return
        while self._held:
            if not self._attempt(self._held[0]):
                return
            self._held.popleft()
        _LOG.warning("%s: disk space is back: the held evidence is written", self.path)

    def _schedule_retry(self) -> None:
        if self._retry is not None:
            return

        def retry() -> None:
            with self._lock:
                self._retry = None
                if not self._closed:
                    self._writer.submit(self._retry_held)

        self._retry = threading.Timer(HELD_RETRY_S, retry)
        self._retry.daemon = True
        self._retry.start()

    def _retry_held(self) -> None:
        self._write_held()
        if self._held:
            self._schedule_retry()

    def submit_read(self, operation: Callable[[Database], T]) -> Future[T]:
        """Run ``operation(db)`` on the reader thread's read-only connection."""

        def run() -> T:
            db = self._reader_db
            if db is None and self._opened_late:
                db = self._reader_db = open_reader(self.path)
            if db is None and self._waiting:
                raise StorageError(
                    f"{self.path}: the evidence database is not open: the disk holding it is too full"
                )
            if db is None:
                raise StorageError("the evidence reader is not open")
            return operation(db)

        with self._lock:
            if self._closed:
                raise StorageError("the evidence store is closed")
            return self._reader.submit(run)

    def submit(self, record: EvidenceRecord, *, hold_when_full: bool = False) -> Future[None]:
        """Queue one evidence record for writing in its own transaction."""
        writer = _WRITERS[type(record)]
        return self._queue(_Write(lambda db: writer(db, record), True, hold_when_full, Future(), record))

    def write(self, record: EvidenceRecord) -> None:
        """Write one evidence record and wait (synchronous convenience for the CLI and tests)."""
        self.submit(record).result()

    # -- named writes --------------------------------------------------------------------------------

    def record_recording_finished(self, end: RecordingEnd, *, hold_when_full: bool = False) -> Future[None]:
        return self._record_recording_end(end, RecordingState.COMPLETE, hold_when_full=hold_when_full)

    def record_recording_truncated(self, end: RecordingEnd, *, hold_when_full: bool = False) -> Future[None]:
        return self._record_recording_end(end, RecordingState.TRUNCATED, hold_when_full=hold_when_full)

    def _record_recording_end(
        self, end: RecordingEnd, state: RecordingState, *, hold_when_full: bool
    ) -> Future[None]:
        def write(db: Database) -> None:
            _write_recording_end(db, end, state, self.manifest_signer)

        return self._queue(_Write(write, True, hold_when_full, Future(), end, state))

    def import_held_evidence(self) -> Future[int]:
        """Write the evidence an earlier run kept beside the database, as it closed on a full disk
        (``held_dirs``, files matching ``HELD_FILE_PATTERN``, oldest first; see the module), and
        remove each file once written. The future holds how many files were written. A file that
        cannot be written now (the disk is still full) is logged and left for the next start."""

        def run(db: Database) -> int:
            imported = 0
            kept = (path for directory in self.held_dirs for path in directory.glob(HELD_FILE_PATTERN))
            for path in sorted(kept, key=lambda path: path.name):
                try:
                    if not self._held_file_is_ours(path):
                        continue
                    _import_held_file(db, path, self.manifest_signer)
                    path.unlink()
                except (OSError, sqlite3.Error, StorageError) as error:
                    _LOG.error(
                        "%s: kept evidence not written into the database yet (%s): left for the next start",
                        path,
                        error,
                    )
                else:
                    imported += 1
            return imported

        return self.submit_write(run, transaction=False)

    def _held_file_is_ours(self, path: Path) -> bool:
        """Whether ``path`` is this database's to write in: its first line names this database, or
        it names none and lies beside the database (made by hand from the log, or by an earlier
        callherald). One that another database kept, or that names none in a ``held_dir`` that
        others may share, is logged and left in place. Runs on the writer thread."""
        with path.open("rb") as file:
            owner = _held_file_database(file.readline())
        if owner is None and path.parent == self.path.parent:
            return True
        if owner is not None and owner == self._database_id:
            return True
        if owner is None:
            _LOG.warning(
                "%s: names no evidence database (its first line would): left in place; if it is the"
                " evidence of %s, move it beside that database, into %s",
                path,
                self.path,
                self.path.parent,
            )
        else:
            _LOG.warning(
                "%s: evidence kept by another evidence database (id %s; this one is %s): left in place"
                " for the callherald whose database that is",
                path,
                owner,
                self._database_id,
            )
        return False

    def record_legal_hold(self, hold: LegalHold) -> Future[None]:
        """Put a recording on legal hold (see the module). The future fails with ``NotFoundError``
        for an unknown recording, ``InvariantError`` for one erased or on hold already."""
        return self.submit_write(lambda db: _write_legal_hold(db, hold))

    def record_legal_hold_release(self, release: LegalHoldRelease) -> Future[None]:
        """Release a recording's legal hold. The future fails with ``NotFoundError`` for an unknown
        recording, ``InvariantError`` for one not on hold."""
        return self.submit_write(lambda db: _write_legal_hold_release(db, release))

    def define_purposes(
        self, purposes: tuple[Purpose, ...], *, at: dt.datetime
    ) -> Future[list[PurposeChange]]:
        """Store the definitions calls are recorded under from now on (at start-up), in one
        transaction: a purpose whose latest version differs gets the next version and an audit row
        made ``at``. The future holds those changes."""
        _aware("at", at)
        return self.submit_write(lambda db: _define_purposes(db, purposes, at))

    def audit_append(
        self,
        *,
        at: dt.datetime,
        actor: str,
        action: str,
        subject: str,
        detail: Mapping[str, Any] | None = None,
    ) -> Future[AuditEntry]:
        """Append to the hash-chained audit log (on the writer thread)."""
        return self.submit_write(
            lambda db: AuditLog(db).append(at=at, actor=actor, action=action, subject=subject, detail=detail)
        )

    # -- reads (synchronous; they wait for the reader thread) ---------------------------------------

    def calls_for_number(self, number: str) -> list[CallRecord]:
        """Calls where ``number`` is the calling or the called number, oldest first (subject access)."""
        return self.submit_read(lambda db: _read_calls_for_number(db, number)).result()

    def call_timeline(self, call_id: str) -> list[TimelineEvent]:
        """Every timed evidence entry of the call in time order; ``NotFoundError`` for an unknown call."""
        return self.submit_read(lambda db: _read_timeline(db, call_id)).result()

    def recordings_list(
        self,
        *,
        call_id: str | None = None,
        number: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        state: RecordingState | None = None,
        limit: int | None = None,
    ) -> list[RecordingRecord]:
        """Recordings by start time, filtered by call, number, ``since <= started_at < until`` and state.

        ``number`` is the whole calling or called number, compared as ``_number_key`` gives it."""
        _aware("since", since)
        _aware("until", until)
        return self.submit_read(
            lambda db: _read_recordings(
                db, call_id=call_id, number=number, since=since, until=until, state=state, limit=limit
            )
        ).result()

    def call_purposes(self, call_id: str) -> list[RecordedPurpose]:
        """The purposes of the call with the definition each was recorded under, by purpose id."""
        return self.submit_read(lambda db: _read_call_purposes(db, call_id)).result()

    def recordings_past_retention(self, today: dt.date) -> list[RecordingRecord]:
        """Recordings not erased whose own purposes all have a delete-after date before ``today``
        (a recording is kept while any purpose it serves still allows it), by start time. Those on
        legal hold are among them (``held_at`` set): erasure refuses them, so the caller keeps them."""
        return self.submit_read(
            lambda db: _read_recordings(
                db, call_id=None, number=None, since=None, until=None, state=None, limit=None, kept_past=today
            )
        ).result()

    def delete_after_dates(self, call_id: str) -> dict[str, dt.date]:
        """``purpose id -> delete_after`` of the call."""
        return self.submit_read(lambda db: _read_delete_after(db, call_id)).result()

    def audit_verify(self, *, expected_head: str | None = None) -> AuditReport:
        """Walk the audit chain on the reader connection."""
        return self.submit_read(lambda db: AuditLog(db).verify(expected_head=expected_head)).result()

    def verify_manifests(self) -> ManifestReport:
        """Rebuild each recording's manifest from the rows as they are now and compare it with the
        one in the audit log (``storage.manifests``); and check legal holds, erasures and later
        events against the audit rows that recorded them (``audited_changes_mismatches``). On the
        reader connection."""
        return self.submit_verify_manifests().result()

    def submit_verify_manifests(self) -> Future[ManifestReport]:
        """``verify_manifests`` queued on the reader thread, without waiting for it (it reads every
        recording's evidence: long on a large database)."""

        def verify(db: Database) -> ManifestReport:
            report = verify_manifests(db)
            audited = audited_changes_mismatches(db)
            return dataclasses.replace(report, mismatches=(*report.mismatches, *audited))

        return self.submit_read(verify)

    def verify_manifest_signatures(self, trusted: Sequence[Ed25519PublicKey]) -> SignatureReport:
        """Check every manifest's signature against the ``trusted`` public keys
        (``storage.signing.verify_manifest_signatures``). On the reader connection."""
        return self.submit_read(partial(verify_manifest_signatures, trusted=trusted)).result()

    # -- lifetime -----------------------------------------------------------------------------------

    def _close_writer(self) -> None:
        # A stop is not a reason to lose evidence, nor to hang for ever: a few more tries, then a
        # file, then the log (GDPR Art. 5(2): what the record must show is never dropped silently).
        deadline = time.monotonic() + CLOSE_RETRY_S
        self._write_held()
        while self._held and time.monotonic() < deadline:
            time.sleep(max(0.0, min(HELD_RETRY_S, deadline - time.monotonic())))
            self._write_held()
        if self._held:
            self._keep_held()
        if self._writer_db is not None:
            self._writer_db.close()
            self._writer_db = None

    def _keep_held(self) -> None:
        """Keep the writes still held in a new file in the first of ``held_dirs`` that takes it, or
        failing that in the log."""
        held, self._held = list(self._held), deque()
        lost = [write.result for write in held if write.record is None]  # none of ours: ``submit_write``
        if lost:
            _LOG.error(
                "%s: closed with %d evidence writes waiting for disk space: lost", self.path, len(lost)
            )
            for result in lost:
                result.set_exception(
                    EvidenceFullError(f"{self.path}: the store closed while the disk was full")
                )
        kept = [
            (write.result, held_record_json(write.record, write.state))
            for write in held
            if write.record is not None
        ]
        if not kept:
            return
        lines = [line for _, line in kept]
        mark = json.dumps({HELD_FILE_DATABASE_KEY: self._database_id})
        data = "".join(line + "\n" for line in [mark, *lines]).encode("utf-8")
        name = f"evidence-held-{self._database_id}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%fZ}.jsonl"
        failures = []
        why: EvidenceFullError
        for directory in self.held_dirs:
            try:
                _write_new_file(directory / name, data)
            except OSError as error:
                failures.append(f"{directory / name}: {error.strerror or error}")
                continue
            _LOG.warning(
                "%s: closed with %d evidence records waiting for disk space: kept in %s, which the next"
                " start writes into the database",
                self.path,
                len(lines),
                directory / name,
            )
            why = EvidenceKeptError(
                f"{self.path}: the store closed while the disk was full; kept in {directory / name}"
            )
            break
        else:
            _LOG.error(
                "%s: closed with %d evidence records waiting for disk space, which cannot be kept in a"
                " file (%s): each follows as one JSON line; put them, in this order, into a file %s in"
                " %s and the next start writes them into the database",
                self.path,
                len(lines),
                "; ".join(failures),
                HELD_FILE_PATTERN,
                self.path.parent,
            )
            for line in lines:
                _LOG.error("held evidence: %s", line)
            why = EvidenceFullError(f"{self.path}: the store closed while the disk was full; in the log only")
        for result, _ in kept:
            result.set_exception(why)

    def _close_reader(self) -> None:
        if self._reader_db is not None:
            self._reader_db.close()
            self._reader_db = None

    def close(self) -> None:
        """Finish queued work, close both connections (each in its own thread) and stop the threads."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._retry is not None:
                self._retry.cancel()
                self._retry = None
        self._reader.submit(self._close_reader).result()
        self._reader.shutdown(wait=True)
        self._writer.submit(self._close_writer).result()
        self._writer.shutdown(wait=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
