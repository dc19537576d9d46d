"""One call's notice, consent and recording permission, turned into effects.

Theory of operation
-------------------
The core makes a ``CallAnnouncer`` for every call whose policy records. It knows which leg the
outside party is on and, once the SDP says so, the ``MediaFormat`` to play in. ``start`` keeps the
parties apart (``BridgeMedia(False)``), listens for the outside party's digits and runs a
``ConsentSession``: the notice, then each question and its answer window. Its outputs become
``PlayPrompt`` / ``StopPlayout`` / ``Evidence`` effects; for an outbound call the agent hears the
notice too (``agent_hears_notice``).

``stage`` tells the core where things are:

* ``IDLE``: not started (an inbound call before its answer, an outbound call before the callee
  answered);
* ``ANNOUNCING``: notice or questions in progress;
* ``DECIDED``: the session finished: ``purposes`` may be recorded (possibly none);
* ``FAILED``: a prompt could not be played: nothing is recorded (fail closed);
* ``BRIDGED``: the parties hear each other; recording runs when ``purposes`` is not empty.

An outside party that holds the call before the notice and questions are over hears them when it
comes off hold; one that stays on hold for ``hold_limit_s`` has not heard the notice, which fails
as one that could not be played (``FAILED``): the call goes as the policy's ``on_failure`` says.

The agent hears nothing while its own side holds the call (sendonly, inactive, 0.0.0.0): its
copy of the notice and its beep are kept back (RFC 3264 §6.1: no media to a party that receives
none) and play when it comes off hold: the notice copy while the outside party still hears the
notice, the beep once recording runs. One cut short by the agent's hold is stopped there, so its
evidence says it did not play to the end; a notice copy so cut plays again when the hold ends
while the notice still plays. Nothing is played, nor said to have played, to an agent that never
comes off hold.
A recording that does not run after all (storage refused or stopped it: ``not_recording``)
stops a beep that may still play, and drops one kept back; a notice copy plays on.

Once consent is decided (``DECIDED``, the PBX still ringing, and after the bridge) a withdrawal
digit from the outside party ends every consent-based purpose from that moment (GDPR Art. 7(3)):
a recording running stops and one for the purposes left starts, paused for every reason still in
force (hold, PCI code, operator); one that starts at the bridge serves the purposes left. A key
pressed while ``DECIDED`` is evidence (``DigitReceived``, counted when it withdrew consent).
``party_changed`` (a transfer brought a new outside party) stops the recording and starts over
with the notice for the new party.

The PCI pause code (``policy.pci_pause_code``), keyed by the outside party while its call is
recorded, pauses the recording and, keyed again, resumes it; the party hears which way it went
(``policy.pci_pause_tones``): ``Tone.PCI_PAUSED`` or ``Tone.PCI_RESUMED``, played into its leg
only, in place of the agent's audio while it sounds. A pause for another reason (hold, the
operator's ``calls pause``) sounds nothing: the party did not ask for it.
"""

from __future__ import annotations

from dataclasses import replace
from enum import Enum

from proxy.b2bua import consent
from proxy.b2bua.effects import (
    BridgeMedia,
    Effect,
    Evidence,
    ListenForDigits,
    LogEvent,
    MediaFormat,
    MediaLeg,
    PauseRecording,
    PlayPrompt,
    PlayTone,
    ResumeRecording,
    StartRecording,
    StopPlayout,
    StopRecording,
    Tone,
)
from proxy.b2bua.pci_code import PciCode
from proxy.b2bua.policy import CallPolicy

__all__ = ["NOTICE_LEAD_IN_MS", "SAME_PRESS_S", "AnnouncerStage", "CallAnnouncer"]

SAME_PRESS_S = 0.5
"""A key heard again by another mechanism within this long is the same press: a phone that sends
each key by RFC 4733 and SIP INFO, or whose RFC 4733 events come after its tones were heard in
band (a late first packet), presses once. A person does not press one key twice this fast."""
NOTICE_LEAD_IN_MS = 15
"""The notice starts no sooner than this after it is asked for, so a party whose media socket opens
a few ms after our answer (pyVoIP: up to 14 ms) hears it whole."""


class AnnouncerStage(Enum):
    IDLE = "idle"
    ANNOUNCING = "announcing"
    DECIDED = "decided"
    FAILED = "failed"
    BRIDGED = "bridged"


