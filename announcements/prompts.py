"""Prompt sets (what an administrator configures) and prepared prompts (what a call plays).

A `PromptSet` is one announcement in several languages: an ``id`` and, per language, a `Prompt`
naming a source audio file in any format ffmpeg reads, with the spoken text for documentation.
A `PreparedPrompt` is one language of a set after import: 20 ms frames per codec plus the facts
the consent-and-purpose record needs (id, language, version, SHA-256 of the source and of the
audio played).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from announcements.errors import AnnouncementError
from announcements.frames import CODECS, FRAME_MS, Codec, check_codec, loop_frames

__all__ = ["PreparedPrompt", "Prompt", "PromptSet"]

_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# A language tag as in BCP 47, reduced to what prompt selection needs: "nl", "en", "en-GB", "nl-BE".
_LANGUAGE: Final = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{1,8})*")


def _check_language(language: object, *, prompt_id: str | None) -> str:
    if not isinstance(language, str) or not _LANGUAGE.fullmatch(language):
        raise AnnouncementError(
            f"language {language!r} is not a language tag such as 'nl' or 'en-GB'", prompt_id=prompt_id
        )
    return language


@dataclass(frozen=True, slots=True, kw_only=True)
class Prompt:
    """One language of a prompt set: its source audio file and, for documentation, its text."""

    language: str
    source: Path
    text: str | None = None

    def __post_init__(self) -> None:
        _check_language(self.language, prompt_id=None)
        if not isinstance(self.source, Path):
            raise AnnouncementError(f"source must be a Path, not {type(self.source).__name__}")


@dataclass(frozen=True, slots=True, kw_only=True)
class PromptSet:
    """An announcement (or a consent question) in one or more languages.

    ``id`` is 1-64 characters of letters, digits, ``.``, ``_`` and ``-``, starting with a letter
    or digit; every language appears once. Raises `AnnouncementError` otherwise.
    """

    id: str
    prompts: tuple[Prompt, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _ID.fullmatch(self.id):
            raise AnnouncementError(
                f"prompt set id {self.id!r} must be 1-64 letters, digits, '.', '_' or '-'"
            )
        if not self.prompts:
            raise AnnouncementError("a prompt set needs at least one language", prompt_id=self.id)
        seen: set[str] = set()
        for prompt in self.prompts:
            if prompt.language in seen:
                raise AnnouncementError(f"language {prompt.language!r} appears twice", prompt_id=self.id)
            seen.add(prompt.language)

    @property
    def languages(self) -> tuple[str, ...]:
        """The languages, in the order given."""
        return tuple(prompt.language for prompt in self.prompts)

    def prompt(self, language: str) -> Prompt:
        """The prompt for ``language``; raises `AnnouncementError` when the set does not have it."""
        for prompt in self.prompts:
            if prompt.language == language:
                return prompt
        raise AnnouncementError(f"no prompt in language {language!r}", prompt_id=self.id)

    @classmethod
    def from_mapping(cls, data: Mapping[str, object], *, base_dir: Path) -> PromptSet:
        """A prompt set from plain data, relative file names resolved against ``base_dir``.

        The shape (as it would be written in YAML)::

            id: welcome
            prompts:
              nl: {file: prompts/welkom.mp3, text: "Dit gesprek wordt opgenomen ..."}
              en: prompts/welcome.wav          # a bare file name when there is no text

        Raises `AnnouncementError` naming the key that is wrong.
        """
        prompt_id = data.get("id")
        if not isinstance(prompt_id, str):
            raise AnnouncementError(f"id: expected a string, got {type(prompt_id).__name__}")
        unknown = sorted(set(data) - {"id", "prompts"})
        if unknown:
            raise AnnouncementError(f"unknown key {unknown[0]!r}", prompt_id=prompt_id)
        languages = data.get("prompts")
        if not isinstance(languages, Mapping):
            raise AnnouncementError("prompts: expected a mapping of language to file", prompt_id=prompt_id)
        prompts: list[Prompt] = []
        for language, entry in languages.items():
            _check_language(language, prompt_id=prompt_id)
            key = f"prompts.{language}"
            text: object = None
            if isinstance(entry, Mapping):
                extra = sorted(set(entry) - {"file", "text"})
                if extra:
                    raise AnnouncementError(f"{key}: unknown key {extra[0]!r}", prompt_id=prompt_id)
                file, text = entry.get("file"), entry.get("text")
            else:
                file = entry
            if not isinstance(file, str) or not file:
                raise AnnouncementError(f"{key}.file: expected a file name", prompt_id=prompt_id)
            if text is not None and not isinstance(text, str):
                raise AnnouncementError(f"{key}.text: expected a string", prompt_id=prompt_id)
            prompts.append(Prompt(language=language, source=base_dir / Path(file), text=text))
        return cls(id=prompt_id, prompts=tuple(prompts))


@dataclass(frozen=True, slots=True, kw_only=True)
class PreparedPrompt:
    """One language of a prompt set, ready to play.

    ``frames`` holds, for every codec in `announcements.frames.CODECS`, the same audio as 20 ms
    frames (all codecs have the same number of frames). ``version`` is the SHA-256 (hex) of the
    source file's bytes, equal to ``source_sha256``: a changed file is a new version.
    ``audio_sha256`` is, per codec, the SHA-256 of the frames back to back: the audio actually
    played, for the evidence record.
    """

    id: str
    language: str
    version: str
    source_sha256: str
    source: Path
    text: str | None
    duration_ms: int
    """The length of the audio before padding to whole frames."""
    frames: Mapping[Codec, tuple[bytes, ...]] = field(repr=False)
    audio_sha256: Mapping[Codec, str] = field(repr=False)

    @property
    def frame_count(self) -> int:
        """Frames per codec (each ``FRAME_MS`` long)."""
        return len(self.frames[CODECS[0]])

    @property
    def played_ms(self) -> int:
        """How long playing every frame takes (``duration_ms`` rounded up to whole frames)."""
        return self.frame_count * FRAME_MS

    def frames_for(self, codec: str) -> tuple[bytes, ...]:
        """The frames for ``codec``; raises `AnnouncementError` for an unknown codec."""
        return self.frames[check_codec(codec)]

    def iter_frames(self, codec: str, *, loop: bool = False) -> Iterator[bytes]:
        """The frames for ``codec`` once, or repeated without end when ``loop``."""
        return loop_frames(self.frames_for(codec), loop=loop)
