"""The proxy's call facts and recordings, written to encrypted storage and the evidence database.

`StorageRecords` is both ports the proxy defines for this: ``CallRecordSink`` (call set-up and
end, announcements, digits, consent decisions, recording start and stop, a recording that could
not start and why, what told the agent the call is recorded) and ``RecordingSink`` (the audio;
``open`` raises ``RecordingUnavailableError`` saying why no recording can start). Evidence rows
go to the `EvidenceStore`'s writer thread; audio goes to one file thread of our own, which seals
each one-second block into the recording's `SegmentWriter`, so neither SQLite nor encryption ever
runs on the event loop.

Times: the proxy reports the event loop's clock; they become UTC wall-clock times here.

The store checks a recording's row (notice heard, purposes recorded) on its writer thread, after
the proxy was told the recording runs. One it refuses keeps no file and no audio, and its call is
stored and logged as ``not_recorded``, with the store's reason, after ``recording_started``; the
proxy is told too (``on_stopped``, called on its event loop), so it stops recording the call. So it
is when the audio can no longer be written (a full disk, a failed write, below).

Recordings never hold plaintext on disk: each block is sealed in memory and appended. The SHA-256
of the plaintext (the decrypted audio, interleaved s16le) is kept in the record as
``audio_sha256``, so an export can prove it decrypted exactly what was recorded.

On a full disk (`StorageFullError`, or less than ``min_free_mb`` free before a new recording) the
recording stops where its last sealed segment ends (its record ends there, reason ``disk full``,
and the evidence log says ``recording_cut_off``), the proxy stops recording the call
(``on_stopped``), the call goes on, and new recordings are
refused until space returns (``min_free_mb``, and after a full disk at least
``RESUME_FREE_BYTES``); the error is logged. So they are while the file thread is more than
``max_write_delay_s`` behind (a slow or stalled disk: the audio handed to it waits in memory), until
it is back within half of that. Evidence the database cannot take while the disk is
full is held in memory, in order, and written when space returns (``hold_when_full``); no new
recording starts while any waits, as its row could not be written before its audio. What still
waits when callherald stops is kept in a file beside the database (or, failing that, logged whole)
and written into it by the next start (``EvidenceStore.import_held_evidence``, before ``recover``).

`define_purposes` runs once at start-up: a purpose whose configured definition (lawful basis,
reference, retention) differs from the one stored last is stored as its next version, which new
calls are recorded under (calls recorded before keep theirs); the audit log and the log say so.

`recover` runs once at start-up: recordings a crash left open are read up to their last intact
segment and marked truncated with their real duration (a pause still open ends there) and the
SHA-256 of their file; one whose file no crash leaves so (corrupt, unreadable) is kept as found and
said so, as an error; calls left open are closed, and with them the prompts and agent notices they
were playing, as interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import hashlib
import logging
import os
import shutil
import time
import urllib.parse
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from sqlite_utils import Database

from callherald.announcing import CLOCK_STEP_S, log_evidence, not_recorded_event
from callherald.layout import DataLayout
from proxy.aio.recording import ChannelQuality, MediaQuality, RecordingHandle, RecordingUnavailableError
from proxy.aio.service import AgentInformed, AgentInformStarted, CallRecordSink
from proxy.b2bua import consent
from proxy.b2bua.effects import (
    CallEnded,
    CallStarted,
    Evidence,
    MediaLeg,
    PauseRecording,
    ResumeRecording,
    StartRecording,
    StopRecording,
    Tone,
)
from storage import records as store
from storage.crypto import StorageError, StorageFullError, key_id
from storage.recording_state import (
    CORRUPT_RECORDING,
    INTERRUPTED_RECORDING,
    UNREADABLE_RECORDING,
    recovery_fault,
)
from storage.segments import AudioFormat, FsyncPolicy, RecoveryState, SegmentWriter, recover
from storage.sqlite_keys import SqliteKeyStore
from storage.threads import name_os_thread

__all__ = [
    "CORRUPT_RECORDING",
    "INTERRUPTED_AGENT_NOTICE",
    "INTERRUPTED_PROMPT",
    "INTERRUPTED_RECORDING",
    "NO_RECIPIENT_KEY",
    "RECORDING_WRITER_THREAD",
    "RESUME_FREE_BYTES",
    "UNREADABLE_RECORDING",
    "PurposeFacts",
    "RecordSinks",
    "StorageRecords",
    "define_purposes",
    "recover_open_recordings",
    "recovery_fault",
]

_LOG = logging.getLogger("callherald.storage")
AUDIO_FORMAT = AudioFormat(codec="pcm_s16le", sample_rate_hz=8000, channels=2, sample_width_bytes=2)
WIDEBAND_AUDIO_FORMAT = AudioFormat(codec="pcm_s16le", sample_rate_hz=16000, channels=2, sample_width_bytes=2)
SEGMENT_MS = 1000
RESUME_FREE_BYTES = 1024 * 1024
"""After a full disk, recording resumes only with this much free (``min_free_mb`` may be 0)."""
NO_RECIPIENT_KEY = "no recipient key to encrypt recordings to"
"""Why no recording starts when no recipient key is configured and no development key was made."""
RECORDING_WRITER_THREAD = "rec-writer"
"""The operating-system name of the thread that seals and writes recordings (``top -H`` shows it)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PurposeFacts:
    """What the evidence record needs of a configured purpose."""

    lawful_basis: str
    reference: str
    retention_days: int


def _stored_purpose(purpose_id: str, facts: PurposeFacts) -> store.Purpose:
    return store.Purpose(
        purpose_id=purpose_id,
        lawful_basis=store.LawfulBasis(facts.lawful_basis),
        reference=facts.reference,
        retention_days=facts.retention_days,
    )


@dataclass(slots=True)
class _CallState:
    direction: str
    outside_leg: MediaLeg
    clock_offset: float  # wall clock less loop clock as the call started (``StorageRecords.utc``)
    purposes_written: set[str] = field(default_factory=set)
    # Per leg, the prompt playing: its row's leg id (a transfer changes it) and start.
    playing: dict[MediaLeg, tuple[str, consent.AnnouncementStarted]] = field(default_factory=dict)
    party: int = 0  # the outside party's number: a transfer brings party 1, 2, ...
    # What plays to the agent, by leg, name and start (loop clock): its row's leg id.
    informing: dict[tuple[MediaLeg, str, float], str] = field(default_factory=dict)
    recording: _Recording | None = None


