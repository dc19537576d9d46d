"""Helpers for the announcement tests: make audio files with numpy, wave and ffmpeg; analyse frames."""

from __future__ import annotations

import math
import subprocess
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
from G722 import G722

from announcements.frames import G722_BIT_RATE, WIDEBAND_RATE_HZ
from announcements.g711 import alaw_decode, ulaw_decode

FULL_SCALE = 32768.0
G722_DELAY_SAMPLES = 22
"""What G.722's quadrature mirror filters (encoder and decoder together) delay audio by, at 16 kHz."""


def tones(
    freqs_hz: tuple[float, ...], *, seconds: float, rate_hz: int, amplitude: float
) -> npt.NDArray[np.float64]:
    """A sum of sines, each of peak ``amplitude`` (full scale 1.0)."""
    t = np.arange(round(seconds * rate_hz)) / rate_hz
    total = np.zeros(t.shape[0], dtype=np.float64)
    for f in freqs_hz:
        total += amplitude * np.sin(2 * math.pi * f * t)
    return total


def write_wav(path: Path, signal: npt.NDArray[np.float64], *, rate_hz: int, channels: int = 1) -> Path:
    """A 16-bit PCM WAV of ``signal`` (full scale 1.0), the same signal on every channel."""
    pcm = np.clip(np.rint(signal * 32767), -32768, 32767).astype("<i2")
    interleaved = np.repeat(pcm, channels)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate_hz)
        out.writeframes(interleaved.tobytes())
    return path


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args], check=True)


def convert(source: Path, target: Path, *codec_args: str) -> Path:
    """``source`` re-encoded by ffmpeg into ``target`` (format from its extension)."""
    ffmpeg("-i", str(source), *codec_args, str(target))
    return target


def pcm_of(codec: str, frames: tuple[bytes, ...]) -> npt.NDArray[np.int16]:
    """The linear samples the frames carry (8 kHz for G.711; 16 kHz for g722, decoded in order
    from the decoder's reset state, as a receiver hearing them from the first does)."""
    payload = b"".join(frames)
    if codec == "pcmu":
        return ulaw_decode(payload)
    if codec == "pcma":
        return alaw_decode(payload)
    decoded = G722(WIDEBAND_RATE_HZ, G722_BIT_RATE).decode(payload)
    return np.asarray(decoded, dtype=np.int16)


def rms_dbfs(samples: npt.NDArray[np.int16]) -> float:
    values = samples.astype(np.float64)
    return 20 * math.log10(math.sqrt(float(np.mean(values * values))) / FULL_SCALE)


def magnitude_at(samples: npt.NDArray[np.int16], rate_hz: int, freq_hz: float) -> float:
    """Hann-windowed FFT magnitude at ``freq_hz`` (must fall on a bin: rate / len divides it)."""
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(samples.shape[0])))
    return float(spectrum[round(freq_hz * samples.shape[0] / rate_hz)])


def peak_frequency(samples: npt.NDArray[np.int16], rate_hz: int) -> float:
    """Frequency of the strongest FFT bin (resolution rate / len)."""
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    strongest = int(np.argmax(spectrum))
    return strongest * rate_hz / len(samples)
