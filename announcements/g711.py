"""A minimal ITU-T G.711 µ-law and A-law codec, for pre-encoding announcement frames.

The encoders follow the segment rules of G.711 as the classic Sun reference code (and with it
Python's former ``audioop``) applies them to 16-bit samples: the sample is first reduced to 14 bits
(µ-law) or 13 bits (A-law) by an arithmetic right shift, so the output is bit-exact with
``audioop.lin2ulaw`` / ``lin2alaw`` for every int16 input. Both directions are lookup tables built
once at import: 65,536 entries per encoder (indexed by the sample's bit pattern as ``uint16``)
and 256 per decoder.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["alaw_decode", "alaw_encode", "ulaw_decode", "ulaw_encode"]

_ULAW_BIAS_14 = 33  # the µ-law bias of 132 (G.711 Table 2) on the 14-bit scale
_ULAW_MAX_14 = 8159  # the largest magnitude the µ-law scale encodes, 14-bit
_ULAW_BIAS_16 = 0x84  # the same bias on the 16-bit scale, used by the decoder
_ALAW_EVEN_BITS = 0x55  # G.711 §A: even bits of every A-law character are inverted


def _bit_length(values: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    # frexp gives v = m * 2**e with 0.5 <= m < 1, so e is the bit length of a positive integer.
    _, exponent = np.frexp(values.astype(np.float64))
    return exponent.astype(np.int64)


def _int16_by_bit_pattern() -> npt.NDArray[np.int64]:
    return np.arange(1 << 16, dtype=np.uint16).view(np.int16).astype(np.int64)


def _ulaw_encode_table() -> npt.NDArray[np.uint8]:
    sample = _int16_by_bit_pattern() >> 2
    negative = sample < 0
    magnitude = np.minimum(np.abs(sample), _ULAW_MAX_14) + _ULAW_BIAS_14  # 33 .. 8192
    segment = _bit_length(magnitude) - 6  # 33..63 is segment 0; 8192 falls off the scale (8)
    step = (magnitude >> (segment + 1)) & 0x0F
    code = np.where(segment > 7, 0x7F, (segment << 4) | step)
    # All bits are sent inverted; a negative sample keeps its sign bit at 0.
    return (code ^ np.where(negative, 0x7F, 0xFF)).astype(np.uint8)


def _alaw_encode_table() -> npt.NDArray[np.uint8]:
    sample = _int16_by_bit_pattern() >> 3
    negative = sample < 0
    magnitude = np.where(negative, -sample - 1, sample)  # 0 .. 4095
    segment = np.maximum(_bit_length(np.maximum(magnitude, 1)) - 5, 0)  # 0..31 is segment 0
    step = (magnitude >> np.maximum(segment, 1)) & 0x0F
    code = (segment << 4) | step
    # Positive samples carry the sign bit 1; then the even bits are inverted.
    return (code ^ np.where(negative, _ALAW_EVEN_BITS, 0x80 | _ALAW_EVEN_BITS)).astype(np.uint8)


def _ulaw_decode_table() -> npt.NDArray[np.int16]:
    code = np.arange(256, dtype=np.int64) ^ 0xFF
    segment = (code >> 4) & 0x07
    magnitude = ((((code & 0x0F) << 3) + _ULAW_BIAS_16) << segment) - _ULAW_BIAS_16
    return np.where(code & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_decode_table() -> npt.NDArray[np.int16]:
    code = np.arange(256, dtype=np.int64) ^ _ALAW_EVEN_BITS
    segment = (code >> 4) & 0x07
    step = ((code & 0x0F) << 4) + np.where(segment == 0, 8, 0x108)
    magnitude: npt.NDArray[np.int64] = step << np.maximum(segment - 1, 0)
    return np.where(code & 0x80, magnitude, -magnitude).astype(np.int16)


_ULAW_ENCODE: Final = _ulaw_encode_table()
_ALAW_ENCODE: Final = _alaw_encode_table()
_ULAW_DECODE: Final = _ulaw_decode_table()
_ALAW_DECODE: Final = _alaw_decode_table()
for _table in (_ULAW_ENCODE, _ALAW_ENCODE, _ULAW_DECODE, _ALAW_DECODE):
    _table.flags.writeable = False


def _as_pattern(samples: npt.NDArray[np.int16]) -> npt.NDArray[np.uint16]:
    if samples.dtype != np.int16:
        raise TypeError(f"G.711 encoding takes int16 samples, not {samples.dtype}")
    return samples.view(np.uint16)


def ulaw_encode(samples: npt.NDArray[np.int16]) -> bytes:
    """µ-law characters for ``int16`` samples: one byte per sample, in array order."""
    return _ULAW_ENCODE[_as_pattern(samples)].tobytes()


def alaw_encode(samples: npt.NDArray[np.int16]) -> bytes:
    """A-law characters for ``int16`` samples: one byte per sample, in array order."""
    return _ALAW_ENCODE[_as_pattern(samples)].tobytes()


def ulaw_decode(codes: bytes) -> npt.NDArray[np.int16]:
    """``int16`` samples for µ-law characters (a new array)."""
    return _ULAW_DECODE[np.frombuffer(codes, dtype=np.uint8)]


def alaw_decode(codes: bytes) -> npt.NDArray[np.int16]:
    """``int16`` samples for A-law characters (a new array)."""
    return _ALAW_DECODE[np.frombuffer(codes, dtype=np.uint8)]
