"""Runs the B2BUA core on asyncio: listeners, one timer, the media relay, and effect execution.

Every input (a SIP message, a timer, a quiet media session) goes into the sans-IO core with
``now = loop.time()``; every effect that comes back is carried out here, in order. One timer
handle follows the core's ``next_deadline``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from proxy.aio.announce import CallAnnouncements, InbandJudge, PromptSource
from proxy.aio.control import PauseOutcome
from proxy.aio.media import MediaRelay, RtpPortProbe
from proxy.aio.playout import Playout, PlayoutResult, PlayoutScheduler
from proxy.aio.recording import (
    CallRecording,
    FlushSlots,
    RecordingSink,
    RecordingUnavailableError,
    recording_sample_rate_hz,
)
from proxy.aio.transport import Address, Transport, start_tcp, start_udp
from proxy.b2bua.admission import LAG_PROBE_INTERVAL_S
from proxy.b2bua.consent import DigitMechanism
from proxy.b2bua.core import B2bua, CallSummary
from proxy.b2bua.effects import (
    BridgeMedia,
    CallEnded,
    CallStarted,
    CloseMedia,
    Effect,
    Evidence,
    ListenForDigits,
    LogEvent,
    MediaLeg,
    OpenMedia,
    PauseRecording,
    PlayPrompt,
    PlayTone,
    ResumeRecording,
    SendSip,
    SetMediaRemote,
    StartRecording,
    StopPlayout,
    StopRecording,
    Tone,
    TranslateAudio,
)
from proxy.b2bua.settings import Side
from proxy.rtp.digits import HeardDigit
from proxy.sip import DEFAULT_LIMITS, ParserLimits, Request, Response

__all__ = [
    "AgentInformStarted",
    "AgentInformed",
    "CallRecordSink",
    "ListenError",
    "ListenSpec",
    "ProxyService",
]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenSpec:
    """Where one side listens: host, port and ``udp`` or ``tcp``."""

    host: str
    port: int
    transport: str = "udp"


class ListenError(OSError):
    """A side's SIP listener cannot bind its address; ``side`` says which, ``errno`` why (when
    known: ``EADDRINUSE`` for a port another socket holds, ``EADDRNOTAVAIL`` for an address that
    is not the machine's own)."""

    def __init__(self, side: Side, spec: ListenSpec, error: OSError) -> None:
        # uvloop's UDP bind raises a bare "could not bind" error caused by the one that says why.
        cause = error
        if error.errno is None and isinstance(error.__cause__, OSError):
            cause = error.__cause__
        reason = str(error) if cause.errno is None else os.strerror(cause.errno).lower()
        if cause.errno == errno.EADDRINUSE:
            reason += ": another program, or another callherald, listens there"
        elif cause.errno == errno.EADDRNOTAVAIL:
            reason += ": it is not an address of this machine"
        super().__init__(cause.errno, reason)
        self.side = side
        self.spec = spec

    def __str__(self) -> str:
        where = f"{self.spec.host}:{self.spec.port} ({self.spec.transport})"
        return f"cannot listen for the {self.side} side on {where}: {self.strerror}"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentInformed:
    """What was played into the agent's ``leg`` to tell it the call is recorded (GDPR Art. 13: the
    agent is a data subject too), as it played: the beep as recording starts (``tone``) or the
    agent's copy of an outbound call's notice (``prompt``: ``prompt_id``, ``language``, ``version``
    and ``audio_sha256``). Times are on the loop's clock: ``started_at`` and ``ended_at`` as the
    playout reports them (None when nothing sounded), ``at`` when it was over. ``complete`` when
    it played whole; ``failure`` why it did not play or did not reach the agent."""

    call_ref: str
    leg: MediaLeg
    tone: Tone | None = None
    prompt: Mapping[str, str] = field(default_factory=dict)
    started_at: float | None
    ended_at: float | None
    at: float
    complete: bool
    failure: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentInformStarted:
    """The beep (``tone``) or notice copy (``prompt``) of an ``AgentInformed`` started sounding into
    the agent's ``leg`` at ``started_at`` (the loop's clock: its first frame's deadline). Its
    ``AgentInformed`` follows once it is over, with the same ``started_at``."""

    call_ref: str
    leg: MediaLeg
    tone: Tone | None = None
    prompt: Mapping[str, str] = field(default_factory=dict)
    started_at: float


