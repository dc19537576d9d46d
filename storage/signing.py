"""Signed recording manifests: an Ed25519 signature (RFC 8032) on each manifest's audit row.

A manifest (``storage.manifests``) is an audit row, and the row's hash covers the manifest and,
through ``prev_hash``, every row before it. The hash chain alone proves nothing to someone who can
write the database: they can edit the evidence and the manifest and compute every hash again. So
the proxy signs each manifest's row hash as it writes the manifest, in the same transaction (table
``manifest_signatures``: the row's ``seq``, the signing key's id and the signature; UPDATE and
DELETE are refused by triggers). Rewriting the chain then needs the signing key too, and a
verifier holding only the public key (``callherald audit verify --trust``) finds every manifest
from the first one rewritten on (GDPR Art. 5(1)(f), 32(1)(b); MiFID II Del. Reg. 2017/565 Art.
72(1)(b)-(c)).

* Signed bytes: ``SIGNED_PREFIX`` followed by the row's hash (64 lowercase hex digits, ASCII).
* Signature: 64 bytes, base64 (standard alphabet, padded) in the table.
* Key id: the first 16 hex digits of the SHA-256 of the raw 32-byte public key.
* Key files: the private key as PEM PKCS #8 (unencrypted, mode 0600: the proxy signs unattended),
  the public key beside it (``.pub``) as PEM SubjectPublicKeyInfo.

The private key signs only; it decrypts nothing (recordings are encrypted to the recipients' X25519
keys). Keep a copy of the public key away from the machine: a verifier that trusts only the copy on
the machine cannot tell a key swapped in with a rewritten chain.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlite_utils import Database

from storage.audit import AUDIT_ACTION_MANIFEST, AuditEntry
from storage.crypto import StorageError
from storage.durable import fsync_directory

__all__ = [
    "SIGNED_PREFIX",
    "ManifestSigner",
    "SignatureProblem",
    "SignatureReport",
    "ensure_signing_key",
    "load_signing_key",
    "load_verify_key",
    "public_key_path",
    "signing_key_id",
    "verify_manifest_signatures",
    "write_manifest_signature",
]

SIGNED_PREFIX = b"callherald manifest signature v1\n"
"""What a signature covers before the row hash: a signature made for anything else never fits."""


def signing_key_id(public_key: Ed25519PublicKey) -> str:
    """The key id: the first 16 hex digits of the SHA-256 of the raw public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _signed_bytes(row_hash: str) -> bytes:
    return SIGNED_PREFIX + row_hash.encode("ascii")


@dataclass(frozen=True, slots=True)
class ManifestSigner:
    """The proxy's signing key."""

    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def key_id(self) -> str:
        return signing_key_id(self.public_key)

    def sign(self, row_hash: str) -> str:
        """The base64 signature of a manifest's audit row hash."""
        return base64.b64encode(self.private_key.sign(_signed_bytes(row_hash))).decode("ascii")


def public_key_path(private_key_path: Path) -> Path:
    """Where the public half of a signing key file lies: beside it, ``.pub``."""
    return private_key_path.with_suffix(".pub")


def load_signing_key(path: Path) -> ManifestSigner:
    """The signing key in ``path`` (PEM PKCS #8, Ed25519, unencrypted); StorageError if it cannot
    be read or is not one."""
    try:
        data = path.read_bytes()
    except OSError as error:
        reason = error.strerror or error
        raise StorageError(f"{path}: cannot read the manifest signing key: {reason}") from error
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        raise StorageError(f"{path}: not an unencrypted PEM private key: {error}") from error
    if not isinstance(key, Ed25519PrivateKey):
        raise StorageError(f"{path}: the manifest signing key must be an Ed25519 key")
    return ManifestSigner(key)


def ensure_signing_key(path: Path) -> tuple[ManifestSigner, bool]:
    """The signing key in ``path``, made (mode 0600, its public key beside it) when there is none;
    and whether it was made now. OSError when it cannot be written (a full disk)."""
    if path.exists():
        return load_signing_key(path), False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for target, data in ((public_key_path(path), public), (path, private)):  # the private key last
        _write_new(target, data)
    return ManifestSigner(key), True


