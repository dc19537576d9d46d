"""The encrypted recording container: a header, then a stream of sealed segments of about a second.

Theory of operation (the byte layout is specified in ``docs/recording-format.md``):

* ``SegmentWriter`` (the proxy) draws a fresh 256-bit data key per recording, seals it to every
  recipient public key with HPKE and hands the wrapped keys to a ``KeyStore``, apart from the audio.
  It then appends each segment with one ``pwrite`` call: a 25-byte record header (length, counter,
  flags, recording tag, CRC-32) followed by ChaCha20-Poly1305 ciphertext whose AAD binds the file
  header's SHA-256 and the record header. ``close(final=True)`` appends an empty segment flagged
  final. The writer holds a sealer, never a private key: it cannot read what it wrote.
* A crash (kill -9, power loss) leaves complete records followed at most by a torn one. A failed
  write (ENOSPC) is cut back to the last complete record at once. Either way the file reads as a
  clean truncation, never as tampering.
* ``SegmentReader`` (the reviewer) unwraps the data key with a private key and authenticates each
  record in order; each way a file can be altered raises its own ``RecordingIntegrityError``:
  truncation, a missing, reordered, foreign or altered segment, an altered header or key entry.
* ``recover`` inspects a file with no key at all, e.g. after a crash: it counts well-formed records,
  finds a torn tail, optionally cuts it off, and hashes the intact bytes. It authenticates nothing.

Not thread-safe: one writer per file, driven from one thread.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import os
import re
import struct
import uuid
import zlib
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from storage.crypto import (
    FULL_DISK_ERRNOS,
    TAG_BYTES,
    ForeignKeyEntryError,
    ForeignSegmentError,
    KeyNotFoundError,
    MissingSegmentError,
    NotARecipientError,
    NotARecordingError,
    RecordingIntegrityError,
    ReorderedSegmentError,
    SegmentOpener,
    SegmentSealer,
    StorageFullError,
    StorageWriteError,
    TamperedHeaderError,
    TamperedSegmentError,
    TruncatedRecordingError,
    UnsupportedFormatError,
    WrappedKey,
    WriterClosedError,
    key_id,
    new_data_key,
    unwrap_data_key,
    wrap_data_key,
)
from storage.durable import fsync_directory
from storage.keys import KeyStore

__all__ = [
    "CODEC_PCM_ALAW",
    "CODEC_PCM_MULAW",
    "CODEC_PCM_S16LE",
    "FLAG_FINAL",
    "FORMAT_VERSION",
    "HEADER_BYTES",
    "MAGIC",
    "MAX_SEGMENT_PLAINTEXT_BYTES",
    "RECORD_HEADER_BYTES",
    "SEGMENT_DURATION_MS_DEFAULT",
    "SUITE_V1",
    "AudioFormat",
    "FsyncPolicy",
    "RecordingHeader",
    "RecordingState",
    "RecordingStatus",
    "RecordingSummary",
    "RecoveryReport",
    "RecoveryState",
    "SegmentReader",
    "SegmentWriter",
    "read_header",
    "recover",
]

MAGIC = b"\x89CHR\r\n\x1a\n"
FORMAT_VERSION = 1
SUITE_V1 = 1  # HPKE(X25519, HKDF-SHA256, ChaCha20-Poly1305) key wrap; ChaCha20-Poly1305 segments
HEADER_BYTES = 64
RECORD_HEADER_BYTES = 25
FLAG_FINAL = 0x01
MAX_SEGMENT_PLAINTEXT_BYTES = 4 * 1024 * 1024
SEGMENT_DURATION_MS_DEFAULT = 1000

CODEC_PCM_S16LE = "pcm_s16le"
CODEC_PCM_MULAW = "pcm_mulaw"
CODEC_PCM_ALAW = "pcm_alaw"

_TAG_BYTES_RECORDING = 8
_CODEC_FIELD_BYTES = 16
# magic, version, suite, header length, reserved, recording id, codec, sample rate, channels,
# sample width, reserved, nominal segment duration (ms), CRC-32 of the 60 bytes before it
_HEADER = struct.Struct(">8sHHHH16s16sIBBHII")
# ciphertext length (with tag), counter, flags, recording tag, CRC-32 of the 21 bytes before it
_RECORD = struct.Struct(">IQB8sI")
_RECORD_AAD_BYTES = RECORD_HEADER_BYTES - 4
_MAX_CIPHERTEXT_BYTES = MAX_SEGMENT_PLAINTEXT_BYTES + TAG_BYTES
_CODEC_RE = re.compile(r"[a-z0-9_]{1,16}")
_SCAN_CHUNK_BYTES = 1 << 16

assert _HEADER.size == HEADER_BYTES
assert _RECORD.size == RECORD_HEADER_BYTES


# --------------------------------------------------------------------------------------------------
# Value types


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioFormat:
    """How the plaintext of every segment is to be interpreted: interleaved frames of fixed size.

    ``codec`` is an ffmpeg-style name (``pcm_s16le``, ``pcm_mulaw``, ``pcm_alaw``; lowercase letters,
    digits and ``_``, at most 16). For call recordings channel 0 (left) is the outside party and
    channel 1 (right) the PBX side.
    """

    codec: str
    sample_rate_hz: int
    channels: int
    sample_width_bytes: int

    def __post_init__(self) -> None:
        if not _CODEC_RE.fullmatch(self.codec):
            raise ValueError(f"codec must be 1-16 of [a-z0-9_], got {self.codec!r}")
        if not 1 <= self.sample_rate_hz <= 0xFFFFFFFF:
            raise ValueError(f"sample rate out of range: {self.sample_rate_hz}")
        if not 1 <= self.channels <= 0xFF:
            raise ValueError(f"channels out of range: {self.channels}")
        if not 1 <= self.sample_width_bytes <= 0xFF:
            raise ValueError(f"sample width out of range: {self.sample_width_bytes}")

    @property
    def frame_bytes(self) -> int:
        """Bytes per frame (one sample of every channel)."""
        return self.channels * self.sample_width_bytes

    @property
    def bytes_per_second(self) -> int:
        return self.sample_rate_hz * self.frame_bytes

    def duration_s(self, pcm_bytes: int) -> float:
        """Seconds of audio in ``pcm_bytes`` bytes of plaintext."""
        return pcm_bytes / self.bytes_per_second


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingHeader:
    """The clear-text, checksummed file header."""

    recording_id: uuid.UUID
    audio_format: AudioFormat
    segment_duration_ms: int
    """Nominal duration of one segment, as the writer intended; informational."""

    def __post_init__(self) -> None:
        if not 1 <= self.segment_duration_ms <= 0xFFFFFFFF:
            raise ValueError(f"segment duration out of range: {self.segment_duration_ms}")

    def encode(self) -> bytes:
        """The 64 header bytes, CRC included (docs/recording-format.md, "Header")."""
        fmt = self.audio_format
        body = _HEADER.pack(
            MAGIC,
            FORMAT_VERSION,
            SUITE_V1,
            HEADER_BYTES,
            0,
            self.recording_id.bytes,
            fmt.codec.encode("ascii").ljust(_CODEC_FIELD_BYTES, b"\0"),
            fmt.sample_rate_hz,
            fmt.channels,
            fmt.sample_width_bytes,
            0,
            self.segment_duration_ms,
            0,
        )
        return body[:-4] + zlib.crc32(body[:-4]).to_bytes(4, "big")


class FsyncPolicy(enum.StrEnum):
    """When the writer forces data to stable storage (``os.fsync``).

    A killed process loses nothing already written in any policy (the kernel has the data); these
    differ only on power loss or an OS crash.
    """

    NEVER = "never"
    """Never: the page cache decides. A power loss can lose the last seconds or minutes."""
    ON_CLOSE = "on_close"
    """After the header (and the directory entry) and at close: a power loss can lose the unsynced tail."""
    EVERY_SEGMENT = "every_segment"
    """After every segment too: a power loss loses at most the segment being written."""


class RecordingState(enum.StrEnum):
    COMPLETE = "complete"
    """The authenticated final segment is present."""
    TRUNCATED = "truncated"
    """The recording ends without its final segment; everything before the cut is authentic."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingStatus:
    """What a reader established about a recording, every counted segment authenticated."""

    state: RecordingState
    segments: int
    """Segments carrying audio (the empty final marker is not counted)."""
    pcm_bytes: int
    duration_s: float
    intact_bytes: int
    """File offset just after the last authentic record."""
    ignored_bytes: int
    """Bytes after ``intact_bytes`` (a torn tail); zero for a complete recording."""

    @property
    def complete(self) -> bool:
        return self.state is RecordingState.COMPLETE


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingSummary:
    """What the writer wrote, for the evidence record (``close()`` returns it)."""

    recording_id: uuid.UUID
    complete: bool
    """Whether the final segment was written."""
    segments: int
    pcm_bytes: int
    duration_s: float
    file_bytes: int
    sha256: str | None
    """Lowercase hex SHA-256 of the whole file as written; None when the writer was told not to
    hash the file (``file_sha256=False``)."""
    recipient_key_ids: tuple[str, ...]


