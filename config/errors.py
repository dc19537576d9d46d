"""The configuration package's one exception.

Loading never stops at the first mistake: every problem found in a file is collected into a
`ConfigProblem` (file, line, dotted key path, message) and all of them are raised together in
one `ConfigError`, so an administrator fixes a file in one pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["ConfigError", "ConfigProblem"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigProblem:
    """One thing wrong with a configuration file."""

    file: str
    """The file as the user named it (or the ``source`` given to `parse_config`)."""
    line: int | None
    """1-based line the problem is on; None when no line applies (e.g. an unreadable file)."""
    key: str
    """Dotted key path, list items indexed (``pbx.peers[0].host``); empty for the whole document."""
    message: str
    """What was expected and what was found."""

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(ValueError):
    """A configuration could not be loaded. ``str()`` lists every problem, one per line."""

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        self.problems: list[ConfigProblem] = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))