class _Recording:
    """One recording file: its writer lives on the file thread; the loop only queues blocks."""

    def __init__(
        self,
        owner: StorageRecords,
        call_ref: str,
        recording_id: uuid.UUID,
        started: dt.datetime,
        *,
        purposes: tuple[str, ...],
        policy: str,
        on_stopped: Callable[[str], None] | None = None,
    ) -> None:
        self.owner = owner
        self.call_ref = call_ref
        self.purposes = purposes
        self.policy = policy
        self.recording_id = recording_id
        self.started = started
        self.clock_offset = owner.clock_offset(call_ref)
        self.writer: SegmentWriter | None = None
        self.failed = False
        self.cut_off: str | None = None  # why writing stopped before the recording ended
        self.sha256 = hashlib.sha256()
        self.pcm_bytes = 0
        self.audio_format = AUDIO_FORMAT
        self.pause_started: dict[store.PauseReason, dt.datetime] = {}  # the pauses open, by reason
        # The proxy's loop and what it asked to be told if the store stops keeping the recording.
        self.loop = asyncio.get_running_loop()
        self.on_stopped = on_stopped

    def audio_end(self) -> dt.datetime:
        """Where the audio written so far ends (the first frame plus its duration)."""
        return self.started + dt.timedelta(seconds=self.audio_format.duration_s(self.pcm_bytes))


def _pause_reason(reason: str) -> store.PauseReason | None:
    """The stored reason of a pause (``hold``, ``pci``, ``api``); None for one the record does not know."""
    try:
        return store.PauseReason(reason)
    except ValueError:
        return None


def _stored_media_quality(quality: MediaQuality) -> store.MediaQuality:
    """The recorder's measure of what the network cost a recording, as its evidence keeps it."""

    def channel(measured: ChannelQuality) -> store.ChannelQuality:
        return store.ChannelQuality(**dataclasses.asdict(measured))  # the same fields, by name

    return store.MediaQuality(
        outside_party=channel(quality.outside_party), pbx_side=channel(quality.pbx_side)
    )


class _Handle:
    """The proxy's view of one recording (``RecordingHandle``)."""

    def __init__(self, owner: StorageRecords, recording: _Recording) -> None:
        self._owner = owner
        self._recording = recording

    def write(self, pcm: bytes) -> None:
        self._owner._submit_file(lambda: self._owner._write_block(self._recording, pcm))

    def pause(self, reason: str, at: float) -> None:
        pause_reason = _pause_reason(reason)
        if pause_reason is None or pause_reason in self._recording.pause_started:
            return
        started = self._owner.utc(at, offset=self._recording.clock_offset)
        self._recording.pause_started[pause_reason] = started
        self._owner._pause_started(self._recording, pause_reason, started)

    def resume(self, reason: str, at: float) -> None:
        recording = self._recording
        pause_reason = _pause_reason(reason)
        if pause_reason is None:
            return
        started = recording.pause_started.pop(pause_reason, None)
        if started is None:
            return
        self._owner._pause_ended(
            recording, pause_reason, started, max(started, self._owner.utc(at, offset=recording.clock_offset))
        )

    def close(self, *, at: float, reason: str, media_quality: MediaQuality) -> None:
        recording = self._recording
        recording.pause_started.clear()  # the recording's end ends its pauses (``store.Pause``)
        finished = self._owner.utc(at, offset=recording.clock_offset)
        quality = _stored_media_quality(media_quality)
        if not quality.clean:
            _LOG.info("[%s] recording: %s", recording.call_ref, quality.describe())
        self._owner._submit_file(lambda: self._owner._close_recording(recording, finished, reason, quality))


