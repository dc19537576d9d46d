"""The recording container on real files: round trips, every tampering case, truncation, shredding, recovery."""

from __future__ import annotations

import hashlib
import math
import shutil
import struct
import tempfile
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.crypto import (
    ForeignKeyEntryError,
    ForeignSegmentError,
    KeyEntryMismatchError,
    KeyNotFoundError,
    KeyStoreError,
    MissingSegmentError,
    NotARecipientError,
    NotARecordingError,
    RecordingIntegrityError,
    ReorderedSegmentError,
    SegmentError,
    SegmentSealer,
    TamperedHeaderError,
    TamperedSegmentError,
    TruncatedRecordingError,
    UnsupportedFormatError,
    WrappedKey,
    WriterClosedError,
    key_id,
)
from storage.keys import FileKeyStore, MemoryKeyStore
from storage.segments import (
    HEADER_BYTES,
    MAX_SEGMENT_PLAINTEXT_BYTES,
    AudioFormat,
    RecordingHeader,
    RecordingState,
    RecordingStatus,
    RecoveryState,
    SegmentReader,
    SegmentWriter,
    read_header,
    recover,
)
from tests.storage.recordings import (
    ESCROW,
    MONO_MULAW,
    OUTSIDER,
    REVIEWER,
    REVIEWER_KEY_ID,
    STEREO_S16,
    record_spans,
    write_recording,
)

ESCROW_KEY_ID = key_id(ESCROW.public_key())
SEGMENTS = 10  # tamper tests: ten one-second segments of 8000 bytes, then the final record
RECORD_BYTES = 25 + 8000 + 16
FINAL_RECORD_BYTES = 25 + 16
_HEAD = struct.Struct(">IQB8s")


def _read(path: Path, key_store: MemoryKeyStore | FileKeyStore, **kwargs: bool) -> bytes:
    return SegmentReader(path, private_key=REVIEWER, key_store=key_store, **kwargs).read_all()


# --------------------------------------------------------------------------------------------------
# Round trips


def test_round_trip_of_60_segments(tmp_path: Path) -> None:
    store = MemoryKeyStore()
    written = write_recording(tmp_path / "call.chr", store, segments=60, audio_format=STEREO_S16)
    data = written.path.read_bytes()
    assert written.summary.complete is True
    assert written.summary.segments == 60
    assert written.summary.pcm_bytes == 60 * 32000
    assert written.summary.duration_s == 60.0
    assert written.summary.file_bytes == len(data) == 64 + 60 * (25 + 32000 + 16) + 41
    assert written.summary.sha256 == hashlib.sha256(data).hexdigest()
    assert written.summary.recipient_key_ids == (REVIEWER_KEY_ID, ESCROW_KEY_ID)

    reader = SegmentReader(written.path, private_key=REVIEWER, key_store=store)
    assert reader.recording_id == written.recording_id
    assert reader.audio_format == STEREO_S16
    assert reader.header.segment_duration_ms == 1000
    assert list(reader) == list(written.segments)
    assert reader.status == RecordingStatus(
        state=RecordingState.COMPLETE,
        segments=60,
        pcm_bytes=1920000,
        duration_s=60.0,
        intact_bytes=len(data),
        ignored_bytes=0,
    )
    assert SegmentReader(written.path, private_key=ESCROW, key_store=store).read_all() == written.audio


def test_a_writer_told_not_to_hash_the_file_writes_the_same_readable_file(tmp_path: Path) -> None:
    store = MemoryKeyStore()
    writer = SegmentWriter(
        tmp_path / "call.chr",
        recording_id=uuid.uuid4(),
        recipients=[REVIEWER.public_key()],
        audio_format=STEREO_S16,
        key_store=store,
        file_sha256=False,
    )
    segments = [bytes([k]) * 32000 for k in range(3)]
    for segment in segments:
        writer.write_segment(segment)
    summary = writer.close()
    assert summary.sha256 is None
    assert summary.complete is True
    assert summary.file_bytes == (tmp_path / "call.chr").stat().st_size
    assert _read(tmp_path / "call.chr", store) == b"".join(segments)
    assert recover(tmp_path / "call.chr", store).state is RecoveryState.FINALISED


