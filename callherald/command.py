"""What every ``callherald`` subcommand shares: exit codes, the error that carries one, and the
environment variable a private key's passphrase may come from."""

from __future__ import annotations

import enum

__all__ = ["PASSPHRASE_ENV", "CommandError", "ExitCode"]

PASSPHRASE_ENV = "CALLHERALD_KEY_PASSPHRASE"


class ExitCode(enum.IntEnum):
    OK = 0
    REFUSED = 1
    """The data refuses: unknown recording or call, integrity or SHA-256 failure, not running."""
    USAGE = 2
    """The invocation is wrong: bad value, key file, passphrase, terminal, existing output, ffmpeg."""


class CommandError(Exception):
    """A command cannot go on; ``message`` goes to stderr and the process exits with ``exit_code``."""

    def __init__(self, message: str, *, exit_code: ExitCode) -> None:
        super().__init__(message)
        self.exit_code = exit_code
