"""What the B2BUA core asks the I/O layer to do, and what the I/O layer reports back.

Effects are frozen values; ``proxy.aio`` executes them in order. The core never touches a socket.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from proxy.b2bua.consent import EvidenceEvent
from proxy.b2bua.settings import Address, Side
from proxy.sip.message import Message

__all__ = [
    "BridgeMedia",
    "CallEnded",
    "CallStarted",
    "CloseMedia",
    "Effect",
    "Evidence",
    "LawTranslation",
    "ListenForDigits",
    "LogEvent",
    "MediaFormat",
    "MediaLeg",
    "OpenMedia",
    "PauseRecording",
    "PlayPrompt",
    "PlayTone",
    "ResumeRecording",
    "SendSip",
    "SetMediaRemote",
    "StartRecording",
    "StopPlayout",
    "StopRecording",
    "Tone",
    "TranslateAudio",
]


class MediaLeg(StrEnum):
    """The caller's leg (``a``, where the INVITE came from) and the callee's leg (``b``)."""

    A = "a"
    B = "b"

    @property
    def other(self) -> MediaLeg:
        return MediaLeg.B if self is MediaLeg.A else MediaLeg.A


@dataclass(frozen=True, slots=True, kw_only=True)
class SendSip:
    """Send ``message`` from the listener of ``side`` to ``destination``."""

    message: Message
    destination: Address
    side: Side


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenMedia:
    """Bind RTP (even port) and RTCP (port + 1) sockets for both legs of a call and relay between them."""

    call_ref: str
    a_port: int
    b_port: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SetMediaRemote:
    """Where the leg's peer said it receives RTP (from SDP); None while on hold or unknown.

    The relay latches to the first source it actually hears on the leg (symmetric RTP), and a new
    remote from a later offer or answer releases the latch. For ``new_party`` (a transfer target
    answered) the latch is dropped at once: the source heard so far is the party that left.

    ``aliases``: (dynamic type, static type of its codec) for each PCMU, PCMA or G.722 that SDP put
    on another type than its static one (RFC 3551 §6). A later offer may add such a type and a
    re-INVITE switch to it (RFC 3264 §8.3.2): the recording learns it from here.

    ``packet_ms``: the packet duration the party asks to receive (``a=ptime``, RFC 4566 §6, as
    ``call.packet_ms`` reads it); a prompt or tone playing into the leg goes on in it from its
    next packet. None when no SDP came.

    A party's offer in a re-INVITE or UPDATE is sent once the other party answered it with a 2xx
    (RFC 3264 §8): one refused leaves the relay, and the packets, as they were (RFC 3261 §14.2).

    ``rtcp``: where the party receives RTCP when its SDP's ``a=rtcp`` names it (RFC 3605 §2.1, as
    ``call.rtcp_remote`` reads it); None: at the RTP port + 1 of ``remote`` (RFC 3550 §11).
    ``rtcp_mux``: the party multiplexes RTCP on its RTP port (``a=rtcp-mux``, RFC 5761 §5.1.1),
    so nothing is sent to an RTCP port of it. Either way a party's own RTCP latches its RTCP leg
    as its RTP latches the RTP leg.
    """

    call_ref: str
    leg: MediaLeg
    remote: Address | None
    rtcp: Address | None = None
    rtcp_mux: bool = False
    new_party: bool = False
    aliases: tuple[tuple[int, int], ...] = ()
    packet_ms: int | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class LawTranslation:
    """A party answered one G.711 law to an offer that had only the other (RFC 3264 §6.1 forbids
    it): it sends and receives ``party_codec`` on ``party_payload_type``, the rest of the call
    (the other party, the prompts, the recording) ``call_codec`` on ``call_payload_type``."""

    party_payload_type: int
    party_codec: str  # "pcmu" or "pcma"
    call_payload_type: int
    call_codec: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TranslateAudio:
    """Translate the audio of ``leg``'s party as ``translation`` says, from its next packet on
    (``proxy.rtp.transcode``); None: relay it as it is again."""

    call_ref: str
    leg: MediaLeg
    translation: LawTranslation | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseMedia:
    """Stop relaying and close the call's sockets; the core has returned the ports to its pool."""

    call_ref: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CallStarted:
    """A call was accepted: ``direction`` is ``inbound`` (carrier to PBX) or ``outbound``."""

    call_ref: str
    direction: str
    caller: str
    callee: str
    a_call_id: str = ""
    b_call_id: str = ""
    at: float = field(default=0.0, compare=False)  # when, on the core's clock


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEnded:
    """A call is over on both legs, with the reason (e.g. ``bye-from-a``, ``busy``, ``rtp-timeout``)."""

    call_ref: str
    reason: str
    status: int | None = None
    at: float = field(default=0.0, compare=False)  # when, on the core's clock