def _write_new(path: Path, data: bytes) -> None:
    # Written whole (mode 0600) and renamed into place, the directory entry made durable: a crash
    # or power cut leaves the old file or none, never half a key.
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    fsync_directory(path.parent)


def load_verify_key(path: Path) -> Ed25519PublicKey:
    """The public key a verifier trusts, from ``path``: a PEM public key, or the signing key itself
    (its public half is taken). StorageError if it is neither."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise StorageError(f"{path}: cannot read the key: {error.strerror or error}") from error
    key: object
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        try:
            key = serialization.load_pem_private_key(data, password=None).public_key()
        except (ValueError, TypeError, UnsupportedAlgorithm) as error:
            raise StorageError(f"{path}: not a PEM Ed25519 public key: {error}") from error
    if not isinstance(key, Ed25519PublicKey):
        raise StorageError(f"{path}: not an Ed25519 key (manifests are signed with Ed25519)")
    return key


def write_manifest_signature(db: Database, entry: AuditEntry, signer: ManifestSigner) -> None:
    """Sign the manifest in audit row ``entry``; in the transaction that wrote the row."""
    db.execute(
        "INSERT INTO manifest_signatures (seq, key_id, signature) VALUES (?, ?, ?)",
        [entry.seq, signer.key_id, signer.sign(entry.hash)],
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class SignatureProblem:
    """The signature of the manifest in audit row ``seq`` (of recording ``recording_id``; empty for
    a signature that names no manifest row) does not hold: ``problem`` says why."""

    seq: int
    recording_id: str
    problem: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SignatureReport:
    """What ``verify_manifest_signatures`` found: ``signed`` manifests whose signature holds (by
    ``key_ids``), ``unsigned_before`` manifests written before the first signed one (an evidence
    record kept before manifests were signed, or a proxy that could not make its key), and every
    problem."""

    signed: int
    unsigned_before: int
    key_ids: tuple[str, ...] = ()
    problems: tuple[SignatureProblem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_manifest_signatures(db: Database, trusted: Sequence[Ed25519PublicKey]) -> SignatureReport:
    """Check the signature of every manifest row against the ``trusted`` keys.

    A problem: a signature that does not fit its row's hash (the row or the chain before it was
    rewritten), one by a key not trusted, a manifest after the first signed one with no
    signature (one removed), and a signature that names no manifest row. The hashes themselves
    are ``AuditLog.verify``'s to check."""
    keys = {signing_key_id(key): key for key in trusted}
    signatures = {
        seq: (key_id, signature)
        for seq, key_id, signature in db.execute("SELECT seq, key_id, signature FROM manifest_signatures")
    }
    rows = db.execute(
        "SELECT seq, subject, hash FROM audit_log WHERE action = ? ORDER BY seq", [AUDIT_ACTION_MANIFEST]
    ).fetchall()
    problems: list[SignatureProblem] = []
    signed = unsigned_before = 0
    seen_signed = False
    used: set[str] = set()
    for seq, recording_id, row_hash in rows:
        found = signatures.pop(seq, None)
        if found is None:
            if seen_signed:
                problems.append(SignatureProblem(seq=seq, recording_id=recording_id, problem="no signature"))
            else:
                unsigned_before += 1
            continue
        seen_signed = True
        key_id, signature = found
        problem = _signature_problem(keys.get(key_id), key_id, signature, row_hash)
        if problem is None:
            signed += 1
            used.add(key_id)
        else:
            problems.append(SignatureProblem(seq=seq, recording_id=recording_id, problem=problem))
    problems += [
        SignatureProblem(seq=seq, recording_id="", problem="a signature for no manifest row")
        for seq in sorted(signatures)
    ]
    return SignatureReport(
        signed=signed, unsigned_before=unsigned_before, key_ids=tuple(sorted(used)), problems=tuple(problems)
    )


def _signature_problem(
    key: Ed25519PublicKey | None, key_id: str, signature: str, row_hash: str
) -> str | None:
    if key is None:
        return f"signed by key {key_id}, which is not trusted"
    try:
        key.verify(base64.b64decode(signature, validate=True), _signed_bytes(row_hash))
    except (InvalidSignature, ValueError):  # binascii.Error is a ValueError
        return "the signature does not fit the row (the manifest or the chain before it was rewritten)"
    return None
