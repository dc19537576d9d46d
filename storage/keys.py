"""Recipient key pairs, passphrase-protected private key files, and the store of wrapped data keys.

Key pairs are X25519. The running proxy is configured with public keys only (a reviewer key and an
escrow key, say); the private key stays with the reviewer tooling, in a file sealed with a passphrase:

* private key file: UTF-8 JSON; the raw private key sealed with ChaCha20-Poly1305 under a key derived
  from the passphrase with scrypt (N = 2**17, r = 8, p = 1 by default, 16-byte random salt). The
  public key and key id are in clear so a file can be identified without its passphrase. A wrong
  passphrase fails authentication and raises ``WrongPassphraseError``.
* public key file: PEM (SubjectPublicKeyInfo, readable by ``openssl pkey -pubin``) after one comment
  line naming the key id; ``parse_public_key`` also accepts the raw key as base64 (43 or 44 chars),
  the handy form for a configuration file.

``KeyStore`` is the port through which recordings' wrapped data keys are kept apart from the audio:
destroying a recording's entry crypto-shreds it, backups of the audio file included.
``MemoryKeyStore`` and ``FileKeyStore`` implement it; the metadata database provides another.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import unicodedata
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from storage.crypto import (
    NONCE_BYTES,
    X25519_KEY_BYTES,
    KeyFileError,
    KeyStoreError,
    WrappedKey,
    WrongPassphraseError,
    key_id,
)
from storage.durable import fsync_directory

__all__ = [
    "PRIVATE_KEY_FORMAT",
    "SCRYPT_LOG2_N_DEFAULT",
    "SCRYPT_LOG2_N_MAX",
    "SCRYPT_LOG2_N_MIN",
    "WRAPPED_KEYS_FORMAT",
    "FileKeyStore",
    "KeyStore",
    "MemoryKeyStore",
    "decode_private_key",
    "encode_private_key",
    "generate_private_key",
    "key_id",
    "load_private_key",
    "load_public_key",
    "parse_public_key",
    "public_key_base64",
    "public_key_pem",
    "save_private_key",
    "save_public_key",
    "wrapped_keys_from_json",
    "wrapped_keys_to_json",
]

PRIVATE_KEY_FORMAT = "callherald-private-key"
WRAPPED_KEYS_FORMAT = "callherald-wrapped-keys"
_FORMAT_VERSION = 1

SCRYPT_LOG2_N_DEFAULT = 17  # 128 MiB with r = 8, about a quarter second
SCRYPT_LOG2_N_MIN = 14
SCRYPT_LOG2_N_MAX = 20
_SCRYPT_R = 8
_SCRYPT_P = 1
_SCRYPT_R_MAX = 16
_SCRYPT_P_MAX = 4
_SALT_BYTES = 16
_PRIVATE_KEY_AAD = b"callherald private key v1"

_PEM_BLOCK = re.compile(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.DOTALL)
_KEY_ID_COMMENT = "# callherald X25519 recording key, key id {}\n"


def generate_private_key() -> X25519PrivateKey:
    """Return a new X25519 private key (the reviewer's or the escrow officer's)."""
    return X25519PrivateKey.generate()


def _raw_public(public_key: X25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object, what: str, length: int | None = None) -> bytes:
    if not isinstance(text, str):
        raise KeyFileError(f"{what}: expected a base64 string")
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise KeyFileError(f"{what}: not valid base64") from exc
    if length is not None and len(data) != length:
        raise KeyFileError(f"{what}: expected {length} bytes, got {len(data)}")
    return data


def _passphrase_bytes(passphrase: str | bytes) -> bytes:
    # NFC so the same passphrase typed on systems that compose differently gives the same bytes.
    data = passphrase if isinstance(passphrase, bytes) else unicodedata.normalize("NFC", passphrase).encode()
    if not data:
        raise ValueError("the passphrase must not be empty")
    return data


def _scrypt(passphrase: bytes, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=1 << log2_n, r=r, p=p).derive(passphrase)


# --------------------------------------------------------------------------------------------------
# Private key files


def encode_private_key(
    private_key: X25519PrivateKey, passphrase: str | bytes, *, scrypt_log2_n: int = SCRYPT_LOG2_N_DEFAULT
) -> bytes:
    """Return the private key file contents (UTF-8 JSON) sealing ``private_key`` under ``passphrase``."""
    if not SCRYPT_LOG2_N_MIN <= scrypt_log2_n <= SCRYPT_LOG2_N_MAX:
        raise ValueError(f"scrypt_log2_n must be in {SCRYPT_LOG2_N_MIN}..{SCRYPT_LOG2_N_MAX}")
    public = _raw_public(private_key.public_key())
    salt = os.urandom(_SALT_BYTES)
    nonce = os.urandom(NONCE_BYTES)
    wrapping_key = _scrypt(_passphrase_bytes(passphrase), salt, scrypt_log2_n, _SCRYPT_R, _SCRYPT_P)
    raw = private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    sealed = ChaCha20Poly1305(wrapping_key).encrypt(nonce, raw, _PRIVATE_KEY_AAD + public)
    document = {
        "format": PRIVATE_KEY_FORMAT,
        "version": _FORMAT_VERSION,
        "algorithm": "X25519",
        "key_id": key_id(private_key.public_key()),
        "public_key": _b64(public),
        "kdf": {
            "name": "scrypt",
            "log2_n": scrypt_log2_n,
            "r": _SCRYPT_R,
            "p": _SCRYPT_P,
            "salt": _b64(salt),
        },
        "aead": "ChaCha20-Poly1305",
        "nonce": _b64(nonce),
        "ciphertext": _b64(sealed),
    }
    return (json.dumps(document, indent=2) + "\n").encode()


def _field(document: dict[str, Any], name: str, kind: type) -> Any:
    value = document.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise KeyFileError(f"{name}: missing or not a {kind.__name__}")
    return value


def _bounded(kdf: dict[str, Any], name: str, low: int, high: int) -> int:
    value: int = _field(kdf, name, int)
    if not low <= value <= high:
        raise KeyFileError(f"kdf.{name}: {value} is outside {low}..{high}")
    return value


def decode_private_key(
    data: bytes, passphrase: str | bytes, *, source: str = "private key"
) -> X25519PrivateKey:
    """Open private key file contents with ``passphrase``.

    Raises ``WrongPassphraseError`` when the passphrase does not open it, ``KeyFileError`` when the
    contents are malformed, use KDF parameters outside the accepted bounds, or are inconsistent.
    ``source`` names the file in messages.
    """
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KeyFileError(f"{source}: not a callherald private key file (not JSON)") from exc
    if not isinstance(document, dict) or document.get("format") != PRIVATE_KEY_FORMAT:
        raise KeyFileError(
            f"{source}: not a callherald private key file (format is not {PRIVATE_KEY_FORMAT!r})"
        )
    try:
        if _field(document, "version", int) != _FORMAT_VERSION:
            raise KeyFileError(f"version {document['version']} is not supported (expected {_FORMAT_VERSION})")
        if document.get("algorithm") != "X25519" or document.get("aead") != "ChaCha20-Poly1305":
            raise KeyFileError("algorithm must be X25519 and aead ChaCha20-Poly1305")
        kdf = _field(document, "kdf", dict)
        if kdf.get("name") != "scrypt":
            raise KeyFileError("kdf.name must be scrypt")
        log2_n = _bounded(kdf, "log2_n", SCRYPT_LOG2_N_MIN, SCRYPT_LOG2_N_MAX)
        r = _bounded(kdf, "r", 1, _SCRYPT_R_MAX)
        p = _bounded(kdf, "p", 1, _SCRYPT_P_MAX)
        salt = _unb64(kdf.get("salt"), "kdf.salt", _SALT_BYTES)
        public = _unb64(document.get("public_key"), "public_key", X25519_KEY_BYTES)
        nonce = _unb64(document.get("nonce"), "nonce", NONCE_BYTES)
        sealed = _unb64(document.get("ciphertext"), "ciphertext", X25519_KEY_BYTES + 16)
        stated_id = _field(document, "key_id", str)
    except KeyFileError as exc:
        raise KeyFileError(f"{source}: {exc}") from exc
    wrapping_key = _scrypt(_passphrase_bytes(passphrase), salt, log2_n, r, p)
    try:
        raw = ChaCha20Poly1305(wrapping_key).decrypt(nonce, sealed, _PRIVATE_KEY_AAD + public)
    except InvalidTag:
        raise WrongPassphraseError(
            f"{source}: wrong passphrase for private key {stated_id} (or the file was altered)"
        ) from None
    private_key = X25519PrivateKey.from_private_bytes(raw)
    if _raw_public(private_key.public_key()) != public or key_id(private_key.public_key()) != stated_id:
        raise KeyFileError(f"{source}: the private key does not match the public key or key id in the file")
    return private_key


def save_private_key(
    path: str | os.PathLike[str],
    private_key: X25519PrivateKey,
    passphrase: str | bytes,
    *,
    scrypt_log2_n: int = SCRYPT_LOG2_N_DEFAULT,
) -> None:
    """Write a new private key file, mode 0600. Refuses to overwrite (``FileExistsError``)."""
    data = encode_private_key(private_key, passphrase, scrypt_log2_n=scrypt_log2_n)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def load_private_key(path: str | os.PathLike[str], passphrase: str | bytes) -> X25519PrivateKey:
    """Read and open a private key file; errors as ``decode_private_key``, naming the file."""
    return decode_private_key(Path(path).read_bytes(), passphrase, source=os.fspath(path))


# --------------------------------------------------------------------------------------------------
# Public keys


def public_key_pem(public_key: X25519PublicKey) -> str:
    """Return a comment line with the key id, then the key as PEM SubjectPublicKeyInfo."""
    pem = public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode("ascii")
    return _KEY_ID_COMMENT.format(key_id(public_key)) + pem


def public_key_base64(public_key: X25519PublicKey) -> str:
    """Return the raw 32-byte public key as standard base64 (44 characters)."""
    return _b64(_raw_public(public_key))


def parse_public_key(text: str | bytes) -> X25519PublicKey:
    """Parse an X25519 public key given as PEM (text around the block is ignored) or raw base64.

    Raises ``KeyFileError`` for anything else, including PEM keys of another algorithm.
    """
    data = text.encode("ascii", "replace") if isinstance(text, str) else text
    block = _PEM_BLOCK.search(data)
    if block is not None:
        try:
            key = serialization.load_pem_public_key(block.group(0))
        except ValueError as exc:
            raise KeyFileError("malformed PEM public key") from exc
        if not isinstance(key, X25519PublicKey):
            raise KeyFileError(f"expected an X25519 public key, got {type(key).__name__}")
        return key
    stripped = data.strip()
    if len(stripped) == 43:  # unpadded
        stripped += b"="
    try:
        raw = base64.b64decode(stripped, validate=True)
    except binascii.Error as exc:
        raise KeyFileError("a public key must be PEM or the raw 32-byte key in base64") from exc
    if len(raw) != X25519_KEY_BYTES:
        raise KeyFileError(f"a raw X25519 public key is {X25519_KEY_BYTES} bytes, got {len(raw)}")
    return X25519PublicKey.from_public_bytes(raw)


def save_public_key(path: str | os.PathLike[str], public_key: X25519PublicKey) -> None:
    """Write ``public_key_pem(public_key)`` to ``path`` (overwrites), mode 0644: a public key is not
    secret, but whoever can change the one a proxy wraps for can read what it records."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.fchmod(fd, 0o644)  # whatever the umask, or the mode of a file written over
        os.write(fd, public_key_pem(public_key).encode("ascii"))
    finally:
        os.close(fd)


