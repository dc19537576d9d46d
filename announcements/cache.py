"""The on-disk cache of prepared prompt audio, keyed by the SHA-256 of the source file.

Layout, under the cache directory::

    v<FORMAT_VERSION>/<source sha256>/pcmu.bin     160-byte µ-law frames, back to back
                                      pcma.bin     160-byte A-law frames
                                      g722.bin     160-byte G.722 frames (64 kbit/s, 16 kHz audio)
                                      meta.json    format version, frame count, duration, file hashes

The key is the content of the source, not its name: renaming a file costs nothing, and two prompts
with the same audio share an entry. Every file is written to a temporary name, flushed and then
renamed into place (``os.replace``); ``meta.json`` is written last and names the SHA-256 of every
frame file, so a reader accepts an entry only when it is complete and intact. Anything else is a
miss and the prompt is prepared again. `FORMAT_VERSION` changes whenever the preparation
(resampling, level target, frame format) changes, so old entries are never reused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from announcements.frames import CODECS, FRAME_BYTES, Codec

__all__ = ["FORMAT_VERSION", "FRAME_FILES", "META_FILE", "entry_dir", "read_entry", "write_entry"]

FORMAT_VERSION: Final = 2
FRAME_FILES: Final[Mapping[Codec, str]] = MappingProxyType(
    {"pcmu": "pcmu.bin", "pcma": "pcma.bin", "g722": "g722.bin"}
)
META_FILE: Final = "meta.json"


def entry_dir(cache_dir: Path, source_sha256: str) -> Path:
    """Where the entry for a source with this SHA-256 (hex) lives."""
    return cache_dir / f"v{FORMAT_VERSION}" / source_sha256


def _write_atomic(path: Path, data: bytes) -> None:
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def write_entry(
    cache_dir: Path,
    *,
    source_sha256: str,
    duration_ms: int,
    frames: Mapping[Codec, tuple[bytes, ...]],
    details: Mapping[str, Any],
) -> None:
    """Store prepared frames for a source; ``details`` (JSON-able) go into meta.json for diagnosis.

    Raises `OSError` when the cache cannot be written.
    """
    directory = entry_dir(cache_dir, source_sha256)
    directory.mkdir(parents=True, exist_ok=True)
    files: dict[str, dict[str, str]] = {}
    for codec in CODECS:
        data = b"".join(frames[codec])
        _write_atomic(directory / FRAME_FILES[codec], data)
        files[codec] = {"file": FRAME_FILES[codec], "sha256": hashlib.sha256(data).hexdigest()}
    meta = {
        "format_version": FORMAT_VERSION,
        "source_sha256": source_sha256,
        "duration_ms": duration_ms,
        "frame_count": len(frames["pcmu"]),
        "files": files,
        "details": dict(details),
    }
    _write_atomic(directory / META_FILE, json.dumps(meta, indent=2, sort_keys=True).encode("utf-8"))


def _frames_of(data: bytes, codec: Codec, count: int) -> tuple[bytes, ...] | None:
    size = FRAME_BYTES[codec]
    if len(data) != count * size:
        return None
    return tuple(data[start : start + size] for start in range(0, len(data), size))


def read_entry(cache_dir: Path, source_sha256: str) -> tuple[int, dict[Codec, tuple[bytes, ...]]] | None:
    """``(duration_ms, frames)`` of a complete, intact entry, or None (a miss)."""
    directory = entry_dir(cache_dir, source_sha256)
    try:
        meta = json.loads((directory / META_FILE).read_bytes())
        if meta["format_version"] != FORMAT_VERSION or meta["source_sha256"] != source_sha256:
            return None
        count, duration_ms = meta["frame_count"], meta["duration_ms"]
        if not isinstance(count, int) or not isinstance(duration_ms, int) or count < 1:
            return None
        frames: dict[Codec, tuple[bytes, ...]] = {}
        for codec in CODECS:
            described = meta["files"][codec]
            data = (directory / FRAME_FILES[codec]).read_bytes()
            split = _frames_of(data, codec, count)
            if split is None or hashlib.sha256(data).hexdigest() != described["sha256"]:
                return None
            frames[codec] = split
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return duration_ms, frames
