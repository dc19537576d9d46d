"""Cryptographic building blocks of the recording container, and the storage exception tree.

What lives here (the byte-level specification is ``docs/recording-format.md``):

* ``key_id``: the short public name of an X25519 key (first 16 hex digits of SHA-256 of the raw
  32-byte public key). It is stored next to wrapped keys and in evidence; it is never secret.
* ``hpke_seal_base`` / ``hpke_open_base``: RFC 9180 HPKE in base mode, single shot, with the suite
  DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / ChaCha20-Poly1305 (ids 0x0020 / 0x0001 / 0x0003),
  composed from the X25519, HMAC, HKDF and ChaCha20-Poly1305 primitives of ``cryptography``.
* ``wrap_data_key`` / ``unwrap_data_key``: a recording's 256-bit data key sealed to one recipient's
  public key with HPKE; the HPKE ``info`` is ``WRAP_INFO`` followed by the SHA-256 of the recording
  header (64 bytes in all, ``aad`` empty), so a wrapped key opens only with the exact header it was
  made for, and any RFC 9180 implementation can open it.
* ``SegmentSealer`` / ``SegmentOpener``: ChaCha20-Poly1305 under a key derived from the data key,
  nonce = 32 zero bits || the 64-bit segment counter. The sealer has no way to open.

The exception tree of the whole ``storage`` package is defined here too (this is its lowest module):
``StorageError`` is the root; ``RecordingIntegrityError`` and its subclasses say precisely how a
recording file or its key entry failed verification.
"""

from __future__ import annotations

import errno
import hashlib
import os
import struct
import uuid
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "DATA_KEY_BYTES",
    "HPKE_AEAD_ID",
    "HPKE_KDF_ID",
    "HPKE_KEM_ID",
    "KEY_ID_HEX_CHARS",
    "NONCE_BYTES",
    "SEGMENT_KEY_INFO",
    "TAG_BYTES",
    "WRAP_INFO",
    "X25519_KEY_BYTES",
    "ForeignKeyEntryError",
    "ForeignSegmentError",
    "InvalidTag",
    "KeyEntryMismatchError",
    "KeyFileError",
    "KeyNotFoundError",
    "KeyStoreError",
    "MissingSegmentError",
    "NotARecipientError",
    "NotARecordingError",
    "RecordingIntegrityError",
    "ReorderedSegmentError",
    "SegmentError",
    "SegmentOpener",
    "SegmentSealer",
    "StorageError",
    "StorageFullError",
    "StorageWriteError",
    "TamperedHeaderError",
    "TamperedSegmentError",
    "TruncatedRecordingError",
    "UnsupportedFormatError",
    "WrappedKey",
    "WriterClosedError",
    "WrongPassphraseError",
    "hpke_open_base",
    "hpke_seal_base",
    "key_id",
    "new_data_key",
    "segment_nonce",
    "unwrap_data_key",
    "wrap_data_key",
    "wrap_info",
]

X25519_KEY_BYTES = 32
DATA_KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_ID_HEX_CHARS = 16

# RFC 9180 §7.1-7.3 identifiers of the one suite in use.
HPKE_KEM_ID = 0x0020  # DHKEM(X25519, HKDF-SHA256)
HPKE_KDF_ID = 0x0001  # HKDF-SHA256
HPKE_AEAD_ID = 0x0003  # ChaCha20Poly1305
_HPKE_MODE_BASE = 0x00
_HPKE_NSECRET = 32
_HPKE_NK = 32
_HPKE_NN = 12

# Context strings (ASCII, no terminator). Changing one is a new format version.
WRAP_INFO = b"callherald recording v1 data key"
SEGMENT_KEY_INFO = b"callherald recording v1 segment key"

_U16 = struct.Struct(">H")
_NONCE_PREFIX = bytes(NONCE_BYTES - 8)
_MAX_COUNTER = (1 << 64) - 1


# --------------------------------------------------------------------------------------------------
# Exceptions of the storage package


class StorageError(Exception):
    """Root of every error the ``storage`` package raises on purpose."""


class StorageWriteError(StorageError):
    """Writing a recording failed; the file was cut back to its last complete segment."""


FULL_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
"""The ``OSError.errno`` of a write the disk (or the user's quota) has no room for."""


class StorageFullError(StorageWriteError):
    """The disk (or quota) is full (ENOSPC / EDQUOT); the file was cut back to its last complete segment."""


