"""Importing prompt audio: source file -> normalised 8 and 16 kHz renditions -> cached frames.

`load_prompt` prepares one file; `PromptLibrary` prepares whole prompt sets and keeps the result
for the calls to play. Both do blocking file and subprocess work: run them at start-up, on reload
or in a worker thread, never on the event loop.

Preparing a source:

1. check the file (exists, regular, not empty, at most `MAX_SOURCE_BYTES`) and hash its bytes
   (SHA-256, the prompt's version);
2. if the cache holds an intact entry for that hash, use it: no decoding;
3. otherwise decode it twice with the `Decoder` (ffmpeg): mono 8 kHz and mono 16 kHz;
   reject it when it holds no audio or more than ``max_duration_s``;
4. normalise each rendition's level (`announcements.levels`), encode 20 ms frames per codec
   (`announcements.frames`) and store them in the cache (`announcements.cache`).

Every failure is an `AnnouncementError` naming the prompt id, language and file.
"""

from __future__ import annotations

import hashlib
import logging
import math
import stat
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Final

from announcements import cache
from announcements.decode import Decoder, FfmpegDecoder
from announcements.errors import AnnouncementError
from announcements.frames import FRAME_MS, NARROWBAND_RATE_HZ, WIDEBAND_RATE_HZ, Codec, encode_frames
from announcements.levels import normalise
from announcements.prompts import PreparedPrompt, Prompt, PromptSet

__all__ = ["MAX_DURATION_S", "MAX_SOURCE_BYTES", "PromptLibrary", "load_prompt"]

MAX_DURATION_S: Final = 600.0
MAX_SOURCE_BYTES: Final = 256 * 1024 * 1024

_log = logging.getLogger(__name__)


def _read_source(source: Path) -> bytes:
    try:
        status = source.stat()
    except FileNotFoundError as exc:
        raise AnnouncementError("file not found") from exc
    except OSError as exc:
        raise AnnouncementError(f"cannot access file: {exc.strerror}") from exc
    if not stat.S_ISREG(status.st_mode):
        raise AnnouncementError("not a regular file")
    if status.st_size == 0:
        raise AnnouncementError("file is empty")
    if status.st_size > MAX_SOURCE_BYTES:
        raise AnnouncementError(f"file is larger than {MAX_SOURCE_BYTES // (1024 * 1024)} MiB")
    try:
        return source.read_bytes()
    except OSError as exc:
        raise AnnouncementError(f"cannot read file: {exc.strerror}") from exc


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _prepared(
    *,
    prompt_id: str,
    language: str,
    source: Path,
    text: str | None,
    source_sha256: str,
    duration_ms: int,
    frames: Mapping[Codec, tuple[bytes, ...]],
) -> PreparedPrompt:
    return PreparedPrompt(
        id=prompt_id,
        language=language,
        version=source_sha256,
        source_sha256=source_sha256,
        source=source,
        text=text,
        duration_ms=duration_ms,
        frames=MappingProxyType(dict(frames)),
        audio_sha256=MappingProxyType({codec: _sha256(b"".join(seq)) for codec, seq in frames.items()}),
    )


def _decode_and_encode(
    source: Path, *, decoder: Decoder, max_duration_s: float
) -> tuple[int, dict[Codec, tuple[bytes, ...]], dict[str, object]]:
    # Decode a frame beyond the limit, so "too long" is told apart from "exactly the limit".
    stop_after_s = max_duration_s + FRAME_MS / 1000
    narrow = decoder(source, sample_rate_hz=NARROWBAND_RATE_HZ, stop_after_s=stop_after_s)
    if narrow.shape[0] == 0:
        raise AnnouncementError("contains no audio (0 ms)")
    if narrow.shape[0] > max_duration_s * NARROWBAND_RATE_HZ:
        raise AnnouncementError(f"audio is longer than {max_duration_s:g} s")
    wide = decoder(source, sample_rate_hz=WIDEBAND_RATE_HZ, stop_after_s=stop_after_s)
    if wide.shape[0] == 0:
        raise AnnouncementError("contains no audio (0 ms) at 16 kHz")
    narrow_level = normalise(narrow, NARROWBAND_RATE_HZ)
    wide_level = normalise(wide, WIDEBAND_RATE_HZ)
    duration_ms = round(narrow.shape[0] * 1000 / NARROWBAND_RATE_HZ)
    details: dict[str, object] = {
        f"{name}_{fact}": value
        for name, level in (("8k", narrow_level), ("16k", wide_level))
        for fact, value in (
            ("gain_db", round(level.gain_db, 3)),
            ("active_rms_dbfs", round(level.active_rms_dbfs, 3)),
            ("peak_dbfs", round(level.peak_dbfs, 3) if math.isfinite(level.peak_dbfs) else None),
        )
    }
    return duration_ms, encode_frames(narrow_level.samples, wide_level.samples), details


