"""The evidence database on a full disk: SQLite's own ``SQLITE_FULL`` (the writer connection's
``max_page_count`` capped at the pages it has, as a disk with no room left), writes held in order
and written once there is room again; and what still waits when the store closes, kept for the next
start."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import logging
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from storage import records
from storage.audit import AuditEntry, AuditLog
from storage.crypto import StorageError
from storage.records import (
    AUDIT_ACTION_HELD_IMPORTED,
    HELD_FILE_DATABASE_KEY,
    HELD_FILE_PATTERN,
    CallEnded,
    ChannelQuality,
    EvidenceFullError,
    EvidenceKeptError,
    EvidenceRecord,
    EvidenceStore,
    LaterEvent,
    LaterEventKind,
    MediaQuality,
    RecordingEnd,
    RecordingState,
    held_record_from_json,
    held_record_json,
)
from tests.small_disk import fill_up, tiny_file_system
from tests.storage.test_records import CALL, RID, at, prepared_call, recording, started


def cap_growth(store: EvidenceStore, *, full: bool) -> None:
    """Cap (or uncap) the database at the pages it has now. Runs on the writer thread directly, as
    the disk filling up or emptying would, not behind the writes the store holds."""

    def run() -> None:
        db = store._writer_db
        assert db is not None
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages if full else 1 << 30}")

    store._writer.submit(run).result()


@pytest.fixture
def full_store(tmp_path: Path) -> Iterator[EvidenceStore]:
    with EvidenceStore(tmp_path / "evidence.sqlite") as store:
        prepared_call(store)
        cap_growth(store, full=True)
        yield store


def fill(store: EvidenceStore, count: int = 400) -> list[Future[None]]:
    """Submit ``count`` new calls, held when full; return once the writer has taken them all in."""
    futures = [
        store.submit(started(call_id=f"filler-{index}"), hold_when_full=True) for index in range(count)
    ]
    store.submit_write(lambda db: None).exception(timeout=5)  # a fence: queued after all of them
    assert store.held > 0, "the capped database never filled up"
    return futures


def test_a_write_on_a_full_disk_fails_with_a_clear_error(full_store: EvidenceStore) -> None:
    futures = [full_store.submit(started(call_id=f"more-{index}")) for index in range(400)]
    errors = [future.exception(timeout=5) for future in futures]
    failed = [error for error in errors if error is not None]
    assert failed, "the capped database never filled up"
    assert all(isinstance(error, EvidenceFullError) for error in failed)
    assert "the disk is full" in str(failed[0])
    assert full_store.held == 0


def test_held_writes_wait_in_order_and_are_written_when_room_returns(
    full_store: EvidenceStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="callherald.storage")
    futures = fill(full_store)
    # A write queued after the filler waits behind it, even if it would fit; one that may not wait
    # fails at once rather than overtake the held ones.
    call_end = full_store.submit(
        CallEnded(call_id=CALL, ended_at=at(50), end_reason="bye"), hold_when_full=True
    )
    impatient = full_store.submit(started(call_id="impatient"))
    assert isinstance(impatient.exception(timeout=5), EvidenceFullError)
    assert "waiting for disk space" in str(impatient.exception())
    held = full_store.held
    assert held > 1, "the capped database never filled up"
    assert all(future.exception() is None for future in futures[: len(futures) + 1 - held])
    assert not any(future.done() for future in [*futures[len(futures) + 1 - held :], call_end])
    assert "evidence is held in memory" in caplog.text

    cap_growth(full_store, full=False)  # room again: the retry writes them without a new write
    assert call_end.exception(timeout=5) is None
    assert all(future.exception(timeout=5) is None for future in futures)
    full_store.submit_write(lambda db: None).result()  # the writer has finished its retry
    assert full_store.held == 0
    assert "disk space is back" in caplog.text
    calls = full_store.submit_read(
        lambda db: [tuple(row) for row in db.execute("SELECT id, ended_at FROM calls ORDER BY rowid")]
    ).result()
    assert [call_id for call_id, _ in calls] == [CALL] + [f"filler-{index}" for index in range(len(futures))]
    assert calls[0][1] is not None  # the end held behind the filler was written too


def test_a_held_recording_end_marks_the_recording_once_written(tmp_path: Path) -> None:
    with EvidenceStore(tmp_path / "evidence.sqlite") as store:
        prepared_call(store)
        store.write(recording(first_frame=10))
        cap_growth(store, full=True)
        fill(store)
        end = RecordingEnd(
            recording_id=RID,
            finished_at=at(13),
            audio_sha256="0" * 64,
            size_bytes=10,
            duration_ms=3000,
            end_reason="disk full",
        )
        ended = store.record_recording_truncated(end, hold_when_full=True)
        assert not ended.done()
        cap_growth(store, full=False)
        assert ended.exception(timeout=5) is None
        (record,) = store.recordings_list()
        assert record.state is RecordingState.TRUNCATED
        assert record.duration_ms == 3000


@pytest.fixture
def quick_close(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(records, "CLOSE_RETRY_S", 0.2)


def close_full(tmp_path: Path, **store_options: Any) -> tuple[list[Future[None]], int]:
    """A store closed while ``fill`` holds writes; its futures and how many were held."""
    store = EvidenceStore(tmp_path / "evidence.sqlite", **store_options)
    prepared_call(store)
    cap_growth(store, full=True)
    futures = fill(store)
    held = store.held
    store.close()
    return futures, held


def calls_stored(path: Path) -> list[str]:
    with EvidenceStore(path) as store:
        return store.submit_read(
            lambda db: [row[0] for row in db.execute("SELECT id FROM calls ORDER BY rowid")]
        ).result()


def imports(path: Path) -> list[AuditEntry]:
    with EvidenceStore(path) as store:
        assert store.audit_verify().ok
        entries = store.submit_read(lambda db: AuditLog(db).entries()).result()
    return [entry for entry in entries if entry.action == AUDIT_ACTION_HELD_IMPORTED]


@pytest.mark.usefixtures("quick_close")
def test_closing_while_full_keeps_the_held_writes_for_the_next_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    futures, held = close_full(tmp_path)
    kept = [future for future in futures if future.exception() is not None]
    assert len(kept) == held
    assert all(isinstance(future.exception(), EvidenceKeptError) for future in kept)
    (path,) = tmp_path.glob(HELD_FILE_PATTERN)
    assert f"closed with {held} evidence records waiting for disk space: kept in {path}" in caplog.text
    assert len(path.read_text().splitlines()) == 1 + held  # the database's mark, then the records
    database = tmp_path / "evidence.sqlite"
    assert len(calls_stored(database)) == 1 + len(futures) - held

    copy = path.read_bytes()
    with EvidenceStore(database) as store:
        assert store.import_held_evidence().result() == 1
    assert not path.exists()
    assert calls_stored(database) == [CALL] + [f"filler-{index}" for index in range(len(futures))]
    (entry,) = imports(database)
    assert (entry.actor, entry.subject) == ("callherald", path.name)
    assert json.loads(entry.detail) == {
        "sha256": hashlib.sha256(copy).hexdigest(),
        "written": held,
        "refused": [],
    }

    # Written, but not removed (a crash in between): the next start sees its audit row, writes
    # nothing twice, and removes it.
    path.write_bytes(copy)
    with EvidenceStore(database) as store:
        store.import_held_evidence().result()
    assert not path.exists()
    assert len(calls_stored(database)) == 1 + len(futures)
    assert len(imports(database)) == 1
    assert "written into the evidence database already" in caplog.text

    # The same content again under another name (a copy kept "to be safe", the log procedure done
    # twice): it is the content that was written, so nothing is written twice.
    again = tmp_path / "evidence-held-copy.jsonl"
    again.write_bytes(copy)
    caplog.clear()
    with EvidenceStore(database) as store:
        store.import_held_evidence().result()
    assert not again.exists()
    assert len(calls_stored(database)) == 1 + len(futures)
    assert len(imports(database)) == 1
    assert f"{again}: written into the evidence database already, as {path.name}" in caplog.text
    assert "not written" not in caplog.text


@pytest.mark.usefixtures("quick_close")
def test_held_writes_are_kept_in_the_directory_given_else_beside_the_database(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    database = tmp_path / "evidence.sqlite"
    futures, held = close_full(tmp_path, held_dir=spool)
    (kept,) = spool.glob(HELD_FILE_PATTERN)
    assert not list(tmp_path.glob(HELD_FILE_PATTERN))
    with EvidenceStore(database, held_dir=spool) as store:
        assert store.import_held_evidence().result() == 1
    assert not kept.exists()
    assert len(calls_stored(database)) == 1 + len(futures)

    database.unlink()
    futures, held = close_full(tmp_path, held_dir=tmp_path / "gone")  # a spool that is not there
    (kept,) = tmp_path.glob(HELD_FILE_PATTERN)
    assert len(kept.read_text().splitlines()) == 1 + held


def database_id(path: Path) -> str:
    with EvidenceStore(path) as store:
        return str(
            store.submit_read(lambda db: db.execute("SELECT id FROM database_id").fetchone()[0]).result()
        )


@pytest.mark.usefixtures("quick_close")
def test_callheralds_sharing_a_held_directory_write_in_only_their_own_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool, first, second = tmp_path / "spool", tmp_path / "first", tmp_path / "second"
    for directory in (spool, first, second):
        directory.mkdir()
    futures, held = close_full(first, held_dir=spool)
    first_id = database_id(first / "evidence.sqlite")
    (kept,) = spool.glob(HELD_FILE_PATTERN)
    assert kept.name.startswith(f"evidence-held-{first_id}-")
    assert json.loads(kept.read_text().splitlines()[0]) == {HELD_FILE_DATABASE_KEY: first_id}

    # The other callherald's start leaves the file alone, and says whose it is.
    with EvidenceStore(second / "evidence.sqlite", held_dir=spool) as store:
        assert store.import_held_evidence().result() == 0
    assert kept.exists()
    assert calls_stored(second / "evidence.sqlite") == []
    assert not imports(second / "evidence.sqlite")
    assert f"{kept}: evidence kept by another evidence database (id {first_id};" in caplog.text

    # A file naming no database in the shared directory may be anyone's: left too.
    anonymous = spool / "evidence-held-by-hand.jsonl"
    anonymous.write_bytes(b"".join(kept.read_bytes().splitlines(keepends=True)[1:]))
    with EvidenceStore(second / "evidence.sqlite", held_dir=spool) as store:
        assert store.import_held_evidence().result() == 0
    assert anonymous.exists()
    assert f"{anonymous}: names no evidence database" in caplog.text
    anonymous.unlink()

    # Its own start writes it in, the mark not counted as a record.
    with EvidenceStore(first / "evidence.sqlite", held_dir=spool) as store:
        assert store.import_held_evidence().result() == 1
    assert not kept.exists()
    assert len(calls_stored(first / "evidence.sqlite")) == 1 + len(futures)
    (entry,) = imports(first / "evidence.sqlite")
    assert json.loads(entry.detail)["written"] == held
    assert json.loads(entry.detail)["refused"] == []


@pytest.mark.usefixtures("quick_close")
def test_held_writes_that_no_file_can_keep_are_logged_whole_and_can_be_written_from_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(path: Path, _data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(records, "_write_new_file", disk_full)
    futures, held = close_full(tmp_path, held_dir=tmp_path / "spool")
    monkeypatch.undo()
    assert all(isinstance(future.exception(), EvidenceFullError) for future in futures[len(futures) - held :])
    assert f"closed with {held} evidence records waiting for disk space, which cannot be kept" in caplog.text
    assert "spool/evidence-held-" in caplog.text
    assert "No space left on device" in caplog.text
    assert not list(tmp_path.glob(HELD_FILE_PATTERN))
    logged = [
        record.getMessage().removeprefix("held evidence: ")
        for record in caplog.records
        if record.levelno == logging.ERROR and record.getMessage().startswith("held evidence: ")
    ]
    assert len(logged) == held
    first, _ = held_record_from_json(logged[0])
    assert first == started(call_id=f"filler-{len(futures) - held}")

    # By hand, as the log says: the lines, in order, into a file beside the database; and one that
    # is no record at all, which is refused on its own (logged and audited), not with the others.
    (tmp_path / "evidence-held-by-hand.jsonl").write_text(
        "\n".join([*logged, '{"record": "Nonsense"}']) + "\n"
    )
    database = tmp_path / "evidence.sqlite"
    with EvidenceStore(database) as store:
        store.import_held_evidence().result()
    assert len(calls_stored(database)) == 1 + len(futures)
    (entry,) = imports(database)
    detail = json.loads(entry.detail)
    assert detail["written"] == held
    assert [(item["line"], item["record"]) for item in detail["refused"]] == [
        (held + 1, '{"record": "Nonsense"}')
    ]
    assert f"evidence-held-by-hand.jsonl line {held + 1} not written" in caplog.text


def test_each_kind_of_held_record_survives_its_json_line() -> None:
    end = RecordingEnd(
        recording_id=RID,
        finished_at=at(13),
        audio_sha256="0" * 64,
        size_bytes=10,
        duration_ms=3000,
        end_reason="bye",
        media_quality=MediaQuality(
            outside_party=ChannelQuality(lost_ms=20), pbx_side=ChannelQuality(late_packets=1, late_ms=20)
        ),
    )
    cases: list[tuple[EvidenceRecord | RecordingEnd, RecordingState | None]] = [
        (started(call_id="x"), None),
        (recording(first_frame=10), None),
        (end, RecordingState.TRUNCATED),
        (dataclasses.replace(end, media_quality=None), RecordingState.COMPLETE),
        (CallEnded(call_id=CALL, ended_at=at(50), end_reason="bye"), None),
        (
            LaterEvent(
                call_id=CALL, kind=LaterEventKind.WITHDRAWAL, at=at(40), actor="caller", detail={"a": [1]}
            ),
            None,
        ),
    ]
    for record, state in cases:
        assert held_record_from_json(held_record_json(record, state)) == (record, state)
    with pytest.raises(ValueError, match="names the state"):
        held_record_from_json(held_record_json(end))
    # A line held before media quality was kept reads as not measured.
    line = json.loads(held_record_json(end, RecordingState.COMPLETE))
    del line["fields"]["media_quality"]
    assert held_record_from_json(json.dumps(line)) == (
        dataclasses.replace(end, media_quality=None),
        RecordingState.COMPLETE,
    )


# --------------------------------------------------------------------------------------------------
# A disk too full to open the database at all (``wait_for_space``)


@pytest.fixture
def too_full_to_open(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A database, closed cleanly (no -shm or -wal file), on a small file system then filled to the
    last byte; the database's path and the filler's."""
    with tiny_file_system(tmp_path / "disk", 4096) as disk:
        database = disk / "evidence.sqlite"
        with EvidenceStore(database) as store:
            prepared_call(store)
        assert not database.with_name("evidence.sqlite-shm").exists()
        yield database, fill_up(disk)


