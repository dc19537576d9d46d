"""Recording a call: the relayed RTP of both legs into 8 kHz stereo, handed on in one-second blocks.

A ``CallRecording`` taps the packets each leg's party sends (the ``inbound`` hooks of the call's
``MediaSession``): the outside party's go to the left channel, the PBX side's to the right. Per
packet it only appends the packet and the loop time to its channel's lists; once a second
``flush`` hands each channel's packets to the ``StereoRecorder`` in one call (``feed_batch``, which
takes regular runs in bulk and decodes nothing), drains the audio up to a safety margin behind
the newest arrival (the reorder window plus jitter), masks in-band DTMF tones of the drained
block on both channels (a card number keyed during the call must not be stored, PCI DSS 3.3.1),
and writes the block to the ``RecordingHandle`` the composition root supplied, which seals and
stores it off the loop.

Positions are samples (8000 per second) since the recording started; arrival positions come from
the event loop's clock, read once per packet (uvloop's ``time()`` is the loop's cached clock) and
turned into positions at the flush.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final, Protocol

import numpy as np

from proxy.aio.media import MediaSession
from proxy.b2bua.effects import MediaFormat, MediaLeg
from proxy.rtp.g711 import SAMPLE_RATE_HZ
from proxy.rtp.inband import dtmf_mask
from proxy.rtp.recorder import Channel, StereoRecorder
from proxy.rtp.recorder import MediaFormat as RecorderFormat

__all__ = [
    "FLUSH_INTERVAL_S",
    "SAFETY_MARGIN_SAMPLES",
    "CallRecording",
    "RecordingHandle",
    "RecordingSink",
    "recorder_format",
]

_LOG = logging.getLogger("callherald.recording")

FLUSH_INTERVAL_S: Final = 1.0
SAFETY_MARGIN_SAMPLES: Final = 1600
"""Audio newer than this (200 ms) stays in the recorder at a flush: reordered packets find their place."""
_MASK_GUARD_SAMPLES: Final = 80  # 10 ms around a detected tone, for its ramps


class RecordingHandle(Protocol):
    """One recording being written. Every method returns at once; the work happens elsewhere."""

    def write(self, pcm: bytes) -> None:
        """Append interleaved stereo s16le samples (left: outside party)."""

    def pause(self, reason: str, at: float) -> None:
        """Silence is being written from ``at`` (loop time) for ``reason`` (``hold``, ``pci``)."""

    def resume(self, at: float) -> None: ...

    def close(self, *, at: float, reason: str) -> None:
        """The recording ended at ``at``; everything written is complete."""


class RecordingSink(Protocol):
    """Opens recordings; returns None when recording is impossible (storage full or failed)."""

    def open(
        self,
        call_ref: str,
        *,
        purposes: tuple[str, ...],
        policy: str,
        outside_leg: MediaLeg,
        started_at: float,
        sample_rate_hz: int = 8000,
    ) -> RecordingHandle | None:
        """``sample_rate_hz``: 16000 when G.722 was negotiated, else 8000."""
        ...


def recorder_format(media: MediaFormat | None) -> RecorderFormat:
    """What the recorder decodes: the negotiated codec's payload type (G.711 both when unknown)."""
    if media is None or media.codec not in ("pcmu", "pcma", "g722"):
        return RecorderFormat()
    return RecorderFormat(
        audio_payload_types=frozenset({media.payload_type}), event_payload_type=media.event_payload_type
    )