class StorageRecords:
    """``CallRecordSink`` and ``RecordingSink`` over an `EvidenceStore` and encrypted files."""

    def __init__(
        self,
        layout: DataLayout,
        evidence: store.EvidenceStore,
        *,
        recipients: tuple[X25519PublicKey, ...],
        purposes: Mapping[str, PurposeFacts],
        min_free_mb: int = 200,
        recording_enabled: bool = True,
        no_recipients_reason: str = NO_RECIPIENT_KEY,
        storage_region: str = "",
        worm: bool = False,
        max_write_delay_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.layout = layout
        self.store = evidence
        self.key_store = SqliteKeyStore(evidence)
        self.recipients = recipients
        self.no_recipients_reason = no_recipients_reason  # why no recording starts without them
        self.purposes = dict(purposes)
        self.min_free_bytes = min_free_mb * 1024 * 1024
        self.recording_enabled = recording_enabled
        self.storage_region = storage_region  # each recording row states where its file is kept
        self.worm = worm
        self.disk_full = False
        self.max_write_delay_s = max_write_delay_s  # 0: new recordings do not wait for the file thread
        self.writes_behind = False
        self._clock = clock
        self._clock_offset: float | None = None
        self._calls: dict[str, _CallState] = {}
        self._files = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="recording-writer",
            initializer=name_os_thread,
            initargs=(RECORDING_WRITER_THREAD,),
        )
        self._file_jobs: list[Callable[[], None]] = []
        # When each batch still queued or running was handed over: the oldest tells how far the
        # file thread is behind. The counters are written by one thread each.
        self._handed_at: deque[float] = deque()
        self._batches_handed = 0
        self._batches_done = 0  # by the file thread
        layout.recordings_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    # Clock -----------------------------------------------------------------------------------

    def utc(self, at: float, *, offset: float | None = None) -> dt.datetime:
        """A time on the event loop's clock as a UTC datetime, by ``offset`` (wall clock less
        loop clock; ``clock_offset`` when not given)."""
        return dt.datetime.fromtimestamp((self.clock_offset() if offset is None else offset) + at, dt.UTC)

    def clock_offset(self, call_ref: str | None = None) -> float:
        """Wall clock less loop clock for the times of call ``call_ref``: read as the call
        started, so its times keep the order the loop saw. Otherwise the latest reading."""
        state = self._calls.get(call_ref) if call_ref is not None else None
        if state is not None:
            return state.clock_offset
        if self._clock_offset is None:
            self._clock_offset = time.time() - asyncio.get_running_loop().time()
        return self._clock_offset

    def _clock_offset_for_new_call(self) -> float:
        """The latest offset, read again: a wall clock set since (NTP stepping the time after
        start) by more than ``CLOCK_STEP_S`` is followed from this call on, and logged."""
        latest = self.clock_offset()
        now = time.time() - asyncio.get_running_loop().time()
        if abs(now - latest) > CLOCK_STEP_S:
            _LOG.warning("the wall clock moved %+.3f s; evidence times of new calls follow it", now - latest)
            self._clock_offset = now
        return self.clock_offset()

    @staticmethod
    def _now() -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    # Plumbing --------------------------------------------------------------------------------

    def _submit(self, record: store.EvidenceRecord) -> None:
        try:
            future = self.store.submit(record, hold_when_full=True)
        except StorageError as error:
            _LOG.error("evidence not written (%s): %s", type(record).__name__, error)
            return
        future.add_done_callback(lambda done: _log_failure(done, type(record).__name__))

    def _submit_file(self, job: Callable[[], None]) -> None:
        """Queue ``job`` for the file thread, after every job queued before it.

        Jobs queued within one pass of the event loop (the blocks of the recordings flushed in one
        slot, see ``FlushSlots``) go to the thread together once that pass is over: one hand-over
        per slot instead of one per recording, so the loop and the file thread trade the GIL that
        much less often.
        """
        self._file_jobs.append(job)
        if len(self._file_jobs) > 1:
            return
        try:
            asyncio.get_running_loop().call_soon(self._hand_over_file_jobs)
        except RuntimeError:  # no event loop (start-up, shutdown, tools): hand it over now
            self._hand_over_file_jobs()

    def _hand_over_file_jobs(self) -> None:
        jobs, self._file_jobs = self._file_jobs, []
        if jobs:
            self._handed_at.append(self._clock())
            self._batches_handed += 1
            future = self._files.submit(self._run_batch, jobs)
            future.add_done_callback(lambda done: _log_failure(done, "recording file"))
            self._check_write_delay()

    def _run_batch(self, jobs: list[Callable[[], None]]) -> None:
        """Run queued file jobs one after the other, on the file thread; one that fails is logged
        and the rest still run."""
        for job in jobs:
            try:
                job()
            except Exception:
                _LOG.exception("recording file work failed")
        self._batches_done += 1

    def file_write_delay_s(self) -> float:
        """How long the oldest file work handed to the file thread has waited (0 when none is
        left): how far behind the audio reaching the disk is."""
        pending = self._batches_handed - self._batches_done
        while len(self._handed_at) > pending:
            self._handed_at.popleft()
        return max(0.0, self._clock() - self._handed_at[0]) if self._handed_at else 0.0

    def close(self) -> None:
        """Finish queued file work (the proxy closed open recordings), then close the database."""
        self._hand_over_file_jobs()
        self._files.shutdown(wait=True)
        self.store.close()

    # CallRecordSink --------------------------------------------------------------------------

    def call_started(self, effect: CallStarted) -> None:
        outside = MediaLeg.A if effect.direction == "inbound" else MediaLeg.B
        self._calls[effect.call_ref] = _CallState(
            direction=effect.direction, outside_leg=outside, clock_offset=self._clock_offset_for_new_call()
        )
        ref = effect.call_ref
        calling, called = _user(effect.caller), _user(effect.callee)
        legs = tuple(
            store.Leg(
                leg_id=f"{ref}:{leg}",
                call_id=ref,
                role=store.LegRole.OUTSIDE if leg is outside else store.LegRole.PBX,
                sip_call_id=sip_call_id,
                remote_uri=remote,
            )
            for leg, sip_call_id, remote in (
                (MediaLeg.A, effect.a_call_id, effect.caller),
                (MediaLeg.B, effect.b_call_id, effect.callee),
            )
        )
        self._submit(
            store.CallStarted(
                call_id=ref,
                direction=store.Direction(effect.direction),
                calling=calling,
                called=called,
                local_line=called if effect.direction == "inbound" else calling,
                agent_id=None,
                setup_at=self.utc(effect.at, offset=self.clock_offset(ref)) if effect.at else self._now(),
                legs=legs,
            )
        )

    def call_ended(self, effect: CallEnded) -> None:
        offset = self.clock_offset(effect.call_ref)
        self._calls.pop(effect.call_ref, None)
        ended_at = self.utc(effect.at, offset=offset) if effect.at else self._now()
        self._submit(store.CallEnded(call_id=effect.call_ref, ended_at=ended_at, end_reason=effect.reason))

    def evidence(self, effect: Evidence, details: Mapping[str, str]) -> None:
        state = self._calls.get(effect.call_ref)
        if state is None:
            return
        event = effect.event
        leg_id = self._leg_id(effect.call_ref, effect.leg, state)
        utc = partial(self.utc, offset=state.clock_offset)
        if isinstance(event, consent.AnnouncementStarted):
            # Written now, its end added later: a crash mid-prompt keeps that it started.
            state.playing[effect.leg] = (leg_id, event)
            self._submit(
                store.Announcement(
                    leg_id=leg_id,
                    prompt_id=event.prompt_id,
                    version=details.get("version", ""),
                    language=event.language,
                    audio_sha256=details.get("audio_sha256", ""),
                    started_at=utc(event.at),
                    ended_at=None,
                    complete=False,
                )
            )
        elif isinstance(event, consent.AnnouncementEnded | consent.NoticeFailed):
            playing = state.playing.pop(effect.leg, None)
            if playing is None:
                if isinstance(event, consent.NoticeFailed):
                    self._submit(_never_started(leg_id, event, utc(event.at)))
                return
            started_leg_id, started = playing
            failure = event.reason if isinstance(event, consent.NoticeFailed) else None
            self._submit(
                store.AnnouncementEnd(
                    leg_id=started_leg_id,
                    prompt_id=started.prompt_id,
                    started_at=utc(started.at),
                    ended_at=utc(max(event.at, started.at)),
                    complete=isinstance(event, consent.AnnouncementEnded) and event.complete,
                    failure=failure,
                )
            )
        elif isinstance(event, consent.DigitReceived):
            self._submit(
                store.DtmfEvent(
                    leg_id=leg_id,
                    digit=event.digit,
                    mechanism=str(event.mechanism),
                    at=utc(event.at),
                    counted=event.counted,
                )
            )
        elif isinstance(event, consent.ConsentDecided):
            self._submit(
                store.ConsentDecision(
                    call_id=effect.call_ref,
                    question_id=event.question_id,
                    question_version=event.question_version,
                    purpose_id=event.purpose_id,
                    decision=store.Decision(str(event.decision)),
                    mechanism=str(event.mechanism) if event.mechanism is not None else "none",
                    at=utc(event.at),
                )
            )
        elif isinstance(event, consent.ConsentWithdrawn):
            self._submit(
                store.LaterEvent(
                    call_id=effect.call_ref,
                    kind=store.LaterEventKind.WITHDRAWAL,
                    at=utc(event.at),
                    actor="caller",
                    detail={"purposes": list(event.purposes), "mechanism": str(event.mechanism)},
                )
            )
        elif isinstance(event, consent.PartyChanged):
            state.party += 1
            self._submit(
                store.Leg(
                    leg_id=self._leg_id(effect.call_ref, effect.leg, state),
                    call_id=effect.call_ref,
                    role=store.LegRole.OUTSIDE,
                    sip_call_id=event.sip_call_id,
                    remote_uri=event.remote_uri,
                )
            )

    @staticmethod
    def _leg_id(call_ref: str, leg: MediaLeg, state: _CallState) -> str:
        if leg is state.outside_leg and state.party:
            return f"{call_ref}:{leg}{state.party + 1}"
        return f"{call_ref}:{leg}"

    def recording(self, effect: StartRecording | StopRecording | PauseRecording | ResumeRecording) -> None:
        """Nothing to store: the purposes went in as the recording opened, the audio and pauses
        come through its handle."""

    def not_recorded(self, effect: StartRecording, reason: str, at: float) -> None:
        """The call's purposes, and that no recording could start for them, and why."""
        if effect.call_ref not in self._calls:
            return
        self._write_purposes(effect.call_ref, effect.purposes)
        at_utc = self.utc(at, offset=self.clock_offset(effect.call_ref))
        self._submit(store.NotRecorded(call_id=effect.call_ref, at=at_utc, reason=reason))

    def agent_inform_started(self, playing: AgentInformStarted) -> None:
        """The beep or notice copy started sounding to the agent: written now, as an agent notice
        of its leg without an end, so that a crash while it plays keeps that the agent was told
        (not an announcement: the beep plays as the recording starts, after which no notice may end)."""
        state = self._calls.get(playing.call_ref)
        if state is None:
            return
        leg_id = self._leg_id(playing.call_ref, playing.leg, state)
        name = _agent_notice_name(playing.prompt, playing.tone)
        state.informing[(playing.leg, name, playing.started_at)] = leg_id
        self._submit(
            _agent_notice(
                leg_id,
                playing.prompt,
                name,
                started_at=self.utc(playing.started_at, offset=state.clock_offset),
                ended_at=None,
                complete=False,
            )
        )

    def agent_informed(self, played: AgentInformed) -> None:
        """The beep or notice copy the agent heard is over: the end of the agent notice written as
        it started, or the whole of one that never started sounding."""
        state = self._calls.get(played.call_ref)
        if state is None:
            return
        utc = partial(self.utc, offset=state.clock_offset)
        started = played.started_at if played.started_at is not None else played.at
        ended = played.ended_at if played.ended_at is not None else started
        name = _agent_notice_name(played.prompt, played.tone)
        leg_id = state.informing.pop((played.leg, name, started), None)
        if leg_id is not None:
            self._submit(
                store.AgentNoticeEnd(
                    leg_id=leg_id,
                    name=name,
                    started_at=utc(started),
                    ended_at=utc(max(ended, started)),
                    complete=played.complete,
                    failure=played.failure,
                )
            )
            return
        self._submit(
            _agent_notice(
                self._leg_id(played.call_ref, played.leg, state),
                played.prompt,
                name,
                started_at=utc(started),
                ended_at=utc(max(ended, started)),
                complete=played.complete,
                failure=played.failure,
            )
        )

    def _write_purposes(self, call_ref: str, purposes: tuple[str, ...]) -> None:
        state = self._calls.get(call_ref)
        if state is None:
            return
        new = [p for p in purposes if p not in state.purposes_written and p in self.purposes]
        if not new:
            return
        state.purposes_written.update(new)
        self._submit(
            store.CallPurposes(
                call_id=call_ref,
                purposes=tuple(_stored_purpose(purpose_id, self.purposes[purpose_id]) for purpose_id in new),
            )
        )

    # RecordingSink ---------------------------------------------------------------------------

    def open(
        self,
        call_ref: str,
        *,
        purposes: tuple[str, ...],
        policy: str,
        outside_leg: MediaLeg,
        started_at: float,
        sample_rate_hz: int = 8000,
        on_stopped: Callable[[str], None] | None = None,
    ) -> RecordingHandle:
        """The purposes are written to the call first: the recording's row needs them (and a call
        that cannot be recorded keeps them, with ``not_recorded``). The recording's row names the
        purposes it serves: a recording that follows a withdrawal serves fewer than its call."""
        self._write_purposes(call_ref, purposes)
        if not self.recording_enabled:
            raise RecordingUnavailableError("recording is switched off (recording.enabled)")
        why_not = self._why_no_space() or self._why_writes_behind()
        if why_not is not None:
            raise RecordingUnavailableError(why_not)
        if not self.recipients:
            raise RecordingUnavailableError(self.no_recipients_reason)
        recording = _Recording(
            self,
            call_ref,
            uuid.uuid4(),
            self.utc(started_at, offset=self.clock_offset(call_ref)),
            purposes=purposes,
            policy=policy,
            on_stopped=on_stopped,
        )
        recording.audio_format = WIDEBAND_AUDIO_FORMAT if sample_rate_hz == 16000 else AUDIO_FORMAT
        # The row is queued here, on the loop, so the store checks it against the evidence reported
        # before it (notices, purposes) and not against what the loop reports while the file opens.
        try:
            accepted = self.store.submit(
                store.RecordingStarted(
                    recording_id=recording.recording_id,
                    call_id=call_ref,
                    file_name=self.layout.recording_file(str(recording.recording_id)).name,
                    key_id=tuple(key_id(recipient) for recipient in self.recipients),
                    started_at=recording.started,
                    first_frame_at=recording.started,
                    purposes=purposes,
                    storage_region=self.storage_region,
                    worm=self.worm,
                )
            )
        except (StorageError, ValueError) as error:
            _LOG.error("[%s] recording not started: %s", call_ref, error)
            raise RecordingUnavailableError(f"the evidence record cannot take it: {error}") from error
        self._submit_file(lambda: self._open_file(recording, accepted))
        return _Handle(self, recording)

    def _why_no_space(self) -> str | None:
        """Why no new recording may start for lack of space; None when it may."""
        if self.store.held:
            if not self.disk_full:
                _LOG.error("evidence is waiting for disk space: new calls are not recorded")
            self.disk_full = True
            return "disk full: evidence is waiting for disk space"
        try:
            free = shutil.disk_usage(self.layout.recordings_dir).free
        except OSError as error:
            _LOG.error("cannot read free space of %s: %s", self.layout.recordings_dir, error)
            return f"cannot read the free disk space: {error}"
        needed = max(self.min_free_bytes, RESUME_FREE_BYTES) if self.disk_full else self.min_free_bytes
        if free < needed:
            why = f"disk nearly full ({free // (1024 * 1024)} MB free, {needed // (1024 * 1024)} MB needed)"
            if not self.disk_full:
                _LOG.error("%s: new calls are not recorded", why)
            self.disk_full = True
            return why
        if self.disk_full:
            _LOG.warning("disk space is back: recording again")
        self.disk_full = False
        return None

    def _why_writes_behind(self) -> str | None:
        """Why no new recording may start while the file thread is behind; None when it may."""
        delay = self._check_write_delay()
        if not self.writes_behind:
            return None
        return _writes_late(delay)

    def _check_write_delay(self) -> float:
        """The file thread's delay (``file_write_delay_s``), and whether that is behind
        (``writes_behind``): more than ``max_write_delay_s``, and once behind until within half
        of it again. Each change is logged. Checked as recordings start and as their audio is
        handed over, so a stalled disk is logged while recordings run, new calls or not."""
        if not self.max_write_delay_s:
            return 0.0
        delay = self.file_write_delay_s()
        limit = self.max_write_delay_s / 2 if self.writes_behind else self.max_write_delay_s
        behind = delay > limit
        if behind and not self.writes_behind:
            _LOG.error(
                "%s (recording.max_write_delay_s %g): new calls are not recorded until it catches up",
                _writes_late(delay),
                self.max_write_delay_s,
            )
        elif self.writes_behind and not behind:
            _LOG.warning("recording files are written on time again (%.1f s behind): recording again", delay)
        self.writes_behind = behind
        return delay

    # File thread -----------------------------------------------------------------------------

    def _open_file(self, recording: _Recording, accepted: Future[None]) -> None:
        try:
            accepted.result()
        except StorageError as error:
            # No audio without its evidence (notice heard to the end, purposes recorded): no file is
            # made and the blocks that follow are dropped. The proxy was told the recording runs
            # before the store decided, so the evidence now says that the call is not recorded.
            recording.failed = True
            _LOG.error(
                "[%s] recording refused, the call is NOT recorded, nothing is kept: %s",
                recording.call_ref,
                error,
            )
            self._refused(recording, f"the evidence record refused the recording: {error}")
            return
        try:
            recording.writer = SegmentWriter(
                self.layout.recording_file(str(recording.recording_id)),
                recording_id=recording.recording_id,
                recipients=self.recipients,
                audio_format=recording.audio_format,
                key_store=self.key_store,
                segment_duration_ms=SEGMENT_MS,
                fsync=FsyncPolicy.ON_CLOSE,
                file_sha256=False,  # the evidence keeps the audio's SHA-256, not the file's
            )
        except (StorageError, OSError) as error:
            recording.failed = True
            _LOG.error("[%s] recording not started: %s", recording.call_ref, error)
            _tell_proxy(recording, f"file not created: {error}")
            empty = store.RecordingEnd(
                recording_id=recording.recording_id,
                finished_at=recording.started,
                audio_sha256=recording.sha256.hexdigest(),
                size_bytes=0,
                duration_ms=0,
                end_reason=f"file not created: {error}",
            )
            self._store_end(empty, final=False)

    def _refused(self, recording: _Recording, reason: str) -> None:
        """The evidence of a recording the store refused after the proxy opened it: ``not_recorded``,
        in the record and in the evidence log, as for a call that could not be recorded at all."""
        self._submit(store.NotRecorded(call_id=recording.call_ref, at=recording.started, reason=reason))
        event = not_recorded_event(
            recording.call_ref,
            purposes=recording.purposes,
            policy=recording.policy,
            reason=reason,
            at=recording.started.isoformat(timespec="milliseconds"),
        )
        log_evidence({**event, "recording": str(recording.recording_id)})
        _tell_proxy(recording, reason)

    def _write_block(self, recording: _Recording, pcm: bytes) -> None:
        writer = recording.writer
        if writer is None or recording.failed or not pcm:
            return
        try:
            writer.write_segment(pcm)
        except StorageFullError as error:
            recording.failed = True
            recording.cut_off = "disk full"
            self.disk_full = True
            _LOG.error(
                "[%s] disk full, recording stopped at its last sealed segment: %s", recording.call_ref, error
            )
            _log_cut_off(recording)
            _tell_proxy(recording, recording.cut_off)
            return
        except StorageError as error:
            recording.failed = True
            recording.cut_off = f"write failed: {error}"
            _LOG.error("[%s] recording stopped: %s", recording.call_ref, error)
            _log_cut_off(recording)
            _tell_proxy(recording, recording.cut_off)
            return
        recording.sha256.update(pcm)
        recording.pcm_bytes += len(pcm)

    def _close_recording(
        self,
        recording: _Recording,
        finished: dt.datetime,
        reason: str,
        media_quality: store.MediaQuality,
    ) -> None:
        writer = recording.writer
        if writer is None:
            return
        final = not recording.failed
        if recording.cut_off is not None:
            # The audio ends where writing stopped (its last sealed segment), not where the call did.
            reason, finished = recording.cut_off, recording.audio_end()
        try:
            summary = writer.close(final=final)
        except StorageError as error:
            _LOG.error("[%s] closing the recording failed: %s", recording.call_ref, error)
            final = False
            reason = f"closing failed: {error}"
            summary = writer.close(final=False)
        end = store.RecordingEnd(
            recording_id=recording.recording_id,
            finished_at=max(finished, recording.started),
            audio_sha256=recording.sha256.hexdigest(),
            size_bytes=summary.file_bytes,
            duration_ms=round(recording.audio_format.duration_s(recording.pcm_bytes) * 1000),
            end_reason=reason,
            media_quality=media_quality,
        )
        self._store_end(end, final=final)

    def _store_end(self, end: store.RecordingEnd, *, final: bool) -> None:
        # Not waited for: on a full disk the row is held until space returns, and the file thread
        # must go on with the other recordings meanwhile.
        record = self.store.record_recording_finished if final else self.store.record_recording_truncated
        future = record(end, hold_when_full=True)
        future.add_done_callback(lambda done: _log_failure(done, "RecordingEnd"))

    def _pause_started(self, recording: _Recording, reason: store.PauseReason, started: dt.datetime) -> None:
        # Written as the pause starts: a crash during it keeps the pause that explains the silence.
        def write() -> None:
            if recording.writer is not None:
                self._submit(
                    store.Pause(
                        recording_id=recording.recording_id, reason=reason, started_at=started, ended_at=None
                    )
                )

        self._submit_file(write)

    def _pause_ended(
        self, recording: _Recording, reason: store.PauseReason, started: dt.datetime, ended: dt.datetime
    ) -> None:
        def write() -> None:
            if recording.writer is not None:
                self._submit(
                    store.PauseEnd(
                        recording_id=recording.recording_id, reason=reason, started_at=started, ended_at=ended
                    )
                )

        self._submit_file(write)


