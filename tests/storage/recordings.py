"""Shared helpers of the storage tests: fixed key pairs, audio formats, recordings on real files."""

from __future__ import annotations

import hashlib
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from storage.keys import KeyStore
from storage.segments import (
    CODEC_PCM_MULAW,
    CODEC_PCM_S16LE,
    HEADER_BYTES,
    RECORD_HEADER_BYTES,
    AudioFormat,
    FsyncPolicy,
    RecordingSummary,
    SegmentWriter,
)

# RFC 7748 §6.1 key pairs (Alice and Bob), so key ids are fixed values.
REVIEWER = X25519PrivateKey.from_private_bytes(
    bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
)
ESCROW = X25519PrivateKey.from_private_bytes(
    bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
)
OUTSIDER = X25519PrivateKey.from_private_bytes(bytes(range(32)))
REVIEWER_KEY_ID = "300c9c9603b92a4b"

# One second is 8000 bytes: durations follow from byte counts exactly.
MONO_MULAW = AudioFormat(codec=CODEC_PCM_MULAW, sample_rate_hz=8000, channels=1, sample_width_bytes=1)
# One second is 32000 bytes: the product's stereo layout.
STEREO_S16 = AudioFormat(codec=CODEC_PCM_S16LE, sample_rate_hz=8000, channels=2, sample_width_bytes=2)

_LENGTH = struct.Struct(">I")


def pcm_pattern(index: int, size: int) -> bytes:
    """Distinct, reproducible segment contents: SHAKE-256 of the segment number."""
    return hashlib.shake_256(f"segment {index}".encode()).digest(size)


@dataclass(frozen=True, slots=True, kw_only=True)
class Written:
    path: Path
    recording_id: uuid.UUID
    segments: tuple[bytes, ...]
    summary: RecordingSummary

    @property
    def audio(self) -> bytes:
        return b"".join(self.segments)


def write_recording(
    path: Path,
    key_store: KeyStore,
    *,
    segments: int,
    audio_format: AudioFormat = MONO_MULAW,
    seconds_per_segment: float = 1.0,
    final: bool = True,
    recording_id: uuid.UUID | None = None,
    fsync: FsyncPolicy = FsyncPolicy.NEVER,
) -> Written:
    """Write ``segments`` segments of ``pcm_pattern`` audio for the reviewer and escrow keys."""
    rid = recording_id or uuid.uuid4()
    size = int(audio_format.bytes_per_second * seconds_per_segment)
    data = tuple(pcm_pattern(i, size) for i in range(segments))
    writer = SegmentWriter(
        path,
        recording_id=rid,
        recipients=[REVIEWER.public_key(), ESCROW.public_key()],
        audio_format=audio_format,
        key_store=key_store,
        fsync=fsync,
    )
    for chunk in data:
        writer.write_segment(chunk)
    return Written(path=path, recording_id=rid, segments=data, summary=writer.close(final=final))


def record_spans(path: Path) -> list[tuple[int, int]]:
    """(start, end) file offsets of every record, found by the length fields alone."""
    data = path.read_bytes()
    spans = []
    offset = HEADER_BYTES
    while offset + RECORD_HEADER_BYTES <= len(data):
        (length,) = _LENGTH.unpack_from(data, offset)
        end = offset + RECORD_HEADER_BYTES + length
        spans.append((offset, end))
        offset = end
    return spans
