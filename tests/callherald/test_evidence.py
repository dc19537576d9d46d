"""``StorageRecords`` on a real evidence database and real encrypted files.

Each test plays a call as the proxy reports it (call facts, evidence events, recording effects and
the ``RecordingHandle`` calls), inside ``asyncio.run`` so ``StorageRecords.utc`` has an event loop,
then reads back what was stored: the timeline, the recordings and the decrypted audio.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import hashlib
import json
import logging
import os
import sqlite3
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from callherald import evidence as evidence_module
from callherald.app import open_storage
from callherald.evidence import (
    INTERRUPTED_AGENT_NOTICE,
    RECORDING_WRITER_THREAD,
    RESUME_FREE_BYTES,
    PurposeFacts,
    StorageRecords,
    recover_open_recordings,
    recovery_fault,
)
from callherald.layout import DataLayout
from config import default_config
from config import schema as config_schema
from proxy.aio.recording import ChannelQuality, MediaQuality, RecordingHandle, RecordingUnavailableError
from proxy.aio.service import AgentInformed, AgentInformStarted
from proxy.b2bua import consent
from proxy.b2bua.consent import DigitMechanism
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
from storage import records as records_module
from storage.audit import AuditLog
from storage.crypto import StorageError, StorageFullError, TruncatedRecordingError, key_id
from storage.keys import SCRYPT_LOG2_N_MIN, generate_private_key, load_private_key
from storage.manifests import recording_manifest
from storage.migrations import to_db_time
from storage.records import (
    EvidenceStore,
    NotFoundError,
    RecordingRecord,
    RecordingState,
    TimelineEvent,
    TimelineKind,
)
from storage.segments import HEADER_BYTES, RECORD_HEADER_BYTES, SegmentReader, SegmentWriter
from storage.sqlite_keys import SqliteKeyStore
from tests.small_disk import fill_up, tiny_file_system
from tests.storage.recordings import record_spans
from tests.storage.test_records_full import cap_growth, fill

CALL = "call-1"
CALLER = "sip:+31201234567@carrier.example"
CALLEE = "sip:+31307654321@pbx.example"
T0 = 1000.0
"""The event loop's clock at the call's set-up; every script time is ``T0 + seconds``."""
RATE_HZ = 8000
BLOCK_BYTES = 32000  # one second of 8 kHz stereo s16le
LEFT_HZ = 1000  # the outside party
RIGHT_HZ = 440  # the PBX side
CLEAN = MediaQuality(outside_party=ChannelQuality(), pbx_side=ChannelQuality())

PURPOSES = {
    "evidence": PurposeFacts(lawful_basis="contract", reference="contract terms v3", retention_days=90),
    "training": PurposeFacts(lawful_basis="consent", reference="consent script v2", retention_days=30),
    "quality": PurposeFacts(lawful_basis="consent", reference="consent script v2", retention_days=60),
    "coaching": PurposeFacts(lawful_basis="consent", reference="consent script v2", retention_days=14),
}
PROMPTS: dict[str, dict[str, str]] = {
    "notice": {"version": "notice-v4", "audio_sha256": "5e" * 32, "codec": "pcmu"},
    "ask-training": {"version": "ask-v2", "audio_sha256": "a1" * 32, "codec": "pcmu"},
    "ask-quality": {"version": "ask-v2", "audio_sha256": "a2" * 32, "codec": "pcmu"},
    "ask-coaching": {"version": "ask-v2", "audio_sha256": "a3" * 32, "codec": "pcmu"},
}
"""What the playout layer reports for the prompt playing on a leg (the ``details`` of its evidence)."""


def at(seconds: float) -> float:
    return T0 + seconds


def tone_block(index: int) -> bytes:
    """Second ``index`` of 1000 Hz left and 440 Hz right, interleaved s16le, continuous across blocks."""
    t = (np.arange(RATE_HZ) + index * RATE_HZ) / RATE_HZ
    frames = np.empty((RATE_HZ, 2), dtype="<i2")
    frames[:, 0] = np.round(8000 * np.sin(2 * np.pi * LEFT_HZ * t))
    frames[:, 1] = np.round(8000 * np.sin(2 * np.pi * RIGHT_HZ * t))
    return frames.tobytes()


def peak_hz(pcm: bytes, channel: int) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").reshape(-1, 2)[:, channel].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / RATE_HZ)[int(np.argmax(spectrum))])


# The script of a call ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Begin:
    """``CallStarted``: the outside party is on leg a when inbound, on leg b when outbound."""

    direction: str = "inbound"
    at: float = T0
    caller: str = CALLER
    callee: str = CALLEE


@dataclass(frozen=True, slots=True, kw_only=True)
class End:
    reason: str
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Said:
    """An evidence event about the party on ``leg``; announcement events carry the prompt's facts."""

    event: consent.EvidenceEvent
    leg: MediaLeg = MediaLeg.A


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """The proxy executes ``StartRecording`` at ``at``: ``open``, then the start or why not."""

    purposes: tuple[str, ...]
    at: float
    outside_leg: MediaLeg = MediaLeg.A


@dataclass(frozen=True, slots=True, kw_only=True)
class Write:
    """The recorder hands over second ``block`` of the tone (ignored when no recording is open)."""

    block: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Pause:
    reason: str
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Resume:
    reason: str
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Stop:
    """``StopRecording``: the recorder closes its handle at ``at``, with what the network cost."""

    reason: str
    at: float
    quality: MediaQuality = CLEAN


@dataclass(frozen=True, slots=True, kw_only=True)
class FreeSpace:
    """From now on the data directory's file system reports ``mb`` MiB free."""

    mb: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Informed:
    """What played to the agent on ``leg`` from ``start`` to ``end`` (seconds): the beep, or with
    ``prompt`` the agent's copy of that prompt (its facts as the playout layer reports them)."""

    start: float
    end: float
    leg: MediaLeg = MediaLeg.B
    prompt: str | None = None
    complete: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Informing:
    """What plays to the agent on ``leg`` started sounding at ``start`` (seconds): the beep, or
    with ``prompt`` the agent's copy of that prompt; an ``Informed`` with that start ends it."""

    start: float
    leg: MediaLeg = MediaLeg.B
    prompt: str | None = None


Step = Begin | End | Said | Record | Write | Pause | Resume | Stop | FreeSpace | Informing | Informed


@dataclass(slots=True)
class FakeDisk:
    """``shutil.disk_usage`` as seen by ``callherald.evidence``."""

    free_mb: int = 100_000

    def usage(self, _path: object) -> SimpleNamespace:
        free = self.free_mb * 1024 * 1024
        return SimpleNamespace(total=2 * free + 1, used=free + 1, free=free)


@dataclass(slots=True)
class Fed:
    """What the proxy handed over: per ``Record`` step whether it got a handle, and the blocks written."""

    opened: list[bool] = field(default_factory=list)
    written: list[list[bytes]] = field(default_factory=list)
    stopped: list[tuple[str, bool]] = field(default_factory=list)
    """Why the store told the proxy it stopped keeping a recording (``on_stopped``), and whether
    on the loop's thread."""


def feed(
    records: StorageRecords, script: Sequence[Step], *, call_ref: str = CALL, disk: FakeDisk | None = None
) -> Fed:
    """Hand ``script`` to ``records`` in order, as ``proxy.aio.service`` executes the effects."""
    fed = Fed()
    handle: RecordingHandle | None = None
    loop_thread = threading.get_ident()

    def stopped(why: str) -> None:
        fed.stopped.append((why, threading.get_ident() == loop_thread))

    for step in script:
        if isinstance(step, Begin):
            records.call_started(
                CallStarted(
                    call_ref=call_ref,
                    direction=step.direction,
                    caller=step.caller,
                    callee=step.callee,
                    a_call_id=f"{call_ref}-a@carrier",
                    b_call_id=f"{call_ref}-b@pbx",
                    at=step.at,
                )
            )
        elif isinstance(step, End):
            records.call_ended(CallEnded(call_ref=call_ref, reason=step.reason, at=step.at))
        elif isinstance(step, Said):
            prompt_id = getattr(step.event, "prompt_id", None)
            details = PROMPTS[prompt_id] if isinstance(prompt_id, str) else {}
            records.evidence(Evidence(call_ref=call_ref, leg=step.leg, event=step.event), details)
        elif isinstance(step, Informing):
            records.agent_inform_started(
                AgentInformStarted(
                    call_ref=call_ref,
                    leg=step.leg,
                    tone=None if step.prompt else Tone.BEEP,
                    prompt={"prompt_id": step.prompt, "language": "nl", **PROMPTS[step.prompt]}
                    if step.prompt
                    else {},
                    started_at=at(step.start),
                )
            )
        elif isinstance(step, Informed):
            records.agent_informed(
                AgentInformed(
                    call_ref=call_ref,
                    leg=step.leg,
                    tone=None if step.prompt else Tone.BEEP,
                    prompt={"prompt_id": step.prompt, "language": "nl", **PROMPTS[step.prompt]}
                    if step.prompt
                    else {},
                    started_at=at(step.start),
                    ended_at=at(step.end),
                    at=at(step.end),
                    complete=step.complete,
                )
            )
        elif isinstance(step, Record):
            start = StartRecording(
                call_ref=call_ref, outside_leg=step.outside_leg, purposes=step.purposes, policy="default"
            )
            try:
                handle = records.open(
                    call_ref,
                    purposes=start.purposes,
                    policy=start.policy,
                    outside_leg=start.outside_leg,
                    started_at=step.at,
                    on_stopped=stopped,
                )
            except RecordingUnavailableError as unavailable:
                handle = None
                records.not_recorded(start, str(unavailable), step.at)
            else:
                records.recording(start)
            fed.opened.append(handle is not None)
            fed.written.append([])
        elif isinstance(step, Write):
            if handle is not None:
                pcm = tone_block(step.block)
                handle.write(pcm)
                fed.written[-1].append(pcm)
        elif isinstance(step, Pause):
            records.recording(PauseRecording(call_ref=call_ref, reason=step.reason))
            if handle is not None:
                handle.pause(step.reason, step.at)
        elif isinstance(step, Resume):
            records.recording(ResumeRecording(call_ref=call_ref, reason=step.reason))
            if handle is not None:
                handle.resume(step.reason, step.at)
        elif isinstance(step, Stop):
            records.recording(StopRecording(call_ref=call_ref, reason=step.reason))
            if handle is not None:
                handle.close(at=step.at, reason=step.reason, media_quality=step.quality)
                handle = None
        else:
            assert disk is not None, "a FreeSpace step needs a FakeDisk"
            disk.free_mb = step.mb
    return fed


@dataclass(frozen=True, slots=True, kw_only=True)
class Ran:
    records: StorageRecords
    """Closed; its ``utc`` keeps the clock offset the call used."""
    fed: Fed

    def utc(self, seconds: float) -> dt.datetime:
        return self.records.utc(at(seconds))


def run(
    layout: DataLayout,
    script: Sequence[Step],
    *,
    recipient: X25519PrivateKey,
    min_free_mb: int = 0,
    recording_enabled: bool = True,
    disk: FakeDisk | None = None,
    more_calls: Sequence[tuple[str, Sequence[Step]]] = (),
    purposes: dict[str, PurposeFacts] = PURPOSES,
    storage_region: str = "",
    worm: bool = False,
) -> Ran:
    """Play ``script`` (then ``more_calls``) into a new ``StorageRecords`` on a running loop; close it."""

    async def play() -> Ran:
        records = StorageRecords(
            layout,
            EvidenceStore(layout.evidence_db),
            recipients=(recipient.public_key(),),
            purposes=purposes,
            min_free_mb=min_free_mb,
            recording_enabled=recording_enabled,
            storage_region=storage_region,
            worm=worm,
        )
        try:
            fed = feed(records, script, disk=disk)
            for call_ref, steps in more_calls:
                feed(records, steps, call_ref=call_ref)
            records.utc(T0)  # fixes the clock offset for the checks
        finally:
            records.close()  # waits for the file thread and the evidence writer
        await asyncio.sleep(0)  # what the file thread handed the loop (``on_stopped``) runs
        return Ran(records=records, fed=fed)

    return asyncio.run(play())


# Reading back ------------------------------------------------------------------------------------


def read_audio(
    layout: DataLayout, record: RecordingRecord, key: X25519PrivateKey, *, allow_truncated: bool
) -> bytes:
    with EvidenceStore(layout.evidence_db) as store:
        return SegmentReader(
            layout.recordings_dir / record.file_name,
            private_key=key,
            key_store=SqliteKeyStore(store),
            allow_truncated=allow_truncated,
        ).read_all()