def load_public_key(path: str | os.PathLike[str]) -> X25519PublicKey:
    """Read a public key file (PEM or raw base64); ``KeyFileError`` names the file on failure."""
    try:
        return parse_public_key(Path(path).read_bytes())
    except KeyFileError as exc:
        raise KeyFileError(f"{os.fspath(path)}: {exc}") from exc


# --------------------------------------------------------------------------------------------------
# Wrapped key store


class KeyStore(Protocol):
    """Keeps recordings' wrapped data keys, apart from the audio files.

    Contract: ``put`` stores the entries of a recording once (a second ``put`` for the same id
    raises ``KeyStoreError``: keys are never replaced); ``get`` returns the entries as stored, or an
    empty tuple if there are none (never stored, or destroyed); ``destroy`` removes them for good
    and returns whether there was anything to remove.
    """

    def put(self, recording_id: uuid.UUID, entries: Sequence[WrappedKey]) -> None: ...

    def get(self, recording_id: uuid.UUID) -> tuple[WrappedKey, ...]: ...

    def destroy(self, recording_id: uuid.UUID) -> bool: ...


class MemoryKeyStore:
    """A ``KeyStore`` in a dict, for tests and short-lived tools."""

    def __init__(self) -> None:
        self._entries: dict[uuid.UUID, tuple[WrappedKey, ...]] = {}

    def put(self, recording_id: uuid.UUID, entries: Sequence[WrappedKey]) -> None:
        if recording_id in self._entries:
            raise KeyStoreError(f"wrapped keys for recording {recording_id} are already stored")
        self._entries[recording_id] = tuple(entries)

    def get(self, recording_id: uuid.UUID) -> tuple[WrappedKey, ...]:
        return self._entries.get(recording_id, ())

    def destroy(self, recording_id: uuid.UUID) -> bool:
        return self._entries.pop(recording_id, None) is not None


