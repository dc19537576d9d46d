"""Decoding any audio file to mono float samples at 8 or 16 kHz, with ffmpeg doing the resampling.

ffmpeg decodes the file, mixes it down to mono and resamples it with its own band-limited
resampler in one run, writing raw 32-bit float samples to a pipe. pydub's own
``AudioSegment.set_frame_rate`` must not be used for this: it resamples without an anti-alias
filter, so a 6 kHz component of a 44.1 kHz file comes back at 2 kHz nearly at full level. The
ffmpeg binary is the one pydub is configured with (``pydub.AudioSegment.converter``), so one
setting moves both. Float output keeps the full precision of the source until normalisation and
cannot clip when the resampler overshoots.

ffmpeg opens only local files (``-protocol_whitelist file``) and only audio container formats
(`ALLOWED_FORMATS`): a file that ffmpeg would sniff as a playlist or concat script cannot make it
open other files or URLs.
"""

from __future__ import annotations

import re
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt

from announcements.errors import AnnouncementError

__all__ = ["ALLOWED_FORMATS", "Decoder", "FfmpegDecoder", "pydub_ffmpeg"]

# ffmpeg demuxer names (a demuxer matches when any of its comma-separated names is listed).
ALLOWED_FORMATS: Final = (
    "aac",
    "ac3",
    "aiff",
    "amr",
    "ape",
    "asf",
    "au",
    "caf",
    "eac3",
    "flac",
    "matroska",
    "mov",
    "mp3",
    "mpc",
    "mpc8",
    "ogg",
    "tta",
    "voc",
    "w64",
    "wav",
    "wv",
)


class Decoder(Protocol):
    """Decodes a source file to mono samples.

    Returns float32 samples, full scale ±1.0, at ``sample_rate_hz``, covering at most about
    ``stop_after_s`` seconds of the source (decoding may stop there). Raises `AnnouncementError`
    with a reason that need not name the file or prompt (the caller adds them).
    """

    def __call__(
        self, source: Path, *, sample_rate_hz: int, stop_after_s: float
    ) -> npt.NDArray[np.float32]: ...


def pydub_ffmpeg() -> str:
    """The ffmpeg binary pydub is configured to use."""
    with warnings.catch_warnings():
        # pydub imports the deprecated audioop module; only its converter setting is used here.
        warnings.simplefilter("ignore", DeprecationWarning)
        from pydub import AudioSegment  # noqa: PLC0415  (keeps the warning out of every import)
    return str(AudioSegment.converter)


_CONTEXT = re.compile(r"^\[(?P<name>[\w,]+) @ 0x[0-9a-fA-F]+\] ")


def _ffmpeg_reason(stderr: bytes, source: Path) -> str:
    lines = [line.strip() for line in stderr.decode("utf-8", errors="replace").splitlines() if line.strip()]
    # "[hls @ 0x55d0...] message" -> "hls: message"; "file:/x.wav: message" -> "message"
    lines = [_CONTEXT.sub(r"\g<name>: ", line).removeprefix(f"file:{source}: ") for line in lines]
    for line in lines:
        if line.endswith("matches no streams."):
            return "has no audio stream"
        name, _, message = line.partition(": ")
        if message.startswith("Format not on whitelist"):
            return f"is in a format not accepted for announcements ({name})"
    detail = "; ".join(lines[-3:])[:300] or "no error output"
    return f"is not a readable audio file (ffmpeg: {detail})"


@dataclass(frozen=True, slots=True, kw_only=True)
class FfmpegDecoder:
    """The production `Decoder`: one ffmpeg run per call (see the module docstring)."""

    binary: str | None = None
    """The ffmpeg executable; None means `pydub_ffmpeg()`."""
    timeout_s: float = 120.0

    def command(self, source: Path, *, sample_rate_hz: int, stop_after_s: float) -> list[str]:
        """The ffmpeg command line for one decode."""
        return [
            self.binary or pydub_ffmpeg(),
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-protocol_whitelist",
            "file",
            "-format_whitelist",
            ",".join(ALLOWED_FORMATS),
            "-i",
            f"file:{source}",
            "-map",
            "0:a:0",
            "-t",
            f"{stop_after_s:.3f}",
            "-ac",
            "1",
            "-ar",
            str(sample_rate_hz),
            "-c:a",
            "pcm_f32le",
            "-f",
            "f32le",
            "pipe:1",
        ]

    def __call__(self, source: Path, *, sample_rate_hz: int, stop_after_s: float) -> npt.NDArray[np.float32]:
        command = self.command(source, sample_rate_hz=sample_rate_hz, stop_after_s=stop_after_s)
        try:
            done = subprocess.run(command, capture_output=True, check=False, timeout=self.timeout_s)
        except FileNotFoundError as exc:
            raise AnnouncementError(f"ffmpeg is not installed (no {command[0]!r})") from exc
        except subprocess.TimeoutExpired as exc:
            raise AnnouncementError(f"ffmpeg did not finish decoding within {self.timeout_s:g} s") from exc
        if done.returncode != 0:
            raise AnnouncementError(_ffmpeg_reason(done.stderr, source))
        whole = len(done.stdout) // 4 * 4
        samples = np.frombuffer(done.stdout[:whole], dtype="<f4").astype(np.float32)
        return np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0)
