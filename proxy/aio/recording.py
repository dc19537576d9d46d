"""Recording a call: the relayed RTP of both legs into 8 kHz stereo, handed on in one-second blocks.

A ``CallRecording`` taps the packets each leg's party sends: the outside party's go to the left
channel, the PBX side's to the right. Per packet the relay only appends the packet and the loop
time to the channel's list (``LegProtocol.tap``), inline, with no call into the recording. Once a
second the recording is flushed: its channels' packets go to the ``StereoRecorder`` (which takes
regular runs in bulk and decodes nothing), the audio up to a safety margin behind the newest
arrival (the reorder window plus jitter) is drained, but not past where a party's packets
stopped coming less than a second before (held up on the way, they come in a burst and find
their place: ``flush_target``), in-band DTMF tones in the drained block are masked on both
channels (a card number keyed during the call must not be stored, PCI DSS 3.3.1), and the block
goes to the ``RecordingHandle`` the composition root supplied, which seals and stores it off the
loop.

``FlushSlots`` times the flushes on a 50 ms grid of the loop clock, one timer per slot: the
recordings of one slot are flushed together (``flush_together``), and the slots spread many
recordings' work over the second. Together, the steady channels of all of them (one stream
continuing in order, the common case) are checked and taken in one batch of array operations
(``proxy.rtp.recorder.feed_steady``), the rest one channel at a time (``feed_batch``); their
blocks are DTMF-masked together (``mask_dtmf_many``), and their sink hands the blocks to its writer
thread in one job. What Python and numpy cost per call and per operation is so paid once per slot.

The DTMF masking (the exact detector, ruling most frames out by its cheapest checks first) is
``proxy.rtp.masking``. A block is judged with ``MASK_CONTEXT_MS`` of audio on each side: the end of
what was written before it, and its own last ``MASK_CONTEXT_MS``, which is held back and written
with the next block. So a tone that a block boundary cuts is judged whole: a fragment of it
under about 12 ms, judged alone, would pass the detector and be stored. Closing writes the rest.

Codecs. The recorder decodes PCMU, PCMA and G.722 by their static payload types whatever was
negotiated first, so a codec changed by re-INVITE is recorded on (``recorder_format``); a call
that negotiated one of them on a dynamic type, or listed one there a re-INVITE may switch to, has
those packets retyped before they are fed (``static_aliases``); a type a later offer adds is
learnt as its SDP passes (``CallRecording.learn_aliases``). The stored rate is fixed when the
recording starts (``recording_sample_rate_hz``).

Positions are samples (8000 per second) since the recording started; arrival positions come from
the event loop's clock, read once per packet (uvloop's ``time()`` is the loop's cached clock) and
turned into positions at the flush.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Final, Protocol, cast

import numpy as np
import numpy.typing as npt

from proxy.b2bua.call import STATIC_PAYLOAD_TYPES
from proxy.b2bua.effects import MediaFormat, MediaLeg
from proxy.rtp.g711 import SAMPLE_RATE_HZ
from proxy.rtp.masking import mask_dtmf, mask_dtmf_many
from proxy.rtp.recorder import (
    RECORDED_PAYLOAD_TYPES,
    WIDEBAND_SAMPLE_RATE_HZ,
    Channel,
    SteadyFeed,
    StereoRecorder,
    drain_together,
    feed_steady,
)
from proxy.rtp.recorder import MediaFormat as RecorderFormat

__all__ = [
    "FLUSH_GRID_S",
    "FLUSH_INTERVAL_S",
    "MASK_CONTEXT_MS",
    "SAFETY_MARGIN_SAMPLES",
    "STALL_HOLD_SAMPLES",
    "CallRecording",
    "ChannelQuality",
    "FlushSlots",
    "MediaQuality",
    "RecordingHandle",
    "RecordingSink",
    "RecordingUnavailableError",
    "flush_together",
    "recorder_format",
    "recording_sample_rate_hz",
    "static_aliases",
]

_LOG = logging.getLogger("callherald.recording")

FLUSH_INTERVAL_S: Final = 1.0
FLUSH_GRID_S: Final = 0.05
"""Flushes happen on multiples of this (loop time): recordings in one slot are written together."""
SAFETY_MARGIN_SAMPLES: Final = 1600
"""Audio newer than this (200 ms) stays in the recorder at a flush: reordered packets find their place."""
STALL_HOLD_SAMPLES: Final = SAMPLE_RATE_HZ
"""A flush drains no further than where a party's newest packet ends while that is less than this
(1 s) behind: packets held up on the way (a stall) then come in a burst and still find their
place. A party silent for longer (silence suppression, gone) no longer holds the flush back."""
MASK_CONTEXT_MS: Final = 40
"""Audio the DTMF masking judges on each side of what it lets through (see the module docstring)."""
_CHANNELS: Final = (Channel.LEFT, Channel.RIGHT)
_NO_AUDIO: Final = np.zeros((0, 2), dtype=np.int16)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelQuality:
    """What the network cost one channel of the stored audio (in ms of the 8 kHz RTP clock the
    recorder counts in): ``lost_ms`` of silence put in for packets that never came (RFC 3550
    §A.3; not the pauses of silence suppression), ``late_packets`` that came after their place
    was stored and ``late_ms`` of audio they took with them, ``timestamp_jumps`` the audio was
    continued across as it came, and the silence put in (``drift_silence_ms``) or audio dropped
    (``drift_dropped_ms``) to correct clock drift; and, costing no audio, ``ssrc_changes`` (a new
    source, RFC 3550 §8.2, continued as it came) and ``duplicate_packets`` (the copy ignored)."""

    lost_ms: int = 0
    late_packets: int = 0
    late_ms: int = 0
    timestamp_jumps: int = 0
    drift_silence_ms: int = 0
    drift_dropped_ms: int = 0
    ssrc_changes: int = 0
    duplicate_packets: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaQuality:
    """What the network cost a recording: the outside party's channel (left) and the PBX side's."""

    outside_party: ChannelQuality
    pbx_side: ChannelQuality


class RecordingHandle(Protocol):
    """One recording being written. Every method returns at once; the work happens elsewhere."""

    def write(self, pcm: bytes) -> None:
        """Append interleaved stereo s16le samples (left: outside party)."""

    def pause(self, reason: str, at: float) -> None:
        """``reason`` (``hold``, ``pci``, ``api``) pauses the recording from ``at`` (loop time):
        silence is written while any reason holds it. Pauses for different reasons may overlap;
        each is told on its own."""

    def resume(self, reason: str, at: float) -> None:
        """The pause for ``reason`` ended at ``at`` (silence goes on while another reason holds)."""

    def close(self, *, at: float, reason: str, media_quality: MediaQuality) -> None:
        """The recording ended at ``at``; everything written is complete. ``media_quality`` is
        what the network cost the audio written, for its evidence record."""


class RecordingUnavailableError(Exception):
    """No recording can start now; the message says why (a full disk, recording switched off)."""


class RecordingSink(Protocol):
    """Opens recordings; raises ``RecordingUnavailableError`` when recording is impossible (storage full
    or failed) or switched off (``recording_enabled`` false)."""

    recording_enabled: bool

    def open(
        self,
        call_ref: str,
        *,
        purposes: tuple[str, ...],
        policy: str,
        outside_leg: MediaLeg,
        started_at: float,
        sample_rate_hz: int = 8000,
        on_stopped: Callable[[str], None] | None = None,
    ) -> RecordingHandle:
        """``sample_rate_hz``: 16000 when G.722 was negotiated, else 8000. ``on_stopped`` is
        called on the event loop, with why, when the store stops keeping the recording after it
        was opened: the evidence record refused it (its notice or consent is not in the record;
        nothing of it is kept), or its audio can no longer be written (a full disk, a failed
        write; it ends at what was written). The proxy should stop it."""
        ...


def recorder_format(media: MediaFormat | None) -> RecorderFormat:
    """What the recorder decodes: every codec it can, whatever was negotiated first. A re-INVITE
    may change the codec mid-call (RFC 3264 §8.3.2), and the packets tapped for one flush may
    straddle the change; PCMU, PCMA and G.722 have static payload types (RFC 3551 §6), so a
    packet's type tells its codec. The negotiated telephone-event type is left out of the audio."""
    events = None if media is None else media.event_payload_type
    if events in RECORDED_PAYLOAD_TYPES:
        events = None  # not a dynamic type (RFC 4733 §7.1.1): taken for audio
    return RecorderFormat(audio_payload_types=RECORDED_PAYLOAD_TYPES, event_payload_type=events)