class RecoveryState(enum.StrEnum):
    FINALISED = "finalised"
    """Well-formed through a record flagged final, nothing after it."""
    TRUNCATED = "truncated"
    """Well-formed records, then the end of the file or a torn tail: the writer stopped early."""
    CORRUPT = "corrupt"
    """A framing problem that no crash produces (bad checksum, counter gap, foreign tag)."""
    NO_HEADER = "no_header"
    """The file ends inside the header (or holds only zero bytes): nothing was recorded."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RecoveryReport:
    """What ``recover`` can say about a file without any key. Nothing here is authenticated."""

    state: RecoveryState
    recording_id: uuid.UUID | None
    audio_format: AudioFormat | None
    segments: int
    """Well-formed records carrying audio (by length: a record holds length - 16 bytes of audio)."""
    pcm_bytes: int
    duration_s: float
    intact_bytes: int
    """File offset just after the last well-formed record (or the header, or 0)."""
    tail_bytes: int
    """Bytes after ``intact_bytes`` at inspection time (a torn tail, or what follows a problem)."""
    file_bytes: int
    """File size after recovery (after the cut when ``repaired``)."""
    sha256: str
    """Lowercase hex SHA-256 of the first ``intact_bytes`` bytes."""
    recipient_key_ids: tuple[str, ...]
    """Key ids of the wrapped keys the key store holds for this recording; empty: unreadable."""
    problem: str | None
    repaired: bool
    """Whether the torn tail was cut off (``repair=True``)."""


# --------------------------------------------------------------------------------------------------
# Header and record framing (keyless)


def _truncated(
    message: str, segments: int, duration_s: float, intact: int, ignored: int
) -> TruncatedRecordingError:
    return TruncatedRecordingError(
        message, segments=segments, duration_s=duration_s, intact_bytes=intact, ignored_bytes=ignored
    )


def _is_zero_to_end(stream: BinaryIO) -> bool:
    while chunk := stream.read(_SCAN_CHUNK_BYTES):
        if chunk.count(0) != len(chunk):
            return False
    return True


def _read_header(stream: BinaryIO, source: str) -> tuple[RecordingHeader, bytes, int]:
    """Read and check the header at the start of ``stream``; return it, its bytes and the file size."""
    file_bytes = os.fstat(stream.fileno()).st_size
    stream.seek(0)
    data = stream.read(HEADER_BYTES)
    if data and data.count(0) == len(data) and _is_zero_to_end(stream):
        raise _truncated(
            f"{source}: the header never reached the disk ({file_bytes} zero bytes)", 0, 0.0, 0, file_bytes
        )
    if len(data) < HEADER_BYTES:
        if MAGIC.startswith(data[: len(MAGIC)]):
            raise _truncated(
                f"{source}: the file ends inside the header ({len(data)} bytes)", 0, 0.0, 0, len(data)
            )
        raise NotARecordingError(f"{source}: not a callherald recording (bad magic)")
    (
        magic,
        version,
        suite,
        header_len,
        reserved,
        rid,
        codec,
        rate,
        channels,
        width,
        reserved2,
        seg_ms,
        crc,
    ) = _HEADER.unpack(data)
    if magic != MAGIC:
        raise NotARecordingError(f"{source}: not a callherald recording (bad magic)")
    if version != FORMAT_VERSION:
        raise UnsupportedFormatError(f"{source}: format version {version} is not supported")
    if zlib.crc32(data[:-4]) != crc:
        raise TamperedHeaderError(f"{source}: header checksum mismatch")
    if suite != SUITE_V1 or header_len != HEADER_BYTES or reserved or reserved2:
        raise UnsupportedFormatError(
            f"{source}: unsupported suite {suite}, header length {header_len} or reserved bits"
        )
    try:
        audio_format = AudioFormat(
            codec=codec.rstrip(b"\0").decode("ascii"),
            sample_rate_hz=rate,
            channels=channels,
            sample_width_bytes=width,
        )
        header = RecordingHeader(
            recording_id=uuid.UUID(bytes=rid), audio_format=audio_format, segment_duration_ms=seg_ms
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise TamperedHeaderError(f"{source}: invalid audio format in header: {exc}") from exc
    return header, data, file_bytes


def read_header(path: str | os.PathLike[str]) -> RecordingHeader:
    """Read and check a recording's header (no key needed; checksummed, not authenticated)."""
    with open(path, "rb") as stream:
        return _read_header(stream, os.fspath(path))[0]