class WriterClosedError(StorageError):
    """A segment was written after ``close()`` or after an earlier write failed."""


class KeyFileError(StorageError, ValueError):
    """A key file is unreadable, malformed or inconsistent."""


class WrongPassphraseError(KeyFileError):
    """The passphrase does not open the private key file (or the file's ciphertext was altered)."""


class KeyStoreError(StorageError):
    """The key store cannot store or return wrapped keys (duplicate entry, malformed entry file)."""


class KeyNotFoundError(StorageError):
    """No wrapped key is stored for this recording: it was erased (crypto-shredded) or never stored."""


class NotARecipientError(KeyNotFoundError):
    """Wrapped keys exist for the recording, but none for the private key offered."""


class RecordingIntegrityError(StorageError):
    """A recording file, or the key entry that opens it, failed verification."""


class NotARecordingError(RecordingIntegrityError):
    """The file does not start with the recording magic."""


class UnsupportedFormatError(RecordingIntegrityError):
    """The file names a format version, suite or flag this reader does not know."""


class TamperedHeaderError(RecordingIntegrityError):
    """The header's checksum or a header field is wrong."""


class ForeignKeyEntryError(RecordingIntegrityError):
    """The key store returned a wrapped key made for a different recording id."""


class KeyEntryMismatchError(RecordingIntegrityError):
    """The wrapped key does not authenticate against this header: the header or the key entry was altered."""


class SegmentError(RecordingIntegrityError):
    """A problem with one segment: ``index`` is the counter expected there, ``offset`` its file offset."""

    def __init__(self, message: str, *, index: int, offset: int) -> None:
        super().__init__(f"{message} (segment {index}, file offset {offset})")
        self.index = index
        self.offset = offset


class TamperedSegmentError(SegmentError):
    """A segment failed authentication, or its framing (length, checksum, position) is corrupt."""


class ForeignSegmentError(SegmentError):
    """A segment carries another recording's tag: it was spliced in from a different file."""


class MissingSegmentError(SegmentError):
    """An authentic segment arrived with a counter above the expected one, which occurs nowhere later."""

    def __init__(self, message: str, *, index: int, offset: int, found: int) -> None:
        super().__init__(message, index=index, offset=offset)
        self.found = found


class ReorderedSegmentError(SegmentError):
    """An authentic segment arrived out of order, or was repeated."""

    def __init__(self, message: str, *, index: int, offset: int, found: int) -> None:
        super().__init__(message, index=index, offset=offset)
        self.found = found


class TruncatedRecordingError(RecordingIntegrityError):
    """The recording ends without its final segment: cut short by a crash, a full disk or deletion.

    Every segment before the cut is intact and authentic; ``segments`` and ``duration_s`` say how much.
    """

    def __init__(
        self, message: str, *, segments: int, duration_s: float, intact_bytes: int, ignored_bytes: int
    ) -> None:
        super().__init__(message)
        self.segments = segments
        self.duration_s = duration_s
        self.intact_bytes = intact_bytes
        self.ignored_bytes = ignored_bytes


# --------------------------------------------------------------------------------------------------
# Key ids and wrapped keys


