"""Plugging the configured policies and prompts into the proxy.

* `policy_resolver`: the configured policies as the core's ``PolicyResolver`` (first match wins,
  `config.select_policy`), each turned into a ``CallPolicy`` once.
* `prepare_prompts`: imports every prompt set a policy plays (from the cache when it can) into a
  `PromptLibrary`. A set that fails is logged and left out: calls under a policy that needs it
  then follow the policy's ``on_failure`` (connect unrecorded, or reject).
* `LibraryPrompts`: the library and the generated tones as the proxy's ``PromptSource``.
* `LoggingRecordSink`: writes the consent-and-purpose facts of every call to the log, one JSON
  object per line, with UTC wall-clock times.

The embedded prompt set ``default`` names two shipped sets: the notice when a policy plays it as
its notice, the training-consent question when a consent question names it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from announcements import (
    AnnouncementError,
    PreparedPrompt,
    PromptLibrary,
    PromptSet,
    beep_frames,
    default_consent_prompt_set,
    default_notice_prompt_set,
    pci_paused_frames,
    pci_resumed_frames,
    ringback_frames,
)
from announcements.defaults import DEFAULT_CONSENT_ID, DEFAULT_NOTICE_ID
from config import EMBEDDED_PROMPT_SET_ID, CallDirection, Config, LawfulBasis, Policy, select_policy
from proxy.aio.service import AgentInformed, AgentInformStarted
from proxy.b2bua.consent import ConsentQuestion, Purpose
from proxy.b2bua.effects import (
    CallEnded,
    CallStarted,
    Evidence,
    PauseRecording,
    ResumeRecording,
    StartRecording,
    StopRecording,
    Tone,
)
from proxy.b2bua.policy import AnnouncementMode, CallPolicy, FailureBehaviour, PolicyResolver

__all__ = [
    "LibraryPrompts",
    "LoggingRecordSink",
    "call_policy",
    "log_evidence",
    "notice_prompt_id",
    "policy_resolver",
    "prepare_prompts",
    "question_prompt_id",
]

_LOG = logging.getLogger("callherald")
_EVIDENCE_LOG = logging.getLogger("callherald.evidence")


def notice_prompt_id(prompt_set: str) -> str:
    """The prompt a policy's ``notice`` plays."""
    return DEFAULT_NOTICE_ID if prompt_set == EMBEDDED_PROMPT_SET_ID else prompt_set


def question_prompt_id(prompt_set: str) -> str:
    """The prompt a consent question's ``prompt_set`` plays."""
    return DEFAULT_CONSENT_ID if prompt_set == EMBEDDED_PROMPT_SET_ID else prompt_set


def call_policy(config: Config, policy: Policy) -> CallPolicy:
    """What the core needs of one configured policy."""
    if not policy.record or policy.notice is None:
        return CallPolicy(name=policy.name, record=False)
    purposes = tuple(
        Purpose(
            purpose_id=purpose.id,
            lawful_basis=str(purpose.lawful_basis),
            needs_consent=purpose.lawful_basis is LawfulBasis.CONSENT,
        )
        for purpose in config.policy_purposes(policy)
    )
    questions = tuple(
        ConsentQuestion(
            question_id=question.id,
            version=question.version,
            purpose_id=question.purpose,
            prompt_id=question_prompt_id(question.prompt_set),
            yes_digit=question.yes_digit,
            timeout_s=question.timeout_s,
        )
        for question in config.policy_questions(policy)
    )
    return CallPolicy(
        name=policy.name,
        record=True,
        notice_prompt_id=notice_prompt_id(policy.notice),
        language=policy.language,
        purposes=purposes,
        questions=questions,
        mode=AnnouncementMode(str(policy.mode)),
        on_failure=FailureBehaviour(str(policy.on_failure)),
        withdrawal_digit=policy.withdrawal_digit,
        pci_pause_code=policy.pci_pause_code,
        pci_pause_tones=policy.pci_pause_tones,
    )


def policy_resolver(config: Config) -> PolicyResolver:
    """``(direction, calling, called) -> CallPolicy`` over the configured policies, first match wins."""
    by_name = {policy.name: call_policy(config, policy) for policy in config.policies}

    def resolve(direction: str, calling: str, called: str) -> CallPolicy:
        policy = select_policy(config, direction=CallDirection(direction), calling=calling, called=called)
        return by_name[policy.name]

    return resolve


def _prompt_sets(config: Config) -> list[PromptSet]:
    """Every prompt set a recording policy plays, the embedded ones named by their shipped ids."""
    wanted: set[str] = set()
    for policy in config.policies:
        resolved = call_policy(config, policy)
        if resolved.record:
            wanted.update(resolved.prompt_ids)
    sets: list[PromptSet] = []
    if DEFAULT_NOTICE_ID in wanted:
        sets.append(default_notice_prompt_set())
    if DEFAULT_CONSENT_ID in wanted:
        sets.append(default_consent_prompt_set())
    for configured in config.announcements.prompt_sets:
        if configured.id in wanted:
            sets.append(PromptSet.from_mapping(configured.to_mapping(), base_dir=Path("/")))
    return sets


def prepare_prompts(config: Config, library: PromptLibrary) -> list[AnnouncementError]:
    """Import every prompt the policies play into ``library``; return (and log) the failures."""
    problems: list[AnnouncementError] = []
    for prompt_set in _prompt_sets(config):
        try:
            library.prepare(prompt_set)
        except AnnouncementError as error:
            problems.append(error)
            _LOG.error("announcement %s cannot be played: %s", prompt_set.id, error)
    return problems


