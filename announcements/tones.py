"""Tones generated in code: the agent's recording beep, the caller's ringback and the outside
party's PCI pause confirmations.

Both come in the frame format of `announcements.frames` (20 ms per frame, every codec), each
rendition computed at its own sample rate, so nothing is resampled. Tone bursts start and end
with raised-cosine ramps so they do not click. Levels are sine peaks in dBFS.

- Beep: `BEEP_FREQUENCY_HZ` for `BEEP_MS`, once; the last frame is padded with silence.
- Ringback: the Dutch cadence (425 Hz, 1 s on, 4 s off); `ringback_frames` is one 5 s period,
  `iter_ringback` repeats it without end.
- PCI pause confirmations, to the outside party whose PCI pause code paused or resumed the
  recording: "paused" is two short high beeps (`PCI_PAUSED_FREQUENCY_HZ`), "recording again" one
  longer low beep (`PCI_RESUMED_FREQUENCY_HZ`), each once and under 0.5 s. Single tones, so no
  DTMF detector takes them for a key (ITU-T Q.23 keys are pairs), at frequencies well clear of
  every DTMF tone (697-1633 Hz; detectors accept 1.5-3.5 % off), of the agent's beep, of
  ringback and dial tone (425 Hz) and of the 2100 Hz answer tone that disables echo cancellers
  (ITU-T G.165).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from typing import Final

import numpy as np
import numpy.typing as npt

from announcements.frames import (
    FRAME_MS,
    NARROWBAND_RATE_HZ,
    WIDEBAND_RATE_HZ,
    Codec,
    check_codec,
    encode_frames,
    loop_frames,
)

__all__ = [
    "BEEP_FADE_MS",
    "BEEP_FREQUENCY_HZ",
    "BEEP_MS",
    "BEEP_PEAK_DBFS",
    "PCI_PAUSED_BEEPS",
    "PCI_PAUSED_BEEP_MS",
    "PCI_PAUSED_FREQUENCY_HZ",
    "PCI_PAUSED_GAP_MS",
    "PCI_RESUMED_FREQUENCY_HZ",
    "PCI_RESUMED_MS",
    "PCI_TONE_FADE_MS",
    "PCI_TONE_PEAK_DBFS",
    "RINGBACK_FADE_MS",
    "RINGBACK_FREQUENCY_HZ",
    "RINGBACK_OFF_MS",
    "RINGBACK_ON_MS",
    "RINGBACK_PEAK_DBFS",
    "beep_frames",
    "iter_beep",
    "iter_ringback",
    "pci_paused_frames",
    "pci_resumed_frames",
    "ringback_frames",
    "tone_burst",
]

BEEP_FREQUENCY_HZ: Final = 1400.0
BEEP_MS: Final = 150
BEEP_FADE_MS: Final = 5
BEEP_PEAK_DBFS: Final = -12.0

RINGBACK_FREQUENCY_HZ: Final = 425.0
RINGBACK_ON_MS: Final = 1000
RINGBACK_OFF_MS: Final = 4000
RINGBACK_FADE_MS: Final = 5
RINGBACK_PEAK_DBFS: Final = -19.0  # about -19 dBm0 RMS on a G.711 line

PCI_PAUSED_FREQUENCY_HZ: Final = 2000.0  # 22 % above the highest DTMF tone (1633 Hz)
PCI_PAUSED_BEEPS: Final = 2
PCI_PAUSED_BEEP_MS: Final = 120
PCI_PAUSED_GAP_MS: Final = 80
PCI_RESUMED_FREQUENCY_HZ: Final = 600.0  # 14 % below the lowest DTMF tone (697 Hz)
PCI_RESUMED_MS: Final = 240
PCI_TONE_FADE_MS: Final = 5
PCI_TONE_PEAK_DBFS: Final = -15.0  # about -15 dBm0 RMS on a G.711 line


def tone_burst(
    *, frequency_hz: float, on_ms: int, fade_ms: int, peak_dbfs: float, total_ms: int, rate_hz: int
) -> npt.NDArray[np.int16]:
    """A sine burst of ``on_ms`` with raised-cosine ramps of ``fade_ms``, then silence to ``total_ms``.

    The sine starts at phase 0 on the first sample; the ramps go from exactly 0 to full level over
    ``fade_ms`` at the start and mirror that at the end of the burst.
    """
    on = rate_hz * on_ms // 1000
    fade = rate_hz * fade_ms // 1000
    envelope = np.ones(on)
    if fade:
        ramp = 0.5 * (1.0 - np.cos(math.pi * np.arange(fade) / fade))
        envelope[:fade] = ramp
        envelope[on - fade :] = ramp[::-1]
    amplitude = 32768.0 * 10.0 ** (peak_dbfs / 20.0)
    tone = amplitude * envelope * np.sin(2.0 * math.pi * frequency_hz * np.arange(on) / rate_hz)
    out = np.zeros(rate_hz * total_ms // 1000, dtype=np.int16)
    out[:on] = np.rint(tone).astype(np.int16)
    return out


def _frames(
    *, frequency_hz: float, on_ms: int, fade_ms: int, peak_dbfs: float, total_ms: int
) -> dict[Codec, tuple[bytes, ...]]:
    def at(rate_hz: int) -> npt.NDArray[np.int16]:
        return tone_burst(
            frequency_hz=frequency_hz,
            on_ms=on_ms,
            fade_ms=fade_ms,
            peak_dbfs=peak_dbfs,
            total_ms=total_ms,
            rate_hz=rate_hz,
        )

    return encode_frames(at(NARROWBAND_RATE_HZ), at(WIDEBAND_RATE_HZ))


@functools.cache
def _beep() -> dict[Codec, tuple[bytes, ...]]:
    whole_frames_ms = -(-BEEP_MS // FRAME_MS) * FRAME_MS
    return _frames(
        frequency_hz=BEEP_FREQUENCY_HZ,
        on_ms=BEEP_MS,
        fade_ms=BEEP_FADE_MS,
        peak_dbfs=BEEP_PEAK_DBFS,
        total_ms=whole_frames_ms,
    )


@functools.cache
def _ringback() -> dict[Codec, tuple[bytes, ...]]:
    return _frames(
        frequency_hz=RINGBACK_FREQUENCY_HZ,
        on_ms=RINGBACK_ON_MS,
        fade_ms=RINGBACK_FADE_MS,
        peak_dbfs=RINGBACK_PEAK_DBFS,
        total_ms=RINGBACK_ON_MS + RINGBACK_OFF_MS,
    )


@functools.cache
def _pci_paused() -> dict[Codec, tuple[bytes, ...]]:
    def at(rate_hz: int) -> npt.NDArray[np.int16]:
        beep = tone_burst(
            frequency_hz=PCI_PAUSED_FREQUENCY_HZ,
            on_ms=PCI_PAUSED_BEEP_MS,
            fade_ms=PCI_TONE_FADE_MS,
            peak_dbfs=PCI_TONE_PEAK_DBFS,
            total_ms=PCI_PAUSED_BEEP_MS + PCI_PAUSED_GAP_MS,
            rate_hz=rate_hz,
        )
        # Each beep followed by the gap but the last, which ends the sound.
        return np.concatenate(
            [beep] * (PCI_PAUSED_BEEPS - 1) + [beep[: rate_hz * PCI_PAUSED_BEEP_MS // 1000]]
        )

    return encode_frames(at(NARROWBAND_RATE_HZ), at(WIDEBAND_RATE_HZ))


@functools.cache
def _pci_resumed() -> dict[Codec, tuple[bytes, ...]]:
    return _frames(
        frequency_hz=PCI_RESUMED_FREQUENCY_HZ,
        on_ms=PCI_RESUMED_MS,
        fade_ms=PCI_TONE_FADE_MS,
        peak_dbfs=PCI_TONE_PEAK_DBFS,
        total_ms=PCI_RESUMED_MS,
    )


def beep_frames(codec: str) -> tuple[bytes, ...]:
    """The agent beep as 20 ms frames for ``codec`` (8 frames: 150 ms of tone, 10 ms of silence)."""
    return _beep()[check_codec(codec)]


def ringback_frames(codec: str) -> tuple[bytes, ...]:
    """One ringback period as 20 ms frames for ``codec`` (250 frames: 50 on, 200 off)."""
    return _ringback()[check_codec(codec)]


def pci_paused_frames(codec: str) -> tuple[bytes, ...]:
    """The "recording paused" confirmation as 20 ms frames for ``codec`` (16 frames: two beeps of
    120 ms, 80 ms apart)."""
    return _pci_paused()[check_codec(codec)]


def pci_resumed_frames(codec: str) -> tuple[bytes, ...]:
    """The "recording again" confirmation as 20 ms frames for ``codec`` (12 frames: one beep of
    240 ms)."""
    return _pci_resumed()[check_codec(codec)]


def iter_beep(codec: str) -> Iterator[bytes]:
    """The beep's frames, once."""
    return loop_frames(beep_frames(codec), loop=False)


def iter_ringback(codec: str) -> Iterator[bytes]:
    """Ringback frames without end: the period repeated."""
    return loop_frames(ringback_frames(codec), loop=True)