class CallRecordSink(Protocol):
    """Where the facts of a call go: the consent-and-purpose record (storage plugs in here)."""

    def call_started(self, effect: CallStarted) -> None: ...

    def evidence(self, effect: Evidence, details: Mapping[str, str]) -> None: ...

    def recording(self, effect: StartRecording | StopRecording | PauseRecording | ResumeRecording) -> None:
        """A ``StartRecording`` comes once the recording runs, a ``StopRecording`` only for one
        that ran; pauses as the core reports them."""

    def not_recorded(self, effect: StartRecording, reason: str, at: float) -> None:
        """The core started recording at ``at`` but no recording could start, for ``reason``."""

    def agent_inform_started(self, playing: AgentInformStarted) -> None:
        """The beep or notice copy started sounding to the agent (a crash may come before it is
        over); ``agent_informed`` follows. One that never sounded is reported only as over."""

    def agent_informed(self, played: AgentInformed) -> None:
        """The beep or notice copy played to the agent is over (the beep of a recording that did
        not start is never reported: it is stopped unheard)."""

    def call_ended(self, effect: CallEnded) -> None: ...


class ProxyService:
    """The running proxy. ``start`` binds everything; ``stop`` ends calls and closes sockets."""

    def __init__(
        self,
        core: B2bua,
        *,
        listen: dict[Side, ListenSpec],
        media_bind_address: str,
        rtp_inactivity_timeout_s: float,
        limits: ParserLimits = DEFAULT_LIMITS,
        logger: logging.Logger | None = None,
        prompts: PromptSource | None = None,
        records: CallRecordSink | None = None,
        recordings: RecordingSink | None = None,
        constant_ssrc: bool = True,
        port_probe: RtpPortProbe | None = None,
    ) -> None:
        """``port_probe``: the core's port check, told when the relay closes a session's sockets."""
        self.core = core
        self._constant_ssrc = constant_ssrc
        self._prompts = prompts
        self._records = records
        self._recordings = recordings
        self.recording: dict[str, CallRecording] = {}
        # Per call, every dynamic payload type its SDPs put a recordable codec on (the latest wins).
        self._payload_aliases: dict[str, dict[int, int]] = {}
        # Per call and leg, what listens to the packets that leg's party sends (digits, recording).
        self._taps: dict[tuple[str, MediaLeg], dict[str, Callable[[bytes], None]]] = {}
        self._announcements: dict[str, CallAnnouncements] = {}
        # What the evidence record needs of the prompt playing into a leg (version, audio hash).
        self._playing: dict[tuple[str, MediaLeg], dict[str, str]] = {}
        self.scheduler: PlayoutScheduler | None = None
        self._inband_judge: InbandJudge | None = None
        self._flush_slots: FlushSlots | None = None
        # The agent's beep, played with the StartRecording that follows it: stopped unheard (it
        # starts on the next playout tick) if the recording does not start.
        self._beeps: dict[str, Playout] = {}
        # Per call, what plays to the agent to tell it the call is recorded, until reported: a
        # playout the call's end stopped is reported before the call's end is.
        self._agent_playouts: dict[str, list[_AgentPlayout]] = {}
        self._listen = listen
        self._limits = limits
        self._log = logger or logging.getLogger("callherald")
        self.media = MediaRelay(
            media_bind_address,
            inactivity_timeout_s=rtp_inactivity_timeout_s,
            on_inactive=self._on_media_inactive,
            port_probe=port_probe,
        )
        self.transports: dict[Side, Transport] = {}
        self._owned: list[Transport] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_deadline: float | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._lag_probe: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def local_address(self, side: Side) -> Address:
        return self.transports[side].local_address

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.scheduler = PlayoutScheduler(loop=self._loop)
        self._inband_judge = InbandJudge(self._loop)
        self._flush_slots = FlushSlots(self._loop)
        shared = self._listen[Side.PBX] == self._listen[Side.CARRIER]
        for side in (Side.PBX, Side.CARRIER):
            spec = self._listen[side]
            if shared and side is Side.CARRIER:
                self.transports[side] = self.transports[Side.PBX]
                continue
            callback_side = None if shared else side
            try:
                transport = await self._open(spec, callback_side)
            except OSError as error:
                for opened in self._owned:
                    await opened.close()
                self._owned.clear()
                raise ListenError(side, spec, error) from error
            self.transports[side] = transport
            self._owned.append(transport)
        self._sweeper = asyncio.create_task(self.media.sweep_forever())
        if self.core.watches_loop_lag:
            self._probe_lag_at(self._now() + LAG_PROBE_INTERVAL_S)
        self._execute(self.core.start(self._now()))

    async def _open(self, spec: ListenSpec, side: Side | None) -> Transport:
        def on_message(message: Request | Response, source: Address, _transport: Transport) -> None:
            self._on_message(message, source, side)

        def accept_source(host: str) -> bool:
            return self.core.accepts_source(host, side)

        start = start_tcp if spec.transport == "tcp" else start_udp
        return await start(
            spec.host,
            spec.port,
            on_message,
            limits=self._limits,
            logger=self._log,
            accept_source=accept_source,
        )

    async def stop(self) -> None:
        """End calls with BYE, un-register, give the messages a moment to leave, close everything."""
        if self._loop is None:
            return
        self._execute(self.core.shutdown(self._now()))
        await asyncio.sleep(0.05)
        if self._timer is not None:
            self._timer.cancel()
        if self._lag_probe is not None:
            self._lag_probe.cancel()
            self._lag_probe = None
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        for recording in list(self.recording.values()):
            recording.close("shutdown")
        self.recording.clear()
        for announcements in self._announcements.values():
            announcements.close()
        self._announcements.clear()
        if self.scheduler is not None:
            self.scheduler.close()
        if self._inband_judge is not None:
            self._inband_judge.close()
        if self._flush_slots is not None:
            self._flush_slots.close()
        self.media.close_all()
        for transport in self._owned:
            await transport.close()
        self._loop = None

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    # The operator's control socket (proxy.aio.control.ControlHandler) -----------------------------

    def control_calls(self) -> list[dict[str, object]]:
        """The active calls: reference, direction, whether a recording is being written and the
        reasons it is paused for (``hold``, ``pci``, ``api``). A call that is not recorded, and will
        not be, is paused for nothing: a pause still in force then (a PCI pause during which the
        caller withdrew consent for every purpose left) pauses no recording."""
        return [
            {
                "call": summary.call_ref,
                "direction": summary.direction,
                "recording": summary.call_ref in self.recording,
                "paused": [] if self._not_recorded(summary) else list(summary.paused),
            }
            for summary in self.core.call_summaries()
        ]

    def control_pause(self, call_ref: str, pause: bool) -> PauseOutcome:
        """Pause or resume a call's recording for an operator (PCI DSS 3.3.1: an agent taking a card
        number); silence is written meanwhile. During the notice the pause waits for the recording;
        a call that is not recorded, and will not be, is left as it is."""
        summary = None if self._loop is None else self.core.call_summary(call_ref)
        if summary is None:
            return PauseOutcome.NO_SUCH_CALL
        recording = call_ref in self.recording
        if self._not_recorded(summary):
            return PauseOutcome.NOT_RECORDED
        if not pause and "api" not in summary.paused:
            return PauseOutcome.NOT_PAUSED  # a resume ends the operator's pause only
        if pause and "api" in summary.paused:
            return PauseOutcome.ALREADY_PAUSED  # one pause per reason: a second one changes nothing
        self._log.info("[%s] the operator asks to %s the recording", call_ref, "pause" if pause else "resume")
        self._execute(self.core.pause_recording(call_ref, pause, self._now()))
        return PauseOutcome.APPLIED if recording else PauseOutcome.PENDING

    def _not_recorded(self, summary: CallSummary) -> bool:
        """No recording of the call runs, and none will start: the notice and questions are over
        (or there are none), or recording is switched off."""
        may_record = self._recordings is not None and self._recordings.recording_enabled
        return summary.call_ref not in self.recording and not (summary.recording_pending and may_record)

    # Inputs -----------------------------------------------------------------------------------

    def _on_message(self, message: Request | Response, source: Address, side: Side | None) -> None:
        resolved = side if side is not None else self.core.side_of(source[0])
        self._execute(self.core.receive(message, source, resolved, self._now()))

    def _on_media_inactive(self, call_ref: str) -> None:
        self._execute(self.core.media_inactive(call_ref, self._now()))

    def _probe_lag_at(self, due: float) -> None:
        assert self._loop is not None
        self._lag_probe = self._loop.call_at(due, self._on_lag_probe, due)

    def _on_lag_probe(self, due: float) -> None:
        # How late the loop ran this timer: the core sheds new calls while that stays high.
        now = self._now()
        self._execute(self.core.loop_lag(max(0.0, now - due)))
        if self._loop is not None:
            self._probe_lag_at(now + LAG_PROBE_INTERVAL_S)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_deadline = None
        self._execute(self.core.handle_timers(self._now()))

    # Effects ----------------------------------------------------------------------------------

    def _execute(self, effects: list[Effect]) -> None:
        # When each recording started here began: the pauses that come with its start (a withdrawal
        # during a pause, ``calls pause`` during the notice) are stored from that very moment.
        started_at: dict[str, float] = {}
        index = 0
        while index < len(effects):
            effect = effects[index]
            index += 1
            if isinstance(effect, SendSip):
                self.transports[effect.side].send(effect.message, effect.destination)
            elif isinstance(effect, SetMediaRemote):
                self.media.set_remote(
                    effect.call_ref,
                    effect.leg,
                    effect.remote,
                    rtcp=effect.rtcp,
                    rtcp_mux=effect.rtcp_mux,
                    new_party=effect.new_party,
                )
                if effect.aliases:
                    self._learn_aliases(effect.call_ref, effect.aliases)
                announcements = self._announcements.get(effect.call_ref)
                if announcements is not None and effect.packet_ms is not None:
                    announcements.repacketize(effect.leg, effect.packet_ms)
            elif isinstance(effect, TranslateAudio):
                self.media.translate(effect.call_ref, effect.leg, effect.translation)
            elif isinstance(effect, OpenMedia):
                try:
                    self.media.open(effect.call_ref, effect.a_port, effect.b_port)
                except OSError as error:
                    effects.extend(self.core.media_failed(effect.call_ref, str(error), self._now()))
            elif isinstance(effect, CloseMedia):
                self._stop_recording(effect.call_ref, "ended")
                self._payload_aliases.pop(effect.call_ref, None)
                self._beeps.pop(effect.call_ref, None)
                for key in [key for key in self._taps if key[0] == effect.call_ref]:
                    del self._taps[key]
                announcements = self._announcements.pop(effect.call_ref, None)
                if announcements is not None:
                    announcements.close()
                self.media.close(effect.call_ref)
            elif isinstance(effect, PlayPrompt | PlayTone | StopPlayout | BridgeMedia | ListenForDigits):
                effects.extend(self._media_effect(effect))
            elif isinstance(effect, Evidence):
                details = self._playing.get((effect.call_ref, effect.leg), {})
                if self._records is not None:
                    self._records.evidence(effect, details)
                else:
                    self._log.info("[%s] evidence %s %s", effect.call_ref, effect.leg, effect.event)
            elif isinstance(effect, StartRecording):
                # Reported once its outcome is known: a call that is not recorded is never said to be.
                started_at[effect.call_ref] = self._now()
                why_not = self._start_recording(effect, started_at[effect.call_ref])
                if self._records is not None:
                    if why_not is None:
                        self._records.recording(effect)
                    else:
                        self._records.not_recorded(effect, why_not, self._now())
                if why_not is not None:
                    effects.extend(self.core.not_recording(effect.call_ref))
            elif isinstance(effect, StopRecording):
                if self._records is not None and effect.call_ref in self.recording:
                    self._records.recording(effect)
                self._stop_recording(effect.call_ref, effect.reason)
            elif isinstance(effect, PauseRecording | ResumeRecording):
                if self._records is not None:
                    self._records.recording(effect)
                recording = self.recording.get(effect.call_ref)
                if recording is not None and isinstance(effect, PauseRecording):
                    recording.pause(effect.reason, started_at.get(effect.call_ref, self._now()))
                elif recording is not None:
                    started_at.pop(effect.call_ref, None)  # a pause after a resume starts now
                    recording.resume(effect.reason, self._now())
            elif isinstance(effect, LogEvent):
                prefix = f"[{effect.call_ref}] " if effect.call_ref else ""
                self._log.log(_LEVELS.get(effect.level, logging.INFO), "%s%s", prefix, effect.text)
            elif isinstance(effect, CallStarted):
                if self._records is not None:
                    self._records.call_started(effect)
                self._log.info(
                    "[%s] %s call from %s to %s",
                    effect.call_ref,
                    effect.direction,
                    effect.caller,
                    effect.callee,
                )
            elif isinstance(effect, CallEnded):
                for key in [key for key in self._playing if key[0] == effect.call_ref]:
                    del self._playing[key]
                pending = self._agent_playouts.pop(effect.call_ref, [])
                for watched in [watched for watched in pending if watched.playout.finished.done()]:
                    pending.remove(watched)  # stopped with the media: reported now, and only now
                    self._report_agent_playout(watched)
                if self._records is not None:
                    self._records.call_ended(effect)
                self._log.info("[%s] call ended: %s", effect.call_ref, effect.reason)
        self._reschedule()

    # Notice, consent and digits ------------------------------------------------------------------

    def _call_announcements(self, call_ref: str) -> CallAnnouncements | None:
        announcements = self._announcements.get(call_ref)
        if announcements is None:
            session = self.media.sessions.get(call_ref)
            if session is None or self.scheduler is None:
                return None
            announcements = CallAnnouncements(
                session=session,
                scheduler=self.scheduler,
                constant_ssrc=self._constant_ssrc,
                judge=self._inband_judge,
            )
            self._announcements[call_ref] = announcements
        return announcements

    def _media_effect(
        self, effect: PlayPrompt | PlayTone | StopPlayout | BridgeMedia | ListenForDigits
    ) -> list[Effect]:
        """Carry out one media effect; what the core answers to a failure comes back."""
        call_ref = effect.call_ref
        announcements = self._call_announcements(call_ref)
        if announcements is None:
            if isinstance(effect, PlayPrompt) and effect.report:
                return self.core.prompt_failed(
                    call_ref, effect.leg, "the call has no media session", self._now()
                )
            return []
        if isinstance(effect, BridgeMedia):
            announcements.bridge(effect.bridged)
        elif isinstance(effect, StopPlayout):
            announcements.stop(effect.leg)
        elif isinstance(effect, ListenForDigits):
            leg = effect.leg

            def heard(digit: HeardDigit) -> None:
                self._on_digit(call_ref, leg, digit)

            for other in (MediaLeg.A, MediaLeg.B):
                self._set_tap(call_ref, other, "digits", None)
            tap = announcements.listener_tap(effect.media, effect.inband, heard)
            if tap is not None:
                self._set_tap(call_ref, leg, "digits", tap)
        elif isinstance(effect, PlayTone):
            if self._prompts is None:
                return []
            try:
                frames = self._prompts.tone(effect.tone, effect.media.codec)
            except Exception as error:  # a tone that cannot be made is logged; the call goes on
                self._log.warning("[%s] %s tone unavailable: %s", call_ref, effect.tone, error)
                return []
            playout = announcements.play(effect.leg, frames, effect.media, loop=effect.tone is Tone.RINGBACK)
            if effect.tone is Tone.BEEP:
                # Kept until the recording it announces has started. One released by the agent's
                # unhold announces a recording that runs already: if a restart (after a withdrawal)
                # fails, it stops as ``not_recording`` says, and its end is stored.
                if call_ref not in self.recording:
                    self._beeps[call_ref] = playout
                self._watch_agent_playout(_AgentPlayout(call_ref=call_ref, leg=effect.leg, playout=playout))
        elif isinstance(effect, PlayPrompt):
            return self._play_prompt(announcements, effect)
        return []

    def _play_prompt(self, announcements: CallAnnouncements, effect: PlayPrompt) -> list[Effect]:
        call_ref, leg = effect.call_ref, effect.leg
        try:
            if self._prompts is None:
                raise LookupError("no prompts configured")
            prompt = self._prompts.prompt(effect.prompt_id, effect.language)
            frames = prompt.frames_for(effect.media.codec)
            not_before = self._now() + effect.lead_in_ms / 1000 if effect.lead_in_ms else None
            playout = announcements.play(leg, frames, effect.media, not_before=not_before)
        except Exception as error:  # missing, corrupt, no such codec: the core fails closed
            self._log.warning(
                "[%s] prompt %s/%s cannot play: %s", call_ref, effect.prompt_id, effect.language, error
            )
            why = str(error) or type(error).__name__
            if effect.agent_copy:
                self._agent_informed(
                    AgentInformed(
                        call_ref=call_ref,
                        leg=leg,
                        prompt={"prompt_id": effect.prompt_id, "language": effect.language},
                        started_at=None,
                        ended_at=None,
                        at=self._now(),
                        complete=False,
                        failure=why,
                    )
                )
            if not effect.report:
                return []
            return self.core.prompt_failed(call_ref, leg, why, self._now())
        details = {
            "prompt_id": prompt.id,
            "language": prompt.language,
            "version": prompt.version,
            "audio_sha256": prompt.audio_sha256.get(effect.media.codec, ""),
        }
        if effect.agent_copy:
            watched = _AgentPlayout(call_ref=call_ref, leg=leg, playout=playout, prompt=details)
            self._watch_agent_playout(watched)
        if effect.report:
            self._playing[(call_ref, leg)] = {**details, "codec": effect.media.codec}

            def finished(done: asyncio.Future[PlayoutResult]) -> None:
                if not done.cancelled():
                    self._on_prompt_done(call_ref, leg, done.result())

            playout.finished.add_done_callback(finished)
        return []

    def _watch_agent_playout(self, watched: _AgentPlayout) -> None:
        """Report ``watched`` to the record sink as it starts sounding and once it is over (a
        cancelled one never)."""
        pending = self._agent_playouts.setdefault(watched.call_ref, [])
        pending.append(watched)

        def started(at: float) -> None:
            # One already over (its call ended on the tick it started) is reported whole instead.
            if watched in pending and not watched.playout.finished.done() and self._records is not None:
                self._records.agent_inform_started(
                    AgentInformStarted(
                        call_ref=watched.call_ref,
                        leg=watched.leg,
                        tone=None if watched.prompt else Tone.BEEP,
                        prompt=watched.prompt,
                        started_at=at,
                    )
                )

        watched.playout.when_started(started)

        def report() -> None:
            if watched in pending:  # not reported with its call's end
                pending.remove(watched)
                self._report_agent_playout(watched)

        def over(done: asyncio.Future[PlayoutResult]) -> None:
            # The playout is over as its last frame is sent, which sounds one frame longer: the
            # report waits for that end, so that it says only what has happened.
            ended_at = None if done.cancelled() else done.result().ended_at
            if ended_at is not None and self._loop is not None and ended_at > self._now():
                self._loop.call_at(ended_at, report)
            else:
                report()

        watched.playout.finished.add_done_callback(over)

    def _report_agent_playout(self, watched: _AgentPlayout) -> None:
        done = watched.playout.finished
        if done.cancelled() or self._loop is None:
            return  # a beep stopped unheard: its recording did not start
        result = done.result()
        now = self._now()
        # One reported with its call's end, while its last frame still sounded, ended with the call.
        ended_at = None if result.ended_at is None else min(result.ended_at, now)
        failure = None if result.error is None else f"the playout failed: {result.error}"
        if failure is None and result.frames_sent < result.frames_played:
            failure = f"only {result.frames_sent} of {result.frames_played} frames reached the agent"
        self._agent_informed(
            AgentInformed(
                call_ref=watched.call_ref,
                leg=watched.leg,
                tone=None if watched.prompt else Tone.BEEP,
                prompt=watched.prompt,
                started_at=result.started_at,
                ended_at=ended_at,
                at=now,
                complete=result.completed and failure is None,
                failure=failure,
            )
        )

    def _agent_informed(self, played: AgentInformed) -> None:
        if self._records is not None:
            self._records.agent_informed(played)

    # Recording ---------------------------------------------------------------------------------

    def _set_tap(self, call_ref: str, leg: MediaLeg, name: str, tap: Callable[[bytes], None] | None) -> None:
        """Add (or with None remove) a listener to what ``leg``'s party sends; one hook per leg."""
        session = self.media.sessions.get(call_ref)
        taps = self._taps.setdefault((call_ref, leg), {})
        if tap is None:
            taps.pop(name, None)
        else:
            taps[name] = tap
        if session is None:
            return
        listeners = tuple(taps.values())
        protocol = session.rtp[leg]
        if not listeners:
            protocol.inbound = None
        elif len(listeners) == 1:
            protocol.inbound = listeners[0]
        else:

            def fan_out(data: bytes) -> None:
                for listener in listeners:
                    listener(data)

            protocol.inbound = fan_out

    def _start_recording(self, effect: StartRecording, at: float) -> str | None:
        """Start recording the call at ``at`` (now); None when it runs, else why it cannot."""
        beep = self._beeps.pop(effect.call_ref, None)
        why_not = self._open_recording(effect, at)
        if why_not is not None and beep is not None:
            beep.finished.cancel()  # no beep for a call that is not being recorded
        return why_not

    def _open_recording(self, effect: StartRecording, at: float) -> str | None:
        call_ref = effect.call_ref
        session = self.media.sessions.get(call_ref)
        if self._recordings is None or self._loop is None:
            return "no recording storage"
        if session is None:
            return "the call has no media session"
        if not self._recordings.recording_enabled:
            self._log.info("[%s] not recorded: recording is switched off (recording.enabled)", call_ref)
            return "recording is switched off (recording.enabled)"
        self._stop_recording(call_ref, "restarted")
        recording: CallRecording | None = None

        def stopped(why: str) -> None:
            # The store no longer keeps the recording (the evidence record refused it, the disk is
            # full, a write failed): it is stopped here too (``calls list`` then says the call is
            # not recorded).
            if recording is not None and self.recording.get(call_ref) is recording:
                self._log.error("[%s] recording stopped, the call is NOT recorded: %s", call_ref, why)
                self._stop_recording(call_ref, "stopped-by-storage")
                self._execute(self.core.not_recording(call_ref))

        try:
            handle = self._recordings.open(
                call_ref,
                purposes=effect.purposes,
                policy=effect.policy,
                outside_leg=effect.outside_leg,
                started_at=at,
                sample_rate_hz=recording_sample_rate_hz(effect.media),
                on_stopped=stopped,
            )
        except RecordingUnavailableError as unavailable:
            self._log.warning("[%s] not recorded: %s", call_ref, unavailable)
            return str(unavailable)
        except Exception as error:
            self._log.exception("[%s] recording could not be opened", call_ref)
            return f"the recording could not be opened: {error}"
        recording = CallRecording(handle, outside_leg=effect.outside_leg, media=effect.media, loop=self._loop)
        recording.learn_aliases(self._payload_aliases.get(call_ref, {}).items())
        self.recording[call_ref] = recording
        for leg in (MediaLeg.A, MediaLeg.B):
            session.rtp[leg].tap(recording.tapped(leg), self._loop.time)
        assert self._flush_slots is not None  # made in start(), as the loop is
        self._flush_slots.add(recording)
        return None

    def _learn_aliases(self, call_ref: str, aliases: tuple[tuple[int, int], ...]) -> None:
        if call_ref not in self.media.sessions:
            return  # the call's media is closed (or never opened): nothing will be recorded
        self._payload_aliases.setdefault(call_ref, {}).update(aliases)
        recording = self.recording.get(call_ref)
        if recording is not None:
            recording.learn_aliases(aliases)

    def _stop_recording(self, call_ref: str, reason: str) -> None:
        recording = self.recording.pop(call_ref, None)
        if recording is None:
            return
        session = self.media.sessions.get(call_ref)
        if session is not None:
            for protocol in session.rtp.values():
                protocol.untap()
        try:
            recording.close(reason)
        except Exception:
            self._log.exception("[%s] closing the recording failed", call_ref)

    def _on_prompt_done(self, call_ref: str, leg: MediaLeg, result: PlayoutResult) -> None:
        if self._loop is None:
            return
        if result.error is not None:
            reason = f"the playout failed: {result.error}"
            self._execute(self.core.prompt_failed(call_ref, leg, reason, self._now()))
            return
        if not result.completed:
            return  # stopped on purpose (an answer during a question, the call ended): the core knows
        if result.frames_sent < result.frames_played:
            reason = f"only {result.frames_sent} of {result.frames_played} frames reached the party"
            self._execute(self.core.prompt_failed(call_ref, leg, reason, self._now()))
            return
        ended_at = result.ended_at if result.ended_at is not None else self._now()
        loop = self._loop

        def report() -> None:
            if self._loop is not None:
                self._execute(self.core.prompt_finished(call_ref, leg, ended_at))

        # The last frame is still sounding until ended_at: nothing may follow the notice before that.
        loop.call_at(ended_at, report)

    def _on_digit(self, call_ref: str, leg: MediaLeg, digit: HeardDigit) -> None:
        if self._loop is None:
            return
        mechanism = DigitMechanism.RFC4733 if digit.mechanism == "rfc4733" else DigitMechanism.INBAND
        now = self._now()
        # The key went down that long before the end of the packet or audio that reported it,
        # which arrived just now (in-band: in the last 20 ms packet before the judging round).
        pressed_at = now - digit.since_onset_s
        try:
            effects = self.core.digit(call_ref, leg, digit.digit, mechanism, now, pressed_at)
        except Exception:
            self._log.exception("[%s] key press %r could not be handled", call_ref, digit.digit)
            return
        self._execute(effects)

    def _reschedule(self) -> None:
        deadline = self.core.next_deadline()
        if deadline == self._timer_deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_deadline = deadline
        if deadline is not None and self._loop is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class _AgentPlayout:
    """A beep (no ``prompt``) or notice copy playing to the agent, waiting to be reported."""

    call_ref: str
    leg: MediaLeg
    playout: Playout
    prompt: Mapping[str, str] = field(default_factory=dict)
