"""The announcements shipped with the package, so the product works before any are configured.

Spoken by espeak-ng and stored as Ogg/Vorbis under ``announcements/data`` (see the README there for
how to regenerate them). Three sets, each in Dutch and English:

- `default_prompt_set`: the recording notice followed by the training-consent question;
- `default_notice_prompt_set`: the recording notice alone (no consent-based purpose configured);
- `default_consent_prompt_set`: the training-consent question alone (to follow a custom notice).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from announcements.prompts import Prompt, PromptSet

__all__ = [
    "DATA_DIR",
    "DEFAULT_CONSENT_ID",
    "DEFAULT_NOTICE_ID",
    "DEFAULT_PROMPT_ID",
    "default_consent_prompt_set",
    "default_notice_prompt_set",
    "default_prompt_set",
]

DATA_DIR: Final = Path(__file__).resolve().parent / "data"

DEFAULT_PROMPT_ID: Final = "default-announcement"
DEFAULT_NOTICE_ID: Final = "default-notice"
DEFAULT_CONSENT_ID: Final = "default-consent-training"

_NOTICE: Final = {
    "nl": "Dit gesprek wordt opgenomen als bewijs van gemaakte afspraken.",
    "en": "This call is recorded for evidence of agreements.",
}
_CONSENT: Final = {
    "nl": "Gaat u er ook mee akkoord dat het wordt gebruikt voor het trainen van medewerkers? Druk dan op 1.",
    "en": "If you also agree that it may be used for staff training, press 1.",
}
_LANGUAGES: Final = ("nl", "en")


def _set(prompt_id: str, stem: str, texts: dict[str, str]) -> PromptSet:
    return PromptSet(
        id=prompt_id,
        prompts=tuple(
            Prompt(language=language, source=DATA_DIR / f"{stem}-{language}.ogg", text=texts[language])
            for language in _LANGUAGES
        ),
    )


def default_prompt_set() -> PromptSet:
    """The recording notice and the training-consent question, Dutch and English."""
    texts = {language: f"{_NOTICE[language]} {_CONSENT[language]}" for language in _LANGUAGES}
    return _set(DEFAULT_PROMPT_ID, "announcement", texts)


def default_notice_prompt_set() -> PromptSet:
    """The recording notice alone, Dutch and English."""
    return _set(DEFAULT_NOTICE_ID, "notice", _NOTICE)


def default_consent_prompt_set() -> PromptSet:
    """The training-consent question alone, Dutch and English."""
    return _set(DEFAULT_CONSENT_ID, "consent-training", _CONSENT)