def _raw_public(public_key: X25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(public_key: X25519PublicKey) -> str:
    """Return the key id: the first 16 lowercase hex digits of SHA-256 over the raw 32-byte public key."""
    return hashlib.sha256(_raw_public(public_key)).hexdigest()[:KEY_ID_HEX_CHARS]


def new_data_key() -> bytes:
    """Return a fresh random 256-bit data key from the operating system's CSPRNG."""
    return os.urandom(DATA_KEY_BYTES)


@dataclass(frozen=True, slots=True, kw_only=True)
class WrappedKey:
    """A recording's data key sealed to one recipient; what a key store keeps (never the data key)."""

    recording_id: uuid.UUID
    recipient_key_id: str
    """``key_id`` of the recipient public key this entry opens with."""
    encapsulated_key: bytes
    """HPKE ``enc``: the sender's ephemeral X25519 public key, 32 bytes."""
    sealed_key: bytes
    """HPKE ciphertext of the data key: 32 bytes of key and a 16-byte tag."""

    def __post_init__(self) -> None:
        if len(self.encapsulated_key) != X25519_KEY_BYTES:
            raise ValueError(f"encapsulated key must be {X25519_KEY_BYTES} bytes")
        if len(self.sealed_key) != DATA_KEY_BYTES + TAG_BYTES:
            raise ValueError(f"sealed key must be {DATA_KEY_BYTES + TAG_BYTES} bytes")
        if len(self.recipient_key_id) != KEY_ID_HEX_CHARS or any(
            c not in "0123456789abcdef" for c in self.recipient_key_id
        ):
            raise ValueError(f"recipient key id must be {KEY_ID_HEX_CHARS} lowercase hex digits")


# --------------------------------------------------------------------------------------------------
# RFC 9180 HPKE, base mode, single shot


def _hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    # RFC 5869 §2.2; an empty salt is the same HMAC key as HashLen zero bytes.
    mac = hmac.HMAC(salt, hashes.SHA256())
    mac.update(ikm)
    return mac.finalize()


def _hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    return HKDFExpand(algorithm=hashes.SHA256(), length=length, info=info).derive(prk)


def _labeled_extract(suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    # RFC 9180 §4
    return _hkdf_extract(salt, b"HPKE-v1" + suite_id + label + ikm)


def _labeled_expand(suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    # RFC 9180 §4
    return _hkdf_expand(prk, _U16.pack(length) + b"HPKE-v1" + suite_id + label + info, length)


_KEM_SUITE_ID = b"KEM" + _U16.pack(HPKE_KEM_ID)
_HPKE_SUITE_ID = b"HPKE" + _U16.pack(HPKE_KEM_ID) + _U16.pack(HPKE_KDF_ID) + _U16.pack(HPKE_AEAD_ID)


def _kem_shared_secret(dh: bytes, enc: bytes, pk_rm: bytes) -> bytes:
    # RFC 9180 §4.1 ExtractAndExpand, kem_context = enc || pkRm
    if dh == bytes(len(dh)):
        raise ValueError("X25519 produced the all-zero shared secret (low-order public key)")
    eae_prk = _labeled_extract(_KEM_SUITE_ID, b"", b"eae_prk", dh)
    return _labeled_expand(_KEM_SUITE_ID, eae_prk, b"shared_secret", enc + pk_rm, _HPKE_NSECRET)


def _key_schedule(shared_secret: bytes, info: bytes) -> tuple[bytes, bytes]:
    # RFC 9180 §5.1, mode_base: psk and psk_id are empty
    psk_id_hash = _labeled_extract(_HPKE_SUITE_ID, b"", b"psk_id_hash", b"")
    info_hash = _labeled_extract(_HPKE_SUITE_ID, b"", b"info_hash", info)
    context = bytes([_HPKE_MODE_BASE]) + psk_id_hash + info_hash
    secret = _labeled_extract(_HPKE_SUITE_ID, shared_secret, b"secret", b"")
    key = _labeled_expand(_HPKE_SUITE_ID, secret, b"key", context, _HPKE_NK)
    base_nonce = _labeled_expand(_HPKE_SUITE_ID, secret, b"base_nonce", context, _HPKE_NN)
    return key, base_nonce


def hpke_seal_base(
    recipient: X25519PublicKey,
    plaintext: bytes,
    *,
    info: bytes,
    aad: bytes,
    ephemeral: X25519PrivateKey | None = None,
) -> tuple[bytes, bytes]:
    """RFC 9180 §6.1 single-shot ``Seal`` in base mode; returns ``(enc, ciphertext)``.

    ``ephemeral`` exists for known-answer tests only; leave it None so a fresh key is generated.
    Raises ValueError for a low-order recipient key.
    """
    sk_e = ephemeral if ephemeral is not None else X25519PrivateKey.generate()
    enc = _raw_public(sk_e.public_key())
    try:
        dh = sk_e.exchange(recipient)
    except ValueError as exc:
        raise ValueError("X25519 with this recipient key failed (low-order public key)") from exc
    shared_secret = _kem_shared_secret(dh, enc, _raw_public(recipient))
    key, base_nonce = _key_schedule(shared_secret, info)
    # sequence number 0: nonce = base_nonce (RFC 9180 §5.2)
    return enc, ChaCha20Poly1305(key).encrypt(base_nonce, plaintext, aad)


def hpke_open_base(
    private_key: X25519PrivateKey, enc: bytes, ciphertext: bytes, *, info: bytes, aad: bytes
) -> bytes:
    """RFC 9180 §6.1 single-shot ``Open`` in base mode.

    Raises ``InvalidTag`` when the ciphertext, ``info`` or ``aad`` differ from what was sealed, or the
    key is not the recipient's; ValueError for a malformed ``enc``.
    """
    if len(enc) != X25519_KEY_BYTES:
        raise ValueError(f"enc must be {X25519_KEY_BYTES} bytes")
    try:
        dh = private_key.exchange(X25519PublicKey.from_public_bytes(enc))
    except ValueError as exc:
        raise ValueError("X25519 with this encapsulated key failed (low-order point)") from exc
    shared_secret = _kem_shared_secret(dh, enc, _raw_public(private_key.public_key()))
    key, base_nonce = _key_schedule(shared_secret, info)
    return ChaCha20Poly1305(key).decrypt(base_nonce, ciphertext, aad)


def wrap_info(header: bytes) -> bytes:
    """The HPKE ``info`` of a recording's key wrap: ``WRAP_INFO`` (32 bytes) || SHA-256(header) (32 bytes)."""
    return WRAP_INFO + hashlib.sha256(header).digest()


def wrap_data_key(
    data_key: bytes, recipient: X25519PublicKey, *, recording_id: uuid.UUID, header: bytes
) -> WrappedKey:
    """Seal ``data_key`` to ``recipient`` with HPKE (``info = WRAP_INFO || SHA-256(header)``, empty ``aad``).

    ``header`` is the recording's complete encoded header; the entry opens with no other header.
    """
    if len(data_key) != DATA_KEY_BYTES:
        raise ValueError(f"data key must be {DATA_KEY_BYTES} bytes")
    enc, sealed = hpke_seal_base(recipient, data_key, info=wrap_info(header), aad=b"")
    return WrappedKey(
        recording_id=recording_id,
        recipient_key_id=key_id(recipient),
        encapsulated_key=enc,
        sealed_key=sealed,
    )


def unwrap_data_key(wrapped: WrappedKey, private_key: X25519PrivateKey, *, header: bytes) -> bytes:
    """Open a wrapped data key with the recipient's private key and the recording's exact header.

    Raises ``KeyEntryMismatchError`` when it does not authenticate (header or entry altered, or an
    entry made for another key).
    """
    try:
        data_key = hpke_open_base(
            private_key, wrapped.encapsulated_key, wrapped.sealed_key, info=wrap_info(header), aad=b""
        )
    except (InvalidTag, ValueError) as exc:
        raise KeyEntryMismatchError(
            f"the wrapped data key of recording {wrapped.recording_id} for key {wrapped.recipient_key_id} "
            "does not authenticate against this header: the header or the key entry was altered"
        ) from exc
    return data_key


# --------------------------------------------------------------------------------------------------
# Segment sealing


def segment_nonce(counter: int) -> bytes:
    """The 96-bit nonce of segment ``counter``: 32 zero bits, then the counter as a big-endian uint64."""
    if not 0 <= counter <= _MAX_COUNTER:
        raise ValueError(f"segment counter out of range: {counter}")
    return _NONCE_PREFIX + counter.to_bytes(8, "big")


def _segment_key(data_key: bytes) -> bytes:
    if len(data_key) != DATA_KEY_BYTES:
        raise ValueError(f"data key must be {DATA_KEY_BYTES} bytes")
    return HKDF(algorithm=hashes.SHA256(), length=DATA_KEY_BYTES, salt=None, info=SEGMENT_KEY_INFO).derive(
        data_key
    )


class SegmentSealer:
    """Seals the segments of one recording. It offers no way to open them or to read its key back."""

    __slots__ = ("_aead",)

    def __init__(self, data_key: bytes) -> None:
        self._aead = ChaCha20Poly1305(_segment_key(data_key))

    def seal(self, counter: int, plaintext: bytes, aad: bytes) -> bytes:
        """Return ciphertext || 16-byte tag of segment ``counter``; seal each counter at most once."""
        return self._aead.encrypt(segment_nonce(counter), plaintext, aad)


class SegmentOpener:
    """Opens the segments of one recording (reader side)."""

    __slots__ = ("_aead",)

    def __init__(self, data_key: bytes) -> None:
        self._aead = ChaCha20Poly1305(_segment_key(data_key))

    def open(self, counter: int, ciphertext: bytes, aad: bytes) -> bytes:
        """Return the plaintext; raises ``InvalidTag`` if anything sealed or bound differs."""
        return self._aead.decrypt(segment_nonce(counter), ciphertext, aad)