def _recording_tag(header: bytes) -> bytes:
    return hashlib.sha256(header).digest()[:_TAG_BYTES_RECORDING]


def _record_header(length: int, counter: int, flags: int, tag: bytes) -> bytes:
    head = _RECORD.pack(length, counter, flags, tag, 0)[:_RECORD_AAD_BYTES]
    return head + zlib.crc32(head).to_bytes(4, "big")


@dataclass(frozen=True, slots=True)
class _Frame:
    offset: int
    counter: int
    flags: int
    tag: bytes
    head: bytes
    body: bytes

    @property
    def end(self) -> int:
        return self.offset + RECORD_HEADER_BYTES + len(self.body)

    @property
    def aad_part(self) -> bytes:
        return self.head[:_RECORD_AAD_BYTES]


class _StopKind(enum.Enum):
    END = "end"  # end of file exactly at a record boundary
    TORN = "torn"  # an incomplete record, or zero bytes never written, at the end of the file
    CORRUPT = "corrupt"  # a framing error no crash produces


@dataclass(frozen=True, slots=True)
class _Stop:
    offset: int
    kind: _StopKind
    reason: str


def _scan(stream: BinaryIO, offset: int, file_bytes: int) -> Iterator[_Frame | _Stop]:
    """Parse records from ``offset``; the last item is always a ``_Stop``. Authenticates nothing."""
    stream.seek(offset)
    while True:
        head = stream.read(RECORD_HEADER_BYTES)
        if not head:
            yield _Stop(offset, _StopKind.END, "end of file")
            return
        if len(head) < RECORD_HEADER_BYTES:
            yield _Stop(offset, _StopKind.TORN, f"the file ends inside a record header ({len(head)} bytes)")
            return
        length, counter, flags, tag, crc = _RECORD.unpack(head)
        if zlib.crc32(head[:_RECORD_AAD_BYTES]) != crc:
            if head.count(0) == len(head) and _is_zero_to_end(stream):
                yield _Stop(offset, _StopKind.TORN, "zero bytes to the end of the file (never written)")
            else:
                yield _Stop(offset, _StopKind.CORRUPT, "record header checksum mismatch")
            return
        if not TAG_BYTES <= length <= _MAX_CIPHERTEXT_BYTES:
            yield _Stop(offset, _StopKind.CORRUPT, f"record length {length} out of range")
            return
        body = stream.read(length)
        if len(body) < length:
            yield _Stop(
                offset, _StopKind.TORN, f"the file ends inside a record ({len(body)} of {length} bytes)"
            )
            return
        end = offset + RECORD_HEADER_BYTES + length
        if end == file_bytes and body[-TAG_BYTES:] == bytes(TAG_BYTES):
            # A tag of zeros is never written by an AEAD: these blocks never reached the disk.
            yield _Stop(offset, _StopKind.TORN, "the last record's tag is zero bytes (never written)")
            return
        yield _Frame(offset, counter, flags, tag, head, body)
        offset = end


