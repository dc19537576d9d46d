"""What a call's recording policy asks of the call logic, as plain frozen values.

The composition root turns the configured policies into a ``PolicyResolver``: a pure function from
a call's direction and numbers to the ``CallPolicy`` that applies. The core asks it once per call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from proxy.b2bua.consent import ConsentQuestion, Purpose

__all__ = [
    "UNRECORDED",
    "AnnouncementMode",
    "CallPolicy",
    "FailureBehaviour",
    "PolicyResolver",
    "PromptCheck",
]


class AnnouncementMode(StrEnum):
    """How an inbound caller hears the notice: after callherald answers, or as 183 early media."""

    ANSWER = "answer"
    EARLY_MEDIA = "early_media"


class FailureBehaviour(StrEnum):
    """What happens when the notice cannot be played: connect without recording, or refuse."""

    CONNECT_UNRECORDED = "connect_unrecorded"
    REJECT = "reject"


@dataclass(frozen=True, slots=True, kw_only=True)
class CallPolicy:
    """The notice, questions and purposes for one call.

    ``record`` False: the call is neither announced nor recorded (emergency numbers, test lines).
    ``notice_prompt_id`` and each question's ``prompt_id`` name prompts in ``language``.
    """

    name: str
    record: bool
    notice_prompt_id: str = ""
    language: str = ""
    purposes: tuple[Purpose, ...] = ()
    questions: tuple[ConsentQuestion, ...] = ()
    mode: AnnouncementMode = AnnouncementMode.ANSWER
    on_failure: FailureBehaviour = FailureBehaviour.CONNECT_UNRECORDED
    withdrawal_digit: str | None = None
    pci_pause_code: str | None = None  # keys that pause recording for a card payment, and resume it
    pci_pause_tones: bool = True  # the outside party hears what its code did (``Tone.PCI_PAUSED``)

    @property
    def prompt_ids(self) -> tuple[str, ...]:
        """Every prompt the policy plays, notice first."""
        return (self.notice_prompt_id, *(question.prompt_id for question in self.questions))


UNRECORDED = CallPolicy(name="unrecorded", record=False)
"""No notice and no recording: what a core without a resolver applies to every call."""

PolicyResolver = Callable[[str, str, str], CallPolicy]
"""``(direction, calling, called) -> CallPolicy``; direction is ``inbound`` or ``outbound``."""

PromptCheck = Callable[[str, str], bool]
"""``(prompt_id, language) -> bool``: whether the prompt is prepared and can be played now."""