def wrapped_keys_to_json(recording_id: uuid.UUID, entries: Sequence[WrappedKey]) -> bytes:
    """Serialise a recording's wrapped keys to the ``FileKeyStore`` document (UTF-8 JSON)."""
    document = {
        "format": WRAPPED_KEYS_FORMAT,
        "version": _FORMAT_VERSION,
        "recording_id": str(recording_id),
        "entries": [
            {
                "recording_id": str(entry.recording_id),
                "recipient_key_id": entry.recipient_key_id,
                "encapsulated_key": _b64(entry.encapsulated_key),
                "sealed_key": _b64(entry.sealed_key),
            }
            for entry in entries
        ],
    }
    return (json.dumps(document, indent=2) + "\n").encode()


def wrapped_keys_from_json(data: bytes) -> tuple[WrappedKey, ...]:
    """Parse a ``FileKeyStore`` document; ``KeyStoreError`` if malformed.

    The entries are returned as stored, each with its own recording id; the reader checks that it
    matches the recording it opens.
    """
    try:
        document = json.loads(data.decode("utf-8"))
        if document.get("format") != WRAPPED_KEYS_FORMAT or document.get("version") != _FORMAT_VERSION:
            raise KeyStoreError(f"not a {WRAPPED_KEYS_FORMAT} version {_FORMAT_VERSION} document")
        return tuple(
            WrappedKey(
                recording_id=uuid.UUID(item["recording_id"]),
                recipient_key_id=item["recipient_key_id"],
                encapsulated_key=_unb64(item["encapsulated_key"], "encapsulated_key"),
                sealed_key=_unb64(item["sealed_key"], "sealed_key"),
            )
            for item in document["entries"]
        )
    except KeyStoreError:
        raise
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        # json.JSONDecodeError, KeyFileError and a bad UUID are ValueErrors
        raise KeyStoreError(f"malformed wrapped-key document: {exc}") from exc