# Calls a crash left open, each with the time of its latest evidence (stored times sort as text).
_OPEN_CALLS_WITH_LAST_EVIDENCE = """
SELECT c.id, c.setup_at, (
    SELECT max(t) FROM (
        SELECT max(coalesce(a.ended_at, a.started_at)) AS t FROM announcements_played a
            JOIN legs l ON l.id = a.leg_id WHERE l.call_id = c.id
        UNION ALL SELECT max(d.at) FROM dtmf_events d JOIN legs l ON l.id = d.leg_id WHERE l.call_id = c.id
        UNION ALL SELECT max(coalesce(n.ended_at, n.started_at)) FROM agent_notices n
            JOIN legs l ON l.id = n.leg_id WHERE l.call_id = c.id
        UNION ALL SELECT max(at) FROM consent_decisions WHERE call_id = c.id
        UNION ALL SELECT max(at) FROM later_events WHERE call_id = c.id
    )
)
FROM calls c WHERE c.ended_at IS NULL
"""

# The prompts of a call that never ended: their end was not stored when the proxy stopped.
_OPEN_PROMPTS = """
SELECT a.leg_id, a.prompt_id, a.started_at FROM announcements_played a JOIN legs l ON l.id = a.leg_id
WHERE l.call_id = ? AND a.ended_at IS NULL ORDER BY a.rowid
"""
INTERRUPTED_PROMPT = "interrupted: callherald stopped during the prompt"
"""The failure stored for a prompt that was playing when the proxy died."""

