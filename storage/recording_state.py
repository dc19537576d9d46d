"""The states of a recording in the evidence record, and the end reasons crash recovery gives,
apart from the record itself: the command line reads them without loading the proxy or the
database layer."""

from __future__ import annotations

import enum

__all__ = [
    "CORRUPT_RECORDING",
    "INTERRUPTED_RECORDING",
    "UNREADABLE_RECORDING",
    "RecordingState",
    "recovery_fault",
]


class RecordingState(enum.StrEnum):
    RECORDING = "recording"
    COMPLETE = "complete"
    TRUNCATED = "truncated"
    ERASED = "erased"
    """Its wrapped keys were destroyed and its file removed; only ever read, never stored as such."""


INTERRUPTED_RECORDING = "interrupted"
"""The end reason of a recording a crash cut short: its file holds what was sealed before it."""
CORRUPT_RECORDING = "corrupt"
"""How the end reason of a recording whose file recovery found corrupt begins (``corrupt: ...``)."""
UNREADABLE_RECORDING = "unreadable"
"""How the end reason of a recording whose file recovery could not read begins (``unreadable: ...``)."""


def recovery_fault(end_reason: str | None) -> str | None:
    """``CORRUPT_RECORDING`` or ``UNREADABLE_RECORDING`` when ``end_reason`` says recovery found the
    recording's file so, else None."""
    for fault in (CORRUPT_RECORDING, UNREADABLE_RECORDING):
        if end_reason is not None and (
            end_reason == fault or end_reason.startswith((f"{fault} ", f"{fault}:"))
        ):
            return fault
    return None