def static_aliases(media: MediaFormat | None) -> dict[int, int]:
    """``{dynamic: static}`` payload types of the recordable codecs the outside party's stream
    put on a type other than their static one (``a=rtpmap:96 PCMU/8000``; RFC 3551 §6 assigns
    0, 8 and 9): the negotiated codec and any a re-INVITE may switch to. The recorder, which
    tells codecs by their static types, is fed those packets retyped."""
    if media is None:
        return {}
    aliases = dict(media.aliases)
    static = STATIC_PAYLOAD_TYPES.get(media.codec)
    if static is not None and media.payload_type != static:
        aliases[media.payload_type] = static
    if media.event_payload_type is not None:
        aliases.pop(media.event_payload_type, None)  # never the events' type (RFC 4733 §7.1.1)
    return aliases


def _retyped(packets: list[bytes], aliases: dict[int, int]) -> list[bytes]:
    # Each RTP packet of a dynamic payload type in ``aliases`` with its static type instead,
    # marker kept (RFC 3550 §5.1).
    retyped = []
    for packet in packets:
        static = aliases.get(packet[1] & 0x7F) if len(packet) > 1 else None
        retyped.append(
            packet
            if static is None
            else b"".join((packet[:1], bytes(((packet[1] & 0x80) | static,)), packet[2:]))
        )
    return retyped


