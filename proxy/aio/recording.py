"""Recording a call: the relayed RTP of both legs into 8 kHz stereo, handed on in one-second blocks.

A ``CallRecording`` taps the packets each leg's party sends (the ``inbound`` hooks of the call's
``MediaSession``): the outside party's go to the left channel, the PBX side's to the right. Per
packet it only appends the packet and the loop time to its channel's lists; once a second
``flush`` hands each channel's packets to the ``StereoRecorder`` in one call (``feed_batch``, which
takes regular runs in bulk and decodes nothing), drains the audio up to a safety margin behind
the newest arrival (the reorder window plus jitter), masks in-band DTMF tones of the drained
block on both channels (a card number keyed during the call must not be stored, PCI DSS 3.3.1),
and writes the block to the ``RecordingHandle`` the composition root supplied, which seals and
stores it off the loop. Flushes fall on a 50 ms grid of the loop clock: the recordings of one
slot flush in one pass of the loop (their sink hands the blocks on together), and the slots
spread many recordings' work over the second.

The DTMF screen costs one small matrix product per block: the band powers of a 256-point FFT
of each 25 ms frame, for the few bins that matter. Only a channel whose block passes goes to the
exact Goertzel detector (``proxy.rtp.inband.dtmf_mask``).

Positions are samples (8000 per second) since the recording started; arrival positions come from
the event loop's clock, read once per packet (uvloop's ``time()`` is the loop's cached clock) and
turned into positions at the flush.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt

from proxy.aio.media import MediaSession
from proxy.b2bua.effects import MediaFormat, MediaLeg
from proxy.rtp.g711 import SAMPLE_RATE_HZ
from proxy.rtp.inband import dtmf_mask
from proxy.rtp.recorder import Channel, StereoRecorder
from proxy.rtp.recorder import MediaFormat as RecorderFormat

__all__ = [
    "FLUSH_GRID_S",
    "FLUSH_INTERVAL_S",
    "SAFETY_MARGIN_SAMPLES",
    "CallRecording",
    "RecordingHandle",
    "RecordingSink",
    "recorder_format",
]

_LOG = logging.getLogger("callherald.recording")

FLUSH_INTERVAL_S: Final = 1.0
FLUSH_GRID_S: Final = 0.05
"""Flushes happen on multiples of this (loop time): recordings in one slot are written together."""
SAFETY_MARGIN_SAMPLES: Final = 1600
"""Audio newer than this (200 ms) stays in the recorder at a flush: reordered packets find their place."""
_CHANNELS: Final = (Channel.LEFT, Channel.RIGHT)
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
        self._timer = self._loop.call_at(self._next_flush_at(), self._on_timer)

    def _next_flush_at(self) -> float:
        # A second from now, rounded up to the flush grid: the recordings due in one slot flush in
        # one pass of the loop, so the sink can hand their blocks on together, while the slots
        # spread the work of many recordings over the second (no long stall of the relay).
        slot = math.ceil((self._loop.time() + FLUSH_INTERVAL_S) / FLUSH_GRID_S)
        return slot * FLUSH_GRID_S

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
        self._timer = self._loop.call_at(self._next_flush_at(), self._on_timer)

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
        for channel, (packets, times) in zip(_CHANNELS, self._tapped, strict=True):
            if not packets:
                continue
            elapsed = np.asarray(times, dtype=np.float64) - self._started
            arrivals = (elapsed * SAMPLE_RATE_HZ).astype(np.int64)
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
_LOW_BINS: Final = range(20, 32)  # 625-1000 Hz: 697, 770, 852, 941 Hz (ITU-T Q.23)
_HIGH_BINS: Final = range(37, 55)  # 1156-1719 Hz: 1209, 1336, 1477, 1633 Hz
_SCREEN_MIN_POWER: Final = 200.0**2  # a frame quieter than about -44 dBm0 holds no key press


def _screen_basis() -> npt.NDArray[np.float32]:
    # The bins of a 256-point DFT of a zero-padded frame that the screen needs, as one matrix:
    # bin 0 and bin 128 (for the frame's total power), then cosine and sine of the band bins.
    n = np.arange(_SCREEN_FRAME)
    bins = np.array([*_LOW_BINS, *_HIGH_BINS])
    angles = 2 * np.pi * np.outer(n, bins) / _SCREEN_FFT
    columns = [np.ones(_SCREEN_FRAME), np.cos(np.pi * n), np.cos(angles), np.sin(angles)]
    return np.column_stack(columns).astype(np.float32)


def _screen_sums() -> npt.NDArray[np.float32]:
    # Squared projections -> (low-band power, high-band power, (|X0|**2 + |X128|**2) / 2).
    bands = len(_LOW_BINS) + len(_HIGH_BINS)
    sums = np.zeros((2 + 2 * bands, 3), dtype=np.float32)
    sums[0:2, 2] = 0.5
    for offset in (2, 2 + bands):  # cosine, then sine parts
        sums[offset : offset + len(_LOW_BINS), 0] = 1
        sums[offset + len(_LOW_BINS) : offset + bands, 1] = 1
    return sums


_SCREEN_BASIS: Final = _screen_basis()
_SCREEN_SUMS: Final = _screen_sums()
_LOUD_POWER: Final = _SCREEN_MIN_POWER * _SCREEN_FRAME * _SCREEN_FFT / 2
# total <= (256 + 2 * 200) / 2 * sum(x**2) (Cauchy-Schwarz bounds |X0|**2 and |X128|**2 by 200 * sum):
_MAX_POWER_PER_ENERGY: Final = (_SCREEN_FFT + 2 * _SCREEN_FRAME) / 2


def _frames_might_hold_dtmf(frames: npt.NDArray[np.float32]) -> npt.NDArray[np.bool_]:
    """Per 25 ms frame (rows of 200 samples at 8 kHz): could it carry a DTMF pair?

    A DTMF frame is loud and puts most of its energy in one low-group and one high-group band;
    noise and most speech do not. The bands' power is that of a 256-point FFT of the zero-padded
    frame, computed as one product with the few bins needed, and only for frames that may be loud;
    the frame's total (one-sided) power comes from Parseval's theorem,
    (256 * sum(x**2) + |X0|**2 + |X128|**2) / 2.
    """
    energy = np.einsum("ij,ij->i", frames, frames)
    result = np.zeros(len(frames), dtype=np.bool_)
    candidates = np.flatnonzero(energy * _MAX_POWER_PER_ENERGY > _LOUD_POWER)
    if not candidates.size:
        return result
    every = candidates.size == len(frames)
    projected = (frames if every else frames[candidates]) @ _SCREEN_BASIS
    low, high, edges = ((projected * projected) @ _SCREEN_SUMS).T
    total = _SCREEN_FFT / 2 * (energy if every else energy[candidates]) + edges
    loud = total > _LOUD_POWER
    pair = (low > 0.1 * total) & (high > 0.05 * total) & (low + high > 0.5 * total)
    result[candidates] = loud & pair
    return result


def _channels_to_check(block: npt.NDArray[np.int16]) -> list[int]:
    """The columns of an 8 kHz stereo block that the screen passes, both screened in one product."""
    rows = len(block)
    if rows < _SCREEN_FRAME:
        return [0, 1] if rows else []  # too short to judge: check it exactly
    whole = rows // _SCREEN_FRAME * _SCREEN_FRAME
    channels = block.T
    if whole < rows:  # the tail is screened as one more frame, the block's last 25 ms
        channels = np.concatenate([channels[:, :whole], channels[:, rows - _SCREEN_FRAME :]], axis=1)
    frames = channels.reshape(-1, _SCREEN_FRAME).astype(np.float32)  # left's frames, then right's
    hits = _frames_might_hold_dtmf(frames).reshape(2, -1)
    return [column for column in (0, 1) if hits[column].any()]


def _mask_dtmf(block: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ) -> None:
    """Silence both channels wherever either carries a DTMF tone (in place)."""
    if len(block) == 0:
        return
    step = sample_rate_hz // SAMPLE_RATE_HZ  # the screen looks at 8 kHz (every other sample of 16 kHz)
    spans = np.zeros(len(block), dtype=np.bool_)
    for column in _channels_to_check(block[::step]):
        spans |= dtmf_mask(np.ascontiguousarray(block[:, column]), sample_rate_hz)
    if not spans.any():
        return
    # Widen each span a little: the detector's edges are within a hop of the tone's.
    kernel = np.ones(2 * _MASK_GUARD_SAMPLES * step + 1, dtype=np.int32)
    widened = np.convolve(spans.astype(np.int32), kernel, "same") > 0
    block[widened] = 0