# What played to the agent of a call that never ended, and never ended itself.
_OPEN_AGENT_NOTICES = """
SELECT n.leg_id, n.name, n.started_at FROM agent_notices n JOIN legs l ON l.id = n.leg_id
WHERE l.call_id = ? AND n.ended_at IS NULL ORDER BY n.rowid
"""
INTERRUPTED_AGENT_NOTICE = "interrupted: callherald stopped while it played"
"""The failure stored for a beep or notice copy that was playing to the agent when the proxy died."""


def define_purposes(evidence: store.EvidenceStore, purposes: Mapping[str, PurposeFacts]) -> list[str]:
    """At start-up: store the configured purposes as the definitions new calls are recorded under.

    A purpose whose definition differs from the one stored last becomes its next version (the
    audit log holds the change as ``purpose_changed``); calls recorded before keep the version they
    were recorded under, with their delete-after dates. Returns one line per change, for the log.
    """
    changes = evidence.define_purposes(
        tuple(_stored_purpose(purpose_id, facts) for purpose_id, facts in purposes.items()),
        at=dt.datetime.now(dt.UTC),
    ).result()
    messages = []
    for change in changes:
        previous, current = change.previous, change.current
        changed = ", ".join(
            f"{name} {getattr(previous, name)!s} -> {getattr(current, name)!s}"
            for name in ("lawful_basis", "reference", "retention_days")
            if getattr(previous, name) != getattr(current, name)
        )
        messages.append(
            f"purpose {current.purpose_id} changed ({changed}; version {change.version}): new calls are "
            "recorded under it, calls recorded before keep the definition they were recorded under"
        )
    return messages


