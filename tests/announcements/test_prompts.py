"""Prompt sets from dataclasses and plain data; prepared prompts' codec access."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import pytest

from announcements.errors import AnnouncementError
from announcements.prompts import PreparedPrompt, Prompt, PromptSet

BASE = Path("/etc/callherald")


def test_from_mapping_resolves_files_against_the_base_dir() -> None:
    prompt_set = PromptSet.from_mapping(
        {
            "id": "welcome",
            "prompts": {
                "nl": {"file": "prompts/welkom.mp3", "text": "Dit gesprek wordt opgenomen."},
                "en-GB": "prompts/welcome.wav",
                "de": {"file": "/srv/willkommen.ogg"},
            },
        },
        base_dir=BASE,
    )
    assert prompt_set == PromptSet(
        id="welcome",
        prompts=(
            Prompt(language="nl", source=BASE / "prompts/welkom.mp3", text="Dit gesprek wordt opgenomen."),
            Prompt(language="en-GB", source=BASE / "prompts/welcome.wav"),
            Prompt(language="de", source=Path("/srv/willkommen.ogg")),
        ),
    )
    assert prompt_set.languages == ("nl", "en-GB", "de")
    assert prompt_set.prompt("de").source == Path("/srv/willkommen.ogg")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"prompts": {"nl": "a.wav"}}, "id: expected a string, got NoneType"),
        ({"id": 7, "prompts": {"nl": "a.wav"}}, "id: expected a string, got int"),
        ({"id": "x", "prompts": {"nl": "a.wav"}, "colour": 1}, "announcement 'x': unknown key 'colour'"),
        ({"id": "x"}, "announcement 'x': prompts: expected a mapping of language to file"),
        (
            {"id": "x", "prompts": ["a.wav"]},
            "announcement 'x': prompts: expected a mapping of language to file",
        ),
        ({"id": "x", "prompts": {}}, "announcement 'x': a prompt set needs at least one language"),
        (
            {"id": "x", "prompts": {"NL": "a.wav"}},
            "announcement 'x': language 'NL' is not a language tag such as 'nl' or 'en-GB'",
        ),
        (
            {"id": "x", "prompts": {1: "a.wav"}},
            "announcement 'x': language 1 is not a language tag such as 'nl' or 'en-GB'",
        ),
        ({"id": "x", "prompts": {"nl": 5}}, "announcement 'x': prompts.nl.file: expected a file name"),
        ({"id": "x", "prompts": {"nl": ""}}, "announcement 'x': prompts.nl.file: expected a file name"),
        (
            {"id": "x", "prompts": {"nl": {"text": "hoi"}}},
            "announcement 'x': prompts.nl.file: expected a file name",
        ),
        (
            {"id": "x", "prompts": {"nl": {"file": "a.wav", "text": 3}}},
            "announcement 'x': prompts.nl.text: expected a string",
        ),
        (
            {"id": "x", "prompts": {"nl": {"file": "a.wav", "volume": 3}}},
            "announcement 'x': prompts.nl: unknown key 'volume'",
        ),
        (
            {"id": "has space", "prompts": {"nl": "a.wav"}},
            "prompt set id 'has space' must be 1-64 letters, digits, '.', '_' or '-'",
        ),
        (
            {"id": "", "prompts": {"nl": "a.wav"}},
            "prompt set id '' must be 1-64 letters, digits, '.', '_' or '-'",
        ),
        (
            {"id": "-x", "prompts": {"nl": "a.wav"}},
            "prompt set id '-x' must be 1-64 letters, digits, '.', '_' or '-'",
        ),
        (
            {"id": "x" * 65, "prompts": {"nl": "a.wav"}},
            f"prompt set id {'x' * 65!r} must be 1-64 letters, digits, '.', '_' or '-'",
        ),
    ],
)
def test_from_mapping_rejects_bad_data(data: Mapping[str, object], message: str) -> None:
    with pytest.raises(AnnouncementError) as caught:
        PromptSet.from_mapping(data, base_dir=BASE)
    assert str(caught.value) == message


def test_a_language_appears_once() -> None:
    prompt = Prompt(language="nl", source=Path("a.wav"))
    with pytest.raises(AnnouncementError, match=r"^announcement 'x': language 'nl' appears twice$"):
        PromptSet(id="x", prompts=(prompt, prompt))


def test_a_source_must_be_a_path() -> None:
    with pytest.raises(AnnouncementError, match=r"^source must be a Path, not str$"):
        Prompt(language="nl", source="a.wav")  # type: ignore[arg-type]


def test_a_missing_language_is_an_error() -> None:
    prompt_set = PromptSet(id="x", prompts=(Prompt(language="nl", source=Path("a.wav")),))
    with pytest.raises(AnnouncementError, match=r"^announcement 'x': no prompt in language 'en'$"):
        prompt_set.prompt("en")


def _prepared() -> PreparedPrompt:
    frames = {"pcmu": (b"u1", b"u2"), "pcma": (b"a1", b"a2"), "g722": (b"w1", b"w2")}
    return PreparedPrompt(
        id="x",
        language="nl",
        version="ab",
        source_sha256="ab",
        source=Path("a.wav"),
        text=None,
        duration_ms=30,
        frames=MappingProxyType(frames),  # type: ignore[arg-type]
        audio_sha256=MappingProxyType({}),
    )


def test_prepared_prompt_frames_by_codec() -> None:
    prompt = _prepared()
    assert prompt.frame_count == 2
    assert prompt.played_ms == 40
    assert prompt.frames_for("pcma") == (b"a1", b"a2")
    assert list(prompt.iter_frames("g722")) == [b"w1", b"w2"]
    assert list(itertools.islice(prompt.iter_frames("pcmu", loop=True), 5)) == [
        b"u1",
        b"u2",
        b"u1",
        b"u2",
        b"u1",
    ]
    with pytest.raises(AnnouncementError, match=r"^unknown codec 'opus'"):
        prompt.frames_for("opus")


def test_error_text_leaves_out_unknown_parts() -> None:
    assert str(AnnouncementError("r")) == "r"
    assert str(AnnouncementError("r", prompt_id="p")) == "announcement 'p': r"
    assert str(AnnouncementError("r", source=Path("/a.wav"))) == "/a.wav: r"
    filled = AnnouncementError("r", language="en").about(prompt_id="p", language="nl", source=Path("/a.wav"))
    assert str(filled) == "announcement 'p' (en): /a.wav: r"
