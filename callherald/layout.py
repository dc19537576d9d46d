"""Where callherald keeps its data under the configured ``data_dir``.

::

    data_dir/                    made mode 0700
      evidence.sqlite            the consent-and-purpose record and the wrapped data keys (WAL;
                                 it and its -wal and -shm files mode 0600)
      evidence-held-*.jsonl      evidence a stop on a full disk could not write into the database,
                                 named by that database's id, written into it by the next start
                                 (mode 0600)
      recordings/<uuid>.chrec    encrypted recordings (docs/recording-format.md)
      keys/development.key       the development key pair of the embedded default, made on first
      keys/development.pub       start, with its passphrase in development.passphrase (mode 0600)
      keys/development.passphrase
      keys/manifest-signing.key  the key that signs each recording's manifest (Ed25519, mode 0600;
      keys/manifest-signing.pub  storage.signing), made on first start unless configured elsewhere
      announcements-cache/       imported prompt frames
      control.sock               the operator's control socket while callherald runs (mode 0600)
      serve.lock                 the PID of the running callherald, which locks data_dir itself (mode 0600)

The development key exists so that an out-of-the-box set-up can export its recordings without a
passphrase prompt. Its passphrase lies next to it, so it protects nothing: real set-ups configure
``recording.recipients`` with public keys whose private halves are kept elsewhere.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import secrets
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from storage.crypto import FULL_DISK_ERRNOS
from storage.keys import (
    SCRYPT_LOG2_N_MIN,
    generate_private_key,
    load_public_key,
    public_key_pem,
    save_private_key,
)

_LOG = logging.getLogger("callherald")

__all__ = [
    "DataDirInUseError",
    "DataDirLockFileError",
    "DataLayout",
    "DevelopmentKey",
    "ensure_development_key",
    "own_data_dir",
]

_RECORDING_SUFFIX = ".chrec"
_PID_READS = 10  # the holder writes its PID just after it takes the lock: a moment to wait for it
_PID_READ_PAUSE_S = 0.02


@dataclass(frozen=True, slots=True)
class DataLayout:
    """The paths under one data directory."""

    root: Path

    def make_root(self) -> None:
        """Create the data directory, mode 0700 (it holds personal data); one that exists keeps
        its mode, as its administrator set it."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)

    @property
    def evidence_db(self) -> Path:
        return self.root / "evidence.sqlite"

    @property
    def recordings_dir(self) -> Path:
        return self.root / "recordings"

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    @property
    def announcements_cache(self) -> Path:
        return self.root / "announcements-cache"

    @property
    def control_socket(self) -> Path:
        return self.root / "control.sock"

    @property
    def lock_file(self) -> Path:
        return self.root / "serve.lock"

    def recording_file(self, recording_id: str) -> Path:
        return self.recordings_dir / f"{recording_id}{_RECORDING_SUFFIX}"

    @property
    def manifest_signing_key(self) -> Path:
        return self.keys_dir / "manifest-signing.key"

    @property
    def development_key(self) -> DevelopmentKey:
        keys = self.keys_dir
        return DevelopmentKey(
            private=keys / "development.key",
            public=keys / "development.pub",
            passphrase=keys / "development.passphrase",
        )


@dataclass(frozen=True, slots=True)
class DevelopmentKey:
    private: Path
    public: Path
    passphrase: Path

    def exists(self) -> bool:
        return self.private.exists() and self.public.exists() and self.passphrase.exists()

    def read_passphrase(self) -> str:
        return self.passphrase.read_text(encoding="utf-8").strip()


class DataDirInUseError(Exception):
    """Another process, a running callherald, owns the data directory."""


class DataDirLockFileError(Exception):
    """``serve.lock`` in the data directory is not a file callherald can write its PID in."""


@contextlib.contextmanager
def own_data_dir(layout: DataLayout) -> Iterator[None]:
    """Own the data directory while the block runs: an exclusive lock on the directory itself,
    and this process's PID written in ``serve.lock`` in it. The lock is not on ``serve.lock``: a
    file can be removed (as a "stale" pidfile is) while its lock is held, and the next start would
    then lock a new one; a directory that holds files cannot be. The kernel drops the lock when the
    process ends, however it ends, so a ``kill -9`` leaves none behind; the file stays.

    Raises DataDirInUseError, naming the directory and the PID written by its owner, when another
    process holds it; DataDirLockFileError when ``serve.lock`` is not a regular file (a symbolic
    link is never followed: its target would be overwritten). The directory must exist.
    """
    dir_fd = os.open(layout.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder_pid(layout.lock_file)
            raise DataDirInUseError(
                f"data_dir {layout.root} is in use by another callherald (PID {holder}):"
                " one data directory serves one running callherald"
            ) from None
        try:
            _write_pid(layout.lock_file)
        except OSError as error:
            if error.errno not in FULL_DISK_ERRNOS:
                raise
            # The lock on the directory is what keeps a second callherald out; the PID only names it.
            _LOG.warning(
                "%s: this process's PID is not written: the disk holding it is full", layout.lock_file
            )
        yield
    finally:
        os.close(dir_fd)  # releases the lock


def _write_pid(lock_file: Path) -> None:
    """Write this process's PID in ``lock_file``, made mode 0600 if missing; never through a
    symbolic link."""
    try:
        fd = os.open(lock_file, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise DataDirLockFileError(
                f"{lock_file} is a symbolic link: callherald writes its PID there and does not follow"
                " links; remove the link and start again"
            ) from None
        if error.errno == errno.EISDIR:
            raise DataDirLockFileError(
                f"{lock_file} is a directory: callherald writes its PID in a file there; remove the"
                " directory and start again"
            ) from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise DataDirLockFileError(
                f"{lock_file} is not a regular file: callherald writes its PID there;"
                " remove it and start again"
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    finally:
        os.close(fd)


def _holder_pid(lock_file: Path) -> str:
    """The PID the lock's holder wrote in ``lock_file``, or ``unknown``."""
    for _ in range(_PID_READS):
        try:
            fd = os.open(lock_file, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            fd = -1  # not made yet, or removed: the holder may be about to write it
        if fd >= 0:
            try:
                text = os.pread(fd, 32, 0).decode("ascii", errors="replace").strip()
            except OSError:
                text = ""
            finally:
                os.close(fd)
            if text:
                return text
        time.sleep(_PID_READ_PAUSE_S)
    return "unknown"


def ensure_development_key(layout: DataLayout) -> tuple[X25519PublicKey, bool]:
    """The development public key, made (with its private key and passphrase) if missing.

    Returns the key and whether it was made now. Files are created mode 0600 (the directory 0700).
    """
    key = layout.development_key
    if key.exists():
        return load_public_key(key.public), False
    layout.keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for path in (key.private, key.public, key.passphrase):
        path.unlink(missing_ok=True)  # a half-made pair from an interrupted start
    passphrase = secrets.token_urlsafe(24)
    _write_new(key.passphrase, (passphrase + "\n").encode())
    private_key = generate_private_key()
    # The passphrase lies next to the key, so a costly derivation would protect nothing: the
    # least one spares every first start and every export with this key half a second.
    save_private_key(key.private, private_key, passphrase, scrypt_log2_n=SCRYPT_LOG2_N_MIN)
    _write_new(key.public, public_key_pem(private_key.public_key()).encode("ascii"))
    return private_key.public_key(), True


def _write_new(path: Path, data: bytes) -> None:
    """Create ``path`` mode 0600 (whatever the umask) holding ``data``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