@dataclass(frozen=True, slots=True, kw_only=True)
class LogEvent:
    """Something an operator should be able to read in the log."""

    level: str
    text: str
    call_ref: str | None = None


class Tone(StrEnum):
    """Tones generated in code: ringback (425 Hz, 1 s on, 4 s off), the agent's bridge beep, and
    what the outside party hears when its PCI pause code paused the recording (two short high
    beeps) or resumed it (one low beep)."""

    RINGBACK = "ringback"
    BEEP = "beep"
    PCI_PAUSED = "pci_paused"
    PCI_RESUMED = "pci_resumed"


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaFormat:
    """The audio codec negotiated on a leg and the telephone-event payload type, if any (RFC 4733)."""

    codec: str  # "pcmu", "pcma" or "g722"
    payload_type: int
    event_payload_type: int | None = None
    # (dynamic type, static type of its codec) for each PCMU, PCMA or G.722 the stream's SDP put
    # on another type than its static one (RFC 3551 §6): a re-INVITE may switch to any of them.
    aliases: tuple[tuple[int, int], ...] = field(default=(), compare=False)
    # How much audio the party wants in each packet it receives, ms (``a=ptime``, RFC 4566 §6):
    # what prompts and tones are sent to it in. Not part of the codec: a re-INVITE may change it.
    packet_ms: int = field(default=20, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class PlayPrompt:
    """Play prompt ``prompt_id`` in ``language`` into ``leg``; report back through
    ``B2bua.prompt_finished`` or ``B2bua.prompt_failed`` (when ``report``)."""

    call_ref: str
    leg: MediaLeg
    prompt_id: str
    language: str
    media: MediaFormat
    report: bool = True
    agent_copy: bool = False
    """The agent's copy of the outside party's notice: how it played goes into the evidence as
    what told the agent the call is recorded (``CallRecordSink.agent_informed``)."""
    lead_in_ms: int = 0
    """The first frame goes out no sooner than this after the request: a phone that opens its RTP
    socket only after processing our answer (RFC 3264 §5.1 says it must be ready at once; some
    are not) still hears the first word."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PlayTone:
    """Play a generated tone into ``leg`` (ringback repeats until ``StopPlayout``); no report."""

    call_ref: str
    leg: MediaLeg
    tone: Tone
    media: MediaFormat


@dataclass(frozen=True, slots=True, kw_only=True)
class StopPlayout:
    """Stop whatever plays into ``leg``."""

    call_ref: str
    leg: MediaLeg


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeMedia:
    """Whether the relay passes audio between the legs. Until the notice is heard and the consent
    window closed, the parties are kept apart: each hears only what is played to it."""

    call_ref: str
    bridged: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenForDigits:
    """Report key presses the party on ``leg`` sends (RFC 4733 events on ``media.event_payload_type``,
    and in-band tones in the audio when ``inband``) through ``B2bua.digit``; ``media`` None stops."""

    call_ref: str
    leg: MediaLeg
    media: MediaFormat | None
    inband: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    """An event for the consent-and-purpose record of the party on ``leg``."""

    call_ref: str
    leg: MediaLeg
    event: EvidenceEvent


@dataclass(frozen=True, slots=True, kw_only=True)
class StartRecording:
    """Recording may run from now on for ``purposes``; the outside party is on ``outside_leg``."""

    call_ref: str
    outside_leg: MediaLeg
    purposes: tuple[str, ...]
    policy: str
    media: MediaFormat | None = field(default=None, compare=False)  # the outside leg's codec (a hint)


@dataclass(frozen=True, slots=True, kw_only=True)
class PauseRecording:
    """Write silence from now on (``reason``: ``hold``, ``pci``, ``api``) until ``ResumeRecording``."""

    call_ref: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ResumeRecording:
    """Record the parties again after a pause."""

    call_ref: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StopRecording:
    """Stop recording (``reason``: ``withdrawn``, ``new-party``, ``ended``); a later
    ``StartRecording`` resumes it."""

    call_ref: str
    reason: str


Effect = (
    SendSip
    | OpenMedia
    | SetMediaRemote
    | TranslateAudio
    | CloseMedia
    | CallStarted
    | CallEnded
    | LogEvent
    | PlayPrompt
    | PlayTone
    | StopPlayout
    | BridgeMedia
    | ListenForDigits
    | Evidence
    | StartRecording
    | StopRecording
    | PauseRecording
    | ResumeRecording
)