class CallRecording:
    """The recording of one call while it runs (see the module docstring)."""

    def __init__(
        self,
        session: MediaSession,
        handle: RecordingHandle,
        *,
        outside_leg: MediaLeg,
        media: MediaFormat | None,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.handle = handle
        self.outside_leg = outside_leg
        self._session = session
        self._loop = loop
        self._started = loop.time()
        chosen = recorder_format(media)
        self.recorder = StereoRecorder(left=chosen, right=chosen, mask_telephone_events=True)
        self._timer: asyncio.TimerHandle | None = None
        self.closed = False
        self.blocks_written = 0
        self._pause_reasons: set[str] = set()
        # Per channel: the packets tapped since the last flush and the loop times they came at.
        self._tapped: tuple[tuple[list[bytes], list[float]], ...] = (([], []), ([], []))

    def tap(self, leg: MediaLeg) -> Callable[[bytes], None]:
        """The per-packet hook for what ``leg``'s party sends."""
        channel = Channel.LEFT if leg is self.outside_leg else Channel.RIGHT
        packets, times = self._tapped[channel]
        keep_packet = packets.append
        keep_time = times.append
        clock = self._loop.time

        def on_packet(data: bytes) -> None:
            keep_packet(data)
            keep_time(clock())

        return on_packet

    def start(self) -> None:
        self._timer = self._loop.call_later(FLUSH_INTERVAL_S, self._on_timer)

    def position(self, at: float | None = None) -> int:
        moment = self._loop.time() if at is None else at
        return max(0, int((moment - self._started) * SAMPLE_RATE_HZ))

    def pause(self, reason: str, at: float) -> None:
        """Silence from ``at`` for ``reason``; several reasons may overlap (hold during a PCI pause)."""
        first = not self._pause_reasons
        self._pause_reasons.add(reason)
        if first:
            self.recorder.pause(reason, at=self.position(at))
            self.handle.pause(reason, at)

    def resume(self, reason: str, at: float) -> None:
        """``reason`` is over; recording resumes when no other reason holds it paused."""
        if reason not in self._pause_reasons:
            return
        self._pause_reasons.discard(reason)
        if not self._pause_reasons:
            self.recorder.resume(at=self.position(at))
            self.handle.resume(at)

    def _on_timer(self) -> None:
        self._timer = None
        if self.closed:
            return
        try:
            self.flush(self.position() - SAFETY_MARGIN_SAMPLES)
        except Exception:
            _LOG.exception("recording flush failed")
        self._timer = self._loop.call_later(FLUSH_INTERVAL_S, self._on_timer)

    def flush(self, up_to: int) -> None:
        """Feed the packets tapped so far, then drain, mask DTMF and write everything before ``up_to``."""
        self._feed_tapped()
        if up_to <= self.recorder.drained:
            return
        block = self.recorder.drain(up_to)
        _mask_dtmf(block, self.recorder.sample_rate_hz)
        self.handle.write(block.astype("<i2", copy=False).tobytes())
        self.blocks_written += 1

    def _feed_tapped(self) -> None:
        # One batch per channel; arrival positions as the per-packet clock read gave them.
        for channel, (packets, times) in zip(Channel, self._tapped, strict=True):
            if not packets:
                continue
            elapsed = np.asarray(times, dtype=np.float64) - self._started
            arrivals: list[int] = (elapsed * SAMPLE_RATE_HZ).astype(np.int64).tolist()
            try:
                self.recorder.feed_batch(channel, packets, arrivals)
            finally:
                packets.clear()
                times.clear()

    def close(self, reason: str) -> None:
        """Write what is left and close the recording."""
        if self.closed:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        now = self._loop.time()
        try:
            self.flush(self.position(now))
        finally:
            self.handle.close(at=now, reason=reason)


_SCREEN_FRAME: Final = 200  # 25 ms
_SCREEN_FFT: Final = 256  # 31.25 Hz bins
_LOW_BAND: Final = slice(20, 32)  # 625-1000 Hz: 697, 770, 852, 941 Hz (ITU-T Q.23)
_HIGH_BAND: Final = slice(37, 55)  # 1156-1719 Hz: 1209, 1336, 1477, 1633 Hz
_SCREEN_MIN_POWER: Final = 200.0**2  # a frame quieter than about -44 dBm0 holds no key press


def _might_hold_dtmf(pcm: np.ndarray) -> bool:
    """A cheap screen (one small FFT per 25 ms): could any frame carry a DTMF pair?

    A DTMF frame puts most of its energy in one low-group and one high-group band; noise and most
    speech do not. Only blocks that pass go to the exact Goertzel detector.
    """
    usable = len(pcm) // _SCREEN_FRAME * _SCREEN_FRAME
    if usable == 0:
        return bool(len(pcm))
    frames = pcm[:usable].reshape(-1, _SCREEN_FRAME).astype(np.float32)
    power = np.abs(np.fft.rfft(frames, n=_SCREEN_FFT, axis=1)) ** 2
    total = power.sum(axis=1)
    low = power[:, _LOW_BAND].sum(axis=1)
    high = power[:, _HIGH_BAND].sum(axis=1)
    loud = total > _SCREEN_MIN_POWER * _SCREEN_FRAME * _SCREEN_FFT / 2
    pair = (low > 0.1 * total) & (high > 0.05 * total) & (low + high > 0.5 * total)
    return bool(np.any(loud & pair))


def _mask_dtmf(block: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ) -> None:
    """Silence both channels wherever either carries a DTMF tone (in place)."""
    if len(block) == 0:
        return
    step = sample_rate_hz // SAMPLE_RATE_HZ  # the screen looks at 8 kHz (every other sample of 16 kHz)
    spans = np.zeros(len(block), dtype=np.bool_)
    for column in (0, 1):
        channel = np.ascontiguousarray(block[:, column])
        if _might_hold_dtmf(channel[::step]):
            spans |= dtmf_mask(channel, sample_rate_hz)
    if not spans.any():
        return
    # Widen each span a little: the detector's edges are within a hop of the tone's.
    kernel = np.ones(2 * _MASK_GUARD_SAMPLES * step + 1, dtype=np.int32)
    widened = np.convolve(spans.astype(np.int32), kernel, "same") > 0
    block[widened] = 0