def recording_sample_rate_hz(media: MediaFormat | None) -> int:
    """The rate a call is stored at, fixed for the recording: 16 kHz when the outside party's
    leg negotiated G.722 (wideband), 8 kHz otherwise."""
    return WIDEBAND_SAMPLE_RATE_HZ if media is not None and media.codec == "g722" else SAMPLE_RATE_HZ


class FlushSlots:
    """The flush timers of one event loop's recordings: one per 50 ms slot of the loop clock that
    has recordings due, each flushing them together (``flush_together``), not one per recording."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._due: dict[int, list[CallRecording]] = {}
        self._timers: dict[int, asyncio.TimerHandle] = {}

    def add(self, recording: CallRecording) -> None:
        """Flush ``recording`` a second from now, rounded up to the grid, and every second after."""
        slot = math.ceil((self._loop.time() + FLUSH_INTERVAL_S) / FLUSH_GRID_S)
        due = self._due.get(slot)
        if due is None:
            due = self._due[slot] = []
            self._timers[slot] = self._loop.call_at(slot * FLUSH_GRID_S, self._on_slot, slot)
        due.append(recording)

    def close(self) -> None:
        """Stop every timer (the recordings are closed by their owner)."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._due.clear()

    def _on_slot(self, slot: int) -> None:
        del self._timers[slot]
        recordings = [recording for recording in self._due.pop(slot, ()) if not recording.closed]
        try:
            flush_together(recordings)
        except Exception:
            _LOG.exception("recordings' flush failed")
        for recording in recordings:
            self.add(recording)


def flush_together(recordings: Sequence[CallRecording]) -> None:
    """Flush each recording up to its safety margin behind now. The steady channels of them all are
    fed in one batch (``feed_steady``) and their blocks DTMF-masked together. A recording
    that fails is logged; the others go on."""
    _feed_tapped(recordings)
    _write_up_to([(recording, recording.flush_target()) for recording in recordings])


