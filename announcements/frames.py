"""Codecs and the 20 ms frame format shared by prompts and tones.

Every prepared sound is a tuple of 20 ms frames per codec:

======== ============ ====================================================== ===========
codec    sample rate  frame content                                           frame bytes
======== ============ ====================================================== ===========
``pcmu`` 8000 Hz      160 G.711 µ-law characters (RTP payload type 0)         160
``pcma`` 8000 Hz      160 G.711 A-law characters (RTP payload type 8)         160
``g722`` 16000 Hz     160 octets of G.722 at 64 kbit/s (RTP payload type 9,     160
                      RFC 3551 §4.5.2)
======== ============ ====================================================== ===========

A sound whose length is not a whole number of frames is padded with silence at the end. G.722
is adaptive (ADPCM, ITU-T G.722): a sound is encoded in one go, from the encoder's reset state,
so its frames decode right played in order from the first; a receiver whose decoder heard
something else before adapts within a few milliseconds, as it does to any new stream.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
from G722 import G722

from announcements.errors import AnnouncementError
from announcements.g711 import alaw_encode, ulaw_encode

__all__ = [
    "CODECS",
    "FRAME_BYTES",
    "FRAME_MS",
    "G722_BIT_RATE",
    "NARROWBAND_RATE_HZ",
    "SAMPLE_RATE_HZ",
    "WIDEBAND_RATE_HZ",
    "Codec",
    "check_codec",
    "encode_frames",
    "frame_count",
    "g722_encode",
    "loop_frames",
    "silence_frame",
]

Codec = Literal["pcmu", "pcma", "g722"]
CODECS: Final[tuple[Codec, ...]] = ("pcmu", "pcma", "g722")
FRAME_MS: Final = 20
NARROWBAND_RATE_HZ: Final = 8000
WIDEBAND_RATE_HZ: Final = 16000
SAMPLE_RATE_HZ: Final[Mapping[str, int]] = MappingProxyType(
    {"pcmu": NARROWBAND_RATE_HZ, "pcma": NARROWBAND_RATE_HZ, "g722": WIDEBAND_RATE_HZ}
)
FRAME_BYTES: Final[Mapping[str, int]] = MappingProxyType({"pcmu": 160, "pcma": 160, "g722": 160})
G722_BIT_RATE: Final = 64000  # RFC 3551 §4.5.2: payload type 9 is the 64 kbit/s mode

_NARROW_FRAME_SAMPLES: Final = NARROWBAND_RATE_HZ * FRAME_MS // 1000  # 160
_WIDE_FRAME_SAMPLES: Final = WIDEBAND_RATE_HZ * FRAME_MS // 1000  # 320


def check_codec(codec: str) -> Codec:
    """``codec`` as a `Codec`; raises `AnnouncementError` for a name that is not one of `CODECS`."""
    for known in CODECS:
        if codec == known:
            return known
    raise AnnouncementError(f"unknown codec {codec!r} (known: {', '.join(CODECS)})")


def frame_count(samples: int, sample_rate_hz: int) -> int:
    """How many 20 ms frames hold ``samples`` samples at ``sample_rate_hz`` (the last one padded)."""
    per_frame = sample_rate_hz * FRAME_MS // 1000
    return -(-samples // per_frame)


def _fit(samples: npt.NDArray[np.int16], length: int) -> npt.NDArray[np.int16]:
    if samples.shape[0] >= length:
        return samples[:length]
    return np.concatenate([samples, np.zeros(length - samples.shape[0], dtype=np.int16)])


def g722_encode(wideband: npt.NDArray[np.int16]) -> bytes:
    """``wideband`` (16 kHz mono ``int16``) as G.722 at 64 kbit/s, from the encoder's reset state."""
    return bytes(G722(WIDEBAND_RATE_HZ, G722_BIT_RATE).encode(wideband.astype(np.int16, copy=False)))


def _split(payload: bytes, size: int) -> tuple[bytes, ...]:
    return tuple(payload[start : start + size] for start in range(0, len(payload), size))


def encode_frames(
    narrowband: npt.NDArray[np.int16], wideband: npt.NDArray[np.int16]
) -> dict[Codec, tuple[bytes, ...]]:
    """Frames for every codec from the same sound at 8 kHz and at 16 kHz (mono ``int16``).

    The frame count is set by the 8 kHz rendition; the 16 kHz rendition is padded with silence or
    cut (by at most a few samples of resampling slack) to the same number of frames, so all
    codecs play for the same time.
    """
    frames = frame_count(narrowband.shape[0], NARROWBAND_RATE_HZ)
    narrow = _fit(narrowband, frames * _NARROW_FRAME_SAMPLES)
    wide = _fit(wideband, frames * _WIDE_FRAME_SAMPLES)
    return {
        "pcmu": _split(ulaw_encode(narrow), FRAME_BYTES["pcmu"]),
        "pcma": _split(alaw_encode(narrow), FRAME_BYTES["pcma"]),
        "g722": _split(g722_encode(wide), FRAME_BYTES["g722"]),
    }


def silence_frame(codec: str) -> bytes:
    """One 20 ms frame of digital silence for ``codec``."""
    checked = check_codec(codec)
    return encode_frames(np.zeros(_NARROW_FRAME_SAMPLES, dtype=np.int16), np.zeros(0, dtype=np.int16))[
        checked
    ][0]


def loop_frames(frames: Sequence[bytes], *, loop: bool) -> Iterator[bytes]:
    """The frames in order, once (``loop=False``) or repeated without end (``loop=True``).

    An empty sequence gives an empty iterator either way.
    """
    if loop and frames:
        return itertools.cycle(frames)
    return iter(frames)
