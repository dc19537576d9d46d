"""Making a file's directory entry durable: after a file is created, renamed or removed, its
directory is fsynced too, or a power cut may lose the entry although the file's data is on disk."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fsync_directory"]


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    """Flush ``directory``'s entries (files made, renamed or removed in it) to the disk."""
    fd = os.open(Path(directory), os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