def recover_open_recordings(layout: DataLayout, evidence: store.EvidenceStore) -> list[str]:
    """After a crash: mark recordings left open as truncated and close the calls left open.

    A recording keeps every segment sealed before the crash: its torn tail is cut off and its
    duration is what the intact segments hold; a pause it was in ends there too (the store ends
    the pauses of a recording with it). The proxy cannot decrypt, so the plaintext hash of
    a recovered recording is left empty (each segment stays authenticated by its AEAD tag); the
    SHA-256 of its file as recovery leaves it is stored instead (``file_sha256``, in its manifest),
    so the file cannot be replaced unseen. A file that no crash leaves so (corrupt: a framing fault
    before its end; unreadable) is kept as found and ends with the reason ``corrupt: ...`` or
    ``unreadable: ...``, where and why, at the file's last modification (``_recovered_end``); it
    is logged here as an error. A call
    left open ends with the reason ``interrupted`` at the latest it is known to have lasted: its
    last recorded audio or evidence (a prompt, a key, a decision, what the agent heard), else its
    set-up; a prompt it was playing ends there too, cut off, with the failure ``INTERRUPTED_PROMPT``,
    and so does a beep or notice copy playing to the agent, with ``INTERRUPTED_AGENT_NOTICE``.
    Returns one line per repair, for the log.
    """
    messages: list[str] = []
    key_store = SqliteKeyStore(evidence)
    ends: dict[str, dt.datetime] = {}
    # The truncated ends are stored last: each writes the recording's manifest, which must hold
    # the prompts and agent notices as this recovery ends them.
    truncated: list[store.RecordingEnd] = []
    for record in evidence.recordings_list(state=store.RecordingState.RECORDING):
        end, message = _recovered_end(layout.recordings_dir / record.file_name, record, key_store)
        truncated.append(end)
        ends[record.call_id] = max(end.finished_at, ends.get(record.call_id, end.finished_at))
        if message is not None:
            messages.append(message)
    open_calls = evidence.submit_read(
        lambda db: db.execute(_OPEN_CALLS_WITH_LAST_EVIDENCE).fetchall()
    ).result()
    closed_at: dict[str, dt.datetime] = {}
    for call_id, setup_text, last_text in open_calls:
        setup_at = dt.datetime.fromisoformat(str(setup_text))
        last = setup_at if last_text is None else dt.datetime.fromisoformat(str(last_text))
        ended_at = max(ends.get(str(call_id), setup_at), setup_at, last)
        closed_at[str(call_id)] = ended_at
        prompts = evidence.submit_read(partial(_open_prompts, call_id=str(call_id))).result()
        for leg_id, prompt_id, started_text in prompts:
            started = dt.datetime.fromisoformat(started_text)
            evidence.write(
                store.AnnouncementEnd(
                    leg_id=leg_id,
                    prompt_id=prompt_id,
                    started_at=started,
                    ended_at=max(ended_at, started),
                    complete=False,
                    failure=INTERRUPTED_PROMPT,
                )
            )
            messages.append(f"prompt {prompt_id} on leg {leg_id} left open by a crash: cut off")
        notices = evidence.submit_read(partial(_open_agent_notices, call_id=str(call_id))).result()
        for leg_id, name, started_text in notices:
            started = dt.datetime.fromisoformat(started_text)
            evidence.write(
                store.AgentNoticeEnd(
                    leg_id=leg_id,
                    name=name,
                    started_at=started,
                    ended_at=max(ended_at, started),
                    complete=False,
                    failure=INTERRUPTED_AGENT_NOTICE,
                )
            )
            messages.append(f"agent notice {name} on leg {leg_id} left open by a crash: cut off")
    for end in truncated:
        evidence.record_recording_truncated(end).result()
    for call_id, _, _ in open_calls:
        evidence.write(
            store.CallEnded(call_id=str(call_id), ended_at=closed_at[str(call_id)], end_reason="interrupted")
        )
        messages.append(f"call {call_id} left open by a crash: closed as interrupted")
    return messages


