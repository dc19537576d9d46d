"""The README documents every command and every configuration key (ARCHITECTURE.md, style 13)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from callherald.cli import _parser
from config import config_keys

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def _commands() -> list[str]:
    parser = _parser()
    actions = [action for action in parser._actions if action.dest == "command"]
    return sorted(actions[0].choices or {})


@pytest.mark.parametrize("key", config_keys())
def test_every_config_key_is_documented(key: str) -> None:
    assert f"`{key}`" in README


@pytest.mark.parametrize("command", _commands())
def test_every_command_is_documented(command: str) -> None:
    assert re.search(rf"`callherald {re.escape(command)}\b", README)


def test_readme_gives_exactly_two_setup_commands() -> None:
    setup = README.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    commands = [line.strip() for line in setup.splitlines() if line.startswith("    ")]
    assert commands == ["scripts/run", "scripts/test"]