def load_prompt(
    source: Path,
    *,
    cache_dir: Path,
    prompt_id: str,
    language: str,
    text: str | None = None,
    decoder: Decoder | None = None,
    max_duration_s: float = MAX_DURATION_S,
) -> PreparedPrompt:
    """Prepare one source file, from the cache when it holds this file's content.

    ``decoder`` defaults to `FfmpegDecoder()`; it is called only on a cache miss. A cache that
    cannot be written is logged and otherwise ignored (the prompt is still returned).
    Raises `AnnouncementError` naming ``prompt_id``, ``language`` and ``source`` when the file is
    missing, unreadable, empty, not audio, holds no audio, is silent or is longer than
    ``max_duration_s``.
    """
    try:
        data = _read_source(source)
        source_sha256 = _sha256(data)
        hit = cache.read_entry(cache_dir, source_sha256)
        if hit is not None:
            duration_ms, frames = hit
        else:
            duration_ms, frames, details = _decode_and_encode(
                source, decoder=decoder or FfmpegDecoder(), max_duration_s=max_duration_s
            )
            if _sha256(_read_source(source)) != source_sha256:
                raise AnnouncementError("file changed while it was being imported; try again")
            try:
                cache.write_entry(
                    cache_dir,
                    source_sha256=source_sha256,
                    duration_ms=duration_ms,
                    frames=frames,
                    details=details,
                )
            except OSError as exc:
                _log.warning("announcement cache not written for %s (%s): %s", prompt_id, source, exc)
    except AnnouncementError as exc:
        raise exc.about(prompt_id=prompt_id, language=language, source=source) from exc
    return _prepared(
        prompt_id=prompt_id,
        language=language,
        source=source,
        text=text,
        source_sha256=source_sha256,
        duration_ms=duration_ms,
        frames=frames,
    )


class PromptLibrary:
    """Prepared prompt sets by id, backed by a cache directory.

    `prepare` imports (or loads from the cache) every language of a set and then replaces the
    set's entry in one step, so a reload never leaves a set half old and half new. Not safe for
    concurrent `prepare` calls; lookups (`get`) may run alongside one.
    """

    def __init__(
        self, cache_dir: Path, *, decoder: Decoder | None = None, max_duration_s: float = MAX_DURATION_S
    ) -> None:
        self.cache_dir = cache_dir
        self._decoder = decoder
        self._max_duration_s = max_duration_s
        self._sets: dict[str, Mapping[str, PreparedPrompt]] = {}

    def _load(self, prompt_set: PromptSet, prompt: Prompt) -> PreparedPrompt:
        return load_prompt(
            prompt.source,
            cache_dir=self.cache_dir,
            prompt_id=prompt_set.id,
            language=prompt.language,
            text=prompt.text,
            decoder=self._decoder,
            max_duration_s=self._max_duration_s,
        )

    def prepare(self, prompt_set: PromptSet) -> Mapping[str, PreparedPrompt]:
        """Every language of ``prompt_set``, prepared and kept under the set's id.

        Raises the first `AnnouncementError`; the library then keeps what it had for that id.
        """
        prepared = MappingProxyType(
            {prompt.language: self._load(prompt_set, prompt) for prompt in prompt_set.prompts}
        )
        self._sets[prompt_set.id] = prepared
        return prepared

    def check(self, prompt_set: PromptSet) -> tuple[AnnouncementError, ...]:
        """Every problem with ``prompt_set``'s files (empty when all prepare); keeps nothing."""
        problems: list[AnnouncementError] = []
        for prompt in prompt_set.prompts:
            try:
                self._load(prompt_set, prompt)
            except AnnouncementError as exc:
                problems.append(exc)
        return tuple(problems)

    @property
    def prompt_ids(self) -> tuple[str, ...]:
        """The ids of the prepared sets, sorted."""
        return tuple(sorted(self._sets))

    def get(self, prompt_id: str, language: str) -> PreparedPrompt:
        """A prepared prompt; raises `AnnouncementError` when the set or the language is not there."""
        languages = self._sets.get(prompt_id)
        if languages is None:
            raise AnnouncementError("not prepared", prompt_id=prompt_id)
        prompt = languages.get(language)
        if prompt is None:
            raise AnnouncementError(f"no prompt in language {language!r}", prompt_id=prompt_id)
        return prompt