def _recovered_end(
    path: Path, record: store.RecordingRecord, key_store: SqliteKeyStore
) -> tuple[store.RecordingEnd, str | None]:
    """The end of a recording a crash left open, from its file, and the line to log (None when
    the problem is logged here as an error).

    A crash leaves well-formed records and at most a torn tail (``recover`` cuts it off) or a file
    that ends inside its header: the recording ends where its intact audio ends. A framing fault
    before the end (``corrupt``: a record checksum, counter, tag or length no crash produces) or a
    file that cannot be read as a recording means tampering or a disk fault: the file is kept as
    found (``recover`` never modifies it), the end reason says so and where, and the end is the
    file's last modification (when it was last written, by the recorder or by whoever changed it),
    never before the intact audio ends nor after now. Either way the file's SHA-256 as recovery
    leaves it is pinned.
    """
    rid = record.recording_id
    try:
        report = recover(path, key_store, repair=True, expected_recording_id=rid)
    except FileNotFoundError as error:
        # The row is written before the file is made: a crash in between leaves no file.
        return _unreadable_end(record, path, error, sha256="", modified=None), (
            f"recording {rid} after a crash: no file {path} (the crash came before it was made, or it "
            "was removed since): nothing kept"
        )
    except (StorageError, OSError) as error:
        sha256, modified = _file_facts(path)
        end = _unreadable_end(record, path, error, sha256=sha256, modified=modified)
        _LOG.error(
            "recording %s after a crash: its file %s cannot be read as a recording (%s): kept as found "
            "(SHA-256 %s); callherald never leaves a file so: this means tampering or a disk fault",
            rid,
            path,
            error,
            sha256 or "-",
        )
        return end, None
    duration_ms = round(report.duration_s * 1000)
    audio_end = max(record.first_frame_at + dt.timedelta(milliseconds=duration_ms), record.started_at)
    if report.state is not RecoveryState.CORRUPT:
        # Truncated (the torn tail cut off), finalised, or no header: the file is its intact prefix.
        sha256 = report.sha256 if report.intact_bytes == report.file_bytes else _file_facts(path)[0]
        end = store.RecordingEnd(
            recording_id=rid,
            finished_at=audio_end,
            audio_sha256="",
            size_bytes=report.file_bytes,
            duration_ms=duration_ms,
            end_reason=INTERRUPTED_RECORDING,
            file_sha256=sha256,
        )
        return end, f"recording {rid} after a crash: {report.state}, {duration_ms} ms kept"
    sha256, modified = _file_facts(path)
    where = (
        "in its header"
        if report.audio_format is None or report.recording_id != rid
        else f"at segment {report.segments} (byte {report.intact_bytes})"
    )
    reason = (
        f"{CORRUPT_RECORDING} {where}: {report.problem}; kept as found, {duration_ms} ms readable before it"
    )
    end = store.RecordingEnd(
        recording_id=rid,
        finished_at=_last_written(modified, audio_end),
        audio_sha256="",
        size_bytes=report.file_bytes,
        duration_ms=duration_ms,
        end_reason=reason,
        file_sha256=sha256,
    )
    _LOG.error(
        "recording %s after a crash: its file %s is CORRUPT %s (%s): no crash leaves a file so, this "
        "means tampering or a disk fault; kept as found, not repaired (%d bytes, SHA-256 %s); %d ms of "
        "audio before the fault, last written %s",
        rid,
        path,
        where,
        report.problem,
        report.file_bytes,
        sha256 or "-",
        duration_ms,
        "-" if modified is None else modified.isoformat(timespec="milliseconds"),
    )
    return end, None


def _unreadable_end(
    record: store.RecordingRecord,
    path: Path,
    error: BaseException,
    *,
    sha256: str,
    modified: dt.datetime | None,
) -> store.RecordingEnd:
    """The end of a recording whose file recovery cannot read: nothing of it is known to be audio."""
    size = 0
    with contextlib.suppress(OSError):
        size = path.stat().st_size
    return store.RecordingEnd(
        recording_id=record.recording_id,
        finished_at=_last_written(modified, max(record.first_frame_at, record.started_at)),
        audio_sha256="",
        size_bytes=size,
        duration_ms=0,
        end_reason=f"{UNREADABLE_RECORDING}: {error}",
        file_sha256=sha256,
    )