def _counter_occurs(path: Path, offset: int, file_bytes: int, tag: bytes, counter: int) -> bool:
    with open(path, "rb") as stream:
        return any(
            isinstance(item, _Frame) and item.tag == tag and item.counter == counter
            for item in _scan(stream, offset, file_bytes)
        )


# --------------------------------------------------------------------------------------------------
# Writer


class SegmentWriter:
    """Appends sealed segments to a new recording file.

    The constructor draws the data key, wraps it for every recipient, stores the wrapped keys in
    ``key_store`` (before any audio exists) and creates ``path`` (mode 0600; ``FileExistsError`` if it
    exists) with its header. The data key itself is then dropped: only a sealer remains, which
    cannot open segments; ``wrapped_keys`` keeps what was handed to the key store. Usable as a
    context manager: leaving the block normally closes with the final segment, leaving it by an
    exception closes without (the file then reads as truncated). ``file_sha256=False`` leaves the
    whole file's hash out of the summary (and its cost out of every segment).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        recording_id: uuid.UUID,
        recipients: Sequence[X25519PublicKey],
        audio_format: AudioFormat,
        key_store: KeyStore,
        segment_duration_ms: int = SEGMENT_DURATION_MS_DEFAULT,
        fsync: FsyncPolicy = FsyncPolicy.ON_CLOSE,
        file_sha256: bool = True,
    ) -> None:
        if not recipients:
            raise ValueError("at least one recipient public key is required")
        key_ids = tuple(key_id(recipient) for recipient in recipients)
        if len(set(key_ids)) != len(key_ids):
            raise ValueError(f"duplicate recipient keys: {key_ids}")
        self.path = Path(path)
        self.recording_id = recording_id
        self.audio_format = audio_format
        self.fsync = fsync
        header = RecordingHeader(
            recording_id=recording_id, audio_format=audio_format, segment_duration_ms=segment_duration_ms
        ).encode()
        data_key = new_data_key()
        self.wrapped_keys: tuple[WrappedKey, ...] = tuple(
            wrap_data_key(data_key, recipient, recording_id=recording_id, header=header)
            for recipient in recipients
        )
        self._sealer: SegmentSealer | None = SegmentSealer(data_key)
        del data_key
        self._aad_prefix = hashlib.sha256(header).digest()
        self._tag = _recording_tag(header)
        # The whole file's SHA-256, for a summary that needs it; hashing costs as much as sealing.
        self._hash = hashlib.sha256() if file_sha256 else None
        self._offset = 0
        self._counter = 0
        self._failed = False
        self._summary: RecordingSummary | None = None
        self.segments_written = 0
        self.pcm_bytes_written = 0

        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            key_store.put(recording_id, self.wrapped_keys)
        except BaseException:
            os.close(self._fd)
            self.path.unlink(missing_ok=True)
            raise
        try:
            self._append(header)
            if fsync is not FsyncPolicy.NEVER:
                self._sync_directory()
        except BaseException:
            os.close(self._fd)
            self.path.unlink(missing_ok=True)
            key_store.destroy(recording_id)
            raise

    @property
    def closed(self) -> bool:
        return self._summary is not None

    def _sync_directory(self) -> None:
        fsync_directory(self.path.parent)

    def _append(self, data: bytes) -> None:
        """Write ``data`` at the end with pwrite; on any OSError cut the file back and fail the writer."""
        written = 0
        try:
            while written < len(data):
                written += os.pwrite(self._fd, data[written:], self._offset + written)
            if self.fsync is not FsyncPolicy.NEVER and (
                self._offset == 0 or self.fsync is FsyncPolicy.EVERY_SEGMENT
            ):
                os.fsync(self._fd)
        except OSError as exc:
            self._failed = True
            self._sealer = None
            with contextlib.suppress(OSError):  # a torn tail still reads as truncation
                os.ftruncate(self._fd, self._offset)
            detail = f"writing {self.path} at offset {self._offset} failed: {exc.strerror or exc}"
            if exc.errno in FULL_DISK_ERRNOS:
                raise StorageFullError(
                    f"disk full: {detail}; the file ends at its last complete segment"
                ) from exc
            raise StorageWriteError(f"{detail}; the file ends at its last complete segment") from exc
        self._offset += len(data)
        if self._hash is not None:
            self._hash.update(data)

    def _write_record(self, plaintext: bytes, flags: int) -> None:
        if self._summary is not None:
            raise WriterClosedError(f"recording {self.recording_id} is closed")
        if self._failed or self._sealer is None:
            raise WriterClosedError(f"recording {self.recording_id} failed earlier; no more segments")
        head = _record_header(len(plaintext) + TAG_BYTES, self._counter, flags, self._tag)
        sealed = self._sealer.seal(self._counter, plaintext, self._aad_prefix + head[:_RECORD_AAD_BYTES])
        # The counter advances even if the write fails: a nonce is never reused after a partial write.
        self._counter += 1
        self._append(head + sealed)

    def write_segment(self, pcm_bytes: bytes) -> None:
        """Seal and append one segment of interleaved frames (non-empty, whole frames, about a second).

        Raises ``StorageFullError`` / ``StorageWriteError`` when the write fails (the file then ends
        at the previous segment and the writer accepts no more), ``WriterClosedError`` after close or
        failure, ValueError for a malformed segment.
        """
        if not pcm_bytes:
            raise ValueError("a segment must not be empty")
        if len(pcm_bytes) > MAX_SEGMENT_PLAINTEXT_BYTES:
            raise ValueError(f"a segment holds at most {MAX_SEGMENT_PLAINTEXT_BYTES} bytes")
        if len(pcm_bytes) % self.audio_format.frame_bytes:
            raise ValueError(f"a segment must hold whole frames of {self.audio_format.frame_bytes} bytes")
        self._write_record(pcm_bytes, 0)
        self.segments_written += 1
        self.pcm_bytes_written += len(pcm_bytes)

    def close(self, final: bool = True) -> RecordingSummary:
        """Close the file; with ``final`` (and no earlier failure) first append the empty final segment.

        Idempotent: a second call returns the first summary. If writing the final segment fails, the
        file is closed anyway and the error is raised.
        """
        if self._summary is not None:
            return self._summary
        complete = False
        try:
            if final and not self._failed:
                self._write_record(b"", FLAG_FINAL)
                complete = True
            if self.fsync is FsyncPolicy.ON_CLOSE and not self._failed:
                try:
                    os.fsync(self._fd)
                except OSError as exc:
                    raise StorageWriteError(f"fsync of {self.path} failed: {exc.strerror or exc}") from exc
        finally:
            self._sealer = None
            os.close(self._fd)
            self._summary = RecordingSummary(
                recording_id=self.recording_id,
                complete=complete,
                segments=self.segments_written,
                pcm_bytes=self.pcm_bytes_written,
                duration_s=self.audio_format.duration_s(self.pcm_bytes_written),
                file_bytes=self._offset,
                sha256=None if self._hash is None else self._hash.hexdigest(),
                recipient_key_ids=tuple(entry.recipient_key_id for entry in self.wrapped_keys),
            )
        return self._summary

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(final=exc_type is None)


# --------------------------------------------------------------------------------------------------
# Reader


class SegmentReader:
    """Reads and verifies a recording with a recipient's private key.

    The constructor reads the header, fetches the recording's wrapped keys from ``key_store`` and
    unwraps the data key; it raises ``KeyNotFoundError`` if none are stored (erased),
    ``NotARecipientError`` if none is for this key, ``ForeignKeyEntryError`` if the store returns an
    entry of another recording, ``KeyEntryMismatchError`` if the entry does not open with this header.

    Iterating yields each segment's audio in order, after authenticating it, and raises the first
    ``RecordingIntegrityError`` found (a segment whose audio is not whole frames is tampered). A
    recording without its final segment raises ``TruncatedRecordingError`` after its last intact
    segment, unless ``allow_truncated`` is set.
    A reader reads a closed file; it does not follow a file still being written.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        private_key: X25519PrivateKey,
        key_store: KeyStore,
        allow_truncated: bool = False,
    ) -> None:
        self.path = Path(path)
        self.allow_truncated = allow_truncated
        with open(self.path, "rb") as stream:
            self.header, header_bytes, _ = _read_header(stream, os.fspath(path))
        rid = self.header.recording_id
        entries = key_store.get(rid)
        if not entries:
            raise KeyNotFoundError(
                f"no wrapped key is stored for recording {rid}: it was erased or never stored"
            )
        for entry in entries:
            if entry.recording_id != rid:
                raise ForeignKeyEntryError(
                    f"the key store returned a key entry of recording {entry.recording_id} "
                    f"for recording {rid}"
                )
        own = key_id(private_key.public_key())
        mine = [entry for entry in entries if entry.recipient_key_id == own]
        if not mine:
            stored = ", ".join(entry.recipient_key_id for entry in entries)
            raise NotARecipientError(f"recording {rid} is not readable with key {own} (stored for: {stored})")
        self._opener = SegmentOpener(unwrap_data_key(mine[0], private_key, header=header_bytes))
        self._aad_prefix = hashlib.sha256(header_bytes).digest()
        self._tag = _recording_tag(header_bytes)
        self._status: RecordingStatus | None = None

    @property
    def recording_id(self) -> uuid.UUID:
        return self.header.recording_id

    @property
    def audio_format(self) -> AudioFormat:
        return self.header.audio_format

    def _misordered(self, expected: int, frame: _Frame, file_bytes: int) -> RecordingIntegrityError:
        if frame.counter < expected:
            return ReorderedSegmentError(
                f"segment {frame.counter} is repeated or out of order",
                index=expected,
                offset=frame.offset,
                found=frame.counter,
            )
        if _counter_occurs(self.path, frame.end, file_bytes, self._tag, expected):
            return ReorderedSegmentError(
                f"segment {frame.counter} comes before segment {expected}",
                index=expected,
                offset=frame.offset,
                found=frame.counter,
            )
        return MissingSegmentError(
            f"segment {expected} is missing (next present: {frame.counter})",
            index=expected,
            offset=frame.offset,
            found=frame.counter,
        )

    def _walk(self) -> Generator[bytes, None, RecordingStatus]:
        """Yield each authentic segment's audio; return the status at the end; raise on tampering."""
        expected = segments = pcm_bytes = 0
        final_at: int | None = None
        intact = HEADER_BYTES
        with open(self.path, "rb") as stream:
            file_bytes = os.fstat(stream.fileno()).st_size
            for item in _scan(stream, HEADER_BYTES, file_bytes):
                if final_at is not None and not (isinstance(item, _Stop) and item.kind is _StopKind.END):
                    raise TamperedSegmentError(
                        f"{file_bytes - final_at} bytes follow the final segment",
                        index=expected,
                        offset=final_at,
                    )
                if isinstance(item, _Stop):
                    if item.kind is _StopKind.CORRUPT:
                        raise TamperedSegmentError(item.reason, index=expected, offset=item.offset)
                    break
                if item.tag != self._tag:
                    raise ForeignSegmentError(
                        "the segment belongs to another recording", index=expected, offset=item.offset
                    )
                try:
                    audio = self._opener.open(item.counter, item.body, self._aad_prefix + item.aad_part)
                except InvalidTag:
                    raise TamperedSegmentError(
                        "the segment failed authentication", index=expected, offset=item.offset
                    ) from None
                if item.counter != expected:
                    raise self._misordered(expected, item, file_bytes)
                if item.flags & ~FLAG_FINAL:
                    raise UnsupportedFormatError(f"segment {expected} has unknown flags {item.flags:#04x}")
                frame_bytes = self.audio_format.frame_bytes
                if len(audio) % frame_bytes:
                    # The writer seals whole frames only: a part frame was sealed by someone else.
                    raise TamperedSegmentError(
                        f"the segment holds {len(audio)} bytes of audio, "
                        f"not whole frames of {frame_bytes} bytes",
                        index=expected,
                        offset=item.offset,
                    )
                expected += 1
                intact = item.end
                if audio:
                    segments += 1
                    pcm_bytes += len(audio)
                    yield audio
                if item.flags & FLAG_FINAL:
                    final_at = item.end
        return RecordingStatus(
            state=RecordingState.COMPLETE if final_at is not None else RecordingState.TRUNCATED,
            segments=segments,
            pcm_bytes=pcm_bytes,
            duration_s=self.audio_format.duration_s(pcm_bytes),
            intact_bytes=intact,
            ignored_bytes=file_bytes - intact,
        )

    def __iter__(self) -> Iterator[bytes]:
        status = yield from self._walk()
        self._status = status
        if not status.complete and not self.allow_truncated:
            raise self._truncation(status)

    def _truncation(self, status: RecordingStatus) -> TruncatedRecordingError:
        return _truncated(
            f"recording {self.recording_id} is truncated after {status.segments} segments "
            f"({status.duration_s:.3f} s intact, {status.ignored_bytes} bytes of torn tail ignored)",
            status.segments,
            status.duration_s,
            status.intact_bytes,
            status.ignored_bytes,
        )

    def read_all(self) -> bytes:
        """Return the whole recording's audio; raises as iteration does."""
        return b"".join(self)

    @property
    def status(self) -> RecordingStatus:
        """Authenticate the whole file and say whether it is complete or truncated (and how much is intact).

        Truncation is reported here, not raised; every other integrity error is raised.
        """
        if self._status is None:
            walk = self._walk()
            while True:
                try:
                    next(walk)
                except StopIteration as stop:
                    self._status = stop.value
                    break
        assert self._status is not None
        return self._status