def test_a_disk_too_full_to_open_the_database_fails_the_open_unless_told_to_wait(
    too_full_to_open: tuple[Path, Path],
) -> None:
    database, _ = too_full_to_open
    with pytest.raises(StorageError, match="the disk holding it is full"):
        EvidenceStore(database)


def test_a_store_waiting_for_space_holds_writes_and_opens_the_database_when_room_returns(
    too_full_to_open: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="callherald.storage")
    database, filler = too_full_to_open
    with EvidenceStore(database, wait_for_space=True) as store:
        waiting = [store.waiting_for_space]
        refused = store.submit(started(call_id="not-held"))
        assert isinstance(refused.exception(timeout=5), EvidenceFullError)
        held = [
            store.submit(started(call_id="held"), hold_when_full=True),
            store.submit(CallEnded(call_id=CALL, ended_at=at(50), end_reason="bye"), hold_when_full=True),
        ]
        with pytest.raises(StorageError, match="not open: the disk holding it is too full"):
            store.calls_for_number("+31201234567")
        fence = store.submit_write(lambda db: None)  # queued after them: fails, as they wait
        assert isinstance(fence.exception(timeout=5), EvidenceFullError)
        assert not any(future.done() for future in held)
        assert "evidence is held in memory" in caplog.text

        filler.unlink()  # room again: the retry opens the database and writes them, in order
        assert all(future.exception(timeout=5) is None for future in held)
        waiting.append(store.waiting_for_space)
        assert "disk space is back: the evidence database is open" in caplog.text
        calls = {call.call_id: call for call in store.calls_for_number("+31201234567")}
        assert store.audit_verify().ok
    assert waiting == [True, False]
    assert sorted(calls) == [CALL, "held"]
    assert calls[CALL].ended_at is not None


@pytest.mark.usefixtures("quick_close")
def test_a_store_closed_while_waiting_for_space_keeps_its_writes_for_the_databases_next_start(
    too_full_to_open: tuple[Path, Path], tmp_path: Path
) -> None:
    database, filler = too_full_to_open
    spool = tmp_path / "spool"  # another disk
    spool.mkdir()
    store = EvidenceStore(database, held_dir=spool, wait_for_space=True)
    held = store.submit(CallEnded(call_id=CALL, ended_at=at(50), end_reason="bye"), hold_when_full=True)
    store.close()
    assert isinstance(held.exception(timeout=5), EvidenceKeptError)
    (kept,) = spool.glob(HELD_FILE_PATTERN)
    # Read without the -shm and -wal files it could not make, the database's id names the file as
    # its own, so the next start writes it in from the other disk too.
    filler.unlink()
    assert json.loads(kept.read_text().splitlines()[0]) == {HELD_FILE_DATABASE_KEY: database_id(database)}
    with EvidenceStore(database, held_dir=spool) as store:
        assert store.import_held_evidence().result() == 1
        (call,) = store.calls_for_number("+31201234567")
    assert call.ended_at is not None