def _write_up_to(targets: Sequence[tuple[CallRecording, int]], *, final: bool = False) -> None:
    # Drain each recording up to its position, mask DTMF in all blocks (each judged with its
    # context, see the module docstring), write them; ``final`` writes the held-back end too. A
    # block that cannot be masked is not written (PCI DSS 3.3.1: no card digits stored).
    judged: list[tuple[CallRecording, npt.NDArray[np.int16], int, int]] = []
    try:
        together = drain_together([(recording.recorder, up_to) for recording, up_to in targets])
    except Exception:
        _LOG.exception("recordings' batched drain failed; draining them one by one")
        together = [None] * len(targets)
    for (recording, up_to), drained_together in zip(targets, together, strict=True):
        try:
            drained = drained_together
            if drained is None:
                drained = recording.recorder.drain(up_to) if up_to > recording.recorder.drained else _NO_AUDIO
            start = len(recording.written_tail)
            # Unmasked: the end of what was written, what was held back, what was drained now.
            audio = np.concatenate((recording.written_tail, recording.held_back, drained))
            context = recording.mask_context_rows
            count = len(audio) - start - (0 if final else context)
            if count <= 0:
                recording.held_back = audio[start:]
                continue
            # Copies, not views: a view would keep the whole block alive until the next flush.
            recording.written_tail = audio[max(0, start + count - context) : start + count].copy()
            recording.held_back = audio[start + count :].copy()
            judged.append((recording, audio, start, count))
        except Exception:
            _LOG.exception("recording drain failed")
    rates = [recording.recorder.sample_rate_hz for recording, _, _, _ in judged]
    try:
        mask_dtmf_many([(audio, rate) for (_, audio, _, _), rate in zip(judged, rates, strict=True)])
    except Exception:
        _LOG.exception("batched DTMF masking failed; masking the blocks one by one")
        masked = []
        for item, rate in zip(judged, rates, strict=True):
            try:
                mask_dtmf(item[1], rate)
                masked.append(item)
            except Exception:
                _LOG.exception("DTMF masking failed: the block is not written")
        judged = masked
    for recording, audio, start, count in judged:
        try:
            recording.handle.write(audio[start : start + count].astype("<i2", copy=False).tobytes())
            recording.blocks_written += 1
        except Exception:
            _LOG.exception("recording write failed")


def _feed_tapped(recordings: Sequence[CallRecording]) -> None:
    # Every channel's tapped packets, with arrival positions as the per-packet clock read gave them.
    tapped: list[tuple[CallRecording, Channel, list[bytes], list[float]]] = []
    for recording in recordings:
        for channel, both in zip(_CHANNELS, recording._tapped, strict=True):
            if both:
                packets, times = cast(list[bytes], both[0::2]), cast(list[float], both[1::2])
                if recording.aliases:
                    packets = _retyped(packets, recording.aliases)
                tapped.append((recording, channel, packets, times))
                both.clear()
    counts = [len(times) for _, _, _, times in tapped]
    started = np.repeat([recording._started for recording, _, _, _ in tapped], counts)
    clock = np.fromiter(chain.from_iterable(times for _, _, _, times in tapped), np.float64, sum(counts))
    every_arrival = ((clock - started) * SAMPLE_RATE_HZ).astype(np.int64)
    ends = np.cumsum(counts).tolist()
    feeds: list[SteadyFeed] = [
        (recording.recorder, channel, packets, every_arrival[end - len(packets) : end])
        for (recording, channel, packets, _), end in zip(tapped, ends, strict=True)
    ]
    try:
        taken = feed_steady(feeds)
    except Exception:
        _LOG.exception("recordings' batched feed failed; feeding them one by one")
        taken = [False] * len(feeds)
    for (recorder, channel, batch, arrivals), was_taken in zip(feeds, taken, strict=True):
        if not was_taken:
            try:
                recorder.feed_batch(channel, batch, arrivals)
            except Exception:
                _LOG.exception("recording feed failed")


