"""The announcements shipped as package data load in both languages with sensible durations."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from announcements.defaults import (
    DATA_DIR,
    default_consent_prompt_set,
    default_notice_prompt_set,
    default_prompt_set,
)
from announcements.levels import TARGET_RMS_DBFS
from announcements.loader import PromptLibrary
from announcements.prompts import PromptSet
from tests.announcements.sound import pcm_of, rms_dbfs

README = (DATA_DIR / "README.md").read_text(encoding="utf-8")

SETS = [
    pytest.param(default_prompt_set, "default-announcement", (7_000, 14_000), id="announcement"),
    pytest.param(default_notice_prompt_set, "default-notice", (2_000, 6_000), id="notice"),
    pytest.param(default_consent_prompt_set, "default-consent-training", (3_000, 9_000), id="consent"),
]


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> PromptLibrary:
    return PromptLibrary(tmp_path_factory.mktemp("cache"))


@pytest.mark.parametrize(("make", "prompt_id", "duration_ms"), SETS)
def test_default_sets_load_in_dutch_and_english(
    library: PromptLibrary, make: Callable[[], PromptSet], prompt_id: str, duration_ms: tuple[int, int]
) -> None:
    prompt_set = make()
    assert prompt_set.id == prompt_id
    assert prompt_set.languages == ("nl", "en")
    prepared = library.prepare(prompt_set)
    for language in ("nl", "en"):
        prompt = prepared[language]
        assert 2_000 <= prompt.duration_ms <= 20_000
        assert duration_ms[0] <= prompt.duration_ms <= duration_ms[1]
        assert prompt.frame_count == -(-prompt.duration_ms // 20)
        assert {codec: len(frames) for codec, frames in prompt.frames.items()} == dict.fromkeys(
            ("pcmu", "pcma", "g722"), prompt.frame_count
        )
        # Speech with pauses: whole-file RMS sits below the active level, but not far.
        assert TARGET_RMS_DBFS - 8 < rms_dbfs(pcm_of("pcmu", prompt.frames["pcmu"])) < TARGET_RMS_DBFS


def test_dutch_is_longer_than_english_and_the_full_set_is_notice_plus_question(
    library: PromptLibrary,
) -> None:
    full = library.prepare(default_prompt_set())
    notice = library.prepare(default_notice_prompt_set())
    consent = library.prepare(default_consent_prompt_set())
    assert full["nl"].duration_ms > full["en"].duration_ms
    for language in ("nl", "en"):
        parts = notice[language].duration_ms + consent[language].duration_ms
        assert abs(full[language].duration_ms - parts) < 1_000
        assert full[language].text == f"{notice[language].text} {consent[language].text}"


@pytest.mark.parametrize(("make", "prompt_id", "duration_ms"), SETS)
def test_default_files_are_small_documented_package_data(
    make: Callable[[], PromptSet], prompt_id: str, duration_ms: tuple[int, int]
) -> None:
    for prompt in make().prompts:
        assert prompt.source.parent == DATA_DIR
        assert prompt.source.suffix == ".ogg"
        assert prompt.source.stat().st_size < 200_000
        assert f"| `{prompt.source.name}` |" in README
        row = next(line for line in README.splitlines() if line.startswith(f"| `{prompt.source.name}` |"))
        assert row.endswith(f"| {prompt.text} |")


def test_every_data_file_belongs_to_a_default_set() -> None:
    used = {
        prompt.source.name
        for make in (default_prompt_set, default_notice_prompt_set, default_consent_prompt_set)
        for prompt in make().prompts
    }
    shipped = {path.name for path in Path(DATA_DIR).iterdir() if path.suffix == ".ogg"}
    assert shipped == used