_TONE_FRAMES = {
    Tone.RINGBACK: ringback_frames,
    Tone.BEEP: beep_frames,
    Tone.PCI_PAUSED: pci_paused_frames,
    Tone.PCI_RESUMED: pci_resumed_frames,
}


class LibraryPrompts:
    """The proxy's ``PromptSource``: prepared prompts from a `PromptLibrary`, tones made in code."""

    def __init__(self, library: PromptLibrary) -> None:
        self._library = library

    def ready(self, prompt_id: str, language: str) -> bool:
        try:
            self._library.get(prompt_id, language)
        except AnnouncementError:
            return False
        return True

    def prompt(self, prompt_id: str, language: str) -> PreparedPrompt:
        return self._library.get(prompt_id, language)

    def tone(self, tone: Tone, codec: str) -> Sequence[bytes]:
        return _TONE_FRAMES[tone](codec)


_clock_offset: list[float] = []
CLOCK_STEP_S = 1.0
"""A wall clock that moved this far against the loop's clock was set (not slewed by NTP)."""


def _utc(at: float) -> str:
    """A time on the event loop's clock as an ISO 8601 UTC timestamp: by the clocks' offset read
    once, unless the wall clock was set since (moved more than ``CLOCK_STEP_S``)."""
    now = time.time() - asyncio.get_running_loop().time()
    if not _clock_offset or abs(now - _clock_offset[0]) > CLOCK_STEP_S:
        _clock_offset[:] = [now]
    return datetime.fromtimestamp(_clock_offset[0] + at, UTC).isoformat(timespec="milliseconds")


def not_recorded_event(
    call_ref: str, *, purposes: Sequence[str], policy: str, reason: str, at: str
) -> dict[str, object]:
    """The evidence log's ``not_recorded`` event: the call's recording for ``purposes`` under
    ``policy`` could not start, or the record refused it, for ``reason``, at ``at`` (ISO 8601)."""
    return {
        "call": call_ref,
        "event": "not_recorded",
        "purposes": list(purposes),
        "policy": policy,
        "reason": reason,
        "at": at,
    }


def log_evidence(record: Mapping[str, object]) -> None:
    """One fact of a call as a JSON line in the evidence log (``callherald.evidence``)."""
    _EVIDENCE_LOG.info("%s", json.dumps(record, sort_keys=True, default=str))


class LoggingRecordSink:
    """The consent-and-purpose facts of each call as JSON lines in the log (``callherald.evidence``)."""

    def _write(self, record: Mapping[str, object]) -> None:
        log_evidence(record)

    def call_started(self, effect: CallStarted) -> None:
        self._write(
            {
                "call": effect.call_ref,
                "event": "call_started",
                "direction": effect.direction,
                "at": _utc(effect.at or asyncio.get_running_loop().time()),
            }
        )

    def evidence(self, effect: Evidence, details: Mapping[str, str]) -> None:
        fields = dataclasses.asdict(effect.event)
        fields["at"] = _utc(fields["at"])
        record: dict[str, object] = {
            "call": effect.call_ref,
            "leg": str(effect.leg),
            "event": _snake(type(effect.event).__name__),
            **fields,
        }
        if record["event"] in ("announcement_started", "announcement_ended") and details:
            record["prompt"] = dict(details)
        self._write(record)

    def recording(self, effect: StartRecording | StopRecording | PauseRecording | ResumeRecording) -> None:
        now = _utc(asyncio.get_running_loop().time())
        if isinstance(effect, PauseRecording | ResumeRecording):
            event = "recording_paused" if isinstance(effect, PauseRecording) else "recording_resumed"
            self._write({"call": effect.call_ref, "event": event, "reason": effect.reason, "at": now})
        elif isinstance(effect, StartRecording):
            self._write(
                {
                    "call": effect.call_ref,
                    "event": "recording_started",
                    "purposes": list(effect.purposes),
                    "policy": effect.policy,
                    "outside_leg": str(effect.outside_leg),
                    "at": now,
                }
            )
        else:
            self._write(
                {"call": effect.call_ref, "event": "recording_stopped", "reason": effect.reason, "at": now}
            )

    def not_recorded(self, effect: StartRecording, reason: str, at: float) -> None:
        self._write(
            not_recorded_event(
                effect.call_ref, purposes=effect.purposes, policy=effect.policy, reason=reason, at=_utc(at)
            )
        )

    def agent_inform_started(self, playing: AgentInformStarted) -> None:
        record: dict[str, object] = {
            "call": playing.call_ref,
            "leg": str(playing.leg),
            "event": "agent_inform_started",
            "at": _utc(playing.started_at),
        }
        if playing.prompt:
            record["prompt"] = dict(playing.prompt)
        else:
            record["tone"] = str(playing.tone)
        self._write(record)

    def agent_informed(self, played: AgentInformed) -> None:
        record: dict[str, object] = {
            "call": played.call_ref,
            "leg": str(played.leg),
            "event": "agent_informed",
            "started_at": None if played.started_at is None else _utc(played.started_at),
            "ended_at": None if played.ended_at is None else _utc(played.ended_at),
            "complete": played.complete,
            "failure": played.failure,
            "at": _utc(played.at),
        }
        if played.prompt:
            record["prompt"] = dict(played.prompt)
        else:
            record["tone"] = str(played.tone)
        self._write(record)

    def call_ended(self, effect: CallEnded) -> None:
        at = _utc(effect.at or asyncio.get_running_loop().time())
        self._write({"call": effect.call_ref, "event": "call_ended", "reason": effect.reason, "at": at})


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
