"""G.711 µ-law (PCMU) and A-law (PCMA) with lookup tables (ITU-T G.711).

The tables are built once, at import, from the G.711 segment rules: an encode table indexed by
every one of the 65,536 int16 values (as ``uint16``) and a decode table for the 256 codes. One
fancy-indexing operation then converts a whole buffer. The results are bit-exact with the
reference (Sun) implementation that Python's former ``audioop`` module used: 16-bit samples are
reduced to 14 bits (µ-law) or 13 bits (A-law) by an arithmetic shift before encoding.

Encoding takes a 1-D (or any shape) ``int16`` array and returns the codes as ``bytes`` in array
order, ready to be an RTP payload; decoding takes ``bytes`` or a ``uint8`` array and returns a new
``int16`` array.
"""

from __future__ import annotations

from typing import Final, TypeVar

import numpy as np
import numpy.typing as npt

__all__ = [
    "ALAW_SILENCE",
    "ALAW_SILENCE_BYTE",
    "PCMA_PAYLOAD_TYPE",
    "PCMU_PAYLOAD_TYPE",
    "SAMPLE_RATE_HZ",
    "ULAW_SILENCE",
    "ULAW_SILENCE_BYTE",
    "alaw_decode",
    "alaw_encode",
    "ulaw_decode",
    "ulaw_encode",
]

# RFC 3551 §6: static payload types, 8 kHz.
PCMU_PAYLOAD_TYPE: Final = 0
PCMA_PAYLOAD_TYPE: Final = 8
SAMPLE_RATE_HZ: Final = 8000

# The code each law gives a zero sample.
ULAW_SILENCE: Final = 0xFF
ALAW_SILENCE: Final = 0xD5
ULAW_SILENCE_BYTE: Final = b"\xff"
ALAW_SILENCE_BYTE: Final = b"\xd5"

_ULAW_BIAS = 0x84  # 132: added to the magnitude so every segment starts at a power of two
_ULAW_CLIP = 8159  # largest 14-bit magnitude the µ-law scale represents
_ALAW_XOR = 0x55  # A-law inverts the even bits of each code

_G = TypeVar("_G", bound=np.generic)


def _all_int16() -> npt.NDArray[np.int32]:
    # Index i of the encode tables is the int16 value whose bit pattern is the uint16 i.
    return np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.int16).astype(np.int32)


def _segment(magnitude: npt.NDArray[np.int32], first_end: int) -> npt.NDArray[np.int32]:
    # Segment s covers magnitudes up to first_end * 2**s (inclusive); 8 means beyond the scale.
    ends = np.array([(first_end + 1) << s for s in range(8)], dtype=np.int32)
    return np.searchsorted(ends, magnitude, side="right").astype(np.int32)


def _build_ulaw_encode() -> npt.NDArray[np.uint8]:
    sample = _all_int16() >> 2  # 14-bit input
    negative = sample < 0
    magnitude = np.minimum(np.where(negative, -sample, sample), _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    segment = _segment(magnitude, 0x3F)
    step = (magnitude >> (np.minimum(segment, 7) + 1)) & 0x0F
    code = np.where(segment >= 8, 0x7F, (segment << 4) | step)
    # µ-law sends every bit inverted; negative values keep the sign bit clear.
    return (code ^ np.where(negative, 0x7F, 0xFF)).astype(np.uint8)


def _build_ulaw_decode() -> npt.NDArray[np.int16]:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    segment = (code >> 4) & 0x07
    magnitude = ((((code & 0x0F) << 3) + _ULAW_BIAS) << segment) - _ULAW_BIAS
    return np.where(code & 0x80, -magnitude, magnitude).astype(np.int16)


def _build_alaw_encode() -> npt.NDArray[np.uint8]:
    sample = _all_int16() >> 3  # 13-bit input
    negative = sample < 0
    # One's complement magnitude for negative values: -1 maps to 0, like +0.
    magnitude = np.where(negative, -sample - 1, sample)
    segment = _segment(magnitude, 0x1F)
    shift = np.where(segment < 2, 1, np.minimum(segment, 7))
    code = np.where(segment >= 8, 0x7F, (segment << 4) | ((magnitude >> shift) & 0x0F))
    # Positive values carry the sign bit; then the even bits are inverted.
    return (code ^ np.where(negative, _ALAW_XOR, 0x80 | _ALAW_XOR)).astype(np.uint8)


def _build_alaw_decode() -> npt.NDArray[np.int16]:
    code = np.arange(256, dtype=np.int32) ^ _ALAW_XOR
    segment = (code >> 4) & 0x07
    step = (code & 0x0F) << 4
    magnitude = np.where(segment == 0, step + 8, (step + 0x108) << np.maximum(segment - 1, 0))
    return np.where(code & 0x80, magnitude, -magnitude).astype(np.int16)


def _read_only(table: npt.NDArray[_G]) -> npt.NDArray[_G]:
    table.flags.writeable = False
    return table


_ULAW_ENCODE: Final = _read_only(_build_ulaw_encode())
_ULAW_DECODE: Final = _read_only(_build_ulaw_decode())
_ALAW_ENCODE: Final = _read_only(_build_alaw_encode())
_ALAW_DECODE: Final = _read_only(_build_alaw_decode())


def _as_uint16(pcm: npt.NDArray[np.int16]) -> npt.NDArray[np.uint16]:
    if pcm.dtype != np.int16:
        raise TypeError(f"G.711 encoding needs native int16 samples, got {pcm.dtype}")
    return pcm.view(np.uint16)


def _as_codes(codes: bytes | npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    if isinstance(codes, np.ndarray):
        if codes.dtype != np.uint8:
            raise TypeError(f"G.711 decoding needs uint8 codes, got {codes.dtype}")
        return codes
    return np.frombuffer(codes, dtype=np.uint8)


def ulaw_encode(pcm: npt.NDArray[np.int16]) -> bytes:
    """µ-law codes for ``int16`` samples, one byte per sample."""
    return _ULAW_ENCODE[_as_uint16(pcm)].tobytes()


def ulaw_decode(codes: bytes | npt.NDArray[np.uint8]) -> npt.NDArray[np.int16]:
    """``int16`` samples for µ-law codes."""
    return _ULAW_DECODE.take(_as_codes(codes))  # `take` is faster than fancy indexing


def alaw_encode(pcm: npt.NDArray[np.int16]) -> bytes:
    """A-law codes for ``int16`` samples, one byte per sample."""
    return _ALAW_ENCODE[_as_uint16(pcm)].tobytes()


def alaw_decode(codes: bytes | npt.NDArray[np.uint8]) -> npt.NDArray[np.int16]:
    """``int16`` samples for A-law codes."""
    return _ALAW_DECODE.take(_as_codes(codes))