@settings(max_examples=40, deadline=None)
@given(chunks=st.lists(st.binary(min_size=1, max_size=2000), max_size=8), final=st.booleans())
def test_round_trip_property(chunks: list[bytes], final: bool) -> None:
    with tempfile.TemporaryDirectory() as directory:
        store = MemoryKeyStore()
        path = Path(directory) / "r.chr"
        writer = SegmentWriter(
            path,
            recording_id=uuid.uuid4(),
            recipients=[REVIEWER.public_key()],
            audio_format=MONO_MULAW,
            key_store=store,
        )
        for chunk in chunks:
            writer.write_segment(chunk)
        summary = writer.close(final=final)
        reader = SegmentReader(path, private_key=REVIEWER, key_store=store, allow_truncated=True)
        assert reader.read_all() == b"".join(chunks)
        assert reader.status.complete is final
        assert reader.status.segments == summary.segments == len(chunks)
        assert reader.status.pcm_bytes == sum(map(len, chunks))
        report = recover(path, store)
        assert report.segments == len(chunks)
        assert report.sha256 == summary.sha256
        assert report.state is (RecoveryState.FINALISED if final else RecoveryState.TRUNCATED)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({"codec": "PCM"}, "codec must be 1-16 of", id="codec-case"),
        pytest.param({"codec": "a" * 17}, "codec must be 1-16 of", id="codec-length"),
        pytest.param({"sample_rate_hz": 0}, "sample rate out of range: 0", id="rate"),
        pytest.param({"channels": 256}, "channels out of range: 256", id="channels"),
        pytest.param({"sample_width_bytes": 0}, "sample width out of range: 0", id="width"),
    ],
)
def test_audio_format_validation(fields: dict[str, object], message: str) -> None:
    valid: dict[str, object] = {
        "codec": "pcm_alaw",
        "sample_rate_hz": 8000,
        "channels": 2,
        "sample_width_bytes": 1,
    }
    with pytest.raises(ValueError, match=message):
        AudioFormat(**{**valid, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize("duration_ms", [0, 1 << 32])
def test_segment_duration_must_fit_the_header(duration_ms: int) -> None:
    with pytest.raises(ValueError, match=f"segment duration out of range: {duration_ms}"):
        RecordingHeader(recording_id=uuid.uuid4(), audio_format=MONO_MULAW, segment_duration_ms=duration_ms)


def test_read_header_needs_no_key(tmp_path: Path) -> None:
    written = write_recording(tmp_path / "r.chr", MemoryKeyStore(), segments=2)
    assert read_header(written.path) == RecordingHeader(
        recording_id=written.recording_id, audio_format=MONO_MULAW, segment_duration_ms=1000
    )


# --------------------------------------------------------------------------------------------------
# Tampering with segments: each case names the error, the segment counter and the record it is found at


def _split(path: Path) -> tuple[bytes, list[bytes]]:
    data = path.read_bytes()
    return data[:HEADER_BYTES], [data[start:end] for start, end in record_spans(path)]


def _flip(record: bytes, offset: int) -> bytes:
    return record[:offset] + bytes([record[offset] ^ 0x01]) + record[offset + 1 :]


def _rehead(
    record: bytes,
    *,
    length: int | None = None,
    counter: int | None = None,
    flags: int | None = None,
    tag: bytes | None = None,
) -> bytes:
    """Rewrite record header fields and recompute the checksum, as a deliberate forger would."""
    old = _HEAD.unpack_from(record)
    head = _HEAD.pack(
        old[0] if length is None else length,
        old[1] if counter is None else counter,
        old[2] if flags is None else flags,
        old[3] if tag is None else tag,
    )
    return head + zlib.crc32(head).to_bytes(4, "big") + record[25:]


Records = list[bytes]


@dataclass(frozen=True, slots=True)
class Tamper:
    mutate: Callable[[Records, Records], Records]
    error: type[SegmentError]
    position: int
    """Index, in the altered record list, of the record at which the reader stops."""
    index: int
    """Segment counter the reader expected there."""
    message: str
    found: int | None = None


def _replace(records: Records, at: int, record: bytes) -> Records:
    return [*records[:at], record, *records[at + 1 :]]


def _swap(records: Records, a: int, b: int) -> Records:
    out = list(records)
    out[a], out[b] = out[b], out[a]
    return out


TAMPERS = {
    "ciphertext-bit": Tamper(
        lambda r, o: _replace(r, 5, _flip(r[5], 25 + 1234)),
        TamperedSegmentError,
        5,
        5,
        "failed authentication",
    ),
    "tag-bit": Tamper(
        lambda r, o: _replace(r, 5, _flip(r[5], len(r[5]) - 1)),
        TamperedSegmentError,
        5,
        5,
        "failed authentication",
    ),
    "length-field-bit": Tamper(
        lambda r, o: _replace(r, 5, _flip(r[5], 2)), TamperedSegmentError, 5, 5, "checksum mismatch"
    ),
    "counter-field-bit": Tamper(
        lambda r, o: _replace(r, 5, _flip(r[5], 11)), TamperedSegmentError, 5, 5, "checksum mismatch"
    ),
    "flags-field-bit": Tamper(
        lambda r, o: _replace(r, 5, _flip(r[5], 12)), TamperedSegmentError, 5, 5, "checksum mismatch"
    ),
    "checksum-field-bit": Tamper(
        lambda r, o: _replace(r, 5, _flip(r[5], 24)), TamperedSegmentError, 5, 5, "checksum mismatch"
    ),
    "length-forged": Tamper(
        lambda r, o: _replace(r, 5, _rehead(r[5], length=8015)),
        TamperedSegmentError,
        5,
        5,
        "failed authentication",
    ),
    "counter-forged": Tamper(
        lambda r, o: _replace(r, 5, _rehead(r[5], counter=6)),
        TamperedSegmentError,
        5,
        5,
        "failed authentication",
    ),
    "final-flag-forged": Tamper(
        lambda r, o: [*r[:5], _rehead(r[5], flags=1)], TamperedSegmentError, 5, 5, "failed authentication"
    ),
    "final-flag-cleared": Tamper(
        lambda r, o: _replace(r, 10, _rehead(r[10], flags=0)),
        TamperedSegmentError,
        10,
        10,
        "failed authentication",
    ),
    "reserved-flag-forged": Tamper(
        lambda r, o: _replace(r, 3, _rehead(r[3], flags=0x80)),
        TamperedSegmentError,
        3,
        3,
        "failed authentication",
    ),
    "drop-middle": Tamper(lambda r, o: r[:5] + r[6:], MissingSegmentError, 5, 5, "segment 5 is missing", 6),
    "drop-first": Tamper(lambda r, o: r[1:], MissingSegmentError, 0, 0, "segment 0 is missing", 1),
    "drop-last-audio": Tamper(
        lambda r, o: r[:9] + r[10:], MissingSegmentError, 9, 9, "segment 9 is missing", 10
    ),
    "swap-adjacent": Tamper(
        lambda r, o: _swap(r, 5, 6), ReorderedSegmentError, 5, 5, "segment 6 comes before segment 5", 6
    ),
    "swap-distant": Tamper(
        lambda r, o: _swap(r, 2, 8), ReorderedSegmentError, 2, 2, "segment 8 comes before segment 2", 8
    ),
    "duplicate": Tamper(
        lambda r, o: [*r[:5], r[4], *r[5:]],
        ReorderedSegmentError,
        5,
        5,
        "segment 4 is repeated or out of order",
        4,
    ),
    "final-moved-forward": Tamper(
        lambda r, o: [*r[:9], r[10], r[9]],
        ReorderedSegmentError,
        9,
        9,
        "segment 10 comes before segment 9",
        10,
    ),
    "foreign-replaced": Tamper(
        lambda r, o: _replace(r, 5, o[5]), ForeignSegmentError, 5, 5, "belongs to another recording"
    ),
    "foreign-inserted": Tamper(
        lambda r, o: [*r[:5], o[5], *r[5:]], ForeignSegmentError, 5, 5, "belongs to another recording"
    ),
    "foreign-with-forged-tag": Tamper(
        lambda r, o: _replace(r, 5, _rehead(o[5], tag=r[5][13:21])),
        TamperedSegmentError,
        5,
        5,
        "failed authentication",
    ),
    "foreign-appended-after-final": Tamper(
        lambda r, o: [*r, o[5]],
        TamperedSegmentError,
        11,
        11,
        f"{RECORD_BYTES} bytes follow the final segment",
    ),
    "junk-after-final": Tamper(
        lambda r, o: [*r, b"junk!"], TamperedSegmentError, 11, 11, "5 bytes follow the final segment"
    ),
    "junk-in-the-middle": Tamper(
        lambda r, o: [*r[:5], b"\x01" * 30, *r[5:]], TamperedSegmentError, 5, 5, "checksum mismatch"
    ),
}


@pytest.mark.parametrize("case", TAMPERS.values(), ids=TAMPERS.keys())
def test_tampering_is_detected(tmp_path: Path, case: Tamper) -> None:
    store = MemoryKeyStore()
    written = write_recording(tmp_path / "a.chr", store, segments=SEGMENTS)
    other = write_recording(tmp_path / "b.chr", store, segments=SEGMENTS)
    header, records = _split(written.path)
    _, foreign = _split(other.path)
    altered = case.mutate(records, foreign)
    written.path.write_bytes(header + b"".join(altered))

    reader = SegmentReader(written.path, private_key=REVIEWER, key_store=store)
    received: list[bytes] = []
    with pytest.raises(case.error, match=case.message) as info:
        received.extend(reader)
    assert (info.value.index, info.value.offset) == (
        case.index,
        HEADER_BYTES + sum(map(len, altered[: case.position])),
    )
    if case.found is not None:
        assert isinstance(info.value, MissingSegmentError | ReorderedSegmentError)
        assert info.value.found == case.found
    # Everything before the damage was authentic and was delivered in order.
    assert received == list(written.segments[: case.index])
    with pytest.raises(case.error):
        _ = SegmentReader(written.path, private_key=REVIEWER, key_store=store).status


def test_forged_length_beyond_the_end_reads_as_truncation(tmp_path: Path) -> None:
    """A forger who recomputes the checksum can make the file look cut short, never complete."""
    store = MemoryKeyStore()
    written = write_recording(tmp_path / "a.chr", store, segments=SEGMENTS)
    header, records = _split(written.path)
    written.path.write_bytes(
        header + b"".join([*records[:5], _rehead(records[5], length=4_000_000), *records[6:]])
    )
    with pytest.raises(TruncatedRecordingError) as info:
        _read(written.path, store)
    assert (info.value.segments, info.value.duration_s) == (5, 5.0)


def test_final_segment_removed_is_truncation(tmp_path: Path) -> None:
    store = MemoryKeyStore()
    written = write_recording(tmp_path / "a.chr", store, segments=SEGMENTS)
    written.path.write_bytes(written.path.read_bytes()[:-FINAL_RECORD_BYTES])
    with pytest.raises(TruncatedRecordingError) as info:
        _read(written.path, store)
    assert str(info.value) == (
        f"recording {written.recording_id} is truncated after 10 segments "
        "(10.000 s intact, 0 bytes of torn tail ignored)"
    )
    reader = SegmentReader(written.path, private_key=REVIEWER, key_store=store, allow_truncated=True)
    assert reader.read_all() == written.audio
    assert reader.status.state is RecordingState.TRUNCATED


# --------------------------------------------------------------------------------------------------
# Tampering with the header


def _header_flip_error(offset: int) -> tuple[type[RecordingIntegrityError], str]:
    if offset < 8:
        return NotARecordingError, "not a callherald recording"
    if offset < 10:
        return UnsupportedFormatError, "format version .* is not supported"
    return TamperedHeaderError, "header checksum mismatch"


@pytest.mark.parametrize("offset", range(HEADER_BYTES))
def test_header_bit_flip_is_detected(tmp_path: Path, offset: int) -> None:
    store = MemoryKeyStore()
    written = write_recording(tmp_path / "a.chr", store, segments=2)
    data = bytearray(written.path.read_bytes())
    data[offset] ^= 0x01
    written.path.write_bytes(data)
    error, message = _header_flip_error(offset)
    with pytest.raises(error, match=message):
        _read(written.path, store)


def _forge_header(path: Path, offset: int, value: bytes) -> None:
    data = bytearray(path.read_bytes())
    data[offset : offset + len(value)] = value
    data[60:64] = zlib.crc32(bytes(data[:60])).to_bytes(4, "big")
    path.write_bytes(data)


@pytest.mark.parametrize(
    ("offset", "value", "error", "message"),
    [
        pytest.param(
            48, (16000).to_bytes(4, "big"), KeyEntryMismatchError, "header or the key entry", id="rate"
        ),
        pytest.param(
            56, (20).to_bytes(4, "big"), KeyEntryMismatchError, "header or the key entry", id="duration"
        ),
        pytest.param(10, b"\x00\x02", UnsupportedFormatError, "unsupported suite 2", id="suite"),
        pytest.param(12, b"\x00\x50", UnsupportedFormatError, "header length 80", id="header-length"),
        pytest.param(32, b"PCM", TamperedHeaderError, "invalid audio format", id="codec"),
        pytest.param(52, b"\x00", TamperedHeaderError, "invalid audio format", id="zero-channels"),
        pytest.param(16, uuid.uuid4().bytes, KeyNotFoundError, "no wrapped key is stored", id="recording-id"),
    ],
)
def test_forged_header_is_detected(
    tmp_path: Path, offset: int, value: bytes, error: type[Exception], message: str
) -> None:
    store = MemoryKeyStore()
    written = write_recording(tmp_path / "a.chr", store, segments=2)
    _forge_header(written.path, offset, value)
    with pytest.raises(error, match=message):
        _read(written.path, store)


def test_header_transplanted_from_another_recording_is_detected(tmp_path: Path) -> None:
    """Same format, other id: the header now equals the other recording's, whose key opens; its segments do not."""
    store = MemoryKeyStore()
    written = write_recording(tmp_path / "a.chr", store, segments=2)
    other = write_recording(tmp_path / "b.chr", store, segments=2)
    _forge_header(written.path, 16, other.recording_id.bytes)
    with pytest.raises(ForeignSegmentError, match=r"segment 0, file offset 64"):
        _read(written.path, store)


def test_header_taking_another_recordings_id_and_format_is_detected(tmp_path: Path) -> None:
    store = MemoryKeyStore()
    written = write_recording(tmp_path / "a.chr", store, segments=2)
    other = write_recording(tmp_path / "b.chr", store, segments=2)
    _forge_header(written.path, 16, other.recording_id.bytes)
    _forge_header(written.path, 56, (500).to_bytes(4, "big"))
    with pytest.raises(KeyEntryMismatchError):
        _read(written.path, store)


# --------------------------------------------------------------------------------------------------
# Truncation at any offset; a torn tail is truncation, never tampering


def _cut(spans: list[tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """Cut points (file length) and the number of intact audio segments before each."""
    return {
        "inside-record-3-header": (spans[3][0] + 10, 3),
        "inside-record-3-audio": (spans[3][0] + 25 + 4000, 3),
        "inside-record-3-tag": (spans[3][1] - 1, 3),
        "record-3-boundary": (spans[3][1], 4),
        "inside-final-record-header": (spans[10][0] + 3, 10),
        "inside-final-record-tag": (spans[10][1] - 1, 10),
        "header-only": (HEADER_BYTES, 0),
    }


CUTS = [
    "inside-record-3-header",
    "inside-record-3-audio",
    "inside-record-3-tag",
    "record-3-boundary",
    "inside-final-record-header",
    "inside-final-record-tag",
    "header-only",
]


@pytest.mark.parametrize("cut", CUTS)
def test_truncation_reports_the_intact_part(tmp_path: Path, cut: str) -> None:
    store = MemoryKeyStore()
    written = write_recording(tmp_path / "a.chr", store, segments=SEGMENTS)
    length, intact_segments = _cut(record_spans(written.path))[cut]
    intact_bytes = HEADER_BYTES + intact_segments * RECORD_BYTES
    with open(written.path, "r+b") as stream:
        stream.truncate(length)

    with pytest.raises(TruncatedRecordingError) as info:
        _read(written.path, store)
    assert (info.value.segments, info.value.duration_s) == (intact_segments, float(intact_segments))
    assert (info.value.intact_bytes, info.value.ignored_bytes) == (intact_bytes, length - intact_bytes)

    reader = SegmentReader(written.path, private_key=REVIEWER, key_store=store, allow_truncated=True)
    assert reader.read_all() == b"".join(written.segments[:intact_segments])
    assert reader.status == RecordingStatus(
        state=RecordingState.TRUNCATED,
        segments=intact_segments,
        pcm_bytes=8000 * intact_segments,
        duration_s=float(intact_segments),
        intact_bytes=intact_bytes,
        ignored_bytes=length - intact_bytes,
    )


@pytest.mark.parametrize("length", [0, 1, 7, 8, 40, 63])
def test_truncation_inside_the_header(tmp_path: Path, length: int) -> None:
    store = MemoryKeyStore()
    written = write_recording(tmp_path / "a.chr", store, segments=2)
    with open(written.path, "r+b") as stream:
        stream.truncate(length)
    with pytest.raises(TruncatedRecordingError, match="the file ends inside the header") as info:
        SegmentReader(written.path, private_key=REVIEWER, key_store=store, allow_truncated=True)
    assert (info.value.segments, info.value.ignored_bytes) == (0, length)
    report = recover(written.path, store)
    assert (report.state, report.recording_id, report.segments, report.tail_bytes) == (
        RecoveryState.NO_HEADER,
        None,
        0,
        length,
    )


@pytest.mark.parametrize(
    ("tail", "intact_segments"),
    [
        pytest.param(bytes(4096), 7, id="zero-filled-blocks"),
        pytest.param(bytes(10), 7, id="zero-bytes-shorter-than-a-record-header"),
        pytest.param(b"\x01" * 24, 7, id="partial-record-header"),
    ],
)
def test_crash_leftovers_after_the_last_record_are_a_torn_tail(
    tmp_path: Path, tail: bytes, intact_segments: int
) -> None:
    store = MemoryKeyStore()
    written = write_recording(tmp_path / "a.chr", store, segments=7, final=False)
    with open(written.path, "ab") as stream:
        stream.write(tail)
    reader = SegmentReader(written.path, private_key=REVIEWER, key_store=store, allow_truncated=True)
    assert reader.read_all() == written.audio
    assert (reader.status.state, reader.status.segments, reader.status.duration_s) == (
        RecordingState.TRUNCATED,
        intact_segments,
        7.0,
    )
    assert reader.status.ignored_bytes == len(tail)


def test_last_record_whose_blocks_never_reached_the_disk_is_a_torn_tail(tmp_path: Path) -> None:
    """After a power loss a file system may show the last blocks as zeros: the tag is then all zero."""
    store = MemoryKeyStore()
    written = write_recording(tmp_path / "a.chr", store, segments=7, final=False)
    data = bytearray(written.path.read_bytes())
    data[-4096:] = bytes(4096)
    written.path.write_bytes(data)
    reader = SegmentReader(written.path, private_key=REVIEWER, key_store=store, allow_truncated=True)
    assert reader.read_all() == b"".join(written.segments[:6])
    assert (reader.status.segments, reader.status.ignored_bytes) == (6, RECORD_BYTES)


def test_file_of_zeros_has_no_header(tmp_path: Path) -> None:
    path = tmp_path / "zeros.chr"
    path.write_bytes(bytes(HEADER_BYTES + 5000))
    with pytest.raises(TruncatedRecordingError, match="the header never reached the disk"):
        SegmentReader(path, private_key=REVIEWER, key_store=MemoryKeyStore())
    assert recover(path, MemoryKeyStore()).state is RecoveryState.NO_HEADER


def test_not_a_recording(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    path.write_bytes(b"RIFF" + bytes(100))
    with pytest.raises(NotARecordingError, match="bad magic"):
        SegmentReader(path, private_key=REVIEWER, key_store=MemoryKeyStore())
    with pytest.raises(NotARecordingError):
        recover(path, MemoryKeyStore())


# --------------------------------------------------------------------------------------------------
# Key entries, recipients and crypto-shredding


def test_swapped_key_entries_of_two_recordings_are_detected(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path / "keys")
    first = write_recording(tmp_path / "a.chr", store, segments=2)
    second = write_recording(tmp_path / "b.chr", store, segments=2)
    first_keys = tmp_path / "keys" / f"{first.recording_id}.keys.json"
    second_keys = tmp_path / "keys" / f"{second.recording_id}.keys.json"
    a, b = first_keys.read_bytes(), second_keys.read_bytes()
    first_keys.write_bytes(b)
    second_keys.write_bytes(a)
    with pytest.raises(
        ForeignKeyEntryError,
        match=f"key entry of recording {second.recording_id} for recording {first.recording_id}",
    ):
        _read(first.path, store)
    with pytest.raises(ForeignKeyEntryError):
        _read(second.path, store)


def test_key_entry_relabelled_for_another_recording_does_not_open(tmp_path: Path) -> None:
    keys = MemoryKeyStore()
    first = write_recording(tmp_path / "a.chr", keys, segments=2)
    second = write_recording(tmp_path / "b.chr", keys, segments=2)
    relabelled = [
        WrappedKey(
            recording_id=first.recording_id,
            recipient_key_id=entry.recipient_key_id,
            encapsulated_key=entry.encapsulated_key,
            sealed_key=entry.sealed_key,
        )
        for entry in keys.get(second.recording_id)
    ]
    keys.destroy(first.recording_id)
    keys.put(first.recording_id, relabelled)
    with pytest.raises(KeyEntryMismatchError):
        _read(first.path, keys)


def test_only_recipients_can_read(tmp_path: Path) -> None:
    store = MemoryKeyStore()
    written = write_recording(tmp_path / "a.chr", store, segments=2)
    outsider_id = key_id(OUTSIDER.public_key())
    with pytest.raises(
        NotARecipientError,
        match=f"not readable with key {outsider_id} \\(stored for: {REVIEWER_KEY_ID}, {ESCROW_KEY_ID}\\)",
    ):
        SegmentReader(written.path, private_key=OUTSIDER, key_store=store)


def test_crypto_shredding_makes_every_copy_unreadable(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path / "keys")
    written = write_recording(tmp_path / "a.chr", store, segments=3)
    backup = tmp_path / "backup.chr"
    shutil.copyfile(written.path, backup)
    entries = store.get(written.recording_id)
    audio_file = written.path.read_bytes()
    for entry in entries:  # the audio file holds no key material at all
        assert entry.sealed_key not in audio_file
        assert entry.encapsulated_key not in audio_file
    assert _read(backup, store) == written.audio

    assert store.destroy(written.recording_id) is True
    assert list((tmp_path / "keys").iterdir()) == []
    for path in (written.path, backup):
        for private_key in (REVIEWER, ESCROW):
            with pytest.raises(KeyNotFoundError, match="it was erased or never stored"):
                SegmentReader(path, private_key=private_key, key_store=store)
        # The ciphertext is intact and countable, but nothing can open it.
        report = recover(path, store)
        assert (report.state, report.segments, report.recipient_key_ids) == (RecoveryState.FINALISED, 3, ())


# --------------------------------------------------------------------------------------------------
# The writer: no way to read, no plaintext on disk, misuse


def test_writer_offers_no_way_to_read(tmp_path: Path) -> None:
    writer = SegmentWriter(
        tmp_path / "a.chr",
        recording_id=uuid.uuid4(),
        recipients=[REVIEWER.public_key()],
        audio_format=MONO_MULAW,
        key_store=MemoryKeyStore(),
    )
    public = {name for name in dir(writer) if not name.startswith("_")}
    assert public == {
        "audio_format",
        "close",
        "closed",
        "fsync",
        "path",
        "pcm_bytes_written",
        "recording_id",
        "segments_written",
        "wrapped_keys",
        "write_segment",
    }
    assert type(writer._sealer) is SegmentSealer
    assert [name for name in vars(writer) if "key" in name] == ["wrapped_keys"]
    writer.close()
    assert writer._sealer is None


def _tone(seconds: int) -> bytes:
    """A 400 Hz stereo tone (period 20 frames) with different levels on the two channels."""
    frames = bytearray()
    for n in range(20):
        sample = math.sin(2 * math.pi * n / 20)
        frames += struct.pack("<hh", round(12000 * sample), round(-6000 * sample))
    return bytes(frames) * (400 * seconds)


def test_no_window_of_a_tone_reaches_the_disk(tmp_path: Path) -> None:
    store = MemoryKeyStore()
    pcm = _tone(60)
    writer = SegmentWriter(
        tmp_path / "a.chr",
        recording_id=uuid.uuid4(),
        recipients=[REVIEWER.public_key(), ESCROW.public_key()],
        audio_format=STEREO_S16,
        key_store=store,
    )
    for second in range(60):
        writer.write_segment(pcm[second * 32000 : (second + 1) * 32000])
    writer.close()
    data = (tmp_path / "a.chr").read_bytes()
    windows = {pcm[i : i + 16] for i in range(len(pcm) - 15)}
    assert len(windows) == 80
    assert [window for window in windows if window in data] == []
    assert _read(tmp_path / "a.chr", store) == pcm


def test_no_window_of_noise_reaches_the_disk(tmp_path: Path) -> None:
    written = write_recording(tmp_path / "a.chr", MemoryKeyStore(), segments=5)
    data = written.path.read_bytes()
    audio = written.audio
    audio_windows = {audio[i : i + 16] for i in range(len(audio) - 15)}
    file_windows = {data[i : i + 16] for i in range(len(data) - 15)}
    assert audio_windows & file_windows == set()


@pytest.mark.parametrize(
    ("audio_format", "pcm", "message"),
    [
        pytest.param(MONO_MULAW, b"", "must not be empty", id="empty"),
        pytest.param(STEREO_S16, b"\x00" * 6, "whole frames of 4 bytes", id="partial-frame"),
        pytest.param(
            MONO_MULAW, bytes(MAX_SEGMENT_PLAINTEXT_BYTES + 1), "at most 4194304 bytes", id="too-large"
        ),
    ],
)
def test_malformed_segments_are_refused(
    tmp_path: Path, audio_format: AudioFormat, pcm: bytes, message: str
) -> None:
    writer = SegmentWriter(
        tmp_path / "a.chr",
        recording_id=uuid.uuid4(),
        recipients=[REVIEWER.public_key()],
        audio_format=audio_format,
        key_store=MemoryKeyStore(),
    )
    with pytest.raises(ValueError, match=message):
        writer.write_segment(pcm)
    writer.write_segment(bytes(audio_format.frame_bytes))
    assert writer.close().segments == 1


def test_a_sealed_segment_of_part_frames_is_tampered(tmp_path: Path) -> None:
    """Whoever holds the data key can seal any length; the writer seals whole frames only, so a
    reader refuses a segment that holds a part frame instead of delivering shifted channels."""
    store = MemoryKeyStore()
    path = tmp_path / "a.chr"
    writer = SegmentWriter(
        path,
        recording_id=uuid.uuid4(),
        recipients=[REVIEWER.public_key()],
        audio_format=STEREO_S16,
        key_store=store,
    )
    writer.write_segment(bytes(STEREO_S16.frame_bytes * 100))
    writer._write_record(bytes(STEREO_S16.frame_bytes * 100 + 2), 0)  # what write_segment refuses
    writer.close()
    second = record_spans(path)[1][0]
    reader = SegmentReader(path, private_key=REVIEWER, key_store=store)
    received: list[bytes] = []
    with pytest.raises(TamperedSegmentError, match="402 bytes of audio, not whole frames of 4 bytes") as info:
        received.extend(reader)
    assert (info.value.index, info.value.offset) == (1, second)
    assert received == [bytes(400)]
    with pytest.raises(TamperedSegmentError):
        _ = SegmentReader(path, private_key=REVIEWER, key_store=store).status
    # Recovery, which holds no key, finds it from the record's length alone.
    report = recover(path, store, repair=True)
    assert (report.state, report.segments, report.repaired) == (RecoveryState.CORRUPT, 1, False)
    assert (
        report.problem
        == f"the record at offset {second} holds 402 bytes of audio, not whole frames of 4 bytes"
    )


@pytest.mark.parametrize(
    ("recipients", "message"),
    [
        pytest.param([], "at least one recipient", id="none"),
        pytest.param(
            [REVIEWER.public_key(), REVIEWER.public_key()], "duplicate recipient keys", id="duplicate"
        ),
    ],
)
def test_writer_needs_distinct_recipients(tmp_path: Path, recipients: list[object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SegmentWriter(
            tmp_path / "a.chr",
            recording_id=uuid.uuid4(),
            recipients=recipients,  # type: ignore[arg-type]
            audio_format=MONO_MULAW,
            key_store=MemoryKeyStore(),
        )
    assert not (tmp_path / "a.chr").exists()


def test_writer_never_overwrites_a_file(tmp_path: Path) -> None:
    store = MemoryKeyStore()
    written = write_recording(tmp_path / "a.chr", store, segments=1)
    before = written.path.read_bytes()
    rid = uuid.uuid4()
    with pytest.raises(FileExistsError):
        SegmentWriter(
            written.path,
            recording_id=rid,
            recipients=[REVIEWER.public_key()],
            audio_format=MONO_MULAW,
            key_store=store,
        )
    assert written.path.read_bytes() == before
    assert store.get(rid) == ()


def test_writer_refuses_a_recording_id_whose_keys_exist(tmp_path: Path) -> None:
    store = MemoryKeyStore()
    written = write_recording(tmp_path / "a.chr", store, segments=1)
    with pytest.raises(KeyStoreError, match="already stored"):
        write_recording(tmp_path / "b.chr", store, segments=1, recording_id=written.recording_id)
    assert not (tmp_path / "b.chr").exists()
    assert _read(written.path, store) == written.audio


def test_writer_after_close(tmp_path: Path) -> None:
    writer = SegmentWriter(
        tmp_path / "a.chr",
        recording_id=uuid.uuid4(),
        recipients=[REVIEWER.public_key()],
        audio_format=MONO_MULAW,
        key_store=MemoryKeyStore(),
    )
    first = writer.close()
    assert writer.closed is True
    with pytest.raises(WriterClosedError, match="is closed"):
        writer.write_segment(b"x")
    assert writer.close(final=False) is first


@pytest.mark.parametrize(
    ("fail", "state"), [(False, RecordingState.COMPLETE), (True, RecordingState.TRUNCATED)]
)
def test_context_manager_finalises_only_on_success(tmp_path: Path, fail: bool, state: RecordingState) -> None:
    store = MemoryKeyStore()
    path = tmp_path / "a.chr"
    try:
        with SegmentWriter(
            path,
            recording_id=uuid.uuid4(),
            recipients=[REVIEWER.public_key()],
            audio_format=MONO_MULAW,
            key_store=store,
        ) as writer:
            writer.write_segment(b"abc")
            if fail:
                raise RuntimeError("call dropped")
    except RuntimeError:
        pass
    assert writer.closed is True
    status = SegmentReader(path, private_key=REVIEWER, key_store=store, allow_truncated=True).status
    assert (status.state, status.segments) == (state, 1)


# --------------------------------------------------------------------------------------------------
# Recovery without any key


def test_recover_a_cleanly_closed_recording(tmp_path: Path) -> None:
    store = MemoryKeyStore()
    written = write_recording(tmp_path / "a.chr", store, segments=4)
    report = recover(written.path, store)
    assert report.state is RecoveryState.FINALISED
    assert report.recording_id == written.recording_id
    assert report.audio_format == MONO_MULAW
    assert (report.segments, report.pcm_bytes, report.duration_s) == (4, 32000, 4.0)
    assert (report.intact_bytes, report.tail_bytes, report.file_bytes) == (
        written.summary.file_bytes,
        0,
        written.summary.file_bytes,
    )
    assert report.sha256 == written.summary.sha256
    assert report.recipient_key_ids == (REVIEWER_KEY_ID, ESCROW_KEY_ID)
    assert (report.problem, report.repaired) == (None, False)


@pytest.mark.parametrize("repair", [False, True])
def test_recover_a_torn_tail(tmp_path: Path, repair: bool) -> None:
    store = MemoryKeyStore()
    written = write_recording(tmp_path / "a.chr", store, segments=6, final=False)
    intact = written.path.read_bytes()
    with open(written.path, "ab") as stream:
        stream.write(_split(written.path)[1][2][:3000])  # a partial record
    report = recover(written.path, store, repair=repair)
    assert (report.state, report.segments, report.duration_s) == (RecoveryState.TRUNCATED, 6, 6.0)
    assert (report.intact_bytes, report.tail_bytes) == (len(intact), 3000)
    assert (
        report.problem
        == f"torn tail: the file ends inside a record (2975 of 8016 bytes) at offset {len(intact)}"
    )
    assert report.sha256 == hashlib.sha256(intact).hexdigest()
    assert report.repaired is repair
    assert report.file_bytes == (len(intact) if repair else len(intact) + 3000)
    assert written.path.stat().st_size == report.file_bytes


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        pytest.param(lambda r, o: r[:2] + r[3:], "has counter 3, expected 2", id="dropped"),
        pytest.param(lambda r, o: _replace(r, 2, o[2]), "has another recording's tag", id="foreign"),
        pytest.param(
            lambda r, o: _replace(r, 2, _flip(r[2], 1)), "record header checksum mismatch", id="length-bit"
        ),
        pytest.param(lambda r, o: [*r, o[0]], "a record follows the final one", id="after-final"),
        pytest.param(lambda r, o: [*r, b"zz"], "2 bytes follow the final record", id="junk-after-final"),
    ],
)
def test_recover_reports_framing_damage(
    tmp_path: Path, mutate: Callable[[Records, Records], Records], problem: str
) -> None:
    store = MemoryKeyStore()
    written = write_recording(tmp_path / "a.chr", store, segments=4)
    other = write_recording(tmp_path / "b.chr", store, segments=4)
    header, records = _split(written.path)
    written.path.write_bytes(header + b"".join(mutate(records, _split(other.path)[1])))
    report = recover(written.path, store, repair=True)
    assert report.state is RecoveryState.CORRUPT
    assert report.problem is not None
    assert problem in report.problem
    assert report.repaired is False


def test_recover_refuses_a_file_whose_header_names_another_recording_and_leaves_it_as_found(
    tmp_path: Path,
) -> None:
    store = MemoryKeyStore()
    written = write_recording(tmp_path / "a.chr", store, segments=3, final=False)
    torn = written.path.read_bytes() + b"torn"
    written.path.write_bytes(torn)
    expected = uuid.uuid4()
    report = recover(written.path, store, repair=True, expected_recording_id=expected)
    assert (report.state, report.recording_id, report.segments) == (
        RecoveryState.CORRUPT,
        written.recording_id,
        0,
    )
    assert report.problem == f"its header names recording {written.recording_id}, not {expected}"
    assert (report.repaired, written.path.read_bytes()) == (False, torn)
    # Its own id: an ordinary torn file, repaired.
    own = recover(written.path, store, repair=True, expected_recording_id=written.recording_id)
    assert (own.state, own.segments, own.repaired) == (RecoveryState.TRUNCATED, 3, True)


def test_recover_cannot_see_an_altered_ciphertext(tmp_path: Path) -> None:
    """What recovery cannot prove: only the reviewer's key detects a flipped ciphertext bit."""
    store = MemoryKeyStore()
    written = write_recording(tmp_path / "a.chr", store, segments=4)
    header, records = _split(written.path)
    written.path.write_bytes(header + b"".join(_replace(records, 1, _flip(records[1], 500))))
    report = recover(written.path, store)
    assert (report.state, report.segments) == (RecoveryState.FINALISED, 4)
    assert report.sha256 != written.summary.sha256
    with pytest.raises(TamperedSegmentError):
        _read(written.path, store)


def test_recover_a_tampered_header(tmp_path: Path) -> None:
    store = MemoryKeyStore()
    written = write_recording(tmp_path / "a.chr", store, segments=1)
    data = bytearray(written.path.read_bytes())
    data[40] ^= 0xFF
    written.path.write_bytes(data)
    report = recover(written.path, store)
    assert (report.state, report.recording_id) == (RecoveryState.CORRUPT, None)
    assert report.problem is not None
    assert report.problem.endswith("header checksum mismatch")


def test_status_raises_integrity_errors_but_reports_truncation(tmp_path: Path) -> None:
    store = MemoryKeyStore()
    written = write_recording(tmp_path / "a.chr", store, segments=3, final=False)
    status = SegmentReader(written.path, private_key=REVIEWER, key_store=store).status
    assert (status.state, status.segments) == (RecordingState.TRUNCATED, 3)
    assert status.complete is False