# --------------------------------------------------------------------------------------------------
# Recovery


def _keyless_problem(
    frame: _Frame, expected: int, tag: bytes, finalised: bool, frame_bytes: int
) -> str | None:
    if finalised:
        return f"a record follows the final one at offset {frame.offset}"
    if frame.tag != tag:
        return f"the record at offset {frame.offset} has another recording's tag"
    if frame.counter != expected:
        return f"the record at offset {frame.offset} has counter {frame.counter}, expected {expected}"
    audio_bytes = len(frame.body) - TAG_BYTES
    if audio_bytes > 0 and audio_bytes % frame_bytes:
        # The writer seals whole frames only (the reader refuses such a segment too).
        return (
            f"the record at offset {frame.offset} holds {audio_bytes} bytes of audio, "
            f"not whole frames of {frame_bytes} bytes"
        )
    return None


def recover(
    path: str | os.PathLike[str],
    key_store: KeyStore,
    *,
    repair: bool = False,
    expected_recording_id: uuid.UUID | None = None,
) -> RecoveryReport:
    """Inspect a recording without any key (after a crash, say) and report what its framing shows.

    Counts well-formed records (checksum, recording tag, consecutive counters, length), finds a
    final record or a torn tail, hashes the intact bytes and lists the key ids the key store holds
    for it. It cannot authenticate: only a reader with a private key proves the segments genuine.
    With ``repair``, a torn tail of a TRUNCATED file is cut off (fsynced), so the file's hash equals
    ``sha256``; CORRUPT files are never modified. A file whose header names another recording than
    ``expected_recording_id`` (one put in the place of another) is CORRUPT. Raises
    ``NotARecordingError`` / ``UnsupportedFormatError`` for files that are not version 1 recordings.
    """
    path = Path(path)
    with open(path, "rb") as stream:
        try:
            header, header_bytes, file_bytes = _read_header(stream, os.fspath(path))
        except (TruncatedRecordingError, TamperedHeaderError) as exc:
            size = os.fstat(stream.fileno()).st_size
            return RecoveryReport(
                state=RecoveryState.NO_HEADER
                if isinstance(exc, TruncatedRecordingError)
                else RecoveryState.CORRUPT,
                recording_id=None,
                audio_format=None,
                segments=0,
                pcm_bytes=0,
                duration_s=0.0,
                intact_bytes=0,
                tail_bytes=size,
                file_bytes=size,
                sha256=hashlib.sha256(b"").hexdigest(),
                recipient_key_ids=(),
                problem=str(exc),
                repaired=False,
            )
        tag = _recording_tag(header_bytes)
        digest = hashlib.sha256(header_bytes)
        intact = HEADER_BYTES
        segments = pcm_bytes = 0
        finalised = False
        torn: str | None = None
        corrupt: str | None = None
        if expected_recording_id is not None and header.recording_id != expected_recording_id:
            # Another recording's file: none of its records are this recording's audio.
            corrupt = f"its header names recording {header.recording_id}, not {expected_recording_id}"
        for expected, item in enumerate(() if corrupt else _scan(stream, HEADER_BYTES, file_bytes)):
            if isinstance(item, _Stop):
                if item.kind is _StopKind.CORRUPT:
                    corrupt = f"{item.reason} at offset {item.offset}"
                elif item.kind is _StopKind.TORN and finalised:
                    corrupt = f"{file_bytes - intact} bytes follow the final record"
                elif item.kind is _StopKind.TORN:
                    torn = f"torn tail: {item.reason} at offset {item.offset}"
                break
            corrupt = _keyless_problem(item, expected, tag, finalised, header.audio_format.frame_bytes)
            if corrupt is not None:
                break
            intact = item.end
            digest.update(item.head)
            digest.update(item.body)
            if len(item.body) > TAG_BYTES:
                segments += 1
                pcm_bytes += len(item.body) - TAG_BYTES
            finalised = bool(item.flags & FLAG_FINAL)
    if corrupt is not None:
        state = RecoveryState.CORRUPT
    else:
        state = RecoveryState.FINALISED if finalised else RecoveryState.TRUNCATED
    repaired = False
    size_after = file_bytes
    if repair and state is RecoveryState.TRUNCATED and intact < file_bytes:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.ftruncate(fd, intact)
            os.fsync(fd)
        finally:
            os.close(fd)
        repaired, size_after = True, intact
    rid = header.recording_id
    return RecoveryReport(
        state=state,
        recording_id=rid,
        audio_format=header.audio_format,
        segments=segments,
        pcm_bytes=pcm_bytes,
        duration_s=header.audio_format.duration_s(pcm_bytes),
        intact_bytes=intact,
        tail_bytes=file_bytes - intact,
        file_bytes=size_after,
        sha256=digest.hexdigest(),
        recipient_key_ids=tuple(
            entry.recipient_key_id for entry in key_store.get(rid) if entry.recording_id == rid
        ),
        problem=corrupt or torn,
        repaired=repaired,
    )
