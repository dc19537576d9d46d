"""Speech for the benchmarks' RTP: callherald's bundled recording notice, as PCMU.

Silence, or random bytes, cost a recorder less than people talking do: the DTMF masking must look
closer at speech (loud, with its energy in the DTMF bands) than at either. The benchmarks send
this instead, English then Dutch, decoded by ffmpeg as the announcements are.
"""

from __future__ import annotations

import functools
from typing import Final

import numpy as np

from announcements.decode import FfmpegDecoder
from announcements.defaults import DATA_DIR
from announcements.g711 import ulaw_encode

__all__ = ["SPEECH_FILES", "speech_ulaw"]

SPEECH_FILES: Final = (DATA_DIR / "announcement-en.ogg", DATA_DIR / "announcement-nl.ogg")
_RATE_HZ: Final = 8000
_LONGEST_S: Final = 60.0


@functools.cache
def speech_ulaw() -> bytes:
    """The bundled speech at 8 kHz as PCMU bytes, one byte per sample (about 25 s)."""
    decode = FfmpegDecoder()
    pieces = [decode(path, sample_rate_hz=_RATE_HZ, stop_after_s=_LONGEST_S) for path in SPEECH_FILES]
    samples = np.clip(np.round(np.concatenate(pieces) * 32767.0), -32768, 32767).astype(np.int16)
    return ulaw_encode(samples)
