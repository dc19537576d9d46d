"""docs/recording-format.md is exact: a reader written from the document alone reads what the writer wrote."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import struct
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from storage.crypto import UnsupportedFormatError, wrap_data_key
from storage.keys import FileKeyStore
from storage.records import EvidenceStore
from storage.segments import RecordingHeader, SegmentReader
from storage.sqlite_keys import SqliteKeyStore
from tests.storage.recordings import ESCROW, REVIEWER, STEREO_S16, write_recording

DOC = Path(__file__).resolve().parents[2] / "docs" / "recording-format.md"

GOLDEN_HEADER = bytes.fromhex(
    "89434852 0d0a1a0a 0001 0001 0040 0000"  # magic, version 1, suite 1, header length 64, reserved
    "00112233445566778899aabbccddeeff"  # recording id
    "70636d5f7331366c6500000000000000"  # codec "pcm_s16le", NUL-padded
    "00001f40 02 02 0000 000003e8"  # 8000 Hz, 2 channels, 2 bytes, reserved, 1000 ms
    "6bd5f311"  # CRC-32 of the 60 bytes before
)


def test_header_bytes_follow_the_table() -> None:
    header = RecordingHeader(
        recording_id=uuid.UUID("00112233-4455-6677-8899-aabbccddeeff"),
        audio_format=STEREO_S16,
        segment_duration_ms=1000,
    )
    assert header.encode() == GOLDEN_HEADER
    assert zlib.crc32(GOLDEN_HEADER[:60]) == int.from_bytes(GOLDEN_HEADER[60:], "big")


def _hpke(private_key: X25519PrivateKey, enc: bytes, sealed: bytes, info: bytes) -> bytes:
    module = pytest.importorskip("cryptography.hazmat.primitives.hpke")
    if not hasattr(module, "Suite"):
        pytest.skip("this cryptography release has no HPKE")
    suite = module.Suite(module.KEM.X25519, module.KDF.HKDF_SHA256, module.AEAD.CHACHA20_POLY1305)
    data_key: bytes = suite.decrypt(enc + sealed, private_key, info=info)
    return data_key


KeyEntry = Callable[[uuid.UUID, str], tuple[bytes, bytes]]
"""(recording id, recipient key id) -> (enc, sealed_key), as the document says a key store keeps them."""


def _file_key_entry(keys: Path) -> KeyEntry:
    def entry(recording_id: uuid.UUID, key_id: str) -> tuple[bytes, bytes]:
        document = json.loads((keys / f"{recording_id}.keys.json").read_bytes())
        (found,) = [e for e in document["entries"] if e["recipient_key_id"] == key_id]
        assert found["recording_id"] == str(recording_id)
        return base64.b64decode(found["encapsulated_key"]), base64.b64decode(found["sealed_key"])

    return entry


def _sqlite_key_entry(database: Path) -> KeyEntry:
    def entry(recording_id: uuid.UUID, key_id: str) -> tuple[bytes, bytes]:
        conn = sqlite3.connect(database)
        try:
            (wrapped,) = conn.execute(
                "SELECT wrapped_key FROM key_store WHERE recording_id = ? AND recipient_key_id = ?",
                [str(recording_id), key_id],
            ).fetchone()
        finally:
            conn.close()
        assert len(wrapped) == 80
        return wrapped[:32], wrapped[32:]

    return entry


def _read_as_documented(
    path: Path, expected_id: uuid.UUID, key_entry: KeyEntry, private_key: X25519PrivateKey, key_id: str
) -> tuple[list[bytes], bool]:
    """An independent reader: the numbered steps of 'Reading', without error classification."""
    data = path.read_bytes()
    header = data[:64]
    assert header[:8] == b"\x89CHR\r\n\x1a\n"
    version, suite, header_length = struct.unpack(">HHH", header[8:14])
    assert (version, suite, header_length) == (1, 1, 64)
    assert zlib.crc32(header[:60]) == struct.unpack(">I", header[60:64])[0]
    recording_id = uuid.UUID(bytes=header[16:32])
    assert recording_id == expected_id  # else swapped
    frame_bytes = header[52] * header[53]  # channels times sample width
    header_hash = hashlib.sha256(header).digest()
    recording_tag = header_hash[:8]

    enc, sealed = key_entry(expected_id, key_id)
    data_key = _hpke(private_key, enc, sealed, b"callherald recording v1 data key" + header_hash)
    segment_key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"callherald recording v1 segment key"
    ).derive(data_key)
    aead = ChaCha20Poly1305(segment_key)

    offset, expected, audio, final = 64, 0, [], False
    while offset < len(data):
        record_header = data[offset : offset + 25]
        length, counter, flags, tag, crc = struct.unpack(">IQB8sI", record_header)
        assert zlib.crc32(record_header[:21]) == crc
        assert (tag, counter) == (recording_tag, expected)
        nonce = bytes(4) + struct.pack(">Q", counter)
        plaintext = aead.decrypt(
            nonce, data[offset + 25 : offset + 25 + length], header_hash + record_header[:21]
        )
        assert len(plaintext) % frame_bytes == 0  # else tampered
        if plaintext:
            audio.append(plaintext)
        final = bool(flags & 1)
        offset += 25 + length
        expected += 1
    return audio, final


@pytest.mark.parametrize("final", [True, False])
def test_independent_reader_reads_the_writers_file(tmp_path: Path, final: bool) -> None:
    store = FileKeyStore(tmp_path / "keys")
    written = write_recording(tmp_path / "a.chr", store, segments=5, audio_format=STEREO_S16, final=final)
    for private_key in (REVIEWER, ESCROW):
        key_id = hashlib.sha256(private_key.public_key().public_bytes_raw()).hexdigest()[:16]
        audio, complete = _read_as_documented(
            written.path, written.recording_id, _file_key_entry(tmp_path / "keys"), private_key, key_id
        )
        assert audio == list(written.segments)
        assert complete is final


def test_independent_reader_reads_a_recording_from_the_data_directory_alone(tmp_path: Path) -> None:
    """callherald's own key store: the rows of table ``key_store`` in the evidence database."""
    database = tmp_path / "evidence.sqlite"
    with EvidenceStore(database) as store:
        written = write_recording(
            tmp_path / "a.chrec", SqliteKeyStore(store), segments=3, audio_format=STEREO_S16
        )
    for private_key in (REVIEWER, ESCROW):
        key_id = hashlib.sha256(private_key.public_key().public_bytes_raw()).hexdigest()[:16]
        audio, complete = _read_as_documented(
            written.path, written.recording_id, _sqlite_key_entry(database), private_key, key_id
        )
        assert audio == list(written.segments)
        assert complete


