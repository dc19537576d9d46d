"""Tones generated in code: the agent's recording beep and the caller's ringback.

Both come in the frame format of `announcements.frames` (20 ms per frame, every codec), each
rendition computed at its own sample rate, so nothing is resampled. Tone bursts start and end
with raised-cosine ramps so they do not click. Levels are sine peaks in dBFS.

- Beep: `BEEP_FREQUENCY_HZ` for `BEEP_MS`, once; the last frame is padded with silence.
- Ringback: the Dutch cadence (425 Hz, 1 s on, 4 s off); `ringback_frames` is one 5 s period,
  `iter_ringback` repeats it without end.
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
    "RINGBACK_FADE_MS",
    "RINGBACK_FREQUENCY_HZ",
    "RINGBACK_OFF_MS",
    "RINGBACK_ON_MS",
    "RINGBACK_PEAK_DBFS",
    "beep_frames",
    "iter_beep",
    "iter_ringback",
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


def beep_frames(codec: str) -> tuple[bytes, ...]:
    """The agent beep as 20 ms frames for ``codec`` (8 frames: 150 ms of tone, 10 ms of silence)."""
    return _beep()[check_codec(codec)]


def ringback_frames(codec: str) -> tuple[bytes, ...]:
    """One ringback period as 20 ms frames for ``codec`` (250 frames: 50 on, 200 off)."""
    return _ringback()[check_codec(codec)]


def iter_beep(codec: str) -> Iterator[bytes]:
    """The beep's frames, once."""
    return loop_frames(beep_frames(codec), loop=False)


def iter_ringback(codec: str) -> Iterator[bytes]:
    """Ringback frames without end: the period repeated."""
    return loop_frames(ringback_frames(codec), loop=True)
