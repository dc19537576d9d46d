"""The states of a recording in the evidence record, apart from the record itself: the command line
offers them as choices without loading the database layer."""

from __future__ import annotations

import enum

__all__ = ["RecordingState"]


class RecordingState(enum.StrEnum):
    RECORDING = "recording"
    COMPLETE = "complete"
    TRUNCATED = "truncated"
    ERASED = "erased"
    """Its wrapped keys were destroyed and its file removed; only ever read, never stored as such."""
