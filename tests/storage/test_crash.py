"""Failures while writing: full disk, I/O errors, a crash mid-write, kill -9, and the fsync policies."""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from storage.crypto import StorageFullError, StorageWriteError, TruncatedRecordingError, WriterClosedError
from storage.keys import FileKeyStore, MemoryKeyStore, save_public_key
from storage.segments import (
    HEADER_BYTES,
    FsyncPolicy,
    RecordingState,
    RecoveryState,
    SegmentReader,
    SegmentWriter,
    recover,
)
from tests.storage.recordings import MONO_MULAW, REVIEWER, pcm_pattern

ROOT = Path(__file__).resolve().parents[2]
RECORD_BYTES = 25 + 8000 + 16

Pwrite = Callable[[int, bytes, int], int]


class _Killed(BaseException):
    """Stands for the process dying in the middle of a write."""


def _failing_pwrite(real: Pwrite, fail_on_call: int, error: BaseException) -> Pwrite:
    """A pwrite whose ``fail_on_call``-th call writes half of its data, and whose next call raises ``error``."""
    calls = 0

    def pwrite(fd: int, data: bytes, offset: int) -> int:
        nonlocal calls
        calls += 1
        if calls == fail_on_call:
            chunk = bytes(data)
            return real(fd, chunk[: len(chunk) // 2], offset)
        if calls == fail_on_call + 1:
            raise error
        return real(fd, data, offset)

    return pwrite


def _writer(path: Path, store: MemoryKeyStore, fsync: FsyncPolicy = FsyncPolicy.NEVER) -> SegmentWriter:
    return SegmentWriter(
        path,
        recording_id=uuid.uuid4(),
        recipients=[REVIEWER.public_key()],
        audio_format=MONO_MULAW,
        key_store=store,
        fsync=fsync,
    )


@pytest.mark.parametrize(
    ("code", "error"),
    [
        pytest.param(errno.ENOSPC, StorageFullError, id="ENOSPC"),
        pytest.param(errno.EDQUOT, StorageFullError, id="EDQUOT"),
        pytest.param(errno.EIO, StorageWriteError, id="EIO"),
    ],
)
def test_failed_write_is_cut_back_to_the_last_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, error: type[StorageWriteError]
) -> None:
    store = MemoryKeyStore()
    path = tmp_path / "a.chr"
    writer = _writer(path, store)
    for index in range(3):
        writer.write_segment(pcm_pattern(index, 8000))
    monkeypatch.setattr(os, "pwrite", _failing_pwrite(os.pwrite, 1, OSError(code, os.strerror(code))))
    with pytest.raises(error) as info:
        writer.write_segment(pcm_pattern(3, 8000))
    assert type(info.value) is error
    assert str(info.value).startswith(
        f"{'disk full: ' if error is StorageFullError else ''}writing {path} at offset"
    )
    assert str(info.value).endswith("; the file ends at its last complete segment")
    monkeypatch.undo()

    intact = HEADER_BYTES + 3 * RECORD_BYTES
    assert path.stat().st_size == intact
    with pytest.raises(WriterClosedError, match="failed earlier"):
        writer.write_segment(pcm_pattern(4, 8000))
    summary = writer.close()
    assert (summary.complete, summary.segments, summary.duration_s, summary.file_bytes) == (
        False,
        3,
        3.0,
        intact,
    )
    assert summary.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()

    with pytest.raises(TruncatedRecordingError) as truncated:
        SegmentReader(path, private_key=REVIEWER, key_store=store).read_all()
    assert (truncated.value.segments, truncated.value.ignored_bytes) == (3, 0)
    reader = SegmentReader(path, private_key=REVIEWER, key_store=store, allow_truncated=True)
    assert reader.read_all() == b"".join(pcm_pattern(i, 8000) for i in range(3))
    report = recover(path, store)
    assert (report.state, report.segments, report.tail_bytes) == (RecoveryState.TRUNCATED, 3, 0)


def test_disk_full_while_writing_the_final_segment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryKeyStore()
    path = tmp_path / "a.chr"
    writer = _writer(path, store)
    writer.write_segment(pcm_pattern(0, 8000))
    monkeypatch.setattr(os, "pwrite", _failing_pwrite(os.pwrite, 1, OSError(errno.ENOSPC, "No space left")))
    with pytest.raises(StorageFullError):
        writer.close()
    monkeypatch.undo()
    assert writer.closed is True
    assert writer.close().complete is False
    status = SegmentReader(path, private_key=REVIEWER, key_store=store, allow_truncated=True).status
    assert (status.state, status.segments, status.ignored_bytes) == (RecordingState.TRUNCATED, 1, 0)


def test_disk_full_while_writing_the_header_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MemoryKeyStore()
    rid = uuid.uuid4()
    monkeypatch.setattr(os, "pwrite", _failing_pwrite(os.pwrite, 1, OSError(errno.ENOSPC, "No space left")))
    with pytest.raises(StorageFullError):
        SegmentWriter(
            tmp_path / "a.chr",
            recording_id=rid,
            recipients=[REVIEWER.public_key()],
            audio_format=MONO_MULAW,
            key_store=store,
        )
    assert list(tmp_path.iterdir()) == []
    assert store.get(rid) == ()


def test_crash_in_the_middle_of_a_write_leaves_a_torn_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MemoryKeyStore()
    path = tmp_path / "a.chr"
    writer = _writer(path, store)
    for index in range(7):
        writer.write_segment(pcm_pattern(index, 8000))
    monkeypatch.setattr(os, "pwrite", _failing_pwrite(os.pwrite, 1, _Killed()))
    with pytest.raises(_Killed):
        writer.write_segment(pcm_pattern(7, 8000))
    monkeypatch.undo()
    torn = RECORD_BYTES // 2
    assert path.stat().st_size == HEADER_BYTES + 7 * RECORD_BYTES + torn  # nothing cleaned up

    reader = SegmentReader(path, private_key=REVIEWER, key_store=store, allow_truncated=True)
    assert reader.read_all() == b"".join(pcm_pattern(i, 8000) for i in range(7))
    assert (reader.status.state, reader.status.segments, reader.status.duration_s) == (
        RecordingState.TRUNCATED,
        7,
        7.0,
    )
    assert reader.status.ignored_bytes == torn
    report = recover(path, store, repair=True)
    assert (report.state, report.segments, report.tail_bytes, report.repaired) == (
        RecoveryState.TRUNCATED,
        7,
        torn,
        True,
    )
    assert path.stat().st_size == HEADER_BYTES + 7 * RECORD_BYTES


_WRITER_PROCESS = """
import sys, time, uuid
from pathlib import Path
from storage.keys import FileKeyStore, load_public_key
from storage.segments import FsyncPolicy, SegmentWriter
from tests.storage.recordings import MONO_MULAW, pcm_pattern

path, keys, public = sys.argv[1:4]
writer = SegmentWriter(
    path,
    recording_id=uuid.uuid4(),
    recipients=[load_public_key(public)],
    audio_format=MONO_MULAW,
    key_store=FileKeyStore(keys),
    fsync=FsyncPolicy.NEVER,
)
index = 0
while True:
    writer.write_segment(pcm_pattern(index, 8000))
    index += 1
    time.sleep(0.002)
"""


def test_kill_9_loses_at_most_the_segment_being_written(tmp_path: Path) -> None:
    path, keys, public = tmp_path / "a.chr", tmp_path / "keys", tmp_path / "reviewer.pub"
    save_public_key(public, REVIEWER.public_key())
    process = subprocess.Popen(
        [sys.executable, "-c", _WRITER_PROCESS, str(path), str(keys), str(public)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 60
        while not (path.exists() and path.stat().st_size > HEADER_BYTES + 20 * RECORD_BYTES):
            assert process.poll() is None, "the writer process ended by itself"
            assert time.monotonic() < deadline, "the writer process wrote too little"
            time.sleep(0.01)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL

    store = FileKeyStore(keys)
    report = recover(path, store)
    assert report.state is RecoveryState.TRUNCATED
    assert report.segments >= 20
    reader = SegmentReader(path, private_key=REVIEWER, key_store=store, allow_truncated=True)
    segments = list(reader)
    assert segments == [pcm_pattern(i, 8000) for i in range(report.segments)]
    assert reader.status.ignored_bytes == report.tail_bytes < RECORD_BYTES
    assert reader.status.duration_s == float(report.segments)


@pytest.mark.parametrize(
    ("policy", "syncs"),
    [
        pytest.param(FsyncPolicy.NEVER, 0, id="never"),
        pytest.param(FsyncPolicy.ON_CLOSE, 3, id="on-close: header, directory, close"),
        pytest.param(FsyncPolicy.EVERY_SEGMENT, 2 + 5 + 1, id="every-segment: header, directory, 5, final"),
    ],
)
def test_fsync_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: FsyncPolicy, syncs: int
) -> None:
    calls: list[int] = []
    real = os.fsync

    def counting_fsync(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    store = MemoryKeyStore()
    writer = _writer(tmp_path / "a.chr", store, fsync=policy)
    for index in range(5):
        writer.write_segment(pcm_pattern(index, 8000))
    writer.close()
    assert len(calls) == syncs
    assert SegmentReader(tmp_path / "a.chr", private_key=REVIEWER, key_store=store).status.segments == 5


def test_fsync_failure_is_a_write_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryKeyStore()
    path = tmp_path / "a.chr"
    writer = _writer(path, store, fsync=FsyncPolicy.EVERY_SEGMENT)
    writer.write_segment(pcm_pattern(0, 8000))

    def failing_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(StorageWriteError, match="Input/output error"):
        writer.write_segment(pcm_pattern(1, 8000))
    monkeypatch.undo()
    assert path.stat().st_size == HEADER_BYTES + RECORD_BYTES
    assert writer.close().segments == 1