def _file_facts(path: Path) -> tuple[str, dt.datetime | None]:
    """The SHA-256 of the file at ``path`` and its last modification (UTC): ('', None) for a file
    that cannot be read."""
    try:
        with path.open("rb") as file:
            modified = dt.datetime.fromtimestamp(os.fstat(file.fileno()).st_mtime, dt.UTC)
            return hashlib.file_digest(file, "sha256").hexdigest(), modified
    except OSError:
        return "", None


def _last_written(modified: dt.datetime | None, audio_end: dt.datetime) -> dt.datetime:
    """The end of a recording whose file is not as a crash leaves it: its last modification, but
    never before its readable audio ends, nor after now (a clock set back since)."""
    if modified is None:
        return audio_end
    return max(audio_end, min(modified, dt.datetime.now(dt.UTC)))


def _open_agent_notices(db: Database, *, call_id: str) -> list[tuple[str, str, str]]:
    return [
        (str(leg), str(name), str(started))
        for leg, name, started in db.execute(_OPEN_AGENT_NOTICES, [call_id])
    ]


def _open_prompts(db: Database, *, call_id: str) -> list[tuple[str, str, str]]:
    return [
        (str(leg), str(prompt), str(started)) for leg, prompt, started in db.execute(_OPEN_PROMPTS, [call_id])
    ]


class RecordSinks:
    """Hands every call fact to several sinks in turn (the log and the evidence database)."""

    def __init__(self, *sinks: CallRecordSink) -> None:
        self._sinks = sinks

    def call_started(self, effect: CallStarted) -> None:
        for sink in self._sinks:
            sink.call_started(effect)

    def evidence(self, effect: Evidence, details: Mapping[str, str]) -> None:
        for sink in self._sinks:
            sink.evidence(effect, details)

    def recording(self, effect: StartRecording | StopRecording | PauseRecording | ResumeRecording) -> None:
        for sink in self._sinks:
            sink.recording(effect)

    def not_recorded(self, effect: StartRecording, reason: str, at: float) -> None:
        for sink in self._sinks:
            sink.not_recorded(effect, reason, at)

    def agent_inform_started(self, playing: AgentInformStarted) -> None:
        for sink in self._sinks:
            sink.agent_inform_started(playing)

    def agent_informed(self, played: AgentInformed) -> None:
        for sink in self._sinks:
            sink.agent_informed(played)

    def call_ended(self, effect: CallEnded) -> None:
        for sink in self._sinks:
            sink.call_ended(effect)


def _agent_notice_name(prompt: Mapping[str, str], tone: Tone | None) -> str:
    """What an agent notice is stored as: the prompt's id, or the tone's name (``beep``)."""
    return prompt.get("prompt_id", "") if prompt else str(tone)


def _agent_notice(
    leg_id: str,
    prompt: Mapping[str, str],
    name: str,
    *,
    started_at: dt.datetime,
    ended_at: dt.datetime | None,
    complete: bool,
    failure: str | None = None,
) -> store.AgentNotice:
    return store.AgentNotice(
        leg_id=leg_id,
        kind=store.AgentNoticeKind.PROMPT if prompt else store.AgentNoticeKind.TONE,
        name=name,
        version=prompt.get("version", ""),
        language=prompt.get("language", ""),
        audio_sha256=prompt.get("audio_sha256", ""),
        started_at=started_at,
        ended_at=ended_at,
        complete=complete,
        failure=failure,
    )


def _never_started(leg_id: str, failed: consent.NoticeFailed, at: dt.datetime) -> store.Announcement:
    """The row of a prompt that could not start at all (missing, no codec to play it in): it
    sounded for no time, and the evidence says why (nothing may be recorded of the party)."""
    return store.Announcement(
        leg_id=leg_id,
        prompt_id=failed.prompt_id,
        version="",
        language=failed.language,
        audio_sha256="",
        started_at=at,
        ended_at=at,
        complete=False,
        failure=failed.reason,
    )


def _user(uri: str) -> str:
    """The user part of a SIP URI text (``sip:+3120123@host`` -> ``+3120123``), else the text.

    Escaped characters are stored as the characters they stand for (RFC 3261 §25.1: a carrier
    may send ``%2B3120123``), so a reviewer reads and finds the number as dialled; a part that
    would unescape to something unprintable (a control character) is kept escaped.
    """
    text = uri.split(":", 1)[1] if ":" in uri else uri
    user = text.split("@", 1)[0] if "@" in text else text
    try:
        plain = urllib.parse.unquote(user, errors="strict")
    except UnicodeDecodeError:  # not UTF-8 once unescaped
        return user
    return plain if plain.isprintable() else user


def _writes_late(delay_s: float) -> str:
    """What a file thread ``delay_s`` behind means, as the log and a refused recording say it."""
    return f"recording files are written {delay_s:.1f} s late, the disk is not keeping up"


def _tell_proxy(recording: _Recording, reason: str) -> None:
    """The proxy still taps the call of a recording the store no longer keeps (refused, cut off):
    it is told why, on its own loop, so that it stops recording the call."""
    if recording.on_stopped is None:
        return
    try:
        recording.loop.call_soon_threadsafe(recording.on_stopped, reason)
    except RuntimeError:  # the loop has closed: the proxy has stopped
        _LOG.info("[%s] the proxy has stopped; not told the recording stopped", recording.call_ref)


def _log_cut_off(recording: _Recording) -> None:
    """The evidence log's line for a recording that storage stopped before the proxy did."""
    log_evidence(
        {
            "call": recording.call_ref,
            "event": "recording_cut_off",
            "recording": str(recording.recording_id),
            "reason": recording.cut_off,
            "at": recording.audio_end().isoformat(timespec="milliseconds"),
        }
    )


def _log_failure(done: Future[Any], what: str) -> None:
    if done.cancelled():
        return
    error = done.exception()
    if isinstance(error, store.EvidenceKeptError):  # the store said where it kept them, once
        return
    if error is not None:
        _LOG.error("%s not written: %s", what, error)