class CallAnnouncer:
    """The notice and consent of one call's outside party. Feed it events; execute its effects."""

    def __init__(
        self,
        *,
        call_ref: str,
        policy: CallPolicy,
        outside_leg: MediaLeg,
        agent_hears_notice: bool,
        hold_limit_s: float,
    ) -> None:
        self.call_ref = call_ref
        self.policy = policy
        self.outside_leg = outside_leg
        self.agent_hears_notice = agent_hears_notice
        self.stage = AnnouncerStage.IDLE
        self.media: MediaFormat | None = None
        self.agent_media: MediaFormat | None = None
        self.purposes: tuple[str, ...] = ()
        self.recording = False
        self._session: consent.ConsentSession | None = None
        self._paused: set[str] = set()  # reasons recording is paused for: hold, pci, api
        # The outside party's keys after the bridge, watched for the PCI pause code.
        self._pci_code = PciCode(policy.pci_pause_code) if policy.pci_pause_code else None
        self._notice_held = False  # the outside party held the call before the questions were over
        self._outside_held = False  # the outside party holds the call: nothing is played to it
        self._last_key: tuple[str, consent.DigitMechanism, float] | None = None  # (``SAME_PRESS_S``)
        self.hold_limit_s = hold_limit_s
        self._hold_deadline: float | None = None  # when a hold that keeps the notice back fails it
        self._agent_held = False  # the agent's side holds the call: nothing is played to it
        self._agent_owed: PlayPrompt | PlayTone | None = None  # kept back for the agent's hold
        self._agent_beeped = False  # the beep of the recording running went to the agent: it may play

    @property
    def paused_reasons(self) -> tuple[str, ...]:
        """Why recording is paused now (``hold``, ``pci``, ``api``), sorted; empty when it is not."""
        return tuple(sorted(self._paused))

    @property
    def settled(self) -> bool:
        """True once the notice and questions are over (decided or failed)."""
        return self.stage in (AnnouncerStage.DECIDED, AnnouncerStage.FAILED)

    def _new_session(self) -> consent.ConsentSession:
        policy = self.policy
        return consent.ConsentSession(
            notice_prompt_id=policy.notice_prompt_id,
            language=policy.language,
            purposes=policy.purposes,
            questions=policy.questions,
            withdrawal_digit=policy.withdrawal_digit,
        )

    def start(
        self, media: MediaFormat, now: float, *, agent_media: MediaFormat | None = None
    ) -> list[Effect]:
        """Keep the parties apart, listen for digits and play the notice to the outside party; to
        a party that holds the call (``outside_hold``) it plays when the hold ends."""
        self.media = media
        self.agent_media = agent_media or media
        self.stage = AnnouncerStage.ANNOUNCING
        self.purposes = ()
        out: list[Effect] = [
            BridgeMedia(call_ref=self.call_ref, bridged=False),
            ListenForDigits(call_ref=self.call_ref, leg=self.outside_leg, media=media),
        ]
        if self._notice_held:
            self._session = None
            self._hold_deadline = now + self.hold_limit_s
            out.append(
                LogEvent(
                    level="info",
                    text="the outside party holds the call from its start:"
                    " the notice plays when it comes off hold",
                    call_ref=self.call_ref,
                )
            )
            return out
        self._hold_deadline = None
        self._session = self._new_session()
        self._translate(self._session.start(now), out)
        return out

    def fail_now(self, reason: str, now: float, *, consequence: str | None = None) -> list[Effect]:
        """The notice cannot be played at all (checked before the call was answered).
        ``consequence`` is what becomes of the call when not the policy's ``on_failure``."""
        self.stage = AnnouncerStage.FAILED
        self.purposes = ()
        event = consent.NoticeFailed(
            prompt_id=self.policy.notice_prompt_id, language=self.policy.language, reason=reason, at=now
        )
        return [
            Evidence(call_ref=self.call_ref, leg=self.outside_leg, event=event),
            LogEvent(
                level="warning",
                text=f"recording notice {self.policy.notice_prompt_id!r} unavailable ({reason}): "
                f"{consequence or self._failure_consequence()}",
                call_ref=self.call_ref,
            ),
        ]

    def _failure_consequence(self) -> str:
        return "call rejected" if self.policy.on_failure == "reject" else "call connects unrecorded"

    def _announcing_to(self, leg: MediaLeg) -> consent.ConsentSession | None:
        """The running session when ``leg`` is the outside party's (the agent's copy reports nothing)."""
        if leg is self.outside_leg and self.stage is AnnouncerStage.ANNOUNCING:
            return self._session
        return None

    def prompt_finished(self, leg: MediaLeg, now: float) -> list[Effect]:
        out: list[Effect] = []
        session = self._announcing_to(leg)
        if session is not None:
            self._translate(session.prompt_finished(now), out)
        return out

    def prompt_failed(self, leg: MediaLeg, reason: str, now: float) -> list[Effect]:
        out: list[Effect] = []
        session = self._announcing_to(leg)
        if session is not None:
            self._translate(session.prompt_failed(reason, now), out)
        return out

    def digit(
        self, digit: str, mechanism: consent.DigitMechanism, now: float, pressed_at: float | None = None
    ) -> list[Effect]:
        """A key press by the outside party, reported ``now``; the key went down at ``pressed_at``
        (RFC 4733, in-band) or, unknown (SIP INFO), ``now``."""
        out: list[Effect] = []
        pressed = now if pressed_at is None else min(pressed_at, now)
        last, self._last_key = self._last_key, (digit, mechanism, now)
        if last is not None and last[0] == digit and last[1] != mechanism and now - last[2] <= SAME_PRESS_S:
            heard_by = f"{last[1]} and {mechanism}"
            text = f"key {digit} heard by {heard_by} {now - last[2]:.2f} s apart: taken as one press"
            return [LogEvent(level="info", text=text, call_ref=self.call_ref)]
        if self.stage is AnnouncerStage.ANNOUNCING:
            if self._session is not None:
                self._translate(self._session.digit(digit, mechanism, now, pressed), out)
            else:  # the notice waits for the party's hold to end: nothing is asked yet
                out.append(self._key_evidence(digit, mechanism, pressed, counted=False))
        elif self.stage is AnnouncerStage.DECIDED:
            # Decided, the agent not joined yet (the PBX rings): every key is evidence, and the
            # withdrawal key withdraws consent from here on too (GDPR Art. 7(3)).
            withdraws = digit == self.policy.withdrawal_digit and bool(self._withdrawable())
            out.append(self._key_evidence(digit, mechanism, pressed, counted=withdraws))
            if withdraws:
                self._withdraw(mechanism, now, out)
        elif self.stage is AnnouncerStage.BRIDGED:
            if self._pci_code is not None and self._pci_code.keyed(digit, now):
                pause = "pci" not in self._paused
                out.extend(self._set_pause("pci", pause))
                self._confirm_pci_code(pause, out)
                return out
            if digit == self.policy.withdrawal_digit:
                self._withdraw(mechanism, now, out)
        return out

    def _key_evidence(
        self, digit: str, mechanism: consent.DigitMechanism, pressed: float, *, counted: bool
    ) -> Evidence:
        """A key the outside party pressed outside the questions, for the record."""
        received = consent.DigitReceived(digit=digit, mechanism=mechanism, at=pressed, counted=counted)
        return Evidence(call_ref=self.call_ref, leg=self.outside_leg, event=received)

    def _withdrawn_log(self, purposes: tuple[str, ...]) -> LogEvent:
        return LogEvent(
            level="info", text=f"consent withdrawn for {', '.join(purposes)}", call_ref=self.call_ref
        )

    def next_deadline(self) -> float | None:
        if self.stage is not AnnouncerStage.ANNOUNCING:
            return None
        if self._notice_held:
            return self._hold_deadline
        return self._session.next_deadline() if self._session is not None else None

    def handle_timers(self, now: float) -> list[Effect]:
        out: list[Effect] = []
        if self.stage is not AnnouncerStage.ANNOUNCING:
            return out
        if self._notice_held:
            if self._hold_deadline is not None and now >= self._hold_deadline:
                self._hold_outlasted(now, out)
        elif self._session is not None:
            self._translate(self._session.handle_timers(now), out)
        return out

    def bridge(
        self, now: float, *, agent_leg: MediaLeg | None = None, agent_packet_ms: int | None = None
    ) -> list[Effect]:
        """Let the parties hear each other; when recording starts the agent hears a beep, in
        ``agent_packet_ms`` packets when its SDP named that duration only now (an inbound PBX's
        answer)."""
        out: list[Effect] = [BridgeMedia(call_ref=self.call_ref, bridged=True)]
        agent = agent_leg or self.outside_leg.other
        if agent_packet_ms is not None and self.agent_media is not None:
            self.agent_media = replace(self.agent_media, packet_ms=agent_packet_ms)
        self._agent_owed = None  # the notice is over: a copy still kept back gives way to the beep
        self._agent_beeped = False
        if self.stage is AnnouncerStage.DECIDED and self.purposes:
            if self.agent_media is not None:  # the beep tells the agent the call is being recorded
                beep = PlayTone(call_ref=self.call_ref, leg=agent, tone=Tone.BEEP, media=self.agent_media)
                self._to_agent(beep, out)
            self.recording = True
            out.append(
                StartRecording(
                    call_ref=self.call_ref,
                    outside_leg=self.outside_leg,
                    purposes=self.purposes,
                    policy=self.policy.name,
                    media=self.media,
                )
            )
            out.extend(self._pauses_in_force())
        elif self.stage is AnnouncerStage.DECIDED:
            out.append(LogEvent(level="info", text="no purpose allows recording", call_ref=self.call_ref))
        self.stage = AnnouncerStage.BRIDGED
        keys_matter = self.policy.withdrawal_digit is not None or self.policy.pci_pause_code is not None
        if not keys_matter or not self.recording:
            out.append(ListenForDigits(call_ref=self.call_ref, leg=self.outside_leg, media=None))
        return out

    def _pauses_in_force(self) -> list[Effect]:
        return [PauseRecording(call_ref=self.call_ref, reason=reason) for reason in sorted(self._paused)]

    def hold(self, held: bool) -> list[Effect]:
        """The call went on hold or came off it: recording writes silence meanwhile (GDPR Art. 5(1)(c))."""
        return self._set_pause("hold", held)

    def outside_hold(self, held: bool, now: float) -> list[Effect]:
        """The outside party put the call on hold, or took it off (RFC 3264 §8.4). A held party
        hears nothing: a notice or question playing then is cut short (the evidence says when),
        and the notice starts again from the beginning when the call comes off hold, so that
        nothing is recorded before the party heard it whole (GDPR Art. 13). A party on hold from
        the first offer or answer, before ``start``, hears the notice first when it comes off hold."""
        out: list[Effect] = []
        self._outside_held = held
        if held and self.stage is AnnouncerStage.IDLE:
            self._notice_held = True  # held in the first offer or answer: the notice waits (``start``)
        elif held and self.stage is AnnouncerStage.ANNOUNCING and not self._notice_held:
            self._notice_held = True
            self._hold_deadline = now + self.hold_limit_s
            self._interrupt(now, out)
            out.append(StopPlayout(call_ref=self.call_ref, leg=self.outside_leg))
            if self.agent_hears_notice:
                out.append(StopPlayout(call_ref=self.call_ref, leg=self.outside_leg.other))
            out.append(
                LogEvent(
                    level="info",
                    text="the outside party holds the call before the notice and questions are over:"
                    " the notice is played again when it comes off hold",
                    call_ref=self.call_ref,
                )
            )
        elif not held and self._notice_held:
            self._notice_held = False
            if self.stage is AnnouncerStage.ANNOUNCING:
                out.extend(self.start(self.media or _PCMU, now, agent_media=self.agent_media))
        return out

    def agent_hold(self, held: bool, *, party_left: bool = False) -> list[Effect]:
        """The agent's side put the call on hold, or took it off (RFC 3264 §8.4). A held agent is
        sent nothing (§6.1): its notice copy or beep is kept back until the hold ends, and one
        playing is cut short there (its evidence then says it did not play to the end); a notice
        copy so cut plays again when the hold ends while the outside party still hears the notice.
        A hold that ends because the agent left (``party_left``) plays nothing: the new agent hears
        the beep as it joins."""
        out: list[Effect] = []
        self._agent_held = held
        agent = self.outside_leg.other
        if held:
            copy_playing = self.agent_hears_notice and self._notice_playing()
            if copy_playing or (self.stage is AnnouncerStage.BRIDGED and self.recording):
                out.append(StopPlayout(call_ref=self.call_ref, leg=agent))
                self._agent_beeped = False  # a beep cut short by the hold does not play again
            if copy_playing and self._agent_owed is None and self.agent_media is not None:
                self._agent_owed = self._agent_copy(self.policy.notice_prompt_id, self.policy.language)
            return out
        owed, self._agent_owed = self._agent_owed, None
        if owed is None or party_left:
            return out
        if isinstance(owed, PlayPrompt):
            if not self._notice_playing():
                return out  # the notice is over: the beep tells the agent, as recording starts
        elif self.stage is not AnnouncerStage.BRIDGED or not self.recording:
            return out  # a beep for a recording that has stopped since
        else:
            self._agent_beeped = True
        out.append(owed)
        return out

    def packet_ms_changed(self, leg: MediaLeg, packet_ms: int) -> None:
        """``leg``'s party asks for packets of ``packet_ms`` in a later answer, or an offer that was
        answered (``a=ptime``, RFC 4566 §6; a refused offer changes nothing, RFC 3261 §14.2):
        prompts and tones played to it from now on, a beep or notice copy kept back for the agent's
        hold too, go in them (one playing switches itself: ``SetMediaRemote``)."""
        if leg is self.outside_leg:
            if self.media is not None:
                self.media = replace(self.media, packet_ms=packet_ms)
            return
        if self.agent_media is not None:
            self.agent_media = replace(self.agent_media, packet_ms=packet_ms)
        owed = self._agent_owed
        if owed is not None:
            self._agent_owed = replace(owed, media=replace(owed.media, packet_ms=packet_ms))

    def not_recording(self) -> list[Effect]:
        """No recording runs although ``bridge`` started one: storage refused it, or stopped it
        since (disk full, the evidence record refused it). The beep tells the agent the call is
        recorded: one playing stops at once (the agent hears the other party again, and its
        evidence says it did not play to the end), and one kept back for the agent's hold is
        dropped, neither played nor said to have played, like the beep of a recording that did
        not start. A notice copy claims no recording: it plays on."""
        beeping = self._agent_beeped and self.recording and self.stage is AnnouncerStage.BRIDGED
        self.recording = False  # nothing to pause or resume, and no PCI code to confirm
        if isinstance(self._agent_owed, PlayTone):
            self._agent_owed = None
            return [
                LogEvent(
                    level="info",
                    text="the call is not recorded: the agent's beep kept back for its hold will not play",
                    call_ref=self.call_ref,
                )
            ]
        if not beeping:
            return []
        self._agent_beeped = False
        return [
            StopPlayout(call_ref=self.call_ref, leg=self.outside_leg.other),
            LogEvent(
                level="info",
                text="the call is not recorded: the agent's beep stops if it still plays",
                call_ref=self.call_ref,
            ),
        ]

    def _notice_playing(self) -> bool:
        """The outside party hears the notice now (its copy plays to the agent alongside)."""
        return (
            self.stage is AnnouncerStage.ANNOUNCING
            and not self._notice_held
            and self._session is not None
            and self._session.state is consent.ConsentState.NOTICE
        )

    def _to_agent(self, effect: PlayPrompt | PlayTone, out: list[Effect]) -> None:
        """Play ``effect`` to the agent, or keep it back while the agent's side holds the call."""
        if not self._agent_held:
            out.append(effect)
            self._agent_beeped = isinstance(effect, PlayTone)
            return
        self._agent_owed = effect
        what = "beep" if isinstance(effect, PlayTone) else "copy of the notice"
        out.append(
            LogEvent(
                level="info",
                text=f"the agent holds the call: its {what} plays when it comes off hold",
                call_ref=self.call_ref,
            )
        )

    def _agent_copy(self, prompt_id: str, language: str, lead_in_ms: int = 0) -> PlayPrompt:
        assert self.agent_media is not None
        return PlayPrompt(
            call_ref=self.call_ref,
            leg=self.outside_leg.other,
            prompt_id=prompt_id,
            language=language,
            media=self.agent_media,
            report=False,
            agent_copy=True,
            lead_in_ms=lead_in_ms,
        )

    def manual_pause(self, pause: bool, reason: str) -> list[Effect]:
        """Pause (or resume) for ``reason`` on request (the operator's ``calls pause``): the
        outside party hears no tone, as it did not ask for it."""
        return self._set_pause(reason, pause)

    def _confirm_pci_code(self, paused: bool, out: list[Effect]) -> None:
        """The outside party's PCI pause code ``paused`` the recording (or resumed it): it hears
        so, unless the policy turns the tones off, or it holds the call (RFC 3264 §6.1: no media
        to a party that receives none). Nothing when no recording runs (a transfer keeps the
        parties apart, or consent was withdrawn for every purpose): the code paused nothing."""
        if not self.recording:
            return
        assert self.media is not None  # a recording runs: the notice played in it
        way = "paused" if paused else "resumed"
        tone = Tone.PCI_PAUSED if paused else Tone.PCI_RESUMED
        if not self.policy.pci_pause_tones:
            heard = "no tone (the policy's pci_pause_tones is off)"
        elif self._outside_held:
            heard = "no tone (it holds the call)"
        else:
            out.append(PlayTone(call_ref=self.call_ref, leg=self.outside_leg, tone=tone, media=self.media))
            heard = f"the {tone} tone"
        text = f"the outside party's PCI pause code {way} the recording; it hears {heard}"
        out.append(LogEvent(level="info", text=text, call_ref=self.call_ref))

    def _set_pause(self, reason: str, pause: bool) -> list[Effect]:
        if pause == (reason in self._paused):
            return []
        if pause:
            self._paused.add(reason)
        else:
            self._paused.discard(reason)
        if not self.recording:
            return []
        effect = PauseRecording if pause else ResumeRecording
        return [effect(call_ref=self.call_ref, reason=reason)]

    def pause(self) -> list[Effect]:
        """A transfer is under way: keep the parties apart and stop recording."""
        out: list[Effect] = [BridgeMedia(call_ref=self.call_ref, bridged=False)]
        if self.recording:
            self.recording = False
            out.append(StopRecording(call_ref=self.call_ref, reason="transfer"))
        return out

    def resume(self, now: float) -> list[Effect]:
        """The same outside party again (a new agent, or a failed transfer): join and record again."""
        if self.stage is not AnnouncerStage.BRIDGED:
            return [BridgeMedia(call_ref=self.call_ref, bridged=True)]
        self.stage = AnnouncerStage.DECIDED if self.purposes else self.stage
        return self.bridge(now)

    def party_changed(
        self,
        reason: str,
        media: MediaFormat | None,
        now: float,
        *,
        sip_call_id: str = "",
        remote_uri: str = "",
    ) -> list[Effect]:
        """A new outside party (in dialog ``sip_call_id``, known as ``remote_uri``): stop recording
        and play the notice to them before anything else."""
        self._notice_held = False  # the hold left with the party that held
        self._outside_held = False
        # The PCI pause was keyed by the party that left: the new one's recording is not paused
        # for it, and its keys start the code afresh.
        self._paused.discard("pci")
        if self._pci_code is not None:
            self._pci_code = PciCode(self._pci_code.code)
        out: list[Effect] = []
        self._interrupt(now, out)  # the party leaving was still hearing a prompt
        out.append(
            Evidence(
                call_ref=self.call_ref,
                leg=self.outside_leg,
                event=consent.PartyChanged(
                    reason=reason, at=now, sip_call_id=sip_call_id, remote_uri=remote_uri
                ),
            )
        )
        if self.recording:
            self.recording = False
            out.append(StopRecording(call_ref=self.call_ref, reason="new-party"))
        out.extend(self.start(media or self.media or _PCMU, now, agent_media=self.agent_media))
        return out

    def ended(self, now: float) -> list[Effect]:
        """The call is over at ``now``: a prompt still playing was cut short, a recording in
        progress stops."""
        out: list[Effect] = []
        self._interrupt(now, out)
        if self.recording:
            self.recording = False
            out.append(StopRecording(call_ref=self.call_ref, reason="ended"))
        return out

    # Internals ---------------------------------------------------------------------------------

    def _hold_outlasted(self, now: float, out: list[Effect]) -> None:
        # The party held the call for the whole limit without hearing the notice: nothing may be
        # recorded of it (GDPR Art. 13), and the call goes as for a notice that cannot be played.
        self._notice_held = False
        self._hold_deadline = None
        self.stage = AnnouncerStage.FAILED
        self.purposes = ()
        held_for = f"the outside party held the call for {self.hold_limit_s:g} s"
        notice = self.policy.notice_prompt_id
        event = consent.NoticeFailed(
            prompt_id=notice,
            language=self.policy.language,
            reason=f"announcement not heard: {held_for}",
            at=now,
        )
        out.append(Evidence(call_ref=self.call_ref, leg=self.outside_leg, event=event))
        out.append(
            LogEvent(
                level="warning",
                text=f"{held_for} without hearing recording notice {notice!r}: {self._failure_consequence()}",
                call_ref=self.call_ref,
            )
        )

    def _interrupt(self, now: float, out: list[Effect]) -> None:
        # The outside party is gone: the evidence says where its notice or question was cut off.
        if self._session is not None and self.stage is AnnouncerStage.ANNOUNCING:
            self._translate(self._session.interrupt(now), out)

    def _withdrawable(self) -> tuple[str, ...]:
        """The purposes granted by consent that recording may serve now."""
        consent_ids = {purpose.purpose_id for purpose in self.policy.purposes if purpose.needs_consent}
        return tuple(purpose for purpose in self.purposes if purpose in consent_ids)

    def _withdraw(self, mechanism: consent.DigitMechanism, now: float, out: list[Effect]) -> None:
        withdrawn = self._withdrawable()
        if not withdrawn:
            return
        remaining = tuple(purpose for purpose in self.purposes if purpose not in withdrawn)
        self.purposes = remaining
        leg = self.outside_leg
        out.append(
            Evidence(
                call_ref=self.call_ref,
                leg=leg,
                event=consent.ConsentWithdrawn(purposes=withdrawn, mechanism=mechanism, at=now),
            )
        )
        if self.recording:  # not while paused for a transfer: resume() then records ``remaining`` only
            out.append(StopRecording(call_ref=self.call_ref, reason="withdrawn"))
            self.recording = bool(remaining)
            if remaining:
                out.append(
                    StartRecording(
                        call_ref=self.call_ref,
                        outside_leg=leg,
                        purposes=remaining,
                        policy=self.policy.name,
                        media=self.media,
                    )
                )
                # A hold, PCI or operator's pause still in force holds the new recording paused from
                # its start (PCI DSS 3.3.1); its end resumes this recording.
                out.extend(self._pauses_in_force())
        out.append(self._withdrawn_log(withdrawn))

    def _translate(self, outputs: list[consent.Output], out: list[Effect]) -> None:
        leg = self.outside_leg
        media = self.media
        assert media is not None
        for output in outputs:
            if isinstance(output, consent.PlayPrompt):
                lead_in = NOTICE_LEAD_IN_MS if output.prompt_id == self.policy.notice_prompt_id else 0
                out.append(
                    PlayPrompt(
                        call_ref=self.call_ref,
                        leg=leg,
                        prompt_id=output.prompt_id,
                        language=output.language,
                        media=media,
                        lead_in_ms=lead_in,
                    )
                )
                if (
                    self.agent_hears_notice
                    and output.prompt_id == self.policy.notice_prompt_id
                    and self.agent_media is not None
                ):
                    self._to_agent(self._agent_copy(output.prompt_id, output.language, lead_in), out)
            elif isinstance(output, consent.StopPrompt):
                out.append(StopPlayout(call_ref=self.call_ref, leg=leg))
            else:
                out.append(Evidence(call_ref=self.call_ref, leg=leg, event=output))
                if isinstance(output, consent.ConsentFinished):
                    self.stage = AnnouncerStage.DECIDED
                    self.purposes = output.purposes
                elif isinstance(output, consent.ConsentWithdrawn):  # during a later question
                    out.append(self._withdrawn_log(output.purposes))
                elif isinstance(output, consent.NoticeFailed):
                    self.stage = AnnouncerStage.FAILED
                    self.purposes = ()
                    out.append(StopPlayout(call_ref=self.call_ref, leg=leg))
                    out.append(
                        LogEvent(
                            level="warning",
                            text=f"prompt {output.prompt_id!r} failed ({output.reason}): "
                            f"{self._failure_consequence()}",
                            call_ref=self.call_ref,
                        )
                    )


_PCMU = MediaFormat(codec="pcmu", payload_type=0)
