"""The announcements package's one exception.

An `AnnouncementError` says what is wrong and, where known, with which prompt (id and language)
and which source file, so ``check-config`` can print it as it is.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["AnnouncementError"]


class AnnouncementError(ValueError):
    """A prompt set, source file or codec request that cannot be used.

    ``str()`` reads ``announcement 'welcome' (nl): /srv/prompts/welcome.mp3: file not found``; the
    parts that are not known are left out. The parts are also kept as attributes.
    """

    def __init__(
        self,
        reason: str,
        *,
        prompt_id: str | None = None,
        language: str | None = None,
        source: Path | None = None,
    ) -> None:
        self.reason = reason
        self.prompt_id = prompt_id
        self.language = language
        self.source = source
        super().__init__(self._describe())

    def _describe(self) -> str:
        parts: list[str] = []
        if self.prompt_id is not None:
            who = f"announcement {self.prompt_id!r}"
            parts.append(who if self.language is None else f"{who} ({self.language})")
        if self.source is not None:
            parts.append(str(self.source))
        parts.append(self.reason)
        return ": ".join(parts)

    def about(
        self, *, prompt_id: str | None = None, language: str | None = None, source: Path | None = None
    ) -> AnnouncementError:
        """The same reason with the missing context filled in (parts already set are kept)."""
        return AnnouncementError(
            self.reason,
            prompt_id=self.prompt_id if self.prompt_id is not None else prompt_id,
            language=self.language if self.language is not None else language,
            source=self.source if self.source is not None else source,
        )