def stored(layout: DataLayout) -> tuple[list[TimelineEvent], list[RecordingRecord]]:
    with EvidenceStore(layout.evidence_db) as store:
        return store.call_timeline(CALL), store.recordings_list()


def wrapped_key_rows(layout: DataLayout) -> int:
    with EvidenceStore(layout.evidence_db) as store:
        rows: int = store.submit_read(
            lambda db: db.execute("SELECT count(*) FROM key_store").fetchone()[0]
        ).result()
        return rows


def storage_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "callherald.storage" and r.levelno >= logging.ERROR
    ]


def evidence_log(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The JSON lines of the evidence log (``callherald.evidence``)."""
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "callherald.evidence"]


def record_step(script: Sequence[Step]) -> Record:
    """The (one) ``Record`` step of ``script``."""
    (step,) = (step for step in script if isinstance(step, Record))
    return step


def subset(detail: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    return {name: detail.get(name) for name in wanted}


@pytest.fixture
def layout(tmp_path: Path) -> DataLayout:
    data = DataLayout(tmp_path / "data")
    data.root.mkdir()
    return data


@pytest.fixture
def reviewer() -> X25519PrivateKey:
    return generate_private_key()


@pytest.fixture(autouse=True)
def storage_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="callherald")


# 1. A whole recorded call ------------------------------------------------------------------------


def notice(leg: MediaLeg = MediaLeg.A, start: float = 1, end: float = 6) -> list[Step]:
    return [
        Said(event=consent.AnnouncementStarted(prompt_id="notice", language="nl", at=at(start)), leg=leg),
        Said(event=consent.AnnouncementEnded(prompt_id="notice", at=at(end), complete=True), leg=leg),
    ]


def decided(purpose: str, decision: consent.Decision, seconds: float, leg: MediaLeg = MediaLeg.A) -> Step:
    return Said(
        event=consent.ConsentDecided(
            question_id=f"q-{purpose}",
            question_version="2",
            purpose_id=purpose,
            decision=decision,
            mechanism=None if decision is consent.Decision.NO_ANSWER else DigitMechanism.RFC4733,
            at=at(seconds),
        ),
        leg=leg,
    )


WHOLE_CALL: list[Step] = [
    Begin(at=at(0)),
    *notice(start=1, end=6),
    Said(event=consent.AnnouncementStarted(prompt_id="ask-training", language="nl", at=at(6.5))),
    Said(event=consent.DigitReceived(digit="1", mechanism=DigitMechanism.RFC4733, at=at(8), counted=True)),
    Said(event=consent.AnnouncementEnded(prompt_id="ask-training", at=at(8), complete=False)),
    decided("training", consent.Decision.GRANTED, 8),
    Said(event=consent.AnnouncementStarted(prompt_id="ask-quality", language="nl", at=at(8.5))),
    Said(event=consent.AnnouncementEnded(prompt_id="ask-quality", at=at(10), complete=True)),
    Said(event=consent.DigitReceived(digit="9", mechanism=DigitMechanism.RFC4733, at=at(11), counted=True)),
    decided("quality", consent.Decision.REFUSED, 11),
    Said(event=consent.AnnouncementStarted(prompt_id="ask-coaching", language="nl", at=at(11.5))),
    Said(event=consent.AnnouncementEnded(prompt_id="ask-coaching", at=at(13), complete=True)),
    decided("coaching", consent.Decision.NO_ANSWER, 16),
    Said(event=consent.ConsentFinished(purposes=("evidence", "training"), at=at(16))),
    Record(purposes=("evidence", "training"), at=at(16)),
    Write(block=0),
    Informed(start=16.02, end=16.32),  # the agent's beep as recording starts, reported as it ends
    Write(block=1),
    Pause(reason="hold", at=at(18)),
    Write(block=2),
    Resume(reason="hold", at=at(19)),
    Write(block=3),
    Stop(reason="ended", at=at(20)),
    End(reason="bye-from-a", at=at(20.5)),
]

LEG_A = f"{CALL}:a"
LEG_B = f"{CALL}:b"
# (kind, seconds, leg, detail subset), in timeline order; ties sort by kind.
WHOLE_CALL_TIMELINE: list[tuple[TimelineKind, float, str | None, dict[str, Any]]] = [
    (
        TimelineKind.CALL_SETUP,
        0,
        None,
        {"direction": "inbound", "calling": "+31201234567", "called": "+31307654321"},
    ),
    (
        TimelineKind.ANNOUNCEMENT_START,
        1,
        LEG_A,
        {"prompt_id": "notice", "version": "notice-v4", "audio_sha256": "5e" * 32},
    ),
    (TimelineKind.ANNOUNCEMENT_END, 6, LEG_A, {"prompt_id": "notice", "complete": True}),
    (TimelineKind.ANNOUNCEMENT_START, 6.5, LEG_A, {"prompt_id": "ask-training", "version": "ask-v2"}),
    (TimelineKind.ANNOUNCEMENT_END, 8, LEG_A, {"prompt_id": "ask-training", "complete": False}),
    (TimelineKind.DTMF, 8, LEG_A, {"digit": "1", "mechanism": "rfc4733", "counted": True}),
    (
        TimelineKind.CONSENT,
        8,
        None,
        {"purpose_id": "training", "decision": "granted", "mechanism": "rfc4733"},
    ),
    (TimelineKind.ANNOUNCEMENT_START, 8.5, LEG_A, {"prompt_id": "ask-quality"}),
    (TimelineKind.ANNOUNCEMENT_END, 10, LEG_A, {"prompt_id": "ask-quality", "complete": True}),
    (TimelineKind.DTMF, 11, LEG_A, {"digit": "9"}),
    (TimelineKind.CONSENT, 11, None, {"purpose_id": "quality", "decision": "refused"}),
    (TimelineKind.ANNOUNCEMENT_START, 11.5, LEG_A, {"prompt_id": "ask-coaching"}),
    (TimelineKind.ANNOUNCEMENT_END, 13, LEG_A, {"prompt_id": "ask-coaching", "complete": True}),
    (
        TimelineKind.CONSENT,
        16,
        None,
        {"purpose_id": "coaching", "decision": "no_answer", "mechanism": "none"},
    ),
    (TimelineKind.RECORDING_START, 16, None, {}),
    (TimelineKind.FIRST_FRAME, 16, None, {}),
    (TimelineKind.AGENT_INFORMED, 16.02, LEG_B, {"kind": "tone", "name": "beep", "complete": True}),
    (TimelineKind.PAUSE_START, 18, None, {"reason": "hold"}),
    (TimelineKind.PAUSE_END, 19, None, {"reason": "hold"}),
    (TimelineKind.RECORDING_END, 20, None, {"state": "complete", "duration_ms": 4000}),
    (TimelineKind.CALL_END, 20.5, None, {"end_reason": "bye-from-a"}),
]


def test_a_whole_recorded_call_is_stored_and_decrypts_to_the_audio_written(
    layout: DataLayout, reviewer: X25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    ran = run(layout, WHOLE_CALL, recipient=reviewer)
    assert ran.fed.opened == [True]
    pcm = b"".join(ran.fed.written[0])
    assert len(pcm) == 4 * BLOCK_BYTES

    timeline, recordings = stored(layout)
    assert [(event.kind, event.at, event.leg_id) for event in timeline] == [
        (kind, ran.utc(seconds), leg) for kind, seconds, leg, _ in WHOLE_CALL_TIMELINE
    ]
    for event, (_, _, _, wanted) in zip(timeline, WHOLE_CALL_TIMELINE, strict=True):
        assert subset(event.detail, wanted) == wanted, event.kind

    (recording,) = recordings
    assert recording.call_id == CALL
    assert recording.state is RecordingState.COMPLETE
    assert recording.started_at == recording.first_frame_at == ran.utc(16)
    assert recording.finished_at == ran.utc(20)
    assert recording.end_reason == "ended"
    assert recording.media_quality == records_module.MediaQuality(
        outside_party=records_module.ChannelQuality(), pbx_side=records_module.ChannelQuality()
    )
    assert recording.duration_ms == 4000
    assert recording.key_id == (key_id(reviewer.public_key()),)
    assert recording.size_bytes == (layout.recordings_dir / recording.file_name).stat().st_size
    assert recording.audio_sha256 == hashlib.sha256(pcm).hexdigest()
    assert all(event.recording_id == recording.recording_id for event in timeline if event.recording_id)

    audio = read_audio(layout, recording, reviewer, allow_truncated=False)
    assert audio == pcm
    assert hashlib.sha256(audio).hexdigest() == recording.audio_sha256
    assert (peak_hz(audio, 0), peak_hz(audio, 1)) == (LEFT_HZ, RIGHT_HZ)

    with EvidenceStore(layout.evidence_db) as store:
        setup = ran.utc(0).date()
        # Only the purposes recording started for; the refused and unanswered ones are absent.
        assert store.delete_after_dates(CALL) == {
            "evidence": setup + dt.timedelta(days=90),
            "training": setup + dt.timedelta(days=30),
        }
    assert storage_errors(caplog) == []


def test_each_recording_states_where_its_file_is_kept_in_its_row_and_manifest(
    layout: DataLayout, reviewer: X25519PrivateKey
) -> None:
    run(layout, WHOLE_CALL, recipient=reviewer, storage_region="EU, Amsterdam (own rack)", worm=True)
    _, (recording,) = stored(layout)
    assert (recording.storage_region, recording.worm) == ("EU, Amsterdam (own rack)", True)
    with EvidenceStore(layout.evidence_db) as store:
        manifest = store.submit_read(lambda db: recording_manifest(db, str(recording.recording_id))).result()
        assert store.verify_manifests().ok
    assert (manifest["recording"]["storage_region"], manifest["recording"]["worm"]) == (
        "EU, Amsterdam (own rack)",
        True,
    )


def test_the_config_takes_every_storage_region_the_store_keeps() -> None:
    # The layers cannot share the limit (config and storage import nothing of each other): a
    # region the config let through must not be refused by the store as a recording starts.
    assert config_schema.STORAGE_REGION_MAX_LENGTH == records_module.STORAGE_REGION_MAX_LENGTH


def test_open_storage_warns_of_a_manifest_signing_key_others_may_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = default_config(tmp_path / "data")
    open_storage(config).close()
    assert "may be read by others" not in caplog.text  # made 0600
    DataLayout(config.data_dir).manifest_signing_key.chmod(0o644)
    open_storage(config).close()
    (warning,) = [record for record in caplog.records if "may be read by others" in record.getMessage()]
    assert warning.levelname == "WARNING"
    assert warning.getMessage().startswith("recording.manifest_signing_key: manifest signing key ")


def test_open_storage_takes_the_storage_region_worm_flag_and_write_delay_from_the_config(
    tmp_path: Path,
) -> None:
    config = default_config(tmp_path / "data")
    records = open_storage(config)
    records.close()
    assert (records.storage_region, records.worm, records.max_write_delay_s) == ("", False, 5)
    stated = replace(
        config,
        recording=replace(config.recording, storage_region="EU, Frankfurt", worm=True, max_write_delay_s=0),
    )
    records = open_storage(stated)
    records.close()
    assert (records.storage_region, records.worm, records.max_write_delay_s) == ("EU, Frankfurt", True, 0)


def quality_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "callherald.storage" and "] recording: " in r.getMessage()
    ]


def test_what_the_network_cost_a_recording_is_stored_with_its_end_and_logged(
    layout: DataLayout, reviewer: X25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    lossy = MediaQuality(
        outside_party=ChannelQuality(lost_ms=240, late_packets=2, late_ms=40, timestamp_jumps=1),
        pbx_side=ChannelQuality(drift_dropped_ms=20),
    )
    script = [replace(step, quality=lossy) if isinstance(step, Stop) else step for step in WHOLE_CALL]
    run(layout, script, recipient=reviewer)
    _, (recording,) = stored(layout)
    assert recording.media_quality == records_module.MediaQuality(
        outside_party=records_module.ChannelQuality(
            lost_ms=240, late_packets=2, late_ms=40, timestamp_jumps=1
        ),
        pbx_side=records_module.ChannelQuality(drift_dropped_ms=20),
    )
    # The log says it as `recordings show` does.
    assert quality_lines(caplog) == [
        f"[{CALL}] recording: outside party: 240 ms lost (silence in the file), 2 packets too late to "
        "place (40 ms), 1 timestamp jump (audio continued as it came); PBX side: 20 ms dropped for drift"
    ]


def test_a_clean_recording_logs_no_media_quality(
    layout: DataLayout, reviewer: X25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    run(layout, WHOLE_CALL, recipient=reviewer)
    _, (recording,) = stored(layout)
    assert recording.media_quality is not None
    assert recording.media_quality.clean
    assert quality_lines(caplog) == []


def test_an_outbound_call_s_agent_heard_the_notice_and_the_beep_and_is_recorded(
    layout: DataLayout, reviewer: X25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    # Outbound: the callee (outside) is on leg b, the agent on leg a hears its copy of the notice.
    # Its copy ends after the recording's first frame (it waited for the agent's address): it is
    # no announcement of the outside party, so the recording stands.
    script: list[Step] = [
        Begin(direction="outbound", at=at(0)),
        *notice(leg=MediaLeg.B, start=1, end=6),
        Said(event=consent.ConsentFinished(purposes=("evidence",), at=at(6)), leg=MediaLeg.B),
        Record(purposes=("evidence",), at=at(6.1), outside_leg=MediaLeg.B),
        Informed(start=1.05, end=6.2, leg=MediaLeg.A, prompt="notice"),
        Write(block=0),
        Informed(start=6.12, end=6.42, leg=MediaLeg.A, complete=False),
        Stop(reason="ended", at=at(7)),
        End(reason="bye-from-b", at=at(7.5)),
    ]
    ran = run(layout, script, recipient=reviewer)
    timeline, recordings = stored(layout)

    assert [r.state for r in recordings] == [RecordingState.COMPLETE]
    informed = [event for event in timeline if event.kind is TimelineKind.AGENT_INFORMED]
    assert [(event.at, event.leg_id) for event in informed] == [
        (ran.utc(1.05), LEG_A),
        (ran.utc(6.12), LEG_A),
    ]
    assert informed[0].detail == {
        "kind": "prompt",
        "name": "notice",
        "version": "notice-v4",
        "language": "nl",
        "audio_sha256": "5e" * 32,
        "ended_at": ran.utc(6.2),
        "complete": True,
        "failure": None,
    }
    assert subset(
        informed[1].detail, {"kind": "tone", "name": "beep", "ended_at": ran.utc(6.42), "complete": False}
    ) == {
        "kind": "tone",
        "name": "beep",
        "ended_at": ran.utc(6.42),
        "complete": False,
    }
    # The outside party's notice is the only announcement: the agent's copy is not one.
    assert [event.leg_id for event in prompts(timeline)] == [f"{CALL}:b", f"{CALL}:b"]
    assert storage_errors(caplog) == []


def agent_notice_rows(layout: DataLayout) -> list[tuple[str, str, str | None, int, str | None]]:
    """The stored agent notices: leg, name, end, complete, failure."""
    with EvidenceStore(layout.evidence_db) as store:
        rows: list[tuple[str, str, str | None, int, str | None]] = store.submit_read(
            lambda db: db.execute(
                "SELECT leg_id, name, ended_at, complete, failure FROM agent_notices ORDER BY rowid"
            ).fetchall()
        ).result()
        return rows


def test_what_plays_to_the_agent_is_stored_as_it_starts_and_completed_as_it_ends(
    layout: DataLayout, reviewer: X25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    # Outbound: the agent (leg a) hears its copy of the notice, then the beep as recording starts.
    started: list[Step] = [
        Begin(direction="outbound", at=at(0)),
        *notice(leg=MediaLeg.B, start=1, end=6),
        Informing(start=1.05, leg=MediaLeg.A, prompt="notice"),
        Said(event=consent.ConsentFinished(purposes=("evidence",), at=at(6)), leg=MediaLeg.B),
        Record(purposes=("evidence",), at=at(6.1), outside_leg=MediaLeg.B),
        Informing(start=6.12, leg=MediaLeg.A),
    ]
    ended: list[Step] = [
        Informed(start=1.05, end=6.2, leg=MediaLeg.A, prompt="notice"),
        Write(block=0),
        Informed(start=6.12, end=6.42, leg=MediaLeg.A),
        Stop(reason="ended", at=at(7)),
        End(reason="bye-from-b", at=at(7.5)),
    ]
    run(layout, started, recipient=reviewer)
    # Both rows are there while they play, without an end.
    assert agent_notice_rows(layout) == [(LEG_A, "notice", None, 0, None), (LEG_A, "beep", None, 0, None)]

    layout_2 = DataLayout(layout.root.parent / "whole")
    layout_2.root.mkdir()
    ran = run(layout_2, [*started, *ended], recipient=reviewer)
    # Each row is completed as it ends: one per playout, not a second one.
    assert agent_notice_rows(layout_2) == [
        (LEG_A, "notice", to_db_time(ran.utc(6.2)), 1, None),
        (LEG_A, "beep", to_db_time(ran.utc(6.42)), 1, None),
    ]
    with EvidenceStore(layout_2.evidence_db) as store:
        timeline = store.call_timeline(CALL)
    informed = [event for event in timeline if event.kind is TimelineKind.AGENT_INFORMED]
    assert [(event.at, event.detail["name"], event.detail["ended_at"]) for event in informed] == [
        (ran.utc(1.05), "notice", ran.utc(6.2)),
        (ran.utc(6.12), "beep", ran.utc(6.42)),
    ]
    assert informed[0].detail["version"] == "notice-v4"
    assert storage_errors(caplog) == []


def test_what_played_to_the_agent_when_the_proxy_died_is_ended_as_interrupted(
    layout: DataLayout, reviewer: X25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    crashed: list[Step] = [
        Begin(),
        *notice(end=6),
        Record(purposes=("evidence",), at=at(6)),
        Informing(start=6.02),
    ]  # no end of the beep, no Stop, no End: the process dies here
    ran = run(layout, crashed, recipient=reviewer)
    with EvidenceStore(layout.evidence_db) as store:
        messages = recover_open_recordings(layout, store)
        again = recover_open_recordings(layout, store)
    timeline, _ = stored(layout)

    assert f"agent notice beep on leg {LEG_B} left open by a crash: cut off" in messages
    assert again == []
    (informed,) = [event for event in timeline if event.kind is TimelineKind.AGENT_INFORMED]
    assert (informed.at, informed.leg_id) == (ran.utc(6.02), LEG_B)
    assert subset(informed.detail, {"name": "", "ended_at": "", "complete": "", "failure": ""}) == {
        "name": "beep",
        "ended_at": ran.utc(6.02),  # where the call is known to have lasted until
        "complete": False,
        "failure": INTERRUPTED_AGENT_NOTICE,
    }
    # The call lasted at least until the beep started: recovery ends it there, not before.
    assert (timeline[-1].kind, timeline[-1].at) == (TimelineKind.CALL_END, ran.utc(6.02))
    assert storage_errors(caplog) == []
    # The recording's manifest went into the audit log with its end, after recovery ended the
    # beep: the beep's verdict is fixed by it, and turning it into "played to the end" is found.
    with EvidenceStore(layout.evidence_db) as store:
        manifests = store.verify_manifests()
    assert (manifests.ok, manifests.checked, manifests.without_manifest) == (True, 1, 0)
    with sqlite3.connect(layout.evidence_db) as attacker:
        attacker.execute("UPDATE agent_notices SET complete = 1, failure = NULL")
    with EvidenceStore(layout.evidence_db) as store:
        (mismatch,) = store.verify_manifests().mismatches
    assert mismatch.parts == ("agent notices",)


def test_a_beep_reported_for_the_outside_leg_is_refused_and_logged(
    layout: DataLayout, reviewer: X25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    script: list[Step] = [
        Begin(),
        Informed(start=1, end=1.3, leg=MediaLeg.A),
        End(reason="bye-from-a", at=at(2)),
    ]
    run(layout, script, recipient=reviewer)
    timeline, _ = stored(layout)

    assert [event for event in timeline if event.kind is TimelineKind.AGENT_INFORMED] == []
    (error,) = storage_errors(caplog)
    assert f"agent notice beep on leg {CALL}:a, which is an outside leg" in error


# 2. The invariants of the evidence record --------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class InvariantCase:
    name: str
    script: list[Step]
    recorded: bool
    errors: tuple[str, ...] = ()
    """Texts each logged (callherald.storage, ERROR) when the store refuses a row."""


def recorded_for(purposes: tuple[str, ...], start: float) -> list[Step]:
    return [
        Record(purposes=purposes, at=at(start)),
        Write(block=0),
        Write(block=1),
        Stop(reason="ended", at=at(start + 2)),
        End(reason="bye-from-a", at=at(start + 3)),
    ]


INVARIANT_CASES = [
    InvariantCase(
        name="first frame as the notice ends",
        script=[Begin(), *notice(end=6), *recorded_for(("evidence",), 6)],
        recorded=True,
    ),
    InvariantCase(
        name="first frame before the notice ended",
        script=[Begin(), *notice(end=6), *recorded_for(("evidence",), 5.5)],
        recorded=False,
        errors=("announcement notice on leg call-1:a ended at",),
    ),
    InvariantCase(
        name="notice never ended",
        script=[
            Begin(),
            Said(event=consent.AnnouncementStarted(prompt_id="notice", language="nl", at=at(1))),
            *recorded_for(("evidence",), 10),
        ],
        recorded=False,
        errors=("no announcement was played to the end",),
    ),
    InvariantCase(
        name="notice failed",
        script=[
            Begin(),
            Said(event=consent.AnnouncementStarted(prompt_id="notice", language="nl", at=at(1))),
            Said(event=consent.NoticeFailed(prompt_id="notice", language="nl", reason="codec", at=at(2))),
            *recorded_for(("evidence",), 10),
        ],
        recorded=False,
        errors=("no announcement was played to the end",),
    ),
    InvariantCase(
        name="question prompt failed after the notice",
        script=[
            Begin(),
            *notice(end=6),
            Said(event=consent.AnnouncementStarted(prompt_id="ask-training", language="nl", at=at(7))),
            Said(
                event=consent.NoticeFailed(prompt_id="ask-training", language="nl", reason="codec", at=at(8))
            ),
            *recorded_for(("evidence",), 10),
        ],
        recorded=False,
        errors=(
            "announcement ask-training on leg call-1:a failed at",
            "(codec) and none was played to the end",
        ),
    ),
    InvariantCase(
        name="a new party on the line heard the notice after a prompt failed",
        script=[
            Begin(),
            Said(event=consent.AnnouncementStarted(prompt_id="notice", language="nl", at=at(1))),
            Said(event=consent.NoticeFailed(prompt_id="notice", language="nl", reason="codec", at=at(2))),
            *notice(start=3, end=8),
            *recorded_for(("evidence",), 10),
        ],
        recorded=True,
    ),
    InvariantCase(
        name="a notice played to the end before a prompt failed",
        script=[
            Begin(),
            *notice(start=1, end=6),
            Said(event=consent.AnnouncementStarted(prompt_id="notice", language="nl", at=at(7))),
            Said(event=consent.NoticeFailed(prompt_id="notice", language="nl", reason="codec", at=at(8))),
            *recorded_for(("evidence",), 10),
        ],
        recorded=False,
        errors=("announcement notice on leg call-1:a failed at",),
    ),
    InvariantCase(
        name="no notice on the outside leg (played to the PBX side)",
        script=[Begin(), *notice(leg=MediaLeg.B), *recorded_for(("evidence",), 10)],
        recorded=False,
        errors=("no announcement was played to the end on an outside leg",),
    ),
    InvariantCase(
        name="purpose not configured",
        script=[Begin(), *notice(), *recorded_for(("unknown",), 10)],
        recorded=False,
        errors=("has no purposes recorded",),
    ),
    InvariantCase(
        name="consent granted",
        script=[
            Begin(),
            *notice(),
            decided("training", consent.Decision.GRANTED, 8),
            *recorded_for(("training",), 10),
        ],
        recorded=True,
    ),
    InvariantCase(
        name="consent refused",
        script=[
            Begin(),
            *notice(),
            decided("training", consent.Decision.REFUSED, 8),
            *recorded_for(("training",), 10),
        ],
        recorded=False,
        errors=(
            "training on call call-1 without granted consent (the latest decision is refused)",
            "has no purposes",
        ),
    ),
    InvariantCase(
        name="consent not answered",
        script=[
            Begin(),
            *notice(),
            decided("training", consent.Decision.NO_ANSWER, 8),
            *recorded_for(("training",), 10),
        ],
        recorded=False,
        errors=("without granted consent (the latest decision is no_answer)", "has no purposes"),
    ),
    InvariantCase(
        name="consent never asked",
        script=[Begin(), *notice(), *recorded_for(("training",), 10)],
        recorded=False,
        errors=("without granted consent (no consent decision)", "has no purposes"),
    ),
    InvariantCase(
        name="a refused consent purpose takes the contract purpose listed with it down too (fail closed)",
        script=[
            Begin(),
            *notice(),
            decided("training", consent.Decision.REFUSED, 8),
            *recorded_for(("evidence", "training"), 10),
        ],
        recorded=False,
        errors=("without granted consent", "has no purposes"),
    ),
    InvariantCase(
        name="new party: first frame before its notice ended",
        script=[
            Begin(),
            *notice(end=6),
            Said(event=consent.PartyChanged(reason="transfer", at=at(7))),
            *notice(start=8, end=13),
            *recorded_for(("evidence",), 12),
        ],
        recorded=False,
        errors=("announcement notice on leg call-1:a2 ended at",),
    ),
]


@pytest.mark.parametrize("case", INVARIANT_CASES, ids=lambda case: case.name)
def test_the_store_refuses_recordings_without_their_evidence(
    case: InvariantCase, layout: DataLayout, reviewer: X25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    ran = run(layout, case.script, recipient=reviewer)
    assert ran.fed.opened == [True]  # the proxy cannot know yet: the store decides on the file thread

    timeline, recordings = stored(layout)
    files = sorted(layout.recordings_dir.iterdir())
    errors = storage_errors(caplog)
    assert timeline[-1].kind is TimelineKind.CALL_END  # the call's other evidence is written regardless
    if case.recorded:
        assert ran.fed.stopped == []
        (recording,) = recordings
        assert recording.state is RecordingState.COMPLETE
        assert files == [layout.recordings_dir / recording.file_name]
        assert wrapped_key_rows(layout) == 1
        assert read_audio(layout, recording, reviewer, allow_truncated=False) == b"".join(ran.fed.written[0])
        assert errors == []
    else:
        # No audio without its evidence: no row, no file, no key that could open one.
        assert recordings == []
        assert files == []
        assert wrapped_key_rows(layout) == 0
        for text in case.errors:
            assert any(text in message for message in errors), (text, errors)
        assert any("recording refused, the call is NOT recorded" in message for message in errors), errors
        # The proxy said the recording started before the store refused it: the evidence now says
        # the call is not recorded, and why, as for a call no recording could start for.
        record = record_step(case.script)
        (refused,) = (e for e in timeline if e.kind is TimelineKind.NOT_RECORDED)
        assert refused.at == ran.utc(record.at - T0)
        assert str(refused.detail["reason"]).startswith("the evidence record refused the recording: ")
        (logged,) = (e for e in evidence_log(caplog) if e["event"] == "not_recorded")
        assert logged["call"] == CALL
        assert logged["reason"] == refused.detail["reason"]
        assert logged["purposes"] == list(record.purposes)
        # The proxy is told, on its event loop, so that it stops recording the call.
        assert ran.fed.stopped == [(refused.detail["reason"], True)]


# 3. Withdrawal and a new outside party -----------------------------------------------------------


def changing_call(outside: MediaLeg) -> list[Step]:
    return [
        Begin(direction="inbound" if outside is MediaLeg.A else "outbound"),
        *notice(leg=outside, start=1, end=6),
        decided("training", consent.Decision.GRANTED, 8, leg=outside),
        Record(purposes=("evidence", "training"), at=at(9), outside_leg=outside),
        Write(block=0),
        Write(block=1),
        Said(
            event=consent.DigitReceived(
                digit="9", mechanism=DigitMechanism.RFC4733, at=at(11.5), counted=True
            ),
            leg=outside,
        ),
        Said(
            event=consent.ConsentWithdrawn(
                purposes=("training",), mechanism=DigitMechanism.RFC4733, at=at(11.5)
            ),
            leg=outside,
        ),
        Stop(reason="withdrawn", at=at(11.5)),
        Record(purposes=("evidence",), at=at(11.5), outside_leg=outside),
        Write(block=2),
        Stop(reason="new-party", at=at(13)),
        Said(
            event=consent.PartyChanged(
                reason="transfer",
                at=at(13),
                sip_call_id="target-dialog@callherald",
                remote_uri="sip:+3130555@x",
            ),
            leg=outside,
        ),
        *notice(leg=outside, start=14, end=19),
        Said(
            event=consent.DigitReceived(
                digit="5", mechanism=DigitMechanism.INBAND, at=at(19.5), counted=False
            ),
            leg=outside,
        ),
        Record(purposes=("evidence",), at=at(19.5), outside_leg=outside),
        Write(block=3),
        Stop(reason="ended", at=at(21)),
        End(reason="bye-from-b", at=at(22)),
    ]


@pytest.mark.parametrize(
    ("caller", "stored_as"),
    [
        ("sip:%2B31201234567@carrier.example", "+31201234567"),  # RFC 3261 §25.1 escaped "+"
        ("sip:+31201234567;isub=%31@carrier.example", "+31201234567;isub=1"),
        ("sip:%2B3120%0D%0AVia:x@carrier.example", "%2B3120%0D%0AVia:x"),  # a control character
        ("sip:%FF31@carrier.example", "%FF31"),  # not UTF-8
        ("tel:+31201234567", "+31201234567"),
    ],
)
def test_numbers_are_stored_as_dialled_and_escapes_only_when_unprintable(
    layout: DataLayout, reviewer: X25519PrivateKey, caller: str, stored_as: str
) -> None:
    run(layout, [Begin(caller=caller), End(reason="bye-from-a", at=at(1))], recipient=reviewer)
    timeline, _ = stored(layout)
    setup = timeline[0]
    assert setup.kind is TimelineKind.CALL_SETUP
    assert setup.detail["calling"] == stored_as
    assert setup.detail["called"] == "+31307654321"


@pytest.mark.parametrize("outside", [MediaLeg.A, MediaLeg.B], ids=["inbound", "outbound"])
def test_withdrawal_and_party_change(
    outside: MediaLeg, layout: DataLayout, reviewer: X25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    ran = run(layout, changing_call(outside), recipient=reviewer)
    timeline, recordings = stored(layout)
    first_leg, second_leg = f"{CALL}:{outside}", f"{CALL}:{outside}2"

    (withdrawal,) = [event for event in timeline if event.kind is TimelineKind.LATER_EVENT]
    assert withdrawal.at == ran.utc(11.5)
    assert withdrawal.detail == {
        "kind": "withdrawal",
        "actor": "caller",
        "purposes": ["training"],
        "mechanism": "rfc4733",
    }
    assert [(e.kind, e.at, e.leg_id) for e in timeline if e.kind is TimelineKind.ANNOUNCEMENT_END] == [
        (TimelineKind.ANNOUNCEMENT_END, ran.utc(6), first_leg),
        (TimelineKind.ANNOUNCEMENT_END, ran.utc(19), second_leg),
    ]
    assert [(e.at, e.leg_id) for e in timeline if e.kind is TimelineKind.DTMF] == [
        (ran.utc(11.5), first_leg),
        (ran.utc(19.5), second_leg),
    ]
    with EvidenceStore(layout.evidence_db) as store:
        legs = store.submit_read(
            lambda db: db.execute(
                "SELECT id, role, sip_call_id, remote_uri FROM legs WHERE call_id = ? ORDER BY rowid", [CALL]
            ).fetchall()
        ).result()
    inside = MediaLeg.B if outside is MediaLeg.A else MediaLeg.A
    assert sorted((row[0], row[1]) for row in legs) == sorted(
        [(first_leg, "outside"), (f"{CALL}:{inside}", "pbx"), (second_leg, "outside")]
    )
    # Who the new party is, and in which dialog: not the reason it came.
    assert [tuple(row[2:]) for row in legs if row[0] == second_leg] == [
        ("target-dialog@callherald", "sip:+3130555@x")
    ]

    assert [(r.state, r.first_frame_at, r.duration_ms) for r in recordings] == [
        (RecordingState.COMPLETE, ran.utc(9), 2000),
        (RecordingState.COMPLETE, ran.utc(11.5), 1000),
        (RecordingState.COMPLETE, ran.utc(19.5), 1000),
    ]
    # Each recording serves what it was started for: training only until it was withdrawn.
    assert [[p.purpose.purpose_id for p in r.purposes] for r in recordings] == [
        ["evidence", "training"],
        ["evidence"],
        ["evidence"],
    ]
    for recording, blocks in zip(recordings, ran.fed.written, strict=True):
        assert read_audio(layout, recording, reviewer, allow_truncated=False) == b"".join(blocks)
    assert storage_errors(caplog) == []


def pause_rows_in_manifests(layout: DataLayout) -> list[list[tuple[str, str, str]]]:
    """Per recording (in the order they ended): the pauses its manifest holds, as times in the
    stored form; the manifests are checked against the rows as they are now."""
    with EvidenceStore(layout.evidence_db) as store:
        assert store.verify_manifests().ok
        manifests: list[dict[str, Any]] = store.submit_read(
            lambda db: [
                json.loads(detail)
                for (detail,) in db.execute(
                    "SELECT detail FROM audit_log WHERE action = 'manifest' ORDER BY seq"
                )
            ]
        ).result()
    return [[(p["reason"], p["started_at"], p["ended_at"]) for p in m["pauses"]] for m in manifests]


def test_overlapping_pauses_are_stored_each_with_its_own_reason_and_times(
    layout: DataLayout, reviewer: X25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    # The caller's PCI pause, and the operator's pause over it (as the JSON evidence log has them):
    # an auditor must see both, each from its start to its own end.
    script: list[Step] = [
        Begin(),
        *notice(end=6),
        Record(purposes=("evidence",), at=at(10)),
        Write(block=0),
        Pause(reason="pci", at=at(11)),
        Pause(reason="api", at=at(11.5)),
        Write(block=1),
        Resume(reason="pci", at=at(12)),
        Resume(reason="api", at=at(12.5)),
        Write(block=2),
        Stop(reason="ended", at=at(13)),
        End(reason="bye-from-a", at=at(13.5)),
    ]
    ran = run(layout, script, recipient=reviewer)
    timeline, _ = stored(layout)
    pauses = [(e.kind, e.at, e.detail["reason"]) for e in timeline if e.kind in PAUSE_KINDS]
    assert pauses == [
        (TimelineKind.PAUSE_START, ran.utc(11), "pci"),
        (TimelineKind.PAUSE_START, ran.utc(11.5), "api"),
        (TimelineKind.PAUSE_END, ran.utc(12), "pci"),
        (TimelineKind.PAUSE_END, ran.utc(12.5), "api"),
    ]

    def utc(seconds: float) -> str:
        return to_db_time(ran.utc(seconds))

    assert pause_rows_in_manifests(layout) == [[("pci", utc(11), utc(12)), ("api", utc(11.5), utc(12.5))]]
    assert storage_errors(caplog) == []


def test_a_pause_across_a_withdrawal_ends_with_the_first_recording_and_starts_the_next(
    layout: DataLayout, reviewer: X25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    # A withdrawal during a hold and a PCI pause: the first recording's pauses end with it (not by
    # a resume), and the recording that follows is paused for both from its start until each ends.
    script: list[Step] = [
        Begin(),
        *notice(end=6),
        Record(purposes=("evidence",), at=at(10)),
        Write(block=0),
        Pause(reason="hold", at=at(11)),
        Pause(reason="pci", at=at(11.5)),
        Stop(reason="withdrawn", at=at(12)),
        Record(purposes=("evidence",), at=at(12)),
        Pause(reason="hold", at=at(12)),
        Pause(reason="pci", at=at(12)),
        Write(block=1),
        Resume(reason="pci", at=at(13)),
        Resume(reason="hold", at=at(13.5)),
        Write(block=2),
        Stop(reason="ended", at=at(15)),
        End(reason="bye-from-a", at=at(15.5)),
    ]
    ran = run(layout, script, recipient=reviewer)

    def utc(seconds: float) -> str:
        return to_db_time(ran.utc(seconds))

    assert pause_rows_in_manifests(layout) == [
        [("hold", utc(11), utc(12)), ("pci", utc(11.5), utc(12))],
        [("hold", utc(12), utc(13.5)), ("pci", utc(12), utc(13))],
    ]
    assert storage_errors(caplog) == []


PAUSE_KINDS = (TimelineKind.PAUSE_START, TimelineKind.PAUSE_END)


def prompts(timeline: list[TimelineEvent]) -> list[TimelineEvent]:
    """The starts and ends of the prompts in a call's timeline."""
    kinds = (TimelineKind.ANNOUNCEMENT_START, TimelineKind.ANNOUNCEMENT_END)
    return [event for event in timeline if event.kind in kinds]


def test_a_prompt_cut_short_is_stored_on_the_leg_that_heard_it(
    layout: DataLayout, reviewer: X25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    # A transfer during the notice, then the new party hangs up during theirs.
    script: list[Step] = [
        Begin(),
        Said(event=consent.AnnouncementStarted(prompt_id="notice", language="nl", at=at(1))),
        Said(event=consent.AnnouncementEnded(prompt_id="notice", at=at(3), complete=False)),
        Said(event=consent.PartyChanged(reason="transfer", at=at(3))),
        Said(event=consent.AnnouncementStarted(prompt_id="notice", language="nl", at=at(3.5))),
        Said(event=consent.AnnouncementEnded(prompt_id="notice", at=at(5), complete=False)),
        End(reason="bye-from-a", at=at(5)),
    ]
    ran = run(layout, script, recipient=reviewer)
    timeline, recordings = stored(layout)

    first, second = f"{CALL}:a", f"{CALL}:a2"
    assert [
        (event.kind, event.at, event.leg_id, event.detail.get("complete")) for event in prompts(timeline)
    ] == [
        (TimelineKind.ANNOUNCEMENT_START, ran.utc(1), first, None),
        (TimelineKind.ANNOUNCEMENT_END, ran.utc(3), first, False),
        (TimelineKind.ANNOUNCEMENT_START, ran.utc(3.5), second, None),
        (TimelineKind.ANNOUNCEMENT_END, ran.utc(5), second, False),
    ]
    assert recordings == []
    assert storage_errors(caplog) == []


def test_a_prompt_that_fails_mid_play_ends_when_it_failed_and_says_why(
    layout: DataLayout, reviewer: X25519PrivateKey
) -> None:
    script: list[Step] = [
        Begin(),
        *notice(end=6),
        Said(event=consent.AnnouncementStarted(prompt_id="ask-training", language="nl", at=at(6.5))),
        Said(
            event=consent.NoticeFailed(
                prompt_id="ask-training", language="nl", reason="file missing", at=at(7)
            )
        ),
        End(reason="bye-from-a", at=at(12)),
    ]
    ran = run(layout, script, recipient=reviewer)
    timeline, recordings = stored(layout)

    ends = [event for event in prompts(timeline) if event.kind is TimelineKind.ANNOUNCEMENT_END]
    assert [(e.at, e.detail["prompt_id"], e.detail["complete"], e.detail["failure"]) for e in ends] == [
        (ran.utc(6), "notice", True, None),
        (ran.utc(7), "ask-training", False, "file missing"),
    ]
    assert recordings == []


def test_a_notice_that_could_not_start_is_stored_as_failed_without_a_start(
    layout: DataLayout, reviewer: X25519PrivateKey
) -> None:
    reason = "prompt 'notice' in 'nl' is not available"
    script: list[Step] = [
        Begin(),
        Said(event=consent.NoticeFailed(prompt_id="notice", language="nl", reason=reason, at=at(0.5))),
        End(reason="bye-from-a", at=at(12)),
    ]
    ran = run(layout, script, recipient=reviewer)
    timeline, recordings = stored(layout)

    assert [(e.kind, e.at, e.leg_id) for e in prompts(timeline)] == [
        (TimelineKind.ANNOUNCEMENT_END, ran.utc(0.5), "call-1:a"),
    ]
    (end,) = prompts(timeline)
    assert end.detail == {
        "prompt_id": "notice",
        "version": "",
        "language": "nl",
        "audio_sha256": "",
        "complete": False,
        "failure": reason,
    }
    assert recordings == []


def test_a_prompt_playing_when_the_proxy_dies_is_kept_as_started(
    layout: DataLayout, reviewer: X25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    crashed: list[Step] = [
        Begin(),
        *notice(end=6),
        Said(event=consent.AnnouncementStarted(prompt_id="ask-training", language="nl", at=at(6.5))),
    ]  # no end, no End: the process dies here
    ran = run(layout, crashed, recipient=reviewer)
    with EvidenceStore(layout.evidence_db) as store:
        recover_open_recordings(layout, store)
    timeline, _ = stored(layout)

    assert [
        (event.kind, event.at, event.detail["prompt_id"], event.detail["version"])
        for event in prompts(timeline)
    ] == [
        (TimelineKind.ANNOUNCEMENT_START, ran.utc(1), "notice", "notice-v4"),
        (TimelineKind.ANNOUNCEMENT_END, ran.utc(6), "notice", "notice-v4"),
        (TimelineKind.ANNOUNCEMENT_START, ran.utc(6.5), "ask-training", "ask-v2"),
        (TimelineKind.ANNOUNCEMENT_END, ran.utc(6.5), "ask-training", "ask-v2"),  # cut off by the crash
    ]
    # The call lasted at least until the question started: recovery ends it there, not before.
    assert (timeline[-1].kind, timeline[-1].at, timeline[-1].detail) == (
        TimelineKind.CALL_END,
        ran.utc(6.5),
        {"end_reason": "interrupted"},
    )
    assert storage_errors(caplog) == []


@pytest.mark.parametrize("digit_at", [None, 8.0], ids=["nothing after it", "a key pressed during it"])
def test_recovery_ends_a_prompt_a_crash_cut_off_where_the_call_ends(
    digit_at: float | None, layout: DataLayout, reviewer: X25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    # Killed during the consent question: the call is closed as interrupted, and so is the prompt,
    # at the latest the call is known to have lasted, with why it stopped.
    crashed: list[Step] = [
        Begin(),
        *notice(end=6),
        Said(event=consent.AnnouncementStarted(prompt_id="ask-training", language="nl", at=at(6.5))),
    ]
    if digit_at is not None:
        crashed.append(
            Said(
                event=consent.DigitReceived(
                    digit="5", mechanism=DigitMechanism.RFC4733, at=at(digit_at), counted=False
                )
            )
        )
    ran = run(layout, crashed, recipient=reviewer)
    with EvidenceStore(layout.evidence_db) as store:
        recover_open_recordings(layout, store)
    timeline, _ = stored(layout)

    end_at = ran.utc(6.5 if digit_at is None else digit_at)
    question_end = prompts(timeline)[-1]
    assert (question_end.kind, question_end.at, question_end.detail["prompt_id"]) == (
        TimelineKind.ANNOUNCEMENT_END,
        end_at,
        "ask-training",
    )
    assert subset(question_end.detail, {"complete": False, "failure": ""}) == {
        "complete": False,
        "failure": "interrupted: callherald stopped during the prompt",
    }
    assert (timeline[-1].kind, timeline[-1].at) == (TimelineKind.CALL_END, end_at)
    assert storage_errors(caplog) == []


# 4. A full disk ----------------------------------------------------------------------------------


def recording_with_free_space(mbs: Sequence[int]) -> list[Step]:
    """One call recorded again and again; before each recording the disk reports ``mb`` MiB free."""
    script: list[Step] = [Begin(), *notice(end=6)]
    for index, mb in enumerate(mbs):
        start = 10 + 3 * index
        script += [
            FreeSpace(mb=mb),
            Record(purposes=("evidence",), at=at(start)),
            Write(block=index),
            Stop(reason="restarted", at=at(start + 1)),
        ]
    return [*script, End(reason="bye-from-a", at=at(10 + 3 * len(mbs)))]


def test_new_calls_follow_a_wall_clock_set_while_running_and_each_call_keeps_its_order(
    layout: DataLayout,
    reviewer: X25519PrivateKey,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def play() -> None:
        records = StorageRecords(
            layout,
            EvidenceStore(layout.evidence_db),
            recipients=(reviewer.public_key(),),
            purposes=PURPOSES,
            min_free_mb=0,
        )
        try:
            feed(records, [Begin(at=at(0))], call_ref="before")
            real_time = time.time
            monkeypatch.setattr(time, "time", lambda: real_time() - 3600)  # NTP sets the clock back
            feed(records, [Begin(at=at(2)), End(reason="bye-from-a", at=at(3))], call_ref="after")
            feed(records, [End(reason="bye-from-a", at=at(4))], call_ref="before")
        finally:
            records.close()

    asyncio.run(play())
    with EvidenceStore(layout.evidence_db) as store:
        before, after = store.call_timeline("before"), store.call_timeline("after")
    # The running call keeps the offset it started with: its end is 4 s after its start.
    assert [event.kind for event in before] == [TimelineKind.CALL_SETUP, TimelineKind.CALL_END]
    assert before[1].at - before[0].at == dt.timedelta(seconds=4)
    # The new call follows the wall clock: set up 2 s after the first one, less the hour.
    assert abs((after[0].at - before[0].at) - dt.timedelta(seconds=2 - 3600)) < dt.timedelta(seconds=0.5)
    assert after[1].at - after[0].at == dt.timedelta(seconds=1)
    assert "the wall clock moved -3600." in caplog.text


@pytest.mark.parametrize(
    ("free_mb", "opened", "full_errors", "back_warnings"),
    [
        ((10, 199, 200, 5000), [False, False, True, True], 1, 1),
        ((5000, 0, 0, 5000, 1), [True, False, False, True, False], 2, 1),
        ((0, 5000, 0, 5000), [False, True, False, True], 2, 2),
    ],
)
def test_new_recordings_wait_for_free_space(
    free_mb: tuple[int, ...],
    opened: list[bool],
    full_errors: int,
    back_warnings: int,
    layout: DataLayout,
    reviewer: X25519PrivateKey,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    disk = FakeDisk()
    monkeypatch.setattr("callherald.evidence.shutil.disk_usage", disk.usage)
    ran = run(layout, recording_with_free_space(free_mb), recipient=reviewer, min_free_mb=200, disk=disk)
    assert ran.fed.opened == opened

    errors = storage_errors(caplog)
    assert len(errors) == full_errors
    assert all("disk nearly full" in message and "200 MB needed" in message for message in errors)
    assert caplog.text.count("disk space is back") == back_warnings
    _, recordings = stored(layout)
    assert len(recordings) == opened.count(True)
    assert all(r.state is RecordingState.COMPLETE and r.duration_ms == 1000 for r in recordings)
    assert len(list(layout.recordings_dir.iterdir())) == opened.count(True)


class SteppedClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_new_recordings_wait_while_the_file_thread_is_behind_until_it_catches_up(
    layout: DataLayout, reviewer: X25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    # Two batches of file work held up as a stalled disk would hold them (handed over at 0 s and
    # 3 s): more than max_write_delay_s (5 s) behind is logged as the next audio is handed over,
    # refuses new recordings, and they start again only once the delay is within half of it (2.5 s).
    clock = SteppedClock()
    first_stall, second_stall, no_stall = threading.Event(), threading.Event(), threading.Event()
    no_stall.set()
    opened: list[bool] = []
    errors: list[str] = []  # logged before the first recording refused

    async def play() -> list[float]:
        records = StorageRecords(
            layout,
            EvidenceStore(layout.evidence_db),
            recipients=(reviewer.public_key(),),
            purposes=PURPOSES,
            max_write_delay_s=5,
            clock=clock,
        )
        delays = []

        async def hand_over(stall: threading.Event) -> None:
            def stalled() -> None:
                stall.wait(30)

            records._submit_file(stalled)
            await asyncio.sleep(0)  # the batch goes to the file thread

        async def record(seconds: float) -> None:
            clock.now = 1000.0 + seconds
            delays.append(records.file_write_delay_s())
            script: list[Step] = [
                Record(purposes=("evidence",), at=at(10 + seconds)),
                Write(block=0),
                Stop(reason="restarted", at=at(11 + seconds)),
            ]
            opened.extend(feed(records, script).opened)
            await asyncio.sleep(0)  # an opened recording's file work goes to the file thread

        async def done(batches: int) -> None:
            for _ in range(500):
                if records._batches_done >= batches:
                    return
                await asyncio.sleep(0.01)
            raise AssertionError("the file thread did not get through the batches")

        try:
            feed(records, [Begin(), *notice(end=6)])
            await hand_over(first_stall)
            clock.now = 1003.0
            await hand_over(second_stall)
            await record(4)  # 4 s behind: recorded
            clock.now = 1005.5
            await hand_over(no_stall)  # more audio handed over: behind, and logged so
            errors.extend(storage_errors(caplog))
            await record(6)  # 6 s: refused
            await record(7)  # still refused, logged once
            first_stall.set()
            await done(1)
            await record(7)  # the second stall, 4 s behind: above half the limit, refused
            second_stall.set()
            await done(4)  # the second stall, the first recording's file work, the audio
            await record(8)  # caught up: recorded again
            feed(records, [End(reason="bye-from-a", at=at(30))])
        finally:
            first_stall.set()
            second_stall.set()
            records.close()
        return delays

    delays = asyncio.run(play())
    assert delays == [4.0, 6.0, 7.0, 4.0, 0.0]
    assert opened == [True, False, False, False, True]
    behind = (
        "recording files are written 5.5 s late, the disk is not keeping up (recording.max_write_delay_s 5):"
        " new calls are not recorded until it catches up"
    )
    assert errors == [behind]
    assert storage_errors(caplog) == [behind]
    assert caplog.text.count("recording files are written on time again (0.0 s behind)") == 1
    timeline, recordings = stored(layout)
    assert len(recordings) == 2
    assert all(r.state is RecordingState.COMPLETE for r in recordings)
    assert [e.detail for e in timeline if e.kind is TimelineKind.NOT_RECORDED] == [
        {"reason": f"recording files are written {seconds:.1f} s late, the disk is not keeping up"}
        for seconds in (6, 7, 4)
    ]


@pytest.mark.parametrize(
    ("free_mb", "recording_enabled", "reason"),
    [
        (10, True, "disk nearly full (10 MB free, 200 MB needed)"),
        (5000, False, "recording is switched off (recording.enabled)"),
    ],
)
def test_a_call_that_cannot_be_recorded_is_stored_as_not_recorded_and_why(
    free_mb: int,
    recording_enabled: bool,
    reason: str,
    layout: DataLayout,
    reviewer: X25519PrivateKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    disk = FakeDisk(free_mb=free_mb)
    monkeypatch.setattr("callherald.evidence.shutil.disk_usage", disk.usage)
    script: list[Step] = [
        Begin(),
        *notice(end=6),
        Record(purposes=("evidence",), at=at(10)),
        Write(block=0),
        Stop(reason="ended", at=at(11)),
        End(reason="bye-from-a", at=at(12)),
    ]
    ran = run(
        layout, script, recipient=reviewer, min_free_mb=200, recording_enabled=recording_enabled, disk=disk
    )
    assert ran.fed.opened == [False]
    timeline, recordings = stored(layout)
    assert recordings == []
    assert [(e.at, e.detail) for e in timeline if e.kind is TimelineKind.NOT_RECORDED] == [
        (ran.utc(10), {"reason": reason})
    ]
    with EvidenceStore(layout.evidence_db) as store:  # the purposes the call was to be recorded for
        assert list(store.delete_after_dates(CALL)) == ["evidence"]


def test_a_purpose_changed_between_runs_applies_to_new_calls_and_earlier_calls_keep_theirs(
    layout: DataLayout, reviewer: X25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    # A restart after the retention of evidence went from 90 to 730 days: the next call is recorded
    # under the new definition, the call recorded before keeps its own and its delete-after date.
    script: list[Step] = [Begin(), *notice(end=6), *recorded_for(("evidence",), 6)]
    first = run(layout, script, recipient=reviewer)
    longer = {**PURPOSES, "evidence": replace(PURPOSES["evidence"], retention_days=730)}
    second = run(layout, [], recipient=reviewer, purposes=longer, more_calls=[("call-2", script)])
    assert storage_errors(caplog) == []
    assert [e["event"] for e in evidence_log(caplog) if e["event"] == "not_recorded"] == []
    with EvidenceStore(layout.evidence_db) as store:
        recordings = store.recordings_list()
        (before,) = store.call_purposes(CALL)
        (after,) = store.call_purposes("call-2")
    # Both runs' calls may start within one microsecond: the list's order between them is not fixed.
    assert sorted((r.call_id, r.state) for r in recordings) == sorted(
        [(CALL, RecordingState.COMPLETE), ("call-2", RecordingState.COMPLETE)]
    )
    assert (before.version, before.purpose.retention_days) == (1, 90)
    assert before.delete_after == first.utc(0).date() + dt.timedelta(days=90)
    assert (after.version, after.purpose.retention_days) == (2, 730)
    assert after.delete_after == second.utc(0).date() + dt.timedelta(days=730)


def test_open_storage_stores_a_changed_purpose_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = default_config(tmp_path / "data")
    open_storage(config).close()
    assert "changed" not in caplog.text
    edited = replace(
        config,
        purposes=tuple(
            replace(purpose, retention_days=730) if purpose.id == "evidence" else purpose
            for purpose in config.purposes
        ),
    )
    open_storage(edited).close()
    open_storage(edited).close()  # said once, when the change took effect
    (line,) = [
        r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "changed" in r.getMessage()
    ]
    assert line == (
        "purpose evidence changed (retention_days 365 -> 730; version 2): new calls are recorded under "
        "it, calls recorded before keep the definition they were recorded under"
    )
    with EvidenceStore(DataLayout(config.data_dir).evidence_db) as store:
        (entry,) = store.submit_read(lambda db: AuditLog(db).entries()).result()
    assert (entry.actor, entry.action, entry.subject) == ("configuration", "purpose_changed", "evidence")
    assert json.loads(entry.detail)["current"]["retention_days"] == 730


def test_after_a_full_disk_recording_resumes_only_with_a_megabyte_free(
    layout: DataLayout,
    reviewer: X25519PrivateKey,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # min_free_mb 0 asks for no margin, but a disk that was just found full (a segment failed with
    # ENOSPC) is not "back" at 0 bytes free: it takes RESUME_FREE_BYTES (1 MiB).
    disk = FakeDisk(free_mb=0)
    monkeypatch.setattr("callherald.evidence.shutil.disk_usage", disk.usage)
    assert RESUME_FREE_BYTES == 1024 * 1024

    async def play() -> Fed:
        records = StorageRecords(
            layout,
            EvidenceStore(layout.evidence_db),
            recipients=(reviewer.public_key(),),
            purposes=PURPOSES,
            min_free_mb=0,
        )
        try:
            feed(records, [Begin(), *notice(end=6)], disk=disk)
            records.disk_full = True  # as the file thread marks it on StorageFullError
            return feed(
                records,
                [
                    Record(purposes=("evidence",), at=at(10)),
                    Stop(reason="restarted", at=at(11)),
                    FreeSpace(mb=1),
                    Record(purposes=("evidence",), at=at(12)),
                    Write(block=0),
                    Stop(reason="ended", at=at(13)),
                    End(reason="bye-from-a", at=at(14)),
                ],
                disk=disk,
            )
        finally:
            records.close()

    fed = asyncio.run(play())
    assert fed.opened == [False, True]
    assert caplog.text.count("disk space is back") == 1
    _, (recording,) = stored(layout)
    assert recording.state is RecordingState.COMPLETE


def test_no_recording_starts_while_evidence_waits_for_disk_space(
    layout: DataLayout, reviewer: X25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    # The database is full (SQLite's own SQLITE_FULL): the call's evidence waits in memory, in
    # order, and no recording may start, as its row could not go in before its audio. When there
    # is room again everything is written, and nothing was recorded.

    async def play() -> Fed:
        evidence = EvidenceStore(layout.evidence_db)
        records = StorageRecords(layout, evidence, recipients=(reviewer.public_key(),), purposes=PURPOSES)
        try:
            cap_growth(evidence, full=True)
            fill(evidence)  # returns with writes held: the database is full
            fed = feed(
                records,
                [
                    Begin(),
                    *notice(end=6),
                    Record(purposes=("evidence",), at=at(10)),
                    Write(block=0),
                    Stop(reason="ended", at=at(11)),
                    End(reason="bye-from-a", at=at(12)),
                ],
            )
            cap_growth(evidence, full=False)
            return fed
        finally:
            records.close()

    fed = asyncio.run(play())
    assert fed.opened == [False]
    assert "evidence is waiting for disk space: new calls are not recorded" in caplog.text
    assert "disk space is back: the held evidence is written" in caplog.text
    timeline, recordings = stored(layout)
    assert recordings == []
    assert list(layout.recordings_dir.iterdir()) == []
    kinds = [event.kind for event in timeline]
    assert kinds[0] is TimelineKind.CALL_SETUP
    assert TimelineKind.ANNOUNCEMENT_END in kinds
    assert kinds[-1] is TimelineKind.CALL_END
    assert [e.detail["reason"] for e in timeline if e.kind is TimelineKind.NOT_RECORDED] == [
        "disk full: evidence is waiting for disk space"
    ]


def test_evidence_waiting_for_disk_space_at_a_stop_is_written_by_the_next_start(
    layout: DataLayout,
    reviewer: X25519PrivateKey,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # callherald stops (SIGTERM) while the database is still full: the call's evidence, waiting in
    # memory, is kept in a file beside the database, and the next start writes it in, once.
    monkeypatch.setattr(records_module, "CLOSE_RETRY_S", 0.2)

    async def play() -> None:
        evidence = EvidenceStore(layout.evidence_db)
        records = StorageRecords(layout, evidence, recipients=(reviewer.public_key(),), purposes=PURPOSES)
        try:
            cap_growth(evidence, full=True)
            fill(evidence, count=40)
            feed(
                records,
                [
                    Begin(),
                    *notice(end=6),
                    Record(purposes=("evidence",), at=at(10)),
                    End(reason="shutdown", at=at(12)),
                ],
            )
        finally:
            records.close()

    asyncio.run(play())
    (kept,) = layout.root.glob("evidence-held-*.jsonl")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert "not written" not in caplog.text  # no error per record: one warning says where they are
    assert "which the next start writes into the database" in caplog.text
    with EvidenceStore(layout.evidence_db) as store, pytest.raises(NotFoundError):
        store.call_timeline(CALL)

    config = default_config(layout.root)
    open_storage(config).close()
    assert not kept.exists()
    open_storage(config).close()  # nothing left to write: written once
    timeline, recordings = stored(layout)
    assert recordings == []
    kinds = [event.kind for event in timeline]
    assert kinds[0] is TimelineKind.CALL_SETUP
    assert TimelineKind.ANNOUNCEMENT_END in kinds
    assert [e.detail["reason"] for e in timeline if e.kind is TimelineKind.NOT_RECORDED] == [
        "disk full: evidence is waiting for disk space"
    ]
    assert timeline[-1].kind is TimelineKind.CALL_END
    assert timeline[-1].detail == {"end_reason": "shutdown"}  # not closed as interrupted by recovery
    with EvidenceStore(layout.evidence_db) as store:
        assert store.audit_verify().ok
        assert store.verify_manifests().ok
        imports = [
            entry
            for entry in store.submit_read(lambda db: AuditLog(db).entries()).result()
            if entry.action == "held_evidence_imported"
        ]
    (entry,) = imports
    assert entry.subject == kept.name
    assert json.loads(entry.detail)["refused"] == []


@pytest.mark.parametrize("fail_at", [0, 2, 3])
def test_a_full_disk_mid_recording_keeps_the_sealed_segments(
    fail_at: int,
    layout: DataLayout,
    reviewer: X25519PrivateKey,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Block ``fail_at`` meets a full disk: the blocks before it stay, later ones are ignored."""
    calls: list[int] = []
    write_segment = SegmentWriter.write_segment

    def filling_disk(writer: SegmentWriter, pcm: bytes) -> None:
        calls.append(len(pcm))
        if len(calls) == fail_at + 1:
            raise StorageFullError("disk full: no space left on device (test)")
        write_segment(writer, pcm)

    monkeypatch.setattr(SegmentWriter, "write_segment", filling_disk)
    script: list[Step] = [
        Begin(),
        *notice(end=6),
        Record(purposes=("evidence",), at=at(10)),
        *[Write(block=index) for index in range(5)],
        Said(
            event=consent.DigitReceived(
                digit="7", mechanism=DigitMechanism.SIP_INFO, at=at(15.5), counted=False
            )
        ),
        Said(
            event=consent.ConsentWithdrawn(
                purposes=("training",), mechanism=DigitMechanism.SIP_INFO, at=at(15.5)
            )
        ),
        Stop(reason="ended", at=at(16)),
        End(reason="bye-from-b", at=at(17)),
    ]
    ran = run(layout, script, recipient=reviewer)
    kept = b"".join(ran.fed.written[0][:fail_at])

    assert calls == [BLOCK_BYTES] * (fail_at + 1)  # nothing is handed to the writer after the failure
    # The proxy is told, on its event loop, so that it stops recording the call.
    assert ran.fed.stopped == [("disk full", True)]
    errors = storage_errors(caplog)
    assert len(errors) == 1
    assert "disk full, recording stopped at its last sealed segment" in errors[0]

    timeline, (recording,) = stored(layout)
    assert recording.state is RecordingState.TRUNCATED
    assert recording.duration_ms == 1000 * fail_at
    assert recording.audio_sha256 == hashlib.sha256(kept).hexdigest()
    path = layout.recordings_dir / recording.file_name
    assert recording.size_bytes == path.stat().st_size
    # The recording ends where writing stopped, and says why; the call goes on to its own end.
    assert (recording.finished_at, recording.end_reason) == (ran.utc(10 + fail_at), "disk full")
    (end,) = [e for e in timeline if e.kind is TimelineKind.RECORDING_END]
    assert (end.at, end.detail["end_reason"]) == (ran.utc(10 + fail_at), "disk full")
    assert [(e.kind, e.at) for e in timeline if e.at >= ran.utc(15.5)] == [
        (TimelineKind.DTMF, ran.utc(15.5)),
        (TimelineKind.LATER_EVENT, ran.utc(15.5)),
        (TimelineKind.CALL_END, ran.utc(17)),
    ]
    (cut_off,) = [json.loads(r.getMessage()) for r in caplog.records if r.name == "callherald.evidence"]
    assert cut_off == {
        "call": CALL,
        "event": "recording_cut_off",
        "recording": str(recording.recording_id),
        "reason": "disk full",
        "at": ran.utc(10 + fail_at).isoformat(timespec="milliseconds"),
    }
    assert read_audio(layout, recording, reviewer, allow_truncated=True) == kept
    with pytest.raises(TruncatedRecordingError):
        read_audio(layout, recording, reviewer, allow_truncated=False)


def failing_second_write(monkeypatch: pytest.MonkeyPatch) -> None:
    write_segment = SegmentWriter.write_segment

    def failing(writer: SegmentWriter, pcm: bytes) -> None:
        if writer.segments_written == 1:
            raise StorageError("the device reported an I/O error (test)")
        write_segment(writer, pcm)

    monkeypatch.setattr(SegmentWriter, "write_segment", failing)


def no_file_made(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_file(*_args: object, **_kwargs: object) -> SegmentWriter:
        raise OSError(errno.EACCES, "Permission denied (test)")

    monkeypatch.setattr(evidence_module, "SegmentWriter", no_file)


@pytest.mark.parametrize(
    ("failure", "why", "duration_ms"),
    [
        (failing_second_write, "write failed: the device reported an I/O error (test)", 1000),
        (no_file_made, "file not created: [Errno 13] Permission denied (test)", 0),
    ],
    ids=["write-failed", "file-not-created"],
)
def test_a_recording_whose_audio_cannot_be_written_tells_the_proxy_it_stopped(
    failure: Callable[[pytest.MonkeyPatch], None],
    why: str,
    duration_ms: int,
    layout: DataLayout,
    reviewer: X25519PrivateKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As on a full disk: the record says why the recording ended, and the proxy, told on its
    # event loop, stops recording the call.
    failure(monkeypatch)
    script: list[Step] = [
        Begin(),
        *notice(end=6),
        Record(purposes=("evidence",), at=at(10)),
        *[Write(block=index) for index in range(3)],
        Stop(reason="ended", at=at(13)),
        End(reason="bye-from-b", at=at(14)),
    ]
    ran = run(layout, script, recipient=reviewer)

    assert ran.fed.stopped == [(why, True)]
    _, (recording,) = stored(layout)
    assert (recording.duration_ms, recording.end_reason) == (duration_ms, why)


# 5. Recovery after a crash -----------------------------------------------------------------------


def cut_record(data: bytes) -> bytes:
    """A record whose write was cut short: the first record's header and part of its body."""
    return data[HEADER_BYTES : HEADER_BYTES + RECORD_HEADER_BYTES + 1000]


TORN_TAILS: dict[str, Callable[[bytes], bytes]] = {
    "no tail": lambda _data: b"",
    "part of a record header": lambda _data: b"\xa5" * 10,
    "zeros never written": lambda _data: bytes(4096),
    "a record cut short": cut_record,
}


@pytest.fixture
def writers(monkeypatch: pytest.MonkeyPatch) -> list[SegmentWriter]:
    """Every recording's writer, to abandon it as a crash does."""
    made: list[SegmentWriter] = []

    class AbandonedWriter(SegmentWriter):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(evidence_module, "SegmentWriter", AbandonedWriter)
    return made


@pytest.fixture
def full_disk_layout(tmp_path: Path) -> Iterator[DataLayout]:
    """A data_dir on a 4 MiB tmpfs (needs root: skips the test otherwise)."""
    with tiny_file_system(tmp_path / "data", 4096) as root:
        yield DataLayout(root)


def test_a_start_on_a_full_disk_after_a_crash_leaves_the_recovery_for_a_later_start(
    full_disk_layout: DataLayout,
    reviewer: X25519PrivateKey,
    writers: list[SegmentWriter],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A full disk stops new recordings, never calls: a restart after a crash on a full disk must
    # not fail on the evidence it cannot write (the recovery, a changed purpose), but leave it.
    layout = full_disk_layout
    config = default_config(layout.root)
    open_storage(config).close()  # the first run: database, development key
    # A crashed process leaves the write-ahead log and its index beside the database; a reader
    # holding the database open keeps them as the crash would.
    crash_leftovers = sqlite3.connect(layout.evidence_db)
    crash_leftovers.execute("SELECT count(*) FROM calls").fetchone()
    crashed: list[Step] = [Begin(), *notice(end=6), Record(purposes=("evidence",), at=at(10)), Write(block=0)]
    run(layout, crashed, recipient=reviewer)
    (writer,) = writers
    writer.close(final=False)
    edited = replace(
        config,
        purposes=tuple(
            replace(purpose, retention_days=730) if purpose.id == "evidence" else purpose
            for purpose in config.purposes
        ),
    )
    filler = fill_up(layout.root)

    open_storage(edited).close()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("the disk is full" in line and "not closed yet" in line for line in errors), errors
    assert any("the disk is full" in line and "purposes are not stored" in line for line in errors), errors
    with EvidenceStore(layout.evidence_db) as store:
        (still_open,) = store.recordings_list(state=RecordingState.RECORDING)

    filler.unlink()
    crash_leftovers.close()
    caplog.clear()
    open_storage(edited).close()
    assert f"recording {still_open.recording_id} after a crash: truncated" in caplog.text
    assert "purpose evidence changed (" in caplog.text
    assert not [r for r in caplog.records if r.levelno == logging.ERROR]
    _, (recording,) = stored(layout)
    assert recording.state is RecordingState.TRUNCATED


def test_a_start_on_a_disk_too_full_to_open_the_database_still_takes_calls(
    full_disk_layout: DataLayout, caplog: pytest.LogCaptureFixture
) -> None:
    # A clean stop leaves no -shm or -wal file, which SQLite must make to open the database: on a
    # disk full to the last byte the start goes on without it; the recovery, the held files and
    # the checks wait for a start with room.
    layout = full_disk_layout
    config = default_config(layout.root)
    open_storage(config).close()  # the first run: database, development key
    filler = fill_up(layout.root)
    caplog.clear()

    records = open_storage(config)
    try:
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert any("cannot open the evidence database: the disk holding it is full" in e for e in errors)
        assert records.store.waiting_for_space
        assert "manifests:" not in caplog.text  # no start-up check ran on a database it has not read
        assert "the configured purposes are not stored" in caplog.text
    finally:
        filler.unlink()
        records.close()
    caplog.clear()
    open_storage(config).close()  # the next start, with room: all as usual
    assert "manifests: none yet" in caplog.text
    assert not [r for r in caplog.records if r.levelno == logging.ERROR]


def test_a_first_start_ever_on_a_full_disk_has_no_key_and_the_next_start_with_room_makes_it(
    full_disk_layout: DataLayout, caplog: pytest.LogCaptureFixture
) -> None:
    layout = full_disk_layout
    config = default_config(layout.root)
    filler = fill_up(layout.root)

    records = open_storage(config)
    try:
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert any("cannot make the development key pair: the disk holding it is full" in e for e in errors)
        assert "DEVELOPMENT KEY" not in caplog.text
        assert records.recipients == ()
        assert records.no_recipients_reason.startswith("no development key: the disk was too full")
    finally:
        records.close()
    filler.unlink()
    caplog.clear()
    records = open_storage(config)
    try:
        assert "made a new development key pair" in caplog.text
        assert not [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(records.recipients) == 1
    finally:
        records.close()


@pytest.mark.parametrize("tail", TORN_TAILS.values(), ids=TORN_TAILS.keys())
def test_recovery_closes_what_a_crash_left_open(
    tail: Callable[[bytes], bytes],
    layout: DataLayout,
    reviewer: X25519PrivateKey,
    writers: list[SegmentWriter],
    caplog: pytest.LogCaptureFixture,
) -> None:
    crashed: list[Step] = [
        Begin(),
        *notice(end=6),
        Record(purposes=("evidence",), at=at(10)),
        *[Write(block=index) for index in range(3)],
    ]  # no Stop, no End: the process dies here
    ran = run(layout, crashed, recipient=reviewer, more_calls=[("call-2", [Begin(at=at(30))])])
    (writer,) = writers
    writer.close(final=False)  # what the kernel does for a dead process: the fd closes, no final segment
    path = writer.path
    intact = path.read_bytes()
    with path.open("ab") as file:
        file.write(tail(intact))

    with EvidenceStore(layout.evidence_db) as store:
        (open_recording,) = store.recordings_list(state=RecordingState.RECORDING)
        messages = recover_open_recordings(layout, store)
        again = recover_open_recordings(layout, store)
        setup_2 = store.call_timeline("call-2")[0].at
        (call_1,) = [c for c in store.calls_for_number("+31201234567") if c.call_id == CALL]
        (call_2,) = [c for c in store.calls_for_number("+31201234567") if c.call_id == "call-2"]
    timeline, (recording,) = stored(layout)

    assert sorted(messages) == sorted(
        [
            f"recording {open_recording.recording_id} after a crash: truncated, 3000 ms kept",
            f"call {CALL} left open by a crash: closed as interrupted",
            "call call-2 left open by a crash: closed as interrupted",
        ]
    )
    assert again == []
    assert path.read_bytes() == intact  # the torn tail is cut off
    assert recording.state is RecordingState.TRUNCATED
    assert recording.duration_ms == 3000
    assert recording.size_bytes == len(intact)
    assert recording.audio_sha256 == ""  # the proxy holds no private key: it cannot hash the plaintext
    # ... but it pins the file as recovered: new audio sealed to the public keys would not match.
    assert recording.file_sha256 == hashlib.sha256(intact).hexdigest()
    assert recording.finished_at == ran.utc(13)  # first frame + the audio kept
    assert recording.end_reason == "interrupted"
    assert recording.media_quality is None  # no recorder measured it: not measured, not clean
    assert (call_1.ended_at, call_1.end_reason) == (ran.utc(13), "interrupted")
    assert (call_2.ended_at, call_2.end_reason) == (setup_2, "interrupted")
    assert timeline[-1].kind is TimelineKind.CALL_END
    assert read_audio(layout, recording, reviewer, allow_truncated=True) == b"".join(ran.fed.written[0])
    with EvidenceStore(layout.evidence_db) as store:
        ((manifest_of, state),) = store.submit_read(
            lambda db: [
                (subject, json.loads(detail)["recording"]["state"])
                for subject, detail in db.execute(
                    "SELECT subject, detail FROM audit_log WHERE action = 'manifest'"
                )
            ]
        ).result()
        assert store.verify_manifests().ok
    assert (manifest_of, state) == (str(recording.recording_id), "truncated")
    assert storage_errors(caplog) == []
    # The manifest holds the file's SHA-256: changing it with the file is found.
    with sqlite3.connect(layout.evidence_db) as attacker:
        attacker.execute("UPDATE recordings SET file_sha256 = ?", [hashlib.sha256(b"forged").hexdigest()])
    with EvidenceStore(layout.evidence_db) as store:
        (mismatch,) = store.verify_manifests().mismatches
    assert mismatch.parts == ("recording",)


def _crashed_with_three_seconds(
    layout: DataLayout, reviewer: X25519PrivateKey, writers: list[SegmentWriter]
) -> tuple[Ran, Path]:
    """A recording of three sealed seconds (first frame at 10 s) whose process died; its file."""
    crashed: list[Step] = [
        Begin(),
        *notice(end=6),
        Record(purposes=("evidence",), at=at(10)),
        *[Write(block=index) for index in range(3)],
    ]  # no Stop, no End: the process dies here
    ran = run(layout, crashed, recipient=reviewer)
    (writer,) = writers
    writer.close(final=False)
    return ran, writer.path


@pytest.mark.parametrize("modified_s", [-1.0, None], ids=["last written after the fault", "mtime too early"])
def test_a_file_found_corrupt_at_restart_is_an_error_kept_as_found_and_said_so(
    modified_s: float | None,
    layout: DataLayout,
    reviewer: X25519PrivateKey,
    writers: list[SegmentWriter],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A crash leaves whole records and a torn tail; a record header changed in the middle is
    # tampering or a disk fault (between the crash and the restart), never a truncation.
    ran, path = _crashed_with_three_seconds(layout, reviewer, writers)
    second, _ = record_spans(path)[1]
    content = bytearray(path.read_bytes())
    content[second + 11] ^= 0x01  # the low byte of record 1's counter; its checksum no longer matches
    path.write_bytes(bytes(content))
    # Its last modification: a second ago (after the audio it holds), or before the readable audio ends.
    modified = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1) if modified_s is not None else ran.utc(10.5)
    os.utime(path, (modified.timestamp(), modified.timestamp()))

    with EvidenceStore(layout.evidence_db) as store:
        (open_recording,) = store.recordings_list(state=RecordingState.RECORDING)
        messages = recover_open_recordings(layout, store)
    timeline, (recording,) = stored(layout)

    rid = open_recording.recording_id
    assert path.read_bytes() == content  # kept as found, not cut back to its intact part
    assert f"recording {rid} after a crash" not in " ".join(messages)  # not a routine line
    (error,) = storage_errors(caplog)
    assert error.startswith(
        f"recording {rid} after a crash: its file {path} is CORRUPT at segment 1 (byte {second}) "
        f"(record header checksum mismatch at offset {second}): no crash leaves a file so, this means "
        "tampering or a disk fault; kept as found, not repaired"
    )
    assert recording.state is RecordingState.TRUNCATED
    assert recording.end_reason == (
        f"corrupt at segment 1 (byte {second}): record header checksum mismatch at offset {second}; "
        "kept as found, 1000 ms readable before it"
    )
    assert recovery_fault(recording.end_reason) == "corrupt"
    assert (recording.duration_ms, recording.size_bytes) == (1000, len(content))
    assert recording.file_sha256 == hashlib.sha256(content).hexdigest()  # the whole file, as found
    # Not where the readable audio ends: when the file was last written, never before that end.
    assert recording.finished_at == max(ran.utc(11), min(modified, dt.datetime.now(dt.UTC)))
    assert (timeline[-1].kind, timeline[-1].at) == (TimelineKind.CALL_END, recording.finished_at)
    with EvidenceStore(layout.evidence_db) as store:
        assert store.verify_manifests().ok


def test_another_recordings_file_in_the_place_of_a_crashed_one_is_an_error_and_left_as_found(
    tmp_path: Path,
    layout: DataLayout,
    reviewer: X25519PrivateKey,
    writers: list[SegmentWriter],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A genuine file of another recording, torn as a crash leaves it, put where this one's was:
    # none of it is this recording's audio, and its torn tail is not cut (it is not ours to repair).
    _, path = _crashed_with_three_seconds(layout, reviewer, writers)
    writers.clear()
    other_layout = DataLayout(tmp_path / "other")
    other_layout.root.mkdir()
    _, other_path = _crashed_with_three_seconds(other_layout, reviewer, writers)
    content = other_path.read_bytes() + b"torn"
    path.write_bytes(content)
    with EvidenceStore(layout.evidence_db) as store:
        (open_recording,) = store.recordings_list(state=RecordingState.RECORDING)
        recover_open_recordings(layout, store)
    _, (recording,) = stored(layout)

    rid = open_recording.recording_id
    other_id = uuid.UUID(other_path.stem)
    assert path.read_bytes() == content
    (error,) = storage_errors(caplog)
    assert (
        f"its file {path} is CORRUPT in its header (its header names recording {other_id}, not {rid})"
        in error
    )
    assert recording.end_reason == (
        f"corrupt in its header: its header names recording {other_id}, not {rid}; kept as found, 0 ms readable before it"
    )
    assert recovery_fault(recording.end_reason) == "corrupt"
    assert (recording.duration_ms, recording.size_bytes) == (0, len(content))
    assert recording.file_sha256 == hashlib.sha256(content).hexdigest()


def test_a_file_that_is_no_recording_at_restart_is_an_error_and_pinned(
    layout: DataLayout,
    reviewer: X25519PrivateKey,
    writers: list[SegmentWriter],
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, path = _crashed_with_three_seconds(layout, reviewer, writers)
    path.write_bytes(b"not a recording at all")
    with EvidenceStore(layout.evidence_db) as store:
        messages = recover_open_recordings(layout, store)
    _, (recording,) = stored(layout)

    assert [line for line in messages if line.startswith("recording")] == []
    (error,) = storage_errors(caplog)
    assert "cannot be read as a recording" in error
    assert "kept as found" in error
    assert "tampering or a disk fault" in error
    assert recording.end_reason is not None
    assert recording.end_reason.startswith("unreadable: ")
    assert recovery_fault(recording.end_reason) == "unreadable"
    assert (recording.duration_ms, recording.size_bytes) == (0, len(b"not a recording at all"))
    assert recording.file_sha256 == hashlib.sha256(b"not a recording at all").hexdigest()
    assert path.read_bytes() == b"not a recording at all"


def test_a_recording_whose_file_was_never_made_is_no_error(
    layout: DataLayout,
    reviewer: X25519PrivateKey,
    writers: list[SegmentWriter],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The row is written before the file is made: a crash in between leaves no file.
    ran, path = _crashed_with_three_seconds(layout, reviewer, writers)
    path.unlink()
    with EvidenceStore(layout.evidence_db) as store:
        (open_recording,) = store.recordings_list(state=RecordingState.RECORDING)
        messages = recover_open_recordings(layout, store)
    _, (recording,) = stored(layout)

    assert (
        f"recording {open_recording.recording_id} after a crash: no file {path} (the crash came before it "
        "was made, or it was removed since): nothing kept"
    ) in messages
    assert storage_errors(caplog) == []
    assert recording.end_reason is not None
    assert recording.end_reason.startswith("unreadable: ")
    assert (recording.duration_ms, recording.size_bytes, recording.file_sha256) == (0, 0, "")
    assert recording.finished_at == ran.utc(10)


@pytest.mark.parametrize(
    ("paused_at", "pause_ends"), [(11.5, 13), (14, 14)], ids=["kept", "after the kept audio"]
)
def test_a_pause_open_at_a_crash_ends_where_the_recovered_recording_ends(
    paused_at: float,
    pause_ends: float,
    layout: DataLayout,
    reviewer: X25519PrivateKey,
    writers: list[SegmentWriter],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The silence of a pause (an agent taking a card number) is in the audio: the record must say
    # why, although the process died before the pause ended. Three seconds were sealed (10-13).
    crashed: list[Step] = [
        Begin(),
        *notice(end=6),
        Record(purposes=("evidence",), at=at(10)),
        *[Write(block=index) for index in range(3)],
        Pause(reason="pci", at=at(paused_at)),
    ]  # no Resume, no Stop, no End: the process dies here
    ran = run(layout, crashed, recipient=reviewer)
    (writer,) = writers
    writer.close(final=False)
    before, _ = stored(layout)
    with EvidenceStore(layout.evidence_db) as store:
        recover_open_recordings(layout, store)
    timeline, (recording,) = stored(layout)

    assert [(e.kind, e.at, e.detail) for e in before if e.kind is TimelineKind.PAUSE_START] == [
        (TimelineKind.PAUSE_START, ran.utc(paused_at), {"reason": "pci"})
    ]
    assert recording.finished_at == ran.utc(13)
    assert [(e.kind, e.at) for e in timeline if e.recording_id is not None][2:] == sorted(
        [
            (TimelineKind.PAUSE_START, ran.utc(paused_at)),
            (TimelineKind.PAUSE_END, ran.utc(pause_ends)),
            (TimelineKind.RECORDING_END, ran.utc(13)),
        ],
        key=lambda entry: (entry[1], list(TimelineKind).index(entry[0])),
    )
    assert storage_errors(caplog) == []


# 6. The development key --------------------------------------------------------------------------


def test_recordings_are_sealed_on_a_thread_named_in_the_operating_system(
    layout: DataLayout, reviewer: X25519PrivateKey
) -> None:
    # `top -H` and the call_load benchmark tell the file thread from the event loop by this name.
    def thread_names() -> set[str]:
        return {path.read_text("ascii").rstrip("\n") for path in Path("/proc/self/task").glob("*/comm")}

    async def play() -> set[str]:
        records = StorageRecords(
            layout, EvidenceStore(layout.evidence_db), recipients=(reviewer.public_key(),), purposes=PURPOSES
        )
        try:
            feed(records, WHOLE_CALL)
            deadline = time.monotonic() + 5
            while RECORDING_WRITER_THREAD not in thread_names() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)  # the blocks go to the file thread after a loop pass
            return thread_names()
        finally:
            records.close()

    assert RECORDING_WRITER_THREAD in asyncio.run(play())


START_UPS = [("first start makes the key", True), ("second start reuses it", False)]


def test_open_storage_without_recipients_uses_one_development_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = default_config(tmp_path / "data")
    key = DataLayout(config.data_dir).development_key
    key_ids: list[str] = []
    private_bytes: list[bytes] = []
    for name, made in START_UPS:
        caplog.clear()
        records = open_storage(config)
        records.close()
        (recipient,) = records.recipients
        key_ids.append(key_id(recipient))
        private_bytes.append(key.private.read_bytes())
        assert "*** DEVELOPMENT KEY" in caplog.text, name
        assert any(
            r.levelno == logging.WARNING and "DEVELOPMENT KEY" in r.getMessage() for r in caplog.records
        )
        assert ("made a new development key pair" in caplog.text) is made, name
        for path in (key.private, key.public, key.passphrase):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, (name, path.name)
        assert stat.S_IMODE(key.private.parent.stat().st_mode) == 0o700, name
    assert len(set(key_ids)) == 1
    assert len(set(private_bytes)) == 1
    # Its passphrase lies beside it: the key is sealed at the least scrypt cost, and opens with it.
    assert json.loads(private_bytes[0])["kdf"]["log2_n"] == SCRYPT_LOG2_N_MIN
    opened = load_private_key(key.private, key.passphrase.read_text().strip())
    assert key_id(opened.public_key()) == key_ids[0]


@pytest.mark.parametrize("existing_mode", [None, 0o755], ids=["made now", "made before"])
def test_the_data_directory_and_evidence_database_are_kept_from_other_users(
    existing_mode: int | None, tmp_path: Path
) -> None:
    # The database holds phone numbers, times and consent decisions (personal data): it is made
    # mode 0600, in a data directory made 0700; one made before (by an administrator, or by an
    # older version, readable by all) keeps its own mode, but its database files are tightened.
    config = default_config(tmp_path / "data")
    layout = DataLayout(config.data_dir)
    previous = os.umask(0o022)
    try:
        if existing_mode is not None:
            layout.root.mkdir(mode=existing_mode)
            for suffix in ("", "-wal", "-shm"):
                layout.evidence_db.with_name(layout.evidence_db.name + suffix).touch(0o644)
        open_storage(config).close()
    finally:
        os.umask(previous)
    assert stat.S_IMODE(layout.root.stat().st_mode) == (existing_mode or 0o700)
    database_files = [path for path in layout.root.iterdir() if path.name.startswith("evidence.sqlite")]
    assert database_files
    assert {path.name: stat.S_IMODE(path.stat().st_mode) for path in database_files} == {
        path.name: 0o600 for path in database_files
    }