def test_document_gives_the_key_store_table_as_the_database_has_it(tmp_path: Path) -> None:
    database = tmp_path / "evidence.sqlite"
    EvidenceStore(database).close()
    conn = sqlite3.connect(database)
    try:
        (schema,) = conn.execute("SELECT sql FROM sqlite_schema WHERE name = 'key_store'").fetchone()
    finally:
        conn.close()
    documented = DOC.read_text(encoding="utf-8").split("```sql\n", 1)[1].split("```", 1)[0]
    assert " ".join(documented.split()) == " ".join(str(schema).split())


def test_document_names_the_constants_the_code_uses() -> None:
    text = DOC.read_text(encoding="utf-8")
    for fragment in (
        "`89 43 48 52 0d 0a 1a 0a`",
        '"callherald recording v1 data key"',
        '"callherald recording v1 segment key"',
        '"callherald private key v1"',
        "KEM `0x0020`",
        "KDF `0x0001`",
        "AEAD `0x0003`",
        "`16 ≤ length ≤ 4 MiB + 16`",
        "aad        = header_hash || record bytes 0..20",
        "nonce      = 00 00 00 00 || uint64(counter)",
    ):
        assert fragment in text


def _write_as_documented(path: Path, store: FileKeyStore, records: list[tuple[bytes, int]]) -> uuid.UUID:
    """An independent writer: the header, key wrap and records built from the document's formulas."""
    recording_id = uuid.uuid4()
    fields = (
        b"\x89CHR\r\n\x1a\n"
        + struct.pack(">HHHH", 1, 1, 64, 0)
        + recording_id.bytes
        + b"pcm_alaw".ljust(16, b"\0")
        + struct.pack(">IBBHI", 8000, 1, 1, 0, 20)
    )
    header = fields + zlib.crc32(fields).to_bytes(4, "big")
    header_hash = hashlib.sha256(header).digest()
    data_key = bytes(range(32))
    store.put(
        recording_id,
        [wrap_data_key(data_key, REVIEWER.public_key(), recording_id=recording_id, header=header)],
    )
    aead = ChaCha20Poly1305(
        HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"callherald recording v1 segment key"
        ).derive(data_key)
    )
    body = bytearray(header)
    for counter, (plaintext, flags) in enumerate(records):
        head = struct.pack(">IQB8s", len(plaintext) + 16, counter, flags, header_hash[:8])
        head += zlib.crc32(head).to_bytes(4, "big")
        body += head + aead.encrypt(bytes(4) + struct.pack(">Q", counter), plaintext, header_hash + head[:21])
    path.write_bytes(body)
    return recording_id


def test_reader_accepts_what_the_document_allows(tmp_path: Path) -> None:
    """Empty non-final segments and audio in the final segment are valid, though this writer makes neither."""
    store = FileKeyStore(tmp_path / "keys")
    path = tmp_path / "a.chr"
    _write_as_documented(path, store, [(b"one", 0), (b"", 0), (b"two", 0), (b"three", 1)])
    reader = SegmentReader(path, private_key=REVIEWER, key_store=store)
    assert list(reader) == [b"one", b"two", b"three"]
    assert (reader.status.complete, reader.status.segments, reader.status.pcm_bytes) == (True, 3, 11)
    assert reader.header.segment_duration_ms == 20


def test_reader_refuses_unknown_flags_even_when_authentic(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path / "keys")
    path = tmp_path / "a.chr"
    _write_as_documented(path, store, [(b"one", 0), (b"two", 0x02), (b"", 1)])
    with pytest.raises(UnsupportedFormatError, match="segment 1 has unknown flags 0x02"):
        SegmentReader(path, private_key=REVIEWER, key_store=store).read_all()
