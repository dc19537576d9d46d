"""The recording notice and the consent questions for one outside party, as a state table.

Theory of operation
-------------------
A ``ConsentSession`` is made per outside party from the policy that matched the call: the notice
to play, the consent questions to ask and the purposes with their lawful basis. It never plays
audio itself: it returns ``PlayPrompt`` / ``StopPrompt`` effects and is told back, through
``prompt_finished`` / ``prompt_failed``, when the playout layer is done. Digits arrive through
``digit`` from whichever mechanism heard them (RFC 4733, SIP INFO, in-band tones). Time only moves
through ``now`` arguments; ``next_deadline`` / ``handle_timers`` drive the answer windows.

States, in order: ``NOTICE`` (the notice plays; digits are ignored, the notice must be heard
whole), then per question ``ASKING`` (its prompt plays; a digit answers at once and stops the
prompt) and ``WAITING`` (the answer window after the prompt), then ``DONE``. A prompt that cannot
be played moves to ``FAILED``: nothing may be recorded (fail closed).

A key is judged by when it went down (``pressed_at``: RFC 4733 and in-band presses are reported
as they begin, with their onset; SIP INFO has none and counts on arrival). One that went down
before the question started (during the notice, or the question before) does not answer it, even
if still held; one that went down in the window answers although it is reported up to
``KEY_REPORT_GRACE_S`` after the window closed (in-band detection takes that long), so the
window's "no answer" is decided only then; one that went down after the window does not count.

Every step yields evidence events (``AnnouncementStarted`` / ``AnnouncementEnded``,
``DigitReceived``, ``ConsentDecided``, ``ConsentFinished``) for the consent-and-purpose record.
Recording may start only after ``ConsentFinished``; it lists the purposes that may be recorded:
every purpose that does not need consent, and a consent purpose only after an active "yes" (GDPR
Art. 7; staying on the line is no consent).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum, StrEnum

__all__ = [
    "KEY_REPORT_GRACE_S",
    "AnnouncementEnded",
    "AnnouncementStarted",
    "ConsentDecided",
    "ConsentFinished",
    "ConsentQuestion",
    "ConsentSession",
    "ConsentState",
    "ConsentWithdrawn",
    "Decision",
    "DigitMechanism",
    "DigitReceived",
    "EvidenceEvent",
    "NoticeFailed",
    "PartyChanged",
    "PlayPrompt",
    "Purpose",
    "StopPrompt",
]


KEY_REPORT_GRACE_S = 0.25
"""How long after an answer window closes a key that went down inside it may still be reported:
an in-band tone is known as a press up to about 0.16 s after its onset (the detector's 30 ms
minimum, its 51 ms frame, 20 ms packets and the 80 ms judging round)."""


class DigitMechanism(StrEnum):
    """How a key press reached callherald."""

    RFC4733 = "rfc4733"
    SIP_INFO = "sip_info"
    INBAND = "inband"


class Decision(StrEnum):
    GRANTED = "granted"
    REFUSED = "refused"
    NO_ANSWER = "no_answer"


@dataclass(frozen=True, slots=True, kw_only=True)
class Purpose:
    """A purpose of recording and whether its lawful basis is consent."""

    purpose_id: str
    lawful_basis: str
    needs_consent: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentQuestion:
    """A question asked by a prompt, answered "yes" by one digit within ``timeout_s``."""

    question_id: str
    version: str
    purpose_id: str
    prompt_id: str
    yes_digit: str
    timeout_s: float


# Effects for the playout layer ---------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PlayPrompt:
    """Play ``prompt_id`` in ``language`` to the outside party; report back when done."""

    prompt_id: str
    language: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StopPrompt:
    """Stop the prompt playing now (the party answered during it)."""


# Evidence events -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AnnouncementStarted:
    prompt_id: str
    language: str
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class AnnouncementEnded:
    """``complete`` is False when the prompt was cut short (an answer during a question)."""

    prompt_id: str
    at: float
    complete: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class DigitReceived:
    digit: str
    mechanism: DigitMechanism
    at: float
    counted: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentDecided:
    question_id: str
    question_version: str
    purpose_id: str
    decision: Decision
    mechanism: DigitMechanism | None
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentFinished:
    """The notice was heard and every question decided: recording may start for these purposes."""

    purposes: tuple[str, ...]
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class NoticeFailed:
    """A prompt could not be played (or not to the end): nothing may be recorded for this party."""

    prompt_id: str
    language: str
    reason: str
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentWithdrawn:
    """The withdrawal digit was pressed: consent purposes are not recorded from ``at`` (Art. 7(3))."""

    purposes: tuple[str, ...]
    mechanism: DigitMechanism
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class PartyChanged:
    """A different outside party joined the call (transfer): the notice plays again before recording.

    ``sip_call_id`` is the Call-ID of the dialog the party is in, ``remote_uri`` who it is as far
    as signalling tells (its asserted identity, RFC 3325, else the URI callherald called); empty
    when unknown.
    """

    reason: str
    at: float
    sip_call_id: str = field(default="", compare=False)
    remote_uri: str = field(default="", compare=False)


EvidenceEvent = (
    AnnouncementStarted
    | AnnouncementEnded
    | DigitReceived
    | ConsentDecided
    | ConsentFinished
    | NoticeFailed
    | ConsentWithdrawn
    | PartyChanged
)
"""Everything the consent-and-purpose record is told about a party."""

Output = (
    PlayPrompt
    | StopPrompt
    | AnnouncementStarted
    | AnnouncementEnded
    | DigitReceived
    | ConsentDecided
    | ConsentFinished
    | NoticeFailed
    | ConsentWithdrawn
)


class ConsentState(Enum):
    NOTICE = "notice"
    ASKING = "asking"
    WAITING = "waiting"
    DONE = "done"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    """The party left before the notice and questions were over."""


class ConsentSession:
    """Notice, questions and decisions for one outside party. Feed it events; act on its output."""

    def __init__(
        self,
        *,
        notice_prompt_id: str,
        language: str,
        purposes: Sequence[Purpose],
        questions: Sequence[ConsentQuestion],
        withdrawal_digit: str | None = None,
    ) -> None:
        consent_purposes = {purpose.purpose_id for purpose in purposes if purpose.needs_consent}
        asked = {question.purpose_id for question in questions}
        unasked = consent_purposes - asked
        if unasked:
            raise ValueError(f"consent purposes without a question: {sorted(unasked)}")
        self._notice = notice_prompt_id
        self._language = language
        self._purposes = tuple(purposes)
        self._questions = tuple(questions)
        self._index = -1
        self._deadline: float | None = None
        self._asked_at = 0.0  # when the current question started to play
        self._granted: set[str] = set()
        self._withdrawal_digit = withdrawal_digit
        self.state = ConsentState.NOTICE
        self.decisions: list[ConsentDecided] = []

    @property
    def current_question(self) -> ConsentQuestion | None:
        if self.state in (ConsentState.ASKING, ConsentState.WAITING):
            return self._questions[self._index]
        return None

    def start(self, now: float) -> list[Output]:
        """Begin with the notice."""
        return [
            PlayPrompt(prompt_id=self._notice, language=self._language),
            AnnouncementStarted(prompt_id=self._notice, language=self._language, at=now),
        ]

    def prompt_finished(self, now: float) -> list[Output]:
        """The prompt that was playing has been sent whole."""
        if self.state is ConsentState.NOTICE:
            return [
                AnnouncementEnded(prompt_id=self._notice, at=now, complete=True),
                *self._next_question(now),
            ]
        if self.state is ConsentState.ASKING:
            question = self._questions[self._index]
            self.state = ConsentState.WAITING
            self._deadline = now + question.timeout_s
            return [AnnouncementEnded(prompt_id=question.prompt_id, at=now, complete=True)]
        return []

    def prompt_failed(self, reason: str, now: float) -> list[Output]:
        """The prompt could not be played (missing or corrupt): fail closed."""
        if self.state in (ConsentState.DONE, ConsentState.FAILED, ConsentState.INTERRUPTED):
            return []
        prompt_id = (
            self._notice if self.state is ConsentState.NOTICE else self._questions[self._index].prompt_id
        )
        self.state = ConsentState.FAILED
        self._deadline = None
        return [NoticeFailed(prompt_id=prompt_id, language=self._language, reason=reason, at=now)]

    def digit(
        self, digit: str, mechanism: DigitMechanism, now: float, pressed_at: float | None = None
    ) -> list[Output]:
        """A key press that went down at ``pressed_at`` (``now`` when unknown), reported ``now``.
        It answers the current question if it went down while the question played or in its
        window; otherwise (during the notice, say) it is only logged. The withdrawal digit, once a
        question was answered yes, also withdraws every consent given so far (GDPR Art. 7(3): as
        easy to withdraw as to give), whatever question is asked then."""
        pressed = now if pressed_at is None else min(pressed_at, now)
        asked = self.state in (ConsentState.ASKING, ConsentState.WAITING) and pressed >= self._asked_at
        in_window = self.state is ConsentState.ASKING or (
            self._deadline is not None and pressed <= self._deadline
        )
        counted = asked and in_window
        withdrawn = self._granted_so_far() if digit == self._withdrawal_digit else ()
        received = DigitReceived(
            digit=digit, mechanism=mechanism, at=pressed, counted=counted or bool(withdrawn)
        )
        out: list[Output] = [received]
        if withdrawn:
            self._granted.difference_update(withdrawn)
            out.append(ConsentWithdrawn(purposes=withdrawn, mechanism=mechanism, at=now))
        if not counted:
            return out
        question = self._questions[self._index]
        if self.state is ConsentState.ASKING:
            out.append(StopPrompt())
            out.append(AnnouncementEnded(prompt_id=question.prompt_id, at=now, complete=False))
        decision = Decision.GRANTED if digit == question.yes_digit else Decision.REFUSED
        out.append(self._decide(question, decision, mechanism, now))
        out.extend(self._next_question(now))
        return out

    def _granted_so_far(self) -> tuple[str, ...]:
        """The purposes a question was answered yes to, in the order they were asked."""
        return tuple(dict.fromkeys(q.purpose_id for q in self._questions if q.purpose_id in self._granted))

    def interrupt(self, now: float) -> list[Output]:
        """The party is gone (hung up, transferred away): the prompt playing, if any, was cut short
        at ``now``, and nothing more is played, asked or decided."""
        out: list[Output] = []
        if self.state is ConsentState.NOTICE:
            out.append(AnnouncementEnded(prompt_id=self._notice, at=now, complete=False))
        elif self.state is ConsentState.ASKING:
            question = self._questions[self._index]
            out.append(AnnouncementEnded(prompt_id=question.prompt_id, at=now, complete=False))
        if self.state not in (ConsentState.DONE, ConsentState.FAILED):
            self.state = ConsentState.INTERRUPTED
        self._deadline = None
        return out

    def next_deadline(self) -> float | None:
        """When the answer window's "no answer" is due: its end, and the grace for a late report."""
        return None if self._deadline is None else self._deadline + KEY_REPORT_GRACE_S

    def handle_timers(self, now: float) -> list[Output]:
        """The answer window closed without a digit: no answer, which is no consent."""
        due = self.next_deadline()
        if due is None or now < due or self.state is not ConsentState.WAITING:
            return []
        question = self._questions[self._index]
        return [self._decide(question, Decision.NO_ANSWER, None, now), *self._next_question(now)]

    def _decide(
        self, question: ConsentQuestion, decision: Decision, mechanism: DigitMechanism | None, now: float
    ) -> ConsentDecided:
        self._deadline = None
        if decision is Decision.GRANTED:
            self._granted.add(question.purpose_id)
        decided = ConsentDecided(
            question_id=question.question_id,
            question_version=question.version,
            purpose_id=question.purpose_id,
            decision=decision,
            mechanism=mechanism,
            at=now,
        )
        self.decisions.append(decided)
        return decided

    def _next_question(self, now: float) -> list[Output]:
        self._index += 1
        if self._index < len(self._questions):
            question = self._questions[self._index]
            self.state = ConsentState.ASKING
            self._asked_at = now
            return [
                PlayPrompt(prompt_id=question.prompt_id, language=self._language),
                AnnouncementStarted(prompt_id=question.prompt_id, language=self._language, at=now),
            ]
        self.state = ConsentState.DONE
        return [ConsentFinished(purposes=self.recorded_purposes, at=now)]

    @property
    def recorded_purposes(self) -> tuple[str, ...]:
        """Purposes recording may serve: those without consent basis, and granted consent ones."""
        if self.state is not ConsentState.DONE:
            return ()
        return tuple(
            purpose.purpose_id
            for purpose in self._purposes
            if not purpose.needs_consent or purpose.purpose_id in self._granted
        )
