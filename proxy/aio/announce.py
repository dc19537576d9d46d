"""What the media side does for the notice and consent: play prompts and tones, keep the parties
apart, and listen for key presses.

The core asks through effects (``PlayPrompt``, ``PlayTone``, ``StopPlayout``, ``BridgeMedia``,
``ListenForDigits``); ``CallAnnouncements`` carries them out on a call's ``MediaSession`` with one
``AnnouncementPlayer`` per leg (installed as the leg's ``outbound`` hook while it has a say in the
relayed packets: while a prompt plays, while the parties are kept apart, and for good once relayed
packets are renumbered into the leg's stream) and a ``DigitListener`` on the outside party's
``inbound`` hook. With ``constant_ssrc`` false the relayed packets are left as they are after a
prompt, so the hook comes off the leg whenever no prompt plays and the parties are joined.

The listeners of all calls gather their in-band audio, and one ``InbandJudge`` per event loop
judges all of it together every ``JUDGE_INTERVAL_S`` (``judge_together``): a few array
operations per round for every call, where judging each call's audio on its own cost a few
per call. RFC 4733 events are reported as their packets come.

``proxy`` does not import the announcements package: prompts come through the ``PromptSource``
port the composition root plugs in.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from proxy.aio.media import MediaSession
from proxy.aio.playout import AnnouncementPlayer, Playout, PlayoutResult, PlayoutScheduler
from proxy.b2bua.effects import MediaFormat, MediaLeg, Tone
from proxy.rtp.digits import DigitListener, HeardDigit, judge_together
from proxy.rtp.g711 import ALAW_SILENCE_BYTE, ULAW_SILENCE_BYTE
from proxy.rtp.pacing import Repacketized

__all__ = [
    "G722_SILENCE_BYTE",
    "JUDGE_INTERVAL_S",
    "CallAnnouncements",
    "InbandJudge",
    "PlayablePrompt",
    "PromptSource",
]

JUDGE_INTERVAL_S: Final = 0.080
"""How often the in-band audio of every listener is judged: a press is reported up to this late."""

_LOG = logging.getLogger("callherald.announce")
_RTP_CLOCK_HZ = 8000  # PCMU, PCMA and G.722 all use an 8000 Hz RTP clock (RFC 3551 §4.5.2)
_FRAME_MS = 20  # the duration of a prompt's and a tone's frames
G722_SILENCE_BYTE: Final = b"\xfd"
"""G.722 at 64 kbit/s silence: the octet of the smallest positive step in both sub-bands (ITU-T
G.722: high-band code 3, low-band code 61); repeated, it decodes to digital silence once the
decoder has settled (the G.711 codes are a zero sample's, ``proxy.rtp.g711``)."""
_SILENCE_BYTE: Final[Mapping[str, bytes]] = {
    "pcmu": ULAW_SILENCE_BYTE,
    "pcma": ALAW_SILENCE_BYTE,
    "g722": G722_SILENCE_BYTE,
}
# A byte a sample, no state: a prompt's bytes may replace any packet's payload (RFC 3551 §4.5.14).
_CARRIED_CODECS: Final = frozenset({"pcmu", "pcma"})


class PlayablePrompt(Protocol):
    """A prepared prompt: its identity for the evidence record and its frames per codec."""

    @property
    def id(self) -> str: ...

    @property
    def language(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def audio_sha256(self) -> Mapping[Any, str]:
        """SHA-256 of the frames played, per codec name."""
        ...

    def frames_for(self, codec: str) -> Sequence[bytes]: ...


class PromptSource(Protocol):
    """Prepared prompts and generated tones. ``prompt`` raises (any exception, its text the reason)
    when the prompt cannot be played."""

    def prompt(self, prompt_id: str, language: str) -> PlayablePrompt: ...

    def tone(self, tone: Tone, codec: str) -> Sequence[bytes]: ...


class InbandJudge:
    """Judges the in-band audio every digit listener of one event loop has gathered, all of it
    together, every ``JUDGE_INTERVAL_S`` while any listener is registered."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._listeners: dict[DigitListener, Callable[[HeardDigit], None]] = {}
        self._handle: asyncio.TimerHandle | None = None
        self.rounds = 0

    def add(self, listener: DigitListener, heard: Callable[[HeardDigit], None]) -> None:
        """Judge ``listener``'s audio from now on, reporting its presses to ``heard``."""
        self._listeners[listener] = heard
        if self._handle is None:
            self._handle = self._loop.call_later(JUDGE_INTERVAL_S, self._on_round)

    def discard(self, listener: DigitListener) -> None:
        """Stop judging ``listener`` (audio it still holds is not judged)."""
        self._listeners.pop(listener, None)

    def close(self) -> None:
        self._listeners.clear()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _on_round(self) -> None:
        self._handle = None
        self.rounds += 1
        waiting = [listener for listener in self._listeners if listener.audio_waiting]
        try:
            found = judge_together(waiting)
        except Exception:
            _LOG.exception("judging the in-band audio failed")
            found = [[] for _ in waiting]
        for listener, presses in zip(waiting, found, strict=True):
            heard = self._listeners.get(listener)  # a press reported before may have ended its call
            if heard is None:
                continue
            for digit in presses:
                heard(digit)
        if self._listeners:
            self._handle = self._loop.call_later(JUDGE_INTERVAL_S, self._on_round)


@dataclass(slots=True, kw_only=True)
class _Cut:
    """How the audio playing into a leg is cut into packets: its 20 ms ``frames``, the byte of
    them the current packets start at, their size, and the frames the playout had played before."""

    playout: Playout
    frames: Sequence[bytes]
    silence: bytes
    loop: bool
    start: int
    packet_bytes: int
    played_before: int = 0


PromptDone = Callable[[str, MediaLeg, PlayoutResult], None]
DigitHeard = Callable[[str, MediaLeg, HeardDigit], None]


@dataclass(slots=True)
class CallAnnouncements:
    """A call's players and digit listener, on top of its media session."""

    session: MediaSession
    scheduler: PlayoutScheduler
    constant_ssrc: bool = True
    """True: after a prompt, relayed packets are renumbered into the leg's stream (one SSRC)."""
    judge: InbandJudge | None = None
    """Judges the listener's in-band audio with other calls'; None: the listener judges its own."""
    players: dict[MediaLeg, AnnouncementPlayer] = field(default_factory=dict)
    cuts: dict[MediaLeg, _Cut] = field(default_factory=dict)
    """What plays into each leg, for ``repacketize``."""
    listener: DigitListener | None = None
    closed: bool = False

    def player(self, leg: MediaLeg) -> AnnouncementPlayer:
        """The leg's player, created on first use; hooked into the relay towards that leg while it
        needs to see the relayed packets (``AnnouncementPlayer.needs_relay_hook``)."""
        player = self.players.get(leg)
        if player is None:
            player = AnnouncementPlayer(
                self.session.rtp[leg], self.scheduler, renumber_relayed=self.constant_ssrc
            )
            self.players[leg] = player
        return player

    def _fit_relay_hook(self, leg: MediaLeg) -> None:
        # Called after ``player(leg)``: the leg has its player.
        if not self.closed:
            player = self.players[leg]
            self.session.rtp[leg].outbound = player.relay if player.needs_relay_hook else None

    def play(
        self,
        leg: MediaLeg,
        frames: Sequence[bytes],
        media: MediaFormat,
        *,
        loop: bool = False,
        not_before: float | None = None,
    ) -> Playout:
        """Play ``frames`` (20 ms each) into ``leg``, in packets of the duration its party asked
        for (``MediaFormat.packet_ms``), paced on that duration's grid. A last packet the audio
        does not fill is filled with the codec's silence (RFC 3551 §4.5: every packet lasts the
        duration the receiver asked for)."""
        packet_ms = media.packet_ms
        source = frames
        silence = _SILENCE_BYTE.get(media.codec, b"")
        packet_bytes = len(frames[0]) * packet_ms // _FRAME_MS if frames else 0
        if packet_ms != _FRAME_MS and frames:
            # The same audio in longer or shorter packets: bytes scale with time at a constant bitrate.
            frames = Repacketized(frames, packet_bytes, loop=loop, silence=silence)
        playout = self.player(leg).play(
            frames,
            payload_type=media.payload_type,
            clock_rate=_RTP_CLOCK_HZ,
            samples_per_frame=_RTP_CLOCK_HZ * packet_ms // 1000,
            loop=loop,
            not_before=not_before,
            scheduler=self.scheduler.for_interval(packet_ms / 1000),
            carry_silence=silence if self._may_carry(leg, media) else None,
        )
        cut = _Cut(
            playout=playout, frames=source, silence=silence, loop=loop, start=0, packet_bytes=packet_bytes
        )
        self.cuts[leg] = cut
        self._fit_relay_hook(leg)

        def finished(_: object) -> None:
            if self.cuts.get(leg) is cut:
                del self.cuts[leg]
            self._fit_relay_hook(leg)

        playout.finished.add_done_callback(finished)
        return playout

    def _may_carry(self, leg: MediaLeg, media: MediaFormat) -> bool:
        # A prompt may ride in the other side's packets (``AnnouncementPlayer.play``) when they
        # may come (its party has an address: it was heard, or its SDP came) in the same G.711
        # codec, neither party's law translated.
        source, target = self.session.rtp[leg.other], self.session.rtp[leg]
        return (
            media.codec in _CARRIED_CODECS
            and (source.latched or source.remote) is not None
            and source.translator is None
            and target.translator is None
        )

    def repacketize(self, leg: MediaLeg, packet_ms: int) -> None:
        """``leg``'s party now asks for packets of ``packet_ms`` (a re-INVITE or UPDATE, RFC 4566
        §6): what plays into it goes on in them from its next packet on, where the audio left off
        (``AnnouncementPlayer.repacketize``)."""
        cut = self.cuts.get(leg)
        player = self.players.get(leg)
        if cut is None or player is None or player.playing is not cut.playout or not cut.frames:
            return
        frames = cut.frames
        packet_bytes = len(frames[0]) * packet_ms // _FRAME_MS
        if packet_bytes == cut.packet_bytes:
            return
        total = (len(frames) - 1) * len(frames[0]) + len(frames[-1])
        start = cut.start + (cut.playout.frames_played - cut.played_before) * cut.packet_bytes
        if cut.loop:
            start %= total
        elif start >= total:
            return  # the last packet is out
        player.repacketize(
            Repacketized(frames, packet_bytes, loop=cut.loop, silence=cut.silence, start=start),
            samples_per_frame=_RTP_CLOCK_HZ * packet_ms // 1000,
            scheduler=self.scheduler.for_interval(packet_ms / 1000),
        )
        cut.start, cut.packet_bytes, cut.played_before = start, packet_bytes, cut.playout.frames_played

    def stop(self, leg: MediaLeg) -> None:
        player = self.players.get(leg)
        if player is not None:
            player.stop()

    def bridge(self, bridged: bool) -> None:
        """Join the parties (True) or keep them apart (False); prompts play either way."""
        for leg in (MediaLeg.A, MediaLeg.B):
            self.player(leg).muted = not bridged
            self._fit_relay_hook(leg)

    def listener_tap(
        self, media: MediaFormat | None, inband: bool, heard: Callable[[HeardDigit], None]
    ) -> Callable[[bytes], None] | None:
        """A packet hook reporting key presses, replacing the call's listener; None when ``media``
        is None (stop listening)."""
        self._drop_listener()
        if media is None:
            return None
        listener = DigitListener(
            codec=media.codec,
            audio_payload_type=media.payload_type,
            event_payload_type=media.event_payload_type,
            inband=inband,
        )
        self.listener = listener
        judge = self.judge
        if judge is not None:
            judge.add(listener, heard)
        alone = judge is None

        def on_packet(data: bytes) -> None:
            for digit in listener.feed(data, judge=alone):
                heard(digit)

        return on_packet

    def _drop_listener(self) -> None:
        if self.listener is not None and self.judge is not None:
            self.judge.discard(self.listener)
        self.listener = None

    def close(self) -> None:
        self.closed = True
        self._drop_listener()
        for player in self.players.values():
            player.close()
        for protocol in self.session.rtp.values():
            protocol.inbound = None
            protocol.outbound = None