class CallRecording:
    """The recording of one call while it runs (see the module docstring)."""

    def __init__(
        self,
        handle: RecordingHandle,
        *,
        outside_leg: MediaLeg,
        media: MediaFormat | None,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.handle = handle
        self.outside_leg = outside_leg
        self._loop = loop
        self._started = loop.time()
        chosen = recorder_format(media)
        self._event_payload_type = chosen.event_payload_type
        self.aliases = static_aliases(media)  # packets of a dynamic type are retyped for the recorder
        self.recorder = StereoRecorder(
            left=chosen,
            right=chosen,
            mask_telephone_events=True,
            wideband=recording_sample_rate_hz(media) == WIDEBAND_SAMPLE_RATE_HZ,
        )
        self.closed = False
        self.blocks_written = 0
        # The masking's context (unmasked audio): the end of what was written, and what was
        # drained but held back to be judged with the next block.
        self.mask_context_rows = MASK_CONTEXT_MS * self.recorder.sample_rate_hz // 1000
        self.written_tail: npt.NDArray[np.int16] = _NO_AUDIO
        self.held_back: npt.NDArray[np.int16] = _NO_AUDIO
        self._pause_reasons: set[str] = set()
        # Per channel: the packets tapped since the last flush, each followed by the loop time it
        # came at (one list: the relay's two appends touch one object).
        self._tapped: tuple[list[bytes | float], list[bytes | float]] = ([], [])

    def learn_aliases(self, aliases: Iterable[tuple[int, int]]) -> None:
        """(dynamic type, static type) pairs an SDP of the call put a recordable codec on: packets
        of those types are recorded as that codec from the next flush on, those tapped since the
        last one included. A later SDP's pair wins (RFC 3264 §8.3.2 forbids a remapping, but a
        party that breaks it is believed); the telephone-event type is never taken for audio."""
        self.aliases.update(aliases)
        if self._event_payload_type is not None:
            self.aliases.pop(self._event_payload_type, None)

    def tapped(self, leg: MediaLeg) -> list[bytes | float]:
        """Where the relay appends what ``leg``'s party sends: a packet, then its arrival time (loop
        clock), and so on (``LegProtocol.tap``)."""
        return self._tapped[Channel.LEFT if leg is self.outside_leg else Channel.RIGHT]

    def position(self, at: float | None = None) -> int:
        moment = self._loop.time() if at is None else at
        return max(0, int((moment - self._started) * SAMPLE_RATE_HZ))

    def pause(self, reason: str, at: float) -> None:
        """Silence from ``at`` for ``reason``; several reasons may overlap (hold during a PCI pause),
        and the handle is told of each, so that the record keeps each reason's own interval."""
        if reason in self._pause_reasons:
            return
        if not self._pause_reasons:
            self.recorder.pause(reason, at=self.position(at))
        self._pause_reasons.add(reason)
        self.handle.pause(reason, at)

    def resume(self, reason: str, at: float) -> None:
        """``reason`` is over; recording resumes when no other reason holds it paused."""
        if reason not in self._pause_reasons:
            return
        self._pause_reasons.discard(reason)
        self.handle.resume(reason, at)
        if not self._pause_reasons:
            self.recorder.resume(at=self.position(at))

    def flush_target(self) -> int:
        """Where a flush now drains to: ``SAFETY_MARGIN_SAMPLES`` behind now, or where a party's
        packets stopped coming, if that is earlier and less than ``STALL_HOLD_SAMPLES`` ago."""
        now = self.position()
        target = now - SAFETY_MARGIN_SAMPLES
        for channel in _CHANNELS:
            heard = self.recorder.heard_until(channel)
            if heard is not None and now - STALL_HOLD_SAMPLES < heard < target:
                target = heard
        return target

    def flush(self, up_to: int, *, final: bool = False) -> None:
        """Feed the packets tapped so far, then drain, mask DTMF and write everything before
        ``up_to`` but the last ``MASK_CONTEXT_MS`` (all of it when ``final``)."""
        _feed_tapped([self])
        _write_up_to([(self, up_to)], final=final)

    def media_quality(self) -> MediaQuality:
        """What the network cost the audio written so far, per channel (final once closed)."""
        per_ms = SAMPLE_RATE_HZ // 1000  # the recorder counts samples of the 8 kHz RTP clock

        def channel_quality(channel: Channel) -> ChannelQuality:
            stats = self.recorder.stats(channel)
            return ChannelQuality(
                lost_ms=stats.lost_samples // per_ms,
                late_packets=stats.late_dropped,
                late_ms=stats.late_dropped_samples // per_ms,
                timestamp_jumps=stats.timestamp_jumps,
                drift_silence_ms=stats.drift_silence_samples // per_ms,
                drift_dropped_ms=stats.drift_dropped_samples // per_ms,
                ssrc_changes=stats.ssrc_changes,
                duplicate_packets=stats.duplicates,
            )

        return MediaQuality(
            outside_party=channel_quality(Channel.LEFT), pbx_side=channel_quality(Channel.RIGHT)
        )

    def close(self, reason: str) -> None:
        """Write what is left and close the recording (its slot drops it)."""
        if self.closed:
            return
        self.closed = True
        now = self._loop.time()
        try:
            self.flush(self.position(now), final=True)
        finally:
            # Read after the final flush: the packets it fed count too.
            self.handle.close(at=now, reason=reason, media_quality=self.media_quality())