class FileKeyStore:
    """A ``KeyStore`` with one JSON file per recording (``<recording id>.keys.json``) in ``directory``.

    Files are mode 0600 and created atomically (written to a temporary name, fsynced, then linked
    into place, so a second ``put`` cannot replace existing keys). ``destroy`` overwrites the file
    with zeros, fsyncs and unlinks it. Overwriting cannot reach old copies on copy-on-write file
    systems, SSD remapping or snapshots: put this directory where deletion is real, and keep it out
    of the backups that hold the audio.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _path(self, recording_id: uuid.UUID) -> Path:
        return self.directory / f"{recording_id}.keys.json"

    def put(self, recording_id: uuid.UUID, entries: Sequence[WrappedKey]) -> None:
        target = self._path(recording_id)
        temporary = self.directory / f".{recording_id}.{os.getpid()}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            try:
                os.write(fd, wrapped_keys_to_json(recording_id, entries))
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(temporary, target)
            except FileExistsError:
                raise KeyStoreError(f"wrapped keys for recording {recording_id} are already stored") from None
        finally:
            temporary.unlink(missing_ok=True)
        fsync_directory(self.directory)

    def get(self, recording_id: uuid.UUID) -> tuple[WrappedKey, ...]:
        try:
            data = self._path(recording_id).read_bytes()
        except FileNotFoundError:
            return ()
        return wrapped_keys_from_json(data)

    def destroy(self, recording_id: uuid.UUID) -> bool:
        path = self._path(recording_id)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            os.write(fd, bytes(os.fstat(fd).st_size))
            os.fsync(fd)
        finally:
            os.close(fd)
        path.unlink()
        fsync_directory(self.directory)
        return True
